//! `scripts/mutants`: mutation testing of the security modules with cargo-mutants
//! (docs/mutation-testing.md):
//!
//! ```text
//! scripts/mutants                   every security module (many hours on a small machine)
//! scripts/mutants FILE...           these files only (src/csrf.rs crates/core/src/throttle.rs ...)
//! scripts/mutants --in-diff [BASE]  only the functions a change touches: what differs from
//!                                   the merge base with BASE (default main), uncommitted
//!                                   changes included, in any file
//! scripts/mutants --in-place ...    any of the above in this tree and its target/ (warm
//!                                   builds, no copy); change no file while it runs
//! ```
//!
//! cargo-mutants plants one small bug at a time (a mutant: a function that returns a default
//! value, a comparison or an operator swapped, a condition negated), builds the app with it and
//! runs the tests; a mutant no test fails on ("missed") is a bug the tests would let through.
//! Not part of scripts/test or CI: it builds the app once per mutant.
//!
//! Each file's mutants run the tests chosen for it ([`tests_for`]): unit tests, and integration
//! tests where the file's code is reached only through requests; never the browser or fault
//! suites, which take minutes each. A throwaway PostgreSQL is started as for scripts/test,
//! unless `DATABASE_URL` is set. The tests run under cargo-nextest, which stops at the first
//! failure. cargo-mutants (the version pinned below), and cargo-nextest when none is on the
//! `PATH`, are installed once, with `cargo install --locked`, into the tools folder scripts/audit
//! uses. Without `--in-place`, cargo-mutants copies the tree (target/ left out) and builds in
//! `target/mutants`, so the developer's `target/debug` never holds a mutant. Results go to
//! `target/mutants.out/<file or "diff">/mutants.out/`. `MUTANTS_OPTIONS` adds options for
//! cargo-mutants, e.g. `MUTANTS_OPTIONS="--timeout 900"` on a very loaded machine.

use std::path::Path;

use pg_cluster::{ensure_pg_stat_statements, ensure_postgres, say};

use crate::process::{Context, Failure, Outcome, fail, handle_signals};
use crate::test::start_test_postgres;
use crate::tools::{cargo_install, tools_on_path, version_of};

const MUTANTS_VERSION: &str = "27.1.0";
/// Installed when no cargo-nextest is on the `PATH`.
const NEXTEST_VERSION: &str = "0.9.143";

/// The security modules (docs/security.md, "Threats"): sessions, throttling, CSRF, sign-in, test
/// mode, DBSC (crates/core/src/session/dbsc.rs and proof.rs). store.rs is the SQL, tested through every
/// request above.
const SECURITY_FILES: &[&str] = &[
    "src/csrf.rs",
    "crates/core/src/session/policy.rs",
    "crates/core/src/session/token.rs",
    "crates/core/src/throttle.rs",
    "crates/core/src/session/proof.rs",
    "crates/core/src/session/dbsc.rs",
    "src/session/cookie.rs",
    "src/session/bearer.rs",
    "crates/core/src/session/fingerprint.rs",
    "src/session/guard.rs",
    "crates/core/src/session/pending.rs",
    "crates/core/src/session/reason.rs",
    "src/session/reaper.rs",
    "crates/core/src/session/api.rs",
    "crates/core/src/session/mod.rs",
    "crates/core/src/session/store.rs",
    "src/sign_in.rs",
    "src/test_mode/mod.rs",
    "src/test_mode/routes.rs",
];

/// Every unit and integration test.
const ALL_TESTS: &str = "--lib --test integration";

