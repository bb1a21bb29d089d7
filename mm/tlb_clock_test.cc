#include "mm/tlb_clock.h"

#include <atomic>
#include <cstdint>
#include <limits>

#include "gtest/gtest.h"

namespace hvmm {
namespace {

TEST(TlbClockTest, StartsAtOneAndTicksForward) {
  TlbClock clock;
  EXPECT_EQ(clock.Now(), TlbStamp(1));
  EXPECT_EQ(clock.Tick(), FlushRecord(0, TlbStamp(2)));
  EXPECT_EQ(clock.Now(), TlbStamp(2));
}

TEST(TlbClockTest, CpuThatFlushedAfterStampIsFilteredOut) {
  TlbClock clock;
  const TlbStamp stamp = clock.Now();       // Page stamped at t=1.
  const FlushRecord flushed = clock.Tick();  // A CPU flushes at t=2.
  EXPECT_FALSE(clock.NeedFlush(flushed, stamp));
}

TEST(TlbClockTest, CpuThatFlushedBeforeStampNeedsFlush) {
  TlbClock clock;
  const FlushRecord flushed = clock.Tick();  // CPU flushed at t=2.
  clock.Tick();
  const TlbStamp stamp = clock.Now();  // Page stamped at t=3.
  EXPECT_TRUE(clock.NeedFlush(flushed, stamp));
  EXPECT_TRUE(clock.NeedFlush(/*never flushed=*/FlushRecord(), stamp));
}

TEST(TlbClockTest, FlushAtTheStampTickStillNeedsFlush) {
  // A flush recorded at the same time as the stamp may have begun before the
  // page's last use, so Xen's test is <=, not <.
  TlbClock clock;
  const FlushRecord t = clock.Tick();
  EXPECT_TRUE(clock.NeedFlush(t, t.time()));
}

TEST(TlbClockTest, WrapForcesFlushesUntilPeriodReset) {
  TlbClock clock{TlbStamp(std::numeric_limits<uint32_t>::max())};
  const TlbStamp stamp = clock.Now();
  const FlushRecord wrapped(0, TlbStamp());
  EXPECT_EQ(clock.Tick(), wrapped);
  EXPECT_EQ(clock.Tick(), wrapped) << "stays wrapped until reset";
  EXPECT_TRUE(clock.NeedFlush(/*cpu_flush_record=*/FlushRecord(0, stamp),
                              TlbStamp(stamp.value() - 1)));
  EXPECT_TRUE(clock.ResetPeriod());
  EXPECT_FALSE(clock.ResetPeriod()) << "only one caller starts the period";
  EXPECT_EQ(clock.Now(), TlbStamp(1));
  EXPECT_EQ(clock.period(), 1u);
  // A stamp from before the wrap is now ahead of the clock: every CPU has
  // flushed at the wrap, so no flush is needed.
  EXPECT_FALSE(clock.NeedFlush(FlushRecord(1, TlbStamp(1)), stamp));
}

TEST(TlbClockTest, ResetOnlyAfterAWrap) {
  TlbClock clock;
  EXPECT_FALSE(clock.ResetPeriod());
  EXPECT_EQ(clock.Now(), TlbStamp(1));
  EXPECT_EQ(clock.period(), 0u);
}

TEST(TlbClockTest, ARecordFromAnEarlierPeriodCountsAsNeverFlushed) {
  TlbClock clock{TlbStamp(std::numeric_limits<uint32_t>::max() - 1)};
  const FlushRecord late = clock.Tick();  // A remote flush takes this ...
  EXPECT_EQ(clock.Tick().time(), TlbStamp());  // ... the clock wraps ...
  ASSERT_TRUE(clock.ResetPeriod());  // ... every CPU flushes, new period ...
  const FlushRecord fresh = clock.Tick();
  EXPECT_EQ(fresh.period(), 1u);
  EXPECT_LT(late, fresh) << "records order by period first";
  const TlbStamp stamp = clock.Now();  // A page stamped in the new period.
  // ... and the old record is stored late. Its large time must not hide
  // the page from this CPU.
  EXPECT_TRUE(clock.NeedFlush(late, stamp));
  clock.Tick();
  EXPECT_FALSE(clock.NeedFlush(clock.Tick(), stamp));
}

TEST(FlushRecordTest, KeepsItsHalvesApart) {
  const FlushRecord r(7, TlbStamp(0xfffffffe));
  EXPECT_EQ(r.period(), 7u);
  EXPECT_EQ(r.time(), TlbStamp(0xfffffffe));
  EXPECT_EQ(FlushRecord().period(), 0u);
  EXPECT_EQ(FlushRecord().time(), TlbStamp());
  EXPECT_LT(FlushRecord(0, TlbStamp(0xffffffff)), FlushRecord(1, TlbStamp(1)));
}

}  // namespace
}  // namespace hvmm
