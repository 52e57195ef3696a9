// gateway::paho_upstream against a real Mosquitto: connect, refusal, publish/subscribe both ways,
// wills, reconnects after a broker restart, requests kept across a kept session, the status topic.
#include "gateway/paho_upstream.hpp"

#include <array>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/integration/harness.hpp"

namespace {

using namespace std::chrono_literals;
using itest::wait_until;

constexpr auto patience = 10s;  // bound of every wait for something that should happen

mqttsn::bytes to_bytes(std::string_view s) { return {s.begin(), s.end()}; }
std::string to_string(const mqttsn::bytes& b) { return {b.begin(), b.end()}; }

// Upstream events as the gateway would see them, recorded on the io thread.
class recorder {
 public:
  gateway::upstream::event_handler handler() {
    return [this](const std::string& client_id, mqttsn::upstream_event e) {
      std::lock_guard lock(mutex_);
      events_.emplace_back(client_id, std::move(e));
    };
  }

  // Every event of type T for `client_id`, oldest first.
  template <class T>
  std::vector<T> all(const std::string& client_id) const {
    std::lock_guard lock(mutex_);
    std::vector<T> out;
    for (const auto& [id, e] : events_) {
      if (id == client_id && std::holds_alternative<T>(e)) out.push_back(std::get<T>(e));
    }
    return out;
  }

  // The n-th (1-based) event of type T for `client_id`, once it has come.
  template <class T>
  std::optional<T> wait(const std::string& client_id, std::size_t n = 1,
                        std::chrono::milliseconds timeout = patience) const {
    if (!wait_until([&] { return all<T>(client_id).size() >= n; }, timeout)) return std::nullopt;
    return all<T>(client_id)[n - 1];
  }

  void clear() {
    std::lock_guard lock(mutex_);
    events_.clear();
  }

  std::size_t count(const std::string& client_id) const {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto& [id, e] : events_) n += id == client_id ? 1 : 0;
    return n;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::pair<std::string, mqttsn::upstream_event>> events_;
};

// NOLINTNEXTLINE(readability-identifier-naming): the gtest suite name
class PahoUpstream : public ::testing::Test {
 protected:
  void TearDown() override { shut_down(); }

  gateway::paho_settings settings_for(const std::string& uri) const {
    gateway::paho_settings s;
    s.broker = uri;
    s.gateway_client_id = "itest-gw-" +
                          std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
                          ::testing::UnitTest::GetInstance()->current_test_info()->name();
    s.status_topic = "itest/gateway/status";
    s.connect_timeout = 2s;
    s.reconnect_min = 100ms;  // fast tests; the daemon keeps the 1 s / 30 s defaults
    s.reconnect_max = 400ms;
    s.disconnect_timeout = 500ms;
    return s;
  }

  // Builds the upstream and starts it (the gateway-level connection and the event handler).
  void start(const gateway::paho_settings& s) {
    up_ = std::make_unique<gateway::paho_upstream>(io_.io(), s);
    io_.call([&] { up_->start(events_.handler()); });
  }
  void start(const itest::mosquitto_broker& b) { start(settings_for(b.uri())); }

  // stop() runs after the io thread has stopped, as in the daemon.
  void shut_down(std::chrono::milliseconds timeout = 3s) {
    io_.stop();
    if (up_) up_->stop(timeout);
    up_.reset();
  }

  void connect(const std::string& id, mqttsn::upstream_connect c = {}) {
    io_.call([&] { up_->connect(id, c); });
  }
  void publish(const std::string& id, mqttsn::upstream_publish p) {
    io_.call([&] { up_->publish(id, p); });
  }
  void subscribe(const std::string& id, mqttsn::upstream_subscribe s) {
    io_.call([&] { up_->subscribe(id, s); });
  }
  void unsubscribe(const std::string& id, mqttsn::upstream_unsubscribe u) {
    io_.call([&] { up_->unsubscribe(id, u); });
  }
  void disconnect(const std::string& id) {
    io_.call([&] { up_->disconnect(id); });
  }
  gateway::paho_stats stats() {
    return io_.call([&] { return up_->stats(); });
  }

