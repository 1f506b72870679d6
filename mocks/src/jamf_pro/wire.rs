//! Jamf Pro's JSON, field for field: the inventory records of
//! docs/vendors/jamf-pro.md#mobile-devices to 1.6, the paging envelope and the `ApiError` body.
//! Kept apart from the server so the naming traps (`realName` vs `realname`, `warrantyExpiresDate`
//! vs `warrantyDate`) live in one place.

use serde::Serialize;

use crate::generator::{Device, DeviceKind, DeviceUser};
use crate::musterstadt::Building;

/// Inventory sections this mock fills in. Other valid section names are accepted and ignored,
/// as a server with no data for them would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    General,
    Hardware,
    UserAndLocation,
    Purchasing,
    /// Computers only.
    OperatingSystem,
}

/// `section=` values Jamf accepts on `mobile-devices/detail`.
const MOBILE_SECTIONS: &[&str] = &[
    "GENERAL",
    "HARDWARE",
    "USER_AND_LOCATION",
    "PURCHASING",
    "SECURITY",
    "APPLICATIONS",
    "EBOOKS",
    "NETWORK",
    "SERVICE_SUBSCRIPTIONS",
    "CERTIFICATES",
    "PROFILES",
    "USER_PROFILES",
    "PROVISIONING_PROFILES",
    "SHARED_USERS",
    "EXTENSION_ATTRIBUTES",
];

/// `section=` values Jamf accepts on `computers-inventory`.
const COMPUTER_SECTIONS: &[&str] = &[
    "GENERAL",
    "DISK_ENCRYPTION",
    "PURCHASING",
    "APPLICATIONS",
    "STORAGE",
    "USER_AND_LOCATION",
    "CONFIGURATION_PROFILES",
    "PRINTERS",
    "SERVICES",
    "HARDWARE",
    "LOCAL_USER_ACCOUNTS",
    "CERTIFICATES",
    "ATTACHMENTS",
    "PLUGINS",
    "PACKAGE_RECEIPTS",
    "FONTS",
    "SECURITY",
    "OPERATING_SYSTEM",
    "LICENSED_SOFTWARE",
    "IBEACONS",
    "SOFTWARE_UPDATES",
    "EXTENSION_ATTRIBUTES",
    "CONTENT_CACHING",
    "GROUP_MEMBERSHIPS",
];

/// The set of sections one request asked for. GENERAL is always in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sections {
    hardware: bool,
    user_and_location: bool,
    purchasing: bool,
    operating_system: bool,
}

impl Sections {
    /// Only GENERAL, as Jamf answers when no `section` is given.
    pub fn general_only() -> Sections {
        Sections {
            hardware: false,
            user_and_location: false,
            purchasing: false,
            operating_system: false,
        }
    }

    /// Parses `section` values, each repeated or comma-joined (both forms occur in the field).
    /// Returns the first name that is not a valid section of `kind`'s endpoint.
    pub fn parse<'a>(
        kind: DeviceKind,
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<Sections, String> {
        let valid = match kind {
            DeviceKind::Mobile => MOBILE_SECTIONS,
            DeviceKind::Computer => COMPUTER_SECTIONS,
        };
        let mut sections = Sections::general_only();
        for name in values.into_iter().flat_map(|v| v.split(',')).map(str::trim) {
            if !valid.contains(&name) {
                return Err(name.to_string());
            }
            match name {
                "HARDWARE" => sections.hardware = true,
                "USER_AND_LOCATION" => sections.user_and_location = true,
                "PURCHASING" => sections.purchasing = true,
                "OPERATING_SYSTEM" => sections.operating_system = true,
                _ => {}
            }
        }
        Ok(sections)
    }

