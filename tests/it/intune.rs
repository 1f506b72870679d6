//! The Intune connector against a wiremock Graph (token form, token renewal, nextLink paging,
//! throttling, failure texts, the documented example devices of
//! docs/vendors/intune.md#managed-devices) and against the Intune mock server (whole fleets,
//! faults, epochs, serials shared with Jamf).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{collect_shared as collect, complete, failure_at, records};
use bestand_connectors::intune::{Intune, IntuneConfig};
use bestand_connectors::jamf_pro::{JamfPro, JamfProConfig};
use bestand_connectors::Connector;
use bestand_core::model::DeviceCategory;
use bestand_core::record::{DeviceRecord, LocationHint, UserHint};
use bestand_core::sync::{SourceItem, SourcePage};
use bestand_mocks::intune::{IntuneMock, IntuneMockConfig, Rendering};
use bestand_mocks::{Fleet, JamfProMock, MockConfig};
use serde_json::{json, Value};
use wiremock::matchers::{bearer_token, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "Intune~Geheim.Secret_42";
const TENANT: &str = "musterstadt.example.de";
const DEVICES_PATH: &str = "/v1.0/deviceManagement/managedDevices";
const TOKEN_PATH: &str = "/musterstadt.example.de/oauth2/v2.0/token";

/// A per-test secret file (environment variables would race with other test threads).
fn secret_file(test: &str, content: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "bestand-intune-{}-{test}.secret",
        std::process::id()
    ));
    std::fs::write(&path, content).expect("write secret file");
    path
}

/// A config for a Graph at `graph` with its token endpoint there too; `extra` overrides keys.
fn config_for(graph: &str, test: &str, secret: &str, extra: Value) -> IntuneConfig {
    let mut value = json!({
        "tenant_id": TENANT,
        "client_id": "bestand-intune-test",
        "client_secret_file": secret_file(test, &format!("{secret}\n")),
        "graph_url": graph,
        "token_url": format!("{graph}/{{tenant_id}}/oauth2/v2.0/token"),
        "retry_base_ms": 5,
        "retry_cap_ms": 20,
    });
    let object = value.as_object_mut().expect("config is an object");
    for (key, entry) in extra.as_object().expect("extra is an object") {
        object.insert(key.clone(), entry.clone());
    }
    serde_json::from_value(value).expect("valid test config")
}

fn connector(server: &MockServer, test: &str, extra: Value) -> Intune {
    Intune::new(
        config_for(&server.uri(), test, SECRET, extra),
        "intune-test",
    )
    .expect("connector")
}

async fn fetch(server: &MockServer, test: &str, extra: Value) -> (Vec<SourcePage>, SourceItem) {
    collect(Arc::new(connector(server, test, extra))).await
}

fn ids(pages: &[SourcePage]) -> Vec<String> {
    records(pages)
        .iter()
        .map(|r| r.external_id.clone())
        .collect()
}

fn labels(pages: &[SourcePage]) -> Vec<&str> {
    pages.iter().map(|page| page.label.as_str()).collect()
}

fn device(id: &str) -> Value {
    json!({ "id": id, "deviceName": format!("PC-{id}"), "operatingSystem": "Windows",
            "model": "Latitude 3440", "serialNumber": format!("SER-{id}") })
}

/// A page with `devices` and, if given, a next link to `$skiptoken=<next>` on `server`.
fn page(server: &MockServer, devices: &[&str], next: Option<&str>) -> ResponseTemplate {
    let mut body = json!({ "value": devices.iter().map(|id| device(id)).collect::<Vec<_>>() });
    if let Some(token) = next {
        body["@odata.nextLink"] = json!(format!(
            "{}{DEVICES_PATH}?$select=id&$top=2&$skiptoken={token}",
            server.uri()
        ));
    }
    ResponseTemplate::new(200).set_body_json(body)
}

fn token_response(token: &str, expires_in: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in,
        "access_token": token
    }))
}

/// The token endpoint hands out `tokens` in order, each once, and repeats the last.
async fn mount_tokens(server: &MockServer, tokens: &[&str]) {
    for (index, token) in tokens.iter().enumerate() {
        let mock = Mock::given(method("POST"))
            .and(path(TOKEN_PATH))
            .respond_with(token_response(token, 3599));
        let mock = if index + 1 < tokens.len() {
            mock.up_to_n_times(1)
        } else {
            mock
        };
        mock.mount(server).await;
    }
}

