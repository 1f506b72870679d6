//! The procurement reports (issue 17) against a small fleet whose every figure is worked out by
//! hand in the comments: which life and price each device gets, book values at a date, the
//! replacement forecast with price increase, smoothing and target growth, warranty, the funding
//! programme's proof of use with its flags, and the cost split.
//!
//! Musterstadt: school A (100001, Grundschule) and B (100002, Gymnasium). Today is t0,
//! 2026-11-23. The catalogue has X ("iPad 10 Wi-Fi", identifier iPad13,18, 400.00, 4 years) and
//! Y ("iPad (10th Generation)", 450.00, 7 years); laptops live 6 years (category_life).
//!
//! | tag | school | category | model | bought | price | life (from) | due | warranty end | state |
//! |---|---|---|---|---|---|---|---|---|---|
//! | T1 | A | tablet | iPad (10th generation), iPad13,18 | 2021-08-15 | 350 | 4 (catalogue X by identifier, not Y by name) | 2025 | 2026-12-01 | in_use |
//! | T2 | A | tablet | iPad (10th generation) | 2023-03-10 | 380 | 7 (catalogue Y by name, case aside) | 2030 | 2027-05-23 | on_loan |
//! | T3 | B | tablet | Galaxy Tab S9 | 2024-01-20 | 600 | 4 (device) | 2028 | 2027-05-24 | in_use |
//! | L1 | B | laptop | ThinkPad L14 | 2022-02-01 | 900 | 6 (category) | 2028 | 2027-02-01 | in_use |
//! | L2 | B | laptop | ThinkPad L14 | 2022-09-30 | 1000 | 6 (category) | 2028 | 2025-09-30 | in_repair |
//! | D1 | B | display | Clevertouch 65 | 2020-05-05 | 2000 | 8 (default) | 2028 | 2030-01-01 | in_use, open repair |
//! | L3 | B | laptop | ThinkPad L14 | none: first seen 2021-03-01 | none | 6 (category) | 2027 | none | in_use, open repair |
//! | T4 | A | tablet | iPad (10th generation), iPad13,18 | 2021-08-15 | 350 | | | 2026-12-15 | retired 2024-06-01 |
//! | X1 | B | laptop | ThinkPad L13 | 2020-01-10 | 800 | | | | retired 2025-03-01 |
//!
//! Replacement prices: T1 400.00 (X's list price), T3 600, L1 900, L2 1000, D1 2000 (their
//! purchase prices: no catalogue entry), L3 none.

use std::str::FromStr;

use bestand_cli::commands::reports::{write_funding, write_replacement};
use bestand_cli::output::Format;
use bestand_core::access::{Actor, Scope};
use bestand_core::model::{DeviceCategory, SchoolType};
use bestand_core::planning::LineKind;
use bestand_core::store::cost_split::{self, LevelWeights};
use bestand_core::store::forecast::{self, ReplacementRequest};
use bestand_core::store::funding_report;
use bestand_core::store::plans;
use bestand_core::store::{self, AuthoritySpec, SchoolSpec};
use bestand_core::{tabular, CoreError};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{musterstadt, t0, test_db};

fn euro(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 10, 0, 0).unwrap()
}

pub(crate) struct Fleet {
    pub pool: PgPool,
    pub authority: Uuid,
    pub a: Uuid,
    pub b: Uuid,
    pub source: Uuid,
}

/// One device row as the test needs it.
struct New<'a> {
    tag: &'a str,
    school: Uuid,
    category: &'a str,
    model: &'a str,
    identifier: Option<&'a str>,
    bought: Option<NaiveDate>,
    price: Option<&'a str>,
    life: Option<i32>,
    warranty: Option<NaiveDate>,
    state: &'a str,
    programme: Option<&'a str>,
    earmark_end: Option<NaiveDate>,
    room: Option<&'a str>,
    first_seen: DateTime<Utc>,
}

