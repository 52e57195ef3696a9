// The serial transport end to end: the real mqttsn-gateway with --serial on a pty that
// mqttsn-serial-sim owns (an emulated XBee coordinator in API mode 1 or 2, or a raw-framed device),
// MQTT-SN clients reaching it through the simulator's UDP side, and a real Mosquitto.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <gtest/gtest.h>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/gateway_process.hpp"
#include "tests/integration/harness.hpp"
#include "tests/integration/serial_sim.hpp"
#include "tools/client/mqttsn_client.hpp"

namespace {

using namespace std::chrono_literals;
using mqttsn::qos;
using mqttsn::return_code;

using itest::read_file;
using itest::report_on_failure;
using itest::serial_sim;

tools::client_options client_opts(const std::string& id, std::uint16_t keep_alive = 30) {
  // 12 s: broker connects are slow under load
  return itest::traced(tools::client_options{id, keep_alive, 2000ms, 5, {}});
}

bool wait_serial_open(itest::gateway_process& gw, std::size_t times = 1, std::chrono::milliseconds timeout = 10s) {
  return itest::wait_until(
      [&] {
        const auto log = gw.log();
        std::size_t n = 0;
        for (auto at = log.find("serial0/: opened"); at != std::string::npos; at = log.find("serial0/: opened", at + 1)) ++n;
        return n >= times;
      },
      timeout);
}

// User + system CPU time of a process in clock ticks, from /proc/<pid>/stat.
long cpu_ticks(pid_t pid) {
  std::string text = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto close = text.rfind(')');
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  long utime = 0;
  long stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return utime + stime;
}

// Publish at QoS 0, 1 and 2 and receive from the broker, through one framing.
void publish_and_subscribe(const std::string& framing) {
  itest::mosquitto_broker broker;
  itest::temp_dir dir("mqttsn-serial");
  serial_sim sim(dir.path(), framing);
  itest::gateway_process gw(broker.uri(), sim.gateway_args());
  report_on_failure report(gw, sim);
  ASSERT_TRUE(wait_serial_open(gw)) << gw.log();
  itest::mqtt_test_client watcher(broker);
  ASSERT_TRUE(watcher.subscribe("serial/#", 2));

  tools::client c("127.0.0.1", sim.port(), client_opts("sensor-" + framing));
  ASSERT_EQ(c.connect(), return_code::accepted);
  EXPECT_TRUE(gw.log_contains("serial0/")) << gw.log();
  for (const auto q : {qos::at_most_once, qos::at_least_once, qos::exactly_once}) {
    const auto payload = "q" + std::to_string(static_cast<int>(q));
    EXPECT_EQ(c.publish(tools::topic_name{"serial/up"}, payload, q), return_code::accepted);
    const auto m = watcher.wait_message("serial/up", 10s);
    ASSERT_TRUE(m) << gw.log();
    EXPECT_EQ(m->payload, payload);
  }
  const auto sub = c.subscribe(tools::topic_name{"serial/down"}, qos::at_least_once);
  EXPECT_EQ(sub.rc, return_code::accepted);
  ASSERT_TRUE(watcher.publish("serial/down", "to-sensor", 1));
  const auto got = c.receive(10s);
  ASSERT_TRUE(got) << gw.log();
  EXPECT_EQ(got->topic, "serial/down");
  EXPECT_EQ(std::string(got->payload.begin(), got->payload.end()), "to-sensor");
  c.disconnect();
}

TEST(SerialXbee, api_mode_2_publish_qos_0_1_2_and_subscribe) { publish_and_subscribe("xbee-api2"); }
TEST(SerialXbee, api_mode_1_publish_qos_0_1_2_and_subscribe) { publish_and_subscribe("xbee-api1"); }
TEST(SerialRaw, raw_framing_publish_qos_0_1_2_and_subscribe) { publish_and_subscribe("raw"); }

TEST(SerialXbee, two_sensors_have_their_own_64_bit_addresses) {
  itest::mosquitto_broker broker;
  itest::temp_dir dir("mqttsn-serial");
  serial_sim sim(dir.path(), "xbee-api2");
  itest::gateway_process gw(broker.uri(), sim.gateway_args());
  report_on_failure report(gw, sim);
  ASSERT_TRUE(wait_serial_open(gw)) << gw.log();
  itest::mqtt_test_client watcher(broker);

  tools::client a("127.0.0.1", sim.port(), client_opts("sensor-a"));
  tools::client b("127.0.0.1", sim.port(), client_opts("sensor-b"));
  ASSERT_EQ(a.connect(), return_code::accepted);
  ASSERT_EQ(b.connect(), return_code::accepted);
  EXPECT_EQ(a.subscribe(tools::topic_name{"to/a"}, qos::at_least_once).rc, return_code::accepted);
  EXPECT_EQ(b.subscribe(tools::topic_name{"to/b"}, qos::at_least_once).rc, return_code::accepted);
  ASSERT_TRUE(watcher.publish("to/a", "for-a", 1));
  ASSERT_TRUE(watcher.publish("to/b", "for-b", 1));
  const auto ma = a.receive(10s);
  const auto mb = b.receive(10s);
  ASSERT_TRUE(ma && mb) << gw.log();
  EXPECT_EQ(std::string(ma->payload.begin(), ma->payload.end()), "for-a");
  EXPECT_EQ(std::string(mb->payload.begin(), mb->payload.end()), "for-b");
  EXPECT_FALSE(a.receive(300ms));  // nothing of b's

  // The gateway knows them by two different 64-bit XBee addresses.
  const auto log = gw.log();
  std::vector<std::string> endpoints;
  for (const auto* id : {"sensor-a (serial0/", "sensor-b (serial0/"}) {
    const auto at = log.find(id);
    ASSERT_NE(at, std::string::npos) << log;
    endpoints.push_back(log.substr(at + std::strlen(id), 16));
  }
  EXPECT_NE(endpoints[0], endpoints[1]);
  for (const auto& e : endpoints) EXPECT_TRUE(e.starts_with("0013A200")) << e;
  a.disconnect();
  b.disconnect();
}

TEST(SerialRaw, forwarder_encapsulation_carries_two_sensors_on_one_line) {
  itest::mosquitto_broker broker;
  itest::temp_dir dir("mqttsn-serial");
  serial_sim sim(dir.path(), "raw", {"--raw-fe"});
  itest::gateway_process gw(broker.uri(), sim.gateway_args());
  report_on_failure report(gw, sim);
  ASSERT_TRUE(wait_serial_open(gw)) << gw.log();
  itest::mqtt_test_client watcher(broker);
  ASSERT_TRUE(watcher.subscribe("fe/#", 1));
  tools::client a("127.0.0.1", sim.port(), client_opts("node-a"));
  tools::client b("127.0.0.1", sim.port(), client_opts("node-b"));
  ASSERT_EQ(a.connect(), return_code::accepted);
  ASSERT_EQ(b.connect(), return_code::accepted);
  EXPECT_EQ(a.publish(tools::topic_name{"fe/a"}, "from-a", qos::at_least_once), return_code::accepted);
  EXPECT_EQ(b.publish(tools::topic_name{"fe/b"}, "from-b", qos::at_least_once), return_code::accepted);
  const auto ma = watcher.wait_message("fe/a", 10s);
  const auto mb = watcher.wait_message("fe/b", 10s);
  ASSERT_TRUE(ma && mb) << gw.log();
  EXPECT_EQ(ma->payload, "from-a");
  EXPECT_EQ(mb->payload, "from-b");
  a.disconnect();
  b.disconnect();
}

TEST(SerialXbee, sleeping_client_gets_its_messages_on_wake_up) {
  itest::mosquitto_broker broker;
  itest::temp_dir dir("mqttsn-serial");
  serial_sim sim(dir.path(), "xbee-api2");
  itest::gateway_process gw(broker.uri(), sim.gateway_args());
  report_on_failure report(gw, sim);
  ASSERT_TRUE(wait_serial_open(gw)) << gw.log();
  itest::mqtt_test_client watcher(broker);

  tools::client c("127.0.0.1", sim.port(), client_opts("sleeper"));
  ASSERT_EQ(c.connect(), return_code::accepted);
  EXPECT_EQ(c.subscribe(tools::topic_name{"sleep/in"}, qos::at_least_once).rc, return_code::accepted);
  c.sleep(60);
  ASSERT_TRUE(watcher.publish("sleep/in", "one", 1));
  ASSERT_TRUE(watcher.publish("sleep/in", "two", 1));
  // The broker's deliveries reach the gateway asynchronously: wake up until both have come.
  std::vector<tools::received_message> got;
  ASSERT_TRUE(itest::wait_until(
      [&] {
        for (auto& m : c.wake(5s)) got.push_back(std::move(m));
        return got.size() >= 2;
      },
      10s))
      << gw.log();
  ASSERT_EQ(got.size(), 2u) << gw.log();
  EXPECT_EQ(std::string(got[0].payload.begin(), got[0].payload.end()), "one");
  EXPECT_EQ(std::string(got[1].payload.begin(), got[1].payload.end()), "two");
  c.disconnect();
}

TEST(SerialXbee, unplug_and_replug_lose_no_qos1_message_and_do_not_busy_loop) {
  itest::mosquitto_broker broker;
  itest::temp_dir dir("mqttsn-serial");
  auto sim = std::make_unique<serial_sim>(dir.path(), "xbee-api2");
  // Retransmissions outlast the outage: every second, 30 times.
  itest::gateway_process gw(broker.uri(),
                            sim->gateway_args({"--retry-interval", "1", "--retry-count", "30"}));
  report_on_failure report(gw, *sim);
  ASSERT_TRUE(wait_serial_open(gw)) << gw.log();
  itest::mqtt_test_client watcher(broker);
  ASSERT_TRUE(watcher.subscribe("plug/#", 1));

  tools::client c("127.0.0.1", sim->port(), client_opts("plugged", 60));
  ASSERT_EQ(c.connect(), return_code::accepted);
  EXPECT_EQ(c.subscribe(tools::topic_name{"plug/down"}, qos::at_least_once).rc, return_code::accepted);

  sim->unplug();
  ASSERT_TRUE(itest::wait_until([&] { return gw.log_contains("serial0/: lost"); }, 10s)) << gw.log();
  // Messages for the sensor while its radio is away.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(watcher.publish("plug/down", "m" + std::to_string(i), 1));

  // Absent device: no busy loop (a few retries over 3 s cost next to no CPU).
  const long before = cpu_ticks(gw.pid());
  std::this_thread::sleep_for(3s);
  const long used = cpu_ticks(gw.pid()) - before;
  EXPECT_LT(used, 30) << "ticks of CPU in 3 s while the device was absent";  // < 0.3 s
  EXPECT_NE(gw.log().find("reopening with backoff (logged once)"), std::string::npos);

  // Replug on the same --link path (a new pty behind it).
  sim->start();
  ASSERT_TRUE(wait_serial_open(gw, 2)) << gw.log();
  std::vector<std::string> got;
  ASSERT_TRUE(itest::wait_until(
      [&] {
        if (const auto m = c.receive(200ms)) got.emplace_back(m->payload.begin(), m->payload.end());
        return got.size() >= 3;
      },
      20s))
      << gw.log();
  std::sort(got.begin(), got.end());
  got.erase(std::unique(got.begin(), got.end()), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"m0", "m1", "m2"}));
  // And the sensor publishes again through the new pty.
  EXPECT_EQ(c.publish(tools::topic_name{"plug/up"}, "after", qos::at_least_once), return_code::accepted);
  const auto m = watcher.wait_message("plug/up", 10s);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->payload, "after");
  c.disconnect();
}