/// The first page (no skip token).
fn first_page() -> wiremock::MockBuilder {
    Mock::given(method("GET"))
        .and(path(DEVICES_PATH))
        .and(query_param_is_missing("$skiptoken"))
}

fn linked_page(token: &str) -> wiremock::MockBuilder {
    Mock::given(method("GET"))
        .and(path(DEVICES_PATH))
        .and(query_param("$skiptoken", token))
}

async fn server_with_token() -> MockServer {
    let server = MockServer::start().await;
    mount_tokens(&server, &["token-1"]).await;
    server
}

async fn hits(server: &MockServer, request_path: &str) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .expect("request recording is on")
        .into_iter()
        .filter(|request| request.url.path() == request_path)
        .collect()
}

/// A server whose page 0 answers `failure` `times` times, then holds device `a` (once).
async fn recovering_server(failure: ResponseTemplate, times: u64) -> MockServer {
    let server = server_with_token().await;
    first_page()
        .respond_with(failure)
        .up_to_n_times(times)
        .expect(times)
        .mount(&server)
        .await;
    first_page()
        .respond_with(page(&server, &["a"], None))
        .expect(1)
        .mount(&server)
        .await;
    server
}

/// Page 0 answers `response`, once; returns the cause of the failure it must name.
async fn fails_on_first_page(test: &str, response: ResponseTemplate) -> String {
    let server = server_with_token().await;
    first_page()
        .respond_with(response)
        .expect(1)
        .mount(&server)
        .await;
    let (pages, end) = fetch(&server, test, json!({})).await;
    // Nothing of a page that fails reaches the engine.
    assert!(pages.is_empty());
    failure_at(end, "managed-devices page 0")
}

/// Page 0 holds device `a` and links to page 1, which answers `response(server)` once;
/// returns the cause of the failure it must name, after checking that page 0 was delivered.
async fn fails_on_second_page(
    test: &str,
    response: impl FnOnce(&MockServer) -> ResponseTemplate,
) -> String {
    let server = server_with_token().await;
    first_page()
        .respond_with(page(&server, &["a"], Some("t1")))
        .mount(&server)
        .await;
    linked_page("t1")
        .respond_with(response(&server))
        .expect(1)
        .mount(&server)
        .await;
    let (pages, end) = fetch(&server, test, json!({})).await;
    assert_eq!(ids(&pages), ["a"]);
    failure_at(end, "managed-devices page 1")
}

fn assert_contains(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{part:?} not in {text}");
    }
}

