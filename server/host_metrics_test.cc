// HostMetrics against a real Host: every family's values follow the engine
// (domains, frames, flush requests by reason, type changes, per-domain
// series that vanish on destroy), and histograms are well-formed.
#include "server/host_metrics.h"

#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "prometheus/metric_family.h"

namespace hvmm {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

const Vaddr kVa(uint64_t{1} << 30);

const MetricFamily* Find(const std::vector<MetricFamily>& fs,
                         const std::string& name) {
  for (const MetricFamily& f : fs) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

// The metric of `name` whose labels include every one of `labels`; null if
// none or the family is missing.
const ClientMetric* Metric(const std::vector<MetricFamily>& fs,
                           const std::string& name,
                           std::vector<ClientMetric::Label> labels = {}) {
  const MetricFamily* f = Find(fs, name);
  if (f == nullptr) return nullptr;
  for (const ClientMetric& m : f->metric) {
    bool all = true;
    for (const auto& want : labels) {
      bool found = false;
      for (const auto& l : m.label) found = found || l == want;
      all = all && found;
    }
    if (all) return &m;
  }
  return nullptr;
}

double Value(const std::vector<MetricFamily>& fs, const std::string& name,
             std::vector<ClientMetric::Label> labels = {}) {
  const ClientMetric* m = Metric(fs, name, std::move(labels));
  EXPECT_NE(m, nullptr) << name;
  if (m == nullptr) return -1;
  return Find(fs, name)->type == MetricType::Counter ? m->counter.value
                                                     : m->gauge.value;
}

std::unique_ptr<Host> MakeHost() {
  HostOptions o;
  o.frames = 4096;
  o.pcpus = 2;
  o.hypercall_ns = 0;
  return Host::Create(o).value();
}

TEST(HostMetricsTest, NamesFollowTheConventions) {
  auto host = MakeHost();
  const DomainId d = host->CreateDomain("n", 1, 64, std::nullopt).value();
  (void)d;
  const std::vector<MetricFamily> fs =
      HostMetrics(HostMetrics::ForHost(host.get())).Collect();
  for (const char* required :
       {"hvmm_build_info", "hvmm_frames", "hvmm_domains",
        "hvmm_flush_requests_total", "hvmm_flush_batches_total",
        "hvmm_flush_batch_size", "hvmm_flush_duration_seconds",
        "hvmm_ipis_sent_total", "hvmm_forced_ipi_total",
        "hvmm_grace_periods_total", "hvmm_grace_period_duration_seconds",
        "hvmm_deferred_frees_pending", "hvmm_walks_total",
        "hvmm_tlb_lookups_total", "hvmm_type_changes_total",
        "hvmm_safety_violations_total"}) {
    EXPECT_NE(Find(fs, required), nullptr) << required;
  }
  for (const MetricFamily& f : fs) {
    EXPECT_EQ(f.name.rfind("hvmm_", 0), 0u) << f.name;
    EXPECT_FALSE(f.help.empty()) << f.name;
    const bool total = f.name.size() > 6 &&
                       f.name.compare(f.name.size() - 6, 6, "_total") == 0;
    EXPECT_EQ(total, f.type == MetricType::Counter) << f.name;
    for (const ClientMetric& m : f.metric) {
      for (const auto& l : m.label) {
        EXPECT_NE(l.name, "mfn") << f.name << ": no per-frame labels";
        EXPECT_NE(l.name, "frame") << f.name << ": no per-frame labels";
      }
    }
  }
  EXPECT_TRUE(host->Shutdown().ok());
}

TEST(HostMetricsTest, ValuesFollowTheEngine) {
  auto host = MakeHost();
  HostMetrics metrics(HostMetrics::ForHost(host.get()));
  const DomainId d = host->CreateDomain("v", 1, 256, Policy::kIpi).value();
  ASSERT_TRUE(host->mm().MapRange(d, kVa, 8, true).ok());
  // A table-to-table retype: a fresh frame pinned as an L1, unpinned, and
  // pinned as an L2.
  const Mfn f = host->mm().IncreaseReservation(d, 1).value()[0];
  ASSERT_TRUE(host->mm().PinTable(d, f, Level::kL1).ok());
  ASSERT_TRUE(host->mm().UnpinTable(d, f).ok());
  ASSERT_TRUE(host->mm().PinTable(d, f, Level::kL2).ok());
  ASSERT_TRUE(host->mm().UnmapRange(d, kVa, 8).ok());

  std::vector<MetricFamily> fs = metrics.Collect();
  const std::string id = std::to_string(d.value());
  EXPECT_EQ(Value(fs, "hvmm_domains"), 1);
  EXPECT_EQ(Value(fs, "hvmm_deferred_frees_pending", {{"domain", id}}), 0);
  EXPECT_EQ(Value(fs, "hvmm_type_changes_total",
                  {{"from", "none"}, {"to", "writable"}}),
            8);
  EXPECT_EQ(
      Value(fs, "hvmm_type_changes_total", {{"from", "l1"}, {"to", "l2"}}), 1);
  // The root (l4) at create; l3, l2, l1 for the range; the pinned frame.
  EXPECT_EQ(
      Value(fs, "hvmm_type_changes_total", {{"from", "none"}, {"to", "l4"}}),
      1);
  EXPECT_EQ(
      Value(fs, "hvmm_type_changes_total", {{"from", "none"}, {"to", "l1"}}),
      2);
  EXPECT_EQ(Value(fs, "hvmm_flush_requests_total",
                  {{"backend", "assisted"}, {"reason", "unmap"}}),
            0);
  EXPECT_EQ(Value(fs, "hvmm_safety_violations_total",
                  {{"kind", "existence"}, {"policy", "assisted+rcu"}}),
            0);
  const double owned = Value(fs, "hvmm_frames", {{"state", "writable"}}) +
                       Value(fs, "hvmm_frames", {{"state", "page_table"}}) +
                       Value(fs, "hvmm_frames", {{"state", "untyped"}});
  EXPECT_EQ(owned, host->mm().GetDomainInfo(d).value().tot_pages);
  EXPECT_EQ(Value(fs, "hvmm_frames", {{"state", "free"}}) + owned +
                Value(fs, "hvmm_frames", {{"state", "pending_free"}}),
            4096);

  // A workload runs on the pCPUs (so the domain's dirty mask is not
  // empty); then an explicit flush is counted by its reason.
  ASSERT_TRUE(host->mm().MapRange(d, kVa, 4, true).ok());
  WorkloadConfig w;
  w.ranges = {{kVa, 4}};
  ASSERT_TRUE(host->StartWorkload(d, w).ok());
  // Polls for progress (not a timing assumption): the bound is only a
  // backstop for a broken host.
  const absl::Time give_up = absl::Now() + absl::Seconds(120);
  while (host->Stats().guests.walks == 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  fs = metrics.Collect();
  const double explicit_before = Value(
      fs, "hvmm_flush_requests_total", {{"backend", "ipi"}, {"reason", "explicit"}});
  EXPECT_GE(Value(fs, "hvmm_walks_total"), 1);
  EXPECT_GE(Value(fs, "hvmm_tlb_lookups_total", {{"result", "miss"}}), 1);
  // Explicit flushes while the workload runs: each one that found pCPUs
  // in the domain's dirty mask sent a request (one with none sends
  // nothing). The count must match exactly.
  std::shared_ptr<Domain> dom = host->mm().FindDomain(d);
  int sent = 0;
  while (sent < 3 && absl::Now() < give_up) {
    if (host->engine()
            .policy()
            .ExplicitFlush(*dom, FlushScope::Domain(d))
            .pcpus_targeted > 0) {
      ++sent;
    } else {
      std::this_thread::yield();  // Until a pCPU runs the workload again.
    }
  }
  ASSERT_TRUE(host->StopWorkload(d).ok());
  ASSERT_EQ(sent, 3) << "the running workload never dirtied a pCPU";
  fs = metrics.Collect();
  EXPECT_EQ(Value(fs, "hvmm_flush_requests_total",
                  {{"backend", "ipi"}, {"reason", "explicit"}}),
            explicit_before + sent);
  EXPECT_GE(Value(fs, "hvmm_flush_batches_total", {{"backend", "ipi"}}), 1);
  const ClientMetric* sizes =
      Metric(fs, "hvmm_flush_batch_size", {{"backend", "ipi"}});
  ASSERT_NE(sizes, nullptr);
  EXPECT_EQ(sizes->histogram.sample_count,
            Value(fs, "hvmm_flush_batches_total", {{"backend", "ipi"}}));

  // Destroyed: its series are gone.
  ASSERT_TRUE(host->DestroyDomain(d).ok());
  fs = metrics.Collect();
  EXPECT_EQ(Value(fs, "hvmm_domains"), 0);
  EXPECT_EQ(Metric(fs, "hvmm_deferred_frees_pending", {{"domain", id}}),
            nullptr);
  EXPECT_TRUE(host->Shutdown().ok());
}

TEST(HostMetricsTest, HistogramsAreCumulative) {
  Log2Histogram h;
  h.Record(500);      // ~0.5 us: folds into the first bucket (<= 1.023 us).
  h.Record(3000);     // 3 us: the 4.095 us bucket.
  h.Record(1000000);  // 1 ms: the 1.048575 ms bucket.
  h.Record(uint64_t{1} << 40);  // ~18 min: only +Inf.
  const ClientMetric::Histogram p =
      ToPrometheusHistogram(h.Read(), 1e9, 9, 35, 2);
  ASSERT_EQ(p.bucket.size(), 15u);
  EXPECT_DOUBLE_EQ(p.bucket[0].upper_bound, 1023 / 1e9);
  EXPECT_EQ(p.bucket[0].cumulative_count, 1u);
  EXPECT_DOUBLE_EQ(p.bucket[1].upper_bound, 4095 / 1e9);
  EXPECT_EQ(p.bucket[1].cumulative_count, 2u);
  EXPECT_EQ(p.bucket[5].cumulative_count, 3u);  // le 1.048575 ms.
  EXPECT_EQ(p.bucket[13].cumulative_count, 3u);
  EXPECT_TRUE(std::isinf(p.bucket[14].upper_bound));
  EXPECT_EQ(p.bucket[14].cumulative_count, 4u);
  EXPECT_EQ(p.sample_count, 4u);
  EXPECT_DOUBLE_EQ(p.sample_sum,
                   (500 + 3000 + 1000000 + (uint64_t{1} << 40)) / 1e9);
  for (size_t i = 1; i < p.bucket.size(); ++i) {
    EXPECT_GE(p.bucket[i].cumulative_count, p.bucket[i - 1].cumulative_count);
    EXPECT_GT(p.bucket[i].upper_bound, p.bucket[i - 1].upper_bound);
  }
}

}  // namespace
}  // namespace hvmm
