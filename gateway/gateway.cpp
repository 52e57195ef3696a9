#include "gateway/gateway.hpp"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <spdlog/spdlog.h>

#include <sstream>

#include "mqttsn/codec.hpp"
#include "mqttsn/overloaded.hpp"

namespace gateway {

namespace asio = boost::asio;

namespace {

constexpr std::string_view forward_marker = "/fwd/";

const char* event_name(mqttsn::event e) {
  switch (e) {
    case mqttsn::event::connected: return "connected";
    case mqttsn::event::connect_refused: return "refused by the broker";
    case mqttsn::event::connect_timeout: return "broker did not answer in time: CONNACK congestion";
    case mqttsn::event::will_handshake_failed: return "will handshake failed";
    case mqttsn::event::disconnected: return "disconnected";
    case mqttsn::event::asleep: return "asleep";
    case mqttsn::event::awake: return "awake";
    case mqttsn::event::lost: return "lost";
    case mqttsn::event::will_published: return "will published";
    case mqttsn::event::session_ended: return "session ended";
    case mqttsn::event::session_expired: return "kept session expired unheard of (session-expiry): discarded";
    case mqttsn::event::resubscribe_failed: return "could not restore subscription, DISCONNECT sent";
    case mqttsn::event::first_drop: return "dropping messages (first of them; later ones only counted)";
    case mqttsn::event::congestion: return "limit reached, answered congestion";
    case mqttsn::event::admission_refused: return "refused by the clients file (logged once per client)";
  }
  return "?";
}

// "0C 04 ..." for trace lines.
std::string hex_of(std::span<const std::uint8_t> frame) {
  std::string hex;
  for (auto b : frame) hex += fmt::format("{:02X} ", b);
  return hex;
}

}  // namespace

std::string forwarded_endpoint(const std::string& forwarder, std::span<const std::uint8_t> node_id) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string ep = forwarder;
  ep += forward_marker;
  for (auto b : node_id) {
    ep += digits[b >> 4];
    ep += digits[b & 0x0F];
  }
  return ep;
}

std::optional<std::pair<std::string, mqttsn::bytes>> split_forwarded(const std::string& endpoint) {
  const auto at = endpoint.rfind(forward_marker);
  if (at == std::string::npos) return std::nullopt;
  const std::string_view hex = std::string_view(endpoint).substr(at + forward_marker.size());
  if (hex.size() % 2 != 0) return std::nullopt;
  mqttsn::bytes node;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nibble(hex[i]);
    const int lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    node.push_back(static_cast<std::uint8_t>(hi * 16 + lo));
  }
  return std::make_pair(endpoint.substr(0, at), std::move(node));
}

gateway::gateway(asio::io_context& io, const config& cfg, upstream& up,
                 std::vector<std::unique_ptr<transports::transport>> transports)
    : cfg_(cfg),
      up_(up),
      transports_(std::move(transports)),
      table_(mqttsn::table_config{cfg.max_clients, cfg.gateway_id}, cfg.session(), predefined_, stats_),
      session_timer_(io),
      stats_timer_(io),
      advertise_timer_(io),
      flush_timer_(io),
      trim_timer_(io) {
  for (const auto& [id, name] : cfg.predefined) predefined_.add(id, name);
}

void gateway::start() {
  for (auto& t : transports_) {
    t->start([this](const std::string& from, std::span<const std::uint8_t> frame) { on_frame(from, frame); });
  }
  // Sessions from the store first: the upstream learns their subscriptions before its
  // connection can deliver what the broker kept for them (aggregating mode's fan-out table).
  restore_sessions();
  up_.set_offer([this](const std::string& client_id, mqttsn::qos q) { return table_.offer(client_id, q); });
  up_.start([this](const std::string& client_id, mqttsn::upstream_event e) { on_upstream(client_id, std::move(e)); });
  restoring_ = true;  // their upstream connects: one summary line, not one line per session
  execute();
  restoring_ = false;
  arm_flush_timer();
  arm_stats_timer();
  arm_advertise_timer();
}

void gateway::reload_predefined(const std::vector<std::pair<mqttsn::topic_id, std::string>>& topics) {
  predefined_.clear();
  for (const auto& [id, name] : topics) predefined_.add(id, name);  // validated by the config parser
}

void gateway::stop() {
  if (!stopped_) flush();  // the last changes: a graceful stop loses nothing
  stopped_ = true;
  session_timer_.cancel();
  stats_timer_.cancel();
  advertise_timer_.cancel();
  flush_timer_.cancel();
  trim_timer_.cancel();
  for (auto& t : transports_) t->stop();
}

transports::transport* gateway::transport_for(const std::string& endpoint) const {
  for (const auto& t : transports_) {
    if (endpoint.compare(0, t->prefix().size(), t->prefix()) == 0) return t.get();
  }
  return nullptr;
}

