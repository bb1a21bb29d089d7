#include "grace/deferred_retirer.h"

#include <algorithm>
#include <mutex>
#include <utility>

#include "base/check.h"

namespace hvmm {

DeferredRetirer::DeferredRetirer(FrameAllocator* allocator,
                                 GracePeriods* grace, Options options)
    : allocator_(allocator),
      grace_(grace),
      options_(options),
      max_pending_(options.max_pending != 0
                       ? options.max_pending
                       : std::max<uint64_t>(1, allocator->total_frames() / 8)) {
  reclaimer_ = std::thread([this] { ReclaimLoop(); });
}

DeferredRetirer::~DeferredRetirer() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  work_.notify_all();
  reclaimer_.join();  // The loop drains every queue before it exits.
}

void DeferredRetirer::Retire(const Domain& owner, absl::Span<const Mfn> frames)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  if (frames.empty()) return;
  const DomainId domain = owner.id();
  std::unique_lock<std::mutex> lock(mu_.native());
  std::vector<Mfn>& queue = queues_[domain];
  queue.insert(queue.end(), frames.begin(), frames.end());
  pending_ += frames.size();
  if (queue.size() <= options_.queue_capacity && pending_ <= max_pending_) {
    work_.notify_one();
    return;
  }
  // Too much deferred: the caller pays for this domain's queue now. It
  // holds the domain's lock, which no pCPU needs to reach an interrupt
  // window.
  ++fallbacks_;
  FreeExpeditedLocked(domain, TakeQueueLocked(domain), lock);
}

void DeferredRetirer::FreeExpeditedLocked(DomainId domain,
                                          std::vector<Mfn> batch,
                                          std::unique_lock<std::mutex>& lock)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  if (batch.empty()) return;
  const uint64_t id = next_batch_id_++;
  auto it = in_flight_.emplace(id, InFlight{domain, std::move(batch)}).first;
  lock.unlock();
  grace_->SynchronizeExpedited(domain);
  lock.lock();
  ++grace_periods_;
  it = in_flight_.find(id);
  FreeAll(it->second.frames);
  pending_ -= it->second.frames.size();
  in_flight_.erase(it);
  batch_done_.notify_all();
}

uint64_t DeferredRetirer::Reclaim() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  reclaiming_.fetch_add(1, std::memory_order_release);
  std::unique_lock<std::mutex> lock(mu_.native());
  const uint64_t freed_before = frames_freed_;
  // Batches begun before this call: the reclaimer's are on their way.
  const uint64_t older_than = next_batch_id_;
  while (!queues_.empty()) {
    const DomainId domain = queues_.begin()->first;
    FreeExpeditedLocked(domain, TakeQueueLocked(domain), lock);
  }
  batch_done_.wait(lock, [&] {
    for (const auto& [id, unused] : in_flight_) {
      if (id < older_than) return false;
    }
    return true;
  });
  const uint64_t freed = frames_freed_ - freed_before;
  if (freed > 0) ++reclaims_;
  reclaiming_.fetch_sub(1, std::memory_order_release);
  return freed;
}

std::vector<Mfn> DeferredRetirer::TakeQueueLocked(DomainId domain) {
  auto it = queues_.find(domain);
  if (it == queues_.end()) return {};
  std::vector<Mfn> batch = std::move(it->second);
  queues_.erase(it);
  return batch;
}

void DeferredRetirer::FreeAll(const std::vector<Mfn>& frames)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {  // REQUIRES: mu_ (audit consistency).
  for (Mfn mfn : frames) allocator_->Free(mfn);
  frames_freed_ += frames.size();
}

void DeferredRetirer::Drain(DomainId domain) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  std::unique_lock<std::mutex> lock(mu_.native());
  std::vector<Mfn> batch = TakeQueueLocked(domain);
  // Nothing queued: no grace period to wait for (a domain whose policy
  // frees at once, or one the reclaimer has already emptied).
  if (!batch.empty()) {
    const uint64_t id = next_batch_id_++;
    in_flight_.emplace(id, InFlight{domain, batch});
    lock.unlock();
    grace_->Synchronize(domain);
    lock.lock();
    ++grace_periods_;
    FreeAll(batch);
    pending_ -= batch.size();
    in_flight_.erase(id);
    batch_done_.notify_all();
  }
  // Batches of this domain the reclaimer holds must finish too.
  batch_done_.wait(lock, [&] {
    for (const auto& [unused, b] : in_flight_) {
      if (b.domain == domain) return false;
    }
    return true;
  });
}

void DeferredRetirer::ReclaimLoop() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  std::unique_lock<std::mutex> lock(mu_.native());
  for (;;) {
    work_.wait(lock, [&] { return stop_ || !queues_.empty(); });
    if (queues_.empty() && stop_) return;
    // One batch per domain that has work: each costs one grace period.
    std::vector<std::pair<uint64_t, DomainId>> batches;
    while (!queues_.empty()) {
      const DomainId domain = queues_.begin()->first;
      const uint64_t id = next_batch_id_++;
      in_flight_.emplace(id, InFlight{domain, TakeQueueLocked(domain)});
      batches.emplace_back(id, domain);
    }
    for (const auto& [id, domain] : batches) {
      lock.unlock();
      grace_->Synchronize(domain);
      lock.lock();
      ++grace_periods_;
      auto it = in_flight_.find(id);
      FreeAll(it->second.frames);
      pending_ -= it->second.frames.size();
      in_flight_.erase(it);
    }
    batch_done_.notify_all();
  }
}

uint64_t DeferredRetirer::pending_frames() const {
  MutexLock lock(&mu_);
  return pending_;
}

uint64_t DeferredRetirer::PendingFramesOf(DomainId domain) const {
  MutexLock lock(&mu_);
  uint64_t n = 0;
  if (auto it = queues_.find(domain); it != queues_.end()) n += it->second.size();
  for (const auto& [id, batch] : in_flight_) {
    if (batch.domain == domain) n += batch.frames.size();
  }
  return n;
}

absl::flat_hash_map<DomainId, uint64_t>
DeferredRetirer::PendingFramesByDomain() const {
  MutexLock lock(&mu_);
  absl::flat_hash_map<DomainId, uint64_t> n;
  for (const auto& [domain, queue] : queues_) {
    if (!queue.empty()) n[domain] += queue.size();
  }
  for (const auto& [id, batch] : in_flight_) {
    if (!batch.frames.empty()) n[batch.domain] += batch.frames.size();
  }
  return n;
}

void DeferredRetirer::ForEachPending(absl::FunctionRef<void(Mfn)> fn,
                                     absl::FunctionRef<void()> then) const {
  MutexLock lock(&mu_);
  for (const auto& [domain, queue] : queues_) {
    for (Mfn m : queue) fn(m);
  }
  for (const auto& [id, batch] : in_flight_) {
    for (Mfn m : batch.frames) fn(m);
  }
  then();
}

uint64_t DeferredRetirer::grace_periods() const {
  MutexLock lock(&mu_);
  return grace_periods_;
}

uint64_t DeferredRetirer::fallbacks() const {
  MutexLock lock(&mu_);
  return fallbacks_;
}

uint64_t DeferredRetirer::reclaims() const {
  MutexLock lock(&mu_);
  return reclaims_;
}

uint64_t DeferredRetirer::frames_freed() const {
  MutexLock lock(&mu_);
  return frames_freed_;
}

}  // namespace hvmm
