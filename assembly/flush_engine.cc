#include "assembly/flush_engine.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/check.h"

namespace hvmm {

absl::StatusOr<std::unique_ptr<FlushEngine>> FlushEngine::Create(
    MemoryManager* mm, const Options& options) {
  if (options.pcpus < 1 || options.pcpus > kMaxPcpus) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pcpus must be in [1, ", kMaxPcpus, "], got ", options.pcpus));
  }
  if (!mm->ListDomains().empty()) {
    return absl::FailedPreconditionError(
        "the flush engine must be installed before the first domain");
  }
  std::unique_ptr<FlushEngine> e(new FlushEngine());
  for (int i = 0; i < options.pcpus; ++i) {
    e->pcpus_.push_back(std::make_unique<Pcpu>(PcpuId(i), &mm->clock(),
                                               options.tlb, &e->sections_));
    e->raw_pcpus_.push_back(e->pcpus_.back().get());
  }
  e->grace_ = std::make_unique<GracePeriods>(e->raw_pcpus_);
  e->ipi_ = std::make_unique<IpiFlushBackend>(e->raw_pcpus_);
  e->assisted_ =
      std::make_unique<AssistedFlushBackend>(e->raw_pcpus_, options.assisted);
  e->ipi_batcher_ = std::make_unique<FlushBatcher>(e->ipi_.get());
  e->assisted_batcher_ = std::make_unique<FlushBatcher>(e->assisted_.get());
  absl::StatusOr<std::unique_ptr<FlushPolicy>> policy = FlushPolicy::Create(
      options.policy, options.allow_unsafe,
      {e->raw_pcpus_, &mm->clock(), e->ipi_batcher_.get(),
       e->assisted_batcher_.get(), e->grace_.get(),
       mm->frame_table().frame_count()});
  if (!policy.ok()) return policy.status();
  e->policy_ = *std::move(policy);
  e->deferred_ = std::make_unique<DeferredRetirer>(
      &mm->allocator(), e->grace_.get(), options.deferred);
  e->retirer_ =
      std::make_unique<PolicyRetirer>(e->policy_.get(), e->deferred_.get(),
                                      &mm->frame_table(), &mm->allocator());
  mm->SetFlushHooks(e->policy_.get());
  mm->SetRetirer(e->retirer_.get());
  return e;
}

FlushEngine::~FlushEngine() { Stop(); }

void FlushEngine::Start(const std::function<Pcpu::Step(PcpuId cpu)>& step_for) {
  for (auto& p : pcpus_) p->Start(step_for(p->id()));
}

void FlushEngine::Stop() {
  for (auto& p : pcpus_) p->Stop();
}

}  // namespace hvmm
