// The synchronous MQTT-SN client (tools/client) against an in-process fake gateway on loopback:
// a thread with a UDP socket that feeds datagrams to the real mqttsn::session_table and plays the
// broker itself (connect, publish and subscribe are accepted at once). Every flow a tool or an
// integration test uses: connect with will, register, publish QoS -1/0/1/2, subscribe with
// gateway REGISTER, QoS 2 delivered once, sleep/wake, SEARCHGW, keep-alive, and retransmission
// when the fake drops a datagram. Timeouts are short; nothing here waits more than a few seconds.
#include "tools/client/mqttsn_client.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
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
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mqttsn/codec.hpp"
#include "mqttsn/counters.hpp"
#include "mqttsn/session.hpp"
#include "mqttsn/session_table.hpp"
#include "mqttsn/topics.hpp"

namespace tools {
namespace {

using namespace std::chrono_literals;
using mqttsn::qos;
using mqttsn::return_code;

constexpr mqttsn::topic_id predefined_temp = 0x0010;
constexpr std::uint8_t fake_gateway_id = 7;

mqttsn::session_config fast_session_config() {
  mqttsn::session_config c;
  c.retry_interval = 150ms;
  c.retry_count = 3;
  c.connect_timeout = 1s;
  return c;
}

bytes text(std::string_view s) { return bytes(s.begin(), s.end()); }

// The gateway side: session_table plus an instant broker. All table access holds `mutex_`.
class fake_gateway {
 public:
  explicit fake_gateway(std::size_t max_clients = 1000) {
    EXPECT_EQ(predefined_.add(predefined_temp, "sensors/temp"),
              mqttsn::predefined_topics::add_result::added);
    table_ =
        std::make_unique<mqttsn::session_table>(mqttsn::table_config{max_clients, fake_gateway_id},
                                                fast_session_config(), predefined_, stats_);
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~fake_gateway() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  fake_gateway(const fake_gateway&) = delete;
  fake_gateway& operator=(const fake_gateway&) = delete;

  std::uint16_t port() const { return port_; }

  // The next `n` datagrams of type `t` from clients are recorded but not handled (a lossy link).
  void drop_next(mqttsn::msg_type t, unsigned n = 1) {
    std::lock_guard lock(mutex_);
    drops_[t] += n;
  }

  // A message from the broker for `client_id`.
  void inject(const std::string& client_id, std::string topic, std::string_view payload, qos q) {
    std::lock_guard lock(mutex_);
    std::vector<mqttsn::routed_action> out;
    table_->handle_upstream(client_id,
                            mqttsn::upstream_message{std::move(topic), text(payload), q, false},
                            mqttsn::clock::now(), out);
    execute(out);
  }

  // Every decoded frame a client sent, dropped ones included, in arrival order.
  std::vector<mqttsn::message> received() const {
    std::lock_guard lock(mutex_);
    return received_;
  }
  std::size_t received_count(mqttsn::msg_type t) const {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto& m : received_) n += mqttsn::type_of(m) == t ? 1 : 0;
    return n;
  }
  std::vector<mqttsn::upstream_publish> published() const {
    std::lock_guard lock(mutex_);
    return published_;
  }
  std::vector<mqttsn::upstream_connect> connects() const {
    std::lock_guard lock(mutex_);
    return connects_;
  }
  std::optional<mqttsn::session_state> state_of(const std::string& client_id) const {
    std::lock_guard lock(mutex_);
    const auto* s = table_->find(client_id);
    return s ? std::optional(s->state()) : std::nullopt;
  }
  std::size_t subscriptions_of(const std::string& client_id) const {
    std::lock_guard lock(mutex_);
    const auto* s = table_->find(client_id);
    return s ? s->subscriptions() : 0;
  }

  // Polls `pred` until it holds or `timeout` passes.
  static bool eventually(const std::function<bool()>& pred,
                         std::chrono::milliseconds timeout = 2s) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
      if (std::chrono::steady_clock::now() >= until) return false;
      std::this_thread::sleep_for(5ms);
    }
    return true;
  }

