#!/bin/bash
# Benchmarks moving data in and out of local sandboxes against plain tools, side by side in one hyperfine run
# each (a program, not a test):
#   1. `sbox cp TREE REF:/in` and `sbox cp REF:/data OUT`  vs  `tar -C TREE -cf - . | tar -C DST -xf -`
#      (a tree of mixed file sizes, 1 GiB by default; target: at least 80% of tar's throughput)
#   2. `sbox snapshot create REF`  vs  `tar -c | zstd -3` of the same sandbox's upper directory
#      (512 MiB written in the sandbox by default; target: within 1.3x)
#   3. `sbox create --snapshot SNAP`  vs  a plain `sbox create`   (target: within 2x; the layer is stacked)
# then prints the medians and the ratios.
#
#   bench/data.sh [-n RUNS] [--create-runs N] [--cp-mib MIB] [--snapshot-mib MIB]
#
# Uses $SBOX_BIN, else build/sbox; its state goes to a temporary SBOX_ROOT beside the trees (in $TMPDIR, else
# /tmp), so that everything is on one file system. Needs hyperfine: packaging/install-deps.sh --bench.
set -euo pipefail

runs=3
create_runs=30
cp_mib=1024
snapshot_mib=512
usage() {
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    echo "options: -n, --runs RUNS (cp and snapshot, default $runs); --create-runs N (default $create_runs);"
    echo "         --cp-mib MIB (default $cp_mib); --snapshot-mib MIB (default $snapshot_mib)"
}
while [ $# -gt 0 ]; do
    case "$1" in
    -n | --runs | --create-runs | --cp-mib | --snapshot-mib)
        value=${2:?"$1 needs a number"}
        case "$1" in
        -n | --runs) runs=$value ;;
        --create-runs) create_runs=$value ;;
        --cp-mib) cp_mib=$value ;;
        --snapshot-mib) snapshot_mib=$value ;;
        esac
        shift 2
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        echo "bench/data.sh: unknown argument: $1" >&2
        usage >&2
        exit 2
        ;;
    esac
done
case "$runs$create_runs$cp_mib$snapshot_mib" in
*[!0-9]*)
    echo "bench/data.sh: -n, --create-runs, --cp-mib and --snapshot-mib take whole numbers" >&2
    exit 2
    ;;
esac
if [ "$cp_mib" -lt 16 ] || [ "$snapshot_mib" -lt 16 ]; then
    echo "bench/data.sh: --cp-mib and --snapshot-mib must be at least 16" >&2
    exit 2
fi

me=bench/data.sh
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"
require hyperfine tar zstd split base64 awk

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sbox-bench-data-XXXXXX")
export SBOX_ROOT=$tmp/sbox
# shellcheck disable=SC2317 # called through the trap
cleanup() {
    "$sbox" kill --all >/dev/null 2>&1 || echo "bench/data.sh: could not remove the sandboxes in $SBOX_ROOT" >&2
    # Through sbox: without root, the snapshots' files belong to subordinate ids this user cannot remove.
    "$sbox" snapshot ls -q 2>/dev/null | xargs -r "$sbox" snapshot rm >/dev/null 2>&1 ||
        echo "bench/data.sh: could not remove the snapshots in $SBOX_ROOT" >&2
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Each run starts with the page cache written back (sync, untimed), so that no run pays for the writeback of
# the data an earlier one left dirty. Nothing is deleted between runs: on ext4 without a journal (as on the machine this was written on), files
# made shortly after many were deleted pay for a scan past the recently deleted inodes, and whichever
# contender runs after a deletion would pay for the other's. So every run writes somewhere new.
needed_mib=$((cp_mib * (2 + 3 * (runs + 1)) + snapshot_mib * (3 + 2 * (runs + 1))))
free_mib=$(df -Pm "$tmp" | awk 'NR == 2 { print $4 }')
if [ "$free_mib" -lt "$needed_mib" ]; then
    echo "bench/data.sh: $tmp has $free_mib MiB free; this run needs about $needed_mib MiB" >&2
    exit 1
fi

mib_per_s() { # MIB SECONDS
    awk -v m="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.0f", m / s; else printf "n/a" }'
}
# A tree of MIB mebibytes in four sizes, about half of it text-like (compressible) and half random:
# 4 files of MIB/8 MiB, MIB/4 files of 1 MiB, files of 64 KiB and files of 8 KiB (MIB/8 MiB each), the small
# ones in 32 directories per size.
make_tree() { # DIR MIB
    local dir=$1 mib=$2 i
    mkdir -p "$dir/big" "$dir/medium"
    head -c $((mib / 4))M /dev/urandom | split -b $((mib / 8))M -a 3 - "$dir/big/random-"
    head -c $((mib * 3 / 16))M /dev/urandom | base64 -w 76 | split -b $((mib / 8))M -a 3 - "$dir/big/text-"
    head -c $((mib * 3 / 16))M /dev/urandom | base64 -w 76 | split -b 1M -a 4 - "$dir/medium/text-"
    for i in $(seq -w 0 31); do
        mkdir -p "$dir/small/$i" "$dir/tiny/$i"
        head -c $((mib * 1024 / 256))K /dev/urandom | split -b 64K -a 4 - "$dir/small/$i/random-"
        head -c $((mib * 1024 * 3 / 1024))K /dev/urandom | base64 -w 76 |
            split -b 8K -a 4 - "$dir/tiny/$i/text-"
    done
    ln -s big "$dir/link-to-big"
}
tree_stats() { # DIR
    printf '%s MiB in %s files' "$(du -sm "$1" | awk '{ print $1 }')" "$(find "$1" -type f | wc -l)"
}

