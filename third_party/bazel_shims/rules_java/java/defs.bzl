"""Re-exports Bazel's native Java rules for @bazel_tools (offline stand-in).

hvmm compiles no Java; @bazel_tools//tools/jdk merely loads these names.
"""

java_binary = native.java_binary
java_import = native.java_import
java_library = native.java_library
java_lite_proto_library = native.java_lite_proto_library
java_proto_library = native.java_proto_library
java_runtime = native.java_runtime
java_test = native.java_test
java_toolchain = native.java_toolchain
