#!/usr/bin/env bash
# The whole pipeline on this machine, one command: the publisher (with its embedded MQTT
# broker) and the Pi subscriber on loopback, sampling every 2 s so that the dashboard fills
# within seconds of the banner. Default ports that are taken are replaced by free ones; the
# banner comes once both daemons answer over HTTP. Ctrl-C (or SIGINT / SIGTERM to this
# script) stops both cleanly, however the script was started. `--help` lists the variables.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/demo.sh [--help]

Runs the publisher (with its embedded MQTT broker) and the Pi subscriber on 127.0.0.1,
sampling every 2 s, and prints the dashboard's address once both answer. Ctrl-C stops both.
The first run builds both daemons in release mode, which takes a few minutes; later runs
take seconds.

Ports, on 127.0.0.1 (a default that is taken is replaced by the next free port, and the
banner says so; a port given here must be free):
  DEMO_PI_PORT=9100          the Pi subscriber: dashboard, /metrics, /series, Grafana
  DEMO_PUBLISHER_PORT=9000   the publisher's HTTP API (/latest, /health)
  DEMO_MQTT_PORT=1883        the publisher's embedded MQTT broker

Other settings:
  DEMO_INTERVAL=2s           the sampling interval
  DEMO_DATA_DIR=DIR          where both keep their data (default: a new temporary directory)
  DEMO_BIN_DIR=DIR           run the binaries in DIR instead of building release ones

Example: DEMO_MQTT_PORT=1884 DEMO_PI_PORT=9200 scripts/demo.sh
EOF
}

case "${1:-}" in
  -h | --help)
    usage
    exit 0
    ;;
  "") ;;
  *)
    echo "demo: unknown argument '$1' (see scripts/demo.sh --help)" >&2
    exit 2
    ;;
esac

# A background job of a non-interactive shell (`scripts/test.sh &` in a script) starts with
# SIGINT ignored, and bash cannot trap a signal it inherited ignored: run again, once, with
# INT and TERM at their defaults so that the trap below holds however the demo was started.
if [ -z "${SERVER_ANALYTICS_DEMO_SIGNALS:-}" ] && env --default-signal=INT true 2>/dev/null; then
  export SERVER_ANALYTICS_DEMO_SIGNALS=reset
  exec env --default-signal=INT,TERM "$BASH" "$0" "$@"
fi
cd "$(dirname "$0")/.."

die() {
  echo "demo: $*" >&2
  exit 1
}

# DEMO_BIN_DIR: use binaries built already (the tests do) instead of building release ones.
bin=${DEMO_BIN_DIR:-}
if [ -z "$bin" ]; then
  echo "demo: building publisher and pi-subscriber (release); the first build takes a few minutes, later ones seconds" >&2
  cargo build --release -p publisher -p pi-subscriber || die "the build failed (cargo's messages are above)"
  bin=target/release
fi
for daemon in publisher pi-subscriber; do
  [ -x "$bin/$daemon" ] || die "no $bin/$daemon (DEMO_BIN_DIR=$bin)"
done

# 0 when something accepts connections on 127.0.0.1:$1 (another MQTT broker, a web server…),
# or does not refuse them within 2 s.
taken() {
  local rc=0
  timeout 2 "$BASH" -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null || rc=$?
  [ "$rc" -ne 1 ]
}

# 0 when an HTTP server answers `GET /health` on 127.0.0.1:$1, whatever its status.
answers() {
  "$BASH" -c '
    exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
    printf "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3
    IFS= read -r -t 2 line <&3 && [[ $line == "HTTP/1."[01]" "* ]]' "$1" 2>/dev/null
}

