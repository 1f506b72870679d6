//! Tests of the workbook writer: the XLSX read back with calamine, cell by cell, and, for what
//! calamine does not expose (formats, frozen pane, autofilter, chart), the XML inside the zip.

use std::io::{Cursor, Read};

use calamine::{open_workbook_from_rs, Data, DataType, Reader, Xlsx};
use rust_decimal::Decimal;

use super::*;
use crate::samples::{date, report};

fn zip_entry(bytes: &[u8], path: &str) -> Option<String> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).expect("an XLSX is a zip");
    let mut entry = archive.by_name(path).ok()?;
    let mut text = String::new();
    entry.read_to_string(&mut text).expect("UTF-8 XML");
    Some(text)
}

fn xml(text: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse(text).expect("well-formed XML")
}

/// What styles.xml says about one cell: its number format code, whether it is bold, and its
/// fill colour.
#[derive(Debug, PartialEq)]
struct CellStyle {
    format: String,
    bold: bool,
    fill: Option<String>,
}

fn cell_style(bytes: &[u8], sheet_path: &str, address: &str) -> CellStyle {
    let sheet_text = zip_entry(bytes, sheet_path).expect("the sheet");
    let sheet = xml(&sheet_text);
    let cell = sheet
        .descendants()
        .find(|node| node.has_tag_name("c") && node.attribute("r") == Some(address))
        .unwrap_or_else(|| panic!("cell {address}"));
    let index: usize = cell.attribute("s").unwrap_or("0").parse().expect("index");
    let styles_text = zip_entry(bytes, "xl/styles.xml").expect("styles");
    let styles = xml(&styles_text);
    let children = |parent: &str, child: &str| -> Vec<roxmltree::Node<'_, '_>> {
        styles
            .descendants()
            .find(|node| node.has_tag_name(parent))
            .map(|node| {
                node.children()
                    .filter(|node| node.has_tag_name(child))
                    .collect()
            })
            .unwrap_or_default()
    };
    let xf = children("cellXfs", "xf")[index];
    let attribute =
        |name: &str| -> usize { xf.attribute(name).unwrap_or("0").parse().expect("an index") };
    let format_id = attribute("numFmtId");
    let format = match format_id {
        0 => "General".to_owned(),
        3 => "#,##0".to_owned(),
        4 => "#,##0.00".to_owned(),
        custom => children("numFmts", "numFmt")
            .into_iter()
            .find(|node| node.attribute("numFmtId") == Some(custom.to_string().as_str()))
            .and_then(|node| node.attribute("formatCode"))
            .expect("a custom format")
            .to_owned(),
    };
    let font = children("fonts", "font")[attribute("fontId")];
    let fill = children("fills", "fill")[attribute("fillId")];
    CellStyle {
        format,
        bold: font.children().any(|node| node.has_tag_name("b")),
        fill: fill
            .descendants()
            .find(|node| node.has_tag_name("fgColor"))
            .and_then(|node| node.attribute("rgb"))
            .map(str::to_owned),
    }
}

