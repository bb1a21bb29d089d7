// MemoryManager: the host's frames, the domains that own them, and every
// operation a client can ask of the mm core.
//
// It owns the FrameTable, the TlbClock and the FrameAllocator, keeps the
// domain registry, and applies Xen's page-type rules (type_transaction.h) to
// requests: reservations, pins, base pointers, mmu_update batches, MapRange
// and UnmapRange, walks and domain destruction. Frames leave domains only
// through the FrameRetirer (retire.h).
//
// Errors: every error a caller can cause is an absl::Status built in
// mm_errors.h and listed in docs/ERRORS.md. A failed operation changes
// nothing. A broken internal invariant is an HVMM_CHECK crash.
//
// Thread-safety: every public method is safe to call concurrently. Operations
// on one domain serialize on its lock; different domains proceed in parallel.
// The lock order is the tree in domain.h.
//
// Example:
//   auto mm = MemoryManager::Create({.frame_count = 1 << 20}).value();
//   DomainId d = mm->CreateDomain({.name = "web", .vcpus = 2,
//                                  .max_pages = 4096}).value();
//   mm->MapRange(d, Vaddr(0x400000), 16, /*writable=*/true).value();
//   WalkResult w = mm->Walk(d, VcpuId(0), Vaddr(0x401000), Access::kWrite)
//                      .value();
#ifndef HVMM_MM_MEMORY_MANAGER_H_
#define HVMM_MM_MEMORY_MANAGER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/mutex.h"
#include "base/sharded_counter.h"
#include "absl/types/span.h"
#include "mm/tlb_clock.h"
#include "mm/address_space.h"
#include "mm/domain.h"
#include "mm/flush_hooks.h"
#include "mm/frame_allocator.h"
#include "mm/frame_table.h"
#include "mm/retire.h"
#include "mm/type_transaction.h"
#include "mm/types.h"
#include "mm/walker.h"

namespace hvmm {

struct MemoryManagerOptions {
  // Frames in the host pool. The default, 4 Mi frames, is 16 GiB simulated.
  uint64_t frame_count = uint64_t{1} << 22;
  // Allocator shards; 0 means one per online CPU.
  int allocator_shards = 0;
  // The TLB clock's first time; near 2^32 to exercise the wrap (>= 1).
  TlbStamp tlb_clock_start{1};
};

struct DomainConfig {
  std::string name;  // 1..64 characters from [A-Za-z0-9_.-], unique.
  uint32_t vcpus = 1;        // 1..kMaxVcpus.
  uint64_t max_pages = 0;    // >= 1: the root table counts against it.
  // Opaque to the mm core, which stores it in the Domain for the flush
  // hooks and the retirer: a per-domain flush policy override; 0 selects
  // their default. Obtain values from the flush engine
  // (FlushPolicy::OverrideTag), which validates them. SetFlushPolicy
  // changes it later.
  uint8_t flush_policy = 0;
};

struct DomainInfo {
  DomainId id{0};
  std::string name;
  uint32_t vcpus = 0;
  uint64_t max_pages = 0;
  uint64_t tot_pages = 0;
  uint8_t flush_policy = 0;  // DomainConfig::flush_policy.
  std::optional<Mfn> root;
};

// One entry write of an mmu_update batch: table[index] = entry.
struct EntryUpdate {
  Mfn table;
  uint32_t index;
  uint64_t entry;
};

// Owned frames by type (statistics).
struct FrameCensus {
  uint64_t none = 0;
  uint64_t writable = 0;
  uint64_t tables = 0;  // l1..l4.
};

// A frame's metadata as seen at one instant.
struct FrameSnapshot {
  DomainId owner{0};
  uint32_t count = 0;
  uint32_t type_count = 0;
  PageType type = PageType::kNone;
  bool validated = false;
  bool pinned = false;
  bool retiring = false;
  uint32_t generation = 0;
  TlbStamp tlbflush_timestamp;
};

class MemoryManager {
 public:
  static constexpr uint64_t kMaxBatch = 1 << 16;  // mmu_update, reservations.

