#include "tools/client/mqttsn_client.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <cstring>
#include <utility>

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/types.h>
#include <unistd.h>

#include "mqttsn/codec.hpp"
#include "mqttsn/topics.hpp"

namespace tools {

namespace {

constexpr std::size_t max_datagram = 65536;
constexpr std::size_t max_inbox = 1000;           // undelivered messages kept for receive()
constexpr std::size_t max_qos2_remembered = 256;  // QoS 2 ids awaiting PUBREL

std::string errno_text(int e) { return std::strerror(e); }

// The sockaddr bytes that identify a peer: family, address and port.
bool same_peer(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    sockaddr_in x{};
    sockaddr_in y{};
    std::memcpy(&x, &a, sizeof x);
    std::memcpy(&y, &b, sizeof y);
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  if (a.ss_family == AF_INET6) {
    sockaddr_in6 x{};
    sockaddr_in6 y{};
    std::memcpy(&x, &a, sizeof x);
    std::memcpy(&y, &b, sizeof y);
    return x.sin6_port == y.sin6_port &&
           std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof x.sin6_addr) == 0;
  }
  return false;
}

std::string frame_label(std::span<const std::uint8_t> frame) {
  auto d = mqttsn::decode(frame);
  if (const auto* m = std::get_if<mqttsn::message>(&d)) return mqttsn::name_of(mqttsn::type_of(*m));
  return std::string("undecodable (") + mqttsn::to_string(std::get<mqttsn::decode_error>(d)) + ")";
}

bool is_connect_reply(const mqttsn::message& m) {
  return std::holds_alternative<mqttsn::connack>(m) ||
         std::holds_alternative<mqttsn::willtopicreq>(m) ||
         std::holds_alternative<mqttsn::willmsgreq>(m);
}

}  // namespace

std::string describe(mqttsn::return_code rc) {
  switch (rc) {
    case mqttsn::return_code::accepted: return "accepted";
    case mqttsn::return_code::congestion: return "rejected: congestion";
    case mqttsn::return_code::invalid_topic_id: return "rejected: invalid topic id";
    case mqttsn::return_code::not_supported: return "rejected: not supported";
  }
  char buf[48];
  std::snprintf(buf, sizeof buf, "rejected: reserved return code 0x%02X",
                static_cast<unsigned>(rc));
  return buf;
}

std::string wall_clock_stamp() {
    const auto now = std::chrono::system_clock::now();
    const auto t = std::chrono::system_clock::to_time_t(now);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    ::localtime_r(&t, &tm);
    char stamp[32];
    std::snprintf(stamp, sizeof stamp, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return stamp;
}

std::string to_hex(std::span<const std::uint8_t> frame) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string s;
  s.reserve(frame.size() * 3);
  for (auto b : frame) {
    if (!s.empty()) s += ' ';
    s += digits[b >> 4U];
    s += digits[b & 0x0FU];
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// command-line helpers

namespace cli {

topic topic_for_name(std::string name) {
  if (name.size() == 2 && !mqttsn::has_wildcards(name)) return short_topic{std::move(name)};
  return topic_name{std::move(name)};
}

std::optional<long> parse_number(std::string_view text, long min, long max) {
  long v = 0;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc{} || p != end || v < min || v > max) return std::nullopt;
  return v;
}

std::optional<mqttsn::qos> parse_qos(std::string_view text, int min) {
  auto v = parse_number(text, min, 2);
  if (!v) return std::nullopt;
  return static_cast<mqttsn::qos>(static_cast<std::int8_t>(*v));
}

std::optional<mqttsn::topic_id> parse_topic_id(std::string_view text) {
  std::optional<long> v;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    long x = 0;
    const char* end = text.data() + text.size();
    auto [p, ec] = std::from_chars(text.data() + 2, end, x, 16);
    if (ec == std::errc{} && p == end) v = x;
  } else {
    v = parse_number(text, 0, LONG_MAX);
  }
  if (!v || *v < 0x0001 || *v > 0xFFFE) return std::nullopt;
  return static_cast<mqttsn::topic_id>(*v);
}

std::optional<milliseconds> parse_seconds(std::string_view text, double max_s) {
  double v = 0;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc{} || p != end || !(v > 0) || v > max_s) return std::nullopt;
  return milliseconds(static_cast<std::int64_t>(std::llround(v * 1000.0)));
}

