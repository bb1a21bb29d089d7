#!/usr/bin/python3
"""An orchestration tool's first steps with hvmmd, start to finish.

    client/python/generate_stubs.sh            # once: stubs into gen/
    PYTHONPATH=client/python/gen:client/python \\
        /usr/bin/python3 client/python/example.py --addr unix:/run/hvmm/hvmm.sock

It:
  1. reads health;
  2. creates two domains (one under the daemon's default policy, one under
     ipi) and lists them, remembering the event revision of the list;
  3. maps memory and translates an address (the walk runs on a pCPU);
  4. retypes a former page table to writable through MmuUpdate: the L1
     behind one range is unhooked from its L2, then mapped writable through
     another L1, in two batches. This is the path where the flush policy
     matters: under assisted+rcu the retype waits for the domain's grace
     period, under ipi and force-ipi for an IPI;
  5. shows bad input rejected, with the code and the machine-readable
     reason a tool branches on;
  6. watches events from the list's revision, drops the stream as a lost
     connection would, makes more changes, and resumes from the last
     revision it saw: nothing is lost;
  7. destroys the domains and checks the audit.

It exits 0 when every step behaved as described, 1 otherwise.
"""

import argparse
import sys

import grpc

from hvmm.v1 import hvmm_pb2 as pb
from hvmm_client import Client, HvmmError, make_pte

VA_A = 0x40000000  # Served by one L1 ...
VA_B = 0x40200000  # ... and this 2 MiB region by the next one.


def step(text):
    print("==> " + text)


def expect(cond, what):
    if not cond:
        print("FAILED: " + what, file=sys.stderr)
        sys.exit(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", default=None,
                        help="daemon address (default: its default socket)")
    parser.add_argument("--prefix", default="example",
                        help="domain name prefix")
    args = parser.parse_args()

    with Client(args.addr, timeout=30) as c:
        step("health")
        status = c.health()
        print("    hvmm.v1.MemoryManager: " + status)
        expect(status == "SERVING", "the daemon is serving")

        step("create two domains")
        web = c.create_domain(args.prefix + "-web", vcpus=2, max_pages=4096,
                              request_id=args.prefix + "-create-web")
        db = c.create_domain(args.prefix + "-db", vcpus=1, max_pages=1024,
                             policy="ipi")
        # A retry with the same request_id returns the same domain.
        again = c.create_domain(args.prefix + "-web", vcpus=2,
                                max_pages=4096,
                                request_id=args.prefix + "-create-web")
        expect(again.domain_id == web.domain_id, "a retry is applied once")
        domains, revision = c.list_domains_at()
        for d in domains:
            print("    %3d %-16s %s" % (d.domain_id, d.name,
                                        pb.FlushPolicy.Name(d.policy)))

        step("map memory and translate")
        c.map_range(web.domain_id, VA_A, 16)
        c.map_range(web.domain_id, VA_B, 16)
        t = c.translate(web.domain_id, VA_A + 0x1234, write=True)
        expect(t.outcome == pb.TRANSLATE_OUTCOME_OK, "the address translates")
        print("    0x%x -> mfn 0x%x (pa 0x%x) on pCPU %d, tables %s" % (
            VA_A + 0x1234, t.mfn, t.physical_address, t.pcpu,
            ", ".join("0x%x" % m for m in t.table_mfns)))

        step("retype a former page table to writable (MmuUpdate)")
        l2, l1_a = t.table_mfns[2], t.table_mfns[3]
        l1_b = c.translate(web.domain_id, VA_B).table_mfns[3]
        # Batch 1: unhook L1(A) from its L2 (entry 0 covers VA_A).
        c.mmu_update(web.domain_id, [(l2, 0, 0)])
        # Batch 2: map the former table writable at VA_B + 16 pages.
        c.mmu_update(web.domain_id, [(l1_b, 16, make_pte(l1_a))])
        frame = c.get_frame(l1_a)
        expect(frame.type == pb.PAGE_TYPE_WRITABLE, "the L1 is writable now")
        w = c.translate(web.domain_id, VA_B + 16 * 4096, write=True)
        expect(w.mfn == l1_a and w.writable, "it translates writably")
        print("    mfn 0x%x: l1 -> %s, mapped at 0x%x" % (
            l1_a, pb.PageType.Name(frame.type), VA_B + 16 * 4096))

        step("bad input is rejected with a code and a reason")
        cases = [
            ("map a page table writable",
             lambda: c.mmu_update(web.domain_id, [(l1_b, 17, make_pte(l2))])),
            ("a frame of another domain",
             lambda: c.mmu_update(db.domain_id, [(l1_b, 0, 0)])),
            ("an unknown domain", lambda: c.get_domain(domain_id=999999)),
            ("a duplicate name",
             lambda: c.create_domain(args.prefix + "-db")),
            ("a misaligned range",
             lambda: c.map_range(web.domain_id, VA_A + 1, 1)),
        ]
        want = [("FAILED_PRECONDITION", "TYPE_CONFLICT"),
                ("FAILED_PRECONDITION", "FOREIGN_FRAME"),
                ("NOT_FOUND", "UNKNOWN_DOMAIN"),
                ("ALREADY_EXISTS", "DOMAIN_NAME_TAKEN"),
                ("INVALID_ARGUMENT", "MALFORMED_ARGUMENT")]
        for (what, call), (code, reason) in zip(cases, want):
            try:
                call()
                expect(False, what + " was accepted")
            except HvmmError as e:
                print("    %-26s %s [%s]" % (what, e.code.name, e.reason))
                expect((e.code.name, e.reason) == (code, reason),
                       "%s: want %s [%s]" % (what, code, reason))

        step("watch from the list's revision, reconnect, resume")
        interesting = (pb.EVENT_KIND_DOMAIN_CREATED,
                       pb.EVENT_KIND_DOMAIN_DESTROYED,
                       pb.EVENT_KIND_POLICY_CHANGED)
        seen = []
        last = revision
        events = c.watch(since_revision=revision, kinds=interesting)
        c.set_flush_policy(db.domain_id, "assisted+force-ipi")
        for e in events:
            last = e.revision
            if e.kind != pb.EVENT_KIND_BOOKMARK:
                seen.append(e)
                break
        events.close()  # The connection is gone.
        tmp = c.create_domain(args.prefix + "-tmp", max_pages=16)
        c.destroy_domain(tmp.domain_id)
        for e in c.watch(since_revision=last, kinds=interesting):
            if e.kind != pb.EVENT_KIND_BOOKMARK:
                seen.append(e)
            if len(seen) == 3:
                break
        for e in seen:
            print("    %d %s" % (e.revision, pb.EventKind.Name(e.kind)))
        expect([e.kind for e in seen] == [
            pb.EVENT_KIND_POLICY_CHANGED, pb.EVENT_KIND_DOMAIN_CREATED,
            pb.EVENT_KIND_DOMAIN_DESTROYED], "no event was lost")

        step("destroy the domains")
        for d in (web, db):
            print("    %s: %d frames released" % (
                d.name, c.destroy_domain(d.domain_id)))
        audit = c.audit()
        expect(audit.clean, "the audit passes: %s" % list(audit.findings))
        print("    audit: clean")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except HvmmError as e:
        print("hvmm error: %s" % e, file=sys.stderr)
        sys.exit(1)
    except grpc.RpcError as e:
        print("rpc error: %s" % e, file=sys.stderr)
        sys.exit(1)
