//! Turns one device of `GET /api/devices` (protocol version 3) into a `DeviceRecord`. Field
//! names are those of vendor-apis.md §2.3, e.g. the upper-case `UDID`.
//!
//! Reading is lenient so that one odd value never costs a device: every field is sliced out of
//! the record text as raw JSON and read on its own; a value of an unexpected type reads as
//! absent, and a nested object that cannot be read reads as empty.

use std::borrow::Cow;
use std::collections::HashMap;

use bestand_model::model::DeviceCategory;
use bestand_model::normalize;
use bestand_model::record::{DeviceRecord, LocationHint, UserHint};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::config::SchoolFrom;

/// A scalar as the mapping wants it: strings trimmed, numbers as their JSON text, anything
/// else (and empty text) absent. Borrows from the record text unless the string has escapes.
#[derive(Debug, Default)]
pub(crate) struct Leaf<'a>(Option<Cow<'a, str>>);

impl<'a> Leaf<'a> {
    fn from_raw(raw: &'a RawValue) -> Leaf<'a> {
        let text = raw.get();
        let value: Option<Cow<'a, str>> = match text.as_bytes().first() {
            Some(b'"') => serde_json::from_str::<&'a str>(text)
                .map(Cow::Borrowed)
                .or_else(|_| serde_json::from_str::<String>(text).map(Cow::Owned))
                .ok(),
            Some(b'-' | b'0'..=b'9') => Some(Cow::Borrowed(text)),
            _ => None,
        };
        Leaf(
            value
                .map(|value| match value {
                    Cow::Borrowed(text) => Cow::Borrowed(text.trim()),
                    Cow::Owned(text) => Cow::Owned(text.trim().to_string()),
                })
                .filter(|text| !text.is_empty()),
        )
    }

    pub(crate) fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }

    fn owned(&self) -> Option<String> {
        self.get().map(str::to_string)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Leaf<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&'de RawValue>::deserialize(deserializer).map(Leaf::from_raw)
    }
}

/// A nested object read leniently: empty (`T::default()`) when it is not a readable object.
#[derive(Debug, Default)]
pub(crate) struct Nested<T>(T);

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Nested<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(deserializer)?;
        Ok(Nested(object(raw)))
    }
}

/// `raw` read as the object `T`; empty unless it is one. Derived structs would also accept an
/// array of the fields in order, which no Jamf School object is.
fn object<'de, T: Deserialize<'de> + Default>(raw: &'de RawValue) -> T {
    if raw.get().starts_with('{') {
        serde_json::from_str(raw.get()).unwrap_or_default()
    } else {
        T::default()
    }
}

/// The fields of one device the mapping reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Device<'a> {
    #[serde(rename = "UDID", borrow)]
    pub udid: Leaf<'a>,
    #[serde(rename = "serialNumber", borrow)]
    pub serial_number: Leaf<'a>,
    #[serde(borrow)]
    pub name: Leaf<'a>,
    #[serde(rename = "assetTag", borrow)]
    pub asset_tag: Leaf<'a>,
    #[serde(rename = "locationId", borrow)]
    pub location_id: Leaf<'a>,
    #[serde(borrow)]
    pub class: Leaf<'a>,
    #[serde(borrow)]
    pub os: Nested<Os<'a>>,
    #[serde(borrow)]
    pub model: Nested<Model<'a>>,
    #[serde(borrow)]
    pub owner: Nested<Owner<'a>>,
    #[serde(rename = "networkInformation", borrow)]
    pub network: Nested<Network<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Os<'a> {
    #[serde(borrow)]
    prefix: Leaf<'a>,
    #[serde(borrow)]
    version: Leaf<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Model<'a> {
    #[serde(borrow)]
    name: Leaf<'a>,
    #[serde(borrow)]
    identifier: Leaf<'a>,
    #[serde(rename = "type", borrow)]
    kind: Leaf<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Owner<'a> {
    #[serde(borrow)]
    name: Leaf<'a>,
    #[serde(borrow)]
    username: Leaf<'a>,
    #[serde(borrow)]
    email: Leaf<'a>,
    #[serde(rename = "firstName", borrow)]
    first_name: Leaf<'a>,
    #[serde(rename = "lastName", borrow)]
    last_name: Leaf<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Network<'a> {
    #[serde(rename = "WiFiMAC", borrow)]
    wifi_mac: Leaf<'a>,
}

/// Why a device could not be mapped at all.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MappingError {
    #[error("device {index} (name {name:?}) has neither `UDID` nor `serialNumber`")]
    NoKey { index: usize, name: Option<String> },
}

