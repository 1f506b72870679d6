//! Review items: the cases the engine refused to guess, and how a person settles them.
//!
//! An item is in a scope of schools when every candidate it names is a device of those
//! schools (and it names one at least): the decision is about those devices. Items about no
//! device (a record that matched nothing, an ambiguous person, a shared identifier) are the
//! authority's: only an authority-wide scope sees them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::access::{Actor, Scope};
use crate::error::CoreError;
use crate::identity::{MatchingRules, IDENTIFIER_SHARED};
use crate::normalize;
use crate::person::PersonRecord;
use crate::record::DeviceRecord;
use crate::store::assignments::refresh_assignments;
use crate::store::device_row::{
    device_label, devices_by_keys, insert_devices, load_devices_for_update, update_devices,
    AssetTagBefore, DeviceKeys, DeviceRow, KeyLookup,
};
use crate::store::history::{copy_source_history, insert_events, EventContext};
use crate::store::merge::{self, HardwareId, NormalizedIds};
use crate::store::{in_scope, source_by_id, SourceRef};

/// An item as listed.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ReviewView {
    pub review_item_id: i64,
    pub kind: String,
    pub source_name: Option<String>,
    pub external_id: Option<String>,
    pub summary: String,
    pub candidates: Vec<Uuid>,
    /// The candidates as people name them, in the same order: a device's asset tag, else its
    /// serial number; a person's username, else email; else the id.
    pub candidate_labels: Vec<String>,
    pub status: String,
    pub resolution: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub record: Value,
}

/// SQL testing the review item `r` against the scope's params bound as `$a::uuid` and
/// `$s::uuid[]` (see the module's rule for scopes of schools).
fn review_in_scope(a: usize, s: usize) -> String {
    format!(
        "(${a}::uuid is null or r.authority_id = ${a}) and (${s}::uuid[] is null or \
         (cardinality(r.candidates) > 0 and not exists (select 1 from unnest(r.candidates) c(id) \
          left join device cd on cd.device_id = c.id \
          where cd.school_id is null or not cd.school_id = any(${s}))))"
    )
}

/// Lists the review items in `scope`; `status` is `open`, `resolved`, `dismissed` or `None`
/// for all. The candidates' labels follow `device_label` (and for persons username, else
/// email) in SQL.
pub async fn list_review(
    pool: &PgPool,
    scope: &Scope,
    status: Option<&str>,
) -> Result<Vec<ReviewView>, CoreError> {
    Ok(sqlx::query_as(&format!(
        "select r.review_item_id, r.kind, s.name as source_name, r.external_id, r.summary, r.candidates, \
         array(select coalesce(d.asset_tag, d.serial_number, p.username, p.email, c.id::text) \
               from unnest(r.candidates) with ordinality as c(id, n) \
               left join device d on d.device_id = c.id \
               left join person p on p.person_id = c.id order by c.n) as candidate_labels, \
         r.status, r.resolution, r.created_at, r.last_seen_at, r.record \
         from review_item r left join source s using (source_id) \
         where ($1::text is null or r.status = $1) and {} order by r.review_item_id",
        review_in_scope(2, 3)
    ))
    .bind(status)
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_all(pool)
    .await?)
}

#[derive(sqlx::FromRow)]
struct ReviewRow {
    kind: String,
    source_id: Option<Uuid>,
    external_id: Option<String>,
    status: String,
    record: Value,
    authority_id: Uuid,
}

/// How a person settles an item.
#[derive(Debug, Clone)]
pub enum Resolution {
    /// The record is this device: link it.
    LinkTo(Uuid),
    /// The record is a device of its own: create it.
    CreateNew,
    /// Leave things as they are (an unmatched record unlinked, a held identifier held); later runs
    /// will not raise the item again.
    Dismiss,
    /// The linked record is a device of its own that was taken for another one: its link moves
    /// to a new device, with its source's history (`split_link`).
    Split,
}

