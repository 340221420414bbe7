//! `scripts/bench-sign-in-timing [--release] [SAMPLES]`: whether a refused sign-in tells a real
//! account from an unknown name by its time, on loopback only.
//!
//! It builds the app (the debug build, or with `--release` the release build; `BENCH_BINARY`
//! measures another binary), starts its own PostgreSQL (durable, as in production: commits wait
//! for the disk) and the app on free 127.0.0.1 ports, registers one account, and then sends wrong
//! passwords for that account and for a name no account has, through the sign-in form and through
//! `POST /api/token`: SAMPLES of each of the four (default 200, at most 2000), after 20 of each
//! not counted (the hashing threads' work areas, the pool). Each round sends the four in a fresh
//! random order, from one client on a kept-alive connection, so drift on a busy machine hits all
//! of them alike. Both names fail the same number of times, so their throttle counts are alike
//! too; the throttle's limits are raised so that every attempt checks its password.
//!
//! It prints, per route, both distributions (percentiles in milliseconds and a histogram) and the
//! ratio of the medians (real account / unknown name). Then, to show where a difference comes
//! from, the database's own account (`pg_stat_statements`) of 50 more wrong passwords for each
//! name through the API, one name after the other: each statement's calls, rows, write-ahead log
//! records and mean execution time per side. No timing is asserted: the numbers are reported.
//! Everything started here is stopped by its pid, however the command ends.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use pg_cluster::{
    Cluster, Mode, TempDir, ensure_pg_stat_statements, ensure_postgres, free_port, say,
};

use crate::e2e::{random_bytes, secret_key};
use crate::http::{Client, Response, status_of};
use crate::process::{
    Context, Failure, Outcome, Stopped, check_interrupted, fail, handle_signals, print_tail,
};
use crate::run::Private;

const USAGE: &str = "usage: scripts/bench-sign-in-timing [--release] [SAMPLES]";
/// Rounds sent first and not counted.
const WARM_UP: usize = 20;
/// The measurement gives up after this long.
const LIMIT: Duration = Duration::from_secs(1800);
const AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) secure-sessions-timing";
const PASSWORD: &str = "violet tractor mango seventeen";
const WRONG_PASSWORD: &str = "wrong password 1";
const REAL: &str = "timing";
const UNKNOWN: &str = "nobody-here";

/// The command's arguments.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    release: bool,
    samples: usize,
}

fn parse(args: &[String]) -> Result<Options, Failure> {
    let mut options = Options {
        release: false,
        samples: 200,
    };
    for arg in args {
        if arg == "--release" {
            options.release = true;
        } else if !arg.is_empty() && arg.bytes().all(|byte| byte.is_ascii_digit()) {
            options.samples = arg.parse().unwrap_or(usize::MAX);
        } else {
            return fail(USAGE);
        }
    }
    if !(10..=2000).contains(&options.samples) {
        return fail("SAMPLES must be from 10 to 2000");
    }
    Ok(options)
}

