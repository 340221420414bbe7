# The entry points in scripts/ run the project's tools, written in Rust (xtask/), through cargo:
#
#     source scripts/xtask.sh; exec_xtask COMMAND "$@"
#
# `cargo xtask` builds them first if needed (seconds; the first time, with the crates it needs).
# The command then runs as this script's process: signals sent to it reach the tool.

exec_xtask() {
    if ! command -v cargo >/dev/null; then
        printf '%s: error: cargo not found: install the Rust toolchain (rustup), then run this again\n' \
            "${0##*/}" >&2
        exit 1
    fi
    exec cargo xtask "$@"
}
