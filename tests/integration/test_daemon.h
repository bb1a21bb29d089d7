// A real Daemon on temporary Unix sockets, with stubs on both, for the
// integration tests; plus Call(), which runs one RPC and returns its code,
// reason and message.
//
// The reason is read from both places it travels (grpc_status.h), and the
// two must agree.
#ifndef HVMM_TESTS_INTEGRATION_TEST_DAEMON_H_
#define HVMM_TESTS_INTEGRATION_TEST_DAEMON_H_

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "hvmm/v1/hvmm.grpc.pb.h"
#include "server/daemon.h"
#include "server/grpc_status.h"

namespace hvmm {
namespace testing {

struct CallResult {
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string reason;
  std::string message;
  bool ok() const { return code == grpc::StatusCode::OK; }
};

inline std::ostream& operator<<(std::ostream& os, const CallResult& r) {
  return os << "code " << r.code << " reason '" << r.reason << "': "
            << r.message;
}

// One unary call on `stub` with a 10 s deadline (or `deadline`).
template <typename Stub, typename Req, typename Resp>
CallResult Call(Stub* stub,
                grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&,
                                             Resp*),
                const Req& req, Resp* resp,
                absl::Duration deadline = absl::Seconds(10)) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  const grpc::Status s = (stub->*method)(&ctx, req, resp);
  CallResult r;
  r.code = s.error_code();
  r.message = s.error_message();
  const auto& trailers = ctx.GetServerTrailingMetadata();
  auto it = trailers.find(kReasonMetadataKey);
  if (it != trailers.end()) r.reason = std::string(it->second.data(), it->second.size());
  EXPECT_EQ(r.reason, ReasonFromDetails(s))
      << "the trailer and grpc-status-details-bin disagree";
  return r;
}

class TestDaemon {
 public:
  explicit TestDaemon(DaemonOptions options = DaemonOptions()) {
    // Bazel's TEST_TMPDIR is too long for a socket path (108 bytes).
    char dir[] = "/tmp/hvmm-test-XXXXXX";
    EXPECT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    if (options.listen.empty()) {
      options.listen = absl::StrCat("unix:", dir_, "/hvmm.sock");
    }
    if (options.host.frames == uint64_t{1} << 18) options.host.frames = 8192;
    if (options.host.pcpus == 4) options.host.pcpus = 2;
    options.shutdown_grace = absl::Seconds(5);
    // Tests run in parallel: never the fixed default metrics port.
    if (options.metrics_listen == DaemonOptions().metrics_listen) {
      options.metrics_listen = "127.0.0.1:0";
    }
    absl::StatusOr<std::unique_ptr<Daemon>> d = Daemon::Start(options);
    if (!d.ok()) {
      ADD_FAILURE() << "Daemon::Start: " << d.status();
      std::abort();
    }
    daemon_ = *std::move(d);
    channel_ = grpc::CreateChannel(daemon_->address(),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::MemoryManager::NewStub(channel_);
    if (!daemon_->read_only_address().empty()) {
      ro_channel_ = grpc::CreateChannel(daemon_->read_only_address(),
                                        grpc::InsecureChannelCredentials());
      ro_stub_ = v1::MemoryManager::NewStub(ro_channel_);
    }
  }

  Daemon& daemon() { return *daemon_; }
  v1::MemoryManager::Stub* stub() { return stub_.get(); }
  v1::MemoryManager::Stub* ro_stub() { return ro_stub_.get(); }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }
  std::shared_ptr<grpc::Channel> ro_channel() { return ro_channel_; }
  const std::string& dir() const { return dir_; }
  ~TestDaemon() {
    daemon_.reset();
    std::filesystem::remove_all(dir_);
  }

 private:
  std::string dir_;
  std::unique_ptr<Daemon> daemon_;
  std::shared_ptr<grpc::Channel> channel_, ro_channel_;
  std::unique_ptr<v1::MemoryManager::Stub> stub_, ro_stub_;
};

}  // namespace testing
}  // namespace hvmm

#endif  // HVMM_TESTS_INTEGRATION_TEST_DAEMON_H_
