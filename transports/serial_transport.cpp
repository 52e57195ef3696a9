#include "transports/serial_transport.hpp"

#include <fcntl.h>
#include <libserialport.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>
#include <spdlog/spdlog.h>

namespace transports {

namespace asio = boost::asio;
namespace fr = framing;

namespace {

constexpr std::size_t max_queued_bytes = 64 * 1024;
// 0x91 carries 18 bytes of frame data before the RF data; the deframer accepts a little more than
// the payload limit so an oversize frame is dropped by us, with a log, not silently as garbage.
constexpr std::size_t api_overhead = 18;
constexpr std::string_view raw_endpoint = "line";
constexpr std::uint8_t at_frame_id_base = 0xA0;

std::optional<speed_t> to_speed(unsigned baud) {
  switch (baud) {
    case 1200: return B1200;
    case 2400: return B2400;
    case 4800: return B4800;
    case 9600: return B9600;
    case 19200: return B19200;
    case 38400: return B38400;
    case 57600: return B57600;
    case 115200: return B115200;
    case 230400: return B230400;
    case 460800: return B460800;
    case 921600: return B921600;
    default: return std::nullopt;
  }
}

std::string sp_error() {
  char* m = sp_last_error_message();
  std::string s = m != nullptr ? m : "unknown error";
  sp_free_error_message(m);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// Non-canonical reads that block for at least one byte: with VMIN=0 a read on an idle line returns
// 0, which Asio reports as end of file (SERIAL.md (e)).
bool set_vmin1(int fd, std::string& error) {
  termios t{};
  if (::tcgetattr(fd, &t) != 0) {
    error = std::string("tcgetattr: ") + std::strerror(errno);
    return false;
  }
  t.c_cc[VMIN] = 1;
  t.c_cc[VTIME] = 0;
  if (::tcsetattr(fd, TCSANOW, &t) != 0) {
    error = std::string("tcsetattr: ") + std::strerror(errno);
    return false;
  }
  return true;
}

std::uint64_t big_endian(std::span<const std::uint8_t> v) {
  std::uint64_t x = 0;
  for (const auto b : v) x = (x << 8) | b;
  return x;
}

}  // namespace

const char* to_string(serial_framing_kind framing) noexcept {
  switch (framing) {
    case serial_framing_kind::xbee_api1: return "xbee-api1";
    case serial_framing_kind::xbee_api2: return "xbee-api2";
    case serial_framing_kind::raw: return "raw";
  }
  return "?";
}

const char* to_string(serial_flow_kind flow) noexcept {
  switch (flow) {
    case serial_flow_kind::none: return "none";
    case serial_flow_kind::rtscts: return "rtscts";
    case serial_flow_kind::xonxoff: return "xonxoff";
  }
  return "?";
}

serial_transport::serial_transport(asio::io_context& io, std::string prefix, serial_options options)
    : prefix_(std::move(prefix)),
      options_(std::move(options)),
      frame_limit_(options_.max_frame_size),
      // A frame's bytes are never further apart than this: 32 byte times, at least 100 ms.
      idle_gap_(std::max<std::chrono::milliseconds>(
          std::chrono::milliseconds(100),
          std::chrono::milliseconds(32 * 10 * 1000 / std::max(options_.baud, 1u)))),
      port_(io),
      reopen_timer_(io),
      idle_timer_(io),
      at_timer_(io),
      backoff_(options_.reopen_initial) {
  if (options_.framing == serial_framing_kind::raw) {
    raw_.emplace(options_.max_frame_size + 32);
  } else {
    xbee_.emplace(mode(), options_.max_frame_size + api_overhead);
  }
}

serial_transport::~serial_transport() { close_device(); }

fr::xbee_mode serial_transport::mode() const noexcept {
  return options_.framing == serial_framing_kind::xbee_api1 ? fr::xbee_mode::api1 : fr::xbee_mode::api2;
}

std::uint8_t serial_transport::next_frame_id() noexcept {
  if (++frame_id_ == 0) frame_id_ = 1;
  return frame_id_;
}

void serial_transport::start(frame_handler on_frame) {
  on_frame_ = std::move(on_frame);
  started_ = true;
  try_open();
}

// ---------------------------------------------------------------------------------------------
// Opening, closing, reopening

bool serial_transport::open_device(std::string& error) {
  const auto facts = probe_serial_device(options_.device, error);
  if (!facts) return false;
  const auto path = choose_open_path(*facts);
  const auto speed = to_speed(options_.baud);
  if (!speed) {
    error = "unsupported baud rate " + std::to_string(options_.baud);
    return false;
  }
  int fd = -1;
  if (path == serial_open_path::libserialport) {
    sp_port* sp = nullptr;
    if (sp_get_port_by_name(facts->resolved.c_str(), &sp) != SP_OK) {
      error = "libserialport: " + sp_error();
      return false;
    }
    const auto flow = options_.flow == serial_flow_kind::rtscts    ? SP_FLOWCONTROL_RTSCTS
                      : options_.flow == serial_flow_kind::xonxoff ? SP_FLOWCONTROL_XONXOFF
                                                                   : SP_FLOWCONTROL_NONE;
    const char* step = "sp_open";
    bool ok = sp_open(sp, SP_MODE_READ_WRITE) == SP_OK;
    if (ok) {
      step = "configure";
      ok = sp_set_baudrate(sp, static_cast<int>(options_.baud)) == SP_OK && sp_set_bits(sp, 8) == SP_OK &&
           sp_set_parity(sp, SP_PARITY_NONE) == SP_OK && sp_set_stopbits(sp, 1) == SP_OK &&
           sp_set_flowcontrol(sp, flow) == SP_OK;
      if (ok) ok = sp_get_port_handle(sp, &fd) == SP_OK;
      if (!ok) sp_close(sp);
    }
    if (!ok) {
      error = std::string("libserialport ") + step + ": " + sp_error();
      sp_free_port(sp);
      return false;
    }
    if (!set_vmin1(fd, error)) {
      sp_close(sp);
      sp_free_port(sp);
      return false;
    }
    // The descriptor Asio owns is a duplicate; libserialport keeps its own until close_device().
    const int dup_fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) {
      error = std::string("dup: ") + std::strerror(errno);
      sp_close(sp);
      sp_free_port(sp);
      return false;
    }
    sp_ = sp;
    fd = dup_fd;
  } else {
    fd = ::open(facts->resolved.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      error = std::strerror(errno);
      return false;
    }
    termios t{};
    if (::tcgetattr(fd, &t) != 0) {
      error = std::string("not a terminal (tcgetattr: ") + std::strerror(errno) + ")";
      ::close(fd);
      return false;
    }
    ::cfmakeraw(&t);
    t.c_cflag |= CLOCAL | CREAD;
    t.c_cflag &= ~static_cast<tcflag_t>(CSTOPB | PARENB | CRTSCTS);
    t.c_iflag &= ~static_cast<tcflag_t>(IXON | IXOFF | IXANY);
    if (options_.flow == serial_flow_kind::rtscts) t.c_cflag |= CRTSCTS;
    if (options_.flow == serial_flow_kind::xonxoff) t.c_iflag |= IXON | IXOFF;
    ::cfsetispeed(&t, *speed);
    ::cfsetospeed(&t, *speed);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    if (::tcsetattr(fd, TCSANOW, &t) != 0) {
      error = std::string("tcsetattr: ") + std::strerror(errno);
      ::close(fd);
      return false;
    }
  }
  boost::system::error_code ec;
  port_.assign(fd, ec);
  if (ec) {
    ::close(fd);
    close_device();
    error = ec.message();
    return false;
  }
  spdlog::info("{}: opened {}{} via {}, {} baud 8N1, flow {}, framing {}", prefix_, options_.device,
               facts->resolved == options_.device ? std::string() : " (" + facts->resolved + ")", to_string(path),
               options_.baud, to_string(options_.flow), to_string(options_.framing));
  return true;
}

void serial_transport::close_device() {
  ++generation_;
  boost::system::error_code ec;
  port_.close(ec);
  if (sp_ != nullptr) {
    sp_close(sp_);
    sp_free_port(sp_);
    sp_ = nullptr;
  }
  idle_timer_.cancel();
  at_timer_.cancel();
  at_pending_.clear();
  queue_.clear();
  queued_bytes_ = 0;
  writing_ = false;
  pending_tx_.clear();
  if (xbee_) xbee_->reset();
  if (raw_) raw_->reset();
}

void serial_transport::try_open() {
  if (stopped_ || fatal_) return;
  std::string error;
  if (!open_device(error)) {
    ++stats_.open_failures;
    ++failed_opens_;
    if (!down_logged_) {
      spdlog::warn("{}: cannot open {}: {}; retrying in {} s, backing off to {} s (logged once)", prefix_,
                   options_.device, error, std::chrono::duration<double>(backoff_).count(),
                   std::chrono::duration<double>(options_.reopen_max).count());
      down_logged_ = true;
    } else {
      spdlog::debug("{}: reopen {} failed: {}", prefix_, options_.device, error);
    }
    schedule_reopen();
    return;
  }
  ++stats_.opens;
  if (down_logged_ && failed_opens_ > 0) {
    spdlog::info("{}: {} is back after {} failed attempt(s)", prefix_, options_.device, failed_opens_);
  }
  down_logged_ = false;
  failed_opens_ = 0;
  read();
  if (xbee_) query_module();
}

void serial_transport::schedule_reopen() {
  reopen_timer_.expires_after(backoff_);
  backoff_ = std::min(backoff_ * 2, options_.reopen_max);
  reopen_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_) return;
    try_open();
  });
}

