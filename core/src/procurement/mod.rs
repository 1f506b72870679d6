//! Procurement: what the authority bought and with whose money. Purchase files join devices
//! (`purchases`), the model catalogue and the expected life per category say what a device
//! costs and how long it lives (`catalogue`), funding programmes and their rules say who paid
//! (`funding`), and the target equipment and pupils per school feed the forecast and the cost
//! split (`schools`). docs/procurement.md is the users' view.
//!
//! Everything here belongs to an authority as a whole except the per-school settings: a scope
//! of schools reaches no catalogue, programme or purchase import, and only its own schools'
//! settings.

pub mod catalogue;
pub mod funding;
pub mod purchases;
pub mod schools;

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::access::Scope;
use crate::error::CoreError;
use crate::model::DeviceCategory;
use crate::money;
use crate::sheet::{excel_serial_date, Cell};

/// The authority `slug` names (none: the one configured authority) within `scope`; an
/// authority-wide scope is needed, a scope of schools finds none.
pub(crate) async fn authority_id(
    pool: &PgPool,
    scope: &Scope,
    slug: Option<&str>,
) -> Result<Uuid, CoreError> {
    let found: Vec<(Uuid, String)> = sqlx::query_as(&format!(
        "select authority_id, slug from school_authority \
         where ($1::text is null or slug = $1) and {} order by slug",
        crate::store::authority_wide("authority_id", 2, 3)
    ))
    .bind(slug)
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_all(pool)
    .await?;
    match (found.as_slice(), slug) {
        ([(authority_id, _)], _) => Ok(*authority_id),
        ([], Some(slug)) => Err(CoreError::NotFound {
            what: "authority",
            key: slug.to_string(),
        }),
        ([], None) => Err(CoreError::NotFound {
            what: "authority",
            key: "(none configured)".to_string(),
        }),
        (several, _) => Err(CoreError::Invalid(format!(
            "several authorities are configured ({}); name one with --authority",
            several
                .iter()
                .map(|(_, slug)| slug.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// A bad row of an import file: where (line as the spreadsheet shows it, column as its header
/// names it), what it holds and why it cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub line: u64,
    /// The column's header as written in the file; empty for a fault of the whole row.
    pub column: String,
    pub value: String,
    pub reason: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.column.is_empty(), self.value.is_empty()) {
            (true, _) => write!(f, "line {}: {}", self.line, self.reason),
            (false, true) => write!(
                f,
                "line {}, column {}: {}",
                self.line, self.column, self.reason
            ),
            (false, false) => write!(
                f,
                "line {}, column {}: '{}' {}",
                self.line, self.column, self.value, self.reason
            ),
        }
    }
}

/// One column an import knows: its field name (as `--mapping` files name it) and the headers
/// that mean it, lower case, German and English.
pub(crate) struct KnownColumn<F> {
    pub field: F,
    pub name: &'static str,
    pub headers: &'static [&'static str],
}

/// Where each known field is in a file, and the headers no field claimed.
pub(crate) struct Located<F> {
    pub at: Vec<(F, usize, String)>,
    pub ignored: Vec<String>,
}

impl<F: Copy + PartialEq> Located<F> {
    pub fn column(&self, field: F) -> Option<(usize, &str)> {
        self.at
            .iter()
            .find(|(known, _, _)| *known == field)
            .map(|(_, at, header)| (*at, header.as_str()))
    }
}

/// Finds the known columns among `headers` (any case); `mapping` maps further header names
/// to field names. A field two headers claim, or a mapping to no known field, is refused.
pub(crate) fn locate_columns<F: Copy + PartialEq>(
    headers: &[String],
    known: &[KnownColumn<F>],
    mapping: &BTreeMap<String, String>,
) -> Result<Located<F>, CoreError> {
    let mapped: BTreeMap<String, &str> = mapping
        .iter()
        .map(|(header, field)| (header.trim().to_lowercase(), field.as_str()))
        .collect();
    for field in mapped.values() {
        if !known.iter().any(|column| column.name == *field) {
            return Err(CoreError::Invalid(format!(
                "the mapping names the unknown field '{field}' (fields: {})",
                known.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let mut located = Located {
        at: Vec::new(),
        ignored: Vec::new(),
    };
    for (at, header) in headers.iter().enumerate() {
        let lower = header.trim().to_lowercase();
        if lower.is_empty() {
            continue;
        }
        let column = match mapped.get(&lower) {
            Some(field) => known.iter().find(|c| c.name == *field),
            None => known.iter().find(|c| c.headers.contains(&lower.as_str())),
        };
        let Some(column) = column else {
            located.ignored.push(header.clone());
            continue;
        };
        if let Some((_, _, first)) = located.at.iter().find(|(f, _, _)| *f == column.field) {
            return Err(CoreError::Invalid(format!(
                "line 1: the columns '{first}' and '{header}' both mean {}",
                column.name
            )));
        }
        located.at.push((column.field, at, header.clone()));
    }
    Ok(located)
}

/// Reads a date cell: a workbook date, an Excel serial, `31.12.2027` or `2027-12-31`.
pub(crate) fn date_cell(cell: &Cell) -> Result<Option<NaiveDate>, String> {
    match cell {
        Cell::Empty => Ok(None),
        Cell::Date(date) => Ok(Some(*date)),
        Cell::Number(serial) => excel_serial_date(*serial)
            .map(Some)
            .ok_or_else(|| "is not a date (an Excel date serial of a whole day)".to_string()),
        Cell::Text(text) => crate::normalize::date(text, &["%d.%m.%Y"])
            .map(Some)
            .map_err(|error| match error {
                crate::normalize::DateError::NotADate => {
                    "is not a date (write DD.MM.YYYY or YYYY-MM-DD)".to_string()
                }
                other => format!("is no date: {other}"),
            }),
    }
}

/// Reads a price cell: a workbook number, or text as `money::parse_price` reads it.
pub(crate) fn price_cell(cell: &Cell) -> Result<Option<money::Price>, String> {
    match cell {
        Cell::Empty => Ok(None),
        Cell::Number(number) => {
            let amount = Decimal::try_from(*number)
                .map_err(|_| "is not a price".to_string())?
                .normalize();
            if amount.is_sign_negative() {
                return Err("is not a price: a price cannot be negative".into());
            }
            if amount.scale() > 2 {
                return Err("is not a price: it has more than two decimal places".into());
            }
            let mut amount = amount;
            amount.rescale(2);
            Ok(Some(money::Price {
                amount,
                currency: None,
            }))
        }
        Cell::Date(_) => Err("is a date, not a price".into()),
        Cell::Text(text) => money::parse_price(text, None)
            .map(Some)
            .map_err(|error| format!("is not a price: {error}")),
    }
}

/// Reads a whole number (years, months, pupils) from a cell.
pub(crate) fn count_cell(cell: &Cell) -> Result<Option<u32>, String> {
    let refused = || "is not a whole number".to_string();
    match cell {
        Cell::Empty => Ok(None),
        Cell::Number(number) if number.fract() == 0.0 && (0.0..=1e6).contains(number) => {
            Ok(Some(*number as u32))
        }
        Cell::Text(text) => text.trim().parse::<u32>().map(Some).map_err(|_| refused()),
        _ => Err(refused()),
    }
}

/// Reads a category in English or as German staff write it (`Drucker`, `Bildschirm`).
pub(crate) fn category(text: &str) -> Result<DeviceCategory, String> {
    let lower = text.trim().to_lowercase();
    let german = match lower.as_str() {
        "notebook" => Some(DeviceCategory::Laptop),
        "pc" | "desktop-pc" | "rechner" => Some(DeviceCategory::Desktop),
        "bildschirm" | "monitor" | "tafel" | "interaktive tafel" | "beamer" => {
            Some(DeviceCategory::Display)
        }
        "drucker" => Some(DeviceCategory::Printer),
        "sonstiges" => Some(DeviceCategory::Other),
        _ => None,
    };
    match german {
        Some(category) => Ok(category),
        None => lower.parse::<DeviceCategory>().map_err(|_| {
            format!(
                "is not a category (known: {})",
                DeviceCategory::ALL
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }),
    }
}

/// The value `--price 899,00` and catalogue files give: German, English or plain notation.
pub fn parse_amount(text: &str) -> Result<Decimal, CoreError> {
    money::parse_price(text, None)
        .map(|price| price.amount)
        .map_err(|error| CoreError::Invalid(format!("'{}' is not an amount: {error}", text.trim())))
}

/// The school `number` of the authority, in scope: a school outside it is unknown.
pub(crate) async fn school_id(
    pool: &PgPool,
    scope: &Scope,
    authority_id: Uuid,
    number: &str,
) -> Result<Uuid, CoreError> {
    let found: Option<Uuid> = sqlx::query_scalar(&format!(
        "select s.school_id from school s where s.authority_id = $1 and s.school_number = $4 \
         and {}",
        crate::store::in_scope("s.authority_id", "s.school_id", 2, 3)
    ))
    .bind(authority_id)
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .bind(number.trim())
    .fetch_optional(pool)
    .await?;
    found.ok_or_else(|| CoreError::NotFound {
        what: "school",
        key: number.trim().to_string(),
    })
}
