// Page-table entry encoding (x86-64 long mode, 4 KiB pages only).
//
//   bit 0  P   present          bit 5  A   accessed
//   bit 1  RW  writable         bit 6  D   dirty
//   bit 2  US  user             bit 7  PS  large page (rejected: hvmm maps
//   bits 12..51  frame number              4 KiB pages only)
//   bit 63 NX  no-execute
//
// Any other bit set in a present entry makes it illegal, as does PS.
#ifndef HVMM_MM_PTE_H_
#define HVMM_MM_PTE_H_

#include <cstdint>

#include "mm/types.h"

namespace hvmm {

inline constexpr uint64_t kPtePresent = uint64_t{1} << 0;
inline constexpr uint64_t kPteWritable = uint64_t{1} << 1;
inline constexpr uint64_t kPteUser = uint64_t{1} << 2;
inline constexpr uint64_t kPteAccessed = uint64_t{1} << 5;
inline constexpr uint64_t kPteDirty = uint64_t{1} << 6;
inline constexpr uint64_t kPteLarge = uint64_t{1} << 7;
inline constexpr uint64_t kPteNoExecute = uint64_t{1} << 63;
inline constexpr uint64_t kPteFrameMask = ((uint64_t{1} << 52) - 1) & ~0xfffull;
inline constexpr uint64_t kPteAllowedFlags = kPtePresent | kPteWritable |
                                             kPteUser | kPteAccessed |
                                             kPteDirty | kPteNoExecute;

constexpr bool PtePresent(uint64_t e) { return (e & kPtePresent) != 0; }
constexpr bool PteWritable(uint64_t e) { return (e & kPteWritable) != 0; }
constexpr Mfn PteMfn(uint64_t e) { return Mfn((e & kPteFrameMask) >> kPageShift); }
// Whether a present entry uses only bits hvmm gives meaning to.
constexpr bool PteFlagsLegal(uint64_t e) {
  return (e & ~(kPteFrameMask | kPteAllowedFlags)) == 0;
}
constexpr uint64_t MakePte(Mfn mfn, uint64_t flags) {
  return ((mfn.value() << kPageShift) & kPteFrameMask) | flags;
}

}  // namespace hvmm

#endif  // HVMM_MM_PTE_H_
