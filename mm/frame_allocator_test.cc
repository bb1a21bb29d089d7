#include "mm/frame_allocator.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "gtest/gtest.h"

namespace hvmm {
namespace {

class FrameAllocatorTest : public ::testing::Test {
 protected:
  void Init(uint64_t frames, int shards) {
    table_ = FrameTable::Create(frames).value();
    allocator_ = std::make_unique<FrameAllocator>(
        table_.get(), &clock_, FrameAllocator::Options{shards});
  }
  TlbClock clock_;
  std::unique_ptr<FrameTable> table_;
  std::unique_ptr<FrameAllocator> allocator_;
};

TEST_F(FrameAllocatorTest, HandsOutEveryFrameOnceThenReportsExhaustion) {
  Init(300, 4);
  absl::flat_hash_set<Mfn> seen;
  for (int i = 0; i < 300; ++i) {
    absl::StatusOr<Mfn> m = allocator_->Allocate();
    ASSERT_TRUE(m.ok()) << m.status();
    ASSERT_TRUE(seen.insert(*m).second) << "frame handed out twice";
  }
  EXPECT_EQ(allocator_->free_frames(), 0u);
  EXPECT_EQ(allocator_->Allocate().status().code(),
            absl::StatusCode::kResourceExhausted);
  for (Mfn m : seen) allocator_->Free(m);
  EXPECT_EQ(allocator_->free_frames(), 300u);
}

TEST_F(FrameAllocatorTest, FreeBumpsGenerationAndStampsClock) {
  Init(16, 1);
  const Mfn m = allocator_->Allocate().value();
  const uint32_t gen = table_->info(m).generation.load();
  clock_.Tick();
  clock_.Tick();
  allocator_->Free(m);
  EXPECT_EQ(table_->info(m).generation.load(), gen + 1);
  EXPECT_EQ(table_->info(m).tlbflush_timestamp.load(), clock_.Now());
}

TEST_F(FrameAllocatorTest, WrittenFramesAreScrubbedBeforeReuse) {
  Init(1, 1);  // One frame: the reuse is certain.
  const Mfn m = allocator_->Allocate().value();
  table_->entries(m)[3].store(0xdead);
  table_->info(m).set(kPageNeedScrub);
  allocator_->Free(m);
  const Mfn again = allocator_->Allocate().value();
  ASSERT_EQ(again, m);
  EXPECT_EQ(table_->entries(again)[3].load(), 0u);
  EXPECT_EQ(table_->info(again).flags, 0u);
}

TEST_F(FrameAllocatorTest, FramesParkedOnOtherShardsAreNotLost) {
  // Frames freed on this thread's shard must still be found when the pool is
  // empty, whichever shard a later Allocate() runs on.
  Init(64, 8);
  std::vector<Mfn> all;
  for (int i = 0; i < 64; ++i) all.push_back(allocator_->Allocate().value());
  for (Mfn m : all) allocator_->Free(m);
  std::vector<std::thread> threads;
  std::atomic<int> got{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 16; ++i) {
        if (allocator_->Allocate().ok()) got.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(got.load(), 64);
  EXPECT_EQ(allocator_->free_frames(), 0u);
}

TEST_F(FrameAllocatorTest, ForEachFreeFrameListsExactlyTheFreeFrames) {
  Init(200, 3);
  std::vector<Mfn> held;
  for (int i = 0; i < 150; ++i) held.push_back(allocator_->Allocate().value());
  for (int i = 0; i < 150; i += 2) allocator_->Free(held[i]);
  uint64_t listed = 0;
  absl::flat_hash_set<Mfn> unique;
  allocator_->ForEachFreeFrame([&](Mfn m) {
    ++listed;
    unique.insert(m);
  });
  EXPECT_EQ(listed, allocator_->free_frames());
  EXPECT_EQ(unique.size(), listed);
  EXPECT_EQ(listed, 200u - 75u);
}

// Bounded stress: threads allocate and free concurrently; no frame is ever
// held by two threads, and the count balances at the end.
TEST_F(FrameAllocatorTest, ConcurrentAllocFreeNeverDuplicates) {
  Init(4096, 4);
  constexpr int kThreads = 4;
  constexpr int kRounds = 20000;
  std::unique_ptr<std::atomic<int>[]> holder(new std::atomic<int>[4096]);
  for (int i = 0; i < 4096; ++i) holder[i].store(-1);
  std::atomic<int> conflicts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<Mfn> mine;
      for (int r = 0; r < kRounds; ++r) {
        if (mine.size() < 64 && (r % 3 != 2)) {
          absl::StatusOr<Mfn> m = allocator_->Allocate();
          if (!m.ok()) continue;
          int expected = -1;
          if (!holder[m->value()].compare_exchange_strong(expected, t)) {
            conflicts.fetch_add(1);
          }
          mine.push_back(*m);
        } else if (!mine.empty()) {
          const Mfn m = mine.back();
          mine.pop_back();
          holder[m.value()].store(-1);
          allocator_->Free(m);
        }
      }
      for (Mfn m : mine) {
        holder[m.value()].store(-1);
        allocator_->Free(m);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(conflicts.load(), 0);
  EXPECT_EQ(allocator_->free_frames(), 4096u);
}

}  // namespace
}  // namespace hvmm

namespace hvmm {
namespace {

TEST(FrameAllocatorReturnTest, ReturnUnusedLeavesNoTrace) {
  TlbClock clock;
  auto table = FrameTable::Create(4).value();
  FrameAllocator allocator(table.get(), &clock, FrameAllocator::Options{1});
  const Mfn m = allocator.Allocate().value();
  clock.Tick();
  allocator.ReturnUnused(m);
  EXPECT_EQ(table->info(m).generation.load(), 0u);
  EXPECT_EQ(table->info(m).tlbflush_timestamp.load(), TlbStamp());
  EXPECT_EQ(allocator.free_frames(), 4u);
}

}  // namespace
}  // namespace hvmm
