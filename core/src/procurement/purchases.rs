//! `bestand purchases import`: delivery notes and orders from a spreadsheet joined to the
//! devices they are about. Every row is checked before anything is written, every bad row is
//! reported with line, column and value, and the write is one transaction of a few set-based
//! statements (docs/procurement.md, docs/performance.md): all or nothing, or the good rows only.
//!
//! A row matches a device of the authority by serial number (in the form the sync matches it),
//! else by asset tag; a row whose serial and tag name two different devices is a review item.
//! A row that matches nothing creates the device in state `ordered` or `delivered`, for a
//! source to attach to by serial when it first reports it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Months, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use super::{
    authority_id, category, count_cell, date_cell, locate_columns, price_cell, KnownColumn,
    RowError,
};
use crate::access::{Actor, Scope};
use crate::error::CoreError;
use crate::model::DeviceCategory;
use crate::normalize;
use crate::procurement::funding::{load_rules, FundingRule};
use crate::sheet::Sheet;
use crate::store::device_row::{insert_devices, load_devices_for_update, DeviceRow};
use crate::store::history::{insert_events, EventContext};
use crate::store::merge::{change, Changes};
use crate::sync::references::{lock_import_references, RowChecks};

/// The review kind of a purchase row whose serial and asset tag name two different devices.
pub const PURCHASE_AMBIGUOUS: &str = "purchase_ambiguous";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    OrderNumber,
    OrderDate,
    DeliveryDate,
    Supplier,
    Manufacturer,
    Model,
    ModelIdentifier,
    Category,
    Serial,
    AssetTag,
    Price,
    WarrantyEnd,
    WarrantyMonths,
    Funding,
    GrantReference,
    School,
}

/// The columns of a purchase file (docs/procurement.md lists them for people).
const COLUMNS: &[KnownColumn<Field>] = &[
    KnownColumn {
        field: Field::OrderNumber,
        name: "order_number",
        headers: &[
            "order number",
            "order_number",
            "bestellnummer",
            "bestell-nr.",
            "bestellnr.",
        ],
    },
    KnownColumn {
        field: Field::OrderDate,
        name: "order_date",
        headers: &["order date", "order_date", "bestelldatum"],
    },
    KnownColumn {
        field: Field::DeliveryDate,
        name: "delivery_date",
        headers: &["delivery date", "delivery_date", "lieferdatum"],
    },
    KnownColumn {
        field: Field::Supplier,
        name: "supplier",
        headers: &["supplier", "lieferant", "händler", "haendler"],
    },
    KnownColumn {
        field: Field::Manufacturer,
        name: "manufacturer",
        headers: &["manufacturer", "hersteller"],
    },
    KnownColumn {
        field: Field::Model,
        name: "model",
        headers: &["model", "modell", "bezeichnung"],
    },
    KnownColumn {
        field: Field::ModelIdentifier,
        name: "model_identifier",
        headers: &[
            "model identifier",
            "model_identifier",
            "modellkennung",
            "typ",
        ],
    },
    KnownColumn {
        field: Field::Category,
        name: "category",
        headers: &["category", "kategorie", "geräteart", "geraeteart"],
    },
    KnownColumn {
        field: Field::Serial,
        name: "serial",
        headers: &[
            "serial",
            "serial number",
            "serial_number",
            "seriennummer",
            "s/n",
        ],
    },
    KnownColumn {
        field: Field::AssetTag,
        name: "asset_tag",
        headers: &["asset tag", "asset_tag", "inventarnummer", "inventar-nr."],
    },
    KnownColumn {
        field: Field::Price,
        name: "price",
        headers: &[
            "price",
            "unit price",
            "preis",
            "einzelpreis",
            "einzelpreis brutto",
        ],
    },
    KnownColumn {
        field: Field::WarrantyEnd,
        name: "warranty_end",
        headers: &[
            "warranty end",
            "warranty_end",
            "garantie bis",
            "garantieende",
        ],
    },
    KnownColumn {
        field: Field::WarrantyMonths,
        name: "warranty_months",
        headers: &[
            "warranty months",
            "warranty_months",
            "garantie (monate)",
            "garantie monate",
        ],
    },
    KnownColumn {
        field: Field::Funding,
        name: "funding_programme",
        headers: &[
            "funding programme",
            "funding_programme",
            "förderprogramm",
            "foerderprogramm",
        ],
    },
    KnownColumn {
        field: Field::GrantReference,
        name: "grant_reference",
        headers: &[
            "grant reference",
            "grant_reference",
            "aktenzeichen",
            "förderkennzeichen",
            "foerderkennzeichen",
        ],
    },
    KnownColumn {
        field: Field::School,
        name: "school",
        headers: &["school", "schulnummer", "schule"],
    },
];

