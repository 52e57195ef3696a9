// libFuzzer target for the session table and the sessions behind it: the input is a script of
// operations on one session_table with small bounds (4 clients, 4 queued messages, 2 retries,
// 8 topic ids), so every bound is reached quickly. Aborts when an invariant breaks.
//
// Script: a sequence of operations, each starting with one opcode byte (taken modulo 4):
//   0  raw frame    endpoint(1) length(1) bytes(length)        any bytes from endpoint k of 4
//   1  built frame  endpoint(1) kind(1) fields...              a well-formed client message
//   2  broker event client(1) kind(1) fields...                for client id k of 5
//   3  time         scale(1) amount(2)                          advance the clock, then tick
// Missing bytes read as zero, so every input is a valid script. Seed corpus:
// tests/fuzz/corpus/session. To see what an input does: MQTTSN_FUZZ_TRACE=1 bin/fuzz_session FILE
// (prints every action). MQTTSN_FUZZ_LIVENESS=1 adds the liveness checks that currently fail (awake
// without a timer).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "mqttsn/codec.hpp"
#include "mqttsn/counters.hpp"
#include "mqttsn/session.hpp"
#include "mqttsn/session_table.hpp"
#include "mqttsn/topics.hpp"

namespace {

using namespace mqttsn;
using namespace std::chrono_literals;

constexpr std::size_t max_clients = 4;
constexpr std::size_t max_operations = 512;
const char* const endpoints[] = {"udp:0", "udp:1", "udp:2", "udp:3"};
const char* const client_ids[] = {"c0", "c1", "c2", "c3", "c4"};  // one more than fits
// Names, filters, short names, predefined names, and invalid ones.
const char* const topics[] = {"a/b",
                              "a/#",
                              "a/+",
                              "ab",
                              "sensors/temp",
                              "x",
                              "+/b",
                              "$SYS/x",
                              "a+",
                              "#",
                              "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/y/z"};

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_session invariant broken: %s\n", what);
  std::abort();
}

void require(bool condition, const char* what) {
  if (!condition) fail(what);
}

class script {
 public:
  explicit script(std::span<const std::uint8_t> input) : input_(input) {}
  bool done() const noexcept { return pos_ >= input_.size(); }
  std::uint8_t u8() noexcept { return pos_ < input_.size() ? input_[pos_++] : std::uint8_t{0}; }
  std::uint16_t u16() noexcept {
    const auto high = u8();
    return static_cast<std::uint16_t>((high << 8U) | u8());
  }
  bool bit() noexcept { return (u8() & 1U) != 0; }
  bytes take(std::size_t n) {
    const std::size_t k = std::min(n, input_.size() - std::min(pos_, input_.size()));
    bytes out(input_.begin() + static_cast<std::ptrdiff_t>(pos_),
              input_.begin() + static_cast<std::ptrdiff_t>(pos_ + k));
    pos_ += k;
    return out;
  }
  std::string topic() {
    const std::uint8_t pick = u8();
    if (pick < 0xF0) return topics[pick % std::size(topics)];
    const bytes raw = take(pick & 0x0FU);  // a few raw bytes: any string at all
    return {raw.begin(), raw.end()};
  }
  qos any_qos() noexcept {
    switch (u8() % 4) {
      case 0: return qos::at_most_once;
      case 1: return qos::at_least_once;
      case 2: return qos::exactly_once;
      default: return qos::minus_one;
    }
  }
  qos subscription_qos() noexcept { return static_cast<qos>(u8() % 3); }
  topic_id_type id_type() noexcept { return static_cast<topic_id_type>(u8() % 3); }
  // Small ids and msg ids, so they collide with the ones the gateway hands out.
  std::uint16_t small() noexcept { return static_cast<std::uint16_t>(u8() % 10); }
  topic_id any_id(topic_id_type t) {
    if (t != topic_id_type::short_name) return small();
    const auto name = topic();
    return name.size() == 2 ? short_topic_id(name[0], name[1]) : small();
  }
  const std::string& client() { return client_id_strings()[u8() % std::size(client_ids)]; }

