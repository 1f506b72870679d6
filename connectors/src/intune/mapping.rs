//! Decodes Graph `managedDevices` pages and turns each device into a `DeviceRecord`. Pure
//! functions over the page text, so the category rules and field names are pinned by tests.
//!
//! Each device is sliced out of the page as raw JSON text (its `payload`) and read through a
//! lenient typed view: a value of an unexpected type reads as absent instead of failing the
//! page, and no `serde_json::Value` tree is built.

use std::borrow::Cow;
use std::fmt;

use bestand_model::model::DeviceCategory;
use bestand_model::record::{DeviceRecord, LocationHint, UserHint};
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::config::SchoolFrom;

/// A page as Graph sends it: `{"@odata.nextLink": ..., "value": [...]}`.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
    #[serde(rename = "@odata.count", default)]
    count: Option<u64>,
    #[serde(borrow)]
    value: Option<Vec<&'a RawValue>>,
}

/// One decoded and mapped page.
#[derive(Debug)]
pub(crate) struct Page {
    pub records: Vec<DeviceRecord>,
    pub next_link: Option<String>,
    /// `@odata.count`, when the server sent one.
    pub count: Option<u64>,
}

/// Decodes and maps one page body; the error is the cause for "... is malformed".
pub(crate) fn decode_page(body: &[u8], school_from: SchoolFrom) -> Result<Page, String> {
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|error| format!("invalid JSON ({error})"))?;
    let devices = envelope
        .value
        .ok_or_else(|| "no `value` array".to_string())?;
    let records = devices
        .into_iter()
        .enumerate()
        .map(|(position, raw)| {
            map_device(raw, school_from).map_err(|e| format!("device {position}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page {
        records,
        next_link: envelope.next_link,
        count: envelope.count,
    })
}

/// A leaf read leniently: trimmed text (numbers as their JSON text), or absent for empty
/// strings, `null`, booleans, arrays and objects.
#[derive(Debug, Default)]
struct Text<'a>(Option<Cow<'a, str>>);

impl Text<'_> {
    fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }

    fn owned(&self) -> Option<String> {
        self.get().map(str::to_string)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

fn text_of(text: Cow<'_, str>) -> Text<'_> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Text(None);
    }
    Text(Some(match text {
        Cow::Borrowed(text) => Cow::Borrowed(text.trim()),
        Cow::Owned(text) => Cow::Owned(text.trim().to_string()),
    }))
}

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(text_of(Cow::Borrowed(text)))
    }

    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(text_of(Cow::Owned(text.to_string())))
    }

    fn visit_u64<E>(self, number: u64) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Owned(number.to_string()))))
    }

    fn visit_i64<E>(self, number: i64) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Owned(number.to_string()))))
    }

    fn visit_f64<E>(self, number: f64) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Owned(number.to_string()))))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Text(None))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Text(None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(Text(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_map(map)?;
        Ok(Text(None))
    }
}

/// The managed-device properties the mapping reads (v1.0 names, vendor-apis.md §3.2;
/// `chassisType` is beta-only and read when selected).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ManagedDevice<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(borrow)]
    device_name: Text<'a>,
    #[serde(borrow)]
    managed_device_name: Text<'a>,
    #[serde(borrow)]
    serial_number: Text<'a>,
    #[serde(borrow)]
    imei: Text<'a>,
    #[serde(borrow, rename = "wiFiMacAddress")]
    wifi_mac_address: Text<'a>,
    #[serde(borrow)]
    model: Text<'a>,
    #[serde(borrow)]
    manufacturer: Text<'a>,
    #[serde(borrow)]
    operating_system: Text<'a>,
    #[serde(borrow)]
    os_version: Text<'a>,
    #[serde(borrow)]
    user_principal_name: Text<'a>,
    #[serde(borrow)]
    email_address: Text<'a>,
    #[serde(borrow)]
    user_display_name: Text<'a>,
    #[serde(borrow)]
    device_category_display_name: Text<'a>,
    #[serde(borrow)]
    chassis_type: Text<'a>,
}

