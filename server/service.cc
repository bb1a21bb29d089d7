#include "server/service.h"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "mm/address_space.h"
#include "mm/mm_errors.h"
#include "server/api_errors.h"
#include "server/grpc_status.h"
#include "server/proto_convert.h"

namespace hvmm {
namespace {

constexpr char kListDomains[] = "ListDomains";

// Same message, same bytes: the RequestLog compares requests this way.
std::string DeterministicBytes(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  m.SerializeToCodedStream(&coded);
  coded.Trim();
  return out;
}

v1::TranslateOutcome OutcomeToProto(WalkOutcome o) {
  switch (o) {
    case WalkOutcome::kOk: return v1::TRANSLATE_OUTCOME_OK;
    case WalkOutcome::kNotPresent: return v1::TRANSLATE_OUTCOME_NOT_PRESENT;
    case WalkOutcome::kWriteProtected:
      return v1::TRANSLATE_OUTCOME_WRITE_PROTECTED;
    case WalkOutcome::kNoBasePointer:
      return v1::TRANSLATE_OUTCOME_NO_BASE_POINTER;
    case WalkOutcome::kUnstable: return v1::TRANSLATE_OUTCOME_UNSTABLE;
    default: return v1::TRANSLATE_OUTCOME_UNSPECIFIED;
  }
}

v1::Event MakeEvent(v1::EventKind kind) {
  v1::Event e;
  e.set_kind(kind);
  return e;
}

// Counts a handler as running for its whole body (ServiceState).
class RunningCall {
 public:
  explicit RunningCall(ServiceState* state) : state_(state) {
    state_->CallStarted();
  }
  ~RunningCall() { state_->CallEnded(); }
  RunningCall(const RunningCall&) = delete;
  RunningCall& operator=(const RunningCall&) = delete;

