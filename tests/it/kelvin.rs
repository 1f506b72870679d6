//! The UCS@school Kelvin connector against wiremock (protocol edges of
//! docs/vendors/ucs-kelvin-ldap.md#kelvin and docs/vendors/README.md: the token form, renewal,
//! errors, mapping) and against the Kelvin mock server serving the Musterstadt directory (whole
//! reads, consistency with the device fleet, faults).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bestand_connectors::kelvin::{Kelvin, KelvinConfig};
use bestand_connectors::spawn_directory_fetch;
use bestand_core::model::PersonRole;
use bestand_core::person::{DirectorySchool, Membership, PersonRecord};
use bestand_core::sync::{DirectoryItem, FetchFailure, PersonPage};
use bestand_mocks::directory::{ou, Role};
use bestand_mocks::kelvin::{DEFAULT_PASSWORD, DEFAULT_USERNAME};
use bestand_mocks::{Directory, Fleet, KelvinMock, KelvinMockConfig};
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const USERNAME: &str = "bestand-sync";
const PASSWORD: &str = "Kelvin+Geheim/42 ä&x=1";
/// A JWT for `bestand-sync` with `exp` in 2100.
const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
    eyJzdWIiOiJiZXN0YW5kLXN5bmMiLCJleHAiOjQxMDI0NDQ4MDB9.c2lnbmF0dXJl";
const TOKEN_PATH: &str = "/ucsschool/kelvin/token";
const SCHOOLS: &str = "/ucsschool/kelvin/v1/schools/";
const USERS: &str = "/ucsschool/kelvin/v1/users/";
const CLASSES: &str = "/ucsschool/kelvin/v1/classes/";

/// Writes the password to a per-test file (setting environment variables would race).
fn password_file(test: &str, password: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "bestand-kelvin-{}-{test}.password",
        std::process::id()
    ));
    std::fs::write(&path, format!("{password}\n")).expect("write password file");
    path
}

fn config(
    base_url: &str,
    test: &str,
    username: &str,
    password: &str,
    extra: Value,
) -> KelvinConfig {
    let mut value = json!({
        "base_url": base_url,
        "username": username,
        "password_file": password_file(test, password),
        "read_classes": false,
        "retry_base_ms": 5,
        "retry_cap_ms": 20,
    });
    let object = value.as_object_mut().expect("object");
    for (key, entry) in extra.as_object().expect("extra is an object") {
        object.insert(key.clone(), entry.clone());
    }
    serde_json::from_value(value).expect("valid test config")
}

fn connector(server: &MockServer, test: &str, extra: Value) -> Kelvin {
    Kelvin::new(
        config(&server.uri(), test, USERNAME, PASSWORD, extra),
        "kelvin-test",
    )
    .expect("connector")
}

/// What one read delivered.
struct Read {
    schools: Vec<DirectorySchool>,
    pages: Vec<PersonPage>,
    end: DirectoryItem,
}

impl Read {
    fn records(&self) -> Vec<&PersonRecord> {
        self.pages.iter().flat_map(|page| &page.records).collect()
    }

    fn person(&self, username: &str) -> &PersonRecord {
        self.records()
            .into_iter()
            .find(|record| record.username.as_deref() == Some(username))
            .unwrap_or_else(|| panic!("{username} was not read"))
    }

    fn complete(&self) -> u64 {
        match &self.end {
            DirectoryItem::Complete { reported_total } => *reported_total,
            other => panic!("expected Complete, got {other:?}"),
        }
    }

    fn failure(&self) -> &FetchFailure {
        match &self.end {
            DirectoryItem::Failed(failure) => failure,
            other => panic!("expected Failed, got {other:?}"),
        }
    }
}

async fn read(connector: Kelvin) -> Read {
    read_shared(Arc::new(connector)).await
}

async fn read_shared(connector: Arc<Kelvin>) -> Read {
    let mut receiver = spawn_directory_fetch(connector);
    let mut schools = Vec::new();
    let mut pages = Vec::new();
    let run = async {
        loop {
            match receiver.recv().await.expect("channel closed without end") {
                DirectoryItem::Schools(listed) => schools.extend(listed),
                DirectoryItem::Persons(page) => pages.push(page),
                end => return end,
            }
        }
    };
    let end = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("read finished in time");
    Read {
        schools,
        pages,
        end,
    }
}

