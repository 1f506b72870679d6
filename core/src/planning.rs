//! The arithmetic of replacement planning (issue 17): expected life per category, straight-line
//! depreciation and net book value, and the replacement forecast per budget year.
//!
//! Pure functions over plain values, so that the reports that read devices from the store, the
//! CLI, the XLSX and the pages all compute the same figures, and tests can check them against
//! values worked out by hand.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use crate::model::DeviceCategory;

/// Expected life in years when neither the device nor the model catalogue names one: the
/// usual municipal useful lives for school IT (tablets and laptops five years, desktops six,
/// displays eight, printers six).
pub fn default_life_years(category: DeviceCategory) -> u32 {
    match category {
        DeviceCategory::Tablet | DeviceCategory::Laptop => 5,
        DeviceCategory::Desktop | DeviceCategory::Printer => 6,
        DeviceCategory::Display => 8,
        DeviceCategory::Other => 5,
    }
}

/// The net book value at `at` of an asset bought on `purchased` for `price`, written off
/// straight-line over `life_years`, month by month from the month of purchase (which counts
/// whole, as municipal accounting does it: pro rata temporis by month). Before the purchase it
/// is the price; after its life, zero. Rounded to cents.
pub fn net_book_value(
    price: Decimal,
    purchased: NaiveDate,
    life_years: u32,
    at: NaiveDate,
) -> Decimal {
    if at < purchased {
        return cents(price);
    }
    let life_months = i64::from(life_years) * 12;
    if life_months == 0 {
        return Decimal::ZERO;
    }
    let used = (month_index(at) - month_index(purchased) + 1).min(life_months);
    let remaining = price - price * Decimal::from(used) / Decimal::from(life_months);
    cents(remaining.max(Decimal::ZERO))
}

/// Money rounded to the cent the commercial way (*kaufmännisch*: a half cent rounds away from
/// zero), as municipal accounting and every invoice do; `round_dp` would round half to even.
pub fn cents(amount: Decimal) -> Decimal {
    amount.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
}

fn month_index(date: NaiveDate) -> i64 {
    i64::from(date.year()) * 12 + i64::from(date.month0())
}

/// The budget year in which an asset bought on `purchased` reaches the end of its life.
pub fn end_of_life_year(purchased: NaiveDate, life_years: u32) -> i32 {
    purchased
        .year()
        .saturating_add(i32::try_from(life_years).unwrap_or(i32::MAX))
}

/// One device as the forecast needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedDevice {
    pub school: Option<String>,
    pub category: DeviceCategory,
    /// The budget year its life ends (`end_of_life_year`).
    pub due_year: i32,
    /// What a replacement costs in `ForecastOptions::price_year` (the catalogue price).
    pub replacement_price: Decimal,
}

/// Devices of one school and category that reach the end of their life in one year at one
/// replacement price: what the store aggregates a fleet into, so that a million devices are a
/// few thousand cohorts by the time they reach the forecast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cohort {
    pub school: Option<String>,
    pub category: DeviceCategory,
    pub due_year: i32,
    /// None: neither the catalogue nor the purchase names a price; counted, never costed as 0.
    pub replacement_price: Option<Decimal>,
    pub devices: u32,
    /// Replace in the first year even when the life ends later: the cohort's devices cause
    /// more tickets than the threshold allows (`reports replacement --early-by-tickets`).
    pub early: bool,
}

/// Devices a school lacks against its target equipment (growth, not replacement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrowthNeed {
    pub school: Option<String>,
    pub category: DeviceCategory,
    pub devices: u32,
    /// What one such device costs in the price year; None when nothing names a price.
    pub price: Option<Decimal>,
}

/// How to forecast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForecastOptions {
    pub first_year: i32,
    pub last_year: i32,
    /// The year the replacement prices are quoted in.
    pub price_year: i32,
    /// Yearly price increase as a fraction (0.02 for 2 %), compounded from `price_year`.
    pub yearly_increase: Decimal,
    /// Spread each cohort over two budget years: the later half of the devices due in a year
    /// is replaced in the next one, so a peak (a whole DigitalPakt delivery) does not land in
    /// one budget.
    pub smooth: bool,
    /// Spread growth evenly over every year of the range (the remainder in the earliest
    /// years) instead of buying it all in the first year.
    pub spread_growth: bool,
}

