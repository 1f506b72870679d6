//! Deterministic fleet of Apple devices for Musterstadt, generated device by device.
//!
//! Device `i` is a pure function of `(seed, i)`: each device draws from its own ChaCha8 stream,
//! so a page of 2000 devices out of 200,000 costs 2000 generations, not 200,000. Only a small
//! index (school, family, running number and Jamf id per device, 16 bytes each) is built up
//! front, because Jamf ids and per-school running numbers depend on the devices before.
//!
//! Epochs model what changes between two sync runs: in each epoch step a fixed number of devices
//! vanish, re-enroll (same serial and UDID, new Jamf id) or get a newer OS.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{Datelike, Duration, Months, NaiveDate};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::musterstadt::{self, login_part, School, SchoolType, FIRST_NAMES, LAST_NAMES};

/// Number of devices of the Musterstadt demo fleet.
pub const MUSTERSTADT_DEVICES: usize = 5000;

/// "Today" for the generated data: warranty ends, inventory dates and enrolments are relative to
/// it, so the fleet does not change with the wall clock.
pub fn reference_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 23).expect("2026-11-23 is a valid date")
}

/// Which Jamf inventory a device belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// `GET /api/v2/mobile-devices/detail`, id field `mobileDeviceId`.
    Mobile,
    /// `GET /api/v4/computers-inventory`, id field `id`.
    Computer,
}

impl DeviceKind {
    fn slot(self) -> usize {
        match self {
            DeviceKind::Mobile => 0,
            DeviceKind::Computer => 1,
        }
    }
}

/// Product line; decides the kind and the short name used in display names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    IPad,
    MacBook,
    IMac,
}

impl Family {
    pub fn kind(self) -> DeviceKind {
        match self {
            Family::IPad => DeviceKind::Mobile,
            Family::MacBook | Family::IMac => DeviceKind::Computer,
        }
    }

    /// The part of the display name, as in `GS-Lindenweg-iPad-017`.
    pub fn short_name(self) -> &'static str {
        match self {
            Family::IPad => "iPad",
            Family::MacBook => "MB",
            Family::IMac => "iMac",
        }
    }

    fn code(self) -> u8 {
        match self {
            Family::IPad => 0,
            Family::MacBook => 1,
            Family::IMac => 2,
        }
    }

    fn from_code(code: u8) -> Family {
        match code {
            0 => Family::IPad,
            1 => Family::MacBook,
            _ => Family::IMac,
        }
    }
}

/// One Apple model as Jamf reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Model {
    pub name: &'static str,
    pub identifier: &'static str,
    /// Order number as iPads report it (`hardware.modelNumber`); empty for Macs.
    pub model_number: &'static str,
    pub family: Family,
    /// School price in EUR, as Jamf's string-typed `purchasePrice`.
    pub price: &'static str,
    /// Years in which schools bought this model.
    first_year: i32,
    last_year: i32,
    /// Relative frequency among the models bought in the same year.
    weight: u32,
    /// Newest OS major version the model runs.
    max_os_major: u32,
    /// Chip part of the UDID (`00008030-...`); `None` for the old 40-hex-digit UDIDs.
    udid_chip: Option<&'static str>,
    pub apple_silicon: bool,
}

#[allow(clippy::too_many_arguments)] // one row of the model table, read as a line
const fn model(
    name: &'static str,
    identifier: &'static str,
    model_number: &'static str,
    family: Family,
    price: &'static str,
    years: (i32, i32),
    weight: u32,
    max_os_major: u32,
    udid_chip: Option<&'static str>,
) -> Model {
    Model {
        name,
        identifier,
        model_number,
        family,
        price,
        first_year: years.0,
        last_year: years.1,
        weight,
        max_os_major,
        udid_chip,
        // The catalogue's Intel Macs are exactly those that stop before macOS 26.
        apple_silicon: max_os_major >= 26,
    }
}

#[rustfmt::skip]
const MODELS: &[Model] = &[
    model("iPad (7th generation)", "iPad7,11", "MW742FD", Family::IPad, "369.00", (2019, 2020), 10, 18, None),
    model("iPad (8th generation)", "iPad11,6", "MYL92FD", Family::IPad, "339.00", (2020, 2021), 10, 26, Some("00008020")),
    model("iPad (9th generation)", "iPad12,1", "MK2K3FD", Family::IPad, "329.00", (2021, 2024), 12, 26, Some("00008030")),
    model("iPad (10th generation)", "iPad13,18", "MPQ03FD", Family::IPad, "449.00", (2023, 2025), 10, 26, Some("00008101")),
    model("iPad (A16)", "iPad15,7", "MD3Y4FD", Family::IPad, "379.00", (2025, 2026), 10, 26, Some("00008120")),
    model("iPad Air (5th generation)", "iPad13,16", "MM9C3FD", Family::IPad, "599.00", (2022, 2024), 3, 26, Some("00008103")),
    model("iPad Air 11-inch (M2)", "iPad14,8", "MUWC3FD", Family::IPad, "649.00", (2024, 2025), 3, 26, Some("00008112")),
    model("MacBook Air (Retina, 13-inch, 2020)", "MacBookAir9,1", "", Family::MacBook, "1099.00", (2019, 2020), 10, 15, None),
    model("MacBook Air (M1, 2020)", "MacBookAir10,1", "", Family::MacBook, "999.00", (2021, 2022), 10, 26, None),
    model("MacBook Air (M2, 2022)", "Mac14,2", "", Family::MacBook, "1099.00", (2022, 2024), 10, 26, None),
    model("MacBook Air (13-inch, M3, 2024)", "Mac15,12", "", Family::MacBook, "1199.00", (2024, 2025), 10, 26, None),
    model("MacBook Air (13-inch, M4, 2025)", "Mac16,12", "", Family::MacBook, "1049.00", (2025, 2026), 10, 26, None),
    model("iMac (Retina 4K, 21.5-inch, 2019)", "iMac19,2", "", Family::IMac, "1299.00", (2019, 2021), 10, 15, None),
    model("iMac (24-inch, M1, 2021)", "iMac21,1", "", Family::IMac, "1449.00", (2021, 2023), 10, 26, None),
    model("iMac (24-inch, M3, 2023)", "Mac15,4", "", Family::IMac, "1499.00", (2023, 2024), 10, 26, None),
    model("iMac (24-inch, M4, 2024)", "Mac16,3", "", Family::IMac, "1499.00", (2024, 2026), 10, 26, None),
];

