// AuditLocked: checks every mm invariant over a consistent snapshot.
//
// The invariants (docs/INVARIANTS.md):
//   1. Every frame is in exactly one place: free in the allocator, retiring in
//      the retirer, or owned by exactly one domain (and listed by it).
//   2. Free and retiring frames have no owner and no references.
//   3. Each frame's general count is 1 (allocation) + present entries in
//      validated tables pointing at it + pins + base pointers.
//   4. Each type count equals the references that hold that type: pins, base
//      pointers, upper-level entries, writable L1 entries; and each such
//      reference finds the type it needs (isolation: no frame is both a page
//      table and writably mapped).
//   5. Validated tables have a non-zero type count and reference only their
//      own domain's frames; pins are only on page tables.
//   6. Per domain: tot_pages <= max_pages, and the owned list agrees with
//      every frame's owner field.
//
// Thread-safety: REQUIRES every domain's lock (`domains`, in id order); takes
// the allocator's and retirer's own locks.
#ifndef HVMM_MM_AUDIT_H_
#define HVMM_MM_AUDIT_H_

#include <vector>

#include "absl/status/status.h"
#include "mm/domain.h"
#include "mm/frame_allocator.h"
#include "mm/frame_table.h"
#include "mm/retire.h"

namespace hvmm {

// OK, or kInternal describing the first violations found.
absl::Status AuditLocked(const FrameTable& table,
                         const FrameAllocator& allocator,
                         const FrameRetirer& retirer,
                         const std::vector<const Domain*>& domains);

}  // namespace hvmm

#endif  // HVMM_MM_AUDIT_H_
