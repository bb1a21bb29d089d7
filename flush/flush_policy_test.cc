#include "flush/flush_policy.h"

#include <atomic>
#include <chrono>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

#include "cpu/testing/pcpu_set.h"
#include "flush/flush_backends.h"
#include "grace/testing/parked_reader.h"
#include "gtest/gtest.h"

namespace hvmm {
namespace {

// What a policy needs around running pCPUs: grace periods, both backends
// (no simulated latency) and their batchers.
struct PolicyParts {
  PolicyParts(const std::vector<Pcpu*>& pcpus, TlbClock* clock)
      : pcpus(pcpus),
        clock(clock),
        grace(pcpus),
        ipi(pcpus),
        assisted(pcpus, {0, 0}),
        ipi_batcher(&ipi),
        assisted_batcher(&assisted) {}
  FlushPolicy::Machine Machine() {
    return {pcpus, clock, &ipi_batcher, &assisted_batcher, &grace, 1024};
  }
  std::unique_ptr<FlushPolicy> Make(Policy p, bool allow_unsafe = true) {
    return FlushPolicy::Create(p, allow_unsafe, Machine()).value();
  }

  const std::vector<Pcpu*> pcpus;
  TlbClock* const clock;
  GracePeriods grace;
  IpiFlushBackend ipi;
  AssistedFlushBackend assisted;
  FlushBatcher ipi_batcher, assisted_batcher;
};

// Idle pCPUs, both backends, and a domain that has run on pCPUs 0 and 2.
class FlushPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    domain_.MarkDirty(PcpuId(0));
    domain_.MarkDirty(PcpuId(2));
  }
  FlushPolicy::Machine Machine() { return parts_.Machine(); }
  std::unique_ptr<FlushPolicy> Make(Policy p) { return parts_.Make(p); }

  testing::PcpuSet pcpus_{3, testing::PcpuSet::Idle};
  TlbClock& clock_ = pcpus_.clock();
  const std::vector<Pcpu*>& raw_ = pcpus_.pcpus();
  PolicyParts parts_{raw_, &clock_};
  GracePeriods* const grace_ = &parts_.grace;
  IpiFlushBackend* const ipi_ = &parts_.ipi;
  AssistedFlushBackend* const assisted_ = &parts_.assisted;
  Domain domain_{DomainId(1), "d", 1, 16};
};

