//! The pieces every fault test uses: the app binary as a process that can be killed, browsers
//! speaking raw HTTP that tolerate a refused connection, and clients that keep the app busy.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rocket::tokio;
use rocket::tokio::io::{AsyncReadExt, AsyncWriteExt};
use rocket::tokio::net::TcpStream;
use secure_sessions::users::Role;

use crate::support::http::{CHROME_LINUX, form_body};
use crate::support::raw::{RawRequest, RawResponse};
use crate::support::{PASSWORD, TestApp, random_secret_key};

/// How many clients keep the app busy in every test.
pub const CLIENTS: usize = 16;

/// A request that got no answer within this long counts as failed.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);

/// The app binary, run as an operator runs it; killed (if still running) when dropped.
pub struct AppProcess {
    child: Child,
    pub port: u16,
    log_path: PathBuf,
}

/// What an app process is started with; kept, so that a restart is the same app.
#[derive(Clone)]
pub struct AppSettings {
    env: Vec<(String, String)>,
}

impl AppSettings {
    /// The app on the database at `urls` (one URL, or a primary and its standbys), with the
    /// `debug` profile's long session timeouts, no demo users, info-level logs (the tests read
    /// the pool's and the reaper's lines) and a fixed secret key, so a restart reads its
    /// predecessor's cookies.
    pub fn new(urls: &[impl AsRef<str>]) -> AppSettings {
        let quoted: Vec<String> = urls
            .iter()
            .map(|url| format!("\"{}\"", url.as_ref()))
            .collect();
        let env = [
            ("ROCKET_PROFILE", "debug".to_owned()),
            ("ROCKET_LOG_LEVEL", "normal".to_owned()),
            ("ROCKET_SECRET_KEY", random_secret_key()),
            (
                "ROCKET_DATABASES",
                format!("{{main={{urls=[{}]}}}}", quoted.join(",")),
            ),
            // Many sign-ins per account: none may end another by the per-user cap; and, on a
            // loaded machine whose hashes finish slowly, every sign-in admitted rather than
            // refused 503 (the integration tests prove the admission limit).
            (
                "ROCKET_SESSIONS",
                "{seed_demo_users=false,max_sessions_per_user=100000,hashing_admission_ms=60000}"
                    .to_owned(),
            ),
        ];
        AppSettings {
            env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }
    }

    /// One more `ROCKET_*` variable (a later one of the same name wins).
    pub fn with(mut self, name: &str, value: &str) -> AppSettings {
        self.env.retain(|(key, _)| key != name);
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }
}

impl AppProcess {
    /// Starts the app on a free port; returns once it accepts connections.
    pub async fn start(settings: &AppSettings) -> AppProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        AppProcess::start_on(settings, port).await
    }

    /// Starts the app on `port` (the port of one that was killed, say).
    pub async fn start_on(settings: &AppSettings, port: u16) -> AppProcess {
        let log_path =
            std::env::temp_dir().join(format!("ss-fault-{}.log", uuid::Uuid::new_v4().simple()));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_secure-sessions"));
        command
            .env_remove("DATABASE_URL")
            .envs(settings.env.iter().map(|(k, v)| (k, v)))
            .env("ROCKET_PORT", port.to_string())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        let mut app = AppProcess {
            child: command.spawn().expect("start the app binary"),
            port,
            log_path,
        };
        for _ in 0..300 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return app;
            }
            if let Ok(Some(status)) = app.child.try_wait() {
                panic!("the app exited ({status}): {}", app.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the app did not start: {}", app.log());
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`"KILL"`, `"TERM"`) to the app.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) {
        self.signal("KILL");
        self.child.wait().expect("wait for the app");
    }

    /// The exit status, once the process has exited within `limit`.
    pub async fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait for the app") {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// True while the process runs (it has not exited, nor been restarted under us).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything the app has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for AppProcess {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
        std::fs::remove_file(&self.log_path).ok();
    }
}

/// One HTTP/1.1 request on a fresh connection. `Err` when no answer came: the connection was
/// refused or closed without a response, or took longer than `REQUEST_LIMIT`.
pub async fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[String],
    body: &str,
) -> Result<RawResponse, String> {
    request_announced(port, method, path, headers, body, None).await
}

/// `request`, saying on `sent` when the request is written (before its answer comes).
pub async fn request_announced(
    port: u16,
    method: &str,
    path: &str,
    headers: &[String],
    body: &str,
    sent: Option<tokio::sync::mpsc::Sender<()>>,
) -> Result<RawResponse, String> {
    let raw = RawRequest::new(method, path)
        .header(format!("User-Agent: {CHROME_LINUX}"))
        .headers(headers.iter().cloned())
        .body(body)
        .to_bytes(port);
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .write_all(&raw)
            .await
            .map_err(|e| format!("write: {e}"))?;
        if let Some(sent) = sent {
            sent.send(()).await.ok();
        }
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if response.is_empty() {
            return Err("closed without an answer".to_owned());
        }
        Ok(RawResponse::parse(&String::from_utf8_lossy(&response)))
    };
    tokio::time::timeout(REQUEST_LIMIT, exchange)
        .await
        .map_err(|_| "no answer in time".to_owned())?
}

/// Signs in through the form, as a browser does. `Ok(cookie)` once the app redirected with a
/// session cookie; `Err(status or failure)` otherwise.
pub async fn sign_in(port: u16, username: &str) -> Result<String, String> {
    let form = request(port, "GET", "/login", &[], "").await?;
    if form.status != 200 {
        return Err(format!("GET /login: {}", form.status));
    }
    let body = form_body(&[
        ("username", username),
        ("password", PASSWORD),
        ("csrf_token", &form.html().csrf_token()),
    ]);
    let headers = [
        format!("Cookie: __Host-csrf={}", form.cookie("__Host-csrf")),
        "Content-Type: application/x-www-form-urlencoded".to_owned(),
    ];
    let answer = request(port, "POST", "/login", &headers, &body).await?;
    if answer.status == 303 && answer.head.contains("__Host-sid=") {
        Ok(answer.cookie("__Host-sid"))
    } else {
        Err(format!("POST /login: {}", answer.status))
    }
}

