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

WalkResult WalkTables(const FrameTable& table, Mfn root, Vaddr va,
                      Access access, WalkDelayHook delay, void* delay_arg) {
  WalkResult r;
  if (!va.IsCanonical()) {
    r.outcome = WalkOutcome::kNonCanonical;
    return r;
  }
  bool writable = true;
  Mfn current = root;
  for (int l = 4; l >= 1; --l) {
    const Level level = static_cast<Level>(l);
    if (!table.Contains(current)) {
      r.outcome = WalkOutcome::kBadFrame;
      r.fault_level = level;
      return r;
    }
    const uint32_t slot = r.tables_read++;
    r.tables[slot] = current;
    r.generations[slot] =
        table.info(current).generation.load(std::memory_order_acquire);
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
