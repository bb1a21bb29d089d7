#include "flush/flush_batcher.h"

#include <algorithm>
#include <chrono>
#include <mutex>

namespace hvmm {
namespace {

bool SameScope(const FlushScope& a, const FlushScope& b) {
  return a.kind == b.kind && a.domain == b.domain && a.start == b.start &&
         a.pages == b.pages;
}

}  // namespace

// The lock is taken through std::unique_lock for the condition variable.
void FlushBatcher::Flush(const FlushRequest& request)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  if (request.targets.Empty()) return;
  Waiter self{&request};
  std::unique_lock<std::mutex> lock(mu_.native());
  queue_.push_back(&self);
  ++requests_;
  cv_.wait(lock, [&] { return self.done || queue_.front() == &self; });
  if (self.done) return;  // A leader's call covered us.

  // Leader: take a batch from the head of the queue (we are first).
  FlushBatch batch;
  const size_t n = std::min<size_t>(queue_.size(), kMaxBatch);
  std::vector<Waiter*> members(queue_.begin(), queue_.begin() + n);
  for (Waiter* w : members) {
    batch.targets |= w->request->targets;
    const FlushScope& s = w->request->scope;
    if (std::none_of(batch.scopes.begin(), batch.scopes.end(),
                     [&](const FlushScope& t) { return SameScope(s, t); })) {
      batch.scopes.push_back(s);
    }
  }
  batch.requests = static_cast<int>(n);
  ++backend_calls_;

  lock.unlock();
  const auto start = std::chrono::steady_clock::now();
  backend_->Flush(batch);  // Followers keep queueing meanwhile.
  call_ns_.Record(std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count());
  batch_sizes_.Record(n);
  lock.lock();

  for (Waiter* w : members) {
    w->done = true;
    queue_.pop_front();
  }
  // Wake the batch's followers and the next leader.
  cv_.notify_all();
}

uint64_t FlushBatcher::requests() const {
  MutexLock lock(&mu_);
  return requests_;
}

uint64_t FlushBatcher::backend_calls() const {
  MutexLock lock(&mu_);
  return backend_calls_;
}

int FlushBatcher::queued() const {
  MutexLock lock(&mu_);
  return static_cast<int>(queue_.size());
}

}  // namespace hvmm
