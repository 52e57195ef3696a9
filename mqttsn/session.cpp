#include "mqttsn/session.hpp"

#include <algorithm>
#include <utility>

#include "mqttsn/codec.hpp"
#include "mqttsn/overloaded.hpp"

namespace mqttsn {

namespace {

bool connected_state(session_state s) noexcept {
  return s == session_state::active || s == session_state::asleep || s == session_state::awake;
}

std::chrono::milliseconds scaled_seconds(std::uint16_t seconds, double factor) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(static_cast<double>(seconds) * factor * 1000.0));
}

}  // namespace

const char* to_string(session_state s) noexcept {
  switch (s) {
    case session_state::disconnected: return "disconnected";
    case session_state::connecting: return "connecting";
    case session_state::active: return "active";
    case session_state::asleep: return "asleep";
    case session_state::awake: return "awake";
    case session_state::lost: return "lost";
  }
  return "?";
}

session::session(std::string client_id, const session_config& config, const predefined_topics& predefined,
                 counters& stats)
    : client_id_(std::move(client_id)),
      config_(config),
      predefined_(predefined),
      stats_(stats),
      topics_(config.max_topics) {}

// ---------------------------------------------------------------------------------------------
// dispatch

void session::handle(const message& m, time_point now, actions& out) {
  dispatch(m, now, out);
  after_input(now, out);
}

// What every input may have changed: room for the broker messages refused before, and a kept
// session that went offline already past its expiry.
void session::after_input(time_point now, actions& out) {
  resume_if_room(out);
  expire_if_due(now, out);
}

void session::dispatch(const message& m, time_point now, actions& out) {
  if (std::holds_alternative<connect>(m)) {
    on_connect(std::get<connect>(m), now, out);
    return;
  }
  last_heard_ = now;  // any message is a sign of life (spec §6.11)

  if (state_ == session_state::connecting) {
    if (const auto* t = std::get_if<willtopic>(&m); t && phase_ == connect_phase::will_topic) {
      on_willtopic(*t, now, out);
    } else if (const auto* w = std::get_if<willmsg>(&m); w && phase_ == connect_phase::will_msg) {
      on_willmsg(*w, now, out);
    } else if (std::holds_alternative<disconnect>(m)) {
      on_disconnect(std::get<disconnect>(m), now, out);
    } else {
      ++stats_.unexpected_messages;  // nothing else is valid before CONNACK
    }
    return;
  }

  if (!connected_state(state_)) {
    // Known client id but no connection: tell it to CONNECT again (DECISIONS.md).
    if (!std::holds_alternative<disconnect>(m)) ++stats_.unknown_sender;
    send(disconnect{}, out);
    return;
  }

  std::visit(overloaded{
                 [&](const register_& x) { on_register(x, out); },
                 [&](const regack& x) { on_regack(x, now, out); },
                 [&](const publish& x) { on_publish(x, out); },
                 [&](const puback& x) { on_puback(x, now, out); },
                 [&](const pubrec& x) { on_pubrec(x, now, out); },
                 [&](const pubrel& x) { on_pubrel(x, out); },
                 [&](const pubcomp& x) { on_pubcomp(x, now, out); },
                 [&](const subscribe& x) { on_subscribe(x, out); },
                 [&](const unsubscribe& x) { on_unsubscribe(x, out); },
                 [&](const pingreq& x) { on_pingreq(x, now, out); },
                 [&](const pingresp&) {},  // answer to a gateway ping; last_heard_ already updated
                 [&](const disconnect& x) { on_disconnect(x, now, out); },
                 [&](const willtopicupd& x) { on_willtopicupd(x, out); },
                 [&](const willmsgupd& x) { on_willmsgupd(x, out); },
                 [&](const auto&) { ++stats_.unexpected_messages; },
             },
             m);
}

void session::handle(const upstream_event& e, time_point now, actions& out) {
  std::visit(overloaded{
                 [&](const upstream_connected& x) { on_connected(x, now, out); },
                 [&](const upstream_refused& x) { on_refused(x, out); },
                 [&](const upstream_lost&) { upstream_up_ = false; },
                 [&](const upstream_published& x) { on_published(x, out); },
                 [&](const upstream_subscribed& x) { on_subscribed(x, now, out); },
                 [&](const upstream_unsubscribed& x) { on_unsubscribed(x, now, out); },
                 [&](const upstream_message& x) { on_message(x, now, out); },
             },
             e);
  after_input(now, out);
}

// ---------------------------------------------------------------------------------------------
// connection and will

void session::on_connect(const connect& m, time_point now, actions& out) {
  last_heard_ = now;
  if (state_ == session_state::connecting && phase_ == connect_phase::broker && m.will == will_requested_ &&
      m.clean_session == clean_session_ && m.duration == keep_alive_) {
    return;  // a retransmitted CONNECT while the broker is being asked: keep waiting (DECISIONS.md)
  }
  ended_ = false;
  clean_session_ = m.clean_session;
  keep_alive_ = m.duration;
  will_requested_ = m.will;
  if (m.clean_session) clear_session_state();
  state_ = session_state::connecting;
  phase_retries_ = 0;
  if (m.will) {
    phase_ = connect_phase::will_topic;
    phase_deadline_ = now + config_.retry_interval;
    send(willtopicreq{}, out);
  } else {
    start_upstream_connect(now, out);
  }
}

