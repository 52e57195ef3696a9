#!/usr/bin/env python3
"""What a broker sends when two SUBSCRIBEs overlap on one MQTT 3.1.1 connection.

usage: scripts/retained-order-probe.py N QOS
Starts its own Mosquitto (/usr/sbin/mosquitto) on a free 127.0.0.1 port, retains N messages
x/0..x/N-1 at QOS, then one client sends SUBSCRIBE x/# (id 1) and SUBSCRIBE x/+ (id 2) back to
back at QOS, acknowledges QoS 1 copies at once, and prints where each SUBACK arrived among the
packets received (docs/protocol-core.md, "Retained messages in aggregating mode"). Loopback only,
bounded: stops reading after 1 s of silence. Standard library only.
"""
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time


def enc_len(n):
    out = b""
    while True:
        b, n = n % 128, n // 128
        out += bytes([b | 0x80 if n else b])
        if not n:
            return out


def utf8(x):
    x = x.encode()
    return struct.pack("!H", len(x)) + x


def packet(first, body):
    return bytes([first]) + enc_len(len(body)) + body


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def read_packet(sock):
    first = read_exact(sock, 1)[0]
    mult, n = 1, 0
    while True:
        b = read_exact(sock, 1)[0]
        n += (b & 127) * mult
        mult *= 128
        if not b & 128:
            break
    return first, read_exact(sock, n)


def connect(port, client_id):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(packet(0x10, utf8("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 60) + utf8(client_id)))
    first, _ = read_packet(s)
    assert first >> 4 == 2, "no CONNACK"
    return s


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    n, q = int(sys.argv[1]), int(sys.argv[2])
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        conf = os.path.join(d, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
        broker = subprocess.Popen(["/usr/sbin/mosquitto", "-c", conf], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            for _ in range(50):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            pub = connect(port, "probe-pub")
            for i in range(n):
                mid = struct.pack("!H", i + 1) if q else b""
                pub.sendall(packet(0x31 | (q << 1), utf8(f"x/{i}") + mid + b"v"))
            pub.sendall(packet(0xC0, b""))  # PINGREQ: answered once every PUBLISH before it is stored
            while read_packet(pub)[0] >> 4 != 13:
                pass
            sub = connect(port, "probe-sub")
            sub.sendall(packet(0x82, struct.pack("!H", 1) + utf8("x/#") + bytes([q])) +
                        packet(0x82, struct.pack("!H", 2) + utf8("x/+") + bytes([q])))
            sub.settimeout(1.0)
            events = []
            try:
                while len(events) < 10 * n + 10:
                    first, body = read_packet(sub)
                    if first >> 4 == 9:
                        events.append(f"SUBACK{struct.unpack('!H', body[:2])[0]}")
                    elif first >> 4 == 3:
                        ln = struct.unpack("!H", body[:2])[0]
                        pq = (first >> 1) & 3
                        events.append(f"P({body[2:2 + ln].decode()} r{first & 1} q{pq})")
                        if pq == 1:
                            sub.sendall(packet(0x40, body[2 + ln:4 + ln]))
            except (socket.timeout, EOFError):
                pass
        finally:
            broker.terminate()
            broker.wait(timeout=5)
    print(f"{n} retained at QoS {q}: {len(events)} packets")
    for name in ("SUBACK1", "SUBACK2"):
        at = events.index(name) + 1 if name in events else None
        print(f"  {name}: packet {at}")
    if len(events) <= 12:
        print("  " + " ".join(events))


if __name__ == "__main__":
    main()
