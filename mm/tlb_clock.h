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
// Two types keep the halves apart: a TlbStamp is a time (what a frame is
// stamped with), a FlushRecord is a CPU's period and time. A stamp is never
// compared with a record except through NeedFlush.
//
// Thread-safety: all TlbClock methods are safe to call concurrently;
// TlbStamp and FlushRecord are thread-compatible values (std::atomic of
// either is lock-free).
#ifndef HVMM_MM_TLB_CLOCK_H_
#define HVMM_MM_TLB_CLOCK_H_

#include <atomic>
#include <cstdint>

#include "base/strong_int.h"

namespace hvmm {

// A time on the TlbClock: a frame's tlbflush_timestamp. TlbStamp() (0) is
// both "never stamped" and what the clock reads once it has wrapped.
using TlbStamp = StrongInt<class TlbStampTag, uint32_t>;

// When a CPU last flushed its whole TLB: the clock's period and its time in
// that period. FlushRecord() (period 0, time 0) means "never flushed".
// Records compare as their packed value, period << 32 | time (the clock's
// own layout): by period, then time, so a later flush never has a smaller
// record.
class FlushRecord : public StrongInt<FlushRecord, uint64_t> {
 public:
  constexpr FlushRecord() = default;
  constexpr FlushRecord(uint32_t period, TlbStamp time)
      : StrongInt(uint64_t{period} << 32 | time.value()) {}

  constexpr uint32_t period() const {
    return static_cast<uint32_t>(value() >> 32);
  }
  constexpr TlbStamp time() const {
    return TlbStamp(static_cast<uint32_t>(value()));
  }
};
static_assert(std::atomic<TlbStamp>::is_always_lock_free);
static_assert(std::atomic<FlushRecord>::is_always_lock_free);

class TlbClock {
 public:
  // Starts at `start` in period 0, so that FlushRecord() means
  // "never flushed".
  explicit TlbClock(TlbStamp start = TlbStamp(1))
      : state_(FlushRecord(0, start)) {}
  TlbClock(const TlbClock&) = delete;
  TlbClock& operator=(const TlbClock&) = delete;

  // The current time: the stamp to give a page now.
  TlbStamp Now() const { return Read().time(); }
  uint32_t period() const { return Read().period(); }

  // Called before a CPU flushes its whole TLB. Returns the flush record to
  // store once the flush is done; its time is 0 if the clock has wrapped
  // and a new period must begin (Xen's pre_flush()).
  FlushRecord Tick();

  // Starts a new period, if the clock reads 0. REQUIRES: every CPU has
  // completed a full flush that began after the clock read 0. Returns
  // whether this call started it (several callers may race to).
  bool ResetPeriod();

  // Whether a CPU whose last full flush is `cpu_flush_record` may still hold
  // a translation of a page stamped `page_stamp` (Xen's NEED_FLUSH).
  bool NeedFlush(FlushRecord cpu_flush_record, TlbStamp page_stamp) const {
    const FlushRecord state = Read();
    const TlbStamp now = state.time();
    if (now == TlbStamp()) return true;
    const TlbStamp cpu_time = cpu_flush_record.period() == state.period()
                                  ? cpu_flush_record.time()
                                  : TlbStamp();
    return cpu_time <= page_stamp && page_stamp <= now;
  }

 private:
  FlushRecord Read() const { return state_.load(std::memory_order_acquire); }

  std::atomic<FlushRecord> state_;  // The clock's period and time.
};

}  // namespace hvmm

#endif  // HVMM_MM_TLB_CLOCK_H_
