//! The identifier guards of a device run: a record never gives a device a serial number,
//! UDID, IMEI, Wi-Fi MAC or asset tag another device carries, and never changes a device's
//! serial silently (docs/sync.md, "Identifiers a linked record changes").

use std::collections::HashMap;

use sqlx::PgConnection;
use uuid::Uuid;

use super::{without_field, PageWrites, Prepared, Run};
use crate::identity;
use crate::store::device_row::{
    device_label, devices_by_keys, AssetTagBefore, DeviceRow, KeyLookup,
};
use crate::store::merge::{HardwareId, NormalizedIds};
use crate::store::review::{IDENTIFIER_CONFLICT, SERIAL_CHANGED, SERIAL_CONFLICT};
use crate::sync::matching::{push_unique, Carrier, Carriers};

impl Run<'_> {
    /// A record that reaches a device (through its link, or attached by another identifier) but
    /// reports a serial number, UDID, IMEI or Wi-Fi MAC another device of the authority
    /// carries says that one record is two devices. Writing it would give both devices the
    /// identifier, and every later match by it would be ambiguous; so the device keeps its own,
    /// the rest of the record applies, and a review item names the devices (`serial_conflict`
    /// when the serial is among them, else `identifier_conflict`). An identifier is also
    /// carried by a device this page creates with it (`created`), and by a device an earlier
    /// record of this page gave it.
    ///
    /// Two exceptions: a UDID, IMEI or MAC whose carriers have serial numbers other than the
    /// device's is shared (a dock, an adapter, a clone), not a clash: it is written, matches
    /// nothing, and is reported once as `identifier_shared`; a MAC that may not match at all
    /// (private, group or listed in `shared_macs`) is written without a check. And a device's
    /// serial never changes silently: a different serial for a device that has one is held
    /// (`serial_changed`) until a person decides.
    ///
    /// Returns, per record index, the identifiers to merge instead (the held ones left out,
    /// which a merge never clears).
    pub(super) async fn hold_clashing_hardware_ids(
        &mut self,
        tx: &mut PgConnection,
        prepared: &[Prepared],
        targets: &[(usize, Uuid)],
        devices: &HashMap<Uuid, DeviceRow>,
        created: Vec<(usize, Uuid)>,
        writes: &mut PageWrites,
    ) -> Result<HashMap<usize, NormalizedIds>, sqlx::Error> {
        // Per target, the identifiers its record would change on the device that may match.
        let changing: Vec<(usize, &DeviceRow, NormalizedIds)> = targets
            .iter()
            .filter_map(|&(index, device_id)| {
                let device = devices.get(&device_id)?;
                let mut new_ids = self.rules.matching_ids(&prepared[index].ids);
                for id in HardwareId::ALL {
                    if new_ids.get(id) == device.hardware_id(id) {
                        new_ids.clear(id);
                    }
                }
                (!new_ids.is_empty()).then_some((index, device, new_ids))
            })
            .collect();
        let mut held = HashMap::new();
        if changing.is_empty() {
            return Ok(held);
        }
        let mut keys = KeyLookup::default();
        for (_, _, new_ids) in &changing {
            keys.add(new_ids);
        }
        let mut carriers = Carriers::default();
        for device in devices_by_keys(tx, self.source.authority_id, &keys).await? {
            carriers.add(&device.ids, device.device_id, &device.label());
        }
        for (index, device_id) in created {
            let ids = &prepared[index].ids;
            // Its asset tag may yet go to another device: named by its serial.
            let label = device_label(None, ids.serial_number.as_deref(), device_id);
            carriers.add(ids, device_id, &label);
        }

        for (index, device, new_ids) in changing {
            let item = &prepared[index];
            let device_id = device.device_id;
            let label = device.label();
            let own_serial = device
                .serial_number
                .as_deref()
                .or(item.ids.serial_number.as_deref());
            let mut clashes: Vec<(HardwareId, &str, Carrier)> = Vec::new();
            let mut serial_changed = None;
            for id in HardwareId::ALL {
                let Some(value) = new_ids.get(id) else {
                    continue;
                };
                let others = carriers.others(id, value, device_id);
                let shared = id != HardwareId::Serial
                    && !others.is_empty()
                    && !identity::serials_agree(
                        others
                            .iter()
                            .map(|other| other.serial.as_deref())
                            .chain([own_serial]),
                    );
                if shared {
                    let mut sharing: Vec<Uuid> = others.iter().map(|o| o.device_id).collect();
                    sharing.push(device_id);
                    writes.report_shared(id, value, &sharing);
                } else if let Some(other) = others.into_iter().next() {
                    clashes.push((id, value, other));
                    continue;
                } else if id == HardwareId::Serial && device.serial_number.is_some() {
                    serial_changed = Some(value);
                    continue;
                }
                // Claimed now: a later record of this page reporting it clashes.
                carriers.add_one(id, value, device_id, &label, own_serial);
            }
            let external_id = &item.record.external_id;
            let mut ids = item.ids.clone();
            if let Some(new_serial) = serial_changed {
                let old_serial = device.serial_number.as_deref().unwrap_or_default();
                self.warn(format!(
                    "{external_id}: reports serial number '{new_serial}' for device {label}, \
                     which has '{old_serial}'; the device keeps it until a person decides (see \
                     `bestand review list`)"
                ));
                writes.reviews.push((
                    index,
                    SERIAL_CHANGED,
                    format!(
                        "{external_id} of source '{}' belongs to device {label} (serial number \
                         '{old_serial}') but now reports serial number '{new_serial}': a replaced \
                         logic board, a reused id or two devices in one; --link {label} takes the \
                         new serial, --split makes the record a device of its own",
                        self.source.name
                    ),
                    vec![device_id],
                ));
                self.counts.review_items += 1;
                ids.clear(HardwareId::Serial);
            }
            if !clashes.is_empty() {
                let mut candidates = Vec::new();
                let mut reports = Vec::new();
                for (id, value, other) in &clashes {
                    let name = id.name();
                    let kept = device.hardware_id(*id).unwrap_or("none");
                    let other_label = &other.label;
                    self.warn(format!(
                        "{external_id}: {name} '{value}' is already carried by device \
                         {other_label}; device {label} keeps {name} '{kept}' (see `bestand review \
                         list`)"
                    ));
                    reports.push(format!(
                        "{name} '{value}', which device {other_label} carries"
                    ));
                    push_unique(&mut candidates, other.device_id);
                    ids.clear(*id);
                }
                candidates.push(device_id);
                let kind = if clashes.iter().any(|(id, ..)| *id == HardwareId::Serial) {
                    SERIAL_CONFLICT
                } else {
                    IDENTIFIER_CONFLICT
                };
                writes.reviews.push((
                    index,
                    kind,
                    format!(
                        "{external_id} of source '{}' belongs to device {label} but now reports {}",
                        self.source.name,
                        reports.join(" and ")
                    ),
                    candidates,
                ));
                self.counts.review_items += 1;
            }
            if serial_changed.is_some() || !clashes.is_empty() {
                held.insert(index, ids);
            }
        }
        Ok(held)
    }

    /// An asset tag is unique within an authority, but sources do report a tag that another
    /// device already carries (a reused label, a typo). Such a tag is left unchanged on the
    /// device that would take it, and a review item names both devices, instead of the
    /// unique index failing the whole run.
    pub(super) async fn keep_asset_tags_unique(
        &mut self,
        tx: &mut PgConnection,
        prepared: &[Prepared],
        mut tags_before: HashMap<Uuid, AssetTagBefore>,
        writes: &mut PageWrites,
    ) -> Result<(), sqlx::Error> {
        let record_of: HashMap<Uuid, usize> = writes
            .new_links
            .iter()
            .map(|(_, device_id, index)| (*device_id, *index))
            .chain(
                writes
                    .changed_links_devices
                    .iter()
                    .map(|(device_id, index)| (*device_id, *index)),
            )
            .collect();
        let tags: Vec<&str> = writes
            .new_devices
            .iter()
            .chain(writes.changed_devices.iter())
            .filter_map(|row| row.asset_tag.as_deref())
            .collect();
        if tags.is_empty() {
            return Ok(());
        }
        // A tag stays with the device that holds it now for the rest of this page, even if that
        // device gives it up here: inserts run before updates, so it is free only next run.
        // With the holder's serial, to name it by: its tag is the one in question.
        let keys = KeyLookup {
            asset_tags: tags.iter().map(|tag| tag.to_string()).collect(),
            ..KeyLookup::default()
        };
        let mut holder: HashMap<String, (Uuid, Option<String>)> =
            devices_by_keys(tx, self.source.authority_id, &keys)
                .await?
                .into_iter()
                .filter_map(|device| {
                    let tag = device.asset_tag?;
                    Some((tag, (device.device_id, device.ids.serial_number)))
                })
                .collect();
        for row in writes
            .new_devices
            .iter_mut()
            .chain(writes.changed_devices.iter_mut())
        {
            let Some(tag) = row.asset_tag.clone() else {
                continue;
            };
            match holder.get(&tag) {
                Some((other, other_serial)) if *other != row.device_id => {
                    let other = *other;
                    let other_label = device_label(None, other_serial.as_deref(), other);
                    // Its own current tag is still its own (see above).
                    row.keep_asset_tag(tags_before.remove(&row.device_id).unwrap_or_default());
                    let Some(&index) = record_of.get(&row.device_id) else {
                        continue;
                    };
                    let external_id = &prepared[index].record.external_id;
                    self.warn(format!(
                        "{external_id}: asset tag '{tag}' is already held by device \
                         {other_label}; left unchanged on device {} (see `bestand review list`)",
                        row.label()
                    ));
                    writes.reviews.push((
                        index,
                        "asset_tag_conflict",
                        format!(
                            "{external_id} of source '{}' reports asset tag '{tag}', which device \
                             {other_label} already carries",
                            self.source.name
                        ),
                        vec![other, row.device_id],
                    ));
                    self.counts.review_items += 1;
                    for (device_id, _, changes) in writes.events.iter_mut() {
                        if *device_id == row.device_id {
                            *changes = without_field(changes, "asset_tag");
                        }
                    }
                }
                _ => {
                    holder.insert(tag, (row.device_id, row.serial_number.clone()));
                }
            }
        }
        Ok(())
    }
}
