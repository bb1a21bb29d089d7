#include "tests/torture/torture_rig.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "flush/flush_backends.h"
#include "mm/walker.h"

namespace hvmm {
namespace {

// Translate walks spin only once they reached their L1: they get there
// before the unmap that races them (Churn's translate) clears the pointer,
// and stay while it flushes and frees.
void SpinInL1(void* arg, WalkPoint point, Level level) {
  if (point == WalkPoint::kTableReached && level == Level::kL1) {
    SpinFor(*static_cast<const uint64_t*>(arg));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<TortureRig>> TortureRig::Create(
    const TortureOptions& options) {
  if (options.domains < 1 || options.vcpus < 1 || options.window_pages < 16 ||
      options.tlb_clock_start < TlbStamp(1)) {
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
      guest.walk_hooks = SpinAtTableReached(&rig->walk_delay_ns_);
    }
    if (rig->translate_delay_ns_ != 0) {
      guest.translate_walk_hooks = {&SpinInL1, &rig->translate_delay_ns_};
    }
    rig->translate_queues_.push_back(std::make_unique<TranslateQueue>());
    guest.translate_queue = rig->translate_queues_.back().get();
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
  rig->engine_->Start([raw](PcpuId cpu) {
    GuestCpu* g = raw->guests_[cpu.value()].get();
    return [g](Pcpu& self) { return g->Step(self); };
  });
  // Domains after the pCPUs: creating them already flushes (by IPI under
  // some policies), which only running pCPUs can acknowledge.
  ChurnOptions churn;
  churn.policies = options.domain_policies.empty()
                       ? std::vector<Policy>{options.policy}
                       : options.domain_policies;
  churn.domains = options.domains;
  churn.vcpus = options.vcpus;
  churn.window_pages = options.window_pages;
  churn.retype_lag = options.retype_lag;
  churn.change_policies = options.change_policies;
  churn.seed = options.seed;
  ChurnHost* host = raw;  // A private base: converted here.
  rig->churn_ = std::make_unique<Churn>(host, rig->mm_.get(),
                                        &rig->engine_->policy(), churn);
  if (absl::Status s = rig->churn_->CreateDomains(); !s.ok()) return s;
  return rig;
}

TortureRig::TortureRig(const TortureOptions& options)
    : options_(options),
      walk_delay_ns_(options.walk_delay_ns),
      translate_delay_ns_(options.translate_delay_ns) {}

TortureRig::~TortureRig() { (void)Finish(); }

absl::StatusOr<DomainId> TortureRig::CreateDomain(const std::string& name,
                                                  uint32_t vcpus,
                                                  uint64_t max_pages,
                                                  Policy policy) {
  // A domain of the default policy keeps tag 0 (it follows the default).
  uint8_t tag = 0;
  if (!options_.domain_policies.empty() || policy != options_.policy) {
    absl::StatusOr<uint8_t> t = engine_->policy().OverrideTag(policy);
    if (!t.ok()) return t.status();
    tag = *t;
  }
  return mm_->CreateDomain({name, vcpus, max_pages, tag});
}

absl::Status TortureRig::StartGuests(DomainId domain,
                                     const WorkloadConfig& config,
                                     uint64_t seed) {
  run_queue_.AddDomain(mm_->FindDomain(domain), config, seed);
  for (Pcpu* p : engine_->pcpus()) p->Kick();
  return absl::OkStatus();
}

absl::Status TortureRig::DestroyDomain(DomainId domain) {
  run_queue_.RemoveDomain(domain);
  return mm_->DestroyDomain(domain);
}

absl::Status TortureRig::SetPolicy(DomainId domain, Policy policy) {
  absl::StatusOr<uint8_t> tag = engine_->policy().OverrideTag(policy);
  if (!tag.ok()) return tag.status();
  return mm_->SetFlushPolicy(domain, *tag).status();
}

absl::StatusOr<std::shared_ptr<TranslateJob>> TortureRig::StartTranslate(
    DomainId domain, VcpuId vcpu, Vaddr va, Access access) {
  std::shared_ptr<Domain> d = mm_->FindDomain(domain);
  if (d == nullptr) return absl::NotFoundError("no such domain");
  auto job = std::make_shared<TranslateJob>(std::move(d), vcpu, va, access);
  const size_t cpu =
      next_translate_pcpu_.fetch_add(1, std::memory_order_relaxed) %
      translate_queues_.size();
  if (absl::Status s = translate_queues_[cpu]->Push(job); !s.ok()) return s;
  engine_->pcpus()[cpu]->Kick();
  return job;
}

absl::Status TortureRig::Step(absl::Span<const int> mine,
                              std::mt19937_64& rng) {
  return churn_->Step(mine, rng);
}

absl::Status TortureRig::Finish() {
  if (finished_ || engine_ == nullptr) return absl::OkStatus();
  finished_ = true;
  absl::Status status =
      churn_ != nullptr ? churn_->DestroyDomains() : absl::OkStatus();
  engine_->Stop();
  // No pCPU runs: cancel the Translate jobs no one walked.
  for (const auto& q : translate_queues_) q->Close();
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
  const GuestCpuStats s = LiveGuestStats();
  return s.existence_violations + s.coherence_violations;
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
  for (Policy p : churn_->PoliciesInUse()) {
    if (std::find(used.begin(), used.end(), p) == used.end()) used.push_back(p);
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
  return churn_->PolicyOf(domain);
}

}  // namespace hvmm
