// The assembled engine: creation errors, and each domain's frees routed by
// its own policy through the PolicyRetirer.
#include "assembly/flush_engine.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "cpu/testing/pcpu_set.h"
#include "mm/testing/mm_test_util.h"

namespace hvmm {
namespace {

using ::hvmm::testing::MakeMemoryManager;

constexpr uint64_t kFrames = 4096;
const Vaddr kVa(uint64_t{1} << 30);

TEST(FlushEngineTest, CreationErrors) {
  auto mm = MakeMemoryManager(kFrames);
  FlushEngine::Options options;
  options.pcpus = 0;
  EXPECT_EQ(FlushEngine::Create(mm.get(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.pcpus = kMaxPcpus + 1;
  EXPECT_EQ(FlushEngine::Create(mm.get(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.pcpus = 2;
  options.policy = Policy::kAssistedUnsafe;
  EXPECT_EQ(FlushEngine::Create(mm.get(), options).status().code(),
            absl::StatusCode::kFailedPrecondition);

  auto busy = MakeMemoryManager(kFrames);
  ASSERT_TRUE(busy->CreateDomain({"early", 1, 16}).ok());
  EXPECT_EQ(FlushEngine::Create(busy.get(), FlushEngine::Options())
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
}

// A raw tag is checked at CreateDomain: it never crashes a hook, and it
// cannot bring in assisted-unsafe unless the engine allows it.
TEST(FlushEngineTest, CreateDomainRefusesABadOrUnsafePolicyTag) {
  auto mm = MakeMemoryManager(kFrames);
  FlushEngine::Options options;
  options.pcpus = 2;
  auto engine = FlushEngine::Create(mm.get(), options).value();
  engine->Start([](PcpuId) { return Pcpu::Step(&testing::PcpuSet::Idle); });
  const uint8_t unsafe_tag = static_cast<uint8_t>(Policy::kAssistedUnsafe) + 1;
  EXPECT_EQ(mm->CreateDomain({"x", 1, 10, 7}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(mm->CreateDomain({"y", 1, 10, unsafe_tag}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(mm->ListDomains().empty());
  EXPECT_EQ(mm->allocator().free_frames(), kFrames);
  engine->Stop();
}

TEST(FlushEngineTest, FreesFollowEachDomainsPolicy) {
  auto mm = MakeMemoryManager(kFrames);
  FlushEngine::Options options;
  options.pcpus = 2;
  options.policy = Policy::kAssistedRcu;
  auto engine = FlushEngine::Create(mm.get(), options).value();
  engine->Start([](PcpuId) { return Pcpu::Step(&testing::PcpuSet::Idle); });

  const uint8_t ipi_tag = engine->policy().OverrideTag(Policy::kIpi).value();
  const DomainId rcu = mm->CreateDomain({"rcu", 1, 256}).value();
  const DomainId ipi = mm->CreateDomain({"ipi", 1, 256, ipi_tag}).value();
  EXPECT_EQ(mm->GetDomainInfo(ipi).value().flush_policy, ipi_tag);
  EXPECT_EQ(mm->GetDomainInfo(rcu).value().flush_policy, 0);

  // The ipi domain: its IPI waited out walkers, so frees are immediate.
  ASSERT_TRUE(mm->MapRange(ipi, kVa, 8, true).ok());
  ASSERT_TRUE(mm->UnmapRange(ipi, kVa, 8).ok());
  const uint64_t immediate = engine->retirer().freed_at_once();
  EXPECT_EQ(immediate, 8u + 3u) << "8 data pages and the L3, L2, L1";
  EXPECT_EQ(engine->deferred_retirer().pending_frames() +
                engine->deferred_retirer().frames_freed(),
            0u);

  // The rcu domain (the default): its tables wait for its grace period;
  // its data pages, which no walker reads as a table, are freed once the
  // flush has returned (Linux's mmu_gather: tlb_remove_table() against
  // tlb_remove_page()).
  ASSERT_TRUE(mm->MapRange(rcu, kVa, 8, true).ok());
  ASSERT_TRUE(mm->UnmapRange(rcu, kVa, 8).ok());
  EXPECT_EQ(engine->retirer().freed_at_once(), immediate + 8u);
  EXPECT_EQ(engine->deferred_retirer().pending_frames() +
                engine->deferred_retirer().frames_freed(),
            3u)
      << "the L3, L2 and L1";
  engine->retirer().Drain(rcu);
  EXPECT_EQ(engine->deferred_retirer().frames_freed(), 3u);
  EXPECT_EQ(engine->deferred_retirer().pending_frames(), 0u);

  ASSERT_TRUE(mm->Audit().ok()) << mm->Audit();
  ASSERT_TRUE(mm->DestroyDomain(rcu).ok());
  ASSERT_TRUE(mm->DestroyDomain(ipi).ok());
  EXPECT_EQ(mm->allocator().free_frames(), kFrames);
  engine->Stop();
}

// An rcu engine over a small pool whose pCPU 1 can park inside a read
// section of a domain, holding every grace period of that domain.
class PressureTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kSmall = 64;

  void Make(DeferredRetirer::Options deferred) {
    mm_ = MakeMemoryManager(kSmall, /*shards=*/1);
    FlushEngine::Options options;
    options.pcpus = 2;
    options.policy = Policy::kAssistedRcu;
    options.deferred = deferred;
    engine_ = FlushEngine::Create(mm_.get(), options).value();
    engine_->Start([this](PcpuId cpu) -> Pcpu::Step {
      if (cpu != PcpuId(1)) return &testing::PcpuSet::Idle;
      return [this](Pcpu& self) {
        const uint32_t d = park_.load();
        if (d == 0) return false;
        Pcpu::ReadSection section(self, DomainId(d));
        parked_.store(true);
        while (park_.load() == d) std::this_thread::yield();
        parked_.store(false);
        return true;
      };
    });
  }
  void Park(DomainId d) {
    park_.store(d.value());
    engine_->pcpus()[1]->Kick();
    while (!parked_.load()) std::this_thread::yield();
  }
  void Release() { park_.store(0); }
  // Makes `frames` released L1 tables (pinned, then unpinned): their
  // retirement waits for a grace period. A frame that never was a table is
  // freed as soon as its flush returns, and holds no grace period.
  void MakeReleasedTables(DomainId d, absl::Span<const Mfn> frames) {
    for (Mfn mfn : frames) {
      ASSERT_TRUE(mm_->PinTable(d, mfn, Level::kL1).ok());
      ASSERT_TRUE(mm_->UnpinTable(d, mfn).ok());
    }
  }
  void TearDown() override {
    Release();
    for (const DomainInfo& d : mm_->ListDomains()) {
      ASSERT_TRUE(mm_->DestroyDomain(d.id).ok());
    }
    EXPECT_EQ(mm_->allocator().free_frames(), kSmall);
    engine_->Stop();
  }

  std::unique_ptr<MemoryManager> mm_;
  std::unique_ptr<FlushEngine> engine_;
  std::atomic<uint32_t> park_{0};
  std::atomic<bool> parked_{false};
};

// Memory pressure (safety issue §4). Frames waiting for a grace period are
// not in use: an allocation that finds the pool empty while some are
// pending reclaims them instead of failing. The reader is released once the
// allocation is seen reclaiming; the allocation then succeeds.
TEST_F(PressureTest, AnAllocationReclaimsPendingFreesBeforeFailing) {
  Make({/*queue_capacity=*/kSmall, /*max_pending=*/kSmall});
  const DomainId d = mm_->CreateDomain({"d", 1, kSmall}).value();
  std::vector<Mfn> all = mm_->IncreaseReservation(d, kSmall - 1).value();
  MakeReleasedTables(d, all);
  Park(d);
  ASSERT_TRUE(mm_->DecreaseReservation(d, all).ok());
  ASSERT_EQ(engine_->deferred_retirer().pending_frames(), kSmall - 1)
      << "the reader holds every free";
  ASSERT_EQ(mm_->allocator().free_frames(), 0u);

  std::atomic<bool> done{false};
  absl::Status status;
  std::thread allocate([&] {
    status = mm_->IncreaseReservation(d, 8).status();
    done.store(true);
  });
  while (!done.load() && engine_->deferred_retirer().reclaiming() == 0) {
    std::this_thread::yield();
  }
  Release();
  allocate.join();
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(engine_->deferred_retirer().reclaims(), 1u);
  EXPECT_EQ(mm_->GetDomainInfo(d).value().tot_pages, 1u + 8u);

  // Frames really in use are RESOURCE_EXHAUSTED, with nothing pending.
  engine_->retirer().Drain(d);
  const absl::Status full = mm_->IncreaseReservation(d, kSmall).status();
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  ASSERT_TRUE(mm_->Audit().ok()) << mm_->Audit();
}

// Pending frees are bounded: past max_pending, Retire() makes the updater
// free its domain's queue itself, after an expedited grace period.
TEST_F(PressureTest, PendingFreesAreBoundedWithBackpressure) {
  Make({/*queue_capacity=*/4096, /*max_pending=*/16});
  const DomainId d = mm_->CreateDomain({"d", 1, kSmall}).value();
  const std::vector<Mfn> f = mm_->IncreaseReservation(d, 17).value();
  MakeReleasedTables(d, f);
  Park(d);  // Nothing can be freed by a normal grace period now.
  for (int i = 0; i < 16; ++i) {
    ASSERT_TRUE(mm_->DecreaseReservation(d, {f[i]}).ok());
  }
  EXPECT_EQ(engine_->deferred_retirer().pending_frames(), 16u);
  EXPECT_EQ(engine_->deferred_retirer().fallbacks(), 0u);
  // The 17th passes the bound: the updater pays, waiting for the reader.
  std::atomic<bool> done{false};
  std::thread release([&] {
    EXPECT_TRUE(mm_->DecreaseReservation(d, {f[16]}).ok());
    done.store(true);
  });
  while (!done.load() && !engine_->pcpus()[1]->ipi_pending()) {
    std::this_thread::yield();
  }
  EXPECT_FALSE(done.load()) << "freed past the bound without a grace period";
  Release();
  release.join();
  EXPECT_EQ(engine_->deferred_retirer().fallbacks(), 1u);
  EXPECT_LE(engine_->deferred_retirer().pending_frames(), 16u);
}

}  // namespace
}  // namespace hvmm

namespace hvmm {
namespace {

// The API's Flush: the domain's dirty mask, by IPI under ipi, assisted
// otherwise, and it follows a live policy change.
TEST(FlushEngineTest, ExplicitFlushFollowsTheDomainsPolicy) {
  auto mm = MakeMemoryManager(kFrames);
  FlushEngine::Options options;
  options.pcpus = 3;
  auto engine = FlushEngine::Create(mm.get(), options).value();
  engine->Start([](PcpuId) { return Pcpu::Step(&testing::PcpuSet::Idle); });
  const DomainId d = mm->CreateDomain({"f", 1, 16}).value();
  std::shared_ptr<Domain> domain = mm->FindDomain(d);
  domain->MarkDirty(PcpuId(0));
  domain->MarkDirty(PcpuId(2));
  FlushPolicy& policy = engine->policy();
  const uint64_t ipis = engine->ipi_backend().ipis_sent();
  FlushPolicy::ExplicitFlushResult r =
      policy.ExplicitFlush(*domain, FlushScope::Domain(d));
  EXPECT_EQ(r.pcpus_targeted, 2);
  EXPECT_FALSE(r.by_ipi);  // The default, assisted+rcu.
  EXPECT_EQ(engine->ipi_backend().ipis_sent(), ipis);

  ASSERT_TRUE(
      mm->SetFlushPolicy(d, policy.OverrideTag(Policy::kIpi).value()).ok());
  r = policy.ExplicitFlush(*domain, FlushScope::Range(d, kVa, 4));
  EXPECT_EQ(r.pcpus_targeted, 2);
  EXPECT_TRUE(r.by_ipi);
  EXPECT_EQ(engine->ipi_backend().ipis_sent(), ipis + 2);
  ASSERT_TRUE(mm->DestroyDomain(d).ok());
  engine->Stop();
}

// Frees queued for a grace period are counted per domain until freed: a
// reader parked in a's read section holds a's frees back.
TEST(FlushEngineTest, PendingFramesOfADomain) {
  auto mm = MakeMemoryManager(kFrames);
  FlushEngine::Options options;
  options.pcpus = 2;
  auto engine = FlushEngine::Create(mm.get(), options).value();
  std::atomic<uint32_t> park{0};
  std::atomic<bool> parked{false};
  engine->Start([&](PcpuId cpu) -> Pcpu::Step {
    if (cpu != PcpuId(1)) return &testing::PcpuSet::Idle;
    return [&](Pcpu& self) {
      const uint32_t d = park.load();
      if (d == 0) return false;
      Pcpu::ReadSection section(self, DomainId(d));
      parked.store(true);
      while (park.load() == d) std::this_thread::yield();
      parked.store(false);
      return true;
    };
  });
  const DomainId a = mm->CreateDomain({"a", 1, 64}).value();
  const DomainId b = mm->CreateDomain({"b", 1, 64}).value();
  ASSERT_TRUE(mm->MapRange(a, kVa, 8, true).ok());
  park.store(a.value());
  engine->pcpus()[1]->Kick();
  while (!parked.load()) std::this_thread::yield();
  const UnmapRangeResult r = mm->UnmapRange(a, kVa, 8).value();
  ASSERT_EQ(r.frames_released, 8u + 3u);
  DeferredRetirer& deferred = engine->deferred_retirer();
  EXPECT_EQ(deferred.PendingFramesOf(a), 3u)
      << "the L3, L2 and L1; the data pages were freed after the flush";
  EXPECT_EQ(deferred.PendingFramesOf(b), 0u);
  park.store(0);
  ASSERT_TRUE(mm->DestroyDomain(a).ok());
  EXPECT_EQ(deferred.PendingFramesOf(a), 0u);
  ASSERT_TRUE(mm->DestroyDomain(b).ok());
  engine->Stop();
}

}  // namespace
}  // namespace hvmm
