//! `bestand reports`: the procurement reports (warranty, depreciation, replacement forecast,
//! the funding programme's proof of use, the cost split) as tables for people and JSON or CSV
//! for scripts and spreadsheets. The figures come from core; this module only lays them out
//! (docs/reports.md).

pub mod workbooks;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context};
use bestand_core::clock::school_date;
use bestand_core::money::{self, Notation};
use bestand_core::service_level::Quarter;
use bestand_core::store::cost_split::{self, CostSplit, LevelWeights};
use bestand_core::store::forecast::{
    self, EarlyByTickets, ReplacementForecast, ReplacementRequest,
};
use bestand_core::store::funding_report::{self, FundingReport, FundingTotal};
use bestand_core::store::plans::{self, DepreciationReport, DepreciationTotal, WarrantyReport};
use bestand_core::store::ticket_report::EarlyCohort;
use bestand_core::tabular;
use chrono::{Datelike, NaiveDate};
use clap::{Args, Subcommand, ValueEnum};
use rust_decimal::Decimal;

use crate::output::{self, opt, Format};
use bestand_app::config::Config;
use bestand_app::{Database, Migrations, SystemClock};

#[derive(Debug, Subcommand)]
pub enum ReportsCommand {
    /// Devices whose warranty ends within N months, per school and model, and devices in
    /// repair outside their warranty.
    Warranty {
        /// How many months ahead.
        #[arg(long, default_value_t = 6)]
        months: u32,
        /// Only this school (number, name or alias).
        #[arg(long)]
        school: Option<String>,
        /// Also write the report as an Excel workbook (XLSX) to this file.
        #[arg(long, value_name = "FILE")]
        xlsx: Option<PathBuf>,
    },
    /// Straight-line book values (net book value) per device, school and authority at a date.
    Depreciation {
        /// The date of the values (YYYY-MM-DD); default today.
        #[arg(long, value_name = "DATE")]
        at: Option<NaiveDate>,
        /// What the table and CSV list: every device, the schools, or the authorities.
        #[arg(long, value_enum, default_value_t = By::Device)]
        by: By,
        /// Only this school (number, name or alias).
        #[arg(long)]
        school: Option<String>,
        /// Also write the report as an Excel workbook (XLSX) to this file.
        #[arg(long, value_name = "FILE")]
        xlsx: Option<PathBuf>,
    },
    /// Replacement forecast per year, authority, school and category at catalogue prices.
    Replacement(ReplacementArgs),
    /// The proof of use of a funding programme (Verwendungsnachweis).
    Funding {
        /// The programme's code (as in funding_programme.code, e.g. DP-2021).
        #[arg(long)]
        programme: String,
        /// The authority (slug) when several have a programme of that code.
        #[arg(long)]
        authority: Option<String>,
        /// Flag devices missing from every source for more than this many days.
        #[arg(long, default_value_t = 30)]
        missing_days: u32,
        /// Also write the report as an Excel workbook (XLSX) to this file.
        #[arg(long, value_name = "FILE")]
        xlsx: Option<PathBuf>,
    },
    /// The service-level figures of the tickets: a quarter per school, provider, model, age,
    /// topic and priority, with the last eight quarters for the charts (docs/service-levels.md).
    Tickets(super::ticket_report::TicketReportArgs),
    /// Split a shared cost between authorities by pupils weighted by school level.
    CostSplit {
        /// The amount, German or English notation (120.000,00).
        #[arg(long)]
        amount: String,
        /// Weights per pupil in percent: primary, lower secondary, upper secondary and
        /// vocational.
        #[arg(long, default_value = "15,35,50")]
        weights: String,
        /// Only these authorities (slug); repeat for several. Default: every one.
        #[arg(long)]
        authority: Vec<String>,
        /// Also write the report as an Excel workbook (XLSX) to this file.
        #[arg(long, value_name = "FILE")]
        xlsx: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum By {
    Device,
    School,
    Authority,
}

#[derive(Debug, Args)]
pub struct ReplacementArgs {
    /// The budget years, `2027-2032` or one year.
    #[arg(long)]
    pub years: String,
    /// Yearly price increase in percent (`2,5%`, `2.5`), compounded from the current year.
    #[arg(long, default_value = "0")]
    pub increase: String,
    /// Spread each cohort over two budget years.
    #[arg(long)]
    pub smooth: bool,
    /// Add growth to each school's target equipment (school_target_equipment).
    #[arg(long)]
    pub target: bool,
    /// With --target: spread growth evenly over the years instead of the first year.
    #[arg(long, requires = "target")]
    pub spread_growth: bool,
    /// Only this school (number, name or alias).
    #[arg(long)]
    pub school: Option<String>,
    /// List the devices behind each line.
    #[arg(long)]
    pub devices: bool,
    /// Also write the forecast as an Excel workbook (XLSX) with its chart to this file.
    #[arg(long, value_name = "FILE")]
    pub xlsx: Option<PathBuf>,
    /// Also draw the cost per year, stacked by category, as SVG to this file.
    #[arg(long, value_name = "FILE.svg")]
    pub chart: Option<PathBuf>,
    /// Replace in the first year every cohort (model and age in years) with more than this
    /// many tickets per device and year (`0,5`), counted over the four quarters up to
    /// --tickets-until.
    #[arg(long, value_name = "TICKETS")]
    pub early_by_tickets: Option<String>,
    /// The last quarter counted for --early-by-tickets (`2026-Q3`); default: the last
    /// complete quarter.
    #[arg(long, value_name = "QUARTER", requires = "early_by_tickets")]
    pub tickets_until: Option<String>,
}

pub async fn run(command: ReportsCommand, config: &Config, format: Format) -> anyhow::Result<()> {
    if let ReportsCommand::Tickets(args) = command {
        return super::ticket_report::run(args, config, format).await;
    }
    // Arguments are checked before the database is opened, so a typo costs no connection.
    let now = bestand_core::Clock::now(&SystemClock);
    let today = school_date(now);
    let request = match &command {
        ReportsCommand::Replacement(args) => Some(replacement_request(args, today)?),
        _ => None,
    };
    let split = match &command {
        ReportsCommand::CostSplit {
            amount, weights, ..
        } => Some((parse_amount(amount)?, parse_weights(weights)?)),
        _ => None,
    };
    let database = Database::open(config, Migrations::RequireCurrent).await?;
    let pool = &database.pool;
    let scope = super::scope();
    let out = std::io::stdout().lock();
    let result = async {
        match command {
            ReportsCommand::Warranty {
                months,
                school,
                xlsx,
            } => {
                let report =
                    plans::warranty_report(pool, &scope, today, months, school.as_deref()).await?;
                write_warranty(out, &report, format)?;
                written(xlsx, || workbooks::warranty_workbook(&report))
            }
            ReportsCommand::Depreciation {
                at,
                by,
                school,
                xlsx,
            } => {
                let at = at.unwrap_or(today);
                let report =
                    plans::depreciation_report(pool, &scope, at, school.as_deref()).await?;
                write_depreciation(out, &report, by, format)?;
                written(xlsx, || workbooks::depreciation_workbook(&report))
            }
            ReportsCommand::Replacement(args) => {
                let request = request.context("the replacement request was read above")?;
                let report = forecast::replacement_forecast(pool, &scope, &request).await?;
                write_replacement(out, &report, format)?;
                if let Some(path) = &args.chart {
                    let path = workbooks::write_replacement_svg(path, &report)?;
                    eprintln!("chart written to {}", path.display());
                }
                written(args.xlsx, || workbooks::replacement_workbook(&report))
            }
            ReportsCommand::Funding {
                programme,
                authority,
                missing_days,
                xlsx,
            } => {
                let report = funding_report::funding_report(
                    pool,
                    &scope,
                    now,
                    &programme,
                    authority.as_deref(),
                    missing_days,
                )
                .await?;
                write_funding(out, &report, format)?;
                written(xlsx, || workbooks::funding_workbook(&report))
            }
            ReportsCommand::CostSplit {
                authority, xlsx, ..
            } => {
                let (amount, weights) = split.context("the amount was read above")?;
                let split =
                    cost_split::cost_split(pool, &scope, amount, &weights, &authority).await?;
                write_cost_split(out, &split, format)?;
                written(xlsx, || workbooks::cost_split_workbook(&split))
            }
            ReportsCommand::Tickets(_) => unreachable!("ticket reports return above"),
        }
    }
    .await;
    database.close().await?;
    result
}

/// Writes the workbook when `--xlsx` asked for one and names the file on stderr, so that
/// stdout stays the report alone (JSON and CSV pipe on unchanged).
fn written(
    path: Option<PathBuf>,
    workbook: impl FnOnce() -> bestand_documents::workbook::Workbook,
) -> anyhow::Result<()> {
    if let Some(path) = path {
        let path: &Path = &path;
        let path = workbooks::write_workbook(path, &workbook())?;
        eprintln!("workbook written to {}", path.display());
    }
    Ok(())
}

/// The request of `reports replacement`, prices quoted in `today`'s year.
pub fn replacement_request(
    args: &ReplacementArgs,
    today: NaiveDate,
) -> anyhow::Result<ReplacementRequest> {
    let (first_year, last_year) = parse_years(&args.years)?;
    Ok(ReplacementRequest {
        first_year,
        last_year,
        price_year: today.year(),
        yearly_increase: parse_percent(&args.increase)? / Decimal::from(100),
        smooth: args.smooth,
        target: args.target,
        spread_growth: args.spread_growth,
        school: args.school.clone(),
        devices: args.devices,
        early_by_tickets: args
            .early_by_tickets
            .as_deref()
            .map(|threshold| early_by_tickets(threshold, args.tickets_until.as_deref(), today))
            .transpose()?,
    })
}

/// `--early-by-tickets 0,5 [--tickets-until 2026-Q3]`: the threshold in tickets per device and
/// year (German or English decimal), and the last quarter counted, by default the last one
/// complete on `today`.
fn early_by_tickets(
    threshold: &str,
    until: Option<&str>,
    today: NaiveDate,
) -> anyhow::Result<EarlyByTickets> {
    let value = Decimal::from_str(&threshold.trim().replace(',', ".")).with_context(|| {
        format!("--early-by-tickets '{threshold}' is not a number of tickets per device (write it like 0,5)")
    })?;
    if value <= Decimal::ZERO {
        bail!("--early-by-tickets '{threshold}' must be more than 0 tickets per device");
    }
    let last = match until {
        Some(text) => text
            .parse::<Quarter>()
            .map_err(|error| anyhow::anyhow!("--tickets-until '{text}': {error}"))?,
        None => Quarter::containing(today.and_hms_opt(12, 0, 0).unwrap_or_default().and_utc())
            .previous(),
    };
    Ok(EarlyByTickets {
        threshold: value,
        last,
    })
}

/// `2027-2032` or `2027`.
pub fn parse_years(text: &str) -> anyhow::Result<(i32, i32)> {
    let year = |part: &str| -> anyhow::Result<i32> {
        let year: i32 = part
            .trim()
            .parse()
            .with_context(|| format!("--years '{text}': '{part}' is not a year"))?;
        if !(1900..=2199).contains(&year) {
            bail!("--years '{text}': {year} is not a budget year between 1900 and 2199");
        }
        Ok(year)
    };
    let (first, last) = match text.split_once('-') {
        Some((first, last)) => (year(first)?, year(last)?),
        None => (year(text)?, year(text)?),
    };
    if first > last {
        bail!("--years '{text}': the first year comes after the last");
    }
    Ok((first, last))
}

/// A percentage as people write it: `2,5%`, `2.5 %`, `3`.
pub fn parse_percent(text: &str) -> anyhow::Result<Decimal> {
    let number = text.trim().trim_end_matches('%').trim().replace(',', ".");
    let value = Decimal::from_str(&number)
        .with_context(|| format!("'{text}' is not a percentage (write it like 2,5%)"))?;
    if value < Decimal::ZERO || value > Decimal::from(100) {
        bail!("'{text}' is not a percentage between 0 and 100");
    }
    Ok(value)
}

/// An amount of money in German or English notation (`120.000,00`, `1299.50 €`), read by the
/// one price reader; German wins where the notation is ambiguous (`120.000`).
pub fn parse_amount(text: &str) -> anyhow::Result<Decimal> {
    let price = money::parse_price(text, Some(Notation::German))
        .with_context(|| format!("--amount '{text}' is not an amount"))?;
    if price.currency.as_deref().is_some_and(|c| c != "EUR") {
        bail!("--amount '{text}': only euros are split");
    }
    Ok(price.amount)
}

/// `15,35,50`: three weights in percent for primary, lower secondary, and upper secondary and
/// vocational pupils.
pub fn parse_weights(text: &str) -> anyhow::Result<LevelWeights> {
    let parts: Vec<&str> = text.split([',', ';', '/']).map(str::trim).collect();
    let [primary, lower, upper] = parts.as_slice() else {
        bail!("--weights '{text}': give three weights in percent, like 15,35,50");
    };
    let weight = |part: &str| -> anyhow::Result<Decimal> {
        parse_percent(part).with_context(|| format!("--weights '{text}'"))
    };
    Ok(LevelWeights {
        primary: weight(primary)?,
        lower_secondary: weight(lower)?,
        upper_secondary_and_vocational: weight(upper)?,
    })
}

/// Money as people read it in a table: `1.234,56 €`.
pub fn euro(amount: Decimal) -> String {
    let amount = amount.round_dp(2);
    let negative = amount.is_sign_negative() && !amount.is_zero();
    let text = format!("{:.2}", amount.abs());
    let (whole, cents) = text.split_once('.').unwrap_or((&text, "00"));
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push('.');
        }
        grouped.push(digit);
    }
    format!("{}{grouped},{cents} €", if negative { "-" } else { "" })
}

