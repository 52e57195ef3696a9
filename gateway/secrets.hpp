// Secrets (passwords, a private key's pass phrase, per-client broker credentials) enter the gateway
// only from files named by config keys, never as command-line values (every user of the machine
// can read those in the process list), and are never logged. Reads files; logs nothing itself.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/config.hpp"

namespace gateway {

// MQTT user name and password of one broker connection.
struct credentials {
  std::string username;
  std::string password;
  bool operator==(const credentials&) const = default;
};

// The first line of `path` (without its line end). Throws config_error naming `key`
// ("--broker-password-file /x: cannot open (No such file or directory)", "... is empty").
std::string read_secret_file(const std::string& key, const std::string& path);

// A warning text when `path` can be read by every user (mode o+r); nullopt otherwise, or when it
// cannot be checked (then reading it reports the problem).
std::optional<std::string> world_readable_warning(const std::string& key, const std::string& path);

// Parses a credentials file: `CLIENT_ID USER PASSWORD` per line, blanks or tabs between the fields,
// the password is the rest of the line (inner blanks kept, outer ones trimmed); `#` comment lines
// and blank lines are ignored. Throws config_error "<origin>: line N: ..." (never quoting a
// password). Pure: no I/O.
std::map<std::string, credentials, std::less<>> parse_credentials(std::string_view text,
                                                                   const std::string& origin);

// Everything a key names, read and checked at startup: what the upstream needs, plus the
// warnings main() logs (world-readable secrets). Throws config_error naming the key.
struct broker_secrets {
  std::optional<credentials> gateway;  // broker-username / broker-password-file
  std::map<std::string, credentials, std::less<>> clients;  // broker-credentials-file
  std::string key_password;                                 // broker-key-password-file
  std::vector<std::string> warnings;
};
broker_secrets load_broker_secrets(const config& cfg);

}  // namespace gateway
