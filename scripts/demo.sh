#!/usr/bin/env bash
# The whole pipeline on this machine, one command: the publisher (with its embedded MQTT
# broker) and the Pi subscriber on loopback with their defaults, sampling every 2 s so the
# dashboard fills within seconds. Ctrl-C stops both cleanly.
#   Dashboard:  http://127.0.0.1:9100/
# Ports can be moved with the daemons' own variables, e.g. PUBLISHER_HTTP__BIND,
# PUBLISHER_BROKER__LISTEN, PI_SUBSCRIBER_HTTP__BIND, PI_SUBSCRIBER_MQTT__PORT,
# PI_SUBSCRIBER_POLL__ENDPOINTS.
set -euo pipefail
cd "$(dirname "$0")/.."
# DEMO_BIN_DIR: use binaries built already (the tests do) instead of building release ones.
bin=${DEMO_BIN_DIR:-}
if [ -z "$bin" ]; then
  cargo build --release -q -p publisher -p pi-subscriber
  bin=target/release
fi
data=${DEMO_DATA_DIR:-$(mktemp -d -t server-analytics-demo.XXXXXX)}
"$bin/publisher" --data-dir "$data/publisher" --interval "${DEMO_INTERVAL:-2s}" &
publisher=$!
"$bin/pi-subscriber" --data-dir "$data/pi" --max-age 10 &
subscriber=$!
stop() {
  trap - INT TERM
  kill -TERM "$subscriber" "$publisher" 2>/dev/null || true
  wait "$subscriber" "$publisher" 2>/dev/null || true
  echo "demo stopped; data kept in $data"
}
trap stop INT TERM
sleep 1
echo
echo "  dashboard:  http://127.0.0.1:9100/      (Ctrl-C to stop)"
echo "  MQTT:       mosquitto_sub -t 'server-analytics/#' -v"
echo "  JSON:       curl http://127.0.0.1:9100/metrics"
echo
# Ends when either daemon does (or on Ctrl-C).
wait -n "$publisher" "$subscriber" || true
stop
