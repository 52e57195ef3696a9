#include "gateway/session_store.hpp"

#include <map>
#include <stdexcept>

#include <sqlite3.h>

#include "mqttsn/topics.hpp"

namespace gateway {

namespace {

// 2: queue.mid (the msg id a message was last sent with, so a resend keeps it).
// 3: sessions.offline (a kept session with no connection: 1 disconnected, 2 lost; 0 connected).
constexpr int schema_version = 3;

// sessions.offline values.
constexpr std::int64_t online = 0, offline_disconnected = 1, offline_lost = 2;

// Every table is keyed by the client id; a session's rows are replaced as a whole.
constexpr const char* schema = R"(
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
  client_id TEXT PRIMARY KEY, endpoint TEXT NOT NULL, asleep INTEGER NOT NULL,
  clean_session INTEGER NOT NULL, keep_alive INTEGER NOT NULL, sleep_duration INTEGER NOT NULL,
  will_topic TEXT, will_payload BLOB, will_qos INTEGER, will_retain INTEGER,
  next_topic_id INTEGER NOT NULL, releasing INTEGER, last_mid INTEGER NOT NULL,
  offline INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS topics (
  client_id TEXT NOT NULL, id INTEGER NOT NULL, name TEXT NOT NULL, knows INTEGER NOT NULL,
  PRIMARY KEY (client_id, id));
CREATE TABLE IF NOT EXISTS subscriptions (
  client_id TEXT NOT NULL, seq INTEGER NOT NULL, filter TEXT NOT NULL, qos INTEGER NOT NULL,
  type INTEGER NOT NULL, id INTEGER NOT NULL, PRIMARY KEY (client_id, seq));
CREATE TABLE IF NOT EXISTS queue (
  client_id TEXT NOT NULL, seq INTEGER NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL,
  qos INTEGER NOT NULL, retain INTEGER NOT NULL, mid INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (client_id, seq));
CREATE TABLE IF NOT EXISTS qos2_received (
  client_id TEXT NOT NULL, mid INTEGER NOT NULL, PRIMARY KEY (client_id, mid));
)";

// A prepared statement, finalized on scope exit.
class statement {
 public:
  statement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) {
      throw std::runtime_error(std::string("SQL error: ") + sqlite3_errmsg(db));
    }
  }
  ~statement() { sqlite3_finalize(stmt_); }
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;

  statement& bind(int i, std::int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  statement& bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  statement& bind(int i, const mqttsn::bytes& v) {
    sqlite3_bind_blob(stmt_, i, v.empty() ? "" : static_cast<const void*>(v.data()), static_cast<int>(v.size()),
                      SQLITE_TRANSIENT);
    return *this;
  }
  statement& bind_null(int i) {
    sqlite3_bind_null(stmt_, i);
    return *this;
  }
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw std::runtime_error(std::string("SQL error: ") + sqlite3_errmsg(db_));
  }
  void run() {
    step();
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  mqttsn::bytes blob(int col) const {
    const auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt_, col));
    return p ? mqttsn::bytes(p, p + sqlite3_column_bytes(stmt_, col)) : mqttsn::bytes();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

std::optional<mqttsn::qos> to_qos(std::int64_t v, bool allow_minus_one = false) {
  if (v >= 0 && v <= 2) return static_cast<mqttsn::qos>(v);
  if (allow_minus_one && v == -1) return mqttsn::qos::minus_one;
  return std::nullopt;
}

bool in_u16(std::int64_t v) { return v >= 0 && v <= 0xFFFF; }

class sqlite_session_store final : public session_store {
 public:
  explicit sqlite_session_store(const std::string& path);
  ~sqlite_session_store() override;
  sqlite_session_store(const sqlite_session_store&) = delete;
  sqlite_session_store& operator=(const sqlite_session_store&) = delete;

  loaded load() override;
  void write(const std::vector<change>& changes) override;
  const std::string& path() const noexcept override { return path_; }

 private:
  void exec(const char* sql);
  std::string path_;
  sqlite3* db_ = nullptr;
};

}  // namespace

std::unique_ptr<session_store> open_sqlite_session_store(const std::string& path) {
  return std::make_unique<sqlite_session_store>(path);
}

