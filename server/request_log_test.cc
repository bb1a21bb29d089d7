// The idempotency window, page tokens and the event ring, without gRPC.
#include "server/request_log.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "mm/mm_errors.h"
#include "server/event_log.h"
#include "server/page_token.h"

namespace hvmm {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1000000);

TEST(RequestLogTest, ReplaysTheFirstResponseWithinTheWindow) {
  RequestLog log({absl::Minutes(10), 4096});
  absl::StatusOr<RequestLog::Ticket> t =
      log.Begin("Pin/a", "req", absl::InfiniteFuture(), kT0);
  ASSERT_TRUE(t.ok() && t->first);
  log.End("Pin/a", true, "resp", kT0);
  t = log.Begin("Pin/a", "req", absl::InfiniteFuture(), kT0 + absl::Minutes(9));
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(t->first);
  EXPECT_EQ(t->response, "resp");
  // Another request under the same id.
  EXPECT_EQ(ErrorReason(log.Begin("Pin/a", "other", absl::InfiniteFuture(),
                                  kT0 + absl::Minutes(9))
                            .status()),
            "REQUEST_ID_REUSED");
  // Past the window the id is new again.
  t = log.Begin("Pin/a", "other", absl::InfiniteFuture(),
                kT0 + absl::Minutes(11));
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t->first);
}

TEST(RequestLogTest, FailuresAreForgottenAndCapacityEvictsTheOldest) {
  RequestLog log({absl::Minutes(10), 2});
  ASSERT_TRUE(log.Begin("M/x", "r", absl::InfiniteFuture(), kT0)->first);
  log.End("M/x", false, "", kT0);
  EXPECT_TRUE(log.Begin("M/x", "r", absl::InfiniteFuture(), kT0)->first)
      << "a failed call's retry runs again";
  log.End("M/x", true, "1", kT0);
  for (const char* k : {"M/y", "M/z"}) {
    ASSERT_TRUE(log.Begin(k, "r", absl::InfiniteFuture(), kT0)->first);
    log.End(k, true, "2", kT0);
  }
  EXPECT_EQ(log.size(), 2u);
  EXPECT_TRUE(log.Begin("M/x", "r", absl::InfiniteFuture(), kT0)->first)
      << "the oldest id was evicted";
}

TEST(RequestLogTest, ARetryWaitsForTheFirstCallOrItsDeadline) {
  RequestLog log;
  ASSERT_TRUE(log.Begin("M/w", "r")->first);
  EXPECT_EQ(log.Begin("M/w", "r", absl::Now()).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  std::thread retry([&] {
    absl::StatusOr<RequestLog::Ticket> t = log.Begin("M/w", "r");
    ASSERT_TRUE(t.ok());
    EXPECT_FALSE(t->first);
    EXPECT_EQ(t->response, "done");
  });
  log.End("M/w", true, "done");
  retry.join();
}

TEST(PageTokenTest, TokensAreBoundToTheirDaemonAndMethod) {
  PageTokens tokens, other;
  const std::string t = tokens.Issue("ListDomains", 42);
  EXPECT_EQ(tokens.Parse("ListDomains", t).value(), 42u);
  EXPECT_EQ(tokens.Parse("ListDomains", "").value(), 0u);
  EXPECT_EQ(ErrorReason(tokens.Parse("ListFrames", t).status()),
            "INVALID_PAGE_TOKEN");
  EXPECT_EQ(ErrorReason(other.Parse("ListDomains", t).status()),
            "INVALID_PAGE_TOKEN");
  EXPECT_EQ(ErrorReason(tokens.Parse("ListDomains", "%%%").status()),
            "INVALID_PAGE_TOKEN");
  EXPECT_EQ(EffectivePageSize(0).value(), kDefaultPageSize);
  EXPECT_EQ(EffectivePageSize(5000).value(), kMaxPageSize);
  EXPECT_EQ(EffectivePageSize(7).value(), 7);
  EXPECT_EQ(ErrorReason(EffectivePageSize(-1).status()), "INVALID_PAGE_SIZE");
}

TEST(EventLogTest, RevisionsResumeAndCompact) {
  EventLog log(3, kT0);
  const uint64_t start = log.head();
  EXPECT_EQ(start, static_cast<uint64_t>(absl::ToUnixMicros(kT0)));
  for (int i = 0; i < 5; ++i) log.Append(v1::Event());
  EXPECT_EQ(log.head(), start + 5);
  std::vector<v1::Event> out;
  ASSERT_TRUE(log.ReadSince(start + 2, 10, &out).ok());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].revision(), start + 3);
  EXPECT_EQ(out[2].revision(), start + 5);
  out.clear();
  ASSERT_TRUE(log.ReadSince(start + 5, 10, &out).ok());
  EXPECT_TRUE(out.empty());
  ASSERT_TRUE(log.ReadSince(start + 3, 1, &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].revision(), start + 4);
  EXPECT_EQ(ErrorReason(log.ReadSince(start + 1, 10, &out)),
            "REVISION_COMPACTED");
  EXPECT_EQ(log.ReadSince(start + 6, 10, &out).code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_TRUE(log.WaitNewer(start + 4, absl::InfinitePast()));
  EXPECT_FALSE(log.WaitNewer(start + 5, absl::Now()));
  log.Close();
  EXPECT_FALSE(log.WaitNewer(start + 5, absl::InfiniteFuture()));
}

}  // namespace
}  // namespace hvmm