/// Every model the generator uses.
pub fn models() -> &'static [Model] {
    MODELS
}

/// OS releases in the field at the reference date, oldest first: (major, version, build).
const IPADOS: &[(u32, &str, &str)] = &[
    (16, "16.7.10", "20H350"),
    (17, "17.7.10", "21H450"),
    (18, "18.6.2", "22G100"),
    (18, "18.7.2", "22H124"),
    (26, "26.0.1", "23A355"),
    (26, "26.1", "23B85"),
];
const MACOS: &[(u32, &str, &str)] = &[
    (13, "13.7.8", "22H730"),
    (14, "14.8.1", "23J30"),
    (15, "15.7.2", "24G325"),
    (26, "26.0.1", "25A362"),
    (26, "26.1", "25B78"),
];
/// Newer releases come up more often: schools update, if late.
const OS_WEIGHTS: &[u32] = &[1, 2, 4, 6, 10, 22];

/// Purchases per year, relative: DigitalPakt and the 2020 emergency programmes made 2020 to
/// 2022 the big years.
const PURCHASE_YEARS: &[(i32, u32)] = &[
    (2019, 4),
    (2020, 16),
    (2021, 22),
    (2022, 18),
    (2023, 12),
    (2024, 9),
    (2025, 9),
    (2026, 7),
];

const VENDORS: &[&str] = &[
    "Systemhaus Beispiel GmbH",
    "Schul-IT Nord GmbH",
    "Apfelwerk Bildung GmbH & Co. KG",
    "Medienzentrum Service GmbH",
];

/// Apple's serial alphabet: digits and capitals without `I` and `O`.
const SERIAL_ALPHABET: &[u8; 34] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
const MOBILE_SERIAL_PREFIXES: &[&str] = &["DMP", "F9F", "GG7", "H4T", "DLX"];
const MAC_SERIAL_PREFIXES: &[&str] = &["C02", "FVF", "C07", "H7W"];
const APPLE_OUIS: &[&str] = &["a4:83:e7", "3c:22:fb", "f0:18:98", "88:66:5a", "bc:d0:74"];

/// Stream numbers: the index pass and the device details read separate ChaCha streams, so the
/// index pass stays cheap and the details can change without renumbering devices.
const STREAM_SLOT: u64 = 0;
const STREAM_DETAIL: u64 = 1 << 56;
const STREAM_EPOCH: u64 = 2 << 56;

/// How many devices change in each epoch step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochChanges {
    /// Devices that disappear from the MDM (retired, lost, moved to another MDM).
    pub vanish: usize,
    /// Devices that are wiped and enrolled again: same serial and UDID, new Jamf id.
    pub reenroll: usize,
    /// Devices that install a newer OS.
    pub os_updates: usize,
}

impl EpochChanges {
    /// About half a percent vanish, 0.4 % re-enroll, 5 % update per step.
    pub fn proportional(device_count: usize) -> EpochChanges {
        EpochChanges {
            vanish: (device_count / 200).max(1),
            reenroll: (device_count / 250).max(1),
            os_updates: device_count / 20,
        }
    }

    fn total(&self) -> usize {
        self.vanish + self.reenroll + self.os_updates
    }
}

/// Per device, what the index pass decides; 16 bytes so 200,000 devices take 3.2 MB.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Index into the school table.
    school: u8,
    family: u8,
    /// Running number of the family within the school (the `017` in `GS-Lindenweg-iPad-017`).
    ordinal: u32,
    /// Jamf id at epoch 0, counted per kind.
    id: u32,
}

struct FleetData {
    seed: u64,
    changes: EpochChanges,
    base_rng: ChaCha8Rng,
    schools: &'static [School],
    /// Running sum of pupils per school, for a pupil-proportional choice of school.
    cumulative_pupils: Vec<u32>,
    /// Id of each school's first building.
    first_building: Vec<u32>,
    slots: Vec<Slot>,
    /// Highest epoch-0 id per kind; re-enrolled devices get ids above it.
    max_id: [u32; 2],
}

