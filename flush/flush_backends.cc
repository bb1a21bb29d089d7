#include "flush/flush_backends.h"

#include <chrono>

#include "base/check.h"

namespace hvmm {

void SpinFor(uint64_t ns) {
  if (ns == 0) return;
  const auto end =
      std::chrono::steady_clock::now() + std::chrono::nanoseconds(ns);
  while (std::chrono::steady_clock::now() < end) {
  }
}

void AssistedFlushBackend::Flush(const FlushBatch& batch) {
  calls_.fetch_add(1, std::memory_order_relaxed);
  SpinFor(options_.hypercall_latency_ns);
  batch.targets.ForEach([&](PcpuId cpu) {
    HVMM_CHECK(cpu.value() < pcpus_.size()) << "no pCPU " << cpu;
    for (const FlushScope& s : batch.scopes) {
      pcpus_[cpu.value()]->tlb().RequestFlush(s);
      if (s.kind == FlushScope::Kind::kAll) {
        pcpus_[cpu.value()]->NoteRemoteFullFlush();
      }
    }
    SpinFor(options_.per_target_ns);
    targets_.fetch_add(1, std::memory_order_relaxed);
  });
}

void IpiFlushBackend::Flush(const FlushBatch& batch) {
  calls_.fetch_add(1, std::memory_order_relaxed);
  const int n = batch.targets.Count();
  if (n == 0) return;
  IpiFlush ipi(batch.scopes, n);
  batch.targets.ForEach([&](PcpuId cpu) {
    HVMM_CHECK(cpu.value() < pcpus_.size()) << "no pCPU " << cpu;
    pcpus_[cpu.value()]->PostIpi(&ipi);
  });
  ipis_.fetch_add(n, std::memory_order_relaxed);
  ipi.Wait();
}

}  // namespace hvmm
