// mqttsn-serial-sim as a child process for end-to-end tests over a serial line: an emulated XBee
// coordinator (API mode 1 or 2) or a raw-framed MCU bridge on a pty behind a stable link path,
// with MQTT-SN clients reaching it on a UDP port; the flags that point mqttsn-gateway at it; and
// a report of every process's log when a test fails.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "tests/integration/gateway_process.hpp"
#include "tools/client/mqttsn_client.hpp"

namespace itest {

class serial_sim {
 public:
  // Starts `mqttsn-serial-sim --framing FRAMING --baud 115200 --verbose <extra>` with its link
  // and log in `dir`, on a free loopback UDP port; waits until the pty exists (throws if not).
  serial_sim(const std::filesystem::path& dir, std::string framing, std::vector<std::string> extra = {});
  ~serial_sim();
  serial_sim(const serial_sim&) = delete;
  serial_sim& operator=(const serial_sim&) = delete;

  // Starts it again (a new pty behind the same link) after unplug().
  void start();
  // The pty vanishes as when a USB adapter is pulled: its link goes first, then SIGKILL.
  void unplug();
  // The emulated XBee reboots: modem status "hardware reset", then "coordinator started".
  void reboot();

  const std::string& link() const noexcept { return link_; }
  const std::string& framing() const noexcept { return framing_; }
  std::uint16_t port() const noexcept { return port_; }
  std::string log() const;
  // mqttsn-gateway flags for this line: --serial LINK --serial-framing F --serial-baud 115200,
  // trace logging (every frame, for the failure report), then `more`.
  std::vector<std::string> gateway_args(std::vector<std::string> more = {}) const;

 private:
  std::string link_;
  std::filesystem::path log_;
  std::string framing_;
  std::vector<std::string> extra_;
  std::uint16_t port_;
  pid_t pid_ = -1;
};

// Client options whose debug hook records every frame, with its time, for report_on_failure.
tools::client_options traced(tools::client_options options);

// Prints the gateway's log, the simulator's frame log and the traced clients' frames to stderr.
void print_serial_report(const gateway_process& gw, const serial_sim& sim);

// Declared after the gateway and the simulator: if the test has failed (or is leaving with an
// exception), prints the gateway's log, the simulator's frame log and the traced clients' frames,
// so that an intermittent failure can be explained from the one run that showed it.
class report_on_failure {
 public:
  report_on_failure(const gateway_process& gw, const serial_sim& sim) : gw_(gw), sim_(sim) {}
  ~report_on_failure();
  report_on_failure(const report_on_failure&) = delete;
  report_on_failure& operator=(const report_on_failure&) = delete;

 private:
  const gateway_process& gw_;
  const serial_sim& sim_;
};

}  // namespace itest
