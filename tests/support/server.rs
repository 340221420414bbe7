//! The app served for real on 127.0.0.1 (a random port), for browsers and raw HTTP.

use std::sync::Mutex;

use rocket::fairing::AdHoc;
use rocket::tokio::io::{AsyncReadExt, AsyncWriteExt};
use rocket::tokio::net::TcpStream;
use rocket::tokio::sync::oneshot;
use rocket::{Build, Rocket, Shutdown};

/// A running server; dropping it shuts the app down.
pub struct Server {
    pub base_url: String,
    pub port: u16,
    shutdown: Shutdown,
}

impl Server {
    pub async fn start(rocket: Rocket<Build>) -> Server {
        let (sender, receiver) = oneshot::channel();
        let sender = Mutex::new(Some(sender));
        let rocket = rocket.attach(AdHoc::on_liftoff("Report the port", move |rocket| {
            Box::pin(async move {
                if let Some(sender) = sender.lock().unwrap().take() {
                    sender.send(rocket.config().port).ok();
                }
            })
        }));
        let ignited = rocket.ignite().await.expect("the app ignites");
        let shutdown = ignited.shutdown();
        rocket::tokio::spawn(ignited.launch());
        let port = receiver.await.expect("the app lifts off");
        Server {
            base_url: format!("http://127.0.0.1:{port}"),
            port,
            shutdown,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Sends raw HTTP/1.1 bytes and returns the raw response: for input no client library would send.
    pub async fn raw(&self, request: &[u8]) -> String {
        raw_http(self.port, request).await
    }

    /// A GET with exactly these extra header lines.
    pub async fn raw_get(&self, path: &str, header_lines: &[&str]) -> String {
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
            self.port
        );
        for line in header_lines {
            request.push_str(line);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        self.raw(request.as_bytes()).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.clone().notify();
    }
}

/// Sends raw bytes to 127.0.0.1:`port` and reads the whole response (send `Connection: close`).
pub async fn raw_http(port: u16, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream.write_all(request).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    String::from_utf8_lossy(&response).into_owned()
}
