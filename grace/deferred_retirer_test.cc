#include "grace/deferred_retirer.h"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "grace/testing/parked_reader.h"
#include "gtest/gtest.h"
#include "mm/memory_manager.h"
#include "mm/testing/mm_test_util.h"

namespace hvmm {
namespace {

using std::chrono::milliseconds;
using ::hvmm::testing::MakeMemoryManager;
using ::hvmm::testing::ParkedReaders;

// Waits for `cond`, however long the machine takes (the test's own timeout
// is the bound); returns true so that call sites read as expectations.
template <typename Cond>
bool Eventually(Cond cond) {
  while (!cond()) std::this_thread::yield();
  return true;
}

class DeferredRetirerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mm_ = MakeMemoryManager(4096);
    grace_ = std::make_unique<GracePeriods>(readers_.pcpus());
  }
  void MakeRetirer(uint64_t capacity) {
    DeferredRetirer::Options options;
    options.queue_capacity = capacity;
    MakeRetirer(options);
  }
  void MakeRetirer(DeferredRetirer::Options options) {
    retirer_ = std::make_unique<DeferredRetirer>(&mm_->allocator(),
                                                 grace_.get(), options);
    mm_->SetRetirer(retirer_.get());
  }
  void TearDown() override {
    // Domains first (they drain), then the retirer, then the pCPUs.
    for (const DomainInfo& d : mm_->ListDomains()) {
      ASSERT_TRUE(mm_->DestroyDomain(d.id).ok());
    }
    retirer_.reset();
  }

  ParkedReaders readers_{3};
  std::unique_ptr<MemoryManager> mm_;
  std::unique_ptr<GracePeriods> grace_;
  std::unique_ptr<DeferredRetirer> retirer_;
};

TEST_F(DeferredRetirerTest, FramesWaitForTheirDomainsReaders) {
  MakeRetirer(4096);
  const DomainId d = mm_->CreateDomain({"d", 1, 1024}).value();
  ASSERT_TRUE(mm_->MapRange(d, Vaddr(0), 8, true).ok());
  const uint64_t free_before = mm_->allocator().free_frames();
  readers_.Park(1, d);  // A walker of d is mid-walk.
  const UnmapRangeResult r = mm_->UnmapRange(d, Vaddr(0), 8).value();
  ASSERT_EQ(r.frames_released, 11u);  // 8 data + L1, L2, L3.
  // Until the reclaimer is seen waiting for the reader (or frees them).
  while (retirer_->pending_frames() != 0 && grace_->waiting() == 0) {
    std::this_thread::yield();
  }
  EXPECT_EQ(retirer_->pending_frames(), 11u) << "freed under a reader";
  EXPECT_EQ(mm_->allocator().free_frames(), free_before);
  EXPECT_TRUE(mm_->Audit().ok()) << mm_->Audit();  // Retiring, accounted.
  readers_.Release(1);
  EXPECT_TRUE(Eventually([&] { return retirer_->pending_frames() == 0; }));
  EXPECT_EQ(mm_->allocator().free_frames(), free_before + 11);
  EXPECT_TRUE(mm_->Audit().ok()) << mm_->Audit();
}

TEST_F(DeferredRetirerTest, AnotherDomainsReaderDoesNotHoldFramesBack) {
  MakeRetirer(4096);
  const DomainId d = mm_->CreateDomain({"d", 1, 1024}).value();
  const DomainId e = mm_->CreateDomain({"e", 1, 1024}).value();
  ASSERT_TRUE(mm_->MapRange(d, Vaddr(0), 4, true).ok());
  readers_.Park(0, e);  // e's walker is stalled; d must not care.
  ASSERT_TRUE(mm_->UnmapRange(d, Vaddr(0), 4).ok());
  EXPECT_TRUE(Eventually([&] { return retirer_->pending_frames() == 0; }));
  readers_.Release(0);
}

