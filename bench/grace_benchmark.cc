// Read-side cost and grace-period latency.
//
//   bazel run -c opt //bench:grace_benchmark
#include <memory>
#include <vector>

#include "benchmark/benchmark.h"
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

// pCPUs whose steps are 2 us read sections of `domain` (or idle if none).
class Readers {
 public:
  Readers(int n, DomainId domain) {
    for (int i = 0; i < n; ++i) {
      pcpus_.push_back(std::make_unique<Pcpu>(i, &clock_, Tlb::Options()));
      raw_.push_back(pcpus_.back().get());
    }
    for (auto& p : pcpus_) {
      p->Start([domain](Pcpu& self) {
        if (!domain.valid()) return false;
        Pcpu::ReadSection section(self, domain);
        SpinFor(2000);
        return true;
      });
    }
  }
  ~Readers() {
    for (auto& p : pcpus_) p->Stop();
  }
  const std::vector<Pcpu*>& pcpus() const { return raw_; }

 private:
  TlbClock clock_;
  std::vector<std::unique_ptr<Pcpu>> pcpus_;
  std::vector<Pcpu*> raw_;
};

// Args: {pCPUs, whose readers: 0 none, 1 this domain's, 2 another domain's}.
void BM_Synchronize(benchmark::State& state) {
  const DomainId readers_of = state.range(1) == 0   ? DomainId::None()
                              : state.range(1) == 1 ? kD
                                                    : kOther;
  Readers readers(static_cast<int>(state.range(0)), readers_of);
  GracePeriods grace(readers.pcpus());
  for (auto _ : state) grace.Synchronize(kD);
}

void BM_SynchronizeExpedited(benchmark::State& state) {
  const DomainId readers_of = state.range(1) == 0   ? DomainId::None()
                              : state.range(1) == 1 ? kD
                                                    : kOther;
  Readers readers(static_cast<int>(state.range(0)), readers_of);
  GracePeriods grace(readers.pcpus());
  for (auto _ : state) grace.SynchronizeExpedited(kD);
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

}  // namespace
}  // namespace hvmm

BENCHMARK_MAIN();
