#include "tests/integration/mqtt_tap.hpp"

#include "tests/integration/harness.hpp"
#include "mqttsn/mqtt_codec.hpp"
#include "mqttsn/overloaded.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <system_error>
#include <variant>
#include <vector>

namespace itest {

// One relayed connection: the client's socket, the broker's, and a packet parser per direction.
struct mqtt_tap::pair {
  enum dir : std::uint8_t { to_broker = 0, to_client = 1 };
  int fd[2] = {-1, -1};  // [to_broker]: the broker's socket; [to_client]: the client's
  int instance = 0;
  std::string client_id;  // from the CONNECT
  std::vector<std::uint8_t> buf[2];            // unparsed bytes travelling in each direction
  std::map<std::uint16_t, std::string> sent[2];      // PUBLISH payloads by message id, per direction
  std::map<std::uint16_t, std::string> released[2];  // QoS 2 PUBLISHes PUBRECed by the client

  ~pair() {
    for (int f : fd) {
      if (f >= 0) ::close(f);
    }
  }
};

mqtt_tap::mqtt_tap(std::uint16_t broker_port) : broker_port_(broker_port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::system_error(errno, std::generic_category(), "mqtt_tap: socket");
  const int yes = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  auto a = loopback(0);
  socklen_t len = sizeof a;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, 64) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    const int e = errno;
    ::close(listen_fd_);
    throw std::system_error(e, std::generic_category(), "mqtt_tap: bind/listen");
  }
  port_ = ntohs(a.sin_port);
  thread_ = std::thread([this] { run(); });
}

mqtt_tap::~mqtt_tap() {
  stop_ = true;
  thread_.join();
  ::close(listen_fd_);
}

std::string mqtt_tap::uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

void mqtt_tap::set_instance(int n) { instance_ = n; }

std::set<std::string> mqtt_tap::broker_acked(int instance) const {
  std::lock_guard lock(mutex_);
  std::set<std::string> out;
  for (const auto& [payload, runs] : broker_acked_) {
    if (instance < 0 || runs.contains(instance)) out.insert(payload);
  }
  return out;
}

std::set<std::string> mqtt_tap::client_acked() const {
  std::lock_guard lock(mutex_);
  return client_acked_;
}

int mqtt_tap::publishes_to_broker(const std::string& payload) const {
  std::lock_guard lock(mutex_);
  auto it = publishes_[pair::to_broker].find(payload);
  return it == publishes_[pair::to_broker].end() ? 0 : it->second;
}

int mqtt_tap::publishes_to_clients(const std::string& payload) const {
  std::lock_guard lock(mutex_);
  auto it = publishes_[pair::to_client].find(payload);
  return it == publishes_[pair::to_client].end() ? 0 : it->second;
}

std::map<std::string, int> mqtt_tap::broker_resent_after_release() const {
  std::lock_guard lock(mutex_);
  return resent_after_release_;
}

std::size_t mqtt_tap::connections() const {
  std::lock_guard lock(mutex_);
  return connections_;
}

