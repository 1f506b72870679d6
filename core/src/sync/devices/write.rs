//! The writes of one page of a device run: payloads, devices, links, history and review
//! items, each table in one statement.

use std::collections::HashSet;

use sqlx::PgConnection;
use uuid::Uuid;

use super::{payload_error, PageWrites, Prepared, Run};
use crate::identity;
use crate::store::device_row::{insert_devices, update_devices};
use crate::store::history::{event_insert, insert_events, EventContext};
use crate::sync::payloads::PayloadRow;
use crate::sync::run::{upsert_review_item, upsert_shared_identifier, ReviewUpsert, RunError};

/// Inserts links from column arrays; an `on conflict` clause may follow.
const INSERT_LINKS: &str = "insert into source_link (source_link_id, authority_id, source_id, \
    device_id, external_id, normalized, content_hash, hint_username, hint_email, \
    first_seen_at, last_seen_at) \
    select u.source_link_id, $2, $3, u.device_id, u.external_id, \
    u.normalized::json, u.content_hash, u.hint_username, u.hint_email, $4, $4 \
    from unnest($1::uuid[], $5::uuid[], $6::text[], $7::text[], $8::bytea[], $9::text[], \
    $10::text[]) \
    as u(source_link_id, device_id, external_id, normalized, content_hash, hint_username, \
    hint_email)";

