// Host: everything one hvmmd runs, assembled: the MemoryManager, its
// FlushEngine (pCPUs, grace periods, backends, policy, retirers), a GuestCpu
// on every pCPU with the workloads the API starts, and the Translate path.
//
// Each pCPU's step (GuestCpu::Step) serves, in order:
//   1. a Translate job queued for it (guest/translate_queue.h): a lockless
//      walk from the vCPU's base pointer inside a ReadSection for the
//      domain, with interrupts off, exactly as a guest walker's (DESIGN
//      §2). The RPC thread never walks; it waits for the pCPU's answer
//      until its deadline.
//   2. one guest access of the workload vCPUs.
// With neither, the pCPU sleeps until kicked: an idle host uses no CPU.
//
// The oracle's checks run on both paths; every violation is counted by kind
// and by the policy the domain ran when it happened, and reported to the
// violation listener (the event log).
//
// Lifetime: Shutdown() (or the destructor) stops workloads, waits for
// deferred frees, audits, destroys every domain and stops the pCPUs.
//
// Thread-safety: every public method from any thread, except that
// Shutdown() must not race with itself.
#ifndef HVMM_SERVER_HOST_H_
#define HVMM_SERVER_HOST_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "assembly/flush_engine.h"
#include "base/mutex.h"
#include "flush/flush_policy.h"
#include "guest/access_stream.h"
#include "guest/guest_cpu.h"
#include "guest/translate_queue.h"
#include "mm/memory_manager.h"
#include "mm/types.h"
#include "mm/walker.h"

namespace hvmm {

struct HostOptions {
  uint64_t frames = uint64_t{1} << 18;  // 1 GiB of simulated memory.
  int pcpus = 4;
  Policy policy = Policy::kAssistedRcu;  // The default for new domains.
  bool allow_unsafe = false;
  uint64_t hypercall_ns = 2000;  // Assisted flush latency.
  // A guest walker that reached a table spins this long before reading it
  // (guest/guest_cpu.h SpinAtTableReached): slow walkers, so that seconds
  // of a demo show the window the assisted flush leaves. 0: none.
  uint64_t walk_delay_ns = 0;
  // For tests: hooks every Translate walk runs (mm/walker.h), e.g. to
  // park one mid-walk.
  WalkHooks translate_walk_hooks;
};

// Counters of the whole host at one instant (each read without stopping
// anything; sums are approximate while work runs).
struct HostStats {
  absl::Duration uptime;
  int pcpus = 0;
  int domains = 0;
  Policy default_policy = Policy::kAssistedRcu;
  uint64_t frames_total = 0;
  uint64_t frames_free = 0;
  uint64_t frames_pending_free = 0;
  uint64_t frames_none = 0, frames_writable = 0, frames_tables = 0;
  uint64_t ipi_flushes = 0, assisted_flushes = 0, ipis_sent = 0,
           forced_ipis = 0;
  uint64_t ipi_batches = 0, assisted_batches = 0, flush_requests = 0;
  uint64_t grace_periods = 0;
  uint64_t grace_latency_p50_ns = 0, grace_latency_p99_ns = 0;
  GuestCpuStats guests;  // Workload accesses, walks, TLB, violations.
  uint64_t translations = 0;
  uint64_t existence_violations = 0, coherence_violations = 0;
};

struct DomainStatsSnapshot {
  DomainInfo info;
  uint64_t pending_frees = 0;
  uint64_t existence_violations = 0, coherence_violations = 0;
};

class Host {
 public:
  // Called on a pCPU for each violation (must not block).
  using ViolationListener =
      std::function<void(ViolationKind, DomainId, Mfn, Policy)>;

  // kInvalidArgument for bad counts; kFailedPrecondition for
  // assisted-unsafe as the default without allow_unsafe.
  static absl::StatusOr<std::unique_ptr<Host>> Create(
      const HostOptions& options);
  ~Host();
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  MemoryManager& mm() { return *mm_; }
  const MemoryManager& mm() const { return *mm_; }
  FlushEngine& engine() { return *engine_; }
  const HostOptions& options() const { return options_; }

  // Set before any domain exists.
  void SetViolationListener(ViolationListener listener);

