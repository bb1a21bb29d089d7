// Test helper: pCPUs whose step can park inside a ReadSection for a chosen
// domain (a walker stalled mid-walk), or idle. The pCPUs share a
// SectionClock, so polled grace periods work on them.
#ifndef HVMM_GRACE_TESTING_PARKED_READER_H_
#define HVMM_GRACE_TESTING_PARKED_READER_H_

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "cpu/pcpu.h"
#include "cpu/testing/pcpu_set.h"

namespace hvmm {
namespace testing {

class ParkedReaders {
 public:
  explicit ParkedReaders(int n)
      : park_domain_(std::make_unique<std::atomic<uint32_t>[]>(n)),
        parked_(std::make_unique<std::atomic<bool>[]>(n)) {
    for (int i = 0; i < n; ++i) {
      park_domain_[i].store(0);
      parked_[i].store(false);
    }
    set_ = std::make_unique<PcpuSet>(n, [this](Pcpu& self) {
      const uint32_t d = park_domain_[self.id().value()].load();
      if (d == 0) return false;
      Pcpu::ReadSection section(self, DomainId(d));
      parked_[self.id().value()].store(true);
      while (park_domain_[self.id().value()].load() == d) {
        std::this_thread::yield();
      }
      parked_[self.id().value()].store(false);
      return true;
    });
  }
  ~ParkedReaders() {
    for (int i = 0; i < set_->size(); ++i) Release(i);
    set_->Stop();
  }

  // Parks pCPU `cpu` inside a read section for `domain`; returns once it is.
  void Park(int cpu, DomainId domain) {
    park_domain_[cpu].store(domain.value());
    (*set_)[cpu].Kick();
    while (!parked_[cpu].load()) std::this_thread::yield();
  }
  void Release(int cpu) { park_domain_[cpu].store(0); }

  const std::vector<Pcpu*>& pcpus() const { return set_->pcpus(); }
  TlbClock& clock() const { return set_->clock(); }

 private:
  std::unique_ptr<std::atomic<uint32_t>[]> park_domain_;
  std::unique_ptr<std::atomic<bool>[]> parked_;
  std::unique_ptr<PcpuSet> set_;
};

}  // namespace testing
}  // namespace hvmm

#endif  // HVMM_GRACE_TESTING_PARKED_READER_H_
