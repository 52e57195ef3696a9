#include "transports/udp_transport.hpp"

#include <boost/asio/ip/multicast.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <charconv>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace transports {

namespace asio = boost::asio;
using asio::ip::udp;


udp_transport::udp_transport(asio::io_context& io, std::string prefix, const udp_options& options)
    : prefix_(std::move(prefix)),
      max_frame_size_(options.max_frame_size),
      slot_size_(options.max_frame_size + 1),
      unicast_{udp::socket(io), std::unique_ptr<std::uint8_t[]>(new std::uint8_t[slot_size_ * batch_size])} {
  const auto address = asio::ip::make_address(options.host);
  const udp::endpoint local(address, options.port);
  unicast_.socket.open(local.protocol());
  if (address.is_v6()) unicast_.socket.set_option(asio::ip::v6_only(true));
  unicast_.socket.bind(local);
  unicast_.socket.non_blocking(true);
  if (options.receive_buffer > 0) {
    // Linux caps the request at net.core.rmem_max and reports twice the usable size.
    boost::system::error_code ec;
    unicast_.socket.set_option(udp::socket::receive_buffer_size(static_cast<int>(options.receive_buffer)), ec);
    udp::socket::receive_buffer_size got;
    unicast_.socket.get_option(got, ec);
    const auto effective = static_cast<std::size_t>(got.value()) / 2;
    if (ec || effective < options.receive_buffer) {
      spdlog::info("{}: UDP receive buffer {} bytes, not {} (raise net.core.rmem_max)", prefix_, effective,
                   options.receive_buffer);
    }
  }

  if (options.multicast) {
    const auto group = asio::ip::make_address(options.multicast->first);
    group_endpoint_ = udp::endpoint(group, options.multicast->second);
    group_.emplace(receiver{udp::socket(io), std::unique_ptr<std::uint8_t[]>(new std::uint8_t[slot_size_ * batch_size])});
    group_->socket.open(group_endpoint_->protocol());
    group_->socket.set_option(udp::socket::reuse_address(true));
    group_->socket.bind(udp::endpoint(group.is_v6() ? udp::v6() : udp::v4(), options.multicast->second));
    group_->socket.non_blocking(true);
    // Bound to one interface's IPv4 address: the group lives on that interface (also how tests
    // keep multicast on loopback). Bound to any address: the kernel's default interface.
    const bool pinned = address.is_v4() && group.is_v4() && !address.is_unspecified();
    if (pinned) {
      group_->socket.set_option(asio::ip::multicast::join_group(group.to_v4(), address.to_v4()));
      unicast_.socket.set_option(asio::ip::multicast::outbound_interface(address.to_v4()));
    } else {
      group_->socket.set_option(asio::ip::multicast::join_group(group));
    }
    // Our own broadcasts go out of the unicast socket; keep them on the local link.
    unicast_.socket.set_option(asio::ip::multicast::hops(1));
  }
}

std::uint16_t udp_transport::local_port() const { return unicast_.socket.local_endpoint().port(); }

namespace {

// "a.b.c.d:port" without sprintf (inet_ntop) and its locale machinery: this runs for every
// datagram received, and its inverse below for every datagram sent.
char* format_v4(char* p, char* end, const asio::ip::address_v4::bytes_type& b, std::uint16_t port) {
  for (std::size_t i = 0; i < b.size(); ++i) {
    p = std::to_chars(p, end, b[i]).ptr;
    *p++ = i + 1 < b.size() ? '.' : ':';
  }
  return std::to_chars(p, end, port).ptr;
}

// Parses a canonical decimal number (no sign, no leading zero) of at most `max`.
template <class T>
bool parse_canonical(std::string_view text, T max, T& out) {
  if (text.empty() || text.size() > 5 || (text.size() > 1 && text.front() == '0')) return false;
  unsigned value = 0;
  const auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (err != std::errc{} || end != text.data() + text.size() || value > max) return false;
  out = static_cast<T>(value);
  return true;
}

// "a.b.c.d:port" exactly as format_v4 writes it; anything else (IPv6, other spellings) is left to
// the general parser.
std::optional<udp::endpoint> parse_v4(std::string_view rest) {
  asio::ip::address_v4::bytes_type b{};
  for (std::size_t i = 0; i < b.size(); ++i) {
    const auto stop = rest.find(i + 1 < b.size() ? '.' : ':');
    if (stop == std::string_view::npos || !parse_canonical<std::uint8_t>(rest.substr(0, stop), 255, b[i])) {
      return std::nullopt;
    }
    rest.remove_prefix(stop + 1);
  }
  std::uint16_t port = 0;
  if (!parse_canonical<std::uint16_t>(rest, 65535, port)) return std::nullopt;
  return udp::endpoint(asio::ip::address_v4(b), port);
}

}  // namespace

