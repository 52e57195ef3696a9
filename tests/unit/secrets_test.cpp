// Secrets from files (gateway/secrets): the first line is the secret, an empty or missing file is a
// one-line error naming the key, a world-readable file is warned about, and loading the broker
// settings reads only the files the configuration names.
#include "gateway/secrets.hpp"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace gateway {
namespace {

std::string file_with(const std::string& name, const std::string& text, mode_t mode) {
  const auto path = ::testing::TempDir() + "mqttsn_secrets_" + name;
  std::ofstream(path, std::ios::trunc) << text;
  ::chmod(path.c_str(), mode);
  return path;
}

std::string error_of(const std::string& key, const std::string& path) {
  try {
    read_secret_file(key, path);
  } catch (const config_error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Secrets, the_first_line_without_its_line_end_is_the_secret) {
  EXPECT_EQ(read_secret_file("--k", file_with("crlf", "pa ss\r\nsecond line\n", 0600)), "pa ss");
  EXPECT_EQ(read_secret_file("--k", file_with("no_newline", "x", 0600)), "x");
}

TEST(Secrets, empty_or_missing_files_are_one_line_errors_naming_the_key) {
  const auto empty = file_with("empty", "\nnot the first line\n", 0600);
  EXPECT_EQ(error_of("--broker-password-file", empty), "--broker-password-file " + empty + ": the first line is empty");
  const auto missing = ::testing::TempDir() + "mqttsn_secrets_absent";
  std::filesystem::remove(missing);
  EXPECT_EQ(error_of("--broker-password-file", missing),
            "--broker-password-file " + missing + ": cannot open (No such file or directory)");
}

TEST(Secrets, a_world_readable_file_gets_a_warning_a_private_one_none) {
  const auto open = file_with("open", "s\n", 0644);
  const auto w = world_readable_warning("--broker-password-file", open);
  ASSERT_TRUE(w);
  EXPECT_EQ(*w, "--broker-password-file " + open + " holds a secret but every user of this machine can read it (chmod o-r " +
                    open + ")");
  EXPECT_FALSE(world_readable_warning("--broker-password-file", file_with("private", "s\n", 0640)));
}

TEST(Secrets, load_broker_secrets_reads_what_the_config_names) {
  config c;
  EXPECT_FALSE(load_broker_secrets(c).gateway);
  c.broker_username = "gw";
  auto s = load_broker_secrets(c);
  ASSERT_TRUE(s.gateway);
  EXPECT_EQ(*s.gateway, (credentials{"gw", ""}));
  c.broker_password_file = file_with("gw_password", "pw\n", 0644);
  c.broker_credentials_file = file_with("creds", "s1 u1 p1\n", 0600);
  s = load_broker_secrets(c);
  EXPECT_EQ(*s.gateway, (credentials{"gw", "pw"}));
  ASSERT_EQ(s.clients.size(), 1U);
  EXPECT_EQ(s.clients.at("s1"), (credentials{"u1", "p1"}));
  ASSERT_EQ(s.warnings.size(), 1U);  // the password file only
  EXPECT_TRUE(s.warnings[0].starts_with("--broker-password-file ")) << s.warnings[0];
}

}  // namespace
}  // namespace gateway
