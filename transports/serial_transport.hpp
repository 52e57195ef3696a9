// Serial transport (Boost.Asio): an XBee coordinator in API mode 1 or 2, or an MCU bridge speaking
// raw MQTT-SN length framing, on one serial device. Real ttys are opened and configured by
// libserialport (after realpath()); ptys and devices it refuses by a termios fallback
// (serial_path.hpp). The descriptor is driven by posix::stream_descriptor on the gateway's
// io_context: reads are asynchronous, writes are queued and written asynchronously, and nothing ever
// waits for the radio (AT answers and transmit statuses are handled when they come).
//
// Endpoints: "<prefix><16 hex digits>" (the XBee 64-bit source address, e.g.
// "serial0/0013A20040522BAA") with XBee framing; "<prefix>line" with raw framing (the gateway
// unwraps forwarder encapsulation, so an MCU bridge that wraps frames carries several clients).
// An absent, unplugged or failing device is logged once and reopened with backoff (1 s doubling to
// 30 s); frames sent meanwhile are dropped and counted (QoS 1/2 retransmission resends them).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "transports/framing/raw.hpp"
#include "transports/framing/xbee_api.hpp"
#include "transports/serial_path.hpp"
#include "transports/transport.hpp"

struct sp_port;

namespace transports {

enum class serial_framing_kind : std::uint8_t { xbee_api1, xbee_api2, raw };
enum class serial_flow_kind : std::uint8_t { none, rtscts, xonxoff };

const char* to_string(serial_framing_kind framing) noexcept;
const char* to_string(serial_flow_kind flow) noexcept;

struct serial_options {
  std::string device;
  unsigned baud = 9600;
  serial_framing_kind framing = serial_framing_kind::xbee_api2;
  serial_flow_kind flow = serial_flow_kind::none;
  std::size_t max_frame_size = 255;  // MQTT-SN message bytes (the radio payload)
  std::chrono::milliseconds reopen_initial{1'000};
  std::chrono::milliseconds reopen_max{30'000};
  std::chrono::milliseconds at_timeout{2'000};  // XBee start-up queries
  // Called once when the module cannot work with this configuration (wrong API mode), with a
  // message that says how to fix it; the daemon exits. Unset: logged, and the port stays closed.
  std::function<void(const std::string& message)> on_fatal;
};

struct serial_stats {
  std::uint64_t opens = 0;
  std::uint64_t open_failures = 0;
  std::uint64_t link_losses = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t frames_in = 0;         // MQTT-SN frames handed to the gateway
  std::uint64_t frames_out = 0;        // MQTT-SN frames queued for the line
  std::uint64_t oversize_dropped = 0;  // received frames above max_frame_size
  std::uint64_t oversize_refused = 0;  // frames to send above max_frame_size (never sent)
  std::uint64_t dropped_link_down = 0;
  std::uint64_t dropped_queue_full = 0;
  std::uint64_t send_errors = 0;  // bad endpoint
  std::uint64_t tx_status_ok = 0;
  std::uint64_t tx_status_failed = 0;
  std::uint64_t modem_status = 0;
  std::uint64_t unexpected_frames = 0;  // API frames of other types
};

class serial_transport final : public transport {
 public:
  serial_transport(boost::asio::io_context& io, std::string prefix, serial_options options);
  ~serial_transport() override;
  serial_transport(const serial_transport&) = delete;
  serial_transport& operator=(const serial_transport&) = delete;

  const std::string& prefix() const noexcept override { return prefix_; }
  void start(frame_handler on_frame) override;
  void send(const std::string& to, std::span<const std::uint8_t> frame) override;
  void broadcast(std::span<const std::uint8_t> frame) override;
  void stop() override;

  const serial_stats& stats() const noexcept { return stats_; }
  bool link_up() const noexcept { return port_.is_open(); }
  // The effective frame limit: max_frame_size, lowered by the module's NP answer.
  std::size_t frame_limit() const noexcept { return frame_limit_; }

 private:
  bool open_device(std::string& error);
  void close_device();
  void try_open();
  void schedule_reopen();
  void link_down(const std::string& why);
  void read();
  void on_bytes(std::span<const std::uint8_t> data);
  void process(std::vector<framing::bytes>& frames);
  void handle_api_frame(const framing::bytes& data);
  void handle_raw_frame(const framing::bytes& frame);
  void arm_idle();
  void write_wire(framing::bytes wire);
  void pump();
  bool make_room(std::size_t size);
  void query_module();
  void on_at_response(const framing::xbee_at_response& r);
  void on_at_timeout();
  void fatal(const std::string& message);
  framing::xbee_mode mode() const noexcept;
  std::uint8_t next_frame_id() noexcept;
  std::string describe_stats() const;

  std::string prefix_;
  serial_options options_;
  std::size_t frame_limit_;
  std::chrono::milliseconds idle_gap_;
  boost::asio::posix::stream_descriptor port_;
  sp_port* sp_ = nullptr;
  boost::asio::steady_timer reopen_timer_;
  boost::asio::steady_timer idle_timer_;
  boost::asio::steady_timer at_timer_;
  std::chrono::milliseconds backoff_;
  std::optional<framing::xbee_deframer> xbee_;
  std::optional<framing::raw_deframer> raw_;
  std::array<std::uint8_t, 512> read_buffer_{};
  std::deque<framing::bytes> queue_;
  std::size_t queued_bytes_ = 0;
  bool writing_ = false;
  std::uint64_t generation_ = 0;  // bumped on every close: stale handlers see a different value
  std::uint8_t frame_id_ = 0;
  std::map<std::uint8_t, std::string> pending_tx_;  // frame id -> endpoint, for 0x8B logs
  std::set<std::string> at_pending_;
  std::optional<std::uint32_t> sh_, sl_;
  bool down_logged_ = false;
  unsigned failed_opens_ = 0;
  bool started_ = false;
  bool stopped_ = false;
  bool fatal_ = false;
  frame_handler on_frame_;
  serial_stats stats_;
};

}  // namespace transports
