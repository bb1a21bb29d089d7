#include "grace/grace_periods.h"

#include <atomic>
#include <chrono>
#include <thread>

#include "grace/testing/parked_reader.h"
#include "gtest/gtest.h"

namespace hvmm {
namespace {

using std::chrono::milliseconds;
using ::hvmm::testing::ParkedReaders;

const DomainId kD(1), kE(2);

TEST(GracePeriodsTest, NoReadersNoWait) {
  ParkedReaders readers(3);
  GracePeriods grace(readers.pcpus());
  EXPECT_EQ(grace.Synchronize(kD), 0);
  EXPECT_EQ(grace.SynchronizeExpedited(kD), 0);
  EXPECT_EQ(grace.completed(), 2u);
}

// Runs `gp` on another thread; checks it is still waiting after 50 ms, then
// releases the reader and checks it finishes.
template <typename Gp>
void ExpectWaitsForReader(ParkedReaders& readers, int cpu, Gp gp) {
  std::atomic<bool> done{false};
  std::thread t([&] {
    gp();
    done.store(true);
  });
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_FALSE(done.load()) << "grace period ended inside a read section";
  readers.Release(cpu);
  t.join();
  EXPECT_TRUE(done.load());
}

TEST(GracePeriodsTest, WaitsForAReaderOfTheDomain) {
  ParkedReaders readers(3);
  GracePeriods grace(readers.pcpus());
  readers.Park(1, kD);
  ExpectWaitsForReader(readers, 1, [&] { EXPECT_EQ(grace.Synchronize(kD), 1); });
}

TEST(GracePeriodsTest, ExpeditedWaitsForAReaderOfTheDomain) {
  ParkedReaders readers(3);
  GracePeriods grace(readers.pcpus());
  readers.Park(2, kD);
  ExpectWaitsForReader(readers, 2, [&] {
    EXPECT_EQ(grace.SynchronizeExpedited(kD), 1);
  });
  EXPECT_EQ(grace.expedited(), 1u);
}

TEST(GracePeriodsTest, AnotherDomainsStalledReaderDoesNotDelay) {
  ParkedReaders readers(3);
  GracePeriods grace(readers.pcpus());
  readers.Park(0, kE);  // Stalled walker of E, indefinitely.
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(grace.Synchronize(kD), 0);
  EXPECT_EQ(grace.SynchronizeExpedited(kD), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(1000));
  readers.Release(0);
}

TEST(GracePeriodsTest, ReadersThatStartAfterTheGracePeriodAreNotWaitedFor) {
  // A section that begins after Synchronize() started sees the unhooked
  // state, so the grace period must not wait for it: after the first reader
  // leaves, a new one parks and the grace period still ends.
  ParkedReaders readers(3);
  GracePeriods grace(readers.pcpus());
  readers.Park(1, kD);
  std::atomic<bool> done{false};
  std::thread t([&] {
    grace.Synchronize(kD);
    done.store(true);
  });
  std::this_thread::sleep_for(milliseconds(50));  // The GP has begun.
  readers.Park(2, kD);  // New reader, after the grace period began.
  readers.Release(1);
  const auto deadline = std::chrono::steady_clock::now() + milliseconds(2000);
  while (!done.load() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  EXPECT_TRUE(done.load()) << "waited for a reader that began after it";
  readers.Release(2);
  t.join();
}

TEST(GracePeriodsTest, PollWithNoReadersHasElapsed) {
  ParkedReaders readers(2);
  GracePeriods grace(readers.pcpus());
  const uint64_t cookie = grace.GetState();
  EXPECT_NE(cookie, 0u);
  EXPECT_TRUE(grace.PollState(kD, cookie));
  EXPECT_FALSE(grace.CondSynchronize(kD, cookie));
  EXPECT_EQ(grace.polls_elapsed(), 1u);
  EXPECT_EQ(grace.completed(), 0u) << "an elapsed poll is not a new GP";
}

TEST(GracePeriodsTest, UnknownCookieNeverElapses) {
  ParkedReaders readers(2);
  GracePeriods grace(readers.pcpus());
  EXPECT_FALSE(grace.PollState(kD, 0));
}

TEST(GracePeriodsTest, PollWaitsOnlyForOlderReadersOfTheDomain) {
  ParkedReaders readers(3);
  GracePeriods grace(readers.pcpus());
  readers.Park(0, kD);  // Began before the cookie.
  readers.Park(1, kE);  // Another domain: never matters.
  const uint64_t cookie = grace.GetState();
  EXPECT_FALSE(grace.PollState(kD, cookie));
  EXPECT_FALSE(grace.PollState(kE, grace.GetState()))
      << "E's reader began before this cookie too";
  readers.Park(2, kD);  // Began after the cookie: cannot see the unhook.
  EXPECT_FALSE(grace.PollState(kD, cookie)) << "pCPU 0 is still inside";
  readers.Release(0);
  // Wait until pCPU 0 has left its section.
  const auto deadline = std::chrono::steady_clock::now() + milliseconds(2000);
  while (!grace.PollState(kD, cookie) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  EXPECT_TRUE(grace.PollState(kD, cookie))
      << "a reader that began after the cookie kept it from elapsing";
  EXPECT_FALSE(grace.CondSynchronize(kD, cookie));
  readers.Release(1);
  readers.Release(2);
}

TEST(GracePeriodsTest, CondSynchronizeWaitsForAnOlderReader) {
  ParkedReaders readers(2);
  GracePeriods grace(readers.pcpus());
  readers.Park(1, kD);
  const uint64_t cookie = grace.GetState();
  ExpectWaitsForReader(readers, 1, [&] {
    EXPECT_TRUE(grace.CondSynchronize(kD, cookie));
  });
  EXPECT_EQ(grace.completed(), 1u);
  EXPECT_TRUE(grace.PollState(kD, cookie));
}

}  // namespace
}  // namespace hvmm
