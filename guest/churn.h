// Churn: the page-table updates of busy guests, as random operations over
// a set of domains. The torture tool, the updater benchmark and hvmmd's
// demo all run it; only what hosts the domains differs (ChurnHost).
//
// Each domain slot is created with a pinned scratch L1 (the target of
// retypes) and half of its address window mapped, and runs guest walkers
// over the whole window. Updater threads then call Step(): one random
// operation (Op) on one of their slots. The operations are every kind of
// change the mm exposes, in the shapes the safety issue found holes in;
// each one's mix weight is in kOpWeights (churn.cc) and docs/TORTURE.md:
//   map, unmap          ranges (1..32 and 1..96 pages; 3 in 4 writable);
//                       unmaps unhook and retire tables
//   unhook              one batch clears an L1's entries and unhooks it; its
//                       data frames are released; the table stays owned,
//                       released, and queued for the ops below
//   retype-lagged       the table released `retype_lag` retypes ago is
//                       mapped writable through the pinned scratch L1 (a
//                       retype of a former table), unmapped, released
//   unhook+retype       ONE batch unhooks an L1 and maps it writable
//   writable->table     ONE batch drops a writable page's mapping and hooks
//                       the page in as an L1
//   table read-only     an L1 maps an L1 read-only (later unmaps, and the
//                       release of a former table through it, free it)
//   pin-retype          a released table is pinned as another level (a
//                       table-to-table retype) and unpinned
//   base-pointer        the last vCPU moves to an alternate root sharing
//                       the L3s, or back, and the alternate root is released
//   decrease-former     a released table is returned to the pool as one
//   alloc               allocate 1..4 frames and release them
//   recreate            destroy the domain under load and create it again
//   set-policy          change the domain's flush policy live: a domain
//                       configured with a safe policy moves among the safe
//                       ones (with change_policies; else it is set to its
//                       own policy again); an assisted-unsafe one is set to
//                       it again
//   flush               an explicit flush of the domain or of a range
//                       (the API's Flush)
//   translate           1..4 Translate walks (the API's) of a random
//                       address for random vCPUs, queued on the pCPUs
//                       without waiting, and half the time the unmap of
//                       their 2 MiB at once (their L1 is retired under
//                       them); they race the slot's next operations too, a
//                       re-create included (at most kTranslatesInFlight
//                       per slot: the oldest is awaited beyond that)
//
// Thread-safety: Step() from several threads if each passes a disjoint set
// of slots (an updater owns its domains); CreateDomains() and
// DestroyDomains() from one controlling thread with no Step() running;
// stats() and PolicyOf() from any thread.
#ifndef HVMM_GUEST_CHURN_H_
#define HVMM_GUEST_CHURN_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/mutex.h"
#include "flush/flush_policy.h"
#include "guest/access_stream.h"
#include "guest/translate_queue.h"
#include "mm/memory_manager.h"