fn membership(school: &str, role: PersonRole, class: Option<&str>) -> Membership {
    Membership {
        school: school.to_string(),
        role,
        class: class.map(str::to_string),
    }
}

/// A token response; `token` need not be a JWT.
fn token_answer(token: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({ "access_token": token, "token_type": "bearer" }))
}

async fn mount_token(server: &MockServer, token: &str) {
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(token_answer(token))
        .mount(server)
        .await;
}

async fn mount_schools(server: &MockServer, names: &[&str]) {
    let schools: Vec<Value> = names
        .iter()
        .map(|name| {
            json!({ "name": name, "display_name": format!("Schule {name}"),
            "dn": format!("ou={name},dc=x"), "udm_properties": {} })
        })
        .collect();
    Mock::given(method("GET"))
        .and(path(SCHOOLS))
        .respond_with(ResponseTemplate::new(200).set_body_json(schools))
        .mount(server)
        .await;
}

/// Serves `users` for `school` and `role`; every other listing is empty.
async fn mount_users(server: &MockServer, school: &str, role: &str, users: Value) {
    Mock::given(method("GET"))
        .and(path(USERS))
        .and(query_param("school", school))
        .and(query_param("roles", role))
        .respond_with(ResponseTemplate::new(200).set_body_json(users))
        .mount(server)
        .await;
}

async fn mount_empty_listings(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path(USERS))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .with_priority(10)
        .mount(server)
        .await;
}

/// A Kelvin v1 user with everything the API sends, birthday and guardians included.
fn user(name: &str, roles: &[&str], classes: Value) -> Value {
    json!({
        "dn": format!("uid={name},cn=users,ou=GSL,dc=schultraeger,dc=example"),
        "url": format!("https://ucs.example/ucsschool/kelvin/v1/users/{name}"),
        "ucsschool_roles": roles,
        "name": name,
        "school": "https://ucs.example/ucsschool/kelvin/v1/schools/GSL",
        "schools": ["https://ucs.example/ucsschool/kelvin/v1/schools/GSL"],
        "firstname": "Lea",
        "lastname": "Schulz",
        "birthday": "2015-04-02",
        "disabled": false,
        "email": format!("{name}@gsl.example"),
        "expiration_date": null,
        "record_uid": format!("SV-{name}"),
        "source_uid": "schulverwaltung",
        "roles": ["https://ucs.example/ucsschool/kelvin/v1/roles/student"],
        "school_classes": classes,
        "workgroups": {},
        "legal_guardians": ["uid=mutter.schulz,cn=users,dc=x"],
        "legal_wards": [],
        "udm_properties": { "title": "Dr." }
    })
}

/// Matches a form-encoded body holding exactly these fields.
struct FormIs(Vec<(&'static str, &'static str)>);

impl wiremock::Match for FormIs {
    fn matches(&self, request: &Request) -> bool {
        let form_type = request
            .headers
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
        let fields: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
            .into_owned()
            .collect();
        let expected: Vec<(String, String)> = self
            .0
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        form_type && fields == expected
    }
}

#[tokio::test]
async fn the_token_is_requested_with_a_form_and_sent_as_bearer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(FormIs(vec![("username", USERNAME), ("password", PASSWORD)]))
        .respond_with(token_answer(TOKEN))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(SCHOOLS))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{ "name": "GSL" }])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(USERS))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(query_param("school", "GSL"))
        .and(query_param("roles", "student"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([user(
            "lea.schulz",
            &["student:school:GSL"],
            json!({ "GSL": ["3a"] })
        )])))
        .expect(1)
        .mount(&server)
        .await;
    let read = read(connector(&server, "form", json!({ "roles": ["student"] }))).await;
    assert_eq!(read.complete(), 1);
    assert_eq!(
        read.schools,
        [DirectorySchool {
            key: "GSL".to_string(),
            display_name: None,
            school_number: None
        }]
    );
    let lea = read.person("lea.schulz");
    assert_eq!(lea.external_id, "schulverwaltung/SV-lea.schulz");
    assert_eq!(
        lea.memberships,
        [membership("GSL", PersonRole::Student, Some("3a"))]
    );
}