/// Why devices are bought: to replace devices at the end of their life, to replace them before
/// it because they cause too many tickets, or to reach the target equipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    Replacement,
    EarlyReplacement,
    Growth,
}

impl LineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LineKind::Replacement => "replacement",
            LineKind::EarlyReplacement => "early_replacement",
            LineKind::Growth => "growth",
        }
    }
}

/// The purchases of one budget year, school, category and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForecastLine {
    pub year: i32,
    pub school: Option<String>,
    pub category: DeviceCategory,
    pub kind: LineKind,
    pub devices: u32,
    /// The cost of the devices with a price, at the year's prices.
    pub cost: Decimal,
    /// Of `devices`, those without any price: `cost` does not include them.
    pub devices_without_price: u32,
}

/// The replacement forecast: per budget year in the options' range, school and category, how
/// many devices are replaced and what that costs at the year's prices. Devices already past
/// their life count into the first year; devices due after the range are left out.
pub fn forecast(devices: &[PlannedDevice], options: &ForecastOptions) -> Vec<ForecastLine> {
    let cohorts: Vec<Cohort> = devices
        .iter()
        .map(|device| Cohort {
            school: device.school.clone(),
            category: device.category,
            due_year: device.due_year,
            replacement_price: Some(device.replacement_price),
            devices: 1,
            early: false,
        })
        .collect();
    forecast_cohorts(&cohorts, &[], options)
}

type LineKey = (i32, Option<String>, DeviceCategory, LineKind);

/// The forecast over cohorts, with growth lines beside the replacements.
///
/// A cohort marked `early` whose life ends after the first year is replaced in the first year,
/// on lines of their own (`EarlyReplacement`); one due by then is an ordinary replacement.
///
/// Smoothing works per budget year, school, category and kind: of the devices due there
/// (overdue ones counted into the first year), the later half moves into the next year. "Later" is by
/// the year their life ended, then by price (no price first), the order `smoothed_order`
/// gives, so that a list of the devices behind each line can follow the same split.
pub fn forecast_cohorts(
    cohorts: &[Cohort],
    growth: &[GrowthNeed],
    options: &ForecastOptions,
) -> Vec<ForecastLine> {
    let mut groups: BTreeMap<LineKey, Vec<&Cohort>> = BTreeMap::new();
    for cohort in cohorts.iter().filter(|c| c.devices > 0) {
        let (year, kind) = planned_year(cohort, options);
        if year > options.last_year {
            continue;
        }
        groups
            .entry((year, cohort.school.clone(), cohort.category, kind))
            .or_default()
            .push(cohort);
    }
    let mut lines: BTreeMap<LineKey, (u32, Decimal, u32)> = BTreeMap::new();
    let mut add = |key: LineKey, devices: u32, price: Option<Decimal>| {
        if devices == 0 || key.0 > options.last_year {
            return;
        }
        let factor = price_factor(options, key.0);
        let line = lines.entry(key).or_insert((0, Decimal::ZERO, 0));
        line.0 += devices;
        match price {
            Some(price) => line.1 += price * factor * Decimal::from(devices),
            None => line.2 += devices,
        }
    };
    for ((year, school, category, kind), mut members) in groups {
        members.sort_by(|a, b| smoothed_order(a, b));
        let total: u32 = members.iter().map(|c| c.devices).sum();
        // The first `stay` devices in that order are replaced in `year`, the rest a year later.
        let mut stay = if options.smooth {
            total - total / 2
        } else {
            total
        };
        for cohort in members {
            let now = cohort.devices.min(stay);
            stay -= now;
            let key = |year| (year, school.clone(), category, kind);
            add(key(year), now, cohort.replacement_price);
            add(
                key(year + 1),
                cohort.devices - now,
                cohort.replacement_price,
            );
        }
    }
    let years = u32::try_from(options.last_year - options.first_year + 1).unwrap_or(1);
    for need in growth {
        let key = |year| (year, need.school.clone(), need.category, LineKind::Growth);
        if options.spread_growth {
            for (offset, devices) in spread(need.devices, years).into_iter().enumerate() {
                let year = options.first_year + i32::try_from(offset).unwrap_or(0);
                add(key(year), devices, need.price);
            }
        } else {
            add(key(options.first_year), need.devices, need.price);
        }
    }
    lines
        .into_iter()
        .map(
            |((year, school, category, kind), (devices, cost, without))| ForecastLine {
                year,
                school,
                category,
                kind,
                devices,
                cost: cents(cost),
                devices_without_price: without,
            },
        )
        .collect()
}

