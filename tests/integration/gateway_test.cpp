// End to end: MQTT-SN clients over UDP -> the real mqttsn-gateway binary -> a real Mosquitto on
// loopback, checked by an MQTT client at the broker. One broker and one gateway per test.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "mqttsn/codec.hpp"
#include "tests/integration/gateway_process.hpp"
#include "tests/integration/harness.hpp"
#include "tests/integration/serial_sim.hpp"
#include "tools/client/mqttsn_client.hpp"

namespace itest {
namespace {

using namespace std::chrono_literals;
using mqttsn::qos;
using tools::predefined_topic;
using tools::short_topic;
using tools::topic_name;

std::string text(const mqttsn::bytes& b) { return std::string(b.begin(), b.end()); }

// One broker, one gateway in mode() and an observer at the broker. The clients reach the gateway
// over link(): its UDP port, or a serial line (a pty that mqttsn-serial-sim owns, emulating an
// XBee coordinator in API mode 2 or a raw-framed MCU bridge, bridged to a UDP port of its own).
class gateway_fixture : public ::testing::Test {
 protected:
  virtual std::string mode() const = 0;
  virtual std::string link() const { return "udp"; }
  // The MQTT client of the broker connections (upstream-client).
  virtual std::string client() const { return "native"; }
  bool serial() const { return link() != "udp"; }
  // `args` plus --mode, and the serial line's flags: every gateway a test starts runs like that.
  std::vector<std::string> with_mode(std::vector<std::string> args) const {
    args.push_back("--mode");
    args.push_back(mode());
    if (std::find(args.begin(), args.end(), "--upstream-client") == args.end()) {
      args.push_back("--upstream-client");
      args.push_back(client());
    }
    return sim ? sim->gateway_args(std::move(args)) : args;
  }
  void start(std::vector<std::string> gateway_args = {"--predefined", "7=pre/seven"}, broker_options bo = {}) {
    broker = std::make_unique<mosquitto_broker>(bo);
    if (serial() && !sim) sim = std::make_unique<serial_sim>(sim_dir.path(), link());
    gateway = std::make_unique<gateway_process>(broker->uri(), with_mode(std::move(gateway_args)));
    observer = std::make_unique<mqtt_test_client>(*broker);
  }
  void SetUp() override { start(); }
  void TearDown() override {
    if (HasFailure() && sim && gateway) print_serial_report(*gateway, *sim);
  }

  tools::client sensor(const std::string& id, std::uint16_t keep_alive = 30) {
    tools::client_options o;
    o.client_id = id;
    o.keep_alive = keep_alive;
    o.retry_interval = 500ms;
    o.retry_count = 8;
    return sensor(o);
  }
  // A client of the gateway over link().
  tools::client sensor(const tools::client_options& o) {
    if (sim) return tools::client("127.0.0.1", sim->port(), traced(o));
    return tools::client(gateway->host(), gateway->port(), o);
  }

  temp_dir sim_dir{"mqttsn-e2e-serial"};
  std::unique_ptr<serial_sim> sim;
  std::unique_ptr<mosquitto_broker> broker;
  std::unique_ptr<gateway_process> gateway;
  std::unique_ptr<mqtt_test_client> observer;
};

struct e2e_param {
  std::string mode;  // transparent | aggregating
  std::string link;  // udp | xbee-api2 | raw
  std::string client = "native";  // upstream-client: native | paho
};
// How gtest shows the parameter (instead of its bytes).
void PrintTo(const e2e_param& p, std::ostream* os) {
  *os << p.mode << " over " << p.link << " (" << p.client << " client)";
}

// The daemon's end-to-end suite, run in both modes, and over UDP and serial links: the session
// core does not know which mode runs nor what carries its frames, so every assertion holds in all.
class GatewayEndToEnd : public gateway_fixture, public ::testing::WithParamInterface<e2e_param> {
 protected:
  std::string mode() const override { return GetParam().mode; }
  std::string link() const override { return GetParam().link; }
  std::string client() const override { return GetParam().client; }
};

// Flows with two clients on one line: raw framing without forwarder encapsulation carries one.
class GatewayEndToEndTwoClients : public GatewayEndToEnd {};
// MQTT-SN frames above 255 bytes: more than an XBee radio carries.
class GatewayEndToEndLongFrames : public GatewayEndToEnd {};
// What only UDP has: IPv6.
class GatewayEndToEndUdp : public GatewayEndToEnd {};

TEST_P(GatewayEndToEnd, qos_minus_one_with_predefined_and_short_topics_needs_no_connection) {
  ASSERT_TRUE(observer->subscribe("#", 1));
  auto c = sensor("qm1");
  EXPECT_EQ(c.publish(predefined_topic{7}, "seven", qos::minus_one), mqttsn::return_code::accepted);
  EXPECT_EQ(c.publish(short_topic{"ab"}, "short", qos::minus_one), mqttsn::return_code::accepted);
  auto m = observer->wait_message("pre/seven");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->payload, "seven");
  m = observer->wait_message("ab");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->payload, "short");
  EXPECT_EQ(gateway->stat("qos_m1"), 2U);
}

