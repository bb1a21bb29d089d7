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

void FlushBatcher::Flush(const FlushRequest& request) {
  if (request.targets.Empty()) return;
  Waiter self{&request};
  mu_.Lock();
  queue_.push_back(&self);
  ++requests_;
  while (!self.done && queue_.front() != &self) turn_.Wait(&mu_);
  if (self.done) {  // A leader's call covered us.
    mu_.Unlock();
    return;
  }

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

  mu_.Unlock();
  const auto start = std::chrono::steady_clock::now();
  backend_->Flush(batch);  // Followers keep queueing meanwhile.
  call_ns_.Record(std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count());
  batch_sizes_.Record(n);
  mu_.Lock();

  for (Waiter* w : members) {
    w->done = true;
    queue_.pop_front();
  }
  // Wake the batch's followers and the next leader.
  turn_.SignalAll();
  mu_.Unlock();
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
