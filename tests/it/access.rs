//! Access (issue 16): a scope of school A cannot read or change a device, person, review item,
//! run or source of school B or of another authority through any public function of
//! `core::store` and `core::privacy`. One table names every such function; each case shows the
//! refusal (not found, left out, the database unchanged) and the same call succeeding with a
//! scope that reaches the row, so no case passes by finding nothing at all.

use std::collections::BTreeSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use bestand_core::access::{Actor, Scope};
use bestand_core::model::{LifecycleState, RepairBilling, RepairOutcome, SchoolType};
use bestand_core::store::inventory::{self, ScanPlace};
use bestand_core::store::lifecycle::{self, StateRequest};
use bestand_core::store::repairs::{self, RepairClosing, RepairFilter, RepairOpening};
use bestand_core::store::review::{Resolution, SERIAL_CHANGED, SERIAL_CONFLICT};
use bestand_core::store::{
    self, cost_split, devices, forecast, funding_report, overview, persons, plans, review, runs,
    ticket_report, ticket_write_back, tickets, SourceRef,
};
use bestand_core::store::{AuthoritySpec, SchoolSpec, SourceSpec};
use bestand_core::{privacy, procurement, CoreError};
use chrono::{DateTime, Duration, Utc};
use futures::FutureExt;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{t0, test_db};

/// Two authorities: X with schools A and B, Y with school C, each with an MDM and a directory
/// source. The loans' access cases build on this too.
pub(crate) struct TwoAuthorities {
    pub x: Uuid,
    pub a: Uuid,
    pub b: Uuid,
    pub y: Uuid,
    pub c: Uuid,
    pub x_mdm: Uuid,
    pub x_dir: Uuid,
    pub y_mdm: Uuid,
    pub y_dir: Uuid,
}

fn school(number: &str) -> SchoolSpec {
    SchoolSpec {
        number: number.into(),
        name: format!("Schule {number}"),
        school_type: SchoolType::Grundschule,
        aliases: Vec::new(),
    }
}

/// The configuration of X (named `name`) and Y.
fn configuration(x_name: &str) -> (Vec<AuthoritySpec>, Vec<SourceSpec>) {
    let authority = |slug: &str, name: &str, schools: Vec<SchoolSpec>| AuthoritySpec {
        slug: slug.into(),
        name: name.into(),
        shared_macs: Vec::new(),
        schools,
    };
    let source = |name: &str, kind: &str, slug: &str| SourceSpec {
        name: name.into(),
        kind: kind.into(),
        authority_slug: slug.into(),
    };
    (
        vec![
            authority("xstadt", x_name, vec![school("100001"), school("100002")]),
            authority("ystadt", "Y-Stadt", vec![school("200001")]),
        ],
        vec![
            source("x-mdm", "jamf_pro", "xstadt"),
            source("x-dir", "ucs_ldap", "xstadt"),
            source("y-mdm", "jamf_pro", "ystadt"),
            source("y-dir", "ucs_ldap", "ystadt"),
        ],
    )
}

/// Configures X and Y and returns their ids.
pub(crate) async fn two_authorities(pool: &PgPool) -> TwoAuthorities {
    let (authorities, sources) = configuration("X-Stadt");
    store::apply_configuration(
        pool,
        &Scope::All,
        &Actor::System("configuration"),
        &authorities,
        &sources,
    )
    .await
    .expect("the two authorities apply");
    let id = |sql: &'static str, key: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, Uuid>(sql)
                .bind(key)
                .fetch_one(&pool)
                .await
                .expect(key)
        }
    };
    let authority = "select authority_id from school_authority where slug = $1";
    let school = "select school_id from school where school_number = $1";
    let source = "select source_id from source where name = $1";
    TwoAuthorities {
        x: id(authority, "xstadt").await,
        a: id(school, "100001").await,
        b: id(school, "100002").await,
        y: id(authority, "ystadt").await,
        c: id(school, "200001").await,
        x_mdm: id(source, "x-mdm").await,
        x_dir: id(source, "x-dir").await,
        y_mdm: id(source, "y-mdm").await,
        y_dir: id(source, "y-dir").await,
    }
}

/// What one school holds: a device (tag `<L>-1`, serial `SER<L>1`), a pupil (`pupil.<l>`)
/// the MDM assigns it to, a hint the directory could not resolve, a review item about the
/// device, and a person who left three years ago (`left.<l>`).
#[derive(Clone)]
struct Place {
    device: Uuid,
    tag: String,
    person: Uuid,
    username: String,
    left_person: Uuid,
    review_item: i64,
}

/// Everything the cases reach for.
struct World {
    ids: TwoAuthorities,
    at_a: Place,
    at_b: Place,
    at_c: Place,
    /// A review item of X about no device: only an authority-wide scope sees it.
    x_wide_item: i64,
    x_run: i64,
    y_run: i64,
}

#[derive(Clone)]
struct Env {
    pool: PgPool,
    world: Arc<World>,
}

impl Env {
    fn only_a(&self) -> Scope {
        Scope::schools(self.world.ids.x, [self.world.ids.a])
    }
    fn only_b(&self) -> Scope {
        Scope::schools(self.world.ids.x, [self.world.ids.b])
    }
    fn x(&self) -> Scope {
        Scope::Authority(self.world.ids.x)
    }
    fn y(&self) -> Scope {
        Scope::Authority(self.world.ids.y)
    }
}

fn now() -> DateTime<Utc> {
    t0()
}

async fn place(
    pool: &PgPool,
    authority: Uuid,
    school: Uuid,
    mdm: Uuid,
    directory: Uuid,
    letter: &str,
) -> Place {
    let tag = format!("{letter}-1");
    let device = Uuid::now_v7();
    sqlx::query(
        "insert into device (device_id, authority_id, school_id, asset_tag, serial_number, \
         category, first_seen_at, updated_at) values ($1, $2, $3, $4, $5, 'tablet', $6, $6)",
    )
    .bind(device)
    .bind(authority)
    .bind(school)
    .bind(&tag)
    .bind(format!("SER{letter}1"))
    .bind(now())
    .execute(pool)
    .await
    .unwrap();
    // The MDM's record of the device reports another serial than the device's, so that
    // `find_merged_devices` has something to find at every school.
    sqlx::query(
        "insert into source_link (source_link_id, authority_id, source_id, device_id, external_id, \
         normalized, content_hash, first_seen_at, last_seen_at) \
         values ($1, $2, $3, $4, $5, $6, '\\x00'::bytea, $7, $7)",
    )
    .bind(Uuid::now_v7())
    .bind(authority)
    .bind(mdm)
    .bind(device)
    .bind(format!("mdm-{letter}"))
    .bind(serde_json::json!({ "serial_number": format!("OTHER{letter}1") }))
    .bind(now())
    .execute(pool)
    .await
    .unwrap();
    let username = format!("pupil.{}", letter.to_lowercase());
    let person = person(pool, authority, school, directory, &username, None).await;
    let left_person = person_left(pool, authority, school, directory, letter).await;
    sqlx::query(
        "insert into device_assignment (authority_id, device_id, source_id, hint_username, \
         status, person_id, since) values ($1, $2, $3, $4, 'matched', $5, $6), \
         ($1, $2, $7, 'ghost', 'no_match', null, $6)",
    )
    .bind(authority)
    .bind(device)
    .bind(mdm)
    .bind(&username)
    .bind(person)
    .bind(now())
    .bind(directory)
    .execute(pool)
    .await
    .unwrap();
    let review_item = review_item(
        pool,
        authority,
        mdm,
        &format!("conflict-{letter}"),
        &[device],
    )
    .await;
    Place {
        device,
        tag,
        person,
        username,
        left_person,
        review_item,
    }
}

/// A ticket `T<L>` of the school (its source the MDM, for brevity), linked to its device.
async fn ticket(
    pool: &PgPool,
    authority: Uuid,
    school: Uuid,
    source: Uuid,
    device: Uuid,
    letter: &str,
    run: i64,
) {
    let ticket: Uuid = sqlx::query_scalar(
        "insert into ticket (ticket_id, authority_id, source_id, external_id, number, title, \
         state, source_state, school_id, created_at, updated_at, content_hash, first_seen_at, \
         changed_in_run) values (gen_random_uuid(), $1, $2, $3, $3, 'Display', 'open', 'open', \
         $4, $5, $5, '\\x00'::bytea, $5, $6) returning ticket_id",
    )
    .bind(authority)
    .bind(source)
    .bind(format!("T{letter}"))
    .bind(school)
    .bind(now())
    .bind(run)
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into ticket_device (ticket_id, device_id, authority_id, found_by, detail, \
         linked_at, linked_by) values ($1, $2, $3, 'field', 'inventarnummer', $4, 'source:x')",
    )
    .bind(ticket)
    .bind(device)
    .bind(authority)
    .bind(now())
    .execute(pool)
    .await
    .unwrap();
}

async fn person_left(
    pool: &PgPool,
    authority: Uuid,
    school: Uuid,
    directory: Uuid,
    letter: &str,
) -> Uuid {
    let left_at = now() - Duration::days(3 * 365);
    let username = format!("left.{}", letter.to_lowercase());
    person(pool, authority, school, directory, &username, Some(left_at)).await
}

async fn person(
    pool: &PgPool,
    authority: Uuid,
    school: Uuid,
    directory: Uuid,
    username: &str,
    left_at: Option<DateTime<Utc>>,
) -> Uuid {
    let person: Uuid = sqlx::query_scalar(
        "insert into person (authority_id, username, left_at, first_seen_at, updated_at) \
         values ($1, $2, $3, $4, $4) returning person_id",
    )
    .bind(authority)
    .bind(username)
    .bind(left_at)
    .bind(now() - Duration::days(4 * 365))
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into person_membership (authority_id, person_id, source_id, school_id, role, \
         class_name) values ($1, $2, $3, $4, 'student', '4a')",
    )
    .bind(authority)
    .bind(person)
    .bind(directory)
    .bind(school)
    .execute(pool)
    .await
    .unwrap();
    person
}

