// Pcpu: one simulated physical CPU.
//
// A worker thread with a Tlb, a flush time on the TlbClock, an interrupt flag
// and an IPI mailbox (DESIGN §2). It alternates between guest work and
// interrupt windows:
//
//   loop:
//     interrupt window: serve the mailbox     <- the only place IPIs run
//     interrupts off; run one work step (e.g. a TLB use or a lockless walk)
//     interrupts on; no work? idle until an IPI, a Kick() or Stop()
//
// So an IPI posted while the pCPU is inside an interrupts-off section is
// acknowledged only after that section ends. Lockless walkers rely on exactly
// that (seed 004: Xen's spurious_page_fault; Linux GUP-fast): an IPI flush
// that has been acknowledged by every target proves that no walk which began
// before it is still running there. A hypervisor-assisted flush invalidates
// the Tlb remotely (Tlb::RequestFlush) and proves nothing of the kind.
//
// Thread-safety: PostIpi(), Stop(), irqs_enabled(), flush_time(), the
// counters and tlb().RequestFlush() from any thread; tlb() otherwise only
// from the step, on this pCPU's thread.
#ifndef HVMM_CPU_PCPU_H_
#define HVMM_CPU_PCPU_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "base/cpu_mask.h"
#include "base/mutex.h"
#include "cpu/section_clock.h"
#include "cpu/tlb.h"
#include "mm/tlb_clock.h"

namespace hvmm {

// A flush delivered by IPI. The sender owns it and waits in Wait() until
// every target has served it.
class IpiFlush {
 public:
  IpiFlush(std::vector<FlushScope> scopes, int targets)
      : scopes_(std::move(scopes)), pending_(targets) {}
  IpiFlush(const IpiFlush&) = delete;
  IpiFlush& operator=(const IpiFlush&) = delete;

  const std::vector<FlushScope>& scopes() const { return scopes_; }
  // Called by each target once it has applied the flush.
  void Acknowledge();
  // Returns once every target has acknowledged.
  void Wait();

 private:
  const std::vector<FlushScope> scopes_;
  Mutex mu_;
  CondVar acknowledged_;
  int pending_ ABSL_GUARDED_BY(mu_);
};

class Pcpu {
 public:
  // One unit of guest work, run with interrupts off on the pCPU's thread.
  // Returns false when there was nothing to do (the pCPU then idles).
  using Step = std::function<bool(Pcpu&)>;

  // `sections` (shared by all pCPUs of a machine; may be null when nothing
  // polls grace periods) timestamps read sections; see section_clock.h.
  Pcpu(PcpuId id, TlbClock* clock, Tlb::Options tlb_options,
       SectionClock* sections = nullptr);
  ~Pcpu();  // Stops the thread if running.
  Pcpu(const Pcpu&) = delete;
  Pcpu& operator=(const Pcpu&) = delete;

  // Starts the thread. REQUIRES: not running.
  void Start(Step step);
  // Serves IPIs already posted, then stops and joins the thread.
  void Stop();
  // Wakes an idle pCPU to look for work again.
  void Kick();

  // Queues an IPI; the pCPU applies its scopes and acknowledges it in its
  // next interrupt window. `ipi` must live until acknowledged.
  // REQUIRES: the pCPU is running (Start() called, Stop() not): otherwise
  // nobody would ever serve it.
  void PostIpi(IpiFlush* ipi);

  PcpuId id() const { return id_; }
  Tlb& tlb() { return tlb_; }
  bool irqs_enabled() const {
    return irqs_enabled_.load(std::memory_order_acquire);
  }
  // TlbClock record of this pCPU's last full flush of its caches
  // (FlushRecord(): never), local or requested remotely by the assisted
  // backend. Proves the caches hold nothing older: enough to filter a flush
  // for coherence.
  FlushRecord flush_time() const {
    return flush_time_.load(std::memory_order_acquire);
  }
  // The record of the last full flush this pCPU performed itself, in an
  // interrupt window: it also proves that no walk which began before it is
  // still running here. Only this record may filter a flush that must wait
  // out walkers (a NO_ASSIST flush); an assisted flush does not advance it.
  FlushRecord quiescent_flush_time() const {
    return quiescent_flush_time_.load(std::memory_order_acquire);
  }
  // Whether an IPI is posted and not yet served (for tests that must know
  // that an updater is waiting for this pCPU).
  bool ipi_pending() const { return has_mail_.load(std::memory_order_acquire); }
  uint64_t steps() const { return steps_.load(std::memory_order_relaxed); }
  uint64_t ipis_served() const {
    return ipis_served_.load(std::memory_order_relaxed);
  }

