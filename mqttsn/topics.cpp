// Topic names and ids: validation and matching per MQTT 3.1.1 §1.5.3 and §4.7, the predefined id
// table and the per-client normal id table. Pure; touches no I/O and no other module's state.
#include "mqttsn/topics.hpp"

#include <algorithm>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace mqttsn {
namespace {

constexpr std::size_t max_topic_length = 65535;  // the MQTT length prefix is 16 bits

constexpr bool in_range(unsigned char c, unsigned char lo, unsigned char hi) noexcept {
  return c >= lo && c <= hi;
}

constexpr bool is_continuation(unsigned char c) noexcept { return in_range(c, 0x80, 0xBF); }

// Length of the well-formed multi-byte UTF-8 sequence starting at s[i] (whose lead byte is >=
// 0x80), or 0 when it is malformed. Follows Unicode Table 3-7, whose narrowed second-byte ranges
// exclude overlong forms (C0, C1, E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and code points
// above U+10FFFF (F4 90.., F5..FF).
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept {
  const auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char lead = at(0);
  std::size_t length = 0;
  unsigned char second_lo = 0x80;
  unsigned char second_hi = 0xBF;
  if (in_range(lead, 0xC2, 0xDF)) {
    length = 2;
  } else if (lead == 0xE0) {
    length = 3;
    second_lo = 0xA0;
  } else if (lead == 0xED) {
    length = 3;
    second_hi = 0x9F;
  } else if (in_range(lead, 0xE1, 0xEF)) {
    length = 3;
  } else if (lead == 0xF0) {
    length = 4;
    second_lo = 0x90;
  } else if (in_range(lead, 0xF1, 0xF3)) {
    length = 4;
  } else if (lead == 0xF4) {
    length = 4;
    second_hi = 0x8F;
  } else {
    return 0;  // a lone continuation byte, C0/C1, or F5..FF
  }
  if (s.size() - i < length || !in_range(at(1), second_lo, second_hi)) return 0;
  for (std::size_t k = 2; k < length; ++k) {
    if (!is_continuation(at(k))) return 0;
  }
  return length;
}

bool level_starts_at(std::string_view s, std::size_t i) noexcept {
  return i == 0 || s[i - 1] == '/';
}
bool level_ends_at(std::string_view s, std::size_t i) noexcept {
  return i + 1 == s.size() || s[i + 1] == '/';
}

// Names and filters share the encoding rules; they differ only in where wildcards may stand.
bool is_valid_topic(std::string_view s, bool wildcards_allowed) noexcept {
  if (s.empty() || s.size() > max_topic_length) return false;
  std::size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (static_cast<unsigned char>(c) >= 0x80) {
      const std::size_t length = utf8_sequence_length(s, i);
      if (length == 0) return false;
      i += length;
      continue;
    }
    if (c == '\0') return false;
    if (c == '+' || c == '#') {
      if (!wildcards_allowed || !level_starts_at(s, i) || !level_ends_at(s, i)) return false;
      if (c == '#' && i + 1 != s.size()) return false;
    }
    ++i;
  }
  return true;
}

// Both tables keep an id->value and a name->id map; this inserts into both or, when an allocation
// fails, into neither, so a lookup never finds a half-added topic.
template <typename by_id_map, typename by_name_map, typename value>
void insert_both(by_id_map& by_id, by_name_map& by_name, topic_id id, value v, std::string name) {
  const auto inserted = by_id.emplace(id, std::move(v)).first;
  try {
    by_name.emplace(std::move(name), id);
  } catch (...) {
    by_id.erase(inserted);
    throw;
  }
}

}  // namespace

bool is_valid_topic_name(std::string_view name) noexcept { return is_valid_topic(name, false); }

bool is_valid_topic_filter(std::string_view filter) noexcept {
  return is_valid_topic(filter, true);
}

bool has_wildcards(std::string_view filter) noexcept {
  return filter.find_first_of("+#") != std::string_view::npos;
}

// Walks both strings one level at a time; each iteration starts with `f` and `n` at the first byte
// of a level (or at the end). Never allocates, never reads out of bounds even for invalid input.
bool topic_matches(std::string_view filter, std::string_view name) noexcept {
  if (!filter.empty() && (filter[0] == '+' || filter[0] == '#') && !name.empty() &&
      name[0] == '$') {
    return false;
  }
  std::size_t f = 0;
  std::size_t n = 0;
  for (;;) {
    if (f < filter.size() && filter[f] == '#') return true;  // this level and everything below
    if (f < filter.size() && filter[f] == '+') {
      ++f;
      while (n < name.size() && name[n] != '/') ++n;
    } else {
      for (; f < filter.size() && filter[f] != '/'; ++f, ++n) {
        if (n == name.size() || name[n] != filter[f]) return false;
      }
      if (n < name.size() && name[n] != '/') return false;
    }
    const bool filter_done = f == filter.size();
    const bool name_done = n == name.size();
    if (filter_done || name_done) {
      // "a/#" also matches "a": '#' includes the parent level.
      return filter_done == name_done || (name_done && filter.substr(f) == "/#");
    }
    ++f;  // both stand on a '/'
    ++n;
  }
}

std::string short_topic_name(topic_id id) {
  return std::string{static_cast<char>(id >> 8), static_cast<char>(id & 0xFF)};
}

