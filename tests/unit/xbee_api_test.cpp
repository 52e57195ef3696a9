// XBee API framing: escaping (Digi's own example, every special byte, length and checksum bytes),
// the worked frames of SERIAL.md both ways in both modes, byte splits, resynchronisation after
// garbage, bad checksums, bad lengths and (API mode 2) a 0x7E mid-frame, and the frame parsers and
// encoders. Checksums written in comments were added up by hand: 0xFF - (sum of frame data & 0xFF).
#include "hex.hpp"
#include "transports/framing/xbee_api.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace {

using test_hex::hex;
using test_hex::to_hex;

using transports::framing::bytes;
using transports::framing::xbee_deframer;
using transports::framing::xbee_deframer_counters;
using transports::framing::xbee_mode;
namespace fr = transports::framing;



std::vector<std::string> to_hex(const std::vector<bytes>& frames) {
  std::vector<std::string> out;
  for (const bytes& f : frames) out.push_back(to_hex(f));
  return out;
}

bytes concat(std::initializer_list<bytes> parts) {
  bytes out;
  for (const bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// All frames `wire` yields in one feed() to a fresh deframer.
std::vector<bytes> deframe(xbee_mode mode, const bytes& wire,
                           std::size_t max = fr::xbee_default_max_frame_data) {
  xbee_deframer d(mode, max);
  std::vector<bytes> frames;
  d.feed(wire, frames);
  return frames;
}

// ---------------------------------------------------------------------------------------------
// Escaping

TEST(xbee_api_escaping, digi_example_escapes_xon_in_api2_only) {
  // 0xFF - (0x23 + 0x11) = 0xCB
  EXPECT_EQ(to_hex(fr::encode_frame(hex("23 11"), xbee_mode::api1)), "7E 00 02 23 11 CB");
  EXPECT_EQ(to_hex(fr::encode_frame(hex("23 11"), xbee_mode::api2)), "7E 00 02 23 7D 31 CB");
  EXPECT_EQ(to_hex(deframe(xbee_mode::api2, hex("7E 00 02 23 7D 31 CB"))),
            std::vector<std::string>{"23 11"});
  EXPECT_EQ(to_hex(deframe(xbee_mode::api1, hex("7E 00 02 23 11 CB"))),
            std::vector<std::string>{"23 11"});
}

TEST(xbee_api_escaping, flag_escape_xon_xoff_in_frame_data_are_escaped) {
  // 0x23 + 0x7E + 0x7D + 0x11 + 0x13 = 0x142 -> 0xFF - 0x42 = 0xBD
  const bytes wire = hex("7E 00 05 23 7D 5E 7D 5D 7D 31 7D 33 BD");
  EXPECT_EQ(fr::encode_frame(hex("23 7E 7D 11 13"), xbee_mode::api2), wire);
  EXPECT_EQ(to_hex(deframe(xbee_mode::api2, wire)), std::vector<std::string>{"23 7E 7D 11 13"});
}

TEST(xbee_api_escaping, checksum_byte_is_escaped) {
  // One data byte b gives checksum 0xFF - b: 0x81 -> 7E, 0x82 -> 7D, 0xEE -> 11, 0xEC -> 13.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"81", "7E 00 01 81 7D 5E"},
      {"82", "7E 00 01 82 7D 5D"},
      {"EE", "7E 00 01 EE 7D 31"},
      {"EC", "7E 00 01 EC 7D 33"},
  };
  for (const auto& [data, wire] : cases) {
    EXPECT_EQ(to_hex(fr::encode_frame(hex(data), xbee_mode::api2)), wire);
    EXPECT_EQ(to_hex(deframe(xbee_mode::api2, hex(wire))), std::vector<std::string>{data});
  }
}

TEST(xbee_api_escaping, length_bytes_are_escaped_low_and_high) {
  for (const std::size_t length : {0x11U, 0x13U, 0x7DU, 0x7EU, 0x117EU, 0x1311U}) {
    const bytes data(length, 0x01);
    const bytes wire = fr::encode_frame(data, xbee_mode::api2);
    std::string expected_length;
    for (const std::uint8_t b :
         {static_cast<std::uint8_t>(length >> 8U), static_cast<std::uint8_t>(length & 0xFFU)}) {
      const bool special = b == 0x7E || b == 0x7D || b == 0x11 || b == 0x13;
      expected_length +=
          special ? "7D " + to_hex(bytes{static_cast<std::uint8_t>(b ^ 0x20U)}) : to_hex(bytes{b});
      expected_length += ' ';
    }
    EXPECT_EQ(to_hex(wire).substr(3, expected_length.size()), expected_length) << length;
    const auto frames = deframe(xbee_mode::api2, wire, fr::xbee_max_frame_data);
    ASSERT_EQ(frames.size(), 1U) << length;
    EXPECT_EQ(frames[0], data);
  }
}

TEST(xbee_api_escaping, api2_escape_of_an_ordinary_byte_still_xors_0x20) {
  // Digi never sends 7D 26, but it can only mean 0x06: 8A 06 -> 0xFF - 0x90 = 0x6F.
  EXPECT_EQ(to_hex(deframe(xbee_mode::api2, hex("7E 00 02 8A 7D 26 6F"))),
            std::vector<std::string>{"8A 06"});
}

// ---------------------------------------------------------------------------------------------
// The worked examples of SERIAL.md, each in both modes: deframes to its frame data, and that frame
// data encodes back to the exact wire bytes.

struct worked_frame {
  const char* name;
  const char* frame_data;
  const char* api1;
  const char* api2;
};

const worked_frame worked_frames[] = {
    {"searchgw_rx", "90 0013A20040522BAA 7D84 01 03 01 00",
     "7E 00 0F 90 00 13 A2 00 40 52 2B AA 7D 84 01 03 01 00 4D",
     "7E 00 0F 90 00 7D 33 A2 00 40 52 2B AA 7D 5D 84 01 03 01 00 4D"},
    {"connect_rx", "90 0013A20040522BAA 7D84 01 0D 04 04 01 00 3C 70 69 2D 6E 6F 64 65",
     "7E 00 19 90 00 13 A2 00 40 52 2B AA 7D 84 01 0D 04 04 01 00 3C 70 69 2D 6E 6F 64 65 53",
     "7E 00 19 90 00 7D 33 A2 00 40 52 2B AA 7D 5D 84 01 0D 04 04 01 00 3C 70 69 2D 6E 6F 64 65 "
     "53"},
    {"connack_tx", "10 01 0013A20040522BAA FFFE 00 00 03 05 00",
     "7E 00 11 10 01 00 13 A2 00 40 52 2B AA FF FE 00 00 03 05 00 CD",
     "7E 00 7D 31 10 01 00 7D 33 A2 00 40 52 2B AA FF FE 00 00 03 05 00 CD"},
    {"advertise_tx", "10 00 000000000000FFFF FFFE 00 00 05 00 01 03 84",
     "7E 00 13 10 00 00 00 00 00 00 00 FF FF FF FE 00 00 05 00 01 03 84 67",
     "7E 00 7D 33 10 00 00 00 00 00 00 00 FF FF FF FE 00 00 05 00 01 03 84 67"},
    {"gwinfo_tx", "10 00 000000000000FFFF FFFE 00 00 03 02 01",
     "7E 00 11 10 00 00 00 00 00 00 00 FF FF FF FE 00 00 03 02 01 EE",
     "7E 00 7D 31 10 00 00 00 00 00 00 00 FF FF FF FE 00 00 03 02 01 EE"},
    {"tx_status_ok", "8B 01 7D84 00 00 01", "7E 00 07 8B 01 7D 84 00 00 01 71",
     "7E 00 07 8B 01 7D 5D 84 00 00 01 71"},
    {"tx_status_route_not_found", "8B 01 FFFD 02 25 00", "7E 00 07 8B 01 FF FD 02 25 00 50",
     "7E 00 07 8B 01 FF FD 02 25 00 50"},
    {"at_ap_query", "08 52 41 50", "7E 00 04 08 52 41 50 14", "7E 00 04 08 52 41 50 14"},
    {"at_ap_reply", "88 52 41 50 00 02", "7E 00 06 88 52 41 50 00 02 92",
     "7E 00 06 88 52 41 50 00 02 92"},
    {"at_sh_query", "08 13 53 48", "7E 00 04 08 13 53 48 49", "7E 00 04 08 7D 33 53 48 49"},
    {"modem_coordinator_started", "8A 06", "7E 00 02 8A 06 6F", "7E 00 02 8A 06 6F"},
    {"modem_hardware_reset", "8A 00", "7E 00 02 8A 00 75", "7E 00 02 8A 00 75"},
    {"explicit_rx_pingreq", "91 0013A20040522BAA 7D84 E8 E8 0011 C105 01 02 16",
     "7E 00 14 91 00 13 A2 00 40 52 2B AA 7D 84 E8 E8 00 11 C1 05 01 02 16 91",
     "7E 00 14 91 00 7D 33 A2 00 40 52 2B AA 7D 5D 84 E8 E8 00 7D 31 C1 05 01 02 16 91"},
};

class xbee_api_worked : public ::testing::TestWithParam<worked_frame> {};

TEST_P(xbee_api_worked, deframes_in_api1) {
  EXPECT_EQ(deframe(xbee_mode::api1, hex(GetParam().api1)),
            std::vector<bytes>{hex(GetParam().frame_data)});
}

TEST_P(xbee_api_worked, deframes_in_api2) {
  EXPECT_EQ(deframe(xbee_mode::api2, hex(GetParam().api2)),
            std::vector<bytes>{hex(GetParam().frame_data)});
}

TEST_P(xbee_api_worked, encodes_to_the_exact_wire_bytes_in_both_modes) {
  EXPECT_EQ(to_hex(fr::encode_frame(hex(GetParam().frame_data), xbee_mode::api1)),
            to_hex(hex(GetParam().api1)));
  EXPECT_EQ(to_hex(fr::encode_frame(hex(GetParam().frame_data), xbee_mode::api2)),
            to_hex(hex(GetParam().api2)));
}

TEST_P(xbee_api_worked, every_split_yields_the_same_single_frame) {
  for (const xbee_mode mode : {xbee_mode::api1, xbee_mode::api2}) {
    const bytes wire = hex(mode == xbee_mode::api1 ? GetParam().api1 : GetParam().api2);
    const std::vector<bytes> expected{hex(GetParam().frame_data)};

    xbee_deframer one_by_one(mode);
    std::vector<bytes> frames;
    for (const std::uint8_t b : wire) one_by_one.feed(std::span(&b, 1), frames);
    EXPECT_EQ(frames, expected);

    for (std::size_t cut = 0; cut <= wire.size(); ++cut) {
      xbee_deframer two_pieces(mode);
      std::vector<bytes> got;
      EXPECT_EQ(two_pieces.feed(std::span(wire).first(cut), got), cut == wire.size() ? 1U : 0U);
      two_pieces.feed(std::span(wire).subspan(cut), got);
      EXPECT_EQ(got, expected) << "cut at " << cut;
      EXPECT_EQ(two_pieces.counters(), (xbee_deframer_counters{.frames_ok = 1}));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(serial_md, xbee_api_worked, ::testing::ValuesIn(worked_frames),
                         [](const auto& p) { return std::string(p.param.name); });

// ---------------------------------------------------------------------------------------------
// Deframer: the PINGREQ frame below was built by hand.
//   frame data: 90 | 00 13 A2 00 40 52 2B AA | 7D 84 | 01 | 02 16   (14 bytes = 0x0E)
//   sum: 90+13+A2+40+52+2B+AA+7D+84+01+02+16 = 0x3C6 -> checksum 0xFF - 0xC6 = 0x39

const bytes pingreq_data = hex("90 00 13 A2 00 40 52 2B AA 7D 84 01 02 16");
const bytes pingreq_api1 = hex("7E 00 0E 90 00 13 A2 00 40 52 2B AA 7D 84 01 02 16 39");
const bytes pingreq_api2 = hex("7E 00 0E 90 00 7D 33 A2 00 40 52 2B AA 7D 5D 84 01 02 16 39");
const bytes modem_api = hex("7E 00 02 8A 06 6F");  // same bytes in both modes

TEST(xbee_api_deframer, hand_built_pingreq_deframes_and_parses_in_both_modes) {
  EXPECT_EQ(fr::encode_frame(pingreq_data, xbee_mode::api1), pingreq_api1);
  EXPECT_EQ(fr::encode_frame(pingreq_data, xbee_mode::api2), pingreq_api2);
  for (const auto& [mode, wire] :
       {std::pair{xbee_mode::api1, pingreq_api1}, std::pair{xbee_mode::api2, pingreq_api2}}) {
    const auto frames = deframe(mode, wire);
    ASSERT_EQ(frames.size(), 1U);
    const auto rx = fr::parse_receive(frames[0]);
    ASSERT_TRUE(rx.has_value());
    EXPECT_EQ(rx->frame_type, fr::xbee_type::receive_packet);
    EXPECT_EQ(rx->source64, 0x0013A20040522BAAU);
    EXPECT_EQ(rx->source16, 0x7D84);
    EXPECT_EQ(rx->options, fr::xbee_rx_acknowledged);
    EXPECT_EQ(bytes(rx->payload.begin(), rx->payload.end()), hex("02 16"));
  }
}

TEST(xbee_api_deframer, back_to_back_frames_in_one_feed) {
  for (const auto& [mode, ping] :
       {std::pair{xbee_mode::api1, pingreq_api1}, std::pair{xbee_mode::api2, pingreq_api2}}) {
    xbee_deframer d(mode);
    std::vector<bytes> frames;
    EXPECT_EQ(d.feed(concat({ping, modem_api, ping}), frames), 3U);
    EXPECT_EQ(frames, (std::vector<bytes>{pingreq_data, hex("8A 06"), pingreq_data}));
    EXPECT_EQ(d.counters(), (xbee_deframer_counters{.frames_ok = 3}));
    EXPECT_FALSE(d.mid_frame());
  }
}

TEST(xbee_api_deframer, garbage_before_a_frame_is_skipped_and_counted) {
  for (const auto& [mode, ping] :
       {std::pair{xbee_mode::api1, pingreq_api1}, std::pair{xbee_mode::api2, pingreq_api2}}) {
    xbee_deframer d(mode);
    std::vector<bytes> frames;
    d.feed(concat({hex("00 11 FF 7D 55"), ping}), frames);
    EXPECT_EQ(frames, std::vector<bytes>{pingreq_data});
    EXPECT_EQ(d.counters(), (xbee_deframer_counters{.frames_ok = 1, .bytes_skipped = 5}));
  }
}

TEST(xbee_api_deframer, bad_checksum_is_dropped_and_the_next_frame_recovered) {
  const bytes bad = hex("7E 00 02 8A 06 70");  // checksum should be 6F
  {
    xbee_deframer d(xbee_mode::api2);
    std::vector<bytes> frames;
    d.feed(concat({bad, pingreq_api2}), frames);
    EXPECT_EQ(frames, std::vector<bytes>{pingreq_data});
    EXPECT_EQ(d.counters(), (xbee_deframer_counters{.frames_ok = 1, .bad_checksum = 1}));
  }
  {
    // API mode 1 searches the rejected frame again: its 5 bytes after the delimiter are skipped.
    xbee_deframer d(xbee_mode::api1);
    std::vector<bytes> frames;
    d.feed(concat({bad, pingreq_api1}), frames);
    EXPECT_EQ(frames, std::vector<bytes>{pingreq_data});
    EXPECT_EQ(d.counters(),
              (xbee_deframer_counters{.frames_ok = 1, .bytes_skipped = 5, .bad_checksum = 1}));
  }
}

TEST(xbee_api_deframer, zero_length_is_dropped_and_the_next_frame_recovered) {
  for (const auto& [mode, ping] :
       {std::pair{xbee_mode::api1, pingreq_api1}, std::pair{xbee_mode::api2, pingreq_api2}}) {
    xbee_deframer d(mode);
    std::vector<bytes> frames;
    d.feed(concat({hex("7E 00 00"), ping}), frames);
    EXPECT_EQ(frames, std::vector<bytes>{pingreq_data});
    EXPECT_EQ(d.counters().bad_length, 1U);
    EXPECT_EQ(d.counters().frames_ok, 1U);
  }
}

TEST(xbee_api_deframer, length_at_the_maximum_is_accepted_one_above_is_dropped) {
  const std::size_t max = 32;
  const bytes at_max(max, 0x01);
  const bytes above(max + 1, 0x01);  // 7E 00 21 01.. DE: nothing to escape
  for (const xbee_mode mode : {xbee_mode::api1, xbee_mode::api2}) {
    EXPECT_EQ(deframe(mode, fr::encode_frame(at_max, mode), max), std::vector<bytes>{at_max});

    xbee_deframer d(mode, max);
    std::vector<bytes> frames;
    d.feed(concat({fr::encode_frame(above, mode), modem_api}), frames);
    EXPECT_EQ(frames, std::vector<bytes>{hex("8A 06")});
    EXPECT_EQ(d.counters().bad_length, 1U);
    EXPECT_EQ(d.counters().frames_ok, 1U);
    // Everything after the rejected length up to the next delimiter was skipped, never buffered
    // (API mode 1 also searches the two length bytes again).
    EXPECT_EQ(d.counters().bytes_skipped, mode == xbee_mode::api1 ? max + 4U : max + 2U);
  }
}

TEST(xbee_api_deframer, oversize_length_resyncs_on_the_next_delimiter) {
  // 7E 7F FF declares 32767 bytes; the deframer's maximum is 512.
  for (const auto& [mode, ping] :
       {std::pair{xbee_mode::api1, pingreq_api1}, std::pair{xbee_mode::api2, pingreq_api2}}) {
    xbee_deframer d(mode);
    std::vector<bytes> frames;
    d.feed(concat({hex("7E 7F FF 01 02 03"), ping}), frames);
    EXPECT_EQ(frames, std::vector<bytes>{pingreq_data});
    EXPECT_EQ(d.counters().bad_length, 1U);
    EXPECT_EQ(d.counters().bytes_skipped, mode == xbee_mode::api1 ? 5U : 3U);
  }
}

TEST(xbee_api_deframer, api2_restarts_on_a_delimiter_mid_frame) {
  xbee_deframer d(xbee_mode::api2);
  std::vector<bytes> frames;
  d.feed(concat({hex("7E 00 0E 90 00 7D 33"), pingreq_api2}), frames);
  EXPECT_EQ(frames, std::vector<bytes>{pingreq_data});
  EXPECT_EQ(d.counters(), (xbee_deframer_counters{.frames_ok = 1, .aborted = 1}));
}

TEST(xbee_api_deframer, api2_delimiter_right_after_an_escape_byte_still_restarts) {
  xbee_deframer d(xbee_mode::api2);
  std::vector<bytes> frames;
  d.feed(concat({hex("7E 00 0E 90 7D"), modem_api}), frames);
  EXPECT_EQ(frames, std::vector<bytes>{hex("8A 06")});
  EXPECT_EQ(d.counters().aborted, 1U);
}

TEST(xbee_api_deframer, api1_treats_a_delimiter_mid_frame_as_data) {
  // Frame data 10 7E (0xFF - 0x8E = 0x71): a valid API mode 1 frame with 0x7E inside.
  EXPECT_EQ(deframe(xbee_mode::api1, hex("7E 00 02 10 7E 71")), std::vector<bytes>{hex("10 7E")});
}

TEST(xbee_api_deframer, api1_stray_delimiter_does_not_swallow_the_frames_behind_it) {
  // A noise 7E 00 0A claims the next 11 bytes; its checksum fails, and the search resumes right
  // after the stray delimiter, finding both real frames.
  xbee_deframer d(xbee_mode::api1);
  std::vector<bytes> frames;
  d.feed(concat({hex("7E 00 0A"), modem_api, modem_api}), frames);
  EXPECT_EQ(frames, (std::vector<bytes>{hex("8A 06"), hex("8A 06")}));
  EXPECT_EQ(d.counters(),
            (xbee_deframer_counters{.frames_ok = 2, .bytes_skipped = 2, .bad_checksum = 1}));
}

TEST(xbee_api_deframer, on_idle_drops_a_stalled_frame_and_api1_rescans_it) {
  // 7E 00 40 waits for 64 bytes that never come; the real frame inside is found on idle.
  xbee_deframer d(xbee_mode::api1);
  std::vector<bytes> frames;
  EXPECT_EQ(d.feed(concat({hex("7E 00 40"), modem_api}), frames), 0U);
  EXPECT_TRUE(d.mid_frame());
  EXPECT_EQ(d.on_idle(frames), 1U);
  EXPECT_EQ(frames, std::vector<bytes>{hex("8A 06")});
  EXPECT_FALSE(d.mid_frame());
  EXPECT_EQ(d.counters(),
            (xbee_deframer_counters{.frames_ok = 1, .bytes_skipped = 2, .stalled = 1}));
}

TEST(xbee_api_deframer, on_idle_drops_a_stalled_frame_in_api2) {
  xbee_deframer d(xbee_mode::api2);
  std::vector<bytes> frames;
  d.feed(hex("7E 00 0E 90 00"), frames);
  EXPECT_EQ(d.on_idle(frames), 0U);
  EXPECT_FALSE(d.mid_frame());
  EXPECT_EQ(d.counters(), (xbee_deframer_counters{.stalled = 1}));
  EXPECT_EQ(d.on_idle(frames), 0U);  // nothing partial: nothing counted
  EXPECT_EQ(d.counters().stalled, 1U);
  d.feed(modem_api, frames);
  EXPECT_EQ(frames, std::vector<bytes>{hex("8A 06")});
}

TEST(xbee_api_deframer, reset_forgets_a_partial_frame_and_keeps_counters) {
  for (const xbee_mode mode : {xbee_mode::api1, xbee_mode::api2}) {
    xbee_deframer d(mode);
    std::vector<bytes> frames;
    d.feed(hex("00 7E 00 02 8A"), frames);
    d.reset();
    EXPECT_FALSE(d.mid_frame());
    d.feed(hex("06 6F"), frames);  // the rest of the frame: now garbage
    d.feed(modem_api, frames);
    EXPECT_EQ(frames, std::vector<bytes>{hex("8A 06")});
    EXPECT_EQ(d.counters(), (xbee_deframer_counters{.frames_ok = 1, .bytes_skipped = 3}));
  }
}

TEST(xbee_api_deframer, max_frame_data_is_clamped_to_what_a_length_can_say) {
  EXPECT_EQ(xbee_deframer(xbee_mode::api1, 0).max_frame_data(), 1U);
  EXPECT_EQ(xbee_deframer(xbee_mode::api1, 100000).max_frame_data(), fr::xbee_max_frame_data);
  EXPECT_EQ(xbee_deframer(xbee_mode::api2).max_frame_data(), fr::xbee_default_max_frame_data);
  EXPECT_EQ(xbee_deframer(xbee_mode::api2).mode(), xbee_mode::api2);
}

// Random frames with random garbage between them (garbage free of 0x7E, so that no frame can
// start inside it) come out whole and in order, however the stream is cut.
TEST(xbee_api_deframer, random_frames_survive_random_cuts_and_garbage) {
  std::mt19937 rng(20240601);
  for (const xbee_mode mode : {xbee_mode::api1, xbee_mode::api2}) {
    for (int round = 0; round < 50; ++round) {
      std::vector<bytes> sent;
      bytes wire;
      for (int i = 0; i < 8; ++i) {
        const std::size_t garbage = rng() % 4;
        for (std::size_t g = 0; g < garbage; ++g)
          wire.push_back(static_cast<std::uint8_t>(rng() % 0x7E));
        bytes data(1 + rng() % 40);
        for (auto& b : data) b = static_cast<std::uint8_t>(rng());
        const bytes frame = fr::encode_frame(data, mode);
        wire.insert(wire.end(), frame.begin(), frame.end());
        sent.push_back(data);
      }
      xbee_deframer d(mode);
      std::vector<bytes> got;
      for (std::size_t pos = 0; pos < wire.size();) {
        const std::size_t n = std::min<std::size_t>(1 + rng() % 16, wire.size() - pos);
        d.feed(std::span(wire).subspan(pos, n), got);
        pos += n;
      }
      EXPECT_EQ(got, sent);
      EXPECT_EQ(d.counters().frames_ok, sent.size());
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Parsers

TEST(xbee_api_parse, receive_packet_without_payload_has_an_empty_payload) {
  const bytes frame = hex("90 0013A20040522BAA FFFE 02");
  const auto rx = fr::parse_receive(frame);
  ASSERT_TRUE(rx.has_value());
  EXPECT_EQ(rx->source16, 0xFFFE);
  EXPECT_EQ(rx->options, fr::xbee_rx_broadcast);
  EXPECT_TRUE(rx->payload.empty());
}

TEST(xbee_api_parse, receive_packet_too_short_or_wrong_type_is_rejected) {
  EXPECT_FALSE(fr::parse_receive(bytes{}).has_value());
  EXPECT_FALSE(fr::parse_receive(hex("90 0013A20040522BAA FFFE")).has_value());
  EXPECT_FALSE(fr::parse_receive(hex("8B 01 7D84 00 00 01")).has_value());
  EXPECT_FALSE(
      fr::parse_receive(hex("91 0013A20040522BAA 7D84 E8 E8 0011 C105")).has_value());  // 17 bytes
}

TEST(xbee_api_parse, explicit_rx_is_read_like_a_receive_packet) {
  // Spans in the result point into the frame data: keep it alive.
  const bytes frame = hex("91 0013A20040522BAA 7D84 E8 E8 0011 C105 41 02 16");
  const auto rx = fr::parse_receive(frame);
  ASSERT_TRUE(rx.has_value());
  EXPECT_EQ(rx->frame_type, fr::xbee_type::explicit_rx);
  EXPECT_EQ(rx->source64, 0x0013A20040522BAAU);
  EXPECT_EQ(rx->source16, 0x7D84);
  EXPECT_EQ(rx->source_endpoint, 0xE8);
  EXPECT_EQ(rx->destination_endpoint, 0xE8);
  EXPECT_EQ(rx->cluster_id, 0x0011);
  EXPECT_EQ(rx->profile_id, 0xC105);
  EXPECT_EQ(rx->options, fr::xbee_rx_acknowledged | fr::xbee_rx_from_end_device);
  EXPECT_EQ(bytes(rx->payload.begin(), rx->payload.end()), hex("02 16"));
}

TEST(xbee_api_parse, transmit_status_fields) {
  const auto ok = fr::parse_transmit_status(hex("8B 01 7D84 00 00 01"));
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->frame_id, 0x01);
  EXPECT_EQ(ok->destination16, 0x7D84);
  EXPECT_EQ(ok->retries, 0);
  EXPECT_EQ(ok->delivery_status, fr::xbee_delivery_success);
  EXPECT_EQ(ok->discovery_status, 0x01);

  const auto failed = fr::parse_transmit_status(hex("8B 2A FFFD 02 25 00"));
  ASSERT_TRUE(failed.has_value());
  EXPECT_EQ(failed->frame_id, 0x2A);
  EXPECT_EQ(failed->destination16, 0xFFFD);
  EXPECT_EQ(failed->retries, 2);
  EXPECT_EQ(failed->delivery_status, 0x25);
  EXPECT_STREQ(fr::describe_delivery_status(failed->delivery_status), "route not found");
}

TEST(xbee_api_parse, transmit_status_of_the_wrong_size_or_type_is_rejected) {
  EXPECT_FALSE(fr::parse_transmit_status(hex("8B 01 7D84 00 00")).has_value());
  EXPECT_FALSE(fr::parse_transmit_status(hex("8B 01 7D84 00 00 01 00")).has_value());
  EXPECT_FALSE(fr::parse_transmit_status(hex("89 01 7D84 00 00 01")).has_value());
}

TEST(xbee_api_parse, modem_status) {
  const auto started = fr::parse_modem_status(hex("8A 06"));
  ASSERT_TRUE(started.has_value());
  EXPECT_EQ(started->status, fr::xbee_modem_coordinator_started);
  EXPECT_STREQ(fr::describe_modem_status(started->status), "coordinator started");
  EXPECT_EQ(fr::parse_modem_status(hex("8A 00"))->status, fr::xbee_modem_hardware_reset);
  EXPECT_FALSE(fr::parse_modem_status(hex("8A")).has_value());
  EXPECT_FALSE(fr::parse_modem_status(hex("8A 00 00")).has_value());
  EXPECT_FALSE(fr::parse_modem_status(hex("8B 00")).has_value());
}

TEST(xbee_api_parse, at_response_with_and_without_value) {
  const bytes ap_frame = hex("88 52 41 50 00 02");
  const auto ap = fr::parse_at_response(ap_frame);
  ASSERT_TRUE(ap.has_value());
  EXPECT_EQ(ap->frame_id, 0x52);
  EXPECT_EQ(ap->command, (std::array<char, 2>{'A', 'P'}));
  EXPECT_EQ(ap->status, fr::xbee_at_ok);
  EXPECT_EQ(bytes(ap->value.begin(), ap->value.end()), hex("02"));

  const bytes sl_frame = hex("88 07 53 4C 00 40 52 2B AA");
  const auto sl = fr::parse_at_response(sl_frame);
  ASSERT_TRUE(sl.has_value());
  EXPECT_EQ(sl->command, (std::array<char, 2>{'S', 'L'}));
  EXPECT_EQ(bytes(sl->value.begin(), sl->value.end()), hex("40 52 2B AA"));

  const bytes set_frame = hex("88 01 41 50 03");
  const auto set = fr::parse_at_response(set_frame);
  ASSERT_TRUE(set.has_value());
  EXPECT_EQ(set->status, fr::xbee_at_invalid_parameter);
  EXPECT_TRUE(set->value.empty());

  EXPECT_FALSE(fr::parse_at_response(hex("88 01 41 50")).has_value());
  EXPECT_FALSE(fr::parse_at_response(hex("08 01 41 50 00")).has_value());
}

TEST(xbee_api_parse, every_status_byte_has_a_description) {
  for (unsigned s = 0; s <= 0xFF; ++s) {
    const auto status = static_cast<std::uint8_t>(s);
    EXPECT_GT(std::string(fr::describe_delivery_status(status)).size(), 0U);
    EXPECT_GT(std::string(fr::describe_modem_status(status)).size(), 0U);
  }
  EXPECT_STREQ(fr::describe_delivery_status(0x00), "success");
  EXPECT_STREQ(fr::describe_delivery_status(0x21), "network ACK failure");
  EXPECT_STREQ(fr::describe_delivery_status(0x74), "payload too large");
  EXPECT_STREQ(fr::describe_delivery_status(0x99), "unknown delivery status");
  EXPECT_STREQ(fr::describe_modem_status(0x80), "stack error");
  EXPECT_STREQ(fr::describe_modem_status(0x05), "unknown modem status");
}

// ---------------------------------------------------------------------------------------------
// Encoders

TEST(xbee_api_encode, transmit_request_to_a_client_golden_bytes) {
  // 10 | 7E | 00 13 A2 00 40 52 2B AA | 7D 84 | 11 | 40 | 02 17 (PINGRESP): 16 bytes = 0x10
  // sum: 10+7E+13+A2+40+52+2B+AA+7D+84+11+40+02+17 = 0x415 -> checksum 0xFF - 0x15 = 0xEA
  const bytes pingresp = hex("02 17");
  const fr::xbee_transmit_request request{.frame_id = 0x7E,
                                          .destination64 = 0x0013A20040522BAA,
                                          .destination16 = 0x7D84,
                                          .radius = 0x11,
                                          .options = fr::xbee_tx_extended_timeout,
                                          .payload = pingresp};
  EXPECT_EQ(to_hex(fr::encode_transmit_request(request, xbee_mode::api1)),
            "7E 00 10 10 7E 00 13 A2 00 40 52 2B AA 7D 84 11 40 02 17 EA");
  EXPECT_EQ(to_hex(fr::encode_transmit_request(request, xbee_mode::api2)),
            "7E 00 10 10 7D 5E 00 7D 33 A2 00 40 52 2B AA 7D 5D 84 7D 31 40 02 17 EA");
}

TEST(xbee_api_encode, transmit_request_defaults_to_broadcast) {
  // ADVERTISE gw 1, 900 s: 10 00 | 00..00 FF FF | FF FE | 00 | 00 | 05 00 01 03 84 (19 = 0x13)
  // sum: 10+FF+FF+FF+FE+05+01+03+84 = 0x498 -> checksum 0xFF - 0x98 = 0x67
  const bytes advertise = hex("05 00 01 03 84");
  const fr::xbee_transmit_request request{.payload = advertise};
  EXPECT_EQ(request.destination64, fr::xbee_broadcast_address64);
  EXPECT_EQ(to_hex(fr::encode_transmit_request(request, xbee_mode::api2)),
            "7E 00 7D 33 10 00 00 00 00 00 00 00 FF FF FF FE 00 00 05 00 01 03 84 67");
}

TEST(xbee_api_encode, transmit_request_appends_and_refuses_oversize_payloads) {
  const bytes largest(fr::xbee_max_frame_data - 14, 0x00);
  const bytes too_large(fr::xbee_max_frame_data - 13, 0x00);
  bytes out = hex("AA");
  EXPECT_TRUE(fr::encode_transmit_request({.payload = largest}, xbee_mode::api1, out));
  EXPECT_EQ(out.size(), 1 + 4 + fr::xbee_max_frame_data);
  EXPECT_EQ(out[0], 0xAA);  // appended after what was there
  EXPECT_EQ(out[1], 0x7E);
  EXPECT_EQ(out[2], 0xFF);
  EXPECT_EQ(out[3], 0xFF);

  bytes unchanged = hex("AA");
  EXPECT_FALSE(fr::encode_transmit_request({.payload = too_large}, xbee_mode::api1, unchanged));
  EXPECT_EQ(unchanged, hex("AA"));
  EXPECT_TRUE(fr::encode_transmit_request({.payload = too_large}, xbee_mode::api2).empty());
}

TEST(xbee_api_encode, empty_or_oversize_frame_data_is_refused) {
  EXPECT_TRUE(fr::encode_frame(bytes{}, xbee_mode::api1).empty());
  EXPECT_TRUE(fr::encode_frame(bytes(fr::xbee_max_frame_data + 1, 0), xbee_mode::api2).empty());
  EXPECT_EQ(fr::encode_frame(bytes(fr::xbee_max_frame_data, 0), xbee_mode::api1).size(),
            fr::xbee_max_frame_data + 4);
}

TEST(xbee_api_encode, at_command_query_and_set) {
  // Query AP, frame 0x52: 08+52+41+50 = 0xEB -> 0x14.
  EXPECT_EQ(to_hex(fr::encode_at_command({.frame_id = 0x52, .command = {'A', 'P'}, .parameter = {}},
                                         xbee_mode::api1)),
            "7E 00 04 08 52 41 50 14");
  // Set AP=2, frame 1: 08+01+41+50+02 = 0x9C -> 0x63.
  const bytes two = hex("02");
  EXPECT_EQ(to_hex(fr::encode_at_command(
                {.frame_id = 0x01, .command = {'A', 'P'}, .parameter = two}, xbee_mode::api2)),
            "7E 00 05 08 01 41 50 02 63");
  // Query SH with frame 0x13: the frame id itself is escaped in API mode 2.
  EXPECT_EQ(to_hex(fr::encode_at_command({.frame_id = 0x13, .command = {'S', 'H'}, .parameter = {}},
                                         xbee_mode::api2)),
            "7E 00 04 08 7D 33 53 48 49");
  const bytes too_long(fr::xbee_max_frame_data - 3, 0x00);
  bytes out;
  EXPECT_FALSE(
      fr::encode_at_command({.command = {'N', 'I'}, .parameter = too_long}, xbee_mode::api1, out));
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(fr::encode_at_command({.command = {'N', 'I'}, .parameter = too_long}, xbee_mode::api1)
                  .empty());
}

TEST(xbee_api_encode, encoded_frames_deframe_back_to_their_frame_data) {
  const bytes payload = hex("7E 7D 11 13 00 FF");
  const fr::xbee_transmit_request request{
      .frame_id = 0x11, .destination64 = 0x0013A200407E7D11, .payload = payload};
  for (const xbee_mode mode : {xbee_mode::api1, xbee_mode::api2}) {
    const auto frames = deframe(mode, fr::encode_transmit_request(request, mode));
    ASSERT_EQ(frames.size(), 1U);
    EXPECT_EQ(to_hex(frames[0]), "10 11 00 13 A2 00 40 7E 7D 11 FF FE 00 00 7E 7D 11 13 00 FF");
  }
}

// ---------------------------------------------------------------------------------------------
// Addresses

TEST(xbee_api_address, formats_as_sixteen_upper_case_hex_digits) {
  EXPECT_EQ(fr::format_address64(0x0013A20040522BAA), "0013A20040522BAA");
  EXPECT_EQ(fr::format_address64(fr::xbee_broadcast_address64), "000000000000FFFF");
  EXPECT_EQ(fr::format_address64(0), "0000000000000000");
  EXPECT_EQ(fr::format_address64(0xFFFFFFFFFFFFFFFF), "FFFFFFFFFFFFFFFF");
}

TEST(xbee_api_address, parses_back_in_either_case) {
  EXPECT_EQ(fr::parse_address64("0013A20040522BAA"), 0x0013A20040522BAAU);
  EXPECT_EQ(fr::parse_address64("0013a20040522baa"), 0x0013A20040522BAAU);
  EXPECT_EQ(fr::parse_address64("FFFFFFFFFFFFFFFF"), 0xFFFFFFFFFFFFFFFFU);
  for (const std::uint64_t a : {0x0ULL, 0x0123456789ABCDEFULL, 0xFEDCBA9876543210ULL}) {
    EXPECT_EQ(fr::parse_address64(fr::format_address64(a)), a);
  }
}

TEST(xbee_api_address, rejects_anything_but_sixteen_hex_digits) {
  EXPECT_FALSE(fr::parse_address64("").has_value());
  EXPECT_FALSE(fr::parse_address64("0013A20040522BA").has_value());
  EXPECT_FALSE(fr::parse_address64("0013A20040522BAA0").has_value());
  EXPECT_FALSE(fr::parse_address64("0013A20040522BAG").has_value());
  EXPECT_FALSE(fr::parse_address64("0x13A20040522BAA").has_value());
  EXPECT_FALSE(fr::parse_address64("0013A200 40522BA").has_value());
  EXPECT_FALSE(fr::parse_address64("0013A200:0522BAA").has_value());
}

// ---------------------------------------------------------------------------------------------
// Start-up diagnostic

TEST(xbee_api_diagnostic, raw_mqttsn_on_an_api_line_is_recognised) {
  EXPECT_TRUE(fr::looks_like_raw_mqttsn(hex("02 16")));                    // PINGREQ
  EXPECT_TRUE(fr::looks_like_raw_mqttsn(hex("03 01 00 05 00 01 03 84")));  // SEARCHGW, ADVERTISE
  EXPECT_TRUE(fr::looks_like_raw_mqttsn(hex("01 00 04 16")));              // long form
  EXPECT_TRUE(fr::looks_like_raw_mqttsn(hex("03 FE 01 02 16")));           // encapsulated
}

TEST(xbee_api_diagnostic, api_frames_garbage_and_unknown_types_are_not_raw_mqttsn) {
  EXPECT_FALSE(fr::looks_like_raw_mqttsn(bytes{}));
  EXPECT_FALSE(fr::looks_like_raw_mqttsn(pingreq_api1));
  EXPECT_FALSE(fr::looks_like_raw_mqttsn(pingreq_api2));
  EXPECT_FALSE(fr::looks_like_raw_mqttsn(hex("00 02 16")));     // a byte skipped
  EXPECT_FALSE(fr::looks_like_raw_mqttsn(hex("02 16 05 0C")));  // ends mid-frame
  EXPECT_FALSE(fr::looks_like_raw_mqttsn(hex("02 03")));        // MsgType 0x03 is reserved
  EXPECT_FALSE(fr::looks_like_raw_mqttsn(hex("01 00 04 11")));  // reserved, long form
  // A frame that is valid API and valid raw at once counts as API.
  EXPECT_FALSE(fr::looks_like_raw_mqttsn(concat({hex("02 16"), modem_api})));
}

}  // namespace