#[tokio::test]
async fn roles_classes_and_a_teacher_at_two_schools_arrive_once() {
    let server = MockServer::start().await;
    mount_token(&server, TOKEN).await;
    mount_schools(&server, &["GSL", "GYM"]).await;
    mount_empty_listings(&server).await;
    let teacher = user(
        "k.weber",
        &[
            "teacher:school:GSL",
            "teacher:school:GYM",
            "staff:school:GYM",
        ],
        json!({ "GYM": ["7b"] }),
    );
    mount_users(&server, "GSL", "teacher", json!([teacher.clone()])).await;
    mount_users(&server, "GYM", "teacher", json!([teacher.clone()])).await;
    mount_users(&server, "GYM", "staff", json!([teacher])).await;
    mount_users(
        &server,
        "GSL",
        "student",
        json!([
            user(
                "lea.schulz",
                &["student:school:GSL"],
                json!({ "GSL": ["GSL-3a"] })
            ),
            user(
                "alt.schueler",
                &["pupil:school:GSL"],
                json!({ "GSL": ["4b"] })
            ),
        ]),
    )
    .await;
    mount_users(
        &server,
        "GYM",
        "school_admin",
        json!([user("admin.gym", &["school_admin:school:GYM"], json!({}))]),
    )
    .await;
    let read = read(connector(&server, "roles", json!({ "page_size": 2 }))).await;
    assert_eq!(read.complete(), 4);
    assert_eq!(read.schools.len(), 2);
    assert_eq!(read.schools[1].display_name.as_deref(), Some("Schule GYM"));
    let labels: Vec<&str> = read.pages.iter().map(|page| page.label.as_str()).collect();
    assert_eq!(labels, ["persons 1-2 of 4", "persons 3-4 of 4"]);
    let ids: HashSet<&str> = read
        .records()
        .iter()
        .map(|record| record.external_id.as_str())
        .collect();
    assert_eq!(ids.len(), 4, "every person is sent once");

    let weber = read.person("k.weber");
    assert_eq!(
        weber.memberships,
        [
            membership("GSL", PersonRole::Teacher, None),
            membership("GYM", PersonRole::Teacher, None),
            membership("GYM", PersonRole::Staff, None),
        ]
    );
    assert!(weber.problems.is_empty(), "{:?}", weber.problems);
    assert_eq!(
        read.person("lea.schulz").memberships,
        [membership("GSL", PersonRole::Student, Some("3a"))]
    );
    assert_eq!(
        read.person("alt.schueler").memberships,
        [membership("GSL", PersonRole::Student, Some("4b"))]
    );
    assert_eq!(
        read.person("admin.gym").memberships,
        [membership("GYM", PersonRole::SchoolAdmin, None)]
    );
    let lea = read.person("lea.schulz");
    assert_eq!(lea.email.as_deref(), Some("lea.schulz@gsl.example"));
    assert_eq!(lea.given_name.as_deref(), Some("Lea"));
    assert_eq!(lea.family_name.as_deref(), Some("Schulz"));
    assert_eq!(lea.ids.source_uid.as_deref(), Some("schulverwaltung"));

    // Nothing Kelvin sends beyond the record's fields survives the mapping.
    let json = serde_json::to_string(&read.records()).unwrap();
    for absent in ["2015-04-02", "birthday", "mutter.schulz", "guardian", "Dr."] {
        assert!(!json.contains(absent), "{absent} in {json}");
    }
}

