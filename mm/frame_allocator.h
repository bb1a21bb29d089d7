// FrameAllocator: single-frame allocation and free for the whole host.
//
// Design (tcmalloc's per-CPU caches, Xen's scrub-on-allocation):
//   - One shard per CPU, each a bounded stack of free frames under its own,
//     almost always uncontended, lock. Allocate() and Free() touch only the
//     calling CPU's shard: O(1), no global lock on the fast path.
//   - A shared pool behind the shards: an intrusive list of free frames (linked
//     through PageInfo::link) plus the range of frames never handed out.
//     Shards refill from and spill to it in batches. Because never-used frames
//     are just a range, construction touches no metadata.
//   - If the caller's shard and the pool are both empty, Allocate() takes a
//     frame from another shard before reporting exhaustion, so a frame parked
//     on an idle CPU is never lost to the rest.
//   - Free() bumps the frame's generation and stamps its tlbflush_timestamp
//     with the TlbClock; allocation filters its flush on that stamp.
//   - Contents are zeroed on allocation, and only if they were written
//     (kPageNeedScrub), so untouched frames stay unbacked.
//
// Thread-safety: Allocate(), Free() and the counters are safe from any thread.
// ForEachFreeFrame() takes every lock and is for the audit.
//
// Lock order: Shard::mu (one at a time, except ForEachFreeFrame which takes
// them in index order) -> pool_mu_.
#ifndef HVMM_MM_FRAME_ALLOCATOR_H_
#define HVMM_MM_FRAME_ALLOCATOR_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "base/mutex.h"
#include "mm/tlb_clock.h"
#include "mm/frame_table.h"
#include "mm/types.h"

namespace hvmm {

class FrameAllocator {
 public:
  struct Options {
    // Number of per-CPU shards; 0 means one per online CPU.
    int shards = 0;
  };

  // Every frame of `table` starts free. `table` and `clock` must outlive this.
  FrameAllocator(FrameTable* table, const TlbClock* clock, Options options);
  FrameAllocator(FrameTable* table, const TlbClock* clock)
      : FrameAllocator(table, clock, Options()) {}
  FrameAllocator(const FrameAllocator&) = delete;
  FrameAllocator& operator=(const FrameAllocator&) = delete;

  // Takes a free frame: owner 0, counts 0, type none, no flags, contents all
  // zero. Its tlbflush_timestamp is the stamp of its last free, for the
  // caller's allocation flush. kResourceExhausted when no frame is free.
  absl::StatusOr<Mfn> Allocate();

  // Returns a frame. REQUIRES: the caller holds the frame exclusively, with
  // no owner and no references, and no reader can still reach it.
  void Free(Mfn mfn);

  // Gives back a frame that Allocate() just returned and that nobody else
  // ever saw: no generation bump, no stamp, so a failed multi-frame request
  // leaves no trace. REQUIRES: unwritten, unowned, unpublished.
  void ReturnUnused(Mfn mfn);

  // Exact when no Allocate()/Free() is in flight; a sum of per-shard counts
  // otherwise (no shared counter on the fast path).
  uint64_t free_frames() const;
  uint64_t total_frames() const { return table_->frame_count(); }
  int shard_count() const { return shard_count_; }

  // Calls fn once per free frame, with every lock held, so the set is
  // consistent, and returns the free count the counters held at that moment.
  // Never call back into the allocator from fn.
  uint64_t ForEachFreeFrame(absl::FunctionRef<void(Mfn)> fn) const;

 private:
  static constexpr uint32_t kShardCapacity = 64;
  static constexpr uint32_t kBatch = kShardCapacity / 2;
  static constexpr uint32_t kNilLink = 0xffffffffu;

  struct alignas(64) Shard {
    mutable Mutex mu;
    // Written under mu; read without it by free_frames().
    std::atomic<uint32_t> count{0};
    uint32_t frames[kShardCapacity] ABSL_GUARDED_BY(mu);
  };

  int CurrentShard() const;
  // Moves up to kBatch frames from the pool into `shard`.
  void RefillLocked(Shard& shard) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  // Moves kBatch frames from a full `shard` to the pool.
  void SpillLocked(Shard& shard) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  bool StealFromAnyShard(uint64_t* mfn);
  static bool PopLocked(Shard& shard, uint64_t* mfn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  // Pushes a frame onto the calling CPU's shard.
  void PushLocal(Mfn mfn);

  FrameTable* const table_;
  const TlbClock* const clock_;
  const int shard_count_;
  const std::unique_ptr<Shard[]> shards_;

  // Always taken after a Shard::mu, never before.
  mutable Mutex pool_mu_;
  uint32_t pool_head_ ABSL_GUARDED_BY(pool_mu_) = kNilLink;
  // Frames [never_used_next_, frame_count) have never been allocated.
  uint64_t never_used_next_ ABSL_GUARDED_BY(pool_mu_) = 0;
  // Frames in the pool (listed or never used). Written under pool_mu_.
  std::atomic<uint64_t> pool_free_;
};

}  // namespace hvmm

#endif  // HVMM_MM_FRAME_ALLOCATOR_H_
