// FlushHooks: where the mm core asks for the two promises to be kept.
//
// The mm core changes tables; it does not know about TLBs, IPIs or grace
// periods. It calls these hooks at the points DESIGN §4 names, and the flush
// engine (a policy, flush/flush_policy.h) decides how to keep each promise:
//
//   AfterUnmap     entries of `domain` were cleared or replaced and
//                  committed, and frames may be about to be retired: no pCPU
//                  may use a translation through them once this returns
//                  (coherence). `tables_leave` says page tables are among the
//                  frames about to leave: under policies without grace
//                  periods the flush must also wait out walkers (existence).
//   AfterTablesReleased
//                  a committed change left `tables` of `domain` as page
//                  tables with no type references (unhooked, unpinned, or no
//                  longer a base pointer): walkers that began before this
//                  call may still be reading them. Called after the change
//                  is visible, before any later BeforeRetype of them, so a
//                  policy can note the time and, at the retype, wait only if
//                  such walkers remain.
//   BeforeRetype   a frame of `domain` that was a page table is about to take
//                  another type: once this returns, no walker may still be
//                  reading it as a table (existence), nor any TLB or
//                  paging-structure cache hold it (coherence). Called after
//                  the new type is taken (Xen XSA-401), before it is used.
//   AfterAllocate  frames were allocated to `domain` whose newest free-stamp
//                  is `stamp`: the allocation flush (Xen's filtered flush on
//                  alloc), under the allocating domain's policy.
//
// All are called with the domain's lock held. Implementations must not take
// domain locks, and must not wait for anything that needs one.
#ifndef HVMM_MM_FLUSH_HOOKS_H_
#define HVMM_MM_FLUSH_HOOKS_H_

#include <cstdint>

#include "absl/types/span.h"
#include "mm/types.h"

namespace hvmm {

class Domain;

class FlushHooks {
 public:
  virtual ~FlushHooks() = default;
  virtual void AfterUnmap(const Domain& domain, bool tables_leave) = 0;
  virtual void AfterTablesReleased(const Domain& domain,
                                   absl::Span<const Mfn> tables) = 0;
  virtual void BeforeRetype(const Domain& domain, Mfn mfn) = 0;
  virtual void AfterAllocate(const Domain& domain, uint32_t stamp) = 0;
};

}  // namespace hvmm

#endif  // HVMM_MM_FLUSH_HOOKS_H_
