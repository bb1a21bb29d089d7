// Live flush-policy changes (MemoryManager::SetFlushPolicy) under a walker
// parked inside a page table, for every pair (old policy, new policy):
//
// RetypeAfterTheSwitch: the L1 is unhooked under the old policy, the policy
//   changes, and the L1 is then mapped writable (a retype) under the new
//   one. The new policy's BeforeRetype must cover a release made under the
//   old one: ipi and force-ipi by their IPI to the dirty mask, rcu by the
//   release stamp every policy records. Only assisted-unsafe may let the
//   walker see the retype, and only if the old policy's unhook did not
//   already wait for it (ipi's unhook flush is an IPI).
// FreesQueuedBeforeTheSwitchAreHonoured: the L1 leaves the domain under
//   assisted+rcu (its free waits for a grace period); the policy changes,
//   to assisted-unsafe included, and more frames leave under the new one.
//   The queued free still waits for the walker.
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mm/pte.h"
#include "tests/safety/scenario_host.h"

namespace hvmm {
namespace {

using ::hvmm::testing::ScenarioHost;

constexpr uint64_t kRw = kPtePresent | kPteUser | kPteWritable;
const Vaddr kVa(uint64_t{1} << 30);  // L2 index 0, L1 index 0.

class PolicyChangeTest
    : public ::testing::TestWithParam<std::tuple<Policy, Policy>> {
 protected:
  Policy from() const { return std::get<0>(GetParam()); }
  Policy to() const { return std::get<1>(GetParam()); }
  void Switch(ScenarioHost& h) {
    const uint8_t tag = h.engine().policy().OverrideTag(to()).value();
    ASSERT_TRUE(h.mm().SetFlushPolicy(h.domain(), tag).ok());
    const Domain& d = *h.mm().FindDomain(h.domain());
    EXPECT_EQ(h.engine().policy().PolicyFor(d), to());
  }
  void Report(ScenarioHost& h) {
    const GuestCpuStats s = h.Stats();
    std::printf("%s -> %s: walks %lu, existence %lu, coherence %lu\n",
                PolicyName(from()), PolicyName(to()), (unsigned long)s.walks,
                (unsigned long)s.existence_violations,
                (unsigned long)s.coherence_violations);
  }
  void FinishClean(ScenarioHost& h) {
    h.Finish();
    EXPECT_TRUE(h.mm().Audit().ok()) << h.mm().Audit();
    EXPECT_EQ(h.mm().allocator().free_frames(),
              h.mm().frame_table().frame_count());
  }
};

TEST_P(PolicyChangeTest, RetypeAfterTheSwitch) {
  ScenarioHost h(from(), kVa);
  MemoryManager& mm = h.mm();
  const std::vector<Mfn> path = h.PathTables();
  ASSERT_EQ(path.size(), 4u);
  const Mfn l2 = path[2], l1 = path[3];
  const Mfn scratch = mm.IncreaseReservation(h.domain(), 1).value()[0];
  ASSERT_TRUE(mm.PinTable(h.domain(), scratch, Level::kL1).ok());

  h.ArmParked(0);
  h.WaitParkedOrDone(0);
  ASSERT_TRUE(h.parked(0)) << "walker 0 should hold the L1";
  h.RunUpdater([&] {
    EXPECT_TRUE(mm.MmuUpdate(h.domain(), {{l2, 0, 0}}).ok());
    Switch(h);
    EXPECT_TRUE(
        mm.MmuUpdate(h.domain(), {{scratch, 0, MakePte(l1, kRw)}}).ok());
  });
  EXPECT_EQ(mm.InspectFrame(l1).value().type, PageType::kWritable);
  Report(h);
  if (to() == Policy::kAssistedUnsafe && from() != Policy::kIpi) {
    EXPECT_GT(h.Violations(), 0u) << "the oracle no longer sees the bug";
  } else {
    EXPECT_EQ(h.Violations(), 0u);
  }
  FinishClean(h);
}

TEST_P(PolicyChangeTest, FreesQueuedBeforeTheSwitchAreHonoured) {
  if (from() != Policy::kAssistedRcu) GTEST_SKIP() << "only rcu queues frees";
  ScenarioHost h(from(), kVa);
  MemoryManager& mm = h.mm();
  const Vaddr other(kVa.value() + (uint64_t{1} << 39));  // Another L3.
  ASSERT_TRUE(mm.MapRange(h.domain(), other, 4, true).ok());

  h.ArmParked(0);
  h.WaitParkedOrDone(0);
  ASSERT_TRUE(h.parked(0)) << "walker 0 should hold the L1";
  h.RunUpdater([&] {
    const UnmapRangeResult r = mm.UnmapRange(h.domain(), kVa, 1).value();
    EXPECT_GE(r.tables_unhooked, 1u);
    Switch(h);
    EXPECT_TRUE(mm.UnmapRange(h.domain(), other, 4).ok());
    // The pool churns under the new policy: a freed L1 would be reused.
    const std::vector<Mfn> f = mm.IncreaseReservation(h.domain(), 8).value();
    EXPECT_TRUE(mm.DecreaseReservation(h.domain(), f).ok());
  });
  Report(h);
  EXPECT_EQ(h.Violations(), 0u);
  FinishClean(h);
}

INSTANTIATE_TEST_SUITE_P(
    EveryPair, PolicyChangeTest,
    ::testing::Combine(::testing::Values(Policy::kIpi,
                                         Policy::kAssistedForceIpi,
                                         Policy::kAssistedRcu),
                       ::testing::Values(Policy::kIpi,
                                         Policy::kAssistedForceIpi,
                                         Policy::kAssistedRcu,
                                         Policy::kAssistedUnsafe)),
    [](const ::testing::TestParamInfo<std::tuple<Policy, Policy>>& info) {
      std::string name = absl::StrCat(PolicyName(std::get<0>(info.param)),
                                      "_to_",
                                      PolicyName(std::get<1>(info.param)));
      for (char& c : name) {
        if (c == '-' || c == '+') c = '_';
      }
      return name;
    });

}  // namespace
}  // namespace hvmm
