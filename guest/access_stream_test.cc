#include "guest/access_stream.h"

#include <algorithm>
#include <map>
#include <vector>

#include "gtest/gtest.h"

namespace hvmm {
namespace {

WorkloadConfig TwoRanges(AccessPattern pattern) {
  WorkloadConfig c;
  c.ranges = {{Vaddr(0x100000), 10}, {Vaddr(0x7f0000000000), 6}};
  c.pattern = pattern;
  return c;
}

bool InRanges(const WorkloadConfig& c, Vaddr va) {
  for (const PageRange& r : c.ranges) {
    if (va.value() >= r.start.value() &&
        va.value() < r.start.PlusPages(r.pages).value()) {
      return va.IsPageAligned();
    }
  }
  return false;
}

TEST(AccessStreamTest, ParsesPatternNames) {
  EXPECT_EQ(ParseAccessPattern("zipf").value(), AccessPattern::kZipf);
  EXPECT_EQ(ParseAccessPattern("random").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(AccessStreamTest, SequentialWalksEveryPageInOrderAndWraps) {
  const WorkloadConfig c = TwoRanges(AccessPattern::kSequential);
  AccessStream s(c, 1);
  EXPECT_EQ(s.total_pages(), 16u);
  EXPECT_EQ(s.Next().va, Vaddr(0x100000));
  for (int i = 1; i < 10; ++i) s.Next();
  EXPECT_EQ(s.Next().va, Vaddr(0x7f0000000000));  // Second range.
  for (int i = 11; i < 16; ++i) s.Next();
  EXPECT_EQ(s.Next().va, Vaddr(0x100000));  // Wrapped.
}

TEST(AccessStreamTest, UniformStaysInRangesAndCoversThem) {
  const WorkloadConfig c = TwoRanges(AccessPattern::kUniform);
  AccessStream s(c, 2);
  std::map<uint64_t, int> seen;
  int writes = 0;
  for (int i = 0; i < 16000; ++i) {
    const GuestAccess a = s.Next();
    ASSERT_TRUE(InRanges(c, a.va)) << a.va;
    ++seen[a.va.value()];
    if (a.access == Access::kWrite) ++writes;
  }
  EXPECT_EQ(seen.size(), 16u);
  EXPECT_NEAR(writes / 16000.0, c.write_fraction, 0.03);
}

TEST(AccessStreamTest, ZipfIsSkewed) {
  WorkloadConfig c;
  c.ranges = {{Vaddr(0), 1000}};
  c.pattern = AccessPattern::kZipf;
  AccessStream s(c, 3);
  std::map<uint64_t, int> seen;
  for (int i = 0; i < 50000; ++i) ++seen[s.Next().va.value()];
  std::vector<int> counts;
  for (const auto& [va, n] : seen) counts.push_back(n);
  std::sort(counts.rbegin(), counts.rend());
  // The hottest page gets far more than its uniform share (50).
  EXPECT_GT(counts[0], 50 * 20);
  EXPECT_LT(counts[counts.size() / 2], 50);
}

TEST(AccessStreamTest, SameSeedSameStream) {
  const WorkloadConfig c = TwoRanges(AccessPattern::kUniform);
  AccessStream a(c, 9), b(c, 9);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.Next().va, b.Next().va);
}

}  // namespace
}  // namespace hvmm
