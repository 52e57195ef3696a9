// mqttsn-bench: load and latency benchmark of the gateway, and of the same workload sent as plain
// MQTT straight to the broker (--direct), measured in the same run so the report gives ratios.
//
// Simulated MQTT-SN clients share one UDP socket: each has its own source address in 127/8 (set per
// datagram with IP_PKTINFO; replies are told apart by their destination address), so 100,000 clients
// need neither 100,000 descriptors nor 100,000 ports, and sends and receives are batched
// (sendmmsg/recvmmsg) on one thread. Deliveries are measured at the broker by an MQTT subscriber of
// our own: each payload carries the run, the client, a sequence number and the send time, which
// gives throughput, loss, duplicates and end-to-end latency. The subscribe workload turns it round:
// the clients subscribe, MQTT publishers of our own publish to the broker, and the clients measure
// what the gateway delivers to them (--direct: the same subscribers as MQTT clients on the broker).
// The gateway's and broker's RSS and CPU come from /proc. Everything is bounded in time and count
// and stays on loopback.
#include <arpa/inet.h>
#include <getopt.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "mqttsn/codec.hpp"
#include "mqttsn/overloaded.hpp"
#include "tests/integration/harness.hpp"
#include "tools/bench/histogram.hpp"
#include "tools/bench/mqtt_wire.hpp"
#include "tools/client/mqttsn_client.hpp"

namespace {

using bench::histogram;
using steady = std::chrono::steady_clock;
namespace cli = tools::cli;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch()).count();
}
constexpr std::int64_t ns_per_s = 1'000'000'000;

// ---------------------------------------------------------------- options

struct options {
  std::size_t clients = 10;
  int qos = 1;                  // -1..2
  std::size_t payload = 32;     // bytes, at least the 20-byte header
  double rate = 0;              // messages per second over all clients; 0 = as fast as acknowledged
  std::size_t window = 0;       // QoS -1/0 at max rate: messages not yet delivered, 0 = 4 x clients
  double duration_s = 5;
  double idle_s = 0;            // after connecting, before publishing (RSS of idle clients)
  double drain_s = 3;           // after publishing, for the last deliveries
  double connect_timeout_s = 60;
  double connect_rate = 0;      // CONNECTs per second, 0 = as fast as the window allows
  std::size_t connect_window = 1000;  // CONNECTs awaiting CONNACK at once
  double retry_s = 2;           // retransmission interval toward the gateway
  unsigned retries = 5;
  std::uint16_t keep_alive = 600;
  bool direct = false;
  bool direct_only = false;
  std::string mode = "aggregating";  // of a gateway we start
  std::string gateway_bin;           // default: mqttsn-gateway next to this binary
  std::string gateway;               // HOST:PORT of a running gateway (then we start none)
  pid_t gateway_pid = 0;
  std::vector<std::string> gateway_args;
  std::string broker;                // URI of a running broker (then we start none)
  std::string topic_prefix = "bench";
  std::string source_base = "127.1.0.0";  // first client's source address
  std::string json;
  bool fail_on_loss = false;
  unsigned repeat = 1;
  // --workload subscribe: the clients subscribe, the bench's own MQTT publishers publish.
  bool subscribe = false;
  std::size_t topics = 0;      // subscribe: topics the subscribers are spread over; 0 = one each
  std::size_t publishers = 1;  // subscribe: MQTT publishers on the broker
  bool wildcard = false;       // subscribe: filters P/s/<k>/+, so the gateway REGISTERs each topic
};

const char* usage_text =
    "usage: mqttsn-bench [options]\n"
    "Runs MQTT-SN clients against a gateway and measures what reaches the broker (or, with\n"
    "--workload subscribe, what the gateway delivers to them from publishers on the broker).\n"
    "Without --broker it starts its own mosquitto on a free loopback port; without --gateway it\n"
    "starts mqttsn-gateway (--gateway-bin) against that broker.\n"
    "  -c, --clients N           simulated clients (default 10)\n"
    "  -q, --qos Q               -1, 0, 1 or 2 (default 1); QoS -1 uses predefined topic id 1\n"
    "  -s, --payload BYTES       payload size, at least 20 (default 32)\n"
    "  -r, --rate R              messages/s over all clients; 0 = max (default): QoS 1/2 one\n"
    "                            message in flight per client, QoS -1/0 at most --window undelivered\n"
    "      --window N            QoS -1/0 at max rate: messages sent and not yet delivered\n"
    "                            (default: publish max(2000, 4 x clients), subscribe 4 x clients)\n"
    "  -t, --duration S          seconds of publishing (default 5)\n"
    "      --idle S              seconds to hold the connected clients idle before publishing\n"
    "      --drain S             seconds to wait for the last deliveries (default 3)\n"
    "      --connect-rate R      CONNECTs per second (default 0: a connect storm, limited only by\n"
    "                            --connect-window CONNECTs awaiting CONNACK, default 1000)\n"
    "      --connect-window N\n"
    "      --connect-timeout S   give up on clients not connected by then (default 60)\n"
    "      --retry S             retransmission interval (default 2) and --retries N (default 5)\n"
    "      --keep-alive S        sent in CONNECT (default 600); PINGREQ at half of it\n"
    "      --direct              also run the same workload as MQTT clients straight to the broker\n"
    "      --direct-only         only that baseline\n"
    "      --mode M              transparent or aggregating (default), for a gateway we start\n"
    "      --gateway-bin PATH    the daemon to start (default: mqttsn-gateway next to this tool)\n"
    "      --gateway-arg ARG     one more argument for it (repeatable)\n"
    "      --gateway HOST:PORT   use a running gateway instead; --gateway-pid PID for its RSS/CPU\n"
    "      --broker URI          use a running broker (tcp://127.0.0.1:1883) instead of our own\n"
    "      --topic-prefix P      topics P/<client> (default bench); the subscriber takes P/#\n"
    "      --source-base A       first client's source address in 127/8 (default 127.1.0.0)\n"
    "      --json FILE           also write the results (and per-second series) as JSON\n"
    "      --repeat N            alternate gateway and direct runs N times; report the repetition\n"
    "                            with the median throughput ratio (default 1)\n"
    "      --fail-on-loss        exit 3 if a run lost messages, lost clients or delivered none\n"
    "                            (or, at QoS 2, delivered one twice; subscribe: delivered one to\n"
    "                            the wrong client or with a topic id it was not given)\n"
    "      --workload W          publish (default): the clients publish, measured at the broker;\n"
    "                            subscribe: the clients subscribe to topics P/s/<k> and the bench's\n"
    "                            own MQTT publishers publish to them at --rate (publishes/s over\n"
    "                            all publishers; max: at most --window deliveries outstanding),\n"
    "                            measured at the clients (QoS 0-2; --direct: the same subscribers\n"
    "                            as MQTT clients on the broker)\n"
    "      --subscribe           the same as --workload subscribe\n"
    "      --topics N            subscribe: topics the clients are spread over (default: one per\n"
    "                            client; 1 = fan-out of one topic to every client)\n"
    "      --publishers N        subscribe: MQTT publishers, taking turns (default 1)\n"
    "      --wildcard            subscribe: filters P/s/<k>/+ (publishes to P/s/<k>/v), so the\n"
    "                            gateway REGISTERs the topic to each client before delivering\n"
    "      --help\n";

enum long_opt : int {
  o_window = 1000, o_idle, o_drain, o_connect_rate, o_connect_window, o_connect_timeout, o_retry,
  o_retries, o_keep_alive, o_direct, o_direct_only, o_mode, o_gateway_bin, o_gateway_arg, o_gateway,
  o_gateway_pid, o_broker, o_topic_prefix, o_source_base, o_json, o_fail_on_loss, o_help, o_repeat,
  o_workload, o_topics, o_publishers, o_wildcard, o_subscribe,
};

double seconds_arg(const char* name, const char* arg, double max) {
  char* end = nullptr;
  const double v = std::strtod(arg, &end);
  if (end == arg || *end != '\0' || !(v >= 0) || v > max)
    throw cli::usage_error(std::string("--") + name + ": '" + arg + "' is not a number of seconds in [0, " +
                           std::to_string(static_cast<long>(max)) + "]");
  return v;
}

long number_arg(const char* name, const char* arg, long min, long max) {
  const auto v = cli::parse_number(arg, min, max);
  if (!v)
    throw cli::usage_error(std::string("--") + name + ": '" + arg + "' is not a whole number in [" +
                           std::to_string(min) + ", " + std::to_string(max) + "]");
  return *v;
}

std::string self_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

