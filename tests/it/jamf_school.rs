//! The Jamf School connector against wiremock (auth headers, the whole-array body handed on in
//! pages, count checks, the size guard, retries, failure texts, the documented example device)
//! and against the Jamf School mock (docs/vendors/jamf-school.md).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::{collect, complete, failure_at as failure_of};
use bestand_connectors::jamf_school::{JamfSchool, JamfSchoolConfig};
use bestand_core::model::DeviceCategory;
use bestand_core::record::{DeviceRecord, LocationHint, UserHint};
use bestand_mocks::generator::DeviceKind;
use bestand_mocks::jamf_school::{JamfSchoolMock, MockConfig, DEFAULT_API_KEY, DEFAULT_NETWORK_ID};
use bestand_mocks::Fleet;
use serde_json::{json, Value};
use wiremock::matchers::{basic_auth, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const NETWORK_ID: &str = "1234567";
const API_KEY: &str = "Schul+Schluessel/Geheim=7";
const DEVICES: &str = "/api/devices";

/// Writes `content` to a per-test secret file (setting environment variables would race).
fn secret_file(test: &str, content: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "bestand-jamf-school-{}-{test}.secret",
        std::process::id()
    ));
    std::fs::write(&path, content).expect("write secret file");
    path
}

/// A config for `base_url` with millisecond backoff; `extra` overrides keys.
fn config(
    base_url: &str,
    network_id: &str,
    key: &str,
    test: &str,
    extra: Value,
) -> JamfSchoolConfig {
    let mut value = json!({
        "base_url": base_url,
        "network_id": network_id,
        "api_key_file": secret_file(test, &format!("{key}\n")),
        "school_from": "location_id",
        "retry_base_ms": 5,
        "retry_cap_ms": 20,
    });
    let object = value.as_object_mut().expect("config is an object");
    for (key, entry) in extra.as_object().expect("extra is an object") {
        object.insert(key.clone(), entry.clone());
    }
    serde_json::from_value(value).expect("valid test config")
}

fn connector(server: &MockServer, test: &str, extra: Value) -> JamfSchool {
    let config = config(&server.uri(), NETWORK_ID, API_KEY, test, extra);
    JamfSchool::new(config, "jamf-school-test").expect("connector")
}

fn ipad(n: u64) -> Value {
    json!({
        "UDID": format!("00008030-{n:016X}"),
        "serialNumber": format!("DMP{n:07}"),
        "name": format!("iPad-{n}"),
        "class": "ipad",
        "locationId": 3,
        "model": { "name": "iPad (9th generation)", "identifier": "iPad12,1", "type": "iPad" }
    })
}

fn devices_body(count: u64, devices: Vec<Value>) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({ "code": 200, "count": count, "devices": devices }))
}

async fn mount_devices(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(DEVICES))
        .respond_with(response)
        .mount(server)
        .await;
}

#[tokio::test]
async fn basic_auth_and_protocol_header_are_sent_and_the_array_arrives_in_pages() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(DEVICES))
        .and(basic_auth(NETWORK_ID, API_KEY))
        .and(header("X-Server-Protocol-Version", "3"))
        .respond_with(devices_body(2500, (0..2500).map(ipad).collect()))
        .expect(1)
        .mount(&server)
        .await;
    let (pages, end) = collect(connector(&server, "pages", json!({}))).await;
    assert_eq!(complete(end), 2500);
    let labels: Vec<&str> = pages.iter().map(|page| page.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "GET /api/devices devices 1-1000 of 2500",
            "GET /api/devices devices 1001-2000 of 2500",
            "GET /api/devices devices 2001-2500 of 2500",
        ]
    );
    let ids: Vec<&str> = pages
        .iter()
        .flat_map(|page| {
            page.records
                .iter()
                .map(|record| record.external_id.as_str())
        })
        .collect();
    assert_eq!(ids.len(), 2500);
    assert_eq!(ids[2499], "00008030-00000000000009C3");
    assert!(pages.iter().all(|page| page.announced_total == Some(2500)));
}

#[tokio::test]
async fn the_protocol_version_is_configurable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(DEVICES))
        .and(header("X-Server-Protocol-Version", "2"))
        .respond_with(devices_body(1, vec![ipad(1)]))
        .expect(1)
        .mount(&server)
        .await;
    let (_, end) = collect(connector(
        &server,
        "protocol",
        json!({ "protocol_version": 2 }),
    ))
    .await;
    assert_eq!(complete(end), 1);
}

