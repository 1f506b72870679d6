//! Who has which device: the MDMs' user hints (Jamf username or email, Intune UPN, Relution
//! user, Jamf School owner) resolved to persons from the school directories.
//!
//! The result is derived data, rebuilt for a whole authority at the end of every run that
//! changed links or persons, inside that run's transaction, so it is never staler than the
//! inventory. A hint that matches nobody, or several persons, keeps that status and its
//! candidates so it can be listed instead of guessed.
//!
//! The matching runs here rather than in one SQL statement: right after a run has written
//! tens of thousands of links in its transaction, the planner's statistics still describe the
//! empty tables of before, and a set-based statement could be planned as nested loops over
//! every link (seen: a 50,000-device first sync went from 16 s to 84 s). Two sequential reads
//! and hash maps cost the same every time.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// How the hints of one authority resolved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct AssignmentCounts {
    pub matched: i64,
    pub no_match: i64,
    pub ambiguous: i64,
}

/// One link's user hint, lower-cased and trimmed.
struct Hint {
    device_id: Uuid,
    source_id: Uuid,
    username: Option<String>,
    email: Option<String>,
}

/// A person as matching sees them.
struct Candidate {
    person_id: Uuid,
    left: bool,
}

/// What a hint resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    hint_username: Option<String>,
    hint_email: Option<String>,
    status: &'static str,
    person_id: Option<Uuid>,
    candidates: Vec<Uuid>,
}

#[derive(Default)]
struct PersonMaps {
    persons: Vec<Candidate>,
    by_email: HashMap<String, Vec<usize>>,
    by_username: HashMap<String, Vec<usize>>,
}

