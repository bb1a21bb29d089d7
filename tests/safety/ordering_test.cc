// The sequences of the safety issue (1a, 1b), each with walkers placed where
// the old code let them see a freed or retyped table, under every policy:
// the three safe policies report no violation, and assisted-unsafe does.
//
// What the code before the fix reported (ScenarioHost, this file):
//   SameBatchUnhookAndRetype: violations under ipi and assisted+force-ipi
//     (the walker that the safety step's own flush let start still reached
//     the L1 through the staged, unpublished unhook) and assisted+rcu (the
//     retype polled the L1's stale release stamp and waited for nobody).
//   FormerTableLeavingThroughAReadOnlyMapping: a violation under
//     assisted+force-ipi (freed after an assisted flush, no IPI).
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "mm/pte.h"
#include "tests/safety/scenario_host.h"

namespace hvmm {
namespace {

using ::hvmm::testing::ScenarioHost;

constexpr uint64_t kRw = kPtePresent | kPteUser | kPteWritable;
constexpr uint64_t kRo = kPtePresent | kPteUser;
constexpr uint64_t k2M = uint64_t{1} << 21;
const Vaddr kVa(uint64_t{1} << 30);  // L2 index 0, L1 index 0.

class OrderingTest : public ::testing::TestWithParam<Policy> {
 protected:
  bool safe() const { return GetParam() != Policy::kAssistedUnsafe; }
  void ExpectOutcome(ScenarioHost& h) {
    const GuestCpuStats s = h.Stats();
    std::printf("%s: walks %lu, existence %lu, coherence %lu, pipe[2..] %lu\n",
                PolicyName(GetParam()), (unsigned long)s.walks,
                (unsigned long)s.existence_violations,
                (unsigned long)s.coherence_violations,
                (unsigned long)(s.walks - s.pipe[0] - s.pipe[1]));
    if (safe()) {
      EXPECT_EQ(h.Violations(), 0u) << PolicyName(GetParam());
    } else {
      EXPECT_GT(h.Violations(), 0u) << "the oracle no longer sees the bug";
    }
    h.Finish();
    EXPECT_TRUE(h.mm().Audit().ok()) << h.mm().Audit();
    EXPECT_EQ(h.mm().allocator().free_frames(),
              h.mm().frame_table().frame_count());
  }
};

// 1a. One batch unhooks the L1 and maps it writable through a scratch L1.
// Walker 0 is inside the L1 when the batch starts; walker 1 starts as soon
// as the batch's first flush reaches its pCPU. Before the batch, the L1 was
// released and re-hooked once, so an old release stamp exists.
TEST_P(OrderingTest, SameBatchUnhookAndRetype) {
  ScenarioHost h(GetParam(), kVa);
  MemoryManager& mm = h.mm();
  const std::vector<Mfn> path = h.PathTables();
  ASSERT_EQ(path.size(), 4u);
  const Mfn l2 = path[2], l1 = path[3];
  const Mfn scratch = mm.IncreaseReservation(h.domain(), 1).value()[0];
  ASSERT_TRUE(mm.PinTable(h.domain(), scratch, Level::kL1).ok());
  ASSERT_TRUE(mm.MmuUpdate(h.domain(), {{l2, 0, 0}}).ok());
  ASSERT_TRUE(mm.MmuUpdate(h.domain(), {{l2, 0, MakePte(l1, kRw)}}).ok());

  h.ArmParked(0);
  h.WaitParkedOrDone(0);
  ASSERT_TRUE(h.parked(0)) << "walker 0 should hold the L1";
  h.ArmAfterFlush(1);
  h.RunUpdater([&] {
    EXPECT_TRUE(mm.MmuUpdate(h.domain(), {{l2, 0, 0},
                                          {scratch, 0, MakePte(l1, kRw)}})
                    .ok());
  });
  EXPECT_EQ(mm.InspectFrame(l1).value().type, PageType::kWritable);
  ExpectOutcome(h);
}

// 1b. The L1 leaves its L2 (an assisted flush is enough for that under
// force-ipi: it stays owned) and is mapped read-only elsewhere; removing
// that mapping frees it. A walker is inside it throughout.
TEST_P(OrderingTest, FormerTableLeavingThroughAReadOnlyMapping) {
  ScenarioHost h(GetParam(), kVa);
  MemoryManager& mm = h.mm();
  const std::vector<Mfn> path = h.PathTables();
  const Mfn l2 = path[2], l1 = path[3];
  const std::vector<Mfn> f = mm.IncreaseReservation(h.domain(), 2).value();
  const Mfn holder = f[0], other = f[1];

  h.ArmParked(0);
  h.WaitParkedOrDone(0);
  ASSERT_TRUE(h.parked(0));
  h.RunUpdater([&] {
    EXPECT_TRUE(mm.MmuUpdate(h.domain(), {{l2, 0, 0},
                                          {l2, 1, MakePte(holder, kRw)},
                                          {holder, 0, MakePte(l1, kRo)},
                                          {holder, 1, MakePte(other, kRw)}})
                    .ok());
    const UnmapRangeResult r =
        mm.UnmapRange(h.domain(), Vaddr(kVa.value() + k2M), 1).value();
    EXPECT_EQ(r.tables_unhooked, 0u);
    EXPECT_EQ(r.frames_released, 1u);
  });
  ExpectOutcome(h);
}

// A writable page becomes an L1 in the batch that unhooks the only table
// mapping it, while a walker is inside that table, about to read the leaf
// that maps the page writable. The safe policies wait for that walker
// before the page is a table, so the walker reads its leaf while the page
// is still the old, writable one (same generation); unsafe does not.
// (Review probe: before BeforeRetype covered former writable pages, no
// policy waited, and the walker translated writably to a live table.)
TEST_P(OrderingTest, WritablePageBecomesATableUnderAWalker) {
  ScenarioHost h(GetParam(), kVa);
  MemoryManager& mm = h.mm();
  const std::vector<Mfn> path = h.PathTables();
  const Mfn l2 = path[2];
  const Mfn page =
      mm.Walk(h.domain(), VcpuId(0), kVa, Access::kRead).value().mfn;
  const uint32_t before = mm.InspectFrame(page).value().generation;
  h.Watch(page);
  h.ArmParked(0);
  h.WaitParkedOrDone(0);
  ASSERT_TRUE(h.parked(0));
  h.RunUpdater([&] {
    EXPECT_TRUE(mm.MmuUpdate(h.domain(), {{l2, 0, 0},
                                          {l2, 1, MakePte(page, kRw)}})
                    .ok());
  });
  EXPECT_EQ(mm.InspectFrame(page).value().type, PageType::kL1);
  if (safe()) {
    EXPECT_EQ(h.WatchedGeneration(0), before)
        << "the walker read a writable leaf to a page that was a table";
  } else {
    EXPECT_NE(h.WatchedGeneration(0), before) << "unsafe waited after all";
  }
  h.Finish();
  EXPECT_TRUE(mm.Audit().ok()) << mm.Audit();
}

INSTANTIATE_TEST_SUITE_P(
    EveryPolicy, OrderingTest,
    ::testing::Values(Policy::kIpi, Policy::kAssistedForceIpi,
                      Policy::kAssistedRcu, Policy::kAssistedUnsafe),
    [](const ::testing::TestParamInfo<Policy>& info) {
      std::string name = PolicyName(info.param);
      for (char& c : name) {
        if (c == '-' || c == '+') c = '_';
      }
      return name;
    });

}  // namespace
}  // namespace hvmm
