// What the daemon maps (gateway/extension.hpp): the default configuration (tcp:// broker, native
// client, no persistence) must not map OpenSSL, Paho, SQLite or the extension module, which were
// most of its idle RSS; a configuration that needs one of them loads the module; and a module that
// cannot be found stops the daemon with one line naming what needed it.
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "tests/integration/gateway_process.hpp"
#include "tests/integration/harness.hpp"

namespace itest {
namespace {

using namespace std::chrono_literals;

const std::vector<std::string> heavy{"libcrypto", "libssl", "libpaho", "libsqlite3", "mqttsn-gateway-ext"};

std::string maps_of(pid_t pid) { return read_file("/proc/" + std::to_string(pid) + "/maps"); }

class Footprint : public ::testing::TestWithParam<std::string> {};

TEST_P(Footprint, the_default_configuration_maps_no_openssl_paho_or_sqlite) {
  mosquitto_broker broker;
  gateway_process gw(broker.uri(), {"--mode", GetParam(), "--upstream-client", "native"});
  const auto maps = maps_of(gw.pid());
  for (const auto& lib : heavy) EXPECT_EQ(maps.find(lib), std::string::npos) << lib << " is mapped:\n" << maps;
}

TEST_P(Footprint, persistence_loads_the_module_with_sqlite_and_works) {
  mosquitto_broker broker;
  temp_dir dir("mqttsn-footprint");
  const auto db = (dir.path() / "sessions.db").string();
  gateway_process gw(broker.uri(), {"--mode", GetParam(), "--upstream-client", "native", "--persistence", db});
  const auto maps = maps_of(gw.pid());
  EXPECT_NE(maps.find("mqttsn-gateway-ext.so"), std::string::npos) << maps;
  EXPECT_NE(maps.find("libsqlite3"), std::string::npos) << maps;
  EXPECT_EQ(gw.stop(), 0) << gw.log();
  EXPECT_TRUE(std::filesystem::exists(db));
}

TEST_P(Footprint, the_paho_client_loads_the_module) {
  mosquitto_broker broker;
  gateway_process gw(broker.uri(), {"--mode", GetParam(), "--upstream-client", "paho"});
  const auto maps = maps_of(gw.pid());
  EXPECT_NE(maps.find("mqttsn-gateway-ext.so"), std::string::npos) << maps;
  EXPECT_NE(maps.find("libpaho-mqtt3as"), std::string::npos) << maps;
}

INSTANTIATE_TEST_SUITE_P(Modes, Footprint, ::testing::Values("aggregating", "transparent"));

TEST(FootprintModule, a_module_that_cannot_be_found_stops_the_gateway_with_one_line) {
  temp_dir dir("mqttsn-footprint");
  const auto missing = (dir.path() / "absent-ext.so").string();
  const auto log = dir.path() / "gw.log";
  ::setenv("MQTTSN_GATEWAY_EXT", missing.c_str(), 1);
  const pid_t pid = spawn_process({MQTTSN_GATEWAY_BIN, "--broker", "tcp://127.0.0.1:1", "--udp",
                                   "127.0.0.1:" + std::to_string(free_port(true)), "--mode", "aggregating", "--persistence",
                                   (dir.path() / "s.db").string()},
                                  log);
  ::unsetenv("MQTTSN_GATEWAY_EXT");
  int status = 0;
  ASSERT_TRUE(wait_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, 10s));
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
  const auto text = read_file(log);
  EXPECT_NE(text.find("mqttsn-gateway: --persistence needs the module mqttsn-gateway-ext.so (" +
                      missing + ": not found)"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace itest
