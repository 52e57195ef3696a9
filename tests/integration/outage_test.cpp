// Broker outages end to end: the real daemon between MQTT-SN sensors and a real Mosquitto (with
// persistence) that is stopped and started again, and killed once, while QoS 1 and QoS 2 traffic
// flows both ways. Every QoS 1 message must arrive at least once and every QoS 2 message exactly
// once, in both directions and both modes, without the sensors reconnecting.
//
// Four streams run at once:
//   U1  sensor "up-q1" (clean session)      publishes QoS 1 on up/q1    -> observer at the broker
//   U2  sensor "up-q2" (kept session)       publishes QoS 2 on up/q2    -> observer at the broker
//   D1  MQTT publisher, QoS 1 on down/q1    -> sensor "down-q1" (kept session, subscribed QoS 1)
//   D2  MQTT publisher, QoS 2 on down/q2    -> sensor "down-q2" (kept session, subscribed QoS 2)
// Each payload names its stream and number ("U2-00042"), so arrivals are counted per message.
//
// Phase 1 restarts the broker gracefully (SIGTERM, saved database, same port) several times while
// messages are in flight; everything must arrive, QoS 2 exactly once. Phase 2 kills it (SIGKILL)
// once. A killed broker may lose what it had acknowledged but not yet saved; that loss is the
// broker's. The gateway and the publisher reach the broker through an mqtt_tap, which records
// every acknowledgement the broker sent and on which broker run, so the test knows exactly which
// messages were unacknowledged at the kill: all of those must arrive (QoS 2 exactly once); the
// acknowledged ones are accounted for (arrived, lost by the broker, duplicated by the broker) and
// printed. Messages the gateway itself acknowledged to the broker (it owns them from then on) must
// all reach their sensor, whatever the broker did.
//
// Mosquitto 2.0.11 resends, after a graceful restart, QoS 2 PUBLISHes it had already released with
// PUBREL (MQTT 3.1.1 section 4.3.3 forbids it), and no client can tell such a copy from a new
// message. The observer also goes through the tap, which records those resends per client id: a
// second copy of exactly such a message is counted as the broker's and printed, not failed.
//
// The default suite runs a short version (OutageShort: 4 x 80 messages in phase 1 with 2 restarts,
// 4 x 40 in phase 2 with the kill); label `soak` runs OutageSoak (4 x 1,000 messages across 3
// restarts, then 4 x 250 around the kill: 5,000 in all).
#include <gtest/gtest.h>
#include <mqtt/async_client.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "tests/integration/gateway_process.hpp"
#include "tests/integration/harness.hpp"
#include "tests/integration/mqtt_tap.hpp"
#include "tools/client/mqttsn_client.hpp"

namespace itest {
namespace {

using namespace std::chrono_literals;
using mqttsn::qos;

enum stream : int { u1, u2, d1, d2, streams };
constexpr const char* stream_name[streams] = {"U1", "U2", "D1", "D2"};
constexpr const char* stream_topic[streams] = {"up/q1", "up/q2", "down/q1", "down/q2"};
constexpr int stream_qos[streams] = {1, 2, 1, 2};

std::string payload(int s, int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%s-%05d", stream_name[s], i);
  return buf;
}

int stream_of(const std::string& p) {
  for (int s = 0; s < streams; ++s) {
    if (p.rfind(stream_name[s], 0) == 0) return s;
  }
  return -1;
}

int number_of(const std::string& p) { return std::stoi(p.substr(3)); }

// Arrivals by payload, from several threads.
class tally {
 public:
  void add(const std::string& p) {
    std::lock_guard lock(mutex_);
    ++count_[p];
  }
  int count(const std::string& p) const {
    std::lock_guard lock(mutex_);
    auto it = count_.find(p);
    return it == count_.end() ? 0 : it->second;
  }
  // How many of stream `s`'s messages [from, to) arrived at least once.
  int distinct(int s, int from, int to) const {
    std::lock_guard lock(mutex_);
    int n = 0;
    for (int i = from; i < to; ++i) n += count_.contains(payload(s, i)) ? 1 : 0;
    return n;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, int> count_;
};

struct outage_plan {
  int phase1 = 80;         // messages per stream in phase 1
  int graceful = 2;        // graceful restarts in phase 1
  int phase2 = 40;         // messages per stream in phase 2, with one hard kill in the middle
  std::chrono::seconds settle{90};  // bound on waiting for everything to arrive after a phase
};

class outage_run {
 public:
  // mode: "transparent", "aggregating", or "transparent_flow" (transparent mode with the default
  // sleep-buffer: flow control toward the broker, native client only, holds the backlog).
  outage_run(std::string mode, std::string client, outage_plan plan)
      : flow_control_(mode == "transparent_flow"),
        mode_(flow_control_ ? "transparent" : std::move(mode)),
        client_(std::move(client)),
        plan_(plan) {}

