// TypeTransaction: Xen's page-type rules, applied all-or-nothing.
//
// Every change to reference counts, page types, entries and base pointers of
// one domain goes through a TypeTransaction, under that domain's lock. The
// rules (Xen xen/arch/x86/mm.c; DESIGN §1):
//
//   1. A frame changes type only while its type count is 0. Taking a type
//      reference at count 0 with a different type changes the type and clears
//      `validated`; with a different non-zero count it is a type conflict.
//   2. The first reference of a page-table type validates the frame: every
//      present entry must be legal for its level, and takes the references it
//      implies (rule 4), recursively.
//   3. Dropping the last type reference of a validated page table devalidates
//      it: its entries drop their references, recursively. Any type count
//      reaching 0 stamps the frame with the TlbClock.
//   4. A present entry holds a general reference on its target, and:
//        L1, writable:  a `writable` type reference (so a page table is never
//                       writably mapped: the isolation invariant);
//        L2/L3/L4:      a type reference of the next-lower table type.
//      Targets must be frames of the same domain. Because the table types
//      are strictly levelled, an entry can never point at a table of its own
//      level or above: hvmm has no linear (recursive) page tables.
//   5. A frame whose type changes away from a page-table type or from
//      `writable` gets a new generation, so the safety oracle can tell its
//      old use from its new one. What counts is the net change over the
//      transaction: a frame that leaves its type and takes it back within
//      one batch never showed the other type to anyone, and is no retype.
//
// Commit order (DESIGN §4). A type change away from a page table must wait
// until no walker and no cache can still reach the frame as its old self;
// a frame that stops being writable and becomes a table must first lose its
// writable translations. So a transaction commits in two phases, and the
// caller (MemoryManager::CommitLocked) keeps the promises between them:
//
//   PublishRemovals()    stamps frames whose type count reached 0, and makes
//                        every removal visible: each entry or base pointer
//                        that pointed somewhere and is changing reads
//                        not-present from here on.
//     ... caller: flush the domain; report released_tables(); make sure no
//         walker still reads retyped_tables() (FlushHooks::BeforeRetype) ...
//   PublishAdditions()   bumps the generations of frames that changed type
//                        (rule 5), then writes every entry and base pointer
//                        its final value.
//
// A transaction that changes no type (the common case) has nothing to wait
// for: PublishRemovals() publishes everything at once, and
// PublishAdditions() has nothing left to do. Only final values are ever
// published: an entry written twice in a batch never shows its first value.
//
// All-or-nothing. In kStaged mode, entry and base-pointer writes are held in
// an overlay (which ReadEntry sees) and reach memory only when published;
// every metadata record is snapshotted on first touch, and Abort() restores
// the snapshots. A failed batch therefore changes nothing, not even
// transiently for walkers. kWriteThrough mode writes at once and cannot
// abort: it is for operations that check everything before changing
// anything (MapRange, UnmapRange, create, destroy). Since its writes cannot
// wait for a safety step, a write-through transaction may not change a
// frame's type away from anything but `none`: that is an HVMM_CHECK.
//
// Errors: after any method returns an error, the transaction is half-applied
// and the only legal next step is Abort() (or destruction).
//
// Thread-safety: none; one thread, with the domain's lock held for the whole
// life of the transaction.
#ifndef HVMM_MM_TYPE_TRANSACTION_H_
#define HVMM_MM_TYPE_TRANSACTION_H_

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/types/span.h"
#include "mm/tlb_clock.h"
#include "mm/domain.h"
#include "mm/frame_table.h"
#include "mm/types.h"

namespace hvmm {

// kInvalidArgument if mfn is beyond the table, kFailedPrecondition if `domain`
// does not own it. Safe without the owner's lock (reads the atomic owner).
absl::Status CheckFrameOwned(const FrameTable& table, Mfn mfn,
                             DomainId domain);

class TypeTransaction {
 public:
  enum class Mode { kStaged, kWriteThrough };

  TypeTransaction(const FrameTable* table, const TlbClock* clock,
                  Domain* domain, Mode mode);
  // A kStaged transaction that was neither committed nor aborted aborts.
  ~TypeTransaction();
  TypeTransaction(const TypeTransaction&) = delete;
  TypeTransaction& operator=(const TypeTransaction&) = delete;

  absl::Status CheckOwned(Mfn mfn) const {
    return CheckFrameOwned(*table_, mfn, domain_->id());
  }

  // General reference. REQUIRES for Put: a reference taken earlier.
  absl::Status GetPage(Mfn mfn);
  void PutPage(Mfn mfn);
  // Type reference (rules 1-3). Does not take a general reference.
  absl::Status GetPageType(Mfn mfn, PageType type);
  void PutPageType(Mfn mfn);
  // Both, as pins, base pointers and upper-level entries hold them.
  absl::Status GetPageAndType(Mfn mfn, PageType type);
  void PutPageAndType(Mfn mfn);