async fn review_item(
    pool: &PgPool,
    authority: Uuid,
    source: Uuid,
    external_id: &str,
    candidates: &[Uuid],
) -> i64 {
    sqlx::query_scalar(
        "insert into review_item (authority_id, source_id, kind, external_id, summary, \
         candidates, created_at, last_seen_at) values ($1, $2, $3, $4, 'a case', $5, $6, $6) \
         returning review_item_id",
    )
    .bind(authority)
    .bind(source)
    .bind(SERIAL_CONFLICT)
    .bind(external_id)
    .bind(candidates)
    .bind(now())
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn run(pool: &PgPool, authority: Uuid, source: Uuid) -> i64 {
    sqlx::query_scalar(
        "insert into sync_run (authority_id, source_id, started_at, status) \
         values ($1, $2, $3, 'running') returning sync_run_id",
    )
    .bind(authority)
    .bind(source)
    .bind(now())
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A database of its own with the whole fixture.
async fn env() -> Env {
    let db = test_db().await;
    let pool = db.pool;
    let ids = two_authorities(&pool).await;
    let at_a = place(&pool, ids.x, ids.a, ids.x_mdm, ids.x_dir, "A").await;
    let at_b = place(&pool, ids.x, ids.b, ids.x_mdm, ids.x_dir, "B").await;
    let at_c = place(&pool, ids.y, ids.c, ids.y_mdm, ids.y_dir, "C").await;
    let x_wide_item = review_item(&pool, ids.x, ids.x_mdm, "unmatched-x", &[]).await;
    let x_run = run(&pool, ids.x, ids.x_mdm).await;
    let y_run = run(&pool, ids.y, ids.y_mdm).await;
    for (authority, school, source, place, run) in [
        (ids.x, ids.a, ids.x_mdm, &at_a, x_run),
        (ids.x, ids.b, ids.x_mdm, &at_b, x_run),
        (ids.y, ids.c, ids.y_mdm, &at_c, y_run),
    ] {
        let letter = &place.tag[..1];
        ticket(&pool, authority, school, source, place.device, letter, run).await;
    }
    let world = World {
        ids,
        at_a,
        at_b,
        at_c,
        x_wide_item,
        x_run,
        y_run,
    };
    Env {
        pool,
        world: Arc::new(world),
    }
}

/// The refusal of a lookup: exactly the error an unknown key gives.
fn assert_not_found<T: std::fmt::Debug>(
    case: &str,
    result: Result<T, CoreError>,
    what: &str,
    key: &str,
) {
    match result {
        Err(CoreError::NotFound {
            what: found,
            key: found_key,
        }) => {
            assert_eq!((found, found_key.as_str()), (what, key), "{case}");
        }
        other => panic!("{case}: expected '{what} not found: {key}', got {other:?}"),
    }
}

/// What a list call returned, by `key`, for comparing; a failed call fails the case.
async fn listed<T, K>(
    list: impl Future<Output = Result<Vec<T>, CoreError>>,
    key: impl Fn(T) -> K,
) -> Vec<K> {
    list.await.unwrap().into_iter().map(key).collect()
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

const DEVICE: &str = "device (by id, asset tag or serial number)";
const TICKET: &str = "ticket (by number or source:id)";
const TICKET_LINKS: &str = "select count(*) from ticket_device";
const PERSON: &str = "person (by id, username or email)";
const SCHOOL: &str = "school (by number, name or alias)";

type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One public function, called with a scope that must not reach the rows of school B and
/// authority Y, and with one that reaches them.
struct Case {
    function: &'static str,
    /// Whether the case changes the database, and so needs a fixture of its own.
    writes: bool,
    check: fn(Env) -> CaseFuture,
}

fn store_cases() -> Vec<Case> {
    let mut cases = vec![
        Case {
            function: "store::source_by_name",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let case = "source_by_name";
                    let found = store::source_by_name(&env.pool, &env.only_a(), "x-mdm").await;
                    assert_not_found(case, found, "source", "x-mdm");
                    let found = store::source_by_name(&env.pool, &env.x(), "y-mdm").await;
                    assert_not_found(case, found, "source", "y-mdm");
                    let source = store::source_by_name(&env.pool, &env.x(), "x-mdm").await;
                    assert_eq!(source.unwrap().source_id, env.world.ids.x_mdm);
                })
            },
        },
        Case {
            function: "store::source_by_id",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let case = "source_by_id";
                    let ids = &env.world.ids;
                    let key = ids.x_mdm.to_string();
                    let found = store::source_by_id(&env.pool, &env.only_a(), ids.x_mdm).await;
                    assert_not_found(case, found, "source", &key);
                    let key = ids.y_mdm.to_string();
                    let found = store::source_by_id(&env.pool, &env.x(), ids.y_mdm).await;
                    assert_not_found(case, found, "source", &key);
                    let source = store::source_by_id(&env.pool, &env.y(), ids.y_mdm).await;
                    assert_eq!(source.unwrap().name, "y-mdm");
                })
            },
        },
        Case {
            function: "store::devices::list_devices",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let w = &env.world;
                    let listed = |scope: Scope, filter: devices::DeviceFilter| {
                        let pool = env.pool.clone();
                        async move {
                            let list = devices::list_devices(&pool, &scope, &filter);
                            listed(list, |device| device.device_id).await
                        }
                    };
                    assert_eq!(
                        listed(env.only_a(), Default::default()).await,
                        [w.at_a.device]
                    );
                    // A filter narrows the scope, it never widens it.
                    let school_b = devices::DeviceFilter {
                        school: Some("100002".into()),
                        ..Default::default()
                    };
                    assert!(listed(env.only_a(), school_b).await.is_empty());
                    let by_person = devices::DeviceFilter {
                        assigned_to: Some(w.at_b.username.clone()),
                        ..Default::default()
                    };
                    let found = devices::list_devices(&env.pool, &env.only_a(), &by_person).await;
                    assert_not_found("list_devices", found.map(|_| ()), PERSON, "pupil.b");
                    assert_eq!(listed(env.only_b(), by_person).await, [w.at_b.device]);
                    assert_eq!(listed(Scope::All, Default::default()).await.len(), 3);
                })
            },
        },
        Case {
            function: "store::devices::show_device",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let w = &env.world;
                    for (scope, place) in [(env.only_a(), &w.at_b), (env.x(), &w.at_c)] {
                        let found = devices::show_device(&env.pool, &scope, &place.tag).await;
                        assert_not_found("show_device", found.map(|_| ()), DEVICE, &place.tag);
                        let id = place.device.to_string();
                        let found = devices::show_device(&env.pool, &scope, &id).await;
                        assert_not_found("show_device", found.map(|_| ()), "device", &id);
                    }
                    let shown = devices::show_device(&env.pool, &env.only_b(), "B-1").await;
                    let shown = shown.unwrap();
                    assert_eq!(shown.device.device_id, w.at_b.device);
                    assert_eq!(shown.assignments.len(), 2);
                })
            },
        },
        Case {
            function: "store::devices::resolve_device",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let w = &env.world;
                    let scope = env.only_a();
                    for key in ["B-1", "SERB1", "C-1"] {
                        let found = devices::resolve_device(&env.pool, &scope, key).await;
                        assert_not_found("resolve_device", found, DEVICE, key);
                    }
                    let id = w.at_b.device.to_string();
                    let found = devices::resolve_device(&env.pool, &scope, &id).await;
                    assert_not_found("resolve_device", found, "device", &id);
                    let found = devices::resolve_device(&env.pool, &env.only_b(), "SERB1").await;
                    assert_eq!(found.unwrap(), w.at_b.device);
                })
            },
        },
        Case {
            function: "store::devices::count_by_school_and_category",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let pool = &env.pool;
                    let key = |count: devices::SchoolCategoryCount| {
                        (count.school_number.unwrap(), count.devices)
                    };
                    let count = devices::count_by_school_and_category;
                    let a = listed(count(pool, &env.only_a(), None), key).await;
                    assert_eq!(a, [("100001".to_string(), 1)]);
                    let x = listed(count(pool, &env.x(), None), key).await;
                    assert_eq!(x, [("100001".to_string(), 1), ("100002".to_string(), 1)]);
                })
            },
        },
        Case {
            function: "store::overview::inventory_figures",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let figures = |scope: Scope| {
                        let pool = env.pool.clone();
                        async move {
                            let figures = overview::inventory_figures(&pool, &scope).await;
                            let figures = figures.expect("figures are counted");
                            let hints = figures.assignments_matched
                                + figures.assignments_no_match
                                + figures.assignments_ambiguous;
                            (figures.pupils, hints)
                        }
                    };
                    let a = figures(env.only_a()).await;
                    let x = figures(env.x()).await;
                    let y = figures(env.y()).await;
                    // Each place has one pupil and two user hints (one resolved, one not).
                    assert_eq!(a, (1, 2), "school A's pupil and user hints");
                    assert_eq!(x, (2, 4), "schools A and B");
                    assert_eq!(y, (1, 2), "authority Y alone");
                    assert_eq!(figures(Scope::All).await, (3, 6));
                })
            },
        },
        Case {
            function: "store::persons::list_schools",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let listed = |scope: Scope, authority: Option<&'static str>| {
                        let pool = env.pool.clone();
                        async move {
                            let list = persons::list_schools(&pool, &scope, authority);
                            listed(list, |school| {
                                (school.school_number, school.devices, school.pupils)
                            })
                            .await
                        }
                    };
                    assert_eq!(listed(env.only_a(), None).await, [("100001".into(), 1, 1)]);
                    assert!(listed(env.only_a(), Some("ystadt")).await.is_empty());
                    assert_eq!(listed(env.y(), None).await, [("200001".into(), 1, 1)]);
                    assert_eq!(listed(Scope::All, None).await.len(), 3);
                })
            },
        },
        Case {
            function: "store::persons::list_persons",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let w = &env.world;
                    let listed = |scope: Scope, left: bool| {
                        let pool = env.pool.clone();
                        async move {
                            let filter = persons::PersonFilter {
                                left,
                                ..Default::default()
                            };
                            let list = persons::list_persons(&pool, &scope, &filter);
                            listed(list, |person| person.person_id).await
                        }
                    };
                    assert_eq!(listed(env.only_a(), false).await, [w.at_a.person]);
                    assert_eq!(listed(env.only_a(), true).await, [w.at_a.left_person]);
                    assert_eq!(listed(env.only_b(), false).await, [w.at_b.person]);
                    assert_eq!(listed(env.y(), false).await, [w.at_c.person]);
                })
            },
        },
        Case {
            function: "store::persons::show_person",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let w = &env.world;
                    for (scope, place) in [(env.only_a(), &w.at_b), (env.x(), &w.at_c)] {
                        let found = persons::show_person(&env.pool, &scope, &place.username).await;
                        assert_not_found("show_person", found.map(|_| ()), PERSON, &place.username);
                        let id = place.person.to_string();
                        let found = persons::show_person(&env.pool, &scope, &id).await;
                        assert_not_found("show_person", found.map(|_| ()), "person", &id);
                    }
                    let shown = persons::show_person(&env.pool, &env.only_b(), "pupil.b").await;
                    let shown = shown.unwrap();
                    assert_eq!(shown.person.person_id, w.at_b.person);
                    assert_eq!(shown.devices.len(), 1);
                })
            },
        },
        Case {
            function: "store::persons::assigned_devices",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let w = &env.world;
                    let pool = &env.pool;
                    let assigned = persons::assigned_devices;
                    let id = |device: persons::AssignedDevice| device.device_id;
                    let b_from_a = listed(assigned(pool, &env.only_a(), w.at_b.person), id).await;
                    assert!(b_from_a.is_empty());
                    let c_from_x = listed(assigned(pool, &env.x(), w.at_c.person), id).await;
                    assert!(c_from_x.is_empty());
                    let b = listed(assigned(pool, &env.only_b(), w.at_b.person), id).await;
                    assert_eq!(b, [w.at_b.device]);
                })
            },
        },
        Case {
            function: "store::persons::resolve_person",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let w = &env.world;
                    let x = Some(w.ids.x);
                    let (only_a, only_b) = (env.only_a(), env.only_b());
                    for key in ["pupil.b", "left.b", "pupil.c"] {
                        let found = persons::resolve_person(&env.pool, &only_a, None, key).await;
                        assert_not_found("resolve_person", found, PERSON, key);
                    }
                    let id = w.at_b.person.to_string();
                    let found = persons::resolve_person(&env.pool, &only_a, x, &id).await;
                    assert_not_found("resolve_person", found, "person", &id);
                    let found = persons::resolve_person(&env.pool, &only_b, x, "pupil.b").await;
                    assert_eq!(found.unwrap(), w.at_b.person);
                })
            },
        },
        Case {
            function: "store::persons::unresolved_hints",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let w = &env.world;
                    for (scope, place) in [
                        (env.only_a(), &w.at_a),
                        (env.only_b(), &w.at_b),
                        (env.y(), &w.at_c),
                    ] {
                        let hints = persons::unresolved_hints(&env.pool, &scope, None);
                        assert_eq!(listed(hints, |hint| hint.device_id).await, [place.device]);
                    }
                })
            },
        },
        Case {
            function: "store::persons::device_assignments",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let w = &env.world;
                    let assignments = |scope: Scope, device: Uuid| {
                        let pool = env.pool.clone();
                        async move {
                            persons::device_assignments(&pool, &scope, device)
                                .await
                                .unwrap()
                                .len()
                        }
                    };
                    assert_eq!(assignments(env.only_a(), w.at_b.device).await, 0);
                    assert_eq!(assignments(env.x(), w.at_c.device).await, 0);
                    assert_eq!(assignments(env.only_b(), w.at_b.device).await, 2);
                })
            },
        },
        Case {
            function: "store::review::list_review",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let w = &env.world;
                    let listed = |scope: Scope| {
                        let pool = env.pool.clone();
                        async move {
                            let list = review::list_review(&pool, &scope, None);
                            listed(list, |item| item.review_item_id).await
                        }
                    };
                    assert_eq!(listed(env.only_a()).await, [w.at_a.review_item]);
                    assert_eq!(
                        listed(env.x()).await,
                        [w.at_a.review_item, w.at_b.review_item, w.x_wide_item]
                    );
                    assert_eq!(listed(env.y()).await, [w.at_c.review_item]);
                })
            },
        },
        Case {
            function: "store::review::review_kind",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let w = &env.world;
                    for item in [w.at_b.review_item, w.at_c.review_item, w.x_wide_item] {
                        let found = review::review_kind(&env.pool, &env.only_a(), item).await;
                        assert_not_found("review_kind", found, "review item", &item.to_string());
                    }
                    let (only_b, x) = (env.only_b(), env.x());
                    let kind = review::review_kind(&env.pool, &only_b, w.at_b.review_item).await;
                    assert_eq!(kind.unwrap(), SERIAL_CONFLICT);
                    let kind = review::review_kind(&env.pool, &x, w.x_wide_item).await;
                    assert_eq!(kind.unwrap(), SERIAL_CONFLICT);
                })
            },
        },
        Case {
            function: "store::review::resolve_review",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    let w = &env.world;
                    let case = "resolve_review";
                    let actor = Actor::CliUser("sekretariat.a".into());
                    let resolve = |scope: Scope, item: i64, resolution: Resolution| {
                        let pool = env.pool.clone();
                        let actor = actor.clone();
                        async move {
                            review::resolve_review(
                                &pool,
                                &scope,
                                &actor,
                                item,
                                resolution,
                                &Default::default(),
                                now(),
                            )
                            .await
                        }
                    };
                    for item in [w.at_b.review_item, w.at_c.review_item, w.x_wide_item] {
                        let found = resolve(env.only_a(), item, Resolution::Dismiss).await;
                        assert_not_found(case, found, "review item", &item.to_string());
                    }
                    // An item of A cannot be settled onto a device of B either.
                    let onto_b = Resolution::LinkTo(w.at_b.device);
                    let found = resolve(env.only_a(), w.at_a.review_item, onto_b).await;
                    assert_not_found(case, found, "device", &w.at_b.device.to_string());
                    // Nor can it become a new device at school B, where its record places it.
                    let at_b = bestand_core::record::DeviceRecord {
                        external_id: "mdm-a-item".into(),
                        serial_number: Some("NEWSERIALB".into()),
                        location: bestand_core::record::LocationHint {
                            school: Some("100002".into()),
                            ..Default::default()
                        },
                        ..Default::default()
                    };
                    sqlx::query("update review_item set record = $2 where review_item_id = $1")
                        .bind(w.at_a.review_item)
                        .bind(serde_json::to_value(&at_b).unwrap())
                        .execute(&env.pool)
                        .await
                        .unwrap();
                    let devices = "select count(*) from device";
                    let before = count(&env.pool, devices).await;
                    let new = resolve(env.only_a(), w.at_a.review_item, Resolution::CreateNew);
                    let refused = new.await;
                    assert!(
                        matches!(&refused, Err(CoreError::Invalid(m)) if m.contains("outside your scope")),
                        "{case}: {refused:?}"
                    );
                    assert_eq!(
                        count(&env.pool, devices).await,
                        before,
                        "{case}: no device made"
                    );
                    let open = "select count(*) from review_item where status = 'open'";
                    assert_eq!(count(&env.pool, open).await, 4, "{case}: nothing settled");
                    let done = resolve(env.only_b(), w.at_b.review_item, Resolution::Dismiss);
                    assert_eq!(done.await.unwrap(), "dismissed");
                    let status: (String, String) = sqlx::query_as(
                        "select status, resolved_by from review_item where review_item_id = $1",
                    )
                    .bind(w.at_b.review_item)
                    .fetch_one(&env.pool)
                    .await
                    .unwrap();
                    assert_eq!(status, ("dismissed".into(), "sekretariat.a".into()));
                })
            },
        },
        Case {
            function: "store::review::find_merged_devices",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    let w = &env.world;
                    let actor = Actor::CliUser("it.x".into());
                    let opened_for = |device: Uuid| {
                        let pool = env.pool.clone();
                        async move {
                            sqlx::query_scalar::<_, i64>(
                                "select count(*) from review_item where kind = $1 \
                                 and candidates = array[$2]::uuid[]",
                            )
                            .bind(SERIAL_CHANGED)
                            .bind(device)
                            .fetch_one(&pool)
                            .await
                            .unwrap()
                        }
                    };
                    let (only_a, y) = (env.only_a(), env.y());
                    let scan = review::find_merged_devices(&env.pool, &only_a, &actor, now()).await;
                    let scan = scan.unwrap();
                    assert_eq!((scan.links, scan.contradicting, scan.opened), (1, 1, 1));
                    assert_eq!(opened_for(w.at_a.device).await, 1);
                    assert_eq!(opened_for(w.at_b.device).await, 0, "B's device untouched");
                    assert_eq!(opened_for(w.at_c.device).await, 0, "Y's device untouched");
                    let scan = review::find_merged_devices(&env.pool, &y, &actor, now()).await;
                    assert_eq!(scan.unwrap().opened, 1);
                    assert_eq!(opened_for(w.at_c.device).await, 1);
                    assert_eq!(opened_for(w.at_b.device).await, 0);
                })
            },
        },
        Case {
            function: "store::runs::list_runs",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let w = &env.world;
                    let listed = |scope: Scope| {
                        let pool = env.pool.clone();
                        async move {
                            let list = runs::list_runs(&pool, &scope, None, 10);
                            listed(list, |run| run.sync_run_id).await
                        }
                    };
                    assert!(listed(env.only_a()).await.is_empty());
                    assert_eq!(listed(env.x()).await, [w.x_run]);
                    assert_eq!(listed(env.y()).await, [w.y_run]);
                })
            },
        },
        Case {
            function: "store::runs::get_run",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let w = &env.world;
                    let key = w.x_run.to_string();
                    let found = runs::get_run(&env.pool, &env.only_a(), w.x_run).await;
                    assert_not_found("get_run", found, "sync run", &key);
                    let found = runs::get_run(&env.pool, &env.y(), w.x_run).await;
                    assert_not_found("get_run", found, "sync run", &key);
                    let run = runs::get_run(&env.pool, &env.x(), w.x_run).await;
                    assert_eq!(run.unwrap().source_name, "x-mdm");
                })
            },
        },
        Case {
            function: "store::runs::running_runs",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let w = &env.world;
                    let running = |scope: Scope| {
                        let pool = env.pool.clone();
                        async move {
                            let list = runs::running_runs(&pool, &scope, now());
                            listed(list, |run| run.run_id).await
                        }
                    };
                    assert!(running(env.only_a()).await.is_empty());
                    assert_eq!(running(env.x()).await, [w.x_run]);
                    assert_eq!(running(Scope::All).await.len(), 2);
                })
            },
        },
        Case {
            function: "store::runs::source_status",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let status = |scope: Scope| {
                        let pool = env.pool.clone();
                        async move {
                            let lines = runs::source_status(&pool, &scope, now());
                            let names = listed(lines, |line| line.source_name).await;
                            names.into_iter().collect::<BTreeSet<_>>()
                        }
                    };
                    assert!(status(env.only_a()).await.is_empty());
                    let x: BTreeSet<String> = ["x-dir".into(), "x-mdm".into()].into();
                    assert_eq!(status(env.x()).await, x);
                })
            },
        },
        Case {
            function: "store::configuration::apply_configuration",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    let actor = Actor::CliUser("admin".into());
                    let (authorities, sources) = configuration("X-Stadt neu");
                    let x_only = &authorities[..1];
                    let apply = |scope: Scope| {
                        let pool = env.pool.clone();
                        let actor = actor.clone();
                        let authorities = x_only.to_vec();
                        let sources = sources[..2].to_vec();
                        async move {
                            store::apply_configuration(
                                &pool,
                                &scope,
                                &actor,
                                &authorities,
                                &sources,
                            )
                            .await
                        }
                    };
                    let name = "select name from school_authority where slug = 'xstadt'";
                    for scope in [env.only_a(), env.y()] {
                        let refused = apply(scope.clone()).await;
                        assert!(
                            matches!(refused, Err(CoreError::Invalid(_))),
                            "{scope:?}: {refused:?}"
                        );
                        let stored: String =
                            sqlx::query_scalar(name).fetch_one(&env.pool).await.unwrap();
                        assert_eq!(stored, "X-Stadt", "{scope:?} changed nothing");
                    }
                    let applied = apply(env.x()).await.unwrap();
                    assert_eq!(applied.len(), 2);
                    let stored: String =
                        sqlx::query_scalar(name).fetch_one(&env.pool).await.unwrap();
                    assert_eq!(stored, "X-Stadt neu");
                })
            },
        },
        Case {
            function: "store::plans::device_plans",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let tags = |scope: Scope| {
                        let pool = env.pool.clone();
                        async move {
                            plans::device_plans(&pool, &scope, None)
                                .await
                                .unwrap()
                                .into_iter()
                                .filter_map(|plan| plan.asset_tag)
                                .collect::<Vec<_>>()
                        }
                    };
                    assert_eq!(tags(env.only_a()).await, vec!["A-1"]);
                    assert_eq!(tags(env.x()).await, vec!["A-1", "B-1"]);
                    let found = plans::device_plans(&env.pool, &env.only_a(), Some("100002")).await;
                    assert_not_found("device_plans", found, SCHOOL, "100002");
                    let found = plans::device_plans(&env.pool, &env.x(), Some("200001")).await;
                    assert_not_found("device_plans", found, SCHOOL, "200001");
                    let at_b = plans::device_plans(&env.pool, &env.x(), Some("100002")).await;
                    assert_eq!(at_b.unwrap().len(), 1);
                })
            },
        },
        Case {
            function: "store::plans::warranty_report",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    sqlx::query("update device set warranty_end = '2027-01-15'")
                        .execute(&env.pool)
                        .await
                        .unwrap();
                    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
                    let tags = |scope: Scope| {
                        let pool = env.pool.clone();
                        async move {
                            let report = plans::warranty_report(&pool, &scope, today, 6, None);
                            report
                                .await
                                .unwrap()
                                .expiring
                                .into_iter()
                                .filter_map(|d| d.asset_tag)
                                .collect::<Vec<_>>()
                        }
                    };
                    assert_eq!(tags(env.only_a()).await, vec!["A-1"]);
                    assert_eq!(tags(env.x()).await, vec!["A-1", "B-1"]);
                    let found =
                        plans::warranty_report(&env.pool, &env.only_a(), today, 6, Some("100002"))
                            .await;
                    assert_not_found("warranty_report", found, SCHOOL, "100002");
                })
            },
        },
        Case {
            function: "store::plans::depreciation_report",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let at = chrono::NaiveDate::from_ymd_opt(2026, 12, 31).unwrap();
                    let tags = |scope: Scope| {
                        let pool = env.pool.clone();
                        async move {
                            let report = plans::depreciation_report(&pool, &scope, at, None);
                            let report = report.await.unwrap();
                            let schools: Vec<_> = report
                                .schools
                                .into_iter()
                                .filter_map(|t| t.school_number)
                                .collect();
                            let tags: Vec<_> = report
                                .devices
                                .into_iter()
                                .filter_map(|d| d.asset_tag)
                                .collect();
                            (tags, schools)
                        }
                    };
                    assert_eq!(
                        tags(env.only_a()).await,
                        (vec!["A-1".to_string()], vec!["100001".to_string()])
                    );
                    assert_eq!(tags(env.x()).await.0, vec!["A-1", "B-1"]);
                    let found =
                        plans::depreciation_report(&env.pool, &env.y(), at, Some("100001")).await;
                    assert_not_found("depreciation_report", found, SCHOOL, "100001");
                })
            },
        },
        Case {
            function: "store::forecast::replacement_forecast",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    // The devices were first seen in 2026 and are tablets: due in 2031.
                    let request = |school: Option<&str>| forecast::ReplacementRequest {
                        first_year: 2027,
                        last_year: 2031,
                        price_year: 2026,
                        yearly_increase: rust_decimal::Decimal::ZERO,
                        smooth: false,
                        target: true,
                        spread_growth: false,
                        school: school.map(String::from),
                        devices: true,
                        early_by_tickets: None,
                    };
                    let schools = |scope: Scope| {
                        let pool = env.pool.clone();
                        async move {
                            let all = request(None);
                            let report = forecast::replacement_forecast(&pool, &scope, &all);
                            let report = report.await.unwrap();
                            let lines: Vec<_> = report
                                .lines
                                .into_iter()
                                .filter_map(|l| l.school_number)
                                .collect();
                            let devices: Vec<_> = report
                                .devices
                                .into_iter()
                                .filter_map(|d| d.plan.asset_tag)
                                .collect();
                            (lines, devices)
                        }
                    };
                    assert_eq!(
                        schools(env.only_a()).await,
                        (vec!["100001".to_string()], vec!["A-1".to_string()])
                    );
                    assert_eq!(
                        schools(env.x()).await,
                        (
                            vec!["100001".to_string(), "100002".to_string()],
                            vec!["A-1".to_string(), "B-1".to_string()]
                        )
                    );
                    let found = forecast::replacement_forecast(
                        &env.pool,
                        &env.only_a(),
                        &request(Some("100002")),
                    )
                    .await;
                    assert_not_found("replacement_forecast", found, SCHOOL, "100002");
                })
            },
        },
        Case {
            function: "store::funding_report::funding_report",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    let ids = &env.world.ids;
                    sqlx::query(
                        "insert into funding_programme (authority_id, code, name, created_at) \
                         values ($1, 'DP', 'DigitalPakt', now()), ($2, 'DPY', 'DigitalPakt', now())",
                    )
                    .bind(ids.x)
                    .bind(ids.y)
                    .execute(&env.pool)
                    .await
                    .unwrap();
                    sqlx::query(
                        "update device set funding_programme = case authority_id \
                         when $1 then 'DP' else 'DPY' end",
                    )
                    .bind(ids.x)
                    .execute(&env.pool)
                    .await
                    .unwrap();
                    let tags = |scope: Scope| {
                        let pool = env.pool.clone();
                        async move {
                            funding_report::funding_report(&pool, &scope, now(), "DP", None, 30)
                                .await
                                .unwrap()
                                .devices
                                .into_iter()
                                .filter_map(|d| d.asset_tag)
                                .collect::<Vec<_>>()
                        }
                    };
                    assert_eq!(tags(env.only_a()).await, vec!["A-1"]);
                    assert_eq!(tags(env.x()).await, vec!["A-1", "B-1"]);
                    for (scope, code) in [(env.y(), "DP"), (env.x(), "DPY")] {
                        let found = funding_report::funding_report(
                            &env.pool,
                            &scope,
                            now(),
                            code,
                            None,
                            30,
                        )
                        .await;
                        assert_not_found("funding_report", found, "funding programme", code);
                    }
                })
            },
        },
        Case {
            function: "store::cost_split::cost_split",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let amount = rust_decimal::Decimal::from(100);
                    let weights = cost_split::LevelWeights::default();
                    let pupils = |scope: Scope| {
                        let pool = env.pool.clone();
                        let weights = weights.clone();
                        async move {
                            cost_split::cost_split(&pool, &scope, amount, &weights, &[])
                                .await
                                .unwrap()
                                .shares
                                .into_iter()
                                .map(|s| (s.authority, s.primary))
                                .collect::<Vec<_>>()
                        }
                    };
                    // pupil.a only (left.a has left); with X, pupil.b as well; Y never.
                    assert_eq!(pupils(env.only_a()).await, vec![("xstadt".to_string(), 1)]);
                    assert_eq!(pupils(env.x()).await, vec![("xstadt".to_string(), 2)]);
                    let found = cost_split::cost_split(
                        &env.pool,
                        &env.x(),
                        amount,
                        &weights,
                        &["ystadt".to_string()],
                    )
                    .await;
                    assert_not_found("cost_split", found, "authority", "ystadt");
                })
            },
        },
        Case {
            function: "store::recreate_schema",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    let devices = || async {
                        let count = sqlx::query_scalar::<_, i64>("select count(*) from device");
                        count.fetch_one(&env.pool).await.expect("device table")
                    };
                    let before = devices().await;
                    assert!(before > 0);
                    for scope in [env.only_a(), env.x()] {
                        let refused = store::recreate_schema(&env.pool, &scope).await;
                        assert!(matches!(refused, Err(CoreError::Invalid(_))), "{refused:?}");
                    }
                    assert_eq!(devices().await, before, "a narrower scope dropped nothing");
                    store::recreate_schema(&env.pool, &Scope::All)
                        .await
                        .expect("every authority's scope empties the database");
                    assert_eq!(devices().await, 0, "empty and migrated again");
                })
            },
        },
        Case {
            function: "store::ticket_report::ticket_report",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    use bestand_core::service_level::{Land, Quarter, ServiceCalendar};
                    let calendar = ServiceCalendar::service_sheet(Land::NordrheinWestfalen);
                    let opened = |scope: Scope, authority: Option<&str>| {
                        let pool = env.pool.clone();
                        let calendar = calendar.clone();
                        let request = ticket_report::TicketReportRequest {
                            authority: authority.map(String::from),
                            period: Quarter::containing(now()),
                            quarters: 1,
                        };
                        async move {
                            let report = ticket_report::ticket_report(
                                &pool,
                                &scope,
                                &calendar,
                                &Default::default(),
                                &request,
                            )
                            .await?;
                            Ok::<u64, CoreError>(
                                report.figures.quarters[0].groups[0].figures.opened,
                            )
                        }
                    };
                    // School A's scope counts TA only; X's authority TA and TB.
                    assert_eq!(opened(env.only_a(), None).await.unwrap(), 1);
                    assert_eq!(opened(env.x(), Some("xstadt")).await.unwrap(), 2);
                    let found = opened(env.only_a(), Some("ystadt")).await;
                    assert_not_found("ticket_report", found, "authority", "ystadt");
                })
            },
        },
        Case {
            function: "store::ticket_report::early_cohorts",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    use bestand_core::service_level::Quarter;
                    // Every device an iPad first seen now (age 0), each with its one ticket: in
                    // a scope, each authority's cohort counts the tickets and devices it sees.
                    sqlx::query("update device set model = 'iPad'")
                        .execute(&env.pool)
                        .await
                        .unwrap();
                    let cohorts = |scope: Scope| {
                        let pool = env.pool.clone();
                        async move {
                            let found = ticket_report::early_cohorts(
                                &pool,
                                &scope,
                                Quarter::containing(now()),
                                0.5,
                            );
                            listed(found, |c| {
                                (c.authority, c.tickets.tickets, c.tickets.devices)
                            })
                            .await
                        }
                    };
                    let x = |tickets, devices| ("xstadt".to_string(), tickets, devices);
                    assert_eq!(cohorts(env.only_a()).await, vec![x(1, 1)]);
                    assert_eq!(cohorts(env.x()).await, vec![x(2, 2)]);
                    assert_eq!(
                        cohorts(Scope::All).await,
                        vec![x(2, 2), ("ystadt".to_string(), 1, 1)]
                    );
                })
            },
        },
        Case {
            function: "store::tickets::list_tickets",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let listed = |scope: Scope, filter: tickets::TicketFilter| {
                        let pool = env.pool.clone();
                        async move {
                            let list = tickets::list_tickets(&pool, &scope, &filter);
                            listed(list, |ticket| (ticket.number, ticket.devices)).await
                        }
                    };
                    let a = ("TA".to_string(), Some("A-1".to_string()));
                    assert_eq!(listed(env.only_a(), Default::default()).await, [a]);
                    let school_b = tickets::TicketFilter {
                        school: Some("100002".into()),
                        ..Default::default()
                    };
                    assert!(listed(env.only_a(), school_b.clone()).await.is_empty());
                    assert_eq!(listed(env.x(), school_b).await.len(), 1);
                    assert_eq!(listed(env.x(), Default::default()).await.len(), 2);
                    assert_eq!(listed(Scope::All, Default::default()).await.len(), 3);
                })
            },
        },
        Case {
            function: "store::tickets::show_ticket",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    for (scope, key) in [
                        (env.only_a(), "TB"),
                        (env.only_a(), "x-mdm:TB"),
                        (env.x(), "TC"),
                        (env.x(), "y-mdm:TC"),
                    ] {
                        let found = tickets::show_ticket(&env.pool, &scope, key).await;
                        assert_not_found("show_ticket", found.map(|_| ()), TICKET, key);
                    }
                    let shown = tickets::show_ticket(&env.pool, &env.only_b(), "TB").await;
                    let shown = shown.unwrap();
                    assert_eq!(shown.devices.len(), 1);
                    assert_eq!(shown.devices[0].device_id, env.world.at_b.device);
                })
            },
        },
        Case {
            function: "store::tickets::tickets_of_device",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    for (scope, key) in [(env.only_a(), "B-1"), (env.x(), "C-1")] {
                        let found = tickets::tickets_of_device(&env.pool, &scope, key).await;
                        assert_not_found("tickets_of_device", found, DEVICE, key);
                    }
                    let only_b = env.only_b();
                    let found = tickets::tickets_of_device(&env.pool, &only_b, "B-1");
                    assert_eq!(listed(found, |t| t.number).await, ["TB"]);
                })
            },
        },
        Case {
            function: "store::tickets::link_ticket",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    let actor = Actor::CliUser("anna".into());
                    let link = |scope: Scope, ticket: &'static str, device: &'static str| {
                        let pool = env.pool.clone();
                        let actor = actor.clone();
                        async move {
                            tickets::link_ticket(&pool, &scope, &actor, ticket, device, now()).await
                        }
                    };
                    let found = link(env.only_a(), "TB", "A-1").await;
                    assert_not_found("link_ticket", found, TICKET, "TB");
                    let found = link(env.only_a(), "TA", "B-1").await;
                    assert_not_found("link_ticket", found, DEVICE, "B-1");
                    let found = link(env.x(), "TA", "C-1").await;
                    assert_not_found("link_ticket", found, DEVICE, "C-1");
                    assert_eq!(count(&env.pool, TICKET_LINKS).await, 3, "nothing linked");
                    link(env.x(), "TA", "B-1").await.unwrap();
                    assert_eq!(count(&env.pool, TICKET_LINKS).await, 4);
                })
            },
        },
        Case {
            function: "store::tickets::unlink_ticket",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    let actor = Actor::CliUser("anna".into());
                    let pool = &env.pool;
                    let (only_a, only_b, x) = (env.only_a(), env.only_b(), env.x());
                    let found = tickets::unlink_ticket(pool, &only_a, &actor, "TB", "B-1", now());
                    assert_not_found("unlink_ticket", found.await, TICKET, "TB");
                    let found = tickets::unlink_ticket(pool, &x, &actor, "TC", "C-1", now());
                    assert_not_found("unlink_ticket", found.await, TICKET, "TC");
                    assert_eq!(count(pool, TICKET_LINKS).await, 3, "nothing unlinked");
                    let done = tickets::unlink_ticket(pool, &only_b, &actor, "TB", "B-1", now());
                    assert_eq!(done.await.unwrap().before.as_deref(), Some("field"));
                    assert_eq!(count(pool, TICKET_LINKS).await, 2);
                })
            },
        },
        Case {
            function: "store::ticket_write_back::write_back_candidates",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let w = &env.world;
                    let source = |source_id: Uuid, authority_id: Uuid| SourceRef {
                        source_id,
                        authority_id,
                        name: "ticket source".into(),
                        kind: "zammad".into(),
                    };
                    let (x_mdm, y_mdm) =
                        (source(w.ids.x_mdm, w.ids.x), source(w.ids.y_mdm, w.ids.y));
                    let candidates = |scope: Scope, source: SourceRef, run: i64| {
                        let pool = env.pool.clone();
                        async move {
                            ticket_write_back::write_back_candidates(&pool, &scope, &source, run)
                                .await
                                .unwrap()
                                .into_iter()
                                .map(|t| (t.external_id, t.devices.len()))
                                .collect::<Vec<_>>()
                        }
                    };
                    let one = |ticket: &str| vec![(ticket.to_string(), 1)];
                    // TA and TB are x-mdm's tickets of run x_run, TC y-mdm's of y_run.
                    assert_eq!(
                        candidates(env.only_a(), x_mdm.clone(), w.x_run).await,
                        one("TA")
                    );
                    assert_eq!(
                        candidates(env.only_b(), x_mdm.clone(), w.x_run).await,
                        one("TB")
                    );
                    assert!(candidates(env.y(), x_mdm.clone(), w.x_run).await.is_empty());
                    assert!(candidates(env.x(), y_mdm.clone(), w.y_run).await.is_empty());
                    assert_eq!(candidates(env.x(), x_mdm, w.x_run).await.len(), 2);
                    assert_eq!(candidates(env.y(), y_mdm, w.y_run).await, one("TC"));
                })
            },
        },
        Case {
            function: "privacy::purge",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    let w = &env.world;
                    let actor = Actor::CliUser("dsb".into());
                    let persons = "select count(*) from person";
                    for (scope, slug) in [
                        (env.only_a(), "xstadt"),
                        (env.y(), "xstadt"),
                        (env.only_a(), "ystadt"),
                    ] {
                        let found =
                            privacy::purge(&env.pool, &scope, &actor, now(), slug, 12, false).await;
                        assert_not_found("purge", found, "authority", slug);
                        assert_eq!(count(&env.pool, persons).await, 6, "nobody purged");
                    }
                    let x = env.x();
                    let report = privacy::purge(&env.pool, &x, &actor, now(), "xstadt", 12, false);
                    let purged: BTreeSet<Uuid> = report
                        .await
                        .unwrap()
                        .persons
                        .into_iter()
                        .map(|person| person.person_id)
                        .collect();
                    assert_eq!(purged, [w.at_a.left_person, w.at_b.left_person].into());
                    assert_eq!(count(&env.pool, persons).await, 4);
                    let left_c: i64 =
                        sqlx::query_scalar("select count(*) from person where person_id = $1")
                            .bind(w.at_c.left_person)
                            .fetch_one(&env.pool)
                            .await
                            .unwrap();
                    assert_eq!(left_c, 1, "Y's person who left is kept");
                })
            },
        },
    ];
    cases.extend(procurement_cases());
    cases
}