bool connection_flags::take(int opt, const char* arg) {
  const std::string_view a = arg ? arg : "";
  switch (opt) {
    case 'h': host = a; return true;
    case 'p':
      if (auto v = parse_number(a, 1, 65535)) {
        port = static_cast<std::uint16_t>(*v);
        return true;
      }
      throw usage_error("bad port '" + std::string(a) + "' (1..65535)");
    case 'i':
      if (a.empty()) throw usage_error("the client id must not be empty");
      client_id = a;
      return true;
    case 'k':
      if (auto v = parse_number(a, 0, 65535)) {
        keep_alive = static_cast<std::uint16_t>(*v);
        return true;
      }
      throw usage_error("bad keep-alive '" + std::string(a) + "' (0..65535 seconds)");
    case 'd': debug = true; return true;
    case opt_will_topic:
      if (!mqttsn::is_valid_topic_name(a))
        throw usage_error("bad will topic '" + std::string(a) + "'");
      will_topic = a;
      return true;
    case opt_will_payload: will_payload.assign(a.begin(), a.end()); return true;
    case opt_will_qos:
      if (auto q = parse_qos(a, 0)) {
        will_qos = *q;
        return true;
      }
      throw usage_error("bad will QoS '" + std::string(a) + "' (0, 1 or 2)");
    case opt_will_retain: will_retain = true; return true;
    case opt_retry_interval:
      if (auto d = parse_seconds(a, 3600)) {
        retry_interval = *d;
        return true;
      }
      throw usage_error("bad retry interval '" + std::string(a) + "' (seconds, > 0)");
    case opt_retry_count:
      if (auto v = parse_number(a, 0, 100)) {
        retry_count = static_cast<unsigned>(*v);
        return true;
      }
      throw usage_error("bad retry count '" + std::string(a) + "' (0..100)");
    case opt_predefined: {
      const auto eq = a.find('=');
      const auto id = eq == std::string_view::npos ? std::nullopt : parse_topic_id(a.substr(0, eq));
      if (!id || !mqttsn::is_valid_topic_name(a.substr(eq + 1))) {
        throw usage_error("bad --predefined '" + std::string(a) + "' (ID=TOPIC)");
      }
      predefined[*id] = std::string(a.substr(eq + 1));
      return true;
    }
    default: return false;
  }
}

void connection_flags::check() const {
  if (will_topic.empty() &&
      (!will_payload.empty() || will_retain || will_qos != mqttsn::qos::at_most_once)) {
    throw usage_error("--will-payload, --will-qos and --will-retain need --will-topic");
  }
}

client_options connection_flags::options(const std::string& program) const {
  client_options o;
  o.client_id = client_id;
  o.keep_alive = keep_alive;
  o.retry_interval = retry_interval;
  o.retry_count = retry_count;
  if (debug) {
    o.debug = [program](std::string_view line) {
      std::fprintf(stderr, "%s: %.*s\n", program.c_str(), static_cast<int>(line.size()),
                   line.data());
    };
  }
  return o;
}

std::optional<will> connection_flags::will_message() const {
  if (will_topic.empty()) return std::nullopt;
  return will{will_topic, will_payload, will_qos, will_retain};
}

std::string option_name(char** argv, int next_index, int bad_option) {
  if (bad_option > 0 && bad_option < 256) return std::string("-") + static_cast<char>(bad_option);
  return argv[next_index - 1];
}

std::vector<::option> connection_long_options() {
  return {
      {"host", required_argument, nullptr, 'h'},
      {"port", required_argument, nullptr, 'p'},
      {"id", required_argument, nullptr, 'i'},
      {"keepalive", required_argument, nullptr, 'k'},
      {"debug", no_argument, nullptr, 'd'},
      {"will-topic", required_argument, nullptr, opt_will_topic},
      {"will-payload", required_argument, nullptr, opt_will_payload},
      {"will-qos", required_argument, nullptr, opt_will_qos},
      {"will-retain", no_argument, nullptr, opt_will_retain},
      {"retry-interval", required_argument, nullptr, opt_retry_interval},
      {"retry-count", required_argument, nullptr, opt_retry_count},
      {"predefined", required_argument, nullptr, opt_predefined},
      {"help", no_argument, nullptr, opt_help},
      {"version", no_argument, nullptr, opt_version},
  };
}

