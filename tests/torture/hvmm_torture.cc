// hvmm_torture: the safety oracle under stress (rcutorture for hvmm).
//
//   bazel run //tests/torture:hvmm_torture -- --policy=assisted+rcu --seconds=5
//
// pCPUs run guest vCPUs (TLB uses and lockless walks, with the oracle's
// generation checks) while updater threads churn the domains: map and unmap
// ranges (tables are unhooked and retired), retype former tables to
// writable, allocate and release frames, destroy and recreate domains. At
// the end every domain is destroyed and the pool must be whole.
//
// The last line is exactly "hvmm-torture: SUCCESS" (exit 0) or
// "hvmm-torture: FAILURE (<reason>)" (exit 1).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "cpu/pcpu.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_split.h"
#include "base/mutex.h"
#include "flush/flush_backends.h"
#include "flush/flush_engine.h"
#include "flush/flush_policy.h"
#include "guest/guest_cpu.h"
#include "mm/memory_manager.h"
#include "mm/pte.h"

ABSL_FLAG(std::string, policy, "assisted+rcu",
          "ipi | assisted-unsafe | assisted+force-ipi | assisted+rcu");
ABSL_FLAG(double, seconds, 5, "how long to run");
ABSL_FLAG(int, pcpus, 4, "simulated pCPUs (may exceed host cores)");
ABSL_FLAG(int, domains, 3, "domains");
ABSL_FLAG(int, vcpus, 2, "vCPUs per domain");
ABSL_FLAG(uint64_t, seed, 1, "random seed");
ABSL_FLAG(uint64_t, walk_delay_ns, 0,
          "failpoint: spin this long between a walker's table reads");
ABSL_FLAG(bool, allow_unsafe, false, "allow --policy=assisted-unsafe");
ABSL_FLAG(int, updaters, 2, "updater threads (each owns some domains)");
ABSL_FLAG(uint64_t, frames, 1 << 16, "host frames");
ABSL_FLAG(uint64_t, window_pages, 2048,
          "pages of each domain's address window");
ABSL_FLAG(uint64_t, hypercall_ns, 2000, "assisted flush hypercall latency");
ABSL_FLAG(std::string, domain_policies, "",
          "per-domain policy overrides, comma-separated, cycled over the "
          "domains (empty: every domain runs --policy)");
ABSL_FLAG(int, retype_lag, 8,
          "a released table is retyped to writable this many retype "
          "operations of its domain later (0: at once)");

namespace hvmm {
namespace {

constexpr uint64_t kWindowBase = uint64_t{1} << 30;
constexpr uint64_t kRw = kPtePresent | kPteUser | kPteWritable;

void Fail(const std::string& reason) {
  std::printf("hvmm-torture: FAILURE (%s)\n", reason.c_str());
  std::fflush(stdout);
  std::exit(1);
}

void SpinHook(void* arg) { SpinFor(*static_cast<uint64_t*>(arg)); }

struct UpdaterStats {
  std::atomic<uint64_t> ops{0}, maps{0}, unmaps{0}, retypes{0}, allocs{0},
      recreates{0}, pool_empty{0};
};

class Torture {
 public:
  Torture(Policy policy, std::vector<Policy> domain_policies, int pcpus,
          uint64_t frames)
      : policy_(policy),
        domain_policies_(std::move(domain_policies)),
        mm_(MemoryManager::Create({frames, 0}).value()) {
    FlushEngine::Options options;
    options.policy = policy;
    options.allow_unsafe = absl::GetFlag(FLAGS_allow_unsafe);
    options.pcpus = pcpus;
    options.assisted = {absl::GetFlag(FLAGS_hypercall_ns), 100};
    options.deferred = {4096};
    absl::StatusOr<std::unique_ptr<FlushEngine>> engine =
        FlushEngine::Create(mm_.get(), options);
    if (!engine.ok()) Fail(std::string(engine.status().message()));
    engine_ = *std::move(engine);
    for (Policy p : domain_policies_) {
      absl::StatusOr<uint8_t> tag = engine_->policy().OverrideTag(p);
      if (!tag.ok()) Fail(std::string(tag.status().message()));
    }
  }

