// Client admission, the pure part: address binding, filter containment, verdicts and topic
// permissions (mqttsn/admission), and the clients-file and credentials-file parsers
// (gateway/clients_file, gateway/secrets), every error naming the file and line.
#include "mqttsn/admission.hpp"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "gateway/clients_file.hpp"
#include "gateway/secrets.hpp"

namespace {

using mqttsn::address_matches;
using mqttsn::admission;
using mqttsn::admission_verdict;
using mqttsn::client_rule;
using mqttsn::filter_within;

TEST(AdmissionAddress, a_host_without_port_matches_every_port_of_that_host_only) {
  EXPECT_TRUE(address_matches("10.0.0.7", "udp0/10.0.0.7:5000"));
  EXPECT_TRUE(address_matches("10.0.0.7", "udp1/10.0.0.7:1"));
  EXPECT_FALSE(address_matches("10.0.0.7", "udp0/10.0.0.70:5000"));
  EXPECT_FALSE(address_matches("10.0.0.7", "udp0/110.0.0.7:5000"));
  EXPECT_TRUE(address_matches("[::1]", "udp0/[::1]:5000"));
  EXPECT_FALSE(address_matches("[::1]", "udp0/[::10]:5000"));
}

TEST(AdmissionAddress, a_host_with_port_matches_that_port_only) {
  EXPECT_TRUE(address_matches("10.0.0.7:5000", "udp0/10.0.0.7:5000"));
  EXPECT_FALSE(address_matches("10.0.0.7:5000", "udp0/10.0.0.7:5001"));
  EXPECT_FALSE(address_matches("10.0.0.7:500", "udp0/10.0.0.7:5000"));
  EXPECT_TRUE(address_matches("[::1]:5000", "udp0/[::1]:5000"));
  EXPECT_FALSE(address_matches("[::1]:5000", "udp0/[::1]:50000"));
}

TEST(AdmissionAddress, xbee_addresses_are_exact_and_forwarded_clients_never_match_a_bound_one) {
  EXPECT_TRUE(address_matches("0013A20040A1B2C3", "serial0/0013A20040A1B2C3"));
  EXPECT_FALSE(address_matches("0013A20040A1B2C3", "serial0/0013A20040A1B2C4"));
  EXPECT_FALSE(address_matches("10.0.0.7", "udp0/10.0.0.7:5000/fwd/0102"));
  EXPECT_FALSE(address_matches("10.0.0.7", "no-prefix"));
  EXPECT_TRUE(address_matches("", "udp0/10.0.0.7:5000/fwd/0102"));  // unbound: anywhere
}

TEST(AdmissionFilters, filter_within_pattern) {
  EXPECT_TRUE(filter_within("a/#", "a/b/c"));
  EXPECT_TRUE(filter_within("a/#", "a"));
  EXPECT_TRUE(filter_within("a/#", "a/#"));
  EXPECT_TRUE(filter_within("a/#", "a/+/c"));
  EXPECT_TRUE(filter_within("#", "x/#"));
  EXPECT_TRUE(filter_within("a/+", "a/b"));
  EXPECT_TRUE(filter_within("a/+", "a/+"));
  EXPECT_TRUE(filter_within("a/b", "a/b"));
  EXPECT_FALSE(filter_within("a/+", "a/#"));
  EXPECT_FALSE(filter_within("a/+", "a/b/c"));
  EXPECT_FALSE(filter_within("a/b", "a/+"));
  EXPECT_FALSE(filter_within("a/b", "a"));
  EXPECT_FALSE(filter_within("a", "a/b"));
  EXPECT_FALSE(filter_within("a/#", "b"));
  EXPECT_FALSE(filter_within("a/b/#", "a/#"));
}

admission two_clients() {
  client_rule bound{"bound", "10.0.0.7", std::vector<std::string>{"sensors/bound/#"},
                    std::vector<std::string>{"cmd/bound/+"}, {}};
  client_rule free{"free", "", std::nullopt, std::nullopt, {}};
  return admission({bound, free});
}

TEST(AdmissionRules, verdicts) {
  const auto a = two_clients();
  EXPECT_EQ(a.size(), 2U);
  EXPECT_EQ(a.check("bound", "udp0/10.0.0.7:1234"), admission_verdict::accepted);
  EXPECT_EQ(a.check("bound", "udp0/10.0.0.8:1234"), admission_verdict::wrong_address);
  EXPECT_EQ(a.check("free", "udp0/10.0.0.8:1234"), admission_verdict::accepted);
  EXPECT_EQ(a.check("stranger", "udp0/10.0.0.7:1234"), admission_verdict::unknown_client);
  EXPECT_EQ(a.check("", "udp0/10.0.0.7:1234"), admission_verdict::unknown_client);
  // QoS -1: only a bound address is "listed"; an unbound rule lists none.
  ASSERT_NE(a.rule_for_address("udp0/10.0.0.7:9"), nullptr);
  EXPECT_EQ(a.rule_for_address("udp0/10.0.0.7:9")->client_id, "bound");
  EXPECT_EQ(a.rule_for_address("udp0/10.0.0.8:9"), nullptr);
}

TEST(AdmissionRules, topic_permissions) {
  const auto a = two_clients();
  const auto* bound = a.rule("bound");
  const auto* free = a.rule("free");
  EXPECT_TRUE(mqttsn::may_publish(bound, "sensors/bound/t"));
  EXPECT_FALSE(mqttsn::may_publish(bound, "sensors/other/t"));
  EXPECT_TRUE(mqttsn::may_subscribe(bound, "cmd/bound/led"));
  EXPECT_TRUE(mqttsn::may_subscribe(bound, "cmd/bound/+"));
  EXPECT_FALSE(mqttsn::may_subscribe(bound, "cmd/bound/#"));
  EXPECT_FALSE(mqttsn::may_subscribe(bound, "#"));
  EXPECT_TRUE(mqttsn::may_publish(free, "anything"));
  EXPECT_TRUE(mqttsn::may_subscribe(free, "#"));
  EXPECT_TRUE(mqttsn::may_publish(nullptr, "x"));
}

// ---- the clients file ----

using gateway::parse_clients_file;

std::string error_of(const std::string& text) {
  try {
    parse_clients_file(text, "F", {{1, "gw/one"}});
  } catch (const gateway::config_error& e) {
    return e.what();
  }
  return "no error";
}

TEST(ClientsFile, every_field) {
  const auto f = parse_clients_file(
      "# comment\n"
      "\n"
      "  kitchen address=10.0.0.7 predefined=5:home/kitchen publish=home/kitchen/# "
      "publish=home/all subscribe=cmd/kitchen/+\n"
      "xbee\taddress=0013a20040a1b2c3\tusername=xb\tpassword=p@ss:word=1\n"
      "v6 address=[2001:DB8:0::7]:5000\n"
      "anywhere\n",
      "F", {{1, "gw/one"}});
  ASSERT_EQ(f.rules.size(), 4U);
  const auto& k = f.rules[0];
  EXPECT_EQ(k.client_id, "kitchen");
  EXPECT_EQ(k.address, "10.0.0.7");
  EXPECT_EQ(k.publish, (std::vector<std::string>{"home/kitchen/#", "home/all"}));
  EXPECT_EQ(k.subscribe, (std::vector<std::string>{"cmd/kitchen/+"}));
  ASSERT_NE(k.predefined.name(5), nullptr);
  EXPECT_EQ(*k.predefined.name(5), "home/kitchen");
  ASSERT_NE(k.predefined.name(1), nullptr);  // the gateway's own too
  EXPECT_EQ(f.rules[1].address, "0013A20040A1B2C3");
  EXPECT_EQ(f.rules[2].address, "[2001:db8::7]:5000");
  EXPECT_EQ(f.rules[3].address, "");
  EXPECT_FALSE(f.rules[3].publish);
  EXPECT_FALSE(f.rules[3].subscribe);
  EXPECT_EQ(f.rules[3].predefined.size(), 1U);
  ASSERT_EQ(f.logins.size(), 1U);
  EXPECT_EQ(f.logins.at("xbee"), (gateway::credentials{"xb", "p@ss:word=1"}));
  EXPECT_TRUE(f.has_secrets);
}

TEST(ClientsFile, errors_name_the_line_and_never_quote_a_password) {
  EXPECT_EQ(error_of("a\na\n"), "F: line 2: client id 'a' is listed twice (first on line 1)");
  EXPECT_EQ(error_of("a colour=red\n"),
            "F: line 1: unknown field 'colour' (address, username, password, predefined, publish, subscribe)");
  EXPECT_EQ(error_of("a address\n"), "F: line 1: 'address' is not FIELD=VALUE");
  EXPECT_EQ(error_of("a address=\n"), "F: line 1: address: has no value");
  EXPECT_EQ(error_of("a address=10.0.0.300\n"),
            "F: line 1: address: '10.0.0.300' is not an address (IPv4, [IPv6], either with :PORT, or a "
            "16-hex-digit XBee 64-bit address)");
  EXPECT_EQ(error_of("a address=10.0.0.1:0\n"), "F: line 1: address: port '0' in '10.0.0.1:0' is not in 1..65535");
  EXPECT_EQ(error_of("a address=1.2.3.4 address=1.2.3.5\n"), "F: line 1: address: is given twice");
  EXPECT_EQ(error_of("a publish=a/#/b\n"), "F: line 1: publish: 'a/#/b' is not a valid MQTT topic filter");
  EXPECT_EQ(error_of("a predefined=1:x\n"), "F: line 1: predefined: id 1 is already defined (here or for the gateway)");
  EXPECT_EQ(error_of("a predefined=2:gw/one\n"),
            "F: line 1: predefined: topic 'gw/one' is already defined (here or for the gateway)");
  EXPECT_EQ(error_of("a predefined=70000:x\n"), "F: line 1: predefined: id '70000' is not an integer in 1..65534");
  EXPECT_EQ(error_of("a predefined=3\n"), "F: line 1: predefined: '3' is not ID:TOPIC");
  EXPECT_EQ(error_of("a password=secret1\n"), "F: line 1: password needs username");
  EXPECT_EQ(error_of("username=x\n"), "F: line 1: the line must start with the client id, not 'username=x'");
  EXPECT_EQ(error_of("# only comments\n\n"), "no error");
}

TEST(ClientsFile, the_example_in_etc_parses) {
  std::ifstream in(std::string(MQTTSN_SOURCE_DIR) + "/etc/clients.example");
  ASSERT_TRUE(in);
  std::ostringstream text;
  text << in.rdbuf();
  const auto f = parse_clients_file(text.str(), "etc/clients.example", {});
  ASSERT_EQ(f.rules.size(), 4U);
  EXPECT_EQ(f.rules[2].address, "[fd00::17]:47000");
  EXPECT_FALSE(f.has_secrets);
}

TEST(CredentialsFile, lines_and_errors) {
  const auto c = gateway::parse_credentials(
      "# id user password\n"
      "s1 u1 pass word with blanks  \n"
      "\ts2\tu2\tp2\r\n",
      "C");
  ASSERT_EQ(c.size(), 2U);
  EXPECT_EQ(c.at("s1"), (gateway::credentials{"u1", "pass word with blanks"}));
  EXPECT_EQ(c.at("s2"), (gateway::credentials{"u2", "p2"}));
  auto error = [](const std::string& text) -> std::string {
    try {
      gateway::parse_credentials(text, "C");
    } catch (const gateway::config_error& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_EQ(error("s1 u1\n"), "C: line 1: not CLIENT_ID USER PASSWORD");
  EXPECT_EQ(error("s1 u1 secret-a\ns1 u2 secret-b\n"), "C: line 2: client id 's1' is listed twice");
}

}  // namespace