impl<'a> New<'a> {
    fn device(tag: &'a str, school: Uuid, category: &'a str, model: &'a str) -> New<'a> {
        New {
            tag,
            school,
            category,
            model,
            identifier: None,
            bought: None,
            price: None,
            life: None,
            warranty: None,
            state: "in_use",
            programme: None,
            earmark_end: None,
            room: None,
            first_seen: at(2026, 1, 5),
        }
    }

    async fn insert(self, pool: &PgPool, authority: Uuid) -> Uuid {
        let id = Uuid::now_v7();
        sqlx::query(
            "insert into device (device_id, authority_id, school_id, asset_tag, serial_number, \
             category, model, model_identifier, purchase_date, purchase_price, currency, \
             life_expectancy_years, warranty_end, lifecycle_state, funding_programme, earmark_end, \
             room, first_seen_at, updated_at) values ($1, $2, $3, $4, 'SER-' || $4, $5, $6, $7, $8, \
             $9::numeric, case when $9 is null then null else 'EUR' end, $10, $11, $12, $13, $14, \
             $15, $16, $16)",
        )
        .bind(id)
        .bind(authority)
        .bind(self.school)
        .bind(self.tag)
        .bind(self.category)
        .bind(self.model)
        .bind(self.identifier)
        .bind(self.bought)
        .bind(self.price)
        .bind(self.life)
        .bind(self.warranty)
        .bind(self.state)
        .bind(self.programme)
        .bind(self.earmark_end)
        .bind(self.room)
        .bind(self.first_seen)
        .execute(pool)
        .await
        .unwrap();
        id
    }
}

async fn id(pool: &PgPool, sql: &str, key: &str) -> Uuid {
    sqlx::query_scalar(sql)
        .bind(key)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A pupil (or teacher) at `school` with a name the reports must never print.
// Each argument is one column of the fixture; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
async fn person(
    fleet: &Fleet,
    school: Uuid,
    username: &str,
    given: &str,
    family: &str,
    role: &str,
    class: Option<&str>,
    left: bool,
) -> Uuid {
    let person: Uuid = sqlx::query_scalar(
        "insert into person (authority_id, username, given_name, family_name, left_at, \
         first_seen_at, updated_at) values ($1, $2, $3, $4, $5, $6, $6) returning person_id",
    )
    .bind(fleet.authority)
    .bind(username)
    .bind(given)
    .bind(family)
    .bind(left.then(|| at(2025, 7, 31)))
    .bind(at(2024, 8, 1))
    .fetch_one(&fleet.pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into person_membership (authority_id, person_id, source_id, school_id, role, \
         class_name) values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(fleet.authority)
    .bind(person)
    .bind(fleet.source)
    .bind(school)
    .bind(role)
    .bind(class)
    .execute(&fleet.pool)
    .await
    .unwrap();
    person
}

/// The fleet of the table above, with the catalogue, the programme, persons, a loan, an
/// assignment, repairs, history and links.
pub(crate) async fn fleet() -> Fleet {
    let db = test_db().await;
    let pool = db.pool;
    let sources = musterstadt(&pool, &["jamf"]).await;
    let fleet = Fleet {
        authority: sources[0].authority_id,
        source: sources[0].source_id,
        a: id(
            &pool,
            "select school_id from school where school_number = $1",
            "100001",
        )
        .await,
        b: id(
            &pool,
            "select school_id from school where school_number = $1",
            "100002",
        )
        .await,
        pool,
    };
    let (pool, x, a, b) = (&fleet.pool, fleet.authority, fleet.a, fleet.b);
    sqlx::query(
        "insert into device_model (authority_id, model, model_identifier, category, list_price, \
         life_years, updated_at, updated_by) values \
         ($1, 'iPad 10 Wi-Fi', 'iPad13,18', 'tablet', 400.00, 4, $2, 'test'), \
         ($1, 'iPad (10th Generation)', null, 'tablet', 450.00, 7, $2, 'test')",
    )
    .bind(x)
    .bind(t0())
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into category_life (authority_id, category, life_years) values ($1, 'laptop', 6)",
    )
    .bind(x)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into funding_programme (authority_id, code, name, grant_reference, funding_share, \
         earmark_end, created_at) values ($1, 'DP-2021', 'DigitalPakt Schule', 'DP-NRW-4711', \
         0.9, '2029-12-31', $2)",
    )
    .bind(x)
    .bind(t0())
    .execute(pool)
    .await
    .unwrap();

    let ipad = "iPad (10th generation)";
    let mut t1 = New::device("T1", a, "tablet", ipad);
    t1.identifier = Some("iPad13,18");
    t1.bought = Some(day(2021, 8, 15));
    t1.price = Some("350.00");
    t1.warranty = Some(day(2026, 12, 1));
    t1.programme = Some("DP-2021");
    t1.room = Some("R101");
    let t1 = t1.insert(pool, x).await;
    let mut t2 = New::device("T2", a, "tablet", ipad);
    t2.bought = Some(day(2023, 3, 10));
    t2.price = Some("380.00");
    t2.warranty = Some(day(2027, 5, 23));
    t2.state = "on_loan";
    t2.programme = Some("DP-2021");
    let t2 = t2.insert(pool, x).await;
    let mut t3 = New::device("T3", b, "tablet", "Galaxy Tab S9");
    t3.bought = Some(day(2024, 1, 20));
    t3.price = Some("600.00");
    t3.life = Some(4);
    t3.warranty = Some(day(2027, 5, 24));
    t3.insert(pool, x).await;
    let mut l1 = New::device("L1", b, "laptop", "ThinkPad L14");
    l1.bought = Some(day(2022, 2, 1));
    l1.price = Some("900.00");
    l1.warranty = Some(day(2027, 2, 1));
    l1.insert(pool, x).await;
    let mut l2 = New::device("L2", b, "laptop", "ThinkPad L14");
    l2.bought = Some(day(2022, 9, 30));
    l2.price = Some("1000.00");
    l2.warranty = Some(day(2025, 9, 30));
    l2.state = "in_repair";
    l2.insert(pool, x).await;
    let mut d1 = New::device("D1", b, "display", "Clevertouch 65");
    d1.bought = Some(day(2020, 5, 5));
    d1.price = Some("2000.00");
    d1.warranty = Some(day(2030, 1, 1));
    let d1 = d1.insert(pool, x).await;
    let mut l3 = New::device("L3", b, "laptop", "ThinkPad L14");
    l3.first_seen = at(2021, 3, 1);
    let l3 = l3.insert(pool, x).await;
    let mut t4 = New::device("T4", a, "tablet", ipad);
    t4.identifier = Some("iPad13,18");
    t4.bought = Some(day(2021, 8, 15));
    t4.price = Some("350.00");
    t4.warranty = Some(day(2026, 12, 15));
    t4.state = "retired";
    t4.programme = Some("DP-2021");
    t4.room = Some("R102");
    let t4 = t4.insert(pool, x).await;
    let mut x1 = New::device("X1", b, "laptop", "ThinkPad L13");
    x1.bought = Some(day(2020, 1, 10));
    x1.price = Some("800.00");
    x1.state = "retired";
    x1.programme = Some("DP-2021");
    x1.earmark_end = Some(day(2024, 12, 31));
    x1.room = Some("R201");
    let x1 = x1.insert(pool, x).await;

    // Open repairs of D1 (warranty runs) and L3 (warranty unknown).
    for device in [d1, l3] {
        sqlx::query(
            "insert into repair (authority_id, device_id, opened_on, billing, opened_by) \
             values ($1, $2, '2026-11-02', 'paid', 'test')",
        )
        .bind(x)
        .bind(device)
        .execute(pool)
        .await
        .unwrap();
    }
    // The days T4 and X1 left service, as history records them.
    for (device, when) in [(t4, at(2024, 6, 1)), (x1, at(2025, 3, 1))] {
        sqlx::query(
            "insert into device_event (authority_id, device_id, occurred_at, kind, cause, actor, \
             changes) values ($1, $2, $3, 'lifecycle', 'user', 'test', \
             '{\"lifecycle_state\": {\"old\": \"in_use\", \"new\": \"retired\"}}'::json)",
        )
        .bind(x)
        .bind(device)
        .bind(when)
        .execute(pool)
        .await
        .unwrap();
    }
    // The MDM's links: T1 missing since 2026-09-01 (83 days before t0), T2 seen, X1 missing
    // since 2026-11-13 (10 days).
    for (device, missing) in [
        (t1, Some(at(2026, 9, 1))),
        (t2, None),
        (x1, Some(at(2026, 11, 13))),
    ] {
        sqlx::query(
            "insert into source_link (source_link_id, authority_id, source_id, device_id, \
             external_id, normalized, content_hash, first_seen_at, last_seen_at, \
             missing_since) values ($1, $2, $3, $4, $5, '{}', '\\x00'::bytea, $6, $6, $7)",
        )
        .bind(Uuid::now_v7())
        .bind(x)
        .bind(fleet.source)
        .bind(device)
        .bind(device.to_string())
        .bind(at(2025, 1, 1))
        .bind(missing)
        .execute(pool)
        .await
        .unwrap();
    }
    // Five pupils at A (and one who left), who count for A's target; Mia is assigned T1.
    let mia = person(
        &fleet,
        a,
        "mia.schmidt",
        "Mia",
        "Schmidt",
        "student",
        Some("4a"),
        false,
    )
    .await;
    for (i, class) in ["1a", "2a", "3b", "4b"].iter().enumerate() {
        let name = format!("kind{i}");
        person(
            &fleet,
            a,
            &name,
            "Kind",
            &name,
            "student",
            Some(class),
            false,
        )
        .await;
    }
    person(
        &fleet,
        a,
        "gone",
        "Weg",
        "Gegangen",
        "student",
        Some("4a"),
        true,
    )
    .await;
    // Two pupils at B that the entered numbers override for the cost split.
    for name in ["gym1", "gym2"] {
        person(&fleet, b, name, "Gym", name, "student", Some("5a"), false).await;
    }
    let jonas = person(
        &fleet,
        a,
        "jonas.weber",
        "Jonas",
        "Weber",
        "teacher",
        None,
        false,
    )
    .await;
    sqlx::query(
        "insert into device_assignment (authority_id, device_id, source_id, hint_username, \
         status, person_id, since) values ($1, $2, $3, 'mia.schmidt', 'matched', $4, $5)",
    )
    .bind(x)
    .bind(t1)
    .bind(fleet.source)
    .bind(mia)
    .bind(t0())
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into loan (authority_id, device_id, person_id, school_id, member_at_hand_out, \
         state, handed_out_at, handed_out_by, due_on, updated_at) values ($1, $2, $3, $4, true, \
         'active', $5, 'test', '2027-07-31', $5)",
    )
    .bind(x)
    .bind(t2)
    .bind(jonas)
    .bind(a)
    .bind(at(2026, 9, 1))
    .execute(pool)
    .await
    .unwrap();
    // Target equipment: A half a tablet per pupil, B 1.5 laptops in each of 3 class rooms.
    sqlx::query(
        "insert into school_target_equipment (school_id, authority_id, category, \
         devices_per_pupil, devices_per_room, class_rooms) values \
         ($1, $3, 'tablet', 0.5, null, null), ($2, $3, 'laptop', null, 1.5, 3)",
    )
    .bind(a)
    .bind(b)
    .bind(x)
    .execute(pool)
    .await
    .unwrap();
    // B's pupils as entered by hand.
    sqlx::query(
        "insert into school_pupils (school_id, authority_id, level, pupils, entered_at, entered_by) \
         values ($1, $2, 'lower_secondary', 600, $3, 'test'), ($1, $2, 'upper_secondary', 200, $3, 'test')",
    )
    .bind(b)
    .bind(x)
    .bind(t0())
    .execute(pool)
    .await
    .unwrap();
    fleet
}

