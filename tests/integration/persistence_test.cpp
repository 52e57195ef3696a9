// Persistent sessions (--persistence FILE): the SQLite store on its own (round trip, problems
// reported), and the real daemon restarted under sleeping sensors: after SIGTERM nothing buffered
// is lost (counted), messages the broker kept for the sensor while the gateway was down arrive
// too, and after SIGKILL the loss window is bounded by --persistence-flush-interval (measured).
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gateway/extension.hpp"
#include "gateway/session_store.hpp"
#include "mqttsn/codec.hpp"
#include "tests/integration/gateway_process.hpp"
#include "tests/integration/harness.hpp"
#include "tools/client/mqttsn_client.hpp"

namespace itest {
namespace {

using namespace std::chrono_literals;
using mqttsn::qos;
using tools::topic_name;

std::string text(const mqttsn::bytes& b) { return std::string(b.begin(), b.end()); }

// Changes the database behind the store's back (damage, as a bad disk or a hand edit would).
void run_sql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

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
  s.queue = {{"down/a", {'1'}, qos::exactly_once, false, 7}, {"down/b", {}, qos::at_most_once, true, 0}};
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
         a.last_mid == b.last_mid && a.offline == b.offline;
}

TEST(PersistenceStore, sessions_round_trip_and_deletes_remove_them) {
  temp_dir dir("mqttsn-store");
  const auto path = (dir.path() / "sessions.db").string();
  {
    auto store_ptr = gateway::open_session_store(path);
    auto& store = *store_ptr;
    EXPECT_TRUE(store.load().sessions.empty());
    auto other = sample_snapshot();
    other.client_id = "other";
    other.will.reset();
    other.releasing.reset();
    store.write({{"sleepy", gateway::session_store::stored{sample_snapshot(), "udp0/127.0.0.1:5000"}},
                 {"other", gateway::session_store::stored{other, "serial0/0013A20040A1B2C3"}}});
    store.write({{"other", std::nullopt}});
  }
  auto reopened_ptr = gateway::open_session_store(path);
  auto& reopened = *reopened_ptr;
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
    auto store_ptr = gateway::open_session_store(path);
    auto& store = *store_ptr;
    auto bad = sample_snapshot();
    bad.client_id = "bad";
    store.write({{"sleepy", gateway::session_store::stored{sample_snapshot(), "udp0/127.0.0.1:5000"}},
                 {"bad", gateway::session_store::stored{bad, "udp0/127.0.0.1:5001"}}});
  }
  // Damage one buffered message of "bad" behind the store's back (an invalid QoS).
  run_sql(path, "UPDATE queue SET qos = 7 WHERE client_id = 'bad'");
  auto store_ptr = gateway::open_session_store(path);
  auto& store = *store_ptr;
  const auto loaded = store.load();
  ASSERT_EQ(loaded.sessions.size(), 1U);
  EXPECT_EQ(loaded.sessions[0].snapshot.client_id, "sleepy");
  ASSERT_EQ(loaded.problems.size(), 1U);
  EXPECT_EQ(loaded.problems[0], "client 'bad': an invalid buffered message in the store");
  EXPECT_EQ(loaded.damaged, std::vector<std::string>{"bad"});  // for the gateway to remove
}

TEST(PersistenceStore, a_schema_version_1_database_is_upgraded_and_keeps_its_sessions) {
  temp_dir dir("mqttsn-store");
  const auto path = (dir.path() / "sessions.db").string();
  {
    auto store_ptr = gateway::open_session_store(path);
    auto& store = *store_ptr;
    store.write({{"sleepy", gateway::session_store::stored{sample_snapshot(), "udp0/127.0.0.1:5000"}}});
  }
  // What a version 1 gateway wrote: no queue.mid (nor the later sessions.offline).
  run_sql(path, "ALTER TABLE queue DROP COLUMN mid; ALTER TABLE sessions DROP COLUMN offline; "
                "UPDATE meta SET value = 1 WHERE key = 'schema_version'");
  {
    auto store_ptr = gateway::open_session_store(path);
    auto& store = *store_ptr;
    const auto loaded = store.load();
    ASSERT_EQ(loaded.sessions.size(), 1U);
    auto expected = sample_snapshot();
    expected.queue[0].mid = 0;  // version 1 did not know it: not sent
    EXPECT_TRUE(same(loaded.sessions[0].snapshot, expected));
    store.write({{"sleepy", gateway::session_store::stored{sample_snapshot(), "udp0/127.0.0.1:5000"}}});
  }
  auto again_ptr = gateway::open_session_store(path);
  auto& again = *again_ptr;  // now version 3
  const auto loaded = again.load();
  ASSERT_EQ(loaded.sessions.size(), 1U);
  EXPECT_TRUE(same(loaded.sessions[0].snapshot, sample_snapshot()));
}