 private:
  void run() {
    std::vector<std::uint8_t> buf(65536);
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 10) > 0) {
        sockaddr_in from{};
        socklen_t len = sizeof from;
        const auto n =
            ::recvfrom(fd_, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
        if (n > 0) on_datagram(from, bytes(buf.begin(), buf.begin() + n));
      }
      std::lock_guard lock(mutex_);
      std::vector<mqttsn::routed_action> out;
      table_->tick(mqttsn::clock::now(), out);
      execute(out);
    }
  }

  void on_datagram(const sockaddr_in& from, const bytes& frame) {
    char ip[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &from.sin_addr, ip, sizeof ip);
    const mqttsn::endpoint ep = std::string(ip) + ":" + std::to_string(ntohs(from.sin_port));
    std::lock_guard lock(mutex_);
    addresses_[ep] = from;
    auto d = mqttsn::decode(frame);
    if (const auto* m = std::get_if<mqttsn::message>(&d)) {
      received_.push_back(*m);
      if (auto it = drops_.find(mqttsn::type_of(*m)); it != drops_.end() && it->second > 0) {
        --it->second;
        return;
      }
    }
    std::vector<mqttsn::routed_action> out;
    table_->handle_frame(ep, frame, mqttsn::clock::now(), out);
    execute(out);
  }

  // Runs the table's actions; the broker side answers at once, which may produce more actions.
  void execute(std::vector<mqttsn::routed_action>& first) {
    std::deque<mqttsn::routed_action> work(std::make_move_iterator(first.begin()),
                                           std::make_move_iterator(first.end()));
    first.clear();
    while (!work.empty()) {
      mqttsn::routed_action a = std::move(work.front());
      work.pop_front();
      std::optional<mqttsn::upstream_event> answer;
      if (const auto* f = std::get_if<mqttsn::send_frame>(&a.act)) {
        if (auto it = addresses_.find(a.to); it != addresses_.end()) {
          ::sendto(fd_, f->frame.data(), f->frame.size(), 0,
                   reinterpret_cast<const sockaddr*>(&it->second), sizeof it->second);
        }
      } else if (const auto* c = std::get_if<mqttsn::upstream_connect>(&a.act)) {
        connects_.push_back(*c);
        answer = mqttsn::upstream_connected{false};
      } else if (const auto* p = std::get_if<mqttsn::upstream_publish>(&a.act)) {
        published_.push_back(*p);
        if (p->ref != 0) answer = mqttsn::upstream_published{p->ref};
      } else if (const auto* s = std::get_if<mqttsn::upstream_subscribe>(&a.act)) {
        answer = mqttsn::upstream_subscribed{s->ref, s->q};
      } else if (const auto* u = std::get_if<mqttsn::upstream_unsubscribe>(&a.act)) {
        answer = mqttsn::upstream_unsubscribed{u->ref};
      }
      if (answer && !a.client_id.empty()) {
        std::vector<mqttsn::routed_action> more;
        table_->handle_upstream(a.client_id, *answer, mqttsn::clock::now(), more);
        for (auto& m : more) work.push_back(std::move(m));
      }
    }
  }

  mqttsn::predefined_topics predefined_;
  mqttsn::counters stats_;
  std::unique_ptr<mqttsn::session_table> table_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::map<mqttsn::endpoint, sockaddr_in> addresses_;
  std::map<mqttsn::msg_type, unsigned> drops_;
  std::vector<mqttsn::message> received_;
  std::vector<mqttsn::upstream_publish> published_;
  std::vector<mqttsn::upstream_connect> connects_;
  std::thread thread_;
};

client_options fast_options(std::string client_id, std::uint16_t keep_alive = 0) {
  client_options o;
  o.client_id = std::move(client_id);
  o.keep_alive = keep_alive;
  o.retry_interval = 200ms;
  o.retry_count = 3;
  return o;
}

template <typename T>
std::vector<T> all_of_type(const std::vector<mqttsn::message>& ms) {
  std::vector<T> out;
  for (const auto& m : ms) {
    if (const auto* x = std::get_if<T>(&m)) out.push_back(*x);
  }
  return out;
}

class MqttsnClient : public ::testing::Test {
 protected:
  fake_gateway gw;
};

// ---- connection ----

TEST_F(MqttsnClient, connect_is_accepted_and_sends_client_id_and_keep_alive) {
  client c("127.0.0.1", gw.port(), fast_options("abc", 30));
  EXPECT_EQ(c.connect(), return_code::accepted);
  EXPECT_EQ(c.state(), client_state::connected);
  const auto connects = all_of_type<mqttsn::connect>(gw.received());
  ASSERT_EQ(connects.size(), 1U);
  EXPECT_EQ(connects[0], (mqttsn::connect{false, true, 30, "abc"}));
  EXPECT_EQ(gw.state_of("abc"), mqttsn::session_state::active);
}

