//! The Relution connector against wiremock (protocol edge cases of docs/vendors/relution.md and
//! docs/vendors/README.md) and against the Relution mock server (whole fetches, both path styles,
//! faults).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::{collect, complete, failure_at, records};
use bestand_connectors::jamf_pro::{JamfPro, JamfProConfig};
use bestand_connectors::relution::{Relution, RelutionConfig};
use bestand_core::model::DeviceCategory;
use bestand_core::record::{DeviceRecord, UserHint};
use bestand_core::sync::SourcePage;
use bestand_mocks::relution::{
    PathStyles, RelutionMock, RelutionMockConfig, DEFAULT_ORGANIZATION, DEFAULT_TOKEN,
};
use bestand_mocks::{Fleet, JamfProMock, MockConfig, PageFault, ShortPage};
use serde_json::{json, Value};
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

const TOKEN: &str = "Relution-Token+Geheim/42";
const ORG: &str = "C7A1F3E2-0B4D-4E6F-8A9B-1C2D3E4F5A6B";
const MANAGEMENT: &str = "/api/management/v2/devices/baseInfo/query";
const V2: &str = "/api/v2/devices/baseInfo/query";

/// Writes the token to a per-test file (setting environment variables would race).
fn token_file(test: &str, token: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "bestand-relution-{}-{test}.token",
        std::process::id()
    ));
    std::fs::write(&path, format!("{token}\n")).expect("write token file");
    path
}

fn config(base_url: &str, test: &str, token: &str, extra: Value) -> RelutionConfig {
    let mut value = json!({
        "base_url": base_url,
        "access_token_file": token_file(test, token),
        "organization": ORG,
        "retry_base_ms": 5,
        "retry_cap_ms": 20,
    });
    let object = value.as_object_mut().expect("object");
    for (key, entry) in extra.as_object().expect("extra is an object") {
        object.insert(key.clone(), entry.clone());
    }
    serde_json::from_value(value).expect("valid test config")
}

fn connector(server: &MockServer, test: &str, extra: Value) -> Relution {
    Relution::new(config(&server.uri(), test, TOKEN, extra), "relution-test").expect("connector")
}

fn device(n: u64) -> Value {
    json!({ "uuid": format!("U{n:04}"), "platform": "IOS", "serialNumber": format!("S{n:04}") })
}

fn page(total: u64, ids: impl IntoIterator<Item = u64>) -> ResponseTemplate {
    let results: Vec<Value> = ids.into_iter().map(device).collect();
    ResponseTemplate::new(200).set_body_json(json!({ "nonpagedCount": total, "results": results }))
}

fn query_at(route: &str, offset: u64) -> MockBuilder {
    Mock::given(method("POST"))
        .and(path(route))
        .and(body_partial_json(json!({ "offset": offset })))
}

/// Serves `total` devices on the management path: each `(offset, ids)` is one page.
async fn serve_pages(server: &MockServer, total: u64, pages: &[(u64, &[u64])]) {
    for (offset, ids) in pages {
        query_at(MANAGEMENT, *offset)
            .respond_with(page(total, ids.iter().copied()))
            .mount(server)
            .await;
    }
}

#[tokio::test]
async fn sends_token_header_organization_and_paging_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MANAGEMENT))
        .and(header("X-User-Access-Token", TOKEN))
        .and(query_param("tenantOrganizationUuid", ORG))
        .and(body_partial_json(json!({
            "limit": 10, "offset": 0, "getItems": true, "getNonpagedCount": true,
            "sortOrder": { "sortFields": [ { "name": "uuid", "ascending": true } ] }
        })))
        .respond_with(page(2, [1, 2]))
        .expect(1)
        .mount(&server)
        .await;
    let (pages, end) = collect(connector(&server, "headers", json!({ "page_size": 10 }))).await;
    assert_eq!(complete(end), 2);
    assert_eq!(records(&pages).len(), 2);
}

#[tokio::test]
async fn pages_by_offset_to_the_announced_total() {
    let server = MockServer::start().await;
    for (offset, ids) in [(0, vec![1, 2]), (2, vec![3, 4]), (4, vec![5])] {
        query_at(MANAGEMENT, offset)
            .and(body_partial_json(json!({ "limit": 2 })))
            .respond_with(page(5, ids))
            .expect(1)
            .mount(&server)
            .await;
    }
    let (pages, end) = collect(connector(&server, "offsets", json!({ "page_size": 2 }))).await;
    assert_eq!(complete(end), 5);
    let labels: Vec<&str> = pages.iter().map(|page| page.label.as_str()).collect();
    assert_eq!(
        labels,
        ["devices page 0", "devices page 1", "devices page 2"]
    );
    assert!(pages.iter().all(|page| page.announced_total == Some(5)));
    let ids: Vec<&str> = records(&pages)
        .iter()
        .map(|r| r.external_id.as_str())
        .collect();
    assert_eq!(ids, ["U0001", "U0002", "U0003", "U0004", "U0005"]);
}

