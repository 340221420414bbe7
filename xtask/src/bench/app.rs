//! The app under measurement: started on a port of 127.0.0.1 against the bench database, and
//! stopped by its process id; its accounts and sessions, made through its own forms (curl); and
//! the cgroup of idle CPU weight its second instance hashes in.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pg_cluster::{running_as_root, say};
use rustix::process::Signal;

use super::measure::{Lab, Target, USER_AGENT, pause, write};
use crate::process::{Context, Failure, fail, send};

/// The password of every account the bench makes.
pub const PASSWORD: &str = "bench password violet tractor";

// ---------------------------------------------------------------------------------- app --

/// How the app is started: the binary, its database, its secret key, and where it logs.
pub struct Launcher<'a> {
    pub context: &'a Context,
    pub binary: &'a Path,
    pub database_url: String,
    pub secret_key: String,
    /// Every instance appends to it.
    pub log: PathBuf,
}

/// The `[sessions]` table the app gets (`ROCKET_SESSIONS`): the reaper runs at start, then not
/// again for an hour (scenario f restarts the app to watch it work); then `BENCH_SESSIONS`, and
/// the instance's own `settings`.
pub fn sessions_table(bench_sessions: Option<&str>, settings: &str) -> String {
    let mut table = String::from("{reaper_interval_secs=3600");
    for extra in [bench_sessions.unwrap_or_default(), settings] {
        if !extra.is_empty() {
            table.push(',');
            table.push_str(extra);
        }
    }
    table.push('}');
    table
}

impl Launcher<'_> {
    /// Starts the app on `port`, `settings` added to its `[sessions]` table, and returns once it
    /// answers. Release profile: HSTS, no demo accounts. `ROCKET_*` variables reach it as usual.
    pub fn launch(&self, port: u16, settings: &str) -> Result<App, Failure> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|error| Failure::Message(format!("{}: {error}", self.log.display())))?;
        let log_copy = log
            .try_clone()
            .map_err(|error| Failure::Message(error.to_string()))?;
        let child = self
            .context
            .command(self.binary)
            .env("DATABASE_URL", &self.database_url)
            .env("ROCKET_PROFILE", "release")
            .env("ROCKET_PORT", port.to_string())
            .env("ROCKET_LOG_LEVEL", "off")
            .env("ROCKET_SECRET_KEY", &self.secret_key)
            .env(
                "ROCKET_SESSIONS",
                sessions_table(self.context.var("BENCH_SESSIONS").as_deref(), settings),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_copy)
            .spawn()
            .map_err(|error| {
                Failure::Message(format!(
                    "could not start {}: {error}",
                    self.binary.display()
                ))
            })?;
        let mut app = App {
            child,
            port,
            log: self.log.clone(),
        };
        for _ in 0..100 {
            if curl(self.context)
                .arg("-fs")
                .arg(format!("{}/healthz", app.base()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
            {
                return Ok(app);
            }
            if let Ok(Some(_)) = app.child.try_wait() {
                break;
            }
            pause(Duration::from_millis(100))?;
        }
        fail(format!("the app did not start: {}", tail(&self.log, 20)))
    }
}

/// The app, stopped with SIGTERM (a graceful shutdown) when dropped. An exit status other than
/// success is reported, with the end of the log.
pub struct App {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl App {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn target(&self) -> Target {
        Target {
            pid: self.pid(),
            base: self.base(),
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        send(self.child.id(), Signal::TERM);
        match self.child.wait() {
            Ok(status) if status.success() => {}
            Ok(status) => say(format!(
                "the app on port {} ended with {status} when asked to stop (SIGTERM); its log ends with:\n{}",
                self.port,
                tail(&self.log, 20)
            )),
            Err(error) => say(format!("could not wait for the app: {error}")),
        }
    }
}

/// The last `lines` lines of the file `path`.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------- cgroup --

/// A cgroup of idle CPU weight for the second app's hashing threads (`hashing_cgroup`,
/// docs/configuration.md), removed when dropped: after the app in it has stopped.
pub struct IdleCgroup {
    pub path: PathBuf,
}

/// The mount point of cgroup v1's `cpu` controller, in `/proc/mounts`'s text.
pub fn cpu_controller_mount(mounts: &str) -> Option<&str> {
    mounts.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields[..] {
            [_, mount, "cgroup", options, ..] if options.split(',').any(|o| o == "cpu") => {
                Some(mount)
            }
            _ => None,
        }
    })
}

