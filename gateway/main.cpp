// mqttsn-gateway: parse the configuration, build the transports and the broker upstream, run one
// io_context until SIGTERM/SIGINT. Errors at startup are one line on stderr and exit status 2.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <iostream>
#include <memory>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "gateway/aggregating_upstream.hpp"
#include "gateway/config.hpp"
#include "gateway/gateway.hpp"
#include "gateway/native_upstream.hpp"
#include "gateway/extension.hpp"
#include "gateway/clients_file.hpp"
#include "gateway/secrets.hpp"
#include "mqttsn/admission.hpp"
#include "transports/serial_transport.hpp"
#include "transports/udp_transport.hpp"

namespace {

spdlog::level::level_enum to_spdlog(gateway::log_level l) {
  switch (l) {
    case gateway::log_level::trace: return spdlog::level::trace;
    case gateway::log_level::debug: return spdlog::level::debug;
    case gateway::log_level::info: return spdlog::level::info;
    case gateway::log_level::warn: return spdlog::level::warn;
    case gateway::log_level::error: return spdlog::level::err;
    case gateway::log_level::off: return spdlog::level::off;
  }
  return spdlog::level::info;
}

// systemd readiness (Type=notify) without linking libsystemd: one datagram to $NOTIFY_SOCKET.
void notify_systemd(const char* state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (!path || (path[0] != '/' && path[0] != '@')) return;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::size_t len = std::strlen(path);
  if (len >= sizeof addr.sun_path) return;
  std::memcpy(addr.sun_path, path, len);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // abstract socket
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  const auto addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
  (void)::sendto(fd, state, std::strlen(state), 0, reinterpret_cast<const sockaddr*>(&addr), addr_len);
  ::close(fd);
}

// SIGHUP: reads the configuration again (the same command line and --config file). The log level
// and the predefined topics take effect at once; anything else that changed is named in a warning
// and waits for a restart. A configuration that no longer parses changes nothing.
void reload(int argc, char* argv[], gateway::config& cfg, gateway::gateway& gw) {
  gateway::config fresh;
  try {
    std::string ignored;
    gateway::parse_config(argc, argv, fresh, ignored);
  } catch (const std::exception& e) {
    spdlog::error("SIGHUP: configuration not reloaded, nothing changed: {}", e.what());
    return;
  }
  spdlog::set_level(to_spdlog(fresh.level));
  gw.reload_predefined(fresh.predefined);
  cfg.level = fresh.level;
  cfg.predefined = fresh.predefined;
  cfg.predefined_file = fresh.predefined_file;
  if (!(fresh == cfg)) {
    spdlog::warn("SIGHUP: settings other than log-level, predefined and predefined-file changed; "
                 "they take effect after a restart");
  }
  spdlog::info("SIGHUP: configuration reloaded: log level {}, {} predefined topics, sessions kept",
               spdlog::level::to_string_view(to_spdlog(cfg.level)), cfg.predefined.size());
}

// TLS settings and credentials: the secrets are read from their files here, once; warnings (a
// world-readable secret) are logged, the secrets never are. Throws config_error naming the key.
void apply_broker_security(const gateway::config& cfg, gateway::paho_settings& settings) {
  auto secrets = gateway::load_broker_secrets(cfg);
  for (const auto& w : secrets.warnings) spdlog::warn("{}", w);
  settings.tls = gateway::tls_settings{cfg.broker_ca_file, cfg.broker_ca_dir, cfg.broker_cert_file,
                                       cfg.broker_key_file, std::move(secrets.key_password),
                                       cfg.broker_insecure};
  if (secrets.gateway) settings.login = gateway::broker_login{secrets.gateway->username, secrets.gateway->password};
  for (auto& [id, c] : secrets.clients) settings.client_logins.emplace(id, gateway::broker_login{c.username, c.password});
  if (!secrets.clients.empty() && cfg.mode == gateway::gateway_mode::aggregating) {
    spdlog::warn("--broker-credentials-file: ignored in aggregating mode (one shared connection, --broker-username)");
  }
  if (cfg.broker.starts_with("ssl://")) {
    const auto& t = settings.tls;
    spdlog::info("TLS to the broker: CA {}{}{}, {}", t.ca_file.empty() && t.ca_dir.empty() ? "the system's store" : t.ca_file,
                 t.ca_dir.empty() ? "" : " and directory " + t.ca_dir,
                 t.cert_file.empty() ? "" : ", client certificate " + t.cert_file,
                 t.insecure ? "NO check of the broker's certificate and host name (broker-insecure)"
                            : "broker certificate and host name checked");
  } else if (secrets.gateway && !secrets.gateway->password.empty()) {
    spdlog::warn("--broker-password-file: the password goes to {} unencrypted (use ssl://)", cfg.broker);
  }
}

// The clients file: the admission rules, and the broker credentials some lines carry (added to
// the credentials file's; a client in both is an error). Throws config_error naming the key.
mqttsn::admission load_clients_file(const gateway::config& cfg, gateway::paho_settings& settings) {
  const std::string where = "--clients-file " + cfg.clients_file;
  std::ifstream in(cfg.clients_file);
  if (!in) throw gateway::config_error(where + ": cannot open (" + std::strerror(errno) + ")");
  std::ostringstream text;
  text << in.rdbuf();
  auto parsed = gateway::parse_clients_file(text.str(), where, cfg.predefined);
  if (parsed.has_secrets) {
    if (auto w = gateway::world_readable_warning("--clients-file", cfg.clients_file)) spdlog::warn("{}", *w);
  }
  if (!parsed.logins.empty() && cfg.mode == gateway::gateway_mode::aggregating) {
    std::string ids;  // the first few, so that the line stays a line
    std::size_t named = 0;
    for (const auto& [id, c] : parsed.logins) {
      if (named++ == 10) {
        ids += ", ...";
        break;
      }
      ids += (ids.empty() ? "" : ", ") + id;
    }
    spdlog::warn("{}: the broker logins of {} client(s) ({}) are ignored in aggregating mode (one shared broker "
                 "connection, which logs in with --broker-username)",
                 where, parsed.logins.size(), ids);
  }
  for (auto& [id, c] : parsed.logins) {
    if (settings.client_logins.contains(id)) {
      throw gateway::config_error(where + ": client '" + id + "' also has a line in --broker-credentials-file");
    }
    settings.client_logins.emplace(id, gateway::broker_login{c.username, c.password});
  }
  spdlog::info("clients file {}: {} client(s) admitted, every other client id refused", cfg.clients_file,
               parsed.rules.size());
  return mqttsn::admission(std::move(parsed.rules));
}

std::string listen_text(const gateway::udp_listen& u) {
  return u.host.find(':') != std::string::npos ? "[" + u.host + "]:" + std::to_string(u.port)
                                                : u.host + ":" + std::to_string(u.port);
}

}  // namespace