/// The field names a `--mapping` file may map headers to.
pub fn purchase_fields() -> Vec<&'static str> {
    COLUMNS.iter().map(|c| c.name).collect()
}

/// A purchase file as read: its name (the origin of what it sets) and its table.
#[derive(Debug, Clone, Copy)]
pub struct PurchaseFile<'a> {
    /// The file's name without its folder, as `field_origin` records it (`import:<name>`).
    pub name: &'a str,
    pub sheet: &'a Sheet,
    /// Further header names, to field names (`purchase_fields`).
    pub mapping: &'a BTreeMap<String, String>,
}

/// How an import treats bad rows and new devices.
#[derive(Debug, Clone, Copy, Default)]
pub struct PurchaseOptions {
    /// Write the good rows even when some are bad (otherwise nothing is written).
    pub partial: bool,
    /// Check everything, write nothing.
    pub dry_run: bool,
    /// The file is a delivery note: new devices are `delivered` even without a delivery date.
    pub delivery_note: bool,
}

/// What one good row did (or on a dry run, would do).
#[derive(Debug, Clone, Serialize)]
pub struct PurchaseLine {
    pub line: u64,
    /// `matched`, `created`, `unchanged` or `ambiguous`.
    pub outcome: &'static str,
    pub device: String,
    /// The lifecycle state a created device starts in.
    pub state: Option<String>,
}

/// The outcome of a purchase import.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PurchaseReport {
    pub matched: usize,
    pub created: usize,
    pub ambiguous: usize,
    pub unchanged: usize,
    pub lines: Vec<PurchaseLine>,
    /// Every bad row, by line.
    pub errors: Vec<RowError>,
    /// Devices a funding rule would assign but that carry another programme: not moved.
    pub funding_conflicts: Vec<String>,
    /// Headers no known column or mapping claimed; their cells were not read.
    pub ignored_columns: Vec<String>,
    pub applied: bool,
    pub dry_run: bool,
}

/// A good row, typed.
#[derive(Debug, Clone, Default)]
struct Purchase {
    line: u64,
    order_number: Option<String>,
    purchase_date: Option<NaiveDate>,
    delivered: bool,
    supplier: Option<String>,
    manufacturer: Option<String>,
    model: Option<String>,
    model_identifier: Option<String>,
    category: Option<DeviceCategory>,
    serial: Option<String>,
    asset_tag: Option<String>,
    price: Option<Decimal>,
    currency: Option<String>,
    warranty_end: Option<NaiveDate>,
    funding: Option<String>,
    grant_reference: Option<String>,
    school_id: Option<Uuid>,
}

/// What the checks need from the database, loaded once per import.
struct Lookups {
    schools: HashMap<String, Uuid>,
    /// Programme code to its grant reference.
    programmes: HashMap<String, Option<String>>,
    /// Lower-case model identifier or model name to category.
    catalogue: HashMap<String, DeviceCategory>,
}

async fn lookups(pool: &PgPool, authority_id: Uuid) -> Result<Lookups, CoreError> {
    let schools: Vec<(String, Uuid)> =
        sqlx::query_as("select school_number, school_id from school where authority_id = $1")
            .bind(authority_id)
            .fetch_all(pool)
            .await?;
    let programmes: Vec<(String, Option<String>)> = sqlx::query_as(
        "select code, grant_reference from funding_programme where authority_id = $1",
    )
    .bind(authority_id)
    .fetch_all(pool)
    .await?;
    let models: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "select lower(model), lower(model_identifier), category from device_model \
         where authority_id = $1",
    )
    .bind(authority_id)
    .fetch_all(pool)
    .await?;
    let mut catalogue = HashMap::new();
    for (model, identifier, text) in models {
        let Ok(category) = text.parse::<DeviceCategory>() else {
            continue;
        };
        catalogue.insert(model, category);
        if let Some(identifier) = identifier {
            // An identifier outranks a name (the migration's rule): inserted last, it wins.
            catalogue.insert(identifier, category);
        }
    }
    Ok(Lookups {
        schools: schools.into_iter().collect(),
        programmes: programmes.into_iter().collect(),
        catalogue,
    })
}

/// The good rows, the bad rows' errors, and the headers no column claimed.
type Checked = (Vec<Purchase>, Vec<RowError>, Vec<String>);

