// The subscription fan-out table of aggregating mode: many MQTT-SN sessions share one broker
// connection, so each topic filter is subscribed upstream once and the broker's messages are
// handed to every session holding a matching filter. Pure bookkeeping: it says what to SUBSCRIBE /
// UNSUBSCRIBE upstream and who gets a message at which QoS; the runtime does the I/O.
//
// Rules
//   - A filter is SUBSCRIBEd upstream at the highest QoS any of its holders asked for. Every
//     subscribe() answers a SUBSCRIBE to send, also for a filter already subscribed: MQTT 3.1.1
//     sends retained messages only in answer to a SUBSCRIBE, so a new subscriber needs one
//     (DECISIONS.md, "retained messages in aggregating mode"). The upstream QoS never drops while
//     the filter is held (no extra SUBSCRIBE on unsubscribe: it would resend retained messages);
//     the next SUBSCRIBE of the filter (or a restore) uses the holders' maximum again.
//   - A filter is UNSUBSCRIBEd upstream when its last holder leaves.
//   - route(): a message without RETAIN goes to every holder of a matching filter (MQTT 3.1.1 §4.7
//     matching, $-topics included) once, at min(message QoS, the highest QoS the client holds among
//     the matching filters). A message with RETAIN=1 is a retained copy sent because of a
//     SUBSCRIBE: it goes only to the clients of the most recent SUBSCRIBE (subscribe() or
//     restore()) among the matching filters that still hold that filter.
//   - hold(): a holder the broker already knows of (restored at startup): no SUBSCRIBE, not
//     among the clients of the most recent SUBSCRIBE.
//   - restore(): every filter at its holders' maximum QoS, for a broker that lost the session; the
//     retained copies that follow go to all holders (each would have re-subscribed on its own).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "mqttsn/message.hpp"

namespace mqttsn {

class fanout {
 public:
  struct delivery {
    std::string client;
    qos q = qos::at_most_once;
    bool operator==(const delivery&) const = default;
  };
  struct filter_qos {
    std::string filter;
    qos q = qos::at_most_once;
    bool operator==(const filter_qos&) const = default;
  };

  // `client` holds `filter` at `q` (0..2; a client subscribing again replaces its QoS). Returns the
  // QoS to SUBSCRIBE the filter with upstream, now.
  qos subscribe(std::string_view client, std::string_view filter, qos q);
  // `client` holds `filter` at `q` in a broker session that has it already (a session restored
  // from the persistent store while the broker kept the shared session): nothing to SUBSCRIBE,
  // and, no SUBSCRIBE being sent, no retained copies to expect for it.
  void hold(std::string_view client, std::string_view filter, qos q);
  // `client` no longer holds `filter`. True when nobody does any more: UNSUBSCRIBE it upstream.
  // False also when the client did not hold it.
  bool unsubscribe(std::string_view client, std::string_view filter);
  // Drops every subscription of `client`; returns the filters nobody holds any more (sorted), to
  // UNSUBSCRIBE upstream.
  std::vector<std::string> remove_client(std::string_view client);

  // Who gets a message from the broker, sorted by client id.
  std::vector<delivery> route(std::string_view topic, qos q, bool retain) const;

  // Every filter with its holders' highest QoS (sorted by filter), to SUBSCRIBE again after the
  // broker lost the session. Marks each as freshly subscribed by all its holders.
  std::vector<filter_qos> restore();

  bool holds(std::string_view client) const;
  std::vector<std::string> filters_of(std::string_view client) const;
  std::optional<qos> granted(std::string_view client, std::string_view filter) const;
  // The QoS the filter was last SUBSCRIBEd with upstream; nullopt when nobody holds it.
  std::optional<qos> upstream_qos(std::string_view filter) const;
  std::size_t filter_count() const noexcept { return filters_.size(); }
  std::size_t client_count() const noexcept { return by_client_.size(); }

 private:
  struct entry {
    std::map<std::string, qos, std::less<>> holders;
    std::set<std::string, std::less<>> latest;  // clients of the most recent SUBSCRIBE
    std::uint64_t seq = 0;                      // when that SUBSCRIBE was sent
    qos upstream = qos::at_most_once;
  };
  static qos highest(const entry& e);
  entry& add_holder(std::string_view client, std::string_view filter, qos q);
  void erase(std::map<std::string, entry, std::less<>>::iterator it);

  std::map<std::string, entry, std::less<>> filters_;
  std::set<std::string, std::less<>> wildcards_;  // the filters with '+' or '#': matched one by one
  std::map<std::string, std::set<std::string, std::less<>>, std::less<>> by_client_;
  std::uint64_t next_seq_ = 1;
};

}  // namespace mqttsn
