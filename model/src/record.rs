//! The normalized device record: the one shape every connector maps its source into.
//!
//! Connectors fill it from vendor payloads; the sync engine matches and merges it.
//! Values are as the source reports them; the engine normalizes identifiers itself.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::model::DeviceCategory;

/// One device as one source reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// The source's own id for this record, unique within the source
    /// (for Jamf Pro `mobile:<mobileDeviceId>` or `computer:<id>`).
    pub external_id: String,
    pub category: DeviceCategory,
    pub name: Option<String>,
    pub asset_tag: Option<String>,
    pub serial_number: Option<String>,
    pub udid: Option<String>,
    pub imei: Option<String>,
    pub wifi_mac: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub model_identifier: Option<String>,
    pub os_name: Option<String>,
    pub os_version: Option<String>,
    pub location: LocationHint,
    pub purchase: PurchaseInfo,
    /// Who the source says uses the device; kept to link persons later, never used as identity.
    pub user: UserHint,
    /// Problems found while mapping this record (an unparsable date, say): the record is kept,
    /// the bad field left empty, and the problem reported with the sync run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// The vendor's JSON for this record, as received, stored with the source link (empty means
    /// none). Kept as text so a page in flight costs its size, not a tree of values.
    /// Not part of the content hash.
    #[serde(skip)]
    pub payload: String,
}

/// Where the source places the device. `school` is matched against the authority's
/// schools by official school number, name or alias.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LocationHint {
    pub school: Option<String>,
    pub building: Option<String>,
    pub room: Option<String>,
}

/// Purchase data as a source reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PurchaseInfo {
    pub order_number: Option<String>,
    pub purchase_date: Option<NaiveDate>,
    pub supplier: Option<String>,
    pub price: Option<Decimal>,
    /// ISO 4217 code; `None` means the source did not say (the engine assumes EUR).
    pub currency: Option<String>,
    pub warranty_end: Option<NaiveDate>,
    pub life_expectancy_years: Option<i32>,
    /// Free text such as Jamf's `purchasingAccount`; kept in the payload, not mapped to funding.
    pub purchasing_account: Option<String>,
}

/// The user fields an MDM reports for a device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserHint {
    pub username: Option<String>,
    pub real_name: Option<String>,
    pub email: Option<String>,
}

impl UserHint {
    pub fn is_empty(&self) -> bool {
        self.username.is_none() && self.real_name.is_none() && self.email.is_none()
    }
}

impl DeviceRecord {
    /// A stable hash of everything the engine reads from this record.
    /// Equal hashes mean the record has not changed since the last run.
    pub fn content_hash(&self) -> [u8; 16] {
        stable_hash(self)
    }
}

/// A 128-bit BLAKE3 hash of `value`'s JSON form. Serializing a plain struct with serde_json is
/// deterministic (field order is declaration order); streaming into the hasher avoids building
/// the text.
pub(crate) fn stable_hash<T: Serialize + std::fmt::Debug>(value: &T) -> [u8; 16] {
    let mut hasher = blake3::Hasher::new();
    if let Err(error) = serde_json::to_writer(&mut hasher, value) {
        hasher.update(format!("{error:?}{value:?}").as_bytes());
    }
    truncate(hasher.finalize())
}

/// The hash [`stable_hash`] gives a value whose JSON form is `json`, for callers that need the
/// text anyway.
pub fn hash_json_text(json: &str) -> [u8; 16] {
    truncate(blake3::hash(json.as_bytes()))
}

fn truncate(digest: blake3::Hash) -> [u8; 16] {
    let mut hash = [0u8; 16];
    hash.copy_from_slice(&digest.as_bytes()[..16]);
    hash
}
