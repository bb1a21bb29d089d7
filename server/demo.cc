#include "server/demo.h"

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/log2_histogram.h"
#include "base/mutex.h"
#include "guest/churn.h"

namespace hvmm {
namespace {

// The churn's domains live on the daemon's Host, like any client's.
class HostChurn : public ChurnHost {
 public:
  explicit HostChurn(Host* host) : host_(host) {}
  absl::StatusOr<DomainId> CreateDomain(const std::string& name, uint32_t vcpus,
                                        uint64_t max_pages,
                                        Policy policy) override {
    return host_->CreateDomain(name, vcpus, max_pages, policy);
  }
  absl::Status StartGuests(
      DomainId domain, const WorkloadConfig& config,
      uint64_t /*seed: the Host seeds workloads*/) override {
    return host_->StartWorkload(domain, config);
  }
  // A client may have destroyed the domain already (the demo's domains
  // are everyone's): then it is gone, as asked.
  absl::Status DestroyDomain(DomainId domain) override {
    absl::Status s = host_->DestroyDomain(domain).status();
    return s.code() == absl::StatusCode::kNotFound ? absl::OkStatus() : s;
  }
  absl::Status SetPolicy(DomainId domain, Policy policy) override {
    return host_->SetFlushPolicy(domain, policy).status();
  }
  absl::StatusOr<std::shared_ptr<TranslateJob>> StartTranslate(
      DomainId domain, VcpuId vcpu, Vaddr va, Access access) override {
    return host_->StartTranslate(domain, vcpu, va, access);
  }

