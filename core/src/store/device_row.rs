//! The device row as stored, and its column-wise form for bulk writes.
//!
//! Bulk writes go through `unnest` over one array per column: one statement per page
//! instead of one per device, which is what keeps a full sync above 10,000 devices/s.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

use crate::store::merge::{HardwareId, NormalizedIds};

/// All columns of `device`.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DeviceRow {
    pub device_id: Uuid,
    pub authority_id: Uuid,
    pub asset_tag: Option<String>,
    pub serial_number: Option<String>,
    pub udid: Option<String>,
    pub imei: Option<String>,
    pub wifi_mac: Option<String>,
    pub name: Option<String>,
    pub category: String,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub model_identifier: Option<String>,
    pub os_name: Option<String>,
    pub os_version: Option<String>,
    pub lifecycle_state: String,
    pub school_id: Option<Uuid>,
    pub building: Option<String>,
    pub room: Option<String>,
    pub order_number: Option<String>,
    pub purchase_date: Option<NaiveDate>,
    pub supplier: Option<String>,
    pub purchase_price: Option<Decimal>,
    pub currency: Option<String>,
    pub warranty_end: Option<NaiveDate>,
    pub life_expectancy_years: Option<i32>,
    pub funding_programme: Option<String>,
    pub grant_reference: Option<String>,
    pub earmark_end: Option<NaiveDate>,
    pub field_origin: serde_json::Value,
    pub first_seen_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The fields sources report and the merge sets, each with its origin in `field_origin`.
pub const SOURCE_FIELDS: &[&str] = &[
    "serial_number",
    "udid",
    "imei",
    "wifi_mac",
    "name",
    "manufacturer",
    "model",
    "model_identifier",
    "os_name",
    "os_version",
    "category",
    "asset_tag",
    "school_id",
    "building",
    "room",
    "order_number",
    "purchase_date",
    "supplier",
    "purchase_price",
    "currency",
    "warranty_end",
    "life_expectancy_years",
];

/// A device's asset tag and that tag's origin before a record was merged into it: what the
/// device gets back when the tag the record brings is carried by another device (tags are
/// unique per authority), so that its origin never names a source for a tag it did not set.
#[derive(Debug, Clone, Default)]
pub struct AssetTagBefore {
    tag: Option<String>,
    origin: Option<serde_json::Value>,
}

/// The key of the stored `field_origin` that names the origin of every source field holding a
/// value and having no entry of its own.
const SHARED_ORIGIN: &str = "*";

/// How messages name a device for people: its asset tag, else its serial number, else its id,
/// each of which `bestand devices show` and `review resolve --link` accept.
pub fn device_label(
    asset_tag: Option<&str>,
    serial_number: Option<&str>,
    device_id: Uuid,
) -> String {
    asset_tag
        .or(serial_number)
        .map_or_else(|| device_id.to_string(), str::to_string)
}

/// A device's identifiers, as matching and the identifier guards compare them.
#[derive(Debug, sqlx::FromRow)]
pub struct DeviceKeys {
    pub device_id: Uuid,
    #[sqlx(flatten)]
    pub ids: NormalizedIds,
    pub asset_tag: Option<String>,
}

impl DeviceKeys {
    pub fn label(&self) -> String {
        device_label(
            self.asset_tag.as_deref(),
            self.ids.serial_number.as_deref(),
            self.device_id,
        )
    }
}

/// Identifier values to look devices up by (`devices_by_keys`), one list per identifier.
#[derive(Debug, Default)]
pub struct KeyLookup {
    pub serials: Vec<String>,
    pub udids: Vec<String>,
    pub imeis: Vec<String>,
    pub macs: Vec<String>,
    pub asset_tags: Vec<String>,
}

impl KeyLookup {
    /// Adds the hardware ids `ids` carries.
    pub fn add(&mut self, ids: &NormalizedIds) {
        self.serials.extend(ids.serial_number.clone());
        self.udids.extend(ids.udid.clone());
        self.imeis.extend(ids.imei.clone());
        self.macs.extend(ids.wifi_mac.clone());
    }
}

