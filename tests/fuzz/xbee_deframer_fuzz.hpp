// The checks behind fuzz_xbee_api1 and fuzz_xbee_api2, for any input bytes on a line in `mode`:
//  * the frames and counters do not depend on how the input is cut (whole, byte by byte, chunks);
//  * every frame is within the deframer's maximum, and re-encoded (in either mode) it deframes to
//    exactly itself;
//  * a 0x90/0x91 frame's payload, re-wrapped in a 0x90 frame and in a 0x10 frame, deframes and
//    parses back to the same payload and addresses; the other parsers never misread a frame;
//  * the raw-MQTT-SN diagnostic never calls a line with API frames raw.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "transports/framing/xbee_api.hpp"

namespace xbee_fuzz {

namespace fr = transports::framing;
using fr::bytes;

inline void require(bool condition) {
  if (!condition) std::abort();
}

struct outcome {
  std::vector<bytes> frames;
  fr::xbee_deframer_counters counters;
  bool operator==(const outcome&) const = default;
};

// Feeds `input` in pieces whose sizes come from `cut_sizes` (0 = the whole input at once), then
// signals idle.
inline outcome deframe(fr::xbee_mode mode, std::size_t max, std::span<const std::uint8_t> input,
                       std::span<const std::uint8_t> cut_sizes) {
  fr::xbee_deframer d(mode, max);
  outcome out;
  if (cut_sizes.empty()) {
    require(d.feed(input, out.frames) == out.frames.size());
  } else {
    std::size_t pos = 0;
    for (std::size_t i = 0; pos < input.size(); ++i) {
      const std::size_t n =
          std::min<std::size_t>(1 + cut_sizes[i % cut_sizes.size()] % 23, input.size() - pos);
      d.feed(input.subspan(pos, n), out.frames);
      pos += n;
    }
  }
  d.on_idle(out.frames);
  require(!d.mid_frame());
  out.counters = d.counters();
  require(out.counters.frames_ok == out.frames.size());
  return out;
}

inline std::vector<bytes> deframe_all(fr::xbee_mode mode, const bytes& wire) {
  fr::xbee_deframer d(mode, fr::xbee_max_frame_data);
  std::vector<bytes> frames;
  d.feed(wire, frames);
  require(!d.mid_frame());
  require(d.counters() == fr::xbee_deframer_counters{.frames_ok = frames.size()});
  return frames;
}

inline void check_receive(const fr::xbee_receive& rx, fr::xbee_mode mode) {
  // Re-wrap as a 0x90 Receive Packet.
  bytes data{fr::xbee_type::receive_packet};
  for (int shift = 56; shift >= 0; shift -= 8) {
    data.push_back(static_cast<std::uint8_t>(rx.source64 >> static_cast<unsigned>(shift)));
  }
  data.push_back(static_cast<std::uint8_t>(rx.source16 >> 8U));
  data.push_back(static_cast<std::uint8_t>(rx.source16));
  data.push_back(rx.options);
  data.insert(data.end(), rx.payload.begin(), rx.payload.end());
  const auto frames = deframe_all(mode, fr::encode_frame(data, mode));
  require(frames.size() == 1);
  const auto again = fr::parse_receive(frames[0]);
  require(again.has_value());
  require(again->source64 == rx.source64 && again->source16 == rx.source16);
  require(again->options == rx.options);
  require(std::equal(again->payload.begin(), again->payload.end(), rx.payload.begin(),
                     rx.payload.end()));

  // And as the gateway would send it back: a 0x10 Transmit Request to the same node.
  const fr::xbee_transmit_request tx{.frame_id = 1,
                                     .destination64 = rx.source64,
                                     .destination16 = rx.source16,
                                     .radius = 0,
                                     .options = 0,
                                     .payload = rx.payload};
  const auto sent = deframe_all(mode, fr::encode_transmit_request(tx, mode));
  require(sent.size() == 1 && sent[0].size() == 14 + rx.payload.size());
  require(sent[0][0] == fr::xbee_type::transmit_request);
  require(std::equal(sent[0].begin() + 14, sent[0].end(), rx.payload.begin(), rx.payload.end()));
}

inline void check_frame(const bytes& frame, fr::xbee_mode mode, std::size_t max) {
  require(!frame.empty() && frame.size() <= max);
  for (const fr::xbee_mode m : {fr::xbee_mode::api1, fr::xbee_mode::api2}) {
    require(deframe_all(m, fr::encode_frame(frame, m)) == std::vector<bytes>{frame});
  }
  if (const auto rx = fr::parse_receive(frame)) check_receive(*rx, mode);
  if (const auto st = fr::parse_transmit_status(frame)) {
    require(frame.size() == 7 && st->frame_id == frame[1] && st->discovery_status == frame[6]);
    require(fr::describe_delivery_status(st->delivery_status) != nullptr);
  }
  if (const auto ms = fr::parse_modem_status(frame)) {
    require(ms->status == frame[1] && fr::describe_modem_status(ms->status) != nullptr);
  }
  if (const auto at = fr::parse_at_response(frame)) {
    require(at->value.size() + 5 == frame.size() && at->status == frame[4]);
  }
}

inline void run(fr::xbee_mode mode, std::span<const std::uint8_t> input) {
  constexpr std::size_t small_max = 24;
  for (const std::size_t max : {fr::xbee_default_max_frame_data, small_max}) {
    const outcome whole = deframe(mode, max, input, {});
    // Cut sizes taken from the input itself, and one byte at a time.
    const std::uint8_t one = 0;
    require(deframe(mode, max, input, input) == whole);
    require(deframe(mode, max, input, std::span(&one, 1)) == whole);
    for (const bytes& frame : whole.frames) check_frame(frame, mode, max);
  }
  if (fr::looks_like_raw_mqttsn(input)) {
    std::vector<bytes> frames;
    fr::xbee_deframer d(mode);
    require(d.feed(input, frames) == 0);
  }
  // Any payload goes out in a 0x10 frame and comes back.
  const fr::xbee_transmit_request tx{.frame_id = 0x7E, .payload = input};
  bytes wire;
  if (fr::encode_transmit_request(tx, mode, wire)) {
    const auto frames = deframe_all(mode, wire);
    require(frames.size() == 1 && frames[0].size() == 14 + input.size());
  }
}

}  // namespace xbee_fuzz
