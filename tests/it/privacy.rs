//! The privacy purge against PostgreSQL: past an authority's retention, closed loans keep the
//! device's story under a pseudonym, departed persons are removed, open loans hold them back,
//! and a dry run changes nothing.

use bestand_core::model::PersonRole;
use bestand_core::person::{Membership, PersonIds, PersonRecord};
use bestand_core::privacy;
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
    let source = store::source_by_name(pool, "ucs").await.unwrap();
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
    let report = privacy::purge(&db.pool, early, "musterstadt", 12, false, "dsb")
        .await
        .unwrap();
    assert!(
        report.loans.is_empty() && report.persons.is_empty(),
        "{report:?}"
    );

    // Past retention, dry run first: everything reported, nothing changed.
    let late = left_at.checked_add_months(Months::new(13)).unwrap();
    let dry = privacy::purge(&db.pool, late, "musterstadt", 12, true, "dsb")
        .await
        .unwrap();
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

    let report = privacy::purge(&db.pool, late, "musterstadt", 12, false, "dsb")
        .await
        .unwrap();
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
