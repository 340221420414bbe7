//! `GET /healthz`: 200 when the database answers, 503 otherwise.

use rocket::http::Status;
use rocket::{Route, State, get, routes};

use crate::db::Db;

#[get("/healthz")]
async fn healthz(db: &State<Db>) -> (Status, &'static str) {
    let answered = match db.pool().acquire().await {
        Ok(mut conn) => sqlx::query!("SELECT 1 AS one")
            .fetch_one(&mut *conn)
            .await
            .is_ok(),
        Err(_) => false,
    };
    if answered {
        (Status::Ok, "ok\n")
    } else {
        (Status::ServiceUnavailable, "database unavailable\n")
    }
}

pub fn routes() -> Vec<Route> {
    routes![healthz]
}
