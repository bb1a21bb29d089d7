#include "server/api_errors.h"

#include "absl/strings/str_cat.h"
#include "mm/mm_errors.h"

namespace hvmm {

absl::Status DrainingError() {
  return WithErrorReason(
      absl::UnavailableError("hvmmd is shutting down; retry elsewhere"),
      "DRAINING");
}

absl::Status UnspecifiedEnumError(absl::string_view field) {
  return WithErrorReason(
      absl::InvalidArgumentError(absl::StrCat(
          field, " must be set to one of its defined values, not UNSPECIFIED")),
      "UNSPECIFIED_ENUM");
}

absl::Status MissingFieldError(absl::string_view field) {
  return WithErrorReason(
      absl::InvalidArgumentError(absl::StrCat(field, " is required")),
      "MISSING_FIELD");
}

absl::Status InvalidPageSizeError(int32_t page_size) {
  return WithErrorReason(
      absl::InvalidArgumentError(absl::StrCat(
          "page_size must be >= 0 (0: the default), got ", page_size)),
      "INVALID_PAGE_SIZE");
}

absl::Status InvalidPageTokenError(absl::string_view why) {
  return WithErrorReason(
      absl::InvalidArgumentError(absl::StrCat(
          "page_token is not one this server issued for this request: ", why)),
      "INVALID_PAGE_TOKEN");
}

absl::Status RequestIdReusedError(absl::string_view request_id) {
  return WithErrorReason(
      absl::InvalidArgumentError(absl::StrCat(
          "request_id '", request_id,
          "' was already used for a different request")),
      "REQUEST_ID_REUSED");
}

absl::Status RequestIdTooLongError(size_t bytes) {
  return WithErrorReason(
      absl::InvalidArgumentError(absl::StrCat("request_id has ", bytes,
                                              " bytes; at most ",
                                              kMaxRequestIdBytes)),
      "MALFORMED_ARGUMENT");
}

absl::Status UnknownDomainNameError(absl::string_view name) {
  return WithErrorReason(absl::NotFoundError(absl::StrCat(
                             "no live domain is named '", name, "'")),
                         "UNKNOWN_DOMAIN");
}

absl::Status ReadOnlySocketError(absl::string_view method) {
  return WithErrorReason(
      absl::PermissionDeniedError(absl::StrCat(
          method, " changes state; the read-only socket serves only Get, "
                  "List, GetFrame, Translate, GetStats and WatchEvents")),
      "READ_ONLY_SOCKET");
}

absl::Status WorkloadRunningError(DomainId domain) {
  return WithErrorReason(
      absl::FailedPreconditionError(absl::StrCat(
          "domain ", domain.value(), " already runs a workload; stop it first")),
      "WORKLOAD_RUNNING");
}

absl::Status NoWorkloadError(DomainId domain) {
  return WithErrorReason(absl::FailedPreconditionError(absl::StrCat(
                             "domain ", domain.value(), " runs no workload")),
                         "NO_WORKLOAD");
}

}  // namespace hvmm
