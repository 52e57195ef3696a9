// Persistent sessions (--persistence FILE): the SQLite store on its own (round trip, problems
// reported), and the real daemon restarted under sleeping sensors: after SIGTERM nothing buffered
// is lost (counted), messages the broker kept for the sensor while the gateway was down arrive
// too, and after SIGKILL the loss window is bounded by --persistence-flush-interval (measured).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gateway/session_store.hpp"
#include "tests/integration/gateway_process.hpp"
#include "tests/integration/harness.hpp"
#include "tools/client/mqttsn_client.hpp"

namespace itest {
namespace {

using namespace std::chrono_literals;
using mqttsn::qos;
using tools::topic_name;

std::string text(const mqttsn::bytes& b) { return std::string(b.begin(), b.end()); }

mqttsn::session_snapshot sample_snapshot() {
  mqttsn::session_snapshot s;
  s.client_id = "sleepy";
  s.asleep = true;
  s.clean_session = false;
  s.keep_alive = 30;
  s.sleep_duration = 600;
  s.will = mqttsn::will_message{"wills/sleepy", {'x'}, qos::at_least_once, true};
  s.topics = {{1, "down/a", mqttsn::topic_table::client_knows::yes}, {2, "down/b", mqttsn::topic_table::client_knows::no}};
  s.next_topic_id = 3;
  s.subscriptions = {{"down/#", qos::exactly_once, mqttsn::topic_id_type::normal, 0}};
  s.queue = {{"down/a", {'1'}, qos::exactly_once, false}, {"down/b", {}, qos::at_most_once, true}};
  s.releasing = 7;
  s.qos2_received = {3, 9};
  s.last_mid = 7;
  return s;
}

bool same(const mqttsn::session_snapshot& a, const mqttsn::session_snapshot& b) {
  auto topics_equal = [](auto x, auto y) {
    auto key = [](const auto& t) { return t.id; };
    std::sort(x.begin(), x.end(), [&](const auto& l, const auto& r) { return key(l) < key(r); });
    std::sort(y.begin(), y.end(), [&](const auto& l, const auto& r) { return key(l) < key(r); });
    if (x.size() != y.size()) return false;
    for (std::size_t i = 0; i < x.size(); ++i) {
      if (x[i].id != y[i].id || x[i].name != y[i].name || x[i].knows != y[i].knows) return false;
    }
    return true;
  };
  return a.client_id == b.client_id && a.asleep == b.asleep && a.clean_session == b.clean_session &&
         a.keep_alive == b.keep_alive && a.sleep_duration == b.sleep_duration && a.will == b.will &&
         topics_equal(a.topics, b.topics) && a.next_topic_id == b.next_topic_id && a.subscriptions == b.subscriptions &&
         a.queue == b.queue && a.releasing == b.releasing && a.qos2_received == b.qos2_received &&
         a.last_mid == b.last_mid;
}

TEST(PersistenceStore, sessions_round_trip_and_deletes_remove_them) {
  temp_dir dir("mqttsn-store");
  const auto path = (dir.path() / "sessions.db").string();
  {
    gateway::session_store store(path);
    EXPECT_TRUE(store.load().sessions.empty());
    auto other = sample_snapshot();
    other.client_id = "other";
    other.will.reset();
    other.releasing.reset();
    store.write({{"sleepy", gateway::session_store::stored{sample_snapshot(), "udp0/127.0.0.1:5000"}},
                 {"other", gateway::session_store::stored{other, "serial0/0013A20040A1B2C3"}}});
    store.write({{"other", std::nullopt}});
  }
  gateway::session_store reopened(path);
  const auto loaded = reopened.load();
  EXPECT_TRUE(loaded.problems.empty());
  ASSERT_EQ(loaded.sessions.size(), 1U);
  EXPECT_EQ(loaded.sessions[0].endpoint, "udp0/127.0.0.1:5000");
  EXPECT_TRUE(same(loaded.sessions[0].snapshot, sample_snapshot()));
}

TEST(PersistenceStore, a_damaged_row_is_reported_and_its_session_not_invented) {
  temp_dir dir("mqttsn-store");
  const auto path = (dir.path() / "sessions.db").string();
  {
    gateway::session_store store(path);
    auto bad = sample_snapshot();
    bad.client_id = "bad";
    store.write({{"sleepy", gateway::session_store::stored{sample_snapshot(), "udp0/127.0.0.1:5000"}},
                 {"bad", gateway::session_store::stored{bad, "udp0/127.0.0.1:5001"}}});
  }
  // Damage one buffered message of "bad" behind the store's back (an invalid QoS).
  const int rc = std::system(("sqlite3 " + path + " \"UPDATE queue SET qos = 7 WHERE client_id = 'bad'\" 2>/dev/null").c_str());
  if (rc != 0) GTEST_SKIP() << "the sqlite3 command-line tool is not installed";
  gateway::session_store store(path);
  const auto loaded = store.load();
  ASSERT_EQ(loaded.sessions.size(), 1U);
  EXPECT_EQ(loaded.sessions[0].snapshot.client_id, "sleepy");
  ASSERT_EQ(loaded.problems.size(), 1U);
  EXPECT_EQ(loaded.problems[0], "client 'bad': an invalid buffered message in the store");
}

TEST(PersistenceStore, a_file_that_is_not_a_database_is_refused_naming_it) {
  temp_dir dir("mqttsn-store");
  const auto path = (dir.path() / "not-a-db").string();
  { std::ofstream(path) << "hello, this is not SQLite\n"; }
  try {
    gateway::session_store store(path);
    ADD_FAILURE() << "opened";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(std::string(e.what()).starts_with(path + ": ")) << e.what();
  }
}

// ---- the daemon restarted under sleeping sensors ----

class PersistenceRestart : public ::testing::Test {
 protected:
  void SetUp() override {
    broker = std::make_unique<mosquitto_broker>();
    observer = std::make_unique<mqtt_test_client>(*broker);
    udp = "127.0.0.1:" + std::to_string(free_port(true));
    db = (dir.path() / "sessions.db").string();
  }
  std::unique_ptr<gateway_process> start_gateway(const std::string& flush_interval = "1",
                                                 const std::string& mode = "transparent") {
    return std::make_unique<gateway_process>(
        broker->uri(),
        std::vector<std::string>{"--persistence", db, "--persistence-flush-interval", flush_interval, "--mode", mode},
        udp);
  }
  tools::client sensor(const std::string& id) {
    tools::client_options o;
    o.client_id = id;
    o.keep_alive = 30;
    o.retry_interval = 500ms;
    o.retry_count = 12;
    const auto colon = udp.rfind(':');
    return tools::client(udp.substr(0, colon), static_cast<std::uint16_t>(std::stoi(udp.substr(colon + 1))), o);
  }
  // Connects a persistent (clean session false) sensor subscribed to down/<id>/# at QoS 2, asleep.
  void put_to_sleep(tools::client& c, const std::string& id) {
    ASSERT_EQ(c.connect(false), mqttsn::return_code::accepted);
    ASSERT_EQ(c.subscribe(topic_name{"down/" + id + "/#"}, qos::exactly_once).rc, mqttsn::return_code::accepted);
    c.sleep(600);
  }

