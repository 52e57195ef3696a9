#include "transports/udp_transport.hpp"

#include <boost/asio/ip/multicast.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <charconv>
#include <spdlog/spdlog.h>

namespace transports {

namespace asio = boost::asio;
using asio::ip::udp;

namespace {
// Large enough for any datagram; frames above max_frame_size are dropped after the read.
constexpr std::size_t receive_buffer = 65536;
}  // namespace

udp_transport::udp_transport(asio::io_context& io, std::string prefix, const udp_options& options)
    : prefix_(std::move(prefix)),
      max_frame_size_(options.max_frame_size),
      unicast_{udp::socket(io), {}, std::vector<std::uint8_t>(receive_buffer)} {
  const auto address = asio::ip::make_address(options.host);
  const udp::endpoint local(address, options.port);
  unicast_.socket.open(local.protocol());
  if (address.is_v6()) unicast_.socket.set_option(asio::ip::v6_only(true));
  unicast_.socket.bind(local);
  unicast_.socket.non_blocking(true);

  if (options.multicast) {
    const auto group = asio::ip::make_address(options.multicast->first);
    group_endpoint_ = udp::endpoint(group, options.multicast->second);
    group_.emplace(receiver{udp::socket(io), {}, std::vector<std::uint8_t>(receive_buffer)});
    group_->socket.open(group_endpoint_->protocol());
    group_->socket.set_option(udp::socket::reuse_address(true));
    group_->socket.bind(udp::endpoint(group.is_v6() ? udp::v6() : udp::v4(), options.multicast->second));
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

std::string udp_transport::to_endpoint(const udp::endpoint& ep) const {
  const auto a = ep.address();
  std::string s = prefix_;
  if (a.is_v6()) {
    s += '[';
    s += a.to_string();
    s += ']';
  } else {
    s += a.to_string();
  }
  s += ':';
  s += std::to_string(ep.port());
  return s;
}

std::optional<udp::endpoint> udp_transport::from_endpoint(const std::string& ep) const {
  if (ep.compare(0, prefix_.size(), prefix_) != 0) return std::nullopt;
  const std::string_view rest = std::string_view(ep).substr(prefix_.size());
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
  r.socket.async_receive_from(asio::buffer(r.buffer), r.sender, [this, &r](boost::system::error_code ec, std::size_t n) {
    if (ec == asio::error::operation_aborted || stopped_) return;
    const bool own_echo = !ec && &r != &unicast_ && r.sender == unicast_.socket.local_endpoint();
    if (!ec && !own_echo) {  // our own ADVERTISE/GWINFO looped back to the group socket: skip
      ++stats_.datagrams_in;
      if (n > max_frame_size_) {
        ++stats_.oversize_dropped;
        spdlog::debug("{}: dropped a {}-byte datagram from {} (max-frame-size {})", prefix_, n,
                      to_endpoint(r.sender), max_frame_size_);
      } else {
        on_frame_(to_endpoint(r.sender), std::span<const std::uint8_t>(r.buffer.data(), n));
      }
    } else if (ec) {
      // ICMP port unreachable from an earlier send and similar: not fatal for a UDP server.
      spdlog::debug("{}: receive: {}", prefix_, ec.message());
    }
    receive(r);
  });
}

void udp_transport::send(const std::string& to, std::span<const std::uint8_t> frame) {
  const auto ep = from_endpoint(to);
  if (!ep) {
    ++stats_.send_errors;
    spdlog::warn("{}: cannot send to '{}': not a UDP endpoint of this transport", prefix_, to);
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
