// The gateway's counters in one struct: the core increments them, the daemon logs them and tests
// assert them. Plain integers: one thread owns a gateway (ARCHITECTURE.md).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "mqttsn/codec.hpp"

namespace mqttsn {

struct counters {
  // frames
  std::uint64_t frames_in = 0;
  std::uint64_t frames_out = 0;
  std::array<std::uint64_t, decode_error_count> decode_errors{};  // indexed by decode_error
  std::uint64_t unexpected_messages = 0;   // well-formed but not valid here (e.g. CONNACK sent to us)
  std::uint64_t unknown_sender = 0;        // message from an address with no session: DISCONNECT sent
  std::uint64_t frames_too_large = 0;      // a frame for a client exceeded max_frame_size: not sent

  // sessions
  std::uint64_t connects = 0;              // CONNACK accepted
  std::uint64_t connects_rejected = 0;     // CONNACK congestion / not supported
  std::uint64_t disconnects = 0;           // clean DISCONNECT
  std::uint64_t sleeps = 0;                // DISCONNECT with duration
  std::uint64_t wakeups = 0;               // PINGREQ(client id) with buffered messages
  std::uint64_t lost_keep_alive = 0;
  std::uint64_t lost_sleep_expired = 0;
  std::uint64_t lost_retries = 0;
  std::uint64_t wills_published = 0;
  std::uint64_t takeovers = 0;             // a client id moved to a new address
  std::uint64_t sessions_expired = 0;      // kept sessions discarded after session_expiry offline
  std::uint64_t admission_refused = 0;     // clients file: unknown client id or address (CONNACK
                                           // not supported, or a PINGREQ dropped)
  std::uint64_t qos_m1_refused = 0;        // clients file: QoS -1 from an address it does not list
  std::uint64_t publishes_denied = 0;      // clients file: topic not in the client's publish list
  std::uint64_t subscribes_denied = 0;     // clients file: filter not in its subscribe list

  // client -> broker
  std::uint64_t publishes_from_clients = 0;
  std::uint64_t qos_m1_published = 0;
  std::uint64_t qos_m1_dropped = 0;        // unknown predefined id, unsupported topic type
  std::uint64_t qos0_dropped_broker_down = 0;
  std::uint64_t invalid_topic_id = 0;      // PUBACK 0x02 sent
  std::uint64_t duplicate_publishes = 0;   // retransmitted PUBLISH not forwarded again
  std::uint64_t unknown_pubrel = 0;        // PUBREL for a msg id not awaiting release

  // broker -> client
  std::uint64_t publishes_to_clients = 0;
  std::uint64_t registers_sent = 0;
  std::uint64_t registrations_refused = 0; // client REGACK with an error
  std::uint64_t retransmissions = 0;
  std::uint64_t buffered = 0;              // messages queued for a client that could not take them now
  std::uint64_t dropped_qos0 = 0;          // queue bound hit, or client offline
  std::uint64_t dropped_qos12 = 0;         // last resort: queue bound hit with no QoS 0 to drop
  std::uint64_t dropped_undeliverable = 0; // refused topic, no id left, rejected by the client

  // bounds hit (congestion return code sent)
  std::uint64_t congestion = 0;
};

}  // namespace mqttsn
