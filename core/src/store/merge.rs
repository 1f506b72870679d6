//! Field authority: which source may set which device field, and what a change looks like.
//!
//! The rules (documented in docs/sync.md):
//! - Hardware and OS fields belong to the MDMs: a source's non-empty value replaces the stored one.
//! - Inventory fields (asset tag, school, building, room, purchase data) are filled by a source
//!   only while they are empty or were last set by a source; a value a person or an import set
//!   is never overwritten by a source.
//! - A source's blank never clears anything.
//! - Lifecycle state, funding programme, grant reference and earmark end are never set by a source.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use uuid::Uuid;

use super::device_row::{DeviceRow, SOURCE_FIELDS};
use crate::model::DeviceCategory;
use crate::normalize;
use crate::record::DeviceRecord;

/// Who may overwrite a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldClass {
    /// Hardware and OS facts: the reporting MDM wins.
    Hardware,
    /// Inventory facts: a source fills them but never overrides a person or an import.
    Inventory,
}

/// The changed fields of one device: field name to `{"old": ..., "new": ...}`, kept as JSON text
/// because a full sync writes one of these per device and value trees cost more than the write.
pub type Changes = BTreeMap<String, Box<RawValue>>;

/// One field's change as JSON text.
pub fn change<T: Serialize + ?Sized>(old: Option<&T>, new: Option<&T>) -> Box<RawValue> {
    #[derive(Serialize)]
    struct Change<'a, T: ?Sized> {
        old: Option<&'a T>,
        new: Option<&'a T>,
    }
    serde_json::value::to_raw_value(&Change { old, new })
        .unwrap_or_else(|_| RawValue::NULL.to_owned())
}

/// A device record after identifier normalization, ready to merge.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NormalizedIds {
    pub serial_number: Option<String>,
    pub udid: Option<String>,
    pub imei: Option<String>,
    pub wifi_mac: Option<String>,
}

/// The hardware identifiers, each of which belongs to one device only: matching relies on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HardwareId {
    Serial,
    Udid,
    Imei,
    WifiMac,
}

impl HardwareId {
    pub const ALL: [HardwareId; 4] = [
        HardwareId::Serial,
        HardwareId::Udid,
        HardwareId::Imei,
        HardwareId::WifiMac,
    ];

    /// The device column that holds it, as `field_origin` and history name it.
    pub fn field(self) -> &'static str {
        match self {
            HardwareId::Serial => "serial_number",
            HardwareId::Udid => "udid",
            HardwareId::Imei => "imei",
            HardwareId::WifiMac => "wifi_mac",
        }
    }

    /// How messages for people name it.
    pub fn name(self) -> &'static str {
        match self {
            HardwareId::Serial => "serial number",
            HardwareId::Udid => "UDID",
            HardwareId::Imei => "IMEI",
            HardwareId::WifiMac => "Wi-Fi MAC",
        }
    }
}

impl NormalizedIds {
    /// The record's identifiers in the form devices are matched and stored by.
    pub fn of_record(record: &DeviceRecord) -> NormalizedIds {
        NormalizedIds {
            serial_number: normalize::serial_number(record.serial_number.as_deref()),
            udid: normalize::udid(record.udid.as_deref()),
            imei: normalize::imei(record.imei.as_deref()),
            wifi_mac: normalize::mac_address(record.wifi_mac.as_deref()),
        }
    }

    pub fn get(&self, id: HardwareId) -> Option<&str> {
        match id {
            HardwareId::Serial => self.serial_number.as_deref(),
            HardwareId::Udid => self.udid.as_deref(),
            HardwareId::Imei => self.imei.as_deref(),
            HardwareId::WifiMac => self.wifi_mac.as_deref(),
        }
    }

    /// Whether it carries no identifier at all.
    pub fn is_empty(&self) -> bool {
        HardwareId::ALL.iter().all(|&id| self.get(id).is_none())
    }

    /// Leaves `id` out, so that a merge keeps the device's own (a merge never clears).
    pub fn clear(&mut self, id: HardwareId) {
        match id {
            HardwareId::Serial => self.serial_number = None,
            HardwareId::Udid => self.udid = None,
            HardwareId::Imei => self.imei = None,
            HardwareId::WifiMac => self.wifi_mac = None,
        }
    }
}

/// Which source wins a field that several sources report, per field (configured in
/// `[sync.field_priority]`): sources earlier in a field's list win over later ones and over
/// sources not listed. Fields without a list go to whichever source reported last.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FieldPriority(pub BTreeMap<String, Vec<String>>);

