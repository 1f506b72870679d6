//! Checks the fake Jamf Pro server from the outside, with plain HTTP, so the connector tests can
//! trust what it serves: determinism, paging, auth and every switchable fault.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bestand_mocks::generator::DeviceKind;
use bestand_mocks::jamf_pro::wire::{self, Sections};
use bestand_mocks::jamf_pro::{PageFault, ShortPage, DEFAULT_PASSWORD, DEFAULT_USERNAME};
use bestand_mocks::musterstadt;
use bestand_mocks::{EpochChanges, Fleet, FleetSnapshot, JamfProMock, MockConfig, SchoolType};
use reqwest::StatusCode;
use serde_json::Value;

const MOBILE: &str = "/api/v2/mobile-devices/detail";
const COMPUTERS: &str = "/api/v4/computers-inventory";
const ALL_MOBILE_SECTIONS: &str =
    "section=GENERAL&section=HARDWARE&section=USER_AND_LOCATION&section=PURCHASING";
const ALL_COMPUTER_SECTIONS: &str = "section=GENERAL&section=HARDWARE&section=USER_AND_LOCATION\
     &section=PURCHASING&section=OPERATING_SYSTEM";

async fn start(fleet: Fleet) -> JamfProMock {
    JamfProMock::start(MockConfig::new(fleet))
        .await
        .expect("mock starts")
}

/// A running mock, an HTTP client and a token for it.
async fn connect(fleet: Fleet) -> (JamfProMock, reqwest::Client, String) {
    let mock = start(fleet).await;
    let client = reqwest::Client::new();
    let token = token(&client, &mock).await;
    (mock, client, token)
}

