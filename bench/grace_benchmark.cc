// Read-side cost and grace-period latency, against liburcu's.
//
//   bazel run -c opt //bench:grace_benchmark
//
// The BM_Urcu* cases run the same shapes on liburcu's urcu-memb flavour
// (liburcu-dev; membarrier-based, the one closest to hvmm's sections):
// reader threads looping over 2 us read-side critical sections, and the
// benchmark thread calling urcu_memb_synchronize_rcu(). Compare
// BM_Synchronize/pcpus:N/readers:1 with BM_UrcuSynchronize/readers:N/busy:1
// within one run (docs/PERFORMANCE.md).
#include <urcu/urcu-memb.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "cpu/testing/pcpu_set.h"
#include "flush/flush_backends.h"
#include "grace/grace_periods.h"

namespace hvmm {
namespace {

const DomainId kD(1), kOther(2);

// Enter + exit of one read section: what every lockless walk pays.
void BM_ReadSectionEnterExit(benchmark::State& state) {
  TlbClock clock;
  // Not started: only its counters.
  Pcpu pcpu(PcpuId(0), &clock, Tlb::Options());
  for (auto _ : state) {
    Pcpu::ReadSection section(pcpu, kD);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_ReadSectionEnterExit);

// The same with a SectionClock: entry also reads the clock and publishes the
// entry time, for polled grace periods.
void BM_ReadSectionEnterExitClocked(benchmark::State& state) {
  TlbClock clock;
  SectionClock sections;
  Pcpu pcpu(PcpuId(0), &clock, Tlb::Options(), &sections);
  for (auto _ : state) {
    Pcpu::ReadSection section(pcpu, kD);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_ReadSectionEnterExitClocked);

// Steps that are 2 us read sections of `domain` (or idle if none).
testing::PcpuSet::Step ReadSectionsOf(DomainId domain) {
  return [domain](Pcpu& self) {
    if (!domain.valid()) return false;
    Pcpu::ReadSection section(self, domain);
    SpinFor(2000);
    return true;
  };
}

DomainId ReadersOf(int64_t arg) {
  return arg == 0 ? DomainId::None() : arg == 1 ? kD : kOther;
}

// Args: {pCPUs, whose readers: 0 none, 1 this domain's, 2 another domain's}.
void BM_Synchronize(benchmark::State& state) {
  testing::PcpuSet readers(static_cast<int>(state.range(0)),
                           ReadSectionsOf(ReadersOf(state.range(1))));
  GracePeriods grace(readers.pcpus());
  for (auto _ : state) grace.Synchronize(kD);
}

void BM_SynchronizeExpedited(benchmark::State& state) {
  testing::PcpuSet readers(static_cast<int>(state.range(0)),
                           ReadSectionsOf(ReadersOf(state.range(1))));
  GracePeriods grace(readers.pcpus());
  for (auto _ : state) grace.SynchronizeExpedited(kD);
}

// A polled grace period (GetState, then PollState until it has elapsed),
// as an rcu retype of a table released this moment: the cost when nothing
// is older, and the wait for the readers that are.
void BM_PollUntilElapsed(benchmark::State& state) {
  testing::PcpuSet readers(static_cast<int>(state.range(0)),
                           ReadSectionsOf(ReadersOf(state.range(1))));
  GracePeriods grace(readers.pcpus());
  uint64_t polls = 0;
  for (auto _ : state) {
    const GraceCookie cookie = grace.GetState();
    do {
      ++polls;
    } while (!grace.PollState(kD, cookie));
  }
  state.counters["polls_per_gp"] =
      static_cast<double>(polls) / static_cast<double>(state.iterations());
}

void Shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"pcpus", "readers"});
  for (int readers : {0, 1, 2}) {
    for (int n : {2, 8}) b->Args({n, readers});
  }
  b->UseRealTime();
}
// liburcu (urcu-memb): `n` reader threads, each looping over 2 us read-side
// critical sections (busy=1) or registered and idle (busy=0).
class UrcuReaders {
 public:
  UrcuReaders(int n, bool busy) {
    for (int i = 0; i < n; ++i) {
      threads_.emplace_back([this, busy] {
        urcu_memb_register_thread();
        registered_.fetch_add(1);
        while (!stop_.load(std::memory_order_relaxed)) {
          if (!busy) {
            std::this_thread::yield();
            continue;
          }
          urcu_memb_read_lock();
          SpinFor(2000);
          urcu_memb_read_unlock();
        }
        urcu_memb_unregister_thread();
      });
    }
    while (registered_.load() < n) std::this_thread::yield();
  }
  ~UrcuReaders() {
    stop_.store(true);
    for (std::thread& t : threads_) t.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> registered_{0};
  std::vector<std::thread> threads_;
};

void BM_UrcuSynchronize(benchmark::State& state) {
  UrcuReaders readers(static_cast<int>(state.range(0)), state.range(1) != 0);
  for (auto _ : state) urcu_memb_synchronize_rcu();
}
BENCHMARK(BM_UrcuSynchronize)
    ->ArgNames({"readers", "busy"})
    ->ArgsProduct({{2, 8}, {0, 1}})
    ->UseRealTime();

// What a liburcu reader pays per critical section (compare
// BM_ReadSectionEnterExitClocked).
void BM_UrcuReadLockUnlock(benchmark::State& state) {
  urcu_memb_register_thread();
  for (auto _ : state) {
    urcu_memb_read_lock();
    benchmark::ClobberMemory();
    urcu_memb_read_unlock();
  }
  urcu_memb_unregister_thread();
}
BENCHMARK(BM_UrcuReadLockUnlock);

BENCHMARK(BM_Synchronize)->Apply(Shapes);
BENCHMARK(BM_SynchronizeExpedited)->Apply(Shapes);
BENCHMARK(BM_PollUntilElapsed)->Apply(Shapes);

}  // namespace
}  // namespace hvmm

BENCHMARK_MAIN();
