//! Report workbooks (XLSX): every report's views as sheets a school authority's staff open in
//! Excel or LibreOffice, filter and sum, and charts that stay live in the workbook.
//!
//! rust_xlsxwriter writes the file. Every data sheet gets a bold, filled header row that stays
//! in view (frozen pane), an autofilter over its data, columns as wide as their content, and
//! German number formats by column kind; values are stored as numbers and dates, never as text,
//! so sums and filters work. The format codes are stored in the locale-independent syntax the
//! file format requires, and Excel and LibreOffice show them with the reader's separators
//! (`docs/documents.md`, "Number formats").
//!
//! Documents read no clock: the workbook's creation time is a fixed 1980-01-01 (the date the
//! zip entries carry too), so the same data gives the same bytes.

#[cfg(test)]
mod tests;

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use rust_xlsxwriter::{
    column_number_to_name, ChartLegendPosition, ChartType, DocProperties, ExcelDateTime, Format,
    FormatBorder, Worksheet, XlsxError,
};

use crate::chart::{Chart, ChartKind};
use crate::{german, DocumentError};

/// Money: `1.234,56 €` where the reader's separators are German. `[$€-407]` is the euro sign as
/// a currency symbol of German (Germany), LCID 0x407.
pub const MONEY_FORMAT: &str = "#,##0.00 [$€-407]";
/// The y axis of a money chart: whole euros, `12.345 €`.
pub const MONEY_AXIS_FORMAT: &str = "#,##0 [$€-407]";
/// Counts: `12.345`.
pub const INTEGER_FORMAT: &str = "#,##0";
/// Other numbers: `1.234,50`.
pub const DECIMAL_FORMAT: &str = "#,##0.00";
/// Fractions as percentages: `0.125` shows as `12,5 %`.
pub const PERCENT_FORMAT: &str = "0.0 %";
/// Dates: `06.12.2026` (German Excel lists the code as `TT.MM.JJJJ`).
pub const DATE_FORMAT: &str = "dd.mm.yyyy";

/// A workbook: the data sheets in order, then the chart sheets.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Workbook {
    pub sheets: Vec<Sheet>,
    pub charts: Vec<ChartSheet>,
}

/// One view of a report as a table: a header row from the columns, then one row per entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Sheet {
    /// Made to fit Excel's rules when written (`sheet_names`).
    pub name: String,
    pub columns: Vec<Column>,
    /// Each row has exactly one cell per column.
    pub rows: Vec<Vec<Cell>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub header: String,
    /// How the column's numbers and dates are shown.
    pub kind: ColumnKind,
}

/// The display of a column's numbers; a number is always stored as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Text,
    /// `#,##0`
    Integer,
    /// `#,##0.00 [$€-407]`
    Money,
    /// `#,##0.00`
    Decimal,
    /// `0.0 %`; the cells hold fractions (0.125 for 12,5 %), as Excel's percent cells do.
    Percent,
    /// `dd.mm.yyyy`
    Date,
}

/// One cell's value. A number in a `Text` column keeps Excel's default display; a date is
/// shown as a date in any column.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Integer(i64),
    Number(Decimal),
    Date(NaiveDate),
    /// Shown as WAHR / FALSCH in German Excel and LibreOffice.
    Bool(bool),
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Cell::Text(text.to_owned())
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell::Text(text)
    }
}

impl From<i64> for Cell {
    fn from(value: i64) -> Self {
        Cell::Integer(value)
    }
}

impl From<Decimal> for Cell {
    fn from(value: Decimal) -> Self {
        Cell::Number(value)
    }
}

impl From<NaiveDate> for Cell {
    fn from(date: NaiveDate) -> Self {
        Cell::Date(date)
    }
}

impl From<bool> for Cell {
    fn from(value: bool) -> Self {
        Cell::Bool(value)
    }
}

impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(value: Option<T>) -> Self {
        value.map_or(Cell::Empty, Into::into)
    }
}

/// A sheet holding a chart and, left of it, the data it plots: the categories in column A
/// (headed by the x axis title), one column per series (headed by its name).
#[derive(Debug, Clone, PartialEq)]
pub struct ChartSheet {
    pub name: String,
    pub chart: Chart,
}

/// The chart's size on its sheet, in pixels.
const CHART_WIDTH: u32 = 760;
const CHART_HEIGHT: u32 = 420;
/// Column widths in characters: the header gets room for the autofilter's button, and a long
/// text stops widening its column at `MAX_WIDTH` (the cell still holds all of it).
const FILTER_BUTTON: usize = 3;
const MIN_WIDTH: usize = 6;
const MAX_WIDTH: usize = 60;

