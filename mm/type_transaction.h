// TypeTransaction: Xen's page-type rules, applied all-or-nothing.
//
// Every change to reference counts, page types and entries of one domain goes
// through a TypeTransaction, under that domain's lock. The rules (Xen
// xen/arch/x86/mm.c; DESIGN §1):
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
//      Targets must be frames of the same domain.
//   5. A frame that leaves a page-table type gets a new generation.
//
// All-or-nothing. In kStaged mode, entry writes are held in an overlay (which
// ReadEntry sees) and reach memory only in Commit(); every metadata record is
// snapshotted on first touch, and Abort() restores the snapshots. A failed
// batch therefore changes nothing, not even transiently for walkers.
// kWriteThrough mode writes entries at once and cannot abort: it is for
// operations that check everything before changing anything (MapRange,
// UnmapRange, destroy).
//
// Commit ordering: generations of frames that left a page-table type are
// bumped before staged entries are published, so a walker still inside such a
// frame sees the bump before any new use of it becomes reachable.
//
// Errors: after any method returns an error, the transaction is half-applied
// and the only legal next step is Abort() (or destruction).
//
// Thread-safety: none; one thread, with the domain's lock held for the whole
// life of the transaction.
#ifndef HVMM_MM_TYPE_TRANSACTION_H_
#define HVMM_MM_TYPE_TRANSACTION_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/types/span.h"
#include "flush/tlb_clock.h"
#include "mm/flush_hooks.h"
#include "mm/frame_table.h"
#include "mm/types.h"

namespace hvmm {

// kInvalidArgument if mfn is beyond the table, kPermissionDenied if `domain`
// does not own it. Safe without the owner's lock (reads the atomic owner).
absl::Status CheckFrameOwned(const FrameTable& table, Mfn mfn,
                             DomainId domain);

class TypeTransaction {
 public:
  enum class Mode { kStaged, kWriteThrough };

  // `hooks` (may be null) are asked to keep the existence promise before a
  // frame of `hooks_domain` leaves a page-table type
  // (FlushHooks::BeforeRetype). Without hooks a retype proceeds at once,
  // which is right only with no concurrent walkers.
  TypeTransaction(const FrameTable* table, const TlbClock* clock,
                  DomainId domain, Mode mode, FlushHooks* hooks = nullptr,
                  const Domain* hooks_domain = nullptr);
  // A kStaged transaction that was neither committed nor aborted aborts.
  ~TypeTransaction();
  TypeTransaction(const TypeTransaction&) = delete;
  TypeTransaction& operator=(const TypeTransaction&) = delete;

  absl::Status CheckOwned(Mfn mfn) const {
    return CheckFrameOwned(*table_, mfn, domain_);
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

  void Commit();
  // REQUIRES: kStaged.
  void Abort();

  // After Commit(): the frames that this transaction left as page tables
  // with a type count of 0 (unhooked, unpinned, no longer a base pointer).
  // They may be retyped later, which FlushHooks::BeforeRetype gates.
  absl::Span<const Mfn> released_tables() const { return released_tables_; }

 private:
  struct Snapshot {
    Mfn mfn;
    uint32_t count;
    uint32_t type_count;
    PageType type;
    uint8_t flags;
  };

  // Snapshots the record before its first change in this transaction.
  PageInfo& Touch(Mfn mfn);
  absl::Status Validate(Mfn mfn, Level level);
  void Devalidate(Mfn mfn, Level level);
  static uint64_t EntryKey(Mfn table, uint32_t index) {
    return table.value() * kEntriesPerTable + index;
  }

  const FrameTable* const table_;
  const TlbClock* const clock_;
  const DomainId domain_;
  const Mode mode_;
  bool done_ = false;
  FlushHooks* const hooks_;
  const Domain* const hooks_domain_;

  // This transaction's id; a record whose txn_tag equals it is journaled.
  const uint64_t id_;
  // Each touched record once, in first-touch order.
  std::vector<Snapshot> snapshots_;
  // Applied by Commit(): rule 5 (generation) and rule 3 (stamp). May repeat.
  std::vector<Mfn> left_table_type_;
  std::vector<Mfn> type_count_hit_zero_;
  std::vector<Mfn> released_tables_;
  // kStaged only: latest staged value per entry, and all writes in order.
  absl::flat_hash_map<uint64_t, uint64_t> staged_;
  std::vector<std::pair<uint64_t, uint64_t>> staged_order_;
};

}  // namespace hvmm

#endif  // HVMM_MM_TYPE_TRANSACTION_H_
