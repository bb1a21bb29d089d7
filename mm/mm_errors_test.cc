// Every error has its canonical code and an UPPER_SNAKE reason, and
// docs/ERRORS.md lists every reason.
#include "mm/mm_errors.h"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace hvmm {
namespace {

struct Case {
  absl::Status status;
  absl::StatusCode code;
  const char* reason;
};

std::vector<Case> AllErrors() {
  const DomainId d(3);
  const Mfn m(0x1a);
  return {
      {UnknownDomainError(d), absl::StatusCode::kNotFound, "UNKNOWN_DOMAIN"},
      {UnknownVcpuError(d, VcpuId(4), 2), absl::StatusCode::kInvalidArgument,
       "UNKNOWN_VCPU"},
      {BadFrameError(m), absl::StatusCode::kInvalidArgument, "BAD_FRAME"},
      {ForeignFrameError(m, d), absl::StatusCode::kFailedPrecondition,
       "FOREIGN_FRAME"},
      {TypeConflictError(m, PageType::kL2, 1, PageType::kWritable),
       absl::StatusCode::kFailedPrecondition, "TYPE_CONFLICT"},
      {DoublePinError(m), absl::StatusCode::kFailedPrecondition,
       "ALREADY_PINNED"},
      {NotPinnedError(m), absl::StatusCode::kFailedPrecondition, "NOT_PINNED"},
      {FrameInUseError(m, 2, 1), absl::StatusCode::kFailedPrecondition,
       "FRAME_IN_USE"},
      {NotAPageTableError(m, PageType::kNone, 0),
       absl::StatusCode::kFailedPrecondition, "NOT_A_PAGE_TABLE"},
      {QuotaExceededError(d, 8, 8, 1), absl::StatusCode::kResourceExhausted,
       "QUOTA_EXCEEDED"},
      {IllegalEntryError(m, 5, 0x80, "large"),
       absl::StatusCode::kInvalidArgument, "ILLEGAL_ENTRY"},
      {MalformedArgumentError("bad"), absl::StatusCode::kInvalidArgument,
       "MALFORMED_ARGUMENT"},
      {MappingExistsError(Vaddr(0x1000)), absl::StatusCode::kAlreadyExists,
       "MAPPING_EXISTS"},
      {AliasedTablesError(m, Level::kL1, Vaddr(0), Vaddr(1 << 21)),
       absl::StatusCode::kFailedPrecondition, "ALIASED_TABLES"},
      {DomainNameTakenError("web"), absl::StatusCode::kAlreadyExists,
       "DOMAIN_NAME_TAKEN"},
      {PoolExhaustedError(64, 10, 3), absl::StatusCode::kResourceExhausted,
       "POOL_EXHAUSTED"},
      {PoolExhaustedError(64), absl::StatusCode::kResourceExhausted,
       "POOL_EXHAUSTED"},
      {DomainIdsExhaustedError(), absl::StatusCode::kResourceExhausted,
       "DOMAIN_IDS_EXHAUSTED"},
      {RootReleasedError(d), absl::StatusCode::kFailedPrecondition,
       "ROOT_RELEASED"},
      {NoBasePointerError(d, VcpuId(0)), absl::StatusCode::kFailedPrecondition,
       "NO_BASE_POINTER"},
      {NoFlushEngineError("x"), absl::StatusCode::kFailedPrecondition,
       "NO_FLUSH_ENGINE"},
      {UnknownPolicyError("x"), absl::StatusCode::kInvalidArgument,
       "UNKNOWN_POLICY"},
      {UnsafePolicyNotAllowedError("x"), absl::StatusCode::kFailedPrecondition,
       "UNSAFE_POLICY_NOT_ALLOWED"},
  };
}

TEST(MmErrorsTest, EveryErrorHasItsCodeAndReason) {
  for (const Case& c : AllErrors()) {
    EXPECT_EQ(c.status.code(), c.code) << c.status;
    EXPECT_EQ(ErrorReason(c.status), c.reason) << c.status;
    EXPECT_FALSE(c.status.message().empty()) << c.reason;
  }
  EXPECT_EQ(ErrorReason(absl::OkStatus()), "");
  EXPECT_EQ(ErrorReason(absl::InternalError("not ours")), "");
}

TEST(MmErrorsTest, ContextKeepsCodeAndReason) {
  const absl::Status s =
      WithErrorContext(TypeConflictError(Mfn(4), PageType::kL1, 1,
                                         PageType::kWritable),
                       "update 3 of 9");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ErrorReason(s), "TYPE_CONFLICT");
  EXPECT_EQ(s.message().rfind("update 3 of 9: type conflict: mfn 0x4", 0), 0u)
      << s;
}

TEST(MmErrorsTest, DocsListEveryReason) {
  std::ifstream in("docs/ERRORS.md");
  ASSERT_TRUE(in.good()) << "docs/ERRORS.md is not in the runfiles";
  std::stringstream text;
  text << in.rdbuf();
  for (const Case& c : AllErrors()) {
    EXPECT_NE(text.str().find(std::string("`") + c.reason + "`"),
              std::string::npos)
        << c.reason << " is missing from docs/ERRORS.md";
  }
}

}  // namespace
}  // namespace hvmm
