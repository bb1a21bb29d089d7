#include "flush/flush_policy.h"

#include <memory>
#include <vector>

#include "flush/flush_backends.h"
#include "gtest/gtest.h"

namespace hvmm {
namespace {

// Idle pCPUs, both backends, and a domain that has run on pCPUs 0 and 2.
class FlushPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 3; ++i) {
      pcpus_.push_back(std::make_unique<Pcpu>(i, &clock_, Tlb::Options()));
      raw_.push_back(pcpus_.back().get());
      pcpus_.back()->Start([](Pcpu&) { return false; });
    }
    grace_ = std::make_unique<GracePeriods>(raw_);
    ipi_ = std::make_unique<IpiFlushBackend>(raw_);
    assisted_ = std::make_unique<AssistedFlushBackend>(
        raw_, AssistedFlushBackend::Options{0, 0});
    ipi_batcher_ = std::make_unique<FlushBatcher>(ipi_.get());
    assisted_batcher_ = std::make_unique<FlushBatcher>(assisted_.get());
    domain_.MarkDirty(0);
    domain_.MarkDirty(2);
  }
  void TearDown() override {
    for (auto& p : pcpus_) p->Stop();
  }
  std::unique_ptr<FlushPolicy> Make(Policy p) {
    return FlushPolicy::Create(p, /*allow_unsafe=*/true, raw_, &clock_,
                               ipi_batcher_.get(), assisted_batcher_.get(),
                               grace_.get())
        .value();
  }

  TlbClock clock_;
  std::vector<std::unique_ptr<Pcpu>> pcpus_;
  std::vector<Pcpu*> raw_;
  std::unique_ptr<GracePeriods> grace_;
  std::unique_ptr<IpiFlushBackend> ipi_;
  std::unique_ptr<AssistedFlushBackend> assisted_;
  std::unique_ptr<FlushBatcher> ipi_batcher_, assisted_batcher_;
  Domain domain_{DomainId(1), "d", 1, 16};
};

TEST_F(FlushPolicyTest, ParsesNamesAndRefusesUnsafeUnlessAllowed) {
  EXPECT_EQ(ParsePolicy("assisted+rcu").value(), Policy::kAssistedRcu);
  EXPECT_EQ(ParsePolicy("rcu").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FlushPolicy::Create(Policy::kAssistedUnsafe, false, raw_, &clock_,
                                ipi_batcher_.get(), assisted_batcher_.get(),
                                grace_.get())
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(FlushPolicy::Create(Policy::kAssistedRcu, false, raw_, &clock_,
                                ipi_batcher_.get(), assisted_batcher_.get(),
                                nullptr)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(FlushPolicyTest, IpiPolicySendsEverythingByIpiToTheDirtyMask) {
  auto p = Make(Policy::kIpi);
  p->AfterUnmap(domain_, false);
  p->BeforeRetype(domain_, Mfn(5));
  EXPECT_EQ(ipi_->ipis_sent(), 4u);  // Two flushes, pCPUs 0 and 2 each.
  EXPECT_EQ(raw_[1]->ipis_served(), 0u) << "pCPU 1 never ran the domain";
  EXPECT_EQ(assisted_->calls(), 0u);
}

TEST_F(FlushPolicyTest, ForceIpiUsesIpiOnlyWhenTablesLeave) {
  auto p = Make(Policy::kAssistedForceIpi);
  p->AfterUnmap(domain_, /*tables_leave=*/false);
  EXPECT_EQ(ipi_->calls(), 0u);
  EXPECT_EQ(assisted_->calls(), 1u);
  p->AfterUnmap(domain_, /*tables_leave=*/true);
  p->BeforeRetype(domain_, Mfn(5));
  EXPECT_EQ(ipi_->calls(), 2u);
  EXPECT_EQ(p->stats().forced_ipis, 2u);
}

TEST_F(FlushPolicyTest, RcuIsAssistedAndWaitsAGracePeriodOnRetype) {
  auto p = Make(Policy::kAssistedRcu);
  p->AfterUnmap(domain_, /*tables_leave=*/true);
  p->BeforeRetype(domain_, Mfn(5));
  EXPECT_EQ(ipi_->calls(), 0u);
  EXPECT_EQ(assisted_->calls(), 2u);
  EXPECT_EQ(assisted_->targets_invalidated(), 4u);
  EXPECT_EQ(p->stats().retype_grace_periods, 1u);
  EXPECT_EQ(grace_->completed(), 1u);
}

TEST_F(FlushPolicyTest, UnsafeIsAllAssistedAndWaitsForNobody) {
  auto p = Make(Policy::kAssistedUnsafe);
  p->AfterUnmap(domain_, true);
  p->BeforeRetype(domain_, Mfn(5));
  EXPECT_EQ(ipi_->calls(), 0u);
  EXPECT_EQ(grace_->completed(), 0u);
}

TEST_F(FlushPolicyTest, AllocationFlushSkipsPcpusThatFlushedSinceTheStamp) {
  auto p = Make(Policy::kIpi);
  const uint32_t stamp = clock_.Now();
  p->AfterAllocate(stamp);  // Nobody has flushed yet: all three.
  EXPECT_EQ(ipi_->ipis_sent(), 3u);
  p->AfterAllocate(stamp);  // All flushed after the stamp: nobody.
  EXPECT_EQ(ipi_->ipis_sent(), 3u);
  // Assisted full flushes advance flush times too.
  auto rcu = Make(Policy::kAssistedRcu);
  const uint32_t later = clock_.Now();
  rcu->AfterAllocate(later);
  EXPECT_EQ(assisted_->targets_invalidated(), 3u);
  rcu->AfterAllocate(later);
  EXPECT_EQ(assisted_->targets_invalidated(), 3u);
}

}  // namespace
}  // namespace hvmm