TEST_F(MqttsnClient, connect_with_will_answers_both_prompts) {
  client c("127.0.0.1", gw.port(), fast_options("willing"));
  EXPECT_EQ(c.connect(true, will{"will/willing", text("bye"), qos::at_least_once, true}),
            return_code::accepted);
  const auto connects = gw.connects();
  ASSERT_EQ(connects.size(), 1U);
  ASSERT_TRUE(connects[0].will.has_value());
  EXPECT_EQ(*connects[0].will,
            (mqttsn::will_message{"will/willing", text("bye"), qos::at_least_once, true}));
}

TEST_F(MqttsnClient, connect_retransmits_a_lost_connect) {
  gw.drop_next(mqttsn::msg_type::connect);
  client c("127.0.0.1", gw.port(), fast_options("lossy"));
  EXPECT_EQ(c.connect(), return_code::accepted);
  EXPECT_GE(gw.received_count(mqttsn::msg_type::connect), 2U);  // resent (a loaded machine may resend once more)
}

TEST_F(MqttsnClient, connect_retransmits_a_lost_will_message) {
  gw.drop_next(mqttsn::msg_type::willmsg);
  client c("127.0.0.1", gw.port(), fast_options("lossy-will"));
  EXPECT_EQ(c.connect(true, will{"will/x", text("gone"), qos::at_most_once, false}),
            return_code::accepted);
  EXPECT_GE(gw.received_count(mqttsn::msg_type::willmsg), 2U);  // resent (a loaded machine may resend once more)
}

TEST(MqttsnClientStandalone, connect_refused_returns_the_connack_code) {
  fake_gateway full(0);  // no room for any client: CONNACK congestion
  client c("127.0.0.1", full.port(), fast_options("nobody"));
  EXPECT_EQ(c.connect(), return_code::congestion);
  EXPECT_EQ(c.state(), client_state::disconnected);
}