echo "sbox: $sbox ($("$sbox" version 2>/dev/null | head -1))"
echo "runs: $runs (create: $create_runs), uid: $(id -u), kernel: $(uname -r), state: $SBOX_ROOT"
echo

# ---- 1. cp in and out ------------------------------------------------------------------------------------------
make_tree "$tmp/tree" "$cp_mib"
echo "cp tree: $(tree_stats "$tmp/tree")"
cp_ref=$("$sbox" create --name bench-cp)
"$sbox" cp "$tmp/tree" "$cp_ref:/data"
cp_csv=$tmp/cp.csv
hyperfine --runs "$runs" --warmup 1 --export-csv "$cp_csv" --prepare sync \
    -n "tar | tar" "d='$tmp/dst.'\$(date +%s%N) && mkdir \$d && tar -C '$tmp/tree' -cf - . | tar -C \$d -xf -" \
    -n "sbox cp in" "'$sbox' cp '$tmp/tree' $cp_ref:/in.\$(date +%s%N)" \
    -n "sbox cp out" "'$sbox' cp $cp_ref:/data '$tmp/out.'\$(date +%s%N)"
"$sbox" kill "$cp_ref" >/dev/null
rm -rf "$tmp/tree" "$tmp"/dst.* "$tmp"/out.*

# ---- 2. snapshot create ----------------------------------------------------------------------------------------
make_tree "$tmp/snaptree" "$snapshot_mib"
echo "snapshot tree: $(tree_stats "$tmp/snaptree")"
snap_ref=$("$sbox" create --name bench-snap)
"$sbox" cp "$tmp/snaptree" "$snap_ref:/data"
rm -rf "$tmp/snaptree"
supervisor=$("$sbox" inspect "$snap_ref" --json | json_number supervisor_pid)
# The supervisor holds the sandbox's writable layers open at fd 1000 (root/ and upper/).
upper=/proc/$supervisor/fd/1000
if [ -z "$supervisor" ] || ! [ -d "$upper/root/data" ]; then
    echo "bench/data.sh: cannot find $snap_ref's upper directory through its supervisor" >&2
    exit 1
fi
snap_csv=$tmp/snapshot.csv
hyperfine --runs "$runs" --warmup 1 --export-csv "$snap_csv" \
    -n "tar -c | zstd -3" "tar -C '$upper' -cf - . | zstd -3 -q -o '$tmp/upper.'\$(date +%s%N)'.tar.zst'" \
    --prepare "sync && '$sbox' exec $snap_ref -- sh -c 'date +%s%N > /marker'" \
    -n "sbox snapshot create" "'$sbox' snapshot create $snap_ref"
# The last one again, by name: the same content, so the stored snapshot gets the name.
"$sbox" snapshot create "$snap_ref" --name bench-snapshot >/dev/null
"$sbox" snapshot ls
"$sbox" kill "$snap_ref" >/dev/null
rm -f "$tmp"/upper.*.tar.zst

# ---- 3. create from the snapshot -------------------------------------------------------------------------------
create_csv=$tmp/create.csv
hyperfine -N --runs "$create_runs" --warmup 3 --export-csv "$create_csv" \
    --prepare "'$sbox' kill --all" \
    -n "sbox create" "'$sbox' create" \
    --prepare "'$sbox' kill --all" \
    -n "sbox create --snapshot" "'$sbox' create --snapshot bench-snapshot"

# ---- summary ---------------------------------------------------------------------------------------------------
tar_s=$(median_of "$cp_csv" 1)
cp_in_s=$(median_of "$cp_csv" 2)
cp_out_s=$(median_of "$cp_csv" 3)
zstd_s=$(median_of "$snap_csv" 1)
snapshot_s=$(median_of "$snap_csv" 2)
create_ms=$(median_of "$create_csv" 1 1000)
create_snap_ms=$(median_of "$create_csv" 2 1000)

echo
echo "== medians"
printf '  %-44s %8s s  %6s MiB/s\n' "tar -cf - . | tar -xf -  ($cp_mib MiB)" "$tar_s" "$(mib_per_s "$cp_mib" "$tar_s")"
printf '  %-44s %8s s  %6s MiB/s\n' "sbox cp TREE REF:/in" "$cp_in_s" "$(mib_per_s "$cp_mib" "$cp_in_s")"
printf '  %-44s %8s s  %6s MiB/s\n' "sbox cp REF:/data OUT" "$cp_out_s" "$(mib_per_s "$cp_mib" "$cp_out_s")"
printf '  %-44s %8s s\n' "tar -c | zstd -3  ($snapshot_mib MiB upper)" "$zstd_s"
printf '  %-44s %8s s\n' "sbox snapshot create" "$snapshot_s"
printf '  %-44s %8s ms\n' "sbox create" "$create_ms"
printf '  %-44s %8s ms\n' "sbox create --snapshot" "$create_snap_ms"
echo "== ratios"
printf '  %-44s %8s   (target >= 0.80)\n' "cp in throughput / tar's" "$(ratio "$tar_s" "$cp_in_s")"
printf '  %-44s %8s   (target >= 0.80)\n' "cp out throughput / tar's" "$(ratio "$tar_s" "$cp_out_s")"
printf '  %-44s %8s   (target <= 1.30)\n' "snapshot create / tar|zstd" "$(ratio "$snapshot_s" "$zstd_s")"
printf '  %-44s %8s   (target <= 2.00)\n' "create --snapshot / create" "$(ratio "$create_snap_ms" "$create_ms")"
