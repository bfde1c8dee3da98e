#!/bin/bash
# What the benchmark programs share; sourced by bench/*.sh (not run on its own). Each program sets `me` (its
# name in messages) before sourcing this.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sbox=${SBOX_BIN:-$repo/build/sbox}

# Exits unless the sbox binary and each named tool are there.
require() { # TOOL...
    if [ ! -x "$sbox" ]; then
        echo "${me:-bench}: no sbox binary at $sbox (build it: cmake --preset default && cmake --build --preset default)" >&2
        exit 1
    fi
    local tool
    for tool in "$@"; do
        if ! command -v "$tool" >/dev/null; then
            echo "${me:-bench}: $tool is not installed (packaging/install-deps.sh --bench)" >&2
            exit 1
        fi
    done
}

# The median of the Nth command (1-based) of a hyperfine CSV export, in seconds times SCALE (1 by default,
# 1000 for milliseconds), with 3 decimals. Columns: command, mean, stddev, median, user, system, min, max;
# counted from the end, since a quoted command may hold commas.
median_of() { # CSV N [SCALE]
    awk -F, -v row="$(($2 + 1))" -v scale="${3:-1}" 'NR == row { printf "%.3f", $(NF - 4) * scale }' "$1"
}
ratio() { # A B: A/B with 2 decimals
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'
}
# A number field of `sbox inspect --json` (pretty-printed or not), from stdin.
json_number() { # FIELD
    grep -o "\"$1\"[[:space:]]*:[[:space:]]*[0-9]*" | grep -o '[0-9]*$' | head -1 || true
}