const char* connection_usage() {
  return R"(Connection:
  -h, --host HOST          gateway host name or IPv4/IPv6 address (default 127.0.0.1)
  -p, --port PORT          gateway UDP port (default 1884)
  -i, --id ID              client id (default <program>-<pid>)
  -k, --keepalive SECONDS  keep-alive sent in CONNECT, 0 = none (default 10)
      --will-topic TOPIC   will: CONNECT with the will flag and answer WILLTOPICREQ/WILLMSGREQ
      --will-payload TEXT  will message (default empty)
      --will-qos QOS       will QoS 0, 1 or 2 (default 0)
      --will-retain        retain the will
      --predefined ID=TOPIC  the name of a predefined topic id (repeatable), as configured on
                           the gateway; used to print topics of messages received on that id
      --retry-interval S   T_retry: seconds to wait for an answer before resending (default 2)
      --retry-count N      N_retry: resends before giving up (default 2)
  -d, --debug              print every frame sent and received, in hex, to stderr
      --help               this text
      --version            program version
)";
}

}  // namespace cli

// ---------------------------------------------------------------------------------------------
// socket

client::client(std::string host, std::uint16_t port, client_options options)
    : options_(std::move(options)) {
  if (options_.client_id.empty()) options_.client_id = "mqttsn-" + std::to_string(::getpid());
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_protocol = IPPROTO_UDP;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0 || !found) {
    throw client_error("cannot resolve '" + host + "': " + ::gai_strerror(rc));
  }
  std::memcpy(&addr_, found->ai_addr, found->ai_addrlen);
  addr_len_ = found->ai_addrlen;
  const int family = found->ai_family;
  ::freeaddrinfo(found);

  char numeric[NI_MAXHOST] = {};
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&addr_), addr_len_, numeric, sizeof numeric,
                    nullptr, 0, NI_NUMERICHOST) != 0) {
    std::snprintf(numeric, sizeof numeric, "%s", host.c_str());
  }
  peer_ = family == AF_INET6 ? "[" + std::string(numeric) + "]:" + service
                             : std::string(numeric) + ":" + service;

  fd_ = ::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
  if (fd_ < 0) throw client_error("cannot open a UDP socket: " + errno_text(errno));
  if (!options_.local_address.empty()) {
    sockaddr_storage local{};
    socklen_t local_len = 0;
    if (family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&local);
      a->sin6_family = AF_INET6;
      local_len = sizeof *a;
      if (::inet_pton(AF_INET6, options_.local_address.c_str(), &a->sin6_addr) != 1) local_len = 0;
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&local);
      a->sin_family = AF_INET;
      local_len = sizeof *a;
      if (::inet_pton(AF_INET, options_.local_address.c_str(), &a->sin_addr) != 1) local_len = 0;
    }
    if (local_len == 0 || ::bind(fd_, reinterpret_cast<const sockaddr*>(&local), local_len) != 0) {
      const int err = errno;
      ::close(fd_);
      fd_ = -1;
      throw client_error("cannot send from '" + options_.local_address + "': " +
                         (local_len == 0 ? std::string("not an address") : errno_text(err)));
    }
  }
}

client::~client() {
  if (fd_ >= 0) ::close(fd_);
}

void client::send_bytes(std::span<const std::uint8_t> frame, const char* name) {
  if (options_.debug) options_.debug("send " + std::string(name) + ": " + to_hex(frame));
  for (;;) {
    const auto n = ::sendto(fd_, frame.data(), frame.size(), 0,
                            reinterpret_cast<const sockaddr*>(&addr_), addr_len_);
    if (n >= 0) break;
    if (errno == EINTR) continue;
    throw client_error("cannot send to " + peer_ + ": " + errno_text(errno));
  }
  last_sent_ = clock::now();
}

void client::send(const mqttsn::message& m) {
  const bytes frame = mqttsn::encode(m);
  if (frame.empty()) {
    throw client_error(std::string(mqttsn::name_of(mqttsn::type_of(m))) +
                       " is too large for one MQTT-SN frame");
  }
  send_bytes(frame, mqttsn::name_of(mqttsn::type_of(m)));
}