/// The budget year a cohort is replaced in before smoothing, and why: at the end of its life
/// (overdue in the first year), or in the first year when marked early and due later.
pub fn planned_year(cohort: &Cohort, options: &ForecastOptions) -> (i32, LineKind) {
    if cohort.early && cohort.due_year > options.first_year {
        (options.first_year, LineKind::EarlyReplacement)
    } else {
        (
            cohort.due_year.max(options.first_year),
            LineKind::Replacement,
        )
    }
}

/// Whole years from `from` to `to` as PostgreSQL's `extract(year from age(to, from))` counts
/// them (negative when `to` is earlier), so ages computed here and in SQL agree.
pub fn whole_years(from: NaiveDate, to: NaiveDate) -> i32 {
    if to < from {
        return -whole_years(to, from);
    }
    let mut years = to.year() - from.year();
    if (to.month(), to.day()) < (from.month(), from.day()) {
        years -= 1;
    }
    years
}

/// The order of smoothing inside one budget year, school and category: earlier end of life
/// first, then cheaper (no price first). The devices at the end of it move a year.
pub fn smoothed_order(a: &Cohort, b: &Cohort) -> std::cmp::Ordering {
    (a.due_year, a.replacement_price).cmp(&(b.due_year, b.replacement_price))
}

/// `devices` over `years` as evenly as whole devices allow, the remainder in the first years.
pub fn spread(devices: u32, years: u32) -> Vec<u32> {
    let years = years.max(1);
    (0..years)
        .map(|year| devices / years + u32::from(year < devices % years))
        .collect()
}

/// (1 + increase) to the power of the years from the price year to `year` (never below 1).
pub fn price_factor(options: &ForecastOptions, year: i32) -> Decimal {
    let years = (year - options.price_year).max(0);
    (0..years).fold(Decimal::ONE, |factor, _| {
        factor * (Decimal::ONE + options.yearly_increase)
    })
}

/// Target devices from a target per pupil or per class room, rounded up to whole devices.
pub fn target_devices(
    pupils: u32,
    per_pupil: Option<Decimal>,
    class_rooms: Option<u32>,
    per_room: Option<Decimal>,
) -> u32 {
    let wanted = match (per_pupil, per_room) {
        (Some(per_pupil), _) => Decimal::from(pupils) * per_pupil,
        (None, Some(per_room)) => Decimal::from(class_rooms.unwrap_or(0)) * per_room,
        (None, None) => Decimal::ZERO,
    };
    wanted.ceil().to_u32().unwrap_or(u32::MAX)
}

/// School levels of the cost split (Hameln-Pyrmont: primary, lower secondary, upper secondary
/// and vocational).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Primary,
    LowerSecondary,
    UpperSecondary,
    Vocational,
}

impl Level {
    pub const ALL: [Level; 4] = [
        Level::Primary,
        Level::LowerSecondary,
        Level::UpperSecondary,
        Level::Vocational,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Primary => "primary",
            Level::LowerSecondary => "lower_secondary",
            Level::UpperSecondary => "upper_secondary",
            Level::Vocational => "vocational",
        }
    }

    pub fn parse(text: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|level| level.as_str() == text)
    }
}

