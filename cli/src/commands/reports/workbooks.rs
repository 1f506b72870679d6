//! The procurement reports as workbooks and charts for the staff who take them away
//! (`--xlsx FILE`, `--chart FILE.svg`): each report's views become German-headed sheets of typed
//! cells, and the replacement forecast its stacked cost chart. Core computes the figures and
//! `bestand-documents` renders generic sheets; this module is the mapping between the two, so
//! the demo, the command and the tests make the same file from the same report
//! (docs/reports.md, "Workbooks and charts").

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use bestand_core::model::{DeviceCategory, LifecycleState};
use bestand_core::planning::LineKind;
use bestand_core::store::cost_split::CostSplit;
use bestand_core::store::forecast::ReplacementForecast;
use bestand_core::store::funding_report::{FundingReport, FundingTotal};
use bestand_core::store::plans::{DepreciationReport, DepreciationTotal, WarrantyReport};
use bestand_core::store::plans::{DevicePlan, WarrantyDevice};
use bestand_documents::chart::{chart_svg, Chart, ChartKind, Series};
use bestand_documents::workbook::{
    write_xlsx, Cell, ChartSheet, Column, ColumnKind, Sheet, Workbook,
};
use rust_decimal::Decimal;
use ColumnKind::{Date, Integer, Money, Percent, Text};

/// The size of `--chart` SVGs: wide enough for six budget years with their totals.
pub const CHART_WIDTH: u32 = 900;
pub const CHART_HEIGHT: u32 = 500;

/// A device category as a row of a sheet names it.
pub fn category_name(category: DeviceCategory) -> &'static str {
    match category {
        DeviceCategory::Tablet => "Tablet",
        DeviceCategory::Laptop => "Notebook",
        DeviceCategory::Desktop => "Desktop-PC",
        DeviceCategory::Display => "Bildschirm",
        DeviceCategory::Printer => "Drucker",
        DeviceCategory::Other => "Sonstiges",
    }
}

/// A device category as a chart's series (and its legend) names it.
pub fn category_plural(category: DeviceCategory) -> &'static str {
    match category {
        DeviceCategory::Tablet => "Tablets",
        DeviceCategory::Laptop => "Notebooks",
        DeviceCategory::Desktop => "Desktop-PCs",
        DeviceCategory::Display => "Bildschirme",
        DeviceCategory::Printer => "Drucker",
        DeviceCategory::Other => "Sonstige",
    }
}

/// A lifecycle state in the words of docs/lifecycle.md's German column; a state this build does
/// not know keeps its code rather than being hidden.
fn state_name(state: &str) -> String {
    let Ok(known) = state.parse::<LifecycleState>() else {
        return state.to_owned();
    };
    match known {
        LifecycleState::Ordered => "bestellt",
        LifecycleState::Delivered => "geliefert",
        LifecycleState::InStock => "im Lager",
        LifecycleState::InUse => "im Einsatz",
        LifecycleState::OnLoan => "verliehen",
        LifecycleState::InRepair => "in Reparatur",
        LifecycleState::Retired => "ausgemustert",
        LifecycleState::Disposed => "entsorgt",
        LifecycleState::Lost => "verloren",
        LifecycleState::Stolen => "gestohlen",
        LifecycleState::ToCheck => "zu prüfen",
    }
    .to_owned()
}

fn role_name(role: &str) -> &str {
    match role {
        "student" => "Schüler/in",
        "teacher" => "Lehrkraft",
        "staff" => "Personal",
        other => other,
    }
}

fn kind_name(kind: LineKind) -> &'static str {
    match kind {
        LineKind::Replacement => "Ersatz",
        LineKind::EarlyReplacement => "Vorzeitiger Ersatz",
        LineKind::Growth => "Zuwachs",
    }
}

fn columns(spec: &[(&str, ColumnKind)]) -> Vec<Column> {
    spec.iter()
        .map(|(header, kind)| Column {
            header: (*header).to_owned(),
            kind: *kind,
        })
        .collect()
}

