// Xen's page-type rules, through the MemoryManager API (DESIGN §1).
#include <vector>

#include "gtest/gtest.h"
#include "mm/memory_manager.h"
#include "mm/mm_errors.h"
#include "mm/pte.h"
#include "mm/testing/mm_test_util.h"

namespace hvmm {
namespace {

using ::hvmm::testing::DigestDiff;
using ::hvmm::testing::EntryAt;
using ::hvmm::testing::MakeMemoryManager;
using ::hvmm::testing::StateDigest;

constexpr uint64_t kRw = kPtePresent | kPteUser | kPteWritable;
constexpr uint64_t kRo = kPtePresent | kPteUser;

class TypeRulesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mm_ = MakeMemoryManager(2048);
    d_ = mm_->CreateDomain({"alpha", 2, 512}).value();
    other_ = mm_->CreateDomain({"beta", 1, 512}).value();
    root_ = *mm_->GetDomainInfo(d_).value().root;
  }

  std::vector<Mfn> Frames(uint64_t n, DomainId d) {
    return mm_->IncreaseReservation(d, n).value();
  }
  std::vector<Mfn> Frames(uint64_t n) { return Frames(n, d_); }

  FrameSnapshot Snap(Mfn m) { return mm_->InspectFrame(m).value(); }

  absl::Status Write(Mfn table, uint32_t index, uint64_t entry) {
    return mm_->MmuUpdate(d_, {{table, index, entry}});
  }

  // root[0] -> l3[0] -> l2[0] -> l1, and l1[0] -> data (writable).
  struct Tree {
    Mfn l3, l2, l1, data;
  };
  Tree BuildTree() {
    std::vector<Mfn> f = Frames(4);
    Tree t{f[0], f[1], f[2], f[3]};
    EXPECT_TRUE(mm_->MmuUpdate(d_, {{root_, 0, MakePte(t.l3, kRw)},
                                    {t.l3, 0, MakePte(t.l2, kRw)},
                                    {t.l2, 0, MakePte(t.l1, kRw)},
                                    {t.l1, 0, MakePte(t.data, kRw)}})
                    .ok());
    return t;
  }

  // Asserts that `status` has `code` and that nothing observable changed.
  void ExpectRejected(absl::Status status, absl::StatusCode code,
                      const std::string& before) {
    EXPECT_EQ(status.code(), code) << status;
    EXPECT_NE(ErrorReason(status), "") << "no reason: " << status;
    EXPECT_EQ(DigestDiff(before, StateDigest(*mm_)), "")
        << "a failed operation changed state";
    EXPECT_TRUE(mm_->Audit().ok()) << mm_->Audit();
  }

  std::unique_ptr<MemoryManager> mm_;
  DomainId d_{0}, other_{0};
  Mfn root_{0};
};

TEST_F(TypeRulesTest, NewDomainHasPinnedRootForEveryVcpu) {
  const FrameSnapshot root = Snap(root_);
  EXPECT_EQ(root.owner, d_);
  EXPECT_EQ(root.type, PageType::kL4);
  EXPECT_TRUE(root.validated);
  EXPECT_TRUE(root.pinned);
  EXPECT_EQ(root.type_count, 3u);  // Pin + two base pointers.
  EXPECT_EQ(root.count, 4u);       // Allocation + the same three.
  EXPECT_EQ(mm_->GetDomainInfo(d_).value().tot_pages, 1u);
  EXPECT_TRUE(mm_->Audit().ok()) << mm_->Audit();
}

