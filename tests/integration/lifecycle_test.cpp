// The daemon's life cycle end to end: SIGTERM shuts it down cleanly (status topic "offline", every
// broker connection closed with DISCONNECT so no will is published, exit status 0), and SIGHUP
// reloads the log level and the predefined topics without dropping a session.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <string>
#include <vector>

#include "tests/integration/gateway_process.hpp"
#include "tests/integration/harness.hpp"
#include "tools/client/mqttsn_client.hpp"

namespace itest {
namespace {

using namespace std::chrono_literals;
using mqttsn::qos;

// The parameter is the mode, with "_paho" when the broker connections run on Paho (upstream-client
// = paho) instead of the native client, the default of both modes.
class GatewayLifecycle : public ::testing::TestWithParam<std::string> {
 protected:
  std::string mode() const { return GetParam().substr(0, GetParam().find('_')); }
  std::string client() const { return GetParam().ends_with("_paho") ? "paho" : "native"; }
  std::vector<std::string> args(std::vector<std::string> more) const {
    more.insert(more.end(), {"--mode", mode(), "--upstream-client", client()});
    return more;
  }
  tools::client sensor(const gateway_process& gw, const std::string& id) {
    tools::client_options o;
    o.client_id = id;
    o.keep_alive = 60;
    o.retry_interval = 500ms;
    o.retry_count = 8;
    return tools::client(gw.host(), gw.port(), o);
  }
};

TEST_P(GatewayLifecycle, sigterm_says_offline_and_closes_every_broker_connection_cleanly) {
  mosquitto_broker broker;
  gateway_process gw(broker.uri(), args({"--gateway-id", "4"}));
  mqtt_test_client observer(broker);
  ASSERT_TRUE(observer.subscribe("mqttsn/gateway/4/status", 1));
  ASSERT_TRUE(observer.subscribe("wills/#", 1));
  auto m = observer.wait_message("mqttsn/gateway/4/status");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->payload, "online");

  auto a = sensor(gw, "term-a");
  auto b = sensor(gw, "term-b");
  ASSERT_EQ(a.connect(true, tools::will{"wills/a", {'x'}, qos::at_least_once, false}), mqttsn::return_code::accepted);
  ASSERT_EQ(b.connect(false), mqttsn::return_code::accepted);
  ASSERT_EQ(b.subscribe(tools::topic_name{"t/b"}, qos::at_least_once).rc, mqttsn::return_code::accepted);
  ASSERT_TRUE(observer.subscribe("t/#", 1));
  EXPECT_EQ(a.publish(tools::topic_name{"t/a"}, "last", qos::at_least_once), mqttsn::return_code::accepted);
  ASSERT_TRUE(observer.wait_message("t/a"));

  EXPECT_EQ(gw.stop(), 0);  // SIGTERM; exit status 0
  EXPECT_TRUE(gw.log_contains("shutting down")) << gw.log();
  m = observer.wait_message("mqttsn/gateway/4/status");
  ASSERT_TRUE(m) << gw.log();
  EXPECT_EQ(m->payload, "offline");
  // Every connection of the gateway ended with DISCONNECT ("disconnected", not "closed its
  // connection"): the broker drops the wills, the sensors' included.
  const std::string upstream_id = "mqttsn-gw-4";
  std::vector<std::string> ids{upstream_id};
  if (mode() == "transparent") ids.insert(ids.end(), {"term-a", "term-b"});
  for (const auto& id : ids) {
    EXPECT_TRUE(wait_until([&] { return broker.log().find("Client " + id + " disconnected.") != std::string::npos; }, 5s))
        << id << "\n" << broker.log();
    EXPECT_EQ(broker.log().find("Client " + id + " closed its connection"), std::string::npos) << broker.log();
  }
  EXPECT_EQ(observer.count("wills/#"), 0U);
}

TEST_P(GatewayLifecycle, sighup_reloads_predefined_topics_and_log_level_and_keeps_sessions) {
  mosquitto_broker broker;
  temp_dir dir("mqttsn-reload");
  const auto conf = dir.path() / "gw.conf";
  const auto topics = dir.path() / "topics";
  std::ofstream(topics) << "7 pre/seven\n";
  std::ofstream(conf) << "log-level = info\npredefined-file = " << topics.string() << "\n";
  gateway_process gw(broker.uri(), args({"--config", conf.string()}));
  mqtt_test_client observer(broker);
  ASSERT_TRUE(observer.subscribe("pre/#", 1));

  auto c = sensor(gw, "reloaded");
  ASSERT_EQ(c.connect(), mqttsn::return_code::accepted);
  EXPECT_EQ(c.publish(tools::predefined_topic{7}, "7", qos::at_least_once), mqttsn::return_code::accepted);
  EXPECT_EQ(c.publish(tools::predefined_topic{8}, "8", qos::at_least_once), mqttsn::return_code::invalid_topic_id);
  EXPECT_FALSE(gw.log_contains(" trace "));

  // New topics and a new level; id 7 goes away.
  std::ofstream(topics) << "8 pre/eight\n";
  std::ofstream(conf) << "log-level = trace\npredefined-file = " << topics.string() << "\n";
  ::kill(gw.pid(), SIGHUP);
  ASSERT_TRUE(wait_until([&] { return gw.log_contains("configuration reloaded"); }, 5s)) << gw.log();
  EXPECT_TRUE(gw.log_contains("log level trace, 1 predefined topics, sessions kept")) << gw.log();

  // The same session, without a new CONNECT, uses the new table.
  EXPECT_EQ(c.publish(tools::predefined_topic{8}, "8", qos::at_least_once), mqttsn::return_code::accepted);
  EXPECT_EQ(c.publish(tools::predefined_topic{7}, "7", qos::at_least_once), mqttsn::return_code::invalid_topic_id);
  auto m = observer.wait_message("pre/eight");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->payload, "8");
  ASSERT_TRUE(wait_until([&] { return gw.log_contains(" trace -> "); }, 5s)) << gw.log();  // frames logged now
  const auto st = gw.stats();
  EXPECT_EQ(st.at("connects"), 1U);
  EXPECT_EQ(st.at("clients"), 1U);

  // A configuration that no longer parses changes nothing and says why.
  std::ofstream(topics) << "not-a-number pre/bad\n";
  ::kill(gw.pid(), SIGHUP);
  ASSERT_TRUE(wait_until([&] { return gw.log_contains("configuration not reloaded"); }, 5s)) << gw.log();
  EXPECT_EQ(c.publish(tools::predefined_topic{8}, "8 again", qos::at_least_once), mqttsn::return_code::accepted);
  EXPECT_EQ(gw.stop(), 0);
}

// Without upstream-client (i.e. auto) both modes run their broker connections on the native client.
TEST(GatewayDefaults, both_modes_use_the_native_mqtt_client_unless_paho_is_asked_for) {
  mosquitto_broker broker;
  for (const std::string mode : {"transparent", "aggregating"}) {
    SCOPED_TRACE(mode);
    gateway_process gw(broker.uri(), {"--mode", mode});
    EXPECT_TRUE(gw.log_contains(mode + " mode, native client")) << gw.log();
    EXPECT_EQ(gw.stop(), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, GatewayLifecycle,
                         ::testing::Values("transparent", "aggregating", "transparent_paho", "aggregating_paho"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

}  // namespace
}  // namespace itest
