// The broker side of the gateway on its own MQTT 3.1.1 client (mqtt_connection), in the gateway's
// io_context: no thread, no lock, no hop between threads per message. Serves both the
// gateway-level connection (aggregating mode runs every client over it) and transparent mode's
// per-client connections, with the contract of paho_upstream.hpp:
//   - start(): the gateway-level connection (client id `gateway_connection`, i.e. "") with
//     paho_settings::gateway_client_id, gateway_clean_session, gateway_keep_alive, will "offline"
//     (QoS 1, retained) on the status topic and the login; publishes a retained "online" on every
//     (re)connect; kept up forever.
//   - connect(client id): a connection with the client's clean session, keep-alive, will and login
//     (paho_settings::client_logins by client id, else login). A connection that exists for that
//     client id is closed with DISCONNECT first (the broker drops its will); the new CONNECT waits
//     until that DISCONNECT is written (at most connect_timeout). CONNACK 1..5 -> upstream_refused
//     with the reason; a refusal of a client's first connection forgets the client, later ones
//     are retried at reconnect_max pace. Unreachable -> retried with backoff and no event.
//   - Every connection is kept up with backoff (reconnect_min doubling to reconnect_max, each
//     delay +-reconnect_jitter). Every (re)connect is reported as upstream_connected
//     {session_present}, every loss as upstream_lost. A gateway-level refusal is retried at
//     reconnect_max pace.
//   - publish ref 0: fire and forget (QoS 0, or a will at its own QoS); dropped and counted while
//     the connection is down or when more than max_queued_publishes packets wait to be written.
//     With a ref, the broker's PUBACK/PUBCOMP becomes upstream_published{ref}; subscribe ->
//     upstream_subscribed{ref, granted or nullopt for 0x80}; unsubscribe -> upstream_unsubscribed.
//   - Requests with a ref are kept (in arrival order, per connection) until answered, also while
//     the connection is down. Reconnect with session_present: QoS 1/2 PUBLISHes that were sent go
//     again with DUP and the same packet id, PUBRELs for those the broker had PUBRECed,
//     SUBSCRIBE/UNSUBSCRIBE again, then what was never sent. Without session_present: all of them
//     are dropped (the session, or aggregating_upstream, resends what it still holds).
//   - disconnect(client id): that client's requests are dropped (never answered) and DISCONNECT
//     is sent; the gateway-level connection stays up until stop().
//   - Broker messages: QoS 1 answered PUBACK; QoS 2 delivered once, its id remembered until the
//     PUBREL, answered PUBREC/PUBCOMP; a DUP copy of an id still remembered is not delivered again.
//   - Flow control (per-client connections, set_offer() given, max_held > 0; docs/flow-control.md):
//     a QoS 1/2 message the client's session refuses (offer() false), or that arrives while others
//     are held, is held unacknowledged, in order; resume(client id) offers them again and each is
//     PUBACKed/PUBRECed when taken. The broker's in-flight window then keeps the backlog at the
//     broker. A DUP resend of a held id is that message (not held twice). Beyond max_held the
//     oldest held message goes to the session anyway (its queue's drop policy; counted). Held
//     messages outlive a lost connection; after a reconnect without the broker's session they are
//     delivered as they were but never acknowledged (their ids belong to the old session).
//   - Events reach the handler on the io thread, never from inside an intent call (posted).
//   - Logs: info when the broker goes down / comes back (one line each per outage, whatever the
//     number of connections), refusals with the broker's reason, TLS certificate failures in
//     OpenSSL's words; debug for the rest.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "gateway/broker_settings.hpp"
#include "gateway/mqtt_client.hpp"
#include "gateway/upstream.hpp"

namespace gateway {

class native_upstream final : public upstream {
 public:
  // `io` must outlive this object. Throws std::invalid_argument for a broker URI it cannot use,
  // a bad status topic, or TLS files that cannot be loaded.
  native_upstream(boost::asio::io_context& io, paho_settings settings);
  // Calls stop(disconnect_timeout) if stop() was not called.
  ~native_upstream() override;
  native_upstream(const native_upstream&) = delete;
  native_upstream& operator=(const native_upstream&) = delete;

  void start(event_handler on_event) override;
  // After the io_context has stopped running: runs it (at most `timeout`) for a retained
  // "offline" on the status topic and its PUBACK, then DISCONNECT. No event after this. Idempotent.
  void stop(std::chrono::milliseconds timeout) override;

  void connect(const std::string& client_id, const mqttsn::upstream_connect& c) override;
  void publish(const std::string& client_id, const mqttsn::upstream_publish& p) override;
  void subscribe(const std::string& client_id, const mqttsn::upstream_subscribe& s) override;
  void unsubscribe(const std::string& client_id, const mqttsn::upstream_unsubscribe& u) override;
  void disconnect(const std::string& client_id) override;
  void set_offer(offer_handler offer) override { offer_ = std::move(offer); }
  void resume(const std::string& client_id) override;