/// A deterministic fleet description: cheap to clone, generates devices on demand.
///
/// Same seed and count give byte-identical devices. Call [`Fleet::snapshot`] to see the fleet
/// as it is in an epoch (which devices exist, with which ids).
#[derive(Clone)]
pub struct Fleet {
    data: Arc<FleetData>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("seed", &self.data.seed)
            .field("devices", &self.data.slots.len())
            .field("changes", &self.data.changes)
            .finish()
    }
}

impl Fleet {
    /// A fleet of `device_count` devices spread over the Musterstadt schools, with
    /// [`EpochChanges::proportional`] changes per epoch step.
    pub fn new(seed: u64, device_count: usize) -> Fleet {
        Fleet::with_changes(seed, device_count, EpochChanges::proportional(device_count))
    }

    /// The demo fleet: [`MUSTERSTADT_DEVICES`] devices.
    pub fn musterstadt(seed: u64) -> Fleet {
        Fleet::new(seed, MUSTERSTADT_DEVICES)
    }

    /// A fleet with explicit epoch changes.
    ///
    /// # Panics
    /// If `device_count` exceeds `u32::MAX` (ids and streams are 32-bit).
    pub fn with_changes(seed: u64, device_count: usize, changes: EpochChanges) -> Fleet {
        assert!(
            u32::try_from(device_count).is_ok(),
            "device_count must fit in u32"
        );
        let schools = musterstadt::school_table();
        let cumulative_pupils = schools
            .iter()
            .scan(0u32, |sum, s| {
                *sum += s.pupils;
                Some(*sum)
            })
            .collect::<Vec<_>>();
        let first_building = schools
            .iter()
            .scan(1u32, |next, s| {
                let first = *next;
                *next += s.building_parts().len() as u32;
                Some(first)
            })
            .collect();
        let base_rng = ChaCha8Rng::seed_from_u64(seed);
        let mut data = FleetData {
            seed,
            changes,
            base_rng,
            schools,
            cumulative_pupils,
            first_building,
            slots: Vec::with_capacity(device_count),
            max_id: [0, 0],
        };
        let mut ordinals: HashMap<(u8, u8), u32> = HashMap::new();
        let mut next_id = [1u32, 1u32];
        for index in 0..device_count as u32 {
            let mut rng = data.rng(STREAM_SLOT | u64::from(index));
            let school = data.pick_school(&mut rng);
            let family = pick_family(data.schools[school].school_type, &mut rng);
            // Jamf ids have holes where devices were deleted long ago.
            let gap = if rng.random_ratio(1, 25) {
                rng.random_range(1..=4u32)
            } else {
                0
            };
            let kind = family.kind().slot();
            let id = next_id[kind] + gap;
            next_id[kind] = id + 1;
            let ordinal = ordinals.entry((school as u8, family.code())).or_insert(0);
            *ordinal += 1;
            data.slots.push(Slot {
                school: school as u8,
                family: family.code(),
                ordinal: *ordinal,
                id,
            });
        }
        data.max_id = [next_id[0] - 1, next_id[1] - 1];
        Fleet {
            data: Arc::new(data),
        }
    }

    pub fn seed(&self) -> u64 {
        self.data.seed
    }

    /// Number of devices at epoch 0.
    pub fn len(&self) -> usize {
        self.data.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.slots.is_empty()
    }

    pub fn changes(&self) -> EpochChanges {
        self.data.changes
    }

    /// Device `index` as it is at epoch 0, or `None` past the end.
    pub fn device(&self, index: usize) -> Option<Device> {
        let index = u32::try_from(index).ok()?;
        self.data
            .slots
            .get(index as usize)
            .map(|slot| self.data.generate(index, *slot, &DeviceState::default()))
    }

    /// The fleet as it is in `epoch`: epoch 0 is the generated fleet, each later epoch applies
    /// one more step of [`EpochChanges`]. Costs one pass over the index, no device generation.
    pub fn snapshot(&self, epoch: u32) -> FleetSnapshot {
        let data = &self.data;
        let count = data.slots.len() as u32;
        let mut states: HashMap<u32, DeviceState> = HashMap::new();
        let mut vanished: HashSet<u32> = HashSet::new();
        let mut next_id = [data.max_id[0] + 1, data.max_id[1] + 1];
        for step in 1..=epoch {
            let mut rng = data.rng(STREAM_EPOCH | u64::from(step));
            let present = count as usize - vanished.len();
            let wanted = data.changes.total().min(present);
            let picked = pick_distinct(&mut rng, count, wanted, &vanished);
            let (gone, rest) = picked.split_at(data.changes.vanish.min(picked.len()));
            let (reenrolled, updated) = rest.split_at(data.changes.reenroll.min(rest.len()));
            for &index in gone {
                vanished.insert(index);
            }
            for &index in reenrolled {
                let kind = Family::from_code(data.slots[index as usize].family)
                    .kind()
                    .slot();
                let state = states.entry(index).or_default();
                state.id = Some(next_id[kind]);
                state.enrolled_in_epoch = step;
                next_id[kind] += 1;
            }
            for &index in updated {
                states.entry(index).or_default().os_updates += 1;
            }
        }
        let mut lists: [Vec<(u32, u32)>; 2] = [Vec::new(), Vec::new()];
        let mut moved: [Vec<(u32, u32)>; 2] = [Vec::new(), Vec::new()];
        for (index, slot) in data.slots.iter().enumerate() {
            let index = index as u32;
            if vanished.contains(&index) {
                continue;
            }
            let kind = Family::from_code(slot.family).kind().slot();
            match states.get(&index).and_then(|s| s.id) {
                Some(new_id) => moved[kind].push((new_id, index)),
                None => lists[kind].push((slot.id, index)),
            }
        }
        for (list, mut moved) in lists.iter_mut().zip(moved) {
            moved.sort_unstable();
            list.extend(moved);
        }
        let [mobile, computers] = lists;
        FleetSnapshot {
            fleet: self.clone(),
            epoch,
            mobile,
            computers,
            states,
            vanished,
        }
    }
}