TEST_F(TypeRulesTest, DomainConfigErrors) {
  EXPECT_EQ(mm_->CreateDomain({"", 1, 8}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(mm_->CreateDomain({"bad name", 1, 8}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(mm_->CreateDomain({"x", 0, 8}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(mm_->CreateDomain({"x", kMaxVcpus + 1, 8}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(mm_->CreateDomain({"x", 1, 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(mm_->CreateDomain({"alpha", 1, 8}).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(mm_->ListDomains().size(), 2u);
}

TEST_F(TypeRulesTest, UnknownDomainIsNotFoundEverywhere) {
  const DomainId ghost(999);
  const auto kNotFound = absl::StatusCode::kNotFound;
  EXPECT_EQ(mm_->GetDomainInfo(ghost).status().code(), kNotFound);
  EXPECT_EQ(mm_->IncreaseReservation(ghost, 1).status().code(), kNotFound);
  EXPECT_EQ(mm_->DecreaseReservation(ghost, {root_}).code(), kNotFound);
  EXPECT_EQ(mm_->PinTable(ghost, root_, Level::kL1).code(), kNotFound);
  EXPECT_EQ(mm_->UnpinTable(ghost, root_).code(), kNotFound);
  EXPECT_EQ(mm_->SetBasePointer(ghost, VcpuId(0), root_).code(), kNotFound);
  EXPECT_EQ(mm_->MmuUpdate(ghost, {{root_, 0, 0}}).code(), kNotFound);
  EXPECT_EQ(mm_->MapRange(ghost, Vaddr(0), 1, true).status().code(), kNotFound);
  EXPECT_EQ(mm_->UnmapRange(ghost, Vaddr(0), 1).status().code(), kNotFound);
  EXPECT_EQ(mm_->Walk(ghost, VcpuId(0), Vaddr(0), Access::kRead).status().code(),
            kNotFound);
  EXPECT_EQ(mm_->DestroyDomain(ghost).code(), kNotFound);
}

// docs/ERRORS.md: an empty batch is malformed, whichever call carries it.
TEST_F(TypeRulesTest, EmptyBatchesAreInvalidArgument) {
  const std::string before = StateDigest(*mm_);
  ExpectRejected(mm_->MmuUpdate(d_, {}), absl::StatusCode::kInvalidArgument,
                 before);
  ExpectRejected(mm_->DecreaseReservation(d_, {}),
                 absl::StatusCode::kInvalidArgument, before);
  ExpectRejected(mm_->IncreaseReservation(d_, 0).status(),
                 absl::StatusCode::kInvalidArgument, before);
}

TEST_F(TypeRulesTest, FirstTableReferenceValidatesRecursively) {
  const Tree t = BuildTree();
  for (Mfn m : {t.l3, t.l2, t.l1}) {
    EXPECT_TRUE(Snap(m).validated);
    EXPECT_EQ(Snap(m).type_count, 1u);
    EXPECT_EQ(Snap(m).count, 2u);
  }
  EXPECT_EQ(Snap(t.l3).type, PageType::kL3);
  EXPECT_EQ(Snap(t.l2).type, PageType::kL2);
  EXPECT_EQ(Snap(t.l1).type, PageType::kL1);
  EXPECT_EQ(Snap(t.data).type, PageType::kWritable);
  EXPECT_EQ(Snap(t.data).type_count, 1u);
  EXPECT_TRUE(mm_->Audit().ok()) << mm_->Audit();

  const WalkResult w =
      mm_->Walk(d_, VcpuId(1), Vaddr(0x0), Access::kWrite).value();
  ASSERT_TRUE(w.ok()) << WalkOutcomeName(w.outcome);
  EXPECT_EQ(w.mfn, t.data);
  EXPECT_EQ(w.tables_read, 4u);
}

TEST_F(TypeRulesTest, LastTableReferenceDevalidatesRecursively) {
  const Tree t = BuildTree();
  ASSERT_TRUE(Write(root_, 0, 0).ok());  // Unhook the whole subtree.
  for (Mfn m : {t.l3, t.l2, t.l1}) {
    EXPECT_FALSE(Snap(m).validated);
    EXPECT_EQ(Snap(m).type_count, 0u);
    EXPECT_EQ(Snap(m).count, 1u);
  }
  // Types stay until a new type is taken (Xen), but hold no references.
  EXPECT_EQ(Snap(t.l1).type, PageType::kL1);
  EXPECT_EQ(Snap(t.data).type_count, 0u);
  EXPECT_EQ(Snap(t.data).count, 1u);
  EXPECT_TRUE(mm_->Audit().ok()) << mm_->Audit();
}

TEST_F(TypeRulesTest, TypeCountReachingZeroStampsTheClock) {
  const Tree t = BuildTree();
  mm_->clock().Tick();
  mm_->clock().Tick();
  ASSERT_TRUE(Write(t.l2, 0, 0).ok());
  EXPECT_EQ(Snap(t.l1).tlbflush_timestamp, mm_->clock().Now());
  EXPECT_EQ(Snap(t.data).tlbflush_timestamp, mm_->clock().Now());
}

TEST_F(TypeRulesTest, NewReferencesAreTakenBeforeOldOnesDrop) {
  // Rewriting the only entry that holds l1 with the same entry must not let
  // the type count touch 0 in between: no devalidation, no new stamp.
  const Tree t = BuildTree();
  const TlbStamp stamp = Snap(t.l1).tlbflush_timestamp;
  mm_->clock().Tick();
  ASSERT_TRUE(Write(t.l2, 0, MakePte(t.l1, kRo)).ok());
  EXPECT_TRUE(Snap(t.l1).validated);
  EXPECT_EQ(Snap(t.l1).type_count, 1u);
  EXPECT_EQ(Snap(t.l1).tlbflush_timestamp, stamp);
  EXPECT_EQ(Snap(t.data).type_count, 1u);
}

TEST_F(TypeRulesTest, LeavingTablePageTypeBumpsGeneration) {
  const Tree t = BuildTree();
  const uint32_t gen = Snap(t.l1).generation;
  ASSERT_TRUE(Write(t.l2, 0, 0).ok());
  EXPECT_EQ(Snap(t.l1).generation, gen) << "count 0 alone is not a reuse";
  EXPECT_EQ(Write(t.l1, 1, 0).code(), absl::StatusCode::kFailedPrecondition)
      << "l1 is no longer a table in use";
  // Map the former L1 writable: it leaves the page-table type.
  const std::vector<Mfn> f = Frames(1);
  ASSERT_TRUE(mm_->PinTable(d_, f[0], Level::kL1).ok());
  ASSERT_TRUE(mm_->MmuUpdate(d_, {{f[0], 0, MakePte(t.l1, kRw)}}).ok());
  EXPECT_EQ(Snap(t.l1).type, PageType::kWritable);
  EXPECT_EQ(Snap(t.l1).generation, gen + 1);
}

// Rule 5 for a writable page that becomes a table: a stale writable
// translation of it must be told from its new use (2c of the safety issue).
TEST_F(TypeRulesTest, WritablePageBecomingATableBumpsGeneration) {
  const Tree t = BuildTree();
  const uint32_t before = Snap(t.data).generation;
  const std::vector<Mfn> spare = Frames(1);
  // Drop the writable mapping and hook the page in as an L1, in one batch.
  ASSERT_TRUE(mm_->MmuUpdate(d_, {{t.l1, 0, 0},
                                  {t.l2, 1, MakePte(t.data, kRw)}})
                  .ok());
  EXPECT_EQ(Snap(t.data).type, PageType::kL1);
  EXPECT_EQ(Snap(t.data).generation, before + 1);
  // A fresh frame (type none) becoming a table is no retype: no bump.
  const uint32_t fresh = Snap(spare[0]).generation;
  ASSERT_TRUE(mm_->PinTable(d_, spare[0], Level::kL1).ok());
  EXPECT_EQ(Snap(spare[0]).generation, fresh);
  EXPECT_TRUE(mm_->Audit().ok()) << mm_->Audit();
}

// A batch publishes final values only: an entry written twice never shows
// its first value, whose references the batch already dropped.
TEST_F(TypeRulesTest, AnEntryWrittenTwiceInABatchPublishesOnlyItsLastValue) {
  const Tree t = BuildTree();
  const std::vector<Mfn> f = Frames(1);
  ASSERT_TRUE(mm_->MmuUpdate(d_, {{t.l1, 1, MakePte(f[0], kRw)},
                                  {t.l1, 1, MakePte(f[0], kRo)}})
                  .ok());
  EXPECT_EQ(testing::EntryAt(*mm_, t.l1, 1), MakePte(f[0], kRo));
  EXPECT_EQ(Snap(f[0]).type_count, 0u);
  EXPECT_TRUE(mm_->Audit().ok()) << mm_->Audit();
}

TEST_F(TypeRulesTest, PageTableCannotBeMappedWritable) {
  const Tree t = BuildTree();
  const std::string before = StateDigest(*mm_);
  ExpectRejected(Write(t.l1, 1, MakePte(t.l2, kRw)),
                 absl::StatusCode::kFailedPrecondition, before);
  // Read-only mappings of page tables are fine (PV guests read their tables).
  EXPECT_TRUE(Write(t.l1, 1, MakePte(t.l2, kRo)).ok());
  EXPECT_TRUE(mm_->Audit().ok()) << mm_->Audit();
}

TEST_F(TypeRulesTest, WritablyMappedFrameCannotBecomeATable) {
  const Tree t = BuildTree();
  const std::string before = StateDigest(*mm_);
  ExpectRejected(mm_->PinTable(d_, t.data, Level::kL1),
                 absl::StatusCode::kFailedPrecondition, before);
  ExpectRejected(Write(t.l2, 1, MakePte(t.data, kRw)),
                 absl::StatusCode::kFailedPrecondition, before);
}

TEST_F(TypeRulesTest, FailedValidationDeepInTheTreeChangesNothing) {
  // An L2 whose second entry points at a writably mapped frame: hooking it
  // validates entry 0's L1 first, then fails; all of it must be undone.
  const Tree t = BuildTree();
  const std::vector<Mfn> f = Frames(3);
  const Mfn l2 = f[0], l1 = f[1], data = f[2];
  ASSERT_TRUE(mm_->PinTable(d_, l1, Level::kL1).ok());
  ASSERT_TRUE(mm_->MmuUpdate(d_, {{l1, 0, MakePte(data, kRw)}}).ok());
  ASSERT_TRUE(mm_->UnpinTable(d_, l1).ok());  // l1: count 0, one entry left.
  ASSERT_TRUE(mm_->PinTable(d_, l2, Level::kL2).ok());
  // Entry 0 revalidates l1 (taking data's writable type again); entry 1 asks
  // for t.l2, an L2 in use, as an L1 and fails.
  const std::string before = StateDigest(*mm_);
  ExpectRejected(mm_->MmuUpdate(d_, {{l2, 0, MakePte(l1, kRw)},
                                     {l2, 1, MakePte(t.l2, kRw)}}),
                 absl::StatusCode::kFailedPrecondition, before);
}

TEST_F(TypeRulesTest, MmuUpdateBatchIsAllOrNothing) {
  const Tree t = BuildTree();
  const std::vector<Mfn> f = Frames(2);
  const std::string before = StateDigest(*mm_);
  const absl::Status s = mm_->MmuUpdate(
      d_, {{t.l1, 1, MakePte(f[0], kRw)},
           {t.l1, 2, MakePte(f[1], kRo)},
           {t.l1, 3, MakePte(Mfn(5000), kRw)}});  // Beyond the table.
  ExpectRejected(s, absl::StatusCode::kInvalidArgument, before);
  EXPECT_EQ(EntryAt(*mm_, t.l1, 1), 0u) << "first write leaked to memory";
  EXPECT_EQ(EntryAt(*mm_, t.l1, 2), 0u);
}

TEST_F(TypeRulesTest, EntryErrorsHaveTheirCodes) {
  const Tree t = BuildTree();
  const std::vector<Mfn> theirs = Frames(1, other_);
  const std::vector<Mfn> mine = Frames(1);
  const std::string before = StateDigest(*mm_);
  ExpectRejected(Write(t.l1, 1, MakePte(theirs[0], kRo)),
                 absl::StatusCode::kFailedPrecondition, before);
  ExpectRejected(Write(t.l1, 1, MakePte(Mfn(1u << 20), kRo)),
                 absl::StatusCode::kInvalidArgument, before);
  ExpectRejected(Write(t.l1, 1, MakePte(mine[0], kRo) | (uint64_t{1} << 9)),
                 absl::StatusCode::kInvalidArgument, before);
  ExpectRejected(Write(t.l2, 1, MakePte(mine[0], kRo | kPteLarge)),
                 absl::StatusCode::kInvalidArgument, before);
  ExpectRejected(Write(t.l1, kEntriesPerTable, 0),
                 absl::StatusCode::kInvalidArgument, before);
  ExpectRejected(Write(mine[0], 0, 0), absl::StatusCode::kFailedPrecondition,
                 before);  // Not a page table in use.
  ExpectRejected(Write(theirs[0], 0, 0), absl::StatusCode::kFailedPrecondition,
                 before);  // Someone else's table.
  std::vector<EntryUpdate> huge(MemoryManager::kMaxBatch + 1,
                                EntryUpdate{t.l1, 0, 0});
  ExpectRejected(mm_->MmuUpdate(d_, huge), absl::StatusCode::kInvalidArgument,
                 before);
}

TEST_F(TypeRulesTest, PinsDoNotNest) {
  const std::vector<Mfn> f = Frames(1);
  ASSERT_TRUE(mm_->PinTable(d_, f[0], Level::kL1).ok());
  EXPECT_EQ(Snap(f[0]).type, PageType::kL1);
  EXPECT_TRUE(Snap(f[0]).pinned);
  EXPECT_EQ(Snap(f[0]).type_count, 1u);
  const std::string before = StateDigest(*mm_);
  ExpectRejected(mm_->PinTable(d_, f[0], Level::kL1),
                 absl::StatusCode::kFailedPrecondition, before);
  ExpectRejected(mm_->PinTable(d_, f[0], Level::kL2),
                 absl::StatusCode::kFailedPrecondition, before);
  ASSERT_TRUE(mm_->UnpinTable(d_, f[0]).ok());
  EXPECT_FALSE(Snap(f[0]).pinned);
  EXPECT_EQ(Snap(f[0]).type_count, 0u);
  const std::string unpinned = StateDigest(*mm_);
  ExpectRejected(mm_->UnpinTable(d_, f[0]),
                 absl::StatusCode::kFailedPrecondition, unpinned);
}

TEST_F(TypeRulesTest, PinErrors) {
  const std::vector<Mfn> theirs = Frames(1, other_);
  const std::string before = StateDigest(*mm_);
  ExpectRejected(mm_->PinTable(d_, theirs[0], Level::kL1),
                 absl::StatusCode::kFailedPrecondition, before);
  ExpectRejected(mm_->PinTable(d_, Mfn(99999), Level::kL1),
                 absl::StatusCode::kInvalidArgument, before);
  ExpectRejected(mm_->PinTable(d_, root_, static_cast<Level>(5)),
                 absl::StatusCode::kInvalidArgument, before);
  ExpectRejected(mm_->UnpinTable(d_, theirs[0]),
                 absl::StatusCode::kFailedPrecondition, before);
}

TEST_F(TypeRulesTest, BasePointerTakesAnL4Reference) {
  const std::vector<Mfn> f = Frames(2);
  ASSERT_TRUE(mm_->SetBasePointer(d_, VcpuId(1), f[0]).ok());
  EXPECT_EQ(Snap(f[0]).type, PageType::kL4);
  EXPECT_EQ(Snap(f[0]).type_count, 1u);
  EXPECT_EQ(Snap(root_).type_count, 2u);  // Pin + vCPU 0.
  const std::string before = StateDigest(*mm_);
  ExpectRejected(mm_->SetBasePointer(d_, VcpuId(2), f[1]),
                 absl::StatusCode::kInvalidArgument, before);
  ASSERT_TRUE(mm_->PinTable(d_, f[1], Level::kL1).ok());
  const std::string pinned = StateDigest(*mm_);
  ExpectRejected(mm_->SetBasePointer(d_, VcpuId(1), f[1]),
                 absl::StatusCode::kFailedPrecondition, pinned);
  ASSERT_TRUE(mm_->SetBasePointer(d_, VcpuId(1), std::nullopt).ok());
  EXPECT_EQ(Snap(f[0]).type_count, 0u);
  EXPECT_EQ(mm_->Walk(d_, VcpuId(1), Vaddr(0), Access::kRead).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(TypeRulesTest, QuotaAndPoolExhaustion) {
  const std::string before = StateDigest(*mm_);
  ExpectRejected(mm_->IncreaseReservation(d_, 512).status(),  // 1 + 512 > 512
                 absl::StatusCode::kResourceExhausted, before);
  ASSERT_TRUE(mm_->IncreaseReservation(d_, 511).ok());
  ASSERT_TRUE(mm_->IncreaseReservation(other_, 511).ok());
  const DomainId big = mm_->CreateDomain({"big", 1, 4096}).value();
  // 2048 frames: 2 * 512 used, 1 root for `big`, 1023 left.
  const std::string full = StateDigest(*mm_);
  ExpectRejected(mm_->IncreaseReservation(big, 1024).status(),
                 absl::StatusCode::kResourceExhausted, full);
  EXPECT_TRUE(mm_->IncreaseReservation(big, 1023).ok());
  EXPECT_EQ(mm_->allocator().free_frames(), 0u);
  EXPECT_EQ(mm_->IncreaseReservation(d_, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(TypeRulesTest, DecreaseReservationReturnsOnlyUnusedFrames) {
  const Tree t = BuildTree();
  const std::vector<Mfn> f = Frames(2);
  const std::vector<Mfn> theirs = Frames(1, other_);
  const uint64_t free_before = mm_->allocator().free_frames();
  const std::string before = StateDigest(*mm_);
  ExpectRejected(mm_->DecreaseReservation(d_, {f[0], t.data}),
                 absl::StatusCode::kFailedPrecondition, before);
  ExpectRejected(mm_->DecreaseReservation(d_, {f[0], f[0]}),
                 absl::StatusCode::kInvalidArgument, before);
  ExpectRejected(mm_->DecreaseReservation(d_, {f[0], theirs[0]}),
                 absl::StatusCode::kFailedPrecondition, before);
  ExpectRejected(mm_->DecreaseReservation(d_, {root_}),
                 absl::StatusCode::kFailedPrecondition, before);
  ASSERT_TRUE(mm_->DecreaseReservation(d_, f).ok());
  EXPECT_EQ(mm_->allocator().free_frames(), free_before + 2);
  EXPECT_EQ(Snap(f[0]).owner, DomainId::None());
  EXPECT_TRUE(mm_->Audit().ok()) << mm_->Audit();
}

TEST_F(TypeRulesTest, AuditDetectsACorruptedCount) {
  const Tree t = BuildTree();
  ASSERT_TRUE(mm_->Audit().ok());
  const_cast<PageInfo&>(mm_->frame_table().info(t.l1)).type_count += 1;
  const absl::Status s = mm_->Audit();
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_NE(s.message().find("type count 2"), std::string::npos) << s;
  const_cast<PageInfo&>(mm_->frame_table().info(t.l1)).type_count -= 1;
  EXPECT_TRUE(mm_->Audit().ok());
}

TEST_F(TypeRulesTest, AuditDetectsAWritableTable) {
  const Tree t = BuildTree();
  // Forge a writable mapping of l2 behind the type system's back.
  mm_->frame_table().entries(t.l1)[5].store(MakePte(t.l2, kRw));
  const absl::Status s = mm_->Audit();
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_NE(s.message().find("as writable but it is l2"), std::string::npos)
      << s;
  mm_->frame_table().entries(t.l1)[5].store(0);
}

using TypeRulesDeathTest = TypeRulesTest;

TEST_F(TypeRulesDeathTest, ReferenceUnderflowCrashes) {
  const std::vector<Mfn> f = Frames(1);
  EXPECT_DEATH(
      {
        TypeTransaction txn(&mm_->frame_table(), &mm_->clock(),
                            mm_->FindDomain(d_).get(),
                            TypeTransaction::Mode::kStaged);
        txn.PutPageType(f[0]);
      },
      "type count underflow");
}

// A write-through transaction publishes as it goes, so nothing could run
// between a retype and the new use: it refuses the retype by crashing.
TEST_F(TypeRulesDeathTest, RetypeInAWriteThroughTransactionCrashes) {
  const std::vector<Mfn> f = Frames(1);
  ASSERT_TRUE(mm_->PinTable(d_, f[0], Level::kL1).ok());
  ASSERT_TRUE(mm_->UnpinTable(d_, f[0]).ok());  // l1, type count 0.
  EXPECT_DEATH(
      {
        TypeTransaction txn(&mm_->frame_table(), &mm_->clock(),
                            mm_->FindDomain(d_).get(),
                            TypeTransaction::Mode::kWriteThrough);
        (void)txn.GetPageType(f[0], PageType::kWritable);
      },
      "write-through transaction");
}

}  // namespace
}  // namespace hvmm
