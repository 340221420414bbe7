//! Rendering askama templates as Rocket responses, and the small view helpers pages share.

use askama::Template;
use rocket::Request;
use rocket::response::content::RawHtml;
use rocket::response::{self, Responder};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::error::AppError;
use crate::session::AuthenticatedUser;

/// A rendered page. Autoescaping stays on: every value in a template is HTML-escaped.
pub struct Page<T: Template>(pub T);

impl<'r, T: Template> Responder<'r, 'static> for Page<T> {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        match self.0.render() {
            Ok(html) => RawHtml(html).respond_to(request),
            Err(error) => AppError::from(error).respond_to(request),
        }
    }
}

/// The signed-in part of the page header: who you are, and the sign-out button.
pub struct Nav {
    pub username: String,
    pub csrf_token: String,
    pub is_admin: bool,
    /// Read by static/idle.js to warn before the idle timeout.
    pub idle_seconds_left: i64,
    pub idle_warning_secs: u32,
}

impl Nav {
    pub fn of(user: &AuthenticatedUser) -> Nav {
        Nav {
            username: user.username().to_owned(),
            csrf_token: user.csrf_token().to_owned(),
            is_admin: user.role() == crate::users::Role::Admin,
            idle_seconds_left: user.idle_countdown().seconds_left,
            idle_warning_secs: user.idle_countdown().warning_secs,
        }
    }
}

/// How pages show a moment: "22 Nov 2026, 14:05 UTC" (day, short month name, year, 24-hour
/// time), always in UTC, whatever offset the value carries.
const READABLE_TIME: &[BorrowedFormatItem<'static>] =
    format_description!("[day padding:none] [month repr:short] [year], [hour]:[minute] UTC");

/// "22 Nov 2026, 14:05 UTC".
pub fn format_time(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    // Formatting fails only for a component the value lacks, and an OffsetDateTime has them
    // all; were it ever to fail, the page shows the plain form rather than failing.
    at.format(READABLE_TIME).unwrap_or_else(|_| at.to_string())
}

/// "just now", "3 minutes ago", "2 hours ago", "5 days ago".
pub fn format_ago(at: OffsetDateTime, now: OffsetDateTime) -> String {
    let elapsed = now - at;
    let plural = |n: i64, unit: &str| format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" });
    if elapsed < Duration::minutes(1) {
        "just now".into()
    } else if elapsed < Duration::hours(1) {
        plural(elapsed.whole_minutes(), "minute")
    } else if elapsed < Duration::days(1) {
        plural(elapsed.whole_hours(), "hour")
    } else {
        plural(elapsed.whole_days(), "day")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn times_read_like_a_person_would_say_them() {
        let now = datetime!(2026-11-22 14:05:30 UTC);
        assert_eq!(format_time(now), "22 Nov 2026, 14:05 UTC");
        // Single-digit days and hours, and another offset shown in UTC.
        assert_eq!(
            format_time(datetime!(2026-03-05 00:07:59 +02:00)),
            "4 Mar 2026, 22:07 UTC"
        );
        let cases = [
            (Duration::seconds(5), "just now"),
            (Duration::minutes(1), "1 minute ago"),
            (Duration::minutes(3), "3 minutes ago"),
            (Duration::hours(2), "2 hours ago"),
            (Duration::days(1), "1 day ago"),
            (Duration::days(9), "9 days ago"),
        ];
        for (elapsed, expected) in cases {
            assert_eq!(format_ago(now - elapsed, now), expected);
        }
    }
}