  // The broker outlives the upstream (members go in reverse order; TearDown stops the upstream
  // first anyway), so a test's end is not seen as a broker outage.
  itest::mosquitto_broker& start_broker(itest::broker_options options = {}) {
    return broker_.emplace(std::move(options));
  }

  std::optional<itest::mosquitto_broker> broker_;
  itest::io_thread io_;
  recorder events_;
  std::unique_ptr<gateway::paho_upstream> up_;
};

const std::string gw{gateway::gateway_connection};

// A scripted MQTT 3.1.1 "broker" for answers Mosquitto 2.0 never gives: it answers every CONNECT
// with `connack_rc` and every SUBSCRIBE with `suback_rc`, PINGREQ with PINGRESP, and ignores the
// rest. (Mosquitto grants an ACL-denied subscription instead of answering 0x80.)
class scripted_broker {
 public:
  scripted_broker(std::uint8_t connack_rc, std::uint8_t suback_rc)
      : connack_rc_(connack_rc), suback_rc_(suback_rc), port_(itest::free_port(false)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int on = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port_);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_fd_, 8) != 0) {
      throw std::runtime_error("scripted_broker: cannot listen on port " + std::to_string(port_));
    }
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~scripted_broker() {
    ::shutdown(listen_fd_, SHUT_RDWR);
    acceptor_.join();
    {
      std::lock_guard lock(mutex_);
      for (int fd : connections_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : servers_) t.join();
    for (int fd : connections_) ::close(fd);
    ::close(listen_fd_);
  }
  scripted_broker(const scripted_broker&) = delete;
  scripted_broker& operator=(const scripted_broker&) = delete;

  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

 private:
  void accept_loop() {
    for (;;) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;  // shut down
      std::lock_guard lock(mutex_);
      connections_.push_back(fd);
      servers_.emplace_back([this, fd] { serve(fd); });
    }
  }

  static bool read_exact(int fd, std::uint8_t* p, std::size_t n) {
    while (n > 0) {
      const auto r = ::recv(fd, p, n, 0);
      if (r <= 0) return false;
      p += r;
      n -= static_cast<std::size_t>(r);
    }
    return true;
  }

  void serve(int fd) const {
    for (;;) {
      std::uint8_t header = 0;
      if (!read_exact(fd, &header, 1)) return;
      std::size_t length = 0;
      for (unsigned shift = 0;; shift += 7) {
        std::uint8_t b = 0;
        if (!read_exact(fd, &b, 1)) return;
        length |= static_cast<std::size_t>(b & 0x7f) << shift;
        if ((b & 0x80) == 0) break;
      }
      std::vector<std::uint8_t> body(length);
      if (length > 0 && !read_exact(fd, body.data(), length)) return;
      switch (header >> 4) {
        case 1: {  // CONNECT
          const std::array<std::uint8_t, 4> connack{0x20, 0x02, 0x00, connack_rc_};
          ::send(fd, connack.data(), connack.size(), MSG_NOSIGNAL);
          break;
        }
        case 8: {  // SUBSCRIBE: message id first
          if (body.size() < 2) return;
          const std::array<std::uint8_t, 5> suback{0x90, 0x03, body[0], body[1], suback_rc_};
          ::send(fd, suback.data(), suback.size(), MSG_NOSIGNAL);
          break;
        }
        case 12: {  // PINGREQ
          const std::array<std::uint8_t, 2> pingresp{0xd0, 0x00};
          ::send(fd, pingresp.data(), pingresp.size(), MSG_NOSIGNAL);
          break;
        }
        case 14: return;  // DISCONNECT
        default: break;
      }
    }
  }

  std::uint8_t connack_rc_;
  std::uint8_t suback_rc_;
  std::uint16_t port_;
  int listen_fd_ = -1;
  std::mutex mutex_;
  std::vector<int> connections_;
  std::vector<std::thread> servers_;
  std::thread acceptor_;
};

