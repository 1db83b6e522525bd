#!/bin/sh
# The entrypoint of the postgres image `crates/collector/build-image.sh postgres` builds from
# Debian's PostgreSQL: what the official image's docker-entrypoint.sh does with the settings it
# documents. On an empty PGDATA, initdb with POSTGRES_USER (default postgres) and
# POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust), password logins from any
# address, and POSTGRES_DB (default the user's name) created; then postgres listening on every
# address. Any other command runs as given.
set -eu
bin=/usr/lib/postgresql/15/bin
if [ "$#" -gt 0 ] && [ "$1" != postgres ]; then exec "$@"; fi
[ "$#" -gt 0 ] && shift
: "${PGDATA:=/var/lib/postgresql/data/pgdata}"
export PGDATA
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
    echo "Error: Database is uninitialized and superuser password is not specified." >&2
    echo "       Set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust)." >&2
    exit 1
  fi
  mkdir -p "$PGDATA"
  chmod 700 "$PGDATA"
  pwfile="/tmp/pwfile.$$"
  printf '%s\n' "${POSTGRES_PASSWORD:-}" > "$pwfile"
  "$bin/initdb" --username="$user" --pwfile="$pwfile" --encoding=UTF8 --locale=C \
    --auth-local=trust --auth-host="$auth"
  rm -f "$pwfile"
  echo "host all all all $auth" >> "$PGDATA/pg_hba.conf"
  if [ "$db" != postgres ]; then
    echo "CREATE DATABASE \"$db\"" | "$bin/postgres" --single -D "$PGDATA" postgres > /dev/null
  fi
  echo "PostgreSQL init process complete; ready for start up."
fi
exec "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp "$@"
