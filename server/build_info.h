// What this binary is: hvmm's version and the git revision it was built
// from (Bazel's workspace status: tools/workspace_status.sh).
#ifndef HVMM_SERVER_BUILD_INFO_H_
#define HVMM_SERVER_BUILD_INFO_H_

namespace hvmm {

// Semantic version of the daemon and its API.
inline constexpr char kHvmmVersion[] = "0.3.0";

// The short commit hash, "<hash>-dirty" for a tree with local changes, or
// "unknown" outside a git checkout.
const char* BuildRevision();

}  // namespace hvmm

#endif  // HVMM_SERVER_BUILD_INFO_H_
