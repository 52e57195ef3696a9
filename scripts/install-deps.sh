#!/usr/bin/env bash
# Installs every build and test dependency of the gateway from Debian 12 (bookworm) packages.
# Idempotent: when everything is present it prints one line and touches nothing (no apt-get update).
# Never leaves a Mosquitto system service running: tests and quickstart start their own on loopback.
set -euo pipefail

packages=(
  # toolchain and build
  build-essential g++ cmake ninja-build pkg-config
  clang clang-14 libclang-rt-14-dev  # libFuzzer and clang's sanitizer runtimes
  # tests, benchmarks, coverage
  googletest libgtest-dev libgmock-dev libbenchmark-dev gcovr
  # libraries of the daemon (transports, upstream, persistence, logging)
  libboost-dev libboost-program-options-dev libserialport-dev
  libpaho-mqtt-dev libpaho-mqttpp-dev libsqlite3-dev libspdlog-dev
  libssl-dev  # the TLS check that says why a broker's certificate is refused
  # integration tests: a real broker and its clients, pty pairs
  mosquitto mosquitto-clients socat
  openssl  # test certificates, made by the tests themselves
  # benchmark plots (scripts/plot-bench.sh)
  gnuplot-nox jq
)

is_installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

missing=()
for pkg in "${packages[@]}"; do
  is_installed "$pkg" || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all dependencies present (${#packages[@]} Debian packages)"
  exit 0
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "install-deps: missing ${missing[*]}; run as root or install sudo" >&2
    exit 1
  fi
fi

mosquitto_was_installed=false
is_installed mosquitto && mosquitto_was_installed=true

# apt and dpkg chatter goes to a log that is shown only when something fails.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { "${as_root[@]}" apt-get update -qq &&
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "install-deps: failed to install: ${missing[*]}" >&2
  exit 1
fi

# The package enables and starts a system-wide broker; this project only wants the binary.
if [ "$mosquitto_was_installed" = false ]; then
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    "${as_root[@]}" systemctl disable --now --quiet mosquitto >/dev/null 2>&1 || true
  elif [ -x /etc/init.d/mosquitto ]; then
    # No systemd (a container): a policy-rc.d may already have kept it from starting.
    "${as_root[@]}" /etc/init.d/mosquitto stop >/dev/null 2>&1 || true
    "${as_root[@]}" update-rc.d mosquitto disable >/dev/null 2>&1 || true
  fi
fi

echo "install-deps: installed ${#missing[@]} Debian package(s): ${missing[*]}"
