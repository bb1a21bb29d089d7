#include "cpu/pcpu.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
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

namespace {

// The futex word of a section sequence: its low 32 bits (x86-64 and every
// other little-endian target; a lock-free 64-bit atomic is the plain
// integer in memory).
uint32_t* FutexWord(std::atomic<uint64_t>* seq) {
  static_assert(sizeof(std::atomic<uint64_t>) == sizeof(uint64_t));
  static_assert(std::atomic<uint64_t>::is_always_lock_free);
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__);
  return reinterpret_cast<uint32_t*>(seq);
}

}  // namespace

void Pcpu::WakeSectionWaiters() {
  const long woken = syscall(SYS_futex, FutexWord(&section_seq_),
                            FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
  // Hand the host core to the updater this section held up (KVM's yield_to
  // for a preempted lock holder, in reverse): simulated pCPUs share cores
  // with updaters, and a woken waiter would otherwise wait out this
  // thread's time slice. Only when someone was actually woken.
  if (woken > 0) sched_yield();
}

void Pcpu::AwaitSectionEnd(uint64_t seq, std::chrono::nanoseconds backstop) {
  // seq_cst: the count is visible before the kernel compares the word, so
  // an exit after that compare sees a waiter (up to the exit's own
  // store-load window, which the backstop covers).
  section_waiters_.fetch_add(1, std::memory_order_seq_cst);
  const timespec timeout{
      static_cast<time_t>(backstop.count() / 1000000000),
      static_cast<long>(backstop.count() % 1000000000)};
  while (section_seq() == seq) {
    // Returns at once if the word no longer holds `seq`'s low half.
    syscall(SYS_futex, FutexWord(&section_seq_), FUTEX_WAIT_PRIVATE,
            static_cast<uint32_t>(seq), &timeout, nullptr, 0);
  }
  section_waiters_.fetch_sub(1, std::memory_order_release);
}

Pcpu::Pcpu(PcpuId id, TlbClock* clock, Tlb::Options tlb_options,
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
    const FlushRecord t = clock_->Tick();
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
