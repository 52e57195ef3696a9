// Client admission (the clients file, --clients-file): which client ids may connect, from which
// transport address, and on which topics they may publish and subscribe. Pure: decides from the
// rules, a client id and an endpoint string; reads no file (gateway/clients_file parses them) and
// holds no per-connection state.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mqttsn/topics.hpp"

namespace mqttsn {

// One allowed client.
struct client_rule {
  std::string client_id;
  // Where it may connect from, compared with the endpoint after its transport prefix ("udp0/"):
  //   "192.0.2.7"          that IPv4 address, any port      "192.0.2.7:5000"    that port only
  //   "[2001:db8::7]"      that IPv6 address, any port      "[2001:db8::7]:5000"
  //   "0013A20040A1B2C3"   that XBee 64-bit address (16 upper-case hex digits)
  // Empty: any address. A client behind a forwarder (".../fwd/NODE") never matches a bound address.
  std::string address;
  // MQTT topic filters it may publish to / subscribe within; nullopt: anything.
  std::optional<std::vector<std::string>> publish;
  std::optional<std::vector<std::string>> subscribe;
  // The gateway's predefined topics plus the client's own.
  predefined_topics predefined;
};

enum class admission_verdict : std::uint8_t { accepted, unknown_client, wrong_address };

const char* to_string(admission_verdict v) noexcept;

// True when `endpoint` ("udp0/192.0.2.7:5000", "serial0/0013A20040A1B2C3") is at `bound` (the
// forms of client_rule::address; empty matches everything).
bool address_matches(std::string_view bound, std::string_view endpoint) noexcept;

// True when every topic name that `filter` matches is also matched by `pattern` (both valid MQTT
// filters): "a/+/c" is within "a/#", "a/#" is not within "a/+".
bool filter_within(std::string_view pattern, std::string_view filter) noexcept;

class admission {
 public:
  admission() = default;
  // Rules with the same client id: the last one wins (the parser refuses duplicates anyway).
  explicit admission(std::vector<client_rule> rules);

  admission_verdict check(std::string_view client_id, std::string_view endpoint) const noexcept;
  // The rule of a listed client id; nullptr for an unknown one.
  const client_rule* rule(std::string_view client_id) const noexcept;
  // The first rule (by client id) whose bound address `endpoint` is at: the only senders whose
  // QoS -1 publishes are accepted. nullptr: not a listed address.
  const client_rule* rule_for_address(std::string_view endpoint) const noexcept;
  std::size_t size() const noexcept { return rules_.size(); }

 private:
  std::map<std::string, client_rule, std::less<>> rules_;
};

// Topic permissions of a rule (nullptr: no rule, everything allowed).
bool may_publish(const client_rule* rule, std::string_view topic) noexcept;
bool may_subscribe(const client_rule* rule, std::string_view filter) noexcept;

}  // namespace mqttsn