/// The fields a priority can be set for: those more than one source reports.
pub const PRIORITY_FIELDS: &[&str] = SOURCE_FIELDS;

impl FieldPriority {
    /// Whether the value `current_origin` set for `field` stays when `incoming` (an origin tag
    /// like `source:jamf`) reports another one.
    fn keeps(&self, field: &str, current_origin: Option<&str>, incoming: &str) -> bool {
        let (Some(order), Some(current)) = (self.0.get(field), current_origin) else {
            return false;
        };
        let rank = |origin: &str| {
            origin
                .strip_prefix("source:")
                .and_then(|name| order.iter().position(|listed| listed == name))
                .unwrap_or(usize::MAX)
        };
        current.starts_with("source:") && rank(current) < rank(incoming)
    }
}

/// Merges `record` into `device` under the field-authority rules; returns what changed.
/// `origin` is the source's origin tag (`source:<name>`).
pub fn merge_into(
    device: &mut DeviceRow,
    record: &DeviceRecord,
    ids: &NormalizedIds,
    school_id: Option<Uuid>,
    origin: &str,
    now: DateTime<Utc>,
) -> Changes {
    merge_with_priority(
        device,
        record,
        ids,
        school_id,
        origin,
        &FieldPriority::default(),
        now,
    )
}

/// `merge_into`, with a field priority between sources.
pub fn merge_with_priority(
    device: &mut DeviceRow,
    record: &DeviceRecord,
    ids: &NormalizedIds,
    school_id: Option<Uuid>,
    origin: &str,
    priority: &FieldPriority,
    now: DateTime<Utc>,
) -> Changes {
    let mut merger = Merger {
        priority,
        origins: match &device.field_origin {
            Value::Object(map) => map.clone(),
            _ => serde_json::Map::new(),
        },
        origin,
        changes: Changes::new(),
    };
    use FieldClass::{Hardware, Inventory};
    merger.field(
        "serial_number",
        Hardware,
        &mut device.serial_number,
        &ids.serial_number,
    );
    merger.field("udid", Hardware, &mut device.udid, &ids.udid);
    merger.field("imei", Hardware, &mut device.imei, &ids.imei);
    merger.field("wifi_mac", Hardware, &mut device.wifi_mac, &ids.wifi_mac);
    merger.field("name", Hardware, &mut device.name, &record.name);
    merger.field(
        "manufacturer",
        Hardware,
        &mut device.manufacturer,
        &record.manufacturer,
    );
    merger.field("model", Hardware, &mut device.model, &record.model);
    merger.field(
        "model_identifier",
        Hardware,
        &mut device.model_identifier,
        &record.model_identifier,
    );
    merger.field("os_name", Hardware, &mut device.os_name, &record.os_name);
    merger.field(
        "os_version",
        Hardware,
        &mut device.os_version,
        &record.os_version,
    );
    if record.category != DeviceCategory::Other {
        let mut category = Some(device.category.clone());
        merger.field(
            "category",
            Hardware,
            &mut category,
            &Some(record.category.as_str().to_string()),
        );
        if let Some(category) = category {
            device.category = category;
        }
    }
    merger.field(
        "asset_tag",
        Inventory,
        &mut device.asset_tag,
        &record.asset_tag,
    );
    merger.field("school_id", Inventory, &mut device.school_id, &school_id);
    merger.field(
        "building",
        Inventory,
        &mut device.building,
        &record.location.building,
    );
    merger.field("room", Inventory, &mut device.room, &record.location.room);
    let purchase = &record.purchase;
    merger.field(
        "order_number",
        Inventory,
        &mut device.order_number,
        &purchase.order_number,
    );
    merger.field(
        "purchase_date",
        Inventory,
        &mut device.purchase_date,
        &purchase.purchase_date,
    );
    merger.field(
        "supplier",
        Inventory,
        &mut device.supplier,
        &purchase.supplier,
    );
    merger.field(
        "purchase_price",
        Inventory,
        &mut device.purchase_price,
        &purchase.price,
    );
    let currency = purchase.price.map(|_| {
        purchase
            .currency
            .clone()
            .unwrap_or_else(|| "EUR".to_string())
    });
    merger.field("currency", Inventory, &mut device.currency, &currency);
    merger.field(
        "warranty_end",
        Inventory,
        &mut device.warranty_end,
        &purchase.warranty_end,
    );
    merger.field(
        "life_expectancy_years",
        Inventory,
        &mut device.life_expectancy_years,
        &purchase.life_expectancy_years,
    );
    if !merger.changes.is_empty() {
        device.field_origin = Value::Object(merger.origins);
        device.updated_at = now;
    }
    merger.changes
}

