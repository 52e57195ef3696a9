// Topic names and ids: MQTT 3.1.1 name/filter rules and matching, the gateway-wide predefined id
// table, and the per-client table of gateway-assigned normal ids. Pure; no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mqttsn/message.hpp"

namespace mqttsn {

// MQTT 3.1.1 §4.7: a topic name is 1..65535 bytes of well-formed UTF-8 without U+0000 and without
// the wildcards '+' and '#'.
bool is_valid_topic_name(std::string_view name) noexcept;

// A topic filter: as a name, but '+' may fill a whole level and '#' may only be the whole last level.
bool is_valid_topic_filter(std::string_view filter) noexcept;

bool has_wildcards(std::string_view filter) noexcept;

// Does `name` match `filter`? Both are assumed valid. A filter starting with a wildcard does not
// match names starting with '$' (MQTT 3.1.1 §4.7.2).
bool topic_matches(std::string_view filter, std::string_view name) noexcept;

// Short topic names are exactly two bytes, carried in the TopicId slot.
std::string short_topic_name(topic_id id);
std::optional<topic_id> short_topic_id(std::string_view name) noexcept;

// Gateway-wide predefined topic ids (from configuration), valid for every client, connected or not.
class predefined_topics {
 public:
  enum class add_result : std::uint8_t { added, reserved_id, invalid_name, duplicate_id, duplicate_name };

  // Checks in this order: reserved id (0x0000/0xFFFF), invalid name, id taken, name taken. On
  // anything but `added` the table is unchanged.
  add_result add(topic_id id, std::string name);
  const std::string* name(topic_id id) const noexcept;
  std::optional<topic_id> id(std::string_view name) const noexcept;
  std::size_t size() const noexcept { return by_id_.size(); }
  void clear() noexcept;

 private:
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<topic_id, std::string> by_id_;
  std::unordered_map<std::string, topic_id, string_hash, std::equal_to<>> by_name_;
};

// One client's normal topic ids, assigned by the gateway (spec §7.3 recommends per-client tables).
// Ids run from 1 upwards, never 0x0000 or 0xFFFF, and an id is never reused for another name while
// the table lives. Each entry also records whether the client is known to hold the mapping, so the
// gateway REGISTERs before publishing on an id the client may not know (after a reconnect), and
// whether the client refused it (REGACK with an error: do not publish on it).
class topic_table {
 public:
  enum class client_knows : std::uint8_t { no, yes, refused };

  explicit topic_table(std::size_t max_topics) : max_topics_(max_topics) {}

  // The id for `name`, assigning the next free one if needed; nullopt when the table is full
  // (or the id space is exhausted: once 0xFFFE is handed out). New entries start as
  // client_knows::no. The caller validates `name`; assign does not.
  std::optional<topic_id> assign(std::string_view name);

  const std::string* name(topic_id id) const noexcept;
  std::optional<topic_id> id(std::string_view name) const noexcept;

  // For an id not in the table, known() answers `no` and set_known() does nothing.
  client_knows known(topic_id id) const noexcept;
  void set_known(topic_id id, client_knows k) noexcept;
  // After a reconnect the client may have lost its mappings: mark every entry unknown (refusals stay).
  void forget_client_knowledge() noexcept;

  std::size_t size() const noexcept { return by_id_.size(); }
  std::size_t max_topics() const noexcept { return max_topics_; }
  // Empties the table and restarts ids at 1, so ids are reused after a clear: call it only when the
  // session ends for good (CleanSession=1 or the session is dropped), never across a reconnect that
  // keeps the session, or the client could hold a stale id for another name.
  void clear() noexcept;

  // For the persistent store: every entry, and the next id to hand out.
  struct saved {
    topic_id id = 0;
    std::string name;
    client_knows knows = client_knows::no;
  };
  std::vector<saved> save() const;
  topic_id next_id() const noexcept { return next_id_; }
  // Replaces the table with saved entries; false (table unchanged) when they are inconsistent:
  // ids not exactly 1..n with next_id n+1 (as save() writes them), a duplicate name, an invalid
  // name, or more than max_topics.
  bool load(const std::vector<saved>& entries, topic_id next_id);

 private:
  struct entry {
    std::string name;
    client_knows knows = client_knows::no;
  };
  const entry* find(topic_id id) const noexcept;

  std::size_t max_topics_;
  topic_id next_id_ = 1;
  std::vector<entry> by_id_;        // id 1 at index 0: ids are dense
  std::vector<topic_id> by_name_;   // the same ids, sorted by name
};

}  // namespace mqttsn
