#!/usr/bin/env bash
# Builds the publisher as one static-pie binary (glibc linked in, address randomisation kept):
# no libc.so, libm, ld.so or libgcc_s pages in its RSS (issue 22: ~1 MB less than the default
# dynamic build). Optional: `cargo build --release -p publisher` stays the default build.
#
# Usage: scripts/build-static.sh      binary in target/<host triple>/release/publisher
#   then: scripts/install-publisher.sh --binary target/<host triple>/release/publisher
#
# Needs glibc's static library (Debian: libc6-dev, which the C toolchain Rust needs brings in).
# With glibc >= 2.36 the relative relocations are packed (-z pack-relative-relocs: ~260 kB
# fewer pages touched at start). The one thing a static glibc cannot carry is the NSS modules
# named in /etc/nsswitch.conf beyond `files` and `dns`: a host name that is not in /etc/hosts
# (broker.host in external mode, a [[remote_write]] URL) makes it load them, and the shared
# libc.so with them, from the system at run time, which glibc supports only for the same
# glibc version it was built with: rebuild after a glibc upgrade, or give addresses.
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
case "$host" in
  *-linux-gnu*) ;;
  *) echo "build-static: $host is not a glibc target" >&2; exit 2 ;;
esac
libc_a=$(cc -print-file-name=libc.a)
if [ ! -f "$libc_a" ]; then
  echo "build-static: no libc.a (Debian: apt-get install libc6-dev)" >&2
  exit 1
fi
flags="-C target-feature=+crt-static"
glibc=$(getconf GNU_LIBC_VERSION | awk '{print $2}')
if printf '2.36\n%s\n' "$glibc" | sort -V -C; then
  flags="$flags -C link-arg=-Wl,-z,pack-relative-relocs"
fi
# --target: with it, RUSTFLAGS reach only the target's crates; the proc-macros and build
# scripts, which a static C library cannot link, stay as they are.
RUSTFLAGS="$flags" cargo build --release -p publisher --target "$host"
bin="target/$host/release/publisher"
file "$bin"
"$bin" --version
echo "build-static: $bin (glibc $glibc; install: scripts/install-publisher.sh --binary $bin)"
