//! `GET /floor` on axum 0.8: the same hyper and tokio underneath, without Rocket's request task.

use axum::{Router, routing::get};
use framework_floor::{BODY, port, runtime};

fn main() {
    runtime().block_on(async {
        let app = Router::new().route("/floor", get(|| async { BODY }));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port()))
            .await
            .expect("bind 127.0.0.1");
        axum::serve(listener, app).await.expect("axum ran");
    });
}
