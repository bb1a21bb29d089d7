#include "flush/tlb_clock.h"

namespace hvmm {

uint32_t TlbClock::Tick() {
  uint32_t t = time_.load(std::memory_order_relaxed);
  for (;;) {
    if (t == 0) return 0;  // Wrapped; a new period has not begun yet.
    const uint32_t next = t + 1;  // 0 on wrap: the clock then stays at 0.
    if (time_.compare_exchange_weak(t, next, std::memory_order_acq_rel,
                                    std::memory_order_relaxed)) {
      return next;
    }
  }
}

}  // namespace hvmm
