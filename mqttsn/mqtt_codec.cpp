#include "mqttsn/mqtt_codec.hpp"

#include <utility>

namespace mqttsn::mqtt311 {

namespace {

void put16(bytes& out, std::size_t v) {
  out.push_back(static_cast<std::uint8_t>((v >> 8) & 0xFF));
  out.push_back(static_cast<std::uint8_t>(v & 0xFF));
}

void put_string(bytes& out, std::string_view s) {
  put16(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

void put_binary(bytes& out, std::span<const std::uint8_t> b) {
  put16(out, b.size());
  out.insert(out.end(), b.begin(), b.end());
}

// Length of a UTF-8 encoded string field (2-byte length prefix and the bytes).
std::size_t field(std::size_t n) { return 2 + n; }

void header(bytes& out, std::uint8_t first, std::size_t remaining) {
  out.push_back(first);
  append_remaining_length(out, remaining);
}

std::uint8_t first_byte(packet_type t, std::uint8_t flags = 0) {
  return static_cast<std::uint8_t>((static_cast<std::uint8_t>(t) << 4) | flags);
}

void encode_connect(const connect_packet& c, bytes& out) {
  std::size_t n = field(4) + 1 + 1 + 2 + field(c.client_id.size());
  if (c.will) n += field(c.will->topic.size()) + field(c.will->payload.size());
  if (c.username) n += field(c.username->size());
  if (c.username && c.password) n += field(c.password->size());
  header(out, first_byte(packet_type::connect), n);
  put_string(out, "MQTT");
  out.push_back(4);  // protocol level 3.1.1
  std::uint8_t flags = c.clean_session ? 0x02 : 0x00;
  if (c.will) {
    flags |= 0x04;
    flags |= static_cast<std::uint8_t>((c.will->qos & 3) << 3);
    if (c.will->retain) flags |= 0x20;
  }
  if (c.username) {
    flags |= 0x80;
    if (c.password) flags |= 0x40;
  }
  out.push_back(flags);
  put16(out, c.keep_alive);
  put_string(out, c.client_id);
  if (c.will) {
    put_string(out, c.will->topic);
    put_binary(out, c.will->payload);
  }
  if (c.username) {
    put_string(out, *c.username);
    if (c.password) put_binary(out, *c.password);
  }
}

// ---- decoding ----

// A cursor over a packet body; every read is bounds-checked.
class reader {
 public:
  explicit reader(std::span<const std::uint8_t> b) : b_(b) {}
  std::size_t left() const { return b_.size() - at_; }
  bool u8(std::uint8_t& v) {
    if (left() < 1) return false;
    v = b_[at_++];
    return true;
  }
  bool u16(std::uint16_t& v) {
    if (left() < 2) return false;
    v = static_cast<std::uint16_t>((b_[at_] << 8) | b_[at_ + 1]);
    at_ += 2;
    return true;
  }
  bool binary(std::span<const std::uint8_t>& v) {
    std::uint16_t n = 0;
    if (!u16(n) || left() < n) return false;
    v = b_.subspan(at_, n);
    at_ += n;
    return true;
  }
  std::span<const std::uint8_t> rest() {
    auto r = b_.subspan(at_);
    at_ = b_.size();
    return r;
  }

 private:
  std::span<const std::uint8_t> b_;
  std::size_t at_ = 0;
};

// Well-formed UTF-8 without U+0000 (§1.5.3): no overlong forms, no surrogates, <= U+10FFFF.
bool valid_utf8(std::span<const std::uint8_t> s) {
  for (std::size_t i = 0; i < s.size();) {
    const std::uint8_t c = s[i];
    if (c == 0) return false;
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1FU;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0FU;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07U;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3FU);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

std::string to_text(std::span<const std::uint8_t> s) { return {s.begin(), s.end()}; }

// A UTF-8 string field into `out`.
std::optional<decode_error> read_text(reader& r, std::string& out) {
  std::span<const std::uint8_t> s;
  if (!r.binary(s)) return decode_error::too_short;
  if (!valid_utf8(s)) return decode_error::bad_utf8;
  out = to_text(s);
  return std::nullopt;
}

decode_result decode_connect(reader& r) {
  std::span<const std::uint8_t> name;
  std::uint8_t level = 0, flags = 0;
  connect_packet c;
  if (!r.binary(name)) return decode_error::too_short;
  if (to_text(name) != "MQTT") return decode_error::bad_protocol;
  if (!r.u8(level) || !r.u8(flags) || !r.u16(c.keep_alive)) return decode_error::too_short;
  if (level != 4) return decode_error::bad_protocol;
  const bool will = (flags & 0x04) != 0;
  const auto will_qos = static_cast<std::uint8_t>((flags >> 3) & 3);
  const bool will_retain = (flags & 0x20) != 0;
  const bool has_user = (flags & 0x80) != 0, has_password = (flags & 0x40) != 0;
  if ((flags & 0x01) != 0 || (!will && (will_qos != 0 || will_retain)) ||
      (has_password && !has_user)) {
    return decode_error::bad_connect_flags;
  }
  if (will_qos == 3) return decode_error::bad_qos;
  c.clean_session = (flags & 0x02) != 0;
  if (auto e = read_text(r, c.client_id)) return *e;
  if (will) {
    will_message w;
    w.qos = will_qos;
    w.retain = will_retain;
    if (auto e = read_text(r, w.topic)) return *e;
    std::span<const std::uint8_t> payload;
    if (!r.binary(payload)) return decode_error::too_short;
    w.payload.assign(payload.begin(), payload.end());
    c.will = std::move(w);
  }
  if (has_user) {
    std::string user;
    if (auto e = read_text(r, user)) return *e;
    c.username = std::move(user);
  }
  if (has_password) {
    std::span<const std::uint8_t> pw;
    if (!r.binary(pw)) return decode_error::too_short;
    c.password = bytes(pw.begin(), pw.end());
  }
  if (r.left() != 0) return decode_error::too_long;
  return packet{std::move(c)};
}

decode_result decode_publish(std::uint8_t flags, reader& r) {
  publish_packet p;
  p.qos = static_cast<std::uint8_t>((flags >> 1) & 3);
  p.retain = (flags & 0x01) != 0;
  p.dup = (flags & 0x08) != 0;
  if (p.qos == 3) return decode_error::bad_qos;
  if (p.qos == 0 && p.dup) return decode_error::bad_flags;  // §3.3.1.1
  if (auto e = read_text(r, p.topic)) return *e;
  if (p.qos > 0) {
    if (!r.u16(p.packet_id)) return decode_error::too_short;
    if (p.packet_id == 0) return decode_error::bad_packet_id;
  }
  auto payload = r.rest();
  p.payload.assign(payload.begin(), payload.end());
  return packet{std::move(p)};
}

// PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK: a packet id and nothing else.
template <typename Ack>
decode_result decode_ack(reader& r) {
  Ack a;
  if (!r.u16(a.packet_id)) return decode_error::too_short;
  if (r.left() != 0) return decode_error::too_long;
  if (a.packet_id == 0) return decode_error::bad_packet_id;
  return packet{a};
}

decode_result decode_subscribe(reader& r) {
  subscribe_packet s;
  if (!r.u16(s.packet_id)) return decode_error::too_short;
  if (s.packet_id == 0) return decode_error::bad_packet_id;
  while (r.left() > 0) {
    subscription t;
    if (auto e = read_text(r, t.filter)) return *e;
    if (!r.u8(t.qos)) return decode_error::too_short;
    if (t.qos > 2) return decode_error::bad_qos;  // upper 6 bits reserved too (§3.8.3.1)
    s.topics.push_back(std::move(t));
  }
  if (s.topics.empty()) return decode_error::empty_list;
  return packet{std::move(s)};
}

decode_result decode_suback(reader& r) {
  suback_packet s;
  if (!r.u16(s.packet_id)) return decode_error::too_short;
  if (s.packet_id == 0) return decode_error::bad_packet_id;
  auto codes = r.rest();
  if (codes.empty()) return decode_error::empty_list;
  for (auto c : codes) {
    if (c > 2 && c != 0x80) return decode_error::bad_qos;
  }
  s.return_codes.assign(codes.begin(), codes.end());
  return packet{std::move(s)};
}

decode_result decode_unsubscribe(reader& r) {
  unsubscribe_packet u;
  if (!r.u16(u.packet_id)) return decode_error::too_short;
  if (u.packet_id == 0) return decode_error::bad_packet_id;
  while (r.left() > 0) {
    std::string f;
    if (auto e = read_text(r, f)) return *e;
    u.filters.push_back(std::move(f));
  }
  if (u.filters.empty()) return decode_error::empty_list;
  return packet{std::move(u)};
}

template <typename Empty>
decode_result decode_empty(reader& r) {
  if (r.left() != 0) return decode_error::too_long;
  return packet{Empty{}};
}

// The flags §2.2.2 requires for each type (PUBLISH's are checked by decode_publish).
bool flags_ok(packet_type t, std::uint8_t flags) {
  switch (t) {
    case packet_type::publish: return true;
    case packet_type::pubrel:
    case packet_type::subscribe:
    case packet_type::unsubscribe: return flags == 0x02;
    default: return flags == 0;
  }
}

}  // namespace

// ---- encoding ----

void append_remaining_length(bytes& out, std::size_t n) {
  do {
    auto digit = static_cast<std::uint8_t>(n % 128);
    n /= 128;
    if (n > 0) digit |= 0x80;
    out.push_back(digit);
  } while (n > 0);
}

void append_publish(bytes& out, std::string_view topic, std::span<const std::uint8_t> payload,
                    std::uint8_t qos, bool retain, bool dup, std::uint16_t packet_id) {
  const std::size_t n = field(topic.size()) + (qos > 0 ? 2 : 0) + payload.size();
  std::uint8_t flags = static_cast<std::uint8_t>((qos & 3) << 1);
  if (retain) flags |= 0x01;
  if (dup) flags |= 0x08;
  header(out, first_byte(packet_type::publish, flags), n);
  put_string(out, topic);
  if (qos > 0) put16(out, packet_id);
  out.insert(out.end(), payload.begin(), payload.end());
}

void append_ack(bytes& out, packet_type type, std::uint16_t packet_id) {
  out.push_back(first_byte(type, type == packet_type::pubrel ? 0x02 : 0));
  out.push_back(2);
  put16(out, packet_id);
}

void encode(const packet& p, bytes& out) {
  struct visitor {
    bytes& out;
    void operator()(const connect_packet& c) const { encode_connect(c, out); }
    void operator()(const connack_packet& c) const {
      header(out, first_byte(packet_type::connack), 2);
      out.push_back(c.session_present ? 1 : 0);
      out.push_back(c.return_code);
    }
    void operator()(const publish_packet& x) const {
      append_publish(out, x.topic, x.payload, x.qos, x.retain, x.dup, x.packet_id);
    }
    void operator()(const puback_packet& a) const {
      append_ack(out, packet_type::puback, a.packet_id);
    }
    void operator()(const pubrec_packet& a) const {
      append_ack(out, packet_type::pubrec, a.packet_id);
    }
    void operator()(const pubrel_packet& a) const {
      append_ack(out, packet_type::pubrel, a.packet_id);
    }
    void operator()(const pubcomp_packet& a) const {
      append_ack(out, packet_type::pubcomp, a.packet_id);
    }
    void operator()(const unsuback_packet& a) const {
      append_ack(out, packet_type::unsuback, a.packet_id);
    }
    void operator()(const subscribe_packet& s) const {
      std::size_t n = 2;
      for (const auto& t : s.topics) n += field(t.filter.size()) + 1;
      header(out, first_byte(packet_type::subscribe, 0x02), n);
      put16(out, s.packet_id);
      for (const auto& t : s.topics) {
        put_string(out, t.filter);
        out.push_back(t.qos);
      }
    }
    void operator()(const suback_packet& s) const {
      header(out, first_byte(packet_type::suback), 2 + s.return_codes.size());
      put16(out, s.packet_id);
      out.insert(out.end(), s.return_codes.begin(), s.return_codes.end());
    }
    void operator()(const unsubscribe_packet& u) const {
      std::size_t n = 2;
      for (const auto& f : u.filters) n += field(f.size());
      header(out, first_byte(packet_type::unsubscribe, 0x02), n);
      put16(out, u.packet_id);
      for (const auto& f : u.filters) put_string(out, f);
    }
    void operator()(const pingreq_packet&) const {
      header(out, first_byte(packet_type::pingreq), 0);
    }
    void operator()(const pingresp_packet&) const {
      header(out, first_byte(packet_type::pingresp), 0);
    }
    void operator()(const disconnect_packet&) const {
      header(out, first_byte(packet_type::disconnect), 0);
    }
  };
  std::visit(visitor{out}, p);
}

bytes encode(const packet& p) {
  bytes out;
  encode(p, out);
  return out;
}

// ---- decoding ----

const char* to_string(decode_error e) noexcept {
  switch (e) {
    case decode_error::truncated: return "truncated";
    case decode_error::bad_remaining_length: return "bad_remaining_length";
    case decode_error::reserved_type: return "reserved_type";
    case decode_error::bad_flags: return "bad_flags";
    case decode_error::bad_qos: return "bad_qos";
    case decode_error::too_short: return "too_short";
    case decode_error::too_long: return "too_long";
    case decode_error::bad_protocol: return "bad_protocol";
    case decode_error::bad_connect_flags: return "bad_connect_flags";
    case decode_error::bad_packet_id: return "bad_packet_id";
    case decode_error::empty_list: return "empty_list";
    case decode_error::bad_utf8: return "bad_utf8";
  }
  return "unknown";
}

std::variant<std::optional<frame_info>, decode_error> peek_frame(
    std::span<const std::uint8_t> stream) noexcept {
  frame_info f;
  if (stream.empty()) return std::optional<frame_info>{};
  f.first = stream[0];
  std::size_t multiplier = 1;
  for (std::size_t i = 1;; ++i) {
    if (i > 4) return decode_error::bad_remaining_length;
    if (i >= stream.size()) return std::optional<frame_info>{};
    const std::uint8_t d = stream[i];
    f.remaining += (d & 0x7FU) * multiplier;
    multiplier *= 128;
    if ((d & 0x80) == 0) {
      f.header_size = i + 1;
      return std::optional<frame_info>{f};
    }
  }
}

decode_result decode(std::span<const std::uint8_t> whole_packet) {
  auto peeked = peek_frame(whole_packet);
  if (auto* e = std::get_if<decode_error>(&peeked)) return *e;
  const auto& info = std::get<std::optional<frame_info>>(peeked);
  if (!info || whole_packet.size() < info->size()) return decode_error::truncated;
  if (whole_packet.size() > info->size()) return decode_error::too_long;
  const auto type_bits = static_cast<std::uint8_t>(info->first >> 4);
  const auto flags = static_cast<std::uint8_t>(info->first & 0x0F);
  if (type_bits == 0 || type_bits == 15) return decode_error::reserved_type;
  const auto type = static_cast<packet_type>(type_bits);
  if (!flags_ok(type, flags)) return decode_error::bad_flags;
  reader r(whole_packet.subspan(info->header_size));
  switch (type) {
    case packet_type::connect: return decode_connect(r);
    case packet_type::connack: {
      std::uint8_t ack_flags = 0, rc = 0;
      if (!r.u8(ack_flags) || !r.u8(rc)) return decode_error::too_short;
      if (r.left() != 0) return decode_error::too_long;
      if ((ack_flags & 0xFE) != 0) return decode_error::bad_flags;
      return packet{connack_packet{(ack_flags & 1) != 0, rc}};
    }
    case packet_type::publish: return decode_publish(flags, r);
    case packet_type::puback: return decode_ack<puback_packet>(r);
    case packet_type::pubrec: return decode_ack<pubrec_packet>(r);
    case packet_type::pubrel: return decode_ack<pubrel_packet>(r);
    case packet_type::pubcomp: return decode_ack<pubcomp_packet>(r);
    case packet_type::subscribe: return decode_subscribe(r);
    case packet_type::suback: return decode_suback(r);
    case packet_type::unsubscribe: return decode_unsubscribe(r);
    case packet_type::unsuback: return decode_ack<unsuback_packet>(r);
    case packet_type::pingreq: return decode_empty<pingreq_packet>(r);
    case packet_type::pingresp: return decode_empty<pingresp_packet>(r);
    case packet_type::disconnect: return decode_empty<disconnect_packet>(r);
  }
  return decode_error::reserved_type;
}

}  // namespace mqttsn::mqtt311