  void Run() {
    walk_delay_ns_ = absl::GetFlag(FLAGS_walk_delay_ns);
    retype_lag_ = absl::GetFlag(FLAGS_retype_lag);
    for (int i = 0; i < static_cast<int>(engine_->pcpus().size()); ++i) {
      guests_.push_back(std::make_unique<GuestCpu>(
          &mm_->frame_table(), &run_queue_,
          GuestCpu::Options{64, walk_delay_ns_ ? &SpinHook : nullptr,
                            &walk_delay_ns_,
                            &engine_->policy().release_stamps()}));
    }
    engine_->Start([this](int cpu) {
      GuestCpu* g = guests_[cpu].get();
      return [g](Pcpu& self) { return g->Step(self); };
    });
    // Domains after the pCPUs: creating them already flushes (by IPI under
    // some policies), which only running pCPUs can acknowledge.
    const int ndomains = absl::GetFlag(FLAGS_domains);
    slots_.resize(ndomains);
    for (int i = 0; i < ndomains; ++i) CreateSlot(i);

    const auto start = std::chrono::steady_clock::now();
    const auto deadline =
        start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                    std::chrono::duration<double>(absl::GetFlag(FLAGS_seconds)));
    std::vector<std::thread> updaters;
    const int nupdaters = std::max(1, absl::GetFlag(FLAGS_updaters));
    for (int u = 0; u < nupdaters; ++u) {
      updaters.emplace_back([this, u, nupdaters, deadline] {
        UpdaterLoop(u, nupdaters, deadline);
      });
    }
    for (auto& t : updaters) t.join();
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();

    // Tear down: every domain goes, then the pool must be whole.
    for (Slot& s : slots_) {
      run_queue_.RemoveDomain(s.id);
      if (!mm_->DestroyDomain(s.id).ok()) Fail("final destroy failed");
    }
    engine_->Stop();
    for (const auto& g : guests_) guest_totals_.Add(g->stats());
    guests_.clear();
    Report(elapsed);
  }

 private:
  struct Slot {
    DomainId id{0};
    Mfn scratch_l1{0};  // A pinned L1 outside the root: retype target slots.
    // Unhooked L1 tables, still owned, oldest first: each is retyped
    // --retype-lag retype operations after its release.
    std::deque<Mfn> released_l1s;
  };

  // Slot i's policy: its override, or the default.
  Policy SlotPolicy(int i) const {
    return domain_policies_.empty()
               ? policy_
               : domain_policies_[i % domain_policies_.size()];
  }

  void CreateSlot(int i) {
    static std::atomic<int> generation{0};
    const std::string name = absl::StrCat("t", i, "_", generation++);
    const uint64_t window = absl::GetFlag(FLAGS_window_pages);
    const uint8_t tag =
        domain_policies_.empty()
            ? 0
            : engine_->policy().OverrideTag(SlotPolicy(i)).value();
    const DomainId id =
        mm_->CreateDomain({name, static_cast<uint32_t>(absl::GetFlag(FLAGS_vcpus)),
                           window * 2 + 64, tag})
            .value();
    {
      MutexLock lock(&policies_mu_);
      domain_policy_[id.value()] = SlotPolicy(i);
    }
    const Mfn scratch = mm_->IncreaseReservation(id, 1).value()[0];
    if (!mm_->PinTable(id, scratch, Level::kL1).ok()) Fail("scratch pin");
    (void)mm_->MapRange(id, Vaddr(kWindowBase), window / 2, true);
    slots_[i] = Slot{id, scratch, {}};
    WorkloadConfig w;
    w.ranges = {{Vaddr(kWindowBase), window}};
    run_queue_.AddDomain(mm_->FindDomain(id), w,
                         absl::GetFlag(FLAGS_seed) * 7919 + generation);
  }

  void CountPoolEmpty(const absl::Status& s) {
    if (s.code() == absl::StatusCode::kResourceExhausted &&
        s.message().find("pool") != std::string::npos) {
      stats_.pool_empty.fetch_add(1);
    }
  }

