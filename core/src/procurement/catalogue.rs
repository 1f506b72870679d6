//! The model catalogue per authority (what a model costs today and how long it lives) and the
//! expected life per category where the authority departs from the defaults
//! (`planning::default_life_years`). The replacement forecast resolves each device's price and
//! life from these (its own, the catalogue's, the category's, the default; docs/procurement.md).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;

use super::{
    authority_id, category, count_cell, locate_columns, price_cell, KnownColumn, RowError,
};
use crate::access::{Actor, Scope};
use crate::error::CoreError;
use crate::model::DeviceCategory;
use crate::planning::default_life_years;
use crate::sheet::Sheet;

/// A catalogue entry to set: a model (by name) with its category, identifier, list price and
/// expected life.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelEntry {
    pub model: String,
    pub model_identifier: Option<String>,
    pub category: DeviceCategory,
    pub list_price: Option<Decimal>,
    pub currency: String,
    pub life_years: Option<u32>,
}

/// A catalogue entry as listed.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ModelView {
    pub authority: String,
    pub model: String,
    pub model_identifier: Option<String>,
    pub category: String,
    pub list_price: Option<Decimal>,
    pub currency: String,
    pub life_years: Option<i32>,
    pub updated_by: String,
}

/// Sets (adds or replaces, by model name in any case) a catalogue entry.
pub async fn set_model(
    pool: &PgPool,
    scope: &Scope,
    actor: &Actor,
    authority: Option<&str>,
    entry: &ModelEntry,
    now: DateTime<Utc>,
) -> Result<(), CoreError> {
    let authority_id = authority_id(pool, scope, authority).await?;
    upsert_models(pool, authority_id, std::slice::from_ref(entry), actor, now).await
}

