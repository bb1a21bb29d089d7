#include "mm/type_transaction.h"

#include <atomic>

#include "base/check.h"
#include "mm/mm_errors.h"
#include "mm/pte.h"

namespace hvmm {
namespace {

// 0 is never issued: zero-filled records must not look journaled.
std::atomic<uint64_t> next_transaction_id{1};

}  // namespace

TypeTransaction::TypeTransaction(const FrameTable* table,
                                 const TlbClock* clock, Domain* domain,
                                 Mode mode)
    : table_(table),
      clock_(clock),
      domain_(domain),
      mode_(mode),
      id_(next_transaction_id.fetch_add(1, std::memory_order_relaxed) &
          ((uint64_t{1} << 48) - 1)) {}

TypeTransaction::~TypeTransaction() {
  if (phase_ == Phase::kDone) return;
  HVMM_CHECK(mode_ == Mode::kStaged && phase_ == Phase::kOpen)
      << "transaction abandoned in the middle of its commit, or a "
         "write-through transaction abandoned without one";
  Abort();
}

absl::Status CheckFrameOwned(const FrameTable& table, Mfn mfn,
                             DomainId domain) {
  if (!table.Contains(mfn)) return BadFrameError(mfn);
  if (table.info(mfn).owner.load(std::memory_order_relaxed) !=
      domain.value()) {
    return ForeignFrameError(mfn, domain);
  }
  return absl::OkStatus();
}

PageInfo& TypeTransaction::Touch(Mfn mfn) {
  HVMM_CHECK(phase_ == Phase::kOpen) << "change after the commit began";
  PageInfo& info = table_->info(mfn);
  if (info.txn_tag() != id_) {
    snapshots_.push_back(
        Snapshot{mfn, info.count, info.type_count, info.type, info.flags});
    info.set_txn_tag(id_);
  }
  return info;
}

absl::Status TypeTransaction::GetPage(Mfn mfn) {
  if (absl::Status s = CheckOwned(mfn); !s.ok()) return s;
  PageInfo& info = Touch(mfn);
  HVMM_CHECK(info.count >= 1) << mfn << " owned without allocation ref";
  ++info.count;
  return absl::OkStatus();
}

void TypeTransaction::PutPage(Mfn mfn) {
  PageInfo& info = Touch(mfn);
  // The allocation reference is dropped only by Domain::ReleaseFrameLocked.
  HVMM_CHECK(info.count >= 2) << mfn << " general count underflow";
  --info.count;
}

absl::Status TypeTransaction::GetPageType(Mfn mfn, PageType type) {
  if (absl::Status s = CheckOwned(mfn); !s.ok()) return s;
  PageInfo& info = table_->info(mfn);
  if (info.type_count > 0) {
    if (info.type != type) {
      return TypeConflictError(mfn, info.type, info.type_count, type);
    }
    Touch(mfn);
    ++info.type_count;
    return absl::OkStatus();
  }
  // Count 0: the type may change (rule 1) and must be (re)validated (rule 2).
  Touch(mfn);
  if (info.type != type) {
    // Nothing a caller sends reaches this in write-through mode: those
    // operations only type fresh frames (type none).
    HVMM_CHECK(mode_ == Mode::kStaged || info.type == PageType::kNone)
        << mfn << " would change type " << PageTypeName(info.type) << " -> "
        << PageTypeName(type) << " in a write-through transaction";
    // The new type first (Xen XSA-401); the commit keeps the promises
    // before the frame is used as one (file comment).
    if (type_changed_.insert(mfn).second) type_changes_.emplace_back(mfn, info.type);
  }
  info.type = type;
  info.clear(kPageValidated);
  info.type_count = 1;
  if (IsPageTableType(type)) {
    if (absl::Status s = Validate(mfn, LevelOf(type)); !s.ok()) return s;
  }
  info.set(kPageValidated);
  return absl::OkStatus();
}

void TypeTransaction::PutPageType(Mfn mfn) {
  PageInfo& info = Touch(mfn);
  HVMM_CHECK(info.type_count >= 1) << mfn << " type count underflow";
  if (--info.type_count > 0) return;
  type_count_hit_zero_.push_back(mfn);
  if (!IsPageTableType(info.type)) return;
  if (released_set_.insert(mfn).second) released_tables_.push_back(mfn);
  if (info.has(kPageValidated)) {
    info.clear(kPageValidated);
    Devalidate(mfn, LevelOf(info.type));
  }
}

absl::Status TypeTransaction::GetPageAndType(Mfn mfn, PageType type) {
  if (absl::Status s = GetPage(mfn); !s.ok()) return s;
  return GetPageType(mfn, type);
}

void TypeTransaction::PutPageAndType(Mfn mfn) {
  PutPageType(mfn);
  PutPage(mfn);
}

absl::Status TypeTransaction::Validate(Mfn mfn, Level level) {
  for (uint32_t i = 0; i < kEntriesPerTable; ++i) {
    const uint64_t e = ReadEntry(mfn, i);
    if (!PtePresent(e)) continue;
    if (absl::Status s = GetEntryRefs(mfn, i, e, level); !s.ok()) return s;
  }
  return absl::OkStatus();
}

void TypeTransaction::Devalidate(Mfn mfn, Level level) {
  for (uint32_t i = 0; i < kEntriesPerTable; ++i) {
    const uint64_t e = ReadEntry(mfn, i);
    if (PtePresent(e)) PutEntryRefs(e, level);
  }
}

absl::Status TypeTransaction::GetEntryRefs(Mfn table, uint32_t index,
                                           uint64_t entry, Level level) {
  if ((entry & kPteLarge) != 0) {
    return IllegalEntryError(table, index, entry,
                             "large pages are not supported");
  }
  if (!PteFlagsLegal(entry)) {
    return IllegalEntryError(table, index, entry, "reserved bits set");
  }
  const Mfn target = PteMfn(entry);
  if (level == Level::kL1) {
    if (absl::Status s = GetPage(target); !s.ok()) return s;
    if (PteWritable(entry)) return GetPageType(target, PageType::kWritable);
    return absl::OkStatus();
  }
  return GetPageAndType(target, TableTypeFor(LowerLevel(level)));
}

void TypeTransaction::PutEntryRefs(uint64_t entry, Level level) {
  const Mfn target = PteMfn(entry);
  if (level == Level::kL1) {
    if (PteWritable(entry)) PutPageType(target);
    PutPage(target);
    return;
  }
  PutPageAndType(target);
}

void TypeTransaction::SetPinned(Mfn mfn, bool pinned) {
  PageInfo& info = Touch(mfn);
  if (pinned) {
    info.set(kPagePinned);
  } else {
    info.clear(kPagePinned);
  }
}

uint64_t TypeTransaction::ReadEntry(Mfn table, uint32_t index) const {
  if (!staged_.empty()) {
    auto it = staged_.find(EntryKey(table, index));
    if (it != staged_.end()) return it->second;
  }
  return table_->entries(table)[index].load(std::memory_order_relaxed);
}

void TypeTransaction::StoreEntry(uint64_t key, uint64_t entry) const {
  table_->entries(Mfn(key / kEntriesPerTable))[key % kEntriesPerTable].store(
      entry, std::memory_order_release);
}

void TypeTransaction::WriteEntry(Mfn table, uint32_t index, uint64_t entry) {
  HVMM_CHECK(index < kEntriesPerTable);
  Touch(table).set(kPageNeedScrub);
  const uint64_t key = EntryKey(table, index);
  if (mode_ == Mode::kWriteThrough) {
    removed_mappings_ =
        removed_mappings_ ||
        PtePresent(table_->entries(table)[index].load(std::memory_order_relaxed));
    StoreEntry(key, entry);
    return;
  }
  if (staged_.insert_or_assign(key, entry).second) staged_order_.push_back(key);
}

std::optional<Mfn> TypeTransaction::ReadBasePointer(VcpuId vcpu) const {
  auto it = staged_roots_.find(vcpu.value());
  if (it != staged_roots_.end()) return it->second;
  return domain_->base_pointer(vcpu);
}

void TypeTransaction::WriteBasePointer(VcpuId vcpu, std::optional<Mfn> root) {
  domain_->mu().AssertHeld();  // For the transaction's life (the contract).
  HVMM_CHECK(phase_ == Phase::kOpen && vcpu.value() < domain_->vcpus());
  if (mode_ == Mode::kWriteThrough) {
    removed_mappings_ =
        removed_mappings_ || domain_->base_pointer(vcpu).has_value();
    domain_->set_base_pointer_locked(vcpu, root);
    return;
  }
  if (staged_roots_.insert_or_assign(vcpu.value(), root).second) {
    staged_roots_order_.push_back(vcpu.value());
  }
}

void TypeTransaction::PublishRemovals() {
  domain_->mu().AssertHeld();  // For the transaction's life (the contract).
  HVMM_CHECK(phase_ == Phase::kOpen) << "PublishRemovals called twice";
  phase_ = Phase::kRemovalsPublished;
  const TlbStamp now = clock_->Now();
  for (Mfn mfn : type_count_hit_zero_) {
    table_->info(mfn).tlbflush_timestamp.store(now, std::memory_order_relaxed);
  }
  // Rule 5, net: the type before the transaction against the type now.
  for (const auto& [mfn, before] : type_changes_) {
    const PageType now_type = table_->info(mfn).type;
    if (now_type == before) continue;
    if (IsPageTableType(before)) {
      retyped_tables_.push_back(mfn);
    } else if (before == PageType::kWritable) {
      left_writable_.push_back(mfn);
    }
  }
  if (mode_ == Mode::kWriteThrough) return;  // Everything is visible.
  // Without a type change nothing waits: publish the final values now.
  const bool wait = ordered();
  for (uint64_t key : staged_order_) {
    const uint64_t old = table_->entries(Mfn(key / kEntriesPerTable))
                             [key % kEntriesPerTable]
                                 .load(std::memory_order_relaxed);
    const uint64_t final_entry = staged_.at(key);
    const bool removal = PtePresent(old) && old != final_entry;
    removed_mappings_ = removed_mappings_ || removal;
    if (!wait) {
      StoreEntry(key, final_entry);
    } else if (removal) {
      StoreEntry(key, PtePresent(final_entry) ? 0 : final_entry);
    }
  }
  for (uint32_t v : staged_roots_order_) {
    const std::optional<Mfn> old = domain_->base_pointer(VcpuId(v));
    const std::optional<Mfn> final_root = staged_roots_.at(v);
    const bool removal = old.has_value() && old != final_root;
    removed_mappings_ = removed_mappings_ || removal;
    if (!wait) {
      domain_->set_base_pointer_locked(VcpuId(v), final_root);
    } else if (removal) {
      domain_->set_base_pointer_locked(VcpuId(v), std::nullopt);
    }
  }
}

void TypeTransaction::PublishAdditions() {
  domain_->mu().AssertHeld();  // For the transaction's life (the contract).
  HVMM_CHECK(phase_ == Phase::kRemovalsPublished)
      << "PublishAdditions before PublishRemovals";
  phase_ = Phase::kDone;
  if (!ordered()) return;  // PublishRemovals published everything.
  // Rule 5 before any new use is reachable: a walker or TLB entry that
  // still sees the old frame finds its generation changed.
  for (Mfn mfn : retyped_tables_) {
    table_->info(mfn).generation.fetch_add(1, std::memory_order_release);
  }
  for (Mfn mfn : left_writable_) {
    table_->info(mfn).generation.fetch_add(1, std::memory_order_release);
  }
  if (mode_ == Mode::kWriteThrough) return;
  for (uint64_t key : staged_order_) StoreEntry(key, staged_.at(key));
  for (uint32_t v : staged_roots_order_) {
    domain_->set_base_pointer_locked(VcpuId(v), staged_roots_.at(v));
  }
}

void TypeTransaction::Abort() {
  HVMM_CHECK(phase_ == Phase::kOpen && mode_ == Mode::kStaged)
      << "only an open staged transaction can abort";
  phase_ = Phase::kDone;
  for (const Snapshot& snap : snapshots_) {
    PageInfo& info = table_->info(snap.mfn);
    info.count = snap.count;
    info.type_count = snap.type_count;
    info.type = snap.type;
    info.flags = snap.flags;
  }
}

}  // namespace hvmm
