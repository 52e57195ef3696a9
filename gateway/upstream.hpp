// The gateway's side toward the MQTT broker: an interface the gateway drives with the session's
// intents (mqttsn::upstream_connect, upstream_publish, ...) and that answers with
// mqttsn::upstream_event values. Implementations must deliver every event on the gateway's
// io_context thread (post from their own threads); they never call into the core directly.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mqttsn/session.hpp"

namespace gateway {

// The gateway-level connection (QoS -1 publishes, the gateway's status topic) has this client id
// in calls and events; per-client connections use the MQTT-SN client id.
inline constexpr std::string_view gateway_connection{};

class upstream {
 public:
  // Called on the io_context thread with (client id, event). For the gateway-level connection the
  // client id is empty.
  using event_handler = std::function<void(const std::string& client_id, mqttsn::upstream_event event)>;

  virtual ~upstream() = default;

  // Starts the gateway-level connection (retained "online" on the status topic, will "offline")
  // and keeps it up with backoff. Events go to `on_event`.
  virtual void start(event_handler on_event) = 0;
  // Disconnects everything cleanly (the status topic goes "offline" first); waits at most `timeout`.
  virtual void stop(std::chrono::milliseconds timeout) = 0;

  // Before start(): a session restored from the persistent store with a kept broker session
  // (clean session false) holds these subscriptions (filter, QoS). Its upstream_connect follows.
  // Transparent mode has nothing to do (each client's broker session holds its own); aggregating
  // mode puts them in its fan-out table, so what the broker kept for the shared session while the
  // gateway was down is routed as soon as it arrives, with no SUBSCRIBE sent again.
  virtual void restore_subscriptions(const std::string& /*client_id*/,
                                     const std::vector<std::pair<std::string, mqttsn::qos>>& /*filters*/) {}

  // Per-client intents (see docs/protocol-core.md, "Contract with the runtime").
  virtual void connect(const std::string& client_id, const mqttsn::upstream_connect& c) = 0;
  virtual void publish(const std::string& client_id, const mqttsn::upstream_publish& p) = 0;
  virtual void subscribe(const std::string& client_id, const mqttsn::upstream_subscribe& s) = 0;
  virtual void unsubscribe(const std::string& client_id, const mqttsn::upstream_unsubscribe& u) = 0;
  virtual void disconnect(const std::string& client_id) = 0;
  // A kept session expired offline (session-expiry; after its disconnect()): what the upstream
  // still holds for it goes. Aggregating mode unsubscribes the filters it was the last holder of.
  // Transparent mode has nothing left: the client's connection closed when it went offline, and
  // the broker's own session for that client id is the broker's to expire.
  virtual void forget(const std::string& /*client_id*/) {}

  // Flow control toward the broker (docs/flow-control.md). `offer` is asked, on the io_context
  // thread, before a broker QoS 1/2 message for a client is acknowledged to the broker: false:
  // the implementation holds the message and its PUBACK/PUBREC (so the broker's in-flight window
  // keeps the backlog at the broker) and offers it again after resume(client id). Only
  // native_upstream's per-client connections (transparent mode) withhold; the others acknowledge
  // on arrival, as Paho does, and ignore both calls. Set before start().
  using offer_handler = std::function<bool(const std::string& client_id, mqttsn::qos q)>;
  virtual void set_offer(offer_handler /*offer*/) {}
  // The client's session has room again (mqttsn::upstream_resume): offer what is held, in order
  // (posted: events never come from inside this call).
  virtual void resume(const std::string& /*client_id*/) {}

  // The broker side's counters for the gateway's stats line: `key=value` fields separated by
  // spaces (the gateway prefixes each key with "upstream_"); empty when it keeps none.
  virtual std::string counters() const { return {}; }
};

}  // namespace gateway
