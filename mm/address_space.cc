#include "mm/address_space.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"
#include "base/check.h"
#include "mm/mm_errors.h"
#include "mm/pte.h"

namespace hvmm {
namespace {

// Intermediate entries are permissive; the leaf decides the access.
constexpr uint64_t kTableEntryFlags = kPtePresent | kPteWritable | kPteUser;

// log2 of the bytes one entry of `level` covers.
constexpr int EntryShift(Level level) {
  return kPageShift + 9 * (static_cast<int>(level) - 1);
}

bool TableEmpty(const TypeTransaction& txn, Mfn table) {
  for (uint32_t i = 0; i < kEntriesPerTable; ++i) {
    if (PtePresent(txn.ReadEntry(table, i))) return false;
  }
  return true;
}

}  // namespace

absl::Status CheckRange(Vaddr start, uint64_t pages) {
  if (pages == 0 || pages > kMaxRangePages) {
    return MalformedArgumentError(absl::StrFormat(
        "page count must be in [1, %u], got %u", kMaxRangePages, pages));
  }
  if (!start.IsPageAligned()) {
    return MalformedArgumentError(absl::StrFormat(
        "start address 0x%x is not 4 KiB aligned", start.value()));
  }
  const Vaddr last = start.PlusPages(pages - 1);
  if (!start.IsCanonical() || !last.IsCanonical() ||
      (start.value() >> 47) != (last.value() >> 47) || last.value() < start.value()) {
    return MalformedArgumentError(absl::StrFormat(
        "range 0x%x + %u pages leaves the canonical address space",
        start.value(), pages));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> PlanMapRangeLocked(const FrameTable& table, Mfn root,
                                            Vaddr start, uint64_t pages) {
  // Missing tables, keyed by (level, the address bits above that table).
  absl::flat_hash_set<std::pair<int, uint64_t>> missing;
  // Existing tables below the root, with the first address that reached
  // each. Two addresses of different spans reaching one table are aliases:
  // the install, which works by address, would then write one entry twice
  // (or create one missing table twice), so the range is refused.
  absl::flat_hash_map<Mfn, Vaddr> reached;
  for (uint64_t p = 0; p < pages; ++p) {
    const Vaddr va = start.PlusPages(p);
    Mfn current = root;
    int l = 4;
    for (; l >= 2; --l) {
      const Level level = static_cast<Level>(l);
      const uint64_t e = table.entries(current)[va.TableIndex(level)].load(
          std::memory_order_relaxed);
      if (!PtePresent(e)) break;
      current = PteMfn(e);
      // `current` is a table of level l-1 spanning the bits above EntryShift.
      auto [it, first] = reached.try_emplace(current, va);
      if (!first && (it->second.value() >> EntryShift(level)) !=
                        (va.value() >> EntryShift(level))) {
        return AliasedTablesError(current, LowerLevel(level), it->second, va);
      }
    }
    if (l >= 2) {
      // Tables of levels l-1 .. 1 are missing on this path.
      for (int m = l - 1; m >= 1; --m) {
        missing.emplace(m, va.value() >> EntryShift(static_cast<Level>(m + 1)));
      }
      continue;
    }
    const uint64_t leaf = table.entries(current)[va.TableIndex(Level::kL1)].load(
        std::memory_order_relaxed);
    if (PtePresent(leaf)) return MappingExistsError(va);
  }
  return missing.size();
}

void InstallMapRangeLocked(TypeTransaction& txn, Mfn root, Vaddr start,
                           uint64_t pages, bool writable,
                           absl::Span<const Mfn> frames) {
  size_t next_frame = 0;
  auto take = [&]() {
    HVMM_CHECK(next_frame < frames.size()) << "MapRange plan too small";
    return frames[next_frame++];
  };
  const uint64_t leaf_flags =
      kPtePresent | kPteUser | (writable ? kPteWritable : 0);
  for (uint64_t p = 0; p < pages; ++p) {
    const Vaddr va = start.PlusPages(p);
    Mfn current = root;
    for (int l = 4; l >= 2; --l) {
      const Level level = static_cast<Level>(l);
      const uint32_t index = va.TableIndex(level);
      const uint64_t e = txn.ReadEntry(current, index);
      if (PtePresent(e)) {
        current = PteMfn(e);
        continue;
      }
      const Mfn child = take();
      const uint64_t entry = MakePte(child, kTableEntryFlags);
      const absl::Status s = txn.GetEntryRefs(current, index, entry, level);
      HVMM_CHECK(s.ok()) << "planned table install failed: " << s;
      txn.WriteEntry(current, index, entry);
      current = child;
    }
    const Mfn data = take();
    const uint32_t index = va.TableIndex(Level::kL1);
    const uint64_t entry = MakePte(data, leaf_flags);
    const absl::Status s = txn.GetEntryRefs(current, index, entry, Level::kL1);
    HVMM_CHECK(s.ok()) << "planned leaf install failed: " << s;
    txn.WriteEntry(current, index, entry);
  }
  HVMM_CHECK(next_frame == frames.size()) << "MapRange plan too large";
}

namespace {

struct Unhooker {
  TypeTransaction& txn;
  const FrameTable& table;
  std::vector<Mfn>* to_release;
  UnmapRangeResult result;

  // A frame whose only remaining reference is its allocation can go.
  void ReleaseIfUnreferenced(Mfn mfn) {
    const PageInfo& info = table.info(mfn);
    if (info.count == 1 && info.type_count == 0) to_release->push_back(mfn);
  }

  // Unhooks [first, last] (inclusive addresses) within `t`, a table of
  // `level` whose span starts at `base`.
  void Unhook(Mfn t, Level level, uint64_t base, uint64_t first,
              uint64_t last) {
    const int shift = EntryShift(level);
    const uint32_t lo = static_cast<uint32_t>((first - base) >> shift);
    const uint32_t hi = static_cast<uint32_t>((last - base) >> shift);
    for (uint32_t i = lo; i <= hi; ++i) {
      const uint64_t e = txn.ReadEntry(t, i);
      if (!PtePresent(e)) continue;
      const Mfn target = PteMfn(e);
      if (level == Level::kL1) {
        txn.WriteEntry(t, i, 0);
        txn.PutEntryRefs(e, Level::kL1);
        ++result.pages_unmapped;
        ReleaseIfUnreferenced(target);
        continue;
      }
      const uint64_t child_base = base + (uint64_t{i} << shift);
      const uint64_t child_last = child_base + ((uint64_t{1} << shift) - 1);
      Unhook(target, LowerLevel(level), child_base, std::max(first, child_base),
             std::min(last, child_last));
      if (!TableEmpty(txn, target)) continue;
      txn.WriteEntry(t, i, 0);  // Unhook first ...
      txn.PutEntryRefs(e, level);  // ... then drop the table's references.
      ++result.tables_unhooked;
      ReleaseIfUnreferenced(target);
    }
  }
};

}  // namespace

UnmapRangeResult UnhookRangeLocked(TypeTransaction& txn,
                                   const FrameTable& table, Mfn root,
                                   Vaddr start, uint64_t pages,
                                   std::vector<Mfn>* to_release) {
  Unhooker u{txn, table, to_release, {}};
  // Work on the 48-bit address; the root spans the whole half it is in.
  const uint64_t mask48 = (uint64_t{1} << 48) - 1;
  const uint64_t first = start.value() & mask48;
  const uint64_t last = start.PlusPages(pages - 1).value() & mask48;
  u.Unhook(root, Level::kL4, 0, first, last);
  u.result.frames_released = to_release->size();
  return u.result;
}

}  // namespace hvmm
