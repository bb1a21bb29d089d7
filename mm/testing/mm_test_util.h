// Test helpers for the mm core.
#ifndef HVMM_MM_TESTING_MM_TEST_UTIL_H_
#define HVMM_MM_TESTING_MM_TEST_UTIL_H_

#include <cstdint>
#include <memory>
#include <string>

#include "mm/memory_manager.h"

namespace hvmm {
namespace testing {

// A MemoryManager with a small frame table; CHECK-fails on error.
std::unique_ptr<MemoryManager> MakeMemoryManager(uint64_t frames,
                                                 int shards = 2);

// Every frame's metadata and contents, as one comparable string: two equal
// digests mean nothing observable changed. REQUIRES: no concurrent writers.
std::string StateDigest(const MemoryManager& mm);

// The lines that differ between two digests, at most `max_lines`; "" if
// they are equal.
std::string DigestDiff(const std::string& before, const std::string& after,
                       int max_lines = 8);

// Reads one entry straight from memory.
uint64_t EntryAt(const MemoryManager& mm, Mfn table, uint32_t index);

}  // namespace testing
}  // namespace hvmm

#endif  // HVMM_MM_TESTING_MM_TEST_UTIL_H_