  // A read-side section (DESIGN §5): a lockless walk of `domain`'s tables,
  // inside a step. Grace periods for that domain wait for it; no other
  // domain's grace period does. Sections do not nest and never span a vCPU
  // switch, which is therefore a quiescent state.
  //
  // Ordering: entry stores the odd sequence and then issues a seq_cst fence
  // (Linux smp_mb()), paired with the seq_cst fence in
  // GracePeriods::Synchronize. Fence against fence is what the C++ memory
  // model needs for this store-buffering pattern: either the grace period
  // reads the odd sequence, or the walk's loads see the entry unhooked
  // before the grace period. Exit is a release store, so a grace period that
  // reads it has seen the walk's reads end. Only the owning pCPU writes the
  // sequence, so plain stores suffice.
  //
  // With a SectionClock, entry then reads the clock (after the fence, so
  // that either a polling updater sees the odd sequence or this section
  // sees its cookie's Advance() and everything stored before it) and
  // publishes it as entry_time(). Until that store lands, a poller reads
  // the previous section's time, which is older: it errs towards waiting.
  class ReadSection {
   public:
    ReadSection(Pcpu& pcpu, DomainId domain) : pcpu_(pcpu) {
      pcpu_.section_domain_.store(domain.value(), std::memory_order_relaxed);
      seq_ = pcpu_.section_seq_.load(std::memory_order_relaxed) + 1;
      pcpu_.section_seq_.store(seq_, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (pcpu_.sections_ != nullptr) {
        entry_time_ = pcpu_.sections_->Now();
        pcpu_.section_entry_.store(entry_time_, std::memory_order_release);
      }
    }
    ~ReadSection() {
      pcpu_.section_seq_.store(seq_ + 1, std::memory_order_release);
      // A grace period asleep on this section (AwaitSectionEnd): wake it.
      // One relaxed load of a line this pCPU just wrote when nobody waits.
      if (pcpu_.section_waiters_.load(std::memory_order_relaxed) != 0) {
        pcpu_.WakeSectionWaiters();
      }
    }
    ReadSection(const ReadSection&) = delete;
    ReadSection& operator=(const ReadSection&) = delete;

    // SectionClock time at entry (SectionTime() without a clock).
    SectionTime entry_time() const { return entry_time_; }

   private:
    Pcpu& pcpu_;
    uint64_t seq_;
    SectionTime entry_time_;
  };

  // Odd while a ReadSection is open. Any thread.
  uint64_t section_seq() const {
    return section_seq_.load(std::memory_order_acquire);
  }
  // The domain of the current (or last) section. Read after section_seq():
  // it is that section's domain or a later one's.
  DomainId section_domain() const {
    return DomainId(section_domain_.load(std::memory_order_acquire));
  }
  // SectionClock time at which the current (or an earlier) section began;
  // read after section_seq(). Never later than the truth.
  SectionTime section_entry() const {
    return section_entry_.load(std::memory_order_acquire);
  }
  SectionClock* section_clock() const { return sections_; }

  // Any thread but this pCPU's: returns once section_seq() != `seq`,
  // sleeping (a futex on the sequence) until the section's exit wakes it,
  // as liburcu's synchronize_rcu sleeps until the last reader's unlock.
  // The exit that wakes a waiter then yields its host core to it.
  // The exit reads the waiter count without a fence, so a wake can be
  // missed in a window of nanoseconds; `backstop` bounds what that costs
  // (the sequence is re-read after every wake-up, so it never costs
  // safety).
  void AwaitSectionEnd(uint64_t seq, std::chrono::nanoseconds backstop);

  // Any thread: the assisted backend has just requested a full flush of
  // this pCPU's caches. A request takes effect before any later use, and a
  // fill that raced it is dropped, so the caches count as flushed from now
  // (flush_time). A walker may still be running: quiescent_flush_time does
  // not move.
  void NoteRemoteFullFlush() {
    flush_time_.store(clock_->Tick(), std::memory_order_release);
  }

  // Applies a flush on this pCPU (its own thread only, outside any read
  // section). A full flush ticks the TlbClock and records the new time as
  // both flush records (Xen pre_flush/post_flush).
  void FlushLocal(const FlushScope& scope);

 private:
  void WakeSectionWaiters();
  void Run(Step step);
  // Serves every queued IPI. Interrupts must be on.
  void ServeMailbox();

  const PcpuId id_;
  TlbClock* const clock_;
  SectionClock* const sections_;
  Tlb tlb_;
  std::thread thread_;

  std::atomic<bool> irqs_enabled_{true};
  std::atomic<uint64_t> section_seq_{0};
  // Threads in AwaitSectionEnd (they sleep on section_seq_'s low word).
  std::atomic<int> section_waiters_{0};
  std::atomic<uint32_t> section_domain_{0};
  std::atomic<SectionTime> section_entry_{SectionTime()};
  std::atomic<FlushRecord> flush_time_{FlushRecord()};
  std::atomic<FlushRecord> quiescent_flush_time_{FlushRecord()};
  std::atomic<uint64_t> steps_{0};
  std::atomic<uint64_t> ipis_served_{0};

  Mutex mu_;
  CondVar wake_;
  std::deque<IpiFlush*> mailbox_ ABSL_GUARDED_BY(mu_);
  bool kicked_ ABSL_GUARDED_BY(mu_) = false;
  // Read by the work loop without mu_; written under it, so that an idle
  // wait on wake_ cannot miss them.
  std::atomic<bool> stop_{false};
  std::atomic<bool> running_{false};
  std::atomic<bool> has_mail_{false};
};

}  // namespace hvmm

#endif  // HVMM_CPU_PCPU_H_
