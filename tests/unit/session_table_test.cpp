// The session table: frames from transport addresses routed to sessions keyed by client id
// (rebinding on CONNECT and PINGREQ(client id)), what is answered without a session (SEARCHGW,
// QoS -1, unknown senders, a full table), malformed frames, and the single deadline index.
// Every test feeds exact frames (PROTOCOL.md §2) and checks the complete list of routed actions.
#include "mqttsn/session_table.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "mqttsn/codec.hpp"
#include "mqttsn/counters.hpp"
#include "mqttsn/session.hpp"
#include "mqttsn/topics.hpp"
#include "test_support.hpp"

namespace mqttsn {
namespace {

using namespace std::chrono_literals;

// routed_action with equality and printing, so a whole output list compares in one EXPECT_EQ.
struct routed {
  std::string client_id;
  endpoint to;
  action act;
  bool operator==(const routed&) const = default;
};

void PrintTo(const routed& r, std::ostream* os) {
  *os << "{client '" << r.client_id << "' to '" << r.to << "': ";
  PrintTo(r.act, os);
  *os << "}";
}

using routed_list = std::vector<routed>;

// ---- frames from PROTOCOL.md §2 (and variants of them) ----
const bytes connect_abc = {0x09, 0x04, 0x04, 0x01, 0x00, 0x3C, 0x61, 0x62, 0x63};  // clean, 60 s
const bytes connect_abc_keep = {0x09, 0x04, 0x00, 0x01, 0x00, 0x3C, 0x61, 0x62, 0x63};  // clean=0
const bytes connack_accepted = {0x03, 0x05, 0x00};
const bytes connack_congestion = {0x03, 0x05, 0x01};
const bytes connack_not_supported = {0x03, 0x05, 0x03};
const bytes pingreq_plain = {0x02, 0x16};
const bytes pingreq_abc = {0x05, 0x16, 0x61, 0x62, 0x63};
const bytes pingresp = {0x02, 0x17};
const bytes disconnect_plain = {0x02, 0x18};
const bytes disconnect_sleep_300 = {0x04, 0x18, 0x01, 0x2C};
const bytes publish_qos0 = {0x09, 0x0C, 0x00, 0x00, 0x01, 0x00, 0x00, 0x68, 0x69};
const bytes publish_qos1_retain = {0x09, 0x0C, 0x30, 0x00, 0x01, 0x00, 0x02, 0x68, 0x69};
const bytes publish_qos2_dup = {0x09, 0x0C, 0xC0, 0x00, 0x01, 0x00, 0x03, 0x68, 0x69};
const bytes publish_qm1_predefined = {0x09, 0x0C, 0x61, 0x00, 0x10, 0x00, 0x00, 0x68, 0x69};
const bytes publish_qm1_short = {0x09, 0x0C, 0x62, 0x61, 0x62, 0x00, 0x00, 0x68, 0x69};
const bytes register_ab = {0x09, 0x0A, 0x00, 0x00, 0x00, 0x01, 0x61, 0x2F, 0x62};
const bytes subscribe_wildcard = {0x08, 0x12, 0x20, 0x00, 0x04, 0x61, 0x2F, 0x23};
const bytes subscribe_short_ab = {0x07, 0x12, 0x02, 0x00, 0x06, 0x61, 0x62};

// CONNECT with CleanSession and the given keep-alive (seconds) for a short client id.
bytes connect_frame(const std::string& client_id, std::uint16_t keep_alive, bool clean = true) {
  message m = connect{false, clean, keep_alive, client_id};
  return encode(m);
}

constexpr topic_id predefined_temp = 0x0010;  // the id in the PROTOCOL.md QoS -1 vector

class SessionTable : public ::testing::Test {
 protected:
  SessionTable() {
    EXPECT_EQ(predefined.add(predefined_temp, "sensors/temp"),
              predefined_topics::add_result::added);
    make_table(table_config{1000, 7});
  }

  void make_table(table_config config) {
    table = std::make_unique<session_table>(config, session_cfg, predefined, stats);
  }

  static routed_list convert(std::vector<routed_action>& out) {
    routed_list r;
    for (auto& a : out)
      r.push_back(routed{std::move(a.client_id), std::move(a.to), std::move(a.act)});
    return r;
  }

  routed_list feed(const endpoint& from, const bytes& frame) {
    std::vector<routed_action> out;
    table->handle_frame(from, frame, now, out);
    return convert(out);
  }

  routed_list upstream(const std::string& client_id, const upstream_event& e) {
    std::vector<routed_action> out;
    table->handle_upstream(client_id, e, now, out);
    return convert(out);
  }

  routed_list tick(time_point at) {
    std::vector<routed_action> out;
    table->tick(at, out);
    return convert(out);
  }

  // CONNECT (no will) from `ep`, and the broker accepts: the session is active.
  void connect_client(const std::string& client_id, const endpoint& ep, const bytes& frame,
                      bool session_present = false) {
    SCOPED_TRACE("connect " + client_id + " from " + ep);
    const auto first = feed(ep, frame);
    ASSERT_EQ(first.size(), 1U);
    ASSERT_TRUE(std::holds_alternative<upstream_connect>(first[0].act));
    EXPECT_EQ(first[0].client_id, client_id);
    EXPECT_EQ(first[0].to, ep);
    EXPECT_EQ(upstream(client_id, upstream_connected{session_present}),
              (routed_list{{client_id, ep, raw({0x03, 0x05, 0x00})},
                           {client_id, ep, report{event::connected, {}}}}));
    ASSERT_NE(table->find(client_id), nullptr);
    ASSERT_EQ(table->find(client_id)->state(), session_state::active);
  }

  time_point now = time_point{} + 1h;
  counters stats;
  predefined_topics predefined;
  session_config session_cfg;
  std::unique_ptr<session_table> table;
};

// ---------------------------------------------------------------------------------------------
// Sessions are keyed by client id; the address is only an index

TEST_F(SessionTable, connect_creates_session_and_connack_goes_to_its_endpoint) {
  EXPECT_EQ(feed("udp:A", connect_abc),
            (routed_list{{"abc", "udp:A", upstream_connect{true, 60, std::nullopt}}}));
  ASSERT_EQ(table->size(), 1U);
  const session* s = table->find("abc");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->state(), session_state::connecting);
  EXPECT_EQ(table->find_by_endpoint("udp:A"), s);
  ASSERT_NE(table->endpoint_of("abc"), nullptr);
  EXPECT_EQ(*table->endpoint_of("abc"), "udp:A");