  // Unhooks the L1 table under `va` from its L2 (it stays owned, and its
  // orphaned data frames are released), queues it, and retypes the oldest
  // queued table once more than --retype-lag are queued: it is mapped
  // writable through the scratch L1, so it leaves the page-table type (the
  // retype the existence promise must gate), then unmapped and released.
  void Retype(Slot& slot, Vaddr va) {
    absl::StatusOr<WalkResult> w =
        mm_->Walk(slot.id, VcpuId(0), va, Access::kRead);
    if (w.ok() && w->tables_read == 4) {
      const Mfn l2 = w->tables[2], l1 = w->tables[3];
      std::vector<Mfn> data;
      for (uint32_t i = 0; i < kEntriesPerTable; ++i) {
        const uint64_t e = mm_->frame_table().entries(l1)[i].load();
        if (PtePresent(e)) data.push_back(PteMfn(e));
      }
      if (mm_->MmuUpdate(slot.id, {{l2, va.TableIndex(Level::kL2), 0}}).ok()) {
        std::sort(data.begin(), data.end());
        data.erase(std::unique(data.begin(), data.end()), data.end());
        (void)mm_->DecreaseReservation(slot.id, data);
        slot.released_l1s.push_back(l1);
      }
    }
    if (slot.released_l1s.size() <= static_cast<size_t>(retype_lag_)) return;
    const Mfn old = slot.released_l1s.front();
    slot.released_l1s.pop_front();
    if (mm_->MmuUpdate(slot.id, {{slot.scratch_l1, 0, MakePte(old, kRw)}}).ok()) {
      stats_.retypes.fetch_add(1);
      (void)mm_->MmuUpdate(slot.id, {{slot.scratch_l1, 0, 0}});
    }
    (void)mm_->DecreaseReservation(slot.id, {old});
  }

  void UpdaterLoop(int u, int nupdaters,
                   std::chrono::steady_clock::time_point deadline) {
    std::mt19937_64 rng(absl::GetFlag(FLAGS_seed) * 31 + u);
    const uint64_t window = absl::GetFlag(FLAGS_window_pages);
    std::vector<int> mine;
    for (int i = u; i < static_cast<int>(slots_.size()); i += nupdaters) {
      mine.push_back(i);
    }
    if (mine.empty()) return;
    while (std::chrono::steady_clock::now() < deadline) {
      const int i = mine[rng() % mine.size()];
      Slot& slot = slots_[i];
      const Vaddr va(kWindowBase + (rng() % window) * kPageSize);
      const uint64_t room = window - (va.value() - kWindowBase) / kPageSize;
      const int dice = static_cast<int>(rng() % 100);
      if (dice < 45) {
        absl::Status s = mm_->MapRange(slot.id, va, std::min<uint64_t>(room, 1 + rng() % 32),
                                       rng() % 4 != 0).status();
        CountPoolEmpty(s);
        stats_.maps.fetch_add(1);
      } else if (dice < 85) {
        (void)mm_->UnmapRange(slot.id, va, std::min<uint64_t>(room, 1 + rng() % 96));
        stats_.unmaps.fetch_add(1);
      } else if (dice < 95) {
        Retype(slot, va);
      } else if (dice < 99) {
        absl::StatusOr<std::vector<Mfn>> f =
            mm_->IncreaseReservation(slot.id, 1 + rng() % 4);
        CountPoolEmpty(f.status());
        if (f.ok()) (void)mm_->DecreaseReservation(slot.id, *f);
        stats_.allocs.fetch_add(1);
      } else {
        run_queue_.RemoveDomain(slot.id);
        if (!mm_->DestroyDomain(slot.id).ok()) Fail("destroy failed");
        CreateSlot(i);
        stats_.recreates.fetch_add(1);
      }
      stats_.ops.fetch_add(1);
    }
  }

