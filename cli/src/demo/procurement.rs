//! The procurement part of `bestand demo`: Musterstadt's funding programmes, a small model
//! catalogue, and a purchases file as the authority's accounts would export it from Excel
//! (semicolon CSV with a BOM, German prices and dates), imported the way `purchases import`
//! imports it; then the five-year replacement forecast, as a table, a workbook and a chart, and
//! the DigitalPakt's proof of use in a line. Everything goes through the core functions the
//! commands use, so the demo shows what a user would get.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use bestand_core::model::DeviceCategory;
use bestand_core::procurement::catalogue::{self, ModelEntry};
use bestand_core::procurement::funding::{self, NewProgramme};
use bestand_core::procurement::purchases::{self, PurchaseFile, PurchaseOptions};
use bestand_core::sheet;
use bestand_core::store::devices::{self, DeviceFilter, DeviceSummary};
use bestand_core::store::forecast::{self, ReplacementForecast, ReplacementRequest};
use bestand_core::store::funding_report;
use bestand_core::{Actor, Clock};
use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;

use crate::commands::procurement::print_purchases;
use crate::commands::reports::{euro, workbooks};
use crate::output;
use bestand_app::database::Database;
use bestand_app::SystemClock;

const AUTHORITY: &str = "musterstadt";
/// The purchases file the demo writes, as the accounts department would name it.
pub const PURCHASES_FILE: &str = "einkauf-musterstadt.csv";
/// The yearly price increase of the demo's forecast, in percent.
pub const INCREASE_PERCENT: u32 = 2;

fn date(y: i32, m: u32, d: u32) -> anyhow::Result<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d).with_context(|| format!("{y}-{m}-{d} is no date"))
}

fn german_date(date: NaiveDate) -> String {
    date.format("%d.%m.%Y").to_string()
}

/// What the demo's procurement section found, for the "Explore further" list.
pub struct Shown {
    pub years: String,
}

pub async fn run(database: &Database, data_dir: &Path) -> anyhow::Result<Shown> {
    let pool = &database.pool;
    let scope = crate::commands::scope();
    let actor = Actor::CliUser("Schulverwaltung".into());
    let now = SystemClock.now();
    let today = bestand_core::clock::school_date(now);

    let programmes = [
        NewProgramme {
            code: "DP-2019".into(),
            name: "DigitalPakt Schule".into(),
            body: Some("Land NRW (Bezirksregierung)".into()),
            grant_reference: Some("DP-NRW-2019-0815".into()),
            funded_amount: None,
            funding_share: Some(Decimal::new(90, 2)),
            period_start: Some(date(2019, 5, 17)?),
            period_end: Some(date(2024, 5, 16)?),
            earmark_end: None,
            earmark_years: Some(5),
        },
        NewProgramme {
            code: "SOFORT-2020".into(),
            name: "Sofortausstattungsprogramm".into(),
            body: Some("Land NRW (Bezirksregierung)".into()),
            grant_reference: Some("SAP-NRW-2020-0815".into()),
            funded_amount: None,
            funding_share: Some(Decimal::ONE),
            period_start: Some(date(2020, 7, 1)?),
            period_end: Some(date(2021, 12, 31)?),
            earmark_end: None,
            earmark_years: Some(5),
        },
    ];
    let mut added = Vec::new();
    for programme in &programmes {
        let view =
            funding::add_programme(pool, &scope, &actor, Some(AUTHORITY), programme, now).await?;
        let view = &view.programme;
        added.push(format!(
            "{} ({}, {} %, earmarked until {})",
            view.code,
            view.name,
            view.funding_share
                .map(|s| (s * Decimal::from(100)).normalize().to_string())
                .unwrap_or_default(),
            output::opt(&view.earmark_end)
        ));
    }

    // Models the demo fleet has (Jamf Pro's iPads, Intune's laptops), and the interactive
    // displays the purchases file delivers before any MDM knows them.
    let entries = [
        (
            "iPad (10th generation)",
            Some("iPad13,18"),
            DeviceCategory::Tablet,
            44_900,
            5,
        ),
        ("Surface Go 3", None, DeviceCategory::Laptop, 52_900, 4),
        (
            "ThinkPad L14 Gen 4",
            None,
            DeviceCategory::Laptop,
            109_900,
            5,
        ),
        (DISPLAY_MODEL, None, DeviceCategory::Display, 429_000, 8),
    ];
    for (model, identifier, category, cents, life) in entries {
        let entry = ModelEntry {
            model: model.into(),
            model_identifier: identifier.map(Into::into),
            category,
            list_price: Some(Decimal::new(cents, 2)),
            currency: "EUR".into(),
            life_years: Some(life),
        };
        catalogue::set_model(pool, &scope, &actor, Some(AUTHORITY), &entry, now).await?;
    }
    println!(
        "\nProcurement (Beschaffung): funding programmes {}; {} models in the catalogue",
        added.join(" and "),
        entries.len()
    );

    let fleet = devices::list_devices(
        pool,
        &scope,
        &DeviceFilter {
            authority: Some(AUTHORITY.into()),
            ..Default::default()
        },
    )
    .await?;
    let csv = purchases_csv(&fleet)?;
    let path = data_dir.join(PURCHASES_FILE);
    workbooks::write_atomically(&path, &csv)?;
    let table =
        sheet::read(&csv, None, None).with_context(|| format!("cannot read {}", path.display()))?;
    let report = purchases::import_purchases(
        pool,
        &scope,
        &actor,
        Some(AUTHORITY),
        PurchaseFile {
            name: PURCHASES_FILE,
            sheet: &table,
            mapping: &BTreeMap::new(),
        },
        PurchaseOptions::default(),
        now,
    )
    .await?;
    println!(
        "Purchases from the accounts department ({}, {} rows, semicolon CSV in German Excel style):",
        path.display(),
        table.rows.len()
    );
    let mut summary = Vec::new();
    print_purchases(&report, &mut summary)?;
    print!("  {}", String::from_utf8_lossy(&summary));
    if !report.applied {
        anyhow::bail!("the demo's purchases file has bad rows");
    }

    let first_year = today.year() + 1;
    let request = ReplacementRequest {
        first_year,
        last_year: first_year + 4,
        price_year: today.year(),
        yearly_increase: Decimal::from(INCREASE_PERCENT) / Decimal::from(100),
        smooth: false,
        target: false,
        spread_growth: false,
        school: None,
        devices: false,
        early_by_tickets: None,
    };
    let forecast = forecast::replacement_forecast(pool, &scope, &request).await?;
    print_forecast(&forecast);
    let xlsx = workbooks::write_workbook(
        &data_dir.join("forecast.xlsx"),
        &workbooks::replacement_workbook(&forecast),
    )?;
    let svg = workbooks::write_replacement_svg(&data_dir.join("forecast.svg"), &forecast)?;
    println!(
        "The forecast as a workbook (sheets Prognose, Summen, Diagramm with an Excel chart): {}\n\
         and as a chart: {}",
        xlsx.display(),
        svg.display()
    );

    let proof =
        funding_report::funding_report(pool, &scope, now, "DP-2019", Some(AUTHORITY), 30).await?;
    let flagged = |flag: fn(&funding_report::FundedDevice) -> bool| {
        proof.devices.iter().filter(|d| flag(d)).count()
    };
    let risks = flagged(|d| d.repayment_risk);
    let unknown = flagged(|d| d.unknown_location);
    let missing = flagged(|d| d.missing);
    println!(
        "\nVerwendungsnachweis DP-2019: {} devices at {} schools, bought for {}, funded {} (90 %); \
         {} flags: {risks} left before the earmark end, {unknown} with unknown location, \
         {missing} missing from every source for more than 30 days",
        proof.total.devices,
        proof.schools.len(),
        euro(proof.total.price),
        euro(proof.total.funded_amount),
        risks + unknown + missing
    );
    Ok(Shown {
        years: format!("{}-{}", request.first_year, request.last_year),
    })
}

