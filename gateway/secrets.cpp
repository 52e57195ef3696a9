#include "gateway/secrets.hpp"

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>
#include <vector>

#include <sys/stat.h>

namespace gateway {

namespace {

constexpr std::string_view blanks = " \t";

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}

// The whole file, or a config_error naming `where`.
std::string read_whole(const std::string& where, const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw config_error(where + ": is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    throw config_error(where + ": cannot open" +
                       (err == 0 ? std::string() : " (" + std::generic_category().message(err) + ")"));
  }
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) throw config_error(where + ": cannot read");
  return s.str();
}

}  // namespace

std::string read_secret_file(const std::string& key, const std::string& path) {
  const std::string where = key + " " + path;
  const std::string text = read_whole(where, path);
  std::string_view line = text;
  line = line.substr(0, line.find('\n'));
  if (line.ends_with('\r')) line.remove_suffix(1);
  if (line.empty()) throw config_error(where + ": the first line is empty");
  return std::string(line);
}

std::optional<std::string> world_readable_warning(const std::string& key, const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  if ((st.st_mode & S_IROTH) == 0) return std::nullopt;
  return key + " " + path + " holds a secret but every user of this machine can read it (chmod o-r " +
         path + ")";
}

std::map<std::string, credentials, std::less<>> parse_credentials(std::string_view text,
                                                                   const std::string& origin) {
  std::map<std::string, credentials, std::less<>> out;
  std::size_t n = 0;
  while (!text.empty()) {
    ++n;
    const auto end = text.find('\n');
    const auto line = trim(text.substr(0, end));
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    if (line.empty() || line.front() == '#') continue;
    const std::string at = origin + ": line " + std::to_string(n);
    const auto id_end = line.find_first_of(blanks);
    const auto id = line.substr(0, id_end);
    auto rest = id_end == std::string_view::npos ? std::string_view() : trim(line.substr(id_end));
    const auto user_end = rest.find_first_of(blanks);
    const auto user = rest.substr(0, user_end);
    const auto password =
        user_end == std::string_view::npos ? std::string_view() : trim(rest.substr(user_end));
    if (user.empty() || password.empty()) {
      throw config_error(at + ": not CLIENT_ID USER PASSWORD");
    }
    if (id.size() > 65535 || user.size() > 65535 || password.size() > 65535) {
      throw config_error(at + ": a field is longer than 65535 bytes");
    }
    if (!out.emplace(std::string(id), credentials{std::string(user), std::string(password)})
             .second) {
      throw config_error(at + ": client id '" + std::string(id) + "' is listed twice");
    }
  }
  return out;
}

broker_secrets load_broker_secrets(const config& cfg) {
  broker_secrets s;
  auto check = [&](const char* key, const std::string& path) {
    if (auto w = world_readable_warning(key, path)) s.warnings.push_back(std::move(*w));
  };
  if (!cfg.broker_username.empty()) {
    credentials c{cfg.broker_username, {}};
    if (!cfg.broker_password_file.empty()) {
      c.password = read_secret_file("--broker-password-file", cfg.broker_password_file);
      check("--broker-password-file", cfg.broker_password_file);
    }
    s.gateway = std::move(c);
  }
  if (!cfg.broker_credentials_file.empty()) {
    const std::string where = "--broker-credentials-file " + cfg.broker_credentials_file;
    s.clients = parse_credentials(read_whole(where, cfg.broker_credentials_file), where);
    check("--broker-credentials-file", cfg.broker_credentials_file);
  }
  if (!cfg.broker_key_password_file.empty()) {
    s.key_password = read_secret_file("--broker-key-password-file", cfg.broker_key_password_file);
    check("--broker-key-password-file", cfg.broker_key_password_file);
  }
  if (!cfg.broker_key_file.empty()) check("--broker-key-file", cfg.broker_key_file);
  return s;
}

}  // namespace gateway