// A kept session with no connection (after DISCONNECT, or lost) is written with its state and read
// back so; a version 2 file (connected sessions only) is upgraded in place, its sessions online.
mqttsn::session_snapshot offline_snapshot(const std::string& id, mqttsn::session_state st) {
  auto s = sample_snapshot();
  s.client_id = id;
  s.asleep = false;
  s.offline = st;
  return s;
}

TEST(PersistenceStore, offline_kept_sessions_round_trip_with_their_state) {
  temp_dir dir("mqttsn-store");
  const auto path = (dir.path() / "sessions.db").string();
  const auto gone = offline_snapshot("gone", mqttsn::session_state::disconnected);
  const auto lost = offline_snapshot("lost", mqttsn::session_state::lost);
  {
    auto store_ptr = gateway::open_session_store(path);
    auto& store = *store_ptr;
    store.write({{"gone", gateway::session_store::stored{gone, "udp0/127.0.0.1:5000"}},
                 {"lost", gateway::session_store::stored{lost, "udp0/127.0.0.1:5001"}},
                 {"sleepy", gateway::session_store::stored{sample_snapshot(), "udp0/127.0.0.1:5002"}}});
  }
  auto reopened_ptr = gateway::open_session_store(path);
  auto& reopened = *reopened_ptr;
  auto loaded = reopened.load();
  EXPECT_TRUE(loaded.problems.empty());
  ASSERT_EQ(loaded.sessions.size(), 3U);
  std::sort(loaded.sessions.begin(), loaded.sessions.end(),
            [](const auto& a, const auto& b) { return a.snapshot.client_id < b.snapshot.client_id; });
  EXPECT_TRUE(same(loaded.sessions[0].snapshot, gone));
  EXPECT_TRUE(same(loaded.sessions[1].snapshot, lost));
  EXPECT_TRUE(same(loaded.sessions[2].snapshot, sample_snapshot()));
  EXPECT_FALSE(loaded.sessions[2].snapshot.offline);
}

TEST(PersistenceStore, a_schema_version_2_database_is_upgraded_and_its_sessions_stay_online) {
  temp_dir dir("mqttsn-store");
  const auto path = (dir.path() / "sessions.db").string();
  {
    auto store_ptr = gateway::open_session_store(path);
    auto& store = *store_ptr;
    store.write({{"sleepy", gateway::session_store::stored{sample_snapshot(), "udp0/127.0.0.1:5000"}}});
  }
  // What a version 2 gateway wrote: no sessions.offline.
  run_sql(path, "ALTER TABLE sessions DROP COLUMN offline; UPDATE meta SET value = 2 WHERE key = 'schema_version'");
  const auto gone = offline_snapshot("gone", mqttsn::session_state::disconnected);
  {
    auto store_ptr = gateway::open_session_store(path);
    auto& store = *store_ptr;
    const auto loaded = store.load();
    ASSERT_EQ(loaded.sessions.size(), 1U);
    EXPECT_TRUE(same(loaded.sessions[0].snapshot, sample_snapshot()));
    store.write({{"gone", gateway::session_store::stored{gone, "udp0/127.0.0.1:5001"}}});
  }
  auto again_ptr = gateway::open_session_store(path);
  auto& again = *again_ptr;
  const auto loaded = again.load();
  ASSERT_EQ(loaded.sessions.size(), 2U);
  for (const auto& st : loaded.sessions) {
    EXPECT_TRUE(same(st.snapshot, st.snapshot.client_id == "gone" ? gone : sample_snapshot())) << st.snapshot.client_id;
  }
}