 private:
  Host* const host_;
};

// Domain names allow no '+': "demo-rcu-0_1".
const char* ShortName(Policy p) {
  switch (p) {
    case Policy::kIpi:
      return "ipi";
    case Policy::kAssistedUnsafe:
      return "unsafe";
    case Policy::kAssistedForceIpi:
      return "forceipi";
    case Policy::kAssistedRcu:
      return "rcu";
  }
  return "?";
}

// "950", "10.4k", "1.21M".
std::string Count(double v) {
  if (v >= 1e6) return absl::StrFormat("%.2fM", v / 1e6);
  if (v >= 1e4) return absl::StrFormat("%.1fk", v / 1e3);
  if (v >= 1e3) return absl::StrFormat("%.2fk", v / 1e3);
  return absl::StrFormat("%.0f", v);
}

// "-", "512 ns", "16 us", "4.2 ms", "1.07 s".
std::string Latency(uint64_t ns) {
  if (ns == 0) return "-";
  if (ns < 10'000) return absl::StrCat(ns, " ns");
  if (ns < 1'000'000) return absl::StrFormat("%.0f us", ns / 1e3);
  if (ns < 1'000'000'000) return absl::StrFormat("%.1f ms", ns / 1e6);
  return absl::StrFormat("%.2f s", ns / 1e9);
}

std::string Label(Policy p) {
  return p == Policy::kAssistedUnsafe ? "assisted-unsafe (the bug)"
                                      : PolicyName(p);
}

// Everything a phase line or row is a difference of.
struct Sample {
  absl::Time at;
  uint64_t walks = 0, updates = 0, ipi_flushes = 0, assisted_flushes = 0,
           ipis = 0, forced = 0, grace = 0, existence = 0, coherence = 0;
  Log2Histogram::Snapshot grace_ns, flush_ns;
};

Sample Take(Host& host, const Churn& churn, Policy policy) {
  Sample s;
  s.at = absl::Now();
  FlushEngine& engine = host.engine();
  s.walks = host.GuestStats().walks;
  s.updates = churn.stats().ops.load(std::memory_order_relaxed);
  const FlushPolicyStats p = engine.policy().stats();
  s.ipi_flushes = p.ipi_flushes;
  s.assisted_flushes = p.assisted_flushes;
  s.forced = p.forced_ipis;
  s.ipis = engine.ipi_backend().ipis_sent();
  s.grace = engine.grace().completed();
  s.grace_ns = engine.grace().Latencies();
  s.flush_ns = engine.ipi_batcher().call_durations_ns();
  s.flush_ns.Add(engine.assisted_batcher().call_durations_ns());
  s.existence = host.Violations(ViolationKind::kExistence, policy);
  s.coherence = host.Violations(ViolationKind::kCoherence, policy);
  return s;
}

}  // namespace

absl::Status Demo::Run(const std::atomic<bool>& stop,
                       std::vector<DemoRow>* rows) {
  for (Policy p : options_.policies) {
    if (stop.load()) break;
    std::fprintf(options_.out,
                 "\n== %s: %d domains x %u vCPUs, %d updaters, "
                 "%.0f s ==\n",
                 Label(p).c_str(), options_.domains, options_.vcpus,
                 options_.updaters, absl::ToDoubleSeconds(options_.per_policy));
    std::fflush(options_.out);
    absl::StatusOr<DemoRow> row = RunPhase(p, stop);
    if (!row.ok()) return row.status();
    // A phase Ctrl-C ended before its first second says nothing.
    if (row->cut_short && row->seconds < 1.0) break;
    rows->push_back(*row);
  }
  return absl::OkStatus();
}

absl::StatusOr<DemoRow> Demo::RunPhase(Policy policy,
                                       const std::atomic<bool>& stop) {
  HostChurn churn_host(host_);
  ChurnOptions o;
  o.policies = {policy};
  o.domains = options_.domains;
  o.vcpus = options_.vcpus;
  o.window_pages = options_.window_pages;
  o.change_policies = false;  // Each phase is one policy.
  o.name_prefix = absl::StrCat("demo-", ShortName(policy), "-");
  Churn churn(&churn_host, &host_->mm(), &host_->engine().policy(), o);
  if (absl::Status s = churn.CreateDomains(); !s.ok()) {
    (void)churn.DestroyDomains();
    return absl::Status(s.code(), absl::StrCat("setting up the ",
                                               PolicyName(policy), " phase: ",
                                               s.message()));
  }

  const Sample start = Take(*host_, churn, policy);
  std::atomic<bool> updaters_stop{false};
  std::atomic<bool> updater_failed{false};
  Mutex failure_mu;
  absl::Status failure;  // The first failed operation's.
  std::vector<std::thread> updaters;
  for (int u = 0; u < options_.updaters; ++u) {
    std::vector<int> mine;
    for (int i = u; i < churn.domains(); i += options_.updaters) {
      mine.push_back(i);
    }
    if (mine.empty()) continue;
    updaters.emplace_back([&, mine, u] {
      std::mt19937_64 rng(1000 + u);
      while (!updaters_stop.load(std::memory_order_relaxed)) {
        if (absl::Status s = churn.Step(mine, rng); !s.ok()) {
          {
            MutexLock lock(&failure_mu);
            if (failure.ok()) failure = s;
          }
          updater_failed.store(true);
          return;
        }
      }
    });
  }

  DemoRow row;
  row.policy = policy;
  const absl::Time end = start.at + options_.per_policy;
  const absl::Time hard_end =
      end + (policy == Policy::kAssistedUnsafe ? options_.unsafe_extension
                                               : absl::ZeroDuration());
  Sample last = start;
  absl::Time next_line = start.at + absl::Seconds(1);
  uint64_t pending_peak = 0;
  while (true) {
    absl::SleepFor(absl::Milliseconds(100));
    const uint64_t pending =
        host_->engine().deferred_retirer().pending_frames();
    pending_peak = std::max(pending_peak, pending);
    const absl::Time now = absl::Now();
    if (stop.load()) {
      row.cut_short = true;
      break;
    }
    if (updater_failed.load()) break;
    if (now >= next_line) {
      const Sample s = Take(*host_, churn, policy);
      const double dt = absl::ToDoubleSeconds(s.at - last.at);
      const Log2Histogram::Snapshot gp = s.grace_ns.Minus(last.grace_ns);
      std::fprintf(
          options_.out,
          "%4.0fs %-18s walks %7s/s  updates %6s/s  flushes ipi %6s assisted "
          "%6s  IPIs %6s  GPs %5s (p99 %7s)  pending %5s  violations %s\n",
          absl::ToDoubleSeconds(s.at - start.at), PolicyName(policy),
          Count((s.walks - last.walks) / dt).c_str(),
          Count((s.updates - last.updates) / dt).c_str(),
          Count(s.ipi_flushes - last.ipi_flushes).c_str(),
          Count(s.assisted_flushes - last.assisted_flushes).c_str(),
          Count(s.ipis - last.ipis).c_str(),
          Count(s.grace - last.grace).c_str(),
          Latency(gp.Quantile(0.99)).c_str(), Count(pending).c_str(),
          Count(s.existence + s.coherence - start.existence - start.coherence)
              .c_str());
      std::fflush(options_.out);
      last = s;
      next_line += absl::Seconds(1);
    }
    if (now >= hard_end) break;
    if (now >= end) {
      const Sample s = Take(*host_, churn, policy);
      if (s.existence + s.coherence > start.existence + start.coherence) break;
      row.ran_on = true;  // Unsafe, and the bug has not shown yet.
    }
  }
  // The phase's figures end here, before the updaters are joined.
  const Sample finish = Take(*host_, churn, policy);
  updaters_stop.store(true);
  for (std::thread& t : updaters) t.join();
  absl::Status destroyed = churn.DestroyDomains();

  row.seconds = absl::ToDoubleSeconds(finish.at - start.at);
  row.updates = finish.updates - start.updates;
  row.updates_per_second = row.seconds > 0 ? row.updates / row.seconds : 0;
  row.flush_p99_ns = finish.flush_ns.Minus(start.flush_ns).Quantile(0.99);
  row.ipis_sent = finish.ipis - start.ipis;
  row.forced_ipis = finish.forced - start.forced;
  row.grace_periods = finish.grace - start.grace;
  row.pending_peak = pending_peak;
  row.existence = finish.existence - start.existence;
  row.coherence = finish.coherence - start.coherence;
  {
    MutexLock lock(&failure_mu);
    if (!failure.ok()) {
      // Most likely a client changed the demo's domains under it (they
      // are the daemon's like any other): the phase ends, its figures
      // stand, the next phase starts on fresh domains.
      row.aborted = std::string(failure.message());
      std::fprintf(options_.out, "phase ended early: a churn operation "
                   "failed: %s\n", row.aborted.c_str());
    }
  }
  if (!destroyed.ok()) {
    return absl::Status(destroyed.code(),
                        absl::StrCat("ending the ", PolicyName(policy),
                                     " phase: ", destroyed.message()));
  }
  return row;
}

void Demo::PrintSummary(std::FILE* out, const std::vector<DemoRow>& rows) {
  if (rows.empty()) return;
  std::fprintf(out, "\n%-26s %10s %10s %10s %11s %13s %12s %10s\n", "policy",
               "updates/s", "flush p99", "IPIs sent", "forced IPIs",
               "grace periods", "pending peak", "violations");
  for (const DemoRow& r : rows) {
    std::string note;
    if (r.ran_on && r.violations() > 0) {
      note = absl::StrFormat("  (ran %.0f s: until the bug showed)", r.seconds);
    } else if (r.ran_on && !r.cut_short) {
      note = absl::StrFormat("  (ran %.0f s: the bug did not show)", r.seconds);
    }
    if (r.cut_short) note += "  (cut short)";
    if (!r.aborted.empty()) note += "  (ended early: " + r.aborted + ")";
    std::fprintf(out, "%-26s %10s %10s %10s %11s %13s %12s %10s%s\n",
                 Label(r.policy).c_str(), Count(r.updates_per_second).c_str(),
                 Latency(r.flush_p99_ns).c_str(), Count(r.ipis_sent).c_str(),
                 Count(r.forced_ipis).c_str(), Count(r.grace_periods).c_str(),
                 Count(r.pending_peak).c_str(),
                 absl::StrCat(r.violations()).c_str(), note.c_str());
  }
  std::fprintf(out, "(p99s are upper bounds, within 2x: log2 histograms.)\n");
  // One sentence per promise.
  struct Promise {
    const char* what;
    uint64_t DemoRow::*count;
  };
  std::fprintf(out, "\n");
  for (const Promise& p :
       {Promise{"Coherence (no CPU uses a translation after the change that "
                "removed it returned)",
                &DemoRow::coherence},
        Promise{"Existence (no walker reads a table after it was freed or "
                "retyped)",
                &DemoRow::existence}}) {
    std::vector<std::string> kept, broken;
    for (const DemoRow& r : rows) {
      if (r.*(p.count) == 0) {
        kept.push_back(PolicyName(r.policy));
      } else {
        broken.push_back(absl::StrCat(PolicyName(r.policy), " (", r.*(p.count),
                                      " violations)"));
      }
    }
    std::fprintf(out, "%s: kept by %s", p.what,
                 kept.empty() ? "none" : absl::StrJoin(kept, ", ").c_str());
    if (!broken.empty()) {
      std::fprintf(out, "; broken by %s", absl::StrJoin(broken, ", ").c_str());
    }
    std::fprintf(out, ".\n");
  }
  const DemoRow* rcu = nullptr;
  const DemoRow* force = nullptr;
  const DemoRow* unsafe = nullptr;
  for (const DemoRow& r : rows) {
    if (r.policy == Policy::kAssistedRcu) rcu = &r;
    if (r.policy == Policy::kAssistedForceIpi) force = &r;
    if (r.policy == Policy::kAssistedUnsafe) unsafe = &r;
  }
  if (rcu != nullptr && rcu->violations() == 0 &&
      (force != nullptr || unsafe != nullptr)) {
    std::string versus;
    if (force != nullptr && force->updates_per_second > 0) {
      versus =
          absl::StrFormat("%.2fx the updates of assisted+force-ipi",
                          rcu->updates_per_second / force->updates_per_second);
    }
    if (unsafe != nullptr && unsafe->updates_per_second > 0) {
      absl::StrAppend(&versus, versus.empty() ? "" : " and ",
                      absl::StrFormat("%.2fx those of assisted-unsafe",
                                      rcu->updates_per_second /
                                          unsafe->updates_per_second));
    }
    std::fprintf(out, "assisted+rcu kept both promises at %s.\n",
                 versus.c_str());
  }
  std::fflush(out);
}

bool Demo::SafePoliciesKeptPromises(const std::vector<DemoRow>& rows) {
  return std::none_of(rows.begin(), rows.end(), [](const DemoRow& r) {
    return r.policy != Policy::kAssistedUnsafe && r.violations() > 0;
  });
}

}  // namespace hvmm
