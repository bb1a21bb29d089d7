// FlushBackend: the interface of the two ways to flush remote TLBs, and
// what passes through it (DESIGN §3).
//
// A FlushRequest is one caller's flush: which pCPUs, what to invalidate,
// how (FlushFlag). A FlushBatcher merges concurrent requests into one
// FlushBatch and makes one FlushBackend::Flush call for it. The backends
// (flush_backends.h) are the hypervisor-assisted one and the IPI one;
// FlushPolicy::Send picks the batcher, and so the backend, from the flags.
//
// Thread-safety: the structs are values; FlushBackend::Flush is called by
// one batcher leader at a time, from any thread.
#ifndef HVMM_FLUSH_FLUSH_BACKEND_H_
#define HVMM_FLUSH_FLUSH_BACKEND_H_

#include <cstdint>
#include <vector>

#include "base/cpu_mask.h"
#include "cpu/tlb.h"

namespace hvmm {

// Flags of a flush request (DESIGN §3; Xen's FLUSH_TLB, FLUSH_NO_ASSIST).
enum FlushFlag : uint32_t {
  kFlushTlb = 1u << 0,  // Invalidate TLB and PSC entries in the scope.
  // Do not use the hypervisor's assist: the caller needs the IPI backend's
  // wait for every target's interrupt window (a page leaving a page-table
  // type under assisted+force-ipi; every flush under ipi).
  kFlushNoAssist = 1u << 1,
};

// One caller's flush: which pCPUs, what to invalidate, how. A batcher
// serves one backend; FlushPolicy::Send picks the batcher from the flags.
struct FlushRequest {
  CpuMask targets;
  FlushScope scope;
  uint32_t flags = kFlushTlb;
};

// What one backend call must do: invalidate every scope on every target.
struct FlushBatch {
  CpuMask targets;
  std::vector<FlushScope> scopes;
  int requests = 0;  // How many callers this call serves.
};

class FlushBackend {
 public:
  virtual ~FlushBackend() = default;
  // Performs the batch and returns when it is complete in the backend's
  // sense (DESIGN §3): the assisted backend once the targets' caches are
  // invalidated, the IPI backend once every target has acknowledged.
  virtual void Flush(const FlushBatch& batch) = 0;
};

}  // namespace hvmm

#endif  // HVMM_FLUSH_FLUSH_BACKEND_H_
