#!/bin/sh
# Idle RSS and CPU of the release publisher with its embedded broker, 15 s interval, one
# mosquitto_sub attached, over a long run: the broker's replay logs (256 KiB x 2 per filter)
# fill in about an hour at 15 s, and RSS grows with them until they are full.
#
# Usage: bench/publisher-rss.sh [SECONDS]   (default 600; 4200 reaches the full logs)
#   PUBLISHER=path  run this publisher binary (no build); default: build target/release/publisher
#   EVERY=300       print VmRSS, its anonymous part and VmHWM every EVERY seconds
set -eu
secs=${1:-600}
every=${EVERY:-300}
cd "$(dirname "$0")/.."
bin=${PUBLISHER:-}
if [ -z "$bin" ]; then
    cargo build --release -q -p publisher
    bin=./target/release/publisher
fi
. "$(dirname "$0")/cleanup.sh"
"$bin" --data-dir "$d" --bind 127.0.0.1:19000 --broker-listen 127.0.0.1:19883 2>/dev/null &
pid=$!
pids="$pids $pid"
sleep 2
mosquitto_sub -p 19883 -t 'server-analytics/#' > /dev/null &
pids="$pids $!"
t0=$(awk '{print $14+$15}' /proc/$pid/stat)
mem() {
    awk '/^(VmRSS|RssAnon|VmHWM):/ {printf "%s %s kB  ", $1, $2}' /proc/$pid/status
}
echo "after start: $(mem)"
left=$secs
at=0
while [ "$left" -gt 0 ]; do
    step=$every
    [ "$step" -gt "$left" ] && step=$left
    sleep "$step"
    left=$((left - step))
    at=$((at + step))
    echo "after ${at}s: $(mem)"
done
t1=$(awk '{print $14+$15}' /proc/$pid/stat)
echo "threads=$(ls /proc/$pid/task | wc -l); cpu ticks (1/100 s) over ${secs}s: $((t1 - t0))"