/// The devices of `authority_id` that carry any of the identifiers in `keys`, in id order.
pub(crate) async fn devices_by_keys(
    conn: &mut sqlx::PgConnection,
    authority_id: Uuid,
    keys: &KeyLookup,
) -> Result<Vec<DeviceKeys>, sqlx::Error> {
    sqlx::query_as(
        "select device_id, serial_number, udid, imei, wifi_mac, asset_tag from device \
         where authority_id = $1 and (serial_number = any($2) or udid = any($3) \
         or imei = any($4) or wifi_mac = any($5) or asset_tag = any($6)) order by device_id",
    )
    .bind(authority_id)
    .bind(&keys.serials)
    .bind(&keys.udids)
    .bind(&keys.imeis)
    .bind(&keys.macs)
    .bind(&keys.asset_tags)
    .fetch_all(&mut *conn)
    .await
}

impl DeviceRow {
    /// A device with nothing known yet but its id and authority: category `other`, state
    /// `in_use`. The sync's and the purchase import's new devices start from it.
    pub fn empty(device_id: Uuid, authority_id: Uuid, now: DateTime<Utc>) -> DeviceRow {
        DeviceRow {
            device_id,
            authority_id,
            asset_tag: None,
            serial_number: None,
            udid: None,
            imei: None,
            wifi_mac: None,
            name: None,
            category: crate::model::DeviceCategory::Other.as_str().to_string(),
            manufacturer: None,
            model: None,
            model_identifier: None,
            os_name: None,
            os_version: None,
            lifecycle_state: "in_use".to_string(),
            school_id: None,
            building: None,
            room: None,
            order_number: None,
            purchase_date: None,
            supplier: None,
            purchase_price: None,
            currency: None,
            warranty_end: None,
            life_expectancy_years: None,
            funding_programme: None,
            grant_reference: None,
            earmark_end: None,
            field_origin: serde_json::json!({}),
            first_seen_at: now,
            updated_at: now,
        }
    }

    /// One of the device's hardware identifiers.
    pub fn hardware_id(&self, id: HardwareId) -> Option<&str> {
        match id {
            HardwareId::Serial => self.serial_number.as_deref(),
            HardwareId::Udid => self.udid.as_deref(),
            HardwareId::Imei => self.imei.as_deref(),
            HardwareId::WifiMac => self.wifi_mac.as_deref(),
        }
    }

    /// Removes one of the device's hardware identifiers and its origin (a split takes it along).
    pub fn clear_hardware_id(&mut self, id: HardwareId) {
        match id {
            HardwareId::Serial => self.serial_number = None,
            HardwareId::Udid => self.udid = None,
            HardwareId::Imei => self.imei = None,
            HardwareId::WifiMac => self.wifi_mac = None,
        }
        if let Some(origins) = self.field_origin.as_object_mut() {
            origins.remove(id.field());
        }
    }

    pub fn label(&self) -> String {
        device_label(
            self.asset_tag.as_deref(),
            self.serial_number.as_deref(),
            self.device_id,
        )
    }

    pub fn asset_tag_before(&self) -> AssetTagBefore {
        AssetTagBefore {
            tag: self.asset_tag.clone(),
            origin: self.field_origin.get("asset_tag").cloned(),
        }
    }

    /// Whether the merged tag differs from `before`'s, so that it needs the uniqueness check.
    pub fn asset_tag_changed(&self, before: &AssetTagBefore) -> bool {
        self.asset_tag.is_some() && self.asset_tag != before.tag
    }

    /// Gives the device back the tag, and the tag's origin, it had before the merge.
    pub fn keep_asset_tag(&mut self, before: AssetTagBefore) {
        self.asset_tag = before.tag;
        if let Some(origins) = self.field_origin.as_object_mut() {
            match before.origin {
                Some(origin) => origins.insert("asset_tag".into(), origin),
                None => origins.remove("asset_tag"),
            };
        }
    }