/// What the epochs changed about one device.
#[derive(Debug, Clone, Copy, Default)]
struct DeviceState {
    /// New Jamf id after a re-enrolment.
    id: Option<u32>,
    /// Epoch step of the last re-enrolment (0: never).
    enrolled_in_epoch: u32,
    os_updates: u32,
}

/// `wanted` distinct device indices below `count`, none of them in `excluded`.
fn pick_distinct(
    rng: &mut ChaCha8Rng,
    count: u32,
    wanted: usize,
    excluded: &HashSet<u32>,
) -> Vec<u32> {
    let present = count as usize - excluded.len();
    if wanted * 2 > present {
        // Rejection sampling would spin; shuffle the survivors instead.
        let mut all: Vec<u32> = (0..count).filter(|i| !excluded.contains(i)).collect();
        let (chosen, _) = all.partial_shuffle(rng, wanted);
        return chosen.to_vec();
    }
    let mut seen = HashSet::with_capacity(wanted);
    let mut out = Vec::with_capacity(wanted);
    while out.len() < wanted {
        let index = rng.random_range(0..count);
        if !excluded.contains(&index) && seen.insert(index) {
            out.push(index);
        }
    }
    out
}

/// The fleet as served in one epoch: which devices exist and under which ids, sorted by id.
#[derive(Debug)]
pub struct FleetSnapshot {
    fleet: Fleet,
    epoch: u32,
    /// (Jamf id, device index), ascending by id.
    mobile: Vec<(u32, u32)>,
    computers: Vec<(u32, u32)>,
    states: HashMap<u32, DeviceState>,
    vanished: HashSet<u32>,
}

impl FleetSnapshot {
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// Devices of `kind` present in this epoch (Jamf's `totalCount`).
    pub fn count(&self, kind: DeviceKind) -> usize {
        self.list(kind).len()
    }

    /// Devices of both kinds present in this epoch.
    pub fn total(&self) -> usize {
        self.mobile.len() + self.computers.len()
    }

    /// Page `page` (0-based) of `page_size` devices of `kind`, in ascending id order; empty past
    /// the end.
    pub fn page(
        &self,
        kind: DeviceKind,
        page: usize,
        page_size: usize,
    ) -> impl ExactSizeIterator<Item = Device> + '_ {
        let list = self.list(kind);
        list[page_range(list.len(), page, page_size)]
            .iter()
            .map(move |&(_, index)| self.generate(index))
    }

    /// Every present device of `kind`, in ascending id order, generated one at a time.
    pub fn devices(&self, kind: DeviceKind) -> impl ExactSizeIterator<Item = Device> + '_ {
        self.list(kind)
            .iter()
            .map(move |&(_, index)| self.generate(index))
    }

    /// Device `index` as it is in this epoch; `None` if it vanished or does not exist.
    pub fn device(&self, index: usize) -> Option<Device> {
        let index = u32::try_from(index).ok()?;
        if self.vanished.contains(&index) || index as usize >= self.fleet.len() {
            return None;
        }
        Some(self.generate(index))
    }

    fn list(&self, kind: DeviceKind) -> &[(u32, u32)] {
        match kind {
            DeviceKind::Mobile => &self.mobile,
            DeviceKind::Computer => &self.computers,
        }
    }

    fn generate(&self, index: u32) -> Device {
        let data = &self.fleet.data;
        let state = self.states.get(&index).copied().unwrap_or_default();
        data.generate(index, data.slots[index as usize], &state)
    }
}

/// The index range of page `page` (0-based) of `page_size` items out of `len`; empty past the
/// end, never out of bounds.
pub(crate) fn page_range(len: usize, page: usize, page_size: usize) -> std::ops::Range<usize> {
    let start = page.saturating_mul(page_size).min(len);
    start..start.saturating_add(page_size).min(len)
}

/// The person a device is assigned to (Jamf "User and Location").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceUser {
    pub username: String,
    pub real_name: String,
    pub email: String,
    /// `Lehrkraft` for teachers, empty for pupils.
    pub position: &'static str,
}

/// Purchasing data, as the Schulträger's procurement entered it into Jamf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    pub po_number: String,
    pub po_date: NaiveDate,
    pub vendor: &'static str,
    /// EUR with two decimals, e.g. `329.00`.
    pub price: &'static str,
    /// Last day of the warranty (2 to 5 years after purchase).
    pub warranty_until: NaiveDate,
    /// Years.
    pub life_expectancy: u32,
    /// Funding programme or budget, e.g. `DigitalPakt`; often empty.
    pub account: String,
}

