// The hvmm.v1 API against a real daemon on a temporary Unix socket.
//
// Every call is tried with each kind of invalid input; each case asserts the
// exact code and reason, and that nothing changed: the digest of every
// frame (mm_test_util's StateDigest), the domain list, and the audit. The
// domains of these cases run under ipi, whose frees are immediate, so
// nothing changes in the background between two digests.
#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "mm/mm_errors.h"
#include "mm/pte.h"
#include "mm/testing/mm_test_util.h"
#include "tests/integration/test_daemon.h"

namespace hvmm {
namespace {

using ::hvmm::testing::Call;
using ::hvmm::testing::CallResult;
using ::hvmm::testing::TestDaemon;
using Stub = v1::MemoryManager::Stub;
using grpc::StatusCode;

constexpr uint64_t kVa = uint64_t{1} << 30;
constexpr uint64_t kRw = kPtePresent | kPteUser | kPteWritable;

class ServiceTest : public ::testing::Test {
 protected:
  ServiceTest() : d_(Options()) {}
  static DaemonOptions Options() {
    DaemonOptions o;
    o.event_history = 16;
    o.bookmark_interval = absl::Milliseconds(50);
    return o;
  }

  Stub* stub() { return d_.stub(); }
  MemoryManager& mm() { return d_.daemon().host().mm(); }

  // A domain under ipi, with `pages` mapped writable at kVa.
  uint32_t MakeDomain(const std::string& name, uint64_t pages = 0,
                      uint32_t vcpus = 2) {
    v1::CreateDomainRequest req;
    req.set_name(name);
    req.set_vcpus(vcpus);
    req.set_max_pages(256);
    req.set_policy(v1::FLUSH_POLICY_IPI);
    v1::CreateDomainResponse resp;
    const CallResult r = Call(stub(), &Stub::CreateDomain, req, &resp);
    EXPECT_TRUE(r.ok()) << r;
    if (pages > 0) {
      v1::MapRangeRequest map;
      map.set_domain_id(resp.domain().domain_id());
      map.set_start_va(kVa);
      map.set_page_count(pages);
      map.set_access(v1::MAPPING_ACCESS_READ_WRITE);
      v1::MapRangeResponse map_resp;
      EXPECT_TRUE(Call(stub(), &Stub::MapRange, map, &map_resp).ok());
    }
    return resp.domain().domain_id();
  }

  // Frames of the domain from AllocatePages.
  std::vector<uint64_t> Allocate(uint32_t domain, uint64_t count) {
    v1::AllocatePagesRequest req;
    req.set_domain_id(domain);
    req.set_count(count);
    v1::AllocatePagesResponse resp;
    EXPECT_TRUE(Call(stub(), &Stub::AllocatePages, req, &resp).ok());
    return {resp.mfns().begin(), resp.mfns().end()};
  }

  std::vector<uint64_t> Path(uint32_t domain, uint64_t va = kVa) {
    v1::TranslateRequest req;
    req.set_domain_id(domain);
    req.set_va(va);
    req.set_access(v1::ACCESS_KIND_READ);
    v1::TranslateResponse resp;
    EXPECT_TRUE(Call(stub(), &Stub::Translate, req, &resp).ok());
    return {resp.table_mfns().begin(), resp.table_mfns().end()};
  }

  std::string Snapshot() {
    std::string s = hvmm::testing::StateDigest(mm());
    for (const DomainInfo& d : mm().ListDomains()) {
      absl::StrAppend(&s, "|", d.id.value(), ":", d.name, ":", d.tot_pages,
                      ":", d.flush_policy);
    }
    return s;
  }

  // Runs `call`, and checks its code and reason, and that nothing changed.
  template <typename Req, typename Resp>
  void ExpectRejected(grpc::Status (Stub::*method)(grpc::ClientContext*,
                                                   const Req&, Resp*),
                      const Req& req, StatusCode code,
                      const std::string& reason) {
    const std::string before = Snapshot();
    Resp resp;
    const CallResult r = Call(stub(), method, req, &resp);
    EXPECT_EQ(r.code, code) << r << "\nrequest: " << req.ShortDebugString();
    EXPECT_EQ(r.reason, reason) << r << "\nrequest: " << req.ShortDebugString();
    EXPECT_FALSE(r.message.empty());
    EXPECT_EQ(Snapshot(), before) << "a failed call changed state: "
                                  << req.ShortDebugString();
    EXPECT_TRUE(mm().Audit().ok()) << mm().Audit();
  }

