//! Lifecycle (issue 17) against PostgreSQL: the database itself refuses moves outside
//! `lifecycle_transition` (and disposal without its record), `change_state` refuses them with
//! a clear message and records allowed ones with actor and reason; loans put devices on loan
//! and back (lost and stolen apart); repairs move devices and add up their cost; an Inventur
//! lists what was not seen, what is booked elsewhere and unknown tags.

use std::io::Cursor;

use bestand_cli::commands::inventory::read_tags;
use bestand_core::access::{Actor, Scope};
use bestand_core::loans::{self, Loss, ReturnRequest};
use bestand_core::model::{DisposalMethod, LifecycleState, RepairBilling, RepairOutcome};
use bestand_core::money::{parse_price, Notation};
use bestand_core::store::devices::show_device;
use bestand_core::store::inventory::{self, ScanPlace};
use bestand_core::store::lifecycle::{self, Disposal, StateRequest};
use bestand_core::store::repairs::{self, RepairClosing, RepairFilter, RepairOpening};
use bestand_core::CoreError;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

use crate::loans::world;
use crate::support::{musterstadt, t0, test_db};

fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

fn anna() -> Actor {
    Actor::CliUser("anna".into())
}

/// Musterstadt's school `number`.
async fn school(pool: &PgPool, number: &str) -> (Uuid, Uuid) {
    sqlx::query_as("select authority_id, school_id from school where school_number = $1")
        .bind(number)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A device tagged `tag` at school `number` in `room`, inserted in `state` (an insert is no
/// move: the trigger watches updates).
async fn device(pool: &PgPool, number: &str, tag: &str, state: &str, room: &str) -> Uuid {
    let (authority, school_id) = school(pool, number).await;
    sqlx::query_scalar(
        "insert into device (device_id, authority_id, school_id, asset_tag, serial_number, \
         category, model, lifecycle_state, room, purchase_price, currency, warranty_end, \
         first_seen_at, updated_at) \
         values (gen_random_uuid(), $1, $2, $3, 'S' || $3, 'tablet', 'iPad', $4, $5, 349.00, \
         'EUR', '2025-01-31', $6, $6) returning device_id",
    )
    .bind(authority)
    .bind(school_id)
    .bind(tag)
    .bind(state)
    .bind(room)
    .bind(t0())
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn state_of(pool: &PgPool, tag: &str) -> String {
    sqlx::query_scalar("select lifecycle_state from device where asset_tag = $1")
        .bind(tag)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A raw UPDATE of the state, as a hand-written statement would do it; the database's error.
async fn raw_move(pool: &PgPool, tag: &str, to: &str) -> Result<(), (String, String)> {
    match sqlx::query("update device set lifecycle_state = $2 where asset_tag = $1")
        .bind(tag)
        .bind(to)
        .execute(pool)
        .await
    {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(db)) => Err((
            db.code().unwrap_or_default().to_string(),
            db.constraint().unwrap_or_default().to_string(),
        )),
        Err(other) => panic!("{other}"),
    }
}

/// The disposal record of a device handed to a recycler with its data wiped.
fn recycled() -> Disposal {
    Disposal {
        method: DisposalMethod::Recycler,
        recipient: Some("Recycling GmbH".into()),
        certificate_number: Some("ZN-2026-0042".into()),
        data_wiped: true,
        disposed_on: day("2026-11-20"),
    }
}

fn request(to: LifecycleState, reason: &str) -> StateRequest {
    StateRequest {
        to,
        reason: reason.into(),
        disposal: None,
    }
}

async fn change(pool: &PgPool, tag: &str, request: &StateRequest) -> Result<String, CoreError> {
    lifecycle::change_state(pool, &Scope::All, &anna(), tag, request, t0())
        .await
        .map(|change| change.to_state)
}

#[tokio::test]
async fn the_database_refuses_forbidden_moves_itself() {
    let db = test_db().await;
    let pool = &db.pool;
    musterstadt(pool, &[]).await;
    device(pool, "100001", "D-1", "in_use", "R1").await;
    let transition = ("23514".to_string(), "lifecycle_transition".to_string());
    assert_eq!(
        raw_move(pool, "D-1", "ordered").await,
        Err(transition.clone())
    );
    assert_eq!(
        raw_move(pool, "D-1", "disposed").await,
        Err(transition.clone())
    );
    assert_eq!(state_of(pool, "D-1").await, "in_use");
    // retired to disposed is an allowed move, but not without the disposal record.
    raw_move(pool, "D-1", "retired").await.unwrap();
    assert_eq!(
        raw_move(pool, "D-1", "disposed").await,
        Err(("23514".to_string(), "device_disposal".to_string()))
    );
    let mut disposed = request(LifecycleState::Disposed, "Altgerät");
    disposed.disposal = Some(recycled());
    change(pool, "D-1", &disposed).await.unwrap();
    // Disposed is final.
    assert_eq!(raw_move(pool, "D-1", "in_use").await, Err(transition));
    assert_eq!(state_of(pool, "D-1").await, "disposed");
}

#[tokio::test]
async fn a_state_change_is_checked_and_recorded_with_actor_and_reason() {
    let db = test_db().await;
    let pool = &db.pool;
    musterstadt(pool, &[]).await;
    let device_id = device(pool, "100001", "D-1", "in_use", "R1").await;

    let refused = change(pool, "D-1", &request(LifecycleState::Ordered, "Versehen"))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        refused,
        "D-1 cannot go from in_use to ordered: that move is not allowed; from in_use it can go \
         to in_stock, on_loan, in_repair, retired, lost, stolen, to_check"
    );
    let no_reason = change(pool, "D-1", &request(LifecycleState::Retired, "  "))
        .await
        .unwrap_err();
    assert!(
        no_reason.to_string().contains("needs a reason"),
        "{no_reason}"
    );
    let on_loan = change(pool, "D-1", &request(LifecycleState::OnLoan, "Leihe"))
        .await
        .unwrap_err();
    assert!(
        on_loan.to_string().contains("bestand loans issue"),
        "{on_loan}"
    );
    assert_eq!(state_of(pool, "D-1").await, "in_use");

    let moved = change(
        pool,
        "D-1",
        &request(LifecycleState::Retired, "Akku defekt, alt"),
    )
    .await
    .unwrap();
    assert_eq!(moved, "retired");
    let without_record = change(pool, "D-1", &request(LifecycleState::Disposed, "weg"))
        .await
        .unwrap_err();
    assert!(
        without_record
            .to_string()
            .contains("needs a disposal record"),
        "{without_record}"
    );
    let mut disposed = request(LifecycleState::Disposed, "an Recycler übergeben");
    disposed.disposal = Some(recycled());
    change(pool, "D-1", &disposed).await.unwrap();
    let final_move = change(pool, "D-1", &request(LifecycleState::InUse, "doch noch"))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        final_move,
        "D-1 cannot go from disposed to in_use: that move is not allowed; disposed is final"
    );

    let events: Vec<(String, Option<String>, serde_json::Value)> = sqlx::query_as(
        "select kind, actor, changes from device_event where device_id = $1 \
         order by device_event_id",
    )
    .bind(device_id)
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(events.len(), 2, "one event per move, none for refusals");
    assert_eq!(events[0].0, "lifecycle_changed");
    assert_eq!(events[0].1.as_deref(), Some("anna"));
    assert_eq!(events[0].2["lifecycle_state"]["old"], "in_use");
    assert_eq!(events[0].2["lifecycle_state"]["new"], "retired");
    assert_eq!(events[0].2["reason"], "Akku defekt, alt");
    assert_eq!(events[1].2["reason"], "an Recycler übergeben");
    assert_eq!(events[1].2["disposal"]["new"]["method"], "recycler");

    let detail = show_device(pool, &Scope::All, "D-1").await.unwrap();
    assert_eq!(detail.device.field_origin["lifecycle_state"], "user:anna");
    let record = detail.disposal.expect("the disposal record is shown");
    assert_eq!(record.certificate_number.as_deref(), Some("ZN-2026-0042"));
    assert!(record.data_wiped);
    assert_eq!(record.disposed_on, day("2026-11-20"));

    let moves = lifecycle::transitions(pool).await.unwrap();
    assert_eq!(moves.len(), 41, "as many as the migration inserts");
    assert_eq!(
        (moves[0].from_state.as_str(), moves[0].to_state.as_str()),
        ("ordered", "delivered")
    );
}

#[tokio::test]
async fn loans_put_devices_on_loan_and_back_and_lost_and_stolen_apart() {
    let world = world(5, 0).await;
    let pool = world.pool();
    let first = world.issue("INV-0001", "lea.schulz").await.unwrap();
    assert_eq!(world.lifecycle("INV-0001").await, "on_loan");
    let again = world
        .issue("INV-0001", "ben.wolf")
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        again,
        format!(
            "cannot lend INV-0001: it is already on loan (loan {}, due 2027-07-31)",
            first.loan_id
        )
    );
    let by_hand = change(pool, "INV-0001", &request(LifecycleState::InUse, "zurück"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        by_hand.contains(&format!("is on loan (loan {})", first.loan_id)),
        "{by_hand}"
    );
    let issued: serde_json::Value = sqlx::query_scalar(
        "select changes from device_event where kind = 'loan_issued' \
         and (changes->'loan_id'->>'new')::bigint = $1",
    )
    .bind(first.loan_id)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(issued["lifecycle_state"]["old"], "in_use");
    assert_eq!(issued["lifecycle_state"]["new"], "on_loan");

    let desk = Actor::CliUser("desk".into());
    let clock = &*world.clock;
    loans::return_loan(
        pool,
        &Scope::All,
        clock,
        first.loan_id,
        &ReturnRequest::default(),
        &desk,
    )
    .await
    .unwrap();
    assert_eq!(world.lifecycle("INV-0001").await, "in_use");

    let damaged = world.issue("INV-0002", "ben.wolf").await.unwrap();
    let broken = ReturnRequest {
        damage: Some("Display gesprungen".into()),
        ..ReturnRequest::default()
    };
    loans::return_loan(pool, &Scope::All, clock, damaged.loan_id, &broken, &desk)
        .await
        .unwrap();
    assert_eq!(world.lifecycle("INV-0002").await, "to_check");

    for (tag, loss, state) in [
        ("INV-0003", Loss::Lost, "lost"),
        ("INV-0004", Loss::Stolen, "stolen"),
    ] {
        let loan = world.issue(tag, "mia.kern").await.unwrap();
        loans::mark_lost(
            pool,
            &Scope::All,
            clock,
            loan.loan_id,
            loss,
            day("2026-11-22"),
            "",
            &desk,
        )
        .await
        .unwrap();
        assert_eq!(world.lifecycle(tag).await, state);
    }
    let stolen = world.issue("INV-0004", "lea.schulz").await.unwrap_err();
    assert_eq!(
        stolen.to_string(),
        "cannot lend INV-0004: it is stolen (lifecycle state stolen)"
    );

    // Cancelling puts the device back where it was: in stock, not in use.
    change(
        pool,
        "INV-0005",
        &request(LifecycleState::InStock, "ins Lager"),
    )
    .await
    .unwrap();
    let mistaken = world.issue("INV-0005", "lea.schulz").await.unwrap();
    assert_eq!(world.lifecycle("INV-0005").await, "on_loan");
    loans::cancel_loan(
        pool,
        &Scope::All,
        clock,
        mistaken.loan_id,
        "falsch gescannt",
        &desk,
    )
    .await
    .unwrap();
    assert_eq!(world.lifecycle("INV-0005").await, "in_stock");
}

#[tokio::test]
async fn a_repair_moves_the_device_and_its_cost_counts_into_the_cost_of_ownership() {
    let db = test_db().await;
    let pool = &db.pool;
    musterstadt(pool, &[]).await;
    device(pool, "100001", "D-1", "in_use", "R1").await;
    let paid = RepairOpening {
        billing: RepairBilling::Paid,
        provider: Some("Service Nord".into()),
        defect: Some("Display gesprungen".into()),
        opened_on: day("2026-11-02"),
        force: false,
    };
    let opened = repairs::open_repair(pool, &Scope::All, &anna(), "D-1", &paid, t0())
        .await
        .unwrap();
    let first = opened.repair.repair_id;
    assert_eq!(opened.repair.lifecycle_state, "in_repair");
    assert!(opened.warnings.is_empty());
    let again = repairs::open_repair(pool, &Scope::All, &anna(), "D-1", &paid, t0())
        .await
        .unwrap_err();
    assert!(again.to_string().contains("already in repair"), "{again}");

    let cost = parse_price("1.234,56 €", Some(Notation::German)).unwrap();
    let closing = RepairClosing {
        outcome: RepairOutcome::Repaired,
        cost: Some(cost.amount),
        currency: cost.currency,
        closed_on: day("2026-11-20"),
        to: None,
    };
    let closed = repairs::close_repair(pool, &Scope::All, &anna(), first, &closing, t0())
        .await
        .unwrap();
    assert_eq!(closed.lifecycle_state, "in_use");
    assert_eq!(closed.cost, Some(Decimal::new(123_456, 2)));

    // The warranty ended on 2025-01-31: a claim is refused unless forced, and then warned of.
    let mut claim = RepairOpening {
        billing: RepairBilling::Warranty,
        opened_on: day("2026-11-21"),
        ..paid.clone()
    };
    let refused = repairs::open_repair(pool, &Scope::All, &anna(), "D-1", &claim, t0())
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("ended on 2025-01-31"), "{refused}");
    assert_eq!(state_of(pool, "D-1").await, "in_use");
    claim.force = true;
    let forced = repairs::open_repair(pool, &Scope::All, &anna(), "D-1", &claim, t0())
        .await
        .unwrap();
    assert_eq!(forced.warnings.len(), 1);
    let hopeless = RepairClosing {
        outcome: RepairOutcome::NotRepairable,
        cost: None,
        currency: None,
        closed_on: day("2026-11-22"),
        to: None,
    };
    let closed = repairs::close_repair(
        pool,
        &Scope::All,
        &anna(),
        forced.repair.repair_id,
        &hopeless,
        t0(),
    )
    .await
    .unwrap();
    assert_eq!(closed.lifecycle_state, "retired");

    // 349.00 (price) + 1,234.56 (first repair) + nothing (the warranty claim) = 1,583.56.
    let tco = repairs::device_cost_of_ownership(pool, &Scope::All, "D-1")
        .await
        .unwrap();
    assert_eq!(tco.purchase_price, Some(Decimal::new(34_900, 2)));
    assert_eq!(tco.repairs, 2);
    assert_eq!(tco.repair_costs, Decimal::new(123_456, 2));
    assert_eq!(tco.total, Decimal::new(158_356, 2));
    assert_eq!(tco.currency, "EUR");
    let detail = show_device(pool, &Scope::All, "D-1").await.unwrap();
    assert_eq!(detail.cost_of_ownership, tco);
    assert_eq!(detail.repairs.len(), 2);
    let reasons: Vec<String> = detail
        .history
        .iter()
        .filter(|event| event.kind == "lifecycle_changed")
        .map(|event| event.changes["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        reasons,
        vec![
            format!("repair {first} opened"),
            format!("repair {first} closed: repaired"),
            format!("repair {} opened", first + 1),
            format!("repair {} closed: not repairable", first + 1),
        ]
    );
    let open = RepairFilter {
        school: Some("100001".into()),
        open_only: true,
    };
    assert!(repairs::list_repairs(pool, &Scope::All, &open)
        .await
        .unwrap()
        .is_empty());
    let all = repairs::list_repairs(pool, &Scope::All, &RepairFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
}

#[tokio::test]
async fn an_inventur_lists_what_was_not_seen_is_booked_elsewhere_or_unknown() {
    let db = test_db().await;
    let pool = &db.pool;
    musterstadt(pool, &[]).await;
    device(pool, "100001", "A-1", "in_use", "R1").await;
    device(pool, "100001", "A-2", "in_stock", "R1").await;
    device(pool, "100001", "A-3", "on_loan", "R1").await;
    device(pool, "100001", "A-4", "retired", "R1").await;
    let moved = device(pool, "100001", "A-5", "in_use", "R1").await;
    device(pool, "100002", "B-1", "in_use", "B12").await;

    let count = inventory::start_count(pool, &Scope::All, &anna(), "GS Lindenweg", t0())
        .await
        .unwrap();
    let second = inventory::start_count(pool, &Scope::All, &anna(), "100001", t0())
        .await
        .unwrap_err();
    assert!(
        second.to_string().contains("open count already"),
        "{second}"
    );

    // As a scanner types them: A-1 twice (once in lower case, padded), a blank line.
    let typed = read_tags(Cursor::new("A-1\n a-1 \n\nB-1\r\nX-999\nA-1\n")).unwrap();
    assert_eq!(typed, vec!["A-1", "a-1", "B-1", "X-999", "A-1"]);
    let r1 = ScanPlace {
        building: None,
        room: Some("R1".into()),
    };
    let id = count.stocktake_id;
    let report = inventory::scan_tags(pool, &Scope::All, &anna(), id, &typed, &r1, t0())
        .await
        .unwrap();
    assert_eq!(report.recorded, vec!["A-1", "B-1", "X-999"]);
    assert_eq!(report.repeated, vec!["a-1", "A-1"]);
    assert_eq!(report.unknown, vec!["X-999"]);
    let r2 = ScanPlace {
        building: Some("Haus 2".into()),
        room: Some("R2".into()),
    };
    let tags = vec!["A-5".to_string(), "A-1".to_string()];
    let report = inventory::scan_tags(pool, &Scope::All, &anna(), id, &tags, &r2, t0())
        .await
        .unwrap();
    assert_eq!(report.recorded, vec!["A-5"]);
    assert_eq!(
        report.repeated,
        vec!["A-1"],
        "counted once, in the first room"
    );

    let result = inventory::count_result(pool, &Scope::All, id)
        .await
        .unwrap();
    // Expected, A-5 (in use or in stock); A-3 is on loan, A-4 retired. Seen.
    assert_eq!((result.expected, result.expected_seen), (3, 2));
    assert_eq!(result.count.scanned, 4);
    let findings: Vec<(String, String, String)> = result
        .findings
        .iter()
        .map(|f| {
            (
                f.finding.clone(),
                f.asset_tag.clone().unwrap_or_default(),
                f.booked_school.clone().unwrap_or_default(),
            )
        })
        .collect();
    let line = |finding: &str, tag: &str, school: &str| {
        (finding.to_string(), tag.to_string(), school.to_string())
    };
    assert_eq!(
        findings,
        vec![
            line("not_seen", "A-2", "100001"),
            line("on_loan", "A-3", "100001"),
            line("other_room", "A-5", "100001"),
            line("other_school", "B-1", "100002"),
            line("unknown_tag", "X-999", ""),
        ]
    );

    let closed = inventory::close_count(pool, &Scope::All, &anna(), id, true, t0())
        .await
        .unwrap();
    assert_eq!(closed.relocated.len(), 1);
    let (building, room): (Option<String>, Option<String>) =
        sqlx::query_as("select building, room from device where device_id = $1")
            .bind(moved)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(
        (building.as_deref(), room.as_deref()),
        (Some("Haus 2"), Some("R2"))
    );
    let event: (String, Option<String>) =
        sqlx::query_as("select kind, actor from device_event where device_id = $1")
            .bind(moved)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(
        event,
        ("located_by_count".to_string(), Some("anna".to_string()))
    );
    let b_room: Option<String> =
        sqlx::query_scalar("select room from device where asset_tag = 'B-1'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(
        b_room.as_deref(),
        Some("B12"),
        "another school's booking is kept"
    );
    let late = inventory::scan_tags(pool, &Scope::All, &anna(), id, &tags, &r1, t0())
        .await
        .unwrap_err();
    assert!(late.to_string().contains("was closed"), "{late}");
}