/// Checks every row of `file` into purchases; bad rows become errors.
fn check_rows(
    file: &PurchaseFile<'_>,
    lookups: &Lookups,
    delivery_note: bool,
) -> Result<Checked, CoreError> {
    let located = locate_columns(&file.sheet.headers, COLUMNS, file.mapping)?;
    if located.column(Field::Serial).is_none() && located.column(Field::AssetTag).is_none() {
        return Err(CoreError::Invalid(
            "line 1: the file needs a serial number (Seriennummer) or asset tag \
             (Inventarnummer) column"
                .into(),
        ));
    }
    let mut good = Vec::new();
    let mut errors = Vec::new();
    let mut serial_lines: HashMap<String, u64> = HashMap::new();
    let mut tag_lines: HashMap<String, u64> = HashMap::new();
    for row in &file.sheet.rows {
        let mut row_errors: Vec<RowError> = Vec::new();
        let cell = |field: Field| {
            located
                .column(field)
                .map(|(at, header)| (row.cell(at), header))
        };
        let text = |field: Field| {
            cell(field).and_then(|(cell, _)| normalize::text(Some(cell.text().as_ref())))
        };
        let mut refuse = |field: Field, reason: String| {
            let (value, column) = match cell(field) {
                Some((cell, header)) => (cell.text().into_owned(), header.to_string()),
                None => (String::new(), String::new()),
            };
            row_errors.push(RowError {
                line: row.line,
                column,
                value,
                reason,
            });
        };
        let date = |field: Field, refuse: &mut dyn FnMut(Field, String)| match cell(field) {
            None => None,
            Some((cell, _)) => match date_cell(cell) {
                Ok(date) => date,
                Err(reason) => {
                    refuse(field, reason);
                    None
                }
            },
        };
        let order_date = date(Field::OrderDate, &mut refuse);
        let delivery_date = date(Field::DeliveryDate, &mut refuse);
        let warranty_end = date(Field::WarrantyEnd, &mut refuse);
        let mut purchase = Purchase {
            line: row.line,
            order_number: text(Field::OrderNumber),
            purchase_date: delivery_date.or(order_date),
            delivered: delivery_date.is_some() || delivery_note,
            supplier: text(Field::Supplier),
            manufacturer: text(Field::Manufacturer),
            model: text(Field::Model),
            model_identifier: text(Field::ModelIdentifier),
            serial: normalize::serial_number(text(Field::Serial).as_deref()),
            asset_tag: text(Field::AssetTag),
            grant_reference: text(Field::GrantReference),
            warranty_end,
            ..Purchase::default()
        };
        if let Some((cell, _)) = cell(Field::Price) {
            match price_cell(cell) {
                Ok(price) => {
                    purchase.price = price.as_ref().map(|p| p.amount);
                    purchase.currency = price.map(|p| p.currency.unwrap_or_else(|| "EUR".into()));
                }
                Err(reason) => refuse(Field::Price, reason),
            }
        }
        if let Some((cell, _)) = cell(Field::WarrantyMonths) {
            match count_cell(cell) {
                Ok(None) => {}
                Ok(Some(months)) => match purchase.purchase_date {
                    _ if warranty_end.is_some() => refuse(
                        Field::WarrantyMonths,
                        "and a warranty end are both given; give one".into(),
                    ),
                    Some(from) => {
                        purchase.warranty_end = from.checked_add_months(Months::new(months))
                    }
                    None => refuse(
                        Field::WarrantyMonths,
                        "cannot be counted: the row has no delivery or order date".into(),
                    ),
                },
                Err(reason) => refuse(Field::WarrantyMonths, reason),
            }
        }
        if let Some(text) = text(Field::Category) {
            match category(&text) {
                Ok(category) => purchase.category = Some(category),
                Err(reason) => refuse(Field::Category, reason),
            }
        } else {
            purchase.category = [&purchase.model_identifier, &purchase.model]
                .into_iter()
                .flatten()
                .find_map(|key| lookups.catalogue.get(&key.to_lowercase()).copied());
        }
        if let Some(code) = text(Field::Funding) {
            match lookups.programmes.get(&code) {
                Some(reference) => {
                    if purchase.grant_reference.is_none() {
                        purchase.grant_reference = reference.clone();
                    }
                    purchase.funding = Some(code);
                }
                None => refuse(
                    Field::Funding,
                    "is not a funding programme of this authority (add it with `bestand funding add`)"
                        .into(),
                ),
            }
        }
        if let Some(number) = text(Field::School) {
            match lookups.schools.get(&number) {
                Some(school_id) => purchase.school_id = Some(*school_id),
                None => refuse(
                    Field::School,
                    "is not a school number of this authority".into(),
                ),
            }
        }
        if let Some(serial) = &purchase.serial {
            if let Some(first) = serial_lines.get(serial) {
                refuse(Field::Serial, format!("is already on line {first}"));
            } else {
                serial_lines.insert(serial.clone(), row.line);
            }
        }
        if let Some(tag) = &purchase.asset_tag {
            if let Some(first) = tag_lines.get(tag) {
                refuse(Field::AssetTag, format!("is already on line {first}"));
            } else {
                tag_lines.insert(tag.clone(), row.line);
            }
        }
        if purchase.serial.is_none() && purchase.asset_tag.is_none() {
            row_errors.push(RowError {
                line: row.line,
                column: String::new(),
                value: String::new(),
                reason: "the row has neither a serial number nor an asset tag".into(),
            });
        }
        if row_errors.is_empty() {
            good.push(purchase);
        } else {
            errors.extend(row_errors);
        }
    }
    Ok((good, errors, located.ignored))
}