  TestDaemon d_;
};

TEST_F(ServiceTest, CreateDomainRejectsBadInput) {
  MakeDomain("taken");
  auto req = [](const std::string& name, uint32_t vcpus, uint64_t max_pages) {
    v1::CreateDomainRequest r;
    r.set_name(name);
    r.set_vcpus(vcpus);
    r.set_max_pages(max_pages);
    return r;
  };
  ExpectRejected(&Stub::CreateDomain, req("", 1, 8),
                 StatusCode::INVALID_ARGUMENT, "MALFORMED_ARGUMENT");
  ExpectRejected(&Stub::CreateDomain, req("bad name!", 1, 8),
                 StatusCode::INVALID_ARGUMENT, "MALFORMED_ARGUMENT");
  ExpectRejected(&Stub::CreateDomain, req(std::string(65, 'a'), 1, 8),
                 StatusCode::INVALID_ARGUMENT, "MALFORMED_ARGUMENT");
  ExpectRejected(&Stub::CreateDomain, req("v0", 0, 8),
                 StatusCode::INVALID_ARGUMENT, "MALFORMED_ARGUMENT");
  ExpectRejected(&Stub::CreateDomain, req("v129", 129, 8),
                 StatusCode::INVALID_ARGUMENT, "MALFORMED_ARGUMENT");
  ExpectRejected(&Stub::CreateDomain, req("m0", 1, 0),
                 StatusCode::INVALID_ARGUMENT, "MALFORMED_ARGUMENT");
  ExpectRejected(&Stub::CreateDomain, req("taken", 1, 8),
                 StatusCode::ALREADY_EXISTS, "DOMAIN_NAME_TAKEN");
  v1::CreateDomainRequest r = req("p", 1, 8);
  r.set_policy(v1::FLUSH_POLICY_UNSPECIFIED);
  ExpectRejected(&Stub::CreateDomain, r, StatusCode::INVALID_ARGUMENT,
                 "UNSPECIFIED_ENUM");
  r.set_policy(static_cast<v1::FlushPolicy>(42));
  ExpectRejected(&Stub::CreateDomain, r, StatusCode::INVALID_ARGUMENT,
                 "UNSPECIFIED_ENUM");
  r.set_policy(v1::FLUSH_POLICY_ASSISTED_UNSAFE);
  ExpectRejected(&Stub::CreateDomain, r, StatusCode::FAILED_PRECONDITION,
                 "UNSAFE_POLICY_NOT_ALLOWED");
}

TEST_F(ServiceTest, CreateDomainUsesTheDefaultPolicyWhenNoneIsGiven) {
  v1::CreateDomainRequest req;
  req.set_name("dflt");
  req.set_vcpus(1);
  req.set_max_pages(8);
  v1::CreateDomainResponse resp;
  ASSERT_TRUE(Call(stub(), &Stub::CreateDomain, req, &resp).ok());
  EXPECT_EQ(resp.domain().policy(), v1::FLUSH_POLICY_ASSISTED_RCU);
  EXPECT_EQ(resp.domain().tot_pages(), 1u);  // The root.
  EXPECT_TRUE(resp.domain().has_root_mfn());
  EXPECT_TRUE(resp.domain().has_create_time());
}

TEST_F(ServiceTest, GetAndDestroyUnknownDomains) {
  v1::GetDomainRequest get;
  ExpectRejected(&Stub::GetDomain, get, StatusCode::INVALID_ARGUMENT,
                 "MISSING_FIELD");
  get.set_domain_id(77);
  ExpectRejected(&Stub::GetDomain, get, StatusCode::NOT_FOUND,
                 "UNKNOWN_DOMAIN");
  get.set_name("ghost");
  ExpectRejected(&Stub::GetDomain, get, StatusCode::NOT_FOUND,
                 "UNKNOWN_DOMAIN");
  v1::DestroyDomainRequest destroy;
  destroy.set_domain_id(77);
  ExpectRejected(&Stub::DestroyDomain, destroy, StatusCode::NOT_FOUND,
                 "UNKNOWN_DOMAIN");

  const uint32_t id = MakeDomain("named", 4);
  get.set_name("named");
  v1::GetDomainResponse resp;
  ASSERT_TRUE(Call(stub(), &Stub::GetDomain, get, &resp).ok());
  EXPECT_EQ(resp.domain().domain_id(), id);
  EXPECT_EQ(resp.domain().policy(), v1::FLUSH_POLICY_IPI);
  destroy.set_domain_id(id);
  v1::DestroyDomainResponse destroyed;
  ASSERT_TRUE(Call(stub(), &Stub::DestroyDomain, destroy, &destroyed).ok());
  EXPECT_EQ(destroyed.frames_released(), resp.domain().tot_pages());
  EXPECT_EQ(mm().allocator().free_frames(), mm().frame_table().frame_count());
}

TEST_F(ServiceTest, AllocateAndReleaseRejectBadInput) {
  const uint32_t a = MakeDomain("a", 2);
  const uint32_t b = MakeDomain("b");
  v1::AllocatePagesRequest alloc;
  alloc.set_domain_id(99);
  alloc.set_count(1);
  ExpectRejected(&Stub::AllocatePages, alloc, StatusCode::NOT_FOUND,
                 "UNKNOWN_DOMAIN");
  alloc.set_domain_id(a);
  alloc.set_count(0);
  ExpectRejected(&Stub::AllocatePages, alloc, StatusCode::INVALID_ARGUMENT,
                 "MALFORMED_ARGUMENT");
  alloc.set_count((1 << 16) + 1);
  ExpectRejected(&Stub::AllocatePages, alloc, StatusCode::INVALID_ARGUMENT,
                 "MALFORMED_ARGUMENT");
  alloc.set_count(300);  // max_pages is 256.
  ExpectRejected(&Stub::AllocatePages, alloc, StatusCode::RESOURCE_EXHAUSTED,
                 "QUOTA_EXCEEDED");

  const std::vector<uint64_t> mine = Allocate(a, 2);
  const std::vector<uint64_t> theirs = Allocate(b, 1);
  v1::ReleasePagesRequest release;
  release.set_domain_id(a);
  ExpectRejected(&Stub::ReleasePages, release, StatusCode::INVALID_ARGUMENT,
                 "MALFORMED_ARGUMENT");
  release.add_mfns(uint64_t{1} << 40);
  ExpectRejected(&Stub::ReleasePages, release, StatusCode::INVALID_ARGUMENT,
                 "BAD_FRAME");
  release.set_mfns(0, theirs[0]);
  ExpectRejected(&Stub::ReleasePages, release, StatusCode::FAILED_PRECONDITION,
                 "FOREIGN_FRAME");
  release.set_mfns(0, Path(a)[0]);  // The root: pinned, referenced.
  ExpectRejected(&Stub::ReleasePages, release, StatusCode::FAILED_PRECONDITION,
                 "FRAME_IN_USE");
  // All or nothing: a good frame, then a bad one.
  release.set_mfns(0, mine[0]);
  release.add_mfns(theirs[0]);
  ExpectRejected(&Stub::ReleasePages, release, StatusCode::FAILED_PRECONDITION,
                 "FOREIGN_FRAME");
  release.set_mfns(1, mine[0]);
  ExpectRejected(&Stub::ReleasePages, release, StatusCode::INVALID_ARGUMENT,
                 "MALFORMED_ARGUMENT");  // The same frame twice.
  release.set_mfns(1, mine[1]);
  v1::ReleasePagesResponse released;
  ASSERT_TRUE(Call(stub(), &Stub::ReleasePages, release, &released).ok());
  EXPECT_EQ(released.released_count(), 2u);
}

TEST_F(ServiceTest, ThePoolRunsOut) {
  v1::CreateDomainRequest req;
  req.set_name("big");
  req.set_vcpus(1);
  req.set_max_pages(1 << 20);
  req.set_policy(v1::FLUSH_POLICY_IPI);
  v1::CreateDomainResponse resp;
  ASSERT_TRUE(Call(stub(), &Stub::CreateDomain, req, &resp).ok());
  v1::AllocatePagesRequest alloc;
  alloc.set_domain_id(resp.domain().domain_id());
  alloc.set_count(mm().frame_table().frame_count());
  ExpectRejected(&Stub::AllocatePages, alloc, StatusCode::RESOURCE_EXHAUSTED,
                 "POOL_EXHAUSTED");
}

TEST_F(ServiceTest, MmuUpdateRejectsBadBatchesWhole) {
  const uint32_t a = MakeDomain("a", 1);
  const uint32_t b = MakeDomain("b", 1);
  const std::vector<uint64_t> path = Path(a);
  ASSERT_EQ(path.size(), 4u);
  const uint64_t l2 = path[2], l1 = path[3];
  const std::vector<uint64_t> spare = Allocate(a, 1);
  const uint64_t b_l1 = Path(b)[3];
  auto batch = [&](std::vector<std::tuple<uint64_t, uint32_t, uint64_t>> u) {
    v1::MmuUpdateRequest req;
    req.set_domain_id(a);
    for (auto [t, i, e] : u) {
      v1::EntryUpdate* x = req.add_updates();
      x->set_table_mfn(t);
      x->set_index(i);
      x->set_entry(e);
    }
    return req;
  };
  ExpectRejected(&Stub::MmuUpdate, batch({}), StatusCode::INVALID_ARGUMENT,
                 "MALFORMED_ARGUMENT");
  ExpectRejected(&Stub::MmuUpdate, batch({{l1, 512, 0}}),
                 StatusCode::INVALID_ARGUMENT, "MALFORMED_ARGUMENT");
  ExpectRejected(&Stub::MmuUpdate, batch({{l1, 1, MakePte(Mfn(spare[0]), kRw) | (1u << 9)}}),
                 StatusCode::INVALID_ARGUMENT, "ILLEGAL_ENTRY");
  ExpectRejected(&Stub::MmuUpdate, batch({{l1, 1, MakePte(Mfn(l2), kRw)}}),
                 StatusCode::FAILED_PRECONDITION, "TYPE_CONFLICT");
  ExpectRejected(&Stub::MmuUpdate, batch({{l1, 1, MakePte(Mfn(b_l1), kRw)}}),
                 StatusCode::FAILED_PRECONDITION, "FOREIGN_FRAME");
  ExpectRejected(&Stub::MmuUpdate, batch({{spare[0], 0, 0}}),
                 StatusCode::FAILED_PRECONDITION, "NOT_A_PAGE_TABLE");
  ExpectRejected(&Stub::MmuUpdate, batch({{uint64_t{1} << 40, 0, 0}}),
                 StatusCode::INVALID_ARGUMENT, "BAD_FRAME");
  // All or nothing: a good write, then a bad one.
  ExpectRejected(&Stub::MmuUpdate,
                 batch({{l1, 1, MakePte(Mfn(spare[0]), kRw)},
                        {l1, 2, MakePte(Mfn(l2), kRw)}}),
                 StatusCode::FAILED_PRECONDITION, "TYPE_CONFLICT");
  {
    // The message names the update that failed, and what was wrong.
    v1::MmuUpdateResponse r;
    const CallResult c =
        Call(stub(), &Stub::MmuUpdate,
             batch({{l1, 1, MakePte(Mfn(spare[0]), kRw)},
                    {l1, 2, MakePte(Mfn(l2), kRw)}}),
             &r);
    EXPECT_EQ(c.message.rfind(absl::StrCat("update 1 of 2: type conflict: mfn 0x",
                                           absl::Hex(l2)),
                              0),
              0u)
        << c;
  }
  v1::MmuUpdateRequest unknown = batch({{l1, 1, 0}});
  unknown.set_domain_id(99);
  ExpectRejected(&Stub::MmuUpdate, unknown, StatusCode::NOT_FOUND,
                 "UNKNOWN_DOMAIN");
  v1::MmuUpdateResponse resp;
  ASSERT_TRUE(Call(stub(), &Stub::MmuUpdate,
                   batch({{l1, 1, MakePte(Mfn(spare[0]), kRw)}}), &resp)
                  .ok());
  EXPECT_EQ(resp.applied_count(), 1u);
}

TEST_F(ServiceTest, PinUnpinAndBasePointerRejectBadInput) {
  const uint32_t a = MakeDomain("a", 1);
  const uint32_t b = MakeDomain("b");
  const std::vector<uint64_t> f = Allocate(a, 1);
  const uint64_t theirs = Allocate(b, 1)[0];
  const uint64_t l1 = Path(a)[3];
  v1::PinRequest pin;
  pin.set_domain_id(a);
  pin.set_mfn(f[0]);
  ExpectRejected(&Stub::Pin, pin, StatusCode::INVALID_ARGUMENT,
                 "UNSPECIFIED_ENUM");
  pin.set_level(v1::TABLE_LEVEL_L2);
  pin.set_mfn(theirs);
  ExpectRejected(&Stub::Pin, pin, StatusCode::FAILED_PRECONDITION,
                 "FOREIGN_FRAME");
  pin.set_mfn(l1);  // An L1 in use cannot be pinned as an L2.
  ExpectRejected(&Stub::Pin, pin, StatusCode::FAILED_PRECONDITION,
                 "TYPE_CONFLICT");
  pin.set_mfn(f[0]);
  v1::PinResponse pinned;
  ASSERT_TRUE(Call(stub(), &Stub::Pin, pin, &pinned).ok());
  ExpectRejected(&Stub::Pin, pin, StatusCode::FAILED_PRECONDITION,
                 "ALREADY_PINNED");
  v1::UnpinRequest unpin;
  unpin.set_domain_id(a);
  unpin.set_mfn(l1);
  ExpectRejected(&Stub::Unpin, unpin, StatusCode::FAILED_PRECONDITION,
                 "NOT_PINNED");

  v1::SetBasePointerRequest base;
  base.set_domain_id(a);
  base.set_vcpu(0);
  ExpectRejected(&Stub::SetBasePointer, base, StatusCode::INVALID_ARGUMENT,
                 "MISSING_FIELD");
  base.set_root_mfn(theirs);
  ExpectRejected(&Stub::SetBasePointer, base, StatusCode::FAILED_PRECONDITION,
                 "FOREIGN_FRAME");
  base.set_vcpu(7);
  base.mutable_no_root();
  ExpectRejected(&Stub::SetBasePointer, base, StatusCode::INVALID_ARGUMENT,
                 "UNKNOWN_VCPU");
  base.set_vcpu(1);
  v1::SetBasePointerResponse ok;
  ASSERT_TRUE(Call(stub(), &Stub::SetBasePointer, base, &ok).ok());
  v1::TranslateRequest t;
  t.set_domain_id(a);
  t.set_vcpu(1);
  t.set_va(kVa);
  t.set_access(v1::ACCESS_KIND_READ);
  v1::TranslateResponse tr;
  ASSERT_TRUE(Call(stub(), &Stub::Translate, t, &tr).ok());
  EXPECT_EQ(tr.outcome(), v1::TRANSLATE_OUTCOME_NO_BASE_POINTER);
}

TEST_F(ServiceTest, MapAndUnmapRejectBadInput) {
  const uint32_t a = MakeDomain("a", 4);
  v1::MapRangeRequest map;
  map.set_domain_id(a);
  map.set_start_va(kVa + 16 * 4096);
  map.set_page_count(4);
  ExpectRejected(&Stub::MapRange, map, StatusCode::INVALID_ARGUMENT,
                 "UNSPECIFIED_ENUM");
  map.set_access(v1::MAPPING_ACCESS_READ_ONLY);
  map.set_start_va(kVa + 1);
  ExpectRejected(&Stub::MapRange, map, StatusCode::INVALID_ARGUMENT,
                 "MALFORMED_ARGUMENT");
  map.set_start_va(uint64_t{1} << 47);  // Not canonical.
  ExpectRejected(&Stub::MapRange, map, StatusCode::INVALID_ARGUMENT,
                 "MALFORMED_ARGUMENT");
  map.set_start_va(kVa + 16 * 4096);
  map.set_page_count(0);
  ExpectRejected(&Stub::MapRange, map, StatusCode::INVALID_ARGUMENT,
                 "MALFORMED_ARGUMENT");
  map.set_start_va(kVa);
  map.set_page_count(8);  // Overlaps the 4 mapped pages.
  ExpectRejected(&Stub::MapRange, map, StatusCode::ALREADY_EXISTS,
                 "MAPPING_EXISTS");
  map.set_start_va(kVa + 16 * 4096);
  map.set_page_count(300);  // Beyond max_pages.
  ExpectRejected(&Stub::MapRange, map, StatusCode::RESOURCE_EXHAUSTED,
                 "QUOTA_EXCEEDED");
  v1::UnmapRangeRequest unmap;
  unmap.set_domain_id(a);
  unmap.set_start_va(kVa);
  unmap.set_page_count(0);
  ExpectRejected(&Stub::UnmapRange, unmap, StatusCode::INVALID_ARGUMENT,
                 "MALFORMED_ARGUMENT");
  unmap.set_page_count(4);
  unmap.set_domain_id(99);
  ExpectRejected(&Stub::UnmapRange, unmap, StatusCode::NOT_FOUND,
                 "UNKNOWN_DOMAIN");
  unmap.set_domain_id(a);
  v1::UnmapRangeResponse unmapped;
  ASSERT_TRUE(Call(stub(), &Stub::UnmapRange, unmap, &unmapped).ok());
  EXPECT_EQ(unmapped.pages_unmapped(), 4u);
}

TEST_F(ServiceTest, GetFrameAndTranslate) {
  const uint32_t a = MakeDomain("a", 2);
  v1::GetFrameRequest frame;
  frame.set_mfn(uint64_t{1} << 40);
  ExpectRejected(&Stub::GetFrame, frame, StatusCode::INVALID_ARGUMENT,
                 "BAD_FRAME");
  v1::TranslateRequest t;
  t.set_domain_id(a);
  t.set_va(kVa + 4096 + 0x123);
  ExpectRejected(&Stub::Translate, t, StatusCode::INVALID_ARGUMENT,
                 "UNSPECIFIED_ENUM");
  t.set_access(v1::ACCESS_KIND_WRITE);
  t.set_vcpu(2);
  ExpectRejected(&Stub::Translate, t, StatusCode::INVALID_ARGUMENT,
                 "UNKNOWN_VCPU");
  t.set_vcpu(1);
  t.set_va(uint64_t{1} << 47);
  ExpectRejected(&Stub::Translate, t, StatusCode::INVALID_ARGUMENT,
                 "MALFORMED_ARGUMENT");
  t.set_domain_id(99);
  ExpectRejected(&Stub::Translate, t, StatusCode::NOT_FOUND, "UNKNOWN_DOMAIN");

  t.set_domain_id(a);
  t.set_va(kVa + 4096 + 0x123);
  v1::TranslateResponse tr;
  ASSERT_TRUE(Call(stub(), &Stub::Translate, t, &tr).ok());
  EXPECT_EQ(tr.outcome(), v1::TRANSLATE_OUTCOME_OK);
  EXPECT_TRUE(tr.writable());
  EXPECT_EQ(tr.table_mfns_size(), 4);
  EXPECT_EQ(tr.physical_address(), (tr.mfn() << 12) | 0x123);
  EXPECT_LT(tr.pcpu(), 2u);
  frame.set_mfn(tr.mfn());
  v1::GetFrameResponse fr;
  ASSERT_TRUE(Call(stub(), &Stub::GetFrame, frame, &fr).ok());
  EXPECT_EQ(fr.frame().owner_domain_id(), a);
  EXPECT_EQ(fr.frame().type(), v1::PAGE_TYPE_WRITABLE);

  t.set_va(kVa + 64 * 4096);  // Same L1, not mapped.
  ASSERT_TRUE(Call(stub(), &Stub::Translate, t, &tr).ok());
  EXPECT_EQ(tr.outcome(), v1::TRANSLATE_OUTCOME_NOT_PRESENT);
  EXPECT_EQ(tr.fault_level(), v1::TABLE_LEVEL_L1);
}

TEST_F(ServiceTest, TranslateHonoursAnExpiredDeadline) {
  const uint32_t a = MakeDomain("a", 1);
  v1::TranslateRequest t;
  t.set_domain_id(a);
  t.set_va(kVa);
  t.set_access(v1::ACCESS_KIND_READ);
  v1::TranslateResponse tr;
  const CallResult r =
      Call(stub(), &Stub::Translate, t, &tr, -absl::Milliseconds(1));
  EXPECT_EQ(r.code, StatusCode::DEADLINE_EXCEEDED) << r;
}

TEST_F(ServiceTest, FlushAndSetFlushPolicy) {
  const uint32_t a = MakeDomain("a", 1);
  v1::FlushRequest flush;
  flush.set_domain_id(a);
  ExpectRejected(&Stub::Flush, flush, StatusCode::INVALID_ARGUMENT,
                 "MISSING_FIELD");
  flush.mutable_range()->set_start_va(kVa + 1);
  flush.mutable_range()->set_page_count(1);
  ExpectRejected(&Stub::Flush, flush, StatusCode::INVALID_ARGUMENT,
                 "MALFORMED_ARGUMENT");
  flush.mutable_all();
  flush.set_domain_id(99);
  ExpectRejected(&Stub::Flush, flush, StatusCode::NOT_FOUND, "UNKNOWN_DOMAIN");
  flush.set_domain_id(a);
  v1::FlushResponse fr;
  ASSERT_TRUE(Call(stub(), &Stub::Flush, flush, &fr).ok());
  EXPECT_EQ(fr.backend(), v1::FLUSH_BACKEND_IPI);

  v1::SetFlushPolicyRequest set;
  set.set_domain_id(a);
  ExpectRejected(&Stub::SetFlushPolicy, set, StatusCode::INVALID_ARGUMENT,
                 "UNSPECIFIED_ENUM");
  set.set_policy(v1::FLUSH_POLICY_ASSISTED_UNSAFE);
  ExpectRejected(&Stub::SetFlushPolicy, set, StatusCode::FAILED_PRECONDITION,
                 "UNSAFE_POLICY_NOT_ALLOWED");
  set.set_policy(v1::FLUSH_POLICY_ASSISTED_RCU);
  set.set_domain_id(99);
  ExpectRejected(&Stub::SetFlushPolicy, set, StatusCode::NOT_FOUND,
                 "UNKNOWN_DOMAIN");
  set.set_domain_id(a);
  v1::SetFlushPolicyResponse sr;
  ASSERT_TRUE(Call(stub(), &Stub::SetFlushPolicy, set, &sr).ok());
  EXPECT_EQ(sr.previous_policy(), v1::FLUSH_POLICY_IPI);
  EXPECT_EQ(sr.domain().policy(), v1::FLUSH_POLICY_ASSISTED_RCU);
  ASSERT_TRUE(Call(stub(), &Stub::Flush, flush, &fr).ok());
  EXPECT_EQ(fr.backend(), v1::FLUSH_BACKEND_ASSISTED);
}

TEST_F(ServiceTest, WorkloadsStartOnceAndStop) {
  const uint32_t a = MakeDomain("a", 16);
  v1::StartWorkloadRequest start;
  start.set_domain_id(a);
  start.set_write_fraction(0.25);
  ExpectRejected(&Stub::StartWorkload, start, StatusCode::INVALID_ARGUMENT,
                 "UNSPECIFIED_ENUM");
  start.set_pattern(v1::ACCESS_PATTERN_UNIFORM);
  ExpectRejected(&Stub::StartWorkload, start, StatusCode::INVALID_ARGUMENT,
                 "MALFORMED_ARGUMENT");  // No ranges.
  v1::PageRange* range = start.add_ranges();
  range->set_start_va(kVa);
  range->set_page_count(16);
  start.set_write_fraction(2);
  ExpectRejected(&Stub::StartWorkload, start, StatusCode::INVALID_ARGUMENT,
                 "MALFORMED_ARGUMENT");
  start.set_write_fraction(0.25);
  start.set_rate(-1);
  ExpectRejected(&Stub::StartWorkload, start, StatusCode::INVALID_ARGUMENT,
                 "MALFORMED_ARGUMENT");
  start.set_rate(std::nan(""));
  ExpectRejected(&Stub::StartWorkload, start, StatusCode::INVALID_ARGUMENT,
                 "MALFORMED_ARGUMENT");
  start.set_rate(0);
  v1::StopWorkloadRequest stop;
  stop.set_domain_id(a);
  ExpectRejected(&Stub::StopWorkload, stop, StatusCode::FAILED_PRECONDITION,
                 "NO_WORKLOAD");

  v1::StartWorkloadResponse started;
  ASSERT_TRUE(Call(stub(), &Stub::StartWorkload, start, &started).ok());
  v1::StartWorkloadResponse again;
  const CallResult twice = Call(stub(), &Stub::StartWorkload, start, &again);
  EXPECT_EQ(twice.code, StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(twice.reason, "WORKLOAD_RUNNING");
  // The vCPUs run: accesses grow (waiting for progress, not for time).
  v1::GetStatsRequest stats_req;
  v1::GetStatsResponse stats;
  do {
    ASSERT_TRUE(Call(stub(), &Stub::GetStats, stats_req, &stats).ok());
  } while (stats.walks().accesses() < 1000);
  v1::StopWorkloadResponse stopped;
  ASSERT_TRUE(Call(stub(), &Stub::StopWorkload, stop, &stopped).ok());
  EXPECT_EQ(stats.violations().existence() + stats.violations().coherence(),
            0u);
  v1::GetDomainRequest get;
  get.set_domain_id(a);
  v1::GetDomainResponse got;
  ASSERT_TRUE(Call(stub(), &Stub::GetDomain, get, &got).ok());
  EXPECT_FALSE(got.domain().workload_running());
}

TEST_F(ServiceTest, GetStatsAndAudit) {
  const uint32_t a = MakeDomain("a", 8);
  v1::GetStatsRequest req;
  req.set_domain_id(99);
  ExpectRejected(&Stub::GetStats, req, StatusCode::NOT_FOUND,
                 "UNKNOWN_DOMAIN");
  req.set_domain_id(a);
  v1::GetStatsResponse s;
  ASSERT_TRUE(Call(stub(), &Stub::GetStats, req, &s).ok());
  EXPECT_EQ(s.domains(), 1u);
  EXPECT_EQ(s.pcpus(), 2u);
  EXPECT_EQ(s.frames().total(), mm().frame_table().frame_count());
  // Root, L3, L2, L1 and 8 data pages.
  EXPECT_EQ(s.frames().page_tables(), 4u);
  EXPECT_EQ(s.frames().writable(), 8u);
  EXPECT_EQ(s.frames().free() + s.frames().pending_free() +
                s.frames().page_tables() + s.frames().writable() +
                s.frames().none(),
            s.frames().total());
  EXPECT_EQ(s.domain().domain().tot_pages(), 12u);
  v1::AuditResponse audit;
  ASSERT_TRUE(Call(stub(), &Stub::Audit, v1::AuditRequest(), &audit).ok());
  EXPECT_TRUE(audit.clean());
  EXPECT_EQ(audit.findings_size(), 0);
}

TEST_F(ServiceTest, ListDomainsPages) {
  for (int i = 0; i < 1005; ++i) MakeDomain(absl::StrCat("d", i));
  v1::ListDomainsRequest req;
  req.set_page_size(-1);
  ExpectRejected(&Stub::ListDomains, req, StatusCode::INVALID_ARGUMENT,
                 "INVALID_PAGE_SIZE");
  req.set_page_size(0);
  req.set_page_token("garbage!");
  ExpectRejected(&Stub::ListDomains, req, StatusCode::INVALID_ARGUMENT,
                 "INVALID_PAGE_TOKEN");
  req.set_page_token("djEuNS4xMjM");  // "v1.5.123": a forged check.
  ExpectRejected(&Stub::ListDomains, req, StatusCode::INVALID_ARGUMENT,
                 "INVALID_PAGE_TOKEN");
  req.clear_page_token();
  v1::ListDomainsResponse page;
  ASSERT_TRUE(Call(stub(), &Stub::ListDomains, req, &page).ok());
  EXPECT_EQ(page.domains_size(), 100) << "page_size 0 is the default, 100";
  EXPECT_FALSE(page.next_page_token().empty());
  req.set_page_size(5000);
  ASSERT_TRUE(Call(stub(), &Stub::ListDomains, req, &page).ok());
  EXPECT_EQ(page.domains_size(), 1000) << "sizes are clamped to 1000";
  // Walk every page of 300: each domain once, in id order.
  std::vector<uint32_t> ids;
  req.set_page_size(300);
  std::string token;
  int pages = 0;
  do {
    req.set_page_token(token);
    ASSERT_TRUE(Call(stub(), &Stub::ListDomains, req, &page).ok());
    for (const v1::Domain& d : page.domains()) ids.push_back(d.domain_id());
    token = page.next_page_token();
    ++pages;
  } while (!token.empty());
  EXPECT_EQ(pages, 4);
  EXPECT_EQ(ids.size(), 1005u);
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_EQ(std::set<uint32_t>(ids.begin(), ids.end()).size(), 1005u);
}

TEST_F(ServiceTest, ARetriedRequestIdIsAppliedOnce) {
  v1::CreateDomainRequest create;
  create.set_name("once");
  create.set_vcpus(1);
  create.set_max_pages(64);
  create.set_policy(v1::FLUSH_POLICY_IPI);
  create.set_request_id("create-once-1");
  v1::CreateDomainResponse first, second;
  ASSERT_TRUE(Call(stub(), &Stub::CreateDomain, create, &first).ok());
  ASSERT_TRUE(Call(stub(), &Stub::CreateDomain, create, &second).ok());
  EXPECT_EQ(first.domain().domain_id(), second.domain().domain_id());
  EXPECT_EQ(mm().ListDomains().size(), 1u);

  v1::AllocatePagesRequest alloc;
  alloc.set_domain_id(first.domain().domain_id());
  alloc.set_count(3);
  alloc.set_request_id("alloc-1");
  v1::AllocatePagesResponse a1, a2;
  ASSERT_TRUE(Call(stub(), &Stub::AllocatePages, alloc, &a1).ok());
  ASSERT_TRUE(Call(stub(), &Stub::AllocatePages, alloc, &a2).ok());
  EXPECT_EQ(a1.SerializeAsString(), a2.SerializeAsString());
  EXPECT_EQ(mm().GetDomainInfo(DomainId(first.domain().domain_id()))
                .value()
                .tot_pages,
            4u);

  // The same id on a different request.
  alloc.set_count(4);
  ExpectRejected(&Stub::AllocatePages, alloc, StatusCode::INVALID_ARGUMENT,
                 "REQUEST_ID_REUSED");
  // A failed call is not remembered: its retry runs again.
  create.set_name("");
  create.set_request_id("create-bad");
  ExpectRejected(&Stub::CreateDomain, create, StatusCode::INVALID_ARGUMENT,
                 "MALFORMED_ARGUMENT");
  create.set_name("later");
  create.set_request_id(std::string(200, 'x'));
  ExpectRejected(&Stub::CreateDomain, create, StatusCode::INVALID_ARGUMENT,
                 "MALFORMED_ARGUMENT");
}

// Concurrent retries of one request_id: exactly one applies.
TEST_F(ServiceTest, ConcurrentRetriesApplyOnce) {
  const uint32_t a = MakeDomain("a");
  v1::AllocatePagesRequest alloc;
  alloc.set_domain_id(a);
  alloc.set_count(5);
  alloc.set_request_id("race");
  std::vector<std::thread> threads;
  std::vector<std::string> responses(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      v1::AllocatePagesResponse r;
      EXPECT_TRUE(Call(stub(), &Stub::AllocatePages, alloc, &r).ok());
      responses[i] = r.SerializeAsString();
    });
  }
  for (auto& t : threads) t.join();
  for (const std::string& r : responses) EXPECT_EQ(r, responses[0]);
  EXPECT_EQ(mm().GetDomainInfo(DomainId(a)).value().tot_pages, 1u + 5u);
}

TEST_F(ServiceTest, TheReadOnlySocketRefusesChanges) {
  const uint32_t a = MakeDomain("a", 1);
  Stub* ro = d_.ro_stub();
  ASSERT_NE(ro, nullptr);
  const std::string before = Snapshot();
  auto denied = [&](const CallResult& r) {
    EXPECT_EQ(r.code, StatusCode::PERMISSION_DENIED) << r;
    EXPECT_EQ(r.reason, "READ_ONLY_SOCKET") << r;
  };
  {
    v1::CreateDomainRequest q;
    q.set_name("x");
    q.set_vcpus(1);
    q.set_max_pages(8);
    v1::CreateDomainResponse r;
    denied(Call(ro, &Stub::CreateDomain, q, &r));
  }
  {
    v1::DestroyDomainRequest q;
    q.set_domain_id(a);
    v1::DestroyDomainResponse r;
    denied(Call(ro, &Stub::DestroyDomain, q, &r));
  }
  {
    v1::AllocatePagesRequest q;
    q.set_domain_id(a);
    q.set_count(1);
    v1::AllocatePagesResponse r;
    denied(Call(ro, &Stub::AllocatePages, q, &r));
  }
  {
    v1::ReleasePagesRequest q;
    q.set_domain_id(a);
    v1::ReleasePagesResponse r;
    denied(Call(ro, &Stub::ReleasePages, q, &r));
  }
  {
    v1::MmuUpdateRequest q;
    q.set_domain_id(a);
    v1::MmuUpdateResponse r;
    denied(Call(ro, &Stub::MmuUpdate, q, &r));
  }
  {
    v1::PinRequest q;
    v1::PinResponse r;
    denied(Call(ro, &Stub::Pin, q, &r));
    v1::UnpinRequest u;
    v1::UnpinResponse ur;
    denied(Call(ro, &Stub::Unpin, u, &ur));
    v1::SetBasePointerRequest b;
    v1::SetBasePointerResponse br;
    denied(Call(ro, &Stub::SetBasePointer, b, &br));
  }
  {
    v1::MapRangeRequest q;
    v1::MapRangeResponse r;
    denied(Call(ro, &Stub::MapRange, q, &r));
    v1::UnmapRangeRequest u;
    v1::UnmapRangeResponse ur;
    denied(Call(ro, &Stub::UnmapRange, u, &ur));
  }
  {
    v1::FlushRequest q;
    v1::FlushResponse r;
    denied(Call(ro, &Stub::Flush, q, &r));
    v1::SetFlushPolicyRequest p;
    v1::SetFlushPolicyResponse pr;
    denied(Call(ro, &Stub::SetFlushPolicy, p, &pr));
    v1::StartWorkloadRequest s;
    v1::StartWorkloadResponse sr;
    denied(Call(ro, &Stub::StartWorkload, s, &sr));
    v1::StopWorkloadRequest t;
    v1::StopWorkloadResponse tr;
    denied(Call(ro, &Stub::StopWorkload, t, &tr));
    v1::AuditRequest au;
    v1::AuditResponse ar;
    denied(Call(ro, &Stub::Audit, au, &ar));
  }
  EXPECT_EQ(Snapshot(), before);
  // Reads work.
  v1::GetDomainRequest get;
  get.set_domain_id(a);
  v1::GetDomainResponse got;
  EXPECT_TRUE(Call(ro, &Stub::GetDomain, get, &got).ok());
  v1::ListDomainsResponse list;
  EXPECT_TRUE(Call(ro, &Stub::ListDomains, v1::ListDomainsRequest(), &list).ok());
  EXPECT_EQ(list.domains_size(), 1);
  v1::TranslateRequest t;
  t.set_domain_id(a);
  t.set_va(kVa);
  t.set_access(v1::ACCESS_KIND_READ);
  v1::TranslateResponse tr;
  EXPECT_TRUE(Call(ro, &Stub::Translate, t, &tr).ok());
  v1::GetStatsResponse stats;
  EXPECT_TRUE(Call(ro, &Stub::GetStats, v1::GetStatsRequest(), &stats).ok());
  v1::GetFrameRequest f;
  f.set_mfn(tr.mfn());
  v1::GetFrameResponse fr;
  EXPECT_TRUE(Call(ro, &Stub::GetFrame, f, &fr).ok());
}

TEST_F(ServiceTest, HealthIsServingPerService) {
  for (auto channel : {d_.channel(), d_.ro_channel()}) {
    auto health = grpc::health::v1::Health::NewStub(channel);
    for (const char* service : {"", "hvmm.v1.MemoryManager"}) {
      grpc::health::v1::HealthCheckRequest req;
      req.set_service(service);
      grpc::health::v1::HealthCheckResponse resp;
      const CallResult r =
          Call(health.get(), &grpc::health::v1::Health::Stub::Check, req, &resp);
      ASSERT_TRUE(r.ok()) << r;
      EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
    }
  }
}

// ---------------------------------------------------------------- watch --

// Reads events from a WatchEvents stream.
class Watcher {
 public:
  Watcher(Stub* stub, uint64_t since, std::vector<v1::EventKind> kinds = {}) {
    ctx_.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    v1::WatchEventsRequest req;
    req.set_since_revision(since);
    for (v1::EventKind k : kinds) req.add_kinds(k);
    reader_ = stub->WatchEvents(&ctx_, req);
  }
  ~Watcher() {
    if (finished_) return;
    ctx_.TryCancel();
    v1::WatchEventsResponse r;
    while (reader_->Read(&r)) {
    }
    (void)reader_->Finish();
  }
  // The next event that is not a bookmark (bookmarks are collected).
  std::optional<v1::Event> Next() {
    v1::WatchEventsResponse r;
    while (reader_->Read(&r)) {
      if (r.event().kind() == v1::EVENT_KIND_BOOKMARK) {
        bookmarks_.push_back(r.event());
        continue;
      }
      return r.event();
    }
    return std::nullopt;
  }
  // The next event, bookmarks included.
  std::optional<v1::Event> NextAny() {
    v1::WatchEventsResponse r;
    if (reader_->Read(&r)) return r.event();
    return std::nullopt;
  }
  CallResult Finish() {
    CallResult out;
    finished_ = true;
    const grpc::Status s = reader_->Finish();
    out.code = s.error_code();
    out.message = s.error_message();
    out.reason = ReasonFromDetails(s);
    return out;
  }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<v1::WatchEventsResponse>> reader_;
  std::vector<v1::Event> bookmarks_;
  bool finished_ = false;
};

TEST_F(ServiceTest, WatchResumesAfterAReconnectWithoutLosingEvents) {
  const uint64_t start = d_.daemon().events().head();
  const uint32_t a = MakeDomain("a");
  uint64_t last = 0;
  {
    Watcher w(stub(), start);
    std::optional<v1::Event> e = w.Next();
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->kind(), v1::EVENT_KIND_DOMAIN_CREATED);
    EXPECT_EQ(e->domain_created().domain().domain_id(), a);
    EXPECT_EQ(e->revision(), start + 1);
    last = e->revision();
  }  // Disconnected.
  MakeDomain("b");
  v1::SetFlushPolicyRequest set;
  set.set_domain_id(a);
  set.set_policy(v1::FLUSH_POLICY_ASSISTED_FORCE_IPI);
  v1::SetFlushPolicyResponse sr;
  ASSERT_TRUE(Call(stub(), &Stub::SetFlushPolicy, set, &sr).ok());
  Watcher w(stub(), last);
  std::optional<v1::Event> b = w.Next();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->revision(), last + 1);
  EXPECT_EQ(b->domain_created().domain().name(), "b");
  std::optional<v1::Event> p = w.Next();
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->revision(), last + 2);
  EXPECT_EQ(p->kind(), v1::EVENT_KIND_POLICY_CHANGED);
  EXPECT_EQ(p->policy_changed().previous_policy(), v1::FLUSH_POLICY_IPI);
  EXPECT_EQ(p->policy_changed().policy(), v1::FLUSH_POLICY_ASSISTED_FORCE_IPI);
}

