// HostMetrics: the engine's counters as Prometheus metric families, read on
// scrape (prometheus::Collectable).
//
// Nothing here runs on a hot path. The engine already counts per pCPU
// (walks, TLB lookups: GuestCpu's counters), per thread shard (type
// changes) or per flush and grace period (FlushPolicy, FlushBatcher,
// GracePeriods); Collect() reads and sums them when Prometheus scrapes.
// Each value is read on its own, not all at one instant: under load the
// hvmm_frames states may miss the pool size by the frames moving
// meanwhile (idle, they sum exactly). Per-domain series exist only for
// live domains, so a destroyed domain's series are gone at the next scrape.
//
// Every family is declared once, in Collect(), with its type, help and
// labels; the README's table is checked against a live scrape
// (tests/e2e/metrics_test.sh).
//
// It reads a Sources: a Host's (ForHost), or any assembly of a
// MemoryManager, its FlushEngine and guests (the updater benchmark measures
// scrapes over the torture rig with it).
//
// Thread-safety: Collect() from any thread (the exposer's), concurrently
// with everything the sources do. The sources must outlive this.
#ifndef HVMM_SERVER_HOST_METRICS_H_
#define HVMM_SERVER_HOST_METRICS_H_

#include <functional>
#include <utility>
#include <vector>

#include "base/log2_histogram.h"
#include "assembly/flush_engine.h"
#include "guest/guest_cpu.h"
#include "mm/memory_manager.h"
#include "prometheus/client_metric.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "server/host.h"

namespace hvmm {

class HostMetrics : public prometheus::Collectable {
 public:
  struct Sources {
    MemoryManager* mm = nullptr;
    FlushEngine* engine = nullptr;  // Over `mm`.
    // The pCPUs' counters summed now (walks, Translate walks among them,
    // TLB lookups, accesses).
    std::function<GuestCpuStats()> guest_stats;
    // Violations by kind and by the policy of the domain they hit.
    std::function<uint64_t(ViolationKind, Policy)> violations;
  };

  explicit HostMetrics(Sources sources) : sources_(std::move(sources)) {}
  static Sources ForHost(Host* host);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const Sources sources_;
};

// A Log2Histogram as a Prometheus histogram. Values are divided by
// `divisor` (1e9 for ns -> seconds; a division rounds 4095 / 1e9 to the
// double nearest 4.095e-06, so bounds print short). Buckets are every `step`-th
// power of two from bucket `first` through bucket `last` (le = 2^(b+1) - 1
// before scaling: exact for integers), then +Inf; lower buckets fold into the
// first.
prometheus::ClientMetric::Histogram ToPrometheusHistogram(
    const Log2Histogram::Snapshot& snapshot, double divisor, int first,
    int last, int step);

}  // namespace hvmm

#endif  // HVMM_SERVER_HOST_METRICS_H_
