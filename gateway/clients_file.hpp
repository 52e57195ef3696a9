// The clients file (--clients-file): which MQTT-SN clients the gateway admits, from where, with
// which broker credentials, predefined topics and topic permissions. Parses text into the pure
// rules of mqttsn/admission.hpp; reading the file is the caller's (gateway/main.cpp).
//
// Format: one client per line, `#` comment lines and blank lines ignored:
//
//     CLIENT_ID [address=ADDR] [username=USER] [password=PASSWORD] [predefined=ID:TOPIC]...
//               [publish=FILTER]... [subscribe=FILTER]...
//
//   address    192.0.2.7 or [2001:db8::7] (any UDP port), 192.0.2.7:5000 or [2001:db8::7]:5000
//              (that port only), or a 16-hex-digit XBee 64-bit address (0013A20040A1B2C3)
//   username, password   the client's own broker credentials (transparent mode), like a line of
//              --broker-credentials-file; password needs username. Fields have no blanks.
//   predefined ID:TOPIC  a predefined topic id for this client only, next to the gateway's
//   publish, subscribe   MQTT topic filters; repeatable; without any, that direction is open
//
// Client ids are unique and have no blanks; unknown fields, bad values and duplicates are errors
// (config_error "<origin>: line N: ...", never quoting a password).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/config.hpp"
#include "gateway/secrets.hpp"
#include "mqttsn/admission.hpp"
#include "mqttsn/topics.hpp"

namespace gateway {

struct clients_file {
  std::vector<mqttsn::client_rule> rules;  // predefined: the gateway's plus the client's own
  std::map<std::string, credentials, std::less<>> logins;  // broker credentials by client id
  bool has_secrets = false;  // some line carries a password
};

// `gateway_predefined`: the gateway's predefined topics (--predefined, --predefined-file), which
// every rule's table starts with; a client's own id or topic may not collide with them.
clients_file parse_clients_file(
    std::string_view text, const std::string& origin,
    const std::vector<std::pair<mqttsn::topic_id, std::string>>& gateway_predefined);

// "192.0.2.7" -> "192.0.2.7", "[2001:DB8:0::7]" -> "[2001:db8::7]", "0013a20040a1b2c3" ->
// "0013A20040A1B2C3": the form endpoints carry. Throws config_error starting with `where`.
std::string canonical_address(const std::string& where, std::string_view text);

}  // namespace gateway