  static absl::StatusOr<std::unique_ptr<MemoryManager>> Create(
      const MemoryManagerOptions& options);
  MemoryManager(const MemoryManager&) = delete;
  MemoryManager& operator=(const MemoryManager&) = delete;

  // Replaces the ImmediateRetirer. REQUIRES: no domain exists yet; `retirer`
  // outlives this.
  void SetRetirer(FrameRetirer* retirer);

  // Installs the flush engine's hooks (flush_hooks.h). Without them, mm
  // assumes no TLBs and no concurrent walkers. REQUIRES: no domain exists
  // yet; `hooks` outlives this.
  void SetFlushHooks(FlushHooks* hooks);

  // Creates a domain with a fresh, pinned, empty root L4 that every vCPU's
  // base pointer refers to.
  absl::StatusOr<DomainId> CreateDomain(const DomainConfig& config);

  // Unpins and drops every reference, returns every frame through the
  // retirer, and waits for the retirer to drain the domain.
  absl::Status DestroyDomain(DomainId domain);

  absl::StatusOr<DomainInfo> GetDomainInfo(DomainId domain) const;

  // Changes the domain's flush policy tag (DomainConfig::flush_policy) while
  // it runs; returns the previous tag. The change happens under the domain's
  // lock, between two commits: every commit, and the retire that ends it,
  // runs under one policy (an rcu unmap freed as ipi would be the seed bug).
  // Work queued under the old policy (frees waiting for a grace period) is
  // still honoured. The hooks judge the tag (FlushHooks::CheckPolicyTag);
  // kFailedPrecondition with no flush engine installed.
  absl::StatusOr<uint8_t> SetFlushPolicy(DomainId domain, uint8_t tag);
  std::vector<DomainInfo> ListDomains() const;

  // Gives the domain `count` fresh frames (type none, unreferenced).
  absl::StatusOr<std::vector<Mfn>> IncreaseReservation(DomainId domain,
                                                       uint64_t count);
  // Takes unreferenced, unpinned frames back. All-or-nothing.
  absl::Status DecreaseReservation(DomainId domain, absl::Span<const Mfn> frames);

  absl::Status PinTable(DomainId domain, Mfn mfn, Level level);
  absl::Status UnpinTable(DomainId domain, Mfn mfn);

  // Points the vCPU at `root` (taking an l4 reference), or at nothing.
  absl::Status SetBasePointer(DomainId domain, VcpuId vcpu,
                              std::optional<Mfn> root);

  // Writes the entries in order, each taking its new references before
  // dropping the old ones. All-or-nothing: on error nothing changed.
  absl::Status MmuUpdate(DomainId domain, absl::Span<const EntryUpdate> updates);

  // See address_space.h.
  absl::StatusOr<MapRangeResult> MapRange(DomainId domain, Vaddr start,
                                          uint64_t pages, bool writable);
  absl::StatusOr<UnmapRangeResult> UnmapRange(DomainId domain, Vaddr start,
                                              uint64_t pages);

  // Translates `va` for the vCPU, under the domain's lock: the only way to
  // walk outside a pCPU's interrupts-off section (DESIGN §2).
  absl::StatusOr<WalkResult> Walk(DomainId domain, VcpuId vcpu, Vaddr va,
                                  Access access) const;

  absl::StatusOr<FrameSnapshot> InspectFrame(Mfn mfn) const;

  // Counts the frames every domain owns, by type: one domain at a time,
  // each under its lock (so not one instant across domains).
  FrameCensus CountOwnedFrames() const;
  // Frames that changed type from `from` to `to` in committed changes, net
  // per change (a frame that leaves a type and takes it back in one batch
  // does not count). Freeing a frame resets its type without counting.
  // Counted per thread shard: free on the commit path, summed here.
  uint64_t TypeChanges(PageType from, PageType to) const {
    return type_changes_.Sum(TypeChangeIndex(from, to));
  }

  // Checks every invariant of docs/INVARIANTS.md over a consistent snapshot
  // (takes every lock). kInternal with the first violations found.
  absl::Status Audit() const;