/// Writes `workbook` as the bytes of an XLSX file.
pub fn write_xlsx(workbook: &Workbook) -> Result<Vec<u8>, DocumentError> {
    if workbook.sheets.is_empty() && workbook.charts.is_empty() {
        return Err(DocumentError::EmptyWorkbook);
    }
    let requested: Vec<&str> = workbook
        .sheets
        .iter()
        .map(|sheet| sheet.name.as_str())
        .chain(workbook.charts.iter().map(|sheet| sheet.name.as_str()))
        .collect();
    let names = sheet_names(&requested)?;
    let formats = Formats::new();

    let mut xlsx = rust_xlsxwriter::Workbook::new();
    let created = ExcelDateTime::from_ymd(1980, 1, 1).map_err(xlsx_error)?;
    xlsx.set_properties(&DocProperties::new().set_creation_datetime(&created));
    let mut names = names.into_iter();
    for sheet in &workbook.sheets {
        let name = names.next().unwrap_or_default();
        let worksheet = data_sheet(&name, &sheet.columns, &sheet.rows, &formats)?;
        xlsx.push_worksheet(worksheet);
    }
    for sheet in &workbook.charts {
        let name = names.next().unwrap_or_default();
        let worksheet = chart_sheet(&name, &sheet.chart, &formats)?;
        xlsx.push_worksheet(worksheet);
    }
    xlsx.save_to_buffer().map_err(xlsx_error)
}

fn xlsx_error(error: XlsxError) -> DocumentError {
    DocumentError::Xlsx(error.to_string())
}

/// Excel's rules for sheet names, applied the same way every time: the characters
/// `[ ] : * ? / \` become `_`, apostrophes at either end are dropped, a name is cut to 31
/// characters (UTF-16 units, as Excel counts), and a name already taken (letter case aside, as
/// Excel compares) or the reserved `History` gets ` (2)`, ` (3)`, ... within those 31. A name
/// with nothing left is refused.
pub fn sheet_names(requested: &[&str]) -> Result<Vec<String>, DocumentError> {
    const LIMIT: usize = 31;
    let mut taken: Vec<String> = vec!["history".to_owned()];
    let mut names = Vec::with_capacity(requested.len());
    for name in requested {
        let cleaned: String = name
            .trim()
            .chars()
            .map(|character| match character {
                '[' | ']' | ':' | '*' | '?' | '/' | '\\' => '_',
                other => other,
            })
            .collect();
        let cleaned = cleaned.trim_matches('\'').trim();
        if cleaned.is_empty() {
            return Err(DocumentError::SheetName {
                name: (*name).to_owned(),
                reason: "a sheet needs a name",
            });
        }
        let mut candidate = cut_utf16(cleaned, LIMIT);
        let mut number = 2;
        while taken.contains(&candidate.to_lowercase()) {
            let suffix = format!(" ({number})");
            candidate = format!(
                "{}{suffix}",
                cut_utf16(cleaned, LIMIT - suffix.len()).trim_end()
            );
            number += 1;
        }
        taken.push(candidate.to_lowercase());
        names.push(candidate);
    }
    Ok(names)
}

/// The longest start of `text` that is at most `limit` UTF-16 units long, without an
/// apostrophe at its end (Excel refuses one there).
fn cut_utf16(text: &str, limit: usize) -> String {
    let mut used = 0;
    let cut: String = text
        .chars()
        .take_while(|character| {
            used += character.len_utf16();
            used <= limit
        })
        .collect();
    cut.trim_end_matches('\'').to_owned()
}

/// The formats the sheets share; rust_xlsxwriter deduplicates them in the file.
struct Formats {
    header: Format,
    money: Format,
    integer: Format,
    decimal: Format,
    percent: Format,
    date: Format,
}

impl Formats {
    fn new() -> Self {
        Self {
            header: Format::new()
                .set_bold()
                .set_background_color(0xD9E2F3)
                .set_border_bottom(FormatBorder::Thin),
            money: Format::new().set_num_format(MONEY_FORMAT),
            integer: Format::new().set_num_format(INTEGER_FORMAT),
            decimal: Format::new().set_num_format(DECIMAL_FORMAT),
            percent: Format::new().set_num_format(PERCENT_FORMAT),
            date: Format::new().set_num_format(DATE_FORMAT),
        }
    }