TEST_F(ServiceTest, WatchFromACompactedRevisionIsOutOfRange) {
  const uint64_t start = d_.daemon().events().head();
  for (int i = 0; i < 20; ++i) MakeDomain(absl::StrCat("c", i));  // Ring: 16.
  Watcher w(stub(), start);
  EXPECT_FALSE(w.NextAny().has_value());
  const CallResult r = w.Finish();
  EXPECT_EQ(r.code, StatusCode::OUT_OF_RANGE) << r;
  EXPECT_EQ(r.reason, "REVISION_COMPACTED") << r;
  EXPECT_NE(r.message.find("relist"), std::string::npos) << r;
  // A revision from the future (another daemon) too.
  Watcher future(stub(), d_.daemon().events().head() + 1000);
  EXPECT_FALSE(future.NextAny().has_value());
  EXPECT_EQ(future.Finish().code, StatusCode::OUT_OF_RANGE);
  // And unspecified kinds are refused.
  Watcher bad(stub(), 0, {v1::EVENT_KIND_UNSPECIFIED});
  EXPECT_FALSE(bad.NextAny().has_value());
  const CallResult b = bad.Finish();
  EXPECT_EQ(b.code, StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(b.reason, "UNSPECIFIED_ENUM");
}

// A stream filtered to destroys sees none, but its bookmarks carry the
// revision past the creates it skipped.
TEST_F(ServiceTest, IdleFilteredStreamsGetBookmarksThatMove) {
  Watcher w(stub(), 0, {v1::EVENT_KIND_DOMAIN_DESTROYED});
  std::optional<v1::Event> first = w.NextAny();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->kind(), v1::EVENT_KIND_BOOKMARK);
  MakeDomain("x");
  const uint64_t head = d_.daemon().events().head();
  std::optional<v1::Event> e;
  do {
    e = w.NextAny();
    ASSERT_TRUE(e.has_value());
    ASSERT_EQ(e->kind(), v1::EVENT_KIND_BOOKMARK) << "filtered out";
  } while (e->revision() < head);
  EXPECT_EQ(e->revision(), head);
}

