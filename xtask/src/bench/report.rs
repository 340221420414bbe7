//! What a run found: one record per measured run, written as JSON into `target/bench/` and
//! printed as a table, then the targets of docs/benchmarks.md checked against it (reported,
//! never enforced).
//!
//! Numbers keep the precision they had when the benchmark was a shell script (requests a second
//! whole, milliseconds to two places, cores to two), so that runs before and after compare.

use std::fmt::{Display, Write as _};
use std::time::Duration;

// ---------------------------------------------------------------------------- records --

/// CPU used during a run, in cores (seconds of CPU per second), to two places.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cores {
    pub app: f64,
    pub postgres: f64,
    pub load_generator: f64,
}

/// A run's pgbench limit, and the run's share of it: by requests a second, and by CPU per
/// request (pgbench's CPU per lookup over the run's), which does not depend on how much of the
/// machine the run got.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub req_per_s: u64,
    pub cpu_us_per_request: u64,
}

/// The responses to sign-ins (`POST /login`) by kind: made, or refused at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignIns {
    /// 303 to the account page: a session started.
    pub made: u64,
    /// 429: the throttle refused the attempt before any hashing.
    pub throttled: u64,
    /// 503: the hashing queue was full.
    pub busy: u64,
    /// Anything else (a sign-in form again).
    pub other: u64,
}

/// The sign-in flood that ran beside a measured run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flood {
    pub sign_ins: SignIns,
    pub duration: Duration,
    /// Connection errors and timeouts, and responses of status 400 or more, as wrk counts them.
    pub errors: u64,
    pub load_generator_cores: f64,
}

/// One wrk run against the app, and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkRun {
    pub scenario: String,
    pub connections: u32,
    /// How long wrk ran.
    pub duration: Duration,
    /// How long the measurement window lasted (wrk, and the readings around it).
    pub window: Duration,
    pub requests: u64,
    pub req_per_s: u64,
    /// Latency percentiles, to two places.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    pub bytes_per_response: u64,
    /// SQL statements of the app's database (`pg_stat_statements`).
    pub statements: u64,
    /// Transaction ids used: only writes take one.
    pub write_transactions: u64,
    pub cores: Cores,
    pub cpu_us_per_request: u64,
    /// The most frequent statements, as JSON from PostgreSQL.
    pub top_statements: String,
    /// For sign-in runs: the responses by kind.
    pub sign_ins: Option<SignIns>,
    pub limit: Option<Limit>,
    pub flood: Option<Flood>,
    pub session_rows: Option<u64>,
    /// Scenario f: expired rows the reaper deleted during the run, and those left.
    pub reaped: Option<(u64, u64)>,
}

/// One pgbench run: the lookup alone, on the same server.
#[derive(Debug, Clone, PartialEq)]
pub struct PgbenchRun {
    pub scenario: String,
    pub connections: u32,
    pub seconds: u64,
    pub tps: f64,
    /// As pgbench prints it.
    pub latency_avg_ms: Option<String>,
    pub statements: u64,
    pub postgres_cores: f64,
    pub load_generator_cores: f64,
    pub cpu_us_per_request: u64,
}

impl PgbenchRun {
    /// The limit the app's runs are compared with: whole transactions a second.
    pub fn limit(&self) -> Limit {
        Limit {
            req_per_s: truncate(self.tps),
            cpu_us_per_request: self.cpu_us_per_request,
        }
    }
}

/// Resident memory of the app in MB (scenario g).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub peak_under_load: u64,
    pub after_load: u64,
    pub after_flood_1: u64,
    pub after_flood_2: u64,
    pub peak: u64,
}

/// One entry of the report, in the order the runs were made.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Wrk(Box<WrkRun>),
    Pgbench(PgbenchRun),
    Memory(Memory),
}

// ------------------------------------------------------------------------------ numbers --

/// `x` rounded to a whole number (0 for anything below 0.5, and for NaN).
pub fn round(x: f64) -> u64 {
    truncate(x.round())
}

/// The whole part of `x` (0 for a negative number or NaN).
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "Rust's float-to-integer `as` saturates, and NaN becomes 0"
)]
pub fn truncate(x: f64) -> u64 {
    x as u64
}

/// `x` rounded to two places (cores).
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `part / whole`, 0 when `whole` is 0.
pub fn ratio(part: f64, whole: f64) -> f64 {
    if whole > 0.0 { part / whole } else { 0.0 }
}