    /// The format a number gets in a column of `kind`; `None` keeps Excel's default.
    fn number(&self, kind: ColumnKind) -> Option<&Format> {
        match kind {
            ColumnKind::Text | ColumnKind::Date => None,
            ColumnKind::Integer => Some(&self.integer),
            ColumnKind::Money => Some(&self.money),
            ColumnKind::Decimal => Some(&self.decimal),
            ColumnKind::Percent => Some(&self.percent),
        }
    }
}

fn data_sheet(
    name: &str,
    columns: &[Column],
    rows: &[Vec<Cell>],
    formats: &Formats,
) -> Result<Worksheet, DocumentError> {
    if columns.is_empty() {
        return Err(DocumentError::NoColumns {
            sheet: name.to_owned(),
        });
    }
    let mut worksheet = Worksheet::new();
    worksheet.set_name(name).map_err(xlsx_error)?;
    let mut widths: Vec<usize> = columns
        .iter()
        .map(|column| column.header.chars().count() + FILTER_BUTTON)
        .collect();
    for (index, column) in columns.iter().enumerate() {
        let index = column_index(index)?;
        worksheet
            .write_string_with_format(0, index, &column.header, &formats.header)
            .map_err(xlsx_error)?;
    }
    for (number, row) in rows.iter().enumerate() {
        // The spreadsheet's row number, which messages name: the header is row 1.
        let row_number = number + 2;
        if row.len() != columns.len() {
            return Err(DocumentError::RowLength {
                sheet: name.to_owned(),
                row: row_number,
                expected: columns.len(),
                found: row.len(),
            });
        }
        let excel_row = u32::try_from(number + 1).map_err(|_| DocumentError::Cell {
            sheet: name.to_owned(),
            cell: format!("A{row_number}"),
            message: "more rows than a sheet holds (1.048.576)".to_owned(),
        })?;
        for (index, (cell, column)) in row.iter().zip(columns).enumerate() {
            let excel_column = column_index(index)?;
            write_cell(
                &mut worksheet,
                excel_row,
                excel_column,
                cell,
                column.kind,
                formats,
            )
            .map_err(|error| DocumentError::Cell {
                sheet: name.to_owned(),
                cell: format!("{}{row_number}", column_number_to_name(excel_column)),
                message: error,
            })?;
            widths[index] = widths[index].max(shown_width(cell, column.kind));
        }
    }
    for (index, width) in widths.into_iter().enumerate() {
        let width = width.clamp(MIN_WIDTH, MAX_WIDTH) + 1;
        worksheet
            .set_column_width(column_index(index)?, width as f64)
            .map_err(xlsx_error)?;
    }
    let last_row = u32::try_from(rows.len()).unwrap_or(u32::MAX);
    let last_column = column_index(columns.len() - 1)?;
    worksheet.set_freeze_panes(1, 0).map_err(xlsx_error)?;
    // Printed, a report sheet is one page wide (landscape, scaled) with its header on every page.
    worksheet.set_landscape();
    worksheet.set_print_fit_to_pages(1, 0);
    worksheet.set_repeat_rows(0, 0).map_err(xlsx_error)?;
    worksheet
        .autofilter(0, 0, last_row, last_column)
        .map_err(xlsx_error)?;
    Ok(worksheet)
}

fn column_index(index: usize) -> Result<u16, DocumentError> {
    u16::try_from(index)
        .map_err(|_| DocumentError::Xlsx(format!("{index} columns are more than a sheet holds")))
}

fn write_cell(
    worksheet: &mut Worksheet,
    row: u32,
    column: u16,
    cell: &Cell,
    kind: ColumnKind,
    formats: &Formats,
) -> Result<(), String> {
    let number = |worksheet: &mut Worksheet, value: f64| match formats.number(kind) {
        Some(format) => worksheet
            .write_number_with_format(row, column, value, format)
            .map(|_| ()),
        None => worksheet.write_number(row, column, value).map(|_| ()),
    };
    let written = match cell {
        Cell::Empty => Ok(()),
        // A string cell is never read as a formula, so text starting with `=` stays text.
        Cell::Text(text) => worksheet.write_string(row, column, text).map(|_| ()),
        // Beyond 2^53 a count loses digits in Excel's doubles; inventory counts never get there.
        Cell::Integer(value) => number(worksheet, *value as f64),
        Cell::Number(value) => {
            let value = f64::try_from(*value)
                .map_err(|_| format!("{value} is no number a spreadsheet can hold"))?;
            number(worksheet, value)
        }
        Cell::Date(date) => {
            // Excel's calendar starts on 1900-01-01 and ends with 9999; a date outside would
            // show as `#####`.
            if date.year() < 1900 || date.year() > 9999 {
                return Err(format!(
                    "{date} is outside 1900-01-01 to 9999-12-31, the dates a spreadsheet shows"
                ));
            }
            worksheet
                .write_datetime_with_format(row, column, *date, &formats.date)
                .map(|_| ())
        }
        Cell::Bool(value) => worksheet.write_boolean(row, column, *value).map(|_| ()),
    };
    written.map_err(|error| error.to_string())
}