void client::send_raw(std::span<const std::uint8_t> frame) {
  send_bytes(frame, options_.debug ? frame_label(frame).c_str() : "");
}

client::read_status client::read_frame(clock::time_point deadline, bytes& out, bool* from_peer) {
  std::vector<std::uint8_t> buf(max_datagram);
  for (;;) {
    const auto left = std::chrono::ceil<milliseconds>(deadline - clock::now()).count();
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::clamp<decltype(left)>(left, 0, INT_MAX)));
    if (r < 0) {
      if (errno == EINTR) return read_status::interrupted;
      throw client_error("poll failed: " + errno_text(errno));
    }
    if (r == 0) return read_status::timeout;

    sockaddr_storage from{};
    socklen_t from_len = sizeof from;
    const auto n = ::recvfrom(fd_, buf.data(), buf.size(), MSG_DONTWAIT,
                              reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n < 0) {
      if (errno == EINTR) return read_status::interrupted;
      if (errno == EAGAIN || errno == EWOULDBLOCK) continue;
      // An ICMP error reported on the socket (e.g. port unreachable): the gateway is not there
      // yet; keep waiting, the retry budget decides.
      if (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH) continue;
      throw client_error("cannot receive from " + peer_ + ": " + errno_text(errno));
    }
    const bool peer = same_peer(from, addr_);
    if (!peer && !from_peer) {
      if (options_.debug) options_.debug("ignored a datagram from another sender");
      continue;
    }
    if (from_peer) *from_peer = peer;
    out.assign(buf.begin(), buf.begin() + n);
    if (options_.debug) options_.debug("recv " + frame_label(out) + ": " + to_hex(out));
    return read_status::frame;
  }
}

std::optional<bytes> client::receive_raw(milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  bytes frame;
  for (;;) {
    switch (read_frame(deadline, frame)) {
      case read_status::frame: return frame;
      case read_status::timeout: return std::nullopt;
      case read_status::interrupted:
        if (clock::now() >= deadline) return std::nullopt;
        break;
    }
  }
}

std::optional<mqttsn::message> client::decode_logged(const bytes& frame) {
  auto d = mqttsn::decode(frame);
  if (auto* m = std::get_if<mqttsn::message>(&d)) return std::move(*m);
  return std::nullopt;  // read_frame's debug line already named the decode error
}

// ---------------------------------------------------------------------------------------------
// waiting and retransmission

std::optional<mqttsn::message> client::wait_for(const accept_fn& accept,
                                                clock::time_point deadline) {
  bytes frame;
  for (;;) {
    const auto st = read_frame(deadline, frame);
    if (st == read_status::timeout) return std::nullopt;
    if (st == read_status::interrupted) continue;  // still bounded by `deadline`
    auto m = decode_logged(frame);
    if (!m) continue;
    if (accept(*m)) return m;
    dispatch(*m);
  }
}

std::string client::seconds_text(milliseconds d) const {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", static_cast<double>(d.count()) / 1000.0);
  return buf;
}

void client::fail_no_answer(const char* reply_name, const char* hint) const {
  const auto budget = options_.retry_interval * (options_.retry_count + 1);
  std::string text =
      std::string("no ") + reply_name + " from " + peer_ + " within " + seconds_text(budget);
  if (*hint) text += std::string(" ") + hint;
  throw client_error(text);
}

mqttsn::message client::transact(mqttsn::message request, const accept_fn& accept,
                                 const char* reply_name, const char* hint) {
  for (unsigned attempt = 0;; ++attempt) {
    send(request);
    if (auto m = wait_for(accept, clock::now() + options_.retry_interval)) return std::move(*m);
    if (attempt >= options_.retry_count) fail_no_answer(reply_name, hint);
    // A retransmission says so where the message has a DUP flag.
    if (auto* p = std::get_if<mqttsn::publish>(&request)) p->dup = true;
    if (auto* s = std::get_if<mqttsn::subscribe>(&request)) s->dup = true;
  }
}

mqttsn::msg_id client::next_mid() noexcept {
  ++last_mid_;
  if (last_mid_ == 0)
    last_mid_ = 1;  // never 0 where an answer is expected (PROTOCOL.md §6 item 17)
  return last_mid_;
}

// ---------------------------------------------------------------------------------------------
// unsolicited traffic

