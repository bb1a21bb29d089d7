// CpuMask: a set of simulated pCPUs (at most kMaxPcpus).
//
// Thread-compatible value type. Example:
//   CpuMask m;
//   m.Set(3);
//   m |= other;
//   m.ForEach([](int cpu) { ... });
#ifndef HVMM_BASE_CPU_MASK_H_
#define HVMM_BASE_CPU_MASK_H_

#include <bitset>
#include <cstddef>

namespace hvmm {

inline constexpr int kMaxPcpus = 256;

class CpuMask {
 public:
  CpuMask() = default;
  static CpuMask FirstN(int n) {
    CpuMask m;
    for (int i = 0; i < n; ++i) m.Set(i);
    return m;
  }

  void Set(int cpu) { bits_.set(static_cast<size_t>(cpu)); }
  void Clear(int cpu) { bits_.reset(static_cast<size_t>(cpu)); }
  bool Test(int cpu) const { return bits_.test(static_cast<size_t>(cpu)); }
  int Count() const { return static_cast<int>(bits_.count()); }
  bool Empty() const { return bits_.none(); }

  CpuMask& operator|=(const CpuMask& o) {
    bits_ |= o.bits_;
    return *this;
  }
  CpuMask& operator&=(const CpuMask& o) {
    bits_ &= o.bits_;
    return *this;
  }
  friend bool operator==(const CpuMask& a, const CpuMask& b) {
    return a.bits_ == b.bits_;
  }
  friend bool operator!=(const CpuMask& a, const CpuMask& b) {
    return !(a == b);
  }

  template <typename Fn>
  void ForEach(Fn fn) const {
    for (int i = 0; i < kMaxPcpus; ++i) {
      if (bits_.test(static_cast<size_t>(i))) fn(i);
    }
  }

 private:
  std::bitset<kMaxPcpus> bits_;
};

}  // namespace hvmm

#endif  // HVMM_BASE_CPU_MASK_H_