TEST(PersistenceStore, an_unknown_offline_state_is_reported_and_not_invented) {
  temp_dir dir("mqttsn-store");
  const auto path = (dir.path() / "sessions.db").string();
  {
    auto store_ptr = gateway::open_session_store(path);
    auto& store = *store_ptr;
    store.write({{"gone", gateway::session_store::stored{offline_snapshot("gone", mqttsn::session_state::lost),
                                                         "udp0/127.0.0.1:5000"}}});
  }
  run_sql(path, "UPDATE sessions SET offline = 9 WHERE client_id = 'gone'");
  auto store_ptr = gateway::open_session_store(path);
  auto& store = *store_ptr;
  const auto loaded = store.load();
  EXPECT_TRUE(loaded.sessions.empty());
  ASSERT_EQ(loaded.problems.size(), 1U);
  EXPECT_NE(loaded.problems[0].find("an invalid offline state"), std::string::npos) << loaded.problems[0];
  EXPECT_EQ(loaded.damaged, std::vector<std::string>{"gone"});
}

TEST(PersistenceStore, a_file_that_is_not_a_database_is_refused_naming_it) {
  temp_dir dir("mqttsn-store");
  const auto path = (dir.path() / "not-a-db").string();
  { std::ofstream(path) << "hello, this is not SQLite\n"; }
  try {
    auto store = gateway::open_session_store(path);
    ADD_FAILURE() << "opened " << store->path();
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
  EXPECT_TRUE(gw->log_contains("restored 2 session(s) (2 asleep, 0 offline) with 12 buffered message(s)")) << gw->log();
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
  EXPECT_TRUE(gw->log_contains("restored 1 session(s) (1 asleep, 0 offline) with 3 buffered message(s)")) << gw->log();
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

// The shared broker session (clean session false) kept QoS 1 messages for the sleeping sensors
// while the gateway was down; the broker sends them as soon as the shared connection is back,
// before any restored session could SUBSCRIBE again. The fan-out table must already route them,
// and since the broker kept the session, nothing is SUBSCRIBEd again (no storm of re-SUBSCRIBEs,
// no retained copies sent twice).
TEST_F(PersistenceRestart, aggregating_mode_delivers_what_the_broker_kept_while_the_gateway_was_down) {
  broker_options bo;
  bo.extra_config = {"log_type all"};  // "Received SUBSCRIBE from ..."
  observer.reset();
  broker = std::make_unique<mosquitto_broker>(bo);
  observer = std::make_unique<mqtt_test_client>(*broker);
  auto gw = start_gateway("1", "aggregating");
  auto a = sensor("kept-a");
  auto b = sensor("kept-b");
  put_to_sleep(a, "kept-a");
  put_to_sleep(b, "kept-b");
  // One filter both hold, so the table has a filter with two holders.
  ASSERT_EQ(a.connect(false), mqttsn::return_code::accepted);
  ASSERT_EQ(a.subscribe(topic_name{"down/all"}, qos::at_least_once).rc, mqttsn::return_code::accepted);
  a.sleep(600);
  ASSERT_EQ(b.connect(false), mqttsn::return_code::accepted);
  ASSERT_EQ(b.subscribe(topic_name{"down/all"}, qos::at_least_once).rc, mqttsn::return_code::accepted);
  b.sleep(600);
  EXPECT_EQ(gw->stop(), 0);
  const auto log_before = broker->log().size();

  std::set<std::string> sent_a, sent_b;
  for (int i = 0; i < 5; ++i) {
    const std::string pa = "a" + std::to_string(i), pb = "b" + std::to_string(i);
    ASSERT_TRUE(observer->publish("down/kept-a/t", pa, 1));
    ASSERT_TRUE(observer->publish("down/kept-b/t", pb, 1));
    sent_a.insert(pa);
    sent_b.insert(pb);
  }
  ASSERT_TRUE(observer->publish("down/all", "both", 1));
  sent_a.insert("both");
  sent_b.insert("both");

  gw = start_gateway("1", "aggregating");
  EXPECT_TRUE(gw->log_contains("restored 2 session(s) (2 asleep, 0 offline)")) << gw->log();
  ASSERT_TRUE(wait_until([&] { return gw->stat("buffered") >= 12U; }, 10s)) << gw->log();
  auto received = [](const std::vector<tools::received_message>& got) {
    std::multiset<std::string> s;
    for (const auto& m : got) s.insert(text(m.payload));
    return s;
  };
  const auto got_a = received(a.wake(15s));
  const auto got_b = received(b.wake(15s));
  EXPECT_EQ(got_a, std::multiset<std::string>(sent_a.begin(), sent_a.end())) << gw->log();
  EXPECT_EQ(got_b, std::multiset<std::string>(sent_b.begin(), sent_b.end())) << gw->log();
  // The broker kept the shared session: the restart SUBSCRIBEd nothing again.
  const auto after = broker->log().substr(log_before);
  EXPECT_EQ(after.find("Received SUBSCRIBE"), std::string::npos) << after;
}

// A kept session (clean session false) whose client sent a plain DISCONNECT stays in the gateway:
// in aggregating mode its subscriptions stay in the fan-out table and broker messages are buffered
// for it, the broker having been told they were delivered (PUBACK). A graceful restart must keep
// that session and those messages, and must not connect it to the broker (issue 8).
TEST_F(PersistenceRestart, aggregating_mode_keeps_a_disconnected_kept_session_and_its_messages_across_sigterm) {
  auto gw = start_gateway("1", "aggregating");
  auto c = sensor("gone-a");
  ASSERT_EQ(c.connect(false), mqttsn::return_code::accepted);
  ASSERT_EQ(c.subscribe(topic_name{"m/x"}, qos::at_least_once).rc, mqttsn::return_code::accepted);
  c.disconnect();
  ASSERT_TRUE(wait_until([&] { return gw->stat("disconnects") == 1U; }, 10s)) << gw->log();
  std::set<std::string> sent;
  for (int i = 0; i < 5; ++i) {
    const std::string p = "k" + std::to_string(i);
    ASSERT_TRUE(observer->publish("m/x", p, 1));  // acknowledged by the broker
    sent.insert(p);
  }
  ASSERT_TRUE(wait_until([&] { return gw->stat("buffered") == 5U; }, 10s)) << gw->log();
  EXPECT_EQ(gw->stop(), 0);

  gw = start_gateway("1", "aggregating");
  EXPECT_TRUE(gw->log_contains("restored 1 session(s) (0 asleep, 1 offline) with 5 buffered message(s)")) << gw->log();
  EXPECT_TRUE(gw->log_contains("; 0 not restorable")) << gw->log();
  // Still offline, still subscribed: a message published after the restart is buffered too.
  ASSERT_TRUE(observer->publish("m/x", "after", 1));
  sent.insert("after");
  ASSERT_TRUE(wait_until([&] { return gw->stat("buffered") == 1U; }, 10s)) << gw->log();
  EXPECT_EQ(gw->stat("connects"), 0U);  // the restore connected nothing on the client's behalf

  ASSERT_EQ(c.connect(false), mqttsn::return_code::accepted);
  std::set<std::string> got;
  std::size_t count = 0;
  while (count < 6) {
    const auto m = c.receive(10s);
    if (!m) break;
    ++count;
    EXPECT_EQ(m->topic, "m/x");
    got.insert(text(m->payload));
  }
  EXPECT_EQ(count, 6U) << gw->log();
  EXPECT_EQ(got, sent) << gw->log();
}

// Transparent mode: the broker holds the disconnected client's session and its messages; the
// gateway keeps its record (subscriptions, topic registrations) and does not reconnect it.
TEST_F(PersistenceRestart, transparent_mode_keeps_a_disconnected_kept_session_offline_across_sigterm) {
  auto gw = start_gateway();
  auto c = sensor("gone-t");
  ASSERT_EQ(c.connect(false), mqttsn::return_code::accepted);
  ASSERT_EQ(c.subscribe(topic_name{"m/y"}, qos::at_least_once).rc, mqttsn::return_code::accepted);
  c.disconnect();
  ASSERT_TRUE(wait_until([&] { return gw->stat("disconnects") == 1U; }, 10s)) << gw->log();
  EXPECT_EQ(gw->stop(), 0);
  std::set<std::string> sent;
  for (int i = 0; i < 3; ++i) {
    const std::string p = "t" + std::to_string(i);
    ASSERT_TRUE(observer->publish("m/y", p, 1));  // kept by the broker for the client's session
    sent.insert(p);
  }

  gw = start_gateway();
  EXPECT_TRUE(gw->log_contains("restored 1 session(s) (0 asleep, 1 offline) with 0 buffered message(s)")) << gw->log();
  EXPECT_TRUE(gw->log_contains("registration(s), 1 subscription(s)")) << gw->log();
  EXPECT_EQ(gw->stat("connects"), 0U);
  ASSERT_EQ(c.connect(false), mqttsn::return_code::accepted);
  std::set<std::string> got;
  for (int i = 0; i < 3; ++i) {
    const auto m = c.receive(10s);
    if (!m) break;
    got.insert(text(m->payload));
  }
  EXPECT_EQ(got, sent) << gw->log();
}

// A restored session's subscriptions are still at the broker (the shared session was kept): a
// SUBSCRIBE sent again would make the broker send the retained messages again, and the sensor
// would get a retained message it already has.
TEST_F(PersistenceRestart, aggregating_mode_sends_no_retained_message_twice_across_a_restart) {
  broker_options bo;
  bo.extra_config = {"log_type all"};  // "Received SUBSCRIBE from ..."
  observer.reset();
  broker = std::make_unique<mosquitto_broker>(bo);
  observer = std::make_unique<mqtt_test_client>(*broker);
  ASSERT_TRUE(observer->publish("down/ret/status", "retained", 1, true));
  auto gw = start_gateway("1", "aggregating");
  auto c = sensor("ret");
  ASSERT_EQ(c.connect(false), mqttsn::return_code::accepted);
  ASSERT_EQ(c.subscribe(topic_name{"down/ret/#"}, qos::at_least_once).rc, mqttsn::return_code::accepted);
  auto first = c.receive(5s);
  ASSERT_TRUE(first) << gw->log();
  EXPECT_EQ(text(first->payload), "retained");
  EXPECT_TRUE(first->retain);
  c.sleep(600);
  EXPECT_EQ(gw->stop(), 0);
  const auto log_before = broker->log().size();
  ASSERT_TRUE(observer->publish("down/ret/t", "while-down", 1));
  gw = start_gateway("1", "aggregating");
  ASSERT_TRUE(wait_until([&] { return gw->stat("buffered") >= 1U; }, 10s)) << gw->log();
  // A SUBSCRIBE sent again would be sent when the connection comes up, before the gateway
  // routes what the broker kept: its retained copy would come before this marker.
  ASSERT_TRUE(observer->publish("down/ret/t", "marker", 1));
  ASSERT_TRUE(wait_until([&] { return gw->stat("buffered") >= 2U; }, 10s)) << gw->log();
  std::vector<std::string> got;
  for (const auto& m : c.wake(15s)) got.push_back(text(m.payload));
  EXPECT_EQ(got, (std::vector<std::string>{"while-down", "marker"})) << gw->log();
  const auto after = broker->log().substr(log_before);
  EXPECT_EQ(after.find("Received SUBSCRIBE"), std::string::npos) << after;
}

// Two sensors restored from the store hold one filter, and the broker lost the shared session
// (restarted without persistence): the restore SUBSCRIBEs the filter once and its retained copy
// reaches both, once each (the fan-out's record for that SUBSCRIBE holds both).
TEST_F(PersistenceRestart, aggregating_mode_restore_gives_each_restored_holder_the_retained_message_once) {
  ASSERT_TRUE(observer->publish("down/cfg/mode", "v1", 1, true));
  auto gw = start_gateway("1", "aggregating");
  auto a = sensor("cfg-a");
  auto b = sensor("cfg-b");
  for (auto* c : {&a, &b}) {
    ASSERT_EQ(c->connect(false), mqttsn::return_code::accepted);
    ASSERT_EQ(c->subscribe(topic_name{"down/cfg/#"}, qos::at_least_once).rc, mqttsn::return_code::accepted);
    auto first = c->receive(5s);
    ASSERT_TRUE(first) << c->client_id() << "\n" << gw->log();
    EXPECT_EQ(text(first->payload), "v1");
    c->sleep(600);
  }
  EXPECT_EQ(gw->stop(), 0);
  // The broker forgets the shared session and the retained message; a new one is retained.
  observer.reset();
  broker->stop();
  broker->start();
  observer = std::make_unique<mqtt_test_client>(*broker);
  ASSERT_TRUE(observer->publish("down/cfg/mode", "v2", 1, true));
  gw = start_gateway("1", "aggregating");
  ASSERT_TRUE(wait_until([&] { return gw->stat("buffered") >= 2U; }, 10s)) << gw->log();
  EXPECT_TRUE(gw->log_contains("the broker had lost the shared session")) << gw->log();
  for (auto* c : {&a, &b}) {
    std::vector<std::string> got;
    for (const auto& m : c->wake(15s)) {
      got.push_back(text(m.payload));
      EXPECT_TRUE(m.retain);
    }
    EXPECT_EQ(got, (std::vector<std::string>{"v2"})) << c->client_id() << "\n" << gw->log();
  }
}

// A QoS 2 PUBLISH to a sleeping sensor whose PUBREC never reached the gateway (lost on the link,
// or the gateway stopped first) is, after a restart, resent with DUP and the same msg id, so a
// spec-conforming sensor (it keeps the ids it answered PUBREC until their PUBREL) delivers it once.
// The test is that sensor, frame by frame.
TEST_F(PersistenceRestart, a_qos2_publish_awaiting_pubrec_is_resent_with_the_same_msg_id_after_sigterm) {
  auto gw = start_gateway();
  auto c = sensor("q2-once");
  put_to_sleep(c, "q2-once");
  ASSERT_TRUE(observer->publish("down/q2-once/t", "once", 2));
  ASSERT_TRUE(wait_until([&] { return gw->stat("buffered") == 1U; }, 10s)) << gw->log();

  std::set<mqttsn::msg_id> awaiting_pubrel;  // the sensor's QoS 2 state
  std::vector<std::string> delivered;
  // The next message from the gateway; a REGISTER (for the wildcard's topic) is accepted on the way.
  auto next = [&]() -> std::optional<mqttsn::message> {
    for (int frames = 0; frames < 8; ++frames) {
      auto frame = c.receive_raw(5s);
      if (!frame) return std::nullopt;
      auto d = mqttsn::decode(*frame);
      if (!std::holds_alternative<mqttsn::message>(d)) return std::nullopt;
      auto m = std::get<mqttsn::message>(d);
      if (const auto* r = std::get_if<mqttsn::register_>(&m)) {
        c.send_raw(mqttsn::encode(mqttsn::regack{r->id, r->mid, mqttsn::return_code::accepted}));
        continue;
      }
      return m;
    }
    return std::nullopt;
  };
  auto take = [&](const mqttsn::publish& p) {
    EXPECT_EQ(p.q, qos::exactly_once);
    if (awaiting_pubrel.insert(p.mid).second) delivered.emplace_back(p.data.begin(), p.data.end());
  };

  // Wake: the PUBLISH comes; its PUBREC is lost.
  c.send_raw(mqttsn::encode(mqttsn::pingreq{"q2-once"}));
  auto first = next();
  ASSERT_TRUE(first && std::holds_alternative<mqttsn::publish>(*first)) << gw->log();
  const auto p1 = std::get<mqttsn::publish>(*first);
  EXPECT_FALSE(p1.dup);
  take(p1);
  EXPECT_EQ(gw->stop(), 0);

  gw = start_gateway();
  EXPECT_TRUE(gw->log_contains("restored 1 session(s) (1 asleep, 0 offline) with 1 buffered message(s)")) << gw->log();
  c.send_raw(mqttsn::encode(mqttsn::pingreq{"q2-once"}));
  auto again = next();
  ASSERT_TRUE(again && std::holds_alternative<mqttsn::publish>(*again)) << gw->log();
  const auto p2 = std::get<mqttsn::publish>(*again);
  EXPECT_TRUE(p2.dup);
  EXPECT_EQ(p2.mid, p1.mid);
  EXPECT_EQ(p2.id, p1.id);
  take(p2);
  c.send_raw(mqttsn::encode(mqttsn::pubrec{p2.mid}));
  auto rel = next();
  ASSERT_TRUE(rel && std::holds_alternative<mqttsn::pubrel>(*rel)) << gw->log();
  EXPECT_EQ(std::get<mqttsn::pubrel>(*rel).mid, p2.mid);
  awaiting_pubrel.erase(p2.mid);
  c.send_raw(mqttsn::encode(mqttsn::pubcomp{p2.mid}));
  auto end = next();
  ASSERT_TRUE(end && std::holds_alternative<mqttsn::pingresp>(*end)) << gw->log();
  EXPECT_EQ(delivered, std::vector<std::string>{"once"});
}

// A session the store cannot give back is reported at the start that finds it, then removed: the
// next start is clean, and the other sessions are untouched.
TEST_F(PersistenceRestart, a_damaged_session_is_reported_once_then_removed_from_the_store) {
  auto gw = start_gateway();
  auto good = sensor("fine");
  auto bad = sensor("damaged");
  put_to_sleep(good, "fine");
  put_to_sleep(bad, "damaged");
  EXPECT_EQ(gw->stop(), 0);
  run_sql(db, "UPDATE subscriptions SET qos = 7 WHERE client_id = 'damaged'");

  const std::string report = "client 'damaged': an invalid subscription in the store";
  gw = start_gateway();
  EXPECT_TRUE(gw->log_contains("restored 1 session(s) (1 asleep, 0 offline)")) << gw->log();
  EXPECT_TRUE(gw->log_contains("; 1 not restorable")) << gw->log();
  EXPECT_TRUE(gw->log_contains(report)) << gw->log();
  EXPECT_EQ(gw->stop(), 0);

  gw = start_gateway();
  EXPECT_TRUE(gw->log_contains("restored 1 session(s) (1 asleep, 0 offline)")) << gw->log();
  EXPECT_TRUE(gw->log_contains("; 0 not restorable")) << gw->log();
  EXPECT_FALSE(gw->log_contains("'damaged'")) << gw->log();
  auto reader_ptr = gateway::open_session_store(db);
  auto& reader = *reader_ptr;
  const auto loaded = reader.load();
  ASSERT_EQ(loaded.sessions.size(), 1U);
  EXPECT_EQ(loaded.sessions[0].snapshot.client_id, "fine");
  EXPECT_TRUE(loaded.problems.empty());
}

// Restoring many sessions is one summary line at info, not one "connecting" line per session.
TEST_F(PersistenceRestart, restored_sessions_are_summed_up_in_one_log_line) {
  auto gw = start_gateway();
  auto s0 = sensor("many-0");
  auto s1 = sensor("many-1");
  auto s2 = sensor("many-2");
  put_to_sleep(s0, "many-0");
  put_to_sleep(s1, "many-1");
  put_to_sleep(s2, "many-2");
  EXPECT_EQ(gw->stop(), 0);
  gw = start_gateway();
  const auto log = gw->log();
  EXPECT_NE(log.find("restored 3 session(s) (3 asleep, 0 offline)"), std::string::npos) << log;
  EXPECT_EQ(log.find("connecting to the broker"), std::string::npos) << log;
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
  EXPECT_TRUE(gw->log_contains("restored 1 session(s) (0 asleep, 0 offline)")) << gw->log();
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
  auto reader_ptr = gateway::open_session_store(db);
  auto& reader = *reader_ptr;
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
  EXPECT_TRUE(gw->log_contains("restored 1 session(s) (1 asleep, 0 offline) with 5 buffered message(s)")) << gw->log();
  const auto got = a.wake(15s);
  std::set<std::string> received;
  for (const auto& m : got) received.insert(text(m.payload));
  EXPECT_EQ(received, sent);
}

}  // namespace
}  // namespace itest
