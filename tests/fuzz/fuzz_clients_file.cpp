// libFuzzer target for the clients file and the credentials file (gateway/clients_file,
// gateway/secrets): any text parses or throws config_error, never crashes; what parses obeys the
// admission rules' invariants (a bound address admits its own endpoint, every pattern is within
// itself and within '#', and a pattern admits exactly the names it matches).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "gateway/clients_file.hpp"
#include "gateway/secrets.hpp"
#include "mqttsn/admission.hpp"
#include "mqttsn/topics.hpp"

namespace {

void require(bool invariant) {
  if (!invariant) std::abort();
}

void check_pattern(const std::string& p) {
  require(mqttsn::is_valid_topic_filter(p));
  require(mqttsn::filter_within(p, p));
  if (!p.starts_with('$')) require(mqttsn::filter_within("#", p));
}

void check_rule(const mqttsn::client_rule& r) {
  if (!r.address.empty()) {
    // An address with a port is an endpoint as the transports write it; without one, any port.
    const bool xbee = r.address.size() == 16 && r.address.find_first_of(".:[") == std::string::npos;
    const bool has_port = !xbee && (r.address.front() == '[' ? r.address.back() != ']'
                                                             : r.address.find(':') != std::string::npos);
    const std::string endpoint = "t0/" + r.address + (xbee || has_port ? "" : ":1884");
    require(mqttsn::address_matches(r.address, endpoint));
    require(!mqttsn::address_matches(r.address, endpoint + "/fwd/01"));
  }
  for (const auto* list : {&r.publish, &r.subscribe}) {
    if (!*list) continue;
    for (const auto& p : **list) {
      check_pattern(p);
      // A name is within a pattern exactly when the pattern matches it.
      if (!mqttsn::has_wildcards(p)) require(mqttsn::filter_within(p, p) && mqttsn::topic_matches(p, p));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const auto f = gateway::parse_clients_file(text, "F", {{1, "gw/one"}});
    for (const auto& r : f.rules) check_rule(r);
    const mqttsn::admission a(f.rules);
    for (const auto& r : f.rules) require(a.rule(r.client_id) != nullptr);
    for (const auto& [id, login] : f.logins) require(!login.username.empty() && a.rule(id) != nullptr);
  } catch (const gateway::config_error&) {
  }
  try {
    const auto c = gateway::parse_credentials(text, "C");
    for (const auto& [id, login] : c) require(!id.empty() && !login.username.empty() && !login.password.empty());
  } catch (const gateway::config_error&) {
  }
  // filter_within against topic_matches on the input split at the first 0x00: "pattern\0filter".
  const auto nul = text.find('\0');
  if (nul != std::string_view::npos) {
    const auto pattern = text.substr(0, nul);
    const auto filter = text.substr(nul + 1);
    if (mqttsn::is_valid_topic_filter(pattern) && mqttsn::is_valid_topic_filter(filter) &&
        mqttsn::filter_within(pattern, filter) && !mqttsn::has_wildcards(filter)) {
      require(mqttsn::topic_matches(pattern, filter) || filter.starts_with('$'));
    }
  }
  return 0;
}
