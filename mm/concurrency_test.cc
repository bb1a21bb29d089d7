// Bounded stress: concurrent operations on several domains, lockless walkers
// and audits. Run under --config=tsan to check the locking discipline.
#include <atomic>
#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "mm/memory_manager.h"
#include "mm/testing/mm_test_util.h"

namespace hvmm {
namespace {

using ::hvmm::testing::MakeMemoryManager;

TEST(ConcurrencyTest, ChurnWalkAndAuditConcurrently) {
  auto mm = MakeMemoryManager(1 << 15, 4);
  constexpr int kDomains = 3;
  constexpr int kMutators = 3;
  constexpr int kOpsPerMutator = 3000;
  std::vector<DomainId> ids;
  for (int i = 0; i < kDomains; ++i) {
    ids.push_back(
        mm->CreateDomain({"c" + std::to_string(i), 2, 1 << 13}).value());
  }
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> walks{0}, walk_hits{0}, audits{0}, checked{0},
      foreign{0};
  std::atomic<int> audit_failures{0};

  std::vector<std::thread> threads;
  // Mutators: two on their own domain, one roaming over all of them, so
  // that both parallel domains and contention on one domain are exercised.
  for (int t = 0; t < kMutators; ++t) {
    threads.emplace_back([&, t] {
      // Start once the auditor is running, so that audits overlap the churn
      // (in opt builds the churn can otherwise end before it is scheduled).
      while (audits.load() == 0) std::this_thread::yield();
      std::mt19937_64 rng(1000 + t);
      for (int i = 0; i < kOpsPerMutator; ++i) {
        const DomainId d = t < kDomains - 1 ? ids[t] : ids[rng() % kDomains];
        const Vaddr va((rng() % 256) * kPageSize +
                       (rng() % 2) * (uint64_t{1} << 30));
        if (rng() % 2) {
          (void)mm->MapRange(d, va, 1 + rng() % 16, rng() % 2);
        } else {
          (void)mm->UnmapRange(d, va, 1 + rng() % 32);
        }
      }
    });
  }
  // Lockless walkers, as a pCPU would run them. With the immediate retirer
  // they may read reused frames; they must still never crash or race, and
  // what they read must be right whenever the walk's own record says
  // nothing changed under it: a walk whose tables and data frame kept
  // their generations until after the owner was read translated to a
  // frame of the walked domain (or to one it is just releasing: owner 0).
  threads.emplace_back([&] {
    std::mt19937_64 rng(7);
    const FrameTable& table = mm->frame_table();
    while (!stop.load(std::memory_order_relaxed)) {
      std::shared_ptr<Domain> d = mm->FindDomain(ids[rng() % kDomains]);
      const WalkResult w = WalkFromBasePointer(
          table, d->base_pointer_slot(VcpuId(rng() % 2)),
          Vaddr((rng() % 256) * kPageSize), Access::kRead);
      walks.fetch_add(1, std::memory_order_relaxed);
      if (!w.ok()) continue;
      walk_hits.fetch_add(1, std::memory_order_relaxed);
      const uint32_t owner =
          table.info(w.mfn).owner.load(std::memory_order_acquire);
      if (!TablesUnchanged(table, w) ||
          table.info(w.mfn).generation.load(std::memory_order_acquire) !=
              w.data_generation) {
        continue;  // Reused under the walk: nothing to say.
      }
      checked.fetch_add(1, std::memory_order_relaxed);
      if (owner != d->id().value() && owner != 0) {
        foreign.fetch_add(1, std::memory_order_relaxed);
      }
    }
  });
  // An auditor: takes every lock repeatedly while the mutators run.
  threads.emplace_back([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      if (!mm->Audit().ok()) audit_failures.fetch_add(1);
      audits.fetch_add(1, std::memory_order_relaxed);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  for (int t = 0; t < kMutators; ++t) threads[t].join();
  // However the threads were scheduled, the walker checks something: page 0
  // of every domain is mapped now, and it walks until it has.
  for (DomainId d : ids) (void)mm->MapRange(d, Vaddr(0), 1, true);
  while (checked.load() == 0) std::this_thread::yield();
  stop.store(true);
  for (size_t t = kMutators; t < threads.size(); ++t) threads[t].join();

  EXPECT_EQ(audit_failures.load(), 0);
  EXPECT_GT(audits.load(), 0u);
  EXPECT_GT(walks.load(), 0u);
  EXPECT_GT(checked.load(), 0u) << "no walk translated undisturbed";
  EXPECT_EQ(foreign.load(), 0u) << "a walk reached another domain's frame";
  ASSERT_TRUE(mm->Audit().ok()) << mm->Audit();
  std::printf("walks %lu (hits %lu, checked %lu), audits %lu\n",
              static_cast<unsigned long>(walks.load()),
              static_cast<unsigned long>(walk_hits.load()),
              static_cast<unsigned long>(checked.load()),
              static_cast<unsigned long>(audits.load()));

  // Destroy concurrently; the pool comes back whole.
  std::vector<std::thread> destroyers;
  for (DomainId d : ids) {
    destroyers.emplace_back([&, d] { EXPECT_TRUE(mm->DestroyDomain(d).ok()); });
  }
  for (auto& t : destroyers) t.join();
  EXPECT_EQ(mm->allocator().free_frames(), mm->frame_table().frame_count());
  EXPECT_TRUE(mm->Audit().ok()) << mm->Audit();
}

}  // namespace
}  // namespace hvmm