fn euro_opt(amount: Option<Decimal>) -> String {
    amount.map(euro).unwrap_or_else(|| "no price".to_string())
}

/// Money in CSV: the plain number (`1234.56`), which scripts and every spreadsheet locale's
/// import dialog read; JSON carries it as a string of the same digits.
fn plain(amount: Option<Decimal>) -> String {
    amount
        .map(|a| a.round_dp(2).to_string())
        .unwrap_or_default()
}

fn yes(flag: bool) -> String {
    if flag { "yes" } else { "" }.to_string()
}

fn school(number: &Option<String>, name: &Option<String>) -> String {
    match (number, name) {
        (Some(number), Some(name)) => format!("{name} ({number})"),
        (Some(number), None) => number.clone(),
        _ => "(no school)".to_string(),
    }
}

/// Writes rows as a table or CSV under `headers`; a table gets `title` above it.
fn emit<W: Write>(
    out: &mut W,
    format: Format,
    title: Option<&str>,
    headers: &[&str],
    rows: Vec<Vec<String>>,
) -> anyhow::Result<()> {
    match format {
        Format::Csv => tabular::write_csv(&mut *out, headers, rows)?,
        _ => {
            if let Some(title) = title {
                writeln!(out, "{title}")?;
            }
            if rows.is_empty() {
                writeln!(out, "  (none)")?;
            } else {
                writeln!(out, "{}", output::table(headers.to_vec(), rows))?;
            }
        }
    }
    Ok(())
}

