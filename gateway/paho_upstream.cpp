#include "gateway/paho_upstream.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <mqtt/async_client.h>
#include <spdlog/spdlog.h>

#include "gateway/tls_probe.hpp"
#include "mqttsn/topics.hpp"

namespace gateway {

namespace {

using steady = std::chrono::steady_clock;

// How long a closed Paho client is kept after its DISCONNECT completed: Paho's thread returns from
// our callback and then still touches the client (token bookkeeping) before it lets go.
constexpr std::chrono::milliseconds release_grace{50};
// Extra time a closing client gets beyond its DISCONNECT timeout before it is destroyed anyway.
constexpr std::chrono::milliseconds close_margin{2'000};

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

bool is_connack_refusal(int rc) { return rc >= 1 && rc <= 5; }

// Paho return codes that no retry will fix (the request itself is bad).
bool is_permanent_paho_error(int rc) {
  return rc == MQTTASYNC_BAD_UTF8_STRING || rc == MQTTASYNC_NULL_PARAMETER ||
         rc == MQTTASYNC_TOPICNAME_TRUNCATED || rc == MQTTASYNC_BAD_STRUCTURE ||
         rc == MQTTASYNC_BAD_QOS;
}

int to_paho_qos(mqttsn::qos q) {
  switch (q) {
    case mqttsn::qos::at_least_once: return 1;
    case mqttsn::qos::exactly_once: return 2;
    case mqttsn::qos::at_most_once:
    case mqttsn::qos::minus_one: return 0;  // QoS -1 goes upstream at QoS 0
  }
  return 0;
}

mqttsn::qos from_paho_qos(int q) {
  switch (q) {
    case 1: return mqttsn::qos::at_least_once;
    case 2: return mqttsn::qos::exactly_once;
    default: return mqttsn::qos::at_most_once;
  }
}

// The request id travels through Paho as the token's user context.
void* to_context(std::uint64_t id) {
  // NOLINTNEXTLINE(performance-no-int-to-ptr): an id, never dereferenced
  return reinterpret_cast<void*>(static_cast<std::uintptr_t>(id));
}
std::uint64_t from_context(void* context) {
  return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(context));
}

mqtt::binary_ref to_binary(const mqttsn::bytes& b) { return {mqtt::binary(b.begin(), b.end())}; }

std::string who(const std::string& client_id) {
  return client_id.empty() ? std::string("gateway connection") : "client '" + client_id + "'";
}

}  // namespace

// ---- the pieces ----

// A request with a ref, kept until the broker answers it (see the header on loss and reconnect).
struct paho_upstream::request {
  enum class kind : std::uint8_t { publish, subscribe, unsubscribe } what = kind::publish;
  std::uint32_t ref = 0;
  std::string topic;  // topic name, or the filter
  mqttsn::bytes payload;
  int q = 0;
  bool retain = false;
  bool on_wire = false;  // handed to Paho on the current connection and not failed since
};

// Turns Paho's completion callbacks (on a Paho thread) into posts to the io thread.
class paho_upstream::listener final : public mqtt::iaction_listener {
 public:
  listener(boost::asio::io_context& io, std::weak_ptr<link> l, std::uint64_t generation)
      : io_(io), link_(std::move(l)), generation_(generation) {}

  void on_success(const mqtt::token& tok) override { deliver(tok, true); }
  void on_failure(const mqtt::token& tok) override { deliver(tok, false); }

 private:
  void deliver(const mqtt::token& tok, bool ok);

  boost::asio::io_context& io_;
  std::weak_ptr<link> link_;
  std::uint64_t generation_;
};

// One Paho client and the listener its tokens point at. Destroyed on the reaper thread only; the
// client is declared last so that it goes first.
struct paho_upstream::paho_client {
  paho_client(boost::asio::io_context& io, std::weak_ptr<link> l, std::uint64_t generation)
      : events(io, std::move(l), generation) {}
  listener events;
  std::unique_ptr<mqtt::async_client> cli;
};

// One MQTT connection: a client's, or the gateway-level one. Owned by links_ only.
struct paho_upstream::link {
  explicit link(boost::asio::io_context& io) : timer(io) {}

  enum class state : std::uint8_t {
    waiting,     // the previous connection with this client id is still closing
    connecting,  // a CONNECT is under way
    connected,
    backoff,  // waiting for the next attempt
    closed,
  };

