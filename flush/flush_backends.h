// The two ways to flush remote TLBs (DESIGN §3).
//
// AssistedFlushBackend models an L0 hypercall (Xen HVMOP_flush_tlbs, Hyper-V
// HvFlushVirtualAddressSpace): after a fixed hypercall latency it invalidates
// each target's caches remotely, paying a per-target cost, and returns
// without waiting for the targets. It does not wait for walkers with
// interrupts off: that is its speed, and the seed bug.
//
// IpiFlushBackend posts the flush to every target's mailbox and waits until
// every target has acknowledged. A target acknowledges only with interrupts
// on, so completion also proves that no walk which began before the flush is
// still running on any target.
//
// Both touch only the batch's targets: never a broadcast.
//
// Thread-safety: Flush() from any thread; counters from any thread.
#ifndef HVMM_FLUSH_FLUSH_BACKENDS_H_
#define HVMM_FLUSH_FLUSH_BACKENDS_H_

#include <atomic>
#include <cstdint>
#include <vector>

#include "cpu/pcpu.h"
#include "flush/flush_backend.h"

namespace hvmm {

class AssistedFlushBackend : public FlushBackend {
 public:
  struct Options {
    uint64_t hypercall_latency_ns = 2000;
    uint64_t per_target_ns = 100;
  };
  // `pcpus[i]` is pCPU i; they must outlive this.
  AssistedFlushBackend(std::vector<Pcpu*> pcpus, Options options)
      : pcpus_(std::move(pcpus)), options_(options) {}

  void Flush(const FlushBatch& batch) override;

  uint64_t calls() const { return calls_.load(std::memory_order_relaxed); }
  uint64_t targets_invalidated() const {
    return targets_.load(std::memory_order_relaxed);
  }

 private:
  const std::vector<Pcpu*> pcpus_;
  const Options options_;
  std::atomic<uint64_t> calls_{0}, targets_{0};
};

class IpiFlushBackend : public FlushBackend {
 public:
  explicit IpiFlushBackend(std::vector<Pcpu*> pcpus)
      : pcpus_(std::move(pcpus)) {}

  void Flush(const FlushBatch& batch) override;

  uint64_t calls() const { return calls_.load(std::memory_order_relaxed); }
  uint64_t ipis_sent() const { return ipis_.load(std::memory_order_relaxed); }

 private:
  const std::vector<Pcpu*> pcpus_;
  std::atomic<uint64_t> calls_{0}, ipis_{0};
};

// Busy-waits `ns` nanoseconds: sleeping cannot model microsecond costs.
void SpinFor(uint64_t ns);

}  // namespace hvmm

#endif  // HVMM_FLUSH_FLUSH_BACKENDS_H_
