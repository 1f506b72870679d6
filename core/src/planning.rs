//! The arithmetic of replacement planning (issue 17): expected life per category, straight-line
//! depreciation and net book value, and the replacement forecast per budget year.
//!
//! Pure functions over plain values, so that the reports that read devices from the store, the
//! CLI, the XLSX and the pages all compute the same figures, and tests can check them against
//! values worked out by hand.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
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
        return price.round_dp(2);
    }
    let life_months = i64::from(life_years) * 12;
    if life_months == 0 {
        return Decimal::ZERO;
    }
    let used = (month_index(at) - month_index(purchased) + 1).min(life_months);
    let remaining = price - price * Decimal::from(used) / Decimal::from(life_months);
    remaining.max(Decimal::ZERO).round_dp(2)
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
}

/// The replacements of one budget year, school and category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForecastLine {
    pub year: i32,
    pub school: Option<String>,
    pub category: DeviceCategory,
    pub devices: u32,
    pub cost: Decimal,
}

/// The replacement forecast: per budget year in the options' range, school and category, how
/// many devices are replaced and what that costs at the year's prices. Devices already past
/// their life count into the first year; devices due after the range are left out.
pub fn forecast(devices: &[PlannedDevice], options: &ForecastOptions) -> Vec<ForecastLine> {
    // Cohorts: devices of one school and category due in one year, with their prices.
    let mut cohorts: BTreeMap<(i32, Option<String>, DeviceCategory), Vec<Decimal>> =
        BTreeMap::new();
    for device in devices {
        let year = device.due_year.max(options.first_year);
        cohorts
            .entry((year, device.school.clone(), device.category))
            .or_default()
            .push(device.replacement_price);
    }
    let mut lines: BTreeMap<(i32, Option<String>, DeviceCategory), (u32, Decimal)> =
        BTreeMap::new();
    for ((year, school, category), prices) in cohorts {
        let later = if options.smooth { prices.len() / 2 } else { 0 };
        let (now, next) = prices.split_at(prices.len() - later);
        for (replaced_in, part) in [(year, now), (year + 1, next)] {
            if part.is_empty() || replaced_in > options.last_year {
                continue;
            }
            let factor = price_factor(options, replaced_in);
            let line = lines
                .entry((replaced_in, school.clone(), category))
                .or_insert((0, Decimal::ZERO));
            line.0 += u32::try_from(part.len()).unwrap_or(u32::MAX);
            line.1 += part.iter().map(|price| *price * factor).sum::<Decimal>();
        }
    }
    lines
        .into_iter()
        .map(|((year, school, category), (devices, cost))| ForecastLine {
            year,
            school,
            category,
            devices,
            cost: cost.round_dp(2),
        })
        .collect()
}

/// (1 + increase) to the power of the years from the price year to `year` (never below 1).
fn price_factor(options: &ForecastOptions, year: i32) -> Decimal {
    let years = (year - options.price_year).max(0);
    (0..years).fold(Decimal::ONE, |factor, _| {
        factor * (Decimal::ONE + options.yearly_increase)
    })
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
}
