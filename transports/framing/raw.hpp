// Raw serial framing: bare MQTT-SN messages back to back on a byte stream, each delimited by its
// own Length field (mqtt-sn-tools' serial bridge and the Arduino MQTT-SN libraries speak this).
// Pure and standard-library only: no I/O, no clock, no exceptions.
//
// Limits of length-only framing: there is no start marker and no checksum. A corrupted or lost
// length byte makes the deframer read the wrong number of bytes, and it stays out of step until
// garbage that no Length field can describe (0x00, a long form below 4, a frame above the maximum)
// makes it skip bytes, or until the line goes quiet and the transport calls on_idle(). A corrupted
// byte inside a frame is not detected here at all (mqttsn::decode catches only some of it). Use
// XBee API framing (checksum, and in API mode 2 a start byte that never occurs inside a frame) on
// noisy links.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace transports::framing {

using bytes = std::vector<std::uint8_t>;

inline constexpr std::size_t raw_default_max_frame_size = 1024;
inline constexpr std::size_t raw_max_frame_size = 65535;  // what the long Length form can declare
inline constexpr std::size_t raw_min_frame_size = 2;      // Length + MsgType

struct raw_deframer_counters {
  std::uint64_t frames_ok = 0;
  std::uint64_t bytes_skipped = 0;  // every byte dropped, whatever the reason
  // Length fields rejected: 0x00, a long form (01 HH LL) declaring < 4, a frame above the maximum,
  // or a forwarder encapsulation header declaring < 3.
  std::uint64_t bad_length = 0;
  std::uint64_t stalled = 0;  // partial frames dropped by on_idle()

  bool operator==(const raw_deframer_counters&) const = default;
};

// Splits a byte stream into MQTT-SN frames, accepting any split of the stream across feed() calls.
// A frame starts with its Length: one byte `LL` (2..255), or `01 HH LL` (4..65535, big-endian). A
// forwarder encapsulation (MsgType 0xFE behind a one-byte Length, spec §5.5) declares only its own
// header, so the frame it carries follows with its own Length and belongs to the same frame.
// Each emitted frame includes its Length bytes, ready for mqttsn::decode. A Length that cannot be
// right drops the first buffered byte and tries again from the next one (counted). Memory is
// bounded by max_frame_size.
class raw_deframer {
 public:
  // max_frame_size counts the whole frame, Length included; clamped to 2..65535.
  explicit raw_deframer(std::size_t max_frame_size = raw_default_max_frame_size);

  // Appends every frame completed by `input` to `frames`; returns how many it appended.
  std::size_t feed(std::span<const std::uint8_t> input, std::vector<bytes>& frames);

  // The line has been quiet longer than the inter-byte gap: the partial frame will not complete.
  // Drops its first byte (counted as stalled and skipped) and reads the rest again, repeatedly,
  // until nothing partial is left; frames found in those bytes are appended.
  std::size_t on_idle(std::vector<bytes>& frames);

  // Forgets any partial frame (e.g. after the port was reopened). Counters are kept.
  void reset() noexcept;

  [[nodiscard]] const raw_deframer_counters& counters() const noexcept { return counters_; }
  [[nodiscard]] std::size_t max_frame_size() const noexcept { return max_frame_size_; }
  [[nodiscard]] bool mid_frame() const noexcept { return !buffer_.empty(); }
  [[nodiscard]] std::size_t buffered() const noexcept { return buffer_.size(); }

 private:
  enum class verdict : std::uint8_t { need_more, complete, invalid };

  void step(std::uint8_t byte, std::vector<bytes>& frames);
  verdict examine();
  void drop_first_byte();
  void drain_rescan(std::vector<bytes>& frames);

  std::size_t max_frame_size_;
  bytes buffer_;                // the frame being read, from its first Length byte
  std::size_t segment_ = 0;     // where the Length field being read starts (after FE headers)
  std::size_t frame_size_ = 0;  // total size once known, else 0
  bytes rescan_;                // bytes after a dropped byte, still to be read again
  std::size_t rescan_pos_ = 0;
  raw_deframer_counters counters_;
};

}  // namespace transports::framing