void gateway::on_frame(const std::string& from, std::span<const std::uint8_t> frame) {
  if (stopped_) return;
  if (spdlog::should_log(spdlog::level::trace)) spdlog::trace("<- {}: {}", from, hex_of(frame));
  // Forwarder encapsulation: unwrap here, so the core sees the wireless node as the client.
  if (frame.size() >= 2 && frame[0] != 0x01 && frame[1] == static_cast<std::uint8_t>(mqttsn::msg_type::encapsulated)) {
    auto decoded = mqttsn::decode(frame);
    if (const auto* m = std::get_if<mqttsn::message>(&decoded)) {
      const auto& enc = std::get<mqttsn::encapsulated>(*m);
      ++encapsulated_in_;
      const bool nested = enc.frame.size() >= 2 && enc.frame[0] != 0x01 &&
                          enc.frame[1] == static_cast<std::uint8_t>(mqttsn::msg_type::encapsulated);
      if (!nested) {
        on_frame(forwarded_endpoint(from, enc.node_id), enc.frame);
        return;
      }
    }
    // Malformed or nested: let the core count it.
  }
  const auto now = mqttsn::clock::now();
  table_.handle_frame(from, frame, now, out_);
  execute();

  // SEARCHGW: the core answered by unicast; with a broadcast medium configured, also broadcast.
  const bool searchgw = frame.size() == 3 && frame[0] == 3 && frame[1] == static_cast<std::uint8_t>(mqttsn::msg_type::searchgw);
  if (searchgw) broadcast(mqttsn::encode(mqttsn::gwinfo{cfg_.gateway_id, {}}));
}

void gateway::on_upstream(const std::string& client_id, mqttsn::upstream_event event) {
  if (stopped_) return;
  if (client_id.empty()) {  // the gateway-level connection
    if (std::holds_alternative<mqttsn::upstream_connected>(event)) broker_up_ = true;
    if (std::holds_alternative<mqttsn::upstream_lost>(event)) broker_up_ = false;
    return;
  }
  table_.handle_upstream(client_id, event, mqttsn::clock::now(), out_);
  execute();
}

void gateway::execute() {
  for (auto& r : out_) {
    std::visit(mqttsn::overloaded{
                   [&](const mqttsn::send_frame& f) {
                     if (!r.to.empty()) send(r.to, f.frame);
                   },
                   [&](const mqttsn::upstream_connect& c) {
                     spdlog::log(restoring_ ? spdlog::level::debug : spdlog::level::info,
                                 "client {} ({}): connecting to the broker (clean session {}, keep-alive {} s{})",
                                 r.client_id, r.to, c.clean_session, c.keep_alive, c.will ? ", will" : "");
                     up_.connect(r.client_id, c);
                   },
                   [&](const mqttsn::upstream_publish& p) { up_.publish(r.client_id, p); },
                   [&](const mqttsn::upstream_subscribe& s) { up_.subscribe(r.client_id, s); },
                   [&](const mqttsn::upstream_unsubscribe& u) { up_.unsubscribe(r.client_id, u); },
                   [&](const mqttsn::upstream_disconnect&) { up_.disconnect(r.client_id); },
                   [&](const mqttsn::upstream_resume&) { up_.resume(r.client_id); },
                   [&](const mqttsn::report& rep) {
                     if (rep.what == mqttsn::event::session_expired) up_.forget(r.client_id);
                     const bool warn = rep.what == mqttsn::event::congestion || rep.what == mqttsn::event::first_drop ||
                                       rep.what == mqttsn::event::connect_refused ||
                                       rep.what == mqttsn::event::resubscribe_failed ||
                                       rep.what == mqttsn::event::admission_refused;
                     const auto level = warn ? spdlog::level::warn : spdlog::level::info;
                     if (rep.detail.empty()) {
                       spdlog::log(level, "client {} ({}): {}", r.client_id, r.to, event_name(rep.what));
                     } else {
                       spdlog::log(level, "client {} ({}): {}: {}", r.client_id, r.to, event_name(rep.what), rep.detail);
                     }
                   },
               },
               r.act);
  }
  out_.clear();
  arm_session_timer();
  if (table_.size() != 0) {
    had_sessions_ = true;
  } else if (had_sessions_) {
    had_sessions_ = false;
    note_emptied();
  }
}

// Per-client memory (sessions, transparent mode's broker connections and their buffers) is freed
// when the clients leave, but glibc keeps the freed pages of its heap mapped: without a trim the
// gateway stays at its peak RSS. Two seconds later, the DISCONNECTs upstream are written and the
// connections gone; if no client came back meanwhile, the free pages go back to the system.
void gateway::note_emptied() {
  trim_timer_.expires_after(std::chrono::seconds(2));
  trim_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_ || table_.size() != 0) return;
