//! Measured runs: wrk against the app, pgbench against PostgreSQL alone, and what each cost.
//!
//! A run is bracketed by a *window*: CPU of the app and of PostgreSQL (its backends are children
//! of the postmaster) from `/proc`, SQL statements of the app's database from
//! `pg_stat_statements`, write transactions as transaction ids used. The load generator's own CPU
//! is what this process's reaped children used while it ran (the shell's `time`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use pg_cluster::Cluster;
use rustix::process::Signal;

use super::report::{Cores, Flood, Limit, PgbenchRun, SignIns, WrkRun, ratio, round, round2};
use crate::process::{
    Context, Failure, check_interrupted, fail, forward_to, send, stop_forwarding,
};

/// Requests per wrk run at most (each of its 2 threads stops at half).
const MAX_REQUESTS: u64 = 3_000_000;
/// The browser every request claims to come from.
pub const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) secure-sessions-bench";

/// The wrk script for every run: one request per line of a file, in turn.
const ROTATE_LUA: &str = include_str!("rotate.lua");
/// What sign-in runs add to it: the responses counted by status.
const SIGN_INS_LUA: &str = include_str!("sign_ins.lua");
/// pgbench's script: the lookup a request needs, alone.
const LOOKUP_PGBENCH: &str = include_str!("lookup.pgbench");

// ---------------------------------------------------------------------------- /proc --

/// The fields of `/proc/PID/stat` a window needs, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub ppid: u32,
    /// CPU of the process itself (all its threads), user and system.
    pub utime: u64,
    pub stime: u64,
    /// CPU of its children that have ended and been reaped.
    pub cutime: u64,
    pub cstime: u64,
}

/// Reads `/proc/PID/stat`'s text: after "pid (name) ", where the name may hold spaces and
/// parentheses, field 2 is the parent, 12 to 15 the times (proc(5) numbers them 4, 14 to 17).
pub fn parse_stat(text: &str) -> Option<Stat> {
    let (_, after_name) = text.rsplit_once(") ")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let number = |index: usize| fields.get(index)?.parse::<u64>().ok();
    Some(Stat {
        ppid: u32::try_from(number(1)?).ok()?,
        utime: number(11)?,
        stime: number(12)?,
        cutime: number(13)?,
        cstime: number(14)?,
    })
}

