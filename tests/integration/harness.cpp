#include "tests/integration/harness.hpp"

#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <future>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include <arpa/inet.h>
#include <fcntl.h>
#include <mqtt/async_client.h>
#include <netinet/in.h>
#include <pwd.h>
#include <spdlog/cfg/env.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mqttsn/topics.hpp"

namespace itest {

namespace {

// SPDLOG_LEVEL=debug ./mqttsn-integration-tests shows what the code under test logs at debug.
const bool log_levels_from_env = [] {
  spdlog::cfg::load_env_levels();
  return true;
}();

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

[[noreturn]] void fail_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}


// RAII for a plain socket descriptor.
struct fd_guard {
  int fd = -1;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

bool accepts_tcp(std::uint16_t port) {
  fd_guard s{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (s.fd < 0) return false;
  const auto a = loopback(port);
  return ::connect(s.fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0;
}

// Closes every descriptor above stderr in a freshly forked child (async-signal-safe).
void close_inherited_fds() {
  if (::close_range(3, UINT_MAX, 0) == 0) return;
  const long max = ::sysconf(_SC_OPEN_MAX);
  for (long fd = 3; fd < (max > 0 ? max : 65536); ++fd) ::close(static_cast<int>(fd));
}

// Forks every child process from one thread that lives as long as the test process:
// PR_SET_PDEATHSIG fires when the *thread* that forked ends, so forking from a test's own thread
// (a std::jthread that restarts a broker, say) would kill the child when that thread returns.
class spawner {
 public:
  static spawner& instance() {
    static spawner s;
    return s;
  }

  pid_t spawn(std::function<pid_t()> fork_child) {
    std::packaged_task<pid_t()> task(std::move(fork_child));
    auto pid = task.get_future();
    {
      std::lock_guard lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
    return pid.get();
  }

  ~spawner() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  spawner(const spawner&) = delete;
  spawner& operator=(const spawner&) = delete;

 private:
  spawner() : thread_([this] { loop(); }) {}

  void loop() {
    for (;;) {
      std::packaged_task<pid_t()> task;
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
        if (tasks_.empty()) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::packaged_task<pid_t()>> tasks_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts once the rest exists
};

}  // namespace

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

bool send_all(int fd, std::span<const std::uint8_t> data) {
  while (!data.empty()) {
    const auto n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data = data.subspan(static_cast<std::size_t>(n));
  }
  return true;
}

pid_t spawn_process(const std::vector<std::string>& argv, const std::filesystem::path& log) {
  if (argv.empty()) fail("spawn_process: no program");
  // Everything the child needs is prepared here: after fork() it may only make
  // async-signal-safe calls (the test process has other threads).
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const std::string log_file = log.string();
  const pid_t parent = ::getpid();
  const pid_t pid = spawner::instance().spawn([&]() -> pid_t {
    const pid_t child = ::fork();
    if (child < 0) return -errno;  // errno is per thread: carry it back
    if (child != 0) return child;
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);  // the test process is gone already
    const int null_in = ::open("/dev/null", O_RDONLY);
    if (null_in >= 0) ::dup2(null_in, 0);
    const int out = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (out >= 0) {
      ::dup2(out, 1);
      ::dup2(out, 2);
    }
    close_inherited_fds();  // never hold copies of the test's sockets
    ::execv(args[0], args.data());
    ::_exit(127);
  });
  if (pid < 0) {
    errno = -pid;
    fail_errno("fork " + argv.front());
  }
  return pid;
}

int stop_process(pid_t pid, std::chrono::milliseconds grace) {
  if (pid <= 0) return -1;
  int status = -1;
  const auto reaped = [&] {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    return r == pid || (r < 0 && errno == ECHILD);
  };
  if (grace.count() > 0) {
    ::kill(pid, SIGTERM);
    if (wait_until(reaped, grace)) return status;
  }
  ::kill(pid, SIGKILL);
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

namespace {

// Runs a program to completion with stdout/stderr to `log`; returns its exit code (-1: killed).
int run(const std::vector<std::string>& argv, const std::filesystem::path& log) {
  const pid_t pid = spawn_process(argv, log);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}


std::string current_user() {
  if (const passwd* pw = ::getpwuid(::geteuid()); pw && pw->pw_name) return pw->pw_name;
  return "root";
}

}  // namespace

std::uint16_t free_port(bool udp) {
  fd_guard s{::socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0)};
  if (s.fd < 0) fail_errno("free_port: socket");
  auto a = loopback(0);
  if (::bind(s.fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0)
    fail_errno("free_port: bind");
  socklen_t len = sizeof a;
  if (::getsockname(s.fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    fail_errno("free_port: getsockname");
  return ntohs(a.sin_port);
}

// ---- temp_dir ----

temp_dir::temp_dir(const std::string& prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base && *base ? base : "/tmp") + "/" + prefix + "-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) fail_errno("mkdtemp " + pattern);
  path_ = buf.data();
}

temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

// ---- test_pki ----

test_pki::test_pki(const std::string& ca_name) : dir_("mqttsn-pki") {
  ca_ = {dir_.path() / (ca_name + ".crt"), dir_.path() / (ca_name + ".key")};
  openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-keyout", ca_.key.string(), "-out", ca_.cert.string(), "-days", "1", "-subj",
           "/CN=" + ca_name, "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
           "keyUsage=critical,keyCertSign,cRLSign"});
}

test_pki::issued test_pki::issue(const std::string& name, const std::string& subject_alt_names) {
  issued out{dir_.path() / (name + ".crt"), dir_.path() / (name + ".key")};
  const auto csr = dir_.path() / (name + ".csr");
  const auto ext = dir_.path() / (name + ".ext");
  openssl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-keyout", out.key.string(), "-out", csr.string(), "-subj", "/CN=" + name});
  {
    std::ofstream e(ext);
    e << "basicConstraints=CA:FALSE\n";
    if (!subject_alt_names.empty()) e << "subjectAltName=" << subject_alt_names << '\n';
  }
  openssl({"x509", "-req", "-in", csr.string(), "-CA", ca_.cert.string(), "-CAkey",
           ca_.key.string(), "-set_serial", std::to_string(++serial_), "-days", "1", "-out",
           out.cert.string(), "-extfile", ext.string()});
  return out;
}

void test_pki::openssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"/usr/bin/openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  const auto log = dir_.path() / "openssl.log";
  if (run(argv, log) != 0) fail("openssl " + args.front() + " failed: " + read_file(log));
}

// ---- mosquitto_broker ----

mosquitto_broker::mosquitto_broker(broker_options options)
    : options_(std::move(options)), dir_("mqttsn-mosquitto") {
  if (::access(binary, X_OK) != 0) {
    fail(std::string("mosquitto not found at ") + binary +
         ": the integration tests need the broker (Debian package `mosquitto`)");
  }
  if (!options_.users.empty()) {
    const auto passwd = dir_.path() / "passwd";
    bool first = true;
    for (const auto& [user, password] : options_.users) {
      std::vector<std::string> argv{"/usr/bin/mosquitto_passwd", "-b"};
      if (first) argv.emplace_back("-c");
      argv.insert(argv.end(), {passwd.string(), user, password});
      if (run(argv, dir_.path() / "mosquitto_passwd.log") != 0) {
        fail("mosquitto_passwd failed: " + read_file(dir_.path() / "mosquitto_passwd.log"));
      }
      first = false;
    }
  }
  // An automatic port may be taken between free_port() and the broker's bind: try a few.
  for (int tries = 0;; ++tries) {
    port_ = options_.port ? options_.port : free_port(false);
    if (options_.tls) {
      do {
        tls_port_ = free_port(false);
      } while (tls_port_ == port_);
    }
    write_config();
    if (try_start()) return;
    if (options_.port || tries == 4)
      fail("mosquitto did not start on port " + std::to_string(port_) + ":\n" + log());
  }
}

mosquitto_broker::~mosquitto_broker() { kill(); }

std::string mosquitto_broker::uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

std::string mosquitto_broker::tls_uri(const std::string& host) const {
  return "ssl://" + host + ":" + std::to_string(tls_port_);
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string mosquitto_broker::log() const { return read_file(dir_.path() / "mosquitto.log"); }

void mosquitto_broker::write_config() const {
  std::ofstream conf(dir_.path() / "mosquitto.conf", std::ios::trunc);
  conf << "# written by the integration-test harness\n"
       << "listener " << port_ << " 127.0.0.1\n"
       << "allow_anonymous " << (options_.allow_anonymous ? "true" : "false") << '\n'
       << "user " << current_user() << '\n'  // run as root, mosquitto would switch to `mosquitto`
       << "log_dest stderr\n"
       << "log_timestamp_format %H:%M:%S\n";
  if (options_.persistence) {
    conf << "persistence true\n"
         << "persistence_location " << dir_.path().string() << "/\n"
         << "autosave_on_changes true\n"
         << "autosave_interval 1\n";
  }
  if (!options_.users.empty())
    conf << "password_file " << (dir_.path() / "passwd").string() << '\n';
  if (options_.tls) {
    // per_listener_settings is false: password_file and allow_anonymous above hold for both.
    conf << "listener " << tls_port_ << " 127.0.0.1\n"
         << "cafile " << options_.tls->ca_file.string() << '\n'
         << "certfile " << options_.tls->cert_file.string() << '\n'
         << "keyfile " << options_.tls->key_file.string() << '\n'
         << "require_certificate " << (options_.tls->require_certificate ? "true" : "false")
         << '\n';
  }
  for (const auto& line : options_.extra_config) conf << line << '\n';
  if (!conf) fail("cannot write " + (dir_.path() / "mosquitto.conf").string());
}

void mosquitto_broker::start() {
  if (running()) return;
  if (!try_start())
    fail("mosquitto did not restart on port " + std::to_string(port_) + ":\n" + log());
}

bool mosquitto_broker::try_start() {
  const pid_t pid = spawn_process({binary, "-c", (dir_.path() / "mosquitto.conf").string()},
                                  dir_.path() / "mosquitto.log");
  pid_ = pid;
  bool exited = false;
  const bool up = wait_until(
      [&] {
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid) {
          exited = true;
          return true;
        }
        return accepts_tcp(port_) && (tls_port_ == 0 || accepts_tcp(tls_port_));
      },
      options_.start_timeout);
  if (exited) {
    pid_ = -1;
    return false;
  }
  if (!up) {
    kill();
    fail("mosquitto did not accept connections on port " + std::to_string(port_) + " within " +
         std::to_string(options_.start_timeout.count()) + " ms:\n" + log());
  }
  return true;
}

void mosquitto_broker::stop() {
  stop_process(pid_, 5s);
  pid_ = -1;
}

void mosquitto_broker::kill() {
  stop_process(pid_, 0ms);
  pid_ = -1;
}

// ---- io_thread ----

io_thread::io_thread() { restart(); }

io_thread::~io_thread() { stop(); }

void io_thread::stop() {
  work_.reset();
  io_.stop();
  if (thread_.joinable()) thread_.join();
}

void io_thread::restart() {
  if (thread_.joinable()) return;
  io_.restart();
  work_.emplace(io_.get_executor());
  thread_ = std::thread([this] { io_.run(); });
}

void io_thread::throw_timeout() {
  fail("io_thread::call: the io thread did not run the call in time");
}

// ---- mqtt_test_client ----

namespace {
std::atomic<unsigned> client_counter{0};
}

mqtt_test_client::mqtt_test_client(std::string uri, client_options options)
    : uri_(std::move(uri)), options_(std::move(options)) {
  client_id_ = options_.client_id.empty()
                   ? "itest-" + std::to_string(::getpid()) + "-" + std::to_string(++client_counter)
                   : options_.client_id;
  cli_ = std::make_unique<mqtt::async_client>(uri_, client_id_,
                                              static_cast<mqtt::iclient_persistence*>(nullptr));
  cli_->set_message_callback([this](const mqtt::const_message_ptr& m) {
    if (!m) return;
    on_message(mqtt_message{m->get_topic(), m->get_payload_str(), m->get_qos(), m->is_retained()});
  });
  cli_->set_connection_lost_handler([this](const std::string&) {
    std::lock_guard lock(mutex_);
    ++losses_;
  });
  if (options_.connect && !connect())
    fail("mqtt_test_client '" + client_id_ + "' could not connect to " + uri_);
}

mqtt_test_client::mqtt_test_client(const mosquitto_broker& broker, client_options options)
    : mqtt_test_client(broker.uri(), std::move(options)) {}

mqtt_test_client::~mqtt_test_client() {
  disconnect();
  cli_.reset();  // before the members its callbacks use
}

bool mqtt_test_client::connect() {
  mqtt::connect_options o;
  o.set_mqtt_version(MQTTVERSION_3_1_1);
  o.set_clean_session(options_.clean_session);
  o.set_keep_alive_interval(options_.keep_alive_s);
  o.set_connect_timeout(static_cast<int>(std::max<long long>(
      1, std::chrono::duration_cast<std::chrono::seconds>(options_.timeout).count())));
  if (options_.will) {
    o.set_will(mqtt::will_options(options_.will->topic,
                                  mqtt::binary_ref(mqtt::binary(options_.will->payload)),
                                  options_.will->qos, options_.will->retained));
  }
  if (!options_.user_name.empty()) o.set_user_name(options_.user_name);
  if (!options_.password.empty()) o.set_password(options_.password);
  try {
    return cli_->connect(o)->wait_for(options_.timeout);
  } catch (const mqtt::exception&) {
    return false;
  }
}

bool mqtt_test_client::disconnect() {
  if (!cli_ || !cli_->is_connected()) return false;
  try {
    return cli_->disconnect(1000)->wait_for(options_.timeout);
  } catch (const mqtt::exception&) {
    return false;
  }
}

bool mqtt_test_client::connected() const { return cli_ && cli_->is_connected(); }

std::optional<int> mqtt_test_client::subscribe(const std::string& filter, int qos) {
  try {
    auto tok = cli_->subscribe(filter, qos);
    if (!tok->wait_for(options_.timeout)) return std::nullopt;
    const auto response = tok->get_subscribe_response();  // by value: keep it alive
    const auto& codes = response.get_reason_codes();
    if (codes.empty()) return std::nullopt;
    const int granted = static_cast<int>(codes.front());
    return granted <= 2 ? std::optional<int>(granted) : std::nullopt;
  } catch (const mqtt::exception&) {
    return std::nullopt;  // Paho reports SUBACK 0x80 as a failure
  }
}

bool mqtt_test_client::unsubscribe(const std::string& filter) {
  try {
    return cli_->unsubscribe(filter)->wait_for(options_.timeout);
  } catch (const mqtt::exception&) {
    return false;
  }
}

bool mqtt_test_client::publish(const std::string& topic, const std::string& payload, int qos,
                               bool retain) {
  try {
    return cli_->publish(topic, payload.data(), payload.size(), qos, retain)
        ->wait_for(options_.timeout);
  } catch (const mqtt::exception&) {
    return false;
  }
}

void mqtt_test_client::on_message(mqtt_message m) {
  {
    std::lock_guard lock(mutex_);
    all_.push_back(m);
    pending_.push_back(std::move(m));
  }
  cv_.notify_all();
}

std::optional<mqtt_message> mqtt_test_client::wait_message(const std::string& filter,
                                                           std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(mutex_);
  for (;;) {
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if (mqttsn::topic_matches(filter, it->topic)) {
        auto m = std::move(*it);
        pending_.erase(it);
        return m;
      }
    }
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      // one last look happens on the next loop only if something arrived; otherwise give up
      bool any = false;
      for (const auto& m : pending_) any = any || mqttsn::topic_matches(filter, m.topic);
      if (!any) return std::nullopt;
    }
  }
}

std::vector<mqtt_message> mqtt_test_client::received() const {
  std::lock_guard lock(mutex_);
  return all_;
}

std::size_t mqtt_test_client::count(const std::string& filter) const {
  std::lock_guard lock(mutex_);
  std::size_t n = 0;
  for (const auto& m : all_) n += mqttsn::topic_matches(filter, m.topic) ? 1 : 0;
  return n;
}

void mqtt_test_client::clear() {
  std::lock_guard lock(mutex_);
  all_.clear();
  pending_.clear();
}

std::size_t mqtt_test_client::losses() const {
  std::lock_guard lock(mutex_);
  return losses_;
}

}  // namespace itest
