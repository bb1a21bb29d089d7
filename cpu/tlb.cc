#include "cpu/tlb.h"

#include <utility>

#include "base/check.h"

namespace hvmm {
namespace {

constexpr int PrefixShift(Level level) {
  // A table of `level` translates addresses sharing bits above this shift.
  return static_cast<int>(kPageShift) + 9 * static_cast<int>(level);
}

bool InRange(uint64_t vpn, const FlushScope& s) {
  const uint64_t first = s.start.value() >> kPageShift;
  return vpn >= first && vpn - first < s.pages;
}

}  // namespace

Tlb::Tlb(Options options)
    : options_(options),
      entries_(static_cast<size_t>(options.sets) * options.ways),
      psc_(options.psc_entries) {
  HVMM_CHECK(options.sets > 0 && (options.sets & (options.sets - 1)) == 0)
      << "TLB sets must be a power of two";
  HVMM_CHECK(options.ways > 0 && options.psc_entries > 0);
}

uint32_t Tlb::SetOf(DomainId domain, uint64_t vpn) const {
  const uint64_t h = (vpn ^ (uint64_t{domain.value()} * 0x9e3779b97f4a7c15ull));
  return static_cast<uint32_t>((h ^ (h >> 17)) & (options_.sets - 1));
}

void Tlb::ApplyPendingFlushes() {
  const uint64_t seq = request_seq_.load(std::memory_order_acquire);
  if (seq == applied_seq_) return;
  std::vector<FlushScope> pending;
  {
    MutexLock lock(&pending_mu_);
    pending.swap(pending_);
    // Everything requested up to here is in `pending`; a later request bumps
    // the sequence again and is applied next time.
    applied_seq_ = request_seq_.load(std::memory_order_acquire);
  }
  for (const FlushScope& s : pending) Flush(s);
}

const TlbEntry* Tlb::Lookup(DomainId domain, Vaddr va) {
  ApplyPendingFlushes();
  const uint64_t vpn = va.value() >> kPageShift;
  TlbEntry* set = &entries_[static_cast<size_t>(SetOf(domain, vpn)) *
                            options_.ways];
  for (uint32_t w = 0; w < options_.ways; ++w) {
    TlbEntry& e = set[w];
    if (e.valid && e.domain == domain && e.vpn == vpn) {
      e.last_use = ++use_clock_;
      hits_.fetch_add(1, std::memory_order_relaxed);
      return &e;
    }
  }
  misses_.fetch_add(1, std::memory_order_relaxed);
  return nullptr;
}

bool Tlb::InvalidationRequestedSinceLookup(DomainId domain, Vaddr va) {
  if (request_seq_.load(std::memory_order_acquire) == applied_seq_) {
    return false;
  }
  const uint64_t vpn = va.value() >> kPageShift;
  MutexLock lock(&pending_mu_);
  for (const FlushScope& s : pending_) {
    switch (s.kind) {
      case FlushScope::Kind::kAll:
        return true;
      case FlushScope::Kind::kDomain:
        if (s.domain == domain) return true;
        break;
      case FlushScope::Kind::kRange:
        if (s.domain == domain && InRange(vpn, s)) return true;
        break;
    }
  }
  return false;
}

const PscEntry* Tlb::LookupTable(DomainId domain, Vaddr va) {
  ApplyPendingFlushes();
  PscEntry* best = nullptr;
  for (PscEntry& p : psc_) {
    if (!p.valid || p.domain != domain ||
        p.prefix != (va.value() >> PrefixShift(p.level))) {
      continue;
    }
    if (best == nullptr || p.level < best->level) best = &p;
  }
  if (best != nullptr) best->last_use = ++use_clock_;
  return best;
}

uint64_t Tlb::BeginFill() {
  ApplyPendingFlushes();
  return applied_seq_;
}

void Tlb::InsertPsc(DomainId domain, Level level, uint64_t prefix, Mfn table,
                    uint32_t generation, bool writable) {
  PscEntry* victim = &psc_[0];
  for (PscEntry& p : psc_) {
    if (p.valid && p.domain == domain && p.level == level &&
        p.prefix == prefix) {
      victim = &p;
      break;
    }
    if (!p.valid) {
      victim = &p;
    } else if (victim->valid && p.last_use < victim->last_use) {
      victim = &p;
    }
  }
  *victim = PscEntry{true,       domain,   level,       prefix,
                     table,      generation, writable, ++use_clock_};
}

bool Tlb::Insert(uint64_t fill_token, DomainId domain, Vaddr va,
                 const WalkResult& walk) {
  HVMM_CHECK(walk.ok());
  if (request_seq_.load(std::memory_order_acquire) != fill_token) {
    // A flush was requested while the walk ran: its result may predate it.
    fills_dropped_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  const uint64_t vpn = va.value() >> kPageShift;
  TlbEntry* set = &entries_[static_cast<size_t>(SetOf(domain, vpn)) *
                            options_.ways];
  TlbEntry* victim = &set[0];
  for (uint32_t w = 0; w < options_.ways; ++w) {
    TlbEntry& e = set[w];
    if (e.valid && e.domain == domain && e.vpn == vpn) {
      victim = &e;
      break;
    }
    if (!e.valid) {
      victim = &e;
    } else if (victim->valid && e.last_use < victim->last_use) {
      victim = &e;
    }
  }
  TlbEntry& e = *victim;
  e.valid = true;
  e.domain = domain;
  e.vpn = vpn;
  e.mfn = walk.mfn;
  e.writable = walk.writable;
  e.data_generation = walk.data_generation;
  e.tables_read = walk.tables_read;
  e.tables = walk.tables;
  e.table_generations = walk.generations;
  e.last_use = ++use_clock_;
  // tables[i] has level first_level - i; cache the tables below the root.
  for (uint32_t i = 0; i < walk.tables_read; ++i) {
    const Level level =
        static_cast<Level>(static_cast<int>(walk.first_level) - i);
    if (level == Level::kL4) continue;
    InsertPsc(domain, level, va.value() >> PrefixShift(level), walk.tables[i],
              walk.generations[i], walk.writable_above[i]);
  }
  return true;
}

void Tlb::Flush(const FlushScope& scope) {
  flushes_applied_.fetch_add(1, std::memory_order_relaxed);
  for (TlbEntry& e : entries_) {
    if (!e.valid) continue;
    switch (scope.kind) {
      case FlushScope::Kind::kAll:
        e.valid = false;
        break;
      case FlushScope::Kind::kDomain:
        if (e.domain == scope.domain) e.valid = false;
        break;
      case FlushScope::Kind::kRange:
        if (e.domain == scope.domain && InRange(e.vpn, scope)) e.valid = false;
        break;
    }
  }
  for (PscEntry& p : psc_) {
    if (p.valid && (scope.kind == FlushScope::Kind::kAll ||
                    p.domain == scope.domain)) {
      p.valid = false;
    }
  }
}

void Tlb::FlushAll() { Flush(FlushScope::All()); }
void Tlb::FlushDomain(DomainId domain) { Flush(FlushScope::Domain(domain)); }
void Tlb::FlushRange(DomainId domain, Vaddr start, uint64_t pages) {
  Flush(FlushScope::Range(domain, start, pages));
}

void Tlb::RequestFlush(const FlushScope& scope) {
  MutexLock lock(&pending_mu_);
  pending_.push_back(scope);
  request_seq_.fetch_add(1, std::memory_order_release);
}

}  // namespace hvmm
