// GracePeriods: per-domain grace periods over the pCPUs' read sections.
//
// The readers of domain D are the lockless walks of D's tables: the
// Pcpu::ReadSection(pcpu, D) sections (DESIGN §5). A grace period for D ends
// once every section for D that was open when it began has closed. Sections
// for other domains never delay it; a pCPU not in a section needs nothing.
//
// Synchronize() is the normal grace period: it reads each pCPU's section
// state once and waits (spinning briefly, then sleeping) for the pCPUs that
// were inside a section for D to leave it. SynchronizeExpedited() is IPI-driven:
// it sends an empty IPI to those pCPUs and waits for the acknowledgements,
// which can only come from an interrupt window, after the section ended.
//
// Polled grace periods (Linux get_state_synchronize_rcu(),
// poll_state_synchronize_rcu(), cond_synchronize_rcu()): when the pCPUs share
// a SectionClock, GetState() after an unhook returns a cookie, and
// PollState(D, cookie) says without waiting whether every section of D open
// now began after it: then a full grace period for D has elapsed since the
// cookie. CondSynchronize() waits only when it has not. An updater that
// unhooks early and retypes later thus usually waits for nothing.
//
// Thread-safety: all methods from any thread except a pCPU's own (a pCPU
// waiting for itself would never return).
#ifndef HVMM_GRACE_GRACE_PERIODS_H_
#define HVMM_GRACE_GRACE_PERIODS_H_

#include <atomic>
#include <chrono>
#include <memory>
#include <utility>
#include <cstdint>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/types/span.h"
#include "base/log2_histogram.h"
#include "base/cpu_mask.h"
#include "cpu/pcpu.h"
#include "mm/types.h"

namespace hvmm {

class GracePeriods {
 public:
  // `pcpus[i]` is pCPU i; they must outlive this.
  // Polled grace periods need every pCPU built with the same SectionClock.
  explicit GracePeriods(std::vector<Pcpu*> pcpus);
  GracePeriods(const GracePeriods&) = delete;
  GracePeriods& operator=(const GracePeriods&) = delete;

  // Returns once every read section for `domain` open at the call has
  // closed. Returns the number of pCPUs it had to wait for.
  int Synchronize(DomainId domain);
  // The same, by IPI (for memory pressure and queue-full fallbacks).
  int SynchronizeExpedited(DomainId domain);

  // A cookie for "now" (after the caller's stores so far). Never
  // GraceCookie(). REQUIRES: the pCPUs share a SectionClock.
  GraceCookie GetState();
  // True once every read section for `domain` that could have begun before
  // `cookie` was taken has closed. GraceCookie() ("unknown") is never
  // elapsed. Does not wait; read sections of other domains never matter.
  bool PollState(DomainId domain, GraceCookie cookie) const;
  // Unless PollState(domain, cookie): a grace period that waits only for the
  // sections of `domain` older than `cookie`. Returns whether it had to.
  bool CondSynchronize(DomainId domain, GraceCookie cookie);

  // What one pass over the pCPUs saw: answers PollState for many (domain,
  // cookie) pairs at the price of one (the DeferredRetirer polls every
  // pending batch of a CPU with one scan).
  class ReaderScan {
   public:
    // Whether, when the scan ran, every section of `domain` that could
    // have begun before `cookie` had closed. GraceCookie() is never
    // elapsed, nor is a cookie taken after the scan began.
    bool Elapsed(DomainId domain, GraceCookie cookie) const;

   private:
    friend class GracePeriods;
    struct Open {
      DomainId domain;
      SectionTime entry;  // The section's entry time (or an earlier one's).
    };
    SectionTime now_;  // The SectionClock at the scan.
    absl::InlinedVector<Open, 8> open_;
  };
  // REQUIRES: the pCPUs share a SectionClock.
  ReaderScan Scan() const;

  // One grace period for many domains: returns once, for every (domain,
  // cookie) in `waits`, every section of that domain older than the cookie
  // has closed. Counts one grace period if it had to wait for anyone.
  // Returns whether it had to.
  bool CondSynchronizeAll(
      absl::Span<const std::pair<DomainId, GraceCookie>> waits);

  uint64_t completed() const { return completed_.load(std::memory_order_relaxed); }
  // Grace periods waiting for a reader right now (tests use it to know an
  // updater is held back, without sleeping).
  int waiting() const { return waiting_.load(std::memory_order_acquire); }
  // Whether a grace period is waiting right now for the section open on
  // pCPU `cpu`.
  bool WaitingFor(PcpuId cpu) const {
    return waited_on_[cpu.value()].load(std::memory_order_acquire) > 0;
  }
  uint64_t expedited() const { return expedited_.load(std::memory_order_relaxed); }
  // CondSynchronize calls that found their grace period already elapsed.
  uint64_t polls_elapsed() const {
    return polls_elapsed_.load(std::memory_order_relaxed);
  }
  // Latency quantile (0 < q <= 1) of completed grace periods, in ns, from a
  // log2 histogram (so within a factor of 2); 0 if none completed.
  uint64_t LatencyQuantileNs(double q) const {
    return latency_ns_.Read().Quantile(q);
  }
  // Every completed grace period's latency, in ns.
  Log2Histogram::Snapshot Latencies() const { return latency_ns_.Read(); }

 private:
  struct OpenSection {
    PcpuId cpu;
    uint64_t seq;
  };
  // After a seq_cst fence: the sections for `domain` open right now.
  std::vector<OpenSection> OpenSectionsOf(DomainId domain) const;
  // Those of them that may have begun before `cookie` (all, for
  // GraceCookie()).
  std::vector<OpenSection> OlderSectionsOf(DomainId domain,
                                           GraceCookie cookie) const;
  // Waits until each of `open` has closed; counts one grace period.
  int WaitOut(const std::vector<OpenSection>& open,
              std::chrono::steady_clock::time_point start);

  void Record(uint64_t ns);

  const std::vector<Pcpu*> pcpus_;
  SectionClock* const clock_;  // Null without polled grace periods.
  std::atomic<uint64_t> completed_{0}, expedited_{0}, polls_elapsed_{0};
  std::atomic<int> waiting_{0};
  const std::unique_ptr<std::atomic<int>[]> waited_on_;  // Per pCPU.
  Log2Histogram latency_ns_;
};

}  // namespace hvmm

#endif  // HVMM_GRACE_GRACE_PERIODS_H_
