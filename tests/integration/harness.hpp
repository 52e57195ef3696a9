// Integration-test harness: a real Mosquitto on loopback (its own free port and temp directory per
// test), bounded polling waits, an io_context on a background thread, and a small MQTT client at
// the broker (Paho) that subscribes, collects and publishes. Everything binds to 127.0.0.1 only.
// Owns the processes and files it creates and cleans them up even when a test fails.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <netinet/in.h>
#include <sys/types.h>

namespace mqtt {
class async_client;
}

namespace itest {

using namespace std::chrono_literals;

// A port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close).
std::uint16_t free_port(bool udp);
// 127.0.0.1:port (0: any port) as a socket address.
sockaddr_in loopback(std::uint16_t port);
// Sends all of `data` on a blocking stream socket (EINTR retried); false when the peer is gone.
bool send_all(int fd, std::span<const std::uint8_t> data);

// Polls `pred` every ~5 ms until it holds or `timeout` passes; returns its last value.
template <class P>
bool wait_until(P pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(5ms);
  }
}

// Starts a program (argv[0]: its path) with stdin from /dev/null, stdout and stderr appended to
// `log`, none of the test process's descriptors (no stray copies of its sockets), and SIGKILL as
// soon as the test process dies (PR_SET_PDEATHSIG, armed from a harness thread that lives as long
// as the process, so the calling thread may end). Throws std::system_error if fork fails.
pid_t spawn_process(const std::vector<std::string>& argv, const std::filesystem::path& log);
// SIGTERM, up to `grace` for it to exit, then SIGKILL (at once if grace is 0); always reaps.
// Returns the status as waitpid() reports it (-1 for pid <= 0).
int stop_process(pid_t pid, std::chrono::milliseconds grace = 5s);

// The whole file as text; empty when it cannot be read.
std::string read_file(const std::filesystem::path& p);

// A directory under $TMPDIR (or /tmp), removed with everything in it by the destructor.
class temp_dir {
 public:
  explicit temp_dir(const std::string& prefix = "mqttsn-itest");
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

// Test certificates made with the `openssl` CLI in a temp dir (never committed keys): a CA, and
// certificates it signs. EC P-256 keys, valid for a day. Throws std::runtime_error with openssl's
// output on failure.
class test_pki {
 public:
  explicit test_pki(const std::string& ca_name = "mqttsn-test-ca");
  test_pki(const test_pki&) = delete;
  test_pki& operator=(const test_pki&) = delete;

  struct issued {
    std::filesystem::path cert;
    std::filesystem::path key;
  };
  // A certificate for `name` (also its file names) with these subjectAltName entries
  // ("DNS:localhost,IP:127.0.0.1"); empty: none.
  issued issue(const std::string& name, const std::string& subject_alt_names);

  const std::filesystem::path& ca_cert() const noexcept { return ca_.cert; }
  const std::filesystem::path& dir() const noexcept { return dir_.path(); }

 private:
  void openssl(const std::vector<std::string>& args);

  temp_dir dir_;
  issued ca_;
  int serial_ = 1;
};

// A TLS listener next to the plain one: the broker's certificate and key, the CA of client
// certificates, and whether the broker demands one.
struct tls_listener {
  std::filesystem::path ca_file;
  std::filesystem::path cert_file;
  std::filesystem::path key_file;
  bool require_certificate = false;
};

struct broker_options {
  std::uint16_t port = 0;  // 0: a free port
  std::vector<std::string>
      extra_config{};  // more mosquitto.conf lines (e.g. "allow_anonymous false")
  bool allow_anonymous = true;
  bool persistence = false;  // in the temp dir, saved on every change (survives stop() and kill())
  // user -> password; written with mosquitto_passwd into a password_file.
  std::vector<std::pair<std::string, std::string>> users{};
  std::optional<tls_listener> tls{};  // on tls_port(), with the same users and anonymity rule
  std::chrono::milliseconds start_timeout{10'000};
};

// /usr/sbin/mosquitto on 127.0.0.1 with a config of our own in a temp dir. The constructor starts
// it and waits (bounded) until it accepts TCP connections; throws std::runtime_error (with the
// broker's log) if it does not. The destructor always kills it, and it dies with the test process
// (spawn_process), so a crashed test leaves no stray broker. start() may run on any thread.
class mosquitto_broker {
 public:
  static constexpr const char* binary = "/usr/sbin/mosquitto";

  explicit mosquitto_broker(broker_options options = {});
  ~mosquitto_broker();
  mosquitto_broker(const mosquitto_broker&) = delete;
  mosquitto_broker& operator=(const mosquitto_broker&) = delete;

