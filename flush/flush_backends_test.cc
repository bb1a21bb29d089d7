#include "flush/flush_backends.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "flush/flush_batcher.h"
#include "gtest/gtest.h"

namespace hvmm {
namespace {

using std::chrono::milliseconds;

constexpr int kPcpus = 4;
const DomainId kDom(1);

// pCPUs whose step idles, or, for one armed pCPU, blocks inside its
// interrupts-off section until released (a walker stalled mid-walk).
class BackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < kPcpus; ++i) {
      pcpus_.push_back(
          std::make_unique<Pcpu>(PcpuId(i), &clock_, Tlb::Options()));
      raw_.push_back(pcpus_.back().get());
    }
    for (auto& p : pcpus_) {
      p->Start([this](Pcpu& self) {
        const int me = static_cast<int>(self.id().value());
        if (me == stall_cpu_.load()) {
          stalled_.store(true);
          while (stall_cpu_.load() == me) std::this_thread::yield();
          return true;
        }
        return false;
      });
    }
  }
  void TearDown() override {
    stall_cpu_.store(-1);
    for (auto& p : pcpus_) p->Stop();
  }
  // Parks pCPU `cpu` inside an interrupts-off section.
  void Stall(int cpu) {
    stalled_.store(false);
    stall_cpu_.store(cpu);
    raw_[cpu]->Kick();
    while (!stalled_.load()) std::this_thread::yield();
    ASSERT_FALSE(raw_[cpu]->irqs_enabled());
  }
  void Unstall() { stall_cpu_.store(-1); }

  static CpuMask Cpus(std::initializer_list<int> cpus) {
    CpuMask m;
    for (int c : cpus) m.Set(PcpuId(c));
    return m;
  }

  TlbClock clock_;
  std::vector<std::unique_ptr<Pcpu>> pcpus_;
  std::vector<Pcpu*> raw_;
  std::atomic<int> stall_cpu_{-1};
  std::atomic<bool> stalled_{false};
};

TEST_F(BackendTest, AssistedTouchesOnlyTheTargetsNeverABroadcast) {
  AssistedFlushBackend assisted(raw_, {0, 0});
  assisted.Flush({Cpus({1, 3}), {FlushScope::Domain(kDom)}, 1});
  EXPECT_EQ(raw_[0]->tlb().requests_received(), 0u);
  EXPECT_EQ(raw_[1]->tlb().requests_received(), 1u);
  EXPECT_EQ(raw_[2]->tlb().requests_received(), 0u);
  EXPECT_EQ(raw_[3]->tlb().requests_received(), 1u);
  EXPECT_EQ(assisted.targets_invalidated(), 2u);
  // Through the batcher as well: still only the requested CPU.
  FlushBatcher batcher(&assisted);
  batcher.Flush({Cpus({2}), FlushScope::Range(kDom, Vaddr(0), 1)});
  EXPECT_EQ(raw_[0]->tlb().requests_received(), 0u);
  EXPECT_EQ(raw_[2]->tlb().requests_received(), 1u);
}

TEST_F(BackendTest, AssistedDoesNotWaitForAWalkerWithInterruptsOff) {
  Stall(1);
  AssistedFlushBackend assisted(raw_, {1000, 100});
  assisted.Flush({Cpus({1}), {FlushScope::Domain(kDom)}, 1});
  // Returned while the target is still inside its interrupts-off section:
  // the seed bug in one line.
  EXPECT_FALSE(raw_[1]->irqs_enabled());
  EXPECT_EQ(raw_[1]->tlb().requests_received(), 1u);
  Unstall();
}

