// Security end to end: the real daemon toward a real Mosquitto with a TLS listener (certificates
// made by the test with openssl, never committed) and a password file (mosquitto_passwd).
// Checks that TLS works with the broker's certificate and host name verified, that a wrong CA or
// a wrong host name fails with a clear log line, that the broker refusing a client's credentials
// gives the sensor CONNACK "not supported" (DECISIONS.md), and that secrets never reach the log.
#include <sys/stat.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/gateway_process.hpp"
#include "tests/integration/harness.hpp"
#include "tools/client/mqttsn_client.hpp"

namespace itest {
namespace {

using namespace std::chrono_literals;
using mqttsn::qos;
using tools::topic_name;

constexpr const char* gateway_password = "gw-Secret-7f3a";
constexpr const char* sensor_password = "sensor-Secret-91c2";

// A file with `text` and the given mode in `dir`.
std::string write_file(const temp_dir& dir, const std::string& name, const std::string& text,
                       mode_t mode = 0600) {
  const auto path = (dir.path() / name).string();
  std::ofstream(path) << text;
  ::chmod(path.c_str(), mode);
  return path;
}

tools::client sensor(const gateway_process& gw, const std::string& id) {
  tools::client_options o;
  o.client_id = id;
  o.keep_alive = 30;
  o.retry_interval = 500ms;
  o.retry_count = 12;  // Paho may take 2 s to open a connection (README, known limitations)
  return tools::client(gw.host(), gw.port(), o);
}

// A broker with a TLS listener that demands client certificates, and a password file.
class SecurityTls : public ::testing::Test {
 protected:
  void SetUp() override {
    server = pki.issue("broker", "DNS:localhost,IP:127.0.0.1");
    client_cert = pki.issue("gateway", "");
    broker_options bo;
    bo.allow_anonymous = false;
    bo.users = {{"gateway", gateway_password}, {"sensor-ok", sensor_password}};
    bo.tls = tls_listener{pki.ca_cert(), server.cert, server.key, true};
    broker = std::make_unique<mosquitto_broker>(bo);
    password_file = write_file(files, "gateway.password", std::string(gateway_password) + "\n");
  }

  // The flags of a gateway that trusts `ca` and shows the gateway's client certificate.
  std::vector<std::string> tls_flags(const std::string& ca) const {
    return {"--broker-ca-file",  ca,
            "--broker-cert-file", client_cert.cert.string(),
            "--broker-key-file",  client_cert.key.string(),
            "--broker-username",  "gateway",
            "--broker-password-file", password_file};
  }