// Returns false after --help.
bool parse_options(int argc, char** argv, options& o) {
  static const ::option longs[] = {
      {"clients", required_argument, nullptr, 'c'},
      {"qos", required_argument, nullptr, 'q'},
      {"payload", required_argument, nullptr, 's'},
      {"rate", required_argument, nullptr, 'r'},
      {"duration", required_argument, nullptr, 't'},
      {"window", required_argument, nullptr, o_window},
      {"idle", required_argument, nullptr, o_idle},
      {"drain", required_argument, nullptr, o_drain},
      {"connect-rate", required_argument, nullptr, o_connect_rate},
      {"connect-window", required_argument, nullptr, o_connect_window},
      {"connect-timeout", required_argument, nullptr, o_connect_timeout},
      {"retry", required_argument, nullptr, o_retry},
      {"retries", required_argument, nullptr, o_retries},
      {"keep-alive", required_argument, nullptr, o_keep_alive},
      {"direct", no_argument, nullptr, o_direct},
      {"direct-only", no_argument, nullptr, o_direct_only},
      {"mode", required_argument, nullptr, o_mode},
      {"gateway-bin", required_argument, nullptr, o_gateway_bin},
      {"gateway-arg", required_argument, nullptr, o_gateway_arg},
      {"gateway", required_argument, nullptr, o_gateway},
      {"gateway-pid", required_argument, nullptr, o_gateway_pid},
      {"broker", required_argument, nullptr, o_broker},
      {"topic-prefix", required_argument, nullptr, o_topic_prefix},
      {"source-base", required_argument, nullptr, o_source_base},
      {"json", required_argument, nullptr, o_json},
      {"fail-on-loss", no_argument, nullptr, o_fail_on_loss},
      {"repeat", required_argument, nullptr, o_repeat},
      {"workload", required_argument, nullptr, o_workload},
      {"topics", required_argument, nullptr, o_topics},
      {"publishers", required_argument, nullptr, o_publishers},
      {"wildcard", no_argument, nullptr, o_wildcard},
      {"subscribe", no_argument, nullptr, o_subscribe},
      {"help", no_argument, nullptr, o_help},
      {nullptr, 0, nullptr, 0},
  };
  opterr = 0;
  for (;;) {
    const int prev = optind;
    const int c = ::getopt_long(argc, argv, ":c:q:s:r:t:", longs, nullptr);
    if (c == -1) break;
    const char* a = optarg;
    switch (c) {
      case 'c': o.clients = static_cast<std::size_t>(number_arg("clients", a, 1, 1'000'000)); break;
      case 'q': o.qos = static_cast<int>(number_arg("qos", a, -1, 2)); break;
      case 's': o.payload = static_cast<std::size_t>(number_arg("payload", a, 20, 60'000)); break;
      case 'r': o.rate = seconds_arg("rate", a, 10'000'000); break;
      case 't': o.duration_s = seconds_arg("duration", a, 3600); break;
      case o_window: o.window = static_cast<std::size_t>(number_arg("window", a, 1, 10'000'000)); break;
      case o_idle: o.idle_s = seconds_arg("idle", a, 3600); break;
      case o_drain: o.drain_s = seconds_arg("drain", a, 600); break;
      case o_connect_rate: o.connect_rate = seconds_arg("connect-rate", a, 10'000'000); break;
      case o_connect_window:
        o.connect_window = static_cast<std::size_t>(number_arg("connect-window", a, 1, 1'000'000));
        break;
      case o_connect_timeout: o.connect_timeout_s = seconds_arg("connect-timeout", a, 3600); break;
      case o_retry: o.retry_s = std::max(0.01, seconds_arg("retry", a, 600)); break;
      case o_retries: o.retries = static_cast<unsigned>(number_arg("retries", a, 0, 100)); break;
      case o_keep_alive: o.keep_alive = static_cast<std::uint16_t>(number_arg("keep-alive", a, 10, 65535)); break;
      case o_direct: o.direct = true; break;
      case o_direct_only: o.direct = o.direct_only = true; break;
      case o_mode:
        if (std::string_view(a) != "transparent" && std::string_view(a) != "aggregating")
          throw cli::usage_error(std::string("--mode: '") + a + "' is not transparent or aggregating");
        o.mode = a;
        break;
      case o_gateway_bin: o.gateway_bin = a; break;
      case o_gateway_arg: o.gateway_args.emplace_back(a); break;
      case o_gateway: o.gateway = a; break;
      case o_gateway_pid: o.gateway_pid = static_cast<pid_t>(number_arg("gateway-pid", a, 1, 1 << 30)); break;
      case o_broker: o.broker = a; break;
      case o_topic_prefix:
        if (!*a) throw cli::usage_error("--topic-prefix: must not be empty");
        o.topic_prefix = a;
        break;
      case o_source_base: o.source_base = a; break;
      case o_json: o.json = a; break;
      case o_fail_on_loss: o.fail_on_loss = true; break;
      case o_repeat: o.repeat = static_cast<unsigned>(number_arg("repeat", a, 1, 100)); break;
      case o_workload:
        if (std::string_view(a) != "publish" && std::string_view(a) != "subscribe")
          throw cli::usage_error(std::string("--workload: '") + a + "' is not publish or subscribe");
        o.subscribe = std::string_view(a) == "subscribe";
        break;
      case o_topics: o.topics = static_cast<std::size_t>(number_arg("topics", a, 1, 1'000'000)); break;
      case o_publishers: o.publishers = static_cast<std::size_t>(number_arg("publishers", a, 1, 10'000)); break;
      case o_wildcard: o.wildcard = true; break;
      case o_subscribe: o.subscribe = true; break;
      case o_help: std::cout << usage_text; return false;
      case ':': throw cli::usage_error(cli::option_name(argv, prev, optopt) + " needs a value");
      default: throw cli::usage_error("unknown option " + cli::option_name(argv, prev, optopt));
    }
  }
  if (optind < argc) throw cli::usage_error(std::string("unexpected argument '") + argv[optind] + "'");
  // Publish workload: 2,000 in flight lets the broker, not the window, limit both the gateway and
  // the direct run at max rate (with 4 x clients, 200 for -c 50, neither process was busy and the
  // figure was the window over the latency). Subscribe: 4 x clients, as each client's own UDP
  // socket takes the deliveries.
  if (o.window == 0) o.window = std::max<std::size_t>(o.subscribe ? 64 : 2000, 4 * o.clients);
  if (o.subscribe) {
    if (o.qos < 0) throw cli::usage_error("--workload subscribe: --qos must be 0, 1 or 2 (QoS -1 is publish only)");
    if (o.topics == 0) o.topics = o.clients;
    if (o.topics > o.clients)
      throw cli::usage_error("--topics: " + std::to_string(o.topics) + " is more than the " + std::to_string(o.clients) + " clients");
  } else if (o.topics != 0 || o.publishers != 1 || o.wildcard) {
    throw cli::usage_error("--topics, --publishers and --wildcard go with --workload subscribe");
  }
  if (o.gateway_bin.empty()) o.gateway_bin = self_dir() + "/mqttsn-gateway";
  return true;
}

// ---------------------------------------------------------------- /proc

struct proc_sample {
  std::uint64_t rss_kib = 0;
  std::uint64_t cpu_ticks = 0;  // utime + stime
  bool ok = false;
};

proc_sample sample_proc(pid_t pid) {
  proc_sample s;
  if (pid <= 0) return s;
  const std::string base = "/proc/" + std::to_string(pid);
  std::ifstream status(base + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) s.rss_kib = std::strtoull(line.c_str() + 6, nullptr, 10);
  }
  std::ifstream stat(base + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (close == std::string::npos) return s;
  std::istringstream fields(text.substr(close + 2));
  std::string f;
  std::uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {  // field 3 is the state; 14 utime, 15 stime
    if (i == 14) utime = std::strtoull(f.c_str(), nullptr, 10);
    if (i == 15) stime = std::strtoull(f.c_str(), nullptr, 10);
  }
  s.cpu_ticks = utime + stime;
  s.ok = true;
  return s;
}

double cpu_percent(const proc_sample& a, const proc_sample& b, std::int64_t elapsed_ns) {
  if (!a.ok || !b.ok || elapsed_ns <= 0) return 0;
  const double ticks = static_cast<double>(b.cpu_ticks - a.cpu_ticks);
  return 100.0 * ticks / static_cast<double>(::sysconf(_SC_CLK_TCK)) / (static_cast<double>(elapsed_ns) / ns_per_s);
}

// Kernel-wide UDP receive-buffer overflows (a datagram dropped because a socket was full).
std::uint64_t udp_rcvbuf_errors() {
  std::ifstream snmp("/proc/net/snmp");
  std::string header, values;
  while (std::getline(snmp, header) && std::getline(snmp, values)) {
    if (header.rfind("Udp:", 0) != 0) continue;
    std::istringstream h(header), v(values);
    std::string name, value;
    while (h >> name && v >> value) {
      if (name == "RcvbufErrors") return std::strtoull(value.c_str(), nullptr, 10);
    }
  }
  return 0;
}

// ---------------------------------------------------------------- payload and the collector

constexpr std::size_t header_size = 20;  // run u32, client u32, seq u32, send time ns u64

void write_header(std::uint8_t* p, std::uint32_t run, std::uint32_t client, std::uint32_t seq, std::int64_t t) {
  std::memcpy(p, &run, 4);
  std::memcpy(p + 4, &client, 4);
  std::memcpy(p + 8, &seq, 4);
  std::memcpy(p + 12, &t, 8);
}

// What the receivers saw during one run: the measuring subscriber (publish workload, on its own
// thread; keyed by the sending client) or the subscribing clients (subscribe workload, on the main
// thread; keyed by the receiving client). Read by the main thread.
class collector {
 public:
  static constexpr std::size_t max_bins = 3700;

  struct bin {
    std::uint64_t delivered = 0;
    histogram latency;
  };

  collector(std::uint32_t run, std::size_t clients, std::int64_t start_ns)
      : run_(run), start_ns_(start_ns), seen_(clients) {}

  // Publish workload: the payload names its sender, the key.
  void on_payload(const std::uint8_t* p, std::size_t n, std::int64_t now) {
    const auto h = parse(p, n);
    std::lock_guard lock(mutex_);
    if (!h || h->source >= seen_.size()) {
      ++foreign_;
      return;
    }
    record(h->source, h->seq, h->sent, now);
  }
  // Subscribe workload: `receiver` got a message that should come from topic `topic` (the
  // payload's source), with that topic's sequence number.
  void on_delivery(std::uint32_t receiver, std::uint32_t topic, const std::uint8_t* p, std::size_t n, std::int64_t now) {
    const auto h = parse(p, n);
    std::lock_guard lock(mutex_);
    if (!h || h->source != topic || receiver >= seen_.size()) {
      ++foreign_;
      return;
    }
    record(receiver, h->seq, h->sent, now);
  }

 private:
  struct header {
    std::uint32_t source = 0, seq = 0;
    std::int64_t sent = 0;
  };
  std::optional<header> parse(const std::uint8_t* p, std::size_t n) const {
    if (n < header_size) return std::nullopt;
    std::uint32_t run = 0;
    header h;
    std::memcpy(&run, p, 4);
    std::memcpy(&h.source, p + 4, 4);
    std::memcpy(&h.seq, p + 8, 4);
    std::memcpy(&h.sent, p + 12, 8);
    if (run != run_) return std::nullopt;
    return h;
  }
  // Under the lock.
  void record(std::uint32_t key, std::uint32_t seq, std::int64_t sent, std::int64_t now) {
    auto& s = seen_[key];
    if (seq >= s.size()) s.resize(std::max<std::size_t>(seq + 1, s.size() * 2));
    if (s[seq]) {
      ++duplicates_;
      return;
    }
    s[seq] = true;
    const auto lat = static_cast<std::uint64_t>(std::max<std::int64_t>(0, now - sent));
    latency_.record(lat);
    const auto second = static_cast<std::size_t>(std::max<std::int64_t>(0, now - start_ns_) / ns_per_s);
    if (second < max_bins) {
      if (bins_.size() <= second) bins_.resize(second + 1);
      ++bins_[second].delivered;
      bins_[second].latency.record(lat);
    }
    delivered_.fetch_add(1, std::memory_order_relaxed);
  }

 public:
  std::uint64_t delivered() const noexcept { return delivered_.load(std::memory_order_relaxed); }
  // "client 3: seq 17-18" lines for the first `max` gaps (what was sent and never seen).
  std::string gaps(const std::vector<std::uint32_t>& sent_per_client, std::size_t max) const {
    std::lock_guard lock(mutex_);
    std::string out;
    std::size_t n = 0;
    for (std::size_t c = 0; c < seen_.size() && c < sent_per_client.size(); ++c) {
      for (std::uint32_t q = 0; q < sent_per_client[c] && n < max; ++q) {
        if (q < seen_[c].size() && seen_[c][q]) continue;
        std::uint32_t e = q;
        while (e + 1 < sent_per_client[c] && !(e + 1 < seen_[c].size() && seen_[c][e + 1])) ++e;
        out += "  client " + std::to_string(c) + ": seq " + std::to_string(q) + (e > q ? "-" + std::to_string(e) : "") + "\n";
        ++n;
        q = e;
      }
    }
    return out;
  }
  // Copies under the lock: the subscriber may still be delivering late duplicates.
  struct snapshot {
    std::uint64_t delivered = 0, duplicates = 0, foreign = 0;
    histogram latency;
    std::vector<bin> bins;
  };
  std::unique_ptr<snapshot> take() const {
    auto s = std::make_unique<snapshot>();
    std::lock_guard lock(mutex_);
    s->delivered = delivered_.load();
    s->duplicates = duplicates_;
    s->foreign = foreign_;
    s->latency = latency_;
    s->bins = bins_;
    return s;
  }

 private:
  const std::uint32_t run_;
  const std::int64_t start_ns_;
  mutable std::mutex mutex_;
  std::vector<std::vector<bool>> seen_;
  histogram latency_;
  std::vector<bin> bins_;
  std::uint64_t duplicates_ = 0;
  std::uint64_t foreign_ = 0;
  std::atomic<std::uint64_t> delivered_{0};
};

// ---------------------------------------------------------------- plain MQTT over TCP

namespace wire = bench::mqtt_wire;

// "tcp://127.0.0.1:1883" -> a connected TCP socket (blocking, TCP_NODELAY).
int tcp_connect(const std::string& uri) {
  std::string rest = uri;
  if (rest.rfind("tcp://", 0) == 0) rest = rest.substr(6);
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("broker '" + uri + "': not tcp://HOST:PORT");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(std::stoi(rest.substr(colon + 1))));
  const std::string host = rest.substr(0, colon) == "localhost" ? "127.0.0.1" : rest.substr(0, colon);
  if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1)
    throw std::runtime_error("broker '" + uri + "': the host must be an IPv4 literal");
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    const int e = errno;
    ::close(fd);
    throw std::runtime_error("connect to " + uri + ": " + std::strerror(e));
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// The broker-side MQTT subscriber that measures every run (P/# at the run's QoS), on a thread and
// a connection of its own, so nothing it measures shares them.
class measuring_subscriber {
 public:
  measuring_subscriber(const std::string& uri, const std::string& filter, int qos) : fd_(tcp_connect(uri)) {
    timeval tv{0, 100'000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    wire::bytes out;
    wire::append_connect(out, "mqttsn-bench-sub-" + std::to_string(::getpid()), 60);
    wire::append_subscribe(out, 1, filter, qos);
    if (!itest::send_all(fd_, out)) throw std::runtime_error("measuring subscriber: cannot send to " + uri);
    // CONNACK, then SUBACK, within 10 s.
    const auto deadline = now_ns() + 10 * ns_per_s;
    bool subscribed = false;
    while (!subscribed && now_ns() < deadline) {
      const auto n = ::recv(fd_, in_.space(4096), 4096, 0);
      if (n == 0) break;
      if (n < 0) continue;
      in_.commit(static_cast<std::size_t>(n));
      wire::packet p;
      bool bad = false;
      while (in_.next(p, bad)) {
        if (p.type == wire::connack && (p.body.size() < 2 || p.body[1] != 0))
          throw std::runtime_error("measuring subscriber: the broker refused the connection");
        if (p.type == wire::suback) subscribed = p.body.size() >= 3 && p.body[2] != 0x80;
      }
    }
    if (!subscribed) {
      ::close(fd_);
      throw std::runtime_error("measuring subscriber: no CONNACK/SUBACK from " + uri);
    }
    thread_ = std::thread([this] { loop(); });
  }
  ~measuring_subscriber() {
    stop_ = true;
    thread_.join();
    wire::bytes out;
    wire::append_simple(out, wire::disconnect);
    itest::send_all(fd_, out);
    ::close(fd_);
  }
  measuring_subscriber(const measuring_subscriber&) = delete;
  measuring_subscriber& operator=(const measuring_subscriber&) = delete;

  // Collectors outlive the subscriber (kept by run()), so a late message never sees a dead one.
  void measure(collector* c) { current_.store(c, std::memory_order_release); }

 private:
  void loop() {
    wire::bytes out;
    auto last_ping = now_ns();
    while (!stop_) {
      const auto n = ::recv(fd_, in_.space(1 << 16), 1 << 16, 0);
      const auto t = now_ns();
      if (n == 0) {
        std::cerr << "mqttsn-bench: the broker closed the measuring subscriber's connection\n";
        return;
      }
      if (n > 0) {
        in_.commit(static_cast<std::size_t>(n));
        wire::packet p;
        bool bad = false;
        auto* c = current_.load(std::memory_order_acquire);
        while (in_.next(p, bad)) {
          if (p.type == wire::publish) {
            const auto v = wire::parse_publish(p);
            if (!v) continue;
            if (c) c->on_payload(v->payload.data(), v->payload.size(), t);
            if (v->qos == 1) wire::append_ack(out, wire::puback, v->mid);
            if (v->qos == 2) wire::append_ack(out, wire::pubrec, v->mid);
          } else if (p.type == wire::pubrel) {
            wire::append_ack(out, wire::pubcomp, p.mid());
          }
        }
        if (bad) {
          std::cerr << "mqttsn-bench: malformed MQTT from the broker\n";
          return;
        }
      }
      if (t - last_ping > 30 * ns_per_s) {
        wire::append_simple(out, wire::pingreq);
        last_ping = t;
      }
      if (!out.empty()) {
        itest::send_all(fd_, out);
        out.clear();
      }
    }
  }

  int fd_;
  wire::reader in_;
  std::atomic<collector*> current_{nullptr};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// ---------------------------------------------------------------- results

struct series_point {
  double t = 0;
  std::uint64_t delivered = 0;
  double p50_us = 0, p99_us = 0;
  std::uint64_t gateway_rss_kib = 0;
  double gateway_cpu = 0, broker_cpu = 0;
};

struct run_result {
  std::string name;  // "gateway" or "direct"
  std::size_t clients = 0, connected = 0, connect_failed = 0;
  double connect_s = 0;
  histogram connect_latency;
  // Publish workload: sent = published, one delivery each. Subscribe workload: published by our
  // MQTT publishers, sent = the deliveries they should cause (the subscribers of each topic).
  std::uint64_t published = 0;
  std::uint64_t sent = 0, retransmissions = 0, rejected = 0, gave_up = 0, send_errors = 0, connect_congestion = 0;
  std::uint64_t delivered = 0, duplicates = 0, foreign = 0, lost_clients = 0;
  double publish_s = 0;
  histogram latency;
  std::uint64_t rss_start_kib = 0, rss_connected_kib = 0, rss_end_kib = 0, rss_peak_kib = 0;
  double gateway_cpu = 0, broker_cpu = 0, bench_cpu = 0;
  std::uint64_t udp_rcvbuf_errors = 0;
  std::vector<series_point> series;

  double delivered_per_s() const { return publish_s > 0 ? static_cast<double>(delivered) / publish_s : 0; }
  double connect_rate() const { return connect_s > 0 ? static_cast<double>(connected) / connect_s : 0; }
  std::uint64_t loss() const { return sent > delivered ? sent - delivered : 0; }
  double rss_per_client_b() const {
    if (connected == 0 || rss_connected_kib == 0) return 0;
    return (static_cast<double>(rss_connected_kib) - static_cast<double>(rss_start_kib)) * 1024.0 /
           static_cast<double>(connected);
  }
};

// Samples the gateway (if any), the broker and ourselves once per second for the series.
class sampler {
 public:
  sampler(pid_t gateway, pid_t broker) : gateway_(gateway), broker_(broker) {}
  void begin(std::int64_t t) {
    start_ = last_ = t;
    g0_ = gl_ = sample_proc(gateway_);
    b0_ = bl_ = sample_proc(broker_);
    s0_ = sample_proc(::getpid());
    peak_ = g0_.rss_kib;
  }
  // One point per elapsed second; returns true when it took one.
  bool maybe(std::int64_t t, series_point& p) {
    if (t - last_ < ns_per_s) return false;
    const auto g = sample_proc(gateway_);
    const auto b = sample_proc(broker_);
    p.t = static_cast<double>(t - start_) / ns_per_s;
    p.gateway_rss_kib = g.rss_kib;
    p.gateway_cpu = cpu_percent(gl_, g, t - last_);
    p.broker_cpu = cpu_percent(bl_, b, t - last_);
    peak_ = std::max(peak_, g.rss_kib);
    gl_ = g;
    bl_ = b;
    last_ = t;
    return true;
  }
  void end(std::int64_t t, run_result& r) {
    const auto g = sample_proc(gateway_);
    r.gateway_cpu = cpu_percent(g0_, g, t - start_);
    r.broker_cpu = cpu_percent(b0_, sample_proc(broker_), t - start_);
    r.bench_cpu = cpu_percent(s0_, sample_proc(::getpid()), t - start_);
    r.rss_end_kib = g.rss_kib;
    r.rss_peak_kib = std::max(peak_, g.rss_kib);
  }
  std::uint64_t gateway_rss() const { return sample_proc(gateway_).rss_kib; }

 private:
  pid_t gateway_, broker_;
  std::int64_t start_ = 0, last_ = 0;
  proc_sample g0_, gl_, b0_, bl_, s0_;
  std::uint64_t peak_ = 0;
};

// Publishing pace shared by every load: how many messages may go now.
struct pace {
  double rate = 0;  // 0: as fast as the window allows
  std::int64_t start = 0;
  std::uint64_t allowed(std::int64_t t, std::uint64_t sent) const {
    if (rate <= 0) return UINT64_MAX;
    const auto due = static_cast<std::uint64_t>(rate * static_cast<double>(t - start) / ns_per_s) + 1;
    return due > sent ? due - sent : 0;
  }
};

// Publish workload: whose turn it is to publish. QoS 1/2: a client keeps its turn until its
// message is acknowledged (done()), one message in flight per client; QoS -1/0: it goes back in
// line at once.
class turns {
 public:
  explicit turns(int qos) : acked_(qos >= 1) {}
  void add(std::uint32_t i) { free_.push_back(i); }
  // Whether a client may publish now; clients no longer `ready` lose their turn.
  template <class Ready>
  bool any(Ready&& ready) {
    while (!free_.empty() && !ready(free_.front())) free_.pop_front();
    return !free_.empty();
  }
  std::uint32_t take() {
    const auto i = free_.front();
    free_.pop_front();
    if (acked_) {
      ++inflight_;
    } else {
      free_.push_back(i);
    }
    return i;
  }
  void done(std::uint32_t i) {
    --inflight_;
    free_.push_back(i);
  }
  void lost() { --inflight_; }  // a client gone with a message in flight
  std::size_t inflight() const { return inflight_; }

 private:
  const bool acked_;
  std::deque<std::uint32_t> free_;
  std::size_t inflight_ = 0;
};

// Waits until `until` (50 ms at most) for input on any of the loads' descriptors, then lets each
// handle its input, its timers and its queued output. A load has int fd(), void flush_out() and
// void service(run_result&), none of which blocks.
// The wait is to the nanosecond (ppoll; the kernel's default timer slack of 50 us applies): poll()'s
// millisecond timeout sent a --rate in bursts of a millisecond's worth of messages (58 at 58,000/s),
// and the last of a burst waited for the ones before it at every hop, which the latency figures
// then showed as much as the hops themselves.
template <class... Loads>
void wait_any(std::int64_t until, run_result& r, Loads&... loads) {
  (loads.flush_out(), ...);
  pollfd fds[] = {pollfd{loads.fd(), POLLIN, 0}...};
  const auto wait_ns = std::clamp<std::int64_t>(until - now_ns(), 0, 50'000'000);
  const timespec ts{static_cast<time_t>(wait_ns / ns_per_s), static_cast<long>(wait_ns % ns_per_s)};
  ::ppoll(fds, sizeof...(Loads), &ts, nullptr);
  (loads.service(r), ...);
}

// The publishing loop of every workload and load: sends what the pace (--rate) or the window
// allows for --duration, samples /proc once a second, then drains until everything sent is
// delivered and acknowledged (or --drain ends). The source has bool can_send(),
// std::uint64_t send(t) (publishes one message; returns the deliveries it should cause) and
// std::size_t inflight() (messages awaiting their publisher's acknowledgement). `windowed`: at most
// --window deliveries outstanding (max rate without a per-message acknowledgement to wait for).
// wait(until) serves every load of the run.
template <class Source, class Wait>
void paced_publishing(const options& o, bool windowed, run_result& r, const collector& col, sampler& smp, Source& src,
                      Wait&& wait) {
  const auto start = now_ns();
  const auto end = start + static_cast<std::int64_t>(o.duration_s * ns_per_s);
  const pace p{o.rate, start};
  const auto outstanding = [&] { return r.sent - std::min(r.sent, col.delivered()); };
  while (now_ns() < end) {
    const auto t = now_ns();
    auto allowed = p.allowed(t, r.published);
    while (allowed > 0 && (!windowed || outstanding() < o.window) && src.can_send()) {
      r.sent += src.send(t);
      ++r.published;
      --allowed;
    }
    series_point sp;
    if (smp.maybe(t, sp)) r.series.push_back(sp);
    // Wake for the next due message, or at once when the pace is not the limit.
    std::int64_t wake = t + 1'000'000;
    if (o.rate > 0)
      wake = std::min(wake, start + static_cast<std::int64_t>(static_cast<double>(r.published) / o.rate * ns_per_s));
    wait(wake);
  }
  r.publish_s = static_cast<double>(std::min(now_ns(), end) - start) / ns_per_s;
  // Drain: acknowledgements and deliveries still on their way.
  const auto drain_end = now_ns() + static_cast<std::int64_t>(o.drain_s * ns_per_s);
  while (now_ns() < drain_end && (src.inflight() > 0 || col.delivered() < r.sent)) {
    wait(now_ns() + 5'000'000);
    series_point sp;
    if (smp.maybe(now_ns(), sp)) r.series.push_back(sp);
  }
  smp.end(now_ns(), r);
}

// Subscribe workload: client i subscribes to topic i % topics; publishes to topic k go to
// P/s/<k> (or P/s/<k>/v under the filter P/s/<k>/+ with --wildcard).
std::uint32_t topic_of(const options& o, std::uint32_t client) { return static_cast<std::uint32_t>(client % o.topics); }
std::string publish_topic(const options& o, std::uint32_t k) {
  return o.topic_prefix + "/s/" + std::to_string(k) + (o.wildcard ? "/v" : "");
}
std::string subscribe_filter(const options& o, std::uint32_t k) {
  return o.topic_prefix + "/s/" + std::to_string(k) + (o.wildcard ? "/+" : "");
}
// Deliveries a publish to each topic should cause: its subscribed clients.
template <class Subscribers>
std::vector<std::uint32_t> subscribers_per_topic(const options& o, const Subscribers& s) {
  std::vector<std::uint32_t> v(o.topics);
  for (std::uint32_t i = 0; i < o.clients; ++i) {
    if (s.ready(i)) ++v[topic_of(o, i)];
  }
  return v;
}
// Messages each subscribed client should have received, from what was published per topic.
template <class Subscribers>
std::vector<std::uint32_t> expected_per_subscriber(const options& o, const Subscribers& s,
                                                   const std::vector<std::uint32_t>& published_per_topic) {
  std::vector<std::uint32_t> v(o.clients);
  for (std::uint32_t i = 0; i < o.clients; ++i) {
    if (s.ready(i)) v[i] = published_per_topic[topic_of(o, i)];
  }
  return v;
}

// ---------------------------------------------------------------- MQTT-SN clients over UDP

class sn_load {
 public:
  sn_load(const options& o, const std::string& gw_host, std::uint16_t gw_port, std::uint32_t run)
      : o_(o), run_(run), clients_(o.clients) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
    // Our clients' addresses are all in 127/8: bound to every address, but only on loopback.
    if (::setsockopt(fd_, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3) != 0)
      std::cerr << "mqttsn-bench: SO_BINDTODEVICE lo: " << std::strerror(errno) << " (continuing)\n";
    const int buf = 8 << 20;
    if (::setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf) != 0)
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    if (::setsockopt(fd_, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof buf) != 0)
      ::setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    sockaddr_in any{};
    any.sin_family = AF_INET;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0)
      throw std::runtime_error(std::string("bind: ") + std::strerror(errno));
    gw_.sin_family = AF_INET;
    gw_.sin_port = htons(gw_port);
    if (::inet_pton(AF_INET, gw_host.c_str(), &gw_.sin_addr) != 1)
      throw std::runtime_error("gateway address '" + gw_host + "' is not an IPv4 literal");
    in_addr base{};
    if (::inet_pton(AF_INET, o.source_base.c_str(), &base) != 1 || (ntohl(base.s_addr) >> 24) != 127)
      throw cli::usage_error("--source-base: '" + o.source_base + "' is not an IPv4 address in 127/8");
    base_ = ntohl(base.s_addr);
    if (std::uint64_t{base_} + o.clients >= 0x80000000ULL)
      throw cli::usage_error("--source-base: too high for " + std::to_string(o.clients) + " clients");
    out_.resize(batch);
    in_.resize(batch);
    for (auto& s : out_) s.data.resize(o.payload + 64);
    for (auto& s : in_) s.data.resize(2048);
  }
  ~sn_load() {
    if (fd_ >= 0) ::close(fd_);
  }
  sn_load(const sn_load&) = delete;
  sn_load& operator=(const sn_load&) = delete;

  // Connects every client (CONNECT, then REGISTER of P/<client>); fills the connect figures.
  void connect_all(run_result& r, sampler& smp) {
    const auto start = now_ns();
    smp.begin(start);
    r.rss_start_kib = smp.gateway_rss();
    if (o_.qos < 0) {  // QoS -1 needs no connection: predefined topic id 1
      for (auto& c : clients_) {
        c.st = state::ready;
        c.topic = 1;
      }
      ready_ = clients_.size();
      r.connected = ready_;
      return;
    }
    const auto deadline = start + static_cast<std::int64_t>(o_.connect_timeout_s * ns_per_s);
    pace p{o_.connect_rate, start};
    std::size_t next = 0;
    std::int64_t last_connack = start;
    while (ready_ + failed_ < clients_.size() && now_ns() < deadline) {
      const auto t = now_ns();
      auto allowed = p.allowed(t, next);
      while (next < clients_.size() && connecting_ < o_.connect_window && allowed-- > 0) {
        auto& c = clients_[next];
        c.st = state::connecting;
        c.t0 = t;
        ++connecting_;
        send_connect(static_cast<std::uint32_t>(next++), false, t);
      }
      const auto before = connacks_ + ready_;  // subscribe workload: ready at SUBACK
      pump(t + 1'000'000, r);
      if (connacks_ + ready_ != before) last_connack = now_ns();
    }
    for (auto& c : clients_) {
      if (c.st != state::ready && c.st != state::failed) {
        c.st = state::failed;
        ++failed_;
      }
    }
    flush();
    r.connected = ready_;
    r.connect_failed = failed_;
    r.connect_s = static_cast<double>(last_connack - start) / ns_per_s;
    r.connect_latency = connect_latency_;
    r.connect_congestion = congested_;
  }

  // Holds the clients for `seconds` (keep-alive only) and notes the RSS.
  void idle(double seconds, run_result& r) {
    const auto end = now_ns() + static_cast<std::int64_t>(seconds * ns_per_s);
    while (now_ns() < end) pump(std::min(end, now_ns() + 10'000'000), r);
  }

  void publish(run_result& r, collector& col, sampler& smp) {
    for (std::uint32_t i = 0; i < clients_.size(); ++i) {
      if (clients_[i].st == state::ready) turns_.add(i);
    }
    paced_publishing(o_, o_.qos < 1 && o_.rate <= 0, r, col, smp, *this, [&](std::int64_t until) { pump(until, r); });
    counters_into(r);
  }

  // The source of paced_publishing() in the publish workload.
  bool can_send() {
    return turns_.any([&](std::uint32_t i) { return clients_[i].st == state::ready; });
  }
  std::uint64_t send(std::int64_t t) {
    const auto i = turns_.take();
    auto& c = clients_[i];
    c.seq_sent = c.seq++;
    c.t_sent = t;
    c.tries = 0;
    if (o_.qos >= 1) c.phase = 1;
    send_publish(i, false, t);
    return 1;
  }
  std::size_t inflight() const { return turns_.inflight(); }

  // Subscribe workload: deliveries go to `c` from now on.
  void measure(collector* c) { col_ = c; }
  bool ready(std::uint32_t i) const { return clients_[i].st == state::ready; }

  void counters_into(run_result& r) const {
    r.retransmissions = retransmissions_;
    r.rejected = rejected_;
    r.gave_up = gave_up_;
    r.send_errors = send_errors_;
    r.lost_clients = lost_;
  }

  // For wait_any().
  int fd() const { return fd_; }
  void flush_out() { flush(); }
  void service(run_result& r) {
    receive(r);
    now_cached_ = now_ns();
    expire(now_cached_);
    keep_alive(now_cached_);
    flush();
  }

  std::vector<std::uint32_t> sent_per_client() const {
    std::vector<std::uint32_t> v;
    for (const auto& c : clients_) v.push_back(c.seq);
    return v;
  }

  void disconnect_all(run_result& r) {
    if (o_.qos < 0) return;
    for (std::uint32_t i = 0; i < clients_.size(); ++i) {
      if (clients_[i].st != state::ready) continue;
      queue(i, mqttsn::encode(mqttsn::disconnect{}));
      clients_[i].st = state::failed;
    }
    flush();
    pump(now_ns() + 200'000'000, r);
  }

 private:
  enum class state : std::uint8_t { idle, connecting, registering, subscribing, ready, failed };
  enum class kind : std::uint8_t { connect, register_, subscribe, publish, pubrel };
  struct client {
    state st = state::idle;
    std::uint8_t phase = 0;  // 0 free, 1 awaiting PUBACK/PUBREC, 2 awaiting PUBCOMP
    std::uint8_t tries = 0;
    bool awaiting_pubrel = false;  // subscribe workload: a QoS 2 message (mid) delivered, PUBREL due
    mqttsn::topic_id topic = 0;
    mqttsn::msg_id mid = 0;
    std::uint32_t seq = 0, seq_sent = 0;
    std::int64_t t0 = 0, t_sent = 0, last_tx = 0;
  };
  struct timer {
    std::int64_t due;
    std::uint32_t client;
    kind k;
    mqttsn::msg_id mid;
  };
  struct slot {
    std::vector<std::uint8_t> data;
    std::size_t size = 0;
    std::uint32_t client = 0;
    sockaddr_in from{};
    alignas(cmsghdr) std::uint8_t control[CMSG_SPACE(sizeof(in_pktinfo))]{};
  };
  static constexpr std::size_t batch = 256;

  std::string client_id(std::uint32_t i) const {
    return "b" + std::to_string(run_) + "-" + std::to_string(i);
  }
  std::string topic_name(std::uint32_t i) const { return o_.topic_prefix + "/" + std::to_string(i); }

  void send_connect(std::uint32_t i, bool retry, std::int64_t t) {
    queue(i, mqttsn::encode(mqttsn::connect{false, true, o_.keep_alive, client_id(i)}));
    arm(i, kind::connect, 0, t);
    if (retry) ++retransmissions_;
  }
  void send_register(std::uint32_t i, bool retry, std::int64_t t) {
    queue(i, mqttsn::encode(mqttsn::register_{0, 1, topic_name(i)}));
    arm(i, kind::register_, 1, t);
    if (retry) ++retransmissions_;
  }
  // Subscribe workload: the filter of its topic at the run's QoS (message id 1).
  void send_subscribe(std::uint32_t i, bool retry, std::int64_t t) {
    mqttsn::subscribe s;
    s.dup = retry;
    s.q = static_cast<mqttsn::qos>(static_cast<std::int8_t>(o_.qos));
    s.mid = 1;
    s.topic_name = subscribe_filter(o_, topic_of(o_, i));
    queue(i, mqttsn::encode(s));
    arm(i, kind::subscribe, 1, t);
    if (retry) ++retransmissions_;
  }
  void send_publish(std::uint32_t i, bool dup, std::int64_t t) {
    auto& c = clients_[i];
    mqttsn::publish p;
    p.dup = dup;
    p.q = static_cast<mqttsn::qos>(static_cast<std::int8_t>(o_.qos));
    p.id_type = o_.qos < 0 ? mqttsn::topic_id_type::predefined : mqttsn::topic_id_type::normal;
    p.id = c.topic;
    if (o_.qos >= 1) {
      if (!dup) c.mid = static_cast<mqttsn::msg_id>(c.mid % 0xFFFF + 1);
      p.mid = c.mid;
    }
    p.data.assign(o_.payload, 0x5A);
    write_header(p.data.data(), run_, i, c.seq_sent, c.t_sent);
    queue(i, mqttsn::encode(p));
    if (o_.qos >= 1) arm(i, kind::publish, c.mid, t);
  }
  void arm(std::uint32_t i, kind k, mqttsn::msg_id mid, std::int64_t t) {
    timers_.push_back(timer{t + static_cast<std::int64_t>(o_.retry_s * ns_per_s), i, k, mid});
  }

  void queue(std::uint32_t i, const mqttsn::bytes& frame) {
    if (count_ == batch) flush();
    auto& s = out_[count_++];
    if (s.data.size() < frame.size()) s.data.resize(frame.size());
    std::memcpy(s.data.data(), frame.data(), frame.size());
    s.size = frame.size();
    s.client = i;
    clients_[i].last_tx = now_cached_;
  }

  void flush() {
    if (count_ == 0) return;
    mmsghdr msgs[batch];
    iovec iov[batch];
    for (std::size_t k = 0; k < count_; ++k) {
      auto& s = out_[k];
      iov[k] = iovec{s.data.data(), s.size};
      std::memset(s.control, 0, sizeof s.control);
      msgs[k] = mmsghdr{};
      msgs[k].msg_hdr.msg_name = &gw_;
      msgs[k].msg_hdr.msg_namelen = sizeof gw_;
      msgs[k].msg_hdr.msg_iov = &iov[k];
      msgs[k].msg_hdr.msg_iovlen = 1;
      msgs[k].msg_hdr.msg_control = s.control;
      msgs[k].msg_hdr.msg_controllen = sizeof s.control;
      auto* cm = CMSG_FIRSTHDR(&msgs[k].msg_hdr);
      cm->cmsg_level = IPPROTO_IP;
      cm->cmsg_type = IP_PKTINFO;
      cm->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
      in_pktinfo info{};
      info.ipi_spec_dst.s_addr = htonl(base_ + s.client);
      std::memcpy(CMSG_DATA(cm), &info, sizeof info);
    }
    std::size_t done = 0;
    int stalls = 0;
    while (done < count_) {
      const int n = ::sendmmsg(fd_, msgs + done, static_cast<unsigned>(count_ - done), 0);
      if (n > 0) {
        done += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) && stalls++ < 100) {
        pollfd pfd{fd_, POLLOUT, 0};
        ::poll(&pfd, 1, 10);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      ++send_errors_;  // skip the datagram the kernel refused (retransmission covers QoS 1/2)
      ++done;
    }
    count_ = 0;
  }

  // Sends what is queued, waits for datagrams until `until` (at most), handles them and the timers.
  void pump(std::int64_t until, run_result& r) { wait_any(until, r, *this); }

  void receive(run_result& r) {
    mmsghdr msgs[batch];
    iovec iov[batch];
    for (int rounds = 0; rounds < 16; ++rounds) {
      for (std::size_t k = 0; k < batch; ++k) {
        auto& s = in_[k];
        iov[k] = iovec{s.data.data(), s.data.size()};
        msgs[k] = mmsghdr{};
        msgs[k].msg_hdr.msg_name = &s.from;
        msgs[k].msg_hdr.msg_namelen = sizeof s.from;
        msgs[k].msg_hdr.msg_iov = &iov[k];
        msgs[k].msg_hdr.msg_iovlen = 1;
        msgs[k].msg_hdr.msg_control = s.control;
        msgs[k].msg_hdr.msg_controllen = sizeof s.control;
      }
      const int n = ::recvmmsg(fd_, msgs, batch, MSG_DONTWAIT, nullptr);
      if (n <= 0) return;
      now_cached_ = now_ns();
      for (int k = 0; k < n; ++k) {
        std::optional<std::uint32_t> to;
        for (auto* cm = CMSG_FIRSTHDR(&msgs[k].msg_hdr); cm; cm = CMSG_NXTHDR(&msgs[k].msg_hdr, cm)) {
          if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
            in_pktinfo info{};
            std::memcpy(&info, CMSG_DATA(cm), sizeof info);
            to = ntohl(info.ipi_addr.s_addr);
          }
        }
        if (!to || *to < base_ || *to - base_ >= clients_.size()) continue;
        handle(*to - base_, std::span<const std::uint8_t>(in_[static_cast<std::size_t>(k)].data.data(), msgs[k].msg_len), r);
      }
      if (static_cast<std::size_t>(n) < batch) return;
    }
  }

  void handle(std::uint32_t i, std::span<const std::uint8_t> frame, run_result& r) {
    auto decoded = mqttsn::decode(frame);
    auto* m = std::get_if<mqttsn::message>(&decoded);
    if (!m) return;
    auto& c = clients_[i];
    const auto t = now_cached_;
    std::visit(mqttsn::overloaded{
                   [&](const mqttsn::connack& a) {
                     if (c.st != state::connecting) return;
                     // Congestion (e.g. the broker connection did not open in time): retry, as a
                     // client should, when the CONNECT's retransmission timer fires.
                     if (a.rc == mqttsn::return_code::congestion) {
                       ++congested_;
                       return;
                     }
                     --connecting_;
                     ++connacks_;
                     if (a.rc != mqttsn::return_code::accepted) {
                       c.st = state::failed;
                       ++failed_;
                       return;
                     }
                     connect_latency_.record(static_cast<std::uint64_t>(t - c.t0));
                     if (o_.subscribe) {
                       c.st = state::subscribing;
                       send_subscribe(i, false, t);
                     } else {
                       c.st = state::registering;
                       send_register(i, false, t);
                     }
                   },
                   [&](const mqttsn::suback& a) {
                     if (c.st != state::subscribing || a.mid != 1) return;
                     if (a.rc != mqttsn::return_code::accepted) {
                       c.st = state::failed;
                       ++failed_;
                       return;
                     }
                     c.topic = a.id;  // 0 for a wildcard filter: the gateway REGISTERs each topic
                     c.st = state::ready;
                     ++ready_;
                   },
                   [&](const mqttsn::publish& p) { on_publish(i, p); },
                   [&](const mqttsn::pubrel& a) {  // subscribe workload: the end of a QoS 2 delivery
                     if (c.awaiting_pubrel && a.mid == c.mid) c.awaiting_pubrel = false;
                     queue(i, mqttsn::encode(mqttsn::pubcomp{a.mid}));
                   },
                   [&](const mqttsn::regack& a) {
                     if (c.st != state::registering) return;
                     if (a.rc != mqttsn::return_code::accepted) {
                       c.st = state::failed;
                       ++failed_;
                       return;
                     }
                     c.topic = a.id;
                     c.st = state::ready;
                     ++ready_;
                   },
                   [&](const mqttsn::puback& a) {
                     if (c.phase != 1 || a.mid != c.mid || o_.qos != 1) return;
                     if (a.rc != mqttsn::return_code::accepted) ++rejected_;
                     done(i);
                   },
                   [&](const mqttsn::pubrec& a) {
                     if (o_.qos != 2 || a.mid != c.mid || c.phase == 0) return;
                     c.phase = 2;
                     c.tries = 0;
                     queue(i, mqttsn::encode(mqttsn::pubrel{c.mid}));
                     arm(i, kind::pubrel, c.mid, t);
                   },
                   [&](const mqttsn::pubcomp& a) {
                     if (c.phase != 2 || a.mid != c.mid) return;
                     done(i);
                   },
                   [&](const mqttsn::register_& g) {  // the gateway's REGISTER: accept it
                     // Subscribe workload: the id of the one topic this client's filter matches.
                     if (o_.subscribe && g.topic_name == publish_topic(o_, topic_of(o_, i))) c.topic = g.id;
                     queue(i, mqttsn::encode(mqttsn::regack{g.id, g.mid, mqttsn::return_code::accepted}));
                   },
                   [&](const mqttsn::pingreq&) { queue(i, mqttsn::encode(mqttsn::pingresp{})); },
                   [&](const mqttsn::disconnect&) {
                     if (c.st == state::ready) {
                       ++lost_;
                       if (c.phase != 0) {
                         c.phase = 0;
                         turns_.lost();
                       }
                     }
                     if (c.st == state::connecting) --connecting_;
                     if (c.st != state::failed) ++failed_;
                     c.st = state::failed;
                   },
                   [&](const auto&) {},
               },
               *m);
    (void)r;
  }

  // Subscribe workload: a message from the gateway, answered as the spec says (PUBACK, or PUBREC
  // then PUBCOMP after PUBREL; a QoS 2 message is delivered once even if it comes again before
  // its PUBREL; a topic id the client does not know is refused with PUBACK "invalid topic id").
  void on_publish(std::uint32_t i, const mqttsn::publish& p) {
    auto& c = clients_[i];
    if (!o_.subscribe || c.st != state::ready) return;
    if (p.id_type != mqttsn::topic_id_type::normal || p.id == 0 || p.id != c.topic) {
      ++rejected_;
      queue(i, mqttsn::encode(mqttsn::puback{p.id, p.mid, mqttsn::return_code::invalid_topic_id}));
      return;
    }
    const bool again = p.q == mqttsn::qos::exactly_once && c.awaiting_pubrel && c.mid == p.mid;
    if (!again && col_) col_->on_delivery(i, topic_of(o_, i), p.data.data(), p.data.size(), now_cached_);
    if (p.q == mqttsn::qos::at_least_once) {
      queue(i, mqttsn::encode(mqttsn::puback{p.id, p.mid, mqttsn::return_code::accepted}));
    } else if (p.q == mqttsn::qos::exactly_once) {
      c.awaiting_pubrel = true;
      c.mid = p.mid;
      queue(i, mqttsn::encode(mqttsn::pubrec{p.mid}));
    }
  }

  void done(std::uint32_t i) {
    auto& c = clients_[i];
    c.phase = 0;
    turns_.done(i);
  }

  void expire(std::int64_t t) {
    while (!timers_.empty() && timers_.front().due <= t) {
      const auto tm = timers_.front();
      timers_.pop_front();
      auto& c = clients_[tm.client];
      switch (tm.k) {
        case kind::connect:
          if (c.st == state::connecting) send_connect(tm.client, true, t);
          break;
        case kind::register_:
          if (c.st == state::registering) send_register(tm.client, true, t);
          break;
        case kind::subscribe:
          if (c.st == state::subscribing) send_subscribe(tm.client, true, t);
          break;
        case kind::publish:
        case kind::pubrel: {
          const std::uint8_t phase = tm.k == kind::publish ? 1 : 2;
          if (c.phase != phase || c.mid != tm.mid || c.st != state::ready) break;
          if (c.tries++ >= o_.retries) {
            ++gave_up_;
            done(tm.client);
            break;
          }
          ++retransmissions_;
          if (phase == 1) {
            send_publish(tm.client, true, t);
          } else {
            queue(tm.client, mqttsn::encode(mqttsn::pubrel{c.mid}));
            arm(tm.client, kind::pubrel, c.mid, t);
          }
          break;
        }
      }
    }
  }

  // PINGREQ for clients quiet for half their keep-alive; scanned at most once a second.
  void keep_alive(std::int64_t t) {
    if (o_.qos < 0 || t - last_scan_ < ns_per_s) return;
    last_scan_ = t;
    const std::int64_t half = std::int64_t{o_.keep_alive} * ns_per_s / 2;
    for (std::uint32_t i = 0; i < clients_.size(); ++i) {
      if (clients_[i].st == state::ready && t - clients_[i].last_tx > half) queue(i, mqttsn::encode(mqttsn::pingreq{}));
    }
  }

  const options& o_;
  const std::uint32_t run_;
  int fd_ = -1;
  sockaddr_in gw_{};
  std::uint32_t base_ = 0;
  std::vector<client> clients_;
  turns turns_{o_.qos};
  std::deque<timer> timers_;  // due times only grow: a FIFO is a priority queue here
  std::vector<slot> out_, in_;
  std::size_t count_ = 0;
  std::int64_t now_cached_ = 0, last_scan_ = 0;
  std::size_t ready_ = 0, failed_ = 0, connecting_ = 0;
  std::uint64_t connacks_ = 0, congested_ = 0, retransmissions_ = 0, rejected_ = 0, gave_up_ = 0, send_errors_ = 0, lost_ = 0;
  histogram connect_latency_;
  collector* col_ = nullptr;
};

// ---------------------------------------------------------------- plain MQTT clients over TCP

// N plain MQTT clients on one epoll: connects them (at --connect-rate, at most --connect-window
// awaiting CONNACK), writes their queued output, splits their input into packets for the load
// built on it. `State` is the load's own per-client state.
template <class State>
class tcp_clients {
 public:
  tcp_clients(const options& o, std::string uri, std::string id_prefix, std::size_t count)
      : o_(o), conns_(count), uri_(std::move(uri)), id_prefix_(std::move(id_prefix)) {
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
  }
  virtual ~tcp_clients() {
    for (auto& c : conns_) {
      if (c.fd < 0) continue;
      wire::bytes out;
      wire::append_simple(out, wire::disconnect);
      (void)::send(c.fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      ::close(c.fd);
    }
    ::close(ep_);
  }
  tcp_clients(const tcp_clients&) = delete;
  tcp_clients& operator=(const tcp_clients&) = delete;

  // Connects every client; a client counts as connected when the load calls mark_ready().
  void connect_all(run_result& r) {
    const auto start = now_ns();
    const auto deadline = start + static_cast<std::int64_t>(o_.connect_timeout_s * ns_per_s);
    const pace p{o_.connect_rate, start};
    std::size_t next = 0;
    std::int64_t last = start;
    while ((next < conns_.size() || connecting_ > 0) && now_ns() < deadline) {
      const auto t = now_ns();
      auto allowed = p.allowed(t, next);
      while (next < conns_.size() && connecting_ < o_.connect_window && allowed-- > 0) {
        auto& c = conns_[next];
        try {
          c.fd = tcp_connect(uri_);
        } catch (const std::exception& e) {
          if (r.connect_failed++ == 0) std::cerr << "mqttsn-bench: " << id_prefix_ << ": " << e.what() << '\n';
          ++next;
          continue;
        }
        const int flags = ::fcntl(c.fd, F_GETFL);
        ::fcntl(c.fd, F_SETFL, flags | O_NONBLOCK);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = static_cast<std::uint32_t>(next);
        ::epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev);
        wire::append_connect(c.out, id_prefix_ + std::to_string(next), o_.keep_alive);
        c.t0 = t;
        ++connecting_;
        send(static_cast<std::uint32_t>(next++));
      }
      const auto before = r.connected;
      wait_any(t + 1'000'000, r, *this);
      if (r.connected != before) last = now_ns();
    }
    r.connect_failed += connecting_ + (conns_.size() - next);
    r.connect_s = static_cast<double>(last - start) / ns_per_s;
    r.connect_latency = connect_latency_;
  }

  bool ready(std::uint32_t i) const { return conns_[i].ready; }
  std::uint64_t lost() const { return lost_; }

  int fd() const { return ep_; }
  void flush_out() {
    auto pending = std::move(pending_out_);
    pending_out_.clear();
    for (auto i : pending) {
      conns_[i].queued = false;
      send(i);
    }
  }
  void service(run_result& r) {
    epoll_event events[256];
    for (int rounds = 0; rounds < 16; ++rounds) {
      const int n = ::epoll_wait(ep_, events, 256, 0);
      for (int k = 0; k < n; ++k) read(events[k].data.u32, r);
      if (n < 256) return;
    }
  }

 protected:
  struct conn : State {
    int fd = -1;
    wire::reader in;
    wire::bytes out;
    bool connacked = false, ready = false, queued = false;
    std::int64_t t0 = 0;
  };

  // An accepted CONNACK: the client is ready, or (subscribers) has more to do first.
  virtual void on_connack(std::uint32_t i, run_result& r) { mark_ready(i, r); }
  virtual void on_packet(std::uint32_t i, const wire::packet& p, run_result& r) = 0;
  virtual void on_drop(std::uint32_t) {}

  void mark_ready(std::uint32_t i, run_result& r) {
    auto& c = conns_[i];
    if (c.ready || c.t0 == 0) return;
    c.ready = true;
    --connecting_;
    ++ready_;
    ++r.connected;
    connect_latency_.record(static_cast<std::uint64_t>(now_ns() - c.t0));
    c.t0 = 0;
  }
  void mark_failed(std::uint32_t i, run_result& r) {
    auto& c = conns_[i];
    if (c.ready || c.t0 == 0) return;
    --connecting_;
    ++r.connect_failed;
    c.t0 = 0;
  }

  // Writes what the client has queued; what the kernel does not take waits for flush_out().
  void send(std::uint32_t i) {
    auto& c = conns_[i];
    if (c.out.empty() || c.fd < 0) return;
    const auto n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) c.out.erase(c.out.begin(), c.out.begin() + n);
    if (!c.out.empty() && !c.queued) {
      c.queued = true;
      pending_out_.push_back(i);
    }
  }

  const options& o_;
  std::vector<conn> conns_;
  std::vector<std::uint32_t> pending_out_;  // clients with output the kernel did not take yet
  std::size_t ready_ = 0;

 private:
  void read(std::uint32_t i, run_result& r) {
    auto& c = conns_[i];
    for (;;) {
      if (c.fd < 0) return;
      const auto n = ::recv(c.fd, c.in.space(1 << 14), 1 << 14, MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) drop(i, r);
        return;
      }
      c.in.commit(static_cast<std::size_t>(n));
      wire::packet p;
      bool bad = false;
      while (c.in.next(p, bad)) {
        if (p.type != wire::connack) {
          on_packet(i, p, r);
        } else if (!c.connacked && c.t0 != 0) {
          c.connacked = true;
          if (p.body.size() >= 2 && p.body[1] == 0) {
            on_connack(i, r);
          } else {
            mark_failed(i, r);
          }
        }
      }
      if (bad) {
        drop(i, r);
        return;
      }
    }
  }

  void drop(std::uint32_t i, run_result& r) {
    auto& c = conns_[i];
    ::epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
    c.fd = -1;
    if (c.ready) {
      ++lost_;
      --ready_;
    }
    mark_failed(i, r);
    c.ready = false;
    on_drop(i);
  }

  std::string uri_, id_prefix_;
  int ep_ = -1;
  std::size_t connecting_ = 0;
  std::uint64_t lost_ = 0;
  histogram connect_latency_;
};