TEST(SerialXbee, module_in_the_wrong_api_mode_stops_the_gateway_with_a_fix) {
  itest::mosquitto_broker broker;
  itest::temp_dir dir("mqttsn-serial");
  serial_sim sim(dir.path(), "xbee-api1");  // answers AT AP with 1
  const auto log = dir.path() / "gw.log";
  const pid_t pid = itest::spawn_process({MQTTSN_GATEWAY_BIN, "--broker", broker.uri(), "--udp",
                                          "127.0.0.1:" + std::to_string(itest::free_port(true)), "--serial",
                                          sim.link(), "--serial-framing", "xbee-api2"},
                                         log);
  int status = 0;
  const bool exited = itest::wait_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, 15s);
  if (!exited) itest::stop_process(pid, 0ms);
  ASSERT_TRUE(exited) << read_file(log);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
  const auto text = read_file(log);
  EXPECT_NE(text.find("is in API mode 1 (AP=1) but --serial-framing is xbee-api2: set AP=2 with XCTU"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("or use --serial-framing xbee-api1"), std::string::npos) << text;
}

TEST(SerialXbee, module_that_never_answers_at_commands_is_a_warning_only) {
  itest::mosquitto_broker broker;
  itest::temp_dir dir("mqttsn-serial");
  serial_sim sim(dir.path(), "xbee-api2", {"--no-at"});
  itest::gateway_process gw(broker.uri(), sim.gateway_args());
  report_on_failure report(gw, sim);
  ASSERT_TRUE(itest::wait_until([&] { return gw.log_contains("no answer to AT"); }, 10s)) << gw.log();
  tools::client c("127.0.0.1", sim.port(), client_opts("quiet-module"));
  EXPECT_EQ(c.connect(), return_code::accepted);
  c.disconnect();
}

