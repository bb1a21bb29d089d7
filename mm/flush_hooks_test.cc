// The mm core calls the flush hooks at the points of DESIGN §4, in order,
// with the right frames, and never for a change that did not happen.
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mm/flush_hooks.h"
#include "mm/memory_manager.h"
#include "mm/mm_errors.h"
#include "mm/pte.h"
#include "mm/testing/mm_test_util.h"

namespace hvmm {
namespace {

using ::hvmm::testing::MakeMemoryManager;

constexpr uint64_t kRw = kPtePresent | kPteUser | kPteWritable;

// Records every call as one line, e.g. "released 12 13" or "retype 12",
// followed by " | " and what `probe` returns, if set: the state of memory
// the hook saw.
class RecordingHooks : public FlushHooks {
 public:
  void AfterUnmap(const Domain& domain, bool tables_leave) override {
    Record(absl::StrCat("unmap", tables_leave ? " tables" : ""));
  }
  void AfterTablesReleased(const Domain& domain,
                           absl::Span<const Mfn> tables) override {
    std::string line = "released";
    for (Mfn m : tables) absl::StrAppend(&line, " ", m.value());
    Record(line);
  }
  void BeforeRetype(const Domain& domain, absl::Span<const Mfn> tables,
                    absl::Span<const Mfn> former_writable) override {
    std::string line = "retype";
    for (Mfn m : tables) absl::StrAppend(&line, " ", m.value());
    if (!former_writable.empty()) absl::StrAppend(&line, " writable");
    for (Mfn m : former_writable) absl::StrAppend(&line, " ", m.value());
    Record(line);
  }
  absl::Status CheckPolicyTag(uint8_t tag) const override {
    return tag <= 1 ? absl::OkStatus()
                    : absl::InvalidArgumentError("bad tag");
  }
  void Record(std::string line) {
    if (probe) absl::StrAppend(&line, " | ", probe());
    calls.push_back(line);
  }
  std::function<std::string()> probe;
  void AfterAllocate(const Domain& domain, TlbStamp stamp) override {
    calls.push_back("allocate");
    if (probe_table != nullptr) {
      probed_entry = probe_table->entries(probe_mfn)[probe_index].load();
    }
  }

  std::vector<std::string> calls;
  // AfterAllocate reads this entry, to show what was installed before it.
  const FrameTable* probe_table = nullptr;
  Mfn probe_mfn{0};
  uint32_t probe_index = 0;
  uint64_t probed_entry = ~uint64_t{0};
};

class FlushHooksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mm_ = MakeMemoryManager(1024);
    mm_->SetFlushHooks(&hooks_);
    d_ = mm_->CreateDomain({"d", 1, 256}).value();
    root_ = *mm_->GetDomainInfo(d_).value().root;
    const std::vector<Mfn> f = mm_->IncreaseReservation(d_, 4).value();
    l3_ = f[0], l2_ = f[1], l1_ = f[2], data_ = f[3];
    ASSERT_TRUE(mm_->MmuUpdate(d_, {{root_, 0, MakePte(l3_, kRw)},
                                    {l3_, 0, MakePte(l2_, kRw)},
                                    {l2_, 0, MakePte(l1_, kRw)},
                                    {l1_, 0, MakePte(data_, kRw)}})
                    .ok());
    hooks_.calls.clear();
  }
  std::string N(Mfn m) { return std::to_string(m.value()); }

  RecordingHooks hooks_;
  std::unique_ptr<MemoryManager> mm_;
  DomainId d_{0};
  Mfn root_{0}, l3_{0}, l2_{0}, l1_{0}, data_{0};
};

TEST_F(FlushHooksTest, UnhookingATableReleasesItAfterTheFlush) {
  ASSERT_TRUE(mm_->MmuUpdate(d_, {{l2_, 0, 0}}).ok());
  // The flush follows the commit, and the L1 (type count 0) is reported
  // released only after it: no cache can still lead a new walk to it.
  EXPECT_EQ(hooks_.calls,
            (std::vector<std::string>{"unmap", "released " + N(l1_)}));
}

