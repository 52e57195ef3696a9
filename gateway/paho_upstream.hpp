// The broker side of the gateway on Eclipse Paho MQTT C++ (async_client, MQTT 3.1.1): one MQTT
// connection per MQTT-SN client (transparent mode) plus the gateway-level connection (QoS -1
// publishes, the retained status topic). Owns the Paho clients, their reconnect timers and the
// requests in flight; knows nothing about MQTT-SN sessions.
//
// Threading model
//   - Every public member is called on the io_context thread (the gateway's one thread), except
//     stop() and the destructor, which run after that thread has stopped running the io_context.
//   - Paho runs its callbacks (connect results, acknowledgements, arriving messages, connection
//     loss) on its own two threads. They only copy what they need and boost::asio::post it into
//     the io_context; the event handler given to start() is only ever called on the io thread.
//   - Per-connection state lives in a shared_ptr ("link"); posted handlers hold a weak_ptr and the
//     link's generation, so events from a connection that was closed or replaced are dropped.
//   - No call blocks the io thread: no token is ever waited on there. Paho clients are destroyed
//     on a reaper thread of our own, never on the io thread nor on a Paho thread, and only once
//     their DISCONNECT has completed (or timed out) and Paho has let go of the last token.
//
// Connections
//   - No Paho persistence (nothing is written to disk: the session keeps its own copies), MQTT
//     3.1.1 only, no Paho automatic reconnect. A lost connection is reconnected here with a
//     steady_timer and exponential backoff (reconnect_min doubling to reconnect_max, each delay
//     +-reconnect_jitter), so every reconnect yields a fresh upstream_connected{session_present}.
//   - connect(): a new MQTT CONNECT with the client's clean session, keep-alive and will. A
//     connection that exists for that client id is closed with DISCONNECT first (the broker drops
//     its will), and the new CONNECT waits until that is done. CONNACK 1..5 -> upstream_refused
//     (the reason in words); an unreachable broker -> retries with backoff and no event (the
//     session gives up after its connect timeout and calls disconnect()).
//   - A CONNACK refusal of a client's first connection forgets that client; after an established
//     connection (and always for the gateway-level one) it is retried at reconnect_max pace.
//   - The gateway-level connection (client id `gateway_connection`, i.e. "") has will "offline"
//     (QoS 1, retained) on the status topic, publishes a retained "online" on every (re)connect
//     and is kept up forever. Its events go to the handler too, with an empty client id; it takes
//     publish/subscribe/unsubscribe with refs like any connection (aggregating mode runs every
//     client over it). Its clean session is paho_settings::gateway_clean_session.
//   - Events go to the handler given to start(); without start() they are dropped.
//   - Logs: info for the broker going down / coming back (one line each, whatever the number of
//     connections) and for refusals with the broker's reason; debug for everything else.
//   - Paho C 1.3.12 quirk: while another connection is up, a new CONNECT takes 1-2 s in Paho
//     itself (its receive thread polls with a 1 s timeout before it notices a new socket).
//
// Requests in flight
//   - publish with ref 0 is fire-and-forget (QoS 0, or a will at its own QoS); with a ref the
//     broker's PUBACK/PUBCOMP becomes upstream_published{ref}. subscribe -> upstream_subscribed
//     {ref, granted, or nullopt for a SUBACK 0x80}; unsubscribe -> upstream_unsubscribed{ref}.
//   - A ref-0 publish while the connection is down is dropped (counted); the session drops QoS 0
//     while the broker is down anyway. A request with a ref while the connection is down (the
//     session may send one before it has seen upstream_lost) is kept, like a request the broker
//     had not answered when the connection broke:
//       * reconnect with session_present = false: all of them are dropped; the session resends
//         every request it still holds (docs/protocol-core.md, "Contract with the runtime").
//       * reconnect with session_present = true: QoS 1/2 PUBLISHes that were on the wire are
//         resent by Paho itself (same message id, DUP); everything else kept here (requests never
//         sent, Paho failures, SUBSCRIBE/UNSUBSCRIBE, which Paho does not resend) is sent again,
//         and the late answers of the old copies are ignored.
//   - disconnect() drops that client's requests in flight: no answer is ever reported for them.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>

