//! One table out of a file people filled in a spreadsheet program, whether they saved it as
//! CSV (read through `tabular`, German Excel's semicolons and Windows-1252 included) or as a
//! workbook (XLSX, XLS, ODS through calamine): a header row and rows of cells, each row with
//! the line a person sees in the program. Imports (purchases, the model catalogue) read here
//! and decide what a cell means themselves (docs/spreadsheets.md).

use std::borrow::Cow;
use std::io::Cursor;

use calamine::{DataType, Reader};
use chrono::NaiveDate;

use crate::tabular::{self, DecodeError, Encoding};

/// A cell as the file holds it. CSV gives text only; a workbook also numbers and dates.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Number(f64),
    /// A cell formatted as a date in the workbook (an Excel serial underneath).
    Date(NaiveDate),
}

impl Cell {
    /// The cell as text: a number as Rust writes it (`1299.5`, `45291`), a date as ISO 8601.
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Cell::Empty => Cow::Borrowed(""),
            Cell::Text(text) => Cow::Borrowed(text.trim()),
            Cell::Number(number) => Cow::Owned(number.to_string()),
            Cell::Date(date) => Cow::Owned(date.to_string()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.text().is_empty()
    }
}

/// A data row and the line it is on (the header row is line 1 in a file that starts with it).
#[derive(Debug, Clone, PartialEq)]
pub struct SheetRow {
    pub line: u64,
    pub cells: Vec<Cell>,
}

impl SheetRow {
    /// The cell in column `at`; a short row has empty cells at its end.
    pub fn cell(&self, at: usize) -> &Cell {
        self.cells.get(at).unwrap_or(&Cell::Empty)
    }
}

/// A table: its header names as written (trimmed) and its rows, blank rows left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Sheet {
    pub headers: Vec<String>,
    pub rows: Vec<SheetRow>,
}

/// Why a file gives no table.
#[derive(Debug, thiserror::Error)]
pub enum SheetError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("line {line}: {message}")]
    Csv { line: u64, message: String },
    #[error("the workbook cannot be read: {0}")]
    Workbook(String),
    #[error("the workbook has no worksheet '{name}' (it has: {known})")]
    NoSheet { name: String, known: String },
    #[error("the file has no header row")]
    NoHeader,
}

/// What the file is, by its first bytes: XLSX and ODS are ZIP archives, XLS an OLE file.
pub fn is_workbook(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"\xD0\xCF\x11\xE0")
}

/// Reads the table of a CSV file or of a workbook's worksheet `sheet` (default: the first).
/// `encoding` applies to CSV only (none: detected, as `tabular::decode` does).
pub fn read(
    bytes: &[u8],
    sheet: Option<&str>,
    encoding: Option<Encoding>,
) -> Result<Sheet, SheetError> {
    if is_workbook(bytes) {
        read_workbook(bytes, sheet)
    } else {
        read_csv(bytes, encoding)
    }
}

fn read_csv(bytes: &[u8], encoding: Option<Encoding>) -> Result<Sheet, SheetError> {
    let decoded = tabular::decode(bytes, encoding, None)?;
    let text = decoded.text.as_str();
    let mut reader = decoded
        .reader_builder()
        .flexible(true)
        .has_headers(false)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let headers: Vec<String> = match records.next() {
        Some(Ok(record)) => record
            .iter()
            .map(|h| tabular::unneutralise(h.trim()).to_string())
            .collect(),
        Some(Err(error)) => {
            return Err(SheetError::Csv {
                line: 1,
                message: error.to_string(),
            })
        }
        None => return Err(SheetError::NoHeader),
    };
    let mut rows = Vec::new();
    let mut lines = tabular::LineCounter::default();
    for record in records {
        let record = record.map_err(|error| SheetError::Csv {
            line: error.position().map_or(0, |p| lines.line(text, p.byte())),
            message: error.to_string(),
        })?;
        if record.iter().all(|field| field.trim().is_empty()) {
            continue;
        }
        rows.push(SheetRow {
            line: record.position().map_or(0, |p| lines.line(text, p.byte())),
            cells: record
                .iter()
                .map(|cell| match tabular::unneutralise(cell.trim()) {
                    "" => Cell::Empty,
                    text => Cell::Text(text.to_string()),
                })
                .collect(),
        });
    }
    Ok(Sheet { headers, rows })
}