/// How money is written in `format`: plain numbers for CSV, `1.234,56 €` for people.
fn money_for(format: Format) -> fn(Option<Decimal>) -> String {
    if format == Format::Csv {
        plain
    } else {
        euro_opt
    }
}

pub(super) fn json<W: Write, T: serde::Serialize>(mut out: W, value: &T) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// The warranty report; CSV lists every device with the list it is on.
pub fn write_warranty<W: Write>(
    mut out: W,
    report: &WarrantyReport,
    format: Format,
) -> anyhow::Result<()> {
    if format == Format::Json {
        return json(out, report);
    }
    let headers = [
        "list",
        "authority",
        "school",
        "asset tag",
        "serial",
        "model",
        "state",
        "warranty end",
        "repair opened",
    ];
    let device_rows = |list: &str, devices: &[plans::WarrantyDevice]| -> Vec<Vec<String>> {
        devices
            .iter()
            .map(|d| {
                vec![
                    list.to_string(),
                    d.authority.clone(),
                    school(&d.school_number, &d.school_name),
                    opt(&d.asset_tag),
                    opt(&d.serial_number),
                    opt(&d.model),
                    d.lifecycle_state.clone(),
                    d.warranty_end
                        .map_or_else(|| "unknown".to_string(), |e| e.to_string()),
                    opt(&d.repair_opened_on),
                ]
            })
            .collect()
    };
    if format == Format::Csv {
        let mut rows = device_rows("expiring", &report.expiring);
        rows.extend(device_rows(
            "in_repair_outside_warranty",
            &report.in_repair_outside_warranty,
        ));
        return emit(&mut out, format, None, &headers, rows);
    }
    let groups = report
        .groups
        .iter()
        .map(|g| {
            vec![
                g.authority.clone(),
                school(&g.school_number, &g.school_name),
                opt(&g.model),
                g.devices.to_string(),
                g.first_end.to_string(),
            ]
        })
        .collect();
    let title = format!(
        "Warranty ending {} to {} ({} months), per school and model:",
        report.today, report.until, report.months
    );
    emit(
        &mut out,
        format,
        Some(&title),
        &["authority", "school", "model", "devices", "first end"],
        groups,
    )?;
    emit(
        &mut out,
        format,
        Some("Devices:"),
        &headers[1..],
        device_rows("", &report.expiring)
            .into_iter()
            .map(|row| row[1..].to_vec())
            .collect(),
    )?;
    emit(
        &mut out,
        format,
        Some("In repair outside warranty (the authority pays):"),
        &headers[1..],
        device_rows("", &report.in_repair_outside_warranty)
            .into_iter()
            .map(|row| row[1..].to_vec())
            .collect(),
    )
}

