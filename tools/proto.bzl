"""hvmm_proto_library: protoc + grpc_cpp_plugin through a genrule.

Bazel 4.2.3's native cc_proto_library needs @com_google_protobuf, which an
offline build cannot fetch. This macro runs the system protoc instead:

    load("//tools:proto.bzl", "hvmm_proto_library")
    hvmm_proto_library(name = "hvmm_proto", src = "hvmm.proto")

declares `:hvmm_proto` (a cc_library with the message and gRPC stub code) and
`:hvmm_proto_gen` (the genrule producing x.pb.{h,cc} and x.grpc.pb.{h,cc}).
"""

def hvmm_proto_library(name, src, deps = [], visibility = None, testonly = False):
    base = src[:-len(".proto")]
    pkg = native.package_name()
    outs = [
        base + ".pb.h",
        base + ".pb.cc",
        base + ".grpc.pb.h",
        base + ".grpc.pb.cc",
    ]
    native.genrule(
        name = name + "_gen",
        srcs = [src],
        outs = outs,
        cmd = " ".join([
            "protoc",
            "--proto_path=.",
            "--cpp_out=$(GENDIR)",
            "--grpc_out=$(GENDIR)",
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
        deps = deps + [
            "//third_party:grpc",
            "//third_party:protobuf",
        ],
        visibility = visibility,
        testonly = testonly,
    )
