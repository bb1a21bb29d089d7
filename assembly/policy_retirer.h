// PolicyRetirer: the FrameRetirer that follows each domain's flush policy.
//
// Under a policy that relies on grace periods (assisted+rcu), the frames
// split the way Linux's mmu_gather splits them with
// CONFIG_MMU_GATHER_RCU_TABLE_FREE:
//   - a frame whose type is a page-table type (l1..l4, at any type count: a
//     released table keeps its type until it is freed or retyped) goes to
//     the grace-period retirer (a DeferredRetirer), like tlb_remove_table():
//     a walker that began before the unhook may still read it;
//   - any other frame (writable, none) is freed at once, like
//     tlb_remove_page() after tlb_flush_mmu(): no walker reads it as a
//     table. A frame is never such a data frame while some walker may still
//     read it as a table, because leaving a page-table type waits for the
//     grace period (FlushHooks::BeforeRetype). The AfterUnmap flush that
//     precedes every Retire() has removed its translations, and a fill
//     racing that flush is dropped (Tlb::RequestFlush): coherence holds.
// Under the other policies the existence promise was already kept by the
// AfterUnmap flush (an IPI that waited out walkers; or, for
// assisted-unsafe, deliberately not), so every frame is freed at once,
// exactly as ImmediateRetirer would.
//
// Drain(), pending_frames() and ForEachPending() are the deferred retirer's:
// immediate frees leave nothing pending.
//
// Thread-safety: as FrameRetirer. Retire() runs under the domain's lock, so
// the domain's policy (which changes only under that lock) cannot change
// under it, and the retiring frames' types are stable (only the retirer
// that holds a frame changes it). Frees queued before a change stay queued.
#ifndef HVMM_ASSEMBLY_POLICY_RETIRER_H_
#define HVMM_ASSEMBLY_POLICY_RETIRER_H_

#include <atomic>
#include <cstdint>

#include "absl/container/inlined_vector.h"
#include "absl/types/span.h"
#include "flush/flush_policy.h"
#include "mm/domain.h"
#include "mm/frame_allocator.h"
#include "mm/frame_table.h"
#include "mm/retire.h"
#include "mm/types.h"

namespace hvmm {

class PolicyRetirer final : public FrameRetirer {
 public:
  // All must outlive this.
  PolicyRetirer(const FlushPolicy* policy, FrameRetirer* grace_retirer,
                const FrameTable* table, FrameAllocator* allocator)
      : policy_(policy),
        grace_retirer_(grace_retirer),
        table_(table),
        allocator_(allocator) {}

  void Retire(const Domain& domain, absl::Span<const Mfn> frames) override {
    if (!UsesGracePeriods(policy_->PolicyFor(domain))) {
      for (Mfn mfn : frames) allocator_->Free(mfn);
      freed_at_once_.fetch_add(frames.size(), std::memory_order_relaxed);
      return;
    }
    absl::InlinedVector<Mfn, 16> tables;
    uint64_t at_once = 0;
    for (Mfn mfn : frames) {
      if (IsPageTableType(table_->info(mfn).type)) {
        tables.push_back(mfn);
      } else {
        allocator_->Free(mfn);
        ++at_once;
      }
    }
    if (!tables.empty()) grace_retirer_->Retire(domain, tables);
    freed_at_once_.fetch_add(at_once, std::memory_order_relaxed);
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

  // Frames freed without a grace period (under rcu: the data frames).
  uint64_t freed_at_once() const {
    return freed_at_once_.load(std::memory_order_relaxed);
  }

 private:
  const FlushPolicy* const policy_;
  FrameRetirer* const grace_retirer_;
  const FrameTable* const table_;
  FrameAllocator* const allocator_;
  std::atomic<uint64_t> freed_at_once_{0};
};

}  // namespace hvmm

#endif  // HVMM_ASSEMBLY_POLICY_RETIRER_H_