fn cases() -> Vec<Case> {
    let mut all = store_cases();
    all.extend(lifecycle_cases());
    all
}

async fn lifecycle_state(pool: &PgPool, device: Uuid) -> String {
    sqlx::query_scalar("select lifecycle_state from device where device_id = $1")
        .bind(device)
        .fetch_one(pool)
        .await
        .unwrap()
}

fn repair_opening() -> RepairOpening {
    RepairOpening {
        billing: RepairBilling::Paid,
        provider: None,
        defect: Some("Display".into()),
        opened_on: now().date_naive(),
        force: false,
    }
}

/// Opens a repair of `tag` with every authority's scope.
async fn open_repair_of(pool: &PgPool, tag: &str) -> i64 {
    let actor = Actor::CliUser("it".into());
    repairs::open_repair(pool, &Scope::All, &actor, tag, &repair_opening(), now())
        .await
        .unwrap()
        .repair
        .repair_id
}

/// Starts a count at school `number` with every authority's scope.
async fn count_at(pool: &PgPool, number: &str) -> i64 {
    let actor = Actor::CliUser("it".into());
    inventory::start_count(pool, &Scope::All, &actor, number, now())
        .await
        .unwrap()
        .stocktake_id
}

/// The cases of lifecycle changes, repairs and counts (issue 17).
fn lifecycle_cases() -> Vec<Case> {
    vec![
        Case {
            function: "store::lifecycle::change_state",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    let w = &env.world;
                    let actor = Actor::CliUser("it".into());
                    let request = StateRequest {
                        to: LifecycleState::InRepair,
                        reason: "kaputt".into(),
                        disposal: None,
                    };
                    for (scope, place) in [(env.only_a(), &w.at_b), (env.x(), &w.at_c)] {
                        let found = lifecycle::change_state(
                            &env.pool,
                            &scope,
                            &actor,
                            &place.tag,
                            &request,
                            now(),
                        )
                        .await;
                        assert_not_found("change_state", found, DEVICE, &place.tag);
                        assert_eq!(lifecycle_state(&env.pool, place.device).await, "in_use");
                    }
                    let moved = lifecycle::change_state(
                        &env.pool,
                        &env.only_b(),
                        &actor,
                        "B-1",
                        &request,
                        now(),
                    )
                    .await
                    .unwrap();
                    assert_eq!(moved.to_state, "in_repair");
                    assert_eq!(lifecycle_state(&env.pool, w.at_b.device).await, "in_repair");
                })
            },
        },
        Case {
            function: "store::repairs::open_repair",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    let w = &env.world;
                    let actor = Actor::CliUser("it".into());
                    let opening = repair_opening();
                    for (scope, place) in [(env.only_a(), &w.at_b), (env.x(), &w.at_c)] {
                        let found = repairs::open_repair(
                            &env.pool,
                            &scope,
                            &actor,
                            &place.tag,
                            &opening,
                            now(),
                        )
                        .await;
                        assert_not_found("open_repair", found, DEVICE, &place.tag);
                    }
                    assert_eq!(count(&env.pool, "select count(*) from repair").await, 0);
                    let opened = repairs::open_repair(
                        &env.pool,
                        &env.only_b(),
                        &actor,
                        "B-1",
                        &opening,
                        now(),
                    )
                    .await
                    .unwrap();
                    assert_eq!(opened.repair.device_id, w.at_b.device);
                })
            },
        },
        Case {
            function: "store::repairs::close_repair",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    let actor = Actor::CliUser("it".into());
                    let closing = RepairClosing {
                        outcome: RepairOutcome::Repaired,
                        cost: None,
                        currency: None,
                        closed_on: now().date_naive(),
                        to: None,
                    };
                    let at_b = open_repair_of(&env.pool, "B-1").await;
                    let at_c = open_repair_of(&env.pool, "C-1").await;
                    for (scope, repair) in [(env.only_a(), at_b), (env.x(), at_c)] {
                        let found = repairs::close_repair(
                            &env.pool,
                            &scope,
                            &actor,
                            repair,
                            &closing,
                            now(),
                        )
                        .await;
                        assert_not_found("close_repair", found, "repair", &repair.to_string());
                    }
                    let open = "select count(*) from repair where closed_on is null";
                    assert_eq!(count(&env.pool, open).await, 2);
                    repairs::close_repair(&env.pool, &env.only_b(), &actor, at_b, &closing, now())
                        .await
                        .unwrap();
                    assert_eq!(count(&env.pool, open).await, 1);
                })
            },
        },
        Case {
            function: "store::repairs::list_repairs",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    for tag in ["A-1", "B-1", "C-1"] {
                        open_repair_of(&env.pool, tag).await;
                    }
                    let filter = RepairFilter::default();
                    let tags = |scope: Scope| {
                        let pool = env.pool.clone();
                        let filter = filter.clone();
                        async move {
                            let mut tags =
                                listed(repairs::list_repairs(&pool, &scope, &filter), |repair| {
                                    repair.asset_tag.unwrap_or_default()
                                })
                                .await;
                            tags.sort();
                            tags
                        }
                    };
                    assert_eq!(tags(env.only_a()).await, vec!["A-1"]);
                    assert_eq!(tags(env.x()).await, vec!["A-1", "B-1"]);
                    assert_eq!(tags(env.y()).await, vec!["C-1"]);
                })
            },
        },
        Case {
            function: "store::repairs::device_cost_of_ownership",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let w = &env.world;
                    for (scope, place) in [(env.only_a(), &w.at_b), (env.x(), &w.at_c)] {
                        let found =
                            repairs::device_cost_of_ownership(&env.pool, &scope, &place.tag).await;
                        assert_not_found("device_cost_of_ownership", found, DEVICE, &place.tag);
                    }
                    let cost = repairs::device_cost_of_ownership(&env.pool, &env.only_b(), "B-1")
                        .await
                        .unwrap();
                    assert_eq!(cost.device_id, w.at_b.device);
                })
            },
        },
        Case {
            function: "store::inventory::start_count",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    let actor = Actor::CliUser("it".into());
                    const SCHOOL: &str = "school (by number, name or alias)";
                    for (scope, number) in [(env.only_a(), "100002"), (env.x(), "200001")] {
                        let found =
                            inventory::start_count(&env.pool, &scope, &actor, number, now()).await;
                        assert_not_found("start_count", found, SCHOOL, number);
                    }
                    assert_eq!(count(&env.pool, "select count(*) from stocktake").await, 0);
                    inventory::start_count(&env.pool, &env.only_b(), &actor, "100002", now())
                        .await
                        .unwrap();
                    assert_eq!(count(&env.pool, "select count(*) from stocktake").await, 1);
                })
            },
        },
        Case {
            function: "store::inventory::get_count",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    let at_b = count_at(&env.pool, "100002").await;
                    let at_c = count_at(&env.pool, "200001").await;
                    for (scope, id) in [(env.only_a(), at_b), (env.x(), at_c)] {
                        let found = inventory::get_count(&env.pool, &scope, id).await;
                        assert_not_found("get_count", found, "count", &id.to_string());
                    }
                    let found = inventory::get_count(&env.pool, &env.only_b(), at_b).await;
                    assert_eq!(found.unwrap().school_number, "100002");
                })
            },
        },
        Case {
            function: "store::inventory::scan_tags",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    let actor = Actor::CliUser("it".into());
                    let place = ScanPlace::default();
                    let at_a = count_at(&env.pool, "100001").await;
                    let at_b = count_at(&env.pool, "100002").await;
                    let tags = vec!["B-1".to_string()];
                    let found = inventory::scan_tags(
                        &env.pool,
                        &env.only_a(),
                        &actor,
                        at_b,
                        &tags,
                        &place,
                        now(),
                    )
                    .await;
                    assert_not_found("scan_tags", found, "count", &at_b.to_string());
                    let scans = "select count(*) from stocktake_scan where device_id is not null";
                    assert_eq!(count(&env.pool, scans).await, 0);
                    // School B's device scanned at school A by a scope of A: not read, so unknown.
                    let report = inventory::scan_tags(
                        &env.pool,
                        &env.only_a(),
                        &actor,
                        at_a,
                        &tags,
                        &place,
                        now(),
                    )
                    .await
                    .unwrap();
                    assert_eq!(report.unknown, vec!["B-1"]);
                    let report = inventory::scan_tags(
                        &env.pool,
                        &env.only_b(),
                        &actor,
                        at_b,
                        &tags,
                        &place,
                        now(),
                    )
                    .await
                    .unwrap();
                    assert!(report.unknown.is_empty());
                    assert_eq!(count(&env.pool, scans).await, 1);
                })
            },
        },
        Case {
            function: "store::inventory::count_result",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    let at_b = count_at(&env.pool, "100002").await;
                    let at_c = count_at(&env.pool, "200001").await;
                    for (scope, id) in [(env.only_a(), at_b), (env.x(), at_c)] {
                        let found = inventory::count_result(&env.pool, &scope, id).await;
                        assert_not_found("count_result", found, "count", &id.to_string());
                    }
                    let result = inventory::count_result(&env.pool, &env.only_b(), at_b)
                        .await
                        .unwrap();
                    assert_eq!((result.expected, result.expected_seen), (1, 0));
                })
            },
        },
        Case {
            function: "store::inventory::close_count",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    let actor = Actor::CliUser("it".into());
                    let at_b = count_at(&env.pool, "100002").await;
                    let at_c = count_at(&env.pool, "200001").await;
                    for (scope, id) in [(env.only_a(), at_b), (env.x(), at_c)] {
                        let found =
                            inventory::close_count(&env.pool, &scope, &actor, id, true, now())
                                .await;
                        assert_not_found("close_count", found, "count", &id.to_string());
                    }
                    let open = "select count(*) from stocktake where closed_at is null";
                    assert_eq!(count(&env.pool, open).await, 2);
                    inventory::close_count(&env.pool, &env.only_b(), &actor, at_b, false, now())
                        .await
                        .unwrap();
                    assert_eq!(count(&env.pool, open).await, 1);
                })
            },
        },
    ]
}