TEST_F(ServiceTest, WatchSeesDestroysAndWorkloads) {
  const uint32_t a = MakeDomain("a", 4);
  // From a known revision: "0" means the head when the server starts the
  // stream, which may be after the calls below.
  Watcher w(stub(), d_.daemon().events().head(),
            {v1::EVENT_KIND_DOMAIN_DESTROYED, v1::EVENT_KIND_WORKLOAD_STARTED,
             v1::EVENT_KIND_WORKLOAD_STOPPED});
  v1::StartWorkloadRequest start;
  start.set_domain_id(a);
  start.set_pattern(v1::ACCESS_PATTERN_SEQUENTIAL);
  start.add_ranges()->set_start_va(kVa);
  start.mutable_ranges(0)->set_page_count(4);
  v1::StartWorkloadResponse started;
  ASSERT_TRUE(Call(stub(), &Stub::StartWorkload, start, &started).ok());
  v1::DestroyDomainRequest destroy;
  destroy.set_domain_id(a);
  v1::DestroyDomainResponse destroyed;
  ASSERT_TRUE(Call(stub(), &Stub::DestroyDomain, destroy, &destroyed).ok());
  std::optional<v1::Event> e1 = w.Next();
  ASSERT_TRUE(e1.has_value());
  EXPECT_EQ(e1->kind(), v1::EVENT_KIND_WORKLOAD_STARTED);
  EXPECT_EQ(e1->workload_changed().domain_id(), a);
  std::optional<v1::Event> e2 = w.Next();
  ASSERT_TRUE(e2.has_value());
  EXPECT_EQ(e2->kind(), v1::EVENT_KIND_DOMAIN_DESTROYED);
  EXPECT_EQ(e2->domain_destroyed().name(), "a");
  EXPECT_GT(e2->revision(), e1->revision());
}

