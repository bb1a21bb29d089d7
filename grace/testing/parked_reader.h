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

namespace hvmm {
namespace testing {

class ParkedReaders {
 public:
  explicit ParkedReaders(int n) {
    park_domain_ = std::make_unique<std::atomic<uint32_t>[]>(n);
    parked_ = std::make_unique<std::atomic<bool>[]>(n);
    for (int i = 0; i < n; ++i) {
      park_domain_[i].store(0);
      parked_[i].store(false);
      pcpus_.push_back(std::make_unique<Pcpu>(i, &clock_, Tlb::Options(),
                                              &sections_));
      raw_.push_back(pcpus_.back().get());
    }
    for (auto& p : pcpus_) {
      p->Start([this](Pcpu& self) {
        const uint32_t d = park_domain_[self.id()].load();
        if (d == 0) return false;
        Pcpu::ReadSection section(self, DomainId(d));
        parked_[self.id()].store(true);
        while (park_domain_[self.id()].load() == d) std::this_thread::yield();
        parked_[self.id()].store(false);
        return true;
      });
    }
  }
  ~ParkedReaders() {
    for (int i = 0; i < static_cast<int>(pcpus_.size()); ++i) Release(i);
    for (auto& p : pcpus_) p->Stop();
  }

  // Parks pCPU `cpu` inside a read section for `domain`; returns once it is.
  void Park(int cpu, DomainId domain) {
    park_domain_[cpu].store(domain.value());
    raw_[cpu]->Kick();
    while (!parked_[cpu].load()) std::this_thread::yield();
  }
  void Release(int cpu) { park_domain_[cpu].store(0); }

  const std::vector<Pcpu*>& pcpus() const { return raw_; }

 private:
  TlbClock clock_;
  SectionClock sections_;
  std::vector<std::unique_ptr<Pcpu>> pcpus_;
  std::vector<Pcpu*> raw_;
  std::unique_ptr<std::atomic<uint32_t>[]> park_domain_;
  std::unique_ptr<std::atomic<bool>[]> parked_;
};

}  // namespace testing
}  // namespace hvmm

#endif  // HVMM_GRACE_TESTING_PARKED_READER_H_
