#include "flush/flush_policy.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/check.h"

namespace hvmm {

absl::StatusOr<Policy> ParsePolicy(absl::string_view name) {
  if (name == "ipi") return Policy::kIpi;
  if (name == "assisted-unsafe") return Policy::kAssistedUnsafe;
  if (name == "assisted+force-ipi") return Policy::kAssistedForceIpi;
  if (name == "assisted+rcu") return Policy::kAssistedRcu;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown policy '", name,
      "' (ipi, assisted-unsafe, assisted+force-ipi, assisted+rcu)"));
}

const char* PolicyName(Policy policy) {
  switch (policy) {
    case Policy::kIpi:
      return "ipi";
    case Policy::kAssistedUnsafe:
      return "assisted-unsafe";
    case Policy::kAssistedForceIpi:
      return "assisted+force-ipi";
    case Policy::kAssistedRcu:
      return "assisted+rcu";
  }
  return "invalid";
}

absl::StatusOr<std::unique_ptr<FlushPolicy>> FlushPolicy::Create(
    Policy policy, bool allow_unsafe, std::vector<Pcpu*> pcpus,
    const TlbClock* clock, FlushBatcher* ipi, FlushBatcher* assisted,
    GracePeriods* grace) {
  if (policy == Policy::kAssistedUnsafe && !allow_unsafe) {
    return absl::FailedPreconditionError(
        "policy assisted-unsafe reproduces the use-after-free of lockless "
        "walkers on freed page tables; it runs only when explicitly allowed");
  }
  if (UsesGracePeriods(policy) && grace == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(PolicyName(policy), " needs grace periods"));
  }
  return std::unique_ptr<FlushPolicy>(new FlushPolicy(
      policy, std::move(pcpus), clock, ipi, assisted, grace));
}

FlushPolicy::FlushPolicy(Policy policy, std::vector<Pcpu*> pcpus,
                         const TlbClock* clock, FlushBatcher* ipi,
                         FlushBatcher* assisted, GracePeriods* grace)
    : policy_(policy),
      pcpus_(std::move(pcpus)),
      clock_(clock),
      ipi_(ipi),
      assisted_(assisted),
      grace_(grace) {}

void FlushPolicy::Send(const FlushRequest& request, bool by_ipi, bool forced) {
  if (request.targets.Empty()) return;
  if (by_ipi) {
    ipi_->Flush(request);
    ipi_flushes_.fetch_add(1, std::memory_order_relaxed);
    if (forced) forced_ipis_.fetch_add(1, std::memory_order_relaxed);
  } else {
    assisted_->Flush(request);
    assisted_flushes_.fetch_add(1, std::memory_order_relaxed);
  }
}

void FlushPolicy::AfterUnmap(const Domain& domain, bool tables_leave) {
  const FlushRequest request{domain.DirtyMask(),
                             FlushScope::Domain(domain.id())};
  switch (policy_) {
    case Policy::kIpi:
      Send(request, /*by_ipi=*/true, /*forced=*/false);
      break;
    case Policy::kAssistedForceIpi:
      Send(request, /*by_ipi=*/tables_leave, /*forced=*/tables_leave);
      break;
    case Policy::kAssistedUnsafe:
    case Policy::kAssistedRcu:
      // rcu: existence comes from the DeferredRetirer's grace period.
      Send(request, /*by_ipi=*/false, /*forced=*/false);
      break;
  }
}

void FlushPolicy::BeforeRetype(const Domain& domain, Mfn mfn) {
  const FlushRequest request{domain.DirtyMask(),
                             FlushScope::Domain(domain.id())};
  switch (policy_) {
    case Policy::kIpi:
      Send(request, /*by_ipi=*/true, /*forced=*/false);
      break;
    case Policy::kAssistedForceIpi:
      Send(request, /*by_ipi=*/true, /*forced=*/true);
      break;
    case Policy::kAssistedUnsafe:
      Send(request, /*by_ipi=*/false, /*forced=*/false);
      break;
    case Policy::kAssistedRcu:
      Send(request, /*by_ipi=*/false, /*forced=*/false);
      grace_->Synchronize(domain.id());
      retype_grace_periods_.fetch_add(1, std::memory_order_relaxed);
      break;
  }
}

void FlushPolicy::AfterAllocate(uint32_t stamp) {
  FlushRequest request{CpuMask(), FlushScope::All()};
  for (const Pcpu* p : pcpus_) {
    if (clock_->NeedFlush(p->flush_time(), stamp)) request.targets.Set(p->id());
  }
  const bool by_ipi =
      policy_ == Policy::kIpi || policy_ == Policy::kAssistedForceIpi;
  Send(request, by_ipi, /*forced=*/policy_ == Policy::kAssistedForceIpi);
}

FlushPolicyStats FlushPolicy::stats() const {
  FlushPolicyStats s;
  s.ipi_flushes = ipi_flushes_.load(std::memory_order_relaxed);
  s.assisted_flushes = assisted_flushes_.load(std::memory_order_relaxed);
  s.forced_ipis = forced_ipis_.load(std::memory_order_relaxed);
  s.retype_grace_periods = retype_grace_periods_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace hvmm
