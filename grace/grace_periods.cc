#include "grace/grace_periods.h"

#include <atomic>
#include <chrono>
#include <thread>

#include "base/check.h"

namespace hvmm {
namespace {

// Polls of a section's sequence before a grace period sleeps on it.
constexpr int kSpinsBeforeSleep = 256;
// How long a grace period sleeps before it looks again by itself, should a
// section's exit have missed it (see Pcpu::AwaitSectionEnd).
constexpr std::chrono::microseconds kWakeBackstop(200);

// The pCPUs' shared SectionClock, or null if they have none.
SectionClock* SharedClock(const std::vector<Pcpu*>& pcpus) {
  if (pcpus.empty()) return nullptr;
  SectionClock* clock = pcpus[0]->section_clock();
  for (const Pcpu* p : pcpus) {
    HVMM_CHECK(p->section_clock() == clock)
        << "pCPU " << p->id() << " has another SectionClock";
  }
  return clock;
}

}  // namespace

GracePeriods::GracePeriods(std::vector<Pcpu*> pcpus)
    : pcpus_(std::move(pcpus)),
      clock_(SharedClock(pcpus_)),
      waited_on_(new std::atomic<int>[pcpus_.size()]()) {}

GraceCookie GracePeriods::GetState() {
  HVMM_CHECK(clock_ != nullptr) << "polled grace periods need a SectionClock";
  return clock_->Advance();
}

std::vector<GracePeriods::OpenSection> GracePeriods::OlderSectionsOf(
    DomainId domain, GraceCookie cookie) const {
  std::vector<OpenSection> open = OpenSectionsOf(domain);
  // Unknown: every open section may be older.
  if (cookie == GraceCookie()) return open;
  std::vector<OpenSection> older;
  for (const OpenSection& s : open) {
    // This section's entry time, or an earlier section's (older: we wait
    // needlessly), or a later one's (then this one is over).
    if (pcpus_[s.cpu.value()]->section_entry() < cookie) older.push_back(s);
  }
  return older;
}

bool GracePeriods::PollState(DomainId domain, GraceCookie cookie) const {
  return cookie != GraceCookie() && OlderSectionsOf(domain, cookie).empty();
}

GracePeriods::ReaderScan GracePeriods::Scan() const {
  HVMM_CHECK(clock_ != nullptr) << "polled grace periods need a SectionClock";
  ReaderScan scan;
  // As OpenSectionsOf: the fence orders every cookie taken before this
  // call (by this thread, or by one this call synchronized with) before
  // the reads of section state.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  scan.now_ = clock_->Now();
  for (const Pcpu* p : pcpus_) {
    if ((p->section_seq() & 1) == 0) continue;
    scan.open_.push_back({p->section_domain(), p->section_entry()});
  }
  return scan;
}

bool GracePeriods::ReaderScan::Elapsed(DomainId domain,
                                       GraceCookie cookie) const {
  if (cookie == GraceCookie() || cookie > now_) return false;
  for (const Open& s : open_) {
    if (s.domain == domain && s.entry < cookie) return false;
  }
  return true;
}

bool GracePeriods::CondSynchronizeAll(
    absl::Span<const std::pair<DomainId, GraceCookie>> waits) {
  const auto start = std::chrono::steady_clock::now();
  std::atomic_thread_fence(std::memory_order_seq_cst);
  std::vector<OpenSection> older;
  for (size_t i = 0; i < pcpus_.size(); ++i) {
    const uint64_t seq = pcpus_[i]->section_seq();
    if ((seq & 1) == 0) continue;
    const DomainId domain = pcpus_[i]->section_domain();
    const SectionTime entry = pcpus_[i]->section_entry();
    for (const auto& [d, cookie] : waits) {
      if (d == domain && (cookie == GraceCookie() || entry < cookie)) {
        older.push_back({PcpuId(i), seq});
        break;
      }
    }
  }
  if (older.empty()) {
    polls_elapsed_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  WaitOut(older, start);
  return true;
}

bool GracePeriods::CondSynchronize(DomainId domain, GraceCookie cookie) {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<OpenSection> older = OlderSectionsOf(domain, cookie);
  if (cookie != GraceCookie() && older.empty()) {
    polls_elapsed_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  // Sections that began after the cookie cannot see what it covers.
  WaitOut(older, start);
  return true;
}

std::vector<GracePeriods::OpenSection> GracePeriods::OpenSectionsOf(
    DomainId domain) const {
  // Orders the caller's unhooking stores before the reads of section state;
  // pairs with ReadSection's seq_cst entry.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  std::vector<OpenSection> open;
  for (size_t i = 0; i < pcpus_.size(); ++i) {
    const uint64_t seq = pcpus_[i]->section_seq();
    if ((seq & 1) == 0) continue;  // Not in a section.
    // This section's domain or a later section's; if later, `seq` is over
    // and waiting for it costs one check.
    if (pcpus_[i]->section_domain() != domain) continue;
    open.push_back({PcpuId(i), seq});
  }
  return open;
}

void GracePeriods::Record(uint64_t ns) { latency_ns_.Record(ns); }

int GracePeriods::Synchronize(DomainId domain) {
  return WaitOut(OpenSectionsOf(domain), std::chrono::steady_clock::now());
}

int GracePeriods::WaitOut(const std::vector<OpenSection>& open,
                          std::chrono::steady_clock::time_point start) {
  if (!open.empty()) waiting_.fetch_add(1, std::memory_order_release);
  for (const OpenSection& s : open) {
    waited_on_[s.cpu.value()].fetch_add(1, std::memory_order_release);
    // Spin briefly (sections are short), then sleep until the section's
    // exit wakes us: when pCPUs outnumber cores, a waiter that stays
    // runnable steals the core from the very reader it waits for, and one
    // that polls with short sleeps wakes too often to be scheduled promptly.
    Pcpu& pcpu = *pcpus_[s.cpu.value()];
    for (int spins = 0;
         spins < kSpinsBeforeSleep && pcpu.section_seq() == s.seq; ++spins) {
    }
    if (pcpu.section_seq() == s.seq) pcpu.AwaitSectionEnd(s.seq, kWakeBackstop);
    waited_on_[s.cpu.value()].fetch_sub(1, std::memory_order_release);
  }
  if (!open.empty()) waiting_.fetch_sub(1, std::memory_order_release);
  completed_.fetch_add(1, std::memory_order_relaxed);
  Record(std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now() - start)
             .count());
  return static_cast<int>(open.size());
}

int GracePeriods::SynchronizeExpedited(DomainId domain) {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<OpenSection> open = OpenSectionsOf(domain);
  if (!open.empty()) {
    IpiFlush ipi(/*scopes=*/{}, static_cast<int>(open.size()));
    for (const OpenSection& s : open) pcpus_[s.cpu.value()]->PostIpi(&ipi);
    ipi.Wait();
  }
  completed_.fetch_add(1, std::memory_order_relaxed);
  expedited_.fetch_add(1, std::memory_order_relaxed);
  Record(std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now() - start)
             .count());
  return static_cast<int>(open.size());
}

}  // namespace hvmm
