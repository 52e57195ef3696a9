// mqttsn-serial-sim: a serial device without hardware. Creates a pty, prints its slave path (and
// points --link PATH at it), and plays an XBee coordinator in API mode 1 or 2 or a raw-framed MCU
// bridge on the master side. Its sensors are UDP peers of --udp (loopback only): each peer gets its
// own 64-bit XBee source address, derived from its address and port so that it stays the same when
// the simulator is restarted (unplug/replug tests). A pty ignores the baud rate, so output to the
// gateway is paced at 10 bits per byte of --baud.
//
//   mqttsn-serial-sim --udp 127.0.0.1:20000 --link /tmp/xbee0 [--framing xbee-api2] [--baud 9600]
//   mqttsn-gateway --serial /tmp/xbee0 --serial-framing xbee-api2
//   mqttsn-pub -h 127.0.0.1 -p 20000 -t test -m hello
#include <fcntl.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "transports/framing/raw.hpp"
#include "transports/framing/xbee_api.hpp"
#include "tools/client/mqttsn_client.hpp"

namespace {

namespace asio = boost::asio;
namespace fr = transports::framing;
using asio::ip::udp;

enum class framing : std::uint8_t { api1, api2, raw };

struct options {
  framing f = framing::api2;
  udp::endpoint listen;
  std::string link;
  unsigned baud = 9600;
  std::optional<unsigned> ap;  // what AT AP answers; default: the framing's mode
  bool answer_at = true;
  unsigned np = 255;
  bool raw_fe = false;  // raw: wrap each sensor's frames in forwarder encapsulation (node id)
  bool verbose = false;  // one timestamped line per frame, both directions, on stdout
};

constexpr const char* usage =
    "Usage: mqttsn-serial-sim --udp 127.0.0.1:PORT [--link PATH] [--framing xbee-api1|xbee-api2|raw]\n"
    "                         [--baud N] [--ap N] [--no-at] [--np N] [--raw-fe] [--verbose]\n"
    "Emulates an XBee coordinator (API mode 1 or 2) or a raw-framed serial device on a new pty and\n"
    "bridges it to UDP: every UDP peer of --udp is a sensor with its own 64-bit address.\n"
    "  --udp HOST:PORT   loopback address to listen on for MQTT-SN clients (required)\n"
    "  --link PATH       also make PATH a symlink to the pty (replaced if it exists; removed on exit)\n"
    "  --framing F       xbee-api2 (default), xbee-api1 or raw\n"
    "  --baud N          pace output to the gateway at N/10 bytes per second (default 9600)\n"
    "  --ap N            value to answer to AT AP (default: the framing's mode; 0 = transparent)\n"
    "  --no-at           do not answer AT commands (like a module that never replies)\n"
    "  --np N            value to answer to AT NP (default 255)\n"
    "  --raw-fe          raw: carry each sensor in forwarder encapsulation (several per line)\n"
    "  --verbose         print every frame on the line and every datagram, with the time, in hex\n"
    "SIGUSR1 (XBee framings): the radio reboots: modem status 0x8A 00 (hardware reset), then 06.\n";

std::optional<unsigned> number(const char* text) {
  unsigned v = 0;
  const auto* end = text + std::strlen(text);
  const auto [p, ec] = std::from_chars(text, end, v);
  if (ec != std::errc{} || p != end) return std::nullopt;
  return v;
}

[[noreturn]] void die(const std::string& message) {
  std::cerr << "mqttsn-serial-sim: " << message << '\n';
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  bool have_udp = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) die(a + ": needs a value");
      return argv[++i];
    };
    if (a == "--help") {
      std::cout << usage;
      std::exit(0);
    } else if (a == "--udp") {
      const std::string v = value();
      const auto colon = v.rfind(':');
      boost::system::error_code ec;
      const auto address = asio::ip::make_address(v.substr(0, colon == std::string::npos ? 0 : colon), ec);
      const auto port = colon == std::string::npos ? std::nullopt : number(v.c_str() + colon + 1);
      if (ec || !port || *port > 65535) die("--udp: '" + v + "' is not IPV4:PORT");
      if (!address.is_loopback()) die("--udp: '" + v + "' is not a loopback address (the simulator stays local)");
      o.listen = udp::endpoint(address, static_cast<std::uint16_t>(*port));
      have_udp = true;
    } else if (a == "--link") {
      o.link = value();
    } else if (a == "--framing") {
      const std::string v = value();
      if (v == "xbee-api1") {
        o.f = framing::api1;
      } else if (v == "xbee-api2") {
        o.f = framing::api2;
      } else if (v == "raw") {
        o.f = framing::raw;
      } else {
        die("--framing: '" + v + "' is not one of xbee-api1, xbee-api2 or raw");
      }
    } else if (a == "--baud") {
      const auto v = number(value());
      if (!v || *v < 300 || *v > 4'000'000) die("--baud: not in 300..4000000");
      o.baud = *v;
    } else if (a == "--ap") {
      const auto v = number(value());
      if (!v || *v > 2) die("--ap: not in 0..2");
      o.ap = *v;
    } else if (a == "--np") {
      const auto v = number(value());
      if (!v || *v < 1 || *v > 65535) die("--np: not in 1..65535");
      o.np = *v;
    } else if (a == "--no-at") {
      o.answer_at = false;
    } else if (a == "--raw-fe") {
      o.raw_fe = true;
    } else if (a == "--verbose") {
      o.verbose = true;
    } else {
      die(a + ": unknown option (see --help)");
    }
  }
  if (!have_udp) die("--udp HOST:PORT is required (see --help)");
  return o;
}