std::string udp_transport::to_endpoint(const udp::endpoint& ep) const {
  const auto a = ep.address();
  std::string s = prefix_;
  if (a.is_v4()) {
    char buf[32];
    char* end = format_v4(buf, buf + sizeof buf, a.to_v4().to_bytes(), ep.port());
    s.append(buf, static_cast<std::size_t>(end - buf));
    return s;
  }
  s += '[';
  s += a.to_string();
  s += "]:";
  s += std::to_string(ep.port());
  return s;
}

std::optional<udp::endpoint> udp_transport::from_endpoint(const std::string& ep) const {
  if (ep.compare(0, prefix_.size(), prefix_) != 0) return std::nullopt;
  const std::string_view rest = std::string_view(ep).substr(prefix_.size());
  if (auto v4 = parse_v4(rest)) return v4;
  const auto colon = rest.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view host = rest.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  std::uint16_t port = 0;
  const auto port_text = rest.substr(colon + 1);
  const auto [end, err] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (err != std::errc{} || end != port_text.data() + port_text.size()) return std::nullopt;
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(std::string(host), ec);
  if (ec) return std::nullopt;
  return udp::endpoint(address, port);
}

void udp_transport::start(frame_handler on_frame) {
  on_frame_ = std::move(on_frame);
  receive(unicast_);
  if (group_) receive(*group_);
}

void udp_transport::receive(receiver& r) {
  r.socket.async_wait(udp::socket::wait_read, [this, &r](boost::system::error_code ec) {
    if (ec == asio::error::operation_aborted || stopped_) return;
    if (ec) spdlog::debug("{}: wait: {}", prefix_, ec.message());
    drain(r);
    if (!stopped_) receive(r);
  });
}

void udp_transport::drain(receiver& r) {
  mmsghdr msgs[batch_size];
  iovec iov[batch_size];
  sockaddr_storage from[batch_size];
  // Only a group socket needs our own address (to skip our looped-back ADVERTISE/GWINFO), and it
  // is asked once per wake-up then, not a getsockname() for every one of the unicast socket's.
  const bool group = &r != &unicast_;
  const auto own = group ? unicast_.socket.local_endpoint() : udp::endpoint();
  batching_ = true;
  for (int round = 0; round < 8 && !stopped_; ++round) {
    for (std::size_t k = 0; k < batch_size; ++k) {
      iov[k] = iovec{r.buffer.get() + k * slot_size_, slot_size_};
      msgs[k] = mmsghdr{};
      msgs[k].msg_hdr.msg_name = &from[k];
      msgs[k].msg_hdr.msg_namelen = sizeof from[k];
      msgs[k].msg_hdr.msg_iov = &iov[k];
      msgs[k].msg_hdr.msg_iovlen = 1;
    }
    const int n = ::recvmmsg(r.socket.native_handle(), msgs, batch_size, MSG_DONTWAIT, nullptr);
    if (n <= 0) {
      // EAGAIN: all read. Anything else (ICMP port unreachable from an earlier send and similar)
      // is not fatal for a UDP server.
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        spdlog::debug("{}: receive: {}", prefix_, std::strerror(errno));
      break;
    }
    for (int k = 0; k < n && !stopped_; ++k) {
      udp::endpoint sender;
      std::memcpy(sender.data(), &from[k], msgs[k].msg_hdr.msg_namelen);
      sender.resize(msgs[k].msg_hdr.msg_namelen);
      // Our own ADVERTISE/GWINFO looped back to the group socket: skip.
      if (group && sender == own) continue;
      ++stats_.datagrams_in;
      const std::size_t size = msgs[k].msg_len;
      if (size > max_frame_size_ || (msgs[k].msg_hdr.msg_flags & MSG_TRUNC) != 0) {
        ++stats_.oversize_dropped;
        spdlog::debug("{}: dropped a {}-byte datagram from {} (max-frame-size {})", prefix_, size,
                      to_endpoint(sender), max_frame_size_);
        continue;
      }
      on_frame_(to_endpoint(sender), std::span<const std::uint8_t>(r.buffer.get() + static_cast<std::size_t>(k) * slot_size_, size));
    }
    if (static_cast<std::size_t>(n) < batch_size) break;
  }
  batching_ = false;
  flush();
}

