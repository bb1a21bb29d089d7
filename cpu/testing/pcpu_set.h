// Test and benchmark helper: a set of running pCPUs, as one machine.
//
// The pCPUs share a TlbClock (their own, or the caller's, e.g. the
// MemoryManager's) and a SectionClock, so grace periods over them can poll.
// Each runs `step` (see Pcpu::Step); the set stops them on destruction.
//
// Thread-safety: as Pcpu.
#ifndef HVMM_CPU_TESTING_PCPU_SET_H_
#define HVMM_CPU_TESTING_PCPU_SET_H_

#include <memory>
#include <vector>

#include "cpu/pcpu.h"
#include "cpu/section_clock.h"
#include "mm/tlb_clock.h"

namespace hvmm {
namespace testing {

class PcpuSet {
 public:
  using Step = Pcpu::Step;

  // A step for pCPUs with no guest work: they only serve IPIs.
  static bool Idle(Pcpu&) { return false; }

  // Starts `n` pCPUs running `step`. With a null `clock` the set owns one.
  PcpuSet(int n, Pcpu::Step step, TlbClock* clock = nullptr,
          Tlb::Options tlb = Tlb::Options())
      : clock_(clock != nullptr ? clock : &own_clock_) {
    for (int i = 0; i < n; ++i) {
      pcpus_.push_back(
          std::make_unique<Pcpu>(PcpuId(i), clock_, tlb, &sections_));
      raw_.push_back(pcpus_.back().get());
    }
    for (auto& p : pcpus_) p->Start(step);
  }
  ~PcpuSet() { Stop(); }
  PcpuSet(const PcpuSet&) = delete;
  PcpuSet& operator=(const PcpuSet&) = delete;

  // Stops every pCPU (idempotent).
  void Stop() {
    for (auto& p : pcpus_) p->Stop();
  }

  const std::vector<Pcpu*>& pcpus() const { return raw_; }
  Pcpu& operator[](int i) const { return *raw_[i]; }
  int size() const { return static_cast<int>(raw_.size()); }
  TlbClock& clock() const { return *clock_; }

 private:
  TlbClock own_clock_;
  TlbClock* const clock_;
  SectionClock sections_;
  std::vector<std::unique_ptr<Pcpu>> pcpus_;
  std::vector<Pcpu*> raw_;
};

}  // namespace testing
}  // namespace hvmm

#endif  // HVMM_CPU_TESTING_PCPU_SET_H_
