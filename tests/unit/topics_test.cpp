// Topic name/filter rules and matching (MQTT 3.1.1 §1.5.3, §4.7), short names, the predefined id
// table and the per-client topic table, each bound tested at the bound.
#include "mqttsn/topics.hpp"

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

namespace mqttsn {
namespace {

using namespace std::string_view_literals;
using client_knows = topic_table::client_knows;
using add_result = predefined_topics::add_result;

// ---------------------------------------------------------------------------------------------
// Validation

struct validity_case {
  std::string_view text;
  std::string_view why;
};

// Well-formed UTF-8 at every sequence length and at the edges of every Unicode Table 3-7 range.
const std::vector<validity_case> well_formed_utf8 = {
    {"\xC2\x80"sv, "U+0080, smallest 2-byte"},
    {"\xC3\xBC"sv, "U+00FC u-umlaut"},
    {"\xDF\xBF"sv, "U+07FF, largest 2-byte"},
    {"\xE0\xA0\x80"sv, "U+0800, smallest 3-byte"},
    {"\xE2\x82\xAC"sv, "U+20AC euro sign"},
    {"\xED\x9F\xBF"sv, "U+D7FF, just below the surrogates"},
    {"\xEE\x80\x80"sv, "U+E000, just above the surrogates"},
    {"\xEF\xBF\xBF"sv, "U+FFFF, largest 3-byte"},
    {"\xF0\x90\x80\x80"sv, "U+10000, smallest 4-byte"},
    {"\xF0\x9F\x98\x80"sv, "U+1F600 emoji"},
    {"\xF3\xBF\xBF\xBF"sv, "U+FFFFF"},
    {"\xF4\x8F\xBF\xBF"sv, "U+10FFFF, largest code point"},
    {"\xEF\xBB\xBF"
     "a"sv,
     "U+FEFF BOM is an ordinary character"},
    {"caf\xC3\xA9/\xE2\x82\xAC/\xF0\x9F\x98\x80"sv, "mixed lengths across levels"},
};

const std::vector<validity_case> malformed_utf8 = {
    {"\xC0\x80"sv, "overlong U+0000"},
    {"\xC1\xBF"sv, "overlong U+007F"},
    {"\xE0\x80\x80"sv, "overlong 3-byte U+0000"},
    {"\xE0\x9F\xBF"sv, "overlong 3-byte U+07FF"},
    {"\xF0\x80\x80\x80"sv, "overlong 4-byte U+0000"},
    {"\xF0\x8F\xBF\xBF"sv, "overlong 4-byte U+FFFF"},
    {"\xED\xA0\x80"sv, "surrogate U+D800"},
    {"\xED\xBF\xBF"sv, "surrogate U+DFFF"},
    {"\xED\xA0\xBD\xED\xB8\x80"sv, "CESU-8 surrogate pair"},
    {"\xF4\x90\x80\x80"sv, "U+110000, above U+10FFFF"},
    {"\xF5\x80\x80\x80"sv, "lead byte F5"},
    {"\xF7\xBF\xBF\xBF"sv, "lead byte F7"},
    {"\xF8\x88\x80\x80\x80"sv, "5-byte form"},
    {"\xFC\x84\x80\x80\x80\x80"sv, "6-byte form"},
    {"\xFE"sv, "byte FE"},
    {"\xFF"sv, "byte FF"},
    {"\x80"sv, "lone continuation 80"},
    {"\xBF"sv, "lone continuation BF"},
    {"a\x80"
     "b"sv,
     "continuation between ASCII"},
    {"\xC3\xBC\x80"sv, "extra continuation after a 2-byte character"},
    {"\xC3"sv, "truncated 2-byte"},
    {"a\xC3"sv, "truncated 2-byte at the end"},
    {"\xE2\x82"sv, "truncated 3-byte"},
    {"\xE2"sv, "3-byte lead alone"},
    {"\xF0\x9F\x98"sv, "truncated 4-byte"},
    {"\xF0\x9F"sv, "4-byte lead plus one"},
    {"\xC3("sv, "2-byte lead followed by ASCII"},
    {"\xE2(\xA1"sv, "3-byte with ASCII second byte"},
    {"\xE2\x82("sv, "3-byte with ASCII third byte"},
    {"\xF0\x9F(\x80"sv, "4-byte with ASCII third byte"},
    {"\xF0\x9F\x98("sv, "4-byte with ASCII fourth byte"},
    {"\xE2\x82/"sv, "3-byte cut by a level separator"},
    {"\xC3\xC3\xBC"sv, "lead byte where a continuation is due"},
};

TEST(topic_name, accepts_plain_ascii_names) {
  for (const auto name : {"a"sv, "sport"sv, "sport/tennis/player1"sv, "$SYS/broker/load"sv, " "sv,
                          "a b"sv, "ACCOUNTS"sv, "x!\"$%&'()*,-.:;<=>?@[\\]^_`{|}~"sv}) {
    EXPECT_TRUE(is_valid_topic_name(name)) << name;
  }
}

TEST(topic_name, accepts_empty_levels) {
  for (const auto name : {"/"sv, "//"sv, "a//b"sv, "/a"sv, "a/"sv, "/finance"sv, "sport/"sv}) {
    EXPECT_TRUE(is_valid_topic_name(name)) << name;
  }
}

TEST(topic_name, accepts_control_characters_other_than_nul) {
  // §1.5.3 says such characters SHOULD NOT be used, which a receiver may but need not enforce.
  EXPECT_TRUE(is_valid_topic_name("\x01"sv));
  EXPECT_TRUE(
      is_valid_topic_name("a\x1F"
                          "b"sv));
  EXPECT_TRUE(is_valid_topic_name("\x7F"sv));
  EXPECT_TRUE(is_valid_topic_name("\xC2\x9F"sv));  // U+009F, a C1 control
}

TEST(topic_name, accepts_well_formed_multibyte_utf8) {
  for (const auto& c : well_formed_utf8) EXPECT_TRUE(is_valid_topic_name(c.text)) << c.why;
}

TEST(topic_name, rejects_malformed_utf8) {
  for (const auto& c : malformed_utf8) {
    EXPECT_FALSE(is_valid_topic_name(c.text)) << c.why;
    std::string inside = "a/";
    inside.append(c.text);
    inside.append("/b");
    EXPECT_FALSE(is_valid_topic_name(inside)) << c.why << " inside a name";
  }
}

TEST(topic_name, rejects_empty_name) { EXPECT_FALSE(is_valid_topic_name(""sv)); }

TEST(topic_name, rejects_nul_character) {
  EXPECT_FALSE(is_valid_topic_name("\0"sv));
  EXPECT_FALSE(is_valid_topic_name("a\0b"sv));
  EXPECT_FALSE(is_valid_topic_name("a/\0"sv));
}

TEST(topic_name, rejects_wildcards_anywhere) {
  for (const auto name :
       {"+"sv, "#"sv, "a/+"sv, "a/#"sv, "+/a"sv, "a+b"sv, "sport#"sv, "a/b#"sv, "#/a"sv}) {
    EXPECT_FALSE(is_valid_topic_name(name)) << name;
  }
}

TEST(topic_name, accepts_65535_bytes_and_rejects_65536) {
  EXPECT_TRUE(is_valid_topic_name(std::string(65535, 'a')));
  EXPECT_FALSE(is_valid_topic_name(std::string(65536, 'a')));
  EXPECT_FALSE(is_valid_topic_name(std::string(100000, 'a')));
}

TEST(topic_name, length_bound_counts_bytes_not_characters) {
  const std::string euro = "\xE2\x82\xAC";
  EXPECT_TRUE(is_valid_topic_name(std::string(65532, 'a') + euro));   // 65535 bytes
  EXPECT_FALSE(is_valid_topic_name(std::string(65533, 'a') + euro));  // 65536 bytes
  EXPECT_FALSE(
      is_valid_topic_name(std::string(65533, 'a') + "\xE2\x82"));  // truncated at the bound
}

TEST(topic_filter, accepts_every_valid_name) {
  for (const auto name : {"a"sv, "/"sv, "a//b"sv, "/a"sv, "a/"sv, "$SYS/broker"sv}) {
    EXPECT_TRUE(is_valid_topic_filter(name)) << name;
  }
  for (const auto& c : well_formed_utf8) EXPECT_TRUE(is_valid_topic_filter(c.text)) << c.why;
}

TEST(topic_filter, accepts_wildcards_filling_whole_levels) {
  for (const auto filter :
       {"#"sv, "+"sv, "+/+"sv, "/+"sv, "+/"sv, "a/#"sv, "/#"sv, "+/#"sv, "a/+/b"sv, "+/tennis/#"sv,
        "sport/tennis/player1/#"sv, "$SYS/#"sv, "+/+/+"sv, "//+//"sv, "\xC3\xBC/+/#"sv}) {
    EXPECT_TRUE(is_valid_topic_filter(filter)) << filter;
  }
}

TEST(topic_filter, rejects_hash_that_is_not_the_whole_last_level) {
  for (const auto filter : {"a#"sv, "a/#/b"sv, "a/b#"sv, "#/"sv, "#/a"sv, "##"sv, "#a"sv, "a/#b"sv,
                            "+#"sv, "#+"sv, "/##"sv}) {
    EXPECT_FALSE(is_valid_topic_filter(filter)) << filter;
  }
}

TEST(topic_filter, rejects_plus_that_is_not_a_whole_level) {
  for (const auto filter :
       {"a+"sv, "+a"sv, "a/+b"sv, "a/b+"sv, "++"sv, "sport+"sv, "a/+b/c"sv, "+\xC3\xBC"sv}) {
    EXPECT_FALSE(is_valid_topic_filter(filter)) << filter;
  }
}

TEST(topic_filter, rejects_empty_filter_and_nul) {
  EXPECT_FALSE(is_valid_topic_filter(""sv));
  EXPECT_FALSE(is_valid_topic_filter("\0"sv));
  EXPECT_FALSE(is_valid_topic_filter("a/\0/#"sv));
}

TEST(topic_filter, rejects_malformed_utf8) {
  for (const auto& c : malformed_utf8) {
    EXPECT_FALSE(is_valid_topic_filter(c.text)) << c.why;
    std::string inside = "+/";
    inside.append(c.text);
    inside.append("/#");
    EXPECT_FALSE(is_valid_topic_filter(inside)) << c.why << " inside a filter";
  }
}

TEST(topic_filter, accepts_65535_bytes_and_rejects_65536) {
  EXPECT_TRUE(is_valid_topic_filter(std::string(65533, 'a') + "/#"));
  EXPECT_FALSE(is_valid_topic_filter(std::string(65534, 'a') + "/#"));
  EXPECT_TRUE(is_valid_topic_filter(std::string(65535, 'a')));
  EXPECT_FALSE(is_valid_topic_filter(std::string(65536, 'a')));
}

TEST(topic_filter, has_wildcards_finds_plus_or_hash) {
  for (const auto filter : {"+"sv, "#"sv, "a/+"sv, "a/#"sv, "+/b"sv, "a+b"sv, "a#"sv}) {
    EXPECT_TRUE(has_wildcards(filter)) << filter;
  }
  for (const auto filter : {""sv, "a"sv, "a/b"sv, "/"sv, "$SYS"sv, "\xC3\xBC"sv}) {
    EXPECT_FALSE(has_wildcards(filter)) << filter;
  }
}

// ---------------------------------------------------------------------------------------------
// Matching

struct match_case {
  std::string_view filter;
  std::string_view name;
  bool matches;
};

void expect_matches(const std::vector<match_case>& cases) {
  for (const auto& c : cases) {
    ASSERT_TRUE(is_valid_topic_filter(c.filter)) << "bad test filter " << c.filter;
    ASSERT_TRUE(is_valid_topic_name(c.name)) << "bad test name " << c.name;
    EXPECT_EQ(topic_matches(c.filter, c.name), c.matches)
        << "filter '" << c.filter << "' name '" << c.name << "' expected "
        << (c.matches ? "match" : "no match");
  }
}

TEST(topic_matches, multi_level_wildcard_examples_from_the_spec) {
  expect_matches({
      {"sport/tennis/player1/#", "sport/tennis/player1", true},
      {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
      {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
      {"sport/tennis/player1/#", "sport/tennis/player2", false},
      {"sport/tennis/player1/#", "sport/tennis/player10", false},
      {"sport/tennis/player1/#", "sport/tennis", false},
      {"sport/#", "sport", true},
      {"sport/#", "sport/", true},
      {"sport/#", "sport/tennis/player1", true},
      {"sport/#", "sports", false},
      {"sport/#", "spor", false},
      {"#", "sport", true},
      {"#", "sport/tennis/player1", true},
      {"#", "/", true},
      {"#", "/finance", true},
  });
}

TEST(topic_matches, hash_matches_the_parent_level_and_any_children) {
  expect_matches({
      {"a/#", "a", true},
      {"a/#", "a/", true},
      {"a/#", "a/b", true},
      {"a/#", "a/b/c", true},
      {"a/#", "a//", true},
      {"a/#", "ab", false},
      {"a/#", "b", false},
      {"a/#", "b/a", false},
      {"a/b/#", "a", false},
      {"a/b/#", "a/", false},
      {"/#", "/", true},
      {"/#", "/a", true},
      {"/#", "a", false},
      {"/#", "a/", false},
      {"+/#", "a", true},
      {"+/#", "a/b/c", true},
      {"+/#", "/", true},
  });
}

TEST(topic_matches, single_level_wildcard_examples_from_the_spec) {
  expect_matches({
      {"sport/tennis/+", "sport/tennis/player1", true},
      {"sport/tennis/+", "sport/tennis/player2", true},
      {"sport/tennis/+", "sport/tennis/player1/ranking", false},
      {"sport/tennis/+", "sport/tennis", false},
      {"sport/+", "sport", false},
      {"sport/+", "sport/", true},
      {"sport/+", "sport/tennis", true},
      {"sport/+", "sport/tennis/", false},
      {"+/+", "/finance", true},
      {"/+", "/finance", true},
      {"+", "/finance", false},
      {"+", "finance", true},
      {"+/tennis/#", "sport/tennis/player1", true},
      {"+/tennis/#", "sport/tennis", true},
      {"+/tennis/#", "sport/football", false},
      {"sport/+/player1", "sport/tennis/player1", true},
      {"sport/+/player1", "sport/tennis/player2", false},
  });
}

TEST(topic_matches, plus_matches_exactly_one_possibly_empty_level) {
  expect_matches({
      {"+", "/", false},       {"+/+", "/", true},          {"+/+", "a", false},
      {"+/+", "a/", true},     {"+/+", "a/b", true},        {"+/+", "a/b/c", false},
      {"+/", "a/", true},      {"+/", "/", true},           {"+/", "a", false},
      {"+/", "a/b", false},    {"a/+/b", "a//b", true},     {"a/+/b", "a/x/b", true},
      {"a/+/b", "a/b", false}, {"a/+/b", "a/x/y/b", false}, {"a/+/+", "a/x/", true},
      {"//+//", "////", true}, {"//+//", "//x//", true},    {"//+//", "//x/", false},
      {"+/+/+", "//", true},
  });
}

TEST(topic_matches, filters_starting_with_a_wildcard_do_not_match_dollar_topics) {
  expect_matches({
      {"#", "$SYS/monitor/Clients", false},
      {"#", "$SYS", false},
      {"#", "$", false},
      {"+/monitor/Clients", "$SYS/monitor/Clients", false},
      {"+", "$SYS", false},
      {"+/#", "$SYS/x", false},
      {"+/+", "$a/b", false},
  });
}

TEST(topic_matches, explicit_dollar_filters_match_dollar_topics) {
  expect_matches({
      {"$SYS/#", "$SYS/monitor/Clients", true},
      {"$SYS/#", "$SYS", true},
      {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
      {"$SYS/+/Clients", "$SYS/monitor/Clients", true},
      {"$SYS", "$SYS", true},
      {"$SYS/#", "$SYSX", false},
      {"$SYS/#", "SYS/x", false},
  });
}

TEST(topic_matches, dollar_rule_applies_only_to_the_first_level) {
  expect_matches({
      {"a/+", "a/$b", true},
      {"a/#", "a/$SYS/x", true},
      {"#", "a$", true},
      {"+/+", "a/$", true},
  });
}

TEST(topic_matches, literal_levels_compare_exactly) {
  expect_matches({
      {"ACCOUNTS", "ACCOUNTS", true},
      {"ACCOUNTS", "Accounts", false},
      {"sport/tennis", "sport/tennis", true},
      {"sport/tennis", "sport/tennis/", false},
      {"sport/tennis", "sport/tennis/x", false},
      {"sport/tennis", "sport", false},
      {"sport/tennis", "sport/", false},
      {"sport/tennis/", "sport/tennis/", true},
      {"sport/tennis/", "sport/tennis", false},
      {"a/b", "a/bc", false},
      {"a/bc", "a/b", false},
      {"a/b", "ab/b", false},
      {"a//b", "a//b", true},
      {"a//b", "a/b", false},
      {"a/b", "a//b", false},
      {"/", "/", true},
      {"/", "//", false},
      {"/finance", "finance", false},
      {"finance", "/finance", false},
      {"\xC3\xBC/+", "\xC3\xBC/x", true},
      {"\xC3\xBC/+", "\xC3\xBD/x", false},
  });
}

TEST(topic_matches, every_valid_name_used_as_filter_matches_itself) {
  for (const auto name :
       {"a"sv, "/"sv, "//"sv, "a//b"sv, "/a"sv, "a/"sv, "$SYS/x"sv, "sport/tennis/player1"sv}) {
    EXPECT_TRUE(topic_matches(name, name)) << name;
  }
  for (const auto& c : well_formed_utf8) EXPECT_TRUE(topic_matches(c.text, c.text)) << c.why;
  const std::string longest(65535, 'a');
  EXPECT_TRUE(topic_matches(longest, longest));
  EXPECT_FALSE(topic_matches(longest, std::string(65534, 'a')));
}

TEST(topic_matches, never_throws) {
  static_assert(noexcept(topic_matches(""sv, ""sv)));
  static_assert(noexcept(is_valid_topic_name(""sv)));
  static_assert(noexcept(is_valid_topic_filter(""sv)));
}

// ---------------------------------------------------------------------------------------------
// Short topic names

TEST(short_topic, name_puts_high_byte_first) {
  EXPECT_EQ(short_topic_name(0x4142), "AB");
  EXPECT_EQ(short_topic_name(0x0080), std::string("\x00\x80", 2));
  EXPECT_EQ(short_topic_name(0xFF00), std::string("\xFF\x00", 2));
  EXPECT_EQ(short_topic_name(0x0000), std::string(2, '\0'));
  EXPECT_EQ(short_topic_name(0xFFFF), "\xFF\xFF");
}

TEST(short_topic, id_reads_two_raw_bytes_high_first) {
  EXPECT_EQ(short_topic_id("AB"), topic_id{0x4142});
  EXPECT_EQ(short_topic_id("\x00\x80"sv), topic_id{0x0080});
  EXPECT_EQ(short_topic_id("\xFF\x00"sv), topic_id{0xFF00});
  EXPECT_EQ(short_topic_id("\xFF\xFF"sv), topic_id{0xFFFF});
  EXPECT_EQ(short_topic_id("+#"), topic_id{0x2B23});  // any bytes, wildcards included
}

TEST(short_topic, id_needs_exactly_two_bytes) {
  EXPECT_EQ(short_topic_id(""), std::nullopt);
  EXPECT_EQ(short_topic_id("A"), std::nullopt);
  EXPECT_EQ(short_topic_id("ABC"), std::nullopt);
  EXPECT_EQ(short_topic_id("\xC3\xBC"), topic_id{0xC3BC});  // two bytes, one character
  EXPECT_EQ(short_topic_id("\xE2\x82\xAC"), std::nullopt);  // one character, three bytes
}

TEST(short_topic, name_and_id_round_trip_for_every_id) {
  for (std::uint32_t raw = 0; raw <= 0xFFFF; ++raw) {
    const auto id = static_cast<topic_id>(raw);
    const std::string name = short_topic_name(id);
    ASSERT_EQ(name.size(), 2U);
    ASSERT_EQ(short_topic_id(name), id) << raw;
  }
}

// ---------------------------------------------------------------------------------------------
// Predefined topics

TEST(predefined_topics, add_then_look_up_both_ways) {
  predefined_topics table;
  EXPECT_EQ(table.add(1, "sensors/temp"), add_result::added);
  EXPECT_EQ(table.add(0x0100, "sensors/hum"), add_result::added);
  EXPECT_EQ(table.size(), 2U);
  ASSERT_NE(table.name(1), nullptr);
  EXPECT_EQ(*table.name(1), "sensors/temp");
  ASSERT_NE(table.name(0x0100), nullptr);
  EXPECT_EQ(*table.name(0x0100), "sensors/hum");
  EXPECT_EQ(table.id("sensors/temp"), topic_id{1});
  EXPECT_EQ(table.id("sensors/hum"), topic_id{0x0100});
}

TEST(predefined_topics, unknown_lookups_find_nothing) {
  predefined_topics table;
  EXPECT_EQ(table.name(1), nullptr);
  EXPECT_EQ(table.id("a"), std::nullopt);
  ASSERT_EQ(table.add(1, "a"), add_result::added);
  EXPECT_EQ(table.name(2), nullptr);
  EXPECT_EQ(table.id("b"), std::nullopt);
  EXPECT_EQ(table.id("a/"), std::nullopt);
  EXPECT_EQ(table.id(""), std::nullopt);
}

TEST(predefined_topics, id_lookup_takes_a_view_into_a_larger_buffer) {
  predefined_topics table;
  ASSERT_EQ(table.add(7, "a/b"), add_result::added);
  const std::string_view buffer = "a/bc";
  EXPECT_EQ(table.id(buffer.substr(0, 3)), topic_id{7});
  EXPECT_EQ(table.id(buffer), std::nullopt);
}

TEST(predefined_topics, accepts_the_extreme_usable_ids) {
  predefined_topics table;
  EXPECT_EQ(table.add(0x0001, "low"), add_result::added);
  EXPECT_EQ(table.add(0xFFFE, "high"), add_result::added);
  EXPECT_EQ(table.id("high"), topic_id{0xFFFE});
}

TEST(predefined_topics, rejects_reserved_ids) {
  predefined_topics table;
  EXPECT_EQ(table.add(0x0000, "a"), add_result::reserved_id);
  EXPECT_EQ(table.add(0xFFFF, "a"), add_result::reserved_id);
  EXPECT_EQ(table.size(), 0U);
  EXPECT_EQ(table.id("a"), std::nullopt);
}

TEST(predefined_topics, rejects_invalid_names) {
  predefined_topics table;
  EXPECT_EQ(table.add(1, ""), add_result::invalid_name);
  EXPECT_EQ(table.add(1, "a/+"), add_result::invalid_name);
  EXPECT_EQ(table.add(1, "a/#"), add_result::invalid_name);
  EXPECT_EQ(table.add(1, std::string("a\0b", 3)), add_result::invalid_name);
  EXPECT_EQ(table.add(1, "\xC0\x80"), add_result::invalid_name);
  EXPECT_EQ(table.add(1, std::string(65536, 'a')), add_result::invalid_name);
  EXPECT_EQ(table.size(), 0U);
  EXPECT_EQ(table.name(1), nullptr);
}

TEST(predefined_topics, reserved_id_is_reported_before_an_invalid_name) {
  predefined_topics table;
  EXPECT_EQ(table.add(0, "+"), add_result::reserved_id);
}

TEST(predefined_topics, duplicate_id_leaves_the_table_unchanged) {
  predefined_topics table;
  ASSERT_EQ(table.add(5, "first"), add_result::added);
  EXPECT_EQ(table.add(5, "second"), add_result::duplicate_id);
  EXPECT_EQ(table.size(), 1U);
  EXPECT_EQ(*table.name(5), "first");
  EXPECT_EQ(table.id("first"), topic_id{5});
  EXPECT_EQ(table.id("second"), std::nullopt);
}

TEST(predefined_topics, duplicate_name_leaves_the_table_unchanged) {
  predefined_topics table;
  ASSERT_EQ(table.add(5, "first"), add_result::added);
  EXPECT_EQ(table.add(6, "first"), add_result::duplicate_name);
  EXPECT_EQ(table.size(), 1U);
  EXPECT_EQ(table.name(6), nullptr);
  EXPECT_EQ(table.id("first"), topic_id{5});
}

TEST(predefined_topics, re_adding_the_same_pair_is_a_duplicate_id) {
  predefined_topics table;
  ASSERT_EQ(table.add(5, "first"), add_result::added);
  EXPECT_EQ(table.add(5, "first"), add_result::duplicate_id);
  EXPECT_EQ(table.size(), 1U);
}

TEST(predefined_topics, accepts_two_character_and_dollar_names) {
  predefined_topics table;
  EXPECT_EQ(table.add(1, "ab"), add_result::added);
  EXPECT_EQ(table.add(2, "$SYS/x"), add_result::added);
  EXPECT_EQ(table.add(3, std::string(65535, 'n')), add_result::added);
  EXPECT_EQ(table.id(std::string(65535, 'n')), topic_id{3});
}

TEST(predefined_topics, clear_forgets_everything) {
  predefined_topics table;
  ASSERT_EQ(table.add(1, "a"), add_result::added);
  ASSERT_EQ(table.add(2, "b"), add_result::added);
  table.clear();
  EXPECT_EQ(table.size(), 0U);
  EXPECT_EQ(table.name(1), nullptr);
  EXPECT_EQ(table.id("b"), std::nullopt);
  EXPECT_EQ(table.add(1, "b"), add_result::added);  // both id and name are free again
}

// ---------------------------------------------------------------------------------------------
// Per-client topic table

TEST(topic_table, assigns_ids_from_one_upwards) {
  topic_table table(10);
  EXPECT_EQ(table.assign("a"), topic_id{1});
  EXPECT_EQ(table.assign("b"), topic_id{2});
  EXPECT_EQ(table.assign("c"), topic_id{3});
  EXPECT_EQ(table.size(), 3U);
  EXPECT_EQ(table.max_topics(), 10U);
}

TEST(topic_table, assign_returns_the_existing_id_for_a_known_name) {
  topic_table table(10);
  ASSERT_EQ(table.assign("a"), topic_id{1});
  ASSERT_EQ(table.assign("b"), topic_id{2});
  EXPECT_EQ(table.assign("a"), topic_id{1});
  EXPECT_EQ(table.size(), 2U);
  EXPECT_EQ(table.assign("c"), topic_id{3});  // the repeat did not consume an id
}

TEST(topic_table, lookups_work_both_ways) {
  topic_table table(10);
  ASSERT_EQ(table.assign("sensors/temp"), topic_id{1});
  ASSERT_NE(table.name(1), nullptr);
  EXPECT_EQ(*table.name(1), "sensors/temp");
  EXPECT_EQ(table.id("sensors/temp"), topic_id{1});
  EXPECT_EQ(table.name(2), nullptr);
  EXPECT_EQ(table.name(0x0000), nullptr);
  EXPECT_EQ(table.name(0xFFFF), nullptr);
  EXPECT_EQ(table.id("sensors"), std::nullopt);
}

TEST(topic_table, lookups_take_a_view_into_a_larger_buffer) {
  topic_table table(10);
  const std::string_view buffer = "a/bc";
  ASSERT_EQ(table.assign(buffer.substr(0, 3)), topic_id{1});
  EXPECT_EQ(*table.name(1), "a/b");
  EXPECT_EQ(table.id("a/b"), topic_id{1});
  EXPECT_EQ(table.id(buffer), std::nullopt);
}

TEST(topic_table, assign_leaves_validation_to_the_caller) {
  topic_table table(10);
  EXPECT_EQ(table.assign("a/+"), topic_id{1});
  EXPECT_EQ(table.assign(""), topic_id{2});
}

TEST(topic_table, full_table_refuses_new_names_but_resolves_existing_ones) {
  topic_table table(3);
  ASSERT_EQ(table.assign("a"), topic_id{1});
  ASSERT_EQ(table.assign("b"), topic_id{2});
  ASSERT_EQ(table.assign("c"), topic_id{3});
  EXPECT_EQ(table.assign("d"), std::nullopt);
  EXPECT_EQ(table.size(), 3U);
  EXPECT_EQ(table.id("d"), std::nullopt);
  EXPECT_EQ(table.assign("a"), topic_id{1});
  EXPECT_EQ(table.assign("c"), topic_id{3});
  EXPECT_EQ(table.id("b"), topic_id{2});
  EXPECT_EQ(*table.name(3), "c");
}

TEST(topic_table, zero_capacity_table_assigns_nothing) {
  topic_table table(0);
  EXPECT_EQ(table.assign("a"), std::nullopt);
  EXPECT_EQ(table.size(), 0U);
}

TEST(topic_table, id_space_ends_at_fffe_without_wrapping) {
  // 65534 assignments: runs in tens of milliseconds.
  topic_table table(std::numeric_limits<std::size_t>::max());
  std::string name;
  for (std::uint32_t expected = 1; expected <= 0xFFFE; ++expected) {
    name = "t/" + std::to_string(expected);
    const auto id = table.assign(name);
    ASSERT_EQ(id, static_cast<topic_id>(expected));
  }
  EXPECT_EQ(table.size(), 0xFFFEU);
  EXPECT_EQ(table.assign("one/more"), std::nullopt);
  EXPECT_EQ(table.assign("another"), std::nullopt);
  EXPECT_EQ(table.size(), 0xFFFEU);
  EXPECT_EQ(table.name(0xFFFF), nullptr);
  EXPECT_EQ(table.name(0x0000), nullptr);
  EXPECT_EQ(table.assign("t/1"), topic_id{1});
  EXPECT_EQ(table.assign("t/65534"), topic_id{0xFFFE});
  EXPECT_EQ(*table.name(0xFFFE), "t/65534");
}

TEST(topic_table, new_entries_are_unknown_to_the_client) {
  topic_table table(10);
  const auto id = table.assign("a");
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(table.known(*id), client_knows::no);
}

TEST(topic_table, set_known_records_each_state) {
  topic_table table(10);
  const topic_id id = table.assign("a").value();
  table.set_known(id, client_knows::yes);
  EXPECT_EQ(table.known(id), client_knows::yes);
  table.set_known(id, client_knows::refused);
  EXPECT_EQ(table.known(id), client_knows::refused);
  table.set_known(id, client_knows::no);
  EXPECT_EQ(table.known(id), client_knows::no);
}

TEST(topic_table, reassigning_a_known_name_keeps_its_state) {
  topic_table table(10);
  const topic_id id = table.assign("a").value();
  table.set_known(id, client_knows::yes);
  EXPECT_EQ(table.assign("a"), id);
  EXPECT_EQ(table.known(id), client_knows::yes);
}

TEST(topic_table, unknown_id_is_not_known_and_cannot_be_marked) {
  topic_table table(10);
  EXPECT_EQ(table.known(1), client_knows::no);
  table.set_known(1, client_knows::yes);
  EXPECT_EQ(table.known(1), client_knows::no);
  EXPECT_EQ(table.size(), 0U);
  EXPECT_EQ(table.name(1), nullptr);
  EXPECT_EQ(table.assign("a"), topic_id{1});
  EXPECT_EQ(table.known(1), client_knows::no);
}

TEST(topic_table, forget_client_knowledge_keeps_refusals) {
  topic_table table(10);
  const topic_id known_id = table.assign("known").value();
  const topic_id refused_id = table.assign("refused").value();
  const topic_id fresh_id = table.assign("fresh").value();
  table.set_known(known_id, client_knows::yes);
  table.set_known(refused_id, client_knows::refused);
  table.forget_client_knowledge();
  EXPECT_EQ(table.known(known_id), client_knows::no);
  EXPECT_EQ(table.known(refused_id), client_knows::refused);
  EXPECT_EQ(table.known(fresh_id), client_knows::no);
  EXPECT_EQ(table.size(), 3U);
  EXPECT_EQ(table.id("known"), known_id);  // mappings survive, only the knowledge is reset
}

TEST(topic_table, clear_empties_the_table_and_restarts_ids_at_one) {
  topic_table table(2);
  ASSERT_EQ(table.assign("a"), topic_id{1});
  ASSERT_EQ(table.assign("b"), topic_id{2});
  table.set_known(1, client_knows::yes);
  table.clear();
  EXPECT_EQ(table.size(), 0U);
  EXPECT_EQ(table.name(1), nullptr);
  EXPECT_EQ(table.id("a"), std::nullopt);
  EXPECT_EQ(table.known(1), client_knows::no);
  EXPECT_EQ(table.max_topics(), 2U);
  // Documented: ids are reused after a clear (only call it when the client's session ends).
  EXPECT_EQ(table.assign("c"), topic_id{1});
  EXPECT_EQ(table.assign("a"), topic_id{2});
  EXPECT_EQ(table.assign("b"), std::nullopt);
}

TEST(topic_table, clear_recovers_an_exhausted_id_space) {
  topic_table table(std::numeric_limits<std::size_t>::max());
  for (std::uint32_t i = 1; i <= 0xFFFE; ++i)
    ASSERT_TRUE(table.assign(std::to_string(i)).has_value());
  ASSERT_EQ(table.assign("x"), std::nullopt);
  table.clear();
  EXPECT_EQ(table.assign("x"), topic_id{1});
}

}  // namespace
}  // namespace mqttsn
