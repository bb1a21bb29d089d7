#include "guest/guest_cpu.h"

#include <chrono>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "base/check.h"
#include "gtest/gtest.h"
#include "mm/memory_manager.h"
#include "mm/pte.h"
#include "mm/testing/mm_test_util.h"

namespace hvmm {
namespace {

using ::hvmm::testing::MakeMemoryManager;

// A workload whose vCPUs only read page 0.
WorkloadConfig ReadsPage0() {
  WorkloadConfig w;
  w.ranges = {{Vaddr(0), 1}};
  w.write_fraction = 0;
  return w;
}

// Guest options with `accesses` per time slice and the rest by default.
GuestCpu::Options Slices(uint32_t accesses) {
  GuestCpu::Options options;
  options.slice_accesses = accesses;
  return options;
}

// Two pCPUs run three vCPUs of two domains over stable mappings: the TLB
// serves almost every access and the oracle reports nothing. Then a page is
// freed behind the guests' backs (no hooks: nothing flushes), and the
// oracle sees the stale translations used: it neither invents violations
// nor misses these. Both phases run until their count is reached, however
// the pCPUs are scheduled.
TEST(GuestCpuTest, AccessesHitTheTlbAndOnlyAStaleEntryIsAViolation) {
  auto mm = MakeMemoryManager(4096);
  const DomainId a = mm->CreateDomain({"a", 2, 1024}).value();
  const DomainId b = mm->CreateDomain({"b", 1, 1024}).value();
  ASSERT_TRUE(mm->MapRange(a, Vaddr(0x400000), 32, true).ok());
  ASSERT_TRUE(mm->MapRange(b, Vaddr(0x400000), 16, false).ok());
  WorkloadConfig wa;
  wa.ranges = {{Vaddr(0x400000), 32}};
  WorkloadConfig wb = wa;
  wb.ranges = {{Vaddr(0x400000), 16}};
  wb.write_fraction = 0;  // b is mapped read-only.

  VcpuRunQueue run_queue;
  run_queue.AddDomain(mm->FindDomain(a), wa, 1);
  run_queue.AddDomain(mm->FindDomain(b), wb, 2);
  EXPECT_EQ(run_queue.size(), 3);

  TlbClock clock;
  std::vector<std::unique_ptr<Pcpu>> pcpus;
  std::vector<std::unique_ptr<GuestCpu>> guests;
  for (int i = 0; i < 2; ++i) {
    pcpus.push_back(std::make_unique<Pcpu>(PcpuId(i), &clock, Tlb::Options()));
    guests.push_back(std::make_unique<GuestCpu>(
        &mm->frame_table(), &run_queue, Slices(1024)));
  }
  for (int i = 0; i < 2; ++i) {
    GuestCpu* g = guests[i].get();
    pcpus[i]->Start([g](Pcpu& self) { return g->Step(self); });
  }
  auto total = [&] {
    GuestCpuStats t;
    for (auto& g : guests) t.Add(g->stats());
    return t;
  };
  while (total().accesses < 20000) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const GuestCpuStats stable = total();
  // b's 16 pages are read-only and read; a's are read and written.
  EXPECT_EQ(stable.faults, 0u) << "every page is mapped";
  // 48 distinct pages: after the first walks, the TLB serves almost all.
  EXPECT_GT(stable.tlb_hits, stable.tlb_misses * 10);
  // Read while running: a pCPU may have counted its miss and not yet its
  // walk.
  EXPECT_LE(stable.tlb_misses - stable.walks, 2u);
  EXPECT_GT(stable.vcpu_switches, 3u) << "round robin across the slices";
  EXPECT_EQ(stable.existence_violations + stable.coherence_violations, 0u)
      << "violations on mappings that never changed";

  // Free every page with nothing flushed: each pCPU holds stale
  // translations of the domain it is running, and its next access in the
  // slice uses one. (A switch to the other domain drops them first only if
  // the slice ends right there.) Wait for the opportunity, not for a time.
  ASSERT_TRUE(mm->UnmapRange(a, Vaddr(0x400000), 32).ok());
  ASSERT_TRUE(mm->UnmapRange(b, Vaddr(0x400000), 16).ok());
  const uint64_t freed_at = total().accesses;
  while (total().coherence_violations == 0 &&
         total().accesses < freed_at + 100000) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (auto& p : pcpus) p->Stop();
  const GuestCpuStats t = total();
  guests.clear();  // Puts the running vCPUs back.
  EXPECT_GT(t.coherence_violations, 0u) << "stale translations went unseen";
  EXPECT_EQ(run_queue.size(), 3) << "every vCPU is back in the run queue";
  // A pCPU leaves a domain's mask when it switches to another domain, so
  // each pCPU that ran is in exactly the mask of the domain it ran last.
  const int in_masks = mm->FindDomain(a)->DirtyMask().Count() +
                       mm->FindDomain(b)->DirtyMask().Count();
  EXPECT_GE(in_masks, 1);
  EXPECT_LE(in_masks, 2);
  EXPECT_TRUE(mm->Audit().ok()) << mm->Audit();
}

// One domain with page 0 mapped, its one vCPU reading page 0 on a pCPU
// that the test drives by hand (not started), and no flush hooks: an unmap
// frees at once and flushes nothing.
class HandDrivenGuest {
 public:
  HandDrivenGuest()
      : mm_(MakeMemoryManager(1024)),
        domain_(mm_->CreateDomain({"a", 1, 256}).value()),
        pcpu_(PcpuId(0), &clock_, Tlb::Options()) {
    HVMM_CHECK(mm_->MapRange(domain_, Vaddr(0), 1, true).ok());
    const WorkloadConfig w = ReadsPage0();
    run_queue_.AddDomain(mm_->FindDomain(domain_), w, 1);
    guest_ = std::make_unique<GuestCpu>(&mm_->frame_table(), &run_queue_,
                                        Slices(1000));
  }
  bool Step() { return guest_->Step(pcpu_); }
  void UnmapPage0() { HVMM_CHECK(mm_->UnmapRange(domain_, Vaddr(0), 1).ok()); }
  // In one batch, drops page 0's writable mapping and hooks its frame in as
  // the L1 of the next 2 MiB. Returns the frame.
  Mfn MakePage0ATable() {
    const WalkResult w =
        mm_->Walk(domain_, VcpuId(0), Vaddr(0), Access::kRead).value();
    const Mfn l2 = w.tables[2], l1 = w.tables[3];
    constexpr uint64_t kRw = kPtePresent | kPteUser | kPteWritable;
    HVMM_CHECK(
        mm_->MmuUpdate(domain_, {{l1, 0, 0}, {l2, 1, MakePte(w.mfn, kRw)}})
            .ok());
    return w.mfn;
  }
  GuestCpuStats stats() const { return guest_->stats(); }
  Pcpu& pcpu() { return pcpu_; }

