// Domain: one guest's share of the host, as the mm core sees it.
//
// A domain has a name, a fixed number of vCPUs, a max_pages quota, the list
// of frames it owns, and one base pointer (root L4 table) per vCPU. hvmm
// gives every new domain a pinned root L4 that all its vCPUs start on;
// MapRange and UnmapRange build and tear down mappings under that root.
//
// Lock order, as a tree (acquire downwards only):
//
//   MemoryManager::domains_mu_         registry: id -> Domain, names
//     Domain::mu_                      one domain at a time; the audit alone
//       |                              takes several, in ascending id order
//       +-- FrameRetirer internals     called with the domain lock held
//             FrameAllocator::Shard::mu  one shard at a time (audit: all)
//               FrameAllocator::pool_mu_
//
// The whole tree, with every other lock and every blocking wait (IPI waits
// under a domain lock included): docs/LOCKS.md.
//
// Domain::mu_ protects every PageInfo field of the frames the domain owns
// (see page_info.h), and the domain's own fields below. Walkers take no lock:
// they read base pointers and entries with acquire loads.
//
// Thread-safety: const fields are immutable; `..._locked` members REQUIRE mu_;
// base_pointer() is lockless.
#ifndef HVMM_MM_DOMAIN_H_
#define HVMM_MM_DOMAIN_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "base/mutex.h"
#include "base/cpu_mask.h"
#include "mm/frame_table.h"
#include "mm/types.h"
#include "mm/walker.h"

namespace hvmm {

inline constexpr uint32_t kMaxVcpus = 128;

class Domain {
 public:
  Domain(DomainId id, std::string name, uint32_t vcpus, uint64_t max_pages,
         uint8_t flush_policy = 0);
  Domain(const Domain&) = delete;
  Domain& operator=(const Domain&) = delete;

  // Constant after construction.
  DomainId id() const { return id_; }
  const std::string& name() const { return name_; }
  uint32_t vcpus() const { return vcpus_; }
  uint64_t max_pages() const { return max_pages_; }
  // Opaque to the mm core: the flush engine's per-domain policy override
  // (0: the engine's default). See DomainConfig::flush_policy. It changes
  // only under mu() (SetFlushPolicyLocked), so a reader holding mu() sees
  // one value for a whole commit; a lockless reader (statistics) sees the
  // value before or after a change.
  uint8_t flush_policy() const {
    return flush_policy_.load(std::memory_order_relaxed);
  }
  void SetFlushPolicyLocked(uint8_t tag) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    flush_policy_.store(tag, std::memory_order_relaxed);
  }

  Mutex& mu() const ABSL_LOCK_RETURNED(mu_) { return mu_; }

  // The vCPU's root L4, or nullopt. Lockless (acquire), for walkers.
  // REQUIRES: vcpu < vcpus().
  std::optional<Mfn> base_pointer(VcpuId vcpu) const {
    return DecodeBasePointer(
        base_pointers_[vcpu.value()].load(std::memory_order_acquire));
  }
  // The same, as the lockless walker reads and re-checks it
  // (WalkFromBasePointer). REQUIRES: vcpu < vcpus().
  const std::atomic<uint64_t>& base_pointer_slot(VcpuId vcpu) const {
    return base_pointers_[vcpu.value()];
  }
  void set_base_pointer_locked(VcpuId vcpu, std::optional<Mfn> root)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    base_pointers_[vcpu.value()].store(EncodeBasePointer(root),
                                       std::memory_order_release);
  }

  // Dirty mask: the pCPUs that may hold this domain's translations. Set by
  // a pCPU when it schedules one of the domain's vCPUs in; cleared by a
  // pCPU that switches to another domain, after dropping this one's
  // translations. Lockless.
  //
  // Ordering (store buffering, as Linux's switch_mm vs. flush_tlb_mm_range,
  // where both sides are locked x86 operations): a pCPU marks itself and
  // then, before its first walk, passes the seq_cst fence of
  // Pcpu::ReadSection entry; an updater changes entries and then reads the
  // mask with DirtyMask(), which begins with a seq_cst fence. So either the
  // updater's flush targets the pCPU, or the pCPU's walk sees the change.
  // Without the fence a pCPU that had just switched the domain in could
  // walk the old tables, be left out of the flush, and keep a stale TLB
  // entry to a frame freed right after (the torture tool found this under
  // assisted+force-ipi, which frees data frames as soon as the flush
  // returns).
  void MarkDirty(PcpuId cpu) {
    dirty_[cpu.value() / 64].fetch_or(uint64_t{1} << (cpu.value() % 64),
                                      std::memory_order_release);
  }
  void ClearDirty(PcpuId cpu) {
    dirty_[cpu.value() / 64].fetch_and(~(uint64_t{1} << (cpu.value() % 64)),
                                       std::memory_order_release);
  }
  CpuMask DirtyMask() const {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    CpuMask mask;
    for (uint32_t w = 0; w < kMaxPcpus / 64; ++w) {
      const uint64_t bits = dirty_[w].load(std::memory_order_acquire);
      for (uint32_t b = 0; b < 64; ++b) {
        if (bits & (uint64_t{1} << b)) mask.Set(PcpuId(w * 64 + b));
      }
    }
    return mask;
  }

  uint64_t tot_pages_locked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return owned_.size();
  }
  const std::vector<Mfn>& owned_frames_locked() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return owned_;
  }
  // The root hvmm created for the domain; MapRange and UnmapRange use it.
  std::optional<Mfn> root_locked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return root_;
  }
  void set_root_locked(std::optional<Mfn> root)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    root_ = root;
  }
  // A dying domain accepts no new operations; it is being relinquished.
  bool dying_locked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return dying_;
  }
  void set_dying_locked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { dying_ = true; }

  // Makes a free frame the domain's: owner, allocation reference, list slot.
  // REQUIRES: the frame came from the allocator and is held by the caller.
  void AdoptFrameLocked(const FrameTable& table, Mfn mfn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes the frame away from the domain: drops the allocation reference and
  // marks it retiring. REQUIRES: owned, count 1, type count 0, not pinned.
  void ReleaseFrameLocked(const FrameTable& table, Mfn mfn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

 private:
  const DomainId id_;
  const std::string name_;
  const uint32_t vcpus_;
  const uint64_t max_pages_;
  std::atomic<uint8_t> flush_policy_;  // Written under mu_.

  mutable Mutex mu_;
  // Owned frames; PageInfo::link of each is its index here.
  std::vector<Mfn> owned_ ABSL_GUARDED_BY(mu_);
  std::optional<Mfn> root_ ABSL_GUARDED_BY(mu_);
  bool dying_ ABSL_GUARDED_BY(mu_) = false;
  // Written under mu_, read locklessly (EncodeBasePointer).
  const std::unique_ptr<std::atomic<uint64_t>[]> base_pointers_;
  std::atomic<uint64_t> dirty_[kMaxPcpus / 64] = {};
};

}  // namespace hvmm

#endif  // HVMM_MM_DOMAIN_H_
