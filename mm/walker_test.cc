// The lockless walker's record covers the window between reading a pointer
// to a table and reading the table (safety issue 2a): a table freed before
// its generation was read is never walked (the pointer re-check retries),
// and one freed after it is seen by TablesUnchanged.
#include "mm/walker.h"

#include <atomic>
#include <functional>
#include <memory>

#include "gtest/gtest.h"
#include "mm/pte.h"

namespace hvmm {
namespace {

constexpr uint64_t kRw = kPtePresent | kPteUser | kPteWritable;

// A hand-built tree in a bare frame table: base pointer -> root (1) -> l3 (2)
// -> l2 (3) -> l1 (4) -> data (5). Frames 6.. are spares. Tests change it
// from a hook at an exact point of a walk, as a racing updater would.
class WalkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    table_ = FrameTable::Create(16).value();
    Link(kRoot, kL3);
    Link(kL3, kL2);
    Link(kL2, kL1);
    Link(kL1, kData);
    base_pointer_.store(EncodeBasePointer(Mfn(kRoot)));
  }
  void Link(uint64_t from, uint64_t to) {
    table_->entries(Mfn(from))[0].store(MakePte(Mfn(to), kRw));
  }
  // What an updater does to free or retype a frame (DESIGN §6).
  void BumpGeneration(uint64_t mfn) {
    table_->info(Mfn(mfn)).generation.fetch_add(1);
  }
  // Runs `action` once, at the `n`-th (0-based) hook call at `point` for
  // `level`.
  WalkResult WalkWith(WalkPoint point, Level level, int n,
                      std::function<void()> action) {
    struct Arg {
      WalkPoint point;
      Level level;
      int n;
      std::function<void()> action;
    } arg{point, level, n, std::move(action)};
    WalkHooks hooks;
    hooks.arg = &arg;
    hooks.fn = [](void* a, WalkPoint p, Level l) {
      Arg* arg = static_cast<Arg*>(a);
      if (p == arg->point && l == arg->level && arg->n-- == 0) arg->action();
    };
    return WalkFromBasePointer(*table_, base_pointer_, Vaddr(0), Access::kRead,
                               hooks);
  }

  static constexpr uint64_t kRoot = 1, kL3 = 2, kL2 = 3, kL1 = 4, kData = 5,
                            kSpareL1 = 6, kSpareData = 7;
  std::unique_ptr<FrameTable> table_;
  std::atomic<uint64_t> base_pointer_{0};
};

TEST_F(WalkerTest, AStableWalkRecordsEveryTableOnce) {
  const WalkResult w = WalkWith(WalkPoint::kEntryRead, Level::kL4, 0, [] {});
  ASSERT_TRUE(w.ok()) << WalkOutcomeName(w.outcome);
  EXPECT_EQ(w.tables_read, 4u);
  EXPECT_EQ(w.mfn, Mfn(kData));
  EXPECT_EQ(w.retries, 0u);
  EXPECT_TRUE(TablesUnchanged(*table_, w));
}

// The seed bug's shape: the walker holds the pointer to the L1, the L1 is
// unhooked and reused, and only then would the walker read it. The re-check
// sees the pointer changed and follows it, never reading the reused L1.
TEST_F(WalkerTest, ATableFreedBeforeItsGenerationWasReadIsNeverWalked) {
  table_->entries(Mfn(kSpareL1))[0].store(MakePte(Mfn(kSpareData), kRw));
  const WalkResult w = WalkWith(WalkPoint::kEntryRead, Level::kL2, 0, [&] {
    Link(kL2, kSpareL1);  // Unhook the L1 (here: replace it) ...
    BumpGeneration(kL1);  // ... and free it.
  });
  ASSERT_TRUE(w.ok()) << WalkOutcomeName(w.outcome);
  EXPECT_EQ(w.retries, 1u);
  EXPECT_EQ(w.tables[3], Mfn(kSpareL1));
  EXPECT_EQ(w.mfn, Mfn(kSpareData));
  EXPECT_TRUE(TablesUnchanged(*table_, w));

  // Unhooked for good: the walk faults at the L2 entry.
  table_->entries(Mfn(kL2))[0].store(MakePte(Mfn(kL1), kRw));
  const WalkResult gone =
      WalkWith(WalkPoint::kEntryRead, Level::kL2, 0,
               [&] { table_->entries(Mfn(kL2))[0].store(0); });
  EXPECT_EQ(gone.outcome, WalkOutcome::kNotPresent);
  EXPECT_EQ(gone.fault_level, Level::kL2);
  EXPECT_EQ(gone.tables_read, 3u);
}

// After the re-check the walker is committed to the table: a free now is
// what the oracle must see (and what the torture's failpoint widens).
TEST_F(WalkerTest, ATableFreedAfterThePointerRecheckIsSeen) {
  const WalkResult w = WalkWith(WalkPoint::kTableReached, Level::kL1, 0, [&] {
    table_->entries(Mfn(kL2))[0].store(0);
    BumpGeneration(kL1);
  });
  EXPECT_EQ(w.tables_read, 4u);
  EXPECT_EQ(w.retries, 0u);
  EXPECT_FALSE(TablesUnchanged(*table_, w));
}

TEST_F(WalkerTest, TheRootIsRecheckedAgainstTheBasePointer) {
  const WalkResult w =
      WalkWith(WalkPoint::kBasePointerRead, Level::kL4, 0, [&] {
        base_pointer_.store(EncodeBasePointer(std::nullopt));
        BumpGeneration(kRoot);
      });
  EXPECT_EQ(w.outcome, WalkOutcome::kNoBasePointer);
  EXPECT_EQ(w.tables_read, 0u);
  EXPECT_EQ(w.retries, 1u);
}

// The leaf entry is re-checked around the data frame's generation, which a
// TLB entry records for the coherence check.
TEST_F(WalkerTest, TheLeafIsRecheckedAroundTheDataGeneration) {
  const WalkResult w = WalkWith(WalkPoint::kEntryRead, Level::kL1, 0, [&] {
    table_->entries(Mfn(kL1))[0].store(MakePte(Mfn(kSpareData), kRw));
    BumpGeneration(kData);
  });
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w.mfn, Mfn(kSpareData));
  EXPECT_EQ(w.retries, 1u);
  EXPECT_EQ(w.data_generation,
            table_->info(Mfn(kSpareData)).generation.load());
}

}  // namespace
}  // namespace hvmm
