//! The security headers on every response, and `Retry-After`.

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::Header;
use rocket::{Request, Response};

use crate::config::SessionConfig;
use crate::throttle::RetryAfter;

/// Only this origin's scripts, styles and images; no plugins, no `<base>` to re-point relative links,
/// forms that post only here (a stolen page cannot be made to send a form elsewhere), no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The `Retry-After` header of a 429 or 503 response: how many seconds to wait.
pub fn retry_after(secs: u64) -> Header<'static> {
    Header::new("Retry-After", secs.to_string())
}

/// The `Retry-After` header of a 429 response for a throttled request.
pub fn throttled(wait: RetryAfter) -> Header<'static> {
    // Never negative: a wait that is over is not throttled.
    retry_after(u64::try_from(wait.secs()).unwrap_or_default())
}

pub struct SecurityHeaders;

#[rocket::async_trait]
impl Fairing for SecurityHeaders {
    fn info(&self) -> Info {
        Info {
            name: "Security headers",
            kind: Kind::Response,
        }
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        response.set_header(Header::new(
            "Content-Security-Policy",
            CONTENT_SECURITY_POLICY,
        ));
        response.set_header(Header::new("X-Content-Type-Options", "nosniff"));
        // frame-ancestors above is the modern form; older browsers read this one.
        response.set_header(Header::new("X-Frame-Options", "DENY"));
        response.set_header(Header::new("Referrer-Policy", "same-origin"));
        // Strict-Transport-Security only where the site is served over TLS (release profile).
        if request
            .rocket()
            .state::<SessionConfig>()
            .is_some_and(|config| config.hsts)
        {
            response.set_header(Header::new(
                "Strict-Transport-Security",
                "max-age=63072000; includeSubDomains",
            ));
        }
        // Pages may show account data: never stored, so Back after sign-out shows nothing.
        // Only the static assets (which set their own Cache-Control) may be cached.
        if !request.uri().path().starts_with("/static/") {
            response.set_header(Header::new("Cache-Control", "no-store"));
        }
    }
}