fn today() -> NaiveDate {
    day(2026, 11, 23)
}

#[tokio::test]
async fn each_device_gets_its_life_and_price_in_the_documented_order() {
    let fleet = fleet().await;
    let plans = plans::device_plans(&fleet.pool, &Scope::All, None)
        .await
        .unwrap();
    let seen: Vec<_> = plans
        .iter()
        .map(|p| {
            (
                p.asset_tag.clone().unwrap(),
                p.life_years,
                p.life_from.as_str(),
                p.replacement_price,
                p.price_from.as_deref(),
                p.end_of_life_year,
                p.in_fleet,
            )
        })
        .collect();
    let tag = |t: &str| seen.iter().find(|s| s.0 == t).unwrap().clone();
    // T1: its identifier finds X (4 years, 400.00) although its name matches Y.
    assert_eq!(
        tag("T1"),
        (
            "T1".into(),
            4,
            "catalogue",
            Some(euro("400.00")),
            Some("catalogue"),
            2025,
            true
        )
    );
    // T2: no identifier; its name matches Y whatever the case (7 years, 450.00): 2023 + 7.
    assert_eq!(
        tag("T2"),
        (
            "T2".into(),
            7,
            "catalogue",
            Some(euro("450.00")),
            Some("catalogue"),
            2030,
            true
        )
    );
    // T3: its own life beats everything; no catalogue entry, so its purchase price.
    assert_eq!(
        tag("T3"),
        (
            "T3".into(),
            4,
            "device",
            Some(euro("600.00")),
            Some("purchase"),
            2028,
            true
        )
    );
    // L1: the authority's laptop life of 6, not the default 5.
    assert_eq!(
        tag("L1"),
        (
            "L1".into(),
            6,
            "category",
            Some(euro("900.00")),
            Some("purchase"),
            2028,
            true
        )
    );
    // D1: nothing but the default for displays, 8 years: 2020 + 8.
    assert_eq!(
        tag("D1"),
        (
            "D1".into(),
            8,
            "default",
            Some(euro("2000.00")),
            Some("purchase"),
            2028,
            true
        )
    );
    // L3: no price at all, no purchase date: estimated from its first sighting, 2021 + 6.
    assert_eq!(
        tag("L3"),
        ("L3".into(), 6, "category", None, None, 2027, true)
    );
    let l3 = plans
        .iter()
        .find(|p| p.asset_tag.as_deref() == Some("L3"))
        .unwrap();
    assert!(l3.purchase_date_estimated);
    assert_eq!(l3.purchase_date, day(2021, 3, 1));
    // The retired ones are listed but out of the fleet.
    assert!(!tag("T4").6 && !tag("X1").6);
}

