//! Report charts: one data shape (`Chart`) that both the workbook's native Excel chart and the
//! SVG the pages and `--chart FILE.svg` show are drawn from, so the two never disagree.
//!
//! The SVG is drawn with plotters' SVG backend (`svg.rs`). Text is measured with DejaVu Sans,
//! compiled into the binary through the `dejavu` crate and registered with plotters' ab_glyph
//! support, so rendering looks up no system font; the SVG names the font as
//! `DejaVu Sans, sans-serif`, so a viewer without DejaVu falls back to its own sans-serif.

mod svg;

#[cfg(test)]
mod tests;

use rust_decimal::Decimal;

pub use svg::{chart_svg, PALETTE};

use crate::DocumentError;

/// A chart of one value per category and series: the replacement forecast is the cost per
/// budget year (categories) stacked by device category (series).
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub title: String,
    pub kind: ChartKind,
    /// What the categories are (`Haushaltsjahr`); the axis title under them.
    pub x_title: String,
    /// What the values are (`Kosten`); the axis title beside them.
    pub y_title: String,
    /// The labels along the x axis, in order (`2027`, `2028`, ...).
    pub categories: Vec<String>,
    /// One value per category each, in the order of `categories`.
    pub series: Vec<Series>,
    /// The values are euros: the axis shows `12.345 €` (and the workbook a money format).
    pub y_is_money: bool,
}

/// How the series are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartKind {
    /// One column per category, the series stacked on each other (the forecast by category).
    StackedColumn,
    /// One column per category and series, side by side.
    Column,
    /// One line per series through its values.
    Line,
}

/// One named row of values: a device category's cost per year. `None` is no value, not zero
/// (a median of a quarter without tickets): a line breaks there, a column is left out, and the
/// workbook's cell stays empty, which Excel's charts show as a gap.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub values: Vec<Option<Decimal>>,
}

impl Chart {
    /// Refuses what cannot be drawn rather than drawing part of it: a chart without categories
    /// or series, or a series with more or fewer values than there are categories.
    pub(crate) fn check(&self) -> Result<(), DocumentError> {
        let problem = |message: String| DocumentError::Chart {
            chart: self.title.clone(),
            message,
        };
        if self.categories.is_empty() {
            return Err(problem("no categories to plot".to_owned()));
        }
        if self.series.is_empty() {
            return Err(problem("no series to plot".to_owned()));
        }
        for series in &self.series {
            if series.values.len() != self.categories.len() {
                return Err(problem(format!(
                    "series {:?} has {} values for {} categories",
                    series.name,
                    series.values.len(),
                    self.categories.len()
                )));
            }
        }
        Ok(())
    }
}
