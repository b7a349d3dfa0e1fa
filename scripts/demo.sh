#!/usr/bin/env bash
# The whole pipeline on this machine, one command: the publisher (with its embedded MQTT
# broker) and the Pi subscriber on loopback with their defaults, sampling every 2 s so the
# dashboard fills within seconds. Ctrl-C (or SIGINT / SIGTERM to this script) stops both
# cleanly, however the script was started.
#   Dashboard:  http://127.0.0.1:9100/
# Ports can be moved with the daemons' own variables, e.g. PUBLISHER_HTTP__BIND,
# PUBLISHER_BROKER__LISTEN, PI_SUBSCRIBER_HTTP__BIND, PI_SUBSCRIBER_MQTT__PORT,
# PI_SUBSCRIBER_POLL__ENDPOINTS.
set -euo pipefail
# A background job of a non-interactive shell (`scripts/test.sh &` in a script) starts with
# SIGINT ignored, and bash cannot trap a signal it inherited ignored: run again, once, with
# INT and TERM at their defaults so that the trap below holds however the demo was started.
if [ -z "${SERVER_ANALYTICS_DEMO_SIGNALS:-}" ] && env --default-signal=INT true 2>/dev/null; then
  export SERVER_ANALYTICS_DEMO_SIGNALS=reset
  exec env --default-signal=INT,TERM "$BASH" "$0" "$@"
fi
cd "$(dirname "$0")/.."
# DEMO_BIN_DIR: use binaries built already (the tests do) instead of building release ones.
bin=${DEMO_BIN_DIR:-}
if [ -z "$bin" ]; then
  cargo build --release -q -p publisher -p pi-subscriber
  bin=target/release
fi
data=${DEMO_DATA_DIR:-$(mktemp -d -t server-analytics-demo.XXXXXX)}
daemons=()
# Stops the daemons started so far (SIGTERM, then waits for them) and exits with `$1`.
stop() {
  trap - INT TERM
  if [ ${#daemons[@]} -gt 0 ]; then
    kill -TERM "${daemons[@]}" 2>/dev/null || true
    wait "${daemons[@]}" 2>/dev/null || true
  fi
  echo "demo stopped; data kept in $data"
  exit "$1"
}
trap 'stop 0' INT TERM
"$bin/publisher" --data-dir "$data/publisher" --interval "${DEMO_INTERVAL:-2s}" &
daemons+=($!)
"$bin/pi-subscriber" --data-dir "$data/pi" --max-age 10 &
daemons+=($!)
sleep 1
echo
echo "  dashboard:  http://127.0.0.1:9100/      (Ctrl-C to stop)"
echo "  MQTT:       mosquitto_sub -t 'server-analytics/#' -v"
echo "  JSON:       curl http://127.0.0.1:9100/metrics"
echo
# Ends when either daemon does (its status, non-zero if it failed) or on Ctrl-C / SIGTERM (0).
status=0
wait -n "${daemons[@]}" || status=$?
echo "a daemon stopped (status $status)" >&2
stop "$status"
