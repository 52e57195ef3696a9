#include "gateway/tls_probe.hpp"

#include <memory>

#include <cerrno>

#include <fcntl.h>
#include <netdb.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <poll.h>
#include <sys/time.h>
#include <unistd.h>

namespace gateway {

namespace {

struct ctx_free {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct ssl_free {
  void operator()(SSL* s) const { SSL_free(s); }
};
struct fd_guard {
  int fd;
  ~fd_guard() { ::close(fd); }
};

// A TCP connection to host:port within `timeout` (send and receive bounded by it too); -1 if none.
int connect_with_timeout(const std::string& host, const std::string& port,
                         std::chrono::milliseconds timeout) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0) return -1;
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> list(found, ::freeaddrinfo);
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    bool ok = ::connect(fd, a->ai_addr, a->ai_addrlen) == 0;
    if (!ok && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int err = 0;
      socklen_t len = sizeof err;
      ok = ::poll(&p, 1, static_cast<int>(timeout.count())) == 1 &&
           ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
    }
    if (ok) {
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      timeval tv{static_cast<time_t>(timeout.count() / 1000),
                 static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      return fd;
    }
    ::close(fd);
  }
  return -1;
}

std::string last_openssl_error(const std::string& what) {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return what;
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return what + ": " + buf;
}

}  // namespace

std::string probe_tls(const std::string& broker, const tls_settings& tls, std::chrono::milliseconds timeout) {
  constexpr std::string_view scheme = "ssl://";
  if (!broker.starts_with(scheme)) return {};
  const std::string host_port = broker.substr(scheme.size());
  std::string host = host_port.substr(0, host_port.rfind(':'));
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);

  ERR_clear_error();
  std::unique_ptr<SSL_CTX, ctx_free> ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return last_openssl_error("cannot create a TLS context");
  if (!tls.insecure) SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  const char* ca_file = tls.ca_file.empty() ? nullptr : tls.ca_file.c_str();
  const char* ca_dir = tls.ca_dir.empty() ? nullptr : tls.ca_dir.c_str();
  if (ca_file || ca_dir) {
    if (SSL_CTX_load_verify_locations(ctx.get(), ca_file, ca_dir) != 1) {
      return last_openssl_error("cannot load the CA certificates");
    }
  } else {
    SSL_CTX_set_default_verify_paths(ctx.get());
  }
  if (!tls.cert_file.empty()) {
    if (!tls.key_password.empty()) {
      SSL_CTX_set_default_passwd_cb_userdata(ctx.get(), const_cast<char*>(tls.key_password.c_str()));
    }
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), tls.cert_file.c_str()) != 1) {
      return last_openssl_error("cannot load the client certificate " + tls.cert_file);
    }
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      return last_openssl_error("cannot load the private key " + tls.key_file);
    }
  }

  const std::string port = host_port.substr(host_port.rfind(':') + 1);
  const int fd = connect_with_timeout(host, port, timeout);
  if (fd < 0) return {};  // not a TLS problem: the broker is not reachable at all
  fd_guard guard{fd};
  std::unique_ptr<SSL, ssl_free> ssl(SSL_new(ctx.get()));
  if (!ssl) return last_openssl_error("cannot create a TLS connection");
  SSL_set_fd(ssl.get(), fd);
  // SSL_set_tlsext_host_name() is a macro with a C cast: call what it expands to.
  SSL_ctrl(ssl.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
           const_cast<char*>(host.c_str()));
  if (!tls.insecure) {
    // The host-name check Paho makes after the handshake, made here by OpenSSL during it.
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1) {
      X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
    }
  }
  if (SSL_connect(ssl.get()) != 1) {
    const long verify = SSL_get_verify_result(ssl.get());
    if (verify != X509_V_OK) {
      ERR_clear_error();
      return std::string("the broker's certificate was refused: ") +
             X509_verify_cert_error_string(verify);
    }
    return last_openssl_error("TLS handshake failed");
  }
  SSL_shutdown(ssl.get());
  return {};
}

}  // namespace gateway