TEST_F(FlushHooksTest, UnhookingASubtreeReleasesEveryTableInIt) {
  ASSERT_TRUE(mm_->MmuUpdate(d_, {{root_, 0, 0}}).ok());
  ASSERT_EQ(hooks_.calls.size(), 2u);
  EXPECT_EQ(hooks_.calls[1],
            "released " + N(l3_) + " " + N(l2_) + " " + N(l1_));
}

TEST_F(FlushHooksTest, RetypeOfAReleasedTableAsksBeforeRetype) {
  ASSERT_TRUE(mm_->MmuUpdate(d_, {{l2_, 0, 0}}).ok());
  // Map the former L1 writable through another L1: it leaves its type.
  const Mfn other_l1 = mm_->IncreaseReservation(d_, 1).value()[0];
  ASSERT_TRUE(mm_->PinTable(d_, other_l1, Level::kL1).ok());
  hooks_.calls.clear();
  ASSERT_TRUE(mm_->MmuUpdate(d_, {{other_l1, 0, MakePte(l1_, kRw)}}).ok());
  EXPECT_EQ(hooks_.calls, (std::vector<std::string>{"retype " + N(l1_)}));
}

// Safety issue 1a: a batch that unhooks a table and retypes it. The unhook
// is visible before the flush, the release is reported (a fresh cookie)
// before the retype's wait, and the writable mapping of the former table is
// published only after it.
TEST_F(FlushHooksTest, SameBatchUnhookAndRetypeWaitsBetweenThem) {
  const Mfn scratch = mm_->IncreaseReservation(d_, 1).value()[0];
  ASSERT_TRUE(mm_->PinTable(d_, scratch, Level::kL1).ok());
  hooks_.calls.clear();
  hooks_.probe = [&] {
    return absl::StrCat("l2[0]=", testing::EntryAt(*mm_, l2_, 0) != 0,
                        " scratch[0]=",
                        testing::EntryAt(*mm_, scratch, 0) != 0);
  };
  ASSERT_TRUE(
      mm_->MmuUpdate(d_, {{l2_, 0, 0}, {scratch, 0, MakePte(l1_, kRw)}}).ok());
  EXPECT_EQ(hooks_.calls,
            (std::vector<std::string>{
                "unmap | l2[0]=0 scratch[0]=0",
                "released " + N(l1_) + " | l2[0]=0 scratch[0]=0",
                "retype " + N(l1_) + " | l2[0]=0 scratch[0]=0"}));
  EXPECT_EQ(testing::EntryAt(*mm_, scratch, 0), MakePte(l1_, kRw));
}

// Safety issue 1c: a writable page that becomes a table in the batch that
// drops its writable mapping. The flush runs while the mapping is gone and
// the page is not yet hooked as a table.
TEST_F(FlushHooksTest, WritablePageBecomesATableOnlyAfterTheFlush) {
  hooks_.probe = [&] {
    return absl::StrCat("l1[0]=", testing::EntryAt(*mm_, l1_, 0) != 0,
                        " l2[1]=", testing::EntryAt(*mm_, l2_, 1) != 0);
  };
  ASSERT_TRUE(
      mm_->MmuUpdate(d_, {{l1_, 0, 0}, {l2_, 1, MakePte(data_, kRw)}}).ok());
  EXPECT_EQ(hooks_.calls,
            (std::vector<std::string>{
                "unmap | l1[0]=0 l2[1]=0",
                "retype writable " + N(data_) + " | l1[0]=0 l2[1]=0"}));
  EXPECT_EQ(testing::EntryAt(*mm_, l2_, 1), MakePte(data_, kRw));
}