/// One generated device, vendor-neutral; `jamf_pro` renders it as Jamf JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Position in the fleet (stable across epochs).
    pub index: u32,
    pub family: Family,
    /// `mobileDeviceId` or computer `id` in this epoch.
    pub jamf_id: u32,
    pub school: School,
    pub building_id: u32,
    pub building: String,
    pub room: String,
    pub display_name: String,
    pub asset_tag: Option<String>,
    pub serial_number: String,
    pub udid: String,
    pub wifi_mac: String,
    pub bluetooth_mac: String,
    pub model: Model,
    pub os_version: String,
    pub os_build: String,
    pub ip_address: String,
    /// iPads: storage in MB; Macs: memory in MB.
    pub capacity_mb: u32,
    pub available_mb: u32,
    pub battery_level: u32,
    pub management_id: String,
    /// `2023-09-01T08:02:11.000Z`.
    pub enrolled_at: String,
    /// Two-year MDM profile lifetime, renewed: always after the reference date.
    pub mdm_profile_expires_at: String,
    pub last_inventory_at: String,
    pub supervised: bool,
    pub user: Option<DeviceUser>,
    pub purchase: Purchase,
}

impl Device {
    pub fn kind(&self) -> DeviceKind {
        self.family.kind()
    }
}

impl FleetData {
    fn rng(&self, stream: u64) -> ChaCha8Rng {
        let mut rng = self.base_rng.clone();
        rng.set_stream(stream);
        rng
    }

    fn pick_school(&self, rng: &mut ChaCha8Rng) -> usize {
        let total = self.cumulative_pupils.last().copied().unwrap_or(1);
        let ticket = rng.random_range(0..total);
        self.cumulative_pupils.partition_point(|&sum| sum <= ticket)
    }

    fn generate(&self, index: u32, slot: Slot, state: &DeviceState) -> Device {
        let mut rng = self.rng(STREAM_DETAIL | u64::from(index));
        let school = self.schools[slot.school as usize];
        let family = Family::from_code(slot.family);
        let seed_mix = splitmix64(self.seed);

        let year = weighted(&mut rng, PURCHASE_YEARS, |&(_, w)| w).0;
        // Devices come in orders: all devices of one order share model, date, vendor and terms.
        let batch = rng.random_range(0..4u64);
        let order = splitmix64(
            seed_mix
                ^ (u64::from(school.site_id) << 40)
                ^ ((year as u64) << 16)
                ^ (u64::from(slot.family) << 8)
                ^ batch,
        );
        let model = pick_model(family, year, order);
        let purchase = purchase(family, year, order, model);

        let os_list = match family {
            Family::IPad => IPADOS,
            Family::MacBook | Family::IMac => MACOS,
        };
        let runnable: Vec<_> = os_list
            .iter()
            .zip(OS_WEIGHTS)
            .filter(|((major, _, _), _)| *major <= model.max_os_major)
            .collect();
        let &((_, version, build), _) = weighted(&mut rng, &runnable, |(_, w)| **w);
        let (os_version, os_build) = if state.os_updates > 0 {
            os_update(model, family, state.os_updates)
        } else {
            (version.to_string(), build.to_string())
        };

        let asset_tag = rng
            .random_ratio(92, 100)
            .then(|| format!("INV-{year}-{:05}", index + 1));

        let has_user = match family {
            Family::IPad => rng.random_ratio(27, 100),
            Family::MacBook => rng.random_ratio(75, 100),
            Family::IMac => rng.random_ratio(15, 100),
        };
        let teacher = match family {
            Family::IPad => school.school_type == SchoolType::Grundschule || rng.random_bool(0.3),
            Family::MacBook | Family::IMac => !rng.random_ratio(1, 10),
        };
        let first = FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len() as u32) as usize];
        let last = LAST_NAMES[rng.random_range(0..LAST_NAMES.len() as u32) as usize];
        let user = has_user.then(|| device_user(first, last, teacher, &school));

        let parts = school.building_parts();
        let part = if rng.random_ratio(6, 10) {
            0
        } else {
            rng.random_range(0..parts.len() as u32) as usize
        };
        let building_id = self.first_building[slot.school as usize] + part as u32;
        let building = format!("{}, {}", school.name, parts[part]);
        let room = room(&mut rng, family, teacher && has_user);

        let (capacity_mb, available_mb) = match family {
            Family::IPad => {
                let capacity = if rng.random_ratio(3, 4) {
                    61_035
                } else {
                    244_140
                };
                (capacity, rng.random_range(capacity / 10..capacity * 9 / 10))
            }
            Family::MacBook | Family::IMac => {
                let ram = if rng.random_ratio(2, 3) { 8192 } else { 16_384 };
                (ram, 0)
            }
        };
        let battery_level = rng.random_range(5..=100);

        let serial_prefixes = match family {
            Family::IPad => MOBILE_SERIAL_PREFIXES,
            Family::MacBook | Family::IMac => MAC_SERIAL_PREFIXES,
        };
        let prefix = serial_prefixes[rng.random_range(0..serial_prefixes.len() as u32) as usize];
        let serial_tail: String = (0..3)
            .map(|_| SERIAL_ALPHABET[rng.random_range(0..34u32) as usize] as char)
            .collect();
        let serial_number = format!("{prefix}{}{serial_tail}", serial_core(self.seed, index));

        let unique = scramble56(u64::from(index).wrapping_add(seed_mix));
        let noise = rng.random::<u64>();
        let udid = match (family, model.udid_chip) {
            (Family::IPad, Some(chip)) => format!("{chip}-00{unique:014X}"),
            (Family::IPad, None) => format!(
                "{unique:014x}{noise:016x}{:010x}",
                rng.random::<u64>() & 0xff_ffff_ffff
            ),
            _ => {
                let hex = format!("{unique:014X}{noise:016X}{:02X}", rng.random::<u8>());
                format!(
                    "{}-{}-{}-{}-{}",
                    &hex[0..8],
                    &hex[8..12],
                    &hex[12..16],
                    &hex[16..20],
                    &hex[20..32]
                )
            }
        };
        let oui = APPLE_OUIS[rng.random_range(0..APPLE_OUIS.len() as u32) as usize];
        let nic = scramble24(u64::from(index), seed_mix);
        let wifi_mac = mac(oui, nic);
        let bluetooth_mac = mac(oui, (nic + 1) & 0xff_ffff);

        let ip_address = format!(
            "10.{}.{}.{}",
            20 + school.site_id,
            part as u32 * 16 + rng.random_range(0..16u32),
            rng.random_range(2..254u32)
        );

        let enrolled_on = purchase.po_date + Duration::days(rng.random_range(3..40));
        let enrolled_time = day_time(&mut rng, 7..16);
        let inventory_on = reference_date() - Duration::days(rng.random_range(1..8));
        let inventory_time = day_time(&mut rng, 6..22);
        let enrolled_on = if state.enrolled_in_epoch > 0 {
            reference_date() + Duration::days(i64::from(state.enrolled_in_epoch) - 1)
        } else {
            enrolled_on
        };
        // The MDM profile is valid two years and renewed in time, so it expires after today.
        let mut mdm_profile_expires_on = enrolled_on;
        while mdm_profile_expires_on <= reference_date() {
            mdm_profile_expires_on = mdm_profile_expires_on
                .checked_add_months(Months::new(24))
                .expect("dates stay far from chrono's limits");
        }
        // A new enrolment is a new MDM identity; the hardware ids stay.
        let management_id = uuid_from(splitmix64(
            seed_mix ^ u64::from(index) ^ (u64::from(state.enrolled_in_epoch) << 40),
        ));

        Device {
            index,
            family,
            jamf_id: state.id.unwrap_or(slot.id),
            school,
            building_id,
            building,
            room,
            display_name: format!("{}-{}-{:03}", school.tag, family.short_name(), slot.ordinal),
            asset_tag,
            serial_number,
            udid,
            wifi_mac,
            bluetooth_mac,
            model,
            os_version,
            os_build,
            ip_address,
            capacity_mb,
            available_mb,
            battery_level,
            management_id,
            enrolled_at: timestamp(enrolled_on, &enrolled_time),
            mdm_profile_expires_at: timestamp(mdm_profile_expires_on, &enrolled_time),
            last_inventory_at: timestamp(inventory_on, &inventory_time),
            supervised: true,
            user,
            purchase,
        }
    }
}

