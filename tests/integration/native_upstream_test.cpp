// gateway::native_upstream (the gateway's own MQTT 3.1.1 client: aggregating mode's shared
// connection and transparent mode's per-client ones) against a scripted broker on loopback, which
// checks every packet the client sends and answers exactly what a test needs (session present or
// not, a lost PUBACK, a DUP PUBLISH), and against the real Mosquitto for a round trip and a restart
// that keeps the session.
#include "gateway/native_upstream.hpp"

#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mqttsn/mqtt_codec.hpp"
#include "tests/integration/harness.hpp"

namespace {

using namespace std::chrono_literals;
using itest::wait_until;
namespace m = mqttsn::mqtt311;

constexpr auto patience = 10s;
const std::string gw{gateway::gateway_connection};

mqttsn::bytes to_bytes(std::string_view s) { return {s.begin(), s.end()}; }

// Upstream events, recorded on the io thread.
class recorder {
 public:
  gateway::upstream::event_handler handler() {
    return [this](const std::string& client_id, mqttsn::upstream_event e) {
      std::lock_guard lock(mutex_);
      events_.emplace_back(client_id, std::move(e));
    };
  }
  // Events of one connection (the gateway-level one unless `client_id` says otherwise).
  template <class T>
  std::vector<T> all(const std::string& client_id = gw) const {
    std::lock_guard lock(mutex_);
    std::vector<T> out;
    for (const auto& [id, e] : events_) {
      if (id == client_id && std::holds_alternative<T>(e)) out.push_back(std::get<T>(e));
    }
    return out;
  }
  template <class T>
  std::optional<T> wait(std::size_t n = 1, std::chrono::milliseconds timeout = patience,
                        const std::string& client_id = gw) const {
    if (!wait_until([&] { return all<T>(client_id).size() >= n; }, timeout)) return std::nullopt;
    return all<T>(client_id)[n - 1];
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::pair<std::string, mqttsn::upstream_event>> events_;
};

// One accepted connection of the scripted broker: whole packets in, packets out, bounded waits.
class broker_side {
 public:
  explicit broker_side(int fd) : fd_(fd) {}
  ~broker_side() { close(); }
  broker_side(const broker_side&) = delete;
  broker_side& operator=(const broker_side&) = delete;

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void send(const m::packet& p) { ASSERT_TRUE(itest::send_all(fd_, m::encode(p))); }
  bool send_raw(const m::bytes& b) { return itest::send_all(fd_, b); }

  // The next packet from the client; nullopt on timeout or when the client closed.
  std::optional<m::packet> read(std::chrono::milliseconds timeout = patience) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto peeked = m::peek_frame(buf_);
      if (auto* info = std::get_if<std::optional<m::frame_info>>(&peeked);
          info && *info && (*info)->size() <= buf_.size()) {
        const auto n = (*info)->size();
        auto r = m::decode(std::span<const std::uint8_t>(buf_).first(n));
        buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(n));
        EXPECT_TRUE(std::holds_alternative<m::packet>(r)) << "the client sent a malformed packet";
        if (!std::holds_alternative<m::packet>(r)) return std::nullopt;
        return std::get<m::packet>(r);
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) != 1) return std::nullopt;
      std::uint8_t chunk[4096];
      const auto r = ::recv(fd_, chunk, sizeof chunk, 0);
      if (r <= 0) return std::nullopt;
      buf_.insert(buf_.end(), chunk, chunk + r);
    }
  }
  // The next packet, which must be a T.
  template <class T>
  T expect(std::chrono::milliseconds timeout = patience) {
    auto p = read(timeout);
    EXPECT_TRUE(p.has_value()) << "no packet from the client";
    if (!p) return T{};
    EXPECT_TRUE(std::holds_alternative<T>(*p)) << "packet index " << p->index();
    return std::holds_alternative<T>(*p) ? std::get<T>(*p) : T{};
  }
  // True once the client has closed the connection (within `timeout`).
  bool closed_by_client(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) == 1) {
        std::uint8_t chunk[4096];
        const auto r = ::recv(fd_, chunk, sizeof chunk, 0);
        if (r <= 0) return true;
        buf_.insert(buf_.end(), chunk, chunk + r);
      }
    }
    return false;
  }

 private:
  int fd_;
  std::vector<std::uint8_t> buf_;
};

