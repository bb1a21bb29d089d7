#include "base/strong_int.h"

#include <atomic>
#include <cstdint>
#include <sstream>
#include <type_traits>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "base/cpu_mask.h"
#include "gtest/gtest.h"

namespace hvmm {
namespace {

using Apples = StrongInt<class ApplesTag, uint32_t>;
using Pears = StrongInt<class PearsTag, uint32_t>;
using Small = StrongInt<class SmallTag, uint8_t>;

// The point of the type: none of these conversions compile.
static_assert(!std::is_convertible_v<Apples, Pears>);
static_assert(!std::is_convertible_v<Pears, Apples>);
static_assert(!std::is_convertible_v<uint32_t, Apples>);
static_assert(!std::is_convertible_v<Apples, uint32_t>);
static_assert(std::is_trivially_copyable_v<Apples>);
static_assert(sizeof(Apples) == sizeof(uint32_t));

TEST(StrongIntTest, DefaultIsZeroAndComparesLikeItsValue) {
  EXPECT_EQ(Apples(), Apples(0));
  EXPECT_LT(Apples(1), Apples(2));
  EXPECT_LE(Apples(2), Apples(2));
  EXPECT_GT(Apples(3), Apples(2));
  EXPECT_GE(Apples(3), Apples(3));
  EXPECT_NE(Apples(3), Apples(4));
  EXPECT_EQ(Apples(7).value(), 7u);
}

TEST(StrongIntTest, HashesAndPrintsAsItsValue) {
  absl::flat_hash_set<Apples> set = {Apples(1), Apples(2), Apples(1)};
  EXPECT_EQ(set.size(), 2u);
  EXPECT_TRUE(set.contains(Apples(2)));

  std::ostringstream os;
  os << Apples(42) << ' ' << Small(65);
  EXPECT_EQ(os.str(), "42 65");  // Not "42 A".
}

static_assert(std::atomic<Apples>::is_always_lock_free);

TEST(StrongIntTest, AtomicHoldsIt) {
  std::atomic<Apples> a{Apples(1)};
  a.store(Apples(9));
  EXPECT_EQ(a.load(), Apples(9));
}

TEST(CpuMaskTest, VisitsItsPcpusInOrder) {
  CpuMask m;
  m.Set(PcpuId(5));
  m.Set(PcpuId(0));
  m.Set(PcpuId(kMaxPcpus - 1));
  m.Clear(PcpuId(5));
  std::vector<PcpuId> seen;
  m.ForEach([&](PcpuId cpu) { seen.push_back(cpu); });
  EXPECT_EQ(seen, (std::vector<PcpuId>{PcpuId(0), PcpuId(kMaxPcpus - 1)}));
  EXPECT_EQ(m.Count(), 2);
  EXPECT_TRUE(m.Test(PcpuId(0)));
  EXPECT_FALSE(m.Test(PcpuId(5)));
  EXPECT_EQ(CpuMask::FirstN(3).Count(), 3);
  EXPECT_TRUE(CpuMask::FirstN(3).Test(PcpuId(2)));
  EXPECT_FALSE(CpuMask::FirstN(3).Test(PcpuId(3)));
}

}  // namespace
}  // namespace hvmm