  test_pki pki;
  test_pki::issued server;
  test_pki::issued client_cert;
  temp_dir files{"mqttsn-secrets"};
  std::string password_file;
  std::unique_ptr<mosquitto_broker> broker;
};

// Both modes, each on both MQTT clients (native is the default of both; paho on request).
TEST_F(SecurityTls, publishes_reach_the_broker_over_tls_with_certificate_and_password) {
  for (const std::string mode : {"transparent", "aggregating"}) {
    for (const std::string client : {"native", "paho"}) {
      SCOPED_TRACE(mode + ", " + client + " client");
      mqtt_test_client observer(*broker, client_options{.user_name = "gateway", .password = gateway_password});
      ASSERT_TRUE(observer.subscribe("tls/#", 1));
      auto flags = tls_flags(pki.ca_cert().string());
      flags.insert(flags.end(), {"--mode", mode, "--upstream-client", client});
      gateway_process gw(broker->tls_uri(), flags);
      EXPECT_TRUE(gw.log_contains("broker certificate and host name checked")) << gw.log();
      EXPECT_TRUE(gw.log_contains(mode + " mode, " + (client == "paho" ? "Paho" : "native") + " client")) << gw.log();
      auto c = sensor(gw, "tls-sensor-" + mode + "-" + client);
      ASSERT_EQ(c.connect(), mqttsn::return_code::accepted) << gw.log();
      EXPECT_EQ(c.publish(topic_name{"tls/" + mode + "/" + client}, "over tls", qos::at_least_once),
                mqttsn::return_code::accepted);
      auto m = observer.wait_message("tls/" + mode + "/" + client);
      ASSERT_TRUE(m) << gw.log();
      EXPECT_EQ(m->payload, "over tls");
      c.disconnect();
      EXPECT_EQ(gw.stop(), 0);
      // The secret never reaches the log, whatever happened.
      EXPECT_EQ(gw.log().find(gateway_password), std::string::npos);
      EXPECT_TRUE(broker->log().find("New client connected") != std::string::npos);
    }
  }
}

// Transparent mode, on both MQTT clients: the same log line for a certificate the CA file refuses.
TEST_F(SecurityTls, a_wrong_ca_fails_with_a_clear_log_line_and_never_connects) {
  test_pki other("some-other-ca");
  for (const std::string client : {"native", "paho"}) {
    SCOPED_TRACE(client + " client");
    auto flags = tls_flags(other.ca_cert().string());
    flags.insert(flags.end(), {"--connect-timeout", "2", "--upstream-client", client});
    gateway_process gw(broker->tls_uri(), flags, {}, false);
    ASSERT_TRUE(wait_until([&] { return gw.log_contains("fails: the broker's certificate was refused"); }, 15s))
        << gw.log();
    // OpenSSL's words depend on whether the broker sends its CA along ("self-signed certificate in
    // certificate chain") or not ("unable to get local issuer certificate").
    EXPECT_TRUE(gw.log_contains("certificate in certificate chain (check --broker-ca-file") ||
                gw.log_contains("unable to get local issuer certificate (check --broker-ca-file"))
        << gw.log();
    EXPECT_FALSE(gw.log_contains("connected to broker")) << gw.log();
    // A sensor gets no session while the broker is unreachable: CONNACK congestion after the
    // connect timeout (DECISIONS.md), never "accepted".
    auto c = sensor(gw, "wrong-ca-sensor");
    EXPECT_NE(c.connect(), mqttsn::return_code::accepted);
  }
}

// Aggregating mode's shared connection is the gateway's own MQTT client (not Paho): the same
// checks, the same log lines.
TEST_F(SecurityTls, aggregating_mode_checks_the_ca_and_the_host_name_with_the_same_log_lines) {
  test_pki other("some-other-ca");
  {
    auto flags = tls_flags(other.ca_cert().string());
    flags.insert(flags.end(), {"--mode", "aggregating", "--connect-timeout", "2"});
    gateway_process gw(broker->tls_uri(), flags, {}, false);
    ASSERT_TRUE(wait_until([&] { return gw.log_contains("fails: the broker's certificate was refused"); }, 15s))
        << gw.log();
    EXPECT_TRUE(gw.log_contains("native client")) << gw.log();
    EXPECT_TRUE(gw.log_contains("certificate in certificate chain (check --broker-ca-file") ||
                gw.log_contains("unable to get local issuer certificate (check --broker-ca-file"))
        << gw.log();
    EXPECT_TRUE(gw.log_contains("cannot connect")) << gw.log();
    EXPECT_FALSE(gw.log_contains("connected to broker")) << gw.log();
  }
  const auto elsewhere = pki.issue("elsewhere", "DNS:elsewhere.example");
  broker_options bo;
  bo.allow_anonymous = false;
  bo.users = {{"gateway", gateway_password}};
  bo.tls = tls_listener{pki.ca_cert(), elsewhere.cert, elsewhere.key, false};
  mosquitto_broker misnamed(bo);
  auto flags = tls_flags(pki.ca_cert().string());
  flags.insert(flags.end(), {"--mode", "aggregating"});
  {
    gateway_process gw(misnamed.tls_uri(), flags, {}, false);
    ASSERT_TRUE(wait_until([&] { return gw.log_contains("the broker's certificate was refused: IP address mismatch"); }, 15s))
        << gw.log();
    EXPECT_FALSE(gw.log_contains("connected to broker")) << gw.log();
  }
  flags.insert(flags.end(), {"--broker-insecure", "true"});
  gateway_process gw(misnamed.tls_uri(), flags);
  EXPECT_TRUE(wait_until([&] { return gw.log_contains("connected to broker"); }, 15s)) << gw.log();
}

TEST_F(SecurityTls, the_broker_host_name_is_checked_unless_insecure) {
  // A certificate the right CA signed, but for another host: the check of the name must fail.
  const auto elsewhere = pki.issue("elsewhere", "DNS:elsewhere.example");
  broker_options bo;
  bo.allow_anonymous = false;
  bo.users = {{"gateway", gateway_password}};
  bo.tls = tls_listener{pki.ca_cert(), elsewhere.cert, elsewhere.key, false};
  mosquitto_broker misnamed(bo);
  {
    gateway_process gw(misnamed.tls_uri(), tls_flags(pki.ca_cert().string()), {}, false);
    ASSERT_TRUE(wait_until([&] { return gw.log_contains("cannot connect"); }, 15s)) << gw.log();
    ASSERT_TRUE(wait_until([&] { return gw.log_contains("the broker's certificate was refused: IP address mismatch"); }, 15s))
        << gw.log();
    // Several attempts (backoff from 1 s), none accepted.
    ASSERT_TRUE(wait_until([&] { return misnamed.log().find("New connection from") != std::string::npos; }, 5s));
    EXPECT_FALSE(gw.log_contains("connected to broker")) << gw.log();
  }
  // The same broker with broker-insecure: the name is not checked, and the gateway connects.
  auto flags = tls_flags(pki.ca_cert().string());
  flags.insert(flags.end(), {"--broker-insecure", "true"});
  gateway_process gw(misnamed.tls_uri(), flags);
  EXPECT_TRUE(gw.log_contains("NO check of the broker's certificate")) << gw.log();
}

// Transparent mode: each client's own credentials from the credentials file (both MQTT clients).
TEST_F(SecurityTls, a_client_the_broker_refuses_gets_connack_not_supported_with_the_reason_logged) {
  const auto creds = write_file(files, "clients.credentials",
                                "# client-id user password\n"
                                "sensor-ok   sensor-ok   " + std::string(sensor_password) + "\n"
                                "sensor-bad  sensor-ok   not-the-password\n",
                                0644);  // world-readable on purpose: the gateway must warn
  for (const std::string client : {"native", "paho"}) {
    SCOPED_TRACE(client + " client");
    auto flags = tls_flags(pki.ca_cert().string());
    flags.insert(flags.end(), {"--broker-credentials-file", creds, "--upstream-client", client});
    gateway_process gw(broker->tls_uri(), flags);
    EXPECT_TRUE(gw.log_contains("--broker-credentials-file " + creds +
                                " holds a secret but every user of this machine can read it"))
        << gw.log();

    auto bad = sensor(gw, "sensor-bad");
    EXPECT_EQ(bad.connect(), mqttsn::return_code::not_supported);
    // Mosquitto 2 answers a wrong password with "not authorized" (CONNACK 5) in MQTT 3.1.1.
    EXPECT_TRUE(wait_until([&] { return gw.log_contains("client sensor-bad (udp0/127.0.0.1:") &&
                                        gw.log_contains("refused by the broker: not authorized"); }, 5s))
        << gw.log();

    auto good = sensor(gw, "sensor-ok");
    EXPECT_EQ(good.connect(), mqttsn::return_code::accepted) << gw.log();
    good.disconnect();

    gw.stop();
    const auto log = gw.log();
    EXPECT_EQ(log.find(sensor_password), std::string::npos);
    EXPECT_EQ(log.find("not-the-password"), std::string::npos);
    EXPECT_EQ(log.find(gateway_password), std::string::npos);
  }
}

// ---- client admission (--clients-file) ----

tools::client sensor_from(const gateway_process& gw, const std::string& id, const std::string& local_address) {
  tools::client_options o;
  o.client_id = id;
  o.keep_alive = 30;
  o.retry_interval = 500ms;
  o.retry_count = 12;
  o.local_address = local_address;
  return tools::client(gw.host(), gw.port(), o);
}

class SecurityAdmission : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    broker = std::make_unique<mosquitto_broker>();
    observer = std::make_unique<mqtt_test_client>(*broker);
    // 127.0.0.2 is a loopback address of its own: a sensor bound there is "another host".
    clients = write_file(files, "clients",
                         "# the clients this gateway admits\n"
                         "kitchen  address=127.0.0.1 publish=home/kitchen/# predefined=40:home/kitchen/qm1\n"
                         "anywhere\n"
                         "other    address=127.0.0.2 predefined=41:home/other/qm1\n",
                         0644);
    gateway = std::make_unique<gateway_process>(broker->uri(), std::vector<std::string>{
                                                                   "--clients-file", clients, "--mode", GetParam()});
  }