  paho_upstream* owner = nullptr;
  std::string client_id;
  bool gateway_level = false;
  std::uint64_t generation = 0;
  state st = state::waiting;
  bool established = false;    // was connected at least once
  std::uint64_t attempts = 0;  // the current attempt: older connect results are ignored
  std::chrono::milliseconds backoff{};
  mqtt::connect_options options;
  std::shared_ptr<paho_client> client;
  boost::asio::steady_timer timer;  // backoff, or the wait for the previous connection to close
  std::map<std::uint64_t, request> requests;
  std::uint64_t next_request = 1;
};

namespace {

// The link behind a posted event, if it is still the same live connection.
template <typename Link>
std::shared_ptr<Link> alive(const std::weak_ptr<Link>& w, std::uint64_t generation) {
  auto l = w.lock();
  if (!l || l->generation != generation || l->st == Link::state::closed) return nullptr;
  return l;
}

}  // namespace

void paho_upstream::listener::deliver(const mqtt::token& tok, bool ok) {
  const std::uint64_t id = from_context(tok.get_user_context());
  int rc = ok ? 0 : tok.get_return_code();
  if (!ok && rc == 0) rc = MQTTASYNC_FAILURE;
  auto w = link_;
  const auto gen = generation_;
  switch (tok.get_type()) {
    case mqtt::token::Type::CONNECT: {
      bool session_present = false;
      if (ok) {
        try {
          session_present = tok.get_connect_response().is_session_present();
        } catch (const std::exception&) {
        }
      }
      boost::asio::post(io_, [w, gen, id, rc, session_present] {
        if (auto l = alive(w, gen)) l->owner->on_connect_result(l, id, rc, session_present);
      });
      return;
    }
    case mqtt::token::Type::SUBSCRIBE: {
      int granted = MQTT_BAD_SUBSCRIBE;
      if (ok) {
        try {
          const auto response = tok.get_subscribe_response();  // by value: keep it alive
          const auto& codes = response.get_reason_codes();
          if (!codes.empty()) granted = static_cast<int>(codes.front());
        } catch (const std::exception&) {
        }
      }
      boost::asio::post(io_, [w, gen, id, ok, rc, granted] {
        if (auto l = alive(w, gen)) l->owner->on_request_result(l, id, ok, rc, granted);
      });
      return;
    }
    case mqtt::token::Type::PUBLISH:
    case mqtt::token::Type::UNSUBSCRIBE:
      boost::asio::post(io_, [w, gen, id, ok, rc] {
        if (auto l = alive(w, gen)) l->owner->on_request_result(l, id, ok, rc, 0);
      });
      return;
    case mqtt::token::Type::DISCONNECT: return;  // the reaper watches that token itself
  }
}

// Destroys closed Paho clients off the io thread: once their DISCONNECT completed (or its time is
// up) and Paho released the token, plus a short grace. Several clients close concurrently.
class paho_upstream::reaper {
 public:
  using closed_handler = std::function<void(const std::string& client_id)>;  // on the reaper thread

  explicit reaper(closed_handler on_closed)
      : on_closed_(std::move(on_closed)), thread_([this] { run(); }) {}
  ~reaper() { finish(steady::now()); }
  reaper(const reaper&) = delete;
  reaper& operator=(const reaper&) = delete;

  void add(std::shared_ptr<paho_client> client, mqtt::token_ptr disconnect, std::string client_id,
           steady::time_point deadline) {
    std::unique_lock lock(mutex_);
    if (finishing_ && !thread_.joinable()) {  // after finish(): nothing runs any more, destroy here
      lock.unlock();
      disconnect.reset();
      client.reset();
      return;
    }
    incoming_.push_back(
        item{std::move(client), std::move(disconnect), std::move(client_id), deadline, {}});
    cv_.notify_one();
  }

