//! Quarters, the periods the ticket figures are reported in: "2026-Q3" on the command line,
//! bounded by midnight in Europe/Berlin (a ticket opened at 00:30 on 1 July local time belongs
//! to Q3, although it is still 30 June in UTC).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Europe::Berlin;
use serde::{Deserialize, Serialize};

use super::ServiceLevelError;
use crate::clock::school_date;

/// A calendar quarter: `q` is 1 to 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Quarter {
    pub year: i32,
    pub q: u8,
}

impl Quarter {
    /// `None` unless `q` is 1 to 4.
    pub fn new(year: i32, q: u8) -> Option<Quarter> {
        (1..=4).contains(&q).then_some(Quarter { year, q })
    }

    /// The quarter the instant falls in, by the German calendar day.
    pub fn containing(at: DateTime<Utc>) -> Quarter {
        let date = school_date(at);
        Quarter {
            year: date.year(),
            q: (date.month0() / 3 + 1) as u8,
        }
    }

    pub fn next(self) -> Quarter {
        if self.q == 4 {
            Quarter {
                year: self.year + 1,
                q: 1,
            }
        } else {
            Quarter {
                year: self.year,
                q: self.q + 1,
            }
        }
    }

    pub fn previous(self) -> Quarter {
        if self.q == 1 {
            Quarter {
                year: self.year - 1,
                q: 4,
            }
        } else {
            Quarter {
                year: self.year,
                q: self.q - 1,
            }
        }
    }

    /// `count` quarters ending with this one, oldest first (`last(8)` for the charts).
    pub fn last(self, count: usize) -> Vec<Quarter> {
        let mut quarters: Vec<Quarter> =
            std::iter::successors(Some(self), |quarter| Some(quarter.previous()))
                .take(count)
                .collect();
        quarters.reverse();
        quarters
    }

    /// The first day of the quarter.
    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, u32::from(self.q) * 3 - 2, 1).unwrap_or(NaiveDate::MIN)
    }

    /// Local midnight at the start of the quarter, as an instant.
    pub fn start(self) -> DateTime<Utc> {
        // Midnight exists and is unique in Europe/Berlin (changes happen at 02:00 and 03:00).
        Berlin
            .from_local_datetime(&self.first_day().and_time(chrono::NaiveTime::MIN))
            .earliest()
            .map(|at| at.with_timezone(&Utc))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// The start of the next quarter: the period is `start() .. end()`, end excluded.
    pub fn end(self) -> DateTime<Utc> {
        self.next().start()
    }
}

impl fmt::Display for Quarter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-Q{}", self.year, self.q)
    }
}

impl FromStr for Quarter {
    type Err = ServiceLevelError;

    /// `"2026-Q3"` (also `2026-q3`).
    fn from_str(text: &str) -> Result<Quarter, ServiceLevelError> {
        let bad = || ServiceLevelError::new(text, "is not a quarter like \"2026-Q3\"");
        let (year, q) = text.trim().split_once('-').ok_or_else(bad)?;
        let q = q
            .strip_prefix('Q')
            .or_else(|| q.strip_prefix('q'))
            .ok_or_else(bad)?;
        if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let year: i32 = year.parse().map_err(|_| bad())?;
        let q: u8 = q.parse().map_err(|_| bad())?;
        Quarter::new(year, q).ok_or_else(bad)
    }
}

impl TryFrom<String> for Quarter {
    type Error = ServiceLevelError;

    fn try_from(text: String) -> Result<Quarter, ServiceLevelError> {
        text.parse()
    }
}

impl From<Quarter> for String {
    fn from(quarter: Quarter) -> String {
        quarter.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarters_parse_print_and_step() {
        let q3: Quarter = "2026-Q3".parse().unwrap();
        assert_eq!(q3, Quarter { year: 2026, q: 3 });
        assert_eq!("2026-q3".parse::<Quarter>().unwrap(), q3);
        assert_eq!(q3.to_string(), "2026-Q3");
        for bad in ["2026-Q5", "2026-Q0", "2026Q3", "26-Q3", "2026-3", ""] {
            let error = bad.parse::<Quarter>().unwrap_err();
            assert!(error.reason.contains("2026-Q3"), "{bad}: {error}");
        }
        let eight: Vec<String> = q3.last(8).iter().map(ToString::to_string).collect();
        assert_eq!(
            eight,
            [
                "2024-Q4", "2025-Q1", "2025-Q2", "2025-Q3", "2025-Q4", "2026-Q1", "2026-Q2",
                "2026-Q3"
            ]
        );
        assert_eq!(serde_json::to_string(&q3).unwrap(), "\"2026-Q3\"");
    }

    #[test]
    fn quarter_bounds_are_german_midnight() {
        let q3 = Quarter { year: 2026, q: 3 };
        // 1 July 00:00 CEST is 30 June 22:00 UTC; 1 October 00:00 CEST is 30 September 22:00.
        assert_eq!(
            q3.start(),
            Utc.with_ymd_and_hms(2026, 6, 30, 22, 0, 0).unwrap()
        );
        assert_eq!(
            q3.end(),
            Utc.with_ymd_and_hms(2026, 9, 30, 22, 0, 0).unwrap()
        );
        // Q4 ends at 1 January 00:00 CET, 31 December 23:00 UTC.
        let q4 = q3.next();
        assert_eq!(
            q4.end(),
            Utc.with_ymd_and_hms(2026, 12, 31, 23, 0, 0).unwrap()
        );
        let late_june = Utc.with_ymd_and_hms(2026, 6, 30, 22, 30, 0).unwrap();
        assert_eq!(Quarter::containing(late_june), q3);
        assert_eq!(
            Quarter::containing(q3.start() - chrono::Duration::seconds(1)),
            q3.previous()
        );
    }
}
