//! Launches the app; everything else lives in the library so tests can build it too.

// mimalloc rather than glibc's malloc: a request allocates and frees many small blocks across
// its tasks, and with mimalloc the app spent less CPU on each and kept its rate at 128
// connections (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    secure_sessions::app::run()
}
