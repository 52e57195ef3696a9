// mqttsn-pub: publish a message to an MQTT-SN gateway over UDP, like mosquitto_pub. Flags follow
// mosquitto_pub and njh/mqtt-sn-tools' mqtt-sn-pub (-T for a predefined topic id); see --help.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <getopt.h>
#include <unistd.h>

#include "mqttsn/topics.hpp"
#include "tools/client/mqttsn_client.hpp"

namespace {

using tools::cli::usage_error;

const std::string program = "mqttsn-pub";

enum class source : std::uint8_t { none, message, file, stdin_all, stdin_lines, null };

struct options {
  tools::cli::connection_flags conn;
  std::optional<tools::topic> topic;
  std::string topic_text;  // how errors name the topic
  source from = source::none;
  std::string message;
  std::string file;
  mqttsn::qos q = mqttsn::qos::at_most_once;
  bool retain = false;
  bool help = false;
  bool version = false;
};

void usage() {
  std::printf(
      "Usage: %s [options] {-t TOPIC | -T ID | -S NAME} {-m MESSAGE | -f FILE | -s | -l | -n}\n"
      "Publish to an MQTT-SN v1.2 gateway over UDP.\n\n"
      "Topic (one of):\n"
      "  -t, --topic TOPIC        topic name, REGISTERed first; a name of exactly two characters\n"
      "                           (no wildcards) is sent as a short topic name, as mqtt-sn-pub "
      "does\n"
      "  -T, --topic-id ID        predefined topic id (decimal or 0x-hex)\n"
      "  -S, --short NAME         short topic name (exactly two characters)\n"
      "Message (one of):\n"
      "  -m, --message TEXT       the payload\n"
      "  -f, --file FILE          the whole file as the payload\n"
      "  -s, --stdin-file         all of stdin as the payload\n"
      "  -l, --stdin-line         one message per line of stdin (blank lines are not sent)\n"
      "  -n, --null-message       an empty payload\n"
      "Publishing:\n"
      "  -q, --qos QOS            -1, 0, 1 or 2 (default 0); QoS -1 sends without CONNECT and "
      "needs\n"
      "                           -T or a short topic name\n"
      "  -1                       the same as -q -1\n"
      "  -r, --retain             retain the message\n"
      "%s"
      "\nExit status: 0 when everything was published (acknowledged for QoS 1/2), 1 otherwise.\n",
      program.c_str(), tools::cli::connection_usage());
}

options parse(int argc, char** argv) {
  options o;
  std::vector<::option> longs = {
      {"topic", required_argument, nullptr, 't'}, {"topic-id", required_argument, nullptr, 'T'},
      {"short", required_argument, nullptr, 'S'}, {"message", required_argument, nullptr, 'm'},
      {"file", required_argument, nullptr, 'f'},  {"stdin-file", no_argument, nullptr, 's'},
      {"stdin-line", no_argument, nullptr, 'l'},  {"null-message", no_argument, nullptr, 'n'},
      {"qos", required_argument, nullptr, 'q'},   {"retain", no_argument, nullptr, 'r'},
  };
  for (const auto& c : tools::cli::connection_long_options()) longs.push_back(c);
  longs.push_back({nullptr, 0, nullptr, 0});

  auto set_topic = [&o](tools::topic t, std::string text) {
    if (o.topic) throw usage_error("give one topic: -t, -T or -S");
    o.topic = std::move(t);
    o.topic_text = std::move(text);
  };
  auto set_source = [&o](source s) {
    if (o.from != source::none) throw usage_error("give one message: -m, -f, -s, -l or -n");
    o.from = s;
  };

  ::opterr = 0;
  int opt = 0;
  while ((opt = ::getopt_long(argc, argv, ":h:p:i:k:dt:T:S:m:f:slnq:1r", longs.data(), nullptr)) !=
         -1) {
    const char* arg = ::optarg;
    if (o.conn.take(opt, arg)) continue;
    switch (opt) {
      case 't':
        if (!mqttsn::is_valid_topic_name(arg)) {
          throw usage_error("bad topic name '" + std::string(arg) +
                            "' (no wildcards when publishing)");
        }
        set_topic(tools::cli::topic_for_name(arg), "'" + std::string(arg) + "'");
        break;
      case 'T':
        if (auto id = tools::cli::parse_topic_id(arg)) {
          set_topic(tools::predefined_topic{*id}, "predefined topic id " + std::to_string(*id));
        } else {
          throw usage_error("bad topic id '" + std::string(arg) + "' (1..65534)");
        }
        break;
      case 'S':
        if (std::strlen(arg) != 2 || !mqttsn::is_valid_topic_name(arg)) {
          throw usage_error("a short topic name has exactly two characters, not '" +
                            std::string(arg) + "'");
        }
        set_topic(tools::short_topic{arg}, "short topic '" + std::string(arg) + "'");
        break;
      case 'm':
        set_source(source::message);
        o.message = arg;
        break;
      case 'f':
        set_source(source::file);
        o.file = arg;
        break;
      case 's': set_source(source::stdin_all); break;
      case 'l': set_source(source::stdin_lines); break;
      case 'n': set_source(source::null); break;
      case 'q':
        if (auto q = tools::cli::parse_qos(arg, -1)) {
          o.q = *q;
        } else {
          throw usage_error("bad QoS '" + std::string(arg) + "' (-1, 0, 1 or 2)");
        }
        break;
      case '1': o.q = mqttsn::qos::minus_one; break;
      case 'r': o.retain = true; break;
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
  if (!o.topic) throw usage_error("no topic: give -t, -T or -S (see --help)");
  if (o.from == source::none)
    throw usage_error("no message: give -m, -f, -s, -l or -n (see --help)");
  if (o.q == mqttsn::qos::minus_one && std::holds_alternative<tools::topic_name>(*o.topic)) {
    throw usage_error("QoS -1 needs a predefined topic id (-T) or a short topic name (-S)");
  }
  o.conn.check();
  if (o.conn.client_id.empty()) o.conn.client_id = program + "-" + std::to_string(::getpid());
  return o;
}

std::string read_all(std::FILE* in, const std::string& what) {
  std::string data;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, in)) > 0) data.append(buf, n);
  if (std::ferror(in)) throw usage_error("cannot read " + what + ": " + std::strerror(errno));
  return data;
}