sqlite_session_store::sqlite_session_store(const std::string& path) : path_(path) {
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    const std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw std::runtime_error(path + ": cannot open (" + why + ")");
  }
  try {
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=NORMAL");
    exec(schema);
    statement get(db_, "SELECT value FROM meta WHERE key = 'schema_version'");
    if (get.step()) {
      auto found = get.integer(0);
      if (found == 1) {
        // Version 1 had no queue.mid: its messages count as never sent (as version 1 resent them).
        exec("BEGIN; ALTER TABLE queue ADD COLUMN mid INTEGER NOT NULL DEFAULT 0; "
             "UPDATE meta SET value = 2 WHERE key = 'schema_version'; COMMIT");
        found = 2;
      }
      if (found == 2) {
        // Version 2 stored connected sessions only: every one of its rows is online.
        exec("BEGIN; ALTER TABLE sessions ADD COLUMN offline INTEGER NOT NULL DEFAULT 0; "
             "UPDATE meta SET value = 3 WHERE key = 'schema_version'; COMMIT");
        found = 3;
      }
      if (found != schema_version) {
        throw std::runtime_error("schema version " + std::to_string(found) + ", this gateway reads " +
                                 std::to_string(schema_version));
      }
    } else {
      statement put(db_, "INSERT INTO meta (key, value) VALUES ('schema_version', ?)");
      put.bind(1, schema_version).run();
    }
  } catch (const std::exception& e) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw std::runtime_error(path + ": " + e.what());
  }
}

sqlite_session_store::~sqlite_session_store() { sqlite3_close(db_); }

void sqlite_session_store::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string why = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw std::runtime_error(why);
  }
}

session_store::loaded sqlite_session_store::load() {
  loaded out;
  std::map<std::string, stored> by_id;
  std::map<std::string, std::string> bad;  // client id -> why
  {
    statement q(db_,
                "SELECT client_id, endpoint, asleep, clean_session, keep_alive, sleep_duration, will_topic, "
                "will_payload, will_qos, will_retain, next_topic_id, releasing, last_mid, offline FROM sessions");
    while (q.step()) {
      stored st;
      auto& s = st.snapshot;
      s.client_id = q.text(0);
      st.endpoint = q.text(1);
      s.asleep = q.integer(2) != 0;
      switch (q.integer(13)) {
        case online: break;
        case offline_disconnected: s.offline = mqttsn::session_state::disconnected; break;
        case offline_lost: s.offline = mqttsn::session_state::lost; break;
        default: bad[s.client_id] = "an invalid offline state"; continue;
      }
      s.clean_session = q.integer(3) != 0;
      const auto keep_alive = q.integer(4);
      const auto sleep_duration = q.integer(5);
      const auto next_id = q.integer(10);
      const auto last_mid = q.integer(12);
      if (!in_u16(keep_alive) || !in_u16(sleep_duration) || !in_u16(next_id) || !in_u16(last_mid)) {
        bad[s.client_id] = "a number out of range";
        continue;
      }
      s.keep_alive = static_cast<std::uint16_t>(keep_alive);
      s.sleep_duration = static_cast<std::uint16_t>(sleep_duration);
      s.next_topic_id = static_cast<mqttsn::topic_id>(next_id);
      s.last_mid = static_cast<mqttsn::msg_id>(last_mid);
      if (!q.is_null(6)) {
        const auto wq = to_qos(q.integer(8));
        if (!wq || !mqttsn::is_valid_topic_name(q.text(6))) {
          bad[s.client_id] = "an invalid will";
          continue;
        }
        s.will = mqttsn::will_message{q.text(6), q.blob(7), *wq, q.integer(9) != 0};
      }
      if (!q.is_null(11)) {
        if (!in_u16(q.integer(11))) {
          bad[s.client_id] = "an invalid in-flight id";
          continue;
        }
        s.releasing = static_cast<mqttsn::msg_id>(q.integer(11));
      }
      by_id.emplace(s.client_id, std::move(st));
    }
  }
  {
    statement q(db_, "SELECT client_id, id, name, knows FROM topics ORDER BY client_id, id");
    while (q.step()) {
      auto it = by_id.find(q.text(0));
      if (it == by_id.end()) continue;
      const auto id = q.integer(1);
      const auto knows = q.integer(3);
      if (!in_u16(id) || knows < 0 || knows > 2) {
        bad[it->first] = "an invalid topic registration";
        continue;
      }
      it->second.snapshot.topics.push_back(
          {static_cast<mqttsn::topic_id>(id), q.text(2), static_cast<mqttsn::topic_table::client_knows>(knows)});
    }
  }
  {
    statement q(db_, "SELECT client_id, filter, qos, type, id FROM subscriptions ORDER BY client_id, seq");
    while (q.step()) {
      auto it = by_id.find(q.text(0));
      if (it == by_id.end()) continue;
      const auto qos = to_qos(q.integer(2));
      const auto type = q.integer(3);
      if (!qos || type < 0 || type > 2 || !in_u16(q.integer(4)) || !mqttsn::is_valid_topic_filter(q.text(1))) {
        bad[it->first] = "an invalid subscription";
        continue;
      }
      it->second.snapshot.subscriptions.push_back({q.text(1), *qos, static_cast<mqttsn::topic_id_type>(type),
                                                   static_cast<mqttsn::topic_id>(q.integer(4))});
    }
  }
  {
    statement q(db_, "SELECT client_id, topic, payload, qos, retain, mid FROM queue ORDER BY client_id, seq");
    while (q.step()) {
      auto it = by_id.find(q.text(0));
      if (it == by_id.end()) continue;
      const auto qos = to_qos(q.integer(3));
      if (!qos || !mqttsn::is_valid_topic_name(q.text(1)) || !in_u16(q.integer(5))) {
        bad[it->first] = "an invalid buffered message";
        continue;
      }
      it->second.snapshot.queue.push_back(
          {q.text(1), q.blob(2), *qos, q.integer(4) != 0, static_cast<mqttsn::msg_id>(q.integer(5))});
    }
  }
  {
    statement q(db_, "SELECT client_id, mid FROM qos2_received ORDER BY client_id, mid");
    while (q.step()) {
      auto it = by_id.find(q.text(0));
      if (it == by_id.end()) continue;
      if (!in_u16(q.integer(1))) {
        bad[it->first] = "an invalid QoS 2 id";
        continue;
      }
      it->second.snapshot.qos2_received.push_back(static_cast<mqttsn::msg_id>(q.integer(1)));
    }
  }
  for (auto& [id, st] : by_id) {
    if (auto b = bad.find(id); b != bad.end()) continue;
    out.sessions.push_back(std::move(st));
  }
  for (const auto& [id, why] : bad) {
    out.problems.push_back("client '" + id + "': " + why + " in the store");
    out.damaged.push_back(id);
  }
  return out;
}

