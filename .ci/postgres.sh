#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on 127.0.0.1 for the ledger tests and benchmarks.
#
#   eval "$(bash .ci/postgres.sh)"        # installs if missing, starts, exports the URL
#   source .ci/postgres.sh                # the same, exporting into the sourcing shell
#   bash .ci/postgres.sh stop             # stops the cluster (the next start rebuilds it)
#
# Installs Debian's postgresql package when no server binaries are present, creates a cluster
# under $ORCHESTRATE_PG_DIR (default /tmp/orchestrate-pg) owned by an unprivileged user
# (`postgres` when run as root), starts it on a free loopback port with trust auth, creates
# the database `orchestrate_test`, and prints one line on stdout:
#   export DATABASE_URL_TEST_POSTGRES=postgresql://<user>@127.0.0.1:<port>/orchestrate_test
# (and exports it when sourced). Everything else goes to stderr. Running it again reuses a
# running cluster (idempotent); one that does not answer is rebuilt from scratch.
set -euo pipefail

PG_DIR="${ORCHESTRATE_PG_DIR:-/tmp/orchestrate-pg}"
DATA="$PG_DIR/data"
DB=orchestrate_test

log() { echo "postgres.sh: $*" >&2; }

find_bindir() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

install_if_missing() {
    if [ -n "$(find_bindir)" ] && [ -x "$(find_bindir)/pg_ctl" ]; then
        return
    fi
    if [ "$(id -u)" -ne 0 ]; then
        log "PostgreSQL is not installed; run as root or: apt-get install postgresql"
        exit 1
    fi
    log "installing Debian's postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
}

# The server refuses to run as root: run every server command as the cluster's owner.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

owner_name() {
    if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Ready means accepting connections: a PID file alone can outlive its server (a zombie
# postmaster in a container without an init that reaps it still "exists").
is_ready() {
    [ -f "$PG_DIR/port" ] && [ -f "$DATA/PG_VERSION" ] &&
        "$BIN/pg_isready" -q -h 127.0.0.1 -p "$(cat "$PG_DIR/port")" -t 3
}

init_cluster() {
    mkdir -p "$PG_DIR"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$PG_DIR"; fi
    log "initdb in $DATA"
    as_owner "$BIN/initdb" -D "$DATA" -U "$(owner_name)" -A trust -E UTF8 --no-sync >&2
}

start_cluster() {
    local port
    port="$(free_port)"
    echo "$port" >"$PG_DIR/port.tmp" && mv "$PG_DIR/port.tmp" "$PG_DIR/port"
    log "starting on 127.0.0.1:$port"
    as_owner "$BIN/pg_ctl" start -D "$DATA" -w -t 60 -l "$PG_DIR/server.log" \
        -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=200" >&2
}

create_db() {
    local port="$1"
    if ! as_owner "$BIN/psql" -h 127.0.0.1 -p "$port" -U "$(owner_name)" -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
        as_owner "$BIN/createdb" -h 127.0.0.1 -p "$port" -U "$(owner_name)" "$DB" >&2
    fi
}

main() {
    install_if_missing
    BIN="$(find_bindir)"
    if [ "${1:-start}" = stop ]; then
        if is_ready; then as_owner "$BIN/pg_ctl" stop -D "$DATA" -m fast >&2; fi
        return
    fi
    if ! is_ready; then
        # Whatever is left in the data dir (a killed server, a stale lock) only ever held
        # throwaway test data: start from a fresh cluster rather than repair it.
        if [ -f "$DATA/PG_VERSION" ]; then
            as_owner "$BIN/pg_ctl" stop -D "$DATA" -m immediate -t 5 >&2 2>/dev/null || true
            rm -rf "$DATA"
        fi
        init_cluster
        start_cluster
    fi
    local port
    port="$(cat "$PG_DIR/port")"
    create_db "$port"
    export DATABASE_URL_TEST_POSTGRES="postgresql://$(owner_name)@127.0.0.1:$port/$DB"
    echo "export DATABASE_URL_TEST_POSTGRES=$DATABASE_URL_TEST_POSTGRES"
}

main "$@"