  temp_dir dir{"mqttsn-persist"};
  std::string udp;
  std::string db;
  std::unique_ptr<mosquitto_broker> broker;
  std::unique_ptr<mqtt_test_client> observer;
};

TEST_F(PersistenceRestart, sigterm_with_sleeping_sensors_loses_no_buffered_message) {
  auto gw = start_gateway();
  auto a = sensor("sleepy-a");
  auto b = sensor("sleepy-b");
  put_to_sleep(a, "sleepy-a");
  put_to_sleep(b, "sleepy-b");
  // 6 messages each, QoS 0, 1 and 2, buffered by the gateway while the sensors sleep.
  std::set<std::string> sent_a, sent_b;
  for (int i = 0; i < 6; ++i) {
    const std::string pa = "a" + std::to_string(i), pb = "b" + std::to_string(i);
    ASSERT_TRUE(observer->publish("down/sleepy-a/t" + std::to_string(i % 3), pa, i % 3));
    ASSERT_TRUE(observer->publish("down/sleepy-b/t" + std::to_string(i % 3), pb, i % 3));
    sent_a.insert(pa);
    sent_b.insert(pb);
  }
  ASSERT_TRUE(wait_until([&] { return gw->stat("buffered") == 12U; }, 10s)) << gw->log();
  EXPECT_EQ(gw->stop(), 0);  // SIGTERM: a graceful stop writes everything
  EXPECT_TRUE(gw->log_contains("restored 0 session(s)"));

  // While the gateway is down, the broker keeps QoS 1/2 messages for the sensors' sessions.
  ASSERT_TRUE(observer->publish("down/sleepy-a/late", "a-late", 1));
  sent_a.insert("a-late");

  gw = start_gateway();
  EXPECT_TRUE(gw->log_contains("restored 2 session(s) (2 asleep) with 12 buffered message(s)")) << gw->log();
  EXPECT_TRUE(gw->log_contains("; 0 not restorable")) << gw->log();
  // The late one comes in once the sensor's broker session is back.
  ASSERT_TRUE(wait_until([&] { return gw->stat("buffered") >= 1U; }, 10s)) << gw->log();

  auto received = [](const std::vector<tools::received_message>& got) {
    std::set<std::string> s;
    for (const auto& m : got) s.insert(text(m.payload));
    return s;
  };
  const auto got_a = a.wake(15s);
  const auto got_b = b.wake(15s);
  EXPECT_EQ(got_a.size(), 7U);
  EXPECT_EQ(received(got_a), sent_a) << gw->log();
  EXPECT_EQ(got_b.size(), 6U);
  EXPECT_EQ(received(got_b), sent_b) << gw->log();
  for (const auto& m : got_a) EXPECT_TRUE(m.topic.starts_with("down/sleepy-a/")) << m.topic;
}

TEST_F(PersistenceRestart, aggregating_mode_keeps_buffered_messages_and_subscriptions_across_sigterm) {
  auto gw = start_gateway("1", "aggregating");
  auto a = sensor("agg-a");
  put_to_sleep(a, "agg-a");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(observer->publish("down/agg-a/t", "m" + std::to_string(i), 1 + i % 2));
  ASSERT_TRUE(wait_until([&] { return gw->stat("buffered") == 3U; }, 10s)) << gw->log();
  EXPECT_EQ(gw->stop(), 0);
  gw = start_gateway("1", "aggregating");
  EXPECT_TRUE(gw->log_contains("restored 1 session(s) (1 asleep) with 3 buffered message(s)")) << gw->log();
  // The restored subscription works again: a message published after the restart is buffered too.
  ASSERT_TRUE(wait_until(
      [&] {
        observer->publish("down/agg-a/t", "after", 1);
        return gw->stat("buffered") >= 1U;
      },
      10s))
      << gw->log();
  const auto got = a.wake(15s);
  std::vector<std::string> payloads;
  for (const auto& m : got) payloads.push_back(text(m.payload));
  ASSERT_GE(payloads.size(), 4U) << gw->log();
  // MQTT orders messages per QoS only (m1 went QoS 2, the others QoS 1): compare as a set.
  EXPECT_EQ(std::set<std::string>(payloads.begin(), payloads.begin() + 3), (std::set<std::string>{"m0", "m1", "m2"}));
  for (std::size_t i = 3; i < payloads.size(); ++i) EXPECT_EQ(payloads[i], "after");
}

TEST_F(PersistenceRestart, sigterm_with_client_publishes_in_flight_loses_none_of_them) {
  auto gw = start_gateway();
  tools::client_options o;
  o.client_id = "busy";
  o.keep_alive = 60;
  o.retry_interval = 500ms;
  o.retry_count = 60;  // 30 s of retransmissions: across the broker's and the gateway's restarts
  const auto colon = udp.rfind(':');
  tools::client c(udp.substr(0, colon), static_cast<std::uint16_t>(std::stoi(udp.substr(colon + 1))), o);
  ASSERT_EQ(c.connect(false), mqttsn::return_code::accepted);
  c.register_topic("up/busy/q1");
  c.register_topic("up/busy/q2");
  // The broker goes away: the client's QoS 1 and QoS 2 PUBLISHes stay unacknowledged in flight.
  broker->stop();
  ASSERT_TRUE(wait_until([&] { return gw->log_contains("is down"); }, 10s)) << gw->log();
  mqttsn::return_code r1{}, r2{};
  std::thread publisher([&] {
    r1 = c.publish(topic_name{"up/busy/q1"}, "in-flight-1", qos::at_least_once);
    r2 = c.publish(topic_name{"up/busy/q2"}, "in-flight-2", qos::exactly_once);
  });
  ASSERT_TRUE(wait_until([&] { return gw->stat("publishes_in") >= 1U; }, 10s));
  EXPECT_EQ(gw->stop(), 0);  // SIGTERM with the QoS 1 PUBLISH unanswered
  broker->start();
  mqtt_test_client watcher(*broker);
  ASSERT_TRUE(watcher.subscribe("up/#", 2));
  gw = start_gateway();
  EXPECT_TRUE(gw->log_contains("restored 1 session(s) (0 asleep)")) << gw->log();
  publisher.join();
  EXPECT_EQ(r1, mqttsn::return_code::accepted);
  EXPECT_EQ(r2, mqttsn::return_code::accepted);
  auto m1 = watcher.wait_message("up/busy/q1");
  auto m2 = watcher.wait_message("up/busy/q2");
  ASSERT_TRUE(m1 && m2) << gw->log();
  EXPECT_EQ(m1->payload, "in-flight-1");
  EXPECT_EQ(m2->payload, "in-flight-2");
  EXPECT_EQ(m2->qos, 2);
  EXPECT_EQ(watcher.count("up/#"), 2U);  // each exactly once
}

TEST_F(PersistenceRestart, sigkill_loses_at_most_what_changed_within_the_flush_interval) {
  constexpr auto flush = 200ms;
  auto gw = start_gateway("0.2");
  auto a = sensor("killed-a");
  put_to_sleep(a, "killed-a");
  ASSERT_TRUE(wait_until([&] { return gw->stat("store_flushes") >= 1U; }, 5s));
  std::set<std::string> sent;
  for (int i = 0; i < 5; ++i) {
    const std::string p = "k" + std::to_string(i);
    ASSERT_TRUE(observer->publish("down/killed-a/t", p, 1));
    sent.insert(p);
  }
  ASSERT_TRUE(wait_until([&] { return gw->stat("buffered") == 5U; }, 10s)) << gw->log();
  // From the moment the gateway holds them, how long until they are in the file (read by a second
  // connection to the database, as a restarted gateway would)?
  const auto held = std::chrono::steady_clock::now();
  gateway::session_store reader(db);
  auto stored = [&] {
    const auto l = reader.load();
    for (const auto& s : l.sessions) {
      if (s.snapshot.client_id == "killed-a") return s.snapshot.queue.size();
    }
    return std::size_t{0};
  };
  ASSERT_TRUE(wait_until([&] { return stored() == 5U; }, flush + 5s));
  const auto window = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - held);
  std::printf("[ measured ] buffered -> on disk within %lld ms (flush interval %lld ms)\n",
              static_cast<long long>(window.count()), static_cast<long long>(flush.count()));
  ::kill(gw->pid(), SIGKILL);
  gw->stop();  // reaps it

  gw = start_gateway("0.2");
  EXPECT_TRUE(gw->log_contains("restored 1 session(s) (1 asleep) with 5 buffered message(s)")) << gw->log();
  const auto got = a.wake(15s);
  std::set<std::string> received;
  for (const auto& m : got) received.insert(text(m.payload));
  EXPECT_EQ(received, sent);
}

}  // namespace
}  // namespace itest