TEST_F(FlushPolicyTest, ParsesNamesAndRefusesUnsafeUnlessAllowed) {
  EXPECT_EQ(ParsePolicy("assisted+rcu").value(), Policy::kAssistedRcu);
  EXPECT_EQ(ParsePolicy("rcu").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FlushPolicy::Create(Policy::kAssistedUnsafe, false, Machine())
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  FlushPolicy::Machine no_grace = Machine();
  no_grace.grace = nullptr;
  EXPECT_EQ(FlushPolicy::Create(Policy::kAssistedRcu, false, no_grace)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  TlbClock other_clock;
  Pcpu unclocked(PcpuId(7), &other_clock, Tlb::Options());  // No SectionClock.
  FlushPolicy::Machine no_sections = Machine();
  no_sections.pcpus.push_back(&unclocked);
  EXPECT_EQ(FlushPolicy::Create(Policy::kAssistedRcu, false, no_sections)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(FlushPolicyTest, IpiPolicySendsEverythingByIpiToTheDirtyMask) {
  auto p = Make(Policy::kIpi);
  p->AfterUnmap(domain_, false);
  p->BeforeRetype(domain_, {Mfn(5)}, {});
  EXPECT_EQ(ipi_->ipis_sent(), 4u);  // Two flushes, pCPUs 0 and 2 each.
  EXPECT_EQ(raw_[1]->ipis_served(), 0u) << "pCPU 1 never ran the domain";
  EXPECT_EQ(assisted_->calls(), 0u);
}

TEST_F(FlushPolicyTest, ForceIpiUsesIpiOnlyWhenTablesLeave) {
  auto p = Make(Policy::kAssistedForceIpi);
  p->AfterUnmap(domain_, /*tables_leave=*/false);
  EXPECT_EQ(ipi_->calls(), 0u);
  EXPECT_EQ(assisted_->calls(), 1u);
  p->AfterUnmap(domain_, /*tables_leave=*/true);
  p->BeforeRetype(domain_, {Mfn(5)}, {});
  EXPECT_EQ(ipi_->calls(), 2u);
  const FlushPolicyStats s = p->stats();
  EXPECT_EQ(s.forced_ipis, 2u);
  // By backend and reason.
  constexpr int kIpi = static_cast<int>(FlushBackendKind::kIpi);
  constexpr int kAssisted = static_cast<int>(FlushBackendKind::kAssisted);
  constexpr int kUnmap = static_cast<int>(FlushReason::kUnmap);
  constexpr int kRetype = static_cast<int>(FlushReason::kRetype);
  EXPECT_EQ(s.requests[kAssisted][kUnmap], 1u);
  EXPECT_EQ(s.requests[kIpi][kUnmap], 1u);
  EXPECT_EQ(s.requests[kIpi][kRetype], 1u);
  EXPECT_EQ(s.forced[kUnmap], 1u);
  EXPECT_EQ(s.forced[kRetype], 1u);
  EXPECT_EQ(s.ipi_flushes, 2u);
  EXPECT_EQ(s.assisted_flushes, 1u);
}

TEST_F(FlushPolicyTest, RcuIsAssistedAndWaitsAGracePeriodOnRetype) {
  auto p = Make(Policy::kAssistedRcu);
  p->AfterUnmap(domain_, /*tables_leave=*/true);
  // Mfn(5) was never released through the hooks: its release time is
  // unknown, so the retype takes a full grace period.
  p->BeforeRetype(domain_, {Mfn(5)}, {});
  EXPECT_EQ(ipi_->calls(), 0u);
  EXPECT_EQ(assisted_->calls(), 2u);
  EXPECT_EQ(assisted_->targets_invalidated(), 4u);
  EXPECT_EQ(p->stats().retype_grace_periods, 1u);
  EXPECT_EQ(grace_->completed(), 1u);
}

TEST_F(FlushPolicyTest, RcuRetypeOfAReleasedTableWithNoOlderWalkerIsFree) {
  auto p = Make(Policy::kAssistedRcu);
  const Mfn tables[] = {Mfn(6), Mfn(7)};
  p->AfterTablesReleased(domain_, tables);
  EXPECT_NE(p->release_stamps().At(Mfn(6)), GraceCookie());
  EXPECT_EQ(p->release_stamps().At(Mfn(8)), GraceCookie());
  p->BeforeRetype(domain_, {Mfn(6)}, {});
  p->BeforeRetype(domain_, {Mfn(7)}, {});
  EXPECT_EQ(p->stats().retype_polls_elapsed, 2u);
  EXPECT_EQ(p->stats().retype_grace_periods, 0u);
  EXPECT_EQ(grace_->completed(), 0u) << "no grace period was needed";
  EXPECT_EQ(assisted_->calls(), 2u) << "the coherence flush still happens";
}

// A walker that began before the release holds the retype back; one that
// began after it does not.
TEST(FlushPolicyRcuTest, RetypeWaitsOnlyForWalkersOlderThanTheRelease) {
  testing::ParkedReaders readers(2);
  PolicyParts parts(readers.pcpus(), &readers.clock());
  auto p = parts.Make(Policy::kAssistedRcu);
  Domain domain(DomainId(1), "d", 1, 16);
  domain.MarkDirty(PcpuId(0));
  domain.MarkDirty(PcpuId(1));
  const Mfn table[] = {Mfn(3)};

  readers.Park(0, domain.id());  // Older than the release.
  p->AfterTablesReleased(domain, table);
  readers.Park(1, domain.id());  // Younger: cannot reach the table.
  std::atomic<bool> done{false};
  std::thread retype([&] {
    p->BeforeRetype(domain, {Mfn(3)}, {});
    done.store(true);
  });
  // Until the retype returns or is seen waiting: no sleep decides this.
  while (!done.load() && parts.grace.waiting() == 0) std::this_thread::yield();
  EXPECT_FALSE(done.load()) << "retyped under a walker older than the release";
  readers.Release(0);
  retype.join();
  EXPECT_EQ(p->stats().retype_grace_periods, 1u);
  readers.Release(1);
}

TEST_F(FlushPolicyTest, UnsafeIsAllAssistedAndWaitsForNobody) {
  auto p = Make(Policy::kAssistedUnsafe);
  p->AfterUnmap(domain_, true);
  p->BeforeRetype(domain_, {Mfn(5)}, {});
  EXPECT_EQ(ipi_->calls(), 0u);
  EXPECT_EQ(grace_->completed(), 0u);
}

TEST_F(FlushPolicyTest, AllocationFlushSkipsPcpusThatFlushedSinceTheStamp) {
  auto p = Make(Policy::kIpi);
  const TlbStamp stamp = clock_.Now();
  p->AfterAllocate(domain_, stamp);  // Nobody has flushed yet: all three.
  EXPECT_EQ(ipi_->ipis_sent(), 3u);
  p->AfterAllocate(domain_, stamp);  // All flushed after the stamp: nobody.
  EXPECT_EQ(ipi_->ipis_sent(), 3u);
  // Assisted full flushes advance flush times too.
  auto rcu = Make(Policy::kAssistedRcu);
  const TlbStamp later = clock_.Now();
  rcu->AfterAllocate(domain_, later);
  EXPECT_EQ(assisted_->targets_invalidated(), 3u);
  rcu->AfterAllocate(domain_, later);
  EXPECT_EQ(assisted_->targets_invalidated(), 3u);
}

// Safety issue 1d: an assisted full flush cleans a pCPU's caches without
// waiting for its walker, so it must not let a later IPI allocation flush
// (force-ipi's stand-in for the walkers' IPI) skip that pCPU. It still lets
// an assisted allocation flush skip it: that one is for the caches alone.
TEST(FlushPolicyClockTest, AnAssistedFlushDoesNotExcuseAWalkerFromAnIpi) {
  testing::ParkedReaders readers(2);
  PolicyParts parts(readers.pcpus(), &readers.clock());
  Pcpu& walking = *readers.pcpus()[1];
  Domain domain(DomainId(1), "d", 1, 16);
  const TlbStamp stamp = readers.clock().Now();  // A frame freed now ...
  readers.Park(1, domain.id());  // ... that this walker may still read.
  FlushBatch batch;
  batch.targets.Set(PcpuId(1));
  batch.scopes = {FlushScope::All()};
  batch.requests = 1;
  parts.assisted.Flush(batch);
  ASSERT_FALSE(readers.clock().NeedFlush(walking.flush_time(), stamp))
      << "the caches count as flushed";
  ASSERT_TRUE(readers.clock().NeedFlush(walking.quiescent_flush_time(), stamp));

  auto rcu = parts.Make(Policy::kAssistedRcu);
  const uint64_t invalidated = parts.assisted.targets_invalidated();
  rcu->AfterAllocate(domain, stamp);
  EXPECT_EQ(parts.assisted.targets_invalidated() - invalidated, 1u)
      << "only pCPU 0, which never flushed";

  auto force = parts.Make(Policy::kAssistedForceIpi);
  std::atomic<bool> done{false};
  std::thread allocate([&] {
    force->AfterAllocate(domain, stamp);
    done.store(true);
  });
  while (!done.load() && !walking.ipi_pending()) std::this_thread::yield();
  EXPECT_FALSE(done.load())
      << "the allocation IPI skipped a pCPU whose walker predates the stamp";
  readers.Release(1);
  allocate.join();
  EXPECT_EQ(walking.ipis_served(), 1u);
}

TEST_F(FlushPolicyTest, OverrideTagsSelectAPolicyPerDomain) {
  auto safe = FlushPolicy::Create(Policy::kAssistedRcu, /*allow_unsafe=*/false,
                                  Machine())
                  .value();
  EXPECT_EQ(safe->OverrideTag(Policy::kAssistedUnsafe).status().code(),
            absl::StatusCode::kFailedPrecondition);
  const uint8_t ipi = safe->OverrideTag(Policy::kIpi).value();
  EXPECT_NE(ipi, 0) << "0 means the default";
  Domain by_default(DomainId(2), "a", 1, 16);
  Domain overridden(DomainId(3), "b", 1, 16, ipi);
  EXPECT_EQ(safe->PolicyFor(by_default), Policy::kAssistedRcu);
  EXPECT_EQ(safe->PolicyFor(overridden), Policy::kIpi);
  for (Policy p : {Policy::kIpi, Policy::kAssistedForceIpi,
                   Policy::kAssistedRcu}) {
    Domain d(DomainId(4), "c", 1, 16, safe->OverrideTag(p).value());
    EXPECT_EQ(safe->PolicyFor(d), p) << PolicyName(p);
  }
}

// A tag CreateDomain will store must name a policy the engine allows: an
// unknown tag would crash the first hook, and tag 2 (assisted-unsafe) would
// bring the seed bug in without allow_unsafe.
TEST_F(FlushPolicyTest, PolicyTagsAreCheckedBeforeADomainExists) {
  auto safe = FlushPolicy::Create(Policy::kAssistedRcu, /*allow_unsafe=*/false,
                                  Machine())
                  .value();
  EXPECT_TRUE(safe->CheckPolicyTag(0).ok());
  for (Policy p : {Policy::kIpi, Policy::kAssistedForceIpi,
                   Policy::kAssistedRcu}) {
    EXPECT_TRUE(safe->CheckPolicyTag(safe->OverrideTag(p).value()).ok());
  }
  EXPECT_EQ(safe->CheckPolicyTag(static_cast<uint8_t>(Policy::kAssistedUnsafe) + 1)
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(safe->CheckPolicyTag(5).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(safe->CheckPolicyTag(255).code(),
            absl::StatusCode::kInvalidArgument);
  auto allowed = Make(Policy::kAssistedRcu);
  EXPECT_TRUE(
      allowed->CheckPolicyTag(static_cast<uint8_t>(Policy::kAssistedUnsafe) + 1)
          .ok());
}

TEST_F(FlushPolicyTest, EachHookFollowsTheDomainsOwnPolicy) {
  auto p = Make(Policy::kAssistedRcu);
  Domain ipi_domain(DomainId(2), "i", 1, 16,
                    p->OverrideTag(Policy::kIpi).value());
  ipi_domain.MarkDirty(PcpuId(1));
  p->AfterUnmap(ipi_domain, false);  // By IPI, to pCPU 1 only.
  EXPECT_EQ(ipi_->ipis_sent(), 1u);
  EXPECT_EQ(raw_[1]->ipis_served(), 1u);
  p->AfterUnmap(domain_, true);  // The default: assisted.
  EXPECT_EQ(ipi_->calls(), 1u);
  EXPECT_EQ(assisted_->calls(), 1u);
  // The allocation flush follows the allocating domain too.
  const TlbStamp stamp = clock_.Now();
  p->AfterAllocate(ipi_domain, stamp);
  EXPECT_EQ(ipi_->calls(), 2u);
  p->AfterAllocate(domain_, clock_.Now());
  EXPECT_EQ(ipi_->calls(), 2u);
  EXPECT_EQ(assisted_->calls(), 2u);
}

TEST(FlushPolicyWrapTest, AllocationAfterAWrapFlushesEveryoneAndResets) {
  TlbClock clock{TlbStamp(std::numeric_limits<uint32_t>::max())};
  testing::PcpuSet pcpus(3, testing::PcpuSet::Idle, &clock);
  PolicyParts parts(pcpus.pcpus(), &clock);
  auto p = parts.Make(Policy::kAssistedRcu);
  AssistedFlushBackend& assisted = parts.assisted;
  Domain d(DomainId(1), "d", 1, 16);
  p->AfterAllocate(d, clock.Now());  // Full flush of all three: wraps.
  ASSERT_EQ(clock.Now(), TlbStamp());
  ASSERT_EQ(p->stats().clock_periods, 0u) << "that flush began before the wrap";
  const uint64_t before = assisted.targets_invalidated();
  p->AfterAllocate(d, TlbStamp(5));  // Wrapped: everyone, then a new period.
  EXPECT_EQ(assisted.targets_invalidated() - before, 3u);
  EXPECT_EQ(p->stats().clock_periods, 1u);
  EXPECT_EQ(clock.Now(), TlbStamp(1));
  EXPECT_EQ(clock.period(), 1u);
  pcpus.Stop();
}

}  // namespace
}  // namespace hvmm
