// XBee API frames. Offsets below are into the frame data (byte 0 = frame type), i.e. SERIAL.md's
// offsets from the start delimiter minus 3.
#include "transports/framing/xbee_api.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mqttsn/message.hpp"
#include "transports/framing/raw.hpp"

namespace transports::framing {
namespace {

using byte_span = std::span<const std::uint8_t>;

constexpr std::size_t envelope_size = 4;  // delimiter, two length bytes, checksum
constexpr std::size_t header_size = 3;    // delimiter and length, before the frame data
constexpr unsigned checksum_ok = 0xFF;    // low byte of sum(frame data) + checksum

// Fixed parts of the frames, as frame-data sizes.
constexpr std::size_t receive_header = 12;      // type, addr64, addr16, options
constexpr std::size_t explicit_rx_header = 18;  // + endpoints, cluster, profile
constexpr std::size_t transmit_status_size = 7;
constexpr std::size_t modem_status_size = 2;
constexpr std::size_t at_response_header = 5;        // type, frame id, command, status
constexpr std::size_t transmit_request_header = 14;  // type, frame id, addr64, addr16, radius, opts
constexpr std::size_t at_command_header = 4;         // type, frame id, command

constexpr std::size_t address64_digits = 16;

bool needs_escape(std::uint8_t byte) noexcept {
  return byte == xbee_start_delimiter || byte == xbee_escape || byte == xbee_xon ||
         byte == xbee_xoff;
}

void put(std::uint8_t byte, xbee_mode mode, bytes& out) {
  if (mode == xbee_mode::api2 && needs_escape(byte)) {
    out.push_back(xbee_escape);
    out.push_back(static_cast<std::uint8_t>(byte ^ xbee_escape_xor));
  } else {
    out.push_back(byte);
  }
}

std::uint16_t read_u16(byte_span data, std::size_t offset) noexcept {
  return static_cast<std::uint16_t>((data[offset] << 8U) | data[offset + 1]);
}

std::uint64_t read_u64(byte_span data, std::size_t offset) noexcept {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < 8; ++i) value = (value << 8U) | data[offset + i];
  return value;
}

void append_u16(std::uint16_t value, bytes& out) {
  out.push_back(static_cast<std::uint8_t>(value >> 8U));
  out.push_back(static_cast<std::uint8_t>(value & 0xFFU));
}

void append_u64(std::uint64_t value, bytes& out) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<std::uint8_t>((value >> static_cast<unsigned>(shift)) & 0xFFU));
  }
}

