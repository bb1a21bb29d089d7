// hvmmctl: the operators' CLI for hvmmd. One subcommand per call of the
// hvmm.v1 API, grouped by noun (virsh/kubectl style):
//
//   domain create|get|list|destroy   mem alloc|release
//   pt update|pin|unpin|base|map|unmap   frame get   translate   flush
//   policy set   workload start|stop   stats   audit   watch   health
//
// Common flags: --addr (default: the daemon's default socket), -o
// table|json, --timeout SECONDS (the default deadline of every call).
// Exit codes: 0 success; 1 the call failed (code, reason and message on
// stderr); 2 usage error; 3 `health` found the daemon not serving.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/printer.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "hvmm/v1/hvmm.grpc.pb.h"
#include "server/grpc_status.h"
#include "server/listen.h"

namespace hvmm {
namespace ctl {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitCallFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitNotServing = 3;

constexpr char kExitCodes[] =
    "Exit codes:\n"
    "  0  success\n"
    "  1  the call failed (gRPC code, reason and message on stderr)\n"
    "  2  usage error\n"
    "  3  health: the daemon is not serving\n";

using Stub = v1::MemoryManager::Stub;

struct Globals {
  std::string addr;
  std::string output = "table";
  double timeout_seconds = 30;
};

// The context of the call in flight, so that Ctrl-C can cancel it.
std::mutex g_call_mu;
grpc::ClientContext* g_call = nullptr;
std::atomic<bool> g_interrupted{false};

class CallGuard {
 public:
  explicit CallGuard(grpc::ClientContext* ctx) {
    std::lock_guard<std::mutex> lock(g_call_mu);
    g_call = ctx;
  }
  ~CallGuard() {
    std::lock_guard<std::mutex> lock(g_call_mu);
    g_call = nullptr;
  }
};

// Shows elapsed time on a terminal while `fn` runs; silent otherwise.
void WithProgress(const std::string& label, const std::function<void()>& fn) {
  if (!isatty(STDERR_FILENO)) {
    fn();
    return;
  }
  std::atomic<bool> done{false};
  std::thread spinner([&] {
    const absl::Time start = absl::Now();
    // Only calls that take a while show anything.
    for (int i = 0; !done.load(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (i >= 5 && !done.load()) {
        std::fprintf(stderr, "\r%s... %.1fs", label.c_str(),
                     absl::ToDoubleSeconds(absl::Now() - start));
      }
    }
    std::fprintf(stderr, "\r\033[K");
  });
  fn();
  done.store(true);
  spinner.join();
}

class Ctl {
 public:
  explicit Ctl(const Globals& g) : g_(g) {
    // "tcp:HOST:PORT" (hvmmd's --listen form) means HOST:PORT.
    std::string addr =
        g.addr.empty() ? absl::StrCat("unix:", DefaultSocketPath()) : g.addr;
    if (addr.rfind("tcp:", 0) == 0) addr = addr.substr(4);
    channel_ = grpc::CreateChannel(addr, grpc::InsecureChannelCredentials());
    stub_ = v1::MemoryManager::NewStub(channel_);
  }

  bool json() const { return g_.output == "json"; }
  Stub* stub() { return stub_.get(); }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }

  void SetDeadline(grpc::ClientContext* ctx) const {
    ctx->set_deadline(absl::ToChronoTime(
        absl::Now() + absl::Seconds(g_.timeout_seconds)));
  }

  // Runs one unary call; prints the error and returns 1 on failure.
  template <typename Req, typename Resp>
  int Call(grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&,
                                        Resp*),
           const Req& req, Resp* resp, const std::string& progress = "") {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    CallGuard guard(&ctx);
    grpc::Status s;
    auto run = [&] { s = (stub_.get()->*method)(&ctx, req, resp); };
    if (progress.empty()) {
      run();
    } else {
      WithProgress(progress, run);
    }
    if (s.ok()) return kExitOk;
    return Fail(s, ctx);
  }

  static int Fail(const grpc::Status& s, grpc::ClientContext& ctx) {
    std::string reason;
    const auto& trailers = ctx.GetServerTrailingMetadata();
    if (auto it = trailers.find("hvmm-error-reason"); it != trailers.end()) {
      reason = std::string(it->second.data(), it->second.size());
    }
    std::cerr << "hvmmctl: " << GrpcCodeName(s.error_code())
              << (reason.empty() ? "" : absl::StrCat(" [", reason, "]"))
              << ": " << s.error_message() << "\n";
    return kExitCallFailed;
  }