  // Starts it (again) on the same port; no-op while it runs.
  void start();
  // SIGTERM and wait (bounded; SIGKILL after 5 s). A persistent broker saves its database.
  void stop();
  // SIGKILL and wait: no will, no save beyond what autosave wrote.
  void kill();
  bool running() const noexcept { return pid_ > 0; }
  pid_t pid() const noexcept { return pid_; }

  std::uint16_t port() const noexcept { return port_; }
  std::string uri() const;  // "tcp://127.0.0.1:PORT"
  // The TLS listener (broker_options::tls): its port, and "ssl://HOST:PORT" (the host the
  // gateway names, which its certificate check compares with the broker's certificate).
  std::uint16_t tls_port() const noexcept { return tls_port_; }
  std::string tls_uri(const std::string& host = "127.0.0.1") const;
  std::string log() const;  // what the broker wrote so far (all its runs)
  const std::filesystem::path& dir() const noexcept { return dir_.path(); }

 private:
  void write_config() const;
  bool try_start();  // false if the process died before accepting connections

  broker_options options_;
  temp_dir dir_;
  std::uint16_t port_ = 0;
  std::uint16_t tls_port_ = 0;
  pid_t pid_ = -1;
};

// Runs an io_context on a background thread until stop() or destruction.
class io_thread {
 public:
  io_thread();
  ~io_thread();
  io_thread(const io_thread&) = delete;
  io_thread& operator=(const io_thread&) = delete;

  boost::asio::io_context& io() noexcept { return io_; }
  // Lets the thread finish: stops the io_context and joins. Idempotent.
  void stop();
  // Runs the io_context on a new thread again after stop() (handlers still queued run then).
  void restart();
  bool running() const noexcept { return thread_.joinable(); }

  // Runs `f` on the io thread and returns its result (waits at most `timeout`; throws
  // std::runtime_error on timeout). Use it for everything that must happen on that thread.
  template <class F>
  auto call(F f, std::chrono::milliseconds timeout = 10s) -> std::invoke_result_t<F&> {
    using R = std::invoke_result_t<F&>;
    auto task = std::make_shared<std::packaged_task<R()>>(std::move(f));
    auto result = task->get_future();
    boost::asio::post(io_, [task] { (*task)(); });
    if (result.wait_for(timeout) != std::future_status::ready) throw_timeout();
    return result.get();
  }

 private:
  [[noreturn]] static void throw_timeout();

  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread thread_;
};

// A message as a test sees it.
struct mqtt_message {
  std::string topic{};
  std::string payload{};
  int qos = 0;
  bool retained = false;
};

struct client_options {
  std::string client_id{};  // empty: a unique one ("itest-<pid>-<n>")
  bool clean_session = true;
  int keep_alive_s = 60;
  std::optional<mqtt_message> will{};
  std::string user_name{};
  std::string password{};
  bool connect = true;  // connect in the constructor (throws std::runtime_error on failure)
  std::chrono::milliseconds timeout{10'000};
};

// An MQTT 3.1.1 client at the broker, for checking what the code under test publishes and for
// feeding it messages. Every call blocks the test thread, bounded by the client's timeout;
// messages are collected on Paho's thread and read with the wait_* functions.
class mqtt_test_client {
 public:
  explicit mqtt_test_client(std::string uri, client_options options = {});
  explicit mqtt_test_client(const mosquitto_broker& broker, client_options options = {});
  ~mqtt_test_client();  // disconnects (bounded)
  mqtt_test_client(const mqtt_test_client&) = delete;
  mqtt_test_client& operator=(const mqtt_test_client&) = delete;

  bool connect();  // false on refusal, unreachable broker or timeout
  bool disconnect();
  bool connected() const;
  const std::string& client_id() const noexcept { return client_id_; }

  // The granted QoS, or nullopt (SUBACK 0x80, not connected, timeout).
  std::optional<int> subscribe(const std::string& filter, int qos = 1);
  bool unsubscribe(const std::string& filter);
  // Returns once the broker has it (QoS 0: once sent).
  bool publish(const std::string& topic, const std::string& payload, int qos = 0,
               bool retain = false);

  // The next message not yet taken that matches `filter` (MQTT wildcards, as
  // mqttsn::topic_matches); nullopt on timeout.
  std::optional<mqtt_message> wait_message(const std::string& filter = "#",
                                           std::chrono::milliseconds timeout = 10s);
  // Everything received so far (taken or not), oldest first.
  std::vector<mqtt_message> received() const;
  std::size_t count(const std::string& filter = "#") const;
  void clear();
  // Connection losses seen (the broker closed the connection).
  std::size_t losses() const;

 private:
  void on_message(mqtt_message m);

  std::string uri_;
  client_options options_;
  std::string client_id_;
  std::unique_ptr<mqtt::async_client> cli_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<mqtt_message> all_;
  std::deque<mqtt_message> pending_;
  std::size_t losses_ = 0;
};

}  // namespace itest