/// The fields of an `application/x-www-form-urlencoded` body, decoded.
fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    let decode = |text: &str| {
        let bytes = text.replace('+', " ").into_bytes();
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            if bytes[at] == b'%' && at + 2 < bytes.len() {
                let hex = std::str::from_utf8(&bytes[at + 1..at + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                at += 3;
            } else {
                out.push(bytes[at]);
                at += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    std::str::from_utf8(body)
        .unwrap()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (decode(key), decode(value)))
        .collect()
}

#[tokio::test]
async fn token_request_sends_the_client_credentials_form_and_the_bearer_is_used() {
    let server = server_with_token().await;
    first_page()
        .and(bearer_token("token-1"))
        .respond_with(page(&server, &["a"], None))
        .expect(1)
        .mount(&server)
        .await;
    let (pages, end) = fetch(&server, "form", json!({})).await;
    assert_eq!(complete(end), 1);
    assert_eq!(ids(&pages), ["a"]);

    let token = &hits(&server, TOKEN_PATH).await[0];
    let form = form_fields(&token.body);
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    assert_eq!(field("grant_type"), Some("client_credentials"));
    assert_eq!(field("client_id"), Some("bestand-intune-test"));
    assert_eq!(field("client_secret"), Some(SECRET));
    assert_eq!(
        field("scope"),
        Some(format!("{}/.default", server.uri()).as_str())
    );

    let list = &hits(&server, DEVICES_PATH).await[0];
    let query: Vec<(String, String)> = list.url.query_pairs().into_owned().collect();
    let select = &query
        .iter()
        .find(|(k, _)| k == "$select")
        .expect("$select")
        .1;
    for field in [
        "id",
        "serialNumber",
        "wiFiMacAddress",
        "userPrincipalName",
        "imei",
    ] {
        assert!(select.split(',').any(|f| f == field), "{select}");
    }
    assert!(query.contains(&("$top".to_string(), "1000".to_string())));
}

#[tokio::test]
async fn unauthorized_renews_the_token_once_and_replays_the_request() {
    let server = MockServer::start().await;
    mount_tokens(&server, &["token-1", "token-2"]).await;
    first_page()
        .and(bearer_token("token-1"))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&server)
        .await;
    first_page()
        .and(bearer_token("token-2"))
        .respond_with(page(&server, &["a", "b"], None))
        .expect(1)
        .mount(&server)
        .await;
    let (pages, end) = fetch(&server, "renew", json!({})).await;
    assert_eq!(complete(end), 2);
    assert_eq!(ids(&pages), ["a", "b"]);
    assert_eq!(hits(&server, TOKEN_PATH).await.len(), 2);
}

#[tokio::test]
async fn a_second_unauthorized_fails_with_a_credential_error() {
    let server = MockServer::start().await;
    mount_tokens(&server, &["token-1", "token-2"]).await;
    first_page()
        .respond_with(ResponseTemplate::new(401))
        .expect(2)
        .mount(&server)
        .await;
    let (_, end) = fetch(&server, "second-401", json!({})).await;
    let cause = failure_at(end, "managed-devices page 0");
    assert_contains(
        &cause,
        &[
            "rejected the client credentials",
            "again after renewing the token",
        ],
    );
}

#[tokio::test]
async fn paging_follows_next_links_to_the_end_in_order() {
    let server = server_with_token().await;
    first_page()
        .respond_with(page(&server, &["a", "b"], Some("t1")))
        .mount(&server)
        .await;
    linked_page("t1")
        .respond_with(page(&server, &[], Some("t2")))
        .mount(&server)
        .await;
    linked_page("t2")
        .respond_with(page(&server, &["c"], None))
        .mount(&server)
        .await;
    let (pages, end) = fetch(&server, "paging", json!({ "page_size": 2 })).await;
    // No `@odata.count`: the total is what arrived.
    assert_eq!(complete(end), 3);
    assert_eq!(ids(&pages), ["a", "b", "c"]);
    assert_eq!(
        labels(&pages),
        [
            "managed-devices page 0",
            "managed-devices page 1",
            "managed-devices page 2"
        ]
    );
    // The link was followed verbatim: its own `$top=2&$select=id`.
    let linked = &hits(&server, DEVICES_PATH).await[1];
    assert_eq!(linked.url.query(), Some("$select=id&$top=2&$skiptoken=t1"));
}

#[tokio::test]
async fn odata_count_is_reported_as_the_total() {
    let server = server_with_token().await;
    first_page()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "@odata.count": 5, "value": [device("a")]
        })))
        .mount(&server)
        .await;
    let (pages, end) = fetch(&server, "count", json!({})).await;
    // The engine compares this with the distinct records and fails the run when short.
    assert_eq!(complete(end), 5);
    assert_eq!(pages[0].announced_total, Some(5));
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after() {
    let throttled = ResponseTemplate::new(429).insert_header("Retry-After", "1");
    let server = recovering_server(throttled, 1).await;
    let started = Instant::now();
    let (_, end) = fetch(&server, "retry-after", json!({})).await;
    assert_eq!(complete(end), 1);
    // The backoff alone would have waited at most 5 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn too_many_requests_without_retry_after_backs_off_and_retries() {
    let server = recovering_server(ResponseTemplate::new(429), 3).await;
    let (pages, end) = fetch(&server, "no-retry-after", json!({})).await;
    assert_eq!(complete(end), 1);
    assert_eq!(ids(&pages), ["a"]);

    // With too few attempts the throttling wins, naming the page and the status.
    let server = server_with_token().await;
    first_page()
        .respond_with(ResponseTemplate::new(429))
        .expect(2)
        .mount(&server)
        .await;
    let (_, end) = fetch(
        &server,
        "no-retry-after-2",
        json!({ "retry_max_attempts": 2 }),
    )
    .await;
    let cause = failure_at(end, "managed-devices page 0");
    assert!(
        cause.contains("HTTP 429 Too Many Requests after 2 attempts"),
        "{cause}"
    );
}

#[tokio::test]
async fn forbidden_is_not_retried_and_names_the_permission() {
    let forbidden = ResponseTemplate::new(403).set_body_json(json!({
        "error": { "code": "accessDenied", "message": "Application is not authorized" }
    }));
    let cause = fails_on_first_page("forbidden", forbidden).await;
    assert_contains(
        &cause,
        &[
            "HTTP 403",
            "accessDenied",
            "DeviceManagementManagedDevices.Read.All",
        ],
    );
}