fn sheet(name: &str, spec: &[(&str, ColumnKind)], rows: Vec<Vec<Cell>>) -> Sheet {
    Sheet {
        name: name.to_owned(),
        columns: columns(spec),
        rows,
    }
}

fn text(value: &Option<String>) -> Cell {
    value.clone().into()
}

/// The cells of `PLACE`.
fn place(authority: &str, number: &Option<String>, name: &Option<String>) -> Vec<Cell> {
    vec![authority.into(), text(number), text(name)]
}

/// `place`, then `rest`.
fn placed<const N: usize>(
    authority: &str,
    number: &Option<String>,
    name: &Option<String>,
    rest: [Cell; N],
) -> Vec<Cell> {
    let mut row = place(authority, number, name);
    row.extend(rest);
    row
}

fn count(value: u32) -> Cell {
    Cell::Integer(i64::from(value))
}

/// Where a device stands: authority, school number and name.
const PLACE: [(&str, ColumnKind); 3] = [
    ("Schulträger", Text),
    ("Schulnummer", Text),
    ("Schule", Text),
];

/// The warranty report: the devices whose warranty ends soon, the same per school and model,
/// and the devices in repair the authority pays for.
pub fn warranty_workbook(report: &WarrantyReport) -> Workbook {
    let spec: Vec<(&str, ColumnKind)> = PLACE
        .into_iter()
        .chain([
            ("Inventarnummer", Text),
            ("Seriennummer", Text),
            ("Modell", Text),
            ("Status", Text),
            ("Garantieende", Date),
        ])
        .collect();
    let device_row = |d: &WarrantyDevice| -> Vec<Cell> {
        placed(
            &d.authority,
            &d.school_number,
            &d.school_name,
            [
                text(&d.asset_tag),
                text(&d.serial_number),
                text(&d.model),
                state_name(&d.lifecycle_state).into(),
                d.warranty_end.into(),
            ],
        )
    };
    let mut repair_spec = spec.clone();
    repair_spec.push(("In Reparatur seit", Date));
    let groups = report
        .groups
        .iter()
        .map(|g| {
            placed(
                &g.authority,
                &g.school_number,
                &g.school_name,
                [text(&g.model), count(g.devices), g.first_end.into()],
            )
        })
        .collect();
    let group_spec: Vec<(&str, ColumnKind)> = PLACE
        .into_iter()
        .chain([
            ("Modell", Text),
            ("Geräte", Integer),
            ("Erstes Garantieende", Date),
        ])
        .collect();
    Workbook {
        sheets: vec![
            sheet(
                "Garantieende",
                &spec,
                report.expiring.iter().map(device_row).collect(),
            ),
            sheet("Nach Schule und Modell", &group_spec, groups),
            sheet(
                "Reparatur ohne Garantie",
                &repair_spec,
                report
                    .in_repair_outside_warranty
                    .iter()
                    .map(|d| {
                        let mut row = device_row(d);
                        row.push(d.repair_opened_on.into());
                        row
                    })
                    .collect(),
            ),
        ],
        charts: Vec::new(),
    }
}

const BOOK_VALUES: [(&str, ColumnKind); 3] = [
    ("Anschaffungswert", Money),
    ("Abschreibung", Money),
    ("Restbuchwert", Money),
];

fn depreciation_totals(name: &str, totals: &[DepreciationTotal]) -> Sheet {
    let spec: Vec<(&str, ColumnKind)> = PLACE
        .into_iter()
        .chain([("Geräte", Integer), ("Ohne Preis", Integer)])
        .chain(BOOK_VALUES)
        .collect();
    let rows = totals
        .iter()
        .map(|t| {
            placed(
                &t.authority,
                &t.school_number,
                &t.school_name,
                [
                    count(t.devices),
                    count(t.devices_without_price),
                    t.purchase_price.into(),
                    t.accumulated_depreciation.into(),
                    t.net_book_value.into(),
                ],
            )
        })
        .collect();
    sheet(name, &spec, rows)
}

