// Conversions between hvmm.v1 messages and engine types. Enum conversions
// from the wire reject *_UNSPECIFIED and unknown numbers
// (UnspecifiedEnumError naming the field).
#ifndef HVMM_SERVER_PROTO_CONVERT_H_
#define HVMM_SERVER_PROTO_CONVERT_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "flush/flush_policy.h"
#include "guest/access_stream.h"
#include "hvmm/v1/hvmm.pb.h"
#include "mm/memory_manager.h"
#include "mm/types.h"
#include "mm/walker.h"

namespace hvmm {

absl::StatusOr<Policy> PolicyFromProto(v1::FlushPolicy p,
                                       absl::string_view field);
v1::FlushPolicy PolicyToProto(Policy p);
absl::StatusOr<Level> LevelFromProto(v1::TableLevel l, absl::string_view field);
v1::TableLevel LevelToProto(Level l);
absl::StatusOr<Access> AccessFromProto(v1::AccessKind a,
                                       absl::string_view field);
absl::StatusOr<AccessPattern> PatternFromProto(v1::AccessPattern p,
                                               absl::string_view field);
v1::PageType PageTypeToProto(PageType t);

void ToProto(absl::Time t, google::protobuf::Timestamp* out);
void ToProto(absl::Duration d, google::protobuf::Duration* out);

}  // namespace hvmm

#endif  // HVMM_SERVER_PROTO_CONVERT_H_