/// Writes entries in one statement (a catalogue file is one transaction).
async fn upsert_models(
    pool: &PgPool,
    authority_id: uuid::Uuid,
    entries: &[ModelEntry],
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(), CoreError> {
    for entry in entries {
        if entry.model.trim().is_empty() {
            return Err(CoreError::Invalid("a catalogue entry needs a model".into()));
        }
        if let Some(years) = entry.life_years {
            check_life(years)?;
        }
    }
    let models: Vec<&str> = entries.iter().map(|e| e.model.trim()).collect();
    let identifiers: Vec<Option<&str>> = entries
        .iter()
        .map(|e| {
            e.model_identifier
                .as_deref()
                .map(str::trim)
                .filter(|i| !i.is_empty())
        })
        .collect();
    let categories: Vec<&str> = entries.iter().map(|e| e.category.as_str()).collect();
    let prices: Vec<Option<Decimal>> = entries.iter().map(|e| e.list_price).collect();
    let currencies: Vec<&str> = entries.iter().map(|e| e.currency.as_str()).collect();
    let lives: Vec<Option<i32>> = entries
        .iter()
        .map(|e| e.life_years.map(|y| y as i32))
        .collect();
    let written = sqlx::query(
        "insert into device_model (authority_id, model, model_identifier, category, list_price, \
         currency, life_years, updated_at, updated_by) \
         select $1, u.model, u.identifier, u.category, u.price, u.currency, u.life, $8, $9 \
         from unnest($2::text[], $3::text[], $4::text[], $5::numeric[], $6::text[], $7::int4[]) \
         as u(model, identifier, category, price, currency, life) \
         on conflict (authority_id, lower(model)) do update set model = excluded.model, \
         model_identifier = excluded.model_identifier, category = excluded.category, \
         list_price = excluded.list_price, currency = excluded.currency, \
         life_years = excluded.life_years, updated_at = excluded.updated_at, \
         updated_by = excluded.updated_by",
    )
    .bind(authority_id)
    .bind(&models)
    .bind(&identifiers)
    .bind(&categories)
    .bind(&prices)
    .bind(&currencies)
    .bind(&lives)
    .bind(now)
    .bind(actor.name())
    .execute(pool)
    .await;
    match written {
        Err(sqlx::Error::Database(error))
            if error.constraint() == Some("device_model_identifier_key") =>
        {
            Err(CoreError::Conflict(
                "another model of the catalogue has this model identifier already".into(),
            ))
        }
        Err(error) => Err(error.into()),
        Ok(_) => Ok(()),
    }
}

fn check_life(years: u32) -> Result<(), CoreError> {
    if (1..=100).contains(&years) {
        Ok(())
    } else {
        Err(CoreError::Invalid(format!(
            "an expected life of {years} years is not between 1 and 100"
        )))
    }
}

/// Lists the catalogue of the authorities in `scope` (or of `authority`).
pub async fn list_models(
    pool: &PgPool,
    scope: &Scope,
    authority: Option<&str>,
) -> Result<Vec<ModelView>, CoreError> {
    Ok(sqlx::query_as(&format!(
        "select a.slug as authority, m.model, m.model_identifier, m.category, m.list_price, \
         m.currency, m.life_years, m.updated_by from device_model m \
         join school_authority a using (authority_id) \
         where ($1::text is null or a.slug = $1) and {} order by a.slug, lower(m.model)",
        crate::store::authority_wide("m.authority_id", 2, 3)
    ))
    .bind(authority)
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_all(pool)
    .await?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Model,
    Identifier,
    Category,
    Price,
    Life,
}

const COLUMNS: &[KnownColumn<Field>] = &[
    KnownColumn {
        field: Field::Model,
        name: "model",
        headers: &["model", "modell"],
    },
    KnownColumn {
        field: Field::Identifier,
        name: "model_identifier",
        headers: &["model identifier", "model_identifier", "modellkennung"],
    },
    KnownColumn {
        field: Field::Category,
        name: "category",
        headers: &["category", "kategorie"],
    },
    KnownColumn {
        field: Field::Price,
        name: "price",
        headers: &["price", "list price", "preis", "listenpreis"],
    },
    KnownColumn {
        field: Field::Life,
        name: "life_years",
        headers: &[
            "life",
            "life years",
            "life_years",
            "nutzungsdauer",
            "nutzungsdauer (jahre)",
        ],
    },
];

/// The outcome of a catalogue file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CatalogueReport {
    pub written: usize,
    pub errors: Vec<RowError>,
    pub ignored_columns: Vec<String>,
    pub applied: bool,
}

/// Reads a catalogue file (model, category, identifier, price, life) and sets every entry in
/// one statement, or none when a row is bad.
pub async fn import_models(
    pool: &PgPool,
    scope: &Scope,
    actor: &Actor,
    authority: Option<&str>,
    sheet: &Sheet,
    mapping: &BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> Result<CatalogueReport, CoreError> {
    let authority_id = authority_id(pool, scope, authority).await?;
    let located = locate_columns(&sheet.headers, COLUMNS, mapping)?;
    let (Some(_), Some(_)) = (
        located.column(Field::Model),
        located.column(Field::Category),
    ) else {
        return Err(CoreError::Invalid(
            "line 1: a catalogue file needs the columns model (Modell) and category (Kategorie)"
                .into(),
        ));
    };
    let mut report = CatalogueReport {
        ignored_columns: located.ignored.clone(),
        ..CatalogueReport::default()
    };
    let mut entries = Vec::new();
    let mut lines: HashMap<String, u64> = HashMap::new();
    for row in &sheet.rows {
        let mut row_errors: Vec<RowError> = Vec::new();
        let mut bad = |field: Field, reason: String| {
            let (at, header) = located.column(field).unwrap_or((usize::MAX, ""));
            row_errors.push(RowError {
                line: row.line,
                column: header.to_string(),
                value: row.cell(at).text().into_owned(),
                reason,
            });
        };
        let text = |field: Field| {
            located
                .column(field)
                .map(|(at, _)| row.cell(at).text().trim().to_string())
                .filter(|t| !t.is_empty())
        };
        let model = text(Field::Model);
        match &model {
            None => bad(Field::Model, "a model is needed".into()),
            Some(model) => {
                if let Some(first) = lines.insert(model.to_lowercase(), row.line) {
                    bad(Field::Model, format!("is already on line {first}"));
                }
            }
        }
        let category = match text(Field::Category).map(|c| category(&c)) {
            Some(Ok(category)) => Some(category),
            Some(Err(reason)) => {
                bad(Field::Category, reason);
                None
            }
            None => {
                bad(Field::Category, "a category is needed".into());
                None
            }
        };
        let price = match located
            .column(Field::Price)
            .map(|(at, _)| price_cell(row.cell(at)))
        {
            Some(Err(reason)) => {
                bad(Field::Price, reason);
                None
            }
            Some(Ok(price)) => price,
            None => None,
        };
        let life = match located
            .column(Field::Life)
            .map(|(at, _)| count_cell(row.cell(at)))
        {
            Some(Ok(Some(years))) if !(1..=100).contains(&years) => {
                bad(Field::Life, "is not between 1 and 100 years".into());
                None
            }
            Some(Ok(years)) => years,
            Some(Err(reason)) => {
                bad(Field::Life, reason);
                None
            }
            None => None,
        };
        if !row_errors.is_empty() {
            report.errors.extend(row_errors);
            continue;
        }
        if let (Some(model), Some(category)) = (model, category) {
            entries.push(ModelEntry {
                model,
                model_identifier: text(Field::Identifier),
                category,
                currency: price
                    .as_ref()
                    .and_then(|p| p.currency.clone())
                    .unwrap_or_else(|| "EUR".into()),
                list_price: price.map(|p| p.amount),
                life_years: life,
            });
        }
    }
    if report.errors.is_empty() && !entries.is_empty() {
        upsert_models(pool, authority_id, &entries, actor, now).await?;
        report.written = entries.len();
        report.applied = true;
    }
    Ok(report)
}

/// A category's expected life: the authority's, else the default.
#[derive(Debug, Clone, Serialize)]
pub struct CategoryLife {
    pub category: String,
    pub life_years: u32,
    pub default_years: u32,
    /// Whether the authority set it.
    pub configured: bool,
}

/// Sets the expected life of `category` for the authority.
pub async fn set_category_life(
    pool: &PgPool,
    scope: &Scope,
    _actor: &Actor,
    authority: Option<&str>,
    category: DeviceCategory,
    years: u32,
) -> Result<(), CoreError> {
    check_life(years)?;
    let authority_id = authority_id(pool, scope, authority).await?;
    sqlx::query(
        "insert into category_life (authority_id, category, life_years) values ($1, $2, $3) \
         on conflict (authority_id, category) do update set life_years = excluded.life_years",
    )
    .bind(authority_id)
    .bind(category.as_str())
    .bind(years as i32)
    .execute(pool)
    .await?;
    Ok(())
}

/// Every category's expected life for the authority.
pub async fn category_lives(
    pool: &PgPool,
    scope: &Scope,
    authority: Option<&str>,
) -> Result<Vec<CategoryLife>, CoreError> {
    let authority_id = authority_id(pool, scope, authority).await?;
    let set: HashMap<String, i32> = sqlx::query_as::<_, (String, i32)>(
        "select category, life_years from category_life where authority_id = $1",
    )
    .bind(authority_id)
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    Ok(DeviceCategory::ALL
        .iter()
        .map(|category| {
            let default_years = default_life_years(*category);
            let own = set.get(category.as_str()).map(|y| *y as u32);
            CategoryLife {
                category: category.as_str().to_string(),
                life_years: own.unwrap_or(default_years),
                default_years,
                configured: own.is_some(),
            }
        })
        .collect())
}
