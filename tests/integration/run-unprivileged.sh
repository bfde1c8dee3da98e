#!/bin/bash
# Runs the integration tests of the "rootless-capable" suite (isolation and lifecycle) as an unprivileged user,
# so that sbox's rootless mode is proven too. Registered with CTest (tests/CMakeLists.txt); exit 77 = skipped.
#
#   tests/integration/run-unprivileged.sh SBOX_BINARY INTEGRATION_TEST_BINARY [doctest options...]
#
# As root it creates (once) the user `sbox-test` with subordinate uid/gid ranges, copies both binaries to a fresh
# directory that user can read (the build directory may be under /root, mode 0700), and runs the test binary
# there as that user with a clean environment.
set -euo pipefail

user=sbox-test
if [ $# -lt 2 ]; then
    echo "usage: $0 SBOX_BINARY INTEGRATION_TEST_BINARY [doctest options...]" >&2
    exit 2
fi
sbox_bin=$1
test_bin=$2
shift 2

if [ "$(id -u)" -ne 0 ]; then
    echo "run-unprivileged: skipped: needs root to create and switch to the user $user" >&2
    exit 77
fi
for tool in useradd usermod setpriv unshare; do
    if ! command -v "$tool" >/dev/null; then
        echo "run-unprivileged: skipped: $tool is not installed (packaging/install-deps.sh installs it)" >&2
        exit 77
    fi
done

# The user, idempotently, with a home directory (the tests put a marker there) and subordinate id ranges
# (rootless sbox maps them through newuidmap/newgidmap).
if ! id "$user" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/sh --comment "sbox rootless tests" "$user" 2>/dev/null ||
        id "$user" >/dev/null 2>&1 # a concurrent run may have created it meanwhile
fi
home=$(getent passwd "$user" | cut -d: -f6)
if [ ! -d "$home" ]; then
    mkdir -p "$home"
    chown "$user:$user" "$home"
    chmod 0755 "$home"
fi
if ! grep -q "^$user:" /etc/subuid 2>/dev/null; then
    usermod --add-subuids 200000-265535 "$user"
fi
if ! grep -q "^$user:" /etc/subgid 2>/dev/null; then
    usermod --add-subgids 200000-265535 "$user"
fi

as_user() {
    setpriv --reuid="$user" --regid="$user" --init-groups --reset-env "$@"
}

# Can this user make a user namespace at all? Not in a chroot, nor where the administrator turned it off.
if ! probe=$(cd / && as_user unshare --user true 2>&1); then
    echo "run-unprivileged: skipped: the kernel refuses user namespaces to unprivileged users here: $probe" >&2
    exit 77
fi

dir=$(mktemp -d /tmp/sbox-rootless-XXXXXX)
# shellcheck disable=SC2317 # called through the trap
cleanup() {
    rm -rf --one-file-system "$dir"
}
trap cleanup EXIT
chmod 0755 "$dir"
install -m 0755 "$sbox_bin" "$dir/sbox"
# sbox's modules (archive support for cp and snapshots) are found beside the binary.
if [ -d "$(dirname "$sbox_bin")/modules" ]; then
    mkdir -p "$dir/modules"
    install -m 0755 "$(dirname "$sbox_bin")"/modules/*.so "$dir/modules/"
fi
install -m 0755 "$test_bin" "$dir/sbox_integration_tests"
# The syscall probe of the hardening tests, built beside the test binary.
if [ -x "$(dirname "$test_bin")/sbox-syscall-probe" ]; then
    install -m 0755 "$(dirname "$test_bin")/sbox-syscall-probe" "$dir/sbox-syscall-probe"
fi

echo "run-unprivileged: running the rootless-capable tests as $user ($(id -u "$user")), sbox in $dir" >&2
cd "$dir"
# The tests' own directories go under $dir, so the clean-up below touches this run's only (runs of other
# worktrees may be going on as the same user).
mkdir -m 0755 "$dir/tmp"
chown "$user:$user" "$dir/tmp"
tests=(setpriv --reuid="$user" --regid="$user" --init-groups --reset-env
    env HOME="$home" SBOX_BIN="$dir/sbox" SBOX_SYSCALL_PROBE="$dir/sbox-syscall-probe" NO_COLOR=1
    SBOX_TEST_TMPDIR="$dir/tmp"
    "$dir/sbox_integration_tests" --test-suite=rootless-capable "$@")
set +e
if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
    # --network full needs /dev/net/tun open to the user, as Debian's udev rules make it (mode 0666). Where it
    # is not (in a container, say), the tests run in a mount namespace of their own that has such a node, so
    # that rootless networking is tested as on a stock machine, and the host's node stays as it is.
    echo "run-unprivileged: /dev/net/tun is mode $(stat -c %a /dev/net/tun); the tests get a private 0666 one" >&2
    # shellcheck disable=SC2016 # expanded by the inner shell
    unshare --mount --propagation private sh -c \
        'mount -t tmpfs -o mode=0755,size=16k sbox-tun /dev/net && mknod -m 0666 /dev/net/tun c 10 200 && exec "$@"' \
        sh "${tests[@]}"
else
    "${tests[@]}"
fi
rc=$?
set -e

# Whatever a failed test could not remove belongs to the test user; report it and take it away.
for left in "$dir"/tmp/sbox-it-*; do
    [ -e "$left" ] || continue
    [ "$(stat -c %U "$left")" = "$user" ] || continue
    echo "run-unprivileged: a test left $left behind; removing it" >&2
    (cd / && as_user env SBOX_ROOT="$left" "$dir/sbox" kill --all) || true
    rm -rf --one-file-system "$left"
done
exit $rc