  // Prints `m` as JSON, or calls `table`.
  int Print(const google::protobuf::Message& m,
            const std::function<void()>& table) {
    if (json()) {
      PrintJson(m, std::cout);
    } else {
      table();
    }
    return kExitOk;
  }

 private:
  const Globals& g_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Stub> stub_;
};

// CLI11 validators for decimal or 0x-hex numbers that fit their field: a
// value too large is a usage error, never silently truncated.
struct NumberValidator : public CLI::Validator {
  explicit NumberValidator(uint64_t max) {
    name_ = max == UINT32_MAX ? "UINT32" : "UINT64";
    func_ = [max](std::string& s) {
      uint64_t v;
      if (!ParseNumber(s, &v)) return absl::StrCat("'", s, "' is not a number");
      if (v > max) return absl::StrCat("'", s, "' is larger than ", max);
      return std::string();
    };
  }
};
const NumberValidator kNumber(UINT64_MAX);  // Addresses, MFNs, counts.
const NumberValidator kU32(UINT32_MAX);     // Domain ids, vCPUs.

uint64_t Num(const std::string& s) {
  uint64_t v = 0;
  ParseNumber(s, &v);
  return v;
}

void OkLine(Ctl& ctl, const google::protobuf::Message& m,
            const std::string& line) {
  ctl.Print(m, [&] { std::cout << line << "\n"; });
}

// watch: streams until Ctrl-C, resuming after a reconnect from the last
// revision seen.
int Watch(Ctl& ctl, uint64_t since, const std::vector<std::string>& kinds) {
  v1::WatchEventsRequest req;
  for (const std::string& k : kinds) {
    v1::EventKind kind;
    if (!v1::EventKind_Parse(absl::StrCat("EVENT_KIND_", k), &kind)) {
      std::string upper = k;
      for (char& c : upper) c = static_cast<char>(std::toupper(c));
      if (!v1::EventKind_Parse(absl::StrCat("EVENT_KIND_", upper), &kind)) {
        std::cerr << "hvmmctl: unknown event kind '" << k << "'\n";
        return kExitUsage;
      }
    }
    req.add_kinds(kind);
  }
  absl::Duration backoff = absl::Milliseconds(100);
  for (;;) {
    req.set_since_revision(since);
    grpc::ClientContext ctx;  // No deadline: a stream lives until Ctrl-C.
    CallGuard guard(&ctx);
    if (g_interrupted.load()) return kExitOk;
    std::unique_ptr<grpc::ClientReader<v1::WatchEventsResponse>> reader =
        ctl.stub()->WatchEvents(&ctx, req);
    v1::WatchEventsResponse resp;
    while (reader->Read(&resp)) {
      backoff = absl::Milliseconds(100);
      since = resp.event().revision();
      if (resp.event().kind() == v1::EVENT_KIND_BOOKMARK) continue;
      if (ctl.json()) {
        PrintJson(resp.event(), std::cout);
      } else {
        PrintEvent(resp.event(), std::cout);
      }
      std::cout.flush();
    }
    const grpc::Status s = reader->Finish();
    if (g_interrupted.load()) return kExitOk;
    // A lost connection, a draining daemon, or a call the server cancelled
    // (one that arrived as it shut down) is worth a resume.
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE &&
        s.error_code() != grpc::StatusCode::CANCELLED) {
      return s.ok() ? kExitOk : Ctl::Fail(s, ctx);
    }
    std::cerr << "hvmmctl: watch: " << s.error_message()
              << "; resuming after revision " << since << "\n";
    std::this_thread::sleep_for(absl::ToChronoSeconds(backoff));
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

int Health(Ctl& ctl, const std::string& service, double timeout) {
  auto stub = grpc::health::v1::Health::NewStub(ctl.channel());
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(timeout)));
  const grpc::Status s = stub->Check(&ctx, req, &resp);
  if (!s.ok()) {
    std::cerr << "hvmmctl: health: " << GrpcCodeName(s.error_code()) << ": "
              << s.error_message() << "\n";
    return kExitNotServing;
  }
  const std::string status =
      grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status());
  ctl.Print(resp, [&] {
    std::cout << (service.empty() ? "hvmmd" : service) << ": " << status
              << "\n";
  });
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING
             ? kExitOk
             : kExitNotServing;
}

