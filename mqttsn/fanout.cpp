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
  for (int l = 2; l > 0; --l) {
    if (e.at_level[static_cast<std::size_t>(l)] > 0) return from_level(l);
  }
  return qos::at_most_once;
}

void fanout::drop_holder(entry& e, std::map<std::string, qos, std::less<>>::iterator h) {
  --e.at_level[static_cast<std::size_t>(level(h->second))];
  e.holders.erase(h);
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
    --e.at_level[static_cast<std::size_t>(level(h->second))];
    h->second = granted;
  } else {
    e.holders.emplace(std::string(client), granted);
  }
  ++e.at_level[static_cast<std::size_t>(level(granted))];
  auto c = by_client_.find(client);
  if (c == by_client_.end()) c = by_client_.emplace(std::string(client), std::set<std::string, std::less<>>{}).first;
  c->second.emplace(filter);
  return e;
}

void fanout::hold(std::string_view client, std::string_view filter, qos q) {
  entry& e = add_holder(client, filter, q);
  e.upstream = highest(e);
}

qos fanout::subscribe(std::string_view client, std::string_view filter, qos q) {
  entry& e = add_holder(client, filter, q);
  e.upstream = highest(e);
  add_record(filter, {std::string(client)});
  return e.upstream;
}

void fanout::add_record(std::string_view filter, std::set<std::string, std::less<>> clients) {
  records_.push_back(record{std::string(filter), std::move(clients), {}, 0, qos::at_most_once});
  // Bounded: a record not closed by the broker's answers goes when too many are open.
  while (records_.size() > filters_.size() + max_extra_records) records_.pop_front();
}

void fanout::subscribed(std::string_view filter, std::optional<qos> granted) {
  auto it = std::find_if(records_.begin(), records_.end(),
                         [&](const record& r) { return r.answered == 0 && r.filter == filter; });
  if (it == records_.end()) return;
  if (!granted) {
    records_.erase(it);  // refused: no copies
    return;
  }
  const auto now = ++last_answer_;
  it->answered = now;
  it->granted = from_level(level(*granted));
  // The broker sends QoS 0 copies right after their SUBACK, never later: an answered record
  // granted QoS 0 is complete once a later SUBACK arrives.
  std::erase_if(records_, [now](const record& r) {
    return r.answered != 0 && r.answered < now && r.granted == qos::at_most_once;
  });
}

void fanout::forget_in_records(std::string_view client, std::string_view filter) {
  for (auto& r : records_) {
    if (!filter.empty() && r.filter != filter) continue;
    if (auto c = r.clients.find(client); c != r.clients.end()) r.clients.erase(c);
  }
}

bool fanout::unsubscribe(std::string_view client, std::string_view filter) {
  auto it = filters_.find(filter);
  if (it == filters_.end()) return false;
  entry& e = it->second;
  auto h = e.holders.find(client);
  if (h == e.holders.end()) return false;
  drop_holder(e, h);
  forget_in_records(client, filter);
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
  forget_in_records(client, {});
  for (const auto& f : filters) {
    auto it = filters_.find(f);
    if (it == filters_.end()) continue;
    entry& e = it->second;
    if (auto h = e.holders.find(client); h != e.holders.end()) drop_holder(e, h);
    if (e.holders.empty()) {
      erase(it);
      gone.push_back(f);
    }
  }
  return gone;  // sorted: the set was
}

std::vector<fanout::delivery> fanout::route(std::string_view topic, qos q, bool retain) {
  if (retain) return route_retained(topic, q);
  const int offered = level(q);
  std::map<std::string_view, int> best;  // client -> highest QoS among its matching filters
  auto visit = [&](const entry& e) {
    for (const auto& [client, granted] : e.holders) {
      auto [it, added] = best.emplace(client, level(granted));
      if (!added) it->second = std::max(it->second, level(granted));
    }
  };
  // A filter without wildcards matches only the equal name: one lookup. The others one by one.
  if (auto exact = filters_.find(topic); exact != filters_.end() && !has_wildcards(topic)) visit(exact->second);
  for (const auto& filter : wildcards_) {
    if (!topic_matches(filter, topic)) continue;
    if (auto it = filters_.find(filter); it != filters_.end()) visit(it->second);
  }
  std::vector<delivery> out;
  out.reserve(best.size());
  for (const auto& [client, granted] : best) {
    out.push_back(delivery{std::string(client), from_level(std::min(offered, granted))});
  }
  return out;
}

std::vector<fanout::delivery> fanout::route_retained(std::string_view topic, qos q) {
  // Candidates: the records whose filter matches and that were not given this topic yet.
  auto candidate = [&](const record& r) { return !r.given.contains(topic) && topic_matches(r.filter, topic); };
  // The most recently answered first: a copy deferred past a later SUBACK then takes the later
  // record's slot, and that record's own copy the older one's (same topic, same retained message,
  // one each); an older record whose SUBSCRIBE found no message on the topic is never preferred.
  auto chosen = records_.end();
  for (auto it = records_.begin(); it != records_.end(); ++it) {
    if (it->answered == 0 || !candidate(*it)) continue;
    if (chosen == records_.end() || it->answered > chosen->answered) chosen = it;
  }
  if (chosen == records_.end()) {
    // None answered: a broker that sends retained copies before the SUBACK (Mosquitto does not).
    // The oldest SUBSCRIBE in flight is the one being answered.
    chosen = std::find_if(records_.begin(), records_.end(), candidate);
    if (chosen == records_.end()) return {};
  }
  chosen->given.emplace(topic);
  std::vector<delivery> out;
  for (const auto& client : chosen->clients) {
    // At the client's highest QoS among the filters it still holds that match.
    auto c = by_client_.find(client);
    if (c == by_client_.end()) continue;
    int best = -1;
    for (const auto& f : c->second) {
      if (!topic_matches(f, topic)) continue;
      if (auto g = granted(client, f)) best = std::max(best, level(*g));
    }
    if (best >= 0) out.push_back(delivery{client, from_level(std::min(level(q), best))});
  }
  return out;
}

std::vector<fanout::filter_qos> fanout::restore() {
  std::vector<filter_qos> out;
  out.reserve(filters_.size());
  records_.clear();
  for (auto& [filter, e] : filters_) {
    e.upstream = highest(e);
    std::set<std::string, std::less<>> clients;
    for (const auto& [client, q] : e.holders) clients.insert(client);
    add_record(filter, std::move(clients));
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