TEST_F(PahoUpstream, client_connect_reports_connected) {
  auto& broker = start_broker();
  start(broker);
  connect("c1", {.clean_session = true, .keep_alive = 30, .will = std::nullopt});
  auto c = events_.wait<mqttsn::upstream_connected>("c1");
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->session_present);
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>(gw));
  EXPECT_TRUE(io_.call([&] { return up_->connected("c1"); }));
  EXPECT_EQ(io_.call([&] { return up_->connections(); }), 2u);
  EXPECT_EQ(stats().connects, 2u);
}

TEST_F(PahoUpstream, kept_session_is_reported_present) {
  auto& broker = start_broker();
  start(broker);
  connect("kept", {.clean_session = false, .keep_alive = 0, .will = std::nullopt});
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>("kept"));
  disconnect("kept");
  connect("kept", {.clean_session = false, .keep_alive = 0, .will = std::nullopt});
  auto again = events_.wait<mqttsn::upstream_connected>("kept", 2);
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->session_present);
}

TEST_F(PahoUpstream, subscribe_reports_granted_qos) {
  auto& broker = start_broker();
  start(broker);
  connect("s1");
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>("s1"));
  subscribe("s1", {1, "a/#", mqttsn::qos::at_most_once});
  subscribe("s1", {2, "b/+", mqttsn::qos::at_least_once});
  subscribe("s1", {3, "c", mqttsn::qos::exactly_once});
  ASSERT_TRUE(events_.wait<mqttsn::upstream_subscribed>("s1", 3));
  const auto subs = events_.all<mqttsn::upstream_subscribed>("s1");
  ASSERT_EQ(subs.size(), 3u);
  EXPECT_EQ(subs[0].ref, 1u);
  EXPECT_EQ(subs[0].granted, mqttsn::qos::at_most_once);
  EXPECT_EQ(subs[1].ref, 2u);
  EXPECT_EQ(subs[1].granted, mqttsn::qos::at_least_once);
  EXPECT_EQ(subs[2].ref, 3u);
  EXPECT_EQ(subs[2].granted, mqttsn::qos::exactly_once);
}

TEST_F(PahoUpstream, publish_with_ref_is_acknowledged_and_comes_back_as_message) {
  auto& broker = start_broker();
  start(broker);
  connect("p1");
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>("p1"));
  subscribe("p1", {1, "echo/#", mqttsn::qos::exactly_once});
  ASSERT_TRUE(events_.wait<mqttsn::upstream_subscribed>("p1"));

  publish("p1", {7, "echo/one", to_bytes("hello"), mqttsn::qos::at_least_once, false});
  auto ack = events_.wait<mqttsn::upstream_published>("p1");
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->ref, 7u);
  auto m = events_.wait<mqttsn::upstream_message>("p1");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->topic, "echo/one");
  EXPECT_EQ(to_string(m->payload), "hello");
  EXPECT_EQ(m->q, mqttsn::qos::at_least_once);
  EXPECT_FALSE(m->retain);

  publish("p1", {8, "echo/two", to_bytes(std::string("\0\x01\xff", 3)), mqttsn::qos::exactly_once,
                 false});
  auto ack2 = events_.wait<mqttsn::upstream_published>("p1", 2);
  ASSERT_TRUE(ack2);
  EXPECT_EQ(ack2->ref, 8u);
  auto m2 = events_.wait<mqttsn::upstream_message>("p1", 2);
  ASSERT_TRUE(m2);
  EXPECT_EQ(m2->payload, to_bytes(std::string("\0\x01\xff", 3)));
  EXPECT_EQ(m2->q, mqttsn::qos::exactly_once);
  EXPECT_EQ(stats().acks, 2u);
}