void session::on_willtopic(const willtopic& m, time_point now, actions& out) {
  if (m.topic.empty()) {  // "no will", and any stored one is deleted (spec §6.3)
    will_.reset();
    start_upstream_connect(now, out);
    return;
  }
  const bool valid = is_valid_topic_name(m.topic);
  if (!valid || !may_publish(rule_, m.topic)) {
    // A will the client may not publish would be a way around its publish permissions.
    state_ = session_state::disconnected;
    ++stats_.connects_rejected;
    if (valid) ++stats_.publishes_denied;
    send(connack{return_code::not_supported}, out);
    out.emplace_back(report{event::will_handshake_failed,
                            valid ? "will topic '" + m.topic + "' not allowed by the clients file"
                                  : std::string("invalid will topic")});
    end_if_clean(out);
    return;
  }
  pending_will_ = std::make_unique<will_message>(will_message{m.topic, {}, m.will_qos, m.retain});
  phase_ = connect_phase::will_msg;
  phase_retries_ = 0;
  phase_deadline_ = now + config_.retry_interval;
  send(willmsgreq{}, out);
}

void session::on_willmsg(const willmsg& m, time_point now, actions& out) {
  if (!pending_will_) pending_will_ = std::make_unique<will_message>();
  pending_will_->payload = m.message;
  will_ = std::move(pending_will_);
  start_upstream_connect(now, out);
}

void session::start_upstream_connect(time_point now, actions& out) {
  phase_ = connect_phase::broker;
  phase_deadline_ = now + config_.connect_timeout;
  upstream_up_ = false;
  for (auto& [ref, op] : pending_) op.sent = false;  // a new broker connection has none of them
  out.emplace_back(upstream_connect{clean_session_, keep_alive_, will()});
}

void session::on_connected(const upstream_connected& e, time_point now, actions& out) {
  upstream_up_ = true;
  if (state_ == session_state::connecting && phase_ == connect_phase::broker) {
    state_ = session_state::active;
    last_heard_ = now;
    ++stats_.connects;
    send(connack{return_code::accepted}, out);
    out.emplace_back(report{event::connected, {}});
    // The client may have lost the ids we gave it before: REGISTER again before publishing.
    if (!clean_session_) topics_.forget_client_knowledge();
    // A delivery cut off by the reconnect: a PUBREL is resent as is, anything earlier starts over
    // (the client may not know the topic id any more).
    if (inflight_ && inflight_->step == inflight::stage::releasing) {
      resume_inflight(now, out);
    } else {
      inflight_.reset();
    }
  } else if (!connected_state(state_)) {
    return;  // a late answer for a connection attempt we gave up on
  }
  // Requests the broker has not answered: resend all when its session is gone, else only those
  // never sent on a connection (the upstream keeps resending its own in-flight ones).
  for (auto& [ref, op] : pending_) {
    if (!op.sent || !e.session_present) emit_op(ref, op, out);
  }
  // Broker-side state is gone: restore every subscription from our own record.
  if (!e.session_present) {
    for (const auto& s : subscriptions_) {
      add_op(pending_op{pending_op::kind::resubscribe, false, 0, s.id, s.type, s.q, false, s.filter, {}}, out);
    }
  }
  pump(now, out);
}

void session::on_refused(const upstream_refused& e, actions& out) {
  upstream_up_ = false;
  if (state_ != session_state::connecting || phase_ != connect_phase::broker) return;
  state_ = session_state::disconnected;
  ++stats_.connects_rejected;
  send(connack{return_code::not_supported}, out);
  out.emplace_back(report{event::connect_refused, e.reason});
  end_if_clean(out);
}

void session::on_disconnect(const disconnect& m, time_point now, actions& out) {
  send(disconnect{}, out);  // the gateway's DISCONNECT acknowledges either kind, without duration
  if (m.duration && *m.duration > 0 && connected_state(state_)) {
    go_asleep(*m.duration, now, out);
    return;
  }
  // A normal disconnect: no will (spec §6.12). Duration 0 counts as normal (DECISIONS.md).
  ++stats_.disconnects;
  end_connection(out);
  state_ = session_state::disconnected;
  out.emplace_back(report{event::disconnected, {}});
  end_if_clean(out);
}

void session::go_asleep(std::uint16_t duration, time_point now, actions& out) {
  if (state_ != session_state::asleep) {
    ++stats_.sleeps;
    out.emplace_back(report{event::asleep, std::to_string(duration) + " s"});
  }
  state_ = session_state::asleep;
  sleep_duration_ = duration;
  last_heard_ = now;
  awake_quota_ = 0;
}

void session::become_lost(const char* why, time_point /*now*/, actions& out) {
  state_ = session_state::lost;
  out.emplace_back(report{event::lost, why});
  // The upstream connection is still alive, and an MQTT DISCONNECT would make the broker discard
  // the will: publish it ourselves, then disconnect (ARCHITECTURE.md).
  if (will_) {
    out.emplace_back(upstream_publish{0, will_->topic, will_->payload, will_->q, will_->retain});
    ++stats_.wills_published;
    out.emplace_back(report{event::will_published, will_->topic});
  }
  end_connection(out);
  end_if_clean(out);
}

// A clean session keeps nothing once its connection is over: the runtime may forget it.
void session::end_if_clean(actions& out) {
  if (!clean_session_) return;
  clear_session_state();
  ended_ = true;
  out.emplace_back(report{event::session_ended, {}});
}

// A kept session with no connection, unheard of for session_expiry (0: kept for ever).
std::optional<time_point> session::expiry_deadline() const noexcept {
  if (clean_session_ || ended_ || config_.session_expiry.count() <= 0) return std::nullopt;
  return last_heard_ + config_.session_expiry;
}

// After every input: a kept session that is offline and unheard of for session_expiry goes now.
// Also right where it goes offline, when its client was silent for longer than that already
// (lost after grace x a keep-alive or sleep longer than the expiry): its deadline is never left
// in the past.
void session::expire_if_due(time_point now, actions& out) {
  if (state_ != session_state::disconnected && state_ != session_state::lost) return;
  if (auto e = expiry_deadline(); e && now >= *e) expire(out);
}

