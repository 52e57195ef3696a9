// mqttsn-sub: subscribe through an MQTT-SN gateway over UDP and print what arrives, like
// mosquitto_sub. Flags follow mosquitto_sub and njh/mqtt-sn-tools' mqtt-sn-sub (-T for predefined
// topic ids, -e for the sleep duration); --sleep makes it a sleeping client (spec §6.14).
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include <getopt.h>
#include <poll.h>
#include <unistd.h>

#include "mqttsn/topics.hpp"
#include "tools/client/mqttsn_client.hpp"

namespace {

using namespace std::chrono_literals;
using tools::cli::usage_error;
using clock_type = std::chrono::steady_clock;

const std::string program = "mqttsn-sub";
constexpr int exit_timed_out = 27;  // what mosquitto_sub returns when -W expires

volatile std::sig_atomic_t stop_requested = 0;

void on_signal(int) { stop_requested = 1; }

struct subscription {
  tools::topic topic;
  std::string text;  // how errors name it
};

struct options {
  tools::cli::connection_flags conn;
  std::vector<subscription> subscriptions;
  mqttsn::qos q = mqttsn::qos::at_most_once;
  bool clean_session = true;
  bool verbose = false;
  long count = 0;                              // 0: no limit
  std::optional<tools::milliseconds> timeout;  // -W
  std::uint16_t sleep_s = 0;                   // 0: stay awake
  bool help = false;
  bool version = false;
};

void usage() {
  std::printf(
      "Usage: %s [options] {-t FILTER | -T ID | -S NAME}...\n"
      "Subscribe through an MQTT-SN v1.2 gateway over UDP and print each message on its own "
      "line.\n\n"
      "Subscriptions (repeatable, at least one):\n"
      "  -t, --topic FILTER       topic name or filter (+ and # wildcards); a name of exactly two\n"
      "                           characters (no wildcards) is a short topic name, as mqtt-sn-sub "
      "does\n"
      "  -T, --topic-id ID        predefined topic id (decimal or 0x-hex)\n"
      "  -S, --short NAME         short topic name (exactly two characters)\n"
      "  -q, --qos QOS            subscription QoS 0, 1 or 2 (default 0)\n"
      "Session:\n"
      "  -c, --disable-clean-session  keep subscriptions and pending messages when disconnected\n"
      "  -e, --sleep SECONDS      after subscribing, sleep (DISCONNECT with this duration) and "
      "wake up\n"
      "                           every SECONDS with PINGREQ(client id), printing what was "
      "buffered\n"
      "Output and exit:\n"
      "  -v, --verbose            print \"topic payload\" instead of the payload alone (a "
      "predefined id\n"
      "                           without --predefined prints as its number)\n"
      "  -C, --count COUNT        exit after COUNT messages\n"
      "  -W, --timeout SECONDS    exit after SECONDS in all, with status %d\n"
      "%s"
      "\nExit status: 0 on -C, SIGINT or SIGTERM (after a clean DISCONNECT), %d when -W expires,\n"
      "1 on any error.\n",
      program.c_str(), exit_timed_out, tools::cli::connection_usage(), exit_timed_out);
}

options parse(int argc, char** argv) {
  options o;
  std::vector<::option> longs = {
      {"topic", required_argument, nullptr, 't'},
      {"topic-id", required_argument, nullptr, 'T'},
      {"short", required_argument, nullptr, 'S'},
      {"qos", required_argument, nullptr, 'q'},
      {"disable-clean-session", no_argument, nullptr, 'c'},
      {"sleep", required_argument, nullptr, 'e'},
      {"verbose", no_argument, nullptr, 'v'},
      {"count", required_argument, nullptr, 'C'},
      {"timeout", required_argument, nullptr, 'W'},
  };
  for (const auto& c : tools::cli::connection_long_options()) longs.push_back(c);
  longs.push_back({nullptr, 0, nullptr, 0});

  ::opterr = 0;
  int opt = 0;
  while ((opt = ::getopt_long(argc, argv, ":h:p:i:k:dt:T:S:q:ce:vC:W:1", longs.data(), nullptr)) !=
         -1) {
    const char* arg = ::optarg;
    if (o.conn.take(opt, arg)) continue;
    switch (opt) {
      case 't':
        if (!mqttsn::is_valid_topic_filter(arg))
          throw usage_error("bad topic filter '" + std::string(arg) + "'");
        o.subscriptions.push_back({tools::cli::topic_for_name(arg), "'" + std::string(arg) + "'"});
        break;
      case 'T':
        if (auto id = tools::cli::parse_topic_id(arg)) {
          o.subscriptions.push_back(
              {tools::predefined_topic{*id}, "predefined topic id " + std::to_string(*id)});
        } else {
          throw usage_error("bad topic id '" + std::string(arg) + "' (1..65534)");
        }
        break;
      case 'S':
        if (std::strlen(arg) != 2 || !mqttsn::is_valid_topic_name(arg)) {
          throw usage_error("a short topic name has exactly two characters, not '" +
                            std::string(arg) + "'");
        }
        o.subscriptions.push_back(
            {tools::short_topic{arg}, "short topic '" + std::string(arg) + "'"});
        break;
      case 'q':
        if (auto q = tools::cli::parse_qos(arg, 0)) {
          o.q = *q;
        } else {
          throw usage_error("bad QoS '" + std::string(arg) + "' (0, 1 or 2)");
        }
        break;
      case 'c': o.clean_session = false; break;
      case 'e':
        if (auto v = tools::cli::parse_number(arg, 1, 65535)) {
          o.sleep_s = static_cast<std::uint16_t>(*v);
        } else {
          throw usage_error("bad sleep duration '" + std::string(arg) + "' (1..65535 seconds)");
        }
        break;
      case 'v': o.verbose = true; break;
      case 'C':
        if (auto v = tools::cli::parse_number(arg, 1, 1'000'000'000)) {
          o.count = *v;
        } else {
          throw usage_error("bad count '" + std::string(arg) + "' (1 or more)");
        }
        break;
      case 'W':
        if (auto d = tools::cli::parse_seconds(arg, 86'400.0 * 365)) {
          o.timeout = *d;
        } else {
          throw usage_error("bad timeout '" + std::string(arg) + "' (seconds, > 0)");
        }
        break;
      case '1':  // mqtt-sn-sub's "exit after one message"; here -1 means QoS -1, a publisher's
                 // thing
        throw usage_error("-1 (QoS -1) is for mqttsn-pub only; to exit after one message use -C 1");
      case tools::cli::opt_help: o.help = true; break;
      case tools::cli::opt_version: o.version = true; break;
      case ':':
        throw usage_error("option " + tools::cli::option_name(argv, ::optind, ::optopt) +
                          " needs a value");
      default:
        throw usage_error("unknown option " + tools::cli::option_name(argv, ::optind, ::optopt) +
                          " (see --help)");
    }
  }
  if (o.help || o.version) return o;
  if (::optind < argc)
    throw usage_error(std::string("unexpected argument '") + argv[::optind] + "'");
  if (o.subscriptions.empty())
    throw usage_error("nothing to subscribe to: give -t, -T or -S (see --help)");
  o.conn.check();
  if (o.conn.client_id.empty()) o.conn.client_id = program + "-" + std::to_string(::getpid());
  return o;
}

void print(const tools::received_message& m, bool verbose) {
  if (verbose) {
    const std::string topic = m.topic.empty() ? std::to_string(m.id) : m.topic;
    std::fwrite(topic.data(), 1, topic.size(), stdout);
    std::fputc(' ', stdout);
  }
  std::fwrite(m.payload.data(), 1, m.payload.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);  // read through a pipe, one line at a time
}

// SIGINT and SIGTERM interrupt waits (no SA_RESTART) and set stop_requested; a second one kills.
void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = static_cast<int>(SA_RESETHAND);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

// Waits for `d` or until a signal arrives.
void pause_for(tools::milliseconds d) {
  const auto until = clock_type::now() + d;
  while (!stop_requested && clock_type::now() < until) {
    const auto left = std::chrono::ceil<tools::milliseconds>(until - clock_type::now()).count();
    ::poll(nullptr, 0, static_cast<int>(std::min<decltype(left)>(left, 60'000)));
  }
}

enum class outcome : std::uint8_t { done, stopped, timed_out };

int run(const options& o) {
  const auto started = clock_type::now();
  const auto deadline = o.timeout ? std::optional(started + *o.timeout) : std::nullopt;
  auto time_left = [&]() -> tools::milliseconds {
    if (!deadline) return 1h;
    return std::max(tools::milliseconds(0),
                    std::chrono::ceil<tools::milliseconds>(*deadline - clock_type::now()));
  };

  tools::client c(o.conn.host, o.conn.port, o.conn.options(program));
  for (const auto& [id, name] : o.conn.predefined) c.set_predefined(id, name);

  const auto rc = c.connect(o.clean_session, o.conn.will_message());
  if (rc != mqttsn::return_code::accepted) {
    throw tools::client_error("connection refused by " + c.peer() + ": " + tools::describe(rc));
  }
  for (const auto& s : o.subscriptions) {
    const auto r = c.subscribe(s.topic, o.q);
    if (r.rc != mqttsn::return_code::accepted) {
      c.disconnect();
      throw tools::client_error("subscription to " + s.text + " " + tools::describe(r.rc));
    }
  }

  long printed = 0;
  auto show = [&](const tools::received_message& m) {
    if (o.count > 0 && printed >= o.count) return;
    print(m, o.verbose);
    ++printed;
  };
  auto count_reached = [&] { return o.count > 0 && printed >= o.count; };

  outcome end = outcome::done;
  if (o.sleep_s > 0) {
    c.sleep(o.sleep_s);
    for (;;) {
      if (deadline) {
        pause_for(std::min(time_left(), tools::milliseconds(o.sleep_s * 1000L)));
      } else {
        pause_for(std::chrono::seconds(o.sleep_s));
      }
      if (stop_requested) {
        end = outcome::stopped;
        break;
      }
      if (deadline && clock_type::now() >= *deadline) {
        end = outcome::timed_out;
        break;
      }
      // The retry budget inside wake() bounds silence; this only caps a long stream of messages.
      for (const auto& m : c.wake(std::chrono::minutes(1))) show(m);
      if (count_reached()) break;
    }
  } else {
    while (!count_reached()) {
      if (stop_requested) {
        end = outcome::stopped;
        break;
      }
      if (deadline && clock_type::now() >= *deadline) {
        end = outcome::timed_out;
        break;
      }
      if (auto m = c.receive(time_left())) show(*m);
    }
  }

  c.disconnect();
  if (end == outcome::timed_out) {
    std::fprintf(stderr, "%s: timed out after %g s\n", program.c_str(),
                 static_cast<double>(o.timeout->count()) / 1000.0);
    return exit_timed_out;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const options o = parse(argc, argv);
    if (o.help) {
      usage();
      return 0;
    }
    if (o.version) {
      std::printf("%s %s (MQTT-SN v1.2)\n", program.c_str(), MQTTSN_VERSION);
      return 0;
    }
    install_signal_handlers();
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program.c_str(), e.what());
    return 1;
  }
}