impl IdleCgroup {
    /// Makes the cgroup, when this runs as root on a machine with cgroup v1's `cpu` controller
    /// (the one this machine has); `None` otherwise.
    pub fn make() -> Result<Option<IdleCgroup>, Failure> {
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let Some(mount) = cpu_controller_mount(&mounts).filter(|_| running_as_root()) else {
            return Ok(None);
        };
        let path = Path::new(mount).join(format!("secure-sessions-bench-{}", std::process::id()));
        if std::fs::create_dir(&path).is_err() {
            return Ok(None);
        }
        let cgroup = IdleCgroup { path };
        write(&cgroup.path.join("cpu.idle"), "1")?;
        Ok(Some(cgroup))
    }
}

impl Drop for IdleCgroup {
    fn drop(&mut self) {
        // The kernel removes a cgroup only once the stopped app's threads have left it.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.path).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        say(format!(
            "could not remove the cgroup {}",
            self.path.display()
        ));
    }
}

// ------------------------------------------------------------------------------ curl --

fn curl(context: &Context) -> Command {
    let mut curl = context.command("curl");
    curl.stdin(Stdio::null());
    curl
}

/// What `curl ARGS` prints, if it succeeds.
fn curl_output(context: &Context, args: &[&str]) -> Result<String, Failure> {
    let output = curl(context)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .map_err(|error| Failure::Message(format!("could not run curl: {error}")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        fail(format!(
            "curl {} failed ({})",
            args.join(" "),
            output.status
        ))
    }
}

/// The size of one response, headers included, as wrk counts it.
pub fn response_size(context: &Context, args: &[&str]) -> Result<u64, Failure> {
    let mut all = vec![
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{size_header} %{size_download}",
    ];
    all.extend_from_slice(args);
    let output = curl(context)
        .args(&all)
        .output()
        .map_err(|error| Failure::Message(format!("could not run curl: {error}")))?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .map(str::parse::<u64>)
        .sum::<Result<u64, _>>()
        .map_err(|_| Failure::Message(format!("curl printed no sizes: {text:?}")))
}

/// wrk counts only a status of 400 or more as an error; a redirect to the sign-in page (an
/// ended session) is caught by the size of the responses instead.
pub fn check_size(name: &str, bytes_per_response: u64, expected: u64) -> Result<(), Failure> {
    if bytes_per_response * 10 >= expected * 9 && bytes_per_response * 10 <= expected * 11 {
        Ok(())
    } else {
        fail(format!(
            "{name}: responses average {bytes_per_response} bytes, expected about {expected}: not the page asked for"
        ))
    }
}

/// The value of the form's hidden `csrf_token` field in `html`.
pub fn form_token(html: &str) -> Option<&str> {
    let start = html.find(r#"name="csrf_token" value=""#)? + r#"name="csrf_token" value=""#.len();
    let length = html[start..].find('"')?;
    Some(&html[start..start + length])
}

/// The value of cookie `name` in curl's cookie jar (Netscape format: tab-separated, the name
/// in the sixth field and the value in the seventh).
pub fn cookie_in_jar<'j>(jar: &'j str, name: &str) -> Option<&'j str> {
    jar.lines().find_map(|line| {
        let fields: Vec<&str> = line.split('\t').collect();
        (fields.len() >= 7 && fields[5] == name).then(|| fields[6])
    })
}

/// The session cookie a response's headers set, if any.
pub fn session_cookie(headers: &str) -> Option<&str> {
    headers.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        let value = value.trim_start().strip_prefix("__Host-sid=")?;
        let (token, _) = value.split_once(';')?;
        name.eq_ignore_ascii_case("set-cookie").then_some(token)
    })
}

/// A sign-in's form body for `username`.
pub fn sign_in_body(username: &str, csrf_token: &str) -> String {
    format!(
        "username={username}&password={}&csrf_token={csrf_token}",
        PASSWORD.replace(' ', "+")
    )
}

// --------------------------------------------------------------------------- seeding --

/// What seeding made: the files wrk rotates over, and what a sign-in needs.
pub struct Seeded {
    /// One session cookie a line.
    pub session_cookies: PathBuf,
    pub first_session_cookie: String,
    /// One sign-in form body a line, for the flood accounts in turn.
    pub flood_bodies: PathBuf,
    pub first_flood_body: String,
    /// The sign-in form's CSRF cookie: every sign-in carries it.
    pub csrf_cookie: String,
}

