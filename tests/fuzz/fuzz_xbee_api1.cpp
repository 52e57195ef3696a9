// libFuzzer target: arbitrary bytes on a serial line in XBee API mode 1. The checks are in
// xbee_deframer_fuzz.hpp (split invariance, bounds, re-encoding, 0x90 payload round trip).
// Seed corpus: tests/fuzz/corpus/xbee_api1 (SERIAL.md's worked frames, garbage, bad frames).
#include <cstddef>
#include <cstdint>
#include <span>

#include "tests/fuzz/xbee_deframer_fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  xbee_fuzz::run(transports::framing::xbee_mode::api1, std::span<const std::uint8_t>(data, size));
  return 0;
}