  temp_dir files{"mqttsn-clients"};
  std::string clients;
  std::unique_ptr<mosquitto_broker> broker;
  std::unique_ptr<mqtt_test_client> observer;
  std::unique_ptr<gateway_process> gateway;
};

TEST_P(SecurityAdmission, unknown_client_id_gets_connack_not_supported_counted_and_logged_once) {
  EXPECT_TRUE(gateway->log_contains("clients file " + clients + ": 3 client(s) admitted")) << gateway->log();
  auto stranger = sensor_from(*gateway, "stranger", "");
  EXPECT_EQ(stranger.connect(), mqttsn::return_code::not_supported);
  EXPECT_EQ(stranger.connect(), mqttsn::return_code::not_supported);
  EXPECT_EQ(gateway->stat("admission_refused"), 2U);
  const auto log = gateway->log();
  const std::string line = "client stranger (udp0/127.0.0.1:";
  const auto first = log.find(line);
  ASSERT_NE(first, std::string::npos) << log;
  EXPECT_NE(log.find("refused by the clients file (logged once per client): client id not in the clients file", first),
            std::string::npos);
  EXPECT_EQ(log.find(line, first + 1), std::string::npos) << "logged twice:\n" << log;
  // Listed clients are served, bound or not.
  ASSERT_TRUE(observer->subscribe("home/#", 1));
  auto kitchen = sensor_from(*gateway, "kitchen", "127.0.0.1");
  ASSERT_EQ(kitchen.connect(), mqttsn::return_code::accepted) << gateway->log();
  EXPECT_EQ(kitchen.publish(topic_name{"home/kitchen/temp"}, "21", qos::at_least_once), mqttsn::return_code::accepted);
  EXPECT_TRUE(observer->wait_message("home/kitchen/temp"));
  // Outside its publish pattern: refused, and nothing reaches the broker.
  EXPECT_EQ(kitchen.publish(topic_name{"home/bedroom/temp"}, "x", qos::at_least_once),
            mqttsn::return_code::not_supported);
  EXPECT_EQ(gateway->stat("publishes_denied"), 1U);
  auto anywhere = sensor_from(*gateway, "anywhere", "127.0.0.2");
  EXPECT_EQ(anywhere.connect(), mqttsn::return_code::accepted);
  kitchen.disconnect();
  anywhere.disconnect();
  EXPECT_EQ(observer->count("home/bedroom/#"), 0U);
}

