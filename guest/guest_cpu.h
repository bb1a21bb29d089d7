// The guest side of a pCPU: vCPU scheduling and the access loop.
//
// VcpuRunQueue holds the runnable vCPUs of all domains. Each pCPU's
// GuestCpu takes one, runs it for a time slice (a number of accesses), puts
// it back and takes the next: round robin. A vCPU switch happens outside any
// read section, so it is a quiescent state. Scheduling a domain's vCPU in
// marks the pCPU in the domain's dirty mask; switching to another domain (or
// to nothing) flushes the old domain's translations from the pCPU and clears
// it from that mask, so a mask holds the pCPUs running the domain, plus
// those about to drop out.
//
// One access (GuestCpu::Step, run by the pCPU with interrupts off):
//   1. open a ReadSection for the domain (the walker's read side);
//   2. TLB hit: use it, after checking that none of the frames the entry was
//      derived from has a new generation (coherence check);
//   3. miss, or a write through a read-only entry: walk the tables from the
//      deepest table the paging-structure cache holds for the address, or
//      else from the vCPU's base pointer, locklessly; check at the end that
//      every table it read still has the generation it saw (existence
//      check); fill the TLB.
// Failed checks are counted as violations (DESIGN §6), never repaired.
//
// Before each access the pCPU serves the Translate jobs queued for it
// (guest/translate_queue.h), oldest first, one per step: a walk from the
// job's vCPU base pointer inside a ReadSection for the job's domain, with
// the pCPU in that domain's dirty mask for the walk, and the existence
// check. It fills no cache.
//
// The pipe histogram (rcutorture's "Reader Pipe"): each walk is placed by
// the oldest state, at the end of the walk, of the tables it read:
//   0   none was released while the walk was inside its section;
//   1   one was released (unhooked: ReleaseStamps) during the walk but is
//       still neither freed nor retyped: the grace period is holding it;
//   k>=2  one was freed or retyped k-1 times (generations) while the walk
//       still read it: a grace period ended under a reader.
// Only buckets 0 and 1 may be non-zero; bucket >= 2 is an existence
// violation seen from the reader's side.
//
// Thread-safety: VcpuRunQueue from any thread. A GuestCpu belongs to one
// pCPU; its counters may be read from any thread.
#ifndef HVMM_GUEST_GUEST_CPU_H_
#define HVMM_GUEST_GUEST_CPU_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "base/mutex.h"
#include "cpu/pcpu.h"
#include "grace/release_stamps.h"
#include "guest/access_stream.h"
#include "guest/translate_queue.h"
#include "mm/domain.h"
#include "mm/frame_table.h"

namespace hvmm {

// A vCPU's access budget: a token bucket filled at `rate` accesses per
// second, holding at most a quarter second's worth (at least one), so the
// average rate holds even when the pCPU only looks every few tens of
// milliseconds (an idle pCPU's poll), in bursts. Rate 0: unthrottled.
class VcpuThrottle {
 public:
  explicit VcpuThrottle(double rate = 0)
      : rate_(rate), burst_(std::max(1.0, rate * 0.25)), credits_(1.0) {}
  // Whether an access may run at `now_ns` (and takes its credit).
  bool TryTake(int64_t now_ns) {
    if (!Ready(now_ns)) return false;
    if (rate_ != 0) credits_ -= 1.0;
    return true;
  }
  // Whether an access may run at `now_ns`, without taking its credit.
  bool Ready(int64_t now_ns) {
    if (rate_ == 0) return true;
    if (last_ns_ != 0 && now_ns > last_ns_) {
      credits_ = std::min(burst_,
                          credits_ + (now_ns - last_ns_) * 1e-9 * rate_);
    }
    last_ns_ = std::max(last_ns_, now_ns);
    return credits_ >= 1.0;
  }
  bool throttled() const { return rate_ != 0; }

 private:
  double rate_;
  double burst_;
  double credits_;
  int64_t last_ns_ = 0;
};

struct GuestVcpu {
  std::shared_ptr<Domain> domain;
  VcpuId vcpu{0};
  AccessStream stream;
  uint64_t epoch = 0;  // The AddDomain() call that made it.
  VcpuThrottle throttle;
  // The domain's current epoch in the run queue (0 once removed): a pCPU
  // running this vCPU sees a stop at its next access.
  std::shared_ptr<const std::atomic<uint64_t>> active_epoch;
  bool stopped() const {
    return active_epoch->load(std::memory_order_relaxed) != epoch;
  }
};

class VcpuRunQueue {
 public:
  // Adds every vCPU of `domain`, each with its own stream, replacing any
  // the domain had.
  void AddDomain(std::shared_ptr<Domain> domain, const WorkloadConfig& config,
                 uint64_t seed);
  // Drops the domain's vCPUs: queued ones now, running ones when their
  // pCPU puts them back, which it does at its next access (so a later
  // AddDomain never meets the old ones). Neither wakes idle pCPUs: the
  // caller kicks them (Pcpu::Kick).
  void RemoveDomain(DomainId domain);
  // Returns once no pCPU runs a vCPU of `domain` that RemoveDomain dropped
  // or is about to: call after RemoveDomain. Running pCPUs put such a vCPU
  // back at their next access, so this waits for one access at most.
  void AwaitNotRunning(DomainId domain);

  // The first queued vCPU that may run at `now_ns` (VcpuThrottle), or null.
  std::unique_ptr<GuestVcpu> PopRunnable(int64_t now_ns);
  std::unique_ptr<GuestVcpu> Pop() { return PopRunnable(0); }
  void Push(std::unique_ptr<GuestVcpu> vcpu);
  int size() const;

