// Log2Histogram: a lock-free histogram of non-negative integers (latencies
// in ns, batch sizes) in power-of-two buckets, for quantiles in reports and
// Prometheus histograms on scrape.
//
// Bucket b counts values v with 2^b <= v < 2^(b+1) (bucket 0 also counts 0);
// the last bucket is open above. So a quantile is known within a factor of
// 2, and a Prometheus bucket boundary `le` = 2^(b+1) - 1 is exact for
// integer values.
//
// Cost: Record() is three relaxed atomic adds on the histogram's lines, so
// it belongs on paths that run per batch or per grace period, not per walk.
//
// Thread-safety: Record() and the readers from any thread. A Snapshot()
// taken while Record() runs may see the count and the sum of one value
// apart; each is monotonic.
#ifndef HVMM_BASE_LOG2_HISTOGRAM_H_
#define HVMM_BASE_LOG2_HISTOGRAM_H_

#include <array>
#include <atomic>
#include <cstdint>

namespace hvmm {

class Log2Histogram {
 public:
  static constexpr int kBuckets = 48;

  struct Snapshot {
    std::array<uint64_t, kBuckets> buckets{};  // Not cumulative.
    uint64_t count = 0;                        // Sum of buckets.
    uint64_t sum = 0;                          // Sum of the recorded values.

    // What was recorded between `earlier` (a Read() of the same histogram)
    // and this one.
    Snapshot Minus(const Snapshot& earlier) const {
      Snapshot d;
      for (int b = 0; b < kBuckets; ++b) {
        d.buckets[b] = buckets[b] - earlier.buckets[b];
      }
      d.count = count - earlier.count;
      d.sum = sum - earlier.sum;
      return d;
    }
    // Merges another histogram's snapshot into this one.
    void Add(const Snapshot& other) {
      for (int b = 0; b < kBuckets; ++b) buckets[b] += other.buckets[b];
      count += other.count;
      sum += other.sum;
    }

    // The smallest power of two that at least a fraction q (0 < q <= 1) of
    // the values lie below, i.e. the upper edge of the bucket holding the
    // q-quantile; 0 if empty.
    uint64_t Quantile(double q) const {
      if (count == 0) return 0;
      uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(count));
      if (rank == 0) rank = 1;
      uint64_t seen = 0;
      for (int b = 0; b < kBuckets; ++b) {
        seen += buckets[b];
        if (seen >= rank) return uint64_t{1} << (b + 1);
      }
      return uint64_t{1} << kBuckets;
    }
  };

  static int BucketOf(uint64_t value) {
    if (value == 0) return 0;
    const int b = 63 - __builtin_clzll(value);
    return b < kBuckets ? b : kBuckets - 1;
  }

  void Record(uint64_t value) {
    buckets_[BucketOf(value)].fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(value, std::memory_order_relaxed);
  }

  Snapshot Read() const {
    Snapshot s;
    for (int b = 0; b < kBuckets; ++b) {
      s.buckets[b] = buckets_[b].load(std::memory_order_relaxed);
      s.count += s.buckets[b];
    }
    s.sum = sum_.load(std::memory_order_relaxed);
    return s;
  }

 private:
  std::atomic<uint64_t> buckets_[kBuckets] = {};
  std::atomic<uint64_t> sum_{0};
};

}  // namespace hvmm

#endif  // HVMM_BASE_LOG2_HISTOGRAM_H_
