// TLS toward an ssl:// broker behind an interface, so that the daemon maps OpenSSL only when a
// broker is ssl://: the OpenSSL implementation (tls_openssl.cpp) lives in the extension module
// (gateway/extension.hpp). mqtt_connection drives a tls_stream; it never sees OpenSSL.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace gateway {

// One TLS client session over one TCP socket. Handlers run on the io thread, like Asio's.
class tls_stream {
 public:
  using io_handler = std::function<void(const boost::system::error_code&, std::size_t)>;
  // On failure, `verify_error` is OpenSSL's reason when the broker's certificate was refused.
  using handshake_handler =
      std::function<void(const boost::system::error_code&, const std::string& verify_error)>;

  virtual ~tls_stream() = default;
  // The TCP socket under TLS: connect it, then handshake.
  virtual boost::asio::ip::tcp::socket& socket() = 0;
  // Client handshake with SNI `host`; unless the client is insecure, the broker's certificate
  // must be trusted and name `host` (a DNS name or an IP address).
  virtual void async_handshake(const std::string& host, handshake_handler h) = 0;
  virtual void async_read_some(boost::asio::mutable_buffer b, io_handler h) = 0;
  // Writes all of `b`.
  virtual void async_write(boost::asio::const_buffer b, io_handler h) = 0;
};

// An OpenSSL context made from the gateway's TLS settings (CA, client certificate, insecure).
class tls_client {
 public:
  virtual ~tls_client() = default;
  virtual std::unique_ptr<tls_stream> make_stream(boost::asio::io_context& io) = 0;
};

}  // namespace gateway