// Safety issue 1b: whether tables leave is decided from the leaving frames'
// types. Here UnmapRange unhooks no table, but the read-only mapping it
// removes was the last reference of a former L1, which leaves with it.
TEST_F(FlushHooksTest, AFormerTableLeavingThroughAReadOnlyMappingIsATable) {
  const std::vector<Mfn> f = mm_->IncreaseReservation(d_, 2).value();
  const Mfn holder = f[0], other = f[1];
  constexpr uint64_t kRo = kPtePresent | kPteUser;
  // The L1 leaves its L2 and is mapped read-only by a second L1, which also
  // maps another page (so it stays hooked when the first entry goes).
  ASSERT_TRUE(mm_->MmuUpdate(d_, {{l2_, 0, 0},
                                  {l2_, 1, MakePte(holder, kRw)},
                                  {holder, 0, MakePte(l1_, kRo)},
                                  {holder, 1, MakePte(other, kRw)}})
                  .ok());
  ASSERT_EQ(mm_->InspectFrame(l1_).value().type, PageType::kL1);
  hooks_.calls.clear();
  const UnmapRangeResult r =
      mm_->UnmapRange(d_, Vaddr(uint64_t{1} << 21), 1).value();
  EXPECT_EQ(r.tables_unhooked, 0u);
  EXPECT_EQ(r.frames_released, 1u);
  EXPECT_EQ(hooks_.calls, (std::vector<std::string>{"unmap tables"}));
}

// A frame that leaves its type and takes it back within one batch never
// showed the other type: no retype, no wait, no generation bump; and an
// entry whose final value is its old one was never removed.
TEST_F(FlushHooksTest, ARetypeUndoneInTheSameBatchIsNoRetype) {
  const Mfn scratch = mm_->IncreaseReservation(d_, 1).value()[0];
  ASSERT_TRUE(mm_->PinTable(d_, scratch, Level::kL1).ok());
  const uint32_t generation = mm_->InspectFrame(l1_).value().generation;
  hooks_.calls.clear();
  ASSERT_TRUE(mm_->MmuUpdate(d_, {{l2_, 0, 0},
                                  {scratch, 0, MakePte(l1_, kRw)},
                                  {scratch, 0, 0},
                                  {l2_, 0, MakePte(l1_, kRw)}})
                  .ok());
  EXPECT_EQ(hooks_.calls, (std::vector<std::string>{"released " + N(l1_)}));
  EXPECT_EQ(mm_->InspectFrame(l1_).value().generation, generation);
  EXPECT_EQ(mm_->InspectFrame(l1_).value().type, PageType::kL1);
  EXPECT_TRUE(mm_->Audit().ok()) << mm_->Audit();
}

TEST_F(FlushHooksTest, UnpinAndBasePointerReleaseTables) {
  const Mfn t = mm_->IncreaseReservation(d_, 1).value()[0];
  ASSERT_TRUE(mm_->PinTable(d_, t, Level::kL1).ok());
  hooks_.calls.clear();
  ASSERT_TRUE(mm_->UnpinTable(d_, t).ok());
  EXPECT_EQ(hooks_.calls, (std::vector<std::string>{"released " + N(t)}));

  const Mfn new_root = mm_->IncreaseReservation(d_, 1).value()[0];
  ASSERT_TRUE(mm_->PinTable(d_, new_root, Level::kL4).ok());
  ASSERT_TRUE(mm_->UnpinTable(d_, root_).ok());  // The vCPU still holds it.
  hooks_.calls.clear();
  ASSERT_TRUE(mm_->SetBasePointer(d_, VcpuId(0), new_root).ok());
  // Caches are tagged by domain, not root: a new root flushes the domain;
  // then the old root is released.
  ASSERT_EQ(hooks_.calls.size(), 2u);
  EXPECT_EQ(hooks_.calls[0], "unmap");
  EXPECT_EQ(hooks_.calls[1].rfind("released " + N(root_), 0), 0u)
      << hooks_.calls[1];
}

