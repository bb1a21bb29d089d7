// Seeded randomized test: 100,000 random operations over several domains,
// with the full audit after every step. On failure it prints the seed;
// reproduce with HVMM_SEED=<seed>.
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mm/memory_manager.h"
#include "mm/mm_errors.h"
#include "mm/pte.h"
#include "mm/testing/mm_test_util.h"

namespace hvmm {
namespace {

using ::hvmm::testing::MakeMemoryManager;
using ::hvmm::testing::StateDigest;

enum Op {
  kMap, kUnmap, kIncrease, kDecrease, kPin, kUnpin, kBasePointer,
  kMmuUpdate, kWalk, kRecreate, kAlias, kOpCount
};
const char* const kOpNames[] = {"map",   "unmap",        "increase",
                                "decrease", "pin",       "unpin",
                                "base-pointer", "mmu-update", "walk",
                                "recreate", "alias"};

class RandomOps {
 public:
  explicit RandomOps(uint64_t seed) : rng_(seed), mm_(MakeMemoryManager(3072)) {
    for (int i = 0; i < kDomains; ++i) domains_.push_back(Create(i));
  }

  // Runs `steps` operations; returns "" or the first failure.
  std::string Run(int steps) {
    for (int step = 0; step < steps; ++step) {
      const Op op = PickOp();
      const std::string before =
          (step % 64 == 0) ? StateDigest(*mm_) : std::string();
      const absl::Status s = Do(op);
      ++(s.ok() ? ok_ : failed_)[op];
      if (!s.ok() && IsUnexpected(s)) {
        return absl::StrCat("step ", step, " ", kOpNames[op],
                            ": unexpected error ", s.ToString());
      }
      // Every refusal says why, in a word a client can branch on.
      if (!s.ok() && ErrorReason(s).empty()) {
        return absl::StrCat("step ", step, " ", kOpNames[op],
                            ": error without a reason: ", s.ToString());
      }
      if (!s.ok() && !before.empty() && op != kRecreate &&
          StateDigest(*mm_) != before) {
        return absl::StrCat("step ", step, " ", kOpNames[op],
                            " failed with ", s.ToString(),
                            " but changed state");
      }
      if (absl::Status a = mm_->Audit(); !a.ok()) {
        return absl::StrCat("step ", step, " after ", kOpNames[op], " (",
                            s.ToString(), "): ", a.ToString());
      }
    }
    return "";
  }

  int ok(Op op) const { return ok_[op]; }
  int failed(Op op) const { return failed_[op]; }
  MemoryManager& mm() { return *mm_; }
  const std::vector<DomainId>& domains() const { return domains_; }

 private:
  static constexpr int kDomains = 4;

  DomainId Create(int slot) {
    return mm_->CreateDomain({absl::StrCat("r", slot, "_", ++generation_), 2,
                              600})
        .value();
  }
  uint64_t Uniform(uint64_t n) {
    return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_);
  }
  Op PickOp() {
    // Weights: mostly mapping churn and entry writes, some of everything.
    static const int kWeights[kOpCount] = {18, 14, 6, 6, 8, 6, 4, 26, 10, 2, 4};
    int total = 0;
    for (int w : kWeights) total += w;
    int r = static_cast<int>(Uniform(total));
    for (int i = 0; i < kOpCount; ++i) {
      if ((r -= kWeights[i]) < 0) return static_cast<Op>(i);
    }
    return kWalk;
  }
  // A small address window, so that ranges collide and tables are shared.
  Vaddr RandomVa() {
    static const uint64_t kBases[] = {0, uint64_t{1} << 21, uint64_t{1} << 30,
                                      uint64_t{1} << 39, 0xffff800000000000};
    return Vaddr(kBases[Uniform(5)] + Uniform(1200) * kPageSize);
  }
  // One of the domain's frames, or occasionally a foreign or bogus one.
  Mfn RandomFrame(DomainId d) {
    const uint64_t r = Uniform(100);
    if (r < 3) return Mfn(mm_->frame_table().frame_count() + Uniform(10));
    if (r < 8) return Mfn(Uniform(mm_->frame_table().frame_count()));
    std::shared_ptr<Domain> dom = mm_->FindDomain(d);
    MutexLock lock(&dom->mu());
    const std::vector<Mfn>& owned = dom->owned_frames_locked();
    return owned[Uniform(owned.size())];
  }
  // Usually a table on some walk's path (so in use); else any frame.
  Mfn TableInUse(DomainId d) {
    absl::StatusOr<WalkResult> w =
        mm_->Walk(d, VcpuId(Uniform(2)), RandomVa(), Access::kRead);
    if (!w.ok() || w->tables_read == 0) return RandomFrame(d);
    return w->tables[Uniform(w->tables_read)];
  }
  uint64_t RandomEntry(DomainId d) {
    if (Uniform(4) == 0) return 0;
    uint64_t flags = kPtePresent | kPteUser;
    if (Uniform(2)) flags |= kPteWritable;
    if (Uniform(50) == 0) flags |= kPteLarge;
    if (Uniform(50) == 0) flags |= uint64_t{1} << 10;
    return MakePte(RandomFrame(d), flags);
  }

