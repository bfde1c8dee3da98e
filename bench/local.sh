#!/bin/bash
# Benchmarks the local provider against its anchors, side by side in one hyperfine run each (a program, not a test):
#   1. `sbox run -- true`  vs  bubblewrap  vs  unshare(1)          (a fresh sandbox for one command)
#      `sbox run` is hardened as always (seccomp filter, the default cap on processes); the same run also times it
#      without the filter (what seccomp costs) and with explicit cgroup limits (--memory, --cpus, --pids)
#   2. `sbox exec REF -- true`  vs  `nsenter --all` into the same sandbox   (a command in a running sandbox)
#   3. `sbox create`  vs  `sbox create --network full`   (what the network stack adds; target: at most 30 ms)
# then prints the medians, the ratios against the issue's targets, and an idle sandbox's resident memory.
#
#   bench/local.sh [-n RUNS] [--warmup N] [--create-runs N]
#
# Uses $SBOX_BIN, else build/sbox. Needs hyperfine and bubblewrap: packaging/install-deps.sh --bench.
set -euo pipefail

runs=200
warmup=20
create_runs=50
usage() {
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    echo "options: -n, --runs RUNS (default $runs); --warmup N (default $warmup); --create-runs N (default $create_runs)"
}
while [ $# -gt 0 ]; do
    case "$1" in
    -n | --runs)
        runs=${2:?"$1 needs a number"}
        shift 2
        ;;
    --warmup)
        warmup=${2:?"$1 needs a number"}
        shift 2
        ;;
    --create-runs)
        create_runs=${2:?"$1 needs a number"}
        shift 2
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        echo "bench/local.sh: unknown argument: $1" >&2
        usage >&2
        exit 2
        ;;
    esac
done
case "$runs$warmup$create_runs" in
*[!0-9]*)
    echo "bench/local.sh: -n, --warmup and --create-runs take whole numbers" >&2
    exit 2
    ;;
esac

me=bench/local.sh
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"
require hyperfine bwrap unshare nsenter awk

tmp=$(mktemp -d /tmp/sbox-bench-XXXXXX)
limits_note=""
ref=""
# shellcheck disable=SC2317 # called through the trap
cleanup() {
    if [ -n "$ref" ]; then
        "$sbox" kill "$ref" >/dev/null 2>&1 || echo "bench/local.sh: could not remove $ref" >&2
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rss_kib() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true
}
pss_kib() {
    awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null || true
}
show_memory() { # LABEL PID
    local rss pss
    rss=$(rss_kib "$2")
    pss=$(pss_kib "$2")
    if [ -z "$rss" ]; then
        printf '  %-34s pid %-8s (not readable)\n' "$1" "$2"
        return
    fi
    printf '  %-34s pid %-8s RSS %6s KiB = %s MiB' "$1" "$2" "$rss" "$(awk -v k="$rss" 'BEGIN { printf "%.2f", k / 1024 }')"
    if [ -n "$pss" ]; then printf ', PSS %s KiB' "$pss"; fi
    printf '\n'
    total_rss=$((total_rss + rss))
}

echo "sbox: $sbox ($("$sbox" version 2>/dev/null | head -1))"
echo "runs: $runs, warmup: $warmup, uid: $(id -u), kernel: $(uname -r)"
echo

# ---- 1. a fresh sandbox for one command ------------------------------------------------------------------------
run_csv=$tmp/run.csv
limits_cmd="$sbox run --memory 1g --cpus 1 --pids 512 -- true"
limits_args=(-n "sbox run, cgroup limits" "$limits_cmd")
if ! limits_err=$($limits_cmd 2>&1); then
    limits_args=()
    limits_note="skipped: $limits_err"
fi
hyperfine -N --runs "$runs" --warmup "$warmup" --export-csv "$run_csv" \
    -n "sbox run" "$sbox run -- true" \
    -n "bwrap" "bwrap --unshare-all --ro-bind / / --proc /proc --dev /dev true" \
    -n "unshare" "unshare -Urpfmnui --mount-proc true" \
    -n "sbox run, seccomp off" "$sbox run --security-opt seccomp=unconfined -- true" \
    "${limits_args[@]}"

# ---- 2. a command in a running sandbox -------------------------------------------------------------------------
ref=$("$sbox" create --name "bench-$$")
inspect=$("$sbox" inspect "$ref" --json)
supervisor=$(json_number supervisor_pid <<<"$inspect")
monitor=$(json_number monitor_pid <<<"$inspect")
if [ -z "$supervisor" ]; then
    echo "bench/local.sh: sbox inspect $ref --json has no details.supervisor_pid" >&2
    exit 1
fi

# An idle sandbox, right after creation.
total_rss=0
mem_idle=$(
    show_memory "supervisor (idle)" "$supervisor"
    if [ -n "$monitor" ]; then show_memory "monitor (idle)" "$monitor"; fi
    echo "  total: $total_rss KiB"
)

