// The serial transport end to end: the real mqttsn-gateway with --serial on a pty that
// mqttsn-serial-sim owns (an emulated XBee coordinator in API mode 1 or 2, or a raw-framed device),
// MQTT-SN clients reaching it through the simulator's UDP side, and a real Mosquitto.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ctime>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <gtest/gtest.h>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/gateway_process.hpp"
#include "tests/integration/harness.hpp"
#include "tools/client/mqttsn_client.hpp"

#ifndef MQTTSN_SERIAL_SIM_BIN
#error "MQTTSN_SERIAL_SIM_BIN must name the simulator (tests/integration/CMakeLists.txt defines it)"
#endif

namespace {

using namespace std::chrono_literals;
using mqttsn::qos;
using mqttsn::return_code;

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The simulator as a child process: a pty behind a stable --link path, UDP sensors on `port`.
class serial_sim {
 public:
  serial_sim(const std::filesystem::path& dir, std::string framing, std::vector<std::string> extra = {})
      : link_((dir / "xbee0").string()),
        log_(dir / "sim.log"),
        framing_(std::move(framing)),
        extra_(std::move(extra)),
        port_(itest::free_port(true)) {
    start();
  }
  ~serial_sim() { unplug(); }
  serial_sim(const serial_sim&) = delete;
  serial_sim& operator=(const serial_sim&) = delete;

  void start() {
    // --verbose: every frame with its time, for the failure report.
    std::vector<std::string> argv{MQTTSN_SERIAL_SIM_BIN, "--udp",  "127.0.0.1:" + std::to_string(port_),
                                  "--link",              link_,    "--framing",
                                  framing_,              "--baud", "115200",
                                  "--verbose"};
    argv.insert(argv.end(), extra_.begin(), extra_.end());
    pid_ = itest::spawn_process(argv, log_);
    const bool up = itest::wait_until([&] { return std::filesystem::exists(link_); }, 5s) &&
                    itest::wait_until([&] { return read_text(log_).find("udp ") != std::string::npos; }, 5s);
    if (!up) throw std::runtime_error("simulator did not start: " + read_text(log_));
  }
  // The pty vanishes as when a USB adapter is pulled: its stable name goes first (udev removes
  // /dev/serial/by-id links with the device), then SIGKILL. A --link left dangling would be a
  // trap: the kernel gives the freed pty number to the next pty anyone opens (another test's
  // simulator, another developer's test run), and a gateway reopening the link would read, and
  // steal frames from, a line that is not its own.
  void unplug() {
    if (pid_ <= 0) return;
    std::error_code ec;
    std::filesystem::remove(link_, ec);
    itest::stop_process(pid_, 0ms);
    pid_ = -1;
  }
  const std::string& link() const { return link_; }
  std::uint16_t port() const { return port_; }
  std::string log() const { return read_text(log_); }

 private:
  std::string link_;
  std::filesystem::path log_;
  std::string framing_;
  std::vector<std::string> extra_;
  std::uint16_t port_;
  pid_t pid_ = -1;
};

// The frames each test client sent and received, with their times: printed when a test fails.
class client_trace {
 public:
  void add(const std::string& who, std::string_view line) {
    const auto now = std::chrono::system_clock::now();
    const auto t = std::chrono::system_clock::to_time_t(now);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    ::localtime_r(&t, &tm);
    char stamp[32];
    std::snprintf(stamp, sizeof stamp, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
    const std::lock_guard lock(mutex_);
    text_ += std::string(stamp) + ' ' + who + ": " + std::string(line) + '\n';
  }
  std::string text() const {
    const std::lock_guard lock(mutex_);
    return text_;
  }

 private:
  mutable std::mutex mutex_;
  std::string text_;
};

client_trace& trace() {
  static client_trace t;
  return t;
}

tools::client_options client_opts(const std::string& id, std::uint16_t keep_alive = 30) {
  tools::client_options o{id, keep_alive, 2000ms, 5, {}};  // 12 s: broker connects are slow under load
  o.debug = [id](std::string_view line) { trace().add(id, line); };
  return o;
}

// Declared after the gateway and the simulator: when the test has failed, prints their logs and
// the clients' frames, so that an intermittent failure can be explained from one run.
class report_on_failure {
 public:
  report_on_failure(const itest::gateway_process& gw, const serial_sim& sim) : gw_(gw), sim_(sim) {}
  ~report_on_failure() {
    // An exception on its way to gtest is a failure not recorded yet.
    if (!::testing::Test::HasFailure() && std::uncaught_exceptions() == 0) return;
    std::cerr << "---- gateway log\n"
              << gw_.log() << "---- simulator log\n"
              << sim_.log() << "---- client frames\n"
              << trace().text() << "----\n";
  }
  report_on_failure(const report_on_failure&) = delete;
  report_on_failure& operator=(const report_on_failure&) = delete;

 private:
  const itest::gateway_process& gw_;
  const serial_sim& sim_;
};

std::vector<std::string> serial_args(const serial_sim& sim, const std::string& framing,
                                     std::vector<std::string> more = {}) {
  std::vector<std::string> args{"--serial",      sim.link(), "--serial-framing", framing, "--serial-baud",
                                "115200",        "--log-level", "trace"};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

bool wait_serial_open(itest::gateway_process& gw, std::size_t times = 1) {
  return itest::wait_until(
      [&] {
        const auto log = gw.log();
        std::size_t n = 0;
        for (auto at = log.find("serial0/: opened"); at != std::string::npos; at = log.find("serial0/: opened", at + 1)) ++n;
        return n >= times;
      },
      10s);
}

// User + system CPU time of a process in clock ticks, from /proc/<pid>/stat.
long cpu_ticks(pid_t pid) {
  std::string text = read_text("/proc/" + std::to_string(pid) + "/stat");
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
  itest::gateway_process gw(broker.uri(), serial_args(sim, framing));
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
  itest::gateway_process gw(broker.uri(), serial_args(sim, "xbee-api2"));
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
  itest::gateway_process gw(broker.uri(), serial_args(sim, "raw"));
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
  itest::gateway_process gw(broker.uri(), serial_args(sim, "xbee-api2"));
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
                            serial_args(*sim, "xbee-api2", {"--retry-interval", "1", "--retry-count", "30"}));
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
  ASSERT_TRUE(exited) << read_text(log);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
  const auto text = read_text(log);
  EXPECT_NE(text.find("is in API mode 1 (AP=1) but --serial-framing is xbee-api2: set AP=2 with XCTU"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("or use --serial-framing xbee-api1"), std::string::npos) << text;
}

TEST(SerialXbee, module_that_never_answers_at_commands_is_a_warning_only) {
  itest::mosquitto_broker broker;
  itest::temp_dir dir("mqttsn-serial");
  serial_sim sim(dir.path(), "xbee-api2", {"--no-at"});
  itest::gateway_process gw(broker.uri(), serial_args(sim, "xbee-api2"));
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
  itest::gateway_process gw(broker.uri(), serial_args(sim, "xbee-api2"));
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
  EXPECT_TRUE(gw.log_contains("refused a")) << gw.log();
  c.disconnect();
}

}  // namespace
