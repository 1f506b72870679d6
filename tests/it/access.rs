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
use bestand_core::model::SchoolType;
use bestand_core::store::review::{Resolution, SERIAL_CHANGED, SERIAL_CONFLICT};
use bestand_core::store::{self, devices, overview, persons, review, runs, tickets};
use bestand_core::store::{AuthoritySpec, SchoolSpec, SourceSpec};
use bestand_core::{privacy, CoreError};
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

type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One public function, called with a scope that must not reach the rows of school B and
/// authority Y, and with one that reaches them.
struct Case {
    function: &'static str,
    /// Whether the case changes the database, and so needs a fixture of its own.
    writes: bool,
    check: fn(Env) -> CaseFuture,
}

fn cases() -> Vec<Case> {
    vec![
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
    ]
}

/// Public functions that reach no rows anyone owns, and so take no scope.
const WITHOUT_SCOPE: &[&str] = &["store::migrate"];

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
            "store::tickets",
            include_str!("../../core/src/store/tickets.rs"),
        ),
        ("privacy", include_str!("../../core/src/privacy.rs")),
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
