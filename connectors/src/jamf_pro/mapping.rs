//! Turns Jamf Pro inventory records (mobile-devices/detail and computers-inventory) into
//! `DeviceRecord`s. Pure functions over each record's JSON text, so the vendor's field-naming
//! traps (`warrantyExpiresDate` vs `warrantyDate`, `realName` vs `realname`) are pinned by tests.
//!
//! A bad value never drops a device: the field stays empty and a problem text naming field,
//! device and value goes into `record.problems`.

use std::collections::HashMap;

use bestand_model::model::DeviceCategory;
use bestand_model::money::{parse_price, Price};
use bestand_model::record::{DeviceRecord, LocationHint, PurchaseInfo, UserHint};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde_json::value::RawValue;

use super::config::SchoolFrom;
use super::lenient::{Object, Record, Text};

/// Jamf's id for "no site" / "no building".
const NONE_ID: &str = "-1";

/// Names Jamf only references by id, loaded once per fetch.
#[derive(Debug, Default)]
pub(crate) struct Names {
    /// Site id -> site name (mobile devices carry only `general.siteId`).
    pub sites: HashMap<String, String>,
    /// Building id -> building name (computers carry only `userAndLocation.buildingId`).
    pub buildings: HashMap<String, String>,
}

/// Why a record could not be mapped at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum MappingError {
    #[error("a record is not a JSON object")]
    NotAnObject,
    #[error("a record has no `{0}`")]
    MissingId(&'static str),
    /// Not expected to happen: the record text was already checked to be JSON, and reading
    /// it is lenient about every value.
    #[error("a record cannot be read ({0})")]
    Unreadable(String),
}

/// Collects per-field problems of one record; the device is named only once one turns up.
struct Problems<'r> {
    noun: &'static str,
    id: &'r str,
    list: Vec<String>,
}

impl Problems<'_> {
    fn push(&mut self, field: &str, value: &str, expected: &str) {
        self.list.push(format!(
            "{} {}: {field} {value:?} is not {expected}",
            self.noun, self.id
        ));
    }

    /// The name for `id`; an id that is set but unknown is a problem.
    fn known(
        &mut self,
        names: &HashMap<String, String>,
        id: Option<&str>,
        field: &str,
        expected: &str,
    ) -> Option<String> {
        let name = lookup(names, id);
        if name.is_none() {
            if let Some(id) = id.filter(|id| *id != NONE_ID) {
                self.push(field, id, expected);
            }
        }
        name
    }

    /// `value` (found at `path`) read by `parse`; a value `parse` rejects is a problem.
    fn parsed<T>(
        &mut self,
        value: &Text<'_>,
        path: &str,
        parse: impl Fn(&str) -> Option<T>,
        expected: &str,
    ) -> Option<T> {
        let value = value.get()?;
        let parsed = parse(value);
        if parsed.is_none() {
            self.push(path, value, expected);
        }
        parsed
    }

    fn date(&mut self, value: &Text<'_>, path: &str) -> Option<NaiveDate> {
        self.parsed(value, path, parse_date, "a date")
    }

    /// `purchasePrice` is free text: whatever an admin typed, `EUR 1.299,00` included.
    fn price(&mut self, value: &Text<'_>, path: &str) -> Option<Price> {
        let value = value.get()?;
        parse_price(value, None)
            .map_err(|error| self.push(path, value, &format!("a price ({error})")))
            .ok()
    }

    fn years(&mut self, value: &Text<'_>, path: &str) -> Option<i32> {
        self.parsed(value, path, |value| value.parse().ok(), "a number of years")
            // Jamf reports 0 when nobody entered a life expectancy.
            .filter(|years| *years > 0)
    }
}

/// Reads the dates Jamf sends: full timestamps (`2023-08-15T00:00:00.000Z`, with or without
/// offset) and plain dates (`2022-09-20`). A timestamp yields its date as written.
pub(crate) fn parse_date(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(date);
    }
    if let Ok(stamp) = DateTime::parse_from_rfc3339(text) {
        return Some(stamp.date_naive());
    }
    if let Ok(stamp) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(stamp.date_naive());
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|stamp| stamp.date())
}