  const paho_stats& stats() const noexcept { return stats_; }
  std::string counters() const override { return to_counters(stats_); }
  const paho_settings& settings() const noexcept { return settings_; }
  bool connected(const std::string& client_id) const;
  // Connections this object holds (per-client ones and the gateway-level one).
  std::size_t connections() const noexcept { return links_.size(); }
  // Of the gateway-level connection: requests with a ref (or QoS 1/2 without one) not answered
  // yet; broker QoS 2 ids awaiting PUBREL.
  std::size_t in_flight() const noexcept;
  std::size_t inbound_qos2() const noexcept;
  // Broker messages held for a client, unacknowledged (flow control).
  std::size_t held(const std::string& client_id) const;

 private:
  struct request {
    enum class kind : std::uint8_t { publish, subscribe, unsubscribe } what = kind::publish;
    enum class stage : std::uint8_t {
      unsent,
      sent,
      released
    } at = stage::unsent;   // released: PUBREC seen
    std::uint32_t ref = 0;  // 0: nobody is told of the answer
    std::string topic;      // topic name, or the filter
    mqttsn::bytes payload;
    std::uint8_t q = 0;
    bool retain = false;
    std::uint16_t packet_id = 0;  // 0: none yet
  };
  struct anchor {
    native_upstream* self;
  };
  // A broker QoS 1/2 message held for a client whose queue is full: not acknowledged yet.
  struct held_message {
    mqttsn::mqtt311::publish_packet packet;
    bool ack = true;  // false once the broker's session it came from is gone
  };
  // One broker connection and what is in flight on it. Held by shared_ptr in links_; timers and
  // posted handlers hold a weak_ptr, so a link that was dropped is never touched again.
  struct link final : mqtt_connection::listener, std::enable_shared_from_this<link> {
    link(native_upstream& o, std::string id, bool gw);
    void on_open(bool session_present) override;
    void on_refused(std::uint8_t code) override;
    void on_packet(mqttsn::mqtt311::packet&& p) override;
    void on_closed(const std::string& reason, bool was_open, const std::string& tls_verify,
                   bool host_limit) override;
    bool up() const noexcept { return conn && conn->open_now(); }

    native_upstream& owner;
    std::string client_id;  // "" for the gateway-level connection
    bool gateway_level;
    mqttsn::upstream_connect params;  // per-client connections
    std::shared_ptr<mqtt_connection> conn;
    boost::asio::steady_timer retry_timer;
    std::chrono::milliseconds backoff;
    bool established = false;                   // connected at least once
    bool after_replace = false;                 // waits for the previous connection's DISCONNECT
    std::map<std::uint64_t, request> requests;  // by arrival
    std::uint64_t next_request = 1;
    std::unordered_map<std::uint16_t, std::uint64_t> by_packet_id;
    std::deque<std::uint64_t> waiting;  // connected, but no packet id was free
    std::uint16_t last_packet_id = 0;
    std::unordered_set<std::uint16_t> inbound_qos2;  // broker QoS 2 ids delivered, no PUBREL yet
    std::deque<held_message> held;                   // flow control: oldest first
    bool overflow_reported = false;                  // max_held hit: logged once per link
  };

  void on_open(link& l, bool session_present);
  void on_refused(const std::shared_ptr<link>& l, std::uint8_t code);
  void on_packet(link& l, mqttsn::mqtt311::packet&& p);
  void on_closed(link& l, const std::string& reason, bool was_open, const std::string& tls_verify,
                 bool host_limit);

  link* find(const std::string& client_id) const;
  void attempt(link& l);
  void schedule_retry(link& l);
  void schedule_after(link& l, std::chrono::milliseconds delay);
  std::uint64_t add_request(link& l, request r);
  static bool assign_packet_id(link& l, std::uint64_t id, request& r);
  void write(link& l, request& r, bool dup);
  void send_waiting(link& l);
  void resend_after_reconnect(link& l, bool session_present);
  void publish_status(link& l, const char* text);
  void answer(link& l, std::uint16_t packet_id, request::kind what,
              std::optional<std::uint8_t> granted);
  void on_publish(link& l, mqttsn::mqtt311::publish_packet&& p);
  void deliver(link& l, mqttsn::mqtt311::publish_packet&& p, bool ack);
  bool withholds(const link& l) const noexcept;
  void hold(link& l, mqttsn::mqtt311::publish_packet&& p);
  void offer_held(const std::shared_ptr<link>& l);
  void close_link(link& l, std::function<void()> on_done = {});
  void emit(const std::string& client_id, mqttsn::upstream_event event);
  void post_event(const std::string& client_id, mqttsn::upstream_event event);

  boost::asio::io_context& io_;
  paho_settings settings_;
  broker_address address_;
  std::shared_ptr<tls_client> tls_;  // ssl:// only: loads the extension module
  event_handler on_event_;
  offer_handler offer_;
  std::map<std::string, std::shared_ptr<link>, std::less<>> links_;  // "": the gateway-level one
  std::vector<std::weak_ptr<mqtt_connection>> closing_;              // DISCONNECTs being written
  bool started_ = false;
  bool host_limit_reported_ = false;  // logged once until a connection opens again
  bool stopped_ = false;
  std::uint16_t offline_packet_id_ = 0;  // stop(): the "offline" publish
  bool offline_acked_ = false;
  broker_status broker_;
  std::mt19937 rng_;
  paho_stats stats_;
  std::shared_ptr<anchor> anchor_;  // posted handlers hold a weak_ptr to it
};

}  // namespace gateway