// Shutdown with an open stream, a running workload and pending frees:
// the stream ends with UNAVAILABLE (DRAINING), new calls are refused, and
// the audit passes.
TEST_F(ServiceTest, ShutdownEndsStreamsAndDrains) {
  v1::CreateDomainRequest create;
  create.set_name("rcu");
  create.set_vcpus(2);
  create.set_max_pages(512);
  v1::CreateDomainResponse created;
  ASSERT_TRUE(Call(stub(), &Stub::CreateDomain, create, &created).ok());
  const uint32_t a = created.domain().domain_id();
  v1::MapRangeRequest map;
  map.set_domain_id(a);
  map.set_start_va(kVa);
  map.set_page_count(256);
  map.set_access(v1::MAPPING_ACCESS_READ_WRITE);
  v1::MapRangeResponse mapped;
  ASSERT_TRUE(Call(stub(), &Stub::MapRange, map, &mapped).ok());
  v1::StartWorkloadRequest start;
  start.set_domain_id(a);
  start.set_pattern(v1::ACCESS_PATTERN_UNIFORM);
  start.add_ranges()->set_start_va(kVa);
  start.mutable_ranges(0)->set_page_count(256);
  v1::StartWorkloadResponse started;
  ASSERT_TRUE(Call(stub(), &Stub::StartWorkload, start, &started).ok());
  v1::UnmapRangeRequest unmap;
  unmap.set_domain_id(a);
  unmap.set_start_va(kVa);
  unmap.set_page_count(128);
  v1::UnmapRangeResponse unmapped;
  ASSERT_TRUE(Call(stub(), &Stub::UnmapRange, unmap, &unmapped).ok());

  Watcher w(stub(), 0);
  // The stream is open on the server once something (a bookmark) came.
  ASSERT_TRUE(w.NextAny().has_value());
  EXPECT_TRUE(d_.daemon().Shutdown().ok());
  while (w.NextAny().has_value()) {
  }
  const CallResult r = w.Finish();
  EXPECT_EQ(r.code, StatusCode::UNAVAILABLE) << r;
  v1::GetStatsResponse stats;
  const CallResult late =
      Call(stub(), &Stub::GetStats, v1::GetStatsRequest(), &stats);
  EXPECT_EQ(late.code, StatusCode::UNAVAILABLE) << late;
  EXPECT_EQ(mm().allocator().free_frames(), mm().frame_table().frame_count());
}

}  // namespace
}  // namespace hvmm

