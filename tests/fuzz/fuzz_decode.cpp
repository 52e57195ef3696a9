// libFuzzer target for mqttsn::decode: any input must decode to an error or to a message that
// survives encode -> decode unchanged. Compares messages, not bytes: lenient forms (long Length
// below 256, Paho's off-by-two at 255, Paho's empty WILLTOPIC, unused flag bits) re-encode to the
// canonical bytes. Seed corpus: tests/fuzz/corpus/decode (one file per PROTOCOL.md §2 vector).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <variant>

#include "mqttsn/codec.hpp"

namespace {

void require(bool condition) {
  if (!condition) std::abort();
}

void check_round_trip(std::span<const std::uint8_t> input) {
  const mqttsn::decode_result first = mqttsn::decode(input);
  if (std::holds_alternative<mqttsn::decode_error>(first)) return;
  const mqttsn::message& m = std::get<mqttsn::message>(first);

  mqttsn::bytes encoded;
  require(mqttsn::encode(m, encoded));
  require(encoded.size() == mqttsn::encoded_size(m));

  const mqttsn::decode_result second = mqttsn::decode(encoded);
  require(std::holds_alternative<mqttsn::message>(second));
  require(std::get<mqttsn::message>(second) == m);
  require(mqttsn::type_of(std::get<mqttsn::message>(second)) == mqttsn::type_of(m));
  // Canonical bytes are a fixed point.
  require(mqttsn::encode(std::get<mqttsn::message>(second)) == encoded);

  // The gateway decodes a forwarder's inner frame next: hold it to the same rules.
  if (const auto* e = std::get_if<mqttsn::encapsulated>(&m)) check_round_trip(e->frame);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  check_round_trip(std::span<const std::uint8_t>(data, size));
  return 0;
}
