// The fan-out table of aggregating mode (mqttsn/fanout.hpp): upstream SUBSCRIBE/UNSUBSCRIBE
// decisions, per-client delivery QoS, the retained-message rule of DECISIONS.md and restore.
#include "mqttsn/fanout.hpp"

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

TEST(FanoutRetained, retained_copies_go_only_to_the_newest_subscriber) {
  fanout t;
  t.subscribe("old", "door", q1);
  EXPECT_EQ(t.route("door", q1, true), (std::vector<d>{{"old", q1}}));  // old's own SUBSCRIBE
  t.subscribe("new", "door", q0);
  EXPECT_EQ(t.route("door", q1, true), (std::vector<d>{{"new", q0}}));
  // Live messages (RETAIN=0) go to everybody.
  EXPECT_EQ(t.route("door", q1, false), (std::vector<d>{{"new", q0}, {"old", q1}}));
}

TEST(FanoutRetained, the_most_recent_subscribe_among_overlapping_filters_decides) {
  fanout t;
  t.subscribe("wild", "home/#", q1);
  t.subscribe("exact", "home/door", q2);
  // The retained home/door the exact SUBSCRIBE triggers: not again to "wild".
  EXPECT_EQ(t.route("home/door", q2, true), (std::vector<d>{{"exact", q2}}));
  // Then a re-SUBSCRIBE of home/# (a third client): its retained copies go to that client only.
  t.subscribe("third", "home/#", q0);
  EXPECT_EQ(t.route("home/door", q2, true), (std::vector<d>{{"third", q0}}));
  EXPECT_EQ(t.route("home/window", q2, true), (std::vector<d>{{"third", q0}}));
}

TEST(FanoutRetained, a_client_holding_several_matching_filters_gets_its_highest_qos) {
  fanout t;
  t.subscribe("a", "x/y", q2);
  t.subscribe("a", "x/+", q0);
  EXPECT_EQ(t.route("x/y", q2, true), (std::vector<d>{{"a", q2}}));
}

TEST(FanoutRetained, a_subscriber_that_left_gets_nothing_and_older_subscribes_decide) {
  fanout t;
  t.subscribe("a", "w/#", q1);
  t.subscribe("b", "w/x", q1);
  t.unsubscribe("b", "w/x");
  EXPECT_EQ(t.route("w/x", q1, true), (std::vector<d>{{"a", q1}}));
  t.subscribe("c", "w/#", q1);
  t.unsubscribe("c", "w/#");
  EXPECT_TRUE(t.route("w/x", q1, true).empty());  // w/#'s newest SUBSCRIBE was c's, and c left
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

TEST(FanoutRestore, retained_copies_after_a_restore_go_to_every_holder) {
  fanout t;
  t.subscribe("a", "s", q1);
  t.subscribe("b", "s", q2);
  t.subscribe("c", "other", q2);
  t.restore();
  EXPECT_EQ(t.route("s", q2, true), (std::vector<d>{{"a", q1}, {"b", q2}}));
  t.subscribe("d", "s", q0);  // a SUBSCRIBE after the restore is the newest again
  EXPECT_EQ(t.route("s", q2, true), (std::vector<d>{{"d", q0}}));
}

TEST(FanoutHold, restored_holders_get_messages_without_a_subscribe_nor_retained_copies) {
  fanout t;
  t.hold("a", "s/#", q1);
  t.hold("b", "s/#", q2);
  t.hold("b", "x", q0);
  EXPECT_TRUE(t.holds("a"));
  EXPECT_EQ(t.filters_of("b"), (std::vector<std::string>{"s/#", "x"}));
  EXPECT_EQ(t.upstream_qos("s/#"), q2);
  EXPECT_EQ(t.route("s/t", q2, false), (std::vector<d>{{"a", q1}, {"b", q2}}));
  // Retained copies answer a SUBSCRIBE, and nobody sent one.
  EXPECT_TRUE(t.route("s/t", q2, true).empty());
  EXPECT_EQ(t.subscribe("c", "s/#", q0), q2);  // a new subscriber SUBSCRIBEs: its retained copies
  EXPECT_EQ(t.route("s/t", q2, true), (std::vector<d>{{"c", q0}}));
  // A restore (the broker lost the session after all) treats held filters as any other.
  EXPECT_EQ(t.restore(), (std::vector<fq>{{"s/#", q2}, {"x", q0}}));
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
