// ScenarioHost: one host (MemoryManager + FlushEngine, two pCPUs) whose
// walkers the test places by hand, to run the sequences of the safety issue
// deterministically under every policy.
//
// Each pCPU runs a real GuestCpu (the oracle's checks included) over one
// domain, but only when armed, for one access:
//   ArmParked(cpu)         the access walks and parks at kTableReached of
//                          the L1 (holding the pointer, generation recorded:
//                          the seed bug's window) until released;
//   ArmAfterFlush(cpu)     the access starts only once a flush has reached
//                          the pCPU (an IPI served or an assisted request
//                          received) after arming: a walker that begins
//                          right after an updater's flush or safety step.
// RunUpdater(fn) runs fn on another thread and releases each parked walker
// as soon as something is seen waiting for it (an IPI pending on its pCPU,
// or a grace period waiting for that pCPU) or the updater is done: never by
// time. So a policy that
// waits gets its walker back and finishes; one that does not finishes
// first, and the walker then finds its table changed.
//
// Thread-safety: one controlling thread calls everything.
#ifndef HVMM_TESTS_SAFETY_SCENARIO_HOST_H_
#define HVMM_TESTS_SAFETY_SCENARIO_HOST_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "assembly/flush_engine.h"
#include "flush/flush_policy.h"
#include "guest/guest_cpu.h"
#include "mm/memory_manager.h"

namespace hvmm {
namespace testing {

class ScenarioHost {
 public:
  static constexpr int kPcpus = 2;

  // A host whose one domain ("d", two vCPUs) runs under `policy` and has
  // `va` mapped (one page, writable); its vCPUs read `va`.
  ScenarioHost(Policy policy, Vaddr va);
  ~ScenarioHost();

  void ArmParked(int cpu);
  void ArmAfterFlush(int cpu);
  // Returns once the parked walker of `cpu` is parked, or its access ended
  // without reaching the L1.
  void WaitParkedOrDone(int cpu);
  bool parked(int cpu) const { return walkers_[cpu].state.load() == kParked; }
  // Runs `update` on another thread as the file comment says; then
  // releases every walker and waits for each armed access to end.
  void RunUpdater(const std::function<void()>& update);

  MemoryManager& mm() { return *mm_; }
  FlushEngine& engine() { return *engine_; }
  DomainId domain() const { return domain_; }
  Vaddr va() const { return va_; }
  // The tables on va's path, from the domain's root: L4, L3, L2, L1.
  std::vector<Mfn> PathTables();
  // Totals of every pCPU's guest.
  GuestCpuStats Stats() const;
  uint64_t Violations() const {
    const GuestCpuStats s = Stats();
    return s.existence_violations + s.coherence_violations;
  }
  // While a walker runs, the generation `mfn` had when the walker read its
  // last leaf entry (what it would translate through), for
  // WatchedGeneration().
  void Watch(Mfn mfn) { watched_ = mfn.value() + 1; }
  uint32_t WatchedGeneration(int cpu) const {
    return walkers_[cpu].watched_generation.load();
  }
  // Destroys the domain and stops the pCPUs: afterwards the audit passes
  // and every frame is free. Idempotent.
  void Finish();

 private:
  enum State : int { kIdle, kArmed, kRunning, kParked, kDone, kCancelled };
  struct Walker {
    std::atomic<int> state{kIdle};
    std::atomic<bool> park{false};
    std::atomic<bool> release{false};
    std::atomic<uint32_t> watched_generation{0};
    ScenarioHost* host = nullptr;
    bool after_flush = false;
    uint64_t ipis_at_arm = 0, requests_at_arm = 0;
  };
  static void ParkHook(void* arg, WalkPoint point, Level level);
  bool Step(PcpuId cpu, Pcpu& self);
  void Arm(int cpu, bool park, bool after_flush);

  const Vaddr va_;
  std::unique_ptr<MemoryManager> mm_;
  std::unique_ptr<FlushEngine> engine_;
  VcpuRunQueue run_queue_;
  Walker walkers_[kPcpus];
  std::vector<std::unique_ptr<GuestCpu>> guests_;
  DomainId domain_{0};
  bool finished_ = false;
  uint64_t watched_ = 0;  // Mfn + 1; 0: none.
};

}  // namespace testing
}  // namespace hvmm

#endif  // HVMM_TESTS_SAFETY_SCENARIO_HOST_H_
