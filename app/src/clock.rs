//! The wall clock: the one place outside the binaries that reads the time; the core only sees
//! it through `Clock`, so tests can fix it.

use chrono::{DateTime, Utc};

/// The system's clock.
pub struct SystemClock;

impl bestand_core::Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
