#!/bin/bash
# Peak RSS (VmHWM) of the publisher (embedded broker) with 10 clients that subscribe to `#`
# and never read (stopped with SIGSTOP) while 4 connections publish payloads as large as the
# broker takes (MAX_PAYLOAD bytes, default 262144, broker.max_payload_size's default) as fast
# as they can, and whether a subscriber that reads still gets every snapshot.
# Usage: bench/stuck-subscribers.sh [STALL_TIMEOUT] [FLOOD_SECONDS] [PUBLISHER_BINARY]
# (defaults: the config's broker.stall_timeout, 40 s, target/release/publisher built here;
# STALL_TIMEOUT 0s is the behaviour before the bound). Needs mosquitto-clients, ss.
set -eu
stall=${1:-}
secs=${2:-40}
cd "$(dirname "$0")/.."
bin=${3:-}
if [ -z "$bin" ]; then
    cargo build --release -q -p publisher
    bin=./target/release/publisher
fi
port=19887
payload=${MAX_PAYLOAD:-262144}
d=$(mktemp -d)
env ${stall:+PUBLISHER_BROKER__STALL_TIMEOUT=$stall} PUBLISHER_BROKER__MAX_PAYLOAD_SIZE=$payload PUBLISHER_HOST=bench \
    "$bin" --data-dir "$d/data" --bind 127.0.0.1:0 --broker-listen 127.0.0.1:$port --interval 1s 2>/dev/null &
pid=$!
sleep 2
rss() { grep -E 'VmHWM|VmRSS' /proc/$pid/status | tr -s ' \t\n' ' '; }
# Server-side connections of the broker, the publisher's own and the healthy one included.
conns() { ss -Htn state established "( sport = :$port )" | wc -l; }
mosquitto_sub -p $port -t 'server-analytics/bench/snapshot' -F '%p' > "$d/healthy" &
healthy=$!
stuck=()
for i in $(seq 1 "${STUCK:-10}"); do
    mosquitto_sub -p $port -t '#' -i "stuck$i" > /dev/null &
    stuck+=($!)
done
sleep 1
[ ${#stuck[@]} -eq 0 ] || kill -STOP "${stuck[@]}"
echo "before the flood: $(rss) connections=$(conns)"
# Each flooder: raw MQTT 3.1.1, QoS 0 publishes of $payload bytes back to back for $secs s
# (far faster than a mosquitto_pub loop); prints how many it sent.
flooder='
import socket, struct, sys, time
def pkt(kind, body):
    n, out = len(body), bytes([kind])
    while True:
        b, n = n % 128, n // 128
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out + body
s16 = lambda b: struct.pack(">H", len(b)) + b
port, topic, secs, size = int(sys.argv[1]), sys.argv[2].encode(), float(sys.argv[3]), int(sys.argv[4])
s = socket.create_connection(("127.0.0.1", port))
s.sendall(pkt(0x10, s16(b"MQTT") + bytes([4, 2, 0, 60]) + s16(topic.replace(b"/", b"-"))))
s.recv(4)
msg, sent, end = pkt(0x30, s16(topic) + b"x" * (size - 64)), 0, time.time() + secs
while time.time() < end:
    s.sendall(msg)
    sent += 1
print(sent)
'
flood=()
for p in 1 2 3 4; do
    python3 -c "$flooder" $port "flood/$p" "$secs" "$payload" > "$d/flood$p" &
    flood+=($!)
done
for t in $(seq 5 5 "$secs"); do
    sleep 5
    echo "flood ${t}s: $(rss) connections=$(conns)"
done
wait "${flood[@]}" || true
echo "flood over: $(rss) connections=$(conns), $(cat "$d"/flood? | paste -sd+ | bc) publishes of $payload bytes sent"
sleep "${WAIT_AFTER:-35}"
echo "${WAIT_AFTER:-35}s later: $(rss) connections=$(conns)"
[ ${#stuck[@]} -eq 0 ] || kill -KILL "${stuck[@]}" 2>/dev/null || true
kill "$healthy"
wait "$healthy" 2>/dev/null || true
# seq of every snapshot the reading subscriber got: any gap is a lost snapshot.
missing=$(grep -o '"seq":[0-9]*' "$d/healthy" | cut -d: -f2 | awk 'NR > 1 && $1 != prev + 1 { gaps += $1 - prev - 1 } { prev = $1 } END { print gaps + 0 }')
echo "healthy subscriber: $(wc -l < "$d/healthy") snapshots, ${missing} missing between the first and the last"
kill -TERM $pid
wait $pid || true
rm -rf "$d"
