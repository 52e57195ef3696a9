// Wire format of MQTT-SN v1.2. The error mapping and the order of the checks are documented next to
// decode_error in codec.hpp; this file must follow that order exactly.
#include "mqttsn/codec.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <variant>

namespace mqttsn {
namespace {

using byte_span = std::span<const std::uint8_t>;

// Length field (§5.2.1).
constexpr std::uint8_t long_length_marker = 0x01;
constexpr std::size_t short_length_size = 1;
constexpr std::size_t long_length_size = 3;
constexpr std::size_t max_short_frame_size = 255;
// Paho's encoder (07a95121) declares 255 in the long form for a 257-byte frame (PROTOCOL.md §2.5).
constexpr std::size_t paho_declared_length = 255;
constexpr std::size_t paho_frame_size = 257;

// Forwarder encapsulation (§5.5): Length, MsgType, Ctrl, then the wireless node id.
constexpr std::uint8_t encapsulated_code = static_cast<std::uint8_t>(msg_type::encapsulated);
constexpr std::size_t encapsulation_fixed_size = 3;
constexpr std::size_t max_encapsulation_header = 255;
constexpr std::uint8_t radius_mask = 0x03;

// Flags byte (§5.3.4).
constexpr std::uint8_t flag_dup = 0x80;
constexpr std::uint8_t flag_qos_mask = 0x60;
constexpr unsigned flag_qos_shift = 5;
constexpr std::uint8_t flag_retain = 0x10;
constexpr std::uint8_t flag_will = 0x08;
constexpr std::uint8_t flag_clean_session = 0x04;
constexpr std::uint8_t flag_topic_id_type_mask = 0x03;
constexpr std::uint8_t reserved_topic_id_type_bits = 0x03;

constexpr std::uint8_t protocol_id_v1_2 = 0x01;

// ---------------------------------------------------------------------------------------------
// Decoding

// Sequential reads from a body whose size the caller has already checked: no read here can pass
// the end of the span.
class reader {
 public:
  explicit reader(byte_span body) noexcept : body_(body) {}

  [[nodiscard]] std::size_t remaining() const noexcept { return body_.size() - pos_; }

  std::uint8_t u8() noexcept { return body_[pos_++]; }

  std::uint16_t u16() noexcept {
    const auto value = static_cast<std::uint16_t>((body_[pos_] << 8U) | body_[pos_ + 1]);
    pos_ += 2;
    return value;
  }

  byte_span rest() noexcept {
    const byte_span tail = body_.subspan(pos_);
    pos_ = body_.size();
    return tail;
  }

  std::string rest_string() {
    const byte_span tail = rest();
    return {reinterpret_cast<const char*>(tail.data()), tail.size()};
  }

  bytes rest_bytes() {
    const byte_span tail = rest();
    return {tail.begin(), tail.end()};
  }