/// Registers the bench account through the form, copies its (real, argon2id) password hash
/// into the other accounts, and signs `sessions` sessions in through the sign-in form, four at
/// a time, through one curl process.
pub fn seed(lab: &Lab<'_>, app: &App, sessions: u64, flood_users: u64) -> Result<Seeded, Failure> {
    let context = lab.context;
    let base = app.base();
    let jar = lab.dir.join("cookies");
    let jar_arg = jar.to_string_lossy();
    let page = curl_output(
        context,
        &[
            "-fs",
            "-c",
            &jar_arg,
            "-b",
            &jar_arg,
            "-A",
            USER_AGENT,
            &format!("{base}/register"),
        ],
    )?;
    let csrf = form_token(&page).unwrap_or_default().to_owned();
    curl_output(
        context,
        &[
            "-fs",
            "-o",
            "/dev/null",
            "-c",
            &jar_arg,
            "-b",
            &jar_arg,
            "-A",
            USER_AGENT,
            "--data-urlencode",
            "username=bench",
            "--data-urlencode",
            &format!("password={PASSWORD}"),
            "--data-urlencode",
            &format!("password_confirm={PASSWORD}"),
            "--data-urlencode",
            &format!("csrf_token={csrf}"),
            &format!("{base}/register"),
        ],
    )?;
    let jar_text = std::fs::read_to_string(&jar).unwrap_or_default();
    let csrf_cookie = cookie_in_jar(&jar_text, "__Host-csrf")
        .unwrap_or_default()
        .to_owned();
    if csrf.is_empty() || csrf_cookie.is_empty() {
        return fail("could not register the bench account");
    }

    // Five sessions each: max_sessions_per_user.
    let session_users = sessions.div_ceil(5);
    lab.sql(
        "bench",
        &format!(
            "INSERT INTO users (username, password_hash, created_at)
             SELECT prefix || g, (SELECT password_hash FROM users WHERE username = 'bench'), now()
             FROM (VALUES ('sess', {session_users}), ('flood', {flood_users}), ('fill', 1000)) AS groups (prefix, n),
                  generate_series(1, n) AS g;"
        ),
    )?;

    // The sessions of the session path: real sign-ins.
    let headers = lab.dir.join("headers");
    std::fs::create_dir(&headers)
        .map_err(|error| Failure::Message(format!("{}: {error}", headers.display())))?;
    let mut config = String::new();
    for i in 1..=sessions {
        if i > 1 {
            config.push_str("next\n");
        }
        let user = format!("sess{}", (i - 1) % session_users + 1);
        config.push_str(&format!(
            "url = \"{base}/login\"\nrequest = \"POST\"\ndata = \"{}\"\nheader = \"Cookie: __Host-csrf={csrf_cookie}\"\n\
             user-agent = \"{USER_AGENT}\"\noutput = \"/dev/null\"\ndump-header = \"{}/{i}\"\n",
            sign_in_body(&user, &csrf),
            headers.display()
        ));
    }
    let config_file = lab.dir.join("sign-ins.curl");
    write(&config_file, &config)?;
    // Failures show as missing cookies, counted below.
    curl(context)
        .args(["--parallel", "--parallel-max", "4", "-K"])
        .arg(&config_file)
        .stderr(Stdio::null())
        .status()
        .map_err(|error| Failure::Message(format!("could not run curl: {error}")))?;
    let cookies: Vec<String> = (1..=sessions)
        .filter_map(|i| {
            let text = std::fs::read_to_string(headers.join(i.to_string())).ok()?;
            session_cookie(&text).map(str::to_owned)
        })
        .collect();
    if u64::try_from(cookies.len()) != Ok(sessions) {
        return fail(format!(
            "only {} of {sessions} sign-ins succeeded",
            cookies.len()
        ));
    }
    let session_cookies = lab.dir.join("session-cookies");
    write(&session_cookies, &(cookies.join("\n") + "\n"))?;

    // The sign-in flood's requests: the flood accounts in turn.
    let bodies: Vec<String> = (1..=flood_users)
        .map(|i| sign_in_body(&format!("flood{i}"), &csrf))
        .collect();
    let flood_bodies = lab.dir.join("flood-bodies");
    write(&flood_bodies, &(bodies.join("\n") + "\n"))?;

    Ok(Seeded {
        session_cookies,
        first_session_cookie: cookies[0].clone(),
        flood_bodies,
        first_flood_body: bodies[0].clone(),
        csrf_cookie,
    })
}

