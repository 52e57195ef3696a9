#pragma once

// A map kept as one sorted vector: 24 bytes when empty (std::map: 48) and no node per element.
// For the session's small per-client tables (pending broker requests, QoS 2 ids awaiting PUBREL),
// which are empty in almost every session and hold a few entries otherwise: RSS per idle client.
// Only what the core needs; std::flat_map (C++23) is not in GCC 12. Insertion and erasure move
// the later elements, so it is for tables of tens of entries, not thousands.

#include <algorithm>
#include <cstddef>
#include <tuple>
#include <utility>
#include <vector>

namespace mqttsn {

template <typename Key, typename T>
class flat_map {
 public:
  using value_type = std::pair<Key, T>;
  using iterator = typename std::vector<value_type>::iterator;
  using const_iterator = typename std::vector<value_type>::const_iterator;

  iterator begin() noexcept { return items_.begin(); }
  iterator end() noexcept { return items_.end(); }
  const_iterator begin() const noexcept { return items_.begin(); }
  const_iterator end() const noexcept { return items_.end(); }
  bool empty() const noexcept { return items_.empty(); }
  std::size_t size() const noexcept { return items_.size(); }

  iterator find(const Key& k) {
    auto it = lower(k);
    return it != items_.end() && it->first == k ? it : items_.end();
  }
  const_iterator find(const Key& k) const { return const_cast<flat_map*>(this)->find(k); }

  // As std::map::try_emplace: no change when the key is there.
  template <typename... Args>
  std::pair<iterator, bool> try_emplace(const Key& k, Args&&... args) {
    auto it = lower(k);
    if (it != items_.end() && it->first == k) return {it, false};
    it = items_.emplace(it, std::piecewise_construct, std::forward_as_tuple(k),
                        std::forward_as_tuple(std::forward<Args>(args)...));
    return {it, true};
  }
  T& operator[](const Key& k) { return try_emplace(k).first->second; }

  // An emptied table gives its block back, as std::map frees its last node.
  iterator erase(const_iterator it) {
    auto next = items_.erase(it);
    if (items_.empty()) {
      items_.shrink_to_fit();
      return items_.end();
    }
    return next;
  }
  void clear() noexcept {
    items_.clear();
    items_.shrink_to_fit();
  }

 private:
  iterator lower(const Key& k) {
    return std::lower_bound(items_.begin(), items_.end(), k,
                            [](const value_type& v, const Key& key) { return v.first < key; });
  }

  std::vector<value_type> items_;
};

}  // namespace mqttsn
