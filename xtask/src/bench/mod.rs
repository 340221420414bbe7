//! `scripts/bench [--quick]`: the release build measured against the database's own limit, on
//! loopback only (docs/benchmarks.md says what each scenario measures, and why).
//!
//! It builds the release binary, starts a throwaway PostgreSQL with `pg_stat_statements` and the
//! app on free 127.0.0.1 ports, signs sessions in through the real sign-in form ([`app`]), and
//! drives them with wrk, a Lua script rotating over the session cookies (`rotate.lua`). In the
//! same run, pgbench does on the same PostgreSQL the one indexed lookup a request needs
//! (`lookup.pgbench`: a session joined to its user, same schema, same row counts, same
//! concurrency): that is the limit every speed is compared with, because this machine is shared
//! and absolute numbers drift from run to run ([`measure`]).
//!
//! - a: the session path, `GET /account/password` (needs only a valid session), 32 and 128
//!   connections, alternating, two rounds of each; in the same rounds the floor, a static file
//!   of the same app (no session, no SQL), which shows what 128 connections cost Rocket itself;
//! - b: the full `GET /account` page (session, devices, security activity);
//! - c: `GET /api/me` with a bearer token;
//! - d: sign-ins per second (argon2id, OWASP parameters), then the session path alone and
//!   beside a sign-in flood, alternating, two rounds of each; then the same on a second app
//!   whose hashing threads are in a cgroup of idle CPU weight (`hashing_cgroup`; as root, with
//!   cgroup v1's `cpu` controller). Sign-ins count only those made: the ones refused at once
//!   (429 by the throttle, 503 with the hashing queue full) are reported apart;
//! - e: the session path with 10,000 session rows, then with 1,000,000, two rounds of each (each
//!   against its own pgbench limit); sign-ins at 1,000,000;
//! - f: the reaper deleting 1,000,000 expired rows while the session path runs;
//! - g: resident memory of the app: peak under load, after the first and the last of three
//!   sign-in floods.
//!
//! The app takes `ROCKET_*` variables as usual (`ROCKET_WORKERS=4`,
//! `ROCKET_DATABASES='{main={max_connections=8}}'`); `BENCH_SESSIONS` adds settings to its
//! `[sessions]` table (`BENCH_SESSIONS='max_concurrent_hashes=4'`); `BENCH_BINARY` measures
//! another build (give it its own Rocket.toml with `ROCKET_CONFIG=file` when the settings have
//! changed since); `BENCH_PERF=FILE` records a perf profile of the app (`perf record -g`) during
//! scenario a at 32 connections, for `perf report -i FILE`.
//!
//! Every run is bounded in time and in requests, and everything started here is stopped by its
//! process id however the command ends (Ctrl-C and SIGTERM included). It prints a table and
//! writes it as JSON to `target/bench/` (`latest.json`, and one file per run; [`report`]). No
//! timing is asserted: targets are reported, not enforced.

mod app;
mod measure;
mod report;

use std::path::{Path, PathBuf};

use pg_cluster::{
    Throwaway, apt_install, ensure_pg_stat_statements, ensure_postgres, free_port, is_executable,
    on_path, say,
};

use crate::e2e::secret_key;
use crate::process::{Context, Failure, Outcome, fail, handle_signals};
use app::{App, IdleCgroup, Launcher, check_size, fill_rows, response_size};
pub use measure::ticks;
use measure::{Background, Kind, Lab, Load, Target, USER_AGENT, pause, resident_mb};
use report::{Header, Limit, Memory, Record, Summary, WrkRun};

/// How long and how big a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub quick: bool,
    /// Each measured wrk run.
    pub run_secs: u64,
    pub pgbench_secs: u64,
    /// Scenario f's run, while the reaper works.
    pub reap_secs: u64,
    /// Sessions signed in through the form: the session path rotates over them.
    pub sessions: u64,
    /// Session rows in the table, then after it grows (scenario e).
    pub rows_small: u64,
    pub rows_large: u64,
}