/// Public functions that reach no rows anyone owns, and so take no scope: the schema, and the
/// table of allowed lifecycle moves.
const WITHOUT_SCOPE: &[&str] = &["store::migrate", "store::lifecycle::transitions"];

/// The `pub async fn` names of core's store and privacy modules, as `module::function`.
fn public_functions() -> BTreeSet<String> {
    let files = [
        ("store", include_str!("../../core/src/store/mod.rs")),
        (
            "store::configuration",
            include_str!("../../core/src/store/configuration.rs"),
        ),
        (
            "store::devices",
            include_str!("../../core/src/store/devices.rs"),
        ),
        (
            "store::persons",
            include_str!("../../core/src/store/persons.rs"),
        ),
        (
            "store::review",
            include_str!("../../core/src/store/review.rs"),
        ),
        ("store::runs", include_str!("../../core/src/store/runs.rs")),
        (
            "store::overview",
            include_str!("../../core/src/store/overview.rs"),
        ),
        (
            "store::assignments",
            include_str!("../../core/src/store/assignments.rs"),
        ),
        (
            "store::device_row",
            include_str!("../../core/src/store/device_row.rs"),
        ),
        (
            "store::plans",
            include_str!("../../core/src/store/plans.rs"),
        ),
        (
            "store::forecast",
            include_str!("../../core/src/store/forecast.rs"),
        ),
        (
            "store::funding_report",
            include_str!("../../core/src/store/funding_report.rs"),
        ),
        (
            "store::cost_split",
            include_str!("../../core/src/store/cost_split.rs"),
        ),
        (
            "store::lifecycle",
            include_str!("../../core/src/store/lifecycle.rs"),
        ),
        (
            "store::repairs",
            include_str!("../../core/src/store/repairs.rs"),
        ),
        (
            "store::inventory",
            include_str!("../../core/src/store/inventory.rs"),
        ),
        (
            "store::tickets",
            include_str!("../../core/src/store/tickets.rs"),
        ),
        (
            "store::ticket_report",
            include_str!("../../core/src/store/ticket_report.rs"),
        ),
        (
            "store::ticket_write_back",
            include_str!("../../core/src/store/ticket_write_back.rs"),
        ),
        ("privacy", include_str!("../../core/src/privacy.rs")),
        (
            "procurement::purchases",
            include_str!("../../core/src/procurement/purchases.rs"),
        ),
        (
            "procurement::catalogue",
            include_str!("../../core/src/procurement/catalogue.rs"),
        ),
        (
            "procurement::funding",
            include_str!("../../core/src/procurement/funding.rs"),
        ),
        (
            "procurement::schools",
            include_str!("../../core/src/procurement/schools.rs"),
        ),
    ];
    files
        .iter()
        .flat_map(|(module, text)| {
            text.lines().filter_map(move |line| {
                let name = line.trim_start().strip_prefix("pub async fn ")?;
                let name = name.split(['(', '<']).next()?;
                Some(format!("{module}::{name}"))
            })
        })
        .collect()
}