  EXPECT_EQ(upstream("abc", upstream_connected{}),
            (routed_list{{"abc", "udp:A", raw({0x03, 0x05, 0x00})},
                         {"abc", "udp:A", report{event::connected, {}}}}));
  EXPECT_EQ(s->state(), session_state::active);
  EXPECT_EQ(stats.connects, 1U);
  EXPECT_EQ(stats.takeovers, 0U);
  EXPECT_EQ(stats.frames_in, 1U);
}

TEST_F(SessionTable, connect_of_same_client_id_from_another_endpoint_takes_the_session_over) {
  connect_client("abc", "udp:A", connect_abc);
  now += 1s;

  EXPECT_EQ(feed("udp:B", connect_abc),
            (routed_list{{"abc", "udp:B", upstream_connect{true, 60, std::nullopt}}}));
  EXPECT_EQ(stats.takeovers, 1U);
  EXPECT_EQ(table->size(), 1U);
  ASSERT_NE(table->endpoint_of("abc"), nullptr);
  EXPECT_EQ(*table->endpoint_of("abc"), "udp:B");
  EXPECT_EQ(table->find_by_endpoint("udp:B"), table->find("abc"));
  EXPECT_EQ(table->find_by_endpoint("udp:A"), nullptr);

  EXPECT_EQ(upstream("abc", upstream_connected{}),
            (routed_list{{"abc", "udp:B", frame_of(connack{return_code::accepted})},
                         {"abc", "udp:B", report{event::connected, {}}}}));

  // The old address is forgotten: it must reconnect.
  EXPECT_EQ(feed("udp:A", publish_qos0), (routed_list{{"", "udp:A", raw({0x02, 0x18})}}));
  EXPECT_EQ(stats.unknown_sender, 1U);
  // The new one is served.
  EXPECT_EQ(feed("udp:B", pingreq_plain), (routed_list{{"abc", "udp:B", raw({0x02, 0x17})}}));
  EXPECT_EQ(stats.takeovers, 1U);
}

TEST_F(SessionTable, reconnect_from_the_same_endpoint_is_not_a_takeover) {
  connect_client("abc", "udp:A", connect_abc);
  EXPECT_EQ(feed("udp:A", connect_abc),
            (routed_list{{"abc", "udp:A", upstream_connect{true, 60, std::nullopt}}}));
  EXPECT_EQ(stats.takeovers, 0U);
  EXPECT_EQ(table->size(), 1U);
}

TEST_F(SessionTable, pingreq_with_client_id_from_new_port_rebinds_sleeping_client_and_wakes_it) {
  const endpoint before = "udp:10.0.0.5:4000";
  const endpoint after = "udp:10.0.0.5:4001";
  connect_client("abc", before, connect_abc);

  EXPECT_EQ(feed(before, disconnect_sleep_300),
            (routed_list{{"abc", before, raw({0x02, 0x18})},
                         {"abc", before, report{event::asleep, "300 s"}}}));
  // Buffered while asleep: nothing goes out.
  EXPECT_EQ(upstream("abc", upstream_message{"ab", payload("hi"), qos::at_most_once, false}),
            routed_list{});
  EXPECT_EQ(table->find("abc")->queued(), 1U);

  now += 60s;
  EXPECT_EQ(
      feed(after, pingreq_abc),
      (routed_list{{"abc", after, report{event::awake, "1 buffered"}},
                   {"abc", after, raw({0x09, 0x0C, 0x02, 0x61, 0x62, 0x00, 0x00, 0x68, 0x69})},
                   {"abc", after, raw({0x02, 0x17})},
                   {"abc", after, report{event::asleep, "300 s"}}}));
  EXPECT_EQ(stats.takeovers, 1U);
  ASSERT_NE(table->endpoint_of("abc"), nullptr);
  EXPECT_EQ(*table->endpoint_of("abc"), after);
  EXPECT_EQ(table->find_by_endpoint(before), nullptr);
  EXPECT_EQ(table->find_by_endpoint(after), table->find("abc"));
}

TEST_F(SessionTable,
       pingreq_with_client_id_from_new_address_with_nothing_buffered_gets_pingresp_there) {
  connect_client("abc", "udp:A", connect_abc);
  ASSERT_EQ(feed("udp:A", disconnect_sleep_300).size(), 2U);
  EXPECT_EQ(feed("udp:A2", pingreq_abc), (routed_list{{"abc", "udp:A2", raw({0x02, 0x17})}}));
  EXPECT_EQ(stats.takeovers, 1U);
  EXPECT_EQ(table->find("abc")->state(), session_state::asleep);
  // The old address no longer speaks for the client.
  EXPECT_EQ(feed("udp:A", pingreq_plain), (routed_list{{"", "udp:A", raw({0x02, 0x18})}}));
}

TEST_F(SessionTable, another_client_id_connecting_from_an_address_takes_that_address) {
  connect_client("abc", "udp:A", connect_abc);
  EXPECT_EQ(feed("udp:A", connect_frame("xyz", 60)),
            (routed_list{{"xyz", "udp:A", upstream_connect{true, 60, std::nullopt}}}));
  EXPECT_EQ(table->size(), 2U);
  EXPECT_EQ(table->find_by_endpoint("udp:A"), table->find("xyz"));
  // Frames from udp:A are now xyz's (still connecting: a PINGREQ is not valid before CONNACK).
  EXPECT_EQ(feed("udp:A", pingreq_plain), routed_list{});
  EXPECT_EQ(stats.unexpected_messages, 1U);
  // Whatever abc's session still sends, it does not go to xyz's address.
  for (const auto& r :
       upstream("abc", upstream_message{"ab", payload("hi"), qos::at_most_once, false})) {
    EXPECT_EQ(r.client_id, "abc");
    EXPECT_NE(r.to, "udp:A");
  }
}

// ---------------------------------------------------------------------------------------------
// Senders without a session

TEST_F(SessionTable, messages_from_an_address_without_session_are_answered_with_disconnect) {
  connect_client("abc", "udp:A", connect_abc);  // a session elsewhere changes nothing
  const std::vector<std::pair<const char*, bytes>> cases = {
      {"PUBLISH QoS 0", publish_qos0},
      {"PUBLISH QoS 1", publish_qos1_retain},
      {"PUBLISH QoS 2", publish_qos2_dup},
      {"REGISTER", register_ab},
      {"SUBSCRIBE", subscribe_wildcard},
      {"PINGREQ", pingreq_plain},
      {"PINGREQ with an unknown client id", {0x05, 0x16, 0x78, 0x79, 0x7A}},
  };
  std::uint64_t n = 0;
  for (const auto& [what, frame] : cases) {
    SCOPED_TRACE(what);
    EXPECT_EQ(feed("udp:X", frame), (routed_list{{"", "udp:X", raw({0x02, 0x18})}}));
    EXPECT_EQ(stats.unknown_sender, ++n);
  }
  EXPECT_EQ(table->size(), 1U);
  EXPECT_EQ(table->find("xyz"), nullptr);
  EXPECT_EQ(table->find_by_endpoint("udp:X"), nullptr);
  EXPECT_EQ(stats.publishes_from_clients, 0U);
  // frames_out counts every DISCONNECT (plus abc's CONNACK).
  EXPECT_EQ(stats.frames_out, n + 1);
}

TEST_F(SessionTable, disconnect_from_an_address_without_session_is_acknowledged) {
  // E.g. a client retransmitting its DISCONNECT after a clean session was already forgotten.
  EXPECT_EQ(feed("udp:X", disconnect_plain), (routed_list{{"", "udp:X", raw({0x02, 0x18})}}));
  EXPECT_EQ(table->size(), 0U);
}

// ---------------------------------------------------------------------------------------------
// QoS -1: no session needed

TEST_F(SessionTable, qos_minus_one_predefined_from_address_without_session_is_published) {
  EXPECT_EQ(feed("udp:Z", publish_qm1_predefined),
            (routed_list{
                {"", "udp:Z",
                 upstream_publish{0, "sensors/temp", payload("hi"), qos::at_most_once, false}}}));
  EXPECT_EQ(stats.qos_m1_published, 1U);
  EXPECT_EQ(stats.qos_m1_dropped, 0U);
  EXPECT_EQ(stats.unknown_sender, 0U);
  EXPECT_EQ(table->size(), 0U);
}

TEST_F(SessionTable, qos_minus_one_short_topic_from_address_without_session_is_published) {
  EXPECT_EQ(feed("udp:Z", publish_qm1_short),
            (routed_list{{"", "udp:Z",
                          upstream_publish{0, "ab", payload("hi"), qos::at_most_once, false}}}));
  EXPECT_EQ(stats.qos_m1_published, 1U);
  EXPECT_EQ(table->size(), 0U);
}

TEST_F(SessionTable, qos_minus_one_passes_retain_through) {
  // Flags 0x71 = QoS -1 | retain | predefined.
  EXPECT_EQ(
      feed("udp:Z", {0x09, 0x0C, 0x71, 0x00, 0x10, 0x00, 0x00, 0x68, 0x69}),
      (routed_list{{"", "udp:Z",
                    upstream_publish{0, "sensors/temp", payload("hi"), qos::at_most_once, true}}}));
  // Flags 0x72 = QoS -1 | retain | short name.
  EXPECT_EQ(feed("udp:Z", {0x09, 0x0C, 0x72, 0x61, 0x62, 0x00, 0x00, 0x68, 0x69}),
            (routed_list{
                {"", "udp:Z", upstream_publish{0, "ab", payload("hi"), qos::at_most_once, true}}}));
  EXPECT_EQ(stats.qos_m1_published, 2U);
}

TEST_F(SessionTable, qos_minus_one_from_a_connected_client_goes_on_the_gateway_connection) {
  connect_client("abc", "udp:A", connect_abc);
  EXPECT_EQ(feed("udp:A", publish_qm1_short),
            (routed_list{{"", "udp:A",
                          upstream_publish{0, "ab", payload("hi"), qos::at_most_once, false}}}));
  EXPECT_EQ(stats.qos_m1_published, 1U);
  EXPECT_EQ(stats.unexpected_messages, 0U);
}

TEST_F(SessionTable, qos_minus_one_with_unknown_predefined_id_gets_puback_invalid_topic_id) {
  EXPECT_EQ(feed("udp:Z", {0x09, 0x0C, 0x61, 0x00, 0x11, 0x00, 0x00, 0x68, 0x69}),
            (routed_list{{"", "udp:Z", raw({0x07, 0x0D, 0x00, 0x11, 0x00, 0x00, 0x02})}}));
  EXPECT_EQ(stats.qos_m1_dropped, 1U);
  EXPECT_EQ(stats.invalid_topic_id, 1U);
  EXPECT_EQ(stats.qos_m1_published, 0U);
}

TEST_F(SessionTable, qos_minus_one_with_normal_topic_id_gets_puback_not_supported) {
  EXPECT_EQ(feed("udp:Z", {0x09, 0x0C, 0x60, 0x00, 0x01, 0x00, 0x00, 0x68, 0x69}),
            (routed_list{{"", "udp:Z", raw({0x07, 0x0D, 0x00, 0x01, 0x00, 0x00, 0x03})}}));
  // Paho's non-standard long-topic form (PROTOCOL.md §2.5) is not supported either.
  EXPECT_EQ(feed("udp:Z", {0x0C, 0x0C, 0x60, 0x00, 0x03, 0x00, 0x00, 0x61, 0x2F, 0x62, 0x68, 0x69}),
            (routed_list{{"", "udp:Z", raw({0x07, 0x0D, 0x00, 0x03, 0x00, 0x00, 0x03})}}));
  EXPECT_EQ(stats.qos_m1_dropped, 2U);
  EXPECT_EQ(stats.qos_m1_published, 0U);
  EXPECT_EQ(stats.invalid_topic_id, 0U);
}

TEST_F(SessionTable, qos_minus_one_short_topic_with_wildcard_gets_puback_not_supported) {
  // Short name "a+" is not a valid topic name.
  EXPECT_EQ(feed("udp:Z", {0x09, 0x0C, 0x62, 0x61, 0x2B, 0x00, 0x00, 0x68, 0x69}),
            (routed_list{{"", "udp:Z", raw({0x07, 0x0D, 0x61, 0x2B, 0x00, 0x00, 0x03})}}));
  EXPECT_EQ(stats.qos_m1_dropped, 1U);
  EXPECT_EQ(stats.qos_m1_published, 0U);
}

// ---------------------------------------------------------------------------------------------
// Discovery

TEST_F(SessionTable, searchgw_is_answered_with_unicast_gwinfo_carrying_the_gateway_id) {
  EXPECT_EQ(feed("udp:S", {0x03, 0x01, 0x00}),
            (routed_list{{"", "udp:S", raw({0x03, 0x02, 0x07})}}));
  EXPECT_EQ(feed("udp:T", {0x03, 0x01, 0x01}),
            (routed_list{{"", "udp:T", frame_of(gwinfo{7, {}})}}));
  EXPECT_EQ(stats.frames_out, 2U);
  EXPECT_EQ(table->size(), 0U);
}

TEST_F(SessionTable, gwinfo_uses_the_configured_gateway_id) {
  make_table(table_config{1000, 1});
  EXPECT_EQ(feed("udp:S", {0x03, 0x01, 0x00}),
            (routed_list{{"", "udp:S", raw({0x03, 0x02, 0x01})}}));
}

// ---------------------------------------------------------------------------------------------
// Malformed and unexpected frames

TEST_F(SessionTable, malformed_frames_are_dropped_and_counted_by_reason) {
  struct malformed {
    const char* what;
    bytes frame;
    decode_error why;
  };
  const std::vector<malformed> cases = {
      {"empty datagram", {}, decode_error::empty},
      {"Length 0", {0x00, 0x04}, decode_error::zero_length},
      {"reserved MsgType 0x03", {0x03, 0x03, 0x00}, decode_error::reserved_type},
      {"CONNECT cut before the duration ends",
       {0x05, 0x04, 0x04, 0x01, 0x00},
       decode_error::too_short},
      {"CONNECT shorter than its Length",
       {0x09, 0x04, 0x04, 0x01, 0x00, 0x3C, 0x61, 0x62},
       decode_error::length_mismatch},
      {"CONNECT without client id",
       {0x06, 0x04, 0x04, 0x01, 0x00, 0x3C},
       decode_error::empty_client_id},
      {"CONNECT with ProtocolId 2",
       {0x09, 0x04, 0x04, 0x02, 0x00, 0x3C, 0x61, 0x62, 0x63},
       decode_error::bad_protocol_id},
      {"a single byte", {0x05}, decode_error::missing_type},
      {"long-form marker only", {0x01, 0x00}, decode_error::truncated_length},
      {"PUBLISH with TopicIdType 0b11",
       {0x09, 0x0C, 0x03, 0x00, 0x01, 0x00, 0x00, 0x68, 0x69},
       decode_error::reserved_topic_id_type},
      {"SUBSCRIBE with QoS -1",
       {0x08, 0x12, 0x60, 0x00, 0x04, 0x61, 0x2F, 0x23},
       decode_error::invalid_qos},
      {"REGISTER without a name",
       {0x06, 0x0A, 0x00, 0x00, 0x00, 0x01},
       decode_error::empty_topic_name},
      {"DISCONNECT of 5 bytes", {0x05, 0x18, 0x01, 0x2C, 0x00}, decode_error::too_long},
      {"encapsulation without inner frame", {0x03, 0xFE, 0x00}, decode_error::bad_encapsulation},
  };
  connect_client("abc", "udp:A", connect_abc);
  const counters before = stats;
  std::array<std::uint64_t, decode_error_count> expected{};
  std::uint64_t frames_in = before.frames_in;

  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    now += 1s;
    const auto deadline = table->next_deadline();
    // From the client's own address and from a stranger: dropped, nothing answered.
    EXPECT_EQ(feed("udp:A", c.frame), routed_list{});
    EXPECT_EQ(feed("udp:X", c.frame), routed_list{});
    expected[static_cast<std::size_t>(c.why)] += 2;
    frames_in += 2;
    EXPECT_EQ(stats.decode_errors, expected);
    EXPECT_EQ(stats.frames_in, frames_in);
    // Not a sign of life: the keep-alive deadline did not move.
    EXPECT_EQ(table->next_deadline(), deadline);

    // The well-behaved client is unaffected.
    EXPECT_EQ(feed("udp:A", pingreq_plain), (routed_list{{"abc", "udp:A", raw({0x02, 0x17})}}));
    ++frames_in;
    EXPECT_EQ(table->next_deadline(), now + 90s);
  }
  for (std::size_t i = 0; i < decode_error_count; ++i) {
    EXPECT_EQ(expected[i], 2U) << "decode_error " << to_string(static_cast<decode_error>(i))
                               << " untested";
  }
  EXPECT_EQ(table->size(), 1U);
  EXPECT_EQ(table->find("abc")->state(), session_state::active);
  EXPECT_EQ(stats.unknown_sender, before.unknown_sender);
  EXPECT_EQ(stats.unexpected_messages, before.unexpected_messages);
}