const USAGE: &str = "usage: scripts/bench [--quick]";

impl Sizes {
    /// The full benchmark, or with `--quick` every scenario for a few seconds: a smoke test.
    pub fn from_args(args: &[String]) -> Result<Sizes, String> {
        match args {
            [] => Ok(Sizes {
                quick: false,
                run_secs: 12,
                pgbench_secs: 10,
                reap_secs: 30,
                sessions: 1000,
                rows_small: 10_000,
                rows_large: 1_000_000,
            }),
            [quick] if quick == "--quick" => Ok(Sizes {
                quick: true,
                run_secs: 3,
                pgbench_secs: 3,
                reap_secs: 5,
                sessions: 200,
                rows_small: 2000,
                rows_large: 100_000,
            }),
            _ => Err(USAGE.to_owned()),
        }
    }
}

/// Sign-ins in flight during a flood: more than the hashing threads, so they never idle.
const FLOOD_CONNECTIONS: u32 = 8;
const FLOOD_USERS: u64 = 100;
/// The server options of the bench's PostgreSQL: statement statistics of top-level statements.
const POSTGRES_OPTIONS: &str =
    "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=top";

pub fn main(args: &[String]) -> Outcome {
    let sizes = match Sizes::from_args(args) {
        Ok(sizes) => sizes,
        Err(usage) => return fail(usage),
    };
    handle_signals()?;
    let context = Context::default();
    let pg_bin = ensure_tools()?;
    let binary = app_binary(&context)?;

    // Everything below is stopped or deleted in the reverse order, however this command ends.
    let work = pg_cluster::TempDir::new("secure-sessions-bench")?;
    let postgres = Throwaway::start(&pg_bin, "secure-sessions-bench-postgres", POSTGRES_OPTIONS)?;
    let cluster = postgres.cluster();
    cluster.create_database("bench")?;
    let mut lab = Lab::new(&context, cluster, &pg_bin, work.path())?;
    // The extension lives in the maintenance database, so this command's own queries are not
    // counted with the app's (they are told apart by database).
    lab.sql(
        "postgres",
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
    )?;

    let launcher = Launcher {
        context: &context,
        binary: &binary,
        database_url: cluster.url("bench"),
        secret_key: secret_key()?,
        log: work.path().join("app.log"),
    };
    let port = free_port(18000)?;
    let app = launcher.launch(port, "")?;
    // A second app on the same database, its hashing threads in a cgroup of idle CPU weight,
    // for scenario d's second half. It starts now, before the table is filled, because the
    // reaper runs as an app starts.
    let cgroup = IdleCgroup::make()?;
    let grouped = match &cgroup {
        Some(cgroup) => Some(launcher.launch(
            free_port(port.saturating_add(1))?,
            &format!("hashing_cgroup=\"{}\"", cgroup.path.display()),
        )?),
        None => None,
    };

    say(format!(
        "seeding: accounts, {} sessions through the sign-in form, {} other rows",
        sizes.sessions,
        sizes.rows_small - sizes.sessions
    ));
    let seeded = app::seed(&lab, &app, sizes.sessions, FLOOD_USERS)?;
    lab.csrf_cookie.clone_from(&seeded.csrf_cookie);
    fill_rows(&lab, 1, sizes.rows_small - sizes.sessions)?;
    lab.sql("bench", "VACUUM ANALYZE users")?;

    let mut scenarios = Scenarios {
        lab: &lab,
        sizes,
        seeded: &seeded,
        access_tokens: work.path().join("access-tokens"),
        sign_in_page: 0,
        records: Vec::new(),
    };
    let (summary, app) = scenarios.run(app, grouped, &launcher)?;
    // The second app stopped after its rounds: its cgroup can go.
    drop(cgroup);
    drop(app);
    let records = scenarios.records;
    write_report(&context, sizes, &binary, &records, &summary)?;
    Ok(0)
}