 private:
  void DropQueuedLocked(DomainId domain) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable Mutex mu_;
  std::deque<std::unique_ptr<GuestVcpu>> queue_ ABSL_GUARDED_BY(mu_);
  // Per domain with vCPUs, the epoch of its current ones (0 once removed);
  // a vCPU of another epoch is dropped when put back. Shared with the
  // vCPUs, which running pCPUs check at each access.
  absl::flat_hash_map<DomainId, std::shared_ptr<std::atomic<uint64_t>>>
      epochs_ ABSL_GUARDED_BY(mu_);
  uint64_t next_epoch_ ABSL_GUARDED_BY(mu_) = 1;
  // Per domain, its vCPUs popped and not yet put back.
  absl::flat_hash_map<DomainId, int> running_ ABSL_GUARDED_BY(mu_);
  CondVar put_back_;
};

enum class ViolationKind : uint8_t { kExistence, kCoherence };

// The walk failpoint of the torture and the demo: a walker that holds a
// pointer to a table, its generation recorded, spins `*ns` nanoseconds
// before reading it (the seed bug's window, and only it). A slow guest
// walker, so that a run of seconds shows what years of real walks would.
// `ns` must outlive every walk.
WalkHooks SpinAtTableReached(const uint64_t* ns);

// rcutorture's RCU_TORTURE_PIPE_LEN.
inline constexpr int kPipeLen = 11;

struct GuestCpuStats {
  uint64_t accesses = 0;
  uint64_t tlb_hits = 0;
  uint64_t tlb_misses = 0;
  uint64_t walks = 0;            // TLB misses walked, and Translate jobs.
  uint64_t translate_walks = 0;  // Of walks: Translate jobs.
  uint64_t psc_walks = 0;  // Walks that started from a PSC entry.
  uint64_t faults = 0;  // Not present, write-protected, or no base pointer.
  uint64_t walk_retries = 0;  // Pointers a walker found changed on re-read.
  uint64_t vcpu_switches = 0;
  uint64_t halts = 0;  // Throttled vCPUs that yielded their pCPU.
  uint64_t existence_violations = 0;
  uint64_t coherence_violations = 0;
  uint64_t pipe[kPipeLen] = {};  // Walks by pipe count (file comment).
  // The most recent violation, for the report (0 if none).
  uint32_t last_violation_domain = 0;
  uint64_t last_violation_frame = 0;

  // Adds another pCPU's counters; keeps its violation if it has one.
  void Add(const GuestCpuStats& o);
};

class GuestCpu {
 public:
  struct Options {
    uint32_t slice_accesses = 256;
    // Failpoints in every walk (torture's --walk-delay-ns widens the
    // window a stale walker has at WalkPoint::kTableReached).
    WalkHooks walk_hooks;
    // When tables were released, for pipe bucket 1 (the flush policy's;
    // may be null: walks then land in 0 or >= 2). The pCPUs need a
    // SectionClock for the comparison to mean anything.
    const ReleaseStamps* release_stamps = nullptr;
    // Start walks from the paging-structure cache when it knows a table on
    // the path.
    bool use_psc = true;
    // Called on the pCPU's thread, inside its step, for every violation
    // (after it is counted); e.g. to count them by the domain's policy.
    // Must not block.
    std::function<void(ViolationKind, const Domain&, Mfn)> on_violation;
    // This pCPU's Translate jobs (may be null: none), and failpoints in
    // their walks.
    TranslateQueue* translate_queue = nullptr;
    WalkHooks translate_walk_hooks;
  };

  GuestCpu(const FrameTable* table, VcpuRunQueue* run_queue, Options options)
      : table_(table), run_queue_(run_queue), options_(options) {}
  // Puts the running vCPU back. REQUIRES: the pCPU has stopped.
  ~GuestCpu();

  // The pCPU's step: one Translate job if one is queued, else one access.
  // False if there was neither (no vCPU is runnable).
  bool Step(Pcpu& self);

  GuestCpuStats stats() const;

 private:
  void Switch(Pcpu& self);
  void RunTranslate(Pcpu& self, TranslateJob& job);
  bool FramesUnchanged(const TlbEntry& e) const;
  // The walk's pipe count (file comment); `entry_time` is its section's.
  int PipeCount(const WalkResult& w, SectionTime entry_time) const;

  const FrameTable* const table_;
  VcpuRunQueue* const run_queue_;
  const Options options_;
  std::unique_ptr<GuestVcpu> current_;
  uint32_t slice_left_ = 0;
  // Per domain still in this pCPU's caches, the root it last ran on
  // (Mfn + 1; 0: none).
  absl::flat_hash_map<uint32_t, uint64_t> last_root_;

  void NoteViolation(ViolationKind kind, const Domain& domain, Mfn frame);

  std::atomic<uint64_t> accesses_{0}, hits_{0}, misses_{0}, walks_{0},
      translate_walks_{0}, psc_walks_{0}, walk_retries_{0}, faults_{0},
      switches_{0}, halts_{0}, existence_violations_{0},
      coherence_violations_{0};
  std::atomic<uint64_t> pipe_[kPipeLen] = {};
  std::atomic<uint32_t> last_violation_domain_{0};
  std::atomic<uint64_t> last_violation_frame_{0};
};

}  // namespace hvmm

#endif  // HVMM_GUEST_GUEST_CPU_H_
