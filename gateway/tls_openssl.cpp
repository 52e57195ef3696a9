// tls_client and tls_stream on OpenSSL (boost::asio::ssl): part of the extension module, so the
// daemon maps libssl/libcrypto only for an ssl:// broker.
#include "gateway/tls_openssl.hpp"

#include <stdexcept>
#include <utility>

#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

namespace gateway {

namespace asio = boost::asio;

namespace {

class openssl_stream final : public tls_stream {
 public:
  openssl_stream(asio::io_context& io, asio::ssl::context& ctx, bool insecure)
      : stream_(io, ctx), insecure_(insecure) {}

  asio::ip::tcp::socket& socket() override { return stream_.next_layer(); }

  void async_handshake(const std::string& host, handshake_handler h) override {
    SSL* ssl = stream_.native_handle();
    // SNI; SSL_set_tlsext_host_name() is a macro with a C cast: call what it expands to.
    SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(host.c_str()));
    if (!insecure_) {
      // The broker's name (or IP address) must be in its certificate: checked by OpenSSL during
      // the handshake, as the TLS probe does.
      X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      if (X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1) {
        X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
      }
    }
    stream_.async_handshake(asio::ssl::stream_base::client,
                            [this, h = std::move(h)](const boost::system::error_code& e) {
                              std::string verify;
                              if (e) {
                                const long result = SSL_get_verify_result(stream_.native_handle());
                                if (result != X509_V_OK) verify = X509_verify_cert_error_string(result);
                              }
                              h(e, verify);
                            });
  }

  void async_read_some(asio::mutable_buffer b, io_handler h) override {
    stream_.async_read_some(b, std::move(h));
  }

  void async_write(asio::const_buffer b, io_handler h) override {
    asio::async_write(stream_, b, std::move(h));
  }

 private:
  asio::ssl::stream<asio::ip::tcp::socket> stream_;
  bool insecure_;
};

class openssl_client final : public tls_client {
 public:
  explicit openssl_client(const tls_settings& t) : ctx_(asio::ssl::context::tls_client), insecure_(t.insecure) {
    boost::system::error_code ec;
    if (!t.ca_file.empty() && ctx_.load_verify_file(t.ca_file, ec)) {
      throw std::invalid_argument("--broker-ca-file " + t.ca_file + ": " + ec.message());
    }
    if (!t.ca_dir.empty() && ctx_.add_verify_path(t.ca_dir, ec)) {
      throw std::invalid_argument("--broker-ca-dir " + t.ca_dir + ": " + ec.message());
    }
    if (t.ca_file.empty() && t.ca_dir.empty()) ctx_.set_default_verify_paths(ec);
    if (!t.key_password.empty()) {
      ctx_.set_password_callback(
          [pw = t.key_password](std::size_t, asio::ssl::context::password_purpose) { return pw; });
    }
    if (!t.cert_file.empty() && ctx_.use_certificate_chain_file(t.cert_file, ec)) {
      throw std::invalid_argument("--broker-cert-file " + t.cert_file + ": " + ec.message());
    }
    if (!t.key_file.empty() && ctx_.use_private_key_file(t.key_file, asio::ssl::context::pem, ec)) {
      throw std::invalid_argument("--broker-key-file " + t.key_file + ": " + ec.message());
    }
    ctx_.set_verify_mode(t.insecure ? asio::ssl::verify_none : asio::ssl::verify_peer);
  }

  std::unique_ptr<tls_stream> make_stream(asio::io_context& io) override {
    return std::make_unique<openssl_stream>(io, ctx_, insecure_);
  }

 private:
  asio::ssl::context ctx_;
  bool insecure_;
};

}  // namespace

std::shared_ptr<tls_client> make_openssl_client(const tls_settings& tls) {
  return std::make_shared<openssl_client>(tls);
}

}  // namespace gateway