/// wrk, curl, PostgreSQL with `pg_stat_statements` and pgbench, installed where missing;
/// returns PostgreSQL's programs' directory.
fn ensure_tools() -> Result<PathBuf, Failure> {
    for program in ["wrk", "curl"] {
        if on_path(program).is_none() {
            apt_install(&[program])?;
        }
    }
    let bin = ensure_postgres()?;
    ensure_pg_stat_statements(&bin)?;
    if !is_executable(&bin.join("pgbench")) {
        apt_install(&["postgresql-contrib"])?;
    }
    Ok(bin)
}

/// The binary to measure: `BENCH_BINARY`, or the release build, built now.
fn app_binary(context: &Context) -> Result<PathBuf, Failure> {
    if let Some(binary) = context.get("BENCH_BINARY") {
        return Ok(PathBuf::from(binary));
    }
    let built = context.status(
        context
            .cargo()
            .args(["build", "--release", "--locked"])
            .stdout(std::io::stderr()),
    )?;
    if built != 0 {
        return Err(Failure::Status(built));
    }
    Ok(PathBuf::from("target/release/secure-sessions"))
}

/// The scenarios, in order, and the records they made.
struct Scenarios<'a> {
    lab: &'a Lab<'a>,
    sizes: Sizes,
    seeded: &'a app::Seeded,
    /// The bearer path's tokens, one a line (scenario c).
    access_tokens: PathBuf,
    /// The size of a sign-in's answer (scenario d measures it, e uses it too).
    sign_in_page: u64,
    records: Vec<Record>,
}

/// The size of each page measured, headers included.
struct Pages {
    /// `GET /account/password`: the session path.
    session: u64,
    /// `GET /account`: the full page.
    account: u64,
    /// `GET /static/local-time.js`: the floor.
    floor: u64,
}

/// Scenario a's runs, and the limit at 32 connections the others are compared with.
struct ScenarioA {
    limit_32: Limit,
    a32: Vec<WrkRun>,
    a128: Vec<WrkRun>,
    floor32: Vec<WrkRun>,
    floor128: Vec<WrkRun>,
}

/// Scenario d's runs, and the app's memory through it.
struct ScenarioD {
    sign_ins: WrkRun,
    alone: Vec<WrkRun>,
    beside: Vec<WrkRun>,
    grouped_alone: Vec<WrkRun>,
    grouped_beside: Vec<WrkRun>,
    memory: Memory,
}

/// Scenario e's runs, and the last limit at the grown table (scenario f's).
struct ScenarioE {
    small: Vec<WrkRun>,
    large: Vec<WrkRun>,
    sign_ins: WrkRun,
    limit: Limit,
}

