#include "mm/tlb_clock.h"

namespace hvmm {

uint64_t TlbClock::Tick() {
  uint64_t s = state_.load(std::memory_order_relaxed);
  for (;;) {
    // Wrapped (time 0): stays there until a new period begins.
    if (static_cast<uint32_t>(s) == 0) return s;
    // The time wraps to 0 within the period; the period never changes here.
    const uint64_t next =
        (s & ~uint64_t{0xffffffff}) | static_cast<uint32_t>(s + 1);
    if (state_.compare_exchange_weak(s, next, std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
      return next;
    }
  }
}

bool TlbClock::ResetPeriod() {
  uint64_t s = state_.load(std::memory_order_relaxed);
  if (static_cast<uint32_t>(s) != 0) return false;
  const uint64_t next = (((s >> 32) + 1) << 32) | 1;
  return state_.compare_exchange_strong(s, next, std::memory_order_acq_rel,
                                        std::memory_order_relaxed);
}

}  // namespace hvmm
