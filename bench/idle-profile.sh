#!/bin/sh
# Issue 22: where an idle publisher's CPU goes, two builds side by side under `perf record`
# (CPU-clock samples at a fixed rate, so a count is CPU time), default 15 s interval, embedded
# broker, no subscriber. Prints each build's samples in all, under the top-process collector
# (`ProcessCollector::read_counted`), and the kernel's share of those: `do_task_stat` (the
# `stat` line formatted), `proc_pid_schedstat`, and the rest of a `pread` of a `/proc` file.
# A sampling profile costs the process too: compare the two lines, not with other benches.
#
# Usage: AFTER=path BEFORE=path bench/idle-profile.sh [SECONDS]   (default 300)
#   WARMUP=45   seconds before recording (the start-up trim happens after two samples)
#   FREQ=25000  samples per second of CPU time
set -eu
secs=${1:-300}
warmup=${WARMUP:-45}
freq=${FREQ:-25000}
cd "$(dirname "$0")/.."
: "${AFTER:?AFTER=path to the publisher binary to measure}"
: "${BEFORE:?BEFORE=path to the publisher binary to compare with}"
command -v perf >/dev/null || { echo "needs perf (Debian: linux-perf)" >&2; exit 1; }
. "$(dirname "$0")/cleanup.sh"

start() { # name binary http-port mqtt-port
    mkdir "$d/$1"
    "$2" --data-dir "$d/$1" --bind "127.0.0.1:$3" --broker-listen "127.0.0.1:$4" \
        2>"$d/$1.log" &
    pids="$pids $!"
    eval "pid_$1=$!"
}
start after "$AFTER" 19260 19261
start before "$BEFORE" 19262 19263
echo "warm-up ${warmup}s, then recording ${secs}s at ${freq} Hz (load $(cut -d' ' -f1-3 /proc/loadavg))"
sleep "$warmup"
for name in after before; do
    eval "p=\$pid_$name"
    perf record -q -F "$freq" -g -p "$p" -o "$d/$name.data" -- sleep "$secs" >/dev/null 2>&1 &
    pids="$pids $!"
    eval "rec_$name=$!"
done
wait "$rec_after" "$rec_before"
printf '%-8s %9s %13s %13s %10s %12s\n' build samples collector do_task_stat schedstat other-pread
for name in after before; do
    perf script -i "$d/$name.data" 2>/dev/null | awk -v name="$name" '
        function flush() {
            if (!n) return
            total++
            if (s ~ /read_counted/) {
                rc++
                if (s ~ /do_task_stat/) st++
                else if (s ~ /proc_pid_schedstat/) ss++
                else if (s ~ /pread/) pr++
            }
            s = ""; n = 0
        }
        /^$/ { flush(); next }
        { s = s " " $0; n++ }
        END { flush(); printf "%-8s %9d %13d %13d %10d %12d\n", name, total, rc, st, ss, pr }'
done
