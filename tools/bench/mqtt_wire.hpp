// The few MQTT 3.1.1 packets mqttsn-bench sends and reads as a plain MQTT client (the measuring
// subscriber and the --direct baseline publishers), over ordinary TCP sockets. A client library
// (Paho) would put its own threads and per-message costs into the baseline and, worse, run the
// subscriber on the same shared threads as the publishers it measures; these few bytes do not.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "mqttsn/mqtt_codec.hpp"

namespace bench::mqtt_wire {

using bytes = std::vector<std::uint8_t>;

enum packet_type : std::uint8_t {
  connect = 1, connack = 2, publish = 3, puback = 4, pubrec = 5, pubrel = 6, pubcomp = 7,
  subscribe = 8, suback = 9, pingreq = 12, pingresp = 13, disconnect = 14,
};

// Encoding is the gateway's own MQTT 3.1.1 codec (mqttsn/mqtt_codec.hpp); this header only
// adapts it to the bench's names and reads PUBLISHes without copying their payload.
namespace codec = mqttsn::mqtt311;

inline void append_connect(bytes& out, std::string_view client_id, std::uint16_t keep_alive) {
  codec::connect_packet c;
  c.client_id = std::string(client_id);
  c.keep_alive = keep_alive;  // clean session
  codec::encode(c, out);
}

inline void append_subscribe(bytes& out, std::uint16_t mid, std::string_view filter, int qos) {
  codec::encode(codec::subscribe_packet{mid, {codec::subscription{std::string(filter), static_cast<std::uint8_t>(qos)}}},
                out);
}

inline void append_publish(bytes& out, std::string_view topic, std::span<const std::uint8_t> payload, int qos,
                           std::uint16_t mid, bool dup = false) {
  codec::append_publish(out, topic, payload, static_cast<std::uint8_t>(qos), false, dup, mid);
}

// PUBACK, PUBREC, PUBREL (flags 0b0010), PUBCOMP.
inline void append_ack(bytes& out, packet_type t, std::uint16_t mid) {
  codec::append_ack(out, static_cast<codec::packet_type>(t), mid);
}

inline void append_simple(bytes& out, packet_type t) {
  out.push_back(static_cast<std::uint8_t>(t << 4));
  out.push_back(0);
}

struct packet {
  std::uint8_t type = 0, flags = 0;
  std::span<const std::uint8_t> body;
  std::uint16_t mid() const { return body.size() >= 2 ? static_cast<std::uint16_t>(body[0] << 8 | body[1]) : 0; }
};

struct publish_view {
  std::string_view topic;
  int qos = 0;
  std::uint16_t mid = 0;
  std::span<const std::uint8_t> payload;
};

inline std::optional<publish_view> parse_publish(const packet& p) {
  if (p.body.size() < 2) return std::nullopt;
  const std::size_t tlen = static_cast<std::size_t>(p.body[0] << 8 | p.body[1]);
  publish_view v;
  v.qos = (p.flags >> 1) & 3;
  std::size_t at = 2 + tlen + (v.qos > 0 ? 2 : 0);
  if (at > p.body.size() || v.qos == 3) return std::nullopt;
  v.topic = std::string_view(reinterpret_cast<const char*>(p.body.data() + 2), tlen);
  if (v.qos > 0) v.mid = static_cast<std::uint16_t>(p.body[2 + tlen] << 8 | p.body[3 + tlen]);
  v.payload = p.body.subspan(at);
  return v;
}

// Splits a TCP byte stream into packets (the codec's peek_frame). Feed bytes with space()/commit(); next() returns packets whose
// bodies stay valid until the next append() or compact().
class reader {
 public:
  std::uint8_t* space(std::size_t n) {
    compact();
    if (buf_.size() - end_ < n) buf_.resize(end_ + n);
    return buf_.data() + end_;
  }
  void commit(std::size_t n) { end_ += n; }

  // False on a malformed length (more than 4 bytes): the stream is not MQTT.
  bool next(packet& p, bool& bad) {
    bad = false;
    const auto peeked = codec::peek_frame(std::span<const std::uint8_t>(buf_.data() + start_, end_ - start_));
    if (std::holds_alternative<codec::decode_error>(peeked)) {
      bad = true;
      return false;
    }
    const auto& info = std::get<std::optional<codec::frame_info>>(peeked);
    if (!info || end_ - start_ < info->size()) return false;
    p.type = info->first >> 4;
    p.flags = info->first & 0x0F;
    p.body = std::span<const std::uint8_t>(buf_.data() + start_ + info->header_size, info->remaining);
    start_ += info->size();
    return true;
  }

 private:
  void compact() {
    if (start_ == 0) return;
    std::copy(buf_.begin() + static_cast<std::ptrdiff_t>(start_), buf_.begin() + static_cast<std::ptrdiff_t>(end_), buf_.begin());
    end_ -= start_;
    start_ = 0;
  }
  std::vector<std::uint8_t> buf_;
  std::size_t start_ = 0, end_ = 0;
};

}  // namespace bench::mqtt_wire
