//! The reports as staff take them away (`--xlsx`, `--chart`): the replacement forecast and the
//! funding programme's proof of use of the hand-computed fleet in tests/it/reports.rs, written
//! through the functions the command uses, read back with calamine cell by cell, the chart
//! found in the workbook's zip, and the SVG checked for its title, series and totals.

use std::io::{Cursor, Read};
use std::path::PathBuf;

use bestand_cli::commands::reports::workbooks::{
    funding_workbook, replacement_workbook, write_replacement_svg, write_workbook,
};
use bestand_core::access::Scope;
use bestand_core::store::forecast::{self, ReplacementRequest};
use bestand_core::store::funding_report;
use calamine::{open_workbook_from_rs, Data, DataType, Range, Reader, Xlsx};
use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::reports::fleet;
use crate::support::t0;

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// A file in the system's temp folder no other test uses.
fn temp_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("bestand-{}-{name}", uuid::Uuid::now_v7()))
}

fn open(bytes: &[u8]) -> Xlsx<Cursor<Vec<u8>>> {
    open_workbook_from_rs(Cursor::new(bytes.to_vec())).expect("an XLSX calamine reads")
}

fn zip_entry(bytes: &[u8], path: &str) -> Option<String> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).expect("an XLSX is a zip");
    let mut entry = archive.by_name(path).ok()?;
    let mut text = String::new();
    entry.read_to_string(&mut text).expect("UTF-8 XML");
    Some(text)
}

fn text(value: &str) -> Data {
    Data::String(value.to_owned())
}

fn header(range: &Range<Data>) -> Vec<String> {
    (0..range.width() as u32)
        .map(|column| range.get_value((0, column)).unwrap().to_string())
        .collect()
}

/// The data rows (below the header) whose cells in `columns` hold `values`.
fn rows_where(range: &Range<Data>, columns: &[(usize, Data)]) -> Vec<Vec<Data>> {
    range
        .rows()
        .skip(1)
        .filter(|row| columns.iter().all(|(column, value)| &row[*column] == value))
        .map(<[Data]>::to_vec)
        .collect()
}

fn one_row(range: &Range<Data>, columns: &[(usize, Data)]) -> Vec<Data> {
    let mut found = rows_where(range, columns);
    assert_eq!(found.len(), 1, "one row with {columns:?}: {found:?}");
    found.remove(0)
}

fn money(value: &str) -> Data {
    Data::Float(value.parse().unwrap())
}

