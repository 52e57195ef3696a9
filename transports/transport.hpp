// A transport moves whole MQTT-SN frames between the gateway and peers. It knows addresses, not
// MQTT-SN. Every peer address is an mqttsn::endpoint string that starts with the transport's own
// prefix (e.g. "udp0/" + "127.0.0.1:40000"), so the gateway can route a reply to the transport
// that heard the peer. Handlers run on the gateway's io_context thread.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

namespace transports {

class transport {
 public:
  using frame_handler = std::function<void(const std::string& from, std::span<const std::uint8_t> frame)>;

  virtual ~transport() = default;

  // Prefix of every endpoint this transport produces, unique among the gateway's transports.
  virtual const std::string& prefix() const noexcept = 0;
  virtual void start(frame_handler on_frame) = 0;
  // Sends one frame to a peer; never blocks. Undeliverable frames are counted by the transport.
  virtual void send(const std::string& to, std::span<const std::uint8_t> frame) = 0;
  // Sends one frame to every peer that listens for broadcasts (UDP multicast group, XBee broadcast);
  // a no-op when the transport has no broadcast configured.
  virtual void broadcast(std::span<const std::uint8_t> frame) = 0;
  virtual void stop() = 0;
  // The transport's own counters for the gateway's stats line, "key=value key=value" (keys are
  // prefixed with the transport's name there); empty when it has none to show.
  virtual std::string counters() const { return {}; }
};

}  // namespace transports