 private:
  static const std::vector<std::string>& client_id_strings() {
    static const std::vector<std::string> ids(std::begin(client_ids), std::end(client_ids));
    return ids;
  }
  std::span<const std::uint8_t> input_;
  std::size_t pos_ = 0;
};

// A well-formed client message (the raw-frame operation covers everything else).
message build_message(script& s) {
  switch (s.u8() % 16) {
    case 0: {
      const bool will = s.bit();
      const bool clean = s.bit();
      return connect{will, clean, static_cast<std::uint16_t>(s.u8() % 8), s.client()};
    }
    case 1: {
      const qos q = s.subscription_qos();
      const bool retain = s.bit();
      return willtopic{q, retain, s.topic()};
    }
    case 2: return willmsg{s.take(s.u8() % 8)};
    case 3: {
      const msg_id mid = s.small();
      return register_{0, mid, s.topic()};
    }
    case 4: {
      const topic_id id = s.small();
      const msg_id mid = s.small();
      return regack{id, mid, static_cast<return_code>(s.u8() % 4)};
    }
    case 5: {
      publish p;
      p.dup = s.bit();
      p.q = s.any_qos();
      p.retain = s.bit();
      p.id_type = s.id_type();
      p.id = s.any_id(p.id_type);
      p.mid = s.small();
      p.data = s.take(s.u8() % 80);  // sometimes beyond max_frame_size on the way back
      return p;
    }
    case 6: {
      const topic_id id = s.small();
      const msg_id mid = s.small();
      return puback{id, mid, static_cast<return_code>(s.u8() % 4)};
    }
    case 7: return pubrec{s.small()};
    case 8: return pubrel{s.small()};
    case 9: return pubcomp{s.small()};
    case 10: {
      subscribe m;
      m.dup = s.bit();
      m.q = s.subscription_qos();
      m.id_type = s.id_type();
      m.mid = s.small();
      if (m.id_type == topic_id_type::normal) {
        m.topic_name = s.topic();
        if (m.topic_name.empty()) m.topic_name = "a/b";  // the codec cannot carry an empty name
      } else {
        m.id = s.any_id(m.id_type);
      }
      return m;
    }
    case 11: {
      unsubscribe m;
      m.id_type = s.id_type();
      m.mid = s.small();
      if (m.id_type == topic_id_type::normal) {
        m.topic_name = s.topic();
        if (m.topic_name.empty()) m.topic_name = "a/b";
      } else {
        m.id = s.any_id(m.id_type);
      }
      return m;
    }
    case 12: return s.bit() ? pingreq{s.client()} : pingreq{};
    case 13:
      switch (s.u8() % 3) {
        case 0: return disconnect{};
        case 1: return disconnect{std::uint16_t{0}};
        default: return disconnect{static_cast<std::uint16_t>(1 + s.u8() % 10)};
      }
    case 14:
      if (s.bit()) {
        const qos q = s.subscription_qos();
        const bool retain = s.bit();
        return willtopicupd{q, retain, s.topic()};
      }
      return willmsgupd{s.take(s.u8() % 8)};
    default: return s.bit() ? message{searchgw{s.u8()}} : message{pingresp{}};
  }
}

upstream_event build_event(script& s) {
  switch (s.u8() % 7) {
    case 0: return upstream_connected{s.bit()};
    case 1: return upstream_refused{"refused"};
    case 2: return upstream_lost{};
    case 3: return upstream_published{s.u8() % 12U};
    case 4: {
      const std::uint32_t ref = s.u8() % 12U;
      const std::uint8_t g = s.u8() % 4;
      return upstream_subscribed{ref,
                                 g == 3 ? std::nullopt : std::optional<qos>(static_cast<qos>(g))};
    }
    case 5: return upstream_unsubscribed{s.u8() % 12U};
    default: {
      upstream_message m;
      m.topic = s.topic();
      if (!is_valid_topic_name(m.topic)) m.topic = "a/b";  // a broker only delivers valid names
      m.q = s.subscription_qos();
      m.retain = s.bit();
      m.payload = s.take(s.u8() % 80);
      return m;
    }
  }
}

