// What every broker connection of the gateway is configured with (URI, client id, status topic,
// timeouts, backoff, TLS, login, queue bound) and the counters it keeps; shared by the two
// implementations of the gateway-level connection: paho_upstream (Paho C++) and native_upstream
// (the gateway's own MQTT 3.1.1 client on its io_context).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include <spdlog/spdlog.h>

namespace gateway {

// TLS toward an ssl:// broker (ignored for tcp://). The broker's certificate and host name are
// checked unless `insecure`.
struct tls_settings {
  std::string ca_file;  // PEM; neither this nor ca_dir: OpenSSL's default CA store
  std::string ca_dir;
  std::string cert_file;  // client certificate, with key_file
  std::string key_file;
  std::string key_password;  // a secret: never logged
  bool insecure = false;
};

// MQTT user name and password of a connection; the password is a secret, never logged.
struct broker_login {
  std::string username;
  std::string password;
};

// Which MQTT client carries the gateway-level connection of aggregating mode (upstream-client).
// Transparent mode's per-client connections are always Paho's.
enum class upstream_client : std::uint8_t { native, paho };

struct paho_settings {
  std::string broker = "tcp://127.0.0.1:1883";         // tcp://HOST:PORT or ssl://HOST:PORT
  std::string gateway_client_id = "mqttsn-gw";         // client id of the gateway-level connection
  std::string status_topic = "mqttsn/gateway/status";  // retained "online" / will "offline"
  std::chrono::milliseconds connect_timeout{5'000};  // Paho's CONNECT timeout (whole seconds, >= 1)
  std::chrono::milliseconds reconnect_min{1'000};    // first reconnect delay
  std::chrono::milliseconds reconnect_max{30'000};   // backoff cap
  double reconnect_jitter = 0.25;                    // each delay is scaled by 1 +- this (random)
  std::chrono::seconds gateway_keep_alive{60};       // keep-alive of the gateway-level connection
  // Clean session of the gateway-level connection: true in transparent mode; aggregating mode
  // sets false (the broker keeps the shared session's subscriptions and QoS 1/2 messages).
  bool gateway_clean_session = true;
  std::chrono::milliseconds disconnect_timeout{
      1'000};  // DISCONNECT waits this long for in-flight acks
  tls_settings tls;
  // Login of the gateway-level connection, and of each client connection that has none below.
  std::optional<broker_login> login;
  // Transparent mode: a client's own login, by MQTT-SN client id.
  std::map<std::string, broker_login, std::less<>> client_logins;
  // Publishes Paho may hold per connection before its send thread writes them. Paho's default
  // (100) refused QoS 0 publishes of the shared aggregating connection during bursts.
  int max_queued_publishes = 10'000;
  // Aggregating mode: the client of the shared connection (native_upstream or paho_upstream).
  upstream_client client = upstream_client::native;
  // Flow control (native_upstream's per-client connections, docs/flow-control.md): broker QoS 1/2
  // messages held unacknowledged per connection while the client's queue is full; beyond it the
  // oldest goes to the queue's drop policy. 0: no flow control (acknowledged on arrival).
  std::size_t max_held = 1000;
};

// Read on the io thread (or after stop()).
struct paho_stats {
  std::uint64_t connects = 0;    // CONNACK accepted, first connects and reconnects
  std::uint64_t reconnects = 0;  // of which after a connection loss
  std::uint64_t refusals = 0;    // CONNACK refused (return code 1..5) or CONNECT rejected by Paho
  std::uint64_t connect_failures = 0;   // attempts that never got a CONNACK (network, timeout)
  std::uint64_t connection_losses = 0;  // established connections that broke
  std::uint64_t publishes = 0;          // PUBLISHes handed to Paho (resends included)
  std::uint64_t publishes_dropped = 0;  // ref-0 publishes with no connection up, or refused by Paho
  std::uint64_t acks = 0;               // PUBACK/PUBCOMP reported as upstream_published
  std::uint64_t messages = 0;           // broker messages reported as upstream_message
  // Flow control (native_upstream, transparent mode): broker QoS 1/2 messages whose PUBACK/PUBREC
  // waited for room in the client's queue; of those, pushed into the queue's drop policy by the
  // max_held bound; DUP resends of a held message not taken twice.
  std::uint64_t acks_deferred = 0;
  std::uint64_t held_overflows = 0;
  std::uint64_t held_duplicates = 0;
};

// `key=value` fields of the stats line (upstream::counters()).
inline std::string to_counters(const paho_stats& s) {
  return "connects=" + std::to_string(s.connects) + " reconnects=" + std::to_string(s.reconnects) +
         " refusals=" + std::to_string(s.refusals) +
         " connect_failures=" + std::to_string(s.connect_failures) +
         " connection_losses=" + std::to_string(s.connection_losses) +
         " publishes=" + std::to_string(s.publishes) +
         " publishes_dropped=" + std::to_string(s.publishes_dropped) +
         " acks=" + std::to_string(s.acks) + " messages=" + std::to_string(s.messages) +
         " acks_deferred=" + std::to_string(s.acks_deferred) +
         " held_overflows=" + std::to_string(s.held_overflows) +
         " held_duplicates=" + std::to_string(s.held_duplicates);
}

// Whether the broker is reachable, as the logs tell it: one info line when it goes down and one
// when it is back, whatever the number of connections. Shared by paho_upstream and native_upstream.
class broker_status {
 public:
  bool down() const noexcept { return state_ == state::down; }
  void note_up(const std::string& broker) {
    if (state_ == state::up) return;
    if (state_ == state::down) {
      spdlog::info("upstream: broker {} is back", broker);
    } else {
      spdlog::info("upstream: connected to broker {}", broker);
    }
    state_ = state::up;
  }
  void note_down(const std::string& broker, const std::string& why) {
    if (state_ == state::down) return;
    spdlog::info("upstream: broker {} is {} ({}); reconnecting with backoff", broker,
                 state_ == state::up ? "down" : "unreachable", why);
    state_ = state::down;
  }

 private:
  enum class state : std::uint8_t { unknown, up, down } state_ = state::unknown;
};

}  // namespace gateway
