#!/bin/sh
# What the Pi writes to its disk per tower-sized host and day (issue 22), counted by the
# kernel for the running daemon: `wchar` (bytes handed to write) and `write_bytes` (bytes sent
# to the block device) from /proc/PID/io, over a real run at the default 15 s interval.
#
# A feeder publishes HOSTS tower-sized snapshots (12 cores, 17 sensors, 4 disks,
# 2 interfaces, 3 filesystems; values that move as a busy machine's do) every 15 s through a
# real mosquitto to the release `pi-subscriber` with its default settings ([self] off). Give
# BEFORE=/path/to/an/older/pi-subscriber to run it beside the same feed, for a comparison in
# one run. The figures are scaled to one host and one day.
#
# Usage: [BEFORE=bin] [AFTER=bin] bench/pi-writes.sh [SECONDS] [HOSTS]     (default 3900: more than an hour, so one
#        minute-tier row closes; 10 hosts). Needs mosquitto, mosquitto_pub, python3, curl.
# write_bytes is only meaningful on a real block device (not tmpfs): TMPDIR decides.
set -eu
secs=${1:-3900}
hosts=${2:-10}
cd "$(dirname "$0")/.."
# AFTER=/path/to/pi-subscriber measures that binary instead of building this tree's.
if [ -z "${AFTER:-}" ]; then
    cargo build --release -q -p pi-subscriber
fi
after=${AFTER:-$PWD/target/release/pi-subscriber}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
d=$(mktemp -d)
mqtt=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$mqtt" > "$d/mosquitto.conf"
mosquitto -c "$d/mosquitto.conf" > "$d/mosquitto.log" 2>&1 &
broker=$!
pids=""
start_pi() { # name binary
    port=$(free_port)
    # Each daemon its own MQTT client id: with the same one (host name + machine id) the
    # broker drops one to let the other in, and both lose samples (and log every retry).
    PI_SUBSCRIBER_MQTT__CLIENT_ID="bench-$1" PI_SUBSCRIBER_SELF__ENABLED=false "$2" --data-dir "$d/$1" --bind "127.0.0.1:$port" \
        --mqtt-port "$mqtt" --max-age 3600 > "$d/$1.log" 2>&1 &
    echo "$1 $! $port" >> "$d/pis"
    pids="$pids $!"
}
start_pi after "$after"
[ -n "${BEFORE:-}" ] && start_pi before "$BEFORE"
cleanup() {
    kill $pids "$broker" ${feeder:-} 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$d"
}
trap cleanup EXIT
sleep 2

python3 - "$mqtt" "$hosts" "$secs" <<'EOF' &
import json, random, subprocess, sys, time
port, hosts, secs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(22)
pubs, state = [], []
for h in range(hosts):
    pubs.append(subprocess.Popen(["mosquitto_pub", "-p", str(port), "-q", "1", "-l",
                                  "-t", f"server-analytics/tower{h}/snapshot"], stdin=subprocess.PIPE, text=True))
    state.append({"seq": 0, "disk": [rnd.randrange(10**9) for _ in range(8)],
                  "net": [rnd.randrange(10**11) for _ in range(4)], "load": 1.0, "avail": 20000,
                  "used": [rnd.randrange(10**11) for _ in range(3)]})