/// The level of a pupil of a school of type `school_type` in class `class_name`, for schools
/// without entered pupil numbers. Gymnasium and Gesamtschule teach both secondary levels: the
/// class's grade decides (5 to 10 lower, 11 to 13 or EF, Q1, Q2 upper), and a class name that
/// says neither counts as lower secondary, the larger part of such schools. Förderschulen count
/// as lower secondary; `other` schools too, for want of anything better (docs/reports.md).
pub fn pupil_level(school_type: crate::model::SchoolType, class_name: Option<&str>) -> Level {
    use crate::model::SchoolType as T;
    match school_type {
        T::Grundschule => Level::Primary,
        T::Berufsschule => Level::Vocational,
        T::Gymnasium | T::Gesamtschule => {
            let class = class_name.unwrap_or("").trim().to_ascii_uppercase();
            let digits: String = class.chars().take_while(char::is_ascii_digit).collect();
            match digits.parse::<u32>() {
                Ok(11..=13) => Level::UpperSecondary,
                Ok(_) => Level::LowerSecondary,
                Err(_) if ["EF", "Q1", "Q2"].iter().any(|p| class.starts_with(p)) => {
                    Level::UpperSecondary
                }
                Err(_) => Level::LowerSecondary,
            }
        }
        T::Hauptschule | T::Realschule | T::Sekundarschule | T::Foerderschule | T::Other => {
            Level::LowerSecondary
        }
    }
}

