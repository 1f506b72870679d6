//! The service-hours calendar: when the service desk counts time (a weekly schedule in German
//! local time, less the Land's public holidays, the configured school holidays and extra closed
//! days), and the service time between two instants.
//!
//! Service hours are wall-clock hours in Europe/Berlin, so each day's intervals are turned into
//! UTC instants with that day's offset: a ticket over a summer-time change counts the hours the
//! desk was really open. Public holidays come from the `holiday_de` crate (docs/service-levels.md
//! says which Land has which); school holidays differ per year and Land and are configuration.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::Europe::Berlin;
use holiday_de::GermanRegion;
use serde::{Deserialize, Serialize};

use super::ServiceLevelError;
use crate::clock::school_date;

const MINUTES_PER_DAY: u16 = 24 * 60;

/// A German federal state, by its ISO 3166-2 code (`NW` for Nordrhein-Westfalen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Land {
    BadenWuerttemberg,
    Bayern,
    Berlin,
    Brandenburg,
    Bremen,
    Hamburg,
    Hessen,
    MecklenburgVorpommern,
    Niedersachsen,
    NordrheinWestfalen,
    RheinlandPfalz,
    Saarland,
    Sachsen,
    SachsenAnhalt,
    SchleswigHolstein,
    Thueringen,
}

impl Land {
    pub const ALL: [Land; 16] = [
        Land::BadenWuerttemberg,
        Land::Bayern,
        Land::Berlin,
        Land::Brandenburg,
        Land::Bremen,
        Land::Hamburg,
        Land::Hessen,
        Land::MecklenburgVorpommern,
        Land::Niedersachsen,
        Land::NordrheinWestfalen,
        Land::RheinlandPfalz,
        Land::Saarland,
        Land::Sachsen,
        Land::SachsenAnhalt,
        Land::SchleswigHolstein,
        Land::Thueringen,
    ];

    /// The ISO 3166-2 code without the `DE-` prefix, as the configuration writes it.
    pub fn code(self) -> &'static str {
        match self {
            Land::BadenWuerttemberg => "BW",
            Land::Bayern => "BY",
            Land::Berlin => "BE",
            Land::Brandenburg => "BB",
            Land::Bremen => "HB",
            Land::Hamburg => "HH",
            Land::Hessen => "HE",
            Land::MecklenburgVorpommern => "MV",
            Land::Niedersachsen => "NI",
            Land::NordrheinWestfalen => "NW",
            Land::RheinlandPfalz => "RP",
            Land::Saarland => "SL",
            Land::Sachsen => "SN",
            Land::SachsenAnhalt => "ST",
            Land::SchleswigHolstein => "SH",
            Land::Thueringen => "TH",
        }
    }

    fn region(self) -> GermanRegion {
        match self {
            Land::BadenWuerttemberg => GermanRegion::BadenWuerttemberg,
            Land::Bayern => GermanRegion::Bayern,
            Land::Berlin => GermanRegion::Berlin,
            Land::Brandenburg => GermanRegion::Brandenburg,
            Land::Bremen => GermanRegion::Bremen,
            Land::Hamburg => GermanRegion::Hamburg,
            Land::Hessen => GermanRegion::Hessen,
            Land::MecklenburgVorpommern => GermanRegion::MechlenburgVorpommern,
            Land::Niedersachsen => GermanRegion::Niedersachsen,
            Land::NordrheinWestfalen => GermanRegion::NordrheinWestfalen,
            Land::RheinlandPfalz => GermanRegion::RheinlandPfalz,
            Land::Saarland => GermanRegion::Saarland,
            Land::Sachsen => GermanRegion::Sachsen,
            Land::SachsenAnhalt => GermanRegion::SachsenAnhalt,
            Land::SchleswigHolstein => GermanRegion::SchleswigHolstein,
            Land::Thueringen => GermanRegion::Thueringen,
        }
    }

    /// The Land's public holidays in `year`, by date, with their German names. Holidays that
    /// only some municipalities keep (Fronleichnam in parts of Sachsen and Thüringen, the
    /// Augsburger Friedensfest) are left out; Mariä Himmelfahrt counts for all of Bayern, where
    /// most municipalities keep it (docs/service-levels.md). Empty before 1995.
    pub fn public_holidays(self, year: i32) -> Vec<(NaiveDate, &'static str)> {
        self.region()
            .holiday_dates_in_year(year)
            .into_iter()
            .map(|(date, holiday)| (date, holiday.description()))
            .collect()
    }

    fn is_public_holiday(self, date: NaiveDate) -> bool {
        self.region().is_holiday(date)
    }
}