TEST_F(SessionTable, gateway_to_client_messages_sent_to_the_gateway_are_counted_as_unexpected) {
  connect_client("abc", "udp:A", connect_abc);
  const std::vector<std::pair<const char*, bytes>> cases = {
      {"ADVERTISE", {0x05, 0x00, 0x01, 0x03, 0x84}},
      {"GWINFO from a gateway", {0x03, 0x02, 0x01}},
      {"GWINFO from a client", {0x05, 0x02, 0x01, 0x12, 0x34}},
      {"CONNACK", connack_accepted},
      {"WILLTOPICREQ", {0x02, 0x06}},
      {"WILLMSGREQ", {0x02, 0x08}},
      {"SUBACK", {0x08, 0x13, 0x20, 0x00, 0x01, 0x00, 0x04, 0x00}},
      {"UNSUBACK", {0x04, 0x15, 0x00, 0x07}},
      {"WILLTOPICRESP", {0x03, 0x1B, 0x00}},
      {"WILLMSGRESP", {0x03, 0x1D, 0x00}},
      {"encapsulated (the runtime unwraps these)", {0x05, 0xFE, 0x00, 0x0A, 0x0B, 0x02, 0x16}},
  };
  std::uint64_t n = 0;
  for (const auto& [what, frame] : cases) {
    SCOPED_TRACE(what);
    EXPECT_EQ(feed("udp:A", frame), routed_list{});
    EXPECT_EQ(feed("udp:X", frame), routed_list{});
    n += 2;
    EXPECT_EQ(stats.unexpected_messages, n);
  }
  EXPECT_EQ(stats.unknown_sender, 0U);
  EXPECT_EQ(table->size(), 1U);
  EXPECT_EQ(table->find("abc")->state(), session_state::active);
  EXPECT_EQ(feed("udp:A", pingreq_plain), (routed_list{{"abc", "udp:A", raw({0x02, 0x17})}}));
}

