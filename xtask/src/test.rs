//! `scripts/test [ARGUMENTS FOR cargo test...]`: every check and every test.
//!
//! First the code must be formatted (cargo fmt --check), free of clippy warnings (cargo clippy
//! --all-targets -- -D warnings, with the lints of the workspace's `[workspace.lints]` table)
//! and its documentation must build without a warning or a broken link (cargo doc); otherwise
//! the run stops there, saying which check failed. The examples in the documentation run as
//! tests with the rest (cargo test).
//!
//! The tests need PostgreSQL and, when the browser tests run, Chromium with its WebDriver
//! (`CHROMIUM`, `CHROMEDRIVER`) and axe-core (`AXE_CORE_JS`), and the fault tests nginx
//! (scripts/proxy); missing ones are installed. The browser tests run when no test target is
//! selected (no arguments, or only a name filter) or when the selection includes them
//! ([`runs_suite`]). Unless `DATABASE_URL` is set, a throwaway PostgreSQL server is started in a
//! temporary directory, and deleted with it at the end; `DATABASE_URL` then names its
//! maintenance database "postgres": the tests create their own databases from it.
//!
//! A whole run (no arguments) tests the whole workspace (the tools and `pg-cluster` too),
//! starts with the supply-chain audit (scripts/audit, whose verdict counts at the end; the tests
//! run either way) and ends with the example end-to-end suite (scripts/e2e) against the app
//! binary cargo test built.
//!
//! Only for checking this command itself: if `SS_TEST_COMMAND` is set, that shell command runs
//! instead of the checks and cargo test, in the same environment and with the same arguments.

use std::path::Path;

use pg_cluster::{Throwaway, ensure_pg_stat_statements, ensure_postgres, say};

use crate::process::{Context, Outcome, handle_signals};
use crate::tools::{ensure_axe, ensure_browser, ensure_nginx};

/// Whether `cargo test ARGS` runs the test target `suite` (browser, faults): when no target is
/// selected (every target runs), or when the selection names it. Arguments after `--` go to the
/// test harness, not to cargo.
pub fn runs_suite(suite: &str, args: &[String]) -> bool {
    let mut selected = false;
    let mut args = args.iter().map(String::as_str);
    while let Some(arg) = args.next() {
        match arg {
            "--" => break,
            "--tests" | "--all-targets" => return true,
            "--test" => {
                selected = true;
                // cargo's --test takes glob patterns too.
                if args
                    .next()
                    .is_some_and(|pattern| glob_matches(pattern, suite))
                {
                    return true;
                }
            }
            "--bin" | "--example" | "--bench" => {
                selected = true;
                args.next();
            }
            "--lib" | "--bins" | "--doc" | "--examples" | "--benches" => selected = true,
            _ => {
                if let Some(pattern) = arg.strip_prefix("--test=") {
                    selected = true;
                    if glob_matches(pattern, suite) {
                        return true;
                    }
                } else if ["--bin=", "--example=", "--bench="]
                    .iter()
                    .any(|prefix| arg.starts_with(prefix))
                {
                    selected = true;
                }
            }
        }
    }
    !selected
}

