#!/usr/bin/env bash
# Cross-compiles pi-subscriber and publisher for the Raspberry Pi with Debian's cross linkers.
#   aarch64-unknown-linux-gnu        (Pi 3/4/5, 64-bit OS)   needs: gcc-aarch64-linux-gnu
#   armv7-unknown-linux-gnueabihf    (32-bit Raspberry Pi OS) needs: gcc-arm-linux-gnueabihf
# Usage: scripts/build-pi.sh [TARGET…] [--check]
#   default targets: both; binaries in target/<TARGET>/release/
#   --check: run the aarch64 pi-subscriber under qemu-aarch64 (Debian: qemu-user) and ask
#            its /health, to show the binary works.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=()
check=no
for arg in "$@"; do
  case "$arg" in
    --check) check=yes ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) targets+=("$arg") ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)

built=()
for target in "${targets[@]}"; do
  case "$target" in
    aarch64-unknown-linux-gnu) gcc=aarch64-linux-gnu-gcc; pkg=gcc-aarch64-linux-gnu ;;
    armv7-unknown-linux-gnueabihf) gcc=arm-linux-gnueabihf-gcc; pkg=gcc-arm-linux-gnueabihf ;;
    *) echo "build-pi: unknown target $target" >&2; exit 2 ;;
  esac
  missing=()
  if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    missing+=("the Rust target: rustup target add $target")
  fi
  if ! command -v "$gcc" > /dev/null; then
    missing+=("the cross linker: sudo apt-get install $pkg")
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    echo "build-pi: skipping $target; install" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    continue
  fi
  env_target=$(echo "$target" | tr 'a-z-' 'A-Z_')
  echo "== $target"
  env "CARGO_TARGET_${env_target}_LINKER=$gcc" "CC_${target//-/_}=$gcc" \
    cargo build --release --target "$target" -p pi-subscriber -p publisher
  file "target/$target/release/pi-subscriber" "target/$target/release/publisher" 2>/dev/null || true
  built+=("$target")
done
if [ ${#built[@]} -eq 0 ]; then
  echo "build-pi: nothing built (see above for what to install)" >&2
  exit 1
fi

if [ "$check" = yes ]; then
  bin=target/aarch64-unknown-linux-gnu/release/pi-subscriber
  [ -x "$bin" ] || { echo "build-pi: --check needs the aarch64 build" >&2; exit 1; }
  command -v qemu-aarch64 > /dev/null || { echo "build-pi: --check needs qemu-aarch64: sudo apt-get install qemu-user" >&2; exit 1; }
  tmp=$(mktemp -d)
  port=${CHECK_PORT:-19910}
  qemu-aarch64 -L /usr/aarch64-linux-gnu "$bin" --no-mqtt --bind "127.0.0.1:$port" \
    --metrics-endpoint http://127.0.0.1:9/latest --data-dir "$tmp" 2> "$tmp/log" &
  pid=$!
  trap 'kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
  for _ in $(seq 1 100); do
    if answer=$(curl -s "http://127.0.0.1:$port/health"); then
      [ -n "$answer" ] && break
    fi
    sleep 0.2
  done
  echo "aarch64 pi-subscriber under qemu answered /health: $answer"
  echo "$answer" | grep -q '"status"' || { echo "build-pi: no answer from the aarch64 binary" >&2; cat "$tmp/log" >&2; exit 1; }
fi
