// FlushBatcher: coalesces concurrent flush requests, leader and followers.
//
// Group commit as in leveldb's DBImpl::Write: a caller queues its request and
// waits. The caller at the head of the queue becomes the leader: it takes a
// batch of queued requests (itself first, at most kMaxBatch), drops the lock,
// makes ONE backend call for the whole batch, then marks every request in
// the batch done and hands leadership to the next head. Each caller returns
// only once the backend call that covered its request has completed, so the
// coherence promise holds per request.
//
// The batch is the union of the requests' target masks and the list of their
// scopes; a backend applies every scope on every target. The union never
// grows beyond the requested CPUs: batching must not turn a targeted flush
// into a broadcast (Xen's first assisted flush did, and was 7x slower than
// IPIs).
//
// Thread-safety: Flush() from any thread. The backend is called by one
// leader at a time, without the batcher's lock held.
#ifndef HVMM_FLUSH_FLUSH_BATCHER_H_
#define HVMM_FLUSH_FLUSH_BATCHER_H_

#include <cstdint>
#include <deque>
#include <vector>

#include "base/log2_histogram.h"
#include "base/mutex.h"
#include "flush/flush_backend.h"

namespace hvmm {

class FlushBatcher {
 public:
  static constexpr int kMaxBatch = 64;

  // `backend` must outlive this.
  explicit FlushBatcher(FlushBackend* backend) : backend_(backend) {}
  FlushBatcher(const FlushBatcher&) = delete;
  FlushBatcher& operator=(const FlushBatcher&) = delete;

  // Returns when a backend call covering `request` has completed. A request
  // with no targets returns at once.
  void Flush(const FlushRequest& request);

  // Counters (any thread).
  uint64_t requests() const;
  uint64_t backend_calls() const;
  // Requests waiting right now; for tests that stage a batch.
  int queued() const;
  // Per backend call: the requests it served, and how long it took (ns).
  Log2Histogram::Snapshot batch_sizes() const { return batch_sizes_.Read(); }
  Log2Histogram::Snapshot call_durations_ns() const { return call_ns_.Read(); }

 private:
  struct Waiter {
    const FlushRequest* request;
    bool done = false;
  };

  FlushBackend* const backend_;
  mutable Mutex mu_;
  CondVar turn_;  // A leader finished: followers done, next leader up.
  std::deque<Waiter*> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t requests_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t backend_calls_ ABSL_GUARDED_BY(mu_) = 0;
  // Recorded by the leader after its call, outside the lock.
  Log2Histogram batch_sizes_, call_ns_;
};

}  // namespace hvmm

#endif  // HVMM_FLUSH_FLUSH_BATCHER_H_
