#!/usr/bin/env bash
# Installs the publisher for the current user, as the original ran: the binary in
# ~/.local/bin, a config you edit in ~/.config/server-analytics/publisher.toml, and a systemd
# user unit. Idempotent: run it again to upgrade. It never overwrites a config you edited
# (the new default goes next to it as publisher.toml.dist).
#
# Usage: scripts/install-publisher.sh [--binary PATH] [--no-start]
#   --binary PATH  the publisher binary to install (default: target/release/publisher)
#   --no-start     install only; do not enable or start the unit
# DESTDIR=/scratch installs under a scratch root (for packaging and tests) and leaves systemd alone.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$repo/scripts/lib.sh"
binary="$repo/target/release/publisher"
start=yes
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --no-start) start=no; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "install-publisher: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ ! -x "$binary" ]; then
  echo "install-publisher: no binary at $binary: run 'cargo build --release -p publisher' first (or pass --binary)" >&2
  exit 1
fi

dest=${DESTDIR:-}
config_home=${XDG_CONFIG_HOME:-$HOME/.config}
bin_dir="$dest$HOME/.local/bin"
conf_dir="$dest$config_home/server-analytics"
unit_dir="$dest$config_home/systemd/user"
state_dir="$dest$HOME/.local/state/server-analytics"

install -d -m 755 "$bin_dir" "$unit_dir"
install -d -m 700 "$conf_dir" "$state_dir"
install -m 755 "$binary" "$bin_dir/publisher"
echo "installed $bin_dir/publisher"

shipped="$repo/configs/publisher.toml"
config="$conf_dir/publisher.toml"
install_config "$shipped" "$config" 600

install -m 644 "$repo/configs/systemd/publisher.service" "$unit_dir/publisher.service"
echo "installed $unit_dir/publisher.service"

if [ -n "$dest" ]; then
  exit 0
fi
"$bin_dir/publisher" --config "$config" check-config > /dev/null || {
  echo "install-publisher: $config does not validate yet; fix it, then: systemctl --user enable --now publisher" >&2
  exit 0
}
if command -v systemctl > /dev/null; then
  systemctl --user daemon-reload
  if [ "$start" = yes ] && ! grep -q 'change-me' "$config"; then
    systemctl --user enable --now publisher.service
    systemctl --user restart publisher.service
    echo "publisher running: systemctl --user status publisher"
  else
    echo "edit $config (it still has the example password), then: systemctl --user enable --now publisher"
  fi
  echo "to keep it running after logout and start it at boot: loginctl enable-linger $USER"
fi
