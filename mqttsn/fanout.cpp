#include "mqttsn/fanout.hpp"

#include <algorithm>
#include <utility>

#include "mqttsn/topics.hpp"

namespace mqttsn {

namespace {

int level(qos q) noexcept { return std::clamp(static_cast<int>(q), 0, 2); }
qos from_level(int l) noexcept { return static_cast<qos>(std::clamp(l, 0, 2)); }

}  // namespace

qos fanout::highest(const entry& e) {
  int best = 0;
  for (const auto& [client, q] : e.holders) best = std::max(best, level(q));
  return from_level(best);
}

fanout::entry& fanout::add_holder(std::string_view client, std::string_view filter, qos q) {
  auto it = filters_.find(filter);
  if (it == filters_.end()) {
    it = filters_.emplace(std::string(filter), entry{}).first;
    if (has_wildcards(filter)) wildcards_.emplace(filter);
  }
  entry& e = it->second;
  const qos granted = from_level(level(q));
  if (auto h = e.holders.find(client); h != e.holders.end()) {
    h->second = granted;
  } else {
    e.holders.emplace(std::string(client), granted);
  }
  auto c = by_client_.find(client);
  if (c == by_client_.end()) c = by_client_.emplace(std::string(client), std::set<std::string, std::less<>>{}).first;
  c->second.emplace(filter);
  return e;
}

void fanout::hold(std::string_view client, std::string_view filter, qos q) {
  entry& e = add_holder(client, filter, q);
  if (auto l = e.latest.find(client); l != e.latest.end()) e.latest.erase(l);
  e.upstream = highest(e);
}

qos fanout::subscribe(std::string_view client, std::string_view filter, qos q) {
  entry& e = add_holder(client, filter, q);
  e.latest.clear();
  e.latest.emplace(client);
  e.seq = next_seq_++;
  e.upstream = highest(e);
  return e.upstream;
}

bool fanout::unsubscribe(std::string_view client, std::string_view filter) {
  auto it = filters_.find(filter);
  if (it == filters_.end()) return false;
  entry& e = it->second;
  auto h = e.holders.find(client);
  if (h == e.holders.end()) return false;
  e.holders.erase(h);
  if (auto l = e.latest.find(client); l != e.latest.end()) e.latest.erase(l);
  if (auto c = by_client_.find(client); c != by_client_.end()) {
    if (auto f = c->second.find(filter); f != c->second.end()) c->second.erase(f);
    if (c->second.empty()) by_client_.erase(c);
  }
  if (!e.holders.empty()) return false;
  erase(it);
  return true;
}

std::vector<std::string> fanout::remove_client(std::string_view client) {
  std::vector<std::string> gone;
  auto c = by_client_.find(client);
  if (c == by_client_.end()) return gone;
  const auto filters = std::move(c->second);
  by_client_.erase(c);
  for (const auto& f : filters) {
    auto it = filters_.find(f);
    if (it == filters_.end()) continue;
    entry& e = it->second;
    if (auto h = e.holders.find(client); h != e.holders.end()) e.holders.erase(h);
    if (auto l = e.latest.find(client); l != e.latest.end()) e.latest.erase(l);
    if (e.holders.empty()) {
      erase(it);
      gone.push_back(f);
    }
  }
  return gone;  // sorted: the set was
}

std::vector<fanout::delivery> fanout::route(std::string_view topic, qos q, bool retain) const {
  const int offered = level(q);
  std::map<std::string_view, int> best;  // client -> highest QoS among its matching filters
  const entry* newest = nullptr;
  auto visit = [&](const entry& e) {
    for (const auto& [client, granted] : e.holders) {
      auto [it, added] = best.emplace(client, level(granted));
      if (!added) it->second = std::max(it->second, level(granted));
    }
    if (retain && !e.latest.empty() && (!newest || e.seq > newest->seq)) newest = &e;
  };
  // A filter without wildcards matches only the equal name: one lookup. The others one by one.
  if (auto exact = filters_.find(topic); exact != filters_.end() && !has_wildcards(topic)) visit(exact->second);
  for (const auto& filter : wildcards_) {
    if (!topic_matches(filter, topic)) continue;
    if (auto it = filters_.find(filter); it != filters_.end()) visit(it->second);
  }
  std::vector<delivery> out;
  if (retain) {
    if (!newest) return out;
    for (const auto& client : newest->latest) {
      if (auto it = best.find(client); it != best.end()) {
        out.push_back(delivery{client, from_level(std::min(offered, it->second))});
      }
    }
    return out;
  }
  out.reserve(best.size());
  for (const auto& [client, granted] : best) {
    out.push_back(delivery{std::string(client), from_level(std::min(offered, granted))});
  }
  return out;
}

std::vector<fanout::filter_qos> fanout::restore() {
  std::vector<filter_qos> out;
  out.reserve(filters_.size());
  for (auto& [filter, e] : filters_) {
    e.upstream = highest(e);
    e.latest.clear();
    for (const auto& [client, q] : e.holders) e.latest.insert(client);
    e.seq = next_seq_++;
    out.push_back(filter_qos{filter, e.upstream});
  }
  return out;
}

void fanout::erase(std::map<std::string, entry, std::less<>>::iterator it) {
  if (auto w = wildcards_.find(it->first); w != wildcards_.end()) wildcards_.erase(w);
  filters_.erase(it);
}

bool fanout::holds(std::string_view client) const { return by_client_.contains(client); }

std::vector<std::string> fanout::filters_of(std::string_view client) const {
  auto c = by_client_.find(client);
  if (c == by_client_.end()) return {};
  return {c->second.begin(), c->second.end()};
}

std::optional<qos> fanout::granted(std::string_view client, std::string_view filter) const {
  auto it = filters_.find(filter);
  if (it == filters_.end()) return std::nullopt;
  auto h = it->second.holders.find(client);
  if (h == it->second.holders.end()) return std::nullopt;
  return h->second;
}

std::optional<qos> fanout::upstream_qos(std::string_view filter) const {
  auto it = filters_.find(filter);
  if (it == filters_.end()) return std::nullopt;
  return it->second.upstream;
}

}  // namespace mqttsn
