//! What an authority configures about loans, as plain values the core can use without knowing
//! the config file: the accessories a school may hand out and when its school year ends.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use crate::error::CoreError;
use crate::normalize::DateError;

/// The accessories lent with a device when the configuration names none (German: the labels
/// are printed on agreements and read by school staff).
pub const DEFAULT_ACCESSORIES: &[&str] = &["Schutzhülle", "Ladegerät", "Eingabestift", "Tastatur"];

/// A day of the year without a year, written `MM-DD`, such as the end of a school year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct MonthDay {
    month: u32,
    day: u32,
}

impl MonthDay {
    /// July 31st: the end of the school year in most German states.
    pub const DEFAULT_YEAR_END: MonthDay = MonthDay { month: 7, day: 31 };

    pub fn new(month: u32, day: u32) -> Result<MonthDay, String> {
        // 29 February would be missing three years out of four, so it is refused outright.
        if NaiveDate::from_ymd_opt(2025, month, day).is_none() {
            return Err(format!(
                "{month:02}-{day:02} is not a day of every year (write MM-DD, e.g. 07-31)"
            ));
        }
        Ok(MonthDay { month, day })
    }

    /// This day in `year`.
    pub fn in_year(self, year: i32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, self.month, self.day).unwrap_or(NaiveDate::MIN)
    }

    /// The first occurrence of this day on or after `today`: the end of the current school year.
    pub fn next_on_or_after(self, today: NaiveDate) -> NaiveDate {
        let this_year = self.in_year(today.year());
        if this_year >= today {
            this_year
        } else {
            self.in_year(today.year() + 1)
        }
    }
}

impl FromStr for MonthDay {
    type Err = String;

    fn from_str(text: &str) -> Result<MonthDay, String> {
        let text = text.trim();
        let parsed = text
            .split_once('-')
            .filter(|(month, day)| month.len() == 2 && day.len() == 2)
            .and_then(|(month, day)| Some((month.parse().ok()?, day.parse().ok()?)));
        match parsed {
            Some((month, day)) => MonthDay::new(month, day),
            None => Err(format!(
                "\"{text}\" is not a day of the year; write MM-DD, e.g. 07-31"
            )),
        }
    }
}

impl fmt::Display for MonthDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}-{:02}", self.month, self.day)
    }
}

/// The loan rules of the configured authorities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoanPolicy {
    /// The accessories that may be handed out with a device, in the configured spelling.
    pub accessories: Vec<String>,
    /// The school year end of authorities and schools that set none.
    pub default_year_end: MonthDay,
    /// Per authority slug.
    pub authority_year_ends: BTreeMap<String, MonthDay>,
    /// Per (authority slug, school number); wins over the authority's.
    pub school_year_ends: BTreeMap<(String, String), MonthDay>,
}

impl Default for LoanPolicy {
    fn default() -> Self {
        LoanPolicy {
            accessories: DEFAULT_ACCESSORIES.iter().map(|a| a.to_string()).collect(),
            default_year_end: MonthDay::DEFAULT_YEAR_END,
            authority_year_ends: BTreeMap::new(),
            school_year_ends: BTreeMap::new(),
        }
    }
}

impl LoanPolicy {
    /// When the school year ends at `school_number` of `authority` (or at the authority when
    /// the loan has no school).
    pub fn year_end(&self, authority: &str, school_number: Option<&str>) -> MonthDay {
        school_number
            .and_then(|number| {
                self.school_year_ends
                    .get(&(authority.to_string(), number.to_string()))
            })
            .or_else(|| self.authority_year_ends.get(authority))
            .copied()
            .unwrap_or(self.default_year_end)
    }

    /// The due date of a loan handed out `today` when nobody names one: the end of the
    /// lending school's current school year.
    pub fn default_due(
        &self,
        authority: &str,
        school_number: Option<&str>,
        today: NaiveDate,
    ) -> NaiveDate {
        self.year_end(authority, school_number)
            .next_on_or_after(today)
    }

