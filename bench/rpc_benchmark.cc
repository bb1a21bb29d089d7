// The cost of the service over the Unix socket, measured in one process:
//
//   BM_Echo            a bare gRPC echo service (bench/echo.proto), built
//                      and served exactly as hvmmd serves hvmm.v1: the same
//                      ServerBuilder options on a Unix socket, sync API.
//   BM_GetDomain       hvmm.v1 GetDomain on a real Daemon.
//   BM_MmuUpdateBatch  MmuUpdate batches of `range` entries (map 512 pages
//                      per L1, then clear them), entries/s.
//
//   bazel run -c opt //bench:rpc_benchmark -- --benchmark_repetitions=3
//
// Goals (issue "The service"): GetDomain / Echo <= 1.2x in time per call;
// batched MmuUpdate >= 1M entries/s. Compare ratios within one run.
#include <stdlib.h>

#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "bench/echo.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "hvmm/v1/hvmm.grpc.pb.h"
#include "server/daemon.h"

namespace hvmm {
namespace {

std::string TempSocketDir() {
  char dir[] = "/tmp/hvmm-bench-XXXXXX";
  if (mkdtemp(dir) == nullptr) std::abort();
  return dir;
}

class EchoService final : public bench::Echo::Service {
  grpc::Status Echo(grpc::ServerContext*, const bench::EchoRequest* req,
                    bench::EchoResponse* resp) override {
    resp->set_id(req->id());
    resp->set_name("echo");
    return grpc::Status::OK;
  }
};

void BM_Echo(benchmark::State& state) {
  const std::string path = TempSocketDir() + "/echo.sock";
  EchoService service;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + path, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(16 << 20);
  builder.SetMaxSendMessageSize(16 << 20);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  auto stub = bench::Echo::NewStub(grpc::CreateChannel(
      "unix:" + path, grpc::InsecureChannelCredentials()));
  bench::EchoRequest req;
  req.set_id(1);
  for (auto _ : state) {
    grpc::ClientContext ctx;
    bench::EchoResponse resp;
    if (!stub->Echo(&ctx, req, &resp).ok()) state.SkipWithError("echo failed");
  }
  server->Shutdown();
}
BENCHMARK(BM_Echo)->UseRealTime();

std::unique_ptr<Daemon> StartDaemon(uint64_t frames) {
  DaemonOptions o;
  o.listen = "unix:" + TempSocketDir() + "/hvmm.sock";
  o.read_only_listen = "none";
  o.metrics_listen = "none";
  o.host.frames = frames;
  o.host.pcpus = 2;
  return Daemon::Start(o).value();
}

void BM_GetDomain(benchmark::State& state) {
  std::unique_ptr<Daemon> d = StartDaemon(4096);
  auto stub = v1::MemoryManager::NewStub(grpc::CreateChannel(
      d->address(), grpc::InsecureChannelCredentials()));
  v1::CreateDomainRequest create;
  create.set_name("bench");
  create.set_vcpus(1);
  create.set_max_pages(16);
  v1::CreateDomainResponse created;
  {
    grpc::ClientContext ctx;
    if (!stub->CreateDomain(&ctx, create, &created).ok()) std::abort();
  }
  v1::GetDomainRequest req;
  req.set_domain_id(created.domain().domain_id());
  for (auto _ : state) {
    grpc::ClientContext ctx;
    v1::GetDomainResponse resp;
    if (!stub->GetDomain(&ctx, req, &resp).ok()) {
      state.SkipWithError("GetDomain failed");
    }
  }
}
BENCHMARK(BM_GetDomain)->UseRealTime();

void BM_MmuUpdateBatch(benchmark::State& state) {
  const int entries = static_cast<int>(state.range(0));
  const int tables = (entries + 511) / 512;
  std::unique_ptr<Daemon> d = StartDaemon(uint64_t{1} << 18);
  auto stub = v1::MemoryManager::NewStub(grpc::CreateChannel(
      d->address(), grpc::InsecureChannelCredentials()));
  v1::CreateDomainRequest create;
  create.set_name("bench");
  create.set_vcpus(1);
  create.set_max_pages(entries + tables + 8);
  create.set_policy(v1::FLUSH_POLICY_ASSISTED_RCU);
  v1::CreateDomainResponse created;
  grpc::ClientContext c1;
  if (!stub->CreateDomain(&c1, create, &created).ok()) std::abort();
  const uint32_t dom = created.domain().domain_id();
  // Tables first, then data pages (a reservation is at most 65,536).
  v1::AllocatePagesResponse frames;
  for (int want : {tables, entries}) {
    v1::AllocatePagesRequest alloc;
    alloc.set_domain_id(dom);
    alloc.set_count(want);
    v1::AllocatePagesResponse got;
    grpc::ClientContext ctx;
    if (!stub->AllocatePages(&ctx, alloc, &got).ok()) std::abort();
    for (uint64_t m : got.mfns()) frames.add_mfns(m);
  }
  // The first `tables` frames become pinned L1s; the rest are data pages.
  for (int t = 0; t < tables; ++t) {
    v1::PinRequest pin;
    pin.set_domain_id(dom);
    pin.set_mfn(frames.mfns(t));
    pin.set_level(v1::TABLE_LEVEL_L1);
    v1::PinResponse pinned;
    grpc::ClientContext ctx;
    if (!stub->Pin(&ctx, pin, &pinned).ok()) std::abort();
  }
  v1::MmuUpdateRequest map, clear;
  map.set_domain_id(dom);
  clear.set_domain_id(dom);
  for (int i = 0; i < entries; ++i) {
    const uint64_t table = frames.mfns(i / 512);
    const uint64_t data = frames.mfns(tables + i);
    v1::EntryUpdate* m = map.add_updates();
    m->set_table_mfn(table);
    m->set_index(i % 512);
    m->set_entry((data << 12) | 0x7);  // Present, writable, user.
    v1::EntryUpdate* c = clear.add_updates();
    c->set_table_mfn(table);
    c->set_index(i % 512);
    c->set_entry(0);
  }
  bool mapped = false;
  for (auto _ : state) {
    grpc::ClientContext ctx;
    v1::MmuUpdateResponse resp;
    const grpc::Status s =
        stub->MmuUpdate(&ctx, mapped ? clear : map, &resp);
    if (!s.ok()) {
      state.SkipWithError(s.error_message().c_str());
      break;
    }
    mapped = !mapped;
  }
  state.SetItemsProcessed(state.iterations() * entries);
}
BENCHMARK(BM_MmuUpdateBatch)->Arg(512)->Arg(4096)->Arg(65536)->UseRealTime();

}  // namespace
}  // namespace hvmm

BENCHMARK_MAIN();
