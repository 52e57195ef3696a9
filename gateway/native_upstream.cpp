#include "gateway/native_upstream.hpp"

#include <algorithm>
#include <functional>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <variant>

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "gateway/extension.hpp"
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

std::string who(const std::string& client_id) {
  return client_id.empty() ? std::string("gateway connection") : "client '" + client_id + "'";
}

broker_address parse_or_throw(const std::string& uri) {
  auto a = parse_broker_uri(uri);
  if (!a)
    throw std::invalid_argument("broker '" + uri +
                                "': not a tcp://HOST:PORT or ssl://HOST:PORT URI");
  return *a;
}

}  // namespace

native_upstream::link::link(native_upstream& o, std::string id, bool gw)
    : owner(o),
      client_id(std::move(id)),
      gateway_level(gw),
      retry_timer(o.io_),
      backoff(o.settings_.reconnect_min) {}

void native_upstream::link::on_open(bool session_present) {
  auto keep = shared_from_this();
  owner.on_open(*this, session_present);
}
void native_upstream::link::on_refused(std::uint8_t code) {
  owner.on_refused(shared_from_this(), code);
}
void native_upstream::link::on_packet(m::packet&& p) {
  auto keep = shared_from_this();
  owner.on_packet(*this, std::move(p));
}
void native_upstream::link::on_closed(const std::string& reason, bool was_open,
                                      const std::string& tls_verify, bool host_limit) {
  auto keep = shared_from_this();
  owner.on_closed(*this, reason, was_open, tls_verify, host_limit);
}

