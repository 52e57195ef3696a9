#!/usr/bin/env bash
# How long a gateway restart takes to restore N stored sessions (issue #8).
# Makes one real sleeping session (a QoS 1 subscriber with 5 buffered messages) through the
# gateway, copies its rows to N client ids in the SQLite store, then starts the gateway on that
# store RUNS times per mode and prints its "restored ..." log line (it says the time taken).
# Loopback only; starts its own Mosquitto. Usage: scripts/restore-bench.sh [N] [RUNS]
set -euo pipefail
N=${1:-10000}; RUNS=${2:-3}; BIN=${BUILD:-build}/bin
dir=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
bport=$(port); uport=$(port)
mosquitto -p "$bport" >"$dir/broker.log" 2>&1 &
sleep 0.3
gw() { exec "$BIN/mqttsn-gateway" --broker "tcp://127.0.0.1:$bport" --udp "127.0.0.1:$uport" --max-clients $((N + 10)) "$@"; }
gw --mode aggregating --persistence "$dir/seed.db" --persistence-flush-interval 0.1 >"$dir/seed.log" 2>&1 & g=$!
sleep 1
"$BIN/mqttsn-sub" -p "$uport" -i seed -c -q 1 -t restore/seed -e 3600 >/dev/null 2>&1 & s=$!
sleep 1; kill -9 "$s"; wait "$s" 2>/dev/null || true
for i in 1 2 3 4 5; do mosquitto_pub -p "$bport" -q 1 -t restore/seed -m "payload-$i"; done
sleep 0.5; kill "$g"; wait "$g" || true
python3 - "$dir/seed.db" "$N" <<'PY'
import sqlite3, sys
db, n = sys.argv[1], int(sys.argv[2])
c = sqlite3.connect(db)
tables = ['sessions', 'topics', 'subscriptions', 'queue', 'qos2_received']
rows = {t: c.execute(f'select * from {t} where client_id = "seed"').fetchall() for t in tables}
if not rows['sessions'] or len(rows['queue']) != 5: sys.exit(f'seed session not stored as expected: {rows}')
for t in tables: c.execute(f'delete from {t}')
for i in range(n):
    for t, rs in rows.items():
        for r in rs:
            r = list(r); r[0] = f'sensor-{i:06d}'
            if t == 'sessions': r[1] = f'udp0/127.{i // 62500 % 250}.{i // 250 % 250}.{i % 250 + 1}:{20000 + i % 40000}'
            c.execute(f'insert into {t} values ({",".join("?" * len(r))})', r)
c.commit()
PY
for mode in transparent aggregating; do
  for run in $(seq "$RUNS"); do
    cp "$dir/seed.db" "$dir/run.db"; rm -f "$dir"/run.db-wal "$dir"/run.db-shm
    gw --mode "$mode" --persistence "$dir/run.db" >"$dir/run.log" 2>&1 & g=$!
    for _ in $(seq 600); do grep -q "restored" "$dir/run.log" && break; sleep 0.1; done
    kill "$g"; wait "$g" || true
    echo "$mode run $run: $(grep -o 'restored.*' "$dir/run.log" | head -1)"
  done
done