 private:
  byte_span body_;
  std::size_t pos_ = 0;
};

// too_short / too_long for a part that must be exactly `expected` bytes; nullopt when it is.
std::optional<decode_error> size_error(std::size_t actual, std::size_t expected) noexcept {
  if (actual < expected) return decode_error::too_short;
  if (actual > expected) return decode_error::too_long;
  return std::nullopt;
}

qos qos_of(std::uint8_t flags) noexcept {
  switch ((flags & flag_qos_mask) >> flag_qos_shift) {
    case 0: return qos::at_most_once;
    case 1: return qos::at_least_once;
    case 2: return qos::exactly_once;
    default: return qos::minus_one;
  }
}

bool has_reserved_topic_id_type(std::uint8_t flags) noexcept {
  return (flags & flag_topic_id_type_mask) == reserved_topic_id_type_bits;
}

topic_id_type topic_id_type_of(std::uint8_t flags) noexcept {
  return static_cast<topic_id_type>(flags & flag_topic_id_type_mask);
}

return_code return_code_of(std::uint8_t byte) noexcept { return static_cast<return_code>(byte); }

decode_result decode_advertise(byte_span body) {
  if (auto e = size_error(body.size(), 3)) return *e;
  reader r(body);
  advertise m;
  m.gw_id = r.u8();
  m.duration = r.u16();
  return message{m};
}

decode_result decode_searchgw(byte_span body) {
  if (auto e = size_error(body.size(), 1)) return *e;
  return message{searchgw{body[0]}};
}

decode_result decode_gwinfo(byte_span body) {
  if (body.empty()) return decode_error::too_short;
  reader r(body);
  gwinfo m;
  m.gw_id = r.u8();
  m.gw_address = r.rest_bytes();
  return message{std::move(m)};
}

decode_result decode_connect(byte_span body) {
  if (body.size() < 4) return decode_error::too_short;
  reader r(body);
  const std::uint8_t flags = r.u8();
  if (r.u8() != protocol_id_v1_2) return decode_error::bad_protocol_id;
  connect m;
  m.will = (flags & flag_will) != 0;
  m.clean_session = (flags & flag_clean_session) != 0;
  m.duration = r.u16();
  if (r.remaining() == 0) return decode_error::empty_client_id;
  m.client_id = r.rest_string();
  return message{std::move(m)};
}

template <typename Ack>
decode_result decode_return_code_only(byte_span body) {
  if (auto e = size_error(body.size(), 1)) return *e;
  Ack m;
  m.rc = return_code_of(body[0]);
  return message{m};
}

template <typename Empty>
decode_result decode_no_body(byte_span body) {
  if (!body.empty()) return decode_error::too_long;
  return message{Empty{}};
}

// WILLTOPIC and WILLTOPICUPD. Both empty forms (no flags, or flags without a topic: Paho) decode
// to a default value, flags dropped, so that encode() -> decode() gives the same value back.
template <typename WillTopic>
decode_result decode_will_topic(byte_span body) {
  if (body.empty()) return message{WillTopic{}};
  reader r(body);
  const std::uint8_t flags = r.u8();
  const qos will_qos = qos_of(flags);
  if (will_qos == qos::minus_one) return decode_error::invalid_qos;
  if (r.remaining() == 0) return message{WillTopic{}};
  WillTopic m;
  m.will_qos = will_qos;
  m.retain = (flags & flag_retain) != 0;
  m.topic = r.rest_string();
  return message{std::move(m)};
}

template <typename WillMsg>
decode_result decode_will_message(byte_span body) {
  WillMsg m;
  m.message.assign(body.begin(), body.end());
  return message{std::move(m)};
}

decode_result decode_register(byte_span body) {
  if (body.size() < 4) return decode_error::too_short;
  reader r(body);
  register_ m;
  m.id = r.u16();
  m.mid = r.u16();
  if (r.remaining() == 0) return decode_error::empty_topic_name;
  m.topic_name = r.rest_string();
  return message{std::move(m)};
}

// REGACK and PUBACK: TopicId, MsgId, ReturnCode.
template <typename Ack>
decode_result decode_topic_ack(byte_span body) {
  if (auto e = size_error(body.size(), 5)) return *e;
  reader r(body);
  Ack m;
  m.id = r.u16();
  m.mid = r.u16();
  m.rc = return_code_of(r.u8());
  return message{m};
}

decode_result decode_publish(byte_span body) {
  if (body.size() < 5) return decode_error::too_short;
  reader r(body);
  const std::uint8_t flags = r.u8();
  if (has_reserved_topic_id_type(flags)) return decode_error::reserved_topic_id_type;
  publish m;
  m.dup = (flags & flag_dup) != 0;
  m.q = qos_of(flags);
  m.retain = (flags & flag_retain) != 0;
  m.id_type = topic_id_type_of(flags);
  m.id = r.u16();
  m.mid = r.u16();
  m.data = r.rest_bytes();
  return message{std::move(m)};
}

// PUBREC, PUBREL, PUBCOMP, UNSUBACK: MsgId only.
template <typename Ack>
decode_result decode_msg_id_only(byte_span body) {
  if (auto e = size_error(body.size(), 2)) return *e;
  reader r(body);
  Ack m;
  m.mid = r.u16();
  return message{m};
}

// The topic part of SUBSCRIBE / UNSUBSCRIBE: a name to the end of the frame, or exactly 2 bytes.
template <typename Request>
std::optional<decode_error> read_topic(reader& r, Request& m) {
  if (m.id_type == topic_id_type::normal) {
    if (r.remaining() == 0) return decode_error::empty_topic_name;
    m.topic_name = r.rest_string();
    return std::nullopt;
  }
  if (auto e = size_error(r.remaining(), 2)) return e;
  m.id = r.u16();
  return std::nullopt;
}

decode_result decode_subscribe(byte_span body) {
  if (body.size() < 3) return decode_error::too_short;
  reader r(body);
  const std::uint8_t flags = r.u8();
  if (has_reserved_topic_id_type(flags)) return decode_error::reserved_topic_id_type;
  subscribe m;
  m.q = qos_of(flags);
  if (m.q == qos::minus_one) return decode_error::invalid_qos;
  m.dup = (flags & flag_dup) != 0;
  m.id_type = topic_id_type_of(flags);
  m.mid = r.u16();
  if (auto e = read_topic(r, m)) return *e;
  return message{std::move(m)};
}

decode_result decode_unsubscribe(byte_span body) {
  if (body.size() < 3) return decode_error::too_short;
  reader r(body);
  const std::uint8_t flags = r.u8();
  if (has_reserved_topic_id_type(flags)) return decode_error::reserved_topic_id_type;
  unsubscribe m;
  m.id_type = topic_id_type_of(flags);
  m.mid = r.u16();
  if (auto e = read_topic(r, m)) return *e;
  return message{std::move(m)};
}

decode_result decode_suback(byte_span body) {
  if (auto e = size_error(body.size(), 6)) return *e;
  reader r(body);
  suback m;
  m.granted = qos_of(r.u8());
  if (m.granted == qos::minus_one) return decode_error::invalid_qos;
  m.id = r.u16();
  m.mid = r.u16();
  m.rc = return_code_of(r.u8());
  return message{m};
}

decode_result decode_pingreq(byte_span body) {
  reader r(body);
  return message{pingreq{r.rest_string()}};
}

decode_result decode_disconnect(byte_span body) {
  if (body.empty()) return message{disconnect{}};
  if (auto e = size_error(body.size(), 2)) return *e;
  reader r(body);
  return message{disconnect{r.u16()}};
}

// `frame` starts with a 1-byte Length and MsgType 0xFE; the Length covers only the header.
decode_result decode_encapsulated(byte_span frame) {
  const std::size_t header_size = frame[0];
  if (header_size < encapsulation_fixed_size || header_size >= frame.size()) {
    return decode_error::bad_encapsulation;
  }
  encapsulated m;
  m.radius = static_cast<std::uint8_t>(frame[2] & radius_mask);
  const byte_span node_id =
      frame.subspan(encapsulation_fixed_size, header_size - encapsulation_fixed_size);
  const byte_span inner = frame.subspan(header_size);
  m.node_id.assign(node_id.begin(), node_id.end());
  m.frame.assign(inner.begin(), inner.end());
  return message{std::move(m)};
}

decode_result decode_body(std::uint8_t type, byte_span body) {
  switch (static_cast<msg_type>(type)) {
    case msg_type::advertise: return decode_advertise(body);
    case msg_type::searchgw: return decode_searchgw(body);
    case msg_type::gwinfo: return decode_gwinfo(body);
    case msg_type::connect: return decode_connect(body);
    case msg_type::connack: return decode_return_code_only<connack>(body);
    case msg_type::willtopicreq: return decode_no_body<willtopicreq>(body);
    case msg_type::willtopic: return decode_will_topic<willtopic>(body);
    case msg_type::willmsgreq: return decode_no_body<willmsgreq>(body);
    case msg_type::willmsg: return decode_will_message<willmsg>(body);
    case msg_type::register_: return decode_register(body);
    case msg_type::regack: return decode_topic_ack<regack>(body);
    case msg_type::publish: return decode_publish(body);
    case msg_type::puback: return decode_topic_ack<puback>(body);
    case msg_type::pubcomp: return decode_msg_id_only<pubcomp>(body);
    case msg_type::pubrec: return decode_msg_id_only<pubrec>(body);
    case msg_type::pubrel: return decode_msg_id_only<pubrel>(body);
    case msg_type::subscribe: return decode_subscribe(body);
    case msg_type::suback: return decode_suback(body);
    case msg_type::unsubscribe: return decode_unsubscribe(body);
    case msg_type::unsuback: return decode_msg_id_only<unsuback>(body);
    case msg_type::pingreq: return decode_pingreq(body);
    case msg_type::pingresp: return decode_no_body<pingresp>(body);
    case msg_type::disconnect: return decode_disconnect(body);
    case msg_type::willtopicupd: return decode_will_topic<willtopicupd>(body);
    case msg_type::willtopicresp: return decode_return_code_only<willtopicresp>(body);
    case msg_type::willmsgupd: return decode_will_message<willmsgupd>(body);
    case msg_type::willmsgresp: return decode_return_code_only<willmsgresp>(body);
    // Only reachable through the long Length form: encapsulation has a 1-byte Length (§5.5).
    case msg_type::encapsulated: return decode_error::bad_encapsulation;
  }
  return decode_error::reserved_type;
}

// ---------------------------------------------------------------------------------------------
// Encoding

std::uint8_t qos_bits(qos q) noexcept {
  switch (q) {
    case qos::at_most_once: return 0x00;
    case qos::at_least_once: return 0x20;
    case qos::exactly_once: return 0x40;
    case qos::minus_one: return 0x60;
  }
  return 0x00;
}

std::uint8_t topic_id_type_bits(topic_id_type t) noexcept {
  return static_cast<std::uint8_t>(static_cast<std::uint8_t>(t) & flag_topic_id_type_mask);
}

std::uint8_t bit_if(bool set, std::uint8_t bit) noexcept { return set ? bit : std::uint8_t{0}; }

// Size of everything after MsgType.
std::size_t body_size(const advertise& /*m*/) noexcept { return 3; }
std::size_t body_size(const searchgw& /*m*/) noexcept { return 1; }
std::size_t body_size(const gwinfo& m) noexcept { return 1 + m.gw_address.size(); }
std::size_t body_size(const connect& m) noexcept { return 4 + m.client_id.size(); }
std::size_t body_size(const connack& /*m*/) noexcept { return 1; }
std::size_t body_size(const willtopicreq& /*m*/) noexcept { return 0; }
std::size_t body_size(const willtopic& m) noexcept {
  return m.topic.empty() ? 0 : 1 + m.topic.size();
}
std::size_t body_size(const willmsgreq& /*m*/) noexcept { return 0; }
std::size_t body_size(const willmsg& m) noexcept { return m.message.size(); }
std::size_t body_size(const register_& m) noexcept { return 4 + m.topic_name.size(); }
std::size_t body_size(const regack& /*m*/) noexcept { return 5; }
std::size_t body_size(const publish& m) noexcept { return 5 + m.data.size(); }
std::size_t body_size(const puback& /*m*/) noexcept { return 5; }
std::size_t body_size(const pubrec& /*m*/) noexcept { return 2; }
std::size_t body_size(const pubrel& /*m*/) noexcept { return 2; }
std::size_t body_size(const pubcomp& /*m*/) noexcept { return 2; }
std::size_t body_size(const subscribe& m) noexcept {
  return 3 + (m.id_type == topic_id_type::normal ? m.topic_name.size() : 2);
}
std::size_t body_size(const suback& /*m*/) noexcept { return 6; }
std::size_t body_size(const unsubscribe& m) noexcept {
  return 3 + (m.id_type == topic_id_type::normal ? m.topic_name.size() : 2);
}
std::size_t body_size(const unsuback& /*m*/) noexcept { return 2; }
std::size_t body_size(const pingreq& m) noexcept { return m.client_id.size(); }
std::size_t body_size(const pingresp& /*m*/) noexcept { return 0; }
std::size_t body_size(const disconnect& m) noexcept { return m.duration ? 2 : 0; }
std::size_t body_size(const willtopicupd& m) noexcept {
  return m.topic.empty() ? 0 : 1 + m.topic.size();
}
std::size_t body_size(const willtopicresp& /*m*/) noexcept { return 1; }
std::size_t body_size(const willmsgupd& m) noexcept { return m.message.size(); }
std::size_t body_size(const willmsgresp& /*m*/) noexcept { return 1; }

// Total frame size for a body: the 1-byte Length form while it fits, else the 3-byte form.
std::size_t frame_size_for_body(std::size_t body) noexcept {
  const std::size_t short_total = short_length_size + 1 + body;
  return short_total <= max_short_frame_size ? short_total : long_length_size + 1 + body;
}

template <typename T>
std::size_t frame_size(const T& m) noexcept {
  return frame_size_for_body(body_size(m));
}

std::size_t frame_size(const encapsulated& m) noexcept {
  return encapsulation_fixed_size + m.node_id.size() + m.frame.size();
}

// Appends to a buffer that reserve_for() has made large enough.
class writer {
 public:
  explicit writer(bytes& out) noexcept : out_(out) {}