TEST_P(GatewayEndToEnd, publishes_at_qos_0_1_2_reach_the_broker_at_that_qos) {
  ASSERT_TRUE(observer->subscribe("up/#", 2));
  auto c = sensor("pub");
  ASSERT_EQ(c.connect(), mqttsn::return_code::accepted);
  for (int q = 0; q <= 2; ++q) {
    const std::string topic = "up/q" + std::to_string(q);
    EXPECT_EQ(c.publish(topic_name{topic}, "v" + std::to_string(q), static_cast<qos>(q)), mqttsn::return_code::accepted);
    auto m = observer->wait_message(topic);
    ASSERT_TRUE(m) << topic;
    EXPECT_EQ(m->payload, "v" + std::to_string(q));
    EXPECT_EQ(m->qos, q);
  }
  // Predefined and short ids from a connected client too.
  ASSERT_TRUE(observer->subscribe("pre/seven", 1));
  EXPECT_EQ(c.publish(predefined_topic{7}, "p", qos::at_least_once), mqttsn::return_code::accepted);
  EXPECT_TRUE(observer->wait_message("pre/seven"));
  c.disconnect();
}

TEST_P(GatewayEndToEnd, unknown_topic_id_is_answered_with_invalid_topic_id) {
  auto c = sensor("bad-id");
  ASSERT_EQ(c.connect(), mqttsn::return_code::accepted);
  EXPECT_EQ(c.publish(predefined_topic{99}, "x", qos::at_least_once), mqttsn::return_code::invalid_topic_id);
}

TEST_P(GatewayEndToEnd, subscriptions_deliver_at_qos_0_1_2_by_name_predefined_and_short_id) {
  auto c = sensor("sub");
  c.set_predefined(7, "pre/seven");
  ASSERT_EQ(c.connect(), mqttsn::return_code::accepted);
  const auto named = c.subscribe(topic_name{"down/x"}, qos::exactly_once);
  EXPECT_EQ(named.rc, mqttsn::return_code::accepted);
  EXPECT_NE(named.id, 0);
  EXPECT_EQ(c.subscribe(predefined_topic{7}, qos::at_least_once).rc, mqttsn::return_code::accepted);
  EXPECT_EQ(c.subscribe(short_topic{"zz"}, qos::at_most_once).rc, mqttsn::return_code::accepted);

  for (int q = 0; q <= 2; ++q) {
    ASSERT_TRUE(observer->publish("down/x", "n" + std::to_string(q), q));
    auto m = c.receive(5s);
    ASSERT_TRUE(m) << "qos " << q;
    EXPECT_EQ(m->topic, "down/x");
    EXPECT_EQ(text(m->payload), "n" + std::to_string(q));
    EXPECT_EQ(static_cast<int>(m->q), q);
    EXPECT_EQ(m->id_type, mqttsn::topic_id_type::normal);
    EXPECT_EQ(m->id, named.id);
  }
  ASSERT_TRUE(observer->publish("pre/seven", "p", 1));
  auto m = c.receive(5s);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->id_type, mqttsn::topic_id_type::predefined);
  EXPECT_EQ(m->topic, "pre/seven");
  ASSERT_TRUE(observer->publish("zz", "s", 0));
  m = c.receive(5s);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->id_type, mqttsn::topic_id_type::short_name);
  EXPECT_EQ(m->topic, "zz");
}

TEST_P(GatewayEndToEnd, wildcard_subscription_registers_each_topic_before_publishing) {
  auto c = sensor("wild");
  ASSERT_EQ(c.connect(), mqttsn::return_code::accepted);
  const auto r = c.subscribe(topic_name{"w/#"}, qos::at_least_once);
  EXPECT_EQ(r.rc, mqttsn::return_code::accepted);
  EXPECT_EQ(r.id, 0);  // wildcards carry no id in SUBACK
  ASSERT_TRUE(observer->publish("w/a/b", "1", 1));
  ASSERT_TRUE(observer->publish("w/c", "2", 1));
  auto m1 = c.receive(5s);
  auto m2 = c.receive(5s);
  ASSERT_TRUE(m1 && m2);
  EXPECT_EQ(m1->topic, "w/a/b");  // resolved through the gateway's REGISTER
  EXPECT_EQ(m2->topic, "w/c");
  EXPECT_NE(m1->id, m2->id);
  EXPECT_EQ(gateway->stat("registers"), 2U);
}

TEST_P(GatewayEndToEnd, retained_message_arrives_after_subscribe_with_retain_set) {
  ASSERT_TRUE(observer->publish("state/door", "open", 1, true));
  auto c = sensor("retained");
  ASSERT_EQ(c.connect(), mqttsn::return_code::accepted);
  EXPECT_EQ(c.subscribe(topic_name{"state/door"}, qos::at_least_once).rc, mqttsn::return_code::accepted);
  auto m = c.receive(5s);
  ASSERT_TRUE(m);
  EXPECT_EQ(text(m->payload), "open");
  EXPECT_TRUE(m->retain);
}

