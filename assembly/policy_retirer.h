// PolicyRetirer: the FrameRetirer that follows each domain's flush policy.
//
// Frames of a domain whose policy relies on grace periods (assisted+rcu) go
// to the grace-period retirer (a DeferredRetirer): they are freed after the
// domain's grace period. Under the other policies the existence promise was
// already kept by the AfterUnmap flush that precedes every Retire() (an IPI
// that waited out walkers; or, for assisted-unsafe, deliberately not), so
// their frames are freed at once, exactly as ImmediateRetirer would.
//
// Drain(), pending_frames() and ForEachPending() are the deferred retirer's:
// immediate frees leave nothing pending.
//
// Thread-safety: as FrameRetirer. Retire() runs under the domain's lock, so
// the domain's policy (which changes only under that lock) cannot change
// under it. Frees queued before a change stay queued.
#ifndef HVMM_ASSEMBLY_POLICY_RETIRER_H_
#define HVMM_ASSEMBLY_POLICY_RETIRER_H_

#include <atomic>
#include <cstdint>

#include "flush/flush_policy.h"
#include "mm/domain.h"
#include "mm/frame_allocator.h"
#include "mm/retire.h"

namespace hvmm {

class PolicyRetirer final : public FrameRetirer {
 public:
  // All three must outlive this.
  PolicyRetirer(const FlushPolicy* policy, FrameRetirer* grace_retirer,
                FrameAllocator* allocator)
      : policy_(policy), grace_retirer_(grace_retirer), allocator_(allocator) {}

  void Retire(const Domain& domain, absl::Span<const Mfn> frames) override {
    if (UsesGracePeriods(policy_->PolicyFor(domain))) {
      grace_retirer_->Retire(domain, frames);
      return;
    }
    for (Mfn mfn : frames) allocator_->Free(mfn);
    freed_at_once_.fetch_add(frames.size(), std::memory_order_relaxed);
  }
  void Drain(DomainId domain) override { grace_retirer_->Drain(domain); }
  uint64_t Reclaim() override { return grace_retirer_->Reclaim(); }
  uint64_t pending_frames() const override {
    return grace_retirer_->pending_frames();
  }
  void ForEachPending(absl::FunctionRef<void(Mfn)> fn,
                      absl::FunctionRef<void()> then) const override {
    grace_retirer_->ForEachPending(fn, then);
  }

  // Frames freed without a grace period.
  uint64_t freed_at_once() const {
    return freed_at_once_.load(std::memory_order_relaxed);
  }

 private:
  const FlushPolicy* const policy_;
  FrameRetirer* const grace_retirer_;
  FrameAllocator* const allocator_;
  std::atomic<uint64_t> freed_at_once_{0};
};

}  // namespace hvmm

#endif  // HVMM_ASSEMBLY_POLICY_RETIRER_H_