TEST_F(DeferredRetirerTest, OneGracePeriodServesAWholeBatch) {
  MakeRetirer(4096);
  const DomainId d = mm_->CreateDomain({"d", 1, 4096}).value();
  ASSERT_TRUE(mm_->MapRange(d, Vaddr(0), 64, true).ok());
  readers_.Park(2, d);
  // 64 separate retirements while the reader holds the grace period open.
  for (uint64_t p = 0; p < 64; ++p) {
    ASSERT_TRUE(mm_->UnmapRange(d, Vaddr(p * kPageSize), 1).ok());
  }
  // The reclaimer took the first one(s) as a batch and is waiting; the
  // rest queue behind it.
  while (grace_->waiting() == 0) std::this_thread::yield();
  const uint64_t gps_before = retirer_->grace_periods();
  readers_.Release(2);
  EXPECT_TRUE(Eventually([&] { return retirer_->pending_frames() == 0; }));
  EXPECT_LE(retirer_->grace_periods() - gps_before, 2u)
      << "67 frames, 64 retirements, at most two grace periods";
  EXPECT_EQ(retirer_->frames_freed(), 64u + 3u);
}

// Frames retired while the reclaimer waits out a grace period are not
// covered by it: a walker that entered after that grace period began may
// still reach them. (The torture found them freed: an unstamped frame
// counted as covered.)
TEST_F(DeferredRetirerTest, FramesRetiredDuringAGracePeriodWaitForTheNext) {
  DeferredRetirer::Options options;
  options.gather = uint64_t{1} << 40;  // No inline reclaim: the reclaimer.
  options.reclaimer_delay = std::chrono::microseconds(0);
  MakeRetirer(options);
  const DomainId d = mm_->CreateDomain({"d", 1, 1024}).value();
  ASSERT_TRUE(mm_->MapRange(d, Vaddr(0), 16, true).ok());
  readers_.Park(0, d);
  ASSERT_EQ(mm_->UnmapRange(d, Vaddr(0), 1).value().frames_released, 1u);
  // The reclaimer took that frame's grace period and waits for pCPU 0.
  while (!grace_->WaitingFor(PcpuId(0))) std::this_thread::yield();
  readers_.Park(1, d);  // A walker that entered after it began.
  ASSERT_EQ(mm_->UnmapRange(d, Vaddr(kPageSize), 1).value().frames_released,
            1u);
  readers_.Release(0);
  // The first frame goes; the second must wait for pCPU 1.
  while (retirer_->pending_frames() > 1) std::this_thread::yield();
  while (!grace_->WaitingFor(PcpuId(1))) std::this_thread::yield();
  EXPECT_EQ(retirer_->pending_frames(), 1u) << "freed under a walker";
  readers_.Release(1);
  EXPECT_TRUE(Eventually([&] { return retirer_->pending_frames() == 0; }));
  EXPECT_TRUE(mm_->Audit().ok()) << mm_->Audit();
}

TEST_F(DeferredRetirerTest, FullQueueFallsBackToAnExpeditedGracePeriod) {
  MakeRetirer(/*capacity=*/4);
  const DomainId d = mm_->CreateDomain({"d", 1, 1024}).value();
  ASSERT_TRUE(mm_->MapRange(d, Vaddr(0), 16, true).ok());
  readers_.Park(1, d);
  ASSERT_TRUE(mm_->UnmapRange(d, Vaddr(0), 2).ok());  // 2 queued.
  std::atomic<bool> done{false};
  std::thread t([&] {
    // 14 data + 3 tables: does not fit; forced IPI, then freed at once.
    ASSERT_TRUE(mm_->UnmapRange(d, Vaddr(2 * kPageSize), 14).ok());
    done.store(true);
  });
  // Until it returns, or its expedited grace period's IPI waits on pCPU 1.
  while (!done.load() && !readers_.pcpus()[1]->ipi_pending()) {
    std::this_thread::yield();
  }
  EXPECT_FALSE(done.load()) << "the fallback must still wait for the reader";
  readers_.Release(1);
  t.join();
  EXPECT_EQ(retirer_->fallbacks(), 1u);
  EXPECT_LE(retirer_->pending_frames(), 4u) << "queue stayed bounded";
  EXPECT_TRUE(Eventually([&] { return retirer_->pending_frames() == 0; }));
  EXPECT_TRUE(mm_->Audit().ok()) << mm_->Audit();
}

