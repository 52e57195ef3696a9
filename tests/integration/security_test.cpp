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

TEST_F(SecurityTls, publishes_reach_the_broker_over_tls_with_certificate_and_password) {
  for (const std::string mode : {"transparent", "aggregating"}) {
    SCOPED_TRACE(mode);
    mqtt_test_client observer(*broker, client_options{.user_name = "gateway", .password = gateway_password});
    ASSERT_TRUE(observer.subscribe("tls/#", 1));
    auto flags = tls_flags(pki.ca_cert().string());
    flags.insert(flags.end(), {"--mode", mode});
    gateway_process gw(broker->tls_uri(), flags);
    EXPECT_TRUE(gw.log_contains("broker certificate and host name checked")) << gw.log();
    auto c = sensor(gw, "tls-sensor-" + mode);
    ASSERT_EQ(c.connect(), mqttsn::return_code::accepted) << gw.log();
    EXPECT_EQ(c.publish(topic_name{"tls/" + mode}, "over tls", qos::at_least_once), mqttsn::return_code::accepted);
    auto m = observer.wait_message("tls/" + mode);
    ASSERT_TRUE(m) << gw.log();
    EXPECT_EQ(m->payload, "over tls");
    c.disconnect();
    EXPECT_EQ(gw.stop(), 0);
    // The secret never reaches the log, whatever happened.
    EXPECT_EQ(gw.log().find(gateway_password), std::string::npos);
    EXPECT_TRUE(broker->log().find("New client connected") != std::string::npos);
  }
}

TEST_F(SecurityTls, a_wrong_ca_fails_with_a_clear_log_line_and_never_connects) {
  test_pki other("some-other-ca");
  auto flags = tls_flags(other.ca_cert().string());
  flags.insert(flags.end(), {"--connect-timeout", "2"});
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

// Transparent mode: each client's own credentials from the credentials file.
TEST_F(SecurityTls, a_client_the_broker_refuses_gets_connack_not_supported_with_the_reason_logged) {
  const auto creds = write_file(files, "clients.credentials",
                                "# client-id user password\n"
                                "sensor-ok   sensor-ok   " + std::string(sensor_password) + "\n"
                                "sensor-bad  sensor-ok   not-the-password\n",
                                0644);  // world-readable on purpose: the gateway must warn
  auto flags = tls_flags(pki.ca_cert().string());
  flags.insert(flags.end(), {"--broker-credentials-file", creds});
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
