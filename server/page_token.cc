#include "server/page_token.h"

#include <random>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/api_errors.h"

namespace hvmm {
namespace {

uint64_t RandomKey() {
  std::random_device rd;
  return (uint64_t{rd()} << 32) ^ rd();
}

// SplitMix64's finalizer: a keyed mix, not a MAC (file comment).
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9;
  x = (x ^ (x >> 27)) * 0x94d049bb133111eb;
  return x ^ (x >> 31);
}

}  // namespace

absl::StatusOr<int32_t> EffectivePageSize(int32_t requested) {
  if (requested < 0) return InvalidPageSizeError(requested);
  if (requested == 0) return kDefaultPageSize;
  return requested > kMaxPageSize ? kMaxPageSize : requested;
}

PageTokens::PageTokens() : key_(RandomKey()) {}

uint64_t PageTokens::Check(absl::string_view method, uint64_t after) const {
  uint64_t h = Mix(key_ ^ after);
  for (char c : method) h = Mix(h ^ static_cast<unsigned char>(c));
  return h;
}

std::string PageTokens::Issue(absl::string_view method, uint64_t after) const {
  return absl::WebSafeBase64Escape(
      absl::StrCat("v1.", after, ".", absl::Hex(Check(method, after))));
}

absl::StatusOr<uint64_t> PageTokens::Parse(absl::string_view method,
                                           absl::string_view token) const {
  if (token.empty()) return 0;
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) {
    return InvalidPageTokenError("not base64url");
  }
  std::vector<absl::string_view> parts = absl::StrSplit(raw, '.');
  uint64_t after = 0, check = 0;
  if (parts.size() != 3 || parts[0] != "v1" ||
      !absl::SimpleAtoi(parts[1], &after) ||
      !absl::SimpleHexAtoi(parts[2], &check)) {
    return InvalidPageTokenError("malformed");
  }
  if (check != Check(method, after)) {
    return InvalidPageTokenError(
        "issued by another daemon, or for another call");
  }
  return after;
}

}  // namespace hvmm
