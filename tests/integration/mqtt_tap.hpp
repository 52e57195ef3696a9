// A TCP relay on loopback between MQTT clients (the gateway, test publishers) and a broker that
// reads the MQTT 3.1.1 packets passing through, so a test knows exactly what the broker
// acknowledged and what its clients acknowledged, even when the broker is killed a moment later.
// Owns its listening socket, one thread and the connection pairs; knows nothing about MQTT-SN.
//
// Every connection accepted is relayed to the broker's port; if the broker does not accept, the
// client's connection is closed (as a broker that is down would). Each relayed connection is
// tagged with the broker "instance" current when it was opened (set_instance(), called by the test
// after each broker start), so acknowledgements are attributed to the broker run that sent them.
// Payloads identify messages: a PUBLISH is remembered by (connection, direction, message id) until
// its PUBACK/PUBREC comes back the other way.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

namespace itest {

class mqtt_tap {
 public:
  explicit mqtt_tap(std::uint16_t broker_port);
  ~mqtt_tap();
  mqtt_tap(const mqtt_tap&) = delete;
  mqtt_tap& operator=(const mqtt_tap&) = delete;

  std::uint16_t port() const noexcept { return port_; }
  std::string uri() const;  // "tcp://127.0.0.1:PORT"

  // Connections opened from now on belong to broker run `n`.
  void set_instance(int n);

  // Payloads of client PUBLISHes (QoS 1/2) that broker run `instance` acknowledged (PUBACK, or
  // PUBREC for QoS 2); instance -1: any run.
  std::set<std::string> broker_acked(int instance = -1) const;
  // Payloads of broker PUBLISHes that a client acknowledged: PUBACK for QoS 1, PUBCOMP for QoS 2.
  // From then on the client owns them.
  std::set<std::string> client_acked() const;
  // PUBLISH packets carrying `payload` seen so far toward the broker (from clients) or toward the
  // clients (from the broker), retransmissions (DUP) included.
  int publishes_to_broker(const std::string& payload) const;
  int publishes_to_clients(const std::string& payload) const;
  // QoS 2 PUBLISHes the broker sent again (DUP) to a client after it had already sent the PUBREL
  // for that message id and that same message (on an earlier connection of the same client id):
  // MQTT 3.1.1 §4.3.3 forbids it, and a client cannot tell such a copy from a new message.
  // Mosquitto 2.0.11 does it after a restart for QoS 2 messages beyond its in-flight window, and
  // may do it again for the same message after the next restart. Payload -> how many such resends.
  std::map<std::string, int> broker_resent_after_release() const;
  // Connections relayed so far.
  std::size_t connections() const;

 private:
  struct pair;
  void run();

  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::uint16_t broker_port_ = 0;
  std::atomic<int> instance_{0};
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::map<std::string, std::set<int>> broker_acked_;  // payload -> instances that acked it
  std::set<std::string> client_acked_;
  std::map<std::string, int> publishes_[2];  // by direction (pair::dir), then payload
  // Per client id: message id -> payload of the QoS 2 PUBLISHes the client PUBRECed (pubreced_) and
  // of those the broker then PUBRELed (released_). Kept across connections: a broker restart does
  // not end them.
  std::map<std::string, std::map<std::uint16_t, std::string>> pubreced_;
  std::map<std::string, std::map<std::uint16_t, std::string>> released_;
  std::map<std::string, int> resent_after_release_;
  std::size_t connections_ = 0;
  std::thread thread_;  // last: starts once the rest exists
};

}  // namespace itest