#[test]
fn the_table_names_every_public_store_and_privacy_function() {
    let named: BTreeSet<String> = cases()
        .iter()
        .map(|case| case.function.to_string())
        .chain(WITHOUT_SCOPE.iter().map(|name| name.to_string()))
        .collect();
    let public = public_functions();
    assert!(
        public.contains("store::devices::list_devices"),
        "{public:?}"
    );
    let missing: Vec<_> = public.difference(&named).collect();
    assert!(
        missing.is_empty(),
        "public functions without an access case: {missing:?}"
    );
    let stale: Vec<_> = named.difference(&public).collect();
    assert!(
        stale.is_empty(),
        "cases of functions that are gone: {stale:?}"
    );
}

#[tokio::test]
async fn a_scope_of_school_a_reaches_nothing_of_school_b_or_another_authority() {
    let shared = env().await;
    let mut failed = Vec::new();
    for case in cases() {
        let env = if case.writes {
            env().await
        } else {
            shared.clone()
        };
        // Every case runs, so one run names every function that lets the scope through.
        let outcome = AssertUnwindSafe((case.check)(env)).catch_unwind().await;
        if outcome.is_err() {
            failed.push(case.function);
        }
    }
    assert!(failed.is_empty(), "cases that failed: {failed:?}");
}

