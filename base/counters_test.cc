#include <thread>
#include <vector>

#include "base/log2_histogram.h"
#include "base/sharded_counter.h"
#include "gtest/gtest.h"

namespace hvmm {
namespace {

TEST(Log2HistogramTest, BucketsArePowersOfTwo) {
  EXPECT_EQ(Log2Histogram::BucketOf(0), 0);
  EXPECT_EQ(Log2Histogram::BucketOf(1), 0);
  EXPECT_EQ(Log2Histogram::BucketOf(2), 1);
  EXPECT_EQ(Log2Histogram::BucketOf(3), 1);
  EXPECT_EQ(Log2Histogram::BucketOf(4), 2);
  EXPECT_EQ(Log2Histogram::BucketOf(1023), 9);
  EXPECT_EQ(Log2Histogram::BucketOf(1024), 10);
  EXPECT_EQ(Log2Histogram::BucketOf(~uint64_t{0}), Log2Histogram::kBuckets - 1);
}

TEST(Log2HistogramTest, CountSumAndQuantiles) {
  Log2Histogram h;
  EXPECT_EQ(h.Read().Quantile(0.99), 0u);
  for (int i = 0; i < 99; ++i) h.Record(100);  // Bucket 6: [64, 128).
  h.Record(5000);                              // Bucket 12: [4096, 8192).
  const Log2Histogram::Snapshot s = h.Read();
  EXPECT_EQ(s.count, 100u);
  EXPECT_EQ(s.sum, 99u * 100 + 5000);
  EXPECT_EQ(s.buckets[6], 99u);
  EXPECT_EQ(s.buckets[12], 1u);
  EXPECT_EQ(s.Quantile(0.5), 128u);
  EXPECT_EQ(s.Quantile(0.99), 128u);
  EXPECT_EQ(s.Quantile(1.0), 8192u);
}

TEST(Log2HistogramTest, IntervalsAndMerges) {
  Log2Histogram h;
  h.Record(100);
  const Log2Histogram::Snapshot before = h.Read();
  h.Record(5000);
  h.Record(6000);
  Log2Histogram::Snapshot interval = h.Read().Minus(before);
  EXPECT_EQ(interval.count, 2u);
  EXPECT_EQ(interval.sum, 11000u);
  EXPECT_EQ(interval.buckets[6], 0u);
  EXPECT_EQ(interval.buckets[12], 2u);
  interval.Add(before);
  EXPECT_EQ(interval.count, 3u);
  EXPECT_EQ(interval.Quantile(0.3), 128u);
}

TEST(ShardedCountersTest, SumsEveryThreadsAdds) {
  ShardedCounters<3> c;
  constexpr int kThreads = 24;  // More than kShards: shards are shared.
  constexpr int kAdds = 10000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&c, t] {
      for (int i = 0; i < kAdds; ++i) c.Add(t % 3);
      c.Add(2, 5);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.Sum(0), uint64_t{8} * kAdds);
  EXPECT_EQ(c.Sum(1), uint64_t{8} * kAdds);
  EXPECT_EQ(c.Sum(2), uint64_t{8} * kAdds + kThreads * 5);
}

}  // namespace
}  // namespace hvmm
