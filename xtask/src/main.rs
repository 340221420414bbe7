//! The project's tools, run as `cargo xtask COMMAND [ARGUMENTS...]`; `scripts/COMMAND` is the
//! entry point of each (docs/development.md, "Tools"):
//!
//! - `test`: the checks (fmt, clippy, doc), then the tests against a throwaway PostgreSQL;
//! - `run`: the app for a person, with a private PostgreSQL kept in `.data/postgres`;
//! - `audit`: the supply-chain audit (cargo audit, cargo deny);
//! - `e2e`: the example end-to-end suite against the app in test mode;
//! - `sqlx-prepare`: regenerates `.sqlx/`, the query data the build checks SQL against;
//! - `proxy`: the app served through nginx;
//! - `mutants`: mutation testing of the security modules;
//! - `bench`: the release build's speed against the database's own limit (docs/benchmarks.md);
//! - `bench-sign-in-timing`: a wrong password's time, real account against unknown name;
//! - `bench-frameworks`: bare Rocket against bare axum at 32 and 128 connections;
//! - `ci`: CI's run (`.ci/run`): scripts/test and scripts/run in a fresh clone.
//!
//! PostgreSQL clusters come from the `pg-cluster` crate, which the tests use too. Progress goes
//! to standard error, each line starting with the command's name.

mod audit;
mod bench;
mod bench_frameworks;
mod bench_sign_in_timing;
mod ci;
mod e2e;
mod http;
mod mutants;
mod process;
mod proxy;
mod run;
mod sqlx_prepare;
mod test;
mod tools;

use std::process::ExitCode;

pub use process::{Context, Failure, Outcome};

const USAGE: &str = "usage: cargo xtask COMMAND [ARGUMENTS...]
commands: test, run, audit, e2e, sqlx-prepare, proxy, mutants, bench, bench-sign-in-timing,
bench-frameworks (scripts/COMMAND runs each), ci (.ci/run runs it)";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(command) = args.next() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let args: Vec<String> = args.collect();
    pg_cluster::set_name(&command);
    // The commands work from the repository's root, wherever cargo was started.
    if let Some(root) = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent()
        && let Err(error) = std::env::set_current_dir(root)
    {
        eprintln!("xtask: cannot enter {}: {error}", root.display());
        return ExitCode::from(1);
    }
    let outcome = match command.as_str() {
        "test" => test::main(&args),
        "run" => run::main(&args),
        "audit" => audit::main(&args),
        "e2e" => e2e::main(&args),
        "sqlx-prepare" => sqlx_prepare::main(&args),
        "proxy" => proxy::main(&args),
        "mutants" => mutants::main(&args),
        "bench" => bench::main(&args),
        "bench-sign-in-timing" => bench_sign_in_timing::main(&args),
        "bench-frameworks" => bench_frameworks::main(&args),
        "ci" => ci::main(&args),
        _ => {
            eprintln!("xtask: no command {command:?}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(status) | Err(Failure::Status(status)) => ExitCode::from(status),
        Err(Failure::Message(message)) => {
            pg_cluster::say(format!("error: {message}"));
            ExitCode::from(1)
        }
    }
}
