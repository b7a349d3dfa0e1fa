#!/bin/sh
# Idle RSS and CPU of the release publisher with its embedded broker, 15 s interval, one
# mosquitto_sub attached. Usage: bench/publisher-rss.sh [SECONDS]  (default 600)
set -eu
secs=${1:-600}
cd "$(dirname "$0")/.."
cargo build --release -q -p publisher
d=$(mktemp -d)
./target/release/publisher --data-dir "$d" --bind 127.0.0.1:19000 --broker-listen 127.0.0.1:19883 2>/dev/null &
pid=$!
sleep 2
mosquitto_sub -p 19883 -t 'server-analytics/#' > /dev/null &
sub=$!
t0=$(awk '{print $14+$15}' /proc/$pid/stat)
sleep 1
echo "after start: $(grep VmRSS /proc/$pid/status)"
sleep "$secs"
t1=$(awk '{print $14+$15}' /proc/$pid/stat)
echo "after ${secs}s: $(grep -E 'VmRSS|VmHWM' /proc/$pid/status | tr '\n' ' ') threads=$(ls /proc/$pid/task | wc -l)"
echo "cpu ticks (1/100 s) over ${secs}s: $((t1 - t0))"
kill $sub
kill -TERM $pid
wait $pid
rm -rf "$d"
