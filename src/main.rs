//! Launches the app; everything else lives in the library so tests can build it too.

fn main() -> std::process::ExitCode {
    secure_sessions::app::run()
}