#[tokio::test]
async fn schools_and_roles_can_be_narrowed_and_an_unknown_school_fails() {
    let server = MockServer::start().await;
    mount_token(&server, TOKEN).await;
    mount_schools(&server, &["GSL", "GYM"]).await;
    Mock::given(method("GET"))
        .and(path(USERS))
        .and(query_param("school", "GYM"))
        .and(query_param("roles", "teacher"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([user(
            "k.weber",
            &[
                "teacher:school:GSL",
                "teacher:school:GYM",
                "staff:school:GYM"
            ],
            json!({})
        )])))
        .expect(1)
        .mount(&server)
        .await;
    let narrowed = json!({ "schools": ["gym"], "roles": ["teacher"] });
    let read = read(connector(&server, "narrow", narrowed)).await;
    assert_eq!(read.complete(), 1);
    assert_eq!(read.schools.len(), 1);
    // GSL is not read and staff is not asked for: neither becomes a membership.
    assert_eq!(
        read.person("k.weber").memberships,
        [membership("GYM", PersonRole::Teacher, None)]
    );

    let unknown = json!({ "schools": ["GYM", "NEU"] });
    let failed = self::read(connector(&server, "unknown", unknown)).await;
    let failure = failed.failure();
    assert_eq!(
        failure.page.as_deref(),
        Some("GET /ucsschool/kelvin/v1/schools/")
    );
    assert!(
        failure.cause.contains("`NEU`") && failure.cause.contains("GSL, GYM"),
        "{failure}"
    );
    assert!(failed.pages.is_empty());
}

#[tokio::test]
async fn deactivated_accounts_are_left_out_unless_configured() {
    let server = MockServer::start().await;
    mount_token(&server, TOKEN).await;
    mount_schools(&server, &["GSL"]).await;
    let mut gone = user("weg.gezogen", &["student:school:GSL"], json!({}));
    gone["disabled"] = json!(true);
    mount_users(
        &server,
        "GSL",
        "student",
        json!([gone, user("lea.schulz", &["student:school:GSL"], json!({}))]),
    )
    .await;
    let roles = json!({ "roles": ["student"] });
    let read = read(connector(&server, "disabled", roles)).await;
    assert_eq!(read.complete(), 1);
    let all = json!({ "roles": ["student"], "include_disabled": true });
    let with_disabled = self::read(connector(&server, "disabled-all", all)).await;
    assert_eq!(with_disabled.complete(), 2);
}

#[tokio::test]
async fn a_401_renews_the_token_once_and_replays() {
    let server = MockServer::start().await;
    // The first token is no JWT: its lifetime is assumed, and Kelvin rejects it anyway.
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(token_answer("opaque-first-token"))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(token_answer(TOKEN))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(SCHOOLS))
        .and(header("authorization", "Bearer opaque-first-token"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({ "detail": "Could not validate credentials" })),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(SCHOOLS))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{ "name": "GSL" }])))
        .expect(1)
        .mount(&server)
        .await;
    mount_users(
        &server,
        "GSL",
        "student",
        json!([user("lea.schulz", &["student:school:GSL"], json!({}))]),
    )
    .await;
    let read = read(connector(&server, "renew", json!({ "roles": ["student"] }))).await;
    assert_eq!(read.complete(), 1);
}

#[tokio::test]
async fn a_token_about_to_expire_is_renewed_before_the_next_request() {
    let server = MockServer::start().await;
    // `exp` in 1970: every request needs a new token first.
    let expired = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
        eyJzdWIiOiJiZXN0YW5kLXN5bmMiLCJleHAiOjEwMDB9.c2ln";
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(token_answer(expired))
        .expect(3)
        .mount(&server)
        .await;
    mount_schools(&server, &["GSL"]).await;
    mount_empty_listings(&server).await;
    let roles = json!({ "roles": ["student", "teacher"] });
    let read = read(connector(&server, "expiring", roles)).await;
    assert_eq!(read.complete(), 0);
}