/// The tests a file's mutants run: the arguments of `cargo test` (targets, then name filters
/// after `--`). Modules of pure decisions have tables of unit tests meant to cover every case:
/// their mutants run the unit tests alone (one crate to build per mutant). The others run the
/// unit tests and the integration tests that exercise them (unit tests are named after their
/// module, `csrf::tests::...`, integration tests after their file, `throttle::...`). Any other
/// file, and a diff, runs every unit and integration test.
pub fn tests_for(file: &str) -> &'static str {
    match file {
        "crates/core/src/session/policy.rs"
        | "crates/core/src/session/token.rs"
        | "crates/core/src/session/proof.rs" => "--lib",
        "src/csrf.rs" => {
            "--lib --test integration -- csrf:: contract:: foundation::forms_without bad_input::"
        }
        "crates/core/src/throttle.rs" => {
            "--lib --test integration -- throttle:: races::a_sign_in_waits races::a_sign_up_counts"
        }
        "crates/core/src/session/dbsc.rs" => "--lib --test integration -- session::dbsc:: dbsc::",
        "src/session/reaper.rs" => {
            "--lib --test integration -- session::reaper:: retention:: endings:: passkeys::"
        }
        "crates/core/src/session/api.rs" => {
            "--lib --test integration -- session::api:: api:: api_devices:: anomalies:: races:: \
             request_path::a_bearer"
        }
        "src/session/cookie.rs" => {
            "--lib --test integration -- session::cookie:: dbsc:: foundation::"
        }
        "src/sign_in.rs" => "--lib --test integration -- sign_in:: foundation:: throttle::",
        "src/test_mode/mod.rs" | "src/test_mode/routes.rs" => {
            "--lib --test integration -- test_hooks::"
        }
        _ => ALL_TESTS,
    }
}

/// cargo-mutants' arguments for `tests` (as [`tests_for`] gives them): the targets go to every
/// cargo command (cargo-mutants would otherwise build every test target, the browser and fault
/// suites too, for each mutant), the name filters to the test binaries, after `-- --`.
pub fn mutants_args(tests: &str) -> (Vec<String>, Vec<String>) {
    let (targets, filters) = tests.split_once(" -- ").unwrap_or((tests, ""));
    // "--lib --test integration" -> --cargo-arg=--lib --cargo-arg=--test=integration
    let cargo_args = targets
        .replace("--test ", "--test=")
        .split_whitespace()
        .map(|arg| format!("--cargo-arg={arg}"))
        .collect();
    let filters = filters.split_whitespace().map(str::to_owned).collect();
    (cargo_args, filters)
}

pub fn main(args: &[String]) -> Outcome {
    handle_signals()?;
    let mut args = args.to_vec();
    let in_place = args.first().is_some_and(|arg| arg == "--in-place");
    if in_place {
        args.remove(0);
    }
    let mut context = Context::default();
    ensure_tools(&mut context)?;
    let bin = ensure_postgres()?;
    context.set("PG_BIN", &bin);
    ensure_pg_stat_statements(&bin)?;
    let _cluster = start_test_postgres(&mut context, &bin)?;
    // As in scripts/test: the query! macros check against the committed .sqlx/.
    context.set("SQLX_OFFLINE", "true");
    let mut options: Vec<String> = Vec::new();
    if in_place {
        options.push("--in-place".to_owned());
    } else {
        // One mutant at a time (cargo-mutants' default), all of them built here.
        let here = std::env::current_dir().map_err(|error| Failure::Message(error.to_string()))?;
        context.set("CARGO_TARGET_DIR", here.join("target/mutants"));
    }
    std::fs::create_dir_all("target/mutants.out")
        .map_err(|error| Failure::Message(error.to_string()))?;

    // cargo-mutants exits 2 when it missed mutants, 3 on timeouts: the run goes on to the next
    // file, and the highest status is the command's.
    let mut status = 0;
    if args.first().is_some_and(|arg| arg == "--in-diff") {
        let base = args.get(1).map_or("main", String::as_str);
        let diff = "target/mutants.out/change.diff";
        let output = context
            .command("git")
            .args(["diff", "--merge-base", base])
            .output()
            .map_err(|error| Failure::Message(format!("could not run git: {error}")))?;
        if !output.status.success() {
            eprint!("{}", String::from_utf8_lossy(&output.stderr));
            return fail(format!("git diff --merge-base {base} failed"));
        }
        std::fs::write(diff, &output.stdout)
            .map_err(|error| Failure::Message(error.to_string()))?;
        if output.stdout.is_empty() {
            say(format!("no difference from {base}: nothing to mutate"));
            return Ok(0);
        }
        options.extend(["--in-diff".to_owned(), diff.to_owned()]);
        status = status.max(run_mutants(&context, "diff", ALL_TESTS, &options)?);
    } else {
        let files: Vec<String> = if args.is_empty() {
            SECURITY_FILES.iter().map(|&file| file.to_owned()).collect()
        } else {
            args
        };
        for file in &files {
            if !Path::new(file).is_file() {
                return fail(format!("no such file: {file}"));
            }
            let name = file.strip_prefix("crates/core/").unwrap_or(file);
            let name = name.strip_prefix("src/").unwrap_or(name).replace('/', "-");
            let mut file_options = options.clone();
            file_options.extend(["--file".to_owned(), file.clone()]);
            status = status.max(run_mutants(
                &context,
                &name,
                tests_for(file),
                &file_options,
            )?);
        }
    }
    say("results: target/mutants.out/ (missed.txt: the mutants no test failed on)");
    Ok(status)
}

