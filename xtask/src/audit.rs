//! `scripts/audit`: the dependencies in Cargo.lock, audited.
//!
//! 1. cargo audit: known vulnerabilities (RustSec advisories), against the live advisory
//!    database where it can be fetched, else against the snapshot kept beside the project
//!    (`../shared/advisory-db`, or `SS_ADVISORY_DB`). Ignored advisories, each with its reason,
//!    are in `.cargo/audit.toml`. With neither database at hand this check is skipped, with a
//!    visible line saying so; that alone does not fail the run.
//! 2. cargo deny: licenses, bans and sources, as `deny.toml` says.
//!
//! The tools are installed once where missing ([`ensure_audit_tools`]). Exits non-zero when
//! either check finds something.

use std::path::{Path, PathBuf};
use std::process::Output;

use pg_cluster::say;

use crate::process::{Context, Failure, Outcome, check_interrupted, fail, handle_signals};
use crate::tools::{cargo_install, tools_on_path, version_of};

/// The versions of cargo-audit and cargo-deny that run (`scripts/audit-tools.txt` pins the
/// prebuilt ones).
const AUDIT_VERSION: &str = "0.22.2";
const DENY_VERSION: &str = "0.20.2";

pub fn main(args: &[String]) -> Outcome {
    if !args.is_empty() {
        return fail("scripts/audit takes no arguments");
    }
    handle_signals()?;
    let mut context = Context::default();
    let tools = ensure_audit_tools(&mut context)?;

    let mut status = 0;
    let live = tools.join("advisory-db");
    let snapshot = context
        .get("SS_ADVISORY_DB")
        .map_or_else(|| PathBuf::from("../shared/advisory-db"), PathBuf::from);

    // The live database first: cargo audit fetches (or updates) it. Without a network this fails
    // at once, with a message of its own, and the snapshot is used instead.
    let output = cargo_audit(&context, &["--db"], &live)?;
    if output.status.success() {
        say("cargo audit: no vulnerable crate (live advisory database)");
    } else if !text(&output).contains("couldn't fetch advisory database") {
        eprint!("{}", text(&output));
        say("cargo audit: FAILED (live advisory database)");
        status = 1;
    } else if snapshot.join("crates").is_dir() {
        let output = cargo_audit(&context, &["--no-fetch", "--db"], &snapshot)?;
        if output.status.success() {
            say(format!(
                "cargo audit: no vulnerable crate (advisory database snapshot {}; the live one is out of reach)",
                snapshot.display()
            ));
        } else {
            eprint!("{}", text(&output));
            say(format!(
                "cargo audit: FAILED (advisory database snapshot {})",
                snapshot.display()
            ));
            status = 1;
        }
    } else {
        say(format!(
            "cargo audit: SKIPPED: the live advisory database is out of reach and there is no snapshot at {}",
            snapshot.display()
        ));
    }

    // cargo deny reads the whole dependency graph through `cargo metadata`, which needs the
    // sources of every crate in Cargo.lock, those of other platforms included, and a build
    // downloads only this platform's. Fetch them all first (from the registry, once; then from
    // cargo's cache).
    let fetched = context.status(context.cargo().args(["fetch", "--locked", "--quiet"]))?;
    if fetched != 0 {
        say("cargo deny: FAILED: could not fetch the crates of Cargo.lock (see above)");
        status = 1;
    } else {
        let output = context
            .command("cargo-deny")
            .args(["--offline", "check", "--hide-inclusion-graph"])
            .args(["licenses", "bans", "sources"])
            .output()
            .map_err(|error| Failure::Message(format!("could not run cargo-deny: {error}")))?;
        check_interrupted()?;
        if output.status.success() {
            // Its verdict ("bans ok, licenses ok, sources ok") is the last line it prints.
            let verdict = String::from_utf8_lossy(&output.stdout);
            say(format!(
                "cargo deny: {}",
                verdict.lines().last().unwrap_or_default()
            ));
        } else {
            eprint!("{}", text(&output));
            say("cargo deny: FAILED");
            status = 1;
        }
    }
    Ok(status)
}

