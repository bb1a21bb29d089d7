#include <vector>

#include "gtest/gtest.h"
#include "mm/memory_manager.h"
#include "mm/pte.h"
#include "mm/testing/mm_test_util.h"

namespace hvmm {
namespace {

using ::hvmm::testing::MakeMemoryManager;

TEST(DomainDestroyTest, RelinquishesEverythingAndPoolReturnsToStart) {
  auto mm = MakeMemoryManager(8192);
  const uint64_t start = mm->allocator().free_frames();
  std::vector<DomainId> ids;
  for (int i = 0; i < 3; ++i) {
    const DomainId d =
        mm->CreateDomain({"dom" + std::to_string(i), 4, 2048}).value();
    ids.push_back(d);
    ASSERT_TRUE(mm->MapRange(d, Vaddr(0), 300, true).ok());
    ASSERT_TRUE(mm->MapRange(d, Vaddr(uint64_t{1} << 39), 20, false).ok());
    // Extra structure: a pinned L1, a second root for vCPU 3, loose frames.
    const std::vector<Mfn> f = mm->IncreaseReservation(d, 5).value();
    ASSERT_TRUE(mm->PinTable(d, f[0], Level::kL1).ok());
    ASSERT_TRUE(mm->MmuUpdate(d, {{f[0], 0, MakePte(f[1], kPtePresent |
                                                             kPteWritable)}})
                    .ok());
    ASSERT_TRUE(mm->SetBasePointer(d, VcpuId(3), f[2]).ok());
  }
  ASSERT_TRUE(mm->Audit().ok()) << mm->Audit();
  EXPECT_LT(mm->allocator().free_frames(), start);

  for (DomainId d : ids) {
    ASSERT_TRUE(mm->DestroyDomain(d).ok());
    EXPECT_EQ(mm->GetDomainInfo(d).status().code(),
              absl::StatusCode::kNotFound);
    EXPECT_EQ(mm->DestroyDomain(d).code(), absl::StatusCode::kNotFound);
    ASSERT_TRUE(mm->Audit().ok()) << mm->Audit();
  }
  EXPECT_EQ(mm->allocator().free_frames(), start);
  EXPECT_TRUE(mm->ListDomains().empty());
  // The name is free again, and the new domain gets a new id.
  const DomainId again = mm->CreateDomain({"dom0", 1, 16}).value();
  EXPECT_GT(again, ids.back());
}

TEST(DomainDestroyTest, OtherDomainsAreUntouched) {
  auto mm = MakeMemoryManager(4096);
  const DomainId a = mm->CreateDomain({"a", 1, 1024}).value();
  const DomainId b = mm->CreateDomain({"b", 1, 1024}).value();
  ASSERT_TRUE(mm->MapRange(a, Vaddr(0), 64, true).ok());
  ASSERT_TRUE(mm->MapRange(b, Vaddr(0), 64, true).ok());
  const Mfn b_data = mm->Walk(b, VcpuId(0), Vaddr(0), Access::kRead)->mfn;
  ASSERT_TRUE(mm->DestroyDomain(a).ok());
  const WalkResult w =
      mm->Walk(b, VcpuId(0), Vaddr(0), Access::kWrite).value();
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w.mfn, b_data);
  EXPECT_EQ(mm->GetDomainInfo(b)->tot_pages, 1u + 3u + 64u);
  EXPECT_TRUE(mm->Audit().ok()) << mm->Audit();
}

}  // namespace
}  // namespace hvmm
