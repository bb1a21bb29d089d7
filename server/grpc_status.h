// The one place absl::Status becomes grpc::Status.
//
// Codes map one to one (absl's canonical codes are gRPC's). The reason
// (mm_errors.h ErrorReason(); "INTERNAL" for an error that has none, which
// is a bug) travels twice:
//   - in the trailing metadata key "hvmm-error-reason", as plain ASCII: the
//     easy way for any client (Python: err.trailing_metadata());
//   - in grpc-status-details-bin, as an hvmm.v1.Status whose details hold
//     one hvmm.v1.ErrorInfo {reason, domain: "hvmm.v1"}, packed under the
//     type URL of google.rpc.ErrorInfo. Both messages are wire-compatible
//     with google.rpc's, so clients with googleapis' rich-error helpers read
//     them as usual.
#ifndef HVMM_SERVER_GRPC_STATUS_H_
#define HVMM_SERVER_GRPC_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/grpcpp.h"

namespace hvmm {

inline constexpr char kReasonMetadataKey[] = "hvmm-error-reason";
inline constexpr char kErrorInfoTypeUrl[] =
    "type.googleapis.com/google.rpc.ErrorInfo";
inline constexpr char kErrorDomain[] = "hvmm.v1";

grpc::StatusCode ToGrpcCode(absl::StatusCode code);

// "OK", "NOT_FOUND", ...: a gRPC code's canonical name ("CODE_<n>" for a
// value outside the 17 codes).
std::string GrpcCodeName(grpc::StatusCode code);

// Maps `status`; for an error, also adds the reason to `context`'s trailing
// metadata (when `context` is not null).
grpc::Status ToGrpcStatus(const absl::Status& status,
                          grpc::ServerContext* context);

// The reason carried by a failed call's grpc-status-details-bin; "" if
// none. (Clients can read the trailing metadata instead.)
std::string ReasonFromDetails(const grpc::Status& status);

}  // namespace hvmm

#endif  // HVMM_SERVER_GRPC_STATUS_H_