impl Run<'_> {
    pub(super) async fn write(
        &mut self,
        tx: &mut PgConnection,
        prepared: &mut [Prepared],
        revive: &HashSet<&str>,
        writes: PageWrites,
    ) -> Result<(), RunError> {
        // The writer converts this page's payloads while this connection writes the rest.
        if let Some(writer) = &mut self.payloads {
            let written = writes.new_links.iter().map(|(_, _, index)| *index);
            let changed = writes.changed_links.iter().map(|(_, index)| *index);
            let mut rows = Vec::with_capacity(writes.new_links.len() + writes.changed_links.len());
            for index in written.chain(changed) {
                let item = &mut prepared[index];
                rows.push(PayloadRow {
                    external_id: item.record.external_id.clone(),
                    content_hash: item.hash.clone(),
                    payload: std::mem::take(&mut item.record.payload),
                });
            }
            writer.write(rows).await.map_err(payload_error)?;
        }

        // The devices this page creates, their fresh links and their history reference only
        // rows this run locked or created: they skip per-row reference checks where allowed.
        let history = EventContext::sync(self.source, self.now, Some(self.run_id));
        let created: HashSet<Uuid> = writes.new_devices.iter().map(|d| d.device_id).collect();
        let (created_events, other_events): (Vec<_>, Vec<_>) = writes
            .events
            .into_iter()
            .partition(|(device_id, _, _)| created.contains(device_id));
        let (revived, fresh): (Vec<_>, Vec<_>) =
            writes.new_links.into_iter().partition(|(_, _, index)| {
                revive.contains(prepared[*index].record.external_id.as_str())
            });
        let (fresh_of_created, fresh): (Vec<_>, Vec<_>) = fresh
            .into_iter()
            .partition(|(_, device_id, _)| created.contains(device_id));
        if !created.is_empty() {
            self.row_checks.switch(tx, true).await?;
            // Each statement's arguments are encoded while the database runs the one before:
            // `biased` polls the statement first, which sends it and waits for the answer.
            let (devices_written, links) = tokio::join!(
                biased;
                insert_devices(tx, writes.new_devices),
                async { self.link_insert(INSERT_LINKS, prepared, &fresh_of_created) },
            );
            devices_written?;
            let (links_written, events) = tokio::join!(
                biased;
                links.execute(&mut *tx),
                async { event_insert(&history, &created_events) },
            );
            links_written?;
            events.execute(&mut *tx).await?;
            self.row_checks.switch(tx, false).await?;
        }

        update_devices(tx, writes.changed_devices).await?;

        if !writes.ended_links.is_empty() {
            let (ids, reasons): (Vec<Uuid>, Vec<String>) = writes.ended_links.into_iter().unzip();
            sqlx::query(
                "update source_link l set ended_at = $2, ended_reason = u.reason \
                 from unnest($1::uuid[], $3::text[]) as u(source_link_id, reason) \
                 where l.source_link_id = u.source_link_id",
            )
            .bind(ids)
            .bind(self.now)
            .bind(reasons)
            .execute(&mut *tx)
            .await?;
        }

        // A record whose external id has an ended link revives that row; all others are fresh,
        // and a plain insert is cheaper than one prepared for conflicts.
        self.insert_links(tx, prepared, &fresh, "").await?;
        self.insert_links(
            tx,
            prepared,
            &revived,
            " on conflict (source_id, external_id) do update set device_id = excluded.device_id, \
             normalized = excluded.normalized, content_hash = excluded.content_hash, \
             hint_username = excluded.hint_username, hint_email = excluded.hint_email, \
             last_seen_at = excluded.last_seen_at, \
             missing_since = null, ended_at = null, ended_reason = null",
        )
        .await?;

        if !writes.changed_links.is_empty() {
            let mut link_ids = Vec::new();
            let mut normalized = Vec::new();
            let mut hashes = Vec::new();
            let mut usernames = Vec::new();
            let mut emails = Vec::new();
            for (link_id, index) in &writes.changed_links {
                let item = &prepared[*index];
                link_ids.push(*link_id);
                normalized.push(item.json.as_str());
                hashes.push(item.hash.as_slice());
                usernames.push(item.record.user.username.as_deref());
                emails.push(item.record.user.email.as_deref());
            }
            sqlx::query(
                "update source_link l set normalized = u.normalized::json, \
                 content_hash = u.content_hash, hint_username = u.hint_username, \
                 hint_email = u.hint_email, last_seen_at = $2, missing_since = null \
                 from unnest($1::uuid[], $3::text[], $4::bytea[], $5::text[], $6::text[]) \
                 as u(source_link_id, normalized, content_hash, hint_username, hint_email) \
                 where l.source_link_id = u.source_link_id",
            )
            .bind(link_ids)
            .bind(self.now)
            .bind(normalized)
            .bind(hashes)
            .bind(usernames)
            .bind(emails)
            .execute(&mut *tx)
            .await?;
        }

        if !writes.reappeared_links.is_empty() {
            sqlx::query(
                "update source_link set missing_since = null, last_seen_at = $2 \
                 where source_link_id = any($1)",
            )
            .bind(&writes.reappeared_links)
            .bind(self.now)
            .execute(&mut *tx)
            .await?;
        }

        insert_events(tx, &history, &other_events).await?;

        for (index, kind, summary, candidates) in writes.reviews {
            let item = &prepared[index];
            let review = ReviewUpsert {
                source: self.source,
                run_id: self.run_id,
                now: self.now,
                kind,
                external_id: &item.record.external_id,
                summary: &summary,
                record_json: item.json.clone(),
                candidates: &candidates,
            };
            upsert_review_item(tx, review).await?;
        }
        let mut shared: Vec<_> = writes.shared.into_iter().collect();
        // In one order, so that two runs reporting the same identifiers wait rather than deadlock.
        shared.sort_by(|((_, a), _), ((_, b), _)| a.cmp(b));
        for ((id, value), devices) in shared {
            if self.shared_reported.insert((id, value.clone())) {
                self.counts.review_items += 1;
            }
            let key = identity::shared_identifier_key(id, &value);
            let summary = identity::shared_identifier_summary(id, &value);
            upsert_shared_identifier(
                tx,
                self.source,
                self.run_id,
                self.now,
                &key,
                &summary,
                &devices,
            )
            .await?;
        }
        Ok(())
    }

    /// Inserts `links` (link id, device id, record index), with `on_conflict` appended.
    async fn insert_links(
        &self,
        tx: &mut PgConnection,
        prepared: &[Prepared],
        links: &[(Uuid, Uuid, usize)],
        on_conflict: &str,
    ) -> Result<(), sqlx::Error> {
        if links.is_empty() {
            return Ok(());
        }
        let sql = format!("{INSERT_LINKS}{on_conflict}");
        self.link_insert(&sql, prepared, links)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }

    /// The insert of `links` as a bound query, built apart from running it so the engine can
    /// build it while the database runs the statement before.
    fn link_insert<'q>(
        &self,
        sql: &'q str,
        prepared: &'q [Prepared],
        links: &[(Uuid, Uuid, usize)],
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        let mut link_ids = Vec::with_capacity(links.len());
        let mut device_ids = Vec::with_capacity(links.len());
        let mut external_ids = Vec::with_capacity(links.len());
        let mut normalized = Vec::with_capacity(links.len());
        let mut hashes = Vec::with_capacity(links.len());
        let mut usernames = Vec::with_capacity(links.len());
        let mut emails = Vec::with_capacity(links.len());
        for &(link_id, device_id, index) in links {
            let item = &prepared[index];
            link_ids.push(link_id);
            device_ids.push(device_id);
            external_ids.push(item.record.external_id.as_str());
            normalized.push(item.json.as_str());
            hashes.push(item.hash.as_slice());
            usernames.push(item.record.user.username.as_deref());
            emails.push(item.record.user.email.as_deref());
        }
        sqlx::query(sql)
            .bind(link_ids)
            .bind(self.source.authority_id)
            .bind(self.source.source_id)
            .bind(self.now)
            .bind(device_ids)
            .bind(external_ids)
            .bind(normalized)
            .bind(hashes)
            .bind(usernames)
            .bind(emails)
    }
}
