//! Normalizing and hashing records is pure CPU work, done on the blocking pool as pages arrive,
//! so the engine's task spends its time waiting for the database rather than next to it.
//!
//! One serialization of each normalized record gives both its content hash and the JSON stored
//! with its link; the hash is the same as [`DeviceRecord::content_hash`], so stored hashes stay
//! valid.

use tokio::sync::mpsc;

use crate::person::DirectorySchool;
use crate::record::{hash_json_text, DeviceRecord};
use crate::store::merge::NormalizedIds;
use crate::sync::protocol::{FetchFailure, SourceItem};

/// A record with its identifiers normalized (in `record` too), its JSON and its hash.
pub(crate) struct NormalizedRecord {
    pub record: DeviceRecord,
    pub ids: NormalizedIds,
    /// The normalized record as stored in `source_link.normalized`.
    pub json: String,
    pub hash: Vec<u8>,
}

/// A page whose records are normalized.
pub(crate) struct NormalizedPage {
    pub label: String,
    pub records: Vec<NormalizedRecord>,
    pub announced_total: Option<u64>,
}

/// What the engine receives: pages ready to apply, then the connector's end marker.
pub(crate) enum PreparedItem {
    Schools(Vec<DirectorySchool>),
    Page(NormalizedPage),
    Complete { reported_total: u64 },
    Failed(FetchFailure),
}

/// Pages normalized ahead of the engine; this many wait, on top of the connector's channel.
const CHANNEL_CAPACITY: usize = 2;

/// Normalizes every page from `pages` on the blocking pool, in order. Dropping the returned
/// receiver stops the stage, which drops `pages`, which stops the connector.
pub(crate) fn spawn_normalizer(
    mut pages: mpsc::Receiver<SourceItem>,
) -> mpsc::Receiver<PreparedItem> {
    let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
    tokio::spawn(async move {
        while let Some(item) = pages.recv().await {
            let prepared = match item {
                SourceItem::Page(page) => {
                    let label = page.label;
                    let announced_total = page.announced_total;
                    let records = page.records;
                    match tokio::task::spawn_blocking(move || {
                        records.into_iter().map(normalize_record).collect()
                    })
                    .await
                    {
                        Ok(records) => PreparedItem::Page(NormalizedPage {
                            label,
                            records,
                            announced_total,
                        }),
                        Err(error) => PreparedItem::Failed(FetchFailure {
                            page: Some(label),
                            cause: format!("preparing the page's records failed: {error}"),
                        }),
                    }
                }
                SourceItem::Schools(schools) => PreparedItem::Schools(schools),
                SourceItem::Complete { reported_total } => {
                    PreparedItem::Complete { reported_total }
                }
                SourceItem::Failed(failure) => PreparedItem::Failed(failure),
            };
            let last = matches!(
                prepared,
                PreparedItem::Complete { .. } | PreparedItem::Failed(_)
            );
            if sender.send(prepared).await.is_err() || last {
                return;
            }
        }
    });
    receiver
}

/// Normalizes the identifiers the engine matches on, in the record too, so a change in how a
/// source spells an identifier does not count as a change of the device.
pub(crate) fn normalize_record(mut record: DeviceRecord) -> NormalizedRecord {
    let ids = NormalizedIds::of_record(&record);
    record.serial_number.clone_from(&ids.serial_number);
    record.udid.clone_from(&ids.udid);
    record.imei.clone_from(&ids.imei);
    record.wifi_mac.clone_from(&ids.wifi_mac);
    let json = serde_json::to_string(&record).unwrap_or_else(|_| "{}".to_string());
    let hash = hash_json_text(&json).to_vec();
    NormalizedRecord {
        record,
        ids,
        json,
        hash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_of_the_stored_json_is_the_records_content_hash() {
        let record = DeviceRecord {
            external_id: "mobile:1".into(),
            serial_number: Some(" dmpx1234abcd ".into()),
            wifi_mac: Some("AA-BB-CC-00-11-22".into()),
            payload: "{\"id\": 1}".into(),
            ..DeviceRecord::default()
        };
        let normalized = normalize_record(record);
        assert_eq!(normalized.hash, normalized.record.content_hash().to_vec());
        assert_eq!(
            normalized.record.serial_number.as_deref(),
            Some("DMPX1234ABCD")
        );
        assert!(normalized
            .json
            .contains("\"wifi_mac\":\"aa:bb:cc:00:11:22\""));
        assert!(
            !normalized.json.contains("\"id\": 1"),
            "the payload is not hashed"
        );
    }
}