// Discards a kept session as if it had been clean: what it buffered is dropped (counted), and the
// runtime forgets it (its subscriptions included: session_ended).
void session::expire(actions& out) {
  ++stats_.sessions_expired;
  out.emplace_back(report{event::session_expired, std::to_string(config_.session_expiry.count()) + " s"});
  clear_session_state();
  ended_ = true;
  out.emplace_back(report{event::session_ended, {}});
}

void session::end_connection(actions& out) {
  out.emplace_back(upstream_disconnect{});
  upstream_up_ = false;
  awake_quota_ = 0;
  // Unanswered broker requests stay (a kept session resends them on its next broker connection;
  // a clean one clears them), and so does the delivery in flight.
  for (auto& [ref, op] : pending_) op.sent = false;
}

void session::clear_session_state() {
  will_.reset();
  topics_.clear();
  subscriptions_.clear();
  pending_.clear();
  qos2_received_.clear();
  if (!queue_.empty()) {
    stats_.dropped_qos0 += static_cast<std::uint64_t>(
        std::count_if(queue_.begin(), queue_.end(), [](const auto& q) { return q.q == qos::at_most_once; }));
    stats_.dropped_qos12 += static_cast<std::uint64_t>(
        std::count_if(queue_.begin(), queue_.end(), [](const auto& q) { return q.q != qos::at_most_once; }));
  }
  queue_.clear();
  inflight_.reset();
  awake_quota_ = 0;
}

void session::on_willtopicupd(const willtopicupd& m, actions& out) {
  if (m.topic.empty()) {
    will_.reset();  // empty WILLTOPICUPD deletes topic and message (spec §6.4)
  } else if (!is_valid_topic_name(m.topic) || !may_publish(rule_, m.topic)) {
    send(willtopicresp{return_code::not_supported}, out);
    return;
  } else if (will_) {
    will_->topic = m.topic;
    will_->q = m.will_qos;
    will_->retain = m.retain;
  } else {
    will_ = std::make_unique<will_message>(will_message{m.topic, {}, m.will_qos, m.retain});
  }
  send(willtopicresp{return_code::accepted}, out);
}

void session::on_willmsgupd(const willmsgupd& m, actions& out) {
  if (!will_) {
    send(willmsgresp{return_code::not_supported}, out);  // no will topic to attach it to
    return;
  }
  will_->payload = m.message;
  send(willmsgresp{return_code::accepted}, out);
}

// ---------------------------------------------------------------------------------------------
// keep-alive and sleep

void session::on_pingreq(const pingreq& m, time_point now, actions& out) {
  if (state_ == session_state::asleep && !m.client_id.empty() && !queue_.empty()) {
    state_ = session_state::awake;
    awake_quota_ = queue_.size();  // what is buffered now; later arrivals wait for the next wake
    ++stats_.wakeups;
    out.emplace_back(report{event::awake, std::to_string(awake_quota_) + " buffered"});
    if (inflight_) {
      phase_deadline_ = now + config_.retry_interval;
      resume_inflight(now, out);  // the handshake the client slept through
    } else {
      pump(now, out);
    }
    return;
  }
  if (state_ == session_state::awake) return;  // a repeated PINGREQ: the cycle ends with PINGRESP
  send(pingresp{}, out);  // active keep-alive, or asleep with nothing buffered (sleep timer restarted)
}

time_point session::supervision_deadline(std::uint16_t seconds) const {
  return last_heard_ + scaled_seconds(seconds, config_.keep_alive_grace);
}

std::optional<time_point> session::next_deadline() const noexcept {
  std::optional<time_point> d;
  auto consider = [&d](time_point t) {
    if (!d || t < *d) d = t;
  };
  switch (state_) {
    case session_state::connecting: consider(phase_deadline_); break;
    case session_state::active:
      if (keep_alive_ > 0) consider(supervision_deadline(keep_alive_));
      if (inflight_) consider(inflight_->deadline);
      break;
    case session_state::asleep:
      if (sleep_duration_ > 0) consider(supervision_deadline(sleep_duration_));
      break;
    case session_state::awake: consider(inflight_ ? inflight_->deadline : phase_deadline_); break;
    case session_state::disconnected:
    case session_state::lost:
      if (auto e = expiry_deadline()) consider(*e);
      break;
  }
  return d;
}

void session::tick(time_point now, actions& out) {
  on_tick(now, out);
  after_input(now, out);
}

void session::on_tick(time_point now, actions& out) {
  switch (state_) {
    case session_state::connecting:
      if (now < phase_deadline_) return;
      if (phase_ == connect_phase::broker) {
        state_ = session_state::disconnected;
        ++stats_.connects_rejected;
        out.emplace_back(upstream_disconnect{});  // abandon the attempt
        send(connack{return_code::congestion}, out);
        out.emplace_back(report{event::connect_timeout, {}});
        end_if_clean(out);
      } else if (phase_retries_ < config_.retry_count) {
        ++phase_retries_;
        ++stats_.retransmissions;
        phase_deadline_ = now + config_.retry_interval;
        if (phase_ == connect_phase::will_topic) {
          send(willtopicreq{}, out);
        } else {
          send(willmsgreq{}, out);
        }
      } else {
        state_ = session_state::disconnected;  // half-open: dropped without CONNACK (PROTOCOL.md §3.2)
        out.emplace_back(report{event::will_handshake_failed, "no answer"});
        end_if_clean(out);
      }
      return;
    case session_state::active:
      if (keep_alive_ > 0 && now >= supervision_deadline(keep_alive_)) {
        ++stats_.lost_keep_alive;
        become_lost("keep-alive", now, out);
        return;
      }
      break;
    case session_state::asleep:
      if (sleep_duration_ > 0 && now >= supervision_deadline(sleep_duration_)) {
        ++stats_.lost_sleep_expired;
        become_lost("sleep expired", now, out);
      }
      return;
    case session_state::awake:
      if (!inflight_ && now >= phase_deadline_) {
        send(pingresp{}, out);
        go_asleep(sleep_duration_, now, out);
        return;
      }
      break;
    case session_state::disconnected:
    case session_state::lost: return;  // expiry: expire_if_due()
  }

  if (!inflight_ || now < inflight_->deadline) return;
  if (inflight_->retries < config_.retry_count) {
    const unsigned retries = inflight_->retries + 1;
    ++stats_.retransmissions;
    resume_inflight(now, out);
    inflight_->retries = retries;
    return;
  }
  // Retries exhausted.
  if (state_ == session_state::active) {
    ++stats_.lost_retries;
    become_lost("retries exhausted", now, out);
    return;
  }
  // Awake: back to sleep, keeping what was not delivered (the handshake resumes at the next wake);
  // the cycle still ends with PINGRESP.
  send(pingresp{}, out);
  go_asleep(sleep_duration_, now, out);
}

