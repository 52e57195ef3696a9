// MsgType codes and names of the message values declared in message.hpp.
#include "mqttsn/message.hpp"

#include <array>
#include <cstddef>
#include <type_traits>
#include <utility>
#include <variant>

namespace mqttsn {
namespace {

// The MsgType code of each message struct. A struct added to `message` without an overload here
// fails to compile, so type_of() can never silently answer a wrong code.
constexpr msg_type code_of(std::type_identity<advertise> /*unused*/) { return msg_type::advertise; }
constexpr msg_type code_of(std::type_identity<searchgw> /*unused*/) { return msg_type::searchgw; }
constexpr msg_type code_of(std::type_identity<gwinfo> /*unused*/) { return msg_type::gwinfo; }
constexpr msg_type code_of(std::type_identity<connect> /*unused*/) { return msg_type::connect; }
constexpr msg_type code_of(std::type_identity<connack> /*unused*/) { return msg_type::connack; }
constexpr msg_type code_of(std::type_identity<willtopicreq> /*unused*/) {
  return msg_type::willtopicreq;
}
constexpr msg_type code_of(std::type_identity<willtopic> /*unused*/) { return msg_type::willtopic; }
constexpr msg_type code_of(std::type_identity<willmsgreq> /*unused*/) {
  return msg_type::willmsgreq;
}
constexpr msg_type code_of(std::type_identity<willmsg> /*unused*/) { return msg_type::willmsg; }
constexpr msg_type code_of(std::type_identity<register_> /*unused*/) { return msg_type::register_; }
constexpr msg_type code_of(std::type_identity<regack> /*unused*/) { return msg_type::regack; }
constexpr msg_type code_of(std::type_identity<publish> /*unused*/) { return msg_type::publish; }
constexpr msg_type code_of(std::type_identity<puback> /*unused*/) { return msg_type::puback; }
constexpr msg_type code_of(std::type_identity<pubcomp> /*unused*/) { return msg_type::pubcomp; }
constexpr msg_type code_of(std::type_identity<pubrec> /*unused*/) { return msg_type::pubrec; }
constexpr msg_type code_of(std::type_identity<pubrel> /*unused*/) { return msg_type::pubrel; }
constexpr msg_type code_of(std::type_identity<subscribe> /*unused*/) { return msg_type::subscribe; }
constexpr msg_type code_of(std::type_identity<suback> /*unused*/) { return msg_type::suback; }
constexpr msg_type code_of(std::type_identity<unsubscribe> /*unused*/) {
  return msg_type::unsubscribe;
}
constexpr msg_type code_of(std::type_identity<unsuback> /*unused*/) { return msg_type::unsuback; }
constexpr msg_type code_of(std::type_identity<pingreq> /*unused*/) { return msg_type::pingreq; }
constexpr msg_type code_of(std::type_identity<pingresp> /*unused*/) { return msg_type::pingresp; }
constexpr msg_type code_of(std::type_identity<disconnect> /*unused*/) {
  return msg_type::disconnect;
}
constexpr msg_type code_of(std::type_identity<willtopicupd> /*unused*/) {
  return msg_type::willtopicupd;
}
constexpr msg_type code_of(std::type_identity<willtopicresp> /*unused*/) {
  return msg_type::willtopicresp;
}
constexpr msg_type code_of(std::type_identity<willmsgupd> /*unused*/) {
  return msg_type::willmsgupd;
}
constexpr msg_type code_of(std::type_identity<willmsgresp> /*unused*/) {
  return msg_type::willmsgresp;
}
constexpr msg_type code_of(std::type_identity<encapsulated> /*unused*/) {
  return msg_type::encapsulated;
}

// Codes indexed by the variant's alternative index: type_of() is one table lookup.
template <std::size_t... I>
constexpr auto make_code_table(std::index_sequence<I...> /*unused*/) {
  return std::array<msg_type, sizeof...(I)>{
      code_of(std::type_identity<std::variant_alternative_t<I, message>>{})...};
}

constexpr auto code_table =
    make_code_table(std::make_index_sequence<std::variant_size_v<message>>{});

}  // namespace

msg_type type_of(const message& m) noexcept {
  // A valueless variant can only come from an exception during assignment, which this code base
  // does not use; answer something defined rather than index out of the table.
  const std::size_t index = m.index();
  return index < code_table.size() ? code_table[index] : msg_type::encapsulated;
}

const char* name_of(msg_type t) noexcept {
  switch (t) {
    case msg_type::advertise: return "ADVERTISE";
    case msg_type::searchgw: return "SEARCHGW";
    case msg_type::gwinfo: return "GWINFO";
    case msg_type::connect: return "CONNECT";
    case msg_type::connack: return "CONNACK";
    case msg_type::willtopicreq: return "WILLTOPICREQ";
    case msg_type::willtopic: return "WILLTOPIC";
    case msg_type::willmsgreq: return "WILLMSGREQ";
    case msg_type::willmsg: return "WILLMSG";
    case msg_type::register_: return "REGISTER";
    case msg_type::regack: return "REGACK";
    case msg_type::publish: return "PUBLISH";
    case msg_type::puback: return "PUBACK";
    case msg_type::pubcomp: return "PUBCOMP";
    case msg_type::pubrec: return "PUBREC";
    case msg_type::pubrel: return "PUBREL";
    case msg_type::subscribe: return "SUBSCRIBE";
    case msg_type::suback: return "SUBACK";
    case msg_type::unsubscribe: return "UNSUBSCRIBE";
    case msg_type::unsuback: return "UNSUBACK";
    case msg_type::pingreq: return "PINGREQ";
    case msg_type::pingresp: return "PINGRESP";
    case msg_type::disconnect: return "DISCONNECT";
    case msg_type::willtopicupd: return "WILLTOPICUPD";
    case msg_type::willtopicresp: return "WILLTOPICRESP";
    case msg_type::willmsgupd: return "WILLMSGUPD";
    case msg_type::willmsgresp: return "WILLMSGRESP";
    case msg_type::encapsulated: return "ENCAPSULATED";
  }
  return "RESERVED";  // a value cast from a reserved MsgType byte
}

}  // namespace mqttsn
