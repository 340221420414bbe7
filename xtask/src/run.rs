//! `scripts/run [ARGUMENTS FOR THE APP...]`: the app for a person, on <http://127.0.0.1:8000>.
//!
//! Without `DATABASE_URL` (or `ROCKET_DATABASES`) in the environment, the app gets a private
//! PostgreSQL server whose data lives in `.data/postgres` of this checkout. It is started here
//! and stopped when the app stops (Ctrl-C); the next run reuses the data. SIGTERM to this
//! process stops both the same way.

use std::path::PathBuf;

use pg_cluster::{Cluster, Mode, Stop, ensure_postgres, postgres_can_reach, running_as_root, say};
use rustix::process::Signal;

use crate::process::{
    Context, Failure, Outcome, fail, forward_to, handle_signals, status_code, stop_forwarding,
};

/// A cluster of the command's own (here the private one), stopped however the command ends
/// (also when it fails half-way).
pub struct Private(pub Cluster);

impl Drop for Private {
    fn drop(&mut self) {
        if let Err(error) = self.0.stop(Stop::Fast) {
            say(error);
        }
    }
}

pub fn main(args: &[String]) -> Outcome {
    handle_signals()?;
    let mut context = Context::default();
    let here = std::env::current_dir().map_err(|error| Failure::Message(error.to_string()))?;

    let mut _private = None;
    if context.get("DATABASE_URL").is_none() && context.get("ROCKET_DATABASES").is_none() {
        let bin = ensure_postgres()?;
        // As root, PostgreSQL runs as the postgres user, which must be able to reach the data
        // inside this checkout.
        if running_as_root() && !postgres_can_reach(&here) {
            return fail(format!(
                "the postgres user cannot reach {} (a directory above it is not
    traversable), so the private PostgreSQL server cannot keep its data here.
    Make the path traversable (chmod o+x on each directory), or use a server
    of your own:  DATABASE_URL=postgres://USER@HOST:PORT/DATABASE scripts/run",
                here.display()
            ));
        }
        // The data is private to this checkout; the committed .gitignore keeps .data/ out of
        // commits (this command never edits it). 0755: the postgres user goes through it.
        create_private_dir(&here.join(".data"))?;
        let cluster = Private(Cluster::open(
            &bin,
            &here.join(".data/postgres"),
            Mode::Persistent,
            "",
        )?);
        cluster.0.create_database("secure_sessions")?;
        context.set("DATABASE_URL", cluster.0.url("secure_sessions"));
        _private = Some(cluster);
    }

    // sqlx's query! macros check the code against the committed .sqlx/, not against the database
    // above, which has no tables until the app's first start has run the migrations.
    context.set("SQLX_OFFLINE", "true");
    let app = build_app(&context)?;

    // Rocket.toml sets the address; ROCKET_ADDRESS and ROCKET_PORT override it.
    say(format!(
        "starting the app on http://{}:{} (Ctrl-C stops it)",
        context
            .var("ROCKET_ADDRESS")
            .as_deref()
            .unwrap_or("127.0.0.1"),
        context.var("ROCKET_PORT").as_deref().unwrap_or("8000")
    ));
    // Ctrl-C or SIGTERM here is passed on as SIGTERM: the app (Rocket) shuts down gracefully,
    // then the PostgreSQL server is stopped and this command ends with the app's exit status.
    let mut child =
        context.command(&app).args(args).spawn().map_err(|error| {
            Failure::Message(format!("could not start {}: {error}", app.display()))
        })?;
    forward_to(&child, Signal::TERM);
    let status = child.wait();
    stop_forwarding(&child);
    let status = status.map_err(|error| Failure::Message(error.to_string()))?;
    Ok(status_code(status))
}

/// Creates `dir` with mode 0755, whatever the umask, unless it exists.
fn create_private_dir(dir: &std::path::Path) -> Result<(), Failure> {
    use std::os::unix::fs::PermissionsExt as _;
    let created = std::fs::create_dir(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)));
    match created {
        Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => {
            fail(format!("could not create {}: {error}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// Builds the app binary as the tests build it (scripts/e2e does the same), and returns its
/// path: after scripts/test this builds nothing. A plain `cargo build` would compile tokio, sqlx
/// and Rocket a second time, with the features the test-only dependencies add left out.
pub fn build_app(context: &Context) -> Result<PathBuf, Failure> {
    let built = context.status(
        context
            .cargo()
            .args(["test", "--locked", "--no-run", "--test", "integration"])
            .stdout(std::io::stderr()),
    )?;
    if built != 0 {
        return Err(Failure::Status(built));
    }
    let target = context
        .get("CARGO_TARGET_DIR")
        .map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let app = target.join("debug/secure-sessions");
    if !pg_cluster::is_executable(&app) {
        return fail(format!("{} was not built", app.display()));
    }
    Ok(app)
}
