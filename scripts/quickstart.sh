#!/usr/bin/env bash
# From a fresh Debian 12 to a running gateway: installs the dependencies, builds build/, starts a
# Mosquitto broker on 127.0.0.1:1883 unless something already listens there (that broker belongs to
# this script and stops with it), then runs the gateway in the foreground:
#   MQTT-SN over UDP on 127.0.0.1:1884  ->  MQTT 3.1.1 broker tcp://127.0.0.1:1883
# Any arguments are passed on to mqttsn-gateway. Stop with Ctrl-C.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

broker_host=127.0.0.1
broker_port=1883
gateway=build/bin/mqttsn-gateway

bash scripts/install-deps.sh
bash scripts/build.sh build


listening() {
  (exec 3<>"/dev/tcp/$broker_host/$broker_port") 2>/dev/null
}

broker_pid=
work=$(mktemp -d)
cleanup() {
  if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
    kill "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if listening; then
  echo "quickstart: a broker already listens on $broker_host:$broker_port; using it"
else
  mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
  cat >"$work/mosquitto.conf" <<EOF
# Written by scripts/quickstart.sh: loopback only, anonymous, nothing kept on disk.
listener $broker_port $broker_host
allow_anonymous true
persistence false
EOF
  # As root Mosquitto drops to its own user, so the log is opened here, by the shell.
  "$mosquitto" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
  broker_pid=$!
  for _ in $(seq 50); do
    listening && break
    if ! kill -0 "$broker_pid" 2>/dev/null; then
      echo "quickstart: mosquitto exited:" >&2
      cat "$work/mosquitto.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  if ! listening; then
    echo "quickstart: mosquitto did not listen on $broker_host:$broker_port within 5s" >&2
    cat "$work/mosquitto.log" >&2
    exit 1
  fi
  echo "quickstart: started mosquitto (pid $broker_pid) on $broker_host:$broker_port; it stops with this script"
fi

echo "quickstart: MQTT-SN clients: UDP 127.0.0.1:1884; watch the broker with:" \
  "mosquitto_sub -h $broker_host -p $broker_port -t '#' -v"
"$gateway" --broker "tcp://$broker_host:$broker_port" --udp 127.0.0.1:1884 "$@"
