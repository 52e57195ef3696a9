#include "gateway/mqtt_client.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>
#include <variant>

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

namespace gateway {

namespace m = mqttsn::mqtt311;
namespace asio = boost::asio;

namespace {

constexpr std::size_t read_chunk = 64 * 1024;
// Until a read fills its buffer: a sensor's connection in transparent mode mostly carries small
// packets, and thousands of idle connections should not hold 64 KiB each.
constexpr std::size_t first_chunk = 2 * 1024;
// The largest packet accepted from the broker. A bigger one cannot go to any MQTT-SN client
// (frames are at most 65535 bytes) and would hold that much memory: the connection is closed.
constexpr std::size_t max_inbound_packet = 4 * 1024 * 1024;

}  // namespace

std::optional<broker_address> parse_broker_uri(const std::string& uri) {
  broker_address a;
  std::string rest;
  for (const auto& [scheme, tls] : {std::pair{"tcp://", false}, std::pair{"mqtt://", false},
                                    std::pair{"ssl://", true}, std::pair{"mqtts://", true}}) {
    if (uri.starts_with(scheme)) {
      rest = uri.substr(std::strlen(scheme));
      a.tls = tls;
      break;
    }
  }
  if (rest.empty()) return std::nullopt;
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos || colon + 1 >= rest.size()) return std::nullopt;
  a.host = rest.substr(0, colon);
  a.port = rest.substr(colon + 1);
  if (a.host.size() > 2 && a.host.front() == '[' && a.host.back() == ']')
    a.host = a.host.substr(1, a.host.size() - 2);
  if (a.host.empty() ||
      !std::all_of(a.port.begin(), a.port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  if (a.port.size() > 5 || std::stoul(a.port) > 65535) return std::nullopt;
  return a;
}

mqtt_connection::mqtt_connection(asio::io_context& io, broker_address address,
                                 std::shared_ptr<tls_client> tls,
                                 m::connect_packet connect,
                                 std::chrono::milliseconds connect_timeout, listener* l)
    : io_(io),
      address_(std::move(address)),
      tls_client_(std::move(tls)),
      connect_(std::move(connect)),
      connect_timeout_(connect_timeout),
      listener_(l),
      resolver_(io),
      connect_timer_(io),
      keep_alive_timer_(io) {
  if (address_.tls && tls_client_) {
    tls_ = tls_client_->make_stream(io);
  } else {
    plain_.emplace(io);
  }
}

mqtt_connection::tcp::socket& mqtt_connection::socket() {
  return tls_ ? tls_->socket() : *plain_;
}

void mqtt_connection::open() {
  if (state_ != state::idle) return;
  state_ = state::connecting;
  connect_timer_.expires_after(connect_timeout_);
  connect_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->state_ == state::open || self->state_ >= state::draining) return;
    self->fail("no CONNACK within " + std::to_string(self->connect_timeout_.count()) + " ms");
  });
  // An IP address needs no resolver (Asio resolves names on a thread of its own).
  boost::system::error_code not_ip;
  const auto ip = asio::ip::make_address(address_.host, not_ip);
  if (!not_ip) {
    const tcp::endpoint endpoint(ip, static_cast<unsigned short>(std::stoul(address_.port)));
    socket().async_connect(
        endpoint,
        [self = shared_from_this()](const boost::system::error_code& e) { self->on_connected(e); });
    return;
  }
  resolver_.async_resolve(address_.host, address_.port,
                          [self = shared_from_this()](const boost::system::error_code& ec,
                                                      const tcp::resolver::results_type& r) {
                            self->on_resolved(ec, r);
                          });
}

namespace {

// Errors of resolving or opening a connection that come from this host's limits, not from the broker.
// By errno value in the system or generic category: comparing with an errc condition goes through
// error_category::equivalent, which UBSan's vptr check rejects in Debian's Boost 1.74 build.
bool is_host_limit(const boost::system::error_code& ec) {
  if (ec.category() != boost::system::system_category() && ec.category() != boost::system::generic_category())
    return false;
  switch (ec.value()) {
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM: return true;
    default: return false;
  }
}

}  // namespace

void mqtt_connection::on_resolved(const boost::system::error_code& ec,
                                  const tcp::resolver::results_type& results) {
  if (state_ != state::connecting) return;
  if (ec) return fail("cannot resolve " + address_.host + ": " + ec.message(), {}, is_host_limit(ec));
  endpoints_.clear();
  for (const auto& entry : results) endpoints_.push_back(entry.endpoint());
  if (endpoints_.empty()) return fail("cannot resolve " + address_.host + ": no address");
  connect_to(0);
}

