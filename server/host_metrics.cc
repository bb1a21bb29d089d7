#include "server/host_metrics.h"

#include <limits>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "flush/flush_policy.h"
#include "mm/types.h"
#include "prometheus/metric_type.h"
#include "server/build_info.h"

namespace hvmm {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Durations in ns: buckets 2^10-1 ns (~1 us) to 2^36-1 ns (~69 s), by 4x.
constexpr int kNsFirst = 9, kNsLast = 35, kNsStep = 2;
// Batch sizes: 1, 3, 7, 15, 31, 63 requests (a batch holds at most 64).
constexpr int kBatchFirst = 0, kBatchLast = 5, kBatchStep = 1;

MetricFamily Family(const char* name, const char* help, MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

void AddValue(MetricFamily& f, double value,
              std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  switch (f.type) {
    case MetricType::Counter:
      m.counter.value = value;
      break;
    case MetricType::Gauge:
      m.gauge.value = value;
      break;
    default:
      m.untyped.value = value;
      break;
  }
  f.metric.push_back(std::move(m));
}

void AddHistogram(MetricFamily& f, ClientMetric::Histogram h,
                  std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  m.histogram = std::move(h);
  f.metric.push_back(std::move(m));
}

}  // namespace

prometheus::ClientMetric::Histogram ToPrometheusHistogram(
    const Log2Histogram::Snapshot& snapshot, double divisor, int first,
    int last, int step) {
  ClientMetric::Histogram h;
  h.sample_count = snapshot.count;
  h.sample_sum = static_cast<double>(snapshot.sum) / divisor;
  uint64_t cumulative = 0;
  int b = 0;
  for (int edge = first; edge <= last; edge += step) {
    for (; b <= edge; ++b) cumulative += snapshot.buckets[b];
    ClientMetric::Bucket bucket;
    bucket.cumulative_count = cumulative;
    bucket.upper_bound =
        static_cast<double>((uint64_t{1} << (edge + 1)) - 1) / divisor;
    h.bucket.push_back(bucket);
  }
  ClientMetric::Bucket inf;
  inf.cumulative_count = snapshot.count;
  inf.upper_bound = std::numeric_limits<double>::infinity();
  h.bucket.push_back(inf);
  return h;
}

HostMetrics::Sources HostMetrics::ForHost(Host* host) {
  Sources s;
  s.mm = &host->mm();
  s.engine = &host->engine();
  s.guest_stats = [host] { return host->GuestStats(); };
  s.violations = [host](ViolationKind kind, Policy policy) {
    return host->Violations(kind, policy);
  };
  return s;
}

std::vector<MetricFamily> HostMetrics::Collect() const {
  std::vector<MetricFamily> out;
  MemoryManager& mm = *sources_.mm;
  FlushEngine& engine = *sources_.engine;
  const FlushPolicyStats policy = engine.policy().stats();
  const std::vector<DomainInfo> live = mm.ListDomains();
  const FrameCensus census = mm.CountOwnedFrames();
  const GuestCpuStats guests = sources_.guest_stats();

  MetricFamily build =
      Family("hvmm_build_info", "Always 1; the labels say which hvmmd this is.",
             MetricType::Gauge);
  AddValue(build, 1,
           {{"revision", BuildRevision()}, {"version", kHvmmVersion}});
  out.push_back(std::move(build));

  MetricFamily pcpus =
      Family("hvmm_pcpus", "Simulated physical CPUs.", MetricType::Gauge);
  AddValue(pcpus, engine.pcpus().size());
  out.push_back(std::move(pcpus));

  MetricFamily frames = Family(
      "hvmm_frames",
      "Host frames by state: free (in the pool), pending_free (freed, "
      "waiting for a grace period), or owned by a domain: untyped, writable "
      "or page_table (l1..l4).",
      MetricType::Gauge);
  AddValue(frames, mm.allocator().free_frames(), {{"state", "free"}});
  AddValue(frames, engine.deferred_retirer().pending_frames(),
           {{"state", "pending_free"}});
  AddValue(frames, census.none, {{"state", "untyped"}});
  AddValue(frames, census.writable, {{"state", "writable"}});
  AddValue(frames, census.tables, {{"state", "page_table"}});
  out.push_back(std::move(frames));

  MetricFamily domains =
      Family("hvmm_domains", "Live domains.", MetricType::Gauge);
  AddValue(domains, live.size());
  out.push_back(std::move(domains));

  MetricFamily requests =
      Family("hvmm_flush_requests_total",
             "TLB flush requests by the backend that served them and why the "
             "policy sent them (unmap, retype, allocate, explicit).",
             MetricType::Counter);
  for (int b = 0; b < kFlushBackendCount; ++b) {
    for (int r = 0; r < kFlushReasonCount; ++r) {
      AddValue(requests, policy.requests[b][r],
               {{"backend", FlushBackendName(static_cast<FlushBackendKind>(b))},
                {"reason", FlushReasonName(static_cast<FlushReason>(r))}});
    }
  }
  out.push_back(std::move(requests));

  const FlushBatcher* batchers[kFlushBackendCount] = {
      &engine.ipi_batcher(), &engine.assisted_batcher()};
  MetricFamily batches =
      Family("hvmm_flush_batches_total",
             "Backend calls: each serves a batch of coalesced flush requests.",
             MetricType::Counter);
  MetricFamily batch_size =
      Family("hvmm_flush_batch_size", "Flush requests served per backend call.",
             MetricType::Histogram);
  MetricFamily duration =
      Family("hvmm_flush_duration_seconds",
             "Time per backend call: the hypercall for assisted, until every "
             "target acknowledged for ipi.",
             MetricType::Histogram);
  for (int b = 0; b < kFlushBackendCount; ++b) {
    const std::vector<ClientMetric::Label> label = {
        {"backend", FlushBackendName(static_cast<FlushBackendKind>(b))}};
    AddValue(batches, batchers[b]->backend_calls(), label);
    AddHistogram(batch_size,
                 ToPrometheusHistogram(batchers[b]->batch_sizes(), 1.0,
                                       kBatchFirst, kBatchLast, kBatchStep),
                 label);
    AddHistogram(duration,
                 ToPrometheusHistogram(batchers[b]->call_durations_ns(), 1e9,
                                       kNsFirst, kNsLast, kNsStep),
                 label);
  }
  out.push_back(std::move(batches));
  out.push_back(std::move(batch_size));
  out.push_back(std::move(duration));

  MetricFamily ipis = Family(
      "hvmm_ipis_sent_total",
      "Flush IPIs posted to target pCPUs (one per target per IPI batch).",
      MetricType::Counter);
  AddValue(ipis, engine.ipi_backend().ipis_sent());
  out.push_back(std::move(ipis));

  MetricFamily forced = Family(
      "hvmm_forced_ipi_total",
      "Flush requests sent by IPI only because the policy is "
      "assisted+force-ipi (page-table frames leaving, allocation), by reason.",
      MetricType::Counter);
  for (int r = 0; r < kFlushReasonCount; ++r) {
    AddValue(forced, policy.forced[r],
             {{"reason", FlushReasonName(static_cast<FlushReason>(r))}});
  }
  out.push_back(std::move(forced));

  GracePeriods& grace = engine.grace();
  MetricFamily gps =
      Family("hvmm_grace_periods_total",
             "Grace periods completed (waited out).", MetricType::Counter);
  AddValue(gps, grace.completed());
  out.push_back(std::move(gps));
  MetricFamily gp_latency = Family(
      "hvmm_grace_period_duration_seconds",
      "Time from a grace period's start until every read section it waited "
      "for had closed.",
      MetricType::Histogram);
  AddHistogram(gp_latency, ToPrometheusHistogram(grace.Latencies(), 1e9,
                                                 kNsFirst, kNsLast, kNsStep));
  out.push_back(std::move(gp_latency));

  MetricFamily pending =
      Family("hvmm_deferred_frees_pending",
             "Frames of a live domain freed but waiting for a grace period.",
             MetricType::Gauge);
  const absl::flat_hash_map<DomainId, uint64_t> by_domain =
      engine.deferred_retirer().PendingFramesByDomain();
  for (const DomainInfo& d : live) {
    auto it = by_domain.find(d.id);
    AddValue(pending, it == by_domain.end() ? 0 : it->second,
             {{"domain", absl::StrCat(d.id.value())}});
  }
  out.push_back(std::move(pending));

  MetricFamily walks =
      Family("hvmm_walks_total",
             "Page-table walks by pCPUs: guest TLB misses and Translate calls.",
             MetricType::Counter);
  AddValue(walks, guests.walks);
  out.push_back(std::move(walks));
  MetricFamily lookups =
      Family("hvmm_tlb_lookups_total",
             "Guest TLB lookups by result (hit, miss).", MetricType::Counter);
  AddValue(lookups, guests.tlb_hits, {{"result", "hit"}});
  AddValue(lookups, guests.tlb_misses, {{"result", "miss"}});
  out.push_back(std::move(lookups));
  MetricFamily accesses =
      Family("hvmm_guest_accesses_total",
             "Guest memory accesses made by workloads.", MetricType::Counter);
  AddValue(accesses, guests.accesses);
  out.push_back(std::move(accesses));

  MetricFamily types = Family(
      "hvmm_type_changes_total",
      "Frames whose page type changed in a committed update, by old and new "
      "type (none, l1..l4, writable).",
      MetricType::Counter);
  for (int from = 0; from < kPageTypeCount; ++from) {
    for (int to = 0; to < kPageTypeCount; ++to) {
      if (from == to) continue;
      const PageType f = static_cast<PageType>(from);
      const PageType t = static_cast<PageType>(to);
      AddValue(types, mm.TypeChanges(f, t),
               {{"from", PageTypeName(f)}, {"to", PageTypeName(t)}});
    }
  }
  out.push_back(std::move(types));

  MetricFamily violations = Family(
      "hvmm_safety_violations_total",
      "Broken promises the safety oracle saw (existence: a walker read a "
      "freed or retyped table; coherence: a stale translation was used), by "
      "the policy the domain ran. Must stay 0 for every safe policy.",
      MetricType::Counter);
  constexpr Policy kPolicies[] = {Policy::kIpi, Policy::kAssistedUnsafe,
                                  Policy::kAssistedForceIpi,
                                  Policy::kAssistedRcu};
  for (ViolationKind kind :
       {ViolationKind::kExistence, ViolationKind::kCoherence}) {
    for (Policy p : kPolicies) {
      AddValue(violations, sources_.violations(kind, p),
               {{"kind",
                 kind == ViolationKind::kExistence ? "existence" : "coherence"},
                {"policy", PolicyName(p)}});
    }
  }
  out.push_back(std::move(violations));
  return out;
}

}  // namespace hvmm