#[tokio::test]
async fn a_second_401_is_a_clear_credential_error_without_secrets() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(token_answer(TOKEN))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(SCHOOLS))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({ "detail": format!("Token {TOKEN} is not valid") })),
        )
        .expect(2)
        .mount(&server)
        .await;
    let kelvin = connector(&server, "twice", json!({}));
    let debug = format!("{kelvin:?}");
    assert!(
        !debug.contains(PASSWORD) && !debug.contains("Geheim"),
        "{debug}"
    );
    let read = read(kelvin).await;
    let failure = read.failure();
    assert_eq!(
        failure.page.as_deref(),
        Some("GET /ucsschool/kelvin/v1/schools/")
    );
    let text = failure.to_string();
    assert!(text.contains("HTTP 401"), "{text}");
    assert!(
        text.contains("again with a token issued just before"),
        "{text}"
    );
    assert!(text.contains("ucsschool-kelvin-rest-api-readers"), "{text}");
    assert!(
        !text.contains(TOKEN) && !text.contains("c2lnbmF0dXJl"),
        "{text}"
    );
    assert!(!text.contains("Geheim"), "{text}");
}

#[tokio::test]
async fn a_rejected_password_names_the_account_but_not_the_password() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({ "detail": format!("Incorrect username or password {PASSWORD}") }),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let read = read(connector(&server, "password", json!({}))).await;
    let text = read.failure().to_string();
    assert!(
        text.contains("rejected the username `bestand-sync`"),
        "{text}"
    );
    assert!(text.contains("ucsschool-kelvin-rest-api-readers"), "{text}");
    assert!(!text.contains("Geheim"), "{text}");
}

#[tokio::test]
async fn server_errors_and_throttling_are_retried() {
    let server = MockServer::start().await;
    mount_token(&server, TOKEN).await;
    mount_schools(&server, &["GSL"]).await;
    Mock::given(method("GET"))
        .and(path(USERS))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>Bad Gateway</html>"))
        .up_to_n_times(2)
        .with_priority(1)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(USERS))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .up_to_n_times(1)
        .with_priority(2)
        .expect(1)
        .mount(&server)
        .await;
    mount_users(
        &server,
        "GSL",
        "student",
        json!([user("lea.schulz", &["student:school:GSL"], json!({}))]),
    )
    .await;
    let read = read(connector(&server, "retry", json!({ "roles": ["student"] }))).await;
    assert_eq!(read.complete(), 1);
}

#[tokio::test]
async fn malformed_json_names_the_request() {
    let server = MockServer::start().await;
    mount_token(&server, TOKEN).await;
    mount_schools(&server, &["GSL"]).await;
    Mock::given(method("GET"))
        .and(path(USERS))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"[{"name": "lea.schulz", "#))
        .mount(&server)
        .await;
    let read = read(connector(
        &server,
        "malformed",
        json!({ "roles": ["teacher"] }),
    ))
    .await;
    let failure = read.failure();
    assert_eq!(
        failure.page.as_deref(),
        Some("GET /ucsschool/kelvin/v1/users/?school=GSL&roles=teacher")
    );
    assert!(failure.cause.contains("not the expected JSON"), "{failure}");
    assert!(read.pages.is_empty());

    let schools = MockServer::start().await;
    mount_token(&schools, TOKEN).await;
    Mock::given(method("GET"))
        .and(path(SCHOOLS))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "schools": [] })))
        .mount(&schools)
        .await;
    let read = self::read(connector(&schools, "malformed-schools", json!({}))).await;
    assert_eq!(
        read.failure().page.as_deref(),
        Some("GET /ucsschool/kelvin/v1/schools/")
    );
}

#[tokio::test]
async fn fastapi_details_are_shown_and_403_names_the_groups() {
    let server = MockServer::start().await;
    mount_token(&server, TOKEN).await;
    mount_schools(&server, &["GSL"]).await;
    Mock::given(method("GET"))
        .and(path(USERS))
        .and(query_param("roles", "student"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({ "detail": "No school with name 'GSL' found." })),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(USERS))
        .and(query_param("roles", "teacher"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({ "detail": [
            { "loc": ["query", "roles", 0], "msg": "value is not a valid enumeration member",
              "type": "type_error.enum" }
        ] })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(USERS))
        .and(query_param("roles", "staff"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({ "detail": "Forbidden" })))
        .mount(&server)
        .await;
    let read_role = |role: &'static str| {
        let kelvin = connector(&server, role, json!({ "roles": [role] }));
        async move { read(kelvin).await.failure().cause.clone() }
    };
    let missing = read_role("student").await;
    assert!(
        missing.ends_with("answered HTTP 404 Not Found: No school with name 'GSL' found."),
        "{missing}"
    );
    assert!(!missing.contains("\"detail\""), "{missing}");
    let invalid = read_role("teacher").await;
    assert!(
        invalid.ends_with("query.roles.0: value is not a valid enumeration member"),
        "{invalid}"
    );
    let forbidden = read_role("staff").await;
    assert!(
        forbidden.contains("HTTP 403") && forbidden.contains("ucsschool-kelvin-rest-api-readers"),
        "{forbidden}"
    );
}

