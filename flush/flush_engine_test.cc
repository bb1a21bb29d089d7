// The assembled engine: creation errors, and each domain's frees routed by
// its own policy through the PolicyRetirer.
#include "flush/flush_engine.h"

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

TEST(FlushEngineTest, FreesFollowEachDomainsPolicy) {
  auto mm = MakeMemoryManager(kFrames);
  FlushEngine::Options options;
  options.pcpus = 2;
  options.policy = Policy::kAssistedRcu;
  auto engine = FlushEngine::Create(mm.get(), options).value();
  engine->Start([](int) { return Pcpu::Step(&testing::PcpuSet::Idle); });

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

  // The rcu domain (the default): frees wait for its grace period.
  ASSERT_TRUE(mm->MapRange(rcu, kVa, 8, true).ok());
  ASSERT_TRUE(mm->UnmapRange(rcu, kVa, 8).ok());
  EXPECT_EQ(engine->retirer().freed_at_once(), immediate);
  engine->retirer().Drain(rcu);
  EXPECT_EQ(engine->deferred_retirer().frames_freed(), 8u + 3u);
  EXPECT_EQ(engine->deferred_retirer().pending_frames(), 0u);

  ASSERT_TRUE(mm->Audit().ok()) << mm->Audit();
  ASSERT_TRUE(mm->DestroyDomain(rcu).ok());
  ASSERT_TRUE(mm->DestroyDomain(ipi).ok());
  EXPECT_EQ(mm->allocator().free_frames(), kFrames);
  engine->Stop();
}

// Memory pressure (safety issue §4). Frames waiting for a grace period are
// not in use: an allocation that finds the pool empty while some are
// pending reclaims them (an expedited grace period) instead of failing.
// A reader of the domain holds the grace period until the reclaim's IPI
// is seen waiting for it; the allocation then succeeds.
TEST(FlushEngineTest, AnAllocationReclaimsPendingFreesBeforeFailing) {
  constexpr uint64_t kSmall = 64;
  auto mm = MakeMemoryManager(kSmall, /*shards=*/1);
  FlushEngine::Options options;
  options.pcpus = 2;
  options.policy = Policy::kAssistedRcu;
  options.deferred = {/*queue_capacity=*/kSmall, /*max_pending=*/kSmall};
  auto engine = FlushEngine::Create(mm.get(), options).value();
  std::atomic<uint32_t> park{0};
  std::atomic<bool> parked{false};
  engine->Start([&](int cpu) -> Pcpu::Step {
    if (cpu != 1) return &testing::PcpuSet::Idle;
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
  const DomainId d = mm->CreateDomain({"d", 1, kSmall}).value();
  std::vector<Mfn> all = mm->IncreaseReservation(d, kSmall - 1).value();
  park.store(d.value());
  engine->pcpus()[1]->Kick();
  while (!parked.load()) std::this_thread::yield();
  ASSERT_TRUE(mm->DecreaseReservation(d, all).ok());
  ASSERT_EQ(engine->deferred_retirer().pending_frames(), kSmall - 1)
      << "the reader holds every free";
  ASSERT_EQ(mm->allocator().free_frames(), 0u);

  std::atomic<bool> done{false};
  absl::Status status;
  std::thread allocate([&] {
    status = mm->IncreaseReservation(d, 8).status();
    done.store(true);
  });
  while (!done.load() && !engine->pcpus()[1]->ipi_pending() &&
         engine->grace().waiting() == 0) {
    std::this_thread::yield();
  }
  park.store(0);
  allocate.join();
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(engine->deferred_retirer().reclaims(), 1u);
  EXPECT_EQ(mm->GetDomainInfo(d).value().tot_pages, 1u + 8u);

  // Frames really in use are RESOURCE_EXHAUSTED, with nothing pending.
  engine->retirer().Drain(d);
  const absl::Status full = mm->IncreaseReservation(d, kSmall).status();
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  ASSERT_TRUE(mm->Audit().ok()) << mm->Audit();
  ASSERT_TRUE(mm->DestroyDomain(d).ok());
  EXPECT_EQ(mm->allocator().free_frames(), kSmall);
  engine->Stop();
}

// Pending frees are bounded: past max_pending, Retire() makes the updater
// free its domain's queue after an expedited grace period, at once.
TEST(FlushEngineTest, PendingFreesAreBoundedWithBackpressure) {
  auto mm = MakeMemoryManager(kFrames);
  FlushEngine::Options options;
  options.pcpus = 2;
  options.policy = Policy::kAssistedRcu;
  options.deferred = {/*queue_capacity=*/4096, /*max_pending=*/16};
  auto engine = FlushEngine::Create(mm.get(), options).value();
  engine->Start([](int) { return Pcpu::Step(&testing::PcpuSet::Idle); });
  const DomainId d = mm->CreateDomain({"d", 1, 1024}).value();
  const std::vector<Mfn> f = mm->IncreaseReservation(d, 40).value();
  for (Mfn m : f) {
    ASSERT_TRUE(mm->DecreaseReservation(d, {m}).ok());
    EXPECT_LE(engine->deferred_retirer().pending_frames(), 16u);
  }
  // 40 frees through a bound of 16: the updater paid at least twice.
  EXPECT_GE(engine->deferred_retirer().fallbacks(), 2u);
  ASSERT_TRUE(mm->DestroyDomain(d).ok());
  EXPECT_EQ(mm->allocator().free_frames(), kFrames);
  engine->Stop();
}

}  // namespace
}  // namespace hvmm
