// MemoryManagerService: the hvmm.v1.MemoryManager gRPC service over a Host.
//
// Every call checks its input, calls the engine, and maps the outcome
// through ToGrpcStatus (grpc_status.h), the one place codes and reasons are
// decided. Mutations with a request_id go through the RequestLog
// (idempotency); List calls page with PageTokens; state changes are
// appended to the EventLog for WatchEvents.
//
// One daemon runs two instances over one ServiceState: the read-write one
// and, on the read-only socket, one that answers every mutation (and Flush,
// Audit) with PERMISSION_DENIED (READ_ONLY_SOCKET).
//
// Draining: once ServiceState::draining is set, every new call gets
// UNAVAILABLE (DRAINING), and WatchEvents streams end with it.
//
// Thread-safety: gRPC calls the handlers from many threads at once; all
// shared state is in ServiceState, which is thread-safe.
#ifndef HVMM_SERVER_SERVICE_H_
#define HVMM_SERVER_SERVICE_H_

#include <atomic>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "hvmm/v1/hvmm.grpc.pb.h"
#include "server/event_log.h"
#include "server/host.h"
#include "server/page_token.h"
#include "server/request_log.h"

namespace hvmm {

struct ServiceState {
  ServiceState(Host* host, EventLog* events) : host(host), events(events) {}

  Host* const host;
  EventLog* const events;
  RequestLog requests;
  PageTokens tokens;
  std::atomic<bool> draining{false};
  // An idle WatchEvents stream gets a bookmark this often.
  absl::Duration bookmark_interval = absl::Seconds(10);
  // How often a waiting WatchEvents handler checks for cancellation.
  absl::Duration watch_poll = absl::Milliseconds(200);

  // Handlers running (WatchEvents streams included), so that shutdown
  // keeps the listener open, answering DRAINING, until they end.
  void CallStarted() {
    absl::MutexLock lock(&calls_mu);
    ++running_calls;
  }
  void CallEnded() {
    absl::MutexLock lock(&calls_mu);
    --running_calls;
  }
  // Returns whether every handler ended before `deadline`.
  bool AwaitNoCalls(absl::Time deadline) {
    absl::MutexLock lock(&calls_mu);
    auto none = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(calls_mu) {
      return running_calls == 0;
    };
    return calls_mu.AwaitWithDeadline(absl::Condition(&none), deadline);
  }
  absl::Mutex calls_mu;
  int running_calls ABSL_GUARDED_BY(calls_mu) = 0;
};

class MemoryManagerService final : public v1::MemoryManager::Service {
 public:
  MemoryManagerService(ServiceState* state, bool read_only)
      : state_(state), read_only_(read_only) {}

  grpc::Status CreateDomain(grpc::ServerContext* ctx,
                            const v1::CreateDomainRequest* req,
                            v1::CreateDomainResponse* resp) override;
  grpc::Status GetDomain(grpc::ServerContext* ctx,
                         const v1::GetDomainRequest* req,
                         v1::GetDomainResponse* resp) override;
  grpc::Status ListDomains(grpc::ServerContext* ctx,
                           const v1::ListDomainsRequest* req,
                           v1::ListDomainsResponse* resp) override;
  grpc::Status DestroyDomain(grpc::ServerContext* ctx,
                             const v1::DestroyDomainRequest* req,
                             v1::DestroyDomainResponse* resp) override;
  grpc::Status AllocatePages(grpc::ServerContext* ctx,
                             const v1::AllocatePagesRequest* req,
                             v1::AllocatePagesResponse* resp) override;
  grpc::Status ReleasePages(grpc::ServerContext* ctx,
                            const v1::ReleasePagesRequest* req,
                            v1::ReleasePagesResponse* resp) override;
  grpc::Status MmuUpdate(grpc::ServerContext* ctx,
                         const v1::MmuUpdateRequest* req,
                         v1::MmuUpdateResponse* resp) override;
  grpc::Status Pin(grpc::ServerContext* ctx, const v1::PinRequest* req,
                   v1::PinResponse* resp) override;
  grpc::Status Unpin(grpc::ServerContext* ctx, const v1::UnpinRequest* req,
                     v1::UnpinResponse* resp) override;
  grpc::Status SetBasePointer(grpc::ServerContext* ctx,
                              const v1::SetBasePointerRequest* req,
                              v1::SetBasePointerResponse* resp) override;
  grpc::Status MapRange(grpc::ServerContext* ctx,
                        const v1::MapRangeRequest* req,
                        v1::MapRangeResponse* resp) override;
  grpc::Status UnmapRange(grpc::ServerContext* ctx,
                          const v1::UnmapRangeRequest* req,
                          v1::UnmapRangeResponse* resp) override;
  grpc::Status GetFrame(grpc::ServerContext* ctx,
                        const v1::GetFrameRequest* req,
                        v1::GetFrameResponse* resp) override;
  grpc::Status Translate(grpc::ServerContext* ctx,
                         const v1::TranslateRequest* req,
                         v1::TranslateResponse* resp) override;
  grpc::Status Flush(grpc::ServerContext* ctx, const v1::FlushRequest* req,
                     v1::FlushResponse* resp) override;
  grpc::Status SetFlushPolicy(grpc::ServerContext* ctx,
                              const v1::SetFlushPolicyRequest* req,
                              v1::SetFlushPolicyResponse* resp) override;
  grpc::Status StartWorkload(grpc::ServerContext* ctx,
                             const v1::StartWorkloadRequest* req,
                             v1::StartWorkloadResponse* resp) override;
  grpc::Status StopWorkload(grpc::ServerContext* ctx,
                            const v1::StopWorkloadRequest* req,
                            v1::StopWorkloadResponse* resp) override;
  grpc::Status GetStats(grpc::ServerContext* ctx,
                        const v1::GetStatsRequest* req,
                        v1::GetStatsResponse* resp) override;
  grpc::Status Audit(grpc::ServerContext* ctx, const v1::AuditRequest* req,
                     v1::AuditResponse* resp) override;
  grpc::Status WatchEvents(
      grpc::ServerContext* ctx, const v1::WatchEventsRequest* req,
      grpc::ServerWriter<v1::WatchEventsResponse>* writer) override;

 private:
  // OK, or why a call may not start: draining, or its deadline passed.
  absl::Status Admit(grpc::ServerContext* ctx) const;
  // A read: Admit, then `body`.
  grpc::Status Read(grpc::ServerContext* ctx,
                    const std::function<absl::Status()>& body);
  // A change without a request_id (Flush): read-only refusal, Admit,
  // `body`.
  grpc::Status Change(grpc::ServerContext* ctx, const char* method,
                      const std::function<absl::Status()>& body);
  // A mutation: read-only refusal, Admit, then `body` at most once per
  // request_id (RequestLog), replaying the first response into `resp`.
  grpc::Status Mutate(grpc::ServerContext* ctx, const char* method,
                      const google::protobuf::Message& req,
                      const std::string& request_id,
                      google::protobuf::Message* resp,
                      const std::function<absl::Status()>& body);

  // Fills `out` for a live domain; kNotFound otherwise.
  absl::Status FillDomain(DomainId id, v1::Domain* out) const;

  ServiceState* const state_;
  const bool read_only_;
};

}  // namespace hvmm

#endif  // HVMM_SERVER_SERVICE_H_