    /// Whether source field `field` holds a value.
    fn has_value(&self, field: &str) -> bool {
        match field {
            "serial_number" => self.serial_number.is_some(),
            "udid" => self.udid.is_some(),
            "imei" => self.imei.is_some(),
            "wifi_mac" => self.wifi_mac.is_some(),
            "name" => self.name.is_some(),
            "manufacturer" => self.manufacturer.is_some(),
            "model" => self.model.is_some(),
            "model_identifier" => self.model_identifier.is_some(),
            "os_name" => self.os_name.is_some(),
            "os_version" => self.os_version.is_some(),
            "category" => true,
            "asset_tag" => self.asset_tag.is_some(),
            "school_id" => self.school_id.is_some(),
            "building" => self.building.is_some(),
            "room" => self.room.is_some(),
            "order_number" => self.order_number.is_some(),
            "purchase_date" => self.purchase_date.is_some(),
            "supplier" => self.supplier.is_some(),
            "purchase_price" => self.purchase_price.is_some(),
            "currency" => self.currency.is_some(),
            "warranty_end" => self.warranty_end.is_some(),
            "life_expectancy_years" => self.life_expectancy_years.is_some(),
            _ => false,
        }
    }

    /// `field_origin` as stored. A device usually got all its fields from one source, so the
    /// origin most fields share is written once under `"*"`; a field with a value and another
    /// origin keeps its own entry, and one with a value and no origin an entry of `null`.
    /// (The full map repeated `"source:jamf"` 21 times: 565 of a device row's 950 bytes.)
    pub(crate) fn stored_field_origin(&self) -> serde_json::Value {
        let serde_json::Value::Object(origins) = &self.field_origin else {
            return self.field_origin.clone();
        };
        let mut shares: Vec<(&str, usize)> = Vec::new();
        for field in SOURCE_FIELDS {
            if let Some(origin) = origins.get(*field).and_then(serde_json::Value::as_str) {
                if self.has_value(field) {
                    match shares.iter_mut().find(|(seen, _)| *seen == origin) {
                        Some((_, count)) => *count += 1,
                        None => shares.push((origin, 1)),
                    }
                }
            }
        }
        let Some(shared) = shares
            .iter()
            .max_by_key(|(_, count)| *count)
            .map(|(o, _)| *o)
        else {
            return self.field_origin.clone();
        };
        let mut stored = serde_json::Map::new();
        stored.insert(SHARED_ORIGIN.into(), shared.into());
        for (field, origin) in origins {
            let implied = origin.as_str() == Some(shared)
                && SOURCE_FIELDS.contains(&field.as_str())
                && self.has_value(field);
            if !implied {
                stored.insert(field.clone(), origin.clone());
            }
        }
        for field in SOURCE_FIELDS {
            if self.has_value(field) && !origins.contains_key(*field) {
                stored.insert((*field).into(), serde_json::Value::Null);
            }
        }
        serde_json::Value::Object(stored)
    }

    /// Turns a stored `field_origin` back into one entry per field (see `stored_field_origin`).
    pub(crate) fn expand_field_origin(&mut self) {
        let serde_json::Value::Object(stored) = &mut self.field_origin else {
            return;
        };
        let Some(shared) = stored.remove(SHARED_ORIGIN) else {
            return;
        };
        let mut origins = std::mem::take(stored);
        for field in SOURCE_FIELDS {
            if !origins.contains_key(*field) && self.has_value(field) {
                origins.insert((*field).into(), shared.clone());
            }
        }
        origins.retain(|_, origin| !origin.is_null());
        self.field_origin = serde_json::Value::Object(origins);
    }
}

/// The select list matching `DeviceRow`.
pub const DEVICE_COLUMNS: &str = "device_id, authority_id, asset_tag, serial_number, udid, imei, \
    wifi_mac, name, category, manufacturer, model, model_identifier, os_name, os_version, \
    lifecycle_state, school_id, building, room, order_number, purchase_date, supplier, \
    purchase_price, currency, warranty_end, life_expectancy_years, funding_programme, \
    grant_reference, earmark_end, field_origin, first_seen_at, updated_at";

