//! The one source of time: every session decision asks this clock, so tests can move it.

use std::sync::{Arc, Mutex, PoisonError};
use time::{Duration, OffsetDateTime};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
}

/// The clock the app runs on, shared as Rocket managed state.
#[derive(Clone)]
pub struct AppClock(Arc<dyn Clock>);

impl AppClock {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        AppClock(clock)
    }

    pub fn system() -> Self {
        AppClock(Arc::new(SystemClock))
    }

    /// Now, at PostgreSQL's precision (microseconds), so a value written and read back compares equal.
    pub fn now(&self) -> OffsetDateTime {
        let now = self.0.now();
        now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
            .expect("a whole number of microseconds is a valid nanosecond value")
    }
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that stands still until a test moves it.
pub struct TestClock {
    now: Mutex<OffsetDateTime>,
}

impl TestClock {
    pub fn new(start: OffsetDateTime) -> Arc<Self> {
        Arc::new(TestClock { now: Mutex::new(start) })
    }

    pub fn advance(&self, by: Duration) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
