// All sessions of one gateway, keyed by client id, with the transport address as an index: decodes
// frames, routes them to the right session (rebinding a client that moved to a new address),
// answers what needs no session (SEARCHGW, QoS -1, unknown senders, full table) and keeps one
// index of session deadlines so the runtime arms a single timer. Pure; no I/O, no clock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "mqttsn/admission.hpp"
#include "mqttsn/counters.hpp"
#include "mqttsn/session.hpp"
#include "mqttsn/topics.hpp"

namespace mqttsn {

// A transport address, opaque to the core (the transport builds it: UDP ip:port, XBee 64-bit
// address...). Equal strings are the same peer.
using endpoint = std::string;

struct table_config {
  std::size_t max_clients = 1000;
  std::uint8_t gateway_id = 1;
};

struct routed_action {
  std::string client_id;  // the session the action belongs to; empty for the gateway itself
  endpoint to;            // where a send_frame goes (the sender, or the session's current address)
  action act;
};

class session_table {
 public:
  session_table(table_config config, session_config session_defaults, const predefined_topics& predefined,
                counters& stats);
  session_table(const session_table&) = delete;
  session_table& operator=(const session_table&) = delete;

  // One frame from `from`; malformed frames are counted (by decode_error) and dropped.
  void handle_frame(const endpoint& from, std::span<const std::uint8_t> frame, time_point now,
                    std::vector<routed_action>& out);
  // A broker event for a client's session (ignored when the session is gone).
  void handle_upstream(std::string_view client_id, const upstream_event& e, time_point now,
                       std::vector<routed_action>& out);
  void tick(time_point now, std::vector<routed_action>& out);
  // Flow control: session::offer() of the client's session; true when there is none (nothing
  // withholds: the message is dropped as any event for a session that is gone).
  bool offer(std::string_view client_id, qos q) noexcept;
  std::optional<time_point> next_deadline() const noexcept;

  // Admit clients by the clients file's rules (nullptr, the default: every client from anywhere).
  // Must outlive the table. A CONNECT refused by it is answered CONNACK "not supported"; a
  // PINGREQ(client id) from an address the rule does not allow is dropped; QoS -1 is accepted only
  // from an address a rule is bound to. Each is counted, and reported once per client id (or
  // address), for at most max_refusals_reported of them.
  void set_admission(const admission* rules) noexcept { admission_ = rules; }
  static constexpr std::size_t max_refusals_reported = 1024;

  // Persistence. restore(): a session from a snapshot at `ep` (as after a CONNECT from there);
  // false when the table is full, the clients file refuses it, the id exists or the snapshot is
  // inconsistent. take_changed(): the client ids whose sessions changed (or ended) since the last
  // call, for the store to write or delete. Only recorded after track_changes(true), which a
  // gateway with a store calls: without one nobody drains the set, and it would keep every client
  // id ever seen.
  bool restore(const session_snapshot& s, const endpoint& ep, time_point now, std::vector<routed_action>& out);
  std::vector<std::string> take_changed();
  void mark_changed(const std::string& client_id) { changed_.insert(client_id); }
  void track_changes(bool on) noexcept { track_changes_ = on; }

  const session* find(std::string_view client_id) const noexcept;
  const session* find_by_endpoint(const endpoint& ep) const noexcept;
  const endpoint* endpoint_of(std::string_view client_id) const noexcept;
  std::size_t size() const noexcept { return by_client_.size(); }

 private:
  struct entry {
    entry(std::string id, const session_config& c, const predefined_topics& p, counters& s)
        : sess(std::move(id), c, p, s) {}
    session sess;
    endpoint ep;
    std::optional<time_point> deadline;
  };
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };

  entry* lookup_client(std::string_view client_id) const noexcept;
  entry* lookup_endpoint(const endpoint& ep) const noexcept;
  void bind(entry& e, const endpoint& ep);
  void route(entry& e, actions& local, std::vector<routed_action>& out);
  void reply(const endpoint& to, const message& m, std::vector<routed_action>& out);
  void on_qos_minus_one(const endpoint& from, const publish& p, std::vector<routed_action>& out);
  void refuse(const endpoint& from, const std::string& client_id, std::string why, bool answer,
              std::vector<routed_action>& out);

  table_config config_;
  session_config session_config_;
  const predefined_topics& predefined_;
  counters& stats_;
  std::unordered_map<std::string, std::unique_ptr<entry>, string_hash, std::equal_to<>> by_client_;
  std::unordered_map<endpoint, entry*, string_hash, std::equal_to<>> by_endpoint_;
  std::set<std::pair<time_point, entry*>> deadlines_;
  const admission* admission_ = nullptr;
  std::set<std::string, std::less<>> changed_;
  std::set<std::string, std::less<>> refusals_reported_;
  actions scratch_;
  bool track_changes_ = false;
  bool clients_full_reported_ = false;  // the max_clients bound is logged once per time it is reached
};

}  // namespace mqttsn