/// The interactive displays delivered for the Gymnasien in 2025 that no MDM reports.
const DISPLAY_MODEL: &str = "Promethean ActivPanel 9 65 Zoll";

/// How the accounts department bought the Intune fleet, which reports no purchases: per model
/// the order, delivery date, supplier, gross unit price, warranty months and programme.
fn intune_purchase(model: &str) -> Option<(&'static str, NaiveDate, &'static str, i64, u32)> {
    let (order, (y, m, d), supplier, cents, months) = match model {
        "Surface Go 3" => (
            "BE-2022-0147",
            (2022, 2, 14),
            "Systemhaus Westfalen GmbH",
            52_900,
            24,
        ),
        "ThinkPad L14 Gen 4" => (
            "BE-2023-0311",
            (2023, 9, 4),
            "Bürotechnik Müller GmbH",
            109_900,
            36,
        ),
        "OptiPlex 7010" => (
            "BE-2023-0207",
            (2023, 6, 19),
            "Systemhaus Westfalen GmbH",
            74_900,
            60,
        ),
        "Latitude 3440" => (
            "BE-2024-0088",
            (2024, 3, 11),
            "Systemhaus Westfalen GmbH",
            84_900,
            36,
        ),
        "HP ProBook 450 G10" => (
            "BE-2024-0412",
            (2024, 8, 26),
            "Bürotechnik Müller GmbH",
            89_900,
            36,
        ),
        _ => return None,
    };
    Some((
        order,
        NaiveDate::from_ymd_opt(y, m, d)?,
        supplier,
        cents,
        months,
    ))
}