  // The domain object, for the pCPU model's lockless paths; null if unknown.
  std::shared_ptr<Domain> FindDomain(DomainId domain) const;

  const FrameTable& frame_table() const { return *table_; }
  FrameAllocator& allocator() { return allocator_; }
  const FrameAllocator& allocator() const { return allocator_; }
  TlbClock& clock() { return clock_; }

 private:
  MemoryManager(std::unique_ptr<FrameTable> table,
                const MemoryManagerOptions& options);

  // A domain, found and locked, that is not dying.
  class LockedDomain {
   public:
    explicit LockedDomain(std::shared_ptr<Domain> d)
        : domain_(std::move(d)), lock_(new MutexLock(&domain_->mu())) {}
    Domain& operator*() const { return *domain_; }
    Domain* operator->() const { return domain_.get(); }

   private:
    std::shared_ptr<Domain> domain_;
    std::unique_ptr<MutexLock> lock_;
  };
  // Looks the domain up and locks it; fails if unknown or dying.
  absl::StatusOr<LockedDomain> Lock(DomainId domain) const;

  // Allocates `count` frames into the domain, all or none, after the quota
  // check, and runs the allocation flush (FlushHooks::AfterAllocate) before
  // returning. Returns the highest tlbflush_timestamp among them.
  absl::StatusOr<TlbStamp> AllocateIntoLocked(Domain& domain, uint64_t count,
                                              std::vector<Mfn>* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(domain.mu());

  TypeTransaction NewTransaction(Domain& domain, TypeTransaction::Mode mode);

  // Commits `txn`, then hands `leaving` (frames of `domain` that hold only
  // their allocation reference and that no entry reaches once `txn` is
  // published) to the retirer. Every change and every frame that leaves a
  // domain goes through here, in the order of DESIGN §4:
  //   1. unhook:   txn.PublishRemovals();
  //   2. flush:    AfterUnmap, if a mapping was removed or frames leave;
  //                tables_leave is decided here alone, from the leaving
  //                frames' types (LeavingFramesIncludeTables);
  //   3. report:   AfterTablesReleased(txn.released_tables()), whose cookie
  //                thus postdates the caches' last view of them;
  //   4. wait:     BeforeRetype(txn.retyped_tables(), txn.former_writable());
  //   5. publish:  txn.PublishAdditions();
  //   6. retire:   release `leaving` from the domain; FrameRetirer::Retire.
  void CommitLocked(Domain& domain, TypeTransaction& txn,
                    absl::Span<const Mfn> leaving = {})
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(domain.mu());
  // Whether any of `frames` has a page-table type, at any type count: a
  // walker that began before they were unhooked may still read them.
  bool LeavingFramesIncludeTables(absl::Span<const Mfn> frames) const;
  void AfterAllocate(const Domain& domain, TlbStamp stamp);

  // The root MapRange/UnmapRange work under: the domain's own, still a
  // validated L4. kFailedPrecondition otherwise.
  absl::StatusOr<Mfn> RangeRootLocked(const Domain& domain) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(domain.mu());

  const std::unique_ptr<FrameTable> table_;
  TlbClock clock_;
  static size_t TypeChangeIndex(PageType from, PageType to) {
    return static_cast<size_t>(from) * kPageTypeCount +
           static_cast<size_t>(to);
  }
  ShardedCounters<kPageTypeCount * kPageTypeCount> type_changes_;
  FrameAllocator allocator_;
  ImmediateRetirer immediate_retirer_;
  FrameRetirer* retirer_;
  FlushHooks* hooks_ = nullptr;

  mutable RwMutex domains_mu_;
  absl::flat_hash_map<DomainId, std::shared_ptr<Domain>> domains_
      ABSL_GUARDED_BY(domains_mu_);
  absl::flat_hash_map<std::string, DomainId> names_
      ABSL_GUARDED_BY(domains_mu_);
  uint32_t next_domain_id_ ABSL_GUARDED_BY(domains_mu_) = 1;
};

}  // namespace hvmm

#endif  // HVMM_MM_MEMORY_MANAGER_H_