TEST_P(GatewayEndToEnd, will_is_published_when_the_client_goes_silent) {
  ASSERT_TRUE(observer->subscribe("wills/#", 1));
  auto c = sensor("mortal", 1);
  ASSERT_EQ(c.connect(true, tools::will{"wills/mortal", {'g', 'o', 'n', 'e'}, qos::at_least_once, false}),
            mqttsn::return_code::accepted);
  // Silence: no PINGREQ. Lost after 1.5 x 1 s.
  auto m = observer->wait_message("wills/mortal", 10s);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->payload, "gone");
  EXPECT_EQ(gateway->stat("lost_keep_alive"), 1U);
  EXPECT_EQ(gateway->stat("wills"), 1U);
}

TEST_P(GatewayEndToEnd, clean_disconnect_publishes_no_will) {
  ASSERT_TRUE(observer->subscribe("wills/#", 1));
  auto c = sensor("polite", 1);
  ASSERT_EQ(c.connect(true, tools::will{"wills/polite", {'x'}, qos::at_least_once, false}), mqttsn::return_code::accepted);
  c.disconnect();
  EXPECT_FALSE(observer->wait_message("wills/polite", 3s));
}

TEST_P(GatewayEndToEnd, will_update_changes_what_is_published) {
  ASSERT_TRUE(observer->subscribe("wills/#", 1));
  auto c = sensor("updater", 2);
  ASSERT_EQ(c.connect(true, tools::will{"wills/old", {'o'}, qos::at_least_once, false}), mqttsn::return_code::accepted);
  c.send_raw(mqttsn::encode(mqttsn::willtopicupd{qos::at_least_once, false, "wills/new"}));
  auto resp = c.receive_raw(3s);
  ASSERT_TRUE(resp);
  EXPECT_EQ(*resp, (mqttsn::bytes{0x03, 0x1B, 0x00}));
  c.send_raw(mqttsn::encode(mqttsn::willmsgupd{{'n', 'e', 'w'}}));
  resp = c.receive_raw(3s);
  ASSERT_TRUE(resp);
  EXPECT_EQ(*resp, (mqttsn::bytes{0x03, 0x1D, 0x00}));
  auto m = observer->wait_message("wills/#", 10s);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->topic, "wills/new");
  EXPECT_EQ(m->payload, "new");
}

TEST_P(GatewayEndToEnd, sleeping_client_gets_what_was_buffered_when_it_wakes) {
  auto c = sensor("sleeper");
  ASSERT_EQ(c.connect(false), mqttsn::return_code::accepted);
  EXPECT_EQ(c.subscribe(topic_name{"sleep/#"}, qos::at_least_once).rc, mqttsn::return_code::accepted);
  c.sleep(30);
  for (int cycle = 0; cycle < 2; ++cycle) {
    const std::string a = "a" + std::to_string(cycle);
    const std::string b = "b" + std::to_string(cycle);
    ASSERT_TRUE(observer->publish("sleep/one", a, 1));
    ASSERT_TRUE(observer->publish("sleep/two", b, 0));
    ASSERT_TRUE(wait_until([&] { return gateway->stat("buffered") >= 2U * (static_cast<unsigned>(cycle) + 1); }, 5s));
    const auto got = c.wake(10s);
    ASSERT_EQ(got.size(), 2U) << "cycle " << cycle;
    EXPECT_EQ(got[0].topic, "sleep/one");
    EXPECT_EQ(text(got[0].payload), a);
    EXPECT_EQ(got[1].topic, "sleep/two");
    EXPECT_EQ(text(got[1].payload), b);
  }
  EXPECT_EQ(gateway->stat("wakeups"), 2U);
}

TEST_P(GatewayEndToEnd, searchgw_is_answered_with_gwinfo) {
  auto c = sensor("searcher");
  const auto id = c.searchgw(0, 3s);
  ASSERT_TRUE(id);
  EXPECT_EQ(*id, 1);
}

TEST_P(GatewayEndToEndLongFrames, long_frames_use_the_three_byte_length_both_ways) {
  gateway.reset();
  gateway = std::make_unique<gateway_process>(
      broker->uri(), with_mode({"--max-frame-size", "4096", "--serial-max-frame-size", "4096"}));
  ASSERT_TRUE(observer->subscribe("big/#", 1));
  auto c = sensor("big");
  ASSERT_EQ(c.connect(), mqttsn::return_code::accepted);
  const std::string up(600, 'u');
  EXPECT_EQ(c.publish(topic_name{"big/up"}, up, qos::at_least_once), mqttsn::return_code::accepted);
  auto m = observer->wait_message("big/up");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->payload, up);
  EXPECT_EQ(c.subscribe(topic_name{"big/down"}, qos::at_least_once).rc, mqttsn::return_code::accepted);
  const std::string down(1000, 'd');
  ASSERT_TRUE(observer->publish("big/down", down, 1));
  auto r = c.receive(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(text(r->payload), down);
}