/// Settles a review item in `scope` and applies the decision at once; `--link` to a device
/// outside the scope finds no device.
///
/// A device record is merged with `priority` (`[sync.field_priority]`), as a run would.
pub async fn resolve_review(
    pool: &PgPool,
    scope: &Scope,
    actor: &Actor,
    item_id: i64,
    resolution: Resolution,
    priority: &merge::FieldPriority,
    now: DateTime<Utc>,
) -> Result<String, CoreError> {
    let resolved_by = &actor.name();
    let row: Option<ReviewRow> = sqlx::query_as(&format!(
        "select kind, source_id, external_id, status, record, authority_id from review_item r \
         where review_item_id = $1 and {}",
        review_in_scope(2, 3)
    ))
    .bind(item_id)
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_optional(pool)
    .await?;
    let Some(ReviewRow {
        kind,
        source_id,
        external_id,
        status,
        record,
        authority_id,
    }) = row
    else {
        return Err(CoreError::NotFound {
            what: "review item",
            key: item_id.to_string(),
        });
    };
    if status != "open" {
        return Err(CoreError::Conflict(format!(
            "review item {item_id} is already {status}"
        )));
    }
    if let (Resolution::LinkTo(device_id), false) = (&resolution, kind == PERSON_AMBIGUOUS) {
        device_in_scope(pool, scope, *device_id).await?;
    }
    // The item is in the scope, so its source, of the item's authority, is the caller's to use.
    let source_scope = Scope::Authority(authority_id);
    if kind == IDENTIFIER_SHARED && !matches!(resolution, Resolution::Dismiss) {
        return Err(CoreError::Invalid(format!(
            "review item {item_id} reports an identifier several devices carry, not a record to \
             place; list a MAC in the authority's shared_macs, or dismiss the item once it is known"
        )));
    }
    let mut tx = pool.begin().await?;
    let summary = match resolution {
        Resolution::Dismiss => "dismissed".to_string(),
        Resolution::Split => {
            let (Some(source_id), Some(external_id)) = (source_id, external_id) else {
                return Err(CoreError::Invalid(format!(
                    "review item {item_id} has no source record to split off"
                )));
            };
            if kind == PERSON_AMBIGUOUS {
                return Err(CoreError::Invalid(format!(
                    "review item {item_id} is about a person; --split separates devices"
                )));
            }
            let source = source_by_id(pool, &source_scope, source_id).await?;
            let record = device_record(item_id, record)?;
            split_link(&mut tx, &source, &external_id, &record, resolved_by, now)
                .await
                .map_err(about_item(item_id))?
        }
        Resolution::LinkTo(_) | Resolution::CreateNew => {
            let (Some(source_id), Some(external_id)) = (source_id, external_id) else {
                return Err(CoreError::Invalid(format!(
                    "review item {item_id} has no source record to link"
                )));
            };
            let source = source_by_id(pool, &source_scope, source_id).await?;
            if kind == PERSON_AMBIGUOUS {
                let record: PersonRecord = serde_json::from_value(record).map_err(|error| {
                    CoreError::Invalid(format!(
                        "review item {item_id} holds an unreadable person record: {error}"
                    ))
                })?;
                link_person_record(
                    &mut tx,
                    &source,
                    authority_id,
                    &external_id,
                    &record,
                    &resolution,
                    now,
                )
                .await?
            } else {
                let record = device_record(item_id, record)?;
                link_record(
                    &mut tx,
                    scope,
                    &source,
                    authority_id,
                    &external_id,
                    &record,
                    &resolution,
                    priority,
                    resolved_by,
                    now,
                )
                .await
                .map_err(about_item(item_id))?
            }
        }
    };
    sqlx::query(
        "update review_item set status = $2, resolution = $3, resolved_at = $4, resolved_by = $5 \
         where review_item_id = $1",
    )
    .bind(item_id)
    .bind(if matches!(resolution, Resolution::Dismiss) {
        "dismissed"
    } else {
        "resolved"
    })
    .bind(&summary)
    .bind(now)
    .bind(resolved_by)
    .execute(&mut *tx)
    .await?;
    if !matches!(resolution, Resolution::Dismiss) {
        // A new link may carry a user hint, a person may now be the match of one.
        refresh_assignments(&mut tx, authority_id, now).await?;
    }
    tx.commit().await?;
    Ok(summary)
}