void client::remember_topic(mqttsn::topic_id id, const std::string& name) {
  if (auto it = topic_names_.find(id); it != topic_names_.end()) topic_ids_.erase(it->second);
  if (auto it = topic_ids_.find(name); it != topic_ids_.end()) topic_names_.erase(it->second);
  topic_names_[id] = name;
  topic_ids_[name] = id;
}

void client::set_predefined(mqttsn::topic_id id, std::string name) {
  predefined_[id] = std::move(name);
}

void client::deliver(received_message&& m) {
  if (inbox_.size() >= max_inbox) {
    if (options_.debug) options_.debug("inbox full: oldest undelivered message dropped");
    inbox_.pop_front();
  }
  inbox_.push_back(std::move(m));
}

void client::dispatch(const mqttsn::message& m) {
  if (const auto* r = std::get_if<mqttsn::register_>(&m)) {
    if (r->id == mqttsn::reserved_topic_id_low || r->id == mqttsn::reserved_topic_id_high) {
      send(mqttsn::regack{r->id, r->mid, mqttsn::return_code::not_supported});
      return;
    }
    remember_topic(r->id, r->topic_name);
    send(mqttsn::regack{r->id, r->mid, mqttsn::return_code::accepted});
  } else if (const auto* p = std::get_if<mqttsn::publish>(&m)) {
    on_publish(*p);
  } else if (const auto* rel = std::get_if<mqttsn::pubrel>(&m)) {
    if (qos2_pending_rel_.erase(rel->mid) > 0) std::erase(qos2_order_, rel->mid);
    send(mqttsn::pubcomp{rel->mid});  // also for an unknown id, so the gateway can finish
  } else if (std::holds_alternative<mqttsn::pingreq>(m)) {
    send(mqttsn::pingresp{});
  } else if (std::holds_alternative<mqttsn::pingresp>(m)) {
    ping_sent_at_.reset();
  } else if (std::holds_alternative<mqttsn::disconnect>(m)) {
    state_ = client_state::disconnected;
    ping_sent_at_.reset();
    throw gateway_disconnected("the gateway at " + peer_ + " closed the session (DISCONNECT)");
  }
  // Anything else (late acks of requests given up on, ADVERTISE, ...) needs no answer.
}

void client::on_publish(const mqttsn::publish& p) {
  received_message r{{}, p.data, p.q, p.retain, p.dup, p.id_type, p.id};
  switch (p.id_type) {
    case mqttsn::topic_id_type::normal:
      if (auto it = topic_names_.find(p.id); it != topic_names_.end()) {
        r.topic = it->second;
      } else {
        // Unknown id: the gateway should REGISTER it again (PROTOCOL.md §3.5).
        if (p.q == mqttsn::qos::at_least_once || p.q == mqttsn::qos::exactly_once) {
          send(mqttsn::puback{p.id, p.mid, mqttsn::return_code::invalid_topic_id});
        }
        return;
      }
      break;
    case mqttsn::topic_id_type::predefined:
      if (auto it = predefined_.find(p.id); it != predefined_.end()) r.topic = it->second;
      break;
    case mqttsn::topic_id_type::short_name: r.topic = mqttsn::short_topic_name(p.id); break;
  }
  switch (p.q) {
    case mqttsn::qos::at_least_once:
      send(mqttsn::puback{p.id, p.mid, mqttsn::return_code::accepted});
      break;
    case mqttsn::qos::exactly_once:
      send(mqttsn::pubrec{p.mid});
      if (qos2_pending_rel_.contains(p.mid)) return;  // a retransmission: delivered already
      if (qos2_order_.size() >= max_qos2_remembered) {
        qos2_pending_rel_.erase(qos2_order_.front());
        qos2_order_.pop_front();
      }
      qos2_pending_rel_.insert(p.mid);
      qos2_order_.push_back(p.mid);
      break;
    case mqttsn::qos::at_most_once:
    case mqttsn::qos::minus_one: break;
  }
  deliver(std::move(r));
}

// ---------------------------------------------------------------------------------------------
// flows