/// How many characters the cell shows, for the column width.
fn shown_width(cell: &Cell, kind: ColumnKind) -> usize {
    let shown = |value: Decimal| match kind {
        ColumnKind::Money => german::euros(value, 2),
        ColumnKind::Integer => german::number(value, 0),
        ColumnKind::Decimal => german::number(value, 2),
        ColumnKind::Percent => german::percent(value),
        ColumnKind::Text | ColumnKind::Date => german::number_trimmed(value, 9),
    };
    match cell {
        Cell::Empty => 0,
        // The longest line of a text that has several.
        Cell::Text(text) => text
            .lines()
            .map(|line| line.chars().count())
            .max()
            .unwrap_or(0),
        Cell::Integer(value) => shown(Decimal::from(*value)).chars().count(),
        Cell::Number(value) => shown(*value).chars().count(),
        Cell::Date(_) => "06.12.2026".len(),
        Cell::Bool(_) => "FALSCH".len(),
    }
}

/// The chart's data as a table (categories in A, a column per series), and the native chart
/// beside it, drawn from those cells.
fn chart_sheet(name: &str, chart: &Chart, formats: &Formats) -> Result<Worksheet, DocumentError> {
    chart.check()?;
    let value_kind = if chart.y_is_money {
        ColumnKind::Money
    } else {
        ColumnKind::Decimal
    };
    let columns: Vec<Column> = std::iter::once(Column {
        header: chart.x_title.clone(),
        kind: ColumnKind::Text,
    })
    .chain(chart.series.iter().map(|series| Column {
        header: series.name.clone(),
        kind: value_kind,
    }))
    .collect();
    let rows: Vec<Vec<Cell>> = chart
        .categories
        .iter()
        .enumerate()
        .map(|(index, category)| {
            std::iter::once(Cell::Text(category.clone()))
                .chain(
                    chart
                        .series
                        .iter()
                        .map(|series| series.values[index].map_or(Cell::Empty, Cell::Number)),
                )
                .collect()
        })
        .collect();
    let mut worksheet = data_sheet(name, &columns, &rows, formats)?;

    let mut excel_chart = rust_xlsxwriter::Chart::new(match chart.kind {
        ChartKind::StackedColumn => ChartType::ColumnStacked,
        ChartKind::Column => ChartType::Column,
        ChartKind::Line => ChartType::Line,
    });
    let last_row = u32::try_from(chart.categories.len()).unwrap_or(u32::MAX);
    for (index, _) in chart.series.iter().enumerate() {
        let column = column_index(index + 1)?;
        let (red, green, blue) = crate::chart::PALETTE[index % crate::chart::PALETTE.len()];
        let colour = u32::from(red) << 16 | u32::from(green) << 8 | u32::from(blue);
        let series = excel_chart
            .add_series()
            .set_name((name, 0, column))
            .set_categories((name, 1, 0, last_row, 0))
            .set_values((name, 1, column, last_row, column));
        if chart.kind == ChartKind::Line {
            series.set_format(
                rust_xlsxwriter::ChartFormat::new().set_line(
                    rust_xlsxwriter::ChartLine::new()
                        .set_color(colour)
                        .set_width(2.25),
                ),
            );
        } else {
            series.set_format(
                rust_xlsxwriter::ChartFormat::new()
                    .set_solid_fill(rust_xlsxwriter::ChartSolidFill::new().set_color(colour)),
            );
        }
    }
    excel_chart.title().set_name(&chart.title);
    excel_chart.x_axis().set_name(&chart.x_title);
    excel_chart.y_axis().set_name(&chart.y_title);
    if chart.y_is_money {
        excel_chart.y_axis().set_num_format(MONEY_AXIS_FORMAT);
    }
    excel_chart
        .legend()
        .set_position(ChartLegendPosition::Bottom);
    excel_chart.set_width(CHART_WIDTH).set_height(CHART_HEIGHT);
    // One empty column between the data and the chart.
    let chart_column = column_index(chart.series.len() + 2)?;
    worksheet
        .insert_chart(1, chart_column, &excel_chart)
        .map_err(xlsx_error)?;
    Ok(worksheet)
}
