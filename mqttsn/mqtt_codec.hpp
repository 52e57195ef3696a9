// Wire format of MQTT 3.1.1 (OASIS standard, 2014): packet values <-> bytes, for the gateway's own
// broker connection, the benchmark's MQTT clients and the test tap. Pure: no I/O, no clocks;
// decoding never throws and never reads outside the given span. Knows nothing about MQTT-SN.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace mqttsn::mqtt311 {

using bytes = std::vector<std::uint8_t>;

enum class packet_type : std::uint8_t {
  connect = 1,
  connack = 2,
  publish = 3,
  puback = 4,
  pubrec = 5,
  pubrel = 6,
  pubcomp = 7,
  subscribe = 8,
  suback = 9,
  unsubscribe = 10,
  unsuback = 11,
  pingreq = 12,
  pingresp = 13,
  disconnect = 14,
};

// The largest Remaining Length four bytes can hold (§2.2.3).
inline constexpr std::size_t max_remaining_length = 268'435'455;

struct will_message {
  std::string topic;
  bytes payload;
  std::uint8_t qos = 0;
  bool retain = false;
  friend bool operator==(const will_message&, const will_message&) = default;
};

struct connect_packet {
  std::string client_id;
  bool clean_session = true;
  std::uint16_t keep_alive = 0;  // seconds
  std::optional<will_message> will;
  std::optional<std::string> username;
  std::optional<bytes> password;  // only with a user name (§3.1.2.9)
  friend bool operator==(const connect_packet&, const connect_packet&) = default;
};

struct connack_packet {
  bool session_present = false;
  std::uint8_t return_code = 0;  // 0 accepted, 1..5 refused (§3.2.2.3)
  friend bool operator==(const connack_packet&, const connack_packet&) = default;
};

struct publish_packet {
  std::string topic;
  bytes payload;
  std::uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  std::uint16_t packet_id = 0;  // QoS 1 and 2 only
  friend bool operator==(const publish_packet&, const publish_packet&) = default;
};

struct puback_packet {
  std::uint16_t packet_id = 0;
  friend bool operator==(const puback_packet&, const puback_packet&) = default;
};
struct pubrec_packet {
  std::uint16_t packet_id = 0;
  friend bool operator==(const pubrec_packet&, const pubrec_packet&) = default;
};
struct pubrel_packet {
  std::uint16_t packet_id = 0;
  friend bool operator==(const pubrel_packet&, const pubrel_packet&) = default;
};
struct pubcomp_packet {
  std::uint16_t packet_id = 0;
  friend bool operator==(const pubcomp_packet&, const pubcomp_packet&) = default;
};

struct subscription {
  std::string filter;
  std::uint8_t qos = 0;
  friend bool operator==(const subscription&, const subscription&) = default;
};
struct subscribe_packet {
  std::uint16_t packet_id = 0;
  std::vector<subscription> topics;  // at least one
  friend bool operator==(const subscribe_packet&, const subscribe_packet&) = default;
};
struct suback_packet {
  std::uint16_t packet_id = 0;
  std::vector<std::uint8_t> return_codes;  // 0..2 granted QoS, 0x80 failure
  friend bool operator==(const suback_packet&, const suback_packet&) = default;
};
struct unsubscribe_packet {
  std::uint16_t packet_id = 0;
  std::vector<std::string> filters;  // at least one
  friend bool operator==(const unsubscribe_packet&, const unsubscribe_packet&) = default;
};
struct unsuback_packet {
  std::uint16_t packet_id = 0;
  friend bool operator==(const unsuback_packet&, const unsuback_packet&) = default;
};
struct pingreq_packet {
  friend bool operator==(const pingreq_packet&, const pingreq_packet&) = default;
};
struct pingresp_packet {
  friend bool operator==(const pingresp_packet&, const pingresp_packet&) = default;
};
struct disconnect_packet {
  friend bool operator==(const disconnect_packet&, const disconnect_packet&) = default;
};

using packet =
    std::variant<connect_packet, connack_packet, publish_packet, puback_packet, pubrec_packet,
                 pubrel_packet, pubcomp_packet, subscribe_packet, suback_packet, unsubscribe_packet,
                 unsuback_packet, pingreq_packet, pingresp_packet, disconnect_packet>;

// ---- encoding: appends to `out` ----

void encode(const packet& p, bytes& out);
bytes encode(const packet& p);
// The hot path (no copy of topic or payload into a packet value first).
void append_publish(bytes& out, std::string_view topic, std::span<const std::uint8_t> payload,
                    std::uint8_t qos, bool retain, bool dup, std::uint16_t packet_id);
// PUBACK, PUBREC, PUBREL (flags 0b0010), PUBCOMP, UNSUBACK.
void append_ack(bytes& out, packet_type type, std::uint16_t packet_id);
// The Remaining Length varint (§2.2.3); `n` <= max_remaining_length.
void append_remaining_length(bytes& out, std::size_t n);

// ---- splitting a byte stream ----

enum class decode_error : std::uint8_t {
  truncated,             // the packet (or its fixed header) is not complete in the span
  bad_remaining_length,  // a fifth length byte (continuation bit set on the fourth)
  reserved_type,         // packet type 0 or 15
  bad_flags,             // fixed-header flags other than the ones §2.2.2 requires
  bad_qos,               // PUBLISH QoS 3, a will QoS 3, a SUBSCRIBE QoS > 2
  too_short,             // the body ends before a field it must hold
  too_long,              // bytes after the last field of a fixed-size packet
  bad_protocol,          // CONNECT protocol name not "MQTT" or level not 4
  bad_connect_flags,     // reserved bit set, will flags without a will, password without user
  bad_packet_id,         // packet id 0 where one is required
  empty_list,            // SUBSCRIBE / UNSUBSCRIBE / SUBACK without a topic
  bad_utf8,              // a topic or client id with a U+0000 or invalid UTF-8
};

const char* to_string(decode_error e) noexcept;

// The fixed header at the front of `stream`: how long the whole packet is.
struct frame_info {
  std::uint8_t first = 0;       // type and flags
  std::size_t header_size = 0;  // 2..5
  std::size_t remaining = 0;    // body length
  std::size_t size() const noexcept { return header_size + remaining; }
};
// nullopt while the header is incomplete (feed more bytes); decode_error::bad_remaining_length
// when the stream is not MQTT; otherwise the header, whose packet may still be incomplete.
std::variant<std::optional<frame_info>, decode_error> peek_frame(
    std::span<const std::uint8_t> stream) noexcept;

using decode_result = std::variant<packet, decode_error>;

// Decodes exactly one whole packet (fixed header included, nothing after it).
decode_result decode(std::span<const std::uint8_t> whole_packet);

}  // namespace mqttsn::mqtt311
