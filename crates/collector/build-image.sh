#!/usr/bin/env bash
# Builds an image as an OCI archive without Docker or the internet, ready for `skiff image load`.
#   crates/collector/build-image.sh [TAG] [OUTPUT]   collector:TAG (default latest)
#   crates/collector/build-image.sh busybox [OUTPUT] busybox:latest from Debian's busybox-static
#   crates/collector/build-image.sh victoria-metrics [OUTPUT]  victoria-metrics:latest from
#     Debian's victoria-metrics (the walkthrough's in-cluster Prometheus)
#   crates/collector/build-image.sh postgres [OUTPUT]  postgres:15 from Debian's postgresql-15,
#     set up on first start as the official image is (POSTGRES_PASSWORD, _USER, _DB, PGDATA)
#   crates/collector/build-image.sh redis [OUTPUT]     redis:7 from Debian's redis-server
# collector:v1 is the article's v1, built with the cargo feature `article-v1`: it stores events
# with an empty source (the bug v2 fixes). collector:v2 is the fix with the article's latency
# regression (cargo feature `article-v2`: each POST answers 100 ms later); every other tag is
# the fixed collector without it.
# OUTPUT defaults to collector-TAG.oci.tar (NAME.oci.tar for the images of other programs).
# The release profile is used unless COLLECTOR_BUILD_PROFILE names another (e.g. dev).
# Uses the musl target for a static binary when it is installed, else copies the binary's
# shared libraries into the image.
set -euo pipefail
tag="${1:-latest}"
case "$tag" in
  busybox | victoria-metrics | postgres | redis) out="${2:-$tag.oci.tar}" ;;
  *) out="${2:-collector-${tag}.oci.tar}" ;;
esac
repo="$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
cargo() { command cargo "$@" --manifest-path "$repo/Cargo.toml"; }
profile="${COLLECTOR_BUILD_PROFILE:-release}"
profile_dir="$profile"
[ "$profile" = dev ] && profile_dir=debug
cargo build -q --profile "$profile" -p collector --bin collector-image
packer="$target_dir/$profile_dir/collector-image"
if [ "$tag" = busybox ]; then
  "$packer" --busybox --binary /bin/busybox --name busybox --tag latest --output "$out"
  exit 0
fi
case "$tag" in
  victoria-metrics)
    exec "$packer" --tool --binary /usr/bin/victoria-metrics --name victoria-metrics --tag latest --output "$out" ;;
  redis)
    # As the official image runs it without a config file: reachable from other pods.
    exec "$packer" --tool --binary /usr/bin/redis-server --name redis --tag 7 \
      --cmd --protected-mode --cmd no --output "$out" ;;
  postgres)
    pg=/usr/lib/postgresql/15
    # initdb needs the share dir, plpgsql and the snowball dictionaries; busybox runs the
    # entrypoint script and what initdb runs through popen(3) as /bin/sh; the time zone is UTC, as in the official image.
    exec "$packer" --tool --binary $pg/bin/postgres --name postgres --tag 15 \
      --add $pg/bin/initdb --add /usr/share/postgresql/15 \
      --add $pg/lib/plpgsql.so --add $pg/lib/dict_snowball.so \
      --add /usr/share/zoneinfo/Etc/UTC --add /bin/busybox:/bin/sh \
      --add "$repo/crates/collector/images/postgres-entrypoint.sh:/usr/local/bin/docker-entrypoint.sh" \
      --entrypoint /usr/local/bin/docker-entrypoint.sh --cmd postgres \
      --env TZ=Etc/UTC --env PGDATA=/var/lib/postgresql/data/pgdata --output "$out" ;;
esac
features=()
[ "$tag" = v1 ] && features=(--features article-v1)
[ "$tag" = v2 ] && features=(--features article-v2)
if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
  cargo build -q --profile "$profile" -p collector --bin collector "${features[@]}" --target x86_64-unknown-linux-musl
  binary="$target_dir/x86_64-unknown-linux-musl/$profile_dir/collector"
else
  cargo build -q --profile "$profile" -p collector --bin collector "${features[@]}"
  binary="$target_dir/$profile_dir/collector"
fi
# A copy: the next build (another tag) overwrites the binary in place. Release builds keep line
# tables for backtraces; the image does not need them.
copy="$(mktemp)"
trap 'rm -f "$copy"' EXIT
cp "$binary" "$copy"
command -v strip >/dev/null 2>&1 && strip "$copy"
"$packer" --binary "$copy" --tag "$tag" --output "$out"
