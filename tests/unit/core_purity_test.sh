#!/usr/bin/env bash
# Fails when a file of the protocol core includes anything but standard C++ headers or mqttsn/ ones:
# the core must stay free of Boost, Asio, Paho and OS headers so it is tested with bytes and time alone.
set -eu
dir=${1:?usage: core_purity_test.sh MQTTSN_DIR}
std='algorithm|array|bit|cassert|chrono|compare|concepts|cstddef|cstdint|cstring|deque|functional|iterator|limits|map|memory|numeric|optional|set|span|string|string_view|tuple|type_traits|unordered_map|unordered_set|utility|variant|vector|list|initializer_list'
bad=$(grep -HnE '^[[:space:]]*#[[:space:]]*include' "$dir"/*.hpp "$dir"/*.cpp \
  | grep -vE "#[[:space:]]*include[[:space:]]*(<($std)>|\"mqttsn/[a-z_]+\.hpp\")" || true)
if [ -n "$bad" ]; then
  echo "non-standard include in the protocol core:"; echo "$bad"; exit 1
fi
count=$(cat "$dir"/*.hpp "$dir"/*.cpp | grep -cE '^[[:space:]]*#[[:space:]]*include' || true)
echo "core_purity: $count includes checked, all standard or mqttsn/"