TEST(MqttsnClientStandalone, connect_without_gateway_times_out_with_a_clear_message) {
  // A bound socket nobody reads: datagrams vanish, as with a gateway that is not running.
  const int silent = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(silent, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(silent, reinterpret_cast<sockaddr*>(&a), &len);
  const auto port = ntohs(a.sin_port);

  client_options o = fast_options("alone");
  o.retry_interval = 100ms;
  o.retry_count = 1;
  client c("127.0.0.1", port, o);
  try {
    c.connect();
    ADD_FAILURE() << "connect() returned";
  } catch (const client_error& e) {
    EXPECT_EQ(std::string(e.what()), "no CONNACK from 127.0.0.1:" + std::to_string(port) +
                                         " within 0.2 s (is the gateway running?)");
  }
  ::close(silent);
}

TEST(MqttsnClientStandalone, unresolvable_host_throws) {
  EXPECT_THROW(client("no-such-host.invalid", 1884, fast_options("x")), client_error);
}

TEST(MqttsnClientStandalone, peer_is_shown_numerically) {
  client v4("127.0.0.1", 1884, fast_options("x"));
  EXPECT_EQ(v4.peer(), "127.0.0.1:1884");
}

TEST(MqttsnClientStandalone, ipv6_peer_is_shown_in_brackets) {
  const int probe = ::socket(AF_INET6, SOCK_DGRAM, 0);
  if (probe < 0) GTEST_SKIP() << "no IPv6 on this host";
  ::close(probe);
  client v6("[::1]", 1884, fast_options("x"));
  EXPECT_EQ(v6.peer(), "[::1]:1884");
  client bare("::1", 1884, fast_options("x"));
  EXPECT_EQ(bare.peer(), "[::1]:1884");
}

TEST_F(MqttsnClient, debug_hook_sees_frames_both_ways_in_hex) {
  std::vector<std::string> lines;
  client_options o = fast_options("dbg");
  o.debug = [&lines](std::string_view l) { lines.emplace_back(l); };
  client c("127.0.0.1", gw.port(), o);
  ASSERT_EQ(c.connect(), return_code::accepted);
  ASSERT_EQ(lines.size(), 2U);
  EXPECT_EQ(lines[0], "send CONNECT: 09 04 04 01 00 00 64 62 67");
  EXPECT_EQ(lines[1], "recv CONNACK: 03 05 00");
}

TEST_F(MqttsnClient, disconnect_waits_for_the_gateway_disconnect) {
  client c("127.0.0.1", gw.port(), fast_options("bye"));
  ASSERT_EQ(c.connect(), return_code::accepted);
  c.disconnect();
  EXPECT_EQ(c.state(), client_state::disconnected);
  EXPECT_EQ(gw.received_count(mqttsn::msg_type::disconnect), 1U);
  EXPECT_FALSE(gw.state_of("bye").has_value());  // a clean session is forgotten
}

TEST_F(MqttsnClient, unsolicited_disconnect_throws_gateway_disconnected) {
  // Never connected: the gateway answers anything but CONNECT with DISCONNECT.
  client c("127.0.0.1", gw.port(), fast_options("stranger"));
  EXPECT_THROW(c.publish(predefined_topic{predefined_temp}, "x", qos::at_least_once),
               gateway_disconnected);
  EXPECT_EQ(c.state(), client_state::disconnected);
}

// ---- registering and publishing ----

TEST_F(MqttsnClient, register_topic_returns_the_gateway_ids) {
  client c("127.0.0.1", gw.port(), fast_options("reg"));
  ASSERT_EQ(c.connect(), return_code::accepted);
  EXPECT_EQ(c.register_topic("a/b"), 1);
  EXPECT_EQ(c.register_topic("a/c"), 2);
  EXPECT_EQ(c.register_topic("a/b"), 1);
}

TEST_F(MqttsnClient, register_of_a_wildcard_is_refused_with_an_error) {
  client c("127.0.0.1", gw.port(), fast_options("reg-bad"));
  ASSERT_EQ(c.connect(), return_code::accepted);
  try {
    c.register_topic("a/#");
    ADD_FAILURE() << "register_topic() returned";
  } catch (const client_error& e) {
    EXPECT_EQ(std::string(e.what()), "REGISTER of 'a/#' rejected: not supported");
  }
}

TEST_F(MqttsnClient, publish_qos0_registers_a_name_once) {
  client c("127.0.0.1", gw.port(), fast_options("pub0"));
  ASSERT_EQ(c.connect(), return_code::accepted);
  EXPECT_EQ(c.publish(topic_name{"a/b"}, "one", qos::at_most_once), return_code::accepted);
  EXPECT_EQ(c.publish(topic_name{"a/b"}, "two", qos::at_most_once, true), return_code::accepted);
  ASSERT_TRUE(fake_gateway::eventually([&] { return gw.published().size() == 2; }));
  EXPECT_EQ(gw.received_count(mqttsn::msg_type::register_), 1U);
  const auto p = gw.published();
  EXPECT_EQ(p[0], (mqttsn::upstream_publish{0, "a/b", text("one"), qos::at_most_once, false}));
  EXPECT_EQ(p[1], (mqttsn::upstream_publish{0, "a/b", text("two"), qos::at_most_once, true}));
}

TEST_F(MqttsnClient, publish_qos1_returns_the_puback_code) {
  client c("127.0.0.1", gw.port(), fast_options("pub1"));
  ASSERT_EQ(c.connect(), return_code::accepted);
  EXPECT_EQ(c.publish(topic_name{"q/one"}, "hello", qos::at_least_once), return_code::accepted);
  const auto p = gw.published();
  ASSERT_EQ(p.size(), 1U);
  EXPECT_EQ(p[0].topic, "q/one");
  EXPECT_EQ(p[0].q, qos::at_least_once);
  EXPECT_EQ(c.publish(predefined_topic{0x0999}, "x", qos::at_least_once),
            return_code::invalid_topic_id);
}

TEST_F(MqttsnClient, publish_qos2_runs_pubrec_pubrel_pubcomp) {
  client c("127.0.0.1", gw.port(), fast_options("pub2"));
  ASSERT_EQ(c.connect(), return_code::accepted);
  EXPECT_EQ(c.publish(predefined_topic{predefined_temp}, "21.5", qos::exactly_once),
            return_code::accepted);
  EXPECT_EQ(gw.received_count(mqttsn::msg_type::pubrel), 1U);
  const auto p = gw.published();
  ASSERT_EQ(p.size(), 1U);
  EXPECT_EQ(p[0].topic, "sensors/temp");
  EXPECT_EQ(p[0].q, qos::exactly_once);
}

TEST_F(MqttsnClient, publish_retransmits_with_dup_when_the_first_datagram_is_lost) {
  client c("127.0.0.1", gw.port(), fast_options("dup"));
  ASSERT_EQ(c.connect(), return_code::accepted);
  gw.drop_next(mqttsn::msg_type::publish);
  EXPECT_EQ(c.publish(short_topic{"ab"}, "again", qos::at_least_once), return_code::accepted);
  const auto pubs = all_of_type<mqttsn::publish>(gw.received());
  ASSERT_EQ(pubs.size(), 2U);
  EXPECT_FALSE(pubs[0].dup);
  EXPECT_TRUE(pubs[1].dup);
  EXPECT_EQ(pubs[0].mid, pubs[1].mid);
  EXPECT_EQ(gw.published().size(), 1U);
}

TEST_F(MqttsnClient, publish_qos2_retransmits_a_lost_pubrel) {
  client c("127.0.0.1", gw.port(), fast_options("rel"));
  ASSERT_EQ(c.connect(), return_code::accepted);
  gw.drop_next(mqttsn::msg_type::pubrel);
  EXPECT_EQ(c.publish(short_topic{"cd"}, "x", qos::exactly_once), return_code::accepted);
  EXPECT_GE(gw.received_count(mqttsn::msg_type::pubrel), 2U);  // resent (a loaded machine may resend once more)
  EXPECT_EQ(gw.published().size(), 1U);
}

TEST_F(MqttsnClient, publish_gives_up_after_the_retry_budget) {
  client c("127.0.0.1", gw.port(), fast_options("deaf"));
  ASSERT_EQ(c.connect(), return_code::accepted);
  gw.drop_next(mqttsn::msg_type::publish, 4);  // the first send and all 3 retransmissions
  EXPECT_THROW(c.publish(short_topic{"ab"}, "lost", qos::at_least_once), client_error);
  EXPECT_EQ(gw.received_count(mqttsn::msg_type::publish), 4U);
}

TEST_F(MqttsnClient, qos_minus_one_needs_no_connection) {
  client c("127.0.0.1", gw.port(), fast_options("anon"));
  EXPECT_EQ(c.publish(predefined_topic{predefined_temp}, "19", qos::minus_one),
            return_code::accepted);
  EXPECT_EQ(c.publish(short_topic{"ab"}, "hi", qos::minus_one, true), return_code::accepted);
  ASSERT_TRUE(fake_gateway::eventually([&] { return gw.published().size() == 2; }));
  const auto p = gw.published();
  EXPECT_EQ(p[0],
            (mqttsn::upstream_publish{0, "sensors/temp", text("19"), qos::at_most_once, false}));
  EXPECT_EQ(p[1], (mqttsn::upstream_publish{0, "ab", text("hi"), qos::at_most_once, true}));
  const auto frames = all_of_type<mqttsn::publish>(gw.received());
  ASSERT_EQ(frames.size(), 2U);
  EXPECT_EQ(frames[0],
            (mqttsn::publish{false, qos::minus_one, false, mqttsn::topic_id_type::predefined,
                             predefined_temp, 0, text("19")}));
  EXPECT_EQ(gw.received_count(mqttsn::msg_type::connect), 0U);
}

TEST_F(MqttsnClient, qos_minus_one_refuses_a_topic_name) {
  client c("127.0.0.1", gw.port(), fast_options("anon2"));
  EXPECT_THROW(c.publish(topic_name{"a/b"}, "x", qos::minus_one), client_error);
  EXPECT_THROW(c.publish(short_topic{"abc"}, "x", qos::minus_one), client_error);
}

// ---- subscribing and receiving ----

TEST_F(MqttsnClient, subscribe_to_a_name_returns_its_topic_id_and_receives_on_it) {
  client c("127.0.0.1", gw.port(), fast_options("sub"));
  ASSERT_EQ(c.connect(), return_code::accepted);
  const auto r = c.subscribe(topic_name{"s/one"}, qos::at_least_once);
  EXPECT_EQ(r.rc, return_code::accepted);
  EXPECT_EQ(r.granted, qos::at_least_once);
  EXPECT_EQ(r.id, 1);
  gw.inject("sub", "s/one", "payload", qos::at_least_once);
  const auto m = c.receive(2s);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->topic, "s/one");
  EXPECT_EQ(m->payload, text("payload"));
  EXPECT_EQ(m->q, qos::at_least_once);
  EXPECT_EQ(m->id_type, mqttsn::topic_id_type::normal);
  EXPECT_TRUE(
      fake_gateway::eventually([&] { return gw.received_count(mqttsn::msg_type::puback) == 1; }));
}

