#include "mm/memory_manager.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"
#include "base/check.h"
#include "mm/audit.h"
#include "mm/mm_errors.h"
#include "mm/pte.h"
#include "mm/type_transaction.h"

namespace hvmm {
namespace {

absl::Status CheckBatchSize(uint64_t n, const char* what) {
  if (n > MemoryManager::kMaxBatch) {
    return MalformedArgumentError(absl::StrFormat(
        "%s: at most %u per call, got %u", what, MemoryManager::kMaxBatch, n));
  }
  return absl::OkStatus();
}

}  // namespace


absl::StatusOr<std::unique_ptr<MemoryManager>> MemoryManager::Create(
    const MemoryManagerOptions& options) {
  absl::StatusOr<std::unique_ptr<FrameTable>> table =
      FrameTable::Create(options.frame_count);
  if (!table.ok()) return table.status();
  return std::unique_ptr<MemoryManager>(
      new MemoryManager(*std::move(table), options));
}

MemoryManager::MemoryManager(std::unique_ptr<FrameTable> table,
                             const MemoryManagerOptions& options)
    : table_(std::move(table)),
      clock_(options.tlb_clock_start),
      allocator_(table_.get(), &clock_,
                 FrameAllocator::Options{options.allocator_shards}),
      immediate_retirer_(&allocator_),
      retirer_(&immediate_retirer_) {}

void MemoryManager::SetRetirer(FrameRetirer* retirer) {
  WriterMutexLock lock(&domains_mu_);
  HVMM_CHECK(domains_.empty()) << "retirer replaced while domains exist";
  retirer_ = retirer;
}

void MemoryManager::SetFlushHooks(FlushHooks* hooks) {
  WriterMutexLock lock(&domains_mu_);
  HVMM_CHECK(domains_.empty()) << "flush hooks replaced while domains exist";
  hooks_ = hooks;
}

TypeTransaction MemoryManager::NewTransaction(Domain& domain,
                                              TypeTransaction::Mode mode) {
  return TypeTransaction(table_.get(), &clock_, &domain, mode);
}

bool MemoryManager::LeavingFramesIncludeTables(
    absl::Span<const Mfn> frames) const {
  for (Mfn mfn : frames) {
    if (IsPageTableType(table_->info(mfn).type)) return true;
  }
  return false;
}

void MemoryManager::CommitLocked(Domain& domain, TypeTransaction& txn,
                                 absl::Span<const Mfn> leaving) {
  // 1. Unhook.
  txn.PublishRemovals();
  // 2. Flush: no pCPU uses a removed translation once this returns.
  if (hooks_ != nullptr && (txn.removed_mappings() || !leaving.empty())) {
    hooks_->AfterUnmap(domain, LeavingFramesIncludeTables(leaving));
  }
  // 3. Report the released tables: no new walk can reach them now.
  if (hooks_ != nullptr && !txn.released_tables().empty()) {
    hooks_->AfterTablesReleased(domain, txn.released_tables());
  }
  // 4. Wait until no walker reads a retyped table as its old self, nor
  // holds a writable translation of a page that is a table now.
  if (hooks_ != nullptr &&
      (!txn.retyped_tables().empty() || !txn.former_writable().empty())) {
    hooks_->BeforeRetype(domain, txn.retyped_tables(), txn.former_writable());
  }
  // 5. Publish the new entries.
  txn.PublishAdditions();
  for (const auto& [mfn, before] : txn.type_changes()) {
    const PageType after = table_->info(mfn).type;
    if (after != before) type_changes_.Add(TypeChangeIndex(before, after));
  }
  // 6. Retire.
  if (leaving.empty()) return;
  for (Mfn mfn : leaving) domain.ReleaseFrameLocked(*table_, mfn);
  retirer_->Retire(domain, leaving);
}

void MemoryManager::AfterAllocate(const Domain& domain, TlbStamp stamp) {
  if (hooks_ != nullptr) hooks_->AfterAllocate(domain, stamp);
}

std::shared_ptr<Domain> MemoryManager::FindDomain(DomainId domain) const {
  ReaderMutexLock lock(&domains_mu_);
  auto it = domains_.find(domain);
  return it == domains_.end() ? nullptr : it->second;
}

absl::StatusOr<MemoryManager::LockedDomain> MemoryManager::Lock(
    DomainId domain) const {
  std::shared_ptr<Domain> d = FindDomain(domain);
  if (d == nullptr) return UnknownDomainError(domain);
  LockedDomain locked(std::move(d));
  locked->mu().AssertHeld();  // Just taken by `locked`.
  if (locked->dying_locked()) return UnknownDomainError(domain);
  return locked;
}

absl::StatusOr<TlbStamp> MemoryManager::AllocateIntoLocked(
    Domain& domain, uint64_t count, std::vector<Mfn>* out) {
  const uint64_t tot = domain.tot_pages_locked();
  if (count > domain.max_pages() || tot > domain.max_pages() - count) {
    return QuotaExceededError(domain.id(), tot, domain.max_pages(), count);
  }
  const size_t first = out->size();
  TlbStamp stamp;
  for (uint64_t i = 0; i < count; ++i) {
    absl::StatusOr<Mfn> mfn = allocator_.Allocate();
    // Frames waiting for a grace period are not in use: reclaim them before
    // calling the pool exhausted (DESIGN §5, memory pressure).
    while (!mfn.ok() && retirer_->pending_frames() > 0 &&
           retirer_->Reclaim() > 0) {
      mfn = allocator_.Allocate();
    }
    if (!mfn.ok()) {
      // Never adopted nor visible: back to the pool without a trace.
      for (size_t j = first; j < out->size(); ++j) {
        allocator_.ReturnUnused((*out)[j]);
      }
      out->erase(out->begin() + first, out->end());
      // The allocator saw an empty pool only because this request held the
      // rest: say how much was asked and how much is free.
      return PoolExhaustedError(table_->frame_count(), count,
                                allocator_.free_frames());
    }
    stamp = std::max(stamp, table_->info(*mfn).tlbflush_timestamp.load(
                                std::memory_order_relaxed));
    out->push_back(*mfn);
  }
  for (size_t j = first; j < out->size(); ++j) {
    domain.AdoptFrameLocked(*table_, (*out)[j]);
  }
  // The allocation flush, before any use (Xen flushes in alloc_heap_pages):
  // another domain's stale TLB entry must not reach a frame this domain is
  // about to make a table or write.
  AfterAllocate(domain, stamp);
  return stamp;
}

absl::StatusOr<std::vector<Mfn>> MemoryManager::IncreaseReservation(
    DomainId id, uint64_t count) {
  if (count == 0) return MalformedArgumentError("count must be at least 1");
  if (absl::Status s = CheckBatchSize(count, "frames"); !s.ok()) return s;
  absl::StatusOr<LockedDomain> d = Lock(id);
  if (!d.ok()) return d.status();
  Domain& domain = **d;
  domain.mu().AssertHeld();  // Held by the LockedDomain.
  std::vector<Mfn> frames;
  absl::StatusOr<TlbStamp> stamp = AllocateIntoLocked(domain, count, &frames);
  if (!stamp.ok()) return stamp.status();
  return frames;
}

absl::Status MemoryManager::DecreaseReservation(DomainId id,
                                                absl::Span<const Mfn> frames) {
  if (frames.empty()) return MalformedArgumentError("no frames listed");
  if (absl::Status s = CheckBatchSize(frames.size(), "frames"); !s.ok()) {
    return s;
  }
  absl::StatusOr<LockedDomain> d = Lock(id);
  if (!d.ok()) return d.status();
  Domain& domain = **d;
  domain.mu().AssertHeld();  // Held by the LockedDomain.
  absl::flat_hash_set<Mfn> seen;
  for (Mfn mfn : frames) {
    if (absl::Status s = CheckFrameOwned(*table_, mfn, id); !s.ok()) return s;
    if (!seen.insert(mfn).second) {
      return MalformedArgumentError(
          absl::StrFormat("mfn 0x%x is listed twice", mfn.value()));
    }
    const PageInfo& info = table_->info(mfn);
    if (info.count != 1 || info.type_count != 0 || info.has(kPagePinned)) {
      return FrameInUseError(mfn, info.count, info.type_count);
    }
  }
  for (Mfn mfn : frames) {
    if (domain.root_locked() == mfn) domain.set_root_locked(std::nullopt);
  }
  // Unreferenced frames may still be cached, or walked if they were tables:
  // an empty transaction, so that they leave like every other frame.
  TypeTransaction txn = NewTransaction(domain, TypeTransaction::Mode::kStaged);
  CommitLocked(domain, txn, frames);
  return absl::OkStatus();
}

absl::Status MemoryManager::PinTable(DomainId id, Mfn mfn, Level level) {
  if (level < Level::kL1 || level > Level::kL4) {
    return MalformedArgumentError("level must be 1..4");
  }
  absl::StatusOr<LockedDomain> d = Lock(id);
  if (!d.ok()) return d.status();
  Domain& domain = **d;
  domain.mu().AssertHeld();  // Held by the LockedDomain.
  TypeTransaction txn = NewTransaction(domain, TypeTransaction::Mode::kStaged);
  if (absl::Status s = txn.CheckOwned(mfn); !s.ok()) return s;
  if (table_->info(mfn).has(kPagePinned)) return DoublePinError(mfn);
  if (absl::Status s = txn.GetPageAndType(mfn, TableTypeFor(level)); !s.ok()) {
    return s;  // txn aborts.
  }
  txn.SetPinned(mfn, true);
  CommitLocked(domain, txn);
  return absl::OkStatus();
}

absl::Status MemoryManager::UnpinTable(DomainId id, Mfn mfn) {
  absl::StatusOr<LockedDomain> d = Lock(id);
  if (!d.ok()) return d.status();
  Domain& domain = **d;
  domain.mu().AssertHeld();  // Held by the LockedDomain.
  TypeTransaction txn = NewTransaction(domain, TypeTransaction::Mode::kStaged);
  if (absl::Status s = txn.CheckOwned(mfn); !s.ok()) return s;
  if (!table_->info(mfn).has(kPagePinned)) return NotPinnedError(mfn);
  txn.SetPinned(mfn, false);
  txn.PutPageAndType(mfn);
  CommitLocked(domain, txn);
  return absl::OkStatus();
}

absl::Status MemoryManager::SetBasePointer(DomainId id, VcpuId vcpu,
                                           std::optional<Mfn> root) {
  absl::StatusOr<LockedDomain> d = Lock(id);
  if (!d.ok()) return d.status();
  Domain& domain = **d;
  domain.mu().AssertHeld();  // Held by the LockedDomain.
  if (vcpu.value() >= domain.vcpus()) {
    return UnknownVcpuError(id, vcpu, domain.vcpus());
  }
  TypeTransaction txn = NewTransaction(domain, TypeTransaction::Mode::kStaged);
  if (root) {
    if (absl::Status s = txn.GetPageAndType(*root, PageType::kL4); !s.ok()) {
      return s;
    }
  }
  const std::optional<Mfn> old = txn.ReadBasePointer(vcpu);
  txn.WriteBasePointer(vcpu, root);
  if (old) txn.PutPageAndType(*old);
  // A changed base pointer is a removed mapping: caches are tagged by
  // domain, not by root, so translations through the old root must go (Xen
  // flushes on new_guest_cr3).
  CommitLocked(domain, txn);
  return absl::OkStatus();
}

absl::Status MemoryManager::MmuUpdate(DomainId id,
                                      absl::Span<const EntryUpdate> updates) {
  if (updates.empty()) return MalformedArgumentError("no entry updates");
  if (absl::Status s = CheckBatchSize(updates.size(), "entry updates");
      !s.ok()) {
    return s;
  }
  absl::StatusOr<LockedDomain> d = Lock(id);
  if (!d.ok()) return d.status();
  Domain& domain = **d;
  domain.mu().AssertHeld();  // Held by the LockedDomain.
  TypeTransaction txn = NewTransaction(domain, TypeTransaction::Mode::kStaged);
  for (size_t i = 0; i < updates.size(); ++i) {
    const EntryUpdate& u = updates[i];
    // Errors name the update of the batch that failed.
    auto at = [&](const absl::Status& s) {
      return WithErrorContext(
          s, absl::StrFormat("update %u of %u", i, updates.size()));
    };
    if (u.index >= kEntriesPerTable) {
      return at(MalformedArgumentError(absl::StrFormat(
          "entry index %u is not below %u", u.index, kEntriesPerTable)));
    }
    if (absl::Status s = txn.CheckOwned(u.table); !s.ok()) return at(s);
    // The table's state as this batch has left it so far.
    const PageInfo& info = table_->info(u.table);
    if (!IsPageTableType(info.type) || info.type_count == 0) {
      return at(NotAPageTableError(u.table, info.type, info.type_count));
    }
    const Level level = LevelOf(info.type);
    const uint64_t old = txn.ReadEntry(u.table, u.index);
    if (PtePresent(u.entry)) {
      if (absl::Status s = txn.GetEntryRefs(u.table, u.index, u.entry, level);
          !s.ok()) {
        return at(s);
      }
    }
    txn.WriteEntry(u.table, u.index, u.entry);
    if (PtePresent(old)) txn.PutEntryRefs(old, level);
  }
  // Removals, flush, retype safety, then the new entries (CommitLocked):
  // Xen applies each update in turn; a batch keeps that order as a whole.
  CommitLocked(domain, txn);
  return absl::OkStatus();
}

absl::StatusOr<Mfn> MemoryManager::RangeRootLocked(const Domain& domain) const {
  std::optional<Mfn> root = domain.root_locked();
  if (!root) {
    return RootReleasedError(domain.id());
  }
  const PageInfo& info = table_->info(*root);
  if (info.type != PageType::kL4 || info.type_count == 0) {
    return NotAPageTableError(*root, info.type, info.type_count);
  }
  return *root;
}

absl::StatusOr<MapRangeResult> MemoryManager::MapRange(DomainId id,
                                                       Vaddr start,
                                                       uint64_t pages,
                                                       bool writable) {
  if (absl::Status s = CheckRange(start, pages); !s.ok()) return s;
  absl::StatusOr<LockedDomain> d = Lock(id);
  if (!d.ok()) return d.status();
  Domain& domain = **d;
  domain.mu().AssertHeld();  // Held by the LockedDomain.
  absl::StatusOr<Mfn> root = RangeRootLocked(domain);
  if (!root.ok()) return root.status();
  absl::StatusOr<uint64_t> tables =
      PlanMapRangeLocked(*table_, *root, start, pages);
  if (!tables.ok()) return tables.status();

  std::vector<Mfn> frames;
  absl::StatusOr<TlbStamp> stamp =
      AllocateIntoLocked(domain, *tables + pages, &frames);
  if (!stamp.ok()) return stamp.status();

  // Every frame is fresh, so any may become a table or a data page; the
  // install consumes exactly the planned number.
  TypeTransaction txn =
      NewTransaction(domain, TypeTransaction::Mode::kWriteThrough);
  InstallMapRangeLocked(txn, *root, start, pages, writable, frames);
  CommitLocked(domain, txn);
  MapRangeResult result;
  result.pages_mapped = pages;
  result.tables_created = *tables;
  result.alloc_flush_stamp = *stamp;
  return result;
}

absl::StatusOr<UnmapRangeResult> MemoryManager::UnmapRange(DomainId id,
                                                           Vaddr start,
                                                           uint64_t pages) {
  if (absl::Status s = CheckRange(start, pages); !s.ok()) return s;
  absl::StatusOr<LockedDomain> d = Lock(id);
  if (!d.ok()) return d.status();
  Domain& domain = **d;
  domain.mu().AssertHeld();  // Held by the LockedDomain.
  absl::StatusOr<Mfn> root = RangeRootLocked(domain);
  if (!root.ok()) return root.status();
  // Unhook the entries and drop their references; CommitLocked then
  // flushes and retires the frames left unreferenced.
  std::vector<Mfn> to_release;
  TypeTransaction txn =
      NewTransaction(domain, TypeTransaction::Mode::kWriteThrough);
  UnmapRangeResult result =
      UnhookRangeLocked(txn, *table_, *root, start, pages, &to_release);
  CommitLocked(domain, txn, to_release);
  return result;
}

absl::StatusOr<WalkResult> MemoryManager::Walk(DomainId id, VcpuId vcpu,
                                               Vaddr va, Access access) const {
  absl::StatusOr<LockedDomain> d = Lock(id);
  if (!d.ok()) return d.status();
  const Domain& domain = **d;
  domain.mu().AssertHeld();  // Held by the LockedDomain.
  if (vcpu.value() >= domain.vcpus()) {
    return UnknownVcpuError(id, vcpu, domain.vcpus());
  }
  if (!va.IsCanonical()) {
    return MalformedArgumentError(
        absl::StrFormat("address 0x%x is not canonical", va.value()));
  }
  std::optional<Mfn> root = domain.base_pointer(vcpu);
  if (!root) {
    return NoBasePointerError(id, vcpu);
  }
  return WalkTables(*table_, *root, va, access);
}

absl::StatusOr<FrameSnapshot> MemoryManager::InspectFrame(Mfn mfn) const {
  if (!table_->Contains(mfn)) return BadFrameError(mfn);
  const PageInfo& info = table_->info(mfn);
  for (;;) {
    const DomainId owner(info.owner.load(std::memory_order_acquire));
    FrameSnapshot snap;
    snap.generation = info.generation.load(std::memory_order_acquire);
    snap.tlbflush_timestamp =
        info.tlbflush_timestamp.load(std::memory_order_relaxed);
    if (!owner.valid()) return snap;  // Free or retiring: counts are all 0.
    std::shared_ptr<Domain> domain = FindDomain(owner);
    if (domain == nullptr) continue;  // Released meanwhile; look again.
    MutexLock lock(&domain->mu());
    if (info.owner.load(std::memory_order_relaxed) != owner.value()) continue;
    snap.owner = owner;
    snap.count = info.count;
    snap.type_count = info.type_count;
    snap.type = info.type;
    snap.validated = info.has(kPageValidated);
    snap.pinned = info.has(kPagePinned);
    snap.retiring = info.has(kPageRetiring);
    return snap;
  }
}

FrameCensus MemoryManager::CountOwnedFrames() const {
  std::vector<std::shared_ptr<Domain>> domains;
  {
    ReaderMutexLock registry_lock(&domains_mu_);
    for (const auto& [id, d] : domains_) domains.push_back(d);
  }
  FrameCensus census;
  for (const auto& d : domains) {
    MutexLock lock(&d->mu());
    for (Mfn mfn : d->owned_frames_locked()) {
      const PageType type = table_->info(mfn).type;
      if (type == PageType::kWritable) {
        ++census.writable;
      } else if (IsPageTableType(type)) {
        ++census.tables;
      } else {
        ++census.none;
      }
    }
  }
  return census;
}

// Locks every domain, in id order: a lock count the analysis cannot follow.
absl::Status MemoryManager::Audit() const ABSL_NO_THREAD_SAFETY_ANALYSIS {
  ReaderMutexLock registry_lock(&domains_mu_);
  std::vector<const Domain*> domains;
  for (const auto& [id, d] : domains_) domains.push_back(d.get());
  std::sort(domains.begin(), domains.end(),
            [](const Domain* a, const Domain* b) { return a->id() < b->id(); });
  for (const Domain* d : domains) d->mu().Lock();
  absl::Status status = AuditLocked(*table_, allocator_, *retirer_, domains);
  for (auto it = domains.rbegin(); it != domains.rend(); ++it) {
    (*it)->mu().Unlock();
  }
  return status;
}

}  // namespace hvmm
