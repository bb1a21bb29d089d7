#include "server/event_log.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "mm/mm_errors.h"

namespace hvmm {

EventLog::EventLog(size_t capacity, absl::Time start)
    : capacity_(capacity),
      head_(static_cast<uint64_t>(absl::ToUnixMicros(start))) {
  HVMM_CHECK(capacity >= 1) << "an event log needs room for one event";
}

uint64_t EventLog::Append(v1::Event event) {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  event.set_revision(++head_);
  event.mutable_time()->set_seconds(absl::ToUnixSeconds(now));
  event.mutable_time()->set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(now - absl::FromUnixSeconds(
                                         absl::ToUnixSeconds(now)))));
  ring_.push_back(std::move(event));
  if (ring_.size() > capacity_) ring_.pop_front();
  return head_;
}

absl::Status EventLog::ReadSince(uint64_t since, size_t max,
                                 std::vector<v1::Event>* out) const {
  absl::MutexLock lock(&mu_);
  if (since == 0) return absl::OkStatus();
  const uint64_t oldest =
      ring_.empty() ? head_ + 1 : ring_.front().revision();
  if (since > head_ || since + 1 < oldest) {
    return WithErrorReason(
        absl::OutOfRangeError(absl::StrCat(
            "revision ", since, " is not in the event history (it holds ",
            oldest, "..", head_, "); relist with ListDomains and watch from "
            "the revision of a fresh WatchEvents")),
        "REVISION_COMPACTED");
  }
  // Revisions in the ring are consecutive: the first after `since` is at
  // index since + 1 - oldest.
  for (size_t i = since + 1 - oldest; i < ring_.size() && max > 0; ++i, --max) {
    out->push_back(ring_[i]);
  }
  return absl::OkStatus();
}

uint64_t EventLog::head() const {
  absl::MutexLock lock(&mu_);
  return head_;
}

bool EventLog::WaitNewer(uint64_t since, absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return head_ > since || closed_;
  };
  mu_.AwaitWithDeadline(absl::Condition(&ready), deadline);
  return head_ > since;
}

void EventLog::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

bool EventLog::closed() const {
  absl::MutexLock lock(&mu_);
  return closed_;
}

}  // namespace hvmm
