#!/usr/bin/env bash
# The measurements of BENCHMARKS.md, one mqttsn-bench command each, JSON results and PNG plots in
# OUT_DIR (default bench-results/). Each command starts its own Mosquitto and gateway on loopback.
# usage: scripts/bench-suite.sh [OUT_DIR]
#   BUILD=build  CLIENTS=50  SECONDS_EACH=5  REPEAT=3  BIG_CLIENTS=100000  TRANSPARENT_CLIENTS="1000 5000"
#   FANOUT_CLIENTS=200
# Throughput and latency runs alternate gateway and direct REPEAT times (--repeat) and report the
# repetition with the median gateway/direct ratio: on a shared machine that is what holds still.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/bench-results}
bench=$root/${BUILD:-build}/bin/mqttsn-bench
clients=${CLIENTS:-50}
secs=${SECONDS_EACH:-5}
repeat=${REPEAT:-3}
mkdir -p "$out"
run() {  # name, args...
  local name=$1
  shift
  echo "== $name: mqttsn-bench $*" | tee "$out/$name.txt"
  "$bench" "$@" --json "$out/$name.json" 2>&1 | tee -a "$out/$name.txt"
}

for mode in aggregating transparent; do
  for q in 0 1; do
    # Max throughput: QoS 1 one message in flight per client, QoS 0 a window of 2,000 messages (or
    # 4 x clients when more), so the broker, not the window, is the limit.
    run "$mode-qos$q-max" -c "$clients" -q "$q" -t "$secs" --mode "$mode" --direct --repeat "$repeat"
    half=$(jq '.runs.gateway.delivered_per_s / 2 | floor' "$out/$mode-qos$q-max.json")
    # Latency at half of the gateway's max throughput, the direct baseline at the same rate.
    run "$mode-qos$q-half" -c "$clients" -q "$q" -t "$secs" --rate "$half" --mode "$mode" --direct --repeat "$repeat"
  done
done
# Subscribe (broker -> sensors): our MQTT publisher publishes to one topic per subscribing client,
# measured at the clients; then fan-out: one topic to every client.
for mode in aggregating transparent; do
  for q in 0 1; do
    run "$mode-sub-qos$q-max" --workload subscribe -c "$clients" -q "$q" -t "$secs" --mode "$mode" --direct --repeat "$repeat"
  done
  run "$mode-fanout-qos1-max" --workload subscribe --topics 1 -c "${FANOUT_CLIENTS:-200}" -q 1 -t "$secs" --mode "$mode" \
    --direct --repeat "$repeat"
done
# Many idle clients over one broker connection, publishing at a low total rate.
run "aggregating-${BIG_CLIENTS:-100000}" -c "${BIG_CLIENTS:-100000}" -q 0 --rate 1000 -t 10 --idle 10 \
  --connect-timeout 300 --mode aggregating
# Transparent mode: one broker connection per client.
for n in ${TRANSPARENT_CLIENTS:-1000 5000}; do
  run "transparent-$n" -c "$n" -q 0 --rate 100 -t 5 --idle 5 --connect-timeout 300 --retry 10 --mode transparent
done
"$root/scripts/plot-bench.sh" "$out"/*.json
