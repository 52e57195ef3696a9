// Hex text <-> bytes for tests: vectors are written as in PROTOCOL.md and SERIAL.md ("05 00 01").
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace test_hex {

// "05 00 01 03 84" -> bytes. Anything but hex digits is ignored.
inline std::vector<std::uint8_t> hex(std::string_view text) {
  std::vector<std::uint8_t> out;
  int high = -1;
  for (const char c : text) {
    int nibble = -1;
    if (c >= '0' && c <= '9') nibble = c - '0';
    if (c >= 'A' && c <= 'F') nibble = c - 'A' + 10;
    if (c >= 'a' && c <= 'f') nibble = c - 'a' + 10;
    if (nibble < 0) continue;
    if (high < 0) {
      high = nibble;
    } else {
      out.push_back(static_cast<std::uint8_t>((high << 4) | nibble));
      high = -1;
    }
  }
  return out;
}

// bytes -> "05 00 01".
inline std::string to_hex(std::span<const std::uint8_t> data) {
  static constexpr std::string_view digits = "0123456789ABCDEF";
  std::string out;
  for (const std::uint8_t b : data) {
    if (!out.empty()) out += ' ';
    out += digits[b >> 4U];
    out += digits[b & 0x0FU];
  }
  return out;
}

}  // namespace test_hex