#ifdef __GLIBC__
    ::malloc_trim(0);
#endif
  });
}

void gateway::send(const std::string& to, std::span<const std::uint8_t> frame) {
  if (spdlog::should_log(spdlog::level::trace)) spdlog::trace("-> {}: {}", to, hex_of(frame));
  if (auto fwd = split_forwarded(to)) {
    const auto wrapped = mqttsn::encode(mqttsn::encapsulated{0, std::move(fwd->second), mqttsn::bytes(frame.begin(), frame.end())});
    if (auto* t = transport_for(fwd->first)) t->send(fwd->first, wrapped);
    return;
  }
  if (auto* t = transport_for(to)) t->send(to, frame);
}

void gateway::broadcast(std::span<const std::uint8_t> frame) {
  for (auto& t : transports_) t->broadcast(frame);
}

// One timer for all sessions: armed for the earliest deadline, moved only when that changes.
void gateway::arm_session_timer() {
  const auto next = table_.next_deadline();
  if (!next || (armed_for_ && *armed_for_ <= *next)) return;
  armed_for_ = next;
  session_timer_.expires_at(*next);
  session_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_) return;
    armed_for_.reset();
    table_.tick(mqttsn::clock::now(), out_);
    execute();
  });
}

// Sessions from the store: each is restored as it was (active or asleep) at its last address and
// asks the broker for its session again (the actions are executed by start(), once the upstream
// runs); a kept session that was offline (disconnected or lost) stays so, asking nothing, until its
// client CONNECTs again. The upstream learns the kept sessions' subscriptions now, so broker
// messages for an offline one are buffered as before the restart. What cannot be restored is
// reported once and removed from the store.
void gateway::restore_sessions() {
  if (store_ == nullptr) return;
  const auto started = std::chrono::steady_clock::now();
  session_store::loaded loaded;
  try {
    loaded = store_->load();
  } catch (const std::exception& e) {
    spdlog::error("persistence {}: cannot read the sessions: {}; starting without them", store_->path(), e.what());
    return;
  }
  std::size_t restored = 0, asleep = 0, offline = 0, messages = 0, topics = 0, subscriptions = 0;
  std::vector<session_store::change> dropped;
  for (const auto& id : loaded.damaged) dropped.emplace_back(id, std::nullopt);  // reported below, once
  const auto now = mqttsn::clock::now();
  for (const auto& st : loaded.sessions) {
    if (!table_.restore(st.snapshot, st.endpoint, now, out_)) {
      loaded.problems.push_back("client '" + st.snapshot.client_id +
                                "': not restorable (table full, refused by the clients file, or inconsistent)");
      dropped.emplace_back(st.snapshot.client_id, std::nullopt);
      continue;
    }
    if (!st.snapshot.clean_session && !st.snapshot.subscriptions.empty()) {
      std::vector<std::pair<std::string, mqttsn::qos>> filters;
      filters.reserve(st.snapshot.subscriptions.size());
      for (const auto& sub : st.snapshot.subscriptions) filters.emplace_back(sub.filter, sub.q);
      up_.restore_subscriptions(st.snapshot.client_id, filters);
    }
    ++restored;
    asleep += st.snapshot.asleep ? 1 : 0;
    offline += st.snapshot.offline ? 1 : 0;
    messages += st.snapshot.queue.size();
    topics += st.snapshot.topics.size();
    subscriptions += st.snapshot.subscriptions.size();
  }
  for (const auto& p : loaded.problems) spdlog::warn("persistence {}: {}", store_->path(), p);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  spdlog::info(
      "persistence {}: restored {} session(s) ({} asleep, {} offline) with {} buffered message(s), {} topic registration(s), {} "
      "subscription(s) in {} ms; {} not restorable{}",
      store_->path(), restored, asleep, offline, messages, topics, subscriptions, ms.count(), loaded.problems.size(),
      loaded.problems.empty() ? "" : " (removed from the store)");
  table_.take_changed();  // what was just read needs no writing back
  try {
    store_->write(dropped);
  } catch (const std::exception& e) {
    spdlog::error("persistence {}: {}", store_->path(), e.what());
  }
}

bool gateway::flush() {
  if (store_ == nullptr) return true;
  const auto ids = table_.take_changed();
  if (ids.empty()) return true;
  std::vector<session_store::change> changes;
  changes.reserve(ids.size());
  for (const auto& id : ids) {
    const auto* s = table_.find(id);
    auto snap = s != nullptr ? s->snapshot() : std::nullopt;
    if (!snap) {
      changes.emplace_back(id, std::nullopt);  // ended, or not restorable in its current state
      continue;
    }
    const auto* ep = table_.endpoint_of(id);
    changes.emplace_back(id, session_store::stored{std::move(*snap), ep != nullptr ? *ep : std::string()});
  }
  try {
    store_->write(changes);
    ++flushes_;
    return true;
  } catch (const std::exception& e) {
    ++flush_failures_;
    spdlog::error("persistence {}: writing {} session(s) failed: {}", store_->path(), changes.size(), e.what());
    for (const auto& [id, st] : changes) table_.mark_changed(id);  // try again at the next flush
    return false;
  }
}