TEST_P(GatewayEndToEnd, frames_over_the_maximum_are_dropped_and_counted) {
  auto c = sensor("oversize");
  ASSERT_EQ(c.connect(), mqttsn::return_code::accepted);
  mqttsn::bytes huge = mqttsn::encode(mqttsn::publish{false, qos::at_most_once, false, mqttsn::topic_id_type::short_name,
                                                      mqttsn::short_topic_id('a', 'b'), 0, mqttsn::bytes(2000, 'x')});
  c.send_raw(huge);
  EXPECT_EQ(c.publish(short_topic{"ok"}, "fine", qos::at_least_once), mqttsn::return_code::accepted);
  // The transport drops it before the core sees it: no PUBACK, and the session still works.
  EXPECT_GE(gateway->stat("publishes_in"), 1U);
}

TEST_P(GatewayEndToEndTwoClients, malformed_frames_are_counted_while_other_clients_keep_working) {
  ASSERT_TRUE(observer->subscribe("good/#", 1));
  auto good = sensor("good");
  ASSERT_EQ(good.connect(), mqttsn::return_code::accepted);
  auto bad = sensor("bad");
  const std::vector<mqttsn::bytes> corpus = {
      {},                                        // empty datagram
      {0x00},                                    // length 0
      {0x05, 0x0C, 0x00},                        // length mismatch
      {0x03, 0x03, 0x00},                        // reserved type
      {0x09, 0x04, 0x04, 0x02, 0x00, 0x3C, 0x61, 0x62, 0x63},  // bad protocol id
      {0x07, 0x0C, 0x03, 0x00, 0x01, 0x00, 0x00},              // reserved topic id type
      {0x01, 0x00},                              // truncated long length
      {0x04, 0x10, 0x00, 0x09},                  // PUBREL from an unknown address
  };
  for (int round = 0; round < 3; ++round) {
    for (const auto& f : corpus) bad.send_raw(f);
    EXPECT_EQ(good.publish(topic_name{"good/r"}, std::to_string(round), qos::at_least_once), mqttsn::return_code::accepted);
  }
  for (int round = 0; round < 3; ++round) EXPECT_TRUE(observer->wait_message("good/r"));
  // A radio carries no empty payload: the simulator (like an XBee) drops the empty datagram.
  const std::uint64_t empty = serial() ? 0U : 3U;
  ASSERT_TRUE(wait_until([&] { return gateway->stat("malformed") >= 18U + empty; }, 5s));
  const auto s = gateway->stats();
  EXPECT_EQ(s.at("malformed"), 18U + empty);  // 7 malformed frames a round, each counted by its reason
  if (empty == 0) {
    EXPECT_EQ(s.count("malformed_empty"), 0U);
  } else {
    EXPECT_EQ(s.at("malformed_empty"), empty);
  }
  EXPECT_EQ(s.at("malformed_zero_length"), 3U);
  EXPECT_EQ(s.at("malformed_length_mismatch"), 3U);
  EXPECT_EQ(s.at("malformed_reserved_type"), 3U);
  EXPECT_EQ(s.at("malformed_bad_protocol_id"), 3U);
  EXPECT_EQ(s.at("malformed_reserved_topic_id_type"), 3U);
  EXPECT_EQ(s.at("malformed_truncated_length"), 3U);
  EXPECT_EQ(s.at("unknown_sender"), 3U);  // the PUBREL is well-formed, but from nobody we know
  EXPECT_EQ(s.at("clients"), 1U);
  // The upstream's Paho counters are in the same line: the three publishes went out, none refused.
  EXPECT_GE(s.at("upstream_publishes"), 3U);
  EXPECT_EQ(s.at("upstream_publishes_dropped"), 0U);
}

TEST_P(GatewayEndToEndUdp, ipv6_listener_serves_clients_on_loopback) {
  gateway.reset();
  const std::string udp = "[::1]:" + std::to_string(free_port(true));
  try {
    gateway = std::make_unique<gateway_process>(broker->uri(), with_mode({}), udp);
  } catch (const std::exception& e) {
    GTEST_FAIL() << "IPv6 gateway did not start: " << e.what();
  }
  ASSERT_TRUE(observer->subscribe("v6/#", 1));
  tools::client_options o;
  o.client_id = "six";
  tools::client c("::1", gateway->port(), o);
  ASSERT_EQ(c.connect(), mqttsn::return_code::accepted);
  EXPECT_EQ(c.publish(topic_name{"v6/hello"}, "world", qos::at_least_once), mqttsn::return_code::accepted);
  auto m = observer->wait_message("v6/hello");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->payload, "world");
}