fn depreciation_total_row(
    total: &DepreciationTotal,
    money: fn(Option<Decimal>) -> String,
) -> Vec<String> {
    vec![
        total.authority.clone(),
        school(&total.school_number, &total.school_name),
        total.devices.to_string(),
        total.devices_without_price.to_string(),
        money(Some(total.purchase_price)),
        money(Some(total.accumulated_depreciation)),
        money(Some(total.net_book_value)),
    ]
}

/// The depreciation report as the rows `by` chooses.
pub fn write_depreciation<W: Write>(
    mut out: W,
    report: &DepreciationReport,
    by: By,
    format: Format,
) -> anyhow::Result<()> {
    if format == Format::Json {
        return json(out, report);
    }
    let money = money_for(format);
    let totals_headers = [
        "authority",
        "school",
        "devices",
        "without price",
        "purchase price",
        "depreciation",
        "net book value",
    ];
    let title = format!(
        "Net book values at {} (straight-line, by month):",
        report.at
    );
    match by {
        By::Device => {
            let rows = report
                .devices
                .iter()
                .map(|d| {
                    vec![
                        d.authority.clone(),
                        school(&d.school_number, &d.school_name),
                        opt(&d.asset_tag),
                        opt(&d.serial_number),
                        opt(&d.model),
                        d.category.to_string(),
                        if d.purchase_date_estimated {
                            format!("{} (estimated)", d.purchase_date)
                        } else {
                            d.purchase_date.to_string()
                        },
                        format!("{} ({})", d.life_years, d.life_from),
                        money(d.purchase_price),
                        money(d.accumulated_depreciation),
                        money(d.net_book_value),
                    ]
                })
                .collect();
            emit(
                &mut out,
                format,
                Some(&title),
                &[
                    "authority",
                    "school",
                    "asset tag",
                    "serial",
                    "model",
                    "category",
                    "purchased",
                    "life (from)",
                    "purchase price",
                    "depreciation",
                    "net book value",
                ],
                rows,
            )?;
            if format == Format::Table {
                let rows = report
                    .authorities
                    .iter()
                    .map(|t| depreciation_total_row(t, money))
                    .collect();
                emit(&mut out, format, Some("Totals:"), &totals_headers, rows)?;
            }
            Ok(())
        }
        By::School | By::Authority => {
            let totals = if by == By::School {
                &report.schools
            } else {
                &report.authorities
            };
            let rows = totals
                .iter()
                .map(|t| depreciation_total_row(t, money))
                .collect();
            emit(&mut out, format, Some(&title), &totals_headers, rows)
        }
    }
}