/// The category of a mobile device: iPads are tablets; Apple TVs, iPhones and anything
/// unrecognised are `Other`.
pub(crate) fn mobile_category(
    device_type: Option<&str>,
    model: Option<&str>,
    model_identifier: Option<&str>,
) -> DeviceCategory {
    let model = model.unwrap_or_default().to_lowercase();
    let identifier = model_identifier.unwrap_or_default().to_lowercase();
    let device_type = device_type.unwrap_or_default().to_lowercase();
    if device_type == "tvos" || model.contains("apple tv") || identifier.starts_with("appletv") {
        DeviceCategory::Other
    } else if model.contains("ipad") || identifier.starts_with("ipad") {
        DeviceCategory::Tablet
    } else {
        DeviceCategory::Other
    }
}

/// The category of a computer, from the marketing model name first ("MacBook Air (M2, 2022)")
/// and the model identifier second ("MacBookPro18,3"; newer Macs use an ambiguous "Mac14,2").
/// Portable Macs are all "MacBook"s; iMac, Mac mini, Mac Studio and Mac Pro are desktops.
/// Anything else counts as a laptop when its model says book/laptop/notebook, as a desktop
/// when it says desktop/tower/workstation, and as `Other` (virtual machines, unknowns) otherwise.
pub(crate) fn computer_category(
    model: Option<&str>,
    model_identifier: Option<&str>,
) -> DeviceCategory {
    let model = model.unwrap_or_default().to_lowercase();
    let identifier = model_identifier.unwrap_or_default().to_lowercase();
    let model_says = |words: &[&str]| words.iter().any(|word| model.contains(word));
    if model_says(&["macbook"]) || identifier.starts_with("macbook") {
        DeviceCategory::Laptop
    } else if model_says(&["imac", "mac mini", "mac studio", "mac pro"])
        || ["imac", "macmini", "macpro"]
            .iter()
            .any(|prefix| identifier.starts_with(prefix))
    {
        DeviceCategory::Desktop
    } else if model_says(&["book", "laptop", "notebook"]) {
        DeviceCategory::Laptop
    } else if model_says(&["desktop", "tower", "workstation"]) {
        DeviceCategory::Desktop
    } else {
        DeviceCategory::Other
    }
}

/// The OS name of a mobile device: Jamf says "iOS" for iPads too, but since version 13
/// their OS is iPadOS.
fn mobile_os_name(
    device_type: Option<&str>,
    category: DeviceCategory,
    version: Option<&str>,
) -> Option<String> {
    let major = version
        .and_then(|version| version.split('.').next())
        .and_then(|major| major.parse::<u32>().ok());
    let ipados = category == DeviceCategory::Tablet && major.is_none_or(|major| major >= 13);
    match device_type {
        Some(kind) if kind.eq_ignore_ascii_case("ios") && ipados => Some("iPadOS".into()),
        Some(kind) => Some(kind.to_string()),
        None if ipados => Some("iPadOS".into()),
        None => None,
    }
}

/// The name for an id, unless the id is Jamf's "none".
fn lookup(names: &HashMap<String, String>, id: Option<&str>) -> Option<String> {
    id.filter(|id| *id != NONE_ID)
        .and_then(|id| names.get(id))
        .cloned()
}

/// Where the two record kinds keep what they share under different names.
struct Kind {
    /// The id field and the `external_id` prefix.
    id: &'static str,
    prefix: &'static str,
    /// How problem texts name the device.
    noun: &'static str,
    /// The path of the warranty date, for problem texts.
    warranty: &'static str,
    /// The kind's own fields of a record.
    pick: for<'r, 'a> fn(&'r Record<'a>) -> KindFields<'r, 'a>,
}

/// The fields of one record that each kind names its own way.
struct KindFields<'r, 'a> {
    id: &'r Text<'a>,
    warranty: &'r Text<'a>,
    real_name: &'r Text<'a>,
    email: &'r Text<'a>,
}

const MOBILE_DEVICE: Kind = Kind {
    id: "mobileDeviceId",
    prefix: "mobile",
    noun: "mobile device",
    warranty: "purchasing.warrantyExpiresDate",
    pick: |json| KindFields {
        id: &json.mobile_device_id,
        warranty: &json.purchasing.warranty_expires_date,
        real_name: &json.user_and_location.real_name,
        email: &json.user_and_location.email_address,
    },
};

const COMPUTER: Kind = Kind {
    id: "id",
    prefix: "computer",
    noun: "computer",
    warranty: "purchasing.warrantyDate",
    pick: |json| KindFields {
        id: &json.id,
        warranty: &json.purchasing.warranty_date,
        real_name: &json.user_and_location.realname,
        email: &json.user_and_location.email,
    },
};

