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
//                  IPI; rcu assisted, then CondSynchronize on the newest
//                  release stamp of the retyped frames: a grace period for
//                  the domain only if a walker older than that release is
//                  still inside (Linux cond_synchronize_rcu). The mm core
//                  reports every release before the retype that follows it,
//                  so the stamp is never older than the frame's last
//                  release. A table released long before its retype, the
//                  common case, waits for nothing. A writable page that
//                  became a table has no release stamp: rcu then waits for
//                  every walker of the domain already inside (a full grace
//                  period); the IPI policies' IPI already does.
//   AfterAllocate  full flush of the pCPUs whose flush record does not
//                  cover the frames' stamp (TlbClock::NeedFlush); by IPI
//                  under ipi and force-ipi. What the clock may filter
//                  (safety issue 1d): an IPI allocation flush is filtered on
//                  quiescent_flush_time (the pCPU's own flushes, which prove
//                  no older walker runs there), never on a time an assisted
//                  flush advanced without waiting for walkers; an assisted
//                  one on flush_time (any full flush of the caches). If the
//                  TLB clock has wrapped, that is every pCPU, and once the
//                  flush is done a new clock period begins (Xen's
//                  new_tlbflush_clock_period()).
// assisted-unsafe refuses to be built unless explicitly allowed.
//
// Per-domain override (DESIGN §3: "set for the daemon, overridable per
// domain"): the policy is a daemon-wide default, and a domain created with
// DomainConfig::flush_policy = OverrideTag(p) runs under p.
// MemoryManager::SetFlushPolicy changes it live, under the domain's lock, so
// no commit ever straddles two policies (an rcu unmap freed as ipi would be
// the seed bug). Every hook acts under PolicyFor(domain); PolicyRetirer
// routes the domain's frees the same way. A change is safe between commits
// because each policy's safety step covers releases made under any other:
//   - frees already queued for a grace period stay queued (the
//     DeferredRetirer never looks at the policy);
//   - a table released earlier and retyped now is covered by the new
//     policy's BeforeRetype: an IPI to the dirty mask waits out every walker
//     of the domain, and rcu's release stamp is recorded under every policy.
// tests/safety/policy_change_test.cc checks every pair.
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
#include "mm/tlb_clock.h"
#include "grace/grace_periods.h"
#include "grace/release_stamps.h"
#include "mm/domain.h"
#include "mm/flush_hooks.h"

namespace hvmm {

// Values are stable: OverrideTag() is the value plus one.
enum class Policy : uint8_t {
  kIpi = 0,
  kAssistedUnsafe = 1,
  kAssistedForceIpi = 2,
  kAssistedRcu = 3,
};
inline constexpr int kPolicyCount = 4;

// "ipi", "assisted-unsafe", "assisted+force-ipi", "assisted+rcu".
absl::StatusOr<Policy> ParsePolicy(absl::string_view name);
const char* PolicyName(Policy policy);
// Whether frames must wait for a grace period before they are freed.
inline bool UsesGracePeriods(Policy p) { return p == Policy::kAssistedRcu; }

// Why a policy sent a flush request (a metrics label).
enum class FlushReason : uint8_t {
  kUnmap = 0,     // AfterUnmap: entries or base pointers went.
  kRetype = 1,    // BeforeRetype: frames left a page-table or writable type.
  kAllocate = 2,  // AfterAllocate: the filtered flush on allocation.
  kExplicit = 3,  // ExplicitFlush: a client asked (the API's Flush).
};
inline constexpr int kFlushReasonCount = 4;
// "unmap", "retype", "allocate", "explicit".
const char* FlushReasonName(FlushReason reason);

// The backend a request went to (a metrics label): "ipi" or "assisted".
enum class FlushBackendKind : uint8_t { kIpi = 0, kAssisted = 1 };
inline constexpr int kFlushBackendCount = 2;
const char* FlushBackendName(FlushBackendKind backend);

struct FlushPolicyStats {
  uint64_t ipi_flushes = 0;       // Requests served by the IPI backend.
  uint64_t assisted_flushes = 0;  // Requests served by the assisted backend.
  uint64_t forced_ipis = 0;       // IPI requests only force-ipi would send.
  // The same requests by backend and reason, and forced IPIs by reason.
  uint64_t requests[kFlushBackendCount][kFlushReasonCount] = {};
  uint64_t forced[kFlushReasonCount] = {};
  uint64_t retype_grace_periods = 0;   // rcu retypes that had to wait.
  uint64_t retype_polls_elapsed = 0;   // rcu retypes whose GP had elapsed.
  uint64_t clock_periods = 0;          // TLB clock periods begun (wraps).
};

class FlushPolicy : public FlushHooks {
 public:
  // What a policy acts on. Everything must outlive the policy.
  struct Machine {
    std::vector<Pcpu*> pcpus;  // Sharing one SectionClock.
    TlbClock* clock = nullptr;  // Its period is reset here after a wrap.
    FlushBatcher* ipi = nullptr;
    FlushBatcher* assisted = nullptr;
    GracePeriods* grace = nullptr;  // Over `pcpus`.
    uint64_t frame_count = 0;       // Host frames (for ReleaseStamps).
  };

