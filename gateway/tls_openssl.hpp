// The OpenSSL tls_client (extension module only; the daemon reaches it through
// gateway/extension.hpp's make_tls_client).
#pragma once

#include <memory>

#include "gateway/broker_settings.hpp"
#include "gateway/tls_stream.hpp"

namespace gateway {

// Throws std::invalid_argument naming the file (and its key) that cannot be loaded.
std::shared_ptr<tls_client> make_openssl_client(const tls_settings& tls);

}  // namespace gateway
