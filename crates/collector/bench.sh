#!/usr/bin/env bash
# Reproduces the collector figures in docs/benchmarks.md ("collector" section).
#   crates/collector/bench.sh                 # SQLite
#   PG='host=127.0.0.1 port=5433 user=postgres dbname=bench' crates/collector/bench.sh   # Postgres
# Server and load generator run on this machine (loopback only) and share its cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p collector -p skiff-bench --bin collector --bin collector-load
R="${CARGO_TARGET_DIR:-target}/release"
port=18089
addr="127.0.0.1:$port"
data=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT
start() {
  if [ -n "${PG:-}" ]; then
    POSTGRES_CONNECTION_STRING="$PG" "$R/collector" --listen-addr "$addr" --log-level warn &
  else
    "$R/collector" --listen-addr "$addr" --data-dir "$data" --log-level warn &
  fi
  pid=$!
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && return; sleep 0.1; done
  echo "collector did not start" >&2; exit 1
}
load() { "$R/collector-load" --addr "$addr" "$@"; }

start
load ingest --batch 1 --concurrency 64 --seconds 10
load ingest --batch 100 --concurrency 16 --seconds 10
load ingest --batch 1000 --concurrency 8 --seconds 10
kill "$pid"; wait "$pid" || true
rm -rf "${data:?}"/*
[ -n "${PG:-}" ] && psql "$PG" -qc 'TRUNCATE events'
start
load fill --total 1000000 --batch 1000
load get --seconds 10 --path '/events?limit=100'
load get --seconds 10 --path '/events?source=svc-3&limit=100'
load get --seconds 10 --path '/events?limit=1000'
load fill --total 9000000 --batch 1000
load rss
load get --seconds 10 --path '/events?limit=100'
load rss