const bool tracing = std::getenv("MQTTSN_FUZZ_TRACE") != nullptr;
const bool liveness_checks = std::getenv("MQTTSN_FUZZ_LIVENESS") != nullptr;

void trace_frame(const char* label, const bytes& frame) {
  if (!tracing) return;
  std::fprintf(stderr, "%s", label);
  for (const auto b : frame) std::fprintf(stderr, " %02X", b);
  std::fprintf(stderr, "\n");
}

void trace_actions(const std::vector<routed_action>& out) {
  if (!tracing) return;
  for (const auto& r : out) {
    std::fprintf(stderr, "  -> [%s @ %s] ", r.client_id.c_str(), r.to.c_str());
    if (const auto* f = std::get_if<send_frame>(&r.act)) {
      trace_frame("send", f->frame);
    } else if (const auto* p = std::get_if<upstream_publish>(&r.act)) {
      std::fprintf(stderr, "publish ref=%u %s q=%d\n", p->ref, p->topic.c_str(),
                   static_cast<int>(p->q));
    } else if (const auto* sub = std::get_if<upstream_subscribe>(&r.act)) {
      std::fprintf(stderr, "subscribe ref=%u %s\n", sub->ref, sub->filter.c_str());
    } else if (const auto* rep = std::get_if<report>(&r.act)) {
      std::fprintf(stderr, "report %d %s\n", static_cast<int>(rep->what), rep->detail.c_str());
    } else {
      std::fprintf(stderr, "upstream action #%zu\n", r.act.index());
    }
  }
}

void check_actions(const std::vector<routed_action>& out) {
  for (const auto& r : out) {
    if (const auto* f = std::get_if<send_frame>(&r.act)) {
      require(!f->frame.empty(), "empty frame sent");
      require(std::holds_alternative<message>(decode(f->frame)), "sent frame does not decode");
    } else if (const auto* p = std::get_if<upstream_publish>(&r.act)) {
      require(is_valid_topic_name(p->topic), "upstream publish to an invalid topic name");
      require(p->q != qos::minus_one, "upstream publish with QoS -1");
      require(!r.client_id.empty() || p->ref == 0, "gateway-level publish expecting an ack");
    } else if (const auto* sub = std::get_if<upstream_subscribe>(&r.act)) {
      require(is_valid_topic_filter(sub->filter), "upstream subscribe to an invalid filter");
      require(sub->ref != 0, "upstream subscribe without a ref");
      require(!r.client_id.empty(), "upstream subscribe without a client");
    } else if (const auto* u = std::get_if<upstream_unsubscribe>(&r.act)) {
      require(u->ref != 0, "upstream unsubscribe without a ref");
      require(!r.client_id.empty(), "upstream unsubscribe without a client");
    } else if (std::holds_alternative<upstream_connect>(r.act) ||
               std::holds_alternative<upstream_disconnect>(r.act) ||
               std::holds_alternative<upstream_resume>(r.act)) {
      require(!r.client_id.empty(), "session action without a client id");
    }
  }
}