TEST_F(MqttsnClient, receive_answers_a_gateway_register_for_a_wildcard_match) {
  client c("127.0.0.1", gw.port(), fast_options("wild"));
  ASSERT_EQ(c.connect(), return_code::accepted);
  const auto r = c.subscribe(topic_name{"a/#"}, qos::at_least_once);
  EXPECT_EQ(r.id, 0);
  gw.inject("wild", "a/b/c", "deep", qos::at_least_once);
  const auto m = c.receive(2s);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->topic, "a/b/c");
  EXPECT_EQ(m->payload, text("deep"));
  const auto regacks = all_of_type<mqttsn::regack>(gw.received());
  ASSERT_EQ(regacks.size(), 1U);
  EXPECT_EQ(regacks[0].rc, return_code::accepted);
  EXPECT_TRUE(
      fake_gateway::eventually([&] { return gw.received_count(mqttsn::msg_type::puback) == 1; }));
}

TEST_F(MqttsnClient, receive_delivers_a_qos2_message_once_even_when_the_gateway_resends_it) {
  client c("127.0.0.1", gw.port(), fast_options("two"));
  ASSERT_EQ(c.connect(), return_code::accepted);
  ASSERT_EQ(c.subscribe(topic_name{"q/two"}, qos::exactly_once).rc, return_code::accepted);
  gw.drop_next(mqttsn::msg_type::pubrec);  // the gateway resends the PUBLISH with DUP
  gw.inject("two", "q/two", "once", qos::exactly_once);
  const auto m = c.receive(2s);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->payload, text("once"));
  EXPECT_EQ(c.receive(700ms), std::nullopt);
  EXPECT_GE(gw.received_count(mqttsn::msg_type::pubrec), 2U);  // resent (a loaded machine may resend once more)
  EXPECT_EQ(gw.received_count(mqttsn::msg_type::pubcomp), 1U);
}

