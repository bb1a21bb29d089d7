// TortureRig: a host under churn, for the torture tool and the benchmarks.
//
// Builds a MemoryManager and a FlushEngine, runs a GuestCpu (TLB uses and
// lockless walks with the oracle's checks) on every pCPU, and creates the
// domains. Updater threads then call Step(): one random operation on one of
// their domains:
//   45%  map a range (1..32 pages; 3 in 4 writable)
//   40%  unmap a range (1..96 pages): tables are unhooked and retired
//   10%  retype: unhook the L1 under a random address (kept, released as a
//        table), and retype the table released --retype-lag retypes ago to
//        writable through a pinned scratch L1, then release it
//    4%  allocate 1..4 frames and release them
//    1%  destroy the domain and create it again
// Finish() destroys every domain and stops the pCPUs; afterwards the pool
// must be whole.
//
// Thread-safety: Step() from several threads if each passes a disjoint set
// of domain slots (an updater owns its domains); everything else from the
// controlling thread.
#ifndef HVMM_TESTS_TORTURE_TORTURE_RIG_H_
#define HVMM_TESTS_TORTURE_TORTURE_RIG_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/mutex.h"
#include "flush/flush_engine.h"
#include "flush/flush_policy.h"
#include "guest/guest_cpu.h"
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
  uint64_t hypercall_ns = 2000;  // Assisted flush latency.
  int retype_lag = 8;
  uint32_t tlb_clock_start = 1;  // Near 2^32: the TLB clock wraps in the run.
  uint64_t seed = 1;
};

struct UpdaterStats {
  std::atomic<uint64_t> ops{0}, maps{0}, unmaps{0}, retypes{0}, allocs{0},
      recreates{0}, pool_empty{0};
};

class TortureRig {
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

  int domains() const { return static_cast<int>(slots_.size()); }
  MemoryManager& mm() { return *mm_; }
  FlushEngine& engine() { return *engine_; }
  const UpdaterStats& stats() const { return stats_; }
  // After Finish().
  const GuestCpuStats& guest_totals() const { return guest_totals_; }
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
  struct Slot {
    DomainId id{0};
    Mfn scratch_l1{0};  // A pinned L1 outside the root: retype target slots.
    // Unhooked L1 tables, still owned, oldest first.
    std::deque<Mfn> released_l1s;
  };

  explicit TortureRig(const TortureOptions& options);
  Policy SlotPolicy(int i) const;
  absl::Status CreateSlot(int i);
  void Retype(Slot& slot, Vaddr va);
  void CountPoolEmpty(const absl::Status& s);

  const TortureOptions options_;
  uint64_t walk_delay_ns_;  // The failpoint's argument.
  std::unique_ptr<MemoryManager> mm_;
  std::unique_ptr<FlushEngine> engine_;
  VcpuRunQueue run_queue_;
  std::vector<std::unique_ptr<GuestCpu>> guests_;
  std::vector<Slot> slots_;
  std::atomic<int> slot_generation_{0};
  UpdaterStats stats_;
  GuestCpuStats guest_totals_;
  std::atomic<uint64_t> violations_by_policy_[4] = {};  // By Policy value.
  bool finished_ = false;
  Mutex policies_mu_;
  // Every domain ever created, with its policy (for violation reports).
  absl::flat_hash_map<uint32_t, Policy> domain_policy_
      ABSL_GUARDED_BY(policies_mu_);
};

}  // namespace hvmm

#endif  // HVMM_TESTS_TORTURE_TORTURE_RIG_H_
