"""hvmm_client: a small Python client for hvmmd's hvmm.v1 API.

Run with /usr/bin/python3 (Debian's python3-grpcio and python3-protobuf),
with the generated stubs on sys.path (client/python/generate_stubs.sh):

    from hvmm_client import Client, HvmmError
    with Client("unix:/run/hvmm/hvmm.sock") as c:
        d = c.create_domain("web", vcpus=2, max_pages=4096)
        c.map_range(d.domain_id, 0x40000000, 16)
        t = c.translate(d.domain_id, 0x40000000)

Errors raise HvmmError with the gRPC code, the machine-readable reason
(docs/ERRORS.md; it travels in the "hvmm-error-reason" trailer) and the
message. Every call has a deadline (the client's `timeout`).

Mutations take an optional request_id: a retry with the same id returns
the first response and is applied once (docs/API.md).

Thread-safety: a Client may be shared by threads (gRPC channels are).
"""

import os
import time

import grpc

from hvmm.v1 import hvmm_pb2 as pb
from hvmm.v1 import hvmm_pb2_grpc
from hvmm_health.v1 import health_pb2
from hvmm_health.v1 import health_pb2_grpc

REASON_KEY = "hvmm-error-reason"

POLICIES = {
    "ipi": pb.FLUSH_POLICY_IPI,
    "assisted-unsafe": pb.FLUSH_POLICY_ASSISTED_UNSAFE,
    "assisted+force-ipi": pb.FLUSH_POLICY_ASSISTED_FORCE_IPI,
    "assisted+rcu": pb.FLUSH_POLICY_ASSISTED_RCU,
}

# x86-64 entry flags (proto/hvmm/v1/hvmm.proto, EntryUpdate).
PTE_PRESENT = 1 << 0
PTE_WRITABLE = 1 << 1
PTE_USER = 1 << 2


def make_pte(mfn, writable=True):
    """An entry mapping frame `mfn` (present, user, writable if asked)."""
    flags = PTE_PRESENT | PTE_USER | (PTE_WRITABLE if writable else 0)
    return (mfn << 12) | flags


def default_address():
    """The daemon's default socket (server/listen.h DefaultSocketDir)."""
    if os.geteuid() == 0:
        return "unix:/run/hvmm/hvmm.sock"
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime.startswith("/"):
        return "unix:%s/hvmm/hvmm.sock" % runtime
    return "unix:/tmp/hvmm-%d/hvmm.sock" % os.geteuid()


class HvmmError(Exception):
    """A failed call: .code (grpc.StatusCode), .reason (str), .message."""

    def __init__(self, code, reason, message):
        super().__init__("%s [%s]: %s" % (code.name, reason, message))
        self.code = code
        self.reason = reason
        self.message = message

    @classmethod
    def from_rpc_error(cls, err):
        reason = ""
        for key, value in err.trailing_metadata() or ():
            if key == REASON_KEY:
                reason = value
        return cls(err.code(), reason, err.details() or "")


