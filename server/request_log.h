// RequestLog: idempotent mutations (AIP-155).
//
// A mutation with a request_id is applied once. A retry with the same id
// and the same request (same method and bytes, request_id included) gets
// the first call's response; while the first call is still running, the
// retry waits for it. The same id with a different request is
// REQUEST_ID_REUSED. Only successes are remembered: a failed call changed
// nothing, so its retry simply runs again.
//
// Window: an id is remembered for `ttl` after its call succeeded and among
// the newest `capacity` ids, whichever ends first (defaults: 10 minutes and
// 4096). docs/API.md states them.
//
// Thread-safety: every method from any thread.
#ifndef HVMM_SERVER_REQUEST_LOG_H_
#define HVMM_SERVER_REQUEST_LOG_H_

#include <cstdint>
#include <deque>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace hvmm {

class RequestLog {
 public:
  struct Options {
    absl::Duration ttl = absl::Minutes(10);
    size_t capacity = 4096;
  };

  // What Begin() decided.
  struct Ticket {
    // True: the caller runs the call and must End() it. False: `response`
    // is the remembered response of the first call.
    bool first = false;
    std::string response;
  };

  explicit RequestLog(Options options) : options_(options) {}
  RequestLog() : RequestLog(Options()) {}

  // `key` names the call (method + request_id); `fingerprint` is the
  // request's bytes. kInvalidArgument (REQUEST_ID_REUSED) for a different
  // request under a known key; kDeadlineExceeded if the first call under
  // the key is still running at `deadline`.
  absl::StatusOr<Ticket> Begin(const std::string& key,
                               const std::string& fingerprint,
                               absl::Time deadline = absl::InfiniteFuture(),
                               absl::Time now = absl::Now());
  // Ends a call Begin() let run: remembers `response` if `ok`, else forgets
  // the key (and wakes retries waiting for it, which then run themselves).
  void End(const std::string& key, bool ok, std::string response,
           absl::Time now = absl::Now());

  size_t size() const;

 private:
  struct Entry {
    std::string fingerprint;
    bool done = false;
    std::string response;
    absl::Time expiry = absl::InfiniteFuture();
    uint64_t serial = 0;  // Position in order_.
  };
  void ExpireLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  // Keys of finished entries, oldest first, with their serials.
  std::deque<std::pair<std::string, uint64_t>> order_ ABSL_GUARDED_BY(mu_);
  uint64_t next_serial_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace hvmm

#endif  // HVMM_SERVER_REQUEST_LOG_H_