/// A number as C's `%.6g` prints it (six significant digits, no trailing zeros), as the mean of
/// two rounds was always printed.
pub fn general(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    // The exponent after rounding to six digits: 999999.5 is 1e+06.
    let scientific = format!("{x:.5e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let trim = |text: &str| {
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            text.to_owned()
        }
    };
    if (-4..6).contains(&exponent) {
        let places = usize::try_from(5 - exponent).unwrap_or(0);
        trim(&format!("{x:.places$}"))
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exponent.abs())
    }
}

/// The mean of a field over the rounds of a run (scenarios a, d and e run each twice).
fn mean(runs: &[WrkRun], field: impl Fn(&WrkRun) -> f64) -> f64 {
    if runs.is_empty() {
        return 0.0;
    }
    #[expect(
        clippy::cast_precision_loss,
        reason = "a handful of rounds: exact in f64"
    )]
    let count = runs.len() as f64;
    runs.iter().map(field).sum::<f64>() / count
}

/// Seconds as a JSON number.
fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

// --------------------------------------------------------------------------------- JSON --

/// A JSON object written field by field, in the order given.
struct Object(String);

impl Object {
    fn new() -> Object {
        Object(String::from("{"))
    }

    /// A field whose value is already JSON (a number, `null`, an object).
    fn raw(mut self, key: &str, value: impl Display) -> Object {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        let _ = write!(self.0, "{}:{value}", quote(key));
        self
    }

    fn text(self, key: &str, value: &str) -> Object {
        self.raw(key, quote(value))
    }

    fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// `text` as a JSON string.
fn quote(text: &str) -> String {
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(quoted, "\\u{:04x}", u32::from(c));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// A rate per second over `duration`, rounded to a whole number.
fn per_second(count: u64, duration: Duration) -> u64 {
    #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    round(ratio(count as f64, seconds(duration)))
}

impl WrkRun {
    /// Statements per request (four places), if any request was answered.
    fn statements_per_request(&self) -> Option<String> {
        #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
        let per = self.statements as f64 / self.requests as f64;
        (self.requests > 0).then(|| format!("{per:.4}"))
    }

    /// Write transactions per request (five places), if any request was answered.
    fn writes_per_request(&self) -> Option<String> {
        #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
        let per = self.write_transactions as f64 / self.requests as f64;
        (self.requests > 0).then(|| format!("{per:.5}"))
    }

    /// The share of the limit, by requests a second and by CPU, to three places.
    fn shares(&self) -> Option<(f64, f64)> {
        let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
        #[expect(clippy::cast_precision_loss, reason = "rates far below 2^52")]
        self.limit.map(|limit| {
            (
                round3(ratio(self.req_per_s as f64, limit.req_per_s as f64)),
                round3(ratio(
                    limit.cpu_us_per_request as f64,
                    self.cpu_us_per_request as f64,
                )),
            )
        })
    }

    /// Successful sign-ins a second, when this was a sign-in run.
    pub fn sign_ins_per_s(&self) -> Option<u64> {
        self.sign_ins
            .map(|sign_ins| per_second(sign_ins.made, self.duration))
    }

    fn to_json(&self) -> String {
        let cores = Object::new()
            .raw("app", format!("{:.2}", self.cores.app))
            .raw("postgres", format!("{:.2}", self.cores.postgres))
            .raw(
                "load_generator",
                format!("{:.2}", self.cores.load_generator),
            )
            .finish();
        let mut object = Object::new()
            .text("scenario", &self.scenario)
            .raw("connections", self.connections)
            .raw("seconds", format!("{:.1}", seconds(self.duration)))
            .raw("requests", self.requests)
            .raw("req_per_s", self.req_per_s)
            .raw("p50_ms", format!("{:.2}", self.p50_ms))
            .raw("p99_ms", format!("{:.2}", self.p99_ms))
            .raw("errors", self.errors)
            .raw("bytes_per_response", self.bytes_per_response)
            .raw("statements", self.statements)
            .raw(
                "statements_per_request",
                self.statements_per_request().as_deref().unwrap_or("null"),
            )
            .raw("write_transactions", self.write_transactions)
            .raw(
                "writes_per_request",
                self.writes_per_request().as_deref().unwrap_or("null"),
            )
            .raw("cpu_cores", cores)
            .raw("cpu_us_per_request", self.cpu_us_per_request)
            .raw("top_statements", &self.top_statements);
        if let (Some(sign_ins), Some(per_s)) = (self.sign_ins, self.sign_ins_per_s()) {
            object = object
                .raw("sign_ins", sign_ins.made)
                .raw("sign_ins_per_s", per_s)
                .raw("refused_throttled", sign_ins.throttled)
                .raw("refused_busy", sign_ins.busy)
                .raw("other_responses", sign_ins.other);
        }
        if let (Some(limit), Some((share, by_cpu))) = (self.limit, self.shares()) {
            object = object
                .raw("limit_req_per_s", limit.req_per_s)
                .raw("share_of_limit", format!("{share:.3}"))
                .raw("share_of_limit_by_cpu", format!("{by_cpu:.3}"));
        }
        if let Some(flood) = &self.flood {
            let sign_ins = flood.sign_ins;
            let flood = Object::new()
                .raw("sign_ins_per_s", per_second(sign_ins.made, flood.duration))
                .raw("sign_ins", sign_ins.made)
                .raw("refused_throttled", sign_ins.throttled)
                .raw("refused_busy", sign_ins.busy)
                .raw("other_responses", sign_ins.other)
                .raw("sign_in_errors", flood.errors)
                .raw(
                    "load_generator_cores",
                    format!("{:.2}", flood.load_generator_cores),
                )
                .finish();
            object = object.raw("flood", flood);
        }
        if let Some(rows) = self.session_rows {
            object = object.raw("session_rows", rows);
        }
        if let Some((reaped, left)) = self.reaped {
            object = object.raw("rows_reaped", reaped).raw("rows_left", left);
        }
        object.finish()
    }
}

impl Record {
    pub fn to_json(&self) -> String {
        match self {
            Record::Wrk(run) => run.to_json(),
            Record::Pgbench(run) => {
                let cores = Object::new()
                    .raw("postgres", format!("{:.2}", run.postgres_cores))
                    .raw("load_generator", format!("{:.2}", run.load_generator_cores))
                    .finish();
                Object::new()
                    .text("scenario", &run.scenario)
                    .raw("connections", run.connections)
                    .raw("seconds", run.seconds)
                    .raw("req_per_s", format!("{:.0}", run.tps))
                    .raw(
                        "latency_avg_ms",
                        run.latency_avg_ms.as_deref().unwrap_or("null"),
                    )
                    .raw("statements", run.statements)
                    .raw("cpu_cores", cores)
                    .raw("cpu_us_per_request", run.cpu_us_per_request)
                    .finish()
            }
            Record::Memory(memory) => Object::new()
                .text("scenario", "g: resident memory (MB)")
                .raw("peak_under_load", memory.peak_under_load)
                .raw("after_load", memory.after_load)
                .raw("after_flood_1", memory.after_flood_1)
                .raw("after_flood_2", memory.after_flood_2)
                .raw("peak", memory.peak)
                .finish(),
        }
    }

    /// The columns of the table, as [`TABLE_HEADER`] names them; `None` for memory.
    fn row(&self) -> Option<[String; 12]> {
        let percent = |share: f64| format!("{:.0} %", 100.0 * share);
        match self {
            Record::Wrk(run) => {
                let shares = run.shares();
                Some([
                    run.scenario.clone(),
                    run.connections.to_string(),
                    run.req_per_s.to_string(),
                    format!("{:.2}", run.p50_ms),
                    format!("{:.2}", run.p99_ms),
                    run.errors.to_string(),
                    run.statements_per_request().unwrap_or_default(),
                    run.writes_per_request().unwrap_or_default(),
                    format!(
                        "{:.2}/{:.2}/{:.2}",
                        run.cores.app, run.cores.postgres, run.cores.load_generator
                    ),
                    run.cpu_us_per_request.to_string(),
                    shares.map(|(share, _)| percent(share)).unwrap_or_default(),
                    shares
                        .map(|(_, by_cpu)| percent(by_cpu))
                        .unwrap_or_default(),
                ])
            }
            Record::Pgbench(run) => Some([
                run.scenario.clone(),
                run.connections.to_string(),
                format!("{:.0}", run.tps),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                format!("/{:.2}/{:.2}", run.postgres_cores, run.load_generator_cores),
                run.cpu_us_per_request.to_string(),
                String::new(),
                String::new(),
            ]),
            Record::Memory(_) => None,
        }
    }
}

/// The whole report as JSON: what was measured, where and when, then every run.
pub struct Header<'a> {
    pub when: &'a str,
    pub quick: bool,
    pub commit: &'a str,
    pub binary: &'a str,
    pub cores: usize,
    pub load_average: &'a str,
    pub sessions: u64,
}

pub fn to_json(header: &Header<'_>, records: &[Record]) -> String {
    let mut json = Object::new()
        .text("when", header.when)
        .text("mode", if header.quick { "quick" } else { "full" })
        .text("commit", header.commit)
        .text("binary", header.binary)
        .raw("cores", header.cores)
        .text("load_average", header.load_average)
        .raw("sessions", header.sessions)
        .0;
    json.push_str(",\n \"runs\":[\n  ");
    let runs: Vec<String> = records.iter().map(Record::to_json).collect();
    json.push_str(&runs.join(",\n  "));
    json.push_str("\n]}\n");
    json
}

// -------------------------------------------------------------------------------- table --

const TABLE_HEADER: [&str; 12] = [
    "scenario",
    "conns",
    "req/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "stmts/req",
    "writes/req",
    "cpu app/pg/load",
    "cpu µs",
    "vs limit",
    "by cpu",
];

fn table_line(columns: &[impl AsRef<str>]) -> String {
    const WIDTHS: [usize; 12] = [40, 5, 8, 8, 8, 6, 10, 10, 17, 7, 8, 7];
    let mut line = String::new();
    for (index, (column, width)) in columns.iter().zip(WIDTHS).enumerate() {
        let column = column.as_ref();
        if index == 0 {
            let _ = write!(line, "{column:<width$}");
        } else {
            let _ = write!(line, " {column:>width$}");
        }
    }
    line
}

/// What the targets are checked against: the runs of each scenario, as they were recorded.
pub struct Summary {
    pub rows_small: u64,
    pub rows_large: u64,
    pub reap_secs: u64,
    /// The pgbench limit at 32 connections, scenario a's.
    pub limit_32: Limit,
    pub a32: Vec<WrkRun>,
    pub a128: Vec<WrkRun>,
    pub floor32: Vec<WrkRun>,
    pub floor128: Vec<WrkRun>,
    /// Scenario d's sign-ins alone, and scenario e's at the large table.
    pub sign_ins_alone: WrkRun,
    pub sign_ins_large: WrkRun,
    pub d_alone: Vec<WrkRun>,
    pub d_flood: Vec<WrkRun>,
    /// The same rounds on the app with `hashing_cgroup`, when it ran.
    pub g_alone: Vec<WrkRun>,
    pub g_flood: Vec<WrkRun>,
    pub e_small: Vec<WrkRun>,
    pub e_large: Vec<WrkRun>,
    pub f: WrkRun,
    /// Expired rows before scenario f's run.
    pub filler_before: u64,
    pub memory: Memory,
}

/// The table, the lines under it and the targets: what standard output shows.
pub fn text(records: &[Record], summary: &Summary, written: &str) -> String {
    let mut out = String::from("\n");
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(table_line(&TABLE_HEADER));
    for row in records.iter().filter_map(Record::row) {
        line(table_line(&row));
    }
    let alone = [sign_ins_of(&summary.sign_ins_alone)];
    let large = [sign_ins_of(&summary.sign_ins_large)];
    let beside = floods(&summary.d_flood);
    let grouped = floods(&summary.g_flood);
    let made = |sign_ins: &SignIns| sign_ins.made;
    line(format!(
        "sign-ins alone: {} sign-ins/s, at {} rows: {} sign-ins/s",
        rates(&alone, made),
        summary.rows_large,
        rates(&large, made)
    ));
    let mut flood = format!(
        "sign-in flood beside the session path: {} sign-ins/s",
        rates(&beside, made)
    );
    if !grouped.is_empty() {
        let _ = write!(flood, " (with hashing_cgroup: {})", rates(&grouped, made));
    }
    line(flood);
    let refused = |runs: &[(SignIns, Duration)]| {
        format!(
            "{} · {}",
            rates(runs, |sign_ins| sign_ins.throttled),
            rates(runs, |sign_ins| sign_ins.busy)
        )
    };
    let mut refusals = format!(
        "refused at once, a second (by the throttle, 429 · with the hashing queue full, 503): alone {}, at {} rows {}, beside the session path {}",
        refused(&alone),
        summary.rows_large,
        refused(&large),
        refused(&beside)
    );
    if !grouped.is_empty() {
        let _ = write!(refusals, " (with hashing_cgroup: {})", refused(&grouped));
    }
    line(refusals);
    let (reaped, _) = summary.f.reaped.unwrap_or_default();
    line(format!(
        "reaper: {reaped} of {} expired rows deleted during the {}s run",
        summary.filler_before, summary.reap_secs
    ));
    let memory = summary.memory;
    line(format!(
        "memory (MB): peak under load {}, after load {}, after the first flood {}, after the last {}",
        memory.peak_under_load, memory.after_load, memory.after_flood_1, memory.after_flood_2
    ));
    line(String::new());
    for target in targets(summary) {
        line(target);
    }
    line(String::new());
    line(format!("written: {written}"));
    out
}

/// A sign-in run's responses, and how long it ran.
fn sign_ins_of(run: &WrkRun) -> (SignIns, Duration) {
    (run.sign_ins.unwrap_or_default(), run.duration)
}

/// The floods beside the session path's rounds.
fn floods(rounds: &[WrkRun]) -> Vec<(SignIns, Duration)> {
    rounds
        .iter()
        .filter_map(|round| round.flood)
        .map(|flood| (flood.sign_ins, flood.duration))
        .collect()
}

/// One kind of response a second, in each run: "56 59".
fn rates(runs: &[(SignIns, Duration)], count: fn(&SignIns) -> u64) -> String {
    runs.iter()
        .map(|(sign_ins, duration)| per_second(count(sign_ins), *duration).to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// One target's line.
fn verdict(what: &str, met: bool) -> String {
    format!("  {}  {what}", if met { "met    " } else { "NOT MET" })
}

/// Each target of docs/benchmarks.md, met or not, as a line.
fn targets(summary: &Summary) -> Vec<String> {
    #[expect(
        clippy::cast_precision_loss,
        reason = "rates and counts far below 2^52"
    )]
    let float = |value: u64| value as f64;
    let req_per_s = |run: &WrkRun| float(run.req_per_s);
    let p99 = |run: &WrkRun| run.p99_ms;
    let share = |run: &WrkRun| run.shares().map_or(0.0, |(share, _)| share);

    let mut lines = vec![String::from(
        "targets (scenarios a, d and e: the mean of two rounds of each run):",
    )];
    let limit_32 = summary.limit_32;
    let a32 = mean(&summary.a32, req_per_s);
    let a128 = mean(&summary.a128, req_per_s);
    let a32_p99 = mean(&summary.a32, p99);
    let a32_cpu = mean(&summary.a32, |run| float(run.cpu_us_per_request));
    lines.push(verdict(
        &format!(
            "session path at 32 connections >= 40 % of the pgbench limit ({} vs {})",
            general(a32),
            limit_32.req_per_s
        ),
        a32 >= 0.40 * float(limit_32.req_per_s),
    ));
    lines.push(verdict(
        &format!(
            "  ... measured by CPU per request instead ({} µs vs pgbench's {})",
            general(a32_cpu),
            limit_32.cpu_us_per_request
        ),
        float(limit_32.cpu_us_per_request) >= 0.40 * a32_cpu,
    ));
    lines.push(verdict(
        &format!(
            "at 128 connections >= 95 % of the 32-connection rate ({} vs {})",
            general(a128),
            general(a32)
        ),
        a128 >= 0.95 * a32,
    ));
    let floor32 = mean(&summary.floor32, req_per_s);
    let floor128 = mean(&summary.floor128, req_per_s);
    lines.push(format!(
        "           (the floor, a static file with no session and no SQL: {:.0} % at 128 connections, {} vs {} requests a second)",
        100.0 * ratio(floor128, floor32),
        general(floor128),
        general(floor32)
    ));
    for run in &summary.a128 {
        lines.push(verdict(
            &format!(
                "at 128 connections p99 <= 3 x p50 ({:.2} vs {:.2} ms)",
                run.p99_ms, run.p50_ms
            ),
            run.p99_ms <= 3.0 * run.p50_ms,
        ));
    }
    // wrk does not count the requests still in flight when it stops (up to one per connection).
    // A write that is due (last-seen, a device-binding offer) is a statement of its own, in a
    // transaction of its own: each takes a transaction id, so the writes are counted apart.
    if let Some(first) = summary.a32.first() {
        lines.push(verdict(
            &format!(
                "1 SQL statement per authenticated request, writes when due apart ({} for {} requests and {} writes)",
                first.statements, first.requests, first.write_transactions
            ),
            first.statements <= first.requests + first.write_transactions + 32,
        ));
    }
    let d_flood_p99 = mean(&summary.d_flood, p99);
    let d_alone_p99 = mean(&summary.d_alone, p99);
    lines.push(verdict(
        &format!(
            "sign-in flood raises the session path's p99 at most 3 x ({} vs {} ms)",
            general(d_flood_p99),
            general(d_alone_p99)
        ),
        d_flood_p99 <= 3.0 * d_alone_p99,
    ));
    if !summary.g_flood.is_empty() {
        let g_flood_p99 = mean(&summary.g_flood, p99);
        let g_alone_p99 = mean(&summary.g_alone, p99);
        lines.push(verdict(
            &format!(
                "  ... with hashing_cgroup at idle weight ({} vs {} ms)",
                general(g_flood_p99),
                general(g_alone_p99)
            ),
            g_flood_p99 <= 3.0 * g_alone_p99,
        ));
    }
    let e_large = mean(&summary.e_large, share);
    let e_small = mean(&summary.e_small, share);
    lines.push(verdict(
        &format!(
            "{} rows within 10 % of {}, as share of the limit ({} vs {})",
            summary.rows_large,
            summary.rows_small,
            general(e_large),
            general(e_small)
        ),
        e_large >= 0.9 * e_small,
    ));
    lines.push(verdict(
        &format!(
            "reaping keeps the session path's p99 within 3 x ({:.2} vs {} ms)",
            summary.f.p99_ms,
            general(a32_p99)
        ),
        summary.f.p99_ms <= 3.0 * a32_p99,
    ));
    let memory = summary.memory;
    lines.push(verdict(
        &format!("resident memory < 100 MB (peak {} MB)", memory.peak),
        memory.peak < 100,
    ));
    lines.push(verdict(
        &format!(
            "flat over repeated floods ({} then {} MB)",
            memory.after_flood_1, memory.after_flood_2
        ),
        float(memory.after_flood_2) <= 1.1 * float(memory.after_flood_1),
    ));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(scenario: &str, req_per_s: u64, p50_ms: f64, p99_ms: f64) -> WrkRun {
        WrkRun {
            scenario: scenario.to_owned(),
            connections: 32,
            duration: Duration::from_secs(12),
            window: Duration::from_millis(12_050),
            requests: req_per_s * 12,
            req_per_s,
            p50_ms,
            p99_ms,
            errors: 0,
            bytes_per_response: 2048,
            statements: req_per_s * 12 + 3,
            write_transactions: 6,
            cores: Cores {
                app: 0.8,
                postgres: 0.6,
                load_generator: 0.4,
            },
            cpu_us_per_request: 90,
            top_statements: r#"[{"calls":3,"query":"SELECT 1"}]"#.to_owned(),
            sign_ins: None,
            limit: None,
            flood: None,
            session_rows: None,
            reaped: None,
        }
    }

    /// 10 sign-ins made and 90 refused by the throttle a second, over 10 s.
    fn throttled_flood() -> Flood {
        Flood {
            sign_ins: SignIns {
                made: 100,
                throttled: 900,
                busy: 30,
                other: 0,
            },
            duration: Duration::from_secs(10),
            errors: 930,
            load_generator_cores: 0.12,
        }
    }

    #[test]
    fn general_prints_six_significant_digits_as_c_does() {
        assert_eq!(general(18716.0), "18716");
        assert_eq!(general(18633.5), "18633.5");
        assert_eq!(general(1.234_567), "1.23457");
        assert_eq!(general(0.5), "0.5");
        assert_eq!(general(3.0), "3");
        assert_eq!(general(0.000_123_4), "0.0001234");
        assert_eq!(general(0.000_012_34), "1.234e-05");
        assert_eq!(general(1_234_567.0), "1.23457e+06");
        assert_eq!(general(999_999.5), "1e+06");
        assert_eq!(general(0.0), "0");
    }

    #[test]
    fn a_run_against_its_limit_records_its_shares_to_three_places() {
        let mut measured = run("a: session path /account/password", 20_000, 1.2, 5.5);
        measured.limit = Some(Limit {
            req_per_s: 41_234,
            cpu_us_per_request: 40,
        });
        let json = measured.to_json();
        assert!(
            json.starts_with(
                r#"{"scenario":"a: session path /account/password","connections":32,"seconds":12.0,"requests":240000,"req_per_s":20000,"p50_ms":1.20,"p99_ms":5.50,"errors":0,"bytes_per_response":2048,"statements":240003,"statements_per_request":1.0000,"write_transactions":6,"writes_per_request":0.00003,"cpu_cores":{"app":0.80,"postgres":0.60,"load_generator":0.40},"cpu_us_per_request":90,"top_statements":[{"calls":3,"query":"SELECT 1"}],"#
            ),
            "{json}"
        );
        assert!(
            json.ends_with(
                r#""limit_req_per_s":41234,"share_of_limit":0.485,"share_of_limit_by_cpu":0.444}"#
            ),
            "{json}"
        );
        let row = Record::Wrk(Box::new(measured)).row().unwrap();
        assert_eq!((row[10].as_str(), row[11].as_str()), ("48 %", "44 %"));
    }

    #[test]
    fn refused_sign_ins_are_not_counted_as_sign_ins() {
        let mut beside = run("d: session path beside the flood", 9_000, 2.0, 7.0);
        beside.flood = Some(throttled_flood());
        let json = beside.to_json();
        assert!(
            json.ends_with(
                r#""flood":{"sign_ins_per_s":10,"sign_ins":100,"refused_throttled":900,"refused_busy":30,"other_responses":0,"sign_in_errors":930,"load_generator_cores":0.12}}"#
            ),
            "{json}"
        );
        let both = floods(&[beside.clone(), beside]);
        assert_eq!(rates(&both, |sign_ins| sign_ins.made), "10 10");
        assert_eq!(rates(&both, |sign_ins| sign_ins.throttled), "90 90");
        assert_eq!(rates(&both, |sign_ins| sign_ins.busy), "3 3");

        let mut alone = run("d: sign-ins POST /login", 103, 70.0, 90.0);
        alone.duration = Duration::from_secs(10);
        alone.sign_ins = Some(throttled_flood().sign_ins);
        assert_eq!(alone.sign_ins_per_s(), Some(10));
        assert!(
            alone.to_json().contains(
                r#","sign_ins":100,"sign_ins_per_s":10,"refused_throttled":900,"refused_busy":30,"other_responses":0}"#
            )
        );
    }

    #[test]
    fn a_run_with_no_answer_has_no_per_request_figures() {
        let mut empty = run("f: session path while reaping", 0, 0.0, 0.0);
        empty.requests = 0;
        empty.reaped = Some((5, 95));
        let json = empty.to_json();
        assert!(json.contains(r#""statements_per_request":null"#), "{json}");
        assert!(json.contains(r#""writes_per_request":null"#), "{json}");
        assert!(
            json.ends_with(r#""rows_reaped":5,"rows_left":95}"#),
            "{json}"
        );
    }

    #[test]
    fn the_report_lists_every_run_after_what_was_measured() {
        let pgbench = PgbenchRun {
            scenario: "limit: lookup joined to users (pgbench)".to_owned(),
            connections: 32,
            seconds: 10,
            tps: 41_234.6,
            latency_avg_ms: Some("0.776".to_owned()),
            statements: 412_345,
            postgres_cores: 1.2,
            load_generator_cores: 0.5,
            cpu_us_per_request: 41,
        };
        assert_eq!(pgbench.limit().req_per_s, 41_234);
        let memory = Memory {
            peak_under_load: 60,
            after_load: 55,
            after_flood_1: 70,
            after_flood_2: 71,
            peak: 80,
        };
        let header = Header {
            when: "20261206T130724Z",
            quick: true,
            commit: "db8efee",
            binary: "target/release/secure-sessions",
            cores: 2,
            load_average: "1.00 2.00 3.00",
            sessions: 200,
        };
        let json = to_json(&header, &[Record::Pgbench(pgbench), Record::Memory(memory)]);
        assert_eq!(
            json,
            "{\"when\":\"20261206T130724Z\",\"mode\":\"quick\",\"commit\":\"db8efee\",\"binary\":\"target/release/secure-sessions\",\"cores\":2,\"load_average\":\"1.00 2.00 3.00\",\"sessions\":200,\n \"runs\":[\n  \
             {\"scenario\":\"limit: lookup joined to users (pgbench)\",\"connections\":32,\"seconds\":10,\"req_per_s\":41235,\"latency_avg_ms\":0.776,\"statements\":412345,\"cpu_cores\":{\"postgres\":1.20,\"load_generator\":0.50},\"cpu_us_per_request\":41},\n  \
             {\"scenario\":\"g: resident memory (MB)\",\"peak_under_load\":60,\"after_load\":55,\"after_flood_1\":70,\"after_flood_2\":71,\"peak\":80}\n]}\n"
        );
        assert_eq!(quote("a \"b\"\\\n"), r#""a \"b\"\\\u000a""#);
    }

    fn summary() -> Summary {
        let limited = |mut run: WrkRun, limit: u64| {
            run.limit = Some(Limit {
                req_per_s: limit,
                cpu_us_per_request: 40,
            });
            run
        };
        let mut sign_ins = run("d: sign-ins POST /login", 120, 60.0, 80.0);
        sign_ins.sign_ins = Some(SignIns {
            made: 1_440,
            ..SignIns::default()
        });
        let mut beside = run("d: session path beside the flood", 9_000, 2.0, 9.1);
        beside.flood = Some(throttled_flood());
        let mut f = run("f: session path while reaping", 18_000, 2.0, 5.5);
        f.reaped = Some((99_000, 1_000));
        Summary {
            rows_small: 10_000,
            rows_large: 1_000_000,
            reap_secs: 30,
            limit_32: Limit {
                req_per_s: 40_000,
                cpu_us_per_request: 40,
            },
            a32: vec![run("a", 20_000, 1.0, 4.0), run("a", 18_000, 1.0, 4.0)],
            a128: vec![run("a", 18_000, 4.0, 11.0), run("a", 17_000, 4.0, 13.0)],
            floor32: vec![run("a", 80_000, 0.3, 1.0), run("a", 76_000, 0.3, 1.0)],
            floor128: vec![run("a", 64_000, 1.0, 3.0), run("a", 66_000, 1.0, 3.0)],
            sign_ins_alone: sign_ins.clone(),
            sign_ins_large: sign_ins,
            d_alone: vec![run("d", 19_000, 1.0, 3.3), run("d", 19_000, 1.0, 4.3)],
            d_flood: vec![beside.clone(), beside],
            g_alone: vec![],
            g_flood: vec![],
            e_small: vec![limited(run("e", 20_000, 1.0, 4.0), 40_000)],
            e_large: vec![limited(run("e", 17_000, 1.0, 4.0), 40_000)],
            f,
            filler_before: 100_000,
            memory: Memory {
                peak_under_load: 60,
                after_load: 55,
                after_flood_1: 70,
                after_flood_2: 79,
                peak: 84,
            },
        }
    }

    #[test]
    fn the_targets_compare_the_means_of_the_rounds() {
        let lines = targets(&summary());
        let expected = [
            "targets (scenarios a, d and e: the mean of two rounds of each run):",
            "  met      session path at 32 connections >= 40 % of the pgbench limit (19000 vs 40000)",
            "  met        ... measured by CPU per request instead (90 µs vs pgbench's 40)",
            "  NOT MET  at 128 connections >= 95 % of the 32-connection rate (17500 vs 19000)",
            "           (the floor, a static file with no session and no SQL: 83 % at 128 connections, 65000 vs 78000 requests a second)",
            "  met      at 128 connections p99 <= 3 x p50 (11.00 vs 4.00 ms)",
            "  NOT MET  at 128 connections p99 <= 3 x p50 (13.00 vs 4.00 ms)",
            "  met      1 SQL statement per authenticated request, writes when due apart (240003 for 240000 requests and 6 writes)",
            "  met      sign-in flood raises the session path's p99 at most 3 x (9.1 vs 3.8 ms)",
            "  NOT MET  1000000 rows within 10 % of 10000, as share of the limit (0.425 vs 0.5)",
            "  met      reaping keeps the session path's p99 within 3 x (5.50 vs 4 ms)",
            "  met      resident memory < 100 MB (peak 84 MB)",
            "  NOT MET  flat over repeated floods (70 then 79 MB)",
        ];
        assert_eq!(lines, expected);
    }

    /// The writes that were due are statements of their own: counted apart, they do not make
    /// the one lookup per request look like more, and a second lookup still shows.
    #[test]
    fn statements_per_request_count_the_writes_apart() {
        let statement_line = |statements: u64, writes: u64| {
            let mut summary = summary();
            summary.a32[0].statements = statements;
            summary.a32[0].write_transactions = writes;
            targets(&summary)
                .into_iter()
                .find(|line| line.contains("SQL statement"))
                .unwrap()
        };
        assert!(statement_line(240_215, 200).starts_with("  met "));
        assert!(statement_line(240_215, 6).starts_with("  NOT MET "));
        assert!(statement_line(480_000, 200).starts_with("  NOT MET "));
    }

    #[test]
    fn the_text_says_how_many_sign_ins_were_made_and_how_many_refused() {
        let text = text(&[], &summary(), "target/bench/x.json");
        assert!(
            text.contains("\nsign-ins alone: 120 sign-ins/s, at 1000000 rows: 120 sign-ins/s\n"),
            "{text}"
        );
        assert!(
            text.contains("\nsign-in flood beside the session path: 10 10 sign-ins/s\n"),
            "{text}"
        );
        assert!(text.contains(
            "\nrefused at once, a second (by the throttle, 429 · with the hashing queue full, 503): alone 0 · 0, at 1000000 rows 0 · 0, beside the session path 90 90 · 3 3\n"
        ), "{text}");
        assert!(
            text.contains("\nreaper: 99000 of 100000 expired rows deleted during the 30s run\n")
        );
        assert!(text.ends_with("\nwritten: target/bench/x.json\n"));
    }

    #[test]
    fn the_rounds_with_hashing_cgroup_follow_in_parentheses() {
        let mut summary = summary();
        summary.g_flood = summary.d_flood.clone();
        summary.g_alone = summary.d_alone.clone();
        let text = text(&[], &summary, "x");
        assert!(text.contains(
            "\nsign-in flood beside the session path: 10 10 sign-ins/s (with hashing_cgroup: 10 10)\n"
        ), "{text}");
        assert!(
            text.contains(
                "beside the session path 90 90 · 3 3 (with hashing_cgroup: 90 90 · 3 3)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "\n  met        ... with hashing_cgroup at idle weight (9.1 vs 3.8 ms)\n"
            ),
            "{text}"
        );
    }
}