  // CreateDomain with a policy (nullopt: the default). Errors as
  // MemoryManager::CreateDomain and FlushPolicy::OverrideTag.
  absl::StatusOr<DomainId> CreateDomain(std::string name, uint32_t vcpus,
                                        uint64_t max_pages,
                                        std::optional<Policy> policy);
  // Stops the domain's workload, then MemoryManager::DestroyDomain.
  // Returns the frames it held (its tot_pages) on success.
  absl::StatusOr<uint64_t> DestroyDomain(DomainId domain);
  // The policy the domain runs under now.
  Policy PolicyOf(const Domain& domain) const;
  absl::StatusOr<Policy> PolicyOf(DomainId domain) const;
  // Live policy change; returns the previous policy.
  absl::StatusOr<Policy> SetFlushPolicy(DomainId domain, Policy policy);

  // Walks `va` for the vCPU on a pCPU (file comment). kDeadlineExceeded if
  // no pCPU answered by `deadline`; kNotFound / kInvalidArgument for an
  // unknown domain or vCPU, or a non-canonical address; kUnavailable once
  // shut down.
  absl::StatusOr<Translation> Translate(DomainId domain, VcpuId vcpu, Vaddr va,
                                        Access access, absl::Time deadline);
  // Queues the same walk on the next pCPU in turn and returns at once (the
  // churn's Translate, which races the walk with its next updates). The
  // errors of Translate, except the deadline; the job's Await answers
  // kCancelled if the host shuts down first.
  absl::StatusOr<std::shared_ptr<TranslateJob>> StartTranslate(DomainId domain,
                                                               VcpuId vcpu,
                                                               Vaddr va,
                                                               Access access);

  // Runs the guest access driver on the domain's vCPUs. kFailedPrecondition
  // if it already runs; kInvalidArgument for a bad config.
  absl::Status StartWorkload(DomainId domain, const WorkloadConfig& config);
  // kFailedPrecondition if none runs.
  absl::Status StopWorkload(DomainId domain);
  bool WorkloadRunning(DomainId domain) const;
  // When the domain was created (InfinitePast if unknown).
  absl::Time CreateTimeOf(DomainId domain) const;

  HostStats Stats() const;
  // Part of Stats(), cheaper: the pCPUs' walk counters summed (Translate
  // walks among them).
  GuestCpuStats GuestStats() const;
  // Violations of `kind` in domains that ran `policy` when they happened
  // (every domain, destroyed ones too).
  uint64_t Violations(ViolationKind kind, Policy policy) const {
    return violations_[static_cast<int>(kind)][static_cast<int>(policy)].load(
        std::memory_order_relaxed);
  }
  absl::StatusOr<DomainStatsSnapshot> DomainStats(DomainId domain) const;

  // Stops every workload, waits for every deferred free, runs the audit,
  // destroys every domain and stops the pCPUs. Returns the audit's status.
  // Idempotent (later calls return OkStatus()).
  absl::Status Shutdown();

 private:
  struct DomainCounters {
    absl::Time create_time;
    std::atomic<uint64_t> existence{0}, coherence{0};
  };

  explicit Host(const HostOptions& options);
  void NoteViolation(ViolationKind kind, const Domain& domain, Mfn frame);
  std::shared_ptr<DomainCounters> CountersOf(DomainId domain) const;

  const HostOptions options_;
  const absl::Time start_time_;
  std::unique_ptr<MemoryManager> mm_;
  std::unique_ptr<FlushEngine> engine_;
  VcpuRunQueue run_queue_;
  std::vector<std::unique_ptr<GuestCpu>> guests_;
  // Per pCPU, its Translate jobs (served by its GuestCpu).
  std::vector<std::unique_ptr<TranslateQueue>> translate_queues_;
  std::atomic<uint64_t> next_pcpu_{0};
  std::atomic<bool> shut_down_{false};
  // By ViolationKind and Policy value.
  std::atomic<uint64_t> violations_[2][kPolicyCount] = {};
  ViolationListener listener_;

  // Lock order: mu_ before the run queue's lock. pCPUs take mu_ only in
  // NoteViolation, holding nothing; no one holds mu_ across a call that
  // waits for a pCPU (a flush, a grace period, a destroy).
  mutable Mutex mu_;
  // Domains whose workload runs (their vCPUs are in run_queue_), and
  // domains being destroyed (no workload may start on them).
  absl::flat_hash_set<DomainId> workloads_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<DomainId> destroying_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<DomainId, std::shared_ptr<DomainCounters>> counters_
      ABSL_GUARDED_BY(mu_);
  uint64_t workload_seed_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace hvmm

#endif  // HVMM_SERVER_HOST_H_