pub fn main(args: &[String]) -> Outcome {
    let options = parse(args)?;
    handle_signals()?;
    let mut context = Context::default();
    context.set("SQLX_OFFLINE", "true");
    let bin = ensure_postgres()?;
    ensure_pg_stat_statements(&bin)?;
    let app_binary = app_binary(&context, options.release)?;

    // Stopped in the reverse order, however this command ends: the app, PostgreSQL, the folder.
    let tmp = TempDir::new("secure-sessions-timing")?;
    let cluster = Private(Cluster::open(
        &bin,
        &tmp.path().join("postgres"),
        Mode::Persistent,
        "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=top",
    )?);
    let cluster = &cluster.0;
    cluster.create_database("timing")?;
    // The extension lives in the maintenance database, so this command's own queries are not
    // counted with the app's (they are told apart by database).
    stats_sql(cluster, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")?;

    let port = free_port(18100)?;
    let log = tmp.path().join("app.log");
    let log_file = std::fs::File::create(&log)
        .map_err(|error| Failure::Message(format!("{}: {error}", log.display())))?;
    let log_copy = log_file
        .try_clone()
        .map_err(|error| Failure::Message(error.to_string()))?;
    // The release profile: no demo accounts, no test hooks. Limits far above the attempts made.
    let child = context
        .command(&app_binary)
        .env("DATABASE_URL", cluster.url("timing"))
        .env("ROCKET_PROFILE", "release")
        .env("ROCKET_PORT", port.to_string())
        .env("ROCKET_LOG_LEVEL", "off")
        .env("ROCKET_SECRET_KEY", secret_key()?)
        .env(
            "ROCKET_SESSIONS",
            "{throttle_account_failures=100000,throttle_ip_failures=100000,reaper_interval_secs=3600}",
        )
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_copy)
        .spawn()
        .map_err(|error| {
            Failure::Message(format!("could not start {}: {error}", app_binary.display()))
        })?;
    let mut app = Stopped(child);
    let healthy = || status_of(port, "/healthz", Duration::from_secs(5)) == Some(200);
    for _ in 0..300 {
        if healthy() {
            break;
        }
        if let Ok(Some(_)) = app.0.try_wait() {
            print_tail(&log, 20);
            return fail("the app did not start (its log ends above)");
        }
        check_interrupted()?;
        std::thread::sleep(Duration::from_millis(100));
    }
    if !healthy() {
        return fail("the app did not answer within 30 s");
    }

    say(format!(
        "measuring: {} samples per side and route, interleaved",
        options.samples
    ));
    let mut client = Client::new(port, Duration::from_secs(30));
    let form = register(&mut client)?;
    let times = measure(&mut client, &form, options.samples)?;
    println!(
        "\n{} samples per side, milliseconds from request to answer",
        options.samples
    );
    for (route, title) in [
        (Route::Form, "POST /login"),
        (Route::Api, "POST /api/token"),
    ] {
        let real = &times[kind_index(route, REAL)];
        let unknown = &times[kind_index(route, UNKNOWN)];
        print!("{}", route_report(title, real, unknown, options.samples));
    }

    // The database's account: 50 wrong passwords per name through the API, one name after the
    // other, and what the database did for them, kept in a table per name.
    for (name, table) in [(REAL, "real_account"), (UNKNOWN, "unknown_name")] {
        stats_sql(cluster, "SELECT pg_stat_statements_reset()")?;
        for _ in 0..50 {
            send(&mut client, Route::Api, name, &form)?;
        }
        stats_sql(
            cluster,
            &format!(
                r"CREATE TABLE {table} AS
                SELECT regexp_replace(query, '\s+', ' ', 'g') AS query, calls, rows, wal_records,
                       mean_exec_time * 1000 AS mean_us
                FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'timing')"
            ),
        )?;
    }
    println!();
    println!("The database's account of 50 wrong passwords per name through POST /api/token:");
    println!(
        "calls, rows, WAL records and mean execution time (µs) for the real account | the unknown name"
    );
    context.run(
        cluster
            .psql()
            .args(["-d", "postgres", "-P", "footer=off", "-c"])
            .arg(
                "SELECT left(query, 70) AS statement,
                    r.calls AS calls_r, u.calls AS calls_u, r.rows AS rows_r, u.rows AS rows_u,
                    r.wal_records AS wal_r, u.wal_records AS wal_u,
                    round(r.mean_us) AS us_r, round(u.mean_us) AS us_u
             FROM real_account r FULL JOIN unknown_name u USING (query)
             ORDER BY query",
            ),
        "could not read the database's account",
    )?;
    Ok(0)
}

/// The binary measured: `BENCH_BINARY`, or the app built here.
fn app_binary(context: &Context, release: bool) -> Result<PathBuf, Failure> {
    if let Some(binary) = context.get("BENCH_BINARY") {
        return Ok(PathBuf::from(binary));
    }
    let mut cargo = context.cargo();
    cargo.args(["build", "--locked"]);
    if release {
        cargo.arg("--release");
    }
    context.run(&mut cargo, "could not build the app")?;
    let target = context
        .get("CARGO_TARGET_DIR")
        .map_or_else(|| PathBuf::from("target"), PathBuf::from);
    Ok(target
        .join(if release { "release" } else { "debug" })
        .join("secure-sessions"))
}

/// Runs `sql` in the cluster's maintenance database.
fn stats_sql(cluster: &Cluster, sql: &str) -> Result<(), Failure> {
    pg_cluster::run(cluster.psql().args(["-d", "postgres", "-At", "-c", sql]))?;
    Ok(())
}

// ------------------------------------------------------------------------------ requests --

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Form,
    Api,
}