/// The forecast: its lines, then the totals per year (table), or the lines (CSV), or with
/// devices listed, the devices (CSV) after the lines (table).
pub fn write_replacement<W: Write>(
    mut out: W,
    report: &ReplacementForecast,
    format: Format,
) -> anyhow::Result<()> {
    if format == Format::Json {
        return json(out, report);
    }
    let money = money_for(format);
    if format == Format::Csv && !report.devices.is_empty() {
        let rows = report
            .devices
            .iter()
            .map(|d| {
                let p = &d.plan;
                vec![
                    d.year.to_string(),
                    p.authority.clone(),
                    opt(&p.school_number),
                    p.category.to_string(),
                    opt(&p.asset_tag),
                    opt(&p.serial_number),
                    opt(&p.model),
                    p.purchase_date.to_string(),
                    yes(p.purchase_date_estimated),
                    p.life_years.to_string(),
                    p.life_from.clone(),
                    p.end_of_life_year.to_string(),
                    plain(p.replacement_price),
                    opt(&p.price_from),
                ]
            })
            .collect();
        return emit(
            &mut out,
            format,
            None,
            &[
                "year",
                "authority",
                "school number",
                "category",
                "asset tag",
                "serial",
                "model",
                "purchased",
                "purchase date estimated",
                "life years",
                "life from",
                "end of life",
                "replacement price",
                "price from",
            ],
            rows,
        );
    }
    let rows = report
        .lines
        .iter()
        .map(|l| {
            let mut row = vec![l.year.to_string(), l.authority.clone()];
            if format == Format::Csv {
                row.push(opt(&l.school_number));
                row.push(opt(&l.school_name));
            } else {
                row.push(school(&l.school_number, &l.school_name));
            }
            row.extend([
                l.category.to_string(),
                l.kind.as_str().to_string(),
                l.devices.to_string(),
                money(Some(l.cost)),
                l.devices_without_price.to_string(),
            ]);
            row
        })
        .collect();
    let mut headers = vec!["year", "authority"];
    if format == Format::Csv {
        headers.extend(["school number", "school name"]);
    } else {
        headers.push("school");
    }
    headers.extend(["category", "kind", "devices", "cost", "without price"]);
    let increase = report.yearly_increase * Decimal::from(100);
    let title = format!(
        "Replacement {}-{} at {} prices, +{}% a year{}:",
        report.first_year,
        report.last_year,
        report.price_year,
        increase.normalize().to_string().replace('.', ","),
        if report.smooth { ", smoothed" } else { "" }
    );
    emit(&mut out, format, Some(&title), &headers, rows)?;
    if format == Format::Csv {
        return Ok(());
    }
    let mut totals: Vec<Vec<String>> = Vec::new();
    for year in &report.by_year {
        totals.push(vec![
            year.year.to_string(),
            "all".to_string(),
            year.devices.to_string(),
            euro(year.cost),
            year.devices_without_price.to_string(),
        ]);
        for total in report
            .by_year_and_category
            .iter()
            .filter(|t| t.year == year.year)
        {
            totals.push(vec![
                String::new(),
                opt(&total.category),
                total.devices.to_string(),
                euro(total.cost),
                total.devices_without_price.to_string(),
            ]);
        }
    }
    emit(
        &mut out,
        format,
        Some("Per year and category:"),
        &["year", "category", "devices", "cost", "without price"],
        totals,
    )?;
    if let Some(early) = &report.early_by_tickets {
        write_early_cohorts(&mut out, format, early, &report.early_cohorts)?;
    }
    if !report.targets.is_empty() {
        let rows = report
            .targets
            .iter()
            .map(|t| {
                vec![
                    t.authority.clone(),
                    format!("{} ({})", t.school_name, t.school_number),
                    t.category.to_string(),
                    format!("{} ({})", t.pupils, t.pupils_from),
                    t.target.to_string(),
                    t.current.to_string(),
                    t.growth.to_string(),
                    euro_opt(t.price),
                ]
            })
            .collect();
        emit(
            &mut out,
            format,
            Some("Target equipment:"),
            &[
                "authority",
                "school",
                "category",
                "pupils",
                "target",
                "current",
                "growth",
                "price each",
            ],
            rows,
        )?;
    }
    if report.estimated_purchase_dates > 0 {
        writeln!(
            out,
            "{} device(s) have no purchase date: their life counts from the day a source first \
             reported them.",
            report.estimated_purchase_dates
        )?;
    }
    if !report.devices.is_empty() {
        let rows = report
            .devices
            .iter()
            .map(|d| {
                let p = &d.plan;
                vec![
                    d.year.to_string(),
                    school(&p.school_number, &p.school_name),
                    p.category.to_string(),
                    opt(&p.asset_tag),
                    opt(&p.serial_number),
                    opt(&p.model),
                    if p.purchase_date_estimated {
                        format!("{} (estimated)", p.purchase_date)
                    } else {
                        p.purchase_date.to_string()
                    },
                    format!("{} ({})", p.life_years, p.life_from),
                    euro_opt(p.replacement_price),
                ]
            })
            .collect();
        emit(
            &mut out,
            format,
            Some("Devices:"),
            &[
                "year",
                "school",
                "category",
                "asset tag",
                "serial",
                "model",
                "purchased",
                "life (from)",
                "price",
            ],
            rows,
        )?;
    }
    Ok(())
}

