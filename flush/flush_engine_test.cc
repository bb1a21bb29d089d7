// The assembled engine: creation errors, and each domain's frees routed by
// its own policy through the PolicyRetirer.
#include "flush/flush_engine.h"

#include <memory>

#include "gtest/gtest.h"
#include "cpu/testing/pcpu_set.h"
#include "mm/testing/mm_test_util.h"

namespace hvmm {
namespace {

using ::hvmm::testing::MakeMemoryManager;

constexpr uint64_t kFrames = 4096;
const Vaddr kVa(uint64_t{1} << 30);

TEST(FlushEngineTest, CreationErrors) {
  auto mm = MakeMemoryManager(kFrames);
  FlushEngine::Options options;
  options.pcpus = 0;
  EXPECT_EQ(FlushEngine::Create(mm.get(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.pcpus = kMaxPcpus + 1;
  EXPECT_EQ(FlushEngine::Create(mm.get(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.pcpus = 2;
  options.policy = Policy::kAssistedUnsafe;
  EXPECT_EQ(FlushEngine::Create(mm.get(), options).status().code(),
            absl::StatusCode::kFailedPrecondition);

  auto busy = MakeMemoryManager(kFrames);
  ASSERT_TRUE(busy->CreateDomain({"early", 1, 16}).ok());
  EXPECT_EQ(FlushEngine::Create(busy.get(), FlushEngine::Options())
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(FlushEngineTest, FreesFollowEachDomainsPolicy) {
  auto mm = MakeMemoryManager(kFrames);
  FlushEngine::Options options;
  options.pcpus = 2;
  options.policy = Policy::kAssistedRcu;
  auto engine = FlushEngine::Create(mm.get(), options).value();
  engine->Start([](int) { return Pcpu::Step(&testing::PcpuSet::Idle); });

  const uint8_t ipi_tag = engine->policy().OverrideTag(Policy::kIpi).value();
  const DomainId rcu = mm->CreateDomain({"rcu", 1, 256}).value();
  const DomainId ipi = mm->CreateDomain({"ipi", 1, 256, ipi_tag}).value();
  EXPECT_EQ(mm->GetDomainInfo(ipi).value().flush_policy, ipi_tag);
  EXPECT_EQ(mm->GetDomainInfo(rcu).value().flush_policy, 0);

  // The ipi domain: its IPI waited out walkers, so frees are immediate.
  ASSERT_TRUE(mm->MapRange(ipi, kVa, 8, true).ok());
  ASSERT_TRUE(mm->UnmapRange(ipi, kVa, 8).ok());
  const uint64_t immediate = engine->retirer().freed_at_once();
  EXPECT_EQ(immediate, 8u + 3u) << "8 data pages and the L3, L2, L1";
  EXPECT_EQ(engine->deferred_retirer().pending_frames() +
                engine->deferred_retirer().frames_freed(),
            0u);

  // The rcu domain (the default): frees wait for its grace period.
  ASSERT_TRUE(mm->MapRange(rcu, kVa, 8, true).ok());
  ASSERT_TRUE(mm->UnmapRange(rcu, kVa, 8).ok());
  EXPECT_EQ(engine->retirer().freed_at_once(), immediate);
  engine->retirer().Drain(rcu);
  EXPECT_EQ(engine->deferred_retirer().frames_freed(), 8u + 3u);
  EXPECT_EQ(engine->deferred_retirer().pending_frames(), 0u);

  ASSERT_TRUE(mm->Audit().ok()) << mm->Audit();
  ASSERT_TRUE(mm->DestroyDomain(rcu).ok());
  ASSERT_TRUE(mm->DestroyDomain(ipi).ok());
  EXPECT_EQ(mm->allocator().free_frames(), kFrames);
  engine->Stop();
}

}  // namespace
}  // namespace hvmm