#[tokio::test]
async fn a_count_larger_than_the_array_fails_naming_the_request() {
    let server = MockServer::start().await;
    mount_devices(&server, devices_body(5, (0..3).map(ipad).collect())).await;
    let (pages, end) = collect(connector(&server, "short", json!({}))).await;
    assert!(pages.is_empty(), "nothing is sent from a short body");
    let cause = failure_of(end, "GET /api/devices");
    assert_eq!(cause, "the response holds 3 devices, but its `count` is 5");
}

#[tokio::test]
async fn the_size_guard_refuses_an_oversized_body() {
    let server = MockServer::start().await;
    let big: Vec<Value> = (0..4000)
        .map(|n| {
            let mut device = ipad(n);
            device["notes"] = json!("x".repeat(400));
            device
        })
        .collect();
    mount_devices(&server, devices_body(4000, big)).await;
    let (pages, end) = collect(connector(&server, "size", json!({ "max_response_mb": 1 }))).await;
    assert!(pages.is_empty());
    let cause = failure_of(end, "GET /api/devices");
    assert!(
        cause.starts_with("the response is larger than `max_response_mb` = 1 MiB"),
        "{cause}"
    );
}

#[tokio::test]
async fn retry_after_of_a_429_is_honoured() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(DEVICES))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_devices(&server, devices_body(2, vec![ipad(1), ipad(2)])).await;
    let started = Instant::now();
    let (_, end) = collect(connector(&server, "retry-after", json!({}))).await;
    assert_eq!(complete(end), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.received_requests().await.map(|r| r.len()), Some(2));
}

/// Answers every devices request with `status` and `body`, expects `requests` of them, and
/// returns the cause of the failed fetch (checked to name the request).
async fn refused(status: u16, body: String, requests: u64, test: &str, extra: Value) -> String {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(DEVICES))
        .respond_with(ResponseTemplate::new(status).set_body_string(body))
        .expect(requests)
        .mount(&server)
        .await;
    let connector = connector(&server, test, extra);
    let debug = format!("{connector:?}");
    assert!(
        !debug.contains(API_KEY) && debug.contains(NETWORK_ID),
        "{debug}"
    );
    let (_, end) = collect(connector).await;
    failure_of(end, "GET /api/devices")
}

#[tokio::test]
async fn a_403_is_not_retried_and_names_the_missing_right() {
    let cause = refused(403, "forbidden".into(), 1, "forbidden", json!({})).await;
    assert!(
        cause.starts_with("the API key lacks the access right to read devices"),
        "{cause}"
    );
    assert!(cause.contains("HTTP 403"), "{cause}");
}

#[tokio::test]
async fn a_401_is_a_credential_error_without_the_key() {
    let cause = refused(
        401,
        format!("bad key {API_KEY}"),
        1,
        "unauthorized",
        json!({}),
    )
    .await;
    assert!(
        cause.starts_with("Jamf School rejected the network ID and API key"),
        "{cause}"
    );
    assert!(cause.contains("[redacted]"), "{cause}");
    assert!(!cause.contains(API_KEY), "{cause}");
}

#[tokio::test]
async fn server_errors_are_retried_and_secrets_stay_out_of_errors_and_debug() {
    let extra = json!({ "retry_max_attempts": 3 });
    let cause = refused(500, format!("echo {API_KEY}"), 3, "secrets", extra).await;
    assert!(cause.contains("HTTP 500"), "{cause}");
    assert!(cause.contains("after 3 attempts"), "{cause}");
    assert!(!cause.contains(API_KEY), "{cause}");
}