TEST_F(MqttsnClient, predefined_and_short_subscriptions_resolve_topic_names) {
  client c("127.0.0.1", gw.port(), fast_options("ids"));
  ASSERT_EQ(c.connect(), return_code::accepted);
  c.set_predefined(predefined_temp, "sensors/temp");
  const auto pre = c.subscribe(predefined_topic{predefined_temp}, qos::at_most_once);
  EXPECT_EQ(pre.rc, return_code::accepted);
  EXPECT_EQ(pre.id, predefined_temp);
  EXPECT_EQ(c.subscribe(short_topic{"ab"}, qos::at_most_once).rc, return_code::accepted);
  EXPECT_EQ(c.subscribe(predefined_topic{0x0999}, qos::at_most_once).rc,
            return_code::invalid_topic_id);

  gw.inject("ids", "sensors/temp", "20", qos::at_most_once);
  auto m = c.receive(2s);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->topic, "sensors/temp");
  EXPECT_EQ(m->id_type, mqttsn::topic_id_type::predefined);
  EXPECT_EQ(m->id, predefined_temp);

  gw.inject("ids", "ab", "short", qos::at_most_once);
  m = c.receive(2s);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->topic, "ab");
  EXPECT_EQ(m->id_type, mqttsn::topic_id_type::short_name);
}

TEST_F(MqttsnClient, a_predefined_id_without_a_name_arrives_with_an_empty_topic) {
  client c("127.0.0.1", gw.port(), fast_options("noname"));
  ASSERT_EQ(c.connect(), return_code::accepted);
  ASSERT_EQ(c.subscribe(predefined_topic{predefined_temp}, qos::at_most_once).rc,
            return_code::accepted);
  gw.inject("noname", "sensors/temp", "20", qos::at_most_once);
  const auto m = c.receive(2s);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->topic, "");
  EXPECT_EQ(m->id, predefined_temp);
}

TEST_F(MqttsnClient, messages_arriving_during_a_request_wait_for_receive) {
  client c("127.0.0.1", gw.port(), fast_options("busy"));
  ASSERT_EQ(c.connect(), return_code::accepted);
  ASSERT_EQ(c.subscribe(short_topic{"ab"}, qos::at_most_once).rc, return_code::accepted);
  gw.inject("busy", "ab", "queued", qos::at_most_once);
  c.ping();  // the PUBLISH arrives while ping() waits for PINGRESP
  const auto m = c.receive(0ms);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->payload, text("queued"));
}

TEST_F(MqttsnClient, unsubscribe_waits_for_unsuback) {
  client c("127.0.0.1", gw.port(), fast_options("unsub"));
  ASSERT_EQ(c.connect(), return_code::accepted);
  ASSERT_EQ(c.subscribe(topic_name{"u/+"}, qos::at_most_once).rc, return_code::accepted);
  EXPECT_EQ(gw.subscriptions_of("unsub"), 1U);
  c.unsubscribe(topic_name{"u/+"});
  EXPECT_EQ(gw.subscriptions_of("unsub"), 0U);
  EXPECT_EQ(gw.received_count(mqttsn::msg_type::unsubscribe), 1U);
}

