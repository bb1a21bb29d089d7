// TlbClock: Xen's tlbflush_clock, the global clock that lets a flush skip
// CPUs that have already flushed since a page was last used.
//
// Every full TLB flush on a CPU ticks the clock and records the new time as
// that CPU's flush time. Frames are stamped with the clock when they stop
// being a page table and when they are freed. A later flush on that frame's
// behalf need only reach CPUs whose flush time is not after the stamp
// (NeedFlush, Xen's NEED_FLUSH).
//
// Wrap: the clock is 32 bits. When a tick would wrap to 0 the clock reads 0
// until the period is reset (every CPU flushed); while it reads 0, NeedFlush
// conservatively says yes. The reset is the flush engine's job.
//
// Thread-safety: all methods are safe to call concurrently.
#ifndef HVMM_FLUSH_TLB_CLOCK_H_
#define HVMM_FLUSH_TLB_CLOCK_H_

#include <atomic>
#include <cstdint>

namespace hvmm {

class TlbClock {
 public:
  // Starts at 1, so that a CPU flush time of 0 means "never flushed".
  explicit TlbClock(uint32_t start = 1) : time_(start) {}
  TlbClock(const TlbClock&) = delete;
  TlbClock& operator=(const TlbClock&) = delete;

  // The current time: the stamp to give a page now.
  uint32_t Now() const { return time_.load(std::memory_order_acquire); }

  // Called before a CPU flushes its whole TLB. Returns the time to record as
  // that CPU's flush time once the flush is done, or 0 if the clock has
  // wrapped and a new period must begin (Xen's pre_flush()).
  uint32_t Tick();

  // Starts a new clock period after a wrap, once every CPU has flushed.
  void ResetPeriod() { time_.store(1, std::memory_order_release); }

  // Whether a CPU whose last flush was at `cpu_flush_time` may still hold a
  // translation of a page stamped `page_stamp` (Xen's NEED_FLUSH).
  bool NeedFlush(uint32_t cpu_flush_time, uint32_t page_stamp) const {
    const uint32_t now = Now();
    return now == 0 ||
           (cpu_flush_time <= page_stamp && page_stamp <= now);
  }

 private:
  std::atomic<uint32_t> time_;
};

}  // namespace hvmm

#endif  // HVMM_FLUSH_TLB_CLOCK_H_