#[tokio::test]
async fn malformed_json_fails_naming_the_page() {
    let cut_off = ResponseTemplate::new(200).set_body_string(r#"{"value": [{"id": "b"}"#);
    let cause = fails_on_second_page("malformed", |_| cut_off).await;
    assert!(
        cause.starts_with("malformed page: invalid JSON ("),
        "{cause}"
    );

    let no_id =
        ResponseTemplate::new(200).set_body_json(json!({ "value": [{ "deviceName": "x" }] }));
    assert_eq!(
        fails_on_first_page("malformed-2", no_id).await,
        "malformed page: device 0: no `id`"
    );
}

#[tokio::test]
async fn a_next_link_to_another_host_is_refused() {
    let foreign = ResponseTemplate::new(200).set_body_json(json!({
        "value": [device("a")],
        "@odata.nextLink": "https://graph.evil.example/v1.0/deviceManagement/managedDevices?$skiptoken=x"
    }));
    let cause = fails_on_first_page("foreign", foreign).await;
    assert_contains(
        &cause,
        &[
            "graph.evil.example",
            "does not point to the configured Graph host",
        ],
    );
}

#[tokio::test]
async fn a_next_link_back_to_the_same_page_fails_instead_of_looping() {
    let looping = |server: &MockServer| page(server, &["b"], Some("t1"));
    let cause = fails_on_second_page("loop", looping).await;
    assert_contains(&cause, &["points back to the page just fetched"]);
}

#[tokio::test]
async fn a_stale_next_link_restarts_the_listing_once_without_duplicates() {
    let server = server_with_token().await;
    first_page()
        .respond_with(page(&server, &["a", "b"], Some("t1")))
        .expect(2)
        .mount(&server)
        .await;
    linked_page("t1")
        .respond_with(ResponseTemplate::new(410))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    linked_page("t1")
        .respond_with(page(&server, &["b", "c"], None))
        .mount(&server)
        .await;
    let (pages, end) = fetch(&server, "stale", json!({})).await;
    assert_eq!(complete(end), 3);
    assert_eq!(ids(&pages), ["a", "b", "c"]);

    // A second stale link in the same run fails it.
    let server = server_with_token().await;
    first_page()
        .respond_with(page(&server, &["a"], Some("t1")))
        .mount(&server)
        .await;
    linked_page("t1")
        .respond_with(ResponseTemplate::new(400))
        .expect(2)
        .mount(&server)
        .await;
    let (_, end) = fetch(&server, "stale-2", json!({})).await;
    let cause = failure_at(end, "managed-devices page 3");
    assert!(cause.contains("HTTP 400"), "{cause}");
}

/// The example page of docs/vendors/intune.md#managed-devices, verbatim but for the next link.
fn documented_devices() -> Vec<Value> {
    vec![
        json!({
            "id": "705c034c-034c-705c-4c03-5c704c035c70",
            "deviceName": "GYM-Alt-SurfaceGo-031",
            "serialNumber": "012345678901",
            "model": "Surface Go 3",
            "manufacturer": "Microsoft Corporation",
            "operatingSystem": "Windows",
            "osVersion": "10.0.22631.4317",
            "userPrincipalName": "m.fischer@gym-altstadt.example.de",
            "emailAddress": "m.fischer@gym-altstadt.example.de",
            "azureADDeviceId": "3f2b8c1d-0a4e-4f6a-9b7c-5d8e1f2a3b4c",
            "enrolledDateTime": "2024-08-28T09:12:33Z",
            "lastSyncDateTime": "2025-03-04T06:41:02Z",
            "complianceState": "compliant",
            "imei": "",
            "wiFiMacAddress": "3C219CAABBCC",
            "totalStorageSpaceInBytes": 127999606784u64
        }),
        json!({
            "id": "9a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9",
            "deviceName": "iPad_7b_14",
            "serialNumber": "DMPXK1ABCDEF",
            "model": "iPad (9th generation)",
            "manufacturer": "Apple",
            "operatingSystem": "iOS",
            "osVersion": "17.6.1",
            "userPrincipalName": "",
            "emailAddress": "",
            "azureADDeviceId": "00000000-0000-0000-0000-000000000000",
            "enrolledDateTime": "2023-09-01T08:02:11Z",
            "lastSyncDateTime": "2025-03-03T13:20:45Z",
            "complianceState": "noncompliant",
            "imei": "",
            "wiFiMacAddress": "a483e7123456",
            "totalStorageSpaceInBytes": 64000000000u64
        }),
    ]
}

#[tokio::test]
async fn the_documented_example_devices_map_field_by_field() {
    let server = server_with_token().await;
    let devices = documented_devices();
    first_page()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#deviceManagement/managedDevices",
            "value": devices
        })))
        .mount(&server)
        .await;
    let (pages, end) = fetch(&server, "example", json!({ "school_from": "upn_domain" })).await;
    assert_eq!(complete(end), 2);
    let got = records(&pages);
    let surface = DeviceRecord {
        external_id: "705c034c-034c-705c-4c03-5c704c035c70".into(),
        category: DeviceCategory::Laptop,
        name: Some("GYM-Alt-SurfaceGo-031".into()),
        serial_number: Some("012345678901".into()),
        imei: None,
        wifi_mac: Some("3C219CAABBCC".into()),
        manufacturer: Some("Microsoft Corporation".into()),
        model: Some("Surface Go 3".into()),
        os_name: Some("Windows".into()),
        os_version: Some("10.0.22631.4317".into()),
        location: LocationHint {
            school: Some("gym-altstadt.example.de".into()),
            ..LocationHint::default()
        },
        user: UserHint {
            username: Some("m.fischer@gym-altstadt.example.de".into()),
            real_name: None,
            email: Some("m.fischer@gym-altstadt.example.de".into()),
        },
        payload: serde_json::to_string(&devices[0]).unwrap(),
        ..DeviceRecord::default()
    };
    assert_eq!(*got[0], surface);
    let ipad = DeviceRecord {
        external_id: "9a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9".into(),
        category: DeviceCategory::Tablet,
        name: Some("iPad_7b_14".into()),
        serial_number: Some("DMPXK1ABCDEF".into()),
        wifi_mac: Some("a483e7123456".into()),
        manufacturer: Some("Apple".into()),
        model: Some("iPad (9th generation)".into()),
        os_name: Some("iPadOS".into()),
        os_version: Some("17.6.1".into()),
        payload: serde_json::to_string(&devices[1]).unwrap(),
        ..DeviceRecord::default()
    };
    assert_eq!(*got[1], ipad);
}