mqttsn::return_code client::connect(bool clean_session, const std::optional<will>& w) {
  if (clean_session) {
    topic_names_.clear();
    topic_ids_.clear();
    qos2_pending_rel_.clear();
    qos2_order_.clear();
  }
  mqttsn::message current =
      mqttsn::connect{w.has_value(), clean_session, options_.keep_alive, options_.client_id};
  // The will handshake restarts the retry budget at every prompt; a gateway that keeps prompting
  // still ends it.
  const unsigned max_prompts = 4 * (options_.retry_count + 1);
  unsigned attempts = 0;
  unsigned prompts = 0;
  send(current);
  for (;;) {
    auto m = wait_for(is_connect_reply, clock::now() + options_.retry_interval);
    if (!m) {
      if (attempts++ >= options_.retry_count)
        fail_no_answer("CONNACK", "(is the gateway running?)");
      send(current);
      continue;
    }
    if (const auto* ack = std::get_if<mqttsn::connack>(&*m)) {
      if (ack->rc == mqttsn::return_code::accepted) {
        state_ = client_state::connected;
        ping_sent_at_.reset();
      }
      return ack->rc;
    }
    if (++prompts > max_prompts)
      throw client_error("the will handshake with " + peer_ + " did not finish");
    if (!w) continue;  // a prompt we did not ask for
    if (std::holds_alternative<mqttsn::willtopicreq>(*m)) {
      current = mqttsn::willtopic{w->q, w->retain, w->topic};
    } else {
      current = mqttsn::willmsg{w->payload};
    }
    attempts = 0;
    send(current);
  }
}

mqttsn::regack client::register_request(const std::string& name) {
  const auto mid = next_mid();
  auto reply = transact(
      mqttsn::register_{0, mid, name},
      [mid](const mqttsn::message& m) {
        const auto* a = std::get_if<mqttsn::regack>(&m);
        return a && a->mid == mid;
      },
      "REGACK");
  const auto& ack = std::get<mqttsn::regack>(reply);
  if (ack.rc == mqttsn::return_code::accepted) remember_topic(ack.id, name);
  return ack;
}

mqttsn::topic_id client::register_topic(const std::string& name) {
  const auto ack = register_request(name);
  if (ack.rc != mqttsn::return_code::accepted) {
    throw client_error("REGISTER of '" + name + "' " + describe(ack.rc));
  }
  return ack.id;
}

mqttsn::return_code client::publish(const topic& t, std::string_view payload, mqttsn::qos q,
                                    bool retain) {
  return publish(t,
                 std::span(reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()),
                 q, retain);
}

mqttsn::return_code client::publish(const topic& t, std::span<const std::uint8_t> payload,
                                    mqttsn::qos q, bool retain) {
  bool cached = false;
  auto rc = publish_once(t, payload, q, retain, cached);
  if (rc == mqttsn::return_code::invalid_topic_id && cached) {
    // The gateway no longer knows the id we cached (e.g. it restarted): REGISTER again, once.
    const auto& name = std::get<topic_name>(t).name;
    if (auto it = topic_ids_.find(name); it != topic_ids_.end()) {
      topic_names_.erase(it->second);
      topic_ids_.erase(it);
    }
    rc = publish_once(t, payload, q, retain, cached);
  }
  return rc;
}

mqttsn::return_code client::publish_once(const topic& t, std::span<const std::uint8_t> payload,
                                         mqttsn::qos q, bool retain, bool& cached) {
  cached = false;
  mqttsn::topic_id_type type = mqttsn::topic_id_type::normal;
  mqttsn::topic_id id = 0;
  if (const auto* pre = std::get_if<predefined_topic>(&t)) {
    type = mqttsn::topic_id_type::predefined;
    id = pre->id;
  } else if (const auto* sh = std::get_if<short_topic>(&t)) {
    const auto s = mqttsn::short_topic_id(sh->name);
    if (!s)
      throw client_error("a short topic name has exactly two characters, not '" + sh->name + "'");
    type = mqttsn::topic_id_type::short_name;
    id = *s;
  } else {
    const auto& name = std::get<topic_name>(t).name;
    if (q == mqttsn::qos::minus_one) {
      throw client_error("QoS -1 needs a predefined topic id or a short topic name, not '" + name +
                         "'");
    }
    if (auto it = topic_ids_.find(name); it != topic_ids_.end()) {
      id = it->second;
      cached = true;
    } else {
      const auto ack = register_request(name);
      if (ack.rc != mqttsn::return_code::accepted) return ack.rc;
      id = ack.id;
    }
  }

  if (q == mqttsn::qos::minus_one || q == mqttsn::qos::at_most_once) {
    send(mqttsn::publish{false, q, retain, type, id, 0, bytes(payload.begin(), payload.end())});
    return mqttsn::return_code::accepted;
  }

  const auto mid = next_mid();
  auto first = transact(
      mqttsn::publish{false, q, retain, type, id, mid, bytes(payload.begin(), payload.end())},
      [mid, q](const mqttsn::message& m) {
        if (const auto* a = std::get_if<mqttsn::puback>(&m))
          return a->mid == mid;  // QoS 2 rejections too
        const auto* r = std::get_if<mqttsn::pubrec>(&m);
        return q == mqttsn::qos::exactly_once && r && r->mid == mid;
      },
      q == mqttsn::qos::at_least_once ? "PUBACK" : "PUBREC");
  if (const auto* a = std::get_if<mqttsn::puback>(&first)) return a->rc;

  transact(
      mqttsn::pubrel{mid},
      [mid](const mqttsn::message& m) {
        const auto* c = std::get_if<mqttsn::pubcomp>(&m);
        return c && c->mid == mid;
      },
      "PUBCOMP");
  return mqttsn::return_code::accepted;
}