  void run() {
    broker_options bo;
    bo.persistence = true;
    if (std::getenv("MQTTSN_OUTAGE_LOG")) bo.extra_config = {"log_type all"};
    broker_ = std::make_unique<mosquitto_broker>(bo);
    tap_ = std::make_unique<mqtt_tap>(broker_->port());
    tap_->set_instance(instance_);
    // After an outage the broker hands over its backlog for a subscriber at broker speed, faster
    // than a sensor takes it (one message in flight). Without flow control toward the broker the
    // per-client queue must hold a whole stream: with the default 100, a slow run (ASan) dropped
    // QoS 2 messages there, counted and logged as the last resort (docs/robustness.md). With it
    // ("transparent_flow": transparent mode on the native client, docs/flow-control.md) the
    // default queue must do: the gateway acknowledges only what the queue takes.
    std::vector<std::string> args{"--mode", mode_, "--upstream-client", client_};
    if (!flow_control_) args.insert(args.end(), {"--sleep-buffer", std::to_string(plan_.phase1 + plan_.phase2)});
    // MQTTSN_OUTAGE_LOG=DIR: the gateway logs frames (trace) and its log is kept in DIR.
    if (const char* dir = std::getenv("MQTTSN_OUTAGE_LOG")) {
      keep_log_ = std::string(dir) + "/outage-" + mode_ + "-" + client_ + ".log";
      args.insert(args.end(), {"--log-level", "trace"});
    }
    gateway_ = std::make_unique<gateway_process>(tap_->uri(), args);

    client_options oo;
    oo.client_id = "outage-observer";
    oo.clean_session = false;
    oo.timeout = 5s;
    // Through the tap too: the broker's QoS 2 resends to the observer are recognised like those to
    // the gateway (see mqtt_tap::broker_resent_after_release).
    observer_ = std::make_unique<mqtt_test_client>(tap_->uri(), oo);
    ASSERT_TRUE(observer_->subscribe("up/#", 2));
    start_publisher();
    start_sensors();
    ASSERT_FALSE(::testing::Test::HasFatalFailure());

    // Phase 1: graceful restarts while messages are in flight.
    go(0, plan_.phase1);
    for (int r = 1; r <= plan_.graceful; ++r) {
      wait_progress(plan_.phase1 * r / (plan_.graceful + 1));
      if (::testing::Test::HasFatalFailure()) return;
      restart(false);
    }
    wait_done(plan_.phase1);
    if (::testing::Test::HasFatalFailure()) return;
    check_phase1();

    // Phase 2: one hard kill in the middle.
    go(plan_.phase1, plan_.phase1 + plan_.phase2);
    wait_progress(plan_.phase1 + 2);  // every stream has messages of phase 2 in flight
    if (::testing::Test::HasFatalFailure()) return;
    const int killed = instance_;
    // Each sender's message in progress (and any before it not yet acknowledged) is in flight.
    for (int s = 0; s < streams; ++s) sent_at_kill_[s] = sent_[s] + 1;
    restart(true);
    // What the killed broker had acknowledged may be gone with it: not waited for, accounted below.
    for (int k = 0; k <= killed; ++k) {
      for (const auto& p : tap_->broker_acked(k)) {
        if (stream_of(p) >= 0 && number_of(p) >= plan_.phase1) may_be_lost_.insert(p);
      }
    }
    wait_done(plan_.phase1 + plan_.phase2);
    if (::testing::Test::HasFatalFailure()) return;
    // Give the acknowledged ones the same chance to arrive before they are counted as lost.
    wait_until(
        [&] {
          collect_observer();
          for (const auto& p : may_be_lost_) {
            if (arrived_.count(p) == 0) return false;
          }
          return true;
        },
        5s);
    check_phase2();
    std::printf("[ outage %s ] %d broker restarts (%d graceful, 1 kill -9); the publisher published %d messages again\n",
                mode_.c_str(), restarts_, plan_.graceful, republished_.load());

    finish();
    // The sensors kept their sessions: one CONNECT each, never told to reconnect.
    const auto st = gateway_->stats();
    if (flow_control_) {
      std::printf("[ outage %s ] flow control: %llu broker messages held before acknowledging, %llu held resends "
                  "not taken twice, %llu pushed into a full queue\n",
                  mode_.c_str(), static_cast<unsigned long long>(st.at("upstream_acks_deferred")),
                  static_cast<unsigned long long>(st.at("upstream_held_duplicates")),
                  static_cast<unsigned long long>(st.at("upstream_held_overflows")));
    }
    EXPECT_EQ(st.at("connects"), 4U);
    EXPECT_EQ(st.at("takeovers"), 0U);
    EXPECT_EQ(st.contains("dropped_qos12") ? st.at("dropped_qos12") : 0U, 0U) << "a client's queue overflowed";
    EXPECT_EQ(st.at("lost_keep_alive") + st.at("lost_retries"), 0U);
    EXPECT_EQ(sensor_errors_.load(), 0);
  }