#include "gateway/broker_settings.hpp"
#include "gateway/upstream.hpp"

namespace mqtt {
class async_client;
class connect_options;
}

namespace gateway {

class paho_upstream final : public upstream {
 public:
  // `io` must outlive this object. Nothing connects before start() / connect().
  paho_upstream(boost::asio::io_context& io, paho_settings settings);
  // Calls stop(disconnect_timeout) if stop() was not called. Like stop(), not on a running io
  // thread.
  ~paho_upstream() override;
  paho_upstream(const paho_upstream&) = delete;
  paho_upstream& operator=(const paho_upstream&) = delete;

  void start(event_handler on_event) override;
  // At shutdown, after the io_context has stopped running (blocks up to `timeout`): retained
  // "offline" on the status topic, then DISCONNECT for every connection, then the Paho clients are
  // destroyed. Idempotent.
  void stop(std::chrono::milliseconds timeout) override;

  void connect(const std::string& client_id, const mqttsn::upstream_connect& c) override;
  void publish(const std::string& client_id, const mqttsn::upstream_publish& p) override;
  void subscribe(const std::string& client_id, const mqttsn::upstream_subscribe& s) override;
  void unsubscribe(const std::string& client_id, const mqttsn::upstream_unsubscribe& u) override;
  void disconnect(const std::string& client_id) override;

  const paho_stats& stats() const noexcept { return stats_; }
  std::string counters() const override { return to_counters(stats_); }
  const paho_settings& settings() const noexcept { return settings_; }
  // Connections this object holds (per-client ones and the gateway-level one).
  std::size_t connections() const noexcept { return links_.size(); }
  // Whether that connection is up (the broker accepted it and it has not been lost since).
  bool connected(const std::string& client_id) const;
  // Paho clients closed but not yet destroyed (their DISCONNECT is still running).
  std::size_t closing() const noexcept { return closing_; }

 private:
  struct link;
  struct paho_client;
  struct request;
  class listener;
  class reaper;
  struct anchor {
    paho_upstream* self;
  };

  std::shared_ptr<link> make_link(const std::string& client_id, bool gateway_level);
  void apply_security(mqtt::connect_options& o, const std::string& client_id,
                      bool gateway_level) const;
  // ssl:// only: once per outage, a handshake of our own on a thread says why TLS fails.
  void start_tls_probe();
  void on_tls_probe(const std::string& reason);
  void attempt(const std::shared_ptr<link>& l);
  void schedule_retry(const std::shared_ptr<link>& l);
  void retire(const std::shared_ptr<link>& l, std::chrono::milliseconds disconnect_timeout);
  void send_request(link& l, std::uint64_t id, request& r);
  void send_fire_and_forget(link& l, const mqttsn::upstream_publish& p);
  void resend_after_reconnect(link& l, bool session_present);
  void emit(const std::string& client_id, mqttsn::upstream_event event);
  void post_event(const std::string& client_id, mqttsn::upstream_event event);
  link* find(const std::string& client_id);

  // Paho results, delivered on the io thread.
  void on_connect_result(const std::shared_ptr<link>& l, std::uint64_t attempt, int rc,
                         bool session_present);
  void on_request_result(const std::shared_ptr<link>& l, std::uint64_t id, bool ok, int rc,
                         int granted);
  void on_connection_lost(const std::shared_ptr<link>& l, const std::string& cause);
  void on_message(const std::shared_ptr<link>& l, mqttsn::upstream_message m);
  void on_closed(const std::string& client_id);

  boost::asio::io_context& io_;
  paho_settings settings_;
  event_handler on_event_;
  std::shared_ptr<anchor> anchor_;
  std::unique_ptr<mqtt::async_client> pin_;  // never connected: keeps Paho's threads alive
  std::unique_ptr<reaper> reaper_;
  std::map<std::string, std::shared_ptr<link>> links_;  // by client id; "" is the gateway-level one
  std::map<std::string, std::size_t> closing_by_id_;    // old connections whose DISCONNECT runs
  std::size_t closing_ = 0;
  std::uint64_t next_generation_ = 1;
  broker_status broker_;
  std::mt19937 rng_;
  paho_stats stats_;
  bool stopped_ = false;
  std::thread tls_probe_;  // joined by stop()
};

}  // namespace gateway
