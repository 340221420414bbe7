#!/usr/bin/env bash
# Helpers shared by scripts/run, scripts/test and the benchmarks. Source this
# file; it does nothing on its own:
#
#     source "$(dirname "$0")/lib.sh"
#
# Progress messages go to standard error, so that standard output stays free
# for values (free_port prints a port number) and for the program being run.
set -euo pipefail

# ---------------------------------------------------------------- messages --

say() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# ------------------------------------------------------ privileges, packages --

# Run a command as root: directly if we are root, through sudo otherwise.
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "need root to run '$*', and sudo is not available"
    fi
}

# Install Debian packages. The package lists are refreshed first, because a
# fresh machine (or container) may have none; we only get here when something
# is actually missing, so the common case costs nothing.
apt_install() {
    if [[ $EUID -ne 0 ]] && ! command -v sudo >/dev/null; then
        die "please install these packages (as root): $*"
    fi
    command -v apt-get >/dev/null ||
        die "apt-get not found: please install these packages yourself: $*"
    say "installing $*"
    # env passes the setting through sudo; noninteractive: never ask questions,
    # CI has no terminal to answer them.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -q update >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -q install -y "$@" >&2
}

# ----------------------------------------------------------------- programs --

# The major version of the PostgreSQL server in bin directory DIR ("15"),
# or 0 if there is none there.
pg_major() {
    local version
    version=$("$1/initdb" --version 2>/dev/null) || { echo 0; return 0; }
    # "initdb (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)" -> "15"
    version=${version#*) }
    echo "${version%%.*}"
}

# Print the newest PostgreSQL >= 15 server bin directory on this machine, or
# nothing if there is none.
find_pg_bin() {
    local initdb dir
    # Debian installs each major version side by side, in
    # /usr/lib/postgresql/<major>/bin; sort -rV puts the newest first.
    while read -r initdb; do
        dir=${initdb%/initdb}
        if (( $(pg_major "$dir") >= 15 )); then
            echo "$dir"
            return 0
        fi
    done < <(printf '%s\n' /usr/lib/postgresql/*/bin/initdb | sort -rV)
    # Other systems put initdb on the PATH.
    if initdb=$(command -v initdb); then
        dir=$(dirname "$(readlink -f "$initdb")")
        if (( $(pg_major "$dir") >= 15 )); then
            echo "$dir"
        fi
    fi
    return 0
}

# Make sure the PostgreSQL (>= 15) server programs exist; set PG_BIN to their
# directory. A PG_BIN given in the environment is used as it is.
ensure_postgres() {
    if [[ -n ${PG_BIN:-} && -x ${PG_BIN}/initdb ]]; then
        export PG_BIN
        return 0
    fi
    PG_BIN=$(find_pg_bin)
    if [[ -z $PG_BIN ]]; then
        apt_install postgresql
        PG_BIN=$(find_pg_bin)
        [[ -n $PG_BIN ]] || die "PostgreSQL >= 15 server programs not found after installing"
    fi
    export PG_BIN
}

# Make sure the pg_stat_statements extension exists (Debian ships it with the server; some
# packagings keep it in postgresql-contrib). Call ensure_postgres first.
ensure_pg_stat_statements() {
    [[ -f $("$PG_BIN/pg_config" --sharedir)/extension/pg_stat_statements.control ]] ||
        apt_install postgresql-contrib
}

# Make sure Chromium and its WebDriver (chromedriver) exist, for the browser
# tests. CHROMIUM and CHROMEDRIVER from the environment win when they point
# at programs; otherwise the Debian ones are used, installed if missing.
ensure_browser() {
    if [[ -n ${CHROMIUM:-} && ! -x $CHROMIUM ]]; then
        say "ignoring CHROMIUM=$CHROMIUM: not an executable file"
        CHROMIUM=
    fi
    if [[ -n ${CHROMEDRIVER:-} && ! -x $CHROMEDRIVER ]]; then
        say "ignoring CHROMEDRIVER=$CHROMEDRIVER: not an executable file"
        CHROMEDRIVER=
    fi
    CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
    CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
    if [[ ! -x $CHROMIUM || ! -x $CHROMEDRIVER ]]; then
        apt_install chromium chromium-driver
    fi
    [[ -x $CHROMIUM ]] || die "$CHROMIUM not found after installing chromium"
    [[ -x $CHROMEDRIVER ]] || die "$CHROMEDRIVER not found after installing chromium-driver"
    export CHROMIUM CHROMEDRIVER
}

# Make sure nginx exists, for scripts/proxy; set NGINX_PROGRAM to it (an
# NGINX_PROGRAM from the environment wins when it is executable). Not exported, and
# not named NGINX: nginx reads a variable of that name as sockets handed over to it.
# Debian's nginx-light is enough (where services start on install, it also starts its
# own default site, which scripts/proxy never uses).
ensure_nginx() {
    if [[ -n ${NGINX_PROGRAM:-} && ! -x $NGINX_PROGRAM ]]; then
        say "ignoring NGINX_PROGRAM=$NGINX_PROGRAM: not an executable file"
        NGINX_PROGRAM=
    fi
    NGINX_PROGRAM=${NGINX_PROGRAM:-/usr/sbin/nginx}
    [[ -x $NGINX_PROGRAM ]] || apt_install nginx-light
    [[ -x $NGINX_PROGRAM ]] || die "$NGINX_PROGRAM not found after installing nginx-light"
}

# The versions of cargo-audit and cargo-deny that scripts/audit runs (and pins in
# scripts/audit-tools.txt for the prebuilt ones).
AUDIT_VERSION=0.22.2
DENY_VERSION=0.20.2

# Where the audit tools are installed once and kept: a cache that outlives the
# clone (CI's fresh clone included) on the same machine.
audit_tools_dir() {
    echo "${SS_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/secure-sessions/tools}"
}

# True if cargo-audit and cargo-deny of the pinned versions are on the PATH.
audit_tools_present() {
    [[ $(cargo-audit --version 2>/dev/null) == "cargo-audit $AUDIT_VERSION" ]] &&
        [[ $(cargo-deny --version 2>/dev/null) == "cargo-deny $DENY_VERSION" ]]
}

# Make sure cargo-audit and cargo-deny (the pinned versions) are on the PATH,
# installing them once into audit_tools_dir where missing. On Linux x86_64
# they come prebuilt, as hash-pinned Python wheels (seconds); elsewhere they
# are built with `cargo install --locked` (about 10 minutes of CPU, once).
# Prints one line saying which, on standard error.
ensure_audit_tools() {
    local dir
    dir=$(audit_tools_dir)
    export PATH="$dir/bin:$PATH"
    if audit_tools_present; then
        say "supply chain: using cargo-audit $AUDIT_VERSION and cargo-deny $DENY_VERSION ($(dirname "$(command -v cargo-deny)"))"
        return 0
    fi
    mkdir -p "$dir/bin"
    if [[ $(uname -sm) == "Linux x86_64" ]] && python3 -m pip --version >/dev/null 2>&1; then
        say "supply chain: installing prebuilt cargo-audit $AUDIT_VERSION and cargo-deny $DENY_VERSION into $dir (once)"
        local wheels
        wheels=$(mktemp -d)
        # Downloading (not installing) needs no virtual environment; --require-hashes refuses
        # any file but the pinned ones.
        python3 -m pip download -q --no-deps --only-binary=:all: --require-hashes \
            -r scripts/audit-tools.txt -d "$wheels" >&2 &&
            python3 - "$wheels" "$dir/bin" <<'PY'
import pathlib, sys, zipfile
wheels, bin_dir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for wheel in wheels.glob("*.whl"):
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if ".data/scripts/" in name:
                target = bin_dir / name.rsplit("/", 1)[1]
                target.write_bytes(archive.read(name))
                target.chmod(0o755)
PY
        rm -rf "$wheels"
    fi
    if ! audit_tools_present; then
        say "supply chain: building cargo-audit $AUDIT_VERSION and cargo-deny $DENY_VERSION into $dir (once; about 10 minutes of CPU)"
        cargo install --locked --quiet --root "$dir" "cargo-audit@$AUDIT_VERSION" "cargo-deny@$DENY_VERSION" >&2
    fi
    audit_tools_present || die "cargo-audit $AUDIT_VERSION and cargo-deny $DENY_VERSION are not usable after installing"
}

# The accessibility checker the browser tests run on every page they look at:
# axe-core, from its npm package, pinned. Fetched once into target/axe-core/
# (npm verifies the package's integrity); AXE_CORE_JS names the script.
AXE_CORE_VERSION=4.11.0
ensure_axe() {
    local dir=target/axe-core/$AXE_CORE_VERSION
    if [[ ! -f $dir/axe.min.js ]]; then
        command -v npm >/dev/null || apt_install npm
        say "fetching axe-core $AXE_CORE_VERSION (npm package) into $dir"
        local tmp
        tmp=$(mktemp -d)
        (cd "$tmp" && npm pack --silent "axe-core@$AXE_CORE_VERSION" >/dev/null) ||
            { rm -rf "$tmp"; die "could not fetch the axe-core npm package"; }
        mkdir -p "$dir"
        tar -xzf "$tmp"/axe-core-*.tgz -C "$tmp"
        cp "$tmp/package/axe.min.js" "$tmp/package/LICENSE" "$dir/"
        rm -rf "$tmp"
    fi
    AXE_CORE_JS=$PWD/$dir/axe.min.js
    export AXE_CORE_JS
}

# -------------------------------------------------------------------- ports --

# Print the first TCP port >= START on which nothing listens on 127.0.0.1.
# Bash opens a connection with the special file /dev/tcp/HOST/PORT: if the
# connection is accepted, the port is taken. Something could still take the
# port between this check and its use: pg_cluster_start retries with the next
# free port; scripts/e2e and scripts/bench fail, saying the app did not start.
free_port() {
    local port=${1:?usage: free_port START}
    [[ $port =~ ^[0-9]+$ ]] && (( port >= 1 && port <= 65535 )) ||
        die "free_port: not a TCP port number (1 to 65535): $port"
    while (( port <= 65535 )); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
        say "port $port is taken on 127.0.0.1; trying the next one"
        port=$((port + 1))
    done
    die "free_port: every TCP port from $1 to 65535 is taken on 127.0.0.1"
}

# ---------------------------------------------------------------- PostgreSQL --

# PostgreSQL refuses to run as root. When we are root, run its programs as the
# "postgres" user, from "/" so that the working directory is readable by it.
as_pg() {
    if [[ $EUID -eq 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# True if the postgres user (or we, when not root) can reach directory DIR:
# it, and every directory above it, must be traversable.
pg_can_reach() {
    as_pg test -x "$1" 2>/dev/null
}

# A cluster's postmaster.pid file: line 1 is the server's process id, line 4
# its port. The file stays behind when the server is killed or the machine
# crashes, and by then its process may be a zombie (dead, but not yet reaped
# by its parent) or the process id may belong to some other program.
#
# pg_process_kind PID DIR prints what process PID is now:
#   server    the live server of the cluster in DIR ("postgres -D DIR ...")
#   postgres  some other live PostgreSQL process
#   none      gone, a zombie, or another program
pg_process_kind() {
    local pid=$1 dir=$2 args
    if [[ ! $pid =~ ^[0-9]+$ || ! -d /proc/$pid ]]; then
        echo none
    elif grep -q '^State:.*zombie' "/proc/$pid/status" 2>/dev/null; then
        echo none
    elif [[ $(cat "/proc/$pid/comm" 2>/dev/null) != postgres ]]; then
        echo none
    elif args=$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline") &&
            grep -qxF -- "$dir" <<<"$args"; then
        echo server
    else
        echo postgres
    fi
}

# pg_cluster_start DIR [throwaway]
#
# Start the PostgreSQL cluster in DIR, creating it first if DIR holds none.
# It listens on 127.0.0.1 only, on the first free port from 55432, without a
# Unix socket; the superuser is "postgres" and needs no password (trust).
# Its log is the file DIR.log next to DIR.
# "throwaway" trades crash safety for speed, for clusters deleted afterwards.
# PG_SERVER_OPTIONS, when set, adds server options ("-c name=value ...").
# Sets and exports PG_DATA_DIR and PG_PORT.
pg_cluster_start() {
    local dir=${1:?usage: pg_cluster_start DIR [throwaway]} mode=${2:-}
    : "${PG_BIN:?call ensure_postgres first}"

    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd -P)   # absolute: the programs run from "/"
    local log=$dir.log

    if [[ $EUID -eq 0 ]]; then
        id -u postgres >/dev/null 2>&1 ||
            die "running as root, but there is no 'postgres' user to run PostgreSQL as"
        # The data directory, and the log beside it, must belong to postgres.
        touch "$log"
        chown postgres: "$dir" "$log"
    fi
    pg_can_reach "$dir" ||
        die "the postgres user cannot reach $dir: every directory above it must be traversable (chmod o+x)"

    PG_DATA_DIR=$dir
    export PG_DATA_DIR

    if [[ -f $dir/postmaster.pid ]]; then
        local pid
        pid=$(head -n 1 "$dir/postmaster.pid")
        case $(pg_process_kind "$pid" "$dir") in
        server)
            # Still running: a previous run was killed before it could stop
            # the server. Use it as it is.
            PG_PORT=$(sed -n 4p "$dir/postmaster.pid")
            export PG_PORT
            pg_wait_ready
            say "reusing the PostgreSQL server already running in $dir on port $PG_PORT"
            return 0
            ;;
        none)
            # Left over from a crash. Remove it: PostgreSQL would refuse to
            # start while process $pid exists, even as a zombie or another
            # program. (It still refuses if old server processes are attached
            # to the cluster's shared memory, so this is safe.)
            say "removing the stale $dir/postmaster.pid"
            rm -f "$dir/postmaster.pid"
            ;;
        postgres)
            # Let PostgreSQL decide; it says why in the log if it refuses.
            ;;
        esac
    fi

    if [[ ! -f $dir/PG_VERSION ]]; then
        say "creating a PostgreSQL cluster in $dir"
        # -A trust: no passwords; the server only listens on 127.0.0.1.
        as_pg "$PG_BIN/initdb" -D "$dir" -U postgres -A trust --no-sync \
            -E UTF8 --locale=C.UTF-8 >"$log.initdb" 2>&1 || {
            cat "$log.initdb" >&2
            die "initdb failed"
        }
        rm -f "$log.initdb"
    fi

    # -k '': no Unix socket, so nothing is written to /var/run/postgresql or
    # /tmp, and clusters cannot collide there; connect with -h 127.0.0.1.
    local options="-k '' -c listen_addresses=127.0.0.1"
    if [[ $mode == throwaway ]]; then
        # Never wait for the disk: the data is deleted afterwards anyway.
        options+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        # Tests run in parallel, each with its own database and connection
        # pool: leave room for more than the default 100 connections.
        options+=" -c max_connections=300"
    fi
    options+=" ${PG_SERVER_OPTIONS:-}"

    # Another program may grab the port between free_port and the start, so
    # try the next free ones a few times before giving up.
    local port=55432
    for _ in 1 2 3 4 5; do
        port=$(free_port "$port")
        # -w: return once the server accepts connections.
        if as_pg "$PG_BIN/pg_ctl" -D "$dir" -l "$log" -w -s \
                -o "-p $port $options" start; then
            PG_PORT=$port
            export PG_PORT
            say "PostgreSQL is running in $dir on 127.0.0.1:$PG_PORT (log: $log)"
            return 0
        fi
        say "could not start PostgreSQL on port $port; trying the next free one"
        port=$((port + 1))
    done
    tail -n 20 "$log" >&2 || true
    die "could not start PostgreSQL in $dir (log: $log)"
}

# Wait until the server on PG_PORT accepts connections: a reused server may
# still be starting, e.g. recovering after a crash.
pg_wait_ready() {
    for _ in $(seq 60); do
        "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && return 0
        sleep 0.5
    done
    die "no PostgreSQL server answers on 127.0.0.1:$PG_PORT (data: $PG_DATA_DIR)"
}

# pg_cluster_stop DIR: stop the cluster in DIR; quietly nothing if it is not
# running. "fast" disconnects clients instead of waiting for them.
pg_cluster_stop() {
    local dir=${1:?usage: pg_cluster_stop DIR}
    : "${PG_BIN:?call ensure_postgres first}"
    [[ -f $dir/postmaster.pid ]] || return 0
    dir=$(cd "$dir" && pwd -P)
    local pid
    pid=$(head -n 1 "$dir/postmaster.pid")
    [[ $(pg_process_kind "$pid" "$dir") != none ]] || return 0
    as_pg "$PG_BIN/pg_ctl" -D "$dir" -m fast -w -s stop
}

# psql, connected as the superuser to the cluster started above. The server
# and client versions match when PG_BIN has a psql.
pg_psql() {
    local psql=psql
    [[ -x ${PG_BIN:-}/psql ]] && psql=$PG_BIN/psql
    "$psql" -X -q -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "${PG_PORT:?start a cluster first}" -U postgres "$@"
}

# pg_create_db NAME: create database NAME unless it exists.
pg_create_db() {
    local name=${1:?usage: pg_create_db NAME}
    # SQL has no CREATE DATABASE IF NOT EXISTS: build the statement only when
    # the database is missing, and let \gexec run it. psql quotes the name
    # (:'db' as a literal, %I as an identifier), so any name is safe.
    pg_psql -d postgres -v db="$name" <<'SQL'
SELECT format('CREATE DATABASE %I', :'db')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')
\gexec
SQL
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
