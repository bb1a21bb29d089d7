// PcpuId and CpuMask: a simulated pCPU's number, and a set of them (at most
// kMaxPcpus).
//
// A PcpuId numbers a Pcpu of one machine, 0 .. pcpus-1. It is never the
// host core a thread happens to run on (sched_getcpu()), which shards
// per-CPU caches and has no type of its own.
//
// Thread-compatible value types. Example:
//   CpuMask m;
//   m.Set(PcpuId(3));
//   m |= other;
//   m.ForEach([](PcpuId cpu) { ... });
#ifndef HVMM_BASE_CPU_MASK_H_
#define HVMM_BASE_CPU_MASK_H_

#include <bitset>
#include <cstddef>
#include <cstdint>

#include "base/strong_int.h"

namespace hvmm {

inline constexpr int kMaxPcpus = 256;

using PcpuId = StrongInt<class PcpuIdTag, uint32_t>;

class CpuMask {
 public:
  CpuMask() = default;
  static CpuMask FirstN(int n) {
    CpuMask m;
    for (int i = 0; i < n; ++i) m.Set(PcpuId(i));
    return m;
  }

  // REQUIRES (all three): cpu.value() < kMaxPcpus.
  void Set(PcpuId cpu) { bits_.set(cpu.value()); }
  void Clear(PcpuId cpu) { bits_.reset(cpu.value()); }
  bool Test(PcpuId cpu) const { return bits_.test(cpu.value()); }
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
    for (uint32_t i = 0; i < kMaxPcpus; ++i) {
      if (bits_.test(i)) fn(PcpuId(i));
    }
  }

 private:
  std::bitset<kMaxPcpus> bits_;
};

}  // namespace hvmm

#endif  // HVMM_BASE_CPU_MASK_H_
