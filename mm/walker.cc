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
  }
  return "invalid";
}

namespace {

// `known_generation`: the first table's generation if already known (from
// a cache), else read here like every other table's.
WalkResult Walk(const FrameTable& table, Mfn first, Level first_level,
                const uint32_t* known_generation, bool writable, Vaddr va,
                Access access, WalkDelayHook delay, void* delay_arg) {
  WalkResult r;
  r.first_level = first_level;
  if (!va.IsCanonical()) {
    r.outcome = WalkOutcome::kNonCanonical;
    return r;
  }
  Mfn current = first;
  for (int l = static_cast<int>(first_level); l >= 1; --l) {
    const Level level = static_cast<Level>(l);
    if (!table.Contains(current)) {
      r.outcome = WalkOutcome::kBadFrame;
      r.fault_level = level;
      return r;
    }
    const uint32_t slot = r.tables_read++;
    r.tables[slot] = current;
    r.writable_above[slot] = writable;
    r.generations[slot] =
        slot == 0 && known_generation != nullptr
            ? *known_generation
            : table.info(current).generation.load(std::memory_order_acquire);
    const uint64_t e =
        table.entries(current)[va.TableIndex(level)].load(
            std::memory_order_acquire);
    if (delay != nullptr) delay(delay_arg);
    if (!PtePresent(e)) {
      r.outcome = WalkOutcome::kNotPresent;
      r.fault_level = level;
      return r;
    }
    writable = writable && PteWritable(e);
    current = PteMfn(e);
  }
  if (!table.Contains(current)) {
    r.outcome = WalkOutcome::kBadFrame;
    r.fault_level = Level::kL1;
    return r;
  }
  if (access == Access::kWrite && !writable) {
    r.outcome = WalkOutcome::kWriteProtected;
    r.fault_level = Level::kL1;
    return r;
  }
  r.mfn = current;
  r.writable = writable;
  r.data_generation =
      table.info(current).generation.load(std::memory_order_acquire);
  return r;
}

}  // namespace

WalkResult WalkTables(const FrameTable& table, Mfn root, Vaddr va,
                      Access access, WalkDelayHook delay, void* delay_arg) {
  return Walk(table, root, Level::kL4, nullptr, true, va, access, delay,
              delay_arg);
}

WalkResult WalkTablesFrom(const FrameTable& table, const WalkStart& start,
                          Vaddr va, Access access, WalkDelayHook delay,
                          void* delay_arg) {
  return Walk(table, start.table, start.level, &start.generation,
              start.writable, va, access, delay, delay_arg);
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
