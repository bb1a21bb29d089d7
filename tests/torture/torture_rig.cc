#include "tests/torture/torture_rig.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "flush/flush_backends.h"
#include "mm/pte.h"

namespace hvmm {
namespace {

constexpr uint64_t kWindowBase = uint64_t{1} << 30;
constexpr uint64_t kRw = kPtePresent | kPteUser | kPteWritable;

// The failpoint: a walker that holds a pointer to a table, its generation
// recorded, stalls before reading it (the seed bug's window, and only it).
void SpinHook(void* arg, WalkPoint point, Level level) {
  if (point == WalkPoint::kTableReached) {
    SpinFor(*static_cast<const uint64_t*>(arg));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<TortureRig>> TortureRig::Create(
    const TortureOptions& options) {
  if (options.domains < 1 || options.vcpus < 1 || options.window_pages < 16 ||
      options.tlb_clock_start < 1) {
    return absl::InvalidArgumentError(
        "domains and vcpus must be >= 1, the window >= 16 pages and the TLB "
        "clock start >= 1");
  }
  std::unique_ptr<TortureRig> rig(new TortureRig(options));
  absl::StatusOr<std::unique_ptr<MemoryManager>> mm =
      MemoryManager::Create({options.frames, 0, options.tlb_clock_start});
  if (!mm.ok()) return mm.status();
  rig->mm_ = *std::move(mm);

  FlushEngine::Options engine;
  engine.policy = options.policy;
  engine.allow_unsafe = options.allow_unsafe;
  engine.pcpus = options.pcpus;
  engine.assisted = {options.hypercall_ns, 100};
  engine.deferred = {4096};
  absl::StatusOr<std::unique_ptr<FlushEngine>> e =
      FlushEngine::Create(rig->mm_.get(), engine);
  if (!e.ok()) return e.status();
  rig->engine_ = *std::move(e);
  for (Policy p : options.domain_policies) {
    if (absl::StatusOr<uint8_t> tag = rig->engine_->policy().OverrideTag(p);
        !tag.ok()) {
      return tag.status();
    }
  }

  TortureRig* raw = rig.get();
  for (size_t i = 0; i < rig->engine_->pcpus().size(); ++i) {
    GuestCpu::Options guest;
    guest.slice_accesses = 64;
    if (options.walk_delay_ns != 0) {
      guest.walk_hooks = {&SpinHook, &rig->walk_delay_ns_};
    }
    guest.release_stamps = &rig->engine_->policy().release_stamps();
    guest.on_violation = [raw](ViolationKind, const Domain& domain, Mfn) {
      const Policy p = raw->engine_->policy().PolicyFor(domain);
      raw->violations_by_policy_[static_cast<int>(p)].fetch_add(1);
    };
    rig->guests_.push_back(std::make_unique<GuestCpu>(
        &rig->mm_->frame_table(), &rig->run_queue_, std::move(guest)));
  }
  rig->engine_->Start([raw](int cpu) {
    GuestCpu* g = raw->guests_[cpu].get();
    return [g](Pcpu& self) { return g->Step(self); };
  });
  // Domains after the pCPUs: creating them already flushes (by IPI under
  // some policies), which only running pCPUs can acknowledge.
  rig->slots_.resize(options.domains);
  for (int i = 0; i < options.domains; ++i) {
    if (absl::Status s = rig->CreateSlot(i); !s.ok()) return s;
  }
  return rig;
}

TortureRig::TortureRig(const TortureOptions& options)
    : options_(options), walk_delay_ns_(options.walk_delay_ns) {}

TortureRig::~TortureRig() { (void)Finish(); }

Policy TortureRig::SlotPolicy(int i) const {
  return options_.domain_policies.empty()
             ? options_.policy
             : options_.domain_policies[i % options_.domain_policies.size()];
}

absl::Status TortureRig::CreateSlot(int i) {
  const std::string name = absl::StrCat("t", i, "_", slot_generation_++);
  uint8_t tag = 0;
  if (!options_.domain_policies.empty()) {
    absl::StatusOr<uint8_t> t = engine_->policy().OverrideTag(SlotPolicy(i));
    if (!t.ok()) return t.status();
    tag = *t;
  }
  absl::StatusOr<DomainId> id = mm_->CreateDomain(
      {name, options_.vcpus, options_.window_pages * 2 + 64, tag});
  if (!id.ok()) return id.status();
  {
    MutexLock lock(&policies_mu_);
    domain_policy_[id->value()] = SlotPolicy(i);
  }
  absl::StatusOr<std::vector<Mfn>> scratch = mm_->IncreaseReservation(*id, 1);
  if (!scratch.ok()) return scratch.status();
  if (absl::Status s = mm_->PinTable(*id, (*scratch)[0], Level::kL1); !s.ok()) {
    return s;
  }
  (void)mm_->MapRange(*id, Vaddr(kWindowBase), options_.window_pages / 2, true);
  slots_[i] = Slot{*id, (*scratch)[0], {}};
  WorkloadConfig w;
  w.ranges = {{Vaddr(kWindowBase), options_.window_pages}};
  run_queue_.AddDomain(mm_->FindDomain(*id), w,
                       options_.seed * 7919 + slot_generation_);
  return absl::OkStatus();
}

void TortureRig::CountPoolEmpty(const absl::Status& s) {
  if (s.code() == absl::StatusCode::kResourceExhausted &&
      s.message().find("pool") != std::string::npos) {
    stats_.pool_empty.fetch_add(1);
  }
}

void TortureRig::Retype(Slot& slot, Vaddr va) {
  absl::StatusOr<WalkResult> w =
      mm_->Walk(slot.id, VcpuId(0), va, Access::kRead);
  if (w.ok() && w->tables_read == 4) {
    const Mfn l2 = w->tables[2], l1 = w->tables[3];
    std::vector<Mfn> data;
    for (uint32_t i = 0; i < kEntriesPerTable; ++i) {
      const uint64_t e = mm_->frame_table().entries(l1)[i].load();
      if (PtePresent(e)) data.push_back(PteMfn(e));
    }
    if (mm_->MmuUpdate(slot.id, {{l2, va.TableIndex(Level::kL2), 0}}).ok()) {
      std::sort(data.begin(), data.end());
      data.erase(std::unique(data.begin(), data.end()), data.end());
      (void)mm_->DecreaseReservation(slot.id, data);
      slot.released_l1s.push_back(l1);
    }
  }
  if (slot.released_l1s.size() <= static_cast<size_t>(options_.retype_lag)) {
    return;
  }
  const Mfn old = slot.released_l1s.front();
  slot.released_l1s.pop_front();
  if (mm_->MmuUpdate(slot.id, {{slot.scratch_l1, 0, MakePte(old, kRw)}}).ok()) {
    stats_.retypes.fetch_add(1);
    (void)mm_->MmuUpdate(slot.id, {{slot.scratch_l1, 0, 0}});
  }
  (void)mm_->DecreaseReservation(slot.id, {old});
}

absl::Status TortureRig::Step(absl::Span<const int> mine,
                              std::mt19937_64& rng) {
  const uint64_t window = options_.window_pages;
  const int i = mine[rng() % mine.size()];
  Slot& slot = slots_[i];
  const Vaddr va(kWindowBase + (rng() % window) * kPageSize);
  const uint64_t room = window - (va.value() - kWindowBase) / kPageSize;
  const int dice = static_cast<int>(rng() % 100);
  if (dice < 45) {
    CountPoolEmpty(mm_->MapRange(slot.id, va,
                                 std::min<uint64_t>(room, 1 + rng() % 32),
                                 rng() % 4 != 0)
                       .status());
    stats_.maps.fetch_add(1);
  } else if (dice < 85) {
    (void)mm_->UnmapRange(slot.id, va, std::min<uint64_t>(room, 1 + rng() % 96));
    stats_.unmaps.fetch_add(1);
  } else if (dice < 95) {
    Retype(slot, va);
  } else if (dice < 99) {
    absl::StatusOr<std::vector<Mfn>> f =
        mm_->IncreaseReservation(slot.id, 1 + rng() % 4);
    CountPoolEmpty(f.status());
    if (f.ok()) (void)mm_->DecreaseReservation(slot.id, *f);
    stats_.allocs.fetch_add(1);
  } else {
    run_queue_.RemoveDomain(slot.id);
    if (absl::Status s = mm_->DestroyDomain(slot.id); !s.ok()) {
      return absl::InternalError(absl::StrCat("destroy failed: ", s.message()));
    }
    if (absl::Status s = CreateSlot(i); !s.ok()) {
      return absl::InternalError(absl::StrCat("re-create failed: ", s.message()));
    }
    stats_.recreates.fetch_add(1);
  }
  stats_.ops.fetch_add(1);
  return absl::OkStatus();
}

absl::Status TortureRig::Finish() {
  if (finished_ || engine_ == nullptr) return absl::OkStatus();
  finished_ = true;
  absl::Status status;
  for (Slot& s : slots_) {
    if (!s.id.valid()) continue;
    run_queue_.RemoveDomain(s.id);
    if (absl::Status d = mm_->DestroyDomain(s.id); !d.ok() && status.ok()) {
      status = absl::InternalError(
          absl::StrCat("final destroy failed: ", d.message()));
    }
  }
  engine_->Stop();
  for (const auto& g : guests_) guest_totals_.Add(g->stats());
  guests_.clear();
  return status;
}

uint64_t TortureRig::LeakedFrames() {
  return mm_->frame_table().frame_count() - mm_->allocator().free_frames() -
         engine_->deferred_retirer().pending_frames();
}

std::string TortureRig::PolicyLabel() const {
  std::string label = PolicyName(options_.policy);
  if (options_.domain_policies.empty()) return label;
  absl::StrAppend(&label, " (domains:");
  for (size_t i = 0; i < options_.domain_policies.size(); ++i) {
    absl::StrAppend(&label, i ? "," : " ",
                    PolicyName(options_.domain_policies[i]));
  }
  return label + ")";
}

std::string TortureRig::ViolationsByPolicy() const {
  std::vector<Policy> used = {options_.policy};
  for (Policy p : options_.domain_policies) {
    if (std::find(used.begin(), used.end(), p) == used.end()) used.push_back(p);
  }
  std::string out;
  for (Policy p : used) {
    absl::StrAppend(&out, out.empty() ? "" : "  ", PolicyName(p), " ",
                    violations_by_policy_[static_cast<int>(p)].load());
  }
  return out;
}

const char* TortureRig::PolicyOf(uint32_t domain) {
  if (domain == 0) return "none";
  MutexLock lock(&policies_mu_);
  auto it = domain_policy_.find(domain);
  return it == domain_policy_.end() ? "?" : PolicyName(it->second);
}

}  // namespace hvmm