// ---------------------------------------------------------------------------------------------
// max_clients

TEST_F(SessionTable, new_client_beyond_max_clients_gets_connack_congestion) {
  make_table(table_config{2, 7});
  connect_client("c1", "udp:1", connect_frame("c1", 60));
  connect_client("c2", "udp:2", connect_frame("c2", 60));
  ASSERT_EQ(table->size(), 2U);

  EXPECT_EQ(feed("udp:3", {0x08, 0x04, 0x04, 0x01, 0x00, 0x3C, 0x63, 0x33}),
            (routed_list{{"", "udp:3", raw({0x03, 0x05, 0x01})},
                         {"c3", "udp:3", report{event::congestion, "clients"}}}));
  EXPECT_EQ(stats.congestion, 1U);
  EXPECT_EQ(stats.connects_rejected, 1U);
  EXPECT_EQ(table->size(), 2U);
  EXPECT_EQ(table->find("c3"), nullptr);
  EXPECT_EQ(table->find_by_endpoint("udp:3"), nullptr);

  // A known client id still gets in, from its old address or a new one.
  EXPECT_EQ(feed("udp:1", connect_frame("c1", 60)),
            (routed_list{{"c1", "udp:1", upstream_connect{true, 60, std::nullopt}}}));
  EXPECT_EQ(feed("udp:2b", connect_frame("c2", 60)),
            (routed_list{{"c2", "udp:2b", upstream_connect{true, 60, std::nullopt}}}));
  EXPECT_EQ(upstream("c2", upstream_connected{}),
            (routed_list{{"c2", "udp:2b", raw({0x03, 0x05, 0x00})},
                         {"c2", "udp:2b", report{event::connected, {}}}}));
  EXPECT_EQ(table->size(), 2U);
  EXPECT_EQ(stats.congestion, 1U);
  EXPECT_EQ(stats.connects_rejected, 1U);
}

// A kept session of a client that never comes back holds a slot until session_expiry frees it.
TEST_F(SessionTable, an_expired_kept_session_frees_its_max_clients_slot) {
  session_cfg.session_expiry = 600s;
  make_table(table_config{1, 7});
  table->track_changes(true);  // as a gateway with a store does
  connect_client("abc", "udp:A", connect_abc_keep);
  EXPECT_EQ(feed("udp:A", disconnect_plain),
            (routed_list{{"abc", "udp:A", raw({0x02, 0x18})},
                         {"abc", "udp:A", upstream_disconnect{}},
                         {"abc", "udp:A", report{event::disconnected, {}}}}));
  ASSERT_EQ(table->size(), 1U);
  EXPECT_EQ(feed("udp:3", connect_frame("c3", 60)),
            (routed_list{{"", "udp:3", raw({0x03, 0x05, 0x01})},
                         {"c3", "udp:3", report{event::congestion, "clients"}}}));
  ASSERT_EQ(table->next_deadline(), now + 600s);
  EXPECT_EQ(tick(now + 600s),
            (routed_list{{"abc", "udp:A", report{event::session_expired, "600 s"}},
                         {"abc", "udp:A", report{event::session_ended, {}}}}));
  EXPECT_EQ(table->size(), 0U);
  EXPECT_EQ(table->find("abc"), nullptr);
  EXPECT_EQ(table->find_by_endpoint("udp:A"), nullptr);
  EXPECT_EQ(table->next_deadline(), std::nullopt);
  const auto changed = table->take_changed();
  EXPECT_NE(std::find(changed.begin(), changed.end(), "abc"), changed.end());  // the store deletes it
  now += 600s;
  EXPECT_EQ(feed("udp:3", connect_frame("c3", 60)), (routed_list{{"c3", "udp:3", upstream_connect{true, 60, std::nullopt}}}));
  EXPECT_EQ(stats.sessions_expired, 1U);
}

