// Raw MQTT-SN length framing. The rules for a valid Length are listed next to raw_deframer in
// raw.hpp; examine() is the one place that applies them.
#include "transports/framing/raw.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace transports::framing {
namespace {

constexpr std::uint8_t long_length_marker = 0x01;
constexpr std::size_t long_length_size = 3;
constexpr std::size_t min_long_frame_size = 4;  // 01 HH LL + MsgType
constexpr std::uint8_t encapsulated_type = 0xFE;
constexpr std::size_t min_encapsulation_header = 3;  // Length, 0xFE, Ctrl

}  // namespace

raw_deframer::raw_deframer(std::size_t max_frame_size)
    : max_frame_size_(std::clamp(max_frame_size, raw_min_frame_size, raw_max_frame_size)) {
  buffer_.reserve(max_frame_size_);
}

std::size_t raw_deframer::feed(std::span<const std::uint8_t> input, std::vector<bytes>& frames) {
  const std::size_t before = frames.size();
  for (const std::uint8_t byte : input) {
    step(byte, frames);
    drain_rescan(frames);
  }
  return frames.size() - before;
}

std::size_t raw_deframer::on_idle(std::vector<bytes>& frames) {
  const std::size_t before = frames.size();
  while (mid_frame()) {
    ++counters_.stalled;
    drop_first_byte();
    drain_rescan(frames);
  }
  return frames.size() - before;
}

void raw_deframer::reset() noexcept {
  buffer_.clear();
  segment_ = 0;
  frame_size_ = 0;
  rescan_.clear();
  rescan_pos_ = 0;
}

void raw_deframer::step(std::uint8_t byte, std::vector<bytes>& frames) {
  buffer_.push_back(byte);
  switch (examine()) {
    case verdict::need_more: return;
    case verdict::complete:
      ++counters_.frames_ok;
      frames.push_back(buffer_);
      buffer_.clear();
      segment_ = 0;
      frame_size_ = 0;
      return;
    case verdict::invalid:
      ++counters_.bad_length;
      drop_first_byte();
      return;
  }
}

// Decides as early as the buffered bytes allow, so a bad Length is dropped at its first byte where
// possible and the buffer never grows beyond max_frame_size_.
raw_deframer::verdict raw_deframer::examine() {
  if (frame_size_ != 0) {
    return buffer_.size() == frame_size_ ? verdict::complete : verdict::need_more;
  }

  const std::size_t have = buffer_.size() - segment_;  // >= 1: step() just appended a byte
  const std::uint8_t first = buffer_[segment_];
  if (first == 0) return verdict::invalid;

  if (first == long_length_marker) {
    // Behind encapsulation headers even the shortest long frame may not fit: say so now, before
    // its Length bytes fill the buffer up to the bound.
    if (segment_ + min_long_frame_size > max_frame_size_) return verdict::invalid;
    if (have < long_length_size) return verdict::need_more;
    const std::size_t length =
        (static_cast<std::size_t>(buffer_[segment_ + 1]) << 8U) | buffer_[segment_ + 2];
    if (length < min_long_frame_size || segment_ + length > max_frame_size_) {
      return verdict::invalid;
    }
    frame_size_ = segment_ + length;  // > buffer size: the MsgType is still to come
    return verdict::need_more;
  }

  const std::size_t length = first;
  if (segment_ + length > max_frame_size_) return verdict::invalid;
  if (have < 2) return verdict::need_more;
  if (buffer_[segment_ + 1] != encapsulated_type) {
    frame_size_ = segment_ + length;
    return buffer_.size() == frame_size_ ? verdict::complete : verdict::need_more;
  }
  // Forwarder encapsulation: its Length covers its own header; the carried frame follows it.
  if (length < min_encapsulation_header ||
      segment_ + length + raw_min_frame_size > max_frame_size_) {
    return verdict::invalid;
  }
  if (have == length) segment_ += length;
  return verdict::need_more;
}

// Drops the first buffered byte and queues the others to be read again, ahead of any bytes still
// queued: the next frame may start anywhere after a Length that turned out to be wrong.
void raw_deframer::drop_first_byte() {
  ++counters_.bytes_skipped;
  bytes next(buffer_.begin() + 1, buffer_.end());
  next.insert(next.end(), rescan_.begin() + static_cast<std::ptrdiff_t>(rescan_pos_),
              rescan_.end());
  rescan_ = std::move(next);
  rescan_pos_ = 0;
  buffer_.clear();
  segment_ = 0;
  frame_size_ = 0;
}

void raw_deframer::drain_rescan(std::vector<bytes>& frames) {
  // step() may replace rescan_ (drop_first_byte), so read by index and re-check the size each time.
  while (rescan_pos_ < rescan_.size()) step(rescan_[rescan_pos_++], frames);
  rescan_.clear();
  rescan_pos_ = 0;
}

}  // namespace transports::framing