// Publish workload, --direct: the same clients, topics, payloads, QoS and pacing as the MQTT-SN
// clients, as MQTT clients straight to the broker (QoS -1 is sent as QoS 0).
struct direct_publisher_state {
  std::uint32_t seq = 0;
  std::uint16_t mid = 0;
  std::uint8_t phase = 0;  // 0 free, 1 awaiting PUBACK/PUBREC, 2 awaiting PUBCOMP
};

class direct_load final : public tcp_clients<direct_publisher_state> {
 public:
  direct_load(const options& o, const std::string& uri, std::uint32_t run)
      : tcp_clients(o, uri, "d" + std::to_string(run) + "-", o.clients), run_(run), payload_(o.payload, 0x5A) {}

  void publish(run_result& r, collector& col, sampler& smp) {
    for (std::uint32_t i = 0; i < conns_.size(); ++i) {
      if (conns_[i].ready) turns_.add(i);
    }
    paced_publishing(o_, o_.qos < 1 && o_.rate <= 0, r, col, smp, *this,
                     [&](std::int64_t until) { wait_any(until, r, *this); });
    r.lost_clients = lost();
  }

  bool can_send() {
    return turns_.any([&](std::uint32_t i) { return conns_[i].ready; });
  }
  std::uint64_t send(std::int64_t t) {
    const auto i = turns_.take();
    auto& c = conns_[i];
    const int q = std::max(0, o_.qos);
    write_header(payload_.data(), run_, i, c.seq++, t);
    if (q >= 1) {
      c.mid = static_cast<std::uint16_t>(c.mid % 0xFFFF + 1);
      c.phase = 1;
    }
    wire::append_publish(c.out, o_.topic_prefix + "/" + std::to_string(i), payload_, q, c.mid);
    tcp_clients::send(i);
    return 1;
  }
  std::size_t inflight() const { return turns_.inflight(); }

