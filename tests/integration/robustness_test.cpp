// Bad input, floods and bounds end to end: the real daemon on loopback, well-behaved MQTT-SN
// clients running alongside. Nothing crashes, the good clients are unaffected, and every drop or
// refusal is counted in the stats line the daemon logs on SIGUSR1 (and answered with the spec's
// congestion return code where the spec has one).
#include <sys/resource.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "mqttsn/codec.hpp"
#include "tests/integration/gateway_process.hpp"
#include "tests/integration/harness.hpp"
#include "tools/client/mqttsn_client.hpp"

namespace itest {
namespace {

using namespace std::chrono_literals;
using mqttsn::bytes;
using mqttsn::qos;

std::size_t count_of(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

// Resident set size of a process in kB (VmRSS in /proc/PID/status); 0 if unreadable.
std::size_t rss_kb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6));
  }
  return 0;
}

class Robustness : public ::testing::Test {
 protected:
  // Aggregating mode: what is tested here is decided in the core, the same in both modes, and a
  // sensor's CONNECT does not pay transparent mode's 0-2 s per broker connection (README).
  void start(std::vector<std::string> args = {}) {
    args.insert(args.end(), {"--mode", "aggregating"});
    broker = std::make_unique<mosquitto_broker>();
    gateway = std::make_unique<gateway_process>(broker->uri(), std::move(args));
    observer = std::make_unique<mqtt_test_client>(*broker);
  }
  std::unique_ptr<tools::client> sensor(const std::string& id, std::chrono::milliseconds retry = 500ms, unsigned count = 8) {
    tools::client_options o;
    o.client_id = id;
    o.keep_alive = 60;
    o.retry_interval = retry;
    o.retry_count = count;
    return std::make_unique<tools::client>(gateway->host(), gateway->port(), o);
  }

  // Good clients at work in the background: one publishes `n` QoS 1 messages on good/up, one
  // receives `n` QoS 1 messages the observer publishes on good/down. Call finish_good() to join.
  void start_good(int n) {
    ASSERT_TRUE(observer->subscribe("good/up", 1));
    auto pub = sensor("good-pub");
    auto sub = sensor("good-sub");
    ASSERT_EQ(pub->connect(), mqttsn::return_code::accepted);
    ASSERT_EQ(sub->connect(), mqttsn::return_code::accepted);
    ASSERT_EQ(sub->subscribe(tools::topic_name{"good/down"}, qos::at_least_once).rc, mqttsn::return_code::accepted);
    good_n_ = n;
    good_.emplace_back([this, n, c = std::move(pub)] {
      try {
        for (int i = 0; i < n; ++i) {
          if (c->publish(tools::topic_name{"good/up"}, std::to_string(i), qos::at_least_once) == mqttsn::return_code::accepted) {
            ++published_;
          }
        }
      } catch (const std::exception& e) {
        good_error_ = e.what();
      }
    });
    good_.emplace_back([this, n, c = std::move(sub)] {
      try {
        const auto deadline = std::chrono::steady_clock::now() + 60s;
        while (received_ < n && std::chrono::steady_clock::now() < deadline) {
          if (c->receive(100ms)) ++received_;
        }
      } catch (const std::exception& e) {
        good_error_ = e.what();
      }
    });
    good_.emplace_back([this, n] {
      for (int i = 0; i < n; ++i) observer_pub_ok_ += observer->publish("good/down", std::to_string(i), 1) ? 1 : 0;
    });
  }
  void finish_good() {
    for (auto& t : good_) t.join();
    good_.clear();
    EXPECT_EQ(good_error_, "");
    EXPECT_EQ(published_.load(), good_n_);
    EXPECT_EQ(observer_pub_ok_.load(), good_n_);
    EXPECT_EQ(received_.load(), good_n_);
    EXPECT_TRUE(wait_until([&] { return observer->count("good/up") >= static_cast<std::size_t>(good_n_); }, 10s));
  }

  std::unique_ptr<mosquitto_broker> broker;
  std::unique_ptr<gateway_process> gateway;
  std::unique_ptr<mqtt_test_client> observer;
  std::vector<std::thread> good_;
  int good_n_ = 0;
  std::atomic<int> published_{0}, received_{0}, observer_pub_ok_{0};
  std::string good_error_;
};

