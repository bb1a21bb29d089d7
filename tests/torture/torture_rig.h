// TortureRig: a host under churn, for the torture tool and the benchmarks.
//
// Builds a MemoryManager and a FlushEngine, runs a GuestCpu (TLB uses and
// lockless walks with the oracle's checks) on every pCPU, and creates the
// domains. Updater threads then call Step(): one random operation (Op) on
// one of their domains. The operations are every kind of change the mm
// exposes, in the shapes the safety issue found holes in; each one's mix
// weight is in kOpWeights (torture_rig.cc) and docs/TORTURE.md:
//   map, unmap          ranges (1..32 and 1..96 pages; 3 in 4 writable);
//                       unmaps unhook and retire tables
//   unhook              one batch clears an L1's entries and unhooks it; its
//                       data frames are released; the table stays owned,
//                       released, and queued for the ops below
//   retype-lagged       the table released --retype-lag retypes ago is
//                       mapped writable through the pinned scratch L1 (a
//                       retype of a former table), unmapped, released
//   unhook+retype       ONE batch unhooks an L1 and maps it writable
//   writable->table     ONE batch drops a writable page's mapping and hooks
//                       the page in as an L1
//   table read-only     an L1 maps an L1 read-only (later unmaps, and the
//                       release of a former table through it, free it)
//   pin-retype          a released table is pinned as another level (a
//                       table-to-table retype) and unpinned
//   base-pointer        vCPU 1 moves to an alternate root sharing the L3s,
//                       or back, and the alternate root is released
//   decrease-former     a released table is returned to the pool as one
//   alloc               allocate 1..4 frames and release them
//   recreate            destroy the domain under load and create it again
//   set-policy          change the domain's flush policy live: a domain
//                       configured with a safe policy moves among the safe
//                       ones; an assisted-unsafe one is set to it again
//   flush               an explicit flush of the domain or of a range
//                       (the API's Flush)
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
#include <optional>
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
  int retype_lag = 2;
  uint32_t tlb_clock_start = 1;  // Near 2^32: the TLB clock wraps in the run.
  uint64_t seed = 1;
};

enum class Op : uint8_t {
  kMap,
  kUnmap,
  kUnhook,
  kRetypeLagged,
  kUnhookAndRetype,
  kWritableToTable,
  kTableReadOnly,
  kPinRetype,
  kBasePointer,
  kDecreaseFormer,
  kAlloc,
  kRecreate,
  kSetPolicy,
  kFlush,
};
inline constexpr int kOpCount = 14;
const char* OpName(Op op);

struct UpdaterStats {
  std::atomic<uint64_t> ops{0}, pool_empty{0};
  // Per Op: calls that changed something, and calls that found nothing to
  // do or were refused (a legal refusal: a type conflict, a full quota).
  std::atomic<uint64_t> done[kOpCount] = {};
  std::atomic<uint64_t> skipped[kOpCount] = {};
  // Former page tables that took another type (every path).
  std::atomic<uint64_t> retypes{0};
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
  struct Slot {
    DomainId id{0};
    Mfn root{0};
    Mfn scratch_l1{0};  // A pinned L1 outside the root: retype target slots.
    // Released page tables with no entries, still owned, oldest first.
    std::deque<Mfn> released;
    // vCPU 1's alternate root while it runs on one (else none).
    std::optional<Mfn> alt_root;
  };

  explicit TortureRig(const TortureOptions& options);
  Policy SlotPolicy(int i) const;
  absl::Status CreateSlot(int i);
  // The oldest released table, once --retype-lag more are queued behind it.
  std::optional<Mfn> PopAged(Slot& slot);
  // The operations; each returns whether it changed something.
  bool Unhook(Slot& slot, Vaddr va);
  bool RetypeLagged(Slot& slot);
  bool UnhookAndRetype(Slot& slot, Vaddr va);
  bool WritableToTable(Slot& slot, Vaddr va);
  bool TableReadOnly(Slot& slot, Vaddr va, Vaddr other);
  bool PinRetype(Slot& slot, std::mt19937_64& rng);
  bool BasePointer(Slot& slot);
  bool DecreaseFormer(Slot& slot);
  bool SetPolicy(int i, std::mt19937_64& rng);
  // The frames the present entries of `table` point at, once each.
  std::vector<Mfn> EntryTargets(Mfn table) const;
  // Counts a pool-empty failure; returns s.ok().
  bool CountPoolEmpty(const absl::Status& s);

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
  // By ViolationKind and Policy value.
  std::atomic<uint64_t> violations_[2][kPolicyCount] = {};
  bool finished_ = false;
  Mutex policies_mu_;
  // Every domain ever created, with its policy (for violation reports).
  absl::flat_hash_map<uint32_t, Policy> domain_policy_
      ABSL_GUARDED_BY(policies_mu_);
};

}  // namespace hvmm

#endif  // HVMM_TESTS_TORTURE_TORTURE_RIG_H_
