# Sourced by the bench scripts: a scratch directory `$d`, and the processes listed in `$pids`
# stopped and `$d` removed however the script ends.
d=$(mktemp -d)
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$d"
}
trap cleanup EXIT INT TERM