/// What a device's object shape or id makes unmappable.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MappingError {
    #[error("not a JSON object")]
    NotAnObject,
    #[error("no `id`")]
    MissingId,
    /// Reading is lenient about every value; what is left is a repeated key.
    #[error("cannot be read ({0})")]
    Unreadable(String),
}

/// Serial numbers Windows reports when the vendor left the firmware field unfilled; they
/// would join unrelated devices, so they are dropped (and reported).
const PLACEHOLDER_SERIALS: &[&str] = &[
    "0",
    "to be filled by o.e.m.",
    "system serial number",
    "default string",
    "none",
    "n/a",
];

/// Maps one managed device. The external id is Graph's `id` as it is: unique in the tenant,
/// stable for the enrolment, and what Intune's portal and Graph URLs use.
pub(crate) fn map_device(
    raw: &RawValue,
    school_from: SchoolFrom,
) -> Result<DeviceRecord, MappingError> {
    if !raw.get().trim_start().starts_with('{') {
        return Err(MappingError::NotAnObject);
    }
    let json: ManagedDevice = serde_json::from_str(raw.get())
        .map_err(|error| MappingError::Unreadable(error.to_string()))?;
    let id = json.id.owned().ok_or(MappingError::MissingId)?;
    let mut problems = Vec::new();
    let serial_number = json.serial_number.get().and_then(|serial| {
        if PLACEHOLDER_SERIALS.contains(&serial.to_lowercase().as_str()) {
            problems.push(format!(
                "managed device {id}: serialNumber {serial:?} is a placeholder, not a serial"
            ));
            None
        } else {
            Some(serial.to_string())
        }
    });
    let operating_system = json.operating_system.get();
    let model = json.model.get();
    let category = category(operating_system, model, json.chassis_type.get());
    let os_version = json.os_version.owned();
    let os_name = os_name(operating_system, category, os_version.as_deref());
    let school = match school_from {
        SchoolFrom::DeviceCategory => json
            .device_category_display_name
            .get()
            .filter(|name| !name.eq_ignore_ascii_case("unknown"))
            .map(str::to_string),
        SchoolFrom::UpnDomain => json
            .user_principal_name
            .get()
            .and_then(|upn| upn.rsplit_once('@'))
            .map(|(_, domain)| domain.trim().to_lowercase())
            .filter(|domain| !domain.is_empty()),
        SchoolFrom::None => None,
    };
    Ok(DeviceRecord {
        external_id: id.clone(),
        category,
        name: json
            .device_name
            .owned()
            .or_else(|| json.managed_device_name.owned()),
        serial_number,
        imei: json.imei.owned(),
        wifi_mac: json.wifi_mac_address.owned(),
        manufacturer: json.manufacturer.owned(),
        model: model.map(str::to_string),
        os_name,
        os_version,
        location: LocationHint {
            school,
            ..LocationHint::default()
        },
        user: UserHint {
            username: json.user_principal_name.owned(),
            real_name: json.user_display_name.owned(),
            email: json.email_address.owned(),
        },
        problems,
        payload: raw.get().to_string(),
        ..DeviceRecord::default()
    })
}

