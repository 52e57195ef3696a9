// Wire format of MQTT-SN v1.2: message values <-> bytes.
// Pure functions; decoding never throws and never reads outside the given span.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <variant>

#include "mqttsn/message.hpp"

namespace mqttsn {

// Why a frame could not be decoded. Each malformed frame maps to exactly one of these, so the
// gateway can count drops by reason.
//
// decode() checks in this order and reports the first failure:
//  1. framing: empty -> [0xFE frame, see below] -> truncated_length -> zero_length -> missing_type
//     -> length_mismatch -> reserved_type. A long-form Length is accepted even below 256. The one
//     leniency: a long-form Length of exactly 255 on a 257-byte frame (Paho's encoder bug at the
//     255 boundary, PROTOCOL.md §2.5) decodes using the real frame size.
//  2. per message: too_short (fixed fields before the flags-dependent part missing)
//     -> reserved_topic_id_type -> invalid_qos -> bad_protocol_id -> empty_client_id /
//     empty_topic_name -> too_short / too_long (the rest of a fixed-size message or part).
// A frame is an encapsulation when byte 0 is not the long-form marker and byte 1 is 0xFE; its
// Length covers only its own header, so step 1 is replaced by the bad_encapsulation checks and the
// inner frame is returned undecoded.
enum class decode_error : std::uint8_t {
  empty,             // zero bytes
  truncated_length,  // long-form marker 0x01 with fewer than 3 bytes in the frame
  zero_length,       // declared Length 0 (short form, or long form 01 00 00)
  length_mismatch,   // declared Length differs from the frame size
  // No MsgType byte: a 1-byte frame, a 3-byte long-form frame, or a long-form Length of 1..3.
  missing_type,
  reserved_type,  // MsgType not defined by v1.2 (0x03, 0x11, 0x19, 0x1E..0xFD, 0xFF)
  // Body shorter than the message's fixed fields, e.g. a 3-byte DISCONNECT, or a SUBSCRIBE /
  // UNSUBSCRIBE with a predefined or short id of fewer than 2 bytes.
  too_short,
  // Bytes after a fixed-size message or after a 2-byte id, e.g. a DISCONNECT of more than 4 bytes.
  too_long,
  reserved_topic_id_type,  // TopicIdType bits 0b11 in PUBLISH, SUBSCRIBE or UNSUBSCRIBE
  // QoS bits 0b11 (QoS -1) outside PUBLISH: SUBSCRIBE, SUBACK, WILLTOPIC, WILLTOPICUPD (checked
  // whenever their flags byte is present, even in Paho's empty 3-byte WILLTOPIC).
  invalid_qos,
  bad_protocol_id,   // CONNECT with ProtocolId != 0x01
  empty_client_id,   // CONNECT without a client id (ids longer than 23 bytes are accepted)
  empty_topic_name,  // REGISTER, or SUBSCRIBE/UNSUBSCRIBE of TopicIdType normal, without a name
  // 0xFE frame whose header Length is < 3 or not shorter than the frame (no inner frame), or
  // MsgType 0xFE behind a long-form Length (encapsulation has a 1-byte Length only).
  bad_encapsulation,
};

inline constexpr std::size_t decode_error_count = 14;

const char* to_string(decode_error e) noexcept;

using decode_result = std::variant<message, decode_error>;

// Decodes exactly one frame; `frame` must hold the whole frame and nothing else.
decode_result decode(std::span<const std::uint8_t> frame) noexcept;

// Total bytes encode(m) produces, including the Length field.
std::size_t encoded_size(const message& m) noexcept;

// The largest total frame length the wire format can express.
inline constexpr std::size_t max_frame_size = 65535;

// Appends the frame for `m` to `out`. Uses the 1-byte Length form up to 255 bytes, the 3-byte form
// above. Returns false (and appends nothing) when the frame would exceed max_frame_size, or when an
// encapsulated node id is longer than 252 bytes (its header Length is one byte).
// Flag bits a message does not use are written as 0; an empty will topic gives the 2-byte form;
// DISCONNECT carries its duration whenever it is set, even 0.
bool encode(const message& m, bytes& out);

// Convenience: the frame for `m`, empty if it cannot be encoded.
bytes encode(const message& m);

}  // namespace mqttsn
