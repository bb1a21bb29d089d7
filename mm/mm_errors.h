// The errors that callers of the mm core can cause, one constructor each.
//
// Every error a client or guest can trigger is built here, so that its code
// and wording are decided once. docs/ERRORS.md lists them in a table; keep the
// two in step. The server maps absl codes to gRPC codes one-to-one.
#ifndef HVMM_MM_MM_ERRORS_H_
#define HVMM_MM_MM_ERRORS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "mm/types.h"

namespace hvmm {

// kNotFound: no live domain has this id.
absl::Status UnknownDomainError(DomainId domain);
// kInvalidArgument: the vCPU index is not below the domain's vCPU count.
absl::Status UnknownVcpuError(DomainId domain, VcpuId vcpu, uint32_t vcpus);
// kInvalidArgument: the frame number is beyond the frame table.
absl::Status BadFrameError(Mfn mfn);
// kPermissionDenied: the frame exists but belongs to another domain, or none.
absl::Status ForeignFrameError(Mfn mfn, DomainId domain);
// kFailedPrecondition: the frame holds references of another type.
absl::Status TypeConflictError(Mfn mfn, PageType held, uint32_t held_count,
                               PageType wanted);
// kFailedPrecondition: pins do not nest.
absl::Status DoublePinError(Mfn mfn);
// kFailedPrecondition: unpin of a frame that is not pinned.
absl::Status NotPinnedError(Mfn mfn);
// kFailedPrecondition: the frame is referenced and cannot be released.
absl::Status FrameInUseError(Mfn mfn, uint32_t count, uint32_t type_count);
// kFailedPrecondition: an entry write or range operation needs a page table
// that is in use (type count > 0) and it is not.
absl::Status NotAPageTableError(Mfn mfn, PageType type, uint32_t type_count);
// kResourceExhausted: the domain would exceed max_pages.
absl::Status QuotaExceededError(DomainId domain, uint64_t tot_pages,
                                uint64_t max_pages, uint64_t requested);
// kInvalidArgument: an entry uses bits hvmm does not allow.
absl::Status IllegalEntryError(Mfn table, uint32_t index, uint64_t entry,
                               absl::string_view why);
// kInvalidArgument: a malformed argument (bad index, level, address, count).
absl::Status MalformedArgumentError(absl::string_view what);
// kAlreadyExists: a page in the range is already mapped.
absl::Status MappingExistsError(Vaddr va);
// kFailedPrecondition: a range reaches one existing table through two
// different entries (aliased tables), so one entry would map two pages.
absl::Status AliasedTablesError(Mfn table, Level level, Vaddr first,
                                Vaddr second);
// kAlreadyExists: a live domain already has this name.
absl::Status DomainNameTakenError(absl::string_view name);

}  // namespace hvmm

#endif  // HVMM_MM_MM_ERRORS_H_
