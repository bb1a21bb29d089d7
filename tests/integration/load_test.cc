// Load and scale against a real daemon on a Unix socket.
//
// Load: 32 clients, each on its own channel and domain, run a mix of every
// mutating and reading call for 10 s (HVMM_LOAD_SECONDS), with workloads
// running. No call may fail; afterwards every frame is back in the pool,
// the audit passes, and the daemon's RSS grew by a bounded amount.
//
// Scale: 10,000 domains (HVMM_SCALE_DOMAINS), each with 4 mapped pages,
// live at once, then destroyed: the pool is whole again. Prints the RSS and
// the bytes per frame in use.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mm/pte.h"
#include "tests/integration/test_daemon.h"

namespace hvmm {
namespace {

using ::hvmm::testing::Call;
using ::hvmm::testing::CallResult;
using ::hvmm::testing::TestDaemon;
using Stub = v1::MemoryManager::Stub;

constexpr uint64_t kVa = uint64_t{1} << 30;

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}

uint64_t RssBytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
    }
  }
  return 0;
}

bool Sanitized() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return true;
#else
  return false;
#endif
}

// One client's loop on its own domain. Every call must succeed.
void ClientLoop(const std::string& address, int index, absl::Time end,
                std::atomic<uint64_t>* calls, std::atomic<uint64_t>* errors,
                std::string* first_error) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto stub = v1::MemoryManager::NewStub(channel);
  auto check = [&](const CallResult& r, const char* what) {
    calls->fetch_add(1);
    if (!r.ok()) {
      if (errors->fetch_add(1) == 0) {
        *first_error = absl::StrCat("client ", index, " ", what, ": ",
                                    r.message, " [", r.reason, "]");
      }
      return false;
    }
    return true;
  };
  for (int round = 0; absl::Now() < end; ++round) {
    v1::CreateDomainRequest create;
    create.set_name(absl::StrCat("load", index, "_", round));
    create.set_vcpus(2);
    create.set_max_pages(512);
    // A mix of the safe policies; rcu by default.
    if (index % 3 == 1) create.set_policy(v1::FLUSH_POLICY_IPI);
    if (index % 3 == 2) create.set_policy(v1::FLUSH_POLICY_ASSISTED_FORCE_IPI);
    v1::CreateDomainResponse created;
    if (!check(Call(stub.get(), &Stub::CreateDomain, create, &created),
               "create")) {
      return;
    }
    const uint32_t d = created.domain().domain_id();
    v1::MapRangeRequest map;
    map.set_domain_id(d);
    map.set_start_va(kVa);
    map.set_page_count(64);
    map.set_access(v1::MAPPING_ACCESS_READ_WRITE);
    v1::MapRangeResponse mapped;
    check(Call(stub.get(), &Stub::MapRange, map, &mapped), "map");
    if (index % 4 == 0) {
      v1::StartWorkloadRequest w;
      w.set_domain_id(d);
      w.set_pattern(v1::ACCESS_PATTERN_UNIFORM);
      w.add_ranges()->set_start_va(kVa);
      w.mutable_ranges(0)->set_page_count(64);
      v1::StartWorkloadResponse started;
      check(Call(stub.get(), &Stub::StartWorkload, w, &started), "workload");
    }
    for (int i = 0; i < 20 && absl::Now() < end; ++i) {
      v1::TranslateRequest t;
      t.set_domain_id(d);
      t.set_va(kVa + (i % 64) * 4096);
      t.set_access(v1::ACCESS_KIND_WRITE);
      v1::TranslateResponse tr;
      if (!check(Call(stub.get(), &Stub::Translate, t, &tr), "translate")) {
        return;
      }
      // Reservations with request ids (unique per client: ids are
      // daemon-wide per method).
      if (i % 5 == 0 && tr.table_mfns_size() == 4) {
        v1::AllocatePagesRequest alloc;
        alloc.set_domain_id(d);
        alloc.set_count(2);
        alloc.set_request_id(absl::StrCat("c", index, "r", round, "_", i));
        v1::AllocatePagesResponse frames;
        if (!check(Call(stub.get(), &Stub::AllocatePages, alloc, &frames),
                   "alloc")) {
          return;
        }
        v1::ReleasePagesRequest release;
        release.set_domain_id(d);
        release.add_mfns(frames.mfns(0));
        release.add_mfns(frames.mfns(1));
        v1::ReleasePagesResponse released;
        check(Call(stub.get(), &Stub::ReleasePages, release, &released),
              "release");
      }
      v1::UnmapRangeRequest unmap;
      unmap.set_domain_id(d);
      unmap.set_start_va(kVa + (i % 64) * 4096);
      unmap.set_page_count(1);
      v1::UnmapRangeResponse unmapped;
      check(Call(stub.get(), &Stub::UnmapRange, unmap, &unmapped), "unmap");
      v1::MapRangeRequest remap = map;
      remap.set_start_va(unmap.start_va());
      remap.set_page_count(1);
      check(Call(stub.get(), &Stub::MapRange, remap, &mapped), "remap");
      if (i % 7 == 0) {
        v1::SetFlushPolicyRequest p;
        p.set_domain_id(d);
        p.set_policy(i % 2 ? v1::FLUSH_POLICY_ASSISTED_RCU
                           : v1::FLUSH_POLICY_ASSISTED_FORCE_IPI);
        v1::SetFlushPolicyResponse pr;
        check(Call(stub.get(), &Stub::SetFlushPolicy, p, &pr), "policy");
        v1::FlushRequest f;
        f.set_domain_id(d);
        f.mutable_all();
        v1::FlushResponse fr;
        check(Call(stub.get(), &Stub::Flush, f, &fr), "flush");
      }
    }
    v1::GetStatsRequest stats;
    stats.set_domain_id(d);
    v1::GetStatsResponse s;
    check(Call(stub.get(), &Stub::GetStats, stats, &s), "stats");
    v1::ListDomainsRequest list;
    list.set_page_size(50);
    v1::ListDomainsResponse page;
    check(Call(stub.get(), &Stub::ListDomains, list, &page), "list");
    v1::DestroyDomainRequest destroy;
    destroy.set_domain_id(d);
    v1::DestroyDomainResponse destroyed;
    if (!check(Call(stub.get(), &Stub::DestroyDomain, destroy, &destroyed),
               "destroy")) {
      return;
    }
  }
}

