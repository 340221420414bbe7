//! Launches the app; everything else lives in the library so tests can build it too.

#[rocket::launch]
fn rocket() -> _ {
    secure_sessions::app::rocket()
}