    /// The configured spelling of `name` (matched without regard to case), or a refusal that
    /// lists what is configured.
    pub fn accessory(&self, name: &str) -> Result<String, CoreError> {
        let wanted = name.trim().to_lowercase();
        self.accessories
            .iter()
            .find(|known| known.to_lowercase() == wanted)
            .cloned()
            .ok_or_else(|| {
                CoreError::Invalid(format!(
                    "unknown accessory \"{}\"; configured accessories: {}",
                    name.trim(),
                    if self.accessories.is_empty() {
                        "none (add them to `accessories` in [loans])".to_string()
                    } else {
                        self.accessories.join(", ")
                    }
                ))
            })
    }

    /// `names` in their configured spelling, each once, in the order given.
    pub fn accessories_of(&self, names: &[String]) -> Result<Vec<String>, CoreError> {
        let mut out: Vec<String> = Vec::new();
        for name in names.iter().filter(|name| !name.trim().is_empty()) {
            let known = self.accessory(name)?;
            if !out.contains(&known) {
                out.push(known);
            }
        }
        Ok(out)
    }
}

/// Reads a date as school staff write it: `2027-07-31` or `31.07.2027` (also `31.7.2027`).
pub fn parse_date(text: &str) -> Result<NaiveDate, String> {
    crate::normalize::date(text, &["%d.%m.%Y"]).map_err(|error| {
        let text = text.trim();
        match error {
            DateError::NotADate => {
                format!("\"{text}\" is not a date (write YYYY-MM-DD or DD.MM.YYYY)")
            }
            DateError::Year(_) => format!("\"{text}\": {error}"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        parse_date(text).unwrap()
    }

    #[test]
    fn the_school_year_ends_this_year_or_next() {
        let end = MonthDay::DEFAULT_YEAR_END;
        assert_eq!(end.next_on_or_after(day("2026-11-23")), day("2027-07-31"));
        assert_eq!(end.next_on_or_after(day("2026-07-31")), day("2026-07-31"));
        assert_eq!(end.next_on_or_after(day("2026-08-01")), day("2027-07-31"));
        assert_eq!(end.next_on_or_after(day("2027-02-01")), day("2027-07-31"));
    }

    #[test]
    fn month_days_parse_strictly() {
        assert_eq!("07-31".parse::<MonthDay>().unwrap().to_string(), "07-31");
        assert!("7-31".parse::<MonthDay>().is_err());
        assert!("02-29".parse::<MonthDay>().is_err());
        assert!("13-01".parse::<MonthDay>().is_err());
        assert!("07/31".parse::<MonthDay>().is_err());
    }

    #[test]
    fn dates_in_both_spellings() {
        assert_eq!(day("31.07.2027"), day("2027-07-31"));
        assert_eq!(day("1.8.2027"), day("2027-08-01"));
        assert!(parse_date("2027-13-01").is_err());
        assert_eq!(
            parse_date("31.07.27").unwrap_err(),
            "\"31.07.27\": its year 27 is not between 1900 and 2199 (write the year with four digits)"
        );
        assert!(parse_date("morgen").is_err());
    }

    #[test]
    fn school_overrides_authority_overrides_default() {
        let mut policy = LoanPolicy::default();
        policy
            .authority_year_ends
            .insert("musterstadt".into(), "07-15".parse().unwrap());
        policy.school_year_ends.insert(
            ("musterstadt".into(), "100002".into()),
            "06-30".parse().unwrap(),
        );
        assert_eq!(
            policy.year_end("musterstadt", Some("100002")).to_string(),
            "06-30"
        );
        assert_eq!(
            policy.year_end("musterstadt", Some("100001")).to_string(),
            "07-15"
        );
        assert_eq!(policy.year_end("anderswo", None).to_string(), "07-31");
    }

    #[test]
    fn accessories_use_the_configured_spelling() {
        let policy = LoanPolicy::default();
        assert_eq!(
            policy
                .accessories_of(&["ladegerät".into(), "Ladegerät".into(), " ".into()])
                .unwrap(),
            vec!["Ladegerät".to_string()]
        );
        let error = policy.accessory("Maus").unwrap_err().to_string();
        assert!(error.contains("Schutzhülle, Ladegerät"), "{error}");
    }
}
