// Every error the service builds has its code and reason, and
// docs/ERRORS.md lists the reason; so do the reasons the daemon's own
// layers build (listen.cc, event_log.cc).
#include "server/api_errors.h"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "mm/mm_errors.h"

namespace hvmm {
namespace {

struct Case {
  absl::Status status;
  absl::StatusCode code;
  const char* reason;
};

std::vector<Case> AllErrors() {
  return {
      {DrainingError(), absl::StatusCode::kUnavailable, "DRAINING"},
      {UnspecifiedEnumError("policy"), absl::StatusCode::kInvalidArgument,
       "UNSPECIFIED_ENUM"},
      {MissingFieldError("target"), absl::StatusCode::kInvalidArgument,
       "MISSING_FIELD"},
      {InvalidPageSizeError(-1), absl::StatusCode::kInvalidArgument,
       "INVALID_PAGE_SIZE"},
      {InvalidPageTokenError("x"), absl::StatusCode::kInvalidArgument,
       "INVALID_PAGE_TOKEN"},
      {RequestIdReusedError("r"), absl::StatusCode::kInvalidArgument,
       "REQUEST_ID_REUSED"},
      {RequestIdTooLongError(200), absl::StatusCode::kInvalidArgument,
       "MALFORMED_ARGUMENT"},
      {UnknownDomainNameError("n"), absl::StatusCode::kNotFound,
       "UNKNOWN_DOMAIN"},
      {ReadOnlySocketError("Pin"), absl::StatusCode::kPermissionDenied,
       "READ_ONLY_SOCKET"},
      {WorkloadRunningError(DomainId(3)), absl::StatusCode::kFailedPrecondition,
       "WORKLOAD_RUNNING"},
      {NoWorkloadError(DomainId(3)), absl::StatusCode::kFailedPrecondition,
       "NO_WORKLOAD"},
  };
}

TEST(ApiErrorsTest, EveryErrorHasItsCodeAndReason) {
  for (const Case& c : AllErrors()) {
    EXPECT_EQ(c.status.code(), c.code) << c.status;
    EXPECT_EQ(ErrorReason(c.status), c.reason) << c.status;
    EXPECT_FALSE(c.status.message().empty());
  }
}

TEST(ApiErrorsTest, DocsListEveryReason) {
  std::ifstream in("docs/ERRORS.md");
  ASSERT_TRUE(in.good()) << "docs/ERRORS.md is not in the runfiles";
  std::stringstream text;
  text << in.rdbuf();
  std::vector<std::string> reasons;
  for (const Case& c : AllErrors()) reasons.push_back(c.reason);
  // Built outside api_errors.cc.
  for (const char* r : {"REVISION_COMPACTED", "SOCKET_IN_USE",
                        "SOCKET_DIR_UNSAFE", "DEADLINE_EXCEEDED", "INTERNAL"}) {
    reasons.push_back(r);
  }
  for (const std::string& r : reasons) {
    EXPECT_NE(text.str().find("`" + r + "`"), std::string::npos)
        << r << " is missing from docs/ERRORS.md";
  }
}

}  // namespace
}  // namespace hvmm
