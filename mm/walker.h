// The lockless page-table walker (hardware's walk on a TLB miss).
//
// Translates a virtual address by reading a root L4 down to an L1 entry with
// acquire loads straight from frame contents, taking no lock. It is the model
// of Xen's spurious_page_fault(), Linux GUP-fast and KVM's lockless paths.
//
// Existence is the caller's business: a lockless walk is only safe inside a
// read-side section that the flush/grace-period machinery can see (a pCPU with
// interrupts off, DESIGN §2), or under the domain's lock. To let the safety
// oracle check that promise, the walk records, for every table it read, the
// frame and its generation (DESIGN §6); TablesUnchanged() re-reads them at
// the end.
//
// The window the seed bug lives in is between reading a pointer to a table
// (an entry, a base pointer) and reading the table. The record must cover
// it, so the walk reads the table's generation and then re-reads the pointer,
// as GUP-fast re-checks the PTE after taking its reference:
//
//   read pointer P -> T     [kEntryRead, kBasePointerRead]
//   read T's generation G
//   re-read P: still T?     no: the pointer went stale before G was read,
//                           and T may already be reused; follow P's new
//                           value instead (a retry), never T
//   record (T, G)           [kTableReached]  <- the seed bug's window
//   read T's entry, ...
//
// So every table the walk reads was reachable, with generation G, at a
// moment after its pointer was read: a free or retype of T that completes
// before the walk ends is caught, whenever it happened after the pointer
// read. The leaf entry is re-checked the same way around the data frame's
// generation, which TLB entries record for the coherence check.
//
// A walk may start below the root, from a table a paging-structure cache
// remembered (WalkStart): it then records that table with the generation the
// cache saw when it was filled, so a cache entry that outlived its table is
// caught like any other stale read.
//
// Hooks: an optional callback at each WalkPoint, for failpoints (the torture
// tool's --walk-delay-ns spins at kTableReached) and for tests that change
// the tables at an exact point of a walk.
//
// Thread-safety: the walks are safe against concurrent writers of the tables
// they read; they never crash on torn or stale contents, they just report
// what they found.
#ifndef HVMM_MM_WALKER_H_
#define HVMM_MM_WALKER_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>

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
  kNoBasePointer,   // The vCPU has no root.
  kUnstable,        // The path kept changing under the walk (kMaxWalkRetries).
};

const char* WalkOutcomeName(WalkOutcome outcome);

// Pointer re-reads a walk tolerates before it gives up with kUnstable (a
// fault the guest retries), so that a walk always ends.
inline constexpr uint32_t kMaxWalkRetries = 64;

struct WalkResult {
  WalkOutcome outcome = WalkOutcome::kOk;
  Level fault_level = Level::kL4;  // Level of the entry that faulted.
  Mfn mfn{0};                      // The data frame, when kOk.
  bool writable = false;           // RW set at every level.
  // The data frame's generation, read after the leaf entry and re-checked
  // with it (when kOk): a TLB entry built from this walk is stale once it
  // changes (coherence, §6).
  uint32_t data_generation = 0;
  // Level of tables[0]: kL4 for a walk from the root, lower for one that
  // started from a paging-structure cache entry.
  Level first_level = Level::kL4;
  // Tables read, first (highest) first, with their generations while their
  // pointer still led to them; tables[i] has level first_level - i.
  uint32_t tables_read = 0;
  std::array<Mfn, 4> tables{Mfn(0), Mfn(0), Mfn(0), Mfn(0)};
  std::array<uint32_t, 4> generations{};
  // Whether every entry above tables[i] allowed writes (for caches).
  std::array<bool, 4> writable_above{};
  // Pointers found changed on their re-read (file comment).
  uint32_t retries = 0;

  bool ok() const { return outcome == WalkOutcome::kOk; }
};

// Where a hook runs (with `level` as said):
enum class WalkPoint : uint8_t {
  kBasePointerRead,  // The base pointer was just read (level kL4).
  kEntryRead,        // An entry of a table of `level` was just read; the
                     // table or frame it points to is not touched yet.
  kTableReached,     // The table of `level`: its generation is recorded and
                     // its pointer re-checked; its entry is not read yet.
};
struct WalkHooks {
  void (*fn)(void* arg, WalkPoint point, Level level) = nullptr;
  void* arg = nullptr;
};

// A vCPU base pointer as stored for lockless readers: 0 for none, else the
// root's mfn + 1 (Domain keeps its base pointers this way).
inline uint64_t EncodeBasePointer(std::optional<Mfn> root) {
  return root ? root->value() + 1 : 0;
}
inline std::optional<Mfn> DecodeBasePointer(uint64_t raw) {
  if (raw == 0) return std::nullopt;
  return Mfn(raw - 1);
}

// From a root the caller holds stable (under the domain's lock).
WalkResult WalkTables(const FrameTable& table, Mfn root, Vaddr va,
                      Access access, WalkHooks hooks = {});

// From a base pointer read locklessly; the root is re-checked like any
// other table (file comment).
WalkResult WalkFromBasePointer(const FrameTable& table,
                               const std::atomic<uint64_t>& base_pointer,
                               Vaddr va, Access access, WalkHooks hooks = {});

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
                          Vaddr va, Access access, WalkHooks hooks = {});

// Whether every table the walk read still has the generation it recorded:
// false means one was freed or left its page-table type during the walk.
bool TablesUnchanged(const FrameTable& table, const WalkResult& walk);

}  // namespace hvmm

#endif  // HVMM_MM_WALKER_H_
