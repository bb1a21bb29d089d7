// DeferredRetirer: frees retired frames after their domain's grace period.
//
// The FrameRetirer for policies that rely on grace periods (assisted+rcu):
// Linux's HAVE_RCU_TABLE_FREE, per domain (DESIGN §5), with the callbacks
// run where they were queued, as Linux runs them on the CPU that queued
// them.
//
//   Retire(D, frames)   appends the frames to the calling CPU's batch (an
//                       mmu_gather per CPU). Every `gather` frames it
//                       stamps them with one grace-period cookie
//                       (GracePeriods::GetState, after their unhooks), then
//                       polls: one scan of the pCPUs' read sections
//                       (GracePeriods::Scan) tells which of that CPU's
//                       pending frames have seen their grace period, and
//                       the updater frees those itself, into its own CPU's
//                       allocator shard, where the next allocation finds
//                       them warm (Linux poll_state_synchronize_rcu). No
//                       thread hand-off, no wake-up, no grace-period wait.
//   reclaimer thread    only for what is still waiting when updaters go
//                       quiet: armed by a Retire() that left frames
//                       behind, it gives updaters `reclaimer_delay` to reap
//                       them inline, then takes the batches no updater
//                       polled meanwhile (a busy updater's batch is left to
//                       it), runs ONE grace period for every domain with
//                       frames in them (CondSynchronizeAll: it waits only
//                       for sections older than the newest cookie of their
//                       domain) and frees what it covered.
//   queue full          when the calling CPU's batch would pass
//                       queue_capacity, or all batches together max_pending,
//                       Retire() makes its caller pay: an expedited (IPI)
//                       grace period for every domain with frames pending
//                       (so other domains' walkers can delay it), then they
//                       are freed at once (Linux tlb_remove_table_sync_one).
//                       The bound is checked after the frames are added:
//                       it is passed by at most the retires in progress,
//                       and the one that passes it brings pending back to
//                       what other threads add meanwhile. The updater slows
//                       down instead of failing.
//   Reclaim()           memory pressure: the same, for the allocation path,
//                       before it reports the pool exhausted.
//   Drain(D)            frees everything queued for D after a grace period
//                       for D alone (rcu_barrier for one domain); destroy
//                       calls it. Nothing is ever held "in flight" outside a
//                       batch, so a drain waits for D's readers only, never
//                       behind another domain's grace period.
//
// Invariants: (1) a frame is in at most one batch, once; (2) a frame leaves
// a batch only after a grace period for its domain that began after it was
// queued (a scan that saw every older section of its domain closed, or a
// wait for them); (3) a frame leaves its batch and enters the allocator
// under the batch's lock, so ForEachPending (which takes every batch lock)
// never sees a frame in neither place; (4) pending_frames() counts exactly
// the frames in batches.
//
// Thread-safety: every method from any thread but a pCPU's. Lock order: a
// domain lock (Retire is called under it) -> Batch::mu (index order when
// several) -> the allocator's locks. reclaimer_mu_ is a leaf. No lock is
// held while waiting for a grace period, except the caller's domain lock in
// the queue-full fallback and in Reclaim() (the allocation path): pCPUs
// never take a domain lock, so those waits end (docs/LOCKS.md).
#ifndef HVMM_GRACE_DEFERRED_RETIRER_H_
#define HVMM_GRACE_DEFERRED_RETIRER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <utility>
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
    // Frames one CPU's batch may hold; beyond it, Retire() falls back.
    uint64_t queue_capacity = 4096;
    // Frames all batches together may hold; beyond it, Retire() falls
    // back. 0: an eighth of the allocator's frames.
    uint64_t max_pending = 0;
    // How long the reclaimer leaves frames to the updaters' inline reclaim
    // before it runs a grace period for them itself.
    std::chrono::microseconds reclaimer_delay{1000};
    // Per-CPU batches; 0: one per online CPU.
    int batches = 0;
    // Frames a batch gathers before the updater polls it (one cookie and
    // one scan of the readers for all of them): mmu_gather's batching.
    uint64_t gather = 32;
  };

  // Starts the reclaimer thread. `allocator` and `grace` must outlive this;
  // `grace`'s pCPUs must share a SectionClock.
  DeferredRetirer(FrameAllocator* allocator, GracePeriods* grace,
                  Options options);
  // Frees every pending frame after a grace period, then stops the
  // reclaimer.
  ~DeferredRetirer() override;

  void Retire(const Domain& domain, absl::Span<const Mfn> frames) override;
  void Drain(DomainId domain) override;
  uint64_t Reclaim() override;
  uint64_t pending_frames() const override {
    return pending_.load(std::memory_order_acquire);
  }
  // The frames of `domain` still waiting.
  uint64_t PendingFramesOf(DomainId domain) const;
  // Every domain's pending frames (domains with none are absent), in one
  // pass: for a scrape over many domains.
  absl::flat_hash_map<DomainId, uint64_t> PendingFramesByDomain() const;
  void ForEachPending(absl::FunctionRef<void(Mfn)> fn,
                      absl::FunctionRef<void()> then) const override;

  // Grace periods waited for by the reclaimer, Drain and the fallbacks.
  uint64_t grace_periods() const { return Load(grace_periods_); }
  uint64_t fallbacks() const { return Load(fallbacks_); }  // Queue full.
  uint64_t reclaims() const { return Load(reclaims_); }  // Freed something.
  // Reclaim() calls in progress (tests use it to see an allocation held
  // back by memory pressure).
  int reclaiming() const { return reclaiming_.load(std::memory_order_acquire); }
  uint64_t frames_freed() const { return Load(frames_freed_); }
  // Frames freed by the updater that retired them (inline reclaim).
  uint64_t frames_freed_inline() const { return Load(frames_freed_inline_); }

 private:
  struct Pending {
    // GracePeriods::GetState() after the unhook; GraceCookie() until
    // stamped.
    GraceCookie cookie;
    DomainId domain;
    Mfn mfn;
  };
  struct alignas(64) Batch {
    mutable Mutex mu;
    // Unstamped frames (GraceCookie()) are the newest, at the end.
    std::vector<Pending> frames ABSL_GUARDED_BY(mu);
    uint64_t unstamped ABSL_GUARDED_BY(mu) = 0;
    // Inline polls so far (written under mu): the reclaimer leaves a batch
    // whose updater still polls it alone.
    std::atomic<uint64_t> polls{0};
  };
  // Which batches a bulk operation covers (empty: all).
  using BatchSet = std::vector<bool>;
  // The newest cookie of each domain with frames pending, over all batches.
  using Waits = absl::flat_hash_map<DomainId, GraceCookie>;

  static uint64_t Load(const std::atomic<uint64_t>& n) {
    return n.load(std::memory_order_relaxed);
  }
  Batch& CurrentBatch();
  // Frees the frames of `batch` that `covered` says have seen their grace
  // period; returns how many.
  template <typename Covered>
  uint64_t FreeCoveredLocked(Batch& batch, Covered covered)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(batch.mu);
  template <typename Covered>
  uint64_t FreeCovered(Covered covered, const BatchSet& which = {});
  // Gives the batch's unstamped frames a cookie of now.
  void StampLocked(Batch& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(batch.mu);
  // Stamps the batches of `which`, then returns the newest cookie per
  // domain (of `only`, unless it is 0).
  Waits PendingWaits(DomainId only = DomainId(0), const BatchSet& which = {});
  // Expedited grace periods for every domain with frames pending, then
  // frees them all. Returns the frames freed.
  uint64_t ExpediteAll();
  void ReclaimLoop();

  FrameAllocator* const allocator_;
  GracePeriods* const grace_;
  const Options options_;
  const uint64_t max_pending_;
  const int batch_count_;
  const std::unique_ptr<Batch[]> batches_;

  std::atomic<uint64_t> pending_{0};
  std::atomic<uint64_t> grace_periods_{0}, fallbacks_{0}, reclaims_{0},
      frames_freed_{0}, frames_freed_inline_{0};
  std::atomic<int> reclaiming_{0};
  // Set by a Retire() that left frames pending and cleared by the
  // reclaimer when it takes the work: at most one wake-up per quiet spell.
  std::atomic<bool> armed_{false};
  // Batch::polls as the reclaimer last saw them (its thread only).
  std::vector<uint64_t> polls_seen_;

  Mutex reclaimer_mu_;
  CondVar reclaimer_wake_;
  bool reclaimer_armed_ ABSL_GUARDED_BY(reclaimer_mu_) = false;
  bool stop_ ABSL_GUARDED_BY(reclaimer_mu_) = false;
  std::thread reclaimer_;
};

}  // namespace hvmm

#endif  // HVMM_GRACE_DEFERRED_RETIRER_H_