void gateway::arm_flush_timer() {
  if (store_ == nullptr) return;
  flush_timer_.expires_after(cfg_.persistence_flush_interval);
  flush_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_) return;
    flush();
    arm_flush_timer();
  });
}

void gateway::arm_stats_timer() {
  if (cfg_.stats_interval.count() <= 0) return;
  stats_timer_.expires_after(cfg_.stats_interval);
  stats_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_) return;
    log_stats();
    arm_stats_timer();
  });
}

void gateway::arm_advertise_timer() {
  if (cfg_.advertise_interval.count() <= 0) return;
  advertise_timer_.expires_after(cfg_.advertise_interval);
  advertise_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_) return;
    // A gateway advertises only while it can reach its broker (spec §6.1).
    if (broker_up_) {
      const auto seconds = std::min<std::int64_t>(cfg_.advertise_interval.count(), 65535);
      broadcast(mqttsn::encode(mqttsn::advertise{cfg_.gateway_id, static_cast<std::uint16_t>(seconds)}));
    }
    arm_advertise_timer();
  });
}

std::string gateway::stats_line() const {
  const auto& c = stats_;
  std::uint64_t decode_errors = 0;
  for (auto n : c.decode_errors) decode_errors += n;
  std::ostringstream s;
  s << "clients=" << table_.size() << " frames_in=" << c.frames_in << " frames_out=" << c.frames_out
    << " malformed=" << decode_errors;
  for (std::size_t i = 0; i < c.decode_errors.size(); ++i) {
    if (c.decode_errors[i] != 0) s << " malformed_" << mqttsn::to_string(static_cast<mqttsn::decode_error>(i)) << '=' << c.decode_errors[i];
  }
  s << " encapsulated_in=" << encapsulated_in_ << " unexpected=" << c.unexpected_messages
    << " unknown_sender=" << c.unknown_sender << " too_large=" << c.frames_too_large << " connects=" << c.connects
    << " connects_rejected=" << c.connects_rejected << " disconnects=" << c.disconnects << " sleeps=" << c.sleeps
    << " wakeups=" << c.wakeups << " lost_keep_alive=" << c.lost_keep_alive << " lost_sleep=" << c.lost_sleep_expired
    << " lost_retries=" << c.lost_retries << " wills=" << c.wills_published << " takeovers=" << c.takeovers
    << " sessions_expired=" << c.sessions_expired
    << " admission_refused=" << c.admission_refused << " qos_m1_refused=" << c.qos_m1_refused
    << " publishes_denied=" << c.publishes_denied << " subscribes_denied=" << c.subscribes_denied
    << " publishes_in=" << c.publishes_from_clients << " qos_m1=" << c.qos_m1_published
    << " qos_m1_dropped=" << c.qos_m1_dropped << " qos0_dropped_broker_down=" << c.qos0_dropped_broker_down
    << " invalid_topic_id=" << c.invalid_topic_id << " duplicates=" << c.duplicate_publishes
    << " unknown_pubrel=" << c.unknown_pubrel << " publishes_out=" << c.publishes_to_clients
    << " registers=" << c.registers_sent << " registrations_refused=" << c.registrations_refused
    << " retransmissions=" << c.retransmissions << " buffered=" << c.buffered << " dropped_qos0=" << c.dropped_qos0
    << " dropped_qos12=" << c.dropped_qos12 << " undeliverable=" << c.dropped_undeliverable
    << " congestion=" << c.congestion << " store_flushes=" << flushes_ << " store_failures=" << flush_failures_
    << " broker=" << (broker_up_ ? "up" : "down");
  // The broker side's counters (the shared connection's in aggregating mode): "upstream_acks=7".
  {
    std::istringstream fields(up_.counters());
    for (std::string field; fields >> field;) s << " upstream_" << field;
  }
  // Each transport's own counters (datagrams, oversize drops, send errors), keys prefixed with its
  // name: "udp0_oversize_dropped=3".
  for (const auto& t : transports_) {
    std::string name = t->prefix();
    if (!name.empty() && name.back() == '/') name.pop_back();
    std::istringstream fields(t->counters());
    for (std::string field; fields >> field;) s << ' ' << name << '_' << field;
  }
  return s.str();
}

void gateway::log_stats() const { spdlog::info("stats: {}", stats_line()); }

}  // namespace gateway
