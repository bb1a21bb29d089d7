#include "server/host.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "mm/address_space.h"
#include "mm/mm_errors.h"
#include "server/api_errors.h"

namespace hvmm {
namespace {

absl::Status CheckWorkloadConfig(const WorkloadConfig& config) {
  if (config.ranges.empty()) {
    return MalformedArgumentError("a workload needs at least one range");
  }
  if (config.ranges.size() > 64) {
    return MalformedArgumentError(absl::StrCat(
        "a workload has at most 64 ranges, got ", config.ranges.size()));
  }
  for (size_t i = 0; i < config.ranges.size(); ++i) {
    const PageRange& r = config.ranges[i];
    if (absl::Status s = CheckRange(r.start, r.pages); !s.ok()) {
      return MalformedArgumentError(
          absl::StrCat("ranges[", i, "]: ", s.message()));
    }
  }
  if (!(config.write_fraction >= 0 && config.write_fraction <= 1)) {
    return MalformedArgumentError(absl::StrCat(
        "write_fraction must be in [0, 1], got ", config.write_fraction));
  }
  if (!(config.accesses_per_second >= 0 && config.accesses_per_second <= 1e9)) {
    return MalformedArgumentError(absl::StrCat(
        "rate must be in [0, 1e9] accesses per second per vCPU (0: "
        "unthrottled), got ", config.accesses_per_second));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Host>> Host::Create(const HostOptions& options) {
  if (options.frames < 16 || options.frames > (uint64_t{1} << 32)) {
    return MalformedArgumentError(absl::StrCat(
        "frames must be in [16, 2^32], got ", options.frames));
  }
  std::unique_ptr<Host> host(new Host(options));
  MemoryManagerOptions mm_options;
  mm_options.frame_count = options.frames;
  absl::StatusOr<std::unique_ptr<MemoryManager>> mm =
      MemoryManager::Create(mm_options);
  if (!mm.ok()) return mm.status();
  host->mm_ = *std::move(mm);

  FlushEngine::Options engine;
  engine.policy = options.policy;
  engine.allow_unsafe = options.allow_unsafe;
  engine.pcpus = options.pcpus;
  engine.assisted = {options.hypercall_ns, 100};
  absl::StatusOr<std::unique_ptr<FlushEngine>> e =
      FlushEngine::Create(host->mm_.get(), engine);
  if (!e.ok()) return e.status();
  host->engine_ = *std::move(e);

  Host* raw = host.get();
  for (int i = 0; i < options.pcpus; ++i) {
    GuestCpu::Options guest;
    if (options.walk_delay_ns != 0) {
      guest.walk_hooks = SpinAtTableReached(&host->options_.walk_delay_ns);
    }
    guest.release_stamps = &host->engine_->policy().release_stamps();
    guest.on_violation = [raw](ViolationKind kind, const Domain& domain,
                               Mfn frame) {
      raw->NoteViolation(kind, domain, frame);
    };
    host->translate_queues_.push_back(std::make_unique<TranslateQueue>());
    guest.translate_queue = host->translate_queues_.back().get();
    guest.translate_walk_hooks = options.translate_walk_hooks;
    host->guests_.push_back(std::make_unique<GuestCpu>(
        &host->mm_->frame_table(), &host->run_queue_, std::move(guest)));
  }
  host->engine_->Start([raw](PcpuId cpu) {
    GuestCpu* guest = raw->guests_[cpu.value()].get();
    return [guest](Pcpu& self) { return guest->Step(self); };
  });
  return host;
}

Host::Host(const HostOptions& options)
    : options_(options), start_time_(absl::Now()) {}

Host::~Host() { (void)Shutdown(); }

void Host::SetViolationListener(ViolationListener listener) {
  listener_ = std::move(listener);
}

void Host::NoteViolation(ViolationKind kind, const Domain& domain, Mfn frame) {
  if (std::shared_ptr<DomainCounters> c = CountersOf(domain.id())) {
    (kind == ViolationKind::kExistence ? c->existence : c->coherence)
        .fetch_add(1, std::memory_order_relaxed);
  }
  const Policy policy = PolicyOf(domain);
  violations_[static_cast<int>(kind)][static_cast<int>(policy)].fetch_add(
      1, std::memory_order_relaxed);
  if (listener_) listener_(kind, domain.id(), frame, policy);
}

std::shared_ptr<Host::DomainCounters> Host::CountersOf(DomainId domain) const {
  MutexLock lock(&mu_);
  auto it = counters_.find(domain);
  return it == counters_.end() ? nullptr : it->second;
}

absl::StatusOr<DomainId> Host::CreateDomain(std::string name, uint32_t vcpus,
                                            uint64_t max_pages,
                                            std::optional<Policy> policy) {
  if (shut_down_.load()) return DrainingError();
  uint8_t tag = 0;
  if (policy) {
    absl::StatusOr<uint8_t> t = engine_->policy().OverrideTag(*policy);
    if (!t.ok()) return t.status();
    tag = *t;
  }
  absl::StatusOr<DomainId> id =
      mm_->CreateDomain({std::move(name), vcpus, max_pages, tag});
  if (!id.ok()) return id.status();
  auto counters = std::make_shared<DomainCounters>();
  counters->create_time = absl::Now();
  MutexLock lock(&mu_);
  // Unless a destroy that raced this create already finished (it erased
  // nothing): then the domain is gone and keeps no record.
  if (destroying_.contains(*id) || mm_->FindDomain(*id) != nullptr) {
    counters_[*id] = std::move(counters);
  }
  return *id;
}

absl::StatusOr<uint64_t> Host::DestroyDomain(DomainId domain) {
  absl::StatusOr<DomainInfo> info = mm_->GetDomainInfo(domain);
  if (!info.ok()) return info.status();
  {
    MutexLock lock(&mu_);
    if (!destroying_.insert(domain).second) return UnknownDomainError(domain);
    workloads_.erase(domain);
    run_queue_.RemoveDomain(domain);
  }
  run_queue_.AwaitNotRunning(domain);
  const absl::Status s = mm_->DestroyDomain(domain);
  MutexLock lock(&mu_);
  destroying_.erase(domain);
  if (!s.ok()) return s;
  counters_.erase(domain);
  return info->tot_pages;
}

Policy Host::PolicyOf(const Domain& domain) const {
  return engine_->policy().PolicyFor(domain);
}

absl::StatusOr<Policy> Host::PolicyOf(DomainId domain) const {
  std::shared_ptr<Domain> d = mm_->FindDomain(domain);
  if (d == nullptr) return UnknownDomainError(domain);
  return PolicyOf(*d);
}

absl::StatusOr<Policy> Host::SetFlushPolicy(DomainId domain, Policy policy) {
  absl::StatusOr<uint8_t> tag = engine_->policy().OverrideTag(policy);
  if (!tag.ok()) return tag.status();
  absl::StatusOr<uint8_t> previous = mm_->SetFlushPolicy(domain, *tag);
  if (!previous.ok()) return previous.status();
  return *previous == 0 ? engine_->policy().policy()
                        : static_cast<Policy>(*previous - 1);
}

absl::StatusOr<std::shared_ptr<TranslateJob>> Host::StartTranslate(
    DomainId domain, VcpuId vcpu, Vaddr va, Access access) {
  if (shut_down_.load()) return DrainingError();
  std::shared_ptr<Domain> d = mm_->FindDomain(domain);
  if (d == nullptr) return UnknownDomainError(domain);
  if (vcpu.value() >= d->vcpus()) {
    return UnknownVcpuError(domain, vcpu, d->vcpus());
  }
  if (!va.IsCanonical()) {
    return MalformedArgumentError(
        absl::StrCat("address 0x", absl::Hex(va.value()),
                     " is not canonical"));
  }
  auto job = std::make_shared<TranslateJob>(std::move(d), vcpu, va, access);
  const size_t cpu = next_pcpu_.fetch_add(1) % translate_queues_.size();
  // Closed: Shutdown() has stopped the pCPUs.
  if (!translate_queues_[cpu]->Push(job).ok()) return DrainingError();
  engine_->pcpus()[cpu]->Kick();
  return job;
}

absl::StatusOr<Translation> Host::Translate(DomainId domain, VcpuId vcpu,
                                            Vaddr va, Access access,
                                            absl::Time deadline) {
  absl::StatusOr<std::shared_ptr<TranslateJob>> job =
      StartTranslate(domain, vcpu, va, access);
  if (!job.ok()) return job.status();
  absl::StatusOr<Translation> t = (*job)->Await(deadline);
  if (t.status().code() == absl::StatusCode::kCancelled) return DrainingError();
  return t;
}

absl::Status Host::StartWorkload(DomainId domain,
                                 const WorkloadConfig& config) {
  if (shut_down_.load()) return DrainingError();
  if (absl::Status s = CheckWorkloadConfig(config); !s.ok()) return s;
  std::shared_ptr<Domain> d = mm_->FindDomain(domain);
  if (d == nullptr) return UnknownDomainError(domain);
  {
    MutexLock lock(&mu_);
    // Live and not being destroyed: a destroy that completed since
    // FindDomain() erased its record (counters_) under this lock.
    if (destroying_.contains(domain) || !counters_.contains(domain)) {
      return UnknownDomainError(domain);
    }
    if (workloads_.contains(domain)) return WorkloadRunningError(domain);
    workloads_.insert(domain);
    run_queue_.AddDomain(std::move(d), config, workload_seed_++);
  }
  for (Pcpu* p : engine_->pcpus()) p->Kick();
  return absl::OkStatus();
}

absl::Status Host::StopWorkload(DomainId domain) {
  if (mm_->FindDomain(domain) == nullptr) return UnknownDomainError(domain);
  {
    MutexLock lock(&mu_);
    if (destroying_.contains(domain)) return UnknownDomainError(domain);
    if (workloads_.erase(domain) == 0) return NoWorkloadError(domain);
    run_queue_.RemoveDomain(domain);
  }
  // Stopped means stopped: no pCPU runs one of its vCPUs after this.
  run_queue_.AwaitNotRunning(domain);
  return absl::OkStatus();
}

absl::Time Host::CreateTimeOf(DomainId domain) const {
  std::shared_ptr<DomainCounters> c = CountersOf(domain);
  return c == nullptr ? absl::InfinitePast() : c->create_time;
}

bool Host::WorkloadRunning(DomainId domain) const {
  MutexLock lock(&mu_);
  return workloads_.contains(domain);
}

HostStats Host::Stats() const {
  HostStats s;
  s.uptime = absl::Now() - start_time_;
  s.pcpus = options_.pcpus;
  s.domains = static_cast<int>(mm_->ListDomains().size());
  s.default_policy = engine_->policy().policy();
  s.frames_total = mm_->frame_table().frame_count();
  s.frames_free = mm_->allocator().free_frames();
  s.frames_pending_free = engine_->deferred_retirer().pending_frames();
  const FrameCensus census = mm_->CountOwnedFrames();
  s.frames_none = census.none;
  s.frames_writable = census.writable;
  s.frames_tables = census.tables;
  const FlushPolicyStats p = engine_->policy().stats();
  s.ipi_flushes = p.ipi_flushes;
  s.assisted_flushes = p.assisted_flushes;
  s.forced_ipis = p.forced_ipis;
  s.ipis_sent = engine_->ipi_backend().ipis_sent();
  s.ipi_batches = engine_->ipi_batcher().backend_calls();
  s.assisted_batches = engine_->assisted_batcher().backend_calls();
  s.flush_requests = engine_->ipi_batcher().requests() +
                     engine_->assisted_batcher().requests();
  GracePeriods& grace = engine_->grace();
  s.grace_periods = grace.completed();
  s.grace_latency_p50_ns = grace.LatencyQuantileNs(0.5);
  s.grace_latency_p99_ns = grace.LatencyQuantileNs(0.99);
  s.guests = GuestStats();
  s.translations = s.guests.translate_walks;
  s.existence_violations = s.guests.existence_violations;
  s.coherence_violations = s.guests.coherence_violations;
  return s;
}

GuestCpuStats Host::GuestStats() const {
  GuestCpuStats s;
  for (const auto& g : guests_) s.Add(g->stats());
  return s;
}

absl::StatusOr<DomainStatsSnapshot> Host::DomainStats(DomainId domain) const {
  absl::StatusOr<DomainInfo> info = mm_->GetDomainInfo(domain);
  if (!info.ok()) return info.status();
  DomainStatsSnapshot s;
  s.info = *std::move(info);
  s.pending_frees = engine_->deferred_retirer().PendingFramesOf(domain);
  if (std::shared_ptr<DomainCounters> c = CountersOf(domain)) {
    s.existence_violations = c->existence.load(std::memory_order_relaxed);
    s.coherence_violations = c->coherence.load(std::memory_order_relaxed);
  }
  return s;
}

absl::Status Host::Shutdown() {
  if (shut_down_.exchange(true)) return absl::OkStatus();
  // Create() failed before the engine existed: nothing runs.
  if (mm_ == nullptr || engine_ == nullptr) return absl::OkStatus();
  std::vector<DomainInfo> domains = mm_->ListDomains();
  {
    MutexLock lock(&mu_);
    for (const DomainInfo& d : domains) run_queue_.RemoveDomain(d.id);
    workloads_.clear();
  }
  for (const DomainInfo& d : domains) engine_->retirer().Drain(d.id);
  absl::Status audit = mm_->Audit();
  for (const DomainInfo& d : domains) (void)mm_->DestroyDomain(d.id);
  engine_->Stop();
  // No pCPU runs now: answer the Translate jobs nobody will walk.
  for (auto& q : translate_queues_) q->Close();
  return audit;
}

}  // namespace hvmm
