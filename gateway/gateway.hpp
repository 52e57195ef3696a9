// The daemon's heart: owns the session table, feeds it frames from the transports and events from
// the upstream, executes the actions it returns, and runs the timers (session deadlines, stats,
// ADVERTISE). Decides nothing about MQTT-SN itself. Runs on one io_context thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "gateway/config.hpp"
#include "gateway/session_store.hpp"
#include "gateway/upstream.hpp"
#include "mqttsn/counters.hpp"
#include "mqttsn/session_table.hpp"
#include "mqttsn/topics.hpp"
#include "transports/transport.hpp"

namespace gateway {

class gateway {
 public:
  gateway(boost::asio::io_context& io, const config& cfg, upstream& up,
          std::vector<std::unique_ptr<transports::transport>> transports);
  gateway(const gateway&) = delete;
  gateway& operator=(const gateway&) = delete;

  void start();
  void stop();
  // SIGHUP: the predefined topics from now on (every session sees the new table at once; an id
  // that disappears is answered as unknown from then on). Sessions are kept.
  void reload_predefined(const std::vector<std::pair<mqttsn::topic_id, std::string>>& topics);
  // Keep sessions in `store` (nullptr: none): start() restores what it holds, then the sessions
  // that changed are written every persistence-flush-interval and at stop(). Must outlive the
  // gateway.
  void set_store(session_store* store) noexcept {
    store_ = store;
    table_.track_changes(store != nullptr);
  }
  // Writes the sessions changed since the last flush (one transaction); false if the store failed.
  bool flush();

  // Admit clients by the clients file (nullptr: everyone); `rules` must outlive the gateway.
  void set_admission(const mqttsn::admission* rules) noexcept { table_.set_admission(rules); }

  // One log line with every counter (also on SIGUSR1).
  void log_stats() const;
  std::string stats_line() const;
  const mqttsn::counters& stats() const noexcept { return stats_; }
  const mqttsn::session_table& sessions() const noexcept { return table_; }

 private:
  void on_frame(const std::string& from, std::span<const std::uint8_t> frame);
  void on_upstream(const std::string& client_id, mqttsn::upstream_event event);
  void execute();
  void send(const std::string& to, std::span<const std::uint8_t> frame);
  void broadcast(std::span<const std::uint8_t> frame);
  void arm_session_timer();
  void arm_stats_timer();
  void arm_advertise_timer();
  transports::transport* transport_for(const std::string& endpoint) const;
  void restore_sessions();
  void arm_flush_timer();
  void note_emptied();

  const config& cfg_;
  upstream& up_;
  std::vector<std::unique_ptr<transports::transport>> transports_;
  mqttsn::predefined_topics predefined_;
  mqttsn::counters stats_;
  mqttsn::session_table table_;
  std::vector<mqttsn::routed_action> out_;

  boost::asio::steady_timer session_timer_;
  std::optional<mqttsn::time_point> armed_for_;
  boost::asio::steady_timer stats_timer_;
  boost::asio::steady_timer advertise_timer_;
  boost::asio::steady_timer flush_timer_;
  // The last session gone: once its broker connection is closed too, freed memory goes back to the
  // system (malloc_trim), so a gateway the sensors left returns to its idle RSS.
  boost::asio::steady_timer trim_timer_;
  bool had_sessions_ = false;
  session_store* store_ = nullptr;
  std::uint64_t flushes_ = 0;
  std::uint64_t flush_failures_ = 0;
  bool broker_up_ = false;  // the gateway-level connection
  std::uint64_t encapsulated_in_ = 0;
  bool stopped_ = false;
  bool restoring_ = false;  // executing the restored sessions' actions (their log lines at debug)
};

// Forwarder encapsulation (spec §5.5) at the edge: a client behind a forwarder is addressed as
// "<forwarder endpoint>/fwd/<node id in hex>"; replies to it are wrapped again.
std::string forwarded_endpoint(const std::string& forwarder, std::span<const std::uint8_t> node_id);
// Splits a forwarded endpoint into (forwarder endpoint, node id); nullopt for a plain endpoint.
std::optional<std::pair<std::string, mqttsn::bytes>> split_forwarded(const std::string& endpoint);

}  // namespace gateway
