#include "cpu/pcpu.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "base/check.h"

namespace hvmm {

void IpiFlush::Acknowledge() {
  MutexLock lock(&mu_);
  HVMM_CHECK(pending_ > 0) << "IPI acknowledged more often than sent";
  if (--pending_ == 0) acknowledged_.SignalAll();
}

void IpiFlush::Wait() {
  MutexLock lock(&mu_);
  while (pending_ != 0) acknowledged_.Wait(&mu_);
}

Pcpu::Pcpu(int id, TlbClock* clock, Tlb::Options tlb_options,
           SectionClock* sections)
    : id_(id), clock_(clock), sections_(sections), tlb_(tlb_options) {}

Pcpu::~Pcpu() { Stop(); }

void Pcpu::Start(Step step) {
  HVMM_CHECK(!thread_.joinable()) << "pCPU " << id_ << " started twice";
  stop_.store(false, std::memory_order_relaxed);
  running_.store(true, std::memory_order_release);
  thread_ = std::thread([this, step = std::move(step)] { Run(step); });
}

void Pcpu::Stop() {
  {
    MutexLock lock(&mu_);
    stop_.store(true, std::memory_order_relaxed);
  }
  wake_.SignalAll();
  if (thread_.joinable()) thread_.join();
  running_.store(false, std::memory_order_release);
  // Nobody may be left waiting on an IPI to a stopped pCPU.
  ServeMailbox();
}

void Pcpu::Kick() {
  {
    MutexLock lock(&mu_);
    kicked_ = true;
  }
  wake_.SignalAll();
}

void Pcpu::PostIpi(IpiFlush* ipi) {
  {
    MutexLock lock(&mu_);
    HVMM_CHECK(running_.load(std::memory_order_acquire) &&
               !stop_.load(std::memory_order_relaxed))
        << "IPI posted to pCPU " << id_ << ", which is not running";
    mailbox_.push_back(ipi);
    has_mail_.store(true, std::memory_order_release);
  }
  wake_.SignalAll();
}

void Pcpu::FlushLocal(const FlushScope& scope) {
  HVMM_CHECK((section_seq_.load(std::memory_order_relaxed) & 1) == 0)
      << "pCPU " << id_ << " flushed locally inside a read section";
  if (scope.kind == FlushScope::Kind::kAll) {
    const uint64_t t = clock_->Tick();
    tlb_.Flush(scope);
    // 0 means the clock wrapped: until the period resets, NeedFlush() says
    // yes for every CPU, so a flush time of 0 is safe.
    flush_time_.store(t, std::memory_order_release);
    quiescent_flush_time_.store(t, std::memory_order_release);
    return;
  }
  tlb_.Flush(scope);
}

void Pcpu::ServeMailbox() {
  std::deque<IpiFlush*> mail;
  {
    MutexLock lock(&mu_);
    mail.swap(mailbox_);
    has_mail_.store(false, std::memory_order_relaxed);
  }
  for (IpiFlush* ipi : mail) {
    for (const FlushScope& s : ipi->scopes()) FlushLocal(s);
    ipis_served_.fetch_add(1, std::memory_order_relaxed);
    ipi->Acknowledge();
  }
}

void Pcpu::Run(Step step) {
  // How long an idle pCPU sleeps before it looks for work nobody kicked it
  // for (a vCPU another pCPU put back): 1 ms after work, doubling while
  // idle up to kMaxIdlePoll, so an idle host wakes each pCPU ~16 times a
  // second and uses no measurable CPU (tests/e2e/idle_test).
  constexpr auto kMinIdlePoll = std::chrono::milliseconds(1);
  constexpr auto kMaxIdlePoll = std::chrono::milliseconds(64);
  auto idle_poll = kMinIdlePoll;
  for (;;) {
    // Interrupt window: interrupts are on here and only here.
    if (has_mail_.load(std::memory_order_acquire)) ServeMailbox();
    if (stop_.load(std::memory_order_acquire)) return;

    // Interrupts off: the step's reads of page tables are a read-side
    // section that no IPI can interrupt.
    irqs_enabled_.store(false, std::memory_order_release);
    const bool worked = step(*this);
    irqs_enabled_.store(true, std::memory_order_release);
    steps_.fetch_add(1, std::memory_order_relaxed);
    if (worked) {
      idle_poll = kMinIdlePoll;
      continue;
    }

    // Idle, interrupts on: an IPI, a kick or Stop() wakes us; poll for new
    // work now and then. The next iteration's window serves any IPI first.
    MutexLock lock(&mu_);
    const auto deadline = std::chrono::steady_clock::now() + idle_poll;
    bool woken = true;
    while (!stop_.load(std::memory_order_relaxed) && !kicked_ &&
           mailbox_.empty()) {
      if (!wake_.WaitUntil(&mu_, deadline)) {
        woken = stop_.load(std::memory_order_relaxed) || kicked_ ||
                !mailbox_.empty();
        break;
      }
    }
    kicked_ = false;
    idle_poll = woken ? kMinIdlePoll : std::min(idle_poll * 2, kMaxIdlePoll);
  }
}

}  // namespace hvmm