TEST_F(BackendTest, IpiWaitsUntilTheTargetEnablesInterrupts) {
  Stall(2);
  IpiFlushBackend ipi(raw_);
  std::atomic<bool> returned{false};
  std::thread flusher([&] {
    ipi.Flush({Cpus({0, 2}), {FlushScope::Domain(kDom)}, 1});
    returned.store(true);
  });
  // Until the flush returns, or pCPU 0 has served its IPI while pCPU 2's
  // is still pending: then the flush must be waiting.
  while (!returned.load() &&
         !(raw_[0]->ipis_served() == 1 && raw_[2]->ipi_pending())) {
    std::this_thread::yield();
  }
  EXPECT_FALSE(returned.load()) << "IPI completed while a walk was running";
  EXPECT_EQ(raw_[2]->ipis_served(), 0u);
  Unstall();
  flusher.join();
  EXPECT_TRUE(returned.load());
  EXPECT_EQ(raw_[0]->ipis_served(), 1u);
  EXPECT_EQ(raw_[2]->ipis_served(), 1u);
  EXPECT_EQ(raw_[1]->ipis_served(), 0u);
  EXPECT_EQ(ipi.ipis_sent(), 2u);
  EXPECT_GE(raw_[2]->tlb().flushes_applied(), 1u);
}

TEST_F(BackendTest, FullIpiFlushTicksTheClockAndRecordsFlushTime) {
  IpiFlushBackend ipi(raw_);
  const TlbStamp before = clock_.Now();
  ipi.Flush({CpuMask::FirstN(kPcpus), {FlushScope::All()}, 1});
  for (Pcpu* p : raw_) {
    EXPECT_GT(p->flush_time().time(), before) << "pCPU " << p->id();
    // A page stamped before the flush needs no further flush on this CPU.
    EXPECT_FALSE(clock_.NeedFlush(p->flush_time(), before));
  }
  EXPECT_EQ(clock_.Now(), TlbStamp(before.value() + kPcpus));
}

// Bounded stress: busy pCPUs filling and using their TLBs while several
// threads flush through batched IPI and assisted backends. Every flush
// completes; run under TSan.
TEST(BackendStressTest, BatchedFlushesUnderLoad) {
  TlbClock clock;
  std::vector<std::unique_ptr<Pcpu>> pcpus;
  std::vector<Pcpu*> raw;
  for (int i = 0; i < kPcpus; ++i) {
    pcpus.push_back(
        std::make_unique<Pcpu>(PcpuId(i), &clock, Tlb::Options{16, 2, 8}));
    raw.push_back(pcpus.back().get());
  }
  for (auto& p : pcpus) {
    p->Start([](Pcpu& self) {
      static thread_local uint64_t n = 0;
      const Vaddr va((++n % 32) * kPageSize);
      if (self.tlb().Lookup(kDom, va) == nullptr) {
        WalkResult w;
        w.mfn = Mfn(n % 32);
        w.tables_read = 4;
        self.tlb().Insert(self.tlb().BeginFill(), kDom, va, w);
      }
      return n % 8 != 0;  // Idle now and then.
    });
  }
  IpiFlushBackend ipi(raw);
  AssistedFlushBackend assisted(raw, {500, 50});
  FlushBatcher ipi_batcher(&ipi), assisted_batcher(&assisted);
  std::vector<std::thread> flushers;
  constexpr int kFlushers = 3, kEach = 300;
  for (int t = 0; t < kFlushers; ++t) {
    flushers.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < kEach; ++i) {
        CpuMask m;
        m.Set(PcpuId(rng() % kPcpus));
        m.Set(PcpuId(rng() % kPcpus));
        const FlushRequest r{m, FlushScope::Range(kDom, Vaddr(0), 32)};
        (i % 2 ? ipi_batcher : assisted_batcher).Flush(r);
      }
    });
  }
  for (auto& t : flushers) t.join();
  for (auto& p : pcpus) p->Stop();
  EXPECT_EQ(ipi_batcher.requests() + assisted_batcher.requests(),
            uint64_t{kFlushers * kEach});
  uint64_t served = 0;
  for (Pcpu* p : raw) served += p->ipis_served();
  EXPECT_EQ(served, ipi.ipis_sent());
  std::printf("ipi: %lu requests in %lu calls; assisted: %lu in %lu\n",
              static_cast<unsigned long>(ipi_batcher.requests()),
              static_cast<unsigned long>(ipi_batcher.backend_calls()),
              static_cast<unsigned long>(assisted_batcher.requests()),
              static_cast<unsigned long>(assisted_batcher.backend_calls()));
}

}  // namespace
}  // namespace hvmm