 private:
  void on_packet(std::uint32_t i, const wire::packet& p, run_result&) override {
    auto& c = conns_[i];
    switch (p.type) {
      case wire::puback:
      case wire::pubcomp:
        if (c.phase == 0 || p.mid() != c.mid) return;
        c.phase = 0;
        turns_.done(i);
        return;
      case wire::pubrec:
        if (c.phase != 1 || p.mid() != c.mid) return;
        c.phase = 2;
        wire::append_ack(c.out, wire::pubrel, c.mid);
        tcp_clients::send(i);
        return;
      default: return;
    }
  }
  void on_drop(std::uint32_t i) override {
    if (conns_[i].phase != 0) turns_.lost();
    conns_[i].phase = 0;
  }

  std::uint32_t run_;
  std::vector<std::uint8_t> payload_;
  turns turns_{o_.qos};
};

// Subscribe workload: the bench's own MQTT publishers, taking turns, each publish to the next
// topic (round robin). Publishes are pipelined (no per-message wait for the broker's ack): the
// pace or the window of undelivered deliveries is the flow control.
struct no_state {};

class mqtt_publishers final : public tcp_clients<no_state> {
 public:
  mqtt_publishers(const options& o, const std::string& uri, std::uint32_t run)
      : tcp_clients(o, uri, "p" + std::to_string(run) + "-", o.publishers),
        run_(run),
        payload_(o.payload, 0x5A),
        published_(o.topics),
        expected_(o.topics) {}

