//! The real app binary as its own process (what an operator runs), and raw HTTP to it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::http::CHROME_LINUX;
use super::server::raw_http;

/// A response as (status, headers, body).
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn parse(raw: String) -> Answer {
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        Answer {
            status,
            head: head.to_owned(),
            body: body.to_owned(),
        }
    }

    /// The value of a response header (the first one of that name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// The raw value of a cookie the response sets.
    pub fn cookie(&self, name: &str) -> String {
        let prefix = format!("set-cookie: {name}=");
        let line = self
            .head
            .lines()
            .find(|line| line.to_lowercase().starts_with(&prefix.to_lowercase()))
            .expect(name);
        line[prefix.len()..].split(';').next().unwrap().to_owned()
    }

    /// The whole `Set-Cookie` line of a cookie the response sets.
    pub fn set_cookie_line(&self, name: &str) -> String {
        let prefix = format!("set-cookie: {name}=").to_lowercase();
        self.head
            .lines()
            .find(|line| line.to_lowercase().starts_with(&prefix))
            .expect(name)
            .to_owned()
    }

    /// The value of a hidden form field on the page.
    pub fn hidden(&self, field: &str) -> String {
        let marker = format!("name=\"{field}\" value=\"");
        let start = self.body.find(&marker).expect(field) + marker.len();
        self.body[start..start + self.body[start..].find('"').unwrap()].to_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("JSON expected: {}", self.body))
    }
}

/// The app binary, running; stopped (and its log deleted) however the test ends.
pub struct RunningApp {
    process: Child,
    pub port: u16,
    log_path: PathBuf,
}

impl RunningApp {
    /// Starts the app binary on a free port (`ROCKET_PORT`), with its output in a log file, after
    /// `configure` has set its environment and working directory; waits until it accepts
    /// connections and panics with its log if it does not.
    pub async fn start(configure: impl FnOnce(&mut Command)) -> RunningApp {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log_path =
            std::env::temp_dir().join(format!("ss-log-{}.txt", uuid::Uuid::new_v4().simple()));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_secure-sessions"));
        configure(&mut command);
        command
            .env("ROCKET_PORT", port.to_string())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        let app = RunningApp {
            process: command.spawn().expect("start the app binary"),
            port,
            log_path,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return app;
            }
            rocket::tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the app did not start: {}", app.log());
    }

    /// Everything the app has written to standard output and standard error so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Stops the app; its log stays readable.
    pub fn stop(&mut self) {
        self.process.kill().ok();
        self.process.wait().ok();
    }

    /// One request over a fresh connection, as a Chrome on Linux would send it, with these
    /// extra header lines.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[String],
        body: &str,
    ) -> Answer {
        let mut raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
            self.port
        );
        raw.push_str(&format!(
            "User-Agent: {CHROME_LINUX}\r\nContent-Length: {}\r\n",
            body.len()
        ));
        for header in headers {
            raw.push_str(header);
            raw.push_str("\r\n");
        }
        raw.push_str("\r\n");
        raw.push_str(body);
        Answer::parse(raw_http(self.port, raw.as_bytes()).await)
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        self.stop();
        std::fs::remove_file(&self.log_path).ok();
    }
}
