// MQTT-SN v1.2 messages as plain values: one struct per message type, and a variant of all of them.
// Owns the vocabulary of the protocol; knows nothing about bytes on the wire (codec.hpp) or state (session.hpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace mqttsn {

using bytes = std::vector<std::uint8_t>;
using topic_id = std::uint16_t;
using msg_id = std::uint16_t;

// MsgType codes (spec §5.2.2). Note PUBCOMP (0x0E) precedes PUBREC (0x0F).
enum class msg_type : std::uint8_t {
  advertise = 0x00,
  searchgw = 0x01,
  gwinfo = 0x02,
  connect = 0x04,
  connack = 0x05,
  willtopicreq = 0x06,
  willtopic = 0x07,
  willmsgreq = 0x08,
  willmsg = 0x09,
  register_ = 0x0A,
  regack = 0x0B,
  publish = 0x0C,
  puback = 0x0D,
  pubcomp = 0x0E,
  pubrec = 0x0F,
  pubrel = 0x10,
  subscribe = 0x12,
  suback = 0x13,
  unsubscribe = 0x14,
  unsuback = 0x15,
  pingreq = 0x16,
  pingresp = 0x17,
  disconnect = 0x18,
  willtopicupd = 0x1A,
  willtopicresp = 0x1B,
  willmsgupd = 0x1C,
  willmsgresp = 0x1D,
  encapsulated = 0xFE,
};

// ReturnCode (spec §5.3.10). Values 0x04..0xFF are reserved but may arrive from a peer: the enum
// holds any byte, and anything but `accepted` is a rejection.
enum class return_code : std::uint8_t {
  accepted = 0x00,
  congestion = 0x01,
  invalid_topic_id = 0x02,
  not_supported = 0x03,
};

// QoS as carried in the flags byte; minus_one is "11" (QoS -1, client PUBLISH only).
enum class qos : std::int8_t { at_most_once = 0, at_least_once = 1, exactly_once = 2, minus_one = -1 };

// TopicIdType bits of the flags byte; 0b11 is reserved and never decoded.
enum class topic_id_type : std::uint8_t { normal = 0, predefined = 1, short_name = 2 };

// Reserved topic ids (spec §5.3.11): never assigned.
inline constexpr topic_id reserved_topic_id_low = 0x0000;
inline constexpr topic_id reserved_topic_id_high = 0xFFFF;

struct advertise {
  std::uint8_t gw_id = 0;
  std::uint16_t duration = 0;  // seconds until the next ADVERTISE
  bool operator==(const advertise&) const = default;
};

struct searchgw {
  std::uint8_t radius = 0;
  bool operator==(const searchgw&) const = default;
};

struct gwinfo {
  std::uint8_t gw_id = 0;
  bytes gw_address;  // present only when a client answers on a gateway's behalf
  bool operator==(const gwinfo&) const = default;
};

struct connect {
  bool will = false;
  bool clean_session = false;
  std::uint16_t duration = 0;  // keep-alive, seconds
  std::string client_id;
  bool operator==(const connect&) const = default;
};

struct connack {
  return_code rc = return_code::accepted;
  bool operator==(const connack&) const = default;
};

struct willtopicreq {
  bool operator==(const willtopicreq&) const = default;
};

// An empty topic means "delete the will" (both the 2-byte spec form and Paho's 3-byte form decode so).
struct willtopic {
  qos will_qos = qos::at_most_once;
  bool retain = false;
  std::string topic;
  bool operator==(const willtopic&) const = default;
};

struct willmsgreq {
  bool operator==(const willmsgreq&) const = default;
};

struct willmsg {
  bytes message;
  bool operator==(const willmsg&) const = default;
};

struct register_ {
  topic_id id = 0;  // 0x0000 from a client; the assigned id from the gateway
  msg_id mid = 0;
  std::string topic_name;
  bool operator==(const register_&) const = default;
};

struct regack {
  topic_id id = 0;
  msg_id mid = 0;
  return_code rc = return_code::accepted;
  bool operator==(const regack&) const = default;
};

