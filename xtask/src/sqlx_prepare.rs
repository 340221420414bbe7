//! `scripts/sqlx-prepare`: regenerates `.sqlx/`, the query data sqlx's `query!` macros check the
//! code against when it is built without a database (`SQLX_OFFLINE=true`, as scripts/test
//! builds).
//!
//! Run it after adding or changing a query in `src/`, or a migration, and commit `.sqlx/` with
//! the change. It starts a throwaway PostgreSQL, applies `migrations/` to an empty database,
//! builds the crate against it with the macros online (each writes its query's data into an
//! empty directory, so no entry of a removed query lingers), replaces `.sqlx/` with that
//! directory, and builds once more offline to prove the new data is complete. Needs nothing
//! beyond what scripts/test needs.

use std::path::{Path, PathBuf};

use pg_cluster::{Throwaway, ensure_postgres, say};

use crate::process::{Context, Failure, Outcome, fail, handle_signals};

/// A folder in `target/` (beside `.sqlx/`, so the new data replaces it with a rename), deleted
/// when dropped unless it was moved.
struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

pub fn main(args: &[String]) -> Outcome {
    if !args.is_empty() {
        return fail("scripts/sqlx-prepare takes no arguments");
    }
    handle_signals()?;
    let mut context = Context::default();
    let bin = ensure_postgres()?;
    context.set("PG_BIN", &bin);

    let here = std::env::current_dir().map_err(|error| Failure::Message(error.to_string()))?;
    let staging = Staging(here.join(format!("target/sqlx-prepare.{}", std::process::id())));
    std::fs::remove_dir_all(&staging.0).ok();
    std::fs::create_dir_all(&staging.0)
        .map_err(|error| Failure::Message(format!("{}: {error}", staging.0.display())))?;

    let throwaway = Throwaway::start(&bin, "secure-sessions-sqlx", "")?;
    let cluster = throwaway.cluster();
    cluster.create_database("secure_sessions")?;
    let mut migrations: Vec<PathBuf> = std::fs::read_dir("migrations")
        .map_err(|error| Failure::Message(format!("migrations/: {error}")))?
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "sql"))
        .collect();
    migrations.sort();
    for migration in &migrations {
        // One transaction per file, as the app's migrator runs them.
        context.run(
            cluster
                .psql()
                .args(["-d", "secure_sessions", "--single-transaction", "-f"])
                .arg(migration),
            &format!("{} failed (see above)", migration.display()),
        )?;
    }

    say(format!(
        "building against the database, writing the query data into {}",
        staging.0.display()
    ));
    // The macros run when the crate compiles, and cargo skips a crate it thinks up to date:
    // touching a source file of each crate makes it compile, and so write the data of every query.
    for lib in ["src/lib.rs", "crates/core/src/lib.rs"] {
        touch(Path::new(lib))?;
    }
    let online = context.status(
        context
            .cargo()
            .env("DATABASE_URL", cluster.url("secure_sessions"))
            .env("SQLX_OFFLINE", "false")
            .env("SQLX_OFFLINE_DIR", &staging.0)
            .args(["test", "--locked", "--no-run", "--all-targets"]),
    )?;
    if online != 0 {
        return Err(Failure::Status(online));
    }

    std::fs::remove_dir_all(".sqlx").ok();
    std::fs::rename(&staging.0, ".sqlx")
        .map_err(|error| Failure::Message(format!("could not replace .sqlx/: {error}")))?;
    let queries = std::fs::read_dir(".sqlx")
        .map_err(|error| Failure::Message(format!(".sqlx/: {error}")))?
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("query-"))
        .count();
    say(format!(
        "wrote {queries} queries into .sqlx/; checking them offline"
    ));
    let offline = context.status(context.cargo().env("SQLX_OFFLINE", "true").args([
        "test",
        "--locked",
        "--no-run",
        "--all-targets",
    ]))?;
    if offline != 0 {
        return Err(Failure::Status(offline));
    }
    say("done: commit .sqlx/ with the change");
    Ok(0)
}

/// Sets the modification time of `file` to now.
fn touch(file: &Path) -> Result<(), Failure> {
    std::fs::File::options()
        .append(true)
        .open(file)
        .and_then(|file| file.set_modified(std::time::SystemTime::now()))
        .map_err(|error| Failure::Message(format!("{}: {error}", file.display())))
}