TEST_F(Robustness, malformed_frames_and_random_bytes_are_dropped_and_counted_while_good_clients_run) {
  start();
  constexpr int rounds = 5;
  constexpr int random_per_round = 20;
  // One frame per failure mode, from an address with no session; the counter each one lands in.
  const std::vector<std::pair<bytes, std::string>> corpus = {
      {{}, "malformed_empty"},
      {{0x00}, "malformed_zero_length"},
      {{0x01}, "malformed_truncated_length"},                    // length 1: a bare long-form marker
      {{0x01, 0x00, 0x03}, "malformed_missing_type"},            // long-form length, no type
      {{0x05, 0x0C, 0x00}, "malformed_length_mismatch"},         // truncated PUBLISH
      {{0x03, 0x03, 0x00}, "malformed_reserved_type"},           // unknown message type
      {{0x07, 0x12, 0x60, 0x00, 0x01, 0x61, 0x62}, "malformed_invalid_qos"},  // SUBSCRIBE, QoS bits 11
      {{0x07, 0x0C, 0x03, 0x00, 0x01, 0x00, 0x00}, "malformed_reserved_topic_id_type"},  // bad flags
      {{0x09, 0x04, 0x04, 0x02, 0x00, 0x3C, 0x61, 0x62, 0x63}, "malformed_bad_protocol_id"},
      {{0x06, 0x04, 0x04, 0x01, 0x00, 0x3C}, "malformed_empty_client_id"},
      {{0x03, 0x18, 0x00}, "malformed_too_short"},               // DISCONNECT with half a duration
      {{0x03, 0x17, 0x00}, "malformed_too_long"},                // PINGRESP with a byte too many
      {{0x04, 0x10, 0x00, 0x09}, "unknown_sender"},              // PUBREL from nobody we know
      {bytes(2000, 0x55), "udp0_oversize_dropped"},              // over --max-frame-size (1024)
  };
  std::mt19937 rng(20261204);
  auto bad = sensor("bad-unconnected");
  // A connected client that misbehaves inside its session.
  auto rogue = sensor("rogue");
  ASSERT_EQ(rogue->connect(), mqttsn::return_code::accepted);

  start_good(40);
  for (int r = 0; r < rounds; ++r) {
    for (const auto& [frame, counter] : corpus) bad->send_raw(frame);
    // Random bytes behind a Length that is one more than the frame's size.
    for (int k = 0; k < random_per_round; ++k) {
      bytes f(2 + rng() % 60);
      for (auto& b : f) b = static_cast<std::uint8_t>(rng());
      f[0] = static_cast<std::uint8_t>(f.size() + 1);
      bad->send_raw(f);
    }
    // A topic id never registered, and a PUBREL for an id never received.
    rogue->send_raw(mqttsn::encode(mqttsn::publish{false, qos::at_least_once, false, mqttsn::topic_id_type::normal, 0x0077,
                                                   static_cast<mqttsn::msg_id>(100 + r), {'x'}}));
    auto answer = rogue->receive_raw(3s);
    ASSERT_TRUE(answer);
    EXPECT_EQ(*answer, (bytes{0x07, 0x0D, 0x00, 0x77, 0x00, static_cast<std::uint8_t>(100 + r), 0x02}));  // PUBACK invalid topic id
    rogue->send_raw(bytes{0x04, 0x10, 0x42, static_cast<std::uint8_t>(r)});
    answer = rogue->receive_raw(3s);
    ASSERT_TRUE(answer);
    EXPECT_EQ(*answer, (bytes{0x04, 0x0E, 0x42, static_cast<std::uint8_t>(r)}));  // PUBCOMP all the same
  }
  finish_good();

  // Every bad frame is in exactly the counter of its failure mode.
  std::map<std::string, std::uint64_t> want;
  for (const auto& [frame, counter] : corpus) want[counter] += rounds;
  want["malformed_length_mismatch"] += rounds * random_per_round;
  ASSERT_TRUE(wait_until([&] { return gateway->stat("udp0_oversize_dropped") >= rounds; }, 5s));
  const auto st = gateway->stats();
  std::uint64_t malformed = 0;
  for (const auto& [counter, n] : want) {
    EXPECT_EQ(st.contains(counter) ? st.at(counter) : 0U, n) << counter << "\n" << gateway->log().substr(gateway->log().rfind("stats: "));
    if (counter.rfind("malformed_", 0) == 0) malformed += n;
  }
  EXPECT_EQ(st.at("malformed"), malformed);
  EXPECT_EQ(st.at("invalid_topic_id"), static_cast<std::uint64_t>(rounds));
  EXPECT_EQ(st.at("unknown_pubrel"), static_cast<std::uint64_t>(rounds));
  EXPECT_EQ(st.at("clients"), 3U);  // good-pub, good-sub, rogue: no session from the garbage
  EXPECT_EQ(st.at("connects"), 3U);

  // Then fully random datagrams (any length byte, any type): nothing crashes, every datagram is
  // either dropped by the transport or handed to the core, and the good clients still work.
  const auto before = gateway->stats();
  constexpr int random_total = 3000;
  auto probe = sensor("probe");  // its own socket: `bad` gets the answers to the garbage
  for (int k = 0; k < random_total; ++k) {
    bytes f(1 + rng() % 80);
    for (auto& b : f) b = static_cast<std::uint8_t>(rng());
    bad->send_raw(f);
    // Paced so the kernel's socket buffer never overflows (the flood test covers that): the
    // SEARCHGW is answered only after everything sent before it was read.
    if (k % 100 == 99) {
      ASSERT_TRUE(probe->searchgw(0, 3s)) << "gateway stopped answering after " << k << " random frames";
    }
  }
  auto after = gateway->stats();
  ASSERT_TRUE(wait_until([&] { return (after = gateway->stats()).at("udp0_datagrams_in") >= before.at("udp0_datagrams_in") + random_total; }, 10s));
  EXPECT_EQ(after.at("udp0_datagrams_in"), after.at("frames_in") + after.at("udp0_oversize_dropped"));
  auto pub = sensor("good-after");
  ASSERT_EQ(pub->connect(), mqttsn::return_code::accepted);
  EXPECT_EQ(pub->publish(tools::topic_name{"good/up"}, "still here", qos::exactly_once), mqttsn::return_code::accepted);
  std::printf("[ bad input ] %d structured bad frames, %d random-with-bad-length, %d fully random; malformed counted %llu -> %llu\n",
              rounds * static_cast<int>(corpus.size() + 2), rounds * random_per_round, random_total,
              static_cast<unsigned long long>(before.at("malformed")), static_cast<unsigned long long>(after.at("malformed")));
}

