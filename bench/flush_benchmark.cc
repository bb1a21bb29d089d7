// Flush latency per backend, by number of pCPUs and whether they are busy.
//
//   bazel run -c opt //bench:flush_benchmark
//
// Arguments: {pCPUs, busy}. Busy pCPUs spin through short interrupts-off
// steps; with more busy pCPUs than host cores, an IPI must wait for the OS to
// schedule each target, which is the cost assisted flushes avoid.
#include <algorithm>
#include <memory>
#include <type_traits>
#include <vector>

#include "benchmark/benchmark.h"
#include "cpu/testing/pcpu_set.h"
#include "flush/flush_backends.h"
#include "flush/flush_batcher.h"

namespace hvmm {
namespace {

// `n` pCPUs; busy ones spin through 2 us interrupts-off steps.
testing::PcpuSet::Step BusyOrIdle(bool busy) {
  return [busy](Pcpu&) {
    if (busy) SpinFor(2000);
    return busy;
  };
}

FlushBatch AllTargets(int n) {
  return FlushBatch{CpuMask::FirstN(n),
                    {FlushScope::Domain(DomainId(1))}, 1};
}

void BM_IpiFlush(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  testing::PcpuSet m(n, BusyOrIdle(state.range(1) != 0));
  IpiFlushBackend ipi(m.pcpus());
  const FlushBatch batch = AllTargets(n);
  for (auto _ : state) ipi.Flush(batch);
  state.SetItemsProcessed(state.iterations());
}

void BM_AssistedFlush(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  testing::PcpuSet m(n, BusyOrIdle(state.range(1) != 0));
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
// front of the backend, on 4 busy pCPUs. Items are requests served;
// requests_per_call is the batch size the batcher reached.
template <typename Backend>
void BM_BatchedFlush(benchmark::State& state) {
  static testing::PcpuSet* m = nullptr;
  static Backend* backend = nullptr;
  static FlushBatcher* batcher = nullptr;
  if (state.thread_index() == 0) {
    m = new testing::PcpuSet(4, BusyOrIdle(true));
    if constexpr (std::is_same_v<Backend, AssistedFlushBackend>) {
      backend = new Backend(m->pcpus(), {2000, 100});
    } else {
      backend = new Backend(m->pcpus());
    }
    batcher = new FlushBatcher(backend);
  }
  CpuMask mask;
  mask.Set(PcpuId(state.thread_index() % 4));
  mask.Set(PcpuId((state.thread_index() + 1) % 4));
  for (auto _ : state) {
    batcher->Flush({mask, FlushScope::Domain(DomainId(1))});
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    state.counters["requests_per_call"] =
        static_cast<double>(batcher->requests()) /
        static_cast<double>(std::max<uint64_t>(1, batcher->backend_calls()));
    delete batcher;
    delete backend;
    delete m;
  }
}
BENCHMARK_TEMPLATE(BM_BatchedFlush, IpiFlushBackend)
    ->ThreadRange(1, 8)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_BatchedFlush, AssistedFlushBackend)
    ->ThreadRange(1, 8)
    ->UseRealTime();

}  // namespace
}  // namespace hvmm

BENCHMARK_MAIN();
