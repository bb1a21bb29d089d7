#include "cpu/tlb.h"

#include <atomic>
#include <chrono>
#include <thread>

#include "gtest/gtest.h"

namespace hvmm {
namespace {

const DomainId kA(1), kB(2);

// A successful walk result to cache: data frame `mfn`, tables 100..103.
WalkResult Walked(uint64_t mfn, bool writable = true) {
  WalkResult w;
  w.mfn = Mfn(mfn);
  w.writable = writable;
  w.data_generation = 7;
  w.tables_read = 4;
  w.tables = {Mfn(100), Mfn(101), Mfn(102), Mfn(103)};
  w.generations = {1, 2, 3, 4};
  return w;
}

Vaddr Page(uint64_t n) { return Vaddr(n * kPageSize); }

TEST(TlbTest, MissThenHitKeepsTheWalkRecord) {
  Tlb tlb;
  EXPECT_EQ(tlb.Lookup(kA, Page(5)), nullptr);
  ASSERT_TRUE(tlb.Insert(tlb.BeginFill(), kA, Page(5), Walked(42)));
  const TlbEntry* e = tlb.Lookup(kA, Page(5));
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->mfn, Mfn(42));
  EXPECT_TRUE(e->writable);
  EXPECT_EQ(e->data_generation, 7u);
  EXPECT_EQ(e->tables[3], Mfn(103));
  EXPECT_EQ(e->table_generations[3], 4u);
  EXPECT_EQ(tlb.hits(), 1u);
  EXPECT_EQ(tlb.misses(), 1u);
}

TEST(TlbTest, EntriesAreTaggedByDomain) {
  Tlb tlb;
  ASSERT_TRUE(tlb.Insert(tlb.BeginFill(), kA, Page(5), Walked(42)));
  EXPECT_EQ(tlb.Lookup(kB, Page(5)), nullptr);
  ASSERT_TRUE(tlb.Insert(tlb.BeginFill(), kB, Page(5), Walked(43)));
  EXPECT_EQ(tlb.Lookup(kA, Page(5))->mfn, Mfn(42));
  EXPECT_EQ(tlb.Lookup(kB, Page(5))->mfn, Mfn(43));
}

TEST(TlbTest, LeastRecentlyUsedWayIsEvicted) {
  Tlb tlb(Tlb::Options{1, 2, 4});  // One set, two ways.
  ASSERT_TRUE(tlb.Insert(tlb.BeginFill(), kA, Page(1), Walked(1)));
  ASSERT_TRUE(tlb.Insert(tlb.BeginFill(), kA, Page(2), Walked(2)));
  ASSERT_NE(tlb.Lookup(kA, Page(1)), nullptr);  // Page 2 is now LRU.
  ASSERT_TRUE(tlb.Insert(tlb.BeginFill(), kA, Page(3), Walked(3)));
  EXPECT_NE(tlb.Lookup(kA, Page(1)), nullptr);
  EXPECT_EQ(tlb.Lookup(kA, Page(2)), nullptr);
  EXPECT_NE(tlb.Lookup(kA, Page(3)), nullptr);
}

TEST(TlbTest, LocalFlushScopes) {
  Tlb tlb;
  for (uint64_t p = 0; p < 8; ++p) {
    ASSERT_TRUE(tlb.Insert(tlb.BeginFill(), kA, Page(p), Walked(p)));
    ASSERT_TRUE(tlb.Insert(tlb.BeginFill(), kB, Page(p), Walked(p)));
  }
  tlb.FlushRange(kA, Page(2), 3);  // Pages 2, 3, 4 of A.
  for (uint64_t p = 0; p < 8; ++p) {
    EXPECT_EQ(tlb.Lookup(kA, Page(p)) == nullptr, p >= 2 && p <= 4) << p;
    EXPECT_NE(tlb.Lookup(kB, Page(p)), nullptr) << p;
  }
  tlb.FlushDomain(kB);
  EXPECT_EQ(tlb.Lookup(kB, Page(0)), nullptr);
  EXPECT_NE(tlb.Lookup(kA, Page(0)), nullptr);
  tlb.FlushAll();
  EXPECT_EQ(tlb.Lookup(kA, Page(0)), nullptr);
}

TEST(TlbTest, PagingStructureCacheGivesTheDeepestTable) {
  Tlb tlb;
  EXPECT_EQ(tlb.LookupTable(kA, Page(5)), nullptr);
  ASSERT_TRUE(tlb.Insert(tlb.BeginFill(), kA, Page(5), Walked(42)));
  const PscEntry* p = tlb.LookupTable(kA, Page(6));  // Same L1 table.
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->level, Level::kL1);
  EXPECT_EQ(p->table, Mfn(103));
  EXPECT_EQ(p->generation, 4u);
  // 2 MiB away: another L1, same L2.
  p = tlb.LookupTable(kA, Vaddr(uint64_t{1} << 21));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->level, Level::kL2);
  EXPECT_EQ(p->table, Mfn(102));
  EXPECT_EQ(tlb.LookupTable(kB, Page(5)), nullptr);
}

