// Every flow of one client's session, with exact byte vectors and the complete list of actions.
#include "mqttsn/session.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <set>

#include "mqttsn/codec.hpp"
#include "test_support.hpp"

namespace mqttsn {
namespace {

using namespace std::chrono_literals;

class Session : public ::testing::Test {
 protected:
  Session() {
    cfg.retry_interval = 10s;
    cfg.retry_count = 3;
    cfg.connect_timeout = 5s;
    cfg.keep_alive_grace = 1.5;
    pre.add(0x0010, "sensors/predef");
    pre.add(0x0020, "cmd/predef");
  }

  session& s() {
    if (!s_) s_ = std::make_unique<session>("abc", cfg, pre, stats);
    return *s_;
  }

  // A client frame, decoded as the gateway would.
  actions in(std::initializer_list<std::uint8_t> frame) {
    auto d = decode(bytes(frame));
    EXPECT_TRUE(std::holds_alternative<message>(d)) << "test vector does not decode";
    if (!std::holds_alternative<message>(d)) return {};
    return s().handle(std::get<message>(d), now);
  }
  actions in(const message& m) { return s().handle(m, now); }
  actions up(const upstream_event& e) { return s().handle(e, now); }
  actions at(std::chrono::milliseconds since_start) {
    now = t0 + since_start;
    return s().tick(now);
  }

  void connect_active(bool clean = true, std::uint16_t keep_alive = 60) {
    ASSERT_EQ(in(connect{false, clean, keep_alive, "abc"}), (actions{upstream_connect{clean, keep_alive, {}}}));
    ASSERT_EQ(up(upstream_connected{!clean}), (actions{raw({0x03, 0x05, 0x00}), report{event::connected, ""}}));
  }

  void connect_with_will(bool clean = true, std::uint16_t keep_alive = 60) {
    ASSERT_EQ(in(connect{true, clean, keep_alive, "abc"}), (actions{raw({0x02, 0x06})}));
    ASSERT_EQ(in(willtopic{qos::at_least_once, false, "will/abc"}), (actions{raw({0x02, 0x08})}));
    ASSERT_EQ(in(willmsg{payload("bye")}),
              (actions{upstream_connect{clean, keep_alive, will_message{"will/abc", payload("bye"), qos::at_least_once, false}}}));
    ASSERT_EQ(up(upstream_connected{}), (actions{raw({0x03, 0x05, 0x00}), report{event::connected, ""}}));
  }

  // SUBSCRIBE by name, granted as asked; returns the upstream ref used.
  std::uint32_t subscribe_ok(const std::string& filter, qos q, msg_id mid, topic_id expect_id) {
    auto a = in(subscribe{false, q, topic_id_type::normal, mid, filter, 0});
    EXPECT_EQ(a.size(), 1U);
    const auto* sub = a.empty() ? nullptr : std::get_if<upstream_subscribe>(&a[0]);
    EXPECT_NE(sub, nullptr);
    if (!sub) return 0;
    EXPECT_EQ(sub->filter, filter);
    const auto ref = sub->ref;
    EXPECT_EQ(up(upstream_subscribed{ref, q}), (actions{frame_of(suback{q, expect_id, mid, return_code::accepted})}));
    return ref;
  }

  actions deliver(const std::string& topic, std::string_view data, qos q, bool retain = false) {
    return up(upstream_message{topic, payload(data), q, retain});
  }

  void go_to_sleep(std::uint16_t seconds) {
    ASSERT_EQ(in(disconnect{seconds}), (actions{raw({0x02, 0x18}), report{event::asleep, std::to_string(seconds) + " s"}}));
    ASSERT_EQ(s().state(), session_state::asleep);
  }

  session_config cfg;
  predefined_topics pre;
  counters stats;
  time_point t0 = time_point{} + 1h;
  time_point now = t0;