/// What a mapping needs besides the record: how to name the school.
#[derive(Debug)]
pub(crate) struct Schools {
    pub from: SchoolFrom,
    /// Location id -> name, for `SchoolFrom::LocationName`.
    pub names: HashMap<String, String>,
}

/// The category from `class` ("ipad"), `model.type` ("iPad"), the model name and identifier.
/// iPads are tablets; Macs are laptops ("MacBook") or desktops (iMac, Mac mini, Mac Studio,
/// Mac Pro); Apple TVs, iPhones and anything unrecognised are `Other`.
pub(crate) fn category(
    class: Option<&str>,
    kind: Option<&str>,
    model: Option<&str>,
    identifier: Option<&str>,
) -> DeviceCategory {
    let words = [class, kind, model, identifier]
        .iter()
        .flatten()
        .map(|text| text.to_lowercase().replace(' ', ""))
        .collect::<Vec<_>>();
    let says = |needle: &str| words.iter().any(|word| word.contains(needle));
    if says("appletv") || says("tvos") || says("iphone") {
        DeviceCategory::Other
    } else if says("ipad") {
        DeviceCategory::Tablet
    } else if says("macbook") {
        DeviceCategory::Laptop
    } else if says("imac") || says("macmini") || says("macstudio") || says("macpro") {
        DeviceCategory::Desktop
    } else {
        DeviceCategory::Other
    }
}

/// The OS name: Jamf School's `os.prefix` ("iOS"), except that iPads run iPadOS since 13.
fn os_name(
    prefix: Option<&str>,
    category: DeviceCategory,
    version: Option<&str>,
) -> Option<String> {
    let major = version
        .and_then(|version| version.split('.').next())
        .and_then(|major| major.parse::<u32>().ok());
    let ipados = category == DeviceCategory::Tablet && major.is_none_or(|major| major >= 13);
    match prefix {
        Some(prefix) if ipados && prefix.eq_ignore_ascii_case("ios") => Some("iPadOS".into()),
        Some(prefix) => Some(prefix.to_string()),
        None => ipados.then(|| "iPadOS".to_string()),
    }
}

