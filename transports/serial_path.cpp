#include "transports/serial_path.hpp"

#include <libserialport.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

namespace transports {

const char* to_string(serial_open_path path) noexcept {
  return path == serial_open_path::libserialport ? "libserialport" : "termios fallback";
}

bool is_pty_major(unsigned major) noexcept { return major == 3 || (major >= 136 && major <= 143); }

bool is_pty_name(std::string_view resolved) noexcept {
  return resolved.starts_with("/dev/pts/") || resolved == "/dev/ptmx" ||
         (resolved.starts_with("/dev/tty") && resolved.size() == 10 && resolved[8] >= 'p' &&
          resolved[8] <= 'z');
}

serial_open_path choose_open_path(const serial_device_facts& facts) noexcept {
  if (is_pty_name(facts.resolved)) return serial_open_path::fallback;
  if (facts.character_device && is_pty_major(facts.major)) return serial_open_path::fallback;
  if (!facts.character_device || !facts.libserialport_knows) return serial_open_path::fallback;
  return serial_open_path::libserialport;
}

std::optional<serial_device_facts> probe_serial_device(const std::string& device, std::string& error) {
  char buffer[PATH_MAX];
  if (::realpath(device.c_str(), buffer) == nullptr) {
    error = std::strerror(errno);
    return std::nullopt;
  }
  serial_device_facts facts;
  facts.resolved = buffer;
  struct stat st {};
  if (::stat(buffer, &st) != 0) {
    error = std::strerror(errno);
    return std::nullopt;
  }
  facts.character_device = S_ISCHR(st.st_mode);
  if (facts.character_device) facts.major = ::major(st.st_rdev);
  sp_port* port = nullptr;
  if (sp_get_port_by_name(buffer, &port) == SP_OK) {
    facts.libserialport_knows = true;
    sp_free_port(port);
  }
  return facts;
}

}  // namespace transports
