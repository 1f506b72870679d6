//! Time as a parameter: the core never reads the wall clock itself, so tests can fix it.

use std::sync::Mutex;

use chrono::{DateTime, NaiveDate, Utc};

/// The calendar day at German schools at `at`: loans fall due, are handed out and are overdue
/// by the day in Europe/Berlin, not by UTC's (which is one or two hours behind).
pub fn school_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&chrono_tz::Europe::Berlin).date_naive()
}

/// Where the core gets "now" from.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// A clock that says what it is told; for tests and replays.
#[derive(Debug)]
pub struct FixedClock {
    now: Mutex<DateTime<Utc>>,
}

impl FixedClock {
    pub fn new(now: DateTime<Utc>) -> FixedClock {
        FixedClock {
            now: Mutex::new(now),
        }
    }

    pub fn set(&self, now: DateTime<Utc>) {
        if let Ok(mut guard) = self.now.lock() {
            *guard = now;
        }
    }

    pub fn advance(&self, by: chrono::Duration) {
        if let Ok(mut guard) = self.now.lock() {
            *guard += by;
        }
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        match self.now.lock() {
            Ok(guard) => *guard,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_school_day_follows_german_time_with_summer_time() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        // 22:35 UTC in August is 00:35 the next day in Berlin (CEST, UTC+2).
        let summer = Utc.with_ymd_and_hms(2026, 8, 25, 22, 35, 0).unwrap();
        assert_eq!(school_date(summer), day(2026, 8, 26));
        // 22:35 UTC in November is still 23:35 the same day (CET, UTC+1).
        let winter = Utc.with_ymd_and_hms(2026, 11, 23, 22, 35, 0).unwrap();
        assert_eq!(school_date(winter), day(2026, 11, 23));
        let new_year = Utc.with_ymd_and_hms(2026, 12, 31, 23, 30, 0).unwrap();
        assert_eq!(school_date(new_year), day(2027, 1, 1));
    }
}