fn funding_total_row(total: &FundingTotal) -> Vec<String> {
    vec![
        school(&total.school_number, &total.school_name),
        total.devices.to_string(),
        euro(total.price),
        euro(total.funded_amount),
        total.devices_without_price.to_string(),
        total.repayment_risks.to_string(),
    ]
}

/// The proof of use: the devices (table and CSV), then per school (table).
pub fn write_funding<W: Write>(
    mut out: W,
    report: &FundingReport,
    format: Format,
) -> anyhow::Result<()> {
    if format == Format::Json {
        return json(out, report);
    }
    let money = money_for(format);
    let rows = report
        .devices
        .iter()
        .map(|d| {
            let mut flags = Vec::new();
            if d.repayment_risk {
                flags.push("left before earmark end");
            }
            if d.unknown_location {
                flags.push("unknown location");
            }
            if d.missing {
                flags.push("missing");
            }
            vec![
                opt(&d.asset_tag),
                opt(&d.serial_number),
                opt(&d.model),
                opt(&d.school_number),
                d.lifecycle_state.clone(),
                opt(&d.left_on),
                opt(&d.building),
                opt(&d.room),
                match (&d.used_by_role, &d.used_by_via) {
                    (Some(role), Some(via)) => format!("{role} ({via})"),
                    _ => String::new(),
                },
                money(d.price),
                money(d.funded_amount),
                opt(&d.earmark_end),
                opt(&d.missing_since),
                flags.join(", "),
            ]
        })
        .collect();
    let p = &report.programme;
    let title = format!(
        "Verwendungsnachweis {} ({}{}), {}: earmark until {}, funding share {}",
        p.code,
        p.name,
        p.grant_reference
            .as_ref()
            .map(|r| format!(", {r}"))
            .unwrap_or_default(),
        p.authority,
        opt(&p.earmark_end),
        p.funding_share
            .map(|s| format!("{}%", (s * Decimal::from(100)).normalize()))
            .unwrap_or_else(|| "not set".to_string())
    );
    emit(
        &mut out,
        format,
        Some(&title),
        &[
            "asset tag",
            "serial",
            "model",
            "school",
            "state",
            "left on",
            "building",
            "room",
            "used by",
            "price",
            "funded",
            "earmark end",
            "missing since",
            "flags",
        ],
        rows,
    )?;
    if format == Format::Csv {
        return Ok(());
    }
    let mut rows: Vec<Vec<String>> = report.schools.iter().map(funding_total_row).collect();
    let mut total = funding_total_row(&report.total);
    total[0] = "total".to_string();
    rows.push(total);
    emit(
        &mut out,
        format,
        Some("Per school:"),
        &[
            "school",
            "devices",
            "price",
            "funded",
            "without price",
            "repayment risks",
        ],
        rows,
    )
}

