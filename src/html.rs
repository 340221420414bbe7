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

/// A form's errors, each shown next to its field (or above the form when it concerns no
/// field), the way assistive technology finds them: the field is `aria-invalid` and described
/// by its message, and the first field in error takes the focus.
#[derive(Default)]
pub struct FormErrors {
    errors: Vec<(Option<&'static str>, String)>,
}

impl FormErrors {
    /// An error about the field named `name`.
    pub fn field(&mut self, name: &'static str, message: impl Into<String>) {
        self.errors.push((Some(name), message.into()));
    }

    /// An error about the whole form (too many attempts).
    pub fn form(&mut self, message: impl Into<String>) {
        self.errors.push((None, message.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Every message, in order: the page's summary of them.
    pub fn all(&self) -> impl Iterator<Item = (Option<&'static str>, &str)> {
        self.errors
            .iter()
            .map(|(field, message)| (*field, message.as_str()))
    }

    /// The errors about no field.
    pub fn general(&self) -> impl Iterator<Item = &str> {
        self.all()
            .filter(|(field, _)| field.is_none())
            .map(|(_, message)| message)
    }

    /// What is wrong with the field `name`, every message in one sentence group.
    pub fn of(&self, name: &str) -> Option<String> {
        let messages: Vec<&str> = self
            .all()
            .filter(|(field, _)| *field == Some(name))
            .map(|(_, message)| message)
            .collect();
        (!messages.is_empty()).then(|| messages.join(" "))
    }

    /// Whether the field `name` takes the focus: the first field in error, or, without any,
    /// the form's first field (`first`).
    pub fn focus(&self, name: &str, first: bool) -> bool {
        match self.all().find_map(|(field, _)| field) {
            Some(field) => field == name,
            None => first,
        }
    }
}

/// How pages show a moment: "22 Nov 2026, 14:05 UTC" (day, short month name, year, 24-hour
/// time).
const READABLE_TIME: &[BorrowedFormatItem<'static>] =
    format_description!("[day padding:none] [month repr:short] [year], [hour]:[minute] UTC");

/// The same moment for machines (`<time datetime>`): "2026-11-22T14:05:30Z".
const ISO_TIME: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// A moment as a page shows it: in UTC, labelled, and machine-readable so that
/// static/local-time.js can show it in the reader's own time zone.
pub struct When {
    /// "22 Nov 2026, 14:05 UTC".
    pub text: String,
    /// "2026-11-22T14:05:30Z", for `<time datetime>`.
    pub iso: String,
}

impl When {
    pub fn at(at: OffsetDateTime) -> When {
        When {
            text: format_time(at),
            iso: in_utc(at, ISO_TIME),
        }
    }
}

/// "22 Nov 2026, 14:05 UTC".
pub fn format_time(at: OffsetDateTime) -> String {
    in_utc(at, READABLE_TIME)
}

/// `at` in UTC, whatever offset it carries, as `format` describes it.
fn in_utc(at: OffsetDateTime, format: &[BorrowedFormatItem<'_>]) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    // Formatting fails only for a component the value lacks, and an OffsetDateTime has them
    // all; were it ever to fail, the page shows the plain form rather than failing.
    at.format(format).unwrap_or_else(|_| at.to_string())
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
        assert_eq!(When::at(now).iso, "2026-11-22T14:05:30Z");
        // Single digits, and another offset shown in UTC.
        let early = datetime!(2026-03-05 00:07:09.5 +02:00);
        assert_eq!(format_time(early), "4 Mar 2026, 22:07 UTC");
        assert_eq!(When::at(early).iso, "2026-03-04T22:07:09Z");
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