 private:
  std::unique_ptr<session> s_;
};

// ---------------------------------------------------------------------------------------------
// connect and will

TEST_F(Session, connack_only_after_the_broker_accepted_the_session) {
  EXPECT_EQ(in({0x09, 0x04, 0x04, 0x01, 0x00, 0x3C, 0x61, 0x62, 0x63}), (actions{upstream_connect{true, 60, {}}}));
  EXPECT_EQ(s().state(), session_state::connecting);
  EXPECT_EQ(up(upstream_connected{false}), (actions{raw({0x03, 0x05, 0x00}), report{event::connected, ""}}));
  EXPECT_EQ(s().state(), session_state::active);
  EXPECT_EQ(stats.connects, 1U);
}

TEST_F(Session, will_handshake_runs_before_the_broker_connect_and_the_will_travels_in_it) {
  EXPECT_EQ(in({0x09, 0x04, 0x0C, 0x01, 0x00, 0x3C, 0x61, 0x62, 0x63}), (actions{raw({0x02, 0x06})}));
  EXPECT_EQ(in({0x0B, 0x07, 0x20, 0x77, 0x69, 0x6C, 0x6C, 0x2F, 0x61, 0x62, 0x63}), (actions{raw({0x02, 0x08})}));
  EXPECT_EQ(in({0x05, 0x09, 0x62, 0x79, 0x65}),
            (actions{upstream_connect{true, 60, will_message{"will/abc", payload("bye"), qos::at_least_once, false}}}));
  EXPECT_EQ(up(upstream_connected{}), (actions{raw({0x03, 0x05, 0x00}), report{event::connected, ""}}));
  ASSERT_TRUE(s().will().has_value());
  EXPECT_EQ(s().will()->topic, "will/abc");
}

TEST_F(Session, empty_willtopic_deletes_the_stored_will_and_skips_willmsg) {
  connect_with_will(/*clean=*/false);
  EXPECT_EQ(in(connect{true, false, 60, "abc"}), (actions{raw({0x02, 0x06})}));
  EXPECT_EQ(in({0x02, 0x07}), (actions{upstream_connect{false, 60, {}}}));
  EXPECT_EQ(up(upstream_connected{true}), (actions{raw({0x03, 0x05, 0x00}), report{event::connected, ""}}));
  EXPECT_FALSE(s().will().has_value());
}

TEST_F(Session, session_kept_without_will_flag_keeps_the_stored_will) {
  connect_with_will(/*clean=*/false);
  EXPECT_EQ(in(connect{false, false, 60, "abc"}),
            (actions{upstream_connect{false, 60, will_message{"will/abc", payload("bye"), qos::at_least_once, false}}}));
}

TEST_F(Session, invalid_will_topic_is_refused_with_not_supported) {
  EXPECT_EQ(in(connect{true, true, 60, "abc"}), (actions{raw({0x02, 0x06})}));
  EXPECT_EQ(in(willtopic{qos::at_most_once, false, "will/#"}),
            (actions{raw({0x03, 0x05, 0x03}), report{event::will_handshake_failed, "invalid will topic"},
                     report{event::session_ended, ""}}));
  EXPECT_EQ(s().state(), session_state::disconnected);
  EXPECT_TRUE(s().ended());
}

TEST_F(Session, stalled_will_handshake_is_retried_then_dropped_without_connack) {
  EXPECT_EQ(in(connect{true, true, 60, "abc"}), (actions{raw({0x02, 0x06})}));
  EXPECT_EQ(s().next_deadline(), t0 + 10s);
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(at(10s * i), (actions{raw({0x02, 0x06})})) << "retry " << i;
  EXPECT_EQ(at(40s), (actions{report{event::will_handshake_failed, "no answer"}, report{event::session_ended, ""}}));
  EXPECT_EQ(s().state(), session_state::disconnected);
  EXPECT_EQ(s().next_deadline(), std::nullopt);
}

TEST_F(Session, stalled_willmsg_is_retried_too) {
  in(connect{true, true, 60, "abc"});
  EXPECT_EQ(in(willtopic{qos::at_most_once, false, "w"}), (actions{raw({0x02, 0x08})}));
  EXPECT_EQ(at(10s), (actions{raw({0x02, 0x08})}));
  EXPECT_EQ(in(willmsg{payload("x")}),
            (actions{upstream_connect{true, 60, will_message{"w", payload("x"), qos::at_most_once, false}}}));
}

TEST_F(Session, broker_unreachable_holds_the_connect_then_answers_congestion) {
  EXPECT_EQ(in(connect{false, true, 60, "abc"}), (actions{upstream_connect{true, 60, {}}}));
  EXPECT_EQ(s().next_deadline(), t0 + 5s);
  EXPECT_EQ(in(connect{false, true, 60, "abc"}), actions{});  // retransmitted CONNECT: still waiting
  EXPECT_EQ(up(upstream_lost{}), actions{});
  EXPECT_EQ(at(4999ms), actions{});
  EXPECT_EQ(at(5s), (actions{upstream_disconnect{}, raw({0x03, 0x05, 0x01}), report{event::connect_timeout, ""},
                             report{event::session_ended, ""}}));
  EXPECT_EQ(s().state(), session_state::disconnected);
  EXPECT_EQ(up(upstream_connected{}), actions{});  // too late: ignored
  EXPECT_EQ(s().state(), session_state::disconnected);
  EXPECT_EQ(stats.connects_rejected, 1U);
}

TEST_F(Session, broker_refusal_answers_not_supported_with_the_reason_logged) {
  in(connect{false, true, 60, "abc"});
  EXPECT_EQ(up(upstream_refused{"not authorized"}),
            (actions{raw({0x03, 0x05, 0x03}), report{event::connect_refused, "not authorized"},
                     report{event::session_ended, ""}}));
  EXPECT_EQ(s().state(), session_state::disconnected);
}

TEST_F(Session, a_kept_session_survives_a_refused_reconnect) {
  connect_active(false);
  subscribe_ok("a/#", qos::at_most_once, 1, 0);
  in(connect{false, false, 60, "abc"});
  EXPECT_EQ(up(upstream_refused{"server unavailable"}),
            (actions{raw({0x03, 0x05, 0x03}), report{event::connect_refused, "server unavailable"}}));
  EXPECT_FALSE(s().ended());
  EXPECT_EQ(s().subscriptions(), 1U);
}

TEST_F(Session, messages_before_connack_are_not_acted_on) {
  in(connect{false, true, 60, "abc"});
  EXPECT_EQ(in(publish{false, qos::at_most_once, false, topic_id_type::short_name, short_topic_id('a', 'b'), 0, {}}),
            actions{});
  EXPECT_EQ(stats.unexpected_messages, 1U);
}

TEST_F(Session, messages_from_a_disconnected_client_are_answered_with_disconnect) {
  connect_active(false);
  in(disconnect{});
  EXPECT_EQ(in({0x09, 0x0C, 0x00, 0x00, 0x01, 0x00, 0x00, 0x68, 0x69}), (actions{raw({0x02, 0x18})}));
  EXPECT_EQ(stats.unknown_sender, 1U);
}

// ---------------------------------------------------------------------------------------------
// register

TEST_F(Session, client_register_gets_a_gateway_assigned_id) {
  connect_active();
  EXPECT_EQ(in({0x09, 0x0A, 0x00, 0x00, 0x00, 0x01, 0x61, 0x2F, 0x62}), (actions{raw({0x07, 0x0B, 0x00, 0x01, 0x00, 0x01, 0x00})}));
  EXPECT_EQ(in(register_{0, 2, "a/b"}), (actions{frame_of(regack{1, 2, return_code::accepted})}));  // same name, same id
  EXPECT_EQ(in(register_{0, 3, "c"}), (actions{frame_of(regack{2, 3, return_code::accepted})}));
}

TEST_F(Session, register_of_a_wildcard_is_not_supported) {
  connect_active();
  EXPECT_EQ(in(register_{0, 9, "a/+"}), (actions{frame_of(regack{0, 9, return_code::not_supported})}));
}

TEST_F(Session, register_at_the_topic_bound_answers_congestion) {
  cfg.max_topics = 2;
  connect_active();
  in(register_{0, 1, "t1"});
  in(register_{0, 2, "t2"});
  EXPECT_EQ(in(register_{0, 3, "t3"}),
            (actions{report{event::congestion, "topic ids"}, frame_of(regack{0, 3, return_code::congestion})}));
  EXPECT_EQ(in(register_{0, 4, "t1"}), (actions{frame_of(regack{1, 4, return_code::accepted})}));
  EXPECT_EQ(stats.congestion, 1U);
}

// ---------------------------------------------------------------------------------------------
// publish, client -> broker

TEST_F(Session, qos0_publish_goes_straight_to_the_broker) {
  connect_active();
  in(register_{0, 1, "a/b"});
  EXPECT_EQ(in({0x09, 0x0C, 0x00, 0x00, 0x01, 0x00, 0x00, 0x68, 0x69}),
            (actions{upstream_publish{0, "a/b", payload("hi"), qos::at_most_once, false}}));
}

TEST_F(Session, puback_waits_for_the_broker_ack) {
  connect_active();
  in(register_{0, 1, "a/b"});
  EXPECT_EQ(in({0x09, 0x0C, 0x30, 0x00, 0x01, 0x00, 0x02, 0x68, 0x69}),
            (actions{upstream_publish{1, "a/b", payload("hi"), qos::at_least_once, true}}));
  EXPECT_EQ(in({0x09, 0x0C, 0xB0, 0x00, 0x01, 0x00, 0x02, 0x68, 0x69}), actions{});  // DUP while pending
  EXPECT_EQ(stats.duplicate_publishes, 1U);
  EXPECT_EQ(up(upstream_published{1}), (actions{raw({0x07, 0x0D, 0x00, 0x01, 0x00, 0x02, 0x00})}));
  EXPECT_EQ(up(upstream_published{1}), actions{});  // a stray second ack changes nothing
}

TEST_F(Session, qos2_publish_runs_the_full_handshake_and_a_dup_is_never_forwarded_twice) {
  connect_active();
  in(register_{0, 1, "a/b"});
  EXPECT_EQ(in({0x09, 0x0C, 0x40, 0x00, 0x01, 0x00, 0x03, 0x68, 0x69}),
            (actions{upstream_publish{1, "a/b", payload("hi"), qos::exactly_once, false}}));
  EXPECT_EQ(in({0x09, 0x0C, 0xC0, 0x00, 0x01, 0x00, 0x03, 0x68, 0x69}), actions{});  // DUP before the broker ack
  EXPECT_EQ(up(upstream_published{1}), (actions{raw({0x04, 0x0F, 0x00, 0x03})}));
  EXPECT_EQ(in({0x09, 0x0C, 0xC0, 0x00, 0x01, 0x00, 0x03, 0x68, 0x69}), (actions{raw({0x04, 0x0F, 0x00, 0x03})}));
  EXPECT_EQ(in({0x04, 0x10, 0x00, 0x03}), (actions{raw({0x04, 0x0E, 0x00, 0x03})}));
  EXPECT_EQ(stats.duplicate_publishes, 2U);
  EXPECT_EQ(stats.unknown_pubrel, 0U);
}

TEST_F(Session, pubrel_before_pubrec_is_ignored_and_unknown_pubrel_is_completed_and_counted) {
  connect_active();
  in(register_{0, 1, "a/b"});
  in(publish{false, qos::exactly_once, false, topic_id_type::normal, 1, 5, payload("x")});
  EXPECT_EQ(in(pubrel{5}), actions{});
  EXPECT_EQ(in(pubrel{77}), (actions{frame_of(pubcomp{77})}));
  EXPECT_EQ(stats.unknown_pubrel, 1U);
}

TEST_F(Session, unknown_topic_id_gets_puback_invalid_topic_id_whatever_the_qos) {
  connect_active();
  EXPECT_EQ(in(publish{false, qos::at_most_once, false, topic_id_type::normal, 7, 0, payload("x")}),
            (actions{frame_of(puback{7, 0, return_code::invalid_topic_id})}));
  EXPECT_EQ(in({0x09, 0x0C, 0x20, 0x00, 0x07, 0x00, 0x02, 0x68, 0x69}), (actions{raw({0x07, 0x0D, 0x00, 0x07, 0x00, 0x02, 0x02})}));
  EXPECT_EQ(in(publish{false, qos::at_least_once, false, topic_id_type::predefined, 0x0099, 4, {}}),
            (actions{frame_of(puback{0x0099, 4, return_code::invalid_topic_id})}));
  EXPECT_EQ(stats.invalid_topic_id, 3U);
}

TEST_F(Session, predefined_and_short_topics_need_no_register) {
  connect_active();
  EXPECT_EQ(in(publish{false, qos::at_most_once, false, topic_id_type::predefined, 0x0010, 0, payload("1")}),
            (actions{upstream_publish{0, "sensors/predef", payload("1"), qos::at_most_once, false}}));
  EXPECT_EQ(in(publish{false, qos::at_least_once, false, topic_id_type::short_name, short_topic_id('a', 'b'), 9, payload("2")}),
            (actions{upstream_publish{1, "ab", payload("2"), qos::at_least_once, false}}));
  EXPECT_EQ(up(upstream_published{1}), (actions{frame_of(puback{short_topic_id('a', 'b'), 9, return_code::accepted})}));
}

TEST_F(Session, short_name_with_a_wildcard_is_not_supported) {
  connect_active();
  EXPECT_EQ(in(publish{false, qos::at_most_once, false, topic_id_type::short_name, short_topic_id('a', '#'), 0, {}}),
            (actions{frame_of(puback{short_topic_id('a', '#'), 0, return_code::not_supported})}));
}

TEST_F(Session, qos_minus_one_is_not_session_business) {
  connect_active();
  EXPECT_EQ(in({0x09, 0x0C, 0x61, 0x00, 0x10, 0x00, 0x00, 0x68, 0x69}), actions{});
  EXPECT_EQ(stats.unexpected_messages, 1U);
}

TEST_F(Session, qos0_is_dropped_and_counted_while_the_broker_is_down) {
  connect_active();
  up(upstream_lost{});
  const auto p = publish{false, qos::at_most_once, false, topic_id_type::predefined, 0x0010, 0, payload("x")};
  EXPECT_EQ(in(p), (actions{report{event::first_drop, "broker unreachable (QoS 0)"}}));
  EXPECT_EQ(in(p), actions{});  // logged once, counted every time
  EXPECT_EQ(stats.qos0_dropped_broker_down, 2U);
}

TEST_F(Session, qos1_waits_unacknowledged_while_the_broker_is_down_and_goes_out_after_reconnect) {
  connect_active();
  up(upstream_lost{});
  EXPECT_EQ(in(publish{false, qos::at_least_once, false, topic_id_type::predefined, 0x0010, 3, payload("x")}), actions{});
  EXPECT_EQ(up(upstream_connected{false}), (actions{upstream_publish{1, "sensors/predef", payload("x"), qos::at_least_once, false}}));
  EXPECT_EQ(up(upstream_published{1}), (actions{frame_of(puback{0x0010, 3, return_code::accepted})}));
}

TEST_F(Session, a_publish_already_sent_is_left_to_the_upstream_when_the_broker_kept_the_session) {
  connect_active(false);
  in(publish{false, qos::at_least_once, false, topic_id_type::predefined, 0x0010, 3, payload("x")});
  up(upstream_lost{});
  EXPECT_EQ(up(upstream_connected{true}), actions{});
  EXPECT_EQ(up(upstream_published{1}), (actions{frame_of(puback{0x0010, 3, return_code::accepted})}));
}

TEST_F(Session, a_publish_already_sent_is_resent_when_the_broker_lost_the_session) {
  connect_active(false);
  in(publish{false, qos::at_least_once, false, topic_id_type::predefined, 0x0010, 3, payload("x")});
  up(upstream_lost{});
  EXPECT_EQ(up(upstream_connected{false}), (actions{upstream_publish{1, "sensors/predef", payload("x"), qos::at_least_once, false}}));
}

TEST_F(Session, inflight_bound_answers_congestion) {
  cfg.max_inflight_upstream = 2;
  connect_active();
  in(publish{false, qos::at_least_once, false, topic_id_type::predefined, 0x0010, 1, {}});
  in(publish{false, qos::exactly_once, false, topic_id_type::predefined, 0x0010, 2, {}});
  EXPECT_EQ(in(publish{false, qos::at_least_once, false, topic_id_type::predefined, 0x0010, 3, {}}),
            (actions{report{event::congestion, "in-flight publishes"}, frame_of(puback{0x0010, 3, return_code::congestion})}));
  // Hit again: answered and counted, but logged only once per client.
  EXPECT_EQ(in(publish{false, qos::at_least_once, false, topic_id_type::predefined, 0x0010, 6, {}}),
            (actions{frame_of(puback{0x0010, 6, return_code::congestion})}));
  EXPECT_EQ(stats.congestion, 2U);
  up(upstream_published{2});  // QoS 2: PUBREC sent, still counts until PUBREL
  EXPECT_EQ(in(publish{false, qos::at_least_once, false, topic_id_type::predefined, 0x0010, 4, {}}),
            (actions{frame_of(puback{0x0010, 4, return_code::congestion})}));
  in(pubrel{2});
  EXPECT_EQ(in(publish{false, qos::at_least_once, false, topic_id_type::predefined, 0x0010, 5, {}}).size(), 1U);
}

// ---------------------------------------------------------------------------------------------
// subscribe / unsubscribe

TEST_F(Session, subscribe_by_name_answers_suback_with_the_topic_id_after_the_broker) {
  connect_active();
  EXPECT_EQ(in({0x08, 0x12, 0x20, 0x00, 0x04, 0x61, 0x2F, 0x62}), (actions{upstream_subscribe{1, "a/b", qos::at_least_once}}));
  EXPECT_EQ(up(upstream_subscribed{1, qos::at_least_once}), (actions{raw({0x08, 0x13, 0x20, 0x00, 0x01, 0x00, 0x04, 0x00})}));
  EXPECT_EQ(s().subscriptions(), 1U);
}

TEST_F(Session, wildcard_subscribe_answers_topic_id_zero) {
  connect_active();
  EXPECT_EQ(in({0x08, 0x12, 0x20, 0x00, 0x04, 0x61, 0x2F, 0x23}), (actions{upstream_subscribe{1, "a/#", qos::at_least_once}}));
  EXPECT_EQ(up(upstream_subscribed{1, qos::at_least_once}), (actions{raw({0x08, 0x13, 0x20, 0x00, 0x00, 0x00, 0x04, 0x00})}));
}

TEST_F(Session, predefined_subscribe_echoes_the_id_and_short_subscribe_answers_zero) {
  connect_active();
  EXPECT_EQ(in({0x07, 0x12, 0x01, 0x00, 0x05, 0x00, 0x10}), (actions{upstream_subscribe{1, "sensors/predef", qos::at_most_once}}));
  EXPECT_EQ(up(upstream_subscribed{1, qos::at_most_once}), (actions{frame_of(suback{qos::at_most_once, 0x0010, 5, return_code::accepted})}));
  EXPECT_EQ(in({0x07, 0x12, 0x02, 0x00, 0x06, 0x61, 0x62}), (actions{upstream_subscribe{2, "ab", qos::at_most_once}}));
  EXPECT_EQ(up(upstream_subscribed{2, qos::at_most_once}), (actions{frame_of(suback{qos::at_most_once, 0, 6, return_code::accepted})}));
}

TEST_F(Session, subscribe_to_an_unknown_predefined_id_is_invalid_topic_id) {
  connect_active();
  EXPECT_EQ(in(subscribe{false, qos::at_most_once, topic_id_type::predefined, 5, "", 0x0042}),
            (actions{frame_of(suback{qos::at_most_once, 0x0042, 5, return_code::invalid_topic_id})}));
}

TEST_F(Session, invalid_filter_is_not_supported_and_broker_refusal_too) {
  connect_active();
  EXPECT_EQ(in(subscribe{false, qos::at_most_once, topic_id_type::normal, 5, "a/#/b", 0}),
            (actions{frame_of(suback{qos::at_most_once, 0, 5, return_code::not_supported})}));
  in(subscribe{false, qos::at_most_once, topic_id_type::normal, 6, "secret/#", 0});
  EXPECT_EQ(up(upstream_subscribed{1, std::nullopt}), (actions{frame_of(suback{qos::at_most_once, 0, 6, return_code::not_supported})}));
  EXPECT_EQ(s().subscriptions(), 0U);
}

TEST_F(Session, granted_qos_is_what_the_broker_granted) {
  connect_active();
  in(subscribe{false, qos::exactly_once, topic_id_type::normal, 8, "x/#", 0});
  EXPECT_EQ(up(upstream_subscribed{1, qos::at_least_once}), (actions{frame_of(suback{qos::at_least_once, 0, 8, return_code::accepted})}));
}

TEST_F(Session, retransmitted_subscribe_while_pending_is_ignored) {
  connect_active();
  in(subscribe{false, qos::at_most_once, topic_id_type::normal, 8, "x/#", 0});
  EXPECT_EQ(in(subscribe{true, qos::at_most_once, topic_id_type::normal, 8, "x/#", 0}), actions{});
}

TEST_F(Session, subscription_bound_answers_congestion) {
  cfg.max_subscriptions = 1;
  connect_active();
  subscribe_ok("a/#", qos::at_most_once, 1, 0);
  EXPECT_EQ(in(subscribe{false, qos::at_most_once, topic_id_type::normal, 2, "b/#", 0}),
            (actions{report{event::congestion, "subscriptions"}, frame_of(suback{qos::at_most_once, 0, 2, return_code::congestion})}));
  // Subscribing again to the same filter is an update, not a new subscription.
  EXPECT_EQ(in(subscribe{false, qos::at_least_once, topic_id_type::normal, 3, "a/#", 0}).size(), 1U);
}

TEST_F(Session, subscriptions_awaiting_their_suback_count_toward_the_bound) {
  cfg.max_subscriptions = 2;
  connect_active();
  subscribe_ok("a/#", qos::at_most_once, 1, 0);
  // The broker has not answered "b/#" yet: "c/#" would be the third.
  EXPECT_EQ(in(subscribe{false, qos::at_most_once, topic_id_type::normal, 2, "b/#", 0}).size(), 1U);
  EXPECT_EQ(in(subscribe{false, qos::at_most_once, topic_id_type::normal, 3, "c/#", 0}),
            (actions{report{event::congestion, "subscriptions"}, frame_of(suback{qos::at_most_once, 0, 3, return_code::congestion})}));
  // The same pending filter again (a new msg id) is not a new subscription.
  EXPECT_EQ(in(subscribe{false, qos::at_least_once, topic_id_type::normal, 4, "b/#", 0}).size(), 1U);
  EXPECT_EQ(s().subscriptions(), 1U);
}

TEST_F(Session, subscribe_by_name_at_the_topic_bound_answers_congestion) {
  cfg.max_topics = 1;
  connect_active();
  in(register_{0, 1, "t1"});
  EXPECT_EQ(in(subscribe{false, qos::at_most_once, topic_id_type::normal, 2, "t2", 0}),
            (actions{report{event::congestion, "topic ids"}, frame_of(suback{qos::at_most_once, 0, 2, return_code::congestion})}));
}

TEST_F(Session, retained_message_waits_for_the_suback) {
  connect_active();
  in(subscribe{false, qos::at_most_once, topic_id_type::normal, 4, "a/b", 0});
  EXPECT_EQ(deliver("a/b", "r", qos::at_most_once, true), actions{});  // broker was quicker than its SUBACK
  EXPECT_EQ(up(upstream_subscribed{1, qos::at_most_once}),
            (actions{frame_of(suback{qos::at_most_once, 1, 4, return_code::accepted}),
                     frame_of(publish{false, qos::at_most_once, true, topic_id_type::normal, 1, 0, payload("r")})}));
}

TEST_F(Session, unsubscribe_answers_unsuback_after_the_broker_and_always_answers) {
  connect_active();
  subscribe_ok("a/#", qos::at_least_once, 1, 0);
  EXPECT_EQ(in({0x08, 0x14, 0x00, 0x00, 0x07, 0x61, 0x2F, 0x23}), (actions{upstream_unsubscribe{2, "a/#"}}));
  EXPECT_EQ(up(upstream_unsubscribed{2}), (actions{raw({0x04, 0x15, 0x00, 0x07})}));
  EXPECT_EQ(s().subscriptions(), 0U);
  EXPECT_EQ(in(unsubscribe{topic_id_type::normal, 8, "never/subscribed", 0}), (actions{frame_of(unsuback{8})}));
  EXPECT_EQ(in(unsubscribe{topic_id_type::predefined, 9, "", 0x0077}), (actions{frame_of(unsuback{9})}));
}

TEST_F(Session, unsubscribe_by_predefined_id_and_short_name) {
  connect_active();
  in(subscribe{false, qos::at_most_once, topic_id_type::predefined, 1, "", 0x0010});
  up(upstream_subscribed{1, qos::at_most_once});
  in(subscribe{false, qos::at_most_once, topic_id_type::short_name, 2, "", short_topic_id('a', 'b')});
  up(upstream_subscribed{2, qos::at_most_once});
  EXPECT_EQ(in(unsubscribe{topic_id_type::predefined, 3, "", 0x0010}), (actions{upstream_unsubscribe{3, "sensors/predef"}}));
  EXPECT_EQ(in(unsubscribe{topic_id_type::short_name, 4, "", short_topic_id('a', 'b')}), (actions{upstream_unsubscribe{4, "ab"}}));
}

// ---------------------------------------------------------------------------------------------
// publish, broker -> client

TEST_F(Session, message_on_a_named_subscription_uses_the_suback_id) {
  connect_active();
  subscribe_ok("a/b", qos::at_least_once, 1, 1);
  EXPECT_EQ(deliver("a/b", "hi", qos::at_most_once), (actions{raw({0x09, 0x0C, 0x00, 0x00, 0x01, 0x00, 0x00, 0x68, 0x69})}));
  EXPECT_EQ(deliver("a/b", "hi", qos::at_least_once), (actions{raw({0x09, 0x0C, 0x20, 0x00, 0x01, 0x00, 0x01, 0x68, 0x69})}));
  EXPECT_EQ(in({0x07, 0x0D, 0x00, 0x01, 0x00, 0x01, 0x00}), actions{});
  EXPECT_EQ(stats.publishes_to_clients, 2U);
}

TEST_F(Session, wildcard_match_is_registered_before_the_first_publish) {
  connect_active();
  subscribe_ok("a/#", qos::at_least_once, 1, 0);
  EXPECT_EQ(deliver("a/x", "v", qos::at_least_once), (actions{frame_of(register_{1, 1, "a/x"})}));
  EXPECT_EQ(deliver("a/y", "w", qos::at_most_once), actions{});  // queued behind the registration
  EXPECT_EQ(in(regack{1, 1, return_code::accepted}),
            (actions{frame_of(publish{false, qos::at_least_once, false, topic_id_type::normal, 1, 2, payload("v")})}));
  EXPECT_EQ(in(puback{1, 2, return_code::accepted}), (actions{frame_of(register_{2, 3, "a/y"})}));
  EXPECT_EQ(in(regack{2, 3, return_code::accepted}),
            (actions{frame_of(publish{false, qos::at_most_once, false, topic_id_type::normal, 2, 0, payload("w")})}));
  // Known now: no second REGISTER.
  EXPECT_EQ(deliver("a/x", "z", qos::at_most_once),
            (actions{frame_of(publish{false, qos::at_most_once, false, topic_id_type::normal, 1, 0, payload("z")})}));
  EXPECT_EQ(stats.registers_sent, 2U);
}

TEST_F(Session, refused_registration_drops_the_message_and_later_ones_on_that_topic) {
  connect_active();
  subscribe_ok("a/#", qos::at_most_once, 1, 0);
  EXPECT_EQ(deliver("a/x", "v", qos::at_most_once), (actions{frame_of(register_{1, 1, "a/x"})}));
  EXPECT_EQ(in(regack{1, 1, return_code::not_supported}), (actions{report{event::first_drop, "client refused the topic"}}));
  EXPECT_EQ(deliver("a/x", "v2", qos::at_most_once), actions{});
  EXPECT_EQ(stats.registrations_refused, 1U);
  EXPECT_EQ(stats.dropped_undeliverable, 2U);
  // Other topics still flow.
  EXPECT_EQ(deliver("a/y", "v", qos::at_most_once), (actions{frame_of(register_{2, 2, "a/y"})}));
}

TEST_F(Session, predefined_and_two_character_topics_are_delivered_without_register) {
  connect_active();
  subscribe_ok("#", qos::at_most_once, 1, 0);
  EXPECT_EQ(deliver("cmd/predef", "1", qos::at_most_once),
            (actions{frame_of(publish{false, qos::at_most_once, false, topic_id_type::predefined, 0x0020, 0, payload("1")})}));
  EXPECT_EQ(deliver("ab", "2", qos::at_most_once),
            (actions{frame_of(publish{false, qos::at_most_once, false, topic_id_type::short_name, short_topic_id('a', 'b'), 0, payload("2")})}));
}

TEST_F(Session, the_type_the_client_subscribed_with_wins) {
  connect_active();
  // "ab" subscribed by name: normal id from the SUBACK, not the short form.
  subscribe_ok("ab", qos::at_most_once, 1, 1);
  EXPECT_EQ(deliver("ab", "x", qos::at_most_once),
            (actions{frame_of(publish{false, qos::at_most_once, false, topic_id_type::normal, 1, 0, payload("x")})}));
  // A predefined topic subscribed by its id arrives with that id.
  in(subscribe{false, qos::at_most_once, topic_id_type::predefined, 2, "", 0x0010});
  up(upstream_subscribed{2, qos::at_most_once});
  EXPECT_EQ(deliver("sensors/predef", "y", qos::at_most_once),
            (actions{frame_of(publish{false, qos::at_most_once, false, topic_id_type::predefined, 0x0010, 0, payload("y")})}));
}

TEST_F(Session, qos2_delivery_runs_pubrec_pubrel_pubcomp) {
  connect_active();
  subscribe_ok("a/b", qos::exactly_once, 1, 1);
  EXPECT_EQ(deliver("a/b", "q2", qos::exactly_once),
            (actions{frame_of(publish{false, qos::exactly_once, false, topic_id_type::normal, 1, 1, payload("q2")})}));
  EXPECT_EQ(in(pubrec{1}), (actions{raw({0x04, 0x10, 0x00, 0x01})}));
  EXPECT_EQ(in(pubrec{1}), (actions{raw({0x04, 0x10, 0x00, 0x01})}));  // our PUBREL was lost
  EXPECT_EQ(at(10s), (actions{raw({0x04, 0x10, 0x00, 0x01})}));        // PUBREL retransmitted as is
  EXPECT_EQ(in(pubcomp{1}), actions{});
  EXPECT_EQ(s().queued(), 0U);
}

TEST_F(Session, unexpected_acks_are_counted_and_ignored) {
  connect_active();
  EXPECT_EQ(in(puback{1, 1, return_code::accepted}), actions{});
  EXPECT_EQ(in(pubrec{1}), actions{});
  EXPECT_EQ(in(pubcomp{1}), actions{});
  EXPECT_EQ(in(regack{1, 1, return_code::accepted}), actions{});
  EXPECT_EQ(stats.unexpected_messages, 4U);
}

TEST_F(Session, unacknowledged_publish_is_retransmitted_with_dup_and_same_msg_id_then_client_is_lost) {
  connect_with_will(true, 600);
  subscribe_ok("a/b", qos::at_least_once, 1, 1);
  const auto first = frame_of(publish{false, qos::at_least_once, false, topic_id_type::normal, 1, 1, payload("v")});
  const auto again = frame_of(publish{true, qos::at_least_once, false, topic_id_type::normal, 1, 1, payload("v")});
  EXPECT_EQ(deliver("a/b", "v", qos::at_least_once), (actions{first}));
  EXPECT_EQ(s().next_deadline(), t0 + 10s);
  EXPECT_EQ(at(9999ms), actions{});
  EXPECT_EQ(at(10s), (actions{again}));
  EXPECT_EQ(at(20s), (actions{again}));
  EXPECT_EQ(at(30s), (actions{again}));
  EXPECT_EQ(at(40s), (actions{report{event::lost, "retries exhausted"},
                              upstream_publish{0, "will/abc", payload("bye"), qos::at_least_once, false},
                              report{event::will_published, "will/abc"}, upstream_disconnect{},
                              report{event::session_ended, ""}}));
  EXPECT_EQ(stats.retransmissions, 3U);
  EXPECT_EQ(stats.lost_retries, 1U);
  EXPECT_TRUE(s().ended());
}

TEST_F(Session, puback_invalid_topic_id_from_the_client_registers_again) {
  connect_active();
  subscribe_ok("a/#", qos::at_most_once, 1, 0);
  deliver("a/x", "v", qos::at_least_once);
  in(regack{1, 1, return_code::accepted});
  EXPECT_EQ(in(puback{1, 2, return_code::invalid_topic_id}), (actions{frame_of(register_{1, 3, "a/x"})}));
  EXPECT_EQ(in(regack{1, 3, return_code::accepted}),
            (actions{frame_of(publish{false, qos::at_least_once, false, topic_id_type::normal, 1, 4, payload("v")})}));
  EXPECT_EQ(in(puback{1, 4, return_code::accepted}), actions{});
}

TEST_F(Session, repeated_puback_invalid_topic_id_gives_up_on_the_message) {
  cfg.retry_count = 1;
  connect_active();
  subscribe_ok("a/#", qos::at_most_once, 1, 0);
  deliver("a/x", "v", qos::at_least_once);
  in(regack{1, 1, return_code::accepted});
  in(puback{1, 2, return_code::invalid_topic_id});
  in(regack{1, 3, return_code::accepted});
  EXPECT_EQ(in(puback{1, 4, return_code::invalid_topic_id}), (actions{report{event::first_drop, "client rejected the message"}}));
  EXPECT_EQ(s().queued(), 0U);
}

TEST_F(Session, frames_larger_than_the_link_allows_are_dropped_and_counted) {
  cfg.max_frame_size = 20;
  connect_active();
  subscribe_ok("a/b", qos::at_most_once, 1, 1);
  EXPECT_EQ(deliver("a/b", std::string(30, 'x'), qos::at_most_once),
            (actions{report{event::first_drop, "message too large for the link"}}));
  subscribe_ok("l/#", qos::at_most_once, 2, 0);
  EXPECT_EQ(deliver("l/" + std::string(30, 'y'), "", qos::at_most_once), actions{});
  EXPECT_EQ(stats.frames_too_large, 2U);
  EXPECT_EQ(deliver("a/b", "ok", qos::at_most_once).size(), 1U);
}

TEST_F(Session, gateway_msg_ids_are_never_zero_and_wrap) {
  connect_active();
  subscribe_ok("a/b", qos::at_least_once, 1, 1);
  for (unsigned i = 1; i <= 65535; ++i) {
    deliver("a/b", "", qos::at_least_once);
    ASSERT_EQ(in(puback{1, static_cast<msg_id>(i), return_code::accepted}), actions{}) << i;
  }
  EXPECT_EQ(deliver("a/b", "", qos::at_least_once),
            (actions{frame_of(publish{false, qos::at_least_once, false, topic_id_type::normal, 1, 1, {}})}));
  EXPECT_EQ(stats.unexpected_messages, 0U);
}

// ---------------------------------------------------------------------------------------------
// keep-alive, disconnect, will update

TEST_F(Session, silent_client_is_lost_after_grace_times_keep_alive_and_its_will_is_published) {
  connect_with_will(true, 60);
  EXPECT_EQ(s().next_deadline(), t0 + 90s);
  EXPECT_EQ(at(89999ms), actions{});
  EXPECT_EQ(at(90s), (actions{report{event::lost, "keep-alive"},
                              upstream_publish{0, "will/abc", payload("bye"), qos::at_least_once, false},
                              report{event::will_published, "will/abc"}, upstream_disconnect{},
                              report{event::session_ended, ""}}));
  EXPECT_EQ(stats.lost_keep_alive, 1U);
  EXPECT_EQ(stats.wills_published, 1U);
}

TEST_F(Session, any_message_and_pingreq_keep_the_client_alive) {
  connect_active(true, 60);
  now = t0 + 80s;
  EXPECT_EQ(in({0x02, 0x16}), (actions{raw({0x02, 0x17})}));
  EXPECT_EQ(s().next_deadline(), t0 + 170s);
  EXPECT_EQ(at(169s), actions{});
  now = t0 + 169s;
  in(register_{0, 1, "x"});
  EXPECT_EQ(s().next_deadline(), t0 + 259s);
  EXPECT_EQ(in(pingresp{}), actions{});  // answer to a gateway ping is a sign of life too
}

TEST_F(Session, keep_alive_zero_means_no_supervision) {
  connect_active(true, 0);
  EXPECT_EQ(s().next_deadline(), std::nullopt);
  EXPECT_EQ(at(100h), actions{});
  EXPECT_EQ(s().state(), session_state::active);
}

TEST_F(Session, lost_client_without_will_publishes_nothing_but_keeps_a_kept_session) {
  connect_active(false, 10);
  subscribe_ok("a/#", qos::at_least_once, 1, 0);
  EXPECT_EQ(at(15s), (actions{report{event::lost, "keep-alive"}, upstream_disconnect{}}));
  EXPECT_EQ(s().state(), session_state::lost);
  EXPECT_FALSE(s().ended());
  EXPECT_EQ(s().subscriptions(), 1U);
}

// session_expiry: a kept session whose client stays offline and unheard of is discarded (counted,
// its buffer dropped and counted), so dead client ids do not hold max-clients slots for ever.
TEST_F(Session, a_disconnected_kept_session_expires_session_expiry_after_its_client_was_last_heard) {
  cfg.session_expiry = 3600s;
  connect_active(false);
  subscribe_ok("a/#", qos::at_least_once, 1, 0);
  EXPECT_EQ(at(30s), actions{});
  ASSERT_EQ(in(disconnect{}), (actions{raw({0x02, 0x18}), upstream_disconnect{}, report{event::disconnected, ""}}));
  EXPECT_EQ(deliver("a/x", "kept", qos::at_least_once), actions{});
  ASSERT_EQ(s().next_deadline(), t0 + 30s + 3600s);
  EXPECT_EQ(at(3629s), actions{});
  EXPECT_FALSE(s().ended());
  EXPECT_EQ(at(3630s), (actions{report{event::session_expired, "3600 s"}, report{event::session_ended, ""}}));
  EXPECT_TRUE(s().ended());
  EXPECT_EQ(s().subscriptions(), 0U);
  EXPECT_EQ(s().queued(), 0U);
  EXPECT_EQ(stats.sessions_expired, 1U);
  EXPECT_EQ(stats.dropped_qos12, 1U);
  EXPECT_EQ(s().next_deadline(), std::nullopt);
  EXPECT_FALSE(s().snapshot());  // the store deletes it
}

TEST_F(Session, a_lost_kept_session_expires_counting_from_when_its_client_was_last_heard) {
  cfg.session_expiry = 100s;
  connect_active(false, 10);
  EXPECT_EQ(at(15s), (actions{report{event::lost, "keep-alive"}, upstream_disconnect{}}));
  EXPECT_EQ(s().next_deadline(), t0 + 100s);
  EXPECT_EQ(at(99s), actions{});
  EXPECT_EQ(at(100s), (actions{report{event::session_expired, "100 s"}, report{event::session_ended, ""}}));
}

// Found by fuzz_session: a client lost after grace x a keep-alive longer than the expiry was
// already unheard of for longer than session_expiry: it expires at once, no deadline in the past.
TEST_F(Session, a_kept_session_lost_after_a_silence_longer_than_the_expiry_expires_at_once) {
  cfg.session_expiry = 100s;
  connect_active(false, 100);
  EXPECT_EQ(at(149s), actions{});
  EXPECT_EQ(at(150s), (actions{report{event::lost, "keep-alive"}, upstream_disconnect{},
                               report{event::session_expired, "100 s"}, report{event::session_ended, ""}}));
  EXPECT_TRUE(s().ended());
  EXPECT_EQ(s().next_deadline(), std::nullopt);
}

TEST_F(Session, connected_and_sleeping_sessions_never_expire) {
  cfg.session_expiry = 10s;
  connect_active(false, 0);  // no keep-alive: never supervised
  EXPECT_EQ(s().next_deadline(), std::nullopt);
  EXPECT_EQ(at(1h), actions{});
  EXPECT_EQ(s().state(), session_state::active);
  // Asleep for an hour: supervised by its sleep duration, not by the expiry.
  EXPECT_EQ(in(disconnect{std::uint16_t{3600}}), (actions{raw({0x02, 0x18}), report{event::asleep, "3600 s"}}));
  EXPECT_EQ(at(1h + 3600s), actions{});
  EXPECT_EQ(s().state(), session_state::asleep);
}

TEST_F(Session, a_session_expiry_of_zero_keeps_an_offline_kept_session_for_ever) {
  cfg.session_expiry = 0s;
  connect_active(false);
  in(disconnect{});
  EXPECT_EQ(s().next_deadline(), std::nullopt);
  EXPECT_EQ(at(1000h), actions{});
  EXPECT_FALSE(s().ended());
}

TEST_F(Session, a_client_back_before_expiry_keeps_its_session) {
  cfg.session_expiry = 100s;
  connect_active(false, 0);
  subscribe_ok("a/#", qos::at_least_once, 1, 0);
  in(disconnect{});
  now = t0 + 99s;
  EXPECT_EQ(in(connect{false, false, 0, "abc"}), (actions{upstream_connect{false, 0, {}}}));
  EXPECT_EQ(up(upstream_connected{true}), (actions{raw({0x03, 0x05, 0x00}), report{event::connected, ""}}));
  EXPECT_EQ(at(1h), actions{});
  EXPECT_EQ(s().subscriptions(), 1U);
  // Offline again: the clock restarts from this disconnect.
  now = t0 + 2h;
  in(disconnect{});
  EXPECT_EQ(s().next_deadline(), t0 + 2h + 100s);
  EXPECT_EQ(stats.sessions_expired, 0U);
}

TEST_F(Session, clean_disconnect_publishes_no_will_and_ends_a_clean_session) {
  connect_with_will(true);
  EXPECT_EQ(in({0x02, 0x18}), (actions{raw({0x02, 0x18}), upstream_disconnect{}, report{event::disconnected, ""},
                                       report{event::session_ended, ""}}));
  EXPECT_TRUE(s().ended());
  EXPECT_EQ(stats.wills_published, 0U);
  EXPECT_EQ(s().next_deadline(), std::nullopt);
}

TEST_F(Session, disconnect_with_duration_zero_is_a_normal_disconnect) {
  connect_active(false);
  EXPECT_EQ(in({0x04, 0x18, 0x00, 0x00}), (actions{raw({0x02, 0x18}), upstream_disconnect{}, report{event::disconnected, ""}}));
  EXPECT_EQ(s().state(), session_state::disconnected);
}

TEST_F(Session, kept_session_delivers_what_arrived_while_disconnected_after_connack) {
  connect_active(false);
  subscribe_ok("a/#", qos::at_least_once, 1, 0);
  deliver("a/x", "v", qos::at_least_once);
  in(regack{1, 1, return_code::accepted});
  in(puback{1, 2, return_code::accepted});
  in(disconnect{});
  EXPECT_EQ(deliver("a/x", "kept", qos::at_least_once), actions{});
  EXPECT_EQ(deliver("a/x", "lost", qos::at_most_once), (actions{report{event::first_drop, "client offline (QoS 0)"}}));
  EXPECT_EQ(in(connect{false, false, 60, "abc"}), (actions{upstream_connect{false, 60, {}}}));
  // The client may have forgotten id 1: REGISTER it again right after CONNACK.
  EXPECT_EQ(up(upstream_connected{true}),
            (actions{raw({0x03, 0x05, 0x00}), report{event::connected, ""}, frame_of(register_{1, 3, "a/x"})}));
  EXPECT_EQ(in(regack{1, 3, return_code::accepted}),
            (actions{frame_of(publish{false, qos::at_least_once, false, topic_id_type::normal, 1, 4, payload("kept")})}));
}

TEST_F(Session, clean_connect_forgets_subscriptions_topics_and_will) {
  connect_with_will(false);
  subscribe_ok("a/b", qos::at_most_once, 1, 1);
  in(connect{false, true, 60, "abc"});
  up(upstream_connected{false});
  EXPECT_EQ(s().subscriptions(), 0U);
  EXPECT_EQ(s().topics().size(), 0U);
  EXPECT_FALSE(s().will().has_value());
}

TEST_F(Session, willtopicupd_and_willmsgupd_change_the_will_published_on_loss) {
  connect_with_will(true, 60);
  EXPECT_EQ(in({0x0B, 0x1A, 0x10, 0x77, 0x69, 0x6C, 0x6C, 0x2F, 0x61, 0x62, 0x63}), (actions{raw({0x03, 0x1B, 0x00})}));
  EXPECT_EQ(in({0x06, 0x1C, 0x62, 0x79, 0x65, 0x32}), (actions{raw({0x03, 0x1D, 0x00})}));
  EXPECT_EQ(at(90s), (actions{report{event::lost, "keep-alive"},
                              upstream_publish{0, "will/abc", payload("bye2"), qos::at_most_once, true},
                              report{event::will_published, "will/abc"}, upstream_disconnect{},
                              report{event::session_ended, ""}}));
}

TEST_F(Session, empty_willtopicupd_deletes_the_will) {
  connect_with_will(true, 60);
  EXPECT_EQ(in({0x02, 0x1A}), (actions{raw({0x03, 0x1B, 0x00})}));
  EXPECT_FALSE(s().will().has_value());
  EXPECT_EQ(at(90s), (actions{report{event::lost, "keep-alive"}, upstream_disconnect{}, report{event::session_ended, ""}}));
}

TEST_F(Session, will_update_without_a_will_and_invalid_topics) {
  connect_active();
  EXPECT_EQ(in(willmsgupd{payload("m")}), (actions{frame_of(willmsgresp{return_code::not_supported})}));
  EXPECT_EQ(in(willtopicupd{qos::at_least_once, false, "a/+"}), (actions{frame_of(willtopicresp{return_code::not_supported})}));
  EXPECT_EQ(in(willtopicupd{qos::at_least_once, false, "new/will"}), (actions{frame_of(willtopicresp{return_code::accepted})}));
  EXPECT_EQ(in(willmsgupd{payload("m")}), (actions{frame_of(willmsgresp{return_code::accepted})}));
  EXPECT_EQ(s().will(), (will_message{"new/will", payload("m"), qos::at_least_once, false}));
}

// ---------------------------------------------------------------------------------------------
// broker session loss

TEST_F(Session, broker_reconnect_without_its_session_restores_every_subscription) {
  connect_active(false);
  subscribe_ok("a/#", qos::at_least_once, 1, 0);
  subscribe_ok("b", qos::at_most_once, 2, 1);
  up(upstream_lost{});
  EXPECT_EQ(up(upstream_connected{false}),
            (actions{upstream_subscribe{3, "a/#", qos::at_least_once}, upstream_subscribe{4, "b", qos::at_most_once}}));
  EXPECT_EQ(up(upstream_subscribed{3, qos::at_least_once}), actions{});  // no SUBACK: the client asked nothing
  EXPECT_EQ(up(upstream_subscribed{4, qos::at_most_once}), actions{});
  EXPECT_EQ(s().state(), session_state::active);
}

TEST_F(Session, restored_subscription_refused_tells_the_client_to_reconnect) {
  connect_active(false);
  subscribe_ok("a/#", qos::at_least_once, 1, 0);
  up(upstream_lost{});
  up(upstream_connected{false});
  EXPECT_EQ(up(upstream_subscribed{2, std::nullopt}),
            (actions{report{event::resubscribe_failed, "a/#"}, raw({0x02, 0x18}), upstream_disconnect{}}));
  EXPECT_EQ(s().state(), session_state::disconnected);
}

TEST_F(Session, broker_reconnect_with_its_session_needs_no_restore) {
  connect_active(false);
  subscribe_ok("a/#", qos::at_least_once, 1, 0);
  up(upstream_lost{});
  EXPECT_EQ(up(upstream_connected{true}), actions{});
}

TEST_F(Session, subscribe_while_the_broker_is_down_goes_out_after_reconnect) {
  connect_active();
  up(upstream_lost{});
  EXPECT_EQ(in(subscribe{false, qos::at_most_once, topic_id_type::normal, 1, "a/#", 0}), actions{});
  EXPECT_EQ(in(unsubscribe{topic_id_type::normal, 2, "zz", 0}), (actions{frame_of(unsuback{2})}));
  EXPECT_EQ(up(upstream_connected{false}), (actions{upstream_subscribe{1, "a/#", qos::at_most_once}}));
}

// ---------------------------------------------------------------------------------------------
// sleeping clients

TEST_F(Session, disconnect_with_duration_puts_the_client_to_sleep_and_buffers_its_messages) {
  connect_active(false);
  subscribe_ok("a/b", qos::at_least_once, 1, 1);
  EXPECT_EQ(in({0x04, 0x18, 0x01, 0x2C}), (actions{raw({0x02, 0x18}), report{event::asleep, "300 s"}}));
  EXPECT_EQ(s().state(), session_state::asleep);
  EXPECT_EQ(deliver("a/b", "1", qos::at_least_once), actions{});
  EXPECT_EQ(deliver("a/b", "2", qos::at_most_once), actions{});
  EXPECT_EQ(s().queued(), 2U);
  EXPECT_EQ(stats.buffered, 2U);
  EXPECT_EQ(s().next_deadline(), t0 + 450s);
}

TEST_F(Session, pingreq_with_client_id_delivers_the_buffer_then_pingresp_then_sleeps_again) {
  connect_active(false);
  subscribe_ok("a/#", qos::at_least_once, 1, 0);
  go_to_sleep(300);
  deliver("a/x", "1", qos::at_least_once);
  deliver("a/x", "2", qos::at_most_once);
  now = t0 + 100s;
  // REGISTER for the wildcard match is part of the wake-up sequence, followed by the PUBLISH.
  EXPECT_EQ(in({0x05, 0x16, 0x61, 0x62, 0x63}), (actions{report{event::awake, "2 buffered"}, frame_of(register_{1, 1, "a/x"})}));
  EXPECT_EQ(s().state(), session_state::awake);
  EXPECT_EQ(deliver("a/x", "3 (next wake)", qos::at_least_once), actions{});
  EXPECT_EQ(in(regack{1, 1, return_code::accepted}),
            (actions{frame_of(publish{false, qos::at_least_once, false, topic_id_type::normal, 1, 2, payload("1")})}));
  EXPECT_EQ(in(pingreq{"abc"}), actions{});  // repeated PINGREQ mid-cycle
  EXPECT_EQ(in(puback{1, 2, return_code::accepted}),
            (actions{frame_of(publish{false, qos::at_most_once, false, topic_id_type::normal, 1, 0, payload("2")}),
                     raw({0x02, 0x17}), report{event::asleep, "300 s"}}));
  EXPECT_EQ(s().state(), session_state::asleep);
  EXPECT_EQ(s().queued(), 1U);
  EXPECT_EQ(s().next_deadline(), now + 450s);  // sleep timer restarted
}

TEST_F(Session, pingreq_with_nothing_buffered_answers_at_once_and_restarts_the_sleep_timer) {
  connect_active(false);
  go_to_sleep(100);
  now = t0 + 140s;
  EXPECT_EQ(in(pingreq{"abc"}), (actions{raw({0x02, 0x17})}));
  EXPECT_EQ(s().state(), session_state::asleep);
  EXPECT_EQ(s().next_deadline(), now + 150s);
}

TEST_F(Session, bare_pingreq_while_asleep_is_a_keep_alive_only) {
  connect_active(false);
  subscribe_ok("a/b", qos::at_most_once, 1, 1);
  go_to_sleep(100);
  deliver("a/b", "1", qos::at_most_once);
  EXPECT_EQ(in(pingreq{}), (actions{raw({0x02, 0x17})}));
  EXPECT_EQ(s().state(), session_state::asleep);
  EXPECT_EQ(s().queued(), 1U);
}

TEST_F(Session, several_sleep_wake_cycles_in_a_row) {
  connect_active(false);
  subscribe_ok("a/b", qos::at_least_once, 1, 1);
  go_to_sleep(60);
  msg_id mid = 0;
  for (int cycle = 0; cycle < 5; ++cycle) {
    const std::string v = "v" + std::to_string(cycle);
    deliver("a/b", v, qos::at_least_once);
    now += 30s;
    ++mid;
    EXPECT_EQ(in(pingreq{"abc"}),
              (actions{report{event::awake, "1 buffered"},
                       frame_of(publish{false, qos::at_least_once, false, topic_id_type::normal, 1, mid, payload(v)})}))
        << "cycle " << cycle;
    EXPECT_EQ(in(puback{1, mid, return_code::accepted}), (actions{raw({0x02, 0x17}), report{event::asleep, "60 s"}}))
        << "cycle " << cycle;
  }
  EXPECT_EQ(stats.wakeups, 5U);
}

TEST_F(Session, sleeping_client_silent_past_grace_times_its_duration_is_lost) {
  connect_with_will(false, 60);
  go_to_sleep(300);
  EXPECT_EQ(at(449s), actions{});
  EXPECT_EQ(at(450s), (actions{report{event::lost, "sleep expired"},
                               upstream_publish{0, "will/abc", payload("bye"), qos::at_least_once, false},
                               report{event::will_published, "will/abc"}, upstream_disconnect{}}));
  EXPECT_EQ(stats.lost_sleep_expired, 1U);
}

TEST_F(Session, connect_while_asleep_delivers_the_buffer_after_connack_when_the_session_is_kept) {
  connect_active(false);
  subscribe_ok("a/b", qos::at_least_once, 1, 1);
  go_to_sleep(300);
  deliver("a/b", "1", qos::at_least_once);
  deliver("a/b", "2", qos::at_most_once);
  EXPECT_EQ(in(connect{false, false, 60, "abc"}), (actions{upstream_connect{false, 60, {}}}));
  EXPECT_EQ(up(upstream_connected{true}),
            (actions{raw({0x03, 0x05, 0x00}), report{event::connected, ""}, frame_of(register_{1, 1, "a/b"})}));
  EXPECT_EQ(in(regack{1, 1, return_code::accepted}),
            (actions{frame_of(publish{false, qos::at_least_once, false, topic_id_type::normal, 1, 2, payload("1")})}));
  EXPECT_EQ(in(puback{1, 2, return_code::accepted}),
            (actions{frame_of(publish{false, qos::at_most_once, false, topic_id_type::normal, 1, 0, payload("2")})}));
  EXPECT_EQ(s().state(), session_state::active);
}

TEST_F(Session, clean_connect_while_asleep_discards_the_buffer) {
  connect_active(false);
  subscribe_ok("a/b", qos::at_least_once, 1, 1);
  go_to_sleep(300);
  deliver("a/b", "1", qos::at_least_once);
  deliver("a/b", "2", qos::at_most_once);
  in(connect{false, true, 60, "abc"});
  EXPECT_EQ(up(upstream_connected{false}), (actions{raw({0x03, 0x05, 0x00}), report{event::connected, ""}}));
  EXPECT_EQ(s().queued(), 0U);
  EXPECT_EQ(stats.dropped_qos0, 1U);
  EXPECT_EQ(stats.dropped_qos12, 1U);
}

TEST_F(Session, full_sleep_buffer_drops_qos0_first_then_the_oldest_qos12) {
  cfg.max_queued = 3;
  connect_active(false);
  subscribe_ok("a/b", qos::exactly_once, 1, 1);
  go_to_sleep(300);
  deliver("a/b", "q1-a", qos::at_least_once);
  deliver("a/b", "q0", qos::at_most_once);
  deliver("a/b", "q2-b", qos::exactly_once);
  EXPECT_EQ(deliver("a/b", "q1-c", qos::at_least_once), (actions{report{event::first_drop, "queue full (QoS 0)"}}));
  EXPECT_EQ(stats.dropped_qos0, 1U);
  EXPECT_EQ(deliver("a/b", "q0-late", qos::at_most_once), actions{});  // QoS 0 goes first, even the newcomer
  EXPECT_EQ(stats.dropped_qos0, 2U);
  EXPECT_EQ(deliver("a/b", "q1-d", qos::at_least_once), actions{});  // last resort: oldest QoS 1/2
  EXPECT_EQ(stats.dropped_qos12, 1U);
  EXPECT_EQ(s().queued(), 3U);
  // What is left: q2-b, q1-c, q1-d.
  auto a = in(pingreq{"abc"});
  ASSERT_EQ(a.size(), 2U);
  EXPECT_EQ(a[1], frame_of(publish{false, qos::exactly_once, false, topic_id_type::normal, 1, 1, payload("q2-b")}));
}

TEST_F(Session, awake_client_that_stops_answering_goes_back_to_sleep_keeping_its_messages) {
  connect_active(false);
  subscribe_ok("a/b", qos::at_least_once, 1, 1);
  go_to_sleep(300);
  deliver("a/b", "1", qos::at_least_once);
  const auto first = frame_of(publish{false, qos::at_least_once, false, topic_id_type::normal, 1, 1, payload("1")});
  const auto again = frame_of(publish{true, qos::at_least_once, false, topic_id_type::normal, 1, 1, payload("1")});
  EXPECT_EQ(in(pingreq{"abc"}), (actions{report{event::awake, "1 buffered"}, first}));
  EXPECT_EQ(at(10s), (actions{again}));
  EXPECT_EQ(at(20s), (actions{again}));
  EXPECT_EQ(at(30s), (actions{again}));
  EXPECT_EQ(at(40s), (actions{raw({0x02, 0x17}), report{event::asleep, "300 s"}}));
  EXPECT_EQ(s().state(), session_state::asleep);
  EXPECT_EQ(s().queued(), 1U);
  // Next wake: the same message, same msg id, DUP set.
  now = t0 + 100s;
  EXPECT_EQ(in(pingreq{"abc"}), (actions{report{event::awake, "1 buffered"}, again}));
  EXPECT_EQ(in(puback{1, 1, return_code::accepted}), (actions{raw({0x02, 0x17}), report{event::asleep, "300 s"}}));
}

TEST_F(Session, messages_to_a_lost_or_disconnected_kept_session_are_kept_for_qos12_only) {
  connect_active(false, 10);
  subscribe_ok("a/b", qos::at_least_once, 1, 1);
  at(15s);
  ASSERT_EQ(s().state(), session_state::lost);
  EXPECT_EQ(deliver("a/b", "q1", qos::at_least_once), actions{});
  EXPECT_EQ(deliver("a/b", "q0", qos::at_most_once), (actions{report{event::first_drop, "client offline (QoS 0)"}}));
  EXPECT_EQ(s().queued(), 1U);
}

TEST_F(Session, disconnect_during_the_will_handshake_abandons_the_connect) {
  in(connect{true, true, 60, "abc"});
  EXPECT_EQ(in(disconnect{}), (actions{raw({0x02, 0x18}), upstream_disconnect{}, report{event::disconnected, ""},
                                       report{event::session_ended, ""}}));
}

TEST_F(Session, gateway_only_messages_from_a_client_are_counted_and_ignored) {
  connect_active();
  EXPECT_EQ(in(connack{}), actions{});
  EXPECT_EQ(in(willtopicreq{}), actions{});
  EXPECT_EQ(stats.unexpected_messages, 2U);
}

TEST_F(Session, qos2_release_cut_by_a_reconnect_resends_pubrel_after_connack) {
  connect_active(false);
  subscribe_ok("a/b", qos::exactly_once, 1, 1);
  deliver("a/b", "x", qos::exactly_once);
  EXPECT_EQ(in(pubrec{1}), (actions{frame_of(pubrel{1})}));
  in(disconnect{});
  in(connect{false, false, 60, "abc"});
  EXPECT_EQ(up(upstream_connected{true}),
            (actions{raw({0x03, 0x05, 0x00}), report{event::connected, ""}, frame_of(pubrel{1})}));
  EXPECT_EQ(in(pubcomp{1}), actions{});
  EXPECT_EQ(s().queued(), 0U);
}

TEST_F(Session, publish_cut_by_a_reconnect_starts_over_with_a_register) {
  connect_active(false);
  subscribe_ok("a/b", qos::at_least_once, 1, 1);
  deliver("a/b", "x", qos::at_least_once);  // PUBLISH mid 1, never acknowledged
  in(connect{false, false, 60, "abc"});
  EXPECT_EQ(up(upstream_connected{true}),
            (actions{raw({0x03, 0x05, 0x00}), report{event::connected, ""}, frame_of(register_{1, 2, "a/b"})}));
}

TEST_F(Session, awake_cycle_is_timed_by_the_retransmission_only) {
  connect_active(false);
  subscribe_ok("a/b", qos::at_least_once, 1, 1);
  go_to_sleep(5);
  deliver("a/b", "1", qos::at_least_once);
  now = t0 + 1s;
  in(pingreq{"abc"});
  EXPECT_EQ(s().next_deadline(), now + 10s);  // not the 7.5 s sleep supervision
}

TEST_F(Session, disconnected_and_lost_sessions_have_no_timers) {
  connect_active(false, 10);
  at(15s);
  ASSERT_EQ(s().state(), session_state::lost);
  EXPECT_EQ(s().next_deadline(), std::nullopt);
  EXPECT_EQ(at(1000s), actions{});
}

TEST_F(Session, subscribing_again_updates_the_granted_qos) {
  connect_active();
  subscribe_ok("a/b", qos::at_most_once, 1, 1);
  subscribe_ok("a/b", qos::at_least_once, 2, 1);
  EXPECT_EQ(s().subscriptions(), 1U);
}

TEST_F(Session, a_queue_of_one_holds_only_the_message_in_flight) {
  cfg.max_queued = 1;
  connect_active();
  subscribe_ok("a/b", qos::at_least_once, 1, 1);
  EXPECT_EQ(deliver("a/b", "1", qos::at_least_once).size(), 1U);
  EXPECT_EQ(deliver("a/b", "2", qos::at_least_once), (actions{report{event::first_drop, "queue full"}}));
  EXPECT_EQ(stats.dropped_qos12, 1U);
  EXPECT_EQ(in(puback{1, 1, return_code::accepted}), actions{});
}

TEST_F(Session, wildcard_delivery_without_a_free_topic_id_is_dropped_with_congestion) {
  cfg.max_topics = 1;
  connect_active();
  subscribe_ok("a/#", qos::at_most_once, 1, 0);
  EXPECT_EQ(deliver("a/x", "1", qos::at_most_once).size(), 1U);  // REGISTER a/x takes the only id
  in(regack{1, 1, return_code::accepted});
  EXPECT_EQ(deliver("a/y", "2", qos::at_most_once),
            (actions{report{event::congestion, "topic ids"}, report{event::first_drop, "no topic id left"}}));
}

TEST_F(Session, unsubscribe_while_the_subscribe_is_with_the_broker_ends_unsubscribed) {
  connect_active();
  EXPECT_EQ(in(subscribe{false, qos::at_most_once, topic_id_type::normal, 1, "a/#", 0}),
            (actions{upstream_subscribe{1, "a/#", qos::at_most_once}}));
  EXPECT_EQ(in(unsubscribe{topic_id_type::normal, 2, "a/#", 0}), (actions{upstream_unsubscribe{2, "a/#"}}));
  EXPECT_EQ(up(upstream_subscribed{1, qos::at_most_once}), (actions{frame_of(suback{qos::at_most_once, 0, 1, return_code::accepted})}));
  EXPECT_EQ(s().subscriptions(), 1U);
  EXPECT_EQ(up(upstream_unsubscribed{2}), (actions{frame_of(unsuback{2})}));
  EXPECT_EQ(s().subscriptions(), 0U);
}

TEST_F(Session, a_broker_answer_of_the_wrong_kind_is_ignored) {
  connect_active();
  in(publish{false, qos::at_least_once, false, topic_id_type::predefined, 0x0010, 3, payload("x")});
  EXPECT_EQ(up(upstream_subscribed{1, qos::at_most_once}), actions{});
  EXPECT_EQ(up(upstream_unsubscribed{1}), actions{});
  EXPECT_EQ(up(upstream_published{1}), (actions{frame_of(puback{0x0010, 3, return_code::accepted})}));
}

TEST_F(Session, a_message_without_topic_is_dropped) {
  connect_active();
  subscribe_ok("#", qos::at_most_once, 1, 0);
  EXPECT_EQ(deliver("", "x", qos::at_most_once), actions{});
  EXPECT_EQ(stats.dropped_undeliverable, 1U);
}

TEST_F(Session, a_clean_session_whose_subscriptions_cannot_be_restored_ends) {
  connect_active(true);
  subscribe_ok("a/#", qos::at_least_once, 1, 0);
  up(upstream_lost{});
  up(upstream_connected{false});
  EXPECT_EQ(up(upstream_subscribed{2, std::nullopt}),
            (actions{report{event::resubscribe_failed, "a/#"}, raw({0x02, 0x18}), upstream_disconnect{},
                     report{event::session_ended, ""}}));
  EXPECT_TRUE(s().ended());
}

// ---------------------------------------------------------------------------------------------
// a lossy link: 30% of frames lost in each direction, deterministically

class lossy_link {
 public:
  explicit lossy_link(unsigned seed) : rng_(seed) {}
  bool loses() { return rng_() % 10 < 3; }