class scripted_broker {
 public:
  scripted_broker() : port_(itest::free_port(false)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int on = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    const auto a = itest::loopback(port_);
    if (::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_fd_, 8) != 0) {
      throw std::runtime_error("scripted_broker: cannot listen on port " + std::to_string(port_));
    }
  }
  ~scripted_broker() { ::close(listen_fd_); }
  scripted_broker(const scripted_broker&) = delete;
  scripted_broker& operator=(const scripted_broker&) = delete;

  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

  std::unique_ptr<broker_side> accept(std::chrono::milliseconds timeout = patience) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return nullptr;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    return fd < 0 ? nullptr : std::make_unique<broker_side>(fd);
  }

  // Accepts the client, checks its CONNECT, answers CONNACK, and takes the retained "online".
  std::unique_ptr<broker_side> accept_session(bool session_present,
                                              m::connect_packet* seen = nullptr) {
    auto c = accept();
    EXPECT_TRUE(c) << "the client did not connect";
    if (!c) return c;
    auto connect = c->expect<m::connect_packet>();
    if (seen) *seen = connect;
    c->send(m::connack_packet{session_present, 0});
    auto online = c->expect<m::publish_packet>();
    EXPECT_EQ(online.topic, "itest/status");
    EXPECT_EQ(online.payload, to_bytes("online"));
    EXPECT_TRUE(online.retain);
    EXPECT_EQ(online.qos, 1);
    c->send(m::puback_packet{online.packet_id});
    return c;
  }

 private:
  std::uint16_t port_;
  int listen_fd_ = -1;
};

// NOLINTNEXTLINE(readability-identifier-naming): the gtest suite name
class NativeUpstream : public ::testing::Test {
 protected:
  void TearDown() override { shut_down(); }

  gateway::paho_settings settings_for(const std::string& uri) const {
    gateway::paho_settings s;
    s.broker = uri;
    s.gateway_client_id = std::string("itest-native-") +
                          ::testing::UnitTest::GetInstance()->current_test_info()->name();
    s.status_topic = "itest/status";
    s.connect_timeout = 2s;
    s.reconnect_min = 50ms;
    s.reconnect_max = 200ms;
    s.disconnect_timeout = 500ms;
    s.gateway_clean_session = false;
    return s;
  }
  void start(const gateway::paho_settings& s) {
    up_ = std::make_unique<gateway::native_upstream>(io_.io(), s);
    io_.call([&] { up_->start(events_.handler()); });
  }
  // Flow control: starts with `offer`, then connects "sensor-1" with a kept session. The broker's
  // end of the gateway-level connection goes to `gateway_side` (kept open), and of the sensor's
  // connection to `sensor_side`.
  void start_with_kept_sensor(scripted_broker& broker, const gateway::paho_settings& s,
                              gateway::upstream::offer_handler offer, std::unique_ptr<broker_side>& gateway_side,
                              std::unique_ptr<broker_side>& sensor_side) {
    up_ = std::make_unique<gateway::native_upstream>(io_.io(), s);
    io_.call([&] {
      up_->set_offer(std::move(offer));
      up_->start(events_.handler());
    });
    gateway_side = broker.accept_session(false);
    ASSERT_TRUE(gateway_side);
    mqttsn::upstream_connect uc;
    uc.clean_session = false;
    io_.call([&] { up_->connect("sensor-1", uc); });
    sensor_side = broker.accept();
    ASSERT_TRUE(sensor_side);
    sensor_side->expect<m::connect_packet>();
    sensor_side->send(m::connack_packet{false, 0});
    ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>(1, patience, "sensor-1"));
  }
  void shut_down(std::chrono::milliseconds timeout = 2s) {
    io_.stop();
    if (up_) up_->stop(timeout);
    up_.reset();
  }
  void publish(mqttsn::upstream_publish p) {
    io_.call([&] { up_->publish(gw, p); });
  }
  gateway::paho_stats stats() {
    return io_.call([&] { return up_->stats(); });
  }

  itest::io_thread io_;
  recorder events_;
  std::unique_ptr<gateway::native_upstream> up_;
};

TEST_F(NativeUpstream, connects_with_a_kept_session_a_retained_will_and_the_login) {
  scripted_broker broker;
  auto s = settings_for(broker.uri());
  s.login = gateway::broker_login{"gw-user", "gw-secret"};
  s.gateway_keep_alive = 30s;
  start(s);
  m::connect_packet seen;
  auto c = broker.accept_session(false, &seen);
  ASSERT_TRUE(c);
  EXPECT_EQ(seen.client_id,
            "itest-native-connects_with_a_kept_session_a_retained_will_and_the_login");
  EXPECT_FALSE(seen.clean_session);
  EXPECT_EQ(seen.keep_alive, 30);
  ASSERT_TRUE(seen.will.has_value());
  EXPECT_EQ(seen.will->topic, "itest/status");
  EXPECT_EQ(seen.will->payload, to_bytes("offline"));
  EXPECT_EQ(seen.will->qos, 1);
  EXPECT_TRUE(seen.will->retain);
  EXPECT_EQ(seen.username, "gw-user");
  EXPECT_EQ(seen.password, to_bytes("gw-secret"));
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>());
  EXPECT_FALSE(events_.all<mqttsn::upstream_connected>()[0].session_present);

  // stop(): a retained "offline", and after its PUBACK a DISCONNECT.
  std::thread stopper([&] { shut_down(3s); });
  auto offline = c->expect<m::publish_packet>();
  EXPECT_EQ(offline.payload, to_bytes("offline"));
  EXPECT_TRUE(offline.retain);
  c->send(m::puback_packet{offline.packet_id});
  c->expect<m::disconnect_packet>();
  stopper.join();
}

