//! `GET /floor` on Rocket 0.5, built and configured as the app is: no HTTP/2, one worker, no logging.

use framework_floor::{BODY, port, runtime};
use rocket::{Config, get, routes};

#[get("/floor")]
fn floor() -> &'static str {
    BODY
}

fn main() {
    let figment = Config::figment()
        .merge(("address", "127.0.0.1"))
        .merge(("port", port()))
        .merge(("workers", 1))
        .merge(("log_level", "off"));
    let launched = runtime().block_on(rocket::custom(figment).mount("/", routes![floor]).launch());
    launched.expect("Rocket ran");
}
