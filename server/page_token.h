// PageTokens: opaque, request-bound page tokens for List calls (AIP-158).
//
// A token encodes where the next page starts and a keyed check over the
// method and that position, with a key drawn when the daemon starts. So a
// token is only accepted by the daemon that issued it, for the method that
// issued it; anything else is INVALID_PAGE_TOKEN. Tokens are not secrets:
// the check catches mistakes, not attackers (every caller can list anyway).
//
// Thread-safety: immutable after construction.
#ifndef HVMM_SERVER_PAGE_TOKEN_H_
#define HVMM_SERVER_PAGE_TOKEN_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hvmm {

// page_size 0 means this; larger sizes are clamped to kMaxPageSize.
inline constexpr int32_t kDefaultPageSize = 100;
inline constexpr int32_t kMaxPageSize = 1000;

// The page size to use for `requested`: kInvalidArgument
// (INVALID_PAGE_SIZE) if negative.
absl::StatusOr<int32_t> EffectivePageSize(int32_t requested);

class PageTokens {
 public:
  PageTokens();
  // A token for the page of `method` that starts after key `after`.
  std::string Issue(absl::string_view method, uint64_t after) const;
  // The `after` of a token Issue() made for `method`; "" is 0 (the first
  // page).
  absl::StatusOr<uint64_t> Parse(absl::string_view method,
                                 absl::string_view token) const;

 private:
  uint64_t Check(absl::string_view method, uint64_t after) const;
  const uint64_t key_;
};

}  // namespace hvmm

#endif  // HVMM_SERVER_PAGE_TOKEN_H_
