// FlushPolicy: how hvmm keeps both promises, one of four ways (DESIGN §3).
//
// | policy             | flushes                        | existence by          |
// |--------------------|--------------------------------|-----------------------|
// | ipi                | all by IPI                     | the IPI itself        |
// | assisted-unsafe    | all assisted                   | nothing (the seed bug)|
// | assisted+force-ipi | assisted, but IPI when tables  | the forced IPI        |
// |                    | leave and on allocation        |                       |
// | assisted+rcu       | all assisted                   | the domain's grace    |
// |                    |                                | period                |
//
// FlushPolicy implements the mm core's FlushHooks:
//   AfterUnmap     flush the domain on its dirty mask; by IPI under ipi, and
//                  under force-ipi when tables are leaving. Under rcu the
//                  frames wait in the DeferredRetirer instead.
//   AfterTablesReleased
//                  stamp the released tables with a grace-period cookie
//                  (ReleaseStamps): when they stopped being reachable.
//   BeforeRetype   flush the domain on its dirty mask; ipi and force-ipi by
//                  IPI; rcu assisted, then CondSynchronize on the frame's
//                  release stamp: a grace period for the domain only if a
//                  walker older than the release is still inside (Linux
//                  cond_synchronize_rcu). A table released long before its
//                  retype, the common case, waits for nothing.
//   AfterAllocate  full flush of the pCPUs whose flush time does not cover
//                  the frames' stamp (TlbClock::NeedFlush); by IPI under ipi
//                  and force-ipi.
// assisted-unsafe refuses to be built unless explicitly allowed.
//
// Thread-safety: all hooks from any thread (they are called under a domain
// lock; none takes one).
#ifndef HVMM_FLUSH_FLUSH_POLICY_H_
#define HVMM_FLUSH_FLUSH_POLICY_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "cpu/pcpu.h"
#include "flush/flush_batcher.h"
#include "flush/tlb_clock.h"
#include "grace/grace_periods.h"
#include "grace/release_stamps.h"
#include "mm/domain.h"
#include "mm/flush_hooks.h"

namespace hvmm {

enum class Policy : uint8_t {
  kIpi,
  kAssistedUnsafe,
  kAssistedForceIpi,
  kAssistedRcu,
};

// "ipi", "assisted-unsafe", "assisted+force-ipi", "assisted+rcu".
absl::StatusOr<Policy> ParsePolicy(absl::string_view name);
const char* PolicyName(Policy policy);
// Whether frames must wait for a grace period before they are freed.
inline bool UsesGracePeriods(Policy p) { return p == Policy::kAssistedRcu; }

struct FlushPolicyStats {
  uint64_t ipi_flushes = 0;       // Requests served by the IPI backend.
  uint64_t assisted_flushes = 0;  // Requests served by the assisted backend.
  uint64_t forced_ipis = 0;       // IPI requests only force-ipi would send.
  uint64_t retype_grace_periods = 0;   // rcu retypes that had to wait.
  uint64_t retype_polls_elapsed = 0;   // rcu retypes whose GP had elapsed.
};

class FlushPolicy : public FlushHooks {
 public:
  // What a policy acts on. Everything must outlive the policy.
  struct Machine {
    std::vector<Pcpu*> pcpus;  // Sharing one SectionClock.
    const TlbClock* clock = nullptr;
    FlushBatcher* ipi = nullptr;
    FlushBatcher* assisted = nullptr;
    GracePeriods* grace = nullptr;  // Over `pcpus`.
    uint64_t frame_count = 0;       // Host frames (for ReleaseStamps).
  };

  // kFailedPrecondition for assisted-unsafe without `allow_unsafe`;
  // kInvalidArgument for a Machine with a missing part.
  static absl::StatusOr<std::unique_ptr<FlushPolicy>> Create(
      Policy policy, bool allow_unsafe, Machine machine);

  void AfterUnmap(const Domain& domain, bool tables_leave) override;
  void AfterTablesReleased(const Domain& domain,
                           absl::Span<const Mfn> tables) override;
  void BeforeRetype(const Domain& domain, Mfn mfn) override;
  void AfterAllocate(uint32_t stamp) override;

  Policy policy() const { return policy_; }
  FlushPolicyStats stats() const;
  // For the oracle's pipe histogram.
  const ReleaseStamps& release_stamps() const { return release_stamps_; }

 private:
  FlushPolicy(Policy policy, Machine machine);

  // Sends `request` by IPI if `by_ipi`, else assisted.
  void Send(const FlushRequest& request, bool by_ipi, bool forced);

  const Policy policy_;
  const Machine machine_;
  ReleaseStamps release_stamps_;
  std::atomic<uint64_t> ipi_flushes_{0}, assisted_flushes_{0},
      forced_ipis_{0}, retype_grace_periods_{0}, retype_polls_elapsed_{0};
};

}  // namespace hvmm

#endif  // HVMM_FLUSH_FLUSH_POLICY_H_