fn stat(pid: &str) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The live children of process `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| stat(&child.to_string()).is_some_and(|stat| stat.ppid == pid))
        .collect()
}

/// CPU time (clock ticks) of process `pid`, all its threads; with `tree`, plus its children's,
/// live and reaped (PostgreSQL's backends are children of its postmaster).
pub fn ticks(pid: u32, tree: bool) -> Result<u64, Failure> {
    let Some(own) = stat(&pid.to_string()) else {
        return fail(format!("process {pid} is not running"));
    };
    let mut total = own.utime + own.stime;
    if tree {
        total += own.cutime + own.cstime;
        // A child that ends meanwhile counts nowhere: the callers wait for theirs to be reaped.
        for child in children(pid) {
            total += stat(&child.to_string()).map_or(0, |stat| stat.utime + stat.stime);
        }
    }
    Ok(total)
}

/// CPU time (clock ticks) of this process's children that have ended and been reaped.
fn reaped_children_ticks() -> u64 {
    stat("self").map_or(0, |stat| stat.cutime + stat.cstime)
}

/// Resident memory of process `pid` in MB: `VmRSS` now, or `VmHWM`, its peak.
pub fn resident_mb(pid: u32, key: &str) -> Result<u64, Failure> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    #[expect(clippy::cast_precision_loss, reason = "kB far below 2^52")]
    let kb = status
        .lines()
        .filter_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .find_map(|value| value.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb as f64);
    match kb {
        Some(kb) => Ok(round(kb / 1024.0)),
        None => fail(format!(
            "no {key} for process {pid}: is the app still running?"
        )),
    }
}

// -------------------------------------------------------------------- load generators --

/// wrk's summary, as `rotate.lua` prints it:
/// `RESULT requests duration_us bytes socket_errors status_errors p50_us p99_us`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WrkSummary {
    pub requests: u64,
    pub duration_us: u64,
    pub bytes: u64,
    pub socket_errors: u64,
    pub status_errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
}

/// The numbers after `tag` on the first line of `output` that starts with it.
fn tagged_numbers<const N: usize>(output: &str, tag: &str) -> Option<[u64; N]> {
    let line = output.lines().find_map(|line| line.strip_prefix(tag))?;
    let numbers: Vec<u64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    numbers.try_into().ok()
}

pub fn parse_wrk(output: &str) -> Option<WrkSummary> {
    let [
        requests,
        duration_us,
        bytes,
        socket_errors,
        status_errors,
        p50_us,
        p99_us,
    ] = tagged_numbers(output, "RESULT ")?;
    Some(WrkSummary {
        requests,
        duration_us,
        bytes,
        socket_errors,
        status_errors,
        p50_us,
        p99_us,
    })
}

/// `sign_ins.lua`'s line: `SIGN-INS made throttled busy other`.
pub fn parse_sign_ins(output: &str) -> Option<SignIns> {
    let [made, throttled, busy, other] = tagged_numbers(output, "SIGN-INS ")?;
    Some(SignIns {
        made,
        throttled,
        busy,
        other,
    })
}

/// What pgbench printed: transactions a second (the last `tps = ` line), the mean latency as
/// printed, and the transactions processed.
#[derive(Debug, Clone, PartialEq)]
pub struct PgbenchSummary {
    pub tps: f64,
    pub latency_avg_ms: Option<String>,
    pub transactions: u64,
}

/// The number that follows `prefix` on each line of `output` that starts with it.
fn numbers_after<'o>(output: &'o str, prefix: &'o str) -> impl Iterator<Item = &'o str> {
    output.lines().filter_map(move |line| {
        let rest = line.strip_prefix(prefix)?;
        let end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        Some(&rest[..end]).filter(|number| !number.is_empty())
    })
}

pub fn parse_pgbench(output: &str) -> Option<PgbenchSummary> {
    Some(PgbenchSummary {
        tps: numbers_after(output, "tps = ").last()?.parse().ok()?,
        latency_avg_ms: numbers_after(output, "latency average = ")
            .next()
            .map(str::to_owned),
        transactions: numbers_after(output, "number of transactions actually processed: ")
            .next()?
            .parse()
            .ok()?,
    })
}

/// How each line of a wrk run's file is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// As the session cookie.
    Cookie,
    /// As a bearer token.
    Bearer,
    /// As the form body of a sign-in; its responses are counted by status.
    SignIn,
}

/// One wrk run: `connections` over `seconds`, `method path`, each line of `lines` in turn.
pub struct Load<'a> {
    pub name: String,
    pub connections: u32,
    pub seconds: u64,
    pub method: &'a str,
    pub path: &'a str,
    pub lines: &'a Path,
    pub kind: Kind,
}

/// The app under load: its process and its address.
#[derive(Debug, Clone)]
pub struct Target {
    pub pid: u32,
    pub base: String,
}

/// Readings at the start of a window.
struct Window {
    start: Instant,
    xid: u64,
    app_ticks: u64,
    postgres_ticks: u64,
}

/// What a window measured.
struct Cost {
    elapsed: Duration,
    app_cores: f64,
    postgres_cores: f64,
    writes: u64,
    statements: u64,
    top_statements: String,
}

/// What every run needs: the database, the work folder, the sizes of this run.
pub struct Lab<'a> {
    pub context: &'a Context,
    pub cluster: &'a Cluster,
    pub pgbench: PathBuf,
    pub dir: &'a Path,
    /// The `Cookie` header every sign-in carries: the form's CSRF token's pair.
    pub csrf_cookie: String,
    postmaster: u32,
    ticks_per_second: f64,
    runs: std::cell::Cell<u32>,
}

impl<'a> Lab<'a> {
    /// Writes the load generators' scripts into `dir`.
    pub fn new(
        context: &'a Context,
        cluster: &'a Cluster,
        pg_bin: &Path,
        dir: &'a Path,
    ) -> Result<Lab<'a>, Failure> {
        for (file, text) in [
            ("rotate.lua", ROTATE_LUA.to_owned()),
            ("sign-ins.lua", format!("{ROTATE_LUA}{SIGN_INS_LUA}")),
            ("lookup.pgbench", LOOKUP_PGBENCH.to_owned()),
        ] {
            write(&dir.join(file), &text)?;
        }
        let pid_file = cluster.data().join("postmaster.pid");
        let postmaster = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|text| text.lines().next()?.trim().parse().ok())
            .ok_or_else(|| Failure::Message(format!("no process id in {}", pid_file.display())))?;
        let output = context
            .command("getconf")
            .arg("CLK_TCK")
            .output()
            .map_err(|error| Failure::Message(format!("could not run getconf: {error}")))?;
        let ticks_per_second: f64 = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .map_err(|_| Failure::Message("getconf CLK_TCK printed no number".into()))?;
        Ok(Lab {
            context,
            cluster,
            pgbench: pg_bin.join("pgbench"),
            dir,
            csrf_cookie: String::new(),
            postmaster,
            ticks_per_second,
            runs: std::cell::Cell::new(0),
        })
    }

    /// Runs `sql` in `database` through psql (unaligned, tuples only) and returns what it
    /// printed, trimmed.
    pub fn sql(&self, database: &str, sql: &str) -> Result<String, Failure> {
        use std::io::Write as _;
        let mut child = self
            .cluster
            .psql()
            .args(["-d", database, "-At"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| Failure::Message(format!("could not run psql: {error}")))?;
        child
            .stdin
            .take()
            .map(|mut stdin| stdin.write_all(sql.as_bytes()))
            .transpose()
            .map_err(|error| Failure::Message(format!("psql: {error}")))?;
        let output = child
            .wait_with_output()
            .map_err(|error| Failure::Message(format!("psql: {error}")))?;
        if !output.status.success() {
            return fail(format!(
                "psql failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// A number `sql` returns.
    pub fn sql_number(&self, database: &str, sql: &str) -> Result<u64, Failure> {
        let text = self.sql(database, sql)?;
        text.parse()
            .map_err(|_| Failure::Message(format!("not a number from PostgreSQL: {text:?}")))
    }

    /// The next transaction id: it moves only when something writes (a read-only statement
    /// takes none). Asked in the maintenance database, as are the statistics: the extension
    /// lives there, so this tool's own statements are not counted with the app's.
    fn next_xid(&self) -> Result<u64, Failure> {
        self.sql_number("postgres", "SELECT pg_snapshot_xmax(pg_current_snapshot())")
    }

    fn cores(&self, ticks: u64, elapsed: Duration) -> f64 {
        #[expect(clippy::cast_precision_loss, reason = "ticks far below 2^52")]
        let seconds = ticks as f64 / self.ticks_per_second;
        round2(ratio(seconds, elapsed.as_secs_f64()))
    }

    fn begin(&self, app: Option<u32>) -> Result<Window, Failure> {
        self.sql("postgres", "SELECT pg_stat_statements_reset()")?;
        Ok(Window {
            xid: self.next_xid()?,
            app_ticks: app.map_or(Ok(0), |pid| ticks(pid, true))?,
            postgres_ticks: ticks(self.postmaster, true)?,
            start: Instant::now(),
        })
    }

    fn end(&self, window: &Window, app: Option<u32>) -> Result<Cost, Failure> {
        let elapsed = window.start.elapsed();
        let app_ticks = app.map_or(Ok(0), |pid| ticks(pid, true))?;
        let postgres_ticks = ticks(self.postmaster, true)?;
        let of_bench = "dbid = (SELECT oid FROM pg_database WHERE datname = 'bench')";
        Ok(Cost {
            elapsed,
            app_cores: self.cores(app_ticks.saturating_sub(window.app_ticks), elapsed),
            postgres_cores: self.cores(
                postgres_ticks.saturating_sub(window.postgres_ticks),
                elapsed,
            ),
            writes: self.next_xid()?.saturating_sub(window.xid),
            statements: self.sql_number(
                "postgres",
                &format!(
                    "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE {of_bench}"
                ),
            )?,
            top_statements: self.sql(
                "postgres",
                &format!(
                    "SELECT coalesce(json_agg(json_build_object('calls', calls,
                        'query', left(regexp_replace(query, '\\s+', ' ', 'g'), 120)) ORDER BY calls DESC), '[]')
                     FROM (SELECT calls, query FROM pg_stat_statements WHERE {of_bench}
                           ORDER BY calls DESC LIMIT 4) AS top"
                ),
            )?,
        })
    }

    /// A new file for a run's output.
    fn output_file(&self) -> Result<(PathBuf, File), Failure> {
        self.runs.set(self.runs.get() + 1);
        let path = self.dir.join(format!("run-{}.out", self.runs.get()));
        let file = File::create(&path)
            .map_err(|error| Failure::Message(format!("{}: {error}", path.display())))?;
        Ok((path, file))
    }

    /// wrk for `load` against `target` over `seconds`, on `threads` threads; its output goes to
    /// `out`. wrk's own timeout (2 s unless `timeout`) counts slower responses as errors.
    fn wrk(
        &self,
        load: &Load<'_>,
        target: &Target,
        threads: u32,
        timeout: Option<&str>,
        out: &File,
    ) -> Result<Command, Failure> {
        let script = match load.kind {
            Kind::SignIn => "sign-ins.lua",
            Kind::Cookie | Kind::Bearer => "rotate.lua",
        };
        let mut wrk = self.context.command("wrk");
        wrk.arg(format!("-t{threads}"))
            .arg(format!("-c{}", load.connections))
            .arg(format!("-d{}s", load.seconds));
        if let Some(timeout) = timeout {
            wrk.args(["--timeout", timeout]);
        }
        wrk.args(["-H", &format!("User-Agent: {USER_AGENT}")]);
        if load.kind == Kind::SignIn {
            wrk.args(["-H", &format!("Cookie: __Host-csrf={}", self.csrf_cookie)]);
        }
        wrk.arg("-s")
            .arg(self.dir.join(script))
            .arg(&target.base)
            .args(["--", load.method, load.path])
            .arg(load.lines)
            .arg(match load.kind {
                Kind::Cookie => "cookie",
                Kind::Bearer => "bearer",
                Kind::SignIn => "form",
            })
            .arg((MAX_REQUESTS / 2).to_string())
            .stdin(Stdio::null())
            .stdout(clone(out)?)
            .stderr(clone(out)?);
        Ok(wrk)
    }

    /// One measured wrk run against `target`.
    pub fn wrk_run(&self, load: &Load<'_>, target: &Target) -> Result<WrkRun, Failure> {
        let (out_path, out) = self.output_file()?;
        let mut wrk = self.wrk(load, target, 2, Some("10s"), &out)?;
        let window = self.begin(Some(target.pid))?;
        let before = reaped_children_ticks();
        let status = run_bounded(&mut wrk, Duration::from_secs(load.seconds + 30))?;
        let load_generator_ticks = reaped_children_ticks().saturating_sub(before);
        let cost = self.end(&window, Some(target.pid))?;
        let output = std::fs::read_to_string(&out_path).unwrap_or_default();
        if !status.is_some_and(|status| status.success()) {
            return fail(format!("wrk failed for {}: {output}", load.name));
        }
        let Some(summary) = parse_wrk(&output) else {
            return fail(format!("no result from wrk for {}: {output}", load.name));
        };
        let sign_ins = match load.kind {
            Kind::SignIn => Some(parse_sign_ins(&output).ok_or_else(|| {
                Failure::Message(format!(
                    "no sign-in counts from wrk for {}: {output}",
                    load.name
                ))
            })?),
            Kind::Cookie | Kind::Bearer => None,
        };
        let cores = Cores {
            app: cost.app_cores,
            postgres: cost.postgres_cores,
            load_generator: self.cores(load_generator_ticks, cost.elapsed),
        };
        Ok(wrk_result(load, &summary, cores, cost, sign_ins))
    }

    /// One pgbench run: `clients` doing the lookup over `rotation` sessions, on the same server.
    pub fn pgbench_run(
        &self,
        name: &str,
        clients: u32,
        rotation: u64,
        seconds: u64,
    ) -> Result<PgbenchRun, Failure> {
        let (out_path, out) = self.output_file()?;
        let mut pgbench = self.context.command(&self.pgbench);
        pgbench
            .args(["-h", "127.0.0.1", "-p", &self.cluster.port().to_string()])
            .args(["-U", "postgres", "-n", "-M", "prepared"])
            .args(["-c", &clients.to_string(), "-j", "2"])
            .args(["-T", &seconds.to_string()])
            .arg("-D")
            .arg(format!("rotation={rotation}"))
            .arg("-f")
            .arg(self.dir.join("lookup.pgbench"))
            .arg("bench")
            .stdin(Stdio::null())
            .stdout(clone(&out)?)
            .stderr(out);
        let backends = children(self.postmaster).len();
        let window = self.begin(None)?;
        let before = reaped_children_ticks();
        let status = run_bounded(&mut pgbench, Duration::from_secs(seconds + 30))?;
        let load_generator_ticks = reaped_children_ticks().saturating_sub(before);
        // A backend's CPU moves into the postmaster's children's time when it is reaped: one
        // reaped while `ticks` walks the live ones would be counted nowhere. Wait until
        // pgbench's are gone.
        for _ in 0..50 {
            if children(self.postmaster).len() <= backends {
                break;
            }
            pause(Duration::from_millis(100))?;
        }
        let cost = self.end(&window, None)?;
        let output = std::fs::read_to_string(&out_path).unwrap_or_default();
        if !status.is_some_and(|status| status.success()) {
            return fail(format!("pgbench failed: {output}"));
        }
        let Some(summary) = parse_pgbench(&output) else {
            return fail(format!("no result from pgbench: {output}"));
        };
        let load_generator_cores = self.cores(load_generator_ticks, cost.elapsed);
        // CPU per lookup: the window's CPU (connecting and the wait above included) over its
        // lookups.
        #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
        let cpu_us = ratio(
            (cost.postgres_cores + load_generator_cores) * cost.elapsed.as_secs_f64() * 1e6,
            summary.transactions as f64,
        );
        Ok(PgbenchRun {
            scenario: name.to_owned(),
            connections: clients,
            seconds,
            tps: summary.tps,
            latency_avg_ms: summary.latency_avg_ms,
            statements: cost.statements,
            postgres_cores: cost.postgres_cores,
            load_generator_cores,
            cpu_us_per_request: round(cpu_us),
        })
    }

    /// A sign-in flood against `target` in the background, for `seconds`: the flood's
    /// connections, one wrk thread.
    pub fn start_flood(
        &self,
        target: &Target,
        flood_bodies: &Path,
        connections: u32,
        seconds: u64,
    ) -> Result<Background, Failure> {
        let (out_path, out) = self.output_file()?;
        let load = Load {
            name: String::from("the sign-in flood"),
            connections,
            seconds,
            method: "POST",
            path: "/login",
            lines: flood_bodies,
            kind: Kind::SignIn,
        };
        let wrk = self.wrk(&load, target, 1, None, &out)?;
        Background::spawn(wrk, out_path)
    }

    /// An unmeasured run of `load` against `target` (an app's first connections to its
    /// database), two threads.
    pub fn warm_up(&self, load: &Load<'_>, target: &Target) -> Result<(), Failure> {
        let (_, out) = self.output_file()?;
        let mut wrk = self.wrk(load, target, 2, None, &out)?;
        match run_bounded(&mut wrk, Duration::from_secs(load.seconds + 30))? {
            Some(status) if status.success() => Ok(()),
            _ => fail(format!("{} failed", load.name)),
        }
    }

    /// The flood's result, once it has ended: its sign-ins by kind and its errors.
    pub fn finish_flood(
        &self,
        mut flood: Background,
        load_generator_cores: f64,
    ) -> Result<Flood, Failure> {
        let status = flood.wait()?;
        let output = std::fs::read_to_string(&flood.output).unwrap_or_default();
        let (Some(summary), Some(sign_ins), true) = (
            parse_wrk(&output),
            parse_sign_ins(&output),
            status.success(),
        ) else {
            return fail(format!("the sign-in flood failed: {output}"));
        };
        Ok(Flood {
            sign_ins,
            duration: Duration::from_micros(summary.duration_us),
            errors: summary.socket_errors + summary.status_errors,
            load_generator_cores,
        })
    }

    /// CPU cores process `pid` used since `since` ticks, over `elapsed`.
    pub fn cores_since(&self, pid: u32, since: u64, elapsed: Duration) -> Result<f64, Failure> {
        Ok(self.cores(ticks(pid, false)?.saturating_sub(since), elapsed))
    }
}

/// A run's record from wrk's summary and the window's cost.
fn wrk_result(
    load: &Load<'_>,
    summary: &WrkSummary,
    cores: Cores,
    cost: Cost,
    sign_ins: Option<SignIns>,
) -> WrkRun {
    let duration = Duration::from_micros(summary.duration_us);
    #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    let req_per_s = round(ratio(summary.requests as f64, duration.as_secs_f64()));
    // CPU of the app, PostgreSQL and wrk per request: unlike req/s, it does not depend on how
    // much of the machine the run got.
    #[expect(clippy::cast_precision_loss, reason = "rates far below 2^52")]
    let cpu_us = ratio(
        cores.app + cores.postgres + cores.load_generator,
        req_per_s as f64,
    ) * 1e6;
    let millis = |micros: u64| {
        #[expect(clippy::cast_precision_loss, reason = "microseconds far below 2^52")]
        let millis = micros as f64 / 1000.0;
        round2(millis)
    };
    WrkRun {
        scenario: load.name.clone(),
        connections: load.connections,
        duration,
        window: cost.elapsed,
        requests: summary.requests,
        req_per_s,
        p50_ms: millis(summary.p50_us),
        p99_ms: millis(summary.p99_us),
        errors: summary.socket_errors + summary.status_errors,
        bytes_per_response: summary.bytes.checked_div(summary.requests).unwrap_or(0),
        statements: cost.statements,
        write_transactions: cost.writes,
        cores,
        cpu_us_per_request: round(cpu_us),
        top_statements: cost.top_statements,
        sign_ins,
        limit: None,
        flood: None,
        session_rows: None,
        reaped: None,
    }
}

impl WrkRun {
    /// This run compared with `limit`.
    pub fn against(mut self, limit: Limit) -> WrkRun {
        self.limit = Some(limit);
        self
    }
}

// ------------------------------------------------------------------------- processes --

fn clone(file: &File) -> Result<File, Failure> {
    file.try_clone()
        .map_err(|error| Failure::Message(error.to_string()))
}

/// Writes `text` to the file `path`.
pub fn write(path: &Path, text: &str) -> Result<(), Failure> {
    std::fs::write(path, text)
        .map_err(|error| Failure::Message(format!("{}: {error}", path.display())))
}

/// Sleeps for `duration`, ending the command early if a signal asks it to.
pub fn pause(duration: Duration) -> Result<(), Failure> {
    let end = Instant::now() + duration;
    loop {
        check_interrupted()?;
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

/// Runs `command` to its end, at most for `limit` (then it is stopped, and `None` returned); a
/// SIGTERM to this command is passed on to it.
fn run_bounded(command: &mut Command, limit: Duration) -> Result<Option<ExitStatus>, Failure> {
    let mut child = command.spawn().map_err(|error| {
        Failure::Message(format!(
            "could not run {:?}: {error}",
            command.get_program()
        ))
    })?;
    forward_to(&child, Signal::TERM);
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                send(child.id(), Signal::TERM);
                child.wait().ok();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(error) => {
                stop_forwarding(&child);
                return fail(format!("waiting for {:?}: {error}", command.get_program()));
            }
        }
    };
    stop_forwarding(&child);
    check_interrupted()?;
    Ok(status)
}

/// A program running beside the measured runs (the sign-in flood, perf), stopped by its
/// process id when dropped if it has not ended by then.
pub struct Background {
    child: Option<Child>,
    output: PathBuf,
}

impl Background {
    pub fn spawn(mut command: Command, output: PathBuf) -> Result<Background, Failure> {
        let child = command.spawn().map_err(|error| {
            Failure::Message(format!(
                "could not run {:?}: {error}",
                command.get_program()
            ))
        })?;
        Ok(Background {
            child: Some(child),
            output,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Waits for the program to end.
    fn wait(&mut self) -> Result<ExitStatus, Failure> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| Failure::Message("waited twice for a program".into()))?;
        forward_to(&child, Signal::TERM);
        let status = child.wait();
        stop_forwarding(&child);
        check_interrupted()?;
        status.map_err(|error| Failure::Message(error.to_string()))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            send(child.id(), Signal::TERM);
            child.wait().ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_is_read_after_the_name_whatever_the_name_holds() {
        let line = "4242 (rocket (worker) 1) S 17 4242 4242 0 -1 4194560 900 0 0 0 \
                    250 75 12 3 20 0 9 0 123456 1000000 2000 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                ppid: 17,
                utime: 250,
                stime: 75,
                cutime: 12,
                cstime: 3,
            })
        );
        assert_eq!(parse_stat("4242 (cut short) S 17 4242"), None);
    }

    #[test]
    fn this_process_has_a_stat_and_no_children_after_reaping_them() {
        let own = stat("self").expect("/proc/self/stat");
        assert_eq!(
            own.ppid,
            rustix::process::getppid().map_or(0, |pid| pid.as_raw_nonzero().get().unsigned_abs())
        );
        assert!(ticks(std::process::id(), true).is_ok());
        assert!(ticks(4_194_305, false).is_err());
    }

    #[test]
    fn wrk_and_sign_in_summaries_are_read_from_their_tagged_lines() {
        let output = "Running 3s test @ http://127.0.0.1:18000\n  2 threads and 8 connections\n\
                      RESULT 420 3001234 1234567 2 17 5120 31250\nSIGN-INS 300 100 3 0\n";
        assert_eq!(
            parse_wrk(output),
            Some(WrkSummary {
                requests: 420,
                duration_us: 3_001_234,
                bytes: 1_234_567,
                socket_errors: 2,
                status_errors: 17,
                p50_us: 5120,
                p99_us: 31250,
            })
        );
        assert_eq!(
            parse_sign_ins(output),
            Some(SignIns {
                made: 300,
                throttled: 100,
                busy: 3,
                other: 0,
            })
        );
        assert_eq!(parse_wrk("RESULT 420 3001234\n"), None);
        assert_eq!(parse_sign_ins("RESULT 1 2 3 4 5 6 7\n"), None);
    }

    #[test]
    fn pgbench_output_gives_the_last_rate_the_latency_and_the_transactions() {
        let output = "pgbench (15.14 (Debian 15.14-0+deb12u1))\n\
                      transaction type: /tmp/x/lookup.pgbench\n\
                      number of clients: 32\n\
                      number of transactions actually processed: 412345\n\
                      number of failed transactions: 0 (0.000%)\n\
                      latency average = 0.776 ms\n\
                      initial connection time = 35.127 ms\n\
                      tps = 41234.567890 (without initial connection time)\n";
        assert_eq!(
            parse_pgbench(output),
            Some(PgbenchSummary {
                tps: 41_234.567_89,
                latency_avg_ms: Some("0.776".to_owned()),
                transactions: 412_345,
            })
        );
        assert_eq!(parse_pgbench("pgbench: error: connection refused\n"), None);
    }

    fn cost() -> Cost {
        Cost {
            elapsed: Duration::from_millis(12_100),
            app_cores: 0.85,
            postgres_cores: 0.6,
            writes: 10,
            statements: 240_032,
            top_statements: "[]".to_owned(),
        }
    }

    #[test]
    fn a_run_counts_its_rate_its_cpu_per_request_and_its_statements() {
        let load = Load {
            name: "a: session path /account/password".to_owned(),
            connections: 32,
            seconds: 12,
            method: "GET",
            path: "/account/password",
            lines: Path::new("session-cookies"),
            kind: Kind::Cookie,
        };
        let summary = WrkSummary {
            requests: 240_000,
            duration_us: 12_000_000,
            bytes: 240_000 * 2_048 + 100,
            socket_errors: 0,
            status_errors: 1,
            p50_us: 1_234,
            p99_us: 5_678,
        };
        let cores = Cores {
            app: 0.85,
            postgres: 0.6,
            load_generator: 0.4,
        };
        let run = wrk_result(&load, &summary, cores, cost(), None);
        assert_eq!(run.req_per_s, 20_000);
        // (0.85 + 0.60 + 0.40) cores / 20,000 requests a second.
        assert_eq!(run.cpu_us_per_request, 93);
        assert_eq!(run.bytes_per_response, 2_048);
        assert_eq!((run.p50_ms, run.p99_ms), (1.23, 5.68));
        assert_eq!(run.errors, 1);
        assert_eq!(run.window, Duration::from_millis(12_100));
    }

    #[test]
    fn a_run_that_answered_nothing_divides_by_nothing() {
        let load = Load {
            name: "d: sign-ins POST /login".to_owned(),
            connections: 8,
            seconds: 3,
            method: "POST",
            path: "/login",
            lines: Path::new("flood-bodies"),
            kind: Kind::SignIn,
        };
        let run = wrk_result(
            &load,
            &WrkSummary::default(),
            Cores::default(),
            cost(),
            Some(SignIns::default()),
        );
        assert_eq!((run.req_per_s, run.cpu_us_per_request), (0, 0));
        assert_eq!(run.bytes_per_response, 0);
        assert_eq!(run.sign_ins_per_s(), Some(0));
    }
}