/// Fills the sessions table with rows `first` to `last`: sessions expired past the tombstone
/// grace, so the reaper may delete them (scenario f). The key of filler row g is SHA-256 of g:
/// pgbench looks those up. The checkpoint writes the bulk insert's pages out now, not during
/// the runs that follow: they measure a table of that size, not the aftermath of loading it.
pub fn fill_rows(lab: &Lab<'_>, first: u64, last: u64) -> Result<(), Failure> {
    lab.sql(
        "bench",
        &format!(
            r"INSERT INTO sessions (key, public_id, user_id, kind, created_at, last_seen_at, expires_at,
                      fingerprint_bind, fingerprint_watch, ip, user_agent)
SELECT sha256(int8send(g)), gen_random_uuid(), f.first_id + g % 1000, 'browser',
       now() - interval '14 hours', now() - interval '13 hours', now() - interval '2 hours',
       '\x00', '\x00', '192.0.2.1', 'filler'
FROM generate_series({first}::bigint, {last}::bigint) AS g,
     (SELECT min(id) AS first_id FROM users WHERE username LIKE 'fill%') AS f;
VACUUM ANALYZE sessions;
CHECKPOINT;"
        ),
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sessions_table_holds_the_reaper_interval_then_the_bench_settings_then_the_apps() {
        assert_eq!(sessions_table(None, ""), "{reaper_interval_secs=3600}");
        assert_eq!(
            sessions_table(
                Some("max_concurrent_hashes=4"),
                r#"hashing_cgroup="/sys/x""#
            ),
            r#"{reaper_interval_secs=3600,max_concurrent_hashes=4,hashing_cgroup="/sys/x"}"#
        );
        assert_eq!(
            sessions_table(Some(""), "a=1"),
            "{reaper_interval_secs=3600,a=1}"
        );
    }

    #[test]
    fn only_cgroup_v1_s_cpu_controller_is_the_cpu_mount() {
        let mounts = "cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0\n\
                      cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n";
        assert_eq!(cpu_controller_mount(mounts), Some("/sys/fs/cgroup/cpu"));
        let joint = "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,cpu,cpuacct 0 0\n";
        assert_eq!(
            cpu_controller_mount(joint),
            Some("/sys/fs/cgroup/cpu,cpuacct")
        );
        let v2_only = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev 0 0\n\
                       cgroup /sys/fs/cgroup/cpuset cgroup rw,cpuset 0 0\n";
        assert_eq!(cpu_controller_mount(v2_only), None);
    }

    #[test]
    fn a_response_within_a_tenth_of_the_page_size_is_the_page() {
        assert!(check_size("a", 1000, 1000).is_ok());
        assert!(check_size("a", 900, 1000).is_ok());
        assert!(check_size("a", 1100, 1000).is_ok());
        assert!(check_size("a", 899, 1000).is_err());
        assert!(check_size("a", 1101, 1000).is_err());
    }

    #[test]
    fn the_form_token_and_the_cookies_are_found_where_the_app_puts_them() {
        let html = r#"<form method="post"><input type="hidden" name="csrf_token" value="abc-_123"><input name="username">"#;
        assert_eq!(form_token(html), Some("abc-_123"));
        assert_eq!(form_token("<form></form>"), None);

        let jar = "# Netscape HTTP Cookie File\n\
                   #HttpOnly_127.0.0.1\tFALSE\t/\tTRUE\t0\t__Host-csrf\tcsrf-value\n\
                   127.0.0.1\tFALSE\t/\tTRUE\t0\tother\tx\n";
        assert_eq!(cookie_in_jar(jar, "__Host-csrf"), Some("csrf-value"));
        assert_eq!(cookie_in_jar(jar, "__Host-sid"), None);

        let headers = "HTTP/1.1 303 See Other\r\nlocation: /account\r\n\
                       set-cookie: __Host-csrf=c; Path=/; Secure\r\n\
                       Set-Cookie: __Host-sid=session-token; Path=/; Secure; HttpOnly\r\n\r\n";
        assert_eq!(session_cookie(headers), Some("session-token"));
        assert_eq!(
            session_cookie("HTTP/1.1 429 Too Many Requests\r\n\r\n"),
            None
        );
    }

    #[test]
    fn a_sign_in_body_is_form_encoded() {
        assert_eq!(
            sign_in_body("flood7", "tok"),
            "username=flood7&password=bench+password+violet+tractor&csrf_token=tok"
        );
    }
}
