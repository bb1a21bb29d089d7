#include "mm/tlb_clock.h"

#include <cstdint>
#include <limits>

#include "gtest/gtest.h"

namespace hvmm {
namespace {

TEST(TlbClockTest, StartsAtOneAndTicksForward) {
  TlbClock clock;
  EXPECT_EQ(clock.Now(), 1u);
  EXPECT_EQ(clock.Tick(), 2u);
  EXPECT_EQ(clock.Now(), 2u);
}

TEST(TlbClockTest, CpuThatFlushedAfterStampIsFilteredOut) {
  TlbClock clock;
  const uint32_t stamp = clock.Now();   // Page stamped at t=1.
  const uint32_t flushed = clock.Tick();  // A CPU flushes at t=2.
  EXPECT_FALSE(clock.NeedFlush(flushed, stamp));
}

TEST(TlbClockTest, CpuThatFlushedBeforeStampNeedsFlush) {
  TlbClock clock;
  const uint32_t flushed = clock.Tick();  // CPU flushed at t=2.
  clock.Tick();
  const uint32_t stamp = clock.Now();  // Page stamped at t=3.
  EXPECT_TRUE(clock.NeedFlush(flushed, stamp));
  EXPECT_TRUE(clock.NeedFlush(/*never flushed=*/0, stamp));
}

TEST(TlbClockTest, FlushAtTheStampTickStillNeedsFlush) {
  // A flush recorded at the same time as the stamp may have begun before the
  // page's last use, so Xen's test is <=, not <.
  TlbClock clock;
  const uint32_t t = clock.Tick();
  EXPECT_TRUE(clock.NeedFlush(t, t));
}

TEST(TlbClockTest, WrapForcesFlushesUntilPeriodReset) {
  TlbClock clock(std::numeric_limits<uint32_t>::max());
  const uint32_t stamp = clock.Now();
  EXPECT_EQ(clock.Tick(), 0u);  // Wrapped.
  EXPECT_EQ(clock.Tick(), 0u);  // Stays wrapped until reset.
  EXPECT_TRUE(clock.NeedFlush(/*cpu_flush_time=*/stamp, stamp - 1));
  EXPECT_TRUE(clock.ResetPeriod());
  EXPECT_FALSE(clock.ResetPeriod()) << "only one caller starts the period";
  EXPECT_EQ(clock.Now(), 1u);
  EXPECT_EQ(clock.period(), 1u);
  // A stamp from before the wrap is now ahead of the clock: every CPU has
  // flushed at the wrap, so no flush is needed.
  EXPECT_FALSE(clock.NeedFlush(/*cpu_flush_time=*/1, stamp));
}

TEST(TlbClockTest, ResetOnlyAfterAWrap) {
  TlbClock clock;
  EXPECT_FALSE(clock.ResetPeriod());
  EXPECT_EQ(clock.Now(), 1u);
  EXPECT_EQ(clock.period(), 0u);
}

TEST(TlbClockTest, ARecordFromAnEarlierPeriodCountsAsNeverFlushed) {
  TlbClock clock(std::numeric_limits<uint32_t>::max() - 1);
  const uint64_t late = clock.Tick();  // A remote flush takes this record ...
  EXPECT_EQ(clock.Tick(), 0u);         // ... the clock wraps ...
  ASSERT_TRUE(clock.ResetPeriod());    // ... every CPU flushes, new period ...
  const uint64_t fresh = clock.Tick();
  EXPECT_EQ(fresh >> 32, 1u);
  const uint32_t stamp = clock.Now();  // A page stamped in the new period.
  // ... and the old record is stored late. Its large time must not hide
  // the page from this CPU.
  EXPECT_TRUE(clock.NeedFlush(late, stamp));
  clock.Tick();
  EXPECT_FALSE(clock.NeedFlush(clock.Tick(), stamp));
}

}  // namespace
}  // namespace hvmm