  ~outage_run() {
    finish();
    if (!keep_log_.empty() && gateway_) {
      std::ofstream(keep_log_) << gateway_->log();
      std::ofstream(keep_log_ + ".broker") << broker_->log();
    }
  }

 private:
  // ---- traffic ----

  std::unique_ptr<tools::client> make_sensor(const std::string& id) {
    tools::client_options o;
    o.client_id = id;
    o.keep_alive = 60;
    // The sensor's retry budget outlasts an outage: reconnecting all of the gateway's broker
    // connections costs Paho C 1.3.12 up to ~2 s each on top of the backoff.
    o.retry_interval = 1s;
    o.retry_count = 90;
    return std::make_unique<tools::client>(gateway_->host(), gateway_->port(), o);
  }

  void start_sensors() {
    // Subscribers first, so no downstream message is published before they listen.
    for (int s : {d1, d2}) {
      auto c = make_sensor(s == d1 ? "down-q1" : "down-q2");
      ASSERT_EQ(c->connect(false), mqttsn::return_code::accepted);
      ASSERT_EQ(c->subscribe(tools::topic_name{stream_topic[s]}, static_cast<qos>(stream_qos[s])).rc,
                mqttsn::return_code::accepted);
      threads_.emplace_back([this, c = std::move(c)] {
        try {
          while (!stop_) {
            if (auto m = c->receive(100ms)) arrived_.add(std::string(m->payload.begin(), m->payload.end()));
          }
        } catch (const std::exception& e) {
          note_error(std::string("subscriber: ") + e.what());
        }
      });
    }
    for (int s : {u1, u2}) {
      auto c = make_sensor(s == u1 ? "up-q1" : "up-q2");
      ASSERT_EQ(c->connect(s == u1), mqttsn::return_code::accepted);
      threads_.emplace_back([this, s, c = std::move(c)] {
        try {
          for (int i = 0; !stop_;) {
            if (i >= limit_) {
              std::this_thread::sleep_for(5ms);  // waiting for the next phase
              continue;
            }
            const auto rc = c->publish(tools::topic_name{stream_topic[s]}, payload(s, i), static_cast<qos>(stream_qos[s]));
            if (rc != mqttsn::return_code::accepted) {
              note_error(payload(s, i) + ": " + tools::describe(rc));
              return;
            }
            sent_[s] = ++i;
          }
        } catch (const std::exception& e) {
          note_error(std::string(stream_name[s]) + ": " + e.what());
        }
      });
    }
  }

