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
//     the matching filters).
//   - Retained copies (RETAIN=1: MQTT 3.1.1 sends them only in answer to a SUBSCRIBE, §3.3.1.3)
//     are attributed to the SUBSCRIBE they answer. Every SUBSCRIBE sent (subscribe(), restore())
//     is a record: its filter, its clients (the subscriber; all holders for a restore), the topics
//     it was already given. subscribed() tells the table the broker's SUBACK arrived (SUBACKs come
//     in the order the SUBSCRIBEs were sent). Mosquitto sends a SUBSCRIBE's SUBACK first, then its
//     retained copies; the copies beyond its in-flight window (QoS 1/2, 20 by default) only as
//     earlier ones are acknowledged, i.e. possibly after the SUBACKs of later SUBSCRIBEs, but in
//     order (docs/protocol-core.md, "Retained messages in aggregating mode"). So a copy on topic T
//     goes to the most recently answered record whose filter matches T and that was not given T
//     yet (none answered: the oldest unanswered one, for brokers that send before the SUBACK);
//     it reaches those of the record's clients that still hold a matching filter, at their QoS.
//     A record gives each topic once: one client never gets two copies of one retained message
//     from one SUBSCRIBE; a new subscriber is never deprived by an older SUBSCRIBE still in
//     flight; an older holder that did not SUBSCRIBE again gets nothing.
//     Most recently answered first, not oldest first: an older SUBSCRIBE may have found no
//     message on T (published later: its holders got it live), and its empty slot must not take
//     a newer subscriber's copy; a copy deferred past a later SUBACK then fills the later record
//     and that record's own copy the older one (one copy each).
//   - A record is closed when the broker can send it no more copies: refused; granted QoS 0 and a
//     later SUBACK arrived (Mosquitto never defers QoS 0 copies); restore(). A QoS 1/2 record
//     stays open (its copies may be deferred); a bound closes the oldest when more than
//     filter_count() + 4096 are open.
//   - hold(): a holder the broker already knows of (restored at startup): no SUBSCRIBE, no record.
//   - restore(): every filter at its holders' maximum QoS, for a broker that lost the session;
//     one record per filter with all its holders (each would have re-subscribed on its own).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <list>
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

  // The broker answered the oldest SUBSCRIBE of `filter` not answered yet: `granted` QoS, nullopt
  // when it refused. Call it for every SUBACK of a SUBSCRIBE that subscribe() or restore() asked
  // for, in arrival order, also for requests whose client left.
  void subscribed(std::string_view filter, std::optional<qos> granted);

  // Who gets a message from the broker, sorted by client id. A retained copy is attributed to the
  // SUBSCRIBE it answers (see the rules above), hence not const.
  std::vector<delivery> route(std::string_view topic, qos q, bool retain);

  // Every filter with its holders' highest QoS (sorted by filter), to SUBSCRIBE again after the
  // broker lost the session. Closes every record (the broker lost what it had queued for them) and
  // opens one per filter with all its holders, in the order of the list.
  std::vector<filter_qos> restore();

  bool holds(std::string_view client) const;
  std::vector<std::string> filters_of(std::string_view client) const;
  std::optional<qos> granted(std::string_view client, std::string_view filter) const;
  // The QoS the filter was last SUBSCRIBEd with upstream; nullopt when nobody holds it.
  std::optional<qos> upstream_qos(std::string_view filter) const;
  std::size_t filter_count() const noexcept { return filters_.size(); }
  std::size_t client_count() const noexcept { return by_client_.size(); }
  // SUBSCRIBEs that may still be answered with retained copies (records not closed).
  std::size_t open_subscribes() const noexcept { return records_.size(); }

 private:
  struct entry {
    std::map<std::string, qos, std::less<>> holders;
    // Holders per granted QoS level (0..2): the highest QoS is read here, not by walking every
    // holder (a filter thousands of sensors share made each subscribe and restore O(holders)).
    std::array<std::size_t, 3> at_level{};
    qos upstream = qos::at_most_once;
  };
  // One SUBSCRIBE sent upstream that may still be answered with retained copies.
  struct record {
    std::string filter;
    std::set<std::string, std::less<>> clients;  // who its copies are for
    std::set<std::string, std::less<>> given;    // topics it was given a copy of
    std::uint64_t answered = 0;                  // SUBACK arrival order; 0: not answered yet
    qos granted = qos::at_most_once;
  };
  static qos highest(const entry& e);
  static void drop_holder(entry& e, std::map<std::string, qos, std::less<>>::iterator h);
  entry& add_holder(std::string_view client, std::string_view filter, qos q);
  void erase(std::map<std::string, entry, std::less<>>::iterator it);
  void add_record(std::string_view filter, std::set<std::string, std::less<>> clients);
  void forget_in_records(std::string_view client, std::string_view filter);
  std::vector<delivery> route_retained(std::string_view topic, qos q);

  std::map<std::string, entry, std::less<>> filters_;
  std::set<std::string, std::less<>> wildcards_;  // the filters with '+' or '#': matched one by one
  std::map<std::string, std::set<std::string, std::less<>>, std::less<>> by_client_;
  static constexpr std::size_t max_extra_records = 4096;
  std::list<record> records_;  // in the order the SUBSCRIBEs were sent
  std::uint64_t last_answer_ = 0;
};

}  // namespace mqttsn
