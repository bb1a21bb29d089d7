#include "cpu/tlb.h"

#include <atomic>
#include <cstdio>
#include <thread>

#include "gtest/gtest.h"

namespace hvmm {
namespace {

const DomainId kA(1), kB(2);

// A successful walk result to cache: data frame `mfn`, tables 100..103.
WalkResult Walked(uint64_t mfn, bool writable = true,
                  uint32_t data_generation = 7) {
  WalkResult w;
  w.mfn = Mfn(mfn);
  w.writable = writable;
  w.data_generation = data_generation;
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
  EXPECT_FALSE(tlb.InvalidationRequestedSinceLookup(kA, Page(5)));
  // Requests after the use that do not cover the entry excuse nothing.
  tlb.RequestFlush(FlushScope::Domain(kB));
  tlb.RequestFlush(FlushScope::Range(kA, Page(6), 10));
  EXPECT_FALSE(tlb.InvalidationRequestedSinceLookup(kA, Page(5)));
  // One that covers it does: the use came before that flush.
  tlb.RequestFlush(FlushScope::Range(kA, Page(4), 2));
  EXPECT_TRUE(tlb.InvalidationRequestedSinceLookup(kA, Page(5)));
  // The next lookup applies them all: a later use is after them.
  EXPECT_EQ(tlb.Lookup(kA, Page(5)), nullptr);
  EXPECT_FALSE(tlb.InvalidationRequestedSinceLookup(kA, Page(5)));
  ASSERT_TRUE(tlb.Insert(tlb.BeginFill(), kA, Page(5), Walked(42)));
  ASSERT_NE(tlb.Lookup(kA, Page(5)), nullptr);
  tlb.RequestFlush(FlushScope::Domain(kA));
  EXPECT_TRUE(tlb.InvalidationRequestedSinceLookup(kA, Page(5)));
  EXPECT_FALSE(tlb.InvalidationRequestedSinceLookup(kB, Page(5)));
  tlb.RequestFlush(FlushScope::All());
  EXPECT_TRUE(tlb.InvalidationRequestedSinceLookup(kB, Page(5)));
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

// Bounded stress, for TSan and for the promise a remote request makes:
// another thread announces epoch i and then requests a full flush, N times;
// the owner fills entries stamped with the epoch it read after BeginFill, and
// looks them up. Once the owner has read epoch k, request k-1 is complete, so
// its next Lookup applies it: no entry it then hits may predate epoch k-1.
// The owner runs until the requester is done, however the two are
// scheduled.
TEST(TlbTest, ConcurrentRemoteRequestsTakeEffectBeforeTheNextUse) {
  constexpr uint32_t kRequests = 2000;
  Tlb tlb(Tlb::Options{16, 2, 8});
  std::atomic<uint32_t> epoch{0};
  std::atomic<bool> done{false};
  std::thread remote([&] {
    for (uint32_t i = 1; i <= kRequests; ++i) {
      epoch.store(i, std::memory_order_release);
      tlb.RequestFlush(i % 3 == 0 ? FlushScope::All()
                                  : FlushScope::Range(kA, Page(i % 64), 4));
    }
    done.store(true, std::memory_order_release);
  });
  uint64_t hits = 0, stale = 0;
  for (uint64_t round = 0; !done.load(std::memory_order_acquire); ++round) {
    const uint64_t p = round % 64;
    const uint64_t token = tlb.BeginFill();
    const uint32_t filled_at = epoch.load(std::memory_order_acquire);
    (void)tlb.Insert(token, kA, Page(p), Walked(p, true, filled_at));
    const uint32_t before_use = epoch.load(std::memory_order_acquire);
    if (const TlbEntry* e = tlb.Lookup(kA, Page(p))) {
      ++hits;
      // The last full flush completed before `before_use` was announced
      // is epoch (before_use - 1) rounded down to a multiple of 3.
      const uint32_t last_full = before_use == 0 ? 0 : (before_use - 1) / 3 * 3;
      if (e->data_generation < last_full) ++stale;
    }
  }
  remote.join();
  EXPECT_EQ(stale, 0u) << "an entry survived a full flush requested before "
                          "its use";
  EXPECT_EQ(tlb.requests_received(), kRequests);
  // Whatever ran meanwhile, a last request still empties the caches.
  ASSERT_TRUE(tlb.Insert(tlb.BeginFill(), kA, Page(1), Walked(1)));
  ASSERT_NE(tlb.Lookup(kA, Page(1)), nullptr);
  tlb.RequestFlush(FlushScope::All());
  for (uint64_t p = 0; p < 64; ++p) EXPECT_EQ(tlb.Lookup(kA, Page(p)), nullptr);
  std::printf("owner hits during the requests: %lu\n", (unsigned long)hits);
}

}  // namespace
}  // namespace hvmm