  absl::Status Do(Op op) {
    const size_t slot = Uniform(domains_.size());
    const DomainId d = domains_[slot];
    switch (op) {
      case kMap:
        return mm_->MapRange(d, RandomVa(), 1 + Uniform(24), Uniform(3) != 0)
            .status();
      case kUnmap:
        return mm_->UnmapRange(d, RandomVa(), 1 + Uniform(64)).status();
      case kIncrease:
        return mm_->IncreaseReservation(d, 1 + Uniform(6)).status();
      case kDecrease: {
        std::vector<Mfn> frames;
        for (uint64_t i = 0, n = 1 + Uniform(3); i < n; ++i) {
          frames.push_back(RandomFrame(d));
        }
        return mm_->DecreaseReservation(d, frames);
      }
      case kPin:
        return mm_->PinTable(d, RandomFrame(d),
                             static_cast<Level>(1 + Uniform(4)));
      case kUnpin:
        return mm_->UnpinTable(d, RandomFrame(d));
      case kBasePointer:
        return mm_->SetBasePointer(
            d, VcpuId(Uniform(3)),
            Uniform(5) == 0 ? std::nullopt : std::optional<Mfn>(RandomFrame(d)));
      case kMmuUpdate: {
        std::vector<EntryUpdate> batch;
        for (uint64_t i = 0, n = 1 + Uniform(4); i < n; ++i) {
          batch.push_back({Uniform(4) != 0 ? TableInUse(d) : RandomFrame(d),
                           static_cast<uint32_t>(Uniform(20) == 0
                                                     ? 512
                                                     : Uniform(8)),
                           RandomEntry(d)});
        }
        return mm_->MmuUpdate(d, batch);
      }
      case kWalk: {
        absl::StatusOr<WalkResult> w =
            mm_->Walk(d, VcpuId(Uniform(2)), RandomVa(),
                      Uniform(2) ? Access::kWrite : Access::kRead);
        if (w.ok() && w->ok() &&
            mm_->InspectFrame(w->mfn)->owner != d) {
          return absl::InternalError("walk reached a frame of another owner");
        }
        return w.status();
      }
      case kAlias: {
        // Another entry of an upper table on some walk's path points at the
        // same child (aliased tables: legal, and ranges must cope).
        absl::StatusOr<WalkResult> w =
            mm_->Walk(d, VcpuId(Uniform(2)), RandomVa(), Access::kRead);
        if (!w.ok() || w->tables_read < 2) return w.status();
        const uint32_t i = static_cast<uint32_t>(Uniform(w->tables_read - 1));
        const Mfn table = w->tables[i], child = w->tables[i + 1];
        uint64_t entry = 0;
        for (uint32_t e = 0; e < kEntriesPerTable && entry == 0; ++e) {
          const uint64_t v = testing::EntryAt(*mm_, table, e);
          if (PtePresent(v) && PteMfn(v) == child) entry = v;
        }
        return mm_->MmuUpdate(
            d, {{table, static_cast<uint32_t>(Uniform(8)), entry}});
      }
      case kRecreate: {
        absl::Status s = mm_->DestroyDomain(d);
        if (s.ok()) domains_[slot] = Create(static_cast<int>(slot));
        return s;
      }
      case kOpCount:
        break;
    }
    return absl::InternalError("bad op");
  }

  // kInternal means a broken invariant; everything else is a legal refusal.
  static bool IsUnexpected(const absl::Status& s) {
    return s.code() == absl::StatusCode::kInternal ||
           s.code() == absl::StatusCode::kUnknown;
  }

  std::mt19937_64 rng_;
  std::unique_ptr<MemoryManager> mm_;
  std::vector<DomainId> domains_;
  int generation_ = 0;
  int ok_[kOpCount] = {};
  int failed_[kOpCount] = {};
};

uint64_t SeedFromEnv(uint64_t fallback) {
  const char* env = std::getenv("HVMM_SEED");
  return env == nullptr ? fallback : std::strtoull(env, nullptr, 10);
}

int StepsFromEnv(int fallback) {
  const char* env = std::getenv("HVMM_RANDOM_STEPS");
  return env == nullptr ? fallback : std::atoi(env);
}

TEST(RandomOpsTest, HundredThousandOpsKeepEveryInvariant) {
  const uint64_t seed = SeedFromEnv(20261121);
  const int steps = StepsFromEnv(100000);
  RandomOps ops(seed);
  const std::string failure = ops.Run(steps);
  ASSERT_EQ(failure, "") << "seed " << seed << " (HVMM_SEED=" << seed << ")";
  // Every kind of operation both succeeded and was refused at least once,
  // so the run exercised the rules rather than bouncing off them.
  for (int op = 0; op < kOpCount; ++op) {
    EXPECT_GT(ops.ok(static_cast<Op>(op)), 0) << kOpNames[op] << " seed " << seed;
    if (op != kWalk && op != kIncrease && op != kRecreate && op != kAlias) {
      EXPECT_GT(ops.failed(static_cast<Op>(op)), 0)
          << kOpNames[op] << " seed " << seed;
    }
    std::printf("%-13s ok %6d refused %6d\n", kOpNames[op],
                ops.ok(static_cast<Op>(op)), ops.failed(static_cast<Op>(op)));
  }
  // Tear everything down: the pool is whole again.
  for (DomainId d : ops.domains()) ASSERT_TRUE(ops.mm().DestroyDomain(d).ok());
  EXPECT_EQ(ops.mm().allocator().free_frames(),
            ops.mm().frame_table().frame_count());
  EXPECT_TRUE(ops.mm().Audit().ok());
}

}  // namespace
}  // namespace hvmm
