//! `[authority.service_hours]`: an authority's service-hours calendar and its targets per
//! priority, as written in the configuration file, checked when the file is loaded and turned
//! into the plain `ServiceCalendar` and `ServiceTargets` the core's figures take
//! (docs/service-levels.md).
//!
//! The values stay in the file and are not copied into the database (like `retention_months`):
//! the ticket report reads them from the configuration it runs with.

use std::collections::{BTreeSet, HashSet};

use bestand_core::service_level::{
    parse_service_time, DateRange, Land, PriorityTarget, ServiceCalendar, ServiceTargets,
    WeeklyHours,
};
use chrono::{NaiveDate, Weekday};
use serde::Deserialize;

/// `[authority.service_hours]` as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceHoursConfig {
    /// The Land whose public holidays close the desk: `"NW"`, `"BY"`, ...
    pub land: String,
    /// The hours per weekday; a day not named is closed. Default: the service sheet's
    /// Mon–Thu 08:00–16:00, Fri 08:00–13:00.
    #[serde(default)]
    pub weekly: Option<WeeklyConfig>,
    /// `"2026-07-20..2026-09-01"` (both days included) or one day.
    #[serde(default)]
    pub school_holidays: Vec<String>,
    /// Extra closed days: `"2026-12-24"` or ranges like school holidays.
    #[serde(default)]
    pub closed: Vec<String>,
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
}

/// `weekly = { mon = "08:00-16:00", ... }`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeeklyConfig {
    pub mon: Option<String>,
    pub tue: Option<String>,
    pub wed: Option<String>,
    pub thu: Option<String>,
    pub fri: Option<String>,
    pub sat: Option<String>,
    pub sun: Option<String>,
}

/// One entry of `targets`: the reaction and resolution targets of one priority, in service
/// time (`"2h"`, `"90m"`, `"1h30m"`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// The priority as the ticket system names it (`"3 high"`), matched ignoring case.
    pub priority: String,
    pub reaction: Option<String>,
    pub resolution: Option<String>,
}

/// An authority's checked calendar and targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLevel {
    pub calendar: ServiceCalendar,
    pub targets: ServiceTargets,
}