#[tokio::test]
async fn depreciation_at_a_date_per_device_school_and_authority() {
    let fleet = fleet().await;
    let report = plans::depreciation_report(&fleet.pool, &Scope::All, day(2026, 12, 31), None)
        .await
        .unwrap();
    let value = |tag: &str| {
        let d = report
            .devices
            .iter()
            .find(|d| d.asset_tag.as_deref() == Some(tag))
            .unwrap_or_else(|| panic!("{tag} listed"));
        (
            d.purchase_price,
            d.accumulated_depreciation,
            d.net_book_value,
        )
    };
    let some = |p: &str, a: &str, v: &str| (Some(euro(p)), Some(euro(a)), Some(euro(v)));
    // Months used to the end of 2026, the month of purchase counting whole:
    // T1 Aug 2021: 65 > 48, nothing left.
    assert_eq!(value("T1"), some("350.00", "350.00", "0.00"));
    // T2 Mar 2023: 46 of 84: 380 * 46 / 84 = 208.0952 -> 380 - 208.0952 = 171.9048 -> 171.90.
    assert_eq!(value("T2"), some("380.00", "208.10", "171.90"));
    // T3 Jan 2024: 36 of 48: 600 * 36 / 48 = 450.00.
    assert_eq!(value("T3"), some("600.00", "450.00", "150.00"));
    // L1 Feb 2022: 59 of 72: 900 * 59 / 72 = 737.50.
    assert_eq!(value("L1"), some("900.00", "737.50", "162.50"));
    // L2 Sep 2022: 52 of 72: 1000 * 52 / 72 = 722.2222 -> 277.78 left.
    assert_eq!(value("L2"), some("1000.00", "722.22", "277.78"));
    // D1 May 2020: 80 of 96: 2000 * 80 / 96 = 1666.6667 -> 333.33 left.
    assert_eq!(value("D1"), some("2000.00", "1666.67", "333.33"));
    // L3 has no price: listed as such, never as 0.
    assert_eq!(value("L3"), (None, None, None));
    // Retired devices are out.
    assert!(!report
        .devices
        .iter()
        .any(|d| d.asset_tag.as_deref() == Some("T4")));
    let total = |t: &plans::DepreciationTotal| {
        (
            t.devices,
            t.devices_without_price,
            t.purchase_price,
            t.accumulated_depreciation,
            t.net_book_value,
        )
    };
    let school = |number: &str| {
        report
            .schools
            .iter()
            .find(|s| s.school_number.as_deref() == Some(number))
            .map(total)
            .unwrap()
    };
    // A: T1 + T2: 730.00; 350.00 + 208.10 = 558.10; 0.00 + 171.90 = 171.90.
    assert_eq!(
        school("100001"),
        (2, 0, euro("730.00"), euro("558.10"), euro("171.90"))
    );
    // B: T3 + L1 + L2 + D1 = 4500.00; 450 + 737.50 + 722.22 + 1666.67 = 3576.39;
    // 150 + 162.50 + 277.78 + 333.33 = 923.61; L3 without price.
    assert_eq!(
        school("100002"),
        (4, 1, euro("4500.00"), euro("3576.39"), euro("923.61"))
    );
    // The authority: 5230.00, 4134.49, 1095.51 (= 5230.00 - 4134.49).
    assert_eq!(report.authorities.len(), 1);
    assert_eq!(
        total(&report.authorities[0]),
        (6, 1, euro("5230.00"), euro("4134.49"), euro("1095.51"))
    );
}

fn request(smooth: bool, target: bool) -> ReplacementRequest {
    ReplacementRequest {
        first_year: 2027,
        last_year: 2029,
        price_year: 2026,
        yearly_increase: euro("0.025"),
        smooth,
        target,
        spread_growth: false,
        school: None,
        devices: false,
        early_by_tickets: None,
    }
}

type Seen = (i32, String, DeviceCategory, LineKind, u32, Decimal, u32);

fn lines(report: &forecast::ReplacementForecast) -> Vec<Seen> {
    let mut seen: Vec<Seen> = report
        .lines
        .iter()
        .map(|l| {
            (
                l.year,
                l.school_number.clone().unwrap(),
                l.category,
                l.kind,
                l.devices,
                l.cost,
                l.devices_without_price,
            )
        })
        .collect();
    seen.sort();
    seen
}

