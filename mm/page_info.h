// PageInfo: the per-frame metadata record (Xen's struct page_info).
//
// One record per machine frame, kept in FrameTable's metadata array. A record
// is at most 32 bytes (static_assert below), so 4 Mi frames cost 128 MiB of
// metadata, and only the part that is touched is ever backed by RAM.
//
// Ownership and protection. Exactly one party may change a record at a time:
//   - while the frame is free, the FrameAllocator (under its shard/pool lock);
//   - while the frame is owned by domain D, D's lock (Domain::mu_);
//   - while the frame is retiring, the FrameRetirer that holds it.
// Hand-offs between these parties happen under a lock, which orders them.
// `owner`, `generation` and `tlbflush_timestamp` are atomics because code
// without the owner's lock reads them: another domain checking that a frame
// is not its own, the lockless walker, and the flush filter.
//
// Reference counts (Xen's count_info and type_info):
//   count       general references: 1 for the allocation itself (kAllocated),
//               plus one per present entry that points at the frame, one per
//               pin and one per vCPU base pointer.
//   type_count  references that hold the current `type`: pins and base
//               pointers, upper-level entries (for l1..l3), and writable L1
//               entries (for kWritable). A frame changes type only at 0.
//
// Zero-initialized memory is a valid record of a free, never-used frame, which
// is what lets FrameTable back the array lazily.
#ifndef HVMM_MM_PAGE_INFO_H_
#define HVMM_MM_PAGE_INFO_H_

#include <atomic>
#include <cstdint>
#include <type_traits>

#include "mm/tlb_clock.h"
#include "mm/types.h"

namespace hvmm {

// Bits of PageInfo::flags.
enum PageFlag : uint8_t {
  kPageAllocated = 1 << 0,  // Owned by a domain (Xen PGC_allocated).
  kPageValidated = 1 << 1,  // Entries checked and referenced for `type`.
  kPagePinned = 1 << 2,     // A pin holds one type reference.
  kPageNeedScrub = 1 << 3,  // Contents were written; zero before reuse.
  kPageRetiring = 1 << 4,   // Left its domain; waiting in the FrameRetirer.
};

struct PageInfo {
  // Bumped when the frame is freed and when it leaves a page-table type, so a
  // reader that recorded it can tell the frame was reused (DESIGN §6).
  std::atomic<uint32_t> generation;
  // TlbClock time when the frame was freed or stopped being a page table.
  std::atomic<TlbStamp> tlbflush_timestamp;
  // Raw DomainId of the owner; 0 when free or retiring.
  std::atomic<uint32_t> owner;
  uint32_t count;       // General references; see the file comment.
  uint32_t type_count;  // References holding `type`.
  // Free: index of the next free frame in an allocator list.
  // Owned: position of this frame in its domain's owned-frame list.
  uint32_t link;
  PageType type;
  uint8_t flags;  // PageFlag bits.
  // Id of the last TypeTransaction that journaled this record (48 bits, never
  // wraps in practice). Bookkeeping, not state: it lets a transaction see in
  // O(1) whether it already saved the record. Owner's lock, like the counts.
  uint16_t txn_tag_high;
  uint32_t txn_tag_low;

  uint64_t txn_tag() const {
    return (uint64_t{txn_tag_high} << 32) | txn_tag_low;
  }
  void set_txn_tag(uint64_t tag) {
    txn_tag_high = static_cast<uint16_t>(tag >> 32);
    txn_tag_low = static_cast<uint32_t>(tag);
  }

  bool has(PageFlag f) const { return (flags & f) != 0; }
  void set(PageFlag f) { flags |= f; }
  void clear(PageFlag f) { flags &= static_cast<uint8_t>(~f); }
};

static_assert(sizeof(PageInfo) <= 32, "page_info must stay within 32 bytes");
static_assert(std::is_standard_layout<PageInfo>::value,
              "PageInfo lives in zero-filled anonymous memory");
static_assert(std::atomic<uint32_t>::is_always_lock_free,
              "an all-zero std::atomic<uint32_t> must be a valid 0");

}  // namespace hvmm

#endif  // HVMM_MM_PAGE_INFO_H_
