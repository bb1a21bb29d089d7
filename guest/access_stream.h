// AccessStream: the memory accesses one vCPU makes (DESIGN §2, the guest
// workload driver).
//
// Accesses fall in the domain's configured ranges, page-granular, with a
// read/write mix and one of three patterns:
//   kUniform     every page equally likely;
//   kSequential  page after page, wrapping around the ranges;
//   kZipf        a few hot pages, a long cold tail (exponent `zipf_s`).
// Deterministic for a given seed.
//
// Thread-safety: thread-compatible; each vCPU owns its stream.
#ifndef HVMM_GUEST_ACCESS_STREAM_H_
#define HVMM_GUEST_ACCESS_STREAM_H_

#include <cstdint>
#include <random>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "mm/types.h"
#include "mm/walker.h"

namespace hvmm {

enum class AccessPattern : uint8_t { kUniform, kSequential, kZipf };

// "uniform", "sequential", "zipf"; kInvalidArgument otherwise.
absl::StatusOr<AccessPattern> ParseAccessPattern(absl::string_view name);

struct PageRange {
  Vaddr start{0};
  uint64_t pages = 0;
};

struct WorkloadConfig {
  std::vector<PageRange> ranges;
  AccessPattern pattern = AccessPattern::kUniform;
  double write_fraction = 0.3;
  double zipf_s = 1.1;
  // Accesses per second per vCPU; 0: as fast as the pCPU runs. A vCPU
  // whose budget is spent halts (yields its pCPU) until it has earned the
  // next access (VcpuThrottle).
  double accesses_per_second = 0;
};

struct GuestAccess {
  Vaddr va{0};
  Access access = Access::kRead;
};

class AccessStream {
 public:
  // REQUIRES: at least one non-empty range.
  AccessStream(const WorkloadConfig& config, uint64_t seed);

  GuestAccess Next();
  uint64_t total_pages() const { return total_pages_; }

 private:
  // The address of the i-th page across all ranges.
  Vaddr PageAt(uint64_t i) const;
  uint64_t NextZipfRank();

  const WorkloadConfig config_;
  uint64_t total_pages_ = 0;
  std::mt19937_64 rng_;
  uint64_t cursor_ = 0;  // kSequential.
  // kZipf: cumulative weights of ranks 1..n (n capped to keep setup cheap),
  // and a random mapping from rank to page so hot pages spread out.
  std::vector<double> zipf_cdf_;
  std::vector<uint64_t> zipf_page_;
};

}  // namespace hvmm

#endif  // HVMM_GUEST_ACCESS_STREAM_H_