void sqlite_session_store::write(const std::vector<change>& changes) {
  if (changes.empty()) return;
  exec("BEGIN");
  try {
    statement del_s(db_, "DELETE FROM sessions WHERE client_id = ?");
    statement del_t(db_, "DELETE FROM topics WHERE client_id = ?");
    statement del_sub(db_, "DELETE FROM subscriptions WHERE client_id = ?");
    statement del_q(db_, "DELETE FROM queue WHERE client_id = ?");
    statement del_2(db_, "DELETE FROM qos2_received WHERE client_id = ?");
    statement ins_s(db_,
                    "INSERT INTO sessions (client_id, endpoint, asleep, clean_session, keep_alive, sleep_duration, "
                    "will_topic, will_payload, will_qos, will_retain, next_topic_id, releasing, last_mid, offline) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    statement ins_t(db_, "INSERT INTO topics (client_id, id, name, knows) VALUES (?, ?, ?, ?)");
    statement ins_sub(db_, "INSERT INTO subscriptions (client_id, seq, filter, qos, type, id) VALUES (?, ?, ?, ?, ?, ?)");
    statement ins_q(db_,
                    "INSERT INTO queue (client_id, seq, topic, payload, qos, retain, mid) VALUES (?, ?, ?, ?, ?, ?, ?)");
    statement ins_2(db_, "INSERT INTO qos2_received (client_id, mid) VALUES (?, ?)");
    for (const auto& [id, st] : changes) {
      for (auto* d : {&del_s, &del_t, &del_sub, &del_q, &del_2}) d->bind(1, id).run();
      if (!st) continue;
      const auto& s = st->snapshot;
      ins_s.bind(1, id).bind(2, st->endpoint).bind(3, s.asleep ? 1 : 0).bind(4, s.clean_session ? 1 : 0);
      ins_s.bind(5, s.keep_alive).bind(6, s.sleep_duration);
      if (s.will) {
        ins_s.bind(7, s.will->topic).bind(8, s.will->payload).bind(9, static_cast<int>(s.will->q));
        ins_s.bind(10, s.will->retain ? 1 : 0);
      } else {
        ins_s.bind_null(7).bind_null(8).bind_null(9).bind_null(10);
      }
      ins_s.bind(11, s.next_topic_id);
      if (s.releasing) {
        ins_s.bind(12, *s.releasing);
      } else {
        ins_s.bind_null(12);
      }
      ins_s.bind(13, s.last_mid);
      ins_s.bind(14, !s.offline                                       ? online
                     : *s.offline == mqttsn::session_state::lost ? offline_lost
                                                                  : offline_disconnected);
      ins_s.run();
      for (const auto& t : s.topics) {
        ins_t.bind(1, id).bind(2, t.id).bind(3, t.name).bind(4, static_cast<int>(t.knows)).run();
      }
      std::int64_t seq = 0;
      for (const auto& sub : s.subscriptions) {
        ins_sub.bind(1, id).bind(2, seq++).bind(3, sub.filter).bind(4, static_cast<int>(sub.q));
        ins_sub.bind(5, static_cast<int>(sub.type)).bind(6, sub.id).run();
      }
      seq = 0;
      for (const auto& m : s.queue) {
        ins_q.bind(1, id).bind(2, seq++).bind(3, m.topic).bind(4, m.payload).bind(5, static_cast<int>(m.q));
        ins_q.bind(6, m.retain ? 1 : 0).bind(7, m.mid).run();
      }
      for (auto mid : s.qos2_received) ins_2.bind(1, id).bind(2, mid).run();
    }
    exec("COMMIT");
  } catch (...) {
    char* err = nullptr;
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, &err);
    sqlite3_free(err);
    throw;
  }
}

}  // namespace gateway