  // Waits until every client handed over is destroyed; at `deadline` the rest go at once.
  void finish(steady::time_point deadline) {
    {
      std::lock_guard lock(mutex_);
      if (!finishing_ || deadline < finish_deadline_) finish_deadline_ = deadline;
      finishing_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
  }

 private:
  struct item {
    std::shared_ptr<paho_client> client;
    mqtt::token_ptr disconnect;
    std::string client_id;
    steady::time_point deadline;
    std::optional<steady::time_point> release_at;
  };

  static bool disconnect_done(const mqtt::token_ptr& tok) {
    if (!tok) return true;
    try {
      if (!tok->wait_for(std::chrono::milliseconds(0))) return false;
    } catch (const std::exception&) {
      // completed with an error: done all the same
    }
    return tok.use_count() == 1;  // Paho has dropped its reference (remove_token ran)
  }

  void run() {
    std::vector<item> items;
    for (;;) {
      bool force = false;
      {
        std::unique_lock lock(mutex_);
        if (items.empty()) {
          cv_.wait(lock, [this] { return finishing_ || !incoming_.empty(); });
        } else {
          cv_.wait_for(lock, std::chrono::milliseconds(5));
        }
        for (auto& i : incoming_) items.push_back(std::move(i));
        incoming_.clear();
        if (finishing_ && items.empty()) return;
        force = finishing_ && steady::now() >= finish_deadline_;
      }
      const auto now = steady::now();
      for (auto& i : items) {
        if (i.release_at) continue;
        if (force || now >= i.deadline || disconnect_done(i.disconnect)) {
          i.release_at = force ? now : now + release_grace;
        }
      }
      for (auto it = items.begin(); it != items.end();) {
        if (it->release_at && (force || *it->release_at <= now)) {
          it->disconnect.reset();
          it->client.reset();  // MQTTAsync_destroy; the last one also stops Paho's threads
          on_closed_(it->client_id);
          it = items.erase(it);
        } else {
          ++it;
        }
      }
    }
  }

  closed_handler on_closed_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<item> incoming_;
  bool finishing_ = false;
  steady::time_point finish_deadline_{};
  std::thread thread_;  // last: started once everything above exists
};

// ---- construction ----

paho_upstream::paho_upstream(boost::asio::io_context& io, paho_settings settings)
    : io_(io),
      settings_(std::move(settings)),
      anchor_(std::make_shared<anchor>(anchor{this})),