TEST_F(Robustness, connect_storm_beyond_max_clients_gets_congestion_logged_once_and_counted) {
  start({"--max-clients", "5"});
  std::vector<std::unique_ptr<tools::client>> admitted;
  for (int i = 0; i < 5; ++i) {
    admitted.push_back(sensor("ok" + std::to_string(i)));
    ASSERT_EQ(admitted.back()->connect(), mqttsn::return_code::accepted);
  }
  constexpr int storm = 60;
  for (int i = 0; i < storm; ++i) {
    auto c = sensor("storm" + std::to_string(i), 200ms, 5);
    EXPECT_EQ(c->connect(), mqttsn::return_code::congestion) << i;
  }
  for (auto& c : admitted) c->ping();  // the admitted ones are still served
  const auto st = gateway->stats();
  EXPECT_EQ(st.at("clients"), 5U);
  EXPECT_EQ(st.at("congestion"), static_cast<std::uint64_t>(storm));
  EXPECT_EQ(st.at("connects_rejected"), static_cast<std::uint64_t>(storm));
  EXPECT_EQ(count_of(gateway->log(), "limit reached, answered congestion: clients"), 1U) << gateway->log();
}

TEST_F(Robustness, client_that_never_acks_fills_its_queue_then_is_lost_while_others_are_served) {
  start({"--retry-interval", "0.3", "--retry-count", "2", "--sleep-buffer", "5"});
  ASSERT_TRUE(observer->subscribe("wills/#", 1));
  auto mute = sensor("mute");
  ASSERT_EQ(mute->connect(true, tools::will{"wills/mute", {'m'}, qos::at_least_once, false}), mqttsn::return_code::accepted);
  ASSERT_EQ(mute->subscribe(tools::topic_name{"na/t"}, qos::at_least_once).rc, mqttsn::return_code::accepted);
  auto other = sensor("other");
  ASSERT_EQ(other->connect(), mqttsn::return_code::accepted);
  // Twelve QoS 1 messages for a client that reads nothing: one in flight, five queued, the rest
  // dropped (oldest first, QoS 1/2 only as the last resort), counted, logged once.
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(observer->publish("na/t", std::to_string(i), 1));
  EXPECT_EQ(other->publish(tools::topic_name{"x/y"}, "served", qos::at_least_once), mqttsn::return_code::accepted);
  // T_retry x (N_retry + 1) later it is lost: its will goes out.
  auto will = observer->wait_message("wills/mute", 10s);
  ASSERT_TRUE(will) << gateway->log();
  const auto st = gateway->stats();
  EXPECT_EQ(st.at("lost_retries"), 1U);
  EXPECT_EQ(st.at("retransmissions"), 2U);
  EXPECT_GE(st.at("dropped_qos12"), 6U);
  EXPECT_EQ(count_of(gateway->log(), "dropping messages (first of them"), 1U) << gateway->log();
  other->ping();
}