impl fmt::Display for Land {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Land {
    type Err = ServiceLevelError;

    fn from_str(text: &str) -> Result<Land, ServiceLevelError> {
        let code = text.trim();
        let code = code
            .strip_prefix("DE-")
            .or_else(|| code.strip_prefix("de-"))
            .unwrap_or(code);
        Land::ALL
            .into_iter()
            .find(|land| land.code().eq_ignore_ascii_case(code))
            .ok_or_else(|| {
                let codes: Vec<&str> = Land::ALL.iter().map(|land| land.code()).collect();
                ServiceLevelError::new(
                    text,
                    format!("is not a Land code; use one of {}", codes.join(", ")),
                )
            })
    }
}

impl TryFrom<String> for Land {
    type Error = ServiceLevelError;

    fn try_from(text: String) -> Result<Land, ServiceLevelError> {
        text.parse()
    }
}

impl From<Land> for String {
    fn from(land: Land) -> String {
        land.code().to_string()
    }
}

/// One stretch of service hours within a day, in local wall-clock minutes since midnight
/// (`end` may be 24:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceInterval {
    start: u16,
    end: u16,
}

impl ServiceInterval {
    /// From `HH:MM` times as minutes since midnight; `None` unless `start < end <= 24:00`.
    pub fn new(start_minutes: u16, end_minutes: u16) -> Option<ServiceInterval> {
        (start_minutes < end_minutes && end_minutes <= MINUTES_PER_DAY).then_some(ServiceInterval {
            start: start_minutes,
            end: end_minutes,
        })
    }

    pub fn minutes(self) -> u16 {
        self.end - self.start
    }
}

fn parse_clock(text: &str, whole: &str) -> Result<u16, ServiceLevelError> {
    let bad = || {
        ServiceLevelError::new(
            whole,
            format!("\"{text}\" is not a time of day like \"08:00\" (00:00 to 24:00)"),
        )
    };
    let (hours, minutes) = text.trim().split_once(':').ok_or_else(bad)?;
    let hours: u16 = hours.parse().map_err(|_| bad())?;
    let minutes: u16 = minutes.parse().map_err(|_| bad())?;
    if minutes >= 60 || hours > 24 || (hours == 24 && minutes > 0) {
        return Err(bad());
    }
    Ok(hours * 60 + minutes)
}

impl FromStr for ServiceInterval {
    type Err = ServiceLevelError;

    fn from_str(text: &str) -> Result<ServiceInterval, ServiceLevelError> {
        let (start, end) = text.split_once('-').ok_or_else(|| {
            ServiceLevelError::new(text, "is not a time range like \"08:00-16:00\"")
        })?;
        let start = parse_clock(start, text)?;
        let end = parse_clock(end, text)?;
        ServiceInterval::new(start, end)
            .ok_or_else(|| ServiceLevelError::new(text, "the end must be after the start"))
    }
}

impl TryFrom<String> for ServiceInterval {
    type Error = ServiceLevelError;

    fn try_from(text: String) -> Result<ServiceInterval, ServiceLevelError> {
        text.parse()
    }
}

impl fmt::Display for ServiceInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

impl From<ServiceInterval> for String {
    fn from(interval: ServiceInterval) -> String {
        interval.to_string()
    }
}

/// The service hours of each weekday, Monday first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeeklyHours {
    days: [Vec<ServiceInterval>; 7],
}