impl ServiceHoursConfig {
    /// Checks every value; each problem names `table`, the key and the value.
    pub fn resolve(&self, table: &str) -> Result<ServiceLevel, Vec<String>> {
        let mut problems = Vec::new();
        let problem = |key: &str, message: String| format!("{table}: key `{key}`: {message}");
        let land = match self.land.parse::<Land>() {
            Ok(land) => Some(land),
            Err(error) => {
                problems.push(problem("land", error.to_string()));
                None
            }
        };
        let mut weekly = WeeklyHours::default();
        if let Some(days) = &self.weekly {
            weekly = WeeklyHours::closed();
            let named = [
                ("mon", Weekday::Mon, &days.mon),
                ("tue", Weekday::Tue, &days.tue),
                ("wed", Weekday::Wed, &days.wed),
                ("thu", Weekday::Thu, &days.thu),
                ("fri", Weekday::Fri, &days.fri),
                ("sat", Weekday::Sat, &days.sat),
                ("sun", Weekday::Sun, &days.sun),
            ];
            for (key, weekday, text) in named {
                if let Some(text) = text {
                    if let Err(error) = weekly.set(weekday, text) {
                        problems.push(problem(&format!("weekly.{key}"), error.to_string()));
                    }
                }
            }
        }
        let mut ranges = |key: &str, values: &[String]| -> Vec<DateRange> {
            values
                .iter()
                .filter_map(|value| match value.parse::<DateRange>() {
                    Ok(range) => Some(range),
                    Err(error) => {
                        problems.push(problem(key, error.to_string()));
                        None
                    }
                })
                .collect()
        };
        let school_holidays = ranges("school_holidays", &self.school_holidays);
        let closed: BTreeSet<NaiveDate> = ranges("closed", &self.closed)
            .into_iter()
            .flat_map(|range| {
                range
                    .first
                    .iter_days()
                    .take_while(move |day| *day <= range.last)
            })
            .collect();
        let mut targets = Vec::new();
        let mut priorities = HashSet::new();
        for target in &self.targets {
            let name = target.priority.trim();
            if name.is_empty() {
                problems.push(problem(
                    "targets",
                    "`priority` must not be empty".to_string(),
                ));
                continue;
            }
            if !priorities.insert(name.to_lowercase()) {
                problems.push(problem(
                    "targets",
                    format!("priority \"{name}\" appears more than once"),
                ));
            }
            if target.reaction.is_none() && target.resolution.is_none() {
                problems.push(problem(
                    "targets",
                    format!("priority \"{name}\" needs `reaction`, `resolution` or both"),
                ));
            }
            let mut time = |key: &str, value: &Option<String>| {
                value
                    .as_deref()
                    .and_then(|text| match parse_service_time(text) {
                        Ok(duration) => Some(duration),
                        Err(error) => {
                            problems.push(problem(
                                &format!("targets.{key}"),
                                format!("priority \"{name}\": {error}"),
                            ));
                            None
                        }
                    })
            };
            targets.push(PriorityTarget {
                priority: name.to_string(),
                reaction: time("reaction", &target.reaction),
                resolution: time("resolution", &target.resolution),
            });
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(ServiceLevel {
            calendar: ServiceCalendar {
                land,
                weekly,
                school_holidays,
                closed,
            },
            targets: ServiceTargets { targets },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use bestand_core::service_level::{service_duration, Land};
    use chrono::{Duration, NaiveDate, TimeZone, Utc};

    use crate::config::{Config, ConfigError};

    fn parse(service_hours: &str) -> Result<Config, ConfigError> {
        let text = format!(
            "[[authority]]\nslug = \"musterstadt\"\nname = \"Stadt Musterstadt\"\n\
             [authority.service_hours]\n{service_hours}"
        );
        Config::parse(&text, Path::new("/etc/bestand/config.toml"))
    }

    fn problems(service_hours: &str) -> String {
        match parse(service_hours) {
            Err(error) => error.to_string(),
            Ok(_) => panic!("accepted: {service_hours}"),
        }
    }

    #[test]
    fn a_full_table_becomes_the_calendar_and_targets() {
        let config = parse(
            r#"land = "NW"
weekly = { mon = "08:00-12:00, 13:00-16:00", tue = "08:00-16:00", fri = "08:00-13:00" }
school_holidays = ["2026-07-20..2026-09-01"]
closed = ["2026-12-24", "2026-12-28..2026-12-30"]
targets = [{ priority = "3 high", reaction = "2h", resolution = "8h" },
           { priority = "2 normal", resolution = "1h30m" }]
"#,
        )
        .unwrap();
        let level = config.service_level("musterstadt").unwrap();
        assert_eq!(level.calendar.land, Some(Land::NordrheinWestfalen));
        let day = |d| NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
        assert_eq!(
            level.calendar.closed.iter().copied().collect::<Vec<_>>(),
            [day(24), day(28), day(29), day(30)]
        );
        let high = level.targets.for_priority("3 HIGH").unwrap();
        assert_eq!(high.reaction, Some(Duration::hours(2)));
        let normal = level.targets.for_priority("2 normal").unwrap();
        assert_eq!(
            (normal.reaction, normal.resolution),
            (None, Some(Duration::minutes(90)))
        );
        // Mon 2026-06-15 11:00 to Wed 12:00 (UTC+2): Mon 11–12 and 13–16 = 4 h, Tue 8 h, Wed
        // not named, so closed: 12 h.
        let from = Utc.with_ymd_and_hms(2026, 6, 15, 9, 0, 0).unwrap();
        let to = Utc.with_ymd_and_hms(2026, 6, 17, 10, 0, 0).unwrap();
        assert_eq!(
            service_duration(&level.calendar, from, to),
            Duration::hours(12)
        );
    }

    #[test]
    fn without_weekly_the_service_sheet_applies_and_without_the_table_there_is_none() {
        let config = parse("land = \"BY\"\n").unwrap();
        let level = config.service_level("musterstadt").unwrap();
        assert_eq!(
            level.calendar,
            bestand_core::service_level::ServiceCalendar::service_sheet(Land::Bayern)
        );
        let text = "[[authority]]\nslug = \"a\"\nname = \"A\"\n";
        let config = Config::parse(text, Path::new("c.toml")).unwrap();
        assert_eq!(config.service_level("a"), None);
    }

    #[test]
    fn bad_values_are_named_with_key_and_value() {
        let table = "[authority.service_hours] of authority \"musterstadt\"";
        let message = problems("land = \"NRW\"\n");
        assert!(
            message.contains(&format!("{table}: key `land`: \"NRW\": is not a Land code")),
            "{message}"
        );
        let message = problems("land = \"NW\"\nweekly = { mon = \"8-16\" }\n");
        assert!(
            message.contains(&format!(
                "{table}: key `weekly.mon`: \"8-16\": \"8\" is not a time of day like \"08:00\""
            )),
            "{message}"
        );
        let message = problems("land = \"NW\"\nweekly = { tue = \"08:00-12:00, 13:00-25:00\" }\n");
        assert!(
            message.contains(
                "key `weekly.tue`: \"08:00-12:00, 13:00-25:00\": in \"13:00-25:00\": \
                 \"25:00\" is not a time of day"
            ),
            "{message}"
        );
        let message = problems("land = \"NW\"\nschool_holidays = [\"2026-09-01..2026-07-20\"]\n");
        assert!(
            message.contains("key `school_holidays`: \"2026-09-01..2026-07-20\": the last day"),
            "{message}"
        );
        let message = problems(
            "land = \"NW\"\ntargets = [{ priority = \"3 high\", reaction = \"2 hours\" }]\n",
        );
        assert!(
            message.contains("key `targets.reaction`: priority \"3 high\": \"2 hours\""),
            "{message}"
        );
        let message = problems(
            "land = \"NW\"\ntargets = [{ priority = \"high\", reaction = \"2h\" }, \
             { priority = \"High\", resolution = \"8h\" }, { priority = \"low\" }]\n",
        );
        assert!(
            message.contains("\"High\" appears more than once"),
            "{message}"
        );
        assert!(message.contains("\"low\" needs `reaction`"), "{message}");
        let message = problems("land = \"NW\"\nweekdays = {}\n");
        assert!(message.contains("weekdays"), "{message}");
    }
}