/// The four kinds of attempt, in the order [`measure`] keeps their times.
const KINDS: [(Route, &str); 4] = [
    (Route::Form, REAL),
    (Route::Form, UNKNOWN),
    (Route::Api, REAL),
    (Route::Api, UNKNOWN),
];

fn kind_index(route: Route, name: &str) -> usize {
    KINDS
        .iter()
        .position(|&kind| kind == (route, name))
        .unwrap_or_default()
}

/// What a form post needs: the CSRF cookie's value and the token the page carries.
struct Form {
    cookie: String,
    token: String,
}

/// Registers the real account through the form, and returns the form's CSRF pair.
fn register(client: &mut Client) -> Result<Form, Failure> {
    let page = request(client, "GET", "/register", &[], "")?;
    let cookie = page
        .header("Set-Cookie")
        .find_map(|value| value.strip_prefix("__Host-csrf="))
        .map(|value| value.split(';').next().unwrap_or_default().to_owned());
    let token = between(
        &String::from_utf8_lossy(&page.body),
        r#"name="csrf_token" value=""#,
        "\"",
    );
    let (Some(cookie), Some(token)) = (cookie, token) else {
        return fail("GET /register gave no CSRF cookie or token");
    };
    let form = Form { cookie, token };
    let body = urlencode(&[
        ("username", REAL),
        ("password", PASSWORD),
        ("password_confirm", PASSWORD),
        ("csrf_token", &form.token),
    ]);
    let answer = request(client, "POST", "/register", &form.headers(), &body)?;
    if answer.status != 303 {
        return fail(format!("registering the account: HTTP {}", answer.status));
    }
    Ok(form)
}

