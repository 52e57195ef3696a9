// Which way a serial device is opened. Debian's libserialport 0.1.1 refuses symlinks (so the name
// is resolved with realpath() first) and ptys (no sysfs node, no TIOCMGET), which is what tests and
// the simulator use; those go through a plain termios fallback instead. The decision is a pure
// function of facts gathered about the device, so both paths are unit-tested on any machine.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace transports {

enum class serial_open_path : std::uint8_t {
  libserialport,  // sp_open + sp_set_* (real ttys: USB adapters, SoC UARTs)
  fallback,       // open(2) + termios raw mode (ptys, anything libserialport refuses)
};

const char* to_string(serial_open_path path) noexcept;

struct serial_device_facts {
  std::string resolved;              // realpath() of the configured name
  bool character_device = false;     // S_ISCHR
  unsigned major = 0;                // major device number when a character device
  bool libserialport_knows = false;  // sp_get_port_by_name(resolved) succeeded
};

// Pseudo-terminal slave majors on Linux: 3 (legacy BSD ptys) and 136..143 (Unix98, /dev/pts/*).
bool is_pty_major(unsigned major) noexcept;
// /dev/pts/N, /dev/ptmx, or a legacy /dev/ttyp* name.
bool is_pty_name(std::string_view resolved) noexcept;

// Pure: ptys (by name or major) and devices libserialport does not know take the fallback, real
// character-device ttys that libserialport accepts take libserialport.
serial_open_path choose_open_path(const serial_device_facts& facts) noexcept;

// Gathers the facts for `device`: realpath(), stat(), sp_get_port_by_name(). nullopt with `error`
// set (e.g. "No such file or directory") when the device does not exist or cannot be resolved.
std::optional<serial_device_facts> probe_serial_device(const std::string& device, std::string& error);

}  // namespace transports