fn read_workbook(bytes: &[u8], sheet: Option<&str>) -> Result<Sheet, SheetError> {
    let mut workbook = calamine::open_workbook_auto_from_rs(Cursor::new(bytes))
        .map_err(|error| SheetError::Workbook(error.to_string()))?;
    let names = workbook.sheet_names();
    let name = match sheet {
        Some(wanted) => names
            .iter()
            .find(|name| name.eq_ignore_ascii_case(wanted))
            .cloned()
            .ok_or_else(|| SheetError::NoSheet {
                name: wanted.to_string(),
                known: names.join(", "),
            })?,
        None => names
            .first()
            .cloned()
            .ok_or_else(|| SheetError::Workbook("it has no worksheet".into()))?,
    };
    let range = workbook
        .worksheet_range(&name)
        .map_err(|error| SheetError::Workbook(error.to_string()))?;
    let (first_row, first_column) = range.start().unwrap_or((0, 0));
    // Cells left of the range are empty; keep the columns where the person sees them.
    let pad = first_column as usize;
    let mut rows = range.rows().enumerate().map(|(index, cells)| {
        let line = u64::from(first_row) + index as u64 + 1;
        let cells: Vec<Cell> = std::iter::repeat_n(Cell::Empty, pad)
            .chain(cells.iter().map(workbook_cell))
            .collect();
        SheetRow { line, cells }
    });
    let headers = rows
        .next()
        .ok_or(SheetError::NoHeader)?
        .cells
        .iter()
        .map(|cell| cell.text().into_owned())
        .collect();
    let rows = rows
        .filter(|row| !row.cells.iter().all(Cell::is_empty))
        .collect();
    Ok(Sheet { headers, rows })
}

fn workbook_cell(data: &calamine::Data) -> Cell {
    use calamine::Data;
    match data {
        Data::Empty => Cell::Empty,
        Data::String(text) => match text.trim() {
            "" => Cell::Empty,
            text => Cell::Text(text.to_string()),
        },
        Data::Int(number) => Cell::Number(*number as f64),
        Data::Float(number) => Cell::Number(*number),
        Data::Bool(value) => Cell::Text(value.to_string()),
        Data::DateTime(_) | Data::DateTimeIso(_) => data
            .as_date()
            .map_or_else(|| Cell::Text(data.to_string()), Cell::Date),
        Data::DurationIso(text) => Cell::Text(text.clone()),
        Data::Error(error) => Cell::Text(format!("#{error:?}")),
    }
}

/// The date an Excel serial stands for (1900 date system, as Windows Excel writes): day 1 is
/// 1900-01-01, and Excel's phantom 1900-02-29 (day 60) makes later serials count from
/// 1899-12-30. Only whole days of a plausible date are read.
pub fn excel_serial_date(serial: f64) -> Option<NaiveDate> {
    if serial.fract() != 0.0 || !(61.0..=109_574.0).contains(&serial) {
        return None;
    }
    NaiveDate::from_ymd_opt(1899, 12, 30)?.checked_add_days(chrono::Days::new(serial as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_german_excel_csv_keeps_its_lines_and_skips_blank_rows() {
        let bytes =
            b"Seriennummer;Lieferant\r\nA1;B\xFCrotechnik M\xFCller GmbH\r\n;\r\n\r\nA2;x\r\n";
        let sheet = read(bytes, None, None).unwrap();
        assert_eq!(sheet.headers, vec!["Seriennummer", "Lieferant"]);
        assert_eq!(sheet.rows.len(), 2);
        assert_eq!(sheet.rows[0].line, 2);
        assert_eq!(
            sheet.rows[0].cell(1),
            &Cell::Text("Bürotechnik Müller GmbH".into())
        );
        assert_eq!(sheet.rows[1].line, 5);
        assert_eq!(sheet.rows[1].cell(7), &Cell::Empty);
    }

    #[test]
    fn excel_serials_are_days_since_1899_12_30() {
        // 45291: 2023-12-31 (Excel shows it so); 61 is 1900-03-01, the first after the phantom day.
        assert_eq!(
            excel_serial_date(45291.0),
            NaiveDate::from_ymd_opt(2023, 12, 31)
        );
        assert_eq!(excel_serial_date(61.0), NaiveDate::from_ymd_opt(1900, 3, 1));
        assert_eq!(excel_serial_date(45291.5), None);
        assert_eq!(excel_serial_date(12.0), None);
    }

    #[test]
    fn a_file_without_rows_has_no_header() {
        assert!(matches!(read(b"", None, None), Err(SheetError::NoHeader)));
    }
}