  // Connects them all, or throws: without its publishers a run measures nothing.
  void connect() {
    run_result scratch;
    connect_all(scratch);
    if (scratch.connected != conns_.size())
      throw std::runtime_error("only " + std::to_string(scratch.connected) + " of " + std::to_string(conns_.size()) +
                               " MQTT publishers connected to the broker");
  }
  // Deliveries a publish to each topic should cause (its subscribed clients).
  void expect(std::vector<std::uint32_t> per_topic) { expected_ = std::move(per_topic); }
  const std::vector<std::uint32_t>& published_per_topic() const { return published_; }

  bool can_send() const { return ready_ > 0 && pending_out_.size() < ready_; }
  std::uint64_t send(std::int64_t t) {
    std::uint32_t i = 0;
    do {
      i = static_cast<std::uint32_t>(next_publisher_++ % conns_.size());
    } while (!conns_[i].ready);  // can_send(): one is
    const auto k = static_cast<std::uint32_t>(next_topic_++ % o_.topics);
    write_header(payload_.data(), run_, k, published_[k]++, t);
    if (o_.qos >= 1) {
      mid_ = static_cast<std::uint16_t>(mid_ % 0xFFFF + 1);
      ++inflight_;
    }
    wire::append_publish(conns_[i].out, publish_topic(o_, k), payload_, o_.qos, mid_);
    tcp_clients::send(i);
    return expected_[k];
  }
  std::size_t inflight() const { return inflight_; }