impl Default for WeeklyHours {
    /// The support concept's service sheet: Monday to Thursday 08:00–16:00, Friday 08:00–13:00.
    fn default() -> WeeklyHours {
        let day = |start: u16, end: u16| vec![ServiceInterval { start, end }];
        WeeklyHours {
            days: [
                day(8 * 60, 16 * 60),
                day(8 * 60, 16 * 60),
                day(8 * 60, 16 * 60),
                day(8 * 60, 16 * 60),
                day(8 * 60, 13 * 60),
                Vec::new(),
                Vec::new(),
            ],
        }
    }
}

impl WeeklyHours {
    /// No service at all; days are added with `set`.
    pub fn closed() -> WeeklyHours {
        WeeklyHours {
            days: Default::default(),
        }
    }

    /// Sets one weekday's hours from text like `"08:00-12:00, 13:00-16:00"` (empty or
    /// `"closed"` for none). Intervals must not overlap.
    pub fn set(&mut self, weekday: Weekday, text: &str) -> Result<(), ServiceLevelError> {
        let trimmed = text.trim();
        let mut intervals = Vec::new();
        if !(trimmed.is_empty() || trimmed.eq_ignore_ascii_case("closed")) {
            for part in trimmed.split(',') {
                intervals.push(part.trim().parse::<ServiceInterval>().map_err(|error| {
                    // Name the range that is wrong when the day has several.
                    match part.trim() == trimmed {
                        true => ServiceLevelError::new(text, error.reason),
                        false => ServiceLevelError::new(
                            text,
                            format!("in \"{}\": {}", error.value, error.reason),
                        ),
                    }
                })?);
            }
        }
        intervals.sort();
        if intervals.windows(2).any(|pair| pair[0].end > pair[1].start) {
            return Err(ServiceLevelError::new(text, "the time ranges overlap"));
        }
        self.days[weekday.num_days_from_monday() as usize] = intervals;
        Ok(())
    }

    pub fn day(&self, weekday: Weekday) -> &[ServiceInterval] {
        &self.days[weekday.num_days_from_monday() as usize]
    }
}

/// A range of calendar days, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DateRange {
    pub first: NaiveDate,
    pub last: NaiveDate,
}

impl DateRange {
    pub fn contains(&self, date: NaiveDate) -> bool {
        self.first <= date && date <= self.last
    }
}

impl FromStr for DateRange {
    type Err = ServiceLevelError;

    /// `"2026-07-20..2026-09-01"` (both days included) or one day `"2026-12-24"`.
    fn from_str(text: &str) -> Result<DateRange, ServiceLevelError> {
        let day = |part: &str| {
            NaiveDate::parse_from_str(part.trim(), "%Y-%m-%d").map_err(|_| {
                ServiceLevelError::new(
                    text,
                    format!("\"{}\" is not a date like \"2026-07-20\"", part.trim()),
                )
            })
        };
        let (first, last) = match text.split_once("..") {
            Some((first, last)) => (day(first)?, day(last)?),
            None => (day(text)?, day(text)?),
        };
        if last < first {
            return Err(ServiceLevelError::new(
                text,
                "the last day is before the first (write \"first..last\")",
            ));
        }
        Ok(DateRange { first, last })
    }
}

/// When the service desk counts time: a weekly schedule in Europe/Berlin local time, less the
/// Land's public holidays, the school holidays and the extra closed days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCalendar {
    /// Whose public holidays are closed days; `None` counts none.
    pub land: Option<Land>,
    pub weekly: WeeklyHours,
    pub school_holidays: Vec<DateRange>,
    pub closed: BTreeSet<NaiveDate>,
}

impl ServiceCalendar {
    /// The service sheet's hours with the Land's public holidays and nothing else closed.
    pub fn service_sheet(land: Land) -> ServiceCalendar {
        ServiceCalendar {
            land: Some(land),
            weekly: WeeklyHours::default(),
            school_holidays: Vec::new(),
            closed: BTreeSet::new(),
        }
    }

