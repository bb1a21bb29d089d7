// Read-side cost and grace-period latency.
//
//   bazel run -c opt //bench:grace_benchmark
#include <memory>
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
  Pcpu pcpu(0, &clock, Tlb::Options());  // Not started: only its counters.
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
  Pcpu pcpu(0, &clock, Tlb::Options(), &sections);
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
    const uint64_t cookie = grace.GetState();
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
BENCHMARK(BM_Synchronize)->Apply(Shapes);
BENCHMARK(BM_SynchronizeExpedited)->Apply(Shapes);
BENCHMARK(BM_PollUntilElapsed)->Apply(Shapes);

}  // namespace
}  // namespace hvmm

BENCHMARK_MAIN();
