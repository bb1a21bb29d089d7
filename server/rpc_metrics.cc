#include "server/rpc_metrics.h"

#include <chrono>

#include "google/protobuf/descriptor.h"
#include "hvmm/v1/hvmm.pb.h"
#include "server/grpc_status.h"

namespace hvmm {
namespace {

absl::flat_hash_set<std::string> KnownMethods() {
  absl::flat_hash_set<std::string> known = {
      "grpc.health.v1.Health/Check",
      "grpc.health.v1.Health/Watch",
      "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
  };
  const google::protobuf::ServiceDescriptor* service =
      v1::ErrorInfo::descriptor()->file()->FindServiceByName("MemoryManager");
  for (int i = 0; i < service->method_count(); ++i) {
    known.insert(service->full_name() + "/" + service->method(i)->name());
  }
  return known;
}

// Seconds: 100 us .. 60 s. A unary call on a Unix socket takes ~150 us;
// batched updates and Translate take milliseconds; watches last minutes
// (they land in +Inf).
const prometheus::Histogram::BucketBoundaries& DurationBuckets() {
  static const auto* const kBuckets =
      new prometheus::Histogram::BucketBoundaries{
          0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
          0.1,    0.25,    0.5,    1,     2.5,    5,     10,   60};
  return *kBuckets;
}

class RpcMetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  RpcMetricsInterceptor(RpcMetrics* metrics, const char* method)
      : metrics_(metrics),
        method_(method),
        start_(std::chrono::steady_clock::now()) {}

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const std::chrono::duration<double> elapsed =
          std::chrono::steady_clock::now() - start_;
      metrics_->Record(method_, methods->GetSendStatus().error_code(),
                       elapsed.count());
    }
    methods->Proceed();
  }

 private:
  RpcMetrics* const metrics_;
  const char* const method_;  // gRPC's, valid for the call.
  const std::chrono::steady_clock::time_point start_;
};

class RpcMetricsInterceptorFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcMetricsInterceptorFactory(RpcMetrics* metrics)
      : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RpcMetricsInterceptor(metrics_, info->method());
  }

 private:
  RpcMetrics* const metrics_;
};

}  // namespace

RpcMetrics::RpcMetrics(prometheus::Registry& registry)
    : requests_(prometheus::BuildCounter()
                    .Name("hvmm_grpc_requests_total")
                    .Help("gRPC calls handled, by method and the status "
                          "code they ended with.")
                    .Register(registry)),
      durations_(prometheus::BuildHistogram()
                     .Name("hvmm_grpc_request_duration_seconds")
                     .Help("Time from a call's start until its status was "
                           "sent, by method (a stream: its whole life).")
                     .Register(registry)),
      known_methods_(KnownMethods()) {}

void RpcMetrics::Record(const char* method, grpc::StatusCode code,
                        double seconds) {
  std::string name = method != nullptr && method[0] == '/' ? method + 1 : "";
  if (!known_methods_.contains(name)) name = "unknown";
  requests_.Add({{"method", name}, {"code", GrpcCodeName(code)}}).Increment();
  durations_.Add({{"method", name}}, DurationBuckets()).Observe(seconds);
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
RpcMetrics::InterceptorFactory() {
  return std::make_unique<RpcMetricsInterceptorFactory>(this);
}

}  // namespace hvmm
