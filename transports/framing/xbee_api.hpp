// Digi XBee API frames (API mode 1, and mode 2 with escaping) on a serial byte stream: a streaming
// deframer, parsers for the frames a gateway receives, encoders for the frames it sends.
// Pure and standard-library only: no I/O, no clock, no exceptions; never reads outside a span.
// See docs SERIAL.md (a) for the wire format and the worked hex examples the tests use.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace transports::framing {

using bytes = std::vector<std::uint8_t>;

// AP=1 sends frames as they are; AP=2 escapes 0x7E, 0x7D, 0x11, 0x13 after the start delimiter.
enum class xbee_mode : std::uint8_t { api1, api2 };

inline constexpr std::uint8_t xbee_start_delimiter = 0x7E;
inline constexpr std::uint8_t xbee_escape = 0x7D;
inline constexpr std::uint8_t xbee_escape_xor = 0x20;
inline constexpr std::uint8_t xbee_xon = 0x11;
inline constexpr std::uint8_t xbee_xoff = 0x13;

// Frame data = the bytes between the length field and the checksum (frame type first).
inline constexpr std::size_t xbee_default_max_frame_data = 512;
inline constexpr std::size_t xbee_max_frame_data = 65535;  // the most a 16-bit length can declare

// Frame types (API identifiers, the first byte of the frame data) the gateway sends or understands.
namespace xbee_type {
inline constexpr std::uint8_t at_command = 0x08;
inline constexpr std::uint8_t transmit_request = 0x10;
inline constexpr std::uint8_t at_response = 0x88;
inline constexpr std::uint8_t modem_status = 0x8A;
inline constexpr std::uint8_t transmit_status = 0x8B;
inline constexpr std::uint8_t receive_packet = 0x90;
inline constexpr std::uint8_t explicit_rx = 0x91;
}  // namespace xbee_type

// Addresses. A client is identified by its 64-bit address; the 16-bit one is only a routing hint.
inline constexpr std::uint64_t xbee_broadcast_address64 = 0x000000000000FFFF;
inline constexpr std::uint64_t xbee_coordinator_address64 = 0x0000000000000000;
// The 16-bit address for "unknown" and for broadcasts.
inline constexpr std::uint16_t xbee_unknown_address16 = 0xFFFE;

// ---------------------------------------------------------------------------------------------
// Deframer

// What the deframer dropped, by reason. Every rejected frame is counted exactly once.
struct xbee_deframer_counters {
  std::uint64_t frames_ok = 0;
  // Bytes discarded while hunting for a start delimiter. In API mode 1 this includes the bytes of a
  // rejected frame: they are searched again for a delimiter (see xbee_deframer).
  std::uint64_t bytes_skipped = 0;
  std::uint64_t bad_checksum = 0;
  std::uint64_t bad_length = 0;  // declared length 0, or above the deframer's maximum
  std::uint64_t aborted = 0;     // API mode 2: an unescaped 0x7E cut a frame short and started anew
  std::uint64_t stalled = 0;     // a partial frame dropped by on_idle()

  bool operator==(const xbee_deframer_counters&) const = default;
};

// Turns a serial byte stream into verified frame data, accepting any split of the stream across
// feed() calls. Hunts for 0x7E, reads the big-endian length, bounds it by max_frame_data, reads the
// frame data and verifies the checksum; a frame that fails is dropped, counted, and the hunt
// resumes:
//  * API mode 2: an unescaped 0x7E only ever starts a frame, so a 0x7E in the middle of a frame
//    aborts it and starts a new one; 0x7D makes the next byte XOR 0x20 (whatever that byte is).
//  * API mode 1: a 0x7E inside a frame is data, so the checksum is the only guard. When a frame is
//    rejected (bad length or checksum), the hunt resumes at the byte after its delimiter, not after
//    its end: a stray 0x7E with a plausible length cannot swallow the real frame behind it.
// Memory is bounded whatever the input: at most max_frame_data + 4 bytes wait to be processed
// (about three times that allocated). In API mode 1 the search-again costs CPU: hostile input can
// make each byte be looked at up to ~max_frame_data times, which is harmless at serial speeds.
class xbee_deframer {
 public:
  // max_frame_data is clamped to 1..xbee_max_frame_data.
  explicit xbee_deframer(xbee_mode mode, std::size_t max_frame_data = xbee_default_max_frame_data);

