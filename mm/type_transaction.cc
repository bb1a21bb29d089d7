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
                                 const TlbClock* clock, DomainId domain,
                                 Mode mode, FlushHooks* hooks,
                                 const Domain* hooks_domain)
    : table_(table),
      clock_(clock),
      domain_(domain),
      mode_(mode),
      hooks_(hooks),
      hooks_domain_(hooks_domain),
      id_(next_transaction_id.fetch_add(1, std::memory_order_relaxed) &
          ((uint64_t{1} << 48) - 1)) {}

TypeTransaction::~TypeTransaction() {
  if (done_) return;
  HVMM_CHECK(mode_ == Mode::kStaged)
      << "write-through transaction abandoned without Commit()";
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
    const bool leaves_table_type = IsPageTableType(info.type);
    info.type = type;  // The new type first (Xen XSA-401) ...
    if (leaves_table_type) {
      left_table_type_.push_back(mfn);
      // ... then make sure no walker or cache still sees the old table.
      if (hooks_ != nullptr) hooks_->BeforeRetype(*hooks_domain_, mfn);
    }
  }
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
  if (IsPageTableType(info.type) && info.has(kPageValidated)) {
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

void TypeTransaction::WriteEntry(Mfn table, uint32_t index, uint64_t entry) {
  HVMM_CHECK(!done_ && index < kEntriesPerTable);
  Touch(table).set(kPageNeedScrub);
  if (mode_ == Mode::kWriteThrough) {
    table_->entries(table)[index].store(entry, std::memory_order_release);
    return;
  }
  const uint64_t key = EntryKey(table, index);
  staged_[key] = entry;
  staged_order_.emplace_back(key, entry);
}

void TypeTransaction::Commit() {
  HVMM_CHECK(!done_);
  done_ = true;
  const uint32_t now = clock_->Now();
  for (Mfn mfn : type_count_hit_zero_) {
    PageInfo& info = table_->info(mfn);
    info.tlbflush_timestamp.store(now, std::memory_order_relaxed);
    if (info.type_count == 0 && IsPageTableType(info.type)) {
      released_tables_.push_back(mfn);
    }
  }
  for (Mfn mfn : left_table_type_) {
    table_->info(mfn).generation.fetch_add(1, std::memory_order_release);
  }
  for (const auto& [key, entry] : staged_order_) {
    const Mfn table(key / kEntriesPerTable);
    table_->entries(table)[key % kEntriesPerTable].store(
        entry, std::memory_order_release);
  }
}

void TypeTransaction::Abort() {
  HVMM_CHECK(!done_ && mode_ == Mode::kStaged)
      << "only an open staged transaction can abort";
  done_ = true;
  for (const Snapshot& snap : snapshots_) {
    PageInfo& info = table_->info(snap.mfn);
    info.count = snap.count;
    info.type_count = snap.type_count;
    info.type = snap.type;
    info.flags = snap.flags;
  }
}

}  // namespace hvmm
