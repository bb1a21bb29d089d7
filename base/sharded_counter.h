// ShardedCounters<N>: N monotonic counters, each spread over per-thread
// shards so that threads counting on different CPUs never share a cache
// line (the per-CPU counter of Linux's percpu_counter, without the batch).
//
// A thread takes a shard the first time it counts (round robin over
// kShards) and keeps it; Add() is one relaxed atomic add on that shard's
// line, uncontended unless more than kShards threads count at once. Sum()
// reads every shard: a scrape-time cost, never a hot-path one.
//
// Thread-safety: Add() and Sum() from any thread. A Sum() concurrent with
// Add()s is a value the counter had at some instant within the call, up to
// the adds in flight; sums never decrease.
#ifndef HVMM_BASE_SHARDED_COUNTER_H_
#define HVMM_BASE_SHARDED_COUNTER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace hvmm {

namespace sharded_counter_internal {
inline constexpr int kShards = 16;
// The calling thread's shard, fixed at its first call.
inline int ThisThreadShard() {
  static std::atomic<int> next{0};
  thread_local const int shard =
      next.fetch_add(1, std::memory_order_relaxed) % kShards;
  return shard;
}
}  // namespace sharded_counter_internal

template <size_t N>
class ShardedCounters {
 public:
  static constexpr int kShards = sharded_counter_internal::kShards;

  void Add(size_t counter, uint64_t n = 1) {
    shards_[sharded_counter_internal::ThisThreadShard()]
        .counts[counter]
        .fetch_add(n, std::memory_order_relaxed);
  }

  uint64_t Sum(size_t counter) const {
    uint64_t total = 0;
    for (const Shard& s : shards_) {
      total += s.counts[counter].load(std::memory_order_relaxed);
    }
    return total;
  }

 private:
  struct alignas(64) Shard {
    std::atomic<uint64_t> counts[N] = {};
  };
  Shard shards_[kShards];
};

}  // namespace hvmm

#endif  // HVMM_BASE_SHARDED_COUNTER_H_