/// Book values at the report's date: per device, per school, per authority.
pub fn depreciation_workbook(report: &DepreciationReport) -> Workbook {
    let spec: Vec<(&str, ColumnKind)> = PLACE
        .into_iter()
        .chain([
            ("Inventarnummer", Text),
            ("Seriennummer", Text),
            ("Modell", Text),
            ("Kategorie", Text),
            ("Gekauft am", Date),
            ("Kaufdatum geschätzt", Text),
            ("Nutzungsdauer (Jahre)", Integer),
            ("Nutzungsdauer aus", Text),
        ])
        .chain(BOOK_VALUES)
        .chain([("Stichtag", Date)])
        .collect();
    let rows = report
        .devices
        .iter()
        .map(|d| {
            placed(
                &d.authority,
                &d.school_number,
                &d.school_name,
                [
                    text(&d.asset_tag),
                    text(&d.serial_number),
                    text(&d.model),
                    category_name(d.category).into(),
                    d.purchase_date.into(),
                    estimated(d.purchase_date_estimated),
                    count(d.life_years),
                    d.life_from.clone().into(),
                    d.purchase_price.into(),
                    d.accumulated_depreciation.into(),
                    d.net_book_value.into(),
                    report.at.into(),
                ],
            )
        })
        .collect();
    Workbook {
        sheets: vec![
            sheet("Geräte", &spec, rows),
            depreciation_totals("Schulen", &report.schools),
            depreciation_totals("Schulträger", &report.authorities),
        ],
        charts: Vec::new(),
    }
}

/// "ja" where the purchase date is the day a source first saw the device: a filterable word
/// rather than WAHR/FALSCH, which reads as an error to most staff.
fn estimated(flag: bool) -> Cell {
    if flag { "ja" } else { "" }.into()
}

/// The forecast chart: cost per budget year, stacked by device category, every year of the
/// range shown (a year without purchases as zero, so gaps are visible). `None` when nothing
/// falls due: a chart of no series cannot be drawn.
pub fn replacement_chart(report: &ReplacementForecast) -> Option<Chart> {
    let years: Vec<i32> = (report.first_year..=report.last_year).collect();
    let categories = forecast_categories(report);
    if categories.is_empty() {
        return None;
    }
    let series = categories
        .into_iter()
        .map(|category| Series {
            name: category_plural(category).to_owned(),
            values: years
                .iter()
                .map(|year| {
                    report
                        .by_year_and_category
                        .iter()
                        .filter(|t| t.year == *year && t.category == Some(category))
                        .map(|t| t.cost)
                        .sum::<Decimal>()
                })
                .map(Some)
                .collect(),
        })
        .collect();
    Some(Chart {
        title: format!(
            "Ersatzbeschaffung {}–{}",
            report.first_year, report.last_year
        ),
        kind: ChartKind::StackedColumn,
        x_title: "Haushaltsjahr".to_owned(),
        y_title: "Kosten".to_owned(),
        categories: years.iter().map(i32::to_string).collect(),
        series,
        y_is_money: true,
    })
}

/// The device categories the forecast buys, in the order of `DeviceCategory`.
pub fn forecast_categories(report: &ReplacementForecast) -> Vec<DeviceCategory> {
    let mut categories: Vec<DeviceCategory> = report
        .by_year_and_category
        .iter()
        .filter_map(|t| t.category)
        .collect();
    categories.sort();
    categories.dedup();
    categories
}