TEST_F(PahoUpstream, fire_and_forget_publishes_reach_the_broker) {
  auto& broker = start_broker();
  itest::mqtt_test_client observer(broker);
  ASSERT_TRUE(observer.subscribe("ff/#", 2));
  start(broker);
  connect("f1");
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>("f1"));
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>(gw));

  publish("f1", {0, "ff/qos0", to_bytes("zero"), mqttsn::qos::at_most_once, false});
  auto m = observer.wait_message("ff/qos0");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->payload, "zero");
  EXPECT_EQ(m->qos, 0);

  // A will the gateway publishes for a lost client: ref 0 at the will's own QoS.
  publish("f1", {0, "ff/will", to_bytes("bye"), mqttsn::qos::at_least_once, false});
  m = observer.wait_message("ff/will");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->payload, "bye");
  EXPECT_EQ(m->qos, 1);

  // QoS -1 goes out on the gateway-level connection.
  publish(gw, {0, "ff/qosm1", to_bytes("minus one"), mqttsn::qos::at_most_once, false});
  m = observer.wait_message("ff/qosm1");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->payload, "minus one");
  EXPECT_TRUE(events_.all<mqttsn::upstream_published>("f1").empty());
}

TEST_F(PahoUpstream, retained_message_arrives_with_retain_flag) {
  auto& broker = start_broker();
  itest::mqtt_test_client feeder(broker);
  ASSERT_TRUE(feeder.publish("ret/t", "kept", 1, true));
  start(broker);
  connect("r1");
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>("r1"));
  subscribe("r1", {1, "ret/#", mqttsn::qos::at_least_once});
  auto m = events_.wait<mqttsn::upstream_message>("r1");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->topic, "ret/t");
  EXPECT_EQ(to_string(m->payload), "kept");
  EXPECT_TRUE(m->retain);
  EXPECT_EQ(m->q, mqttsn::qos::at_least_once);

  // A live message on the same topic is not retained for this subscriber.
  ASSERT_TRUE(feeder.publish("ret/t", "live", 0, false));
  auto live = events_.wait<mqttsn::upstream_message>("r1", 2);
  ASSERT_TRUE(live);
  EXPECT_EQ(to_string(live->payload), "live");
  EXPECT_FALSE(live->retain);
  EXPECT_EQ(live->q, mqttsn::qos::at_most_once);  // min(published, granted)
}

TEST_F(PahoUpstream, unsubscribe_is_acknowledged_and_stops_messages) {
  auto& broker = start_broker();
  itest::mqtt_test_client feeder(broker);
  start(broker);
  connect("u1");
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>("u1"));
  subscribe("u1", {1, "un/#", mqttsn::qos::at_least_once});
  ASSERT_TRUE(events_.wait<mqttsn::upstream_subscribed>("u1"));
  unsubscribe("u1", {2, "un/#"});
  auto u = events_.wait<mqttsn::upstream_unsubscribed>("u1");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->ref, 2u);
  // Nothing on un/# reaches u1 any more; a marker on another subscription proves delivery works.
  subscribe("u1", {3, "marker", mqttsn::qos::at_least_once});
  ASSERT_TRUE(events_.wait<mqttsn::upstream_subscribed>("u1", 2));
  ASSERT_TRUE(feeder.publish("un/x", "late", 1));
  ASSERT_TRUE(feeder.publish("marker", "m", 1));
  auto m = events_.wait<mqttsn::upstream_message>("u1");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->topic, "marker");
}

