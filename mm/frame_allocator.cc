#include "mm/frame_allocator.h"

#include "mm/mm_errors.h"

#include <sched.h>

#include <algorithm>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace hvmm {

FrameAllocator::FrameAllocator(FrameTable* table, const TlbClock* clock,
                               Options options)
    : table_(table),
      clock_(clock),
      shard_count_(options.shards > 0
                       ? options.shards
                       : static_cast<int>(std::max(
                             1u, std::thread::hardware_concurrency()))),
      shards_(new Shard[shard_count_]),
      pool_free_(table->frame_count()) {}

uint64_t FrameAllocator::free_frames() const {
  uint64_t n = pool_free_.load(std::memory_order_relaxed);
  for (int i = 0; i < shard_count_; ++i) {
    n += shards_[i].count.load(std::memory_order_relaxed);
  }
  return n;
}

int FrameAllocator::CurrentShard() const {
  const int host_cpu = sched_getcpu();  // A host core, not a PcpuId.
  return host_cpu < 0 ? 0 : host_cpu % shard_count_;
}

bool FrameAllocator::PopLocked(Shard& shard, uint64_t* mfn) {
  const uint32_t n = shard.count.load(std::memory_order_relaxed);
  if (n == 0) return false;
  *mfn = shard.frames[n - 1];
  shard.count.store(n - 1, std::memory_order_relaxed);
  return true;
}

void FrameAllocator::RefillLocked(Shard& shard) {
  MutexLock pool_lock(&pool_mu_);
  uint32_t n = shard.count.load(std::memory_order_relaxed);
  const uint32_t before = n;
  while (n < kBatch) {
    if (pool_head_ != kNilLink) {
      const uint32_t mfn = pool_head_;
      pool_head_ = table_->info(Mfn(mfn)).link;
      shard.frames[n++] = mfn;
    } else if (never_used_next_ < table_->frame_count()) {
      shard.frames[n++] = static_cast<uint32_t>(never_used_next_++);
    } else {
      break;
    }
  }
  pool_free_.fetch_sub(n - before, std::memory_order_relaxed);
  shard.count.store(n, std::memory_order_relaxed);
}

void FrameAllocator::SpillLocked(Shard& shard) {
  MutexLock pool_lock(&pool_mu_);
  uint32_t n = shard.count.load(std::memory_order_relaxed);
  for (uint32_t i = 0; i < kBatch; ++i) {
    const uint32_t mfn = shard.frames[--n];
    table_->info(Mfn(mfn)).link = pool_head_;
    pool_head_ = mfn;
  }
  pool_free_.fetch_add(kBatch, std::memory_order_relaxed);
  shard.count.store(n, std::memory_order_relaxed);
}

bool FrameAllocator::StealFromAnyShard(uint64_t* mfn) {
  for (int i = 0; i < shard_count_; ++i) {
    MutexLock lock(&shards_[i].mu);
    if (PopLocked(shards_[i], mfn)) return true;
  }
  return false;
}

absl::StatusOr<Mfn> FrameAllocator::Allocate() {
  uint64_t raw = 0;
  bool found = false;
  {
    Shard& shard = shards_[CurrentShard()];
    MutexLock lock(&shard.mu);
    if (shard.count.load(std::memory_order_relaxed) == 0) RefillLocked(shard);
    found = PopLocked(shard, &raw);
  }
  // The caller's shard and the pool are empty; another shard may not be.
  if (!found) found = StealFromAnyShard(&raw);
  if (!found) {
    return PoolExhaustedError(table_->frame_count());
  }
  const Mfn mfn(raw);
  PageInfo& info = table_->info(mfn);
  HVMM_CHECK(info.owner.load(std::memory_order_relaxed) == 0 &&
             info.count == 0 && info.type_count == 0)
      << mfn << " on a free list is in use";
  if (info.has(kPageNeedScrub)) table_->Scrub(mfn);
  info.flags = 0;
  info.link = 0;
  return mfn;
}

void FrameAllocator::Free(Mfn mfn) {
  PageInfo& info = table_->info(mfn);
  HVMM_CHECK(info.owner.load(std::memory_order_relaxed) == 0 &&
             info.count == 0 && info.type_count == 0)
      << mfn << " freed while owned or referenced";
  // The generation bump is what lets a stale reader notice the reuse; the
  // stamp is what the next allocation's flush filters on.
  info.generation.fetch_add(1, std::memory_order_release);
  info.tlbflush_timestamp.store(clock_->Now(), std::memory_order_relaxed);
  info.type = PageType::kNone;
  info.flags &= kPageNeedScrub;
  PushLocal(mfn);
}

void FrameAllocator::ReturnUnused(Mfn mfn) {
  const PageInfo& info = table_->info(mfn);
  HVMM_CHECK(info.owner.load(std::memory_order_relaxed) == 0 &&
             info.count == 0 && info.type_count == 0 && info.flags == 0)
      << mfn << " returned unused but it was used";
  PushLocal(mfn);
}

void FrameAllocator::PushLocal(Mfn mfn) {
  Shard& shard = shards_[CurrentShard()];
  MutexLock lock(&shard.mu);
  if (shard.count.load(std::memory_order_relaxed) == kShardCapacity) {
    SpillLocked(shard);
  }
  const uint32_t n = shard.count.load(std::memory_order_relaxed);
  shard.frames[n] = static_cast<uint32_t>(mfn.value());
  shard.count.store(n + 1, std::memory_order_relaxed);
}

uint64_t FrameAllocator::ForEachFreeFrame(
    absl::FunctionRef<void(Mfn)> fn) const
    ABSL_NO_THREAD_SAFETY_ANALYSIS {  // Takes a variable number of locks.
  for (int i = 0; i < shard_count_; ++i) shards_[i].mu.Lock();
  pool_mu_.Lock();
  const uint64_t counted = free_frames();  // Exact: every lock is held.
  for (int i = 0; i < shard_count_; ++i) {
    const uint32_t n = shards_[i].count.load(std::memory_order_relaxed);
    for (uint32_t j = 0; j < n; ++j) fn(Mfn(shards_[i].frames[j]));
  }
  for (uint32_t m = pool_head_; m != kNilLink; m = table_->info(Mfn(m)).link) {
    fn(Mfn(m));
  }
  for (uint64_t m = never_used_next_; m < table_->frame_count(); ++m) {
    fn(Mfn(m));
  }
  pool_mu_.Unlock();
  for (int i = shard_count_ - 1; i >= 0; --i) shards_[i].mu.Unlock();
  return counted;
}

}  // namespace hvmm
