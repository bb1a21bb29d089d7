// MapRange and UnmapRange: building and tearing down a domain's mappings.
//
// MapRange maps `pages` fresh data frames at [start, start + pages * 4 KiB)
// under a root L4, creating any missing L3/L2/L1 tables. It plans first
// (PlanMapRangeLocked: no page in the range may be mapped; count the tables
// to create), so that quota and pool checks happen before anything changes;
// InstallMapRangeLocked then cannot fail.
//
// UnmapRange clears every present leaf in the range, drops the data frames'
// references, and unhooks every table the range leaves empty. Frames whose
// last reference went away (data frames, emptied tables) are returned for the
// caller to release and retire, after committing and flushing: the order is
// unhook -> flush -> retire (DESIGN §4). Unmapped holes in the range are
// skipped, as munmap does.
//
// Thread-safety: REQUIRES the domain's lock, held across plan and install.
#ifndef HVMM_MM_ADDRESS_SPACE_H_
#define HVMM_MM_ADDRESS_SPACE_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "mm/frame_table.h"
#include "mm/type_transaction.h"
#include "mm/types.h"

namespace hvmm {

// At most 2^27 pages (512 GiB) per call, so one call's work is bounded.
inline constexpr uint64_t kMaxRangePages = uint64_t{1} << 27;

struct MapRangeResult {
  uint64_t pages_mapped = 0;
  uint64_t tables_created = 0;
  // Highest tlbflush_timestamp among the frames allocated: the allocation
  // flush may skip CPUs that flushed after it.
  TlbStamp alloc_flush_stamp;
};

struct UnmapRangeResult {
  uint64_t pages_unmapped = 0;
  uint64_t tables_unhooked = 0;
  uint64_t frames_released = 0;  // Data frames and tables handed to retire.
};

// kInvalidArgument unless pages is in [1, kMaxRangePages], start is
// page-aligned and canonical, and the range stays in one canonical half.
absl::Status CheckRange(Vaddr start, uint64_t pages);

// Number of tables MapRange must create; kAlreadyExists if a page in the
// range is mapped; kFailedPrecondition if the range reaches one existing
// table through two different entries (aliased tables: the install works by
// address, and would write one entry twice). REQUIRES: CheckRange passed; root is a validated L4.
absl::StatusOr<uint64_t> PlanMapRangeLocked(const FrameTable& table, Mfn root,
                                            Vaddr start, uint64_t pages);

// Maps the range. `frames` holds exactly the planned tables plus `pages`
// data frames, all freshly adopted by the domain. REQUIRES: a kWriteThrough
// transaction and a successful plan under the same lock hold.
void InstallMapRangeLocked(TypeTransaction& txn, Mfn root, Vaddr start,
                           uint64_t pages, bool writable,
                           absl::Span<const Mfn> frames);

// Unhooks the range. Appends to `to_release` every frame left with only its
// allocation reference. REQUIRES: a kWriteThrough transaction.
UnmapRangeResult UnhookRangeLocked(TypeTransaction& txn,
                                   const FrameTable& table, Mfn root,
                                   Vaddr start, uint64_t pages,
                                   std::vector<Mfn>* to_release);

}  // namespace hvmm

#endif  // HVMM_MM_ADDRESS_SPACE_H_
