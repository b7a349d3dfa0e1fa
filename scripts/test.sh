#!/usr/bin/env bash
# Runs every check and test on a fresh machine: installs what the tests need (Debian
# packages, as root), then formatting, lints and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin"   # mosquitto lives in /usr/sbin on Debian

need=()
command -v unshare >/dev/null || need+=(util-linux)
command -v mosquitto_sub >/dev/null || need+=(mosquitto-clients)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
# pi-subscriber/tests/delivery.rs cuts a link: a network namespace, a veth pair, iptables.
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
command -v openssl >/dev/null || need+=(openssl)
command -v prometheus >/dev/null || need+=(prometheus)
# pi-subscriber/tests/remote_write*.rs: a real VictoriaMetrics beside Prometheus.
command -v victoria-metrics >/dev/null || need+=(victoria-metrics)
[ -x /usr/bin/prometheus-alertmanager ] || need+=(prometheus-alertmanager)
command -v chromium >/dev/null || need+=(chromium)
# publisher/tests/systemd.rs boots systemd in a container (a Debian rootfs built once).
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  else
    echo "missing packages: ${need[*]} (install them, or run as root)" >&2
    exit 1
  fi
fi

# pi-subscriber/tests/homeassistant.rs runs a real Home Assistant from target/ha-venv: installed
# from PyPI on the first run (~1.5 minutes), a no-op after. If it cannot be installed, CI fails.
echo "== Home Assistant venv"
scripts/homeassistant-venv.sh

# No incremental caches: they only help edit-compile loops and double the disk a CI run needs.
export CARGO_INCREMENTAL=0

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