std::optional<topic_id> short_topic_id(std::string_view name) noexcept {
  if (name.size() != 2) return std::nullopt;
  const auto high = static_cast<unsigned char>(name[0]);
  const auto low = static_cast<unsigned char>(name[1]);
  return static_cast<topic_id>((high << 8) | low);
}

predefined_topics::add_result predefined_topics::add(topic_id id, std::string name) {
  if (id == reserved_topic_id_low || id == reserved_topic_id_high) return add_result::reserved_id;
  if (!is_valid_topic_name(name)) return add_result::invalid_name;
  if (by_id_.contains(id)) return add_result::duplicate_id;
  if (by_name_.contains(name)) return add_result::duplicate_name;
  std::string key = name;
  insert_both(by_id_, by_name_, id, std::move(name), std::move(key));
  return add_result::added;
}

const std::string* predefined_topics::name(topic_id id) const noexcept {
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &it->second;
}

std::optional<topic_id> predefined_topics::id(std::string_view name) const noexcept {
  const auto it = by_name_.find(name);
  if (it == by_name_.end()) return std::nullopt;
  return it->second;
}

void predefined_topics::clear() noexcept {
  by_id_.clear();
  by_name_.clear();
}

// Ids are handed out densely from 1 and only clear() removes entries, so entry id-1 is at index
// id-1; the name index is the ids sorted by name (binary search). Per topic that is one entry and
// two bytes, instead of two hash nodes, two bucket arrays and a second copy of the name: the
// table is paid for by every session (RSS per idle client).
std::optional<topic_id> topic_table::assign(std::string_view name) {
  const auto at = std::lower_bound(by_name_.begin(), by_name_.end(), name,
                                   [this](topic_id id, std::string_view n) { return by_id_[id - 1U].name < n; });
  if (at != by_name_.end() && by_id_[*at - 1U].name == name) return *at;
  // next_id_ only grows, so 0xFFFF doubles as "id space exhausted" and ids are never reused.
  if (by_id_.size() >= max_topics_ || next_id_ == reserved_topic_id_high) return std::nullopt;
  const topic_id assigned = next_id_;
  const auto index = at - by_name_.begin();
  by_id_.push_back(entry{std::string(name), client_knows::no});
  try {
    by_name_.insert(by_name_.begin() + index, assigned);
  } catch (...) {  // both or neither, so a lookup never finds a half-added topic
    by_id_.pop_back();
    throw;
  }
  ++next_id_;
  return assigned;
}

const topic_table::entry* topic_table::find(topic_id id) const noexcept {
  return id >= 1 && id <= by_id_.size() ? &by_id_[id - 1U] : nullptr;
}

const std::string* topic_table::name(topic_id id) const noexcept {
  const auto* e = find(id);
  return e ? &e->name : nullptr;
}

std::optional<topic_id> topic_table::id(std::string_view name) const noexcept {
  const auto at = std::lower_bound(by_name_.begin(), by_name_.end(), name,
                                   [this](topic_id id, std::string_view n) { return by_id_[id - 1U].name < n; });
  if (at == by_name_.end() || by_id_[*at - 1U].name != name) return std::nullopt;
  return *at;
}

topic_table::client_knows topic_table::known(topic_id id) const noexcept {
  const auto* e = find(id);
  return e ? e->knows : client_knows::no;
}

void topic_table::set_known(topic_id id, client_knows k) noexcept {
  if (find(id)) by_id_[id - 1U].knows = k;
}

void topic_table::forget_client_knowledge() noexcept {
  for (auto& e : by_id_) {
    if (e.knows == client_knows::yes) e.knows = client_knows::no;
  }
}

std::vector<topic_table::saved> topic_table::save() const {
  std::vector<saved> out;
  out.reserve(by_id_.size());
  for (std::size_t i = 0; i < by_id_.size(); ++i) {
    out.push_back(saved{static_cast<topic_id>(i + 1), by_id_[i].name, by_id_[i].knows});
  }
  return out;
}

// The table's ids are dense (1..n, next id n+1), so a snapshot must be too; anything else was not
// written by save() and is refused rather than guessed at.
bool topic_table::load(const std::vector<saved>& entries, topic_id next_id) {
  const std::size_t n = entries.size();
  if (n > max_topics_ || n >= reserved_topic_id_high || next_id != n + 1) return false;
  std::vector<entry> by_id(n);
  std::vector<bool> seen(n, false);
  for (const auto& e : entries) {
    if (e.id == 0 || e.id > n || seen[e.id - 1U] || !is_valid_topic_name(e.name)) return false;
    seen[e.id - 1U] = true;
    by_id[e.id - 1U] = entry{e.name, e.knows};
  }
  std::vector<topic_id> by_name(n);
  for (std::size_t i = 0; i < n; ++i) by_name[i] = static_cast<topic_id>(i + 1);
  std::sort(by_name.begin(), by_name.end(),
            [&by_id](topic_id a, topic_id b) { return by_id[a - 1U].name < by_id[b - 1U].name; });
  for (std::size_t i = 1; i < n; ++i) {
    if (by_id[by_name[i] - 1U].name == by_id[by_name[i - 1] - 1U].name) return false;  // a duplicate name
  }
  by_id_ = std::move(by_id);
  by_name_ = std::move(by_name);
  next_id_ = next_id;
  return true;
}

void topic_table::clear() noexcept {
  by_id_.clear();
  by_id_.shrink_to_fit();
  by_name_.clear();
  by_name_.shrink_to_fit();
  next_id_ = 1;
}

}  // namespace mqttsn