subscribe_result client::subscribe(const topic& t, mqttsn::qos q) {
  mqttsn::subscribe s{false, q, mqttsn::topic_id_type::normal, next_mid(), {}, 0};
  if (const auto* pre = std::get_if<predefined_topic>(&t)) {
    s.id_type = mqttsn::topic_id_type::predefined;
    s.id = pre->id;
  } else if (const auto* sh = std::get_if<short_topic>(&t)) {
    const auto id = mqttsn::short_topic_id(sh->name);
    if (!id)
      throw client_error("a short topic name has exactly two characters, not '" + sh->name + "'");
    s.id_type = mqttsn::topic_id_type::short_name;
    s.id = *id;
  } else {
    s.topic_name = std::get<topic_name>(t).name;
  }
  const auto mid = s.mid;
  auto reply = transact(
      s,
      [mid](const mqttsn::message& m) {
        const auto* a = std::get_if<mqttsn::suback>(&m);
        return a && a->mid == mid;
      },
      "SUBACK");
  const auto& ack = std::get<mqttsn::suback>(reply);
  if (ack.rc == mqttsn::return_code::accepted && s.id_type == mqttsn::topic_id_type::normal &&
      ack.id != 0 && ack.id != mqttsn::reserved_topic_id_high &&
      !mqttsn::has_wildcards(s.topic_name)) {
    remember_topic(ack.id, s.topic_name);
  }
  return subscribe_result{ack.granted, ack.id, ack.rc};
}

void client::unsubscribe(const topic& t) {
  mqttsn::unsubscribe u{mqttsn::topic_id_type::normal, next_mid(), {}, 0};
  if (const auto* pre = std::get_if<predefined_topic>(&t)) {
    u.id_type = mqttsn::topic_id_type::predefined;
    u.id = pre->id;
  } else if (const auto* sh = std::get_if<short_topic>(&t)) {
    const auto id = mqttsn::short_topic_id(sh->name);
    if (!id)
      throw client_error("a short topic name has exactly two characters, not '" + sh->name + "'");
    u.id_type = mqttsn::topic_id_type::short_name;
    u.id = *id;
  } else {
    u.topic_name = std::get<topic_name>(t).name;
  }
  const auto mid = u.mid;
  transact(
      u,
      [mid](const mqttsn::message& m) {
        const auto* a = std::get_if<mqttsn::unsuback>(&m);
        return a && a->mid == mid;
      },
      "UNSUBACK");
}

client::clock::time_point client::keep_alive_step(clock::time_point now) {
  if (ping_sent_at_) {
    const auto due = *ping_sent_at_ + options_.retry_interval;
    if (now < due) return due;
    if (ping_retries_ >= options_.retry_count) {
      ping_sent_at_.reset();
      fail_no_answer("PINGRESP", "(gateway lost?)");
    }
    ++ping_retries_;
    send(mqttsn::pingreq{});
    ping_sent_at_ = now;
    return now + options_.retry_interval;
  }
  const auto due = last_sent_ + std::chrono::seconds(options_.keep_alive);
  if (now < due) return due;
  send(mqttsn::pingreq{});
  ping_sent_at_ = now;
  ping_retries_ = 0;
  return now + options_.retry_interval;
}

