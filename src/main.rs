//! Launches the app; everything else lives in the library so tests can build it too.

// mimalloc rather than glibc's malloc: a request allocates and frees many small blocks across
// its tasks, and with mimalloc the app spent less CPU on each and kept its rate at 128
// connections (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    use secure_sessions::users::hashing::{HashingSettings, process};
    // The app runs its password hashing in a second process of this same binary.
    match HashingSettings::from_args(std::env::args_os().skip(1)) {
        None => secure_sessions::app::run(),
        Some(Ok(settings)) => process::serve(settings),
        Some(Err(error)) => {
            eprintln!("{error}");
            std::process::ExitCode::from(2)
        }
    }
}