// Without a store nobody drains the changed set: it must not keep every client id ever seen.
TEST_F(SessionTable, changed_sessions_are_recorded_only_while_tracked) {
  make_table(table_config{10, 7});
  connect_client("c1", "udp:1", connect_frame("c1", 60));
  EXPECT_TRUE(table->take_changed().empty());
  table->track_changes(true);
  connect_client("c2", "udp:2", connect_frame("c2", 60));
  EXPECT_EQ(table->take_changed(), std::vector<std::string>{"c2"});
  EXPECT_TRUE(table->take_changed().empty());
  table->track_changes(false);
  feed("udp:1", connect_frame("c1", 60));
  EXPECT_TRUE(table->take_changed().empty());
}

TEST_F(SessionTable, connect_storm_beyond_max_clients_is_answered_and_counted_every_time_but_logged_once) {
  make_table(table_config{1, 7});
  connect_client("c1", "udp:1", connect_frame("c1", 60));
  for (int i = 0; i < 50; ++i) {
    const std::string id = "storm" + std::to_string(i);
    const std::string ep = "udp:s" + std::to_string(i);
    routed_list want{{"", ep, frame_of(connack{return_code::congestion})}};
    if (i == 0) want.push_back({id, ep, report{event::congestion, "clients"}});
    EXPECT_EQ(feed(ep, connect_frame(id, 60)), want) << i;
  }
  EXPECT_EQ(stats.congestion, 50U);
  EXPECT_EQ(stats.connects_rejected, 50U);
  EXPECT_EQ(table->size(), 1U);
  // Room again, then full again: that new episode is logged once more.
  ASSERT_EQ(feed("udp:1", disconnect_plain).size(), 4U);
  ASSERT_EQ(table->size(), 0U);
  EXPECT_EQ(feed("udp:n", connect_frame("n", 60)), (routed_list{{"n", "udp:n", upstream_connect{true, 60, std::nullopt}}}));
  EXPECT_EQ(feed("udp:m", connect_frame("m", 60)),
            (routed_list{{"", "udp:m", frame_of(connack{return_code::congestion})},
                         {"m", "udp:m", report{event::congestion, "clients"}}}));
}

TEST_F(SessionTable, slot_freed_by_a_clean_disconnect_admits_a_new_client) {
  make_table(table_config{2, 7});
  connect_client("c1", "udp:1", connect_frame("c1", 60));
  connect_client("c2", "udp:2", connect_frame("c2", 60));
  ASSERT_EQ(feed("udp:2", disconnect_plain).size(), 4U);
  ASSERT_EQ(table->size(), 1U);
  EXPECT_EQ(feed("udp:3", connect_frame("c3", 60)),
            (routed_list{{"c3", "udp:3", upstream_connect{true, 60, std::nullopt}}}));
  EXPECT_EQ(table->size(), 2U);
  EXPECT_EQ(stats.congestion, 0U);
}

TEST_F(SessionTable, max_clients_counts_sessions_still_connecting) {
  make_table(table_config{1, 7});
  EXPECT_EQ(feed("udp:1", connect_frame("c1", 60)),
            (routed_list{{"c1", "udp:1", upstream_connect{true, 60, std::nullopt}}}));
  EXPECT_EQ(feed("udp:2", connect_frame("c2", 60)),
            (routed_list{{"", "udp:2", frame_of(connack{return_code::congestion})},
                         {"c2", "udp:2", report{event::congestion, "clients"}}}));
}

// A clean-session CONNECT that never becomes a connection (broker refused it, or timed out) leaves
// nothing worth keeping; it must not hold one of the max_clients slots.
TEST_F(SessionTable, clean_session_refused_by_the_broker_does_not_hold_a_slot) {
  make_table(table_config{1, 7});
  ASSERT_EQ(feed("udp:1", connect_frame("c1", 60)).size(), 1U);
  EXPECT_EQ(upstream("c1", upstream_refused{"not authorized"}),
            (routed_list{{"c1", "udp:1", raw({0x03, 0x05, 0x03})},
                         {"c1", "udp:1", report{event::connect_refused, "not authorized"}},
                         {"c1", "udp:1", report{event::session_ended, {}}}}));
  EXPECT_EQ(table->size(), 0U);
  EXPECT_EQ(feed("udp:2", connect_frame("c2", 60)),
            (routed_list{{"c2", "udp:2", upstream_connect{true, 60, std::nullopt}}}));
}

TEST_F(SessionTable, clean_session_connect_timeout_does_not_hold_a_slot) {
  make_table(table_config{1, 7});
  ASSERT_EQ(feed("udp:1", connect_frame("c1", 60)).size(), 1U);
  EXPECT_EQ(table->next_deadline(), now + session_cfg.connect_timeout);
  EXPECT_EQ(tick(now + session_cfg.connect_timeout),
            (routed_list{{"c1", "udp:1", upstream_disconnect{}},
                         {"c1", "udp:1", raw({0x03, 0x05, 0x01})},
                         {"c1", "udp:1", report{event::connect_timeout, {}}},
                         {"c1", "udp:1", report{event::session_ended, {}}}}));
  EXPECT_EQ(table->size(), 0U);
  EXPECT_EQ(table->next_deadline(), std::nullopt);
}

TEST_F(SessionTable, clean_session_with_invalid_will_topic_does_not_hold_a_slot) {
  make_table(table_config{1, 7});
  EXPECT_EQ(feed("udp:1", {0x09, 0x04, 0x0C, 0x01, 0x00, 0x3C, 0x61, 0x62, 0x63}),
            (routed_list{{"abc", "udp:1", raw({0x02, 0x06})}}));
  // WILLTOPIC QoS 0 "a/+": a wildcard is not a topic name.
  EXPECT_EQ(
      feed("udp:1", {0x06, 0x07, 0x00, 0x61, 0x2F, 0x2B}),
      (routed_list{{"abc", "udp:1", raw({0x03, 0x05, 0x03})},
                   {"abc", "udp:1", report{event::will_handshake_failed, "invalid will topic"}},
                   {"abc", "udp:1", report{event::session_ended, {}}}}));
  EXPECT_EQ(table->size(), 0U);
  EXPECT_EQ(table->find_by_endpoint("udp:1"), nullptr);
}

TEST_F(SessionTable, clean_session_false_refused_by_the_broker_is_kept) {
  ASSERT_EQ(feed("udp:1", connect_frame("c1", 60, false)).size(), 1U);
  EXPECT_EQ(upstream("c1", upstream_refused{"not authorized"}),
            (routed_list{{"c1", "udp:1", raw({0x03, 0x05, 0x03})},
                         {"c1", "udp:1", report{event::connect_refused, "not authorized"}}}));
  EXPECT_EQ(table->size(), 1U);
  ASSERT_NE(table->find("c1"), nullptr);
  EXPECT_EQ(table->find("c1")->state(), session_state::disconnected);
}