TEST(SerialXbee, frames_above_the_radio_payload_are_refused_and_counted) {
  itest::mosquitto_broker broker;
  itest::temp_dir dir("mqttsn-serial");
  serial_sim sim(dir.path(), "xbee-api2", {"--np", "60"});
  itest::gateway_process gw(broker.uri(), sim.gateway_args());
  report_on_failure report(gw, sim);
  ASSERT_TRUE(itest::wait_until([&] { return gw.log_contains("NP=60"); }, 10s)) << gw.log();
  itest::mqtt_test_client watcher(broker);
  tools::client c("127.0.0.1", sim.port(), client_opts("small-radio"));
  ASSERT_EQ(c.connect(), return_code::accepted);
  EXPECT_EQ(c.subscribe(tools::topic_name{"big/down"}, qos::at_most_once).rc, return_code::accepted);
  ASSERT_TRUE(watcher.publish("big/down", std::string(100, 'x'), 0));
  ASSERT_TRUE(watcher.publish("big/down", "small", 0));
  const auto m = c.receive(10s);
  ASSERT_TRUE(m) << gw.log();
  EXPECT_EQ(std::string(m->payload.begin(), m->payload.end()), "small");
  EXPECT_TRUE(gw.log_contains("refused a 107-byte frame to serial0/")) << gw.log();
  c.disconnect();
  gw.stop();  // the serial counters are logged when it stops
  EXPECT_TRUE(gw.log_contains("oversize_refused=1 ")) << gw.log();
}