/// Refuses a device outside `scope` as not found, as `resolve_device` would.
async fn device_in_scope(pool: &PgPool, scope: &Scope, device_id: Uuid) -> Result<(), CoreError> {
    let found: Option<Uuid> = sqlx::query_scalar(&format!(
        "select d.device_id from device d where d.device_id = $1 and {}",
        in_scope("d.authority_id", "d.school_id", 2, 3)
    ))
    .bind(device_id)
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_optional(pool)
    .await?;
    found.map(|_| ()).ok_or_else(|| CoreError::NotFound {
        what: "device",
        key: device_id.to_string(),
    })
}

/// The device record a review item kept.
fn device_record(item_id: i64, record: Value) -> Result<DeviceRecord, CoreError> {
    serde_json::from_value(record).map_err(|error| {
        CoreError::Invalid(format!(
            "review item {item_id} holds an unreadable record: {error}"
        ))
    })
}

/// Names the item in a refusal that applying its decision gave.
fn about_item(item_id: i64) -> impl FnOnce(CoreError) -> CoreError {
    move |error| match error {
        CoreError::Invalid(message) => {
            CoreError::Invalid(format!("review item {item_id}: {message}"))
        }
        other => other,
    }
}

/// The review kind the directory engine raises for a person matching several persons.
pub const PERSON_AMBIGUOUS: &str = "person_ambiguous";

/// The review kind the device engine raises for a record that reports a serial number another
/// device carries (`Run::hold_clashing_hardware_ids`).
pub const SERIAL_CONFLICT: &str = "serial_conflict";

/// The review kind the device engine raises for a linked record that reports a serial number
/// other than its device's (a replaced logic board, a reused external id, or two devices that
/// an earlier version merged into one): the device keeps its serial until a person decides.
pub const SERIAL_CHANGED: &str = "serial_changed";

/// The review kind the device engine raises for a record that reports a UDID, IMEI or Wi-Fi
/// MAC (and no serial number) another device carries.
pub const IDENTIFIER_CONFLICT: &str = "identifier_conflict";

/// The kind of a review item in `scope`, so a caller knows whether `--link` names a device or
/// a person.
pub async fn review_kind(pool: &PgPool, scope: &Scope, item_id: i64) -> Result<String, CoreError> {
    sqlx::query_scalar(&format!(
        "select kind from review_item r where review_item_id = $1 and {}",
        review_in_scope(2, 3)
    ))
    .bind(item_id)
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| CoreError::NotFound {
        what: "review item",
        key: item_id.to_string(),
    })
}

