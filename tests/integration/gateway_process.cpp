#include "tests/integration/gateway_process.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <sstream>
#include <stdexcept>

#include <gtest/gtest.h>

#include "tools/client/mqttsn_client.hpp"

namespace itest {

namespace {

std::size_t count_of(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace

gateway_process::gateway_process(const std::string& broker_uri, std::vector<std::string> extra_args, std::string udp,
                                 bool wait_for_broker)
    : dir_("mqttsn-gw") {
  log_path_ = (dir_.path() / "gateway.log").string();
  if (udp.empty()) {
    port_ = free_port(true);
    udp = "127.0.0.1:" + std::to_string(port_);
  } else {
    const auto colon = udp.rfind(':');
    port_ = static_cast<std::uint16_t>(std::stoi(udp.substr(colon + 1)));
    host_ = udp.substr(0, colon);
    if (host_.size() > 2 && host_.front() == '[') host_ = host_.substr(1, host_.size() - 2);
  }
  std::vector<std::string> args{MQTTSN_GATEWAY_BIN, "--broker", broker_uri, "--udp", udp, "--stats-interval", "0"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  // Killed with the test process even if a test crashes: no stray daemons, no inherited sockets.
  pid_ = spawn_process(args, log_path_);

  // Ready: connected to the broker, and answering on its UDP port.
  const bool connected = !wait_for_broker || wait_until([&] { return log_contains("upstream: connected") || log_contains("connected to broker"); },
                                    std::chrono::seconds(10));
  if (!connected) {
    const std::string text = log();
    stop();
    throw std::runtime_error("gateway did not connect to the broker; its log:\n" + text);
  }
  tools::client probe(host_, port_, tools::client_options{"probe", 0, std::chrono::milliseconds(200), 10, {}});
  if (!probe.searchgw(0, std::chrono::seconds(5))) {
    const std::string text = log();
    stop();
    throw std::runtime_error("gateway does not answer SEARCHGW; its log:\n" + text);
  }
}

gateway_process::~gateway_process() {
  if (pid_ > 0) stop(std::chrono::seconds(5));
}

std::string gateway_process::log() const { return read_file(log_path_); }

std::map<std::string, std::uint64_t> gateway_process::stats() {
  if (pid_ <= 0) throw std::runtime_error("gateway is not running");
  const std::size_t before = count_of(log(), "stats: ");
  ::kill(pid_, SIGUSR1);
  std::string text;
  if (!wait_until([&] { return count_of(text = log(), "stats: ") > before; }, std::chrono::seconds(5))) {
    throw std::runtime_error("no stats line after SIGUSR1");
  }
  const auto at = text.rfind("stats: ");
  const auto end = text.find('\n', at);
  std::istringstream line(text.substr(at + 7, end - at - 7));
  std::map<std::string, std::uint64_t> result;
  std::string field;
  while (line >> field) {
    const auto eq = field.find('=');
    if (eq == std::string::npos) continue;
    try {
      result[field.substr(0, eq)] = std::stoull(field.substr(eq + 1));
    } catch (const std::exception&) {
      result[field.substr(0, eq)] = field.substr(eq + 1) == "up" ? 1 : 0;  // broker=up|down
    }
  }
  return result;
}

int gateway_process::stop(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  const int status = stop_process(pid_, timeout);
  pid_ = -1;
  // In the sanitizer build the daemon reports leaks (at exit) and errors on stderr, i.e. in its
  // log: that fails the test that ran it, whatever the test itself checks.
  const std::string text = log();
  for (const char* marker : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"}) {
    if (const auto at = text.find(marker); at != std::string::npos) {
      ADD_FAILURE() << "mqttsn-gateway (its log) reports: " << text.substr(at, 4000);
      break;
    }
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace itest