void udp_transport::flush() {
  if (out_.empty()) return;
  const int fd = unicast_.socket.native_handle();
  std::size_t done = 0;
  while (done < out_.size()) {
    const std::size_t count = std::min(batch_size, out_.size() - done);
    mmsghdr msgs[batch_size];
    iovec iov[batch_size];
    for (std::size_t k = 0; k < count; ++k) {
      auto& p = out_[done + k];
      iov[k] = iovec{out_bytes_.data() + p.offset, p.size};
      msgs[k] = mmsghdr{};
      msgs[k].msg_hdr.msg_name = p.to.data();
      msgs[k].msg_hdr.msg_namelen = static_cast<socklen_t>(p.to.size());
      msgs[k].msg_hdr.msg_iov = &iov[k];
      msgs[k].msg_hdr.msg_iovlen = 1;
    }
    const int n = ::sendmmsg(fd, msgs, static_cast<unsigned>(count), MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {  // the first datagram was refused: count it, go on with the next
      ++stats_.send_errors;
      spdlog::debug("{}: send: {}", prefix_, std::strerror(errno));
      ++done;
      continue;
    }
    stats_.datagrams_out += static_cast<std::uint64_t>(n);
    done += static_cast<std::size_t>(n);
  }
  out_.clear();
  out_bytes_.clear();
}

void udp_transport::send(const std::string& to, std::span<const std::uint8_t> frame) {
  const auto ep = from_endpoint(to);
  if (!ep) {
    ++stats_.send_errors;
    spdlog::warn("{}: cannot send to '{}': not a UDP endpoint of this transport", prefix_, to);
    return;
  }
  if (batching_) {  // replies while a batch is handled: sent together at its end
    out_.push_back(pending_send{*ep, out_bytes_.size(), frame.size()});
    out_bytes_.insert(out_bytes_.end(), frame.begin(), frame.end());
    return;
  }
  boost::system::error_code ec;
  unicast_.socket.send_to(asio::buffer(frame.data(), frame.size()), *ep, 0, ec);
  if (ec) {
    ++stats_.send_errors;
    spdlog::debug("{}: send to {}: {}", prefix_, to, ec.message());
    return;
  }
  ++stats_.datagrams_out;
}

void udp_transport::broadcast(std::span<const std::uint8_t> frame) {
  if (!group_endpoint_) return;
  boost::system::error_code ec;
  unicast_.socket.send_to(asio::buffer(frame.data(), frame.size()), *group_endpoint_, 0, ec);
  if (ec) {
    ++stats_.send_errors;
    spdlog::debug("{}: multicast send: {}", prefix_, ec.message());
    return;
  }
  ++stats_.datagrams_out;
}

void udp_transport::stop() {
  stopped_ = true;
  boost::system::error_code ec;
  unicast_.socket.close(ec);
  if (group_) group_->socket.close(ec);
}

std::string udp_transport::counters() const {
  return "datagrams_in=" + std::to_string(stats_.datagrams_in) + " datagrams_out=" + std::to_string(stats_.datagrams_out) +
         " oversize_dropped=" + std::to_string(stats_.oversize_dropped) + " send_errors=" + std::to_string(stats_.send_errors);
}

}  // namespace transports
