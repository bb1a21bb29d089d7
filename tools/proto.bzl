"""hvmm_proto_library: protoc + grpc_cpp_plugin through a genrule.

Bazel 4.2.3's native cc_proto_library needs @com_google_protobuf, which an
offline build cannot fetch. This macro runs the system protoc instead:

    load("//tools:proto.bzl", "hvmm_proto_library")
    hvmm_proto_library(name = "hvmm_proto", src = "hvmm.proto")

declares `:hvmm_proto` (a cc_library with the message and gRPC stub code) and
`:hvmm_proto_gen` (the genrule producing x.pb.{h,cc} and x.grpc.pb.{h,cc}).

`proto_root` (a workspace-relative directory above the package) is the
import root: with proto_root = "proto", proto/hvmm/v1/hvmm.proto is compiled
as "hvmm/v1/hvmm.proto" (its name in descriptors, reflection and other
languages' stubs) and its headers are included as "hvmm/v1/hvmm.pb.h".
Imports of google/protobuf/*.proto resolve to the system's copies.
"""

def hvmm_proto_library(name, src, deps = [], proto_root = "", visibility = None, testonly = False):
    base = src[:-len(".proto")]
    pkg = native.package_name()
    outs = [
        base + ".pb.h",
        base + ".pb.cc",
        base + ".grpc.pb.h",
        base + ".grpc.pb.cc",
    ]
    if proto_root:
        if not (pkg + "/").startswith(proto_root + "/"):
            fail("proto_root %s is not above package %s" % (proto_root, pkg))
        proto_path = proto_root
        out_dir = "$(GENDIR)/" + proto_root
    else:
        proto_path = "."
        out_dir = "$(GENDIR)"
    native.genrule(
        name = name + "_gen",
        srcs = [src],
        outs = outs,
        cmd = " ".join([
            "protoc",
            "--proto_path=" + proto_path,
            "--cpp_out=" + out_dir,
            "--grpc_out=" + out_dir,
            "--plugin=protoc-gen-grpc=$$(command -v grpc_cpp_plugin)",
            "$(location " + src + ")",
        ]),
        visibility = visibility,
        testonly = testonly,
    )
    native.cc_library(
        name = name,
        srcs = [base + ".pb.cc", base + ".grpc.pb.cc"],
        hdrs = [base + ".pb.h", base + ".grpc.pb.h"],
        strip_include_prefix = ("/" + proto_root) if proto_root else None,
        deps = deps + [
            "//third_party:grpc",
            "//third_party:protobuf",
        ],
        visibility = visibility,
        testonly = testonly,
    )