TEST(LoadTest, ThirtyTwoClientsForTenSeconds) {
  DaemonOptions o;
  o.host.frames = 1 << 16;
  o.host.pcpus = 4;
  TestDaemon d(o);
  const int seconds = EnvInt("HVMM_LOAD_SECONDS", 10);
  // Warm up once (thread pools, first allocations), then measure.
  {
    std::atomic<uint64_t> calls{0}, errors{0};
    std::string error;
    ClientLoop(d.daemon().address(), 999, absl::Now() + absl::Milliseconds(200),
               &calls, &errors, &error);
    ASSERT_EQ(errors.load(), 0u) << error;
  }
  const uint64_t rss_before = RssBytes();
  std::atomic<uint64_t> calls{0}, errors{0};
  std::string first_error;
  const absl::Time end = absl::Now() + absl::Seconds(seconds);
  std::vector<std::thread> clients;
  for (int i = 0; i < 32; ++i) {
    clients.emplace_back(ClientLoop, d.daemon().address(), i, end, &calls,
                         &errors, &first_error);
  }
  for (auto& t : clients) t.join();
  const uint64_t rss_after = RssBytes();
  std::printf("load: 32 clients, %d s: %lu calls (%.0f/s), %lu errors; "
              "RSS %.1f -> %.1f MiB\n",
              seconds, (unsigned long)calls.load(),
              calls.load() / static_cast<double>(seconds),
              (unsigned long)errors.load(), rss_before / 1048576.0,
              rss_after / 1048576.0);
  EXPECT_EQ(errors.load(), 0u) << first_error;
  EXPECT_GT(calls.load(), 32u * 10);
  MemoryManager& mm = d.daemon().host().mm();
  EXPECT_TRUE(mm.ListDomains().empty());
  EXPECT_TRUE(mm.Audit().ok()) << mm.Audit();
  // Every frame is free or still waiting for its grace period: none leaked.
  EXPECT_EQ(mm.allocator().free_frames() +
                d.daemon().host().engine().deferred_retirer().pending_frames(),
            mm.frame_table().frame_count());
  EXPECT_EQ(d.daemon().host().Stats().existence_violations +
                d.daemon().host().Stats().coherence_violations,
            0u);
  if (!Sanitized()) {
    // Bounded: the frame table is lazily backed, and everything the run
    // created was destroyed. (ASan's quarantine makes RSS meaningless.)
    EXPECT_LT(rss_after, rss_before + (uint64_t{96} << 20))
        << "RSS grew from " << rss_before << " to " << rss_after;
  }
}