// ---------------------------------------------------------------------------------------------
// client -> broker

std::optional<std::string> session::resolve_topic(topic_id_type type, topic_id id) const {
  switch (type) {
    case topic_id_type::normal:
      if (const auto* n = topics_.name(id)) return *n;
      return std::nullopt;
    case topic_id_type::predefined:
      if (const auto* n = predefined_.name(id)) return *n;
      return std::nullopt;
    case topic_id_type::short_name: return short_topic_name(id);
  }
  return std::nullopt;
}

void session::on_register(const register_& m, actions& out) {
  if (!is_valid_topic_name(m.topic_name)) {
    send(regack{0, m.mid, return_code::not_supported}, out);  // wildcards have no id
    return;
  }
  const auto id = topics_.assign(m.topic_name);
  if (!id) {
    note_congestion("topic ids", out);
    send(regack{0, m.mid, return_code::congestion}, out);
    return;
  }
  topics_.set_known(*id, topic_table::client_knows::yes);
  send(regack{*id, m.mid, return_code::accepted}, out);
}

void session::on_publish(const publish& m, actions& out) {
  ++stats_.publishes_from_clients;
  if (m.q == qos::minus_one) {
    // QoS -1 belongs to the gateway-level connection (session_table); here it would be ambiguous.
    ++stats_.unexpected_messages;
    return;
  }
  const auto topic = resolve_topic(m.id_type, m.id);
  if (!topic) {
    ++stats_.invalid_topic_id;
    send(puback{m.id, m.mid, return_code::invalid_topic_id}, out);  // whatever the QoS (DECISIONS.md)
    return;
  }
  if (!is_valid_topic_name(*topic)) {  // a short name with a wildcard character
    send(puback{m.id, m.mid, return_code::not_supported}, out);
    return;
  }
  if (!may_publish(rule_, *topic)) {  // the clients file says no: whatever the QoS
    ++stats_.publishes_denied;
    send(puback{m.id, m.mid, return_code::not_supported}, out);
    return;
  }
  if (m.q == qos::at_most_once) {
    if (!upstream_up_) {
      ++stats_.qos0_dropped_broker_down;
      note_drop("broker unreachable (QoS 0)", out);
      return;
    }
    out.emplace_back(upstream_publish{0, *topic, m.data, m.q, m.retain});
    return;
  }

  // QoS 1/2: a retransmission of a message still in hand is never forwarded twice.
  if (m.q == qos::exactly_once) {
    if (auto it = qos2_received_.find(m.mid); it != qos2_received_.end()) {
      ++stats_.duplicate_publishes;
      if (it->second) send(pubrec{m.mid}, out);  // our PUBREC was lost: say it again
      return;
    }
  } else {
    for (const auto& [ref, op] : pending_) {
      if (op.what == pending_op::kind::publish && op.mid == m.mid && op.q == qos::at_least_once) {
        ++stats_.duplicate_publishes;
        return;
      }
    }
  }
  if (inflight_publishes() >= config_.max_inflight_upstream) {
    note_congestion("in-flight publishes", out);
    send(puback{m.id, m.mid, return_code::congestion}, out);
    return;
  }
  if (m.q == qos::exactly_once) qos2_received_.try_emplace(m.mid, false);
  add_op(pending_op{pending_op::kind::publish, false, m.mid, m.id, m.id_type, m.q, m.retain, *topic, m.data}, out);
}

std::size_t session::inflight_publishes() const noexcept {
  // Awaiting the broker, plus QoS 2 ids awaiting the client's PUBREL.
  std::size_t n = 0;
  for (const auto& [ref, op] : pending_) n += op.what == pending_op::kind::publish ? 1 : 0;
  for (const auto& [mid, rec_sent] : qos2_received_) n += rec_sent ? 1 : 0;
  return n;
}

void session::on_published(const upstream_published& e, actions& out) {
  auto it = pending_.find(e.ref);
  if (it == pending_.end() || it->second.what != pending_op::kind::publish) return;
  const pending_op op = std::move(it->second);
  pending_.erase(it);
  // Acknowledged to the client only now that the broker has it (ARCHITECTURE.md). For QoS 2 the id
  // stays known until PUBREL, so a retransmission is answered with PUBREC, never forwarded again.
  if (op.q == qos::exactly_once) qos2_received_[op.mid] = true;
  if (!connected_state(state_)) return;  // the client retransmits after reconnecting
  if (op.q == qos::at_least_once) {
    send(puback{op.id, op.mid, return_code::accepted}, out);
  } else {
    send(pubrec{op.mid}, out);
  }
}

