#include "flush/flush_batcher.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace hvmm {
namespace {

// Records every batch; can hold a call open until released.
class RecordingBackend : public FlushBackend {
 public:
  void Flush(const FlushBatch& batch) override {
    std::unique_lock<std::mutex> lock(mu_);
    batches_.push_back(batch);
    entered_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return !hold_; });
    completed_.fetch_add(1);
  }
  void Hold() {
    std::lock_guard<std::mutex> lock(mu_);
    hold_ = true;
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    hold_ = false;
    cv_.notify_all();
  }
  void WaitEntered() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return entered_; });
  }
  std::vector<FlushBatch> batches() {
    std::lock_guard<std::mutex> lock(mu_);
    return batches_;
  }
  int completed() const { return completed_.load(); }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool hold_ = false;
  bool entered_ = false;
  std::vector<FlushBatch> batches_;
  std::atomic<int> completed_{0};
};

CpuMask Cpus(std::initializer_list<int> cpus) {
  CpuMask m;
  for (int c : cpus) m.Set(PcpuId(c));
  return m;
}

TEST(FlushBatcherTest, LoneRequestIsOneCallWithItsOwnTargetsAndScope) {
  RecordingBackend backend;
  FlushBatcher batcher(&backend);
  batcher.Flush({Cpus({1, 3}), FlushScope::Domain(DomainId(7))});
  const std::vector<FlushBatch> b = backend.batches();
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].targets, Cpus({1, 3}));
  ASSERT_EQ(b[0].scopes.size(), 1u);
  EXPECT_EQ(b[0].scopes[0].domain, DomainId(7));
  EXPECT_EQ(b[0].requests, 1);
}

TEST(FlushBatcherTest, EmptyMaskNeedsNoCall) {
  RecordingBackend backend;
  FlushBatcher batcher(&backend);
  batcher.Flush({CpuMask(), FlushScope::All()});
  EXPECT_TRUE(backend.batches().empty());
}

TEST(FlushBatcherTest, RequestsQueuedDuringACallShareTheNextCall) {
  RecordingBackend backend;
  FlushBatcher batcher(&backend);
  backend.Hold();
  std::thread leader([&] {
    batcher.Flush({Cpus({0}), FlushScope::Domain(DomainId(1))});
  });
  backend.WaitEntered();  // The leader is inside the backend.

  std::vector<std::thread> followers;
  std::atomic<int> returned_early{0};
  for (int i = 1; i <= 4; ++i) {
    followers.emplace_back([&, i] {
      // Two share a scope; masks overlap.
      batcher.Flush({Cpus({i, i + 1}),
                     i <= 2 ? FlushScope::Domain(DomainId(2))
                            : FlushScope::Range(DomainId(3), Vaddr(0), i)});
      // Returning means the call covering this request completed.
      if (backend.completed() < 2) returned_early.fetch_add(1);
    });
  }
  while (batcher.queued() < 5) std::this_thread::yield();  // Leader + 4.
  backend.Release();
  leader.join();
  for (auto& t : followers) t.join();

  EXPECT_EQ(returned_early.load(), 0);
  const std::vector<FlushBatch> b = backend.batches();
  ASSERT_EQ(b.size(), 2u) << "five requests, two backend calls";
  EXPECT_EQ(b[1].requests, 4);
  // Exactly the union of the requested CPUs: never a broadcast.
  EXPECT_EQ(b[1].targets, Cpus({1, 2, 3, 4, 5}));
  EXPECT_EQ(b[1].scopes.size(), 3u);  // Domain 2 once, two distinct ranges.
  EXPECT_EQ(batcher.requests(), 5u);
  EXPECT_EQ(batcher.backend_calls(), 2u);
}

// Bounded stress: every request returns, each covered by a completed call,
// and batching actually happens under contention.
TEST(FlushBatcherTest, ConcurrentCallersAllComplete) {
  RecordingBackend backend;
  FlushBatcher batcher(&backend);
  constexpr int kThreads = 4, kEach = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < kEach; ++i) {
        batcher.Flush({Cpus({static_cast<int>(rng() % 8)}),
                       FlushScope::Domain(DomainId(1 + rng() % 3))});
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(batcher.requests(), uint64_t{kThreads * kEach});
  EXPECT_EQ(static_cast<uint64_t>(backend.completed()), batcher.backend_calls());
  int covered = 0;
  for (const FlushBatch& b : backend.batches()) {
    EXPECT_LE(b.requests, FlushBatcher::kMaxBatch);
    covered += b.requests;
  }
  EXPECT_EQ(covered, kThreads * kEach) << "each request in exactly one batch";
  std::printf("%d requests, %lu backend calls\n", kThreads * kEach,
              static_cast<unsigned long>(batcher.backend_calls()));
}

}  // namespace
}  // namespace hvmm
