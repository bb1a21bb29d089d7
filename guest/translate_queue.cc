#include "guest/translate_queue.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/check.h"

namespace hvmm {

TranslateJob::TranslateJob(std::shared_ptr<Domain> domain, VcpuId vcpu,
                           Vaddr va, Access access)
    : domain_(std::move(domain)), vcpu_(vcpu), va_(va), access_(access) {
  HVMM_CHECK(domain_ != nullptr) << "a Translate job needs a domain";
  HVMM_CHECK(vcpu_.value() < domain_->vcpus())
      << "vCPU " << vcpu_.value() << " of " << domain_->vcpus();
}

absl::StatusOr<Translation> TranslateJob::Await(absl::Time deadline) {
  MutexLock lock(&mu_);
  const auto chrono_deadline = absl::ToChronoTime(deadline);
  while (!finished_) {
    if (deadline == absl::InfiniteFuture()) {
      finished_cv_.Wait(&mu_);
    } else if (!finished_cv_.WaitUntil(&mu_, chrono_deadline) && !finished_) {
      return absl::DeadlineExceededError(absl::StrCat(
          "no pCPU walked 0x", absl::Hex(va_.value()), " for domain ",
          domain_->id().value(), " before the deadline"));
    }
  }
  if (cancelled_) {
    return absl::CancelledError(absl::StrCat(
        "the pCPUs stopped before walking 0x", absl::Hex(va_.value()),
        " for domain ", domain_->id().value()));
  }
  return result_;
}

bool TranslateJob::finished() const {
  MutexLock lock(&mu_);
  return finished_;
}

void TranslateJob::Finish(const Translation& result) {
  {
    MutexLock lock(&mu_);
    HVMM_CHECK(!finished_) << "a Translate job answered twice";
    result_ = result;
    finished_ = true;
  }
  finished_cv_.SignalAll();
}

void TranslateJob::Cancel() {
  {
    MutexLock lock(&mu_);
    HVMM_CHECK(!finished_) << "a walked Translate job cancelled";
    cancelled_ = true;
    finished_ = true;
  }
  finished_cv_.SignalAll();
}

absl::Status TranslateQueue::Push(std::shared_ptr<TranslateJob> job) {
  MutexLock lock(&mu_);
  if (closed_) {
    return absl::UnavailableError("the pCPU's Translate queue is closed");
  }
  jobs_.push_back(std::move(job));
  queued_.store(jobs_.size(), std::memory_order_release);
  return absl::OkStatus();
}

std::shared_ptr<TranslateJob> TranslateQueue::Pop() {
  if (queued_.load(std::memory_order_acquire) == 0) return nullptr;
  MutexLock lock(&mu_);
  if (jobs_.empty()) return nullptr;
  std::shared_ptr<TranslateJob> job = std::move(jobs_.front());
  jobs_.pop_front();
  queued_.store(jobs_.size(), std::memory_order_release);
  return job;
}

void TranslateQueue::Close() {
  MutexLock lock(&mu_);
  closed_ = true;
  for (const std::shared_ptr<TranslateJob>& job : jobs_) job->Cancel();
  jobs_.clear();
  queued_.store(0, std::memory_order_release);
}

}  // namespace hvmm