/// The purchases file: one row per device bought since the Sofortausstattung (mid-2020; older
/// invoices are archived on paper), keyed by serial and asset tag. Jamf Pro's orders keep the
/// order number, date, price and warranty Jamf reports, and get their programme: the iPads of
/// the second half of 2020 are the Sofortausstattung's loan devices for pupils, what was bought
/// in 2021 and 2022 is DigitalPakt. Intune's laptops and PCs get their purchases here, the
/// Surface Go 3 class sets from DigitalPakt; twelve displays arrive before any MDM knows them.
fn purchases_csv(fleet: &[DeviceSummary]) -> anyhow::Result<Vec<u8>> {
    let sofort = (date(2020, 7, 1)?, date(2020, 12, 31)?);
    let digitalpakt = (date(2021, 1, 1)?, date(2022, 12, 31)?);
    let mut text = String::from(
        "\u{feff}Bestellnummer;Bestelldatum;Lieferdatum;Lieferant;Hersteller;Modell;Kategorie;\
         Seriennummer;Inventarnummer;Einzelpreis;Garantie bis;Garantie (Monate);Förderprogramm;\
         Schulnummer\r\n",
    );
    let mut rows: BTreeSet<String> = BTreeSet::new();
    for device in fleet {
        let Some(serial) = &device.serial_number else {
            continue;
        };
        let model = device.model.clone().unwrap_or_default();
        let manufacturer = device.manufacturer.clone().unwrap_or_default();
        let category = german_category(&device.category);
        let tag = device.asset_tag.clone().unwrap_or_default();
        let school = device.school_number.clone().unwrap_or_default();
        let row = match (device.purchase_date, intune_purchase(&model)) {
            (Some(delivered), _) if delivered >= sofort.0 => {
                let programme =
                    if device.category == "tablet" && (sofort.0..=sofort.1).contains(&delivered) {
                        "SOFORT-2020"
                    } else if (digitalpakt.0..=digitalpakt.1).contains(&delivered) {
                        "DP-2019"
                    } else {
                        ""
                    };
                let ordered = delivered - chrono::Duration::days(14);
                format!(
                    "{};{};{};{};{manufacturer};{model};{category};{serial};{tag};{};{};;{programme};{school}",
                    output::opt(&device.order_number),
                    german_date(ordered),
                    german_date(delivered),
                    output::opt(&device.supplier),
                    device.purchase_price.map(euro).unwrap_or_default(),
                    device.warranty_end.map(german_date).unwrap_or_default(),
                )
            }
            (None, Some((order, delivered, supplier, cents, months))) => {
                let programme = if model == "Surface Go 3" {
                    "DP-2019"
                } else {
                    ""
                };
                format!(
                    "{order};{};{};{supplier};{manufacturer};{model};{category};{serial};{tag};{};;{months};{programme};{school}",
                    german_date(delivered - chrono::Duration::days(21)),
                    german_date(delivered),
                    euro(Decimal::new(cents, 2)),
                )
            }
            _ => continue,
        };
        rows.insert(row);
    }
    for (index, school) in ["180018", "180021", "180033"].iter().enumerate() {
        for panel in 1..=4 {
            let _ = write!(
                text,
                "BE-2025-0530;12.08.2025;25.08.2025;Medientechnik Rhein-Ruhr GmbH;Promethean;\
                 {DISPLAY_MODEL};Tafel;PRM65-{:04};;4.290,00 €;;60;;{school}\r\n",
                index * 4 + panel
            );
        }
    }
    for row in rows {
        text.push_str(&row);
        text.push_str("\r\n");
    }
    Ok(text.into_bytes())
}

fn german_category(category: &str) -> &'static str {
    match category {
        "tablet" => "Tablet",
        "laptop" => "Notebook",
        "desktop" => "PC",
        "display" => "Bildschirm",
        "printer" => "Drucker",
        _ => "Sonstiges",
    }
}

/// The forecast per budget year and category, `devices / cost` in each cell, and the total.
fn print_forecast(report: &ReplacementForecast) {
    let categories = workbooks::forecast_categories(report);
    let mut headers = vec!["year".to_string()];
    headers.extend(categories.iter().map(|c| c.to_string()));
    headers.push("total".into());
    let cell = |devices: u32, cost: Decimal| format!("{devices} / {}", euro(cost));
    let mut rows: Vec<Vec<String>> = Vec::new();
    for year in &report.by_year {
        let mut row = vec![year.year.to_string()];
        for category in &categories {
            let total = report
                .by_year_and_category
                .iter()
                .find(|t| t.year == year.year && t.category == Some(*category));
            row.push(total.map_or_else(String::new, |t| cell(t.devices, t.cost)));
        }
        row.push(cell(year.devices, year.cost));
        rows.push(row);
    }
    let mut total = vec![format!("{}–{}", report.first_year, report.last_year)];
    for category in &categories {
        let of = report
            .by_year_and_category
            .iter()
            .filter(|t| t.category == Some(*category));
        total.push(cell(
            of.clone().map(|t| t.devices).sum(),
            of.map(|t| t.cost).sum(),
        ));
    }
    total.push(cell(
        report.by_year.iter().map(|t| t.devices).sum(),
        report.by_year.iter().map(|t| t.cost).sum(),
    ));
    rows.push(total);
    println!(
        "\nReplacement forecast {}–{} (devices / cost at {} catalogue prices, +{INCREASE_PERCENT} % a year; \
         devices past their life count into the first year):",
        report.first_year, report.last_year, report.price_year
    );
    println!(
        "{}",
        output::table(headers.iter().map(String::as_str).collect(), rows)
    );
    let without: u32 = report.by_year.iter().map(|t| t.devices_without_price).sum();
    if without > 0 {
        println!("{without} device(s) have no price and are counted, not costed.");
    }
}
