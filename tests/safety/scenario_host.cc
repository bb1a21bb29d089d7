#include "tests/safety/scenario_host.h"

#include <thread>
#include <utility>

#include "base/check.h"

namespace hvmm {
namespace testing {

ScenarioHost::ScenarioHost(Policy policy, Vaddr va) : va_(va) {
  mm_ = MemoryManager::Create({4096, 2, TlbStamp(1)}).value();
  FlushEngine::Options options;
  options.policy = policy;
  options.allow_unsafe = true;
  options.pcpus = kPcpus;
  options.assisted = {0, 0};
  engine_ = FlushEngine::Create(mm_.get(), options).value();
  for (int i = 0; i < kPcpus; ++i) {
    walkers_[i].host = this;
    GuestCpu::Options guest;
    guest.slice_accesses = 1 << 20;
    guest.release_stamps = &engine_->policy().release_stamps();
    guest.walk_hooks = {&ParkHook, &walkers_[i]};
    guests_.push_back(std::make_unique<GuestCpu>(&mm_->frame_table(),
                                                 &run_queue_, guest));
  }
  engine_->Start([this](PcpuId cpu) {
    return [this, cpu](Pcpu& self) { return Step(cpu, self); };
  });
  domain_ = mm_->CreateDomain({"d", 2, 256}).value();
  HVMM_CHECK(mm_->MapRange(domain_, va_, 1, true).ok());
  WorkloadConfig w;
  w.ranges = {{va_, 1}};
  w.write_fraction = 0;
  run_queue_.AddDomain(mm_->FindDomain(domain_), w, 1);
  // Both pCPUs may hold the domain's translations from the start: flushes
  // reach an ArmAfterFlush walker before its first access.
  for (int i = 0; i < kPcpus; ++i) {
    mm_->FindDomain(domain_)->MarkDirty(PcpuId(i));
  }
}

ScenarioHost::~ScenarioHost() { Finish(); }

void ScenarioHost::ParkHook(void* arg, WalkPoint point, Level level) {
  Walker* w = static_cast<Walker*>(arg);
  if (point == WalkPoint::kEntryRead && level == Level::kL1 &&
      w->host->watched_ != 0) {
    w->watched_generation.store(w->host->mm_->frame_table()
                                    .info(Mfn(w->host->watched_ - 1))
                                    .generation.load());
  }
  if (point != WalkPoint::kTableReached || level != Level::kL1) return;
  if (!w->park.exchange(false)) return;
  w->state.store(kParked);
  while (!w->release.load()) std::this_thread::yield();
  w->state.store(kRunning);
}

bool ScenarioHost::Step(PcpuId cpu, Pcpu& self) {
  Walker& w = walkers_[cpu.value()];
  if (w.state.load() != kArmed) return false;
  if (w.after_flush && self.ipis_served() == w.ipis_at_arm &&
      self.tlb().requests_received() == w.requests_at_arm) {
    std::this_thread::yield();
    return true;  // Interrupts on between steps: IPIs are served.
  }
  int armed = kArmed;
  if (!w.state.compare_exchange_strong(armed, kRunning)) return false;
  guests_[cpu.value()]->Step(self);
  w.state.store(kDone);
  return true;
}

void ScenarioHost::Arm(int cpu, bool park, bool after_flush) {
  Walker& w = walkers_[cpu];
  Pcpu& p = *engine_->pcpus()[cpu];
  w.after_flush = after_flush;
  w.ipis_at_arm = p.ipis_served();
  w.requests_at_arm = p.tlb().requests_received();
  w.release.store(false);
  w.park.store(park);
  w.state.store(kArmed);
  p.Kick();
}

void ScenarioHost::ArmParked(int cpu) { Arm(cpu, true, false); }
void ScenarioHost::ArmAfterFlush(int cpu) { Arm(cpu, true, true); }

void ScenarioHost::WaitParkedOrDone(int cpu) {
  for (;;) {
    const int s = walkers_[cpu].state.load();
    if (s == kParked || s == kDone) return;
    std::this_thread::yield();
  }
}

void ScenarioHost::RunUpdater(const std::function<void()>& update) {
  std::atomic<bool> done{false};
  std::thread updater([&] {
    update();
    done.store(true);
  });
  while (!done.load()) {
    for (int i = 0; i < kPcpus; ++i) {
      if (walkers_[i].state.load() == kParked &&
          (engine_->grace().WaitingFor(PcpuId(i)) ||
           engine_->pcpus()[i]->ipi_pending())) {
        walkers_[i].release.store(true);
      }
    }
    std::this_thread::yield();
  }
  updater.join();
  for (int i = 0; i < kPcpus; ++i) {
    Walker& w = walkers_[i];
    w.release.store(true);
    int armed = kArmed;
    // An ArmAfterFlush walker no flush reached never runs.
    w.state.compare_exchange_strong(armed, kCancelled);
    while (w.state.load() == kRunning || w.state.load() == kParked) {
      std::this_thread::yield();
    }
  }
}

std::vector<Mfn> ScenarioHost::PathTables() {
  const WalkResult w =
      mm_->Walk(domain_, VcpuId(0), va_, Access::kRead).value();
  return std::vector<Mfn>(w.tables.begin(), w.tables.begin() + w.tables_read);
}

GuestCpuStats ScenarioHost::Stats() const {
  GuestCpuStats total;
  for (const auto& g : guests_) total.Add(g->stats());
  return total;
}

void ScenarioHost::Finish() {
  if (finished_) return;
  finished_ = true;
  for (Walker& w : walkers_) w.release.store(true);
  run_queue_.RemoveDomain(domain_);
  HVMM_CHECK(mm_->DestroyDomain(domain_).ok());
  engine_->Stop();
  guests_.clear();
}

}  // namespace testing
}  // namespace hvmm