      rng_(std::random_device{}()) {
  if (settings_.reconnect_min.count() < 1) settings_.reconnect_min = std::chrono::milliseconds(1);
  settings_.reconnect_max = std::max(settings_.reconnect_max, settings_.reconnect_min);
  settings_.reconnect_jitter = std::clamp(settings_.reconnect_jitter, 0.0, 0.9);
  if (!mqttsn::is_valid_topic_name(settings_.status_topic)) {
    throw std::invalid_argument("status topic '" + settings_.status_topic +
                                "': not a valid MQTT topic name");
  }
  // A bad URI is a configuration error: say so now, in one line, rather than at the first connect.
  // The client created for that check is kept, never connected: while any Paho client exists,
  // Paho keeps its two threads, so they are not torn down and restarted (a racy affair in Paho C
  // 1.3) each time the last connection of the moment closes.
  try {
    pin_ = std::make_unique<mqtt::async_client>(settings_.broker,
                                                settings_.gateway_client_id + "-unused",
                                                static_cast<mqtt::iclient_persistence*>(nullptr));
  } catch (const mqtt::exception& e) {
    throw std::invalid_argument("broker '" + settings_.broker + "' with client id '" +
                                settings_.gateway_client_id + "': refused by the MQTT library (" +
                                e.what() + ")");
  }
  std::weak_ptr<anchor> w = anchor_;
  reaper_ = std::make_unique<reaper>([w, io = &io_](const std::string& client_id) {
    boost::asio::post(*io, [w, client_id] {
      if (auto a = w.lock()) a->self->on_closed(client_id);
    });
  });
}

paho_upstream::~paho_upstream() {
  try {
    if (!stopped_) stop(settings_.disconnect_timeout);
  } catch (const std::exception& e) {
    spdlog::error("upstream: stop failed: {}", e.what());
  }
  anchor_.reset();
  pin_.reset();  // the last Paho client: Paho stops its threads now
}

std::shared_ptr<paho_upstream::link> paho_upstream::make_link(const std::string& client_id,
                                                              bool gateway_level) {
  auto l = std::make_shared<link>(io_);
  l->owner = this;
  l->client_id = client_id;
  l->gateway_level = gateway_level;
  l->generation = next_generation_++;
  l->backoff = settings_.reconnect_min;

  const std::string& mqtt_id = gateway_level ? settings_.gateway_client_id : client_id;
  auto client = std::make_shared<paho_client>(io_, l, l->generation);
  // No persistence (nullptr): Paho keeps in-flight messages in memory only.
  mqtt::create_options create(MQTTVERSION_3_1_1);
  create.set_max_buffered_messages(settings_.max_queued_publishes);
  client->cli = std::make_unique<mqtt::async_client>(
      settings_.broker, mqtt_id, create, static_cast<mqtt::iclient_persistence*>(nullptr));
  std::weak_ptr<link> w = l;
  const auto gen = l->generation;
  auto* io = &io_;
  client->cli->set_connection_lost_handler([w, gen, io](const std::string& cause) {
    boost::asio::post(*io, [w, gen, cause] {
      if (auto x = alive(w, gen)) x->owner->on_connection_lost(x, cause);
    });
  });
  client->cli->set_message_callback([w, gen, io](const mqtt::const_message_ptr& m) {
    if (!m) return;
    const auto& payload = m->get_payload();
    mqttsn::upstream_message um{m->get_topic(), mqttsn::bytes(payload.begin(), payload.end()),
                                from_paho_qos(m->get_qos()), m->is_retained()};
    boost::asio::post(*io, [w, gen, um = std::move(um)]() mutable {
      if (auto x = alive(w, gen)) x->owner->on_message(x, std::move(um));
    });
  });
  l->client = std::move(client);

  auto& o = l->options;
  o.set_mqtt_version(MQTTVERSION_3_1_1);  // never fall back to 3.1
  o.set_automatic_reconnect(false);       // reconnects are ours, each one reported
  const auto timeout_s =
      std::max<std::int64_t>(1, (settings_.connect_timeout.count() + 999) / 1000);
  o.set_connect_timeout(static_cast<int>(timeout_s));
  apply_security(o, client_id, gateway_level);
  return l;
}

// TLS for an ssl:// broker, and the connection's user name and password (never logged).
void paho_upstream::apply_security(mqtt::connect_options& o, const std::string& client_id,
                                   bool gateway_level) const {
  const broker_login* login = settings_.login ? &*settings_.login : nullptr;
  if (!gateway_level) {
    if (auto it = settings_.client_logins.find(client_id); it != settings_.client_logins.end()) {
      login = &it->second;
    }
  }
  if (login != nullptr) {
    o.set_user_name(login->username);
    if (!login->password.empty()) o.set_password(login->password);
  }
  if (!settings_.broker.starts_with("ssl://")) return;
  const auto& t = settings_.tls;
  mqtt::ssl_options ssl;
  if (!t.ca_file.empty()) ssl.set_trust_store(t.ca_file);
  if (!t.ca_dir.empty()) ssl.ca_path(t.ca_dir);
  if (!t.cert_file.empty()) ssl.set_key_store(t.cert_file);
  if (!t.key_file.empty()) ssl.set_private_key(t.key_file);
  if (!t.key_password.empty()) ssl.set_private_key_password(t.key_password);
  ssl.set_enable_server_cert_auth(!t.insecure);  // the certificate chain
  ssl.set_verify(!t.insecure);                   // the host name in the certificate
  o.set_ssl(std::move(ssl));
}


paho_upstream::link* paho_upstream::find(const std::string& client_id) {
  auto it = links_.find(client_id);
  return it == links_.end() ? nullptr : it->second.get();
}

bool paho_upstream::connected(const std::string& client_id) const {
  auto it = links_.find(client_id);
  return it != links_.end() && it->second->st == link::state::connected;
}

// ---- the upstream interface ----

void paho_upstream::start(event_handler on_event) {
  on_event_ = std::move(on_event);
  if (stopped_ || links_.contains(std::string(gateway_connection))) return;
  auto l = make_link(std::string(gateway_connection), true);
  l->options.set_clean_session(settings_.gateway_clean_session);
  l->options.set_keep_alive_interval(static_cast<int>(settings_.gateway_keep_alive.count()));
  l->options.set_will(mqtt::will_options(settings_.status_topic,
                                         mqtt::binary_ref(mqtt::binary("offline")), 1, true));
  links_.emplace(l->client_id, l);
  spdlog::debug("upstream: gateway connection to {} as '{}', status topic '{}'", settings_.broker,
                settings_.gateway_client_id, settings_.status_topic);
  attempt(l);
}

void paho_upstream::connect(const std::string& client_id, const mqttsn::upstream_connect& c) {
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
  if (auto it = links_.find(client_id); it != links_.end()) {
    auto old = it->second;
    links_.erase(it);
    spdlog::debug("upstream: {} connects again: closing its previous connection first",
                  who(client_id));
    retire(old, settings_.disconnect_timeout);
  }
  std::shared_ptr<link> l;
  try {
    l = make_link(client_id, false);
    l->options.set_clean_session(c.clean_session);
    l->options.set_keep_alive_interval(static_cast<int>(c.keep_alive));
    if (c.will) {
      l->options.set_will(mqtt::will_options(c.will->topic, to_binary(c.will->payload),
                                             to_paho_qos(c.will->q), c.will->retain));
    }
  } catch (const mqtt::exception& e) {
    // Paho refuses the client id itself (e.g. not UTF-8): as final as a CONNACK refusal.
    ++stats_.refusals;
    const std::string reason = std::string("rejected by the MQTT library: ") + e.what();
    spdlog::info("upstream: {} refused: {}", who(client_id), reason);
    post_event(client_id, mqttsn::upstream_refused{reason});
    return;
  }
  links_.emplace(client_id, l);
  if (closing_by_id_.contains(client_id)) {
    // The DISCONNECT of the previous connection must reach the broker before this CONNECT, or the
    // broker would see a takeover and publish the old will. on_closed() starts it; the timer is a
    // fallback should that never come.
    l->st = link::state::waiting;
    l->timer.expires_after(settings_.disconnect_timeout + close_margin +
                           std::chrono::milliseconds(500));
    l->timer.async_wait(
        [w = std::weak_ptr<link>(l), gen = l->generation](const boost::system::error_code& ec) {
          if (ec) return;
          if (auto x = alive(w, gen); x && x->st == link::state::waiting) x->owner->attempt(x);
        });
    return;
  }
  attempt(l);
}

void paho_upstream::publish(const std::string& client_id, const mqttsn::upstream_publish& p) {
  link* l = find(client_id);
  if (!l) {
    if (p.ref == 0) ++stats_.publishes_dropped;
    spdlog::debug("upstream: publish for {} without a connection dropped", who(client_id));
    return;
  }
  if (p.ref == 0) {
    send_fire_and_forget(*l, p);
    return;
  }
  const auto id = l->next_request++;
  auto& r = l->requests
                .emplace(id, request{request::kind::publish, p.ref, p.topic, p.payload,
                                     to_paho_qos(p.q), p.retain, false})
                .first->second;
  send_request(*l, id, r);
}

void paho_upstream::subscribe(const std::string& client_id, const mqttsn::upstream_subscribe& s) {
  link* l = find(client_id);
  if (!l) {
    spdlog::debug("upstream: subscribe for {} without a connection dropped", who(client_id));
    return;
  }
  const auto id = l->next_request++;
  auto& r =
      l->requests
          .emplace(
              id,
              request{
                  request::kind::subscribe, s.ref, s.filter, {}, to_paho_qos(s.q), false, false})
          .first->second;
  send_request(*l, id, r);
}

void paho_upstream::unsubscribe(const std::string& client_id,
                                const mqttsn::upstream_unsubscribe& u) {
  link* l = find(client_id);
  if (!l) {
    spdlog::debug("upstream: unsubscribe for {} without a connection dropped", who(client_id));
    return;
  }
  const auto id = l->next_request++;
  auto& r =
      l->requests
          .emplace(id, request{request::kind::unsubscribe, u.ref, u.filter, {}, 0, false, false})
          .first->second;
  send_request(*l, id, r);
}

void paho_upstream::disconnect(const std::string& client_id) {
  if (client_id.empty()) {
    spdlog::debug(
        "upstream: disconnect of the gateway connection ignored (it stays up until stop())");
    return;
  }
  auto it = links_.find(client_id);
  if (it == links_.end()) return;
  auto l = it->second;
  links_.erase(it);
  spdlog::debug("upstream: {} disconnects", who(client_id));
  retire(l, settings_.disconnect_timeout);
}

void paho_upstream::stop(std::chrono::milliseconds timeout) {
  if (stopped_) return;
  stopped_ = true;
  const auto start = steady::now();
  const auto deadline = start + timeout;
  if (auto it = links_.find(std::string(gateway_connection));
      it != links_.end() && it->second->st == link::state::connected) {
    try {
      auto tok = it->second->client->cli->publish(settings_.status_topic, "offline", 7, 1, true);
      ++stats_.publishes;
      if (tok->wait_until(start + timeout / 2)) {
        spdlog::debug("upstream: status '{}' is offline", settings_.status_topic);
      } else {
        spdlog::warn("upstream: status 'offline' not acknowledged within {} ms",
                     (timeout / 2).count());
      }
    } catch (const std::exception& e) {
      spdlog::warn("upstream: status 'offline' not published: {}", e.what());
    }
  }
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
  const auto disconnect_timeout =
      std::clamp(left / 2, std::chrono::milliseconds(0), settings_.disconnect_timeout);
  auto links = std::move(links_);
  links_.clear();
  for (auto& [id, l] : links) retire(l, disconnect_timeout);
  links.clear();
  reaper_->finish(deadline);
  if (tls_probe_.joinable()) tls_probe_.join();  // bounded by its own timeout
  spdlog::debug("upstream: stopped ({} connects, {} losses, {} publishes)", stats_.connects,
                stats_.connection_losses, stats_.publishes);
}

// ---- connection life ----

void paho_upstream::attempt(const std::shared_ptr<link>& l) {
  if (!l->client || l->st == link::state::closed) return;
  l->st = link::state::connecting;
  const auto n = ++l->attempts;
  try {
    l->client->cli->connect(l->options, to_context(n), l->client->events);
  } catch (const mqtt::exception& e) {
    // Paho rejected the options before any network I/O (e.g. an empty will topic): no retry fixes
    // that for a client; the gateway connection keeps trying at the slowest pace.
    const std::string reason = std::string("CONNECT rejected by the MQTT library: ") + e.what();
    ++stats_.refusals;
    spdlog::info("upstream: {} refused: {}", who(l->client_id), reason);
    if (l->gateway_level || l->established) {
      l->backoff = settings_.reconnect_max;
      schedule_retry(l);
      return;
    }
    auto self = l;  // NOLINT(performance-unnecessary-copy-initialization): outlives the erase
    links_.erase(l->client_id);
    retire(self, settings_.disconnect_timeout);
    post_event(self->client_id, mqttsn::upstream_refused{reason});
  }
}

void paho_upstream::schedule_retry(const std::shared_ptr<link>& l) {
  l->st = link::state::backoff;
  const auto base = l->backoff;
  l->backoff = std::min(base * 2, settings_.reconnect_max);
  std::uniform_real_distribution<double> scale(1.0 - settings_.reconnect_jitter,
                                               1.0 + settings_.reconnect_jitter);
  const auto delay = std::chrono::milliseconds(std::max<std::int64_t>(
      1, static_cast<std::int64_t>(static_cast<double>(base.count()) * scale(rng_))));
  spdlog::debug("upstream: {} retries in {} ms", who(l->client_id), delay.count());
  l->timer.expires_after(delay);
  l->timer.async_wait(
      [w = std::weak_ptr<link>(l), gen = l->generation](const boost::system::error_code& ec) {
        if (ec) return;
        if (auto x = alive(w, gen); x && x->st == link::state::backoff) x->owner->attempt(x);
      });
}

void paho_upstream::retire(const std::shared_ptr<link>& l,
                           std::chrono::milliseconds disconnect_timeout) {
  const auto was = l->st;
  l->st = link::state::closed;
  l->timer.cancel();
  l->requests.clear();
  auto client = std::move(l->client);
  if (!client) return;
  mqtt::token_ptr tok;
  if (was == link::state::connected || was == link::state::connecting) {
    try {
      // A clean DISCONNECT: the broker discards the will. Paho waits up to the timeout for the
      // acknowledgements in flight, on its own threads.
      tok = client->cli->disconnect(
          mqtt::disconnect_options(static_cast<int>(disconnect_timeout.count())));
    } catch (const mqtt::exception& e) {
      spdlog::debug("upstream: {}: DISCONNECT not sent: {}", who(l->client_id), e.what());
    }
  }
  ++closing_;
  ++closing_by_id_[l->client_id];
  reaper_->add(std::move(client), std::move(tok), l->client_id,
               steady::now() + disconnect_timeout + close_margin);
}

void paho_upstream::on_closed(const std::string& client_id) {
  if (closing_ > 0) --closing_;
  auto it = closing_by_id_.find(client_id);
  if (it != closing_by_id_.end() && --it->second == 0) closing_by_id_.erase(it);
  if (closing_by_id_.contains(client_id)) return;
  auto l = links_.find(client_id);
  if (l != links_.end() && l->second->st == link::state::waiting) {
    auto keep = l->second;
    keep->timer.cancel();
    attempt(keep);
  }
}

void paho_upstream::on_connect_result(const std::shared_ptr<link>& l, std::uint64_t attempt_no,
                                      int rc, bool session_present) {
  if (l->st != link::state::connecting || attempt_no != l->attempts) return;  // a stale attempt
  if (rc == 0) {
    const bool again = l->established;
    l->st = link::state::connected;
    l->established = true;
    l->backoff = settings_.reconnect_min;
    ++stats_.connects;
    if (again) ++stats_.reconnects;
    broker_.note_up(settings_.broker);
    spdlog::debug("upstream: {} {}connected (session present: {})", who(l->client_id),
                  again ? "re" : "", session_present);
    if (l->gateway_level) {
      const std::string_view online = "online";
      send_fire_and_forget(*l, mqttsn::upstream_publish{0, settings_.status_topic,
                                                        mqttsn::bytes(online.begin(), online.end()),
                                                        mqttsn::qos::at_least_once, true});
    }
    resend_after_reconnect(*l, session_present);
    emit(l->client_id, mqttsn::upstream_connected{session_present});
    return;
  }
  if (is_connack_refusal(rc)) {
    ++stats_.refusals;
    const std::string reason = connack_reason(rc);
    spdlog::info("upstream: broker refused {}: {}", who(l->client_id), reason);
    if (l->gateway_level || l->established) {
      // Credentials or ACLs may be fixed at the broker: keep trying, slowly.
      l->backoff = settings_.reconnect_max;
      schedule_retry(l);
      if (!l->gateway_level) emit(l->client_id, mqttsn::upstream_refused{reason});
      return;
    }
    auto self = l;  // NOLINT(performance-unnecessary-copy-initialization): outlives the erase
    links_.erase(self->client_id);
    retire(self, settings_.disconnect_timeout);
    emit(self->client_id, mqttsn::upstream_refused{reason});
    return;
  }
  ++stats_.connect_failures;
  if (!broker_.down()) start_tls_probe();
  broker_.note_down(settings_.broker, "cannot connect (Paho code " + std::to_string(rc) + ")");
  spdlog::debug("upstream: {} could not connect (Paho code {})", who(l->client_id), rc);
  schedule_retry(l);
}

void paho_upstream::on_connection_lost(const std::shared_ptr<link>& l, const std::string& cause) {
  if (l->st != link::state::connected) return;
  ++stats_.connection_losses;
  // Paho does not resend SUBSCRIBE/UNSUBSCRIBE after a reconnect: they go again from here if the
  // broker kept the session. QoS 1/2 PUBLISHes on the wire stay Paho's to resend.
  for (auto& [id, r] : l->requests) {
    if (r.what != request::kind::publish) r.on_wire = false;
  }
  broker_.note_down(settings_.broker, cause.empty() ? std::string("connection lost") : "connection lost: " + cause);
  spdlog::debug("upstream: {} lost its connection{}{}", who(l->client_id),
                cause.empty() ? "" : ": ", cause);
  schedule_retry(l);
  emit(l->client_id, mqttsn::upstream_lost{});
}

void paho_upstream::on_message(const std::shared_ptr<link>& l, mqttsn::upstream_message m) {
  ++stats_.messages;
  spdlog::debug("upstream: {} <- '{}' ({} bytes, QoS {}{})", who(l->client_id), m.topic,
                m.payload.size(), static_cast<int>(m.q), m.retain ? ", retained" : "");
  emit(l->client_id, std::move(m));
}

void paho_upstream::on_request_result(const std::shared_ptr<link>& l, std::uint64_t id, bool ok,
                                      int rc, int granted) {
  auto it = l->requests.find(id);
  if (it == l->requests.end()) return;  // answered before, sent again since, or dropped
  request& r = it->second;
  const auto ref = r.ref;
  switch (r.what) {
    case request::kind::publish:
      if (ok) {
        l->requests.erase(it);
        ++stats_.acks;
        emit(l->client_id, mqttsn::upstream_published{ref});
      } else {
        r.on_wire = false;
        spdlog::debug(
            "upstream: {}: publish ref {} failed (Paho code {}); kept for the next connection",
            who(l->client_id), ref, rc);
      }
      return;
    case request::kind::subscribe:
      if (ok || rc == MQTT_BAD_SUBSCRIBE) {
        l->requests.erase(it);
        std::optional<mqttsn::qos> q;
        if (ok && granted >= 0 && granted <= 2) q = from_paho_qos(granted);
        if (!q) spdlog::debug("upstream: broker refused a subscription of {}", who(l->client_id));
        emit(l->client_id, mqttsn::upstream_subscribed{ref, q});
      } else {
        r.on_wire = false;
        spdlog::debug(
            "upstream: {}: subscribe ref {} failed (Paho code {}); kept for the next connection",
            who(l->client_id), ref, rc);
      }
      return;
    case request::kind::unsubscribe:
      if (ok) {
        l->requests.erase(it);
        emit(l->client_id, mqttsn::upstream_unsubscribed{ref});
      } else {
        r.on_wire = false;
        spdlog::debug(
            "upstream: {}: unsubscribe ref {} failed (Paho code {}); kept for the next connection",
            who(l->client_id), ref, rc);
      }
      return;
  }
}

// ---- requests ----

void paho_upstream::send_request(link& l, std::uint64_t id, request& r) {
  r.on_wire = false;
  if (l.st != link::state::connected || !l.client) return;  // kept until the next connection
  try {
    auto& cli = *l.client->cli;
    switch (r.what) {
      case request::kind::publish:
        cli.publish(mqtt::make_message(r.topic, to_binary(r.payload), r.q, r.retain),
                    to_context(id), l.client->events);
        ++stats_.publishes;
        break;
      case request::kind::subscribe:
        cli.subscribe(r.topic, r.q, to_context(id), l.client->events);
        break;
      case request::kind::unsubscribe:
        cli.unsubscribe(r.topic, to_context(id), l.client->events);
        break;
    }
    r.on_wire = true;
  } catch (const mqtt::exception& e) {
    const int rc = e.get_return_code();
    if (!is_permanent_paho_error(rc)) {
      spdlog::debug("upstream: {}: request ref {} not sent now (Paho code {})", who(l.client_id),
                    r.ref, rc);
      return;  // e.g. the connection just broke: kept
    }
    // The request itself is bad: answer it (as a broker refusal) so the session does not wait.
    spdlog::warn("upstream: {}: request ref {} rejected by the MQTT library: {}", who(l.client_id),
                 r.ref, e.what());
    std::optional<mqttsn::upstream_event> answer;
    if (r.what == request::kind::subscribe)
      answer = mqttsn::upstream_subscribed{r.ref, std::nullopt};
    if (r.what == request::kind::unsubscribe) answer = mqttsn::upstream_unsubscribed{r.ref};
    l.requests.erase(id);  // a publish stays unanswered: the session times it out with the client
    if (answer) post_event(l.client_id, std::move(*answer));
  }
}

void paho_upstream::send_fire_and_forget(link& l, const mqttsn::upstream_publish& p) {
  if (l.st != link::state::connected || !l.client) {
    ++stats_.publishes_dropped;
    spdlog::debug("upstream: {}: '{}' dropped, not connected", who(l.client_id), p.topic);
    return;
  }
  try {
    l.client->cli->publish(
        mqtt::make_message(p.topic, to_binary(p.payload), to_paho_qos(p.q), p.retain));
    ++stats_.publishes;
  } catch (const mqtt::exception& e) {
    ++stats_.publishes_dropped;
    spdlog::debug("upstream: {}: '{}' dropped: {}", who(l.client_id), p.topic, e.what());
  }
}

void paho_upstream::resend_after_reconnect(link& l, bool session_present) {
  if (!session_present) {
    l.requests.clear();  // the session resends everything it still holds
    return;
  }
  auto old = std::move(l.requests);
  l.requests.clear();
  std::vector<std::uint64_t> to_send;
  for (auto& [id, r] : old) {
    if (r.what == request::kind::publish && r.on_wire) {
      l.requests.emplace(id, std::move(r));  // Paho resends it itself, same token
      continue;
    }
    const auto nid = l.next_request++;  // a new id: late answers to the old copy are ignored
    l.requests.emplace(nid, std::move(r));
    to_send.push_back(nid);
  }
  for (auto nid : to_send) {
    auto it = l.requests.find(nid);
    if (it != l.requests.end()) send_request(l, nid, it->second);
  }
}

// ---- events and logs ----

// For answers decided inside an intent call: the gateway is executing a list of actions then, so
// the event must not reach it before that call has returned.
void paho_upstream::post_event(const std::string& client_id, mqttsn::upstream_event event) {
  std::weak_ptr<anchor> w = anchor_;
  boost::asio::post(io_, [w, client_id, event = std::move(event)]() mutable {
    if (auto a = w.lock()) a->self->emit(client_id, std::move(event));
  });
}

void paho_upstream::emit(const std::string& client_id, mqttsn::upstream_event event) {
  if (on_event_) on_event_(client_id, std::move(event));
}

void paho_upstream::start_tls_probe() {
  if (!settings_.broker.starts_with("ssl://") || tls_probe_.joinable() || stopped_) return;
  std::weak_ptr<anchor> w = anchor_;
  tls_probe_ = std::thread([w, io = &io_, broker = settings_.broker, tls = settings_.tls,
                            timeout = settings_.connect_timeout] {
    auto reason = probe_tls(broker, tls, timeout);
    boost::asio::post(*io, [w, reason = std::move(reason)] {
      if (auto a = w.lock()) a->self->on_tls_probe(reason);
    });
  });
}

void paho_upstream::on_tls_probe(const std::string& reason) {
  if (tls_probe_.joinable()) tls_probe_.join();  // it has posted this: it is ending
  if (reason.empty()) {
    spdlog::debug("upstream: a TLS handshake of our own with {} succeeded", settings_.broker);
    return;
  }
  spdlog::error(
      "upstream: TLS to broker {} fails: {} (check --broker-ca-file/--broker-ca-dir, and that "
      "the certificate names the host of --broker)",
      settings_.broker, reason);
}

}  // namespace gateway
