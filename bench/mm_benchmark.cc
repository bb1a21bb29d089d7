// Google Benchmarks for the mm core's hot paths.
//
//   bazel run -c opt //bench:mm_benchmark -- --benchmark_repetitions=3
//
// Figures and the machine they came from: docs/PERFORMANCE.md.
#include <memory>
#include <algorithm>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "mm/memory_manager.h"
#include "mm/pte.h"

namespace hvmm {
namespace {

std::unique_ptr<MemoryManager> NewMm(uint64_t frames) {
  MemoryManagerOptions options;
  options.frame_count = frames;
  return MemoryManager::Create(options).value();
}

// One Allocate() + Free() pair on the calling CPU's shard: the fast path.
void BM_FrameAllocFree(benchmark::State& state) {
  static MemoryManager* mm = nullptr;
  if (state.thread_index() == 0) mm = NewMm(1 << 20).release();
  FrameAllocator* alloc = nullptr;
  for (auto _ : state) {
    if (alloc == nullptr) alloc = &mm->allocator();
    Mfn m = alloc->Allocate().value();
    benchmark::DoNotOptimize(m);
    alloc->Free(m);
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    delete mm;
    mm = nullptr;
  }
}
BENCHMARK(BM_FrameAllocFree)->ThreadRange(1, 2)->UseRealTime();

// Frame allocation with a working set larger than the per-CPU cache, so the
// shared pool is on the path every 32 frames.
void BM_FrameAllocFreeBatch256(benchmark::State& state) {
  auto mm = NewMm(1 << 20);
  std::vector<Mfn> held;
  held.reserve(256);
  for (auto _ : state) {
    for (int i = 0; i < 256; ++i) held.push_back(mm->allocator().Allocate().value());
    for (Mfn m : held) mm->allocator().Free(m);
    held.clear();
  }
  state.SetItemsProcessed(state.iterations() * 256);
}
BENCHMARK(BM_FrameAllocFreeBatch256);

// An L1 table with 512 present writable entries, and its 512 data frames.
struct FullL1 {
  std::unique_ptr<MemoryManager> mm;
  DomainId d{0};
  Mfn l1{0};
  std::vector<EntryUpdate> fill, clear;

  FullL1() : mm(NewMm(1 << 16)) {
    d = mm->CreateDomain({"bench", 1, 4096}).value();
    std::vector<Mfn> f = mm->IncreaseReservation(d, 513).value();
    l1 = f[0];
    for (uint32_t i = 0; i < kEntriesPerTable; ++i) {
      fill.push_back({l1, i, MakePte(f[i + 1], kPtePresent | kPteUser |
                                                   kPteWritable)});
      clear.push_back({l1, i, 0});
    }
    (void)mm->PinTable(d, l1, Level::kL1).ok();
  }
};

// Get + put of an L1 type on a table with 512 present entries: each put
// devalidates (drops 512 writable references), each get validates (takes
// them again). Pin/unpin through the public API, lock and lookup included.
void BM_GetPutTypeL1With512Entries(benchmark::State& state) {
  FullL1 t;
  if (!t.mm->MmuUpdate(t.d, t.fill).ok()) state.SkipWithError("fill failed");
  for (auto _ : state) {
    if (!t.mm->UnpinTable(t.d, t.l1).ok()) state.SkipWithError("unpin");
    if (!t.mm->PinTable(t.d, t.l1, Level::kL1).ok()) state.SkipWithError("pin");
  }
  state.SetItemsProcessed(state.iterations() * 2 * kEntriesPerTable);
}
BENCHMARK(BM_GetPutTypeL1With512Entries);

// One 512-entry mmu_update batch; alternately fills and clears the L1.
void BM_MmuUpdateBatch512(benchmark::State& state) {
  FullL1 t;
  bool filled = false;
  for (auto _ : state) {
    if (!t.mm->MmuUpdate(t.d, filled ? t.clear : t.fill).ok()) {
      state.SkipWithError("mmu_update failed");
    }
    filled = !filled;
  }
  state.SetItemsProcessed(state.iterations() * kEntriesPerTable);
}
BENCHMARK(BM_MmuUpdateBatch512);

// A 4-level lockless walk (L4 -> L1 -> data), over 4096 mapped pages visited
// in a random order, so the walk is not served from one cache line.
void BM_Walk4Level(benchmark::State& state) {
  auto mm = NewMm(1 << 16);
  const DomainId d = mm->CreateDomain({"bench", 1, 1 << 15}).value();
  constexpr uint64_t kPages = 4096;
  const uint64_t base = uint64_t{1} << 39;
  if (!mm->MapRange(d, Vaddr(base), kPages, true).ok()) {
    state.SkipWithError("map failed");
  }
  const Mfn root = *mm->GetDomainInfo(d)->root;
  std::vector<Vaddr> order;
  for (uint64_t p = 0; p < kPages; ++p) order.push_back(Vaddr(base + p * kPageSize));
  std::shuffle(order.begin(), order.end(), std::mt19937_64(42));
  size_t i = 0;
  for (auto _ : state) {
    WalkResult w = WalkTables(mm->frame_table(), root, order[i], Access::kRead);
    benchmark::DoNotOptimize(w);
    if (++i == order.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Walk4Level);

// MapRange + UnmapRange of 512 pages (one full L1): the updater's unit of
// work in the torture tool.
void BM_MapUnmap512(benchmark::State& state) {
  auto mm = NewMm(1 << 16);
  const DomainId d = mm->CreateDomain({"bench", 1, 4096}).value();
  for (auto _ : state) {
    if (!mm->MapRange(d, Vaddr(0), 512, true).ok()) state.SkipWithError("map");
    if (!mm->UnmapRange(d, Vaddr(0), 512).ok()) state.SkipWithError("unmap");
  }
  state.SetItemsProcessed(state.iterations() * 512);
}
BENCHMARK(BM_MapUnmap512);

}  // namespace
}  // namespace hvmm

BENCHMARK_MAIN();
