#!/usr/bin/env bash
# Throughput of the serial path, as a fraction of the line rate (issue #5). For each framing and
# QoS: a Mosquitto on loopback, mqttsn-serial-sim on a pty paced at 10 bits per byte of BAUD (so
# the line rate is BAUD/10 bytes/s), mqttsn-gateway --serial on that pty, and one MQTT-SN client
# (mqttsn-pub -l) publishing COUNT messages of PAYLOAD bytes through the simulator. Counts the
# messages at the broker (mosquitto_sub, with the time of each) and the bytes on the serial line
# (the simulator's counters). Nothing leaves loopback.
#
#   scripts/serial-throughput.sh [BUILD_DIR]      (default build/; run scripts/build.sh first)
#   COUNT=1000 PAYLOAD=32 BAUD=115200 FRAMINGS="xbee-api2 raw" QOS_LEVELS="0 1" MODE=aggregating
#   KEEP=1: keep the logs of every process (the directory is printed)
#
# Per row: messages received at the broker and lost (QoS 0 datagrams the client sends faster than
# the line carries overflow the simulator's UDP socket, as they would a real bridge's buffer),
# their rate (first to last arrival at the broker), the bytes the line carried towards the
# gateway per PUBLISH that crossed it (everything sent counts: the session's set-up frames and,
# with XBee, the 0x8B transmit statuses of the gateway's frames), that direction's bytes/s
# (msgs/s x frame size) and its fraction of the line rate; and the bytes per message the gateway
# wrote back (PUBACKs for QoS 1). The machine's load shows in the figures: compare rows of one run.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
bin="$build/bin"
COUNT=${COUNT:-1000}
PAYLOAD=${PAYLOAD:-32}
BAUD=${BAUD:-115200}
FRAMINGS=${FRAMINGS:-"xbee-api2 raw"}
QOS_LEVELS=${QOS_LEVELS:-"0 1"}
MODE=${MODE:-aggregating}

for b in mqttsn-serial-sim mqttsn-gateway mqttsn-pub; do
  [ -x "$bin/$b" ] || { echo "serial-throughput: $bin/$b not found (scripts/build.sh first)" >&2; exit 1; }