  // The references a present `entry` at table[index] of `level` holds
  // (rule 4). Get checks the entry's legality first.
  absl::Status GetEntryRefs(Mfn table, uint32_t index, uint64_t entry,
                            Level level);
  void PutEntryRefs(uint64_t entry, Level level);

  // Sets or clears kPagePinned, journaled like every other change.
  void SetPinned(Mfn mfn, bool pinned);

  // Entry access that sees this transaction's staged writes.
  uint64_t ReadEntry(Mfn table, uint32_t index) const;
  // REQUIRES: the caller has taken the new entry's references and will drop
  // the old entry's (new before old: Xen's rule, and DESIGN §1).
  void WriteEntry(Mfn table, uint32_t index, uint64_t entry);

  // The vCPU's base pointer as this transaction leaves it, and its change.
  // REQUIRES for the write: the caller holds the new root's references and
  // drops the old one's.
  std::optional<Mfn> ReadBasePointer(VcpuId vcpu) const;
  void WriteBasePointer(VcpuId vcpu, std::optional<Mfn> root);

  // Phase 1 of the commit (file comment). REQUIRES: called once.
  void PublishRemovals();
  // Phase 2. REQUIRES: after PublishRemovals().
  void PublishAdditions();
  // REQUIRES: kStaged, and PublishRemovals() not called.
  void Abort();

  // After PublishRemovals(): whether a present entry or base pointer was
  // changed or cleared, so some pCPU may cache a translation that is gone.
  bool removed_mappings() const { return removed_mappings_; }
  // Frames whose page-table type count fell to 0 in this transaction (they
  // may since have taken another type: see retyped_tables()). Walkers that
  // began before PublishRemovals() may still be reading them.
  absl::Span<const Mfn> released_tables() const { return released_tables_; }
  // After PublishRemovals(): frames that left a page-table type in this
  // transaction (net): no walker may read them, and no cache hold them,
  // once PublishAdditions() runs.
  absl::Span<const Mfn> retyped_tables() const { return retyped_tables_; }
  // After PublishRemovals(): frames that were `writable` and are page
  // tables now (net): no walker may still hold a writable translation of
  // them once PublishAdditions() runs.
  absl::Span<const Mfn> former_writable() const { return left_writable_; }
  // After PublishRemovals(): each frame whose type changed in this
  // transaction, with its type before it (its type now is the frame's);
  // may include frames whose type came back (no net change).
  absl::Span<const std::pair<Mfn, PageType>> type_changes() const {
    return type_changes_;
  }

 private:
  struct Snapshot {
    Mfn mfn;
    uint32_t count;
    uint32_t type_count;
    PageType type;
    uint8_t flags;
  };
  enum class Phase { kOpen, kRemovalsPublished, kDone };

  // Snapshots the record before its first change in this transaction.
  PageInfo& Touch(Mfn mfn);
  absl::Status Validate(Mfn mfn, Level level);
  void Devalidate(Mfn mfn, Level level);
  // Whether additions must wait for the caller's safety steps.
  bool ordered() const {
    return !retyped_tables_.empty() || !left_writable_.empty();
  }
  static uint64_t EntryKey(Mfn table, uint32_t index) {
    return table.value() * kEntriesPerTable + index;
  }
  void StoreEntry(uint64_t key, uint64_t entry) const;

  const FrameTable* const table_;
  const TlbClock* const clock_;
  Domain* const domain_;
  const Mode mode_;
  Phase phase_ = Phase::kOpen;

  // This transaction's id; a record whose txn_tag equals it is journaled.
  const uint64_t id_;
  // Each touched record once, in first-touch order.
  std::vector<Snapshot> snapshots_;
  // Each frame whose type changed, with its type before the transaction,
  // in first-change order; PublishRemovals() derives the net lists below.
  std::vector<std::pair<Mfn, PageType>> type_changes_;
  absl::flat_hash_set<Mfn> type_changed_;
  // Rule 5 (generation), net; rule 3 (stamp), may repeat.
  std::vector<Mfn> retyped_tables_;
  std::vector<Mfn> left_writable_;
  std::vector<Mfn> type_count_hit_zero_;
  std::vector<Mfn> released_tables_;  // Each once.
  absl::flat_hash_set<Mfn> released_set_;
  bool removed_mappings_ = false;
  // kStaged only: the final value per entry, and the entries in first-write
  // order; the same for base pointers (vCPU -> root).
  absl::flat_hash_map<uint64_t, uint64_t> staged_;
  std::vector<uint64_t> staged_order_;
  absl::flat_hash_map<uint32_t, std::optional<Mfn>> staged_roots_;
  std::vector<uint32_t> staged_roots_order_;
};

}  // namespace hvmm

#endif  // HVMM_MM_TYPE_TRANSACTION_H_
