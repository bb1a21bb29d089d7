// RpcMetrics: gRPC request counts and latencies, as
//   hvmm_grpc_requests_total{method,code}
//   hvmm_grpc_request_duration_seconds{method}
// recorded by a server interceptor (one per call, created when gRPC hands
// the call to a handler) at PRE_SEND_STATUS, so every registered method of
// every service on the server is counted with the status it ended with.
// A stream's duration is its whole life.
//
// `method` is the full gRPC name without the leading '/'
// ("hvmm.v1.MemoryManager/GetDomain"). Names not in the known set (the
// hvmm.v1 service, health, reflection) are counted as "unknown", so a
// client cannot grow the label set.
//
// Thread-safety: everything from any thread; the families live in the
// registry passed in, which must outlive this and the servers using it.
#ifndef HVMM_SERVER_RPC_METRICS_H_
#define HVMM_SERVER_RPC_METRICS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "grpcpp/support/server_interceptor.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace hvmm {

class RpcMetrics {
 public:
  explicit RpcMetrics(prometheus::Registry& registry);

  // One call of `method` ("/pkg.Service/Method") ended with `code` after
  // `seconds`.
  void Record(const char* method, grpc::StatusCode code, double seconds);

  // For grpc::ServerBuilder::experimental().SetInterceptorCreators().
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
  InterceptorFactory();

 private:
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& durations_;
  const absl::flat_hash_set<std::string> known_methods_;
};

}  // namespace hvmm

#endif  // HVMM_SERVER_RPC_METRICS_H_