#[tokio::test]
async fn secrets_stay_out_of_debug_output_and_error_texts() {
    let server = MockServer::start().await;
    // A token endpoint that echoes the secret back in its error.
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": "invalid_client",
            "error_description": format!("AADSTS7000215: Invalid client secret provided: {SECRET}")
        })))
        .expect(1)
        .mount(&server)
        .await;
    let intune = connector(&server, "secrets", json!({}));
    let debug = format!("{intune:?}");
    assert!(debug.contains("bestand-intune-test"), "{debug}");
    assert!(!debug.contains(SECRET), "{debug}");
    let (_, end) = collect(Arc::new(intune)).await;
    let cause = failure_at(end, "managed-devices page 0");
    assert_contains(&cause, &["AADSTS7000215", "[redacted]"]);
    assert!(!cause.contains(SECRET), "{cause}");
}

// ---- against the Intune mock server ----

fn mock_connector(mock: &IntuneMock, test: &str, mut extra: Value) -> Intune {
    extra["client_id"] = json!(bestand_mocks::intune::DEFAULT_CLIENT_ID);
    let secret = bestand_mocks::intune::DEFAULT_CLIENT_SECRET;
    Intune::new(
        config_for(mock.base_url(), test, secret, extra),
        "intune-mock",
    )
    .expect("connector")
}

#[tokio::test]
async fn the_mock_fleet_is_fetched_whole_through_spawn_fetch() {
    let mock = IntuneMock::start(IntuneMockConfig::new(Fleet::new(42, 2500)))
        .await
        .unwrap();
    let expected = mock.snapshot().total();
    let (pages, end) = collect(Arc::new(mock_connector(&mock, "mock-full", json!({})))).await;
    assert_eq!(complete(end), expected as u64);
    assert_eq!(pages.len(), 3);
    let all = records(&pages);
    assert_eq!(all.len(), expected);
    let distinct: HashSet<&str> = all.iter().map(|r| r.external_id.as_str()).collect();
    assert_eq!(distinct.len(), expected);
    let laptops = all
        .iter()
        .filter(|r| r.category == DeviceCategory::Laptop)
        .count();
    let desktops = all
        .iter()
        .filter(|r| r.category == DeviceCategory::Desktop)
        .count();
    assert!(
        laptops > 4 * desktops && desktops > 0,
        "{laptops} laptops, {desktops} desktops"
    );
    assert!(all.iter().all(|r| r.os_name.as_deref() == Some("Windows")));
    // Default `school_from = device_category`: the mock files devices by school name.
    assert!(all.iter().all(|r| r.location.school.is_some()));
    let counts = mock.request_counts();
    assert_eq!((counts.token, counts.devices, counts.next_links), (1, 3, 2));
}

