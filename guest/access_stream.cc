#include "guest/access_stream.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/check.h"

namespace hvmm {

absl::StatusOr<AccessPattern> ParseAccessPattern(absl::string_view name) {
  if (name == "uniform") return AccessPattern::kUniform;
  if (name == "sequential") return AccessPattern::kSequential;
  if (name == "zipf") return AccessPattern::kZipf;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown access pattern '", name, "' (uniform, sequential, zipf)"));
}

AccessStream::AccessStream(const WorkloadConfig& config, uint64_t seed)
    : config_(config), rng_(seed) {
  for (const PageRange& r : config_.ranges) total_pages_ += r.pages;
  HVMM_CHECK(total_pages_ > 0) << "a workload needs at least one page";
  if (config_.pattern == AccessPattern::kZipf) {
    const uint64_t n = std::min<uint64_t>(total_pages_, 1 << 16);
    zipf_cdf_.resize(n);
    double sum = 0;
    for (uint64_t k = 0; k < n; ++k) {
      sum += 1.0 / std::pow(static_cast<double>(k + 1), config_.zipf_s);
      zipf_cdf_[k] = sum;
    }
    zipf_page_.resize(n);
    std::iota(zipf_page_.begin(), zipf_page_.end(), 0);
    // Spread the hot ranks over the whole range, not just its start.
    for (uint64_t& p : zipf_page_) p = (p * 2654435761u) % total_pages_;
  }
}

Vaddr AccessStream::PageAt(uint64_t i) const {
  for (const PageRange& r : config_.ranges) {
    if (i < r.pages) return r.start.PlusPages(i);
    i -= r.pages;
  }
  HVMM_CHECK(false) << "page index beyond the ranges";
  return Vaddr(0);
}

uint64_t AccessStream::NextZipfRank() {
  const double u = std::uniform_real_distribution<double>(
      0, zipf_cdf_.back())(rng_);
  return static_cast<uint64_t>(
      std::lower_bound(zipf_cdf_.begin(), zipf_cdf_.end(), u) -
      zipf_cdf_.begin());
}

GuestAccess AccessStream::Next() {
  uint64_t page = 0;
  switch (config_.pattern) {
    case AccessPattern::kUniform:
      page = std::uniform_int_distribution<uint64_t>(0, total_pages_ - 1)(rng_);
      break;
    case AccessPattern::kSequential:
      page = cursor_;
      cursor_ = (cursor_ + 1) % total_pages_;
      break;
    case AccessPattern::kZipf:
      page = zipf_page_[std::min<uint64_t>(NextZipfRank(),
                                           zipf_page_.size() - 1)];
      break;
  }
  GuestAccess a;
  a.va = PageAt(page);
  a.access = std::uniform_real_distribution<double>(0, 1)(rng_) <
                     config_.write_fraction
                 ? Access::kWrite
                 : Access::kRead;
  return a;
}

}  // namespace hvmm
