// TortureRig: a host under churn, for the torture tool and the benchmarks.
//
// Builds a MemoryManager and a FlushEngine, runs a GuestCpu (TLB uses and
// lockless walks with the oracle's checks, and the Translate jobs the
// churn queues on the pCPU) on every pCPU, and hosts a
// Churn (guest/churn.h: every operation the mm exposes, and their mix) over
// its domains. Updater threads call Step(). Finish() destroys every domain
// and stops the pCPUs; afterwards the pool must be whole.
//
// Thread-safety: Step() from several threads if each passes a disjoint set
// of domain slots (an updater owns its domains); everything else from the
// controlling thread, except the Live*/Violations readers (any thread).
#ifndef HVMM_TESTS_TORTURE_TORTURE_RIG_H_
#define HVMM_TESTS_TORTURE_TORTURE_RIG_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "assembly/flush_engine.h"
#include "flush/flush_policy.h"
#include "guest/churn.h"
#include "guest/guest_cpu.h"
#include "guest/translate_queue.h"
#include "mm/memory_manager.h"

namespace hvmm {

struct TortureOptions {
  Policy policy = Policy::kAssistedRcu;
  std::vector<Policy> domain_policies;  // Cycled over the domains.
  bool allow_unsafe = false;
  int pcpus = 4;
  int domains = 3;
  uint32_t vcpus = 2;
  uint64_t frames = 1 << 16;
  uint64_t window_pages = 2048;  // Each domain's address window.
  uint64_t walk_delay_ns = 0;    // Failpoint between a walker's reads.
  // Failpoint in Translate walks: spin this long on reaching the L1 (only
  // there: the walk gets in before the unmap racing it, guest/churn.h's
  // translate, unhooks the L1, and stays while that unmap flushes).
  uint64_t translate_delay_ns = 0;
  uint64_t hypercall_ns = 2000;  // Assisted flush latency.
  int retype_lag = 2;
  // Op::kSetPolicy moves safe domains among the safe policies; false keeps
  // each on its own (benchmarks comparing policies).
  bool change_policies = true;
  TlbStamp tlb_clock_start{1};  // Near 2^32: the TLB clock wraps in the run.
  uint64_t seed = 1;
};

class TortureRig : private ChurnHost {
 public:
  // Builds and starts everything. kInvalidArgument for bad counts;
  // kFailedPrecondition for assisted-unsafe (default or override) without
  // allow_unsafe.
  static absl::StatusOr<std::unique_ptr<TortureRig>> Create(
      const TortureOptions& options);
  ~TortureRig();

  // One random operation on one of the domain slots in `mine`. Errors only
  // for what must never happen (a destroy or re-create that fails).
  absl::Status Step(absl::Span<const int> mine, std::mt19937_64& rng);

  // Destroys every domain, stops the pCPUs, and totals the guests' stats.
  // REQUIRES: no Step() running. Idempotent.
  absl::Status Finish();

  int domains() const { return churn_->domains(); }
  MemoryManager& mm() { return *mm_; }
  FlushEngine& engine() { return *engine_; }
  const UpdaterStats& stats() const { return churn_->stats(); }
  // After Finish().
  const GuestCpuStats& guest_totals() const { return guest_totals_; }
  // Violations the oracle has counted so far. Before Finish(); any thread.
  uint64_t LiveViolations() const;
  // The guests' counters summed now. Before Finish(); any thread.
  GuestCpuStats LiveGuestStats() const;
  // Violations of `kind` in domains that ran `policy`; any thread.
  uint64_t Violations(ViolationKind kind, Policy policy) const {
    return violations_[static_cast<int>(kind)][static_cast<int>(policy)]
        .load(std::memory_order_relaxed);
  }
  // Frames neither free nor pending in a retirer (must be 0 after Finish).
  uint64_t LeakedFrames();
  // "P" or "P (domains: A,B,...)".
  std::string PolicyLabel() const;
  // The policy domain `domain` ran under ("none" for 0).
  const char* PolicyOf(uint32_t domain);
  // "P n  Q m": violations by the policy of the domain they hit, for every
  // policy in use.
  std::string ViolationsByPolicy() const;

 private:
  explicit TortureRig(const TortureOptions& options);
  // ChurnHost.
  absl::StatusOr<DomainId> CreateDomain(const std::string& name,
                                        uint32_t vcpus, uint64_t max_pages,
                                        Policy policy) override;
  absl::Status StartGuests(DomainId domain, const WorkloadConfig& config,
                           uint64_t seed) override;
  absl::Status DestroyDomain(DomainId domain) override;
  absl::Status SetPolicy(DomainId domain, Policy policy) override;
  absl::StatusOr<std::shared_ptr<TranslateJob>> StartTranslate(
      DomainId domain, VcpuId vcpu, Vaddr va, Access access) override;

  const TortureOptions options_;
  uint64_t walk_delay_ns_;  // The failpoints' arguments.
  uint64_t translate_delay_ns_;
  std::unique_ptr<MemoryManager> mm_;
  std::unique_ptr<FlushEngine> engine_;
  VcpuRunQueue run_queue_;
  // Per pCPU; declared before guests_, which point at them.
  std::vector<std::unique_ptr<TranslateQueue>> translate_queues_;
  std::atomic<uint64_t> next_translate_pcpu_{0};
  std::vector<std::unique_ptr<GuestCpu>> guests_;
  std::unique_ptr<Churn> churn_;
  GuestCpuStats guest_totals_;
  // By ViolationKind and Policy value.
  std::atomic<uint64_t> violations_[2][kPolicyCount] = {};
  bool finished_ = false;
};

}  // namespace hvmm

#endif  // HVMM_TESTS_TORTURE_TORTURE_RIG_H_
