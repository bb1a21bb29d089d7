// Flush latency per backend, by number of pCPUs and whether they are busy.
//
//   bazel run -c opt //bench:flush_benchmark
//
// Arguments: {pCPUs, busy}. Busy pCPUs spin through short interrupts-off
// steps; with more busy pCPUs than host cores, an IPI must wait for the OS to
// schedule each target, which is the cost assisted flushes avoid.
#include <algorithm>
#include <memory>
#include <vector>

#include "benchmark/benchmark.h"
#include "flush/flush_backends.h"

namespace hvmm {
namespace {

class Machine {
 public:
  Machine(int n, bool busy) {
    for (int i = 0; i < n; ++i) {
      pcpus_.push_back(std::make_unique<Pcpu>(i, &clock_, Tlb::Options()));
      raw_.push_back(pcpus_.back().get());
    }
    for (auto& p : pcpus_) {
      p->Start([busy](Pcpu&) {
        if (busy) SpinFor(2000);  // A 2 us interrupts-off section.
        return busy;
      });
    }
  }
  ~Machine() {
    for (auto& p : pcpus_) p->Stop();
  }
  const std::vector<Pcpu*>& pcpus() const { return raw_; }

 private:
  TlbClock clock_;
  std::vector<std::unique_ptr<Pcpu>> pcpus_;
  std::vector<Pcpu*> raw_;
};

FlushBatch AllTargets(int n) {
  return FlushBatch{CpuMask::FirstN(n),
                    {FlushScope::Domain(DomainId(1))}, 1};
}

void BM_IpiFlush(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  Machine m(n, state.range(1) != 0);
  IpiFlushBackend ipi(m.pcpus());
  const FlushBatch batch = AllTargets(n);
  for (auto _ : state) ipi.Flush(batch);
  state.SetItemsProcessed(state.iterations());
}

void BM_AssistedFlush(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  Machine m(n, state.range(1) != 0);
  AssistedFlushBackend assisted(m.pcpus(), {2000, 100});
  const FlushBatch batch = AllTargets(n);
  for (auto _ : state) assisted.Flush(batch);
  state.SetItemsProcessed(state.iterations());
}

void Shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"pcpus", "busy"});
  for (int busy : {0, 1}) {
    for (int n : {1, 2, 4, 8}) b->Args({n, busy});
  }
  b->UseRealTime();
}

BENCHMARK(BM_IpiFlush)->Apply(Shapes);
BENCHMARK(BM_AssistedFlush)->Apply(Shapes);

// Batching: `threads` callers each flushing 2 pCPUs through one batcher in
// front of the IPI backend, on 4 busy pCPUs. Items are requests served.
void BM_BatchedIpiFlush(benchmark::State& state) {
  static Machine* m = nullptr;
  static IpiFlushBackend* ipi = nullptr;
  static FlushBatcher* batcher = nullptr;
  if (state.thread_index() == 0) {
    m = new Machine(4, true);
    ipi = new IpiFlushBackend(m->pcpus());
    batcher = new FlushBatcher(ipi);
  }
  CpuMask mask;
  mask.Set(state.thread_index() % 4);
  mask.Set((state.thread_index() + 1) % 4);
  for (auto _ : state) {
    batcher->Flush({mask, FlushScope::Domain(DomainId(1))});
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    state.counters["requests_per_call"] =
        static_cast<double>(batcher->requests()) /
        static_cast<double>(std::max<uint64_t>(1, batcher->backend_calls()));
    delete batcher;
    delete ipi;
    delete m;
  }
}
BENCHMARK(BM_BatchedIpiFlush)->ThreadRange(1, 8)->UseRealTime();

}  // namespace
}  // namespace hvmm

BENCHMARK_MAIN();
