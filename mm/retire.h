// FrameRetirer: the one way frames leave a domain and return to the pool.
//
// Every frame a domain gives up (an unhooked page table, an unmapped data
// frame, a released reservation, everything at destroy) is first taken from
// the domain (Domain::ReleaseFrameLocked: no owner, no references, marked
// retiring) and then handed to Retire(). The retirer frees it once no walker
// and no TLB can still reach it. The order (DESIGN §4, Linux asm-generic/tlb.h)
// is: unhook the entry; flush; make sure no walker can see the frame; free.
//
// ImmediateRetirer frees at once: correct only with no concurrent walkers.
// The flush and grace-period engine supplies the deferred implementation.
//
// Thread-safety: implementations are safe to call from any thread. Retire()
// is called with the domain's lock held (see the lock tree in domain.h), so
// it must not call back into the MemoryManager. A retirer's lock comes
// before the allocator's: it may free frames while holding it.
#ifndef HVMM_MM_RETIRE_H_
#define HVMM_MM_RETIRE_H_

#include <cstdint>

#include "absl/functional/function_ref.h"
#include "absl/types/span.h"
#include "mm/frame_allocator.h"
#include "mm/types.h"

namespace hvmm {

class Domain;

class FrameRetirer {
 public:
  virtual ~FrameRetirer() = default;

  // Takes ownership of `frames`, which `domain` has just released.
  // REQUIRES: domain.mu() held; each frame is retiring (see
  // Domain::ReleaseFrameLocked) and unreachable from the domain's tables.
  virtual void Retire(const Domain& domain, absl::Span<const Mfn> frames) = 0;

  // Returns once every frame retired for `domain` so far is back in the
  // allocator (rcu_barrier for one domain).
  virtual void Drain(DomainId domain) = 0;

  // Memory pressure: frees now every frame retired so far whose wait can be
  // cut short (an expedited grace period), and waits for those already on
  // their way. Returns how many frames reached the allocator meanwhile.
  // May be called with a domain lock held (the allocation path does).
  virtual uint64_t Reclaim() = 0;

  // Frames retired and not yet freed.
  virtual uint64_t pending_frames() const = 0;

  // For the audit: calls fn for every pending frame, then `then()`, while
  // no frame can move from pending to free; `then` enumerates the
  // allocator, so that free and pending are one consistent snapshot.
  virtual void ForEachPending(absl::FunctionRef<void(Mfn)> fn,
                              absl::FunctionRef<void()> then) const = 0;
};

class ImmediateRetirer final : public FrameRetirer {
 public:
  explicit ImmediateRetirer(FrameAllocator* allocator)
      : allocator_(allocator) {}

  void Retire(const Domain& domain, absl::Span<const Mfn> frames) override {
    for (Mfn mfn : frames) allocator_->Free(mfn);
  }
  void Drain(DomainId domain) override {}
  uint64_t Reclaim() override { return 0; }
  uint64_t pending_frames() const override { return 0; }
  void ForEachPending(absl::FunctionRef<void(Mfn)> fn,
                      absl::FunctionRef<void()> then) const override {
    then();
  }

 private:
  FrameAllocator* const allocator_;
};

}  // namespace hvmm

#endif  // HVMM_MM_RETIRE_H_
