//! `scripts/proxy`: the app served through nginx, which bounds what Rocket 0.5 cannot: how long
//! a client may take to send its headers and its body, how long a kept-alive connection may
//! idle, and how many connections there are (docs/operations.md, "Slow clients and the proxy"):
//!
//! ```sh
//! PROXY_LISTEN=127.0.0.1:8080 APP_ADDRESS=127.0.0.1:8000 scripts/proxy
//! ```
//!
//! The app must already run at `APP_ADDRESS` (default 127.0.0.1:8000), told to take the
//! client's address from the proxy: `ROCKET_IP_HEADER=X-Real-IP scripts/run`. The proxy listens
//! on `PROXY_LISTEN` (default 127.0.0.1:8080) with the configuration `proxy/nginx.conf`, copied
//! into a temporary directory with those two addresses filled in. nginx is installed if missing
//! (Debian's nginx-light). Ctrl-C or SIGTERM stops nginx and deletes the directory.

use std::os::unix::fs::PermissionsExt as _;

use pg_cluster::{TempDir, say};
use rustix::process::Signal;

use crate::process::{
    Context, Failure, Outcome, fail, forward_to, handle_signals, status_code, stop_forwarding,
};
use crate::tools::ensure_nginx;

/// Whether `address` is a loopback address and port (127.x.x.x:PORT).
pub fn is_loopback(address: &str) -> bool {
    let Some((host, port)) = address.split_once(':') else {
        return false;
    };
    let octets: Vec<&str> = host.split('.').collect();
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    octets.len() == 4
        && octets[0] == "127"
        && octets.iter().all(|octet| digits(octet))
        && digits(port)
}

pub fn main(args: &[String]) -> Outcome {
    if !args.is_empty() {
        return fail(
            "scripts/proxy takes no arguments (PROXY_LISTEN and APP_ADDRESS set the addresses)",
        );
    }
    handle_signals()?;
    let context = Context::default();
    let listen = context
        .var("PROXY_LISTEN")
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let app = context
        .var("APP_ADDRESS")
        .unwrap_or_else(|| "127.0.0.1:8000".to_owned());
    for address in [&listen, &app] {
        if !is_loopback(address) {
            return fail(format!(
                "not a loopback address and port (127.x.x.x:PORT): {address}"
            ));
        }
    }
    let nginx = ensure_nginx(&context)?;

    let runtime = TempDir::new("secure-sessions-proxy")?;
    let dir = runtime.path();
    // nginx's workers may run as another user (nobody, when started as root): they must reach it.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|error| Failure::Message(error.to_string()))?;
    let template = std::fs::read_to_string("proxy/nginx.conf")
        .map_err(|error| Failure::Message(format!("proxy/nginx.conf: {error}")))?;
    let config = dir.join("nginx.conf");
    let filled = template
        .replace("@RUNTIME@", &dir.to_string_lossy())
        .replace("@LISTEN@", &listen)
        .replace("@APP_ADDRESS@", &app);
    std::fs::write(&config, filled).map_err(|error| Failure::Message(error.to_string()))?;

    let nginx_command = || {
        let mut command = context.command(&nginx);
        command
            .args(["-e", "stderr", "-p"])
            .arg(dir)
            .arg("-c")
            .arg(&config);
        command
    };
    let tested = context.status(nginx_command().args(["-t", "-q"]))?;
    if tested != 0 {
        return Err(Failure::Status(tested));
    }
    say(format!(
        "serving http://{listen} through nginx, to the app at {app} (Ctrl-C stops it)"
    ));
    // QUIT, passed on for Ctrl-C or SIGTERM: nginx finishes the requests in flight, then ends;
    // its workers end with it. The directory is deleted after.
    let mut child = nginx_command()
        .spawn()
        .map_err(|error| Failure::Message(format!("could not start nginx: {error}")))?;
    forward_to(&child, Signal::QUIT);
    let status = child.wait();
    stop_forwarding(&child);
    let status = status.map_err(|error| Failure::Message(error.to_string()))?;
    crate::process::check_interrupted()?;
    Ok(status_code(status))
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn only_loopback_addresses_with_a_port_are_accepted() {
        for address in ["127.0.0.1:8080", "127.1.2.3:1"] {
            assert!(is_loopback(address), "{address}");
        }
        for address in [
            "0.0.0.0:8080",
            "127.0.0.1",
            "127.0.0.1:",
            "localhost:8080",
            "127.0.0:80",
            "127.0.0.1:80x",
            "10.127.0.1:80",
        ] {
            assert!(!is_loopback(address), "{address}");
        }
    }
}
