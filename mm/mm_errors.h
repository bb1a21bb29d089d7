// The errors that callers of the mm core can cause, one constructor each.
//
// Every error a client or guest can trigger is built here, so that its code,
// wording and reason are decided once. docs/ERRORS.md lists them in a table
// (a test checks that every reason is there). The server maps absl codes to
// gRPC codes in one place.
//
// Reasons. Besides its canonical code and a message naming what was wrong,
// every error carries a machine-readable reason, UPPER_SNAKE (for example
// TYPE_CONFLICT), that a client can branch on: an absl::Status payload
// under kReasonPayload. ErrorReason() reads it.
#ifndef HVMM_MM_MM_ERRORS_H_
#define HVMM_MM_MM_ERRORS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "mm/types.h"

namespace hvmm {

inline constexpr absl::string_view kReasonPayload = "hvmm.v1.ErrorReason";

// The reason of an error built here; "" for OK or a foreign status.
std::string ErrorReason(const absl::Status& status);
// `status` with its message prefixed by "`context`: ", its code and reason
// kept (e.g. which update of a batch failed).
absl::Status WithErrorContext(const absl::Status& status,
                              absl::string_view context);
// `status` with `reason` attached, for error constructors of other layers
// (the service's own errors). REQUIRES: !status.ok().
absl::Status WithErrorReason(absl::Status status, absl::string_view reason);

// kNotFound: no live domain has this id.
absl::Status UnknownDomainError(DomainId domain);
// kInvalidArgument: the vCPU index is not below the domain's vCPU count.
absl::Status UnknownVcpuError(DomainId domain, VcpuId vcpu, uint32_t vcpus);
// kInvalidArgument: the frame number is beyond the frame table.
absl::Status BadFrameError(Mfn mfn);
// kFailedPrecondition: the frame exists but belongs to another domain, or to
// none (Xen's get_page() failing on the owner check).
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
// kResourceExhausted: no free frame left on the host (after reclaiming
// frees that were only waiting for a grace period). The second form, for a
// request of `requested` frames of which only `free` could be had.
absl::Status PoolExhaustedError(uint64_t frame_count);
absl::Status PoolExhaustedError(uint64_t frame_count, uint64_t requested,
                                uint64_t free);
// kResourceExhausted: every domain id has been used.
absl::Status DomainIdsExhaustedError();
// kFailedPrecondition: MapRange/UnmapRange after the domain released the
// root table hvmm gave it.
absl::Status RootReleasedError(DomainId domain);
// kFailedPrecondition: a walk for a vCPU with no base pointer.
absl::Status NoBasePointerError(DomainId domain, VcpuId vcpu);
// kInvalidArgument: a flush-policy name or tag that names no policy.
absl::Status UnknownPolicyError(absl::string_view what);
// kFailedPrecondition: a flush-policy tag or change on an mm with no flush
// engine installed.
absl::Status NoFlushEngineError(absl::string_view what);
// kFailedPrecondition: assisted-unsafe without the explicit allowance.
absl::Status UnsafePolicyNotAllowedError(absl::string_view what);

}  // namespace hvmm

#endif  // HVMM_MM_MM_ERRORS_H_