/// `DeviceRow`s turned inside out: one vector per column, ready to bind as arrays.
#[derive(Debug, Default)]
struct DeviceColumns {
    device_id: Vec<Uuid>,
    authority_id: Vec<Uuid>,
    asset_tag: Vec<Option<String>>,
    serial_number: Vec<Option<String>>,
    udid: Vec<Option<String>>,
    imei: Vec<Option<String>>,
    wifi_mac: Vec<Option<String>>,
    name: Vec<Option<String>>,
    category: Vec<String>,
    manufacturer: Vec<Option<String>>,
    model: Vec<Option<String>>,
    model_identifier: Vec<Option<String>>,
    os_name: Vec<Option<String>>,
    os_version: Vec<Option<String>>,
    lifecycle_state: Vec<String>,
    school_id: Vec<Option<Uuid>>,
    building: Vec<Option<String>>,
    room: Vec<Option<String>>,
    order_number: Vec<Option<String>>,
    purchase_date: Vec<Option<NaiveDate>>,
    supplier: Vec<Option<String>>,
    purchase_price: Vec<Option<Decimal>>,
    currency: Vec<Option<String>>,
    warranty_end: Vec<Option<NaiveDate>>,
    life_expectancy_years: Vec<Option<i32>>,
    funding_programme: Vec<Option<String>>,
    grant_reference: Vec<Option<String>>,
    earmark_end: Vec<Option<NaiveDate>>,
    field_origin: Vec<String>,
    first_seen_at: Vec<DateTime<Utc>>,
    updated_at: Vec<DateTime<Utc>>,
}

impl DeviceColumns {
    fn from_rows(rows: Vec<DeviceRow>) -> DeviceColumns {
        let mut columns = DeviceColumns::default();
        for row in rows {
            // Computed before the fields move out: it looks at which fields hold a value.
            columns
                .field_origin
                .push(row.stored_field_origin().to_string());
            columns.device_id.push(row.device_id);
            columns.authority_id.push(row.authority_id);
            columns.asset_tag.push(row.asset_tag);
            columns.serial_number.push(row.serial_number);
            columns.udid.push(row.udid);
            columns.imei.push(row.imei);
            columns.wifi_mac.push(row.wifi_mac);
            columns.name.push(row.name);
            columns.category.push(row.category);
            columns.manufacturer.push(row.manufacturer);
            columns.model.push(row.model);
            columns.model_identifier.push(row.model_identifier);
            columns.os_name.push(row.os_name);
            columns.os_version.push(row.os_version);
            columns.lifecycle_state.push(row.lifecycle_state);
            columns.school_id.push(row.school_id);
            columns.building.push(row.building);
            columns.room.push(row.room);
            columns.order_number.push(row.order_number);
            columns.purchase_date.push(row.purchase_date);
            columns.supplier.push(row.supplier);
            columns.purchase_price.push(row.purchase_price);
            columns.currency.push(row.currency);
            columns.warranty_end.push(row.warranty_end);
            columns
                .life_expectancy_years
                .push(row.life_expectancy_years);
            columns.funding_programme.push(row.funding_programme);
            columns.grant_reference.push(row.grant_reference);
            columns.earmark_end.push(row.earmark_end);
            columns.first_seen_at.push(row.first_seen_at);
            columns.updated_at.push(row.updated_at);
        }
        columns
    }

    fn bind<'q>(
        self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(self.device_id)
            .bind(self.authority_id)
            .bind(self.asset_tag)
            .bind(self.serial_number)
            .bind(self.udid)
            .bind(self.imei)
            .bind(self.wifi_mac)
            .bind(self.name)
            .bind(self.category)
            .bind(self.manufacturer)
            .bind(self.model)
            .bind(self.model_identifier)
            .bind(self.os_name)
            .bind(self.os_version)
            .bind(self.lifecycle_state)
            .bind(self.school_id)
            .bind(self.building)
            .bind(self.room)
            .bind(self.order_number)
            .bind(self.purchase_date)
            .bind(self.supplier)
            .bind(self.purchase_price)
            .bind(self.currency)
            .bind(self.warranty_end)
            .bind(self.life_expectancy_years)
            .bind(self.funding_programme)
            .bind(self.grant_reference)
            .bind(self.earmark_end)
            .bind(self.field_origin)
            .bind(self.first_seen_at)
            .bind(self.updated_at)
    }
}

