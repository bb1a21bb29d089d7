// hvmm_torture: the safety oracle under stress (rcutorture for hvmm).
//
//   bazel run //tests/torture:hvmm_torture -- --policy=assisted+rcu --seconds=5
//
// pCPUs run guest vCPUs (TLB uses and lockless walks, with the oracle's
// generation checks) while updater threads churn the domains (see
// guest/churn.h): map and unmap ranges (tables are unhooked and retired),
// retype former tables to writable, allocate and release frames, destroy
// and recreate domains. At the end every domain is destroyed and the pool
// must be whole.
//
// The last line is exactly "hvmm-torture: SUCCESS" (exit 0) or
// "hvmm-torture: FAILURE (<reason>)" (exit 1).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/cpu_mask.h"
#include "flush/flush_policy.h"
#include "tests/torture/torture_rig.h"

ABSL_FLAG(std::string, policy, "assisted+rcu",
          "ipi | assisted-unsafe | assisted+force-ipi | assisted+rcu");
ABSL_FLAG(double, seconds, 5, "how long to run");
ABSL_FLAG(int, pcpus, 4, "simulated pCPUs (may exceed host cores)");
ABSL_FLAG(int, domains, 3, "domains");
ABSL_FLAG(int, vcpus, 2, "vCPUs per domain");
ABSL_FLAG(uint64_t, seed, 1, "random seed");
ABSL_FLAG(uint64_t, walk_delay_ns, 0,
          "failpoint: spin this long between a walker's table reads");
ABSL_FLAG(uint64_t, translate_delay_ns, 1000000,
          "failpoint: a Translate walk spins this long on reaching its L1, "
          "which the churn's translate unmaps under it at once");
ABSL_FLAG(bool, allow_unsafe, false, "allow --policy=assisted-unsafe");
ABSL_FLAG(std::string, domain_policies, "",
          "per-domain policy overrides, comma-separated, cycled over the "
          "domains (empty: every domain runs --policy)");
ABSL_FLAG(int, retype_lag, 2,
          "a released table is retyped to writable this many retype "
          "operations of its domain later (0: at once)");
ABSL_FLAG(int, updaters, 2, "updater threads (each owns some domains)");
ABSL_FLAG(uint64_t, frames, 1 << 16, "host frames");
ABSL_FLAG(uint64_t, window_pages, 2048,
          "pages of each domain's address window");
ABSL_FLAG(uint64_t, hypercall_ns, 2000, "assisted flush hypercall latency");
ABSL_FLAG(uint64_t, until_violations, 0,
          "keep running past --seconds until the oracle has counted this "
          "many violations, for at most --max-seconds: runs that must show "
          "the bug keep going on a loaded machine until they do");
ABSL_FLAG(double, max_seconds, 120, "the limit of --until-violations");
ABSL_FLAG(uint32_t, tlb_clock_start, 1,
          "the TLB clock's first time (e.g. 4294960000: it wraps during the "
          "run)");

