// One MQTT 3.1.1 connection to the broker on the gateway's own io_context (no thread of its own):
// resolve, TCP connect (TCP_NODELAY), TLS handshake for ssl:// (certificate chain and host name
// checked unless insecure, SNI), CONNECT, CONNACK within the connect timeout; then a read loop
// over one reused buffer that splits the stream into packets (mqttsn::mqtt311 codec), keep-alive
// PINGREQs with loss detection, and a write queue that coalesces every packet queued while a
// write runs (or within one handler) into one write. Owns the socket and its timers; knows
// nothing about requests, refs or MQTT-SN: native_upstream decides what to send.
//
// Lifetime: held by shared_ptr; every pending asio handler holds one too. detach() stops all
// callbacks and closes the socket, so the listener may be destroyed right after it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "gateway/broker_settings.hpp"
#include "gateway/tls_stream.hpp"
#include "mqttsn/mqtt_codec.hpp"

namespace gateway {

// "tcp://HOST:PORT", "mqtt://", "ssl://", "mqtts://"; HOST may be "[v6]".
struct broker_address {
  std::string host;
  std::string port;
  bool tls = false;
};
std::optional<broker_address> parse_broker_uri(const std::string& uri);


class mqtt_connection : public std::enable_shared_from_this<mqtt_connection> {
 public:
  // Called on the io thread from asio handlers only, never from inside a member call.
  class listener {
   public:
    virtual void on_open(bool session_present) = 0;  // CONNACK accepted
    virtual void on_refused(std::uint8_t code) = 0;  // CONNACK 1..255; the connection is closed
    virtual void on_packet(mqttsn::mqtt311::packet&& p) = 0;  // after on_open only
    // The connection failed or broke (once, never after on_refused or detach()). `was_open`: after
    // on_open. `tls_verify`: the broker's certificate was refused (OpenSSL's words), or empty.
    // `host_limit`: it could not even be resolved or opened for a limit of this host (open files,
    // buffers, memory), which says nothing about the broker.
    virtual void on_closed(const std::string& reason, bool was_open,
                           const std::string& tls_verify, bool host_limit) = 0;

   protected:
    ~listener() = default;
  };

  mqtt_connection(boost::asio::io_context& io, broker_address address,
                  std::shared_ptr<tls_client> tls,
                  mqttsn::mqtt311::connect_packet connect,
                  std::chrono::milliseconds connect_timeout, listener* l);
  mqtt_connection(const mqtt_connection&) = delete;
  mqtt_connection& operator=(const mqtt_connection&) = delete;

  void open();
  // No more callbacks; the socket is closed now (nothing queued is written any more).
  void detach();
  // Queues DISCONNECT and closes the socket once everything queued is written (no listener
  // callbacks). `on_done` (optional) is posted once the socket is closed, however that happens
  // (written, failed, or detach()).
  void close_gracefully(std::function<void()> on_done = {});

  // Append whole packets to queue() (only after on_open), then call flush(): the write starts
  // after the current handler, so a burst becomes one write.
  mqttsn::mqtt311::bytes& queue() noexcept { return out_; }
  void note_queued(std::size_t packets = 1) noexcept { out_packets_ += packets; }
  void flush();
  // Packets queued or being written.
  std::size_t backlog() const noexcept { return out_packets_ + writing_packets_; }
  bool open_now() const noexcept { return state_ == state::open; }
  // Everything queued has been written (the socket may still be open).
  bool idle() const noexcept { return out_.empty() && !writing_; }
  bool closed() const noexcept { return state_ == state::closed; }

 private:
  enum class state : std::uint8_t { idle, connecting, awaiting_connack, open, draining, closed };
  using tcp = boost::asio::ip::tcp;

  void on_resolved(const boost::system::error_code& ec, const tcp::resolver::results_type& results);
  void connect_to(std::size_t index);
  void on_connected(const boost::system::error_code& ec);
  void send_connect();
  void start_read();
  void on_read(const boost::system::error_code& ec, std::size_t n);
  bool handle_packets();  // false once the connection was closed
  void start_write();
  void on_written(const boost::system::error_code& ec);
  void arm_keep_alive();
  void fail(const std::string& reason, const std::string& tls_verify = {}, bool host_limit = false);
  void shut();
  tcp::socket& socket();

  boost::asio::io_context& io_;
  broker_address address_;
  std::shared_ptr<tls_client> tls_client_;
  mqttsn::mqtt311::connect_packet connect_;
  std::chrono::milliseconds connect_timeout_;
  listener* listener_;
  state state_ = state::idle;
  tcp::resolver resolver_;
  std::vector<tcp::endpoint> endpoints_;  // the broker host's addresses, tried in turn
  std::optional<tcp::socket> plain_;
  std::unique_ptr<tls_stream> tls_;  // ssl:// (from the extension module)
  boost::asio::steady_timer connect_timer_;
  boost::asio::steady_timer keep_alive_timer_;
  bool ping_outstanding_ = false;
  // Reading: one buffer, reused; [start_, end_) holds bytes not yet consumed.
  mqttsn::mqtt311::bytes in_;
  std::size_t in_start_ = 0;
  std::size_t in_end_ = 0;
  std::size_t reading_ = 0;  // room offered to the read in progress
  bool big_reads_ = false;   // a read filled its buffer: read_chunk from now on
  // Writing: out_ fills while writing_buf_ is on the wire; they swap.
  mqttsn::mqtt311::bytes out_;
  mqttsn::mqtt311::bytes writing_buf_;
  std::size_t out_packets_ = 0;
  std::size_t writing_packets_ = 0;
  bool writing_ = false;
  bool flush_posted_ = false;
  std::function<void()> on_closed_;  // close_gracefully()'s on_done
};

}  // namespace gateway
