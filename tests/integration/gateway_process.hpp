// The real mqttsn-gateway binary as a child process, for end-to-end tests: started with the given
// flags on a free loopback UDP port, its log captured to a file, its counters read from the stats
// line it logs on SIGUSR1, stopped with SIGTERM (killed if it hangs). Never leaves a process behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tests/integration/harness.hpp"

namespace itest {

class gateway_process {
 public:
  // Starts `mqttsn-gateway --broker BROKER --udp 127.0.0.1:PORT --stats-interval 0 <extra>` and
  // waits until it is connected to the broker and answers SEARCHGW. With `udp` given, that
  // listen address is used instead (e.g. "[::1]:PORT").
  // With `wait_for_broker` false it only waits for the SEARCHGW answer (a gateway that cannot
  // reach its broker still serves SEARCHGW).
  gateway_process(const std::string& broker_uri, std::vector<std::string> extra_args = {}, std::string udp = {},
                  bool wait_for_broker = true);
  ~gateway_process();
  gateway_process(const gateway_process&) = delete;
  gateway_process& operator=(const gateway_process&) = delete;

  std::uint16_t port() const noexcept { return port_; }
  const std::string& host() const noexcept { return host_; }

  // SIGUSR1, then the counters of the stats line it logs ("key=value ..."), as numbers where they are.
  std::map<std::string, std::uint64_t> stats();
  std::uint64_t stat(const std::string& key) { return stats()[key]; }

  // What the gateway has logged so far.
  std::string log() const;
  bool log_contains(const std::string& text) const { return log().find(text) != std::string::npos; }

  // SIGTERM and wait (bounded); the exit status, or -1 if it had to be killed.
  int stop(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  bool running() const noexcept { return pid_ > 0; }
  pid_t pid() const noexcept { return pid_; }

 private:
  temp_dir dir_;
  std::string host_ = "127.0.0.1";
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
  std::string log_path_;
  std::size_t stats_seen_ = 0;
};

}  // namespace itest
