// Lazily backed, zero-filled memory for large per-frame arrays.
//
// MapLazyZeroed reserves `bytes` of anonymous MAP_NORESERVE memory: the
// kernel backs a page with zeroes on first touch, so an array sized for
// every host frame costs RAM only where it is used. LazyZeroedArray<T> is
// an owning array of such memory, for types whose all-zero bytes are a
// valid value (std::atomic of an integer, plain records).
//
// Thread-safety: the array is immutable after construction; its elements
// follow their own rules.
#ifndef HVMM_BASE_LAZY_ZEROED_H_
#define HVMM_BASE_LAZY_ZEROED_H_

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "base/check.h"

namespace hvmm {

// Null on failure (errno set).
inline void* MapLazyZeroed(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

template <typename T>
class LazyZeroedArray {
  static_assert(std::is_standard_layout<T>::value &&
                    std::is_trivially_destructible<T>::value,
                "elements live in zero-filled memory and are never destroyed");

 public:
  // CHECK-fails if the address space cannot be reserved.
  explicit LazyZeroedArray(uint64_t size)
      : size_(size),
        data_(static_cast<T*>(MapLazyZeroed(size * sizeof(T)))) {
    HVMM_CHECK(data_ != nullptr) << "cannot reserve " << size * sizeof(T)
                                 << " bytes";
  }
  ~LazyZeroedArray() { munmap(data_, size_ * sizeof(T)); }
  LazyZeroedArray(const LazyZeroedArray&) = delete;
  LazyZeroedArray& operator=(const LazyZeroedArray&) = delete;

  uint64_t size() const { return size_; }
  T& operator[](uint64_t i) const {
    HVMM_CHECK(i < size_) << i << " >= " << size_;
    return data_[i];
  }

 private:
  const uint64_t size_;
  T* const data_;
};

}  // namespace hvmm

#endif  // HVMM_BASE_LAZY_ZEROED_H_