#[tokio::test]
async fn malformed_json_fails_naming_the_request() {
    let server = MockServer::start().await;
    mount_devices(
        &server,
        ResponseTemplate::new(200)
            .set_body_string(r#"{"code": 200, "count": 2, "devices": [{"UDID""#),
    )
    .await;
    let (_, end) = collect(connector(&server, "malformed", json!({}))).await;
    let cause = failure_of(end, "GET /api/devices");
    assert!(
        cause.starts_with("the response is malformed: invalid JSON"),
        "{cause}"
    );
}

/// The example of docs/vendors/jamf-school.md#example-device, verbatim.
const EXAMPLE: &str = r#"{
  "code": 200,
  "count": 1,
  "devices": [
    {
      "UDID": "00008030-001A2B3C4D5E6F70",
      "locationId": 3,
      "serialNumber": "DMPXK1ABCDEF",
      "name": "RS-Nord-iPad-12",
      "isManaged": true,
      "isSupervised": true,
      "class": "ipad",
      "assetTag": "INV-0412",
      "os": { "prefix": "iOS", "version": "17.6.1" },
      "model": { "name": "iPad (9th generation)", "identifier": "iPad12,1", "type": "iPad" },
      "owner": { "id": 5120, "locationId": 3, "name": "Jonas Weber", "username": "jonas.weber",
                 "email": "jonas.weber@rs-nord.example.de", "vpp": [] },
      "groups": ["Klasse 7b"],
      "enrollType": "dep",
      "batteryLevel": 0.81,
      "totalCapacity": 59.6,
      "availableCapacity": 41.2,
      "lastCheckin": "2025-03-04 07:55:12",
      "modified": "2025-03-04 07:55:12",
      "networkInformation": { "IPAddress": "10.40.2.77", "WiFiMAC": "a4:83:e7:aa:bb:cc",
                              "BluetoothMAC": "a4:83:e7:aa:bb:cd" }
    }
  ]
}"#;

