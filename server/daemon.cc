#include "server/daemon.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "mm/mm_errors.h"
#include "server/api_errors.h"
#include "server/proto_convert.h"

namespace hvmm {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     absl::string_view what) {
  std::ifstream in(path);
  if (!in) {
    return MalformedArgumentError(
        absl::StrCat("cannot read ", what, " file ", path));
  }
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Start(
    const DaemonOptions& options) {
  std::unique_ptr<Daemon> d(new Daemon());
  d->options_ = options;

  const std::string listen =
      options.listen.empty() ? absl::StrCat("unix:", DefaultSocketPath())
                             : options.listen;
  absl::StatusOr<ListenAddress> main = ParseListenAddress(listen);
  if (!main.ok()) return main.status();
  std::optional<ListenAddress> read_only;
  if (options.read_only_listen.empty()) {
    if (main->kind == ListenAddress::Kind::kUnix) {
      absl::StatusOr<ListenAddress> ro = ParseListenAddress(
          absl::StrCat("unix:", ReadOnlySocketPathFor(main->path)));
      if (!ro.ok()) {
        return MalformedArgumentError(absl::StrCat(
            "the read-only socket beside ", main->path, ": ",
            ro.status().message(), " (shorten --listen or set "
            "--read-only-listen)"));
      }
      read_only = *ro;
    }
  } else if (options.read_only_listen != "none") {
    absl::StatusOr<ListenAddress> ro =
        ParseListenAddress(options.read_only_listen);
    if (!ro.ok()) return ro.status();
    read_only = *ro;
  }
  if (read_only && read_only->GrpcUri() == main->GrpcUri()) {
    return MalformedArgumentError(absl::StrCat(
        "the read-only address must differ from --listen (", main->GrpcUri(),
        ")"));
  }
  const bool any_tcp =
      main->kind == ListenAddress::Kind::kTcp ||
      (read_only && read_only->kind == ListenAddress::Kind::kTcp);
  if (!any_tcp && (!options.tls_cert.empty() || !options.tls_key.empty() ||
                   !options.tls_client_ca.empty())) {
    return MalformedArgumentError(
        "--tls-cert, --tls-key and --tls-client-ca apply to a TCP listen "
        "address only");
  }
  for (const ListenAddress* a : {&*main, read_only ? &*read_only : nullptr}) {
    if (a != nullptr && !a->IsLocal() &&
        (options.tls_cert.empty() || options.tls_key.empty())) {
      return MalformedArgumentError(absl::StrCat(
          "listening on ", a->GrpcUri(), " (not loopback) needs TLS: pass "
          "--tls-cert and --tls-key"));
    }
  }

  std::optional<ListenAddress> metrics;
  if (options.metrics_listen != "none") {
    absl::StatusOr<ListenAddress> m =
        ParseListenAddress(absl::StrCat("tcp:", options.metrics_listen));
    if (!m.ok()) {
      return MalformedArgumentError(
          absl::StrCat("metrics address: ", m.status().message()));
    }
    if (m->host.find(':') != std::string::npos) {
      return MalformedArgumentError(absl::StrCat(
          "metrics address ", options.metrics_listen, ": the metrics server "
          "(prometheus-cpp's civetweb, as Debian builds it) listens on IPv4 "
          "only; use an IPv4 address such as 127.0.0.1:9464"));
    }
    metrics = *m;
  }

  absl::StatusOr<std::unique_ptr<Host>> host = Host::Create(options.host);
  if (!host.ok()) return host.status();
  d->host_ = *std::move(host);
  d->events_ = std::make_unique<EventLog>(options.event_history);
  d->state_ = std::make_unique<ServiceState>(d->host_.get(), d->events_.get());
  d->state_->bookmark_interval = options.bookmark_interval;
  EventLog* events = d->events_.get();
  d->host_->SetViolationListener(
      [events](ViolationKind kind, DomainId domain, Mfn frame, Policy policy) {
        v1::Event e;
        e.set_kind(v1::EVENT_KIND_SAFETY_VIOLATION);
        v1::SafetyViolation* v = e.mutable_safety_violation();
        v->set_domain_id(domain.value());
        v->set_kind(kind == ViolationKind::kExistence
                        ? v1::VIOLATION_KIND_EXISTENCE
                        : v1::VIOLATION_KIND_COHERENCE);
        v->set_mfn(frame.value());
        v->set_policy(PolicyToProto(policy));
        events->Append(std::move(e));
      });
  d->service_ = std::make_unique<MemoryManagerService>(d->state_.get(), false);
  d->read_only_service_ =
      std::make_unique<MemoryManagerService>(d->state_.get(), true);

  d->registry_ = std::make_shared<prometheus::Registry>();
  d->rpc_metrics_ = std::make_unique<RpcMetrics>(*d->registry_);
  d->host_metrics_ =
      std::make_shared<HostMetrics>(HostMetrics::ForHost(d->host_.get()));
  if (metrics) {
    // civetweb takes "HOST:PORT" as GrpcUri() writes it.
    try {
      d->exposer_ = std::make_unique<prometheus::Exposer>(metrics->GrpcUri());
    } catch (const std::exception& e) {
      return absl::UnavailableError(absl::StrCat(
          "cannot serve metrics on ", metrics->GrpcUri(),
          " (in use? another hvmmd? choose another metrics address, port 0 "
          "for a free one, or none): ",
          e.what()));
    }
    const std::vector<int> ports = d->exposer_->GetListeningPorts();
    if (ports.empty()) {
      return absl::UnavailableError(
          absl::StrCat("cannot serve metrics on ", metrics->GrpcUri()));
    }
    metrics->port = ports[0];
    d->metrics_address_ = metrics->GrpcUri();
    d->exposer_->RegisterCollectable(d->registry_);
    d->exposer_->RegisterCollectable(d->host_metrics_);
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  absl::StatusOr<std::unique_ptr<grpc::Server>> server =
      d->Serve(*main, d->service_.get(), &d->address_);
  if (!server.ok()) return server.status();
  d->server_ = *std::move(server);
  if (read_only) {
    absl::StatusOr<std::unique_ptr<grpc::Server>> ro = d->Serve(
        *read_only, d->read_only_service_.get(), &d->read_only_address_);
    if (!ro.ok()) return ro.status();
    d->read_only_server_ = *std::move(ro);
  }
  d->sampler_ = std::thread([raw = d.get()] { raw->SampleLoop(); });
  d->started_ = true;
  return d;
}

absl::StatusOr<std::unique_ptr<grpc::Server>> Daemon::Serve(
    const ListenAddress& address, grpc::Service* service,
    std::string* dial_address) {
  std::shared_ptr<grpc::ServerCredentials> credentials =
      grpc::InsecureServerCredentials();
  if (address.kind == ListenAddress::Kind::kTcp &&
      !options_.tls_cert.empty()) {
    absl::StatusOr<std::string> cert = ReadFile(options_.tls_cert, "TLS cert");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadFile(options_.tls_key, "TLS key");
    if (!key.ok()) return key.status();
    grpc::SslServerCredentialsOptions ssl(
        GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    ssl.pem_key_cert_pairs.push_back({*key, *cert});
    if (!options_.tls_client_ca.empty()) {
      absl::StatusOr<std::string> ca =
          ReadFile(options_.tls_client_ca, "TLS client CA");
      if (!ca.ok()) return ca.status();
      ssl.pem_root_certs = *ca;
      ssl.client_certificate_request =
          GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    credentials = grpc::SslServerCredentials(ssl);
  }
  std::unique_ptr<ScopedSocketUmask> umask;
  if (address.kind == ListenAddress::Kind::kUnix) {
    absl::StatusOr<std::unique_ptr<SocketLock>> lock =
        PrepareUnixSocket(address.path);
    if (!lock.ok()) return lock.status();
    locks_.push_back(*std::move(lock));
    umask = std::make_unique<ScopedSocketUmask>();
  }
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(address.GrpcUri(), credentials, &port);
  builder.RegisterService(service);
  builder.SetMaxReceiveMessageSize(options_.max_message_bytes);
  builder.SetMaxSendMessageSize(options_.max_message_bytes);
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(rpc_metrics_->InterceptorFactory());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  umask.reset();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address.GrpcUri()));
  }
  server->GetHealthCheckService()->SetServingStatus(kServiceName, true);
  server->GetHealthCheckService()->SetServingStatus("", true);
  if (address.kind == ListenAddress::Kind::kTcp) {
    ListenAddress bound = address;
    bound.port = port;
    *dial_address = bound.GrpcUri();
  } else {
    *dial_address = address.GrpcUri();
  }
  return server;
}

void Daemon::SampleLoop() {
  uint64_t grace = host_->engine().grace().completed();
  uint64_t ipi = host_->engine().ipi_batcher().backend_calls();
  uint64_t assisted = host_->engine().assisted_batcher().backend_calls();
  uint64_t requests = host_->engine().ipi_batcher().requests() +
                      host_->engine().assisted_batcher().requests();
  while (!stop_sampling_.WaitForNotificationWithTimeout(
      options_.sample_interval)) {
    FlushEngine& engine = host_->engine();
    const uint64_t g = engine.grace().completed();
    if (g != grace) {
      v1::Event e;
      e.set_kind(v1::EVENT_KIND_GRACE_PERIODS);
      e.mutable_grace_periods()->set_completed(g - grace);
      ToProto(absl::Nanoseconds(engine.grace().LatencyQuantileNs(1.0)),
              e.mutable_grace_periods()->mutable_max_latency());
      events_->Append(std::move(e));
      grace = g;
    }
    const uint64_t i = engine.ipi_batcher().backend_calls();
    const uint64_t a = engine.assisted_batcher().backend_calls();
    const uint64_t r =
        engine.ipi_batcher().requests() + engine.assisted_batcher().requests();
    if (i != ipi || a != assisted) {
      v1::Event e;
      e.set_kind(v1::EVENT_KIND_FLUSH_BATCHES);
      e.mutable_flush_batches()->set_ipi_batches(i - ipi);
      e.mutable_flush_batches()->set_assisted_batches(a - assisted);
      e.mutable_flush_batches()->set_requests(r - requests);
      events_->Append(std::move(e));
      ipi = i;
      assisted = a;
      requests = r;
    }
  }
}

absl::Status Daemon::Shutdown() {
  if (shut_down_) return shutdown_status_;
  shut_down_ = true;
  if (!started_) {
    // Start() failed part-way: stop what it built, in reverse.
    for (grpc::Server* s : {server_.get(), read_only_server_.get()}) {
      if (s != nullptr) s->Shutdown();
    }
    exposer_.reset();
    if (host_ != nullptr) shutdown_status_ = host_->Shutdown();
    locks_.clear();
    return shutdown_status_;
  }
  // 1. Health first, then refuse new calls.
  for (grpc::Server* s : {server_.get(), read_only_server_.get()}) {
    if (s != nullptr) s->GetHealthCheckService()->SetServingStatus(false);
  }
  state_->draining.store(true, std::memory_order_release);
  // 2. Watch streams notice draining at their next wake-up; Close() wakes
  // them now. In-flight calls get the grace period.
  events_->Close();
  // Until every running handler is done, the listeners stay open: callers
  // meanwhile get DRAINING and NOT_SERVING rather than a refused connection.
  const absl::Time deadline = absl::Now() + options_.shutdown_grace;
  state_->AwaitNoCalls(deadline);
  for (grpc::Server* s : {server_.get(), read_only_server_.get()}) {
    if (s != nullptr) s->Shutdown(absl::ToChronoTime(deadline));
  }
  for (grpc::Server* s : {server_.get(), read_only_server_.get()}) {
    if (s != nullptr) s->Wait();
  }
  stop_sampling_.Notify();
  if (sampler_.joinable()) sampler_.join();
  // 3 and 4.
  shutdown_status_ = host_->Shutdown();
  // 5.
  exposer_.reset();
  locks_.clear();
  return shutdown_status_;
}

Daemon::~Daemon() { (void)Shutdown(); }

}  // namespace hvmm