  // The downstream source: a Paho client at the broker (through the tap) with a kept session that
  // publishes D1 and D2 in turn, each acknowledged before the next. After a lost connection it
  // reconnects; a message the broker has not acknowledged is published again (QoS 1 may then
  // arrive twice; a QoS 2 message the broker never acknowledged cannot have been delivered).
  void start_publisher() {
    publisher_ = std::make_unique<mqtt::async_client>(tap_->uri(), "outage-publisher",
                                                      static_cast<mqtt::iclient_persistence*>(nullptr));
    // Paho C 1.3.12 opens a second connection of a process only after 1-2 s (README): retry.
    ASSERT_TRUE(wait_until([&] { return publisher_connect(); }, 20s));
    threads_.emplace_back([this] {
      for (int i = 0; !stop_;) {
        if (i >= limit_) {
          std::this_thread::sleep_for(5ms);
          continue;
        }
        for (int s : {d1, d2}) {
          if (!publish_reliably(s, i)) return;
          sent_[s] = i + 1;
        }
        ++i;
      }
    });
  }

  bool publisher_connect() {
    mqtt::connect_options o;
    o.set_mqtt_version(MQTTVERSION_3_1_1);
    o.set_clean_session(false);
    o.set_keep_alive_interval(30);
    o.set_connect_timeout(5);
    try {
      return publisher_->connect(o)->wait_for(6s) && publisher_->is_connected();
    } catch (const mqtt::exception&) {
      return false;
    }
  }

  bool publish_reliably(int s, int i) {
    const std::string p = payload(s, i);
    const auto deadline = std::chrono::steady_clock::now() + plan_.settle;
    bool first = true;
    while (!stop_ && std::chrono::steady_clock::now() < deadline) {
      if (!publisher_->is_connected() && !publisher_connect()) {
        std::this_thread::sleep_for(100ms);  // the broker is down: try again shortly
        continue;
      }
      // Once the broker has acknowledged a copy, publishing again would make a second message;
      // only what it never acknowledged is published again.
      if (!first && tap_->broker_acked().contains(p)) return true;
      if (!first) ++republished_;
      first = false;
      try {
        auto tok = publisher_->publish(stream_topic[s], p.data(), p.size(), stream_qos[s], false);
        // Paho resends it itself after a reconnect with the session kept; a token that has not
        // completed within 10 s is given up.
        const auto give_up = std::chrono::steady_clock::now() + 10s;
        while (!stop_ && std::chrono::steady_clock::now() < give_up) {
          if (tok->wait_for(50ms)) return true;
          if (!publisher_->is_connected()) publisher_connect();
        }
      } catch (const mqtt::exception&) {
        // failed (connection lost or not connected)
      }
    }
    if (!stop_) note_error("publisher: " + p + " never acknowledged");
    return false;
  }

  void note_error(const std::string& what) {
    std::lock_guard lock(errors_mutex_);
    errors_.push_back(what);
    ++sensor_errors_;
  }

  // ---- phases ----

  void go(int from, int to) {
    (void)from;
    limit_ = to;
  }

  int progress() const {
    int n = sent_[0];
    for (int s = 1; s < streams; ++s) n = std::min(n, sent_[s].load());
    return n;
  }

  void wait_progress(int n) {
    ASSERT_TRUE(wait_until([&] { return progress() >= n || sensor_errors_ > 0; }, plan_.settle)) << diagnostics();
    ASSERT_EQ(sensor_errors_.load(), 0) << diagnostics();
  }

  // Stops (or kills) the broker and starts it again on the same port with the same database. The
  // sensors keep publishing meanwhile: their messages wait in the gateway, unacknowledged.
  void restart(bool hard) {
    if (hard) {
      broker_->kill();
    } else {
      broker_->stop();
    }
    ++restarts_;
    tap_->set_instance(++instance_);  // before start: connections to the new run are tagged with it
    broker_->start();
    // The observer has a kept session too: connect it again (its messages waited in the broker).
    ASSERT_TRUE(wait_until([&] { return observer_->connected() || observer_->connect(); }, 20s));
  }

  void wait_done(int total) {
    const bool done = wait_until(
        [&] {
          if (sensor_errors_ > 0) return true;
          if (progress() < total) return false;
          if (!observer_->connected()) observer_->connect();
          collect_observer();
          // Every message, except what the killed broker acknowledged and may have lost.
          for (int s = 0; s < streams; ++s) {
            for (int i = 0; i < total; ++i) {
              if (!may_be_lost_.contains(payload(s, i)) && arrived_.count(payload(s, i)) == 0) return false;
            }
          }
          return true;
        },
        plan_.settle);
    collect_observer();
    EXPECT_TRUE(done) << diagnostics();
    ASSERT_EQ(sensor_errors_.load(), 0) << diagnostics();
  }