TEST_F(MqttsnClient, receive_times_out_with_nothing) {
  client c("127.0.0.1", gw.port(), fast_options("quiet"));
  ASSERT_EQ(c.connect(), return_code::accepted);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(c.receive(150ms), std::nullopt);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 150ms);
}

TEST_F(MqttsnClient, receive_sends_pingreq_when_the_keep_alive_period_passes) {
  client c("127.0.0.1", gw.port(), fast_options("alive", 1));
  ASSERT_EQ(c.connect(), return_code::accepted);
  EXPECT_EQ(c.receive(1300ms), std::nullopt);
  const auto pings = all_of_type<mqttsn::pingreq>(gw.received());
  ASSERT_EQ(pings.size(), 1U);
  EXPECT_EQ(pings[0].client_id, "");
  EXPECT_EQ(gw.state_of("alive"), mqttsn::session_state::active);
}

TEST_F(MqttsnClient, ping_waits_for_pingresp) {
  client c("127.0.0.1", gw.port(), fast_options("pinger"));
  ASSERT_EQ(c.connect(), return_code::accepted);
  gw.drop_next(mqttsn::msg_type::pingreq);
  c.ping();
  EXPECT_GE(gw.received_count(mqttsn::msg_type::pingreq), 2U);  // resent (a loaded machine may resend once more)
}

// ---- sleeping clients ----

TEST_F(MqttsnClient, sleep_then_wake_collects_what_the_gateway_buffered) {
  client c("127.0.0.1", gw.port(), fast_options("sleepy"));
  ASSERT_EQ(c.connect(), return_code::accepted);
  ASSERT_EQ(c.subscribe(topic_name{"s/t"}, qos::at_least_once).rc, return_code::accepted);
  c.sleep(60);
  EXPECT_EQ(c.state(), client_state::asleep);
  EXPECT_EQ(gw.state_of("sleepy"), mqttsn::session_state::asleep);
  const auto sleeps = all_of_type<mqttsn::disconnect>(gw.received());
  ASSERT_EQ(sleeps.size(), 1U);
  EXPECT_EQ(sleeps[0].duration, std::optional<std::uint16_t>(60));

  gw.inject("sleepy", "s/t", "first", qos::at_least_once);
  gw.inject("sleepy", "s/t", "second", qos::at_most_once);
  const auto got = c.wake(2s);
  ASSERT_EQ(got.size(), 2U);
  EXPECT_EQ(got[0].payload, text("first"));
  EXPECT_EQ(got[1].payload, text("second"));
  const auto pings = all_of_type<mqttsn::pingreq>(gw.received());
  ASSERT_EQ(pings.size(), 1U);
  EXPECT_EQ(pings[0].client_id, "sleepy");
  EXPECT_EQ(gw.state_of("sleepy"), mqttsn::session_state::asleep);

  EXPECT_TRUE(c.wake(2s).empty());  // nothing buffered: PINGRESP at once
  c.disconnect();
  EXPECT_EQ(c.state(), client_state::disconnected);
}

TEST_F(MqttsnClient, wake_retransmits_a_lost_pingreq) {
  client c("127.0.0.1", gw.port(), fast_options("drowsy"));
  ASSERT_EQ(c.connect(), return_code::accepted);
  c.sleep(60);
  gw.drop_next(mqttsn::msg_type::pingreq);
  EXPECT_TRUE(c.wake(2s).empty());
  EXPECT_GE(gw.received_count(mqttsn::msg_type::pingreq), 2U);  // resent (a loaded machine may resend once more)
}

TEST_F(MqttsnClient, sleep_refuses_a_zero_duration) {
  client c("127.0.0.1", gw.port(), fast_options("zero"));
  ASSERT_EQ(c.connect(), return_code::accepted);
  EXPECT_THROW(c.sleep(0), client_error);
}

// ---- discovery and raw frames ----

TEST_F(MqttsnClient, searchgw_returns_the_gateway_id) {
  client c("127.0.0.1", gw.port(), fast_options("seeker"));
  EXPECT_EQ(c.searchgw(0, 1s), std::optional<std::uint8_t>(fake_gateway_id));
}

TEST_F(MqttsnClient, searchgw_resends_when_the_first_is_lost) {
  client c("127.0.0.1", gw.port(), fast_options("seeker2"));
  gw.drop_next(mqttsn::msg_type::searchgw);
  EXPECT_EQ(c.searchgw(1, 1s), std::optional<std::uint8_t>(fake_gateway_id));
  EXPECT_GE(gw.received_count(mqttsn::msg_type::searchgw), 2U);  // resent (a loaded machine may resend once more)
}