/// Reads the mapped fields of one record's JSON text.
fn read(raw: &RawValue) -> Result<Record<'_>, MappingError> {
    match serde_json::from_str::<Object<Record>>(raw.get()) {
        Ok(Object(Some(json))) => Ok(json),
        Ok(Object(None)) => Err(MappingError::NotAnObject),
        Err(error) => Err(MappingError::Unreadable(error.to_string())),
    }
}

/// The fields both kinds share, with the record's problem list started.
fn common<'r>(
    json: &'r Record<'_>,
    kind: &Kind,
) -> Result<(DeviceRecord, Problems<'r>), MappingError> {
    let own = (kind.pick)(json);
    let id = own.id.get().ok_or(MappingError::MissingId(kind.id))?;
    let mut problems = Problems {
        noun: kind.noun,
        id,
        list: Vec::new(),
    };
    let purchasing = &json.purchasing;
    // Read in this order so that the problems come in the order of the fields.
    let purchase_date = problems.date(&purchasing.po_date, "purchasing.poDate");
    let price = problems.price(&purchasing.purchase_price, "purchasing.purchasePrice");
    let purchase = PurchaseInfo {
        order_number: purchasing.po_number.owned(),
        purchase_date,
        supplier: purchasing.vendor.owned(),
        price: price.as_ref().map(|price| price.amount),
        currency: price.and_then(|price| price.currency),
        warranty_end: problems.date(own.warranty, kind.warranty),
        life_expectancy_years: problems
            .years(&purchasing.life_expectancy, "purchasing.lifeExpectancy"),
        purchasing_account: purchasing.purchasing_account.owned(),
    };
    let hardware = &json.hardware;
    let user = &json.user_and_location;
    let record = DeviceRecord {
        external_id: format!("{}:{id}", kind.prefix),
        asset_tag: json.general.asset_tag.owned(),
        serial_number: hardware.serial_number.owned(),
        model: hardware.model.owned(),
        model_identifier: hardware.model_identifier.owned(),
        location: LocationHint {
            room: user.room.owned(),
            ..LocationHint::default()
        },
        purchase,
        user: UserHint {
            username: user.username.owned(),
            real_name: own.real_name.owned(),
            email: own.email.owned(),
        },
        ..DeviceRecord::default()
    };
    Ok((record, problems))
}

/// Maps one record of `GET /api/v2/mobile-devices/detail`.
pub(crate) fn map_mobile_device(
    raw: &RawValue,
    names: &Names,
    school_from: SchoolFrom,
) -> Result<DeviceRecord, MappingError> {
    let json = read(raw)?;
    let (mut record, mut problems) = common(&json, &MOBILE_DEVICE)?;
    let device_type = json.device_type.get();
    record.category = mobile_category(
        device_type,
        record.model.as_deref(),
        record.model_identifier.as_deref(),
    );
    record.name = json.general.display_name.owned();
    record.udid = json.general.udid.owned();
    record.imei = json.network.imei.owned();
    record.wifi_mac = json.hardware.wifi_mac_address.owned();
    record.manufacturer = Some("Apple".to_string());
    record.os_version = json.general.os_version.owned();
    record.os_name = mobile_os_name(device_type, record.category, record.os_version.as_deref());

    let user = &json.user_and_location;
    let building = user
        .building
        .owned()
        .or_else(|| lookup(&names.buildings, user.building_id.get()));
    record.location.school = match school_from {
        SchoolFrom::Site => problems.known(
            &names.sites,
            json.general.site_id.get(),
            "general.siteId",
            "a known site",
        ),
        SchoolFrom::Building => building.clone(),
    };
    record.location.building = building;
    record.problems = problems.list;
    record.payload = raw.get().to_string();
    Ok(record)
}