class Client:
    """One connection to hvmmd. Use as a context manager, or close()."""

    def __init__(self, address=None, timeout=30.0):
        self.address = address or default_address()
        self.timeout = timeout
        self._channel = grpc.insecure_channel(self.address)
        self._stub = hvmm_pb2_grpc.MemoryManagerStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method, request):
        try:
            return getattr(self._stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as err:
            raise HvmmError.from_rpc_error(err) from None

    # -- domains
    def create_domain(self, name, vcpus=1, max_pages=1024, policy=None,
                      request_id=""):
        req = pb.CreateDomainRequest(name=name, vcpus=vcpus,
                                     max_pages=max_pages,
                                     request_id=request_id)
        if policy is not None:
            req.policy = POLICIES[policy] if isinstance(policy, str) else policy
        return self._call("CreateDomain", req).domain

    def get_domain(self, domain_id=None, name=None):
        req = pb.GetDomainRequest()
        if name is not None:
            req.name = name
        elif domain_id is not None:
            req.domain_id = domain_id
        return self._call("GetDomain", req).domain

    def list_domains(self, page_size=0):
        """Every domain, following next_page_token."""
        token = ""
        while True:
            resp = self._call("ListDomains", pb.ListDomainsRequest(
                page_size=page_size, page_token=token))
            yield from resp.domains
            token = resp.next_page_token
            if not token:
                return

    def destroy_domain(self, domain_id, request_id=""):
        return self._call("DestroyDomain", pb.DestroyDomainRequest(
            domain_id=domain_id, request_id=request_id)).frames_released

    # -- memory
    def allocate_pages(self, domain_id, count, request_id=""):
        return list(self._call("AllocatePages", pb.AllocatePagesRequest(
            domain_id=domain_id, count=count, request_id=request_id)).mfns)

    def release_pages(self, domain_id, mfns, request_id=""):
        return self._call("ReleasePages", pb.ReleasePagesRequest(
            domain_id=domain_id, mfns=mfns,
            request_id=request_id)).released_count

    # -- page tables
    def mmu_update(self, domain_id, updates, request_id=""):
        """updates: (table_mfn, index, entry) triples, applied all or none."""
        req = pb.MmuUpdateRequest(domain_id=domain_id, request_id=request_id)
        for table, index, entry in updates:
            req.updates.add(table_mfn=table, index=index, entry=entry)
        return self._call("MmuUpdate", req).applied_count

    def pin(self, domain_id, mfn, level, request_id=""):
        """level: 1..4."""
        self._call("Pin", pb.PinRequest(domain_id=domain_id, mfn=mfn,
                                        level=level, request_id=request_id))

    def unpin(self, domain_id, mfn, request_id=""):
        self._call("Unpin", pb.UnpinRequest(domain_id=domain_id, mfn=mfn,
                                            request_id=request_id))

    def set_base_pointer(self, domain_id, vcpu, root_mfn, request_id=""):
        """root_mfn None leaves the vCPU without a base pointer."""
        req = pb.SetBasePointerRequest(domain_id=domain_id, vcpu=vcpu,
                                       request_id=request_id)
        if root_mfn is None:
            req.no_root.SetInParent()
        else:
            req.root_mfn = root_mfn
        self._call("SetBasePointer", req)

    def map_range(self, domain_id, start_va, pages, writable=True,
                  request_id=""):
        access = (pb.MAPPING_ACCESS_READ_WRITE if writable
                  else pb.MAPPING_ACCESS_READ_ONLY)
        return self._call("MapRange", pb.MapRangeRequest(
            domain_id=domain_id, start_va=start_va, page_count=pages,
            access=access, request_id=request_id))

    def unmap_range(self, domain_id, start_va, pages, request_id=""):
        return self._call("UnmapRange", pb.UnmapRangeRequest(
            domain_id=domain_id, start_va=start_va, page_count=pages,
            request_id=request_id))

    def get_frame(self, mfn):
        return self._call("GetFrame", pb.GetFrameRequest(mfn=mfn)).frame

    # -- translation, flushes, policy
    def translate(self, domain_id, va, vcpu=0, write=False):
        access = pb.ACCESS_KIND_WRITE if write else pb.ACCESS_KIND_READ
        return self._call("Translate", pb.TranslateRequest(
            domain_id=domain_id, vcpu=vcpu, va=va, access=access))

    def flush(self, domain_id, start_va=None, pages=None):
        req = pb.FlushRequest(domain_id=domain_id)
        if start_va is None:
            req.all.SetInParent()
        else:
            req.range.start_va = start_va
            req.range.page_count = pages
        return self._call("Flush", req)

    def set_flush_policy(self, domain_id, policy, request_id=""):
        policy = POLICIES[policy] if isinstance(policy, str) else policy
        return self._call("SetFlushPolicy", pb.SetFlushPolicyRequest(
            domain_id=domain_id, policy=policy, request_id=request_id))

    # -- workloads, stats, audit
    def start_workload(self, domain_id, ranges, pattern="uniform",
                       write_fraction=0.3, rate=0, request_id=""):
        """ranges: (start_va, pages) pairs; rate: accesses per second per
        vCPU (0: unthrottled)."""
        patterns = {"uniform": pb.ACCESS_PATTERN_UNIFORM,
                    "sequential": pb.ACCESS_PATTERN_SEQUENTIAL,
                    "zipf": pb.ACCESS_PATTERN_ZIPF}
        req = pb.StartWorkloadRequest(domain_id=domain_id,
                                      pattern=patterns[pattern],
                                      write_fraction=write_fraction,
                                      rate=rate, request_id=request_id)
        for start, pages in ranges:
            req.ranges.add(start_va=start, page_count=pages)
        self._call("StartWorkload", req)

    def stop_workload(self, domain_id, request_id=""):
        self._call("StopWorkload", pb.StopWorkloadRequest(
            domain_id=domain_id, request_id=request_id))

    def stats(self, domain_id=None):
        req = pb.GetStatsRequest()
        if domain_id is not None:
            req.domain_id = domain_id
        return self._call("GetStats", req)

    def audit(self):
        return self._call("Audit", pb.AuditRequest())

    def health(self, service="hvmm.v1.MemoryManager"):
        """'SERVING', 'NOT_SERVING', ... (raises HvmmError if unreachable)."""
        try:
            resp = self._health.Check(
                health_pb2.HealthCheckRequest(service=service),
                timeout=self.timeout)
        except grpc.RpcError as err:
            raise HvmmError.from_rpc_error(err) from None
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)

    # -- events
    def list_domains_at(self, page_size=0):
        """(every domain, revision): watch from `revision` to follow every
        change made after this list (list-then-watch)."""
        token, domains, revision = "", [], None
        while True:
            resp = self._call("ListDomains", pb.ListDomainsRequest(
                page_size=page_size, page_token=token))
            if revision is None:
                revision = resp.revision
            domains.extend(resp.domains)
            token = resp.next_page_token
            if not token:
                return domains, revision

    def watch(self, since_revision=0, kinds=(), resume=True,
              max_backoff=5.0):
        """Yields events (bookmarks included: skip EVENT_KIND_BOOKMARK),
        forever. After a lost connection or a daemon restart it resumes
        after the last revision it yielded, so no event is lost; if the
        daemon no longer holds that revision it raises HvmmError with
        reason REVISION_COMPACTED: relist, then watch again."""
        since = since_revision
        backoff = 0.1
        while True:
            stream = self._stub.WatchEvents(pb.WatchEventsRequest(
                since_revision=since, kinds=kinds))
            try:
                for resp in stream:
                    backoff = 0.1
                    since = resp.event.revision
                    yield resp.event
                return
            except grpc.RpcError as err:
                code = err.code()
                resumable = code in (grpc.StatusCode.UNAVAILABLE,
                                     grpc.StatusCode.CANCELLED)
                if not (resume and resumable):
                    raise HvmmError.from_rpc_error(err) from None
            finally:
                stream.cancel()
            time.sleep(backoff)
            backoff = min(backoff * 2, max_backoff)