namespace hvmm {
namespace {

[[noreturn]] void Fail(const std::string& reason) {
  std::printf("hvmm-torture: FAILURE (%s)\n", reason.c_str());
  std::fflush(stdout);
  std::exit(1);
}

TortureOptions OptionsFromFlags() {
  TortureOptions o;
  absl::StatusOr<Policy> policy = ParsePolicy(absl::GetFlag(FLAGS_policy));
  if (!policy.ok()) Fail(std::string(policy.status().message()));
  o.policy = *policy;
  for (absl::string_view name :
       absl::StrSplit(absl::GetFlag(FLAGS_domain_policies), ',',
                      absl::SkipEmpty())) {
    absl::StatusOr<Policy> p = ParsePolicy(name);
    if (!p.ok()) Fail(std::string(p.status().message()));
    o.domain_policies.push_back(*p);
  }
  o.allow_unsafe = absl::GetFlag(FLAGS_allow_unsafe);
  o.pcpus = absl::GetFlag(FLAGS_pcpus);
  if (o.pcpus < 1 || o.pcpus > kMaxPcpus) {
    Fail(absl::StrCat("--pcpus must be in [1, ", kMaxPcpus, "]"));
  }
  o.domains = absl::GetFlag(FLAGS_domains);
  if (o.domains < 1 || absl::GetFlag(FLAGS_vcpus) < 1 ||
      absl::GetFlag(FLAGS_window_pages) < 16) {
    Fail("--domains, --vcpus must be >= 1 and --window-pages >= 16");
  }
  o.vcpus = static_cast<uint32_t>(absl::GetFlag(FLAGS_vcpus));
  o.frames = absl::GetFlag(FLAGS_frames);
  o.window_pages = absl::GetFlag(FLAGS_window_pages);
  o.walk_delay_ns = absl::GetFlag(FLAGS_walk_delay_ns);
  o.translate_delay_ns = absl::GetFlag(FLAGS_translate_delay_ns);
  o.hypercall_ns = absl::GetFlag(FLAGS_hypercall_ns);
  o.retype_lag = std::max(0, absl::GetFlag(FLAGS_retype_lag));
  o.seed = absl::GetFlag(FLAGS_seed);
  o.tlb_clock_start = TlbStamp(absl::GetFlag(FLAGS_tlb_clock_start));
  if (o.tlb_clock_start < TlbStamp(1)) Fail("--tlb-clock-start must be >= 1");
  return o;
}

void Report(TortureRig& rig, const TortureOptions& o, double elapsed) {
  const GuestCpuStats& g = rig.guest_totals();
  const FlushPolicyStats f = rig.engine().policy().stats();
  GracePeriods& grace = rig.engine().grace();
  DeferredRetirer& deferred = rig.engine().deferred_retirer();
  const UpdaterStats& u = rig.stats();
  const uint64_t leaked = rig.LeakedFrames();
  std::printf("hvmm-torture: policy=%s pcpus=%d domains=%d seconds=%.1f "
              "walk-delay-ns=%lu retype-lag=%d\n",
              rig.PolicyLabel().c_str(), o.pcpus, o.domains, elapsed,
              (unsigned long)o.walk_delay_ns, o.retype_lag);
  std::printf(
      "walks: %lu (from the psc %lu, translate %lu)  tlb hits: %lu  "
      "tlb misses: %lu  faults: %lu  vcpu switches: %lu\n",
      (unsigned long)g.walks, (unsigned long)g.psc_walks,
      (unsigned long)g.translate_walks, (unsigned long)g.tlb_hits,
      (unsigned long)g.tlb_misses, (unsigned long)g.faults,
      (unsigned long)g.vcpu_switches);
  std::printf("flushes: ipi %lu  assisted %lu  ipis sent %lu  forced-ipi %lu  "
              "queue-full fallbacks %lu  pressure reclaims %lu\n",
              (unsigned long)f.ipi_flushes, (unsigned long)f.assisted_flushes,
              (unsigned long)rig.engine().ipi_backend().ipis_sent(),
              (unsigned long)f.forced_ipis, (unsigned long)deferred.fallbacks(),
              (unsigned long)deferred.reclaims());
  std::printf("grace periods: %lu  p50 <= %lu ns  p99 <= %lu ns  "
              "(retype %lu, retirer %lu)  retypes already clear: %lu\n",
              (unsigned long)grace.completed(),
              (unsigned long)grace.LatencyQuantileNs(0.5),
              (unsigned long)grace.LatencyQuantileNs(0.99),
              (unsigned long)f.retype_grace_periods,
              (unsigned long)deferred.grace_periods(),
              (unsigned long)f.retype_polls_elapsed);
  std::string pipe = "pipe:";
  for (uint64_t n : g.pipe) absl::StrAppend(&pipe, " ", n);
  std::printf("%s\n", pipe.c_str());
  std::printf("violations: existence %lu  coherence %lu  (last: domain %u "
              "frame 0x%lx, policy %s)\n",
              (unsigned long)g.existence_violations,
              (unsigned long)g.coherence_violations, g.last_violation_domain,
              (unsigned long)g.last_violation_frame,
              rig.PolicyOf(g.last_violation_domain));
  std::printf("violations by policy: %s\n", rig.ViolationsByPolicy().c_str());
  std::printf("leaked frames: %lu  free-pool-empty events: %lu  "
              "tlb clock: period %u time %u\n",
              (unsigned long)leaked, (unsigned long)u.pool_empty.load(),
              rig.mm().clock().period(), rig.mm().clock().Now().value());
  std::printf("updater ops: %lu (%.0f/s)  former tables retyped: %lu  "
              "walk pointer re-reads: %lu\n",
              (unsigned long)u.ops.load(), u.ops.load() / elapsed,
              (unsigned long)u.retypes.load(), (unsigned long)g.walk_retries);
  std::string ops = "ops done/skipped:";
  std::string never;
  for (int i = 0; i < kOpCount; ++i) {
    absl::StrAppend(&ops, " ", OpName(static_cast<Op>(i)), " ",
                    u.done[i].load(), "/", u.skipped[i].load());
    if (u.done[i].load() == 0) absl::StrAppend(&never, never.empty() ? "" : ",",
                                                OpName(static_cast<Op>(i)));
  }
  std::printf("%s\n", ops.c_str());
  const uint64_t violations = g.existence_violations + g.coherence_violations;
  if (violations > 0) Fail(absl::StrCat(violations, " violations"));
  if (leaked > 0) Fail(absl::StrCat(leaked, " leaked frames"));
  if (u.pool_empty.load() > 0) Fail("the free pool ran empty");
  if (g.walks == 0 || u.ops.load() == 0) Fail("nothing ran");
  // The oracle sees only what runs: a long enough run must have driven
  // every kind of operation at least once.
  if (u.ops.load() >= 20000 && !never.empty()) {
    Fail(absl::StrCat("operations never completed: ", never));
  }
  std::printf("hvmm-torture: SUCCESS\n");
}

void Run() {
  const TortureOptions options = OptionsFromFlags();
  absl::StatusOr<std::unique_ptr<TortureRig>> rig = TortureRig::Create(options);
  if (!rig.ok()) Fail(std::string(rig.status().message()));

  const auto start = std::chrono::steady_clock::now();
  const auto deadline =
      start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                  std::chrono::duration<double>(absl::GetFlag(FLAGS_seconds)));
  const auto hard_deadline =
      start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                  std::chrono::duration<double>(std::max(
                      absl::GetFlag(FLAGS_seconds),
                      absl::GetFlag(FLAGS_max_seconds))));
  const uint64_t until_violations = absl::GetFlag(FLAGS_until_violations);
  auto keep_going = [&] {
    const auto now = std::chrono::steady_clock::now();
    if (now < deadline) return true;
    return until_violations != 0 && now < hard_deadline &&
           (*rig)->LiveViolations() < until_violations;
  };
  const int nupdaters = std::max(1, absl::GetFlag(FLAGS_updaters));
  std::vector<std::thread> updaters;
  for (int u = 0; u < nupdaters; ++u) {
    updaters.emplace_back([&, u] {
      std::vector<int> mine;  // Each updater owns every nupdaters-th domain.
      for (int i = u; i < options.domains; i += nupdaters) mine.push_back(i);
      if (mine.empty()) return;
      std::mt19937_64 rng(options.seed * 31 + u);
      while (keep_going()) {
        if (absl::Status s = (*rig)->Step(mine, rng); !s.ok()) {
          Fail(std::string(s.message()));
        }
      }
    });
  }
  for (auto& t : updaters) t.join();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  if (absl::Status s = (*rig)->Finish(); !s.ok()) {
    Fail(std::string(s.message()));
  }
  Report(**rig, options, elapsed);
}

}  // namespace
}  // namespace hvmm

int main(int argc, char** argv) {
  // Accept --walk-delay-ns as well as --walk_delay_ns: Abseil flag names are
  // identifiers, the documented spelling uses dashes.
  std::vector<std::string> args(argv, argv + argc);
  std::vector<char*> fixed;
  for (std::string& a : args) {
    if (a.rfind("--", 0) == 0) {
      const size_t end = std::min(a.find('='), a.size());
      std::replace(a.begin() + 2, a.begin() + end, '-', '_');
    }
    fixed.push_back(a.data());
  }
  absl::ParseCommandLine(static_cast<int>(fixed.size()), fixed.data());
  hvmm::Run();
  return 0;
}