  // Appends the frame data (frame type + body, unescaped, no length or checksum) of every frame
  // completed by `input` to `frames`; returns how many it appended.
  std::size_t feed(std::span<const std::uint8_t> input, std::vector<bytes>& frames);

  // The line has been quiet longer than a frame's bytes are ever apart: a partial frame will not
  // complete, so drop it (counted as stalled). In API mode 1 its bytes after the delimiter are
  // searched again, which may complete frames hidden behind a stray delimiter.
  std::size_t on_idle(std::vector<bytes>& frames);

  // Forgets any partial frame (e.g. after the port was reopened). Counters are kept.
  void reset() noexcept;

  [[nodiscard]] const xbee_deframer_counters& counters() const noexcept { return counters_; }
  [[nodiscard]] xbee_mode mode() const noexcept { return mode_; }
  [[nodiscard]] std::size_t max_frame_data() const noexcept { return max_frame_data_; }
  // True between a start delimiter and the end of its frame.
  [[nodiscard]] bool mid_frame() const noexcept { return state_ != state::hunt; }

 private:
  enum class state : std::uint8_t { hunt, length_high, length_low, data, checksum };

  void step(std::uint8_t byte, std::vector<bytes>& frames);
  void take(std::uint8_t byte, std::vector<bytes>& frames);
  void start_frame();
  void reject();
  void drain_rescan(std::vector<bytes>& frames);

  xbee_mode mode_;
  std::size_t max_frame_data_;
  state state_ = state::hunt;
  bool escaped_ = false;
  std::size_t length_ = 0;
  unsigned sum_ = 0;
  bytes frame_;   // unescaped bytes of the current frame from its delimiter on
  bytes rescan_;  // API mode 1: bytes of rejected frames still to be searched
  std::size_t rescan_pos_ = 0;
  xbee_deframer_counters counters_;
};

// ---------------------------------------------------------------------------------------------
// Frames from the radio. Each parser takes the frame data the deframer emitted and returns nullopt
// when the frame type or the size is wrong; spans in the result point into that frame data.

// Receive options of 0x90/0x91 (bits combine).
inline constexpr std::uint8_t xbee_rx_acknowledged = 0x01;
inline constexpr std::uint8_t xbee_rx_broadcast = 0x02;
inline constexpr std::uint8_t xbee_rx_aps_encrypted = 0x20;
inline constexpr std::uint8_t xbee_rx_from_end_device = 0x40;

// 0x90 Receive Packet, or 0x91 Explicit Rx Indicator (AO=1), whose endpoints, cluster and profile
// are read but need not matter to the gateway.
struct xbee_receive {
  std::uint8_t frame_type = xbee_type::receive_packet;
  std::uint64_t source64 = 0;
  std::uint16_t source16 = 0;
  std::uint8_t options = 0;
  std::uint8_t source_endpoint = 0;       // 0x91 only
  std::uint8_t destination_endpoint = 0;  // 0x91 only
  std::uint16_t cluster_id = 0;           // 0x91 only
  std::uint16_t profile_id = 0;           // 0x91 only
  std::span<const std::uint8_t> payload;  // RF data (the MQTT-SN message); may be empty
};
std::optional<xbee_receive> parse_receive(std::span<const std::uint8_t> frame_data) noexcept;

// 0x8B Transmit Status (exactly 7 bytes of frame data).
inline constexpr std::uint8_t xbee_delivery_success = 0x00;
struct xbee_transmit_status {
  std::uint8_t frame_id = 0;
  std::uint16_t destination16 = 0;  // where it was delivered; 0xFFFD when unknown
  std::uint8_t retries = 0;
  std::uint8_t delivery_status = 0;   // 0 = success
  std::uint8_t discovery_status = 0;  // 0 none, 1 address, 2 route, 3 both, 0x40 extended timeout
};
std::optional<xbee_transmit_status> parse_transmit_status(
    std::span<const std::uint8_t> frame_data) noexcept;
// A short English description of a delivery status ("route not found"), for logs.
const char* describe_delivery_status(std::uint8_t status) noexcept;

