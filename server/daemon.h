// Daemon: one running hvmmd. Builds the Host, the event log and the
// services, and serves them on the read-write and read-only addresses, each
// with grpc.health.v1 (per-service status) and server reflection; serves
// Prometheus metrics (HostMetrics, RpcMetrics) on the metrics address.
//
// Shutdown(), the sequence DESIGN §7 and docs/API.md describe:
//   1. health reports NOT_SERVING and new calls get UNAVAILABLE (DRAINING);
//   2. WatchEvents streams end (UNAVAILABLE, DRAINING) and in-flight calls
//      get `shutdown_grace` to finish, the listeners still open; then the
//      listeners close and gRPC cancels what is left (calls it had accepted
//      but not yet handed to a handler end CANCELLED);
//   3. workloads stop and deferred frees drain (Host::Shutdown);
//   4. the audit runs: its status is Shutdown()'s;
//   5. /metrics stops (it answered until here).
//
// Thread-safety: Start() and Shutdown() from the controlling thread;
// accessors from any thread.
#ifndef HVMM_SERVER_DAEMON_H_
#define HVMM_SERVER_DAEMON_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "server/event_log.h"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"
#include "server/host.h"
#include "server/host_metrics.h"
#include "server/listen.h"
#include "server/rpc_metrics.h"
#include "server/service.h"

namespace hvmm {

struct DaemonOptions {
  HostOptions host;
  // "unix:/PATH" or "tcp:HOST:PORT"; "" is unix:DefaultSocketPath().
  std::string listen;
  // The read-only address; "" is the "-ro" socket beside a Unix `listen`
  // (none for TCP); "none" disables it.
  std::string read_only_listen;
  // TLS for TCP (required off loopback): PEM files. With a client CA,
  // clients must present a certificate it signed.
  std::string tls_cert, tls_key, tls_client_ca;
  absl::Duration shutdown_grace = absl::Seconds(10);
  size_t event_history = 4096;
  absl::Duration bookmark_interval = absl::Seconds(10);
  // Largest message either way. Batches (65,536 entries) fit well inside.
  int max_message_bytes = 16 << 20;
  // How often flush and grace-period activity is summarised as events.
  absl::Duration sample_interval = absl::Seconds(1);
  // Prometheus /metrics over HTTP: "HOST:PORT", IPv4 (Debian's civetweb has
  // no IPv6); port 0 picks a free port (metrics_address() tells which);
  // "none" serves none.
  std::string metrics_listen = "127.0.0.1:9464";
};

class Daemon {
 public:
  static constexpr char kServiceName[] = "hvmm.v1.MemoryManager";

  static absl::StatusOr<std::unique_ptr<Daemon>> Start(
      const DaemonOptions& options);
  ~Daemon();  // Shutdown() if not yet done.
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // As clients dial them: "unix:/PATH", or "HOST:PORT" with the port bound.
  const std::string& address() const { return address_; }
  const std::string& read_only_address() const { return read_only_address_; }
  // "HOST:PORT" of /metrics with the port bound; "" if none is served.
  const std::string& metrics_address() const { return metrics_address_; }
  Host& host() { return *host_; }
  EventLog& events() { return *events_; }
  ServiceState& state() { return *state_; }

  // The sequence of the file comment. Returns the audit's status.
  // Idempotent.
  absl::Status Shutdown();

 private:
  Daemon() = default;
  absl::StatusOr<std::unique_ptr<grpc::Server>> Serve(
      const ListenAddress& address, grpc::Service* service,
      std::string* dial_address);
  void SampleLoop();

  DaemonOptions options_;
  std::unique_ptr<Host> host_;
  std::unique_ptr<EventLog> events_;
  std::unique_ptr<ServiceState> state_;
  std::unique_ptr<MemoryManagerService> service_, read_only_service_;
  std::vector<std::unique_ptr<SocketLock>> locks_;
  std::unique_ptr<grpc::Server> server_, read_only_server_;
  std::string address_, read_only_address_, metrics_address_;
  // Metrics: the registry (RPC families) and the host's collector, served
  // by the exposer; declared after host_, so destroyed before it.
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<RpcMetrics> rpc_metrics_;
  std::shared_ptr<HostMetrics> host_metrics_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  absl::Notification stop_sampling_;
  std::thread sampler_;
  bool started_ = false;  // Start() completed.
  bool shut_down_ = false;
  absl::Status shutdown_status_;
};

}  // namespace hvmm

#endif  // HVMM_SERVER_DAEMON_H_
