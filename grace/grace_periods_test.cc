#include "grace/grace_periods.h"

#include <atomic>
#include <thread>

#include "grace/testing/parked_reader.h"
#include "gtest/gtest.h"

namespace hvmm {
namespace {

using ::hvmm::testing::ParkedReaders;

const DomainId kD(1), kE(2);

TEST(GracePeriodsTest, NoReadersNoWait) {
  ParkedReaders readers(3);
  GracePeriods grace(readers.pcpus());
  EXPECT_EQ(grace.Synchronize(kD), 0);
  EXPECT_EQ(grace.SynchronizeExpedited(kD), 0);
  EXPECT_EQ(grace.completed(), 2u);
}

// Runs `gp` on another thread until it returns or is seen waiting for the
// reader on `cpu` (a grace period waiting, or an IPI pending there), and
// returns whether it had returned by then; then releases the reader and
// joins. No sleep decides anything.
template <typename Gp>
bool ReturnedBeforeWaiting(ParkedReaders& readers, GracePeriods& grace,
                           int cpu, Gp gp) {
  std::atomic<bool> done{false};
  std::thread t([&] {
    gp();
    done.store(true);
  });
  while (!done.load() && grace.waiting() == 0 &&
         !readers.pcpus()[cpu]->ipi_pending()) {
    std::this_thread::yield();
  }
  const bool returned = done.load();
  readers.Release(cpu);
  t.join();
  return returned;
}

template <typename Gp>
void ExpectWaitsForReader(ParkedReaders& readers, GracePeriods& grace,
                          int cpu, Gp gp) {
  EXPECT_FALSE(ReturnedBeforeWaiting(readers, grace, cpu, gp))
      << "grace period ended inside a read section";
}

template <typename Gp>
void ExpectDoesNotWaitForReader(ParkedReaders& readers, GracePeriods& grace,
                                int cpu, Gp gp) {
  EXPECT_TRUE(ReturnedBeforeWaiting(readers, grace, cpu, gp))
      << "waited for a reader it must not wait for";
}

TEST(GracePeriodsTest, WaitsForAReaderOfTheDomain) {
  ParkedReaders readers(3);
  GracePeriods grace(readers.pcpus());
  readers.Park(1, kD);
  ExpectWaitsForReader(readers, grace, 1,
                       [&] { EXPECT_EQ(grace.Synchronize(kD), 1); });
}

TEST(GracePeriodsTest, ExpeditedWaitsForAReaderOfTheDomain) {
  ParkedReaders readers(3);
  GracePeriods grace(readers.pcpus());
  readers.Park(2, kD);
  ExpectWaitsForReader(readers, grace, 2, [&] {
    EXPECT_EQ(grace.SynchronizeExpedited(kD), 1);
  });
  EXPECT_EQ(grace.expedited(), 1u);
}

TEST(GracePeriodsTest, AnotherDomainsStalledReaderDoesNotDelay) {
  ParkedReaders readers(3);
  GracePeriods grace(readers.pcpus());
  readers.Park(0, kE);  // Stalled walker of E, indefinitely.
  ExpectDoesNotWaitForReader(readers, grace, 0, [&] {
    EXPECT_EQ(grace.Synchronize(kD), 0);
    EXPECT_EQ(grace.SynchronizeExpedited(kD), 0);
  });
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
  while (grace.waiting() == 0) std::this_thread::yield();  // It has begun.
  readers.Park(2, kD);  // New reader, after the grace period began.
  readers.Release(1);
  // A grace period that waited for the new reader would never end here (the
  // test would time out): reader 2 is released only after it returns.
  while (!done.load()) std::this_thread::yield();
  EXPECT_EQ(grace.completed(), 1u);
  readers.Release(2);
  t.join();
}

TEST(GracePeriodsTest, PollWithNoReadersHasElapsed) {
  ParkedReaders readers(2);
  GracePeriods grace(readers.pcpus());
  const GraceCookie cookie = grace.GetState();
  EXPECT_NE(cookie, GraceCookie());
  EXPECT_TRUE(grace.PollState(kD, cookie));
  EXPECT_FALSE(grace.CondSynchronize(kD, cookie));
  EXPECT_EQ(grace.polls_elapsed(), 1u);
  EXPECT_EQ(grace.completed(), 0u) << "an elapsed poll is not a new GP";
}

TEST(GracePeriodsTest, UnknownCookieNeverElapses) {
  ParkedReaders readers(2);
  GracePeriods grace(readers.pcpus());
  EXPECT_FALSE(grace.PollState(kD, GraceCookie()));
}

TEST(GracePeriodsTest, PollWaitsOnlyForOlderReadersOfTheDomain) {
  ParkedReaders readers(3);
  GracePeriods grace(readers.pcpus());
  readers.Park(0, kD);  // Began before the cookie.
  readers.Park(1, kE);  // Another domain: never matters.
  const GraceCookie cookie = grace.GetState();
  EXPECT_FALSE(grace.PollState(kD, cookie));
  EXPECT_FALSE(grace.PollState(kE, grace.GetState()))
      << "E's reader began before this cookie too";
  readers.Park(2, kD);  // Began after the cookie: cannot see the unhook.
  EXPECT_FALSE(grace.PollState(kD, cookie)) << "pCPU 0 is still inside";
  readers.Release(0);
  // Once pCPU 0 has left its section the cookie has elapsed, whatever
  // pCPU 2 does (a poll that counted pCPU 2 would never elapse: the test
  // would time out).
  while (readers.pcpus()[0]->section_seq() % 2 == 1) std::this_thread::yield();
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
  const GraceCookie cookie = grace.GetState();
  ExpectWaitsForReader(readers, grace, 1, [&] {
    EXPECT_TRUE(grace.CondSynchronize(kD, cookie));
  });
  EXPECT_EQ(grace.completed(), 1u);
  EXPECT_TRUE(grace.PollState(kD, cookie));
}

}  // namespace
}  // namespace hvmm
