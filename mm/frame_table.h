// FrameTable: the host's machine memory, as frames and their metadata.
//
// Holds two lazily-backed anonymous mappings created at construction:
//   - the metadata array, one PageInfo per frame;
//   - the contents, kPageSize bytes per frame, viewed as 512 atomic 64-bit
//     page-table entries.
// Both are MAP_NORESERVE and zero-filled by the kernel on first touch, so
// frames that are never used cost no RAM: a 4 Mi-frame (16 GiB) table on a
// fresh start uses almost none.
//
// Thread-safety: the table itself is immutable after construction. Access to
// a frame's record and contents follows the ownership rules in page_info.h.
// Entries are std::atomic so that lockless walkers may read them while their
// owner writes them; writers publish with release stores, walkers read with
// acquire loads.
#ifndef HVMM_MM_FRAME_TABLE_H_
#define HVMM_MM_FRAME_TABLE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "base/check.h"
#include "mm/page_info.h"
#include "mm/types.h"

namespace hvmm {

class FrameTable {
 public:
  // Frames are numbered 0 .. frame_count-1. The limit keeps every Mfn
  // representable in PageInfo::link.
  static constexpr uint64_t kMaxFrames = uint64_t{1} << 32;

  // Maps the metadata and contents. Fails with kInvalidArgument for a count
  // of 0 or above kMaxFrames, kResourceExhausted if the address space cannot
  // be reserved.
  static absl::StatusOr<std::unique_ptr<FrameTable>> Create(
      uint64_t frame_count);

  ~FrameTable();
  FrameTable(const FrameTable&) = delete;
  FrameTable& operator=(const FrameTable&) = delete;

  uint64_t frame_count() const { return frame_count_; }
  bool Contains(Mfn mfn) const { return mfn.value() < frame_count_; }

  // REQUIRES: Contains(mfn).
  PageInfo& info(Mfn mfn) const {
    HVMM_CHECK(Contains(mfn)) << mfn;
    return infos_[mfn.value()];
  }

  // The frame's 512 entries. REQUIRES: Contains(mfn).
  std::atomic<uint64_t>* entries(Mfn mfn) const {
    HVMM_CHECK(Contains(mfn)) << mfn;
    return contents_ + mfn.value() * kEntriesPerTable;
  }

  // Zeroes the frame's contents. REQUIRES: the caller owns the frame and no
  // reader can reach it.
  void Scrub(Mfn mfn) const;

  // Resident memory of the contents mapping, from mincore(2); for tests and
  // metrics that show untouched frames cost nothing.
  absl::StatusOr<uint64_t> ResidentContentBytes() const;

 private:
  FrameTable(uint64_t frame_count, PageInfo* infos,
             std::atomic<uint64_t>* contents);

  const uint64_t frame_count_;
  PageInfo* const infos_;
  std::atomic<uint64_t>* const contents_;
};

}  // namespace hvmm

#endif  // HVMM_MM_FRAME_TABLE_H_