TEST_F(NativeUpstream,
       after_a_reconnect_with_session_present_unacknowledged_publishes_go_again_with_dup) {
  scripted_broker broker;
  start(settings_for(broker.uri()));
  auto c = broker.accept_session(false);
  ASSERT_TRUE(c);
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>());
  publish({1, "t/one", to_bytes("one"), mqttsn::qos::at_least_once, false});
  publish({2, "t/two", to_bytes("two"), mqttsn::qos::exactly_once, false});
  publish({3, "t/three", to_bytes("three"), mqttsn::qos::at_least_once, false});
  const auto one = c->expect<m::publish_packet>();
  const auto two = c->expect<m::publish_packet>();
  const auto three = c->expect<m::publish_packet>();
  EXPECT_EQ(one.topic, "t/one");
  EXPECT_FALSE(one.dup);
  EXPECT_EQ(two.qos, 2);
  c->send(m::puback_packet{three.packet_id});  // only "three" is acknowledged
  c->send(m::pubrec_packet{two.packet_id});
  EXPECT_EQ(c->expect<m::pubrel_packet>().packet_id, two.packet_id);
  ASSERT_TRUE(events_.wait<mqttsn::upstream_published>());
  EXPECT_EQ(events_.all<mqttsn::upstream_published>()[0].ref, 3U);
  c.reset();  // the broker drops the connection: PUBACK of "one" and PUBCOMP of "two" never came
  ASSERT_TRUE(events_.wait<mqttsn::upstream_lost>());

  // Back with the session: "one" again with DUP and its packet id, PUBREL for "two", no "three".
  auto c2 = broker.accept();
  ASSERT_TRUE(c2);
  c2->expect<m::connect_packet>();
  c2->send(m::connack_packet{true, 0});
  const auto again = c2->expect<m::publish_packet>();
  EXPECT_EQ(again.topic, "t/one");
  EXPECT_TRUE(again.dup);
  EXPECT_EQ(again.packet_id, one.packet_id);
  EXPECT_EQ(c2->expect<m::pubrel_packet>().packet_id, two.packet_id);
  const auto online = c2->expect<m::publish_packet>();
  EXPECT_EQ(online.payload, to_bytes("online"));
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>(2));
  EXPECT_TRUE(events_.all<mqttsn::upstream_connected>()[1].session_present);
  c2->send(m::puback_packet{again.packet_id});
  c2->send(m::pubcomp_packet{two.packet_id});
  ASSERT_TRUE(events_.wait<mqttsn::upstream_published>(3));
  EXPECT_EQ(events_.all<mqttsn::upstream_published>()[1].ref, 1U);
  EXPECT_EQ(events_.all<mqttsn::upstream_published>()[2].ref, 2U);
  // A late duplicate answer changes nothing.
  c2->send(m::puback_packet{again.packet_id});
  c2->send(m::pingreq_packet{});  // answered by nothing, but proves the stream is still read
  publish({4, "t/four", to_bytes("four"), mqttsn::qos::at_least_once, false});
  const auto four = c2->expect<m::publish_packet>();
  c2->send(m::puback_packet{four.packet_id});
  ASSERT_TRUE(events_.wait<mqttsn::upstream_published>(4));
  EXPECT_EQ(events_.all<mqttsn::upstream_published>().size(), 4U);
  EXPECT_EQ(stats().reconnects, 1U);
}

TEST_F(NativeUpstream,
       without_session_present_requests_in_flight_are_dropped_for_the_session_to_resend) {
  scripted_broker broker;
  start(settings_for(broker.uri()));
  auto c = broker.accept_session(false);
  ASSERT_TRUE(c);
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>());
  publish({1, "t/one", to_bytes("one"), mqttsn::qos::at_least_once, false});
  c->expect<m::publish_packet>();
  c.reset();
  ASSERT_TRUE(events_.wait<mqttsn::upstream_lost>());
  // Sent while the connection is down: kept, then dropped with the old session too.
  publish({2, "t/two", to_bytes("two"), mqttsn::qos::at_least_once, false});
  auto c2 = broker.accept_session(false);  // the next PUBLISH after CONNACK is "online"
  ASSERT_TRUE(c2);
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>(2));
  publish({5, "t/five", to_bytes("five"), mqttsn::qos::at_least_once, false});
  EXPECT_EQ(c2->expect<m::publish_packet>().topic, "t/five");
}

TEST_F(NativeUpstream, requests_made_while_down_go_out_in_order_when_the_session_is_back) {
  scripted_broker broker;
  start(settings_for(broker.uri()));
  auto c = broker.accept_session(false);
  ASSERT_TRUE(c);
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>());
  c.reset();
  ASSERT_TRUE(events_.wait<mqttsn::upstream_lost>());
  publish({7, "t/a", to_bytes("a"), mqttsn::qos::at_least_once, false});
  io_.call([&] { up_->subscribe(gw, {8, "f/#", mqttsn::qos::exactly_once}); });
  publish({0, "t/qos0", to_bytes("x"), mqttsn::qos::at_most_once, false});  // dropped: down
  auto c2 = broker.accept();
  ASSERT_TRUE(c2);
  c2->expect<m::connect_packet>();
  c2->send(m::connack_packet{true, 0});
  const auto a = c2->expect<m::publish_packet>();
  EXPECT_EQ(a.topic, "t/a");
  EXPECT_FALSE(a.dup);  // never sent before
  const auto sub = c2->expect<m::subscribe_packet>();
  ASSERT_EQ(sub.topics.size(), 1U);
  EXPECT_EQ(sub.topics[0], (m::subscription{"f/#", 2}));
  c2->send(m::suback_packet{sub.packet_id, {1}});
  auto s = events_.wait<mqttsn::upstream_subscribed>();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->ref, 8U);
  EXPECT_EQ(s->granted, mqttsn::qos::at_least_once);
  EXPECT_EQ(stats().publishes_dropped, 1U);
}