namespace hvmm {
namespace {

// Start() refuses bad configurations with a reason, and a failed start
// (even one that had built its Host) tears down cleanly.
TEST(DaemonStartTest, RefusesBadConfigurationsCleanly) {
  DaemonOptions o;
  o.host.frames = 256;
  o.host.pcpus = 1;
  o.metrics_listen = "127.0.0.1:0";
  o.listen = "tcp:0.0.0.0:0";
  absl::StatusOr<std::unique_ptr<Daemon>> d = Daemon::Start(o);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(d.status().message().find("needs TLS"), std::string::npos);
  o.listen = "udp:1.2.3.4:5";
  EXPECT_EQ(ErrorReason(Daemon::Start(o).status()), "MALFORMED_ARGUMENT");
  o.listen = "unix:relative/path.sock";
  EXPECT_EQ(ErrorReason(Daemon::Start(o).status()), "MALFORMED_ARGUMENT");

  o.listen = "unix:/tmp/x/hvmm.sock.lock";
  EXPECT_EQ(ErrorReason(Daemon::Start(o).status()), "MALFORMED_ARGUMENT");
  o.listen = "unix:/tmp/hvmm-tls-unix.sock";
  o.tls_cert = "/nonexistent.pem";
  EXPECT_EQ(ErrorReason(Daemon::Start(o).status()), "MALFORMED_ARGUMENT")
      << "TLS flags on a Unix socket are refused, not ignored";
  o.tls_cert.clear();

  TestDaemon first;
  // Another spelling of the same path is the same socket.
  o.listen = first.daemon().address();
  o.read_only_listen = "unix:" + first.dir() + "//./hvmm.sock";
  EXPECT_EQ(ErrorReason(Daemon::Start(o).status()), "MALFORMED_ARGUMENT");
  o.read_only_listen.clear();
  absl::StatusOr<std::unique_ptr<Daemon>> second = Daemon::Start(o);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ErrorReason(second.status()), "SOCKET_IN_USE");
  // The first still serves.
  v1::GetStatsResponse stats;
  EXPECT_TRUE(Call(first.stub(), &Stub::GetStats, v1::GetStatsRequest(),
                   &stats)
                  .ok());