  void u8(std::uint8_t v) { out_.push_back(v); }

  void u16(std::uint16_t v) {
    out_.push_back(static_cast<std::uint8_t>(v >> 8U));
    out_.push_back(static_cast<std::uint8_t>(v & 0xFFU));
  }

  void raw(const bytes& v) { out_.insert(out_.end(), v.begin(), v.end()); }

  void raw(const std::string& v) {
    const auto* first = reinterpret_cast<const std::uint8_t*>(v.data());
    out_.insert(out_.end(), first, first + v.size());
  }

 private:
  bytes& out_;
};

// Exact size for a fresh buffer; geometric growth when frames are appended one after another.
void reserve_for(bytes& out, std::size_t extra) {
  if (out.capacity() - out.size() >= extra) return;
  const std::size_t needed = out.size() + extra;
  out.reserve(needed > 2 * out.capacity() ? needed : 2 * out.capacity());
}

void write_body(writer& w, const advertise& m) {
  w.u8(m.gw_id);
  w.u16(m.duration);
}
void write_body(writer& w, const searchgw& m) { w.u8(m.radius); }
void write_body(writer& w, const gwinfo& m) {
  w.u8(m.gw_id);
  w.raw(m.gw_address);
}
void write_body(writer& w, const connect& m) {
  w.u8(static_cast<std::uint8_t>(bit_if(m.will, flag_will) |
                                 bit_if(m.clean_session, flag_clean_session)));
  w.u8(protocol_id_v1_2);
  w.u16(m.duration);
  w.raw(m.client_id);
}
void write_body(writer& w, const connack& m) { w.u8(static_cast<std::uint8_t>(m.rc)); }
void write_body(writer& /*w*/, const willtopicreq& /*m*/) {}
template <typename WillTopic>
void write_will_topic(writer& w, const WillTopic& m) {
  if (m.topic.empty()) return;  // the spec's 2-byte empty form
  w.u8(static_cast<std::uint8_t>(qos_bits(m.will_qos) | bit_if(m.retain, flag_retain)));
  w.raw(m.topic);
}
void write_body(writer& w, const willtopic& m) { write_will_topic(w, m); }
void write_body(writer& /*w*/, const willmsgreq& /*m*/) {}
void write_body(writer& w, const willmsg& m) { w.raw(m.message); }
void write_body(writer& w, const register_& m) {
  w.u16(m.id);
  w.u16(m.mid);
  w.raw(m.topic_name);
}
template <typename Ack>
void write_topic_ack(writer& w, const Ack& m) {
  w.u16(m.id);
  w.u16(m.mid);
  w.u8(static_cast<std::uint8_t>(m.rc));
}
void write_body(writer& w, const regack& m) { write_topic_ack(w, m); }
void write_body(writer& w, const publish& m) {
  w.u8(static_cast<std::uint8_t>(bit_if(m.dup, flag_dup) | qos_bits(m.q) |
                                 bit_if(m.retain, flag_retain) | topic_id_type_bits(m.id_type)));
  w.u16(m.id);
  w.u16(m.mid);
  w.raw(m.data);
}
void write_body(writer& w, const puback& m) { write_topic_ack(w, m); }
void write_body(writer& w, const pubrec& m) { w.u16(m.mid); }
void write_body(writer& w, const pubrel& m) { w.u16(m.mid); }
void write_body(writer& w, const pubcomp& m) { w.u16(m.mid); }
template <typename Request>
void write_topic(writer& w, const Request& m) {
  if (m.id_type == topic_id_type::normal) {
    w.raw(m.topic_name);
  } else {
    w.u16(m.id);
  }
}
void write_body(writer& w, const subscribe& m) {
  w.u8(static_cast<std::uint8_t>(bit_if(m.dup, flag_dup) | qos_bits(m.q) |
                                 topic_id_type_bits(m.id_type)));
  w.u16(m.mid);
  write_topic(w, m);
}
void write_body(writer& w, const suback& m) {
  w.u8(qos_bits(m.granted));
  w.u16(m.id);
  w.u16(m.mid);
  w.u8(static_cast<std::uint8_t>(m.rc));
}
void write_body(writer& w, const unsubscribe& m) {
  w.u8(topic_id_type_bits(m.id_type));
  w.u16(m.mid);
  write_topic(w, m);
}
void write_body(writer& w, const unsuback& m) { w.u16(m.mid); }
void write_body(writer& w, const pingreq& m) { w.raw(m.client_id); }
void write_body(writer& /*w*/, const pingresp& /*m*/) {}
void write_body(writer& w, const disconnect& m) {
  if (m.duration) w.u16(*m.duration);
}
void write_body(writer& w, const willtopicupd& m) { write_will_topic(w, m); }
void write_body(writer& w, const willtopicresp& m) { w.u8(static_cast<std::uint8_t>(m.rc)); }
void write_body(writer& w, const willmsgupd& m) { w.raw(m.message); }
void write_body(writer& w, const willmsgresp& m) { w.u8(static_cast<std::uint8_t>(m.rc)); }

template <typename T>
bool write_frame(const T& m, msg_type type, bytes& out) {
  const std::size_t total = frame_size(m);
  if (total > max_frame_size) return false;
  reserve_for(out, total);
  writer w(out);
  if (total <= max_short_frame_size) {
    w.u8(static_cast<std::uint8_t>(total));
  } else {
    w.u8(long_length_marker);
    w.u16(static_cast<std::uint16_t>(total));
  }
  w.u8(static_cast<std::uint8_t>(type));
  write_body(w, m);
  return true;
}

bool write_frame(const encapsulated& m, msg_type /*type*/, bytes& out) {
  const std::size_t header_size = encapsulation_fixed_size + m.node_id.size();
  const std::size_t total = header_size + m.frame.size();
  if (header_size > max_encapsulation_header || total > max_frame_size) return false;
  reserve_for(out, total);
  writer w(out);
  w.u8(static_cast<std::uint8_t>(header_size));
  w.u8(encapsulated_code);
  w.u8(static_cast<std::uint8_t>(m.radius & radius_mask));
  w.raw(m.node_id);
  w.raw(m.frame);
  return true;
}

// encoded_size() dispatch without std::visit, whose bad_variant_access path would break noexcept.
// A valueless message (impossible without an exception during assignment) has size 0.
template <std::size_t... I>
std::size_t frame_size_of_alternative(const message& m,
                                      std::index_sequence<I...> /*unused*/) noexcept {
  std::size_t size = 0;
  static_cast<void>(((m.index() == I && ((size = frame_size(*std::get_if<I>(&m))), true)) || ...));
  return size;
}

}  // namespace

const char* to_string(decode_error e) noexcept {
  switch (e) {
    case decode_error::empty: return "empty";
    case decode_error::truncated_length: return "truncated_length";
    case decode_error::zero_length: return "zero_length";
    case decode_error::length_mismatch: return "length_mismatch";
    case decode_error::missing_type: return "missing_type";
    case decode_error::reserved_type: return "reserved_type";
    case decode_error::too_short: return "too_short";
    case decode_error::too_long: return "too_long";
    case decode_error::reserved_topic_id_type: return "reserved_topic_id_type";
    case decode_error::invalid_qos: return "invalid_qos";
    case decode_error::bad_protocol_id: return "bad_protocol_id";
    case decode_error::empty_client_id: return "empty_client_id";
    case decode_error::empty_topic_name: return "empty_topic_name";
    case decode_error::bad_encapsulation: return "bad_encapsulation";
  }
  return "unknown";
}

decode_result decode(std::span<const std::uint8_t> frame) noexcept {
  const std::size_t size = frame.size();
  if (size == 0) return decode_error::empty;

  // An encapsulation's Length counts only its own header, so the Length checks below do not apply.
  if (frame[0] != long_length_marker && size >= 2 && frame[1] == encapsulated_code) {
    return decode_encapsulated(frame);
  }

  std::size_t length_size = short_length_size;
  std::size_t declared = frame[0];
  if (frame[0] == long_length_marker) {
    if (size < long_length_size) return decode_error::truncated_length;
    length_size = long_length_size;
    declared = (std::size_t{frame[1]} << 8U) | frame[2];
  }
  if (declared == 0) return decode_error::zero_length;
  if (declared <= length_size || size <= length_size) return decode_error::missing_type;
  const bool paho_off_by_two = length_size == long_length_size &&
                               declared == paho_declared_length && size == paho_frame_size;
  if (declared != size && !paho_off_by_two) return decode_error::length_mismatch;

  return decode_body(frame[length_size], frame.subspan(length_size + 1));
}

std::size_t encoded_size(const message& m) noexcept {
  return frame_size_of_alternative(m, std::make_index_sequence<std::variant_size_v<message>>{});
}

bool encode(const message& m, bytes& out) {
  const msg_type type = type_of(m);
  return std::visit([type, &out](const auto& value) { return write_frame(value, type, out); }, m);
}

bytes encode(const message& m) {
  bytes out;
  encode(m, out);
  return out;
}

}  // namespace mqttsn