TEST_F(NativeUpstream,
       a_broker_qos2_message_is_delivered_once_until_its_pubrel_and_qos1_is_acknowledged) {
  scripted_broker broker;
  start(settings_for(broker.uri()));
  auto c = broker.accept_session(false);
  ASSERT_TRUE(c);
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>());
  c->send(m::publish_packet{"in/q2", to_bytes("first"), 2, false, false, 7});
  EXPECT_EQ(c->expect<m::pubrec_packet>().packet_id, 7);
  c->send(m::publish_packet{"in/q2", to_bytes("first"), 2, false, true, 7});  // DUP before PUBREL
  EXPECT_EQ(c->expect<m::pubrec_packet>().packet_id, 7);
  c->send(m::pubrel_packet{7});
  EXPECT_EQ(c->expect<m::pubcomp_packet>().packet_id, 7);
  c->send(m::publish_packet{"in/q2", to_bytes("second"), 2, false, false, 7});  // id reused: new
  EXPECT_EQ(c->expect<m::pubrec_packet>().packet_id, 7);
  c->send(m::publish_packet{"in/q1", to_bytes("third"), 1, true, false, 9});
  EXPECT_EQ(c->expect<m::puback_packet>().packet_id, 9);
  c->send(m::publish_packet{"in/q0", to_bytes("fourth"), 0, false, false, 0});
  ASSERT_TRUE(events_.wait<mqttsn::upstream_message>(4));
  ASSERT_FALSE(events_.wait<mqttsn::upstream_message>(5, 300ms));
  const auto got = events_.all<mqttsn::upstream_message>();
  EXPECT_EQ(got[0].payload, to_bytes("first"));
  EXPECT_EQ(got[0].q, mqttsn::qos::exactly_once);
  EXPECT_EQ(got[1].payload, to_bytes("second"));
  EXPECT_EQ(got[2].payload, to_bytes("third"));
  EXPECT_TRUE(got[2].retain);
  EXPECT_EQ(got[2].q, mqttsn::qos::at_least_once);
  EXPECT_EQ(got[3].payload, to_bytes("fourth"));
  EXPECT_EQ(stats().messages, 4U);
}

// A killed broker may forget a QoS 2 PUBLISH it sent (and we PUBRECed) and, after its restart,
// reuse the id for a new message without DUP: that one must be delivered, not taken for a resend.
TEST_F(NativeUpstream,
       a_broker_qos2_id_reused_without_dup_after_a_lost_connection_is_a_new_message) {
  scripted_broker broker;
  start(settings_for(broker.uri()));
  auto c = broker.accept_session(false);
  ASSERT_TRUE(c);
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>());
  c->send(m::publish_packet{"in/q2", to_bytes("before"), 2, false, false, 7});
  EXPECT_EQ(c->expect<m::pubrec_packet>().packet_id, 7);
  ASSERT_TRUE(events_.wait<mqttsn::upstream_message>(1));
  c.reset();  // killed before its PUBREL: it forgot message 7
  ASSERT_TRUE(events_.wait<mqttsn::upstream_lost>());

  auto c2 = broker.accept();
  ASSERT_TRUE(c2);
  c2->expect<m::connect_packet>();
  c2->send(m::connack_packet{true, 0});
  EXPECT_EQ(c2->expect<m::publish_packet>().payload, to_bytes("online"));
  c2->send(m::publish_packet{"in/q2", to_bytes("after"), 2, false, false, 7});  // new, same id
  EXPECT_EQ(c2->expect<m::pubrec_packet>().packet_id, 7);
  c2->send(
      m::publish_packet{"in/q2", to_bytes("after"), 2, false, true, 7});  // its resend: not again
  EXPECT_EQ(c2->expect<m::pubrec_packet>().packet_id, 7);
  c2->send(m::pubrel_packet{7});
  EXPECT_EQ(c2->expect<m::pubcomp_packet>().packet_id, 7);
  ASSERT_TRUE(events_.wait<mqttsn::upstream_message>(2));
  ASSERT_FALSE(events_.wait<mqttsn::upstream_message>(3, 300ms));
  const auto got = events_.all<mqttsn::upstream_message>();
  EXPECT_EQ(got[0].payload, to_bytes("before"));
  EXPECT_EQ(got[1].payload, to_bytes("after"));
}

