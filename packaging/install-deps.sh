#!/bin/sh
# Installs the Debian packages that building and testing sbox need. Idempotent: when everything is already
# present it only checks and returns (no apt-get update, no network).
#   packaging/install-deps.sh          what the build and the test suite need
#   packaging/install-deps.sh --bench  also what the benchmarks compare against (hyperfine; bubblewrap is always installed)
# (tar and zstd: the tests check that an exported snapshot is an ordinary .tar.zst. passt: pasta, the network
# stack of --network full; python3: the network tests' servers inside sandboxes, and the fake E2B's terminals.
# bubblewrap and protobuf-compiler: the fake E2B in tests/fakes runs its sandboxes' commands in bubblewrap and builds
# envd's descriptors with protoc. nodejs and npm: tests/fakes/setup.sh runs `npm ci`; they are installed only when
# the `node` or `npm` command is missing, so a newer Node from elsewhere stays; the fakes run on a Node binary of
# their own from npm.)
set -eu
packages="
  g++ cmake ninja-build pkg-config
  libcli11-dev nlohmann-json3-dev libtomlplusplus-dev doctest-dev
  libarchive-dev nettle-dev libseccomp-dev libcurl4-openssl-dev
  uidmap passwd util-linux procps tar zstd
  passt python3 bubblewrap protobuf-compiler
"
if [ "${1:-}" = "--bench" ]; then
  packages="$packages hyperfine"
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages="$packages nodejs npm"
fi
missing=""
for p in $packages; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$status" in
    *" installed") ;;
    *) missing="$missing $p" ;;
  esac
done
if [ -z "$missing" ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages:$missing (run this script as root, or: sudo apt-get install$missing)" >&2
  exit 1
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