std::string read_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw usage_error("cannot read " + path + ": " + std::strerror(errno));
  try {
    std::string data = read_all(f, path);
    std::fclose(f);
    return data;
  } catch (...) {
    std::fclose(f);
    throw;
  }
}

int run(const options& o) {
  // Read the payload before talking to the gateway, so a bad file costs no connection.
  std::string payload;
  if (o.from == source::message) payload = o.message;
  if (o.from == source::file) payload = read_file(o.file);
  if (o.from == source::stdin_all) payload = read_all(stdin, "stdin");

  tools::client c(o.conn.host, o.conn.port, o.conn.options(program));
  const bool connected = o.q != mqttsn::qos::minus_one;
  if (connected) {
    const auto rc = c.connect(true, o.conn.will_message());
    if (rc != mqttsn::return_code::accepted) {
      throw tools::client_error("connection refused by " + c.peer() + ": " + tools::describe(rc));
    }
  }
  int status = 0;
  auto publish = [&](const std::string& data) {
    const auto rc = c.publish(*o.topic, data, o.q, o.retain);
    if (rc != mqttsn::return_code::accepted) {
      std::fprintf(stderr, "%s: publish to %s %s\n", program.c_str(), o.topic_text.c_str(),
                   tools::describe(rc).c_str());
      status = 1;
    }
    return rc == mqttsn::return_code::accepted;
  };
  switch (o.from) {
    case source::message:
    case source::file:
    case source::stdin_all:
    case source::null: publish(payload); break;
    case source::stdin_lines:
      for (std::string line; std::getline(std::cin, line);) {
        if (!line.empty() && !publish(line)) break;
      }
      break;
    case source::none: break;
  }
  if (connected) c.disconnect();
  return status;
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
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program.c_str(), e.what());
    return 1;
  }
}
