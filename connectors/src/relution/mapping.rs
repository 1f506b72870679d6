//! Turns one Relution device (an item of `devices/baseInfo/query` `results`) into a
//! `DeviceRecord`. Pure functions over the record's JSON text, so the field names the
//! connector relies on (vendor-apis.md §4.2; several are guesses there) are pinned by tests.
//!
//! Reading is lenient: a field of an unexpected type reads as absent, and a bad value never
//! drops the device; it lands in `record.problems` instead.

use bestand_model::model::DeviceCategory;
use bestand_model::record::{DeviceRecord, LocationHint, UserHint};
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Why a device could not be mapped at all (the page then counts as malformed).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum MappingError {
    #[error("a device is not a JSON object")]
    NotAnObject,
    #[error("a device has no `uuid`")]
    MissingId,
    #[error("a device cannot be read ({0})")]
    Unreadable(String),
}

/// Where the school of a device comes from (config keys `school_from` and `school`).
#[derive(Debug, Clone, Default)]
pub(crate) struct SchoolRule {
    pub field: Option<String>,
    pub fixed: Option<String>,
}

/// A leaf as the mapping wants it: strings trimmed, numbers as their JSON text, everything
/// else and empty text absent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Text(Option<String>);

impl Text {
    fn owned(&self) -> Option<String> {
        self.0.clone()
    }

    fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E>(self, text: &str) -> Result<Text, E> {
        let text = text.trim();
        Ok(Text((!text.is_empty()).then(|| text.to_string())))
    }

    fn visit_u64<E>(self, number: u64) -> Result<Text, E> {
        Ok(Text(Some(number.to_string())))
    }

    fn visit_i64<E>(self, number: i64) -> Result<Text, E> {
        Ok(Text(Some(number.to_string())))
    }