#[tokio::test]
async fn classes_are_listed_per_school_when_asked() {
    let server = MockServer::start().await;
    mount_token(&server, TOKEN).await;
    mount_schools(&server, &["GSL"]).await;
    mount_users(
        &server,
        "GSL",
        "student",
        json!([user(
            "lea.schulz",
            &["student:school:GSL"],
            json!({ "GSL": ["3a"] })
        )]),
    )
    .await;
    Mock::given(method("GET"))
        .and(path(CLASSES))
        .and(query_param("school", "GSL"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            { "name": "3a", "users": ["https://ucs.example/ucsschool/kelvin/v1/users/lea.schulz"] },
            { "name": "3b", "users": [] }
        ])))
        .expect(1)
        .mount(&server)
        .await;
    let extra = json!({ "roles": ["student"], "read_classes": true });
    let read = read(connector(&server, "classes", extra)).await;
    assert_eq!(read.complete(), 1);

    // Nothing depends on the class list, so its failure does not fail the read.
    let broken = MockServer::start().await;
    mount_token(&broken, TOKEN).await;
    mount_schools(&broken, &["GSL"]).await;
    mount_empty_listings(&broken).await;
    Mock::given(method("GET"))
        .and(path(CLASSES))
        .respond_with(ResponseTemplate::new(403))
        .expect(1)
        .mount(&broken)
        .await;
    let extra = json!({ "roles": ["student"], "read_classes": true });
    let read = self::read(connector(&broken, "classes-broken", extra)).await;
    assert_eq!(read.complete(), 0);
}

// The Kelvin mock server, read through the connector.

fn mock_connector(mock: &KelvinMock, test: &str, extra: Value) -> Kelvin {
    let mut extra = extra;
    if extra.get("read_classes").is_none() {
        extra["read_classes"] = json!(true);
    }
    Kelvin::new(
        config(
            mock.base_url(),
            test,
            DEFAULT_USERNAME,
            DEFAULT_PASSWORD,
            extra,
        ),
        "kelvin-mock",
    )
    .expect("connector")
}

#[tokio::test]
async fn the_mock_serves_musterstadt_consistent_with_the_fleet() {
    let seed = 42;
    let directory = Directory::musterstadt(seed);
    let mock = KelvinMock::start(KelvinMockConfig::new(directory.clone()))
        .await
        .unwrap();
    let read = read(mock_connector(&mock, "musterstadt", json!({}))).await;
    assert_eq!(read.complete(), directory.len() as u64);
    assert_eq!(read.records().len(), directory.len());
    assert_eq!(read.schools.len(), 32);
    let records = read.records();
    let by_username: std::collections::HashMap<&str, &PersonRecord> = records
        .iter()
        .map(|record| (record.username.as_deref().unwrap(), *record))
        .collect();
    assert_eq!(by_username.len(), directory.len());

    let fleet = Fleet::musterstadt(seed);
    let mut checked = 0;
    let mut missing = 0;
    for device in (0..fleet.len()).filter_map(|index| fleet.device(index)) {
        let Some(user) = device.user else { continue };
        let Some(record) = by_username.get(user.username.as_str()) else {
            assert!(directory.is_left_out(&user.username), "{}", user.username);
            missing += 1;
            continue;
        };
        let school = ou(&device.school);
        if user.position == "Lehrkraft" {
            assert!(
                record
                    .memberships
                    .contains(&membership(&school, PersonRole::Teacher, None)),
                "{} at {school}: {:?}",
                user.username,
                record.memberships
            );
            checked += 1;
        }
        let person = directory.person(&user.username).unwrap();
        assert_eq!(record.email, person.email);
        assert_eq!(
            record.external_id,
            format!("schulverwaltung/{}", person.record_uid)
        );
    }
    assert!(checked > 300, "{checked}");
    assert!(missing > 0);
    // Pupils carry their classes, without school prefix.
    let pupil = directory
        .persons()
        .iter()
        .find(|p| p.roles() == [Role::Student])
        .unwrap();
    let record = by_username[pupil.username.as_str()];
    let class = pupil.memberships[0].class.clone();
    assert_eq!(
        record.memberships,
        [Membership {
            school: ou(&pupil.memberships[0].school),
            role: PersonRole::Student,
            class,
        }]
    );
    assert!(records.iter().all(|record| record.problems.is_empty()));
    let counts = mock.request_counts();
    assert_eq!(counts.tokens, 1);
    assert_eq!(counts.users, 32 * 4);
    assert_eq!(counts.classes, 32);
}