/// The cost split, one row per authority.
pub fn write_cost_split<W: Write>(
    mut out: W,
    split: &CostSplit,
    format: Format,
) -> anyhow::Result<()> {
    if format == Format::Json {
        return json(out, split);
    }
    let money = money_for(format);
    let rows = split
        .shares
        .iter()
        .map(|s| {
            vec![
                s.authority.clone(),
                s.primary.to_string(),
                s.lower_secondary.to_string(),
                s.upper_secondary.to_string(),
                s.vocational.to_string(),
                s.weighted_pupils.to_string(),
                s.share_percent.to_string(),
                money(Some(s.amount)),
            ]
        })
        .collect();
    let w = &split.weights;
    let title = format!(
        "{} split by pupils weighted {} / {} / {} % (primary / lower / upper and vocational):",
        euro(split.amount),
        w.primary,
        w.lower_secondary,
        w.upper_secondary_and_vocational
    );
    emit(
        &mut out,
        format,
        Some(&title),
        &[
            "authority",
            "primary",
            "lower secondary",
            "upper secondary",
            "vocational",
            "weighted pupils",
            "share %",
            "amount",
        ],
        rows,
    )
}

/// The cohorts `--early-by-tickets` moved, or a line saying there were none.
fn write_early_cohorts<W: Write>(
    out: &mut W,
    format: Format,
    early: &EarlyByTickets,
    cohorts: &[EarlyCohort],
) -> anyhow::Result<()> {
    let first = early.last.last(4)[0];
    let threshold = early.threshold.normalize().to_string().replace('.', ",");
    if cohorts.is_empty() {
        writeln!(
            out,
            "No cohort had more than {threshold} tickets per device in {first} to {}: nothing \
             is replaced early.",
            early.last
        )?;
        return Ok(());
    }
    let rows = cohorts
        .iter()
        .map(|c| {
            vec![
                c.authority.clone(),
                c.tickets.model.clone(),
                c.tickets.age_years.to_string(),
                c.tickets.tickets.to_string(),
                c.tickets.devices.to_string(),
                c.tickets
                    .tickets_per_device
                    .map(|rate| format!("{rate:.2}").replace('.', ","))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    emit(
        out,
        format,
        Some(&format!(
            "Replaced early (lines early_replacement): more than {threshold} tickets per device in \
             {first} to {}:",
            early.last
        )),
        &[
            "authority",
            "model",
            "age (years)",
            "tickets",
            "devices",
            "tickets per device",
        ],
        rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_reads_the_german_way() {
        assert_eq!(euro(Decimal::from_str("1234.5").unwrap()), "1.234,50 €");
        assert_eq!(euro(Decimal::from_str("120000").unwrap()), "120.000,00 €");
        assert_eq!(euro(Decimal::from_str("0.05").unwrap()), "0,05 €");
        assert_eq!(euro(Decimal::from_str("999").unwrap()), "999,00 €");
    }

    #[test]
    fn arguments_read_as_people_write_them() {
        assert_eq!(parse_years("2027-2032").unwrap(), (2027, 2032));
        assert_eq!(parse_years("2028").unwrap(), (2028, 2028));
        assert!(parse_years("2032-2027").is_err());
        assert_eq!(
            parse_percent("2,5%").unwrap(),
            Decimal::from_str("2.5").unwrap()
        );
        assert!(parse_percent("abc").is_err());
        assert_eq!(
            parse_amount("120.000,00").unwrap(),
            Decimal::from_str("120000.00").unwrap()
        );
        assert!(parse_weights("15,35").is_err());
        assert_eq!(
            parse_weights("10,30,60")
                .unwrap()
                .upper_secondary_and_vocational,
            Decimal::from(60)
        );
    }

    #[test]
    fn early_by_tickets_reads_a_german_rate_and_defaults_to_the_last_complete_quarter() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 6).unwrap();
        let early = early_by_tickets("0,5", None, today).unwrap();
        assert_eq!(early.threshold, Decimal::new(5, 1));
        assert_eq!(early.last.to_string(), "2026-Q3");
        let early = early_by_tickets("1.25", Some("2026-Q2"), today).unwrap();
        assert_eq!(
            (early.threshold, early.last.to_string()),
            (Decimal::new(125, 2), "2026-Q2".to_string())
        );
        for bad in ["0", "-1", "viel"] {
            let error = early_by_tickets(bad, None, today).unwrap_err();
            assert!(
                format!("{error:#}").contains(&format!("--early-by-tickets '{bad}'")),
                "{error:#}"
            );
        }
        let error = early_by_tickets("0,5", Some("2026-Q5"), today).unwrap_err();
        assert!(format!("{error:#}").contains("--tickets-until '2026-Q5'"));
    }
}
