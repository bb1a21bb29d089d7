#include "guest/churn.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "mm/pte.h"

namespace hvmm {
namespace {

constexpr uint64_t kWindowBase = uint64_t{1} << 30;
constexpr uint64_t kRw = kPtePresent | kPteUser | kPteWritable;
constexpr uint64_t kRo = kPtePresent | kPteUser;

}  // namespace

Churn::Churn(ChurnHost* host, MemoryManager* mm, FlushPolicy* policy,
             ChurnOptions options)
    : host_(host), mm_(mm), policy_(policy), options_(std::move(options)) {
  HVMM_CHECK(!options_.policies.empty()) << "a churn needs a policy";
  slots_.resize(options_.domains);
}

Churn::~Churn() { (void)DestroyDomains(); }

Policy Churn::SlotPolicy(int i) const {
  return options_.policies[i % options_.policies.size()];
}

absl::Status Churn::CreateDomains() {
  if (options_.domains < 1 || options_.vcpus < 1 ||
      options_.window_pages < 16) {
    return absl::InvalidArgumentError(
        "domains and vcpus must be >= 1 and the window >= 16 pages");
  }
  for (int i = 0; i < domains(); ++i) {
    if (absl::Status s = CreateSlot(i); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status Churn::CreateSlot(int i) {
  const std::string name =
      absl::StrCat(options_.name_prefix, i, "_", slot_generation_++);
  absl::StatusOr<DomainId> id = host_->CreateDomain(
      name, options_.vcpus, options_.window_pages * 2 + 64, SlotPolicy(i));
  if (!id.ok()) return id.status();
  {
    MutexLock lock(&policies_mu_);
    domain_policy_[id->value()] = SlotPolicy(i);
  }
  Slot slot;
  slot.id = *id;
  slots_[i] = slot;  // Recorded first: DestroyDomains() finds it.
  absl::StatusOr<std::vector<Mfn>> scratch = mm_->IncreaseReservation(*id, 1);
  if (!scratch.ok()) return scratch.status();
  if (absl::Status s = mm_->PinTable(*id, (*scratch)[0], Level::kL1); !s.ok()) {
    return s;
  }
  // Half the window; a refusal (a full pool) leaves less mapped, which
  // the operations cope with.
  (void)mm_->MapRange(*id, Vaddr(kWindowBase), options_.window_pages / 2, true);
  // Another thread (a client of the daemon the demo runs in) may have
  // destroyed the domain meanwhile.
  absl::StatusOr<DomainInfo> info = mm_->GetDomainInfo(*id);
  if (!info.ok()) return info.status();
  if (!info->root.has_value()) {
    return absl::FailedPreconditionError(
        absl::StrCat("domain ", id->value(), " has no root table"));
  }
  slot.root = *info->root;
  slot.scratch_l1 = (*scratch)[0];
  slots_[i] = std::move(slot);
  WorkloadConfig w;
  w.ranges = {{Vaddr(kWindowBase), options_.window_pages}};
  return host_->StartGuests(*id, w, options_.seed * 7919 + slot_generation_);
}

absl::Status Churn::DestroyDomains() {
  absl::Status status;
  for (Slot& s : slots_) {
    if (!s.id.valid()) continue;
    if (absl::Status d = host_->DestroyDomain(s.id); !d.ok() && status.ok()) {
      status = absl::InternalError(
          absl::StrCat("final destroy failed: ", d.message()));
    }
    s = Slot();
  }
  return status;
}

bool Churn::CountPoolEmpty(const absl::Status& s) {
  if (s.code() == absl::StatusCode::kResourceExhausted &&
      s.message().find("pool") != std::string::npos) {
    stats_.pool_empty.fetch_add(1);
  }
  return s.ok();
}

const char* OpName(Op op) {
  static const char* const kNames[kOpCount] = {
      "map",           "unmap",           "unhook",   "retype-lagged",
      "unhook+retype", "writable->table", "table-ro", "pin-retype",
      "base-pointer",  "decrease-former", "alloc",    "recreate",
      "set-policy",    "flush",           "translate"};
  return kNames[static_cast<int>(op)];
}

namespace {

// Percent of Step() calls per Op, in Op order (sums to 100).
constexpr int kOpWeights[kOpCount] = {32, 28, 6, 4, 5, 4, 4, 3,
                                      3,  2,  4, 1, 1, 1, 2};

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

std::vector<Mfn> Churn::EntryTargets(Mfn table) const {
  std::vector<Mfn> out;
  for (uint32_t i = 0; i < kEntriesPerTable; ++i) {
    const uint64_t e = mm_->frame_table().entries(table)[i].load();
    if (PtePresent(e)) out.push_back(PteMfn(e));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

bool Churn::Unhook(Slot& slot, Vaddr va) {
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

std::optional<Mfn> Churn::PopAged(Slot& slot) {
  if (slot.released.size() <= static_cast<size_t>(options_.retype_lag)) {
    return std::nullopt;
  }
  const Mfn t = slot.released.front();
  slot.released.pop_front();
  return t;
}

bool Churn::RetypeLagged(Slot& slot) {
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

bool Churn::UnhookAndRetype(Slot& slot, Vaddr va) {
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

bool Churn::WritableToTable(Slot& slot, Vaddr va) {
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

bool Churn::TableReadOnly(Slot& slot, Vaddr va, Vaddr other) {
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

bool Churn::PinRetype(Slot& slot, std::mt19937_64& rng) {
  if (slot.released.empty()) return false;
  const Mfn t = slot.released.back();
  const Level level = static_cast<Level>(1 + rng() % 3);
  const PageType before = mm_->InspectFrame(t)->type;
  if (!mm_->PinTable(slot.id, t, level).ok()) return false;
  if (before != TableTypeFor(level)) stats_.retypes.fetch_add(1);
  return mm_->UnpinTable(slot.id, t).ok();
}

bool Churn::BasePointer(Slot& slot) {
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

bool Churn::DecreaseFormer(Slot& slot) {
  const std::optional<Mfn> aged = PopAged(slot);
  return aged && mm_->DecreaseReservation(slot.id, {*aged}).ok();
}

bool Churn::SetPolicy(int i, std::mt19937_64& rng) {
  // Violations are counted by the policy a domain runs when they happen; a
  // domain configured safe therefore never runs assisted-unsafe.
  const Policy own = SlotPolicy(i);
  const Policy target =
      own == Policy::kAssistedUnsafe || !options_.change_policies
          ? own
          : kSafePolicies[rng() % 3];
  if (!host_->SetPolicy(slots_[i].id, target).ok()) return false;
  MutexLock lock(&policies_mu_);
  domain_policy_[slots_[i].id.value()] = target;
  return true;
}

absl::Status Churn::Step(absl::Span<const int> mine,
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
  const auto start = std::chrono::steady_clock::now();
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
      (void)policy_->ExplicitFlush(
          *d, rng() % 2 ? FlushScope::Domain(slot.id)
                        : FlushScope::Range(slot.id, va, 1 + rng() % 16));
      done = true;
      break;
    }
    case Op::kTranslate:
      done = Translate(slot, va, rng);
      break;
    case Op::kRecreate:
      if (absl::Status s = host_->DestroyDomain(slot.id); !s.ok()) {
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
  stats_.op_ns[static_cast<int>(op)].fetch_add(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::steady_clock::now() - start)
          .count(),
      std::memory_order_relaxed);
  stats_.ops.fetch_add(1);
  return absl::OkStatus();
}

bool Churn::Translate(Slot& slot, Vaddr va, std::mt19937_64& rng) {
  // Prefer a mapped address (half the window is at best): its walks reach
  // an L1, which the unmap below retires.
  for (int tries = 0; tries < 4 && !MappedWalk(*mm_, slot.id, va); ++tries) {
    va = Vaddr(kWindowBase + (rng() % options_.window_pages) * kPageSize);
  }
  const int walks = 1 + static_cast<int>(rng() % 4);
  bool queued = false;
  for (int k = 0; k < walks; ++k) {
    const VcpuId vcpu(static_cast<uint32_t>(rng() % options_.vcpus));
    const Access access = rng() % 4 == 0 ? Access::kWrite : Access::kRead;
    absl::StatusOr<std::shared_ptr<TranslateJob>> job =
        host_->StartTranslate(slot.id, vcpu, va, access);
    if (!job.ok()) continue;
    slot.translations.push_back(*std::move(job));
    queued = true;
  }
  // Half the time, race the walks with the unmap of their 2 MiB: the L1
  // they read empties and is retired under them (the review's hole: a
  // walker the IPI policies' flush did not reach).
  if (queued && rng() % 2 == 0) {
    constexpr uint64_t kL1Span = uint64_t{kEntriesPerTable} * kPageSize;
    const uint64_t start = va.value() & ~(kL1Span - 1);
    const uint64_t end = std::min(
        start + kL1Span, kWindowBase + options_.window_pages * kPageSize);
    (void)mm_->UnmapRange(slot.id, Vaddr(start), (end - start) / kPageSize);
  }
  // Bounded: the pCPUs serve jobs before guest accesses, so the oldest is
  // walked soon. Its answer does not matter (the walk's checks are the
  // oracle's); a cancelled one means the pCPUs stopped.
  while (slot.translations.size() > kTranslatesInFlight) {
    (void)slot.translations.front()->Await();
    slot.translations.pop_front();
  }
  return queued;
}

const char* Churn::PolicyOf(uint32_t domain) const {
  if (domain == 0) return "none";
  MutexLock lock(&policies_mu_);
  auto it = domain_policy_.find(domain);
  return it == domain_policy_.end() ? "?" : PolicyName(it->second);
}

std::vector<Policy> Churn::PoliciesInUse() const {
  std::vector<Policy> used;
  for (Policy p : options_.policies) {
    if (std::find(used.begin(), used.end(), p) == used.end()) used.push_back(p);
  }
  // Safe domains move among the safe policies (Op::kSetPolicy).
  if (options_.change_policies &&
      std::any_of(used.begin(), used.end(),
                  [](Policy p) { return p != Policy::kAssistedUnsafe; })) {
    for (Policy p : kSafePolicies) {
      if (std::find(used.begin(), used.end(), p) == used.end()) {
        used.push_back(p);
      }
    }
  }
  return used;
}

}  // namespace hvmm