// The will travels in the CONNECT: when the broker closes our connection without DISCONNECT (here
// a takeover by another connection with the same client id), it publishes the will.
TEST_F(PahoUpstream, will_travels_with_the_connect) {
  auto& broker = start_broker();
  itest::mqtt_test_client observer(broker);
  ASSERT_TRUE(observer.subscribe("will/#", 1));
  start(broker);
  connect("w1", {.clean_session = true,
                 .keep_alive = 60,
                 .will = mqttsn::will_message{"will/w1", to_bytes("gone"),
                                              mqttsn::qos::at_least_once, false}});
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>("w1"));
  {
    itest::mqtt_test_client thief(broker, {.client_id = "w1"});
    auto will = observer.wait_message("will/w1");
    ASSERT_TRUE(will);
    EXPECT_EQ(will->payload, "gone");
    EXPECT_EQ(will->qos, 1);
    EXPECT_TRUE(events_.wait<mqttsn::upstream_lost>("w1"));
  }
  disconnect("w1");
}

TEST_F(PahoUpstream, empty_will_payload_is_accepted) {
  auto& broker = start_broker();
  itest::mqtt_test_client observer(broker);
  ASSERT_TRUE(observer.subscribe("will/#", 1));
  start(broker);
  connect("w2", {.clean_session = true,
                 .keep_alive = 60,
                 .will = mqttsn::will_message{"will/w2", {}, mqttsn::qos::at_most_once, false}});
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>("w2"));
  itest::mqtt_test_client thief(broker, {.client_id = "w2"});
  auto will = observer.wait_message("will/w2");
  ASSERT_TRUE(will);
  EXPECT_EQ(will->payload, "");
  disconnect("w2");
}

// disconnect() is a clean DISCONNECT: the broker drops the will. A connect() for a client that is
// connected closes the old connection cleanly first, so no will there either.
TEST_F(PahoUpstream, disconnect_and_reconnect_publish_no_will) {
  auto& broker = start_broker();
  itest::mqtt_test_client observer(broker);
  ASSERT_TRUE(observer.subscribe("will/#", 1));
  start(broker);
  const mqttsn::upstream_connect with_will{
      true, 60,
      mqttsn::will_message{"will/d1", to_bytes("gone"), mqttsn::qos::at_least_once, false}};

  connect("d1", with_will);
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>("d1"));
  disconnect("d1");
  EXPECT_FALSE(io_.call([&] { return up_->connected("d1"); }));
  connect("d1", with_will);  // waits for the old connection to be closed
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>("d1", 2));
  connect("d1", with_will);  // CONNECT while connected: a new connection replaces the old one
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>("d1", 3));
  disconnect("d1");
  ASSERT_TRUE(wait_until([&] { return io_.call([&] { return up_->closing(); }) == 0; }, patience));

  // Everything the broker would have published before this marker has arrived by then.
  itest::mqtt_test_client feeder(broker);
  ASSERT_TRUE(feeder.publish("will/marker", "m", 1));
  ASSERT_TRUE(observer.wait_message("will/marker"));
  EXPECT_EQ(observer.count("will/d1"), 0u);
  EXPECT_TRUE(events_.all<mqttsn::upstream_lost>("d1").empty());
  EXPECT_EQ(stats().connects, 4u);  // three for d1, one for the gateway connection
}

TEST_F(PahoUpstream, refused_connect_reports_the_reason) {
  auto& broker = start_broker({.allow_anonymous = false, .users = {{"alice", "secret"}}});
  start(broker);
  connect("anon");
  auto refused = events_.wait<mqttsn::upstream_refused>("anon");
  ASSERT_TRUE(refused);
  EXPECT_NE(refused->reason.find("authoriz"), std::string::npos) << refused->reason;
  EXPECT_TRUE(events_.all<mqttsn::upstream_connected>("anon").empty());
  // A refused client is forgotten; the gateway-level connection keeps trying on its own.
  EXPECT_TRUE(
      wait_until([&] { return io_.call([&] { return up_->connections(); }) == 1u; }, patience));
  EXPECT_GE(stats().refusals, 1u);
}