fn pick_family(school_type: SchoolType, rng: &mut ChaCha8Rng) -> Family {
    // Percent iPads, MacBooks; the rest are iMacs.
    let (ipad, macbook) = match school_type {
        SchoolType::Grundschule => (94, 5),
        SchoolType::Foerderschule => (85, 12),
        SchoolType::Berufsschule => (40, 35),
        SchoolType::Hauptschule
        | SchoolType::Realschule
        | SchoolType::Gesamtschule
        | SchoolType::Gymnasium => (68, 24),
    };
    let roll = rng.random_range(0..100u32);
    if roll < ipad {
        Family::IPad
    } else if roll < ipad + macbook {
        Family::MacBook
    } else {
        Family::IMac
    }
}

fn pick_model(family: Family, year: i32, order: u64) -> Model {
    let candidates: Vec<&Model> = MODELS
        .iter()
        .filter(|m| m.family == family && (m.first_year..=m.last_year).contains(&year))
        .collect();
    let total: u64 = candidates.iter().map(|m| u64::from(m.weight)).sum();
    let mut ticket = (order >> 8) % total.max(1);
    for candidate in &candidates {
        let weight = u64::from(candidate.weight);
        if ticket < weight {
            return **candidate;
        }
        ticket -= weight;
    }
    // The catalogue has a model of every family for every purchase year.
    MODELS
        .iter()
        .find(|m| m.family == family)
        .copied()
        .expect("the catalogue has every family")
}