TEST_F(DeferredRetirerTest, DestroyDrainsTheDomainsQueueFirst) {
  MakeRetirer(4096);
  const uint64_t start = mm_->allocator().free_frames();
  const DomainId d = mm_->CreateDomain({"d", 2, 2048}).value();
  ASSERT_TRUE(mm_->MapRange(d, Vaddr(0), 300, true).ok());
  readers_.Park(0, d);
  std::atomic<bool> done{false};
  std::thread t([&] {
    ASSERT_TRUE(mm_->DestroyDomain(d).ok());
    done.store(true);
  });
  // Until destroy returns, or a grace period (the reclaimer's or the
  // drain's) is seen waiting for the reader: destroy waits for it.
  while (!done.load() && grace_->waiting() == 0) std::this_thread::yield();
  EXPECT_FALSE(done.load()) << "destroy returned while a walker could read";
  readers_.Release(0);
  t.join();
  // Destroy returned: every frame is back, none left pending.
  EXPECT_EQ(retirer_->pending_frames(), 0u);
  EXPECT_EQ(mm_->allocator().free_frames(), start);
  EXPECT_TRUE(mm_->Audit().ok()) << mm_->Audit();
}

// A domain with nothing queued (one whose policy frees at once) drains
// without a grace period, even while its walker is stalled.
TEST_F(DeferredRetirerTest, DrainWithNothingQueuedWaitsForNobody) {
  MakeRetirer(4096);
  const DomainId d(77);
  readers_.Park(0, d);
  std::atomic<bool> done{false};
  std::thread t([&] {
    retirer_->Drain(d);
    done.store(true);
  });
  while (!done.load() && grace_->waiting() == 0) std::this_thread::yield();
  EXPECT_TRUE(done.load()) << "drained nothing, yet waited for the reader";
  readers_.Release(0);
  t.join();
  EXPECT_EQ(retirer_->grace_periods(), 0u);
}

// Bounded stress: updaters churn two domains while pCPUs run read sections
// and an auditor checks every invariant; run under TSan.
TEST(DeferredRetirerStressTest, ChurnWithReadersAndAudits) {
  auto mm = MakeMemoryManager(1 << 14);
  TlbClock clock;
  SectionClock sections;  // The retirer polls grace periods.
  std::vector<std::unique_ptr<Pcpu>> pcpus;
  std::vector<Pcpu*> raw;
  for (int i = 0; i < 3; ++i) {
    pcpus.push_back(
        std::make_unique<Pcpu>(PcpuId(i), &clock, Tlb::Options(), &sections));
    raw.push_back(pcpus.back().get());
  }
  GracePeriods grace(raw);
  DeferredRetirer retirer(&mm->allocator(), &grace, {256});
  mm->SetRetirer(&retirer);
  const DomainId a = mm->CreateDomain({"a", 1, 4096}).value();
  const DomainId b = mm->CreateDomain({"b", 1, 4096}).value();
  for (auto& p : pcpus) {
    p->Start([&, a, b](Pcpu& self) {
      Pcpu::ReadSection section(self, self.id().value() % 2 ? a : b);
      std::this_thread::yield();
      return true;
    });
  }
  std::atomic<bool> stop{false};
  std::atomic<int> audit_failures{0};
  std::thread auditor([&] {
    while (!stop.load()) {
      if (!mm->Audit().ok()) audit_failures.fetch_add(1);
      std::this_thread::sleep_for(milliseconds(2));
    }
  });
  std::vector<std::thread> updaters;
  for (DomainId d : {a, b}) {
    updaters.emplace_back([&, d] {
      for (int i = 0; i < 400; ++i) {
        const Vaddr va((i % 16) * 64 * kPageSize);
        (void)mm->MapRange(d, va, 1 + i % 48, true);
        (void)mm->UnmapRange(d, va, 64);
      }
    });
  }
  for (auto& t : updaters) t.join();
  stop.store(true);
  auditor.join();
  EXPECT_EQ(audit_failures.load(), 0);
  ASSERT_TRUE(mm->DestroyDomain(a).ok());
  ASSERT_TRUE(mm->DestroyDomain(b).ok());
  EXPECT_EQ(retirer.pending_frames(), 0u);
  EXPECT_EQ(mm->allocator().free_frames(), mm->frame_table().frame_count());
  for (auto& p : pcpus) p->Stop();
  std::printf("grace periods %lu, fallbacks %lu, frames freed %lu\n",
              static_cast<unsigned long>(retirer.grace_periods()),
              static_cast<unsigned long>(retirer.fallbacks()),
              static_cast<unsigned long>(retirer.frames_freed()));
}

}  // namespace
}  // namespace hvmm
