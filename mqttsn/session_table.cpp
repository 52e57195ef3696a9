#include "mqttsn/session_table.hpp"

#include <utility>

#include "mqttsn/codec.hpp"

namespace mqttsn {

session_table::session_table(table_config config, session_config session_defaults,
                             const predefined_topics& predefined, counters& stats)
    : config_(config), session_config_(std::move(session_defaults)), predefined_(predefined), stats_(stats) {}

session_table::entry* session_table::lookup_client(std::string_view client_id) const noexcept {
  auto it = by_client_.find(client_id);
  return it == by_client_.end() ? nullptr : it->second.get();
}

session_table::entry* session_table::lookup_endpoint(const endpoint& ep) const noexcept {
  auto it = by_endpoint_.find(ep);
  return it == by_endpoint_.end() ? nullptr : it->second;
}

const session* session_table::find(std::string_view client_id) const noexcept {
  const entry* e = lookup_client(client_id);
  return e ? &e->sess : nullptr;
}

const session* session_table::find_by_endpoint(const endpoint& ep) const noexcept {
  const entry* e = lookup_endpoint(ep);
  return e ? &e->sess : nullptr;
}

const endpoint* session_table::endpoint_of(std::string_view client_id) const noexcept {
  const entry* e = lookup_client(client_id);
  return e ? &e->ep : nullptr;
}

std::optional<time_point> session_table::next_deadline() const noexcept {
  if (deadlines_.empty()) return std::nullopt;
  return deadlines_.begin()->first;
}

void session_table::reply(const endpoint& to, const message& m, std::vector<routed_action>& out) {
  ++stats_.frames_out;
  out.push_back(routed_action{{}, to, send_frame{encode(m)}});
}

// The client id is the session's identity; the address is only where it is now (DECISIONS.md).
void session_table::bind(entry& e, const endpoint& ep) {
  if (e.ep == ep) return;
  if (!e.ep.empty()) {
    ++stats_.takeovers;
    if (auto it = by_endpoint_.find(e.ep); it != by_endpoint_.end() && it->second == &e) by_endpoint_.erase(it);
  }
  // Another client id last seen at this address no longer owns it.
  if (auto it = by_endpoint_.find(ep); it != by_endpoint_.end()) {
    it->second->ep.clear();
    it->second = &e;
  } else {
    by_endpoint_.emplace(ep, &e);
  }
  e.ep = ep;
}

void session_table::route(entry& e, actions& local, std::vector<routed_action>& out) {
  if (track_changes_) changed_.insert(e.sess.client_id());
  for (auto& a : local) {
    // A session whose address went to another client id cannot be reached until it shows up
    // again; its own retransmissions and timers cover what is not sent.
    if (e.ep.empty() && std::holds_alternative<send_frame>(a)) continue;
    out.push_back(routed_action{e.sess.client_id(), e.ep, std::move(a)});
  }
  local.clear();

  if (e.deadline) deadlines_.erase({*e.deadline, &e});
  e.deadline = e.sess.next_deadline();
  if (e.deadline) deadlines_.emplace(*e.deadline, &e);

  // A clean session that is over (including one that never became a connection) holds nothing
  // worth keeping: forget it and free its slot.
  if (e.sess.ended()) {
    if (e.deadline) deadlines_.erase({*e.deadline, &e});
    if (!e.ep.empty()) {
      if (auto it = by_endpoint_.find(e.ep); it != by_endpoint_.end() && it->second == &e) by_endpoint_.erase(it);
    }
    by_client_.erase(e.sess.client_id());
  }
}

void session_table::handle_frame(const endpoint& from, std::span<const std::uint8_t> frame, time_point now,
                                 std::vector<routed_action>& out) {
  ++stats_.frames_in;
  auto decoded = decode(frame);
  if (const auto* err = std::get_if<decode_error>(&decoded)) {
    ++stats_.decode_errors[static_cast<std::size_t>(*err)];
    return;
  }
  const message& m = std::get<message>(decoded);

  if (const auto* c = std::get_if<connect>(&m)) {
    const client_rule* rule = nullptr;
    if (admission_ != nullptr) {
      const auto verdict = admission_->check(c->client_id, from);
      if (verdict != admission_verdict::accepted) {
        ++stats_.connects_rejected;
        refuse(from, c->client_id, to_string(verdict), true, out);
        return;
      }
      rule = admission_->rule(c->client_id);
    }
    entry* e = lookup_client(c->client_id);
    if (!e) {
      if (by_client_.size() >= config_.max_clients) {
        ++stats_.connects_rejected;
        ++stats_.congestion;
        reply(from, connack{return_code::congestion}, out);
        // A connect storm is logged once, not once per CONNECT; every refusal is counted.
        if (!clients_full_reported_) out.push_back(routed_action{c->client_id, from, report{event::congestion, "clients"}});
        clients_full_reported_ = true;
        return;
      }
      clients_full_reported_ = false;  // below the bound again: the next time it is reached is logged
      auto owned = std::make_unique<entry>(c->client_id, session_config_,
                                           rule != nullptr ? rule->predefined : predefined_, stats_);
      owned->sess.set_rule(rule);
      e = owned.get();
      by_client_.emplace(c->client_id, std::move(owned));
    }
    bind(*e, from);
    e->sess.handle(m, now, scratch_);
    route(*e, scratch_, out);
    return;
  }

  if (const auto* p = std::get_if<pingreq>(&m); p && !p->client_id.empty()) {
    entry* e = lookup_client(p->client_id);
    if (!e) {  // never connected (or forgotten): it must CONNECT
      ++stats_.unknown_sender;
      reply(from, disconnect{}, out);
      return;
    }
    if (admission_ != nullptr) {
      const auto verdict = admission_->check(p->client_id, from);
      if (verdict != admission_verdict::accepted) {  // never rebind a session to a stranger
        refuse(from, p->client_id, to_string(verdict), false, out);
        return;
      }
    }
    bind(*e, from);  // a sleeping device may wake up on a new address or port
    e->sess.handle(m, now, scratch_);
    route(*e, scratch_, out);
    return;
  }

  if (const auto* p = std::get_if<publish>(&m); p && p->q == qos::minus_one) {
    on_qos_minus_one(from, *p, out);
    return;
  }

  switch (type_of(m)) {
    case msg_type::searchgw:
      reply(from, gwinfo{config_.gateway_id, {}}, out);  // unicast to the sender (DECISIONS.md)
      return;
    case msg_type::advertise:
    case msg_type::gwinfo:
    case msg_type::connack:
    case msg_type::willtopicreq:
    case msg_type::willmsgreq:
    case msg_type::suback:
    case msg_type::unsuback:
    case msg_type::willtopicresp:
    case msg_type::willmsgresp:
    case msg_type::encapsulated:  // the runtime unwraps forwarder frames before they get here
      ++stats_.unexpected_messages;
      return;
    default: break;
  }

  entry* e = lookup_endpoint(from);
  if (!e) {
    // Probably a client of ours from before a gateway restart: make it reconnect (DECISIONS.md).
    ++stats_.unknown_sender;
    reply(from, disconnect{}, out);
    return;
  }
  e->sess.handle(m, now, scratch_);
  route(*e, scratch_, out);
}

// QoS -1 needs no session: predefined ids and short names only, published on the gateway's own
// connection (DECISIONS.md).
void session_table::on_qos_minus_one(const endpoint& from, const publish& p, std::vector<routed_action>& out) {
  const client_rule* rule = nullptr;
  if (admission_ != nullptr) {
    // QoS -1 has no CONNECT: with a clients file only its bound addresses may use it. No answer:
    // a reply to a forged source address would help nobody.
    rule = admission_->rule_for_address(from);
    if (rule == nullptr) {
      ++stats_.qos_m1_refused;
      refuse(from, {}, "QoS -1 from an address the clients file does not list", false, out);
      return;
    }
  }
  const predefined_topics& predefined = rule != nullptr ? rule->predefined : predefined_;
  std::string topic;
  if (p.id_type == topic_id_type::predefined) {
    const auto* name = predefined.name(p.id);
    if (!name) {
      ++stats_.qos_m1_dropped;
      ++stats_.invalid_topic_id;
      reply(from, puback{p.id, p.mid, return_code::invalid_topic_id}, out);
      return;
    }
    topic = *name;
  } else if (p.id_type == topic_id_type::short_name && is_valid_topic_name(short_topic_name(p.id))) {
    topic = short_topic_name(p.id);
  } else {
    ++stats_.qos_m1_dropped;  // normal ids mean nothing without a session
    reply(from, puback{p.id, p.mid, return_code::not_supported}, out);
    return;
  }
  if (!may_publish(rule, topic)) {
    ++stats_.publishes_denied;
    ++stats_.qos_m1_dropped;
    return;
  }
  ++stats_.qos_m1_published;
  out.push_back(routed_action{{}, from, upstream_publish{0, std::move(topic), p.data, qos::at_most_once, p.retain}});
}

bool session_table::restore(const session_snapshot& s, const endpoint& ep, time_point now,
                            std::vector<routed_action>& out) {
  if (s.client_id.empty() || lookup_client(s.client_id) != nullptr || by_client_.size() >= config_.max_clients) {
    return false;
  }
  const client_rule* rule = nullptr;
  if (admission_ != nullptr) {
    if (admission_->check(s.client_id, ep) != admission_verdict::accepted) return false;
    rule = admission_->rule(s.client_id);
  }
  auto owned = std::make_unique<entry>(s.client_id, session_config_, rule != nullptr ? rule->predefined : predefined_,
                                       stats_);
  owned->sess.set_rule(rule);
  if (!owned->sess.restore(s, now, scratch_)) {
    scratch_.clear();
    return false;
  }
  entry* e = owned.get();
  by_client_.emplace(s.client_id, std::move(owned));
  if (!ep.empty()) bind(*e, ep);
  route(*e, scratch_, out);
  return true;
}

std::vector<std::string> session_table::take_changed() {
  std::vector<std::string> ids(changed_.begin(), changed_.end());
  changed_.clear();
  return ids;
}

void session_table::refuse(const endpoint& from, const std::string& client_id, std::string why, bool answer,
                           std::vector<routed_action>& out) {
  ++stats_.admission_refused;
  if (answer) reply(from, connack{return_code::not_supported}, out);
  // Once per client id (or per address without one), so a sensor retrying does not flood the log.
  std::string key = client_id.empty() ? "address " + from : "client " + client_id;
  if (refusals_reported_.size() >= max_refusals_reported || !refusals_reported_.insert(std::move(key)).second) {
    return;
  }
  out.push_back(routed_action{client_id, from, report{event::admission_refused, std::move(why)}});
}

void session_table::handle_upstream(std::string_view client_id, const upstream_event& ev, time_point now,
                                    std::vector<routed_action>& out) {
  entry* e = lookup_client(client_id);
  if (!e) return;
  e->sess.handle(ev, now, scratch_);
  route(*e, scratch_, out);
}

bool session_table::offer(std::string_view client_id, qos q) noexcept {
  entry* e = lookup_client(client_id);
  return e == nullptr || e->sess.offer(q);
}

void session_table::tick(time_point now, std::vector<routed_action>& out) {
  std::vector<entry*> due;
  for (auto it = deadlines_.begin(); it != deadlines_.end() && it->first <= now; ++it) due.push_back(it->second);
  for (entry* e : due) {
    e->sess.tick(now, scratch_);
    route(*e, scratch_, out);
  }
}

}  // namespace mqttsn
