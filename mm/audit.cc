#include "mm/audit.h"

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "mm/pte.h"

namespace hvmm {
namespace {

enum class Place : uint8_t { kUnseen, kFree, kRetiring, kOwned };

class Auditor {
 public:
  Auditor(const FrameTable& table, const std::vector<const Domain*>& domains)
      : table_(table),
        domains_(domains),
        place_(table.frame_count(), Place::kUnseen) {}

  absl::Status Run(const FrameAllocator& allocator,
                   const FrameRetirer& retirer) {
    uint64_t free_counted = 0;
    retirer.ForEachPending([&](Mfn m) { See(m, Place::kRetiring); }, [&] {
      free_counted =
          allocator.ForEachFreeFrame([&](Mfn m) { See(m, Place::kFree); });
    });
    for (const Domain* d : domains_) CheckDomainFrames(*d);
    for (uint64_t m = 0; m < table_.frame_count(); ++m) {
      if (place_[m] == Place::kUnseen) {
        Fail(absl::StrFormat("mfn 0x%x is neither free, retiring nor owned", m));
      }
    }
    if (free_seen_ != free_counted) {
      Fail(absl::StrFormat("allocator counts %u free frames but lists %u",
                           free_counted, free_seen_));
    }
    for (const Domain* d : domains_) CheckDomainCounts(*d);
    if (problems_.empty()) return absl::OkStatus();
    return absl::InternalError(absl::StrCat(
        "audit failed (", problem_count_, " problem(s)): ",
        absl::StrJoin(problems_, "; ")));
  }

 private:
  void Fail(std::string problem) {
    ++problem_count_;
    if (problems_.size() < 10) problems_.push_back(std::move(problem));
  }

  void See(Mfn mfn, Place place) {
    if (!table_.Contains(mfn)) {
      Fail(absl::StrFormat("listed mfn 0x%x is beyond the table", mfn.value()));
      return;
    }
    Place& p = place_[mfn.value()];
    if (p != Place::kUnseen) {
      Fail(absl::StrFormat("mfn 0x%x is in two places", mfn.value()));
      return;
    }
    p = place;
    if (place == Place::kOwned) return;
    if (place == Place::kFree) ++free_seen_;
    const PageInfo& info = table_.info(mfn);
    const uint8_t allowed_flags =
        place == Place::kFree ? kPageNeedScrub : (kPageNeedScrub | kPageRetiring);
    if (info.owner.load(std::memory_order_relaxed) != 0 || info.count != 0 ||
        info.type_count != 0 || (info.flags & ~allowed_flags) != 0) {
      Fail(absl::StrFormat(
          "%s mfn 0x%x has owner %u count %u type count %u flags 0x%x",
          place == Place::kFree ? "free" : "retiring", mfn.value(),
          info.owner.load(std::memory_order_relaxed), info.count,
          info.type_count, info.flags));
    }
    if (place == Place::kRetiring && !info.has(kPageRetiring)) {
      Fail(absl::StrFormat("retiring mfn 0x%x lacks the retiring flag",
                           mfn.value()));
    }
  }

  void CheckDomainFrames(const Domain& d) {
    d.mu().AssertHeld();  // The audit holds every domain's lock.
    const std::vector<Mfn>& owned = d.owned_frames_locked();
    if (owned.size() > d.max_pages()) {
      Fail(absl::StrFormat("domain %u owns %u frames over max_pages %u",
                           d.id().value(), owned.size(), d.max_pages()));
    }
    for (uint32_t i = 0; i < owned.size(); ++i) {
      const Mfn mfn = owned[i];
      See(mfn, Place::kOwned);
      if (!table_.Contains(mfn)) continue;
      const PageInfo& info = table_.info(mfn);
      if (info.owner.load(std::memory_order_relaxed) != d.id().value() ||
          !info.has(kPageAllocated) || info.link != i ||
          info.has(kPageRetiring)) {
        Fail(absl::StrFormat(
            "domain %u lists mfn 0x%x but it has owner %u flags 0x%x slot %u",
            d.id().value(), mfn.value(),
            info.owner.load(std::memory_order_relaxed), info.flags, info.link));
      }
    }
  }