void session::on_pubrel(const pubrel& m, actions& out) {
  auto it = qos2_received_.find(m.mid);
  if (it == qos2_received_.end()) {
    ++stats_.unknown_pubrel;  // answered anyway, so the client can finish (as MQTT does)
  } else if (!it->second) {
    return;  // PUBREL before our PUBREC: the broker has not acknowledged yet
  } else {
    qos2_received_.erase(it);
  }
  send(pubcomp{m.mid}, out);
}

void session::on_subscribe(const subscribe& m, actions& out) {
  for (const auto& [ref, op] : pending_) {
    if (op.what == pending_op::kind::subscribe && op.mid == m.mid) return;  // retransmission: wait
  }
  std::string filter;
  topic_id id = 0;
  switch (m.id_type) {
    case topic_id_type::normal: filter = m.topic_name; break;
    case topic_id_type::predefined:
      if (const auto* n = predefined_.name(m.id)) {
        filter = *n;
        id = m.id;
      } else {
        send(suback{qos::at_most_once, m.id, m.mid, return_code::invalid_topic_id}, out);
        return;
      }
      break;
    case topic_id_type::short_name:
      filter = short_topic_name(m.id);
      id = m.id;
      break;
  }
  if (!is_valid_topic_filter(filter)) {
    send(suback{qos::at_most_once, 0, m.mid, return_code::not_supported}, out);
    return;
  }
  if (!may_subscribe(rule_, filter)) {  // the clients file says no
    ++stats_.subscribes_denied;
    send(suback{qos::at_most_once, 0, m.mid, return_code::not_supported}, out);
    return;
  }
  const bool exists = subscribed_to(filter);
  // New filters still with the broker count too: a client must not pile up SUBSCRIBEs while the
  // broker is slow or away and so pass the bound once they are all answered.
  const auto awaited = static_cast<std::size_t>(std::count_if(pending_.begin(), pending_.end(), [&](const auto& p) {
    return p.second.what == pending_op::kind::subscribe && p.second.topic != filter && !subscribed_to(p.second.topic);
  }));
  if (!exists && subscriptions_.size() + awaited >= config_.max_subscriptions) {
    note_congestion("subscriptions", out);
    send(suback{qos::at_most_once, 0, m.mid, return_code::congestion}, out);
    return;
  }
  if (m.id_type == topic_id_type::normal && !has_wildcards(filter)) {
    const auto assigned = topics_.assign(filter);
    if (!assigned) {
      note_congestion("topic ids", out);
      send(suback{qos::at_most_once, 0, m.mid, return_code::congestion}, out);
      return;
    }
    id = *assigned;
  }
  add_op(pending_op{pending_op::kind::subscribe, false, m.mid, id, m.id_type, m.q, false, filter, {}}, out);
}

bool session::subscribed_to(const std::string& filter) const noexcept {
  return std::any_of(subscriptions_.begin(), subscriptions_.end(), [&](const subscription& s) { return s.filter == filter; });
}

void session::on_subscribed(const upstream_subscribed& e, time_point now, actions& out) {
  auto it = pending_.find(e.ref);
  if (it == pending_.end() || (it->second.what != pending_op::kind::subscribe &&
                               it->second.what != pending_op::kind::resubscribe)) {
    return;
  }
  const pending_op op = std::move(it->second);
  pending_.erase(it);
  if (op.what == pending_op::kind::resubscribe) {
    if (!e.granted) {
      // We cannot restore what the client relies on: make it reconnect (DECISIONS.md).
      out.emplace_back(report{event::resubscribe_failed, op.topic});
      send(disconnect{}, out);
      ++stats_.disconnects;
      end_connection(out);
      state_ = session_state::disconnected;
      end_if_clean(out);
      return;
    }
  } else if (op.what == pending_op::kind::subscribe) {
    if (!e.granted) {
      send(suback{qos::at_most_once, 0, op.mid, return_code::not_supported}, out);
    } else {
      auto s = std::find_if(subscriptions_.begin(), subscriptions_.end(),
                            [&](const subscription& x) { return x.filter == op.topic; });
      if (s == subscriptions_.end()) {
        subscriptions_.push_back(subscription{op.topic, *e.granted, op.type, op.id});
      } else {
        *s = subscription{op.topic, *e.granted, op.type, op.id};
      }
      // Wildcards and short names carry no id in SUBACK (PROTOCOL.md §6 items 5, 6).
      const bool carries_id = op.type != topic_id_type::short_name;
      send(suback{*e.granted, carries_id ? op.id : topic_id{0}, op.mid, return_code::accepted}, out);
      if (op.type == topic_id_type::normal && op.id != 0) topics_.set_known(op.id, topic_table::client_knows::yes);
    }
  }
  pump(now, out);  // retained messages held back until the SUBACK went out
}

void session::on_unsubscribe(const unsubscribe& m, actions& out) {
  std::string filter;
  switch (m.id_type) {
    case topic_id_type::normal: filter = m.topic_name; break;
    case topic_id_type::predefined:
      if (const auto* n = predefined_.name(m.id)) filter = *n;
      break;
    case topic_id_type::short_name: filter = short_topic_name(m.id); break;
  }
  const bool subscribed = subscribed_to(filter);
  const bool subscribing = std::any_of(pending_.begin(), pending_.end(), [&](const auto& p) {
    return p.second.what == pending_op::kind::subscribe && p.second.topic == filter;
  });
  if (filter.empty() || (!subscribed && !subscribing)) {
    send(unsuback{m.mid}, out);  // UNSUBACK has no return code: always answer (PROTOCOL.md §6 item 16)
    return;
  }
  // The broker handles requests in order: a SUBSCRIBE still with it completes first, and the
  // subscription goes when the UNSUBACK comes back.
  add_op(pending_op{pending_op::kind::unsubscribe, false, m.mid, 0, m.id_type, qos::at_most_once, false, filter, {}},
         out);
}

