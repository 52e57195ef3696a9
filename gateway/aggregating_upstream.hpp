// The broker side of aggregating mode: every MQTT-SN client shares ONE MQTT connection, the
// gateway-level connection of a native_upstream (the gateway's own MQTT client, the default) or of
// a paho_upstream (paho_settings::client, --upstream-client) (client id paho_settings::gateway_client_id, i.e.
// --upstream-client-id; clean session false; will "offline" and retained "online" on the status
// topic). The subscription fan-out table (mqttsn::fanout) decides what is SUBSCRIBEd upstream and
// which clients get each message. The session core does not know which mode runs: this class
// keeps the contract of docs/protocol-core.md ("Contract with the runtime") per client.
//
// Per client
//   - connect(): once the shared connection is up, upstream_connected{session_present = !clean &&
//     the table still holds that client's subscriptions}; while it is down, nothing (answered
//     when it comes back, unless the session gave up and called disconnect() first). A clean
//     session drops the client's subscriptions first (filters nobody else holds are UNSUBSCRIBEd).
//   - publish(): on the shared connection; a ref is mapped to a shared ref and the broker's
//     PUBACK/PUBCOMP goes back as upstream_published{ref} to that client. Ref 0 (QoS 0, wills,
//     QoS -1): fire and forget.
//   - subscribe(): through the table (one upstream subscription per filter, at the highest QoS
//     asked; a new subscriber re-SUBSCRIBEs so it gets the retained messages, which the SUBACK
//     attributes to that SUBSCRIBE: fanout::subscribed()); answered
//     upstream_subscribed{ref, min(requested, granted upstream)} or nullopt when the broker refuses.
//   - unsubscribe(): UNSUBSCRIBE upstream when the client was the filter's last holder (answered
//     after the broker's UNSUBACK), otherwise answered at once (posted).
//   - disconnect(): forgets the client's requests in flight (their answers are dropped); a clean
//     session's subscriptions go, a kept one's stay (its session keeps receiving while offline).
//   - forget(): a kept session expired offline: its subscriptions go (UNSUBSCRIBE upstream where
//     it was a filter's last holder).
// The shared connection
//   - lost: upstream_lost to every client that was answered upstream_connected. Requests in
//     flight stay (the shared connection keeps them).
//   - back with the broker's session: the shared connection resends its own requests; every client gets
//     upstream_connected{session_present = true}.
//   - back without it (broker restarted without persistence, session expired): every filter of the
//     table is SUBSCRIBEd again and the requests still unanswered are resent, then every client
//     gets upstream_connected{session_present = true}: its subscriptions were restored here.
//   - The gateway-level events (upstream_connected / upstream_lost) also go to the handler with
//     the empty client id, as in transparent mode.
// Every event reaches the handler on the io_context thread, never from inside an intent call.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "gateway/broker_settings.hpp"
#include "gateway/upstream.hpp"
#include "mqttsn/fanout.hpp"

namespace gateway {

struct aggregating_stats {
  std::uint64_t messages_in = 0;      // broker messages on the shared connection
  std::uint64_t deliveries = 0;       // upstream_message events handed to clients
  std::uint64_t unrouted = 0;         // broker messages no client held a filter for
  std::uint64_t subscribes_sent = 0;  // SUBSCRIBEs for clients (re-SUBSCRIBEs included)
  std::uint64_t unsubscribes_sent = 0;
  std::uint64_t restores = 0;  // shared sessions the broker had lost, restored from the table
};

class aggregating_upstream final : public upstream {
 public:
  // `io` must outlive this object. settings.gateway_clean_session is forced to false;
  // settings.client chooses the MQTT client of the shared connection.
  aggregating_upstream(boost::asio::io_context& io, paho_settings settings);
  ~aggregating_upstream() override;
  aggregating_upstream(const aggregating_upstream&) = delete;
  aggregating_upstream& operator=(const aggregating_upstream&) = delete;

  void start(event_handler on_event) override;
  void stop(std::chrono::milliseconds timeout) override;

  // A restored session's subscriptions go into the table as held (no SUBSCRIBE): its connect()
  // then answers session_present = true. If the broker lost the shared session after all, the
  // whole table is SUBSCRIBEd again as for any lost session.
  void restore_subscriptions(const std::string& client_id,
                             const std::vector<std::pair<std::string, mqttsn::qos>>& filters) override;
  void connect(const std::string& client_id, const mqttsn::upstream_connect& c) override;
  void publish(const std::string& client_id, const mqttsn::upstream_publish& p) override;
  void subscribe(const std::string& client_id, const mqttsn::upstream_subscribe& s) override;
  void unsubscribe(const std::string& client_id, const mqttsn::upstream_unsubscribe& u) override;
  void disconnect(const std::string& client_id) override;
  void forget(const std::string& client_id) override;

  const mqttsn::fanout& table() const noexcept { return table_; }
  // The shared connection's settings (its counters: counters()).
  const paho_settings& shared_settings() const noexcept { return settings_; }
  const aggregating_stats& stats() const noexcept { return stats_; }
  // The shared connection's counters.
  std::string counters() const override { return shared_->counters(); }
  bool up() const noexcept { return up_; }
  // Clients attached (connected or waiting for the shared connection).
  std::size_t clients() const noexcept { return clients_.size(); }

 private:
  struct request {
    enum class kind : std::uint8_t { publish, subscribe, unsubscribe, restore, cleanup } what = kind::publish;
    std::string client;
    std::uint32_t client_ref = 0;
    mqttsn::upstream_publish pub;  // publish: the message (ref = the shared ref)
    std::string filter;            // subscribe/unsubscribe/restore/cleanup
    mqttsn::qos requested = mqttsn::qos::at_most_once;  // subscribe: what the client asked
    mqttsn::qos upstream_q = mqttsn::qos::at_most_once;  // subscribe/restore: sent upstream
    bool forgotten = false;  // the client disconnected: update the table, answer nobody
  };
  struct client_state {
    bool answered = false;  // upstream_connected sent for the current connection
    bool clean = true;
    bool session_present = false;  // what to answer
    std::uint64_t generation = 0;
  };
  struct anchor {
    aggregating_upstream* self;
  };

  std::uint32_t next_ref();
  void send(std::uint32_t ref, const request& r);
  void drop_subscriptions(const std::string& client_id);
  void answer_connect(const std::string& client_id, std::uint64_t generation);
  void on_shared(const std::string& id, mqttsn::upstream_event e);
  void on_shared_connected(bool session_present);
  void on_shared_lost();
  void on_message(mqttsn::upstream_message m);
  void on_published(std::uint32_t ref);
  void on_subscribed(const mqttsn::upstream_subscribed& s);
  void on_unsubscribed(std::uint32_t ref);
  void emit(const std::string& client_id, mqttsn::upstream_event e);
  void post_event(const std::string& client_id, mqttsn::upstream_event e);

  boost::asio::io_context& io_;
  event_handler on_event_;
  paho_settings settings_;
  std::unique_ptr<upstream> shared_;  // native_upstream or paho_upstream
  mqttsn::fanout table_;
  std::map<std::string, client_state> clients_;
  std::map<std::uint32_t, request> requests_;  // by shared ref
  std::uint32_t last_ref_ = 0;
  std::uint64_t next_generation_ = 1;
  bool up_ = false;
  aggregating_stats stats_;
  std::shared_ptr<anchor> anchor_;  // posted handlers hold a weak_ptr to it
};

}  // namespace gateway