TEST_P(SecurityAdmission, a_listed_client_id_from_another_address_is_refused) {
  // "kitchen" is bound to 127.0.0.1; the same id from 127.0.0.2 is an impostor.
  auto impostor = sensor_from(*gateway, "kitchen", "127.0.0.2");
  EXPECT_EQ(impostor.connect(), mqttsn::return_code::not_supported);
  // The CONNACK goes out before the log line is written: wait for the line.
  EXPECT_TRUE(wait_until([&] { return gateway->log_contains("address not allowed for this client id"); }, 5s))
      << gateway->log();
  EXPECT_TRUE(gateway->log_contains("client kitchen (udp0/127.0.0.2:")) << gateway->log();
  EXPECT_EQ(gateway->stat("admission_refused"), 1U);
  EXPECT_EQ(gateway->stat("connects"), 0U);
  // The real one still connects from its address.
  auto kitchen = sensor_from(*gateway, "kitchen", "127.0.0.1");
  EXPECT_EQ(kitchen.connect(), mqttsn::return_code::accepted) << gateway->log();
  kitchen.disconnect();
}

TEST_P(SecurityAdmission, qos_minus_one_only_from_listed_addresses) {
  ASSERT_TRUE(observer->subscribe("home/#", 1));
  // From 127.0.0.2 (bound to "other"): its own predefined id 41 is published.
  auto listed = sensor_from(*gateway, "ignored", "127.0.0.2");
  listed.publish(tools::predefined_topic{41}, "from other", qos::minus_one);
  auto m = observer->wait_message("home/other/qm1");
  ASSERT_TRUE(m) << gateway->log();
  EXPECT_EQ(m->payload, "from other");
  // From 127.0.0.3, which no line lists: dropped, counted, no answer.
  auto unlisted = sensor_from(*gateway, "ignored", "127.0.0.3");
  unlisted.publish(tools::predefined_topic{41}, "injected", qos::minus_one);
  EXPECT_TRUE(wait_until([&] { return gateway->stat("qos_m1_refused") == 1U; }, 5s));
  EXPECT_EQ(gateway->stat("qos_m1"), 1U);
  EXPECT_FALSE(observer->wait_message("home/#", 300ms));
}