 private:
  ServiceState* const state_;
};

}  // namespace

absl::Status MemoryManagerService::Admit(grpc::ServerContext* ctx) const {
  if (state_->draining.load(std::memory_order_acquire)) return DrainingError();
  if (ctx->deadline() <= std::chrono::system_clock::now()) {
    return WithErrorReason(
        absl::DeadlineExceededError("the call's deadline passed on arrival"),
        "DEADLINE_EXCEEDED");
  }
  return absl::OkStatus();
}

grpc::Status MemoryManagerService::Read(
    grpc::ServerContext* ctx, const std::function<absl::Status()>& body) {
  RunningCall running(state_);
  if (absl::Status s = Admit(ctx); !s.ok()) return ToGrpcStatus(s, ctx);
  return ToGrpcStatus(body(), ctx);
}

grpc::Status MemoryManagerService::Change(
    grpc::ServerContext* ctx, const char* method,
    const std::function<absl::Status()>& body) {
  if (read_only_) return ToGrpcStatus(ReadOnlySocketError(method), ctx);
  return Read(ctx, body);
}

grpc::Status MemoryManagerService::Mutate(
    grpc::ServerContext* ctx, const char* method,
    const google::protobuf::Message& req, const std::string& request_id,
    google::protobuf::Message* resp, const std::function<absl::Status()>& body) {
  RunningCall running(state_);
  if (read_only_) return ToGrpcStatus(ReadOnlySocketError(method), ctx);
  if (absl::Status s = Admit(ctx); !s.ok()) return ToGrpcStatus(s, ctx);
  if (request_id.empty()) return ToGrpcStatus(body(), ctx);
  if (request_id.size() > kMaxRequestIdBytes) {
    return ToGrpcStatus(RequestIdTooLongError(request_id.size()), ctx);
  }
  const std::string key = absl::StrCat(method, "/", request_id);
  absl::StatusOr<RequestLog::Ticket> ticket =
      state_->requests.Begin(key, DeterministicBytes(req),
                             absl::FromChrono(ctx->deadline()));
  if (!ticket.ok()) return ToGrpcStatus(ticket.status(), ctx);
  if (!ticket->first) {
    resp->ParseFromString(ticket->response);
    return grpc::Status::OK;
  }
  const absl::Status s = body();
  state_->requests.End(key, s.ok(), s.ok() ? DeterministicBytes(*resp) : "");
  return ToGrpcStatus(s, ctx);
}

absl::Status MemoryManagerService::FillDomain(DomainId id,
                                              v1::Domain* out) const {
  Host& host = *state_->host;
  absl::StatusOr<DomainInfo> info = host.mm().GetDomainInfo(id);
  if (!info.ok()) return info.status();
  absl::StatusOr<Policy> policy = host.PolicyOf(id);
  if (!policy.ok()) return policy.status();
  out->set_domain_id(id.value());
  out->set_name(info->name);
  out->set_vcpus(info->vcpus);
  out->set_max_pages(info->max_pages);
  out->set_tot_pages(info->tot_pages);
  out->set_policy(PolicyToProto(*policy));
  if (info->root) out->set_root_mfn(info->root->value());
  const absl::Time created = host.CreateTimeOf(id);
  if (created != absl::InfinitePast()) {
    ToProto(created, out->mutable_create_time());
  }
  out->set_workload_running(host.WorkloadRunning(id));
  return absl::OkStatus();
}

// ------------------------------------------------------------- domains --

grpc::Status MemoryManagerService::CreateDomain(
    grpc::ServerContext* ctx, const v1::CreateDomainRequest* req,
    v1::CreateDomainResponse* resp) {
  return Mutate(ctx, "CreateDomain", *req, req->request_id(), resp, [&] {
    std::optional<Policy> policy;
    if (req->has_policy()) {
      absl::StatusOr<Policy> p = PolicyFromProto(req->policy(), "policy");
      if (!p.ok()) return p.status();
      policy = *p;
    }
    absl::StatusOr<DomainId> id = state_->host->CreateDomain(
        req->name(), req->vcpus(), req->max_pages(), policy);
    if (!id.ok()) return id.status();
    if (absl::Status s = FillDomain(*id, resp->mutable_domain()); !s.ok()) {
      return s;
    }
    v1::Event e = MakeEvent(v1::EVENT_KIND_DOMAIN_CREATED);
    *e.mutable_domain_created()->mutable_domain() = resp->domain();
    state_->events->Append(std::move(e));
    return absl::OkStatus();
  });
}

grpc::Status MemoryManagerService::GetDomain(grpc::ServerContext* ctx,
                                             const v1::GetDomainRequest* req,
                                             v1::GetDomainResponse* resp) {
  return Read(ctx, [&]() -> absl::Status {
    switch (req->domain_case()) {
      case v1::GetDomainRequest::kDomainId:
        return FillDomain(DomainId(req->domain_id()), resp->mutable_domain());
      case v1::GetDomainRequest::kName:
        for (const DomainInfo& d : state_->host->mm().ListDomains()) {
          if (d.name == req->name()) {
            return FillDomain(d.id, resp->mutable_domain());
          }
        }
        return UnknownDomainNameError(req->name());
      default:
        return MissingFieldError("domain (domain_id or name)");
    }
  });
}

grpc::Status MemoryManagerService::ListDomains(
    grpc::ServerContext* ctx, const v1::ListDomainsRequest* req,
    v1::ListDomainsResponse* resp) {
  return Read(ctx, [&]() -> absl::Status {
    absl::StatusOr<int32_t> size = EffectivePageSize(req->page_size());
    if (!size.ok()) return size.status();
    absl::StatusOr<uint64_t> after =
        state_->tokens.Parse(kListDomains, req->page_token());
    if (!after.ok()) return after.status();
    resp->set_revision(state_->events->head());
    std::vector<DomainInfo> all = state_->host->mm().ListDomains();
    std::sort(all.begin(), all.end(),
              [](const DomainInfo& a, const DomainInfo& b) {
                return a.id < b.id;
              });
    auto it = std::upper_bound(all.begin(), all.end(), *after,
                               [](uint64_t v, const DomainInfo& d) {
                                 return v < d.id.value();
                               });
    for (; it != all.end() && resp->domains_size() < *size; ++it) {
      // A domain destroyed since ListDomains() is simply left out.
      v1::Domain d;
      if (FillDomain(it->id, &d).ok()) *resp->add_domains() = std::move(d);
    }
    if (it != all.end()) {
      resp->set_next_page_token(
          state_->tokens.Issue(kListDomains, std::prev(it)->id.value()));
    }
    return absl::OkStatus();
  });
}

grpc::Status MemoryManagerService::DestroyDomain(
    grpc::ServerContext* ctx, const v1::DestroyDomainRequest* req,
    v1::DestroyDomainResponse* resp) {
  return Mutate(ctx, "DestroyDomain", *req, req->request_id(), resp, [&] {
    const DomainId id(req->domain_id());
    absl::StatusOr<DomainInfo> info = state_->host->mm().GetDomainInfo(id);
    if (!info.ok()) return info.status();
    absl::StatusOr<uint64_t> released = state_->host->DestroyDomain(id);
    if (!released.ok()) return released.status();
    resp->set_frames_released(*released);
    v1::Event e = MakeEvent(v1::EVENT_KIND_DOMAIN_DESTROYED);
    e.mutable_domain_destroyed()->set_domain_id(id.value());
    e.mutable_domain_destroyed()->set_name(info->name);
    state_->events->Append(std::move(e));
    return absl::OkStatus();
  });
}

// -------------------------------------------------------------- memory --

grpc::Status MemoryManagerService::AllocatePages(
    grpc::ServerContext* ctx, const v1::AllocatePagesRequest* req,
    v1::AllocatePagesResponse* resp) {
  return Mutate(ctx, "AllocatePages", *req, req->request_id(), resp, [&] {
    absl::StatusOr<std::vector<Mfn>> frames =
        state_->host->mm().IncreaseReservation(DomainId(req->domain_id()),
                                               req->count());
    if (!frames.ok()) return frames.status();
    resp->mutable_mfns()->Reserve(static_cast<int>(frames->size()));
    for (Mfn m : *frames) resp->add_mfns(m.value());
    return absl::OkStatus();
  });
}

grpc::Status MemoryManagerService::ReleasePages(
    grpc::ServerContext* ctx, const v1::ReleasePagesRequest* req,
    v1::ReleasePagesResponse* resp) {
  return Mutate(ctx, "ReleasePages", *req, req->request_id(), resp, [&] {
    std::vector<Mfn> frames;
    frames.reserve(req->mfns_size());
    for (uint64_t m : req->mfns()) frames.push_back(Mfn(m));
    absl::Status s = state_->host->mm().DecreaseReservation(
        DomainId(req->domain_id()), frames);
    if (s.ok()) resp->set_released_count(frames.size());
    return s;
  });
}

// --------------------------------------------------------- page tables --

grpc::Status MemoryManagerService::MmuUpdate(grpc::ServerContext* ctx,
                                             const v1::MmuUpdateRequest* req,
                                             v1::MmuUpdateResponse* resp) {
  return Mutate(ctx, "MmuUpdate", *req, req->request_id(), resp, [&] {
    std::vector<EntryUpdate> updates;
    updates.reserve(req->updates_size());
    for (const v1::EntryUpdate& u : req->updates()) {
      updates.push_back({Mfn(u.table_mfn()), u.index(), u.entry()});
    }
    absl::Status s =
        state_->host->mm().MmuUpdate(DomainId(req->domain_id()), updates);
    if (s.ok()) resp->set_applied_count(static_cast<uint32_t>(updates.size()));
    return s;
  });
}

grpc::Status MemoryManagerService::Pin(grpc::ServerContext* ctx,
                                       const v1::PinRequest* req,
                                       v1::PinResponse* resp) {
  return Mutate(ctx, "Pin", *req, req->request_id(), resp, [&] {
    absl::StatusOr<Level> level = LevelFromProto(req->level(), "level");
    if (!level.ok()) return level.status();
    return state_->host->mm().PinTable(DomainId(req->domain_id()),
                                       Mfn(req->mfn()), *level);
  });
}

grpc::Status MemoryManagerService::Unpin(grpc::ServerContext* ctx,
                                         const v1::UnpinRequest* req,
                                         v1::UnpinResponse* resp) {
  return Mutate(ctx, "Unpin", *req, req->request_id(), resp, [&] {
    return state_->host->mm().UnpinTable(DomainId(req->domain_id()),
                                         Mfn(req->mfn()));
  });
}

grpc::Status MemoryManagerService::SetBasePointer(
    grpc::ServerContext* ctx, const v1::SetBasePointerRequest* req,
    v1::SetBasePointerResponse* resp) {
  return Mutate(ctx, "SetBasePointer", *req, req->request_id(), resp,
                [&]() -> absl::Status {
                  std::optional<Mfn> root;
                  switch (req->target_case()) {
                    case v1::SetBasePointerRequest::kRootMfn:
                      root = Mfn(req->root_mfn());
                      break;
                    case v1::SetBasePointerRequest::kNoRoot:
                      break;
                    default:
                      return MissingFieldError("target (root_mfn or no_root)");
                  }
                  return state_->host->mm().SetBasePointer(
                      DomainId(req->domain_id()), VcpuId(req->vcpu()), root);
                });
}

grpc::Status MemoryManagerService::MapRange(grpc::ServerContext* ctx,
                                            const v1::MapRangeRequest* req,
                                            v1::MapRangeResponse* resp) {
  return Mutate(ctx, "MapRange", *req, req->request_id(), resp,
                [&]() -> absl::Status {
                  if (req->access() != v1::MAPPING_ACCESS_READ_ONLY &&
                      req->access() != v1::MAPPING_ACCESS_READ_WRITE) {
                    return UnspecifiedEnumError("access");
                  }
                  absl::StatusOr<MapRangeResult> r = state_->host->mm().MapRange(
                      DomainId(req->domain_id()), Vaddr(req->start_va()),
                      req->page_count(),
                      req->access() == v1::MAPPING_ACCESS_READ_WRITE);
                  if (!r.ok()) return r.status();
                  resp->set_pages_mapped(r->pages_mapped);
                  resp->set_tables_created(r->tables_created);
                  return absl::OkStatus();
                });
}

grpc::Status MemoryManagerService::UnmapRange(grpc::ServerContext* ctx,
                                              const v1::UnmapRangeRequest* req,
                                              v1::UnmapRangeResponse* resp) {
  return Mutate(ctx, "UnmapRange", *req, req->request_id(), resp,
                [&]() -> absl::Status {
                  absl::StatusOr<UnmapRangeResult> r =
                      state_->host->mm().UnmapRange(DomainId(req->domain_id()),
                                                    Vaddr(req->start_va()),
                                                    req->page_count());
                  if (!r.ok()) return r.status();
                  resp->set_pages_unmapped(r->pages_unmapped);
                  resp->set_tables_unhooked(r->tables_unhooked);
                  resp->set_frames_released(r->frames_released);
                  return absl::OkStatus();
                });
}

grpc::Status MemoryManagerService::GetFrame(grpc::ServerContext* ctx,
                                            const v1::GetFrameRequest* req,
                                            v1::GetFrameResponse* resp) {
  return Read(ctx, [&]() -> absl::Status {
    absl::StatusOr<FrameSnapshot> f =
        state_->host->mm().InspectFrame(Mfn(req->mfn()));
    if (!f.ok()) return f.status();
    v1::Frame* out = resp->mutable_frame();
    out->set_mfn(req->mfn());
    out->set_owner_domain_id(f->owner.value());
    out->set_count(f->count);
    out->set_type_count(f->type_count);
    out->set_type(PageTypeToProto(f->type));
    out->set_validated(f->validated);
    out->set_pinned(f->pinned);
    out->set_retiring(f->retiring);
    out->set_generation(f->generation);
    out->set_tlbflush_timestamp(f->tlbflush_timestamp.value());
    return absl::OkStatus();
  });
}

// ---------------------------------------------- translation and flushes --

grpc::Status MemoryManagerService::Translate(grpc::ServerContext* ctx,
                                             const v1::TranslateRequest* req,
                                             v1::TranslateResponse* resp) {
  return Read(ctx, [&]() -> absl::Status {
    absl::StatusOr<Access> access = AccessFromProto(req->access(), "access");
    if (!access.ok()) return access.status();
    absl::StatusOr<Translation> t = state_->host->Translate(
        DomainId(req->domain_id()), VcpuId(req->vcpu()), Vaddr(req->va()),
        *access, absl::FromChrono(ctx->deadline()));
    if (!t.ok()) return t.status();
    const WalkResult& w = t->walk;
    if (w.outcome == WalkOutcome::kBadFrame) {
      return absl::InternalError(absl::StrCat(
          "walk of 0x", absl::Hex(req->va()), " met an entry beyond the "
          "frame table (an mm invariant is broken)"));
    }
    resp->set_outcome(OutcomeToProto(w.outcome));
    resp->set_pcpu(t->pcpu.value());
    for (uint32_t i = 0; i < w.tables_read; ++i) {
      resp->add_table_mfns(w.tables[i].value());
    }
    if (w.ok()) {
      resp->set_mfn(w.mfn.value());
      resp->set_physical_address((w.mfn.value() << 12) | (req->va() & 0xfff));
      resp->set_writable(w.writable);
    } else if (w.outcome == WalkOutcome::kNotPresent ||
               w.outcome == WalkOutcome::kWriteProtected) {
      resp->set_fault_level(LevelToProto(w.fault_level));
    }
    return absl::OkStatus();
  });
}

grpc::Status MemoryManagerService::Flush(grpc::ServerContext* ctx,
                                         const v1::FlushRequest* req,
                                         v1::FlushResponse* resp) {
  return Change(ctx, "Flush", [&]() -> absl::Status {
    const DomainId id(req->domain_id());
    std::shared_ptr<Domain> domain = state_->host->mm().FindDomain(id);
    if (domain == nullptr) return UnknownDomainError(id);
    FlushScope scope;
    switch (req->scope_case()) {
      case v1::FlushRequest::kAll:
        scope = FlushScope::Domain(id);
        break;
      case v1::FlushRequest::kRange: {
        const Vaddr start(req->range().start_va());
        if (absl::Status s = CheckRange(start, req->range().page_count());
            !s.ok()) {
          return s;
        }
        scope = FlushScope::Range(id, start, req->range().page_count());
        break;
      }
      default:
        return MissingFieldError("scope (all or range)");
    }
    const FlushPolicy::ExplicitFlushResult r =
        state_->host->engine().policy().ExplicitFlush(*domain, scope);
    resp->set_pcpus_targeted(static_cast<uint32_t>(r.pcpus_targeted));
    resp->set_backend(r.by_ipi ? v1::FLUSH_BACKEND_IPI
                               : v1::FLUSH_BACKEND_ASSISTED);
    return absl::OkStatus();
  });
}

// --------------------------------------------------------------- policy --

grpc::Status MemoryManagerService::SetFlushPolicy(
    grpc::ServerContext* ctx, const v1::SetFlushPolicyRequest* req,
    v1::SetFlushPolicyResponse* resp) {
  return Mutate(ctx, "SetFlushPolicy", *req, req->request_id(), resp,
                [&]() -> absl::Status {
                  absl::StatusOr<Policy> policy =
                      PolicyFromProto(req->policy(), "policy");
                  if (!policy.ok()) return policy.status();
                  const DomainId id(req->domain_id());
                  absl::StatusOr<Policy> previous =
                      state_->host->SetFlushPolicy(id, *policy);
                  if (!previous.ok()) return previous.status();
                  resp->set_previous_policy(PolicyToProto(*previous));
                  (void)FillDomain(id, resp->mutable_domain());
                  v1::Event e = MakeEvent(v1::EVENT_KIND_POLICY_CHANGED);
                  e.mutable_policy_changed()->set_domain_id(id.value());
                  e.mutable_policy_changed()->set_previous_policy(
                      PolicyToProto(*previous));
                  e.mutable_policy_changed()->set_policy(
                      PolicyToProto(*policy));
                  state_->events->Append(std::move(e));
                  return absl::OkStatus();
                });
}

// ------------------------------------------------------------ workloads --

grpc::Status MemoryManagerService::StartWorkload(
    grpc::ServerContext* ctx, const v1::StartWorkloadRequest* req,
    v1::StartWorkloadResponse* resp) {
  return Mutate(ctx, "StartWorkload", *req, req->request_id(), resp,
                [&]() -> absl::Status {
                  absl::StatusOr<AccessPattern> pattern =
                      PatternFromProto(req->pattern(), "pattern");
                  if (!pattern.ok()) return pattern.status();
                  WorkloadConfig config;
                  config.accesses_per_second = req->rate();
                  config.pattern = *pattern;
                  config.write_fraction = req->write_fraction();
                  for (const v1::PageRange& r : req->ranges()) {
                    config.ranges.push_back({Vaddr(r.start_va()), r.page_count()});
                  }
                  const DomainId id(req->domain_id());
                  if (absl::Status s = state_->host->StartWorkload(id, config);
                      !s.ok()) {
                    return s;
                  }
                  v1::Event e = MakeEvent(v1::EVENT_KIND_WORKLOAD_STARTED);
                  e.mutable_workload_changed()->set_domain_id(id.value());
                  state_->events->Append(std::move(e));
                  return absl::OkStatus();
                });
}

grpc::Status MemoryManagerService::StopWorkload(
    grpc::ServerContext* ctx, const v1::StopWorkloadRequest* req,
    v1::StopWorkloadResponse* resp) {
  return Mutate(ctx, "StopWorkload", *req, req->request_id(), resp, [&] {
    const DomainId id(req->domain_id());
    if (absl::Status s = state_->host->StopWorkload(id); !s.ok()) return s;
    v1::Event e = MakeEvent(v1::EVENT_KIND_WORKLOAD_STOPPED);
    e.mutable_workload_changed()->set_domain_id(id.value());
    state_->events->Append(std::move(e));
    return absl::OkStatus();
  });
}

// ---------------------------------------------------------------- stats --

grpc::Status MemoryManagerService::GetStats(grpc::ServerContext* ctx,
                                            const v1::GetStatsRequest* req,
                                            v1::GetStatsResponse* resp) {
  return Read(ctx, [&]() -> absl::Status {
    Host& host = *state_->host;
    if (req->has_domain_id()) {
      absl::StatusOr<DomainStatsSnapshot> d =
          host.DomainStats(DomainId(req->domain_id()));
      if (!d.ok()) return d.status();
      v1::DomainStats* out = resp->mutable_domain();
      if (absl::Status s = FillDomain(d->info.id, out->mutable_domain());
          !s.ok()) {
        return s;
      }
      out->set_pending_deferred_frees(d->pending_frees);
      out->mutable_violations()->set_existence(d->existence_violations);
      out->mutable_violations()->set_coherence(d->coherence_violations);
    }
    const HostStats s = host.Stats();
    ToProto(s.uptime, resp->mutable_uptime());
    resp->set_pcpus(static_cast<uint32_t>(s.pcpus));
    resp->set_domains(static_cast<uint32_t>(s.domains));
    resp->set_default_policy(PolicyToProto(s.default_policy));
    v1::FrameStats* f = resp->mutable_frames();
    f->set_total(s.frames_total);
    f->set_free(s.frames_free);
    f->set_none(s.frames_none);
    f->set_writable(s.frames_writable);
    f->set_page_tables(s.frames_tables);
    f->set_pending_free(s.frames_pending_free);
    v1::FlushStats* fl = resp->mutable_flushes();
    fl->set_ipi_flushes(s.ipi_flushes);
    fl->set_assisted_flushes(s.assisted_flushes);
    fl->set_ipis_sent(s.ipis_sent);
    fl->set_forced_ipis(s.forced_ipis);
    v1::GraceStats* g = resp->mutable_grace();
    g->set_grace_periods(s.grace_periods);
    ToProto(absl::Nanoseconds(s.grace_latency_p50_ns),
            g->mutable_latency_p50());
    ToProto(absl::Nanoseconds(s.grace_latency_p99_ns),
            g->mutable_latency_p99());
    g->set_pending_deferred_frees(s.frames_pending_free);
    v1::WalkStats* w = resp->mutable_walks();
    w->set_accesses(s.guests.accesses);
    w->set_walks(s.guests.walks);
    w->set_tlb_hits(s.guests.tlb_hits);
    w->set_tlb_misses(s.guests.tlb_misses);
    const uint64_t lookups = s.guests.tlb_hits + s.guests.tlb_misses;
    w->set_tlb_hit_ratio(lookups == 0 ? 0.0
                                      : static_cast<double>(s.guests.tlb_hits) /
                                            static_cast<double>(lookups));
    w->set_faults(s.guests.faults);
    resp->mutable_violations()->set_existence(s.existence_violations);
    resp->mutable_violations()->set_coherence(s.coherence_violations);
    return absl::OkStatus();
  });
}

grpc::Status MemoryManagerService::Audit(grpc::ServerContext* ctx,
                                         const v1::AuditRequest* req,
                                         v1::AuditResponse* resp) {
  return Change(ctx, "Audit", [&]() -> absl::Status {
    const absl::Time start = absl::Now();
    const absl::Status s = state_->host->mm().Audit();
    ToProto(absl::Now() - start, resp->mutable_duration());
    resp->set_clean(s.ok());
    if (!s.ok()) {
      for (absl::string_view line :
           absl::StrSplit(s.message(), '\n', absl::SkipEmpty())) {
        if (resp->findings_size() == 64) break;
        resp->add_findings(std::string(line));
      }
    }
    return absl::OkStatus();
  });
}

// --------------------------------------------------------------- events --

grpc::Status MemoryManagerService::WatchEvents(
    grpc::ServerContext* ctx, const v1::WatchEventsRequest* req,
    grpc::ServerWriter<v1::WatchEventsResponse>* writer) {
  RunningCall running(state_);
  if (absl::Status s = Admit(ctx); !s.ok()) return ToGrpcStatus(s, ctx);
  absl::flat_hash_set<int> kinds;
  for (int k : req->kinds()) {
    if (k == v1::EVENT_KIND_UNSPECIFIED || !v1::EventKind_IsValid(k)) {
      return ToGrpcStatus(UnspecifiedEnumError("kinds"), ctx);
    }
    kinds.insert(k);
  }
  EventLog& events = *state_->events;
  uint64_t since = req->since_revision();
  if (since == 0) since = events.head();
  // Refuse a compacted or unknown revision before sending anything.
  {
    std::vector<v1::Event> probe;
    if (absl::Status s = events.ReadSince(since, 0, &probe); !s.ok()) {
      return ToGrpcStatus(s, ctx);
    }
  }
  absl::Time last_sent = absl::Now();
  std::vector<v1::Event> batch;
  for (;;) {
    if (ctx->IsCancelled()) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "the client left");
    }
    if (state_->draining.load(std::memory_order_acquire)) {
      return ToGrpcStatus(DrainingError(), ctx);
    }
    batch.clear();
    if (absl::Status s = events.ReadSince(since, 256, &batch); !s.ok()) {
      // The ring overtook this (slow) reader.
      return ToGrpcStatus(s, ctx);
    }
    for (v1::Event& e : batch) {
      since = e.revision();
      if (!kinds.empty() && !kinds.contains(e.kind())) continue;
      v1::WatchEventsResponse out;
      *out.mutable_event() = std::move(e);
      if (!writer->Write(out)) {
        return grpc::Status(grpc::StatusCode::CANCELLED, "the client left");
      }
      last_sent = absl::Now();
    }
    // A bookmark whenever nothing was sent for an interval, even while
    // filtered-out events stream past (so the revision keeps moving).
    const absl::Time now = absl::Now();
    if (now - last_sent >= state_->bookmark_interval) {
      v1::WatchEventsResponse out;
      out.mutable_event()->set_revision(since);
      ToProto(now, out.mutable_event()->mutable_time());
      out.mutable_event()->set_kind(v1::EVENT_KIND_BOOKMARK);
      out.mutable_event()->mutable_bookmark();
      if (!writer->Write(out)) {
        return grpc::Status(grpc::StatusCode::CANCELLED, "the client left");
      }
      last_sent = now;
    }
    if (!batch.empty()) continue;
    events.WaitNewer(since, std::min(last_sent + state_->bookmark_interval,
                                     now + state_->watch_poll));
  }
}

}  // namespace hvmm