TEST_F(NativeUpstream, packets_larger_than_the_read_buffer_and_many_per_read_arrive_whole) {
  scripted_broker broker;
  start(settings_for(broker.uri()));
  auto c = broker.accept_session(false);
  ASSERT_TRUE(c);
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>());
  mqttsn::bytes big(300'000);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::uint8_t>(i * 7);
  // One send: a small packet, the big one (several reads, the buffer grows), 500 small ones.
  m::bytes burst;
  m::encode(m::publish_packet{"in/first", to_bytes("a"), 0, false, false, 0}, burst);
  m::encode(m::publish_packet{"in/big", big, 1, false, false, 11}, burst);
  for (int i = 0; i < 500; ++i)
    m::encode(m::publish_packet{"in/small", to_bytes(std::to_string(i)), 0, false, false, 0},
              burst);
  ASSERT_TRUE(c->send_raw(burst));
  EXPECT_EQ(c->expect<m::puback_packet>().packet_id, 11);
  ASSERT_TRUE(events_.wait<mqttsn::upstream_message>(502));
  const auto got = events_.all<mqttsn::upstream_message>();
  EXPECT_EQ(got[0].payload, to_bytes("a"));
  EXPECT_EQ(got[1].topic, "in/big");
  EXPECT_EQ(got[1].payload, big);
  for (int i = 0; i < 500; ++i)
    EXPECT_EQ(got[2 + static_cast<std::size_t>(i)].payload, to_bytes(std::to_string(i)));
  // A packet over the 4 MiB limit closes the connection (and it comes back).
  m::bytes huge;
  m::encode(m::publish_packet{"in/huge", mqttsn::bytes(5 * 1024 * 1024), 0, false, false, 0}, huge);
  huge.resize(64);  // the header is enough: the client gives up before reading the rest
  ASSERT_TRUE(c->send_raw(huge));
  ASSERT_TRUE(events_.wait<mqttsn::upstream_lost>());
  ASSERT_TRUE(broker.accept_session(false));
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>(2));
}

TEST_F(NativeUpstream, qos0_publishes_beyond_the_write_queue_bound_are_dropped_and_counted) {
  scripted_broker broker;
  auto s = settings_for(broker.uri());
  s.max_queued_publishes = 5;
  start(s);
  auto c = broker.accept_session(false);
  ASSERT_TRUE(c);
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>());
  ASSERT_TRUE(wait_until([&] { return stats().acks == 1; }, patience));  // "online" is written
  // One handler: nothing is written before it returns, so the queue holds 5 and drops 15.
  io_.call([&] {
    for (int i = 0; i < 20; ++i)
      up_->publish(gw, {0, "burst", to_bytes(std::to_string(i)), mqttsn::qos::at_most_once, false});
  });
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(c->expect<m::publish_packet>().payload, to_bytes(std::to_string(i)));
  const auto st = stats();
  EXPECT_EQ(st.publishes_dropped, 15U);
  EXPECT_EQ(st.publishes, 6U);  // "online" and five
  EXPECT_FALSE(c->read(200ms).has_value());
}

TEST_F(NativeUpstream, a_refused_connect_and_a_missing_connack_are_retried) {
  scripted_broker broker;
  auto s = settings_for(broker.uri());
  s.connect_timeout = 300ms;
  start(s);
  auto c = broker.accept();
  ASSERT_TRUE(c);
  c->expect<m::connect_packet>();
  c->send(m::connack_packet{false, 5});  // not authorized
  auto c2 = broker.accept();
  ASSERT_TRUE(c2);
  c2->expect<m::connect_packet>();  // never answered: the connect timeout closes it
  EXPECT_TRUE(c2->closed_by_client(3s));
  auto c3 = broker.accept_session(false);
  ASSERT_TRUE(c3);
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>());
  const auto st = stats();
  EXPECT_EQ(st.refusals, 1U);
  EXPECT_EQ(st.connect_failures, 1U);
  EXPECT_EQ(st.connects, 1U);
  EXPECT_TRUE(events_.all<mqttsn::upstream_lost>().empty());
}

TEST_F(NativeUpstream, an_unanswered_ping_is_a_lost_connection) {
  scripted_broker broker;
  auto s = settings_for(broker.uri());
  s.gateway_keep_alive = 1s;
  start(s);
  auto c = broker.accept_session(false);
  ASSERT_TRUE(c);
  c->expect<m::pingreq_packet>(3s);  // not answered
  ASSERT_TRUE(events_.wait<mqttsn::upstream_lost>(1, 5s));
  EXPECT_EQ(stats().connection_losses, 1U);
}

