#include "flush/flush_policy.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "mm/mm_errors.h"

namespace hvmm {

absl::StatusOr<Policy> ParsePolicy(absl::string_view name) {
  if (name == "ipi") return Policy::kIpi;
  if (name == "assisted-unsafe") return Policy::kAssistedUnsafe;
  if (name == "assisted+force-ipi") return Policy::kAssistedForceIpi;
  if (name == "assisted+rcu") return Policy::kAssistedRcu;
  return UnknownPolicyError(absl::StrCat(
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
    Policy policy, bool allow_unsafe, Machine machine) {
  if (policy == Policy::kAssistedUnsafe && !allow_unsafe) {
    return UnsafePolicyNotAllowedError(
        "policy assisted-unsafe reproduces the use-after-free of lockless "
        "walkers on freed page tables; it runs only when explicitly allowed");
  }
  if (machine.pcpus.empty() || machine.clock == nullptr ||
      machine.ipi == nullptr || machine.assisted == nullptr ||
      machine.grace == nullptr || machine.frame_count == 0) {
    return absl::InvalidArgumentError(
        "a flush policy needs pCPUs, the TLB clock, both batchers, grace "
        "periods and the host frame count");
  }
  for (const Pcpu* p : machine.pcpus) {
    if (p->section_clock() == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("pCPU ", p->id().value(),
                       " has no SectionClock: retypes cannot poll"));
    }
  }
  return std::unique_ptr<FlushPolicy>(
      new FlushPolicy(policy, allow_unsafe, std::move(machine)));
}

absl::StatusOr<uint8_t> FlushPolicy::OverrideTag(Policy policy) const {
  if (policy == Policy::kAssistedUnsafe && !allow_unsafe_) {
    return UnsafePolicyNotAllowedError(
        "policy assisted-unsafe for a domain runs only when the daemon "
        "allows assisted-unsafe explicitly");
  }
  return static_cast<uint8_t>(static_cast<uint8_t>(policy) + 1);
}

absl::Status FlushPolicy::CheckPolicyTag(uint8_t tag) const {
  if (tag == 0) return absl::OkStatus();
  if (tag - 1 > static_cast<int>(Policy::kAssistedRcu)) {
    return UnknownPolicyError(absl::StrCat(
        "flush_policy tag ", tag, " names no policy (0: the default, ",
        "1..4: ipi, assisted-unsafe, assisted+force-ipi, assisted+rcu)"));
  }
  return OverrideTag(static_cast<Policy>(tag - 1)).status();
}

Policy FlushPolicy::PolicyFor(const Domain& domain) const {
  const uint8_t tag = domain.flush_policy();
  if (tag == 0) return policy_;
  HVMM_CHECK(tag - 1 <= static_cast<int>(Policy::kAssistedRcu))
      << "domain " << domain.id() << " has flush policy tag " << int{tag};
  return static_cast<Policy>(tag - 1);
}

FlushPolicy::FlushPolicy(Policy policy, bool allow_unsafe, Machine machine)
    : policy_(policy),
      allow_unsafe_(allow_unsafe),
      machine_(std::move(machine)),
      release_stamps_(machine_.frame_count) {}

const char* FlushReasonName(FlushReason reason) {
  switch (reason) {
    case FlushReason::kUnmap:
      return "unmap";
    case FlushReason::kRetype:
      return "retype";
    case FlushReason::kAllocate:
      return "allocate";
    case FlushReason::kExplicit:
      return "explicit";
  }
  return "?";
}

const char* FlushBackendName(FlushBackendKind backend) {
  return backend == FlushBackendKind::kIpi ? "ipi" : "assisted";
}

void FlushPolicy::Send(FlushRequest request, FlushReason reason, bool no_assist,
                       bool forced) {
  if (request.targets.Empty()) return;
  if (no_assist) request.flags |= kFlushNoAssist;
  const int r = static_cast<int>(reason);
  if (request.flags & kFlushNoAssist) {
    machine_.ipi->Flush(request);
    requests_[static_cast<int>(FlushBackendKind::kIpi)][r].fetch_add(
        1, std::memory_order_relaxed);
    if (forced) forced_[r].fetch_add(1, std::memory_order_relaxed);
  } else {
    machine_.assisted->Flush(request);
    requests_[static_cast<int>(FlushBackendKind::kAssisted)][r].fetch_add(
        1, std::memory_order_relaxed);
  }
}

void FlushPolicy::AfterUnmap(const Domain& domain, bool tables_leave) {
  const FlushRequest request{domain.DirtyMask(),
                             FlushScope::Domain(domain.id())};
  switch (PolicyFor(domain)) {
    case Policy::kIpi:
      Send(request, FlushReason::kUnmap, /*no_assist=*/true, /*forced=*/false);
      break;
    case Policy::kAssistedForceIpi:
      Send(request, FlushReason::kUnmap, /*no_assist=*/tables_leave,
           /*forced=*/tables_leave);
      break;
    case Policy::kAssistedUnsafe:
    case Policy::kAssistedRcu:
      // rcu: existence comes from the DeferredRetirer's grace period.
      Send(request, FlushReason::kUnmap, /*no_assist=*/false, /*forced=*/false);
      break;
  }
}

void FlushPolicy::AfterTablesReleased(const Domain& domain,
                                      absl::Span<const Mfn> tables) {
  // The change is visible (committed); the cookie orders after it.
  release_stamps_.Record(tables, machine_.grace->GetState());
}

void FlushPolicy::BeforeRetype(const Domain& domain,
                               absl::Span<const Mfn> tables,
                               absl::Span<const Mfn> former_writable) {
  const FlushRequest request{domain.DirtyMask(),
                             FlushScope::Domain(domain.id())};
  switch (PolicyFor(domain)) {
    case Policy::kIpi:
      Send(request, FlushReason::kRetype, /*no_assist=*/true, /*forced=*/false);
      break;
    case Policy::kAssistedForceIpi:
      Send(request, FlushReason::kRetype, /*no_assist=*/true, /*forced=*/true);
      break;
    case Policy::kAssistedUnsafe:
      Send(request, FlushReason::kRetype, /*no_assist=*/false,
           /*forced=*/false);
      break;
    case Policy::kAssistedRcu:
      Send(request, FlushReason::kRetype, /*no_assist=*/false,
           /*forced=*/false);
      // A former writable page has no release stamp: wait for every older
      // walker (GraceCookie(): unknown).
      const GraceCookie released =
          former_writable.empty() ? NewestStamp(tables) : GraceCookie();
      if (machine_.grace->CondSynchronize(domain.id(), released)) {
        retype_grace_periods_.fetch_add(1, std::memory_order_relaxed);
      } else {
        retype_polls_elapsed_.fetch_add(1, std::memory_order_relaxed);
      }
      break;
  }
}

GraceCookie FlushPolicy::NewestStamp(absl::Span<const Mfn> tables) const {
  GraceCookie newest;
  for (Mfn mfn : tables) {
    const GraceCookie stamp = release_stamps_.At(mfn);
    // Unknown: wait for every older walker.
    if (stamp == GraceCookie()) return GraceCookie();
    newest = std::max(newest, stamp);
  }
  return newest;
}

void FlushPolicy::AfterAllocate(const Domain& domain, TlbStamp stamp) {
  const Policy policy = PolicyFor(domain);
  // An IPI allocation flush stands in for the walkers' IPI (force-ipi: Xen
  // 4.14 sends it NO_ASSIST), so it may skip only pCPUs whose own flush
  // since the stamp proved them quiescent; an assisted one is for the
  // caches alone, and any full flush since the stamp covers it.
  const bool no_assist =
      policy == Policy::kIpi || policy == Policy::kAssistedForceIpi;
  FlushRequest request{CpuMask(), FlushScope::All()};
  // Read before the filter: if the clock reads 0 now, NeedFlush selects
  // every pCPU, and each flush below began after the wrap.
  const bool wrapped = machine_.clock->Now() == TlbStamp();
  for (const Pcpu* p : machine_.pcpus) {
    const FlushRecord record =
        no_assist ? p->quiescent_flush_time() : p->flush_time();
    if (machine_.clock->NeedFlush(record, stamp)) request.targets.Set(p->id());
  }
  Send(request, FlushReason::kAllocate, no_assist,
       /*forced=*/policy == Policy::kAssistedForceIpi);
  if (wrapped && machine_.clock->ResetPeriod()) {
    clock_periods_.fetch_add(1, std::memory_order_relaxed);
  }
}

FlushPolicy::ExplicitFlushResult FlushPolicy::ExplicitFlush(
    const Domain& domain, const FlushScope& scope) {
  const FlushRequest request{domain.DirtyMask(), scope};
  ExplicitFlushResult result;
  result.pcpus_targeted = request.targets.Count();
  result.by_ipi = PolicyFor(domain) == Policy::kIpi;
  Send(request, FlushReason::kExplicit, /*no_assist=*/result.by_ipi,
       /*forced=*/false);
  return result;
}

FlushPolicyStats FlushPolicy::stats() const {
  FlushPolicyStats s;
  for (int r = 0; r < kFlushReasonCount; ++r) {
    for (int b = 0; b < kFlushBackendCount; ++b) {
      s.requests[b][r] = requests_[b][r].load(std::memory_order_relaxed);
    }
    s.forced[r] = forced_[r].load(std::memory_order_relaxed);
    s.ipi_flushes += s.requests[static_cast<int>(FlushBackendKind::kIpi)][r];
    s.assisted_flushes +=
        s.requests[static_cast<int>(FlushBackendKind::kAssisted)][r];
    s.forced_ipis += s.forced[r];
  }
  s.retype_grace_periods =
      retype_grace_periods_.load(std::memory_order_relaxed);
  s.retype_polls_elapsed =
      retype_polls_elapsed_.load(std::memory_order_relaxed);
  s.clock_periods = clock_periods_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace hvmm
