#include "mqttsn/admission.hpp"

#include <utility>

namespace mqttsn {

namespace {

// The next level of a topic or filter, and the rest after its '/' (nullopt when none is left).
struct levels {
  std::string_view text;
  bool done = false;
  std::string_view next() {
    const auto slash = text.find('/');
    const auto level = text.substr(0, slash);
    if (slash == std::string_view::npos) {
      done = true;
      text = {};
    } else {
      text.remove_prefix(slash + 1);
    }
    return level;
  }
};

}  // namespace

const char* to_string(admission_verdict v) noexcept {
  switch (v) {
    case admission_verdict::accepted: return "accepted";
    case admission_verdict::unknown_client: return "client id not in the clients file";
    case admission_verdict::wrong_address: return "address not allowed for this client id";
  }
  return "?";
}

bool address_matches(std::string_view bound, std::string_view endpoint) noexcept {
  if (bound.empty()) return true;
  const auto slash = endpoint.find('/');
  if (slash == std::string_view::npos) return false;
  const auto rest = endpoint.substr(slash + 1);
  if (rest.find('/') != std::string_view::npos) return false;  // behind a forwarder
  if (rest == bound) return true;                              // exact: XBee, or host and port
  // A host without a port: any port of that host.
  const bool bound_has_port = bound.front() == '[' ? bound.back() != ']'
                                                   : bound.find(':') != std::string_view::npos;
  if (bound_has_port) return false;
  return rest.size() > bound.size() && rest.starts_with(bound) && rest[bound.size()] == ':';
}

bool filter_within(std::string_view pattern, std::string_view filter) noexcept {
  levels p{pattern};
  levels f{filter};
  for (;;) {
    if (p.done) return f.done;
    const auto pl = p.next();
    if (pl == "#") return true;  // covers whatever is left, including nothing
    if (f.done) return false;
    const auto fl = f.next();
    if (fl == "#") return false;  // a multi-level filter under anything narrower than '#'
    if (pl == "+") continue;      // covers one level: a name or '+'
    if (fl != pl) return false;   // '+' in the filter is wider than a literal level
  }
}

admission::admission(std::vector<client_rule> rules) {
  for (auto& r : rules) {
    auto id = r.client_id;
    rules_.insert_or_assign(std::move(id), std::move(r));
  }
}

const client_rule* admission::rule(std::string_view client_id) const noexcept {
  auto it = rules_.find(client_id);
  return it == rules_.end() ? nullptr : &it->second;
}

admission_verdict admission::check(std::string_view client_id,
                                   std::string_view endpoint) const noexcept {
  const auto* r = rule(client_id);
  if (r == nullptr) return admission_verdict::unknown_client;
  return address_matches(r->address, endpoint) ? admission_verdict::accepted
                                                : admission_verdict::wrong_address;
}

const client_rule* admission::rule_for_address(std::string_view endpoint) const noexcept {
  for (const auto& [id, r] : rules_) {
    if (!r.address.empty() && address_matches(r.address, endpoint)) return &r;
  }
  return nullptr;
}

bool may_publish(const client_rule* rule, std::string_view topic) noexcept {
  if (rule == nullptr || !rule->publish) return true;
  for (const auto& p : *rule->publish) {
    if (topic_matches(p, topic)) return true;
  }
  return false;
}

bool may_subscribe(const client_rule* rule, std::string_view filter) noexcept {
  if (rule == nullptr || !rule->subscribe) return true;
  for (const auto& p : *rule->subscribe) {
    if (filter_within(p, filter)) return true;
  }
  return false;
}

}  // namespace mqttsn