// Transparent mode: a connection per client with the client's clean session, keep-alive, will
// and its own login; its requests and events carry its client id.
TEST_F(NativeUpstream, a_client_connection_carries_the_clients_will_keep_alive_and_login) {
  scripted_broker broker;
  auto s = settings_for(broker.uri());
  s.login = gateway::broker_login{"gw-user", "gw-secret"};
  s.client_logins.emplace("sensor-1", gateway::broker_login{"s1-user", "s1-secret"});
  start(s);
  auto g = broker.accept_session(false);
  ASSERT_TRUE(g);
  mqttsn::upstream_connect uc;
  uc.clean_session = true;
  uc.keep_alive = 45;
  uc.will = mqttsn::will_message{"w/sensor-1", to_bytes("gone"), mqttsn::qos::at_least_once, true};
  io_.call([&] { up_->connect("sensor-1", uc); });
  auto c = broker.accept();
  ASSERT_TRUE(c);
  auto seen = c->expect<m::connect_packet>();
  EXPECT_EQ(seen.client_id, "sensor-1");
  EXPECT_TRUE(seen.clean_session);
  EXPECT_EQ(seen.keep_alive, 45);
  ASSERT_TRUE(seen.will.has_value());
  EXPECT_EQ(seen.will->topic, "w/sensor-1");
  EXPECT_EQ(seen.will->payload, to_bytes("gone"));
  EXPECT_EQ(seen.will->qos, 1);
  EXPECT_TRUE(seen.will->retain);
  EXPECT_EQ(seen.username, "s1-user");
  EXPECT_EQ(seen.password, to_bytes("s1-secret"));
  c->send(m::connack_packet{false, 0});
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>(1, patience, "sensor-1"));
  EXPECT_TRUE(io_.call([&] { return up_->connected("sensor-1"); }));

  io_.call([&] {
    up_->publish("sensor-1", {7, "t/s1", to_bytes("x"), mqttsn::qos::at_least_once, false});
  });
  auto pub = c->expect<m::publish_packet>();
  EXPECT_EQ(pub.topic, "t/s1");
  c->send(m::puback_packet{pub.packet_id});
  auto acked = events_.wait<mqttsn::upstream_published>(1, patience, "sensor-1");
  ASSERT_TRUE(acked);
  EXPECT_EQ(acked->ref, 7U);
  EXPECT_TRUE(events_.all<mqttsn::upstream_published>().empty());  // not the gateway's

  // A client without a login of its own uses the gateway's.
  io_.call([&] { up_->connect("sensor-2", {}); });
  auto c2 = broker.accept();
  ASSERT_TRUE(c2);
  auto seen2 = c2->expect<m::connect_packet>();
  EXPECT_EQ(seen2.username, "gw-user");
  EXPECT_FALSE(seen2.will.has_value());

  // disconnect(): DISCONNECT, and the request in flight is never answered.
  io_.call([&] {
    up_->publish("sensor-1", {8, "t/s1", to_bytes("y"), mqttsn::qos::at_least_once, false});
  });
  auto pub2 = c->expect<m::publish_packet>();
  io_.call([&] { up_->disconnect("sensor-1"); });
  c->expect<m::disconnect_packet>();
  EXPECT_TRUE(c->closed_by_client(patience));
  EXPECT_FALSE(io_.call([&] { return up_->connected("sensor-1"); }));
  EXPECT_EQ(events_.all<mqttsn::upstream_published>("sensor-1").size(), 1U);
}

// A refusal of a client's first connection is final: upstream_refused with the broker's reason,
// and the client is forgotten (no retry). After an established connection, a refusal is reported
// and retried.
TEST_F(NativeUpstream, a_first_refusal_forgets_the_client_a_later_one_is_retried) {
  scripted_broker broker;
  start(settings_for(broker.uri()));
  auto g = broker.accept_session(false);  // kept open: the gateway-level connection
  ASSERT_TRUE(g);
  io_.call([&] { up_->connect("sensor-1", {}); });
  {
    auto c = broker.accept();
    ASSERT_TRUE(c);
    c->expect<m::connect_packet>();
    c->send(m::connack_packet{false, 5});
    auto refused = events_.wait<mqttsn::upstream_refused>(1, patience, "sensor-1");
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->reason, "not authorized");
  }
  EXPECT_FALSE(broker.accept(500ms)) << "a refused first connection was retried";
  EXPECT_EQ(io_.call([&] { return up_->connections(); }), 1U);  // the gateway-level one

  io_.call([&] { up_->connect("sensor-2", {}); });
  auto c = broker.accept();
  ASSERT_TRUE(c);
  c->expect<m::connect_packet>();
  c->send(m::connack_packet{false, 0});
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>(1, patience, "sensor-2"));
  c->close();  // lost: reported, and reconnected
  ASSERT_TRUE(events_.wait<mqttsn::upstream_lost>(1, patience, "sensor-2"));
  auto again = broker.accept();
  ASSERT_TRUE(again);
  again->expect<m::connect_packet>();
  again->send(m::connack_packet{false, 4});
  auto refused = events_.wait<mqttsn::upstream_refused>(1, patience, "sensor-2");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->reason, "bad user name or password");
  auto third = broker.accept();  // retried at reconnect_max pace
  ASSERT_TRUE(third);
  third->expect<m::connect_packet>();
  third->send(m::connack_packet{false, 0});
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>(2, patience, "sensor-2"));
  EXPECT_EQ(stats().refusals, 2U);
}

