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
constexpr uint64_t kRo = kPtePresent | kPteUser;

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
    guest.on_violation = [raw](ViolationKind kind, const Domain& domain,
                               Mfn) {
      const Policy p = raw->engine_->policy().PolicyFor(domain);
      raw->violations_[static_cast<int>(kind)][static_cast<int>(p)].fetch_add(
          1, std::memory_order_relaxed);
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
  Slot slot;
  slot.id = *id;
  slot.root = *mm_->GetDomainInfo(*id)->root;
  slot.scratch_l1 = (*scratch)[0];
  slots_[i] = std::move(slot);
  WorkloadConfig w;
  w.ranges = {{Vaddr(kWindowBase), options_.window_pages}};
  run_queue_.AddDomain(mm_->FindDomain(*id), w,
                       options_.seed * 7919 + slot_generation_);
  for (Pcpu* p : engine_->pcpus()) p->Kick();
  return absl::OkStatus();
}

bool TortureRig::CountPoolEmpty(const absl::Status& s) {
  if (s.code() == absl::StatusCode::kResourceExhausted &&
      s.message().find("pool") != std::string::npos) {
    stats_.pool_empty.fetch_add(1);
  }
  return s.ok();
}

const char* OpName(Op op) {
  static const char* const kNames[kOpCount] = {
      "map",           "unmap",           "unhook",
      "retype-lagged", "unhook+retype",   "writable->table",
      "table-ro",      "pin-retype",      "base-pointer",
      "decrease-former", "alloc",         "recreate",
      "set-policy",      "flush"};
  return kNames[static_cast<int>(op)];
}

namespace {

// Percent of Step() calls per Op, in Op order (sums to 100).
constexpr int kOpWeights[kOpCount] = {34, 28, 6, 4, 5, 4, 4, 3, 3, 2, 4, 1,
                                      1, 1};

constexpr Policy kSafePolicies[] = {Policy::kIpi, Policy::kAssistedForceIpi,
                                    Policy::kAssistedRcu};

Op PickOp(std::mt19937_64& rng) {
  int r = static_cast<int>(rng() % 100);
  for (int i = 0; i < kOpCount; ++i) {
    if ((r -= kOpWeights[i]) < 0) return static_cast<Op>(i);
  }
  return Op::kMap;
}

// The walk through `va` under the domain's lock, if it reaches a data page.
std::optional<WalkResult> MappedWalk(MemoryManager& mm, DomainId d, Vaddr va,
                                     Access access = Access::kRead) {
  absl::StatusOr<WalkResult> w = mm.Walk(d, VcpuId(0), va, access);
  if (!w.ok() || !w->ok() || w->tables_read != 4) return std::nullopt;
  return *w;
}

}  // namespace