void serial_transport::link_down(const std::string& why) {
  if (stopped_) return;
  ++stats_.link_losses;
  close_device();
  if (!down_logged_) {
    spdlog::warn("{}: lost {} ({}); sessions kept, reopening with backoff (logged once)", prefix_,
                 options_.device, why);
    down_logged_ = true;
  }
  schedule_reopen();
}

void serial_transport::fatal(const std::string& message) {
  fatal_ = true;
  close_device();
  reopen_timer_.cancel();
  if (options_.on_fatal) {
    options_.on_fatal(message);
  } else {
    spdlog::error("{}", message);
  }
}

// ---------------------------------------------------------------------------------------------
// Reading

void serial_transport::read() {
  const auto gen = generation_;
  port_.async_read_some(asio::buffer(read_buffer_), [this, gen](boost::system::error_code ec, std::size_t n) {
    if (stopped_ || gen != generation_) return;
    if (ec) {
      link_down(ec == asio::error::eof ? std::string("end of file: device gone") : ec.message());
      return;
    }
    // Data flowed: the link works, so the next loss starts the backoff afresh.
    backoff_ = options_.reopen_initial;
    stats_.bytes_in += n;
    on_bytes(std::span<const std::uint8_t>(read_buffer_.data(), n));
    if (gen == generation_) read();
  });
}

