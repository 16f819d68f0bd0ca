#!/usr/bin/env bash
# A throwaway PostgreSQL + PostGIS server for the API tests, on 127.0.0.1 only.
#
#   eval "$(scripts/postgres.sh start)"   # installs if missing, starts, exports GEOALLOC_TEST_POSTGRES_URL
#   scripts/postgres.sh url               # prints the URL of the running server
#   scripts/postgres.sh stop              # stops it (the cluster stays for the next start)
#   scripts/postgres.sh destroy           # stops it and deletes the cluster
#
# Only the export line goes to stdout; progress goes to stderr. Nothing is assumed present:
# PostgreSQL and PostGIS come from Debian's packages (apt-get update first, non-interactive).
# The cluster lives in GEOALLOC_PG_DIR (default /tmp/geoalloc-pg-$UID), owned by the postgres
# user when run as root (the server refuses to run as root), and trusts local connections only:
# it listens on 127.0.0.1 and is for tests, never for data that matters.
set -euo pipefail

PG_DIR="${GEOALLOC_PG_DIR:-/tmp/geoalloc-pg-$(id -u)}"
DB_NAME="${GEOALLOC_PG_DB:-geoalloc_test}"
DATA="$PG_DIR/data"
LOG="$PG_DIR/server.log"
URL_FILE="$PG_DIR/url"

log() { echo "postgres.sh: $*" >&2; }

pg_bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$d" ] && echo "$d"
}

as_owner() {
    # Run a server command as the cluster owner: postgres when we are root, ourselves otherwise.
    if [ "$(id -u)" = "0" ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

install_packages() {
    local bindir major
    bindir=$(pg_bindir || true)
    major=""
    [ -n "$bindir" ] && major=$(basename "$(dirname "$bindir")")
    if [ -n "$major" ] && ls /usr/share/postgresql/"$major"/extension/postgis.control >/dev/null 2>&1; then
        return 0
    fi
    if [ "$(id -u)" != "0" ]; then
        log "PostgreSQL/PostGIS missing and not root: install postgresql and postgis from Debian first"
        exit 1
    fi
    log "installing PostgreSQL + PostGIS from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    if [ -z "$major" ]; then
        apt-get install -y -qq --no-install-recommends postgresql postgresql-contrib >&2
        bindir=$(pg_bindir)
        major=$(basename "$(dirname "$bindir")")
    fi
    apt-get install -y -qq --no-install-recommends "postgresql-$major-postgis-3" >&2
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

is_running() {
    local bindir
    bindir=$(pg_bindir) || return 1
    [ -f "$DATA/postmaster.pid" ] && as_owner "$bindir/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

start() {
    install_packages
    local bindir port url
    bindir=$(pg_bindir)
    if is_running && [ -f "$URL_FILE" ]; then
        log "already running ($(cat "$URL_FILE"))"
        echo "export GEOALLOC_TEST_POSTGRES_URL=$(cat "$URL_FILE")"
        return 0
    fi
    mkdir -p "$PG_DIR"
    if [ "$(id -u)" = "0" ]; then chown postgres: "$PG_DIR"; chmod 0755 "$PG_DIR"; fi
    if [ ! -f "$DATA/PG_VERSION" ]; then
        log "initialising a cluster in $DATA"
        as_owner "$bindir/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 \
            || { cat "$PG_DIR/initdb.log" >&2; exit 1; }
    fi
    port=$(free_port)
    log "starting on 127.0.0.1:$port"
    # Durability settings are off: this server holds test data only, and it makes the suite fast.
    as_owner "$bindir/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
        -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >&2 || { tail -n 30 "$LOG" >&2; exit 1; }
    if ! as_owner "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -Atqc "SELECT 1 FROM pg_database WHERE datname='$DB_NAME'" postgres | grep -q 1; then
        as_owner "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres "$DB_NAME"
    fi
    as_owner "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE EXTENSION IF NOT EXISTS postgis" "$DB_NAME" >&2
    url="postgresql+psycopg://postgres@127.0.0.1:$port/$DB_NAME"
    echo "$url" >"$URL_FILE"
    log "ready: $url"
    echo "export GEOALLOC_TEST_POSTGRES_URL=$url"
}

stop() {
    local bindir
    bindir=$(pg_bindir) || { log "no PostgreSQL installed"; return 0; }
    if is_running; then
        as_owner "$bindir/pg_ctl" -D "$DATA" -m fast -w stop >&2
    else
        log "not running"
    fi
    rm -f "$URL_FILE"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    url) if is_running && [ -f "$URL_FILE" ]; then cat "$URL_FILE"; else log "not running"; exit 1; fi ;;
    destroy) stop; rm -rf "$PG_DIR" ;;
    *) echo "usage: $0 start|stop|url|destroy" >&2; exit 2 ;;
esac
