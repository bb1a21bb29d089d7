// ReleaseStamps: when each frame last stopped being a referenced page table.
//
// A frame whose type count falls to 0 while it is a page table (unhooked,
// unpinned, dropped as a base pointer) is "released": walkers that began
// earlier may still be reading it, so it must not take another type until
// they are gone. Record() stores the SectionClock cookie of the release
// (GracePeriods::GetState(), taken after the change became visible); the
// retype later asks GracePeriods::CondSynchronize(domain, At(mfn)) and
// waits only if such a walker is still inside.
//
// The oracle reads the same stamps to place each walk's table reads in the
// pipe histogram (guest/guest_cpu.h).
//
// One 8-byte stamp per host frame, in lazily backed memory: only frames
// that were ever released cost RAM. GraceCookie() (zero) means "never
// released".
//
// Thread-safety: Record() for a frame under its owner's lock (the hooks
// run there); At() from any thread.
#ifndef HVMM_GRACE_RELEASE_STAMPS_H_
#define HVMM_GRACE_RELEASE_STAMPS_H_

#include <atomic>
#include <cstdint>

#include "absl/types/span.h"
#include "base/lazy_zeroed.h"
#include "cpu/section_clock.h"
#include "mm/types.h"

namespace hvmm {

class ReleaseStamps {
 public:
  explicit ReleaseStamps(uint64_t frame_count) : stamps_(frame_count) {}

  void Record(absl::Span<const Mfn> tables, GraceCookie cookie) {
    for (Mfn mfn : tables) {
      stamps_[mfn.value()].store(cookie, std::memory_order_relaxed);
    }
  }
  GraceCookie At(Mfn mfn) const {
    return stamps_[mfn.value()].load(std::memory_order_relaxed);
  }

 private:
  LazyZeroedArray<std::atomic<GraceCookie>> stamps_;
};

}  // namespace hvmm

#endif  // HVMM_GRACE_RELEASE_STAMPS_H_