#[tokio::test]
async fn a_short_page_before_the_total_fails_naming_it() {
    let server = MockServer::start().await;
    serve_pages(&server, 5, &[(0, &[1, 2]), (2, &[3])]).await;
    let (_, end) = collect(connector(&server, "short", json!({ "page_size": 2 }))).await;
    let cause = failure_at(end, "devices page 1");
    assert_eq!(cause, "page 1 returned 1 records, 3 of 5 announced");

    let empty = MockServer::start().await;
    serve_pages(&empty, 5, &[(0, &[1, 2]), (2, &[])]).await;
    let (_, end) = collect(connector(&empty, "empty", json!({ "page_size": 2 }))).await;
    assert!(failure_at(end, "devices page 1").contains("returned 0 records, 2 of 5"));
}

#[tokio::test]
async fn path_probing_falls_back_on_404_and_stays_there() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MANAGEMENT))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    query_at(V2, 0)
        .respond_with(page(3, [1, 2]))
        .expect(1)
        .mount(&server)
        .await;
    query_at(V2, 2)
        .respond_with(page(3, [3]))
        .expect(1)
        .mount(&server)
        .await;
    let (pages, end) = collect(connector(&server, "probe", json!({ "page_size": 2 }))).await;
    assert_eq!(complete(end), 3);
    assert_eq!(records(&pages).len(), 3);

    // An explicit path style does not probe; both 404s name the organisation as a suspect.
    let nothing = MockServer::start().await;
    let (_, end) = collect(connector(&nothing, "nopath", json!({ "api_path": "v2" }))).await;
    let cause = failure_at(end, "devices page 0");
    assert!(
        cause.contains("404") && cause.contains("`organization`"),
        "{cause}"
    );
    let requests = nothing.received_requests().await.unwrap_or_default();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].url.path(), V2);
}

#[tokio::test]
async fn server_errors_are_retried_and_then_name_their_page() {
    let server = MockServer::start().await;
    serve_pages(&server, 5, &[(0, &[1, 2]), (2, &[3, 4])]).await;
    query_at(MANAGEMENT, 4)
        .respond_with(ResponseTemplate::new(502))
        .expect(3)
        .mount(&server)
        .await;
    let extra = json!({ "page_size": 2, "max_concurrency": 2, "retry_max_attempts": 3 });
    let (pages, end) = collect(connector(&server, "5xx", extra)).await;
    assert_eq!(pages.len(), 2);
    let cause = failure_at(end, "devices page 2");
    assert!(
        cause.contains("502") && cause.contains("after 3 attempts"),
        "{cause}"
    );
}

#[tokio::test]
async fn rate_limits_honour_retry_after() {
    let server = MockServer::start().await;
    query_at(MANAGEMENT, 0)
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    serve_pages(&server, 1, &[(0, &[1])]).await;
    let started = Instant::now();
    let (_, end) = collect(connector(&server, "429", json!({}))).await;
    assert_eq!(complete(end), 1);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn forbidden_is_not_retried_and_unauthorized_is_a_credential_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(403))
        .expect(1)
        .mount(&server)
        .await;
    let (_, end) = collect(connector(&server, "403", json!({}))).await;
    assert!(failure_at(end, "devices page 0").contains("permission"));

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_string("access token invalid"))
        .expect(1)
        .mount(&server)
        .await;
    let (_, end) = collect(connector(&server, "401", json!({}))).await;
    let cause = failure_at(end, "devices page 0");
    assert!(cause.contains("rejected the access token"), "{cause}");
    assert!(cause.contains("Access Tokens"), "{cause}");
}

#[tokio::test]
async fn malformed_json_names_the_page() {
    let server = MockServer::start().await;
    serve_pages(&server, 3, &[(0, &[1, 2])]).await;
    query_at(MANAGEMENT, 2)
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"nonpagedCount": 3, "res"#))
        .mount(&server)
        .await;
    let (pages, end) = collect(connector(&server, "malformed", json!({ "page_size": 2 }))).await;
    assert_eq!(pages.len(), 1);
    let cause = failure_at(end, "devices page 1");
    assert!(
        cause.starts_with("page 1 is malformed: invalid JSON"),
        "{cause}"
    );
}

