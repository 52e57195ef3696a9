// The fan-out table of aggregating mode (mqttsn/fanout.hpp): upstream SUBSCRIBE/UNSUBSCRIBE
// decisions, per-client delivery QoS, the retained-message rule of DECISIONS.md and restore.
#include "mqttsn/fanout.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace mqttsn {
namespace {

using d = fanout::delivery;
using fq = fanout::filter_qos;
constexpr qos q0 = qos::at_most_once;
constexpr qos q1 = qos::at_least_once;
constexpr qos q2 = qos::exactly_once;

TEST(FanoutSubscribe, first_subscriber_subscribes_upstream_at_its_qos) {
  fanout t;
  EXPECT_EQ(t.subscribe("a", "s/+", q1), q1);
  EXPECT_EQ(t.upstream_qos("s/+"), q1);
  EXPECT_EQ(t.granted("a", "s/+"), q1);
  EXPECT_EQ(t.filter_count(), 1U);
  EXPECT_EQ(t.client_count(), 1U);
  EXPECT_TRUE(t.holds("a"));
  EXPECT_FALSE(t.holds("b"));
}

TEST(FanoutSubscribe, every_subscribe_resubscribes_at_the_highest_qos_asked) {
  fanout t;
  EXPECT_EQ(t.subscribe("a", "f", q0), q0);
  EXPECT_EQ(t.subscribe("b", "f", q2), q2);  // raised
  EXPECT_EQ(t.subscribe("c", "f", q1), q2);  // a re-SUBSCRIBE (retained), still at the highest
  EXPECT_EQ(t.upstream_qos("f"), q2);
  EXPECT_EQ(t.filter_count(), 1U);
  EXPECT_EQ(t.client_count(), 3U);
  EXPECT_EQ(t.granted("a", "f"), q0);
  EXPECT_EQ(t.granted("b", "f"), q2);
  EXPECT_EQ(t.granted("c", "f"), q1);
}

TEST(FanoutSubscribe, subscribing_again_replaces_the_clients_qos) {
  fanout t;
  EXPECT_EQ(t.subscribe("a", "f", q2), q2);
  EXPECT_EQ(t.subscribe("a", "f", q0), q0);  // the only holder lowered its QoS: upstream follows
  EXPECT_EQ(t.granted("a", "f"), q0);
  EXPECT_EQ(t.filter_count(), 1U);
  EXPECT_EQ(t.filters_of("a"), std::vector<std::string>{"f"});
}

// The highest QoS is kept as a count of holders per level: every way a holder changes or leaves
// (subscribing again lower, unsubscribe, remove_client) must leave the counts right.
TEST(FanoutSubscribe, highest_qos_follows_holders_changing_and_leaving) {
  fanout t;
  t.subscribe("a", "f", q2);
  t.subscribe("b", "f", q1);
  t.subscribe("c", "f", q0);
  EXPECT_EQ(t.subscribe("a", "f", q0), q1);  // a lowered its QoS: b's 1 is the highest left
  EXPECT_EQ(t.subscribe("a", "f", q2), q2);
  t.remove_client("a");
  EXPECT_EQ(t.subscribe("d", "f", q0), q1);
  EXPECT_FALSE(t.unsubscribe("b", "f"));
  EXPECT_EQ(t.subscribe("d", "f", q0), q0);
  t.hold("e", "f", q2);
  EXPECT_EQ(t.upstream_qos("f"), q2);
  EXPECT_EQ(t.restore(), (std::vector<fq>{{"f", q2}}));
}

TEST(FanoutSubscribe, qos_minus_one_is_held_as_qos_0) {
  fanout t;
  EXPECT_EQ(t.subscribe("a", "f", qos::minus_one), q0);
  EXPECT_EQ(t.granted("a", "f"), q0);
}

TEST(FanoutUnsubscribe, last_holder_leaving_unsubscribes_upstream) {
  fanout t;
  t.subscribe("a", "f", q1);
  t.subscribe("b", "f", q1);
  EXPECT_FALSE(t.unsubscribe("a", "f"));
  EXPECT_EQ(t.upstream_qos("f"), q1);
  EXPECT_FALSE(t.holds("a"));
  EXPECT_TRUE(t.unsubscribe("b", "f"));
  EXPECT_EQ(t.upstream_qos("f"), std::nullopt);
  EXPECT_EQ(t.filter_count(), 0U);
  EXPECT_EQ(t.client_count(), 0U);
}

TEST(FanoutUnsubscribe, the_upstream_qos_does_not_drop_while_the_filter_is_held) {
  fanout t;
  t.subscribe("low", "f", q0);
  t.subscribe("high", "f", q2);
  EXPECT_FALSE(t.unsubscribe("high", "f"));
  EXPECT_EQ(t.upstream_qos("f"), q2);  // no SUBSCRIBE on unsubscribe (it would resend retained)
  EXPECT_EQ(t.route("f", q2, false), (std::vector<d>{{"low", q0}}));
  EXPECT_EQ(t.subscribe("new", "f", q1), q1);  // the next SUBSCRIBE uses the holders' maximum
}

TEST(FanoutUnsubscribe, unknown_client_or_filter_changes_nothing) {
  fanout t;
  t.subscribe("a", "f", q1);
  EXPECT_FALSE(t.unsubscribe("b", "f"));
  EXPECT_FALSE(t.unsubscribe("a", "g"));
  EXPECT_FALSE(t.unsubscribe("a", "F"));  // filters are case sensitive
  EXPECT_EQ(t.filter_count(), 1U);
  EXPECT_EQ(t.granted("a", "f"), q1);
}

TEST(FanoutRemoveClient, returns_the_filters_nobody_holds_any_more_sorted) {
  fanout t;
  t.subscribe("a", "z", q1);
  t.subscribe("a", "m", q1);
  t.subscribe("a", "shared", q2);
  t.subscribe("b", "shared", q0);
  t.subscribe("b", "b-only", q0);
  EXPECT_EQ(t.remove_client("a"), (std::vector<std::string>{"m", "z"}));
  EXPECT_FALSE(t.holds("a"));
  EXPECT_EQ(t.filter_count(), 2U);
  EXPECT_EQ(t.route("shared", q2, false), (std::vector<d>{{"b", q0}}));
  EXPECT_TRUE(t.remove_client("a").empty());
  EXPECT_EQ(t.remove_client("b"), (std::vector<std::string>{"b-only", "shared"}));
  EXPECT_EQ(t.filter_count(), 0U);
  EXPECT_EQ(t.client_count(), 0U);
}

TEST(FanoutRoute, delivers_at_the_lower_of_message_and_granted_qos) {
  fanout t;
  t.subscribe("c0", "t", q0);
  t.subscribe("c1", "t", q1);
  t.subscribe("c2", "t", q2);
  EXPECT_EQ(t.route("t", q0, false), (std::vector<d>{{"c0", q0}, {"c1", q0}, {"c2", q0}}));
  EXPECT_EQ(t.route("t", q1, false), (std::vector<d>{{"c0", q0}, {"c1", q1}, {"c2", q1}}));
  EXPECT_EQ(t.route("t", q2, false), (std::vector<d>{{"c0", q0}, {"c1", q1}, {"c2", q2}}));
}

TEST(FanoutRoute, a_client_matching_several_filters_gets_one_copy_at_the_highest) {
  fanout t;
  t.subscribe("a", "x/#", q0);
  t.subscribe("a", "x/+/z", q2);
  t.subscribe("a", "x/y/z", q1);
  t.subscribe("b", "x/#", q1);
  EXPECT_EQ(t.route("x/y/z", q2, false), (std::vector<d>{{"a", q2}, {"b", q1}}));
  EXPECT_EQ(t.route("x/y", q2, false), (std::vector<d>{{"a", q0}, {"b", q1}}));
}

TEST(FanoutRoute, matching_follows_mqtt_3_1_1) {
  fanout t;
  t.subscribe("hash", "#", q1);
  t.subscribe("plus", "+/b", q1);
  t.subscribe("exact", "a/b", q1);
  t.subscribe("deep", "a/#", q1);
  t.subscribe("empty-level", "a//c", q1);
  EXPECT_EQ(t.route("a/b", q1, false),
            (std::vector<d>{{"deep", q1}, {"exact", q1}, {"hash", q1}, {"plus", q1}}));
  EXPECT_EQ(t.route("a", q1, false), (std::vector<d>{{"deep", q1}, {"hash", q1}}));  // a/# matches a
  EXPECT_EQ(t.route("a//c", q1, false), (std::vector<d>{{"deep", q1}, {"empty-level", q1}, {"hash", q1}}));
  EXPECT_EQ(t.route("A/b", q1, false), (std::vector<d>{{"hash", q1}, {"plus", q1}}));
  EXPECT_EQ(t.route("/b", q1, false), (std::vector<d>{{"hash", q1}, {"plus", q1}}));  // "+" matches ""
}

TEST(FanoutRoute, wildcards_at_the_first_level_do_not_match_dollar_topics) {
  fanout t;
  t.subscribe("hash", "#", q1);
  t.subscribe("plus", "+/broker/uptime", q1);
  t.subscribe("sys", "$SYS/#", q1);
  t.subscribe("exact", "$SYS/broker/uptime", q0);
  EXPECT_EQ(t.route("$SYS/broker/uptime", q1, false), (std::vector<d>{{"exact", q0}, {"sys", q1}}));
  EXPECT_EQ(t.route("SYS/broker/uptime", q1, false), (std::vector<d>{{"hash", q1}, {"plus", q1}}));
}

TEST(FanoutRoute, no_holder_no_delivery) {
  fanout t;
  EXPECT_TRUE(t.route("a", q1, false).empty());
  EXPECT_TRUE(t.route("a", q1, true).empty());
  t.subscribe("a", "b", q1);
  EXPECT_TRUE(t.route("a", q1, false).empty());
  t.unsubscribe("a", "b");
  EXPECT_TRUE(t.route("b", q1, false).empty());
}

// Retained copies (RETAIN=1) answer a SUBSCRIBE: subscribed() is the broker's SUBACK, which
// Mosquitto sends before that SUBSCRIBE's retained copies (docs/protocol-core.md).

TEST(FanoutRetained, each_subscribe_gets_its_own_copy_in_the_order_the_broker_answers) {
  // The bug this replaces: a and b SUBSCRIBE before the broker answers a; both copies went to b.
  fanout t;
  t.subscribe("a", "door", q1);
  t.subscribe("b", "door", q1);
  t.subscribed("door", q1);                                              // SUBACK a
  EXPECT_EQ(t.route("door", q1, true), (std::vector<d>{{"a", q1}}));     // a's copy
  t.subscribed("door", q1);                                              // SUBACK b
  EXPECT_EQ(t.route("door", q1, true), (std::vector<d>{{"b", q1}}));     // b's copy
  EXPECT_TRUE(t.route("door", q1, true).empty());  // a third copy answers no SUBSCRIBE
  // Live messages (RETAIN=0) go to everybody.
  EXPECT_EQ(t.route("door", q1, false), (std::vector<d>{{"a", q1}, {"b", q1}}));
}

TEST(FanoutRetained, copies_deferred_after_a_later_suback_still_reach_each_subscribe_once) {
  // Mosquitto sends QoS 1/2 copies beyond its in-flight window after later SUBACKs (measured:
  // 100 retained QoS 1 messages, the second SUBACK came 22nd of 202 packets).
  fanout t;
  t.subscribe("a", "s/+", q1);
  t.subscribe("b", "s/+", q1);
  t.subscribed("s/+", q1);
  EXPECT_EQ(t.route("s/1", q1, true), (std::vector<d>{{"a", q1}}));
  t.subscribed("s/+", q1);
  // Still a's copies (s/2, s/3), then b's (s/1, s/2, s/3): every client gets each topic once.
  std::vector<std::string> got_a{"s/1"};
  std::vector<std::string> got_b;
  for (const char* topic : {"s/2", "s/3", "s/1", "s/2", "s/3"}) {
    const auto to = t.route(topic, q1, true);
    ASSERT_EQ(to.size(), 1U) << topic;
    (to[0].client == "a" ? got_a : got_b).push_back(topic);
  }
  std::sort(got_a.begin(), got_a.end());
  std::sort(got_b.begin(), got_b.end());
  EXPECT_EQ(got_a, (std::vector<std::string>{"s/1", "s/2", "s/3"}));
  EXPECT_EQ(got_b, (std::vector<std::string>{"s/1", "s/2", "s/3"}));
  EXPECT_TRUE(t.route("s/1", q1, true).empty());
}

TEST(FanoutRetained, an_older_holder_that_did_not_subscribe_again_gets_nothing) {
  fanout t;
  t.subscribe("old", "door", q1);
  t.subscribed("door", q1);
  // old's SUBSCRIBE found no retained message; one is published later (old gets it live).
  t.subscribe("new", "door", q0);
  t.subscribed("door", q1);
  EXPECT_EQ(t.route("door", q1, true), (std::vector<d>{{"new", q0}}));  // not old's again
}

TEST(FanoutRetained, overlapping_filters_each_get_the_topics_they_match) {
  fanout t;
  t.subscribe("a", "x/#", q1);
  t.subscribe("b", "x/+", q2);
  t.subscribed("x/#", q2);
  // a's copies: x/1 and x/1/2 (x/+ does not match x/1/2).
  EXPECT_EQ(t.route("x/1", q2, true), (std::vector<d>{{"a", q1}}));
  EXPECT_EQ(t.route("x/1/2", q2, true), (std::vector<d>{{"a", q1}}));
  t.subscribed("x/+", q2);
  EXPECT_EQ(t.route("x/1", q2, true), (std::vector<d>{{"b", q2}}));
  EXPECT_TRUE(t.route("x/1/2", q2, true).empty());  // not b's: b's filter does not match it
}

TEST(FanoutRetained, overlapping_filters_answered_before_their_copies) {
  fanout t;
  t.subscribe("a", "x/#", q1);
  t.subscribe("b", "x/+", q1);
  t.subscribed("x/#", q1);
  t.subscribed("x/+", q1);
  // Deferred copies of a's SUBSCRIBE, then b's: x/1/2 can only be a's; each gets x/1 once.
  EXPECT_EQ(t.route("x/1", q1, true), (std::vector<d>{{"b", q1}}));
  EXPECT_EQ(t.route("x/1/2", q1, true), (std::vector<d>{{"a", q1}}));
  EXPECT_EQ(t.route("x/1", q1, true), (std::vector<d>{{"a", q1}}));
  EXPECT_TRUE(t.route("x/1", q1, true).empty());
}

TEST(FanoutRetained, a_client_holding_several_matching_filters_gets_its_highest_qos) {
  fanout t;
  t.subscribe("a", "x/y", q2);
  t.subscribe("a", "x/+", q0);
  t.subscribed("x/y", q2);
  EXPECT_EQ(t.route("x/y", q2, true), (std::vector<d>{{"a", q2}}));
  t.subscribed("x/+", q0);
  EXPECT_EQ(t.route("x/y", q0, true), (std::vector<d>{{"a", q0}}));  // its second SUBSCRIBE's copy
}

TEST(FanoutRetained, a_subscriber_that_left_gets_nothing_and_its_copy_goes_to_nobody_else) {
  fanout t;
  t.subscribe("a", "w/#", q1);
  t.subscribed("w/#", q1);  // a's SUBSCRIBE found no retained w/x
  t.subscribe("b", "w/x", q1);
  t.unsubscribe("b", "w/x");  // before the broker answered
  t.subscribed("w/x", q1);
  EXPECT_TRUE(t.route("w/x", q1, true).empty());  // b's copy: not a's (a did not SUBSCRIBE again)
  t.subscribe("c", "w/#", q1);
  t.remove_client("c");
  t.subscribed("w/#", q1);
  EXPECT_TRUE(t.route("w/x", q1, true).empty());
}

TEST(FanoutRetained, unsubscribe_in_between_then_subscribe_again) {
  fanout t;
  t.subscribe("a", "f", q1);
  EXPECT_TRUE(t.unsubscribe("a", "f"));
  EXPECT_EQ(t.subscribe("a", "f", q1), q1);
  // The broker answers SUBSCRIBE, UNSUBSCRIBE, SUBSCRIBE in order: the first copy answers the
  // subscription a gave up, the second its current one. One copy for a.
  t.subscribed("f", q1);
  EXPECT_TRUE(t.route("f", q1, true).empty());
  t.subscribed("f", q1);
  EXPECT_EQ(t.route("f", q1, true), (std::vector<d>{{"a", q1}}));
  EXPECT_TRUE(t.route("f", q1, true).empty());
}

TEST(FanoutRetained, copies_before_the_suback_go_to_the_oldest_subscribe_in_flight) {
  // A broker that sends a SUBSCRIBE's retained copies before its SUBACK (Mosquitto does not).
  fanout t;
  t.subscribe("a", "f", q1);
  t.subscribe("b", "f", q1);
  EXPECT_EQ(t.route("f", q1, true), (std::vector<d>{{"a", q1}}));
  EXPECT_EQ(t.route("f", q1, true), (std::vector<d>{{"b", q1}}));
  EXPECT_TRUE(t.route("f", q1, true).empty());
}

TEST(FanoutRetained, records_close_when_the_broker_can_send_them_nothing_more) {
  fanout t;
  t.subscribe("a", "f", q1);
  t.subscribe("b", "g", q0);
  t.subscribe("c", "h", q1);
  EXPECT_EQ(t.open_subscribes(), 3U);
  t.subscribed("f", std::nullopt);  // refused
  EXPECT_EQ(t.open_subscribes(), 2U);
  t.subscribed("g", q0);
  t.subscribed("h", q1);  // a later SUBACK: g's QoS 0 copies all came before it
  EXPECT_EQ(t.open_subscribes(), 1U);
  t.subscribe("d", "i", q1);
  t.subscribed("i", q1);
  EXPECT_EQ(t.open_subscribes(), 2U);  // h's QoS 1 copies may still come, deferred
  EXPECT_EQ(t.route("h", q1, true), (std::vector<d>{{"c", q1}}));
  EXPECT_TRUE(t.route("g", q0, true).empty());  // g's record is closed
  t.restore();
  EXPECT_EQ(t.open_subscribes(), t.filter_count());
}

TEST(FanoutRetained, open_records_are_bounded) {
  fanout t;
  for (int i = 0; i < 10000; ++i) t.subscribe("a", "f", q1);  // never answered
  EXPECT_EQ(t.filter_count(), 1U);
  EXPECT_LE(t.open_subscribes(), 1U + 4096U);
}

TEST(FanoutRestore, lists_every_filter_at_its_holders_highest_qos) {
  fanout t;
  t.subscribe("a", "b/#", q0);
  t.subscribe("b", "b/#", q1);
  t.subscribe("a", "a", q2);
  t.subscribe("high", "c", q2);
  t.subscribe("low", "c", q0);
  t.unsubscribe("high", "c");  // upstream stayed at 2; a restore subscribes at 0
  EXPECT_EQ(t.restore(), (std::vector<fq>{{"a", q2}, {"b/#", q1}, {"c", q0}}));
  EXPECT_EQ(t.upstream_qos("c"), q0);
  EXPECT_TRUE(fanout{}.restore().empty());
}

TEST(FanoutRestore, retained_copies_after_a_restore_go_to_every_holder_once) {
  fanout t;
  t.subscribe("a", "s", q1);
  t.subscribe("b", "s", q2);
  t.subscribe("c", "other", q2);
  t.restore();  // the SUBACKs of the lost session never come
  t.subscribed("other", q2);
  t.subscribed("s", q2);
  EXPECT_EQ(t.route("s", q2, true), (std::vector<d>{{"a", q1}, {"b", q2}}));
  EXPECT_TRUE(t.route("s", q2, true).empty());
  t.subscribe("d", "s", q0);  // a SUBSCRIBE after the restore: its own copy
  t.subscribed("s", q2);
  EXPECT_EQ(t.route("s", q2, true), (std::vector<d>{{"d", q0}}));
}

TEST(FanoutRestore, two_restored_holders_of_one_filter_both_get_the_copy) {
  // The persistence variant of the bug: a and b restored from the store (hold), the broker lost
  // the shared session, then a restore: one SUBSCRIBE, one copy, for both.
  fanout t;
  t.hold("a", "cfg/#", q1);
  t.hold("b", "cfg/#", q1);
  EXPECT_EQ(t.restore(), (std::vector<fq>{{"cfg/#", q1}}));
  t.subscribed("cfg/#", q1);
  EXPECT_EQ(t.route("cfg/x", q1, true), (std::vector<d>{{"a", q1}, {"b", q1}}));
  EXPECT_TRUE(t.route("cfg/x", q1, true).empty());
}

TEST(FanoutRestore, two_subscribes_in_flight_resent_after_a_restore_give_one_copy_each) {
  // a and b SUBSCRIBEd f, the connection dropped before the SUBACKs and the broker lost the
  // session: the runtime resends both SUBSCRIBEs; the restore's one record of f holds both.
  fanout t;
  t.subscribe("a", "f", q1);
  t.subscribe("b", "f", q1);
  EXPECT_EQ(t.restore(), (std::vector<fq>{{"f", q1}}));
  EXPECT_EQ(t.open_subscribes(), 1U);
  t.subscribed("f", q1);
  t.subscribed("f", q1);  // nothing left to answer: ignored
  EXPECT_EQ(t.route("f", q1, true), (std::vector<d>{{"a", q1}, {"b", q1}}));
  EXPECT_TRUE(t.route("f", q1, true).empty());  // the second SUBSCRIBE's copy: both have it
}

TEST(FanoutHold, restored_holders_get_messages_without_a_subscribe_nor_retained_copies) {
  fanout t;
  t.hold("a", "s/#", q1);
  t.hold("b", "s/#", q2);
  t.hold("b", "x", q0);
  EXPECT_TRUE(t.holds("a"));
  EXPECT_EQ(t.filters_of("b"), (std::vector<std::string>{"s/#", "x"}));
  EXPECT_EQ(t.upstream_qos("s/#"), q2);
  EXPECT_EQ(t.open_subscribes(), 0U);
  EXPECT_EQ(t.route("s/t", q2, false), (std::vector<d>{{"a", q1}, {"b", q2}}));
  // Retained copies answer a SUBSCRIBE, and nobody sent one.
  EXPECT_TRUE(t.route("s/t", q2, true).empty());
  EXPECT_EQ(t.subscribe("c", "s/#", q0), q2);  // a new subscriber SUBSCRIBEs: its retained copies
  t.subscribed("s/#", q2);
  EXPECT_EQ(t.route("s/t", q2, true), (std::vector<d>{{"c", q0}}));
  // A restore (the broker lost the session after all) treats held filters as any other.
  EXPECT_EQ(t.restore(), (std::vector<fq>{{"s/#", q2}, {"x", q0}}));
  t.subscribed("s/#", q2);
  t.subscribed("x", q0);
  EXPECT_EQ(t.route("x", q1, true), (std::vector<d>{{"b", q0}}));
  EXPECT_EQ(t.remove_client("b"), (std::vector<std::string>{"x"}));
}

TEST(FanoutQueries, filters_of_and_granted) {
  fanout t;
  t.subscribe("a", "y", q1);
  t.subscribe("a", "x", q2);
  EXPECT_EQ(t.filters_of("a"), (std::vector<std::string>{"x", "y"}));
  EXPECT_TRUE(t.filters_of("b").empty());
  EXPECT_EQ(t.granted("a", "x"), q2);
  EXPECT_EQ(t.granted("a", "z"), std::nullopt);
  EXPECT_EQ(t.granted("b", "x"), std::nullopt);
}

TEST(FanoutScale, many_clients_on_one_filter_are_one_upstream_subscription) {
  fanout t;
  for (int i = 0; i < 1000; ++i) t.subscribe("c" + std::to_string(i), "all", i % 2 == 0 ? q0 : q1);
  EXPECT_EQ(t.filter_count(), 1U);
  EXPECT_EQ(t.upstream_qos("all"), q1);
  const auto out = t.route("all", q1, false);
  ASSERT_EQ(out.size(), 1000U);
  int at1 = 0;
  for (const auto& x : out) at1 += x.q == q1 ? 1 : 0;
  EXPECT_EQ(at1, 500);
  for (int i = 0; i < 999; ++i) EXPECT_FALSE(t.unsubscribe("c" + std::to_string(i), "all"));
  EXPECT_TRUE(t.unsubscribe("c999", "all"));
}

}  // namespace
}  // namespace mqttsn