fn purchase(family: Family, year: i32, order: u64, model: Model) -> Purchase {
    // No orders after the reference date.
    let last_month = if year == reference_date().year() {
        10
    } else {
        12
    };
    let month = (order >> 16) % last_month + 1;
    let day = (order >> 24) % 28 + 1;
    let po_date = NaiveDate::from_ymd_opt(year, month as u32, day as u32)
        .expect("day 1 to 28 exists in every month");
    // In twentieths: iPads mostly get the statutory two years, Macs come with longer terms.
    let roll = (order >> 32) % 20;
    let warranty_years: u32 = match family {
        Family::IPad => match roll {
            0..=10 => 2,
            11..=16 => 3,
            17..=18 => 4,
            _ => 5,
        },
        Family::MacBook | Family::IMac => match roll {
            0..=11 => 3,
            12..=14 => 4,
            _ => 5,
        },
    };
    let warranty_until = po_date
        .checked_add_months(Months::new(12 * warranty_years))
        .and_then(|d| d.pred_opt())
        .expect("dates stay far from chrono's limits");
    // Funding programmes only paid in their years: pupils' loan iPads in 2020/21, teachers'
    // MacBooks in 2021/22, DigitalPakt from 2020 to 2024.
    let account = match ((order >> 40) % 10, year, family) {
        (0..=5, 2020..=2024, _) => "DigitalPakt".to_string(),
        (6..=7, 2020 | 2021, Family::IPad) => "Sofortausstattungsprogramm".to_string(),
        (6..=7, 2021 | 2022, Family::MacBook) => "Lehrkräfteendgeräte".to_string(),
        (8, _, _) => format!("Haushalt {year}"),
        _ => String::new(),
    };
    Purchase {
        po_number: format!("BE-{year}-{:04}", (order >> 44) % 9000 + 100),
        po_date,
        vendor: VENDORS[((order >> 56) % VENDORS.len() as u64) as usize],
        price: model.price,
        warranty_until,
        life_expectancy: 5,
        account,
    }
}

fn os_update(model: Model, family: Family, updates: u32) -> (String, String) {
    match (family, model.max_os_major) {
        (Family::IPad, 26..) => (
            format!("26.{}", 1 + updates),
            format!("23C{}", 50 + updates),
        ),
        (Family::IPad, _) => (
            format!("18.7.{}", 2 + updates),
            format!("22H{}", 200 + updates),
        ),
        (_, 26..) => (
            format!("26.{}", 1 + updates),
            format!("25C{}", 50 + updates),
        ),
        (_, major) => (
            format!("{major}.7.{}", 2 + updates),
            format!("24G{}", 400 + updates),
        ),
    }
}

fn device_user(first: &str, last: &str, teacher: bool, school: &School) -> DeviceUser {
    let username = if teacher {
        format!(
            "{}.{}",
            login_part(first).chars().next().unwrap_or('x'),
            login_part(last)
        )
    } else {
        format!("{}.{}", login_part(first), login_part(last))
    };
    DeviceUser {
        email: format!("{username}@{}", school.mail_domain()),
        username,
        real_name: format!("{first} {last}"),
        position: if teacher { "Lehrkraft" } else { "" },
    }
}

fn room(rng: &mut ChaCha8Rng, family: Family, staff: bool) -> String {
    if staff && rng.random_ratio(1, 2) {
        let rooms = ["Lehrerzimmer", "Verwaltung", "Sekretariat", "Schulleitung"];
        return rooms[rng.random_range(0..rooms.len() as u32) as usize].to_string();
    }
    match family {
        Family::IPad if rng.random_ratio(2, 5) => {
            format!("iPad-Koffer {}", rng.random_range(1..=8u32))
        }
        Family::MacBook if rng.random_ratio(1, 2) => {
            format!("Notebookwagen {}", rng.random_range(1..=4u32))
        }
        Family::IMac if rng.random_ratio(2, 3) => {
            format!("Computerraum {}", rng.random_range(1..=3u32))
        }
        _ => format!(
            "R {}{:02}",
            rng.random_range(0..=2u32),
            rng.random_range(1..=30u32)
        ),
    }
}

/// Picks an item with probability proportional to its weight.
fn weighted<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T], weight: impl Fn(&T) -> u32) -> &'a T {
    let total: u32 = items.iter().map(&weight).sum();
    let mut ticket = rng.random_range(0..total.max(1));
    for item in items {
        let w = weight(item);
        if ticket < w {
            return item;
        }
        ticket -= w;
    }
    &items[items.len() - 1]
}

/// Hour, minute, second, millisecond; kept as a tuple so the date can be chosen later.
type DayTime = (u32, u32, u32, u32);

fn day_time(rng: &mut ChaCha8Rng, hours: std::ops::Range<u32>) -> DayTime {
    (
        rng.random_range(hours),
        rng.random_range(0..60),
        rng.random_range(0..60),
        rng.random_range(0..1000),
    )
}

fn timestamp(date: NaiveDate, (h, m, s, ms): &DayTime) -> String {
    format!("{date}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
}

/// The six middle characters of a serial: a bijection of the device index (affine map modulo
/// 34^6), so serials are unique without remembering them.
fn serial_core(seed: u64, index: u32) -> String {
    const MODULUS: u64 = 34u64.pow(6);
    // Coprime to 34 = 2 * 17, so the map is a bijection.
    const FACTOR: u64 = 1_000_003;
    let offset = splitmix64(seed ^ 0x5e71a1) % MODULUS;
    let mut value = (u64::from(index) * FACTOR + offset) % MODULUS;
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = SERIAL_ALPHABET[(value % 34) as usize];
        value /= 34;
    }
    out.iter().map(|&b| b as char).collect()
}