  // Recomputes every count of the domain's frames from its references.
  void CheckDomainCounts(const Domain& d) {
    d.mu().AssertHeld();  // The audit holds every domain's lock.
    const uint32_t id = d.id().value();
    absl::flat_hash_map<uint64_t, std::pair<uint32_t, uint32_t>> expected;
    for (Mfn mfn : d.owned_frames_locked()) expected[mfn.value()] = {1, 0};
    auto ref = [&](Mfn target, bool typed, PageType needed,
                   const std::string& holder) {
      auto it = expected.find(target.value());
      if (it == expected.end()) {
        Fail(absl::StrFormat("%s of domain %u references mfn 0x%x it does "
                             "not own", holder, id, target.value()));
        return;
      }
      ++it->second.first;
      if (!typed) return;
      ++it->second.second;
      const PageInfo& t = table_.info(target);
      if (t.type != needed) {
        Fail(absl::StrFormat("%s needs mfn 0x%x as %s but it is %s", holder,
                             target.value(), PageTypeName(needed),
                             PageTypeName(t.type)));
      } else if (IsPageTableType(needed) && !t.has(kPageValidated)) {
        Fail(absl::StrFormat("%s references unvalidated table mfn 0x%x",
                             holder, target.value()));
      }
    };
    for (uint32_t v = 0; v < d.vcpus(); ++v) {
      if (std::optional<Mfn> root = d.base_pointer(VcpuId(v))) {
        ref(*root, true, PageType::kL4, absl::StrCat("base pointer of vCPU ", v));
      }
    }
    for (Mfn mfn : d.owned_frames_locked()) {
      const PageInfo& info = table_.info(mfn);
      if (info.has(kPagePinned)) {
        if (!IsPageTableType(info.type)) {
          Fail(absl::StrFormat("pinned mfn 0x%x is not a page table (%s)",
                               mfn.value(), PageTypeName(info.type)));
        }
        ref(mfn, true, info.type, absl::StrFormat("pin of 0x%x", mfn.value()));
      }
      if (!IsPageTableType(info.type)) continue;
      if (info.type_count == 0) {
        if (info.has(kPageValidated)) {
          Fail(absl::StrFormat("mfn 0x%x is validated with type count 0",
                               mfn.value()));
        }
        continue;
      }
      if (!info.has(kPageValidated)) {
        Fail(absl::StrFormat("table mfn 0x%x in use but not validated",
                             mfn.value()));
        continue;
      }
      const Level level = LevelOf(info.type);
      const std::atomic<uint64_t>* entries = table_.entries(mfn);
      for (uint32_t i = 0; i < kEntriesPerTable; ++i) {
        const uint64_t e = entries[i].load(std::memory_order_relaxed);
        if (!PtePresent(e)) continue;
        const std::string holder =
            absl::StrFormat("entry 0x%x[%u] (%s)", mfn.value(), i,
                            PageTypeName(info.type));
        if (!PteFlagsLegal(e) || (e & kPteLarge) != 0 ||
            !table_.Contains(PteMfn(e))) {
          Fail(absl::StrFormat("%s is illegal: 0x%016x", holder, e));
          continue;
        }
        if (level == Level::kL1) {
          ref(PteMfn(e), PteWritable(e), PageType::kWritable, holder);
        } else {
          ref(PteMfn(e), true, TableTypeFor(LowerLevel(level)), holder);
        }
      }
    }
    for (const auto& [raw, counts] : expected) {
      const PageInfo& info = table_.info(Mfn(raw));
      if (info.count != counts.first || info.type_count != counts.second) {
        Fail(absl::StrFormat(
            "mfn 0x%x (%s) of domain %u has count %u type count %u; its "
            "references add up to %u and %u",
            raw, PageTypeName(info.type), id, info.count, info.type_count,
            counts.first, counts.second));
      }
    }
  }

  const FrameTable& table_;
  const std::vector<const Domain*>& domains_;
  std::vector<Place> place_;
  uint64_t free_seen_ = 0;
  uint64_t problem_count_ = 0;
  std::vector<std::string> problems_;
};

}  // namespace

absl::Status AuditLocked(const FrameTable& table,
                         const FrameAllocator& allocator,
                         const FrameRetirer& retirer,
                         const std::vector<const Domain*>& domains) {
  return Auditor(table, domains).Run(allocator, retirer);
}

}  // namespace hvmm