// The resolved addresses in turn (as asio::async_connect over a range does), but a socket that
// cannot even be opened ends the attempt with that error: the range version reports it as
// "Operation canceled", which would hide the host's limit behind a broker failure.
void mqtt_connection::connect_to(std::size_t index) {
  socket().async_connect(endpoints_[index], [self = shared_from_this(), index](const boost::system::error_code& e) {
    if (self->state_ != state::connecting) return;
    if (e && !is_host_limit(e) && index + 1 < self->endpoints_.size()) {
      boost::system::error_code ignored;
      self->socket().close(ignored);
      return self->connect_to(index + 1);
    }
    self->on_connected(e);
  });
}

void mqtt_connection::on_connected(const boost::system::error_code& ec) {
  if (state_ != state::connecting) return;
  if (ec) return fail(ec.message(), {}, is_host_limit(ec));
  boost::system::error_code ignored;
  socket().set_option(tcp::no_delay(true), ignored);
  if (!tls_) return send_connect();
  tls_->async_handshake(address_.host, [self = shared_from_this()](const boost::system::error_code& e,
                                                                    const std::string& verify) {
    if (self->state_ != state::connecting) return;
    if (e) return self->fail("TLS handshake failed: " + e.message(), verify);
    self->send_connect();
  });
}

void mqtt_connection::send_connect() {
  state_ = state::awaiting_connack;
  m::encode(connect_, out_);
  out_packets_ += 1;
  connect_.password.reset();  // no copy of the secret kept longer than needed
  start_write();
  start_read();
}

void mqtt_connection::start_read() {
  const std::size_t chunk = big_reads_ ? read_chunk : first_chunk;
  if (in_.size() - in_end_ < chunk / 4) {
    // Make room: drop what was consumed, then grow if a packet needs more.
    if (in_start_ > 0) {
      std::copy(in_.begin() + static_cast<std::ptrdiff_t>(in_start_),
                in_.begin() + static_cast<std::ptrdiff_t>(in_end_), in_.begin());
      in_end_ -= in_start_;
      in_start_ = 0;
    }
    if (in_.size() - in_end_ < chunk / 4) in_.resize(in_end_ + chunk);
  }
  reading_ = in_.size() - in_end_;
  auto handler = [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
    self->on_read(ec, n);
  };
  auto buffer = asio::buffer(in_.data() + in_end_, in_.size() - in_end_);
  if (tls_) {
    tls_->async_read_some(buffer, std::move(handler));
  } else {
    plain_->async_read_some(buffer, std::move(handler));
  }
}

void mqtt_connection::on_read(const boost::system::error_code& ec, std::size_t n) {
  if (state_ == state::closed || state_ == state::draining) return;
  if (ec) return fail(ec == asio::error::eof ? std::string("closed by the broker") : ec.message());
  in_end_ += n;
  if (n == reading_) big_reads_ = true;  // the buffer was filled: the traffic needs the big one
  if (!handle_packets()) return;
  if (in_start_ == in_end_) {
    in_start_ = in_end_ = 0;
    if (in_.size() > 4 * read_chunk) {  // after a large packet: give the memory back
      in_.resize(read_chunk);
      in_.shrink_to_fit();
    }
  }
  start_read();
}