namespace hvmm {

// What hosts the churn's domains: creates them, runs guest walkers on
// them, changes their policy, destroys them.
class ChurnHost {
 public:
  virtual ~ChurnHost() = default;
  virtual absl::StatusOr<DomainId> CreateDomain(const std::string& name,
                                                uint32_t vcpus,
                                                uint64_t max_pages,
                                                Policy policy) = 0;
  // Runs the domain's vCPUs over `config` (`seed` seeds their streams
  // where the host takes one).
  virtual absl::Status StartGuests(DomainId domain,
                                   const WorkloadConfig& config,
                                   uint64_t seed) = 0;
  // Stops the domain's guests, then destroys it.
  virtual absl::Status DestroyDomain(DomainId domain) = 0;
  virtual absl::Status SetPolicy(DomainId domain, Policy policy) = 0;
  // Queues a Translate walk of `va` for the vCPU on one of the host's
  // pCPUs and returns at once (guest/translate_queue.h).
  virtual absl::StatusOr<std::shared_ptr<TranslateJob>> StartTranslate(
      DomainId domain, VcpuId vcpu, Vaddr va, Access access) = 0;
};

struct ChurnOptions {
  // Slot i runs policies[i % size].
  std::vector<Policy> policies = {Policy::kAssistedRcu};
  int domains = 3;
  uint32_t vcpus = 2;
  uint64_t window_pages = 2048;  // Each domain's address window.
  int retype_lag = 2;
  // set-policy moves safe domains among the safe policies (the torture);
  // without, it sets each domain's own policy again (the path runs, the
  // policy stays: benchmarks and the demo compare policies).
  bool change_policies = true;
  uint64_t seed = 1;
  std::string name_prefix = "t";  // Domains are named PREFIX<slot>_<n>.
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
  kTranslate,
};
inline constexpr int kOpCount = 15;
// Translate walks a slot may have queued and not awaited.
inline constexpr size_t kTranslatesInFlight = 8;
const char* OpName(Op op);

struct UpdaterStats {
  std::atomic<uint64_t> ops{0}, pool_empty{0};
  // Per Op: calls that changed something, and calls that found nothing to
  // do or were refused (a legal refusal: a type conflict, a full quota).
  std::atomic<uint64_t> done[kOpCount] = {};
  std::atomic<uint64_t> skipped[kOpCount] = {};
  // Former page tables that took another type (every path).
  std::atomic<uint64_t> retypes{0};
  // Per Op: wall time spent in Step() (done or skipped), in ns: where an
  // updater's time goes under each policy (bench/updater_benchmark).
  std::atomic<uint64_t> op_ns[kOpCount] = {};
};

class Churn {
 public:
  // `host`, `mm` and `policy` (the mm's flush policy) must outlive this.
  Churn(ChurnHost* host, MemoryManager* mm, FlushPolicy* policy,
        ChurnOptions options);
  ~Churn();  // DestroyDomains().
  Churn(const Churn&) = delete;
  Churn& operator=(const Churn&) = delete;

  // Creates every slot's domain and starts its guests.
  absl::Status CreateDomains();
  // One random operation on one of the slots in `mine`. Errors only for
  // what must never happen (a destroy or re-create that fails).
  absl::Status Step(absl::Span<const int> mine, std::mt19937_64& rng);
  // Destroys every slot's domain. Idempotent.
  absl::Status DestroyDomains();

  int domains() const { return static_cast<int>(slots_.size()); }
  const UpdaterStats& stats() const { return stats_; }
  // The policy `domain` (any this churn ever created) ran under last;
  // "none" for 0, "?" if unknown.
  const char* PolicyOf(uint32_t domain) const;
  // The policies the churn's domains may run: their own, and the safe ones
  // when change_policies moves them there.
  std::vector<Policy> PoliciesInUse() const;

 private:
  struct Slot {
    DomainId id{0};
    Mfn root{0};
    Mfn scratch_l1{0};  // A pinned L1 outside the root: retype target slots.
    // Released page tables with no entries, still owned, oldest first.
    std::deque<Mfn> released;
    // The last vCPU's alternate root while it runs on one (else none).
    std::optional<Mfn> alt_root;
    // Translate walks queued and not awaited, oldest first.
    std::deque<std::shared_ptr<TranslateJob>> translations;
  };

  Policy SlotPolicy(int i) const;
  absl::Status CreateSlot(int i);
  // The oldest released table, once retype_lag more are queued behind it.
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
  bool Translate(Slot& slot, Vaddr va, std::mt19937_64& rng);
  // The frames the present entries of `table` point at, once each.
  std::vector<Mfn> EntryTargets(Mfn table) const;
  // Counts a pool-empty failure; returns s.ok().
  bool CountPoolEmpty(const absl::Status& s);

  ChurnHost* const host_;
  MemoryManager* const mm_;
  FlushPolicy* const policy_;
  const ChurnOptions options_;
  std::vector<Slot> slots_;
  std::atomic<int> slot_generation_{0};
  UpdaterStats stats_;
  mutable Mutex policies_mu_;
  // Every domain ever created, with its policy (for violation reports).
  absl::flat_hash_map<uint32_t, Policy> domain_policy_
      ABSL_GUARDED_BY(policies_mu_);
};

}  // namespace hvmm

#endif  // HVMM_GUEST_CHURN_H_
