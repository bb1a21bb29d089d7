#include "server/proto_convert.h"

#include "server/api_errors.h"

namespace hvmm {

absl::StatusOr<Policy> PolicyFromProto(v1::FlushPolicy p,
                                       absl::string_view field) {
  switch (p) {
    case v1::FLUSH_POLICY_IPI: return Policy::kIpi;
    case v1::FLUSH_POLICY_ASSISTED_UNSAFE: return Policy::kAssistedUnsafe;
    case v1::FLUSH_POLICY_ASSISTED_FORCE_IPI: return Policy::kAssistedForceIpi;
    case v1::FLUSH_POLICY_ASSISTED_RCU: return Policy::kAssistedRcu;
    default: return UnspecifiedEnumError(field);
  }
}

v1::FlushPolicy PolicyToProto(Policy p) {
  switch (p) {
    case Policy::kIpi: return v1::FLUSH_POLICY_IPI;
    case Policy::kAssistedUnsafe: return v1::FLUSH_POLICY_ASSISTED_UNSAFE;
    case Policy::kAssistedForceIpi: return v1::FLUSH_POLICY_ASSISTED_FORCE_IPI;
    case Policy::kAssistedRcu: return v1::FLUSH_POLICY_ASSISTED_RCU;
  }
  return v1::FLUSH_POLICY_UNSPECIFIED;
}

absl::StatusOr<Level> LevelFromProto(v1::TableLevel l,
                                     absl::string_view field) {
  switch (l) {
    case v1::TABLE_LEVEL_L1: return Level::kL1;
    case v1::TABLE_LEVEL_L2: return Level::kL2;
    case v1::TABLE_LEVEL_L3: return Level::kL3;
    case v1::TABLE_LEVEL_L4: return Level::kL4;
    default: return UnspecifiedEnumError(field);
  }
}

v1::TableLevel LevelToProto(Level l) {
  return static_cast<v1::TableLevel>(static_cast<int>(l));
}

absl::StatusOr<Access> AccessFromProto(v1::AccessKind a,
                                       absl::string_view field) {
  switch (a) {
    case v1::ACCESS_KIND_READ: return Access::kRead;
    case v1::ACCESS_KIND_WRITE: return Access::kWrite;
    default: return UnspecifiedEnumError(field);
  }
}

absl::StatusOr<AccessPattern> PatternFromProto(v1::AccessPattern p,
                                               absl::string_view field) {
  switch (p) {
    case v1::ACCESS_PATTERN_UNIFORM: return AccessPattern::kUniform;
    case v1::ACCESS_PATTERN_SEQUENTIAL: return AccessPattern::kSequential;
    case v1::ACCESS_PATTERN_ZIPF: return AccessPattern::kZipf;
    default: return UnspecifiedEnumError(field);
  }
}

v1::PageType PageTypeToProto(PageType t) {
  switch (t) {
    case PageType::kNone: return v1::PAGE_TYPE_NONE;
    case PageType::kWritable: return v1::PAGE_TYPE_WRITABLE;
    case PageType::kL1: return v1::PAGE_TYPE_L1;
    case PageType::kL2: return v1::PAGE_TYPE_L2;
    case PageType::kL3: return v1::PAGE_TYPE_L3;
    case PageType::kL4: return v1::PAGE_TYPE_L4;
  }
  return v1::PAGE_TYPE_UNSPECIFIED;
}

void ToProto(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t s = absl::ToUnixSeconds(t);
  out->set_seconds(s);
  out->set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(s))));
}

void ToProto(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t s = absl::IDivDuration(d, absl::Seconds(1), &d);
  out->set_seconds(s);
  out->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d)));
}

}  // namespace hvmm