/// Whether `name` matches the glob `pattern` (`*` any run of characters, `?` one character).
fn glob_matches(pattern: &str, name: &str) -> bool {
    fn matches(pattern: &[char], name: &[char]) -> bool {
        match pattern.split_first() {
            None => name.is_empty(),
            Some(('*', rest)) => (0..=name.len()).any(|skip| matches(rest, &name[skip..])),
            Some((&first, rest)) => name.split_first().is_some_and(|(&head, tail)| {
                (first == '?' || first == head) && matches(rest, tail)
            }),
        }
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    matches(&pattern, &name)
}

pub fn main(args: &[String]) -> Outcome {
    handle_signals()?;
    let mut context = Context::default();
    // The same settings on CI and on a developer's machine. SQLX_OFFLINE: sqlx's query! macros
    // check the code against the committed .sqlx/ and never reach for a live database, although
    // the DATABASE_URL set below for the tests is in cargo's environment too (scripts/sqlx-prepare
    // regenerates .sqlx/). RUST_BACKTRACE: a failing test shows where it failed.
    context.set("SQLX_OFFLINE", "true");
    if context.get("RUST_BACKTRACE").is_none() {
        context.set("RUST_BACKTRACE", "1");
    }
    let test_command = context.var("SS_TEST_COMMAND");
    let whole_run = args.is_empty();

    // The code is formatted and clippy-clean before any test runs: cheap checks first, and a
    // red run never hides behind a green test suite.
    if test_command.is_none() {
        check(&context)?;
    }

    let bin = ensure_postgres()?;
    context.set("PG_BIN", &bin);
    ensure_pg_stat_statements(&bin)?;
    if runs_suite("browser", args) {
        ensure_browser(&mut context)?;
        ensure_axe(&mut context)?;
    }
    // The fault tests run scripts/proxy, which installs nginx itself: here, before the clock of
    // any test starts.
    if runs_suite("faults", args) {
        ensure_nginx(&context)?;
    }

    // Stopped and deleted when this command ends, however it ends.
    let _cluster = start_test_postgres(&mut context, &bin)?;

    // A whole run starts with the supply-chain audit (it installs cargo-audit and cargo-deny once
    // where missing, and says which advisory database it used). Its verdict counts at the end.
    let mut audit_status = 0;
    if whole_run && test_command.is_none() {
        audit_status = context.status(&mut context.xtask("audit")?)?;
    }
    let mut status;
    if let Some(command) = test_command {
        status = context.status(
            context
                .command("bash")
                .args(["-c", &command, "scripts/test"])
                .args(args),
        )?;
    } else {
        let mut cargo = context.cargo();
        cargo.args(["test", "--locked"]);
        if whole_run {
            // The tools and pg-cluster too; the fault tests (tests/faults) are among the targets.
            cargo.arg("--workspace");
        }
        status = context.status(cargo.args(args))?;
        // A whole run ends with the example end-to-end suite, against the app binary cargo test
        // has just built.
        if status == 0 && whole_run {
            status = context.status(&mut context.xtask("e2e")?)?;
        }
    }
    if status == 0 && audit_status != 0 {
        say("the tests passed, but the supply-chain audit failed (see above)");
        status = audit_status;
    }
    Ok(status)
}

/// Unless `DATABASE_URL` names a server already, a throwaway PostgreSQL for the tests (with
/// `pg_stat_statements`: the request-path tests count the app's SQL statements), its maintenance
/// database in `DATABASE_URL`. It is stopped and deleted when the returned value is dropped.
pub fn start_test_postgres(
    context: &mut Context,
    bin: &Path,
) -> Result<Option<Throwaway>, crate::Failure> {
    if context.get("DATABASE_URL").is_some() {
        return Ok(None);
    }
    let throwaway = Throwaway::start(
        bin,
        "secure-sessions-test",
        "-c shared_preload_libraries=pg_stat_statements",
    )?;
    context.set("DATABASE_URL", throwaway.cluster().url("postgres"));
    Ok(Some(throwaway))
}

/// cargo fmt, clippy and doc, stopping at the first that fails.
fn check(context: &Context) -> Result<(), crate::Failure> {
    for (tool, component) in [("fmt", "rustfmt"), ("clippy", "clippy")] {
        let present = context
            .cargo()
            .args([tool, "--version"])
            .output()
            .is_ok_and(|output| output.status.success());
        if !present {
            return crate::process::fail(format!(
                "{component} is missing: install it with 'rustup component add {component}'"
            ));
        }
    }
    context.run(
        context.cargo().args(["fmt", "--all", "--check"]),
        "cargo fmt --check failed: the code above is not formatted (run cargo fmt --all); no test ran",
    )?;
    context.run(
        context.cargo().args([
            "clippy",
            "--locked",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
        "cargo clippy --all-targets -- -D warnings failed (see above); no test ran",
    )?;
    context.run(
        context
            .cargo()
            .env("RUSTDOCFLAGS", "-D warnings")
            .args(["doc", "--locked", "--workspace", "--no-deps", "--document-private-items"]),
        "cargo doc failed: a warning or a broken link in the documentation (see above); no test ran",
    )
}

#[cfg(test)]
mod tests {
    use super::runs_suite;

    fn runs(suite: &str, args: &str) -> bool {
        let args: Vec<String> = args.split_whitespace().map(str::to_owned).collect();
        runs_suite(suite, &args)
    }

    #[test]
    fn every_suite_runs_when_no_target_is_selected() {
        for args in ["", "cap", "-- --nocapture", "--release cap", "--workspace"] {
            assert!(runs("browser", args), "{args:?}");
            assert!(runs("faults", args), "{args:?}");
        }
    }

    #[test]
    fn a_suite_runs_when_the_selection_names_it() {
        for args in [
            "--test browser",
            "--test=browser",
            "--test integration --test browser cap",
            "--test b*",
            "--test=brows?r",
            "--tests",
            "--all-targets",
            "--lib --tests",
        ] {
            assert!(runs("browser", args), "{args:?}");
        }
    }

    #[test]
    fn a_suite_is_left_out_when_other_targets_are_selected() {
        for args in [
            "--test integration cap",
            "--test=integration",
            "--lib",
            "--doc",
            "--bin secure-sessions",
            "--bin=secure-sessions",
            "--test faults",
            "--test i*",
            "--lib -- --test browser",
        ] {
            assert!(!runs("browser", args), "{args:?}");
        }
        assert!(!runs("faults", "--test browser"));
    }
}