// connect() of a client that has a connection: the old one sends DISCONNECT (the broker drops
// its will) before the new CONNECT is written.
TEST_F(NativeUpstream, a_client_connecting_again_closes_its_old_connection_first) {
  scripted_broker broker;
  start(settings_for(broker.uri()));
  auto g = broker.accept_session(false);  // kept open: the gateway-level connection
  ASSERT_TRUE(g);
  mqttsn::upstream_connect uc;
  uc.will = mqttsn::will_message{"w/s", to_bytes("gone"), mqttsn::qos::at_most_once, false};
  io_.call([&] { up_->connect("sensor-1", uc); });
  auto old = broker.accept();
  ASSERT_TRUE(old);
  old->expect<m::connect_packet>();
  old->send(m::connack_packet{false, 0});
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>(1, patience, "sensor-1"));

  io_.call([&] { up_->connect("sensor-1", uc); });
  old->expect<m::disconnect_packet>();
  EXPECT_TRUE(old->closed_by_client(patience));
  auto fresh = broker.accept();
  ASSERT_TRUE(fresh);
  EXPECT_EQ(fresh->expect<m::connect_packet>().client_id, "sensor-1");
  fresh->send(m::connack_packet{false, 0});
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>(2, patience, "sensor-1"));
  EXPECT_TRUE(events_.all<mqttsn::upstream_lost>("sensor-1").empty());
  EXPECT_EQ(io_.call([&] { return up_->connections(); }), 2U);
}

// The gateway's own upstream client id is not a client's.
TEST_F(NativeUpstream, a_client_with_the_gateways_client_id_is_refused) {
  scripted_broker broker;
  auto s = settings_for(broker.uri());
  start(s);
  io_.call([&] { up_->connect(s.gateway_client_id, {}); });
  ASSERT_TRUE(events_.wait<mqttsn::upstream_refused>(1, patience, s.gateway_client_id));
}

// Flow control (docs/flow-control.md): while the session refuses (offer() false), a client's
// broker QoS 1/2 messages are held and not acknowledged; a DUP resend of a held one after a
// reconnect with the broker's session is not held twice; resume() delivers them in order and
// acknowledges each as it is taken; QoS 2 stays exactly once.
TEST_F(NativeUpstream, flow_control_holds_the_ack_until_the_session_takes_the_message) {
  scripted_broker broker;
  std::atomic<bool> room{false};
  std::atomic<int> offers{0};
  std::unique_ptr<broker_side> g;
  std::unique_ptr<broker_side> c;
  start_with_kept_sensor(
      broker, settings_for(broker.uri()),
      [&](const std::string& client_id, mqttsn::qos q) {
        EXPECT_EQ(client_id, "sensor-1");
        EXPECT_NE(q, mqttsn::qos::at_most_once);
        ++offers;
        return room.load();
      },
      g, c);
  if (HasFatalFailure()) return;
  const auto held = [&] { return io_.call([&] { return up_->held("sensor-1"); }); };

  c->send(m::publish_packet{"t/a", to_bytes("a"), 1, false, false, 1});
  c->send(m::publish_packet{"t/b", to_bytes("b"), 2, false, false, 2});
  c->send(m::publish_packet{"t/zero", to_bytes("z"), 0, false, false, 0});  // QoS 0: never held
  ASSERT_TRUE(events_.wait<mqttsn::upstream_message>(1, patience, "sensor-1"));
  EXPECT_EQ(events_.all<mqttsn::upstream_message>("sensor-1")[0].topic, "t/zero");
  EXPECT_EQ(held(), 2U);
  EXPECT_EQ(offers.load(), 1);  // "b" waits behind "a" without asking
  EXPECT_FALSE(c->read(300ms).has_value()) << "a held message was acknowledged";

  // The connection breaks; back with the broker's session, the broker resends both with DUP.
  c.reset();
  ASSERT_TRUE(events_.wait<mqttsn::upstream_lost>(1, patience, "sensor-1"));
  auto c2 = broker.accept();
  ASSERT_TRUE(c2);
  c2->expect<m::connect_packet>();
  c2->send(m::connack_packet{true, 0});
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>(2, patience, "sensor-1"));
  c2->send(m::publish_packet{"t/a", to_bytes("a"), 1, false, true, 1});
  c2->send(m::publish_packet{"t/b", to_bytes("b"), 2, false, true, 2});
  ASSERT_TRUE(wait_until([&] { return stats().held_duplicates == 2; }, patience));
  EXPECT_EQ(held(), 2U);
  EXPECT_EQ(stats().acks_deferred, 2U);
  EXPECT_EQ(events_.all<mqttsn::upstream_message>("sensor-1").size(), 1U);

  // Room: both delivered in order, each acknowledged then.
  room = true;
  io_.call([&] { up_->resume("sensor-1"); });
  EXPECT_EQ(c2->expect<m::puback_packet>().packet_id, 1);
  EXPECT_EQ(c2->expect<m::pubrec_packet>().packet_id, 2);
  const auto msgs = events_.all<mqttsn::upstream_message>("sensor-1");
  ASSERT_EQ(msgs.size(), 3U);
  EXPECT_EQ(msgs[1].topic, "t/a");
  EXPECT_EQ(msgs[1].q, mqttsn::qos::at_least_once);
  EXPECT_EQ(msgs[2].topic, "t/b");
  EXPECT_EQ(msgs[2].q, mqttsn::qos::exactly_once);
  EXPECT_EQ(held(), 0U);
  // QoS 2 stays exactly once: a resend before the PUBREL is answered, not delivered again.
  c2->send(m::publish_packet{"t/b", to_bytes("b"), 2, false, true, 2});
  EXPECT_EQ(c2->expect<m::pubrec_packet>().packet_id, 2);
  c2->send(m::pubrel_packet{2});
  EXPECT_EQ(c2->expect<m::pubcomp_packet>().packet_id, 2);
  // With room, a message is taken and acknowledged at once.
  c2->send(m::publish_packet{"t/c", to_bytes("c"), 1, false, false, 3});
  EXPECT_EQ(c2->expect<m::puback_packet>().packet_id, 3);
  EXPECT_EQ(events_.all<mqttsn::upstream_message>("sensor-1").size(), 4U);
  EXPECT_EQ(stats().held_overflows, 0U);
}