void session::on_unsubscribed(const upstream_unsubscribed& e, time_point now, actions& out) {
  auto it = pending_.find(e.ref);
  if (it == pending_.end() || it->second.what != pending_op::kind::unsubscribe) return;
  const msg_id mid = it->second.mid;
  const std::string filter = std::move(it->second.topic);
  pending_.erase(it);
  std::erase_if(subscriptions_, [&](const subscription& x) { return x.filter == filter; });
  send(unsuback{mid}, out);
  pump(now, out);
}

std::uint32_t session::add_op(pending_op op, actions& out) {
  const std::uint32_t ref = next_ref_++;
  if (next_ref_ == 0) next_ref_ = 1;  // 0 means "no acknowledgement"
  auto& stored = pending_.try_emplace(ref, std::move(op)).first->second;
  emit_op(ref, stored, out);
  return ref;
}

void session::emit_op(std::uint32_t ref, pending_op& op, actions& out) {
  if (!upstream_up_) return;  // held until the broker is back
  op.sent = true;
  switch (op.what) {
    case pending_op::kind::publish: out.emplace_back(upstream_publish{ref, op.topic, op.payload, op.q, op.retain}); break;
    case pending_op::kind::subscribe:
    case pending_op::kind::resubscribe: out.emplace_back(upstream_subscribe{ref, op.topic, op.q}); break;
    case pending_op::kind::unsubscribe: out.emplace_back(upstream_unsubscribe{ref, op.topic}); break;
  }
}

// ---------------------------------------------------------------------------------------------
// broker -> client

void session::on_message(const upstream_message& e, time_point now, actions& out) {
  if (e.topic.empty()) {  // no broker sends one; it could not be REGISTERed either
    ++stats_.dropped_undeliverable;
    return;
  }
  upstream_message copy = e;
  enqueue(std::move(copy), out);
  pump(now, out);
}

void session::enqueue(upstream_message&& e, actions& out) {
  if (!connected_state(state_) && e.q == qos::at_most_once) {
    ++stats_.dropped_qos0;  // nobody to give it to; QoS 0 is not kept for offline clients
    note_drop("client offline (QoS 0)", out);
    return;
  }
  if (state_ != session_state::active) ++stats_.buffered;
  if (queue_.size() >= config_.max_queued) {
    // Drop QoS 0 first (oldest first), never the message being delivered; QoS 1/2 last.
    const std::size_t first = inflight_ ? 1 : 0;
    auto victim = std::find_if(std::next(queue_.begin(), static_cast<std::ptrdiff_t>(std::min(first, queue_.size()))),
                               queue_.end(), [](const queued_message& q) { return q.q == qos::at_most_once; });
    if (victim == queue_.end() && e.q == qos::at_most_once) {
      ++stats_.dropped_qos0;
      note_drop("queue full (QoS 0)", out);
      return;
    }
    if (victim == queue_.end()) {
      victim = std::next(queue_.begin(), static_cast<std::ptrdiff_t>(std::min(first, queue_.size())));
    }
    if (victim == queue_.end()) {  // only the in-flight message fits: nothing else can go
      ++(e.q == qos::at_most_once ? stats_.dropped_qos0 : stats_.dropped_qos12);
      note_drop("queue full", out);
      return;
    }
    ++(victim->q == qos::at_most_once ? stats_.dropped_qos0 : stats_.dropped_qos12);
    note_drop(victim->q == qos::at_most_once ? "queue full (QoS 0)" : "queue full (QoS 1/2, last resort)", out);
    const auto index = static_cast<std::size_t>(std::distance(queue_.begin(), victim));
    if (index < awake_quota_) --awake_quota_;
    queue_.erase(victim);
  }
  queue_.push_back(queued_message{std::move(e.topic), std::move(e.payload), e.q, e.retain, 0, 0});
}

void session::pump(time_point now, actions& out) {
  if (state_ != session_state::active && state_ != session_state::awake) return;
  // An awake cycle must end even when nothing can be sent (e.g. held behind a SUBSCRIBE): without
  // progress within T_retry the client gets its PINGRESP and sleeps again.
  if (state_ == session_state::awake) phase_deadline_ = now + config_.retry_interval;
  // Hold deliveries while a SUBSCRIBE is with the broker: its SUBACK (with the topic id) must
  // reach the client before the retained messages it triggers (PROTOCOL.md §3.6).
  for (const auto& [ref, op] : pending_) {
    if (op.what == pending_op::kind::subscribe) return;
  }
  while (!inflight_ && !queue_.empty() && (state_ == session_state::active || awake_quota_ > 0)) {
    queued_message& m = queue_.front();

    // Which id does the client know this topic by? An exact subscription decides; otherwise a
    // predefined id, a short name, or a normal id (REGISTERed first when the client lacks it).
    topic_id_type type = topic_id_type::normal;
    std::optional<topic_id> id;
    const auto exact = std::find_if(subscriptions_.begin(), subscriptions_.end(),
                                    [&](const subscription& s) { return s.filter == m.topic; });
    if (exact != subscriptions_.end() && exact->type != topic_id_type::normal) {
      type = exact->type;
      id = exact->id;
    } else if (exact != subscriptions_.end()) {
      // subscribed by name: the normal id from its SUBACK, below
    } else if (auto p = predefined_.id(m.topic)) {
      type = topic_id_type::predefined;
      id = p;
    } else if (auto s = short_topic_id(m.topic)) {
      type = topic_id_type::short_name;
      id = s;
    }
    if (type == topic_id_type::normal) {
      id = topics_.assign(m.topic);
      if (!id) {
        note_congestion("topic ids", out);
        drop_front("no topic id left", out);
        continue;
      }
      const auto knows = topics_.known(*id);
      if (knows == topic_table::client_knows::refused) {
        drop_front("topic refused by the client", out);
        continue;
      }
      if (knows == topic_table::client_knows::no) {
        inflight f;
        f.step = inflight::stage::registering;
        f.mid = next_mid();
        f.id = *id;
        bytes frame;
        encode(register_{*id, f.mid, m.topic}, frame);
        if (frame.empty() || frame.size() > config_.max_frame_size) {
          ++stats_.frames_too_large;
          drop_front("topic too long for the link", out);
          continue;
        }
        f.frame = std::move(frame);
        arm(f, now);
        ++stats_.registers_sent;
        ++stats_.frames_out;
        out.emplace_back(send_frame{f.frame});
        inflight_ = std::move(f);
        return;
      }
    }

    const bool acked = m.q != qos::at_most_once;
    const bool resend = acked && m.mid != 0;  // sent before, never acknowledged
    const msg_id mid = !acked ? msg_id{0} : resend ? m.mid : next_mid();
    bytes frame;
    encode(publish{resend, m.q, m.retain, type, *id, mid, m.payload}, frame);
    if (frame.empty() || frame.size() > config_.max_frame_size) {
      ++stats_.frames_too_large;
      drop_front("message too large for the link", out);
      continue;
    }
    ++stats_.publishes_to_clients;
    ++stats_.frames_out;
    if (!acked) {
      out.emplace_back(send_frame{std::move(frame)});
      finish_front(now, out);
      continue;
    }
    m.mid = mid;
    inflight f;
    f.step = inflight::stage::publishing;
    f.mid = mid;
    f.id = *id;
    f.type = type;
    f.frame = std::move(frame);
    arm(f, now);
    out.emplace_back(send_frame{f.frame});
    inflight_ = std::move(f);
    return;
  }
  if (state_ == session_state::awake && !inflight_ && awake_quota_ == 0) {
    // Everything buffered at wake-up is delivered and acknowledged: now PINGRESP (DECISIONS.md).
    send(pingresp{}, out);
    go_asleep(sleep_duration_, now, out);
  }
}