#[tokio::test]
async fn the_documented_example_device_maps_field_by_field() {
    let server = MockServer::start().await;
    mount_devices(&server, ResponseTemplate::new(200).set_body_string(EXAMPLE)).await;
    Mock::given(method("GET"))
        .and(path("/api/locations"))
        .and(basic_auth(NETWORK_ID, API_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "code": 200, "count": 2,
            "locations": [{ "id": 3, "name": "Realschule Nord" }, { "id": 4, "name": "GS Süd" }]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let (pages, end) = collect(connector(
        &server,
        "example",
        json!({ "school_from": "location_name", "base_url": format!("{}/api", server.uri()) }),
    ))
    .await;
    assert_eq!(complete(end), 1);
    let record = pages[0].records[0].clone();
    let start = EXAMPLE.find("{\n      \"UDID\"").unwrap();
    let end = EXAMPLE.rfind("}\n  ]").unwrap();
    assert_eq!(record.payload, EXAMPLE[start..=end].trim_end());
    let expected = DeviceRecord {
        external_id: "00008030-001A2B3C4D5E6F70".into(),
        category: DeviceCategory::Tablet,
        name: Some("RS-Nord-iPad-12".into()),
        asset_tag: Some("INV-0412".into()),
        serial_number: Some("DMPXK1ABCDEF".into()),
        udid: Some("00008030-001A2B3C4D5E6F70".into()),
        imei: None,
        wifi_mac: Some("a4:83:e7:aa:bb:cc".into()),
        manufacturer: Some("Apple".into()),
        model: Some("iPad (9th generation)".into()),
        model_identifier: Some("iPad12,1".into()),
        os_name: Some("iPadOS".into()),
        os_version: Some("17.6.1".into()),
        location: LocationHint {
            school: Some("Realschule Nord".into()),
            building: None,
            room: None,
        },
        user: UserHint {
            username: Some("jonas.weber".into()),
            real_name: Some("Jonas Weber".into()),
            email: Some("jonas.weber@rs-nord.example.de".into()),
        },
        problems: vec![],
        payload: record.payload.clone(),
        ..DeviceRecord::default()
    };
    assert_eq!(record, expected);
}

async fn start_mock(fleet: Fleet) -> JamfSchoolMock {
    JamfSchoolMock::start(MockConfig::new(fleet))
        .await
        .expect("mock starts")
}

fn mock_connector(mock: &JamfSchoolMock, test: &str, extra: Value) -> JamfSchool {
    let config = config(
        mock.base_url(),
        DEFAULT_NETWORK_ID,
        DEFAULT_API_KEY,
        test,
        extra,
    );
    JamfSchool::new(config, "jamf-school-mock").expect("connector")
}

#[tokio::test]
async fn the_mock_serves_the_whole_fleet_through_spawn_fetch() {
    let mock = start_mock(Fleet::new(7, 1500)).await;
    let expected = mock.device_count();
    assert!(expected > 500, "{expected}");
    let serials: std::collections::HashSet<String> = mock
        .snapshot()
        .devices(DeviceKind::Mobile)
        .map(|device| device.serial_number)
        .collect();
    let (pages, end) = collect(mock_connector(
        &mock,
        "mock-full",
        json!({ "school_from": "location_name", "page_size": 250 }),
    ))
    .await;
    assert_eq!(complete(end), expected as u64);
    let records: Vec<&DeviceRecord> = pages.iter().flat_map(|page| &page.records).collect();
    assert_eq!(records.len(), expected);
    assert!(pages.iter().all(|page| page.records.len() <= 250));
    for record in &records {
        assert_eq!(record.category, DeviceCategory::Tablet);
        assert!(record.problems.is_empty(), "{:?}", record.problems);
        assert!(record.location.school.is_some());
        assert!(serials.contains(record.serial_number.as_deref().unwrap()));
    }
    assert!(records.iter().any(|record| record.user.username.is_some()));
    let counts = mock.request_counts();
    assert_eq!((counts.devices, counts.locations), (1, 1));
    mock.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_mock_faults_are_survived_or_reported() {
    let mock = start_mock(Fleet::new(11, 300)).await;
    let full = mock.device_count() as u64;

    mock.faults().rate_limit_next(1, 0);
    mock.faults().server_errors_next(1, Some(502));
    let (_, end) = collect(mock_connector(&mock, "mock-retry", json!({}))).await;
    assert_eq!(complete(end), full);
    let counts = mock.request_counts();
    assert_eq!(
        (counts.rate_limited, counts.server_errors, counts.devices),
        (1, 1, 3)
    );

    mock.faults().set_count_surplus(2);
    let (_, end) = collect(mock_connector(&mock, "mock-short", json!({}))).await;
    let cause = failure_of(end, "GET /api/devices");
    assert!(
        cause.ends_with(&format!("its `count` is {}", full + 2)),
        "{cause}"
    );

    mock.faults().clear();
    mock.faults().set_malformed_body(true);
    let (_, end) = collect(mock_connector(&mock, "mock-malformed", json!({}))).await;
    assert!(failure_of(end, "GET /api/devices").contains("malformed"));

    mock.faults().clear();
    mock.faults().set_epoch(3);
    let vanished = mock.device_count() as u64;
    assert!(vanished < full, "{vanished} < {full}");
    let (_, end) = collect(mock_connector(&mock, "mock-epoch", json!({}))).await;
    assert_eq!(complete(end), vanished);

    let (_, end) = collect(mock_connector(
        &mock,
        "mock-protocol",
        json!({ "protocol_version": 2 }),
    ))
    .await;
    let cause = failure_of(end, "GET /api/devices");
    assert!(
        cause.contains("HTTP 404") && cause.contains("X-Server-Protocol-Version"),
        "{cause}"
    );

    mock.faults().set_delay(Duration::from_millis(1500));
    let slow = json!({ "timeout_secs": 1, "retry_max_attempts": 1 });
    let (_, end) = collect(mock_connector(&mock, "mock-slow", slow)).await;
    let cause = failure_of(end, "GET /api/devices");
    assert!(cause.contains("timed out"), "{cause}");
    mock.faults().set_delay(Duration::ZERO);

    let wrong_key = config(
        mock.base_url(),
        DEFAULT_NETWORK_ID,
        "falsch-1234",
        "mock-401",
        json!({}),
    );
    let (_, end) = collect(JamfSchool::new(wrong_key, "x").unwrap()).await;
    assert!(failure_of(end, "GET /api/devices").starts_with("Jamf School rejected"));
    assert_eq!(mock.request_counts().unauthorized, 1);
    mock.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_mock_lists_users_and_locations() {
    let mock = start_mock(Fleet::new(5, 400)).await;
    let client = reqwest::Client::new();
    let get = |path: &str| {
        client
            .get(format!("{}{path}", mock.base_url()))
            .basic_auth(DEFAULT_NETWORK_ID, Some(DEFAULT_API_KEY))
            .header("X-Server-Protocol-Version", "3")
            .send()
    };
    let users: Value = get("/api/users").await.unwrap().json().await.unwrap();
    let list = users["users"].as_array().unwrap();
    assert_eq!(users["count"].as_u64(), Some(list.len() as u64));
    assert!(!list.is_empty());
    assert!(list
        .iter()
        .all(|user| user["username"].is_string() && user["id"].is_u64()));
    let locations: Value = get("/api/locations").await.unwrap().json().await.unwrap();
    assert_eq!(locations["locations"].as_array().unwrap().len(), 32);
    let unauthenticated = client
        .get(format!("{}/api/users", mock.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status().as_u16(), 401);
    mock.shutdown().await.unwrap();
}
