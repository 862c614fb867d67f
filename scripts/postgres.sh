#!/usr/bin/env bash
# The PostgreSQL server the store tests run against: a private cluster under
# $AUTODIDACT_HOME/pg, listening on 127.0.0.1 only, on a fixed port that is not the default.
# PostgreSQL is installed with apt-get when it is missing. The server refuses to run as root,
# so as root it runs as the `postgres` system user.
#
#   scripts/postgres.sh start   # install if needed, create the cluster once, start it, create
#                               # the database; prints the URL
#   scripts/postgres.sh url     # prints the URL (export it as AUTODIDACT_TEST_PG_URL)
#   scripts/postgres.sh stop    # stops the server (the cluster stays for next time)
#
#   AUTODIDACT_PG_PORT          the port (default 54329)
set -euo pipefail

HOME_DIR="${AUTODIDACT_HOME:-$HOME/.cache/autodidact}"
PORT="${AUTODIDACT_PG_PORT:-54329}"
DB=autodidact_test
PG_DIR="$HOME_DIR/pg"
DATA="$PG_DIR/data"
say() { printf 'postgres.sh: %s\n' "$*" >&2; }
url() { echo "postgres://postgres@127.0.0.1:$PORT/$DB"; }

bindir() {
    local ctl
    ctl="$(ls -d /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -n 1)"
    [ -n "$ctl" ] && dirname "$ctl"
}

# Runs a server command as the cluster's owner.
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

install_if_missing() {
    [ -n "$(bindir)" ] && command -v psql >/dev/null 2>&1 && return 0
    say "installing postgresql with apt-get"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    # We run our own cluster; don't let the package create and start a default one.
    if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
        $SUDO mkdir -p /etc/postgresql-common
        echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.conf >/dev/null
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        -o Dpkg::Options::=--force-confold postgresql >/dev/null
    [ -n "$(bindir)" ] || { say "postgresql installed but pg_ctl not found"; exit 1; }
}

# As root, the postgres user must be able to reach $PG_DIR: give every ancestor that lacks it
# the search (x) bit for others, and nothing more.
grant_traverse() {
    [ "$(id -u)" = 0 ] || return 0
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    mkdir -p "$PG_DIR"
    chown postgres: "$PG_DIR"
    chmod 700 "$PG_DIR"
    local d dirs=()
    d="$(dirname "$PG_DIR")"
    while [ "$d" != "/" ]; do dirs=("$d" "${dirs[@]}"); d="$(dirname "$d")"; done
    for d in "${dirs[@]}"; do  # from the top down
        if ! runuser -u postgres -- test -x "$d"; then
            say "granting search permission on $d to others, so the postgres user reaches $PG_DIR"
            chmod o+x "$d"
        fi
    done
}

running() { [ -f "$DATA/PG_VERSION" ] && as_owner "$(bindir)/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

start() {
    install_if_missing
    grant_traverse
    local bin major
    bin="$(bindir)"
    major="$(basename "$(dirname "$bin")")"
    if [ -f "$DATA/PG_VERSION" ] && [ "$(cat "$DATA/PG_VERSION")" != "$major" ]; then
        say "cluster in $DATA is from PostgreSQL $(cat "$DATA/PG_VERSION"), not $major: recreating it"
        rm -rf "$DATA"
    fi
    if [ ! -f "$DATA/PG_VERSION" ]; then
        as_owner "$bin/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 >/dev/null
    fi
    if ! running; then
        as_owner "$bin/pg_ctl" -D "$DATA" -l "$PG_DIR/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories='$PG_DIR'" \
            start >/dev/null || { say "the server did not start; see $PG_DIR/server.log"; tail -n 20 "$PG_DIR/server.log" >&2; exit 1; }
    fi
    local psql=(psql -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1)
    if ! "${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
        "${psql[@]}" -c "CREATE DATABASE $DB" >/dev/null
    fi
    # Databases the tests made and could not drop (a failed test) are removed here.
    "${psql[@]}" -tAc "SELECT datname FROM pg_database WHERE datname LIKE 'adt\_%'" |
        while read -r name; do
            [ -n "$name" ] && "${psql[@]}" -c "DROP DATABASE IF EXISTS \"$name\"" >/dev/null
        done
    url
}

stop() {
    if [ -n "$(bindir)" ] && running; then
        as_owner "$(bindir)/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    url) url ;;
    *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
