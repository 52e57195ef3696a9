#include "mqttsn/flat_map.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace {

using mqttsn::flat_map;

std::vector<std::pair<int, std::string>> items(const flat_map<int, std::string>& m) {
  return {m.begin(), m.end()};
}

TEST(FlatMap, keeps_its_entries_sorted_by_key_whatever_the_insertion_order) {
  flat_map<int, std::string> m;
  EXPECT_TRUE(m.empty());
  for (int k : {5, 1, 9, 3, 7}) EXPECT_TRUE(m.try_emplace(k, std::to_string(k)).second);
  EXPECT_EQ(items(m), (std::vector<std::pair<int, std::string>>{{1, "1"}, {3, "3"}, {5, "5"}, {7, "7"}, {9, "9"}}));
  EXPECT_EQ(m.size(), 5U);
}

TEST(FlatMap, try_emplace_leaves_an_existing_entry_alone_as_std_map_does) {
  flat_map<std::uint16_t, bool> m;
  EXPECT_TRUE(m.try_emplace(7, false).second);
  const auto [it, inserted] = m.try_emplace(7, true);
  EXPECT_FALSE(inserted);
  EXPECT_EQ(it->first, 7);
  EXPECT_FALSE(it->second);
  m[7] = true;
  EXPECT_TRUE(m.find(7)->second);
  EXPECT_FALSE(m[8]);  // operator[] inserts a value-initialised entry
  EXPECT_EQ(m.size(), 2U);
}

TEST(FlatMap, find_and_erase) {
  flat_map<int, std::string> m;
  for (int k : {2, 4, 6}) m.try_emplace(k, "v" + std::to_string(k));
  EXPECT_EQ(m.find(3), m.end());
  EXPECT_EQ(m.find(1), m.end());
  EXPECT_EQ(m.find(7), m.end());
  auto it = m.find(4);
  ASSERT_NE(it, m.end());
  EXPECT_EQ(it->second, "v4");
  it = m.erase(it);
  ASSERT_NE(it, m.end());
  EXPECT_EQ(it->first, 6);
  const auto& cm = m;
  EXPECT_NE(cm.find(2), cm.end());
  EXPECT_EQ(cm.find(4), cm.end());
  EXPECT_EQ(items(m), (std::vector<std::pair<int, std::string>>{{2, "v2"}, {6, "v6"}}));
}

TEST(FlatMap, emptied_by_erase_or_clear_it_is_empty_and_usable_again) {
  flat_map<int, std::string> m;
  m.try_emplace(1, "a");
  const auto next = m.erase(m.find(1));
  EXPECT_EQ(next, m.end());
  EXPECT_TRUE(m.empty());
  m.try_emplace(2, "b");
  m.try_emplace(3, "c");
  m.clear();
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.begin(), m.end());
  m.try_emplace(4, "d");
  EXPECT_EQ(items(m), (std::vector<std::pair<int, std::string>>{{4, "d"}}));
}

TEST(FlatMap, an_empty_map_is_the_size_of_a_vector) {
  EXPECT_EQ(sizeof(flat_map<std::uint32_t, std::string>), sizeof(std::vector<int>));
}

}  // namespace
