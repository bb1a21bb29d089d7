// FlushEngine: the flush and grace-period machinery of one host, assembled.
//
// Owns, for one MemoryManager:
//   - the simulated pCPUs (sharing the mm's TlbClock and one SectionClock);
//   - GracePeriods over them;
//   - the IPI and assisted backends, each behind a FlushBatcher;
//   - the FlushPolicy (daemon-wide default, per-domain overrides);
//   - the DeferredRetirer and the PolicyRetirer that routes to it;
// and installs the policy and retirer as the mm's FlushHooks and
// FrameRetirer. The torture tool and the daemon build one of these; so do
// tests that need the real thing.
//
//   auto engine = FlushEngine::Create(mm.get(), options).value();
//   engine->Start([&](int cpu) { return MakeStep(cpu); });
//   ... domains live and die ...
//   (destroy every domain)  engine->Stop();
//
// Lifetime: create before the mm's first domain; destroy every domain before
// the engine (the mm keeps pointers to its hooks and retirer).
//
// Thread-safety: Start/Stop from one controlling thread; accessors from
// any thread.
#ifndef HVMM_ASSEMBLY_FLUSH_ENGINE_H_
#define HVMM_ASSEMBLY_FLUSH_ENGINE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "cpu/pcpu.h"
#include "cpu/section_clock.h"
#include "flush/flush_backends.h"
#include "flush/flush_batcher.h"
#include "flush/flush_policy.h"
#include "assembly/policy_retirer.h"
#include "grace/deferred_retirer.h"
#include "grace/grace_periods.h"
#include "mm/memory_manager.h"

namespace hvmm {

class FlushEngine {
 public:
  struct Options {
    Policy policy = Policy::kAssistedRcu;  // The daemon-wide default.
    bool allow_unsafe = false;
    int pcpus = 4;  // 1..kMaxPcpus; may exceed the host's cores.
    Tlb::Options tlb;
    AssistedFlushBackend::Options assisted;
    DeferredRetirer::Options deferred;
  };

  // kInvalidArgument for a pCPU count out of range; kFailedPrecondition for
  // assisted-unsafe without allow_unsafe, or if `mm` already has domains.
  static absl::StatusOr<std::unique_ptr<FlushEngine>> Create(
      MemoryManager* mm, const Options& options);
  // Stops the pCPUs. REQUIRES: the mm has no domains left.
  ~FlushEngine();
  FlushEngine(const FlushEngine&) = delete;
  FlushEngine& operator=(const FlushEngine&) = delete;

  // Starts pCPU i running step_for(i). IPI flushes (and so domain creation
  // under IPI policies) need running pCPUs. REQUIRES: not started.
  void Start(const std::function<Pcpu::Step(PcpuId cpu)>& step_for);
  // Serves pending IPIs and stops the pCPUs (idempotent).
  void Stop();

  const std::vector<Pcpu*>& pcpus() const { return raw_pcpus_; }
  GracePeriods& grace() { return *grace_; }
  FlushPolicy& policy() { return *policy_; }
  DeferredRetirer& deferred_retirer() { return *deferred_; }
  PolicyRetirer& retirer() { return *retirer_; }
  const IpiFlushBackend& ipi_backend() const { return *ipi_; }
  const AssistedFlushBackend& assisted_backend() const { return *assisted_; }
  const FlushBatcher& ipi_batcher() const { return *ipi_batcher_; }
  const FlushBatcher& assisted_batcher() const { return *assisted_batcher_; }

 private:
  FlushEngine() = default;

  SectionClock sections_;
  std::vector<std::unique_ptr<Pcpu>> pcpus_;
  std::vector<Pcpu*> raw_pcpus_;
  std::unique_ptr<GracePeriods> grace_;
  std::unique_ptr<IpiFlushBackend> ipi_;
  std::unique_ptr<AssistedFlushBackend> assisted_;
  std::unique_ptr<FlushBatcher> ipi_batcher_, assisted_batcher_;
  std::unique_ptr<FlushPolicy> policy_;
  std::unique_ptr<DeferredRetirer> deferred_;
  std::unique_ptr<PolicyRetirer> retirer_;
};

}  // namespace hvmm

#endif  // HVMM_ASSEMBLY_FLUSH_ENGINE_H_
