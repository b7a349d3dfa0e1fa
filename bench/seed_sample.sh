#!/bin/sh
# One sample the way the original did it: awk over the /proc files, then python writes the
# JSON. Reconstructed for the benchmark only (publisher/benches/sample_cost.rs runs it).
# Usage: seed_sample.sh OUT.json   (PROC_ROOT and SYS_ROOT point at a fixture tree)
P=${PROC_ROOT:-/proc}
S=${SYS_ROOT:-/sys}
cpu=$(awk '/^cpu /{printf "%.0f %.0f\n", $2+$3+$4+$5+$6+$7+$8+$9+$10+$11, $5+$6}' "$P/stat")
cores=$(awk '/^cpu[0-9]/{n++} END{print n}' "$P/stat")
load=$(awk '{print $1, $2, $3}' "$P/loadavg")
mem=$(awk '/^MemTotal/{t=$2} /^MemAvailable/{a=$2} /^SwapTotal/{st=$2} /^SwapFree/{sf=$2} END{print int(t/1024), int(a/1024), int((st-sf)/1024)}' "$P/meminfo")
disk=$(awk '{r+=$6; w+=$10} END{printf "%.0f %.0f\n", r, w}' "$P/diskstats")
net=$(awk -F'[: ]+' 'NR>2{rx+=$3; tx+=$11} END{printf "%.0f %.0f\n", rx, tx}' "$P/net/dev")
temp=$(cat "$S/class/thermal/thermal_zone0/temp" 2>/dev/null || echo 0)
python3 - "$1" "$cpu" "$cores" "$load" "$mem" "$disk" "$net" "$temp" <<'PY'
import json, sys, time, socket
out, cpu, cores, load, mem, disk, net, temp = sys.argv[1:]
total, idle = map(int, cpu.split())
l1, l5, l15 = map(float, load.split())
mt, ma, su = map(int, mem.split())
r, w = map(int, disk.split())
rx, tx = map(int, net.split())
snap = {"host": socket.gethostname(), "ts": int(time.time()),
        "cpu": {"usage_percent": round(100.0 * (total - idle) / max(total, 1), 2),
                "load_1m": l1, "load_5m": l5, "load_15m": l15, "cores": int(cores)},
        "memory": {"available_mb": ma, "total_mb": mt, "swap_used_mb": su},
        "thermal": {"cpu_temp_c": int(temp) / 1000},
        "disk": {"read_sectors": r, "write_sectors": w},
        "network": {"rx_bytes": rx, "tx_bytes": tx}}
with open(out, "w") as f:
    json.dump(snap, f)
PY