void session::resume_inflight(time_point now, actions& out) {
  // Same msg id; a PUBLISH goes out again with DUP set (its flags byte follows the Length field).
  if (inflight_->step == inflight::stage::publishing) inflight_->frame[inflight_->frame[0] == 0x01 ? 4 : 2] |= 0x80;
  arm(*inflight_, now);
  ++stats_.frames_out;
  out.emplace_back(send_frame{inflight_->frame});
}

void session::arm(inflight& f, time_point now) const {
  f.retries = 0;
  f.deadline = now + config_.retry_interval;
}

void session::finish_front(time_point /*now*/, actions& /*out*/) {
  queue_.pop_front();
  inflight_.reset();
  if (awake_quota_ > 0) --awake_quota_;
}

void session::drop_front(const char* why, actions& out) {
  ++stats_.dropped_undeliverable;
  note_drop(why, out);
  queue_.pop_front();
  inflight_.reset();
  if (awake_quota_ > 0) --awake_quota_;
}

void session::on_regack(const regack& m, time_point now, actions& out) {
  if (!inflight_ || inflight_->step != inflight::stage::registering || inflight_->mid != m.mid) {
    ++stats_.unexpected_messages;
    return;
  }
  const topic_id id = inflight_->id;
  inflight_.reset();
  if (m.rc == return_code::accepted) {
    topics_.set_known(id, topic_table::client_knows::yes);
  } else {
    // The client does not want this topic: never publish on it (PROTOCOL.md §6 item 14).
    topics_.set_known(id, topic_table::client_knows::refused);
    ++stats_.registrations_refused;
    drop_front("client refused the topic", out);
  }
  pump(now, out);
}

void session::on_puback(const puback& m, time_point now, actions& out) {
  if (!inflight_ || inflight_->step != inflight::stage::publishing || inflight_->mid != m.mid) {
    ++stats_.unexpected_messages;
    return;
  }
  if (m.rc == return_code::accepted) {
    finish_front(now, out);
  } else if (m.rc == return_code::invalid_topic_id && inflight_->type == topic_id_type::normal &&
             ++queue_.front().rejections <= config_.retry_count) {
    // The client lost the mapping (e.g. a reordered datagram): REGISTER again, then resend as a
    // new PUBLISH (the client refused this one: it holds nothing under its msg id).
    topics_.set_known(inflight_->id, topic_table::client_knows::no);
    queue_.front().mid = 0;
    inflight_.reset();
  } else {
    drop_front("client rejected the message", out);
  }
  pump(now, out);
}

void session::on_pubrec(const pubrec& m, time_point now, actions& out) {
  if (!inflight_ || inflight_->mid != m.mid || inflight_->step == inflight::stage::registering) {
    ++stats_.unexpected_messages;
    return;
  }
  // First PUBREC moves to the release stage; a repeated one (our PUBREL was lost) re-sends it.
  inflight_->step = inflight::stage::releasing;
  inflight_->frame.clear();
  encode(pubrel{m.mid}, inflight_->frame);
  arm(*inflight_, now);
  ++stats_.frames_out;
  out.emplace_back(send_frame{inflight_->frame});
}

void session::on_pubcomp(const pubcomp& m, time_point now, actions& out) {
  if (!inflight_ || inflight_->step != inflight::stage::releasing || inflight_->mid != m.mid) {
    ++stats_.unexpected_messages;
    return;
  }
  finish_front(now, out);
  pump(now, out);
}

// ---------------------------------------------------------------------------------------------
// small helpers

void session::send(const message& m, actions& out) {
  bytes frame;
  encode(m, frame);
  ++stats_.frames_out;
  out.emplace_back(send_frame{std::move(frame)});
}

msg_id session::next_mid() noexcept {
  ++last_mid_;
  if (last_mid_ == 0) last_mid_ = 1;  // never 0 where an ack is expected (PROTOCOL.md §6 item 17)
  return last_mid_;
}