  void Report(double elapsed) {
    const GuestCpuStats& g = guest_totals_;
    const FlushPolicyStats f = engine_->policy().stats();
    GracePeriods& grace = engine_->grace();
    DeferredRetirer& deferred = engine_->deferred_retirer();
    const uint64_t total = mm_->frame_table().frame_count();
    const uint64_t free_frames = mm_->allocator().free_frames();
    const uint64_t pending = deferred.pending_frames();
    const uint64_t leaked = total - free_frames - pending;
    std::printf("hvmm-torture: policy=%s pcpus=%zu domains=%zu seconds=%.1f "
                "walk-delay-ns=%lu retype-lag=%d\n",
                PolicyLabel().c_str(), engine_->pcpus().size(), slots_.size(),
                elapsed,
                static_cast<unsigned long>(walk_delay_ns_), retype_lag_);
    std::printf("walks: %lu  tlb hits: %lu  tlb misses: %lu  faults: %lu  "
                "vcpu switches: %lu\n",
                (unsigned long)g.walks, (unsigned long)g.tlb_hits,
                (unsigned long)g.tlb_misses, (unsigned long)g.faults,
                (unsigned long)g.vcpu_switches);
    std::printf("flushes: ipi %lu  assisted %lu  ipis sent %lu  forced-ipi %lu  "
                "queue-full fallbacks %lu\n",
                (unsigned long)f.ipi_flushes, (unsigned long)f.assisted_flushes,
                (unsigned long)engine_->ipi_backend().ipis_sent(),
                (unsigned long)f.forced_ipis, (unsigned long)deferred.fallbacks());
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
                ViolationPolicy(g.last_violation_domain));
    std::printf("leaked frames: %lu  free-pool-empty events: %lu\n",
                (unsigned long)leaked, (unsigned long)stats_.pool_empty.load());
    std::printf("updater ops: %lu (%.0f/s): maps %lu unmaps %lu retypes %lu "
                "allocs %lu recreates %lu\n",
                (unsigned long)stats_.ops.load(), stats_.ops.load() / elapsed,
                (unsigned long)stats_.maps.load(),
                (unsigned long)stats_.unmaps.load(),
                (unsigned long)stats_.retypes.load(),
                (unsigned long)stats_.allocs.load(),
                (unsigned long)stats_.recreates.load());
    const uint64_t violations = g.existence_violations + g.coherence_violations;
    if (violations > 0) Fail(absl::StrCat(violations, " violations"));
    if (leaked > 0) Fail(absl::StrCat(leaked, " leaked frames"));
    if (stats_.pool_empty.load() > 0) Fail("the free pool ran empty");
    if (g.walks == 0 || stats_.ops.load() == 0) Fail("nothing ran");
    std::printf("hvmm-torture: SUCCESS\n");
  }

  // "P" or "P (domains: A,B,...)".
  std::string PolicyLabel() const {
    std::string label = PolicyName(policy_);
    if (domain_policies_.empty()) return label;
    absl::StrAppend(&label, " (domains:");
    for (size_t i = 0; i < domain_policies_.size(); ++i) {
      absl::StrAppend(&label, i ? "," : " ", PolicyName(domain_policies_[i]));
    }
    return label + ")";
  }
  const char* ViolationPolicy(uint32_t domain) {
    if (domain == 0) return "none";
    MutexLock lock(&policies_mu_);
    auto it = domain_policy_.find(domain);
    return it == domain_policy_.end() ? "?" : PolicyName(it->second);
  }

  const Policy policy_;
  const std::vector<Policy> domain_policies_;
  std::unique_ptr<MemoryManager> mm_;
  std::unique_ptr<FlushEngine> engine_;
  Mutex policies_mu_;
  // Every domain ever created, with its policy (for violation reports).
  absl::flat_hash_map<uint32_t, Policy> domain_policy_
      ABSL_GUARDED_BY(policies_mu_);
  VcpuRunQueue run_queue_;
  std::vector<std::unique_ptr<GuestCpu>> guests_;
  std::vector<Slot> slots_;
  uint64_t walk_delay_ns_ = 0;
  int retype_lag_ = 0;
  UpdaterStats stats_;
  GuestCpuStats guest_totals_;
};

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
  absl::StatusOr<hvmm::Policy> policy =
      hvmm::ParsePolicy(absl::GetFlag(FLAGS_policy));
  if (!policy.ok()) hvmm::Fail(std::string(policy.status().message()));
  if (absl::GetFlag(FLAGS_pcpus) < 1 ||
      absl::GetFlag(FLAGS_pcpus) > hvmm::kMaxPcpus) {
    hvmm::Fail("--pcpus must be in [1, 256]");
  }
  if (absl::GetFlag(FLAGS_domains) < 1 || absl::GetFlag(FLAGS_vcpus) < 1 ||
      absl::GetFlag(FLAGS_window_pages) < 16) {
    hvmm::Fail("--domains, --vcpus must be >= 1 and --window-pages >= 16");
  }
  std::vector<hvmm::Policy> domain_policies;
  for (absl::string_view name :
       absl::StrSplit(absl::GetFlag(FLAGS_domain_policies), ',',
                      absl::SkipEmpty())) {
    absl::StatusOr<hvmm::Policy> p = hvmm::ParsePolicy(name);
    if (!p.ok()) hvmm::Fail(std::string(p.status().message()));
    domain_policies.push_back(*p);
  }
  hvmm::Torture torture(*policy, std::move(domain_policies),
                        absl::GetFlag(FLAGS_pcpus),
                        absl::GetFlag(FLAGS_frames));
  torture.Run();
  return 0;
}
