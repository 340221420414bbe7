//! The one source of time: every session decision asks this clock, so tests can move it.
//!
//! ```
//! use std::sync::Arc;
//! use secure_sessions_core::clock::{AppClock, ClockError, ShiftedClock};
//! use time::Duration;
//!
//! // Tests (and test mode) run on real time plus an offset they can only grow.
//! let clock = AppClock::movable(ShiftedClock::new());
//! let before = clock.now();
//! let after = clock.advance(Duration::hours(1)).expect("forward is allowed");
//! assert!(after - before >= Duration::hours(1));
//! assert_eq!(clock.advance(Duration::hours(-1)), Err(ClockError::OutOfRange));
//! // The clock production runs on cannot be moved at all.
//! assert_eq!(AppClock::system().advance(Duration::hours(1)), Err(ClockError::NotMovable));
//! ```

use std::sync::{Arc, Mutex, PoisonError};
use time::{Duration, OffsetDateTime};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
}

/// A clock that can be moved forward, never back: the tests' clock, and test mode's clock that
/// `/__test/clock/advance` moves.
pub trait MovableClock: Clock {
    /// Moves the clock forward by `by` and returns the new time; `None` (and no move) when `by`
    /// is negative or the result would leave the clock's range.
    fn try_advance(&self, by: Duration) -> Option<OffsetDateTime>;
}

/// The clock the app runs on, shared as Rocket managed state.
#[derive(Clone)]
pub struct AppClock(Source);

#[derive(Clone)]
enum Source {
    Fixed(Arc<dyn Clock>),
    /// Only tests and test mode build one: the system clock can never be moved.
    Movable(Arc<dyn MovableClock>),
}

/// Moving the clock failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    #[error("this clock cannot be moved")]
    NotMovable,
    #[error("the clock moves forward only, and not past its range")]
    OutOfRange,
}

impl AppClock {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        AppClock(Source::Fixed(clock))
    }

    pub fn system() -> Self {
        AppClock::new(Arc::new(SystemClock))
    }

    /// A clock that `advance` can move.
    pub fn movable(clock: Arc<dyn MovableClock>) -> Self {
        AppClock(Source::Movable(clock))
    }

    pub fn is_movable(&self) -> bool {
        matches!(self.0, Source::Movable(_))
    }

    /// Now, at PostgreSQL's precision (microseconds), so a value written and read back compares equal.
    pub fn now(&self) -> OffsetDateTime {
        let now = match &self.0 {
            Source::Fixed(clock) => clock.now(),
            Source::Movable(clock) => clock.now(),
        };
        truncate_to_micros(now)
    }

    /// Moves a movable clock forward; returns the new time.
    pub fn advance(&self, by: Duration) -> Result<OffsetDateTime, ClockError> {
        match &self.0 {
            Source::Fixed(_) => Err(ClockError::NotMovable),
            Source::Movable(clock) => clock
                .try_advance(by)
                .map(truncate_to_micros)
                .ok_or(ClockError::OutOfRange),
        }
    }
}

fn truncate_to_micros(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(at.nanosecond() / 1_000 * 1_000)
        .expect("a whole number of microseconds is a valid nanosecond value")
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
        Arc::new(TestClock {
            now: Mutex::new(start),
        })
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

impl MovableClock for TestClock {
    fn try_advance(&self, by: Duration) -> Option<OffsetDateTime> {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        let moved = now.checked_add(by).filter(|_| !by.is_negative())?;
        *now = moved;
        Some(moved)
    }
}

/// Test mode's clock: real time plus an offset that only grows, so an end-to-end suite sees an
/// idle timeout without waiting for it, while time still passes between its requests.
pub struct ShiftedClock {
    offset: Mutex<Duration>,
}

impl ShiftedClock {
    /// The furthest it may run ahead of real time: ample for any suite, and far enough from the
    /// end of `OffsetDateTime`'s range that `now` cannot overflow.
    pub const MAX_OFFSET: Duration = Duration::days(100 * 366);

    pub fn new() -> Arc<Self> {
        Arc::new(ShiftedClock {
            offset: Mutex::new(Duration::ZERO),
        })
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + *self.offset.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl MovableClock for ShiftedClock {
    fn try_advance(&self, by: Duration) -> Option<OffsetDateTime> {
        let mut offset = self.offset.lock().unwrap_or_else(PoisonError::into_inner);
        let moved = offset
            .checked_add(by)
            .filter(|moved| !by.is_negative() && *moved <= Self::MAX_OFFSET)?;
        *offset = moved;
        Some(OffsetDateTime::now_utc() + moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_cannot_be_moved() {
        let clock = AppClock::system();
        assert!(!clock.is_movable());
        assert_eq!(
            clock.advance(Duration::hours(1)),
            Err(ClockError::NotMovable)
        );
    }

    #[test]
    fn a_shifted_clock_runs_ahead_of_real_time_by_what_it_was_moved() {
        let clock = AppClock::movable(ShiftedClock::new());
        let before = OffsetDateTime::now_utc();
        let moved = clock.advance(Duration::minutes(30)).expect("within range");
        assert!(moved >= before + Duration::minutes(30));
        assert!(clock.now() >= moved, "time still passes after a move");
        assert!(clock.now() < OffsetDateTime::now_utc() + Duration::minutes(31));
    }

    #[test]
    fn clocks_move_forward_only_and_not_out_of_range() {
        let shifted = AppClock::movable(ShiftedClock::new());
        assert_eq!(
            shifted.advance(Duration::seconds(-1)),
            Err(ClockError::OutOfRange)
        );
        assert_eq!(
            shifted.advance(ShiftedClock::MAX_OFFSET + Duration::SECOND),
            Err(ClockError::OutOfRange)
        );
        assert!(shifted.advance(ShiftedClock::MAX_OFFSET).is_ok());
        assert_eq!(
            shifted.advance(Duration::SECOND),
            Err(ClockError::OutOfRange),
            "the offset is capped in total"
        );

        let start = OffsetDateTime::now_utc();
        let test_clock = AppClock::movable(TestClock::new(start));
        assert_eq!(
            test_clock.advance(Duration::seconds(-1)),
            Err(ClockError::OutOfRange)
        );
        assert_eq!(
            test_clock.advance(Duration::MAX),
            Err(ClockError::OutOfRange)
        );
        assert_eq!(
            test_clock.now(),
            truncate_to_micros(start),
            "a refused move changes nothing"
        );
        assert_eq!(
            test_clock.advance(Duration::seconds(5)),
            Ok(truncate_to_micros(start + Duration::seconds(5)))
        );
    }
}