/// The forecast: its lines ("Prognose"), the sums per year and category ("Summen"), the target
/// equipment when asked for, the devices when listed, and the chart.
pub fn replacement_workbook(report: &ReplacementForecast) -> Workbook {
    let lines = report
        .lines
        .iter()
        .map(|l| {
            vec![
                Cell::Integer(l.year.into()),
                l.authority.clone().into(),
                text(&l.school_number),
                text(&l.school_name),
                category_name(l.category).into(),
                kind_name(l.kind).into(),
                count(l.devices),
                l.cost.into(),
                count(l.devices_without_price),
            ]
        })
        .collect();
    let mut sheets = vec![sheet(
        "Prognose",
        &PLACE_AFTER_YEAR
            .into_iter()
            .chain([
                ("Kategorie", Text),
                ("Art", Text),
                ("Geräte", Integer),
                ("Kosten", Money),
                ("Ohne Preis", Integer),
            ])
            .collect::<Vec<_>>(),
        lines,
    )];
    let sums = report
        .by_year_and_category
        .iter()
        .map(|t| {
            vec![
                Cell::Integer(t.year.into()),
                t.category.map_or("alle", category_name).into(),
                count(t.devices),
                t.cost.into(),
                count(t.devices_without_price),
            ]
        })
        .collect();
    sheets.push(sheet(
        "Summen",
        &[
            ("Jahr", Text),
            ("Kategorie", Text),
            ("Geräte", Integer),
            ("Kosten", Money),
            ("Ohne Preis", Integer),
        ],
        sums,
    ));
    if !report.targets.is_empty() {
        let rows = report
            .targets
            .iter()
            .map(|t| {
                vec![
                    t.authority.clone().into(),
                    t.school_number.clone().into(),
                    t.school_name.clone().into(),
                    category_name(t.category).into(),
                    count(t.pupils),
                    t.pupils_from.clone().into(),
                    count(t.target),
                    count(t.current),
                    count(t.growth),
                    t.price.into(),
                ]
            })
            .collect();
        let spec: Vec<(&str, ColumnKind)> = PLACE
            .into_iter()
            .chain([
                ("Kategorie", Text),
                ("Schüler", Integer),
                ("Schüler aus", Text),
                ("Soll", Integer),
                ("Ist", Integer),
                ("Zuwachs", Integer),
                ("Preis je Gerät", Money),
            ])
            .collect();
        sheets.push(sheet("Zielausstattung", &spec, rows));
    }
    if !report.early_cohorts.is_empty() {
        let rows = report
            .early_cohorts
            .iter()
            .map(|c| {
                vec![
                    c.authority.clone().into(),
                    c.tickets.model.clone().into(),
                    count(c.tickets.age_years),
                    Cell::Integer(i64::try_from(c.tickets.tickets).unwrap_or(i64::MAX)),
                    Cell::Integer(i64::try_from(c.tickets.devices).unwrap_or(i64::MAX)),
                    c.tickets
                        .tickets_per_device
                        .and_then(Decimal::from_f64_retain)
                        .map_or(Cell::Empty, |rate| Cell::Number(rate.round_dp(2))),
                ]
            })
            .collect();
        sheets.push(sheet(
            "Vorzeitiger Ersatz",
            &[
                ("Schulträger", Text),
                ("Modell", Text),
                ("Alter (Jahre)", Integer),
                ("Tickets", Integer),
                ("Geräte", Integer),
                ("Tickets je Gerät", ColumnKind::Decimal),
            ],
            rows,
        ));
    }
    if !report.devices.is_empty() {
        let rows = report
            .devices
            .iter()
            .map(|d| {
                let p: &DevicePlan = &d.plan;
                vec![
                    Cell::Integer(d.year.into()),
                    p.authority.clone().into(),
                    text(&p.school_number),
                    text(&p.school_name),
                    category_name(p.category).into(),
                    text(&p.asset_tag),
                    text(&p.serial_number),
                    text(&p.model),
                    p.purchase_date.into(),
                    estimated(p.purchase_date_estimated),
                    count(p.life_years),
                    p.life_from.clone().into(),
                    Cell::Integer(p.end_of_life_year.into()),
                    p.replacement_price.into(),
                    text(&p.price_from),
                ]
            })
            .collect();
        let spec: Vec<(&str, ColumnKind)> = PLACE_AFTER_YEAR
            .into_iter()
            .chain([
                ("Kategorie", Text),
                ("Inventarnummer", Text),
                ("Seriennummer", Text),
                ("Modell", Text),
                ("Gekauft am", Date),
                ("Kaufdatum geschätzt", Text),
                ("Nutzungsdauer (Jahre)", Integer),
                ("Nutzungsdauer aus", Text),
                ("Lebensende", Text),
                ("Ersatzpreis", Money),
                ("Preis aus", Text),
            ])
            .collect();
        sheets.push(sheet("Geräte", &spec, rows));
    }
    Workbook {
        sheets,
        charts: replacement_chart(report)
            .map(|chart| ChartSheet {
                name: "Diagramm".to_owned(),
                chart,
            })
            .into_iter()
            .collect(),
    }
}

