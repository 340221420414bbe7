//! `scripts/bench-frameworks [--quick]`: what 128 open connections cost the framework itself,
//! without the app (loopback only). Three rounds of 6 s at each concurrency (about 2 minutes);
//! `--quick`, one round of 2 s (a smoke test).
//!
//! It builds `bench/frameworks`: two bare servers answering `GET /floor` with the app's smallest
//! static file, one on Rocket 0.5 and one on axum 0.8, both on one tokio worker as the app runs.
//! wrk drives each at 32 and 128 connections, alternating, and the command prints requests per
//! second, the server's CPU per request and the 128-connection rate as a share of the
//! 32-connection rate. No database is involved. `docs/benchmarks.md` says what it showed; the
//! check to repeat when Rocket is upgraded.
//!
//! Everything started here is stopped by its pid, however the command ends. It writes the rounds
//! as JSON to `target/bench/frameworks-<time>.json`. No timing is asserted.

use std::fmt::Write as _;
use std::io::Read as _;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use pg_cluster::{apt_install, free_port, on_path, say};

use crate::bench::{ticks, utc_stamp};
use crate::http::status_of;
use crate::process::{Context, Failure, Outcome, Stopped, check_interrupted, fail, handle_signals};

const SERVERS: [&str; 2] = ["rocket", "axum"];
const CONNECTIONS: [u32; 2] = [32, 128];
const TARGET_DIR: &str = "target/frameworks";

/// How long it measures: rounds, and seconds per run.
fn parse(args: &[String]) -> Result<(u32, u64), Failure> {
    match args {
        [] => Ok((3, 6)),
        [quick] if quick == "--quick" => Ok((1, 2)),
        _ => fail("usage: scripts/bench-frameworks [--quick]"),
    }
}

pub fn main(args: &[String]) -> Outcome {
    let (rounds, run_secs) = parse(args)?;
    handle_signals()?;
    let context = Context::default();
    if on_path("wrk").is_none() {
        apt_install(&["wrk"])?;
    }
    context.run(
        context.cargo().args([
            "build",
            "--release",
            "--locked",
            "--quiet",
            "--manifest-path",
            "bench/frameworks/Cargo.toml",
            "--target-dir",
            TARGET_DIR,
        ]),
        "could not build bench/frameworks",
    )?;

    // Stopped when this command ends, however it ends.
    let mut servers = Vec::new();
    let mut next_port = 18400;
    for server in SERVERS {
        let port = free_port(next_port)?;
        next_port = port + 1;
        let program = format!("{TARGET_DIR}/release/{server}-floor");
        let child = context
            .command(&program)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| Failure::Message(format!("could not start {program}: {error}")))?;
        let mut child = Stopped(child);
        let mut ready = false;
        for _ in 0..100 {
            ready = status_of(port, "/floor", Duration::from_secs(1)) == Some(200);
            if ready || matches!(child.0.try_wait(), Ok(Some(_))) {
                break;
            }
            check_interrupted()?;
            std::thread::sleep(Duration::from_millis(100));
        }
        if !ready {
            return fail(format!("{server}-floor did not start"));
        }
        servers.push((server, port, child));
    }
    let clock_ticks = clock_ticks(&context)?;

    say(format!(
        "bare servers at 32 and 128 connections, alternating, {rounds} round(s) of {run_secs}s"
    ));
    println!(
        "{:<8} {:>6} {:>12} {:>14}",
        "server", "conns", "requests/s", "cpu µs/req"
    );
    let mut runs = Vec::new();
    for round in 1..=rounds {
        for connections in CONNECTIONS {
            for (server, port, child) in &servers {
                let pid = child.0.id();
                let before = ticks(pid, false)?;
                let rate = wrk(&context, server, *port, connections, run_secs)?;
                let cpu = ticks(pid, false)? - before;
                let run = Run {
                    round,
                    server,
                    connections,
                    requests_per_second: rate.round(),
                    cpu_us_per_request: cpu_us_per_request(cpu, clock_ticks, run_secs, rate),
                };
                println!(
                    "{:<8} {:>6} {:>12.0} {:>14.1}",
                    server, connections, run.requests_per_second, run.cpu_us_per_request
                );
                runs.push(run);
            }
        }
    }
    println!();
    for server in SERVERS {
        println!("{}", summary(server, &runs, rounds));
    }

    std::fs::create_dir_all("target/bench")
        .map_err(|error| Failure::Message(format!("target/bench: {error}")))?;
    let stamp = utc_stamp(SystemTime::now());
    let file = format!("target/bench/frameworks-{stamp}.json");
    std::fs::write(&file, json(&stamp, rounds, run_secs, &runs))
        .map_err(|error| Failure::Message(format!("{file}: {error}")))?;
    println!("written: {file}");
    Ok(0)
}

/// One run of wrk against one server.
#[derive(Debug)]
struct Run {
    round: u32,
    server: &'static str,
    connections: u32,
    /// Rounded to a whole number, as printed.
    requests_per_second: f64,
    cpu_us_per_request: f64,
}

