// TlbClock: Xen's tlbflush_clock, the global clock that lets a flush skip
// CPUs that have already flushed since a page was last used.
//
// Every full TLB flush on a CPU ticks the clock and records the new time as
// that CPU's flush time. Frames are stamped with the clock when they stop
// being a page table and when they are freed. A later flush on that frame's
// behalf need only reach CPUs whose flush time is not after the stamp
// (NeedFlush, Xen's NEED_FLUSH).
//
// Wrap: the clock is 32 bits, as Xen's (stamps live in page_info). When a
// tick would wrap, the clock reads 0 and NeedFlush conservatively says yes,
// until the flush engine has flushed every CPU and called ResetPeriod()
// (Xen's new_tlbflush_clock_period()). The clock then restarts at 1 in a new
// period.
//
// A CPU's flush record is 64 bits: the period in the high half, the time in
// the low half. A record from an earlier period counts as time 0: the reset
// flushed every CPU, but a record stored late by a racing remote flush
// (Pcpu::NoteRemoteFullFlush) could otherwise carry a large old time into the
// new period and wrongly filter that CPU out. In period 0, a record equals
// its time.
//
// Thread-safety: all methods are safe to call concurrently.
#ifndef HVMM_MM_TLB_CLOCK_H_
#define HVMM_MM_TLB_CLOCK_H_

#include <atomic>
#include <cstdint>

namespace hvmm {

class TlbClock {
 public:
  // Starts at `start` in period 0, so that a CPU flush record of 0 means
  // "never flushed".
  explicit TlbClock(uint32_t start = 1) : state_(start) {}
  TlbClock(const TlbClock&) = delete;
  TlbClock& operator=(const TlbClock&) = delete;

  // The current time: the stamp to give a page now.
  uint32_t Now() const {
    return static_cast<uint32_t>(state_.load(std::memory_order_acquire));
  }
  uint32_t period() const {
    return static_cast<uint32_t>(state_.load(std::memory_order_acquire) >> 32);
  }

  // Called before a CPU flushes its whole TLB. Returns the flush record to
  // store once the flush is done; its time is 0 if the clock has wrapped
  // and a new period must begin (Xen's pre_flush()).
  uint64_t Tick();

  // Starts a new period, if the clock reads 0. REQUIRES: every CPU has
  // completed a full flush that began after the clock read 0. Returns
  // whether this call started it (several callers may race to).
  bool ResetPeriod();

  // Whether a CPU whose last full flush is `cpu_flush_record` may still hold
  // a translation of a page stamped `page_stamp` (Xen's NEED_FLUSH).
  bool NeedFlush(uint64_t cpu_flush_record, uint32_t page_stamp) const {
    const uint64_t state = state_.load(std::memory_order_acquire);
    const uint32_t now = static_cast<uint32_t>(state);
    if (now == 0) return true;
    const uint32_t cpu_time = (cpu_flush_record >> 32) == (state >> 32)
                                  ? static_cast<uint32_t>(cpu_flush_record)
                                  : 0;
    return cpu_time <= page_stamp && page_stamp <= now;
  }

 private:
  std::atomic<uint64_t> state_;  // period << 32 | time
};

}  // namespace hvmm

#endif  // HVMM_MM_TLB_CLOCK_H_