/// The category of a managed device:
/// - `chassisType` when present (beta only): laptop, desktop, tablet; workstation and server
///   count as desktops; phones and the rest as `Other`.
/// - iOS/iPadOS: iPads are tablets, everything else (iPhones) `Other`.
/// - Android: models with "tab" in the name (Galaxy Tab, Lenovo Tab) are tablets.
/// - macOS: MacBooks are laptops; iMac, Mac mini, Mac Studio and Mac Pro desktops.
/// - Windows and the rest, by model name: book/laptop/notebook/Surface/Latitude/ThinkPad/
///   TravelMate are laptops (a Surface Go or Pro is used with its type cover in schools);
///   desktop/tower/OptiPlex/ThinkCentre/ProDesk/EliteDesk/Veriton/All-in-One are desktops;
///   virtual machines and unknown models `Other`, since guessing would skew replacement plans.
pub(crate) fn category(
    operating_system: Option<&str>,
    model: Option<&str>,
    chassis: Option<&str>,
) -> DeviceCategory {
    let chassis_says = match chassis.map(str::to_ascii_lowercase).as_deref() {
        Some("laptop") => Some(DeviceCategory::Laptop),
        Some("desktop" | "worksworkstation" | "enterpriseserver") => Some(DeviceCategory::Desktop),
        Some("tablet") => Some(DeviceCategory::Tablet),
        Some("phone" | "mobileother") => Some(DeviceCategory::Other),
        _ => None,
    };
    if let Some(category) = chassis_says {
        return category;
    }
    let os = operating_system.unwrap_or_default().to_ascii_lowercase();
    let model = model.unwrap_or_default().to_lowercase();
    let says = |words: &[&str]| words.iter().any(|word| model.contains(word));
    if says(&["virtual"]) {
        DeviceCategory::Other
    } else if os == "ios" || os == "ipados" {
        if says(&["ipad"]) {
            DeviceCategory::Tablet
        } else {
            DeviceCategory::Other
        }
    } else if os == "android" {
        if says(&["tab"]) {
            DeviceCategory::Tablet
        } else {
            DeviceCategory::Other
        }
    } else if says(&["macbook"]) {
        DeviceCategory::Laptop
    } else if says(&["imac", "mac mini", "mac studio", "mac pro"]) {
        DeviceCategory::Desktop
    } else if says(&[
        "book",
        "laptop",
        "notebook",
        "surface",
        "latitude",
        "thinkpad",
        "travelmate",
    ]) {
        DeviceCategory::Laptop
    } else if says(&[
        "desktop",
        "tower",
        "optiplex",
        "thinkcentre",
        "prodesk",
        "elitedesk",
        "veriton",
        "all-in-one",
    ]) {
        DeviceCategory::Desktop
    } else {
        DeviceCategory::Other
    }
}