impl Form {
    fn headers(&self) -> [(&'static str, String); 2] {
        [
            (
                "Content-Type",
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("Cookie", format!("__Host-csrf={}", self.cookie)),
        ]
    }
}

/// One request with the benchmark's User-Agent.
fn request(
    client: &mut Client,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> Result<Response, Failure> {
    let mut all = vec![("User-Agent", AGENT)];
    all.extend(headers.iter().map(|(name, value)| (*name, value.as_str())));
    client
        .send(method, path, &all, body.as_bytes())
        .or_else(|error| {
            check_interrupted()?;
            fail(format!("{method} {path}: {error}"))
        })
}

/// One wrong password for `name` through `route`, checked to be refused as such; returns the
/// milliseconds from request to answer.
fn send(client: &mut Client, route: Route, name: &str, form: &Form) -> Result<f64, Failure> {
    let answer = match route {
        Route::Form => {
            let body = urlencode(&[
                ("username", name),
                ("password", WRONG_PASSWORD),
                ("csrf_token", &form.token),
            ]);
            let answer = request(client, "POST", "/login", &form.headers(), &body)?;
            if answer.status != 200 || !answer.body_contains("Incorrect username or password.") {
                return fail(format!("POST /login for {name}: HTTP {}", answer.status));
            }
            answer
        }
        Route::Api => {
            let body = format!(r#"{{"username":"{name}","password":"{WRONG_PASSWORD}"}}"#);
            let headers = [("Content-Type", "application/json".to_owned())];
            let answer = request(client, "POST", "/api/token", &headers, &body)?;
            let error = json_string(&String::from_utf8_lossy(&answer.body), "error");
            if answer.status != 401 || error.as_deref() != Some("invalid_credentials") {
                return fail(format!(
                    "POST /api/token for {name}: HTTP {}",
                    answer.status
                ));
            }
            answer
        }
    };
    Ok(answer.elapsed.as_secs_f64() * 1000.0)
}

/// [`WARM_UP`] + `samples` rounds of the four kinds in a fresh random order; the times of the
/// counted rounds, per kind in the order of [`KINDS`].
fn measure(client: &mut Client, form: &Form, samples: usize) -> Result<[Vec<f64>; 4], Failure> {
    let started = Instant::now();
    let mut random = Random::new()?;
    let mut times: [Vec<f64>; 4] = Default::default();
    for round in 0..WARM_UP + samples {
        let mut order = [0, 1, 2, 3];
        random.shuffle(&mut order);
        for index in order {
            let (route, name) = KINDS[index];
            let ms = send(client, route, name, form)?;
            if round >= WARM_UP {
                times[index].push(ms);
            }
        }
        check_interrupted()?;
        if started.elapsed() > LIMIT {
            return fail("the measurement took longer than 30 minutes: stopped");
        }
    }
    Ok(times)
}

/// `application/x-www-form-urlencoded`: letters, digits and `-._~` as they are, a space as `+`,
/// every other byte as `%XX`.
fn urlencode(pairs: &[(&str, &str)]) -> String {
    let mut encoded = String::new();
    for (index, (name, value)) in pairs.iter().enumerate() {
        if index > 0 {
            encoded.push('&');
        }
        for (part, text) in [(0, name), (1, value)] {
            if part == 1 {
                encoded.push('=');
            }
            for byte in text.bytes() {
                match byte {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        encoded.push(char::from(byte));
                    }
                    b' ' => encoded.push('+'),
                    _ => {
                        write!(encoded, "%{byte:02X}").ok();
                    }
                }
            }
        }
    }
    encoded
}

/// The text between the first `start` in `text` and the next `end`.
fn between(text: &str, start: &str, end: &str) -> Option<String> {
    let rest = &text[text.find(start)? + start.len()..];
    Some(rest[..rest.find(end)?].to_owned())
}

/// The value of the string field `name` of a JSON object, when it has no escapes (the API's
/// error codes).
fn json_string(json: &str, name: &str) -> Option<String> {
    let key = format!("\"{name}\"");
    let rest = json[json.find(&key)? + key.len()..].trim_start();
    let rest = rest.strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let value = &rest[..rest.find('"')?];
    (!value.contains('\\')).then(|| value.to_owned())
}

/// Random orders, from a seed read from the operating system (splitmix64).
struct Random(u64);

impl Random {
    fn new() -> Result<Random, Failure> {
        Ok(Random(u64::from_le_bytes(random_bytes::<8>()?)))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fisher–Yates.
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for last in (1..items.len()).rev() {
            let bound = u64::try_from(last + 1).unwrap_or(u64::MAX);
            let pick = usize::try_from(self.next() % bound).unwrap_or(0);
            items.swap(last, pick);
        }
    }
}

// ------------------------------------------------------------------------------- results --

/// The value at `per_mille` ‰ of `sorted` (ascending): the one at index ⌊‰ × n / 1000⌋, the last
/// one at most.
fn percentile(sorted: &[f64], per_mille: usize) -> f64 {
    sorted[(per_mille * sorted.len() / 1000).min(sorted.len() - 1)]
}

/// The middle value of `sorted`, or the mean of the two middle ones.
fn median(sorted: &[f64]) -> f64 {
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        f64::midpoint(sorted[middle - 1], sorted[middle])
    }
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut values = values.to_vec();
    values.sort_by(f64::total_cmp);
    values
}

/// One route's report: both sides' percentiles, a histogram of both over the range that holds
/// 95 % of them, in twelve bins, and the ratio of the medians.
fn route_report(title: &str, real: &[f64], unknown: &[f64], samples: usize) -> String {
    let sides = [
        ("real account", sorted(real)),
        ("unknown name", sorted(unknown)),
    ];
    let mut out = format!("\n{title}\n  {:<14}", "");
    for column in ["min", "p10", "p25", "median", "p75", "p90", "max"] {
        write!(out, "{column:>8}").ok();
    }
    out.push('\n');
    for (name, values) in &sides {
        write!(out, "  {name:<14}").ok();
        let cells = [
            values[0],
            percentile(values, 100),
            percentile(values, 250),
            median(values),
            percentile(values, 750),
            percentile(values, 900),
            values[values.len() - 1],
        ];
        for value in cells {
            write!(out, "{value:8.2}").ok();
        }
        out.push('\n');
    }
    let everything = sorted(&[real, unknown].concat());
    let (low, high) = (percentile(&everything, 25), percentile(&everything, 975));
    let width = ((high - low) / 12.0).max(1e-3);
    writeln!(
        out,
        "  histogram (bins of {width:.2} ms; r real account, u unknown name, one mark per 2 samples)"
    )
    .ok();
    let bar = samples / 4 + 1;
    for bin in 0..12 {
        let start = low + f64::from(bin) * width;
        let inside = |values: &[f64]| {
            values
                .iter()
                .filter(|&&v| {
                    (start <= v && v < start + width) || (bin == 11 && v == start + width)
                })
                .count()
        };
        let (r, u) = (inside(&sides[0].1), inside(&sides[1].1));
        writeln!(
            out,
            "  {start:8.2} {:<bar$} {r:4}",
            "r".repeat(r.div_ceil(2))
        )
        .ok();
        writeln!(out, "  {:8} {:<bar$} {u:4}", "", "u".repeat(u.div_ceil(2))).ok();
    }
    writeln!(
        out,
        "  median ratio, real account / unknown name: {:.3}",
        median(&sides[0].1) / median(&sides[1].1)
    )
    .ok();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split(' ')
            .filter(|arg| !arg.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_options_are_a_release_flag_and_a_sample_count() {
        let parsed = |text: &str| parse(&args(text)).ok();
        let options = |release, samples| Some(Options { release, samples });
        assert_eq!(parsed(""), options(false, 200));
        assert_eq!(parsed("--release"), options(true, 200));
        assert_eq!(parsed("50 --release"), options(true, 50));
        assert_eq!(parsed("10"), options(false, 10));
        assert_eq!(parsed("2000"), options(false, 2000));
        for wrong in [
            "9",
            "2001",
            "99999999999999999999999",
            "-5",
            "1e3",
            "--quick",
            "--",
        ] {
            assert!(parsed(wrong).is_none(), "{wrong}");
        }
        assert!(parse(&[String::new()]).is_err());
    }

    #[test]
    fn percentiles_and_medians_are_read_as_the_script_read_them() {
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&values, 100), 2.0);
        assert_eq!(percentile(&values, 250), 3.0);
        assert_eq!(percentile(&values, 900), 10.0);
        assert_eq!(percentile(&values, 1000), 10.0);
        assert_eq!(median(&values), 5.5);
        assert_eq!(median(&values[..9]), 5.0);
        assert_eq!(sorted(&[3.0, 1.0, 2.0]), [1.0, 2.0, 3.0]);
    }

    /// What the script this command replaced printed for these times (its Python, run on them).
    const EXPECTED_REPORT: &str = "
POST /login
                     min     p10     p25  median     p75     p90     max
  real account      2.00   10.00   22.00   41.00   62.00   74.00   80.00
  unknown name      1.00    5.00   11.00   20.50   31.00   37.00   40.00
  histogram (bins of 6.33 ms; r real account, u unknown name, one mark per 2 samples)
      2.00 rr             4
           uuuu           7
      8.33 rr             3
           uuu            6
     14.67 rr             3
           uuu            6
     21.00 rr             3
           uuuu           7
     27.33 rr             3
           uuu            6
     33.67 rr             3
           uuu            6
     40.00 rr             4
           u              1
     46.33 rr             3
                          0
     52.67 rr             3
                          0
     59.00 rr             3
                          0
     65.33 rr             3
                          0
     71.67 rr             3
                          0
  median ratio, real account / unknown name: 2.000
";

    #[test]
    fn a_report_prints_what_the_script_printed() {
        let real: Vec<f64> = (1..=40).map(|ms| f64::from(ms) * 2.0).collect();
        let unknown: Vec<f64> = (1..=40).rev().map(f64::from).collect();
        assert_eq!(
            route_report("POST /login", &real, &unknown, 40),
            EXPECTED_REPORT
        );
    }

    #[test]
    fn form_fields_and_json_are_written_and_read_as_the_app_does() {
        assert_eq!(
            urlencode(&[("username", "a b"), ("csrf_token", "x/y+z=")]),
            "username=a+b&csrf_token=x%2Fy%2Bz%3D"
        );
        assert_eq!(
            json_string(r#"{"error": "invalid_credentials","x":1}"#, "error").as_deref(),
            Some("invalid_credentials")
        );
        assert_eq!(json_string(r#"{"token":"t"}"#, "error"), None);
        assert_eq!(
            between(
                r#"<input name="csrf_token" value="abc">"#,
                r#"value=""#,
                "\""
            )
            .as_deref(),
            Some("abc")
        );
    }

    #[test]
    fn a_shuffle_keeps_every_kind_once_and_varies_the_order() {
        let mut random = Random::new().unwrap();
        let mut orders = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let mut order = [0, 1, 2, 3];
            random.shuffle(&mut order);
            let mut check = order;
            check.sort_unstable();
            assert_eq!(check, [0, 1, 2, 3]);
            orders.insert(order);
        }
        assert!(orders.len() > 12, "{orders:?}");
    }
}