// 0x8A Modem Status (exactly 2 bytes of frame data).
inline constexpr std::uint8_t xbee_modem_hardware_reset = 0x00;
inline constexpr std::uint8_t xbee_modem_watchdog_reset = 0x01;
inline constexpr std::uint8_t xbee_modem_joined = 0x02;
inline constexpr std::uint8_t xbee_modem_disassociated = 0x03;
inline constexpr std::uint8_t xbee_modem_coordinator_started = 0x06;
struct xbee_modem_status {
  std::uint8_t status = 0;
};
std::optional<xbee_modem_status> parse_modem_status(
    std::span<const std::uint8_t> frame_data) noexcept;
const char* describe_modem_status(std::uint8_t status) noexcept;

// 0x88 AT Command Response (at least 5 bytes of frame data).
inline constexpr std::uint8_t xbee_at_ok = 0x00;
inline constexpr std::uint8_t xbee_at_error = 0x01;
inline constexpr std::uint8_t xbee_at_invalid_command = 0x02;
inline constexpr std::uint8_t xbee_at_invalid_parameter = 0x03;
inline constexpr std::uint8_t xbee_at_tx_failure = 0x04;
struct xbee_at_response {
  std::uint8_t frame_id = 0;
  std::array<char, 2> command{};  // e.g. {'A', 'P'}
  std::uint8_t status = 0;
  std::span<const std::uint8_t> value;  // big-endian binary; empty when a value was set
};
std::optional<xbee_at_response> parse_at_response(
    std::span<const std::uint8_t> frame_data) noexcept;

// ---------------------------------------------------------------------------------------------
// Frames to the radio, as complete wire frames: delimiter, length, frame data and checksum, escaped
// per mode. Each encoder appends to `out` and returns true, or appends nothing and returns false
// when the frame data would be empty or longer than xbee_max_frame_data; the one-argument forms
// return the frame, or an empty vector on failure.

// Wraps any frame data (type byte first) into a wire frame.
bool encode_frame(std::span<const std::uint8_t> frame_data, xbee_mode mode, bytes& out);
bytes encode_frame(std::span<const std::uint8_t> frame_data, xbee_mode mode);

// Transmit options of 0x10 (bits combine).
inline constexpr std::uint8_t xbee_tx_disable_retries = 0x01;
inline constexpr std::uint8_t xbee_tx_aps_encryption = 0x20;
inline constexpr std::uint8_t xbee_tx_extended_timeout = 0x40;

// 0x10 Transmit Request. Frame ID 0 asks for no 0x8B status. Frame data = 14 + payload bytes.
struct xbee_transmit_request {
  std::uint8_t frame_id = 0;
  std::uint64_t destination64 = xbee_broadcast_address64;
  std::uint16_t destination16 = xbee_unknown_address16;
  std::uint8_t radius = 0;  // broadcast hops; 0 = maximum
  std::uint8_t options = 0;
  std::span<const std::uint8_t> payload;
};
bool encode_transmit_request(const xbee_transmit_request& request, xbee_mode mode, bytes& out);
bytes encode_transmit_request(const xbee_transmit_request& request, xbee_mode mode);

// 0x08 AT Command: query when `parameter` is empty, set otherwise.
struct xbee_at_command {
  std::uint8_t frame_id = 0;
  std::array<char, 2> command{};
  std::span<const std::uint8_t> parameter;
};
bool encode_at_command(const xbee_at_command& command, xbee_mode mode, bytes& out);
bytes encode_at_command(const xbee_at_command& command, xbee_mode mode);

// ---------------------------------------------------------------------------------------------
// Addresses as text: 16 upper-case hex digits, e.g. "0013A20040522BAA" (paho prints them so too).

std::string format_address64(std::uint64_t address);
// Exactly 16 hex digits, either case; nothing else (no "0x", no separators).
std::optional<std::uint64_t> parse_address64(std::string_view text) noexcept;

// ---------------------------------------------------------------------------------------------
// Start-up diagnostic for a line configured for API framing: true when `line` holds no valid API
// frame (in either mode) but splits exactly, from its first byte, into one or more back-to-back
// MQTT-SN frames (raw framing, see raw.hpp) each of a message type MQTT-SN v1.2 defines. Likely
// causes: the radio is in transparent (AT) mode, or the device is an MCU bridge (raw framing).
bool looks_like_raw_mqttsn(std::span<const std::uint8_t> line);

}  // namespace transports::framing