std::vector<Mfn> TortureRig::EntryTargets(Mfn table) const {
  std::vector<Mfn> out;
  for (uint32_t i = 0; i < kEntriesPerTable; ++i) {
    const uint64_t e = mm_->frame_table().entries(table)[i].load();
    if (PtePresent(e)) out.push_back(PteMfn(e));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

bool TortureRig::Unhook(Slot& slot, Vaddr va) {
  std::optional<WalkResult> w = MappedWalk(*mm_, slot.id, va);
  if (!w) return false;
  const Mfn l2 = w->tables[2], l1 = w->tables[3];
  // One batch: clear the table's entries, then unhook it.
  std::vector<EntryUpdate> batch;
  for (uint32_t i = 0; i < kEntriesPerTable; ++i) {
    if (PtePresent(mm_->frame_table().entries(l1)[i].load())) {
      batch.push_back({l1, i, 0});
    }
  }
  const std::vector<Mfn> data = EntryTargets(l1);
  batch.push_back({l2, va.TableIndex(Level::kL2), 0});
  if (!mm_->MmuUpdate(slot.id, batch).ok()) return false;
  // Data frames mapped only here are now unreferenced; others refuse.
  for (Mfn m : data) (void)mm_->DecreaseReservation(slot.id, {m});
  slot.released.push_back(l1);
  return true;
}

std::optional<Mfn> TortureRig::PopAged(Slot& slot) {
  if (slot.released.size() <= static_cast<size_t>(options_.retype_lag)) {
    return std::nullopt;
  }
  const Mfn t = slot.released.front();
  slot.released.pop_front();
  return t;
}

bool TortureRig::RetypeLagged(Slot& slot) {
  const std::optional<Mfn> aged = PopAged(slot);
  if (!aged) return false;
  const Mfn old = *aged;
  const bool retyped =
      mm_->MmuUpdate(slot.id, {{slot.scratch_l1, 0, MakePte(old, kRw)}}).ok();
  if (retyped) {
    stats_.retypes.fetch_add(1);
    (void)mm_->MmuUpdate(slot.id, {{slot.scratch_l1, 0, 0}});
  }
  (void)mm_->DecreaseReservation(slot.id, {old});
  return retyped;
}

bool TortureRig::UnhookAndRetype(Slot& slot, Vaddr va) {
  std::optional<WalkResult> w = MappedWalk(*mm_, slot.id, va);
  if (!w) return false;
  const Mfn l2 = w->tables[2], l1 = w->tables[3];
  const std::vector<Mfn> data = EntryTargets(l1);
  // ONE batch: unhook the table, and map it writable (a retype).
  if (!mm_->MmuUpdate(slot.id, {{l2, va.TableIndex(Level::kL2), 0},
                                {slot.scratch_l1, 0, MakePte(l1, kRw)}})
           .ok()) {
    return false;
  }
  stats_.retypes.fetch_add(1);
  (void)mm_->MmuUpdate(slot.id, {{slot.scratch_l1, 0, 0}});
  for (Mfn m : data) (void)mm_->DecreaseReservation(slot.id, {m});
  (void)mm_->DecreaseReservation(slot.id, {l1});
  return true;
}

bool TortureRig::WritableToTable(Slot& slot, Vaddr va) {
  std::optional<WalkResult> w = MappedWalk(*mm_, slot.id, va, Access::kWrite);
  if (!w) return false;
  const Mfn l2 = w->tables[2], l1 = w->tables[3], page = w->mfn;
  // An empty L2 slot: in the window if one is free (walkers then walk the
  // new table), else just above it.
  const uint32_t first = Vaddr(kWindowBase).TableIndex(Level::kL2);
  const uint32_t window_slots =
      static_cast<uint32_t>((options_.window_pages + 511) / 512);
  std::optional<uint32_t> k;
  for (uint32_t i = first; i < first + window_slots + 8 && !k; ++i) {
    if (!PtePresent(mm_->frame_table().entries(l2)[i].load())) k = i;
  }
  if (!k) return false;
  // ONE batch: drop the writable mapping, hook the page in as an L1.
  return mm_->MmuUpdate(slot.id, {{l1, va.TableIndex(Level::kL1), 0},
                                  {l2, *k, MakePte(page, kRw)}})
      .ok();
}

bool TortureRig::TableReadOnly(Slot& slot, Vaddr va, Vaddr other) {
  std::optional<WalkResult> w = MappedWalk(*mm_, slot.id, va);
  std::optional<WalkResult> o = MappedWalk(*mm_, slot.id, other);
  if (!w || !o) return false;
  const Mfn l1 = w->tables[3], target = o->tables[3];
  for (uint32_t i = 0; i < kEntriesPerTable; ++i) {
    const uint32_t j = (va.TableIndex(Level::kL1) + i) % kEntriesPerTable;
    if (PtePresent(mm_->frame_table().entries(l1)[j].load())) continue;
    return mm_->MmuUpdate(slot.id, {{l1, j, MakePte(target, kRo)}}).ok();
  }
  return false;
}

bool TortureRig::PinRetype(Slot& slot, std::mt19937_64& rng) {
  if (slot.released.empty()) return false;
  const Mfn t = slot.released.back();
  const Level level = static_cast<Level>(1 + rng() % 3);
  const PageType before = mm_->InspectFrame(t)->type;
  if (!mm_->PinTable(slot.id, t, level).ok()) return false;
  if (before != TableTypeFor(level)) stats_.retypes.fetch_add(1);
  return mm_->UnpinTable(slot.id, t).ok();
}

bool TortureRig::BasePointer(Slot& slot) {
  const VcpuId v(options_.vcpus - 1);
  if (slot.alt_root) {
    // Back to the domain's root; the alternate one leaves as a table.
    const Mfn alt = *slot.alt_root;
    if (!mm_->SetBasePointer(slot.id, v, slot.root).ok()) return false;
    slot.alt_root.reset();
    return mm_->DecreaseReservation(slot.id, {alt}).ok();
  }
  absl::StatusOr<std::vector<Mfn>> f = mm_->IncreaseReservation(slot.id, 1);
  if (!CountPoolEmpty(f.status())) return false;
  const Mfn alt = (*f)[0];
  std::vector<EntryUpdate> copy;
  for (uint32_t i = 0; i < kEntriesPerTable; ++i) {
    const uint64_t e = mm_->frame_table().entries(slot.root)[i].load();
    if (PtePresent(e)) copy.push_back({alt, i, e});
  }
  if (!mm_->PinTable(slot.id, alt, Level::kL4).ok() ||
      (!copy.empty() && !mm_->MmuUpdate(slot.id, copy).ok()) ||
      !mm_->SetBasePointer(slot.id, v, alt).ok()) {
    (void)mm_->UnpinTable(slot.id, alt);
    (void)mm_->DecreaseReservation(slot.id, {alt});
    return false;
  }
  (void)mm_->UnpinTable(slot.id, alt);  // The base pointer holds it now.
  slot.alt_root = alt;
  return true;
}

bool TortureRig::DecreaseFormer(Slot& slot) {
  const std::optional<Mfn> aged = PopAged(slot);
  return aged && mm_->DecreaseReservation(slot.id, {*aged}).ok();
}

bool TortureRig::SetPolicy(int i, std::mt19937_64& rng) {
  // Violations are counted by the policy a domain runs when they happen; a
  // domain configured safe therefore never runs assisted-unsafe.
  const Policy target = SlotPolicy(i) == Policy::kAssistedUnsafe
                            ? Policy::kAssistedUnsafe
                            : kSafePolicies[rng() % 3];
  absl::StatusOr<uint8_t> tag = engine_->policy().OverrideTag(target);
  if (!tag.ok() || !mm_->SetFlushPolicy(slots_[i].id, *tag).ok()) return false;
  MutexLock lock(&policies_mu_);
  domain_policy_[slots_[i].id.value()] = target;
  return true;
}

absl::Status TortureRig::Step(absl::Span<const int> mine,
                              std::mt19937_64& rng) {
  const uint64_t window = options_.window_pages;
  const int i = mine[rng() % mine.size()];
  Slot& slot = slots_[i];
  auto random_va = [&] {
    return Vaddr(kWindowBase + (rng() % window) * kPageSize);
  };
  const Vaddr va = random_va();
  const uint64_t room = window - (va.value() - kWindowBase) / kPageSize;
  const Op op = PickOp(rng);
  bool done = false;
  switch (op) {
    case Op::kMap:
      done = CountPoolEmpty(mm_->MapRange(slot.id, va,
                                          std::min<uint64_t>(room, 1 + rng() % 32),
                                          rng() % 4 != 0)
                                .status());
      break;
    case Op::kUnmap:
      done = mm_->UnmapRange(slot.id, va,
                             std::min<uint64_t>(room, 1 + rng() % 96))
                 .ok();
      break;
    case Op::kUnhook:
      // Half the window is mapped at best: a few tries find a table.
      for (int tries = 0; tries < 4 && !done; ++tries) {
        done = Unhook(slot, tries == 0 ? va : random_va());
      }
      break;
    case Op::kRetypeLagged:
      done = RetypeLagged(slot);
      break;
    case Op::kUnhookAndRetype:
      done = UnhookAndRetype(slot, va);
      break;
    case Op::kWritableToTable:
      done = WritableToTable(slot, va);
      break;
    case Op::kTableReadOnly:
      done = TableReadOnly(slot, va, random_va());
      break;
    case Op::kPinRetype:
      done = PinRetype(slot, rng);
      break;
    case Op::kBasePointer:
      done = BasePointer(slot);
      break;
    case Op::kDecreaseFormer:
      done = DecreaseFormer(slot);
      break;
    case Op::kAlloc: {
      absl::StatusOr<std::vector<Mfn>> f =
          mm_->IncreaseReservation(slot.id, 1 + rng() % 4);
      done = CountPoolEmpty(f.status());
      if (done) (void)mm_->DecreaseReservation(slot.id, *f);
      break;
    }
    case Op::kSetPolicy:
      done = SetPolicy(i, rng);
      break;
    case Op::kFlush: {
      const std::shared_ptr<Domain> d = mm_->FindDomain(slot.id);
      if (d == nullptr) break;
      (void)engine_->policy().ExplicitFlush(
          *d, rng() % 2 ? FlushScope::Domain(slot.id)
                        : FlushScope::Range(slot.id, va, 1 + rng() % 16));
      done = true;
      break;
    }
    case Op::kRecreate:
      run_queue_.RemoveDomain(slot.id);
      if (absl::Status s = mm_->DestroyDomain(slot.id); !s.ok()) {
        return absl::InternalError(
            absl::StrCat("destroy failed: ", s.message()));
      }
      if (absl::Status s = CreateSlot(i); !s.ok()) {
        return absl::InternalError(
            absl::StrCat("re-create failed: ", s.message()));
      }
      done = true;
      break;
  }
  (done ? stats_.done : stats_.skipped)[static_cast<int>(op)].fetch_add(1);
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

GuestCpuStats TortureRig::LiveGuestStats() const {
  GuestCpuStats s;
  for (const auto& g : guests_) s.Add(g->stats());
  return s;
}

uint64_t TortureRig::LiveViolations() const {
  uint64_t n = 0;
  for (const auto& g : guests_) {
    const GuestCpuStats s = g->stats();
    n += s.existence_violations + s.coherence_violations;
  }
  return n;
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
  // Safe domains move among the safe policies (Op::kSetPolicy).
  if (std::any_of(used.begin(), used.end(),
                  [](Policy p) { return p != Policy::kAssistedUnsafe; })) {
    for (Policy p : kSafePolicies) {
      if (std::find(used.begin(), used.end(), p) == used.end()) {
        used.push_back(p);
      }
    }
  }
  std::string out;
  for (Policy p : used) {
    absl::StrAppend(&out, out.empty() ? "" : "  ", PolicyName(p), " ",
                    Violations(ViolationKind::kExistence, p) +
                        Violations(ViolationKind::kCoherence, p));
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