/// A forecast line's place: the budget year first, then where. A year is a number cell in a
/// column of Excel's default display, so it reads `2027`, not `2.027` as a count would.
const PLACE_AFTER_YEAR: [(&str, ColumnKind); 4] = [
    ("Jahr", Text),
    ("Schulträger", Text),
    ("Schulnummer", Text),
    ("Schule", Text),
];

fn funding_total_row(total: &FundingTotal, number: Cell, name: Cell) -> Vec<Cell> {
    vec![
        number,
        name,
        count(total.devices),
        total.price.into(),
        total.funded_amount.into(),
        count(total.devices_without_price),
        count(total.repayment_risks),
    ]
}

/// The proof of use (Verwendungsnachweis): the programme, every funded device, the totals per
/// school, and one row per flag to follow up. Who uses a device is a role, never a name.
pub fn funding_workbook(report: &FundingReport) -> Workbook {
    let p = &report.programme;
    let programme = vec![vec![
        p.authority.clone().into(),
        p.code.clone().into(),
        p.name.clone().into(),
        text(&p.body),
        text(&p.grant_reference),
        p.funded_amount.into(),
        p.funding_share.into(),
        p.period_start.into(),
        p.period_end.into(),
        p.earmark_end.into(),
        report.today.into(),
    ]];
    let devices = report
        .devices
        .iter()
        .map(|d| {
            vec![
                text(&d.asset_tag),
                text(&d.serial_number),
                text(&d.model),
                d.category
                    .parse::<DeviceCategory>()
                    .map_or_else(|_| d.category.clone(), |c| category_name(c).to_owned())
                    .into(),
                text(&d.school_number),
                text(&d.school_name),
                state_name(&d.lifecycle_state).into(),
                d.left_on.into(),
                text(&d.building),
                text(&d.room),
                match (&d.used_by_role, &d.used_by_via) {
                    (Some(role), Some(via)) => format!(
                        "{} ({})",
                        role_name(role),
                        if via == "loan" { "Leihe" } else { "Zuweisung" }
                    )
                    .into(),
                    (Some(role), None) => role_name(role).into(),
                    _ => Cell::Empty,
                },
                d.price.into(),
                d.funded_amount.into(),
                d.earmark_end.into(),
                d.missing_since.into(),
            ]
        })
        .collect();
    let mut schools: Vec<Vec<Cell>> = report
        .schools
        .iter()
        .map(|s| funding_total_row(s, text(&s.school_number), text(&s.school_name)))
        .collect();
    schools.push(funding_total_row(
        &report.total,
        Cell::Empty,
        "Gesamt".into(),
    ));
    let mut flags: Vec<Vec<Cell>> = Vec::new();
    for d in &report.devices {
        let mut flag = |what: String, on: Option<chrono::NaiveDate>| {
            flags.push(vec![
                text(&d.asset_tag),
                text(&d.serial_number),
                text(&d.school_number),
                text(&d.school_name),
                what.into(),
                on.into(),
            ]);
        };
        if d.repayment_risk {
            flag(
                format!(
                    "{} vor Ende der Zweckbindung (Rückforderungsrisiko)",
                    state_name(&d.lifecycle_state)
                ),
                d.left_on,
            );
        }
        if d.unknown_location {
            flag("Standort unbekannt".to_owned(), None);
        }
        if d.missing {
            flag(
                format!(
                    "seit mehr als {} Tagen in keiner Quelle",
                    report.missing_days
                ),
                d.missing_since,
            );
        }
    }
    Workbook {
        sheets: vec![
            sheet(
                "Programm",
                &[
                    ("Schulträger", Text),
                    ("Programm", Text),
                    ("Bezeichnung", Text),
                    ("Fördergeber", Text),
                    ("Aktenzeichen", Text),
                    ("Fördersumme", Money),
                    ("Förderquote", Percent),
                    ("Förderzeitraum von", Date),
                    ("Förderzeitraum bis", Date),
                    ("Zweckbindung bis", Date),
                    ("Stand", Date),
                ],
                programme,
            ),
            sheet(
                "Geräte",
                &[
                    ("Inventarnummer", Text),
                    ("Seriennummer", Text),
                    ("Modell", Text),
                    ("Kategorie", Text),
                    ("Schulnummer", Text),
                    ("Schule", Text),
                    ("Status", Text),
                    ("Ausgeschieden am", Date),
                    ("Gebäude", Text),
                    ("Raum", Text),
                    ("Genutzt von", Text),
                    ("Preis", Money),
                    ("Gefördert", Money),
                    ("Zweckbindung bis", Date),
                    ("Vermisst seit", Date),
                ],
                devices,
            ),
            sheet(
                "Schulen",
                &[
                    ("Schulnummer", Text),
                    ("Schule", Text),
                    ("Geräte", Integer),
                    ("Preis", Money),
                    ("Gefördert", Money),
                    ("Ohne Preis", Integer),
                    ("Rückforderungsrisiken", Integer),
                ],
                schools,
            ),
            sheet(
                "Hinweise",
                &[
                    ("Inventarnummer", Text),
                    ("Seriennummer", Text),
                    ("Schulnummer", Text),
                    ("Schule", Text),
                    ("Hinweis", Text),
                    ("Datum", Date),
                ],
                flags,
            ),
        ],
        charts: Vec::new(),
    }
}