void serial_transport::on_bytes(std::span<const std::uint8_t> data) {
  std::vector<fr::bytes> frames;
  if (xbee_) {
    xbee_->feed(data, frames);
  } else {
    raw_->feed(data, frames);
  }
  process(frames);
  arm_idle();
}

void serial_transport::process(std::vector<fr::bytes>& frames) {
  const auto gen = generation_;
  for (const auto& f : frames) {
    if (stopped_ || gen != generation_) return;
    if (xbee_) {
      handle_api_frame(f);
    } else {
      handle_raw_frame(f);
    }
  }
}

void serial_transport::arm_idle() {
  const bool partial = xbee_ ? xbee_->mid_frame() : raw_->mid_frame();
  if (!partial) {
    idle_timer_.cancel();
    return;
  }
  const auto gen = generation_;
  idle_timer_.expires_after(idle_gap_);
  idle_timer_.async_wait([this, gen](boost::system::error_code ec) {
    if (ec || stopped_ || gen != generation_) return;
    // A handler already queued when more bytes re-armed (or cancelled) the timer still runs with
    // success: only the current wait, with a frame still partial, may drop anything.
    if (idle_timer_.expiry() > boost::asio::steady_timer::clock_type::now()) return;
    if (!(xbee_ ? xbee_->mid_frame() : raw_->mid_frame())) return;
    std::vector<fr::bytes> frames;
    if (xbee_) {
      xbee_->on_idle(frames);
    } else {
      raw_->on_idle(frames);
    }
    spdlog::debug("{}: dropped a partial frame after {} ms of silence", prefix_, idle_gap_.count());
    process(frames);
  });
}

