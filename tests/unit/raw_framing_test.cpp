// Raw MQTT-SN length framing: back-to-back frames in both Length forms and behind a forwarder
// encapsulation, every split of the stream, resynchronisation on Length fields that cannot be
// right, the max-frame bound, on_idle(), and frames that mqttsn::decode reads back.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "hex.hpp"
#include "mqttsn/codec.hpp"
#include "mqttsn/message.hpp"
#include "transports/framing/raw.hpp"

namespace {

using test_hex::hex;

using transports::framing::bytes;
using transports::framing::raw_deframer;
using transports::framing::raw_deframer_counters;
namespace fr = transports::framing;


bytes concat(std::initializer_list<bytes> parts) {
  bytes out;
  for (const bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

std::vector<bytes> deframe(const bytes& stream, std::size_t max = fr::raw_default_max_frame_size) {
  raw_deframer d(max);
  std::vector<bytes> frames;
  d.feed(stream, frames);
  return frames;
}

const bytes pingreq = hex("02 16");
const bytes searchgw = hex("03 01 00");
const bytes long_pingreq = hex("01 00 06 16 41 42");             // PINGREQ "AB", long Length form
const bytes encapsulated_pingreq = hex("05 FE 01 AB CD 02 16");  // FE header (node AB CD) + PINGREQ

TEST(raw_framing, back_to_back_short_frames) {
  raw_deframer d;
  std::vector<bytes> frames;
  EXPECT_EQ(d.feed(concat({pingreq, searchgw, pingreq}), frames), 3U);
  EXPECT_EQ(frames, (std::vector<bytes>{pingreq, searchgw, pingreq}));
  EXPECT_EQ(d.counters(), (raw_deframer_counters{.frames_ok = 3}));
  EXPECT_FALSE(d.mid_frame());
}

TEST(raw_framing, long_length_form_frames_include_their_three_length_bytes) {
  EXPECT_EQ(deframe(concat({long_pingreq, pingreq})), (std::vector<bytes>{long_pingreq, pingreq}));
  // The long form may declare less than 256 (mqttsn::decode accepts it too), but not less than 4.
  EXPECT_EQ(deframe(hex("01 00 04 16")), std::vector<bytes>{hex("01 00 04 16")});
}

TEST(raw_framing, forwarder_encapsulation_carries_its_inner_frame) {
  EXPECT_EQ(deframe(concat({encapsulated_pingreq, searchgw})),
            (std::vector<bytes>{encapsulated_pingreq, searchgw}));
  // Nested encapsulation, and an inner frame in the long form.
  const bytes nested = hex("03 FE 01 03 FE 02 02 16");
  const bytes inner_long = hex("03 FE 00 01 00 06 16 41 42");
  EXPECT_EQ(deframe(concat({nested, inner_long})), (std::vector<bytes>{nested, inner_long}));
}

TEST(raw_framing, every_split_yields_the_same_frames) {
  const bytes stream = concat({pingreq, long_pingreq, encapsulated_pingreq, searchgw});
  const std::vector<bytes> expected{pingreq, long_pingreq, encapsulated_pingreq, searchgw};

  raw_deframer one_by_one;
  std::vector<bytes> frames;
  for (const std::uint8_t b : stream) one_by_one.feed(std::span(&b, 1), frames);
  EXPECT_EQ(frames, expected);

  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    raw_deframer d;
    std::vector<bytes> got;
    d.feed(std::span(stream).first(cut), got);
    d.feed(std::span(stream).subspan(cut), got);
    EXPECT_EQ(got, expected) << "cut at " << cut;
    EXPECT_EQ(d.counters(), (raw_deframer_counters{.frames_ok = 4}));
  }
}

TEST(raw_framing, zero_length_bytes_are_skipped) {
  raw_deframer d;
  std::vector<bytes> frames;
  d.feed(concat({hex("00 00"), pingreq}), frames);
  EXPECT_EQ(frames, std::vector<bytes>{pingreq});
  EXPECT_EQ(d.counters(),
            (raw_deframer_counters{.frames_ok = 1, .bytes_skipped = 2, .bad_length = 2}));
}

TEST(raw_framing, long_form_declaring_less_than_four_drops_one_byte_and_retries) {
  // 01 00 00: the marker is dropped, then each 00; SEARCHGW follows.
  raw_deframer d;
  std::vector<bytes> frames;
  d.feed(concat({hex("01 00 00"), searchgw}), frames);
  EXPECT_EQ(frames, std::vector<bytes>{searchgw});
  EXPECT_EQ(d.counters(),
            (raw_deframer_counters{.frames_ok = 1, .bytes_skipped = 3, .bad_length = 3}));

  // 01 00 03: after 01 and 00 are dropped, 03 is read as a Length: length-only framing cannot tell
  // it from a real one (the limit documented in raw.hpp).
  raw_deframer e;
  e.feed(hex("01 00 03"), frames);
  EXPECT_EQ(e.counters(), (raw_deframer_counters{.bytes_skipped = 2, .bad_length = 2}));
  EXPECT_EQ(e.buffered(), 1U);
}

TEST(raw_framing, frame_at_the_maximum_is_accepted_one_above_is_dropped) {
  const std::size_t max = 16;
  bytes at_max(max, 0x41);
  at_max[0] = 0x10;  // Length 16
  at_max[1] = 0x0C;  // PUBLISH
  EXPECT_EQ(deframe(at_max, max), std::vector<bytes>{at_max});

  // Length 17 is rejected at its first byte; the next frame is found right behind it.
  raw_deframer d(max);
  std::vector<bytes> frames;
  d.feed(concat({hex("11"), pingreq}), frames);
  EXPECT_EQ(frames, std::vector<bytes>{pingreq});
  EXPECT_EQ(d.counters(),
            (raw_deframer_counters{.frames_ok = 1, .bytes_skipped = 1, .bad_length = 1}));

  // Long form: 16 accepted, 17 rejected at its third byte.
  bytes long_at_max(max, 0x41);
  long_at_max[0] = 0x01;
  long_at_max[1] = 0x00;
  long_at_max[2] = 0x10;
  long_at_max[3] = 0x0C;
  EXPECT_EQ(deframe(long_at_max, max), std::vector<bytes>{long_at_max});
  raw_deframer e(max);
  e.feed(hex("01 00 11"), frames);
  EXPECT_EQ(e.counters(), (raw_deframer_counters{.bytes_skipped = 3, .bad_length = 3}));
  EXPECT_FALSE(e.mid_frame());  // 00 and 11 (17) were re-read and dropped too
}

TEST(raw_framing, default_maximum_is_1024_bytes) {
  bytes at_max(1024, 0x00);
  at_max[0] = 0x01;
  at_max[1] = 0x04;
  at_max[2] = 0x00;
  at_max[3] = 0x0C;
  EXPECT_EQ(deframe(at_max), std::vector<bytes>{at_max});
  raw_deframer d;
  std::vector<bytes> frames;
  d.feed(hex("01 04 01"), frames);
  EXPECT_GE(d.counters().bad_length, 1U);
  EXPECT_TRUE(frames.empty());
}

TEST(raw_framing, encapsulated_frame_above_the_maximum_is_dropped) {
  // max 8: header 5 + inner 4 = 9. The inner Length is rejected; dropping one byte at a time then
  // walks through FE (254), 01 AB CD (43981), AB and CD before 04 16 00 00 fits.
  raw_deframer d(8);
  std::vector<bytes> frames;
  d.feed(hex("05 FE 01 AB CD 04 16 00 00"), frames);
  EXPECT_EQ(frames, std::vector<bytes>{hex("04 16 00 00")});
  EXPECT_EQ(d.counters(),
            (raw_deframer_counters{.frames_ok = 1, .bytes_skipped = 5, .bad_length = 5}));
  // At the bound it fits.
  EXPECT_EQ(deframe(hex("05 FE 01 AB CD 03 01 00"), 8),
            std::vector<bytes>{hex("05 FE 01 AB CD 03 01 00")});
}

TEST(raw_framing, long_length_that_cannot_fit_behind_encapsulation_is_rejected_at_once) {
  // max 8: a 6-byte encapsulation header leaves room for a 2-byte frame, not for a long-form one
  // (at least 4 bytes). Found by fuzz_raw_framing: the buffer reached the bound mid-frame.
  raw_deframer d(8);
  std::vector<bytes> frames;
  d.feed(hex("06 FE 01 AB CD EF 01 00"), frames);
  EXPECT_TRUE(frames.empty());
  EXPECT_LT(d.buffered(), d.max_frame_size());
  EXPECT_EQ(d.buffered(), 2U);  // 01 00: a long Length of its own, still waiting for its low byte
  EXPECT_EQ(d.counters(), (raw_deframer_counters{.bytes_skipped = 6, .bad_length = 6}));
}

TEST(raw_framing, encapsulation_header_shorter_than_three_is_rejected) {
  raw_deframer d;
  std::vector<bytes> frames;
  d.feed(hex("02 FE"), frames);
  EXPECT_EQ(d.counters(), (raw_deframer_counters{.bytes_skipped = 1, .bad_length = 1}));
  EXPECT_EQ(d.buffered(), 1U);  // FE, now read as a Length of 254
}

TEST(raw_framing, on_idle_drops_the_stalled_length_and_rescans_the_rest) {
  // A noise byte 0x40 claims 64 bytes; the SEARCHGW behind it is found once the line goes quiet.
  raw_deframer d;
  std::vector<bytes> frames;
  EXPECT_EQ(d.feed(concat({hex("40"), searchgw}), frames), 0U);
  EXPECT_TRUE(d.mid_frame());
  EXPECT_EQ(d.on_idle(frames), 1U);
  EXPECT_EQ(frames, std::vector<bytes>{searchgw});
  EXPECT_FALSE(d.mid_frame());
  EXPECT_EQ(d.counters(),
            (raw_deframer_counters{.frames_ok = 1, .bytes_skipped = 1, .stalled = 1}));
}

TEST(raw_framing, on_idle_empties_the_buffer_and_counts_each_stall) {
  raw_deframer d;
  std::vector<bytes> frames;
  d.feed(hex("40 30"), frames);
  EXPECT_EQ(d.on_idle(frames), 0U);
  EXPECT_FALSE(d.mid_frame());
  EXPECT_EQ(d.counters(), (raw_deframer_counters{.bytes_skipped = 2, .stalled = 2}));
  EXPECT_EQ(d.on_idle(frames), 0U);  // nothing partial, nothing counted
  EXPECT_EQ(d.counters().stalled, 2U);
}

TEST(raw_framing, reset_forgets_a_partial_frame_and_keeps_counters) {
  raw_deframer d;
  std::vector<bytes> frames;
  d.feed(concat({pingreq, hex("05 0C 00")}), frames);
  EXPECT_EQ(d.buffered(), 3U);
  d.reset();
  EXPECT_FALSE(d.mid_frame());
  d.feed(searchgw, frames);
  EXPECT_EQ(frames, (std::vector<bytes>{pingreq, searchgw}));
  EXPECT_EQ(d.counters(), (raw_deframer_counters{.frames_ok = 2}));
}

TEST(raw_framing, max_frame_size_is_clamped) {
  EXPECT_EQ(raw_deframer(0).max_frame_size(), fr::raw_min_frame_size);
  EXPECT_EQ(raw_deframer(100000).max_frame_size(), fr::raw_max_frame_size);
  EXPECT_EQ(raw_deframer().max_frame_size(), fr::raw_default_max_frame_size);
  // With the smallest maximum only 2-byte frames pass.
  EXPECT_EQ(deframe(concat({searchgw, pingreq}), 0), std::vector<bytes>{pingreq});
}

TEST(raw_framing, encoded_messages_deframe_and_decode_back) {
  mqttsn::publish big;
  big.q = mqttsn::qos::at_least_once;
  big.id = 0x0102;
  big.mid = 7;
  big.data = bytes(300, 0x5A);  // long Length form
  mqttsn::encapsulated wrapped;
  wrapped.radius = 1;
  wrapped.node_id = hex("AB CD");
  wrapped.frame = mqttsn::encode(mqttsn::message{mqttsn::pingreq{"node"}});
  const std::vector<mqttsn::message> sent = {
      mqttsn::connect{.will = false, .clean_session = true, .duration = 60, .client_id = "pi-node"},
      big, mqttsn::pingreq{}, wrapped, mqttsn::disconnect{}};
  bytes stream;
  for (const auto& m : sent) {
    const bytes frame = mqttsn::encode(m);
    stream.insert(stream.end(), frame.begin(), frame.end());
  }
  const auto frames = deframe(stream);
  ASSERT_EQ(frames.size(), sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) {
    const auto decoded = mqttsn::decode(frames[i]);
    ASSERT_TRUE(std::holds_alternative<mqttsn::message>(decoded)) << i;
    EXPECT_EQ(std::get<mqttsn::message>(decoded), sent[i]) << i;
  }
}

// Any byte stream: the result does not depend on how it is cut, every emitted frame has a Length
// field that matches its size and stays within the maximum, and every byte is accounted for.
TEST(raw_framing, random_streams_are_split_invariant_and_conserve_bytes) {
  std::mt19937 rng(424242);
  for (int round = 0; round < 200; ++round) {
    bytes stream(rng() % 600);
    for (auto& b : stream) b = static_cast<std::uint8_t>(rng() % 8 == 0 ? rng() % 4 : rng() % 40);
    const std::size_t max = 8 + rng() % 120;

    raw_deframer whole(max);
    std::vector<bytes> expected;
    whole.feed(stream, expected);

    raw_deframer pieces(max);
    std::vector<bytes> got;
    for (std::size_t pos = 0; pos < stream.size();) {
      const std::size_t n = std::min<std::size_t>(1 + rng() % 9, stream.size() - pos);
      pieces.feed(std::span(stream).subspan(pos, n), got);
      pos += n;
    }
    EXPECT_EQ(got, expected);
    EXPECT_EQ(pieces.counters(), whole.counters());

    std::size_t framed = 0;
    for (const bytes& f : expected) {
      ASSERT_GE(f.size(), fr::raw_min_frame_size);
      EXPECT_LE(f.size(), max);
      framed += f.size();
    }
    EXPECT_EQ(framed + whole.counters().bytes_skipped + whole.buffered(), stream.size());
    EXPECT_EQ(whole.counters().frames_ok, expected.size());
  }
}

}  // namespace