impl Scenarios<'_> {
    /// A measured wrk run of `kind` against `target`, `connections` over the usual time.
    fn load<'l>(
        &'l self,
        name: &str,
        connections: u32,
        method: &'l str,
        path: &'l str,
        kind: Kind,
    ) -> Load<'l> {
        Load {
            name: name.to_owned(),
            connections,
            seconds: self.sizes.run_secs,
            method,
            path,
            lines: match kind {
                Kind::Cookie => &self.seeded.session_cookies,
                Kind::Bearer => &self.access_tokens,
                Kind::SignIn => &self.seeded.flood_bodies,
            },
            kind,
        }
    }

    /// The session path at `connections` against `target`: `GET /account/password`.
    fn session_path(
        &self,
        name: &str,
        connections: u32,
        target: &Target,
    ) -> Result<WrkRun, Failure> {
        let load = self.load(name, connections, "GET", "/account/password", Kind::Cookie);
        self.lab.wrk_run(&load, target)
    }

    fn record_pgbench(&mut self, name: &str, clients: u32) -> Result<Limit, Failure> {
        let run =
            self.lab
                .pgbench_run(name, clients, self.sizes.sessions, self.sizes.pgbench_secs)?;
        let limit = run.limit();
        self.records.push(Record::Pgbench(run));
        Ok(limit)
    }

    fn record(&mut self, run: &WrkRun) {
        self.records.push(Record::Wrk(Box::new(run.clone())));
    }

    /// Every scenario, in order; returns what the targets are checked against, and the app
    /// (scenario f restarts it).
    fn run(
        &mut self,
        app: App,
        grouped: Option<App>,
        launcher: &Launcher<'_>,
    ) -> Result<(Summary, App), Failure> {
        let target = app.target();
        let pages = self.page_sizes(&target)?;
        let a = self.scenario_a(&target, &pages)?;
        self.scenario_b(&target, &pages, a.limit_32)?;
        self.scenario_c(&target, a.limit_32)?;
        let d = self.scenario_d(&target, grouped, &pages, a.limit_32)?;
        let e = self.scenario_e(&target, &pages)?;
        let (f, filler_before, app) = self.scenario_f(app, launcher, &pages, e.limit)?;
        self.records.push(Record::Memory(d.memory));
        let summary = Summary {
            rows_small: self.sizes.rows_small,
            rows_large: self.sizes.rows_large,
            reap_secs: self.sizes.reap_secs,
            limit_32: a.limit_32,
            a32: a.a32,
            a128: a.a128,
            floor32: a.floor32,
            floor128: a.floor128,
            sign_ins_alone: d.sign_ins,
            sign_ins_large: e.sign_ins,
            d_alone: d.alone,
            d_flood: d.beside,
            g_alone: d.grouped_alone,
            g_flood: d.grouped_beside,
            e_small: e.small,
            e_large: e.large,
            f,
            filler_before,
            memory: d.memory,
        };
        Ok((summary, app))
    }

    /// The size of each page measured, as wrk counts it (headers included): a run whose
    /// responses average another size was not answered with that page.
    fn page_sizes(&self, target: &Target) -> Result<Pages, Failure> {
        let context = self.lab.context;
        let cookie = format!("Cookie: __Host-sid={}", self.seeded.first_session_cookie);
        let with_session = |path: &str| {
            response_size(
                context,
                &[
                    "-A",
                    USER_AGENT,
                    "-H",
                    &cookie,
                    &format!("{}{path}", target.base),
                ],
            )
        };
        Ok(Pages {
            session: with_session("/account/password")?,
            account: with_session("/account")?,
            floor: response_size(
                context,
                &[
                    "-A",
                    USER_AGENT,
                    &format!("{}/static/local-time.js", target.base),
                ],
            )?,
        })
    }

    fn scenario_a(&mut self, target: &Target, pages: &Pages) -> Result<ScenarioA, Failure> {
        say("a: the session path, and the pgbench limit, at 32 and 128 connections (two rounds)");
        let limit_32 = self.record_pgbench("limit: lookup joined to users (pgbench)", 32)?;
        let limit_128 = self.record_pgbench("limit: lookup joined to users (pgbench)", 128)?;
        let context = self.lab.context;
        let _perf = match context.get("BENCH_PERF") {
            Some(file) => Some(start_perf(
                context,
                self.lab.dir,
                Path::new(&file),
                target.pid,
                self.sizes.run_secs,
            )?),
            None => None,
        };
        // 32 and 128 connections alternate, twice: the machine's drift then weighs on both
        // alike, and the comparisons use both rounds. Each round also measures the floor: a
        // route of the same app with no session and no SQL (a static file), which shows what
        // 128 connections cost Rocket itself (docs/benchmarks.md).
        let mut a = ScenarioA {
            limit_32,
            a32: vec![],
            a128: vec![],
            floor32: vec![],
            floor128: vec![],
        };
        for _ in 0..2 {
            for (connections, limit, runs) in
                [(32, limit_32, &mut a.a32), (128, limit_128, &mut a.a128)]
            {
                let run =
                    self.session_path("a: session path /account/password", connections, target)?;
                check_size("a", run.bytes_per_response, pages.session)?;
                let run = run.against(limit);
                self.record(&run);
                runs.push(run);
            }
            for (connections, runs) in [(32, &mut a.floor32), (128, &mut a.floor128)] {
                let load = self.load(
                    "a: floor, no session /static/local-time.js",
                    connections,
                    "GET",
                    "/static/local-time.js",
                    Kind::Cookie,
                );
                let run = self.lab.wrk_run(&load, target)?;
                check_size("a (floor)", run.bytes_per_response, pages.floor)?;
                self.record(&run);
                runs.push(run);
            }
        }
        Ok(a)
    }

    fn scenario_b(&mut self, target: &Target, pages: &Pages, limit: Limit) -> Result<(), Failure> {
        say("b: the full /account page");
        let load = self.load("b: full page /account", 32, "GET", "/account", Kind::Cookie);
        let run = self.lab.wrk_run(&load, target)?;
        check_size("b", run.bytes_per_response, pages.account)?;
        self.record(&run.against(limit));
        Ok(())
    }

    fn scenario_c(&mut self, target: &Target, limit: Limit) -> Result<(), Failure> {
        say("c: the bearer path /api/me");
        let context = self.lab.context;
        let answer = context
            .command("curl")
            .args(["-fs", "-H", "Content-Type: application/json", "-d"])
            .arg(format!(
                r#"{{"username":"bench","password":"{}"}}"#,
                app::PASSWORD
            ))
            .arg(format!("{}/api/token", target.base))
            .output()
            .map_err(|error| Failure::Message(format!("could not run curl: {error}")))?;
        let answer = String::from_utf8_lossy(&answer.stdout);
        let Some(token) = access_token(&answer) else {
            return fail("could not get an API token");
        };
        measure::write(&self.access_tokens, &format!("{token}\n"))?;
        let me_size = response_size(
            context,
            &[
                "-H",
                &format!("Authorization: Bearer {token}"),
                &format!("{}/api/me", target.base),
            ],
        )?;
        let load = self.load("c: bearer path /api/me", 32, "GET", "/api/me", Kind::Bearer);
        let run = self.lab.wrk_run(&load, target)?;
        check_size("c", run.bytes_per_response, me_size)?;
        self.record(&run.against(limit));
        Ok(())
    }

    /// Sign-ins alone, then the session path alone and beside a flood of them, on the app and
    /// then on the second app, when there is one (stopped afterwards). The app's memory is read
    /// along the way (scenario g).
    fn scenario_d(
        &mut self,
        target: &Target,
        grouped: Option<App>,
        pages: &Pages,
        limit: Limit,
    ) -> Result<ScenarioD, Failure> {
        let peak_under_load = resident_mb(target.pid, "VmHWM")?;
        let after_load = resident_mb(target.pid, "VmRSS")?;
        say(
            "d: sign-ins per second, then the session path alone and beside a sign-in flood (two rounds)",
        );
        let sign_in_page = response_size(
            self.lab.context,
            &[
                "-A",
                USER_AGENT,
                "-H",
                &format!("Cookie: __Host-csrf={}", self.seeded.csrf_cookie),
                "--data",
                &self.seeded.first_flood_body,
                &format!("{}/login", target.base),
            ],
        )?;
        self.sign_in_page = sign_in_page;
        let load = self.load(
            "d: sign-ins POST /login",
            FLOOD_CONNECTIONS,
            "POST",
            "/login",
            Kind::SignIn,
        );
        let sign_ins = self.lab.wrk_run(&load, target)?;
        check_size("d", sign_ins.bytes_per_response, sign_in_page)?;
        self.record(&sign_ins);
        let after_flood_1 = resident_mb(target.pid, "VmRSS")?;

        // The session path alone and beside the flood alternate, twice, like scenario a: the
        // flood's effect is judged against the machine of the same minute.
        let (mut alone, mut beside) = (vec![], vec![]);
        for _ in 0..2 {
            let (alone_run, beside_run) = self.d_round("d", target, pages, limit)?;
            self.record(&alone_run);
            self.record(&beside_run);
            alone.push(alone_run);
            beside.push(beside_run);
        }
        let memory = Memory {
            peak_under_load,
            after_load,
            after_flood_1,
            after_flood_2: resident_mb(target.pid, "VmRSS")?,
            peak: resident_mb(target.pid, "VmHWM")?,
        };

        // The same on the second app, whose hashing threads are in the idle cgroup.
        let (mut grouped_alone, mut grouped_beside) = (vec![], vec![]);
        if let Some(grouped) = grouped {
            say(
                "d: the same, on an app whose hashing threads are in a cgroup of idle CPU weight (two rounds)",
            );
            let grouped_target = grouped.target();
            // Unmeasured: the app has been idle since it started, its connections unprepared.
            let mut load = self.load(
                "warming up the second app",
                32,
                "GET",
                "/account/password",
                Kind::Cookie,
            );
            load.seconds = self.sizes.run_secs / 4 + 1;
            self.lab.warm_up(&load, &grouped_target)?;
            for _ in 0..2 {
                let (alone_run, beside_run) =
                    self.d_round("d (hashing_cgroup)", &grouped_target, pages, limit)?;
                self.record(&alone_run);
                self.record(&beside_run);
                grouped_alone.push(alone_run);
                grouped_beside.push(beside_run);
            }
            // Stopped now: the scenarios that follow measure the first app alone.
            drop(grouped);
        } else {
            say(
                "d: no rounds with hashing_cgroup: making a CPU cgroup needs root and cgroup v1's cpu controller",
            );
        }
        Ok(ScenarioD {
            sign_ins,
            alone,
            beside,
            grouped_alone,
            grouped_beside,
            memory,
        })
    }

    /// The session path with the small table, then grown, two rounds each, each against a
    /// limit of its own measured just before it; then sign-ins at the grown table.
    fn scenario_e(&mut self, target: &Target, pages: &Pages) -> Result<ScenarioE, Failure> {
        let sizes = self.sizes;
        say(format!(
            "e: the session path with {}, then {} session rows (two rounds each)",
            sizes.rows_small, sizes.rows_large
        ));
        // The small-table runs come just before the table grows: scenario a ran minutes ago,
        // and floods since.
        let mut small = vec![];
        for _ in 0..2 {
            let (run, _) = self.e_round(sizes.rows_small, target, pages)?;
            self.record(&run);
            small.push(run);
        }
        fill_rows(
            self.lab,
            sizes.rows_small - sizes.sessions + 1,
            sizes.rows_large - sizes.sessions,
        )?;
        let rows_now = self
            .lab
            .sql_number("bench", "SELECT count(*) FROM sessions")?;
        let mut large = vec![];
        let mut limit = None;
        for _ in 0..2 {
            let (mut run, round_limit) = self.e_round(sizes.rows_large, target, pages)?;
            run.session_rows = Some(rows_now);
            self.record(&run);
            large.push(run);
            limit = Some(round_limit);
        }
        // A sign-in reads the account's rows ("a new device?"): it must not slow down with the
        // table.
        let load = self.load(
            &format!("e: sign-ins POST /login, {} rows", sizes.rows_large),
            FLOOD_CONNECTIONS,
            "POST",
            "/login",
            Kind::SignIn,
        );
        let sign_ins = self.lab.wrk_run(&load, target)?;
        check_size("e", sign_ins.bytes_per_response, self.sign_in_page)?;
        self.record(&sign_ins);
        Ok(ScenarioE {
            small,
            large,
            sign_ins,
            limit: limit.ok_or_else(|| Failure::Message("scenario e made no round".into()))?,
        })
    }

    /// The app restarted, so that its reaper deletes the expired rows while the session path
    /// runs; compared with `limit`, scenario e's last at the grown table. Returns the run, the
    /// expired rows before it, and the restarted app.
    fn scenario_f(
        &mut self,
        app: App,
        launcher: &Launcher<'_>,
        pages: &Pages,
        limit: Limit,
    ) -> Result<(WrkRun, u64, App), Failure> {
        say(format!(
            "f: the reaper deleting {} expired rows while the session path runs",
            self.sizes.rows_large - self.sizes.sessions
        ));
        let port = app.port;
        drop(app);
        // The reaper starts at liftoff.
        let app = launcher.launch(port, "")?;
        let target = app.target();
        let filler = "SELECT count(*) FROM sessions WHERE user_agent = 'filler'";
        let filler_before = self.lab.sql_number("bench", filler)?;
        let mut load = self.load(
            "f: session path while reaping",
            32,
            "GET",
            "/account/password",
            Kind::Cookie,
        );
        load.seconds = self.sizes.reap_secs;
        let run = self.lab.wrk_run(&load, &target)?;
        check_size("f", run.bytes_per_response, pages.session)?;
        let filler_after = self.lab.sql_number("bench", filler)?;
        let mut f = run.against(limit);
        f.reaped = Some((filler_before.saturating_sub(filler_after), filler_after));
        self.record(&f);
        Ok((f, filler_before, app))
    }

    /// The session path alone, then beside a sign-in flood, on `target`.
    fn d_round(
        &self,
        scenario: &str,
        target: &Target,
        pages: &Pages,
        limit: Limit,
    ) -> Result<(WrkRun, WrkRun), Failure> {
        let alone = self.session_path(&format!("{scenario}: session path alone"), 32, target)?;
        check_size("d", alone.bytes_per_response, pages.session)?;
        // The flood runs longer than the measured session-path run, on both sides of it.
        let flood = self.lab.start_flood(
            target,
            &self.seeded.flood_bodies,
            FLOOD_CONNECTIONS,
            self.sizes.run_secs + 4,
        )?;
        pause(std::time::Duration::from_secs(2))?;
        let flood_ticks = ticks(flood.pid(), false)?;
        let beside = self.session_path(
            &format!("{scenario}: session path beside the flood"),
            32,
            target,
        )?;
        let flood_cores = self
            .lab
            .cores_since(flood.pid(), flood_ticks, beside.window)?;
        check_size("d", beside.bytes_per_response, pages.session)?;
        let mut beside = beside.against(limit);
        beside.flood = Some(self.lab.finish_flood(flood, flood_cores)?);
        Ok((alone.against(limit), beside))
    }

    /// The pgbench limit at this many rows, then the session path against it.
    fn e_round(
        &mut self,
        rows: u64,
        target: &Target,
        pages: &Pages,
    ) -> Result<(WrkRun, Limit), Failure> {
        let limit = self.record_pgbench(&format!("limit at {rows} rows (pgbench)"), 32)?;
        let run = self.session_path(&format!("e: session path, {rows} rows"), 32, target)?;
        check_size("e", run.bytes_per_response, pages.session)?;
        Ok((run.against(limit), limit))
    }
}