void serial_transport::handle_raw_frame(const fr::bytes& frame) {
  // A forwarder encapsulation header (Length, 0xFE, ...) does not count towards the message size.
  const std::size_t header = frame.size() >= 2 && frame[0] != 0x01 && frame[1] == 0xFE ? frame[0] : 0;
  if (frame.size() - header > frame_limit_) {
    ++stats_.oversize_dropped;
    spdlog::warn("{}: dropped a {}-byte frame from the line (serial-max-frame-size {})", prefix_,
                 frame.size() - header, frame_limit_);
    return;
  }
  ++stats_.frames_in;
  on_frame_(prefix_ + std::string(raw_endpoint), frame);
}

void serial_transport::handle_api_frame(const fr::bytes& data) {
  if (data.empty()) return;
  switch (data[0]) {
    case fr::xbee_type::receive_packet:
    case fr::xbee_type::explicit_rx: {
      const auto rx = fr::parse_receive(data);
      if (!rx || rx->payload.empty()) {
        ++stats_.unexpected_frames;
        return;
      }
      const auto from = prefix_ + fr::format_address64(rx->source64);
      if (rx->payload.size() > frame_limit_) {
        ++stats_.oversize_dropped;
        spdlog::warn("{}: dropped a {}-byte frame from {} (serial-max-frame-size {})", prefix_,
                     rx->payload.size(), from, frame_limit_);
        return;
      }
      ++stats_.frames_in;
      on_frame_(from, rx->payload);
      return;
    }
    case fr::xbee_type::transmit_status: {
      const auto st = fr::parse_transmit_status(data);
      if (!st) {
        ++stats_.unexpected_frames;
        return;
      }
      std::string to = "?";
      if (const auto it = pending_tx_.find(st->frame_id); it != pending_tx_.end()) {
        to = it->second;
        pending_tx_.erase(it);
      }
      if (st->delivery_status == fr::xbee_delivery_success) {
        ++stats_.tx_status_ok;
      } else {
        ++stats_.tx_status_failed;
        spdlog::info("{}: delivery of frame {} to {} failed: {} (0x{:02X}, {} retries)", prefix_, st->frame_id, to,
                     fr::describe_delivery_status(st->delivery_status), st->delivery_status, st->retries);
      }
      return;
    }
    case fr::xbee_type::modem_status: {
      const auto ms = fr::parse_modem_status(data);
      if (!ms) {
        ++stats_.unexpected_frames;
        return;
      }
      ++stats_.modem_status;
      spdlog::info("{}: XBee modem status 0x{:02X}: {}", prefix_, ms->status, fr::describe_modem_status(ms->status));
      if (ms->status == fr::xbee_modem_hardware_reset || ms->status == fr::xbee_modem_watchdog_reset) {
        pending_tx_.clear();  // a rebooted radio sends no status for what it had queued
        query_module();
      }
      return;
    }
    case fr::xbee_type::at_response: {
      if (const auto r = fr::parse_at_response(data)) {
        on_at_response(*r);
      } else {
        ++stats_.unexpected_frames;
      }
      return;
    }
    default:
      ++stats_.unexpected_frames;
      spdlog::debug("{}: ignored XBee API frame type 0x{:02X}", prefix_, data[0]);
  }
}

// ---------------------------------------------------------------------------------------------
// XBee start-up queries: AP (API mode), SH/SL (own address), NP (max payload). Never waited for.

