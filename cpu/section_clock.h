// SectionClock: the time base of read sections, for polled grace periods.
//
// Linux's get_state_synchronize_rcu() / poll_state_synchronize_rcu() let an
// updater take a cookie when it unhooks something and later ask, without
// waiting, whether a full grace period has passed since. hvmm's readers are
// few (one section per pCPU at most), so the answer can be read directly
// from them: each ReadSection records Now() when it opens, and an updater's
// cookie is Advance() taken after its unhooking stores. A section whose
// entry time is >= the cookie began after the unhook and cannot see the
// unhooked frame; once no open section of the domain is older than the
// cookie, the grace period has elapsed (GracePeriods::PollState).
//
// 64 bits: never wraps (2^64 advances at 1 GHz take 584 years).
//
// Its values are SectionTimes. A grace-period cookie (GraceCookie) is one, so
// a cookie compares with a section's entry time and with nothing else.
//
// Thread-safety: all methods from any thread.
#ifndef HVMM_CPU_SECTION_CLOCK_H_
#define HVMM_CPU_SECTION_CLOCK_H_

#include <atomic>
#include <cstdint>

#include "base/strong_int.h"

namespace hvmm {

// A time on the SectionClock. SectionTime() (0) is never a clock value: as a
// cookie it means "unknown", and a zero-filled stamp array reads as that.
using SectionTime = StrongInt<class SectionTimeTag, uint64_t>;
// The time of an unhook, as GracePeriods::GetState() returns it: a section
// that entered at or after it cannot reach what was unhooked.
using GraceCookie = SectionTime;
static_assert(std::atomic<SectionTime>::is_always_lock_free);

class SectionClock {
 public:
  SectionClock() = default;
  SectionClock(const SectionClock&) = delete;
  SectionClock& operator=(const SectionClock&) = delete;

  // For ReadSection entry, after its seq_cst fence. Acquire: a section that
  // reads a value >= some cookie also sees every store made before that
  // cookie was taken (the unhook).
  SectionTime Now() const {
    return SectionTime(now_.load(std::memory_order_acquire));
  }

  // A cookie for "after everything this thread has stored so far": every
  // section that reads Now() >= the returned value began after those
  // stores. seq_cst, so that it pairs with the fences of ReadSection entry
  // and GracePeriods::PollState (store-buffering, as for Synchronize).
  GraceCookie Advance() {
    return GraceCookie(now_.fetch_add(1, std::memory_order_seq_cst) + 1);
  }

 private:
  // Starts at 1: 0 is never a cookie, so zero-filled stamp arrays read as
  // "unknown" (see ReleaseStamps).
  std::atomic<uint64_t> now_{1};
};

}  // namespace hvmm

#endif  // HVMM_CPU_SECTION_CLOCK_H_
