//! Typed, lenient views of the Jamf Pro JSON the mapping reads, deserialized straight from the
//! record text so that no `serde_json::Value` tree is built for 50,000 records.
//!
//! Lenient means: reading never fails on a value of an unexpected type. A leaf that is not a
//! string or number reads as absent, an object that is not an object reads as empty, unknown
//! keys are skipped and a repeated key keeps its last value, exactly what looking the path up
//! in a `Value` used to give. Strings borrow from the record text unless they hold escapes.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

// The visitors here and in `page` accept every JSON value, so that a wrong shape is judged
// in the connector's own terms (and the rest of the body is still checked to be JSON). These
// macros spell out the `visit_*` methods they share.

/// The `visit_seq` and `visit_map` of a visitor that skips arrays and objects as `$value`.
macro_rules! skip_containers {
    ($value:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            IgnoredAny.visit_seq(seq)?;
            Ok($value)
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            IgnoredAny.visit_map(map)?;
            Ok($value)
        }
    };
}
pub(crate) use skip_containers;

/// `expecting` and the `visit_*` methods of a visitor that reads every scalar but a `u64`
/// as `$value`.
macro_rules! accept_scalars {
    ($value:expr) => {
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any JSON value")
        }

        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }

        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }

        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }

        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($value)
        }

        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}
pub(crate) use accept_scalars;

/// A leaf as the mapping wants it: strings trimmed, numbers as their JSON text (Jamf sends ids
/// either way), everything else and empty text absent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Text<'a>(Option<Cow<'a, str>>);

impl Text<'_> {
    pub(crate) fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }

    pub(crate) fn owned(&self) -> Option<String> {
        self.get().map(str::to_string)
    }

    fn trimmed(text: Cow<'_, str>) -> Text<'_> {
        let text = match text {
            Cow::Borrowed(text) => Cow::Borrowed(text.trim()),
            Cow::Owned(text) if text.trim().len() == text.len() => Cow::Owned(text),
            Cow::Owned(text) => Cow::Owned(text.trim().to_string()),
        };
        Text((!text.is_empty()).then_some(text))
    }
}

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Text::trimmed(Cow::Borrowed(text)))
    }

    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Text::trimmed(Cow::Owned(text.to_string())))
    }

    fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
        Ok(Text::trimmed(Cow::Owned(text)))
    }

    fn visit_u64<E>(self, number: u64) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Owned(number.to_string()))))
    }

    fn visit_i64<E>(self, number: i64) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Owned(number.to_string()))))
    }

    fn visit_f64<E>(self, number: f64) -> Result<Self::Value, E> {
        // `Number`'s own formatting, so that `5.0` stays "5.0" as it did in a `Value`.
        Ok(Text(
            serde_json::Number::from_f64(number).map(|number| Cow::Owned(number.to_string())),
        ))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Text(None))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Text(None))
    }

    skip_containers!(Text(None));
}

/// A struct filled from a JSON object key by key (see `jamf_object!`).
pub(crate) trait Fields<'de>: Default {
    /// Reads the value of `key` into its field, or skips it.
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error>;
}

/// A JSON object read into `T`; `None` when the value is not an object.
pub(crate) struct Object<T>(pub Option<T>);

impl<'de, T: Fields<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ObjectVisitor(PhantomData))
    }
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Fields<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = Object<T>;

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = T::default();
        while let Some(Key(key)) = map.next_key()? {
            object.field(&key, &mut map)?;
        }
        Ok(Object(Some(object)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(Object(None))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Object(None))
    }

    accept_scalars!(Object(None));
}

/// An object key; borrowed unless it holds escapes.
pub(crate) struct Key<'de>(pub Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Borrowed(key)))
    }

    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(key.to_string())))
    }
}

/// Declares a struct of the fields read from one JSON object, each with its JSON key. A
/// nested struct reads as empty when its value is not an object.
macro_rules! jamf_object {
    ($(#[$doc:meta])* $name:ident<$lt:lifetime> { $($key:literal => $field:ident: $type:ty,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Default)]
        pub(crate) struct $name<$lt> {
            $(pub(crate) $field: $type,)*
        }

        impl<'de> Fields<'de> for $name<'de> {
            fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
                match key {
                    $($key => self.$field = map.next_value()?,)*
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(())
            }
        }

        impl<'de> Deserialize<'de> for $name<'de> {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                Ok(Object::<Self>::deserialize(deserializer)?.0.unwrap_or_default())
            }
        }
    };
}

