// WalkTables: the lockless page-table walker (hardware's walk on a TLB miss).
//
// Translates a virtual address by reading a root L4 down to an L1 entry with
// acquire loads straight from frame contents, taking no lock. It is the model
// of Xen's spurious_page_fault(), Linux GUP-fast and KVM's lockless paths.
//
// Existence is the caller's business: a lockless walk is only safe inside a
// read-side section that the flush/grace-period machinery can see (a pCPU with
// interrupts off, DESIGN §2), or under the domain's lock. To let the safety
// oracle check that promise, the walk records, for every table it read, the
// frame and the generation it had *before* its entry was read (DESIGN §6);
// TablesUnchanged() re-reads them at the end.
//
// A walk may start below the root, from a table a paging-structure cache
// remembered (WalkStart): it then records that table with the generation the
// cache saw when it was filled, so a cache entry that outlived its table is
// caught like any other stale read.
//
// Thread-safety: WalkTables is safe against concurrent writers of the tables
// it reads; it never crashes on torn or stale contents, it just reports what
// it found.
#ifndef HVMM_MM_WALKER_H_
#define HVMM_MM_WALKER_H_

#include <array>
#include <cstdint>

#include "mm/frame_table.h"
#include "mm/types.h"

namespace hvmm {

enum class Access : uint8_t { kRead, kWrite };

enum class WalkOutcome : uint8_t {
  kOk,
  kNotPresent,      // An entry on the path is not present (fault_level says).
  kWriteProtected,  // A write through a path with a read-only entry.
  kBadFrame,        // An entry points beyond the frame table (never legal).
  kNonCanonical,    // The address is not canonical.
};

const char* WalkOutcomeName(WalkOutcome outcome);

struct WalkResult {
  WalkOutcome outcome = WalkOutcome::kOk;
  Level fault_level = Level::kL4;  // Level of the entry that faulted.
  Mfn mfn{0};                      // The data frame, when kOk.
  bool writable = false;           // RW set at every level.
  // The data frame's generation, read after the leaf entry (when kOk): a TLB
  // entry built from this walk is stale once it changes (coherence, §6).
  uint32_t data_generation = 0;
  // Level of tables[0]: kL4 for a walk from the root, lower for one that
  // started from a paging-structure cache entry.
  Level first_level = Level::kL4;
  // Tables read, first (highest) first, with their generations before each
  // read; tables[i] has level first_level - i.
  uint32_t tables_read = 0;
  std::array<Mfn, 4> tables{Mfn(0), Mfn(0), Mfn(0), Mfn(0)};
  std::array<uint32_t, 4> generations{};
  // Whether every entry above tables[i] allowed writes (for caches).
  std::array<bool, 4> writable_above{};

  bool ok() const { return outcome == WalkOutcome::kOk; }
};

// Optional hook run after each table read, before the next one; the torture
// tool uses it to widen the window a stale walker has (a failpoint).
using WalkDelayHook = void (*)(void* arg);

WalkResult WalkTables(const FrameTable& table, Mfn root, Vaddr va,
                      Access access, WalkDelayHook delay = nullptr,
                      void* delay_arg = nullptr);

// Where a walk below the root starts: a table of `level` (kL3..kL1) on va's
// path, its generation when the cache learnt it, and whether every entry
// above it allowed writes.
struct WalkStart {
  Mfn table{0};
  Level level = Level::kL3;
  uint32_t generation = 0;
  bool writable = true;
};

WalkResult WalkTablesFrom(const FrameTable& table, const WalkStart& start,
                          Vaddr va, Access access,
                          WalkDelayHook delay = nullptr,
                          void* delay_arg = nullptr);

// Whether every table the walk read still has the generation it recorded:
// false means one was freed or left its page-table type during the walk.
bool TablesUnchanged(const FrameTable& table, const WalkResult& walk);

}  // namespace hvmm

#endif  // HVMM_MM_WALKER_H_