picked=()
notes=()
# pick VAR DEFAULT WHAT: sets `port` to $VAR, which must be free, or else to DEFAULT or the
# first free port after it (noting the move for the banner).
pick() {
  local var=$1 default=$2 what=$3
  if [ -n "${!var:-}" ]; then
    port=${!var}
    [[ $port =~ ^[0-9]{1,5}$ ]] && ((10#$port > 0 && 10#$port < 65536)) || die "$var=$port is not a port number"
    port=$((10#$port))
    [[ " ${picked[*]} " != *" $port "* ]] || die "$var=$port: that port is already used by the demo"
    ! taken "$port" || die "127.0.0.1:$port ($var, $what) is taken; choose another port (see scripts/demo.sh --help)"
  else
    port=$default
    while [[ " ${picked[*]} " == *" $port "* ]] || taken "$port"; do
      port=$((port + 1))
      ((port <= default + 100)) || die "127.0.0.1:$default to $((default + 100)) are all taken; set $var (see scripts/demo.sh --help)"
    done
    if [ "$port" != "$default" ]; then
      notes+=("  note:       127.0.0.1:$default is taken, so $what is on $port ($var=PORT to choose)")
    fi
  fi
  picked+=("$port")
}
pick DEMO_MQTT_PORT 1883 "the MQTT broker"
mqtt_port=$port
pick DEMO_PUBLISHER_PORT 9000 "the publisher"
publisher_port=$port
pick DEMO_PI_PORT 9100 "the dashboard"
pi_port=$port
export PUBLISHER_HTTP__BIND=127.0.0.1:$publisher_port
export PUBLISHER_BROKER__LISTEN=127.0.0.1:$mqtt_port
export PI_SUBSCRIBER_HTTP__BIND=127.0.0.1:$pi_port
export PI_SUBSCRIBER_MQTT__HOST=127.0.0.1
export PI_SUBSCRIBER_MQTT__PORT=$mqtt_port
export PI_SUBSCRIBER_POLL__ENDPOINTS=http://127.0.0.1:$publisher_port/latest
# Both run on this machine: the publisher is the machine's one source. The Pi's `[self]` would
# store the same machine under the same name, and the Pi refuses a publisher naming its own
# host (`rejected.own_host`).
export PI_SUBSCRIBER_SELF__ENABLED=false

data=${DEMO_DATA_DIR:-$(mktemp -d -t server-analytics-demo.XXXXXX)}
daemons=()
waiter=
# Stops what was started so far (SIGTERM, then waits for it) and exits with `$1`.
stop() {
  trap - INT TERM
  if [ -n "$waiter" ]; then
    kill -TERM "$waiter" 2>/dev/null || true
  fi
  if [ ${#daemons[@]} -gt 0 ]; then
    kill -TERM "${daemons[@]}" 2>/dev/null || true
    wait "${daemons[@]}" 2>/dev/null || true
  fi
  echo "demo stopped; data kept in $data"
  exit "$1"
}
trap 'stop 0' INT TERM
"$bin/publisher" --data-dir "$data/publisher" --interval "${DEMO_INTERVAL:-2s}" &
publisher=$!
"$bin/pi-subscriber" --data-dir "$data/pi" --max-age 10 &
pi=$!
daemons=("$publisher" "$pi")
name_of() {
  if [ "$1" = "$publisher" ]; then echo publisher; else echo pi-subscriber; fi
}
where_of() {
  if [ "$1" = "$publisher" ]; then
    echo "HTTP 127.0.0.1:$publisher_port, MQTT 127.0.0.1:$mqtt_port"
  else
    echo "HTTP 127.0.0.1:$pi_port"
  fi
}

# The banner only once both answer over HTTP; if either ends first, say which and stop.
(
  deadline=$((SECONDS + 60))
  until answers "$publisher_port" && answers "$pi_port"; do
    ((SECONDS < deadline)) || exit 1
    sleep 0.1
  done
) &
waiter=$!
status=0
ended=
wait -n -p ended "$publisher" "$pi" "$waiter" || status=$?
if [ "$ended" != "$waiter" ]; then
  echo "demo: the $(name_of "$ended") exited (status $status) before it answered ($(where_of "$ended")); its error is above" >&2
  stop 1
fi
waiter=
if [ "$status" -ne 0 ]; then
  echo "demo: the daemons did not answer within 60 s (http://127.0.0.1:$publisher_port/health, http://127.0.0.1:$pi_port/health)" >&2
  stop 1
fi

echo
echo "  dashboard:  http://127.0.0.1:$pi_port/      (Ctrl-C to stop)"
echo "  publisher:  http://127.0.0.1:$publisher_port/latest"
echo "  MQTT:       mosquitto_sub -p $mqtt_port -t 'server-analytics/#' -v"
echo "  JSON:       curl http://127.0.0.1:$pi_port/metrics"
for note in "${notes[@]}"; do
  echo "$note"
done
echo
# Ends when either daemon does (its status, non-zero if it failed) or on Ctrl-C / SIGTERM (0).
status=0
wait -n -p ended "${daemons[@]}" || status=$?
echo "demo: the $(name_of "$ended") stopped (status $status)" >&2
stop "$status"
