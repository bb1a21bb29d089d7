#include "server/request_log.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "mm/mm_errors.h"
#include "server/api_errors.h"

namespace hvmm {

absl::StatusOr<RequestLog::Ticket> RequestLog::Begin(
    const std::string& key, const std::string& fingerprint,
    absl::Time deadline, absl::Time now) {
  absl::MutexLock lock(&mu_);
  for (;;) {
    ExpireLocked(now);
    auto it = entries_.find(key);
    if (it == entries_.end()) {
      Entry& e = entries_[key];
      e.fingerprint = fingerprint;
      return Ticket{true, {}};
    }
    if (it->second.fingerprint != fingerprint) {
      return RequestIdReusedError(key.substr(key.find('/') + 1));
    }
    if (it->second.done) return Ticket{false, it->second.response};
    // The first call is still running: wait until it ends or is forgotten.
    auto settled = [this, &key]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      auto e = entries_.find(key);
      return e == entries_.end() || e->second.done;
    };
    if (!mu_.AwaitWithDeadline(absl::Condition(&settled), deadline)) {
      return WithErrorReason(
          absl::DeadlineExceededError(absl::StrCat(
              "the first call with request_id '", key.substr(key.find('/') + 1),
              "' was still running at this call's deadline")),
          "DEADLINE_EXCEEDED");
    }
  }
}

void RequestLog::End(const std::string& key, bool ok, std::string response,
                     absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  if (!ok) {
    entries_.erase(it);
    return;
  }
  it->second.done = true;
  it->second.response = std::move(response);
  it->second.expiry = now + options_.ttl;
  it->second.serial = next_serial_++;
  order_.emplace_back(key, it->second.serial);
  ExpireLocked(now);
}

void RequestLog::ExpireLocked(absl::Time now) {
  while (!order_.empty()) {
    auto it = entries_.find(order_.front().first);
    const bool stale = it == entries_.end() ||
                       it->second.serial != order_.front().second;
    if (!stale && order_.size() <= options_.capacity &&
        it->second.expiry > now) {
      break;
    }
    if (!stale) entries_.erase(it);
    order_.pop_front();
  }
}

size_t RequestLog::size() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

}  // namespace hvmm