 private:
  void on_packet(std::uint32_t i, const wire::packet& p, run_result&) override {
    switch (p.type) {
      case wire::puback:
      case wire::pubcomp:
        if (inflight_ > 0) --inflight_;
        return;
      case wire::pubrec:
        wire::append_ack(conns_[i].out, wire::pubrel, p.mid());
        tcp_clients::send(i);
        return;
      default: return;
    }
  }

  std::uint32_t run_;
  std::vector<std::uint8_t> payload_;
  std::vector<std::uint32_t> published_, expected_;
  std::uint64_t next_publisher_ = 0, next_topic_ = 0;
  std::uint16_t mid_ = 0;
  std::size_t inflight_ = 0;
};

// Subscribe workload, --direct: the same subscribers as MQTT clients on the broker. They answer
// as a QoS 2 receiver should (a PUBLISH whose PUBREL has not come yet is not delivered twice).
struct direct_subscriber_state {
  std::vector<std::uint16_t> awaiting_pubrel;
};

class direct_subscribers final : public tcp_clients<direct_subscriber_state> {
 public:
  direct_subscribers(const options& o, const std::string& uri, std::uint32_t run)
      : tcp_clients(o, uri, "d" + std::to_string(run) + "-", o.clients) {}
  void measure(collector* c) { col_ = c; }

 private:
  void on_connack(std::uint32_t i, run_result&) override {
    wire::append_subscribe(conns_[i].out, 1, subscribe_filter(o_, topic_of(o_, i)), o_.qos);
    tcp_clients::send(i);
  }
  void on_packet(std::uint32_t i, const wire::packet& p, run_result& r) override {
    auto& c = conns_[i];
    switch (p.type) {
      case wire::suback:
        if (p.body.size() >= 3 && p.body[2] != 0x80) {
          mark_ready(i, r);
        } else {
          mark_failed(i, r);
        }
        return;
      case wire::publish: {
        const auto v = wire::parse_publish(p);
        if (!v) return;
        auto& rel = c.awaiting_pubrel;
        const bool again = v->qos == 2 && std::find(rel.begin(), rel.end(), v->mid) != rel.end();
        if (!again) {
          if (v->qos == 2) rel.push_back(v->mid);
          if (c.ready && col_) col_->on_delivery(i, topic_of(o_, i), v->payload.data(), v->payload.size(), now_ns());
        }
        if (v->qos == 1) wire::append_ack(c.out, wire::puback, v->mid);
        if (v->qos == 2) wire::append_ack(c.out, wire::pubrec, v->mid);
        tcp_clients::send(i);
        return;
      }
      case wire::pubrel: {
        auto& rel = c.awaiting_pubrel;
        rel.erase(std::remove(rel.begin(), rel.end(), p.mid()), rel.end());
        wire::append_ack(c.out, wire::pubcomp, p.mid());
        tcp_clients::send(i);
        return;
      }
      default: return;
    }
  }

  collector* col_ = nullptr;
};

// ---------------------------------------------------------------- the runs