#[tokio::test]
async fn the_forecast_per_year_with_increase_smoothing_and_target_growth() {
    use DeviceCategory::{Display, Laptop, Tablet};
    use LineKind::{Growth, Replacement};
    let fleet = fleet().await;
    let (a, b) = ("100001".to_string(), "100002".to_string());
    // Price factors from 2026 at 2.5 %: 2027 1.025, 2028 1.050625, 2029 1.076890625.
    let report = forecast::replacement_forecast(&fleet.pool, &Scope::All, &request(false, false))
        .await
        .unwrap();
    assert_eq!(
        lines(&report),
        vec![
            // T1 overdue since 2025: 400 * 1.025.
            (2027, a.clone(), Tablet, Replacement, 1, euro("410.00"), 0),
            // L3, due 2027, has no price: counted, not costed.
            (2027, b.clone(), Laptop, Replacement, 1, euro("0.00"), 1),
            // T3: 600 * 1.050625 = 630.375 -> 630.38.
            (2028, b.clone(), Tablet, Replacement, 1, euro("630.38"), 0),
            // L1 + L2: (900 + 1000) * 1.050625 = 1996.1875 -> 1996.19.
            (2028, b.clone(), Laptop, Replacement, 2, euro("1996.19"), 0),
            // D1: 2000 * 1.050625.
            (2028, b.clone(), Display, Replacement, 1, euro("2101.25"), 0),
        ]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );
    // Totals for the chart: 2027 two devices, 410.00, one without price; 2028 four devices,
    // 630.38 + 1996.19 + 2101.25 = 4727.82. T2 (2030) is after the range.
    let years: Vec<_> = report
        .by_year
        .iter()
        .map(|t| (t.year, t.devices, t.cost, t.devices_without_price))
        .collect();
    assert_eq!(
        years,
        vec![(2027, 2, euro("410.00"), 1), (2028, 4, euro("4727.82"), 0)]
    );
    let laptops_2028 = report
        .by_year_and_category
        .iter()
        .find(|t| t.year == 2028 && t.category == Some(Laptop))
        .unwrap();
    assert_eq!(
        (laptops_2028.devices, laptops_2028.cost),
        (2, euro("1996.19"))
    );
    assert_eq!(report.estimated_purchase_dates, 1, "L3");

    // Smoothing: of L1 and L2 (2028, B, laptops) the later half by (due year, price), L2 at
    // 1000, moves to 2029: 1000 * 1.076890625 = 1076.890625 -> 1076.89; L1 stays:
    // 900 * 1.050625 = 945.5625 -> 945.56. Cohorts of one device stay.
    let smoothed = forecast::replacement_forecast(&fleet.pool, &Scope::All, &request(true, false))
        .await
        .unwrap();
    let smoothed_lines = lines(&smoothed);
    assert!(smoothed_lines.contains(&(2028, b.clone(), Laptop, Replacement, 1, euro("945.56"), 0)));
    assert!(smoothed_lines.contains(&(
        2029,
        b.clone(),
        Laptop,
        Replacement,
        1,
        euro("1076.89"),
        0
    )));
    assert!(smoothed_lines.contains(&(2027, a.clone(), Tablet, Replacement, 1, euro("410.00"), 0)));

    // Target: A has 5 pupils (the one who left does not count) at 0.5 tablets: 2.5 -> 3;
    // it has T1 and T2 (T4 is retired): growth 1, at the mean catalogue price of tablets
    // (400 + 450) / 2 = 425.00: 425 * 1.025 = 435.625 -> 435.63.
    // B: 3 rooms at 1.5 laptops: 4.5 -> 5; it has L1, L2, L3: growth 2; no catalogue laptop,
    // so the mean replacement price of the laptops (900 + 1000) / 2 = 950.00:
    // 2 * 950 * 1.025 = 1947.50. Both in the first year.
    let with_target =
        forecast::replacement_forecast(&fleet.pool, &Scope::All, &request(false, true))
            .await
            .unwrap();
    let growth: Vec<_> = lines(&with_target)
        .into_iter()
        .filter(|l| l.3 == Growth)
        .collect();
    assert_eq!(
        growth,
        vec![
            (2027, a.clone(), Tablet, Growth, 1, euro("435.63"), 0),
            (2027, b.clone(), Laptop, Growth, 2, euro("1947.50"), 0),
        ]
    );
    let target_a = with_target
        .targets
        .iter()
        .find(|t| t.school_number == "100001")
        .unwrap();
    assert_eq!(
        (
            target_a.pupils,
            target_a.pupils_from.as_str(),
            target_a.target,
            target_a.current
        ),
        (5, "directory", 3, 2)
    );
    // Spread over 2027-2029, B's two laptops are 1, 1, 0: 973.75 in 2027, 950 * 1.050625 =
    // 998.09375 -> 998.09 in 2028.
    let mut spread = request(false, true);
    spread.spread_growth = true;
    spread.school = Some("100002".into());
    let spread = forecast::replacement_forecast(&fleet.pool, &Scope::All, &spread)
        .await
        .unwrap();
    let growth: Vec<_> = lines(&spread)
        .into_iter()
        .filter(|l| l.3 == Growth)
        .collect();
    assert_eq!(
        growth,
        vec![
            (2027, b.clone(), Laptop, Growth, 1, euro("973.75"), 0),
            (2028, b.clone(), Laptop, Growth, 1, euro("998.09"), 0),
        ]
    );
    assert!(lines(&spread).iter().all(|l| l.1 == b), "only school B");

    // The devices behind the smoothed lines: L2 in 2029, the rest in their due year.
    let mut listed = request(true, false);
    listed.devices = true;
    let listed = forecast::replacement_forecast(&fleet.pool, &Scope::All, &listed)
        .await
        .unwrap();
    let years: Vec<_> = listed
        .devices
        .iter()
        .map(|d| (d.plan.asset_tag.clone().unwrap(), d.year))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        years,
        vec![
            ("D1".into(), 2028),
            ("L1".into(), 2028),
            ("L2".into(), 2029),
            ("L3".into(), 2027),
            ("T1".into(), 2027),
            ("T3".into(), 2028),
        ]
    );
}

#[tokio::test]
async fn warranty_within_months_and_repairs_outside_warranty() {
    let fleet = fleet().await;
    let report = plans::warranty_report(&fleet.pool, &Scope::All, today(), 6, None)
        .await
        .unwrap();
    // Six months from 2026-11-23 is 2027-05-23, included: T1 (2026-12-01), L1 (2027-02-01),
    // T2 (2027-05-23). T3 ends a day later; T4 is retired; L2 ended in 2025.
    let mut tags: Vec<_> = report
        .expiring
        .iter()
        .map(|d| d.asset_tag.clone().unwrap())
        .collect();
    tags.sort();
    assert_eq!(tags, vec!["L1", "T1", "T2"]);
    assert_eq!(report.until, day(2027, 5, 23));
    let mut groups: Vec<_> = report
        .groups
        .iter()
        .map(|g| {
            (
                g.school_number.clone().unwrap(),
                g.model.clone().unwrap(),
                g.devices,
                g.first_end,
            )
        })
        .collect();
    groups.sort();
    assert_eq!(
        groups,
        vec![
            (
                "100001".into(),
                "iPad (10th generation)".into(),
                2,
                day(2026, 12, 1)
            ),
            ("100002".into(), "ThinkPad L14".into(), 1, day(2027, 2, 1)),
        ]
    );
    // In repair: L2 by its state, warranty ended 2025-09-30; L3 by its open repair, warranty
    // unknown. D1's open repair is under warranty (2030) and not listed.
    let mut repairs: Vec<_> = report
        .in_repair_outside_warranty
        .iter()
        .map(|d| {
            (
                d.asset_tag.clone().unwrap(),
                d.warranty_end,
                d.repair_opened_on,
            )
        })
        .collect();
    repairs.sort();
    assert_eq!(
        repairs,
        vec![
            ("L2".into(), Some(day(2025, 9, 30)), None),
            ("L3".into(), None, Some(day(2026, 11, 2))),
        ]
    );
    // One school only.
    let only_a = plans::warranty_report(&fleet.pool, &Scope::All, today(), 6, Some("100001"))
        .await
        .unwrap();
    assert_eq!(only_a.expiring.len(), 2);
    assert!(only_a.in_repair_outside_warranty.is_empty());
}