#[tokio::test]
async fn maps_the_documented_example_device_field_by_field() {
    // docs/vendors/relution.md#devices, "Illustrative page", plus the unconfirmed fields the
    // connector reads.
    let example = r#"{
      "uuid": "5F0C2B7E-9A41-4C3E-8D21-7B6A1E0F9C33",
      "deviceId": "a1b2c3d4e5",
      "name": "OBS-iPad-7b-14",
      "platform": "IOS",
      "status": "COMPLIANT",
      "policyStatus": "APPLIED",
      "ownership": "CORPORATE",
      "serialNumber": "DMPXK1ABCDEF",
      "userUuid": "0E9D8C7B-6A5F-4E3D-2C1B-0A9F8E7D6C5B",
      "userEmail": "lea.schulz@obs.example.de",
      "organizationUuid": "C7A1F3E2-0B4D-4E6F-8A9B-1C2D3E4F5A6B",
      "lastConnectionDate": 1741072512000
    }"#;
    let windows = r#"{"uuid": "W1", "name": "OBS-NB-01", "platform": "WINDOWS",
      "serialNumber": "PF3ABCDE", "model": "ThinkPad L13 Gen 4", "manufacturer": "LENOVO",
      "osVersion": "10.0.22631", "imei": null, "wifiMacAddress": "AA:BB:CC:00:11:22",
      "userName": "lea.schulz", "userFullName": "Lea Schulz", "lastConnectionDate": "kaputt"}"#;
    let body = format!(r#"{{"nonpagedCount": 2, "results": [{example}, {windows}]}}"#);
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string(body))
        .mount(&server)
        .await;
    let extra = json!({ "school": "123456" });
    let (pages, end) = collect(connector(&server, "mapping", extra)).await;
    assert_eq!(complete(end), 2);
    let records = records(&pages);
    let ipad = records[0];
    let expected = DeviceRecord {
        external_id: "5F0C2B7E-9A41-4C3E-8D21-7B6A1E0F9C33".to_string(),
        category: DeviceCategory::Tablet,
        name: Some("OBS-iPad-7b-14".to_string()),
        serial_number: Some("DMPXK1ABCDEF".to_string()),
        manufacturer: Some("Apple".to_string()),
        os_name: Some("iPadOS".to_string()),
        user: UserHint {
            email: Some("lea.schulz@obs.example.de".to_string()),
            ..UserHint::default()
        },
        payload: example.to_string(),
        ..DeviceRecord::default()
    };
    let mut without_school = ipad.clone();
    assert_eq!(
        without_school.location.school.take().as_deref(),
        Some("123456")
    );
    assert_eq!(without_school, expected);

    let laptop = records[1];
    assert_eq!(laptop.category, DeviceCategory::Laptop);
    assert_eq!(laptop.serial_number.as_deref(), Some("PF3ABCDE"));
    assert_eq!(laptop.model.as_deref(), Some("ThinkPad L13 Gen 4"));
    assert_eq!(laptop.manufacturer.as_deref(), Some("LENOVO"));
    assert_eq!(laptop.os_name.as_deref(), Some("Windows"));
    assert_eq!(laptop.os_version.as_deref(), Some("10.0.22631"));
    assert_eq!(laptop.imei, None);
    assert_eq!(laptop.wifi_mac.as_deref(), Some("AA:BB:CC:00:11:22"));
    assert_eq!(laptop.user.username.as_deref(), Some("lea.schulz"));
    assert_eq!(laptop.user.real_name.as_deref(), Some("Lea Schulz"));
    assert_eq!(laptop.problems.len(), 1, "{:?}", laptop.problems);
    assert!(laptop.problems[0].contains("lastConnectionDate"));
}

#[tokio::test]
async fn the_token_stays_out_of_debug_and_errors() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string(format!("bad token {TOKEN}")))
        .mount(&server)
        .await;
    let relution = connector(&server, "secret", json!({ "retry_max_attempts": 2 }));
    assert!(!format!("{relution:?}").contains(TOKEN));
    let (_, end) = collect(relution).await;
    let cause = failure_at(end, "devices page 0");
    assert!(
        cause.contains("500") && cause.contains("[redacted]"),
        "{cause}"
    );
    assert!(!cause.contains(TOKEN), "{cause}");

    let missing =
        json!({ "base_url": "https://mdm.example", "access_token_env": "BESTAND_NO_SUCH_VAR" });
    let config: RelutionConfig = serde_json::from_value(missing).expect("config");
    let error = Relution::new(config, "x").expect_err("unset variable");
    assert!(error.to_string().contains("access_token_env"), "{error}");
}

// ---- against the Relution mock ----

fn mock_connector(mock: &RelutionMock, test: &str, extra: Value) -> Relution {
    let mut config = config(mock.base_url(), test, DEFAULT_TOKEN, extra);
    config.organization = Some(DEFAULT_ORGANIZATION.to_string());
    Relution::new(config, "relution-mock").expect("connector")
}

async fn start_mock(fleet: Fleet) -> RelutionMock {
    RelutionMock::start(RelutionMockConfig::new(fleet))
        .await
        .expect("mock starts")
}

