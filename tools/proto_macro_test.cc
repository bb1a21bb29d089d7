// The proto macro produces message code that round-trips, and gRPC service
// code whose stub and descriptor are usable.
#include "gtest/gtest.h"
#include "tools/testdata/macro_check.grpc.pb.h"
#include "tools/testdata/macro_check.pb.h"

namespace {

TEST(ProtoMacroTest, MessageRoundTrips) {
  hvmm::tools::testdata::Ping ping;
  ping.set_seq(42);
  ping.set_note("frame");
  std::string wire;
  ASSERT_TRUE(ping.SerializeToString(&wire));
  hvmm::tools::testdata::Ping back;
  ASSERT_TRUE(back.ParseFromString(wire));
  EXPECT_EQ(back.seq(), 42u);
  EXPECT_EQ(back.note(), "frame");
}

TEST(ProtoMacroTest, ServiceCodeIsGenerated) {
  EXPECT_STREQ(hvmm::tools::testdata::MacroCheck::service_full_name(),
               "hvmm.tools.testdata.MacroCheck");
  const auto* method = hvmm::tools::testdata::Ping::descriptor()->file()
                           ->FindServiceByName("MacroCheck")
                           ->FindMethodByName("Echo");
  ASSERT_NE(method, nullptr);
  EXPECT_EQ(method->input_type()->name(), "Ping");
}

}  // namespace