TEST(ScaleTest, TenThousandDomainsLiveAtOnce) {
  const int domains = EnvInt("HVMM_SCALE_DOMAINS", 10000);
  DaemonOptions o;
  o.host.frames = 1 << 17;  // 512 MiB simulated.
  o.host.pcpus = 2;
  TestDaemon d(o);
  Stub* stub = d.stub();
  const uint64_t rss_before = RssBytes();
  std::vector<uint32_t> ids;
  ids.reserve(domains);
  for (int i = 0; i < domains; ++i) {
    v1::CreateDomainRequest create;
    create.set_name(absl::StrCat("s", i));
    create.set_vcpus(1);
    create.set_max_pages(16);
    v1::CreateDomainResponse created;
    const CallResult r = Call(stub, &Stub::CreateDomain, create, &created);
    ASSERT_TRUE(r.ok()) << i << ": " << r;
    ids.push_back(created.domain().domain_id());
    v1::MapRangeRequest map;
    map.set_domain_id(ids.back());
    map.set_start_va(kVa);
    map.set_page_count(4);
    map.set_access(v1::MAPPING_ACCESS_READ_WRITE);
    v1::MapRangeResponse mapped;
    const CallResult m = Call(stub, &Stub::MapRange, map, &mapped);
    ASSERT_TRUE(m.ok()) << i << ": " << m;
  }
  MemoryManager& mm = d.daemon().host().mm();
  const uint64_t frames_used =
      mm.frame_table().frame_count() - mm.allocator().free_frames();
  const uint64_t rss_live = RssBytes();
  v1::GetStatsResponse stats;
  ASSERT_TRUE(Call(stub, &Stub::GetStats, v1::GetStatsRequest(), &stats).ok());
  EXPECT_EQ(stats.domains(), static_cast<uint32_t>(domains));
  // Root, L3, L2, L1 and 4 data pages each.
  EXPECT_EQ(frames_used, static_cast<uint64_t>(domains) * 8);
  EXPECT_TRUE(mm.Audit().ok());
  std::printf("scale: %d domains, %lu frames in use; RSS %.1f -> %.1f MiB, "
              "%.0f bytes per frame in use (simulated frames hold no data; "
              "tables hold their 4 KiB of entries)\n",
              domains, (unsigned long)frames_used, rss_before / 1048576.0,
              rss_live / 1048576.0,
              (rss_live - rss_before) / static_cast<double>(frames_used));
  for (uint32_t id : ids) {
    v1::DestroyDomainRequest destroy;
    destroy.set_domain_id(id);
    v1::DestroyDomainResponse destroyed;
    const CallResult r = Call(stub, &Stub::DestroyDomain, destroy, &destroyed);
    ASSERT_TRUE(r.ok()) << id << ": " << r;
  }
  EXPECT_TRUE(mm.ListDomains().empty());
  EXPECT_EQ(mm.allocator().free_frames(), mm.frame_table().frame_count());
  EXPECT_TRUE(mm.Audit().ok());
}

}  // namespace
}  // namespace hvmm
