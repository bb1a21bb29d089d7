// StrongInt<Tag, Rep>: an integer that cannot be mixed up with another.
//
// Two StrongInts with different tags never convert into each other or into
// their representation, so passing a pCPU id where a TLB-clock time is
// expected does not compile. They compare and hash like their
// representation, print as a number, and cost nothing at run time. A value
// with structure of its own derives from it, with itself as the tag, and adds
// accessors (FlushRecord in mm/tlb_clock.h).
//
// Thread-compatible value type; std::atomic<StrongInt<...>> is lock-free
// whenever std::atomic<Rep> is.
//
// Example:
//   using PcpuId = StrongInt<class PcpuIdTag, uint32_t>;
//   PcpuId cpu(3);
//   pcpus[cpu.value()]->Kick();
#ifndef HVMM_BASE_STRONG_INT_H_
#define HVMM_BASE_STRONG_INT_H_

#include <ostream>
#include <type_traits>
#include <utility>

namespace hvmm {

template <typename Tag, typename Rep>
class StrongInt {
  static_assert(std::is_integral_v<Rep>, "StrongInt wraps an integer");

 public:
  using rep_type = Rep;

  // Zero: the "none yet" value of every user (no stamp, no cookie, pCPU 0).
  constexpr StrongInt() : v_(0) {}
  constexpr explicit StrongInt(Rep v) : v_(v) {}
  constexpr Rep value() const { return v_; }

  friend constexpr bool operator==(StrongInt a, StrongInt b) {
    return a.v_ == b.v_;
  }
  friend constexpr bool operator!=(StrongInt a, StrongInt b) {
    return a.v_ != b.v_;
  }
  friend constexpr bool operator<(StrongInt a, StrongInt b) {
    return a.v_ < b.v_;
  }
  friend constexpr bool operator<=(StrongInt a, StrongInt b) {
    return a.v_ <= b.v_;
  }
  friend constexpr bool operator>(StrongInt a, StrongInt b) {
    return a.v_ > b.v_;
  }
  friend constexpr bool operator>=(StrongInt a, StrongInt b) {
    return a.v_ >= b.v_;
  }
  template <typename H>
  friend H AbslHashValue(H h, StrongInt t) {
    return H::combine(std::move(h), t.v_);
  }
  friend std::ostream& operator<<(std::ostream& os, StrongInt t) {
    // Unary + prints an 8-bit representation as a number, not a character.
    return os << +t.v_;
  }

 private:
  Rep v_;
};

}  // namespace hvmm

#endif  // HVMM_BASE_STRONG_INT_H_
