#include "tests/integration/serial_sim.hpp"

#include <signal.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <exception>
#include <iostream>
#include <mutex>
#include <stdexcept>

#include "tests/integration/harness.hpp"

#ifndef MQTTSN_SERIAL_SIM_BIN
#error "MQTTSN_SERIAL_SIM_BIN must name the simulator (tests/integration/CMakeLists.txt defines it)"
#endif

namespace itest {

namespace {

// The frames the traced clients sent and received, with their times, since the test began.
class client_trace {
 public:
  void add(const std::string& who, std::string_view line) {
    const std::string stamp = tools::wall_clock_stamp();
    const std::lock_guard lock(mutex_);
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    const std::string name = test != nullptr ? std::string(test->name()) : std::string();
    if (name != test_) {  // a new test: forget the last one's frames
      text_.clear();
      test_ = name;
    }
    text_ += stamp + ' ' + who + ": " + std::string(line) + '\n';
  }
  std::string text() const {
    const std::lock_guard lock(mutex_);
    return text_;
  }

 private:
  mutable std::mutex mutex_;
  std::string test_;
  std::string text_;
};

client_trace& trace() {
  static client_trace t;
  return t;
}

}  // namespace

serial_sim::serial_sim(const std::filesystem::path& dir, std::string framing, std::vector<std::string> extra)
    : link_((dir / "xbee0").string()),
      log_(dir / "sim.log"),
      framing_(std::move(framing)),
      extra_(std::move(extra)),
      port_(free_port(true)) {
  start();
}

serial_sim::~serial_sim() { unplug(); }

void serial_sim::start() {
  // --verbose: every frame with its time, for the failure report.
  std::vector<std::string> argv{MQTTSN_SERIAL_SIM_BIN, "--udp",  "127.0.0.1:" + std::to_string(port_),
                                "--link",              link_,    "--framing",
                                framing_,              "--baud", "115200",
                                "--verbose"};
  argv.insert(argv.end(), extra_.begin(), extra_.end());
  pid_ = spawn_process(argv, log_);
  const bool up = wait_until([&] { return std::filesystem::exists(link_); }, std::chrono::seconds(5)) &&
                  wait_until([&] { return log().find("udp ") != std::string::npos; }, std::chrono::seconds(5));
  if (!up) throw std::runtime_error("simulator did not start: " + log());
}

// udev removes /dev/serial/by-id links together with the device; a --link left dangling would
// be a trap: the kernel gives the freed pty number to the next pty anyone opens (another test's
// simulator, another developer's test run), and a gateway reopening the link would then read,
// and steal the frames of, a line that is not its own.
void serial_sim::unplug() {
  if (pid_ <= 0) return;
  std::error_code ec;
  std::filesystem::remove(link_, ec);
  stop_process(pid_, std::chrono::milliseconds(0));
  pid_ = -1;
}

void serial_sim::reboot() {
  if (pid_ > 0) ::kill(pid_, SIGUSR1);
}

std::string serial_sim::log() const { return read_file(log_); }

std::vector<std::string> serial_sim::gateway_args(std::vector<std::string> more) const {
  std::vector<std::string> args{"--serial",      link_,   "--serial-framing", framing_,
                                "--serial-baud", "115200", "--log-level",     "trace"};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

tools::client_options traced(tools::client_options options) {
  options.debug = [id = options.client_id](std::string_view line) { trace().add(id, line); };
  return options;
}

void print_serial_report(const gateway_process& gw, const serial_sim& sim) {
  std::cerr << "---- gateway log\n"
            << gw.log() << "---- simulator log (" << sim.framing() << ")\n"
            << sim.log() << "---- client frames\n"
            << trace().text() << "----\n";
}

report_on_failure::~report_on_failure() {
  // An exception on its way to gtest is a failure not recorded yet.
  if (::testing::Test::HasFailure() || std::uncaught_exceptions() > 0) print_serial_report(gw_, sim_);
}

}  // namespace itest