/// The access token in `/api/token`'s JSON answer.
fn access_token(json: &str) -> Option<&str> {
    let start = json.find(r#""access_token":""#)? + r#""access_token":""#.len();
    let length = json[start..].find('"')?;
    Some(&json[start..start + length]).filter(|token| !token.is_empty())
}

/// perf recording the app, from a second into scenario a's first run until before its end: load
/// only, no ramp.
fn start_perf(
    context: &Context,
    dir: &Path,
    file: &Path,
    pid: u32,
    run_secs: u64,
) -> Result<Background, Failure> {
    if on_path("perf").is_none() {
        apt_install(&["linux-perf"])?;
    }
    let log = dir.join("perf.log");
    let out = std::fs::File::create(&log)
        .map_err(|error| Failure::Message(format!("{}: {error}", log.display())))?;
    let mut perf = context.command("sh");
    perf.args([
        "-c",
        r#"sleep 1; exec "$@""#,
        "sh",
        "perf",
        "record",
        "-q",
        "-F",
        "999",
        "-g",
        "-o",
    ])
    .arg(file)
    .args(["-p", &pid.to_string(), "--", "sleep"])
    .arg(run_secs.saturating_sub(3).to_string())
    .stdin(std::process::Stdio::null())
    .stdout(
        out.try_clone()
            .map_err(|error| Failure::Message(error.to_string()))?,
    )
    .stderr(out);
    Background::spawn(perf, log)
}

/// Writes the JSON into `target/bench/` and prints the table and the targets.
fn write_report(
    context: &Context,
    sizes: Sizes,
    binary: &Path,
    records: &[Record],
    summary: &Summary,
) -> Result<(), Failure> {
    let dir = Path::new("target/bench");
    std::fs::create_dir_all(dir)
        .map_err(|error| Failure::Message(format!("{}: {error}", dir.display())))?;
    let stamp = utc_stamp(std::time::SystemTime::now());
    let commit = context
        .command("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default();
    let load_average = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load_average: Vec<&str> = load_average.split_whitespace().take(3).collect();
    let header = Header {
        when: &stamp,
        quick: sizes.quick,
        commit: &commit,
        binary: &binary.to_string_lossy(),
        cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        load_average: &load_average.join(" "),
        sessions: sizes.sessions,
    };
    let json = report::to_json(&header, records);
    let file = dir.join(format!("{stamp}.json"));
    measure::write(&file, &json)?;
    measure::write(&dir.join("latest.json"), &json)?;
    print!(
        "{}",
        report::text(records, summary, &file.to_string_lossy())
    );
    Ok(())
}

/// `time` in UTC as `20261206T130724Z`.
pub fn utc_stamp(time: std::time::SystemTime) -> String {
    let seconds = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    // Howard Hinnant's days-to-civil, for days since 1970-01-01 (never before it here).
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|&arg| arg.to_owned()).collect()
    }

    #[test]
    fn no_argument_is_the_full_run_and_quick_the_short_one() {
        let full = Sizes::from_args(&[]).unwrap();
        assert!(!full.quick);
        assert_eq!(
            (full.run_secs, full.pgbench_secs, full.reap_secs),
            (12, 10, 30)
        );
        assert_eq!(
            (full.sessions, full.rows_small, full.rows_large),
            (1000, 10_000, 1_000_000)
        );
        let quick = Sizes::from_args(&args(&["--quick"])).unwrap();
        assert!(quick.quick);
        assert_eq!(
            (quick.run_secs, quick.pgbench_secs, quick.reap_secs),
            (3, 3, 5)
        );
        assert_eq!(
            (quick.sessions, quick.rows_small, quick.rows_large),
            (200, 2000, 100_000)
        );
    }

    #[test]
    fn anything_else_is_refused_with_the_usage() {
        for wrong in [
            &["--fast"][..],
            &["quick"],
            &["--quick", "--quick"],
            &["-q"],
        ] {
            assert_eq!(Sizes::from_args(&args(wrong)), Err(USAGE.to_owned()));
        }
    }

    #[test]
    fn the_access_token_is_taken_from_the_token_answer() {
        let json = r#"{"token_type":"Bearer","access_token":"at.1","refresh_token":"rt.2"}"#;
        assert_eq!(access_token(json), Some("at.1"));
        assert_eq!(access_token(r#"{"access_token":""}"#), None);
        assert_eq!(access_token("Too Many Requests"), None);
    }

    #[test]
    fn a_stamp_is_the_utc_date_and_time() {
        let at =
            |seconds| utc_stamp(std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds));
        assert_eq!(at(0), "19700101T000000Z");
        // date -u -d @1796562444
        assert_eq!(at(1_796_562_444), "20261206T130724Z");
        assert_eq!(at(951_825_600), "20000229T120000Z");
        assert_eq!(at(4_107_542_399), "21000228T235959Z");
    }
}
