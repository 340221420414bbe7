//! A TCP relay between the app and PostgreSQL that can make the server stop answering one
//! connection at a chosen moment: `stall_next_rollback`, and the next `ROLLBACK` the app sends
//! reaches the server, but no answer to it (or to anything after it) comes back. The connection
//! stays open, as over a network that has gone silent. Everything else is passed on untouched.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rocket::tokio::io::{AsyncReadExt, AsyncWriteExt};
use rocket::tokio::net::{TcpListener, TcpStream};
use rocket::tokio::sync::watch;
use rocket::tokio::task::JoinHandle;
use rocket::tokio::time::timeout;
use sqlx::postgres::PgConnectOptions;

/// The simple-query message sqlx sends to roll back a dropped transaction: `Q`, its length
/// (itself and the text), and the text with its terminating zero.
const ROLLBACK: &[u8] = b"Q\0\0\0\x0dROLLBACK\0";
/// The untyped requests that may come before the startup message (PostgreSQL protocol 53.7).
const SSL_REQUEST: u32 = 80877103;
const GSSENC_REQUEST: u32 = 80877104;

pub struct StallingRelay {
    url: String,
    shared: Arc<Shared>,
    listener: JoinHandle<()>,
}

struct Shared {
    upstream: (String, u16),
    armed: AtomicBool,
    seen: watch::Sender<Seen>,
}

/// What the relay has seen so far.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    /// A connection stopped answering after the app's `ROLLBACK`.
    stalled: bool,
    /// The app has closed that connection.
    stalled_closed: bool,
}

impl StallingRelay {
    /// A relay on a free port of 127.0.0.1 in front of the server of `database_url`.
    pub async fn start(database_url: &str) -> StallingRelay {
        let options: PgConnectOptions = database_url.parse().expect("a PostgreSQL URL");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = format!(
            "postgres://{}@127.0.0.1:{port}/{}?sslmode=disable",
            options.get_username(),
            options.get_database().expect("a database name"),
        );
        let shared = Arc::new(Shared {
            upstream: (options.get_host().to_owned(), options.get_port()),
            armed: AtomicBool::new(false),
            seen: watch::Sender::new(Seen::default()),
        });
        let accepting = Arc::clone(&shared);
        let listener = tokio::spawn(async move {
            while let Ok((app, _)) = listener.accept().await {
                let server = TcpStream::connect(accepting.upstream.clone())
                    .await
                    .expect("the relay reaches PostgreSQL");
                tokio::spawn(relay(app, server, Arc::clone(&accepting)));
            }
        });
        StallingRelay {
            url,
            shared,
            listener,
        }
    }

    /// The URL for the app: the same database, through the relay.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The next `ROLLBACK` any connection sends is the last message the server answers there.
    pub fn stall_next_rollback(&self) {
        self.shared.armed.store(true, Ordering::SeqCst);
    }

    /// Waits (at most `limit`) until a connection has stopped answering; false if none did.
    pub async fn stalled(&self, limit: Duration) -> bool {
        self.wait_for(limit, |seen| seen.stalled).await
    }

    /// Waits (at most `limit`) until the app has closed the connection that stopped answering;
    /// false if it still holds it.
    pub async fn stalled_closed(&self, limit: Duration) -> bool {
        self.wait_for(limit, |seen| seen.stalled_closed).await
    }

    async fn wait_for(&self, limit: Duration, done: impl FnMut(&Seen) -> bool) -> bool {
        let mut seen = self.shared.seen.subscribe();
        matches!(timeout(limit, seen.wait_for(done)).await, Ok(Ok(_)))
    }
}

impl Drop for StallingRelay {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Passes one connection's bytes both ways until either side closes it. The app's messages are
/// framed as they pass, to find a `ROLLBACK` while the relay is armed; from that one on, the
/// server's answers are read and dropped.
async fn relay(app: TcpStream, server: TcpStream, shared: Arc<Shared>) {
    let (mut from_app, mut to_app) = app.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let stalled = Arc::new(AtomicBool::new(false));

    let answers = {
        let stalled = Arc::clone(&stalled);
        tokio::spawn(async move {
            let mut buffer = vec![0; 16 * 1024];
            loop {
                let read = match from_server.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => read,
                };
                // Set before the `ROLLBACK` was passed on, so its answer never gets through.
                if !stalled.load(Ordering::SeqCst)
                    && to_app.write_all(&buffer[..read]).await.is_err()
                {
                    break;
                }
            }
        })
    };

    let mut frames = Frames::default();
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = match from_app.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let rollback = frames.push(&buffer[..read]);
        if rollback && shared.armed.swap(false, Ordering::SeqCst) {
            stalled.store(true, Ordering::SeqCst);
            shared.seen.send_modify(|seen| seen.stalled = true);
        }
        if to_server.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    // The app has closed its end (or the server has gone): close the server's too.
    if stalled.load(Ordering::SeqCst) {
        shared.seen.send_modify(|seen| seen.stalled_closed = true);
    }
    let _ = to_server.shutdown().await;
    answers.abort();
}

/// The app's side of the protocol, cut into messages: untyped ones (a length, then the body)
/// until the startup message, typed ones (a type byte, a length, the body) after it.
#[derive(Default)]
struct Frames {
    pending: Vec<u8>,
    started: bool,
}

impl Frames {
    /// Takes the bytes just read; true if they complete a `ROLLBACK` message.
    fn push(&mut self, bytes: &[u8]) -> bool {
        self.pending.extend_from_slice(bytes);
        let mut rollback = false;
        loop {
            let header = if self.started { 5 } else { 4 };
            if self.pending.len() < header {
                return rollback;
            }
            let at = header - 4;
            let length = u32::from_be_bytes(self.pending[at..at + 4].try_into().unwrap());
            let total = at + length as usize;
            if self.pending.len() < total {
                return rollback;
            }
            let message: Vec<u8> = self.pending.drain(..total).collect();
            if self.started {
                rollback |= message == ROLLBACK;
            } else {
                let code = u32::from_be_bytes(message[4..8].try_into().unwrap());
                self.started = code != SSL_REQUEST && code != GSSENC_REQUEST;
            }
        }
    }
}
