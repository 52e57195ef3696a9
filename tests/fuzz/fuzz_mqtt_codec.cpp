// libFuzzer target for the MQTT 3.1.1 codec (mqttsn::mqtt311), which reads every byte the broker
// sends the gateway: the input is split into packets as the gateway's connection splits its TCP
// stream (peek_frame), and every packet must decode to an error or to a packet that re-encodes to
// the same bytes and decodes to itself. Seed corpus: tests/fuzz/corpus/mqtt_codec (spec vectors).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <span>
#include <variant>

#include "mqttsn/mqtt_codec.hpp"

namespace {

namespace m = mqttsn::mqtt311;

void require(bool condition) {
  if (!condition) std::abort();
}

void check_packet(std::span<const std::uint8_t> whole) {
  const auto first = m::decode(whole);
  if (std::holds_alternative<m::decode_error>(first)) return;
  const auto& p = std::get<m::packet>(first);
  const auto encoded = m::encode(p);
  const auto second = m::decode(encoded);
  require(std::holds_alternative<m::packet>(second));
  require(std::get<m::packet>(second) == p);
  // The decoder accepts only canonical bytes, except a Remaining Length with needless
  // continuation bytes (e.g. 80 00 for 0), which re-encodes shorter.
  if (encoded.size() == whole.size())
    require(std::equal(encoded.begin(), encoded.end(), whole.begin()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::uint8_t> stream(data, size);
  while (!stream.empty()) {
    const auto peeked = m::peek_frame(stream);
    if (std::holds_alternative<m::decode_error>(peeked)) {
      require(m::decode(stream.first(std::min<std::size_t>(stream.size(), 5))) ==
              m::decode_result{std::get<m::decode_error>(peeked)});
      return 0;
    }
    const auto& info = std::get<std::optional<m::frame_info>>(peeked);
    if (!info || info->size() > stream.size()) {
      require(std::get<m::decode_error>(m::decode(stream)) == m::decode_error::truncated);
      return 0;
    }
    check_packet(stream.first(info->size()));
    stream = stream.subspan(info->size());
  }
  return 0;
}
