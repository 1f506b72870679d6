//! Documents bestand hands to people: the loan agreement (Leihvertrag), report workbooks (XLSX)
//! and report charts (SVG). Each takes plain data and gives bytes; none reads the database or
//! the clock, so the CLI and a server render the same document from the same data.

pub mod agreement;
pub mod chart;
mod german;
pub mod samples;
pub mod workbook;

/// Why a workbook or a chart could not be rendered. The messages name the sheet, row, column
/// or series concerned, so the code that assembled the data can be found from them.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("the workbook has no sheet")]
    EmptyWorkbook,
    #[error("sheet name {name:?}: {reason}")]
    SheetName { name: String, reason: &'static str },
    #[error("sheet {sheet:?} has no columns")]
    NoColumns { sheet: String },
    #[error("sheet {sheet:?}, row {row}: {found} cells for {expected} columns")]
    RowLength {
        sheet: String,
        /// The row as the spreadsheet program numbers it (the header is row 1).
        row: usize,
        expected: usize,
        found: usize,
    },
    #[error("sheet {sheet:?}, cell {cell}: {message}")]
    Cell {
        sheet: String,
        /// The cell's address as the spreadsheet program shows it (`C7`).
        cell: String,
        message: String,
    },
    #[error("chart {chart:?}: {message}")]
    Chart { chart: String, message: String },
    #[error("writing the workbook: {0}")]
    Xlsx(String),
}
