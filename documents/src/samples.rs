//! Invented report data, so that `cargo run -p bestand-documents --example report_samples`
//! (which writes them for a person to look at) and the tests render the same documents.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::chart::{Chart, ChartKind, Series};
use crate::workbook::{Cell, ChartSheet, Column, ColumnKind, Sheet, Workbook};

/// A replacement forecast of invented figures (six budget years, four device categories), so
/// that the example and the tests draw the chart a person has looked at.
pub fn forecast() -> Chart {
    let series = |name: &str, values: [i64; 6]| Series {
        name: name.to_owned(),
        values: values.into_iter().map(|v| Some(Decimal::from(v))).collect(),
    };
    Chart {
        title: "Ersatzbeschaffung 2027–2032".to_owned(),
        kind: ChartKind::StackedColumn,
        x_title: "Haushaltsjahr".to_owned(),
        y_title: "Kosten".to_owned(),
        categories: (2027..=2032).map(|year| year.to_string()).collect(),
        series: vec![
            series("Tablets", [24_150, 61_272, 18_900, 9_450, 33_600, 12_075]),
            series("Laptops", [12_600, 8_400, 26_250, 4_200, 14_700, 21_000]),
            series("Desktop-PCs", [6_300, 0, 10_800, 3_600, 0, 7_200]),
            series("Displays", [4_500, 2_250, 0, 6_750, 1_500, 3_000]),
        ],
        y_is_money: true,
    }
}

fn column(header: &str, kind: ColumnKind) -> Column {
    Column {
        header: header.to_owned(),
        kind,
    }
}

pub(crate) fn date(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).expect("a date")
}

/// A sheet with a column of every kind, and a text that looks like a formula (it stays text).
pub fn devices() -> Sheet {
    Sheet {
        name: "Geräte".to_owned(),
        columns: vec![
            column("Schule", ColumnKind::Text),
            column("Anzahl", ColumnKind::Integer),
            column("Preis", ColumnKind::Money),
            column("Gekauft am", ColumnKind::Date),
            column("Förderanteil", ColumnKind::Percent),
            column("Restwert", ColumnKind::Decimal),
            column("Ausgemustert", ColumnKind::Text),
        ],
        rows: vec![
            vec![
                "Grundschule Am Markt".into(),
                1_250_i64.into(),
                Decimal::new(123_456, 2).into(),
                date(2024, 8, 1).into(),
                Decimal::new(9, 1).into(),
                Decimal::new(61_728, 2).into(),
                false.into(),
            ],
            vec![
                "=SUMME(A1:A9)".into(),
                3_i64.into(),
                Decimal::new(123_456_789, 2).into(),
                date(2021, 12, 6).into(),
                Decimal::new(125, 3).into(),
                Cell::Empty,
                true.into(),
            ],
        ],
    }
}

pub fn report() -> Workbook {
    Workbook {
        sheets: vec![devices()],
        charts: vec![ChartSheet {
            name: "Prognose".to_owned(),
            chart: forecast(),
        }],
    }
}