// A device absent at start-up is not an error: logged once, retried with backoff while UDP
// clients are served, opened when it appears.
TEST(SerialXbee, a_device_absent_at_start_up_is_opened_when_it_appears) {
  itest::mosquitto_broker broker;
  itest::temp_dir dir("mqttsn-serial");
  const auto link = (dir.path() / "xbee0").string();  // where serial_sim will put its link
  itest::gateway_process gw(broker.uri(), {"--serial", link, "--serial-framing", "xbee-api2", "--serial-baud",
                                           "115200", "--log-level", "debug"});
  // Retried (debug lines), warned about once.
  ASSERT_TRUE(itest::wait_until([&] { return gw.log_contains(": reopen " + link + " failed"); }, 10s)) << gw.log();
  const auto log = gw.log();
  const std::string warning = "serial0/: cannot open " + link;
  const auto at = log.find(warning);
  ASSERT_NE(at, std::string::npos) << log;
  EXPECT_EQ(log.find("cannot open", at + warning.size()), std::string::npos) << log;
  // UDP serves meanwhile.
  tools::client u(gw.host(), gw.port(), client_opts("udp-sensor"));
  ASSERT_EQ(u.connect(), return_code::accepted);

  serial_sim sim(dir.path(), "xbee-api2");
  report_on_failure report(gw, sim);
  ASSERT_EQ(sim.link(), link);
  // The backoff doubles from 1 s: the attempt after the device appears comes within 8 s.
  ASSERT_TRUE(wait_serial_open(gw, 1, 20s)) << gw.log();
  tools::client c("127.0.0.1", sim.port(), client_opts("late-radio"));
  ASSERT_EQ(c.connect(), return_code::accepted);
  c.disconnect();
  u.disconnect();
}

