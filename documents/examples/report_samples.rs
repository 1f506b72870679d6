//! Writes the sample forecast as SVG (and as PNG-ready file) and as an XLSX workbook into a
//! folder, so a person can look at what the renderers make: `cargo run -p bestand-documents
//! --example report_samples -- target/report-samples`.

use std::error::Error;
use std::path::PathBuf;

use bestand_documents::chart::{chart_svg, Chart, ChartKind, Series};
use bestand_documents::samples;
use bestand_documents::workbook::write_xlsx;
use rust_decimal::Decimal;

fn main() -> Result<(), Box<dyn Error>> {
    let folder = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/report-samples".to_owned()),
    );
    std::fs::create_dir_all(&folder)?;
    let stacked = samples::forecast();
    let mut columns = stacked.clone();
    columns.kind = ChartKind::Column;
    let mut lines = stacked.clone();
    lines.kind = ChartKind::Line;
    let schools = schools();
    for (name, chart) in [
        ("forecast", &stacked),
        ("columns", &columns),
        ("lines", &lines),
        ("schools", &schools),
    ] {
        let path = folder.join(format!("{name}.svg"));
        std::fs::write(&path, chart_svg(chart, 900, 500)?)?;
        println!("{}", path.display());
    }
    let path = folder.join("forecast.xlsx");
    std::fs::write(&path, write_xlsx(&samples::report())?)?;
    println!("{}", path.display());
    Ok(())
}

/// Long category names, many series and small values: labels that must turn, a legend that
/// must wrap, an axis without euros.
fn schools() -> Chart {
    let names = [
        "Grundschule Am Markt",
        "Gesamtschule Nord",
        "Gymnasium Musterstadt",
        "Realschule Süd",
        "Berufskolleg Technik",
        "Förderschule Lindenweg",
    ];
    let kinds = [
        "Störung",
        "Anfrage",
        "Bestellung",
        "Rückgabe",
        "Reparatur",
        "Einrichtung",
        "Zugang",
        "Schulung",
        "Sonstiges",
    ];
    Chart {
        title: "Ticketstunden je Schule".to_owned(),
        kind: ChartKind::StackedColumn,
        x_title: "Schule".to_owned(),
        y_title: "Stunden".to_owned(),
        categories: names.iter().map(|name| (*name).to_owned()).collect(),
        series: kinds
            .iter()
            .enumerate()
            .map(|(kind, name)| Series {
                name: (*name).to_owned(),
                values: (0..names.len())
                    .map(|school| Some(Decimal::new(((kind * 7 + school * 3) % 11) as i64 * 5, 1)))
                    .collect(),
            })
            .collect(),
        y_is_money: false,
    }
}
