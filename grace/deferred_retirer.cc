#include "grace/deferred_retirer.h"

#include <sched.h>

#include <algorithm>
#include <utility>

#include "base/check.h"

namespace hvmm {
namespace {

// A bulk free (the reclaimer's, a drain's) gives the batch's lock back
// after this many frames, so the updater on that CPU never waits long.
constexpr uint64_t kFreesPerHold = 256;

}  // namespace

DeferredRetirer::DeferredRetirer(FrameAllocator* allocator,
                                 GracePeriods* grace, Options options)
    : allocator_(allocator),
      grace_(grace),
      options_(options),
      max_pending_(options.max_pending != 0
                       ? options.max_pending
                       : std::max<uint64_t>(1, allocator->total_frames() / 8)),
      batch_count_(options.batches > 0
                       ? options.batches
                       : static_cast<int>(std::max(
                             1u, std::thread::hardware_concurrency()))),
      batches_(new Batch[batch_count_]),
      polls_seen_(batch_count_, 0) {
  reclaimer_ = std::thread([this] { ReclaimLoop(); });
}

DeferredRetirer::~DeferredRetirer() {
  {
    MutexLock lock(&reclaimer_mu_);
    stop_ = true;
  }
  reclaimer_wake_.SignalAll();
  reclaimer_.join();  // The loop frees every pending frame before it exits.
  HVMM_CHECK(pending_frames() == 0) << pending_frames() << " frames leaked";
}

DeferredRetirer::Batch& DeferredRetirer::CurrentBatch() {
  const int host_cpu = sched_getcpu();  // A host core, not a PcpuId.
  return batches_[host_cpu < 0 ? 0 : host_cpu % batch_count_];
}

template <typename Covered>
uint64_t DeferredRetirer::FreeCoveredLocked(Batch& batch, Covered covered) {
  std::vector<Pending>& frames = batch.frames;
  uint64_t freed = 0;
  size_t kept = 0;
  for (size_t i = 0; i < frames.size(); ++i) {
    if (freed < kFreesPerHold && covered(frames[i])) {
      allocator_->Free(frames[i].mfn);
      ++freed;
    } else {
      frames[kept++] = frames[i];
    }
  }
  frames.erase(frames.begin() + kept, frames.end());
  if (freed > 0) {
    pending_.fetch_sub(freed, std::memory_order_acq_rel);
    frames_freed_.fetch_add(freed, std::memory_order_relaxed);
  }
  return freed;
}

template <typename Covered>
uint64_t DeferredRetirer::FreeCovered(Covered covered, const BatchSet& which) {
  uint64_t total = 0;
  for (int i = 0; i < batch_count_; ++i) {
    if (!which.empty() && !which[i]) continue;
    Batch& batch = batches_[i];
    uint64_t freed;
    do {
      MutexLock lock(&batch.mu);
      freed = FreeCoveredLocked(batch, covered);
      total += freed;
    } while (freed == kFreesPerHold);
  }
  return total;
}

void DeferredRetirer::Retire(const Domain& owner, absl::Span<const Mfn> frames) {
  if (frames.empty()) return;
  const DomainId domain = owner.id();
  Batch& batch = CurrentBatch();
  bool left_behind, over_capacity;
  {
    MutexLock lock(&batch.mu);
    // Unstamped: the cookie comes later, from the poll (or from whoever
    // takes the batch's frames): a later cookie only ever waits longer.
    for (Mfn mfn : frames) batch.frames.push_back({GraceCookie(), domain, mfn});
    batch.unstamped += frames.size();
    pending_.fetch_add(frames.size(), std::memory_order_acq_rel);
    // Inline reclaim, once per kGather frames: one cookie for all frames
    // gathered, one scan of the readers for every frame of this batch (a
    // domain with no walker inside frees them at once).
    if (batch.unstamped >= options_.gather) {
      batch.polls.fetch_add(1, std::memory_order_release);
      StampLocked(batch);
      const GracePeriods::ReaderScan scan = grace_->Scan();
      frames_freed_inline_.fetch_add(
          FreeCoveredLocked(batch,
                            [&scan](const Pending& p) {
                              return scan.Elapsed(p.domain, p.cookie);
                            }),
          std::memory_order_relaxed);
    }
    left_behind = !batch.frames.empty();
    over_capacity = batch.frames.size() > options_.queue_capacity;
  }
  if (over_capacity || pending_frames() > max_pending_) {
    // Too much deferred: the caller pays now. It holds the domain's lock,
    // which no pCPU needs to reach an interrupt window.
    fallbacks_.fetch_add(1, std::memory_order_relaxed);
    ExpediteAll();
    return;
  }
  if (left_behind && !armed_.exchange(true, std::memory_order_seq_cst)) {
    MutexLock lock(&reclaimer_mu_);
    reclaimer_armed_ = true;
    reclaimer_wake_.Signal();
  }
}

void DeferredRetirer::StampLocked(Batch& batch) {
  if (batch.unstamped == 0) return;
  // Taken under the batch's lock, so after every pushed frame's unhook and
  // flush (they happened before their Retire() released this lock).
  const GraceCookie cookie = grace_->GetState();
  for (auto it = batch.frames.rbegin();
       it != batch.frames.rend() && it->cookie == GraceCookie(); ++it) {
    it->cookie = cookie;
  }
  batch.unstamped = 0;
}

DeferredRetirer::Waits DeferredRetirer::PendingWaits(DomainId only,
                                                     const BatchSet& which) {
  Waits waits;
  for (int i = 0; i < batch_count_; ++i) {
    if (!which.empty() && !which[i]) continue;
    MutexLock lock(&batches_[i].mu);
    StampLocked(batches_[i]);
    for (const Pending& p : batches_[i].frames) {
      if (only.value() != 0 && p.domain != only) continue;
      GraceCookie& newest = waits[p.domain];
      newest = std::max(newest, p.cookie);
    }
  }
  return waits;
}

namespace {

// Whether a grace period that waited for `waits` covers `p`: its domain's
// sections older than a cookie at least as new as its own. Frames retired
// after the waits were taken are unstamped (GraceCookie()) or newer: never.
auto CoveredBy(const absl::flat_hash_map<DomainId, GraceCookie>& waits) {
  return [&waits](const auto& p) {
    if (p.cookie == GraceCookie()) return false;
    auto it = waits.find(p.domain);
    return it != waits.end() && p.cookie <= it->second;
  };
}

std::vector<std::pair<DomainId, GraceCookie>> AsVector(
    const absl::flat_hash_map<DomainId, GraceCookie>& waits) {
  return {waits.begin(), waits.end()};
}

}  // namespace

uint64_t DeferredRetirer::ExpediteAll() {
  const Waits waits = PendingWaits();
  for (const auto& [domain, newest] : waits) {
    grace_->SynchronizeExpedited(domain);
    grace_periods_.fetch_add(1, std::memory_order_relaxed);
  }
  // Each expedited grace period waited for every section of its domain
  // open when it began, so for every frame queued before PendingWaits.
  return FreeCovered(CoveredBy(waits));
}

uint64_t DeferredRetirer::Reclaim() {
  reclaiming_.fetch_add(1, std::memory_order_release);
  // Every free meanwhile counts, a concurrent reclaimer's too: the caller
  // only wants to know whether allocating again is worth it.
  const uint64_t freed_before = frames_freed();
  ExpediteAll();
  const uint64_t freed = frames_freed() - freed_before;
  if (freed > 0) reclaims_.fetch_add(1, std::memory_order_relaxed);
  reclaiming_.fetch_sub(1, std::memory_order_release);
  return freed;
}

void DeferredRetirer::Drain(DomainId domain) {
  // Nothing pending: no grace period to wait for (a domain whose policy
  // frees at once, or one already reclaimed). Frames of `domain` retired
  // meanwhile (none, once it is dying) are taken by the next round.
  for (Waits waits = PendingWaits(domain); !waits.empty();
       waits = PendingWaits(domain)) {
    if (grace_->CondSynchronizeAll(AsVector(waits))) {
      grace_periods_.fetch_add(1, std::memory_order_relaxed);
    }
    FreeCovered(CoveredBy(waits));
  }
}

void DeferredRetirer::ReclaimLoop() {
  for (;;) {
    bool stopping;
    {
      MutexLock lock(&reclaimer_mu_);
      while (!reclaimer_armed_ && !stop_) reclaimer_wake_.Wait(&reclaimer_mu_);
      reclaimer_armed_ = false;
      // Let the updaters reclaim inline first; frames still pending after
      // the delay belong to domains gone quiet.
      const auto deadline =
          std::chrono::steady_clock::now() + options_.reclaimer_delay;
      while (!stop_ && std::chrono::steady_clock::now() < deadline) {
        reclaimer_wake_.WaitFor(&reclaimer_mu_,
                                deadline - std::chrono::steady_clock::now());
      }
      stopping = stop_;
    }
    // Retire() calls from now on arm the reclaimer again; what they queued
    // before is in the waits below.
    armed_.store(false, std::memory_order_seq_cst);
    // A batch its updater polled since the last round is left to it: the
    // reclaimer touches (and locks) only batches gone quiet, so it never
    // contends with a busy updater, nor holds its batch while preempted.
    BatchSet quiet(batch_count_, true);
    bool skipped = false;
    for (int i = 0; i < batch_count_; ++i) {
      const uint64_t polls = batches_[i].polls.load(std::memory_order_acquire);
      quiet[i] = stopping || polls == polls_seen_[i];
      skipped = skipped || !quiet[i];
      polls_seen_[i] = polls;
    }
    const Waits waits = PendingWaits(DomainId(0), quiet);
    if (!waits.empty()) {
      if (grace_->CondSynchronizeAll(AsVector(waits))) {
        grace_periods_.fetch_add(1, std::memory_order_relaxed);
      }
      FreeCovered(CoveredBy(waits), quiet);
    }
    // Until nothing is pending: another round (after the delay) for the
    // batches left to their updaters, and at stop.
    if ((stopping || skipped) && pending_frames() > 0) {
      MutexLock lock(&reclaimer_mu_);
      reclaimer_armed_ = true;
    } else if (stopping) {
      return;
    }
  }
}

uint64_t DeferredRetirer::PendingFramesOf(DomainId domain) const {
  uint64_t n = 0;
  for (int i = 0; i < batch_count_; ++i) {
    MutexLock lock(&batches_[i].mu);
    for (const Pending& p : batches_[i].frames) n += p.domain == domain;
  }
  return n;
}

absl::flat_hash_map<DomainId, uint64_t>
DeferredRetirer::PendingFramesByDomain() const {
  absl::flat_hash_map<DomainId, uint64_t> n;
  for (int i = 0; i < batch_count_; ++i) {
    MutexLock lock(&batches_[i].mu);
    for (const Pending& p : batches_[i].frames) ++n[p.domain];
  }
  return n;
}

// Holds every batch's lock at once, in index order: a frame moves from a
// batch to the allocator only under its batch's lock, so pending and free
// are one snapshot. (The analysis cannot name a lock per array element.)
void DeferredRetirer::ForEachPending(absl::FunctionRef<void(Mfn)> fn,
                                     absl::FunctionRef<void()> then) const
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  for (int i = 0; i < batch_count_; ++i) batches_[i].mu.Lock();
  for (int i = 0; i < batch_count_; ++i) {
    for (const Pending& p : batches_[i].frames) fn(p.mfn);
  }
  then();
  for (int i = batch_count_ - 1; i >= 0; --i) batches_[i].mu.Unlock();
}

}  // namespace hvmm
