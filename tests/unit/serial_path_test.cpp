// Which way the serial transport opens a device: libserialport for real ttys, the termios fallback
// for ptys (Debian's libserialport 0.1.1 refuses them) and for anything libserialport does not know.
// The decision is pure, so the libserialport path is covered here although CI only has ptys.
#include "transports/serial_path.hpp"

#include <fcntl.h>
#include <pty.h>
#include <unistd.h>

#include <filesystem>
#include <gtest/gtest.h>
#include <string>

namespace transports {
namespace {

serial_device_facts facts(std::string path, unsigned major, bool known, bool chr = true) {
  return serial_device_facts{std::move(path), chr, major, known};
}

TEST(SerialPath, real_ttys_that_libserialport_knows_take_libserialport) {
  // USB-serial (FTDI/CP210x: major 188), CDC-ACM (166), Pi PL011 (204), 8250 UART (4).
  EXPECT_EQ(choose_open_path(facts("/dev/ttyUSB0", 188, true)), serial_open_path::libserialport);
  EXPECT_EQ(choose_open_path(facts("/dev/ttyACM0", 166, true)), serial_open_path::libserialport);
  EXPECT_EQ(choose_open_path(facts("/dev/ttyAMA0", 204, true)), serial_open_path::libserialport);
  EXPECT_EQ(choose_open_path(facts("/dev/ttyS0", 4, true)), serial_open_path::libserialport);
}

TEST(SerialPath, ptys_take_the_fallback_by_name_or_major) {
  EXPECT_EQ(choose_open_path(facts("/dev/pts/3", 136, false)), serial_open_path::fallback);
  // Even if a patched libserialport accepted it, a pty goes through termios.
  EXPECT_EQ(choose_open_path(facts("/dev/pts/3", 136, true)), serial_open_path::fallback);
  EXPECT_EQ(choose_open_path(facts("/dev/some-pty-node", 137, true)), serial_open_path::fallback);
  EXPECT_EQ(choose_open_path(facts("/dev/ttyp0", 3, true)), serial_open_path::fallback);
  EXPECT_EQ(choose_open_path(facts("/dev/ptmx", 5, true)), serial_open_path::fallback);
  EXPECT_TRUE(is_pty_major(136));
  EXPECT_TRUE(is_pty_major(143));
  EXPECT_FALSE(is_pty_major(188));
  EXPECT_TRUE(is_pty_name("/dev/pts/0"));
  EXPECT_FALSE(is_pty_name("/dev/ttyUSB0"));
  EXPECT_FALSE(is_pty_name("/dev/ttyS0"));
}

TEST(SerialPath, devices_libserialport_refuses_take_the_fallback) {
  // A tty driver without sysfs/TIOCMGET that libserialport 0.1.1 does not list.
  EXPECT_EQ(choose_open_path(facts("/dev/ttyGS0", 244, false)), serial_open_path::fallback);
  EXPECT_EQ(choose_open_path(facts("/tmp/not-a-device", 0, false, false)), serial_open_path::fallback);
}

TEST(SerialPath, a_real_pty_through_a_symlink_is_resolved_and_takes_the_fallback) {
  int master = -1;
  int slave = -1;
  char name[256] = {};
  ASSERT_EQ(::openpty(&master, &slave, name, nullptr, nullptr), 0);
  const auto link = std::filesystem::path(::testing::TempDir()) / ("mqttsn-serial-path-" + std::to_string(::getpid()));
  std::filesystem::remove(link);
  std::filesystem::create_symlink(name, link);
  std::string error;
  const auto f = probe_serial_device(link.string(), error);
  ASSERT_TRUE(f) << error;
  EXPECT_EQ(f->resolved, std::string(name));
  EXPECT_TRUE(f->character_device);
  EXPECT_TRUE(is_pty_major(f->major)) << f->major;
  EXPECT_FALSE(f->libserialport_knows);  // libserialport 0.1.1 refuses ptys
  EXPECT_EQ(choose_open_path(*f), serial_open_path::fallback);
  std::filesystem::remove(link);
  ::close(slave);
  ::close(master);
}

TEST(SerialPath, a_missing_device_is_reported) {
  std::string error;
  EXPECT_FALSE(probe_serial_device("/dev/does-not-exist-mqttsn", error));
  EXPECT_EQ(error, "No such file or directory");
}

}  // namespace
}  // namespace transports