  void collect_observer() {
    const auto all = observer_->received();
    for (std::size_t k = observed_; k < all.size(); ++k) arrived_.add(all[k].payload);
    observed_ = all.size();
  }

  void check_phase1() {
    const auto broker_resent = tap_->broker_resent_after_release();
    for (int s = 0; s < streams; ++s) {
      int dups = 0, to_broker = 0, to_clients = 0, broker_dups = 0, broker_multi = 0;
      for (int i = 0; i < plan_.phase1; ++i) {
        const int n = arrived_.count(payload(s, i));
        to_broker += tap_->publishes_to_broker(payload(s, i));
        to_clients += tap_->publishes_to_clients(payload(s, i));
        if (auto r = broker_resent.find(payload(s, i)); stream_qos[s] == 2 && r != broker_resent.end()) {
          // The broker broke QoS 2 itself, once per restart at most: each such resend may make one
          // more copy, the broker's, not the gateway's. Any copy beyond those is a failure.
          EXPECT_GE(n, 1) << payload(s, i);
          EXPECT_LE(n, 1 + r->second) << payload(s, i) << ": more copies than the broker's " << r->second
                                      << " resend(s) of it after releasing it";
          broker_dups += n - 1;
          broker_multi += n > 2 ? 1 : 0;
          continue;
        }
        if (stream_qos[s] == 2) {
          EXPECT_EQ(n, 1) << payload(s, i) << " must arrive exactly once";
        } else {
          EXPECT_GE(n, 1) << payload(s, i) << " must arrive at least once";
        }
        dups += n > 1 ? n - 1 : 0;
      }
      std::printf("[ outage %s ] phase 1, %s: %d messages sent, %d arrived, %d duplicates (QoS %d), %d graceful restarts; "
                  "PUBLISH packets through the tap: %d to the broker, %d from it; %d copies the broker made by "
                  "resending a released QoS 2 PUBLISH (%d messages arrived more than twice: resent after more than one restart)\n",
                  mode_.c_str(), stream_name[s], plan_.phase1, arrived_.distinct(s, 0, plan_.phase1), dups,
                  stream_qos[s], plan_.graceful, to_broker, to_clients, broker_dups, broker_multi);
    }
  }

  void check_phase2() {
    // Acknowledged at the kill: what any broker run up to the killed one acknowledged.
    const auto& acked = may_be_lost_;
    const auto owned = tap_->client_acked();  // downstream messages the gateway took over
    const int from = plan_.phase1;
    const int to = plan_.phase1 + plan_.phase2;
    for (int s = 0; s < streams; ++s) {
      int unacked = 0, unacked_arrived = 0, acked_n = 0, acked_arrived = 0, broker_dups = 0, in_flight = 0;
      for (int i = from; i < to; ++i) {
        const std::string p = payload(s, i);
        const int n = arrived_.count(p);
        if (acked.contains(p)) {
          ++acked_n;
          acked_arrived += n > 0 ? 1 : 0;
          broker_dups += n > 1 ? n - 1 : 0;
          if (s >= d1 && owned.contains(p)) {
            EXPECT_GE(n, 1) << p << ": the gateway acknowledged it to the broker";
          }
          continue;
        }
        ++unacked;
        unacked_arrived += n > 0 ? 1 : 0;
        in_flight += i < sent_at_kill_[s] ? 1 : 0;
        if (stream_qos[s] == 2) {
          EXPECT_EQ(n, 1) << p << " was unacknowledged at the kill: exactly once";
        } else {
          EXPECT_GE(n, 1) << p << " was unacknowledged at the kill: at least once";
        }
      }
      std::printf("[ outage %s ] phase 2 (kill -9), %s: %d messages; %d unacknowledged at the kill (%d of them in flight, "
                  "the rest sent later), %d of them arrived; "
                  "%d acknowledged by the broker before it, %d arrived, %d lost by the broker, %d extra copies\n",
                  mode_.c_str(), stream_name[s], plan_.phase2, unacked, in_flight, unacked_arrived, acked_n, acked_arrived,
                  acked_n - acked_arrived, broker_dups);
    }
  }