impl PersonMaps {
    /// A hint matches persons in this order, and the first level with any candidate decides:
    /// email = email; username = username or email; a UPN-like username's local part =
    /// username. Among several candidates, persons still at a school win over persons who
    /// left; more than one left over is ambiguous.
    fn resolve(&self, hint: &Hint) -> Vec<Uuid> {
        let mut levels: Vec<Vec<usize>> = Vec::new();
        if let Some(email) = &hint.email {
            levels.push(self.by_email.get(email).cloned().unwrap_or_default());
        }
        if let Some(username) = &hint.username {
            let mut found = self.by_username.get(username).cloned().unwrap_or_default();
            for index in self.by_email.get(username).into_iter().flatten() {
                if !found.contains(index) {
                    found.push(*index);
                }
            }
            levels.push(found);
            if let Some((local, _)) = username.split_once('@').filter(|(l, _)| !l.is_empty()) {
                levels.push(self.by_username.get(local).cloned().unwrap_or_default());
            }
        }
        let Some(found) = levels.into_iter().find(|found| !found.is_empty()) else {
            return Vec::new();
        };
        let current: Vec<usize> = found
            .iter()
            .copied()
            .filter(|index| !self.persons[*index].left)
            .collect();
        let chosen = if current.is_empty() { found } else { current };
        let mut ids: Vec<Uuid> = chosen
            .into_iter()
            .map(|index| self.persons[index].person_id)
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

fn clean(value: Option<String>) -> Option<String> {
    value
        .map(|value| value.trim().to_lowercase())
        .filter(|value| !value.is_empty())
}

/// Recomputes every device assignment of `authority_id`; rows whose outcome did not change
/// are not written, and keep the time they were first resolved that way.
pub(crate) async fn refresh_assignments(
    conn: &mut PgConnection,
    authority_id: Uuid,
    now: DateTime<Utc>,
) -> Result<AssignmentCounts, sqlx::Error> {
    let rows: Vec<(Uuid, Uuid, Option<String>, Option<String>)> = sqlx::query_as(
        "select device_id, source_id, hint_username, hint_email from source_link \
         where authority_id = $1 and ended_at is null and missing_since is null",
    )
    .bind(authority_id)
    .fetch_all(&mut *conn)
    .await?;
    let hints: Vec<Hint> = rows
        .into_iter()
        .map(|(device_id, source_id, username, email)| Hint {
            device_id,
            source_id,
            username: clean(username),
            email: clean(email),
        })
        .filter(|hint| hint.username.is_some() || hint.email.is_some())
        .collect();

    let people: Vec<(Uuid, Option<String>, Option<String>, bool)> = sqlx::query_as(
        "select person_id, username, email, left_at is not null from person \
         where authority_id = $1",
    )
    .bind(authority_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut maps = PersonMaps::default();
    for (person_id, username, email, left) in people {
        let index = maps.persons.len();
        maps.persons.push(Candidate { person_id, left });
        if let Some(username) = clean(username) {
            maps.by_username.entry(username).or_default().push(index);
        }
        if let Some(email) = clean(email) {
            maps.by_email.entry(email).or_default().push(index);
        }
    }

    type Stored = (
        Uuid,
        Uuid,
        Option<String>,
        Option<String>,
        String,
        Option<Uuid>,
        Vec<Uuid>,
    );
    let stored: Vec<Stored> = sqlx::query_as(
        "select device_id, source_id, hint_username, hint_email, status, person_id, candidates \
         from device_assignment where authority_id = $1",
    )
    .bind(authority_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut before: HashMap<(Uuid, Uuid), Outcome> = stored
        .into_iter()
        .map(
            |(device, source, username, email, status, person_id, candidates)| {
                let status = match status.as_str() {
                    "matched" => "matched",
                    "ambiguous" => "ambiguous",
                    _ => "no_match",
                };
                let outcome = Outcome {
                    hint_username: username,
                    hint_email: email,
                    status,
                    person_id,
                    candidates,
                };
                ((device, source), outcome)
            },
        )
        .collect();

    let mut counts = AssignmentCounts::default();
    let mut writes = AssignmentWrites::default();
    let mut live: HashSet<(Uuid, Uuid)> = HashSet::with_capacity(hints.len());
    for hint in &hints {
        let ids = maps.resolve(hint);
        let outcome = match ids.as_slice() {
            [] => Outcome {
                hint_username: hint.username.clone(),
                hint_email: hint.email.clone(),
                status: "no_match",
                person_id: None,
                candidates: Vec::new(),
            },
            [one] => Outcome {
                hint_username: hint.username.clone(),
                hint_email: hint.email.clone(),
                status: "matched",
                person_id: Some(*one),
                candidates: Vec::new(),
            },
            _ => Outcome {
                hint_username: hint.username.clone(),
                hint_email: hint.email.clone(),
                status: "ambiguous",
                person_id: None,
                candidates: ids,
            },
        };
        match outcome.status {
            "matched" => counts.matched += 1,
            "ambiguous" => counts.ambiguous += 1,
            _ => counts.no_match += 1,
        }
        let key = (hint.device_id, hint.source_id);
        live.insert(key);
        match before.remove(&key) {
            Some(old) if old == outcome => {}
            // The upsert keeps `since` unless the outcome itself changed.
            _ => writes.push(key, outcome),
        }
    }
    let gone: Vec<(Uuid, Uuid)> = before
        .into_keys()
        .filter(|key| !live.contains(key))
        .collect();
    writes.apply(conn, authority_id, now).await?;
    if !gone.is_empty() {
        let (devices, sources): (Vec<Uuid>, Vec<Uuid>) = gone.into_iter().unzip();
        sqlx::query(
            "delete from device_assignment d using unnest($1::uuid[], $2::uuid[]) \
             as g(device_id, source_id) \
             where d.device_id = g.device_id and d.source_id = g.source_id",
        )
        .bind(&devices)
        .bind(&sources)
        .execute(&mut *conn)
        .await?;
    }
    Ok(counts)
}

/// Changed assignment rows, as columns for one `unnest` upsert.
#[derive(Default)]
struct AssignmentWrites {
    devices: Vec<Uuid>,
    sources: Vec<Uuid>,
    usernames: Vec<Option<String>>,
    emails: Vec<Option<String>>,
    statuses: Vec<&'static str>,
    persons: Vec<Option<Uuid>>,
    // Candidate lists differ in length, which unnest of a 2-D array cannot carry: text form.
    candidates: Vec<String>,
}

impl AssignmentWrites {
    fn push(&mut self, key: (Uuid, Uuid), outcome: Outcome) {
        self.devices.push(key.0);
        self.sources.push(key.1);
        self.usernames.push(outcome.hint_username);
        self.emails.push(outcome.hint_email);
        self.statuses.push(outcome.status);
        self.persons.push(outcome.person_id);
        let ids: Vec<String> = outcome.candidates.iter().map(Uuid::to_string).collect();
        self.candidates.push(format!("{{{}}}", ids.join(",")));
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        authority_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        if self.devices.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "insert into device_assignment (authority_id, device_id, source_id, hint_username, \
             hint_email, status, person_id, candidates, since) \
             select $1, u.device_id, u.source_id, u.username, u.email, u.status, u.person_id, \
             u.candidates::uuid[], $2 \
             from unnest($3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[], \
             $8::uuid[], $9::text[]) \
             as u(device_id, source_id, username, email, status, person_id, candidates) \
             on conflict (device_id, source_id) do update set \
             hint_username = excluded.hint_username, hint_email = excluded.hint_email, \
             status = excluded.status, person_id = excluded.person_id, \
             candidates = excluded.candidates, \
             since = case when device_assignment.status = excluded.status \
                 and device_assignment.person_id is not distinct from excluded.person_id \
                 then device_assignment.since else excluded.since end",
        )
        .bind(authority_id)
        .bind(now)
        .bind(&self.devices)
        .bind(&self.sources)
        .bind(&self.usernames)
        .bind(&self.emails)
        .bind(&self.statuses)
        .bind(&self.persons)
        .bind(&self.candidates)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
