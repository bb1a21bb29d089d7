#include "mm/frame_table.h"

#include "gtest/gtest.h"

namespace hvmm {
namespace {

TEST(FrameTableTest, RejectsZeroAndOversizedCounts) {
  EXPECT_EQ(FrameTable::Create(0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FrameTable::Create(FrameTable::kMaxFrames + 1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(FrameTableTest, FreshRecordsAreFreeAndContentsZero) {
  auto table = FrameTable::Create(1024).value();
  const PageInfo& info = table->info(Mfn(1023));
  EXPECT_EQ(info.owner.load(), 0u);
  EXPECT_EQ(info.count, 0u);
  EXPECT_EQ(info.type, PageType::kNone);
  EXPECT_EQ(table->entries(Mfn(1023))[511].load(), 0u);
}

// 4 Mi frames is 16 GiB of simulated memory; untouched, it costs no RAM.
TEST(FrameTableTest, SixteenGibTableIsLazilyBacked) {
  auto table = FrameTable::Create(uint64_t{1} << 22).value();
  EXPECT_EQ(table->ResidentContentBytes().value(), 0u);
  table->entries(Mfn(12345))[7].store(1);
  table->entries(Mfn(4000000))[0].store(1);
  // Two touched frames: two host pages resident, out of four million.
  EXPECT_EQ(table->ResidentContentBytes().value(), 2 * kPageSize);
}

TEST(FrameTableTest, ScrubZeroesEveryEntry) {
  auto table = FrameTable::Create(4).value();
  for (uint32_t i = 0; i < kEntriesPerTable; ++i) {
    table->entries(Mfn(2))[i].store(i + 1);
  }
  table->Scrub(Mfn(2));
  for (uint32_t i = 0; i < kEntriesPerTable; ++i) {
    ASSERT_EQ(table->entries(Mfn(2))[i].load(), 0u) << i;
  }
}

}  // namespace
}  // namespace hvmm