jamf_object! {
    /// One inventory record: the fields mapped from mobile devices and computers together
    /// (each mapping reads only the keys of its kind).
    Record<'a> {
        "mobileDeviceId" => mobile_device_id: Text<'a>,
        "id" => id: Text<'a>,
        "deviceType" => device_type: Text<'a>,
        "udid" => udid: Text<'a>,
        "general" => general: General<'a>,
        "hardware" => hardware: Hardware<'a>,
        "network" => network: Network<'a>,
        "userAndLocation" => user_and_location: UserAndLocation<'a>,
        "purchasing" => purchasing: Purchasing<'a>,
        "operatingSystem" => operating_system: OperatingSystem<'a>,
    }
}

jamf_object! {
    General<'a> {
        "displayName" => display_name: Text<'a>,
        "name" => name: Text<'a>,
        "udid" => udid: Text<'a>,
        "assetTag" => asset_tag: Text<'a>,
        "osVersion" => os_version: Text<'a>,
        "platform" => platform: Text<'a>,
        "siteId" => site_id: Text<'a>,
        "site" => site: Site<'a>,
    }
}

jamf_object! {
    /// A computer's `general.site`.
    Site<'a> {
        "id" => id: Text<'a>,
        "name" => name: Text<'a>,
    }
}

jamf_object! {
    Hardware<'a> {
        "serialNumber" => serial_number: Text<'a>,
        "model" => model: Text<'a>,
        "modelIdentifier" => model_identifier: Text<'a>,
        "wifiMacAddress" => wifi_mac_address: Text<'a>,
        "macAddress" => mac_address: Text<'a>,
        "make" => make: Text<'a>,
    }
}

jamf_object! {
    Network<'a> {
        "imei" => imei: Text<'a>,
    }
}

jamf_object! {
    UserAndLocation<'a> {
        "username" => username: Text<'a>,
        "realName" => real_name: Text<'a>,
        "realname" => realname: Text<'a>,
        "emailAddress" => email_address: Text<'a>,
        "email" => email: Text<'a>,
        "building" => building: Text<'a>,
        "buildingId" => building_id: Text<'a>,
        "room" => room: Text<'a>,
    }
}

jamf_object! {
    Purchasing<'a> {
        "poNumber" => po_number: Text<'a>,
        "poDate" => po_date: Text<'a>,
        "vendor" => vendor: Text<'a>,
        "purchasePrice" => purchase_price: Text<'a>,
        "warrantyExpiresDate" => warranty_expires_date: Text<'a>,
        "warrantyDate" => warranty_date: Text<'a>,
        "lifeExpectancy" => life_expectancy: Text<'a>,
        "purchasingAccount" => purchasing_account: Text<'a>,
    }
}

jamf_object! {
    OperatingSystem<'a> {
        "name" => name: Text<'a>,
        "version" => version: Text<'a>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: &str) -> Option<Record<'_>> {
        serde_json::from_str::<Object<Record>>(json).unwrap().0
    }

    #[test]
    fn leaves_read_like_value_lookups() {
        let json = r#"{
            "id": 42, "mobileDeviceId": -7, "deviceType": " iOS ", "udid": "  ",
            "general": {"name": "a\"b ", "assetTag": 5.0, "osVersion": true, "platform": null,
                        "siteId": [1, {"x": 2}], "displayName": {"a": [1]}},
            "purchasing": {"lifeExpectancy": 5, "poDate": "x", "poDate": "2023-01-02"}
        }"#;
        let record = record(json).unwrap();
        assert_eq!(record.id.get(), Some("42"));
        assert_eq!(record.mobile_device_id.get(), Some("-7"));
        assert_eq!(record.device_type.get(), Some("iOS"));
        assert_eq!(record.udid.get(), None);
        assert_eq!(record.general.name.get(), Some("a\"b"));
        assert_eq!(record.general.asset_tag.get(), Some("5.0"));
        assert_eq!(record.general.os_version.get(), None);
        assert_eq!(record.general.platform.get(), None);
        assert_eq!(record.general.site_id.get(), None);
        assert_eq!(record.general.display_name.get(), None);
        assert_eq!(record.purchasing.life_expectancy.get(), Some("5"));
        // A repeated key keeps its last value, as in a `Value` map.
        assert_eq!(record.purchasing.po_date.get(), Some("2023-01-02"));
    }

    #[test]
    fn objects_of_the_wrong_type_read_as_empty() {
        let record = record(r#"{"general": "x", "hardware": [1], "purchasing": 3}"#).unwrap();
        assert_eq!(record.general.name.get(), None);
        assert_eq!(record.hardware.model.get(), None);
        assert!(record.purchasing.po_number.get().is_none());
        for json in ["[1, 2]", "\"text\"", "3", "null", "true"] {
            assert!(self::record(json).is_none(), "{json}");
        }
    }
}