std::optional<received_message> client::receive(milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  bytes frame;
  for (;;) {
    if (!inbox_.empty()) {
      received_message m = std::move(inbox_.front());
      inbox_.pop_front();
      return m;
    }
    auto until = deadline;
    if (state_ == client_state::connected && options_.keep_alive > 0) {
      until = std::min(until, keep_alive_step(clock::now()));
    }
    switch (read_frame(until, frame)) {
      case read_status::interrupted: return std::nullopt;
      case read_status::frame:
        if (auto m = decode_logged(frame)) dispatch(*m);
        break;
      case read_status::timeout:
        if (clock::now() >= deadline) return std::nullopt;
        break;
    }
  }
}

void client::ping() {
  transact(
      mqttsn::pingreq{},
      [](const mqttsn::message& m) { return std::holds_alternative<mqttsn::pingresp>(m); },
      "PINGRESP");
  ping_sent_at_.reset();
}

void client::sleep(std::uint16_t duration_s) {
  if (duration_s == 0) throw client_error("a sleep duration of 0 s is a plain DISCONNECT");
  transact(
      mqttsn::disconnect{duration_s},
      [](const mqttsn::message& m) { return std::holds_alternative<mqttsn::disconnect>(m); },
      "DISCONNECT");
  state_ = client_state::asleep;
  ping_sent_at_.reset();
}

std::vector<received_message> client::wake(milliseconds timeout) {
  std::vector<received_message> got;
  auto collect = [&] {
    for (auto& m : inbox_) got.push_back(std::move(m));
    inbox_.clear();
  };
  // On failure, what arrived stays for receive().
  auto give_back = [&] {
    for (auto it = got.rbegin(); it != got.rend(); ++it) inbox_.push_front(std::move(*it));
    got.clear();
  };
  collect();
  const auto deadline = clock::now() + timeout;
  const mqttsn::pingreq wake_up{options_.client_id};
  send(wake_up);
  // T_retry restarts on every message other than PINGRESP (PROTOCOL.md §3.10).
  auto retry_at = clock::now() + options_.retry_interval;
  unsigned retries = 0;
  bytes frame;
  for (;;) {
    const auto st = read_frame(std::min(deadline, retry_at), frame);
    if (st == read_status::frame) {
      auto m = decode_logged(frame);
      if (!m) continue;
      if (std::holds_alternative<mqttsn::pingresp>(*m)) {
        collect();
        ping_sent_at_.reset();
        return got;
      }
      try {
        dispatch(*m);
      } catch (...) {
        collect();
        give_back();
        throw;
      }
      collect();
      retry_at = clock::now() + options_.retry_interval;
      continue;
    }
    const auto now = clock::now();
    if (now >= deadline || (now >= retry_at && retries >= options_.retry_count)) {
      give_back();
      throw client_error("no PINGRESP from " + peer_ + " after waking up");
    }
    if (now >= retry_at) {
      ++retries;
      send(wake_up);
      retry_at = now + options_.retry_interval;
    }
  }
}

void client::disconnect() {
  transact(
      mqttsn::disconnect{},
      [](const mqttsn::message& m) { return std::holds_alternative<mqttsn::disconnect>(m); },
      "DISCONNECT");
  state_ = client_state::disconnected;
  ping_sent_at_.reset();
}

std::optional<std::uint8_t> client::searchgw(std::uint8_t radius, milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  send(mqttsn::searchgw{radius});
  auto resend_at = clock::now() + options_.retry_interval;
  bytes frame;
  for (;;) {
    bool from_gateway = false;
    const auto st = read_frame(std::min(deadline, resend_at), frame, &from_gateway);
    if (st == read_status::frame) {
      auto m = decode_logged(frame);
      if (!m) continue;
      if (const auto* info = std::get_if<mqttsn::gwinfo>(&*m)) return info->gw_id;
      if (from_gateway) dispatch(*m);
      continue;
    }
    const auto now = clock::now();
    if (now >= deadline) return std::nullopt;
    if (now >= resend_at) {
      send(mqttsn::searchgw{radius});
      resend_at = now + options_.retry_interval;
    }
  }
}

}  // namespace tools