// ---------------------------------------------------------------------------------------------
// Forgetting sessions

TEST_F(SessionTable, clean_session_client_that_disconnects_is_forgotten) {
  connect_client("abc", "udp:A", connect_abc);
  EXPECT_EQ(feed("udp:A", disconnect_plain),
            (routed_list{{"abc", "udp:A", raw({0x02, 0x18})},
                         {"abc", "udp:A", upstream_disconnect{}},
                         {"abc", "udp:A", report{event::disconnected, {}}},
                         {"abc", "udp:A", report{event::session_ended, {}}}}));
  EXPECT_EQ(table->size(), 0U);
  EXPECT_EQ(table->find("abc"), nullptr);
  EXPECT_EQ(table->find_by_endpoint("udp:A"), nullptr);
  EXPECT_EQ(table->endpoint_of("abc"), nullptr);
  EXPECT_EQ(table->next_deadline(), std::nullopt);
  EXPECT_EQ(stats.disconnects, 1U);

  // Its address is unknown now; broker events for it are ignored.
  EXPECT_EQ(feed("udp:A", publish_qos0), (routed_list{{"", "udp:A", raw({0x02, 0x18})}}));
  EXPECT_EQ(stats.unknown_sender, 1U);
  EXPECT_EQ(upstream("abc", upstream_message{"ab", payload("hi"), qos::at_least_once, false}),
            routed_list{});
}

TEST_F(SessionTable, clean_session_false_client_that_disconnects_is_kept) {
  connect_client("abc", "udp:A", connect_abc_keep);
  EXPECT_EQ(feed("udp:A", disconnect_plain),
            (routed_list{{"abc", "udp:A", raw({0x02, 0x18})},
                         {"abc", "udp:A", upstream_disconnect{}},
                         {"abc", "udp:A", report{event::disconnected, {}}}}));
  EXPECT_EQ(table->size(), 1U);
  ASSERT_NE(table->find("abc"), nullptr);
  EXPECT_EQ(table->find("abc")->state(), session_state::disconnected);
  EXPECT_EQ(table->find_by_endpoint("udp:A"), table->find("abc"));
  EXPECT_EQ(table->next_deadline(), std::nullopt);

  // The session itself tells the client to reconnect.
  EXPECT_EQ(feed("udp:A", publish_qos0), (routed_list{{"abc", "udp:A", raw({0x02, 0x18})}}));
  EXPECT_EQ(stats.unknown_sender, 1U);
  // And it can come back.
  EXPECT_EQ(feed("udp:A", connect_abc_keep),
            (routed_list{{"abc", "udp:A", upstream_connect{false, 60, std::nullopt}}}));
}

// ---------------------------------------------------------------------------------------------
// Timers

TEST_F(SessionTable, tick_at_next_deadline_loses_only_the_client_that_is_due) {
  const time_point t0 = now;
  connect_client("k1", "udp:1", connect_frame("k1", 10, false));  // lost after 15 s
  connect_client("k2", "udp:2", connect_frame("k2", 60));         // lost after 90 s
  EXPECT_EQ(table->next_deadline(), t0 + 15s);

  EXPECT_EQ(tick(t0 + 15s - 1ms), routed_list{});
  EXPECT_EQ(tick(t0 + 15s), (routed_list{{"k1", "udp:1", report{event::lost, "keep-alive"}},
                                         {"k1", "udp:1", upstream_disconnect{}}}));
  EXPECT_EQ(stats.lost_keep_alive, 1U);
  EXPECT_EQ(table->find("k1")->state(), session_state::lost);
  EXPECT_EQ(table->find("k2")->state(), session_state::active);
  EXPECT_EQ(table->size(), 2U);
  EXPECT_EQ(table->next_deadline(), t0 + 90s);

  // A tick with nothing due does nothing, and the next deadline stays.
  EXPECT_EQ(tick(t0 + 20s), routed_list{});
  EXPECT_EQ(table->next_deadline(), t0 + 90s);

  // Activity moves k2's deadline.
  now = t0 + 30s;
  EXPECT_EQ(feed("udp:2", pingreq_plain), (routed_list{{"k2", "udp:2", raw({0x02, 0x17})}}));
  EXPECT_EQ(table->next_deadline(), t0 + 120s);
  EXPECT_EQ(tick(t0 + 90s), routed_list{});
  EXPECT_EQ(tick(t0 + 120s), (routed_list{{"k2", "udp:2", report{event::lost, "keep-alive"}},
                                          {"k2", "udp:2", upstream_disconnect{}},
                                          {"k2", "udp:2", report{event::session_ended, {}}}}));
  EXPECT_EQ(table->size(), 1U);  // clean session k2 is forgotten
  EXPECT_EQ(table->find("k2"), nullptr);
  EXPECT_EQ(table->next_deadline(), std::nullopt);
}

TEST_F(SessionTable, tick_late_handles_every_overdue_session) {
  const time_point t0 = now;
  connect_client("k1", "udp:1", connect_frame("k1", 10, false));
  connect_client("k2", "udp:2", connect_frame("k2", 20, false));
  EXPECT_EQ(tick(t0 + 1h), (routed_list{{"k1", "udp:1", report{event::lost, "keep-alive"}},
                                        {"k1", "udp:1", upstream_disconnect{}},
                                        {"k2", "udp:2", report{event::lost, "keep-alive"}},
                                        {"k2", "udp:2", upstream_disconnect{}}}));
  EXPECT_EQ(table->next_deadline(), std::nullopt);
}

// The wake-up delivery waits for a SUBSCRIBE the broker has not answered (its SUBACK must come
// first, PROTOCOL.md §3.6); with the broker unreachable the awake cycle must still end.
TEST_F(SessionTable, awake_client_waiting_for_a_subscribe_still_gets_its_pingresp) {
  connect_client("abc", "udp:A", connect_abc_keep);
  EXPECT_EQ(feed("udp:A", subscribe_short_ab),
            (routed_list{{"abc", "udp:A", upstream_subscribe{1, "ab", qos::at_most_once}}}));
  ASSERT_EQ(feed("udp:A", disconnect_sleep_300).size(), 2U);
  EXPECT_EQ(upstream("abc", upstream_message{"ab", payload("hi"), qos::at_most_once, false}),
            routed_list{});
  EXPECT_EQ(upstream("abc", upstream_lost{}), routed_list{});
  EXPECT_EQ(feed("udp:A", pingreq_abc),
            (routed_list{{"abc", "udp:A", report{event::awake, "1 buffered"}}}));
  EXPECT_EQ(table->find("abc")->state(), session_state::awake);
  ASSERT_EQ(table->next_deadline(), now + session_cfg.retry_interval);
  EXPECT_EQ(tick(now + session_cfg.retry_interval),
            (routed_list{{"abc", "udp:A", raw({0x02, 0x17})}, {"abc", "udp:A", report{event::asleep, "300 s"}}}));
  EXPECT_EQ(table->find("abc")->state(), session_state::asleep);
  EXPECT_EQ(table->find("abc")->queued(), 1U);
}

TEST_F(SessionTable, no_sessions_means_no_deadline) {
  EXPECT_EQ(table->next_deadline(), std::nullopt);
  EXPECT_EQ(tick(now + 24h), routed_list{});
}