/// The body of an OAuth client-credentials token answer, as the connector gets it.
async fn oauth(client: &reqwest::Client, mock: &JamfProMock) -> Value {
    let config = mock.config();
    let response = client
        .post(format!("{}/api/oauth/token", mock.base_url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", config.client_id.as_str()),
            ("client_secret", config.client_secret.as_str()),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("token json");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().is_some_and(|s| s > 0));
    body
}

async fn token(client: &reqwest::Client, mock: &JamfProMock) -> String {
    oauth(client, mock).await["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

async fn get(client: &reqwest::Client, url: &str, token: &str) -> reqwest::Response {
    client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
}

async fn get_json(client: &reqwest::Client, url: &str, token: &str) -> Value {
    let response = get(client, url, token).await;
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    response.json().await.expect("page json")
}

/// The body exactly as served, for byte comparisons.
async fn get_bytes(client: &reqwest::Client, url: &str, token: &str) -> Vec<u8> {
    let response = get(client, url, token).await;
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    response.bytes().await.expect("body").to_vec()
}

/// The sections of a query string such as [`ALL_MOBILE_SECTIONS`], as the server parses them.
fn sections(kind: DeviceKind, query: &str) -> Sections {
    let names = query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("section="));
    Sections::parse(kind, names).expect("valid sections")
}

/// What the server renders for a page when nothing is cached: the reference for cached pages.
fn fresh_page(
    snapshot: &FleetSnapshot,
    kind: DeviceKind,
    query: &str,
    page: usize,
    size: usize,
) -> Vec<u8> {
    wire::page_json(
        kind,
        snapshot.count(kind),
        snapshot.page(kind, page, size),
        sections(kind, query),
    )
}

fn page_url(mock: &JamfProMock, path: &str, sections: &str, page: usize, size: usize) -> String {
    format!(
        "{}{path}?{sections}&page={page}&page-size={size}",
        mock.base_url()
    )
}

/// Pages through an inventory the way the docs prescribe: until `totalCount` is reached or a
/// page comes back empty. Returns the records and the reported total.
async fn pull_all(
    client: &reqwest::Client,
    mock: &JamfProMock,
    token: &str,
    path: &str,
    sections: &str,
    size: usize,
) -> (Vec<Value>, usize) {
    let mut records = Vec::new();
    let mut total = usize::MAX;
    let mut page = 0;
    while records.len() < total {
        let body = get_json(client, &page_url(mock, path, sections, page, size), token).await;
        total = body["totalCount"].as_u64().expect("totalCount") as usize;
        let results = body["results"].as_array().expect("results").clone();
        if results.is_empty() {
            break;
        }
        records.extend(results);
        page += 1;
    }
    (records, total)
}

fn id_of(record: &Value) -> u64 {
    let id = record
        .get("mobileDeviceId")
        .or_else(|| record.get("id"))
        .and_then(Value::as_str)
        .expect("string id");
    id.parse().expect("numeric id")
}

fn serial_of(record: &Value) -> String {
    record["hardware"]["serialNumber"]
        .as_str()
        .expect("serialNumber")
        .to_string()
}

fn udid_of(record: &Value) -> String {
    record
        .get("udid")
        .or_else(|| record["general"].get("udid"))
        .and_then(Value::as_str)
        .expect("udid")
        .to_string()
}

#[test]
fn musterstadt_has_32_schools_with_exact_type_counts() {
    let schools = musterstadt::schools();
    assert_eq!(schools.len(), 32);
    let count = |t: SchoolType| schools.iter().filter(|s| s.school_type == t).count();
    assert_eq!(count(SchoolType::Grundschule), 18);
    assert_eq!(count(SchoolType::Gesamtschule), 3);
    assert_eq!(count(SchoolType::Realschule), 3);
    assert_eq!(count(SchoolType::Hauptschule), 1);
    assert_eq!(count(SchoolType::Gymnasium), 3);
    assert_eq!(count(SchoolType::Foerderschule), 2);
    assert_eq!(count(SchoolType::Berufsschule), 2);
    let numbers: HashSet<_> = schools.iter().map(|s| s.number).collect();
    assert_eq!(numbers.len(), 32, "school numbers are unique");
    assert!(schools
        .iter()
        .all(|s| s.number.len() == 6 && s.number.bytes().all(|b| b.is_ascii_digit())));
    let names: HashSet<_> = schools.iter().map(|s| s.name).collect();
    assert_eq!(names.len(), 32, "school names are unique");
    let pupils: u32 = schools.iter().map(|s| s.pupils).sum();
    assert!((14_000..=16_000).contains(&pupils), "{pupils} pupils");

    let toml = musterstadt::authority_toml();
    assert!(
        toml.starts_with("[[authority]]\nslug = \"musterstadt\"\nname = \"Stadt Musterstadt\"\n")
    );
    assert_eq!(toml.matches("[[authority.school]]").count(), 32);
    assert!(toml.contains(
        "[[authority.school]]\nnumber = \"100001\"\nname = \"Grundschule Lindenweg\"\ntype = \"grundschule\"\n"
    ));
    for school_type in SchoolType::ALL {
        assert_eq!(
            toml.matches(&format!("type = \"{school_type}\"\n")).count(),
            count(school_type)
        );
    }
}

#[tokio::test]
async fn same_seed_serves_identical_pages_and_another_seed_does_not() {
    let first = start(Fleet::new(42, 3000)).await;
    let second = start(Fleet::new(42, 3000)).await;
    let other = start(Fleet::new(43, 3000)).await;
    let client = reqwest::Client::new();
    let mut bodies = Vec::new();
    for mock in [&first, &second, &other] {
        let token = token(&client, mock).await;
        let mut text = String::new();
        for (path, sections) in [
            (MOBILE, ALL_MOBILE_SECTIONS),
            (COMPUTERS, ALL_COMPUTER_SECTIONS),
        ] {
            let response = get(&client, &page_url(mock, path, sections, 1, 150), &token).await;
            assert_eq!(response.status(), StatusCode::OK);
            text.push_str(&response.text().await.expect("body"));
        }
        bodies.push(text);
    }
    assert!(bodies[0].len() > 10_000);
    assert_eq!(bodies[0], bodies[1], "same seed, same bytes");
    assert_ne!(bodies[0], bodies[2], "another seed, another fleet");
}

#[tokio::test]
async fn page_size_is_capped_at_2000_without_an_error() {
    let mock = start(Fleet::musterstadt(42)).await;
    let expected = mock.snapshot().count(DeviceKind::Mobile);
    assert!(expected > 2000, "the demo fleet has {expected} iPads");
    let client = reqwest::Client::new();
    let token = token(&client, &mock).await;

    let first = get_json(&client, &page_url(&mock, MOBILE, "", 0, 5000), &token).await;
    assert_eq!(first["totalCount"].as_u64(), Some(expected as u64));
    assert_eq!(first["results"].as_array().map(Vec::len), Some(2000));

    // Paging goes on with the clamped size: page 1 holds the rest.
    let second = get_json(&client, &page_url(&mock, MOBILE, "", 1, 5000), &token).await;
    assert_eq!(
        second["results"].as_array().map(Vec::len),
        Some(expected - 2000)
    );

    let default = get_json(&client, &format!("{}{MOBILE}", mock.base_url()), &token).await;
    assert_eq!(default["results"].as_array().map(Vec::len), Some(100));
}

#[tokio::test]
async fn paging_returns_every_device_once_in_stable_id_order() {
    let (mock, client, token) = connect(Fleet::new(9, 3000)).await;
    let (mobiles, mobile_total) =
        pull_all(&client, &mock, &token, MOBILE, ALL_MOBILE_SECTIONS, 250).await;
    let (computers, computer_total) = pull_all(
        &client,
        &mock,
        &token,
        COMPUTERS,
        ALL_COMPUTER_SECTIONS,
        333,
    )
    .await;

    assert_eq!(mobiles.len(), mobile_total);
    assert_eq!(computers.len(), computer_total);
    assert_eq!(mobile_total + computer_total, 3000);
    assert!(mobile_total > computer_total && computer_total > 300);
    for records in [&mobiles, &computers] {
        let ids: Vec<u64> = records.iter().map(id_of).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids ascend across pages"
        );
    }
    let serials: HashSet<String> = mobiles.iter().chain(&computers).map(serial_of).collect();
    assert_eq!(serials.len(), 3000, "serials are unique");
    assert!(serials.iter().all(|s| s.len() == 12
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())));

    // A second pass with another page size sees the same order.
    let (again, _) = pull_all(&client, &mock, &token, MOBILE, ALL_MOBILE_SECTIONS, 2000).await;
    assert_eq!(again, mobiles);

    // Field names and formats as docs/vendors/jamf-pro.md spells them (examples of a
    // mobile device and a computer).
    let ipad = &mobiles[0];
    assert_eq!(ipad["deviceType"], "iOS");
    assert!(ipad["general"]["displayName"]
        .as_str()
        .is_some_and(|n| n.contains("-iPad-")));
    assert!(ipad["purchasing"]["warrantyExpiresDate"]
        .as_str()
        .is_some_and(|d| d.len() == 24 && d.ends_with("T00:00:00.000Z")));
    assert!(ipad["userAndLocation"].get("realName").is_some());
    let mac = &computers[0];
    assert!(mac["userAndLocation"].get("realname").is_some());
    assert!(mac["purchasing"]["warrantyDate"]
        .as_str()
        .is_some_and(|d| d.len() == 10));
    assert_eq!(mac["operatingSystem"]["name"], "macOS");
    assert!(mac["general"]["site"]["name"].is_string());
    let with_user = mobiles
        .iter()
        .filter(|r| r["userAndLocation"]["username"] != "")
        .count();
    assert!(
        with_user > mobiles.len() / 6,
        "{with_user} iPads have a user"
    );
}