// MsgType values MQTT-SN v1.2 defines. Listing every enumerator keeps -Wswitch watching this.
bool is_mqttsn_msg_type(std::uint8_t code) noexcept {
  using mqttsn::msg_type;
  switch (static_cast<msg_type>(code)) {
    case msg_type::advertise:
    case msg_type::searchgw:
    case msg_type::gwinfo:
    case msg_type::connect:
    case msg_type::connack:
    case msg_type::willtopicreq:
    case msg_type::willtopic:
    case msg_type::willmsgreq:
    case msg_type::willmsg:
    case msg_type::register_:
    case msg_type::regack:
    case msg_type::publish:
    case msg_type::puback:
    case msg_type::pubcomp:
    case msg_type::pubrec:
    case msg_type::pubrel:
    case msg_type::subscribe:
    case msg_type::suback:
    case msg_type::unsubscribe:
    case msg_type::unsuback:
    case msg_type::pingreq:
    case msg_type::pingresp:
    case msg_type::disconnect:
    case msg_type::willtopicupd:
    case msg_type::willtopicresp:
    case msg_type::willmsgupd:
    case msg_type::willmsgresp:
    case msg_type::encapsulated: return true;
  }
  return false;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Deframer

xbee_deframer::xbee_deframer(xbee_mode mode, std::size_t max_frame_data)
    : mode_(mode),
      max_frame_data_(std::clamp<std::size_t>(max_frame_data, 1, xbee_max_frame_data)) {
  frame_.reserve(max_frame_data_ + envelope_size);
}

std::size_t xbee_deframer::feed(std::span<const std::uint8_t> input, std::vector<bytes>& frames) {
  const std::size_t before = frames.size();
  for (const std::uint8_t byte : input) {
    step(byte, frames);
    drain_rescan(frames);
  }
  return frames.size() - before;
}

std::size_t xbee_deframer::on_idle(std::vector<bytes>& frames) {
  const std::size_t before = frames.size();
  while (mid_frame()) {
    ++counters_.stalled;
    reject();
    drain_rescan(frames);
  }
  return frames.size() - before;
}

void xbee_deframer::reset() noexcept {
  state_ = state::hunt;
  escaped_ = false;
  frame_.clear();
  rescan_.clear();
  rescan_pos_ = 0;
}

// One byte off the wire: delimiter hunting and, in API mode 2, escapes; then take() the byte.
void xbee_deframer::step(std::uint8_t byte, std::vector<bytes>& frames) {
  if (state_ == state::hunt) {
    if (byte == xbee_start_delimiter) {
      start_frame();
    } else {
      ++counters_.bytes_skipped;
    }
    return;
  }
  if (mode_ == xbee_mode::api2) {
    if (byte == xbee_start_delimiter) {  // never escaped, so always the start of a frame
      ++counters_.aborted;
      start_frame();
      return;
    }
    if (escaped_) {
      escaped_ = false;
      byte = static_cast<std::uint8_t>(byte ^ xbee_escape_xor);
    } else if (byte == xbee_escape) {
      escaped_ = true;
      return;
    }
  }
  take(byte, frames);
}

void xbee_deframer::start_frame() {
  frame_.clear();
  frame_.push_back(xbee_start_delimiter);
  state_ = state::length_high;
  escaped_ = false;
  length_ = 0;
  sum_ = 0;
}

// One unescaped byte of the current frame.
void xbee_deframer::take(std::uint8_t byte, std::vector<bytes>& frames) {
  frame_.push_back(byte);
  if (state_ == state::length_high) {
    length_ = static_cast<std::size_t>(byte) << 8U;
    state_ = state::length_low;
  } else if (state_ == state::length_low) {
    length_ |= byte;
    if (length_ == 0 || length_ > max_frame_data_) {
      ++counters_.bad_length;
      reject();
    } else {
      state_ = state::data;
    }
  } else if (state_ == state::data) {
    sum_ += byte;
    if (frame_.size() == header_size + length_) state_ = state::checksum;
  } else if (((sum_ + byte) & 0xFFU) == checksum_ok) {
    ++counters_.frames_ok;
    frames.emplace_back(frame_.begin() + header_size, frame_.end() - 1);
    frame_.clear();
    state_ = state::hunt;
  } else {
    ++counters_.bad_checksum;
    reject();
  }
}

// Gives up the current frame. API mode 2 needs nothing more: a rejected frame holds no unescaped
// 0x7E, so no frame can start inside it. In API mode 1 one can, so the bytes after the delimiter
// are searched again, ahead of any bytes still queued.
void xbee_deframer::reject() {
  if (mode_ == xbee_mode::api1) {
    bytes next(frame_.begin() + 1, frame_.end());
    next.insert(next.end(), rescan_.begin() + static_cast<std::ptrdiff_t>(rescan_pos_),
                rescan_.end());
    rescan_ = std::move(next);
    rescan_pos_ = 0;
  }
  frame_.clear();
  state_ = state::hunt;
  escaped_ = false;
}

void xbee_deframer::drain_rescan(std::vector<bytes>& frames) {
  // step() may replace rescan_ (reject), so read by index and re-check the size each time.
  while (rescan_pos_ < rescan_.size()) step(rescan_[rescan_pos_++], frames);
  rescan_.clear();
  rescan_pos_ = 0;
}

// ---------------------------------------------------------------------------------------------
// Parsers

std::optional<xbee_receive> parse_receive(std::span<const std::uint8_t> frame_data) noexcept {
  if (frame_data.empty()) return std::nullopt;
  xbee_receive rx;
  rx.frame_type = frame_data[0];
  std::size_t options_at = 0;
  std::size_t payload_at = 0;
  if (rx.frame_type == xbee_type::receive_packet) {
    options_at = receive_header - 1;
    payload_at = receive_header;
  } else if (rx.frame_type == xbee_type::explicit_rx) {
    options_at = explicit_rx_header - 1;
    payload_at = explicit_rx_header;
  } else {
    return std::nullopt;
  }
  if (frame_data.size() < payload_at) return std::nullopt;
  rx.source64 = read_u64(frame_data, 1);
  rx.source16 = read_u16(frame_data, 9);
  if (rx.frame_type == xbee_type::explicit_rx) {
    rx.source_endpoint = frame_data[11];
    rx.destination_endpoint = frame_data[12];
    rx.cluster_id = read_u16(frame_data, 13);
    rx.profile_id = read_u16(frame_data, 15);
  }
  rx.options = frame_data[options_at];
  rx.payload = frame_data.subspan(payload_at);
  return rx;
}

std::optional<xbee_transmit_status> parse_transmit_status(
    std::span<const std::uint8_t> frame_data) noexcept {
  if (frame_data.size() != transmit_status_size || frame_data[0] != xbee_type::transmit_status) {
    return std::nullopt;
  }
  xbee_transmit_status status;
  status.frame_id = frame_data[1];
  status.destination16 = read_u16(frame_data, 2);
  status.retries = frame_data[4];
  status.delivery_status = frame_data[5];
  status.discovery_status = frame_data[6];
  return status;
}

const char* describe_delivery_status(std::uint8_t status) noexcept {
  switch (status) {
    case 0x00: return "success";
    case 0x01: return "MAC ACK failure";
    case 0x02: return "CCA failure";
    case 0x15: return "invalid destination endpoint";
    case 0x21: return "network ACK failure";
    case 0x22: return "not joined to network";
    case 0x23: return "self-addressed";
    case 0x24: return "address not found";
    case 0x25: return "route not found";
    case 0x26: return "broadcast relay not heard";
    case 0x2B: return "invalid binding table index";
    case 0x2C:
    case 0x32: return "resource error";
    case 0x2D: return "broadcast with APS encryption attempted";
    case 0x2E: return "APS encryption attempted with EE=0";
    case 0x74: return "payload too large";
    case 0x75: return "indirect message unrequested";
    default: return "unknown delivery status";
  }
}

std::optional<xbee_modem_status> parse_modem_status(
    std::span<const std::uint8_t> frame_data) noexcept {
  if (frame_data.size() != modem_status_size || frame_data[0] != xbee_type::modem_status) {
    return std::nullopt;
  }
  return xbee_modem_status{frame_data[1]};
}

const char* describe_modem_status(std::uint8_t status) noexcept {
  switch (status) {
    case 0x00: return "hardware reset";
    case 0x01: return "watchdog timer reset";
    case 0x02: return "joined network";
    case 0x03: return "disassociated";
    case 0x06: return "coordinator started";
    case 0x07: return "network security key updated";
    case 0x0D: return "voltage supply limit exceeded";
    case 0x11: return "configuration changed while join in progress";
    default: return status >= 0x80 ? "stack error" : "unknown modem status";
  }
}

std::optional<xbee_at_response> parse_at_response(
    std::span<const std::uint8_t> frame_data) noexcept {
  if (frame_data.size() < at_response_header || frame_data[0] != xbee_type::at_response) {
    return std::nullopt;
  }
  xbee_at_response response;
  response.frame_id = frame_data[1];
  response.command = {static_cast<char>(frame_data[2]), static_cast<char>(frame_data[3])};
  response.status = frame_data[4];
  response.value = frame_data.subspan(at_response_header);
  return response;
}

// ---------------------------------------------------------------------------------------------
// Encoders

bool encode_frame(std::span<const std::uint8_t> frame_data, xbee_mode mode, bytes& out) {
  if (frame_data.empty() || frame_data.size() > xbee_max_frame_data) return false;
  const auto length = static_cast<std::uint16_t>(frame_data.size());
  out.reserve(out.size() + 2 * (frame_data.size() + envelope_size));  // worst case: all escaped
  out.push_back(xbee_start_delimiter);
  put(static_cast<std::uint8_t>(length >> 8U), mode, out);
  put(static_cast<std::uint8_t>(length & 0xFFU), mode, out);
  unsigned sum = 0;
  for (const std::uint8_t byte : frame_data) {
    sum += byte;
    put(byte, mode, out);
  }
  put(static_cast<std::uint8_t>(checksum_ok - (sum & 0xFFU)), mode, out);
  return true;
}

bytes encode_frame(std::span<const std::uint8_t> frame_data, xbee_mode mode) {
  bytes out;
  encode_frame(frame_data, mode, out);
  return out;
}

bool encode_transmit_request(const xbee_transmit_request& request, xbee_mode mode, bytes& out) {
  if (request.payload.size() > xbee_max_frame_data - transmit_request_header) return false;
  bytes data;
  data.reserve(transmit_request_header + request.payload.size());
  data.push_back(xbee_type::transmit_request);
  data.push_back(request.frame_id);
  append_u64(request.destination64, data);
  append_u16(request.destination16, data);
  data.push_back(request.radius);
  data.push_back(request.options);
  data.insert(data.end(), request.payload.begin(), request.payload.end());
  return encode_frame(data, mode, out);
}

bytes encode_transmit_request(const xbee_transmit_request& request, xbee_mode mode) {
  bytes out;
  encode_transmit_request(request, mode, out);
  return out;
}

bool encode_at_command(const xbee_at_command& command, xbee_mode mode, bytes& out) {
  if (command.parameter.size() > xbee_max_frame_data - at_command_header) return false;
  bytes data;
  data.reserve(at_command_header + command.parameter.size());
  data.push_back(xbee_type::at_command);
  data.push_back(command.frame_id);
  data.push_back(static_cast<std::uint8_t>(command.command[0]));
  data.push_back(static_cast<std::uint8_t>(command.command[1]));
  data.insert(data.end(), command.parameter.begin(), command.parameter.end());
  return encode_frame(data, mode, out);
}

bytes encode_at_command(const xbee_at_command& command, xbee_mode mode) {
  bytes out;
  encode_at_command(command, mode, out);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Addresses

std::string format_address64(std::uint64_t address) {
  static constexpr std::string_view digits = "0123456789ABCDEF";
  std::string text(address64_digits, '0');
  for (std::size_t i = address64_digits; i-- > 0;) {
    text[i] = digits[address & 0xFU];
    address >>= 4U;
  }
  return text;
}

std::optional<std::uint64_t> parse_address64(std::string_view text) noexcept {
  if (text.size() != address64_digits) return std::nullopt;
  std::uint64_t value = 0;
  for (const char c : text) {
    unsigned nibble = 0;
    if (c >= '0' && c <= '9') {
      nibble = static_cast<unsigned>(c - '0');
    } else if (c >= 'A' && c <= 'F') {
      nibble = static_cast<unsigned>(c - 'A' + 10);
    } else if (c >= 'a' && c <= 'f') {
      nibble = static_cast<unsigned>(c - 'a' + 10);
    } else {
      return std::nullopt;
    }
    value = (value << 4U) | nibble;
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Diagnostics

bool looks_like_raw_mqttsn(std::span<const std::uint8_t> line) {
  std::vector<bytes> frames;
  for (const xbee_mode mode : {xbee_mode::api1, xbee_mode::api2}) {
    xbee_deframer api(mode);
    if (api.feed(line, frames) != 0) return false;
  }
  raw_deframer raw(raw_max_frame_size);
  if (raw.feed(line, frames) == 0 || raw.counters().bytes_skipped != 0 || raw.mid_frame()) {
    return false;
  }
  return std::all_of(frames.begin(), frames.end(), [](const bytes& frame) {
    // The MsgType follows the Length (and, in a forwarder encapsulation, is 0xFE).
    return is_mqttsn_msg_type(frame[0] == 0x01 ? frame[3] : frame[1]);
  });
}

}  // namespace transports::framing
