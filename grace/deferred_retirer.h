// DeferredRetirer: frees retired frames after their domain's grace period.
//
// The FrameRetirer for policies that rely on grace periods (assisted+rcu):
// Linux's HAVE_RCU_TABLE_FREE, per domain (DESIGN §5).
//
//   Retire(D, frames)   queues the frames on D's queue and returns.
//   reclaimer thread    takes all of D's queue as one batch, runs ONE grace
//                       period for D, frees the batch. A grace period thus
//                       serves everything queued before it began.
//   queue full          when D's queue would pass queue_capacity, or all
//                       queues together max_pending, Retire() makes its
//                       caller pay: an expedited (IPI) grace period for D,
//                       then D's queue and the new frames are freed at once
//                       (Linux tlb_remove_table_sync_one). Pending frees
//                       stay bounded relative to the pool, and the updater
//                       slows down instead of failing.
//   Reclaim()           memory pressure: every queue is freed after an
//                       expedited grace period of its domain, and batches
//                       the reclaimer holds are waited for. The allocation
//                       path calls it before it reports the pool exhausted.
//   Drain(D)            frees everything queued for D after a grace period
//                       (rcu_barrier for one domain); destroy calls it.
//
// Invariants: (1) a frame is in at most one queue, once; (2) a frame leaves
// a queue only after a grace period for its domain that began after it was
// queued; (3) pending_frames() counts exactly the queued frames.
//
// Thread-safety: every method from any thread but a pCPU's. Lock order:
// callers may hold a domain lock (Retire is called under it); mu_ is taken
// below it and is never held while waiting for a grace period.
#ifndef HVMM_GRACE_DEFERRED_RETIRER_H_
#define HVMM_GRACE_DEFERRED_RETIRER_H_

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <cstdint>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "base/mutex.h"
#include "grace/grace_periods.h"
#include "mm/domain.h"
#include "mm/frame_allocator.h"
#include "mm/retire.h"

namespace hvmm {

class DeferredRetirer final : public FrameRetirer {
 public:
  struct Options {
    // Frames one domain may have queued; beyond it, Retire() falls back.
    uint64_t queue_capacity = 4096;
    // Frames all domains together may have pending; beyond it, Retire()
    // falls back. 0: an eighth of the allocator's frames.
    uint64_t max_pending = 0;
  };

  // Starts the reclaimer thread. `allocator` and `grace` must outlive this.
  DeferredRetirer(FrameAllocator* allocator, GracePeriods* grace,
                  Options options);
  // Drains every queue, then stops the reclaimer.
  ~DeferredRetirer() override;

  void Retire(const Domain& domain, absl::Span<const Mfn> frames) override;
  void Drain(DomainId domain) override;
  uint64_t Reclaim() override;
  uint64_t pending_frames() const override;
  // The frames of `domain` still waiting (queued or in flight).
  uint64_t PendingFramesOf(DomainId domain) const;
  // Every domain's pending frames (domains with none are absent), under
  // one lock acquisition: for a scrape over many domains.
  absl::flat_hash_map<DomainId, uint64_t> PendingFramesByDomain() const;
  void ForEachPending(absl::FunctionRef<void(Mfn)> fn,
                      absl::FunctionRef<void()> then) const override;

  uint64_t grace_periods() const;   // Run by the reclaimer and Drain.
  uint64_t fallbacks() const;       // Queue-full expedited frees.
  uint64_t reclaims() const;        // Reclaim() calls that freed frames.
  // Reclaim() calls in progress (tests use it to see an allocation held
  // back by memory pressure).
  int reclaiming() const { return reclaiming_.load(std::memory_order_acquire); }
  uint64_t frames_freed() const;

 private:
  void ReclaimLoop();
  // Takes the whole queue of `domain`.
  std::vector<Mfn> TakeQueueLocked(DomainId domain)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Frees `batch` of `domain` after an expedited grace period, run with
  // mu_ released; the batch stays in flight (pending) meanwhile.
  void FreeExpeditedLocked(DomainId domain, std::vector<Mfn> batch,
                           std::unique_lock<std::mutex>& lock)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Frees under mu_, so that the audit never sees a frame between pending
  // and free.
  void FreeAll(const std::vector<Mfn>& frames)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  FrameAllocator* const allocator_;
  GracePeriods* const grace_;
  const Options options_;
  const uint64_t max_pending_;

  mutable Mutex mu_;
  std::condition_variable work_;
  absl::flat_hash_map<DomainId, std::vector<Mfn>> queues_ ABSL_GUARDED_BY(mu_);
  uint64_t pending_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t grace_periods_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t fallbacks_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t reclaims_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t frames_freed_ ABSL_GUARDED_BY(mu_) = 0;
  // Batches taken from a queue and waiting for their grace period; still
  // pending for the audit, pending_frames() and Drain().
  struct InFlight {
    DomainId domain;
    std::vector<Mfn> frames;
  };
  absl::flat_hash_map<uint64_t, InFlight> in_flight_ ABSL_GUARDED_BY(mu_);
  uint64_t next_batch_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::condition_variable batch_done_;

  std::atomic<int> reclaiming_{0};
  std::thread reclaimer_;
};

}  // namespace hvmm

#endif  // HVMM_GRACE_DEFERRED_RETIRER_H_
