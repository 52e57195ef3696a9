// UDP transport (Boost.Asio): one socket per listen address, IPv4 or IPv6, and optionally a
// multicast group for SEARCHGW/ADVERTISE/GWINFO. Endpoints are "<prefix><ip>:<port>" with IPv6
// addresses in brackets ("udp0/[::1]:40000"). Sends never block: a datagram the kernel does not
// take at once is dropped and counted (retransmission above covers QoS 1/2). Datagrams are read in
// batches (recvmmsg), and the replies the gateway sends while handling a batch go out together
// (sendmmsg): one system call per batch instead of two per frame under load.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "transports/transport.hpp"

namespace transports {

struct udp_stats {
  std::uint64_t datagrams_in = 0;
  std::uint64_t datagrams_out = 0;
  std::uint64_t oversize_dropped = 0;  // larger than max_frame_size
  std::uint64_t send_errors = 0;       // kernel refused, or a bad endpoint string
};

struct udp_options {
  std::string host;            // literal IPv4 or IPv6 address to bind
  std::uint16_t port = 0;      // 0: any free port (tests)
  std::size_t max_frame_size = 1024;
  std::size_t receive_buffer = 0;  // SO_RCVBUF in bytes; 0 = the kernel's default
  std::optional<std::pair<std::string, std::uint16_t>> multicast;  // group, port
};

class udp_transport final : public transport {
 public:
  // Binds at once: throws boost::system::system_error (e.g. address in use) so startup can fail
  // with one clear line.
  udp_transport(boost::asio::io_context& io, std::string prefix, const udp_options& options);

  const std::string& prefix() const noexcept override { return prefix_; }
  void start(frame_handler on_frame) override;
  void send(const std::string& to, std::span<const std::uint8_t> frame) override;
  void broadcast(std::span<const std::uint8_t> frame) override;
  void stop() override;

  std::uint16_t local_port() const;
  const udp_stats& stats() const noexcept { return stats_; }
  std::string counters() const override;

  // "<prefix>1.2.3.4:5" / "<prefix>[::1]:5" <-> asio endpoints.
  std::string to_endpoint(const boost::asio::ip::udp::endpoint& ep) const;
  std::optional<boost::asio::ip::udp::endpoint> from_endpoint(const std::string& ep) const;

 private:
  struct receiver {
    boost::asio::ip::udp::socket socket;
    // batch_size slots of slot_size_ bytes, left uninitialised: the kernel writes what is read, so
    // an idle gateway never touches (holds in RSS) the pages of the slots it has not used.
    std::unique_ptr<std::uint8_t[]> buffer;
  };
  struct pending_send {
    boost::asio::ip::udp::endpoint to;
    std::size_t offset = 0, size = 0;  // in out_bytes_
  };
  void receive(receiver& r);
  // Reads what is waiting (a bounded number of batches, so timers and the broker get their turn).
  void drain(receiver& r);
  void flush();

  static constexpr std::size_t batch_size = 32;

  std::string prefix_;
  std::size_t max_frame_size_;
  // One byte more than the largest frame, so a larger datagram shows as truncated (MSG_TRUNC).
  std::size_t slot_size_;
  receiver unicast_;
  std::optional<receiver> group_;
  std::optional<boost::asio::ip::udp::endpoint> group_endpoint_;
  frame_handler on_frame_;
  udp_stats stats_;
  bool stopped_ = false;
  bool batching_ = false;  // inside drain(): send() queues, flush() sends
  std::vector<pending_send> out_;
  std::vector<std::uint8_t> out_bytes_;
};

}  // namespace transports