int main(int argc, char* argv[]) {
  gateway::config cfg;
  try {
    std::string text;
    if (gateway::parse_config(argc, argv, cfg, text) == gateway::parse_outcome::exit_ok) {
      std::cout << text;
      return 0;
    }
  } catch (const gateway::config_error& e) {
    std::cerr << "mqttsn-gateway: " << e.what() << '\n';
    return 2;
  }

  auto logger = spdlog::stderr_color_mt("mqttsn-gateway");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  spdlog::set_level(to_spdlog(cfg.level));

  // Secrets and the clients file are configuration too: a bad one stops the daemon before any
  // socket or device is opened.
  gateway::paho_settings settings;
  settings.broker = cfg.broker;
  settings.gateway_client_id = cfg.effective_upstream_client_id();
  settings.status_topic = cfg.effective_status_topic();
  settings.connect_timeout = cfg.connect_timeout;
  settings.max_queued_publishes = static_cast<int>(cfg.upstream_max_queued);
  settings.max_held = cfg.upstream_max_held;
  settings.client = cfg.effective_upstream_client() == gateway::upstream_client_kind::paho
                        ? gateway::upstream_client::paho
                        : gateway::upstream_client::native;
  std::optional<mqttsn::admission> admission;
  try {
    apply_broker_security(cfg, settings);
    if (!cfg.clients_file.empty()) admission = load_clients_file(cfg, settings);
  } catch (const gateway::config_error& e) {
    std::cerr << "mqttsn-gateway: " << e.what() << '\n';
    return 2;
  }

  boost::asio::io_context io(1);

  std::vector<std::unique_ptr<transports::transport>> transports;
  for (std::size_t i = 0; i < cfg.udp.size(); ++i) {
    transports::udp_options options;
    options.host = cfg.udp[i].host;
    options.port = cfg.udp[i].port;
    options.max_frame_size = cfg.max_frame_size;
    options.receive_buffer = cfg.udp_receive_buffer;
    // The multicast group (if any) is served by the first listener of the same address family.
    if (cfg.multicast && i == 0) options.multicast = std::make_pair(cfg.multicast->host, cfg.multicast->port);
    try {
      transports.push_back(std::make_unique<transports::udp_transport>(io, "udp" + std::to_string(i) + "/", options));
    } catch (const std::exception& e) {
      std::cerr << "mqttsn-gateway: --udp " << listen_text(cfg.udp[i]) << ": " << e.what() << '\n';
      return 2;
    }
  }

  // Serial transport (XBee coordinator or MCU bridge), next to UDP. It opens the device when the
  // gateway starts and reopens it with backoff; only a module in the wrong API mode stops the daemon.
  int exit_code = 0;
  if (!cfg.serial.empty()) {
    transports::serial_options options;
    options.device = cfg.serial;
    options.baud = cfg.serial_baud;
    options.framing = static_cast<transports::serial_framing_kind>(cfg.serial_frame);
    options.flow = static_cast<transports::serial_flow_kind>(cfg.serial_flow_control);
    options.max_frame_size = cfg.serial_max_frame_size;
    options.on_fatal = [&io, &exit_code](const std::string& message) {
      spdlog::critical("{}", message);
      exit_code = 2;
      io.stop();
    };
    transports.push_back(std::make_unique<transports::serial_transport>(io, "serial0/", std::move(options)));
  }

  // Transparent: one broker connection per client; aggregating: all clients on one shared one.
  const bool aggregating = cfg.mode == gateway::gateway_mode::aggregating;
  std::unique_ptr<gateway::upstream> upstream;
  if (aggregating) {
    try {
      upstream = std::make_unique<gateway::aggregating_upstream>(io, settings);
    } catch (const std::invalid_argument& e) {
      std::cerr << "mqttsn-gateway: " << e.what() << '\n';
      return 2;
    }
  } else {
    try {
      if (settings.client == gateway::upstream_client::paho) {
        upstream = gateway::make_paho_upstream(io, settings);
      } else {
        upstream = std::make_unique<gateway::native_upstream>(io, settings);
      }
    } catch (const std::invalid_argument& e) {
      std::cerr << "mqttsn-gateway: " << e.what() << '\n';
      return 2;
    }
  }

  gateway::gateway gw(io, cfg, *upstream, std::move(transports));
  if (admission) gw.set_admission(&*admission);
  std::unique_ptr<gateway::session_store> store;
  if (!cfg.persistence.empty()) {
    try {
      store = gateway::open_session_store(cfg.persistence);
    } catch (const std::exception& e) {
      std::cerr << "mqttsn-gateway: --persistence " << e.what() << '\n';
      return 2;
    }
    gw.set_store(store.get());
  }
  gw.start();

  boost::asio::signal_set signals(io, SIGINT, SIGTERM, SIGUSR1);
  signals.add(SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_signal = [&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    if (sig == SIGUSR1) {
      gw.log_stats();
    } else if (sig == SIGHUP) {
      reload(argc, argv, cfg, gw);
    } else {
      spdlog::info("signal {}: shutting down", sig);
      notify_systemd("STOPPING=1");
      gw.stop();
      io.stop();
      return;
    }
    signals.async_wait(on_signal);
  };
  signals.async_wait(on_signal);

  std::string listening;
  for (const auto& u : cfg.udp) listening += (listening.empty() ? "" : ", ") + listen_text(u);
  spdlog::info("mqttsn-gateway {} (gateway id {}, {} mode{}) on UDP {}, broker {}", MQTTSN_VERSION, cfg.gateway_id,
               aggregating ? "aggregating" : "transparent",
               settings.client == gateway::upstream_client::paho ? ", Paho client" : ", native client",
               listening, cfg.broker);
  notify_systemd("READY=1");
  io.run();

  gw.log_stats();
  upstream->stop(std::chrono::seconds(3));
  spdlog::info("stopped");
  return exit_code;
}
