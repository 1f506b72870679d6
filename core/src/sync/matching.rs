//! Matching a device record to the devices it may be: by serial number, else by UDID, IMEI or
//! Wi-Fi MAC, else by asset tag, and who carries which identifier (docs/sync.md, "Matching a
//! record to a device"). Pure: the device run loads the candidates and acts on the decision.

use std::collections::HashMap;

use uuid::Uuid;

use crate::identity;
use crate::store::merge::{HardwareId, NormalizedIds};

/// What to do with a record that has no live link yet.
pub(crate) enum Decision {
    Create {
        device_id: Uuid,
    },
    Attach {
        device_id: Uuid,
        replaces: Option<(Uuid, String)>,
    },
    Review {
        summary: String,
        candidates: Vec<Uuid>,
    },
}

/// Indexes of candidate devices by identifier, for one page. It holds identifiers in their
/// matching form (`MatchingRules::matching_ids`): a MAC that identifies no one is not in it.
#[derive(Default)]
pub(crate) struct CandidateIndex {
    by_serial: HashMap<String, Vec<Uuid>>,
    by_other: HashMap<(HardwareId, String), Vec<Uuid>>,
    /// Devices by asset tag, with their serial number.
    by_asset_tag: HashMap<String, Vec<(Uuid, Option<String>)>>,
    /// Each indexed device's serial number, which decides whether another identifier it
    /// carries is its own or shared with devices of other serials.
    serial_of: HashMap<Uuid, Option<String>>,
}

/// What matching found for a record.
pub(crate) struct Matched {
    pub found: Vec<Uuid>,
    pub matched_by: &'static str,
    /// Identifiers of the record that devices with different serial numbers carry (the record
    /// included, if it has a serial): they matched nothing, and are reported once each.
    pub shared: Vec<(HardwareId, String, Vec<Uuid>)>,
}

impl CandidateIndex {
    pub fn add(&mut self, device_id: Uuid, ids: &NormalizedIds, asset_tag: Option<&str>) {
        if let Some(serial) = &ids.serial_number {
            push_unique(self.by_serial.entry(serial.clone()).or_default(), device_id);
        }
        for id in OTHER_IDS {
            if let Some(value) = ids.get(id) {
                push_unique(
                    self.by_other.entry((id, value.to_string())).or_default(),
                    device_id,
                );
            }
        }
        if let Some(tag) = asset_tag_key(asset_tag) {
            let devices = self.by_asset_tag.entry(tag).or_default();
            if !devices.iter().any(|(known, _)| *known == device_id) {
                devices.push((device_id, ids.serial_number.clone()));
            }
        }
        self.serial_of
            .entry(device_id)
            .or_insert_with(|| ids.serial_number.clone());
    }

    /// By serial; else by UDID, IMEI or MAC; else by asset tag (Inventarnummer), which is
    /// unique per authority and the only key some sources share with the MDMs (UCS@school
    /// computer objects carry a MAC and an inventory number, never a serial).
    ///
    /// A serial outranks every other identifier: a UDID, IMEI or MAC that devices with
    /// different serials carry (the record's own serial counted) is no identifier at all, so it
    /// matches nothing and is reported as shared; two serials that differ outweigh an equal
    /// asset tag too (a sticker on the wrong device, not a match). `ids` is in matching form.
    pub fn candidates(&self, ids: &NormalizedIds, asset_tag: Option<&str>) -> Matched {
        if let Some(serial) = &ids.serial_number {
            if let Some(found) = self.by_serial.get(serial) {
                return Matched {
                    found: found.clone(),
                    matched_by: "serial number",
                    shared: Vec::new(),
                };
            }
        }
        let mut found = Vec::new();
        let mut shared = Vec::new();
        for id in OTHER_IDS {
            let Some(value) = ids.get(id) else {
                continue;
            };
            let Some(carriers) = self.by_other.get(&(id, value.to_string())) else {
                continue;
            };
            let serials = carriers
                .iter()
                .map(|device_id| {
                    self.serial_of
                        .get(device_id)
                        .and_then(|serial| serial.as_deref())
                })
                .chain([ids.serial_number.as_deref()]);
            if identity::serials_agree(serials) {
                for device_id in carriers {
                    push_unique(&mut found, *device_id);
                }
            } else {
                shared.push((id, value.to_string(), carriers.clone()));
            }
        }
        if found.is_empty() {
            let by_tag = asset_tag_key(asset_tag).and_then(|tag| self.by_asset_tag.get(&tag));
            let compatible: Vec<Uuid> = by_tag
                .into_iter()
                .flatten()
                .filter(|(_, serial)| {
                    serial.is_none() || ids.serial_number.is_none() || *serial == ids.serial_number
                })
                .map(|(device_id, _)| *device_id)
                .collect();
            if !compatible.is_empty() {
                return Matched {
                    found: compatible,
                    matched_by: "asset tag",
                    shared,
                };
            }
        }
        Matched {
            found,
            matched_by: "UDID, IMEI or Wi-Fi MAC",
            shared,
        }
    }
}

/// The hardware identifiers besides the serial number, which match only when no serial does.
const OTHER_IDS: [HardwareId; 3] = [HardwareId::Udid, HardwareId::Imei, HardwareId::WifiMac];

/// Who carries which hardware identifier, with the label messages name the carrier by and the
/// carrier's serial number (which tells a shared identifier from a clash).
#[derive(Default)]
pub(crate) struct Carriers(HashMap<(HardwareId, String), Vec<Carrier>>);

#[derive(Clone)]
pub(crate) struct Carrier {
    pub device_id: Uuid,
    pub label: String,
    pub serial: Option<String>,
}

impl Carriers {
    pub fn add(&mut self, ids: &NormalizedIds, device_id: Uuid, label: &str) {
        for id in HardwareId::ALL {
            if let Some(value) = ids.get(id) {
                self.add_one(id, value, device_id, label, ids.serial_number.as_deref());
            }
        }
    }

    pub fn add_one(
        &mut self,
        id: HardwareId,
        value: &str,
        device_id: Uuid,
        label: &str,
        serial: Option<&str>,
    ) {
        let carriers = self.0.entry((id, value.to_string())).or_default();
        if !carriers.iter().any(|known| known.device_id == device_id) {
            carriers.push(Carrier {
                device_id,
                label: label.to_string(),
                serial: serial.map(str::to_string),
            });
        }
    }

    /// The devices other than `device_id` that carry `value` as `id`.
    pub fn others(&self, id: HardwareId, value: &str, device_id: Uuid) -> Vec<Carrier> {
        self.0
            .get(&(id, value.to_string()))
            .into_iter()
            .flatten()
            .filter(|carrier| carrier.device_id != device_id)
            .cloned()
            .collect()
    }
}

/// An asset tag in the form devices are matched by (trimmed; empty means none).
pub(crate) fn asset_tag_key(asset_tag: Option<&str>) -> Option<String> {
    asset_tag
        .map(str::trim)
        .filter(|tag| !tag.is_empty())
        .map(str::to_string)
}

pub(crate) fn push_unique(list: &mut Vec<Uuid>, device_id: Uuid) {
    if !list.contains(&device_id) {
        list.push(device_id);
    }
}