// ---------------------------------------------------------------------------------------------
// Broker events

TEST_F(SessionTable, upstream_event_for_unknown_client_id_does_nothing) {
  connect_client("abc", "udp:A", connect_abc);
  const counters before = stats;
  EXPECT_EQ(upstream("xyz", upstream_connected{}), routed_list{});
  EXPECT_EQ(upstream("xyz", upstream_refused{"no"}), routed_list{});
  EXPECT_EQ(upstream("xyz", upstream_lost{}), routed_list{});
  EXPECT_EQ(upstream("xyz", upstream_published{1}), routed_list{});
  EXPECT_EQ(upstream("xyz", upstream_subscribed{1, qos::at_least_once}), routed_list{});
  EXPECT_EQ(upstream("xyz", upstream_unsubscribed{1}), routed_list{});
  EXPECT_EQ(upstream("xyz", upstream_message{"ab", payload("hi"), qos::exactly_once, true}),
            routed_list{});
  EXPECT_EQ(upstream("", upstream_message{"ab", payload("hi"), qos::at_most_once, false}),
            routed_list{});
  EXPECT_EQ(table->size(), 1U);
  EXPECT_EQ(stats.frames_out, before.frames_out);
  EXPECT_EQ(stats.dropped_qos0, before.dropped_qos0);
}

TEST_F(SessionTable, upstream_message_for_subscribed_client_goes_to_its_current_endpoint) {
  connect_client("abc", "udp:A", connect_abc_keep);
  EXPECT_EQ(feed("udp:A", subscribe_short_ab),
            (routed_list{{"abc", "udp:A", upstream_subscribe{1, "ab", qos::at_most_once}}}));
  // Short names carry no topic id in SUBACK.
  EXPECT_EQ(upstream("abc", upstream_subscribed{1, qos::at_most_once}),
            (routed_list{{"abc", "udp:A", raw({0x08, 0x13, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00})}}));
  const bytes publish_ab = {0x09, 0x0C, 0x02, 0x61, 0x62, 0x00, 0x00, 0x68, 0x69};
  EXPECT_EQ(upstream("abc", upstream_message{"ab", payload("hi"), qos::at_most_once, false}),
            (routed_list{{"abc", "udp:A", send_frame{publish_ab}}}));

  // Taken over from udp:B, broker session kept: the next message goes to udp:B.
  now += 5s;
  EXPECT_EQ(feed("udp:B", connect_abc_keep),
            (routed_list{{"abc", "udp:B", upstream_connect{false, 60, std::nullopt}}}));
  EXPECT_EQ(upstream("abc", upstream_connected{true}),
            (routed_list{{"abc", "udp:B", raw({0x03, 0x05, 0x00})},
                         {"abc", "udp:B", report{event::connected, {}}}}));
  EXPECT_EQ(upstream("abc", upstream_message{"ab", payload("hi"), qos::at_most_once, false}),
            (routed_list{{"abc", "udp:B", send_frame{publish_ab}}}));
  EXPECT_EQ(stats.takeovers, 1U);
  EXPECT_EQ(stats.publishes_to_clients, 2U);
}

TEST_F(SessionTable, qos1_delivery_is_acknowledged_through_the_table) {
  connect_client("abc", "udp:A", connect_abc);
  // SUBSCRIBE QoS 1 to the name "a/b": the gateway assigns topic id 1.
  EXPECT_EQ(feed("udp:A", {0x08, 0x12, 0x20, 0x00, 0x04, 0x61, 0x2F, 0x62}),
            (routed_list{{"abc", "udp:A", upstream_subscribe{1, "a/b", qos::at_least_once}}}));
  EXPECT_EQ(upstream("abc", upstream_subscribed{1, qos::at_least_once}),
            (routed_list{{"abc", "udp:A", raw({0x08, 0x13, 0x20, 0x00, 0x01, 0x00, 0x04, 0x00})}}));
  EXPECT_EQ(
      upstream("abc", upstream_message{"a/b", payload("hi"), qos::at_least_once, false}),
      (routed_list{{"abc", "udp:A", raw({0x09, 0x0C, 0x20, 0x00, 0x01, 0x00, 0x01, 0x68, 0x69})}}));
  EXPECT_EQ(table->next_deadline(), now + session_cfg.retry_interval);
  EXPECT_EQ(feed("udp:A", {0x07, 0x0D, 0x00, 0x01, 0x00, 0x01, 0x00}), routed_list{});
  EXPECT_EQ(table->find("abc")->queued(), 0U);
  EXPECT_EQ(table->next_deadline(), now + 90s);
}

TEST_F(SessionTable, client_publish_is_routed_to_the_broker_with_its_client_id) {
  connect_client("abc", "udp:A", connect_abc);
  EXPECT_EQ(feed("udp:A", register_ab),
            (routed_list{{"abc", "udp:A", raw({0x07, 0x0B, 0x00, 0x01, 0x00, 0x01, 0x00})}}));
  EXPECT_EQ(feed("udp:A", publish_qos1_retain),
            (routed_list{{"abc", "udp:A",
                          upstream_publish{1, "a/b", payload("hi"), qos::at_least_once, true}}}));
  EXPECT_EQ(upstream("abc", upstream_published{1}),
            (routed_list{{"abc", "udp:A", raw({0x07, 0x0D, 0x00, 0x01, 0x00, 0x02, 0x00})}}));
}

// ---------------------------------------------------------------------------------------------
// Admission (the clients file): unknown and misplaced clients, QoS -1, topic permissions

class SessionTableAdmission : public SessionTable {
 protected:
  SessionTableAdmission() {
    client_rule abc{"abc", "10.0.0.7", std::vector<std::string>{"a/#"}, std::vector<std::string>{"ab"}, {}};
    abc.predefined.add(predefined_temp, "sensors/temp");
    abc.predefined.add(0x0020, "own/topic");
    abc.predefined.add(0x0021, "a/x");
    client_rule open{"open", "", std::nullopt, std::nullopt, {}};
    rules = admission({abc, open});
    table->set_admission(&rules);
  }
  admission rules;
};

TEST_F(SessionTableAdmission, unknown_client_id_gets_connack_not_supported_reported_once) {
  const auto stranger = connect_frame("zzz", 60);
  EXPECT_EQ(feed("udp0/10.0.0.7:1", stranger),
            (routed_list{{"", "udp0/10.0.0.7:1", raw({0x03, 0x05, 0x03})},
                         {"zzz", "udp0/10.0.0.7:1", report{event::admission_refused, "client id not in the clients file"}}}));
  EXPECT_EQ(feed("udp0/10.0.0.7:1", stranger), (routed_list{{"", "udp0/10.0.0.7:1", raw({0x03, 0x05, 0x03})}}));
  EXPECT_EQ(stats.admission_refused, 2U);
  EXPECT_EQ(stats.connects_rejected, 2U);
  EXPECT_EQ(table->size(), 0U);
}