TEST(TlbTest, RangeFlushAlsoEmptiesTheDomainsPagingStructureCache) {
  // A freed table may sit in the PSC even when no TLB entry maps through it
  // (seed 003), so any flush of the domain drops its PSC entries.
  Tlb tlb;
  ASSERT_TRUE(tlb.Insert(tlb.BeginFill(), kA, Page(5), Walked(42)));
  ASSERT_TRUE(tlb.Insert(tlb.BeginFill(), kB, Page(5), Walked(43)));
  tlb.FlushRange(kA, Page(500), 1);  // A range with no TLB entry in it.
  EXPECT_EQ(tlb.LookupTable(kA, Page(5)), nullptr);
  EXPECT_NE(tlb.LookupTable(kB, Page(5)), nullptr);
  EXPECT_NE(tlb.Lookup(kA, Page(5)), nullptr);
}

TEST(TlbTest, RemoteRequestTakesEffectBeforeTheNextUse) {
  Tlb tlb;
  ASSERT_TRUE(tlb.Insert(tlb.BeginFill(), kA, Page(5), Walked(42)));
  tlb.RequestFlush(FlushScope::Domain(kA));
  EXPECT_EQ(tlb.flushes_applied(), 0u) << "applied lazily, by the owner";
  EXPECT_EQ(tlb.Lookup(kA, Page(5)), nullptr);
  EXPECT_EQ(tlb.LookupTable(kA, Page(5)), nullptr);
  EXPECT_EQ(tlb.flushes_applied(), 1u);
}

TEST(TlbTest, InvalidationRequestedSinceLookupMarksAUseThatPrecededAFlush) {
  Tlb tlb;
  ASSERT_TRUE(tlb.Insert(tlb.BeginFill(), kA, Page(5), Walked(42)));
  ASSERT_NE(tlb.Lookup(kA, Page(5)), nullptr);  // The use.
  EXPECT_FALSE(tlb.InvalidationRequestedSinceLookup());
  tlb.RequestFlush(FlushScope::Domain(kB));  // Lands after the use.
  EXPECT_TRUE(tlb.InvalidationRequestedSinceLookup());
  // The next lookup applies it: a later use is after that request.
  ASSERT_NE(tlb.Lookup(kA, Page(5)), nullptr);
  EXPECT_FALSE(tlb.InvalidationRequestedSinceLookup());
}

TEST(TlbTest, FillFromAWalkThatRacedWithAFlushIsDropped) {
  Tlb tlb;
  const uint64_t token = tlb.BeginFill();  // Walk begins ...
  tlb.RequestFlush(FlushScope::Range(kA, Page(5), 1));  // ... flush lands ...
  EXPECT_FALSE(tlb.Insert(token, kA, Page(5), Walked(42)));  // ... fill late.
  EXPECT_EQ(tlb.Lookup(kA, Page(5)), nullptr);
  EXPECT_EQ(tlb.fills_dropped(), 1u);
  EXPECT_TRUE(tlb.Insert(tlb.BeginFill(), kA, Page(5), Walked(42)));
}

// Bounded stress, for TSan: the owner fills and looks up while another thread
// requests flushes; afterwards a request still empties the caches.
TEST(TlbTest, ConcurrentRemoteRequests) {
  Tlb tlb(Tlb::Options{16, 2, 8});
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> requested{0};
  std::thread remote([&] {
    for (int i = 0; !stop.load(std::memory_order_relaxed); ++i) {
      tlb.RequestFlush(i % 3 == 0 ? FlushScope::All()
                                  : FlushScope::Range(kA, Page(i % 64), 4));
      requested.fetch_add(1, std::memory_order_relaxed);
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  });
  uint64_t filled = 0;
  for (int round = 0; round < 2000; ++round) {
    for (uint64_t p = 0; p < 64; ++p) {
      if (tlb.Lookup(kA, Page(p)) == nullptr &&
          tlb.Insert(tlb.BeginFill(), kA, Page(p), Walked(p))) {
        ++filled;
      }
    }
  }
  stop.store(true);
  remote.join();
  tlb.RequestFlush(FlushScope::All());
  for (uint64_t p = 0; p < 64; ++p) EXPECT_EQ(tlb.Lookup(kA, Page(p)), nullptr);
  EXPECT_GT(filled, 64u) << "refills after remote flushes";
  EXPECT_GT(requested.load(), 0u);
  EXPECT_GT(tlb.flushes_applied(), 0u);
}

}  // namespace
}  // namespace hvmm