/// The `unnest(...)` source shared by bulk insert and bulk update; column order as `DEVICE_COLUMNS`.
const UNNEST_DEVICES: &str = "unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], \
    $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], \
    $13::text[], $14::text[], $15::text[], $16::uuid[], $17::text[], $18::text[], $19::text[], \
    $20::date[], $21::text[], $22::numeric[], $23::text[], $24::date[], $25::int4[], $26::text[], \
    $27::text[], $28::date[], $29::text[], $30::timestamptz[], $31::timestamptz[])";

/// Inserts new devices in one statement.
pub(crate) async fn insert_devices(
    conn: &mut sqlx::PgConnection,
    rows: Vec<DeviceRow>,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "insert into device ({DEVICE_COLUMNS}) \
         select u.device_id, u.authority_id, u.asset_tag, u.serial_number, u.udid, u.imei, \
         u.wifi_mac, u.name, u.category, u.manufacturer, u.model, u.model_identifier, u.os_name, \
         u.os_version, u.lifecycle_state, u.school_id, u.building, u.room, u.order_number, \
         u.purchase_date, u.supplier, u.purchase_price, u.currency, u.warranty_end, \
         u.life_expectancy_years, u.funding_programme, u.grant_reference, u.earmark_end, \
         u.field_origin::json, u.first_seen_at, u.updated_at \
         from {UNNEST_DEVICES} as u({DEVICE_COLUMNS})"
    );
    DeviceColumns::from_rows(rows)
        .bind(sqlx::query(&sql))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Writes every column of the given devices (matched by id) in one statement.
pub(crate) async fn update_devices(
    conn: &mut sqlx::PgConnection,
    rows: Vec<DeviceRow>,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "update device d set asset_tag = u.asset_tag, serial_number = u.serial_number, \
         udid = u.udid, imei = u.imei, wifi_mac = u.wifi_mac, name = u.name, category = u.category, \
         manufacturer = u.manufacturer, model = u.model, model_identifier = u.model_identifier, \
         os_name = u.os_name, os_version = u.os_version, lifecycle_state = u.lifecycle_state, \
         school_id = u.school_id, building = u.building, room = u.room, \
         order_number = u.order_number, purchase_date = u.purchase_date, supplier = u.supplier, \
         purchase_price = u.purchase_price, currency = u.currency, warranty_end = u.warranty_end, \
         life_expectancy_years = u.life_expectancy_years, \
         funding_programme = u.funding_programme, grant_reference = u.grant_reference, \
         earmark_end = u.earmark_end, field_origin = u.field_origin::json, \
         updated_at = u.updated_at \
         from {UNNEST_DEVICES} as u({DEVICE_COLUMNS}) where d.device_id = u.device_id"
    );
    DeviceColumns::from_rows(rows)
        .bind(sqlx::query(&sql))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Loads devices by id to change them, locking their rows until the transaction ends.
///
/// A caller writes back whole rows merged from what it read, so a change committed between
/// the read and the write (a loan step setting the lifecycle state, a run of another source)
/// would be lost; the lock makes such a change wait, or be read when it came first. Rows are
/// locked in id order so that two callers with overlapping sets take them in the same order.
pub(crate) async fn load_devices_for_update(
    conn: &mut sqlx::PgConnection,
    device_ids: &[Uuid],
) -> Result<Vec<DeviceRow>, sqlx::Error> {
    if device_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "select {DEVICE_COLUMNS} from device where device_id = any($1) \
         order by device_id for no key update"
    );
    let mut rows = sqlx::query_as::<_, DeviceRow>(&sql)
        .bind(device_ids)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter_mut().for_each(DeviceRow::expand_field_origin);
    Ok(rows)
}
