// FlushHooks: where the mm core asks for the two promises to be kept.
//
// The mm core changes tables; it does not know about TLBs, IPIs or grace
// periods. It calls these hooks at the points DESIGN §4 names, and the flush
// engine (a policy, flush/flush_policy.h) decides how to keep each promise:
//
//   AfterUnmap     entries or base pointers of `domain` were cleared or
//                  replaced, visibly, and frames may be about to be retired:
//                  no pCPU may use a translation through them once this
//                  returns (coherence). `tables_leave` says frames with a
//                  page-table type (whatever their type count) are among the
//                  frames about to leave: under policies without grace
//                  periods the flush must also wait out walkers (existence).
//   AfterTablesReleased
//                  a change dropped the last type reference of `tables` of
//                  `domain` while they were page tables (unhooked, unpinned,
//                  or no longer a base pointer; some may be retyped in the
//                  same change): walkers that began before this call may
//                  still be reading them. Called after the removal is
//                  visible and flushed, before the BeforeRetype of any of
//                  them, so a policy can note the time and, at the retype,
//                  wait only if such walkers remain. Every such release is
//                  reported, so the latest report is the one that counts.
//   BeforeRetype   frames of `domain` have taken another type (Xen XSA-401:
//                  the new type first), in a change whose removals are
//                  visible and flushed and whose releases are reported, and
//                  whose new entries are not yet written. `tables` were page
//                  tables: once this returns, no walker may still be
//                  reading them as tables (existence), nor any TLB or
//                  paging-structure cache hold them (coherence).
//                  `former_writable` were writable pages and are tables
//                  now: once this returns, no walker that may still hold a
//                  writable translation of them (it read the leaf before
//                  the mapping went) may be running (isolation).
//   CheckPolicyTag a domain is about to be created with, or switched to
//                  (SetFlushPolicy), DomainConfig::flush_policy = `tag`
//                  (opaque to the mm): OK, or the status returned. Called before
//                  anything changes; every later hook may rely on the tag.
//   AfterAllocate  frames were allocated to `domain` whose newest free-stamp
//                  is `stamp`: the allocation flush (Xen's filtered flush on
//                  alloc), under the allocating domain's policy.
//
// All are called with the domain's lock held. Implementations must not take
// domain locks, and must not wait for anything that needs one.
#ifndef HVMM_MM_FLUSH_HOOKS_H_
#define HVMM_MM_FLUSH_HOOKS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "mm/tlb_clock.h"
#include "mm/types.h"

namespace hvmm {

class Domain;

class FlushHooks {
 public:
  virtual ~FlushHooks() = default;
  virtual void AfterUnmap(const Domain& domain, bool tables_leave) = 0;
  virtual void AfterTablesReleased(const Domain& domain,
                                   absl::Span<const Mfn> tables) = 0;
  virtual void BeforeRetype(const Domain& domain,
                            absl::Span<const Mfn> tables,
                            absl::Span<const Mfn> former_writable) = 0;
  virtual void AfterAllocate(const Domain& domain, TlbStamp stamp) = 0;
  virtual absl::Status CheckPolicyTag(uint8_t tag) const = 0;
};

}  // namespace hvmm

#endif  // HVMM_MM_FLUSH_HOOKS_H_