TEST_F(PahoUpstream, unreachable_broker_gives_no_event_and_disconnect_ends_the_retries) {
  const auto port = itest::free_port(false);  // nothing listens there
  start(settings_for("tcp://127.0.0.1:" + std::to_string(port)));
  connect("lonely");
  // Retries every 100..400 ms, silently: the session times out on its own.
  EXPECT_FALSE(wait_until([&] { return events_.count("lonely") > 0; }, 1s));
  EXPECT_GE(stats().connect_failures, 2u);
  disconnect("lonely");
  EXPECT_EQ(io_.call([&] { return up_->connections(); }), 1u);  // only the gateway-level one
  EXPECT_TRUE(wait_until([&] { return io_.call([&] { return up_->closing(); }) == 0; }, patience));
  EXPECT_EQ(events_.count("lonely"), 0u);
}

TEST_F(PahoUpstream, broker_restart_reports_lost_then_connected_again) {
  auto& broker = start_broker();
  start(broker);
  connect("rs", {.clean_session = false, .keep_alive = 30, .will = std::nullopt});
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>("rs"));
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>(gw));

  broker.stop();
  EXPECT_TRUE(events_.wait<mqttsn::upstream_lost>("rs"));
  EXPECT_TRUE(events_.wait<mqttsn::upstream_lost>(gw));
  broker.start();
  auto back = events_.wait<mqttsn::upstream_connected>("rs", 2);
  ASSERT_TRUE(back);
  EXPECT_FALSE(back->session_present);  // the broker kept nothing (no persistence)
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>(gw, 2));
  const auto s = stats();
  EXPECT_GE(s.connection_losses, 2u);
  EXPECT_GE(s.reconnects, 2u);

  // The gateway connection published its retained "online" again on the new broker.
  itest::mqtt_test_client observer(broker);
  ASSERT_TRUE(observer.subscribe("itest/gateway/status", 1));
  auto status = observer.wait_message("itest/gateway/status");
  ASSERT_TRUE(status);
  EXPECT_EQ(status->payload, "online");
  EXPECT_TRUE(status->retained);
}

// With a kept broker session, requests the broker never answered (here: made while the broker was
// down) are sent once the connection is back, and answered.
TEST_F(PahoUpstream, kept_session_gets_its_requests_answered_after_reconnect) {
  auto& broker = start_broker({.persistence = true});
  start(broker);
  connect("ks", {.clean_session = false, .keep_alive = 30, .will = std::nullopt});
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>("ks"));
  subscribe("ks", {1, "ks/#", mqttsn::qos::at_least_once});
  ASSERT_TRUE(events_.wait<mqttsn::upstream_subscribed>("ks"));

  broker.stop();
  ASSERT_TRUE(events_.wait<mqttsn::upstream_lost>("ks"));
  publish("ks", {5, "ks/x", to_bytes("while down"), mqttsn::qos::at_least_once, false});
  subscribe("ks", {6, "more/#", mqttsn::qos::at_least_once});
  publish("ks", {0, "ks/dropped", to_bytes("qos 0"), mqttsn::qos::at_most_once, false});
  broker.start();

  auto back = events_.wait<mqttsn::upstream_connected>("ks", 2);
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->session_present);
  auto ack = events_.wait<mqttsn::upstream_published>("ks");
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->ref, 5u);
  auto sub = events_.wait<mqttsn::upstream_subscribed>("ks", 2);
  ASSERT_TRUE(sub);
  EXPECT_EQ(sub->ref, 6u);
  auto m = events_.wait<mqttsn::upstream_message>("ks");  // the kept subscription still works
  ASSERT_TRUE(m);
  EXPECT_EQ(m->topic, "ks/x");
  EXPECT_GE(stats().publishes_dropped, 1u);
}

