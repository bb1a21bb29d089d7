#include "guest/guest_cpu.h"

#include <algorithm>
#include <utility>

#include "absl/time/clock.h"
#include "flush/flush_backends.h"
#include "mm/walker.h"

namespace hvmm {

namespace {
void SpinHook(void* arg, WalkPoint point, Level level) {
  if (point == WalkPoint::kTableReached) {
    SpinFor(*static_cast<const uint64_t*>(arg));
  }
}
}  // namespace

WalkHooks SpinAtTableReached(const uint64_t* ns) {
  return {&SpinHook, const_cast<uint64_t*>(ns)};
}
namespace {

void Bump(std::atomic<uint64_t>& counter) {
  counter.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

void GuestCpuStats::Add(const GuestCpuStats& o) {
  accesses += o.accesses;
  tlb_hits += o.tlb_hits;
  tlb_misses += o.tlb_misses;
  walks += o.walks;
  translate_walks += o.translate_walks;
  psc_walks += o.psc_walks;
  faults += o.faults;
  walk_retries += o.walk_retries;
  vcpu_switches += o.vcpu_switches;
  halts += o.halts;
  existence_violations += o.existence_violations;
  coherence_violations += o.coherence_violations;
  for (int i = 0; i < kPipeLen; ++i) pipe[i] += o.pipe[i];
  if (o.last_violation_domain != 0) {
    last_violation_domain = o.last_violation_domain;
    last_violation_frame = o.last_violation_frame;
  }
}

void VcpuRunQueue::AddDomain(std::shared_ptr<Domain> domain,
                             const WorkloadConfig& config, uint64_t seed) {
  MutexLock lock(&mu_);
  DropQueuedLocked(domain->id());
  const uint64_t epoch = next_epoch_++;
  std::shared_ptr<std::atomic<uint64_t>>& active = epochs_[domain->id()];
  if (active != nullptr) active->store(0, std::memory_order_relaxed);
  active = std::make_shared<std::atomic<uint64_t>>(epoch);
  for (uint32_t v = 0; v < domain->vcpus(); ++v) {
    queue_.push_back(std::unique_ptr<GuestVcpu>(new GuestVcpu{
        domain, VcpuId(v), AccessStream(config, seed * 1000003 + v), epoch,
        VcpuThrottle(config.accesses_per_second), active}));
  }
}

void VcpuRunQueue::RemoveDomain(DomainId domain) {
  MutexLock lock(&mu_);
  if (auto it = epochs_.find(domain); it != epochs_.end()) {
    it->second->store(0, std::memory_order_relaxed);
    epochs_.erase(it);
  }
  DropQueuedLocked(domain);
}

void VcpuRunQueue::AwaitNotRunning(DomainId domain) {
  MutexLock lock(&mu_);
  for (auto it = running_.find(domain); it != running_.end() && it->second > 0;
       it = running_.find(domain)) {
    put_back_.Wait(&mu_);
  }
}

void VcpuRunQueue::DropQueuedLocked(DomainId domain) {
  std::deque<std::unique_ptr<GuestVcpu>> kept;
  for (auto& v : queue_) {
    if (v->domain->id() != domain) kept.push_back(std::move(v));
  }
  queue_.swap(kept);
}

std::unique_ptr<GuestVcpu> VcpuRunQueue::PopRunnable(int64_t now_ns) {
  MutexLock lock(&mu_);
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if (now_ns != 0 && !(*it)->throttle.Ready(now_ns)) continue;
    std::unique_ptr<GuestVcpu> v = std::move(*it);
    queue_.erase(it);
    ++running_[v->domain->id()];
    return v;
  }
  return nullptr;
}

void VcpuRunQueue::Push(std::unique_ptr<GuestVcpu> vcpu) {
  const DomainId domain = vcpu->domain->id();
  {
    MutexLock lock(&mu_);
    if (auto r = running_.find(domain); r != running_.end() && --r->second == 0) {
      running_.erase(r);
    }
    if (!vcpu->stopped()) queue_.push_back(std::move(vcpu));
  }
  put_back_.SignalAll();
  // A dropped vCPU (stopped) is destroyed here, outside the lock.
}

int VcpuRunQueue::size() const {
  MutexLock lock(&mu_);
  return static_cast<int>(queue_.size());
}

GuestCpu::~GuestCpu() {
  if (current_ != nullptr) run_queue_->Push(std::move(current_));
}

void GuestCpu::Switch(Pcpu& self) {
  // Between accesses, outside any read section: a quiescent state.
  std::shared_ptr<Domain> previous;
  if (current_ != nullptr) {
    previous = current_->domain;
    run_queue_->Push(std::move(current_));
  }
  // The first vCPU with budget left (VcpuThrottle): one over budget stays
  // queued, halted, and never holds a pCPU others could use.
  current_ = run_queue_->PopRunnable(absl::GetCurrentTimeNanos());
  if (previous != nullptr &&
      (current_ == nullptr || current_->domain != previous)) {
    // Leaving the domain: drop its translations and leave its dirty mask, in
    // that order (Xen's __context_switch clears the previous domain's bit).
    // An updater that reads the mask without this pCPU then has nothing to
    // flush here, and it cannot walk the domain again before switching it
    // back in, which marks it first.
    self.tlb().FlushDomain(previous->id());
    previous->ClearDirty(self.id());
    last_root_.erase(previous->id().value());
  }
  if (current_ == nullptr) return;
  Domain& domain = *current_->domain;
  domain.MarkDirty(self.id());
  // The caches are tagged by domain, not by root: switching to a vCPU of
  // the domain that runs on another root drops the domain's translations,
  // as a CR3 write without PCIDs does.
  const std::optional<Mfn> root = domain.base_pointer(current_->vcpu);
  const uint64_t root_key = root ? root->value() + 1 : 0;
  auto [it, first] = last_root_.try_emplace(domain.id().value(), root_key);
  if (!first && it->second != root_key) {
    self.tlb().FlushDomain(domain.id());
    it->second = root_key;
  }
  slice_left_ = options_.slice_accesses;
  Bump(switches_);
}

void GuestCpu::NoteViolation(ViolationKind kind, const Domain& domain,
                             Mfn frame) {
  Bump(kind == ViolationKind::kExistence ? existence_violations_
                                         : coherence_violations_);
  last_violation_domain_.store(domain.id().value(), std::memory_order_relaxed);
  last_violation_frame_.store(frame.value(), std::memory_order_relaxed);
  if (options_.on_violation) options_.on_violation(kind, domain, frame);
}

bool GuestCpu::FramesUnchanged(const TlbEntry& e) const {
  if (table_->info(e.mfn).generation.load(std::memory_order_acquire) !=
      e.data_generation) {
    return false;
  }
  for (uint32_t i = 0; i < e.tables_read; ++i) {
    if (table_->info(e.tables[i]).generation.load(std::memory_order_acquire) !=
        e.table_generations[i]) {
      return false;
    }
  }
  return true;
}

int GuestCpu::PipeCount(const WalkResult& w, SectionTime entry_time) const {
  int pipe = 0;
  for (uint32_t i = 0; i < w.tables_read; ++i) {
    const Mfn t = w.tables[i];
    const uint32_t reuses =
        table_->info(t).generation.load(std::memory_order_acquire) -
        w.generations[i];
    if (reuses != 0) {
      pipe = std::max<int>(
          pipe, static_cast<int>(std::min<uint32_t>(reuses + 1, kPipeLen - 1)));
    } else if (options_.release_stamps != nullptr &&
               entry_time != SectionTime() &&
               options_.release_stamps->At(t) >= entry_time) {
      pipe = std::max(pipe, 1);
    }
  }
  return pipe;
}

void GuestCpu::RunTranslate(Pcpu& self, TranslateJob& job) {
  Domain& domain = job.domain();
  // The IPI policies flush, and wait out walkers, only on the domain's
  // dirty mask: this pCPU must be in it while it walks, as Switch() puts
  // it before a vCPU's first walk (the section's entry fence orders the
  // mark before the walk's reads, against the updater's fence before it
  // reads the mask). The walk fills no cache, so the mark goes again
  // afterwards, unless the pCPU runs a vCPU of the domain. Only this
  // pCPU's thread writes its own bit: the test and the clear cannot race.
  const bool was_dirty = domain.DirtyMask().Test(self.id());
  if (!was_dirty) domain.MarkDirty(self.id());
  WalkResult w;
  {
    Pcpu::ReadSection section(self, domain.id());
    w = WalkFromBasePointer(*table_, domain.base_pointer_slot(job.vcpu()),
                            job.va(), job.access(),
                            options_.translate_walk_hooks);
    Bump(walks_);
    Bump(translate_walks_);
    if (w.retries != 0) {
      walk_retries_.fetch_add(w.retries, std::memory_order_relaxed);
    }
    const int pipe = PipeCount(w, section.entry_time());
    Bump(pipe_[pipe]);
    if (pipe >= 2) {
      NoteViolation(ViolationKind::kExistence, domain,
                    w.tables[w.tables_read - 1]);
    }
  }
  if (!was_dirty) domain.ClearDirty(self.id());
  job.Finish({w, self.id()});
}

bool GuestCpu::Step(Pcpu& self) {
  if (options_.translate_queue != nullptr) {
    if (std::shared_ptr<TranslateJob> job = options_.translate_queue->Pop()) {
      RunTranslate(self, *job);
      return true;
    }
  }
  // A stopped workload's vCPU leaves at once (Push drops it); one over its
  // budget halts: both give the pCPU to the next vCPU with budget, if any.
  bool switch_out = current_ == nullptr || slice_left_ == 0 ||
                    current_->stopped();
  if (!switch_out && current_->throttle.throttled() &&
      !current_->throttle.TryTake(absl::GetCurrentTimeNanos())) {
    Bump(halts_);
    switch_out = true;
  }
  if (switch_out) {
    Switch(self);
    // Switch() popped a vCPU with budget: take its credit.
    if (current_ != nullptr) {
      current_->throttle.TryTake(absl::GetCurrentTimeNanos());
    }
  }
  if (current_ == nullptr) return false;
  --slice_left_;
  const GuestAccess a = current_->stream.Next();
  Domain& domain = *current_->domain;
  Bump(accesses_);

  Pcpu::ReadSection section(self, domain.id());
  if (const TlbEntry* e = self.tlb().Lookup(domain.id(), a.va)) {
    if (a.access == Access::kRead || e->writable) {
      Bump(hits_);
      // The use happened at Lookup; the check reads generations a moment
      // later. A frame found changed is a violation unless an invalidation
      // of this very entry (all, its domain, or a range holding its page)
      // was requested in that moment: then the flush that preceded the free
      // came after the use, as the hardware flush that an assisted
      // hypercall performs waits for an instruction in flight. (Acquire on
      // the generation, then on the request sequence: a free that the check
      // sees was preceded by its flush's request, if there was one.) A
      // request for another domain or range excuses nothing.
      if (!FramesUnchanged(*e) &&
          !self.tlb().InvalidationRequestedSinceLookup(domain.id(), a.va)) {
        NoteViolation(ViolationKind::kCoherence, domain, e->mfn);
      }
      return true;
    }
    // A write through a read-only entry faults and walks again, as x86 does.
  }
  Bump(misses_);
  const uint64_t token = self.tlb().BeginFill();
  // Start from the deepest table the paging-structure cache knows on this
  // path, as hardware does; else from the root.
  const PscEntry* psc =
      options_.use_psc ? self.tlb().LookupTable(domain.id(), a.va) : nullptr;
  const WalkResult w =
      psc != nullptr
          ? WalkTablesFrom(*table_,
                           WalkStart{psc->table, psc->level, psc->generation,
                                     psc->writable},
                           a.va, a.access, options_.walk_hooks)
          : WalkFromBasePointer(*table_,
                                domain.base_pointer_slot(current_->vcpu), a.va,
                                a.access, options_.walk_hooks);
  Bump(walks_);
  if (w.retries != 0) walk_retries_.fetch_add(w.retries, std::memory_order_relaxed);
  if (psc != nullptr) Bump(psc_walks_);
  const int pipe = PipeCount(w, section.entry_time());
  Bump(pipe_[pipe]);
  if (pipe >= 2) {
    NoteViolation(ViolationKind::kExistence, domain,
                  w.tables[w.tables_read - 1]);
  }
  if (!w.ok()) {
    Bump(faults_);
    return true;
  }
  self.tlb().Insert(token, domain.id(), a.va, w);
  return true;
}

GuestCpuStats GuestCpu::stats() const {
  GuestCpuStats s;
  s.accesses = accesses_.load(std::memory_order_relaxed);
  s.tlb_hits = hits_.load(std::memory_order_relaxed);
  s.tlb_misses = misses_.load(std::memory_order_relaxed);
  s.walks = walks_.load(std::memory_order_relaxed);
  s.translate_walks = translate_walks_.load(std::memory_order_relaxed);
  s.psc_walks = psc_walks_.load(std::memory_order_relaxed);
  s.faults = faults_.load(std::memory_order_relaxed);
  s.walk_retries = walk_retries_.load(std::memory_order_relaxed);
  s.vcpu_switches = switches_.load(std::memory_order_relaxed);
  s.halts = halts_.load(std::memory_order_relaxed);
  s.existence_violations = existence_violations_.load(std::memory_order_relaxed);
  s.coherence_violations = coherence_violations_.load(std::memory_order_relaxed);
  for (int i = 0; i < kPipeLen; ++i) {
    s.pipe[i] = pipe_[i].load(std::memory_order_relaxed);
  }
  s.last_violation_domain =
      last_violation_domain_.load(std::memory_order_relaxed);
  s.last_violation_frame = last_violation_frame_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace hvmm