/// Intune says "iOS" for iPads too; since version 13 their OS is iPadOS (as the Jamf
/// connector reports it, so the same iPad reads alike from both sources).
fn os_name(
    operating_system: Option<&str>,
    category: DeviceCategory,
    version: Option<&str>,
) -> Option<String> {
    let operating_system = operating_system?;
    let major = version
        .and_then(|version| version.split('.').next())
        .and_then(|major| major.parse::<u32>().ok());
    let ipad = category == DeviceCategory::Tablet
        && operating_system.eq_ignore_ascii_case("ios")
        && major.is_none_or(|major| major >= 13);
    Some(if ipad {
        "iPadOS".to_string()
    } else {
        operating_system.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn categories() {
        use DeviceCategory::*;
        for (os, model, chassis, expected) in [
            (Some("Windows"), Some("Surface Go 3"), None, Laptop),
            (Some("Windows"), Some("Latitude 3140"), None, Laptop),
            (Some("Windows"), Some("HP ProBook 450 G9"), None, Laptop),
            (Some("Windows"), Some("OptiPlex 7010"), None, Desktop),
            (Some("Windows"), Some("ThinkCentre M70q"), None, Desktop),
            (Some("Windows"), Some("Virtual Machine"), None, Other),
            (Some("Windows"), Some("20XW0042GE"), None, Other),
            (Some("Windows"), Some("20XW0042GE"), Some("laptop"), Laptop),
            (Some("Windows"), Some("ThinkPad"), Some("desktop"), Desktop),
            (Some("iOS"), Some("iPad (9th generation)"), None, Tablet),
            (Some("iOS"), Some("iPhone 15"), None, Other),
            (Some("Android"), Some("Galaxy Tab A9+"), None, Tablet),
            (Some("Android"), Some("Pixel 8"), None, Other),
            (Some("macOS"), Some("MacBook Air (M2, 2022)"), None, Laptop),
            (
                Some("macOS"),
                Some("iMac (24-inch, M3, 2023)"),
                None,
                Desktop,
            ),
            (None, None, None, Other),
        ] {
            assert_eq!(
                category(os, model, chassis),
                expected,
                "{model:?} {chassis:?}"
            );
        }
    }

    #[test]
    fn ipads_run_ipados_and_others_keep_their_os() {
        let ipad = map_device(
            &raw(r#"{"id": "a", "operatingSystem": "iOS", "model": "iPad Air", "osVersion": "17.6.1"}"#),
            SchoolFrom::None,
        )
        .unwrap();
        assert_eq!(ipad.os_name.as_deref(), Some("iPadOS"));
        let phone = map_device(
            &raw(r#"{"id": "b", "operatingSystem": "iOS", "model": "iPhone 15"}"#),
            SchoolFrom::None,
        )
        .unwrap();
        assert_eq!(phone.os_name.as_deref(), Some("iOS"));
    }

    #[test]
    fn school_from_category_or_upn_domain() {
        let text = r#"{"id": "x", "deviceCategoryDisplayName": "Gymnasium Altstadt",
            "userPrincipalName": "M.Fischer@GYM-Altstadt.example.de"}"#;
        let by_category = map_device(&raw(text), SchoolFrom::DeviceCategory).unwrap();
        assert_eq!(
            by_category.location.school.as_deref(),
            Some("Gymnasium Altstadt")
        );
        let by_domain = map_device(&raw(text), SchoolFrom::UpnDomain).unwrap();
        assert_eq!(
            by_domain.location.school.as_deref(),
            Some("gym-altstadt.example.de")
        );
        let unknown = map_device(
            &raw(r#"{"id": "y", "deviceCategoryDisplayName": "Unknown"}"#),
            SchoolFrom::DeviceCategory,
        )
        .unwrap();
        assert_eq!(unknown.location.school, None);
    }

    #[test]
    fn odd_values_read_as_absent_and_placeholders_are_problems() {
        let text = r#"{"id": 7, "serialNumber": "To be filled by O.E.M.", "imei": "",
            "model": ["x"], "deviceName": {"a": 1}, "managedDeviceName": " PC-7 ", "userPrincipalName": null}"#;
        let record = map_device(&raw(text), SchoolFrom::None).unwrap();
        assert_eq!(record.external_id, "7");
        assert_eq!(record.serial_number, None);
        assert_eq!(record.imei, None);
        assert_eq!(record.model, None);
        assert_eq!(record.name.as_deref(), Some("PC-7"));
        assert!(record.user.is_empty());
        assert_eq!(
            record.problems,
            ["managed device 7: serialNumber \"To be filled by O.E.M.\" is a placeholder, not a serial"]
        );
        assert_eq!(record.payload, text);
    }

    #[test]
    fn pages_decode_and_fail_with_a_cause() {
        let page = decode_page(
            br#"{"@odata.count": 2, "value": [{"id": "a"}, {"id": "b"}], "@odata.nextLink": "https://g/x"}"#,
            SchoolFrom::None,
        )
        .unwrap();
        assert_eq!(page.records.len(), 2);
        assert_eq!(page.count, Some(2));
        assert_eq!(page.next_link.as_deref(), Some("https://g/x"));
        let cause = |body: &str| decode_page(body.as_bytes(), SchoolFrom::None).unwrap_err();
        assert!(cause(r#"{"value": [{"id": "a"}"#).starts_with("invalid JSON ("));
        assert_eq!(cause(r#"{"error": {}}"#), "no `value` array");
        assert!(cause(r#"{"value": {}}"#).starts_with("invalid JSON ("));
        assert_eq!(
            cause(r#"{"value": [{"id": "a"}, {}]}"#),
            "device 1: no `id`"
        );
        assert_eq!(cause(r#"{"value": [3]}"#), "device 0: not a JSON object");
        assert!(cause(r#"{"value": [{"id": "a", "id": "b"}]}"#)
            .starts_with("device 0: cannot be read (duplicate field `id`"));
    }
}