bool mqtt_connection::handle_packets() {
  while (in_start_ < in_end_) {
    const std::span<const std::uint8_t> stream(in_.data() + in_start_, in_end_ - in_start_);
    const auto peeked = m::peek_frame(stream);
    if (std::holds_alternative<m::decode_error>(peeked)) {
      fail("malformed packet from the broker (bad remaining length)");
      return false;
    }
    const auto& info = std::get<std::optional<m::frame_info>>(peeked);
    if (!info) return true;
    if (info->size() > max_inbound_packet) {
      fail("a packet of " + std::to_string(info->size()) + " bytes from the broker (limit " +
           std::to_string(max_inbound_packet) + ")");
      return false;
    }
    if (info->size() > stream.size()) {
      if (in_.size() - in_start_ < info->size()) {  // make the whole packet fit
        std::copy(in_.begin() + static_cast<std::ptrdiff_t>(in_start_),
                  in_.begin() + static_cast<std::ptrdiff_t>(in_end_), in_.begin());
        in_end_ -= in_start_;
        in_start_ = 0;
        if (in_.size() < info->size() + read_chunk / 4) in_.resize(info->size() + read_chunk / 4);
      }
      return true;
    }
    auto decoded = m::decode(stream.first(info->size()));
    in_start_ += info->size();
    if (auto* e = std::get_if<m::decode_error>(&decoded)) {
      fail(std::string("malformed packet from the broker (") + m::to_string(*e) + ")");
      return false;
    }
    auto& p = std::get<m::packet>(decoded);
    if (state_ == state::awaiting_connack) {
      const auto* ack = std::get_if<m::connack_packet>(&p);
      if (ack == nullptr) {
        fail("the broker sent something else than a CONNACK first");
        return false;
      }
      connect_timer_.cancel();
      if (ack->return_code != 0) {
        auto* l = listener_;
        shut();
        if (l) l->on_refused(ack->return_code);
        return false;
      }
      state_ = state::open;
      arm_keep_alive();
      if (listener_) listener_->on_open(ack->session_present);
      if (state_ != state::open) return false;
      continue;
    }
    if (std::holds_alternative<m::pingresp_packet>(p)) {
      ping_outstanding_ = false;
      continue;
    }
    if (listener_) listener_->on_packet(std::move(p));
    if (state_ != state::open) return false;
  }
  return true;
}

void mqtt_connection::flush() {
  if (writing_ || flush_posted_ || out_.empty() || state_ == state::closed) return;
  flush_posted_ = true;
  asio::post(io_, [self = shared_from_this()] {
    self->flush_posted_ = false;
    if (!self->writing_) self->start_write();
  });
}

void mqtt_connection::start_write() {
  if (out_.empty() || state_ == state::closed || state_ == state::idle ||
      state_ == state::connecting)
    return;
  std::swap(out_, writing_buf_);
  out_.clear();
  writing_packets_ = out_packets_;
  out_packets_ = 0;
  writing_ = true;
  auto handler = [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
    self->on_written(ec);
  };
  if (tls_) {
    tls_->async_write(asio::buffer(writing_buf_), std::move(handler));
  } else {
    asio::async_write(*plain_, asio::buffer(writing_buf_), std::move(handler));
  }
}

void mqtt_connection::on_written(const boost::system::error_code& ec) {
  writing_ = false;
  writing_packets_ = 0;
  writing_buf_.clear();
  if (state_ == state::closed) return;
  if (ec) return fail(ec.message());
  if (!out_.empty()) return start_write();
  if (state_ == state::draining) shut();
}

void mqtt_connection::arm_keep_alive() {
  if (connect_.keep_alive == 0) return;
  keep_alive_timer_.expires_after(std::chrono::seconds(connect_.keep_alive));
  keep_alive_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->state_ != state::open) return;
    if (self->ping_outstanding_) {
      return self->fail("no PINGRESP within " + std::to_string(self->connect_.keep_alive) + " s");
    }
    self->ping_outstanding_ = true;
    m::encode(m::pingreq_packet{}, self->out_);
    self->note_queued();
    self->flush();
    self->arm_keep_alive();
  });
}

void mqtt_connection::fail(const std::string& reason, const std::string& tls_verify, bool host_limit) {
  if (state_ == state::closed) return;
  const bool was_open = state_ == state::open;
  auto* l = listener_;
  shut();
  if (l) l->on_closed(reason, was_open, tls_verify, host_limit);
}

void mqtt_connection::shut() {
  state_ = state::closed;
  listener_ = nullptr;
  boost::system::error_code ignored;
  resolver_.cancel();
  connect_timer_.cancel();
  keep_alive_timer_.cancel();
  socket().shutdown(tcp::socket::shutdown_both, ignored);
  socket().close(ignored);
  if (on_closed_) boost::asio::post(io_, std::exchange(on_closed_, {}));
}

void mqtt_connection::detach() {
  listener_ = nullptr;
  shut();
}

void mqtt_connection::close_gracefully(std::function<void()> on_done) {
  listener_ = nullptr;
  on_closed_ = std::move(on_done);
  if (state_ != state::open) return shut();
  state_ = state::draining;
  keep_alive_timer_.cancel();
  m::encode(m::disconnect_packet{}, out_);
  note_queued();
  if (!writing_) start_write();
}

}  // namespace gateway
