// MQTT 3.1.1 codec: the byte vectors of the OASIS standard (Remaining Length table §2.2.3, the
// CONNECT variable header of Figure 3.6, the PUBLISH, SUBSCRIBE, SUBACK and UNSUBSCRIBE examples
// of chapter 3), both ways, every decode_error, and robustness against truncated and mutated bytes.
#include "mqttsn/mqtt_codec.hpp"

#include <cstdint>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "hex.hpp"

namespace {

namespace m = mqttsn::mqtt311;
using test_hex::hex;
using test_hex::to_hex;

m::packet decoded(const m::bytes& b) {
  auto r = m::decode(b);
  EXPECT_TRUE(std::holds_alternative<m::packet>(r))
      << to_hex(b) << ": "
      << (std::holds_alternative<m::decode_error>(r) ? m::to_string(std::get<m::decode_error>(r))
                                                     : "");
  return std::holds_alternative<m::packet>(r) ? std::get<m::packet>(r) : m::packet{};
}

m::decode_error error_of(const m::bytes& b) {
  auto r = m::decode(b);
  EXPECT_TRUE(std::holds_alternative<m::decode_error>(r)) << to_hex(b);
  return std::holds_alternative<m::decode_error>(r) ? std::get<m::decode_error>(r)
                                                    : m::decode_error::truncated;
}

// Encodes `p`, checks the bytes, and decodes them back to `p`.
void round_trip(const m::packet& p, const std::string& expected_hex) {
  const auto b = m::encode(p);
  EXPECT_EQ(to_hex(b), to_hex(hex(expected_hex)));
  EXPECT_EQ(decoded(b), p);
}

TEST(MqttCodec, remaining_length_matches_the_table_of_section_2_2_3) {
  const std::vector<std::pair<std::size_t, std::string>> table = {{0, "00"},
                                                                  {127, "7F"},
                                                                  {128, "80 01"},
                                                                  {16'383, "FF 7F"},
                                                                  {16'384, "80 80 01"},
                                                                  {2'097'151, "FF FF 7F"},
                                                                  {2'097'152, "80 80 80 01"},
                                                                  {268'435'455, "FF FF FF 7F"}};
  for (const auto& [n, text] : table) {
    m::bytes out;
    m::append_remaining_length(out, n);
    EXPECT_EQ(to_hex(out), to_hex(hex(text))) << n;
    m::bytes stream{0x30};
    stream.insert(stream.end(), out.begin(), out.end());
    auto peeked = m::peek_frame(stream);
    ASSERT_TRUE(std::holds_alternative<std::optional<m::frame_info>>(peeked));
    const auto& info = std::get<std::optional<m::frame_info>>(peeked);
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(info->remaining, n);
    EXPECT_EQ(info->header_size, 1 + out.size());
  }
}

TEST(MqttCodec, peek_frame_waits_for_the_header_and_rejects_a_fifth_length_byte) {
  EXPECT_FALSE(std::get<std::optional<m::frame_info>>(m::peek_frame(hex(""))).has_value());
  EXPECT_FALSE(std::get<std::optional<m::frame_info>>(m::peek_frame(hex("30"))).has_value());
  EXPECT_FALSE(std::get<std::optional<m::frame_info>>(m::peek_frame(hex("30 80 80"))).has_value());
  EXPECT_EQ(std::get<m::decode_error>(m::peek_frame(hex("30 80 80 80 80 01"))),
            m::decode_error::bad_remaining_length);
  EXPECT_EQ(error_of(hex("30 FF FF FF FF 7F")), m::decode_error::bad_remaining_length);
}

TEST(MqttCodec, connect_with_will_user_and_password_has_the_variable_header_of_figure_3_6) {
  // Figure 3.6: protocol "MQTT", level 4, flags CE (user, password, will QoS 1, will, clean
  // session), keep-alive 10. Will retain off as in the figure.
  m::connect_packet c;
  c.client_id = "gw";
  c.clean_session = true;
  c.keep_alive = 10;
  c.will = m::will_message{"s", {'o', 'f', 'f'}, 1, false};
  c.username = "u";
  c.password = m::bytes{'p', 'w'};
  round_trip(c,
             "10 1D 00 04 4D 51 54 54 04 CE 00 0A"
             " 00 02 67 77  00 01 73  00 03 6F 66 66  00 01 75  00 02 70 77");
}

TEST(MqttCodec, connect_of_the_shared_connection_keeps_its_session_and_a_retained_will) {
  m::connect_packet c;
  c.client_id = "a";
  c.clean_session = false;
  c.keep_alive = 60;
  c.will = m::will_message{"t", {'x'}, 1, true};
  round_trip(c, "10 13 00 04 4D 51 54 54 04 2C 00 3C 00 01 61 00 01 74 00 01 78");
  m::connect_packet plain;
  plain.client_id = "";
  round_trip(plain, "10 0C 00 04 4D 51 54 54 04 02 00 00 00 00");
}

TEST(MqttCodec, connack_session_present_and_return_code) {
  round_trip(m::connack_packet{false, 0}, "20 02 00 00");
  round_trip(m::connack_packet{true, 0}, "20 02 01 00");
  round_trip(m::connack_packet{false, 5}, "20 02 00 05");
  EXPECT_EQ(error_of(hex("20 02 02 00")), m::decode_error::bad_flags);
  EXPECT_EQ(error_of(hex("20 01 00")), m::decode_error::too_short);
  EXPECT_EQ(error_of(hex("20 03 00 00 00")), m::decode_error::too_long);
}

TEST(MqttCodec, publish_variable_header_of_table_3_3) {
  // Topic "a/b", packet identifier 10 (§3.3.2.3, Table 3.3), QoS 1, payload "hi".
  m::publish_packet p{"a/b", {'h', 'i'}, 1, false, false, 10};
  round_trip(p, "32 09 00 03 61 2F 62 00 0A 68 69");
  round_trip(m::publish_packet{"a/b", {}, 0, true, false, 0}, "31 05 00 03 61 2F 62");
  round_trip(m::publish_packet{"a/b", {'x'}, 2, false, true, 65535},
             "3C 08 00 03 61 2F 62 FF FF 78");
  m::bytes out;
  const m::bytes payload{'h', 'i'};
  m::append_publish(out, "a/b", payload, 1, false, false, 10);
  EXPECT_EQ(to_hex(out), to_hex(hex("32 09 00 03 61 2F 62 00 0A 68 69")));
}

TEST(MqttCodec, publish_errors) {
  EXPECT_EQ(error_of(hex("36 07 00 03 61 2F 62 00 0A")), m::decode_error::bad_qos);
  EXPECT_EQ(error_of(hex("38 05 00 03 61 2F 62")), m::decode_error::bad_flags);  // DUP on QoS 0
  EXPECT_EQ(error_of(hex("32 07 00 03 61 2F 62 00 00")), m::decode_error::bad_packet_id);
  EXPECT_EQ(error_of(hex("32 06 00 03 61 2F 62 00")), m::decode_error::too_short);
  EXPECT_EQ(error_of(hex("30 04 00 03 61 2F")), m::decode_error::too_short);
  EXPECT_EQ(error_of(hex("30 05 00 03 61 00 62")), m::decode_error::bad_utf8);
  EXPECT_EQ(error_of(hex("30 05 00 03 61 C0 AF")), m::decode_error::bad_utf8);  // overlong '/'
  EXPECT_EQ(error_of(hex("30 05 00 03 61 2F 62 00")), m::decode_error::too_long);
  EXPECT_EQ(error_of(hex("30 05 00 03 61 2F")), m::decode_error::truncated);
  // Multi-byte UTF-8 topics are fine ("é").
  EXPECT_EQ(decoded(hex("30 04 00 02 C3 A9")),
            m::packet(m::publish_packet{"\xC3\xA9", {}, 0, false, false, 0}));
}

TEST(MqttCodec, acknowledgements_carry_the_packet_id_and_pubrel_has_flags_0010) {
  round_trip(m::puback_packet{10}, "40 02 00 0A");
  round_trip(m::pubrec_packet{10}, "50 02 00 0A");
  round_trip(m::pubrel_packet{10}, "62 02 00 0A");
  round_trip(m::pubcomp_packet{10}, "70 02 00 0A");
  round_trip(m::unsuback_packet{10}, "B0 02 00 0A");
  EXPECT_EQ(error_of(hex("60 02 00 0A")), m::decode_error::bad_flags);
  EXPECT_EQ(error_of(hex("42 02 00 0A")), m::decode_error::bad_flags);
  EXPECT_EQ(error_of(hex("40 02 00 00")), m::decode_error::bad_packet_id);
  EXPECT_EQ(error_of(hex("40 01 00")), m::decode_error::too_short);
  EXPECT_EQ(error_of(hex("40 03 00 0A 00")), m::decode_error::too_long);
}

TEST(MqttCodec, subscribe_suback_unsubscribe_examples_of_chapter_3) {
  // §3.8.3: "a/b" QoS 1 and "c/d" QoS 2, packet identifier 10.
  round_trip(m::subscribe_packet{10, {{"a/b", 1}, {"c/d", 2}}},
             "82 0E 00 0A 00 03 61 2F 62 01 00 03 63 2F 64 02");
  // §3.9.3: success QoS 0, success QoS 2, failure.
  round_trip(m::suback_packet{10, {0x00, 0x02, 0x80}}, "90 05 00 0A 00 02 80");
  // §3.10.3: "a/b" and "c/d".
  round_trip(m::unsubscribe_packet{10, {"a/b", "c/d"}},
             "A2 0C 00 0A 00 03 61 2F 62 00 03 63 2F 64");
  EXPECT_EQ(error_of(hex("80 08 00 0A 00 03 61 2F 62 01")), m::decode_error::bad_flags);
  EXPECT_EQ(error_of(hex("82 02 00 0A")), m::decode_error::empty_list);
  EXPECT_EQ(error_of(hex("82 08 00 0A 00 03 61 2F 62 03")), m::decode_error::bad_qos);
  EXPECT_EQ(error_of(hex("82 07 00 0A 00 03 61 2F 62")), m::decode_error::too_short);
  EXPECT_EQ(error_of(hex("90 03 00 0A 03")), m::decode_error::bad_qos);
  EXPECT_EQ(error_of(hex("90 02 00 0A")), m::decode_error::empty_list);
  EXPECT_EQ(error_of(hex("A2 02 00 0A")), m::decode_error::empty_list);
}

TEST(MqttCodec, packets_without_a_body) {
  round_trip(m::pingreq_packet{}, "C0 00");
  round_trip(m::pingresp_packet{}, "D0 00");
  round_trip(m::disconnect_packet{}, "E0 00");
  EXPECT_EQ(error_of(hex("C0 01 00")), m::decode_error::too_long);
  EXPECT_EQ(error_of(hex("C1 00")), m::decode_error::bad_flags);
  EXPECT_EQ(error_of(hex("00 00")), m::decode_error::reserved_type);
  EXPECT_EQ(error_of(hex("F0 00")), m::decode_error::reserved_type);
}

TEST(MqttCodec, connect_errors) {
  EXPECT_EQ(error_of(hex("10 0C 00 04 4D 51 49 73 04 02 00 00 00 00")),
            m::decode_error::bad_protocol);
  EXPECT_EQ(error_of(hex("10 0C 00 04 4D 51 54 54 03 02 00 00 00 00")),
            m::decode_error::bad_protocol);
  EXPECT_EQ(error_of(hex("10 0C 00 04 4D 51 54 54 04 03 00 00 00 00")),
            m::decode_error::bad_connect_flags);
  EXPECT_EQ(error_of(hex("10 0C 00 04 4D 51 54 54 04 42 00 00 00 00")),
            m::decode_error::bad_connect_flags);
  EXPECT_EQ(error_of(hex("10 0C 00 04 4D 51 54 54 04 22 00 00 00 00")),
            m::decode_error::bad_connect_flags);
  EXPECT_EQ(error_of(hex("10 0C 00 04 4D 51 54 54 04 1E 00 00 00 00")), m::decode_error::bad_qos);
  EXPECT_EQ(error_of(hex("10 0C 00 04 4D 51 54 54 04 06 00 00 00 00")), m::decode_error::too_short);
  EXPECT_EQ(error_of(hex("10 0D 00 04 4D 51 54 54 04 02 00 00 00 00 00")),
            m::decode_error::too_long);
}

TEST(MqttCodec, truncated_and_mutated_packets_never_crash) {
  const std::vector<m::packet> samples = {
      m::connect_packet{"id", false, 30, m::will_message{"w", {1, 2}, 2, true}, "user",
                        m::bytes{9}},
      m::publish_packet{"a/b/c", m::bytes(300, 7), 2, true, true, 77},
      m::subscribe_packet{3, {{"a/#", 1}, {"+/b", 0}}},
      m::suback_packet{3, {1, 0x80}},
      m::unsubscribe_packet{4, {"x"}},
  };
  std::mt19937 rng(1234);
  for (const auto& p : samples) {
    const auto b = m::encode(p);
    for (std::size_t n = 0; n < b.size(); ++n) {
      EXPECT_EQ(error_of(m::bytes(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n))),
                m::decode_error::truncated)
          << n;
    }
    for (int i = 0; i < 2000; ++i) {
      auto copy = b;
      copy[rng() % copy.size()] = static_cast<std::uint8_t>(rng());
      auto r = m::decode(copy);  // any result, but no crash and no read outside `copy` (ASan)
      if (auto* ok = std::get_if<m::packet>(&r)) {
        EXPECT_FALSE(m::encode(*ok).empty());
      }
    }
  }
}

}  // namespace
