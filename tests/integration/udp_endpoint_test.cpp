// udp_transport's endpoint strings: the IPv4 fast path (no inet_ntop/inet_pton) must give exactly
// what the general one gives, and refuse or hand over what is not its canonical form.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <string>

#include "transports/udp_transport.hpp"

namespace {

namespace asio = boost::asio;
using asio::ip::udp;

class UdpEndpoint : public ::testing::Test {
 protected:
  asio::io_context io;
  transports::udp_transport t{io, "udp0/", transports::udp_options{"127.0.0.1", 0, 1024, 0, std::nullopt}};
};

TEST_F(UdpEndpoint, ipv4_strings_round_trip_and_match_the_address_text) {
  for (const char* a : {"0.0.0.0", "127.0.0.1", "10.20.30.40", "255.255.255.255", "192.168.1.9"}) {
    for (int p : {0, 1, 9, 80, 1884, 65535}) {
      const auto port = static_cast<unsigned short>(p);
      const udp::endpoint ep(asio::ip::make_address(a), port);
      const auto s = t.to_endpoint(ep);
      EXPECT_EQ(s, std::string("udp0/") + a + ":" + std::to_string(port));
      const auto back = t.from_endpoint(s);
      ASSERT_TRUE(back.has_value()) << s;
      EXPECT_EQ(*back, ep) << s;
    }
  }
}

TEST_F(UdpEndpoint, ipv6_strings_round_trip_in_brackets) {
  const udp::endpoint ep(asio::ip::make_address("::1"), 40000);
  EXPECT_EQ(t.to_endpoint(ep), "udp0/[::1]:40000");
  EXPECT_EQ(t.from_endpoint("udp0/[::1]:40000"), ep);
}

TEST_F(UdpEndpoint, malformed_or_foreign_strings_are_refused) {
  for (const char* s : {"udp1/127.0.0.1:5", "udp0/127.0.0.1", "udp0/127.0.0.1:", "udp0/127.0.0.1:65536",
                        "udp0/256.0.0.1:5", "udp0/127.0.0:5", "udp0/127.0.0.1.1:5", "udp0/127.0.0.1:5x",
                        "udp0/127.0.0.01:5", "udp0/1.2.3.4:-1", "udp0/:5", "serial0/0013A20040A1B2C3"}) {
    EXPECT_FALSE(t.from_endpoint(s).has_value()) << s;
  }
}

}  // namespace