/// Links a directory's person record to the chosen person, or to a new one. The link gets an
/// empty hash, so the next directory run applies the record's fields and memberships in full.
async fn link_person_record(
    tx: &mut sqlx::PgConnection,
    source: &SourceRef,
    authority_id: Uuid,
    external_id: &str,
    record: &PersonRecord,
    resolution: &Resolution,
    now: DateTime<Utc>,
) -> Result<String, CoreError> {
    // A record that shared only its login with persons of other directories was applied as a
    // new person of its own; the decision is whether that person is one of them.
    let applied_as: Option<Uuid> = sqlx::query_scalar(
        "select person_id from person_link where source_id = $1 and external_id = $2",
    )
    .bind(source.source_id)
    .bind(external_id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(new_person) = applied_as {
        return settle_namesake(tx, authority_id, new_person, resolution, now).await;
    }
    let (person_id, kind) = match resolution {
        Resolution::LinkTo(person_id) => {
            person_of_authority(tx, authority_id, *person_id).await?;
            (*person_id, "linked")
        }
        _ => {
            let person_id: Uuid = sqlx::query_scalar(
                "insert into person (authority_id, username, email, given_name, family_name, \
                 record_uid, record_source_uid, directory_uuid, entra_object_id, first_seen_at, \
                 updated_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
                 returning person_id",
            )
            .bind(authority_id)
            .bind(&record.username)
            .bind(&record.email)
            .bind(&record.given_name)
            .bind(&record.family_name)
            .bind(&record.ids.record_uid)
            .bind(&record.ids.source_uid)
            .bind(&record.ids.directory_uuid)
            .bind(&record.ids.entra_object_id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            (person_id, "created")
        }
    };
    sqlx::query(
        "insert into person_link (authority_id, source_id, person_id, external_id, content_hash, \
         first_seen_at, last_seen_at) values ($1, $2, $3, $4, '\\x'::bytea, $5, $5) \
         on conflict (source_id, external_id) do update set person_id = excluded.person_id, \
         content_hash = excluded.content_hash, missing_since = null",
    )
    .bind(authority_id)
    .bind(source.source_id)
    .bind(person_id)
    .bind(external_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(format!(
        "{kind} person {person_id}; the next run of '{}' applies the record",
        source.name
    ))
}

/// Checks that `person_id` exists and belongs to `authority_id`.
async fn person_of_authority(
    tx: &mut sqlx::PgConnection,
    authority_id: Uuid,
    person_id: Uuid,
) -> Result<(), CoreError> {
    let found: Option<Uuid> =
        sqlx::query_scalar("select authority_id from person where person_id = $1")
            .bind(person_id)
            .fetch_optional(&mut *tx)
            .await?;
    match found {
        None => Err(CoreError::NotFound {
            what: "person",
            key: person_id.to_string(),
        }),
        Some(other) if other != authority_id => Err(CoreError::Invalid(
            "that person belongs to another school authority".into(),
        )),
        Some(_) => Ok(()),
    }
}

/// Settles a record that a run applied as the new person `new_person`: `--new` keeps it,
/// `--link PERSON` merges it into that person. The merge moves every directory link,
/// membership and loan of the new person, points open review items at the person kept, and
/// deletes the new person; its id stays only in device history, which is append-only.
async fn settle_namesake(
    tx: &mut sqlx::PgConnection,
    authority_id: Uuid,
    new_person: Uuid,
    resolution: &Resolution,
    now: DateTime<Utc>,
) -> Result<String, CoreError> {
    let Resolution::LinkTo(person_id) = resolution else {
        return Ok(format!("kept person {new_person} as a person of its own"));
    };
    if *person_id == new_person {
        return Ok(format!("person {new_person} is already linked"));
    }
    person_of_authority(tx, authority_id, *person_id).await?;
    sqlx::query(
        "update person_link set person_id = $2, content_hash = '\\x'::bytea \
         where person_id = $1",
    )
    .bind(new_person)
    .bind(person_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "insert into person_membership (authority_id, person_id, source_id, school_id, role, \
         class_name) select authority_id, $2, source_id, school_id, role, class_name \
         from person_membership where person_id = $1 on conflict do nothing",
    )
    .bind(new_person)
    .bind(person_id)
    .execute(&mut *tx)
    .await?;
    let n_loans = sqlx::query("update loan set person_id = $2 where person_id = $1")
        .bind(new_person)
        .bind(person_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query(
        "update review_item set candidates = array_replace(candidates, $1, $2) \
         where status = 'open' and $1 = any(candidates)",
    )
    .bind(new_person)
    .bind(person_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("delete from person where person_id = $1")
        .bind(new_person)
        .execute(&mut *tx)
        .await?;
    // The person kept is at a school again if a link it now has is live.
    sqlx::query(
        "update person p set left_at = null, updated_at = $2 where p.person_id = $1 \
         and p.left_at is not null and exists (select 1 from person_link l \
         where l.person_id = p.person_id and l.missing_since is null)",
    )
    .bind(person_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let loans = match n_loans {
        0 => String::new(),
        n => format!(" with its {n} loan(s)"),
    };
    Ok(format!(
        "merged person {new_person} into person {person_id}{loans}; the next run of each of \
         its sources applies its record there"
    ))
}

#[allow(clippy::too_many_arguments)]
async fn link_record(
    tx: &mut sqlx::PgConnection,
    scope: &Scope,
    source: &SourceRef,
    authority_id: Uuid,
    external_id: &str,
    record: &DeviceRecord,
    resolution: &Resolution,
    priority: &merge::FieldPriority,
    resolved_by: &str,
    now: DateTime<Utc>,
) -> Result<String, CoreError> {
    let mut ids = NormalizedIds::of_record(record);
    let origin = format!("source:{}", source.name);
    let school_id: Option<Uuid> = match record.location.school.as_deref() {
        Some(hint) => sqlx::query_scalar(
            "select school_id from school where authority_id = $1 and (lower(school_number) = lower($2) \
             or lower(name) = lower($2) or lower($2) = any(select lower(x) from unnest(aliases) x)) limit 1",
        )
        .bind(authority_id)
        .bind(hint.trim())
        .fetch_optional(&mut *tx)
        .await?,
        None => None,
    };
    // A hardware id the record brings that another device carries would be on two devices (a
    // `serial_conflict` or `identifier_conflict` item, or an ambiguous match): a new device is
    // refused, a linked one keeps its own, as in a run.
    let target = match resolution {
        Resolution::LinkTo(device_id) => *device_id,
        _ => Uuid::nil(),
    };
    let mut carried = carried_elsewhere(tx, authority_id, target, &ids).await?;
    let (device_id, label, kind, mut changes, kept_tag) = match resolution {
        Resolution::LinkTo(device_id) => {
            let mut devices = load_devices_for_update(tx, &[*device_id]).await?;
            let Some(mut device) = devices.pop() else {
                return Err(CoreError::NotFound {
                    what: "device",
                    key: device_id.to_string(),
                });
            };
            if device.authority_id != authority_id {
                return Err(CoreError::Invalid(
                    "that device belongs to another school authority".into(),
                ));
            }
            carried.retain(|(id, value, _)| device.hardware_id(*id) != Some(value.as_str()));
            for (id, ..) in &carried {
                ids.clear(*id);
            }
            let tag_before = device.asset_tag_before();
            let mut changes = merge::merge_with_priority(
                &mut device,
                record,
                &ids,
                school_id,
                &origin,
                priority,
                now,
            );
            let kept = keep_asset_tag_unique(tx, &mut device, tag_before, &mut changes).await?;
            let label = device.label();
            update_devices(tx, vec![device]).await?;
            (*device_id, label, "linked", changes, kept)
        }
        _ => {
            if let Some((id, value, carrier)) = carried.first() {
                return Err(CoreError::Invalid(format!(
                    "the record's {} '{value}' is carried by device {carrier}, so it cannot \
                     become a new device; link it to the device it is (--link DEVICE) or \
                     dismiss the item to leave it where it is",
                    id.name()
                )));
            }
            // A new device lands at the record's school; a scope of other schools may not put
            // one there (it could not even see it afterwards).
            if !scope.admits(authority_id, school_id) {
                return Err(CoreError::Invalid(
                    "the record names a school outside your scope, so it cannot become a new \
                     device here; ask the authority's admins to settle it"
                        .to_string(),
                ));
            }
            let device_id = Uuid::now_v7();
            let (mut device, mut changes) = merge::new_device(
                device_id,
                authority_id,
                record,
                &ids,
                school_id,
                &origin,
                now,
            );
            let kept =
                keep_asset_tag_unique(tx, &mut device, Default::default(), &mut changes).await?;
            let label = device.label();
            insert_devices(tx, vec![device]).await?;
            (device_id, label, "created", changes, kept)
        }
    };
    let link_name = format!("{}:{external_id}", source.name);
    changes.insert(
        "source_link".into(),
        merge::change(None, Some(link_name.as_str())),
    );
    // A record already linked elsewhere (a serial conflict) moves; its old device's history says so.
    let linked_before: Option<Uuid> = sqlx::query_scalar(
        "select device_id from source_link where source_id = $1 and external_id = $2",
    )
    .bind(source.source_id)
    .bind(external_id)
    .fetch_optional(&mut *tx)
    .await?;
    // The link's hash is the record's, so the next run sees it unchanged unless the source changed it.
    let content_hash = record.content_hash().to_vec();
    sqlx::query(
        "insert into source_link (source_link_id, authority_id, source_id, device_id, external_id, \
         normalized, content_hash, hint_username, hint_email, first_seen_at, last_seen_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $9, $10, $8, $8) \
         on conflict (source_id, external_id) do update set device_id = excluded.device_id, \
         normalized = excluded.normalized, content_hash = excluded.content_hash, \
         hint_username = excluded.hint_username, hint_email = excluded.hint_email, \
         ended_at = null, ended_reason = null, missing_since = null",
    )
    .bind(Uuid::now_v7())
    .bind(authority_id)
    .bind(source.source_id)
    .bind(device_id)
    .bind(external_id)
    .bind(serde_json::to_value(record).unwrap_or(Value::Null))
    .bind(&content_hash)
    .bind(now)
    .bind(record.user.username.as_deref())
    .bind(record.user.email.as_deref())
    .execute(&mut *tx)
    .await?;
    // The review item kept the normalized record, not the vendor's payload; the next run whose
    // record differs stores that one.
    sqlx::query(
        "insert into source_payload (source_id, external_id, content_hash, authority_id, payload) \
         values ($1, $2, $3, $4, '{}'::jsonb) on conflict do nothing",
    )
    .bind(source.source_id)
    .bind(external_id)
    .bind(&content_hash)
    .bind(authority_id)
    .execute(&mut *tx)
    .await?;
    let mut events = vec![(
        device_id,
        kind,
        serde_json::to_string(&changes).unwrap_or_else(|_| "{}".to_string()),
    )];
    if let Some(old_device) = linked_before.filter(|old| *old != device_id) {
        let unlinked = serde_json::json!({
            "source_link": { "old": link_name, "new": null },
            "moved_to": { "old": null, "new": device_id },
        });
        events.push((old_device, "unlinked", unlinked.to_string()));
    }
    let context = EventContext::user_about(source, now, resolved_by);
    insert_events(tx, &context, &events).await?;
    let mut outcome = format!("{kind} device {label}");
    tell_what_stayed(&mut outcome, carried, kept_tag);
    Ok(outcome)
}

/// The hardware ids in `ids` that a device other than `except` carries, each with the value
/// and the carrier's label (the first carrier by id, if several), in `HardwareId::ALL` order.
/// A MAC that may not match (`MatchingRules`) is no one's, so it is never carried elsewhere.
async fn carried_elsewhere(
    tx: &mut sqlx::PgConnection,
    authority_id: Uuid,
    except: Uuid,
    ids: &NormalizedIds,
) -> Result<Vec<(HardwareId, String, String)>, sqlx::Error> {
    let ids = &MatchingRules::load(tx, authority_id)
        .await?
        .matching_ids(ids);
    let mut keys = KeyLookup::default();
    keys.add(ids);
    let others: Vec<DeviceKeys> = devices_by_keys(tx, authority_id, &keys)
        .await?
        .into_iter()
        .filter(|device| device.device_id != except)
        .collect();
    Ok(HardwareId::ALL
        .into_iter()
        .filter_map(|id| {
            let value = ids.get(id)?;
            let carrier = others
                .iter()
                .find(|device| device.ids.get(id) == Some(value))?;
            Some((id, value.to_string(), carrier.label()))
        })
        .collect())
}

/// Asset tags are unique per authority: a tag the record brings that another device carries
/// stays with that device, as in a sync run (`keep_asset_tags_unique` in `sync::devices`), instead
/// of the unique index failing the resolution; returns the tag and the device that keeps it
/// (named by its serial, as its tag is the one in question).
async fn keep_asset_tag_unique(
    tx: &mut sqlx::PgConnection,
    device: &mut DeviceRow,
    before: AssetTagBefore,
    changes: &mut merge::Changes,
) -> Result<Option<(String, String)>, sqlx::Error> {
    if !device.asset_tag_changed(&before) {
        return Ok(None);
    }
    let tag = device.asset_tag.clone().unwrap_or_default();
    let keys = KeyLookup {
        asset_tags: vec![tag.clone()],
        ..KeyLookup::default()
    };
    let holder = devices_by_keys(tx, device.authority_id, &keys)
        .await?
        .into_iter()
        .find(|holder| holder.device_id != device.device_id);
    let Some(holder) = holder else {
        return Ok(None);
    };
    device.keep_asset_tag(before);
    changes.remove("asset_tag");
    let label = device_label(None, holder.ids.serial_number.as_deref(), holder.device_id);
    Ok(Some((tag, label)))
}

/// Separates a linked record from the device it was taken for (`review resolve N --split`): a
/// new device is made from the record, the link moves to it, and it gets a copy of the history
/// the record's source wrote on the old device (history is append-only, so the old device keeps
/// its own, plus a `split` event naming the new one). Identifiers the record brings that the old
/// device carries because this source set them move with it; identifiers another source set stay
/// where they are, as in a run. The old device's other live links are marked changed, so the
/// next run of each of their sources writes its record again over what this source had set.
async fn split_link(
    tx: &mut sqlx::PgConnection,
    source: &SourceRef,
    external_id: &str,
    record: &DeviceRecord,
    resolved_by: &str,
    now: DateTime<Utc>,
) -> Result<String, CoreError> {
    let link: Option<(Uuid, Uuid)> = sqlx::query_as(
        "select source_link_id, device_id from source_link \
         where source_id = $1 and external_id = $2 and ended_at is null",
    )
    .bind(source.source_id)
    .bind(external_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((link_id, old_id)) = link else {
        return Err(CoreError::Invalid(format!(
            "{}:{external_id} is linked to no device, so there is nothing to split; \
             --new makes the record a device of its own",
            source.name
        )));
    };
    let mut olds = load_devices_for_update(tx, &[old_id]).await?;
    let Some(mut old) = olds.pop() else {
        return Err(CoreError::NotFound {
            what: "device",
            key: old_id.to_string(),
        });
    };
    let authority_id = old.authority_id;
    let origin = format!("source:{}", source.name);
    let mut ids = NormalizedIds::of_record(record);
    let mut old_changes = merge::Changes::new();
    for id in HardwareId::ALL {
        let Some(value) = ids.get(id).map(str::to_string) else {
            continue;
        };
        if old.hardware_id(id) != Some(value.as_str()) {
            continue;
        }
        let field = id.field();
        let set_by_this_source =
            old.field_origin.get(field).and_then(Value::as_str) == Some(origin.as_str());
        if set_by_this_source {
            old.clear_hardware_id(id);
            old_changes.insert(field.into(), merge::change(Some(value.as_str()), None));
        } else {
            ids.clear(id);
        }
    }
    let carried = carried_elsewhere(tx, authority_id, old_id, &ids).await?;
    for (id, ..) in &carried {
        ids.clear(*id);
    }
    let school_id = old.school_id;
    let new_id = Uuid::now_v7();
    let (mut new, mut new_changes) =
        merge::new_device(new_id, authority_id, record, &ids, school_id, &origin, now);
    let kept_tag =
        keep_asset_tag_unique(tx, &mut new, Default::default(), &mut new_changes).await?;
    let new_label = new.label();
    let old_label = old.label();
    insert_devices(tx, vec![new]).await?;
    update_devices(tx, vec![old]).await?;
    sqlx::query("update source_link set device_id = $2 where source_link_id = $1")
        .bind(link_id)
        .bind(new_id)
        .execute(&mut *tx)
        .await?;
    let copied = copy_source_history(tx, old_id, new_id, source.source_id).await?;
    let others = sqlx::query(
        "update source_link set content_hash = '\\x'::bytea \
         where device_id = $1 and ended_at is null",
    )
    .bind(old_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let link_name = format!("{}:{external_id}", source.name);
    old_changes.insert(
        "source_link".into(),
        merge::change(Some(link_name.as_str()), None),
    );
    old_changes.insert(
        "split_to".into(),
        merge::change(None, Some(new_id.to_string().as_str())),
    );
    new_changes.insert(
        "source_link".into(),
        merge::change(None, Some(link_name.as_str())),
    );
    new_changes.insert(
        "split_from".into(),
        merge::change(None, Some(old_id.to_string().as_str())),
    );
    let events = [
        (old_id, "split", changes_text(&old_changes)),
        (new_id, "split", changes_text(&new_changes)),
    ];
    let context = EventContext::user_about(source, now, resolved_by);
    insert_events(tx, &context, &events).await?;
    let mut outcome = format!(
        "split {link_name} off device {old_label} into new device {new_label}, with the {copied} \
         history events '{}' wrote",
        source.name
    );
    tell_what_stayed(&mut outcome, carried, kept_tag);
    if others > 0 {
        outcome.push_str(&format!(
            "; the next runs of the sources still linked to {old_label} write their records again"
        ));
    }
    Ok(outcome)
}

/// Adds to a resolution's outcome the identifiers and asset tag that stayed with their carriers.
fn tell_what_stayed(
    outcome: &mut String,
    carried: Vec<(HardwareId, String, String)>,
    kept_tag: Option<(String, String)>,
) {
    for (id, value, carrier) in carried {
        outcome.push_str(&format!(
            "; {} '{value}' stays with device {carrier}, which carries it",
            id.name()
        ));
    }
    if let Some((tag, holder)) = kept_tag {
        outcome.push_str(&format!(
            "; asset tag '{tag}' stays with device {holder}, which carries it"
        ));
    }
}

fn changes_text(changes: &merge::Changes) -> String {
    serde_json::to_string(changes).unwrap_or_else(|_| "{}".to_string())
}

/// A live link whose record's serial differs from its device's, as `find_merged_devices` reads it.
#[derive(sqlx::FromRow)]
struct LinkSerial {
    authority_id: Uuid,
    source_id: Uuid,
    source_name: String,
    external_id: String,
    device_serial: String,
    device_id: Uuid,
    asset_tag: Option<String>,
    record: Value,
}

/// What `find_merged_devices` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MergedScan {
    /// Live links checked.
    pub links: i64,
    /// Links whose record reports a serial number other than their device's.
    pub contradicting: usize,
    /// Of those, items opened now (the rest were open already, or dismissed before).
    pub opened: usize,
}

/// Finds devices that earlier versions merged from two physical devices: a live link whose
/// record reports a usable serial number other than its device's usable one. Each gets a
/// `serial_changed` item (`review resolve --split` separates it, `--link` the device takes the
/// serial, `--dismiss` leaves it). Runs again as often as wanted: open items are refreshed,
/// dismissed ones not raised again. Only the devices in `scope` are checked.
pub async fn find_merged_devices(
    pool: &PgPool,
    scope: &Scope,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<MergedScan, CoreError> {
    let device_in_scope = in_scope("d.authority_id", "d.school_id", 1, 2);
    let mut tx = pool.begin().await?;
    let links: i64 = sqlx::query_scalar(&format!(
        "select count(*) from source_link l join device d using (device_id) \
         where l.ended_at is null and {device_in_scope}"
    ))
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_one(&mut *tx)
    .await?;
    let rows: Vec<LinkSerial> = sqlx::query_as(&format!(
        "select l.authority_id, l.source_id, s.name as source_name, l.external_id, \
         d.serial_number as device_serial, d.device_id, d.asset_tag, l.normalized::jsonb as record \
         from source_link l join device d using (device_id) join source s using (source_id) \
         where l.ended_at is null and d.serial_number is not null \
         and l.normalized->>'serial_number' is not null \
         and l.normalized->>'serial_number' <> d.serial_number and {device_in_scope} \
         order by l.source_link_id"
    ))
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_all(&mut *tx)
    .await?;
    let mut scan = MergedScan {
        links,
        ..MergedScan::default()
    };
    for LinkSerial {
        authority_id,
        source_id,
        source_name,
        external_id,
        device_serial,
        device_id,
        asset_tag: tag,
        record,
    } in rows
    {
        let reported = record.get("serial_number").and_then(Value::as_str);
        let Some(reported) = normalize::serial_number(reported) else {
            continue;
        };
        if normalize::serial_number(Some(&device_serial)).as_deref() == Some(reported.as_str()) {
            continue;
        }
        scan.contradicting += 1;
        let label = device_label(tag.as_deref(), Some(&device_serial), device_id);
        let summary = format!(
            "{external_id} of source '{source_name}' reports serial number '{reported}' but its \
             device {label} carries '{device_serial}': an earlier version may have merged two \
             devices; --split makes the record a device of its own, --link {label} takes the \
             new serial"
        );
        let opened = sqlx::query(
            "insert into review_item (authority_id, source_id, kind, external_id, summary, \
             record, candidates, created_at, last_seen_at) \
             select $1, $2, $3, $4, $5, $6, $7, $8, $8 \
             where not exists (select 1 from review_item d where d.source_id = $2 \
             and d.external_id = $4 and d.kind = $3 and d.status = 'dismissed') \
             on conflict (source_id, external_id, kind) where status = 'open' \
             do update set summary = excluded.summary, record = excluded.record, \
             candidates = excluded.candidates, last_seen_at = excluded.last_seen_at \
             returning (xmax = 0)",
        )
        .bind(authority_id)
        .bind(source_id)
        .bind(SERIAL_CHANGED)
        .bind(&external_id)
        .bind(&summary)
        .bind(&record)
        .bind(vec![device_id])
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = opened {
            if sqlx::Row::get::<bool, _>(&row, 0) {
                scan.opened += 1;
            }
        }
    }
    tx.commit().await?;
    // Review items record no opener; the log says who looked.
    tracing::info!(actor = %actor, opened = scan.opened, "scanned for merged devices");
    Ok(scan)
}
