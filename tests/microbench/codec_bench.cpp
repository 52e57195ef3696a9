// Codec microbenchmarks (Google Benchmark): decode and encode of the messages a busy gateway
// handles most (PUBLISH at each QoS and payload size, PUBACK, CONNECT, REGISTER, SUBSCRIBE,
// PINGREQ). Built by default, never run by ctest: run build/bin/mqttsn-codec-bench.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "mqttsn/codec.hpp"

namespace {

mqttsn::message publish_of(std::size_t payload, mqttsn::qos q) {
  mqttsn::publish p;
  p.q = q;
  p.id_type = q == mqttsn::qos::minus_one ? mqttsn::topic_id_type::predefined : mqttsn::topic_id_type::normal;
  p.id = 0x0101;
  p.mid = q == mqttsn::qos::at_most_once || q == mqttsn::qos::minus_one ? 0 : 0x1234;
  p.data.assign(payload, 0x5A);
  return p;
}

std::vector<mqttsn::message> common_messages() {
  return {
      publish_of(32, mqttsn::qos::at_least_once),
      mqttsn::puback{0x0101, 0x1234, mqttsn::return_code::accepted},
      mqttsn::connect{false, true, 60, "sensor-000123"},
      mqttsn::register_{0, 7, "building/3/floor/2/room/17/temperature"},
      mqttsn::subscribe{false, mqttsn::qos::at_least_once, mqttsn::topic_id_type::normal, 9, "cmd/sensor-000123/#", 0},
      mqttsn::pingreq{},
  };
}

void decode_publish(benchmark::State& state) {
  const auto q = static_cast<mqttsn::qos>(static_cast<std::int8_t>(state.range(1)));
  const auto frame = mqttsn::encode(publish_of(static_cast<std::size_t>(state.range(0)), q));
  for (auto _ : state) {
    auto m = mqttsn::decode(frame);
    benchmark::DoNotOptimize(m);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * frame.size()));
}
BENCHMARK(decode_publish)->ArgsProduct({{8, 32, 256, 1024}, {-1, 0, 1, 2}});

void encode_publish(benchmark::State& state) {
  const auto q = static_cast<mqttsn::qos>(static_cast<std::int8_t>(state.range(1)));
  const auto m = publish_of(static_cast<std::size_t>(state.range(0)), q);
  mqttsn::bytes out;
  out.reserve(2048);
  for (auto _ : state) {
    out.clear();
    mqttsn::encode(m, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * out.size()));
}
BENCHMARK(encode_publish)->ArgsProduct({{8, 32, 256, 1024}, {-1, 0, 1, 2}});

// encode(m) returning a new vector, as most callers use it.
void encode_publish_alloc(benchmark::State& state) {
  const auto m = publish_of(static_cast<std::size_t>(state.range(0)), mqttsn::qos::at_least_once);
  for (auto _ : state) {
    auto frame = mqttsn::encode(m);
    benchmark::DoNotOptimize(frame.data());
  }
}
BENCHMARK(encode_publish_alloc)->Arg(32)->Arg(1024);

// Each common message by name: decode of its frame, encode into a reused buffer.
void decode_common(benchmark::State& state) {
  const auto msgs = common_messages();
  const auto frame = mqttsn::encode(msgs[static_cast<std::size_t>(state.range(0))]);
  state.SetLabel(mqttsn::name_of(mqttsn::type_of(msgs[static_cast<std::size_t>(state.range(0))])));
  for (auto _ : state) {
    auto m = mqttsn::decode(frame);
    benchmark::DoNotOptimize(m);
  }
}
BENCHMARK(decode_common)->DenseRange(0, 5);

void encode_common(benchmark::State& state) {
  const auto msgs = common_messages();
  const auto& m = msgs[static_cast<std::size_t>(state.range(0))];
  state.SetLabel(mqttsn::name_of(mqttsn::type_of(m)));
  mqttsn::bytes out;
  out.reserve(512);
  for (auto _ : state) {
    out.clear();
    mqttsn::encode(m, out);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(encode_common)->DenseRange(0, 5);

// A malformed frame (length mismatch) is rejected without allocating.
void decode_malformed(benchmark::State& state) {
  const std::vector<std::uint8_t> frame{0x09, 0x0C, 0x20, 0x01, 0x01, 0x12};
  for (auto _ : state) {
    auto m = mqttsn::decode(frame);
    benchmark::DoNotOptimize(m);
  }
}
BENCHMARK(decode_malformed);

}  // namespace

BENCHMARK_MAIN();