exec_csv=$tmp/exec.csv
nsenter_cmd="nsenter --target $supervisor --all true"
if nsenter_err=$($nsenter_cmd 2>&1); then
    hyperfine -N --runs "$runs" --warmup "$warmup" --export-csv "$exec_csv" \
        -n "sbox exec" "$sbox exec $ref -- true" \
        -n "nsenter" "$nsenter_cmd"
else
    echo "bench/local.sh: nsenter into the sandbox does not work here ($nsenter_err); sbox exec alone:" >&2
    hyperfine -N --runs "$runs" --warmup "$warmup" --export-csv "$exec_csv" -n "sbox exec" "$sbox exec $ref -- true"
fi

total_rss=0
mem_after=$(
    show_memory "supervisor (after $((runs + warmup)) execs)" "$supervisor"
    if [ -n "$monitor" ]; then show_memory "monitor (after the execs)" "$monitor"; fi
    echo "  total: $total_rss KiB"
)

# ---- 3. create with and without the network stack -------------------------------------------------------------
# In a state directory of its own, so that killing every sandbox between runs (untimed) touches nothing else.
create_csv=$tmp/create.csv
network_note=""
if network_err=$(SBOX_ROOT=$tmp/state "$sbox" run --network full -- true 2>&1); then
    (
        export SBOX_ROOT=$tmp/state
        hyperfine -N --runs "$create_runs" --warmup 3 --export-csv "$create_csv" \
            --prepare "'$sbox' kill --all" \
            -n "sbox create" "'$sbox' create" \
            --prepare "'$sbox' kill --all" \
            -n "sbox create --network full" "'$sbox' create --network full"
        "$sbox" kill --all >/dev/null
    )
else
    network_note="skipped: --network full does not work here: $network_err"
fi

# ---- summary ---------------------------------------------------------------------------------------------------
sbox_run=$(median_of "$run_csv" 1 1000)
bwrap=$(median_of "$run_csv" 2 1000)
unshare=$(median_of "$run_csv" 3 1000)
run_no_seccomp=$(median_of "$run_csv" 4 1000)
run_limits=""
if [ ${#limits_args[@]} -gt 0 ]; then run_limits=$(median_of "$run_csv" 5 1000); fi
sbox_exec=$(median_of "$exec_csv" 1 1000)
nsenter=$(median_of "$exec_csv" 2 1000)

echo
echo "== medians (ms)"
printf '  %-40s %8s\n' "sbox run -- true" "$sbox_run"
printf '  %-40s %8s\n' "bwrap --unshare-all ... true" "$bwrap"
printf '  %-40s %8s\n' "unshare -Urpfmnui --mount-proc true" "$unshare"
printf '  %-40s %8s\n' "sbox run, seccomp=unconfined" "$run_no_seccomp"
printf '  %-40s %8s\n' "sbox run --memory --cpus --pids" "${run_limits:-n/a}"
printf '  %-40s %8s\n' "sbox exec REF -- true" "$sbox_exec"
printf '  %-40s %8s\n' "nsenter --target SUPERVISOR --all true" "${nsenter:-n/a}"
echo "== ratios"
printf '  %-40s %8s   (target <= 1.0)\n' "sbox run / bwrap" "$(ratio "$sbox_run" "$bwrap")"
printf '  %-40s %8s\n' "sbox run / unshare" "$(ratio "$sbox_run" "$unshare")"
printf '  %-40s %8s\n' "sbox run / the same without seccomp" "$(ratio "$sbox_run" "$run_no_seccomp")"
if [ -n "$run_limits" ]; then
    printf '  %-40s %8s   (with cgroup v1, each join waits for an RCU grace period)\n' \
        "sbox run with cgroup limits / bwrap" "$(ratio "$run_limits" "$bwrap")"
else
    echo "  sbox run with cgroup limits: $limits_note"
fi
printf '  %-40s %8s   (target <= 1.5)\n' "sbox exec / nsenter" "$(if [ -n "$nsenter" ]; then ratio "$sbox_exec" "$nsenter"; else echo n/a; fi)"
echo "== what --network full adds to create (target <= 30 ms)"
if [ -z "$network_note" ]; then
    create_ms=$(median_of "$create_csv" 1 1000)
    create_net_ms=$(median_of "$create_csv" 2 1000)
    added=$(awk -v a="$create_net_ms" -v b="$create_ms" 'BEGIN { printf "%.3f", a - b }')
    printf '  %-40s %8s\n' "sbox create (ms)" "$create_ms"
    printf '  %-40s %8s\n' "sbox create --network full (ms)" "$create_net_ms"
    printf '  %-40s %8s   (target <= 30; %s)\n' "difference (ms)" "$added" \
        "$(awk -v d="$added" 'BEGIN { print (d <= 30 ? "met" : "missed") }')"
else
    echo "  $network_note"
fi
echo "== an idle sandbox's resident memory (target <= 2 MiB)"
echo "$mem_idle"
echo "$mem_after"