#[tokio::test]
async fn only_requested_sections_are_filled() {
    let (mock, client, token) = connect(Fleet::new(1, 500)).await;
    let bare = get_json(&client, &page_url(&mock, MOBILE, "", 0, 5), &token).await;
    let record = &bare["results"][0];
    assert!(record["general"]["udid"].is_string(), "GENERAL always");
    assert!(record["hardware"].is_null());
    assert!(record["purchasing"].is_null());

    // The comma-joined form of the macadmins SDK works too.
    let joined = get_json(
        &client,
        &page_url(&mock, COMPUTERS, "section=HARDWARE,PURCHASING", 0, 5),
        &token,
    )
    .await;
    let record = &joined["results"][0];
    assert!(record["hardware"]["serialNumber"].is_string());
    assert!(record["purchasing"]["purchasePrice"].is_string());
    assert!(record["userAndLocation"].is_null());
    assert!(record["operatingSystem"].is_null());

    let invalid = get(
        &client,
        &page_url(&mock, MOBILE, "section=NO_SUCH_SECTION", 0, 5),
        &token,
    )
    .await;
    assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn data_endpoints_require_a_valid_token() {
    let mock = start(Fleet::new(1, 200)).await;
    let client = reqwest::Client::new();
    let base = mock.base_url();
    for path in [MOBILE, COMPUTERS, "/api/v1/sites", "/api/v1/buildings"] {
        let response = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        let body: Value = response.json().await.expect("error json");
        assert_eq!(body["httpStatus"], 401);
        assert_eq!(body["errors"][0]["code"], "INVALID_TOKEN");
    }
    let bogus = get(&client, &format!("{base}{MOBILE}"), "not-a-token").await;
    assert_eq!(bogus.status(), StatusCode::UNAUTHORIZED);

    let wrong_secret = client
        .post(format!("{base}/api/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", mock.config().client_id.as_str()),
            ("client_secret", "wrong"),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(wrong_secret.status(), StatusCode::UNAUTHORIZED);

    // The legacy user token works as well and carries an ISO expiry.
    let wrong_password = client
        .post(format!("{base}/api/v1/auth/token"))
        .basic_auth(DEFAULT_USERNAME, Some("wrong"))
        .send()
        .await
        .expect("user token request");
    assert_eq!(wrong_password.status(), StatusCode::UNAUTHORIZED);
    let user_token: Value = client
        .post(format!("{base}/api/v1/auth/token"))
        .basic_auth(DEFAULT_USERNAME, Some(DEFAULT_PASSWORD))
        .send()
        .await
        .expect("user token request")
        .json()
        .await
        .expect("user token json");
    assert!(user_token["expires"]
        .as_str()
        .is_some_and(|e| e.ends_with('Z') && e.contains('T')));
    let token = user_token["token"].as_str().expect("token");
    assert_eq!(
        get(&client, &format!("{base}{MOBILE}"), token)
            .await
            .status(),
        StatusCode::OK
    );
    let counts = mock.request_counts();
    assert_eq!(counts.unauthorized, 7);
    assert_eq!(counts.mobile_devices, 3);
}

#[tokio::test]
async fn tokens_expire_after_n_requests_after_their_ttl_and_on_demand() {
    let mock = start(Fleet::new(1, 200)).await;
    let client = reqwest::Client::new();
    let url = format!("{}{MOBILE}", mock.base_url());

    mock.faults().set_token_max_requests(Some(2));
    let token_a = token(&client, &mock).await;
    assert_eq!(get(&client, &url, &token_a).await.status(), StatusCode::OK);
    assert_eq!(get(&client, &url, &token_a).await.status(), StatusCode::OK);
    assert_eq!(
        get(&client, &url, &token_a).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let token_b = token(&client, &mock).await;
    assert_eq!(get(&client, &url, &token_b).await.status(), StatusCode::OK);
    mock.faults().set_token_max_requests(None);

    mock.faults().expire_tokens();
    assert_eq!(
        get(&client, &url, &token_b).await.status(),
        StatusCode::UNAUTHORIZED
    );

    mock.faults()
        .set_token_ttl(Some(Duration::from_millis(1500)));
    let response = oauth(&client, &mock).await;
    assert_eq!(response["expires_in"], 1);
    let token_c = response["access_token"].as_str().expect("token");
    assert_eq!(get(&client, &url, token_c).await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(
        get(&client, &url, token_c).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn rate_limit_burst_answers_429_with_retry_after_then_recovers() {
    let (mock, client, token) = connect(Fleet::new(1, 300)).await;
    let url = page_url(&mock, MOBILE, "", 0, 10);
    mock.faults().rate_limit_next(2, 7);
    for _ in 0..2 {
        let response = get(&client, &url, &token).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("7")
        );
    }
    assert_eq!(get(&client, &url, &token).await.status(), StatusCode::OK);
    let counts = mock.request_counts();
    assert_eq!(counts.rate_limited, 2);
    assert_eq!(counts.mobile_devices, 3);
    assert_eq!(counts.oauth_token, 1);
}

#[tokio::test]
async fn server_errors_cycle_through_500_502_503_then_recover() {
    let (mock, client, token) = connect(Fleet::new(1, 300)).await;
    let url = page_url(&mock, COMPUTERS, "", 0, 10);
    mock.faults().server_errors_next(3, None);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(get(&client, &url, &token).await.status().as_u16());
    }
    assert_eq!(statuses, [500, 502, 503, 200]);
    assert_eq!(mock.request_counts().server_errors, 3);
}

#[tokio::test]
async fn malformed_page_is_cut_off_json_and_other_pages_are_intact() {
    let (mock, client, token) = connect(Fleet::new(1, 1000)).await;
    mock.faults().set_malformed_page(Some(PageFault::mobile(1)));
    for page in 0..3 {
        let response = get(&client, &page_url(&mock, MOBILE, "", page, 100), &token).await;
        assert_eq!(response.status(), StatusCode::OK);
        let text = response.text().await.expect("body");
        let parsed = serde_json::from_str::<Value>(&text);
        assert_eq!(parsed.is_err(), page == 1, "page {page}");
    }
    // The computers' page 1 is not affected.
    get_json(&client, &page_url(&mock, COMPUTERS, "", 1, 10), &token).await;

    // A fault limited to one hit lets the retry succeed.
    mock.faults()
        .set_malformed_page(Some(PageFault::mobile(2).times(1)));
    let url = page_url(&mock, MOBILE, "", 2, 100);
    let broken = get(&client, &url, &token).await.text().await.expect("body");
    assert!(serde_json::from_str::<Value>(&broken).is_err());
    get_json(&client, &url, &token).await;
    assert_eq!(mock.request_counts().malformed_pages, 2);
}

#[tokio::test]
async fn short_page_has_fewer_records_but_the_same_total() {
    let (mock, client, token) = connect(Fleet::new(1, 1000)).await;
    let total = mock.snapshot().count(DeviceKind::Mobile);
    mock.faults().set_short_page(Some(ShortPage {
        at: PageFault::mobile(0),
        missing: 3,
    }));
    let (records, reported) = pull_all(&client, &mock, &token, MOBILE, "", 100).await;
    assert_eq!(reported, total);
    assert_eq!(
        records.len(),
        total - 3,
        "a client that trusts totalCount notices the gap"
    );
    assert_eq!(mock.request_counts().short_pages, 1);
}

#[tokio::test]
async fn computers_v4_can_answer_404_so_clients_fall_back_to_v3() {
    let (mock, client, token) = connect(Fleet::new(1, 300)).await;
    let v4 = get_json(&client, &page_url(&mock, COMPUTERS, "", 0, 10), &token).await;
    mock.faults().set_computers_api_version(3);
    let response = get(&client, &page_url(&mock, COMPUTERS, "", 0, 10), &token).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    for path in ["/api/v3/computers-inventory", "/api/v1/computers-inventory"] {
        assert_eq!(
            get_json(&client, &page_url(&mock, path, "", 0, 10), &token).await,
            v4
        );
    }
    let counts = mock.request_counts();
    assert_eq!(
        (
            counts.computers_v4,
            counts.computers_v3,
            counts.computers_v1
        ),
        (2, 1, 1)
    );
    assert_eq!(counts.not_found, 1);
}

/// Serial -> (id, udid, OS version) of every device, both inventories.
async fn inventory(
    client: &reqwest::Client,
    mock: &JamfProMock,
    token: &str,
) -> HashMap<String, (DeviceKind, u64, String, String)> {
    let mut out = HashMap::new();
    for (kind, path, sections) in [
        (DeviceKind::Mobile, MOBILE, ALL_MOBILE_SECTIONS),
        (DeviceKind::Computer, COMPUTERS, ALL_COMPUTER_SECTIONS),
    ] {
        let (records, total) = pull_all(client, mock, token, path, sections, 500).await;
        assert_eq!(records.len(), total);
        for record in records {
            let os = record["general"]
                .get("osVersion")
                .or_else(|| record["operatingSystem"].get("version"))
                .and_then(Value::as_str)
                .expect("OS version")
                .to_string();
            out.insert(
                serial_of(&record),
                (kind, id_of(&record), udid_of(&record), os),
            );
        }
    }
    out
}

#[tokio::test]
async fn epochs_vanish_devices_and_reenroll_others_under_new_ids() {
    let changes = EpochChanges {
        vanish: 10,
        reenroll: 6,
        os_updates: 40,
    };
    let (mock, client, token) = connect(Fleet::with_changes(5, 2000, changes)).await;
    let before = inventory(&client, &mock, &token).await;
    assert_eq!(before.len(), 2000);

    mock.faults().set_epoch(1);
    let after = inventory(&client, &mock, &token).await;
    assert_eq!(after.len(), 1990, "vanished devices reduce totalCount");
    let gone = before.keys().filter(|s| !after.contains_key(*s)).count();
    assert_eq!(gone, 10);
    assert!(
        after.keys().all(|s| before.contains_key(s)),
        "no new serials"
    );

    let max_old_id = |kind: DeviceKind| {
        before
            .values()
            .filter(|v| v.0 == kind)
            .map(|v| v.1)
            .max()
            .unwrap_or(0)
    };
    let mut reenrolled = 0;
    let mut updated = 0;
    for (serial, (kind, id, udid, os)) in &after {
        let (_, old_id, old_udid, old_os) = &before[serial];
        assert_eq!(udid, old_udid, "UDID survives re-enrolment");
        if id != old_id {
            reenrolled += 1;
            assert!(*id > max_old_id(*kind), "new ids come after all old ones");
        }
        updated += usize::from(os != old_os);
    }
    assert_eq!(reenrolled, 6);
    assert!(updated >= 35, "{updated} OS updates");

    // Epochs are a pure function of the seed: going back serves the original fleet.
    mock.faults().set_epoch(0);
    assert_eq!(inventory(&client, &mock, &token).await, before);
}

#[tokio::test]
async fn sites_and_buildings_match_the_schools() {
    let (mock, client, token) = connect(Fleet::new(3, 1000)).await;
    let base = mock.base_url();
    let sites = get_json(&client, &format!("{base}/api/v1/sites"), &token).await;
    let sites = sites.as_array().expect("site list");
    assert_eq!(sites.len(), 32);
    let schools = musterstadt::schools();
    for (site, school) in sites.iter().zip(&schools) {
        assert_eq!(site["name"], school.name);
        assert_eq!(site["id"], school.site_id.to_string());
    }

    let buildings = get_json(
        &client,
        &format!("{base}/api/v1/buildings?page-size=2000"),
        &token,
    )
    .await;
    let building_ids: HashSet<&str> = buildings["results"]
        .as_array()
        .expect("buildings")
        .iter()
        .filter_map(|b| b["id"].as_str())
        .collect();
    assert_eq!(
        buildings["totalCount"].as_u64(),
        Some(musterstadt::buildings().len() as u64)
    );
    assert_eq!(building_ids.len(), musterstadt::buildings().len());

    let site_ids: HashSet<String> = schools.iter().map(|s| s.site_id.to_string()).collect();
    let (ipads, _) = pull_all(&client, &mock, &token, MOBILE, ALL_MOBILE_SECTIONS, 2000).await;
    for ipad in &ipads {
        assert!(site_ids.contains(ipad["general"]["siteId"].as_str().expect("siteId")));
        let building = ipad["userAndLocation"]["buildingId"]
            .as_str()
            .expect("buildingId");
        assert!(building_ids.contains(building), "{building}");
    }
}

#[tokio::test]
async fn slow_responses_wait_before_answering() {
    let (mock, client, token) = connect(Fleet::new(1, 100)).await;
    mock.faults().set_delay(Duration::from_millis(300));
    let started = Instant::now();
    get_json(&client, &page_url(&mock, MOBILE, "", 0, 10), &token).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn cached_pages_are_byte_identical_to_fresh_renders() {
    let (mock, client, token) = connect(Fleet::new(7, 3000)).await;
    let snapshot = mock.snapshot();
    let inventories = [
        (DeviceKind::Mobile, MOBILE, ALL_MOBILE_SECTIONS),
        (DeviceKind::Computer, COMPUTERS, ALL_COMPUTER_SECTIONS),
    ];
    for (kind, path, query) in inventories {
        let url = page_url(&mock, path, query, 1, 300);
        let expected = fresh_page(&snapshot, kind, query, 1, 300);
        assert_eq!(get_bytes(&client, &url, &token).await, expected, "rendered");
        assert_eq!(get_bytes(&client, &url, &token).await, expected, "cached");
    }
    let stats = mock.page_cache_stats();
    assert_eq!((stats.pages, stats.renders, stats.hits), (2, 2, 2));

    // A clamped page size and the comma-joined sections are the same page.
    let joined = "section=HARDWARE,USER_AND_LOCATION,PURCHASING";
    let url = page_url(&mock, MOBILE, joined, 0, 5000);
    let expected = fresh_page(&snapshot, DeviceKind::Mobile, ALL_MOBILE_SECTIONS, 0, 2000);
    assert_eq!(get_bytes(&client, &url, &token).await, expected);
    let url = page_url(&mock, MOBILE, ALL_MOBILE_SECTIONS, 0, 2000);
    assert_eq!(get_bytes(&client, &url, &token).await, expected);
    assert_eq!(mock.page_cache_stats().renders, 3);

    // A warmed cache serves a whole pass without rendering, the same bytes.
    let warm = start(Fleet::new(7, 3000)).await;
    let token = self::token(&client, &warm).await;
    let mut pages = 0;
    for (kind, path, query) in inventories {
        let warmed = warm
            .warm_page_cache(kind, 2000, sections(kind, query))
            .await
            .expect("warm");
        assert_eq!(warmed, snapshot.count(kind).div_ceil(2000));
        for page in 0..warmed {
            let url = page_url(&warm, path, query, page, 2000);
            let expected = fresh_page(&snapshot, kind, query, page, 2000);
            assert_eq!(get_bytes(&client, &url, &token).await, expected);
        }
        pages += warmed;
    }
    let stats = warm.page_cache_stats();
    assert_eq!(
        (stats.pages, stats.renders, stats.hits),
        (pages, pages as u64, pages as u64)
    );
}

#[tokio::test]
async fn an_epoch_change_is_served_at_once_not_from_the_cache() {
    let changes = EpochChanges {
        vanish: 20,
        reenroll: 10,
        os_updates: 100,
    };
    let (mock, client, token) = connect(Fleet::with_changes(11, 2000, changes)).await;
    let fleet = mock.config().fleet.clone();
    let url = page_url(&mock, MOBILE, ALL_MOBILE_SECTIONS, 0, 2000);
    let epoch_0 = fresh_page(
        &fleet.snapshot(0),
        DeviceKind::Mobile,
        ALL_MOBILE_SECTIONS,
        0,
        2000,
    );
    let epoch_1 = fresh_page(
        &fleet.snapshot(1),
        DeviceKind::Mobile,
        ALL_MOBILE_SECTIONS,
        0,
        2000,
    );
    assert_ne!(epoch_0, epoch_1);

    assert_eq!(get_bytes(&client, &url, &token).await, epoch_0);
    assert_eq!(get_bytes(&client, &url, &token).await, epoch_0, "cached");
    mock.faults().set_epoch(1);
    assert_eq!(
        get_bytes(&client, &url, &token).await,
        epoch_1,
        "no stale page"
    );
    assert_eq!(get_bytes(&client, &url, &token).await, epoch_1);
    mock.faults().set_epoch(0);
    assert_eq!(get_bytes(&client, &url, &token).await, epoch_0, "and back");
    let stats = mock.page_cache_stats();
    assert_eq!((stats.pages, stats.renders, stats.hits), (1, 3, 2));

    // A cache warmed before the change does not outlive it either.
    let mobile = sections(DeviceKind::Mobile, ALL_MOBILE_SECTIONS);
    mock.warm_page_cache(DeviceKind::Mobile, 2000, mobile)
        .await
        .expect("warm");
    mock.faults().set_epoch(1);
    assert_eq!(get_bytes(&client, &url, &token).await, epoch_1);
}

#[tokio::test]
async fn faulted_pages_are_never_cached() {
    let (mock, client, token) = connect(Fleet::new(1, 1000)).await;
    let snapshot = mock.snapshot();
    let whole = |page| fresh_page(&snapshot, DeviceKind::Mobile, "", page, 100);
    let url = |page| page_url(&mock, MOBILE, "", page, 100);

    // Malformed on a cold cache: cut off once, whole on the retry.
    mock.faults()
        .set_malformed_page(Some(PageFault::mobile(1).times(1)));
    let cut = get_bytes(&client, &url(1), &token).await;
    assert!(cut.len() < whole(1).len() && whole(1).starts_with(&cut));
    assert_eq!(get_bytes(&client, &url(1), &token).await, whole(1));

    // Malformed on a cached page: cut off while the fault lasts, whole after it is cleared.
    assert_eq!(get_bytes(&client, &url(2), &token).await, whole(2));
    mock.faults().set_malformed_page(Some(PageFault::mobile(2)));
    for _ in 0..2 {
        let cut = get_bytes(&client, &url(2), &token).await;
        assert!(serde_json::from_slice::<Value>(&cut).is_err());
    }
    mock.faults().set_malformed_page(None);
    assert_eq!(get_bytes(&client, &url(2), &token).await, whole(2));

    // Short on a cold cache and on a cached page: fewer records once, then the whole page.
    for page in [3, 2] {
        mock.faults().set_short_page(Some(ShortPage {
            at: PageFault::mobile(page).times(1),
            missing: 4,
        }));
        let short: Value =
            serde_json::from_slice(&get_bytes(&client, &url(page as usize), &token).await)
                .expect("short page is valid JSON");
        assert_eq!(short["results"].as_array().map(Vec::len), Some(96));
        assert_eq!(
            get_bytes(&client, &url(page as usize), &token).await,
            whole(page as usize)
        );
    }
    let counts = mock.request_counts();
    assert_eq!((counts.malformed_pages, counts.short_pages), (3, 2));
}
