// The entry of mqttsn-gateway-ext.so (gateway/extension.hpp): the table of its factories.
#include "gateway/extension.hpp"
#include "gateway/paho_upstream.hpp"
#include "gateway/tls_openssl.hpp"

namespace {

const gateway::extension_api api{
    gateway::extension_abi,
    [](const gateway::tls_settings& tls) { return gateway::make_openssl_client(tls); },
    [](boost::asio::io_context& io, gateway::paho_settings s) -> std::unique_ptr<gateway::upstream> {
      return std::make_unique<gateway::paho_upstream>(io, std::move(s));
    },
    [](const std::string& path) { return gateway::open_sqlite_session_store(path); },
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const gateway::extension_api* mqttsn_gateway_extension() {
  return &api;
}