/// A new device built from a record: every field the record carries, with its origin.
pub fn new_device(
    device_id: Uuid,
    authority_id: Uuid,
    record: &DeviceRecord,
    ids: &NormalizedIds,
    school_id: Option<Uuid>,
    origin: &str,
    now: DateTime<Utc>,
) -> (DeviceRow, Changes) {
    let mut device = DeviceRow::empty(device_id, authority_id, now);
    let mut changes = merge_into(&mut device, record, ids, school_id, origin, now);
    // A new device had no category before; "other" was only the starting value.
    if changes.contains_key("category") {
        changes.insert(
            "category".into(),
            change(None, Some(device.category.as_str())),
        );
    }
    (device, changes)
}

struct Merger<'a> {
    priority: &'a FieldPriority,
    origins: serde_json::Map<String, Value>,
    origin: &'a str,
    changes: Changes,
}

impl Merger<'_> {
    fn field<T: PartialEq + Clone + Serialize>(
        &mut self,
        name: &str,
        class: FieldClass,
        current: &mut Option<T>,
        incoming: &Option<T>,
    ) {
        let Some(incoming) = incoming else {
            return;
        };
        if current.as_ref() == Some(incoming) {
            return;
        }
        if class == FieldClass::Inventory && current.is_some() && !self.set_by_a_source(name) {
            return;
        }
        let current_origin = self.origins.get(name).and_then(Value::as_str);
        if current.is_some() && self.priority.keeps(name, current_origin, self.origin) {
            return;
        }
        self.changes
            .insert(name.to_string(), change(current.as_ref(), Some(incoming)));
        self.origins
            .insert(name.to_string(), Value::String(self.origin.to_string()));
        *current = Some(incoming.clone());
    }

    fn set_by_a_source(&self, name: &str) -> bool {
        match self.origins.get(name) {
            None => true,
            Some(Value::String(origin)) => origin.starts_with("source:"),
            Some(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};
    use serde_json::json;

    use super::*;

    fn parsed(raw: &RawValue) -> Value {
        serde_json::from_str(raw.get()).unwrap()
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
    }

    fn ids(serial: &str) -> NormalizedIds {
        NormalizedIds {
            serial_number: Some(serial.into()),
            udid: None,
            imei: None,
            wifi_mac: None,
        }
    }

    fn record() -> DeviceRecord {
        let mut record = DeviceRecord {
            external_id: "mobile:1".into(),
            category: DeviceCategory::Tablet,
            os_version: Some("17.5".into()),
            ..DeviceRecord::default()
        };
        record.purchase.warranty_end = NaiveDate::from_ymd_opt(2027, 1, 31);
        record
    }

    #[test]
    fn new_device_carries_every_reported_field_with_its_origin() {
        let (device, changes) = new_device(
            Uuid::nil(),
            Uuid::nil(),
            &record(),
            &ids("S1"),
            None,
            "source:jamf",
            now(),
        );
        assert_eq!(device.category, "tablet");
        assert_eq!(device.warranty_end, NaiveDate::from_ymd_opt(2027, 1, 31));
        assert_eq!(device.field_origin["warranty_end"], "source:jamf");
        assert!(changes.contains_key("os_version"));
        assert!(changes.contains_key("serial_number"));
        assert_eq!(
            parsed(&changes["category"]),
            json!({ "old": null, "new": "tablet" })
        );
    }

    #[test]
    fn source_overwrites_hardware_but_never_a_persons_purchase_data() {
        let (mut device, _) = new_device(
            Uuid::nil(),
            Uuid::nil(),
            &record(),
            &ids("S1"),
            None,
            "source:jamf",
            now(),
        );
        device.warranty_end = NaiveDate::from_ymd_opt(2028, 6, 30);
        device.field_origin["warranty_end"] = json!("user:anna");
        let mut update = record();
        update.os_version = Some("17.6".into());
        update.purchase.warranty_end = NaiveDate::from_ymd_opt(2026, 1, 1);
        let changes = merge_into(&mut device, &update, &ids("S1"), None, "source:jamf", now());
        assert_eq!(device.os_version.as_deref(), Some("17.6"));
        assert_eq!(device.warranty_end, NaiveDate::from_ymd_opt(2028, 6, 30));
        assert_eq!(changes.keys().collect::<Vec<_>>(), vec!["os_version"]);
    }

    #[test]
    fn a_sources_blank_never_clears_a_value() {
        let (mut device, _) = new_device(
            Uuid::nil(),
            Uuid::nil(),
            &record(),
            &ids("S1"),
            None,
            "source:jamf",
            now(),
        );
        let mut blank = record();
        blank.os_version = None;
        blank.purchase.warranty_end = None;
        let changes = merge_into(&mut device, &blank, &ids("S1"), None, "source:jamf", now());
        assert!(changes.is_empty());
        assert_eq!(device.os_version.as_deref(), Some("17.5"));
        assert!(device.warranty_end.is_some());
    }

    #[test]
    fn a_field_priority_keeps_the_preferred_sources_value() {
        let (mut device, _) = new_device(
            Uuid::nil(),
            Uuid::nil(),
            &record(),
            &ids("S1"),
            None,
            "source:intune",
            now(),
        );
        let priority =
            FieldPriority([("os_version".to_string(), vec!["intune".to_string()])].into());
        let mut jamf = record();
        jamf.os_version = Some("16.0".into());
        jamf.model = Some("iPad Air".into());
        let changes = merge_with_priority(
            &mut device,
            &jamf,
            &ids("S1"),
            None,
            "source:jamf",
            &priority,
            now(),
        );
        assert_eq!(
            device.os_version.as_deref(),
            Some("17.5"),
            "intune is preferred for the OS"
        );
        assert_eq!(
            device.model.as_deref(),
            Some("iPad Air"),
            "fields without a priority follow the last report"
        );
        assert!(!changes.contains_key("os_version"));
        let mut intune = record();
        intune.os_version = Some("17.7".into());
        merge_with_priority(
            &mut device,
            &intune,
            &ids("S1"),
            None,
            "source:intune",
            &priority,
            now(),
        );
        assert_eq!(
            device.os_version.as_deref(),
            Some("17.7"),
            "the preferred source still updates it"
        );
    }

    #[test]
    fn a_source_may_update_inventory_fields_it_set_itself() {
        let (mut device, _) = new_device(
            Uuid::nil(),
            Uuid::nil(),
            &record(),
            &ids("S1"),
            None,
            "source:jamf",
            now(),
        );
        let mut update = record();
        update.purchase.warranty_end = NaiveDate::from_ymd_opt(2029, 1, 31);
        let changes = merge_into(&mut device, &update, &ids("S1"), None, "source:jamf", now());
        assert_eq!(device.warranty_end, NaiveDate::from_ymd_opt(2029, 1, 31));
        assert_eq!(parsed(&changes["warranty_end"])["old"], json!("2027-01-31"));
    }

    #[test]
    fn field_origins_are_stored_compactly_and_read_back_exactly() {
        let round_trip = |device: &DeviceRow| {
            let mut read = device.clone();
            read.field_origin = device.stored_field_origin();
            read.expand_field_origin();
            read.field_origin
        };
        let (mut device, _) = new_device(
            Uuid::nil(),
            Uuid::nil(),
            &record(),
            &ids("SER1"),
            None,
            "source:jamf",
            now(),
        );
        assert_eq!(device.field_origin.as_object().unwrap().len(), 4);
        assert_eq!(
            device.stored_field_origin(),
            json!({ "*": "source:jamf" }),
            "one shared origin, nothing else"
        );
        assert_eq!(round_trip(&device), device.field_origin);

        // Another origin, an origin of a field outside the source fields, a field that holds a
        // value nobody is recorded to have set, and an origin of a field now empty.
        device.field_origin["warranty_end"] = json!("user:anna");
        device.field_origin["lifecycle_state"] = json!("user:ben");
        device.model = Some("iPad".into());
        device.field_origin["room"] = json!("source:intune");
        let stored = device.stored_field_origin();
        assert_eq!(
            stored,
            json!({
                "*": "source:jamf",
                "warranty_end": "user:anna",
                "lifecycle_state": "user:ben",
                "model": null,
                "room": "source:intune",
            })
        );
        assert_eq!(round_trip(&device), device.field_origin);

        // Without any source field's origin the map is stored as it is.
        device.field_origin = json!({ "lifecycle_state": "user:ben" });
        assert_eq!(device.stored_field_origin(), device.field_origin);
        assert_eq!(round_trip(&device), device.field_origin);
    }
}