TEST_F(MqttsnClient, raw_frames_go_out_and_come_back_unchanged) {
  client c("127.0.0.1", gw.port(), fast_options("raw"));
  c.send_raw(bytes{0x03, 0x01, 0x00});  // SEARCHGW, whole network
  EXPECT_EQ(c.receive_raw(1s), (std::optional<bytes>(bytes{0x03, 0x02, fake_gateway_id})));
  EXPECT_EQ(c.receive_raw(50ms), std::nullopt);
}

// ---- command-line helpers ----

TEST(MqttsnClientCli, two_plain_characters_make_a_short_topic) {
  EXPECT_TRUE(std::holds_alternative<short_topic>(cli::topic_for_name("ab")));
  EXPECT_TRUE(std::holds_alternative<topic_name>(cli::topic_for_name("abc")));
  EXPECT_TRUE(std::holds_alternative<topic_name>(cli::topic_for_name("a")));
  EXPECT_TRUE(std::holds_alternative<topic_name>(cli::topic_for_name("+/")));
  EXPECT_TRUE(std::holds_alternative<topic_name>(cli::topic_for_name("a#")));
}

TEST(MqttsnClientCli, qos_parsing_respects_the_lower_bound) {
  EXPECT_EQ(cli::parse_qos("-1", -1), qos::minus_one);
  EXPECT_EQ(cli::parse_qos("2", -1), qos::exactly_once);
  EXPECT_EQ(cli::parse_qos("-1", 0), std::nullopt);
  EXPECT_EQ(cli::parse_qos("3", -1), std::nullopt);
  EXPECT_EQ(cli::parse_qos("1x", 0), std::nullopt);
  EXPECT_EQ(cli::parse_qos("", 0), std::nullopt);
}

TEST(MqttsnClientCli, topic_ids_are_decimal_or_hex_and_never_reserved) {
  EXPECT_EQ(cli::parse_topic_id("7"), std::optional<mqttsn::topic_id>(7));
  EXPECT_EQ(cli::parse_topic_id("0x10"), std::optional<mqttsn::topic_id>(0x10));
  EXPECT_EQ(cli::parse_topic_id("65534"), std::optional<mqttsn::topic_id>(0xFFFE));
  EXPECT_EQ(cli::parse_topic_id("0"), std::nullopt);
  EXPECT_EQ(cli::parse_topic_id("0xFFFF"), std::nullopt);
  EXPECT_EQ(cli::parse_topic_id("-3"), std::nullopt);
  EXPECT_EQ(cli::parse_topic_id("seven"), std::nullopt);
}

TEST(MqttsnClientCli, seconds_may_be_fractional_but_positive) {
  EXPECT_EQ(cli::parse_seconds("0.5", 10), std::optional<milliseconds>(500ms));
  EXPECT_EQ(cli::parse_seconds("2", 10), std::optional<milliseconds>(2000ms));
  EXPECT_EQ(cli::parse_seconds("0", 10), std::nullopt);
  EXPECT_EQ(cli::parse_seconds("11", 10), std::nullopt);
}

TEST(MqttsnClientCli, will_options_need_a_will_topic) {
  cli::connection_flags f;
  EXPECT_TRUE(f.take(cli::opt_will_payload, "bye"));
  EXPECT_THROW(f.check(), cli::usage_error);
  EXPECT_TRUE(f.take(cli::opt_will_topic, "w/t"));
  EXPECT_NO_THROW(f.check());
  EXPECT_THROW(f.take('p', "0"), cli::usage_error);
  EXPECT_FALSE(f.take('t', "x"));
  EXPECT_TRUE(f.take(cli::opt_predefined, "7=pre/seven"));
  EXPECT_EQ(f.predefined.at(7), "pre/seven");
  EXPECT_THROW(f.take(cli::opt_predefined, "7"), cli::usage_error);
}

TEST(MqttsnClientCli, return_codes_read_as_words) {
  EXPECT_EQ(describe(return_code::accepted), "accepted");
  EXPECT_EQ(describe(return_code::invalid_topic_id), "rejected: invalid topic id");
  EXPECT_EQ(describe(static_cast<return_code>(0x80)), "rejected: reserved return code 0x80");
  EXPECT_EQ(to_hex(bytes{0x03, 0x05, 0xAB}), "03 05 AB");
}

}  // namespace
}  // namespace tools