TEST_P(GatewayEndToEnd, broker_restart_loses_no_qos1_message) {
  broker_options bo;
  bo.persistence = true;
  observer.reset();
  gateway.reset();
  broker = std::make_unique<mosquitto_broker>(bo);
  gateway = std::make_unique<gateway_process>(broker->uri(), with_mode({}));
  client_options keep;
  keep.client_id = "observer-kept";
  keep.clean_session = false;
  observer = std::make_unique<mqtt_test_client>(*broker, keep);
  ASSERT_TRUE(observer->subscribe("r/#", 1));

  // A sensor's own retry budget must outlast the outage (defaults: 3 x 10 s); reconnecting costs
  // Paho C 1.3.12 up to ~2 s per attempt on top of the backoff (README, known limitations).
  tools::client_options o;
  o.client_id = "restart";
  o.keep_alive = 60;
  o.retry_interval = 1s;
  o.retry_count = 20;
  auto c = sensor(o);
  ASSERT_EQ(c.connect(false), mqttsn::return_code::accepted);
  constexpr int total = 40;
  std::jthread restarter;
  for (int i = 0; i < total; ++i) {
    if (i == total / 2) {
      broker->stop();  // in flight: the next publishes wait, unacknowledged, for the broker
      restarter = std::jthread([&] {
        std::this_thread::sleep_for(300ms);
        broker->start();
      });
    }
    try {
      EXPECT_EQ(c.publish(topic_name{"r/" + std::to_string(i)}, std::to_string(i), qos::at_least_once),
                mqttsn::return_code::accepted)
          << i;
    } catch (const std::exception& e) {
      FAIL() << "message " << i << ": " << e.what() << "\ngateway log:\n" << gateway->log();
    }
  }
  restarter.join();
  ASSERT_TRUE(observer->connect());  // the observer's own session survived in the broker
  std::set<std::string> seen;
  wait_until(
      [&] {
        for (const auto& m : observer->received()) seen.insert(m.payload);
        return seen.size() == total;
      },
      15s);
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(total));
  // The gateway's own connection reconnects on its own backoff: it may come back after the
  // sensor's connection has carried all the messages.
  EXPECT_TRUE(wait_until([&] { return gateway->stat("broker") >= 1U; }, 15s)) << gateway->log();
}

// Transparent mode with each MQTT client (native, the default, and paho); aggregating mode's
// clients are covered by GatewayAggregating below.
const auto udp_modes = ::testing::Values(e2e_param{"transparent", "udp"}, e2e_param{"transparent", "udp", "paho"},
                                         e2e_param{"aggregating", "udp"});
std::string udp_name(const ::testing::TestParamInfo<e2e_param>& p) {
  return p.param.client == "native" ? p.param.mode : p.param.mode + "_" + p.param.client;
}
// Serial instances are named Serial/...: ctest gives them the label `serial` too.
const auto xbee = e2e_param{"transparent", "xbee-api2"};
const auto raw = e2e_param{"aggregating", "raw"};
std::string serial_name(const ::testing::TestParamInfo<e2e_param>& p) {
  std::string name = p.param.link + "_" + p.param.mode;
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

INSTANTIATE_TEST_SUITE_P(Modes, GatewayEndToEnd, udp_modes, udp_name);
INSTANTIATE_TEST_SUITE_P(Modes, GatewayEndToEndTwoClients, udp_modes, udp_name);
INSTANTIATE_TEST_SUITE_P(Modes, GatewayEndToEndLongFrames, udp_modes, udp_name);
INSTANTIATE_TEST_SUITE_P(Modes, GatewayEndToEndUdp, udp_modes, udp_name);
INSTANTIATE_TEST_SUITE_P(Serial, GatewayEndToEnd, ::testing::Values(xbee, raw), serial_name);
INSTANTIATE_TEST_SUITE_P(Serial, GatewayEndToEndTwoClients, ::testing::Values(xbee), serial_name);
INSTANTIATE_TEST_SUITE_P(Serial, GatewayEndToEndLongFrames, ::testing::Values(raw), serial_name);

// Aggregating mode only: what the shared connection and the fan-out table make visible, with each
// MQTT client of the shared connection (upstream-client native, the default, and paho).
class GatewayAggregating : public gateway_fixture, public ::testing::WithParamInterface<std::string> {
 protected:
  std::string mode() const override { return "aggregating"; }
  void SetUp() override {
    broker_options bo;
    bo.extra_config = {"sys_interval 1"};  // $SYS counters every second
    start({"--upstream-client-id", "agg-shared", "--upstream-client", GetParam()}, bo);
  }
  // Waits until the broker's $SYS `counter` reads `value` (it publishes it, retained, when it
  // changes); returns the last value seen.
  std::string sys_until(const std::string& counter, const std::string& value, std::chrono::milliseconds timeout = 8s) {
    const std::string topic = "$SYS/broker/" + counter;
    if (subscribed_sys_.insert(topic).second) observer->subscribe(topic, 0);
    std::string last = last_sys_[topic];
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (last != value) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      auto m = observer->wait_message(topic, left);
      if (!m) break;
      last = m->payload;
    }
    last_sys_[topic] = last;
    return last;
  }
  std::set<std::string> subscribed_sys_;
  std::map<std::string, std::string> last_sys_;
};

