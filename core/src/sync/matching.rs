//! Matching a record to what it may be: a device record to devices by serial number, else by
//! UDID, IMEI or Wi-Fi MAC, else by asset tag, with who carries which identifier (docs/sync.md,
//! "Matching a record to a device"); a person record to persons by the directory's ids, email,
//! username (docs/persons.md). Pure: the runs load the candidates and act on what is found.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use crate::identity;
use crate::person::PersonRecord;
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

/// Adds `item` to `list` unless it is there already (lists of candidates are short).
pub(crate) fn push_unique<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// A person of the authority as the run knows it, loaded at the start and extended by the run.
#[derive(Debug, Clone, Default)]
pub(crate) struct KnownPerson {
    pub person_id: Uuid,
    pub username: Option<String>,
    pub email: Option<String>,
    pub record_uid: Option<String>,
    pub record_source_uid: Option<String>,
    pub directory_uuid: Option<String>,
    pub entra_object_id: Option<String>,
    pub left: bool,
    /// Linked to a directory source other than the one running.
    pub linked_elsewhere: bool,
    /// Linked to the source running, live or missing.
    pub linked_by_this_source: bool,
}

/// The persons a record may be, as `PersonIndex::candidates` finds them.
pub(crate) struct Candidates {
    pub found: Vec<usize>,
    pub how: &'static str,
    /// Persons that share only the login with the record and are linked to other directories
    /// alone: logins are unique on one server only, so that is no evidence of one person.
    pub held: Vec<usize>,
}

/// Lookup tables over the known persons, each mapping a normalized key to person indexes.
#[derive(Default)]
pub(crate) struct PersonIndex {
    pub persons: Vec<KnownPerson>,
    pub by_record: HashMap<(String, String), Vec<usize>>,
    pub by_directory_uuid: HashMap<String, Vec<usize>>,
    pub by_entra: HashMap<String, Vec<usize>>,
    pub by_email: HashMap<String, Vec<usize>>,
    pub by_username: HashMap<String, Vec<usize>>,
    pub by_id: HashMap<Uuid, usize>,
}

fn key(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(str::to_lowercase)
}

impl PersonIndex {
    pub fn add(&mut self, person: KnownPerson) -> usize {
        let index = self.persons.len();
        self.index(index, &person);
        self.by_id.insert(person.person_id, index);
        self.persons.push(person);
        index
    }

    pub fn index(&mut self, index: usize, person: &KnownPerson) {
        if let (Some(source_uid), Some(record_uid)) =
            (key(&person.record_source_uid), key(&person.record_uid))
        {
            push_unique(
                self.by_record.entry((source_uid, record_uid)).or_default(),
                index,
            );
        }
        if let Some(uuid) = key(&person.directory_uuid) {
            push_unique(self.by_directory_uuid.entry(uuid).or_default(), index);
        }
        if let Some(entra) = key(&person.entra_object_id) {
            push_unique(self.by_entra.entry(entra).or_default(), index);
        }
        if let Some(email) = key(&person.email) {
            push_unique(self.by_email.entry(email).or_default(), index);
        }
        if let Some(username) = key(&person.username) {
            push_unique(self.by_username.entry(username).or_default(), index);
        }
    }

    /// The persons `record` may be, by the first key that finds anyone, and which key that was.
    /// Immutable ids come first; a name is never a key. By email and username, persons this
    /// source already reports under another id are no candidates: the directory itself says
    /// they are someone else (siblings sharing a parent's email address, say). By username,
    /// persons linked only to other directories are held back, not candidates: two servers
    /// may each have a different `vorname.nachname`.
    pub fn candidates(&self, record: &PersonRecord, linked_here: &HashSet<Uuid>) -> Candidates {
        let ids = &record.ids;
        let levels: [(Option<&Vec<usize>>, &'static str); 5] = [
            (
                key(&ids.source_uid)
                    .zip(key(&ids.record_uid))
                    .and_then(|pair| self.by_record.get(&pair)),
                "record id",
            ),
            (
                key(&ids.directory_uuid).and_then(|uuid| self.by_directory_uuid.get(&uuid)),
                "directory uuid",
            ),
            (
                key(&ids.entra_object_id).and_then(|entra| self.by_entra.get(&entra)),
                "Entra object id",
            ),
            (
                key(&record.email).and_then(|email| self.by_email.get(&email)),
                "email",
            ),
            (
                key(&record.username).and_then(|username| self.by_username.get(&username)),
                "username",
            ),
        ];
        for (level, (found, how)) in levels.into_iter().enumerate() {
            let weak = level >= 3;
            let (found, held): (Vec<usize>, Vec<usize>) = found
                .into_iter()
                .flatten()
                .copied()
                .filter(|index| !weak || !linked_here.contains(&self.persons[*index].person_id))
                .partition(|index| {
                    let person = &self.persons[*index];
                    level < 4 || person.linked_by_this_source || !person.linked_elsewhere
                });
            if !found.is_empty() || !held.is_empty() {
                return Candidates { found, how, held };
            }
        }
        Candidates {
            found: Vec::new(),
            how: "",
            held: Vec::new(),
        }
    }
}
