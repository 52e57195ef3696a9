// One MQTT-SN client's session, as a pure state machine: decoded client messages, broker events
// and the current time go in; frames for the client and intents for the broker come out.
// Owns the client's topic ids, subscriptions, will, queues and timers. Never reads a clock, never
// does I/O, and does not know whether the gateway runs in transparent or aggregating mode.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "mqttsn/admission.hpp"
#include "mqttsn/counters.hpp"
#include "mqttsn/flat_map.hpp"
#include "mqttsn/message.hpp"
#include "mqttsn/topics.hpp"

namespace mqttsn {

using clock = std::chrono::steady_clock;
using time_point = clock::time_point;

struct session_config {
  double keep_alive_grace = 1.5;                        // lost after grace x keep-alive (or sleep) of silence
  std::chrono::milliseconds retry_interval{10'000};     // T_retry
  unsigned retry_count = 3;                             // N_retry: retransmissions after the first send
  std::chrono::milliseconds connect_timeout{5'000};     // broker must accept the session within this
  std::size_t max_topics = 256;                         // normal topic ids per client
  std::size_t max_subscriptions = 64;                   // per client
  std::size_t max_queued = 100;                         // messages waiting for a client (the sleep buffer)
  std::size_t max_inflight_upstream = 16;               // client QoS 1/2 PUBLISHes awaiting the broker
  std::size_t max_frame_size = max_frame_size_default;  // larger frames are never sent to the client
  // A kept session (clean session false) with no connection whose client has not been heard for
  // this long is discarded (0: never, like an MQTT 3.1.1 broker's persistent session).
  std::chrono::seconds session_expiry{0};

  static constexpr std::size_t max_frame_size_default = 65535;
};

struct will_message {
  std::string topic;
  bytes payload;
  qos q = qos::at_most_once;
  bool retain = false;
  bool operator==(const will_message&) const = default;
};

// ---- inputs from the broker side (posted by the upstream implementation) ----

// The broker accepted the session (after upstream_connect, or after an automatic reconnect).
struct upstream_connected {
  bool session_present = false;
};
// The broker refused the CONNECT (bad credentials, not authorized, identifier rejected...).
struct upstream_refused {
  std::string reason;
};
// The connection to the broker broke; the upstream reconnects on its own and reports
// upstream_connected again.
struct upstream_lost {};
// The broker acknowledged upstream_publish `ref` (PUBACK for QoS 1, PUBCOMP for QoS 2).
struct upstream_published {
  std::uint32_t ref = 0;
};
// The broker answered upstream_subscribe `ref`; no granted QoS means the broker refused (0x80).
struct upstream_subscribed {
  std::uint32_t ref = 0;
  std::optional<qos> granted;
};
struct upstream_unsubscribed {
  std::uint32_t ref = 0;
};
// A message for this client; `q` is the QoS to deliver it at (already min(message, granted)).
struct upstream_message {
  std::string topic;
  bytes payload;
  qos q = qos::at_most_once;
  bool retain = false;
};

using upstream_event = std::variant<upstream_connected, upstream_refused, upstream_lost, upstream_published,
                                    upstream_subscribed, upstream_unsubscribed, upstream_message>;

// ---- actions for the runtime to execute ----

// Send this frame to the client at its current address.
struct send_frame {
  bytes frame;
  bool operator==(const send_frame&) const = default;
};
// Open (or re-open) the client's broker session. In transparent mode a real MQTT CONNECT with the
// client's id; in aggregating mode the runtime attaches the client to its shared connection.
// The runtime answers with upstream_connected or upstream_refused.
struct upstream_connect {
  bool clean_session = true;
  std::uint16_t keep_alive = 0;
  std::optional<will_message> will;
  bool operator==(const upstream_connect&) const = default;
};
// Publish to the broker. ref 0: no acknowledgement expected (QoS 0, or a will the gateway publishes
// for a lost client, at the will's QoS). Otherwise the runtime answers with upstream_published{ref}
// once the broker has acknowledged it.
struct upstream_publish {
  std::uint32_t ref = 0;
  std::string topic;
  bytes payload;
  qos q = qos::at_most_once;
  bool retain = false;
  bool operator==(const upstream_publish&) const = default;
};
struct upstream_subscribe {
  std::uint32_t ref = 0;
  std::string filter;
  qos q = qos::at_most_once;
  bool operator==(const upstream_subscribe&) const = default;
};
struct upstream_unsubscribe {
  std::uint32_t ref = 0;
  std::string filter;
  bool operator==(const upstream_unsubscribe&) const = default;
};
// Close the client's broker session cleanly (the broker discards the will it holds).
struct upstream_disconnect {
  bool operator==(const upstream_disconnect&) const = default;
};
// Flow control toward the broker: the session refused an offer() and can take QoS 1/2 messages
// again (a delivery was acknowledged, the queue shrank, or it no longer withholds: asleep, gone).
// The runtime offers the messages it held again, and acknowledges each to the broker as it is
// taken. Emitted once per refusal streak.
struct upstream_resume {
  bool operator==(const upstream_resume&) const = default;
};

// Something an operator wants to read in the log, once, with the client id.
enum class event : std::uint8_t {
  connected,
  connect_refused,         // detail: the broker's reason
  connect_timeout,         // broker did not accept within connect_timeout: CONNACK congestion
  will_handshake_failed,   // WILLTOPIC/WILLMSG never came, or an invalid will topic
  disconnected,
  asleep,
  awake,
  lost,                    // detail: "keep-alive", "sleep expired" or "retries exhausted"
  will_published,
  session_ended,           // clean session over, or a kept one expired: the runtime forgets it
  session_expired,         // a kept session unheard of for session_expiry: discarded
  resubscribe_failed,      // broker refused a restored subscription: DISCONNECT sent
  first_drop,              // first message dropped for this client (detail: why); later ones only counted
  congestion,              // a bound was hit (detail: which); once per bound and client, every hit counted
  admission_refused,       // the clients file refused it (detail: why); reported once per client
};

struct report {
  event what = event::connected;
  std::string detail;
  bool operator==(const report&) const = default;
};

using action = std::variant<send_frame, upstream_connect, upstream_publish, upstream_subscribe,
                            upstream_unsubscribe, upstream_disconnect, upstream_resume, report>;
using actions = std::vector<action>;

enum class session_state : std::uint8_t {
  disconnected,  // no connection (new, after DISCONNECT, or after a refused connect)
  connecting,    // CONNECT received: will handshake and/or waiting for the broker
  active,
  asleep,
  awake,         // woke with PINGREQ(client id): delivering what was buffered
  lost,          // keep-alive, sleep or retries expired; will published
};

const char* to_string(session_state s) noexcept;

// What a session keeps across a gateway restart: written by the persistent store, given back to
// restore(). An active or asleep session has one (an awake one is saved as asleep), and so has a
// kept session (clean session false) with no connection: its broker messages are still buffered.
struct session_snapshot {
  struct subscription {
    std::string filter;
    qos q = qos::at_most_once;
    topic_id_type type = topic_id_type::normal;
    topic_id id = 0;
    bool operator==(const subscription&) const = default;
  };
  struct message {
    std::string topic;
    bytes payload;
    qos q = qos::at_most_once;
    bool retain = false;
    // The msg id the client was sent it with, PUBLISH not yet acknowledged (the front only);
    // 0: not sent. Sent again with DUP and this id, so the client can tell it is not new.
    msg_id mid = 0;
    bool operator==(const message&) const = default;
  };
  std::string client_id;
  bool asleep = false;
  // A kept session with no connection: session_state::disconnected (after a DISCONNECT) or
  // session_state::lost. Restored in that state, without a broker connection; nullopt: connected
  // (active, or asleep as `asleep` says).
  std::optional<session_state> offline;
  bool clean_session = true;
  std::uint16_t keep_alive = 0;
  std::uint16_t sleep_duration = 0;
  std::optional<will_message> will;
  std::vector<topic_table::saved> topics;
  topic_id next_topic_id = 1;
  std::vector<subscription> subscriptions;
  std::vector<message> queue;       // oldest first; the front may be mid-delivery
  std::optional<msg_id> releasing;  // the front's QoS 2 delivery: PUBREL sent, PUBCOMP awaited
  std::vector<msg_id> qos2_received;  // client QoS 2 ids answered PUBREC, awaiting PUBREL
  msg_id last_mid = 0;
};

class session {
 public:
  session(std::string client_id, const session_config& config, const predefined_topics& predefined,
          counters& stats);

  // A decoded message from the client.
  void handle(const message& m, time_point now, actions& out);
  // An event from the broker side.
  void handle(const upstream_event& e, time_point now, actions& out);
  // Timers: call at (or after) next_deadline().
  void tick(time_point now, actions& out);
  // When tick() next has something to do; nullopt while nothing is timed.
  std::optional<time_point> next_deadline() const noexcept;

  actions handle(const message& m, time_point now) { return collect([&](actions& o) { handle(m, now, o); }); }
  actions handle(const upstream_event& e, time_point now) {
    return collect([&](actions& o) { handle(e, now, o); });
  }
  actions tick(time_point now) { return collect([&](actions& o) { tick(now, o); }); }

  // Flow control toward the broker (docs/flow-control.md). Before the runtime acknowledges a
  // broker QoS 1/2 message for this client (PUBACK/PUBREC), it offers it: true: take it now
  // (handle(upstream_message)), there is room for it without dropping a QoS 1/2 message, or the
  // session does not withhold (QoS 0, asleep, offline: the drop policy of the queue bounds it).
  // False: the queue of a connected client (connecting, active, awake) is full of QoS 1/2
  // messages; the runtime holds the message and its acknowledgement, and upstream_resume
  // follows once there is room. Asking changes nothing but that promise.
  bool offer(qos q) noexcept;

  // For the persistent store: nullopt unless active, asleep or awake (awake is saved as asleep),
  // or disconnected/lost with a kept session (clean session false).
  std::optional<session_snapshot> snapshot() const;
  // A fresh session takes a snapshot's state (active or asleep, supervised from `now`) and asks
  // the broker for its session again (upstream_connect); an offline one (disconnected or lost)
  // asks nothing: it waits, buffering, for the client's next CONNECT. False (session unchanged)
  // when the snapshot is inconsistent (its topics, or more queued than max_queued, or an offline
  // clean session).
  bool restore(const session_snapshot& s, time_point now, actions& out);

  // The clients-file rule of this client (topic permissions; its predefined topics are the ones
  // given to the constructor). nullptr (the default): everything allowed. Must outlive the session.
  void set_rule(const client_rule* rule) noexcept { rule_ = rule; }

  const std::string& client_id() const noexcept { return client_id_; }
  session_state state() const noexcept { return state_; }
  bool clean_session() const noexcept { return clean_session_; }
  // True once a clean session is over: nothing in it is worth keeping.
  bool ended() const noexcept { return ended_; }
  std::optional<will_message> will() const { return will_ ? std::optional<will_message>(*will_) : std::nullopt; }
  std::size_t queued() const noexcept { return queue_.size(); }
  std::size_t subscriptions() const noexcept { return subscriptions_.size(); }
  const topic_table& topics() const noexcept { return topics_; }

 private:
  template <typename F>
  static actions collect(F&& f) {
    actions out;
    f(out);
    return out;
  }

  struct subscription {
    std::string filter;
    qos q = qos::at_most_once;
    topic_id_type type = topic_id_type::normal;
    topic_id id = 0;  // predefined id, short name, or normal id (0 for wildcard filters)
  };

  // A client request forwarded to the broker and not yet answered.
  struct pending_op {
    enum class kind : std::uint8_t { publish, subscribe, unsubscribe, resubscribe } what = kind::publish;
    bool sent = false;  // emitted on the current broker connection
    msg_id mid = 0;
    topic_id id = 0;
    topic_id_type type = topic_id_type::normal;
    qos q = qos::at_most_once;
    bool retain = false;
    std::string topic;
    bytes payload;
  };

  // A message waiting for, or being delivered to, the client.
  struct queued_message {
    std::string topic;
    bytes payload;
    qos q = qos::at_most_once;
    bool retain = false;
    unsigned rejections = 0;  // PUBACK "invalid topic id" answers so far
    // QoS 1/2: the msg id of its last PUBLISH while unacknowledged (0: none). A resend after a
    // reconnect or a restore keeps it, with DUP: a client holding the id of a QoS 2 message it
    // answered PUBREC for must not take it for a new one (MQTT 3.1.1 §4.3.3, §4.4).
    msg_id mid = 0;
  };

  // The front of queue_ while its delivery handshake runs.
  struct inflight {
    enum class stage : std::uint8_t { registering, publishing, releasing } step = stage::publishing;
    msg_id mid = 0;
    topic_id id = 0;
    topic_id_type type = topic_id_type::normal;
    unsigned retries = 0;
    time_point deadline{};
    bytes frame;  // what to resend
  };

  enum class connect_phase : std::uint8_t { will_topic, will_msg, broker };

  void dispatch(const message& m, time_point now, actions& out);
  void on_tick(time_point now, actions& out);
  void after_input(time_point now, actions& out);

  // client messages
  void on_connect(const connect& m, time_point now, actions& out);
  void on_willtopic(const willtopic& m, time_point now, actions& out);
  void on_willmsg(const willmsg& m, time_point now, actions& out);
  void on_register(const register_& m, actions& out);
  void on_regack(const regack& m, time_point now, actions& out);
  void on_publish(const publish& m, actions& out);
  void on_puback(const puback& m, time_point now, actions& out);
  void on_pubrec(const pubrec& m, time_point now, actions& out);
  void on_pubrel(const pubrel& m, actions& out);
  void on_pubcomp(const pubcomp& m, time_point now, actions& out);
  void on_subscribe(const subscribe& m, actions& out);
  void on_unsubscribe(const unsubscribe& m, actions& out);
  void on_pingreq(const pingreq& m, time_point now, actions& out);
  void on_disconnect(const disconnect& m, time_point now, actions& out);
  void on_willtopicupd(const willtopicupd& m, actions& out);
  void on_willmsgupd(const willmsgupd& m, actions& out);

  // broker events
  void on_connected(const upstream_connected& e, time_point now, actions& out);
  void on_refused(const upstream_refused& e, actions& out);
  void on_published(const upstream_published& e, actions& out);
  void on_subscribed(const upstream_subscribed& e, time_point now, actions& out);
  void on_unsubscribed(const upstream_unsubscribed& e, time_point now, actions& out);
  void on_message(const upstream_message& e, time_point now, actions& out);

  // helpers
  void send(const message& m, actions& out);
  void start_upstream_connect(time_point now, actions& out);
  void emit_op(std::uint32_t ref, pending_op& op, actions& out);
  std::uint32_t add_op(pending_op op, actions& out);
  std::size_t inflight_publishes() const noexcept;
  bool subscribed_to(const std::string& filter) const noexcept;
  std::optional<std::string> resolve_topic(topic_id_type type, topic_id id) const;
  void enqueue(upstream_message&& e, actions& out);
  void pump(time_point now, actions& out);
  void finish_front(time_point now, actions& out);
  void drop_front(const char* why, actions& out);
  void arm(inflight& f, time_point now) const;
  void resume_inflight(time_point now, actions& out);
  void go_asleep(std::uint16_t duration, time_point now, actions& out);
  void become_lost(const char* why, time_point now, actions& out);
  void end_connection(actions& out);
  void end_if_clean(actions& out);
  std::optional<time_point> expiry_deadline() const noexcept;
  void expire(actions& out);
  void expire_if_due(time_point now, actions& out);
  void clear_session_state();
  void note_drop(const char* why, actions& out);
  void note_congestion(const char* what, actions& out);
  bool withholds() const noexcept;
  bool has_room() const noexcept;
  void resume_if_room(actions& out);
  msg_id next_mid() noexcept;
  time_point supervision_deadline(std::uint16_t seconds) const;

  std::string client_id_;
  const session_config& config_;
  const predefined_topics& predefined_;
  counters& stats_;
  const client_rule* rule_ = nullptr;

  session_state state_ = session_state::disconnected;
  connect_phase phase_ = connect_phase::broker;
  bool clean_session_ = true;
  bool ended_ = false;
  bool will_requested_ = false;
  bool upstream_up_ = false;
  bool drop_reported_ = false;
  bool refused_offer_ = false;  // offer() said no: upstream_resume owed once there is room
  std::vector<std::string> congestion_reported_;  // bounds already logged for this client
  std::uint16_t keep_alive_ = 0;
  std::uint16_t sleep_duration_ = 0;
  time_point last_heard_{};
  time_point phase_deadline_{};  // will handshake retry or broker connect timeout
  unsigned phase_retries_ = 0;

  // Boxed: most sessions have no will (RSS per idle client).
  std::unique_ptr<will_message> will_;
  // Will topic received, waiting for WILLMSG; boxed: only a session in its will handshake has one.
  std::unique_ptr<will_message> pending_will_;

  topic_table topics_;
  std::vector<subscription> subscriptions_;
  flat_map<std::uint32_t, pending_op> pending_;  // by ref, in emission order
  std::uint32_t next_ref_ = 1;
  flat_map<msg_id, bool> qos2_received_;  // client QoS 2 ids awaiting PUBREL; true once PUBREC sent

  // A list, not a deque: an empty std::deque already holds a ~600-byte block, and most sessions
  // never queue anything (RSS per idle client).
  std::list<queued_message> queue_;
  std::optional<inflight> inflight_;
  std::size_t awake_quota_ = 0;  // buffered messages still to deliver in this awake cycle
  msg_id last_mid_ = 0;
};

}  // namespace mqttsn
