// Strong types for the values that mm code passes around.
//
// Two integers that mean different things never share a type: a machine frame
// number is not a domain id, and a virtual address is not a frame number. All
// types here are trivially copyable value types; they are thread-compatible.
//
// Example:
//   Mfn table(42);
//   Vaddr va(0x7f0000001000);
//   uint32_t slot = va.TableIndex(Level::kL1);
#ifndef HVMM_MM_TYPES_H_
#define HVMM_MM_TYPES_H_

#include <cstdint>
#include <ostream>
#include <utility>

namespace hvmm {

inline constexpr uint64_t kPageShift = 12;
inline constexpr uint64_t kPageSize = uint64_t{1} << kPageShift;
inline constexpr uint32_t kEntriesPerTable = 512;  // 4 KiB / 8-byte entries.

// Shared comparison and hashing for the integer wrappers below.
#define HVMM_STRONG_INT_OPS(Type)                                              \
  friend constexpr bool operator==(Type a, Type b) { return a.v_ == b.v_; }   \
  friend constexpr bool operator!=(Type a, Type b) { return a.v_ != b.v_; }   \
  friend constexpr bool operator<(Type a, Type b) { return a.v_ < b.v_; }     \
  friend constexpr bool operator<=(Type a, Type b) { return a.v_ <= b.v_; }   \
  friend constexpr bool operator>(Type a, Type b) { return a.v_ > b.v_; }     \
  friend constexpr bool operator>=(Type a, Type b) { return a.v_ >= b.v_; }   \
  template <typename H>                                                        \
  friend H AbslHashValue(H h, Type t) {                                        \
    return H::combine(std::move(h), t.v_);                                     \
  }

// Machine frame number: index of a 4 KiB frame in the host's frame table.
// Never interchangeable with a guest frame number or a table index.
class Mfn {
 public:
  constexpr explicit Mfn(uint64_t v) : v_(v) {}
  constexpr uint64_t value() const { return v_; }
  HVMM_STRONG_INT_OPS(Mfn)

 private:
  uint64_t v_;
};

// Domain id. 0 is reserved for "no domain" (Xen's DOMID_INVALID role): a free
// frame has owner 0, and domains are numbered from 1.
class DomainId {
 public:
  constexpr explicit DomainId(uint32_t v) : v_(v) {}
  constexpr uint32_t value() const { return v_; }
  constexpr bool valid() const { return v_ != 0; }
  static constexpr DomainId None() { return DomainId(0); }
  HVMM_STRONG_INT_OPS(DomainId)

 private:
  uint32_t v_;
};

// Index of a virtual CPU within its domain, 0 .. vcpus-1.
class VcpuId {
 public:
  constexpr explicit VcpuId(uint32_t v) : v_(v) {}
  constexpr uint32_t value() const { return v_; }
  HVMM_STRONG_INT_OPS(VcpuId)

 private:
  uint32_t v_;
};

#undef HVMM_STRONG_INT_OPS

// Page-table level. L1 tables map 4 KiB data frames; L4 is the root.
enum class Level : uint8_t { kL1 = 1, kL2 = 2, kL3 = 3, kL4 = 4 };

// The type a frame currently holds references of (Xen PGT_*). Exclusive: a
// frame is at most one of these at a time, which is what keeps a page table
// from ever being writably mapped.
enum class PageType : uint8_t {
  kNone = 0,
  kL1 = 1,
  kL2 = 2,
  kL3 = 3,
  kL4 = 4,
  kWritable = 5,
};
inline constexpr int kPageTypeCount = 6;

constexpr bool IsPageTableType(PageType t) {
  return t >= PageType::kL1 && t <= PageType::kL4;
}
constexpr PageType TableTypeFor(Level level) {
  return static_cast<PageType>(static_cast<uint8_t>(level));
}
constexpr Level LevelOf(PageType table_type) {
  return static_cast<Level>(static_cast<uint8_t>(table_type));
}
// The table level below `level`. REQUIRES: level != kL1.
constexpr Level LowerLevel(Level level) {
  return static_cast<Level>(static_cast<uint8_t>(level) - 1);
}

const char* PageTypeName(PageType t);
std::ostream& operator<<(std::ostream& os, PageType t);

// 48-bit canonical x86-64 virtual address.
class Vaddr {
 public:
  constexpr explicit Vaddr(uint64_t v) : v_(v) {}
  constexpr uint64_t value() const { return v_; }

  // Bits 63..47 all equal, as x86-64 requires.
  constexpr bool IsCanonical() const {
    const uint64_t top = v_ >> 47;
    return top == 0 || top == (uint64_t{1} << 17) - 1;
  }
  constexpr bool IsPageAligned() const { return (v_ & (kPageSize - 1)) == 0; }
  // Index of the entry that translates this address in a table of `level`.
  constexpr uint32_t TableIndex(Level level) const {
    const int shift = kPageShift + 9 * (static_cast<int>(level) - 1);
    return static_cast<uint32_t>((v_ >> shift) & (kEntriesPerTable - 1));
  }
  constexpr Vaddr PlusPages(uint64_t pages) const {
    return Vaddr(v_ + pages * kPageSize);
  }

  friend constexpr bool operator==(Vaddr a, Vaddr b) { return a.v_ == b.v_; }
  friend constexpr bool operator!=(Vaddr a, Vaddr b) { return a.v_ != b.v_; }

 private:
  uint64_t v_;
};

std::ostream& operator<<(std::ostream& os, Mfn mfn);
std::ostream& operator<<(std::ostream& os, DomainId d);
std::ostream& operator<<(std::ostream& os, Vaddr va);

}  // namespace hvmm

#endif  // HVMM_MM_TYPES_H_
