#!/bin/sh
# Peak RSS (VmHWM) of the publisher (embedded broker) under a flood of retained 256 KiB
# publishes on many topics. Usage: bench/retained-flood.sh [TOPICS] [PUBLISHER_BINARY]
# (defaults: 1000 topics, target/release/publisher built here). Needs mosquitto-clients.
set -eu
topics=${1:-1000}
cd "$(dirname "$0")/.."
bin=${2:-}
if [ -z "$bin" ]; then
    cargo build --release -q -p publisher
    bin=./target/release/publisher
fi
d=$(mktemp -d)
head -c $((256 * 1024 - 256)) /dev/urandom > "$d/payload"
PUBLISHER_HOST=bench "$bin" --data-dir "$d/data" --bind 127.0.0.1:0 --broker-listen 127.0.0.1:19884 2>/dev/null &
pid=$!
sleep 2
echo "before: $(grep -E 'VmRSS|VmHWM' /proc/$pid/status | tr -s ' \n' ' ')"
# Four parallel publishers, each its own connection per topic, QoS 1 so each one waits for
# the broker to have taken it.
seq 1 "$topics" | xargs -P 4 -I{} mosquitto_pub -p 19884 -q 1 -r -t "flood/{}" -f "$d/payload" || echo "some publishes failed"
sleep 2
kept=$(mosquitto_sub -p 19884 -t 'flood/#' -F '%t' --retained-only -W 2 2>/dev/null | wc -l || true)
echo "after ${topics} x 256 KiB retained: $(grep -E 'VmRSS|VmHWM' /proc/$pid/status | tr -s ' \n' ' ') still retained: ${kept}"
kill -TERM $pid
wait $pid || true
rm -rf "$d"