void serial_transport::query_module() {
  static constexpr std::array<std::array<char, 2>, 4> commands = {{{'A', 'P'}, {'S', 'H'}, {'S', 'L'}, {'N', 'P'}}};
  at_pending_.clear();
  sh_.reset();
  sl_.reset();
  std::uint8_t id = at_frame_id_base;
  for (const auto& c : commands) {
    at_pending_.insert(std::string(c.data(), 2));
    write_wire(fr::encode_at_command(fr::xbee_at_command{++id, c, {}}, mode()));
  }
  const auto gen = generation_;
  at_timer_.expires_after(options_.at_timeout);
  at_timer_.async_wait([this, gen](boost::system::error_code ec) {
    if (ec || stopped_ || gen != generation_) return;
    on_at_timeout();
  });
}

void serial_transport::on_at_timeout() {
  if (at_pending_.empty()) return;
  std::string missing;
  for (const auto& c : at_pending_) missing += (missing.empty() ? "" : "/") + c;
  spdlog::warn("{}: no answer to AT {} within {} ms from {} (module in transparent mode AP=0, wrong baud rate, "
               "or a simulator without AT support); continuing with serial-max-frame-size {}",
               prefix_, missing, options_.at_timeout.count(), options_.device, frame_limit_);
  at_pending_.clear();
}