native_upstream::native_upstream(boost::asio::io_context& io, paho_settings settings)
    : io_(io),
      settings_(std::move(settings)),
      address_(parse_or_throw(settings_.broker)),
      rng_(std::random_device{}()),
      anchor_(std::make_shared<anchor>(anchor{this})) {
  if (settings_.reconnect_min.count() < 1) settings_.reconnect_min = std::chrono::milliseconds(1);
  settings_.reconnect_max = std::max(settings_.reconnect_max, settings_.reconnect_min);
  settings_.reconnect_jitter = std::clamp(settings_.reconnect_jitter, 0.0, 0.9);
  if (settings_.connect_timeout.count() < 1)
    settings_.connect_timeout = std::chrono::milliseconds(1'000);
  if (!mqttsn::is_valid_topic_name(settings_.status_topic)) {
    throw std::invalid_argument("status topic '" + settings_.status_topic +
                                "': not a valid MQTT topic name");
  }
  if (address_.tls) tls_ = make_tls_client(settings_.tls);
}

native_upstream::~native_upstream() {
  stopped_ = true;
  anchor_.reset();
  for (auto& [id, l] : links_) {
    l->retry_timer.cancel();
    if (l->conn) l->conn->detach();  // without stop(): no DISCONNECT, the broker publishes wills
  }
  links_.clear();
}

// ---- the upstream interface ----

void native_upstream::start(event_handler on_event) {
  on_event_ = std::move(on_event);
  if (stopped_ || started_) return;
  started_ = true;
  spdlog::info("upstream: gateway connection to {} as '{}' (native MQTT client), status topic '{}'",
               settings_.broker, settings_.gateway_client_id, settings_.status_topic);
  auto l = std::make_shared<link>(*this, std::string(gateway_connection), true);
  links_.emplace(l->client_id, l);
  attempt(*l);
}

void native_upstream::stop(std::chrono::milliseconds timeout) {
  if (stopped_) return;
  stopped_ = true;  // no event, no reconnect from here on
  const auto deadline = steady::now() + timeout;
  io_.restart();
  for (auto& [id, l] : links_) l->retry_timer.cancel();
  // Per-client connections: DISCONNECT (the broker drops their wills).
  for (auto& [id, l] : links_) {
    if (!l->gateway_level) close_link(*l);
  }
  auto gw = links_.find(gateway_connection);
  if (gw != links_.end() && gw->second->up()) {
    auto& l = *gw->second;
    auto conn = l.conn;
    publish_status(l, "offline");
    conn->flush();
    const auto half = steady::now() + timeout / 2;
    while (!offline_acked_ && l.up() && steady::now() < half) {
      if (io_.run_one_until(half) == 0) break;
    }
    if (offline_acked_) {
      spdlog::debug("upstream: status '{}' is offline", settings_.status_topic);
    } else if (!l.up()) {
      spdlog::warn("upstream: status 'offline' not acknowledged: the connection was lost");
    } else {
      spdlog::warn("upstream: status 'offline' not acknowledged within {} ms",
                   (timeout / 2).count());
    }
    close_link(l);
  } else if (gw != links_.end()) {
    close_link(*gw->second);
  }
  const auto draining = [this] {
    return std::any_of(closing_.begin(), closing_.end(), [](const auto& w) {
      auto c = w.lock();
      return c && !c->closed();
    });
  };
  while (draining() && steady::now() < deadline) {
    if (io_.run_one_until(deadline) == 0) break;
  }
  for (auto& w : closing_) {
    if (auto c = w.lock()) c->detach();
  }
  closing_.clear();
  links_.clear();
  spdlog::debug("upstream: stopped ({} connects, {} losses, {} publishes)", stats_.connects,
                stats_.connection_losses, stats_.publishes);
}

void native_upstream::connect(const std::string& client_id, const mqttsn::upstream_connect& c) {
  if (stopped_) return;
  if (client_id.empty()) {
    spdlog::warn(
        "upstream: connect with an empty client id ignored (reserved for the gateway connection)");
    return;
  }
  if (client_id == settings_.gateway_client_id) {
    // Two connections with one client id would take each other over at the broker, forever.
    ++stats_.refusals;
    const std::string reason = "client id is the gateway's own upstream client id";
    spdlog::info("upstream: {} refused: {}", who(client_id), reason);
    post_event(client_id, mqttsn::upstream_refused{reason});
    return;
  }
  auto l = std::make_shared<link>(*this, client_id, false);
  l->params = c;
  if (auto it = links_.find(client_id); it != links_.end()) {
    auto old = it->second;
    links_.erase(it);
    old->retry_timer.cancel();
    if (old->conn) {
      spdlog::debug("upstream: {} connects again: closing its previous connection first",
                    who(client_id));
      // The DISCONNECT must reach the broker before the new CONNECT, or the broker would see a
      // takeover and publish the old will. The timer is the fallback should it never be written.
      l->after_replace = true;
      // Whichever link holds the id when the DISCONNECT is written (connect() may come again).
      close_link(*old, [a = std::weak_ptr<anchor>(anchor_), client_id] {
        auto self = a.lock();
        if (!self) return;
        auto found = self->self->links_.find(client_id);
        if (found == self->self->links_.end() || !found->second->after_replace) return;
        auto x = found->second;
        x->after_replace = false;
        x->retry_timer.cancel();
        x->owner.attempt(*x);
      });
    } else if (old->after_replace) {
      l->after_replace = true;  // the DISCONNECT before it is still being written
    }
  }
  links_.emplace(client_id, l);
  if (l->after_replace) {
    schedule_after(*l, settings_.connect_timeout);
    return;
  }
  attempt(*l);
}

void native_upstream::publish(const std::string& client_id, const mqttsn::upstream_publish& p) {
  if (stopped_) return;
  auto* l = find(client_id);
  if (l == nullptr) {
    if (p.ref == 0) ++stats_.publishes_dropped;
    spdlog::debug("upstream: publish for {} without a connection dropped", who(client_id));
    return;
  }
  const auto q = wire_qos(p.q);
  if (q == 0) {
    // Fire and forget; bounded by what waits to be written.
    if (!l->up() || l->conn->backlog() >=
                        static_cast<std::size_t>(std::max(settings_.max_queued_publishes, 1))) {
      ++stats_.publishes_dropped;
      spdlog::debug("upstream: '{}' dropped ({})", p.topic,
                    l->up() ? "write queue full" : "not connected");
      return;
    }
    m::append_publish(l->conn->queue(), p.topic, p.payload, 0, p.retain, false, 0);
    l->conn->note_queued();
    l->conn->flush();
    ++stats_.publishes;
    if (p.ref != 0) post_event(client_id, mqttsn::upstream_published{p.ref});
    return;
  }
  if (p.ref == 0 && !l->up()) {  // a will at QoS 1/2: fire and forget, but acknowledged
    ++stats_.publishes_dropped;
    spdlog::debug("upstream: '{}' dropped, not connected", p.topic);
    return;
  }
  add_request(*l, request{request::kind::publish, request::stage::unsent, p.ref, p.topic, p.payload,
                          q, p.retain, 0});
}

void native_upstream::subscribe(const std::string& client_id, const mqttsn::upstream_subscribe& s) {
  if (stopped_) return;
  auto* l = find(client_id);
  if (l == nullptr) {
    spdlog::debug("upstream: subscribe for {} without a connection dropped", who(client_id));
    return;
  }
  add_request(*l, request{request::kind::subscribe,
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
  auto* l = find(client_id);
  if (l == nullptr) {
    spdlog::debug("upstream: unsubscribe for {} without a connection dropped", who(client_id));
    return;
  }
  add_request(
      *l,
      request{
          request::kind::unsubscribe, request::stage::unsent, u.ref, u.filter, {}, 0, false, 0});
}

void native_upstream::disconnect(const std::string& client_id) {
  if (client_id.empty()) {
    spdlog::debug(
        "upstream: disconnect of the gateway connection ignored (it stays up until stop())");
    return;
  }
  auto it = links_.find(client_id);
  if (it == links_.end()) return;
  auto l = it->second;
  links_.erase(it);
  l->retry_timer.cancel();
  l->after_replace = false;
  if (!l->requests.empty())
    spdlog::debug("upstream: {} disconnects: {} requests in flight dropped", who(client_id),
                  l->requests.size());
  l->requests.clear();
  close_link(*l);
}

bool native_upstream::connected(const std::string& client_id) const {
  const auto* l = find(client_id);
  return l != nullptr && l->up();
}

std::size_t native_upstream::in_flight() const noexcept {
  const auto* l = find(std::string(gateway_connection));
  return l != nullptr ? l->requests.size() : 0;
}

std::size_t native_upstream::inbound_qos2() const noexcept {
  const auto* l = find(std::string(gateway_connection));
  return l != nullptr ? l->inbound_qos2.size() : 0;
}

std::size_t native_upstream::held(const std::string& client_id) const {
  const auto* l = find(client_id);
  return l != nullptr ? l->held.size() : 0;
}

native_upstream::link* native_upstream::find(const std::string& client_id) const {
  auto it = links_.find(client_id);
  return it != links_.end() ? it->second.get() : nullptr;
}

// ---- connection life ----

void native_upstream::attempt(link& l) {
  if (stopped_ || l.conn) return;
  m::connect_packet c;
  const broker_login* login = settings_.login ? &*settings_.login : nullptr;
  if (l.gateway_level) {
    c.client_id = settings_.gateway_client_id;
    c.clean_session = settings_.gateway_clean_session;
    c.keep_alive = static_cast<std::uint16_t>(
        std::clamp<std::int64_t>(settings_.gateway_keep_alive.count(), 0, 65535));
    const std::string_view offline = "offline";
    c.will =
        m::will_message{settings_.status_topic, m::bytes(offline.begin(), offline.end()), 1, true};
  } else {
    c.client_id = l.client_id;
    c.clean_session = l.params.clean_session;
    c.keep_alive = l.params.keep_alive;
    if (l.params.will) {
      const auto& w = *l.params.will;
      c.will = m::will_message{w.topic, w.payload, wire_qos(w.q), w.retain};
    }
    if (auto it = settings_.client_logins.find(l.client_id); it != settings_.client_logins.end())
      login = &it->second;
  }
  if (login != nullptr) {
    c.username = login->username;
    if (!login->password.empty()) {
      c.password = m::bytes(login->password.begin(), login->password.end());
    }
  }
  l.conn = std::make_shared<mqtt_connection>(io_, address_, tls_, std::move(c), settings_.connect_timeout,
                                             static_cast<mqtt_connection::listener*>(&l));
  l.conn->open();
}

void native_upstream::schedule_retry(link& l) {
  if (stopped_) return;
  const auto base = l.backoff;
  l.backoff = std::min(base * 2, settings_.reconnect_max);
  std::uniform_real_distribution<double> scale(1.0 - settings_.reconnect_jitter,
                                               1.0 + settings_.reconnect_jitter);
  const auto delay = std::chrono::milliseconds(std::max<std::int64_t>(
      1, static_cast<std::int64_t>(static_cast<double>(base.count()) * scale(rng_))));
  spdlog::debug("upstream: {} retries in {} ms", who(l.client_id), delay.count());
  schedule_after(l, delay);
}

void native_upstream::schedule_after(link& l, std::chrono::milliseconds delay) {
  l.retry_timer.expires_after(delay);
  l.retry_timer.async_wait([w = l.weak_from_this()](const boost::system::error_code& ec) {
    if (ec) return;
    if (auto x = w.lock()) {
      x->after_replace = false;
      x->owner.attempt(*x);
    }
  });
}

void native_upstream::close_link(link& l, std::function<void()> on_done) {
  if (!l.conn) {
    if (on_done) boost::asio::post(io_, std::move(on_done));
    return;
  }
  auto conn = std::exchange(l.conn, nullptr);
  std::erase_if(closing_, [](const auto& w) { return w.expired(); });
  closing_.push_back(conn);
  conn->close_gracefully(std::move(on_done));  // DISCONNECT if open, else just closed
}

void native_upstream::on_open(link& l, bool session_present) {
  const bool again = l.established;
  l.established = true;
  l.backoff = settings_.reconnect_min;
  ++stats_.connects;
  if (again) ++stats_.reconnects;
  broker_.note_up(settings_.broker);
  host_limit_reported_ = false;
  spdlog::debug("upstream: {} {}connected (session present: {})", who(l.client_id),
                again ? "re" : "", session_present);
  resend_after_reconnect(l, session_present);
  if (l.gateway_level) publish_status(l, "online");
  l.conn->flush();
  emit(l.client_id, mqttsn::upstream_connected{session_present});
}

void native_upstream::on_refused(const std::shared_ptr<link>& l, std::uint8_t code) {
  l->conn.reset();
  ++stats_.refusals;
  const std::string reason = connack_reason(code);
  spdlog::info("upstream: broker refused {}: {}", who(l->client_id), reason);
  if (l->gateway_level || l->established) {
    // Credentials or ACLs may be fixed at the broker: keep trying, slowly.
    l->backoff = settings_.reconnect_max;
    schedule_retry(*l);
    if (!l->gateway_level) emit(l->client_id, mqttsn::upstream_refused{reason});
    return;
  }
  if (auto it = links_.find(l->client_id); it != links_.end() && it->second == l) links_.erase(it);
  l->retry_timer.cancel();
  emit(l->client_id, mqttsn::upstream_refused{reason});
}

void native_upstream::on_closed(link& l, const std::string& reason, bool was_open,
                                const std::string& tls_verify, bool host_limit) {
  l.conn.reset();
  l.waiting.clear();  // requests without a packet id go at the next connection, in order
  if (was_open) {
    ++stats_.connection_losses;
    broker_.note_down(settings_.broker, "connection lost: " + reason);
    spdlog::debug("upstream: {} lost its connection: {}", who(l.client_id), reason);
    schedule_retry(l);
    emit(l.client_id, mqttsn::upstream_lost{});
    return;
  }
  ++stats_.connect_failures;
  if (host_limit) {
    // Not the broker's state: the other connections are fine. Said once until one opens again.
    if (!host_limit_reported_) {
      host_limit_reported_ = true;
      spdlog::warn(
          "upstream: cannot open a broker connection for {}: {}: a limit of this host, not the broker (raise the "
          "gateway's open-file limit, LimitNOFILE in its systemd unit); retrying with backoff",
          who(l.client_id), reason);
    }
    spdlog::debug("upstream: {} could not connect: {}", who(l.client_id), reason);
    schedule_retry(l);
    return;
  }
  if (!tls_verify.empty() && !broker_.down()) {
    spdlog::error(
        "upstream: TLS to broker {} fails: the broker's certificate was refused: {} (check "
        "--broker-ca-file/"
        "--broker-ca-dir, and that the certificate names the host of --broker)",
        settings_.broker, tls_verify);
  }
  broker_.note_down(settings_.broker, "cannot connect: " + reason);
  spdlog::debug("upstream: {} could not connect: {}", who(l.client_id), reason);
  schedule_retry(l);
}

// ---- requests ----

std::uint64_t native_upstream::add_request(link& l, request r) {
  const auto id = l.next_request++;
  auto& req = l.requests.emplace(id, std::move(r)).first->second;
  if (!l.up()) return id;  // kept until the next connection
  if (!l.waiting.empty() || !assign_packet_id(l, id, req)) {
    l.waiting.push_back(id);
    return id;
  }
  write(l, req, false);
  l.conn->flush();
  return id;
}

bool native_upstream::assign_packet_id(link& l, std::uint64_t id, request& r) {
  if (l.by_packet_id.size() >= 65535) return false;
  do {
    ++l.last_packet_id;
  } while (l.last_packet_id == 0 || l.by_packet_id.contains(l.last_packet_id));
  r.packet_id = l.last_packet_id;
  l.by_packet_id.emplace(r.packet_id, id);
  return true;
}

void native_upstream::write(link& l, request& r, bool dup) {
  auto& out = l.conn->queue();
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
  l.conn->note_queued();
}

void native_upstream::send_waiting(link& l) {
  bool wrote = false;
  while (!l.waiting.empty() && l.up()) {
    auto it = l.requests.find(l.waiting.front());
    if (it == l.requests.end()) {
      l.waiting.pop_front();
      continue;
    }
    if (!assign_packet_id(l, it->first, it->second)) break;
    l.waiting.pop_front();
    write(l, it->second, false);
    wrote = true;
  }
  if (wrote) l.conn->flush();
}

void native_upstream::resend_after_reconnect(link& l, bool session_present) {
  l.waiting.clear();
  if (!session_present) {
    // A new session at the broker: it holds none of our packet ids, and the session (or
    // aggregating_upstream) resends every request it still holds.
    if (!l.requests.empty())
      spdlog::debug("upstream: no session at the broker for {}: {} requests dropped",
                    who(l.client_id), l.requests.size());
    l.requests.clear();
    l.by_packet_id.clear();
    l.inbound_qos2.clear();
    // Held broker messages are still ours to deliver, but their packet ids belonged to the old
    // session: never acknowledged, never matched with a resend.
    for (auto& h : l.held) h.ack = false;
    return;
  }
  std::size_t resent = 0;
  for (auto& [id, r] : l.requests) {
    if (r.packet_id != 0) {
      write(l, r, r.what == request::kind::publish);  // same id; DUP, or PUBREL if released
      ++resent;
    } else if (!l.waiting.empty() || !assign_packet_id(l, id, r)) {
      l.waiting.push_back(id);
    } else {
      write(l, r, false);
    }
  }
  if (resent > 0)
    spdlog::debug("upstream: {}: {} requests in flight sent again (session present)",
                  who(l.client_id), resent);
}

void native_upstream::publish_status(link& l, const char* text) {
  const std::string_view t = text;
  const auto id = add_request(
      l, request{request::kind::publish, request::stage::unsent, 0, settings_.status_topic,
                 mqttsn::bytes(t.begin(), t.end()), 1, true, 0});
  if (t == "offline") {
    auto it = l.requests.find(id);
    offline_packet_id_ = it != l.requests.end() ? it->second.packet_id : 0;
  }
}

// ---- broker packets ----

void native_upstream::on_packet(link& l, m::packet&& p) {
  const auto ack = [&](m::packet_type t, std::uint16_t id) {
    if (!l.conn) return;  // the handler closed it
    m::append_ack(l.conn->queue(), t, id);
    l.conn->note_queued();
    l.conn->flush();
  };
  std::visit(mqttsn::overloaded{
                 [&](m::publish_packet& x) { on_publish(l, std::move(x)); },
                 [&](const m::puback_packet& a) {
                   answer(l, a.packet_id, request::kind::publish, std::nullopt);
                 },
                 [&](const m::pubrec_packet& a) {
                   auto it = l.by_packet_id.find(a.packet_id);
                   if (it == l.by_packet_id.end()) return;
                   auto& r = l.requests.at(it->second);
                   if (r.what != request::kind::publish || r.q != 2) return;
                   r.at = request::stage::released;
                   ack(m::packet_type::pubrel, a.packet_id);
                 },
                 [&](const m::pubcomp_packet& a) {
                   answer(l, a.packet_id, request::kind::publish, std::nullopt);
                 },
                 [&](const m::suback_packet& a) {
                   answer(l, a.packet_id, request::kind::subscribe, a.return_codes.front());
                 },
                 [&](const m::unsuback_packet& a) {
                   answer(l, a.packet_id, request::kind::unsubscribe, std::nullopt);
                 },
                 [&](const m::pubrel_packet& a) {
                   l.inbound_qos2.erase(a.packet_id);
                   ack(m::packet_type::pubcomp, a.packet_id);
                 },
                 [&](const auto&) {
                   spdlog::debug("upstream: unexpected packet from the broker ignored");
                 },
             },
             p);
}

void native_upstream::on_publish(link& l, m::publish_packet&& p) {
  if (p.qos != 0 && withholds(l)) {
    const auto id = p.packet_id;
    // A resend (DUP) of a QoS 2 id delivered and not yet released only needs its PUBREC again.
    const bool released_resend = p.qos == 2 && p.dup && l.inbound_qos2.contains(id);
    if (!released_resend) {
      // A resend (DUP, e.g. after a reconnect with the broker's session) of a message still held
      // is that message: it is acknowledged when the session takes it.
      if (p.dup && std::any_of(l.held.begin(), l.held.end(), [&](const held_message& h) {
            return h.ack && h.packet.packet_id == id && h.packet.qos == p.qos;
          })) {
        ++stats_.held_duplicates;
        spdlog::debug("upstream: {}: resend of held packet id {} not taken twice", who(l.client_id),
                      id);
        return;
      }
      // Behind held messages, in order; or refused by the session: held, unacknowledged.
      if (!l.held.empty() || !offer_(l.client_id, from_wire_qos(p.qos))) {
        hold(l, std::move(p));
        return;
      }
    }
  }
  deliver(l, std::move(p), true);
}

void native_upstream::deliver(link& l, m::publish_packet&& p, bool ack) {
  const auto id = p.packet_id;
  const auto q = p.qos;
  bool fresh = true;
  // QoS 2: a resend (DUP) of an id not yet released is the same message: delivered once. A PUBLISH
  // without DUP under such an id is a new message (MQTT 3.1.1 §3.3.1.1: every re-delivery carries
  // DUP): the broker lost its side of the old one, e.g. Mosquitto killed before it saved the
  // PUBLISH it had sent us, and reused the id after the restart. Withholding it would answer
  // PUBREC for a message nobody gets (seen in the outage soak, docs/robustness.md).
  if (q == 2 && ack) fresh = l.inbound_qos2.insert(id).second || !p.dup;
  if (fresh) {
    ++stats_.messages;
    spdlog::debug("upstream: {} <- '{}' ({} bytes, QoS {}{})", who(l.client_id), p.topic,
                  p.payload.size(), q, p.retain ? ", retained" : "");
    emit(l.client_id, mqttsn::upstream_message{std::move(p.topic), std::move(p.payload),
                                               from_wire_qos(q), p.retain});
  }
  // Not while down: the broker resends it (DUP) on the next connection with its session.
  if (q == 0 || !ack || !l.conn || !l.up()) return;  // conn is gone if the handler closed it
  m::append_ack(l.conn->queue(), q == 1 ? m::packet_type::puback : m::packet_type::pubrec, id);
  l.conn->note_queued();
  l.conn->flush();
}

bool native_upstream::withholds(const link& l) const noexcept {
  return !l.gateway_level && offer_ && settings_.max_held > 0;
}

void native_upstream::hold(link& l, m::publish_packet&& p) {
  ++stats_.acks_deferred;
  l.held.push_back(held_message{std::move(p), true});
  if (l.held.size() <= settings_.max_held) return;
  // A broker that does not bound its in-flight window (Mosquitto max_inflight_messages 0) would
  // make this unbounded: the oldest goes to the session, whose queue drops as it always did.
  ++stats_.held_overflows;
  if (!l.overflow_reported) {
    l.overflow_reported = true;
    spdlog::warn(
        "upstream: {}: more than {} broker messages held for a full queue: the oldest "
        "go to the queue's drop policy (upstream-max-held)",
        who(l.client_id), settings_.max_held);
  }
  auto front = std::move(l.held.front());
  l.held.pop_front();
  deliver(l, std::move(front.packet), front.ack);
}

void native_upstream::resume(const std::string& client_id) {
  if (stopped_) return;
  auto it = links_.find(client_id);
  if (it == links_.end() || it->second->held.empty()) return;
  boost::asio::post(io_, [w = it->second->weak_from_this()] {
    auto l = w.lock();
    if (l && !l->owner.stopped_) l->owner.offer_held(l);
  });
}

void native_upstream::offer_held(const std::shared_ptr<link>& l) {
  // Each delivery runs the gateway's handler, which may drop this link (disconnect): stop then.
  const auto current = [&] {
    auto it = links_.find(l->client_id);
    return it != links_.end() && it->second == l;
  };
  while (!l->held.empty() && current() &&
         offer_(l->client_id, from_wire_qos(l->held.front().packet.qos))) {
    auto front = std::move(l->held.front());
    l->held.pop_front();
    deliver(*l, std::move(front.packet), front.ack);
  }
}

void native_upstream::answer(link& l, std::uint16_t packet_id, request::kind what,
                             std::optional<std::uint8_t> granted) {
  auto it = l.by_packet_id.find(packet_id);
  if (it == l.by_packet_id.end()) return;  // answered before, or dropped with its session
  auto r = l.requests.find(it->second);
  if (r == l.requests.end() || r->second.what != what) return;
  const auto ref = r->second.ref;
  l.by_packet_id.erase(it);
  l.requests.erase(r);
  if (l.gateway_level && packet_id == offline_packet_id_ && offline_packet_id_ != 0)
    offline_acked_ = true;
  if (what == request::kind::publish) ++stats_.acks;
  if (ref != 0) {
    switch (what) {
      case request::kind::publish: emit(l.client_id, mqttsn::upstream_published{ref}); break;
      case request::kind::subscribe: {
        std::optional<mqttsn::qos> q;
        if (granted && *granted <= 2) q = from_wire_qos(*granted);
        if (!q) spdlog::debug("upstream: broker refused a subscription of {}", who(l.client_id));
        emit(l.client_id, mqttsn::upstream_subscribed{ref, q});
        break;
      }
      case request::kind::unsubscribe: emit(l.client_id, mqttsn::upstream_unsubscribed{ref}); break;
    }
  }
  if (!l.waiting.empty() && l.up()) send_waiting(l);
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

}  // namespace gateway