/// A call of an authority-wide procurement function with a scope (authority `xstadt` named):
/// a scope of school A and one of authority Y find no authority, and the rows `rows` counts
/// are unchanged by them; authority X's scope succeeds.
async fn authority_wide_case<T, F, Fut>(env: &Env, case: &str, rows: &str, call: F)
where
    T: std::fmt::Debug,
    F: Fn(Scope) -> Fut,
    Fut: Future<Output = Result<T, CoreError>>,
{
    let before = count(&env.pool, rows).await;
    assert_not_found(case, call(env.only_a()).await, "authority", "xstadt");
    assert_not_found(case, call(env.y()).await, "authority", "xstadt");
    assert_eq!(
        count(&env.pool, rows).await,
        before,
        "{case}: nothing written"
    );
    if let Err(error) = call(env.x()).await {
        panic!("{case}: the authority's own scope fails: {error}");
    }
}

async fn add_test_programme(env: &Env) {
    procurement::funding::add_programme(
        &env.pool,
        &env.x(),
        &Actor::CliUser("it.x".into()),
        Some("xstadt"),
        &procurement::funding::NewProgramme {
            code: "DP".into(),
            name: "DigitalPakt".into(),
            ..Default::default()
        },
        now(),
    )
    .await
    .unwrap();
}