// ---------------------------------------------------------------------------------------------
// flow control toward the broker (docs/flow-control.md)

bool session::withholds() const noexcept {
  // A sleeping or offline client's buffer is a specified bound (drop-oldest, counted): holding
  // for it would keep the broker's window full until it wakes, for nothing.
  return state_ == session_state::connecting || state_ == session_state::active ||
         state_ == session_state::awake;
}

bool session::has_room() const noexcept {
  if (queue_.size() < config_.max_queued) return true;
  // A full queue still takes a QoS 1/2 message without loss if a QoS 0 one goes instead (never
  // the one in flight).
  auto from = queue_.begin();
  if (inflight_ && from != queue_.end()) ++from;
  return std::any_of(from, queue_.end(), [](const queued_message& m) { return m.q == qos::at_most_once; });
}

bool session::offer(qos q) noexcept {
  if (q == qos::at_most_once || q == qos::minus_one || !withholds() || has_room()) return true;
  refused_offer_ = true;
  return false;
}

void session::resume_if_room(actions& out) {
  if (!refused_offer_ || (withholds() && !has_room())) return;
  refused_offer_ = false;
  out.emplace_back(upstream_resume{});
}

void session::note_drop(const char* why, actions& out) {
  if (drop_reported_) return;
  drop_reported_ = true;
  out.emplace_back(report{event::first_drop, why});
}

void session::note_congestion(const char* what, actions& out) {
  ++stats_.congestion;
  // A client hammering a bound must not flood the log: one line per bound, every hit counted.
  if (std::find(congestion_reported_.begin(), congestion_reported_.end(), what) != congestion_reported_.end()) return;
  congestion_reported_.emplace_back(what);
  out.emplace_back(report{event::congestion, what});
}

// ---------------------------------------------------------------------------------------------
// persistence

std::optional<session_snapshot> session::snapshot() const {
  const bool offline = state_ == session_state::disconnected || state_ == session_state::lost;
  if (offline) {
    // A clean session keeps nothing once offline (it has ended). A kept one stays in the table and
    // still buffers broker messages for the client: written, as it is kept in memory.
    if (clean_session_ || ended_) return std::nullopt;
  } else if (state_ != session_state::active && state_ != session_state::asleep && state_ != session_state::awake) {
    return std::nullopt;
  }
  session_snapshot s;
  s.client_id = client_id_;
  if (offline) s.offline = state_;
  s.asleep = !offline && state_ != session_state::active;
  s.clean_session = clean_session_;
  s.keep_alive = keep_alive_;
  s.sleep_duration = sleep_duration_;
  s.will = will();
  s.topics = topics_.save();
  s.next_topic_id = topics_.next_id();
  for (const auto& sub : subscriptions_) s.subscriptions.push_back({sub.filter, sub.q, sub.type, sub.id});
  for (const auto& m : queue_) s.queue.push_back({m.topic, m.payload, m.q, m.retain, m.mid});
  if (inflight_ && inflight_->step == inflight::stage::releasing) s.releasing = inflight_->mid;
  for (const auto& [mid, rec_sent] : qos2_received_) {
    if (rec_sent) s.qos2_received.push_back(mid);
  }
  s.last_mid = last_mid_;
  return s;
}

bool session::restore(const session_snapshot& s, time_point now, actions& out) {
  if (s.queue.size() > config_.max_queued || s.subscriptions.size() > config_.max_subscriptions) return false;
  if (s.releasing && (s.queue.empty() || s.queue.front().q != qos::exactly_once)) return false;
  if (s.offline && (s.clean_session || s.asleep ||
                    (*s.offline != session_state::disconnected && *s.offline != session_state::lost))) {
    return false;
  }
  // Only the front can have been sent, and only at QoS 1/2 (with the id its PUBREL carries).
  for (std::size_t i = 0; i < s.queue.size(); ++i) {
    const auto& m = s.queue[i];
    if (m.mid != 0 && (i > 0 || m.q == qos::at_most_once || (s.releasing && m.mid != *s.releasing))) return false;
  }
  if (!topics_.load(s.topics, s.next_topic_id)) return false;
  clean_session_ = s.clean_session;
  keep_alive_ = s.keep_alive;
  sleep_duration_ = s.sleep_duration;
  will_ = s.will ? std::make_unique<will_message>(*s.will) : nullptr;
  subscriptions_.clear();
  for (const auto& sub : s.subscriptions) subscriptions_.push_back({sub.filter, sub.q, sub.type, sub.id});
  queue_.clear();
  for (const auto& m : s.queue) queue_.push_back(queued_message{m.topic, m.payload, m.q, m.retain, 0, m.mid});
  qos2_received_.clear();
  for (auto mid : s.qos2_received) qos2_received_.try_emplace(mid, true);
  last_mid_ = s.last_mid;
  inflight_.reset();
  if (s.releasing) {
    // The client has the message; only the PUBREL/PUBCOMP exchange is left (never deliver twice).
    inflight_ = inflight{inflight::stage::releasing, *s.releasing, 0, topic_id_type::normal, 0, now, encode(pubrel{*s.releasing})};
  }
  state_ = s.offline ? *s.offline : s.asleep ? session_state::asleep : session_state::active;
  last_heard_ = now;
  ended_ = false;
  upstream_up_ = false;
  phase_ = connect_phase::broker;
  // Offline: the broker (transparent mode) or the shared connection (aggregating mode) holds its
  // subscriptions; the client's next CONNECT asks for its broker session as before the restart.
  if (s.offline) return true;
  if (inflight_ && state_ == session_state::active) resume_inflight(now, out);
  out.emplace_back(upstream_connect{clean_session_, keep_alive_, will()});
  return true;
}

}  // namespace mqttsn
