//! Device tags: free labels people put on devices (never a sync), so that a class set can take
//! its devices from a named pool ("koffer-3", "leihpool") rather than only from a room.

use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::access::{Actor, Scope};
use crate::clock::Clock;
use crate::error::CoreError;
use crate::loans::checks::{lock_device, write_event};
use crate::loans::scoped::resolve_device;

/// A device's tags after a change.
#[derive(Debug, Clone, Serialize)]
pub struct TaggedDevice {
    pub device_id: Uuid,
    pub device: String,
    pub tags: Vec<String>,
    pub changed: bool,
}

/// Adds `add` to and removes `remove` from the tags of every device in `keys` (ids, asset
/// tags or serials), in one transaction; an unknown device (or one outside `scope`) changes
/// nothing.
pub async fn tag_devices(
    pool: &PgPool,
    scope: &Scope,
    clock: &dyn Clock,
    keys: &[String],
    add: &[String],
    remove: &[String],
    actor: &Actor,
) -> Result<Vec<TaggedDevice>, CoreError> {
    let add: Vec<String> = clean(add)?;
    let remove: Vec<String> = clean(remove)?;
    let mut device_ids = Vec::new();
    for key in keys {
        device_ids.push(resolve_device(pool, scope, key).await?);
    }
    let now = clock.now();
    let mut tx = pool.begin().await?;
    let mut out = Vec::new();
    for device_id in device_ids {
        let device = lock_device(&mut tx, device_id).await?;
        let old: Vec<String> = sqlx::query_scalar("select tags from device where device_id = $1")
            .bind(device_id)
            .fetch_one(&mut *tx)
            .await?;
        let mut tags: Vec<String> = old
            .iter()
            .filter(|tag| !remove.iter().any(|r| same(r, tag)))
            .cloned()
            .collect();
        for tag in &add {
            if !tags.iter().any(|t| same(t, tag)) {
                tags.push(tag.clone());
            }
        }
        let changed = tags != old;
        if changed {
            sqlx::query("update device set tags = $2, updated_at = $3 where device_id = $1")
                .bind(device_id)
                .bind(&tags)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let changes = json!({ "tags": { "old": old, "new": tags } });
            write_event(&mut tx, &device, "tags_changed", changes, now, actor).await?;
        }
        out.push(TaggedDevice {
            device_id,
            device: device.label,
            tags,
            changed,
        });
    }
    tx.commit().await?;
    Ok(out)
}

fn clean(tags: &[String]) -> Result<Vec<String>, CoreError> {
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        let tag = tag.trim();
        if tag.is_empty() || tag.contains(char::is_whitespace) || tag.contains(',') {
            return Err(CoreError::Invalid(format!(
                "\"{tag}\" is not a tag: use one word without spaces or commas, e.g. koffer-3"
            )));
        }
        if !out.iter().any(|t| same(t, tag)) {
            out.push(tag.to_string());
        }
    }
    Ok(out)
}

/// Tags match without regard to case, as class sets look them up (`lower()` in SQL).
fn same(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}