TEST_F(PahoUpstream, status_topic_is_online_then_offline_after_stop) {
  auto& broker = start_broker();
  itest::mqtt_test_client observer(broker);
  ASSERT_TRUE(observer.subscribe("itest/gateway/status", 1));
  start(broker);
  auto online = observer.wait_message("itest/gateway/status");
  ASSERT_TRUE(online);
  EXPECT_EQ(online->payload, "online");

  connect("st");
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>("st"));
  shut_down();
  auto offline = observer.wait_message("itest/gateway/status");
  ASSERT_TRUE(offline);
  EXPECT_EQ(offline->payload, "offline");

  // Retained: a later subscriber sees "offline" too (and not the gateway's will, which a clean
  // DISCONNECT discarded: there is exactly one message).
  itest::mqtt_test_client late(broker);
  ASSERT_TRUE(late.subscribe("itest/gateway/status", 1));
  auto kept = late.wait_message("itest/gateway/status");
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->payload, "offline");
  EXPECT_TRUE(kept->retained);
}

// Paho must not write persistence files (into the working directory, by default).
TEST_F(PahoUpstream, writes_no_persistence_files) {
  auto& broker = start_broker();
  start(broker);
  connect("nofiles", {.clean_session = false, .keep_alive = 30, .will = std::nullopt});
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>("nofiles"));
  publish("nofiles", {1, "nf/t", to_bytes("x"), mqttsn::qos::exactly_once, false});
  ASSERT_TRUE(events_.wait<mqttsn::upstream_published>("nofiles"));
  shut_down();
  for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::current_path())) {
    const auto name = entry.path().filename().string();
    EXPECT_EQ(name.find("nofiles"), std::string::npos) << "persistence left behind: " << name;
    EXPECT_EQ(name.find("itest-gw-"), std::string::npos) << "persistence left behind: " << name;
  }
}

TEST_F(PahoUpstream, suback_failure_is_reported_without_granted_qos) {
  scripted_broker broker(0x00, 0x80);
  start(settings_for(broker.uri()));
  connect("s80");
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>("s80"));
  subscribe("s80", {4, "not/allowed", mqttsn::qos::at_least_once});
  auto sub = events_.wait<mqttsn::upstream_subscribed>("s80");
  ASSERT_TRUE(sub);
  EXPECT_EQ(sub->ref, 4u);
  EXPECT_FALSE(sub->granted.has_value());
}

TEST_F(PahoUpstream, every_connack_refusal_has_its_reason) {
  const std::vector<std::pair<std::uint8_t, std::string>> cases{
      {1, "unacceptable protocol version"},
      {2, "identifier rejected"},
      {3, "server unavailable"},
      {4, "bad user name or password"},
      {5, "not authorized"}};
  for (const auto& [rc, reason] : cases) {
    SCOPED_TRACE(static_cast<int>(rc));
    scripted_broker broker(rc, 0x00);
    start(settings_for(broker.uri()));
    connect("refused");
    auto refused = events_.wait<mqttsn::upstream_refused>("refused");
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->reason, reason);
    EXPECT_TRUE(events_.all<mqttsn::upstream_connected>("refused").empty());
    shut_down();
    io_.restart();
    events_.clear();
  }
}

TEST_F(PahoUpstream, the_gateways_own_client_id_is_refused) {
  auto& broker = start_broker();
  const auto s = settings_for(broker.uri());
  start(s);
  connect(s.gateway_client_id);
  auto refused = events_.wait<mqttsn::upstream_refused>(s.gateway_client_id);
  ASSERT_TRUE(refused);
  EXPECT_NE(refused->reason.find("gateway"), std::string::npos);
}

TEST_F(PahoUpstream, configuration_errors_throw_at_construction) {
  auto s = settings_for("tcp://127.0.0.1:1");
  s.status_topic = "status/#";
  EXPECT_THROW(gateway::paho_upstream(io_.io(), s), std::invalid_argument);
  s = settings_for("nonsense://127.0.0.1:1");
  EXPECT_THROW(gateway::paho_upstream(io_.io(), s), std::invalid_argument);
}

}  // namespace
