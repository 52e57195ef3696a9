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
#include <vector>

namespace bench::mqtt_wire {

using bytes = std::vector<std::uint8_t>;

enum packet_type : std::uint8_t {
  connect = 1, connack = 2, publish = 3, puback = 4, pubrec = 5, pubrel = 6, pubcomp = 7,
  subscribe = 8, suback = 9, pingreq = 12, pingresp = 13, disconnect = 14,
};

inline void put16(bytes& b, std::size_t v) {
  b.push_back(static_cast<std::uint8_t>((v >> 8) & 0xFF));
  b.push_back(static_cast<std::uint8_t>(v & 0xFF));
}
inline void put_string(bytes& b, std::string_view s) {
  put16(b, s.size());
  b.insert(b.end(), s.begin(), s.end());
}
// Fixed header (type and flags, remaining length) in front of `body`, appended to `out`.
inline void frame(bytes& out, std::uint8_t first, const bytes& body) {
  out.push_back(first);
  std::size_t n = body.size();
  do {
    auto digit = static_cast<std::uint8_t>(n % 128);
    n /= 128;
    if (n > 0) digit |= 0x80;
    out.push_back(digit);
  } while (n > 0);
  out.insert(out.end(), body.begin(), body.end());
}

inline void append_connect(bytes& out, std::string_view client_id, std::uint16_t keep_alive) {
  bytes b;
  put_string(b, "MQTT");
  b.push_back(4);     // protocol level 3.1.1
  b.push_back(0x02);  // clean session
  put16(b, keep_alive);
  put_string(b, client_id);
  frame(out, connect << 4, b);
}

inline void append_subscribe(bytes& out, std::uint16_t mid, std::string_view filter, int qos) {
  bytes b;
  put16(b, mid);
  put_string(b, filter);
  b.push_back(static_cast<std::uint8_t>(qos));
  frame(out, (subscribe << 4) | 0x02, b);
}

inline void append_publish(bytes& out, std::string_view topic, std::span<const std::uint8_t> payload, int qos,
                           std::uint16_t mid, bool dup = false) {
  bytes b;
  b.reserve(topic.size() + payload.size() + 4);
  put_string(b, topic);
  if (qos > 0) put16(b, mid);
  b.insert(b.end(), payload.begin(), payload.end());
  frame(out, static_cast<std::uint8_t>((publish << 4) | (dup ? 0x08 : 0) | (qos << 1)), b);
}

// PUBACK, PUBREC, PUBREL (flags 0b0010), PUBCOMP.
inline void append_ack(bytes& out, packet_type t, std::uint16_t mid) {
  out.push_back(static_cast<std::uint8_t>((t << 4) | (t == pubrel ? 0x02 : 0)));
  out.push_back(2);
  out.push_back(static_cast<std::uint8_t>(mid >> 8));
  out.push_back(static_cast<std::uint8_t>(mid & 0xFF));
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

// Splits a TCP byte stream into packets. Feed bytes with append(); next() returns packets whose
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
    const std::size_t avail = end_ - start_;
    if (avail < 2) return false;
    std::size_t len = 0, mult = 1, i = 1;
    for (;; ++i) {
      if (i > 4) {
        bad = true;
        return false;
      }
      if (i >= avail) return false;
      const auto d = buf_[start_ + i];
      len += (d & 0x7FU) * mult;
      mult *= 128;
      if ((d & 0x80) == 0) break;
    }
    const std::size_t total = i + 1 + len;
    if (avail < total) return false;
    p.type = buf_[start_] >> 4;
    p.flags = buf_[start_] & 0x0F;
    p.body = std::span<const std::uint8_t>(buf_.data() + start_ + i + 1, len);
    start_ += total;
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