/// Maps the device at `index` of the array. The external id is the `UDID` (documented as the
/// stable key); a device without one gets `serial:<serialNumber>` and a problem, because
/// dropping it would leave the fetch short of `count`.
pub(crate) fn map_device(
    raw: &RawValue,
    index: usize,
    schools: &Schools,
) -> Result<DeviceRecord, MappingError> {
    // A record that is not an object (or repeats a key) reads as empty and fails below unless
    // nothing at all can be read; the payload still keeps it whole.
    let json: Device<'_> = object(raw);
    let udid = normalize::udid(json.udid.get());
    let serial = json.serial_number.owned();
    let mut problems = Vec::new();
    let external_id = match (&udid, normalize::serial_number(serial.as_deref())) {
        (Some(udid), _) => udid.clone(),
        (None, Some(serial)) => {
            problems.push(format!(
                "device {serial}: no `UDID`; identified by its serial number instead"
            ));
            format!("serial:{serial}")
        }
        (None, None) => {
            return Err(MappingError::NoKey {
                index,
                name: json.name.owned(),
            })
        }
    };
    let Nested(model) = &json.model;
    let Nested(owner) = &json.owner;
    let Nested(os) = &json.os;
    let category = category(
        json.class.get(),
        model.kind.get(),
        model.name.get(),
        model.identifier.get(),
    );
    let location_id = json.location_id.get();
    let school = match schools.from {
        SchoolFrom::None => None,
        SchoolFrom::LocationId => location_id.map(str::to_string),
        SchoolFrom::LocationName => {
            let name = location_id.and_then(|id| schools.names.get(id)).cloned();
            if let (None, Some(id)) = (&name, location_id) {
                problems.push(format!(
                    "device {external_id}: locationId {id:?} is not a known location"
                ));
            }
            name
        }
    };
    let real_name = owner.name.owned().or_else(|| {
        let parts = [owner.first_name.get(), owner.last_name.get()];
        let joined = parts
            .iter()
            .flatten()
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        (!joined.is_empty()).then_some(joined)
    });
    // `owner.id` is Jamf School's own number for the user: no login, so it is not a username
    // hint (a number could match a real login by accident); it stays in the payload.
    let os_version = os.version.owned();
    Ok(DeviceRecord {
        external_id,
        category,
        name: json.name.owned(),
        asset_tag: json.asset_tag.owned(),
        serial_number: serial,
        udid,
        wifi_mac: json.network.0.wifi_mac.owned(),
        manufacturer: Some("Apple".to_string()),
        model: model.name.owned(),
        model_identifier: model.identifier.owned(),
        os_name: os_name(os.prefix.get(), category, os_version.as_deref()),
        os_version,
        location: LocationHint {
            school,
            ..LocationHint::default()
        },
        user: UserHint {
            username: owner.username.owned(),
            real_name,
            email: owner.email.owned(),
        },
        problems,
        payload: raw.get().to_string(),
        ..DeviceRecord::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        serde_json::from_str(text).unwrap()
    }

    fn by_id() -> Schools {
        Schools {
            from: SchoolFrom::LocationId,
            names: HashMap::new(),
        }
    }

    #[test]
    fn leaves_are_lenient() {
        let text = r#"{"UDID": " abc-1 ", "serialNumber": 5, "name": "a\"b ", "assetTag": true,
            "locationId": null, "os": "x", "model": {"name": ["x"], "identifier": "iPad7,5"},
            "owner": [1], "networkInformation": {"WiFiMAC": 3.5}}"#;
        let device: Device = serde_json::from_str(text).unwrap();
        assert_eq!(device.udid.get(), Some("abc-1"));
        assert_eq!(device.serial_number.get(), Some("5"));
        assert_eq!(device.name.get(), Some("a\"b"));
        assert_eq!(device.asset_tag.get(), None);
        assert_eq!(device.location_id.get(), None);
        assert_eq!(device.os.0.version.get(), None);
        assert_eq!(device.model.0.name.get(), None);
        assert_eq!(device.model.0.identifier.get(), Some("iPad7,5"));
        assert_eq!(device.owner.0.name.get(), None);
        assert_eq!(device.network.0.wifi_mac.get(), Some("3.5"));
    }

    #[test]
    fn categories() {
        use DeviceCategory::*;
        for (class, kind, model, identifier, expected) in [
            (Some("ipad"), Some("iPad"), None, None, Tablet),
            (None, None, None, Some("iPad12,1"), Tablet),
            (Some("appletv"), None, Some("Apple TV 4K"), None, Other),
            (
                Some("mac"),
                Some("Mac"),
                Some("MacBook Air (M2, 2022)"),
                Some("Mac14,2"),
                Laptop,
            ),
            (
                Some("mac"),
                None,
                Some("iMac (24-inch, M1, 2021)"),
                None,
                Desktop,
            ),
            (
                Some("mac"),
                None,
                Some("Mac mini (M2, 2023)"),
                None,
                Desktop,
            ),
            (Some("mac"), None, None, Some("Mac14,2"), Other),
            (Some("iphone"), None, None, None, Other),
        ] {
            assert_eq!(
                category(class, kind, model, identifier),
                expected,
                "{model:?}"
            );
        }
    }

    #[test]
    fn missing_udid_falls_back_to_the_serial_and_missing_both_is_an_error() {
        let record = map_device(
            &raw(r#"{"serialNumber": " dmp1 ", "UDID": ""}"#),
            0,
            &by_id(),
        )
        .unwrap();
        assert_eq!(record.external_id, "serial:DMP1");
        assert_eq!(record.problems.len(), 1);
        assert_eq!(
            map_device(&raw(r#"{"name": "x"}"#), 7, &by_id()),
            Err(MappingError::NoKey {
                index: 7,
                name: Some("x".into())
            })
        );
        assert!(map_device(&raw("42"), 1, &by_id()).is_err());
        assert!(map_device(&raw(r#"["u1"]"#), 1, &by_id()).is_err());
    }

    #[test]
    fn unknown_locations_are_problems_and_owner_names_are_joined() {
        let schools = Schools {
            from: SchoolFrom::LocationName,
            names: HashMap::from([("3".to_string(), "Realschule Nord".to_string())]),
        };
        let text = r#"{"UDID": "u1", "locationId": 9,
            "owner": {"id": 12, "firstName": "Jonas", "lastName": "Weber"}}"#;
        let record = map_device(&raw(text), 0, &schools).unwrap();
        assert_eq!(record.location.school, None);
        assert_eq!(
            record.problems,
            [r#"device U1: locationId "9" is not a known location"#]
        );
        assert_eq!(record.user.real_name.as_deref(), Some("Jonas Weber"));
        assert_eq!(record.user.username, None);
        assert_eq!(record.payload, text);
    }
}