#[tokio::test]
async fn mock_faults_are_ridden_out_and_a_vanished_device_disappears() {
    let fleet = Fleet::new(7, 600);
    let mock = IntuneMock::start(IntuneMockConfig::new(fleet))
        .await
        .unwrap();
    let connector: Arc<dyn Connector> = Arc::new(mock_connector(
        &mock,
        "mock-faults",
        json!({ "page_size": 250 }),
    ));
    mock.faults().rate_limit_next(1, Some(0));
    mock.faults().update(|plan| plan.server_errors_next = 1);
    mock.faults().stale_link_next(410);
    let (pages, end) = collect(connector.clone()).await;
    assert_eq!(complete(end), 600);
    let first: HashSet<String> = ids(&pages).into_iter().collect();
    assert_eq!(first.len(), 600);
    let counts = mock.request_counts();
    assert_eq!(
        (
            counts.rate_limited,
            counts.server_errors,
            counts.stale_links
        ),
        (1, 1, 1)
    );

    // Next run: tokens were revoked meanwhile and the fleet moved on one epoch.
    mock.faults().expire_tokens();
    mock.faults().set_epoch(1);
    let (pages, end) = collect(connector.clone()).await;
    let second: HashSet<String> = ids(&pages).into_iter().collect();
    let expected = mock.snapshot().total();
    assert_eq!(complete(end), expected as u64);
    assert_eq!(second.len(), expected);
    assert!(expected < 600);
    let after = mock.request_counts();
    assert_eq!(after.unauthorized, 1);
    assert_eq!(after.token, 2);

    // A page cut off mid-JSON fails the run naming it.
    mock.faults().set_malformed_page(Some(1), None);
    let (_, end) = collect(connector).await;
    let cause = failure_at(end, "managed-devices page 1");
    assert!(cause.contains("malformed page"), "{cause}");
}

#[tokio::test]
async fn the_same_serials_show_up_in_jamf_pro_and_intune() {
    let fleet = Fleet::new(11, 300);
    let intune_mock = IntuneMock::start(IntuneMockConfig {
        rendering: Rendering::SameSerials,
        ..IntuneMockConfig::new(fleet.clone())
    })
    .await
    .unwrap();
    let jamf_mock = JamfProMock::start(MockConfig::new(fleet)).await.unwrap();
    let (intune_pages, end) = collect(Arc::new(mock_connector(
        &intune_mock,
        "same-serials",
        json!({}),
    )))
    .await;
    assert_eq!(complete(end), 300);
    let jamf_config: JamfProConfig = serde_json::from_value(json!({
        "base_url": jamf_mock.base_url(),
        "client_id": bestand_mocks::jamf_pro::DEFAULT_CLIENT_ID,
        "client_secret_file": secret_file("same-serials-jamf", bestand_mocks::jamf_pro::DEFAULT_CLIENT_SECRET),
    }))
    .unwrap();
    let (jamf_pages, end) = collect(Arc::new(JamfPro::new(jamf_config, "jamf").unwrap())).await;
    assert_eq!(complete(end), 300);
    let serials = |pages: &[SourcePage]| -> HashSet<String> {
        records(pages)
            .iter()
            .filter_map(|r| r.serial_number.clone())
            .collect()
    };
    let intune_serials = serials(&intune_pages);
    assert_eq!(intune_serials.len(), 300);
    assert_eq!(intune_serials, serials(&jamf_pages));
    // And the iPads read alike from both.
    let intune_tablets = records(&intune_pages)
        .iter()
        .filter(|r| r.category == DeviceCategory::Tablet && r.os_name.as_deref() == Some("iPadOS"))
        .count();
    let jamf_tablets = records(&jamf_pages)
        .iter()
        .filter(|r| r.category == DeviceCategory::Tablet)
        .count();
    assert_eq!(intune_tablets, jamf_tablets);
}
