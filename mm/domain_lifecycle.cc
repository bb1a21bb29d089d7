// MemoryManager: creating, destroying and describing domains. The rest of
// the MemoryManager is in memory_manager.cc.
#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"
#include "base/check.h"
#include "mm/memory_manager.h"
#include "mm/mm_errors.h"
#include "mm/type_transaction.h"

namespace hvmm {
namespace {

absl::Status CheckDomainConfig(const DomainConfig& config) {
  if (config.name.empty() || config.name.size() > 64) {
    return MalformedArgumentError("domain name must be 1..64 characters");
  }
  for (char c : config.name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
    if (!ok) {
      return MalformedArgumentError(
          "domain name may contain only letters, digits, '_', '-' and '.'");
    }
  }
  if (config.vcpus < 1 || config.vcpus > kMaxVcpus) {
    return MalformedArgumentError(absl::StrFormat(
        "vcpus must be in [1, %u], got %u", kMaxVcpus, config.vcpus));
  }
  if (config.max_pages < 1) {
    return MalformedArgumentError(
        "max_pages must be at least 1: the root table counts against it");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DomainId> MemoryManager::CreateDomain(
    const DomainConfig& config) {
  if (absl::Status s = CheckDomainConfig(config); !s.ok()) return s;
  // The tag is the flush engine's to judge; without one only 0 means
  // anything.
  if (hooks_ != nullptr) {
    if (absl::Status s = hooks_->CheckPolicyTag(config.flush_policy); !s.ok()) {
      return s;
    }
  } else if (config.flush_policy != 0) {
    return NoFlushEngineError("flush_policy != 0");
  }
  // Held throughout, so that the audit never sees a half-built domain.
  WriterMutexLock registry_lock(&domains_mu_);
  if (names_.contains(config.name)) return DomainNameTakenError(config.name);
  if (next_domain_id_ == 0) {
    return DomainIdsExhaustedError();
  }
  const DomainId id(next_domain_id_);
  auto domain = std::make_shared<Domain>(id, config.name, config.vcpus,
                                         config.max_pages, config.flush_policy);
  {
    MutexLock lock(&domain->mu());
    std::vector<Mfn> frames;
    if (absl::StatusOr<TlbStamp> s = AllocateIntoLocked(*domain, 1, &frames);
        !s.ok()) {
      return s.status();
    }
    const Mfn root = frames[0];
    TypeTransaction txn =
        NewTransaction(*domain, TypeTransaction::Mode::kWriteThrough);
    HVMM_CHECK(txn.GetPageAndType(root, PageType::kL4).ok());
    txn.SetPinned(root, true);
    for (uint32_t v = 0; v < config.vcpus; ++v) {
      HVMM_CHECK(txn.GetPageAndType(root, PageType::kL4).ok());
      txn.WriteBasePointer(VcpuId(v), root);
    }
    CommitLocked(*domain, txn);
    domain->set_root_locked(root);
  }
  ++next_domain_id_;
  names_.emplace(config.name, id);
  domains_.emplace(id, std::move(domain));
  return id;
}

absl::Status MemoryManager::DestroyDomain(DomainId id) {
  std::shared_ptr<Domain> domain = FindDomain(id);
  if (domain == nullptr) return UnknownDomainError(id);
  {
    MutexLock lock(&domain->mu());
    if (domain->dying_locked()) return UnknownDomainError(id);
    domain->set_dying_locked();

    // Relinquish: drop the roots of every reference chain (base pointers
    // and pins). Every other type reference hangs off those, so afterwards
    // every frame holds only its allocation reference.
    TypeTransaction txn =
        NewTransaction(*domain, TypeTransaction::Mode::kWriteThrough);
    for (uint32_t v = 0; v < domain->vcpus(); ++v) {
      if (std::optional<Mfn> root = domain->base_pointer(VcpuId(v))) {
        txn.WriteBasePointer(VcpuId(v), std::nullopt);
        txn.PutPageAndType(*root);
      }
    }
    std::vector<Mfn> frames = domain->owned_frames_locked();
    for (Mfn mfn : frames) {
      if (table_->info(mfn).has(kPagePinned)) {
        txn.SetPinned(mfn, false);
        txn.PutPageAndType(mfn);
      }
    }
    // Every frame leaves: flush (waiting out walkers: the root at least is
    // a table), then retire.
    CommitLocked(*domain, txn, frames);
  }
  retirer_->Drain(id);
  WriterMutexLock registry_lock(&domains_mu_);
  names_.erase(domain->name());
  domains_.erase(id);
  return absl::OkStatus();
}

absl::StatusOr<uint8_t> MemoryManager::SetFlushPolicy(DomainId id,
                                                      uint8_t tag) {
  if (hooks_ == nullptr) {
    return NoFlushEngineError("a flush policy change");
  }
  if (absl::Status s = hooks_->CheckPolicyTag(tag); !s.ok()) return s;
  absl::StatusOr<LockedDomain> d = Lock(id);
  if (!d.ok()) return d.status();
  Domain& domain = **d;
  domain.mu().AssertHeld();  // Held by the LockedDomain.
  const uint8_t previous = domain.flush_policy();
  domain.SetFlushPolicyLocked(tag);
  return previous;
}

absl::StatusOr<DomainInfo> MemoryManager::GetDomainInfo(DomainId id) const {
  absl::StatusOr<LockedDomain> d = Lock(id);
  if (!d.ok()) return d.status();
  const Domain& domain = **d;
  domain.mu().AssertHeld();  // Held by the LockedDomain.
  DomainInfo info;
  info.id = domain.id();
  info.name = domain.name();
  info.vcpus = domain.vcpus();
  info.max_pages = domain.max_pages();
  info.tot_pages = domain.tot_pages_locked();
  info.flush_policy = domain.flush_policy();
  info.root = domain.root_locked();
  return info;
}

std::vector<DomainInfo> MemoryManager::ListDomains() const {
  std::vector<DomainId> ids;
  {
    ReaderMutexLock lock(&domains_mu_);
    for (const auto& [id, d] : domains_) ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  std::vector<DomainInfo> out;
  for (DomainId id : ids) {
    // A domain destroyed since the listing is simply left out.
    if (absl::StatusOr<DomainInfo> info = GetDomainInfo(id); info.ok()) {
      out.push_back(*std::move(info));
    }
  }
  return out;
}

}  // namespace hvmm