#[tokio::test]
async fn mock_full_fetch_delivers_the_whole_fleet_under_both_path_styles() {
    let mock = start_mock(Fleet::new(11, 1200)).await;
    for (paths, test) in [
        (PathStyles::ManagementV2Only, "mock-mgmt"),
        (PathStyles::V2Only, "mock-v2"),
    ] {
        mock.set_paths(paths);
        let before = mock.request_counts();
        // The v2 run also reads two pages at a time.
        let extra = json!({ "page_size": 500, "max_concurrency": 1 + usize::from(paths == PathStyles::V2Only) });
        let (pages, end) = collect(mock_connector(&mock, test, extra)).await;
        assert_eq!(complete(end), 1200);
        let records = records(&pages);
        let ids: HashSet<&str> = records.iter().map(|r| r.external_id.as_str()).collect();
        assert_eq!(ids.len(), 1200);
        assert_eq!(pages.len(), 3);
        let categories: HashSet<DeviceCategory> = records.iter().map(|r| r.category).collect();
        assert!(categories.contains(&DeviceCategory::Tablet));
        assert!(categories.contains(&DeviceCategory::Laptop));
        let after = mock.request_counts();
        match paths {
            PathStyles::V2Only => {
                assert_eq!(after.management_v2 - before.management_v2, 1, "probed once");
                assert_eq!(after.v2 - before.v2, 3);
            }
            _ => assert_eq!(after.management_v2 - before.management_v2, 3),
        }
    }
    mock.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn mock_faults_retry_vanish_and_fail_where_they_should() {
    let mock = start_mock(Fleet::new(12, 400)).await;
    mock.faults().rate_limit_next(1, 0);
    mock.faults().server_errors_next(2, None);
    let (_, end) = collect(mock_connector(
        &mock,
        "mock-retry",
        json!({ "page_size": 100 }),
    ))
    .await;
    assert_eq!(complete(end), 400);
    assert_eq!(mock.request_counts().rate_limited, 1);
    assert_eq!(mock.request_counts().server_errors, 2);

    mock.faults().set_epoch(1);
    let vanished = mock.device_count();
    assert!(vanished < 400);
    let (pages, end) = collect(mock_connector(&mock, "mock-epoch", json!({}))).await;
    assert_eq!(complete(end), vanished as u64);
    assert_eq!(records(&pages).len(), vanished);

    // Each page fault fails the fetch at its page, then is cleared for the next.
    let short = ShortPage {
        at: PageFault::mobile(1),
        missing: 3,
    };
    mock.faults().set_short_page(Some(short));
    let bad = PageFault::mobile(2);
    mock.faults().set_malformed_page(Some(bad));
    for (test, page, expected) in [
        ("mock-short", "devices page 1", "returned 97 records"),
        ("mock-bad", "devices page 2", "malformed"),
    ] {
        let fetch = mock_connector(&mock, test, json!({ "page_size": 100 }));
        let (_, end) = collect(fetch).await;
        assert!(failure_at(end, page).contains(expected));
        mock.faults().set_short_page(None);
    }
    mock.faults().clear();

    let mut wrong = config(mock.base_url(), "mock-token", "wrong-token", json!({}));
    wrong.organization = Some(DEFAULT_ORGANIZATION.to_string());
    let (_, end) = collect(Relution::new(wrong, "x").expect("connector")).await;
    assert!(failure_at(end, "devices page 0").contains("access token"));
}

#[tokio::test]
async fn mock_serves_the_jamf_serials_of_the_same_fleet() {
    let fleet = Fleet::new(13, 80);
    let jamf = JamfProMock::start(MockConfig::new(fleet.clone()))
        .await
        .expect("jamf mock");
    let relution = start_mock(fleet).await;
    let secret = token_file("jamf-secret", &jamf.config().client_secret);
    let jamf_config: JamfProConfig = serde_json::from_value(json!({
        "base_url": jamf.base_url(),
        "client_id": jamf.config().client_id,
        "client_secret_file": secret,
    }))
    .expect("jamf config");
    let (jamf_pages, end) = collect(JamfPro::new(jamf_config, "jamf").expect("jamf")).await;
    assert_eq!(complete(end), 80);
    let (relution_pages, end) = collect(mock_connector(&relution, "moved", json!({}))).await;
    assert_eq!(complete(end), 80);
    let serials = |pages: &[SourcePage]| -> HashSet<String> {
        records(pages)
            .iter()
            .filter_map(|r| r.serial_number.clone())
            .collect()
    };
    // Same fleet, same serials: a device taken out of Jamf Pro and enrolled in Relution
    // matches its inventory entry by serial.
    assert_eq!(serials(&jamf_pages), serials(&relution_pages));
}
