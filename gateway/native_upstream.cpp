#include "gateway/native_upstream.hpp"

#include <algorithm>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <variant>

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "mqttsn/overloaded.hpp"
#include "mqttsn/topics.hpp"

namespace gateway {

namespace m = mqttsn::mqtt311;
using steady = std::chrono::steady_clock;

namespace {

std::string connack_reason(int rc) {
  switch (rc) {
    case 1: return "unacceptable protocol version";
    case 2: return "identifier rejected";
    case 3: return "server unavailable";
    case 4: return "bad user name or password";
    case 5: return "not authorized";
    default: return "CONNACK return code " + std::to_string(rc);
  }
}

std::uint8_t wire_qos(mqttsn::qos q) {
  switch (q) {
    case mqttsn::qos::at_least_once: return 1;
    case mqttsn::qos::exactly_once: return 2;
    case mqttsn::qos::at_most_once:
    case mqttsn::qos::minus_one: return 0;  // QoS -1 goes upstream at QoS 0
  }
  return 0;
}

mqttsn::qos from_wire_qos(std::uint8_t q) {
  switch (q) {
    case 1: return mqttsn::qos::at_least_once;
    case 2: return mqttsn::qos::exactly_once;
    default: return mqttsn::qos::at_most_once;
  }
}

broker_address parse_or_throw(const std::string& uri) {
  auto a = parse_broker_uri(uri);
  if (!a)
    throw std::invalid_argument("broker '" + uri +
                                "': not a tcp://HOST:PORT or ssl://HOST:PORT URI");
  return *a;
}

}  // namespace

native_upstream::native_upstream(boost::asio::io_context& io, paho_settings settings)
    : io_(io),
      settings_(std::move(settings)),
      address_(parse_or_throw(settings_.broker)),
      retry_timer_(io),
      rng_(std::random_device{}()),
      anchor_(std::make_shared<anchor>(anchor{this})) {
  if (settings_.reconnect_min.count() < 1) settings_.reconnect_min = std::chrono::milliseconds(1);
  settings_.reconnect_max = std::max(settings_.reconnect_max, settings_.reconnect_min);
  settings_.reconnect_jitter = std::clamp(settings_.reconnect_jitter, 0.0, 0.9);
  if (settings_.connect_timeout.count() < 1)
    settings_.connect_timeout = std::chrono::milliseconds(1'000);
  backoff_ = settings_.reconnect_min;
  if (!mqttsn::is_valid_topic_name(settings_.status_topic)) {
    throw std::invalid_argument("status topic '" + settings_.status_topic +
                                "': not a valid MQTT topic name");
  }
  if (address_.tls) tls_ = make_tls_context(settings_.tls);
}

native_upstream::~native_upstream() {
  stopped_ = true;
  anchor_.reset();
  retry_timer_.cancel();
  if (conn_) conn_->detach();  // without stop(): no DISCONNECT, the broker publishes the will
}

// ---- the upstream interface ----

void native_upstream::start(event_handler on_event) {
  on_event_ = std::move(on_event);
  if (stopped_ || started_) return;
  started_ = true;
  spdlog::debug(
      "upstream: gateway connection to {} as '{}' (native MQTT client), status topic '{}'",
      settings_.broker, settings_.gateway_client_id, settings_.status_topic);
  attempt();
}

void native_upstream::stop(std::chrono::milliseconds timeout) {
  if (stopped_) return;
  stopped_ = true;  // no event, no reconnect from here on
  retry_timer_.cancel();
  const auto deadline = steady::now() + timeout;
  if (up()) {
    auto conn = conn_;
    publish_status("offline");
    conn->flush();
    io_.restart();
    const auto half = steady::now() + timeout / 2;
    while (!offline_acked_ && up() && steady::now() < half) {
      if (io_.run_one_until(half) == 0) break;
    }
    if (offline_acked_) {
      spdlog::debug("upstream: status '{}' is offline", settings_.status_topic);
    } else if (!up()) {
      spdlog::warn("upstream: status 'offline' not acknowledged: the connection was lost");
    } else {
      spdlog::warn("upstream: status 'offline' not acknowledged within {} ms",
                   (timeout / 2).count());
    }
    if (up()) {
      conn->close_gracefully();  // DISCONNECT: the broker drops the will
      while (!conn->closed() && steady::now() < deadline) {
        if (io_.run_one_until(deadline) == 0) break;
      }
    }
    conn->detach();
  } else if (conn_) {
    conn_->detach();
  }
  conn_.reset();
  spdlog::debug("upstream: stopped ({} connects, {} losses, {} publishes)", stats_.connects,
                stats_.connection_losses, stats_.publishes);
}

void native_upstream::connect(const std::string& client_id, const mqttsn::upstream_connect&) {
  if (stopped_) return;
  if (client_id.empty()) {
    spdlog::warn(
        "upstream: connect with an empty client id ignored (reserved for the gateway connection)");
    return;
  }
  ++stats_.refusals;
  const std::string reason = "per-client broker connections need upstream-client paho";
  spdlog::info("upstream: client '{}' refused: {}", client_id, reason);
  post_event(client_id, mqttsn::upstream_refused{reason});
}

void native_upstream::publish(const std::string& client_id, const mqttsn::upstream_publish& p) {
  if (stopped_) return;
  if (!client_id.empty()) {
    if (p.ref == 0) ++stats_.publishes_dropped;
    spdlog::debug("upstream: publish for client '{}' without a connection dropped", client_id);
    return;
  }
  const auto q = wire_qos(p.q);
  if (q == 0) {
    // Fire and forget; bounded by what waits to be written.
    if (!up() ||
        conn_->backlog() >= static_cast<std::size_t>(std::max(settings_.max_queued_publishes, 1))) {
      ++stats_.publishes_dropped;
      spdlog::debug("upstream: '{}' dropped ({})", p.topic,
                    up() ? "write queue full" : "not connected");
      return;
    }
    m::append_publish(conn_->queue(), p.topic, p.payload, 0, p.retain, false, 0);
    conn_->note_queued();
    conn_->flush();
    ++stats_.publishes;
    if (p.ref != 0) post_event(std::string(gateway_connection), mqttsn::upstream_published{p.ref});
    return;
  }
  if (p.ref == 0 && !up()) {  // a will at QoS 1/2: fire and forget, but acknowledged by the broker
    ++stats_.publishes_dropped;
    spdlog::debug("upstream: '{}' dropped, not connected", p.topic);
    return;
  }
  add_request(request{request::kind::publish, request::stage::unsent, p.ref, p.topic, p.payload, q,
                      p.retain, 0});
}

void native_upstream::subscribe(const std::string& client_id, const mqttsn::upstream_subscribe& s) {
  if (stopped_) return;
  if (!client_id.empty()) {
    spdlog::debug("upstream: subscribe for client '{}' without a connection dropped", client_id);
    return;
  }
  add_request(request{request::kind::subscribe,
                      request::stage::unsent,
                      s.ref,
                      s.filter,
                      {},
                      wire_qos(s.q),
                      false,
                      0});
}

void native_upstream::unsubscribe(const std::string& client_id,
                                  const mqttsn::upstream_unsubscribe& u) {
  if (stopped_) return;
  if (!client_id.empty()) {
    spdlog::debug("upstream: unsubscribe for client '{}' without a connection dropped", client_id);
    return;
  }
  add_request(request{
      request::kind::unsubscribe, request::stage::unsent, u.ref, u.filter, {}, 0, false, 0});
}

void native_upstream::disconnect(const std::string& client_id) {
  if (client_id.empty()) {
    spdlog::debug(
        "upstream: disconnect of the gateway connection ignored (it stays up until stop())");
  }
}

bool native_upstream::connected(const std::string& client_id) const {
  return client_id.empty() && up();
}

// ---- connection life ----

void native_upstream::attempt() {
  if (stopped_) return;
  m::connect_packet c;
  c.client_id = settings_.gateway_client_id;
  c.clean_session = settings_.gateway_clean_session;
  c.keep_alive = static_cast<std::uint16_t>(
      std::clamp<std::int64_t>(settings_.gateway_keep_alive.count(), 0, 65535));
  const std::string_view offline = "offline";
  c.will =
      m::will_message{settings_.status_topic, m::bytes(offline.begin(), offline.end()), 1, true};
  if (settings_.login) {
    c.username = settings_.login->username;
    if (!settings_.login->password.empty()) {
      c.password = m::bytes(settings_.login->password.begin(), settings_.login->password.end());
    }
  }
  conn_ = std::make_shared<mqtt_connection>(io_, address_, tls_, settings_.tls.insecure,
                                            std::move(c), settings_.connect_timeout,
                                            static_cast<mqtt_connection::listener*>(this));
  conn_->open();
}

void native_upstream::schedule_retry() {
  if (stopped_) return;
  const auto base = backoff_;
  backoff_ = std::min(base * 2, settings_.reconnect_max);
  std::uniform_real_distribution<double> scale(1.0 - settings_.reconnect_jitter,
                                               1.0 + settings_.reconnect_jitter);
  const auto delay = std::chrono::milliseconds(std::max<std::int64_t>(
      1, static_cast<std::int64_t>(static_cast<double>(base.count()) * scale(rng_))));
  spdlog::debug("upstream: gateway connection retries in {} ms", delay.count());
  retry_timer_.expires_after(delay);
  retry_timer_.async_wait(
      [w = std::weak_ptr<anchor>(anchor_)](const boost::system::error_code& ec) {
        if (ec) return;
        if (auto a = w.lock(); a && !a->self->conn_) a->self->attempt();
      });
}

void native_upstream::on_open(bool session_present) {
  const bool again = established_;
  established_ = true;
  backoff_ = settings_.reconnect_min;
  ++stats_.connects;
  if (again) ++stats_.reconnects;
  note_broker_up();
  spdlog::debug("upstream: gateway connection {}connected (session present: {})", again ? "re" : "",
                session_present);
  resend_after_reconnect(session_present);
  publish_status("online");
  conn_->flush();
  emit(std::string(gateway_connection), mqttsn::upstream_connected{session_present});
}

void native_upstream::on_refused(std::uint8_t code) {
  conn_.reset();
  ++stats_.refusals;
  spdlog::info("upstream: broker refused gateway connection: {}", connack_reason(code));
  // Credentials or ACLs may be fixed at the broker: keep trying, slowly.
  backoff_ = settings_.reconnect_max;
  schedule_retry();
}

void native_upstream::on_closed(const std::string& reason, bool was_open,
                                const std::string& tls_verify) {
  conn_.reset();
  waiting_.clear();  // requests without a packet id go at the next connection, in order
  if (was_open) {
    ++stats_.connection_losses;
    note_broker_down("connection lost: " + reason);
    spdlog::debug("upstream: gateway connection lost: {}", reason);
    schedule_retry();
    emit(std::string(gateway_connection), mqttsn::upstream_lost{});
    return;
  }
  ++stats_.connect_failures;
  if (!tls_verify.empty() && broker_ != broker_state::down) {
    spdlog::error(
        "upstream: TLS to broker {} fails: the broker's certificate was refused: {} (check "
        "--broker-ca-file/"
        "--broker-ca-dir, and that the certificate names the host of --broker)",
        settings_.broker, tls_verify);
  }
  note_broker_down("cannot connect: " + reason);
  spdlog::debug("upstream: gateway connection could not connect: {}", reason);
  schedule_retry();
}

// ---- requests ----

void native_upstream::add_request(request r) {
  const auto id = next_request_++;
  auto& req = requests_.emplace(id, std::move(r)).first->second;
  if (!up()) return;  // kept until the next connection
  if (!waiting_.empty() || !assign_packet_id(id, req)) {
    waiting_.push_back(id);
    return;
  }
  write(req, false);
  conn_->flush();
}

bool native_upstream::assign_packet_id(std::uint64_t id, request& r) {
  if (by_packet_id_.size() >= 65535) return false;
  do {
    ++last_packet_id_;
  } while (last_packet_id_ == 0 || by_packet_id_.contains(last_packet_id_));
  r.packet_id = last_packet_id_;
  by_packet_id_.emplace(r.packet_id, id);
  return true;
}

void native_upstream::write(request& r, bool dup) {
  auto& out = conn_->queue();
  switch (r.what) {
    case request::kind::publish:
      if (r.at == request::stage::released) {
        m::append_ack(out, m::packet_type::pubrel, r.packet_id);
      } else {
        m::append_publish(out, r.topic, r.payload, r.q, r.retain, dup, r.packet_id);
        ++stats_.publishes;
        r.at = request::stage::sent;
      }
      break;
    case request::kind::subscribe:
      m::encode(m::subscribe_packet{r.packet_id, {m::subscription{r.topic, r.q}}}, out);
      r.at = request::stage::sent;
      break;
    case request::kind::unsubscribe:
      m::encode(m::unsubscribe_packet{r.packet_id, {r.topic}}, out);
      r.at = request::stage::sent;
      break;
  }
  conn_->note_queued();
}

void native_upstream::send_waiting() {
  bool wrote = false;
  while (!waiting_.empty() && up()) {
    auto it = requests_.find(waiting_.front());
    if (it == requests_.end()) {
      waiting_.pop_front();
      continue;
    }
    if (!assign_packet_id(it->first, it->second)) break;
    waiting_.pop_front();
    write(it->second, false);
    wrote = true;
  }
  if (wrote) conn_->flush();
}

void native_upstream::resend_after_reconnect(bool session_present) {
  waiting_.clear();
  if (!session_present) {
    // A new session at the broker: it holds none of our packet ids, and the session (or
    // aggregating_upstream) resends every request it still holds.
    if (!requests_.empty())
      spdlog::debug("upstream: no session at the broker: {} requests dropped", requests_.size());
    requests_.clear();
    by_packet_id_.clear();
    inbound_qos2_.clear();
    return;
  }
  std::size_t resent = 0;
  for (auto& [id, r] : requests_) {
    if (r.packet_id != 0) {
      write(r, r.what == request::kind::publish);  // same id; DUP on a PUBLISH, PUBREL if released
      ++resent;
    } else if (!waiting_.empty() || !assign_packet_id(id, r)) {
      waiting_.push_back(id);
    } else {
      write(r, false);
    }
  }
  if (resent > 0)
    spdlog::debug("upstream: {} requests in flight sent again (session present)", resent);
}

void native_upstream::publish_status(const char* text) {
  const std::string_view t = text;
  const auto id = next_request_;
  add_request(request{request::kind::publish, request::stage::unsent, 0, settings_.status_topic,
                      mqttsn::bytes(t.begin(), t.end()), 1, true, 0});
  if (t == "offline") {
    auto it = requests_.find(id);
    offline_packet_id_ = it != requests_.end() ? it->second.packet_id : 0;
  }
}

// ---- broker packets ----

void native_upstream::on_packet(m::packet&& p) {
  std::visit(mqttsn::overloaded{
                 [&](m::publish_packet& x) { on_publish(std::move(x)); },
                 [&](const m::puback_packet& a) {
                   answer(a.packet_id, request::kind::publish, std::nullopt);
                 },
                 [&](const m::pubrec_packet& a) {
                   auto it = by_packet_id_.find(a.packet_id);
                   if (it == by_packet_id_.end()) return;
                   auto& r = requests_.at(it->second);
                   if (r.what != request::kind::publish || r.q != 2) return;
                   r.at = request::stage::released;
                   m::append_ack(conn_->queue(), m::packet_type::pubrel, a.packet_id);
                   conn_->note_queued();
                   conn_->flush();
                 },
                 [&](const m::pubcomp_packet& a) {
                   answer(a.packet_id, request::kind::publish, std::nullopt);
                 },
                 [&](const m::suback_packet& a) {
                   answer(a.packet_id, request::kind::subscribe, a.return_codes.front());
                 },
                 [&](const m::unsuback_packet& a) {
                   answer(a.packet_id, request::kind::unsubscribe, std::nullopt);
                 },
                 [&](const m::pubrel_packet& a) {
                   inbound_qos2_.erase(a.packet_id);
                   m::append_ack(conn_->queue(), m::packet_type::pubcomp, a.packet_id);
                   conn_->note_queued();
                   conn_->flush();
                 },
                 [&](const auto&) {
                   spdlog::debug("upstream: unexpected packet from the broker ignored");
                 },
             },
             p);
}

void native_upstream::on_publish(m::publish_packet&& p) {
  const auto id = p.packet_id;
  const auto q = p.qos;
  bool deliver = true;
  // QoS 2: a resend (DUP) of an id not yet released is the same message: delivered once. A PUBLISH
  // without DUP under such an id is a new message (MQTT 3.1.1 §3.3.1.1: every re-delivery carries
  // DUP): the broker lost its side of the old one, e.g. Mosquitto killed before it saved the
  // PUBLISH it had sent us, and reused the id after the restart. Withholding it would answer
  // PUBREC for a message nobody gets (seen in the outage soak, docs/robustness.md).
  if (q == 2) deliver = inbound_qos2_.insert(id).second || !p.dup;
  if (deliver) {
    ++stats_.messages;
    spdlog::debug("upstream: gateway connection <- '{}' ({} bytes, QoS {}{})", p.topic,
                  p.payload.size(), q, p.retain ? ", retained" : "");
    emit(std::string(gateway_connection),
         mqttsn::upstream_message{std::move(p.topic), std::move(p.payload), from_wire_qos(q),
                                  p.retain});
  }
  if (q == 0 || !conn_) return;  // conn_ is gone if the handler stopped everything
  m::append_ack(conn_->queue(), q == 1 ? m::packet_type::puback : m::packet_type::pubrec, id);
  conn_->note_queued();
  conn_->flush();
}

void native_upstream::answer(std::uint16_t packet_id, request::kind what,
                             std::optional<std::uint8_t> granted) {
  auto it = by_packet_id_.find(packet_id);
  if (it == by_packet_id_.end()) return;  // answered before, or dropped with its session
  auto r = requests_.find(it->second);
  if (r == requests_.end() || r->second.what != what) return;
  const auto ref = r->second.ref;
  by_packet_id_.erase(it);
  requests_.erase(r);
  if (packet_id == offline_packet_id_ && offline_packet_id_ != 0) offline_acked_ = true;
  if (what == request::kind::publish) ++stats_.acks;
  if (ref != 0) {
    switch (what) {
      case request::kind::publish:
        emit(std::string(gateway_connection), mqttsn::upstream_published{ref});
        break;
      case request::kind::subscribe: {
        std::optional<mqttsn::qos> q;
        if (granted && *granted <= 2) q = from_wire_qos(*granted);
        if (!q) spdlog::debug("upstream: broker refused a subscription of the gateway connection");
        emit(std::string(gateway_connection), mqttsn::upstream_subscribed{ref, q});
        break;
      }
      case request::kind::unsubscribe:
        emit(std::string(gateway_connection), mqttsn::upstream_unsubscribed{ref});
        break;
    }
  }
  if (!waiting_.empty()) send_waiting();
}

// ---- events and logs ----

void native_upstream::post_event(const std::string& client_id, mqttsn::upstream_event event) {
  boost::asio::post(
      io_, [w = std::weak_ptr<anchor>(anchor_), client_id, event = std::move(event)]() mutable {
        if (auto a = w.lock()) a->self->emit(client_id, std::move(event));
      });
}

void native_upstream::emit(const std::string& client_id, mqttsn::upstream_event event) {
  if (on_event_ && !stopped_) on_event_(client_id, std::move(event));
}

void native_upstream::note_broker_up() {
  if (broker_ == broker_state::up) return;
  if (broker_ == broker_state::down) {
    spdlog::info("upstream: broker {} is back", settings_.broker);
  } else {
    spdlog::info("upstream: connected to broker {}", settings_.broker);
  }
  broker_ = broker_state::up;
}

void native_upstream::note_broker_down(const std::string& why) {
  if (broker_ == broker_state::down) return;
  spdlog::info("upstream: broker {} is {} ({}); reconnecting with backoff", settings_.broker,
               broker_ == broker_state::up ? "down" : "unreachable", why);
  broker_ = broker_state::down;
}

}  // namespace gateway
