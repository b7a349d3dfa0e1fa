#!/usr/bin/env bash
# /metrics latency under load, with a real HTTP load tool (Debian: apt install hey wrk).
# Starts a release publisher (200 ms samples) and pi-subscriber on loopback, lets history
# build up, then:
#   hey: 1000 req/s (10 workers x 100 q/s) for 20 s → latency percentiles;
#   wrk: as fast as it goes (2 threads, 20 connections, 10 s) → the ceiling.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p publisher -p pi-subscriber
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
./target/release/publisher --data-dir "$tmp/p" --bind 127.0.0.1:19600 --broker-listen 127.0.0.1:19601 --interval 200ms 2>/dev/null &
sleep 1
PI_SUBSCRIBER_SELF__ENABLED=false ./target/release/pi-subscriber --data-dir "$tmp/s" --port 19602 --mqtt-port 19601 --metrics-endpoint http://127.0.0.1:19600/latest 2>/dev/null &
sleep 5
curl -sf http://127.0.0.1:19602/metrics > /dev/null
echo "== hey: 1000 req/s for 20 s"
hey -z 20s -c 10 -q 100 http://127.0.0.1:19602/metrics | sed -n '/Summary/,/Status code/p'
echo "== wrk: saturation, 10 s"
wrk -t2 -c20 -d10s --latency http://127.0.0.1:19602/metrics
pid=$(pgrep -f 'release/pi-subscriber --data-dir' | head -1)
grep -E 'VmRSS|VmHWM' "/proc/$pid/status"