int Main(int argc, char** argv) {
  Globals g;
  CLI::App app{"hvmmctl: drive hvmmd, the hypervisor memory-management "
               "daemon, over its hvmm.v1 gRPC API."};
  app.footer(kExitCodes);
  app.require_subcommand(1);
  app.fallthrough();
  app.add_option("--addr", g.addr,
                 "daemon address: unix:/PATH, HOST:PORT or tcp:HOST:PORT "
                 "(default: "
                 "unix:" + DefaultSocketPath() + ")");
  app.add_option("-o,--output", g.output, "output format")
      ->check(CLI::IsMember({"table", "json"}));
  app.add_option("--timeout", g.timeout_seconds,
                 "deadline of each call, in seconds")
      ->check([](const std::string& text) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        // Written so that NaN fails too.
        if (end == text.c_str() || *end != '\0' || !(v >= 0.001 && v <= 3.2e7)) {
          return "--timeout must be a number of seconds in [0.001, 3.2e7]";
        }
        return "";
      });

  std::function<int(Ctl&)> action;
  auto on = [&](CLI::App* cmd, std::function<int(Ctl&)> fn) {
    cmd->callback([&action, fn] { action = fn; });
  };

  // ---- domain
  CLI::App* domain = app.add_subcommand("domain", "domains");
  domain->require_subcommand(1);
  {
    auto* c = domain->add_subcommand("create", "create a domain");
    static std::string name, policy;
    static uint32_t vcpus = 1;
    static std::string max_pages = "1024";
    static std::string request_id;
    c->add_option("name", name, "unique name ([A-Za-z0-9_.-], 1..64)")
        ->required();
    c->add_option("--vcpus", vcpus, "vCPUs (1..128)");
    c->add_option("--max-pages", max_pages, "page quota (the root counts)")
        ->check(kNumber);
    c->add_option("--policy", policy,
                  "ipi, assisted+force-ipi, assisted+rcu, assisted-unsafe "
                  "(default: the daemon's)");
    c->add_option("--request-id", request_id, "idempotency key");
    on(c, [](Ctl& ctl) {
      v1::CreateDomainRequest req;
      req.set_name(name);
      req.set_vcpus(vcpus);
      req.set_max_pages(Num(max_pages));
      req.set_request_id(request_id);
      if (!policy.empty()) {
        v1::FlushPolicy p;
        if (!ParsePolicyName(policy, &p)) {
          std::cerr << "hvmmctl: unknown policy '" << policy << "'\n";
          return kExitUsage;
        }
        req.set_policy(p);
      }
      v1::CreateDomainResponse resp;
      if (int rc = ctl.Call(&Stub::CreateDomain, req, &resp)) return rc;
      return ctl.Print(resp, [&] { PrintDomains({resp.domain()}, std::cout); });
    });
  }
  {
    auto* c = domain->add_subcommand("get", "show a domain (by id or name)");
    static std::string key;
    c->add_option("domain", key, "domain id or name")->required();
    on(c, [](Ctl& ctl) {
      v1::GetDomainRequest req;
      uint64_t id;
      if (ParseNumber(key, &id)) {
        if (id > UINT32_MAX) {
          std::cerr << "hvmmctl: domain id " << key << " is larger than "
                    << UINT32_MAX << "\n";
          return kExitUsage;
        }
        req.set_domain_id(static_cast<uint32_t>(id));
      } else {
        req.set_name(key);
      }
      v1::GetDomainResponse resp;
      if (int rc = ctl.Call(&Stub::GetDomain, req, &resp)) return rc;
      return ctl.Print(resp, [&] { PrintDomains({resp.domain()}, std::cout); });
    });
  }
  {
    auto* c = domain->add_subcommand("list", "list domains (every page)");
    static int32_t page_size = 0;
    c->add_option("--page-size", page_size, "domains per call (0: default)");
    on(c, [](Ctl& ctl) {
      v1::ListDomainsRequest req;
      req.set_page_size(page_size);
      v1::ListDomainsResponse all, page;
      do {
        if (int rc = ctl.Call(&Stub::ListDomains, req, &page)) return rc;
        // The first page's revision: watch from it to miss nothing.
        if (req.page_token().empty()) all.set_revision(page.revision());
        for (const v1::Domain& d : page.domains()) *all.add_domains() = d;
        req.set_page_token(page.next_page_token());
      } while (!page.next_page_token().empty());
      return ctl.Print(all, [&] {
        PrintDomains({all.domains().begin(), all.domains().end()}, std::cout);
      });
    });
  }
  {
    auto* c = domain->add_subcommand("destroy", "destroy a domain");
    static std::string id;
    static std::string request_id;
    c->add_option("domain", id, "domain id")->required()->check(kU32);
    c->add_option("--request-id", request_id, "idempotency key");
    on(c, [](Ctl& ctl) {
      v1::DestroyDomainRequest req;
      req.set_domain_id(static_cast<uint32_t>(Num(id)));
      req.set_request_id(request_id);
      v1::DestroyDomainResponse resp;
      if (int rc = ctl.Call(&Stub::DestroyDomain, req, &resp,
                            absl::StrCat("destroying domain ", id))) {
        return rc;
      }
      OkLine(ctl, resp, absl::StrCat("domain ", id, " destroyed: ",
                                     resp.frames_released(),
                                     " frames released"));
      return kExitOk;
    });
  }

  // ---- mem
  CLI::App* mem = app.add_subcommand("mem", "reservations");
  mem->require_subcommand(1);
  {
    auto* c = mem->add_subcommand("alloc", "give a domain fresh frames");
    static std::string id, count, request_id;
    c->add_option("domain", id)->required()->check(kU32);
    c->add_option("count", count)->required()->check(kNumber);
    c->add_option("--request-id", request_id, "idempotency key");
    on(c, [](Ctl& ctl) {
      v1::AllocatePagesRequest req;
      req.set_domain_id(static_cast<uint32_t>(Num(id)));
      req.set_count(Num(count));
      req.set_request_id(request_id);
      v1::AllocatePagesResponse resp;
      if (int rc = ctl.Call(&Stub::AllocatePages, req, &resp)) return rc;
      return ctl.Print(resp, [&] {
        Table t({"MFN"});
        for (uint64_t m : resp.mfns()) t.AddRow({Hex(m)});
        t.Print(std::cout);
      });
    });
  }
  {
    auto* c = mem->add_subcommand("release", "take unreferenced frames back");
    static std::string id, request_id;
    static std::vector<std::string> mfns;
    c->add_option("domain", id)->required()->check(kU32);
    c->add_option("mfns", mfns)->required()->check(kNumber);
    c->add_option("--request-id", request_id, "idempotency key");
    on(c, [](Ctl& ctl) {
      v1::ReleasePagesRequest req;
      req.set_domain_id(static_cast<uint32_t>(Num(id)));
      for (const std::string& m : mfns) req.add_mfns(Num(m));
      req.set_request_id(request_id);
      v1::ReleasePagesResponse resp;
      if (int rc = ctl.Call(&Stub::ReleasePages, req, &resp)) return rc;
      OkLine(ctl, resp, absl::StrCat(resp.released_count(), " released"));
      return kExitOk;
    });
  }

  // ---- pt
  CLI::App* pt = app.add_subcommand("pt", "page tables (Xen mmu_update and "
                                          "mmuext ops)");
  pt->require_subcommand(1);
  {
    auto* c = pt->add_subcommand(
        "update", "write entries, all or none: TABLE:INDEX=ENTRY ...");
    static std::string id, request_id;
    static std::vector<std::string> writes;
    c->add_option("domain", id)->required()->check(kU32);
    c->add_option("writes", writes, "TABLE_MFN:INDEX=ENTRY (0x hex ok)")
        ->required();
    c->add_option("--request-id", request_id, "idempotency key");
    on(c, [](Ctl& ctl) {
      v1::MmuUpdateRequest req;
      req.set_domain_id(static_cast<uint32_t>(Num(id)));
      req.set_request_id(request_id);
      for (const std::string& w : writes) {
        std::vector<std::string> a = absl::StrSplit(w, absl::ByAnyChar(":="));
        uint64_t table, index, entry;
        if (a.size() != 3 || !ParseNumber(a[0], &table) ||
            !ParseNumber(a[1], &index) || !ParseNumber(a[2], &entry) ||
            index > UINT32_MAX) {
          std::cerr << "hvmmctl: '" << w << "' is not TABLE:INDEX=ENTRY\n";
          return kExitUsage;
        }
        v1::EntryUpdate* u = req.add_updates();
        u->set_table_mfn(table);
        u->set_index(static_cast<uint32_t>(index));
        u->set_entry(entry);
      }
      v1::MmuUpdateResponse resp;
      if (int rc = ctl.Call(&Stub::MmuUpdate, req, &resp)) return rc;
      OkLine(ctl, resp, absl::StrCat(resp.applied_count(), " entries written"));
      return kExitOk;
    });
  }
  {
    auto* c = pt->add_subcommand("pin", "pin a frame as a table");
    static std::string id, mfn, level, request_id;
    c->add_option("domain", id)->required()->check(kU32);
    c->add_option("mfn", mfn)->required()->check(kNumber);
    c->add_option("--level", level, "l1..l4")
        ->required()
        ->check(CLI::IsMember({"l1", "l2", "l3", "l4"}));
    c->add_option("--request-id", request_id, "idempotency key");
    on(c, [](Ctl& ctl) {
      v1::PinRequest req;
      req.set_domain_id(static_cast<uint32_t>(Num(id)));
      req.set_mfn(Num(mfn));
      req.set_level(static_cast<v1::TableLevel>(level[1] - '0'));
      req.set_request_id(request_id);
      v1::PinResponse resp;
      if (int rc = ctl.Call(&Stub::Pin, req, &resp)) return rc;
      OkLine(ctl, resp, absl::StrCat(mfn, " pinned as ", level));
      return kExitOk;
    });
  }
  {
    auto* c = pt->add_subcommand("unpin", "unpin a table");
    static std::string id, mfn, request_id;
    c->add_option("domain", id)->required()->check(kU32);
    c->add_option("mfn", mfn)->required()->check(kNumber);
    c->add_option("--request-id", request_id, "idempotency key");
    on(c, [](Ctl& ctl) {
      v1::UnpinRequest req;
      req.set_domain_id(static_cast<uint32_t>(Num(id)));
      req.set_mfn(Num(mfn));
      req.set_request_id(request_id);
      v1::UnpinResponse resp;
      if (int rc = ctl.Call(&Stub::Unpin, req, &resp)) return rc;
      OkLine(ctl, resp, absl::StrCat(mfn, " unpinned"));
      return kExitOk;
    });
  }
  {
    auto* c = pt->add_subcommand("base", "set a vCPU's base pointer");
    static std::string id, vcpu, root, request_id;
    c->add_option("domain", id)->required()->check(kU32);
    c->add_option("vcpu", vcpu)->required()->check(kU32);
    c->add_option("root", root, "an L4's MFN, or 'none'")->required();
    c->add_option("--request-id", request_id, "idempotency key");
    on(c, [](Ctl& ctl) {
      v1::SetBasePointerRequest req;
      req.set_domain_id(static_cast<uint32_t>(Num(id)));
      req.set_vcpu(static_cast<uint32_t>(Num(vcpu)));
      req.set_request_id(request_id);
      uint64_t mfn;
      if (root == "none") {
        req.mutable_no_root();
      } else if (ParseNumber(root, &mfn)) {
        req.set_root_mfn(mfn);
      } else {
        std::cerr << "hvmmctl: root must be an MFN or 'none'\n";
        return kExitUsage;
      }
      v1::SetBasePointerResponse resp;
      if (int rc = ctl.Call(&Stub::SetBasePointer, req, &resp)) return rc;
      OkLine(ctl, resp, absl::StrCat("vCPU ", vcpu, " -> ", root));
      return kExitOk;
    });
  }
  {
    auto* c = pt->add_subcommand("map", "map pages, creating tables");
    static std::string id, va, pages, request_id;
    static bool read_only = false;
    c->add_option("domain", id)->required()->check(kU32);
    c->add_option("va", va, "page-aligned virtual address")
        ->required()
        ->check(kNumber);
    c->add_option("pages", pages)->required()->check(kNumber);
    c->add_flag("--read-only", read_only, "map read-only");
    c->add_option("--request-id", request_id, "idempotency key");
    on(c, [](Ctl& ctl) {
      v1::MapRangeRequest req;
      req.set_domain_id(static_cast<uint32_t>(Num(id)));
      req.set_start_va(Num(va));
      req.set_page_count(Num(pages));
      req.set_access(read_only ? v1::MAPPING_ACCESS_READ_ONLY
                               : v1::MAPPING_ACCESS_READ_WRITE);
      req.set_request_id(request_id);
      v1::MapRangeResponse resp;
      if (int rc = ctl.Call(&Stub::MapRange, req, &resp,
                            absl::StrCat("mapping ", pages, " pages"))) {
        return rc;
      }
      OkLine(ctl, resp, absl::StrCat(resp.pages_mapped(), " pages mapped, ",
                                     resp.tables_created(), " tables created"));
      return kExitOk;
    });
  }
  {
    auto* c = pt->add_subcommand("unmap", "unmap pages, freeing tables");
    static std::string id, va, pages, request_id;
    c->add_option("domain", id)->required()->check(kU32);
    c->add_option("va", va)->required()->check(kNumber);
    c->add_option("pages", pages)->required()->check(kNumber);
    c->add_option("--request-id", request_id, "idempotency key");
    on(c, [](Ctl& ctl) {
      v1::UnmapRangeRequest req;
      req.set_domain_id(static_cast<uint32_t>(Num(id)));
      req.set_start_va(Num(va));
      req.set_page_count(Num(pages));
      req.set_request_id(request_id);
      v1::UnmapRangeResponse resp;
      if (int rc = ctl.Call(&Stub::UnmapRange, req, &resp,
                            absl::StrCat("unmapping ", pages, " pages"))) {
        return rc;
      }
      OkLine(ctl, resp,
             absl::StrCat(resp.pages_unmapped(), " pages unmapped, ",
                          resp.tables_unhooked(), " tables unhooked, ",
                          resp.frames_released(), " frames released"));
      return kExitOk;
    });
  }

  // ---- frame, translate, flush, policy
  CLI::App* frame = app.add_subcommand("frame", "frames");
  frame->require_subcommand(1);
  {
    auto* c = frame->add_subcommand("get", "a frame's metadata");
    static std::string mfn;
    c->add_option("mfn", mfn)->required()->check(kNumber);
    on(c, [](Ctl& ctl) {
      v1::GetFrameRequest req;
      req.set_mfn(Num(mfn));
      v1::GetFrameResponse resp;
      if (int rc = ctl.Call(&Stub::GetFrame, req, &resp)) return rc;
      return ctl.Print(resp, [&] { PrintFrame(resp.frame(), std::cout); });
    });
  }
  {
    auto* c = app.add_subcommand("translate", "walk an address on a pCPU");
    static std::string id, va, vcpu = "0";
    static bool write = false;
    c->add_option("domain", id)->required()->check(kU32);
    c->add_option("va", va)->required()->check(kNumber);
    c->add_option("--vcpu", vcpu)->check(kU32);
    c->add_flag("--write", write, "translate for a write");
    on(c, [](Ctl& ctl) {
      v1::TranslateRequest req;
      req.set_domain_id(static_cast<uint32_t>(Num(id)));
      req.set_va(Num(va));
      req.set_vcpu(static_cast<uint32_t>(Num(vcpu)));
      req.set_access(write ? v1::ACCESS_KIND_WRITE : v1::ACCESS_KIND_READ);
      v1::TranslateResponse resp;
      if (int rc = ctl.Call(&Stub::Translate, req, &resp)) return rc;
      return ctl.Print(resp, [&] { PrintTranslation(resp, std::cout); });
    });
  }
  {
    auto* c = app.add_subcommand("flush", "flush a domain's TLBs");
    static std::string id, va, pages;
    c->add_option("domain", id)->required()->check(kU32);
    c->add_option("--va", va, "start of a range (with --pages)")
        ->check(kNumber);
    c->add_option("--pages", pages, "pages in the range")->check(kNumber);
    on(c, [](Ctl& ctl) {
      v1::FlushRequest req;
      req.set_domain_id(static_cast<uint32_t>(Num(id)));
      if (va.empty() != pages.empty()) {
        std::cerr << "hvmmctl: --va and --pages go together\n";
        return kExitUsage;
      }
      if (va.empty()) {
        req.mutable_all();
      } else {
        req.mutable_range()->set_start_va(Num(va));
        req.mutable_range()->set_page_count(Num(pages));
      }
      v1::FlushResponse resp;
      if (int rc = ctl.Call(&Stub::Flush, req, &resp)) return rc;
      OkLine(ctl, resp,
             absl::StrCat("flushed on ", resp.pcpus_targeted(), " pCPUs by ",
                          resp.backend() == v1::FLUSH_BACKEND_IPI
                              ? "IPI"
                              : "assisted flush"));
      return kExitOk;
    });
  }
  CLI::App* policy = app.add_subcommand("policy", "flush policies");
  policy->require_subcommand(1);
  {
    auto* c = policy->add_subcommand("set", "change a domain's policy live");
    static std::string id, name, request_id;
    c->add_option("domain", id)->required()->check(kU32);
    c->add_option("policy", name,
                  "ipi, assisted+force-ipi, assisted+rcu, assisted-unsafe")
        ->required();
    c->add_option("--request-id", request_id, "idempotency key");
    on(c, [](Ctl& ctl) {
      v1::SetFlushPolicyRequest req;
      req.set_domain_id(static_cast<uint32_t>(Num(id)));
      v1::FlushPolicy p;
      if (!ParsePolicyName(name, &p)) {
        std::cerr << "hvmmctl: unknown policy '" << name << "'\n";
        return kExitUsage;
      }
      req.set_policy(p);
      req.set_request_id(request_id);
      v1::SetFlushPolicyResponse resp;
      if (int rc = ctl.Call(&Stub::SetFlushPolicy, req, &resp)) return rc;
      OkLine(ctl, resp,
             absl::StrCat("domain ", id, ": ",
                          PolicyName(resp.previous_policy()), " -> ",
                          PolicyName(resp.domain().policy())));
      return kExitOk;
    });
  }

  // ---- workload
  CLI::App* workload = app.add_subcommand("workload", "guest workloads");
  workload->require_subcommand(1);
  {
    auto* c = workload->add_subcommand("start", "run the domain's vCPUs");
    static std::string id, pattern = "uniform", request_id;
    static std::vector<std::string> ranges;
    static double write_fraction = 0.3;
    static double rate = 0;
    c->add_option("domain", id)->required()->check(kU32);
    c->add_option("--range", ranges, "VA:PAGES (repeat for more)")
        ->required();
    c->add_option("--pattern", pattern)
        ->check(CLI::IsMember({"uniform", "sequential", "zipf"}));
    c->add_option("--write-fraction", write_fraction, "in [0, 1]");
    c->add_option("--rate", rate,
                  "accesses per second per vCPU (0: unthrottled)");
    c->add_option("--request-id", request_id, "idempotency key");
    on(c, [](Ctl& ctl) {
      v1::StartWorkloadRequest req;
      req.set_domain_id(static_cast<uint32_t>(Num(id)));
      req.set_pattern(pattern == "uniform"      ? v1::ACCESS_PATTERN_UNIFORM
                      : pattern == "sequential" ? v1::ACCESS_PATTERN_SEQUENTIAL
                                                : v1::ACCESS_PATTERN_ZIPF);
      req.set_write_fraction(write_fraction);
      req.set_rate(rate);
      req.set_request_id(request_id);
      for (const std::string& r : ranges) {
        std::vector<std::string> a = absl::StrSplit(r, ':');
        uint64_t va, pages;
        if (a.size() != 2 || !ParseNumber(a[0], &va) ||
            !ParseNumber(a[1], &pages)) {
          std::cerr << "hvmmctl: '" << r << "' is not VA:PAGES\n";
          return kExitUsage;
        }
        v1::PageRange* pr = req.add_ranges();
        pr->set_start_va(va);
        pr->set_page_count(pages);
      }
      v1::StartWorkloadResponse resp;
      if (int rc = ctl.Call(&Stub::StartWorkload, req, &resp)) return rc;
      OkLine(ctl, resp, absl::StrCat("workload started on domain ", id));
      return kExitOk;
    });
  }
  {
    auto* c = workload->add_subcommand("stop", "stop the domain's vCPUs");
    static std::string id, request_id;
    c->add_option("domain", id)->required()->check(kU32);
    c->add_option("--request-id", request_id, "idempotency key");
    on(c, [](Ctl& ctl) {
      v1::StopWorkloadRequest req;
      req.set_domain_id(static_cast<uint32_t>(Num(id)));
      req.set_request_id(request_id);
      v1::StopWorkloadResponse resp;
      if (int rc = ctl.Call(&Stub::StopWorkload, req, &resp)) return rc;
      OkLine(ctl, resp, absl::StrCat("workload stopped on domain ", id));
      return kExitOk;
    });
  }

  // ---- stats, audit, watch, health
  {
    auto* c = app.add_subcommand("stats", "daemon-wide and per-domain stats");
    static std::string id;
    c->add_option("--domain", id, "also this domain's")->check(kU32);
    on(c, [](Ctl& ctl) {
      v1::GetStatsRequest req;
      if (!id.empty()) req.set_domain_id(static_cast<uint32_t>(Num(id)));
      v1::GetStatsResponse resp;
      if (int rc = ctl.Call(&Stub::GetStats, req, &resp)) return rc;
      return ctl.Print(resp, [&] { PrintStats(resp, std::cout); });
    });
  }
  {
    auto* c = app.add_subcommand("audit", "check every invariant");
    on(c, [](Ctl& ctl) {
      v1::AuditResponse resp;
      if (int rc = ctl.Call(&Stub::Audit, v1::AuditRequest(), &resp,
                            "auditing")) {
        return rc;
      }
      ctl.Print(resp, [&] {
        std::cout << (resp.clean() ? "clean" : "VIOLATED") << " ("
                  << resp.duration().seconds() * 1000 +
                         resp.duration().nanos() / 1000000
                  << " ms)\n";
        for (const std::string& f : resp.findings()) {
          std::cout << "  " << f << "\n";
        }
      });
      return resp.clean() ? kExitOk : kExitCallFailed;
    });
  }
  {
    auto* c = app.add_subcommand(
        "watch", "stream events until Ctrl-C; resumes after a reconnect");
    static std::string since = "0";
    static std::vector<std::string> kinds;
    c->add_option("--since", since, "resume after this revision (0: now)")
        ->check(kNumber);
    c->add_option("--kind", kinds,
                  "only these kinds: domain_created, domain_destroyed, "
                  "policy_changed, grace_periods, flush_batches, "
                  "safety_violation, workload_started, workload_stopped");
    on(c, [](Ctl& ctl) { return Watch(ctl, Num(since), kinds); });
  }
  double health_timeout = 0;
  {
    auto* c = app.add_subcommand(
        "health", "grpc.health.v1 check; exit 3 unless SERVING");
    static std::string service = "hvmm.v1.MemoryManager";
    c->add_option("--service", service, "service name ('' for the daemon)");
    on(c, [&health_timeout, &g](Ctl& ctl) {
      return Health(ctl, service, health_timeout > 0 ? health_timeout
                                                     : g.timeout_seconds);
    });
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    std::cout << app.help();
    return kExitOk;
  } catch (const CLI::CallForAllHelp& e) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    std::cerr << "hvmmctl: " << e.what() << "\n"
              << "Run 'hvmmctl --help' for usage.\n";
    return kExitUsage;
  }
  if (!action) {
    std::cerr << "hvmmctl: no command\n";
    return kExitUsage;
  }

  // Ctrl-C or SIGTERM cancels the call in flight (watch then exits 0).
  // An ignored signal (a shell's background job ignores SIGINT) never
  // reaches sigwait: take both back to their default first.
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread([signals]() mutable {
    int sig;
    sigwait(&signals, &sig);
    g_interrupted.store(true);
    std::lock_guard<std::mutex> lock(g_call_mu);
    if (g_call != nullptr) g_call->TryCancel();
  }).detach();

  Ctl ctl(g);
  return action(ctl);
}

}  // namespace
}  // namespace ctl
}  // namespace hvmm

int main(int argc, char** argv) { return hvmm::ctl::Main(argc, argv); }