 private:
  std::minstd_rand rng_;
};

TEST_F(Session, lossy_link_delivers_every_message_in_order_and_qos2_exactly_once) {
  cfg.retry_count = 20;  // 30% loss each way: a round trip fails half the time
  connect_active(true, 0);
  subscribe_ok("s/#", qos::exactly_once, 1, 0);
  lossy_link link(12345);

  std::map<topic_id, std::string> names;  // what the fake client learnt from REGISTERs
  std::set<msg_id> qos2_held;             // QoS 2 ids received, not yet released
  std::vector<std::string> got;
  msg_id last_qos1 = 0;
  unsigned duplicates_seen = 0;
  std::deque<message> to_gateway;
  auto client_receives = [&](const actions& acts) {
    for (const auto& a : acts) {
      const auto* f = std::get_if<send_frame>(&a);
      if (!f || link.loses()) continue;
      const message m = std::get<message>(decode(f->frame));
      if (const auto* r = std::get_if<register_>(&m)) {
        names[r->id] = r->topic_name;
        to_gateway.push_back(regack{r->id, r->mid, return_code::accepted});
      } else if (const auto* p = std::get_if<publish>(&m)) {
        ASSERT_TRUE(names.count(p->id)) << "PUBLISH on an id never registered";
        const std::string text(p->data.begin(), p->data.end());
        if (p->q == qos::at_least_once) {
          if (p->dup && p->mid == last_qos1) {
            ++duplicates_seen;  // allowed for QoS 1
          } else {
            got.push_back(text);
          }
          last_qos1 = p->mid;
          to_gateway.push_back(puback{p->id, p->mid, return_code::accepted});
        } else {
          if (qos2_held.insert(p->mid).second) got.push_back(text);
          to_gateway.push_back(pubrec{p->mid});
        }
      } else if (const auto* rel = std::get_if<pubrel>(&m)) {
        qos2_held.erase(rel->mid);
        to_gateway.push_back(pubcomp{rel->mid});
      }
    }
  };

  std::vector<std::string> expected;
  for (int i = 0; i < 60; ++i) {
    expected.push_back("m" + std::to_string(i));
    client_receives(deliver("s/" + std::to_string(i % 7), expected.back(), i % 2 ? qos::at_least_once : qos::exactly_once));
  }
  for (int step = 0; step < 100000 && (s().queued() > 0 || !to_gateway.empty()); ++step) {
    while (!to_gateway.empty()) {
      const message m = to_gateway.front();
      to_gateway.pop_front();
      if (!link.loses()) client_receives(in(m));
    }
    if (s().queued() == 0) break;
    ASSERT_TRUE(s().next_deadline().has_value());
    now = *s().next_deadline();
    client_receives(s().tick(now));
  }
  EXPECT_EQ(got, expected);
  EXPECT_EQ(s().queued(), 0U);
  EXPECT_EQ(s().state(), session_state::active);
  EXPECT_GT(stats.retransmissions, 20U);
  EXPECT_GT(duplicates_seen + stats.retransmissions, 0U);
}

TEST_F(Session, lossy_link_client_qos2_publishes_reach_the_broker_exactly_once) {
  connect_active(true, 0);
  in(register_{0, 1, "up/q2"});
  lossy_link link(777);
  unsigned forwarded = 0;
  std::vector<std::string> at_broker;
  for (msg_id mid = 1; mid <= 40; ++mid) {
    const std::string text = "p" + std::to_string(mid);
    bool complete = false;
    bool released = false;
    for (int attempt = 0; attempt < 200 && !complete; ++attempt) {
      // The client retransmits PUBLISH (DUP) until PUBREC, then PUBREL until PUBCOMP.
      const message m = released ? message{pubrel{mid}}
                                 : message{publish{attempt > 0, qos::exactly_once, false, topic_id_type::normal, 1, mid,
                                                   payload(text)}};
      if (link.loses()) continue;
      actions replies = in(m);
      // The broker acknowledges whatever reached it at once.
      for (std::size_t i = 0; i < replies.size(); ++i) {
        if (const auto* u = std::get_if<upstream_publish>(&replies[i])) {
          ++forwarded;
          at_broker.emplace_back(u->payload.begin(), u->payload.end());
          auto more = up(upstream_published{u->ref});
          replies.insert(replies.end(), more.begin(), more.end());
        }
      }
      for (const auto& r : replies) {
        const auto* f = std::get_if<send_frame>(&r);
        if (!f || link.loses()) continue;
        const message back = std::get<message>(decode(f->frame));
        if (std::holds_alternative<pubrec>(back)) released = true;
        if (std::holds_alternative<pubcomp>(back)) complete = true;
      }
    }
    ASSERT_TRUE(complete) << "message " << mid;
  }
  EXPECT_EQ(forwarded, 40U);
  ASSERT_EQ(at_broker.size(), 40U);
  EXPECT_EQ(at_broker.front(), "p1");
  EXPECT_EQ(at_broker.back(), "p40");
  EXPECT_GT(stats.duplicate_publishes, 0U);
}

TEST_F(Session, state_names_for_logs) {
  EXPECT_STREQ(to_string(session_state::disconnected), "disconnected");
  EXPECT_STREQ(to_string(session_state::connecting), "connecting");
  EXPECT_STREQ(to_string(session_state::active), "active");
  EXPECT_STREQ(to_string(session_state::asleep), "asleep");
  EXPECT_STREQ(to_string(session_state::awake), "awake");
  EXPECT_STREQ(to_string(session_state::lost), "lost");
}

// ---------------------------------------------------------------------------------------------
// persistence: snapshot and restore

TEST_F(Session, only_active_asleep_and_awake_sessions_have_a_snapshot) {
  EXPECT_FALSE(s().snapshot());
  ASSERT_EQ(in(connect{false, false, 60, "abc"}), (actions{upstream_connect{false, 60, {}}}));
  EXPECT_FALSE(s().snapshot());  // connecting: the client will CONNECT again anyway
  ASSERT_EQ(up(upstream_connected{false}), (actions{raw({0x03, 0x05, 0x00}), report{event::connected, ""}}));
  ASSERT_TRUE(s().snapshot());
  EXPECT_FALSE(s().snapshot()->asleep);
}

TEST_F(Session, a_restored_sleeping_session_reconnects_upstream_and_delivers_on_wake) {
  connect_with_will(false);
  subscribe_ok("down/+", qos::at_least_once, 1, 0);
  go_to_sleep(300);
  EXPECT_EQ(deliver("down/a", "one", qos::at_least_once), actions{});
  EXPECT_EQ(deliver("down/b", "two", qos::at_most_once), actions{});
  const auto snap = s().snapshot();
  ASSERT_TRUE(snap);
  EXPECT_TRUE(snap->asleep);
  EXPECT_EQ(snap->queue.size(), 2U);
  EXPECT_EQ(snap->subscriptions.size(), 1U);

  // A new gateway: a fresh session takes the snapshot and asks the broker for the session again.
  counters stats2;
  session restored("abc", cfg, pre, stats2);
  const auto later = now + 1h;
  actions out;
  ASSERT_TRUE(restored.restore(*snap, later, out));
  EXPECT_EQ(out, (actions{upstream_connect{false, 60, will_message{"will/abc", payload("bye"), qos::at_least_once, false}}}));
  EXPECT_EQ(restored.state(), session_state::asleep);
  EXPECT_EQ(restored.queued(), 2U);
  // The broker lost the session: the subscription is restored from the session's own record.
  out = restored.handle(upstream_connected{false}, later);
  ASSERT_EQ(out.size(), 1U);
  const auto* resub = std::get_if<upstream_subscribe>(&out[0]);
  ASSERT_NE(resub, nullptr);
  EXPECT_EQ(resub->filter, "down/+");
  // The sensor wakes: REGISTER (it may not know the ids), then the messages, oldest first.
  out = restored.handle(message{pingreq{"abc"}}, later);
  ASSERT_EQ(out.size(), 2U);
  EXPECT_EQ(out[0], (action{report{event::awake, "2 buffered"}}));
  const auto* reg = std::get_if<send_frame>(&out[1]);
  ASSERT_NE(reg, nullptr);
  EXPECT_EQ(type_of(std::get<message>(decode(reg->frame))), msg_type::register_);
  // The snapshot of the restored session is the one it was made from.
  const auto again = restored.snapshot();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->queue, snap->queue);
  EXPECT_EQ(again->subscriptions, snap->subscriptions);
  EXPECT_EQ(again->will, snap->will);
}

// A kept session whose client sent DISCONNECT still buffers broker messages the broker was told
// were delivered (issue 8): a restart must keep them, and must not open a broker connection the
// client did not ask for. Its next CONNECT gets exactly what an in-memory session would give.
TEST_F(Session, a_disconnected_kept_session_is_restored_offline_and_delivers_on_the_next_connect) {
  connect_active(false);
  subscribe_ok("down/+", qos::at_least_once, 1, 0);
  ASSERT_EQ(in(disconnect{}), (actions{raw({0x02, 0x18}), upstream_disconnect{}, report{event::disconnected, ""}}));
  EXPECT_EQ(deliver("down/a", "one", qos::at_least_once), actions{});
  EXPECT_EQ(deliver("down/b", "two", qos::at_least_once), actions{});
  const auto snap = s().snapshot();
  ASSERT_TRUE(snap);
  ASSERT_TRUE(snap->offline);
  EXPECT_EQ(*snap->offline, session_state::disconnected);
  EXPECT_FALSE(snap->asleep);
  EXPECT_EQ(snap->queue.size(), 2U);
  EXPECT_EQ(snap->subscriptions.size(), 1U);

  counters stats2;
  session restored("abc", cfg, pre, stats2);
  const auto later = now + 1h;
  actions out;
  ASSERT_TRUE(restored.restore(*snap, later, out));
  EXPECT_EQ(out, actions{});  // no upstream_connect: the client is not connected
  EXPECT_EQ(restored.state(), session_state::disconnected);
  EXPECT_FALSE(restored.next_deadline());  // as in memory: a disconnected session has no timer
  EXPECT_EQ(restored.queued(), 2U);
  // Still buffering after the restart.
  EXPECT_EQ(restored.handle(upstream_message{"down/c", payload("three"), qos::at_least_once, false}, later), actions{});
  EXPECT_EQ(restored.queued(), 3U);
  EXPECT_EQ(stats2.buffered, 1U);
  EXPECT_EQ(deliver("down/c", "three", qos::at_least_once), actions{});

  // The client comes back with a kept session: the restored one answers as the original does.
  const connect again{false, false, 60, "abc"};
  const auto want_connect = in(again);
  EXPECT_EQ(restored.handle(message{again}, later), want_connect);
  const auto want_connected = up(upstream_connected{true});
  const auto got_connected = restored.handle(upstream_connected{true}, later);
  EXPECT_EQ(got_connected, want_connected);
  ASSERT_GE(got_connected.size(), 3U);
  EXPECT_EQ(got_connected[0], raw({0x03, 0x05, 0x00}));
  EXPECT_EQ(restored.state(), session_state::active);
  const auto* reg = std::get_if<send_frame>(&got_connected.back());
  ASSERT_NE(reg, nullptr);  // the first buffered message starts with a REGISTER of its topic
  EXPECT_EQ(type_of(std::get<message>(decode(reg->frame))), msg_type::register_);
}

// The store does not record when the client was last heard: a restored offline session's expiry
// counts from the restore (later, never earlier, than in memory).
TEST_F(Session, a_restored_offline_kept_session_expires_session_expiry_after_the_restore) {
  cfg.session_expiry = 600s;
  connect_active(false);
  in(disconnect{});
  const auto snap = s().snapshot();
  ASSERT_TRUE(snap);
  counters stats2;
  session restored("abc", cfg, pre, stats2);
  const auto later = now + 1h;
  actions out;
  ASSERT_TRUE(restored.restore(*snap, later, out));
  EXPECT_EQ(restored.next_deadline(), later + 600s);
  EXPECT_EQ(restored.tick(later + 600s),
            (actions{report{event::session_expired, "600 s"}, report{event::session_ended, ""}}));
  EXPECT_EQ(stats2.sessions_expired, 1U);
}

TEST_F(Session, a_lost_kept_session_is_restored_lost_a_clean_one_has_no_snapshot) {
  connect_active(false);
  subscribe_ok("down/+", qos::at_least_once, 1, 0);
  at(90s);
  ASSERT_EQ(s().state(), session_state::lost);
  EXPECT_EQ(deliver("down/a", "one", qos::at_least_once), actions{});
  const auto snap = s().snapshot();
  ASSERT_TRUE(snap);
  ASSERT_TRUE(snap->offline);
  EXPECT_EQ(*snap->offline, session_state::lost);
  EXPECT_EQ(snap->queue.size(), 1U);
  counters stats2;
  session restored("abc", cfg, pre, stats2);
  actions out;
  ASSERT_TRUE(restored.restore(*snap, now, out));
  EXPECT_EQ(out, actions{});
  EXPECT_EQ(restored.state(), session_state::lost);
  EXPECT_FALSE(restored.next_deadline());

  // Inconsistent offline snapshots are refused: a clean session, one also marked asleep, or an
  // offline state that is not disconnected/lost.
  auto clean_one = *snap;
  clean_one.clean_session = true;
  auto asleep = *snap;
  asleep.asleep = true;
  auto active = *snap;
  active.offline = session_state::active;
  for (const auto& bad : {clean_one, asleep, active}) {
    session other("abc", cfg, pre, stats2);
    actions o;
    EXPECT_FALSE(other.restore(bad, now, o));
    EXPECT_EQ(o, actions{});
  }

  // A clean session that disconnects has ended: nothing to write.
  counters stats3;
  session clean("def", cfg, pre, stats3);
  clean.handle(message{connect{false, true, 60, "def"}}, now);
  clean.handle(upstream_connected{false}, now);
  ASSERT_TRUE(clean.snapshot());
  clean.handle(message{disconnect{}}, now);
  EXPECT_EQ(clean.state(), session_state::disconnected);
  EXPECT_FALSE(clean.snapshot());
}

TEST_F(Session, a_qos2_delivery_waiting_for_pubcomp_resumes_with_pubrel_never_a_second_publish) {
  connect_active(false);
  subscribe_ok("q2", qos::exactly_once, 1, 1);
  const auto first = deliver("q2", "x", qos::exactly_once);
  ASSERT_EQ(first.size(), 1U);
  const auto pub = std::get<publish>(std::get<message>(decode(std::get<send_frame>(first[0]).frame)));
  ASSERT_EQ(in(pubrec{pub.mid}), (actions{frame_of(pubrel{pub.mid})}));
  const auto snap = s().snapshot();
  ASSERT_TRUE(snap);
  ASSERT_EQ(snap->releasing, pub.mid);

  counters stats2;
  session restored("abc", cfg, pre, stats2);
  actions out;
  ASSERT_TRUE(restored.restore(*snap, now, out));
  EXPECT_EQ(out, (actions{frame_of(pubrel{pub.mid}), upstream_connect{false, 60, {}}}));
  EXPECT_EQ(restored.handle(message{pubcomp{pub.mid}}, now), actions{});
  EXPECT_EQ(restored.queued(), 0U);
}

TEST_F(Session, a_qos2_publish_awaiting_pubrec_is_resent_after_a_restore_with_dup_and_the_same_msg_id) {
  connect_active(false);
  subscribe_ok("q2", qos::exactly_once, 1, 1);
  const auto first = deliver("q2", "x", qos::exactly_once);
  ASSERT_EQ(first.size(), 1U);
  const auto pub = std::get<publish>(std::get<message>(decode(std::get<send_frame>(first[0]).frame)));
  ASSERT_FALSE(pub.dup);
  const auto snap = s().snapshot();  // the PUBREC never came (lost, or the gateway stopped first)
  ASSERT_TRUE(snap);
  ASSERT_EQ(snap->queue.size(), 1U);
  EXPECT_EQ(snap->queue[0].mid, pub.mid);

  counters stats2;
  session restored("abc", cfg, pre, stats2);
  actions out;
  ASSERT_TRUE(restored.restore(*snap, now, out));
  EXPECT_EQ(out, (actions{upstream_connect{false, 60, {}}}));
  // The client may hold that msg id awaiting PUBREL: the same one, with DUP, so it does not
  // deliver the message a second time (a new id would be a new message to it).
  publish again = pub;
  again.dup = true;
  EXPECT_EQ(restored.handle(upstream_connected{true}, now), (actions{frame_of(again)}));
  EXPECT_EQ(restored.handle(message{pubrec{pub.mid}}, now), (actions{frame_of(pubrel{pub.mid})}));
  EXPECT_EQ(restored.handle(message{pubcomp{pub.mid}}, now), actions{});
  EXPECT_EQ(restored.queued(), 0U);
  // The next message takes a new msg id.
  const auto next = restored.handle(upstream_message{"q2", payload("y"), qos::exactly_once, false}, now);
  ASSERT_EQ(next.size(), 1U);
  const auto pub2 = std::get<publish>(std::get<message>(decode(std::get<send_frame>(next[0]).frame)));
  EXPECT_NE(pub2.mid, pub.mid);
  EXPECT_FALSE(pub2.dup);
}

TEST_F(Session, a_sleeping_sensor_woken_after_a_restore_gets_the_unacknowledged_qos2_publish_with_dup) {
  connect_active(false);
  subscribe_ok("q2", qos::exactly_once, 1, 1);
  go_to_sleep(300);
  EXPECT_EQ(deliver("q2", "x", qos::exactly_once), actions{});
  auto woke = in(pingreq{"abc"});
  ASSERT_EQ(woke.size(), 2U);
  const auto pub = std::get<publish>(std::get<message>(decode(std::get<send_frame>(woke[1]).frame)));
  const auto snap = s().snapshot();  // awake, PUBLISH sent, no PUBREC: saved as asleep
  ASSERT_TRUE(snap);
  EXPECT_TRUE(snap->asleep);

  counters stats2;
  session restored("abc", cfg, pre, stats2);
  actions out;
  ASSERT_TRUE(restored.restore(*snap, now, out));
  EXPECT_EQ(restored.handle(upstream_connected{true}, now), actions{});
  publish again = pub;
  again.dup = true;
  EXPECT_EQ(restored.handle(message{pingreq{"abc"}}, now),
            (actions{report{event::awake, "1 buffered"}, frame_of(again)}));
}

TEST_F(Session, a_client_reconnecting_its_kept_session_gets_an_unacknowledged_qos2_publish_with_the_same_msg_id) {
  connect_active(false);
  subscribe_ok("q2", qos::exactly_once, 1, 1);
  const auto first = deliver("q2", "x", qos::exactly_once);
  ASSERT_EQ(first.size(), 1U);
  const auto pub = std::get<publish>(std::get<message>(decode(std::get<send_frame>(first[0]).frame)));
  // The client CONNECTs again (clean session false) before its PUBREC reached the gateway.
  ASSERT_EQ(in(connect{false, false, 60, "abc"}), (actions{upstream_connect{false, 60, {}}}));
  const auto back = up(upstream_connected{true});
  // CONNACK, then REGISTER (it may have lost its ids), then the PUBLISH once REGACKed.
  ASSERT_EQ(back.size(), 3U);
  const auto reg = std::get<register_>(std::get<message>(decode(std::get<send_frame>(back[2]).frame)));
  publish again = pub;
  again.dup = true;
  EXPECT_EQ(in(regack{reg.id, reg.mid, return_code::accepted}), (actions{frame_of(again)}));
}

TEST_F(Session, an_inconsistent_snapshot_is_refused_and_changes_nothing) {
  session_snapshot bad;
  bad.client_id = "abc";
  bad.topics = {{5, "a/b", topic_table::client_knows::yes}};
  bad.next_topic_id = 3;  // id 5 cannot have been handed out
  actions out;
  EXPECT_FALSE(s().restore(bad, now, out));
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(s().state(), session_state::disconnected);
  session_snapshot full;
  full.client_id = "abc";
  full.queue.resize(cfg.max_queued + 1, session_snapshot::message{"t", {}, qos::at_most_once, false});
  EXPECT_FALSE(s().restore(full, now, out));
  session_snapshot releasing_qos1;
  releasing_qos1.client_id = "abc";
  releasing_qos1.queue = {{"t", {}, qos::at_least_once, false}};
  releasing_qos1.releasing = 4;
  EXPECT_FALSE(s().restore(releasing_qos1, now, out));
  session_snapshot sent_behind_the_front;  // only the front can have been sent
  sent_behind_the_front.client_id = "abc";
  sent_behind_the_front.queue = {{"t", {}, qos::at_least_once, false, 0}, {"t", {}, qos::at_least_once, false, 5}};
  EXPECT_FALSE(s().restore(sent_behind_the_front, now, out));
  session_snapshot qos0_with_id;
  qos0_with_id.client_id = "abc";
  qos0_with_id.queue = {{"t", {}, qos::at_most_once, false, 5}};
  EXPECT_FALSE(s().restore(qos0_with_id, now, out));
  session_snapshot releasing_another_id;
  releasing_another_id.client_id = "abc";
  releasing_another_id.queue = {{"t", {}, qos::exactly_once, false, 5}};
  releasing_another_id.releasing = 4;
  EXPECT_FALSE(s().restore(releasing_another_id, now, out));
  EXPECT_TRUE(out.empty());
}

// ---------------------------------------------------------------------------------------------
// flow control toward the broker (docs/flow-control.md)

TEST_F(Session, offer_refuses_qos12_while_an_active_clients_queue_is_full_and_resumes_after_its_puback) {
  cfg.max_queued = 2;
  connect_active();
  subscribe_ok("a/b", qos::at_least_once, 1, 1);
  EXPECT_TRUE(s().offer(qos::at_least_once));
  // PUBLISH QoS 1, topic id 1, msg id 1, "1": in flight.
  EXPECT_EQ(deliver("a/b", "1", qos::at_least_once), (actions{raw({0x08, 0x0C, 0x20, 0x00, 0x01, 0x00, 0x01, '1'})}));
  EXPECT_TRUE(s().offer(qos::exactly_once));
  EXPECT_EQ(deliver("a/b", "2", qos::at_least_once), actions{});
  EXPECT_FALSE(s().offer(qos::at_least_once));
  EXPECT_FALSE(s().offer(qos::exactly_once));
  EXPECT_TRUE(s().offer(qos::at_most_once));  // QoS 0 is never withheld: the drop policy bounds it
  EXPECT_EQ(stats.dropped_qos12, 0U);
  // PUBACK of msg id 1: the next message goes out, and the runtime may offer again (once).
  EXPECT_EQ(in({0x07, 0x0D, 0x00, 0x01, 0x00, 0x01, 0x00}),
            (actions{raw({0x08, 0x0C, 0x20, 0x00, 0x01, 0x00, 0x02, '2'}), upstream_resume{}}));
  EXPECT_TRUE(s().offer(qos::at_least_once));
  EXPECT_EQ(in({0x07, 0x0D, 0x00, 0x01, 0x00, 0x02, 0x00}), actions{});
}

TEST_F(Session, a_qos2_delivery_frees_its_place_at_pubcomp_not_at_pubrec) {
  cfg.max_queued = 1;
  connect_active();
  subscribe_ok("a/b", qos::exactly_once, 1, 1);
  EXPECT_EQ(deliver("a/b", "1", qos::exactly_once), (actions{raw({0x08, 0x0C, 0x40, 0x00, 0x01, 0x00, 0x01, '1'})}));
  EXPECT_FALSE(s().offer(qos::exactly_once));
  EXPECT_EQ(in({0x04, 0x0F, 0x00, 0x01}), (actions{raw({0x04, 0x10, 0x00, 0x01})}));  // PUBREC -> PUBREL
  EXPECT_FALSE(s().offer(qos::exactly_once));
  EXPECT_EQ(in({0x04, 0x0E, 0x00, 0x01}), (actions{upstream_resume{}}));  // PUBCOMP
  EXPECT_TRUE(s().offer(qos::exactly_once));
}

TEST_F(Session, a_full_queue_holding_qos0_still_has_room_for_qos12) {
  cfg.max_queued = 2;
  connect_active();
  subscribe_ok("a/b", qos::at_least_once, 1, 1);
  deliver("a/b", "1", qos::at_least_once);  // in flight: never the one that makes room
  deliver("a/b", "0", qos::at_most_once);
  EXPECT_TRUE(s().offer(qos::at_least_once));
  EXPECT_EQ(deliver("a/b", "2", qos::at_least_once), (actions{report{event::first_drop, "queue full (QoS 0)"}}));
  EXPECT_EQ(stats.dropped_qos0, 1U);
  EXPECT_FALSE(s().offer(qos::at_least_once));
}

TEST_F(Session, an_asleep_client_never_withholds_its_sleep_buffer_bound_drops) {
  cfg.max_queued = 1;
  connect_active(false);
  subscribe_ok("a/b", qos::at_least_once, 1, 1);
  go_to_sleep(300);
  deliver("a/b", "1", qos::at_least_once);
  EXPECT_TRUE(s().offer(qos::at_least_once));
  EXPECT_EQ(deliver("a/b", "2", qos::at_least_once), (actions{report{event::first_drop, "queue full (QoS 1/2, last resort)"}}));
  EXPECT_EQ(stats.dropped_qos12, 1U);
}

TEST_F(Session, going_to_sleep_after_a_refused_offer_resumes_the_runtime) {
  cfg.max_queued = 1;
  connect_active(false);
  subscribe_ok("a/b", qos::at_least_once, 1, 1);
  deliver("a/b", "1", qos::at_least_once);
  ASSERT_FALSE(s().offer(qos::at_least_once));
  EXPECT_EQ(in({0x04, 0x18, 0x01, 0x2C}),  // DISCONNECT, duration 300 s
            (actions{raw({0x02, 0x18}), report{event::asleep, "300 s"}, upstream_resume{}}));
  EXPECT_TRUE(s().offer(qos::at_least_once));
}

TEST_F(Session, a_lost_client_resumes_the_runtime) {
  cfg.max_queued = 1;
  connect_active(false, 10);
  subscribe_ok("a/b", qos::at_least_once, 1, 1);
  deliver("a/b", "1", qos::at_least_once);
  ASSERT_FALSE(s().offer(qos::at_least_once));
  EXPECT_EQ(at(15s), (actions{report{event::lost, "keep-alive"}, upstream_disconnect{}, upstream_resume{}}));
}

TEST_F(Session, an_awake_client_withholds_until_its_cycle_ends) {
  cfg.max_queued = 1;
  connect_active(false);
  subscribe_ok("a/b", qos::at_least_once, 1, 1);
  go_to_sleep(300);
  deliver("a/b", "1", qos::at_least_once);
  EXPECT_TRUE(s().offer(qos::at_least_once));  // asleep: the buffer bound decides
  ASSERT_EQ(in(pingreq{"abc"}).size(), 2U);     // awake, delivering "1"
  EXPECT_FALSE(s().offer(qos::at_least_once));
  EXPECT_EQ(in({0x07, 0x0D, 0x00, 0x01, 0x00, 0x01, 0x00}),  // PUBACK: PINGRESP, asleep again
            (actions{raw({0x02, 0x17}), report{event::asleep, "300 s"}, upstream_resume{}}));
}

TEST_F(Session, a_refused_offer_is_not_counted_and_changes_nothing_else) {
  cfg.max_queued = 1;
  connect_active();
  subscribe_ok("a/b", qos::at_least_once, 1, 1);
  deliver("a/b", "1", qos::at_least_once);
  const counters before = stats;
  EXPECT_FALSE(s().offer(qos::at_least_once));
  EXPECT_EQ(stats.dropped_qos12, before.dropped_qos12);
  EXPECT_EQ(stats.buffered, before.buffered);
  EXPECT_EQ(s().queued(), 1U);
  EXPECT_EQ(at(5s), actions{});  // no timer of its own
}

}  // namespace
}  // namespace mqttsn