/// wrk against `server` for `secs` seconds: its requests per second. Bounded in time and in
/// requests: wrk stops after `secs`, and is stopped 30 s after that if it has not.
fn wrk(
    context: &Context,
    server: &str,
    port: u16,
    connections: u32,
    secs: u64,
) -> Result<f64, Failure> {
    let child = context
        .command("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{secs}s")])
        .arg(format!("http://127.0.0.1:{port}/floor"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| Failure::Message(format!("could not run wrk: {error}")))?;
    let mut wrk = Stopped(child);
    let deadline = Instant::now() + Duration::from_secs(secs + 30);
    let status = loop {
        if let Ok(Some(status)) = wrk.0.try_wait() {
            break status;
        }
        check_interrupted()?;
        if Instant::now() > deadline {
            return fail(format!(
                "wrk against {server} did not end in {} s",
                secs + 30
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    if let Some(mut pipe) = wrk.0.stdout.take() {
        pipe.read_to_string(&mut out).ok();
    }
    if let Some(mut pipe) = wrk.0.stderr.take() {
        pipe.read_to_string(&mut out).ok();
    }
    match requests_per_second(&out) {
        Some(rate) if status.success() => Ok(rate),
        _ => fail(format!("no rate from wrk against {server}: {out}")),
    }
}

/// The rate in wrk's report ("Requests/sec: 12345.67").
fn requests_per_second(report: &str) -> Option<f64> {
    report
        .lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|rate| rate.trim().parse().ok())
        .filter(|rate: &f64| *rate > 0.0)
}

/// Clock ticks per second (`getconf CLK_TCK`).
fn clock_ticks(context: &Context) -> Result<u64, Failure> {
    let output = context.command("getconf").arg("CLK_TCK").output().ok();
    output
        .and_then(|output| String::from_utf8_lossy(&output.stdout).trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .ok_or_else(|| Failure::Message("getconf CLK_TCK gave no number".to_owned()))
}

/// The server's CPU per request in microseconds: `ticks` of CPU over a run of `secs` seconds at
/// `rate` requests a second.
fn cpu_us_per_request(ticks: u64, clock_ticks: u64, secs: u64, rate: f64) -> f64 {
    let cpu_seconds = ticks as f64 / clock_ticks as f64;
    cpu_seconds / (secs as f64 * rate) * 1e6
}

/// `server`'s rate at 128 connections as a share of its rate at 32, over every round.
fn summary(server: &str, runs: &[Run], rounds: u32) -> String {
    let total = |connections| -> f64 {
        runs.iter()
            .filter(|run| run.server == server && run.connections == connections)
            .map(|run| run.requests_per_second)
            .sum()
    };
    let (at_32, at_128) = (total(32), total(128));
    let rounds = f64::from(rounds);
    format!(
        "{server:<8} 128 connections: {:.0} % of the 32-connection rate (means {:.0} and {:.0} requests a second)",
        100.0 * at_128 / at_32,
        at_128 / rounds,
        at_32 / rounds
    )
}

fn json(stamp: &str, rounds: u32, secs: u64, runs: &[Run]) -> String {
    let mut out = format!(r#"{{"when":"{stamp}","rounds":{rounds},"seconds":{secs},"runs":["#);
    for (index, run) in runs.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write!(
            out,
            r#"{{"round":{},"server":"{}","connections":{},"req_per_s":{:.0},"cpu_us_per_request":{:.1}}}"#,
            run.round, run.server, run.connections, run.requests_per_second, run.cpu_us_per_request
        )
        .ok();
    }
    out.push_str("]}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_only_option_is_quick() {
        assert_eq!(parse(&[]).ok(), Some((3, 6)));
        assert_eq!(parse(&["--quick".to_owned()]).ok(), Some((1, 2)));
        assert!(parse(&["--fast".to_owned()]).is_err());
        assert!(parse(&["--quick".to_owned(), "--quick".to_owned()]).is_err());
    }

    #[test]
    fn the_rate_is_read_from_wrk_s_report() {
        let report = "Running 2s test @ http://127.0.0.1:18400/floor\n  2 threads and 32 connections\n  \
                      160022 requests in 2.00s, 35.10MB read\nRequests/sec:  79985.42\nTransfer/sec:     17.54MB\n";
        assert_eq!(requests_per_second(report), Some(79_985.42));
        assert_eq!(
            requests_per_second("unable to connect to 127.0.0.1:1"),
            None
        );
        assert_eq!(requests_per_second("Requests/sec:      0.00"), None);
    }

    #[test]
    fn cpu_per_request_and_the_share_of_the_rate_are_computed_over_every_round() {
        // 1.5 s of CPU (150 ticks of 100 a second) for 150,000 requests (6 s at 25,000 a second).
        assert!((cpu_us_per_request(150, 100, 6, 25_000.0) - 10.0).abs() < 1e-9);
        let run = |round, connections, requests_per_second| Run {
            round,
            server: "rocket",
            connections,
            requests_per_second,
            cpu_us_per_request: 1.5,
        };
        let runs = [
            run(1, 32, 1000.0),
            run(1, 128, 800.0),
            run(2, 32, 1000.0),
            run(2, 128, 900.0),
        ];
        assert_eq!(
            summary("rocket", &runs, 2),
            "rocket   128 connections: 85 % of the 32-connection rate (means 850 and 1000 requests a second)"
        );
        assert_eq!(
            json("20261206T131054Z", 2, 6, &runs[..1]),
            "{\"when\":\"20261206T131054Z\",\"rounds\":2,\"seconds\":6,\"runs\":[{\"round\":1,\"server\":\"rocket\",\"connections\":32,\"req_per_s\":1000,\"cpu_us_per_request\":1.5}]}\n"
        );
    }
}
