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

struct sqlite3;

namespace gateway {

class session_store {
 public:
  // Opens (creating if needed) the database and its schema. Throws std::runtime_error naming the
  // file on any failure (not a database, another schema version, unwritable).
  explicit session_store(const std::string& path);
  ~session_store();
  session_store(const session_store&) = delete;
  session_store& operator=(const session_store&) = delete;

  struct stored {
    mqttsn::session_snapshot snapshot;
    std::string endpoint;
  };
  struct loaded {
    std::vector<stored> sessions;
    std::vector<std::string> problems;  // sessions not restorable, with why (never invented)
    std::vector<std::string> damaged;   // their client ids: write() them as deletions once reported
  };
  loaded load();

  // One transaction: each change is a snapshot to write, or nullopt to delete that client.
  using change = std::pair<std::string, std::optional<stored>>;
  void write(const std::vector<change>& changes);

  const std::string& path() const noexcept { return path_; }

 private:
  void exec(const char* sql);
  std::string path_;
  sqlite3* db_ = nullptr;
};

}  // namespace gateway