/// Maps one record of `GET /api/v{4,3,1}/computers-inventory`.
pub(crate) fn map_computer(
    raw: &RawValue,
    names: &Names,
    school_from: SchoolFrom,
) -> Result<DeviceRecord, MappingError> {
    let json = read(raw)?;
    let (mut record, mut problems) = common(&json, &COMPUTER)?;
    record.category =
        computer_category(record.model.as_deref(), record.model_identifier.as_deref());
    let general = &json.general;
    record.name = general.name.owned();
    record.udid = json.udid.owned();
    record.wifi_mac = json.hardware.mac_address.owned();
    record.manufacturer = json.hardware.make.owned();
    record.os_name = json
        .operating_system
        .name
        .owned()
        .or_else(|| (general.platform.get() == Some("Mac")).then(|| "macOS".into()));
    record.os_version = json.operating_system.version.owned();

    let building_id = json.user_and_location.building_id.get();
    record.location.school = match school_from {
        // Site -1 is Jamf's "None" (its name is literally "None").
        SchoolFrom::Site => match general.site.id.get() {
            Some(NONE_ID) => None,
            _ => general.site.name.owned(),
        },
        SchoolFrom::Building => problems.known(
            &names.buildings,
            building_id,
            "userAndLocation.buildingId",
            "a known building",
        ),
    };
    record.location.building = lookup(&names.buildings, building_id);
    record.problems = problems.list;
    record.payload = raw.get().to_string();
    Ok(record)
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;
    use serde_json::{json, Value};

    use super::*;

    fn raw(value: &Value) -> Box<RawValue> {
        serde_json::value::to_raw_value(value).unwrap()
    }

    #[test]
    fn dates_in_every_shape_jamf_sends() {
        let day = NaiveDate::from_ymd_opt(2023, 8, 15).unwrap();
        for text in [
            "2023-08-15",
            "2023-08-15T00:00:00.000Z",
            "2023-08-15T23:30:00+02:00",
            "2023-08-15T10:00:00.000+0000",
            "2023-08-15T10:00:00",
            "2023-08-15 10:00:00",
        ] {
            assert_eq!(parse_date(text), Some(day), "{text}");
        }
        for text in ["2023-13-01", "15.08.2023", "soon"] {
            assert_eq!(parse_date(text), None, "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_date_text_gives_a_date_or_none(text in "\\PC{0,32}|[0-9T:.+Z -]{0,30}") {
            let _ = parse_date(&text);
        }
    }

    #[test]
    fn mobile_categories() {
        use DeviceCategory::*;
        for (device_type, model, identifier, expected) in [
            (
                Some("iOS"),
                Some("iPad (9th generation)"),
                Some("iPad12,1"),
                Tablet,
            ),
            (Some("iOS"), None, Some("iPad13,18"), Tablet),
            (
                Some("tvOS"),
                Some("Apple TV 4K"),
                Some("AppleTV11,1"),
                Other,
            ),
            (None, Some("Apple TV HD"), None, Other),
            (Some("iOS"), Some("iPhone 15"), Some("iPhone15,4"), Other),
            (Some("iOS"), None, None, Other),
        ] {
            assert_eq!(
                mobile_category(device_type, model, identifier),
                expected,
                "{model:?} {identifier:?}"
            );
        }
    }

    #[test]
    fn computer_categories() {
        use DeviceCategory::*;
        for (model, identifier, expected) in [
            (Some("MacBook Air (M2, 2022)"), Some("Mac14,2"), Laptop),
            (Some("MacBook Pro (14-inch, 2023)"), None, Laptop),
            (None, Some("MacBookPro18,3"), Laptop),
            (Some("iMac (24-inch, M1, 2021)"), Some("iMac21,1"), Desktop),
            (Some("Mac mini (M2, 2023)"), Some("Mac14,3"), Desktop),
            (Some("Mac Studio (2022)"), Some("Mac13,1"), Desktop),
            (Some("Mac Pro (2019)"), Some("MacPro7,1"), Desktop),
            (None, Some("Macmini9,1"), Desktop),
            (Some("ThinkBook 14"), None, Laptop),
            (Some("Dell Precision Tower"), None, Desktop),
            (Some("VMware Virtual Platform"), Some("VMware7,1"), Other),
            (None, Some("Mac14,2"), Other),
        ] {
            assert_eq!(computer_category(model, identifier), expected, "{model:?}");
        }
    }

    #[test]
    fn mobile_os_names() {
        let tablet = DeviceCategory::Tablet;
        assert_eq!(
            mobile_os_name(Some("iOS"), tablet, Some("17.6.1")).as_deref(),
            Some("iPadOS")
        );
        assert_eq!(
            mobile_os_name(Some("iOS"), tablet, Some("12.5.7")).as_deref(),
            Some("iOS")
        );
        assert_eq!(
            mobile_os_name(Some("iOS"), DeviceCategory::Other, Some("17.0")).as_deref(),
            Some("iOS")
        );
        assert_eq!(
            mobile_os_name(Some("tvOS"), DeviceCategory::Other, None).as_deref(),
            Some("tvOS")
        );
    }

    #[test]
    fn records_without_id_or_object_shape_are_errors() {
        let names = Names::default();
        assert_eq!(
            map_mobile_device(&raw(&json!({"general": {}})), &names, SchoolFrom::Site),
            Err(MappingError::MissingId("mobileDeviceId"))
        );
        assert_eq!(
            map_computer(&raw(&json!({"id": ""})), &names, SchoolFrom::Site),
            Err(MappingError::MissingId("id"))
        );
        assert_eq!(
            map_computer(&raw(&json!("42")), &names, SchoolFrom::Site),
            Err(MappingError::NotAnObject)
        );
    }

    #[test]
    fn the_payload_is_the_record_text_and_bad_values_are_problems_in_order() {
        let text = r#"{ "id": 7,  "purchasing": {"poDate": "soon", "purchasePrice": "1.299",
            "warrantyDate": "2026-02-30", "lifeExpectancy": 2.5} }"#;
        let raw: Box<RawValue> = serde_json::from_str(text).unwrap();
        let record = map_computer(&raw, &Names::default(), SchoolFrom::Site).unwrap();
        assert_eq!(record.payload, text);
        assert_eq!(record.external_id, "computer:7");
        assert_eq!(
            record.problems,
            [
                r#"computer 7: purchasing.poDate "soon" is not a date"#,
                "computer 7: purchasing.purchasePrice \"1.299\" is not a price (it is ambiguous: \
                 1299 if '.' groups thousands, 1.299 if it is the decimal separator; write the \
                 cents (such as 1299,00 or 1299.00))",
                r#"computer 7: purchasing.warrantyDate "2026-02-30" is not a date"#,
                r#"computer 7: purchasing.lifeExpectancy "2.5" is not a number of years"#,
            ]
        );
    }

    #[test]
    fn prices_as_admins_type_them_keep_their_currency() {
        for (text, amount, currency) in [
            ("EUR 1.299,00", Decimal::new(129900, 2), Some("EUR")),
            ("1,299.00 USD", Decimal::new(129900, 2), Some("USD")),
            ("329.00", Decimal::new(32900, 2), None),
            ("1099,50", Decimal::new(109950, 2), None),
        ] {
            let json = json!({"id": "7", "purchasing": {"purchasePrice": text}});
            let record = map_computer(&raw(&json), &Names::default(), SchoolFrom::Site).unwrap();
            assert_eq!(record.purchase.price, Some(amount), "{text}");
            assert_eq!(record.purchase.currency.as_deref(), currency, "{text}");
            assert!(record.problems.is_empty(), "{:?}", record.problems);
        }
    }

    #[test]
    fn school_from_building_and_site_lookups() {
        let names = Names {
            sites: HashMap::from([("2".to_string(), "GS Lindenweg".to_string())]),
            buildings: HashMap::from([("3".to_string(), "Hauptgebäude".to_string())]),
        };
        let mobile = json!({
            "mobileDeviceId": 5,
            "general": {"siteId": "2"},
            "userAndLocation": {"buildingId": "3", "building": "", "room": " "}
        });
        let by_site = map_mobile_device(&raw(&mobile), &names, SchoolFrom::Site).unwrap();
        assert_eq!(by_site.external_id, "mobile:5");
        assert_eq!(by_site.location.school.as_deref(), Some("GS Lindenweg"));
        assert_eq!(by_site.location.building.as_deref(), Some("Hauptgebäude"));
        assert_eq!(by_site.location.room, None);
        let by_building = map_mobile_device(&raw(&mobile), &names, SchoolFrom::Building).unwrap();
        assert_eq!(by_building.location.school.as_deref(), Some("Hauptgebäude"));

        let unknown_site = json!({"mobileDeviceId": "6", "general": {"siteId": "9"}});
        let record = map_mobile_device(&raw(&unknown_site), &names, SchoolFrom::Site).unwrap();
        assert_eq!(record.location.school, None);
        assert_eq!(
            record.problems,
            ["mobile device 6: general.siteId \"9\" is not a known site"]
        );

        let computer = json!({
            "id": "7",
            "general": {"site": {"id": "2", "name": "GS Lindenweg"}},
            "userAndLocation": {"buildingId": "3"}
        });
        let by_site = map_computer(&raw(&computer), &names, SchoolFrom::Site).unwrap();
        assert_eq!(by_site.location.school.as_deref(), Some("GS Lindenweg"));
        assert_eq!(by_site.location.building.as_deref(), Some("Hauptgebäude"));
        let by_building = map_computer(&raw(&computer), &names, SchoolFrom::Building).unwrap();
        assert_eq!(by_building.location.school.as_deref(), Some("Hauptgebäude"));
    }
}
