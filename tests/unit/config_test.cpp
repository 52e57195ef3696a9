// The daemon's configuration: defaults, every key from the command line and from a file, which
// source wins, every error message (one line naming the key), each bound at the bound, --help and
// --version, the predefined-topics file, and the example files in etc/ kept equal to the defaults.
#include "gateway/config.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#ifndef MQTTSN_SOURCE_DIR
#error "MQTTSN_SOURCE_DIR must name the source tree (tests/CMakeLists.txt defines it)"
#endif

namespace gateway {

// Readable failures for whole-config comparisons.
void PrintTo(const udp_listen& l, std::ostream* os) { *os << l.host << ":" << l.port; }

void PrintTo(const config& c, std::ostream* os) {
  *os << "{broker " << c.broker << ", udp";
  for (const auto& l : c.udp) *os << " " << l.host << ":" << l.port;
  *os << ", gateway-id " << int{c.gateway_id} << ", mode " << static_cast<int>(c.mode)
      << ", predefined";
  for (const auto& [id, topic] : c.predefined) *os << " " << id << "=" << topic;
  *os << ", predefined-file '" << c.predefined_file << "', advertise-interval "
      << c.advertise_interval.count() << ", multicast "
      << (c.multicast ? c.multicast->host + ":" + std::to_string(c.multicast->port) : "off")
      << ", keep-alive-grace " << c.keep_alive_grace << ", retry-interval "
      << c.retry_interval.count() << "ms, retry-count " << c.retry_count << ", max-clients "
      << c.max_clients << ", sleep-buffer " << c.sleep_buffer << ", session-expiry "
      << c.session_expiry.count() << ", max-frame-size "
      << c.max_frame_size << ", udp-receive-buffer " << c.udp_receive_buffer << ", connect-timeout " << c.connect_timeout.count()
      << "ms, upstream-max-queued " << c.upstream_max_queued << ", upstream-max-held " << c.upstream_max_held
      << ", serial '" << c.serial << "' baud " << c.serial_baud << " framing "
      << static_cast<int>(c.serial_frame) << " flow " << static_cast<int>(c.serial_flow_control)
      << " max " << c.serial_max_frame_size << ", upstream-client-id '" << c.upstream_client_id << "', status-topic '" << c.status_topic
      << "', stats-interval " << c.stats_interval.count() << ", log-level "
      << static_cast<int>(c.level) << "}";
}

namespace {

using namespace std::chrono_literals;
using predefined_list = std::vector<std::pair<mqttsn::topic_id, std::string>>;

const std::string source_dir = MQTTSN_SOURCE_DIR;

// ---------------------------------------------------------------------------------------------
// Helpers

struct parse_result {
  parse_outcome outcome = parse_outcome::run;
  config cfg;
  std::string out;
};

parse_result parse(const std::vector<std::string>& args, config start = {}) {
  std::vector<const char*> argv{"mqttsn-gateway"};
  for (const auto& a : args) argv.push_back(a.c_str());
  parse_result r;
  r.cfg = std::move(start);
  r.outcome = parse_config(static_cast<int>(argv.size()), argv.data(), r.cfg, r.out);
  return r;
}

config parse_ok(const std::vector<std::string>& args) {
  auto r = parse(args);
  EXPECT_EQ(r.outcome, parse_outcome::run);
  EXPECT_EQ(r.out, "");
  return r.cfg;
}

// The config_error message, or "no error".
std::string error_of(const std::vector<std::string>& args) {
  try {
    parse(args);
  } catch (const config_error& e) {
    return e.what();
  }
  return "no error";
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Files written by temp_file, removed when the test binary exits.
struct temp_files {
  std::vector<std::string> paths;
  temp_files() = default;
  temp_files(const temp_files&) = delete;
  temp_files& operator=(const temp_files&) = delete;
  ~temp_files() {
    std::error_code ec;
    for (const auto& p : paths) std::filesystem::remove(p, ec);
  }
};
temp_files created_files;

// A file in the test's temporary directory, named after the running test.
std::string temp_file(const std::string& contents, const std::string& suffix = "") {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string path =
      ::testing::TempDir() + "mqttsn_" + info->test_suite_name() + "_" + info->name() + suffix;
  std::ofstream(path) << contents;
  created_files.paths.push_back(path);
  return path;
}

std::string udp_error(const std::string& value) {
  try {
    parse_udp_listen("--udp", value);
  } catch (const config_error& e) {
    return e.what();
  }
  return "no error";
}

std::string predefined_file_error(const std::string& contents) {
  const auto path = temp_file(contents, ".topics");
  try {
    read_predefined_file(path);
  } catch (const config_error& e) {
    const std::string what = e.what();
    // Drop the temporary path so expectations read like the message the user sees.
    const std::string prefix = "--predefined-file " + path;
    return what.starts_with(prefix) ? "--predefined-file FILE" + what.substr(prefix.size()) : what;
  }
  return "no error";
}

// Every key but config/help/version with a value other than its default, and the config it gives.
const std::vector<std::pair<std::string, std::string>> non_default_values = {
    {"log-level", "debug"},
    {"stats-interval", "60"},
    {"broker", "ssl://broker.example.com:8883"},
    {"upstream-client-id", "gw-kitchen"},
    {"status-topic", "home/gateway/status"},
    {"connect-timeout", "2.5"},
    {"upstream-max-queued", "250"},
    {"upstream-max-held", "0"},
    {"broker-ca-file", "/etc/mqttsn/ca.crt"},
    {"broker-ca-dir", "/etc/ssl/certs"},
    {"broker-cert-file", "/etc/mqttsn/gw.crt"},
    {"broker-key-file", "/etc/mqttsn/gw.key"},
    {"broker-key-password-file", "/etc/mqttsn/gw.key.pass"},
    {"broker-insecure", "true"},
    {"broker-username", "gateway-7"},
    {"broker-password-file", "/etc/mqttsn/broker.password"},
    {"broker-credentials-file", "/etc/mqttsn/credentials"},
    {"clients-file", "/etc/mqttsn/clients"},
    {"persistence", "/var/lib/mqttsn/sessions.db"},
    {"persistence-flush-interval", "0.5"},
    {"udp", "127.0.0.1:10000"},
    {"udp", "[::1]:10001"},
    {"multicast", "225.1.1.1:1884"},
    {"advertise-interval", "900"},
    {"max-frame-size", "512"},
    {"udp-receive-buffer", "65536"},
    {"serial", "/dev/serial/by-id/usb-FTDI_XBee-if00-port0"},
    {"serial-baud", "115200"},
    {"serial-framing", "raw"},
    {"serial-flow", "rtscts"},
    {"serial-max-frame-size", "84"},
    {"gateway-id", "42"},
    {"mode", "aggregating"},
    {"predefined", "7=pre/seven"},
    {"predefined", "8 = pre/eight "},
    {"keep-alive-grace", "2"},
    {"retry-interval", "0.25"},
    {"retry-count", "5"},
    {"max-clients", "50"},
    {"sleep-buffer", "20"},
    {"session-expiry", "86400"},
};

config non_default_config() {
  config c;
  c.level = log_level::debug;
  c.stats_interval = 60s;
  c.broker = "ssl://broker.example.com:8883";
  c.upstream_client_id = "gw-kitchen";
  c.status_topic = "home/gateway/status";
  c.connect_timeout = 2500ms;
  c.upstream_max_queued = 250;
  c.upstream_max_held = 0;
  c.broker_ca_file = "/etc/mqttsn/ca.crt";
  c.broker_ca_dir = "/etc/ssl/certs";
  c.broker_cert_file = "/etc/mqttsn/gw.crt";
  c.broker_key_file = "/etc/mqttsn/gw.key";
  c.broker_key_password_file = "/etc/mqttsn/gw.key.pass";
  c.broker_insecure = true;
  c.broker_username = "gateway-7";
  c.broker_password_file = "/etc/mqttsn/broker.password";
  c.broker_credentials_file = "/etc/mqttsn/credentials";
  c.clients_file = "/etc/mqttsn/clients";
  c.persistence = "/var/lib/mqttsn/sessions.db";
  c.persistence_flush_interval = 500ms;
  c.udp = {{"127.0.0.1", 10000}, {"::1", 10001}};
  c.multicast = udp_listen{"225.1.1.1", 1884};
  c.advertise_interval = 900s;
  c.max_frame_size = 512;
  c.udp_receive_buffer = 65536;
  c.serial = "/dev/serial/by-id/usb-FTDI_XBee-if00-port0";
  c.serial_baud = 115200;
  c.serial_frame = serial_framing::raw;
  c.serial_flow_control = serial_flow::rtscts;
  c.serial_max_frame_size = 84;
  c.gateway_id = 42;
  c.mode = gateway_mode::aggregating;
  c.predefined = {{7, "pre/seven"}, {8, "pre/eight"}};
  c.keep_alive_grace = 2.0;
  c.retry_interval = 250ms;
  c.retry_count = 5;
  c.max_clients = 50;
  c.sleep_buffer = 20;
  c.session_expiry = 86400s;
  return c;
}

// "--key value" pairs for the command line.
std::vector<std::string> as_flags(const std::vector<std::pair<std::string, std::string>>& kv) {
  std::vector<std::string> args;
  for (const auto& [k, v] : kv) {
    args.push_back("--" + k);
    args.push_back(v);
  }
  return args;
}

// "key = value" lines for a config file.
std::string as_file(const std::vector<std::pair<std::string, std::string>>& kv) {
  std::string s;
  for (const auto& [k, v] : kv) s.append(k).append(" = ").append(v).append("\n");
  return s;
}

// "  --key VALUE ..." (a --help line) -> "key"; "" for other lines.
std::string flag_of(std::string_view line) {
  if (!line.starts_with("  --")) return {};
  line.remove_prefix(4);
  return std::string(line.substr(0, line.find_first_not_of("abcdefghijklmnopqrstuvwxyz-")));
}

// "#key = value" or "#key =" (a setting of the example file) -> {key, value}.
std::optional<std::pair<std::string, std::string>> setting_of(std::string_view line) {
  if (!line.starts_with('#')) return std::nullopt;
  line.remove_prefix(1);
  const auto key_end = line.find_first_not_of("abcdefghijklmnopqrstuvwxyz-");
  if (key_end == 0 || key_end == std::string_view::npos) return std::nullopt;
  const auto rest = line.substr(key_end);
  if (rest == " =") return std::pair{std::string(line.substr(0, key_end)), std::string()};
  if (!rest.starts_with(" = ")) return std::nullopt;
  return std::pair{std::string(line.substr(0, key_end)), std::string(rest.substr(3))};
}

// The keys --help lists, in order.
std::vector<std::string> help_keys() {
  std::vector<std::string> keys;
  std::istringstream lines(parse({"--help"}).out);
  for (std::string line; std::getline(lines, line);) {
    if (auto key = flag_of(line); !key.empty()) keys.push_back(std::move(key));
  }
  return keys;
}

const std::set<std::string> command_line_only = {"config", "help", "version"};

// The example file's `#key = value` lines.
std::vector<std::pair<std::string, std::string>> example_defaults() {
  std::vector<std::pair<std::string, std::string>> kv;
  std::istringstream lines(read_text(source_dir + "/etc/mqttsn-gateway.conf"));
  for (std::string line; std::getline(lines, line);) {
    if (auto setting = setting_of(line)) kv.push_back(std::move(*setting));
  }
  return kv;
}

// ---------------------------------------------------------------------------------------------
// Defaults and derived values

TEST(ConfigDefaults, struct_holds_the_documented_defaults) {
  const config c;
  EXPECT_EQ(c.broker, "tcp://127.0.0.1:1883");
  EXPECT_EQ(c.udp, (std::vector<udp_listen>{{"0.0.0.0", 1884}}));
  EXPECT_EQ(c.gateway_id, 1);
  EXPECT_EQ(c.mode, gateway_mode::transparent);
  EXPECT_TRUE(c.predefined.empty());
  EXPECT_EQ(c.predefined_file, "");
  EXPECT_EQ(c.advertise_interval, 0s);
  EXPECT_FALSE(c.multicast);
  EXPECT_EQ(c.keep_alive_grace, 1.5);
  EXPECT_EQ(c.retry_interval, 10s);
  EXPECT_EQ(c.retry_count, 3u);
  EXPECT_EQ(c.max_clients, 1000u);
  EXPECT_EQ(c.sleep_buffer, 100u);
  EXPECT_EQ(c.max_frame_size, 1024u);
  EXPECT_EQ(c.connect_timeout, 5s);
  EXPECT_EQ(c.broker_ca_file, "");
  EXPECT_EQ(c.broker_ca_dir, "");
  EXPECT_EQ(c.broker_cert_file, "");
  EXPECT_EQ(c.broker_key_file, "");
  EXPECT_EQ(c.broker_key_password_file, "");
  EXPECT_FALSE(c.broker_insecure);
  EXPECT_EQ(c.broker_username, "");
  EXPECT_EQ(c.broker_password_file, "");
  EXPECT_EQ(c.broker_credentials_file, "");
  EXPECT_EQ(c.clients_file, "");
  EXPECT_EQ(c.persistence, "");
  EXPECT_EQ(c.persistence_flush_interval, 1s);
  EXPECT_EQ(c.serial, "");
  EXPECT_EQ(c.serial_baud, 9600u);
  EXPECT_EQ(c.serial_frame, serial_framing::xbee_api2);
  EXPECT_EQ(c.serial_flow_control, serial_flow::none);
  EXPECT_EQ(c.serial_max_frame_size, 255u);
  EXPECT_EQ(c.upstream_client_id, "");
  EXPECT_EQ(c.status_topic, "");
  EXPECT_EQ(c.stats_interval, 300s);
  EXPECT_EQ(c.level, log_level::info);
}

TEST(ConfigDefaults, no_arguments_give_the_defaults) { EXPECT_EQ(parse_ok({}), config{}); }

TEST(ConfigDefaults, keys_not_given_keep_the_values_on_entry) {
  config start;
  start.retry_count = 9;
  start.udp = {{"127.0.0.1", 5000}};
  start.predefined = {{3, "three"}};
  const auto r = parse({"--gateway-id", "4"}, start);
  start.gateway_id = 4;
  EXPECT_EQ(r.cfg, start);
}

TEST(ConfigDefaults, client_id_and_status_topic_derive_from_the_gateway_id) {
  config c;
  EXPECT_EQ(c.effective_upstream_client_id(), "mqttsn-gw-1");
  EXPECT_EQ(c.effective_status_topic(), "mqttsn/gateway/1/status");
  c = parse_ok({"--gateway-id", "255"});
  EXPECT_EQ(c.effective_upstream_client_id(), "mqttsn-gw-255");
  EXPECT_EQ(c.effective_status_topic(), "mqttsn/gateway/255/status");
  c = parse_ok({"--gateway-id", "0"});
  EXPECT_EQ(c.effective_upstream_client_id(), "mqttsn-gw-0");
}

TEST(ConfigDefaults, explicit_client_id_and_status_topic_win_over_derived_ones) {
  const auto c =
      parse_ok({"--gateway-id", "9", "--upstream-client-id", "gw", "--status-topic", "s/t"});
  EXPECT_EQ(c.effective_upstream_client_id(), "gw");
  EXPECT_EQ(c.effective_status_topic(), "s/t");
}

TEST(ConfigDefaults, empty_client_id_and_status_topic_mean_derived) {
  const auto c = parse_ok({"--upstream-client-id", "", "--status-topic", ""});
  EXPECT_EQ(c, config{});
  EXPECT_EQ(c.effective_upstream_client_id(), "mqttsn-gw-1");
}

TEST(ConfigDefaults, session_config_maps_every_session_key) {
  const auto c =
      parse_ok({"--keep-alive-grace", "2.5", "--retry-interval", "1.5", "--retry-count", "7",
                "--connect-timeout", "0.5", "--sleep-buffer", "33", "--max-frame-size", "300",
                "--session-expiry", "7200"});
  const auto s = c.session();
  EXPECT_EQ(s.session_expiry, 7200s);
  EXPECT_EQ(s.keep_alive_grace, 2.5);
  EXPECT_EQ(s.retry_interval, 1500ms);
  EXPECT_EQ(s.retry_count, 7u);
  EXPECT_EQ(s.connect_timeout, 500ms);
  EXPECT_EQ(s.max_queued, 33u);
  EXPECT_EQ(s.max_frame_size, 300u);
  const mqttsn::session_config untouched;
  EXPECT_EQ(s.max_topics, untouched.max_topics);
  EXPECT_EQ(s.max_subscriptions, untouched.max_subscriptions);
  EXPECT_EQ(s.max_inflight_upstream, untouched.max_inflight_upstream);
}

TEST(ConfigDefaults, default_session_config_matches_the_core_defaults_but_frame_size) {
  const auto s = config{}.session();
  const mqttsn::session_config core;
  EXPECT_EQ(s.keep_alive_grace, core.keep_alive_grace);
  EXPECT_EQ(s.retry_interval, core.retry_interval);
  EXPECT_EQ(s.retry_count, core.retry_count);
  EXPECT_EQ(s.connect_timeout, core.connect_timeout);
  EXPECT_EQ(s.max_queued, core.max_queued);
  EXPECT_EQ(s.session_expiry, core.session_expiry);
  EXPECT_EQ(s.max_frame_size, 1024u);
}

TEST(ConfigDefaults, table_config_maps_max_clients_and_gateway_id) {
  const auto t = parse_ok({"--max-clients", "12", "--gateway-id", "200"}).table();
  EXPECT_EQ(t.max_clients, 12u);
  EXPECT_EQ(t.gateway_id, 200);
}

// ---------------------------------------------------------------------------------------------
// Every key from the command line and from a file

TEST(ConfigCommandLine, every_key_is_a_flag) {
  EXPECT_EQ(parse_ok(as_flags(non_default_values)), non_default_config());
}

TEST(ConfigCommandLine, flag_value_after_equals_sign) {
  const auto c = parse_ok({"--broker=tcp://h:1", "--udp=[::]:1884", "--predefined=9=a=b"});
  EXPECT_EQ(c.broker, "tcp://h:1");
  EXPECT_EQ(c.udp, (std::vector<udp_listen>{{"::", 1884}}));
  EXPECT_EQ(c.predefined, (predefined_list{{9, "a=b"}}));
}

TEST(ConfigCommandLine, every_log_level_and_mode) {
  EXPECT_EQ(parse_ok({"--log-level", "trace"}).level, log_level::trace);
  EXPECT_EQ(parse_ok({"--log-level", "debug"}).level, log_level::debug);
  EXPECT_EQ(parse_ok({"--log-level", "info"}).level, log_level::info);
  EXPECT_EQ(parse_ok({"--log-level", "warn"}).level, log_level::warn);
  EXPECT_EQ(parse_ok({"--log-level", "error"}).level, log_level::error);
  EXPECT_EQ(parse_ok({"--log-level", "off"}).level, log_level::off);
  EXPECT_EQ(parse_ok({"--mode", "transparent"}).mode, gateway_mode::transparent);
  EXPECT_EQ(parse_ok({"--mode", "aggregating"}).mode, gateway_mode::aggregating);
  EXPECT_EQ(parse_ok({}).upstream_client, gateway::upstream_client_kind::automatic);
  EXPECT_EQ(parse_ok({"--upstream-client", "auto"}).upstream_client, gateway::upstream_client_kind::automatic);
  EXPECT_EQ(parse_ok({"--upstream-client", "paho"}).upstream_client, gateway::upstream_client_kind::paho);
  EXPECT_EQ(parse_ok({"--upstream-client", "native"}).upstream_client, gateway::upstream_client_kind::native);
}

// auto (the default) is the native client in both modes; Paho only when asked for, in either.
TEST(ConfigCommandLine, upstream_client_auto_is_native_in_both_modes_and_paho_only_on_request) {
  using gateway::upstream_client_kind;
  for (const char* mode : {"transparent", "aggregating"}) {
    SCOPED_TRACE(mode);
    EXPECT_EQ(parse_ok({"--mode", mode}).effective_upstream_client(), upstream_client_kind::native);
    EXPECT_EQ(parse_ok({"--mode", mode, "--upstream-client", "auto"}).effective_upstream_client(),
              upstream_client_kind::native);
    EXPECT_EQ(parse_ok({"--mode", mode, "--upstream-client", "native"}).effective_upstream_client(),
              upstream_client_kind::native);
    EXPECT_EQ(parse_ok({"--mode", mode, "--upstream-client", "paho"}).effective_upstream_client(),
              upstream_client_kind::paho);
  }
}

TEST(ConfigCommandLine, broker_forms) {
  EXPECT_EQ(parse_ok({"--broker", "tcp://localhost:1883"}).broker, "tcp://localhost:1883");
  EXPECT_EQ(parse_ok({"--broker", "tcp://10.1.2.3:1"}).broker, "tcp://10.1.2.3:1");
  EXPECT_EQ(parse_ok({"--broker", "tcp://[::1]:65535"}).broker, "tcp://[::1]:65535");
  EXPECT_EQ(parse_ok({"--broker", "ssl://mqtt_broker-1.example:8883"}).broker,
            "ssl://mqtt_broker-1.example:8883");
}

TEST(ConfigCommandLine, multicast_groups_v4_and_v6_and_empty_means_off) {
  EXPECT_EQ(parse_ok({"--multicast", "224.0.0.1:1"}).multicast, (udp_listen{"224.0.0.1", 1}));
  EXPECT_EQ(parse_ok({"--multicast", "239.255.255.255:65535"}).multicast,
            (udp_listen{"239.255.255.255", 65535}));
  EXPECT_EQ(parse_ok({"--multicast", "[ff02::1]:1884"}).multicast, (udp_listen{"ff02::1", 1884}));
  EXPECT_FALSE(parse_ok({"--multicast", ""}).multicast);
}

TEST(ConfigCommandLine, fractional_seconds_round_to_milliseconds) {
  EXPECT_EQ(parse_ok({"--retry-interval", "0.0015"}).retry_interval, 2ms);
  EXPECT_EQ(parse_ok({"--retry-interval", "12"}).retry_interval, 12s);
  EXPECT_EQ(parse_ok({"--retry-interval", "1e1"}).retry_interval, 10s);
  EXPECT_EQ(parse_ok({"--connect-timeout", ".75"}).connect_timeout, 750ms);
}

TEST(ConfigFile, every_key_is_a_file_key) {
  const auto path = temp_file(as_file(non_default_values));
  EXPECT_EQ(parse_ok({"--config", path}), non_default_config());
}

TEST(ConfigFile, comments_blank_lines_and_blanks_around_keys_and_values) {
  const auto path = temp_file(
      "# a comment\n"
      "\n"
      "   # an indented comment\n"
      "\tbroker\t=\ttcp://h:2  \r\n"
      "upstream-client-id = id#with#hashes\n"
      "gateway-id=3\n");
  const auto c = parse_ok({"--config", path});
  EXPECT_EQ(c.broker, "tcp://h:2");
  EXPECT_EQ(c.upstream_client_id, "id#with#hashes");
  EXPECT_EQ(c.gateway_id, 3);
}

TEST(ConfigFile, empty_file_gives_the_defaults) {
  EXPECT_EQ(parse_ok({"--config", temp_file("")}), config{});
}

TEST(ConfigFile, repeatable_keys_accumulate_in_file_order) {
  const auto path = temp_file(
      "udp = 127.0.0.1:1\n"
      "predefined = 2=b\n"
      "udp = [::1]:2\n"
      "predefined = 1=a\n");
  const auto c = parse_ok({"--config", path});
  EXPECT_EQ(c.udp, (std::vector<udp_listen>{{"127.0.0.1", 1}, {"::1", 2}}));
  EXPECT_EQ(c.predefined, (predefined_list{{2, "b"}, {1, "a"}}));
}

// ---------------------------------------------------------------------------------------------
// Which source wins

TEST(ConfigPrecedence, command_line_beats_file_for_every_single_valued_key) {
  const auto path = temp_file(as_file(non_default_values));
  std::vector<std::pair<std::string, std::string>> defaults_back;
  for (const auto& [k, v] : example_defaults()) {
    if (k != "udp" && k != "predefined") defaults_back.emplace_back(k, v);
  }
  auto args = as_flags(defaults_back);
  args.insert(args.begin(), {"--config", path});
  auto expected = config{};
  expected.udp = non_default_config().udp;  // repeatable keys not given on the command line:
  expected.predefined = non_default_config().predefined;  // the file's values stay
  EXPECT_EQ(parse_ok(args), expected);
}

TEST(ConfigPrecedence, order_of_config_flag_does_not_matter) {
  const auto path = temp_file("retry-count = 4\n");
  EXPECT_EQ(parse_ok({"--retry-count", "6", "--config", path}).retry_count, 6u);
  EXPECT_EQ(parse_ok({"--config", path, "--retry-count", "6"}).retry_count, 6u);
  EXPECT_EQ(parse_ok({"--config", path}).retry_count, 4u);
}

TEST(ConfigPrecedence, udp_on_the_command_line_replaces_the_files_list) {
  const auto path = temp_file("udp = 127.0.0.1:1\nudp = 127.0.0.1:2\n");
  EXPECT_EQ(parse_ok({"--config", path, "--udp", "[::]:3"}).udp,
            (std::vector<udp_listen>{{"::", 3}}));
}

TEST(ConfigPrecedence, udp_given_replaces_the_default_and_repeats) {
  EXPECT_EQ(parse_ok({"--udp", "127.0.0.1:1", "--udp", "0.0.0.0:2", "--udp", "[::]:2"}).udp,
            (std::vector<udp_listen>{{"127.0.0.1", 1}, {"0.0.0.0", 2}, {"::", 2}}));
}

TEST(ConfigPrecedence, predefined_on_the_command_line_replaces_the_files_list) {
  const auto path = temp_file("predefined = 1=a\npredefined = 2=b\n");
  EXPECT_EQ(parse_ok({"--config", path, "--predefined", "1=b"}).predefined,
            (predefined_list{{1, "b"}}));
}

TEST(ConfigPrecedence, empty_predefined_on_the_command_line_drops_the_files_list) {
  const auto path = temp_file("predefined = 1=a\n");
  EXPECT_TRUE(parse_ok({"--config", path, "--predefined", ""}).predefined.empty());
}

TEST(ConfigPrecedence, predefined_file_and_predefined_flags_combine_file_first) {
  const auto topics = temp_file("5 from/file\n6 also/from/file\n", ".topics");
  const auto c = parse_ok({"--predefined", "9=from/flag", "--predefined-file", topics});
  EXPECT_EQ(c.predefined_file, topics);
  EXPECT_EQ(c.predefined,
            (predefined_list{{5, "from/file"}, {6, "also/from/file"}, {9, "from/flag"}}));
}

TEST(ConfigPrecedence, predefined_file_from_config_file_and_predefined_from_command_line_combine) {
  const auto topics = temp_file("5 from/file\n", ".topics");
  const auto conf = temp_file("predefined-file = " + topics + "\npredefined = 6=from/conf\n");
  EXPECT_EQ(parse_ok({"--config", conf, "--predefined", "7=from/flag"}).predefined,
            (predefined_list{{5, "from/file"}, {7, "from/flag"}}));
  EXPECT_EQ(parse_ok({"--config", conf}).predefined,
            (predefined_list{{5, "from/file"}, {6, "from/conf"}}));
}

TEST(ConfigPrecedence, empty_predefined_file_on_the_command_line_drops_the_files_one) {
  const auto topics = temp_file("5 from/file\n", ".topics");
  const auto conf = temp_file("predefined-file = " + topics + "\n");
  const auto c = parse_ok({"--config", conf, "--predefined-file", ""});
  EXPECT_EQ(c.predefined_file, "");
  EXPECT_TRUE(c.predefined.empty());
}

TEST(ConfigPrecedence, nothing_changes_on_error) {
  config start;
  start.retry_count = 9;
  config cfg = start;
  std::string out;
  const std::array<const char*, 5> argv = {"mqttsn-gateway", "--gateway-id", "5", "--max-clients",
                                           "0"};
  EXPECT_THROW(parse_config(static_cast<int>(argv.size()), argv.data(), cfg, out), config_error);
  EXPECT_EQ(cfg, start);
  EXPECT_EQ(out, "");
}

// ---------------------------------------------------------------------------------------------
// Bounds: the last accepted value on each side, and the first refused one

struct bound_case {
  std::string key;
  std::string inside;
  std::string outside;
  std::string message;  // for `outside`
};

TEST(ConfigBounds, every_bound_is_accepted_at_the_bound_and_refused_beyond) {
  const std::vector<bound_case> cases = {
      {"gateway-id", "0", "-1", "--gateway-id: '-1' is not a non-negative integer"},
      {"gateway-id", "255", "256", "--gateway-id: '256' is not in 0..255"},
      {"advertise-interval", "0", "-1", "--advertise-interval: '-1' is not a non-negative integer"},
      {"advertise-interval", "65535", "65536", "--advertise-interval: '65536' is not in 0..65535"},
      {"stats-interval", "0", "-1", "--stats-interval: '-1' is not a non-negative integer"},
      {"stats-interval", "604800", "604801", "--stats-interval: '604801' is not in 0..604800"},
      {"retry-count", "0", "-1", "--retry-count: '-1' is not a non-negative integer"},
      {"retry-count", "100", "101", "--retry-count: '101' is not in 0..100"},
      {"max-clients", "1", "0", "--max-clients: '0' is not in 1..1000000"},
      {"max-clients", "1000000", "1000001", "--max-clients: '1000001' is not in 1..1000000"},
      {"sleep-buffer", "1", "0", "--sleep-buffer: '0' is not in 1..100000"},
      {"sleep-buffer", "100000", "100001", "--sleep-buffer: '100001' is not in 1..100000"},
      {"session-expiry", "0", "-1", "--session-expiry: '-1' is not a non-negative integer"},
      {"session-expiry", "4294967295", "4294967296", "--session-expiry: '4294967296' is not in 0..4294967295"},
      {"max-frame-size", "16", "15", "--max-frame-size: '15' is not in 16..65535"},
      {"max-frame-size", "65535", "65536", "--max-frame-size: '65536' is not in 16..65535"},
      {"udp-receive-buffer", "4096", "4095", "--udp-receive-buffer: '4095' is not in 4096..1073741824"},
      {"upstream-max-queued", "1", "0", "--upstream-max-queued: '0' is not in 1..1000000"},
      {"upstream-max-queued", "1000000", "1000001", "--upstream-max-queued: '1000001' is not in 1..1000000"},
      {"upstream-max-held", "100000", "100001", "--upstream-max-held: '100001' is not in 0..100000"},
      {"udp-receive-buffer", "1073741824", "1073741825",
       "--udp-receive-buffer: '1073741825' is not in 4096..1073741824"},
      {"keep-alive-grace", "1", "0.999", "--keep-alive-grace: '0.999' is not in 1..10"},
      {"keep-alive-grace", "10", "10.001", "--keep-alive-grace: '10.001' is not in 1..10"},
      {"retry-interval", "0.001", "0.0009",
       "--retry-interval: '0.0009' is not in 0.001..3600 seconds"},
      {"retry-interval", "3600", "3600.001",
       "--retry-interval: '3600.001' is not in 0.001..3600 seconds"},
      {"connect-timeout", "0.001", "0", "--connect-timeout: '0' is not in 0.001..3600 seconds"},
      {"connect-timeout", "3600", "3601",
       "--connect-timeout: '3601' is not in 0.001..3600 seconds"},
      {"udp", "127.0.0.1:1", "127.0.0.1:0", "--udp: port '0' in '127.0.0.1:0' is not in 1..65535"},
      {"udp", "127.0.0.1:65535", "127.0.0.1:65536",
       "--udp: port '65536' in '127.0.0.1:65536' is not in 1..65535"},
      {"broker", "tcp://h:1", "tcp://h:0", "--broker: port '0' in 'tcp://h:0' is not in 1..65535"},
      {"broker", "tcp://h:65535", "tcp://h:65536",
       "--broker: port '65536' in 'tcp://h:65536' is not in 1..65535"},
      {"predefined", "1=a", "0=a", "--predefined: id 0 is reserved"},
      {"predefined", "65534=a", "65535=a", "--predefined: id 65535 is reserved"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.key + " " + c.inside + " / " + c.outside);
    EXPECT_EQ(error_of({"--" + c.key, c.inside}), "no error");
    EXPECT_EQ(error_of({"--" + c.key + "=" + c.outside}), c.message);
  }
}

TEST(ConfigBounds, values_at_the_bounds_are_stored_exactly) {
  const auto lo = parse_ok({"--gateway-id",         "0",     "--retry-count",      "0",
                            "--max-clients",        "1",     "--sleep-buffer",     "1",
                            "--max-frame-size",     "16",    "--keep-alive-grace", "1",
                            "--retry-interval",     "0.001", "--connect-timeout",  "0.001",
                            "--advertise-interval", "0",     "--stats-interval",   "0"});
  EXPECT_EQ(lo.gateway_id, 0);
  EXPECT_EQ(lo.retry_count, 0u);
  EXPECT_EQ(lo.max_clients, 1u);
  EXPECT_EQ(lo.sleep_buffer, 1u);
  EXPECT_EQ(lo.max_frame_size, 16u);
  EXPECT_EQ(lo.keep_alive_grace, 1.0);
  EXPECT_EQ(lo.retry_interval, 1ms);
  EXPECT_EQ(lo.connect_timeout, 1ms);
  EXPECT_EQ(lo.advertise_interval, 0s);
  EXPECT_EQ(lo.stats_interval, 0s);
  const auto hi = parse_ok({"--gateway-id",         "255",      "--retry-count",      "100",
                            "--max-clients",        "1000000",  "--sleep-buffer",     "100000",
                            "--max-frame-size",     "65535",    "--keep-alive-grace", "10",
                            "--retry-interval",     "3600",     "--connect-timeout",  "3600",
                            "--advertise-interval", "65535",    "--stats-interval",   "604800",
                            "--predefined",         "65534=top"});
  EXPECT_EQ(hi.gateway_id, 255);
  EXPECT_EQ(hi.retry_count, 100u);
  EXPECT_EQ(hi.max_clients, 1'000'000u);
  EXPECT_EQ(hi.sleep_buffer, 100'000u);
  EXPECT_EQ(hi.max_frame_size, 65535u);
  EXPECT_EQ(hi.keep_alive_grace, 10.0);
  EXPECT_EQ(hi.retry_interval, 3600s);
  EXPECT_EQ(hi.connect_timeout, 3600s);
  EXPECT_EQ(hi.advertise_interval, 65535s);
  EXPECT_EQ(hi.stats_interval, 604800s);
  EXPECT_EQ(hi.predefined, (predefined_list{{65534, "top"}}));
}

// ---------------------------------------------------------------------------------------------
// Error messages: one line, naming the key

struct error_case {
  std::vector<std::string> args;
  std::string message;
};

void expect_errors(const std::vector<error_case>& cases) {
  for (const auto& c : cases) {
    std::string shown;
    for (const auto& a : c.args) shown += "[" + a + "] ";
    SCOPED_TRACE(shown);
    const auto got = error_of(c.args);
    EXPECT_EQ(got, c.message);
    EXPECT_EQ(got.find('\n'), std::string::npos);
  }
}

TEST(ConfigErrors, numbers) {
  expect_errors({
      {{"--retry-count", "x"}, "--retry-count: 'x' is not a non-negative integer"},
      {{"--retry-count", "1.5"}, "--retry-count: '1.5' is not a non-negative integer"},
      {{"--retry-count", "+3"}, "--retry-count: '+3' is not a non-negative integer"},
      {{"--retry-count", ""}, "--retry-count: '' is not a non-negative integer"},
      {{"--retry-count", " 3"}, "--retry-count: ' 3' is not a non-negative integer"},
      {{"--retry-count", "99999999999999999999999"},
       "--retry-count: '99999999999999999999999' is not a non-negative integer"},
      {{"--gateway-id", "0x10"}, "--gateway-id: '0x10' is not a non-negative integer"},
      {{"--max-clients", "many"}, "--max-clients: 'many' is not a positive integer"},
      {{"--upstream-max-queued", "10k"}, "--upstream-max-queued: '10k' is not a positive integer"},
      {{"--sleep-buffer", "-5"}, "--sleep-buffer: '-5' is not a positive integer"},
      {{"--max-frame-size", "1k"}, "--max-frame-size: '1k' is not a positive integer"},
      {{"--advertise-interval", "1m"}, "--advertise-interval: '1m' is not a non-negative integer"},
      {{"--stats-interval", "5.5"}, "--stats-interval: '5.5' is not a non-negative integer"},
      {{"--keep-alive-grace", "abc"}, "--keep-alive-grace: 'abc' is not a number"},
      {{"--keep-alive-grace", "nan"}, "--keep-alive-grace: 'nan' is not a number"},
      {{"--keep-alive-grace", "inf"}, "--keep-alive-grace: 'inf' is not a number"},
      {{"--retry-interval", "1,5"}, "--retry-interval: '1,5' is not a number"},
      {{"--retry-interval", "10s"}, "--retry-interval: '10s' is not a number"},
      {{"--retry-interval", "-1"}, "--retry-interval: '-1' is not in 0.001..3600 seconds"},
      {{"--connect-timeout", ""}, "--connect-timeout: '' is not a number"},
  });
}

TEST(ConfigErrors, choices_and_topics) {
  expect_errors({
      {{"--mode", "bridge"}, "--mode: 'bridge' is not one of transparent or aggregating"},
      {{"--upstream-client", "mosquitto"}, "--upstream-client: 'mosquitto' is not one of native, paho or auto"},
      {{"--mode", "Transparent"}, "--mode: 'Transparent' is not one of transparent or aggregating"},
      {{"--log-level", "verbose"},
       "--log-level: 'verbose' is not one of trace, debug, info, warn, error or off"},
      {{"--status-topic", "a/#"},
       "--status-topic: 'a/#' is not a valid topic name (MQTT topic name without wildcards)"},
      {{"--status-topic", "a/+/b"},
       "--status-topic: 'a/+/b' is not a valid topic name (MQTT topic name without wildcards)"},
  });
}

TEST(ConfigErrors, upstream_client_id_at_most_65535_bytes) {
  EXPECT_EQ(error_of({"--upstream-client-id", std::string(65535, 'c')}), "no error");
  EXPECT_EQ(error_of({"--upstream-client-id", std::string(65536, 'c')}),
            "--upstream-client-id: longer than 65535 bytes");
}

TEST(ConfigErrors, broker) {
  expect_errors({
      {{"--broker", "mqtt://h:1883"}, "--broker: 'mqtt://h:1883' must start with tcp:// or ssl://"},
      {{"--broker", "h:1883"}, "--broker: 'h:1883' must start with tcp:// or ssl://"},
      {{"--broker", ""}, "--broker: '' must start with tcp:// or ssl://"},
      {{"--broker", "tcp://h"},
       "--broker: 'tcp://h' needs a port (tcp://HOST:PORT or ssl://HOST:PORT)"},
      {{"--broker", "tcp://:1883"}, "--broker: '' in 'tcp://:1883' is not a host name or address"},
      {{"--broker", "tcp://a b:1883"},
       "--broker: 'a b' in 'tcp://a b:1883' is not a host name or address"},
      {{"--broker", "tcp://::1:1883"},
       "--broker: 'tcp://::1:1883' has an IPv6 address without brackets (tcp://HOST:PORT or "
       "ssl://HOST:PORT)"},
      {{"--broker", "tcp://[::1]"},
       "--broker: 'tcp://[::1]' needs a port (tcp://HOST:PORT or ssl://HOST:PORT)"},
      {{"--broker", "tcp://[zz]:1"},
       "--broker: 'zz' in 'tcp://[zz]:1' is not a host name or address"},
      {{"--broker", "tcp://h:1883/path"},
       "--broker: port '1883/path' in 'tcp://h:1883/path' is not in 1..65535"},
      {{"--broker", "tcp://h:x"}, "--broker: port 'x' in 'tcp://h:x' is not in 1..65535"},
  });
}

TEST(ConfigErrors, broker_security_keys_that_only_make_sense_together) {
  const std::string ssl = "ssl://b:8883";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--broker-ca-file", "/ca"}, "--broker-ca-file: needs an ssl:// broker (--broker is 'tcp://127.0.0.1:1883')"},
      {{"--broker-ca-dir", "/d"}, "--broker-ca-dir: needs an ssl:// broker (--broker is 'tcp://127.0.0.1:1883')"},
      {{"--broker-insecure", "true"},
       "--broker-insecure: needs an ssl:// broker (--broker is 'tcp://127.0.0.1:1883')"},
      {{"--broker", ssl, "--broker-cert-file", "/c"},
       "--broker-cert-file: needs --broker-key-file (the certificate's private key)"},
      {{"--broker", ssl, "--broker-key-file", "/k"},
       "--broker-key-file: needs --broker-cert-file (the certificate of that key)"},
      {{"--broker", ssl, "--broker-key-password-file", "/p"},
       "--broker-key-password-file: needs --broker-key-file"},
      {{"--broker-password-file", "/p"},
       "--broker-password-file: needs --broker-username (MQTT sends no password without one)"},
      {{"--broker", ssl, "--broker-insecure", "yes"},
       "--broker-insecure: 'yes' is not one of false or true"},
  };
  for (const auto& [args, message] : cases) EXPECT_EQ(error_of(args), message);
  // Credentials need no TLS (the gateway warns at startup), and false is the default.
  EXPECT_EQ(parse_ok({"--broker-username", "u", "--broker-password-file", "/p"}).broker_username, "u");
  EXPECT_FALSE(parse_ok({"--broker", ssl, "--broker-insecure", "false"}).broker_insecure);
}

TEST(ConfigErrors, udp_and_multicast) {
  expect_errors({
      {{"--udp", "1.2.3.4"}, "--udp: '1.2.3.4' needs a port (HOST:PORT or [V6]:PORT)"},
      {{"--udp", ""}, "--udp: '' needs a port (HOST:PORT or [V6]:PORT)"},
      {{"--udp", "::1:1884"},
       "--udp: '::1:1884' has an IPv6 address without brackets (HOST:PORT or [V6]:PORT)"},
      {{"--udp", "localhost:1884"},
       "--udp: 'localhost' in 'localhost:1884' is not an IPv4 address (HOST:PORT or [V6]:PORT, no "
       "host names)"},
      {{"--udp", "127.0.0.1:1884", "--udp", "[::1]:1884", "--udp", "127.0.0.1:1884"},
       "--udp: '127.0.0.1:1884' is given twice"},
      {{"--multicast", "10.0.0.1:1884"},
       "--multicast: '10.0.0.1' is not a multicast group (224.0.0.0/4 or ff00::/8)"},
      {{"--multicast", "240.0.0.1:1884"},
       "--multicast: '240.0.0.1' is not a multicast group (224.0.0.0/4 or ff00::/8)"},
      {{"--multicast", "[fe80::1]:1884"},
       "--multicast: 'fe80::1' is not a multicast group (224.0.0.0/4 or ff00::/8)"},
      {{"--multicast", "225.1.1.1"},
       "--multicast: '225.1.1.1' needs a port (HOST:PORT or [V6]:PORT)"},
  });
}

TEST(ConfigErrors, predefined_flags) {
  expect_errors({
      {{"--predefined", "0=a"}, "--predefined: id 0 is reserved"},
      {{"--predefined", "65536=a"}, "--predefined: id '65536' is not an integer in 1..65534"},
      {{"--predefined", "x=a"}, "--predefined: id 'x' is not an integer in 1..65534"},
      {{"--predefined", "=a"}, "--predefined: id '' is not an integer in 1..65534"},
      {{"--predefined", "7"}, "--predefined: '7' is not ID=TOPIC"},
      {{"--predefined", "7="}, "--predefined: id 7 has no topic"},
      {{"--predefined", "7=a/+"},
       "--predefined: 'a/+' is not a valid topic name (MQTT topic name without wildcards)"},
      {{"--predefined", "7=a", "--predefined", "7=b"}, "--predefined: id 7 is defined twice"},
      {{"--predefined", "7=a", "--predefined", "8=a"}, "--predefined: topic 'a' is defined twice"},
  });
}

TEST(ConfigErrors, predefined_flag_duplicating_the_predefined_file) {
  const auto topics = temp_file("5 a\n", ".topics");
  expect_errors({
      {{"--predefined-file", topics, "--predefined", "5=b"}, "--predefined: id 5 is defined twice"},
      {{"--predefined-file", topics, "--predefined", "6=a"},
       "--predefined: topic 'a' is defined twice"},
  });
}

TEST(ConfigErrors, command_line_syntax) {
  expect_errors({
      {{"--brokr", "x"}, "--brokr: unknown option (see --help)"},
      {{"--brok", "tcp://h:1"}, "--brok: unknown option (see --help)"},
      {{"-h"}, "-h: unknown option (see --help)"},
      {{"tcp://h:1"}, "'tcp://h:1': unexpected argument (settings are --KEY VALUE; see --help)"},
      {{"--broker"}, "--broker: needs a value"},
      {{"--broker="}, "--broker: needs a value after '=' (write --broker '' for an empty value)"},
      {{"--version=yes"}, "--version: takes no value"},
      {{"--broker", "tcp://a:1", "--broker", "tcp://b:1"}, "--broker: given more than once"},
      {{"--config", "a", "--config", "b"}, "--config: given more than once"},
  });
}

TEST(ConfigErrors, errors_in_the_config_file_name_file_line_and_key) {
  const auto path = temp_file("# comment\n\nretry-count = x\n");
  EXPECT_EQ(error_of({"--config", path}),
            "config file " + path + ": line 3: retry-count: 'x' is not a non-negative integer");

  const auto queued = temp_file("upstream-max-queued = 0\n", "_queued");
  EXPECT_EQ(error_of({"--config", queued}),
            "config file " + queued + ": line 1: upstream-max-queued: '0' is not in 1..1000000");

  const auto unknown = temp_file("broker = tcp://h:1\n\n\n\n\n\nbrokr = tcp://h:1\n", "_unknown");
  EXPECT_EQ(error_of({"--config", unknown}),
            "config file " + unknown + ": line 7: unknown key 'brokr'");

  const auto no_equals = temp_file("broker tcp://h:1\n", "_no_equals");
  EXPECT_EQ(error_of({"--config", no_equals}),
            "config file " + no_equals + ": line 1: 'broker tcp://h:1' is not KEY = VALUE");

  const auto twice = temp_file("gateway-id = 1\nmode = transparent\ngateway-id = 2\n", "_twice");
  EXPECT_EQ(error_of({"--config", twice}),
            "config file " + twice + ": line 3: 'gateway-id' is set twice (first on line 1)");

  const auto cli_only = temp_file("config = /etc/other.conf\n", "_cli_only");
  EXPECT_EQ(error_of({"--config", cli_only}),
            "config file " + cli_only + ": line 1: 'config' is a command-line option only");

  const auto flag_syntax = temp_file("--broker = tcp://h:1\n", "_flag_syntax");
  EXPECT_EQ(error_of({"--config", flag_syntax}),
            "config file " + flag_syntax + ": line 1: unknown key '--broker'");

  const auto udp = temp_file("udp = 0.0.0.0:1884\nudp = [::1]\n", "_udp");
  EXPECT_EQ(error_of({"--config", udp}),
            "config file " + udp + ": line 2: udp: '[::1]' needs a port (HOST:PORT or [V6]:PORT)");

  const auto predefined = temp_file("predefined = 0=a\n", "_predefined");
  EXPECT_EQ(error_of({"--config", predefined}),
            "config file " + predefined + ": line 1: predefined: id 0 is reserved");
}

TEST(ConfigErrors, unreadable_config_and_predefined_files) {
  EXPECT_EQ(error_of({"--config", "/nonexistent/mqttsn.conf"}),
            "config file /nonexistent/mqttsn.conf: cannot open (No such file or directory)");
  EXPECT_EQ(error_of({"--config", "/"}), "config file /: is a directory");
  EXPECT_EQ(error_of({"--predefined-file", "/nonexistent/topics"}),
            "--predefined-file /nonexistent/topics: cannot open (No such file or directory)");
}

TEST(ConfigErrors, a_bad_file_value_is_not_reported_when_the_command_line_overrides_it) {
  const auto path = temp_file("retry-count = x\n");
  EXPECT_EQ(parse_ok({"--config", path, "--retry-count", "2"}).retry_count, 2u);
}

// ---------------------------------------------------------------------------------------------
// parse_udp_listen

TEST(ConfigUdpListen, ipv4_and_ipv6_literals) {
  EXPECT_EQ(parse_udp_listen("--udp", "0.0.0.0:1884"), (udp_listen{"0.0.0.0", 1884}));
  EXPECT_EQ(parse_udp_listen("--udp", "127.0.0.1:1"), (udp_listen{"127.0.0.1", 1}));
  EXPECT_EQ(parse_udp_listen("--udp", "192.168.1.20:65535"), (udp_listen{"192.168.1.20", 65535}));
  EXPECT_EQ(parse_udp_listen("--udp", "[::1]:1884"), (udp_listen{"::1", 1884}));
  EXPECT_EQ(parse_udp_listen("--udp", "[::]:1884"), (udp_listen{"::", 1884}));
  EXPECT_EQ(parse_udp_listen("--udp", "[2001:db8::1:2]:1884"), (udp_listen{"2001:db8::1:2", 1884}));
  EXPECT_EQ(parse_udp_listen("--udp", "[::ffff:10.0.0.1]:1884"),
            (udp_listen{"::ffff:10.0.0.1", 1884}));
}

TEST(ConfigUdpListen, refuses_missing_or_bad_parts) {
  const std::string form = " (HOST:PORT or [V6]:PORT)";
  EXPECT_EQ(udp_error("1.2.3.4"), "--udp: '1.2.3.4' needs a port" + form);
  EXPECT_EQ(udp_error("[::1]"), "--udp: '[::1]' needs a port" + form);
  EXPECT_EQ(udp_error("1.2.3.4:"), "--udp: port '' in '1.2.3.4:' is not in 1..65535");
  EXPECT_EQ(udp_error("[::1]:"), "--udp: port '' in '[::1]:' is not in 1..65535");
  EXPECT_EQ(udp_error("1.2.3.4:0"), "--udp: port '0' in '1.2.3.4:0' is not in 1..65535");
  EXPECT_EQ(udp_error("1.2.3.4:-1"), "--udp: port '-1' in '1.2.3.4:-1' is not in 1..65535");
  EXPECT_EQ(udp_error("1.2.3.4:http"), "--udp: port 'http' in '1.2.3.4:http' is not in 1..65535");
  EXPECT_EQ(
      udp_error("1.2.3.4:99999999999999999999"),
      "--udp: port '99999999999999999999' in '1.2.3.4:99999999999999999999' is not in 1..65535");
  EXPECT_EQ(udp_error("::1:1884"), "--udp: '::1:1884' has an IPv6 address without brackets" + form);
  EXPECT_EQ(udp_error("::"), "--udp: '::' has an IPv6 address without brackets" + form);
  EXPECT_EQ(udp_error("[::1:1884"), "--udp: '[::1:1884' has no closing ']'" + form);
  EXPECT_EQ(udp_error("[::1]1884"), "--udp: '[::1]1884' needs ':' after ']'" + form);
  const std::string v4 = " is not an IPv4 address (HOST:PORT or [V6]:PORT, no host names)";
  const std::string v6 = " is not an IPv6 address (HOST:PORT or [V6]:PORT, no host names)";
  EXPECT_EQ(udp_error("1.2.3:1884"), "--udp: '1.2.3' in '1.2.3:1884'" + v4);
  EXPECT_EQ(udp_error("1.2.3.256:1884"), "--udp: '1.2.3.256' in '1.2.3.256:1884'" + v4);
  EXPECT_EQ(udp_error(":1884"), "--udp: '' in ':1884'" + v4);
  EXPECT_EQ(udp_error("gateway.local:1884"), "--udp: 'gateway.local' in 'gateway.local:1884'" + v4);
  EXPECT_EQ(udp_error("[1.2.3.4]:1884"), "--udp: '1.2.3.4' in '[1.2.3.4]:1884'" + v6);
  EXPECT_EQ(udp_error("[]:1884"), "--udp: '' in '[]:1884'" + v6);
  EXPECT_EQ(udp_error("[::g]:1884"), "--udp: '::g' in '[::g]:1884'" + v6);
}

TEST(ConfigUdpListen, key_starts_the_message_verbatim) {
  try {
    parse_udp_listen("config file x: line 2: udp", "1.2.3.4");
    FAIL() << "no error";
  } catch (const config_error& e) {
    EXPECT_STREQ(e.what(),
                 "config file x: line 2: udp: '1.2.3.4' needs a port (HOST:PORT or [V6]:PORT)");
  }
}

// ---------------------------------------------------------------------------------------------
// The predefined-topics file

TEST(ConfigPredefinedFile, ids_topics_comments_and_blank_lines) {
  const auto path = temp_file(
      "# header\n"
      "\n"
      "1 sensors/temperature\n"
      "  2\tsensors/with space/humidity  \r\n"
      "   # indented comment\n"
      "65534 last\n"
      "10    a/b/c\n",
      ".topics");
  EXPECT_EQ(read_predefined_file(path), (predefined_list{{1, "sensors/temperature"},
                                                         {2, "sensors/with space/humidity"},
                                                         {65534, "last"},
                                                         {10, "a/b/c"}}));
}

TEST(ConfigPredefinedFile, empty_file_gives_no_ids) {
  EXPECT_TRUE(read_predefined_file(temp_file("")).empty());
}

TEST(ConfigPredefinedFile, errors_name_the_file_and_the_line) {
  EXPECT_EQ(predefined_file_error("1 a\n\nabc b\n"),
            "--predefined-file FILE: line 3: id 'abc' is not an integer in 1..65534");
  EXPECT_EQ(predefined_file_error("7=a\n"),
            "--predefined-file FILE: line 1: id '7=a' is not an integer in 1..65534");
  EXPECT_EQ(predefined_file_error("0 a\n"), "--predefined-file FILE: line 1: id 0 is reserved");
  EXPECT_EQ(predefined_file_error("65535 a\n"),
            "--predefined-file FILE: line 1: id 65535 is reserved");
  EXPECT_EQ(predefined_file_error("65536 a\n"),
            "--predefined-file FILE: line 1: id '65536' is not an integer in 1..65534");
  EXPECT_EQ(predefined_file_error("# c\n7\n"), "--predefined-file FILE: line 2: id 7 has no topic");
  EXPECT_EQ(predefined_file_error("7   \n"), "--predefined-file FILE: line 1: id 7 has no topic");
  EXPECT_EQ(predefined_file_error("7 a/#\n"),
            "--predefined-file FILE: line 1: 'a/#' is not a valid topic name (MQTT topic name "
            "without wildcards)");
  EXPECT_EQ(predefined_file_error("7 a # note\n"),
            "--predefined-file FILE: line 1: 'a # note' is not a valid topic name (MQTT topic name "
            "without wildcards)");
  EXPECT_EQ(predefined_file_error("7 a\n8 b\n7 c\n"),
            "--predefined-file FILE: line 3: id 7 is defined twice");
  EXPECT_EQ(predefined_file_error("7 a\n8 a\n"),
            "--predefined-file FILE: line 2: topic 'a' is defined twice");
}

TEST(ConfigPredefinedFile, errors_come_through_parse_config_unchanged) {
  const auto path = temp_file("1 a\n1 b\n", ".topics");
  EXPECT_EQ(error_of({"--predefined-file", path}),
            "--predefined-file " + path + ": line 2: id 1 is defined twice");
}

TEST(ConfigPredefinedFile, example_parses_as_is_and_uncommented) {
  const auto example = source_dir + "/etc/predefined-topics.example";
  EXPECT_TRUE(read_predefined_file(example).empty());  // every entry is commented out

  // Uncomment the example entries ("# 1     sensors/...").
  std::string uncommented;
  std::istringstream lines(read_text(example));
  for (std::string line; std::getline(lines, line);) {
    const bool entry =
        line.size() > 2 && line.starts_with("# ") && line[2] >= '0' && line[2] <= '9';
    uncommented += (entry ? line.substr(2) : line) + "\n";
  }
  const auto entries = read_predefined_file(temp_file(uncommented, ".topics"));
  ASSERT_EQ(entries.size(), 7u);
  EXPECT_EQ(entries.front(),
            (std::pair<mqttsn::topic_id, std::string>{1, "sensors/greenhouse/temperature"}));
  EXPECT_EQ(entries.back(),
            (std::pair<mqttsn::topic_id, std::string>{257, "actuators/greenhouse/vent/state"}));
}

// ---------------------------------------------------------------------------------------------
// --help and --version

TEST(ConfigHelp, help_lists_every_key_with_a_description_and_exits) {
  config start;
  start.retry_count = 8;
  const auto r = parse({"--help"}, start);
  EXPECT_EQ(r.outcome, parse_outcome::exit_ok);
  EXPECT_EQ(r.cfg, start);  // untouched
  EXPECT_EQ(help_keys(), (std::vector<std::string>{"config",
                                                   "help",
                                                   "version",
                                                   "log-level",
                                                   "stats-interval",
                                                   "broker",
                                                   "upstream-client-id",
                                                   "upstream-client",
                                                   "status-topic",
                                                   "connect-timeout",
                                                   "upstream-max-queued",
                                                   "upstream-max-held",
                                                   "broker-ca-file",
                                                   "broker-ca-dir",
                                                   "broker-cert-file",
                                                   "broker-key-file",
                                                   "broker-key-password-file",
                                                   "broker-insecure",
                                                   "broker-username",
                                                   "broker-password-file",
                                                   "broker-credentials-file",
                                                   "clients-file",
                                                   "persistence",
                                                   "persistence-flush-interval",
                                                   "udp",
                                                   "multicast",
                                                   "advertise-interval",
                                                   "max-frame-size",
                                                   "udp-receive-buffer",
                                                   "serial",
                                                   "serial-baud",
                                                   "serial-framing",
                                                   "serial-flow",
                                                   "serial-max-frame-size",
                                                   "gateway-id",
                                                   "mode",
                                                   "predefined",
                                                   "predefined-file",
                                                   "keep-alive-grace",
                                                   "retry-interval",
                                                   "retry-count",
                                                   "max-clients",
                                                   "sleep-buffer",
                                                   "session-expiry"}));
  EXPECT_TRUE(r.out.starts_with("Usage: mqttsn-gateway"));
  for (const auto* group : {"\nGeneral:\n", "\nLogging:\n", "\nBroker:\n", "\nUDP transport:\n",
                            "\nGateway:\n", "\nClient sessions:\n"}) {
    EXPECT_NE(r.out.find(group), std::string::npos) << group;
  }
}

TEST(ConfigHelp, help_shows_each_default) {
  const auto out = parse({"--help"}).out;
  for (const auto* line : {
           "  --log-level LEVEL",
           "[default: info]",
           "  --stats-interval SECONDS",
           "[default: 300]",
           "  --broker URI",
           "[default: tcp://127.0.0.1:1883]",
           "  --upstream-client-id ID",
           "[default: mqttsn-gw-<gateway-id>]",
           "  --status-topic TOPIC",
           "[default: mqttsn/gateway/<gateway-id>/status]",
           "  --connect-timeout SECONDS",
           "[default: 5]",
           "  --broker-ca-file FILE",
           "[default: the system's CA store]",
           "  --broker-insecure BOOL",
           "[default: false]",
           "  --broker-password-file FILE",
           "[default: none]",
           "  --clients-file FILE",
           "[default: off: every client]",
           "  --persistence FILE",
           "[default: off]",
           "  --persistence-flush-interval SECONDS",
           "[default: 1]",
           "  --udp HOST:PORT",
           "[default: 0.0.0.0:1884]",
           "  --multicast GROUP:PORT",
           "[default: off]",
           "  --advertise-interval SECONDS",
           "[default: 0]",
           "  --max-frame-size BYTES",
           "[default: 1024]",
           "  --serial DEVICE",
           "[default: off]",
           "  --serial-baud N",
           "[default: 9600]",
           "  --serial-framing FRAMING",
           "[default: xbee-api2]",
           "  --serial-flow FLOW",
           "[default: none]",
           "  --serial-max-frame-size BYTES",
           "[default: 255]",
           "  --gateway-id N",
           "[default: 1]",
           "  --mode MODE",
           "[default: transparent]",
           "  --predefined ID=TOPIC",
           "[default: none]",
           "  --predefined-file FILE",
           "[default: none]",
           "  --keep-alive-grace FACTOR",
           "[default: 1.5]",
           "  --retry-interval SECONDS",
           "[default: 10]",
           "  --retry-count N",
           "[default: 3]",
           "  --max-clients N",
           "[default: 1000]",
           "  --sleep-buffer N",
           "[default: 100]",
       }) {
    EXPECT_NE(out.find(line), std::string::npos) << line;
  }
  // Every option line but --config/--help/--version ends with its default.
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("  --") || line.starts_with("  --config") ||
        line.starts_with("  --help") || line.starts_with("  --version")) {
      continue;
    }
    EXPECT_TRUE(line.ends_with("]")) << line;
  }
}

TEST(ConfigHelp, help_wins_over_other_settings_but_not_over_unknown_options) {
  const auto r = parse({"--broker", "nonsense", "--help", "--config", "/nonexistent"});
  EXPECT_EQ(r.outcome, parse_outcome::exit_ok);
  EXPECT_TRUE(r.out.starts_with("Usage: "));
  EXPECT_EQ(error_of({"--help", "--brokr", "x"}), "--brokr: unknown option (see --help)");
}

TEST(ConfigHelp, version_prints_name_and_version) {
  const auto r = parse({"--version"});
  EXPECT_EQ(r.outcome, parse_outcome::exit_ok);
  ASSERT_TRUE(r.out.starts_with("mqttsn-gateway ") && r.out.ends_with("\n")) << r.out;
  const auto version = r.out.substr(15, r.out.size() - 16);  // as in CMake: MAJOR.MINOR.PATCH
  EXPECT_EQ(std::count(version.begin(), version.end(), '.'), 2) << version;
  EXPECT_EQ(version.find_first_not_of("0123456789."), std::string::npos) << version;
  EXPECT_FALSE(version.starts_with('.') || version.ends_with('.') ||
               version.find("..") != std::string::npos);
  EXPECT_EQ(r.cfg, config{});
}

// ---------------------------------------------------------------------------------------------
// Serial transport keys

TEST(ConfigSerial, every_framing_flow_and_standard_baud) {
  EXPECT_EQ(parse_ok({"--serial-framing", "xbee-api1"}).serial_frame, serial_framing::xbee_api1);
  EXPECT_EQ(parse_ok({"--serial-framing", "xbee-api2"}).serial_frame, serial_framing::xbee_api2);
  EXPECT_EQ(parse_ok({"--serial-framing", "raw"}).serial_frame, serial_framing::raw);
  EXPECT_EQ(parse_ok({"--serial-flow", "none"}).serial_flow_control, serial_flow::none);
  EXPECT_EQ(parse_ok({"--serial-flow", "rtscts"}).serial_flow_control, serial_flow::rtscts);
  EXPECT_EQ(parse_ok({"--serial-flow", "xonxoff"}).serial_flow_control, serial_flow::xonxoff);
  for (const unsigned baud : {1200u, 2400u, 4800u, 9600u, 19200u, 38400u, 57600u, 115200u, 230400u,
                              460800u, 921600u}) {
    EXPECT_TRUE(is_standard_baud(baud)) << baud;
    EXPECT_EQ(parse_ok({"--serial-baud", std::to_string(baud)}).serial_baud, baud);
  }
  EXPECT_FALSE(is_standard_baud(0));
  EXPECT_FALSE(is_standard_baud(250000));
}

TEST(ConfigSerial, device_and_empty_means_off) {
  EXPECT_EQ(parse_ok({"--serial", "/dev/ttyUSB0"}).serial, "/dev/ttyUSB0");
  EXPECT_EQ(parse_ok({"--serial", ""}).serial, "");
  EXPECT_EQ(parse_ok({"--config", temp_file("serial = /dev/serial0\n")}).serial, "/dev/serial0");
}

TEST(ConfigSerial, errors_name_the_key) {
  EXPECT_EQ(error_of({"--serial", "ttyUSB0"}),
            "--serial: 'ttyUSB0' is not an absolute device path (e.g. /dev/ttyUSB0)");
  EXPECT_EQ(error_of({"--serial-baud", "250000"}),
            "--serial-baud: '250000' is not a standard baud rate (1200, 2400, 4800, 9600, 19200, "
            "38400, 57600, 115200, 230400, 460800 or 921600)");
  EXPECT_EQ(error_of({"--serial-baud", "fast"}), "--serial-baud: 'fast' is not a positive integer");
  EXPECT_EQ(error_of({"--serial-baud", "0"}), "--serial-baud: '0' is not in 1..4000000");
  EXPECT_EQ(error_of({"--serial-framing", "xbee"}),
            "--serial-framing: 'xbee' is not one of xbee-api1, xbee-api2 or raw");
  EXPECT_EQ(error_of({"--serial-flow", "hardware"}),
            "--serial-flow: 'hardware' is not one of none, rtscts or xonxoff");
  EXPECT_EQ(error_of({"--serial-max-frame-size", "15"}),
            "--serial-max-frame-size: '15' is not in 16..65535");
  EXPECT_EQ(error_of({"--serial-max-frame-size", "65536"}),
            "--serial-max-frame-size: '65536' is not in 16..65535");
  const auto path = temp_file("serial-framing = api2\n");
  EXPECT_EQ(error_of({"--config", path}), "config file " + path +
                                              ": line 1: serial-framing: 'api2' is not one of "
                                              "xbee-api1, xbee-api2 or raw");
}

// ---------------------------------------------------------------------------------------------
// etc/mqttsn-gateway.conf: the documented defaults are the code's defaults

TEST(ConfigExampleFile, parses_as_is_to_the_defaults) {
  EXPECT_EQ(parse_ok({"--config", source_dir + "/etc/mqttsn-gateway.conf"}), config{});
}

TEST(ConfigExampleFile, uncommented_settings_parse_to_the_defaults) {
  std::string uncommented;
  std::size_t settings = 0;
  std::istringstream lines(read_text(source_dir + "/etc/mqttsn-gateway.conf"));
  for (std::string line; std::getline(lines, line);) {
    if (setting_of(line)) {
      line.erase(0, 1);  // "#key = value" -> "key = value"
      ++settings;
    }
    uncommented += line + "\n";
  }
  EXPECT_EQ(settings, help_keys().size() - command_line_only.size());
  EXPECT_EQ(parse_ok({"--config", temp_file(uncommented)}), config{});
}

TEST(ConfigExampleFile, lists_every_key_of_help_once) {
  std::map<std::string, int> in_file;
  for (const auto& [k, v] : example_defaults()) ++in_file[k];
  const auto text = read_text(source_dir + "/etc/mqttsn-gateway.conf");
  for (const auto& key : help_keys()) {
    if (command_line_only.contains(key)) {
      EXPECT_NE(text.find("--" + key), std::string::npos) << key << " is not mentioned";
      EXPECT_EQ(in_file.count(key), 0u) << key;
    } else {
      EXPECT_EQ(in_file[key], 1) << key << " must have exactly one '#" << key << " = ' line";
    }
  }
  EXPECT_EQ(in_file.size(), help_keys().size() - command_line_only.size());
}

TEST(ConfigExampleFile, shows_the_same_defaults_as_help) {
  std::map<std::string, std::string> help_line;  // key -> its --help line
  std::istringstream lines(parse({"--help"}).out);
  for (std::string line; std::getline(lines, line);) {
    if (auto key = flag_of(line); !key.empty()) help_line[key] = line;
  }
  for (const auto& [key, value] : example_defaults()) {
    if (value.empty()) continue;  // derived, off or none: worded in the comment and in --help
    EXPECT_TRUE(help_line[key].ends_with("[default: " + value + "]")) << key << " = " << value;
  }
}

}  // namespace
}  // namespace gateway
