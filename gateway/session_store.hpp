// The persistent store of sessions (--persistence FILE): one SQLite database holding, per client,
// what mqttsn::session_snapshot carries (topic registrations, subscriptions, will, the messages
// waiting for it and the msg id of the one sent, in-flight QoS 2 ids) and its transport address.
// Writes come in batches: the gateway collects the sessions that changed and writes them in one
// transaction every --persistence-flush-interval (and at shutdown), never one fsync per message.
// A database of schema version 1 is upgraded in place when opened. WAL journal with
// synchronous=NORMAL: a killed process loses nothing written; a power cut may lose the last
// batches. Runs on the gateway's thread; owns the database handle only.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mqttsn/session.hpp"

namespace gateway {

// The store the gateway writes to. The SQLite one is in the extension module (SQLite is mapped
// only with --persistence): open it with gateway::open_session_store (gateway/extension.hpp).
class session_store {
 public:
  virtual ~session_store() = default;

  struct stored {
    mqttsn::session_snapshot snapshot;
    std::string endpoint;
  };
  struct loaded {
    std::vector<stored> sessions;
    std::vector<std::string> problems;  // sessions not restorable, with why (never invented)
    std::vector<std::string> damaged;   // their client ids: write() them as deletions once reported
  };
  virtual loaded load() = 0;

  // One transaction: each change is a snapshot to write, or nullopt to delete that client.
  using change = std::pair<std::string, std::optional<stored>>;
  virtual void write(const std::vector<change>& changes) = 0;

  virtual const std::string& path() const noexcept = 0;
};

// Opens (creating if needed) the SQLite database and its schema. Throws std::runtime_error naming
// the file on any failure (not a database, another schema version, unwritable).
std::unique_ptr<session_store> open_sqlite_session_store(const std::string& path);

}  // namespace gateway
