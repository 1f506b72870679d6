//! The privacy purge against PostgreSQL: past an authority's retention, closed loans keep the
//! device's story under a pseudonym, departed persons are removed, open loans hold them back,
//! and a dry run changes nothing.

use bestand_core::access::{Actor, Scope};
use bestand_core::model::PersonRole;
use bestand_core::person::{Membership, PersonIds, PersonRecord};
use bestand_core::privacy;
use bestand_core::record::{DeviceRecord, UserHint};
use bestand_core::store;
use bestand_core::sync::{self, DirectoryItem, DirectorySyncOptions, PersonPage};
use bestand_core::FixedClock;
use chrono::{DateTime, Duration, Months, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{clock, fleet, musterstadt, sync_records, test_db, ClockValue};

fn pupil(n: usize) -> PersonRecord {
    PersonRecord {
        external_id: format!("uuid-{n}"),
        username: Some(format!("pupil.{n}")),
        given_name: Some("Mia".into()),
        family_name: Some(format!("Muster{n}")),
        ids: PersonIds::default(),
        memberships: vec![Membership {
            school: "100001".into(),
            role: PersonRole::Student,
            class: Some("4a".into()),
        }],
        ..PersonRecord::default()
    }
}

async fn read(pool: &PgPool, clock: &FixedClock, persons: Vec<PersonRecord>) {
    let source = store::source_by_name(pool, &Scope::All, "ucs")
        .await
        .unwrap();
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    let total = persons.len() as u64;
    sender
        .send(DirectoryItem::Persons(PersonPage {
            label: "users".into(),
            records: persons,
        }))
        .await
        .unwrap();
    sender
        .send(DirectoryItem::Complete {
            reported_total: total,
        })
        .await
        .unwrap();
    let report = sync::run_directory_sync(
        pool,
        clock,
        &bestand_core::Scope::All,
        &bestand_core::Actor::System("test"),
        &source,
        receiver,
        &DirectorySyncOptions::default(),
        &sync::NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(report.error, None);
}

/// A loan row as the loan commands write it (the purge reads nothing else).
async fn loan(pool: &PgPool, serial: &str, username: &str, closed: Option<DateTime<Utc>>) -> i64 {
    sqlx::query_scalar(
        "insert into loan (authority_id, device_id, person_id, school_id, state, handed_out_at, \
         handed_out_by, due_on, returned_at, closed_at, updated_at) \
         select d.authority_id, d.device_id, p.person_id, d.school_id, \
         case when $3::timestamptz is null then 'active' else 'returned' end, \
         $4, 'sekretariat', date '2027-07-31', $3, $3, $4 \
         from device d, person p where d.serial_number = $1 and p.username = $2 \
         returning loan_id",
    )
    .bind(serial)
    .bind(username)
    .bind(closed)
    .bind(crate::support::t0())
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Musterstadt's purge with a retention of 12 months, by the data protection officer.
async fn purge_as_dsb(
    pool: &PgPool,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<privacy::PurgeReport, bestand_core::CoreError> {
    let dsb = Actor::CliUser("dsb".into());
    privacy::purge(pool, &Scope::All, &dsb, now, "musterstadt", 12, dry_run).await
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn closed_loans_of_persons_past_retention_are_pseudonymised_and_the_persons_removed() {
    let db = test_db().await;
    let clock = clock();
    let jamf = musterstadt(&db.pool, &["jamf"]).await.remove(0);
    crate::support::directory_source(&db.pool, "ucs").await;
    sync_records(&db.pool, &clock, &jamf, fleet(3)).await;
    read(&db.pool, &clock, (0..4).map(pupil).collect()).await;
    let returned = clock.now_value() + Duration::days(2);
    let done = loan(&db.pool, "SER00000", "pupil.0", Some(returned)).await;
    let open = loan(&db.pool, "SER00001", "pupil.1", None).await;
    let staying = loan(&db.pool, "SER00002", "pupil.2", Some(returned)).await;

    // pupil.0 and pupil.1 leave the school.
    clock.advance(Duration::days(30));
    let left_at = clock.now_value();
    read(&db.pool, &clock, vec![pupil(2), pupil(3)]).await;
    let events_before = count(&db.pool, "select count(*) from device_event").await;

    // Within retention: nothing to do.
    let early = left_at.checked_add_months(Months::new(11)).unwrap();
    let report = purge_as_dsb(&db.pool, early, false).await.unwrap();
    assert!(
        report.loans.is_empty() && report.persons.is_empty(),
        "{report:?}"
    );

    // Past retention, dry run first: everything reported, nothing changed.
    let late = left_at.checked_add_months(Months::new(13)).unwrap();
    let dry = purge_as_dsb(&db.pool, late, true).await.unwrap();
    assert_eq!(
        dry.loans.iter().map(|l| l.loan_id).collect::<Vec<_>>(),
        vec![done]
    );
    assert_eq!(
        dry.persons
            .iter()
            .map(|p| p.username.clone().unwrap())
            .collect::<Vec<_>>(),
        vec!["pupil.0"]
    );
    assert_eq!(
        dry.kept_with_open_loans
            .iter()
            .map(|p| p.username.clone().unwrap())
            .collect::<Vec<_>>(),
        vec!["pupil.1"],
        "a pupil who left with a device is kept until it is back"
    );
    assert_eq!(count(&db.pool, "select count(*) from person").await, 4);
    assert_eq!(
        count(
            &db.pool,
            "select count(*) from loan where person_id is null"
        )
        .await,
        0
    );

    let report = purge_as_dsb(&db.pool, late, false).await.unwrap();
    assert_eq!(report.loans.len(), 1);
    let pseudonym = &report.loans[0].pseudonym;
    assert!(
        pseudonym.starts_with("P-") && pseudonym.len() == 12,
        "{pseudonym}"
    );
    assert_eq!(report.loans[0].serial_number.as_deref(), Some("SER00000"));

    let (person, stored_pseudonym): (Option<Uuid>, Option<String>) =
        sqlx::query_as("select person_id, borrower_pseudonym from loan where loan_id = $1")
            .bind(done)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(person, None);
    assert_eq!(stored_pseudonym.as_deref(), Some(pseudonym.as_str()));
    let remaining: Vec<String> =
        sqlx::query_scalar("select username from person order by username")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(remaining, vec!["pupil.1", "pupil.2", "pupil.3"]);
    assert_eq!(
        count(
            &db.pool,
            "select count(*) from person_membership m where not exists \
             (select 1 from person p where p.person_id = m.person_id)"
        )
        .await,
        0
    );
    for kept in [open, staying] {
        let person: Option<Uuid> =
            sqlx::query_scalar("select person_id from loan where loan_id = $1")
                .bind(kept)
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert!(person.is_some(), "loan {kept} keeps its borrower");
    }
    // The device's history is untouched, and nothing in it names the purged pupil.
    assert_eq!(
        count(&db.pool, "select count(*) from device_event").await,
        events_before
    );
    assert_eq!(
        count(
            &db.pool,
            "select count(*) from device_event where changes::text like '%pupil.0%' \
             or changes::text like '%Muster0%'"
        )
        .await,
        0
    );
    let audit: Vec<(bool, i32, i32)> = sqlx::query_as(
        "select dry_run, loans_pseudonymised, persons_deleted from privacy_purge \
         order by privacy_purge_id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(audit, vec![(false, 0, 0), (true, 1, 1), (false, 1, 1)]);
}

/// Ottilie Brennecke, the pupil whose every trace the purge must remove.
const OTTILIE: [&str; 5] = [
    "Ottilie",
    "Brennecke",
    "ottilie.brennecke",
    "ottilie.brennecke@gs-lindenweg.example",
    // Her entryUUID, the directory's id for her.
    "5b1e6f0c-7d2a-4c3e-9f10-0ab1c2d3e4f5",
];

fn ottilie() -> PersonRecord {
    PersonRecord {
        external_id: OTTILIE[4].into(),
        username: Some(OTTILIE[2].into()),
        email: Some(OTTILIE[3].into()),
        given_name: Some(OTTILIE[0].into()),
        family_name: Some(OTTILIE[1].into()),
        problems: vec!["ucsschoolRole `teacher` names no school; ignored".into()],
        ..pupil(9)
    }
}

/// An iPad whose MDM names `user` (login, full name, email) in its record, its raw payload and
/// the device name people gave it.
fn ipad_of(n: usize, user: Option<(&str, &str, &str)>) -> DeviceRecord {
    let mut record = crate::support::ipad(&format!("mobile:{n}"), &format!("SER{n:05}"));
    if let Some((username, real_name, email)) = user {
        record.user = UserHint {
            username: Some(username.into()),
            real_name: Some(real_name.into()),
            email: Some(email.into()),
        };
        record.payload = serde_json::json!({
            "id": record.external_id,
            "general": { "name": record.name, "assetTag": null, "managed": true },
            "userAndLocation": {
                "username": username,
                "realname": real_name,
                "email": email,
                "position": "Schüler 4a",
                "phone": null,
            },
            "hardware": { "serialNumber": record.serial_number, "capacityMb": 65536 },
        })
        .to_string();
        record.problems = vec![format!(
            "userAndLocation.email `{email}` is not the login's address; kept as a hint"
        )];
    }
    record
}

/// Every text-like column of every table, searched for `needle` (case-insensitive): the
/// places that still hold it, as `table.column`.
async fn places_holding(pool: &PgPool, needle: &str) -> Vec<String> {
    let columns: Vec<(String, String)> = sqlx::query_as(
        "select table_name::text, column_name::text from information_schema.columns \
         where table_schema = 'public' \
         and (data_type in ('text', 'character varying', 'character', 'json', 'jsonb') \
              or udt_name in ('_text', '_varchar')) \
         order by table_name, column_name",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(columns.len() > 40, "found only {columns:?}");
    let mut places = Vec::new();
    for (table, column) in columns {
        let hits: i64 = sqlx::query_scalar(&format!(
            "select count(*) from \"{table}\" where \"{column}\"::text ilike '%' || $1 || '%'"
        ))
        .bind(needle)
        .fetch_one(pool)
        .await
        .unwrap();
        if hits > 0 {
            places.push(format!("{table}.{column} ({hits})"));
        }
    }
    places
}

/// The case: a pupil who left years ago must not be found by name, login or email
/// anywhere after the purge, while the devices' records and the persons who stay keep theirs.
#[tokio::test]
async fn a_purged_person_is_found_in_no_table() {
    let db = test_db().await;
    let clock = clock();
    let jamf = musterstadt(&db.pool, &["jamf"]).await.remove(0);
    let ucs = crate::support::directory_source(&db.pool, "ucs").await;
    read(&db.pool, &clock, vec![ottilie(), pupil(2)]).await;
    let devices = vec![
        ipad_of(0, Some((OTTILIE[2], "Ottilie Brennecke", OTTILIE[3]))),
        ipad_of(
            1,
            Some(("pupil.2", "Mia Muster2", "pupil.2@gs-lindenweg.example")),
        ),
        ipad_of(2, None),
    ];
    sync_records(&db.pool, &clock, &jamf, devices.clone()).await;
    let returned = clock.now_value() + Duration::days(2);
    let loan_id = loan(&db.pool, "SER00000", OTTILIE[2], Some(returned)).await;
    sqlx::query(
        "update loan set condition_in = 'Hülle fehlt, sagt Ottilie', \
         damage_notes = 'Ottilie Brennecke: Display gesprungen' where loan_id = $1",
    )
    .bind(loan_id)
    .execute(&db.pool)
    .await
    .unwrap();
    // Review items as the engines write them: her directory record held as ambiguous (settled
    // long ago), and her iPad's record held for a serial another device reported (dismissed,
    // which must keep it from being raised again).
    let review = |kind: &'static str,
                  status: &'static str,
                  external_id: &str,
                  summary: String,
                  record: String| {
        let pool = db.pool.clone();
        let external_id = external_id.to_string();
        let source = if kind == "person_ambiguous" {
            ucs.source_id
        } else {
            jamf.source_id
        };
        async move {
            sqlx::query(
                "insert into review_item (authority_id, source_id, kind, external_id, summary, \
                 record, status, created_at, last_seen_at) \
                 select authority_id, source_id, $2, $3, $4, $5::jsonb, $6, $7, $7 \
                 from source where source_id = $1",
            )
            .bind(source)
            .bind(kind)
            .bind(external_id)
            .bind(summary)
            .bind(record)
            .bind(status)
            .bind(crate::support::t0())
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    review(
        "person_ambiguous",
        "resolved",
        OTTILIE[4],
        format!(
            "person {} ({}) matches 2 persons by email",
            OTTILIE[4], OTTILIE[2]
        ),
        serde_json::to_string(&ottilie()).unwrap(),
    )
    .await;
    review(
        "serial_conflict",
        "dismissed",
        "mobile:0",
        "mobile:0 reports serial SER00000, which iPad mobile:2 carries".into(),
        serde_json::to_string(&devices[0]).unwrap(),
    )
    .await;

    // She leaves the school; Mia stays.
    clock.advance(Duration::days(30));
    let left_at = clock.now_value();
    read(&db.pool, &clock, vec![pupil(2)]).await;
    for needle in OTTILIE {
        assert!(
            !places_holding(&db.pool, needle).await.is_empty(),
            "the setup names {needle} somewhere"
        );
    }
    let before = places_holding(&db.pool, OTTILIE[2]).await;
    for table in [
        "review_item",
        "sync_run",
        "source_link",
        "source_payload",
        "person",
    ] {
        assert!(
            before
                .iter()
                .any(|place| place.starts_with(&format!("{table}."))),
            "{table} names her before the purge: {before:?}"
        );
    }

    let late = left_at.checked_add_months(Months::new(13)).unwrap();
    let dry = purge_as_dsb(&db.pool, late, true).await.unwrap();
    let expected = privacy::Scrubbed {
        review_items_deleted: 1,
        review_items_scrubbed: 1,
        // Her directory run (the problem with her record) and the iPads' run.
        sync_runs: 2,
        device_links: 1,
        raw_payloads: 1,
    };
    assert_eq!(
        dry.scrubbed, expected,
        "the dry run counts what it would do"
    );
    assert_eq!(
        places_holding(&db.pool, OTTILIE[2]).await,
        before,
        "and changes nothing"
    );

    let report = purge_as_dsb(&db.pool, late, false).await.unwrap();
    assert_eq!(report.scrubbed, expected);
    assert_eq!(report.persons.len(), 1);
    for needle in OTTILIE {
        assert_eq!(
            places_holding(&db.pool, needle).await,
            Vec::<String>::new(),
            "{needle} is still held"
        );
    }

    // What stays: Mia and her iPad untouched, the iPads' records whole but for Ottilie.
    let warnings: serde_json::Value =
        sqlx::query_scalar("select warnings from sync_run where kind = 'devices'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        warnings,
        serde_json::json!([
            "mobile-devices page 0: mobile:0: userAndLocation.email `[removed]` is not the \
             login's address; kept as a hint",
            "mobile-devices page 0: mobile:1: userAndLocation.email \
             `pupil.2@gs-lindenweg.example` is not the login's address; kept as a hint",
        ]),
        "only her warning is scrubbed"
    );
    for needle in ["pupil.2", "Mia Muster2"] {
        let places = places_holding(&db.pool, needle).await;
        for table in ["source_payload.payload", "source_link.normalized"] {
            assert!(
                places.iter().any(|place| place.starts_with(table)),
                "{needle} stays in {table}: {places:?}"
            );
        }
    }
    let assigned: Vec<(String, String)> = sqlx::query_as(
        "select d.serial_number, a.status from device_assignment a \
         join device d using (device_id) order by 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        assigned,
        vec![("SER00001".to_string(), "matched".to_string())],
        "her iPad names nobody now; Mia's is still hers"
    );
    let payload: serde_json::Value =
        sqlx::query_scalar("select payload from source_payload where external_id = 'mobile:0'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        payload["userAndLocation"],
        serde_json::json!({
            "username": "[removed]", "realname": "[removed]", "email": "[removed]",
            "position": "Schüler 4a", "phone": null,
        })
    );
    assert_eq!(payload["hardware"]["serialNumber"], "SER00000");
    let (normalized, hint): (serde_json::Value, Option<String>) = sqlx::query_as(
        "select normalized::jsonb, hint_username from source_link where external_id = 'mobile:0'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(normalized["user"]["email"], "[removed]");
    assert_eq!(normalized["serial_number"], "SER00000");
    assert_eq!(hint, None);
    let (state, kind): (String, String) =
        sqlx::query_as("select status, kind from review_item order by review_item_id")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        (state.as_str(), kind.as_str()),
        ("dismissed", "serial_conflict")
    );
    let notes: (Option<String>, Option<String>) =
        sqlx::query_as("select condition_in, damage_notes from loan where loan_id = $1")
            .bind(loan_id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        notes,
        (
            Some("Hülle fehlt, sagt [removed]".into()),
            Some("[removed]: Display gesprungen".into())
        )
    );
}

fn person(
    external_id: &str,
    username: &str,
    email: &str,
    given: &str,
    family: &str,
) -> PersonRecord {
    PersonRecord {
        external_id: external_id.into(),
        username: Some(username.into()),
        email: Some(email.into()),
        given_name: Some(given.into()),
        family_name: Some(family.into()),
        ..pupil(0)
    }
}

/// What names a purged person only by what others share (her full name, a login the school gave
/// again) stays, and so does everything of those others: the purge removes her, not a namesake.
#[tokio::test]
async fn the_purge_leaves_what_names_the_persons_who_stay() {
    let db = test_db().await;
    let clock = clock();
    let jamf = musterstadt(&db.pool, &["jamf"]).await.remove(0);
    crate::support::directory_source(&db.pool, "ucs").await;
    let lea = person(
        "uuid-lea",
        "lea.schulz",
        "lea.schulz@gs.example",
        "Lea",
        "Schulz",
    );
    let namesake = person(
        "uuid-lea-2",
        "lea.schulz2",
        "l.schulz@gs.example",
        "Lea",
        "Schulz",
    );
    let ben_before = person(
        "uuid-ben-1",
        "ben.wolf",
        "ben.wolf@gs.example",
        "Ben",
        "Wolf",
    );
    read(&db.pool, &clock, vec![lea, namesake.clone(), ben_before]).await;
    // Lea and the first Ben leave; the school gives his login to a new Ben Wolf.
    clock.advance(Duration::days(30));
    let left_at = clock.now_value();
    let ben = person("uuid-ben-2", "ben.wolf", "b.wolf@gs.example", "Ben", "Wolf");
    read(&db.pool, &clock, vec![namesake, ben]).await;
    let devices = vec![
        ipad_of(
            0,
            Some(("lea.schulz", "Lea Schulz", "lea.schulz@gs.example")),
        ),
        ipad_of(
            1,
            Some(("lea.schulz2", "Lea Schulz", "l.schulz@gs.example")),
        ),
        ipad_of(2, Some(("ben.wolf", "Ben Wolf", "b.wolf@gs.example"))),
    ];
    sync_records(&db.pool, &clock, &jamf, devices).await;
    let payloads = || async {
        let rows: Vec<(String, serde_json::Value)> =
            sqlx::query_as("select external_id, payload from source_payload order by external_id")
                .fetch_all(&db.pool)
                .await
                .unwrap();
        rows
    };
    let before = payloads().await;

    let late = left_at.checked_add_months(Months::new(13)).unwrap();
    let report = purge_as_dsb(&db.pool, late, false).await.unwrap();
    let mut purged: Vec<String> = report
        .persons
        .iter()
        .map(|p| p.username.clone().unwrap())
        .collect();
    purged.sort();
    assert_eq!(purged, vec!["ben.wolf", "lea.schulz"]);
    assert_eq!(report.scrubbed.device_links, 1, "{:?}", report.scrubbed);

    let after = payloads().await;
    assert_eq!(
        after[1..],
        before[1..],
        "the namesake's and the new Ben's iPads"
    );
    assert_eq!(
        after[0].1["userAndLocation"]["realname"], "[removed]",
        "{after:?}"
    );
    let assigned: Vec<(String, String, String)> = sqlx::query_as(
        "select d.serial_number, a.status, p.username from device_assignment a \
         join device d using (device_id) join person p using (person_id) order by 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        assigned,
        vec![
            ("SER00001".into(), "matched".into(), "lea.schulz2".into()),
            ("SER00002".into(), "matched".into(), "ben.wolf".into()),
        ]
    );
}