#[tokio::test]
async fn the_replacement_forecast_as_a_workbook_with_its_chart_and_as_svg() {
    let fleet = fleet().await;
    let request = ReplacementRequest {
        first_year: 2027,
        last_year: 2029,
        price_year: 2026,
        yearly_increase: Decimal::new(25, 3),
        smooth: false,
        target: false,
        spread_growth: false,
        school: None,
        devices: true,
        early_by_tickets: None,
    };
    let report = forecast::replacement_forecast(&fleet.pool, &Scope::All, &request)
        .await
        .unwrap();
    let path = temp_file("forecast.xlsx");
    let written = write_workbook(&path, &replacement_workbook(&report)).unwrap();
    assert_eq!(written, path);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let mut workbook = open(&bytes);
    assert_eq!(
        workbook.sheet_names(),
        ["Prognose", "Summen", "Geräte", "Diagramm"]
    );

    let lines = workbook.worksheet_range("Prognose").unwrap();
    assert_eq!(
        header(&lines),
        [
            "Jahr",
            "Schulträger",
            "Schulnummer",
            "Schule",
            "Kategorie",
            "Art",
            "Geräte",
            "Kosten",
            "Ohne Preis"
        ]
    );
    // Price factor 2028 at 2.5 % from 2026: 1.050625. L1 + L2: (900 + 1000) * 1.050625 =
    // 1996.1875 -> 1996.19, two devices, at school B.
    let laptops_2028 = one_row(
        &lines,
        &[
            (0, Data::Float(2028.0)),
            (2, text("100002")),
            (4, text("Notebook")),
        ],
    );
    assert_eq!(laptops_2028[1], text("musterstadt"));
    assert_eq!(laptops_2028[5], text("Ersatz"));
    assert_eq!(laptops_2028[6], Data::Float(2.0));
    assert_eq!(laptops_2028[7], money("1996.19"));
    assert_eq!(laptops_2028[8], Data::Float(0.0));
    // L3, due 2027 (first seen 2021-03-01 + 6 years), has no price: counted, not costed.
    let laptops_2027 = one_row(&lines, &[(0, Data::Float(2027.0)), (4, text("Notebook"))]);
    assert_eq!(
        laptops_2027[6..],
        [Data::Float(1.0), money("0"), Data::Float(1.0)]
    );

    let sums = workbook.worksheet_range("Summen").unwrap();
    // D1: 2000 * 1.050625 = 2101.25; T1 (overdue since 2025) in 2027: 400 * 1.025 = 410.00.
    let displays = one_row(&sums, &[(0, Data::Float(2028.0)), (1, text("Bildschirm"))]);
    assert_eq!(displays[2..4], [Data::Float(1.0), money("2101.25")]);
    let tablets = one_row(&sums, &[(0, Data::Float(2027.0)), (1, text("Tablet"))]);
    assert_eq!(tablets[2..4], [Data::Float(1.0), money("410.00")]);

    let devices = workbook.worksheet_range("Geräte").unwrap();
    let t1 = one_row(&devices, &[(5, text("T1"))]);
    assert_eq!(t1[0], Data::Float(2027.0), "T1 is overdue: the first year");
    assert!(matches!(t1[8], Data::DateTime(_)), "{:?}", t1[8]);
    assert_eq!(t1[8].as_date(), Some(day(2021, 8, 15)));
    // Life 4 years from catalogue X: 2021 + 4 = 2025.
    assert_eq!(
        (&t1[10], &t1[12]),
        (&Data::Float(4.0), &Data::Float(2025.0))
    );

    // The chart's data: the years down column A, one column per category with its cost.
    let chart = workbook.worksheet_range("Diagramm").unwrap();
    assert_eq!(
        header(&chart),
        ["Haushaltsjahr", "Tablets", "Notebooks", "Bildschirme"]
    );
    let year_row = |year: &str| {
        chart
            .rows()
            .find(|row| row[0] == text(year))
            .unwrap_or_else(|| panic!("{year} in the chart's data"))
            .to_vec()
    };
    // T3: 600 * 1.050625 = 630.375 -> 630.38; the 2028 total 630.38 + 1996.19 + 2101.25 =
    // 4727.82; 2029 has nothing due and shows as zero.
    assert_eq!(
        year_row("2028")[1..],
        [money("630.38"), money("1996.19"), money("2101.25")]
    );
    assert_eq!(
        year_row("2027")[1..],
        [money("410.00"), money("0"), money("0")]
    );
    assert_eq!(year_row("2029")[1..], [money("0"), money("0"), money("0")]);
    let chart_xml = zip_entry(&bytes, "xl/charts/chart1.xml").expect("a native chart");
    assert!(
        chart_xml.contains("<c:barChart>") && chart_xml.contains(r#"<c:grouping val="stacked"/>"#),
        "stacked columns: {chart_xml}"
    );
    assert!(chart_xml.contains("Ersatzbeschaffung 2027–2029"));

    let svg_path = temp_file("forecast.svg");
    write_replacement_svg(&svg_path, &report).unwrap();
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    std::fs::remove_file(&svg_path).unwrap();
    for expected in [
        "Ersatzbeschaffung 2027–2029",
        "Tablets",
        "Notebooks",
        "Bildschirme",
        // The totals above the columns, the euro sign after a no-break space.
        "4.727,82\u{a0}€",
        "410\u{a0}€",
    ] {
        assert!(svg.contains(expected), "the SVG shows {expected}");
    }
}

#[tokio::test]
async fn the_proof_of_use_as_a_workbook_of_devices_schools_and_flags() {
    let fleet = fleet().await;
    let report =
        funding_report::funding_report(&fleet.pool, &Scope::All, t0(), "DP-2021", None, 30)
            .await
            .unwrap();
    let path = temp_file("verwendungsnachweis.xlsx");
    write_workbook(&path, &funding_workbook(&report)).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let mut workbook = open(&bytes);
    assert_eq!(
        workbook.sheet_names(),
        ["Programm", "Geräte", "Schulen", "Hinweise"]
    );

    let programme = workbook.worksheet_range("Programm").unwrap();
    let facts = programme.rows().nth(1).unwrap().to_vec();
    assert_eq!(facts[1], text("DP-2021"));
    assert_eq!(facts[4], text("DP-NRW-4711"));
    assert_eq!(facts[6], Data::Float(0.9), "the share as a percent cell");
    assert_eq!(facts[9].as_date(), Some(day(2029, 12, 31)));

    let devices = workbook.worksheet_range("Geräte").unwrap();
    assert_eq!(devices.height(), 1 + 4, "T1, T2, T4, X1 under the header");
    // T2: 380.00 * 0.9 = 342.00, lent to a teacher: the role, never the name.
    let t2 = one_row(&devices, &[(0, text("T2"))]);
    assert_eq!(t2[6], text("verliehen"));
    assert_eq!(t2[10], text("Lehrkraft (Leihe)"));
    assert_eq!(t2[11], money("380.00"));
    assert_eq!(t2[12], money("342.00"));
    // T4 retired 2024-06-01.
    let t4 = one_row(&devices, &[(0, text("T4"))]);
    assert_eq!(t4[7].as_date(), Some(day(2024, 6, 1)));
    assert_eq!(t4[13].as_date(), Some(day(2029, 12, 31)));

    // A: T1, T2, T4: 350 + 380 + 350 = 1080.00, funded 972.00, one risk (T4);
    // B: X1 800.00, 720.00; all: 1880.00, 1692.00.
    let schools = workbook.worksheet_range("Schulen").unwrap();
    let a = one_row(&schools, &[(0, text("100001"))]);
    assert_eq!(
        a[2..],
        [
            Data::Float(3.0),
            money("1080.00"),
            money("972.00"),
            Data::Float(0.0),
            Data::Float(1.0)
        ]
    );
    let total = one_row(&schools, &[(1, text("Gesamt"))]);
    assert_eq!(
        total[2..5],
        [Data::Float(4.0), money("1880.00"), money("1692.00")]
    );

    // The flags: T4 left before the earmark end (2024-06-01), T2 has no room, T1 is missing
    // since 2026-09-01 (83 days before 2026-11-23, more than 30).
    let flags = workbook.worksheet_range("Hinweise").unwrap();
    let mut seen: Vec<(String, String, Option<NaiveDate>)> = flags
        .rows()
        .skip(1)
        .map(|row| (row[0].to_string(), row[4].to_string(), row[5].as_date()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (
                "T1".into(),
                "seit mehr als 30 Tagen in keiner Quelle".into(),
                Some(day(2026, 9, 1))
            ),
            ("T2".into(), "Standort unbekannt".into(), None),
            (
                "T4".into(),
                "ausgemustert vor Ende der Zweckbindung (Rückforderungsrisiko)".into(),
                Some(day(2024, 6, 1))
            ),
        ]
    );

    // No name or login of the fleet's persons in any cell of any sheet.
    for sheet in workbook.sheet_names() {
        let range = workbook.worksheet_range(&sheet).unwrap();
        for cell in range.used_cells() {
            let value = cell.2.to_string();
            for name in [
                "Mia",
                "Schmidt",
                "mia.schmidt",
                "Jonas",
                "Weber",
                "jonas.weber",
            ] {
                assert!(!value.contains(name), "{sheet} names {name}: {value}");
            }
        }
    }
}