    fn visit_f64<E>(self, number: f64) -> Result<Text, E> {
        Ok(Text(
            serde_json::Number::from_f64(number).map(|number| number.to_string()),
        ))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Text, E> {
        Ok(Text(None))
    }

    fn visit_unit<E>(self) -> Result<Text, E> {
        Ok(Text(None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Text, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(Text(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Text, A::Error> {
        IgnoredAny.visit_map(map)?;
        Ok(Text(None))
    }
}

/// The device fields read. Observed in client code [V-3p]: `uuid`, `name`, `platform`,
/// `serialNumber`, `userUuid`, `userEmail`, `lastConnectionDate`. Guessed by defensive
/// clients and unverified [I]: `model`, `manufacturer`, `osVersion`, `imei`; not seen anywhere
/// and read on the off chance: `vendor`, `wifiMacAddress`, `macAddress`, `userName`,
/// `userFullName`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Device {
    uuid: Text,
    name: Text,
    platform: Text,
    serial_number: Text,
    imei: Text,
    wifi_mac_address: Text,
    mac_address: Text,
    model: Text,
    manufacturer: Text,
    vendor: Text,
    os_version: Text,
    user_email: Text,
    user_name: Text,
    user_full_name: Text,
    last_connection_date: Text,
}

/// The category by a documented rule, since Relution reports a platform, not a form factor:
/// - `IOS`/`IPADOS`: a tablet (school Relution fleets are iPads), unless the model or name
///   says iPhone, iPod or Apple TV (then `Other`);
/// - `WINDOWS`: a laptop (school Windows devices are notebooks), unless the model says
///   desktop, tower, all-in-one or names a desktop line (OptiPlex, ProDesk, ThinkCentre,
///   EliteDesk, Veriton): then a desktop;
/// - `MACOS`: MacBooks are laptops, iMac / Mac mini / Mac Studio / Mac Pro desktops;
/// - `ANDROID`: a tablet when the model or name says tab or pad, else `Other`;
/// - anything else (`TVOS`, unknown or missing platform): `Other`.
pub(crate) fn category(
    platform: Option<&str>,
    model: Option<&str>,
    name: Option<&str>,
) -> DeviceCategory {
    let words =
        format!("{} {}", model.unwrap_or_default(), name.unwrap_or_default()).to_lowercase();
    let model_says = |list: &[&str]| list.iter().any(|word| words.contains(word));
    match platform.map(str::to_ascii_uppercase).as_deref() {
        Some("IOS" | "IPADOS") if model_says(&["iphone", "ipod", "apple tv"]) => {
            DeviceCategory::Other
        }
        Some("IOS" | "IPADOS") => DeviceCategory::Tablet,
        Some("WINDOWS") => {
            let desktop = [
                "desktop",
                "tower",
                "all-in-one",
                "aio",
                "optiplex",
                "prodesk",
                "thinkcentre",
                "elitedesk",
                "veriton",
            ];
            if model_says(&desktop) {
                DeviceCategory::Desktop
            } else {
                DeviceCategory::Laptop
            }
        }
        Some("MACOS") if model_says(&["macbook"]) => DeviceCategory::Laptop,
        Some("MACOS") if model_says(&["imac", "mac mini", "mac studio", "mac pro"]) => {
            DeviceCategory::Desktop
        }
        Some("ANDROID") if model_says(&["tab", "pad"]) => DeviceCategory::Tablet,
        _ => DeviceCategory::Other,
    }
}

/// The OS name from the platform; iOS on a tablet is iPadOS.
fn os_name(platform: Option<&str>, category: DeviceCategory) -> Option<String> {
    let platform = platform?;
    Some(match platform.to_ascii_uppercase().as_str() {
        "IOS" if category == DeviceCategory::Tablet => "iPadOS".to_string(),
        "IOS" => "iOS".to_string(),
        "IPADOS" => "iPadOS".to_string(),
        "WINDOWS" => "Windows".to_string(),
        "MACOS" => "macOS".to_string(),
        "ANDROID" => "Android".to_string(),
        "TVOS" => "tvOS".to_string(),
        _ => platform.to_string(),
    })
}

/// The manufacturer: reported, or Apple for Apple platforms.
fn manufacturer(json: &Device) -> Option<String> {
    json.manufacturer
        .owned()
        .or_else(|| json.vendor.owned())
        .or_else(|| {
            matches!(
                json.platform.get().map(str::to_ascii_uppercase).as_deref(),
                Some("IOS" | "IPADOS" | "MACOS" | "TVOS")
            )
            .then(|| "Apple".to_string())
        })
}

/// The school text from the device field named by `school_from`, else the fixed `school`.
fn school(raw: &RawValue, rule: &SchoolRule) -> Option<String> {
    let from_field = rule.field.as_deref().and_then(|field| {
        // Only sources that configure `school_from` pay for this second look at the record.
        let fields: std::collections::HashMap<String, Text> =
            serde_json::from_str(raw.get()).ok()?;
        fields.get(field)?.owned()
    });
    from_field.or_else(|| rule.fixed.clone())
}

/// Maps one device of a query page.
pub(crate) fn map_device(raw: &RawValue, rule: &SchoolRule) -> Result<DeviceRecord, MappingError> {
    // A derived struct would also read an array positionally; a device is an object.
    if !raw.get().trim_start().starts_with('{') {
        return Err(MappingError::NotAnObject);
    }
    let json: Device = serde_json::from_str(raw.get())
        .map_err(|error| MappingError::Unreadable(error.to_string()))?;
    let uuid = json.uuid.get().ok_or(MappingError::MissingId)?;
    let mut problems = Vec::new();
    if let Some(stamp) = json.last_connection_date.get() {
        // Epoch milliseconds [V-3p]; anything else means the field changed its meaning.
        if stamp.parse::<i64>().is_err() {
            problems.push(format!(
                "device {uuid}: lastConnectionDate {stamp:?} is not epoch milliseconds"
            ));
        }
    }
    let category = category(json.platform.get(), json.model.get(), json.name.get());
    Ok(DeviceRecord {
        external_id: uuid.to_string(),
        category,
        name: json.name.owned(),
        serial_number: json.serial_number.owned(),
        imei: json.imei.owned(),
        wifi_mac: json
            .wifi_mac_address
            .owned()
            .or_else(|| json.mac_address.owned()),
        manufacturer: manufacturer(&json),
        model: json.model.owned(),
        os_name: os_name(json.platform.get(), category),
        os_version: json.os_version.owned(),
        location: LocationHint {
            school: school(raw, rule),
            ..LocationHint::default()
        },
        // `userUuid` is Relution-internal and joins nothing outside Relution (§4.3); it
        // stays in the payload.
        user: UserHint {
            username: json.user_name.owned(),
            real_name: json.user_full_name.owned(),
            email: json.user_email.owned(),
        },
        problems,
        payload: raw.get().to_string(),
        ..DeviceRecord::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_string()).unwrap()
    }

    #[test]
    fn categories_follow_the_documented_rule() {
        use DeviceCategory::*;
        for (platform, model, expected) in [
            (Some("IOS"), None, Tablet),
            (Some("IOS"), Some("iPhone 13"), Other),
            (Some("WINDOWS"), Some("Lenovo ThinkPad L13"), Laptop),
            (Some("WINDOWS"), None, Laptop),
            (Some("WINDOWS"), Some("Dell OptiPlex 7010"), Desktop),
            (Some("MACOS"), Some("MacBook Air"), Laptop),
            (Some("MACOS"), Some("iMac"), Desktop),
            (Some("ANDROID"), Some("Galaxy Tab A8"), Tablet),
            (Some("ANDROID"), Some("Pixel 7"), Other),
            (Some("TVOS"), None, Other),
            (None, Some("iPad"), Other),
        ] {
            assert_eq!(
                category(platform, model, None),
                expected,
                "{platform:?} {model:?}"
            );
        }
    }

    #[test]
    fn lenient_fields_problems_and_school() {
        let text = r#"{"uuid": " U1 ", "name": ["x"], "platform": "WINDOWS",
            "serialNumber": 12345, "lastConnectionDate": "gestern", "orgName": "123456"}"#;
        let rule = SchoolRule {
            field: Some("orgName".to_string()),
            fixed: Some("fallback".to_string()),
        };
        let record = map_device(&raw(text), &rule).unwrap();
        assert_eq!(record.external_id, "U1");
        assert_eq!(record.name, None);
        assert_eq!(record.serial_number.as_deref(), Some("12345"));
        assert_eq!(record.os_name.as_deref(), Some("Windows"));
        assert_eq!(record.location.school.as_deref(), Some("123456"));
        assert_eq!(record.problems.len(), 1, "{:?}", record.problems);
        assert!(record.problems[0].contains("U1"));
        let record = map_device(&raw(r#"{"uuid": "U2"}"#), &rule).unwrap();
        assert_eq!(record.location.school.as_deref(), Some("fallback"));
        assert_eq!(record.payload, r#"{"uuid": "U2"}"#);
        assert_eq!(
            map_device(&raw(r#"{"uuid": null}"#), &rule),
            Err(MappingError::MissingId)
        );
        assert_eq!(
            map_device(&raw("[1]"), &rule),
            Err(MappingError::NotAnObject)
        );
    }
}
