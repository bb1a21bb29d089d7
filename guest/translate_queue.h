// Translate: a walk of a guest's tables that someone other than the guest
// asks for (the API's Translate, the churn), run on a pCPU.
//
// The caller never walks. It queues a TranslateJob on one pCPU's
// TranslateQueue, kicks the pCPU and waits for the answer (Await). The
// pCPU's GuestCpu takes a queued job before its next guest access and walks
// from the vCPU's base pointer exactly as a guest walker does: inside a
// ReadSection for the domain, with interrupts off, its pCPU in the domain's
// dirty mask for the walk (GuestCpu::RunTranslate). Xen walks guest tables
// for a hypercall the same way, on the pCPU that serves it.
//
// A job the caller stops waiting for (a deadline) still runs; a job still
// queued when the queue closes is cancelled.
//
// Thread-safety: every method from any thread. Lock order: a queue's lock,
// then a job's (Close); no thread holds either across a wait for another
// thread, except Await, which waits on its own job's condition variable.
#ifndef HVMM_GUEST_TRANSLATE_QUEUE_H_
#define HVMM_GUEST_TRANSLATE_QUEUE_H_

#include <atomic>
#include <deque>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/cpu_mask.h"
#include "base/mutex.h"
#include "mm/domain.h"
#include "mm/types.h"
#include "mm/walker.h"

namespace hvmm {

// A Translate answer, from the pCPU that walked.
struct Translation {
  WalkResult walk;
  PcpuId pcpu;
};

class TranslateJob {
 public:
  // `domain` must be non-null; `vcpu` below its vCPU count.
  TranslateJob(std::shared_ptr<Domain> domain, VcpuId vcpu, Vaddr va,
               Access access);
  TranslateJob(const TranslateJob&) = delete;
  TranslateJob& operator=(const TranslateJob&) = delete;

  // Blocks until a pCPU walked, the queue closed, or `deadline`.
  // kDeadlineExceeded at the deadline (the job stays queued: its walk may
  // still run); kCancelled if the queue closed before a pCPU took it.
  absl::StatusOr<Translation> Await(
      absl::Time deadline = absl::InfiniteFuture());
  // Whether the job has an answer (walked or cancelled).
  bool finished() const;

  Domain& domain() const { return *domain_; }
  VcpuId vcpu() const { return vcpu_; }
  Vaddr va() const { return va_; }
  Access access() const { return access_; }

  // The pCPU side: the answer, once. Wakes Await.
  void Finish(const Translation& result);
  // The queue's side: no pCPU will walk. Wakes Await.
  void Cancel();

 private:
  const std::shared_ptr<Domain> domain_;
  const VcpuId vcpu_;
  const Vaddr va_;
  const Access access_;
  // hvmm::Mutex (std::mutex): the system's Abseil is not instrumented for
  // TSan.
  mutable Mutex mu_;
  CondVar finished_cv_;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  Translation result_ ABSL_GUARDED_BY(mu_);
};

// One pCPU's queue of jobs, oldest first.
class TranslateQueue {
 public:
  // kUnavailable once closed (the job is not queued).
  absl::Status Push(std::shared_ptr<TranslateJob> job);
  // The oldest job, or null. Lock-free when the queue is empty (the pCPU
  // asks before every guest access): a job pushed before the pCPU's kick
  // is seen by the step the kick wakes.
  std::shared_ptr<TranslateJob> Pop();
  // Refuses jobs from now on and cancels the queued ones. Idempotent.
  void Close();

 private:
  Mutex mu_;
  std::deque<std::shared_ptr<TranslateJob>> jobs_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  // jobs_.size(), readable without mu_ (Pop's empty test).
  std::atomic<size_t> queued_{0};
};

}  // namespace hvmm

#endif  // HVMM_GUEST_TRANSLATE_QUEUE_H_
