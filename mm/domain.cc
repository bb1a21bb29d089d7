#include "mm/domain.h"

#include <utility>

#include "base/check.h"

namespace hvmm {

Domain::Domain(DomainId id, std::string name, uint32_t vcpus,
               uint64_t max_pages, uint8_t flush_policy)
    : id_(id),
      name_(std::move(name)),
      vcpus_(vcpus),
      max_pages_(max_pages),
      flush_policy_(flush_policy),
      base_pointers_(new std::atomic<uint64_t>[vcpus]) {
  HVMM_CHECK(id.valid() && vcpus >= 1 && vcpus <= kMaxVcpus);
  for (uint32_t v = 0; v < vcpus; ++v) base_pointers_[v].store(0);
}

void Domain::AdoptFrameLocked(const FrameTable& table, Mfn mfn) {
  PageInfo& info = table.info(mfn);
  HVMM_CHECK(info.owner.load(std::memory_order_relaxed) == 0 &&
             info.count == 0 && info.type_count == 0 && info.flags == 0)
      << mfn << " adopted while in use";
  // Release: a lockless reader that sees the new owner also sees the
  // generation bump of the frame's last free.
  info.owner.store(id_.value(), std::memory_order_release);
  info.count = 1;
  info.set(kPageAllocated);
  info.link = static_cast<uint32_t>(owned_.size());
  owned_.push_back(mfn);
}

void Domain::ReleaseFrameLocked(const FrameTable& table, Mfn mfn) {
  PageInfo& info = table.info(mfn);
  HVMM_CHECK(info.owner.load(std::memory_order_relaxed) == id_.value())
      << mfn << " released by a domain that does not own it";
  HVMM_CHECK(info.count == 1 && info.type_count == 0 &&
             !info.has(kPagePinned))
      << mfn << " released with count " << info.count << " type count "
      << info.type_count;
  // Swap-remove from the owned list, keeping the moved frame's slot current.
  const uint32_t slot = info.link;
  HVMM_CHECK(slot < owned_.size() && owned_[slot] == mfn);
  const Mfn last = owned_.back();
  owned_[slot] = last;
  table.info(last).link = slot;
  owned_.pop_back();

  info.owner.store(0, std::memory_order_relaxed);
  info.count = 0;
  info.link = 0;
  info.clear(kPageAllocated);
  info.clear(kPageValidated);
  info.set(kPageRetiring);
}

}  // namespace hvmm