#[tokio::test]
async fn the_mock_faults_are_survived_or_reported() {
    let directory = Directory::new(7, 1500);
    let mock = KelvinMock::start(KelvinMockConfig::new(directory.clone()))
        .await
        .unwrap();
    let kelvin = Arc::new(mock_connector(
        &mock,
        "faults",
        json!({ "read_classes": false }),
    ));

    mock.faults().rate_limit_next(1, 1);
    mock.faults().server_errors_next(2, Some(502));
    let read = read_shared(Arc::clone(&kelvin)).await;
    assert_eq!(read.complete(), 1500);
    let counts = mock.request_counts();
    assert_eq!((counts.rate_limited, counts.server_errors), (1, 2));

    // Tokens revoked between two reads: the stale one gets a 401, a new one is fetched.
    mock.faults().expire_tokens();
    let before = mock.request_counts();
    let read = read_shared(Arc::clone(&kelvin)).await;
    assert_eq!(read.complete(), 1500);
    let after = mock.request_counts();
    assert_eq!(after.unauthorized - before.unauthorized, 1);
    assert_eq!(after.tokens - before.tokens, 1);

    // Tokens living 2 s: within the 30 s leeway, so a new connector fetches one per request.
    mock.faults().set_token_ttl(2);
    let before = mock.request_counts();
    let read = self::read(mock_connector(
        &mock,
        "ttl",
        json!({ "read_classes": false }),
    ))
    .await;
    assert_eq!(read.complete(), 1500);
    let after = mock.request_counts();
    let requests = (after.schools + after.users) - (before.schools + before.users);
    assert_eq!(after.tokens - before.tokens, requests);
    assert_eq!(after.unauthorized, before.unauthorized);
    mock.faults().clear();

    mock.faults().malformed_next(1);
    let read = read_shared(Arc::clone(&kelvin)).await;
    let failure = read.failure();
    assert!(
        failure
            .page
            .as_deref()
            .is_some_and(|page| page.starts_with("GET /ucsschool/kelvin/v1/users/?school=")),
        "{failure}"
    );
    assert!(failure.cause.contains("not the expected JSON"), "{failure}");

    // The next epoch: some pupils left, others arrived.
    mock.faults().set_epoch(1);
    let read = read_shared(Arc::clone(&kelvin)).await;
    let next = directory.at_epoch(1);
    assert_eq!(read.complete(), next.len() as u64);
    let now: HashSet<&str> = read
        .records()
        .iter()
        .filter_map(|record| record.username.as_deref())
        .collect();
    let left = directory
        .persons()
        .iter()
        .filter(|person| !now.contains(person.username.as_str()))
        .count();
    assert_eq!(left, directory.changes().leave);

    let wrong = Kelvin::new(
        config(
            mock.base_url(),
            "wrong",
            DEFAULT_USERNAME,
            "falsch-geraten",
            json!({}),
        ),
        "kelvin-mock",
    )
    .unwrap();
    let read = self::read(wrong).await;
    let text = read.failure().to_string();
    assert!(text.contains("Incorrect username or password"), "{text}");
    assert!(!text.contains("falsch-geraten"), "{text}");
}
