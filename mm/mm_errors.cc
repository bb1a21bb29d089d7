#include "mm/mm_errors.h"

#include <optional>
#include <sstream>
#include <string>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace hvmm {
absl::Status WithErrorReason(absl::Status status, absl::string_view reason) {
  status.SetPayload(kReasonPayload, absl::Cord(reason));
  return status;
}

absl::Status WithErrorContext(const absl::Status& status,
                              absl::string_view context) {
  absl::Status out(status.code(), absl::StrCat(context, ": ", status.message()));
  status.ForEachPayload([&out](absl::string_view url, const absl::Cord& p) {
    out.SetPayload(url, p);
  });
  return out;
}

namespace {

absl::Status WithReason(absl::Status status, absl::string_view reason) {
  return WithErrorReason(std::move(status), reason);
}

}  // namespace

std::string ErrorReason(const absl::Status& status) {
  const auto reason = status.GetPayload(kReasonPayload);
  return reason ? std::string(*reason) : std::string();
}

absl::Status UnknownDomainError(DomainId domain) {
  return WithReason(
      absl::NotFoundError(absl::StrCat("unknown domain ", domain.value())),
      "UNKNOWN_DOMAIN");
}

absl::Status UnknownVcpuError(DomainId domain, VcpuId vcpu, uint32_t vcpus) {
  return WithReason(absl::InvalidArgumentError(
                        absl::StrCat("domain ", domain.value(), " has ", vcpus,
                                     " vCPUs; no vCPU ", vcpu.value())),
                    "UNKNOWN_VCPU");
}

absl::Status BadFrameError(Mfn mfn) {
  return WithReason(
      absl::InvalidArgumentError(absl::StrFormat(
          "bad frame: mfn 0x%x is beyond the frame table", mfn.value())),
      "BAD_FRAME");
}

absl::Status ForeignFrameError(Mfn mfn, DomainId domain) {
  return WithReason(absl::FailedPreconditionError(absl::StrFormat(
                        "foreign frame: mfn 0x%x is not owned by domain %u",
                        mfn.value(), domain.value())),
                    "FOREIGN_FRAME");
}

absl::Status TypeConflictError(Mfn mfn, PageType held, uint32_t held_count,
                               PageType wanted) {
  return WithReason(
      absl::FailedPreconditionError(absl::StrFormat(
          "type conflict: mfn 0x%x has %u %s reference(s); cannot take type %s",
          mfn.value(), held_count, PageTypeName(held), PageTypeName(wanted))),
      "TYPE_CONFLICT");
}

absl::Status DoublePinError(Mfn mfn) {
  return WithReason(
      absl::FailedPreconditionError(absl::StrFormat(
          "mfn 0x%x is already pinned; pins do not nest", mfn.value())),
      "ALREADY_PINNED");
}

absl::Status NotPinnedError(Mfn mfn) {
  return WithReason(absl::FailedPreconditionError(
                        absl::StrFormat("mfn 0x%x is not pinned", mfn.value())),
                    "NOT_PINNED");
}

absl::Status FrameInUseError(Mfn mfn, uint32_t count, uint32_t type_count) {
  return WithReason(absl::FailedPreconditionError(absl::StrFormat(
                        "frame in use: mfn 0x%x has %u reference(s) besides "
                        "its allocation and "
                        "type count %u",
                        mfn.value(), count - 1, type_count)),
                    "FRAME_IN_USE");
}

absl::Status NotAPageTableError(Mfn mfn, PageType type, uint32_t type_count) {
  return WithReason(
      absl::FailedPreconditionError(absl::StrFormat(
          "mfn 0x%x is not a page table in use (type %s, type count %u)",
          mfn.value(), PageTypeName(type), type_count)),
      "NOT_A_PAGE_TABLE");
}

absl::Status QuotaExceededError(DomainId domain, uint64_t tot_pages,
                                uint64_t max_pages, uint64_t requested) {
  return WithReason(absl::ResourceExhaustedError(absl::StrFormat(
                        "quota exceeded: domain %u owns %u of max_pages %u and "
                        "asked for %u more",
                        domain.value(), tot_pages, max_pages, requested)),
                    "QUOTA_EXCEEDED");
}

absl::Status IllegalEntryError(Mfn table, uint32_t index, uint64_t entry,
                               absl::string_view why) {
  return WithReason(absl::InvalidArgumentError(absl::StrFormat(
                        "illegal entry 0x%016x at mfn 0x%x[%u]: %s", entry,
                        table.value(), index, why)),
                    "ILLEGAL_ENTRY");
}

absl::Status MalformedArgumentError(absl::string_view what) {
  return WithReason(absl::InvalidArgumentError(what), "MALFORMED_ARGUMENT");
}

absl::Status MappingExistsError(Vaddr va) {
  return WithReason(absl::AlreadyExistsError(absl::StrFormat(
                        "virtual address 0x%x is already mapped", va.value())),
                    "MAPPING_EXISTS");
}

absl::Status AliasedTablesError(Mfn table, Level level, Vaddr first,
                                Vaddr second) {
  return WithReason(
      absl::FailedPreconditionError(absl::StrFormat(
          "aliased tables: the range reaches l%d table mfn 0x%x both through "
          "0x%x and through 0x%x; map each alias in its own call",
          static_cast<int>(level), table.value(), first.value(),
          second.value())),
      "ALIASED_TABLES");
}

absl::Status DomainNameTakenError(absl::string_view name) {
  return WithReason(absl::AlreadyExistsError(absl::StrCat(
                        "a domain named '", name, "' already exists")),
                    "DOMAIN_NAME_TAKEN");
}

absl::Status PoolExhaustedError(uint64_t frame_count) {
  return WithReason(
      absl::ResourceExhaustedError(absl::StrCat(
          "frame pool exhausted: all ", frame_count, " frames are in use")),
      "POOL_EXHAUSTED");
}

absl::Status PoolExhaustedError(uint64_t frame_count, uint64_t requested,
                                uint64_t free) {
  return WithReason(
      absl::ResourceExhaustedError(absl::StrCat(
          "frame pool exhausted: ", requested, " frames requested, ", free,
          " of ", frame_count, " free")),
      "POOL_EXHAUSTED");
}

absl::Status DomainIdsExhaustedError() {
  return WithReason(absl::ResourceExhaustedError("domain ids exhausted"),
                    "DOMAIN_IDS_EXHAUSTED");
}

absl::Status RootReleasedError(DomainId domain) {
  return WithReason(
      absl::FailedPreconditionError(absl::StrFormat(
          "domain %u has released its root table", domain.value())),
      "ROOT_RELEASED");
}

absl::Status NoBasePointerError(DomainId domain, VcpuId vcpu) {
  return WithReason(absl::FailedPreconditionError(absl::StrFormat(
                        "vCPU %u of domain %u has no base pointer",
                        vcpu.value(), domain.value())),
                    "NO_BASE_POINTER");
}

absl::Status UnknownPolicyError(absl::string_view what) {
  return WithReason(absl::InvalidArgumentError(what), "UNKNOWN_POLICY");
}

absl::Status NoFlushEngineError(absl::string_view what) {
  return WithReason(
      absl::FailedPreconditionError(
          absl::StrCat(what, " needs a flush engine, and none is installed")),
      "NO_FLUSH_ENGINE");
}

absl::Status UnsafePolicyNotAllowedError(absl::string_view what) {
  return WithReason(absl::FailedPreconditionError(what),
                    "UNSAFE_POLICY_NOT_ALLOWED");
}

}  // namespace hvmm
