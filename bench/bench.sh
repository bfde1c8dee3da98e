#!/bin/bash
# Benchmarks `sbox bench` itself (a program, not a test):
#   1. its own overhead per measured phase, against a provider that does nothing (build/sbox-bench-overhead;
#      target: below 0.2 ms per phase)
#   2. how long `sbox bench -p local -n 50` takes on this machine, as hyperfine times it (target: under 5 s)
#
#   bench/bench.sh [-n RUNS]     RUNS: hyperfine's runs of (2), default 5
#
# Uses $SBOX_BIN, else build/sbox, and build/sbox-bench-overhead beside it. Needs hyperfine:
# packaging/install-deps.sh --bench.
set -euo pipefail
me=bench.sh
runs=5
while [ $# -gt 0 ]; do
    case "$1" in
    -n | --runs)
        runs=${2:?"$1 needs a number"}
        shift 2
        ;;
    -h | --help)
        sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "$me: unknown option $1" >&2
        exit 2
        ;;
    esac
done
. "$(dirname "$0")/common.sh"
require hyperfine
overhead=$(dirname "$sbox")/sbox-bench-overhead
if [ ! -x "$overhead" ]; then
    echo "$me: no $overhead (build it: cmake --build --preset default)" >&2
    exit 1
fi

echo "== 1. sbox bench's own overhead"
"$overhead" -n 2000 || true

echo
echo "== 2. sbox bench -p local -n 50"
state=$(mktemp -d /tmp/sbox-bench-bench-XXXXXX)
chmod 755 "$state"
trap 'SBOX_ROOT=$state "$sbox" kill --all -p local >/dev/null 2>&1 || true; rm -rf "$state"' EXIT
csv=$state/hyperfine.csv
SBOX_ROOT=$state hyperfine -N --runs "$runs" --warmup 1 --export-csv "$csv" \
    "$sbox bench -q -p local -n 50" >/dev/null
seconds=$(median_of "$csv" 1)
echo "median $seconds s over $runs runs; target 5 s: $(ratio "$seconds" 5)x the target"
echo
echo "one run's table:"
SBOX_ROOT=$state "$sbox" bench -p local -n 50
