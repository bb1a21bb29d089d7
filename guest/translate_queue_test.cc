#include "guest/translate_queue.h"

#include <memory>
#include <thread>

#include "gtest/gtest.h"
#include "mm/memory_manager.h"
#include "mm/testing/mm_test_util.h"

namespace hvmm {
namespace {

using ::hvmm::testing::MakeMemoryManager;

class TranslateQueueTest : public ::testing::Test {
 protected:
  std::shared_ptr<TranslateJob> Job(uint64_t va) {
    return std::make_shared<TranslateJob>(domain_, VcpuId(0), Vaddr(va),
                                          Access::kRead);
  }

  std::unique_ptr<MemoryManager> mm_ = MakeMemoryManager(64);
  std::shared_ptr<Domain> domain_ =
      mm_->FindDomain(mm_->CreateDomain({"a", 1, 16}).value());
};

TEST_F(TranslateQueueTest, PopsOldestFirstAndNullWhenEmpty) {
  TranslateQueue q;
  EXPECT_EQ(q.Pop(), nullptr);
  auto first = Job(0x1000);
  auto second = Job(0x2000);
  ASSERT_TRUE(q.Push(first).ok());
  ASSERT_TRUE(q.Push(second).ok());
  EXPECT_EQ(q.Pop(), first);
  EXPECT_EQ(q.Pop(), second);
  EXPECT_EQ(q.Pop(), nullptr);
}

TEST_F(TranslateQueueTest, AwaitReturnsTheAnswerFromAnotherThread) {
  auto job = Job(0x3000);
  WalkResult walk;
  walk.outcome = WalkOutcome::kNotPresent;
  walk.tables_read = 2;
  std::thread pcpu([&] { job->Finish({walk, PcpuId(5)}); });
  const absl::StatusOr<Translation> t = job->Await();
  pcpu.join();
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->pcpu, PcpuId(5));
  EXPECT_EQ(t->walk.outcome, WalkOutcome::kNotPresent);
  EXPECT_EQ(t->walk.tables_read, 2u);
  EXPECT_TRUE(job->finished());
}

TEST_F(TranslateQueueTest, AwaitPastItsDeadlineLeavesTheJobQueued) {
  TranslateQueue q;
  auto job = Job(0x4000);
  ASSERT_TRUE(q.Push(job).ok());
  const absl::StatusOr<Translation> t = job->Await(absl::Now());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_FALSE(job->finished());
  EXPECT_EQ(q.Pop(), job) << "a late caller's job still runs";
}

TEST_F(TranslateQueueTest, CloseCancelsQueuedJobsAndRefusesNewOnes) {
  TranslateQueue q;
  auto queued = Job(0x5000);
  ASSERT_TRUE(q.Push(queued).ok());
  q.Close();
  EXPECT_TRUE(queued->finished());
  EXPECT_EQ(queued->Await().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(q.Pop(), nullptr);
  auto late = Job(0x6000);
  EXPECT_EQ(q.Push(late).code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(late->finished()) << "a refused job is the caller's";
  q.Close();  // Idempotent.
}

TEST_F(TranslateQueueTest, AJobForAVcpuTheDomainLacksIsABug) {
  EXPECT_DEATH(TranslateJob(domain_, VcpuId(1), Vaddr(0), Access::kRead),
               "vCPU 1 of 1");
}

}  // namespace
}  // namespace hvmm
