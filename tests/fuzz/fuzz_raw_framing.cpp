// libFuzzer target for the raw MQTT-SN length deframer, on any input bytes:
//  * frames and counters do not depend on how the input is cut (whole, byte by byte, chunks);
//  * every frame has a Length field (or a chain of encapsulation headers ending in one) that
//    matches its size, and never exceeds the maximum;
//  * every input byte is in a frame, skipped, or still buffered; on_idle() leaves nothing buffered;
//  * the emitted frames, back to back, deframe to exactly themselves.
// Seed corpus: tests/fuzz/corpus/raw_framing.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "mqttsn/codec.hpp"
#include "transports/framing/raw.hpp"

namespace {

namespace fr = transports::framing;
using fr::bytes;

void require(bool condition) {
  if (!condition) std::abort();
}

struct outcome {
  std::vector<bytes> frames;
  fr::raw_deframer_counters counters;
  std::size_t buffered = 0;
  std::vector<bytes> idle_frames;
  fr::raw_deframer_counters idle_counters;
  bool operator==(const outcome&) const = default;
};

outcome deframe(std::size_t max, std::span<const std::uint8_t> input,
                std::span<const std::uint8_t> cut_sizes) {
  fr::raw_deframer d(max);
  outcome out;
  if (cut_sizes.empty()) {
    require(d.feed(input, out.frames) == out.frames.size());
  } else {
    std::size_t pos = 0;
    for (std::size_t i = 0; pos < input.size(); ++i) {
      const std::size_t n =
          std::min<std::size_t>(1 + cut_sizes[i % cut_sizes.size()] % 17, input.size() - pos);
      d.feed(input.subspan(pos, n), out.frames);
      pos += n;
    }
  }
  out.counters = d.counters();
  out.buffered = d.buffered();
  require(d.mid_frame() == (out.buffered != 0) && out.buffered < d.max_frame_size());
  d.on_idle(out.idle_frames);
  require(!d.mid_frame());
  out.idle_counters = d.counters();
  return out;
}

// The Length fields of `frame` describe exactly its size.
bool length_is_consistent(const bytes& frame) {
  std::size_t segment = 0;
  while (segment < frame.size()) {
    const std::size_t have = frame.size() - segment;
    if (frame[segment] == 0x01) {
      if (have < 4) return false;
      const std::size_t length =
          (static_cast<std::size_t>(frame[segment + 1]) << 8U) | frame[segment + 2];
      return length >= 4 && length == have;
    }
    const std::size_t length = frame[segment];
    if (length < 2 || have < 2) return false;
    if (frame[segment + 1] != 0xFE) return length == have;
    if (length < 3 || length >= have) return false;
    segment += length;
  }
  return false;
}

void check(std::size_t max, std::span<const std::uint8_t> input) {
  const outcome whole = deframe(max, input, {});
  const std::uint8_t one = 0;
  require(deframe(max, input, input) == whole);
  require(deframe(max, input, std::span(&one, 1)) == whole);

  std::size_t framed = 0;
  for (const bytes& frame : whole.frames) {
    require(frame.size() >= fr::raw_min_frame_size && frame.size() <= max);
    require(length_is_consistent(frame));
    framed += frame.size();
    (void)mqttsn::decode(frame);
  }
  require(framed + whole.counters.bytes_skipped + whole.buffered == input.size());
  require(whole.counters.frames_ok == whole.frames.size());

  std::size_t idle_framed = 0;
  for (const bytes& frame : whole.idle_frames) {
    require(frame.size() <= max && length_is_consistent(frame));
    idle_framed += frame.size();
  }
  require(idle_framed + whole.idle_counters.bytes_skipped - whole.counters.bytes_skipped ==
          whole.buffered);

  // What came out goes back in unchanged.
  bytes again;
  for (const bytes& frame : whole.frames) again.insert(again.end(), frame.begin(), frame.end());
  fr::raw_deframer d(max);
  std::vector<bytes> frames;
  d.feed(again, frames);
  require(frames == whole.frames && !d.mid_frame());
  require(d.counters() == fr::raw_deframer_counters{.frames_ok = frames.size()});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);
  check(fr::raw_default_max_frame_size, input);
  check(32, input);
  return 0;
}