/// The cost split, one row per authority; the share as a percentage cell.
pub fn cost_split_workbook(split: &CostSplit) -> Workbook {
    let rows = split
        .shares
        .iter()
        .map(|s| {
            vec![
                s.authority.clone().into(),
                s.name.clone().into(),
                count(s.primary),
                count(s.lower_secondary),
                count(s.upper_secondary),
                count(s.vocational),
                s.weighted_pupils.into(),
                (s.share_percent / Decimal::from(100)).into(),
                s.amount.into(),
            ]
        })
        .collect();
    Workbook {
        sheets: vec![sheet(
            "Aufteilung",
            &[
                ("Schulträger", Text),
                ("Name", Text),
                ("Primarstufe", Integer),
                ("Sekundarstufe I", Integer),
                ("Sekundarstufe II", Integer),
                ("Berufsbildend", Integer),
                ("Gewichtete Schüler", ColumnKind::Decimal),
                ("Anteil", Percent),
                ("Betrag", Money),
            ],
            rows,
        )],
        charts: Vec::new(),
    }
}

/// Renders `workbook` and writes it to `path` whole or not at all.
pub fn write_workbook(path: &Path, workbook: &Workbook) -> anyhow::Result<PathBuf> {
    let bytes = write_xlsx(workbook).context("cannot render the workbook")?;
    write_atomically(path, &bytes)
}

/// Renders the forecast chart as SVG and writes it to `path`; a forecast with nothing due has
/// no chart, and says so rather than writing an empty picture.
pub fn write_replacement_svg(path: &Path, report: &ReplacementForecast) -> anyhow::Result<PathBuf> {
    let chart = replacement_chart(report).with_context(|| {
        format!(
            "no chart written to {}: no device falls due in {}-{}",
            path.display(),
            report.first_year,
            report.last_year
        )
    })?;
    let svg = chart_svg(&chart, CHART_WIDTH, CHART_HEIGHT).context("cannot draw the chart")?;
    write_atomically(path, svg.as_bytes())
}

/// Writes to a temporary file beside `path` and renames it over `path`, so a reader (or a
/// spreadsheet program holding the old file) never sees half a workbook, and a failed write
/// leaves the old file as it was. Gives the path written.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    let file_name = path
        .file_name()
        .with_context(|| format!("{} is not a file name", path.display()))?;
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(file_name);
    temporary_name.push(format!(".{}.tmp", std::process::id()));
    let temporary = path.with_file_name(temporary_name);
    let written = std::fs::File::create(&temporary)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(error) = written {
        // The temporary file is ours and half written; the error below is what matters.
        let _ = std::fs::remove_file(&temporary);
        return Err(error).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(path.to_path_buf())
}
