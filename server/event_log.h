// EventLog: the daemon's event history, for WatchEvents.
//
// Every event gets the next revision, strictly increasing across the
// daemon's life, and the time it was appended. The first revision is the
// daemon's start time in microseconds since the Unix epoch, so a revision
// remembered from an earlier daemon is below every revision of a later one,
// and resuming from it reports compaction instead of silently skipping.
//
// History is a ring of the last `capacity` events. A reader resumes after
// a revision (ReadSince): kOutOfRange (reason REVISION_COMPACTED) if events
// after it have left the ring, or if it is from the future (another
// daemon); the client must then relist.
//
// Thread-safety: every method from any thread. Append() takes a short lock
// and never blocks otherwise (pCPUs append violations).
#ifndef HVMM_SERVER_EVENT_LOG_H_
#define HVMM_SERVER_EVENT_LOG_H_

#include <cstdint>
#include <deque>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "hvmm/v1/hvmm.pb.h"

namespace hvmm {

class EventLog {
 public:
  // REQUIRES: capacity >= 1.
  explicit EventLog(size_t capacity, absl::Time start = absl::Now());
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // Stamps `event` with the next revision and the time; returns the
  // revision.
  uint64_t Append(v1::Event event);

  // Appends to `out` the events with revision > `since`, at most `max`, in
  // order. `since` == 0 means the current head (nothing before now).
  // kOutOfRange as the file comment says.
  absl::Status ReadSince(uint64_t since, size_t max,
                         std::vector<v1::Event>* out) const;

  // The newest revision handed out (the one before the first, if none).
  uint64_t head() const;
  // Blocks until head() > `since`, `deadline` passes, or Close(); returns
  // head() > since.
  bool WaitNewer(uint64_t since, absl::Time deadline) const;
  // Wakes every waiter for good: WaitNewer returns at once from now on.
  void Close();
  bool closed() const;

  size_t capacity() const { return capacity_; }

 private:
  const size_t capacity_;
  mutable absl::Mutex mu_;
  std::deque<v1::Event> ring_ ABSL_GUARDED_BY(mu_);
  uint64_t head_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace hvmm

#endif  // HVMM_SERVER_EVENT_LOG_H_
