// Latency histogram for mqttsn-bench: fixed memory (2048 counters), log-linear buckets with 32
// sub-buckets per power of two, so every recorded value is reported within ~3% of its true value.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace bench {

class histogram {
 public:
  static constexpr unsigned sub_bits = 5;  // 32 sub-buckets per power of two
  static constexpr std::size_t buckets = std::size_t{60} << sub_bits;

  void record(std::uint64_t v) noexcept {
    ++counts_[index(v)];
    ++total_;
    if (v > max_) max_ = v;
  }
  void merge(const histogram& o) noexcept {
    for (std::size_t i = 0; i < buckets; ++i) counts_[i] += o.counts_[i];
    total_ += o.total_;
    if (o.max_ > max_) max_ = o.max_;
  }
  std::uint64_t count() const noexcept { return total_; }
  std::uint64_t max() const noexcept { return max_; }

  // The value at quantile q (0..1): the middle of the bucket holding that rank; 0 when empty.
  std::uint64_t quantile(double q) const noexcept {
    if (total_ == 0) return 0;
    auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total_) + 0.5);
    if (rank < 1) rank = 1;
    if (rank > total_) rank = total_;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return middle(i);
    }
    return max_;
  }

  static std::size_t index(std::uint64_t v) noexcept {
    constexpr std::uint64_t sub = std::uint64_t{1} << sub_bits;
    if (v < sub) return static_cast<std::size_t>(v);
    const auto msb = static_cast<unsigned>(63 - std::countl_zero(v));
    const unsigned shift = msb - sub_bits;
    const std::size_t i = (std::size_t{shift} + 1) * sub + static_cast<std::size_t>((v >> shift) & (sub - 1));
    return i < buckets ? i : buckets - 1;
  }
  static std::uint64_t middle(std::size_t i) noexcept {
    constexpr std::size_t sub = std::size_t{1} << sub_bits;
    if (i < sub) return i;
    const std::size_t shift = i / sub - 1;
    const std::uint64_t low = (std::uint64_t{sub} + (i % sub)) << shift;
    return low + ((std::uint64_t{1} << shift) >> 1);
  }

 private:
  std::array<std::uint64_t, buckets> counts_{};
  std::uint64_t total_ = 0;
  std::uint64_t max_ = 0;
};

}  // namespace bench
