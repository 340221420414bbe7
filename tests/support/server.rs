//! The app served for real on 127.0.0.1 (a random port), for browsers and `raw::RawRequest`.

use std::sync::Mutex;

use rocket::fairing::AdHoc;
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
        tokio::spawn(ignited.launch());
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
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.clone().notify();
    }
}