// For short topic names `id` holds the two name bytes, first byte in the high half.
struct publish {
  bool dup = false;
  qos q = qos::at_most_once;
  bool retain = false;
  topic_id_type id_type = topic_id_type::normal;
  topic_id id = 0;
  msg_id mid = 0;
  bytes data;
  bool operator==(const publish&) const = default;
};

struct puback {
  topic_id id = 0;
  msg_id mid = 0;
  return_code rc = return_code::accepted;
  bool operator==(const puback&) const = default;
};

struct pubrec {
  msg_id mid = 0;
  bool operator==(const pubrec&) const = default;
};

struct pubrel {
  msg_id mid = 0;
  bool operator==(const pubrel&) const = default;
};

struct pubcomp {
  msg_id mid = 0;
  bool operator==(const pubcomp&) const = default;
};

// id_type normal: `topic_name` holds the name or filter; predefined/short: `id` holds the id or
// the two short-name bytes and `topic_name` is empty.
struct subscribe {
  bool dup = false;
  qos q = qos::at_most_once;
  topic_id_type id_type = topic_id_type::normal;
  msg_id mid = 0;
  std::string topic_name;
  topic_id id = 0;
  bool operator==(const subscribe&) const = default;
};

struct suback {
  qos granted = qos::at_most_once;
  topic_id id = 0;
  msg_id mid = 0;
  return_code rc = return_code::accepted;
  bool operator==(const suback&) const = default;
};

struct unsubscribe {
  topic_id_type id_type = topic_id_type::normal;
  msg_id mid = 0;
  std::string topic_name;
  topic_id id = 0;
  bool operator==(const unsubscribe&) const = default;
};

struct unsuback {
  msg_id mid = 0;
  bool operator==(const unsuback&) const = default;
};

// Empty client_id: a plain keep-alive ping. Non-empty: a sleeping client waking up.
struct pingreq {
  std::string client_id;
  bool operator==(const pingreq&) const = default;
};

struct pingresp {
  bool operator==(const pingresp&) const = default;
};

// duration present: the client goes to sleep for that many seconds.
struct disconnect {
  std::optional<std::uint16_t> duration;
  bool operator==(const disconnect&) const = default;
};

// An empty topic deletes will topic and will message.
struct willtopicupd {
  qos will_qos = qos::at_most_once;
  bool retain = false;
  std::string topic;
  bool operator==(const willtopicupd&) const = default;
};

struct willtopicresp {
  return_code rc = return_code::accepted;
  bool operator==(const willtopicresp&) const = default;
};

struct willmsgupd {
  bytes message;
  bool operator==(const willmsgupd&) const = default;
};

struct willmsgresp {
  return_code rc = return_code::accepted;
  bool operator==(const willmsgresp&) const = default;
};

// Forwarder encapsulation (spec §5.5): `frame` is the complete inner MQTT-SN message, undecoded.
struct encapsulated {
  std::uint8_t radius = 0;  // Ctrl bits 1-0
  bytes node_id;            // wireless node id, forwarder-defined
  bytes frame;
  bool operator==(const encapsulated&) const = default;
};

using message =
    std::variant<advertise, searchgw, gwinfo, connect, connack, willtopicreq, willtopic, willmsgreq,
                 willmsg, register_, regack, publish, puback, pubrec, pubrel, pubcomp, subscribe,
                 suback, unsubscribe, unsuback, pingreq, pingresp, disconnect, willtopicupd,
                 willtopicresp, willmsgupd, willmsgresp, encapsulated>;

// The MsgType code of a message value.
msg_type type_of(const message& m) noexcept;

// Human-readable message name ("PUBLISH"), for logs.
const char* name_of(msg_type t) noexcept;

// Two-character short topic name <-> the 16-bit value carried in the TopicId slot.
constexpr topic_id short_topic_id(char first, char second) noexcept {
  return static_cast<topic_id>((static_cast<unsigned char>(first) << 8U) |
                               static_cast<unsigned char>(second));
}

}  // namespace mqttsn
