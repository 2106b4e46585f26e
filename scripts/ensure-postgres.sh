#!/usr/bin/env sh
# Start a throwaway PostgreSQL server for the sink tests (tests/test_sinks.py) and print its DSN
# as the last line of stdout. Idempotent: a server already running on the port is reused.
# Installs Debian's `postgresql` package when initdb is missing and we may
# (scripts/apt-install.sh); otherwise says how and exits 0 without a DSN, and the PostgreSQL
# tests skip with that reason. As root the server runs as the `postgres` user
# (PostgreSQL refuses to run as root).
#   PROPENSITY_PG_DIR   data folder (default /tmp/propensity-pg-<uid>)
#   PROPENSITY_PG_PORT  TCP port on 127.0.0.1 (default 55432)
set -eu

DIR="${PROPENSITY_PG_DIR:-/tmp/propensity-pg-$(id -u)}"
PORT="${PROPENSITY_PG_PORT:-55432}"
DSN="postgresql://postgres@127.0.0.1:${PORT}/postgres"

find_bin() {
    for d in /usr/lib/postgresql/*/bin; do
        if [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
    done
    if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return 0; fi
    return 1
}

if ! BIN="$(find_bin)"; then
    sh "$(dirname "$0")/apt-install.sh" postgresql "the sink tests" || exit 0
    BIN="$(find_bin)"
fi

# as root, run the server's tools as the postgres user
AS=""
if [ "$(id -u)" -eq 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
        useradd --system --no-create-home postgres
    fi
    AS="runuser -u postgres --"
fi

if [ ! -f "$DIR/PG_VERSION" ]; then
    rm -rf "$DIR"
    mkdir -p "$DIR"
    [ -n "$AS" ] && chown postgres "$DIR"
    chmod 700 "$DIR"
    $AS "$BIN/initdb" -D "$DIR" -U postgres --auth=trust --no-sync >/dev/null
fi
if ! $AS "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
    # fsync off: a test server only; the sink's atomicity comes from transactions, not disks
    $AS "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w -t 30 \
        -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
fi
echo "postgres: running on 127.0.0.1:$PORT (data in $DIR)" >&2
echo "$DSN"