done
command -v mosquitto_sub >/dev/null || { echo "serial-throughput: mosquitto_sub not found (scripts/install-deps.sh)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mqttsn-throughput.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then echo "serial-throughput: logs kept in $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

free_port() {  # $1: tcp or udp
  python3 -c "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1]=='udp' else socket.SOCK_STREAM); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])" "$1"
}
wait_for() {  # $1: seconds, then a command; polls every 50 ms
  local until=$((SECONDS + $1)); shift
  until "$@"; do
    [ "$SECONDS" -lt "$until" ] || return 1
    sleep 0.05
  done
}
stop() {  # SIGTERM one of our children and wait for it
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

broker_port=$(free_port tcp)
# `user`: started as root, mosquitto would switch to the user `mosquitto`, who cannot write here.
printf 'listener %s 127.0.0.1\nallow_anonymous true\nuser %s\nlog_type all\nlog_dest stderr\n' \
  "$broker_port" "$(id -un)" > "$tmp/mosquitto.conf"
/usr/sbin/mosquitto -c "$tmp/mosquitto.conf" 2> "$tmp/mosquitto.log" &
pids+=($!)
wait_for 10 grep -q "Opening ipv4 listen socket on port $broker_port" "$tmp/mosquitto.log" 2>/dev/null ||
  { echo "serial-throughput: mosquitto did not start" >&2; exit 1; }

# COUNT payloads of PAYLOAD bytes each, numbered.
seq 1 "$COUNT" | awk -v w="$PAYLOAD" '{ printf "%0" w "d\n", $1 }' > "$tmp/payloads"
line_rate=$((BAUD / 10))
echo "serial-throughput: $COUNT messages of $PAYLOAD bytes, $BAUD baud (line rate $line_rate bytes/s), $MODE mode"
printf '%-10s %-4s %9s %5s %9s %9s %11s %11s %9s %14s\n' framing qos received lost seconds msgs/s line-B/msg \
  line-B/s fraction 'back-B/msg'

for framing in $FRAMINGS; do
  for qos in $QOS_LEVELS; do
    run="$tmp/$framing-q$qos"
    mkdir -p "$run"
    sim_port=$(free_port udp)
    gw_port=$(free_port udp)
    "$bin/mqttsn-serial-sim" --udp "127.0.0.1:$sim_port" --link "$run/line" --framing "$framing" --baud "$BAUD" \
      > "$run/sim.out" 2> "$run/sim.err" &
    sim=$!
    pids+=($sim)
    wait_for 5 test -e "$run/line" || { echo "serial-throughput: simulator did not start" >&2; cat "$run/sim.err" >&2; exit 1; }
    "$bin/mqttsn-gateway" --broker "tcp://127.0.0.1:$broker_port" --udp "127.0.0.1:$gw_port" --mode "$MODE" \
      --stats-interval 0 --serial "$run/line" --serial-framing "$framing" --serial-baud "$BAUD" > "$run/gw.log" 2>&1 &
    gw=$!
    pids+=($gw)
    wait_for 10 grep -q "connected to broker" "$run/gw.log" && wait_for 10 grep -q "serial0/: opened" "$run/gw.log" ||
      { echo "serial-throughput: gateway did not start" >&2; cat "$run/gw.log" >&2; exit 1; }
    topic="throughput/$framing/$qos"
    sub_id="throughput-sub-$framing-$qos"
    mosquitto_sub -h 127.0.0.1 -p "$broker_port" -i "$sub_id" -t "$topic" -q 1 -C "$COUNT" -F '%U' \
      > "$run/sub.out" 2> "$run/sub.err" &
    sub=$!
    pids+=($sub)
    wait_for 10 grep -q "Received SUBSCRIBE from $sub_id" "$tmp/mosquitto.log" ||
      { echo "serial-throughput: mosquitto_sub did not subscribe" >&2; exit 1; }

    "$bin/mqttsn-pub" -h 127.0.0.1 -p "$sim_port" -i "throughput-$framing-$qos" -k 60 -t "$topic" -q "$qos" -l \
      --retry-interval 5 --retry-count 3 < "$tmp/payloads" 2> "$run/pub.err" ||
      { echo "serial-throughput: mqttsn-pub failed: $(tail -n 1 "$run/pub.err")" >&2; exit 1; }
    # All COUNT messages, or 10 s after the publisher finished (QoS 0 may lose some: counted).
    wait_for 10 sh -c "[ \$(wc -l < '$run/sub.out') -ge $COUNT ]" || true
    stop "$sub"
    stop "$gw"
    stop "$sim"
    # "mqttsn-serial-sim: to gateway F frames B bytes; from gateway F frames B bytes"
    read -r to_gw back < <(awk '/to gateway/ { print $6, $12 }' "$run/sim.err")
    # PUBLISHes that crossed the line (the gateway's counters, logged when it stops).
    line_msgs=$(grep -o 'publishes_in=[0-9]*' "$run/gw.log" | tail -n 1 | cut -d= -f2)
    awk -v count="$COUNT" -v line_msgs="${line_msgs:-0}" -v to_gw="$to_gw" -v back="$back" -v rate="$line_rate" \
        -v framing="$framing" -v qos="$qos" '
      { t[NR] = $1 }
      END {
        n = NR
        secs = n > 1 ? t[n] - t[1] : 0
        per_s = secs > 0 ? (n - 1) / secs : 0
        per_frame = line_msgs > 0 ? to_gw / line_msgs : 0  # every byte sent, set-up and 0x8B included
        back_per_msg = line_msgs > 0 ? back / line_msgs : 0
        printf "%-10s %-4s %9d %5d %9.2f %9.1f %11.1f %11.0f %8.1f%% %14.1f\n", framing, qos, n, count - n, secs,
               per_s, per_frame, per_s * per_frame, 100 * per_s * per_frame / rate, back_per_msg
      }' "$run/sub.out"
  done
done
