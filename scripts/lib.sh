#!/usr/bin/env bash
# Helpers for bash scripts (every script in scripts/ is now an entry point of cargo xtask, and
# none sources this file). Source this file; it does nothing on its own:
#
#     source "$(dirname "$0")/lib.sh"
#
# Debian packages, free ports and PostgreSQL clusters come from the project's tools
# (`cargo xtask helper`, xtask/src/helper.rs), which share the clusters' code with the tests
# (crates/pg-cluster). Progress messages go to standard error, so that standard output stays
# free for values (free_port prints a port number) and for the program being run.
set -euo pipefail

# ---------------------------------------------------------------- messages --

say() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# The tools' helper, its messages under this script's name.
helper() {
    command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (rustup), then run this again"
    cargo xtask helper --as "${0##*/}" "$@"
}

# ------------------------------------------------------ packages and ports --

# Install Debian packages (as root, or through sudo), with noninteractive apt-get.
apt_install() { helper install "$@" || exit 1; }

# Print the first TCP port >= START on which nothing listens on 127.0.0.1. Something could still
# take the port between this check and its use: scripts/bench then fails, saying the app did not
# start.
free_port() { helper free-port "${1:?usage: free_port START}" || exit 1; }

# ---------------------------------------------------------------- PostgreSQL --

# Make sure the PostgreSQL (>= 15) server programs exist (installed if missing); set and export
# PG_BIN to their directory. A PG_BIN given in the environment is used as it is.
ensure_postgres() {
    PG_BIN=$(helper pg-bin) || exit 1
    export PG_BIN
}

# Make sure the pg_stat_statements extension exists. Call ensure_postgres first.
ensure_pg_stat_statements() { helper pg-bin --stat-statements >/dev/null || exit 1; }

# pg_cluster_start DIR [throwaway]
#
# Start the PostgreSQL cluster in DIR, creating it first if DIR holds none (a server left running
# there is reused). It listens on 127.0.0.1 only, on the first free port from 55432, without a
# Unix socket; the superuser is "postgres" and needs no password (trust); as root, it runs as
# the postgres user. Its log is the file DIR.log next to DIR. "throwaway" trades crash safety
# for speed, for clusters deleted afterwards. PG_SERVER_OPTIONS, when set, adds server options
# ("-c name=value ..."). Sets and exports PG_DATA_DIR and PG_PORT.
pg_cluster_start() {
    local settings
    settings=$(helper pg-start "$@") || exit 1
    eval "$settings"
    export PG_DATA_DIR PG_PORT
}

# pg_cluster_stop DIR: stop the cluster in DIR; quietly nothing if it is not running.
pg_cluster_stop() { helper pg-stop "${1:?usage: pg_cluster_stop DIR}"; }

# psql, connected as the superuser to the cluster started above. The server and client versions
# match when PG_BIN has a psql.
pg_psql() {
    local psql=psql
    [[ -x ${PG_BIN:-}/psql ]] && psql=$PG_BIN/psql
    "$psql" -X -q -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "${PG_PORT:?start a cluster first}" -U postgres "$@"
}

# pg_create_db NAME: create database NAME on the cluster started above, unless it exists.
pg_create_db() {
    helper pg-create-db "${PG_PORT:?start a cluster first}" "${1:?usage: pg_create_db NAME}" || exit 1
}

# ---------------------------------------------------------------- measurement --

# CPU time (clock ticks) of a process; with "tree", plus its children's, live and exited
# (PostgreSQL's backends are children of its postmaster).
ticks() {
    local pid=$1 total child
    if [[ ${2:-} == tree ]]; then
        total=$(stat_fields "$pid" '$12 + $13 + $14 + $15')
        for child in $(ps -o pid= --ppid "$pid"); do
            total=$(( total + $(stat_fields "$child" '$12 + $13' || echo 0) ))
        done
    else
        total=$(stat_fields "$pid" '$12 + $13')
    fi
    echo "$total"
}
# Fields of /proc/PID/stat after "pid (name) ": $12 utime, $13 stime, $14 cutime, $15 cstime.
stat_fields() { awk "{ sub(/^.*\\) /, \"\"); print $2 }" "/proc/$1/stat" 2>/dev/null; }
