#!/bin/sh
# Peak RSS (VmHWM) of the release pi-subscriber under a flood of maximum-size hostile
# snapshots, published over a real broker (mosquitto on a free loopback port): HOSTS hosts
# (default 64, history.max_hosts), each sending MSGS snapshots (default 40) of almost
# mqtt.max_payload_size (256 KiB) with every map at its cap (128 disks, 128 interfaces,
# 128 sensors, 512 cores), names of 128 bytes full of quotes and backslashes, and new names
# in every message (so every host reaches history.max_series_per_host).
#
# Usage: bench/pi-flood.sh [HOSTS] [MSGS]
#   MALLOC_ARENA_MAX=2 bench/pi-flood.sh      # glibc arenas capped (as the unit could set)
# Needs mosquitto, mosquitto_pub, python3 and curl. Compare with MemoryMax= in
# configs/systemd/pi-subscriber.service.
set -eu
hosts=${1:-64}
msgs=${2:-40}
cd "$(dirname "$0")/.."
cargo build --release -q -p pi-subscriber
bin=$PWD/target/release/pi-subscriber

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
d=$(mktemp -d)
mqtt=$(free_port)
http=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n' "$mqtt" > "$d/mosquitto.conf"
mosquitto -c "$d/mosquitto.conf" > "$d/mosquitto.log" 2>&1 &
broker=$!
"$bin" --data-dir "$d/pi" --bind "127.0.0.1:$http" --mqtt-port "$mqtt" --max-age 3600 > "$d/pi.log" 2>&1 &
pi=$!
cleanup() {
    kill "$pi" "$broker" 2>/dev/null || true
    wait "$pi" "$broker" 2>/dev/null || true
    rm -rf "$d"
}
trap cleanup EXIT
until curl -s "http://127.0.0.1:$http/health" > /dev/null; do sleep 0.2; done
sleep 1
echo "idle: $(grep -E 'VmRSS|VmHWM' /proc/$pi/status | tr -s ' \n' ' ')"

# One line per message (mosquitto_pub -l): the snapshot JSON, padded to just under 256 KiB.
gen() {
    python3 - "$1" "$msgs" <<'EOF'
import json, sys, time
host, msgs = sys.argv[1], int(sys.argv[2])
hostile = '"\\' * 20  # 60 bytes of quotes and backslashes
def name(kind, i, k):
    n = f'{kind}{i}-{k}-{hostile}'
    return n + 'x' * (128 - len(n.encode()))
now = int(time.time())
for k in range(msgs):
    s = {
        "v": 1, "host": host, "seq": k + 1, "ts": now + k, "ts_ms": (now + k) * 1000,
        "interval_s": 15, "boot_id": "b" * 64, "uptime_s": 1000.0 + k,
        "cpu": {"usage_percent": 50.0, "load_1m": 1.0, "load_5m": 1.0, "load_15m": 1.0,
                "cores": 512, "per_core_percent": [float(k % 100)] * 512},
        "memory": {"available_mb": 1000, "total_mb": 2000, "swap_used_mb": 0, "swap_total_mb": 0},
        "thermal": {"cpu_temp_c": 50.0, "sensors": {name("s", i, k): 40.0 + i % 10 for i in range(128)}},
        "disk": {"read_sectors": k * 1000, "write_sectors": k * 1000,
                 "devices": {name("d", i, k): {"read_sectors": k * 10, "write_sectors": k * 10} for i in range(128)}},
        "network": {"rx_bytes": k * 1000, "tx_bytes": k * 1000,
                    "interfaces": {name("i", i, k): {"rx_bytes": k * 10, "tx_bytes": k * 10} for i in range(128)}},
    }
    line = json.dumps(s, separators=(",", ":"))
    pad = 262144 - 64 - len(line.encode())
    s["pad"] = "p" * max(pad, 0)
    print(json.dumps(s, separators=(",", ":")))
EOF
}
start=$(date +%s)
i=0
while [ "$i" -lt "$hosts" ]; do
    # Four publishers at a time (the machine has two cores); `wait PID`, since a bare `wait`
    # would wait for the broker and the subscriber too.
    pids=""
    for _ in 1 2 3 4; do
        [ "$i" -lt "$hosts" ] || break
        gen "flood$i" | mosquitto_pub -p "$mqtt" -q 1 -t "server-analytics/flood$i/snapshot" -l &
        pids="$pids $!"
        i=$((i + 1))
    done
    for p in $pids; do wait "$p"; done
    echo "published $i hosts: $(grep VmHWM /proc/$pi/status | tr -s ' \t' ' ')"
done
# Let the subscriber drain what the broker still holds.
sleep 5
end=$(date +%s)
health=$(curl -s "http://127.0.0.1:$http/health")
echo "$health" | python3 -c '
import json, sys
h = json.load(sys.stdin)
i = h["ingest"]
print("hosts:", len(h["hosts"]), " stored:", i["stored_mqtt_total"], " rejected:", i["rejected"], " too_many_hosts:", i["too_many_hosts_total"],
      " rate_limited:", i.get("rate_limited_total"), " queue_full:", i.get("queue_full_total"))'
curl -s -o /dev/null -w "prometheus scrape: %{http_code}, %{size_download} bytes\n" "http://127.0.0.1:$http/prometheus"
echo "flood: $hosts hosts x $msgs snapshots of ~256 KiB in $((end - start)) s; MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-unset}"
echo "after: $(grep -E 'VmRSS|VmHWM' /proc/$pi/status | tr -s ' \n' ' ')"
grep -E '^MemoryMax' configs/systemd/pi-subscriber.service
