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
//   BeforeRetype   flush the domain on its dirty mask; ipi and force-ipi by
//                  IPI; rcu assisted plus a grace period for the domain.
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
#include "cpu/pcpu.h"
#include "flush/flush_batcher.h"
#include "flush/tlb_clock.h"
#include "grace/grace_periods.h"
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
  uint64_t retype_grace_periods = 0;
};

class FlushPolicy : public FlushHooks {
 public:
  // kFailedPrecondition for assisted-unsafe without `allow_unsafe`. The
  // pointers must outlive the policy; `grace` may be null except for rcu.
  static absl::StatusOr<std::unique_ptr<FlushPolicy>> Create(
      Policy policy, bool allow_unsafe, std::vector<Pcpu*> pcpus,
      const TlbClock* clock, FlushBatcher* ipi, FlushBatcher* assisted,
      GracePeriods* grace);

  void AfterUnmap(const Domain& domain, bool tables_leave) override;
  void BeforeRetype(const Domain& domain, Mfn mfn) override;
  void AfterAllocate(uint32_t stamp) override;

  Policy policy() const { return policy_; }
  FlushPolicyStats stats() const;

 private:
  FlushPolicy(Policy policy, std::vector<Pcpu*> pcpus, const TlbClock* clock,
              FlushBatcher* ipi, FlushBatcher* assisted, GracePeriods* grace);

  // Sends `request` by IPI if `by_ipi`, else assisted.
  void Send(const FlushRequest& request, bool by_ipi, bool forced);

  const Policy policy_;
  const std::vector<Pcpu*> pcpus_;
  const TlbClock* const clock_;
  FlushBatcher* const ipi_;
  FlushBatcher* const assisted_;
  GracePeriods* const grace_;
  std::atomic<uint64_t> ipi_flushes_{0}, assisted_flushes_{0},
      forced_ipis_{0}, retype_grace_periods_{0};
};

}  // namespace hvmm

#endif  // HVMM_FLUSH_FLUSH_POLICY_H_