  // kFailedPrecondition for assisted-unsafe without `allow_unsafe`;
  // kInvalidArgument for a Machine with a missing part. `policy` is the
  // default for domains without an override.
  static absl::StatusOr<std::unique_ptr<FlushPolicy>> Create(
      Policy policy, bool allow_unsafe, Machine machine);

  // The DomainConfig::flush_policy value that selects `policy` for a new
  // domain. kFailedPrecondition for assisted-unsafe unless this engine was
  // created with allow_unsafe.
  absl::StatusOr<uint8_t> OverrideTag(Policy policy) const;
  // The policy `domain` runs under. CHECK-fails on a tag OverrideTag never
  // returned.
  Policy PolicyFor(const Domain& domain) const;

  void AfterUnmap(const Domain& domain, bool tables_leave) override;
  void AfterTablesReleased(const Domain& domain,
                           absl::Span<const Mfn> tables) override;
  void BeforeRetype(const Domain& domain, absl::Span<const Mfn> tables,
                    absl::Span<const Mfn> former_writable) override;
  void AfterAllocate(const Domain& domain, TlbStamp stamp) override;
  // kInvalidArgument for a tag OverrideTag never returns; kFailedPrecondition
  // for assisted-unsafe unless allowed. So PolicyFor never meets a bad tag.
  absl::Status CheckPolicyTag(uint8_t tag) const override;

  // An explicit flush of `scope` (of `domain`) on the domain's dirty mask,
  // asked for by a client (the API's Flush): by IPI under ipi, assisted
  // under the other policies; it keeps caches coherent and frees nothing.
  // Returns once the flush is done.
  struct ExplicitFlushResult {
    int pcpus_targeted = 0;
    bool by_ipi = false;
  };
  ExplicitFlushResult ExplicitFlush(const Domain& domain,
                                    const FlushScope& scope);

  // The default policy.
  Policy policy() const { return policy_; }
  FlushPolicyStats stats() const;
  // For the oracle's pipe histogram.
  const ReleaseStamps& release_stamps() const { return release_stamps_; }

 private:
  FlushPolicy(Policy policy, bool allow_unsafe, Machine machine);

  // Sets kFlushNoAssist if `no_assist`, then sends a NO_ASSIST request to
  // the IPI batcher and any other to the assisted one. `forced`: an IPI only
  // force-ipi sends (counted apart).
  void Send(FlushRequest request, FlushReason reason, bool no_assist,
            bool forced);
  // The newest release stamp among `tables`, or GraceCookie() if one was
  // never released (CondSynchronize then waits for every open section).
  GraceCookie NewestStamp(absl::Span<const Mfn> tables) const;

  const Policy policy_;
  const bool allow_unsafe_;
  const Machine machine_;
  ReleaseStamps release_stamps_;
  // Per request, one relaxed add on a line shared by the host's updaters:
  // a flush costs microseconds, so this is noise (walks count per pCPU).
  std::atomic<uint64_t> requests_[kFlushBackendCount][kFlushReasonCount] = {};
  std::atomic<uint64_t> forced_[kFlushReasonCount] = {};
  std::atomic<uint64_t> retype_grace_periods_{0}, retype_polls_elapsed_{0},
      clock_periods_{0};
};

}  // namespace hvmm

#endif  // HVMM_FLUSH_FLUSH_POLICY_H_