 private:
  std::unique_ptr<MemoryManager> mm_;
  DomainId domain_;
  TlbClock clock_;
  Pcpu pcpu_;
  VcpuRunQueue run_queue_;
  std::unique_ptr<GuestCpu> guest_;
};

// The oracle can fail: free a table behind a TLB entry's back (no flush, no
// grace period) and the next use of that entry is a coherence violation.
TEST(GuestCpuTest, UsingATranslationWhoseFramesWereFreedIsAViolation) {
  HandDrivenGuest g;
  ASSERT_TRUE(g.Step());  // Miss: walk and fill.
  ASSERT_TRUE(g.Step());  // Hit.
  EXPECT_EQ(g.stats().coherence_violations, 0u);
  // The frames are freed and the TLB still maps them.
  g.UnmapPage0();
  ASSERT_TRUE(g.Step());
  EXPECT_EQ(g.stats().coherence_violations, 1u);
  EXPECT_EQ(g.stats().tlb_hits, 2u);
}

// A flush that landed before the use (here: of another domain) does not
// excuse a stale entry: only an invalidation requested after the lookup
// orders the use before the free.
TEST(GuestCpuTest, AFlushOfAnotherDomainDoesNotHideAStaleEntry) {
  HandDrivenGuest g;
  ASSERT_TRUE(g.Step());  // Miss: walk and fill.
  g.pcpu().tlb().RequestFlush(FlushScope::Domain(DomainId(99)));
  g.UnmapPage0();        // No flush of the domain.
  ASSERT_TRUE(g.Step());  // Applies the other flush, then hits.
  EXPECT_EQ(g.stats().tlb_hits, 1u);
  EXPECT_EQ(g.stats().coherence_violations, 1u);
}

// Safety issue 2c: a page that stops being writable and becomes a page
// table gets a new generation, so a stale writable translation used after
// it is seen (here nothing flushes: the mm has no hooks).
TEST(GuestCpuTest, AStaleWritableEntryOfAPageThatBecameATableIsAViolation) {
  HandDrivenGuest g;
  ASSERT_TRUE(g.Step());  // Miss: walk and fill a writable translation.
  g.MakePage0ATable();
  ASSERT_TRUE(g.Step());  // Hits the stale entry: the guest could write it.
  EXPECT_EQ(g.stats().tlb_hits, 1u);
  EXPECT_EQ(g.stats().coherence_violations, 1u);
}

// The dirty mask follows the pCPU: switching to another domain drops the old
// domain's translations and clears the pCPU from its mask.
TEST(VcpuThrottleTest, EarnsAccessesAtItsRateWithABoundedBurst) {
  VcpuThrottle unthrottled;
  EXPECT_FALSE(unthrottled.throttled());
  EXPECT_TRUE(unthrottled.TryTake(0));
  VcpuThrottle t(100);  // One access per 10 ms; bursts of up to 25.
  const int64_t t0 = int64_t{1} << 40;
  EXPECT_TRUE(t.TryTake(t0));
  EXPECT_FALSE(t.TryTake(t0 + 5'000'000));
  EXPECT_TRUE(t.TryTake(t0 + 10'000'000));
  EXPECT_FALSE(t.TryTake(t0 + 10'000'000));
  // Ten idle seconds buy a quarter second's worth, not ten seconds'.
  int burst = 0;
  while (t.TryTake(t0 + 10'010'000'000)) ++burst;
  EXPECT_EQ(burst, 25);
}

// A workload restarted while one of its vCPUs was running (popped) must not
// get that old vCPU back: it belongs to the stopped workload.
TEST(VcpuRunQueueTest, ARestartDropsTheOldRunningVcpus) {
  auto mm = MakeMemoryManager(1024);
  const DomainId a = mm->CreateDomain({"a", 2, 256}).value();
  WorkloadConfig w;
  w.ranges = {{Vaddr(0), 1}};
  VcpuRunQueue run_queue;
  run_queue.AddDomain(mm->FindDomain(a), w, 1);
  std::unique_ptr<GuestVcpu> running = run_queue.Pop();
  ASSERT_NE(running, nullptr);
  EXPECT_EQ(run_queue.size(), 1);
  run_queue.AddDomain(mm->FindDomain(a), w, 2);  // Restart: replaces both.
  EXPECT_EQ(run_queue.size(), 2);
  run_queue.Push(std::move(running));
  EXPECT_EQ(run_queue.size(), 2) << "the old vCPU came back";
  std::unique_ptr<GuestVcpu> again = run_queue.Pop();
  run_queue.RemoveDomain(a);
  EXPECT_EQ(run_queue.size(), 0);
  run_queue.Push(std::move(again));
  EXPECT_EQ(run_queue.size(), 0) << "a stopped workload's vCPU came back";
}

TEST(GuestCpuTest, SwitchingDomainsMovesThePcpuBetweenDirtyMasks) {
  auto mm = MakeMemoryManager(1024);
  const DomainId a = mm->CreateDomain({"a", 1, 256}).value();
  const DomainId b = mm->CreateDomain({"b", 1, 256}).value();
  const WorkloadConfig w = ReadsPage0();
  for (DomainId d : {a, b}) {
    ASSERT_TRUE(mm->MapRange(d, Vaddr(0), 1, true).ok());
  }
  VcpuRunQueue run_queue;
  run_queue.AddDomain(mm->FindDomain(a), w, 1);
  run_queue.AddDomain(mm->FindDomain(b), w, 2);
  TlbClock clock;
  Pcpu pcpu(PcpuId(3), &clock, Tlb::Options());
  GuestCpu guest(&mm->frame_table(), &run_queue, Slices(1));
  auto in_mask = [&](DomainId d) {
    return mm->FindDomain(d)->DirtyMask().Test(PcpuId(3));
  };
  ASSERT_TRUE(guest.Step(pcpu));  // Runs a: fills a's translation.
  EXPECT_TRUE(in_mask(a));
  EXPECT_FALSE(in_mask(b));
  ASSERT_TRUE(guest.Step(pcpu));  // Switches to b.
  EXPECT_FALSE(in_mask(a));
  EXPECT_TRUE(in_mask(b));
  EXPECT_EQ(pcpu.tlb().Lookup(a, Vaddr(0)), nullptr) << "a's entry survived";
  ASSERT_TRUE(guest.Step(pcpu));  // Back to a: a miss, not a hit.
  EXPECT_TRUE(in_mask(a));
  EXPECT_EQ(guest.stats().tlb_hits, 0u);
  EXPECT_EQ(guest.stats().walks, 3u);
}

// Caches are tagged by domain: two vCPUs of one domain on different roots
// must not share translations on a pCPU, while two on the same root do.
TEST(GuestCpuTest, SwitchingToAVcpuOnAnotherRootDropsTheDomainsTranslations) {
  for (const bool same_root : {true, false}) {
    SCOPED_TRACE(same_root ? "same root" : "different roots");
    auto mm = MakeMemoryManager(1024);
    const DomainId a = mm->CreateDomain({"a", 2, 256}).value();
    ASSERT_TRUE(mm->MapRange(a, Vaddr(0), 1, true).ok());
    if (!same_root) {
      // vCPU 1 gets its own root mapping page 0 to another frame.
      constexpr uint64_t kRw = kPtePresent | kPteUser | kPteWritable;
      const std::vector<Mfn> f = mm->IncreaseReservation(a, 5).value();
      ASSERT_TRUE(mm->PinTable(a, f[0], Level::kL4).ok());
      ASSERT_TRUE(mm->MmuUpdate(a, {{f[0], 0, MakePte(f[1], kRw)},
                                    {f[1], 0, MakePte(f[2], kRw)},
                                    {f[2], 0, MakePte(f[3], kRw)},
                                    {f[3], 0, MakePte(f[4], kRw)}})
                      .ok());
      ASSERT_TRUE(mm->SetBasePointer(a, VcpuId(1), f[0]).ok());
    }
    const WorkloadConfig w = ReadsPage0();
    VcpuRunQueue run_queue;
    run_queue.AddDomain(mm->FindDomain(a), w, 1);
    TlbClock clock;
    Pcpu pcpu(PcpuId(0), &clock, Tlb::Options());
    // One access per slice: every step switches vCPU (0, 1, 0, 1).
    GuestCpu guest(&mm->frame_table(), &run_queue, Slices(1));
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(guest.Step(pcpu));
    EXPECT_EQ(guest.stats().vcpu_switches, 4u);
    EXPECT_EQ(guest.stats().tlb_hits, same_root ? 3u : 0u);
    EXPECT_EQ(guest.stats().coherence_violations, 0u);
  }
}

// A Translate job (guest/translate_queue.h) runs before the next access:
// its walk happens with the pCPU in the domain's dirty mask, which the IPI
// policies' flushes reach, and leaves neither the mark nor a cache entry.
struct MaskProbe {
  std::shared_ptr<Domain> domain;
  PcpuId pcpu;
  int walks_in_mask = 0, walks_outside = 0;
  static void Hook(void* arg, WalkPoint point, Level level) {
    auto* p = static_cast<MaskProbe*>(arg);
    if (point != WalkPoint::kTableReached) return;
    ++(p->domain->DirtyMask().Test(p->pcpu) ? p->walks_in_mask
                                            : p->walks_outside);
  }
};

TEST(GuestCpuTest, ATranslateJobWalksInsideTheDirtyMaskAndFillsNothing) {
  auto mm = MakeMemoryManager(1024);
  const DomainId a = mm->CreateDomain({"a", 2, 256}).value();
  ASSERT_TRUE(mm->MapRange(a, Vaddr(0), 1, true).ok());
  MaskProbe probe{mm->FindDomain(a), PcpuId(2)};
  TranslateQueue queue;
  GuestCpu::Options options;
  options.translate_queue = &queue;
  options.translate_walk_hooks = {&MaskProbe::Hook, &probe};
  VcpuRunQueue run_queue;  // No vCPU runs.
  TlbClock clock;
  Pcpu pcpu(PcpuId(2), &clock, Tlb::Options());
  GuestCpu guest(&mm->frame_table(), &run_queue, options);
  EXPECT_FALSE(guest.Step(pcpu)) << "nothing to run";

  auto job = std::make_shared<TranslateJob>(probe.domain, VcpuId(1), Vaddr(0),
                                            Access::kWrite);
  ASSERT_TRUE(queue.Push(job).ok());
  ASSERT_TRUE(guest.Step(pcpu));
  const Translation t = job->Await(absl::Now()).value();
  EXPECT_EQ(t.pcpu, PcpuId(2));
  EXPECT_TRUE(t.walk.ok());
  EXPECT_TRUE(t.walk.writable);
  EXPECT_EQ(t.walk.mfn, mm->Walk(a, VcpuId(1), Vaddr(0), Access::kRead)->mfn);
  EXPECT_EQ(probe.walks_in_mask, 4) << "one per table read";
  EXPECT_EQ(probe.walks_outside, 0);
  EXPECT_FALSE(probe.domain->DirtyMask().Test(PcpuId(2)));
  EXPECT_EQ(pcpu.tlb().Lookup(a, Vaddr(0)), nullptr) << "a Translate filled";
  const GuestCpuStats s = guest.stats();
  EXPECT_EQ(s.translate_walks, 1u);
  EXPECT_EQ(s.walks, 1u);
  EXPECT_EQ(s.accesses, 0u);
  EXPECT_EQ(s.pipe[0], 1u);
  EXPECT_FALSE(guest.Step(pcpu)) << "one job, one step";
}

// A Translate job on a pCPU that runs a vCPU of the same domain leaves the
// pCPU in the domain's dirty mask: its TLB still holds the vCPU's
// translations, which the IPI policies' flushes must keep reaching.
TEST(GuestCpuTest, ATranslateKeepsTheMarkOfAVcpuOfTheSameDomain) {
  auto mm = MakeMemoryManager(1024);
  const DomainId a = mm->CreateDomain({"a", 1, 256}).value();
  ASSERT_TRUE(mm->MapRange(a, Vaddr(0), 1, true).ok());
  const WorkloadConfig w = ReadsPage0();
  VcpuRunQueue run_queue;
  run_queue.AddDomain(mm->FindDomain(a), w, 1);
  TranslateQueue queue;
  GuestCpu::Options options = Slices(1000);
  options.translate_queue = &queue;
  TlbClock clock;
  Pcpu pcpu(PcpuId(3), &clock, Tlb::Options());
  GuestCpu guest(&mm->frame_table(), &run_queue, options);
  const std::shared_ptr<Domain> domain = mm->FindDomain(a);
  ASSERT_TRUE(guest.Step(pcpu));  // The vCPU runs: walk and fill.
  ASSERT_NE(pcpu.tlb().Lookup(a, Vaddr(0)), nullptr);
  ASSERT_TRUE(domain->DirtyMask().Test(PcpuId(3)));

  auto job = std::make_shared<TranslateJob>(domain, VcpuId(0), Vaddr(0),
                                            Access::kRead);
  ASSERT_TRUE(queue.Push(job).ok());
  ASSERT_TRUE(guest.Step(pcpu));  // Serves the job.
  ASSERT_TRUE(job->finished());
  EXPECT_NE(pcpu.tlb().Lookup(a, Vaddr(0)), nullptr);
  EXPECT_TRUE(domain->DirtyMask().Test(PcpuId(3)))
      << "the pCPU holds the domain's translations outside its dirty mask";
  EXPECT_EQ(guest.stats().translate_walks, 1u);
}

// The oracle sees Translate walks: a table freed while one reads it (no
// flush hooks here, so nothing waits for the walker) is an existence
// violation.
struct FreeWhileWalking {
  MemoryManager* mm;
  DomainId domain;
  bool armed = true;
  static void Hook(void* arg, WalkPoint point, Level level) {
    auto* f = static_cast<FreeWhileWalking*>(arg);
    if (point != WalkPoint::kTableReached || level != Level::kL1) return;
    if (!std::exchange(f->armed, false)) return;
    HVMM_CHECK(f->mm->UnmapRange(f->domain, Vaddr(0), 1).ok());
  }
};

TEST(GuestCpuTest, ATranslateWalkOverAFreedTableIsAnExistenceViolation) {
  auto mm = MakeMemoryManager(1024);
  const DomainId a = mm->CreateDomain({"a", 1, 256}).value();
  ASSERT_TRUE(mm->MapRange(a, Vaddr(0), 1, true).ok());
  FreeWhileWalking free_l1{mm.get(), a};
  TranslateQueue queue;
  GuestCpu::Options options;
  options.translate_queue = &queue;
  options.translate_walk_hooks = {&FreeWhileWalking::Hook, &free_l1};
  int violations_reported = 0;
  options.on_violation = [&](ViolationKind kind, const Domain&, Mfn) {
    EXPECT_EQ(kind, ViolationKind::kExistence);
    ++violations_reported;
  };
  VcpuRunQueue run_queue;
  TlbClock clock;
  Pcpu pcpu(PcpuId(0), &clock, Tlb::Options());
  GuestCpu guest(&mm->frame_table(), &run_queue, options);
  auto job = std::make_shared<TranslateJob>(mm->FindDomain(a), VcpuId(0),
                                            Vaddr(0), Access::kRead);
  ASSERT_TRUE(queue.Push(job).ok());
  ASSERT_TRUE(guest.Step(pcpu));
  ASSERT_TRUE(job->Await(absl::Now()).ok());
  EXPECT_FALSE(free_l1.armed) << "the walk never reached its L1";
  EXPECT_EQ(guest.stats().existence_violations, 1u);
  EXPECT_EQ(violations_reported, 1);
  EXPECT_EQ(guest.stats().pipe[0] + guest.stats().pipe[1], 0u);
}

}  // namespace
}  // namespace hvmm
