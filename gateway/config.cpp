// The daemon's configuration: one table of keys (name, help line, default, how to apply a value)
// drives the command line (Boost.Program_options), the config file reader and --help, so the three
// cannot disagree. Must not touch sockets or the broker: it only checks syntax and ranges.
#include "gateway/config.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <boost/program_options.hpp>
#include <netinet/in.h>

#ifndef MQTTSN_VERSION
#define MQTTSN_VERSION "unknown"
#endif

namespace gateway {
namespace {

namespace po = boost::program_options;

// ---------------------------------------------------------------------------------------------
// Small text helpers

constexpr std::string_view whitespace = " \t\r\n\f\v";

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(whitespace);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(whitespace) - first + 1);
}

std::string in_quotes(std::string_view s) { return "'" + std::string(s) + "'"; }

// Every error is one line: "<where>: <what>", where `where` names the key (and the file and line
// when the value came from a file).
[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw config_error(where + ": " + what);
}

std::string format_number(double v) {
  std::array<char, 32> buf{};
  const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  return {buf.data(), r.ptr};
}

// 10000 ms -> "10", 1500 ms -> "1.5", 1 ms -> "0.001".
std::string format_seconds(std::chrono::milliseconds ms) {
  const auto count = ms.count();
  std::string s = std::to_string(count / 1000);
  if (const auto frac = count % 1000; frac != 0) {
    std::string digits = std::to_string(frac);
    digits.insert(0, 3 - digits.size(), '0');
    while (digits.back() == '0') digits.pop_back();
    s += "." + digits;
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Numbers

// Decimal digits only (no sign, no blanks), and the whole text.
std::optional<std::uint64_t> to_unsigned(std::string_view s) {
  std::uint64_t v = 0;
  const auto* end = s.data() + s.size();
  const auto [ptr, ec] = std::from_chars(s.data(), end, v);
  if (s.empty() || ec != std::errc{} || ptr != end) return std::nullopt;
  return v;
}

std::uint64_t parse_unsigned(const std::string& where, const std::string& text, std::uint64_t lo,
                             std::uint64_t hi) {
  const auto v = to_unsigned(text);
  if (!v) {
    fail(where, in_quotes(text) +
                    (lo == 0 ? " is not a non-negative integer" : " is not a positive integer"));
  }
  if (*v < lo || *v > hi) {
    fail(where, in_quotes(text) + " is not in " + std::to_string(lo) + ".." + std::to_string(hi));
  }
  return *v;
}

double parse_number(const std::string& where, const std::string& text, double lo, double hi,
                    std::string_view unit) {
  double v = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc{} || ptr != end || !std::isfinite(v)) {
    fail(where, in_quotes(text) + " is not a number");
  }
  if (v < lo || v > hi) {
    fail(where, in_quotes(text) + " is not in " + format_number(lo) + ".." + format_number(hi) +
                    std::string(unit));
  }
  return v;
}

// Seconds with fractions, stored as milliseconds; the lower bound keeps the result at least 1 ms.
std::chrono::milliseconds parse_seconds_ms(const std::string& where, const std::string& text) {
  const double s = parse_number(where, text, 0.001, 3600, " seconds");
  return std::chrono::milliseconds(std::llround(s * 1000.0));
}

// ---------------------------------------------------------------------------------------------
// Addresses

bool is_ipv4(const std::string& host, in_addr* out = nullptr) {
  in_addr a{};
  const bool ok = inet_pton(AF_INET, host.c_str(), &a) == 1;
  if (ok && out != nullptr) *out = a;
  return ok;
}

bool is_ipv6(const std::string& host, in6_addr* out = nullptr) {
  in6_addr a{};
  const bool ok = inet_pton(AF_INET6, host.c_str(), &a) == 1;
  if (ok && out != nullptr) *out = a;
  return ok;
}

bool is_host_name(std::string_view host) {
  if (host.empty()) return false;
  for (const char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return true;
}

std::uint16_t parse_port(const std::string& where, std::string_view whole, std::string_view port) {
  const auto v = to_unsigned(port);
  if (!v || *v < 1 || *v > 65535) {
    fail(where, "port " + in_quotes(port) + " in " + in_quotes(whole) + " is not in 1..65535");
  }
  return static_cast<std::uint16_t>(*v);
}

// "host:port" or "[v6]:port", split but not validated beyond the brackets.
struct host_port {
  std::string host;
  std::string port;
  bool bracketed = false;
};

// `value` is the host:port part of `whole`, which the messages quote.
host_port split_host_port(const std::string& where, std::string_view whole, std::string_view value,
                          std::string_view form) {
  const std::string with_form = " (" + std::string(form) + ")";
  if (value.starts_with('[')) {
    const auto close = value.find(']');
    if (close == std::string_view::npos) {
      fail(where, in_quotes(whole) + " has no closing ']'" + with_form);
    }
    const auto rest = value.substr(close + 1);
    if (rest.empty()) fail(where, in_quotes(whole) + " needs a port" + with_form);
    if (rest[0] != ':') fail(where, in_quotes(whole) + " needs ':' after ']'" + with_form);
    return {std::string(value.substr(1, close - 1)), std::string(rest.substr(1)), true};
  }
  const auto colon = value.rfind(':');
  if (colon == std::string_view::npos) fail(where, in_quotes(whole) + " needs a port" + with_form);
  if (value.substr(0, colon).find(':') != std::string_view::npos) {
    fail(where, in_quotes(whole) + " has an IPv6 address without brackets" + with_form);
  }
  return {std::string(value.substr(0, colon)), std::string(value.substr(colon + 1)), false};
}

udp_listen parse_multicast(const std::string& where, const std::string& value) {
  auto group = parse_udp_listen(where, value);
  in_addr v4{};
  in6_addr v6{};
  const bool multicast = is_ipv4(group.host, &v4)
                             ? (ntohl(v4.s_addr) >> 28) == 0xE                     // 224.0.0.0/4
                             : is_ipv6(group.host, &v6) && v6.s6_addr[0] == 0xFF;  // ff00::/8
  if (!multicast) {
    fail(where, in_quotes(group.host) + " is not a multicast group (224.0.0.0/4 or ff00::/8)");
  }
  return group;
}

std::string format_listen(const udp_listen& l) {
  const bool v6 = l.host.find(':') != std::string::npos;
  return (v6 ? "[" + l.host + "]" : l.host) + ":" + std::to_string(l.port);
}

void check_broker(const std::string& where, const std::string& value) {
  constexpr std::string_view form = "tcp://HOST:PORT or ssl://HOST:PORT";
  if (!value.starts_with("tcp://") && !value.starts_with("ssl://")) {
    fail(where, in_quotes(value) + " must start with tcp:// or ssl://");
  }
  const auto hp = split_host_port(where, value, std::string_view(value).substr(6), form);
  const bool host_ok = hp.bracketed ? is_ipv6(hp.host) : is_host_name(hp.host);
  if (!host_ok) {
    fail(where, in_quotes(hp.host) + " in " + in_quotes(value) + " is not a host name or address");
  }
  parse_port(where, value, hp.port);
}

// ---------------------------------------------------------------------------------------------
// Predefined topics (shared by --predefined and --predefined-file)

mqttsn::topic_id parse_topic_id(const std::string& where, std::string_view text) {
  const auto v = to_unsigned(text);
  if (!v || *v > 0xFFFF) fail(where, "id " + in_quotes(text) + " is not an integer in 1..65534");
  if (*v == 0 || *v == 0xFFFF) fail(where, "id " + std::to_string(*v) + " is reserved");
  return static_cast<mqttsn::topic_id>(*v);
}

// Adds to `table` (which detects duplicates) and to `out`, or fails naming the problem.
void add_predefined(const std::string& where, mqttsn::predefined_topics& table, mqttsn::topic_id id,
                    const std::string& topic,
                    std::vector<std::pair<mqttsn::topic_id, std::string>>& out) {
  using result = mqttsn::predefined_topics::add_result;
  if (topic.empty()) fail(where, "id " + std::to_string(id) + " has no topic");
  switch (table.add(id, topic)) {
    case result::added: out.emplace_back(id, topic); return;
    case result::reserved_id: fail(where, "id " + std::to_string(id) + " is reserved");
    case result::invalid_name:
      fail(where,
           in_quotes(topic) + " is not a valid topic name (MQTT topic name without wildcards)");
    case result::duplicate_id: fail(where, "id " + std::to_string(id) + " is defined twice");
    case result::duplicate_name: fail(where, "topic " + in_quotes(topic) + " is defined twice");
  }
}

// Reads a whole text file line by line; `origin` starts the messages ("config file X").
std::vector<std::string> read_lines(const std::string& origin, const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw config_error(origin + ": is a directory");
  std::ifstream in(path);
  if (!in) {
    const int err = errno;
    if (err == 0) throw config_error(origin + ": cannot open");
    throw config_error(origin + ": cannot open (" + std::generic_category().message(err) + ")");
  }
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(std::move(line));
  if (in.bad()) throw config_error(origin + ": cannot read");
  return lines;
}

bool is_comment_or_blank(std::string_view line) { return line.empty() || line.front() == '#'; }

// ---------------------------------------------------------------------------------------------
// The keys

enum class key_kind : std::uint8_t {
  command_switch,  // --help, --version: command line only, no value
  command_value,   // --config FILE: command line only
  single,          // file key and flag, one value; the command line wins
  repeatable,      // file key and flag, many values; command-line values replace the file's
};

using apply_fn = void (*)(config&, const std::string& where, const std::string& value);
using show_fn = std::string (*)(const config&);

struct key_info {
  const char* name;
  const char* group;
  const char* value_name;  // "" for switches
  const char* description;
  key_kind kind;
  show_fn show_default;  // nullptr: no default to show
  apply_fn apply;  // nullptr: handled apart (config, help, version, predefined, predefined-file)
  const char* empty_default = "none";  // what --help shows when show_default gives ""
};

bool is_file_key(const key_info& k) {
  return k.kind == key_kind::single || k.kind == key_kind::repeatable;
}

// In enum order: the index is the enumerator.
constexpr std::array<const char*, 6> log_level_names = {"trace", "debug", "info",
                                                        "warn",  "error", "off"};
constexpr std::array<const char*, 2> mode_names = {"transparent", "aggregating"};
constexpr std::array<const char*, 3> upstream_client_names = {"native", "paho", "auto"};
constexpr std::array<const char*, 3> serial_framing_names = {"xbee-api1", "xbee-api2", "raw"};
constexpr std::array<const char*, 3> serial_flow_names = {"none", "rtscts", "xonxoff"};
constexpr std::array<unsigned, 11> standard_bauds = {1200,  2400,   4800,   9600,   19200, 38400,
                                                      57600, 115200, 230400, 460800, 921600};

template <typename Enum, std::size_t N>
Enum parse_enum(const std::string& where, const std::string& value,
                const std::array<const char*, N>& names) {
  std::string choices;
  for (std::size_t i = 0; i < N; ++i) {
    if (value == names[i]) return static_cast<Enum>(i);
    choices += (i == 0 ? "" : i + 1 == N ? " or " : ", ") + std::string(names[i]);
  }
  fail(where, in_quotes(value) + " is not one of " + choices);
}

constexpr std::array<const char*, 2> bool_names = {"false", "true"};

bool parse_bool(const std::string& where, const std::string& value) {
  return parse_enum<std::uint8_t>(where, value, bool_names) != 0;
}

// Keys that name a file (or a directory): stored as given; empty means none (the default).
template <std::string config::*Member>
std::string show_path(const config& c) {
  return c.*Member;
}
template <std::string config::*Member>
void set_path(config& c, const std::string&, const std::string& v) {
  c.*Member = v;
}

// The order here is the order of --help, of the example file, and of applying values (so of which
// error is reported first when several values are wrong).
const std::vector<key_info>& keys() {
  static const std::vector<key_info> table = {
      // General and logging
      {"config", "General", "FILE", "read KEY = VALUE lines from FILE (command line only)",
       key_kind::command_value, nullptr, nullptr},
      {"help", "General", "", "print this help and exit", key_kind::command_switch, nullptr,
       nullptr},
      {"version", "General", "", "print the version and exit", key_kind::command_switch, nullptr,
       nullptr},
      {"log-level", "Logging", "LEVEL", "trace, debug, info, warn, error or off", key_kind::single,
       [](const config& c) -> std::string {
         return log_level_names.at(static_cast<std::size_t>(c.level));
       },
       [](config& c, const std::string& w, const std::string& v) {
         c.level = parse_enum<log_level>(w, v, log_level_names);
       }},
      {"stats-interval", "Logging", "SECONDS",
       "log the counters every SECONDS (0..604800; 0 = only on SIGUSR1)", key_kind::single,
       [](const config& c) { return std::to_string(c.stats_interval.count()); },
       [](config& c, const std::string& w, const std::string& v) {
         c.stats_interval = std::chrono::seconds(parse_unsigned(w, v, 0, 604'800));
       }},

      // Broker
      {"broker", "Broker", "URI", "the MQTT 3.1.1 broker, tcp://HOST:PORT or ssl://HOST:PORT",
       key_kind::single, [](const config& c) { return c.broker; },
       [](config& c, const std::string& w, const std::string& v) {
         check_broker(w, v);
         c.broker = v;
       }},
      {"upstream-client-id", "Broker", "ID",
       "MQTT client id of the gateway's own broker connection", key_kind::single,
       [](const config& c) { return c.upstream_client_id; },
       [](config& c, const std::string& w, const std::string& v) {
         if (v.size() > 65535) fail(w, "longer than 65535 bytes");
         c.upstream_client_id = v;
       },
       "mqttsn-gw-<gateway-id>"},
      {"upstream-client", "Broker", "CLIENT",
       "MQTT client of the broker connections (both modes): native (the gateway's own), paho (Eclipse Paho), or auto (native)",
       key_kind::single,
       [](const config& c) -> std::string {
         return upstream_client_names.at(static_cast<std::size_t>(c.upstream_client));
       },
       [](config& c, const std::string& w, const std::string& v) {
         c.upstream_client = parse_enum<upstream_client_kind>(w, v, upstream_client_names);
       }},
      {"status-topic", "Broker", "TOPIC",
       "retained topic where the gateway publishes online (offline: its will)", key_kind::single,
       [](const config& c) { return c.status_topic; },
       [](config& c, const std::string& w, const std::string& v) {
         if (!v.empty() && !mqttsn::is_valid_topic_name(v)) {
           fail(w, in_quotes(v) + " is not a valid topic name (MQTT topic name without wildcards)");
         }
         c.status_topic = v;
       },
       "mqttsn/gateway/<gateway-id>/status"},
      {"connect-timeout", "Broker", "SECONDS",
       "wait for the broker on a CONNECT, then CONNACK congestion (0.001..3600)", key_kind::single,
       [](const config& c) { return format_seconds(c.connect_timeout); },
       [](config& c, const std::string& w, const std::string& v) {
         c.connect_timeout = parse_seconds_ms(w, v);
       }},
      {"upstream-max-queued", "Broker", "N",
       "publishes queued per broker connection before Paho refuses them (1..1000000)",
       key_kind::single, [](const config& c) { return std::to_string(c.upstream_max_queued); },
       [](config& c, const std::string& w, const std::string& v) {
         c.upstream_max_queued = static_cast<std::size_t>(parse_unsigned(w, v, 1, 1'000'000));
       }},
      {"upstream-max-held", "Broker", "N",
       "broker QoS 1/2 messages held unacknowledged per client while its queue is full, native "
       "client (0: no flow control; 0..100000)",
       key_kind::single, [](const config& c) { return std::to_string(c.upstream_max_held); },
       [](config& c, const std::string& w, const std::string& v) {
         c.upstream_max_held = static_cast<std::size_t>(parse_unsigned(w, v, 0, 100'000));
       }},

      // Broker security
      {"broker-ca-file", "Broker security", "FILE",
       "CA certificates (PEM) that sign an ssl:// broker's certificate", key_kind::single,
       show_path<&config::broker_ca_file>, set_path<&config::broker_ca_file>,
       "the system's CA store"},
      {"broker-ca-dir", "Broker security", "DIR",
       "a directory of CA certificates (PEM, hashed with c_rehash), next to broker-ca-file",
       key_kind::single, show_path<&config::broker_ca_dir>, set_path<&config::broker_ca_dir>},
      {"broker-cert-file", "Broker security", "FILE",
       "client certificate (PEM) the gateway shows to an ssl:// broker", key_kind::single,
       show_path<&config::broker_cert_file>, set_path<&config::broker_cert_file>},
      {"broker-key-file", "Broker security", "FILE",
       "private key (PEM) of broker-cert-file; a secret: mode 600 or 640", key_kind::single,
       show_path<&config::broker_key_file>, set_path<&config::broker_key_file>},
      {"broker-key-password-file", "Broker security", "FILE",
       "pass phrase of an encrypted broker-key-file (first line of FILE)", key_kind::single,
       show_path<&config::broker_key_password_file>,
       set_path<&config::broker_key_password_file>},
      {"broker-insecure", "Broker security", "BOOL",
       "true: do not check the broker's certificate nor its host name (tests only)",
       key_kind::single,
       [](const config& c) -> std::string { return bool_names.at(c.broker_insecure ? 1 : 0); },
       [](config& c, const std::string& w, const std::string& v) {
         c.broker_insecure = parse_bool(w, v);
       }},
      {"broker-username", "Broker security", "NAME",
       "MQTT user name of the gateway's broker connections", key_kind::single,
       [](const config& c) { return c.broker_username; },
       [](config& c, const std::string& w, const std::string& v) {
         if (v.size() > 65535) fail(w, "longer than 65535 bytes");
         c.broker_username = v;
       }},
      {"broker-password-file", "Broker security", "FILE",
       "the password of broker-username: the first line of FILE", key_kind::single,
       show_path<&config::broker_password_file>, set_path<&config::broker_password_file>},
      {"broker-credentials-file", "Broker security", "FILE",
       "transparent mode: `CLIENT_ID USER PASSWORD` lines, each client's own credentials",
       key_kind::single, show_path<&config::broker_credentials_file>,
       set_path<&config::broker_credentials_file>},

      // Client admission
      {"clients-file", "Client admission", "FILE",
       "admit only the clients listed in FILE (client ids, addresses, topics)", key_kind::single,
       show_path<&config::clients_file>, set_path<&config::clients_file>, "off: every client"},

      // Persistence
      {"persistence", "Persistence", "FILE",
       "keep sessions in this SQLite file across restarts (registrations, subscriptions, wills, "
       "buffered messages)",
       key_kind::single, show_path<&config::persistence>, set_path<&config::persistence>, "off"},
      {"persistence-flush-interval", "Persistence", "SECONDS",
       "write the sessions that changed this often, in one transaction (0.001..3600)",
       key_kind::single, [](const config& c) { return format_seconds(c.persistence_flush_interval); },
       [](config& c, const std::string& w, const std::string& v) {
         c.persistence_flush_interval = parse_seconds_ms(w, v);
       }},

      // UDP transport
      {"udp", "UDP transport", "HOST:PORT",
       "listen for MQTT-SN on this IPv4 HOST:PORT or [V6]:PORT (repeatable)", key_kind::repeatable,
       [](const config& c) {
         std::string s;
         for (const auto& l : c.udp) s += (s.empty() ? "" : " ") + format_listen(l);
         return s;
       },
       [](config& c, const std::string& w, const std::string& v) {
         auto l = parse_udp_listen(w, v);
         for (const auto& other : c.udp) {
           if (other == l) fail(w, in_quotes(v) + " is given twice");
         }
         c.udp.push_back(std::move(l));
       }},
      {"multicast", "UDP transport", "GROUP:PORT",
       "also send ADVERTISE and answer SEARCHGW on this multicast group", key_kind::single,
       [](const config& c) { return c.multicast ? format_listen(*c.multicast) : std::string(); },
       [](config& c, const std::string& w, const std::string& v) {
         c.multicast = v.empty() ? std::nullopt : std::optional(parse_multicast(w, v));
       },
       "off"},
      {"advertise-interval", "UDP transport", "SECONDS",
       "send ADVERTISE every SECONDS (0..65535; 0 = off)", key_kind::single,
       [](const config& c) { return std::to_string(c.advertise_interval.count()); },
       [](config& c, const std::string& w, const std::string& v) {
         c.advertise_interval = std::chrono::seconds(parse_unsigned(w, v, 0, 65535));
       }},
      {"max-frame-size", "UDP transport", "BYTES",
       "larger MQTT-SN frames are dropped, never sent (16..65535)", key_kind::single,
       [](const config& c) { return std::to_string(c.max_frame_size); },
       [](config& c, const std::string& w, const std::string& v) {
         c.max_frame_size = static_cast<std::size_t>(parse_unsigned(w, v, 16, 65535));
       }},
      {"udp-receive-buffer", "UDP transport", "BYTES",
       "kernel receive buffer of each UDP socket (4096..1073741824; capped by net.core.rmem_max)",
       key_kind::single, [](const config& c) { return std::to_string(c.udp_receive_buffer); },
       [](config& c, const std::string& w, const std::string& v) {
         c.udp_receive_buffer = static_cast<std::size_t>(parse_unsigned(w, v, 4096, 1073741824));
       }},

      // Serial transport
      {"serial", "Serial transport", "DEVICE",
       "serial device of an XBee coordinator or MCU bridge (a /dev/serial/by-id/ path is best)",
       key_kind::single, [](const config& c) { return c.serial; },
       [](config& c, const std::string& w, const std::string& v) {
         if (!v.empty() && !v.starts_with('/')) {
           fail(w, in_quotes(v) + " is not an absolute device path (e.g. /dev/ttyUSB0)");
         }
         c.serial = v;
       },
       "off"},
      {"serial-baud", "Serial transport", "N",
       "line speed: 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800 or 921600",
       key_kind::single, [](const config& c) { return std::to_string(c.serial_baud); },
       [](config& c, const std::string& w, const std::string& v) {
         const auto baud = parse_unsigned(w, v, 1, 4'000'000);
         if (!is_standard_baud(static_cast<unsigned>(baud))) {
           fail(w, in_quotes(v) + " is not a standard baud rate (1200, 2400, 4800, 9600, 19200, "
                                  "38400, 57600, 115200, 230400, 460800 or 921600)");
         }
         c.serial_baud = static_cast<unsigned>(baud);
       }},
      {"serial-framing", "Serial transport", "FRAMING",
       "xbee-api1 (XBee AP=1), xbee-api2 (XBee AP=2, escaped) or raw (bare MQTT-SN)",
       key_kind::single,
       [](const config& c) -> std::string {
         return serial_framing_names.at(static_cast<std::size_t>(c.serial_frame));
       },
       [](config& c, const std::string& w, const std::string& v) {
         c.serial_frame = parse_enum<serial_framing>(w, v, serial_framing_names);
       }},
      {"serial-flow", "Serial transport", "FLOW", "flow control: none, rtscts or xonxoff",
       key_kind::single,
       [](const config& c) -> std::string {
         return serial_flow_names.at(static_cast<std::size_t>(c.serial_flow_control));
       },
       [](config& c, const std::string& w, const std::string& v) {
         c.serial_flow_control = parse_enum<serial_flow>(w, v, serial_flow_names);
       }},
      {"serial-max-frame-size", "Serial transport", "BYTES",
       "larger MQTT-SN frames on the serial line are refused and counted (16..65535)",
       key_kind::single, [](const config& c) { return std::to_string(c.serial_max_frame_size); },
       [](config& c, const std::string& w, const std::string& v) {
         c.serial_max_frame_size = static_cast<std::size_t>(parse_unsigned(w, v, 16, 65535));
       }},

      // Gateway
      {"gateway-id", "Gateway", "N", "GwId sent in ADVERTISE and GWINFO (0..255)", key_kind::single,
       [](const config& c) { return std::to_string(c.gateway_id); },
       [](config& c, const std::string& w, const std::string& v) {
         c.gateway_id = static_cast<std::uint8_t>(parse_unsigned(w, v, 0, 255));
       }},
      {"mode", "Gateway", "MODE",
       "transparent (a broker connection per client) or aggregating (one shared)", key_kind::single,
       [](const config& c) -> std::string {
         return mode_names.at(static_cast<std::size_t>(c.mode));
       },
       [](config& c, const std::string& w, const std::string& v) {
         c.mode = parse_enum<gateway_mode>(w, v, mode_names);
       }},
      {"predefined", "Gateway", "ID=TOPIC",
       "a predefined topic id (1..65534) for every client (repeatable)", key_kind::repeatable,
       [](const config&) { return std::string(); }, nullptr},
      {"predefined-file", "Gateway", "FILE",
       "read predefined topic ids from FILE, one `ID TOPIC` per line", key_kind::single,
       [](const config& c) { return c.predefined_file; }, nullptr},

      // Sessions
      {"keep-alive-grace", "Client sessions", "FACTOR",
       "a client silent for FACTOR x its keep-alive (or sleep duration) is lost (1..10)",
       key_kind::single, [](const config& c) { return format_number(c.keep_alive_grace); },
       [](config& c, const std::string& w, const std::string& v) {
         c.keep_alive_grace = parse_number(w, v, 1, 10, "");
       }},
      {"retry-interval", "Client sessions", "SECONDS",
       "T_retry: wait before resending to a client (0.001..3600)", key_kind::single,
       [](const config& c) { return format_seconds(c.retry_interval); },
       [](config& c, const std::string& w, const std::string& v) {
         c.retry_interval = parse_seconds_ms(w, v);
       }},
      {"retry-count", "Client sessions", "N",
       "N_retry: resends before giving up on a client (0..100)", key_kind::single,
       [](const config& c) { return std::to_string(c.retry_count); },
       [](config& c, const std::string& w, const std::string& v) {
         c.retry_count = static_cast<unsigned>(parse_unsigned(w, v, 0, 100));
       }},
      {"max-clients", "Client sessions", "N", "most client sessions at once (1..1000000)",
       key_kind::single, [](const config& c) { return std::to_string(c.max_clients); },
       [](config& c, const std::string& w, const std::string& v) {
         c.max_clients = static_cast<std::size_t>(parse_unsigned(w, v, 1, 1'000'000));
       }},
      {"sleep-buffer", "Client sessions", "N",
       "messages queued per client, asleep or not; QoS 0 is dropped first (1..100000)",
       key_kind::single, [](const config& c) { return std::to_string(c.sleep_buffer); },
       [](config& c, const std::string& w, const std::string& v) {
         c.sleep_buffer = static_cast<std::size_t>(parse_unsigned(w, v, 1, 100'000));
       }},
      {"session-expiry", "Client sessions", "SECONDS",
       "discard a kept session (clean session false) whose client is offline and unheard of for "
       "SECONDS, freeing its slot (0..4294967295; 0 = never)",
       key_kind::single, [](const config& c) { return std::to_string(c.session_expiry.count()); },
       [](config& c, const std::string& w, const std::string& v) {
         c.session_expiry = std::chrono::seconds(parse_unsigned(w, v, 0, 4'294'967'295ULL));
       }},
  };
  return table;
}

const key_info* find_key(std::string_view name) {
  for (const auto& k : keys()) {
    if (name == k.name) return &k;
  }
  return nullptr;
}

std::string default_text(const key_info& k) {
  std::string shown = k.show_default(config{});
  return shown.empty() ? k.empty_default : shown;
}

std::string help_text() {
  std::string s =
      "Usage: mqttsn-gateway [--config FILE] [--KEY VALUE]...\n"
      "MQTT-SN v1.2 gateway to an MQTT 3.1.1 broker.\n"
      "\n"
      "Every KEY but config, help and version is also a config-file key: `KEY = VALUE` lines,\n"
      "`#` starts a comment line. The command line wins over the file; for the repeatable keys\n"
      "(udp, predefined) any value on the command line replaces all of the file's values.\n";
  std::string_view group;
  for (const auto& k : keys()) {
    if (group != k.group) {
      group = k.group;
      s += "\n" + std::string(group) + ":\n";
    }
    std::string flag = "  --" + std::string(k.name);
    if (*k.value_name != '\0') flag += " " + std::string(k.value_name);
    flag.resize(std::max<std::size_t>(flag.size() + 1, 32), ' ');  // a column, or one blank
    s += flag + k.description;
    if (k.show_default != nullptr) s += " [default: " + default_text(k) + "]";
    s += '\n';
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Sources of values

struct given_value {
  std::string where;  // error-message prefix naming the key (and file and line)
  std::string value;
  std::size_t line = 0;  // in the config file; 0 for the command line
};
using given_map = std::map<std::string, std::vector<given_value>, std::less<>>;

given_map read_config_file(const std::string& path) {
  const std::string origin = "config file " + path;
  const auto lines = read_lines(origin, path);
  given_map out;
  for (std::size_t n = 1; n <= lines.size(); ++n) {
    const auto line = trim(lines[n - 1]);
    if (is_comment_or_blank(line)) continue;
    const std::string at = origin + ": line " + std::to_string(n);
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) fail(at, in_quotes(line) + " is not KEY = VALUE");
    const auto name = trim(line.substr(0, eq));
    const key_info* k = find_key(name);
    if (k == nullptr) fail(at, "unknown key " + in_quotes(name));
    if (!is_file_key(*k)) fail(at, in_quotes(name) + " is a command-line option only");
    auto& values = out[k->name];
    if (k->kind == key_kind::single && !values.empty()) {
      fail(at, in_quotes(name) + " is set twice (first on line " +
                   std::to_string(values.front().line) + ")");
    }
    values.push_back({at + ": " + k->name, std::string(trim(line.substr(eq + 1))), n});
  }
  return out;
}

po::options_description command_line_options() {
  po::options_description desc;
  for (const auto& k : keys()) {
    switch (k.kind) {
      case key_kind::command_switch: desc.add_options()(k.name, po::bool_switch()); break;
      case key_kind::command_value:
      case key_kind::single: desc.add_options()(k.name, po::value<std::string>()); break;
      case key_kind::repeatable:
        desc.add_options()(k.name, po::value<std::vector<std::string>>());
        break;
    }
  }
  return desc;
}

po::parsed_options run_command_line_parser(int argc, const char* const argv[]) {
  const auto desc = command_line_options();
  // Long options only, no abbreviations: `--brok` is an error, not `--broker`.
  constexpr int style = po::command_line_style::allow_long |
                        po::command_line_style::long_allow_adjacent |
                        po::command_line_style::long_allow_next;
  try {
    return po::command_line_parser(argc, argv).options(desc).style(style).run();
  } catch (const po::unknown_option& e) {
    throw config_error(e.get_option_name() + ": unknown option (see --help)");
  } catch (const po::invalid_command_line_syntax& e) {
    const auto name = e.get_option_name();
    switch (e.kind()) {
      case po::invalid_syntax::missing_parameter: throw config_error(name + ": needs a value");
      case po::invalid_syntax::extra_parameter: throw config_error(name + ": takes no value");
      case po::invalid_syntax::empty_adjacent_parameter:
        throw config_error(name + ": needs a value after '=' (write " + name +
                           " '' for an empty value)");
      default: throw config_error(name + ": " + e.what());
    }
  } catch (const po::error& e) {
    throw config_error(std::string("command line: ") + e.what());
  }
}

given_map read_command_line(int argc, const char* const argv[]) {
  const auto parsed = run_command_line_parser(argc, argv);
  given_map out;
  for (const auto& o : parsed.options) {
    if (o.position_key != -1) {
      const std::string arg = o.value.empty() ? std::string() : o.value.front();
      if (arg.starts_with('-')) throw config_error(arg + ": unknown option (see --help)");
      throw config_error(in_quotes(arg) +
                         ": unexpected argument (settings are --KEY VALUE; see --help)");
    }
    const key_info* k = find_key(o.string_key);
    if (k == nullptr) throw config_error("--" + o.string_key + ": unknown option (see --help)");
    auto& values = out[k->name];
    const std::string where = "--" + std::string(k->name);
    if (k->kind != key_kind::repeatable && k->kind != key_kind::command_switch && !values.empty()) {
      fail(where, "given more than once");
    }
    // po drops an empty token: `--multicast ''` arrives with no value.
    values.push_back({where, o.value.empty() ? std::string() : o.value.front(), 0});
  }
  return out;
}

// The command line's values for a key if it has any, else the file's.
const std::vector<given_value>* chosen(const given_map& cli, const given_map& file,
                                       std::string_view key) {
  if (const auto it = cli.find(key); it != cli.end()) return &it->second;
  if (const auto it = file.find(key); it != file.end()) return &it->second;
  return nullptr;
}

// --predefined-file, then --predefined: one table, so a duplicate across the two is an error too.
void apply_predefined(config& c, const std::vector<given_value>* flags,
                      const std::vector<given_value>* file) {
  if (flags == nullptr && file == nullptr) return;  // keep the values on entry
  if (file != nullptr) c.predefined_file = file->front().value;
  c.predefined = c.predefined_file.empty() ? std::vector<std::pair<mqttsn::topic_id, std::string>>{}
                                           : read_predefined_file(c.predefined_file);
  mqttsn::predefined_topics table;
  for (const auto& [id, topic] : c.predefined) table.add(id, topic);
  if (flags == nullptr) return;
  for (const auto& g : *flags) {
    // An empty value adds nothing; on the command line it still drops the file's values.
    if (g.value.empty()) continue;
    const std::string_view text = g.value;
    const auto eq = text.find('=');
    if (eq == std::string_view::npos) fail(g.where, in_quotes(text) + " is not ID=TOPIC");
    const auto id = parse_topic_id(g.where, trim(text.substr(0, eq)));
    add_predefined(g.where, table, id, std::string(trim(text.substr(eq + 1))), c.predefined);
  }
}

// Settings that only make sense together.
void check_broker_security(const config& c) {
  const bool tls = c.broker.starts_with("ssl://");
  const std::pair<const char*, bool> tls_only[] = {
      {"--broker-ca-file", !c.broker_ca_file.empty()},
      {"--broker-ca-dir", !c.broker_ca_dir.empty()},
      {"--broker-cert-file", !c.broker_cert_file.empty()},
      {"--broker-key-file", !c.broker_key_file.empty()},
      {"--broker-key-password-file", !c.broker_key_password_file.empty()},
      {"--broker-insecure", c.broker_insecure},
  };
  for (const auto& [key, set] : tls_only) {
    if (set && !tls) fail(key, "needs an ssl:// broker (--broker is " + in_quotes(c.broker) + ")");
  }
  if (!c.broker_cert_file.empty() && c.broker_key_file.empty()) {
    fail("--broker-cert-file", "needs --broker-key-file (the certificate's private key)");
  }
  if (!c.broker_key_file.empty() && c.broker_cert_file.empty()) {
    fail("--broker-key-file", "needs --broker-cert-file (the certificate of that key)");
  }
  if (!c.broker_key_password_file.empty() && c.broker_key_file.empty()) {
    fail("--broker-key-password-file", "needs --broker-key-file");
  }
  if (!c.broker_password_file.empty() && c.broker_username.empty()) {
    fail("--broker-password-file", "needs --broker-username (MQTT sends no password without one)");
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string config::effective_upstream_client_id() const {
  return upstream_client_id.empty() ? "mqttsn-gw-" + std::to_string(gateway_id)
                                    : upstream_client_id;
}

upstream_client_kind config::effective_upstream_client() const {
  return upstream_client == upstream_client_kind::paho ? upstream_client_kind::paho
                                                       : upstream_client_kind::native;
}

std::string config::effective_status_topic() const {
  return status_topic.empty() ? "mqttsn/gateway/" + std::to_string(gateway_id) + "/status"
                              : status_topic;
}

mqttsn::session_config config::session() const {
  mqttsn::session_config s;
  s.keep_alive_grace = keep_alive_grace;
  s.retry_interval = retry_interval;
  s.retry_count = retry_count;
  s.connect_timeout = connect_timeout;
  s.max_queued = sleep_buffer;
  s.session_expiry = session_expiry;
  s.max_frame_size = max_frame_size;
  return s;
}

mqttsn::table_config config::table() const {
  mqttsn::table_config t;
  t.max_clients = max_clients;
  t.gateway_id = gateway_id;
  return t;
}

bool is_standard_baud(unsigned baud) noexcept {
  return std::find(standard_bauds.begin(), standard_bauds.end(), baud) != standard_bauds.end();
}

udp_listen parse_udp_listen(const std::string& key, const std::string& value) {
  constexpr std::string_view form = "HOST:PORT or [V6]:PORT";
  const auto hp = split_host_port(key, value, value, form);
  if (hp.bracketed ? !is_ipv6(hp.host) : !is_ipv4(hp.host)) {
    fail(key, in_quotes(hp.host) + " in " + in_quotes(value) + " is not an " +
                  (hp.bracketed ? "IPv6" : "IPv4") + " address (" + std::string(form) +
                  ", no host names)");
  }
  return {hp.host, parse_port(key, value, hp.port)};
}

std::vector<std::pair<mqttsn::topic_id, std::string>> read_predefined_file(
    const std::string& path) {
  const std::string origin = "--predefined-file " + path;
  const auto lines = read_lines(origin, path);
  std::vector<std::pair<mqttsn::topic_id, std::string>> out;
  mqttsn::predefined_topics table;
  for (std::size_t n = 1; n <= lines.size(); ++n) {
    const auto line = trim(lines[n - 1]);
    if (is_comment_or_blank(line)) continue;
    const std::string at = origin + ": line " + std::to_string(n);
    const auto blank = line.find_first_of(whitespace);
    const auto id_text = line.substr(0, blank);
    const auto topic =
        blank == std::string_view::npos ? std::string_view() : trim(line.substr(blank));
    add_predefined(at, table, parse_topic_id(at, id_text), std::string(topic), out);
  }
  return out;
}

parse_outcome parse_config(int argc, const char* const argv[], config& cfg, std::string& out) {
  const auto cli = read_command_line(argc, argv);
  if (cli.contains("help")) {
    out = help_text();
    return parse_outcome::exit_ok;
  }
  if (cli.contains("version")) {
    out = "mqttsn-gateway " MQTTSN_VERSION "\n";
    return parse_outcome::exit_ok;
  }
  given_map file;
  if (const auto it = cli.find("config"); it != cli.end()) {
    file = read_config_file(it->second.front().value);
  }

  config c = cfg;
  for (const auto& k : keys()) {
    const auto* values = chosen(cli, file, k.name);
    if (values == nullptr || k.apply == nullptr) continue;
    if (k.name == std::string_view("udp")) c.udp.clear();  // given values replace the default
    for (const auto& g : *values) k.apply(c, g.where, g.value);
  }
  apply_predefined(c, chosen(cli, file, "predefined"), chosen(cli, file, "predefined-file"));
  check_broker_security(c);
  cfg = std::move(c);
  return parse_outcome::run;
}

}  // namespace gateway
