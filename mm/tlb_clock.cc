#include "mm/tlb_clock.h"

namespace hvmm {

FlushRecord TlbClock::Tick() {
  FlushRecord s = state_.load(std::memory_order_relaxed);
  for (;;) {
    // Wrapped (time 0): stays there until a new period begins.
    if (s.time() == TlbStamp()) return s;
    // The time wraps to 0 within the period; the period never changes here.
    const FlushRecord next(s.period(), TlbStamp(s.time().value() + 1));
    if (state_.compare_exchange_weak(s, next, std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
      return next;
    }
  }
}

bool TlbClock::ResetPeriod() {
  FlushRecord s = state_.load(std::memory_order_relaxed);
  if (s.time() != TlbStamp()) return false;
  const FlushRecord next(s.period() + 1, TlbStamp(1));
  return state_.compare_exchange_strong(s, next, std::memory_order_acq_rel,
                                        std::memory_order_relaxed);
}

}  // namespace hvmm