TEST_F(Robustness, sleeping_client_buffer_overflow_keeps_the_newest_and_counts_the_rest) {
  start({"--sleep-buffer", "5"});
  auto sleeper = sensor("sleepy");
  ASSERT_EQ(sleeper->connect(false), mqttsn::return_code::accepted);
  ASSERT_EQ(sleeper->subscribe(tools::topic_name{"zz/#"}, qos::at_least_once).rc, mqttsn::return_code::accepted);
  sleeper->sleep(60);
  // Four QoS 0 and ten QoS 1 while asleep: QoS 0 go first, then the oldest QoS 1.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(observer->publish("zz/zero", "z" + std::to_string(i), 0));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(observer->publish("zz/one", "o" + std::to_string(i), 1));
  ASSERT_TRUE(wait_until([&] { return gateway->stat("buffered") >= 14U; }, 5s));
  const auto st = gateway->stats();
  EXPECT_EQ(st.at("dropped_qos0"), 4U);
  EXPECT_EQ(st.at("dropped_qos12"), 5U);
  EXPECT_EQ(count_of(gateway->log(), "dropping messages (first of them"), 1U) << gateway->log();
  const auto got = sleeper->wake(10s);
  ASSERT_EQ(got.size(), 5U);
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(std::string(got[i].payload.begin(), got[i].payload.end()), "o" + std::to_string(5 + i));
  }
}

TEST_F(Robustness, udp_flood_at_several_times_capacity_leaves_the_gateway_responsive_and_bounded) {
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer keeps freed memory in a quarantine (256 MB by default), so the RSS of a daemon
  // that frees per datagram grows with the datagrams even though nothing it holds does: this
  // daemon runs with no quarantine, so RSS again measures what it keeps.
  const char* inherited = std::getenv("ASAN_OPTIONS");
  const std::string saved = inherited != nullptr ? inherited : "";
  ::setenv("ASAN_OPTIONS", (saved + (saved.empty() ? "" : ":") + "quarantine_size_mb=0").c_str(), 1);
  start();
  if (inherited != nullptr) {
    ::setenv("ASAN_OPTIONS", saved.c_str(), 1);
  } else {
    ::unsetenv("ASAN_OPTIONS");
  }
#else
  start();
#endif
  auto good = sensor("flood-good", 200ms, 25);
  ASSERT_EQ(good->connect(), mqttsn::return_code::accepted);
  ASSERT_TRUE(observer->subscribe("flood/good", 1));
  const std::size_t rss_before = rss_kb(gateway->pid());
  const auto before = gateway->stats();

  // Two senders, 2.5 s each, as fast as loopback takes it: SEARCHGW (answered with GWINFO),
  // PINGREQs and PUBLISHes from unknown addresses (answered with DISCONNECT) and garbage.
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> sent{0};
  std::vector<std::thread> flooders;
  for (int t = 0; t < 2; ++t) {
    flooders.emplace_back([&, t] {
      tools::client_options o;
      o.client_id = "flood" + std::to_string(t);
      tools::client f(gateway->host(), gateway->port(), o);
      const std::vector<bytes> frames = {{0x03, 0x01, 0x00}, {0x02, 0x16}, {0x04, 0x10, 0x00, 0x01}, {0x03, 0x03, 0x00},
                                         mqttsn::encode(mqttsn::publish{false, qos::at_least_once, false,
                                                                        mqttsn::topic_id_type::short_name, 0x6162, 7, bytes(40, 'f')})};
      const auto end = std::chrono::steady_clock::now() + 2500ms;
      std::uint64_t n = 0;
      while (!stop && std::chrono::steady_clock::now() < end) {
        for (const auto& fr : frames) f.send_raw(fr);
        n += frames.size();
      }
      sent += n;
    });
  }
  // Meanwhile the good client keeps publishing at QoS 1 and pinging: it must get through.
  int ok = 0;
  const auto flood_end = std::chrono::steady_clock::now() + 2500ms;
  std::size_t rss_peak = rss_before;
  while (std::chrono::steady_clock::now() < flood_end) {
    if (good->publish(tools::topic_name{"flood/good"}, std::to_string(ok), qos::at_least_once) == mqttsn::return_code::accepted) ++ok;
    rss_peak = std::max(rss_peak, rss_kb(gateway->pid()));
  }
  stop = true;
  for (auto& t : flooders) t.join();
  good->ping();
  const auto after = gateway->stats();
  const std::uint64_t handled = after.at("udp0_datagrams_in") - before.at("udp0_datagrams_in");
  EXPECT_GE(ok, 1) << "the good client got nothing through the flood";
  EXPECT_TRUE(wait_until([&] { return observer->count("flood/good") >= static_cast<std::size_t>(ok); }, 10s));
  // Memory stays bounded: nothing in the gateway grows with the number of datagrams.
  EXPECT_LT(rss_peak, rss_before + 32 * 1024) << "RSS grew from " << rss_before << " kB to " << rss_peak << " kB";
  EXPECT_EQ(after.at("clients"), 1U);
  std::printf("[ flood ] %llu datagrams offered in 2.5 s, %llu read by the gateway (%.1fx its pace), "
              "%d QoS 1 publishes of a good client acknowledged meanwhile; RSS %zu kB before, %zu kB peak\n",
              static_cast<unsigned long long>(sent.load()), static_cast<unsigned long long>(handled),
              handled ? static_cast<double>(sent.load()) / static_cast<double>(handled) : 0.0, ok, rss_before, rss_peak);
}