/// `GET /account` with a session cookie.
pub async fn account(port: u16, cookie: &str) -> Result<RawResponse, String> {
    request(
        port,
        "GET",
        "/account",
        &[format!("Cookie: __Host-sid={cookie}")],
        "",
    )
    .await
}

/// Creates `CLIENTS` accounts (`user0`...) directly in the app's database.
pub async fn create_users(database_url: &str) -> Vec<String> {
    let app = TestApp::on(database_url.to_owned(), |figment| figment).await;
    let mut names = Vec::new();
    for index in 0..CLIENTS {
        let name = format!("user{index}");
        app.create_user(&name, Role::User).await;
        names.push(name);
    }
    names
}

/// How one request of the load ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// 200: the signed-in page.
    Served,
    /// 503: the database is out of reach; the browser keeps its cookie.
    Unavailable,
    /// No answer: the app process is down or shutting down.
    NoAnswer(String),
    /// Anything else: a 500, or a redirect to the sign-in page (signed out). Always a failure.
    Wrong(String),
}

/// One request of the load: when it was sent and how it ended.
#[derive(Clone, Debug)]
pub struct Record {
    pub sent: Instant,
    pub outcome: Outcome,
}

/// `CLIENTS` signed-in browsers, each loading its account page in a loop until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    records: Arc<Mutex<Vec<Record>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts the browsers; `port_for(client, round)` picks the app instance of each request.
    pub fn start(
        cookies: &[String],
        port_for: impl Fn(usize, usize) -> u16 + Send + Sync + 'static,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let records = Arc::new(Mutex::new(Vec::new()));
        let port_for = Arc::new(port_for);
        let tasks = cookies
            .iter()
            .enumerate()
            .map(|(client, cookie)| {
                let (stop, records, port_for) = (stop.clone(), records.clone(), port_for.clone());
                let cookie = cookie.clone();
                tokio::spawn(async move {
                    let mut round = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let sent = Instant::now();
                        let outcome = match account(port_for(client, round), &cookie).await {
                            Ok(answer) if answer.status == 200 => Outcome::Served,
                            Ok(answer) if answer.status == 503 => Outcome::Unavailable,
                            Ok(answer) => Outcome::Wrong(format!(
                                "{} {:?}",
                                answer.status,
                                answer.header("Location")
                            )),
                            Err(failure) => Outcome::NoAnswer(failure),
                        };
                        records.lock().unwrap().push(Record { sent, outcome });
                        round += 1;
                        // A browser's pace, not a flood: the 2-core machine runs the app too.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
            })
            .collect();
        Load {
            stop,
            records,
            tasks,
        }
    }

    /// Stops the browsers and returns every request's record, in the order they ended.
    pub async fn stop(self) -> Vec<Record> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("a load client");
        }
        Arc::try_unwrap(self.records)
            .expect("the clients are done")
            .into_inner()
            .unwrap()
    }
}

/// Panics on any answer that is neither the page nor a 503 (a 500, a sign-out).
pub fn assert_never_wrong(records: &[Record]) {
    let wrong: Vec<&Outcome> = records
        .iter()
        .map(|record| &record.outcome)
        .filter(|outcome| matches!(outcome, Outcome::Wrong(_)))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} wrong answers: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
}

/// Panics unless every request sent from `since` on was served (and there were some).
pub fn assert_all_served_from(records: &[Record], since: Instant, what: &str) {
    let after: Vec<&Record> = records.iter().filter(|r| r.sent >= since).collect();
    assert!(
        after.len() >= CLIENTS,
        "too few requests {what}: {}",
        after.len()
    );
    let unserved: Vec<&Outcome> = after
        .iter()
        .map(|r| &r.outcome)
        .filter(|o| **o != Outcome::Served)
        .collect();
    assert!(
        unserved.is_empty(),
        "{} of {} requests {what} not served: {:?}",
        unserved.len(),
        after.len(),
        &unserved[..unserved.len().min(5)]
    );
}

/// How many requests sent between `from` and `to` got `outcome`.
pub fn count_between(records: &[Record], from: Instant, to: Instant, outcome: &Outcome) -> usize {
    records
        .iter()
        .filter(|r| r.sent >= from && r.sent < to && r.outcome == *outcome)
        .count()
}

/// Signs every account in once; panics if one fails.
pub async fn sign_in_all(port: u16, users: &[String]) -> Vec<String> {
    let mut cookies = Vec::new();
    for user in users {
        cookies.push(sign_in(port, user).await.expect("sign-in"));
    }
    cookies
}

/// Each cookie's account page, retried while the answer is 503 (a pool reconnecting), for at
/// most `limit`: panics unless every one ends up served.
pub async fn assert_sessions_work(port: u16, cookies: &[String], limit: Duration) {
    let deadline = Instant::now() + limit;
    for cookie in cookies {
        loop {
            match account(port, cookie).await {
                Ok(answer) if answer.status == 200 => break,
                Ok(answer) if answer.status == 503 && Instant::now() < deadline => {}
                Ok(answer) => panic!(
                    "a session no longer works: {} {:?}",
                    answer.status,
                    answer.header("Location")
                ),
                // The app may still be reconnecting, or (after a restart) starting.
                Err(_) if Instant::now() < deadline => {}
                Err(failure) => panic!("no answer: {failure}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
