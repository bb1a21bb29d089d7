// The Host without gRPC: Translate walks on a pCPU, workloads start and
// stop, destroys race with workload starts, and shutdown answers queued
// walks. Runs under TSan (no gRPC linked).
#include "server/host.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "mm/mm_errors.h"

namespace hvmm {
namespace {

const Vaddr kVa(uint64_t{1} << 30);

std::unique_ptr<Host> MakeHost(int pcpus = 2) {
  HostOptions o;
  o.frames = 4096;
  o.pcpus = pcpus;
  o.hypercall_ns = 0;
  return Host::Create(o).value();
}

TEST(HostTest, TranslateWalksOnAPcpu) {
  auto host = MakeHost();
  const DomainId d = host->CreateDomain("t", 2, 64, Policy::kIpi).value();
  ASSERT_TRUE(host->mm().MapRange(d, kVa, 2, true).ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  const Translation t =
      host->Translate(d, VcpuId(1), kVa, Access::kWrite, deadline).value();
  EXPECT_TRUE(t.walk.ok());
  EXPECT_TRUE(t.walk.writable);
  EXPECT_EQ(t.walk.tables_read, 4u);
  EXPECT_EQ(t.walk.mfn,
            host->mm().Walk(d, VcpuId(1), kVa, Access::kRead).value().mfn);
  EXPECT_LT(t.pcpu, PcpuId(2));
  const Translation miss = host->Translate(d, VcpuId(0), Vaddr(kVa.value() + (2 << 12)),
                                           Access::kRead, deadline)
                               .value();
  EXPECT_EQ(miss.walk.outcome, WalkOutcome::kNotPresent);
  EXPECT_EQ(host->Translate(d, VcpuId(2), kVa, Access::kRead, deadline)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrorReason(host->Translate(DomainId(99), VcpuId(0), kVa,
                                        Access::kRead, deadline)
                            .status()),
            "UNKNOWN_DOMAIN");
  EXPECT_EQ(host->Stats().translations, 2u);
  EXPECT_TRUE(host->Shutdown().ok());
}

// A Translate walk on a pCPU must be waited out by the IPI policies' flush,
// which reaches only the domain's dirty mask: the walking pCPU is in it for
// the walk, and only for the walk (the domain runs no vCPU, so its mask is
// otherwise empty). The walk parks in the L1 until an IPI waits for it; if
// the unmap returned first, its IPI skipped the walker (the review found
// this hole).
struct ParkedTranslate {
  std::atomic<bool> park{true};
  std::atomic<bool> parked{false};
  std::atomic<bool> release{false};
  static void Hook(void* arg, WalkPoint point, Level level) {
    auto* p = static_cast<ParkedTranslate*>(arg);
    if (point != WalkPoint::kTableReached || level != Level::kL1) return;
    if (!p->park.exchange(false)) return;
    p->parked.store(true);
    while (!p->release.load()) std::this_thread::yield();
  }
};

TEST(HostTest, AnIpiFlushWaitsForATranslateWalk) {
  ParkedTranslate parked;
  HostOptions o;
  o.frames = 4096;
  o.pcpus = 2;
  o.hypercall_ns = 0;
  o.translate_walk_hooks = {&ParkedTranslate::Hook, &parked};
  auto host = Host::Create(o).value();
  const DomainId d = host->CreateDomain("t", 1, 64, Policy::kIpi).value();
  ASSERT_TRUE(host->mm().MapRange(d, kVa, 1, true).ok());
  std::shared_ptr<Domain> domain = host->mm().FindDomain(d);
  ASSERT_TRUE(domain->DirtyMask().Empty());

  std::thread translate([&] {
    EXPECT_TRUE(host->Translate(d, VcpuId(0), kVa, Access::kRead,
                                absl::InfiniteFuture())
                    .ok());
  });
  while (!parked.parked.load()) std::this_thread::yield();
  EXPECT_EQ(domain->DirtyMask().Count(), 1) << "the walking pCPU";

  std::atomic<bool> unmapped{false};
  std::thread unmap([&] {
    EXPECT_TRUE(host->mm().UnmapRange(d, kVa, 1).ok());
    unmapped.store(true);
  });
  bool ipi_posted = false;
  while (!unmapped.load() && !ipi_posted) {
    for (Pcpu* p : host->engine().pcpus()) ipi_posted |= p->ipi_pending();
    std::this_thread::yield();
  }
  EXPECT_FALSE(unmapped.load()) << "the unmap's IPI skipped the walker";
  parked.release.store(true);
  translate.join();
  unmap.join();
  EXPECT_TRUE(domain->DirtyMask().Empty()) << "the walk filled no cache";
  EXPECT_TRUE(host->Shutdown().ok());
}

TEST(HostTest, PolicyChangesAreLiveAndReported) {
  auto host = MakeHost();
  const DomainId d = host->CreateDomain("p", 1, 16, std::nullopt).value();
  EXPECT_EQ(host->PolicyOf(d).value(), Policy::kAssistedRcu);
  EXPECT_EQ(host->SetFlushPolicy(d, Policy::kIpi).value(),
            Policy::kAssistedRcu);
  EXPECT_EQ(host->PolicyOf(d).value(), Policy::kIpi);
  EXPECT_EQ(host->SetFlushPolicy(d, Policy::kAssistedUnsafe).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(host->PolicyOf(d).value(), Policy::kIpi);
  EXPECT_TRUE(host->Shutdown().ok());
}

TEST(HostTest, WorkloadsRunAndStop) {
  auto host = MakeHost();
  const DomainId d = host->CreateDomain("w", 2, 64, Policy::kAssistedRcu).value();
  ASSERT_TRUE(host->mm().MapRange(d, kVa, 8, true).ok());
  WorkloadConfig w;
  w.ranges = {{kVa, 8}};
  ASSERT_TRUE(host->StartWorkload(d, w).ok());
  EXPECT_EQ(ErrorReason(host->StartWorkload(d, w)), "WORKLOAD_RUNNING");
  while (host->Stats().guests.accesses < 1000) std::this_thread::yield();
  ASSERT_TRUE(host->StopWorkload(d).ok());
  EXPECT_EQ(ErrorReason(host->StopWorkload(d)), "NO_WORKLOAD");
  WorkloadConfig empty;
  EXPECT_EQ(ErrorReason(host->StartWorkload(d, empty)), "MALFORMED_ARGUMENT");
  w.write_fraction = 1.5;
  EXPECT_EQ(ErrorReason(host->StartWorkload(d, w)), "MALFORMED_ARGUMENT");
  EXPECT_EQ(host->Stats().existence_violations, 0u);
  EXPECT_TRUE(host->Shutdown().ok());
}

// A rate caps each vCPU's accesses: whatever the scheduling, they never
// exceed rate x elapsed plus one burst per vCPU; and they do progress.
TEST(HostTest, WorkloadRatesCapAccesses) {
  auto host = MakeHost();
  const DomainId d = host->CreateDomain("r", 2, 64, Policy::kAssistedRcu).value();
  ASSERT_TRUE(host->mm().MapRange(d, kVa, 8, true).ok());
  WorkloadConfig w;
  w.ranges = {{kVa, 8}};
  w.accesses_per_second = 400;
  const absl::Time start = absl::Now();
  ASSERT_TRUE(host->StartWorkload(d, w).ok());
  while (host->Stats().guests.accesses < 100) std::this_thread::yield();
  const uint64_t accesses = host->Stats().guests.accesses;
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
  // Per vCPU: 1 initial credit + 400/s + a burst of at most 100.
  EXPECT_LE(accesses, 2 * (1 + 400 * elapsed + 100))
      << accesses << " accesses in " << elapsed << " s";
  EXPECT_GT(host->Stats().guests.halts, 0u);
  ASSERT_TRUE(host->StopWorkload(d).ok());
  w.accesses_per_second = -1;
  EXPECT_EQ(ErrorReason(host->StartWorkload(d, w)), "MALFORMED_ARGUMENT");
  EXPECT_TRUE(host->Shutdown().ok());
}

// vCPUs over budget never hold a pCPU others could use: an unthrottled
// domain beside 64 vCPUs at a negligible rate runs at full speed (before,
// it crawled at a few hundred accesses a second: this would time out).
TEST(HostTest, ThrottledVcpusDoNotStarveOthers) {
  auto host = MakeHost();
  const DomainId fast = host->CreateDomain("fast", 2, 64, Policy::kIpi).value();
  const DomainId slow = host->CreateDomain("slow", 64, 64, Policy::kIpi).value();
  for (DomainId d : {fast, slow}) {
    ASSERT_TRUE(host->mm().MapRange(d, kVa, 8, true).ok());
  }
  WorkloadConfig w;
  w.ranges = {{kVa, 8}};
  w.accesses_per_second = 1e-9;
  ASSERT_TRUE(host->StartWorkload(slow, w).ok());
  w.accesses_per_second = 0;
  ASSERT_TRUE(host->StartWorkload(fast, w).ok());
  while (host->Stats().guests.accesses < 2'000'000) std::this_thread::yield();
  EXPECT_TRUE(host->Shutdown().ok());
}

// StopWorkload returns only once no pCPU runs the workload: later pCPU
// steps (Translate jobs on every pCPU) add no access.
TEST(HostTest, StopWorkloadStopsAtOnce) {
  auto host = MakeHost();
  const DomainId d = host->CreateDomain("s", 2, 64, Policy::kIpi).value();
  ASSERT_TRUE(host->mm().MapRange(d, kVa, 8, true).ok());
  WorkloadConfig w;
  w.ranges = {{kVa, 8}};
  for (int round = 0; round < 20; ++round) {
    ASSERT_TRUE(host->StartWorkload(d, w).ok());
    const uint64_t before = host->Stats().guests.accesses;
    while (host->Stats().guests.accesses < before + 1000) {
      std::this_thread::yield();
    }
    ASSERT_TRUE(host->StopWorkload(d).ok());
    const uint64_t stopped = host->Stats().guests.accesses;
    for (int i = 0; i < 8; ++i) {
      ASSERT_TRUE(host->Translate(d, VcpuId(0), kVa, Access::kRead,
                                  absl::InfiniteFuture())
                      .ok());
    }
    EXPECT_EQ(host->Stats().guests.accesses, stopped) << "round " << round;
  }
  EXPECT_TRUE(host->Shutdown().ok());
}

TEST(HostTest, ACreateRefusedByTheEngineIsAnErrorNotACrash) {
  HostOptions o;
  o.frames = 256;
  o.pcpus = 0;
  EXPECT_EQ(Host::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.pcpus = 1;
  o.policy = Policy::kAssistedUnsafe;
  EXPECT_EQ(Host::Create(o).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// Workload starts race destroys: a destroyed domain never keeps vCPUs on
// the run queue (the pCPUs then go idle), and nothing leaks.
TEST(HostTest, DestroyRacesWorkloadStarts) {
  auto host = MakeHost();
  for (int round = 0; round < 50; ++round) {
    const DomainId d =
        host->CreateDomain("r", 2, 64, Policy::kAssistedRcu).value();
    ASSERT_TRUE(host->mm().MapRange(d, kVa, 4, true).ok());
    WorkloadConfig w;
    w.ranges = {{kVa, 4}};
    std::thread starter([&] {
      for (int i = 0; i < 20; ++i) {
        const absl::Status s = host->StartWorkload(d, w);
        if (s.ok()) (void)host->StopWorkload(d);
      }
    });
    EXPECT_TRUE(host->DestroyDomain(d).ok());
    starter.join();
    EXPECT_FALSE(host->WorkloadRunning(d));
  }
  EXPECT_TRUE(host->mm().ListDomains().empty());
  EXPECT_TRUE(host->Shutdown().ok());
  EXPECT_EQ(host->mm().allocator().free_frames(),
            host->mm().frame_table().frame_count());
}

TEST(HostTest, ShutdownDrainsAuditsAndRefusesLaterWork) {
  auto host = MakeHost();
  const DomainId d = host->CreateDomain("s", 2, 256, Policy::kAssistedRcu).value();
  ASSERT_TRUE(host->mm().MapRange(d, kVa, 128, true).ok());
  WorkloadConfig w;
  w.ranges = {{kVa, 128}};
  ASSERT_TRUE(host->StartWorkload(d, w).ok());
  ASSERT_TRUE(host->mm().UnmapRange(d, kVa, 64).ok());
  EXPECT_TRUE(host->Shutdown().ok());
  EXPECT_EQ(host->mm().allocator().free_frames(),
            host->mm().frame_table().frame_count());
  EXPECT_EQ(ErrorReason(host->Translate(d, VcpuId(0), kVa, Access::kRead,
                                        absl::InfiniteFuture())
                            .status()),
            "DRAINING");
  EXPECT_EQ(ErrorReason(host->CreateDomain("late", 1, 8, std::nullopt).status()),
            "DRAINING");
}

// Walks queued concurrently from many threads are all answered.
TEST(HostTest, ConcurrentTranslatesAreAllAnswered) {
  auto host = MakeHost(3);
  const DomainId d = host->CreateDomain("c", 4, 64, Policy::kAssistedRcu).value();
  ASSERT_TRUE(host->mm().MapRange(d, kVa, 16, true).ok());
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        absl::StatusOr<Translation> r = host->Translate(
            d, VcpuId(t % 4), Vaddr(kVa.value() + (i % 16) * 4096),
            Access::kRead, absl::InfiniteFuture());
        if (r.ok() && r->walk.ok()) ok.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 8 * 200);
  EXPECT_TRUE(host->Shutdown().ok());
}

}  // namespace
}  // namespace hvmm
