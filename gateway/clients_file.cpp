#include "gateway/clients_file.hpp"

#include <array>
#include <cctype>
#include <charconv>
#include <optional>

#include <arpa/inet.h>
#include <netinet/in.h>

namespace gateway {

namespace {

constexpr std::string_view blanks = " \t\r";

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw config_error(where + ": " + what);
}

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

std::optional<std::uint16_t> to_port(std::string_view s) {
  unsigned v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || ptr != s.data() + s.size() || v < 1 || v > 65535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(v);
}

std::optional<std::string> canonical_ipv4(const std::string& host) {
  in_addr a{};
  if (inet_pton(AF_INET, host.c_str(), &a) != 1) return std::nullopt;
  std::array<char, INET_ADDRSTRLEN> buf{};
  if (inet_ntop(AF_INET, &a, buf.data(), buf.size()) == nullptr) return std::nullopt;
  return std::string(buf.data());
}

std::optional<std::string> canonical_ipv6(const std::string& host) {
  in6_addr a{};
  if (inet_pton(AF_INET6, host.c_str(), &a) != 1) return std::nullopt;
  std::array<char, INET6_ADDRSTRLEN> buf{};
  if (inet_ntop(AF_INET6, &a, buf.data(), buf.size()) == nullptr) return std::nullopt;
  return std::string(buf.data());
}

}  // namespace

std::string canonical_address(const std::string& where, std::string_view text) {
  const std::string form =
      " (IPv4, [IPv6], either with :PORT, or a 16-hex-digit XBee 64-bit address)";
  if (text.size() == 16 && text.find_first_not_of("0123456789abcdefABCDEF") == std::string_view::npos) {
    std::string upper(text);
    for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return upper;
  }
  std::string host;
  std::string_view port;
  bool v6 = false;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos) fail(where, quoted(text) + " has no closing ']'" + form);
    host = std::string(text.substr(1, close - 1));
    const auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') fail(where, quoted(text) + " needs ':' after ']'" + form);
      port = rest.substr(1);
      if (port.empty()) fail(where, quoted(text) + " has an empty port" + form);
    }
    v6 = true;
  } else {
    const auto colon = text.find(':');
    host = std::string(text.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = text.substr(colon + 1);
      if (port.empty()) fail(where, quoted(text) + " has an empty port" + form);
    }
  }
  const auto canonical = v6 ? canonical_ipv6(host) : canonical_ipv4(host);
  if (!canonical) fail(where, quoted(text) + " is not an address" + form);
  std::string out = v6 ? "[" + *canonical + "]" : *canonical;
  if (!port.empty()) {
    const auto p = to_port(port);
    if (!p) fail(where, "port " + quoted(port) + " in " + quoted(text) + " is not in 1..65535");
    out += ":" + std::to_string(*p);
  }
  return out;
}

clients_file parse_clients_file(
    std::string_view text, const std::string& origin,
    const std::vector<std::pair<mqttsn::topic_id, std::string>>& gateway_predefined) {
  clients_file out;
  std::map<std::string, std::size_t, std::less<>> line_of;  // client id -> first line
  std::size_t n = 0;
  while (!text.empty()) {
    ++n;
    const auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    const auto first = line.find_first_not_of(blanks);
    if (first == std::string_view::npos || line[first] == '#') continue;
    line.remove_prefix(first);
    const std::string at = origin + ": line " + std::to_string(n);

    // Blank-separated fields; the first one is the client id.
    auto next_field = [&line]() -> std::string_view {
      const auto stop = line.find_first_of(blanks);
      const auto field = line.substr(0, stop);
      line = stop == std::string_view::npos ? std::string_view() : line.substr(stop);
      const auto next = line.find_first_not_of(blanks);
      line = next == std::string_view::npos ? std::string_view() : line.substr(next);
      return field;
    };

    mqttsn::client_rule rule;
    rule.client_id = std::string(next_field());
    if (rule.client_id.find('=') != std::string::npos) {
      fail(at, "the line must start with the client id, not " + quoted(rule.client_id));
    }
    if (rule.client_id.size() > 65535) fail(at, "client id longer than 65535 bytes");
    if (auto [it, added] = line_of.emplace(rule.client_id, n); !added) {
      fail(at, "client id " + quoted(rule.client_id) + " is listed twice (first on line " +
                   std::to_string(it->second) + ")");
    }
    for (const auto& [id, topic] : gateway_predefined) rule.predefined.add(id, topic);

    credentials login;
    bool has_password = false;
    while (!line.empty()) {
      const auto f = next_field();
      const auto eq = f.find('=');
      if (eq == std::string_view::npos) fail(at, quoted(f) + " is not FIELD=VALUE");
      const auto key = f.substr(0, eq);
      const auto value = f.substr(eq + 1);
      const std::string where = at + ": " + std::string(key);
      if (value.empty()) fail(where, "has no value");
      if (key == "address") {
        if (!rule.address.empty()) fail(where, "is given twice");
        rule.address = canonical_address(where, value);
      } else if (key == "username") {
        if (!login.username.empty()) fail(where, "is given twice");
        login.username = std::string(value);
      } else if (key == "password") {
        if (has_password) fail(where, "is given twice");
        login.password = std::string(value);
        has_password = true;
      } else if (key == "publish" || key == "subscribe") {
        if (!mqttsn::is_valid_topic_filter(value)) {
          fail(where, quoted(value) + " is not a valid MQTT topic filter");
        }
        auto& list = key == "publish" ? rule.publish : rule.subscribe;
        if (!list) list.emplace();
        list->emplace_back(value);
      } else if (key == "predefined") {
        const auto colon = value.find(':');
        if (colon == std::string_view::npos) fail(where, quoted(value) + " is not ID:TOPIC");
        unsigned id = 0;
        const auto id_text = value.substr(0, colon);
        const auto [ptr, ec] = std::from_chars(id_text.data(), id_text.data() + id_text.size(), id);
        if (id_text.empty() || ec != std::errc{} || ptr != id_text.data() + id_text.size() ||
            id == 0 || id >= 0xFFFF) {
          fail(where, "id " + quoted(id_text) + " is not an integer in 1..65534");
        }
        using result = mqttsn::predefined_topics::add_result;
        const std::string topic(value.substr(colon + 1));
        switch (rule.predefined.add(static_cast<mqttsn::topic_id>(id), topic)) {
          case result::added: break;
          case result::reserved_id: fail(where, "id " + std::to_string(id) + " is reserved");
          case result::invalid_name: fail(where, quoted(topic) + " is not a valid topic name");
          case result::duplicate_id:
            fail(where, "id " + std::to_string(id) + " is already defined (here or for the gateway)");
          case result::duplicate_name:
            fail(where, "topic " + quoted(topic) + " is already defined (here or for the gateway)");
        }
      } else {
        fail(at, "unknown field " + quoted(key) +
                     " (address, username, password, predefined, publish, subscribe)");
      }
    }
    if (has_password && login.username.empty()) fail(at, "password needs username");
    if (!login.username.empty()) {
      out.has_secrets = out.has_secrets || has_password;
      out.logins.emplace(rule.client_id, std::move(login));
    }
    out.rules.push_back(std::move(rule));
  }
  return out;
}

}  // namespace gateway