#[test]
fn a_data_sheet_reads_back_cell_by_cell_with_german_formats() {
    let bytes = write_xlsx(&report()).expect("the workbook is written");
    let mut workbook: Xlsx<_> =
        open_workbook_from_rs(Cursor::new(bytes.clone())).expect("calamine reads it");
    assert_eq!(workbook.sheet_names(), ["Geräte", "Prognose"]);
    let range = workbook.worksheet_range("Geräte").expect("the sheet");
    let cell = |row: u32, column: u32| range.get_value((row, column)).cloned();

    let headers: Vec<Option<Data>> = (0..7).map(|column| cell(0, column)).collect();
    let expected: Vec<Option<Data>> = [
        "Schule",
        "Anzahl",
        "Preis",
        "Gekauft am",
        "Förderanteil",
        "Restwert",
        "Ausgemustert",
    ]
    .iter()
    .map(|header| Some(Data::String((*header).to_owned())))
    .collect();
    assert_eq!(headers, expected);

    assert_eq!(
        cell(1, 0),
        Some(Data::String("Grundschule Am Markt".to_owned()))
    );
    assert_eq!(cell(1, 1), Some(Data::Float(1250.0)));
    assert_eq!(cell(1, 2), Some(Data::Float(1234.56)));
    assert_eq!(cell(2, 2), Some(Data::Float(1_234_567.89)));
    let bought = cell(1, 3).expect("a date cell");
    assert!(matches!(bought, Data::DateTime(_)), "{bought:?}");
    assert_eq!(bought.as_date(), Some(date(2024, 8, 1)));
    assert_eq!(
        cell(2, 3).and_then(|cell| cell.as_date()),
        Some(date(2021, 12, 6))
    );
    assert_eq!(cell(1, 4), Some(Data::Float(0.9)));
    assert_eq!(cell(2, 4), Some(Data::Float(0.125)));
    assert_eq!(cell(1, 5), Some(Data::Float(617.28)));
    assert_eq!(cell(2, 5).unwrap_or(Data::Empty), Data::Empty);
    assert_eq!(cell(1, 6), Some(Data::Bool(false)));
    assert_eq!(cell(2, 6), Some(Data::Bool(true)));
    // A text that looks like a formula stays text.
    assert_eq!(cell(2, 0), Some(Data::String("=SUMME(A1:A9)".to_owned())));
    let sheet = zip_entry(&bytes, "xl/worksheets/sheet1.xml").expect("the sheet's XML");
    assert!(!sheet.contains("<f>"), "no formula in {sheet}");

    // Numbers are numbers in the XML too (no `t="s"` or `t="str"` on them), with their format.
    let sheet_xml = xml(&sheet);
    for address in ["B2", "C2", "D2", "E2", "F2", "C3"] {
        let node = sheet_xml
            .descendants()
            .find(|node| node.has_tag_name("c") && node.attribute("r") == Some(address))
            .expect("the cell");
        assert_eq!(node.attribute("t"), None, "{address} is a number");
    }
    let style = |address: &str| cell_style(&bytes, "xl/worksheets/sheet1.xml", address);
    assert_eq!(style("B2").format, "#,##0");
    assert_eq!(style("C2").format, "#,##0.00 [$€-407]");
    assert_eq!(style("D2").format, "dd.mm.yyyy");
    assert_eq!(style("E2").format, "0.0 %");
    assert_eq!(style("F2").format, "#,##0.00");
    assert_eq!(style("A2").format, "General");
    assert_eq!(
        style("A1"),
        CellStyle {
            format: "General".to_owned(),
            bold: true,
            fill: Some("FFD9E2F3".to_owned()),
        }
    );
    assert!(!style("A2").bold);
}

#[test]
fn every_sheet_freezes_its_header_filters_its_data_and_fits_its_columns() {
    let bytes = write_xlsx(&report()).expect("the workbook is written");
    for (path, filtered) in [
        ("xl/worksheets/sheet1.xml", "A1:G3"),
        ("xl/worksheets/sheet2.xml", "A1:E7"),
    ] {
        let text = zip_entry(&bytes, path).expect("the sheet");
        let sheet = xml(&text);
        let pane = sheet
            .descendants()
            .find(|node| node.has_tag_name("pane"))
            .unwrap_or_else(|| panic!("{path} has a pane"));
        assert_eq!(pane.attribute("state"), Some("frozen"), "{path}");
        assert_eq!(pane.attribute("ySplit"), Some("1"), "{path}");
        assert_eq!(pane.attribute("topLeftCell"), Some("A2"), "{path}");
        assert_eq!(pane.attribute("xSplit"), None, "{path}: no column frozen");
        let filter = sheet
            .descendants()
            .find(|node| node.has_tag_name("autoFilter"))
            .unwrap_or_else(|| panic!("{path} has an autofilter"));
        assert_eq!(filter.attribute("ref"), Some(filtered), "{path}");
    }

    // Widths in characters, as the widest shown value (or the header and its filter button)
    // gives them, plus one: "Grundschule Am Markt" 20 → 21; "Anzahl" 6 + 3 → 10;
    // "1.234.567,89 €" 14 → 15; a date 10 chars, "Gekauft am" 10 + 3 → 14.
    // rust_xlsxwriter stores a width w as w + 5/7 (Excel's padding, 5 of 7 pixels per char).
    let text = zip_entry(&bytes, "xl/worksheets/sheet1.xml").expect("the sheet");
    let sheet = xml(&text);
    let widths: Vec<f64> = sheet
        .descendants()
        .filter(|node| node.has_tag_name("col"))
        .map(|node| {
            node.attribute("width")
                .expect("a width")
                .parse()
                .expect("a number")
        })
        .collect();
    let characters: Vec<f64> = widths
        .iter()
        .map(|width| (width - 5.0 / 7.0).round())
        .collect();
    assert_eq!(&characters[..4], [21.0, 10.0, 15.0, 14.0]);
}

