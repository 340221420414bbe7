//! Slow clients: Rocket 0.5 bounds no stage of a connection (no header, body or idle timeout,
//! no connection limit), so the app runs behind the proxy scripts/proxy starts (nginx, with
//! proxy/nginx.conf), which bounds each one. docs/operations.md, "Slow clients and the proxy".

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rocket::futures::future::join_all;
use rocket::tokio;
use rocket::tokio::io::{AsyncReadExt, AsyncWriteExt};
use rocket::tokio::net::TcpStream;
use rustix::process::{Pid, Resource, Rlimit, Signal, getrlimit, kill_process, prlimit, setrlimit};
use secure_sessions::users::Role;

use crate::harness::*;
use crate::support::TestApp;
use crate::support::cluster::Cluster;

/// The usual open-file limit of a process (a service's soft limit): the app's and the proxy's.
const OPEN_FILES: u64 = 1024;

/// The sockets a stranger holds open: more than a process may have files.
const SOCKETS: usize = 1100;

/// scripts/proxy, running with `OPEN_FILES` as its limit; stopped (SIGTERM: the script stops
/// nginx and deletes its directory) when dropped.
struct Proxy {
    script: Child,
    port: u16,
    log_path: PathBuf,
}

impl Proxy {
    async fn start(app_port: u16) -> Proxy {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log_path =
            std::env::temp_dir().join(format!("ss-proxy-{}.log", uuid::Uuid::new_v4().simple()));
        let log = std::fs::File::create(&log_path).unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/proxy");
        // `ulimit -n` sets the hard limit too: nginx cannot raise it.
        let child = Command::new("bash")
            .args([
                "-c",
                &format!("ulimit -n {OPEN_FILES} && exec \"$0\""),
                script,
            ])
            .env("PROXY_LISTEN", format!("127.0.0.1:{port}"))
            .env("APP_ADDRESS", format!("127.0.0.1:{app_port}"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start scripts/proxy");
        let mut proxy = Proxy {
            script: child,
            port,
            log_path,
        };
        for _ in 0..300 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return proxy;
            }
            if let Ok(Some(status)) = proxy.script.try_wait() {
                panic!("scripts/proxy exited ({status}): {}", proxy.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the proxy did not start: {}", proxy.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let pid = Pid::from_raw(self.script.id().cast_signed()).expect("a process id");
        let _ = kill_process(pid, Signal::TERM);
        self.script.wait().ok();
        std::fs::remove_file(&self.log_path).ok();
    }
}

/// Room for this test's own sockets: its soft open-file limit raised as far as the hard one.
fn allow_this_process_more_sockets() {
    let limit = getrlimit(Resource::Nofile);
    let wanted = (2 * SOCKETS) as u64;
    if limit.current.is_some_and(|current| current < wanted) {
        let raised = Rlimit {
            current: Some(limit.maximum.map_or(wanted, |max| max.min(wanted))),
            maximum: limit.maximum,
        };
        setrlimit(Resource::Nofile, raised).expect("raise this test's open-file limit");
    }
    let current = getrlimit(Resource::Nofile).current;
    assert!(
        current.is_none_or(|current| current >= wanted),
        "this test needs {wanted} open files and may have {current:?}"
    );
}

/// What a stranger's socket does: nothing, half a request line, headers without their end, or
/// a body cut short; or one whole request, then it keeps the connection idle.
async fn open_slow_socket(port: u16, index: usize) -> TcpStream {
    let mut socket = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the proxy accepts the connection");
    let sent: &[u8] = match index % 5 {
        0 => b"",
        1 => b"GET /acc",
        2 => b"GET /account HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n",
        3 => b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nusername=al",
        _ => b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    };
    socket.write_all(sent).await.expect("write to the proxy");
    socket
}

/// Reads until the proxy closes the socket (an end of file, or a reset); `false` if it is still
/// open after `limit`.
async fn closed_by_the_proxy(mut socket: TcpStream, limit: Duration) -> bool {
    let mut buffer = [0u8; 4096];
    let until_closed = async {
        loop {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, until_closed).await.is_ok()
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn behind_the_proxy_1100_idle_and_half_sent_sockets_leave_the_app_answering_until_each_is_cut()
 {
    allow_this_process_more_sockets();
    let cluster = Cluster::start();
    let url = cluster.url("postgres");
    // Behind the proxy, the client's address is the one the proxy says.
    let app =
        AppProcess::start(&AppSettings::new(&[&url]).with("ROCKET_IP_HEADER", "X-Real-IP")).await;
    // Created once the app has migrated the database.
    TestApp::on(url.clone(), |figment| figment)
        .await
        .create_user("alice", Role::User)
        .await;
    let app_pid = Pid::from_raw(app.pid().cast_signed()).expect("a process id");
    let usual = Rlimit {
        current: Some(OPEN_FILES),
        maximum: Some(OPEN_FILES),
    };
    prlimit(Some(app_pid), Resource::Nofile, usual).expect("limit the app's open files");
    let proxy = Proxy::start(app.port).await;

    let mut sockets = Vec::with_capacity(SOCKETS);
    for index in 0..SOCKETS {
        sockets.push(open_slow_socket(proxy.port, index).await);
    }

    // With all of them open, the app still answers through the proxy: its health, and a
    // sign-in and the signed-in page.
    let health = request(proxy.port, "GET", "/healthz", &[], "").await;
    assert_eq!(
        health.map(|answer| answer.status),
        Ok(200),
        "{}",
        proxy.log()
    );
    let cookie = sign_in(proxy.port, "alice").await.expect("alice signs in");
    let page = account(proxy.port, &cookie)
        .await
        .expect("the account page");
    assert_eq!(page.status, 200);
    assert!(page.html().shows("alice"), "{}", page.body);
    // The app holds none of the strangers' sockets: the proxy passes it whole requests only.
    let app_files = open_files(app.pid());
    assert!(app_files < 200, "the app has {app_files} files open");

    // Every stage is bounded: the proxy cuts each socket (the header and body timeouts are
    // 10 s, an idle kept-alive connection's 20 s; the bound here is far above them).
    let cut = join_all(
        sockets
            .into_iter()
            .map(|socket| closed_by_the_proxy(socket, Duration::from_secs(90))),
    )
    .await;
    let still_open = cut.iter().filter(|&&closed| !closed).count();
    assert_eq!(still_open, 0, "sockets the proxy left open");
}