void finish(run_result& r, const collector& col, std::uint64_t rcvbuf_before) {
  const auto s = col.take();
  r.delivered = s->delivered;
  r.duplicates = s->duplicates;
  r.foreign = s->foreign;
  r.latency = s->latency;
  r.udp_rcvbuf_errors = udp_rcvbuf_errors() - rcvbuf_before;
  // Per-second deliveries and latency join the /proc samples taken at the same seconds.
  for (std::size_t k = 0; k < r.series.size(); ++k) {
    if (k < s->bins.size()) {
      r.series[k].delivered = s->bins[k].delivered;
      r.series[k].p50_us = static_cast<double>(s->bins[k].latency.quantile(0.5)) / 1000.0;
      r.series[k].p99_us = static_cast<double>(s->bins[k].latency.quantile(0.99)) / 1000.0;
    }
  }
}

// Starts our own gateway: the broker, a free UDP port, the mode, enough --max-clients.
struct gateway_child {
  pid_t pid = -1;
  std::uint16_t port = 0;
  std::unique_ptr<itest::temp_dir> dir;
  std::string log_path;

  gateway_child(const options& o, const std::string& broker_uri) {
    dir = std::make_unique<itest::temp_dir>("mqttsn-bench-gw");
    log_path = (dir->path() / "gateway.log").string();
    port = itest::free_port(true);
    std::vector<std::string> args{o.gateway_bin, "--broker", broker_uri, "--udp", "127.0.0.1:" + std::to_string(port),
                                  "--mode", o.mode, "--max-clients", std::to_string(o.clients * o.repeat + 16),
                                  "--stats-interval", "0", "--predefined", "1=" + o.topic_prefix + "/m1"};
    args.insert(args.end(), o.gateway_args.begin(), o.gateway_args.end());
    if (::access(o.gateway_bin.c_str(), X_OK) != 0)
      throw std::runtime_error("gateway binary " + o.gateway_bin + " not found (--gateway-bin)");
    pid = itest::spawn_process(args, log_path);
    // Ready when it answers SEARCHGW and has reached the broker (its log says so).
    const bool up = itest::wait_until(
        [&] {
          const auto text = log();
          return text.find("connected to broker") != std::string::npos ||
                 text.find("upstream: connected") != std::string::npos;
        },
        std::chrono::seconds(15));
    tools::client probe("127.0.0.1", port, tools::client_options{"bench-probe", 0, std::chrono::milliseconds(200), 25, {}});
    if (!up || !probe.searchgw(0, std::chrono::seconds(5))) {
      const auto text = log();
      itest::stop_process(pid, std::chrono::seconds(2));
      throw std::runtime_error("the gateway did not come up; its log:\n" + text);
    }
  }
  ~gateway_child() { itest::stop_process(pid, std::chrono::seconds(5)); }
  // SIGUSR1, then the counters line it logs ("stats: clients=... frames_in=..."), or "".
  std::string stats() const {
    const auto count = [&] {
      const auto text = log();
      std::size_t n = 0;
      for (auto at = text.find("stats: "); at != std::string::npos; at = text.find("stats: ", at + 1)) ++n;
      return n;
    };
    const auto before = count();
    ::kill(pid, SIGUSR1);
    itest::wait_until([&] { return count() > before; }, std::chrono::seconds(3));
    const auto text = log();
    const auto at = text.rfind("stats: ");
    return at == std::string::npos ? std::string() : text.substr(at, text.find('\n', at) - at);
  }
  std::string log() const {
    std::ifstream in(log_path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
};

// Raises the open-file limit (inherited by the gateway and broker we start): transparent mode holds
// one TCP connection per client in each of them, the direct baseline one per client here.
void raise_nofile(std::size_t clients) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  const rlim_t want = static_cast<rlim_t>(clients) * 2 + 4096;
  if (rl.rlim_max < want) {
    rlimit more{want, want};
    if (::setrlimit(RLIMIT_NOFILE, &more) == 0) return;  // root (CAP_SYS_RESOURCE) only
  }
  rl.rlim_cur = rl.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &rl);
}

std::string fmt_num(double v, int decimals = 0) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}
std::string us(std::uint64_t ns) { return fmt_num(static_cast<double>(ns) / 1000.0, 1); }

void print_table(const options& o, const std::vector<run_result>& runs, const std::string& target) {
  if (o.subscribe) {
    std::cout << "mqttsn-bench subscribe: " << o.clients << " subscribers on " << o.topics << (o.topics == 1 ? " topic" : " topics")
              << (o.wildcard ? " (wildcard filters)" : "") << ", " << o.publishers << " MQTT publisher"
              << (o.publishers == 1 ? "" : "s") << ", QoS " << o.qos << ", " << o.payload << "-byte payload, rate "
              << (o.rate > 0 ? fmt_num(o.rate) + " publishes/s" : std::string("max")) << ", " << fmt_num(o.duration_s, 1)
              << " s, " << target << "\n";
  } else {
    std::cout << "mqttsn-bench: " << o.clients << " clients, QoS " << o.qos << ", " << o.payload << "-byte payload, rate "
              << (o.rate > 0 ? fmt_num(o.rate) + "/s" : std::string("max")) << ", " << fmt_num(o.duration_s, 1) << " s, "
              << target << "\n";
  }
  std::printf("%-26s", "");
  for (const auto& r : runs) std::printf("%18s", r.name.c_str());
  const bool ratio = runs.size() == 2;
  if (ratio) std::printf("%18s", "gateway/direct");
  std::printf("\n");
  auto row = [&](const char* label, auto value, bool with_ratio, auto numeric) {
    std::printf("%-26s", label);
    for (const auto& r : runs) std::printf("%18s", value(r).c_str());
    if (ratio && with_ratio) {
      const double d = numeric(runs[1]);
      std::printf("%18s", d > 0 ? fmt_num(numeric(runs[0]) / d, 3).c_str() : "-");
    }
    std::printf("\n");
  };
  auto none = [](const run_result&) { return 0.0; };
  row("clients connected", [](const run_result& r) { return std::to_string(r.connected) + "/" + std::to_string(r.clients); }, false, none);
  row("connect rate /s", [](const run_result& r) { return fmt_num(r.connect_rate()); }, true, [](const run_result& r) { return r.connect_rate(); });
  row("connect p50 / p99 ms", [](const run_result& r) {
        return fmt_num(static_cast<double>(r.connect_latency.quantile(0.5)) / 1e6, 2) + " / " +
               fmt_num(static_cast<double>(r.connect_latency.quantile(0.99)) / 1e6, 2);
      }, false, none);
  row("CONNACK congestion", [](const run_result& r) { return std::to_string(r.connect_congestion); }, false, none);
  if (o.subscribe) {
    row("published", [](const run_result& r) { return std::to_string(r.published); }, false, none);
    row("expected deliveries", [](const run_result& r) { return std::to_string(r.sent); }, false, none);
  } else {
    row("sent", [](const run_result& r) { return std::to_string(r.sent); }, false, none);
  }
  row("delivered", [](const run_result& r) { return std::to_string(r.delivered); }, false, none);
  row("delivered msgs/s", [](const run_result& r) { return fmt_num(r.delivered_per_s()); }, true, [](const run_result& r) { return r.delivered_per_s(); });
  row("lost", [](const run_result& r) { return std::to_string(r.loss()); }, false, none);
  row("duplicates", [](const run_result& r) { return std::to_string(r.duplicates); }, false, none);
  row("retransmissions", [](const run_result& r) { return std::to_string(r.retransmissions); }, false, none);
  if (o.subscribe) {
    row("unknown topic id", [](const run_result& r) { return std::to_string(r.rejected); }, false, none);
    row("misrouted", [](const run_result& r) { return std::to_string(r.foreign); }, false, none);
  }
  row("latency p50 us", [](const run_result& r) { return us(r.latency.quantile(0.5)); }, true, [](const run_result& r) { return static_cast<double>(r.latency.quantile(0.5)); });
  row("latency p99 us", [](const run_result& r) { return us(r.latency.quantile(0.99)); }, true, [](const run_result& r) { return static_cast<double>(r.latency.quantile(0.99)); });
  row("latency p99.9 us", [](const run_result& r) { return us(r.latency.quantile(0.999)); }, false, none);
  row("latency max us", [](const run_result& r) { return us(r.latency.max()); }, false, none);
  row("gateway RSS start KiB", [](const run_result& r) { return std::to_string(r.rss_start_kib); }, false, none);
  row("gateway RSS connected KiB", [](const run_result& r) { return std::to_string(r.rss_connected_kib); }, false, none);
  row("gateway RSS peak KiB", [](const run_result& r) { return std::to_string(r.rss_peak_kib); }, false, none);
  row("RSS per client B", [](const run_result& r) { return fmt_num(r.rss_per_client_b()); }, false, none);
  row("gateway CPU %", [](const run_result& r) { return fmt_num(r.gateway_cpu, 1); }, false, none);
  row("broker CPU %", [](const run_result& r) { return fmt_num(r.broker_cpu, 1); }, false, none);
  row("bench CPU %", [](const run_result& r) { return fmt_num(r.bench_cpu, 1); }, false, none);
  row("UDP rcvbuf drops", [](const run_result& r) { return std::to_string(r.udp_rcvbuf_errors); }, false, none);
  row("lost clients / gave up", [](const run_result& r) { return std::to_string(r.lost_clients) + " / " + std::to_string(r.gave_up); }, false, none);
  if (ratio) {
    std::printf("added latency (gateway - direct): p50 %s us, p99 %s us\n",
                fmt_num((static_cast<double>(runs[0].latency.quantile(0.5)) - static_cast<double>(runs[1].latency.quantile(0.5))) / 1000.0, 1).c_str(),
                fmt_num((static_cast<double>(runs[0].latency.quantile(0.99)) - static_cast<double>(runs[1].latency.quantile(0.99))) / 1000.0, 1).c_str());
  }
  std::fflush(stdout);
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    if (static_cast<unsigned char>(ch) < 0x20) continue;
    out += ch;
  }
  return out;
}

