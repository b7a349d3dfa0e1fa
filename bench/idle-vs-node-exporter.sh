#!/bin/sh
# Issue 22: the idle cost of the release publisher (embedded broker, 15 s interval, one
# mosquitto_sub attached) beside node_exporter limited to comparable collectors and scraped
# 4 times a minute, and beside the publisher with `broker.mode = "off"`, in one run.
#
# Usage: bench/idle-vs-node-exporter.sh [SECONDS]   (default 300)
#   WARMUP=60       seconds before measuring (first samples, connects, page faults)
#   BROKER_OFF=0    leave out the publisher without a broker
#   NO_TOP=0        leave out the publisher with its embedded broker and `processes.enabled =
#                   false`: node_exporter's collectors here read no process, the top lists
#                   read every `/proc/PID/stat` each sample (~40 % of an idle publisher's CPU)
#   THREADS=1       also print each thread's context switches and CPU over the window
#   PUBLISHER=path  run this publisher binary (no build); default: build target/release/publisher
#   PERF=0          no perf stat (it adds a little to every context switch it counts)
#   BASELINE=path   also run this (older) publisher binary, embedded broker and a subscriber
#                   of its own, side by side: before and after in the same conditions
#
# For each process: CPU ms per minute (utime+stime, /proc/PID/stat, 10 ms ticks; and, where
# `perf stat` works, task-clock with its context switches per minute: how often it wakes),
# VmRSS (and its anonymous part) and VmHWM at the end, and its thread count. Everything
# listens on 127.0.0.1 only. The sampler's own cost (the broker-off line) grows with the
# number of processes and the load of the machine: compare lines of one run.
set -eu
secs=${1:-300}
warmup=${WARMUP:-60}
cd "$(dirname "$0")/.."
bin=${PUBLISHER:-}
if [ -z "$bin" ]; then
    cargo build --release -q -p publisher
    bin=./target/release/publisher
fi
ne=$(command -v prometheus-node-exporter || command -v node_exporter || true)
if [ -z "$ne" ]; then
    apt-get update -q >/dev/null && apt-get install -y -q prometheus-node-exporter >/dev/null
    ne=$(command -v prometheus-node-exporter)
fi
hz=$(getconf CLK_TCK)
. "$(dirname "$0")/cleanup.sh"

mkdir "$d/embedded" "$d/off"
"$bin" --data-dir "$d/embedded" --bind 127.0.0.1:19200 \
    --broker-listen 127.0.0.1:19283 2>"$d/embedded.log" &
pub=$!
pids="$pids $pub"
base=""
if [ -n "${BASELINE:-}" ]; then
    mkdir "$d/baseline"
    "$BASELINE" --data-dir "$d/baseline" --bind 127.0.0.1:19202 \
        --broker-listen 127.0.0.1:19284 2>"$d/baseline.log" &
    base=$!
    pids="$pids $base"
fi
notop=""
if [ "${NO_TOP:-1}" != 0 ]; then
    mkdir "$d/notop"
    PUBLISHER_PROCESSES__ENABLED=false "$bin" --data-dir "$d/notop" --bind 127.0.0.1:19203 \
        --broker-listen 127.0.0.1:19285 2>"$d/notop.log" &
    notop=$!
    pids="$pids $notop"
fi
off=""
if [ "${BROKER_OFF:-1}" != 0 ]; then
    "$bin" --data-dir "$d/off" --bind 127.0.0.1:19201 \
        --broker-mode off 2>"$d/off.log" &
    off=$!
    pids="$pids $off"
fi
"$ne" --web.listen-address=127.0.0.1:19100 --collector.disable-defaults \
    --collector.cpu --collector.loadavg --collector.meminfo --collector.hwmon \
    --collector.thermal_zone --collector.diskstats --collector.netdev \
    --collector.filesystem 2>"$d/node_exporter.log" &
nex=$!
pids="$pids $nex"
sleep 2
mosquitto_sub -p 19283 -t 'server-analytics/#' >/dev/null &
pids="$pids $!"
if [ -n "$notop" ]; then
    mosquitto_sub -p 19285 -t 'server-analytics/#' >/dev/null &
    pids="$pids $!"
fi
if [ -n "$base" ]; then
    mosquitto_sub -p 19284 -t 'server-analytics/#' >/dev/null &
    pids="$pids $!"
fi
# node_exporter is scraped as often as the publisher samples: every 15 s.
(
    while :; do
        curl -s -o /dev/null http://127.0.0.1:19100/metrics || true
        sleep 15
    done
) &
pids="$pids $!"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# tid comm voluntary+nonvoluntary switches, CPU ns: one line per live thread.
threads() {
    for t in /proc/"$1"/task/*; do
        printf '%s %s %s %s\n' "${t##*/}" "$(tr ' ' _ <"$t/comm")" \
            "$(awk '/ctxt_switches/ {n += $2} END {print n}' "$t/status")" \
            "$(cut -d' ' -f1 "$t/schedstat")"
    done 2>/dev/null | sort
}
has_perf=0
if [ "${PERF:-1}" = 1 ] && perf stat -e task-clock true >/dev/null 2>&1; then has_perf=1; fi

echo "warm-up ${warmup}s, then measuring over ${secs}s ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
sleep "$warmup"
names="publisher:$pub node_exporter:$nex"
[ -n "$base" ] && names="$names baseline:$base"
[ -n "$notop" ] && names="$names publisher-no-top:$notop"
[ -n "$off" ] && names="$names publisher-broker-off:$off"
for np in $names; do
    p=${np#*:}
    ticks "$p" >"$d/t0.$p"
    threads "$p" >"$d/th0.$p"
    if [ "$has_perf" = 1 ]; then
        perf stat -x, -e task-clock,context-switches -p "$p" -o "$d/perf.$p" -- sleep "$secs" &
    fi
done
sleep "$secs"
sleep 2 # perf writes its counts
printf '%-22s %10s %12s %12s %9s %9s %9s %8s\n' process 'cpu ms/min' 'perf ms/min' \
    'wakeups/min' 'RSS kB' 'anon kB' 'HWM kB' threads
for np in $names; do
    n=${np%%:*}
    p=${np#*:}
    t1=$(ticks "$p")
    t0=$(cat "$d/t0.$p")
    cpu=$(echo "$t0 $t1" | awk -v hz="$hz" -v s="$secs" '{printf "%.1f", ($2 - $1) * 1000 / hz * 60 / s}')
    pms=- wk=-
    if [ -s "$d/perf.$p" ]; then
        pms=$(awk -F, -v s="$secs" '$3 == "task-clock" {printf "%.1f", $1 * 60 / s}' "$d/perf.$p")
        wk=$(awk -F, -v s="$secs" '$3 == "context-switches" {printf "%.0f", $1 * 60 / s}' "$d/perf.$p")
    fi
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$p/status")
    anon=$(awk '/RssAnon/ {print $2}' "/proc/$p/status")
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$p/status")
    th=$(ls "/proc/$p/task" | wc -l)
    printf '%-22s %10s %12s %12s %9s %9s %9s %8s\n' "$n" "$cpu" "$pms" "$wk" "$rss" "$anon" \
        "$hwm" "$th"
    if [ "${THREADS:-0}" = 1 ]; then
        threads "$p" >"$d/th1.$p"
        echo "  per thread alive at both ends: tid name switches/min cpu-ms/min"
        join "$d/th0.$p" "$d/th1.$p" | awk -v s="$secs" \
            '{printf "  %-8s %-20s %8.1f %8.2f\n", $1, $2, ($6 - $3) * 60 / s, ($7 - $4) / 1e6 * 60 / s}'
    fi
done
