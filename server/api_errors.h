// The errors the service itself can cause (the engine's are in
// mm/mm_errors.h), one constructor each, every one with a reason
// (WithErrorReason). docs/ERRORS.md lists them; api_errors_test checks it.
#ifndef HVMM_SERVER_API_ERRORS_H_
#define HVMM_SERVER_API_ERRORS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "mm/types.h"

namespace hvmm {

// kUnavailable: the daemon is shutting down.
absl::Status DrainingError();
// kInvalidArgument: a required enum field holds its *_UNSPECIFIED value
// (or a number the enum does not define).
absl::Status UnspecifiedEnumError(absl::string_view field);
// kInvalidArgument: a required field or oneof is not set.
absl::Status MissingFieldError(absl::string_view field);
// kInvalidArgument: page_size < 0.
absl::Status InvalidPageSizeError(int32_t page_size);
// kInvalidArgument: a page_token this server did not issue for this request.
absl::Status InvalidPageTokenError(absl::string_view why);
// kInvalidArgument: a request_id already used by a different request.
absl::Status RequestIdReusedError(absl::string_view request_id);
// kInvalidArgument: a request_id longer than kMaxRequestIdBytes.
absl::Status RequestIdTooLongError(size_t bytes);
// kNotFound: no live domain has this name.
absl::Status UnknownDomainNameError(absl::string_view name);
// kPermissionDenied: a mutation on the read-only socket.
absl::Status ReadOnlySocketError(absl::string_view method);
// kFailedPrecondition: StartWorkload on a domain whose workload runs.
absl::Status WorkloadRunningError(DomainId domain);
// kFailedPrecondition: StopWorkload on a domain with no workload.
absl::Status NoWorkloadError(DomainId domain);

inline constexpr size_t kMaxRequestIdBytes = 128;

}  // namespace hvmm

#endif  // HVMM_SERVER_API_ERRORS_H_
