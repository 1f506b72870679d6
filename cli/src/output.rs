//! Output for people (tables) and for scripts (JSON, CSV). Only the CLI formats output.

use std::io::Write;

use bestand_core::tabular;
use clap::ValueEnum;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
    Csv,
}

/// Something that can be shown as one row of a table or CSV file.
pub trait Row {
    fn headers() -> Vec<&'static str>;
    fn cells(&self) -> Vec<String>;
}

/// Prints a list in the chosen format.
pub fn print_list<T: Row + Serialize>(items: &[T], format: Format) -> anyhow::Result<()> {
    write_list(std::io::stdout().lock(), items, format)
}

/// Writes a list in the chosen format. CSV cells that would run as formulas in a spreadsheet
/// (starting with `=`, `+`, `-`, `@`, tab or carriage return) get a leading `'`.
pub fn write_list<T: Row + Serialize, W: Write>(
    mut out: W,
    items: &[T],
    format: Format,
) -> anyhow::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, items)?;
            writeln!(out)?;
        }
        Format::Csv => {
            tabular::write_csv(out, &T::headers(), items.iter().map(Row::cells))?;
        }
        Format::Table => {
            writeln!(out, "{}", table(T::headers(), items.iter().map(Row::cells)))?;
        }
    }
    Ok(())
}

/// Builds a table for people.
pub fn table<I>(headers: Vec<&str>, rows: I) -> Table
where
    I: IntoIterator<Item = Vec<String>>,
{
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(headers);
    for row in rows {
        table.add_row(row);
    }
    table
}

/// Prints one value as JSON.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Text of an optional value; empty when absent.
pub fn opt<T: ToString>(value: &Option<T>) -> String {
    value.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// A timestamp as people read it, in UTC.
pub fn time(value: &Option<chrono::DateTime<chrono::Utc>>) -> String {
    value
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}
