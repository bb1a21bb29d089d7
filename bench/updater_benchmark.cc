// Updater throughput with walkers running, per policy (the torture rig's
// churn, timed by Google Benchmark).
//
//   bazel run -c opt //bench:updater_benchmark
//
// Arguments: {policy, pCPUs, scrape}. Policy is 0 ipi, 1 assisted-unsafe,
// 2 assisted+force-ipi, 3 assisted+rcu. With scrape=1 a thread collects
// and serializes the daemon's metrics (HostMetrics over the rig) every
// 100 ms, ten times Prometheus' usual rate: compare with scrape=0 for what
// metrics cost the updater (docs/PERFORMANCE.md). Every pCPU runs guest walkers over
// 3 domains (2 vCPUs each); the benchmark thread is the one updater, and an
// iteration is one churn operation (guest/churn.h; set-policy keeps each
// domain on the policy measured). items_per_second is
// updater ops/s. The counters report what the oracle saw: assisted-unsafe
// is expected to show violations, the others never.
#include <atomic>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "prometheus/text_serializer.h"
#include "server/host_metrics.h"

#include "benchmark/benchmark.h"
#include "flush/flush_policy.h"
#include "tests/torture/torture_rig.h"

namespace hvmm {
namespace {

void BM_UpdaterOps(benchmark::State& state) {
  TortureOptions options;
  options.policy = static_cast<Policy>(state.range(0));
  options.allow_unsafe = true;
  options.pcpus = static_cast<int>(state.range(1));
  // Each domain stays on the policy measured (set-policy re-applies it).
  options.change_policies = false;
  absl::StatusOr<std::unique_ptr<TortureRig>> rig = TortureRig::Create(options);
  if (!rig.ok()) {
    state.SkipWithError(std::string(rig.status().message()).c_str());
    return;
  }
  std::vector<int> all;
  for (int i = 0; i < (*rig)->domains(); ++i) all.push_back(i);
  std::mt19937_64 rng(1);
  absl::Notification stop;
  uint64_t scrapes = 0;
  std::thread scraper;
  if (state.range(2) != 0) {
    TortureRig* raw = rig->get();
    HostMetrics::Sources sources;
    sources.mm = &raw->mm();
    sources.engine = &raw->engine();
    sources.guest_stats = [raw] { return raw->LiveGuestStats(); };
    sources.violations = [raw](ViolationKind kind, Policy policy) {
      return raw->Violations(kind, policy);
    };
    scraper = std::thread([&stop, &scrapes, sources] {
      const HostMetrics metrics(sources);
      const prometheus::TextSerializer serializer;
      do {
        benchmark::DoNotOptimize(serializer.Serialize(metrics.Collect()));
        ++scrapes;
      } while (!stop.WaitForNotificationWithTimeout(absl::Milliseconds(100)));
    });
  }
  for (auto _ : state) {
    if (absl::Status s = (*rig)->Step(all, rng); !s.ok()) {
      state.SkipWithError(std::string(s.message()).c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  stop.Notify();
  if (scraper.joinable()) scraper.join();
  state.counters["scrapes"] = static_cast<double>(scrapes);
  if (absl::Status s = (*rig)->Finish(); !s.ok()) {
    state.SkipWithError(std::string(s.message()).c_str());
  }
  const GuestCpuStats& g = (*rig)->guest_totals();
  state.counters["walks"] = static_cast<double>(g.walks);
  state.counters["violations"] =
      static_cast<double>(g.existence_violations + g.coherence_violations);
  state.counters["leaked"] = static_cast<double>((*rig)->LeakedFrames());
  state.SetLabel(PolicyName(options.policy));
}
BENCHMARK(BM_UpdaterOps)
    ->ArgNames({"policy", "pcpus", "scrape"})
    ->ArgsProduct({{0, 1, 2, 3}, {2, 8}, {0}})
    ->Args({3, 2, 1})
    ->Args({3, 8, 1})
    ->MinTime(2)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace hvmm

BENCHMARK_MAIN();