/// `cargo-audit audit OPTIONS DB`, its output kept.
fn cargo_audit(context: &Context, options: &[&str], db: &Path) -> Result<Output, Failure> {
    let output = context
        .command("cargo-audit")
        .arg("audit")
        .args(options)
        .arg(db)
        .output()
        .map_err(|error| Failure::Message(format!("could not run cargo-audit: {error}")))?;
    check_interrupted()?;
    Ok(output)
}

/// Standard output and error, one after the other (as `>file 2>&1` keeps them, roughly).
fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Whether cargo-audit and cargo-deny of the pinned versions are on the context's `PATH`.
fn audit_tools_present(context: &Context) -> bool {
    version_of(context, "cargo-audit", &[]) == Some(format!("cargo-audit {AUDIT_VERSION}"))
        && version_of(context, "cargo-deny", &[]) == Some(format!("cargo-deny {DENY_VERSION}"))
}

/// Makes sure cargo-audit and cargo-deny (the pinned versions) are on the `PATH`, installing
/// them once into the tools folder where missing. On `x86_64` Linux they come prebuilt, as
/// hash-pinned Python wheels (seconds); elsewhere they are built with `cargo install --locked`
/// (about 10 minutes of CPU, once). Says which, in one line. Returns the tools folder.
fn ensure_audit_tools(context: &mut Context) -> Result<PathBuf, Failure> {
    let dir = tools_on_path(context);
    let versions = format!("cargo-audit {AUDIT_VERSION} and cargo-deny {DENY_VERSION}");
    if audit_tools_present(context) {
        say(format!(
            "supply chain: using {versions} ({})",
            dir.join("bin").display()
        ));
        return Ok(dir);
    }
    std::fs::create_dir_all(dir.join("bin"))
        .map_err(|error| Failure::Message(format!("{}: {error}", dir.display())))?;
    let x86_64_linux = std::env::consts::OS == "linux" && std::env::consts::ARCH == "x86_64";
    let pip = || {
        context
            .command("python3")
            .args(["-m", "pip", "--version"])
            .output()
            .is_ok_and(|output| output.status.success())
    };
    if x86_64_linux && pip() {
        say(format!(
            "supply chain: installing prebuilt {versions} into {} (once)",
            dir.display()
        ));
        install_wheels(context, &dir)?;
    }
    if !audit_tools_present(context) {
        say(format!(
            "supply chain: building {versions} into {} (once; about 10 minutes of CPU)",
            dir.display()
        ));
        let crates = [
            format!("cargo-audit@{AUDIT_VERSION}"),
            format!("cargo-deny@{DENY_VERSION}"),
        ];
        context.status(&mut cargo_install(context, &dir, &crates))?;
    }
    if !audit_tools_present(context) {
        return fail(format!("{versions} are not usable after installing"));
    }
    Ok(dir)
}

/// Copies the programs out of the wheels `scripts/audit-tools.txt` pins into `<dir>/bin`.
fn install_wheels(context: &Context, dir: &Path) -> Result<(), Failure> {
    let wheels = pg_cluster::TempDir::new("secure-sessions-wheels")?;
    // Downloading (not installing) needs no virtual environment; --require-hashes refuses any
    // file but the pinned ones.
    let downloaded = context.status(
        context
            .command("python3")
            .args([
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--only-binary=:all:",
            ])
            .args(["--require-hashes", "-r", "scripts/audit-tools.txt", "-d"])
            .arg(wheels.path())
            .stdout(std::io::stderr()),
    )?;
    if downloaded != 0 {
        return Ok(());
    }
    // A wheel is a zip archive; Python's standard library reads it.
    const EXTRACT: &str = "import pathlib, sys, zipfile
wheels, bin_dir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for wheel in wheels.glob('*.whl'):
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if '.data/scripts/' in name:
                target = bin_dir / name.rsplit('/', 1)[1]
                target.write_bytes(archive.read(name))
                target.chmod(0o755)
";
    context.status(
        context
            .command("python3")
            .args(["-c", EXTRACT])
            .arg(wheels.path())
            .arg(dir.join("bin")),
    )?;
    Ok(())
}