void write_json(const std::string& path, const options& o, const std::vector<run_result>& runs, const std::string& target,
                const std::vector<std::vector<run_result>>& reps) {
  std::ofstream f(path, std::ios::trunc);
  if (!f) throw std::runtime_error("cannot write " + path);
  utsname u{};
  ::uname(&u);
  f << "{\n  \"tool\": \"mqttsn-bench\",\n";
  f << "  \"machine\": {\"cpus\": " << std::thread::hardware_concurrency() << ", \"kernel\": \"" << json_escape(u.release)
    << "\", \"arch\": \"" << json_escape(u.machine) << "\"},\n";
  f << "  \"config\": {\"clients\": " << o.clients << ", \"qos\": " << o.qos << ", \"payload\": " << o.payload
    << ", \"rate\": " << o.rate << ", \"duration_s\": " << o.duration_s << ", \"mode\": \"" << json_escape(o.mode)
    << "\", \"target\": \"" << json_escape(target) << "\", \"workload\": \"" << (o.subscribe ? "subscribe" : "publish") << "\"";
  if (o.subscribe)
    f << ", \"topics\": " << o.topics << ", \"publishers\": " << o.publishers << ", \"wildcard\": " << (o.wildcard ? "true" : "false");
  f << "},\n  \"runs\": {\n";
  for (std::size_t k = 0; k < runs.size(); ++k) {
    const auto& r = runs[k];
    auto q = [&](double p) { return fmt_num(static_cast<double>(r.latency.quantile(p)) / 1000.0, 1); };
    f << "    \"" << r.name << "\": {\"clients\": " << r.clients << ", \"connected\": " << r.connected
      << ", \"connect_failed\": " << r.connect_failed << ", \"connect_congestion\": " << r.connect_congestion << ", \"connect_s\": " << fmt_num(r.connect_s, 3)
      << ", \"connect_rate\": " << fmt_num(r.connect_rate(), 1) << ", \"published\": " << r.published << ", \"sent\": " << r.sent
      << ", \"delivered\": " << r.delivered << ", \"lost\": " << r.loss() << ", \"duplicates\": " << r.duplicates << ", \"foreign\": " << r.foreign
      << ", \"retransmissions\": " << r.retransmissions << ", \"rejected\": " << r.rejected
      << ", \"gave_up\": " << r.gave_up << ", \"lost_clients\": " << r.lost_clients
      << ", \"publish_s\": " << fmt_num(r.publish_s, 3) << ", \"delivered_per_s\": " << fmt_num(r.delivered_per_s(), 1)
      << ", \"latency_us\": {\"p50\": " << q(0.5) << ", \"p99\": " << q(0.99) << ", \"p999\": " << q(0.999)
      << ", \"max\": " << fmt_num(static_cast<double>(r.latency.max()) / 1000.0, 1) << "}"
      << ", \"rss_kib\": {\"start\": " << r.rss_start_kib << ", \"connected\": " << r.rss_connected_kib
      << ", \"peak\": " << r.rss_peak_kib << ", \"end\": " << r.rss_end_kib << "}"
      << ", \"rss_per_client_b\": " << fmt_num(r.rss_per_client_b(), 1) << ", \"gateway_cpu_pct\": " << fmt_num(r.gateway_cpu, 1)
      << ", \"broker_cpu_pct\": " << fmt_num(r.broker_cpu, 1) << ", \"bench_cpu_pct\": " << fmt_num(r.bench_cpu, 1)
      << ", \"udp_rcvbuf_drops\": " << r.udp_rcvbuf_errors << ",\n      \"series\": [";
    for (std::size_t i = 0; i < r.series.size(); ++i) {
      const auto& s = r.series[i];
      f << (i ? ", " : "") << "{\"t\": " << fmt_num(s.t, 2) << ", \"delivered\": " << s.delivered << ", \"p50_us\": "
        << fmt_num(s.p50_us, 1) << ", \"p99_us\": " << fmt_num(s.p99_us, 1) << ", \"gateway_rss_kib\": " << s.gateway_rss_kib
        << ", \"gateway_cpu_pct\": " << fmt_num(s.gateway_cpu, 1) << ", \"broker_cpu_pct\": " << fmt_num(s.broker_cpu, 1) << "}";
    }
    f << "]}" << (k + 1 < runs.size() ? "," : "") << "\n";
  }
  f << "  }";
  if (runs.size() == 2) {
    const auto& g = runs[0];
    const auto& d = runs[1];
    f << ",\n  \"ratios\": {\"throughput\": "
      << fmt_num(d.delivered_per_s() > 0 ? g.delivered_per_s() / d.delivered_per_s() : 0, 3)
      << ", \"added_p50_us\": " << fmt_num((static_cast<double>(g.latency.quantile(0.5)) - static_cast<double>(d.latency.quantile(0.5))) / 1000.0, 1)
      << ", \"added_p99_us\": " << fmt_num((static_cast<double>(g.latency.quantile(0.99)) - static_cast<double>(d.latency.quantile(0.99))) / 1000.0, 1)
      << "}";
  }
  if (reps.size() > 1) {
    f << ",\n  \"repetitions\": [";
    for (std::size_t k = 0; k < reps.size(); ++k) {
      f << (k ? ", " : "") << "{";
      for (std::size_t i = 0; i < reps[k].size(); ++i) {
        const auto& r = reps[k][i];
        f << (i ? ", " : "") << "\"" << r.name << "\": {\"delivered_per_s\": " << fmt_num(r.delivered_per_s(), 1)
          << ", \"p50_us\": " << fmt_num(static_cast<double>(r.latency.quantile(0.5)) / 1000.0, 1)
          << ", \"p99_us\": " << fmt_num(static_cast<double>(r.latency.quantile(0.99)) / 1000.0, 1) << ", \"lost\": " << r.loss() << "}";
      }
      f << "}";
    }
    f << "]";
  }
  f << "\n}\n";
}

int run(const options& o) {
  raise_nofile(o.clients);
  // Our own broker unless told otherwise: no per-subscriber inflight cap and a deep (bounded)
  // queue, so the broker's defaults (20 in flight, 1000 queued) do not limit or drop deliveries
  // to the measuring subscriber; TCP_NODELAY so Nagle does not add latency.
  std::unique_ptr<itest::mosquitto_broker> broker;
  std::string uri = o.broker;
  pid_t broker_pid = 0;
  if (uri.empty()) {
    itest::broker_options bo;
    bo.extra_config = {"max_inflight_messages 0", "max_queued_messages 1000000", "set_tcp_nodelay true"};
    broker = std::make_unique<itest::mosquitto_broker>(bo);
    uri = broker->uri();
    broker_pid = broker->pid();
  }
  // Publish workload: measured at the broker by our subscriber. Subscribe workload: at the clients.
  std::unique_ptr<measuring_subscriber> sub;
  if (!o.subscribe) sub = std::make_unique<measuring_subscriber>(uri, o.topic_prefix + "/#", std::max(0, o.qos));

  std::vector<std::unique_ptr<collector>> collectors;
  std::string target;
  const auto run_base = static_cast<std::uint32_t>(::getpid()) << 8;

  // The gateway (ours, started once) and where it listens.
  std::unique_ptr<gateway_child> child;
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  pid_t gw_pid = o.gateway_pid;
  if (!o.direct_only) {
    if (o.gateway.empty()) {
      child = std::make_unique<gateway_child>(o, uri);
      port = child->port;
      gw_pid = child->pid;
      target = "gateway " + o.mode + " (started)";
    } else {
      const auto colon = o.gateway.rfind(':');
      if (colon == std::string::npos) throw cli::usage_error("--gateway: '" + o.gateway + "' is not HOST:PORT");
      host = o.gateway.substr(0, colon);
      port = static_cast<std::uint16_t>(number_arg("gateway", o.gateway.c_str() + colon + 1, 1, 65535));
      target = "gateway at " + o.gateway;
    }
  } else {
    target = "direct only";
  }
  if (broker) target += ", broker mosquitto (started)";

  // Subscribe workload: our MQTT publishers publish to the topics the (connected) subscribers
  // took, paced like the publish workload; the subscribers measure.
  auto subscribe_workload = [&](auto& subscribers, run_result& r, sampler& smp, std::uint32_t run_id) {
    mqtt_publishers publishers(o, uri, run_id);
    publishers.connect();
    publishers.expect(subscribers_per_topic(o, subscribers));
    collectors.push_back(std::make_unique<collector>(run_id, o.clients, now_ns()));
    auto& col = *collectors.back();
    subscribers.measure(&col);
    paced_publishing(o, o.rate <= 0, r, col, smp, publishers,
                     [&](std::int64_t until) { wait_any(until, r, subscribers, publishers); });
    subscribers.measure(nullptr);
    if (r.sent > col.delivered())
      std::cerr << "mqttsn-bench: " << r.name << " run, first losses:\n"
                << col.gaps(expected_per_subscriber(o, subscribers, publishers.published_per_topic()), 10);
  };

  auto gateway_run = [&](std::uint32_t run_id) {
    run_result r;
    r.name = "gateway";
    r.clients = o.clients;
    sampler smp(gw_pid, broker_pid);
    sn_load load(o, host, port, run_id);
    const auto rcvbuf = udp_rcvbuf_errors();
    load.connect_all(r, smp);
    std::cerr << "mqttsn-bench: gateway: " << r.connected << "/" << o.clients << " connected in " << fmt_num(r.connect_s, 2) << " s\n";
    if (o.idle_s > 0) load.idle(o.idle_s, r);
    r.rss_connected_kib = smp.gateway_rss();
    if (o.subscribe) {
      subscribe_workload(load, r, smp, run_id);
      load.counters_into(r);
    } else {
      collectors.push_back(std::make_unique<collector>(run_id, o.clients, now_ns()));
      sub->measure(collectors.back().get());
      load.publish(r, *collectors.back(), smp);
    }
    finish(r, *collectors.back(), rcvbuf);
    if (child) std::cerr << "mqttsn-bench: gateway " << child->stats() << '\n';
    if (r.loss() > 0 && !o.subscribe)
      std::cerr << "mqttsn-bench: gateway run, first losses:\n" << collectors.back()->gaps(load.sent_per_client(), 10);
    load.disconnect_all(r);
    return r;
  };
  auto direct_run = [&](std::uint32_t run_id) {
    run_result r;
    r.name = "direct";
    r.clients = o.clients;
    sampler smp(0, broker_pid);
    const auto rcvbuf = udp_rcvbuf_errors();
    smp.begin(now_ns());
    if (o.subscribe) {
      direct_subscribers load(o, uri, run_id);
      load.connect_all(r);
      std::cerr << "mqttsn-bench: direct: " << r.connected << "/" << o.clients << " subscribed in " << fmt_num(r.connect_s, 2) << " s\n";
      subscribe_workload(load, r, smp, run_id);
      r.lost_clients = load.lost();
    } else {
      direct_load load(o, uri, run_id);
      load.connect_all(r);
      std::cerr << "mqttsn-bench: direct: " << r.connected << "/" << o.clients << " connected in " << fmt_num(r.connect_s, 2) << " s\n";
      collectors.push_back(std::make_unique<collector>(run_id, o.clients, now_ns()));
      sub->measure(collectors.back().get());
      load.publish(r, *collectors.back(), smp);
    }
    finish(r, *collectors.back(), rcvbuf);
    return r;
  };

  // --repeat N alternates gateway and direct runs, so both see the same background load over the
  // same minutes; the report is the repetition with the median throughput ratio.
  std::vector<std::vector<run_result>> reps;
  for (unsigned k = 0; k < o.repeat; ++k) {
    std::vector<run_result> runs;
    const auto id = run_base | (k << 2);
    if (!o.direct_only) runs.push_back(gateway_run(id | 1));
    if (o.direct) runs.push_back(direct_run(id | 2));
    if (o.repeat > 1) print_table(o, runs, target + ", repetition " + std::to_string(k + 1) + "/" + std::to_string(o.repeat));
    reps.push_back(std::move(runs));
  }
  if (sub) sub->measure(nullptr);
  auto ratio = [](const std::vector<run_result>& runs) {
    return runs.size() == 2 && runs[1].delivered_per_s() > 0 ? runs[0].delivered_per_s() / runs[1].delivered_per_s() : 0.0;
  };
  std::vector<std::size_t> order(reps.size());
  for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) { return ratio(reps[x]) < ratio(reps[y]); });
  const auto median = order[order.size() / 2];
  const auto& runs = reps[median];
  if (o.repeat > 1) {
    std::cout << "throughput ratio gateway/direct per repetition:";
    for (const auto& rr : reps) std::cout << ' ' << fmt_num(ratio(rr), 3);
    std::cout << "; median repetition " << median + 1 << ":\n";
    // At a fixed --rate every ratio is about 1, so the median repetition says little about latency:
    // the added latency gets its own medians over the repetitions.
    if (reps.front().size() == 2) {
      for (const double q : {0.5, 0.99}) {
        std::vector<double> added;
        for (const auto& rr : reps)
          added.push_back((static_cast<double>(rr[0].latency.quantile(q)) - static_cast<double>(rr[1].latency.quantile(q))) / 1000.0);
        std::cout << "added latency p" << (q == 0.5 ? "50" : "99") << " us per repetition:";
        for (const double a : added) std::cout << ' ' << fmt_num(a, 1);
        std::sort(added.begin(), added.end());
        std::cout << "; median " << fmt_num(added[added.size() / 2], 1) << '\n';
      }
    }
  }
  print_table(o, runs, target);
  if (!o.json.empty()) write_json(o.json, o, runs, target, reps);

  if (o.fail_on_loss) {
    for (const auto& rr : reps) {
      for (const auto& r : rr) {
        if (r.delivered == 0 || r.loss() > 0 || r.connected != r.clients || r.lost_clients > 0 || r.gave_up > 0) {
          std::cerr << "mqttsn-bench: " << r.name << " run lost messages or clients (--fail-on-loss)\n";
          return 3;
        }
        if (o.subscribe && (r.foreign > 0 || r.rejected > 0)) {
          std::cerr << "mqttsn-bench: " << r.name << " run delivered a message to the wrong client or topic id (--fail-on-loss)\n";
          return 3;
        }
        if (o.qos == 2 && r.duplicates > 0) {
          std::cerr << "mqttsn-bench: " << r.name << " run delivered a QoS 2 message twice (--fail-on-loss)\n";
          return 3;
        }
      }
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  try {
    if (!parse_options(argc, argv, o)) return 0;
    return run(o);
  } catch (const cli::usage_error& e) {
    std::cerr << "mqttsn-bench: " << e.what() << "\n(--help lists the options)\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "mqttsn-bench: " << e.what() << '\n';
    return 2;
  }
}