TEST_F(SessionTableAdmission, listed_client_from_another_address_is_refused_without_touching_its_session) {
  connect_client("abc", "udp0/10.0.0.7:1", connect_abc);
  EXPECT_EQ(feed("udp0/10.6.6.6:1", connect_abc),
            (routed_list{{"", "udp0/10.6.6.6:1", raw({0x03, 0x05, 0x03})},
                         {"abc", "udp0/10.6.6.6:1",
                          report{event::admission_refused, "address not allowed for this client id"}}}));
  // A PINGREQ(client id) from the spoofed address is dropped: no answer, no rebinding.
  EXPECT_EQ(feed("udp0/10.6.6.6:1", pingreq_abc), routed_list{});
  EXPECT_EQ(*table->endpoint_of("abc"), "udp0/10.0.0.7:1");
  EXPECT_EQ(stats.takeovers, 0U);
  EXPECT_EQ(stats.admission_refused, 2U);
  // Another port of the bound host is fine (NAT, a new socket).
  EXPECT_EQ(feed("udp0/10.0.0.7:2", pingreq_abc), (routed_list{{"abc", "udp0/10.0.0.7:2", raw({0x02, 0x17})}}));
}

TEST_F(SessionTableAdmission, qos_minus_one_only_from_listed_addresses_with_their_predefined_topics) {
  // Not listed: no answer to the sender, reported once per address, counted every time.
  EXPECT_EQ(feed("udp0/10.6.6.6:1", publish_qm1_predefined),
            (routed_list{{"", "udp0/10.6.6.6:1",
                          report{event::admission_refused, "QoS -1 from an address the clients file does not list"}}}));
  EXPECT_EQ(feed("udp0/10.6.6.6:1", publish_qm1_predefined), routed_list{});
  EXPECT_EQ(stats.qos_m1_refused, 2U);
  EXPECT_EQ(stats.qos_m1_published, 0U);
  // From the bound address: published. Its own predefined id works too, but only within its
  // publish patterns ("a/#"): sensors/temp is refused (counted), own/topic as well.
  const bytes own_topic = {0x09, 0x0C, 0x61, 0x00, 0x20, 0x00, 0x00, 0x68, 0x69};
  EXPECT_EQ(feed("udp0/10.0.0.7:1", own_topic), routed_list{});
  EXPECT_EQ(stats.publishes_denied, 1U);
  const bytes short_a1 = {0x09, 0x0C, 0x62, 0x61, 0x31, 0x00, 0x00, 0x68, 0x69};  // "a1": not a/...
  EXPECT_EQ(feed("udp0/10.0.0.7:1", short_a1), routed_list{});
  EXPECT_EQ(stats.publishes_denied, 2U);
  EXPECT_EQ(stats.qos_m1_published, 0U);
  // Its own predefined id within a/#: published on the gateway's connection.
  const bytes own_a_x = {0x09, 0x0C, 0x61, 0x00, 0x21, 0x00, 0x00, 0x68, 0x69};
  EXPECT_EQ(feed("udp0/10.0.0.7:1", own_a_x),
            (routed_list{{"", "udp0/10.0.0.7:1", upstream_publish{0, "a/x", payload("hi"), qos::at_most_once, false}}}));
  EXPECT_EQ(stats.qos_m1_published, 1U);
}

TEST_F(SessionTableAdmission, publish_and_subscribe_outside_the_patterns_are_refused_not_supported) {
  connect_client("abc", "udp0/10.0.0.7:1", connect_abc);
  // REGISTER a/b then PUBLISH on it: allowed.
  const auto reg = feed("udp0/10.0.0.7:1", register_ab);
  ASSERT_EQ(reg.size(), 1U);
  EXPECT_EQ(feed("udp0/10.0.0.7:1", publish_qos0), (routed_list{{"abc", "udp0/10.0.0.7:1",
                                                                 upstream_publish{0, "a/b", payload("hi"), qos::at_most_once, false}}}));
  // The predefined sensors/temp is not within a/#: PUBACK not supported, at QoS 1.
  const bytes publish_temp_qos1 = {0x09, 0x0C, 0x21, 0x00, 0x10, 0x00, 0x05, 0x68, 0x69};
  EXPECT_EQ(feed("udp0/10.0.0.7:1", publish_temp_qos1),
            (routed_list{{"abc", "udp0/10.0.0.7:1", frame_of(puback{0x0010, 5, return_code::not_supported})}}));
  EXPECT_EQ(stats.publishes_denied, 1U);
  // SUBSCRIBE a/# is outside "ab"; the short name ab is exactly it.
  EXPECT_EQ(feed("udp0/10.0.0.7:1", subscribe_wildcard),
            (routed_list{{"abc", "udp0/10.0.0.7:1", frame_of(suback{qos::at_most_once, 0, 4, return_code::not_supported})}}));
  EXPECT_EQ(stats.subscribes_denied, 1U);
  const auto sub = feed("udp0/10.0.0.7:1", subscribe_short_ab);
  ASSERT_EQ(sub.size(), 1U);
  EXPECT_TRUE(std::holds_alternative<upstream_subscribe>(sub[0].act));
}

TEST_F(SessionTableAdmission, a_will_outside_the_publish_patterns_refuses_the_connect) {
  const bytes connect_will = encode(message{connect{true, true, 60, "abc"}});
  EXPECT_EQ(feed("udp0/10.0.0.7:1", connect_will), (routed_list{{"abc", "udp0/10.0.0.7:1", raw({0x02, 0x06})}}));
  const bytes willtopic_x = encode(message{willtopic{qos::at_least_once, false, "x/dead"}});
  EXPECT_EQ(feed("udp0/10.0.0.7:1", willtopic_x),
            (routed_list{{"abc", "udp0/10.0.0.7:1", raw({0x03, 0x05, 0x03})},
                         {"abc", "udp0/10.0.0.7:1",
                          report{event::will_handshake_failed, "will topic 'x/dead' not allowed by the clients file"}},
                         {"abc", "udp0/10.0.0.7:1", report{event::session_ended, {}}}}));
  EXPECT_EQ(stats.publishes_denied, 1U);
}

TEST_F(SessionTableAdmission, an_unbound_listed_client_connects_from_anywhere) {
  connect_client("open", "udp0/192.0.2.1:9", connect_frame("open", 60));
  EXPECT_EQ(stats.admission_refused, 0U);
}

TEST_F(SessionTable, offer_asks_the_clients_session_and_its_resume_is_routed_to_it) {
  session_cfg.max_queued = 1;
  make_table(table_config{1000, 7});
  EXPECT_TRUE(table->offer("nobody", qos::exactly_once));  // no session: nothing withholds
  connect_client("abc", "udp:A", connect_abc);
  EXPECT_TRUE(table->offer("abc", qos::at_least_once));
  // PUBLISH QoS 1 on the predefined id 0x0010, msg id 1, "hi".
  EXPECT_EQ(upstream("abc", upstream_message{"sensors/temp", {0x68, 0x69}, qos::at_least_once, false}),
            (routed_list{{"abc", "udp:A", raw({0x09, 0x0C, 0x21, 0x00, 0x10, 0x00, 0x01, 0x68, 0x69})}}));
  EXPECT_FALSE(table->offer("abc", qos::at_least_once));
  EXPECT_EQ(feed("udp:A", bytes{0x07, 0x0D, 0x00, 0x10, 0x00, 0x01, 0x00}),
            (routed_list{{"abc", "udp:A", upstream_resume{}}}));
}

}  // namespace
}  // namespace mqttsn