// Beyond max_held the oldest held message goes to the session anyway (its queue's drop policy)
// and is acknowledged; after a reconnect without the broker's session, held messages are still
// delivered but never acknowledged (their packet ids belonged to the old session).
TEST_F(NativeUpstream, flow_control_is_bounded_and_forgets_acks_of_a_lost_broker_session) {
  scripted_broker broker;
  auto s = settings_for(broker.uri());
  s.max_held = 2;
  std::atomic<bool> room{false};
  std::unique_ptr<broker_side> g;
  std::unique_ptr<broker_side> c;
  start_with_kept_sensor(broker, s, [&](const std::string&, mqttsn::qos) { return room.load(); }, g, c);
  if (HasFatalFailure()) return;

  for (std::uint16_t id = 1; id <= 3; ++id) {
    c->send(m::publish_packet{"t/" + std::to_string(id), to_bytes("x"), 1, false, false, id});
  }
  EXPECT_EQ(c->expect<m::puback_packet>().packet_id, 1);  // pushed out by the third
  ASSERT_TRUE(events_.wait<mqttsn::upstream_message>(1, patience, "sensor-1"));
  EXPECT_EQ(events_.all<mqttsn::upstream_message>("sensor-1")[0].topic, "t/1");
  EXPECT_EQ(stats().held_overflows, 1U);
  EXPECT_EQ(io_.call([&] { return up_->held("sensor-1"); }), 2U);

  c.reset();
  ASSERT_TRUE(events_.wait<mqttsn::upstream_lost>(1, patience, "sensor-1"));
  auto c2 = broker.accept();
  ASSERT_TRUE(c2);
  c2->expect<m::connect_packet>();
  c2->send(m::connack_packet{false, 0});  // the broker lost the session
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>(2, patience, "sensor-1"));
  room = true;
  io_.call([&] { up_->resume("sensor-1"); });
  ASSERT_TRUE(events_.wait<mqttsn::upstream_message>(3, patience, "sensor-1"));
  EXPECT_EQ(events_.all<mqttsn::upstream_message>("sensor-1")[1].topic, "t/2");
  EXPECT_EQ(events_.all<mqttsn::upstream_message>("sensor-1")[2].topic, "t/3");
  EXPECT_FALSE(c2->read(300ms).has_value()) << "an id of the old session was acknowledged";
}

// Against Mosquitto: a round trip on the shared connection, and a broker restart (with
// persistence) that keeps the session and its subscription.
TEST_F(NativeUpstream, round_trip_and_restart_with_mosquitto) {
  itest::broker_options options;
  options.persistence = true;
  itest::mosquitto_broker broker(options);
  start(settings_for(broker.uri()));
  ASSERT_TRUE(events_.wait<mqttsn::upstream_connected>());
  io_.call([&] { up_->subscribe(gw, {1, "rt/#", mqttsn::qos::exactly_once}); });
  ASSERT_TRUE(events_.wait<mqttsn::upstream_subscribed>());
  publish({2, "rt/a", to_bytes("hello"), mqttsn::qos::exactly_once, false});
  auto m1 = events_.wait<mqttsn::upstream_message>();
  ASSERT_TRUE(m1);
  EXPECT_EQ(m1->payload, to_bytes("hello"));
  EXPECT_EQ(m1->q, mqttsn::qos::exactly_once);
  ASSERT_TRUE(events_.wait<mqttsn::upstream_published>());
  broker.stop();
  ASSERT_TRUE(events_.wait<mqttsn::upstream_lost>());
  broker.start();
  auto back = events_.wait<mqttsn::upstream_connected>(2, 15s);
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->session_present);
  publish({3, "rt/b", to_bytes("again"), mqttsn::qos::at_least_once, false});
  auto m2 = events_.wait<mqttsn::upstream_message>(2);
  ASSERT_TRUE(m2);
  EXPECT_EQ(m2->payload, to_bytes("again"));
}

}  // namespace