void serial_transport::on_at_response(const fr::xbee_at_response& r) {
  const std::string cmd(r.command.data(), 2);
  if (at_pending_.erase(cmd) == 0) return;
  if (at_pending_.empty()) at_timer_.cancel();
  if (r.status != fr::xbee_at_ok) {
    spdlog::warn("{}: AT {} answered with status {}", prefix_, cmd, r.status);
    return;
  }
  if (cmd == "AP" && !r.value.empty()) {
    const auto ap = static_cast<unsigned>(big_endian(r.value));
    const unsigned want = options_.framing == serial_framing_kind::xbee_api1 ? 1 : 2;
    if (ap != want) {
      const std::string current = ap == 0 ? "transparent mode (AP=0)" : "API mode " + std::to_string(ap) +
                                                                             " (AP=" + std::to_string(ap) + ")";
      const std::string other = ap == 1 ? "; or use --serial-framing xbee-api1"
                                : ap == 2 ? "; or use --serial-framing xbee-api2"
                                          : "";
      fatal(prefix_ + ": the XBee on " + options_.device + " is in " + current + " but --serial-framing is " +
            to_string(options_.framing) + ": set AP=" + std::to_string(want) + " with XCTU (or ATAP" +
            std::to_string(want) + ", ATWR)" + other);
      return;
    }
    spdlog::info("{}: XBee API mode AP={} matches --serial-framing {}", prefix_, ap, to_string(options_.framing));
  } else if (cmd == "SH" || cmd == "SL") {
    (cmd == "SH" ? sh_ : sl_) = static_cast<std::uint32_t>(big_endian(r.value));
    if (sh_ && sl_) {
      spdlog::info("{}: coordinator address {}", prefix_,
                   fr::format_address64((std::uint64_t{*sh_} << 32) | *sl_));
    }
  } else if (cmd == "NP" && !r.value.empty()) {
    const auto np = static_cast<std::size_t>(big_endian(r.value));
    if (np > 0 && np < options_.max_frame_size) {
      frame_limit_ = np;
      spdlog::info("{}: XBee max payload NP={}: frames above {} bytes are refused", prefix_, np, np);
    } else {
      frame_limit_ = options_.max_frame_size;
      spdlog::info("{}: XBee max payload NP={} (serial-max-frame-size {})", prefix_, np, options_.max_frame_size);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

bool serial_transport::make_room(std::size_t size) {
  if (!port_.is_open()) {
    ++stats_.dropped_link_down;
    return false;
  }
  if (queued_bytes_ + size > max_queued_bytes) {
    ++stats_.dropped_queue_full;
    spdlog::warn("{}: write queue full ({} bytes): frame dropped", prefix_, queued_bytes_);
    return false;
  }
  return true;
}

void serial_transport::write_wire(fr::bytes wire) {
  if (wire.empty() || !make_room(wire.size())) return;
  queued_bytes_ += wire.size();
  queue_.push_back(std::move(wire));
  pump();
}

void serial_transport::pump() {
  if (writing_ || queue_.empty() || !port_.is_open()) return;
  writing_ = true;
  const auto gen = generation_;
  asio::async_write(port_, asio::buffer(queue_.front()), [this, gen](boost::system::error_code ec, std::size_t n) {
    if (stopped_ || gen != generation_) return;
    writing_ = false;
    if (ec) {
      link_down("write: " + ec.message());
      return;
    }
    stats_.bytes_out += n;
    queued_bytes_ -= queue_.front().size();
    queue_.pop_front();
    pump();
  });
}

void serial_transport::send(const std::string& to, std::span<const std::uint8_t> frame) {
  if (stopped_) return;
  if (to.compare(0, prefix_.size(), prefix_) != 0) {
    ++stats_.send_errors;
    spdlog::warn("{}: cannot send to '{}': not an endpoint of this transport", prefix_, to);
    return;
  }
  const std::string_view rest = std::string_view(to).substr(prefix_.size());
  // Raw: a forwarder-encapsulation header does not count towards the message size.
  const std::size_t header = raw_ && frame.size() >= 2 && frame[0] != 0x01 && frame[1] == 0xFE ? frame[0] : 0;
  if (frame.size() - header > frame_limit_) {
    ++stats_.oversize_refused;
    spdlog::warn("{}: refused a {}-byte frame to {}: larger than the serial frame limit {} (NP / "
                 "serial-max-frame-size)",
                 prefix_, frame.size() - header, to, frame_limit_);
    return;
  }
  if (raw_) {
    if (rest != raw_endpoint) {
      ++stats_.send_errors;
      spdlog::warn("{}: cannot send to '{}': a raw line has the one endpoint {}{}", prefix_, to, prefix_, raw_endpoint);
      return;
    }
    if (!port_.is_open()) {
      ++stats_.dropped_link_down;
      return;
    }
    ++stats_.frames_out;
    write_wire(fr::bytes(frame.begin(), frame.end()));
    return;
  }
  const auto address = fr::parse_address64(rest);
  if (!address) {
    ++stats_.send_errors;
    spdlog::warn("{}: cannot send to '{}': not a 64-bit XBee address", prefix_, to);
    return;
  }
  if (!port_.is_open()) {
    ++stats_.dropped_link_down;
    return;
  }
  const auto id = next_frame_id();
  pending_tx_[id] = to;
  ++stats_.frames_out;
  write_wire(fr::encode_transmit_request(fr::xbee_transmit_request{id, *address, fr::xbee_unknown_address16, 0, 0, frame},
                                         mode()));
}

void serial_transport::broadcast(std::span<const std::uint8_t> frame) {
  if (stopped_ || !port_.is_open()) return;
  if (frame.size() > frame_limit_) {
    ++stats_.oversize_refused;
    return;
  }
  ++stats_.frames_out;
  if (raw_) {
    write_wire(fr::bytes(frame.begin(), frame.end()));
    return;
  }
  // Broadcasts are never acknowledged: frame id 0 asks for no transmit status.
  write_wire(fr::encode_transmit_request(
      fr::xbee_transmit_request{0, fr::xbee_broadcast_address64, fr::xbee_unknown_address16, 0, 0, frame}, mode()));
}

std::string serial_transport::describe_stats() const {
  const auto& s = stats_;
  return fmt::format(
      "opens={} open_failures={} link_losses={} bytes_in={} bytes_out={} frames_in={} frames_out={} "
      "oversize_dropped={} oversize_refused={} dropped_link_down={} dropped_queue_full={} send_errors={} "
      "tx_status_ok={} tx_status_failed={} modem_status={} unexpected_frames={}",
      s.opens, s.open_failures, s.link_losses, s.bytes_in, s.bytes_out, s.frames_in, s.frames_out, s.oversize_dropped,
      s.oversize_refused, s.dropped_link_down, s.dropped_queue_full, s.send_errors, s.tx_status_ok, s.tx_status_failed,
      s.modem_status, s.unexpected_frames);
}

void serial_transport::stop() {
  if (stopped_) return;
  stopped_ = true;
  reopen_timer_.cancel();
  close_device();
  if (started_) spdlog::info("{}: serial stats: {}", prefix_, describe_stats());
}

}  // namespace transports