/// Splits `amount` in proportion to `weights`, rounded to cents so that the parts add up to
/// exactly the amount: every part gets its share rounded down to the cent, and the cents left
/// over go one each to the parts with the largest remainders (ties: the earlier part). All
/// weights zero: nothing can be split, every part is zero.
pub fn split_largest_remainder(amount: Decimal, weights: &[Decimal]) -> Vec<Decimal> {
    let total: Decimal = weights.iter().copied().sum();
    if total <= Decimal::ZERO {
        return vec![Decimal::ZERO; weights.len()];
    }
    let in_cents = (amount * Decimal::from(100)).round();
    let exact: Vec<Decimal> = weights.iter().map(|w| in_cents * *w / total).collect();
    let mut parts: Vec<Decimal> = exact.iter().map(|e| e.floor()).collect();
    let left = in_cents - parts.iter().copied().sum::<Decimal>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|a, b| {
        let ra = exact[*a] - parts[*a];
        let rb = exact[*b] - parts[*b];
        rb.cmp(&ra).then(a.cmp(b))
    });
    let left = left.to_usize().unwrap_or(0);
    for index in order.into_iter().take(left) {
        parts[index] += Decimal::ONE;
    }
    parts
        .into_iter()
        .map(|p| cents(p / Decimal::from(100)))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn euro(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    #[test]
    fn straight_line_counts_the_month_of_purchase_whole() {
        // 600.00 over 5 years is 10.00 a month. Bought 15 March 2024: March counts whole.
        let bought = day(2024, 3, 15);
        assert_eq!(
            net_book_value(euro("600"), bought, 5, day(2024, 3, 31)),
            euro("590.00")
        );
        // End of 2024: March to December, 10 months.
        assert_eq!(
            net_book_value(euro("600"), bought, 5, day(2024, 12, 31)),
            euro("500.00")
        );
        // 31 December 2026: 34 months.
        assert_eq!(
            net_book_value(euro("600"), bought, 5, day(2026, 12, 31)),
            euro("260.00")
        );
        // The 60th month is February 2029; after it nothing is left, and never less.
        assert_eq!(
            net_book_value(euro("600"), bought, 5, day(2029, 2, 1)),
            euro("0.00")
        );
        assert_eq!(
            net_book_value(euro("600"), bought, 5, day(2031, 1, 1)),
            euro("0.00")
        );
        // Before the purchase the full price.
        assert_eq!(
            net_book_value(euro("600"), bought, 5, day(2024, 1, 1)),
            euro("600.00")
        );
        // Cents: 499.99 over 6 years, 13 months used: 499.99 - 499.99 * 13 / 72 = 409.714...
        assert_eq!(
            net_book_value(euro("499.99"), day(2025, 1, 2), 6, day(2026, 1, 9)),
            euro("409.71")
        );
    }

    #[test]
    fn the_end_of_life_year_and_the_default_lives() {
        assert_eq!(
            end_of_life_year(day(2021, 9, 1), default_life_years(DeviceCategory::Tablet)),
            2026
        );
        assert_eq!(
            end_of_life_year(day(2020, 1, 1), default_life_years(DeviceCategory::Display)),
            2028
        );
        assert_eq!(default_life_years(DeviceCategory::Desktop), 6);
    }

    fn device(school: &str, category: DeviceCategory, due_year: i32, price: &str) -> PlannedDevice {
        PlannedDevice {
            school: Some(school.into()),
            category,
            due_year,
            replacement_price: euro(price),
        }
    }

    fn options(smooth: bool) -> ForecastOptions {
        ForecastOptions {
            first_year: 2027,
            last_year: 2029,
            price_year: 2026,
            yearly_increase: euro("0.03"),
            smooth,
            spread_growth: false,
        }
    }

    #[test]
    fn the_forecast_groups_by_year_school_and_category_at_the_years_prices() {
        let tablet = DeviceCategory::Tablet;
        let laptop = DeviceCategory::Laptop;
        let devices = vec![
            // Overdue: counts into 2027.
            device("100001", tablet, 2025, "400"),
            device("100001", tablet, 2027, "400"),
            device("100001", laptop, 2028, "900"),
            device("100002", tablet, 2029, "400"),
            // After the range: left out.
            device("100002", tablet, 2030, "400"),
        ];
        let lines = forecast(&devices, &options(false));
        let seen: Vec<_> = lines
            .iter()
            .map(|l| {
                (
                    l.year,
                    l.school.clone().unwrap(),
                    l.category,
                    l.devices,
                    l.cost,
                )
            })
            .collect();
        // 2027 is one year after the price year: 400 * 1.03 = 412.00, twice.
        // 2028: 900 * 1.03^2 = 954.81. 2029: 400 * 1.03^3 = 437.0908 -> 437.09.
        assert_eq!(
            seen,
            vec![
                (2027, "100001".to_string(), tablet, 2, euro("824.00")),
                (2028, "100001".to_string(), laptop, 1, euro("954.81")),
                (2029, "100002".to_string(), tablet, 1, euro("437.09")),
            ]
        );
    }

    #[test]
    fn smoothing_moves_the_later_half_of_a_cohort_into_the_next_year() {
        let tablet = DeviceCategory::Tablet;
        // Five tablets due in 2027: three stay, two move to 2028 (at 2028's prices).
        let devices: Vec<_> = (0..5)
            .map(|_| device("100001", tablet, 2027, "100"))
            .collect();
        let lines = forecast(&devices, &options(true));
        let seen: Vec<_> = lines.iter().map(|l| (l.year, l.devices, l.cost)).collect();
        // 3 * 100 * 1.03 = 309.00; 2 * 100 * 1.0609 = 212.18.
        assert_eq!(
            seen,
            vec![(2027, 3, euro("309.00")), (2028, 2, euro("212.18"))]
        );
        // A cohort in the last year cannot move out of the range: its later half is left out
        // of this range (it belongs to the next plan), not dropped into the last year.
        let last: Vec<_> = (0..2)
            .map(|_| device("100001", tablet, 2029, "100"))
            .collect();
        let lines = forecast(&last, &options(true));
        assert_eq!(lines.len(), 1);
        assert_eq!((lines[0].year, lines[0].devices), (2029, 1));
    }

    #[test]
    fn cohorts_forecast_like_devices_and_count_devices_without_a_price() {
        let tablet = DeviceCategory::Tablet;
        let cohort = |due_year, price: Option<&str>, devices| Cohort {
            school: Some("100001".into()),
            category: tablet,
            due_year,
            replacement_price: price.map(euro),
            devices,
            early: false,
        };
        // 2027: 3 overdue at 400 and 2 due at 500, 1 without price.
        // Smoothing: 6 devices, 3 stay in 2027 in the order (due year, price), no price first:
        // the unpriced one (due 2027) sorts after the overdue ones (due 2025), so the three
        // overdue at 400 stay: 3 * 400 * 1.03 = 1236.00. The unpriced one and the two at 500
        // move to 2028: 2 * 500 * 1.0609 = 1060.90, one without price.
        let cohorts = vec![
            cohort(2025, Some("400"), 3),
            cohort(2027, Some("500"), 2),
            cohort(2027, None, 1),
        ];
        let lines = forecast_cohorts(&cohorts, &[], &options(true));
        let seen: Vec<_> = lines
            .iter()
            .map(|l| (l.year, l.devices, l.cost, l.devices_without_price))
            .collect();
        assert_eq!(
            seen,
            vec![(2027, 3, euro("1236.00"), 0), (2028, 3, euro("1060.90"), 1)]
        );
        // Without smoothing all six in 2027: 3 * 412 + 2 * 515 = 2266.00, one unpriced.
        let lines = forecast_cohorts(&cohorts, &[], &options(false));
        assert_eq!(
            lines
                .iter()
                .map(|l| (l.year, l.devices, l.cost, l.devices_without_price))
                .collect::<Vec<_>>(),
            vec![(2027, 6, euro("2266.00"), 1)]
        );
    }

    #[test]
    fn an_early_cohort_is_replaced_in_the_first_year_on_lines_of_its_own() {
        let tablet = DeviceCategory::Tablet;
        let cohort = |due_year, devices, early| Cohort {
            school: Some("100001".into()),
            category: tablet,
            due_year,
            replacement_price: Some(euro("400")),
            devices,
            early,
        };
        // Early and due 2029: bought in 2027 at 2027's prices, 4 * 400 * 1.03 = 1648.00, as an
        // early replacement. Early but due after the range (2031): also in 2027, 2 * 412 =
        // 824.00. Early but overdue (2025): an ordinary replacement in 2027, 1 * 412 = 412.00,
        // beside the cohort due 2027 that is not early, 3 * 412 = 1236.00, so 4 devices, 1648.00.
        let cohorts = vec![
            cohort(2029, 4, true),
            cohort(2031, 2, true),
            cohort(2025, 1, true),
            cohort(2027, 3, false),
        ];
        let lines = forecast_cohorts(&cohorts, &[], &options(false));
        let seen: Vec<_> = lines
            .iter()
            .map(|l| (l.year, l.kind, l.devices, l.cost))
            .collect();
        assert_eq!(
            seen,
            vec![
                (2027, LineKind::Replacement, 4, euro("1648.00")),
                (2027, LineKind::EarlyReplacement, 6, euro("2472.00")),
            ]
        );
        // Smoothed, the early lines are spread like any other: of 6, 3 stay in 2027 (the
        // earlier due year first: 3 of the 4 due 2029) at 3 * 412 = 1236.00, and 3 move to 2028
        // at 424.36 each, 1273.08.
        let lines = forecast_cohorts(&cohorts, &[], &options(true));
        let early: Vec<_> = lines
            .iter()
            .filter(|l| l.kind == LineKind::EarlyReplacement)
            .map(|l| (l.year, l.devices, l.cost))
            .collect();
        assert_eq!(
            early,
            vec![(2027, 3, euro("1236.00")), (2028, 3, euro("1273.08"))]
        );
    }

    #[test]
    fn whole_years_count_as_postgresql_counts_them() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        // Each pair's figure as `select extract(year from age(to, from))::int` printed it.
        for (from, to, years) in [
            (day(2023, 5, 2), day(2026, 10, 1), 3),
            (day(2023, 5, 2), day(2026, 5, 1), 2),
            (day(2023, 5, 2), day(2026, 5, 2), 3),
            (day(2024, 2, 29), day(2025, 2, 28), 0),
            (day(2024, 2, 29), day(2025, 3, 1), 1),
            (day(2026, 5, 1), day(2026, 1, 1), 0),
            (day(2026, 5, 1), day(2025, 1, 1), -1),
        ] {
            assert_eq!(whole_years(from, to), years, "{from} to {to}");
        }
    }

    #[test]
    fn growth_is_bought_in_the_first_year_or_spread_over_the_range() {
        let need = GrowthNeed {
            school: Some("100002".into()),
            category: DeviceCategory::Laptop,
            devices: 7,
            price: Some(euro("1000")),
        };
        let lines = forecast_cohorts(&[], std::slice::from_ref(&need), &options(false));
        // 7 * 1000 * 1.03 = 7210.00 in 2027.
        assert_eq!(lines.len(), 1);
        assert_eq!(
            (
                lines[0].year,
                lines[0].kind,
                lines[0].devices,
                lines[0].cost
            ),
            (2027, LineKind::Growth, 7, euro("7210.00"))
        );
        let mut spread_options = options(false);
        spread_options.spread_growth = true;
        let lines = forecast_cohorts(&[], &[need], &spread_options);
        // 7 over 3 years: 3, 2, 2. 3 * 1030 = 3090.00; 2 * 1060.90 = 2121.80;
        // 2 * 1092.727 = 2185.454 -> 2185.45.
        let seen: Vec<_> = lines.iter().map(|l| (l.year, l.devices, l.cost)).collect();
        assert_eq!(
            seen,
            vec![
                (2027, 3, euro("3090.00")),
                (2028, 2, euro("2121.80")),
                (2029, 2, euro("2185.45"))
            ]
        );
    }

    #[test]
    fn targets_round_up_to_whole_devices() {
        // 101 pupils at 0.5: 50.5 -> 51. 12 rooms at 1.5: 18. Neither: 0.
        assert_eq!(target_devices(101, Some(euro("0.5")), None, None), 51);
        assert_eq!(target_devices(0, None, Some(12), Some(euro("1.5"))), 18);
        assert_eq!(target_devices(10, None, None, None), 0);
    }

    #[test]
    fn pupil_levels_follow_school_type_and_grade() {
        use crate::model::SchoolType as T;
        assert_eq!(pupil_level(T::Grundschule, Some("4a")), Level::Primary);
        assert_eq!(
            pupil_level(T::Realschule, Some("Q1")),
            Level::LowerSecondary
        );
        assert_eq!(
            pupil_level(T::Gymnasium, Some("10b")),
            Level::LowerSecondary
        );
        assert_eq!(pupil_level(T::Gymnasium, Some("11")), Level::UpperSecondary);
        assert_eq!(
            pupil_level(T::Gesamtschule, Some("q2")),
            Level::UpperSecondary
        );
        assert_eq!(
            pupil_level(T::Gesamtschule, Some("EF-1")),
            Level::UpperSecondary
        );
        assert_eq!(pupil_level(T::Gymnasium, None), Level::LowerSecondary);
        assert_eq!(pupil_level(T::Berufsschule, Some("12")), Level::Vocational);
    }

    #[test]
    fn the_largest_remainder_adds_up_to_the_amount() {
        // 100.00 in three equal parts: 33.333.. each, one cent left for the first.
        let parts = split_largest_remainder(euro("100"), &[euro("1"), euro("1"), euro("1")]);
        assert_eq!(parts, vec![euro("33.34"), euro("33.33"), euro("33.33")]);
        // 10.00 by 1 : 2 : 3 -> 1.666.., 3.333.., 5.00: floors 1.66, 3.33, 5.00 leave one cent
        // for the largest remainder (0.666 of a cent, the first part).
        let parts = split_largest_remainder(euro("10"), &[euro("1"), euro("2"), euro("3")]);
        assert_eq!(parts, vec![euro("1.67"), euro("3.33"), euro("5.00")]);
        assert_eq!(parts.iter().copied().sum::<Decimal>(), euro("10.00"));
        assert_eq!(
            split_largest_remainder(euro("5"), &[Decimal::ZERO]),
            vec![Decimal::ZERO]
        );
    }
}