class simulator {
 public:
  simulator(asio::io_context& io, options o)
      : io_(io), o_(std::move(o)), master_(io), socket_(io, o_.listen), pace_(io), xbee_(mode()), raw_(65535) {
    const int m = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0 || ::grantpt(m) != 0 || ::unlockpt(m) != 0) die(std::string("cannot create a pty: ") + std::strerror(errno));
    char name[256] = {};
    if (::ptsname_r(m, name, sizeof name) != 0) die("ptsname failed");
    slave_name_ = name;
    // Hold the slave open in raw mode: the master then never reads EIO while the gateway is away,
    // and nothing echoes before the gateway sets its own modes.
    slave_ = ::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave_ < 0) die(std::string("cannot open ") + name + ": " + std::strerror(errno));
    termios t{};
    ::tcgetattr(slave_, &t);
    ::cfmakeraw(&t);
    ::tcsetattr(slave_, TCSANOW, &t);
    master_.assign(m);
    if (!o_.link.empty()) {
      std::error_code ec;
      std::filesystem::remove(o_.link, ec);
      std::filesystem::create_symlink(slave_name_, o_.link, ec);
      if (ec) die("--link " + o_.link + ": " + ec.message());
    }
    std::cout << "pty " << slave_name_ << '\n';
    if (!o_.link.empty()) std::cout << "link " << o_.link << '\n';
    std::cout << "udp " << socket_.local_endpoint() << '\n' << std::flush;
  }

  ~simulator() {
    if (!o_.link.empty()) {
      std::error_code ec;
      // Only our own link: a newer simulator may have re-pointed it.
      if (std::filesystem::read_symlink(o_.link, ec) == slave_name_) std::filesystem::remove(o_.link, ec);
    }
    if (slave_ >= 0) ::close(slave_);
  }

  void start() {
    read_line();
    read_udp();
  }

  // SIGUSR1 (XBee framings): the radio "reboots", as after a brown-out: modem status 0x8A 00
  // (hardware reset), then 0x8A 06 (coordinator started).
  void reboot() {
    if (o_.f == framing::raw) return;
    for (const std::uint8_t status : {fr::xbee_modem_hardware_reset, fr::xbee_modem_coordinator_started}) {
      to_line(fr::encode_frame(fr::bytes{fr::xbee_type::modem_status, status}, mode()));
    }
  }

  void report() const {
    std::cerr << "mqttsn-serial-sim: to gateway " << frames_to_line_ << " frames " << bytes_to_line_
              << " bytes; from gateway " << frames_from_line_ << " frames " << bytes_from_line_ << " bytes\n";
  }

 private:
  // --verbose: "12:34:56.789 what: 7E 00 ..." on stdout (the test harness keeps it as the log).
  void trace(std::string_view what, std::span<const std::uint8_t> data) const {
    if (!o_.verbose) return;
    std::cout << tools::wall_clock_stamp() << ' ' << what << " (" << data.size() << "): " << tools::to_hex(data) << '\n' << std::flush;
  }

  fr::xbee_mode mode() const { return o_.f == framing::api1 ? fr::xbee_mode::api1 : fr::xbee_mode::api2; }

  std::uint64_t address_of(const udp::endpoint& ep) {
    std::uint64_t low = ep.port();
    if (ep.address().is_v4()) low |= std::uint64_t{ep.address().to_v4().to_bytes()[3]} << 16;
    const std::uint64_t a = 0x0013A20000000000ULL | 0x40000000ULL | low;
    if (!peers_.contains(a)) std::cout << "sensor " << ep << " = " << fr::format_address64(a) << '\n' << std::flush;
    peers_[a] = ep;
    return a;
  }

  void read_udp() {
    socket_.async_receive_from(asio::buffer(udp_buffer_), sender_, [this](boost::system::error_code ec, std::size_t n) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec && n > 0) from_sensor(std::span<const std::uint8_t>(udp_buffer_.data(), n));
      read_udp();
    });
  }

  void from_sensor(std::span<const std::uint8_t> frame) {
    const auto a = address_of(sender_);
    trace("udp in from " + sender_.address().to_string() + ':' + std::to_string(sender_.port()), frame);
    if (o_.f == framing::raw) {
      last_raw_peer_ = sender_;
      if (o_.raw_fe) {
        const auto node = static_cast<std::uint16_t>(a & 0xFFFF);
        fr::bytes wrapped{5, 0xFE, 0x00, static_cast<std::uint8_t>(node >> 8), static_cast<std::uint8_t>(node)};
        wrapped.insert(wrapped.end(), frame.begin(), frame.end());
        to_line(std::move(wrapped));
      } else {
        to_line(fr::bytes(frame.begin(), frame.end()));
      }
      return;
    }
    fr::bytes data{fr::xbee_type::receive_packet};
    for (int shift = 56; shift >= 0; shift -= 8) data.push_back(static_cast<std::uint8_t>(a >> shift));
    const auto a16 = static_cast<std::uint16_t>((a & 0x7FFF) | 0x0001);
    data.push_back(static_cast<std::uint8_t>(a16 >> 8));
    data.push_back(static_cast<std::uint8_t>(a16));
    data.push_back(fr::xbee_rx_acknowledged);
    data.insert(data.end(), frame.begin(), frame.end());
    to_line(fr::encode_frame(data, mode()));
  }

  // The address encodes the sensor's loopback address and port (address_of), so a restarted
  // simulator reaches sensors it has not heard from yet, as a real mesh routes to any joined node.
  std::optional<udp::endpoint> endpoint_of(std::uint64_t a) const {
    if (const auto it = peers_.find(a); it != peers_.end()) return it->second;
    if ((a & 0xFFFFFFFFFF000000ULL) != 0x0013A20040000000ULL || !o_.listen.address().is_v4()) return std::nullopt;
    auto bytes = o_.listen.address().to_v4().to_bytes();
    bytes[3] = static_cast<std::uint8_t>(a >> 16);
    return udp::endpoint(asio::ip::address_v4(bytes), static_cast<std::uint16_t>(a));
  }

  bool to_sensor(std::uint64_t a, std::span<const std::uint8_t> payload) {
    const auto ep = endpoint_of(a);
    if (!ep) return false;
    boost::system::error_code ec;
    socket_.send_to(asio::buffer(payload.data(), payload.size()), *ep, 0, ec);
    trace("udp out to " + ep->address().to_string() + ':' + std::to_string(ep->port()) +
              (ec ? " failed: " + ec.message() : std::string()),
          payload);
    return true;
  }

  // Output to the gateway, paced at 10 bits per byte of --baud. A UART shifts queued bytes out
  // back to back, so the pacing follows a line clock (when the line finishes the bytes written so
  // far) instead of sleeping after each frame: a timer that wakes late (a loaded machine) makes
  // the next write larger, not the line slower. Frames queued meanwhile go out in one write, of
  // at most ~10 ms of line time (a USB serial adapter hands bytes over in such chunks too).
  void to_line(fr::bytes wire) {
    ++frames_to_line_;
    out_.push_back(std::move(wire));
    pump();
  }

  std::chrono::nanoseconds line_time(std::size_t bytes) const {
    return std::chrono::nanoseconds(static_cast<std::int64_t>(bytes) * 10'000'000'000LL / o_.baud);
  }

  void pump() {
    if (writing_ || out_.empty()) return;
    writing_ = true;
    const auto now = std::chrono::steady_clock::now();
    if (line_free_ < now) line_free_ = now;  // an idle line does not bank time
    const std::size_t chunk = std::max<std::size_t>(o_.baud / 1000, 1);  // ~10 ms of line time
    batch_.clear();
    while (!out_.empty() && (batch_.empty() || batch_.size() + out_.front().size() <= chunk)) {
      trace("line out", out_.front());
      batch_.insert(batch_.end(), out_.front().begin(), out_.front().end());
      out_.pop_front();
    }
    asio::async_write(master_, asio::buffer(batch_), [this](boost::system::error_code ec, std::size_t n) {
      if (ec) {
        std::cerr << "mqttsn-serial-sim: write: " << ec.message() << '\n';
        io_.stop();
        return;
      }
      bytes_to_line_ += n;
      line_free_ += line_time(n);
      pace_.expires_at(line_free_);
      pace_.async_wait([this](boost::system::error_code) {
        writing_ = false;
        pump();
      });
    });
  }

  void read_line() {
    master_.async_read_some(asio::buffer(line_buffer_), [this](boost::system::error_code ec, std::size_t n) {
      if (ec) {
        std::cerr << "mqttsn-serial-sim: read: " << ec.message() << '\n';
        io_.stop();
        return;
      }
      bytes_from_line_ += n;
      const std::span<const std::uint8_t> data(line_buffer_.data(), n);
      trace("line in", data);
      std::vector<fr::bytes> frames;
      if (o_.f == framing::raw) {
        raw_.feed(data, frames);
        for (const auto& f : frames) from_gateway_raw(f);
      } else {
        xbee_.feed(data, frames);
        for (const auto& f : frames) from_gateway_api(f);
      }
      read_line();
    });
  }

  void from_gateway_raw(const fr::bytes& f) {
    ++frames_from_line_;
    if (o_.raw_fe && f.size() >= 5 && f[1] == 0xFE && f[0] >= 5 && f[0] < f.size()) {
      const std::uint64_t node = (std::uint64_t{f[3]} << 8) | f[4];
      for (const auto& [a, ep] : peers_) {
        if ((a & 0xFFFF) == node) to_sensor(a, std::span<const std::uint8_t>(f).subspan(f[0]));
      }
      return;
    }
    if (last_raw_peer_) {
      boost::system::error_code ec;
      socket_.send_to(asio::buffer(f), *last_raw_peer_, 0, ec);
      trace("udp out to " + last_raw_peer_->address().to_string() + ':' + std::to_string(last_raw_peer_->port()), f);
    }
  }

  void from_gateway_api(const fr::bytes& f) {
    ++frames_from_line_;
    if (f.empty()) return;
    if (f[0] == fr::xbee_type::at_command && f.size() >= 4) {
      if (!o_.answer_at) return;
      const std::uint8_t id = f[1];
      const std::array<char, 2> cmd{static_cast<char>(f[2]), static_cast<char>(f[3])};
      fr::bytes value;
      std::uint8_t status = fr::xbee_at_ok;
      const std::string c(cmd.data(), 2);
      if (c == "AP") {
        value = {static_cast<std::uint8_t>(o_.ap.value_or(o_.f == framing::api1 ? 1u : 2u))};
      } else if (c == "SH") {
        value = {0x00, 0x13, 0xA2, 0x00};
      } else if (c == "SL") {
        value = {0x40, 0x00, 0x00, 0x01};
      } else if (c == "NP") {
        value = {static_cast<std::uint8_t>(o_.np >> 8), static_cast<std::uint8_t>(o_.np)};
      } else {
        status = fr::xbee_at_invalid_command;
      }
      fr::bytes data{fr::xbee_type::at_response, id, f[2], f[3], status};
      data.insert(data.end(), value.begin(), value.end());
      to_line(fr::encode_frame(data, mode()));
      return;
    }
    if (f[0] != fr::xbee_type::transmit_request || f.size() < 14) return;
    const std::uint8_t id = f[1];
    std::uint64_t dest = 0;
    for (std::size_t i = 2; i < 10; ++i) dest = (dest << 8) | f[i];
    const auto payload = std::span<const std::uint8_t>(f).subspan(14);
    std::uint8_t status = fr::xbee_delivery_success;
    std::uint16_t to16 = 0xFFFD;
    if (payload.size() > o_.np) {
      status = 0x74;  // payload too large
    } else if (dest == fr::xbee_broadcast_address64) {
      for (const auto& [a, ep] : peers_) to_sensor(a, payload);
      to16 = 0xFFFE;
    } else if (to_sensor(dest, payload)) {
      to16 = static_cast<std::uint16_t>((dest & 0x7FFF) | 0x0001);
    } else {
      status = 0x24;  // address not found
    }
    if (id != 0) {
      const fr::bytes data{fr::xbee_type::transmit_status, id, static_cast<std::uint8_t>(to16 >> 8),
                           static_cast<std::uint8_t>(to16), 0, status, 0};
      to_line(fr::encode_frame(data, mode()));
    }
  }

  asio::io_context& io_;
  options o_;
  asio::posix::stream_descriptor master_;
  int slave_ = -1;
  std::string slave_name_;
  udp::socket socket_;
  udp::endpoint sender_;
  std::optional<udp::endpoint> last_raw_peer_;
  asio::steady_timer pace_;
  fr::xbee_deframer xbee_;
  fr::raw_deframer raw_;
  std::array<std::uint8_t, 65536> udp_buffer_{};
  std::array<std::uint8_t, 4096> line_buffer_{};
  std::deque<fr::bytes> out_;
  fr::bytes batch_;  // what is being written
  std::chrono::steady_clock::time_point line_free_{};  // when the line has sent all written so far
  bool writing_ = false;
  std::map<std::uint64_t, udp::endpoint> peers_;
  std::uint64_t frames_to_line_ = 0, bytes_to_line_ = 0, frames_from_line_ = 0, bytes_from_line_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const auto o = parse(argc, argv);
  asio::io_context io(1);
  // Signals first: the simulator says it is ready ("udp ...") as soon as it is constructed.
  std::optional<simulator> sim;
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code, int) { io.stop(); });
  asio::signal_set reboots(io, SIGUSR1);
  std::function<void()> on_reboot = [&] {
    reboots.async_wait([&](boost::system::error_code ec, int) {
      if (ec) return;
      sim->reboot();
      on_reboot();
    });
  };
  on_reboot();
  try {
    sim.emplace(io, o);
  } catch (const std::exception& e) {
    die(std::string("--udp: ") + e.what());
  }
  sim->start();
  io.run();
  sim->report();
  return 0;
}
