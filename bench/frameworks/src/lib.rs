//! What both servers answer: the app's smallest static file, so the bytes match the floor that
//! `scripts/bench` measures inside the app.

pub const BODY: &str = include_str!("../../../static/local-time.js");

/// The port from the first argument; both servers listen on 127.0.0.1 only.
pub fn port() -> u16 {
    std::env::args()
        .nth(1)
        .and_then(|port| port.parse().ok())
        .expect("usage: <server> PORT")
}

/// One async worker on tokio's single-threaded scheduler, as the app runs on this machine.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the async runtime")
}