/// What matching found for a row.
enum Target {
    Device(Uuid),
    New,
    Ambiguous(Vec<Uuid>),
}

/// Imports the purchases of `file` into the authority `authority` (none: the only one); the
/// scope must reach the whole authority. Bad rows are reported; with none (or `partial`) the
/// good rows are written in one transaction, and funding rules are applied to them.
pub async fn import_purchases(
    pool: &PgPool,
    scope: &Scope,
    actor: &Actor,
    authority: Option<&str>,
    file: PurchaseFile<'_>,
    options: PurchaseOptions,
    now: DateTime<Utc>,
) -> Result<PurchaseReport, CoreError> {
    let authority_id = authority_id(pool, scope, authority).await?;
    let lookups = lookups(pool, authority_id).await?;
    let (purchases, errors, ignored) = check_rows(&file, &lookups, options.delivery_note)?;
    let mut report = PurchaseReport {
        errors,
        ignored_columns: ignored,
        dry_run: options.dry_run,
        ..PurchaseReport::default()
    };

    let mut tx = pool.begin().await?;
    let serials: Vec<&str> = purchases
        .iter()
        .filter_map(|p| p.serial.as_deref())
        .collect();
    let tags: Vec<&str> = purchases
        .iter()
        .filter_map(|p| p.asset_tag.as_deref())
        .collect();
    let known: Vec<(Uuid, Option<String>, Option<String>)> = sqlx::query_as(
        "select device_id, serial_number, asset_tag from device where authority_id = $1 \
         and (serial_number = any($2) or asset_tag = any($3))",
    )
    .bind(authority_id)
    .bind(&serials)
    .bind(&tags)
    .fetch_all(&mut *tx)
    .await?;
    let mut by_serial: HashMap<&str, Uuid> = HashMap::new();
    let mut by_tag: HashMap<&str, (Uuid, Option<&str>)> = HashMap::new();
    for (device_id, serial, tag) in &known {
        if let Some(serial) = serial {
            by_serial.insert(serial, *device_id);
        }
        if let Some(tag) = tag {
            by_tag.insert(tag, (*device_id, serial.as_deref()));
        }
    }
    let targets: Vec<Target> = purchases
        .iter()
        .map(|p| {
            let serial = p.serial.as_deref().and_then(|s| by_serial.get(s).copied());
            let tag = p.asset_tag.as_deref().and_then(|t| by_tag.get(t).copied());
            match (serial, tag) {
                (Some(a), Some((b, _))) if a != b => Target::Ambiguous(vec![a, b]),
                (Some(device), _) => Target::Device(device),
                // A tag on a device with another serial is a sticker on the wrong device, or
                // a typo: a person decides (and a new device could not take the tag anyway).
                (None, Some((device, Some(_)))) if p.serial.is_some() => {
                    Target::Ambiguous(vec![device])
                }
                (None, Some((device, _))) => Target::Device(device),
                (None, None) => Target::New,
            }
        })
        .collect();

    let matched_ids: Vec<Uuid> = targets
        .iter()
        .filter_map(|t| match t {
            Target::Device(device) => Some(*device),
            _ => None,
        })
        .collect();
    let mut devices: HashMap<Uuid, DeviceRow> = load_devices_for_update(&mut tx, &matched_ids)
        .await?
        .into_iter()
        .map(|row| (row.device_id, row))
        .collect();
    let rules = load_rules(&mut tx, authority_id).await?;
    let origin = format!("import:{}", file.name);
    let mut events: Vec<(Uuid, &'static str, String)> = Vec::new();
    let mut changed: Vec<Uuid> = Vec::new();
    let mut created: Vec<DeviceRow> = Vec::new();
    let mut reviews: Vec<(&Purchase, Vec<Uuid>)> = Vec::new();
    for (purchase, target) in purchases.iter().zip(targets) {
        match target {
            Target::Ambiguous(candidates) => {
                report.ambiguous += 1;
                report.lines.push(PurchaseLine {
                    line: purchase.line,
                    outcome: "ambiguous",
                    device: row_label(purchase),
                    state: None,
                });
                reviews.push((purchase, candidates));
            }
            Target::Device(device_id) => {
                let Some(device) = devices.get_mut(&device_id) else {
                    continue;
                };
                let mut changes = apply_purchase(device, purchase, &origin);
                apply_rules(
                    device,
                    &rules,
                    &origin,
                    &mut changes,
                    &mut report.funding_conflicts,
                );
                let outcome = if changes.is_empty() {
                    report.unchanged += 1;
                    "unchanged"
                } else {
                    report.matched += 1;
                    device.updated_at = now;
                    events.push((device_id, "purchase_imported", changes_json(&changes)));
                    changed.push(device_id);
                    "matched"
                };
                report.lines.push(PurchaseLine {
                    line: purchase.line,
                    outcome,
                    device: device.label(),
                    state: None,
                });
            }
            Target::New => {
                let mut device = new_device(authority_id, purchase, now);
                let mut changes = apply_purchase(&mut device, purchase, &origin);
                for (field, value) in [
                    ("serial_number", &purchase.serial),
                    ("manufacturer", &purchase.manufacturer),
                    ("model", &purchase.model),
                    ("model_identifier", &purchase.model_identifier),
                ] {
                    if value.is_some() {
                        changes.insert(field.into(), change(None, value.as_ref()));
                        set_origin(&mut device, field, &origin);
                    }
                }
                changes.insert("category".into(), change(None, Some(&device.category)));
                changes.insert(
                    "lifecycle_state".into(),
                    change(None, Some(&device.lifecycle_state)),
                );
                apply_rules(
                    &mut device,
                    &rules,
                    &origin,
                    &mut changes,
                    &mut report.funding_conflicts,
                );
                report.created += 1;
                report.lines.push(PurchaseLine {
                    line: purchase.line,
                    outcome: "created",
                    device: device.label(),
                    state: Some(device.lifecycle_state.clone()),
                });
                events.push((device.device_id, "created", changes_json(&changes)));
                created.push(device);
            }
        }
    }
    report.errors.sort_by_key(|error| error.line);
    report.lines.sort_by_key(|line| line.line);

    let write = report.errors.is_empty() || options.partial;
    report.applied = write && !options.dry_run;
    if !report.applied {
        tx.rollback().await?;
        return Ok(report);
    }
    // Every row inserted here points at rows known to exist: the authority and the schools and
    // programmes the check resolved (locked now), devices created in this transaction, or
    // matched devices locked since they were loaded. So the inserts skip PostgreSQL's per-row
    // key checks, as a sync run's do (docs/sync.md, "Keys and cascades").
    let checks = import_row_checks(&mut tx, authority_id, &created).await?;
    checks.switch(&mut tx, true).await?;
    insert_devices(&mut tx, created).await?;
    let actor_name = actor.name();
    let context = EventContext::import(authority_id, now, &actor_name);
    let events: Vec<(Uuid, &str, String)> = events;
    insert_events(&mut tx, &context, &events).await?;
    checks.switch(&mut tx, false).await?;
    let changed_rows: Vec<DeviceRow> = changed.iter().filter_map(|id| devices.remove(id)).collect();
    update_purchase_columns(&mut tx, changed_rows).await?;
    for (purchase, candidates) in reviews {
        open_review_item(&mut tx, authority_id, file.name, purchase, &candidates, now).await?;
    }
    tx.commit().await?;
    Ok(report)
}

/// Whether the inserts of this import may skip their per-row key checks: when the role may
/// switch triggers off and the authority, schools and programmes the created devices point at
/// are still there (now locked until the import commits).
async fn import_row_checks(
    tx: &mut sqlx::PgConnection,
    authority_id: Uuid,
    created: &[DeviceRow],
) -> Result<RowChecks, CoreError> {
    let checks = RowChecks::for_connection(tx).await?;
    if checks == RowChecks::PerRow {
        return Ok(checks);
    }
    let schools: BTreeSet<Uuid> = created.iter().filter_map(|d| d.school_id).collect();
    let programmes: BTreeSet<&str> = created
        .iter()
        .filter_map(|d| d.funding_programme.as_deref())
        .collect();
    let schools: Vec<Uuid> = schools.into_iter().collect();
    let programmes: Vec<&str> = programmes.into_iter().collect();
    Ok(
        if lock_import_references(tx, authority_id, &schools, &programmes).await? {
            RowChecks::Skippable
        } else {
            RowChecks::PerRow
        },
    )
}

/// Writes what a purchase import may change of matched devices (the purchase columns, asset
/// tag and school where they were empty, field origins, the update time) in one statement;
/// the other columns are left as they are, which keeps the statement small and leaves the
/// lifecycle trigger out of it.
async fn update_purchase_columns(
    tx: &mut sqlx::PgConnection,
    rows: Vec<DeviceRow>,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(rows.len());
    let mut tags = Vec::with_capacity(rows.len());
    let mut schools = Vec::with_capacity(rows.len());
    let mut orders = Vec::with_capacity(rows.len());
    let mut dates = Vec::with_capacity(rows.len());
    let mut suppliers = Vec::with_capacity(rows.len());
    let mut prices = Vec::with_capacity(rows.len());
    let mut currencies = Vec::with_capacity(rows.len());
    let mut warranties = Vec::with_capacity(rows.len());
    let mut programmes = Vec::with_capacity(rows.len());
    let mut grants = Vec::with_capacity(rows.len());
    let mut origins = Vec::with_capacity(rows.len());
    let mut updated = Vec::with_capacity(rows.len());
    for row in rows {
        origins.push(row.stored_field_origin().to_string());
        ids.push(row.device_id);
        tags.push(row.asset_tag);
        schools.push(row.school_id);
        orders.push(row.order_number);
        dates.push(row.purchase_date);
        suppliers.push(row.supplier);
        prices.push(row.purchase_price);
        currencies.push(row.currency);
        warranties.push(row.warranty_end);
        programmes.push(row.funding_programme);
        grants.push(row.grant_reference);
        updated.push(row.updated_at);
    }
    sqlx::query(
        "update device d set asset_tag = u.asset_tag, school_id = u.school_id, \
         order_number = u.order_number, purchase_date = u.purchase_date, supplier = u.supplier, \
         purchase_price = u.purchase_price, currency = u.currency, warranty_end = u.warranty_end, \
         funding_programme = u.funding_programme, grant_reference = u.grant_reference, \
         field_origin = u.field_origin::json, updated_at = u.updated_at \
         from unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::date[], $6::text[], \
           $7::numeric[], $8::text[], $9::date[], $10::text[], $11::text[], $12::text[], \
           $13::timestamptz[]) \
         as u(device_id, asset_tag, school_id, order_number, purchase_date, supplier, \
           purchase_price, currency, warranty_end, funding_programme, grant_reference, \
           field_origin, updated_at) \
         where d.device_id = u.device_id",
    )
    .bind(ids)
    .bind(tags)
    .bind(schools)
    .bind(orders)
    .bind(dates)
    .bind(suppliers)
    .bind(prices)
    .bind(currencies)
    .bind(warranties)
    .bind(programmes)
    .bind(grants)
    .bind(origins)
    .bind(updated)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// How a row names its device in messages: its asset tag, else its serial.
fn row_label(purchase: &Purchase) -> String {
    purchase
        .asset_tag
        .clone()
        .or_else(|| purchase.serial.clone())
        .unwrap_or_default()
}

fn changes_json(changes: &Changes) -> String {
    serde_json::to_string(changes).unwrap_or_else(|_| "{}".to_string())
}

fn set_origin(device: &mut DeviceRow, field: &str, origin: &str) {
    if !device.field_origin.is_object() {
        device.field_origin = json!({});
    }
    if let Some(origins) = device.field_origin.as_object_mut() {
        origins.insert(field.to_string(), Value::String(origin.to_string()));
    }
}

/// Sets `current` to `incoming` where the row has a value that differs, recording the change
/// and the field's origin.
fn set_field<T: PartialEq + Clone + Serialize>(
    device_origin: &mut Vec<&'static str>,
    changes: &mut Changes,
    name: &'static str,
    current: &mut Option<T>,
    incoming: &Option<T>,
) {
    let Some(incoming) = incoming else {
        return;
    };
    if current.as_ref() == Some(incoming) {
        return;
    }
    changes.insert(name.to_string(), change(current.as_ref(), Some(incoming)));
    *current = Some(incoming.clone());
    device_origin.push(name);
}

/// Writes the purchase data of `purchase` into `device` (procurement owns it: a row's value
/// replaces whatever was there), and fills asset tag and school where the device has none.
fn apply_purchase(device: &mut DeviceRow, purchase: &Purchase, origin: &str) -> Changes {
    let mut changes = Changes::new();
    let mut set: Vec<&'static str> = Vec::new();
    set_field(
        &mut set,
        &mut changes,
        "order_number",
        &mut device.order_number,
        &purchase.order_number,
    );
    set_field(
        &mut set,
        &mut changes,
        "purchase_date",
        &mut device.purchase_date,
        &purchase.purchase_date,
    );
    set_field(
        &mut set,
        &mut changes,
        "supplier",
        &mut device.supplier,
        &purchase.supplier,
    );
    set_field(
        &mut set,
        &mut changes,
        "purchase_price",
        &mut device.purchase_price,
        &purchase.price,
    );
    set_field(
        &mut set,
        &mut changes,
        "currency",
        &mut device.currency,
        &purchase.currency,
    );
    set_field(
        &mut set,
        &mut changes,
        "warranty_end",
        &mut device.warranty_end,
        &purchase.warranty_end,
    );
    set_field(
        &mut set,
        &mut changes,
        "funding_programme",
        &mut device.funding_programme,
        &purchase.funding,
    );
    set_field(
        &mut set,
        &mut changes,
        "grant_reference",
        &mut device.grant_reference,
        &purchase.grant_reference,
    );
    if device.asset_tag.is_none() {
        set_field(
            &mut set,
            &mut changes,
            "asset_tag",
            &mut device.asset_tag,
            &purchase.asset_tag,
        );
    }
    if device.school_id.is_none() {
        set_field(
            &mut set,
            &mut changes,
            "school_id",
            &mut device.school_id,
            &purchase.school_id,
        );
    }
    for field in set {
        set_origin(device, field, origin);
    }
    changes
}

/// Applies the first funding rule that covers `device` when it has no programme yet; a device
/// with another programme than a covering rule's is reported, never moved.
fn apply_rules(
    device: &mut DeviceRow,
    rules: &[FundingRule],
    origin: &str,
    changes: &mut Changes,
    conflicts: &mut Vec<String>,
) {
    let Some(rule) = rules.iter().find(|rule| {
        rule.covers(
            device.order_number.as_deref(),
            device.purchase_date,
            device.school_id,
        )
    }) else {
        return;
    };
    match &device.funding_programme {
        None => {
            changes.insert("funding_programme".into(), change(None, Some(&rule.code)));
            device.funding_programme = Some(rule.code.clone());
            set_origin(device, "funding_programme", origin);
            if device.grant_reference.is_none() && rule.grant_reference.is_some() {
                changes.insert(
                    "grant_reference".into(),
                    change(None, rule.grant_reference.as_ref()),
                );
                device.grant_reference = rule.grant_reference.clone();
                set_origin(device, "grant_reference", origin);
            }
        }
        Some(code) if *code != rule.code => conflicts.push(format!(
            "{}: funding rule {} of {} covers it, but it is funded by {code}; left as it is",
            device.label(),
            rule.funding_rule_id,
            rule.code
        )),
        Some(_) => {}
    }
}

/// A device the purchase creates: `delivered` when it came, else `ordered`.
fn new_device(authority_id: Uuid, purchase: &Purchase, now: DateTime<Utc>) -> DeviceRow {
    let mut device = DeviceRow::empty(Uuid::now_v7(), authority_id, now);
    device.serial_number = purchase.serial.clone();
    device.category = purchase.category.unwrap_or_default().as_str().to_string();
    device.manufacturer = purchase.manufacturer.clone();
    device.model = purchase.model.clone();
    device.model_identifier = purchase.model_identifier.clone();
    device.lifecycle_state = if purchase.delivered {
        "delivered"
    } else {
        "ordered"
    }
    .to_string();
    device
}

/// Opens (or refreshes) the review item of an ambiguous row: one per serial or tag and
/// authority, carrying the row so a person sees what it said.
async fn open_review_item(
    tx: &mut sqlx::PgConnection,
    authority_id: Uuid,
    file_name: &str,
    purchase: &Purchase,
    candidates: &[Uuid],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let key = format!("purchase:{}", row_label(purchase));
    let summary = format!(
        "{file_name}, line {}: serial number {} and asset tag {} name {}; nothing was written \
         for this row",
        purchase.line,
        purchase.serial.as_deref().unwrap_or("(none)"),
        purchase.asset_tag.as_deref().unwrap_or("(none)"),
        if candidates.len() > 1 {
            "two different devices"
        } else {
            "a device that carries another serial number"
        }
    );
    let record = json!({
        "file": file_name,
        "line": purchase.line,
        "serial_number": purchase.serial,
        "asset_tag": purchase.asset_tag,
        "order_number": purchase.order_number,
        "purchase_date": purchase.purchase_date,
        "supplier": purchase.supplier,
        "purchase_price": purchase.price,
        "funding_programme": purchase.funding,
    });
    sqlx::query(
        "insert into review_item (authority_id, source_id, kind, external_id, summary, record, \
         candidates, created_at, last_seen_at) \
         select $1, null, $2, $3, $4, $5, $6, $7, $7 \
         where not exists (select 1 from review_item d where d.authority_id = $1 \
         and d.source_id is null and d.kind = $2 and d.external_id = $3 and d.status = 'dismissed') \
         on conflict (authority_id, kind, external_id) where status = 'open' and source_id is null \
         do update set summary = excluded.summary, record = excluded.record, \
         candidates = excluded.candidates, last_seen_at = excluded.last_seen_at",
    )
    .bind(authority_id)
    .bind(PURCHASE_AMBIGUOUS)
    .bind(key)
    .bind(summary)
    .bind(record)
    .bind(candidates)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sheet::{Cell, SheetRow};

    fn sheet(headers: &[&str], rows: &[&[&str]]) -> Sheet {
        Sheet {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: rows
                .iter()
                .enumerate()
                .map(|(i, cells)| SheetRow {
                    line: i as u64 + 2,
                    cells: cells
                        .iter()
                        .map(|c| match *c {
                            "" => Cell::Empty,
                            text => Cell::Text(text.into()),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    fn lookups() -> Lookups {
        Lookups {
            schools: HashMap::new(),
            programmes: [("DP".to_string(), Some("AZ-1".to_string()))].into(),
            catalogue: [("ipad air".to_string(), DeviceCategory::Tablet)].into(),
        }
    }

    #[test]
    fn every_bad_cell_is_named_by_line_column_and_value() {
        let sheet = sheet(
            &[
                "Seriennummer",
                "Lieferdatum",
                "Einzelpreis",
                "Garantie (Monate)",
                "Förderprogramm",
            ],
            &[
                &["s1", "31.02.2024", "1.234,56 €", "24", "DP"],
                &["s2", "01.03.2024", "zwölf", "x", "XY"],
                &["S1", "01.03.2024", "", "", ""],
                &["", "01.03.2024", "", "", ""],
            ],
        );
        let mapping = BTreeMap::new();
        let file = PurchaseFile {
            name: "f.csv",
            sheet: &sheet,
            mapping: &mapping,
        };
        let (good, errors, _) = check_rows(&file, &lookups(), false).unwrap();
        assert!(good.is_empty(), "{good:?}");
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(shown[0], "line 2, column Lieferdatum: '31.02.2024' is not a date (write DD.MM.YYYY or YYYY-MM-DD)");
        // Line 2's warranty months cannot be counted without a date.
        assert!(
            shown[1].starts_with("line 2, column Garantie (Monate): '24' cannot be counted"),
            "{shown:?}"
        );
        assert!(
            shown[2].starts_with("line 3, column Einzelpreis: 'zwölf' is not a price"),
            "{shown:?}"
        );
        assert_eq!(
            shown[3],
            "line 3, column Garantie (Monate): 'x' is not a whole number"
        );
        assert!(
            shown[4].starts_with("line 3, column Förderprogramm: 'XY' is not a funding programme"),
            "{shown:?}"
        );
        assert_eq!(
            shown[5],
            "line 4, column Seriennummer: 'S1' is already on line 2"
        );
        assert_eq!(
            shown[6],
            "line 5: the row has neither a serial number nor an asset tag"
        );
    }

    #[test]
    fn a_good_row_is_typed_with_warranty_category_and_grant_reference() {
        let sheet = sheet(
            &[
                "seriennummer",
                "lieferdatum",
                "preis",
                "garantie (monate)",
                "förderprogramm",
                "modell",
            ],
            &[&[
                " dmp-1 ",
                "15.01.2024",
                "1.234,56 €",
                "24",
                "DP",
                "iPad Air",
            ]],
        );
        let mapping = BTreeMap::new();
        let file = PurchaseFile {
            name: "f.csv",
            sheet: &sheet,
            mapping: &mapping,
        };
        let (good, errors, _) = check_rows(&file, &lookups(), false).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        let row = &good[0];
        assert_eq!(row.serial.as_deref(), Some("DMP-1"));
        assert_eq!(row.price, Some(Decimal::new(123_456, 2)));
        // 24 months from 2024-01-15.
        assert_eq!(row.warranty_end, NaiveDate::from_ymd_opt(2026, 1, 15));
        assert_eq!(row.category, Some(DeviceCategory::Tablet));
        assert_eq!(row.grant_reference.as_deref(), Some("AZ-1"));
        assert!(row.delivered);
    }
}