/// One cargo-mutants run, its results in `target/mutants.out/<name>`; returns its exit status.
fn run_mutants(context: &Context, name: &str, tests: &str, options: &[String]) -> Outcome {
    let (cargo_args, filters) = mutants_args(tests);
    let extra = context.var("MUTANTS_OPTIONS").unwrap_or_default();
    say(format!("mutants of {name} (cargo test {tests})"));
    context.status(
        context
            .cargo()
            .args(["mutants", "--output", &format!("target/mutants.out/{name}")])
            // Every package's files: without it, cargo-mutants looks only in the root package,
            // and a file of crates/core has no mutants.
            .arg("--workspace")
            // A mutant in the core (crates/core) is tested by the app's integration tests too,
            // not only by its own crate's.
            .arg("--test-workspace=true")
            // nextest runs each test in a process of its own and stops at the first failure: a
            // caught mutant costs its build and a few seconds, not the whole suite.
            .arg("--test-tool=nextest")
            .args(&cargo_args)
            .args(options)
            .args(extra.split_whitespace())
            .args(["--", "--"])
            .args(&filters),
    )
}

/// Makes sure cargo-mutants of the pinned version, and a cargo-nextest, are on the `PATH`,
/// building what is missing once into the tools folder (a few minutes of CPU each).
fn ensure_tools(context: &mut Context) -> Result<(), Failure> {
    let dir = tools_on_path(context);
    // Any cargo-nextest will do: it is run only with options it has long had.
    let tools = [
        ("cargo-mutants", "mutants", MUTANTS_VERSION, true),
        ("cargo-nextest", "nextest", NEXTEST_VERSION, false),
    ];
    for (program, subcommand, version, pinned) in tools {
        let usable = |context: &Context| {
            let found = version_of(context, program, &[subcommand]);
            if pinned {
                found == Some(format!("{program} {version}"))
            } else {
                found.is_some()
            }
        };
        if usable(context) {
            continue;
        }
        say(format!(
            "installing {program} {version} into {} (once)",
            dir.display()
        ));
        context.status(&mut cargo_install(
            context,
            &dir,
            &[format!("{program}@{version}")],
        ))?;
        if !usable(context) {
            return fail(format!(
                "{program} {version} is not usable after installing"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{mutants_args, tests_for};

    #[test]
    fn targets_go_to_cargo_and_name_filters_to_the_test_binaries() {
        let (cargo_args, filters) = mutants_args(tests_for("crates/core/src/throttle.rs"));
        assert_eq!(
            cargo_args,
            ["--cargo-arg=--lib", "--cargo-arg=--test=integration"]
        );
        assert_eq!(
            filters,
            [
                "throttle::",
                "races::a_sign_in_waits",
                "races::a_sign_up_counts"
            ]
        );
    }

    #[test]
    fn pure_decisions_run_their_unit_tests_alone_and_other_files_every_test() {
        assert_eq!(
            mutants_args(tests_for("crates/core/src/session/policy.rs")),
            (vec!["--cargo-arg=--lib".to_owned()], vec![])
        );
        let (cargo_args, filters) = mutants_args(tests_for("crates/core/src/session/store.rs"));
        assert_eq!(
            cargo_args,
            ["--cargo-arg=--lib", "--cargo-arg=--test=integration"]
        );
        assert!(filters.is_empty());
    }
}