boot = "7c1e4a9d-52b8-4f0e-9d36-a1f07c3e8b25"
t0 = time.time()
while time.time() - t0 < secs:
    tick = time.time()
    for h, s in enumerate(state):
        s["seq"] += 1
        now_ms = int(time.time() * 1000)
        s["disk"] = [v + rnd.randrange(0, 4000) for v in s["disk"]]
        s["net"] = [v + rnd.randrange(0, 3_000_000) for v in s["net"]]
        s["load"] = max(0.0, round(s["load"] + rnd.uniform(-0.2, 0.2), 2))
        s["avail"] = max(0, s["avail"] + rnd.randrange(-50, 51))
        s["used"] = [v + rnd.randrange(-10**6, 10**7) for v in s["used"]]
        cores = [round(rnd.uniform(0, 100), 1) for _ in range(12)]
        devs = ["nvme0n1", "sda", "sdb", "sr0"]
        snap = {
            "v": 1, "host": f"tower{h}", "seq": s["seq"], "ts": now_ms // 1000, "ts_ms": now_ms,
            "interval_s": 15.0, "boot_id": boot, "uptime_s": 274512.83 + s["seq"] * 15.0,
            "cpu": {"usage_percent": round(sum(cores) / 12, 1), "load_1m": s["load"],
                    "load_5m": round(s["load"] * 0.9, 2), "load_15m": round(s["load"] * 0.8, 2),
                    "cores": 12, "per_core_percent": cores},
            "memory": {"available_mb": s["avail"], "total_mb": 31951, "swap_used_mb": 1159,
                       "swap_total_mb": 8191},
            "thermal": {"cpu_temp_c": float(rnd.randrange(45, 70)),
                        "sensors": {f"coretemp/Core {i}": float(rnd.randrange(40, 75)) for i in range(17)}},
            "disk": {"read_sectors": sum(s["disk"][0::2]), "write_sectors": sum(s["disk"][1::2]),
                     "devices": {d: {"read_sectors": s["disk"][2 * i], "write_sectors": s["disk"][2 * i + 1]}
                                 for i, d in enumerate(devs)}},
            "network": {"rx_bytes": s["net"][0] + s["net"][2], "tx_bytes": s["net"][1] + s["net"][3],
                        "interfaces": {n: {"rx_bytes": s["net"][2 * i], "tx_bytes": s["net"][2 * i + 1]}
                                       for i, n in enumerate(["enp3s0", "wlp4s0"])}},
            "filesystems": {m: {"device": f"/dev/nvme0n1p{i + 1}", "fstype": "ext4", "size_bytes": 10**12, "used_bytes": s["used"][i],
                                "avail_bytes": 10**12 - s["used"][i], "files": 61054976,
                                "files_free": 60000000 - s["seq"]}
                            for i, m in enumerate(["/", "/home", "/srv"])},
        }
        pubs[h].stdin.write(json.dumps(snap, separators=(",", ":")) + "\n")
        pubs[h].stdin.flush()
    time.sleep(max(0.0, 15.0 - (time.time() - tick)))
EOF
feeder=$!

io() { # pid field
    awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/io"
}
# A warm-up (series created, first commit) not counted.
sleep 60
while read -r name pid port; do
    echo "$name $pid $port $(io "$pid" wchar) $(io "$pid" write_bytes)" >> "$d/start"
done < "$d/pis"
t0=$(date +%s)
sleep $((secs - 60))
t1=$(date +%s)
while read -r name pid port w0 b0; do
    w1=$(io "$pid" wchar)
    b1=$(io "$pid" write_bytes)
    samples=$(( (t1 - t0) * hosts / 15 ))
    python3 - "$name" "$w0" "$w1" "$b0" "$b1" "$samples" "$hosts" "$((t1 - t0))" <<'EOF'
import sys
name, w0, w1, b0, b1, samples, hosts, secs = sys.argv[1], *map(int, sys.argv[2:])
per_day = 5760 / (samples / hosts) / hosts  # one host, one day
print(f"{name}: {secs} s, {hosts} hosts, ~{samples} samples: "
      f"wchar {(w1 - w0) * per_day / 1e6:.2f} MB, write_bytes {(b1 - b0) * per_day / 1e6:.2f} MB "
      f"per host per day")
EOF
    echo "$name: $(grep -E 'VmRSS|VmHWM' "/proc/$pid/status" | tr -s ' \t\n' ' ') db $(du -sk "$d/$name" | cut -f1) KiB"
done < "$d/start"
