//! Which hardware identifiers may match a record to a device: a serial number identifies one
//! device, but a MAC address often does not (docking stations and USB-Ethernet adapters lend one
//! address to every laptop plugged in, phones use private addresses, images are cloned), and an
//! identifier that devices with different serial numbers carry identifies none of them.
//!
//! Matching (the sync engine) and `review resolve` ask the same rules, so a person settling an
//! item gets the answer a run would give.

use std::collections::{BTreeSet, HashSet};

use sqlx::PgConnection;
use uuid::Uuid;

use crate::normalize;
use crate::store::merge::{HardwareId, NormalizedIds};

/// The review kind for an identifier that devices with different serial numbers carry: one item
/// per identifier and authority, listing every carrier, raised by any source.
pub const IDENTIFIER_SHARED: &str = "identifier_shared";

/// An authority's rules for which identifiers identify a device.
#[derive(Debug, Clone, Default)]
pub struct MatchingRules {
    /// The authority's `shared_macs`: addresses of its docking stations and adapters, normalized.
    shared_macs: HashSet<String>,
}

impl MatchingRules {
    pub fn new(shared_macs: impl IntoIterator<Item = String>) -> MatchingRules {
        MatchingRules {
            shared_macs: shared_macs.into_iter().collect(),
        }
    }

    /// The rules of `authority_id`, with the `shared_macs` its configuration lists.
    pub(crate) async fn load(
        conn: &mut PgConnection,
        authority_id: Uuid,
    ) -> Result<MatchingRules, sqlx::Error> {
        let shared_macs: Vec<String> =
            sqlx::query_scalar("select shared_macs from school_authority where authority_id = $1")
                .bind(authority_id)
                .fetch_optional(&mut *conn)
                .await?
                .unwrap_or_default();
        Ok(MatchingRules::new(shared_macs))
    }

    /// Whether `value` (normalized) may match a record to a device as `id`.
    pub fn identifies(&self, id: HardwareId, value: &str) -> bool {
        match id {
            HardwareId::WifiMac => {
                normalize::mac_identifies_one_device(value) && !self.shared_macs.contains(value)
            }
            HardwareId::Serial | HardwareId::Udid | HardwareId::Imei => true,
        }
    }

    /// `ids` without the identifiers that may not match (they are still stored on the device).
    pub fn matching_ids(&self, ids: &NormalizedIds) -> NormalizedIds {
        let mut matching = ids.clone();
        for id in HardwareId::ALL {
            if let Some(value) = ids.get(id) {
                if !self.identifies(id, value) {
                    matching.clear(id);
                }
            }
        }
        matching
    }
}

/// Whether devices with these serial numbers (`None` for a device without a usable one) can all
/// be one device: at most one distinct serial among them.
pub fn serials_agree<'a>(serials: impl IntoIterator<Item = Option<&'a str>>) -> bool {
    serials.into_iter().flatten().collect::<BTreeSet<_>>().len() <= 1
}

/// How a shared identifier is keyed in its review item (`review_item.external_id`).
pub fn shared_identifier_key(id: HardwareId, value: &str) -> String {
    let kind = match id {
        HardwareId::Serial => "serial",
        HardwareId::Udid => "udid",
        HardwareId::Imei => "imei",
        HardwareId::WifiMac => "mac",
    };
    format!("{kind}:{value}")
}

/// The summary of a shared identifier's review item.
pub fn shared_identifier_summary(id: HardwareId, value: &str) -> String {
    let hint = match id {
        HardwareId::WifiMac => {
            "a docking station, a network adapter or a cloned image; list it in the \
             authority's shared_macs to silence this"
        }
        _ => "a cloned image or a source that reports a placeholder",
    };
    format!(
        "{} '{value}' is carried by devices with different serial numbers ({hint}); it is not \
         used to match devices",
        id.name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denied_and_private_macs_do_not_match_but_other_ids_do() {
        let rules = MatchingRules::new(["a4:83:e7:00:00:01".to_string()]);
        let ids = NormalizedIds {
            serial_number: Some("C02X".into()),
            udid: Some("UDID-1".into()),
            imei: None,
            wifi_mac: Some("a4:83:e7:00:00:01".into()),
        };
        let matching = rules.matching_ids(&ids);
        assert_eq!(matching.wifi_mac, None);
        assert_eq!(matching.serial_number.as_deref(), Some("C02X"));
        assert_eq!(matching.udid.as_deref(), Some("UDID-1"));
        assert!(rules.identifies(HardwareId::WifiMac, "a4:83:e7:00:00:02"));
        assert!(!rules.identifies(HardwareId::WifiMac, "02:00:00:00:00:00"));
    }

    #[test]
    fn serials_agree_when_at_most_one_distinct_serial_is_known() {
        assert!(serials_agree([None, Some("A"), Some("A")]));
        assert!(serials_agree([None, None]));
        assert!(!serials_agree([Some("A"), None, Some("B")]));
    }
}