    /// Whether the desk is closed all day on `date` (a public holiday, a school holiday or an
    /// extra closed day); weekdays without hours are not "closed" in this sense.
    pub fn is_closed(&self, date: NaiveDate) -> bool {
        self.closed.contains(&date)
            || self
                .school_holidays
                .iter()
                .any(|range| range.contains(date))
            || self.land.is_some_and(|land| land.is_public_holiday(date))
    }

    /// The service intervals of one local day as UTC instants, in order.
    fn day_intervals(
        &self,
        date: NaiveDate,
    ) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        let open: &[ServiceInterval] = if self.is_closed(date) {
            &[]
        } else {
            self.weekly.day(date.weekday())
        };
        open.iter().map(move |interval| {
            (
                local_instant(date, interval.start),
                local_instant(date, interval.end),
            )
        })
    }
}

/// The instant of `minutes` past local midnight on `date` in Europe/Berlin. A wall-clock time
/// that happens twice (the autumn change) is its first occurrence; one that does not happen
/// (inside the spring gap) is the first instant after the gap.
fn local_instant(date: NaiveDate, minutes: u16) -> DateTime<Utc> {
    let midnight = date.and_time(chrono::NaiveTime::MIN);
    let mut wall = midnight + Duration::minutes(i64::from(minutes));
    // A gap is at most two hours in any zone history; step over it a minute at a time.
    for _ in 0..=180 {
        match Berlin.from_local_datetime(&wall) {
            LocalResult::Single(at) => return at.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => return first.with_timezone(&Utc),
            LocalResult::None => wall += Duration::minutes(1),
        }
    }
    // Unreachable for Europe/Berlin; fall back to the wall time read as UTC+1.
    Utc.from_utc_datetime(&(wall - Duration::hours(1)))
}

