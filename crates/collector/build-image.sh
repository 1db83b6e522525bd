#!/usr/bin/env bash
# Builds collector:<tag> as an OCI archive without Docker, ready for `skiff image load`.
#   crates/collector/build-image.sh [TAG] [OUTPUT]
# Uses the musl target for a static binary when it is installed, else copies the binary's
# shared libraries into the image.
set -euo pipefail
tag="${1:-latest}"
cd "$(dirname "$0")/../.."
out="${2:-collector-${tag}.oci.tar}"
target_dir="${CARGO_TARGET_DIR:-target}"
if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
  cargo build --release -p collector --bin collector --target x86_64-unknown-linux-musl
  binary="$target_dir/x86_64-unknown-linux-musl/release/collector"
else
  cargo build --release -p collector --bin collector
  binary="$target_dir/release/collector"
fi
# Release builds keep line tables for backtraces; the image does not need them.
if command -v strip >/dev/null 2>&1; then
  stripped="$(mktemp)"
  trap 'rm -f "$stripped"' EXIT
  cp "$binary" "$stripped" && strip "$stripped" && binary="$stripped"
fi
cargo run --release -q -p collector --bin collector-image -- --binary "$binary" --tag "$tag" --output "$out"
