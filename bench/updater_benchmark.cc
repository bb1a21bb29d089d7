// Updater throughput with walkers running, per policy (the torture rig's
// churn, timed by Google Benchmark).
//
//   bazel run -c opt //bench:updater_benchmark
//
// Arguments: {policy, pCPUs, scrape}. Policy is 0 ipi, 1 assisted-unsafe,
// 2 assisted+force-ipi, 3 assisted+rcu. With scrape=1 a thread collects
// and serializes the daemon's metrics (HostMetrics over the rig) every
// 100 ms, ten times Prometheus' usual rate: compare with scrape=0 for what
// metrics cost the updater (docs/PERFORMANCE.md). Every pCPU runs guest walkers
// over 3 domains (2 vCPUs each); the benchmark thread is the one updater, and
// an iteration is one churn operation (guest/churn.h; set-policy keeps each
// domain on the policy measured). items_per_second is
// updater ops/s. The counters report what the oracle saw (violations:
// assisted-unsafe is expected to show them, the others never) and where an
// rcu updater's time goes: grace periods (gp, gp_p50_us, gp_p99_us, and
// gp_ms, their total wall time), rcu
// retypes that waited for a walker (retype_waits), the retirer's queue-full
// fallbacks, and the share of deferred frames the updater freed itself
// (inline%). --op_shares adds each churn operation's share of the
// updater's time (%map, %unhook, ...).
#include <atomic>
#include <cstdio>
#include <string>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "prometheus/text_serializer.h"
#include "server/host_metrics.h"

#include "benchmark/benchmark.h"
#include "flush/flush_policy.h"
#include "tests/torture/torture_rig.h"

namespace hvmm {
namespace {

// --op_shares: report each churn Op's share of the updater's time.
bool g_op_shares = false;

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
  // The deferred retirer: how its frees went (rcu domains only).
  const DeferredRetirer& deferred = (*rig)->engine().deferred_retirer();
  state.counters["gp"] = static_cast<double>(deferred.grace_periods());
  state.counters["fallbacks"] = static_cast<double>(deferred.fallbacks());
  // Retypes under rcu that had to wait for a walker, and what every
  // grace period (theirs and the retirer's) took.
  FlushEngine& engine = (*rig)->engine();
  state.counters["retype_waits"] =
      static_cast<double>(engine.policy().stats().retype_grace_periods);
  state.counters["gp_p50_us"] = engine.grace().LatencyQuantileNs(0.5) / 1e3;
  state.counters["gp_p99_us"] = engine.grace().LatencyQuantileNs(0.99) / 1e3;
  // Wall time all grace periods took together (retypes', drains' and the
  // reclaimer's), against the run's length: what the waits could cost.
  state.counters["gp_ms"] =
      static_cast<double>(engine.grace().Latencies().sum) / 1e6;
  state.counters["inline%"] =
      deferred.frames_freed() == 0
          ? 0.0
          : 100.0 * static_cast<double>(deferred.frames_freed_inline()) /
                static_cast<double>(deferred.frames_freed());
  // Where the updater's time went: each Op's share of it, in percent
  // (with --op_shares; they make the table wide).
  if (g_op_shares) {
    const UpdaterStats& u = (*rig)->stats();
    double total = 0;
    for (int op = 0; op < kOpCount; ++op) total += u.op_ns[op].load();
    for (int op = 0; op < kOpCount && total > 0; ++op) {
      state.counters[absl::StrCat("%", OpName(static_cast<Op>(op)))] =
          100.0 * static_cast<double>(u.op_ns[op].load()) / total;
    }
  }
  state.SetLabel(PolicyName(options.policy));
}
BENCHMARK(BM_UpdaterOps)
    ->ArgNames({"policy", "pcpus", "scrape"})
    ->ArgsProduct({{0, 1, 2, 3}, {1, 2, 4, 8, 16}, {0}})
    ->Args({3, 2, 1})
    ->Args({3, 8, 1})
    ->MinTime(2)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace hvmm

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--op_shares") {
      hvmm::g_op_shares = true;
    } else {
      std::fprintf(stderr, "updater_benchmark: unknown argument %s\n",
                   argv[i]);
      return 2;
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