#[test]
fn the_chart_sheet_holds_its_data_and_a_native_stacked_column_chart_of_it() {
    let bytes = write_xlsx(&report()).expect("the workbook is written");
    let mut workbook: Xlsx<_> =
        open_workbook_from_rs(Cursor::new(bytes.clone())).expect("calamine reads it");
    let range = workbook
        .worksheet_range("Prognose")
        .expect("the chart sheet");
    let cell = |row: u32, column: u32| range.get_value((row, column)).cloned();
    assert_eq!(cell(0, 0), Some(Data::String("Haushaltsjahr".to_owned())));
    assert_eq!(cell(0, 1), Some(Data::String("Tablets".to_owned())));
    assert_eq!(cell(0, 4), Some(Data::String("Displays".to_owned())));
    assert_eq!(cell(1, 0), Some(Data::String("2027".to_owned())));
    assert_eq!(cell(6, 0), Some(Data::String("2032".to_owned())));
    assert_eq!(cell(2, 1), Some(Data::Float(61_272.0)));
    assert_eq!(cell(6, 4), Some(Data::Float(3_000.0)));
    assert_eq!(
        cell_style(&bytes, "xl/worksheets/sheet2.xml", "B2").format,
        "#,##0.00 [$€-407]"
    );

    let chart = zip_entry(&bytes, "xl/charts/chart1.xml").expect("xl/charts/chart1.xml");
    assert!(chart.contains("<c:barChart>"), "{chart}");
    assert!(chart.contains("<c:barDir val=\"col\"/>"), "{chart}");
    assert!(chart.contains("<c:grouping val=\"stacked\"/>"), "{chart}");
    for range in [
        "Prognose!$B$1",
        "Prognose!$E$1",
        "Prognose!$A$2:$A$7",
        "Prognose!$B$2:$B$7",
        "Prognose!$E$2:$E$7",
    ] {
        assert!(
            chart.contains(&format!("<c:f>{range}</c:f>")),
            "{range} in {chart}"
        );
    }
    for name in ["Tablets", "Laptops", "Desktop-PCs", "Displays"] {
        assert!(chart.contains(&format!("<c:v>{name}</c:v>")), "{name}");
    }
    for title in ["Ersatzbeschaffung 2027–2032", "Haushaltsjahr", "Kosten"] {
        assert!(chart.contains(&format!("<a:t>{title}</a:t>")), "{title}");
    }
    assert!(chart.contains("<c:legend>"), "a legend");
    assert!(chart.contains("<c:legendPos val=\"b\"/>"), "below the plot");
    assert!(
        chart.contains("formatCode=\"#,##0 [$€-407]\""),
        "the y axis in euros"
    );
    // The sheet draws the chart.
    let drawing = zip_entry(&bytes, "xl/drawings/drawing1.xml").expect("the sheet's drawing");
    assert!(drawing.contains("chart"), "{drawing}");
    let rels = zip_entry(&bytes, "xl/worksheets/_rels/sheet2.xml.rels").expect("sheet2's rels");
    assert!(rels.contains("../drawings/drawing1.xml"), "{rels}");
}