INSTANTIATE_TEST_SUITE_P(Modes, SecurityAdmission, ::testing::Values("transparent", "aggregating"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

// Aggregating mode has one broker connection, which logs in with --broker-username: the broker
// logins that clients-file lines carry cannot apply, and one warning says so (never the secrets).
TEST(SecurityConfig, clients_file_logins_in_aggregating_mode_are_named_in_one_warning) {
  mosquitto_broker broker;
  temp_dir files("mqttsn-clients");
  const auto clients = write_file(files, "clients",
                                  "tracker username=tracker password=" + std::string(sensor_password) +
                                      "\nbeacon username=beacon password=b\nplain\n");
  const std::string warning = "--clients-file " + clients +
                              ": the broker logins of 2 client(s) (beacon, tracker) are ignored in aggregating mode "
                              "(one shared broker connection, which logs in with --broker-username)";
  {
    gateway_process gw(broker.uri(), {"--clients-file", clients, "--mode", "aggregating"});
    const auto log = gw.log();
    const auto at = log.find(warning);
    ASSERT_NE(at, std::string::npos) << log;
    const auto line_start = log.rfind('\n', at) + 1;  // npos + 1 == 0: the first line
    EXPECT_NE(log.substr(line_start, at - line_start).find(" warning "), std::string::npos) << log;
    EXPECT_EQ(log.find(warning, at + 1), std::string::npos) << "logged twice:\n" << log;
    EXPECT_EQ(log.find(sensor_password), std::string::npos) << log;
  }
  gateway_process gw(broker.uri(), {"--clients-file", clients, "--mode", "transparent"});
  EXPECT_FALSE(gw.log_contains("ignored in aggregating mode")) << gw.log();
}

TEST(SecurityConfig, a_missing_secret_file_stops_the_gateway_with_one_line_naming_the_key) {
  temp_dir dir("mqttsn-secrets");
  const auto log = dir.path() / "gw.log";
  const pid_t pid = spawn_process({MQTTSN_GATEWAY_BIN, "--broker", "ssl://127.0.0.1:1", "--broker-username", "u",
                                   "--broker-password-file", (dir.path() / "absent").string()},
                                  log);
  int status = 0;
  ASSERT_TRUE(wait_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, 10s));
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
  std::ifstream in(log);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "mqttsn-gateway: --broker-password-file " + (dir.path() / "absent").string() +
                      ": cannot open (No such file or directory)");
}

}  // namespace
}  // namespace itest