    pub fn contains(&self, section: Section) -> bool {
        match section {
            Section::General => true,
            Section::Hardware => self.hardware,
            Section::UserAndLocation => self.user_and_location,
            Section::Purchasing => self.purchasing,
            Section::OperatingSystem => self.operating_system,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PageBody<T> {
    total_count: usize,
    results: Vec<T>,
}

/// `{"totalCount":..,"results":[..]}` with the devices rendered for their kind.
pub fn page_json(
    kind: DeviceKind,
    total_count: usize,
    devices: impl Iterator<Item = Device>,
    sections: Sections,
) -> Vec<u8> {
    let devices: Vec<Device> = devices.collect();
    let body = match kind {
        DeviceKind::Mobile => serde_json::to_vec(&PageBody {
            total_count,
            results: devices.iter().map(|d| mobile(d, sections)).collect(),
        }),
        DeviceKind::Computer => serde_json::to_vec(&PageBody {
            total_count,
            results: devices.iter().map(|d| computer(d, sections)).collect(),
        }),
    };
    body.expect("serialising plain structs to memory cannot fail")
}

/// One device as `mobile-devices/detail` or `computers-inventory` lists it.
pub fn device_json(device: &Device, sections: Sections) -> serde_json::Value {
    let value = match device.kind() {
        DeviceKind::Mobile => serde_json::to_value(mobile(device, sections)),
        DeviceKind::Computer => serde_json::to_value(computer(device, sections)),
    };
    value.expect("serialising plain structs to memory cannot fail")
}

/// Jamf's `ApiError` body.
pub fn error_json(status: u16, code: &str, description: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "httpStatus": status,
        "errors": [{ "code": code, "field": null, "description": description, "id": "0" }],
    });
    body.to_string().into_bytes()
}

/// `GET /api/v1/buildings` body for one page of buildings.
pub fn buildings_json(total_count: usize, buildings: &[Building]) -> Vec<u8> {
    let results = buildings
        .iter()
        .map(|b| {
            serde_json::json!({
                "id": b.id.to_string(),
                "name": b.name,
                "streetAddress1": "",
                "streetAddress2": "",
                "city": "Musterstadt",
                "stateProvince": "",
                "zipPostalCode": "",
                "country": "Deutschland",
            })
        })
        .collect::<Vec<_>>();
    serde_json::json!({ "totalCount": total_count, "results": results })
        .to_string()
        .into_bytes()
}

const EMPTY: &[()] = &[];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MobileRecord<'a> {
    mobile_device_id: String,
    device_type: &'static str,
    general: MobileGeneral<'a>,
    hardware: Option<MobileHardware<'a>>,
    user_and_location: Option<MobileUserAndLocation<'a>>,
    purchasing: Option<MobilePurchasing<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MobileGeneral<'a> {
    udid: &'a str,
    display_name: &'a str,
    asset_tag: Option<&'a str>,
    site_id: String,
    last_inventory_update_date: &'a str,
    os_version: &'a str,
    os_rapid_security_response: Option<&'a str>,
    os_build: &'a str,
    os_supplemental_build_version: Option<&'a str>,
    ip_address: &'a str,
    managed: bool,
    supervised: bool,
    device_ownership_type: &'static str,
    enrollment_method_prestage: Prestage,
    enrollment_session_token_valid: bool,
    last_enrolled_date: &'a str,
    mdm_profile_expiration_date: &'a str,
    time_zone: &'static str,
    declarative_device_management_enabled: bool,
    extension_attributes: &'static [()],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Prestage {
    mobile_device_prestage_id: &'static str,
    profile_name: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MobileHardware<'a> {
    capacity_mb: u32,
    available_space_mb: u32,
    used_space_percentage: u32,
    battery_level: u32,
    serial_number: &'a str,
    wifi_mac_address: &'a str,
    bluetooth_mac_address: &'a str,
    modem_firmware_version: Option<&'a str>,
    model: &'a str,
    model_identifier: &'a str,
    model_number: &'a str,
    bluetooth_low_energy_capable: bool,
    device_id: Option<&'a str>,
    extension_attributes: &'static [()],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MobileUserAndLocation<'a> {
    username: &'a str,
    real_name: &'a str,
    email_address: &'a str,
    position: &'a str,
    phone_number: &'a str,
    department_id: &'static str,
    building_id: String,
    room: &'a str,
    building: &'a str,
    department: Option<&'a str>,
    extension_attributes: &'static [()],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MobilePurchasing<'a> {
    purchased: bool,
    leased: bool,
    po_number: &'a str,
    vendor: &'a str,
    apple_care_id: &'a str,
    purchase_price: &'a str,
    purchasing_account: &'a str,
    po_date: String,
    warranty_expires_date: String,
    lease_expires_date: Option<&'a str>,
    life_expectancy: u32,
    purchasing_contact: &'a str,
    extension_attributes: &'static [()],
}

/// Username, real name, e-mail and position; empty strings for devices nobody holds.
fn user_fields(user: Option<&DeviceUser>) -> (&str, &str, &str, &str) {
    user.map_or(("", "", "", ""), |u| {
        (
            u.username.as_str(),
            u.real_name.as_str(),
            u.email.as_str(),
            u.position,
        )
    })
}

fn mobile(d: &Device, sections: Sections) -> MobileRecord<'_> {
    let (username, real_name, email, position) = user_fields(d.user.as_ref());
    MobileRecord {
        mobile_device_id: d.jamf_id.to_string(),
        device_type: "iOS",
        general: MobileGeneral {
            udid: &d.udid,
            display_name: &d.display_name,
            asset_tag: d.asset_tag.as_deref(),
            site_id: d.school.site_id.to_string(),
            last_inventory_update_date: &d.last_inventory_at,
            os_version: &d.os_version,
            os_rapid_security_response: None,
            os_build: &d.os_build,
            os_supplemental_build_version: None,
            ip_address: &d.ip_address,
            managed: true,
            supervised: d.supervised,
            device_ownership_type: "Institutional",
            enrollment_method_prestage: Prestage {
                mobile_device_prestage_id: "1",
                profile_name: "ADE Schul-iPads",
            },
            enrollment_session_token_valid: false,
            last_enrolled_date: &d.enrolled_at,
            mdm_profile_expiration_date: &d.mdm_profile_expires_at,
            time_zone: "Europe/Berlin",
            declarative_device_management_enabled: true,
            extension_attributes: EMPTY,
        },
        hardware: sections
            .contains(Section::Hardware)
            .then(|| MobileHardware {
                capacity_mb: d.capacity_mb,
                available_space_mb: d.available_mb,
                used_space_percentage: 100 - d.available_mb * 100 / d.capacity_mb.max(1),
                battery_level: d.battery_level,
                serial_number: &d.serial_number,
                wifi_mac_address: &d.wifi_mac,
                bluetooth_mac_address: &d.bluetooth_mac,
                modem_firmware_version: None,
                model: d.model.name,
                model_identifier: d.model.identifier,
                model_number: d.model.model_number,
                bluetooth_low_energy_capable: true,
                device_id: None,
                extension_attributes: EMPTY,
            }),
        user_and_location: sections.contains(Section::UserAndLocation).then(|| {
            MobileUserAndLocation {
                username,
                real_name,
                email_address: email,
                position,
                phone_number: "",
                department_id: "-1",
                building_id: d.building_id.to_string(),
                room: &d.room,
                building: &d.building,
                department: None,
                extension_attributes: EMPTY,
            }
        }),
        purchasing: sections
            .contains(Section::Purchasing)
            .then(|| MobilePurchasing {
                purchased: true,
                leased: false,
                po_number: &d.purchase.po_number,
                vendor: d.purchase.vendor,
                apple_care_id: "",
                purchase_price: d.purchase.price,
                purchasing_account: &d.purchase.account,
                po_date: format!("{}T00:00:00.000Z", d.purchase.po_date),
                warranty_expires_date: format!("{}T00:00:00.000Z", d.purchase.warranty_until),
                lease_expires_date: None,
                life_expectancy: d.purchase.life_expectancy,
                purchasing_contact: "",
                extension_attributes: EMPTY,
            }),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ComputerRecord<'a> {
    id: String,
    udid: &'a str,
    general: ComputerGeneral<'a>,
    hardware: Option<ComputerHardware<'a>>,
    user_and_location: Option<ComputerUserAndLocation<'a>>,
    purchasing: Option<ComputerPurchasing<'a>>,
    operating_system: Option<OperatingSystem<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ComputerGeneral<'a> {
    name: &'a str,
    last_ip_address: &'a str,
    last_reported_ip: &'a str,
    platform: &'static str,
    barcode1: Option<&'a str>,
    barcode2: Option<&'a str>,
    asset_tag: &'a str,
    supervised: bool,
    report_date: &'a str,
    last_contact_time: &'a str,
    last_enrolled_date: &'a str,
    initial_entry_date: &'a str,
    management_id: &'a str,
    site: Site<'a>,
    remote_management: RemoteManagement,
    enrolled_via_automated_device_enrollment: bool,
    user_approved_mdm: bool,
    declarative_device_management_enabled: bool,
    extension_attributes: &'static [()],
}

#[derive(Serialize)]
struct Site<'a> {
    id: String,
    name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RemoteManagement {
    managed: bool,
    management_username: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ComputerHardware<'a> {
    make: &'static str,
    model: &'a str,
    model_identifier: &'a str,
    serial_number: &'a str,
    processor_type: &'static str,
    processor_architecture: &'static str,
    mac_address: &'a str,
    alt_mac_address: Option<&'a str>,
    total_ram_megabytes: u32,
    battery_capacity_percent: Option<u32>,
    apple_silicon: bool,
}

/// Computers spell it `realname` and `email`, unlike mobile devices.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ComputerUserAndLocation<'a> {
    username: &'a str,
    realname: &'a str,
    email: &'a str,
    position: &'a str,
    phone: &'a str,
    department_id: &'static str,
    building_id: String,
    room: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ComputerPurchasing<'a> {
    leased: bool,
    purchased: bool,
    po_number: &'a str,
    po_date: String,
    vendor: &'a str,
    warranty_date: String,
    apple_care_id: &'a str,
    lease_date: Option<&'a str>,
    purchase_price: &'a str,
    life_expectancy: u32,
    purchasing_account: &'a str,
    purchasing_contact: &'a str,
    extension_attributes: &'static [()],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OperatingSystem<'a> {
    name: &'static str,
    version: &'a str,
    build: &'a str,
    supplemental_build_version: Option<&'a str>,
    rapid_security_response: Option<&'a str>,
    file_vault2_status: &'static str,
}

fn computer(d: &Device, sections: Sections) -> ComputerRecord<'_> {
    let (username, realname, email, position) = user_fields(d.user.as_ref());
    let apple_silicon = d.model.apple_silicon;
    ComputerRecord {
        id: d.jamf_id.to_string(),
        udid: &d.udid,
        general: ComputerGeneral {
            name: &d.display_name,
            last_ip_address: &d.ip_address,
            last_reported_ip: &d.ip_address,
            platform: "Mac",
            barcode1: None,
            barcode2: None,
            asset_tag: d.asset_tag.as_deref().unwrap_or(""),
            supervised: d.supervised,
            report_date: &d.last_inventory_at,
            last_contact_time: &d.last_inventory_at,
            last_enrolled_date: &d.enrolled_at,
            initial_entry_date: &d.enrolled_at[..10],
            management_id: &d.management_id,
            site: Site {
                id: d.school.site_id.to_string(),
                name: d.school.name,
            },
            remote_management: RemoteManagement {
                managed: true,
                management_username: "",
            },
            enrolled_via_automated_device_enrollment: true,
            user_approved_mdm: true,
            declarative_device_management_enabled: apple_silicon,
            extension_attributes: EMPTY,
        },
        hardware: sections
            .contains(Section::Hardware)
            .then(|| ComputerHardware {
                make: "Apple",
                model: d.model.name,
                model_identifier: d.model.identifier,
                serial_number: &d.serial_number,
                processor_type: if apple_silicon {
                    "Apple Silicon"
                } else {
                    "Intel Core i5"
                },
                processor_architecture: if apple_silicon { "arm64" } else { "x86_64" },
                mac_address: &d.wifi_mac,
                alt_mac_address: None,
                total_ram_megabytes: d.capacity_mb,
                battery_capacity_percent: (d.family == crate::generator::Family::MacBook)
                    .then_some(d.battery_level),
                apple_silicon,
            }),
        user_and_location: sections.contains(Section::UserAndLocation).then(|| {
            ComputerUserAndLocation {
                username,
                realname,
                email,
                position,
                phone: "",
                department_id: "-1",
                building_id: d.building_id.to_string(),
                room: &d.room,
            }
        }),
        purchasing: sections
            .contains(Section::Purchasing)
            .then(|| ComputerPurchasing {
                leased: false,
                purchased: true,
                po_number: &d.purchase.po_number,
                po_date: d.purchase.po_date.to_string(),
                vendor: d.purchase.vendor,
                warranty_date: d.purchase.warranty_until.to_string(),
                apple_care_id: "",
                lease_date: None,
                purchase_price: d.purchase.price,
                life_expectancy: d.purchase.life_expectancy,
                purchasing_account: &d.purchase.account,
                purchasing_contact: "",
                extension_attributes: EMPTY,
            }),
        operating_system: sections
            .contains(Section::OperatingSystem)
            .then(|| OperatingSystem {
                name: "macOS",
                version: &d.os_version,
                build: &d.os_build,
                supplemental_build_version: None,
                rapid_security_response: None,
                file_vault2_status: "ALL_ENCRYPTED",
            }),
    }
}
