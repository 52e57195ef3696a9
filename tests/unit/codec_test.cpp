// MQTT-SN v1.2 codec: the byte vectors of PROTOCOL.md §2 both ways, every decode_error, the Length
// boundaries, big-endian fields, and robustness against truncated and mutated frames.
#include "hex.hpp"
#include "mqttsn/codec.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "mqttsn/message.hpp"

namespace {

using test_hex::hex;
using test_hex::to_hex;

using mqttsn::bytes;
using mqttsn::decode_error;
using mqttsn::message;
using mqttsn::qos;
using mqttsn::return_code;
using mqttsn::topic_id_type;



bytes concat(bytes head, const bytes& tail) {
  head.insert(head.end(), tail.begin(), tail.end());
  return head;
}

// A recognisable payload of `n` bytes.
bytes payload(std::size_t n) {
  bytes out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::uint8_t>(i * 7 + 1);
  return out;
}

bytes text_bytes(std::string_view text) { return {text.begin(), text.end()}; }

// Decoding `frame` must succeed; returns the message (or a default one after a reported failure).
message decoded(const bytes& frame) {
  const auto result = mqttsn::decode(frame);
  if (const auto* error = std::get_if<decode_error>(&result)) {
    ADD_FAILURE() << "decode(" << to_hex(frame) << ") failed: " << mqttsn::to_string(*error);
    return mqttsn::pingresp{};
  }
  return std::get<message>(result);
}

// The error decoding `frame` yields, or nullopt-like failure when it decodes.
decode_error error_of(const bytes& frame) {
  const auto result = mqttsn::decode(frame);
  if (const auto* error = std::get_if<decode_error>(&result)) return *error;
  ADD_FAILURE() << "decode(" << to_hex(frame) << ") unexpectedly succeeded as "
                << mqttsn::name_of(mqttsn::type_of(std::get<message>(result)));
  return decode_error::empty;
}

bool is_error(const bytes& frame) {
  return std::holds_alternative<decode_error>(mqttsn::decode(frame));
}

mqttsn::publish make_publish(qos q, topic_id_type type, mqttsn::topic_id id, mqttsn::msg_id mid,
                             bytes data, bool dup = false, bool retain = false) {
  mqttsn::publish p;
  p.dup = dup;
  p.q = q;
  p.retain = retain;
  p.id_type = type;
  p.id = id;
  p.mid = mid;
  p.data = std::move(data);
  return p;
}

mqttsn::subscribe subscribe_name(qos q, mqttsn::msg_id mid, std::string name) {
  mqttsn::subscribe s;
  s.q = q;
  s.id_type = topic_id_type::normal;
  s.mid = mid;
  s.topic_name = std::move(name);
  return s;
}

mqttsn::subscribe subscribe_id(qos q, topic_id_type type, mqttsn::msg_id mid, mqttsn::topic_id id) {
  mqttsn::subscribe s;
  s.q = q;
  s.id_type = type;
  s.mid = mid;
  s.id = id;
  return s;
}

mqttsn::unsubscribe unsubscribe_name(mqttsn::msg_id mid, std::string name) {
  mqttsn::unsubscribe u;
  u.mid = mid;
  u.topic_name = std::move(name);
  return u;
}

// ---------------------------------------------------------------------------------------------
// PROTOCOL.md §2: every vector decodes to its value and encodes back to exactly its bytes.

struct vector_case {
  std::string name;
  bytes frame;
  message value;
};

std::vector<vector_case> protocol_vectors() {
  return {
      // §2.1 discovery
      {"advertise_gw1_every_900s", hex("05 00 01 03 84"), mqttsn::advertise{1, 900}},
      {"searchgw_radius_1", hex("03 01 01"), mqttsn::searchgw{1}},
      {"searchgw_whole_network", hex("03 01 00"), mqttsn::searchgw{0}},
      {"gwinfo_from_gateway", hex("03 02 01"), mqttsn::gwinfo{1, {}}},
      {"gwinfo_from_client_with_address", hex("05 02 01 12 34"), mqttsn::gwinfo{1, {0x12, 0x34}}},
      // §2.2 connection and will
      {"connect_clean_session", hex("09 04 04 01 00 3C 61 62 63"),
       mqttsn::connect{false, true, 60, "abc"}},
      {"connect_with_will", hex("09 04 0C 01 00 3C 61 62 63"),
       mqttsn::connect{true, true, 60, "abc"}},
      {"connack_accepted", hex("03 05 00"), mqttsn::connack{return_code::accepted}},
      {"connack_congestion", hex("03 05 01"), mqttsn::connack{return_code::congestion}},
      {"connack_not_supported", hex("03 05 03"), mqttsn::connack{return_code::not_supported}},
      {"willtopicreq", hex("02 06"), mqttsn::willtopicreq{}},
      {"willtopic_qos1", hex("0B 07 20 77 69 6C 6C 2F 61 62 63"),
       mqttsn::willtopic{qos::at_least_once, false, "will/abc"}},
      {"willtopic_empty", hex("02 07"), mqttsn::willtopic{}},
      {"willmsgreq", hex("02 08"), mqttsn::willmsgreq{}},
      {"willmsg_bye", hex("05 09 62 79 65"), mqttsn::willmsg{text_bytes("bye")}},
      {"willtopicupd_retain", hex("0B 1A 10 77 69 6C 6C 2F 61 62 63"),
       mqttsn::willtopicupd{qos::at_most_once, true, "will/abc"}},
      {"willtopicupd_empty", hex("02 1A"), mqttsn::willtopicupd{}},
      {"willtopicresp_accepted", hex("03 1B 00"), mqttsn::willtopicresp{return_code::accepted}},
      {"willmsgupd_bye2", hex("06 1C 62 79 65 32"), mqttsn::willmsgupd{text_bytes("bye2")}},
      {"willmsgresp_accepted", hex("03 1D 00"), mqttsn::willmsgresp{return_code::accepted}},
      {"pingreq", hex("02 16"), mqttsn::pingreq{}},
      {"pingreq_with_client_id", hex("05 16 61 62 63"), mqttsn::pingreq{"abc"}},
      {"pingresp", hex("02 17"), mqttsn::pingresp{}},
      {"disconnect", hex("02 18"), mqttsn::disconnect{}},
      {"disconnect_sleep_300s", hex("04 18 01 2C"), mqttsn::disconnect{300}},
      // §2.3 topics and publishing
      {"register_from_client", hex("09 0A 00 00 00 01 61 2F 62"), mqttsn::register_{0, 1, "a/b"}},
      {"register_from_gateway", hex("09 0A 00 05 00 10 61 2F 62"),
       mqttsn::register_{5, 0x10, "a/b"}},
      {"regack_accepted", hex("07 0B 00 01 00 01 00"), mqttsn::regack{1, 1, return_code::accepted}},
      {"publish_qos0", hex("09 0C 00 00 01 00 00 68 69"),
       make_publish(qos::at_most_once, topic_id_type::normal, 1, 0, text_bytes("hi"))},
      {"publish_qos1_retain", hex("09 0C 30 00 01 00 02 68 69"),
       make_publish(qos::at_least_once, topic_id_type::normal, 1, 2, text_bytes("hi"), false,
                    true)},
      {"publish_qos2_dup", hex("09 0C C0 00 01 00 03 68 69"),
       make_publish(qos::exactly_once, topic_id_type::normal, 1, 3, text_bytes("hi"), true)},
      {"publish_qos_minus_one_predefined", hex("09 0C 61 00 10 00 00 68 69"),
       make_publish(qos::minus_one, topic_id_type::predefined, 0x10, 0, text_bytes("hi"))},
      {"publish_qos_minus_one_short_name", hex("09 0C 62 61 62 00 00 68 69"),
       make_publish(qos::minus_one, topic_id_type::short_name, mqttsn::short_topic_id('a', 'b'), 0,
                    text_bytes("hi"))},
      {"puback_accepted", hex("07 0D 00 01 00 02 00"), mqttsn::puback{1, 2, return_code::accepted}},
      {"puback_invalid_topic_id", hex("07 0D 00 07 00 02 02"),
       mqttsn::puback{7, 2, return_code::invalid_topic_id}},
      {"pubrec", hex("04 0F 00 03"), mqttsn::pubrec{3}},
      {"pubrel", hex("04 10 00 03"), mqttsn::pubrel{3}},
      {"pubcomp", hex("04 0E 00 03"), mqttsn::pubcomp{3}},
      // §2.4 subscriptions
      {"subscribe_name_with_wildcard", hex("08 12 20 00 04 61 2F 23"),
       subscribe_name(qos::at_least_once, 4, "a/#")},
      {"subscribe_predefined", hex("07 12 01 00 05 00 10"),
       subscribe_id(qos::at_most_once, topic_id_type::predefined, 5, 0x10)},
      {"subscribe_short_name", hex("07 12 02 00 06 61 62"),
       subscribe_id(qos::at_most_once, topic_id_type::short_name, 6,
                    mqttsn::short_topic_id('a', 'b'))},
      {"suback_wildcard", hex("08 13 20 00 00 00 04 00"),
       mqttsn::suback{qos::at_least_once, 0, 4, return_code::accepted}},
      {"suback_plain_name", hex("08 13 20 00 01 00 04 00"),
       mqttsn::suback{qos::at_least_once, 1, 4, return_code::accepted}},
      {"unsubscribe_name", hex("08 14 00 00 07 61 2F 23"), unsubscribe_name(7, "a/#")},
      {"unsuback", hex("04 15 00 07"), mqttsn::unsuback{7}},
      // §2.5 framing and encapsulation
      {"publish_long_form_309_bytes", concat(hex("01 01 35 0C 00 00 01 00 00"), payload(300)),
       make_publish(qos::at_most_once, topic_id_type::normal, 1, 0, payload(300))},
      {"publish_total_255_short_form", concat(hex("FF 0C 00 00 01 00 00"), payload(248)),
       make_publish(qos::at_most_once, topic_id_type::normal, 1, 0, payload(248))},
      {"encapsulated_forwarder_to_gateway", hex("05 FE 00 0A 0B 02 16"),
       mqttsn::encapsulated{0, {0x0A, 0x0B}, hex("02 16")}},
      {"encapsulated_gateway_to_forwarder", hex("05 FE 01 0A 0B 02 17"),
       mqttsn::encapsulated{1, {0x0A, 0x0B}, hex("02 17")}},
      // Paho's QoS -1 long-topic extension is plain PUBLISH on the wire: TopicId = topic length,
      // Data = topic + payload. The codec does not interpret it (PROTOCOL.md §6 item 3).
      {"publish_paho_qos_minus_one_long_topic", hex("0C 0C 60 00 03 00 00 61 2F 62 68 69"),
       make_publish(qos::minus_one, topic_id_type::normal, 3, 0, text_bytes("a/bhi"))},
  };
}

class codec_vector : public testing::TestWithParam<vector_case> {};

TEST_P(codec_vector, decodes_to_the_documented_value) {
  const vector_case& c = GetParam();
  const message m = decoded(c.frame);
  EXPECT_EQ(m, c.value) << "re-encoded as " << to_hex(mqttsn::encode(m));
}

TEST_P(codec_vector, encodes_back_to_the_exact_bytes) {
  const vector_case& c = GetParam();
  EXPECT_EQ(to_hex(mqttsn::encode(c.value)), to_hex(c.frame));
  EXPECT_EQ(mqttsn::encoded_size(c.value), c.frame.size());
}

TEST_P(codec_vector, type_of_matches_the_msgtype_byte) {
  const vector_case& c = GetParam();
  const std::size_t type_offset = c.frame[0] == 0x01 ? 3 : 1;
  EXPECT_EQ(static_cast<std::uint8_t>(mqttsn::type_of(c.value)), c.frame[type_offset]);
}

TEST_P(codec_vector, every_truncation_is_an_error) {
  const vector_case& c = GetParam();
  const bool encapsulation = std::holds_alternative<mqttsn::encapsulated>(c.value);
  for (std::size_t n = 0; n < c.frame.size(); ++n) {
    const bytes cut(c.frame.begin(), c.frame.begin() + static_cast<std::ptrdiff_t>(n));
    const auto result = mqttsn::decode(cut);
    if (encapsulation && std::holds_alternative<message>(result)) {
      // The outer Length covers only the forwarder header, so a cut inside the inner frame is
      // caught when the gateway decodes that inner frame.
      const auto& inner = std::get<mqttsn::encapsulated>(std::get<message>(result)).frame;
      EXPECT_TRUE(is_error(inner)) << "inner frame of " << to_hex(cut);
      continue;
    }
    EXPECT_TRUE(std::holds_alternative<decode_error>(result)) << "prefix of " << n << " bytes";
  }
}

// Changing any one byte either gives an error or a message that survives encode -> decode.
TEST_P(codec_vector, every_single_byte_mutation_is_an_error_or_round_trips) {
  const vector_case& c = GetParam();
  const std::array<std::uint8_t, 10> replacements = {0x00, 0x01, 0x02, 0x03, 0x20,
                                                     0x60, 0x7F, 0x80, 0xFE, 0xFF};
  const std::size_t positions = std::min<std::size_t>(c.frame.size(), 16);
  for (std::size_t i = 0; i < positions; ++i) {
    for (const std::uint8_t r : replacements) {
      bytes mutated = c.frame;
      mutated[i] = r;
      const auto first = mqttsn::decode(mutated);
      if (std::holds_alternative<decode_error>(first)) continue;
      const bytes again = mqttsn::encode(std::get<message>(first));
      ASSERT_FALSE(again.empty()) << to_hex(mutated);
      const auto second = mqttsn::decode(again);
      ASSERT_TRUE(std::holds_alternative<message>(second))
          << to_hex(mutated) << " -> " << to_hex(again);
      EXPECT_EQ(std::get<message>(second), std::get<message>(first)) << to_hex(mutated);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(codec, codec_vector, testing::ValuesIn(protocol_vectors()),
                         [](const testing::TestParamInfo<vector_case>& param_info) {
                           return param_info.param.name;
                         });

TEST(codec_vectors, cover_every_message_type) {
  std::set<std::size_t> seen;
  for (const auto& c : protocol_vectors()) seen.insert(c.value.index());
  EXPECT_EQ(seen.size(), std::variant_size_v<message>);
}

// ---------------------------------------------------------------------------------------------
// Lenient forms: accepted on decode, re-encoded in the canonical form.

TEST(codec_lenient, paho_empty_willtopic_with_flags_byte_decodes_as_empty) {
  EXPECT_EQ(decoded(hex("03 07 00")), message{mqttsn::willtopic{}});
  EXPECT_EQ(to_hex(mqttsn::encode(mqttsn::willtopic{})), "02 07");
}

TEST(codec_lenient, paho_empty_willtopicupd_with_flags_byte_decodes_as_empty) {
  EXPECT_EQ(decoded(hex("03 1A 00")), message{mqttsn::willtopicupd{}});
  EXPECT_EQ(to_hex(mqttsn::encode(mqttsn::willtopicupd{})), "02 1A");
}

TEST(codec_lenient, empty_will_topic_ignores_qos_and_retain_flags) {
  EXPECT_EQ(decoded(hex("03 07 30")), message{mqttsn::willtopic{}});
  EXPECT_EQ(decoded(hex("03 1A 50")), message{mqttsn::willtopicupd{}});
}

TEST(codec_lenient, empty_will_topic_encodes_the_two_byte_form_whatever_its_flags) {
  EXPECT_EQ(to_hex(mqttsn::encode(mqttsn::willtopic{qos::exactly_once, true, ""})), "02 07");
  EXPECT_EQ(to_hex(mqttsn::encode(mqttsn::willtopicupd{qos::at_least_once, true, ""})), "02 1A");
}

TEST(codec_lenient, paho_long_form_declaring_255_for_a_257_byte_frame_decodes_with_the_real_size) {
  const bytes paho = concat(hex("01 00 FF 0C 00 00 01 00 00"), payload(248));
  ASSERT_EQ(paho.size(), 257U);
  const message expected =
      make_publish(qos::at_most_once, topic_id_type::normal, 1, 0, payload(248));
  EXPECT_EQ(decoded(paho), expected);
  const bytes canonical = mqttsn::encode(expected);
  ASSERT_EQ(canonical.size(), 255U);
  EXPECT_EQ(canonical[0], 0xFF);
}

TEST(codec_lenient, off_by_two_is_only_tolerated_at_the_255_boundary) {
  // Declared 254 on a 256-byte frame, declared 255 on 256 or 258 bytes, short form 0xFF on 257.
  EXPECT_EQ(error_of(concat(hex("01 00 FE 0C 00 00 01 00 00"), payload(247))),
            decode_error::length_mismatch);
  EXPECT_EQ(error_of(concat(hex("01 00 FF 0C 00 00 01 00 00"), payload(247))),
            decode_error::length_mismatch);
  EXPECT_EQ(error_of(concat(hex("01 00 FF 0C 00 00 01 00 00"), payload(249))),
            decode_error::length_mismatch);
  EXPECT_EQ(error_of(concat(hex("FF 0C 00 00 01 00 00"), payload(250))),
            decode_error::length_mismatch);
}

TEST(codec_lenient, long_length_form_is_accepted_below_256) {
  EXPECT_EQ(decoded(hex("01 00 04 18")), message{mqttsn::disconnect{}});
  EXPECT_EQ(decoded(hex("01 00 06 0F 00 03")), message{mqttsn::pubrec{3}});
  EXPECT_EQ(decoded(hex("01 00 0B 04 04 01 00 3C 61 62 63")),
            (message{mqttsn::connect{false, true, 60, "abc"}}));
}

// ---------------------------------------------------------------------------------------------
// Per-message behaviour.

TEST(codec_messages, pubcomp_type_is_0x0e_before_pubrec) {
  EXPECT_EQ(mqttsn::encode(mqttsn::pubcomp{3})[1], 0x0E);
  EXPECT_EQ(mqttsn::encode(mqttsn::pubrec{3})[1], 0x0F);
  EXPECT_EQ(mqttsn::encode(mqttsn::pubrel{3})[1], 0x10);
  EXPECT_EQ(decoded(hex("04 0E 00 03")), message{mqttsn::pubcomp{3}});
  EXPECT_EQ(decoded(hex("04 0F 00 03")), message{mqttsn::pubrec{3}});
}

TEST(codec_messages, suback_puts_topic_id_before_msg_id) {
  EXPECT_EQ(to_hex(mqttsn::encode(
                mqttsn::suback{qos::exactly_once, 0x1234, 0x5678, return_code::accepted})),
            "08 13 40 12 34 56 78 00");
}

TEST(codec_messages, regack_and_puback_put_topic_id_before_msg_id) {
  EXPECT_EQ(to_hex(mqttsn::encode(mqttsn::regack{0x1234, 0x5678, return_code::congestion})),
            "07 0B 12 34 56 78 01");
  EXPECT_EQ(to_hex(mqttsn::encode(mqttsn::puback{0x1234, 0x5678, return_code::not_supported})),
            "07 0D 12 34 56 78 03");
}

TEST(codec_messages, disconnect_with_zero_duration_keeps_the_duration) {
  const message m = decoded(hex("04 18 00 00"));
  const auto& d = std::get<mqttsn::disconnect>(m);
  ASSERT_TRUE(d.duration.has_value());
  EXPECT_EQ(*d.duration, 0);
  EXPECT_EQ(to_hex(mqttsn::encode(mqttsn::disconnect{0})), "04 18 00 00");
}

TEST(codec_messages, disconnect_of_three_bytes_is_too_short_and_of_five_too_long) {
  EXPECT_EQ(error_of(hex("03 18 00")), decode_error::too_short);
  EXPECT_EQ(error_of(hex("05 18 00 00 00")), decode_error::too_long);
}

TEST(codec_messages, publish_accepts_any_msg_id_at_qos_0_and_minus_one) {
  EXPECT_EQ(
      decoded(hex("09 0C 00 00 01 12 34 68 69")),
      message{make_publish(qos::at_most_once, topic_id_type::normal, 1, 0x1234, text_bytes("hi"))});
  EXPECT_EQ(decoded(hex("09 0C 61 00 01 12 34 68 69")),
            message{make_publish(qos::minus_one, topic_id_type::predefined, 1, 0x1234,
                                 text_bytes("hi"))});
}

TEST(codec_messages, publish_with_empty_payload_is_seven_bytes) {
  const message m = make_publish(qos::at_least_once, topic_id_type::normal, 1, 9, {});
  EXPECT_EQ(to_hex(mqttsn::encode(m)), "07 0C 20 00 01 00 09");
  EXPECT_EQ(decoded(hex("07 0C 20 00 01 00 09")), m);
}

TEST(codec_messages, publish_keeps_every_flag) {
  const message m = decoded(hex("09 0C F2 61 62 00 07 68 69"));
  const auto& p = std::get<mqttsn::publish>(m);
  EXPECT_TRUE(p.dup);
  EXPECT_EQ(p.q, qos::minus_one);
  EXPECT_TRUE(p.retain);
  EXPECT_EQ(p.id_type, topic_id_type::short_name);
  EXPECT_EQ(p.id, mqttsn::short_topic_id('a', 'b'));
  EXPECT_EQ(to_hex(mqttsn::encode(m)), "09 0C F2 61 62 00 07 68 69");
}

TEST(codec_messages, unused_flag_bits_are_ignored_on_decode_and_written_as_zero) {
  // CONNECT uses only Will and CleanSession.
  const message connect = decoded(hex("09 04 F3 01 00 3C 61 62 63"));
  EXPECT_EQ(connect, (message{mqttsn::connect{false, false, 60, "abc"}}));
  EXPECT_EQ(to_hex(mqttsn::encode(decoded(hex("09 04 FF 01 00 3C 61 62 63")))),
            "09 04 0C 01 00 3C 61 62 63");
  // WILLTOPIC uses only QoS and Retain.
  EXPECT_EQ(to_hex(mqttsn::encode(decoded(hex("04 07 BF 61")))), "04 07 30 61");
  // SUBSCRIBE does not use Retain.
  EXPECT_EQ(to_hex(mqttsn::encode(decoded(hex("07 12 D1 00 05 00 10")))), "07 12 C1 00 05 00 10");
  // UNSUBSCRIBE uses only TopicIdType, so even QoS bits 0b11 are not an error there.
  EXPECT_EQ(to_hex(mqttsn::encode(decoded(hex("08 14 F0 00 07 61 2F 23")))),
            "08 14 00 00 07 61 2F 23");
  // SUBACK uses only QoS.
  EXPECT_EQ(to_hex(mqttsn::encode(decoded(hex("08 13 9F 00 01 00 04 00")))),
            "08 13 00 00 01 00 04 00");
}

TEST(codec_messages, any_return_code_byte_is_kept) {
  const message m = decoded(hex("03 05 FF"));
  EXPECT_EQ(static_cast<std::uint8_t>(std::get<mqttsn::connack>(m).rc), 0xFF);
  EXPECT_EQ(to_hex(mqttsn::encode(m)), "03 05 FF");
  EXPECT_EQ(to_hex(mqttsn::encode(decoded(hex("07 0D 00 01 00 02 84")))), "07 0D 00 01 00 02 84");
  EXPECT_EQ(to_hex(mqttsn::encode(decoded(hex("03 1D 80")))), "03 1D 80");
}

TEST(codec_messages, connect_accepts_client_ids_longer_than_23_bytes) {
  const std::string id(100, 'x');
  const message m = mqttsn::connect{false, true, 10, id};
  const bytes frame = mqttsn::encode(m);
  EXPECT_EQ(frame.size(), 106U);
  EXPECT_EQ(decoded(frame), m);
}

TEST(codec_messages, willmsg_may_be_empty) {
  EXPECT_EQ(decoded(hex("02 09")), message{mqttsn::willmsg{}});
  EXPECT_EQ(decoded(hex("02 1C")), message{mqttsn::willmsgupd{}});
  EXPECT_EQ(to_hex(mqttsn::encode(mqttsn::willmsg{})), "02 09");
}

TEST(codec_messages, subscribe_and_unsubscribe_by_name_keep_id_zero) {
  const auto s = std::get<mqttsn::subscribe>(decoded(hex("07 12 00 00 01 61 62")));
  EXPECT_EQ(s.topic_name, "ab");
  EXPECT_EQ(s.id, 0);
  const auto u = std::get<mqttsn::unsubscribe>(decoded(hex("07 14 02 00 01 61 62")));
  EXPECT_EQ(u.id_type, topic_id_type::short_name);
  EXPECT_EQ(u.id, mqttsn::short_topic_id('a', 'b'));
  EXPECT_TRUE(u.topic_name.empty());
}

TEST(codec_messages, unsubscribe_predefined_round_trips) {
  mqttsn::unsubscribe u;
  u.id_type = topic_id_type::predefined;
  u.mid = 9;
  u.id = 0x0102;
  EXPECT_EQ(to_hex(mqttsn::encode(u)), "07 14 01 00 09 01 02");
  EXPECT_EQ(decoded(hex("07 14 01 00 09 01 02")), message{u});
}

TEST(codec_messages, subscribe_by_id_encodes_the_id_not_the_name) {
  mqttsn::subscribe s = subscribe_id(qos::exactly_once, topic_id_type::predefined, 1, 0x0A0B);
  s.dup = true;
  s.topic_name = "ignored";
  EXPECT_EQ(to_hex(mqttsn::encode(s)), "07 12 C1 00 01 0A 0B");
}

TEST(codec_messages, encapsulation_may_carry_an_empty_node_id) {
  EXPECT_EQ(decoded(hex("03 FE 00 02 16")), (message{mqttsn::encapsulated{0, {}, hex("02 16")}}));
  EXPECT_EQ(to_hex(mqttsn::encode(mqttsn::encapsulated{0, {}, hex("02 16")})), "03 FE 00 02 16");
}

TEST(codec_messages, encapsulation_radius_is_the_low_two_ctrl_bits) {
  EXPECT_EQ(std::get<mqttsn::encapsulated>(decoded(hex("04 FE FE 07 02 16"))).radius, 2);
  EXPECT_EQ(to_hex(mqttsn::encode(mqttsn::encapsulated{0xFF, {0x07}, hex("02 16")})),
            "04 FE 03 07 02 16");
}

TEST(codec_messages, encapsulation_keeps_the_inner_frame_undecoded) {
  // The inner frame is handed over as is, even another encapsulation or garbage.
  const bytes nested = hex("04 FE 00 01 04 FE 00 02 02 16");
  EXPECT_EQ(std::get<mqttsn::encapsulated>(decoded(nested)).frame, hex("04 FE 00 02 02 16"));
  EXPECT_EQ(std::get<mqttsn::encapsulated>(decoded(hex("03 FE 00 FF"))).frame, hex("FF"));
}

TEST(codec_messages, encapsulation_inner_frame_may_be_long) {
  const mqttsn::encapsulated e{
      1,
      {0xAA, 0xBB},
      mqttsn::encode(make_publish(qos::at_most_once, topic_id_type::normal, 1, 0, payload(400)))};
  const bytes frame = mqttsn::encode(e);
  EXPECT_EQ(frame.size(), 5U + 4U + 5U + 400U);
  EXPECT_EQ(mqttsn::encoded_size(e), frame.size());
  EXPECT_EQ(decoded(frame), message{e});
}

TEST(codec_messages, encapsulation_node_id_is_limited_by_its_one_byte_length) {
  mqttsn::encapsulated e{0, bytes(252, 0x42), hex("02 16")};
  const bytes frame = mqttsn::encode(e);
  ASSERT_EQ(frame.size(), 257U);
  EXPECT_EQ(frame[0], 0xFF);
  EXPECT_EQ(decoded(frame), message{e});

  e.node_id.push_back(0x42);
  bytes out = hex("AA");
  EXPECT_FALSE(mqttsn::encode(e, out));
  EXPECT_EQ(out, hex("AA"));
  EXPECT_TRUE(mqttsn::encode(e).empty());
  EXPECT_EQ(mqttsn::encoded_size(e), 258U);
}

// ---------------------------------------------------------------------------------------------
// Big-endian fields (PROTOCOL.md §6 item 1: byte-swapped and sign-extended ids seen in the wild).

class codec_big_endian : public testing::TestWithParam<std::uint16_t> {};

TEST_P(codec_big_endian, topic_and_msg_ids_are_most_significant_byte_first) {
  const std::uint16_t v = GetParam();
  const auto hi = static_cast<std::uint8_t>(v >> 8U);
  const auto lo = static_cast<std::uint8_t>(v & 0xFFU);

  const bytes pub =
      mqttsn::encode(make_publish(qos::at_least_once, topic_id_type::normal, v, v, {}));
  EXPECT_EQ(pub, (bytes{0x07, 0x0C, 0x20, hi, lo, hi, lo}));
  const auto p = std::get<mqttsn::publish>(decoded(pub));
  EXPECT_EQ(p.id, v);
  EXPECT_EQ(p.mid, v);

  EXPECT_EQ(mqttsn::encode(mqttsn::register_{v, v, "t"}), (bytes{0x07, 0x0A, hi, lo, hi, lo, 't'}));
  EXPECT_EQ(std::get<mqttsn::register_>(decoded(bytes{0x07, 0x0A, hi, lo, 0x00, 0x01, 't'})).id, v);
  EXPECT_EQ(std::get<mqttsn::regack>(decoded(bytes{0x07, 0x0B, hi, lo, 0x00, 0x01, 0x00})).id, v);
  EXPECT_EQ(std::get<mqttsn::puback>(decoded(bytes{0x07, 0x0D, hi, lo, 0x00, 0x01, 0x00})).id, v);
  EXPECT_EQ(std::get<mqttsn::suback>(decoded(bytes{0x08, 0x13, 0x00, hi, lo, 0x00, 0x01, 0x00})).id,
            v);
  EXPECT_EQ(std::get<mqttsn::subscribe>(decoded(bytes{0x07, 0x12, 0x01, 0x00, 0x01, hi, lo})).id,
            v);
  EXPECT_EQ(std::get<mqttsn::unsuback>(decoded(bytes{0x04, 0x15, hi, lo})).mid, v);
  EXPECT_EQ(std::get<mqttsn::advertise>(decoded(bytes{0x05, 0x00, 0x01, hi, lo})).duration, v);
  EXPECT_EQ(std::get<mqttsn::connect>(decoded(bytes{0x07, 0x04, 0x00, 0x01, hi, lo, 'c'})).duration,
            v);
  EXPECT_EQ(*std::get<mqttsn::disconnect>(decoded(bytes{0x04, 0x18, hi, lo})).duration, v);
  EXPECT_EQ(mqttsn::encode(mqttsn::disconnect{v}), (bytes{0x04, 0x18, hi, lo}));
}

INSTANTIATE_TEST_SUITE_P(codec, codec_big_endian,
                         testing::Values(0x0080, 0x0100, 0xFF00, 0x00FF, 0xFFFF),
                         [](const testing::TestParamInfo<std::uint16_t>& param_info) {
                           const std::uint16_t v = param_info.param;
                           return "id_" + to_hex(bytes{static_cast<std::uint8_t>(v >> 8U),
                                                       static_cast<std::uint8_t>(v & 0xFFU)})
                                              .replace(2, 1, "");
                         });

// ---------------------------------------------------------------------------------------------
// Length boundaries.

// A PUBLISH whose frame would be `short_total` bytes in the 1-byte Length form.
message publish_of_short_total(std::size_t short_total) {
  return make_publish(qos::at_most_once, topic_id_type::normal, 1, 0, payload(short_total - 7));
}

TEST(codec_length, total_255_uses_the_one_byte_form) {
  const message m = publish_of_short_total(255);
  const bytes frame = mqttsn::encode(m);
  ASSERT_EQ(frame.size(), 255U);
  EXPECT_EQ(frame[0], 0xFF);
  EXPECT_EQ(frame[1], 0x0C);
  EXPECT_EQ(mqttsn::encoded_size(m), 255U);
  EXPECT_EQ(decoded(frame), m);
}

TEST(codec_length, total_256_switches_to_the_three_byte_form) {
  // 256 bytes do not fit the 1-byte form; with the 2 extra Length bytes the frame is 258.
  const message m = publish_of_short_total(256);
  const bytes frame = mqttsn::encode(m);
  ASSERT_EQ(frame.size(), 258U);
  EXPECT_EQ(to_hex(bytes(frame.begin(), frame.begin() + 4)), "01 01 02 0C");
  EXPECT_EQ(mqttsn::encoded_size(m), 258U);
  EXPECT_EQ(decoded(frame), m);
}

TEST(codec_length, long_form_frames_of_256_and_257_bytes_decode) {
  // Never produced by our encoder, but legal on the wire.
  const bytes f256 = concat(hex("01 01 00 0C 00 00 01 00 00"), payload(247));
  ASSERT_EQ(f256.size(), 256U);
  EXPECT_EQ(decoded(f256),
            message{make_publish(qos::at_most_once, topic_id_type::normal, 1, 0, payload(247))});
  const bytes f257 = concat(hex("01 01 01 0C 00 00 01 00 00"), payload(248));
  EXPECT_EQ(decoded(f257),
            message{make_publish(qos::at_most_once, topic_id_type::normal, 1, 0, payload(248))});
}

TEST(codec_length, total_65535_is_the_largest_encodable_frame) {
  const message m =
      make_publish(qos::at_most_once, topic_id_type::normal, 1, 0, payload(65535 - 9));
  EXPECT_EQ(mqttsn::encoded_size(m), mqttsn::max_frame_size);
  const bytes frame = mqttsn::encode(m);
  ASSERT_EQ(frame.size(), 65535U);
  EXPECT_EQ(to_hex(bytes(frame.begin(), frame.begin() + 4)), "01 FF FF 0C");
  EXPECT_EQ(decoded(frame), m);
}

TEST(codec_length, total_65536_cannot_be_encoded) {
  const message m =
      make_publish(qos::at_most_once, topic_id_type::normal, 1, 0, payload(65536 - 9));
  EXPECT_EQ(mqttsn::encoded_size(m), 65536U);
  EXPECT_TRUE(mqttsn::encode(m).empty());
  bytes out = hex("02 17");
  EXPECT_FALSE(mqttsn::encode(m, out));
  EXPECT_EQ(out, hex("02 17"));  // nothing appended
}

TEST(codec_length, encode_appends_after_existing_bytes) {
  bytes out = hex("02 17");
  ASSERT_TRUE(mqttsn::encode(mqttsn::pubrec{3}, out));
  ASSERT_TRUE(mqttsn::encode(mqttsn::pingreq{"abc"}, out));
  EXPECT_EQ(to_hex(out), "02 17 04 0F 00 03 05 16 61 62 63");
}

TEST(codec_length, encode_reserves_the_exact_size_for_a_fresh_buffer) {
  const message m = make_publish(qos::at_most_once, topic_id_type::normal, 1, 0, payload(1000));
  bytes out;
  ASSERT_TRUE(mqttsn::encode(m, out));
  EXPECT_EQ(out.capacity(), out.size());
}

// ---------------------------------------------------------------------------------------------
// Every decode_error, each from frames that show the documented check order.

struct error_case {
  const char* frame;
  decode_error expected;
  const char* why;
};

const std::vector<error_case>& error_cases() {
  static const std::vector<error_case> cases = {
      {"", decode_error::empty, "no bytes"},
      {"01", decode_error::truncated_length, "long marker alone"},
      {"01 00", decode_error::truncated_length, "long marker with one length byte"},
      {"00", decode_error::zero_length, "Length 0, no type"},
      {"00 18", decode_error::zero_length, "Length 0"},
      {"01 00 00", decode_error::zero_length, "long-form Length 0, no type"},
      {"01 00 00 18", decode_error::zero_length, "long-form Length 0"},
      {"05", decode_error::missing_type, "1-byte frame"},
      {"FE", decode_error::missing_type, "1-byte frame, not an encapsulation"},
      {"01 00 01 18", decode_error::missing_type, "long-form Length 1"},
      {"01 00 03 18", decode_error::missing_type, "long-form Length 3 covers only itself"},
      {"01 00 03", decode_error::missing_type, "long-form Length 3 on 3 bytes"},
      {"01 00 04", decode_error::missing_type, "3-byte long-form frame"},
      {"03 18", decode_error::length_mismatch, "declared more than the frame"},
      {"02 18 00", decode_error::length_mismatch, "declared less than the frame"},
      {"01 00 05 18", decode_error::length_mismatch, "long form declared more"},
      {"01 00 04 18 00", decode_error::length_mismatch, "long form declared less"},
      {"02 03", decode_error::reserved_type, "0x03"},
      {"03 11 00", decode_error::reserved_type, "0x11"},
      {"02 19", decode_error::reserved_type, "0x19"},
      {"02 FF", decode_error::reserved_type, "0xFF"},
      {"04 00 01 03", decode_error::too_short, "ADVERTISE without duration low byte"},
      {"02 01", decode_error::too_short, "SEARCHGW without radius"},
      {"02 02", decode_error::too_short, "GWINFO without GwId"},
      {"05 04 04 01 00", decode_error::too_short, "CONNECT without duration low byte"},
      {"03 04 04", decode_error::too_short, "CONNECT with flags only"},
      {"02 05", decode_error::too_short, "CONNACK without return code"},
      {"05 0A 00 01 00", decode_error::too_short, "REGISTER without msg id low byte"},
      {"06 0B 00 01 00 01", decode_error::too_short, "REGACK without return code"},
      {"06 0C 00 00 01 00", decode_error::too_short, "PUBLISH without msg id low byte"},
      {"02 0C", decode_error::too_short, "PUBLISH without flags"},
      {"06 0D 00 01 00 01", decode_error::too_short, "PUBACK without return code"},
      {"03 0E 00", decode_error::too_short, "PUBCOMP with 1 byte"},
      {"03 0F 00", decode_error::too_short, "PUBREC with 1 byte"},
      {"02 10", decode_error::too_short, "PUBREL without msg id"},
      {"04 12 20 00", decode_error::too_short, "SUBSCRIBE without msg id low byte"},
      {"04 12 63 00", decode_error::too_short, "SUBSCRIBE: size is checked before flags"},
      {"06 12 01 00 05 00", decode_error::too_short, "SUBSCRIBE predefined with 1 id byte"},
      {"05 12 02 00 05", decode_error::too_short, "SUBSCRIBE short name without id"},
      {"07 13 20 00 01 00 04", decode_error::too_short, "SUBACK without return code"},
      {"07 13 60 00 01 00 04", decode_error::too_short, "SUBACK: size is checked before QoS"},
      {"02 14", decode_error::too_short, "UNSUBSCRIBE without flags"},
      {"06 14 02 00 05 61", decode_error::too_short, "UNSUBSCRIBE short name with 1 byte"},
      {"03 15 00", decode_error::too_short, "UNSUBACK with 1 byte"},
      {"03 18 00", decode_error::too_short, "DISCONNECT with 1 duration byte"},
      {"02 1B", decode_error::too_short, "WILLTOPICRESP without return code"},
      {"02 1D", decode_error::too_short, "WILLMSGRESP without return code"},
      {"06 00 01 03 84 00", decode_error::too_long, "ADVERTISE plus a byte"},
      {"04 01 01 00", decode_error::too_long, "SEARCHGW plus a byte"},
      {"04 05 00 00", decode_error::too_long, "CONNACK plus a byte"},
      {"03 06 00", decode_error::too_long, "WILLTOPICREQ with a body"},
      {"03 08 00", decode_error::too_long, "WILLMSGREQ with a body"},
      {"08 0B 00 01 00 01 00 00", decode_error::too_long, "REGACK plus a byte"},
      {"08 0D 00 01 00 02 00 00", decode_error::too_long, "PUBACK plus a byte"},
      {"05 10 00 03 00", decode_error::too_long, "PUBREL plus a byte"},
      {"08 12 01 00 05 00 10 00", decode_error::too_long, "SUBSCRIBE predefined with 3 id bytes"},
      {"09 13 20 00 01 00 04 00 00", decode_error::too_long, "SUBACK plus a byte"},
      {"08 14 02 00 05 61 62 63", decode_error::too_long, "UNSUBSCRIBE short name with 3 bytes"},
      {"03 17 00", decode_error::too_long, "PINGRESP with a body"},
      {"05 18 00 00 00", decode_error::too_long, "DISCONNECT with 3 body bytes"},
      {"04 1B 00 00", decode_error::too_long, "WILLTOPICRESP plus a byte"},
      {"04 1D 00 00", decode_error::too_long, "WILLMSGRESP plus a byte"},
      {"09 0C 03 00 01 00 00 68 69", decode_error::reserved_topic_id_type, "PUBLISH type 0b11"},
      {"09 0C 63 00 01 00 00 68 69", decode_error::reserved_topic_id_type,
       "PUBLISH QoS -1, type 0b11"},
      {"07 12 03 00 05 00 10", decode_error::reserved_topic_id_type, "SUBSCRIBE type 0b11"},
      {"05 12 63 00 05", decode_error::reserved_topic_id_type, "SUBSCRIBE: type before QoS"},
      {"07 14 03 00 05 00 10", decode_error::reserved_topic_id_type, "UNSUBSCRIBE type 0b11"},
      {"08 12 60 00 04 61 2F 23", decode_error::invalid_qos, "SUBSCRIBE QoS -1"},
      {"05 12 60 00 04", decode_error::invalid_qos, "SUBSCRIBE: QoS before the empty name"},
      {"08 13 60 00 01 00 04 00", decode_error::invalid_qos, "SUBACK QoS -1"},
      {"0B 07 60 77 69 6C 6C 2F 61 62 63", decode_error::invalid_qos, "WILLTOPIC QoS -1"},
      {"03 07 60", decode_error::invalid_qos, "Paho-style empty WILLTOPIC with QoS -1"},
      {"0B 1A 70 77 69 6C 6C 2F 61 62 63", decode_error::invalid_qos, "WILLTOPICUPD QoS -1"},
      {"09 04 04 02 00 3C 61 62 63", decode_error::bad_protocol_id, "ProtocolId 0x02"},
      {"09 04 04 00 00 3C 61 62 63", decode_error::bad_protocol_id, "ProtocolId 0x00"},
      {"06 04 04 03 00 3C", decode_error::bad_protocol_id, "ProtocolId before the empty client id"},
      {"06 04 04 01 00 3C", decode_error::empty_client_id, "CONNECT without client id"},
      {"06 0A 00 00 00 01", decode_error::empty_topic_name, "REGISTER without name"},
      {"05 12 00 00 04", decode_error::empty_topic_name, "SUBSCRIBE by name without name"},
      {"05 14 00 00 07", decode_error::empty_topic_name, "UNSUBSCRIBE by name without name"},
      {"05 14 60 00 07", decode_error::empty_topic_name, "UNSUBSCRIBE ignores QoS bits"},
      {"02 FE", decode_error::bad_encapsulation, "header Length 2, nothing else"},
      {"03 FE", decode_error::bad_encapsulation, "Ctrl missing"},
      {"00 FE 00 02 16", decode_error::bad_encapsulation, "header Length 0"},
      {"02 FE 00 02 16", decode_error::bad_encapsulation, "header Length 2 leaves no Ctrl"},
      {"05 FE 00 0A 0B", decode_error::bad_encapsulation, "no inner frame"},
      {"06 FE 00 0A 0B 02", decode_error::bad_encapsulation, "header Length = frame size"},
      {"09 FE 00 0A 0B 02 16", decode_error::bad_encapsulation, "header Length beyond the frame"},
      {"01 00 06 FE 00 02", decode_error::bad_encapsulation, "MsgType 0xFE behind a long Length"},
  };
  return cases;
}

TEST(codec_errors, each_malformed_frame_yields_its_documented_error) {
  for (const auto& c : error_cases()) {
    EXPECT_EQ(mqttsn::to_string(error_of(hex(c.frame))), std::string(mqttsn::to_string(c.expected)))
        << "[" << c.frame << "] " << c.why;
  }
}

TEST(codec_errors, every_decode_error_is_produced_by_some_frame) {
  std::set<decode_error> produced;
  for (const auto& c : error_cases()) produced.insert(c.expected);
  EXPECT_EQ(produced.size(), mqttsn::decode_error_count);
}

TEST(codec_errors, every_reserved_msgtype_is_rejected) {
  std::vector<int> reserved = {0x03, 0x11, 0x19, 0xFF};
  for (int t = 0x1E; t <= 0xFD; ++t) reserved.push_back(t);
  for (const int t : reserved) {
    EXPECT_EQ(error_of(bytes{0x02, static_cast<std::uint8_t>(t)}), decode_error::reserved_type)
        << t;
    EXPECT_EQ(error_of(bytes{0x04, static_cast<std::uint8_t>(t), 0x00, 0x00}),
              decode_error::reserved_type)
        << t;
  }
}

TEST(codec_errors, to_string_names_every_decode_error) {
  std::set<std::string> names;
  for (std::size_t i = 0; i < mqttsn::decode_error_count; ++i) {
    const std::string name = mqttsn::to_string(static_cast<decode_error>(i));
    EXPECT_FALSE(name.empty());
    EXPECT_NE(name, "unknown") << i;
    names.insert(name);
  }
  EXPECT_EQ(names.size(), mqttsn::decode_error_count);
  EXPECT_STREQ(mqttsn::to_string(decode_error::length_mismatch), "length_mismatch");
  EXPECT_STREQ(mqttsn::to_string(static_cast<decode_error>(mqttsn::decode_error_count)), "unknown");
}

TEST(codec_errors, decode_reads_only_inside_the_span) {
  // A frame cut out of a larger buffer: bytes after the span must not be seen.
  const bytes buffer = hex("04 0F 00 03 FF FF");
  EXPECT_EQ(mqttsn::decode(std::span(buffer.data(), 4)),
            mqttsn::decode_result{message{mqttsn::pubrec{3}}});
  EXPECT_EQ(std::get<decode_error>(mqttsn::decode(std::span(buffer.data(), 3))),
            decode_error::length_mismatch);
}

// ---------------------------------------------------------------------------------------------
// Robustness: random frames never crash, and whatever decodes survives encode -> decode.

TEST(codec_robustness, random_frames_decode_to_an_error_or_round_trip) {
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> size(0, 40);
  std::size_t decoded_count = 0;
  for (int i = 0; i < 200000; ++i) {
    bytes frame(static_cast<std::size_t>(size(rng)));
    for (auto& b : frame) b = static_cast<std::uint8_t>(byte(rng));
    // Make most frames framing-valid so the message decoders get exercised.
    if (frame.size() >= 2 && i % 4 != 0) {
      frame[0] = static_cast<std::uint8_t>(frame.size());
      frame[1] = static_cast<std::uint8_t>(byte(rng) % 0x1E);
    }
    const auto first = mqttsn::decode(frame);
    if (std::holds_alternative<decode_error>(first)) continue;
    ++decoded_count;
    const bytes again = mqttsn::encode(std::get<message>(first));
    const auto second = mqttsn::decode(again);
    ASSERT_TRUE(std::holds_alternative<message>(second))
        << to_hex(frame) << " -> " << to_hex(again);
    ASSERT_EQ(std::get<message>(second), std::get<message>(first)) << to_hex(frame);
  }
  EXPECT_GT(decoded_count, 10000U);
}

// ---------------------------------------------------------------------------------------------
// message.hpp helpers.

TEST(codec_message_names, name_of_spells_the_spec_name) {
  EXPECT_STREQ(mqttsn::name_of(mqttsn::msg_type::publish), "PUBLISH");
  EXPECT_STREQ(mqttsn::name_of(mqttsn::msg_type::pubcomp), "PUBCOMP");
  EXPECT_STREQ(mqttsn::name_of(mqttsn::msg_type::register_), "REGISTER");
  EXPECT_STREQ(mqttsn::name_of(mqttsn::msg_type::encapsulated), "ENCAPSULATED");
  EXPECT_STREQ(mqttsn::name_of(static_cast<mqttsn::msg_type>(0x03)), "RESERVED");
}

TEST(codec_message_names, every_message_type_has_a_distinct_name) {
  std::set<std::string> names;
  for (const auto& c : protocol_vectors()) {
    const std::string name = mqttsn::name_of(mqttsn::type_of(c.value));
    EXPECT_NE(name, "RESERVED");
    names.insert(name);
  }
  EXPECT_EQ(names.size(), std::variant_size_v<message>);
}

TEST(codec_message_names, type_of_follows_the_spec_codes) {
  EXPECT_EQ(mqttsn::type_of(mqttsn::advertise{}), mqttsn::msg_type::advertise);
  EXPECT_EQ(mqttsn::type_of(mqttsn::pubcomp{}), mqttsn::msg_type::pubcomp);
  EXPECT_EQ(static_cast<int>(mqttsn::type_of(mqttsn::pubcomp{})), 0x0E);
  EXPECT_EQ(static_cast<int>(mqttsn::type_of(mqttsn::pubrec{})), 0x0F);
  EXPECT_EQ(static_cast<int>(mqttsn::type_of(mqttsn::willmsgresp{})), 0x1D);
  EXPECT_EQ(static_cast<int>(mqttsn::type_of(mqttsn::encapsulated{})), 0xFE);
}

TEST(codec_message_names, short_topic_id_puts_the_first_character_high) {
  EXPECT_EQ(mqttsn::short_topic_id('a', 'b'), 0x6162);
  EXPECT_EQ(mqttsn::short_topic_id('\xFF', '\x80'), 0xFF80);
}

// Values outside an enum's enumerators (casts) never spill into neighbouring flag bits.
TEST(codec_encode, out_of_range_enum_values_stay_inside_their_flag_bits) {
  const message m = make_publish(static_cast<qos>(5), static_cast<topic_id_type>(0x07), 1, 0, {});
  EXPECT_EQ(to_hex(mqttsn::encode(m)), "07 0C 03 00 01 00 00");
}

}  // namespace