// 0x8A: a radio that reset (brown-out, watchdog) has forgotten what the gateway asked it at
// start-up and sends no 0x8B for what it had queued: the gateway logs it and asks again; the
// sessions carry on.
TEST(SerialXbee, a_radio_that_reboots_is_queried_again_and_sessions_carry_on) {
  itest::mosquitto_broker broker;
  itest::temp_dir dir("mqttsn-serial");
  serial_sim sim(dir.path(), "xbee-api2");
  itest::gateway_process gw(broker.uri(), sim.gateway_args());
  report_on_failure report(gw, sim);
  const auto queried = [&] {
    const auto log = gw.log();
    std::size_t n = 0;
    for (auto at = log.find("coordinator address"); at != std::string::npos; at = log.find("coordinator address", at + 1)) ++n;
    return n;
  };
  ASSERT_TRUE(itest::wait_until([&] { return queried() == 1; }, 10s)) << gw.log();
  itest::mqtt_test_client watcher(broker);
  ASSERT_TRUE(watcher.subscribe("reboot/#", 1));
  tools::client c("127.0.0.1", sim.port(), client_opts("survivor"));
  ASSERT_EQ(c.connect(), return_code::accepted);

  sim.reboot();
  ASSERT_TRUE(itest::wait_until([&] { return queried() == 2; }, 10s)) << gw.log();
  EXPECT_TRUE(gw.log_contains("XBee modem status 0x00: hardware reset"));
  EXPECT_TRUE(gw.log_contains("XBee modem status 0x06: coordinator started"));
  EXPECT_EQ(c.publish(tools::topic_name{"reboot/up"}, "still here", qos::at_least_once), return_code::accepted);
  const auto m = watcher.wait_message("reboot/up", 10s);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->payload, "still here");
  c.disconnect();
}

// 0x8B with a failure: logged with the frame's destination and the radio's reason, counted. Here
// the module never answered NP, so the gateway did not know its payload limit and the radio
// refused the frame itself (0x74, payload too large).
TEST(SerialXbee, failed_transmit_statuses_are_logged_with_the_reason) {
  itest::mosquitto_broker broker;
  itest::temp_dir dir("mqttsn-serial");
  serial_sim sim(dir.path(), "xbee-api2", {"--no-at", "--np", "60"});
  itest::gateway_process gw(broker.uri(), sim.gateway_args());
  report_on_failure report(gw, sim);
  ASSERT_TRUE(itest::wait_until([&] { return gw.log_contains("no answer to AT"); }, 10s)) << gw.log();
  itest::mqtt_test_client watcher(broker);
  tools::client c("127.0.0.1", sim.port(), client_opts("far-away"));
  ASSERT_EQ(c.connect(), return_code::accepted);
  EXPECT_EQ(c.subscribe(tools::topic_name{"tx/down"}, qos::at_most_once).rc, return_code::accepted);
  ASSERT_TRUE(watcher.publish("tx/down", std::string(100, 'x'), 0));
  ASSERT_TRUE(itest::wait_until([&] { return gw.log_contains("failed: payload too large (0x74"); }, 10s))
      << gw.log();
  EXPECT_TRUE(gw.log_contains(" to serial0/0013A200")) << gw.log();
  ASSERT_TRUE(watcher.publish("tx/down", "small", 0));
  const auto m = c.receive(10s);
  ASSERT_TRUE(m);
  EXPECT_EQ(std::string(m->payload.begin(), m->payload.end()), "small");
  c.disconnect();
  gw.stop();
  EXPECT_TRUE(gw.log_contains("tx_status_failed=1")) << gw.log();
}

}  // namespace