/// The service time between `from` and `to`: the part of the span that falls into the
/// calendar's service hours. A span that ends before it starts (a first response recorded
/// before the ticket's creation, clocks of two systems apart) counts as zero rather than
/// failing a whole report. Steps one local day at a time, so a ticket open for a year costs
/// about 366 small steps; the figures use `ServiceTimeline`, which answers in O(log n).
pub fn service_duration(
    calendar: &ServiceCalendar,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Duration {
    if to <= from {
        return Duration::zero();
    }
    let mut total = Duration::zero();
    let mut date = school_date(from);
    let last = school_date(to);
    while date <= last {
        for (start, end) in calendar.day_intervals(date) {
            let overlap = end.min(to) - start.max(from);
            if overlap > Duration::zero() {
                total += overlap;
            }
        }
        match date.succ_opt() {
            Some(next) => date = next,
            None => break,
        }
    }
    total
}

/// A calendar's service intervals over a range of days, laid out once with running totals, so
/// that the service time between any two instants in the range is two binary searches. The
/// figures over hundreds of thousands of tickets use it; outside its range it falls back to
/// `service_duration`.
#[derive(Debug, Clone)]
pub struct ServiceTimeline {
    calendar: ServiceCalendar,
    /// Service intervals as (start, end) in UTC milliseconds, in order, not overlapping.
    intervals: Vec<(i64, i64)>,
    /// Service milliseconds before each interval.
    before: Vec<i64>,
    covers_from: i64,
    covers_to: i64,
}

impl ServiceTimeline {
    /// Lays out the local days `first..=last`.
    pub fn new(calendar: &ServiceCalendar, first: NaiveDate, last: NaiveDate) -> ServiceTimeline {
        let mut intervals = Vec::new();
        let mut before = Vec::new();
        let mut running = 0;
        let mut date = first;
        while date <= last {
            for (start, end) in calendar.day_intervals(date) {
                let (start, end) = (start.timestamp_millis(), end.timestamp_millis());
                intervals.push((start, end));
                before.push(running);
                running += end - start;
            }
            match date.succ_opt() {
                Some(next) => date = next,
                None => break,
            }
        }
        let covers_from = local_instant(first, 0).timestamp_millis();
        let covers_to = local_instant(last, MINUTES_PER_DAY).timestamp_millis();
        ServiceTimeline {
            calendar: calendar.clone(),
            intervals,
            before,
            covers_from,
            covers_to,
        }
    }

    /// The service milliseconds from the start of the range up to `at` (inside the range).
    fn elapsed(&self, at: i64) -> i64 {
        let after = self.intervals.partition_point(|&(start, _)| start <= at);
        match after.checked_sub(1) {
            None => 0,
            Some(index) => {
                let (start, end) = self.intervals[index];
                self.before[index] + at.min(end) - start
            }
        }
    }

    /// The same as `service_duration(calendar, from, to)`.
    pub fn duration(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        Duration::milliseconds(self.duration_millis(from.timestamp_millis(), to.timestamp_millis()))
    }

    /// `duration` in milliseconds between UTC millisecond timestamps.
    pub fn duration_millis(&self, from: i64, to: i64) -> i64 {
        if to <= from {
            return 0;
        }
        if from < self.covers_from || to > self.covers_to {
            let instant = |millis| DateTime::<Utc>::from_timestamp_millis(millis);
            return match (instant(from), instant(to)) {
                (Some(from), Some(to)) => {
                    service_duration(&self.calendar, from, to).num_milliseconds()
                }
                _ => 0,
            };
        }
        self.elapsed(to) - self.elapsed(from)
    }
}

/// Reads a service-time target: `"2h"`, `"90m"`, `"1h30m"` (service hours and minutes).
pub fn parse_service_time(text: &str) -> Result<Duration, ServiceLevelError> {
    let bad = || {
        ServiceLevelError::new(
            text,
            "is not a service time like \"2h\", \"90m\" or \"1h30m\"",
        )
    };
    let trimmed = text.trim();
    let (hours, rest) = match trimmed.split_once('h') {
        Some((hours, rest)) => (Some(hours), rest),
        None => (None, trimmed),
    };
    let minutes = match rest {
        "" => None,
        rest => Some(rest.strip_suffix('m').ok_or_else(bad)?),
    };
    if hours.is_none() && minutes.is_none() {
        return Err(bad());
    }
    let number = |part: Option<&str>| -> Result<i64, ServiceLevelError> {
        match part {
            None => Ok(0),
            Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                digits.parse().map_err(|_| bad())
            }
            Some(_) => Err(bad()),
        }
    };
    let total = number(hours)? * 60 + number(minutes)?;
    if total == 0 {
        return Err(ServiceLevelError::new(
            text,
            "a target must be more than zero",
        ));
    }
    Ok(Duration::minutes(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service_level::berlin;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn hours(duration: Duration) -> f64 {
        duration.num_seconds() as f64 / 3600.0
    }

    /// Checks `service_duration` and a timeline over the years around the case agree.
    fn service_hours(calendar: &ServiceCalendar, from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
        let direct = service_duration(calendar, from, to);
        let timeline = ServiceTimeline::new(calendar, day(2024, 1, 1), day(2028, 12, 31));
        assert_eq!(timeline.duration(from, to), direct, "{from} .. {to}");
        hours(direct)
    }

    fn nrw() -> ServiceCalendar {
        ServiceCalendar::service_sheet(Land::NordrheinWestfalen)
    }

    #[test]
    fn friday_afternoon_to_monday_morning_is_one_and_a_half_service_hours() {
        // The example. Fri 2026-06-12 12:30 to Mon 2026-06-15 09:00:
        // Fri 12:30–13:00 = 0.5 h, Sat and Sun closed, Mon 08:00–09:00 = 1 h: 1.5 h.
        let from = berlin(2026, 6, 12, 12, 30);
        let to = berlin(2026, 6, 15, 9, 0);
        assert_eq!(service_hours(&nrw(), from, to), 1.5);
    }

    #[test]
    fn a_ticket_opened_on_saturday_counts_from_monday_opening() {
        // Sat 2026-06-13 10:00 to Mon 2026-06-15 08:30: only Mon 08:00–08:30 = 0.5 h.
        let from = berlin(2026, 6, 13, 10, 0);
        let to = berlin(2026, 6, 15, 8, 30);
        assert_eq!(service_hours(&nrw(), from, to), 0.5);
    }

    #[test]
    fn service_hours_follow_the_local_clock_across_the_spring_change() {
        // Thu 2026-03-26 15:00 CET (14:00 UTC) to Mon 2026-03-30 09:00 CEST (07:00 UTC); the
        // clocks went forward on Sunday 29 March. Thu 15:00–16:00 = 1 h, Fri 08:00–13:00 = 5 h,
        // Mon 08:00–09:00 CEST = 1 h: 7 h. A fixed UTC+1 would open Monday at 07:00 UTC+1 =
        // 08:00 CEST and count 0 h on Monday.
        let from = utc(2026, 3, 26, 14, 0);
        let to = utc(2026, 3, 30, 7, 0);
        assert_eq!(from, berlin(2026, 3, 26, 15, 0));
        assert_eq!(to, berlin(2026, 3, 30, 9, 0));
        assert_eq!(service_hours(&nrw(), from, to), 7.0);
    }

    #[test]
    fn service_hours_follow_the_local_clock_across_the_autumn_change() {
        // Fri 2026-10-23 12:00 CEST (10:00 UTC) to Mon 2026-10-26 09:00 CET (08:00 UTC); the
        // clocks went back on Sunday 25 October. Fri 12:00–13:00 = 1 h, Mon 08:00–09:00 CET
        // (07:00–08:00 UTC) = 1 h: 2 h.
        let from = utc(2026, 10, 23, 10, 0);
        let to = utc(2026, 10, 26, 8, 0);
        assert_eq!(service_hours(&nrw(), from, to), 2.0);
    }

    #[test]
    fn the_change_nights_count_real_elapsed_time() {
        // A desk open around the clock on Sundays. Spring: 01:30 CET (00:30 UTC) to 03:30 CEST
        // (01:30 UTC) on 2026-03-29 is one real hour, though the wall clock moved two.
        let mut calendar = nrw();
        calendar.weekly.set(Weekday::Sun, "00:00-24:00").unwrap();
        let from = utc(2026, 3, 29, 0, 30);
        let to = utc(2026, 3, 29, 1, 30);
        assert_eq!(service_hours(&calendar, from, to), 1.0);
        // The whole spring Sunday has 23 hours, the autumn Sunday 25.
        let spring = service_duration(&calendar, utc(2026, 3, 28, 0, 0), utc(2026, 3, 30, 0, 0));
        assert_eq!(hours(spring), 23.0);
        let autumn = service_duration(&calendar, utc(2026, 10, 24, 0, 0), utc(2026, 10, 26, 0, 0));
        assert_eq!(hours(autumn), 25.0);
        // Autumn: 01:30 CEST (23:30 UTC on the 24th) to 03:30 CET (02:30 UTC): the hour
        // 02:00–03:00 happens twice, so three real hours.
        let from = utc(2026, 10, 24, 23, 30);
        let to = utc(2026, 10, 25, 2, 30);
        assert_eq!(service_hours(&calendar, from, to), 3.0);
    }

    #[test]
    fn public_holidays_are_closed() {
        // Tag der Deutschen Einheit, Fri 2025-10-03: Thu 2025-10-02 15:00 to Mon 2025-10-06
        // 09:00 is Thu 15:00–16:00 = 1 h + Mon 08:00–09:00 = 1 h: 2 h (7 h with Friday open).
        let from = berlin(2025, 10, 2, 15, 0);
        let to = berlin(2025, 10, 6, 9, 0);
        assert_eq!(service_hours(&nrw(), from, to), 2.0);
        // Karfreitag Fri 2026-04-03 and Ostermontag Mon 2026-04-06: Thu 2026-04-02 15:00 to
        // Tue 2026-04-07 09:00 is Thu 1 h + Tue 08:00–09:00 1 h: 2 h.
        let from = berlin(2026, 4, 2, 15, 0);
        let to = berlin(2026, 4, 7, 9, 0);
        assert_eq!(service_hours(&nrw(), from, to), 2.0);
    }

    #[test]
    fn fronleichnam_is_closed_in_nrw_but_not_in_niedersachsen() {
        // Easter 2026 is 5 April, Fronleichnam 60 days later: Thu 2026-06-04.
        // Wed 2026-06-03 15:00 to Fri 2026-06-05 09:00:
        // NW: Wed 1 h + Thu closed + Fri 1 h = 2 h; NI: Wed 1 h + Thu 8 h + Fri 1 h = 10 h.
        let from = berlin(2026, 6, 3, 15, 0);
        let to = berlin(2026, 6, 5, 9, 0);
        assert_eq!(service_hours(&nrw(), from, to), 2.0);
        let lower_saxony = ServiceCalendar::service_sheet(Land::Niedersachsen);
        assert_eq!(service_hours(&lower_saxony, from, to), 10.0);
    }

    #[test]
    fn school_holidays_and_extra_days_are_closed() {
        // Closed Mon 2026-07-20 to Fri 2026-07-24 (school holidays) and Mon 2026-07-27
        // (extra closed day): Fri 2026-07-17 12:00 to Tue 2026-07-28 09:00 is Fri 12:00–13:00
        // = 1 h + Tue 08:00–09:00 = 1 h: 2 h. Without them: 1 + 4×8 + 5 + 8 + 1 = 47 h.
        let from = berlin(2026, 7, 17, 12, 0);
        let to = berlin(2026, 7, 28, 9, 0);
        assert_eq!(service_hours(&nrw(), from, to), 47.0);
        let mut calendar = nrw();
        calendar
            .school_holidays
            .push("2026-07-20..2026-07-24".parse().unwrap());
        calendar.closed.insert(day(2026, 7, 27));
        assert_eq!(service_hours(&calendar, from, to), 2.0);
    }

    #[test]
    fn spans_within_one_interval_zero_and_backwards() {
        // Tue 2026-06-16 09:15 to 11:45 inside 08:00–16:00: 2.5 h.
        let from = berlin(2026, 6, 16, 9, 15);
        let to = berlin(2026, 6, 16, 11, 45);
        assert_eq!(service_hours(&nrw(), from, to), 2.5);
        assert_eq!(service_hours(&nrw(), from, from), 0.0);
        // Backwards spans count zero (documented choice), in both implementations.
        assert_eq!(service_hours(&nrw(), to, from), 0.0);
    }

    #[test]
    fn split_days_and_a_year_long_ticket() {
        // Mon 08:00–12:00 and 13:00–16:00 = 7 h a day; Mon 2026-06-15 11:00 to 14:00 = 1 + 1 h.
        let mut calendar = nrw();
        calendar
            .weekly
            .set(Weekday::Mon, "08:00-12:00, 13:00-16:00")
            .unwrap();
        let from = berlin(2026, 6, 15, 11, 0);
        let to = berlin(2026, 6, 15, 14, 0);
        assert_eq!(service_hours(&calendar, from, to), 2.0);
        // A whole year, 2027 in NRW, service sheet: 52 weeks of 37 h (4×8 + 5) plus Fri 31 Dec
        // (the 53rd Friday) 5 h = 1929 h; less the holidays on weekdays: Neujahr Fri 5,
        // Karfreitag Fri 26.3. 5, Ostermontag Mon 29.3. 8, 1. Mai Sat 0, Himmelfahrt Thu 6.5. 8,
        // Pfingstmontag Mon 17.5. 8, Fronleichnam Thu 27.5. 8, 3.10. Sun 0, Allerheiligen Mon 8,
        // 25.12. Sat 0, 26.12. Sun 0: 50 h. 1929 − 50 = 1879 h.
        let year = service_hours(&nrw(), berlin(2027, 1, 1, 0, 0), berlin(2028, 1, 1, 0, 0));
        assert_eq!(year, 1879.0);
    }

    #[test]
    fn holidays_per_land() {
        let names = |land: Land, year| -> Vec<(NaiveDate, &str)> { land.public_holidays(year) };
        let has =
            |land: Land, date: NaiveDate| names(land, date.year()).iter().any(|h| h.0 == date);
        // Easter Sunday 2026 is 5 April (Gauss): Karfreitag 3.4., Ostermontag 6.4.,
        // Himmelfahrt 14.5. (+39), Pfingstmontag 25.5. (+50), Fronleichnam 4.6. (+60).
        for date in [
            day(2026, 4, 3),
            day(2026, 4, 6),
            day(2026, 5, 14),
            day(2026, 5, 25),
        ] {
            assert!(Land::ALL.iter().all(|&land| has(land, date)), "{date}");
        }
        assert!(has(Land::NordrheinWestfalen, day(2026, 6, 4)));
        assert!(!has(Land::Niedersachsen, day(2026, 6, 4)));
        // Easter 2027 is 28 March: Karfreitag 26 March.
        assert!(has(Land::Hessen, day(2027, 3, 26)));
        // Buß- und Bettag, the Wednesday before 23 November: 18.11.2026, only in Sachsen.
        assert!(has(Land::Sachsen, day(2026, 11, 18)));
        assert!(!has(Land::Thueringen, day(2026, 11, 18)));
        // Weltkindertag 20.9. in Thüringen; Frauentag 8.3. in Berlin and MV (since 2023).
        assert!(has(Land::Thueringen, day(2026, 9, 20)));
        assert!(has(Land::Berlin, day(2027, 3, 8)));
        assert!(has(Land::MecklenburgVorpommern, day(2027, 3, 8)));
        assert!(!has(Land::Hamburg, day(2027, 3, 8)));
        // Reformationstag in the north and east, Allerheiligen in the south and west.
        assert!(has(Land::Niedersachsen, day(2026, 10, 31)));
        assert!(!has(Land::NordrheinWestfalen, day(2026, 10, 31)));
        assert!(has(Land::NordrheinWestfalen, day(2026, 11, 1)));
        // Mariä Himmelfahrt in Saarland and (all of) Bayern.
        assert!(has(Land::Saarland, day(2026, 8, 15)));
        assert!(has(Land::Bayern, day(2026, 8, 15)));
        assert!(!has(Land::BadenWuerttemberg, day(2026, 8, 15)));
    }

    #[test]
    fn configuration_values_are_read_or_refused_with_the_value() {
        assert_eq!("nw".parse::<Land>().unwrap(), Land::NordrheinWestfalen);
        assert_eq!("DE-BY".parse::<Land>().unwrap(), Land::Bayern);
        let error = "NRW".parse::<Land>().unwrap_err();
        assert!(
            error.to_string().starts_with("\"NRW\": is not a Land code"),
            "{error}"
        );

        let interval: ServiceInterval = "08:00-16:00".parse().unwrap();
        assert_eq!(interval.minutes(), 480);
        assert_eq!(interval.to_string(), "08:00-16:00");
        assert!("16:00-08:00".parse::<ServiceInterval>().is_err());
        assert!("8-16".parse::<ServiceInterval>().is_err());
        assert!("08:00-24:30".parse::<ServiceInterval>().is_err());
        let mut weekly = WeeklyHours::closed();
        let error = weekly
            .set(Weekday::Mon, "08:00-12:00, 11:00-16:00")
            .unwrap_err();
        assert!(error.reason.contains("overlap"), "{error}");

        let range: DateRange = "2026-07-20..2026-09-01".parse().unwrap();
        assert!(range.contains(day(2026, 9, 1)) && !range.contains(day(2026, 9, 2)));
        assert!("2026-09-01..2026-07-20".parse::<DateRange>().is_err());
        assert!("20.07.2026".parse::<DateRange>().is_err());

        assert_eq!(parse_service_time("2h").unwrap(), Duration::hours(2));
        assert_eq!(parse_service_time("90m").unwrap(), Duration::minutes(90));
        assert_eq!(parse_service_time("1h30m").unwrap(), Duration::minutes(90));
        for bad in ["", "2", "h", "2 hours", "-2h", "0h", "1.5h"] {
            assert!(parse_service_time(bad).is_err(), "{bad}");
        }
    }
}