  // Metrics: a malformed address, and a port another daemon serves.
  TestDaemon other;
  o.listen = "unix:" + other.dir() + "/second.sock";
  o.metrics_listen = "localhost";
  EXPECT_EQ(ErrorReason(Daemon::Start(o).status()), "MALFORMED_ARGUMENT");
  o.metrics_listen = "127.0.0.1:99999";
  EXPECT_EQ(ErrorReason(Daemon::Start(o).status()), "MALFORMED_ARGUMENT");
  o.metrics_listen = "127.0.0.1: 80";
  EXPECT_EQ(ErrorReason(Daemon::Start(o).status()), "MALFORMED_ARGUMENT");
  o.metrics_listen = "[::1]:0";  // Debian's civetweb has no IPv6.
  absl::Status v6 = Daemon::Start(o).status();
  EXPECT_EQ(ErrorReason(v6), "MALFORMED_ARGUMENT");
  EXPECT_NE(v6.message().find("IPv4 only"), std::string::npos) << v6;
  ASSERT_FALSE(first.daemon().metrics_address().empty());
  o.metrics_listen = first.daemon().metrics_address();
  absl::StatusOr<std::unique_ptr<Daemon>> taken = Daemon::Start(o);
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(taken.status().message().find("cannot serve metrics on"),
            std::string::npos)
      << taken.status();
  o.metrics_listen = "none";
  absl::StatusOr<std::unique_ptr<Daemon>> without = Daemon::Start(o);
  ASSERT_TRUE(without.ok()) << without.status();
  EXPECT_EQ((*without)->metrics_address(), "");
}

}  // namespace
}  // namespace hvmm