TEST_P(GatewayAggregating, all_clients_share_one_connection_with_the_upstream_client_id) {
  auto a = sensor("agg-a");
  auto b = sensor("agg-b");
  ASSERT_EQ(a.connect(), mqttsn::return_code::accepted);
  ASSERT_EQ(b.connect(), mqttsn::return_code::accepted);
  // The observer and the gateway's one connection, whatever the number of MQTT-SN clients.
  EXPECT_EQ(sys_until("clients/connected", "2"), "2");
  // MQTT 3.1.1 (p2), clean session false (c0), with the configured client id.
  EXPECT_NE(broker->log().find("as agg-shared (p2, c0"), std::string::npos) << broker->log();
  EXPECT_TRUE(gateway->log_contains("aggregating mode"));
  ASSERT_TRUE(observer->subscribe("agg/up/#", 2));
  EXPECT_EQ(a.publish(topic_name{"agg/up/a"}, "from-a", qos::at_least_once), mqttsn::return_code::accepted);
  EXPECT_EQ(b.publish(topic_name{"agg/up/b"}, "from-b", qos::exactly_once), mqttsn::return_code::accepted);
  auto m = observer->wait_message("agg/up/a");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->payload, "from-a");
  m = observer->wait_message("agg/up/b");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->qos, 2);
  // The client asked for carries the shared connection; its counters are in the stats line.
  EXPECT_TRUE(gateway->log_contains(GetParam() == "paho" ? "aggregating mode, Paho client" : "aggregating mode, native client"))
      << gateway->log();
  const auto st = gateway->stats();
  EXPECT_EQ(st.at("upstream_connects"), 1U);
  EXPECT_GE(st.at("upstream_acks"), 2U);  // the two publishes (and "online" with the native client)
  EXPECT_EQ(st.at("upstream_publishes_dropped"), 0U);
}

TEST_P(GatewayAggregating, two_subscribers_of_one_filter_are_one_upstream_subscription) {
  EXPECT_EQ(sys_until("subscriptions/count", "1"), "1");  // the observer's own $SYS subscription
  auto a = sensor("sub-a");
  auto b = sensor("sub-b");
  ASSERT_EQ(a.connect(), mqttsn::return_code::accepted);
  ASSERT_EQ(b.connect(), mqttsn::return_code::accepted);
  ASSERT_EQ(a.subscribe(topic_name{"agg/t"}, qos::at_least_once).rc, mqttsn::return_code::accepted);
  ASSERT_EQ(b.subscribe(topic_name{"agg/t"}, qos::at_least_once).rc, mqttsn::return_code::accepted);
  EXPECT_EQ(sys_until("subscriptions/count", "2"), "2");
  ASSERT_TRUE(observer->publish("agg/t", "both", 1));
  auto ma = a.receive(5s);
  auto mb = b.receive(5s);
  ASSERT_TRUE(ma && mb);
  EXPECT_EQ(text(ma->payload), "both");
  EXPECT_EQ(text(mb->payload), "both");

  // One leaves: the other still receives, the upstream subscription stays.
  a.unsubscribe(topic_name{"agg/t"});
  ASSERT_TRUE(observer->publish("agg/t", "b-only", 1));
  mb = b.receive(5s);
  ASSERT_TRUE(mb);
  EXPECT_EQ(text(mb->payload), "b-only");
  EXPECT_FALSE(a.receive(1s));
  EXPECT_EQ(sys_until("subscriptions/count", "2", 2s), "2");

  // The last one leaves: UNSUBSCRIBEd upstream.
  b.unsubscribe(topic_name{"agg/t"});
  EXPECT_EQ(sys_until("subscriptions/count", "1"), "1");
}

TEST_P(GatewayAggregating, a_new_subscriber_gets_the_retained_message_the_others_not_again) {
  ASSERT_TRUE(observer->publish("agg/state", "on", 1, true));
  auto a = sensor("ret-a");
  auto b = sensor("ret-b");
  ASSERT_EQ(a.connect(), mqttsn::return_code::accepted);
  ASSERT_EQ(b.connect(), mqttsn::return_code::accepted);
  ASSERT_EQ(a.subscribe(topic_name{"agg/state"}, qos::at_least_once).rc, mqttsn::return_code::accepted);
  auto ma = a.receive(5s);
  ASSERT_TRUE(ma);
  EXPECT_EQ(text(ma->payload), "on");
  EXPECT_TRUE(ma->retain);
  ASSERT_EQ(b.subscribe(topic_name{"agg/+"}, qos::at_least_once).rc, mqttsn::return_code::accepted);
  auto mb = b.receive(5s);
  ASSERT_TRUE(mb);
  EXPECT_EQ(mb->topic, "agg/state");
  EXPECT_EQ(text(mb->payload), "on");
  EXPECT_TRUE(mb->retain);
  EXPECT_FALSE(a.receive(1s));  // the re-SUBSCRIBE's retained copy is not a's
  // A live message reaches both, without the retain flag.
  ASSERT_TRUE(observer->publish("agg/state", "off", 1));
  ma = a.receive(5s);
  mb = b.receive(5s);
  ASSERT_TRUE(ma && mb);
  EXPECT_EQ(text(ma->payload), "off");
  EXPECT_FALSE(ma->retain);
  EXPECT_EQ(text(mb->payload), "off");
  EXPECT_FALSE(mb->retain);
}

