// The daemon's configuration: one struct with defaults, filled from an optional config file
// (`--config FILE`, lines `key = value`, `#` comments) and the command line (`--key value`); every
// key is both. The command line wins over the file. Errors are one line naming the key.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "mqttsn/session.hpp"
#include "mqttsn/session_table.hpp"
#include "mqttsn/topics.hpp"

namespace gateway {

enum class gateway_mode : std::uint8_t { transparent, aggregating };
// The MQTT client of the broker connections (both modes). automatic (`auto`, the default): the
// gateway's choice, the native client in both modes since it passed transparent mode's broker-kill
// outage runs (docs/native-upstream.md); paho: Eclipse Paho, on request only.
enum class upstream_client_kind : std::uint8_t { native, paho, automatic };
enum class log_level : std::uint8_t { trace, debug, info, warn, error, off };
// --serial-framing: XBee API mode 1, XBee API mode 2 (escaped), or bare MQTT-SN length framing.
enum class serial_framing : std::uint8_t { xbee_api1, xbee_api2, raw };
// --serial-flow: none, hardware RTS/CTS, software XON/XOFF.
enum class serial_flow : std::uint8_t { none, rtscts, xonxoff };

// A UDP listen address: IPv4 "0.0.0.0:1884" or IPv6 "[::1]:1884".
struct udp_listen {
  std::string host;  // without brackets
  std::uint16_t port = 0;
  bool operator==(const udp_listen&) const = default;
};

struct config {
  std::string broker = "tcp://127.0.0.1:1883";
  std::vector<udp_listen> udp{{"0.0.0.0", 1884}};
  std::uint8_t gateway_id = 1;
  gateway_mode mode = gateway_mode::transparent;
  upstream_client_kind upstream_client = upstream_client_kind::automatic;
  // --predefined-file's entries, then --predefined ID=TOPIC's.
  std::vector<std::pair<mqttsn::topic_id, std::string>> predefined;
  std::string predefined_file;
  std::chrono::seconds advertise_interval{0};  // 0 = off
  std::optional<udp_listen> multicast;         // GROUP:PORT, off by default
  double keep_alive_grace = 1.5;
  std::chrono::milliseconds retry_interval{10'000};  // T_retry (key in seconds, fractions allowed)
  unsigned retry_count = 3;                          // N_retry
  std::size_t max_clients = 1000;
  std::size_t sleep_buffer = 100;  // messages queued per client (asleep or not)
  // A kept session (clean session false) whose client is offline and unheard of for this long is
  // discarded, freeing its max-clients slot; 0 = kept for ever.
  std::chrono::seconds session_expiry{0};
  std::size_t max_frame_size = 1024;
  // SO_RCVBUF of each UDP socket: datagrams that arrive while the gateway thread is busy or
  // descheduled wait here; beyond it the kernel drops them (the kernel caps it at net.core.rmem_max).
  std::size_t udp_receive_buffer = 4 * 1024 * 1024;
  // Serial transport: off while `serial` (the device path) is empty.
  std::string serial;
  unsigned serial_baud = 9600;
  serial_framing serial_frame = serial_framing::xbee_api2;
  serial_flow serial_flow_control = serial_flow::none;
  std::size_t serial_max_frame_size = 255;  // the radio payload (NP) limit, raw lines too
  std::chrono::milliseconds connect_timeout{5'000};
  // Publishes Paho may queue per broker connection before its send thread writes them; beyond it
  // Paho refuses them (counted as upstream_publishes_dropped in the stats line).
  std::size_t upstream_max_queued = 10'000;
  // Flow control (native client, per-client connections): broker QoS 1/2 messages held
  // unacknowledged per client while its queue is full (docs/flow-control.md); 0: off.
  std::size_t upstream_max_held = 1000;
  // Broker security: TLS for an ssl:// broker and credentials. Only file names are kept here; the
  // secrets are read at startup (gateway/secrets.hpp), so no secret is ever a command-line value.
  std::string broker_ca_file;            // PEM CA certificates; none: the system's CA store
  std::string broker_ca_dir;             // a directory of hashed PEM CA certificates (c_rehash)
  std::string broker_cert_file;          // client certificate (PEM), with broker_key_file
  std::string broker_key_file;           // its private key (PEM)
  std::string broker_key_password_file;  // pass phrase of an encrypted private key
  bool broker_insecure = false;          // true: no check of the broker's certificate nor host name
  std::string broker_username;           // user name of every broker connection
  std::string broker_password_file;      // its password (first line of the file)
  std::string broker_credentials_file;   // transparent mode: `CLIENT_ID USER PASSWORD` per line
  // Client admission: off while empty (every client id from every address is accepted).
  std::string clients_file;
  // Persistent sessions: off while empty; changed sessions are written every flush interval.
  std::string persistence;
  std::chrono::milliseconds persistence_flush_interval{1'000};
  std::string upstream_client_id;  // default derived from the gateway id: "mqttsn-gw-<id>"
  std::string status_topic;        // default "mqttsn/gateway/<id>/status"
  std::chrono::seconds stats_interval{300};  // 0 = only on SIGUSR1
  log_level level = log_level::info;

  // Derived values.
  std::string effective_upstream_client_id() const;
  // upstream-client resolved: native or paho (auto is native in both modes).
  upstream_client_kind effective_upstream_client() const;
  std::string effective_status_topic() const;
  mqttsn::session_config session() const;
  mqttsn::table_config table() const;  // max_clients, gateway_id

  bool operator==(const config&) const = default;
};

// A bad value or unknown key: what() is one line naming the key, e.g.
// "--retry-count: 'x' is not a non-negative integer" or "config file F: line 7: unknown key
// 'brokr'".
struct config_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class parse_outcome : std::uint8_t { run, exit_ok };  // exit_ok after --help / --version

// Parses argv (and the file named by --config). Writes --help / --version text to `out`.
// Throws config_error. `cfg` is changed only on success (outcome run); the values it holds on entry
// are the ones a key keeps when neither the file nor the command line sets it. For the repeatable
// keys (udp, predefined) any value on the command line replaces all the file's values. An empty
// value of upstream-client-id, status-topic, multicast or predefined-file means the default
// (derived, off, none); --config, --help and --version are command-line only.
parse_outcome parse_config(int argc, const char* const argv[], config& cfg, std::string& out);

// The baud rates --serial-baud accepts (the standard termios rates from 1200 up).
bool is_standard_baud(unsigned baud) noexcept;

// Parses "host:port" / "[v6]:port": an IPv4 or IPv6 literal (no host names) and a port 1..65535.
// `key` starts the error message verbatim ("--udp", or a config-file location and key).
udp_listen parse_udp_listen(const std::string& key, const std::string& value);

// Reads a predefined-topics file: one `ID TOPIC` per line, `#` comments, blank lines ignored.
std::vector<std::pair<mqttsn::topic_id, std::string>> read_predefined_file(const std::string& path);

}  // namespace gateway
