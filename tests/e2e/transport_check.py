#!/usr/bin/python3
"""Checks one hvmmd endpoint from Python: reflection lists and describes
hvmm.v1, health answers, and (with --ca) TLS and client certificates work
as configured. Exit 0 if every check passed.

  transport_check.py --addr ADDR [--ca CERT [--client-cert C --client-key K]]
                     [--expect-refused] [--reflection]
"""

import argparse
import sys

import grpc
from google.protobuf import descriptor_pb2

from hvmm_health.v1 import health_pb2, health_pb2_grpc
from hvmm_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


def channel(args):
    if not args.ca:
        return grpc.insecure_channel(args.addr)
    read = lambda p: open(p, "rb").read() if p else None
    creds = grpc.ssl_channel_credentials(
        root_certificates=read(args.ca),
        private_key=read(args.client_key),
        certificate_chain=read(args.client_cert))
    return grpc.secure_channel(args.addr, creds)


def check_reflection(ch):
    stub = reflection_pb2_grpc.ServerReflectionStub(ch)
    reqs = [reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="hvmm.v1.MemoryManager")]
    resps = list(stub.ServerReflectionInfo(iter(reqs), timeout=10))
    services = {s.name for s in resps[0].list_services_response.service}
    for want in ("hvmm.v1.MemoryManager", "grpc.health.v1.Health"):
        if want not in services:
            print("reflection: %s not listed: %s" % (want, services))
            return False
    names = []
    for raw in resps[1].file_descriptor_response.file_descriptor_proto:
        fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
        names.append(fd.name)
    if "hvmm/v1/hvmm.proto" not in names:
        print("reflection: hvmm/v1/hvmm.proto not described: %s" % names)
        return False
    print("reflection: %d services; hvmm/v1/hvmm.proto described" %
          len(services))
    return True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--addr", required=True)
    p.add_argument("--ca")
    p.add_argument("--client-cert")
    p.add_argument("--client-key")
    p.add_argument("--expect-refused", action="store_true")
    p.add_argument("--reflection", action="store_true")
    args = p.parse_args()
    ch = channel(args)
    try:
        status = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service="hvmm.v1.MemoryManager"),
            timeout=10)
    except grpc.RpcError as e:
        if args.expect_refused:
            print("refused as expected: %s" % e.code().name)
            return 0
        print("health failed: %s %s" % (e.code().name, e.details()))
        return 1
    if args.expect_refused:
        print("connected, but should have been refused")
        return 1
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(status.status)
    print("health: %s" % name)
    if name != "SERVING":
        return 1
    if args.reflection and not check_reflection(ch):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
