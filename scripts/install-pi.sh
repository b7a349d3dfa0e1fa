#!/usr/bin/env bash
# Installs the Pi subscriber as a system service: /usr/local/bin/pi-subscriber, a config you
# edit in /etc/server-analytics/pi-subscriber.toml, and /etc/systemd/system/pi-subscriber.service
# (a DynamicUser with its history in /var/lib/server-analytics-pi; the config stays 0640
# root:root and reaches the service through LoadCredential=). Idempotent: run it again
# to upgrade. It never overwrites a config you edited (the new default goes next to it as
# pi-subscriber.toml.dist).
#
# Usage: sudo scripts/install-pi.sh [--binary PATH] [--no-start]
#   --binary PATH  the binary to install (default: target/release/pi-subscriber; for a Pi
#                  built elsewhere: target/aarch64-unknown-linux-gnu/release/pi-subscriber)
#   --no-start     install only; do not enable or start the unit
# DESTDIR=/scratch installs under a scratch root (for packaging and tests) and leaves systemd alone.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$repo/scripts/lib.sh"
binary="$repo/target/release/pi-subscriber"
start=yes
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --no-start) start=no; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "install-pi: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ ! -x "$binary" ]; then
  echo "install-pi: no binary at $binary: run 'cargo build --release -p pi-subscriber' or scripts/build-pi.sh first (or pass --binary)" >&2
  exit 1
fi
dest=${DESTDIR:-}
if [ -z "$dest" ] && [ "$(id -u)" != 0 ]; then
  echo "install-pi: run as root (sudo), or set DESTDIR for a scratch install" >&2
  exit 1
fi

install -d -m 755 "$dest/usr/local/bin" "$dest/etc/server-analytics" "$dest/etc/systemd/system"
install -m 755 "$binary" "$dest/usr/local/bin/pi-subscriber"
echo "installed $dest/usr/local/bin/pi-subscriber"

shipped="$repo/configs/pi-subscriber.toml"
config="$dest/etc/server-analytics/pi-subscriber.toml"
install_config "$shipped" "$config" 640

install -m 644 "$repo/configs/systemd/pi-subscriber.service" "$dest/etc/systemd/system/pi-subscriber.service"
echo "installed $dest/etc/systemd/system/pi-subscriber.service"

if [ -n "$dest" ]; then
  exit 0
fi
"$dest/usr/local/bin/pi-subscriber" --config "$config" check-config > /dev/null || {
  echo "install-pi: $config does not validate yet; fix it, then: systemctl enable --now pi-subscriber" >&2
  exit 0
}
systemctl daemon-reload
if [ "$start" = yes ] && ! grep -q 'change-me' "$config"; then
  systemctl enable --now pi-subscriber.service
  systemctl restart pi-subscriber.service
  echo "pi-subscriber running: systemctl status pi-subscriber; dashboard on :9100"
else
  echo "edit $config (it still has the example password), then: systemctl enable --now pi-subscriber"
fi
