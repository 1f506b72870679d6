//! Time as a parameter: the core never reads the wall clock itself, so tests can fix it.

use std::sync::Mutex;

use chrono::{DateTime, Utc};

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