TEST_F(FlushHooksTest, AllocationFlushComesBeforeTheFramesAreUsed) {
  // Root entry 1 is empty; MapRange there allocates an L3, L2, L1 and a data
  // page. The flush must run before any of them is hooked in.
  hooks_.probe_table = &mm_->frame_table();
  hooks_.probe_mfn = root_;
  hooks_.probe_index = 1;
  ASSERT_TRUE(mm_->MapRange(d_, Vaddr(uint64_t{1} << 39), 1, true).ok());
  EXPECT_EQ(hooks_.calls, (std::vector<std::string>{"allocate"}));
  EXPECT_EQ(hooks_.probed_entry, 0u) << "tables were hooked before the flush";
  EXPECT_NE(testing::EntryAt(*mm_, root_, 1), 0u);

  // Creating a domain allocates its root: that is an allocation too.
  hooks_.calls.clear();
  hooks_.probe_table = nullptr;
  ASSERT_TRUE(mm_->CreateDomain({"e", 1, 8}).ok());
  EXPECT_EQ(hooks_.calls, (std::vector<std::string>{"allocate"}));
}

// The policy tag is the engine's to judge, before anything changes.
TEST_F(FlushHooksTest, CreateDomainAsksTheHooksAboutThePolicyTag) {
  hooks_.calls.clear();
  const uint64_t free = mm_->allocator().free_frames();
  EXPECT_EQ(mm_->CreateDomain({"t", 1, 8, /*flush_policy=*/7}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(hooks_.calls.empty()) << "no allocation for a refused domain";
  EXPECT_EQ(mm_->allocator().free_frames(), free);
  EXPECT_TRUE(mm_->CreateDomain({"t", 1, 8, /*flush_policy=*/1}).ok());
}

// A live policy change: the tag is the hooks' to judge; the domain must be
// live; the previous tag comes back; nothing else happens.
TEST_F(FlushHooksTest, SetFlushPolicyAsksTheHooksAndReturnsThePrevious) {
  const DomainId d = mm_->CreateDomain({"p", 1, 8}).value();
  hooks_.calls.clear();
  EXPECT_EQ(mm_->SetFlushPolicy(d, 7).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(mm_->GetDomainInfo(d).value().flush_policy, 0);
  EXPECT_EQ(mm_->SetFlushPolicy(d, 1).value(), 0);
  EXPECT_EQ(mm_->GetDomainInfo(d).value().flush_policy, 1);
  EXPECT_EQ(mm_->SetFlushPolicy(d, 0).value(), 1);
  EXPECT_TRUE(hooks_.calls.empty());
  const absl::Status ghost = mm_->SetFlushPolicy(DomainId(999), 1).status();
  EXPECT_EQ(ghost.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrorReason(ghost), "UNKNOWN_DOMAIN");
}

TEST(FlushPolicyWithoutHooksTest, SetFlushPolicyNeedsAFlushEngine) {
  auto mm = MemoryManager::Create({256, 1, TlbStamp(1)}).value();
  const DomainId d = mm->CreateDomain({"p", 1, 8}).value();
  const absl::Status s = mm->SetFlushPolicy(d, 0).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ErrorReason(s), "NO_FLUSH_ENGINE");
  ASSERT_TRUE(mm->DestroyDomain(d).ok());
}

TEST_F(FlushHooksTest, RefusedOrDataOnlyChangesReleaseNothing) {
  // A refused batch: the first update would unhook the L1, the second is
  // malformed, so nothing happens and no hook runs.
  EXPECT_FALSE(
      mm_->MmuUpdate(d_, {{l2_, 0, 0}, {l2_, kEntriesPerTable, 0}}).ok());
  EXPECT_TRUE(hooks_.calls.empty());
  // Unmapping a data page flushes but releases no table.
  ASSERT_TRUE(mm_->MmuUpdate(d_, {{l1_, 0, 0}}).ok());
  EXPECT_EQ(hooks_.calls, (std::vector<std::string>{"unmap"}));
}

}  // namespace
}  // namespace hvmm