// Two sensors SUBSCRIBE the same filter at once: the gateway sends both SUBSCRIBEs upstream
// before the broker answers the first, and each SUBSCRIBE's retained copy goes to its own sensor
// (once each; before the fix, fanout::route() gave both copies to the newer SUBSCRIBE's sensor).
TEST_P(GatewayAggregating, two_sensors_subscribing_together_each_get_the_retained_message_once) {
  ASSERT_TRUE(observer->publish("agg2/state", "on", 1, true));
  auto a = sensor("together-a");
  auto b = sensor("together-b");
  ASSERT_EQ(a.connect(), mqttsn::return_code::accepted);
  ASSERT_EQ(b.connect(), mqttsn::return_code::accepted);
  // Both SUBSCRIBEs on the wire before either SUBACK (send_raw does not wait).
  auto subscribe_frame = [](mqttsn::msg_id mid) {
    mqttsn::subscribe s{false, qos::at_least_once, mqttsn::topic_id_type::normal, mid, {}, 0};
    s.topic_name = "agg2/+";
    return mqttsn::encode(s);
  };
  a.send_raw(subscribe_frame(101));
  b.send_raw(subscribe_frame(102));
  for (auto* c : {&a, &b}) {
    auto m = c->receive(5s);
    ASSERT_TRUE(m) << c->client_id() << "\n" << gateway->log();
    EXPECT_EQ(m->topic, "agg2/state");
    EXPECT_EQ(text(m->payload), "on");
    EXPECT_TRUE(m->retain);
  }
  EXPECT_FALSE(a.receive(1s)) << gateway->log();
  EXPECT_FALSE(b.receive(1s)) << gateway->log();
  // Both subscriptions work: a live message reaches both.
  ASSERT_TRUE(observer->publish("agg2/state", "off", 1));
  for (auto* c : {&a, &b}) {
    auto m = c->receive(5s);
    ASSERT_TRUE(m) << c->client_id();
    EXPECT_EQ(text(m->payload), "off");
    EXPECT_FALSE(m->retain);
  }
}

TEST_P(GatewayAggregating, each_client_receives_at_its_own_granted_qos) {
  auto low = sensor("q-low");
  auto high = sensor("q-high");
  ASSERT_EQ(low.connect(), mqttsn::return_code::accepted);
  ASSERT_EQ(high.connect(), mqttsn::return_code::accepted);
  ASSERT_EQ(low.subscribe(topic_name{"agg/q"}, qos::at_most_once).rc, mqttsn::return_code::accepted);
  ASSERT_EQ(high.subscribe(topic_name{"agg/q"}, qos::exactly_once).rc, mqttsn::return_code::accepted);
  for (int q = 0; q <= 2; ++q) {
    ASSERT_TRUE(observer->publish("agg/q", "m" + std::to_string(q), q));
    auto ml = low.receive(5s);
    auto mh = high.receive(5s);
    ASSERT_TRUE(ml && mh) << "qos " << q;
    EXPECT_EQ(text(ml->payload), "m" + std::to_string(q));
    EXPECT_EQ(static_cast<int>(ml->q), 0);
    EXPECT_EQ(text(mh->payload), "m" + std::to_string(q));
    EXPECT_EQ(static_cast<int>(mh->q), q);
  }
}

TEST_P(GatewayAggregating, a_broker_that_lost_the_session_gets_every_subscription_again) {
  auto a = sensor("restore-a");
  ASSERT_EQ(a.connect(), mqttsn::return_code::accepted);
  ASSERT_EQ(a.subscribe(topic_name{"agg/keep/#"}, qos::at_least_once).rc, mqttsn::return_code::accepted);
  // Without persistence the restarted broker knows nothing of the shared session.
  broker->stop();
  broker->start();
  ASSERT_TRUE(wait_until([&] { return gateway->log_contains("subscriptions restored"); }, 20s)) << gateway->log();
  ASSERT_TRUE(wait_until([&] { return observer->connect(); }, 10s));
  ASSERT_TRUE(observer->publish("agg/keep/x", "again", 1));
  auto m = a.receive(10s);
  ASSERT_TRUE(m) << gateway->log();
  EXPECT_EQ(m->topic, "agg/keep/x");
  EXPECT_EQ(text(m->payload), "again");
}

// session-expiry: a kept session whose sensor never comes back is discarded, and with it the
// shared connection's subscription it was the last holder of.
class GatewayAggregatingExpiry : public GatewayAggregating {
 protected:
  void SetUp() override {
    broker_options bo;
    bo.extra_config = {"sys_interval 1"};
    start({"--upstream-client", GetParam(), "--session-expiry", "2"}, bo);
  }
};

