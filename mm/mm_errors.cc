#include "mm/mm_errors.h"

#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace hvmm {

absl::Status UnknownDomainError(DomainId domain) {
  return absl::NotFoundError(absl::StrCat("unknown domain ", domain.value()));
}

absl::Status UnknownVcpuError(DomainId domain, VcpuId vcpu, uint32_t vcpus) {
  return absl::InvalidArgumentError(
      absl::StrCat("domain ", domain.value(), " has ", vcpus,
                   " vCPUs; no vCPU ", vcpu.value()));
}

absl::Status BadFrameError(Mfn mfn) {
  return absl::InvalidArgumentError(
      absl::StrFormat("bad frame: mfn 0x%x is beyond the frame table",
                      mfn.value()));
}

absl::Status ForeignFrameError(Mfn mfn, DomainId domain) {
  return absl::PermissionDeniedError(absl::StrFormat(
      "foreign frame: mfn 0x%x is not owned by domain %u", mfn.value(),
      domain.value()));
}

absl::Status TypeConflictError(Mfn mfn, PageType held, uint32_t held_count,
                               PageType wanted) {
  return absl::FailedPreconditionError(absl::StrFormat(
      "type conflict: mfn 0x%x has %u %s reference(s); cannot take type %s",
      mfn.value(), held_count, PageTypeName(held), PageTypeName(wanted)));
}

absl::Status DoublePinError(Mfn mfn) {
  return absl::FailedPreconditionError(
      absl::StrFormat("mfn 0x%x is already pinned; pins do not nest",
                      mfn.value()));
}

absl::Status NotPinnedError(Mfn mfn) {
  return absl::FailedPreconditionError(
      absl::StrFormat("mfn 0x%x is not pinned", mfn.value()));
}

absl::Status FrameInUseError(Mfn mfn, uint32_t count, uint32_t type_count) {
  return absl::FailedPreconditionError(absl::StrFormat(
      "frame in use: mfn 0x%x has %u reference(s) besides its allocation and "
      "type count %u",
      mfn.value(), count - 1, type_count));
}

absl::Status NotAPageTableError(Mfn mfn, PageType type, uint32_t type_count) {
  return absl::FailedPreconditionError(absl::StrFormat(
      "mfn 0x%x is not a page table in use (type %s, type count %u)",
      mfn.value(), PageTypeName(type), type_count));
}

absl::Status QuotaExceededError(DomainId domain, uint64_t tot_pages,
                                uint64_t max_pages, uint64_t requested) {
  return absl::ResourceExhaustedError(absl::StrFormat(
      "quota exceeded: domain %u owns %u of max_pages %u and asked for %u more",
      domain.value(), tot_pages, max_pages, requested));
}

absl::Status IllegalEntryError(Mfn table, uint32_t index, uint64_t entry,
                               absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrFormat("illegal entry 0x%016x at mfn 0x%x[%u]: %s", entry,
                      table.value(), index, why));
}

absl::Status MalformedArgumentError(absl::string_view what) {
  return absl::InvalidArgumentError(what);
}

absl::Status MappingExistsError(Vaddr va) {
  return absl::AlreadyExistsError(
      absl::StrFormat("virtual address 0x%x is already mapped", va.value()));
}

absl::Status AliasedTablesError(Mfn table, Level level, Vaddr first,
                                Vaddr second) {
  return absl::FailedPreconditionError(absl::StrFormat(
      "aliased tables: the range reaches l%d table mfn 0x%x both through "
      "0x%x and through 0x%x; map each alias in its own call",
      static_cast<int>(level), table.value(), first.value(), second.value()));
}

absl::Status DomainNameTakenError(absl::string_view name) {
  return absl::AlreadyExistsError(
      absl::StrCat("a domain named '", name, "' already exists"));
}

}  // namespace hvmm
