// A small synchronous MQTT-SN v1.2 client over UDP (IPv4 or IPv6), for mqttsn-pub, mqttsn-sub and
// integration tests. Owns one UDP socket and the client side of each flow; frames come from the
// protocol core's codec (mqttsn/codec.hpp), never from code of its own. Every wait is bounded.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <getopt.h>
#include <sys/socket.h>

#include "mqttsn/message.hpp"

namespace tools {

using mqttsn::bytes;
using std::chrono::milliseconds;

// Every failure: no answer within the retry budget, a refused REGISTER, a socket error, misuse.
// The message is one line meant for a user ("no CONNACK from 127.0.0.1:1884 within 6 s ...").
class client_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The gateway sent an unsolicited DISCONNECT: the session is gone, CONNECT again.
class gateway_disconnected : public client_error {
 public:
  using client_error::client_error;
};

struct client_options {
  std::string client_id;          // empty: "mqttsn-<pid>"
  std::uint16_t keep_alive = 10;  // seconds, sent in CONNECT; 0 disables PINGREQs from receive()
  milliseconds retry_interval{2'000};  // T_retry: wait for a reply before retransmitting
  unsigned retry_count =
      2;  // N_retry: retransmissions after the first send (2 -> 3 x T_retry in all)
  // Called with one line per frame sent or received: "send CONNECT: 0C 04 04 01 00 0A ..." or
  // "recv CONNACK: 03 05 00". Empty: no debug output.
  std::function<void(std::string_view line)> debug;
  // Send from this local IP address (e.g. 127.0.0.2, another loopback address); empty: any.
  std::string local_address{};
};

struct will {
  std::string topic;
  bytes payload;
  mqttsn::qos q = mqttsn::qos::at_most_once;  // 0..2
  bool retain = false;
};

// How a PUBLISH, SUBSCRIBE or UNSUBSCRIBE names its topic.
struct topic_name {  // a name (REGISTERed before publishing, then cached) or a subscription filter
  std::string name;
};
struct predefined_topic {  // an id both sides know out of band
  mqttsn::topic_id id = 0;
};
struct short_topic {  // exactly two characters, carried in the topic id slot
  std::string name;
};
using topic = std::variant<topic_name, predefined_topic, short_topic>;

struct subscribe_result {
  mqttsn::qos granted = mqttsn::qos::at_most_once;
  mqttsn::topic_id id =
      0;  // the normal id for a plain name; 0 for wildcards; not relevant for short names
  mqttsn::return_code rc = mqttsn::return_code::accepted;
};

struct received_message {
  std::string topic;  // resolved name; empty for a predefined id without set_predefined()
  bytes payload;
  mqttsn::qos q = mqttsn::qos::at_most_once;
  bool retain = false;
  bool dup = false;
  mqttsn::topic_id_type id_type = mqttsn::topic_id_type::normal;
  mqttsn::topic_id id = 0;
};

enum class client_state : std::uint8_t { disconnected, connected, asleep };

// "accepted", "rejected: congestion", ... for messages to users.
std::string describe(mqttsn::return_code rc);
// "0C 04 04 01", for debug output.
std::string to_hex(std::span<const std::uint8_t> frame);
// "12:34:56.789", local wall-clock time for trace lines of tests and tools.
std::string wall_clock_stamp();

// ---- helpers shared by the command-line tools (mqttsn-pub, mqttsn-sub) ----
namespace cli {

// A bad command line: the tool prints it after its name and exits 1.
class usage_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A topic given by name: exactly two characters without wildcards make a short topic name (as
// njh/mqtt-sn-tools does), anything else a name or filter.
topic topic_for_name(std::string name);
// "-1", "0", "1", "2" within [min, 2].
std::optional<mqttsn::qos> parse_qos(std::string_view text, int min);
// A topic id in decimal or 0x-hex, 0x0001..0xFFFE.
std::optional<mqttsn::topic_id> parse_topic_id(std::string_view text);
// A whole decimal number in [min, max].
std::optional<long> parse_number(std::string_view text, long min, long max);
// Seconds, possibly fractional ("0.5"), in (0, max_s].
std::optional<milliseconds> parse_seconds(std::string_view text, double max_s);

// getopt_long values of the long-only options, shared so both tools agree.
enum long_only : int {
  opt_help = 1000,
  opt_version,
  opt_will_topic,
  opt_will_payload,
  opt_will_qos,
  opt_will_retain,
  opt_retry_interval,
  opt_retry_count,
  opt_predefined,
};

// The flags both tools take: where the gateway is, who we are, the will, retries, debug output.
struct connection_flags {
  std::string host = "127.0.0.1";
  std::uint16_t port = 1884;
  std::string client_id;  // empty: the tool's default
  std::uint16_t keep_alive = 10;
  bool debug = false;
  milliseconds retry_interval{2'000};
  unsigned retry_count = 2;
  std::string will_topic;
  bytes will_payload;
  mqttsn::qos will_qos = mqttsn::qos::at_most_once;
  bool will_retain = false;
  std::map<mqttsn::topic_id, std::string> predefined;  // --predefined ID=TOPIC

  // Takes -h -p -i -k -d and the long-only connection options; false for any other `opt`.
  // Throws usage_error for a bad value.
  bool take(int opt, const char* arg);
  // Throws usage_error when will options are given without --will-topic.
  void check() const;
  // Client options; -d makes the debug hook print "<program>: send CONNECT: ..." to stderr.
  client_options options(const std::string& program) const;
  std::optional<will> will_message() const;
};

// How getopt_long's error cases name the option: "-x" for a short one, else the argument as given.
std::string option_name(char** argv, int next_index, int bad_option);

// getopt_long entries for connection_flags (no terminating entry), and their --help lines.
std::vector<::option> connection_long_options();
const char* connection_usage();

}  // namespace cli

class client {
 public:
  // Resolves host (a name, an IPv4 address, an IPv6 address with or without brackets) and opens
  // the socket; throws client_error when either fails. Sends nothing.
  client(std::string host, std::uint16_t port, client_options options = {});
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  // CONNECT (with the will handshake when `w` is given); the CONNACK return code. Throws
  // client_error when the gateway does not answer within the retry budget.
  mqttsn::return_code connect(bool clean_session = true,
                              const std::optional<will>& w = std::nullopt);

  // REGISTER a topic name; the gateway's id (also cached for publish()). Throws client_error when
  // the gateway refuses it or does not answer.
  mqttsn::topic_id register_topic(const std::string& name);

  // PUBLISH at QoS -1, 0, 1 or 2 and run its handshake (retransmitting with DUP); the return code
  // (PUBACK's for QoS 1, or a REGISTER or PUBACK rejection; accepted for QoS -1/0 and a finished
  // QoS 2). A topic_name is REGISTERed first, once. QoS -1 needs no connection and takes a
  // predefined id or a short name only. A PUBACK "invalid topic id" for a cached name makes it
  // REGISTER again and publish once more.
  mqttsn::return_code publish(const topic& t, std::span<const std::uint8_t> payload, mqttsn::qos q,
                              bool retain = false);
  mqttsn::return_code publish(const topic& t, std::string_view payload, mqttsn::qos q,
                              bool retain = false);

  // SUBSCRIBE to a filter (topic_name), a predefined id or a short name at QoS 0..2.
  subscribe_result subscribe(const topic& t, mqttsn::qos q);
  void unsubscribe(const topic& t);

  // The next message from the gateway, or nullopt after `timeout` (or sooner when a signal
  // interrupts the wait). While waiting it answers the gateway: REGACK to REGISTER, PUBACK to
  // QoS 1, PUBREC / PUBCOMP for QoS 2 (each QoS 2 message is returned once), PINGRESP to PINGREQ,
  // and it sends PINGREQ when the keep-alive period passes without anything sent. Throws
  // gateway_disconnected on a DISCONNECT from the gateway, client_error when PINGREQs go
  // unanswered.
  std::optional<received_message> receive(milliseconds timeout);

  // Names for predefined ids in received messages (the gateway's --predefined table).
  void set_predefined(mqttsn::topic_id id, std::string name);

  // PINGREQ, wait for PINGRESP.
  void ping();
  // DISCONNECT with a sleep duration (seconds, > 0); waits for the gateway's DISCONNECT.
  void sleep(std::uint16_t duration_s);
  // PINGREQ with the client id: everything the gateway buffered, collected until its PINGRESP.
  // Throws client_error when no PINGRESP comes within `timeout` (what arrived stays for receive()).
  std::vector<received_message> wake(milliseconds timeout);
  // DISCONNECT, wait for the gateway's DISCONNECT.
  void disconnect();

  // SEARCHGW to the configured address; the GwId of the first GWINFO within `timeout` (from any
  // sender, so the address may be a multicast group).
  std::optional<std::uint8_t> searchgw(std::uint8_t radius, milliseconds timeout);

  // Exact frames, for tests: nothing is encoded, decoded or answered.
  void send_raw(std::span<const std::uint8_t> frame);
  std::optional<bytes> receive_raw(milliseconds timeout);

  client_state state() const noexcept { return state_; }
  const std::string& client_id() const noexcept { return options_.client_id; }
  // "127.0.0.1:1884", "[::1]:1884"
  const std::string& peer() const noexcept { return peer_; }

 private:
  using clock = std::chrono::steady_clock;
  using accept_fn = std::function<bool(const mqttsn::message&)>;
  enum class read_status : std::uint8_t { frame, timeout, interrupted };

  void send(const mqttsn::message& m);
  void send_bytes(std::span<const std::uint8_t> frame, const char* name);
  // One datagram from the gateway, waiting until `deadline`. With `from_peer` set, datagrams from
  // any sender are taken and *from_peer tells whether it came from the gateway's address.
  read_status read_frame(clock::time_point deadline, bytes& out, bool* from_peer = nullptr);
  std::optional<mqttsn::message> decode_logged(const bytes& frame);
  // Waits for a message `accept` takes; everything else goes to dispatch(). nullopt at deadline.
  std::optional<mqttsn::message> wait_for(const accept_fn& accept, clock::time_point deadline);
  // Sends `request` and waits for `accept`, retransmitting (with DUP where the message has it).
  mqttsn::message transact(mqttsn::message request, const accept_fn& accept, const char* reply_name,
                           const char* hint = "");
  // Unsolicited traffic: REGISTER, PUBLISH, PUBREL, PINGREQ, PINGRESP, DISCONNECT.
  void dispatch(const mqttsn::message& m);
  void on_publish(const mqttsn::publish& p);
  // Keep-alive while receive() waits: the time of the next keep-alive event, sending or throwing.
  clock::time_point keep_alive_step(clock::time_point now);
  [[noreturn]] void fail_no_answer(const char* reply_name, const char* hint) const;

  mqttsn::regack register_request(const std::string& name);
  mqttsn::msg_id next_mid() noexcept;
  void deliver(received_message&& m);
  void remember_topic(mqttsn::topic_id id, const std::string& name);
  mqttsn::return_code publish_once(const topic& t, std::span<const std::uint8_t> payload,
                                   mqttsn::qos q, bool retain, bool& stale_id);
  std::string seconds_text(milliseconds d) const;

  client_options options_;
  std::string peer_;
  int fd_ = -1;
  sockaddr_storage addr_{};
  socklen_t addr_len_ = 0;

  client_state state_ = client_state::disconnected;
  mqttsn::msg_id last_mid_ = 0;
  std::map<mqttsn::topic_id, std::string> topic_names_;  // normal ids from REGACK, SUBACK, REGISTER
  std::map<std::string, mqttsn::topic_id, std::less<>> topic_ids_;
  std::map<mqttsn::topic_id, std::string> predefined_;
  std::set<mqttsn::msg_id> qos2_pending_rel_;  // QoS 2 messages delivered, PUBREL not yet seen
  std::deque<mqttsn::msg_id> qos2_order_;      // the same ids, oldest first, to bound the set
  std::deque<received_message> inbox_;         // messages that arrived while waiting for a reply

  clock::time_point last_sent_{};
  std::optional<clock::time_point> ping_sent_at_;  // keep-alive PINGREQ awaiting PINGRESP
  unsigned ping_retries_ = 0;
};

}  // namespace tools
