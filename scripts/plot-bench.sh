#!/usr/bin/env bash
# Turns mqttsn-bench --json files into PNG plots (gnuplot, jq): per second, for every run in the
# file (gateway, direct), delivered msgs/s, latency p50/p99, and the gateway's RSS and CPU.
# usage: scripts/plot-bench.sh RESULT.json [more.json...]      writes RESULT-throughput.png,
#        RESULT-latency.png and RESULT-gateway.png next to each file
set -euo pipefail
command -v gnuplot >/dev/null || { echo "plot-bench: gnuplot missing (scripts/install-deps.sh)" >&2; exit 1; }
command -v jq >/dev/null || { echo "plot-bench: jq missing (scripts/install-deps.sh)" >&2; exit 1; }
[ $# -gt 0 ] || { sed -n '2,5p' "$0" >&2; exit 1; }

for json in "$@"; do
  base=${json%.json}
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  title=$(jq -r '.config | if .workload == "subscribe"
    then "subscribe: \(.clients) subscribers on \(.topics) topic(s), QoS \(.qos), \(.payload) B, rate \(if .rate == 0 then "max" else "\(.rate) publishes/s" end), \(.mode)"
    else "\(.clients) clients, QoS \(.qos), \(.payload) B, rate \(if .rate == 0 then "max" else .rate end), \(.target)" end' "$json")
  runs=$(jq -r '.runs | keys_unsorted[]' "$json")
  for r in $runs; do
    jq -r --arg r "$r" '.runs[$r].series[] | [.t, .delivered, .p50_us, .p99_us, .gateway_rss_kib, .gateway_cpu_pct, .broker_cpu_pct] | @tsv' \
      "$json" > "$tmp/$r.tsv"
  done
  plot_runs() {  # column, label
    local sep="" out=""
    for r in $runs; do
      out+="$sep'$tmp/$r.tsv' using 1:$1 with linespoints title '$r $2'"
      sep=", "
    done
    echo "$out"
  }
  gnuplot <<GP
set terminal pngcairo size 900,500 noenhanced
set grid
set key outside bottom center horizontal
set xlabel "seconds"
set title "$title"
set output "$base-throughput.png"
set ylabel "delivered msgs/s"
set yrange [0:*]
plot $(plot_runs 2 "delivered/s")
set output "$base-latency.png"
set ylabel "end-to-end latency (us)"
set logscale y
set yrange [*:*]
plot $(plot_runs 3 p50), $(plot_runs 4 p99)
unset logscale y
set output "$base-gateway.png"
set ylabel "RSS (KiB)"
set y2label "CPU %"
set y2tics
set yrange [0:*]
set y2range [0:*]
plot '$tmp/gateway.tsv' using 1:5 with lines title 'gateway RSS KiB' axes x1y1, \
     '$tmp/gateway.tsv' using 1:6 with lines title 'gateway CPU %' axes x1y2, \
     '$tmp/gateway.tsv' using 1:7 with lines title 'broker CPU %' axes x1y2
GP
  echo "plot-bench: $base-throughput.png $base-latency.png $base-gateway.png"
  rm -rf "$tmp"
  trap - EXIT
done