#[test]
fn the_same_report_gives_the_same_bytes() {
    let first = write_xlsx(&report()).expect("written");
    assert_eq!(first, write_xlsx(&report()).expect("written"));
    let core = zip_entry(&first, "docProps/core.xml").expect("properties");
    assert!(core.contains("1980-01-01T00:00:00Z"), "{core}");
}

#[test]
fn sheet_names_are_made_to_fit_excels_rules_the_same_way_every_time() {
    let names = sheet_names(&[
        "Verwendungsnachweis DigitalPakt Schule 2019–2024",
        "Kosten [netto]: 2027/2028?",
        "'Zitat'",
        "Geräte",
        "GERÄTE",
        "geräte",
        "History",
        "Verwendungsnachweis DigitalPakt Schule 2019–2024",
    ])
    .expect("every name can be fixed");
    assert_eq!(
        names,
        [
            // 31 characters of the 48.
            "Verwendungsnachweis DigitalPakt",
            "Kosten _netto__ 2027_2028_",
            "Zitat",
            "Geräte",
            "GERÄTE (2)",
            "geräte (3)",
            "History (2)",
            // 27 characters and the suffix: the cut lands after "Digital".
            "Verwendungsnachweis Digital (2)",
        ]
    );
    for name in &names {
        assert!(name.encode_utf16().count() <= 31, "{name}");
    }
    // Excel counts UTF-16 units: an emoji is two of them.
    let names = sheet_names(&["📊📊📊📊📊📊📊📊📊📊📊📊📊📊📊📊"]).expect("fixed");
    assert_eq!(names[0].encode_utf16().count(), 30);

    let error = sheet_names(&["Gut", " '' "]).expect_err("nothing left");
    assert_eq!(
        error.to_string(),
        "sheet name \" '' \": a sheet needs a name"
    );

    // The fixed names are the ones the file carries.
    let mut workbook = report();
    workbook.sheets[0].name = "Geräte / Schule".to_owned();
    workbook.charts[0].name = "geräte _ schule".to_owned();
    let bytes = write_xlsx(&workbook).expect("written");
    let reader: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).expect("read");
    assert_eq!(
        reader.sheet_names(),
        ["Geräte _ Schule", "geräte _ schule (2)"]
    );
}

#[test]
fn data_that_does_not_fit_its_sheet_is_refused_naming_the_place() {
    let mut workbook = report();
    workbook.sheets[0].rows[1].pop();
    let error = write_xlsx(&workbook).expect_err("a short row");
    assert_eq!(
        error.to_string(),
        "sheet \"Geräte\", row 3: 6 cells for 7 columns"
    );

    let mut workbook = report();
    workbook.sheets[0].rows[0][3] = Cell::Date(date(1899, 12, 1));
    let error = write_xlsx(&workbook).expect_err("a date before Excel's calendar");
    assert_eq!(
        error.to_string(),
        "sheet \"Geräte\", cell D2: 1899-12-01 is outside 1900-01-01 to 9999-12-31, \
         the dates a spreadsheet shows"
    );

    let mut workbook = report();
    workbook.charts[0].chart.series[2]
        .values
        .push(Some(Decimal::ONE));
    let error = write_xlsx(&workbook).expect_err("a long series");
    assert!(
        error
            .to_string()
            .ends_with("series \"Desktop-PCs\" has 7 values for 6 categories"),
        "{error}"
    );

    let error = write_xlsx(&Workbook::default()).expect_err("nothing to write");
    assert_eq!(error.to_string(), "the workbook has no sheet");

    let mut workbook = report();
    workbook.sheets[0].columns.clear();
    workbook.sheets[0].rows.clear();
    let error = write_xlsx(&workbook).expect_err("no columns");
    assert_eq!(error.to_string(), "sheet \"Geräte\" has no columns");
}
