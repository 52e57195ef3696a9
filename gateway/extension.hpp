// The parts of the daemon that need large libraries live in one shared module,
// mqttsn-gateway-ext.so: TLS toward an ssl:// broker (OpenSSL), the Paho client
// (upstream-client = paho: Paho C/C++, which maps OpenSSL too) and the persistent store
// (--persistence: SQLite). The daemon loads it (dlopen) the first time the configuration needs one
// of them, so the default configuration (tcp:// broker, native client, no persistence) never maps
// those libraries, whose pages were a third of its idle RSS (BENCHMARKS.md, "Idle RSS").
//
// The module is looked for in $MQTTSN_GATEWAY_EXT (a file) if set, else in
// <directory of the executable>/../lib/mqttsn-gateway/ (build/lib/mqttsn-gateway/ for the build
// tree, /usr/local/lib/mqttsn-gateway/ next to /usr/local/bin/), else next to the executable.
#pragma once

#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "gateway/broker_settings.hpp"
#include "gateway/session_store.hpp"
#include "gateway/tls_stream.hpp"
#include "gateway/upstream.hpp"

namespace gateway {

// What the module exports (one table, from the function named below). `abi` must equal
// extension_abi: module and daemon come from one build.
struct extension_api {
  int abi = 0;
  std::shared_ptr<tls_client> (*make_tls_client)(const tls_settings&) = nullptr;
  std::unique_ptr<upstream> (*make_paho_upstream)(boost::asio::io_context&, paho_settings) = nullptr;
  std::unique_ptr<session_store> (*open_session_store)(const std::string&) = nullptr;
};
inline constexpr int extension_abi = 1;
inline constexpr const char* extension_file = "mqttsn-gateway-ext.so";
inline constexpr const char* extension_entry = "mqttsn_gateway_extension";

// Each loads the module on first use (then it stays loaded). A module that cannot be loaded
// throws std::invalid_argument naming what needed it, the file and why (a configuration the
// installation cannot serve); otherwise they throw what the implementation throws.
std::shared_ptr<tls_client> make_tls_client(const tls_settings& tls);
std::unique_ptr<upstream> make_paho_upstream(boost::asio::io_context& io, paho_settings settings);
std::unique_ptr<session_store> open_session_store(const std::string& path);

// Whether the module is mapped in this process (tests: the default path must not load it).
bool extension_loaded() noexcept;

}  // namespace gateway
