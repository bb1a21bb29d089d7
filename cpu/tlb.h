// Tlb: one simulated pCPU's translation caches.
//
// Two caches, both tagged by domain (DESIGN §2):
//   - the TLB proper: set-associative, (domain, virtual page) -> (mfn,
//     writable), LRU within a set;
//   - the paging-structure cache (PSC): upper-level entries, (domain, level,
//     address prefix) -> the next table, so a walk may start below the root.
//     Real CPUs cache these too (seed 003), which is why a freed page-table
//     page always needs its flush.
// Every entry keeps the generations it was derived from, so a use can check
// that none of its frames was freed or retyped since (the coherence half of
// the safety oracle, DESIGN §6).
//
// Invalidation. The owner flushes locally (FlushAll, FlushDomain,
// FlushRange). Any other thread may RequestFlush(): that is how the assisted
// backend invalidates a target without interrupting it. A request is queued
// and a sequence number bumped; the owner applies queued requests before its
// next Lookup, LookupTable or Insert, so an invalidation is in effect before
// any later use. An Insert whose walk began before a request (its fill token
// is older than the sequence) is dropped: the walk may have read the entry
// the request invalidates.
//
// A range flush also empties the domain's PSC entries, as INVLPG invalidates
// all paging-structure caches of the address space.
//
// Thread-safety: RequestFlush() and the counters from any thread; everything
// else only from the owning pCPU thread.
#ifndef HVMM_CPU_TLB_H_
#define HVMM_CPU_TLB_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

#include "base/mutex.h"
#include "mm/types.h"
#include "mm/walker.h"

namespace hvmm {

// What a flush invalidates. kAll: every domain. kDomain: one domain.
// kRange: pages [start, start + pages) of one domain, plus its PSC entries.
struct FlushScope {
  enum class Kind : uint8_t { kAll, kDomain, kRange };
  Kind kind = Kind::kAll;
  DomainId domain{0};
  Vaddr start{0};
  uint64_t pages = 0;

  static FlushScope All() { return FlushScope{}; }
  static FlushScope Domain(DomainId d) {
    return FlushScope{Kind::kDomain, d, Vaddr(0), 0};
  }
  static FlushScope Range(DomainId d, Vaddr start, uint64_t pages) {
    return FlushScope{Kind::kRange, d, start, pages};
  }
};

struct TlbEntry {
  bool valid = false;
  DomainId domain{0};
  uint64_t vpn = 0;  // Virtual page number (va >> 12).
  Mfn mfn{0};
  bool writable = false;
  uint32_t data_generation = 0;
  uint32_t tables_read = 0;
  std::array<Mfn, 4> tables{Mfn(0), Mfn(0), Mfn(0), Mfn(0)};
  std::array<uint32_t, 4> table_generations{};
  uint64_t last_use = 0;
};

// A cached upper-level entry: the table of `level` that translates the
// address prefix, and that table's generation when cached.
struct PscEntry {
  bool valid = false;
  DomainId domain{0};
  Level level = Level::kL1;  // Level of `table`: kL3, kL2 or kL1.
  uint64_t prefix = 0;       // va >> (12 + 9 * level).
  Mfn table{0};
  uint32_t generation = 0;  // The table's, when the walk read it.
  bool writable = false;    // Every entry above the table allows writes.
  uint64_t last_use = 0;
};

class Tlb {
 public:
  struct Options {
    uint32_t sets = 64;  // Power of two.
    uint32_t ways = 4;
    uint32_t psc_entries = 32;
  };

  explicit Tlb(Options options);
  Tlb() : Tlb(Options()) {}
  Tlb(const Tlb&) = delete;
  Tlb& operator=(const Tlb&) = delete;

  // The translation of va for domain, or null. Applies pending requests.
  // The use of a translation happens at this instant, as an instruction's
  // does on hardware.
  const TlbEntry* Lookup(DomainId domain, Vaddr va);

  // Whether a remote invalidation of `va` in `domain` has been requested
  // since the last Lookup() applied the pending ones: then the entry that
  // Lookup returned is its target, and its use (at Lookup) came before it.
  // A request of another domain or range says nothing about this entry.
  // Owner's thread; takes the pending lock only if some request is pending.
  bool InvalidationRequestedSinceLookup(DomainId domain, Vaddr va);

  // The deepest cached table on va's path (kL1 best), or null.
  const PscEntry* LookupTable(DomainId domain, Vaddr va);

  // Call before a walk; pass the token to Insert/InsertTable.
  uint64_t BeginFill();
  // Caches a successful walk's translation and the tables it passed, unless
  // a flush was requested since `fill_token`. Returns whether it was cached.
  bool Insert(uint64_t fill_token, DomainId domain, Vaddr va,
              const WalkResult& walk);

  void FlushAll();
  void FlushDomain(DomainId domain);
  void FlushRange(DomainId domain, Vaddr start, uint64_t pages);
  void Flush(const FlushScope& scope);

  // Any thread: queue an invalidation for the owner to apply before its next
  // use of either cache.
  void RequestFlush(const FlushScope& scope);

  // Counters; any thread (relaxed).
  uint64_t hits() const { return hits_.load(std::memory_order_relaxed); }
  uint64_t misses() const { return misses_.load(std::memory_order_relaxed); }
  uint64_t flushes_applied() const {
    return flushes_applied_.load(std::memory_order_relaxed);
  }
  // Remote invalidations requested of this TLB (RequestFlush calls).
  uint64_t requests_received() const {
    return request_seq_.load(std::memory_order_relaxed);
  }
  uint64_t fills_dropped() const {
    return fills_dropped_.load(std::memory_order_relaxed);
  }

 private:
  void ApplyPendingFlushes();
  uint32_t SetOf(DomainId domain, uint64_t vpn) const;
  void InsertPsc(DomainId domain, Level level, uint64_t prefix, Mfn table,
                 uint32_t generation, bool writable);

  const Options options_;
  // Owner thread only.
  std::vector<TlbEntry> entries_;  // sets * ways, set-major.
  std::vector<PscEntry> psc_;
  uint64_t use_clock_ = 0;
  uint64_t applied_seq_ = 0;

  // Remote requests.
  std::atomic<uint64_t> request_seq_{0};
  Mutex pending_mu_;
  std::vector<FlushScope> pending_ ABSL_GUARDED_BY(pending_mu_);

  std::atomic<uint64_t> hits_{0}, misses_{0}, flushes_applied_{0},
      fills_dropped_{0};
};

}  // namespace hvmm

#endif  // HVMM_CPU_TLB_H_
