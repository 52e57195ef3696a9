// libFuzzer target for the topic rules: the input is "filter 0x00 name" (no 0x00: all filter, empty
// name). Runs the validators and the matcher on anything, and aborts when an invariant breaks.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mqttsn/topics.hpp"

namespace {

void require(bool invariant) {
  if (!invariant) std::abort();
}

bool starts_with_dollar(std::string_view s) { return !s.empty() && s.front() == '$'; }

void check_name(std::string_view name) {
  if (!mqttsn::is_valid_topic_name(name)) return;
  require(mqttsn::is_valid_topic_filter(name));  // every name is a filter
  require(!mqttsn::has_wildcards(name));
  require(mqttsn::topic_matches(name, name));
  require(mqttsn::topic_matches("#", name) == !starts_with_dollar(name));
  require(mqttsn::topic_matches("+", name) ==
          (!starts_with_dollar(name) && name.find('/') == std::string_view::npos));
  if (const auto id = mqttsn::short_topic_id(name)) require(mqttsn::short_topic_name(*id) == name);
}

void check_pair(std::string_view filter, std::string_view name) {
  const bool matches = mqttsn::topic_matches(filter, name);
  if (!mqttsn::has_wildcards(filter)) require(matches == (filter == name));
  // Appending "/#" can only widen a filter: '#' also matches its parent level.
  if (!filter.ends_with('#')) {
    const std::string wider = std::string(filter) + "/#";
    if (mqttsn::is_valid_topic_filter(wider))
      require(!matches || mqttsn::topic_matches(wider, name));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t split = input.find('\0');
  const std::string_view filter = input.substr(0, split);
  const std::string_view name =
      split == std::string_view::npos ? std::string_view{} : input.substr(split + 1);

  const bool filter_ok = mqttsn::is_valid_topic_filter(filter);
  const bool name_ok = mqttsn::is_valid_topic_name(name);
  (void)mqttsn::topic_matches(filter, name);  // must be memory-safe even on invalid input
  (void)mqttsn::topic_matches(name, filter);
  check_name(name);
  check_name(filter);
  if (filter_ok && name_ok) check_pair(filter, name);
  return 0;
}