#[tokio::test]
async fn the_funding_report_flags_early_retirement_unknown_location_and_missing_by_role_only() {
    let fleet = fleet().await;
    let report =
        funding_report::funding_report(&fleet.pool, &Scope::All, t0(), "DP-2021", None, 30)
            .await
            .unwrap();
    let device = |tag: &str| {
        report
            .devices
            .iter()
            .find(|d| d.asset_tag.as_deref() == Some(tag))
            .unwrap_or_else(|| panic!("{tag} listed"))
            .clone()
    };
    assert_eq!(report.devices.len(), 4, "T1, T2, T4, X1");
    // T4 retired 2024-06-01, before the programme's earmark end 2029-12-31: a repayment risk.
    let t4 = device("T4");
    assert_eq!(
        (t4.left_on, t4.earmark_end),
        (Some(day(2024, 6, 1)), Some(day(2029, 12, 31)))
    );
    assert!(t4.repayment_risk);
    // X1 retired 2025-03-01, after its own earmark end 2024-12-31: no risk.
    let x1 = device("X1");
    assert_eq!(
        (x1.left_on, x1.earmark_end),
        (Some(day(2025, 3, 1)), Some(day(2024, 12, 31)))
    );
    assert!(!x1.repayment_risk);
    // T1: missing since 2026-09-01, 83 days, more than 30; X1 only 10 days.
    let t1 = device("T1");
    assert!(t1.missing && !x1.missing);
    assert_eq!(t1.missing_since, Some(day(2026, 9, 1)));
    // T2 has no room: unknown location; T1 is in R101.
    let t2 = device("T2");
    assert!(t2.unknown_location && !t1.unknown_location);
    assert!(!t2.missing, "its source sees it");
    // Roles, never names: T1 is assigned to a pupil, T2 lent to a teacher.
    assert_eq!(
        (t1.used_by_role.as_deref(), t1.used_by_via.as_deref()),
        (Some("student"), Some("assignment"))
    );
    assert_eq!(
        (t2.used_by_role.as_deref(), t2.used_by_via.as_deref()),
        (Some("teacher"), Some("loan"))
    );
    // Funded: price * 0.9: T1 315.00, T2 342.00, T4 315.00, X1 720.00.
    assert_eq!(t2.funded_amount, Some(euro("342.00")));
    // A: T1, T2, T4: 1080.00, funded 972.00, one risk; B: X1 800.00, 720.00.
    let totals: Vec<_> = report
        .schools
        .iter()
        .map(|s| {
            (
                s.school_number.clone().unwrap(),
                s.devices,
                s.price,
                s.funded_amount,
                s.repayment_risks,
            )
        })
        .collect();
    assert_eq!(
        totals,
        vec![
            ("100001".into(), 3, euro("1080.00"), euro("972.00"), 1),
            ("100002".into(), 1, euro("800.00"), euro("720.00"), 0),
        ]
    );
    assert_eq!(
        (
            report.total.devices,
            report.total.price,
            report.total.funded_amount
        ),
        (4, euro("1880.00"), euro("1692.00"))
    );

    // No name or login of the persons reaches the output, in JSON or CSV.
    for format in [Format::Json, Format::Csv, Format::Table] {
        let mut out = Vec::new();
        write_funding(&mut out, &report, format).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("student") && text.contains("teacher"),
            "{text}"
        );
        for name in [
            "Mia",
            "Schmidt",
            "mia.schmidt",
            "Jonas",
            "Weber",
            "jonas.weber",
        ] {
            assert!(!text.contains(name), "{format:?} names {name}:\n{text}");
        }
    }

    // An unknown programme is not found like an unknown device.
    let unknown =
        funding_report::funding_report(&fleet.pool, &Scope::All, t0(), "NOPE", None, 30).await;
    assert!(
        matches!(&unknown, Err(CoreError::NotFound { what: "funding programme", key }) if key == "NOPE"),
        "{unknown:?}"
    );
}

