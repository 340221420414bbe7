//! The programs the commands need besides PostgreSQL (`pg_cluster::ensure_postgres`): each is
//! found, or installed where missing (Debian packages, pinned tools, the axe-core npm package).

use std::path::{Path, PathBuf};
use std::process::Command;

use pg_cluster::{apt_install, is_executable, on_path, say};

use crate::process::{Context, Failure, fail};

/// A program named by the environment variable `name` when that names an executable file
/// (another value is ignored, saying so), else `default`.
fn program_from(context: &Context, name: &str, default: &str) -> PathBuf {
    match context.get(name) {
        Some(value) if is_executable(Path::new(&value)) => PathBuf::from(value),
        Some(value) => {
            say(format!(
                "ignoring {name}={}: not an executable file",
                value.to_string_lossy()
            ));
            PathBuf::from(default)
        }
        None => PathBuf::from(default),
    }
}

/// Chromium and its WebDriver (chromedriver), for the browser tests and the end-to-end suite:
/// `CHROMIUM` and `CHROMEDRIVER` from the environment win when they name programs; otherwise
/// Debian's, installed if missing. Sets both for the programs run from now on.
pub fn ensure_browser(context: &mut Context) -> Result<(), Failure> {
    let chromium = program_from(context, "CHROMIUM", "/usr/bin/chromium");
    let chromedriver = program_from(context, "CHROMEDRIVER", "/usr/bin/chromedriver");
    if !is_executable(&chromium) || !is_executable(&chromedriver) {
        apt_install(&["chromium", "chromium-driver"])?;
    }
    for (program, package) in [(&chromium, "chromium"), (&chromedriver, "chromium-driver")] {
        if !is_executable(program) {
            return fail(format!(
                "{} not found after installing {package}",
                program.display()
            ));
        }
    }
    context.set("CHROMIUM", chromium);
    context.set("CHROMEDRIVER", chromedriver);
    Ok(())
}

/// nginx, for scripts/proxy: `NGINX_PROGRAM` from the environment when it names a program, else
/// Debian's, installed (nginx-light) if missing. (Not named NGINX: nginx reads a variable of
/// that name as sockets handed over to it. Where services start on install, Debian's package
/// also starts its own default site, which scripts/proxy never uses.)
pub fn ensure_nginx(context: &Context) -> Result<PathBuf, Failure> {
    let nginx = program_from(context, "NGINX_PROGRAM", "/usr/sbin/nginx");
    if !is_executable(&nginx) {
        apt_install(&["nginx-light"])?;
    }
    if !is_executable(&nginx) {
        return fail(format!(
            "{} not found after installing nginx-light",
            nginx.display()
        ));
    }
    Ok(nginx)
}

/// The accessibility checker the browser tests run on every page they look at: axe-core, from
/// its npm package, pinned.
const AXE_CORE_VERSION: &str = "4.11.0";

/// Fetches axe-core once into `target/axe-core/<version>/` (npm verifies the package's
/// integrity), and sets `AXE_CORE_JS` to its script.
pub fn ensure_axe(context: &mut Context) -> Result<(), Failure> {
    let dir = PathBuf::from(format!("target/axe-core/{AXE_CORE_VERSION}"));
    let script = dir.join("axe.min.js");
    if !script.is_file() {
        if on_path("npm").is_none() {
            apt_install(&["npm"])?;
        }
        say(format!(
            "fetching axe-core {AXE_CORE_VERSION} (npm package) into {}",
            dir.display()
        ));
        let tmp = pg_cluster::TempDir::new("secure-sessions-axe")?;
        let packed = context.status(
            context
                .command("npm")
                .args(["pack", "--silent"])
                .arg(format!("axe-core@{AXE_CORE_VERSION}"))
                .current_dir(tmp.path())
                .stdout(std::process::Stdio::null()),
        )?;
        if packed != 0 {
            return fail("could not fetch the axe-core npm package");
        }
        let archive = format!("{}/axe-core-{AXE_CORE_VERSION}.tgz", tmp.path().display());
        context.run(
            context
                .command("tar")
                .args(["-xzf", &archive, "-C"])
                .arg(tmp.path()),
            "could not unpack the axe-core npm package",
        )?;
        std::fs::create_dir_all(&dir).map_err(|error| Failure::Message(error.to_string()))?;
        for file in ["axe.min.js", "LICENSE"] {
            std::fs::copy(tmp.path().join("package").join(file), dir.join(file))
                .map_err(|error| Failure::Message(format!("axe-core's {file}: {error}")))?;
        }
    }
    let absolute = std::env::current_dir()
        .map_err(|error| Failure::Message(error.to_string()))?
        .join(script);
    context.set("AXE_CORE_JS", absolute);
    Ok(())
}

/// Where the audit tools and cargo-mutants are installed once and kept: a cache that outlives
/// the clone (CI's fresh clone included) on the same machine.
pub fn tools_dir(context: &Context) -> PathBuf {
    if let Some(dir) = context.get("SS_TOOLS_DIR") {
        return PathBuf::from(dir);
    }
    let cache = context.get("XDG_CACHE_HOME").map_or_else(
        || PathBuf::from(context.get("HOME").unwrap_or_default()).join(".cache"),
        PathBuf::from,
    );
    cache.join("secure-sessions/tools")
}

/// Puts the tools folder's `bin/` first on the `PATH` of the programs run from now on, and
/// returns the tools folder.
pub fn tools_on_path(context: &mut Context) -> PathBuf {
    let dir = tools_dir(context);
    let mut path = vec![dir.join("bin")];
    path.extend(std::env::split_paths(
        &context.get("PATH").unwrap_or_default(),
    ));
    if let Ok(joined) = std::env::join_paths(path) {
        context.set("PATH", joined);
    }
    dir
}

/// The first line `program --version` (found on the context's `PATH`) prints, if it runs.
pub fn version_of(context: &Context, program: &str, args: &[&str]) -> Option<String> {
    let path = context.get("PATH").unwrap_or_default();
    let file = std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|file| is_executable(file))?;
    let output = context
        .command(file)
        .args(args)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    Some(text.lines().next().unwrap_or_default().trim().to_owned())
}

/// `cargo install --locked --quiet --root DIR CRATES...`: builds pinned tools into `dir`.
pub fn cargo_install(context: &Context, dir: &Path, crates: &[String]) -> Command {
    let mut command = context.cargo();
    command
        .args(["install", "--locked", "--quiet", "--root"])
        .arg(dir)
        .args(crates)
        .stdout(std::io::stderr());
    command
}
