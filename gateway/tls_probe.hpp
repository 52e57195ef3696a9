// Says in words why a TLS connection to the broker fails ("certificate verify failed: unable to get
// local issuer certificate", "host name mismatch"). Paho C reports only "-1" for every TLS failure,
// and its error callback cannot be used safely through Paho C++ 1.2 (it crashes on a dangling
// context), so the gateway makes one handshake of its own with OpenSSL and the same settings.
// Blocking (bounded by `timeout`): run it off the io thread. Touches nothing else.
#pragma once

#include <chrono>
#include <string>

#include "gateway/paho_upstream.hpp"

namespace gateway {

// `broker`: "ssl://HOST:PORT" (or "[v6]"). Empty result: the handshake and the checks passed (the
// failure was elsewhere); otherwise one line naming what failed.
std::string probe_tls(const std::string& broker, const tls_settings& tls, std::chrono::milliseconds timeout);

}  // namespace gateway