// Transparent mode at the gateway's open-file limit: a broker connection that cannot even be opened
// (EMFILE) is the host's limit, not the broker's state. It is logged once as such, the broker is
// not reported down, the client gets CONNACK congestion, and the clients already connected are
// still served. With the broker as an IP address and as a host name (resolved, its addresses tried
// in turn: "localhost" may give ::1 first, where this broker does not listen).
// The Robustness fixture's members and sensor(), with a transparent-mode gateway of its own.
class RobustnessLimits : public Robustness, public ::testing::WithParamInterface<bool> {};

TEST_P(RobustnessLimits, transparent_mode_at_the_open_file_limit_says_so_and_keeps_the_broker_up) {
  broker = std::make_unique<mosquitto_broker>();
  const std::string uri = GetParam() ? "tcp://localhost:" + std::to_string(broker->port()) : broker->uri();
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  // The gateway inherits a soft limit of 48 descriptors (about 35 broker connections after its own
  // sockets, log, epoll and timers); this process gets its own limit back at once.
  rlimit low = saved;
  low.rlim_cur = 48;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  try {
    gateway = std::make_unique<gateway_process>(uri, std::vector<std::string>{"--mode", "transparent", "--connect-timeout", "1"});
  } catch (...) {
    ::setrlimit(RLIMIT_NOFILE, &saved);
    throw;
  }
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);

  // Clients connect one at a time and stay connected (a client object gone without DISCONNECT
  // leaves its session and broker connection), until one is refused for want of a descriptor.
  int accepted = 0;
  bool refused = false;
  for (int i = 0; i < 100 && !refused; ++i) {
    const auto rc = sensor("fd" + std::to_string(i), 400ms, 6)->connect();
    if (rc == mqttsn::return_code::accepted) {
      ++accepted;
    } else {
      EXPECT_EQ(rc, mqttsn::return_code::congestion) << i;
      refused = true;
    }
  }
  ASSERT_TRUE(refused) << "the open-file limit was never reached; log:\n" << gateway->log();
  EXPECT_GT(accepted, 10);
  const std::string log = gateway->log();
  EXPECT_EQ(count_of(log, "a limit of this host, not the broker"), 1U) << log;
  EXPECT_NE(log.find("Too many open files"), std::string::npos) << log;
  EXPECT_EQ(log.find(" is down ("), std::string::npos) << log;
  EXPECT_EQ(log.find(" is unreachable ("), std::string::npos) << log;
  // A client connected before the limit was reached is still served end to end.
  auto first = sensor("fd0", 400ms, 6);
  EXPECT_EQ(first->connect(), mqttsn::return_code::accepted);
  observer = std::make_unique<mqtt_test_client>(*broker);
  ASSERT_TRUE(observer->subscribe("fd/up", 1));
  EXPECT_EQ(first->publish(tools::topic_name{"fd/up"}, "still here", qos::at_least_once), mqttsn::return_code::accepted);
  EXPECT_TRUE(wait_until([&] { return observer->count("fd/up") >= 1; }, 10s));
}

INSTANTIATE_TEST_SUITE_P(Broker, RobustnessLimits, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "host_name" : "ip_address"; });

}  // namespace
}  // namespace itest