  std::string diagnostics() {
    std::string d = "progress: ";
    for (int s = 0; s < streams; ++s) d += std::string(stream_name[s]) + "=" + std::to_string(sent_[s].load()) + " ";
    {
      std::lock_guard lock(errors_mutex_);
      for (const auto& e : errors_) d += "\nerror: " + e;
    }
    return d + "\ngateway log (tail):\n" + tail(gateway_->log(), 6000) + "\nbroker log (tail):\n" + tail(broker_->log(), 3000);
  }

  static std::string tail(const std::string& s, std::size_t n) { return s.size() <= n ? s : s.substr(s.size() - n); }

  void finish() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
    threads_.clear();
    if (publisher_) {
      try {
        if (publisher_->is_connected()) publisher_->disconnect(500)->wait_for(2s);
      } catch (const mqtt::exception&) {
      }
      publisher_.reset();
    }
  }

  bool flow_control_;
  std::string mode_;
  std::string client_;  // upstream-client: native | paho
  outage_plan plan_;
  std::unique_ptr<mosquitto_broker> broker_;
  std::unique_ptr<mqtt_tap> tap_;
  std::unique_ptr<gateway_process> gateway_;
  std::unique_ptr<mqtt_test_client> observer_;
  std::unique_ptr<mqtt::async_client> publisher_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::atomic<int> limit_{0};
  std::atomic<int> sent_[streams] = {0, 0, 0, 0};
  std::atomic<int> sensor_errors_{0};
  std::atomic<int> republished_{0};
  int sent_at_kill_[streams] = {0, 0, 0, 0};  // downstream messages the publisher had to publish again
  std::mutex errors_mutex_;
  std::vector<std::string> errors_;
  tally arrived_;
  std::size_t observed_ = 0;
  std::set<std::string> may_be_lost_;
  int instance_ = 0;
  int restarts_ = 0;
  std::string keep_log_;
};

struct outage_param {
  std::string mode;    // transparent | aggregating
  std::string client;  // upstream-client: native | paho
};
void PrintTo(const outage_param& p, std::ostream* os) { *os << p.mode << " (" << p.client << " client)"; }
std::string outage_name(const ::testing::TestParamInfo<outage_param>& p) {
  return p.param.mode + (p.param.client == "paho" ? "_paho" : "");
}

class OutageShort : public ::testing::TestWithParam<outage_param> {};
class OutageSoak : public ::testing::TestWithParam<outage_param> {};

TEST_P(OutageShort, restarts_and_a_kill_lose_no_qos1_and_duplicate_no_qos2_message) {
  outage_run(GetParam().mode, GetParam().client, outage_plan{}).run();
}

TEST_P(OutageSoak, five_thousand_messages_across_restarts_and_a_kill) {
  outage_run(GetParam().mode, GetParam().client, outage_plan{1000, 3, 250, std::chrono::seconds(300)}).run();
}

// Both modes on the gateway's own client (the default), and both on Paho: Paho C 1.3.12 has a
// use-after-free of its own on a broker kill (docs/robustness.md), so the `_paho` runs are not
// registered in the sanitizer build's suite (tests/integration/CMakeLists.txt); run them there
// by hand with --gtest_filter='Modes/Outage*paho*'. The soak also runs transparent mode with the
// default sleep-buffer (`transparent_flow`): flow control toward the broker instead of a queue as
// large as the stream.
const auto outage_params = ::testing::Values(outage_param{"transparent", "native"}, outage_param{"aggregating", "native"},
                                             outage_param{"transparent", "paho"}, outage_param{"aggregating", "paho"});
INSTANTIATE_TEST_SUITE_P(Modes, OutageShort, outage_params, outage_name);
INSTANTIATE_TEST_SUITE_P(Modes, OutageSoak,
                         ::testing::Values(outage_param{"transparent", "native"}, outage_param{"aggregating", "native"},
                                           outage_param{"transparent", "paho"}, outage_param{"aggregating", "paho"},
                                           outage_param{"transparent_flow", "native"}),
                         outage_name);

}  // namespace
}  // namespace itest