/// The cases of `core::procurement` (issue 17).
fn procurement_cases() -> Vec<Case> {
    use bestand_core::model::DeviceCategory;
    use procurement::catalogue::ModelEntry;
    fn it() -> Actor {
        Actor::CliUser("it.x".into())
    }
    fn entry() -> ModelEntry {
        ModelEntry {
            model: "iPad".into(),
            model_identifier: None,
            category: DeviceCategory::Tablet,
            list_price: None,
            currency: "EUR".into(),
            life_years: Some(5),
        }
    }
    vec![
        Case {
            function: "procurement::purchases::import_purchases",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    let table = bestand_core::sheet::read(
                        b"Seriennummer;Preis\nSERB1;100,00\n",
                        None,
                        None,
                    )
                    .unwrap();
                    let mapping = std::collections::BTreeMap::new();
                    let call = |scope: Scope| {
                        let pool = env.pool.clone();
                        let table = table.clone();
                        let mapping = mapping.clone();
                        async move {
                            procurement::purchases::import_purchases(
                                &pool,
                                &scope,
                                &it(),
                                Some("xstadt"),
                                procurement::purchases::PurchaseFile {
                                    name: "p.csv",
                                    sheet: &table,
                                    mapping: &mapping,
                                },
                                Default::default(),
                                now(),
                            )
                            .await
                            .map(|report| report.matched)
                        }
                    };
                    let rows = "select count(*) from device where purchase_price is not null";
                    authority_wide_case(&env, "import_purchases", rows, call).await;
                    // Authority X's import matched B's device by serial (it is X's).
                    assert_eq!(count(&env.pool, rows).await, 1);
                })
            },
        },
        Case {
            function: "procurement::catalogue::set_model",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    let call = |scope: Scope| {
                        let pool = env.pool.clone();
                        async move {
                            procurement::catalogue::set_model(
                                &pool,
                                &scope,
                                &it(),
                                Some("xstadt"),
                                &entry(),
                                now(),
                            )
                            .await
                        }
                    };
                    authority_wide_case(
                        &env,
                        "set_model",
                        "select count(*) from device_model",
                        call,
                    )
                    .await;
                })
            },
        },
        Case {
            function: "procurement::catalogue::import_models",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    let table =
                        bestand_core::sheet::read(b"Modell;Kategorie\niPad;Tablet\n", None, None)
                            .unwrap();
                    let call = |scope: Scope| {
                        let pool = env.pool.clone();
                        let table = table.clone();
                        async move {
                            procurement::catalogue::import_models(
                                &pool,
                                &scope,
                                &it(),
                                Some("xstadt"),
                                &table,
                                &Default::default(),
                                now(),
                            )
                            .await
                            .map(|report| report.written)
                        }
                    };
                    authority_wide_case(
                        &env,
                        "import_models",
                        "select count(*) from device_model",
                        call,
                    )
                    .await;
                })
            },
        },
        Case {
            function: "procurement::catalogue::list_models",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    procurement::catalogue::set_model(
                        &env.pool,
                        &env.x(),
                        &it(),
                        Some("xstadt"),
                        &entry(),
                        now(),
                    )
                    .await
                    .unwrap();
                    let list = |scope: Scope| {
                        let pool = env.pool.clone();
                        async move {
                            listed(
                                procurement::catalogue::list_models(&pool, &scope, None),
                                |m| m.model,
                            )
                            .await
                        }
                    };
                    assert!(list(env.only_a()).await.is_empty());
                    assert!(list(env.y()).await.is_empty());
                    assert_eq!(list(env.x()).await, vec!["iPad"]);
                })
            },
        },
        Case {
            function: "procurement::catalogue::set_category_life",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    let call = |scope: Scope| {
                        let pool = env.pool.clone();
                        async move {
                            procurement::catalogue::set_category_life(
                                &pool,
                                &scope,
                                &it(),
                                Some("xstadt"),
                                DeviceCategory::Tablet,
                                6,
                            )
                            .await
                        }
                    };
                    authority_wide_case(
                        &env,
                        "set_category_life",
                        "select count(*) from category_life",
                        call,
                    )
                    .await;
                })
            },
        },
        Case {
            function: "procurement::catalogue::category_lives",
            writes: false,
            check: |env| {
                Box::pin(async move {
                    let call = |scope: Scope| {
                        let pool = env.pool.clone();
                        async move {
                            procurement::catalogue::category_lives(&pool, &scope, Some("xstadt"))
                                .await
                        }
                    };
                    authority_wide_case(&env, "category_lives", "select 0::bigint", call).await;
                })
            },
        },
        Case {
            function: "procurement::funding::add_programme",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    let call = |scope: Scope| {
                        let pool = env.pool.clone();
                        async move {
                            let programme = procurement::funding::NewProgramme {
                                code: "DP".into(),
                                name: "DigitalPakt".into(),
                                ..Default::default()
                            };
                            procurement::funding::add_programme(
                                &pool,
                                &scope,
                                &it(),
                                Some("xstadt"),
                                &programme,
                                now(),
                            )
                            .await
                        }
                    };
                    authority_wide_case(
                        &env,
                        "add_programme",
                        "select count(*) from funding_programme",
                        call,
                    )
                    .await;
                })
            },
        },
        Case {
            function: "procurement::funding::list_programmes",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    add_test_programme(&env).await;
                    let list = |scope: Scope| {
                        let pool = env.pool.clone();
                        async move {
                            listed(
                                procurement::funding::list_programmes(&pool, &scope, None),
                                |p| p.programme.code,
                            )
                            .await
                        }
                    };
                    assert!(list(env.only_a()).await.is_empty());
                    assert!(list(env.y()).await.is_empty());
                    assert_eq!(list(env.x()).await, vec!["DP"]);
                })
            },
        },
        Case {
            function: "procurement::funding::show_programme",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    add_test_programme(&env).await;
                    let call = |scope: Scope| {
                        let pool = env.pool.clone();
                        async move {
                            procurement::funding::show_programme(
                                &pool,
                                &scope,
                                Some("xstadt"),
                                "DP",
                            )
                            .await
                        }
                    };
                    authority_wide_case(&env, "show_programme", "select 0::bigint", call).await;
                })
            },
        },
        Case {
            function: "procurement::funding::add_rule",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    add_test_programme(&env).await;
                    sqlx::query("update device set order_number = 'B-1'")
                        .execute(&env.pool)
                        .await
                        .unwrap();
                    let call = |scope: Scope| {
                        let pool = env.pool.clone();
                        async move {
                            let rule = procurement::funding::RuleSpec {
                                order_number: Some("B-1".into()),
                                ..Default::default()
                            };
                            procurement::funding::add_rule(
                                &pool,
                                &scope,
                                &it(),
                                Some("xstadt"),
                                "DP",
                                &rule,
                                now(),
                            )
                            .await
                        }
                    };
                    let rows = "select count(*) from device where funding_programme is not null";
                    authority_wide_case(&env, "add_rule", rows, call).await;
                    // X's rule reached X's two devices, never Y's.
                    assert_eq!(count(&env.pool, rows).await, 2);
                })
            },
        },
        Case {
            function: "procurement::funding::assign_devices",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    add_test_programme(&env).await;
                    let case = "assign_devices";
                    let assign = |scope: Scope, tag: &'static str| {
                        let pool = env.pool.clone();
                        async move {
                            procurement::funding::assign_devices(
                                &pool,
                                &scope,
                                &it(),
                                Some("xstadt"),
                                "DP",
                                &[tag.to_string()],
                                now(),
                            )
                            .await
                        }
                    };
                    assert_not_found(
                        case,
                        assign(env.only_a(), "A-1").await,
                        "authority",
                        "xstadt",
                    );
                    assert_not_found(
                        case,
                        assign(env.x(), "C-1").await,
                        "device (by id, asset tag or serial number)",
                        "C-1",
                    );
                    let rows = "select count(*) from device where funding_programme is not null";
                    assert_eq!(count(&env.pool, rows).await, 0);
                    assign(env.x(), "B-1").await.unwrap();
                    assert_eq!(count(&env.pool, rows).await, 1);
                })
            },
        },
        Case {
            function: "procurement::funding::unassign_devices",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    add_test_programme(&env).await;
                    sqlx::query(
                        "update device set funding_programme = 'DP' where authority_id = $1",
                    )
                    .bind(env.world.ids.x)
                    .execute(&env.pool)
                    .await
                    .unwrap();
                    let case = "unassign_devices";
                    let unassign = |scope: Scope, tag: &'static str| {
                        let pool = env.pool.clone();
                        async move {
                            procurement::funding::unassign_devices(
                                &pool,
                                &scope,
                                &it(),
                                &[tag.to_string()],
                                now(),
                            )
                            .await
                        }
                    };
                    assert_not_found(case, unassign(env.only_a(), "B-1").await, DEVICE, "B-1");
                    let rows = "select count(*) from device where funding_programme is not null";
                    assert_eq!(count(&env.pool, rows).await, 2);
                    assert_eq!(unassign(env.only_a(), "A-1").await.unwrap(), vec!["A-1"]);
                    assert_eq!(count(&env.pool, rows).await, 1);
                })
            },
        },
        Case {
            function: "procurement::schools::set_target_equipment",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    let case = "set_target_equipment";
                    let set = |scope: Scope, school: &'static str| {
                        let pool = env.pool.clone();
                        async move {
                            let target =
                                procurement::schools::Target::PerPupil(rust_decimal::Decimal::ONE);
                            procurement::schools::set_target_equipment(
                                &pool,
                                &scope,
                                &it(),
                                None,
                                school,
                                DeviceCategory::Tablet,
                                target,
                            )
                            .await
                        }
                    };
                    assert_not_found(case, set(env.only_a(), "100002").await, "school", "100002");
                    assert_not_found(case, set(env.x(), "200001").await, "school", "200001");
                    assert_eq!(
                        count(&env.pool, "select count(*) from school_target_equipment").await,
                        0
                    );
                    set(env.only_a(), "100001").await.unwrap();
                    assert_eq!(
                        count(&env.pool, "select count(*) from school_target_equipment").await,
                        1
                    );
                })
            },
        },
        Case {
            function: "procurement::schools::set_pupils",
            writes: true,
            check: |env| {
                Box::pin(async move {
                    let case = "set_pupils";
                    let set = |scope: Scope, school: &'static str| {
                        let pool = env.pool.clone();
                        async move {
                            procurement::schools::set_pupils(
                                &pool,
                                &scope,
                                &it(),
                                None,
                                school,
                                "primary",
                                240,
                                now(),
                            )
                            .await
                        }
                    };
                    assert_not_found(case, set(env.only_a(), "100002").await, "school", "100002");
                    assert_not_found(case, set(env.x(), "200001").await, "school", "200001");
                    assert_eq!(
                        count(&env.pool, "select count(*) from school_pupils").await,
                        0
                    );
                    set(env.only_a(), "100001").await.unwrap();
                    assert_eq!(
                        count(&env.pool, "select count(*) from school_pupils").await,
                        1
                    );
                })
            },
        },
    ]
}