/// A bijection on 56-bit numbers: unique UDID parts that do not look sequential.
fn scramble56(x: u64) -> u64 {
    const MASK: u64 = (1 << 56) - 1;
    let mut x = x & MASK;
    x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15) & MASK;
    x ^= x >> 28;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9) & MASK;
    x ^= x >> 31;
    x
}

/// A bijection on 24-bit numbers for the NIC part of MAC addresses (unique up to 16.7 M devices).
fn scramble24(index: u64, seed_mix: u64) -> u32 {
    ((index.wrapping_mul(0x9E3779) + seed_mix) & 0xff_ffff) as u32
}

fn mac(oui: &str, nic: u32) -> String {
    format!(
        "{oui}:{:02x}:{:02x}:{:02x}",
        (nic >> 16) & 0xff,
        (nic >> 8) & 0xff,
        nic & 0xff
    )
}

fn uuid_from(bits: u64) -> String {
    let high = bits;
    let low = splitmix64(bits);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xfff,
        0x8000 | (low >> 48) & 0x3fff,
        low & 0xffff_ffff_ffff
    )
}

/// SplitMix64 finaliser: a cheap, well-mixing hash of a 64-bit value.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_udids_and_macs_are_unique() {
        let fleet = Fleet::new(7, 20_000);
        let snapshot = fleet.snapshot(0);
        let mut serials = HashSet::new();
        let mut udids = HashSet::new();
        let mut macs = HashSet::new();
        for kind in [DeviceKind::Mobile, DeviceKind::Computer] {
            for device in snapshot.devices(kind) {
                assert_eq!(device.serial_number.len(), 12, "{}", device.serial_number);
                assert!(device
                    .serial_number
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()));
                assert!(serials.insert(device.serial_number.clone()));
                assert!(udids.insert(device.udid.clone()));
                assert!(macs.insert(device.wifi_mac.clone()));
            }
        }
        assert_eq!(serials.len(), 20_000);
    }

    #[test]
    fn musterstadt_fleet_has_a_few_hundred_warranties_ending_within_a_year() {
        let fleet = Fleet::musterstadt(42);
        let snapshot = fleet.snapshot(0);
        let today = reference_date();
        let horizon = today + Duration::days(365);
        let mut ending = 0;
        let mut with_user = 0;
        let mut digitalpakt = 0;
        for kind in [DeviceKind::Mobile, DeviceKind::Computer] {
            for device in snapshot.devices(kind) {
                let until = device.purchase.warranty_until;
                if until > today && until <= horizon {
                    ending += 1;
                }
                with_user += usize::from(device.user.is_some());
                digitalpakt += usize::from(device.purchase.account == "DigitalPakt");
            }
        }
        assert!((300..=800).contains(&ending), "{ending}");
        assert!((1400..=1900).contains(&with_user), "{with_user}");
        assert!(digitalpakt > 500, "{digitalpakt}");
    }

    #[test]
    fn grundschulen_get_mostly_ipads_and_devices_follow_pupils() {
        let fleet = Fleet::musterstadt(1);
        let snapshot = fleet.snapshot(0);
        let mut per_school: HashMap<u32, (usize, usize)> = HashMap::new();
        for kind in [DeviceKind::Mobile, DeviceKind::Computer] {
            for device in snapshot.devices(kind) {
                let entry = per_school.entry(device.school.site_id).or_default();
                match kind {
                    DeviceKind::Mobile => entry.0 += 1,
                    DeviceKind::Computer => entry.1 += 1,
                }
            }
        }
        // Site ids 1 to 18 are the Grundschulen: 94 % iPads.
        let primary = (1..=18).fold((0, 0), |(m, c), site| {
            (m + per_school[&site].0, c + per_school[&site].1)
        });
        assert!(primary.0 > 10 * primary.1, "{primary:?}");
        let stadtpark = per_school[&26];
        assert!(stadtpark.1 * 5 > stadtpark.0, "{stadtpark:?}");
        // Gesamtschule Mitte (1080 pupils) has far more devices than GS Birkenhof (176).
        let big = per_school[&19].0 + per_school[&19].1;
        let small = per_school[&15].0 + per_school[&15].1;
        assert!(big > 4 * small, "{big} vs {small}");
    }

    #[test]
    fn epochs_apply_exact_changes() {
        let changes = EpochChanges {
            vanish: 30,
            reenroll: 12,
            os_updates: 50,
        };
        let fleet = Fleet::with_changes(3, 3000, changes);
        let before = fleet.snapshot(0);
        let after = fleet.snapshot(2);
        assert_eq!(after.total(), before.total() - 60);
        let old: HashMap<String, Device> = [DeviceKind::Mobile, DeviceKind::Computer]
            .into_iter()
            .flat_map(|k| before.devices(k).collect::<Vec<_>>())
            .map(|d| (d.serial_number.clone(), d))
            .collect();
        let mut new_ids = 0;
        let mut new_os = 0;
        for kind in [DeviceKind::Mobile, DeviceKind::Computer] {
            for device in after.devices(kind) {
                let was = &old[&device.serial_number];
                assert_eq!(was.udid, device.udid);
                new_ids += usize::from(was.jamf_id != device.jamf_id);
                new_os += usize::from(was.os_version != device.os_version);
            }
        }
        assert!((20..=24).contains(&new_ids), "{new_ids}");
        assert!(new_os >= 80, "{new_os}");
    }
}
