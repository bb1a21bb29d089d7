#include "mm/walker.h"

#include "mm/pte.h"

namespace hvmm {

const char* WalkOutcomeName(WalkOutcome outcome) {
  switch (outcome) {
    case WalkOutcome::kOk:
      return "ok";
    case WalkOutcome::kNotPresent:
      return "not-present";
    case WalkOutcome::kWriteProtected:
      return "write-protected";
    case WalkOutcome::kBadFrame:
      return "bad-frame";
    case WalkOutcome::kNonCanonical:
      return "non-canonical";
    case WalkOutcome::kNoBasePointer:
      return "no-base-pointer";
    case WalkOutcome::kUnstable:
      return "unstable";
  }
  return "invalid";
}

namespace {

// The pointer that led the walk to its current table or frame, to re-read.
struct Pointer {
  const std::atomic<uint64_t>* slot = nullptr;  // Null: nothing to re-read.
  bool base_pointer = false;  // EncodeBasePointer's format, else a PTE.
  uint64_t value = 0;

  bool present(uint64_t v) const {
    return base_pointer ? v != 0 : PtePresent(v);
  }
  Mfn target(uint64_t v) const {
    return base_pointer ? *DecodeBasePointer(v) : PteMfn(v);
  }
  bool writable(uint64_t v) const {
    return base_pointer || PteWritable(v);
  }
};

void RunHook(const WalkHooks& hooks, WalkPoint point, Level level) {
  if (hooks.fn != nullptr) hooks.fn(hooks.arg, point, level);
}

class Walker {
 public:
  Walker(const FrameTable& table, Vaddr va, Access access, WalkHooks hooks)
      : table_(table), va_(va), access_(access), hooks_(hooks) {}

  // Walks from `first`, a table of `first_level` that `pointer` (if it has a
  // slot) led to. `known_generation`: the first table's generation if a
  // cache recorded it, else read here. `writable`: entries above allow it.
  WalkResult Run(Mfn first, Level first_level, Pointer pointer,
                 const uint32_t* known_generation, bool writable) {
    r_.first_level = first_level;
    if (!va_.IsCanonical()) return Fail(WalkOutcome::kNonCanonical, first_level);
    Mfn current = first;
    // RW of every entry above `pointer`, and including it.
    bool writable_above_pointer = writable;
    writable = writable && (pointer.slot == nullptr || pointer.writable(pointer.value));
    for (int l = static_cast<int>(first_level); l >= 1;) {
      const Level level = static_cast<Level>(l);
      if (!table_.Contains(current)) return Fail(WalkOutcome::kBadFrame, level);
      const uint32_t generation =
          r_.tables_read == 0 && known_generation != nullptr
              ? *known_generation
              : table_.info(current).generation.load(std::memory_order_acquire);
      if (pointer.slot != nullptr) {
        const uint64_t again = pointer.slot->load(std::memory_order_acquire);
        if (again != pointer.value) {
          // Stale before `generation` was read: `current` may be reused
          // already. Follow the pointer's new value instead.
          if (++r_.retries > kMaxWalkRetries) {
            return Fail(WalkOutcome::kUnstable, level);
          }
          pointer.value = again;
          if (!pointer.present(again)) {
            return pointer.base_pointer
                       ? Fail(WalkOutcome::kNoBasePointer, Level::kL4)
                       : Fail(WalkOutcome::kNotPresent,
                              static_cast<Level>(l + 1));
          }
          writable = writable_above_pointer && pointer.writable(again);
          current = pointer.target(again);
          continue;
        }
      }
      const uint32_t slot = r_.tables_read++;
      r_.tables[slot] = current;
      r_.generations[slot] = generation;
      r_.writable_above[slot] = writable;
      RunHook(hooks_, WalkPoint::kTableReached, level);
      const std::atomic<uint64_t>& entry =
          table_.entries(current)[va_.TableIndex(level)];
      const uint64_t e = entry.load(std::memory_order_acquire);
      if (!PtePresent(e)) return Fail(WalkOutcome::kNotPresent, level);
      writable_above_pointer = writable;
      writable = writable && PteWritable(e);
      pointer = Pointer{&entry, false, e};
      current = PteMfn(e);
      --l;
      RunHook(hooks_, WalkPoint::kEntryRead, level);
    }
    // The data frame, with the leaf entry re-checked around its generation.
    for (;;) {
      if (!table_.Contains(current)) {
        return Fail(WalkOutcome::kBadFrame, Level::kL1);
      }
      const uint32_t generation =
          table_.info(current).generation.load(std::memory_order_acquire);
      const uint64_t again = pointer.slot->load(std::memory_order_acquire);
      if (again == pointer.value) {
        r_.data_generation = generation;
        break;
      }
      if (++r_.retries > kMaxWalkRetries) {
        return Fail(WalkOutcome::kUnstable, Level::kL1);
      }
      pointer.value = again;
      if (!PtePresent(again)) return Fail(WalkOutcome::kNotPresent, Level::kL1);
      writable = writable_above_pointer && PteWritable(again);
      current = PteMfn(again);
    }
    if (access_ == Access::kWrite && !writable) {
      return Fail(WalkOutcome::kWriteProtected, Level::kL1);
    }
    r_.mfn = current;
    r_.writable = writable;
    return r_;
  }

 private:
  WalkResult Fail(WalkOutcome outcome, Level level) {
    r_.outcome = outcome;
    r_.fault_level = level;
    return r_;
  }

  const FrameTable& table_;
  const Vaddr va_;
  const Access access_;
  const WalkHooks hooks_;
  WalkResult r_;
};

}  // namespace

WalkResult WalkTables(const FrameTable& table, Mfn root, Vaddr va,
                      Access access, WalkHooks hooks) {
  return Walker(table, va, access, hooks)
      .Run(root, Level::kL4, Pointer{}, nullptr, true);
}

WalkResult WalkFromBasePointer(const FrameTable& table,
                               const std::atomic<uint64_t>& base_pointer,
                               Vaddr va, Access access, WalkHooks hooks) {
  const uint64_t raw = base_pointer.load(std::memory_order_acquire);
  if (raw == 0) {
    WalkResult r;
    r.outcome = WalkOutcome::kNoBasePointer;
    return r;
  }
  RunHook(hooks, WalkPoint::kBasePointerRead, Level::kL4);
  return Walker(table, va, access, hooks)
      .Run(*DecodeBasePointer(raw), Level::kL4,
           Pointer{&base_pointer, true, raw}, nullptr, true);
}

WalkResult WalkTablesFrom(const FrameTable& table, const WalkStart& start,
                          Vaddr va, Access access, WalkHooks hooks) {
  return Walker(table, va, access, hooks)
      .Run(start.table, start.level, Pointer{}, &start.generation,
           start.writable);
}

bool TablesUnchanged(const FrameTable& table, const WalkResult& walk) {
  for (uint32_t i = 0; i < walk.tables_read; ++i) {
    if (table.info(walk.tables[i]).generation.load(
            std::memory_order_acquire) != walk.generations[i]) {
      return false;
    }
  }
  return true;
}

}  // namespace hvmm