void check_table(const session_table& table, time_point now) {
  require(table.size() <= max_clients, "more sessions than max_clients");
  // The deadline index: every tick leaves nothing overdue, and nothing else moves time.
  if (const auto d = table.next_deadline()) require(*d > now, "next_deadline not in the future");

  for (const char* id : client_ids) {
    const session* s = table.find(id);
    if (!s) {
      require(table.endpoint_of(id) == nullptr, "endpoint for a forgotten client");
      continue;
    }
    require(s->client_id() == id, "session filed under another client id");
    const endpoint* ep = table.endpoint_of(id);
    require(ep != nullptr, "session without an endpoint record");
    if (!ep->empty()) require(table.find_by_endpoint(*ep) == s, "endpoint index out of step");
    if (const auto d = s->next_deadline()) {
      require(table.next_deadline() && *table.next_deadline() <= *d,
              "session deadline not indexed");
    }
    // Liveness: a client in these states is waiting for the gateway, which must have a timer.
    if (s->state() == session_state::connecting)
      require(s->next_deadline().has_value(), "connecting forever");
    // Known gap, off by default: an awake client whose wake-up delivery waits for a SUBSCRIBE the
    // broker has not answered has no timer at all (see the session_table helper's report).
    if (liveness_checks && s->state() == session_state::awake) {
      require(s->next_deadline().has_value(), "awake forever");
    }
    require(s->queued() <= 4, "queue beyond max_queued");
    require(s->topics().size() <= 8, "topic table beyond max_topics");
  }
  for (const char* ep : endpoints) {
    if (const session* s = table.find_by_endpoint(ep)) {
      const endpoint* back = table.endpoint_of(s->client_id());
      require(back && *back == ep, "endpoint index points at a session that moved");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  predefined_topics predefined;
  predefined.add(1, "sensors/temp");
  predefined.add(2, "a/b");
  session_config config;
  config.retry_interval = 1000ms;
  config.retry_count = 2;
  config.connect_timeout = 2000ms;
  config.max_topics = 8;
  config.max_subscriptions = 4;
  config.max_queued = 4;
  config.max_inflight_upstream = 4;
  config.max_frame_size = 64;
  config.session_expiry = 600s;  // kept sessions left offline expire within a few time steps
  counters stats;
  session_table table(table_config{max_clients, 1}, config, predefined, stats);

  script s(std::span<const std::uint8_t>(data, size));
  time_point now = time_point{} + 1h;
  std::vector<routed_action> out;
  for (std::size_t op = 0; op < max_operations && !s.done(); ++op) {
    out.clear();
    switch (s.u8() % 4) {
      case 0: {
        const endpoint from = endpoints[s.u8() % std::size(endpoints)];
        const bytes frame = s.take(s.u8());
        trace_frame(("raw frame from " + from + ":").c_str(), frame);
        table.handle_frame(from, frame, now, out);
        break;
      }
      case 1: {
        const endpoint from = endpoints[s.u8() % std::size(endpoints)];
        const bytes frame = encode(build_message(s));
        require(!frame.empty(), "harness built an unencodable message");
        trace_frame(("frame from " + from + ":").c_str(), frame);
        table.handle_frame(from, frame, now, out);
        break;
      }
      case 2: {
        const std::string client = s.client();
        if (tracing) std::fprintf(stderr, "broker event for %s\n", client.c_str());
        const upstream_event ev = build_event(s);
        // Flow control: a message the session refuses is held by the runtime (not delivered).
        const auto* m = std::get_if<upstream_message>(&ev);
        if (m != nullptr && !table.offer(client, m->q)) {
          require(m->q == qos::at_least_once || m->q == qos::exactly_once, "offer refused QoS 0");
          if (tracing) std::fprintf(stderr, "  offer refused: held\n");
          break;
        }
        table.handle_upstream(client, ev, now, out);
        break;
      }
      default: {
        const std::uint8_t scale = s.u8();
        const auto amount = std::chrono::milliseconds(s.u16());
        now += (scale & 1U) ? amount * 100 : amount;  // up to ~109 min per step
        if (tracing)
          std::fprintf(stderr, "tick at +%lld ms\n",
                       static_cast<long long>((now - time_point{} - 1h) / 1ms));
        table.tick(now, out);
        break;
      }
    }
    trace_actions(out);
    check_actions(out);
    check_table(table, now);
  }
  return 0;
}