/// A second authority with one vocational school, 300001.
async fn nachbarstadt(pool: &PgPool) {
    store::apply_configuration(
        pool,
        &Scope::All,
        &Actor::System("configuration"),
        &[AuthoritySpec {
            slug: "nachbarstadt".into(),
            name: "Stadt Nachbarstadt".into(),
            shared_macs: vec![],
            schools: vec![SchoolSpec {
                number: "300001".into(),
                name: "Berufskolleg Nord".into(),
                school_type: SchoolType::Berufsschule,
                aliases: vec![],
            }],
        }],
        &[],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn the_cost_split_weights_pupils_by_level_and_adds_up_to_the_cent() {
    let fleet = fleet().await;
    nachbarstadt(&fleet.pool).await;
    sqlx::query(
        "insert into school_pupils (school_id, authority_id, level, pupils, entered_at, entered_by) \
         select school_id, authority_id, 'vocational', 300, now(), 'test' from school \
         where school_number = '300001'",
    )
    .execute(&fleet.pool)
    .await
    .unwrap();
    let split = cost_split::cost_split(
        &fleet.pool,
        &Scope::All,
        euro("120000.00"),
        &LevelWeights::default(),
        &[],
    )
    .await
    .unwrap();
    let shares: Vec<_> = split
        .shares
        .iter()
        .map(|s| {
            (
                s.authority.as_str(),
                [
                    s.primary,
                    s.lower_secondary,
                    s.upper_secondary,
                    s.vocational,
                ],
                s.weighted_pupils,
                s.share_percent,
                s.amount,
            )
        })
        .collect();
    // Musterstadt: A from the directory, 5 primary pupils (the one who left not counted); B
    // as entered, 600 lower and 200 upper secondary (its two directory pupils ignored):
    // 5 * 0.15 + 600 * 0.35 + 200 * 0.50 = 0.75 + 210 + 100 = 310.75.
    // Nachbarstadt: 300 vocational * 0.50 = 150. Together 460.75.
    // 120,000.00 * 310.75 / 460.75 = 80,933.26098..; * 150 / 460.75 = 39,066.73901..
    // In cents the floors 8,093,326 and 3,906,673 leave one cent, which goes to the larger
    // remainder (.90 against .10): 80,933.26 and 39,066.74, together exactly 120,000.00.
    assert_eq!(
        shares,
        vec![
            (
                "musterstadt",
                [5, 600, 200, 0],
                euro("310.75"),
                euro("67.44"),
                euro("80933.26")
            ),
            (
                "nachbarstadt",
                [0, 0, 0, 300],
                euro("150"),
                euro("32.56"),
                euro("39066.74")
            ),
        ]
    );
    assert_eq!(
        split.shares.iter().map(|s| s.amount).sum::<Decimal>(),
        euro("120000.00")
    );
    assert_eq!(
        (
            split.shares[0].schools_entered,
            split.shares[0].schools_from_directory
        ),
        (1, 1)
    );
    // An authority not configured is not found.
    let unknown = cost_split::cost_split(
        &fleet.pool,
        &Scope::All,
        euro("1"),
        &LevelWeights::default(),
        &["nirgendwo".into()],
    )
    .await;
    assert!(matches!(
        unknown,
        Err(CoreError::NotFound {
            what: "authority",
            ..
        })
    ));
}

#[tokio::test]
async fn the_forecast_as_json_and_csv() {
    let fleet = fleet().await;
    let report = forecast::replacement_forecast(&fleet.pool, &Scope::All, &request(false, false))
        .await
        .unwrap();
    let mut out = Vec::new();
    write_replacement(&mut out, &report, Format::Json).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    // Money travels as exact decimal strings, kinds and categories as their names.
    let first = &json["lines"][0];
    assert_eq!(first["year"], 2027);
    assert_eq!(first["kind"], "replacement");
    assert_eq!(json["by_year"][1]["cost"], "4727.82");
    assert_eq!(json["by_year_and_category"].as_array().unwrap().len(), 5);

    let mut out = Vec::new();
    write_replacement(&mut out, &report, Format::Csv).unwrap();
    let text = tabular::decode(&out, None, None).unwrap();
    let mut reader = text.reader_builder().from_reader(text.text.as_bytes());
    let headers: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        headers,
        vec![
            "year",
            "authority",
            "school number",
            "school name",
            "category",
            "kind",
            "devices",
            "cost",
            "without price"
        ]
    );
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    assert_eq!(rows.len(), 5);
    let display = rows.iter().find(|r| r[4] == "display").unwrap();
    assert_eq!(
        display,
        &vec![
            "2028",
            "musterstadt",
            "100002",
            "Gymnasium am Stadtpark",
            "display",
            "replacement",
            "1",
            "2101.25",
            "0"
        ]
    );

    // The table shows money the German way.
    let mut out = Vec::new();
    write_replacement(&mut out, &report, Format::Table).unwrap();
    let table = String::from_utf8(out).unwrap();
    assert!(table.contains("2.101,25 €"), "{table}");
    assert!(table.contains("4.727,82 €"), "{table}");
}

/// A ticket of Musterstadt's source opened on `day` in `state`, naming `devices`.
async fn ticket_naming(
    pool: &PgPool,
    sources: &[store::SourceRef],
    run: i64,
    number: &str,
    opened: NaiveDate,
    state: &str,
    devices: &[Uuid],
) {
    let ticket: Uuid = sqlx::query_scalar(
        "insert into ticket (ticket_id, authority_id, source_id, external_id, number, title, \
         state, source_state, created_at, updated_at, content_hash, first_seen_at, \
         changed_in_run) values (gen_random_uuid(), $1, $2, $3, $3, 'iPad defekt', $4, $4, $5, \
         $5, '\\x00'::bytea, $5, $6) returning ticket_id",
    )
    .bind(sources[0].authority_id)
    .bind(sources[0].source_id)
    .bind(number)
    .bind(state)
    .bind(Utc.from_utc_datetime(&opened.and_hms_opt(8, 0, 0).unwrap()))
    .bind(run)
    .fetch_one(pool)
    .await
    .unwrap();
    for device in devices {
        sqlx::query(
            "insert into ticket_device (ticket_id, device_id, authority_id, found_by, detail, \
             linked_at, linked_by) values ($1, $2, $3, 'field', 'inventarnummer', now(), 'test')",
        )
        .bind(ticket)
        .bind(device)
        .bind(sources[0].authority_id)
        .execute(pool)
        .await
        .unwrap();
    }
}

/// `--early-by-tickets 0,5 --tickets-until 2026-Q3`, worked out by hand. Tablets live 5 years
/// (the default), no catalogue, no price increase; ages are on 2026-10-01, the day after the
/// last quarter counted (2025-Q4 to 2026-Q3).
///
/// | devices | authority, school | model | bought | price | age | due | tickets counted |
/// |---|---|---|---|---|---|---|---|
/// | P1-P4 | Musterstadt 100001 | iPad 7 | 2023-05-02 | 400 | 3 | 2028 | 3: #1 (P1, opened 2026-02-10 when P1 was 2), #2 (P2 and P3, once), #3 (P4) |
/// | Q1-Q4 | Musterstadt 100001 | iPad 9 | 2023-05-02 | 500 | 3 | 2028 | 1: #4 (Q1); #5, #6 merged, #7 opened 2026-10-05 |
/// | R1 | Musterstadt 100001 | iPad 7 | 2024-06-01 | 400 | 2 | 2029 | none |
/// | N1-N2 | Nachbarstadt 300001 | iPad 7 | 2023-05-02 | 400 | 3 | 2028 | none (Musterstadt's tickets are not theirs) |
///
/// A ticket counts for the cohort its device is in on 2026-10-01: #1 for P's (age 3), not R1's
/// (age 2, whose 1 / 1 would move it), though P1 was 2 when #1 was opened.
///
/// iPad 7 aged 3 at Musterstadt: 3 tickets / 4 devices = 0.75 > 0.5, replaced early in 2027:
/// 4 * 400 = 1600.00. iPad 9: 1 / 4 = 0.25, stays in 2028: 2000.00. Had the merged tickets and
/// the one after the quarter counted, 4 / 4 = 1.0 would have moved it too.
#[tokio::test]
async fn early_replacement_for_tickets_moves_only_the_cohorts_above_the_threshold() {
    let db = test_db().await;
    let pool = db.pool.clone();
    let sources = musterstadt(&pool, &["jamf"]).await;
    nachbarstadt(&pool).await;
    let school = |number: &'static str| {
        let pool = pool.clone();
        async move {
            id(
                &pool,
                "select school_id from school where school_number = $1",
                number,
            )
            .await
        }
    };
    let (a, n) = (school("100001").await, school("300001").await);
    let nachbarstadt = id(
        &pool,
        "select authority_id from school_authority where slug = $1",
        "nachbarstadt",
    )
    .await;
    let authority = sources[0].authority_id;
    let mut ids = std::collections::HashMap::new();
    for (tag, school, authority, model, bought, price) in [
        ("P1", a, authority, "iPad 7", day(2023, 5, 2), "400"),
        ("P2", a, authority, "iPad 7", day(2023, 5, 2), "400"),
        ("P3", a, authority, "iPad 7", day(2023, 5, 2), "400"),
        ("P4", a, authority, "iPad 7", day(2023, 5, 2), "400"),
        ("Q1", a, authority, "iPad 9", day(2023, 5, 2), "500"),
        ("Q2", a, authority, "iPad 9", day(2023, 5, 2), "500"),
        ("Q3", a, authority, "iPad 9", day(2023, 5, 2), "500"),
        ("Q4", a, authority, "iPad 9", day(2023, 5, 2), "500"),
        ("R1", a, authority, "iPad 7", day(2024, 6, 1), "400"),
        ("N1", n, nachbarstadt, "iPad 7", day(2023, 5, 2), "400"),
        ("N2", n, nachbarstadt, "iPad 7", day(2023, 5, 2), "400"),
    ] {
        let device = New {
            bought: Some(bought),
            price: Some(price),
            ..New::device(tag, school, "tablet", model)
        };
        ids.insert(tag, device.insert(&pool, authority).await);
    }
    let run: i64 = sqlx::query_scalar(
        "insert into sync_run (authority_id, source_id, started_at, status) \
         values ($1, $2, now(), 'succeeded') returning sync_run_id",
    )
    .bind(authority)
    .bind(sources[0].source_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    for (number, opened, state, tags) in [
        ("1", day(2026, 2, 10), "closed", &["P1"][..]),
        ("2", day(2026, 7, 1), "open", &["P2", "P3"][..]),
        ("3", day(2026, 9, 15), "new", &["P4"][..]),
        ("4", day(2026, 8, 1), "closed", &["Q1"][..]),
        ("5", day(2026, 8, 5), "merged", &["Q2"][..]),
        ("6", day(2026, 8, 6), "merged", &["Q3"][..]),
        ("7", day(2026, 10, 5), "open", &["Q4"][..]),
    ] {
        let devices: Vec<Uuid> = tags.iter().map(|tag| ids[tag]).collect();
        ticket_naming(&pool, &sources, run, number, opened, state, &devices).await;
    }

    let request = |early: bool| ReplacementRequest {
        yearly_increase: Decimal::ZERO,
        devices: true,
        early_by_tickets: early.then(|| forecast::EarlyByTickets {
            threshold: euro("0.5"),
            last: "2026-Q3".parse().unwrap(),
        }),
        ..request(false, false)
    };
    let seen =
        |report: &forecast::ReplacementForecast| -> Vec<(i32, String, LineKind, u32, Decimal)> {
            report
                .lines
                .iter()
                .map(|l| (l.year, l.authority.clone(), l.kind, l.devices, l.cost))
                .collect()
        };
    let line = |year, authority: &str, kind, devices, cost: &str| {
        (year, authority.to_string(), kind, devices, euro(cost))
    };
    let report = forecast::replacement_forecast(&pool, &Scope::All, &request(true))
        .await
        .unwrap();
    assert_eq!(
        seen(&report),
        vec![
            line(
                2027,
                "musterstadt",
                LineKind::EarlyReplacement,
                4,
                "1600.00"
            ),
            line(2028, "musterstadt", LineKind::Replacement, 4, "2000.00"),
            line(2028, "nachbarstadt", LineKind::Replacement, 2, "800.00"),
            line(2029, "musterstadt", LineKind::Replacement, 1, "400.00"),
        ]
    );
    let cohorts: Vec<_> = report
        .early_cohorts
        .iter()
        .map(|c| {
            (
                c.authority.as_str(),
                c.tickets.model.as_str(),
                c.tickets.age_years,
                c.tickets.tickets,
                c.tickets.devices,
                c.tickets.tickets_per_device,
            )
        })
        .collect();
    assert_eq!(
        cohorts,
        vec![("musterstadt", "iPad 7", 3, 3, 4, Some(0.75))]
    );
    // The device list follows the lines: P1-P4 in 2027.
    let mut listed: Vec<(i32, String)> = report
        .devices
        .iter()
        .map(|d| (d.year, d.plan.asset_tag.clone().unwrap()))
        .collect();
    listed.sort();
    let expected: Vec<(i32, String)> = [
        (2027, "P1"),
        (2027, "P2"),
        (2027, "P3"),
        (2027, "P4"),
        (2028, "N1"),
        (2028, "N2"),
        (2028, "Q1"),
        (2028, "Q2"),
        (2028, "Q3"),
        (2028, "Q4"),
        (2029, "R1"),
    ]
    .into_iter()
    .map(|(year, tag)| (year, tag.to_string()))
    .collect();
    assert_eq!(listed, expected);
    let mut out = Vec::new();
    write_replacement(&mut out, &report, Format::Table).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("more than 0,5 tickets per device in 2025-Q4 to 2026-Q3"),
        "{text}"
    );
    assert!(text.contains("early_replacement"), "{text}");
    // The workbook names the kind in German and has the cohorts on a sheet of their own.
    let bytes = bestand_documents::workbook::write_xlsx(
        &bestand_cli::commands::reports::workbooks::replacement_workbook(&report),
    )
    .unwrap();
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    use calamine::{Data, Reader};
    let sheet = book.worksheet_range("Vorzeitiger Ersatz").unwrap();
    let rows: Vec<Vec<Data>> = sheet.rows().map(<[Data]>::to_vec).collect();
    assert_eq!(
        rows,
        vec![
            [
                "Schulträger",
                "Modell",
                "Alter (Jahre)",
                "Tickets",
                "Geräte",
                "Tickets je Gerät"
            ]
            .map(|h| Data::String(h.into()))
            .to_vec(),
            vec![
                Data::String("musterstadt".into()),
                Data::String("iPad 7".into()),
                Data::Float(3.0),
                Data::Float(3.0),
                Data::Float(4.0),
                Data::Float(0.75),
            ],
        ]
    );
    let lines = book.worksheet_range("Prognose").unwrap();
    assert!(lines
        .rows()
        .any(|row| row.contains(&Data::String("Vorzeitiger Ersatz".into()))));

    // Without the option the iPads 7 are replaced when their life ends, with the iPads 9.
    let report = forecast::replacement_forecast(&pool, &Scope::All, &request(false))
        .await
        .unwrap();
    assert_eq!(
        seen(&report),
        vec![
            line(2028, "musterstadt", LineKind::Replacement, 8, "3600.00"),
            line(2028, "nachbarstadt", LineKind::Replacement, 2, "800.00"),
            line(2029, "musterstadt", LineKind::Replacement, 1, "400.00"),
        ]
    );
    // Nachbarstadt's own scope sees no cohort of Musterstadt's.
    let report =
        forecast::replacement_forecast(&pool, &Scope::Authority(nachbarstadt), &request(true))
            .await
            .unwrap();
    assert!(report.early_cohorts.is_empty());
    assert_eq!(
        seen(&report),
        vec![line(
            2028,
            "nachbarstadt",
            LineKind::Replacement,
            2,
            "800.00"
        )]
    );
}
