// Helpers for tests of the protocol core: readable printing of actions (so a failing comparison
// shows decoded frames, not raw bytes) and shorthands for building expected action lists.
#pragma once

#include <initializer_list>
#include <ostream>
#include <string>

#include "hex.hpp"
#include "mqttsn/codec.hpp"
#include "mqttsn/session.hpp"

namespace mqttsn {


// gtest prints a variant through its alternative, so each action type gets its own printer.
inline void PrintTo(const send_frame& x, std::ostream* os) {
  auto d = decode(x.frame);
  *os << "send_frame{" << test_hex::to_hex(x.frame) << " = "
      << (std::holds_alternative<message>(d) ? name_of(type_of(std::get<message>(d))) : "undecodable") << "}";
}
inline void PrintTo(const upstream_connect& x, std::ostream* os) {
  *os << "upstream_connect{clean=" << x.clean_session << ", ka=" << x.keep_alive
      << ", will=" << (x.will ? x.will->topic + " '" + std::string(x.will->payload.begin(), x.will->payload.end()) + "'"
                              : std::string("none"))
      << "}";
}
inline void PrintTo(const upstream_publish& x, std::ostream* os) {
  *os << "upstream_publish{ref=" << x.ref << ", " << x.topic << ", '" << std::string(x.payload.begin(), x.payload.end())
      << "', q=" << static_cast<int>(x.q) << ", retain=" << x.retain << "}";
}
inline void PrintTo(const upstream_subscribe& x, std::ostream* os) {
  *os << "upstream_subscribe{ref=" << x.ref << ", " << x.filter << ", q=" << static_cast<int>(x.q) << "}";
}
inline void PrintTo(const upstream_unsubscribe& x, std::ostream* os) {
  *os << "upstream_unsubscribe{ref=" << x.ref << ", " << x.filter << "}";
}
inline void PrintTo(const upstream_disconnect&, std::ostream* os) { *os << "upstream_disconnect{}"; }
inline void PrintTo(const upstream_resume&, std::ostream* os) { *os << "upstream_resume{}"; }
inline void PrintTo(const report& x, std::ostream* os) {
  *os << "report{" << static_cast<int>(x.what) << ", \"" << x.detail << "\"}";
}

inline void PrintTo(const action& a, std::ostream* os) {
  std::visit([os](const auto& x) { PrintTo(x, os); }, a);
}

// The frame a message encodes to, as an action.
inline action frame_of(const message& m) { return send_frame{encode(m)}; }
inline action raw(std::initializer_list<std::uint8_t> b) { return send_frame{bytes(b)}; }
inline bytes payload(std::string_view s) { return bytes(s.begin(), s.end()); }

}  // namespace mqttsn