TEST_P(GatewayAggregatingExpiry, an_expired_kept_session_leaves_the_shared_subscriptions) {
  EXPECT_EQ(sys_until("subscriptions/count", "1"), "1");  // the observer's own $SYS subscription
  auto a = sensor("exp-a");
  ASSERT_EQ(a.connect(false), mqttsn::return_code::accepted);
  ASSERT_EQ(a.subscribe(topic_name{"agg/exp/#"}, qos::at_least_once).rc, mqttsn::return_code::accepted);
  EXPECT_EQ(sys_until("subscriptions/count", "2"), "2");
  a.disconnect();
  // Offline, the kept session still buffers what its subscription brings.
  ASSERT_TRUE(observer->publish("agg/exp/x", "while-away", 1));
  ASSERT_TRUE(wait_until([&] { return gateway->stat("buffered") >= 1; }, 5s)) << gateway->log();
  EXPECT_EQ(gateway->stat("sessions_expired"), 0U);
  // Two seconds unheard of: discarded, counted, logged, and UNSUBSCRIBEd upstream.
  ASSERT_TRUE(wait_until([&] { return gateway->stat("sessions_expired") == 1; }, 10s)) << gateway->log();
  EXPECT_TRUE(gateway->log_contains("exp-a")) << gateway->log();
  EXPECT_TRUE(gateway->log_contains("kept session expired")) << gateway->log();
  EXPECT_EQ(sys_until("subscriptions/count", "1"), "1");
  const auto st = gateway->stats();
  EXPECT_EQ(st.at("clients"), 0U);
  EXPECT_EQ(st.at("dropped_qos12"), 1U);  // what it had buffered, counted
  // The sensor back with clean session false finds a new, empty session.
  ASSERT_EQ(a.connect(false), mqttsn::return_code::accepted);
  ASSERT_TRUE(observer->publish("agg/exp/x", "after", 1));
  EXPECT_FALSE(a.receive(1500ms));
}

// A UDP socket for the multicast test: joined to `group` on the loopback interface when
// `join`, multicasting through loopback, so nothing leaves the machine.
class loopback_udp {
 public:
  loopback_udp(const std::string& group, std::uint16_t port, bool join) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const int yes = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_port = htons(join ? port : 0);
    local.sin_addr.s_addr = htonl(join ? INADDR_ANY : INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) throw std::runtime_error("bind");
    in_addr lo{};
    lo.s_addr = htonl(INADDR_LOOPBACK);
    ::setsockopt(fd_, IPPROTO_IP, IP_MULTICAST_IF, &lo, sizeof lo);
    if (join) {
      ip_mreq m{};
      ::inet_pton(AF_INET, group.c_str(), &m.imr_multiaddr);
      m.imr_interface = lo;
      if (::setsockopt(fd_, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m) != 0) throw std::runtime_error("join");
    }
  }
  ~loopback_udp() { ::close(fd_); }
  loopback_udp(const loopback_udp&) = delete;
  loopback_udp& operator=(const loopback_udp&) = delete;

  void send_to(const std::string& host, std::uint16_t port, const mqttsn::bytes& frame) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    ::inet_pton(AF_INET, host.c_str(), &to.sin_addr);
    ::sendto(fd_, frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  }
  // The next datagram equal to `want` within `timeout` (others are skipped).
  bool expect(const mqttsn::bytes& want, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      std::uint8_t buf[512];
      const auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0 && mqttsn::bytes(buf, buf + n) == want) return true;
    }
  }

 private:
  int fd_ = -1;
};

TEST(GatewayMulticast, advertise_and_searchgw_over_a_loopback_multicast_group) {
  mosquitto_broker broker;
  const std::uint16_t group_port = free_port(true);
  const std::string group = "239.255.77." + std::to_string(1 + group_port % 250);
  gateway_process gw(broker.uri(), {"--gateway-id", "9", "--advertise-interval", "1", "--multicast",
                                    group + ":" + std::to_string(group_port)});
  loopback_udp listener(group, group_port, true);
  // ADVERTISE every second, duration 1 s, to the group.
  EXPECT_TRUE(listener.expect(mqttsn::bytes{0x05, 0x00, 0x09, 0x00, 0x01}, 5s));
  // SEARCHGW to the group: GWINFO back to the sender by unicast, and to the group.
  loopback_udp searcher(group, group_port, false);
  searcher.send_to(group, group_port, mqttsn::bytes{0x03, 0x01, 0x00});
  EXPECT_TRUE(searcher.expect(mqttsn::bytes{0x03, 0x02, 0x09}, 5s));
  EXPECT_TRUE(listener.expect(mqttsn::bytes{0x03, 0x02, 0x09}, 5s));
}

}  // namespace
INSTANTIATE_TEST_SUITE_P(Clients, GatewayAggregating, ::testing::Values("native", "paho"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });
INSTANTIATE_TEST_SUITE_P(Clients, GatewayAggregatingExpiry, ::testing::Values("native", "paho"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

}  // namespace itest