void mqtt_tap::run() {
  std::vector<std::unique_ptr<pair>> pairs;
  // Parses the complete packets buffered in direction `d` of `p`.
  auto parse = [this](pair& p, int d) {
    namespace m = mqttsn::mqtt311;
    auto& b = p.buf[d];
    std::size_t at = 0;
    for (;;) {
      const std::span<const std::uint8_t> rest(b.data() + at, b.size() - at);
      const auto peeked = m::peek_frame(rest);
      const auto* info = std::get_if<std::optional<m::frame_info>>(&peeked);
      if (info == nullptr || !*info || (*info)->size() > rest.size()) break;
      const auto decoded = m::decode(rest.first((*info)->size()));
      at += (*info)->size();
      const auto* packet = std::get_if<m::packet>(&decoded);
      if (packet == nullptr) continue;
      // PUBACK and PUBREC acknowledge a PUBLISH that went the other way; a client owns a QoS 2
      // message only at its PUBCOMP (Paho C hands it over on PUBREL).
      auto acknowledged = [&](m::packet_type type, std::uint16_t mid) {
        auto& other = p.sent[1 - d];
        auto it = other.find(mid);
        std::lock_guard lock(mutex_);
        if (type != m::packet_type::pubcomp && it != other.end()) {
          if (d == pair::to_client) {
            broker_acked_[it->second].insert(p.instance);
          } else if (type == m::packet_type::puback) {
            client_acked_.insert(it->second);
          } else {
            p.released[d][mid] = it->second;
            pubreced_[p.client_id][mid] = it->second;
          }
          other.erase(it);
        } else if (type == m::packet_type::pubcomp && d == pair::to_broker) {
          if (auto r = p.released[d].find(mid); r != p.released[d].end()) {
            client_acked_.insert(r->second);
            p.released[d].erase(r);
          }
        }
      };
      std::visit(mqttsn::overloaded{
                     [&](const m::connect_packet& c) {  // remember the client id
                       if (d == pair::to_broker) p.client_id = c.client_id;
                     },
                     [&](const m::publish_packet& x) {  // with a message id
                       if (x.qos == 0) return;
                       const std::string payload(x.payload.begin(), x.payload.end());
                       p.sent[d][x.packet_id] = payload;
                       std::lock_guard lock(mutex_);
                       ++publishes_[d][payload];
                       if (d == pair::to_client && x.qos == 2) {
                         // A resend of the very message released under this id (same payload);
                         // anything else under the id is another message.
                         auto& released = released_[p.client_id];
                         auto r = released.find(x.packet_id);
                         if (x.dup && r != released.end() && r->second == payload) ++resent_after_release_[payload];
                         if (r != released.end() && r->second != payload) released.erase(r);
                       }
                     },
                     [&](const m::pubrel_packet& r) {  // PUBREL from the broker
                       if (d != pair::to_client) return;
                       std::lock_guard lock(mutex_);
                       auto& rec = pubreced_[p.client_id];
                       if (auto it = rec.find(r.packet_id); it != rec.end()) released_[p.client_id][r.packet_id] = it->second;
                     },
                     [&](const m::puback_packet& a) { acknowledged(m::packet_type::puback, a.packet_id); },
                     [&](const m::pubrec_packet& a) { acknowledged(m::packet_type::pubrec, a.packet_id); },
                     [&](const m::pubcomp_packet& a) { acknowledged(m::packet_type::pubcomp, a.packet_id); },
                     [](const auto&) {},
                 },
                 *packet);
    }
    b.erase(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(at));
  };

  std::vector<std::uint8_t> chunk(65536);
  while (!stop_) {
    std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
    for (const auto& p : pairs) {
      fds.push_back({p->fd[pair::to_client], POLLIN, 0});  // the client's socket: bytes toward the broker
      fds.push_back({p->fd[pair::to_broker], POLLIN, 0});  // the broker's socket: bytes toward the client
    }
    if (::poll(fds.data(), fds.size(), 50) <= 0) continue;
    const std::size_t polled = pairs.size();  // a pair accepted below waits for the next poll
    if (fds[0].revents & POLLIN) {
      const int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) {
        auto p = std::make_unique<pair>();
        p->fd[pair::to_client] = c;
        p->instance = instance_;
        p->fd[pair::to_broker] = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const auto a = loopback(broker_port_);
        const int yes = 1;
        ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
        ::setsockopt(p->fd[pair::to_broker], IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
        if (::connect(p->fd[pair::to_broker], reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0) {
          std::lock_guard lock(mutex_);
          ++connections_;
          pairs.push_back(std::move(p));
        }  // else: the broker is down; closing the client's socket says so
      }
    }
    std::vector<std::size_t> dead;
    for (std::size_t k = 0; k < polled; ++k) {
      auto& p = *pairs[k];
      bool closed = false;
      for (int side = 0; side < 2 && !closed; ++side) {
        const auto& f = fds[1 + 2 * k + static_cast<std::size_t>(side)];
        if ((f.revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        // side 0 polled the client's socket: its bytes travel toward the broker.
        const int d = side == 0 ? pair::to_broker : pair::to_client;
        const int from = side == 0 ? p.fd[pair::to_client] : p.fd[pair::to_broker];
        const int to = side == 0 ? p.fd[pair::to_broker] : p.fd[pair::to_client];
        const auto n = ::recv(from, chunk.data(), chunk.size(), 0);
        if (n <= 0) {
          closed = true;
          break;
        }
        const auto len = static_cast<std::size_t>(n);
        p.buf[d].insert(p.buf[d].end(), chunk.begin(), chunk.begin() + n);
        parse(p, d);
        if (!send_all(to, std::span(chunk.data(), len))) closed = true;
      }
      if (closed) dead.push_back(k);
    }
    for (auto it = dead.rbegin(); it != dead.rend(); ++it) pairs.erase(pairs.begin() + static_cast<std::ptrdiff_t>(*it));
  }
}

}  // namespace itest
