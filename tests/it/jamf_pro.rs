//! The Jamf Pro connector against a wiremock Jamf: auth and token renewal, paging, retries,
//! failure texts and the mapping of the documented example payloads (docs/vendors/jamf-pro.md).

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::support::{collect, complete, failed, failure_at};
use bestand_connectors::jamf_pro::{JamfPro, JamfProConfig};
use bestand_core::model::DeviceCategory;
use bestand_core::record::{DeviceRecord, LocationHint, PurchaseInfo, UserHint};
use bestand_core::sync::{SourceItem, SourcePage};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use wiremock::matchers::{
    basic_auth, bearer_token, body_string, header, method, path, query_param,
};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

const SECRET: &str = "Sehr+Geheim/Secret=42";
const MOBILE_PATH: &str = "/api/v2/mobile-devices/detail";
const TOKEN_PATH: &str = "/api/oauth/token";

/// Writes `content` to a per-test secret file (the secret resolver reads files; setting
/// environment variables would race with other test threads).
fn secret_file(test: &str, content: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("bestand-jamf-{}-{test}.secret", std::process::id()));
    std::fs::write(&path, content).expect("write secret file");
    path
}

/// A mobile-devices-only OAuth config with millisecond backoff; `extra` overrides keys.
fn config(server: &MockServer, test: &str, extra: Value) -> JamfProConfig {
    let mut value = json!({
        "base_url": server.uri(),
        "client_id": "bestand-test",
        "client_secret_file": secret_file(test, &format!("{SECRET}\n")),
        "include_computers": false,
        "retry_base_ms": 5,
        "retry_cap_ms": 20,
    });
    let object = value.as_object_mut().expect("config is an object");
    for (key, entry) in extra.as_object().expect("extra is an object") {
        if entry.is_null() {
            object.remove(key);
        } else {
            object.insert(key.clone(), entry.clone());
        }
    }
    serde_json::from_value(value).expect("valid test config")
}

fn connector(server: &MockServer, test: &str, extra: Value) -> JamfPro {
    JamfPro::new(config(server, test, extra), "jamf-test").expect("connector")
}

/// Builds the connector for `server` and runs it to the end.
async fn fetch(server: &MockServer, test: &str, extra: Value) -> (Vec<SourcePage>, SourceItem) {
    collect(connector(server, test, extra)).await
}

/// Config overrides for a computers-only source.
fn computers_only() -> Value {
    json!({ "include_computers": true, "include_mobile_devices": false })
}

fn labels(pages: &[SourcePage]) -> Vec<&str> {
    pages.iter().map(|page| page.label.as_str()).collect()
}

fn external_ids(pages: &[SourcePage]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|page| page.records.iter().map(|record| record.external_id.clone()))
        .collect()
}

fn ipad(id: u64) -> Value {
    json!({
        "mobileDeviceId": id.to_string(),
        "deviceType": "iOS",
        "general": { "displayName": format!("iPad-{id}"), "siteId": "-1" },
        "hardware": { "serialNumber": format!("SER{id:05}"), "model": "iPad (9th generation)" }
    })
}

fn ipad_page(total: u64, ids: impl IntoIterator<Item = u64>) -> ResponseTemplate {
    page_response(total, ids.into_iter().map(ipad).collect())
}

fn mobile_page(page: u64) -> MockBuilder {
    Mock::given(method("GET"))
        .and(path(MOBILE_PATH))
        .and(query_param("page", page.to_string()))
}

fn computers_request(version: &str) -> MockBuilder {
    Mock::given(method("GET")).and(path(format!("/api/{version}/computers-inventory")))
}

fn json_response(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

fn page_response(total: u64, results: Vec<Value>) -> ResponseTemplate {
    json_response(json!({ "totalCount": total, "results": results }))
}

fn token_response(token: &str, expires_in: u64) -> ResponseTemplate {
    json_response(json!({
        "access_token": token, "scope": "api-role:2", "token_type": "Bearer", "expires_in": expires_in
    }))
}

/// The token endpoint hands out `tokens` in order, each once, and repeats the last.
async fn mount_tokens(server: &MockServer, tokens: &[(&str, u64)]) {
    for (index, (token, expires_in)) in tokens.iter().enumerate() {
        let mock = Mock::given(method("POST"))
            .and(path(TOKEN_PATH))
            .respond_with(token_response(token, *expires_in));
        let mock = if index + 1 < tokens.len() {
            mock.up_to_n_times(1)
        } else {
            mock
        };
        mock.mount(server).await;
    }
}

async fn mount_token(server: &MockServer) {
    mount_tokens(server, &[("token-1", 600)]).await;
}

/// A server with token and sites: what every mobile-devices fetch needs first.
async fn mobile_server() -> MockServer {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_sites(&server).await;
    server
}

async fn mount_sites(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/api/v1/sites"))
        .respond_with(json_response(json!([
            { "id": "1", "name": "Gymnasium Am Park" },
            { "id": "2", "name": "GS Lindenweg" }
        ])))
        .mount(server)
        .await;
}

async fn mount_buildings(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/api/v1/buildings"))
        .respond_with(page_response(
            1,
            vec![json!({ "id": "3", "name": "Hauptgebäude", "city": "Hameln" })],
        ))
        .mount(server)
        .await;
}

/// The `section` query values of the first request to `request_path`.
async fn sections(server: &MockServer, request_path: &str) -> Vec<String> {
    hits(server, request_path).await[0]
        .url
        .query_pairs()
        .filter(|(key, _)| key == "section")
        .map(|(_, value)| value.into_owned())
        .collect()
}

/// Mobile-devices page 0 answers `response`, `times` times exactly.
async fn mount_first_page(server: &MockServer, response: ResponseTemplate, times: u64) {
    mobile_page(0)
        .respond_with(response)
        .expect(times)
        .mount(server)
        .await;
}

/// Mobile-devices page 0 fails `failures` times with `failure`, then holds one iPad.
async fn mount_first_page_after_failures(
    server: &MockServer,
    failure: ResponseTemplate,
    failures: u64,
) {
    mobile_page(0)
        .respond_with(failure)
        .up_to_n_times(failures)
        .expect(failures)
        .mount(server)
        .await;
    mount_first_page(server, ipad_page(1, [1]), 1).await;
}

/// A server with token and buildings: what every computers fetch needs first.
async fn computer_server() -> MockServer {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_buildings(&server).await;
    server
}

/// Requests the server received for `request_path`.
async fn hits(server: &MockServer, request_path: &str) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .expect("request recording is on")
        .into_iter()
        .filter(|request| request.url.path() == request_path)
        .collect()
}

#[tokio::test]
async fn oauth_token_request_sends_the_form_and_the_bearer_is_used() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string(
            "grant_type=client_credentials&client_id=bestand-test\
             &client_secret=Sehr%2BGeheim%2FSecret%3D42",
        ))
        .respond_with(token_response("token-1", 600))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/sites"))
        .and(bearer_token("token-1"))
        .respond_with(json_response(json!([])))
        .expect(1)
        .mount(&server)
        .await;
    mobile_page(0)
        .and(bearer_token("token-1"))
        .and(query_param("page-size", "1000"))
        .and(query_param("sort", "mobileDeviceId:asc"))
        .respond_with(ipad_page(2, [1, 2]))
        .expect(1)
        .mount(&server)
        .await;

    let (pages, end) = fetch(&server, "oauth", json!({})).await;

    assert_eq!(complete(end), 2);
    assert_eq!(external_ids(&pages), ["mobile:1", "mobile:2"]);
    assert_eq!(pages[0].label, "mobile-devices page 0");
    assert_eq!(pages[0].announced_total, Some(2));
    assert_eq!(
        sections(&server, MOBILE_PATH).await,
        ["GENERAL", "HARDWARE", "USER_AND_LOCATION", "PURCHASING"]
    );
    server.verify().await;
}

#[tokio::test]
async fn legacy_user_token_uses_basic_auth() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/auth/token"))
        .and(basic_auth("api-reader", SECRET))
        .respond_with(json_response(json!({
            "token": "user-token", "expires": "2099-01-24T21:35:20.373Z"
        })))
        .expect(1)
        .mount(&server)
        .await;
    mount_sites(&server).await;
    mobile_page(0)
        .and(bearer_token("user-token"))
        .respond_with(ipad_page(1, [7]))
        .expect(1)
        .mount(&server)
        .await;
    let legacy = json!({
        "client_id": null,
        "client_secret_file": null,
        "username": "api-reader",
        "password_file": secret_file("legacy-password", SECRET),
    });

    let (pages, end) = fetch(&server, "legacy", legacy).await;

    assert_eq!(complete(end), 1);
    assert_eq!(external_ids(&pages), ["mobile:7"]);
    server.verify().await;
}

#[tokio::test]
async fn token_is_renewed_before_it_expires() {
    let server = MockServer::start().await;
    // A 1-second token is inside the renewal margin at once: the next request renews it.
    mount_tokens(&server, &[("short-lived", 1), ("renewed", 600)]).await;
    Mock::given(method("GET"))
        .and(path("/api/v1/sites"))
        .and(bearer_token("short-lived"))
        .respond_with(json_response(json!([])))
        .expect(1)
        .mount(&server)
        .await;
    for page in 0..3 {
        mobile_page(page)
            .and(bearer_token("renewed"))
            .respond_with(ipad_page(3, [page + 1]))
            .expect(1)
            .mount(&server)
            .await;
    }

    let (pages, end) = fetch(&server, "renew-expiry", json!({ "page_size": 1 })).await;

    assert_eq!(complete(end), 3);
    assert_eq!(external_ids(&pages), ["mobile:1", "mobile:2", "mobile:3"]);
    assert_eq!(hits(&server, TOKEN_PATH).await.len(), 2);
    server.verify().await;
}

#[tokio::test]
async fn unauthorized_mid_run_renews_the_token_and_replays_the_request() {
    let server = MockServer::start().await;
    mount_tokens(&server, &[("token-1", 600), ("token-2", 600)]).await;
    mount_sites(&server).await;
    mobile_page(0)
        .and(bearer_token("token-1"))
        .respond_with(ipad_page(2, [1]))
        .expect(1)
        .mount(&server)
        .await;
    // The server revoked token-1 between page 0 and page 1.
    mobile_page(1)
        .and(bearer_token("token-1"))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&server)
        .await;
    mobile_page(1)
        .and(bearer_token("token-2"))
        .respond_with(ipad_page(2, [2]))
        .expect(1)
        .mount(&server)
        .await;

    let (pages, end) = fetch(&server, "renew-401", json!({ "page_size": 1 })).await;

    assert_eq!(complete(end), 2);
    assert_eq!(external_ids(&pages), ["mobile:1", "mobile:2"]);
    assert_eq!(hits(&server, TOKEN_PATH).await.len(), 2);
    server.verify().await;
}

#[tokio::test]
async fn a_second_unauthorized_fails_with_a_credential_error() {
    let server = mobile_server().await;
    mount_first_page(
        &server,
        ResponseTemplate::new(401).set_body_string("token expired"),
        2,
    )
    .await;

    let (pages, end) = fetch(&server, "second-401", json!({})).await;

    assert!(pages.is_empty());
    let cause = failure_at(end, "mobile-devices page 0");
    assert!(cause.contains("rejected the credentials"), "{cause}");
    assert!(cause.contains("401"), "{cause}");
    assert!(!cause.contains("token-1"), "{cause}");
    assert_eq!(hits(&server, TOKEN_PATH).await.len(), 2);
    server.verify().await;
}

#[tokio::test]
async fn paging_follows_the_servers_page_size_cap_to_the_end_in_order() {
    let server = mobile_server().await;
    // Asked for 2000, the server hands out 500 per page.
    mobile_page(0)
        .and(query_param("page-size", "2000"))
        .respond_with(ipad_page(1200, 1..=500))
        .expect(1)
        .mount(&server)
        .await;
    // Page 1 answers last, so out-of-order delivery would show.
    mobile_page(1)
        .respond_with(ipad_page(1200, 501..=1000).set_delay(Duration::from_millis(300)))
        .expect(1)
        .mount(&server)
        .await;
    mobile_page(2)
        .respond_with(ipad_page(1200, 1001..=1200))
        .expect(1)
        .mount(&server)
        .await;
    mobile_page(3)
        .respond_with(ipad_page(1200, []))
        .expect(0)
        .mount(&server)
        .await;

    let (pages, end) = fetch(&server, "cap", json!({ "page_size": 2000 })).await;

    assert_eq!(complete(end), 1200);
    assert_eq!(
        labels(&pages),
        [
            "mobile-devices page 0",
            "mobile-devices page 1",
            "mobile-devices page 2"
        ]
    );
    let expected: Vec<String> = (1..=1200).map(|id| format!("mobile:{id}")).collect();
    assert_eq!(external_ids(&pages), expected);
    server.verify().await;
}

#[tokio::test]
async fn both_listings_are_delivered_in_order_through_one_pipeline() {
    let server = mobile_server().await;
    mount_buildings(&server).await;
    for page in 0..3 {
        let ids = page * 2 + 1..=(page * 2 + 2).min(5);
        // The last mobile page answers late: computer pages fetched meanwhile must wait.
        let delay = Duration::from_millis(if page == 2 { 300 } else { 0 });
        mobile_page(page)
            .respond_with(ipad_page(5, ids.clone()).set_delay(delay))
            .expect(1)
            .mount(&server)
            .await;
        let computers = ids.map(|id| json!({ "id": id.to_string() })).collect();
        computers_request("v4")
            .and(query_param("page", page.to_string()))
            .respond_with(page_response(5, computers))
            .expect(1)
            .mount(&server)
            .await;
    }

    let extra = json!({ "include_computers": true, "page_size": 2 });
    let (pages, end) = fetch(&server, "two-listings", extra).await;

    assert_eq!(complete(end), 10);
    assert_eq!(
        labels(&pages),
        [
            "mobile-devices page 0",
            "mobile-devices page 1",
            "mobile-devices page 2",
            "computers-inventory page 0",
            "computers-inventory page 1",
            "computers-inventory page 2"
        ]
    );
    let expected: Vec<String> = (1..=5)
        .map(|id| format!("mobile:{id}"))
        .chain((1..=5).map(|id| format!("computer:{id}")))
        .collect();
    assert_eq!(external_ids(&pages), expected);
    assert!(pages.iter().all(|page| page.announced_total == Some(10)));
    server.verify().await;
}

#[tokio::test]
async fn a_page_short_of_the_announced_total_fails_naming_the_page() {
    let server = mobile_server().await;
    for page in 0..3 {
        mobile_page(page)
            .respond_with(ipad_page(5000, page * 1000 + 1..=(page + 1) * 1000))
            .mount(&server)
            .await;
    }
    mobile_page(3)
        .respond_with(ipad_page(5000, []))
        .mount(&server)
        .await;
    mobile_page(4)
        .respond_with(ipad_page(5000, 4001..=5000))
        .mount(&server)
        .await;

    let (pages, end) = fetch(&server, "short", json!({})).await;

    assert_eq!(pages.len(), 3, "pages before the short one are delivered");
    let cause = failure_at(end, "mobile-devices page 3");
    assert_eq!(
        cause,
        "page 3 of mobile-devices returned 0 records, 3,000 of 5,000 announced"
    );
}

#[tokio::test]
async fn records_seen_twice_while_paging_are_sent_once() {
    let server = mobile_server().await;
    mobile_page(0)
        .respond_with(ipad_page(4, [1, 2]))
        .mount(&server)
        .await;
    // A device was inserted before id 2 meanwhile, pushing 2 onto page 1.
    mobile_page(1)
        .respond_with(ipad_page(4, [2, 3]))
        .mount(&server)
        .await;

    let (pages, end) = fetch(&server, "dedupe", json!({ "page_size": 2 })).await;

    assert_eq!(complete(end), 4);
    assert_eq!(external_ids(&pages), ["mobile:1", "mobile:2", "mobile:3"]);
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after() {
    let server = mobile_server().await;
    let throttled = ResponseTemplate::new(429).insert_header("Retry-After", "1");
    mount_first_page_after_failures(&server, throttled, 1).await;

    let started = Instant::now();
    let (pages, end) = fetch(&server, "retry-after", json!({})).await;
    let elapsed = started.elapsed();

    assert_eq!(complete(end), 1);
    assert_eq!(external_ids(&pages), ["mobile:1"]);
    assert_eq!(hits(&server, MOBILE_PATH).await.len(), 2);
    // The backoff is configured to at most 20 ms, so only the header explains a 1 s wait.
    assert!(elapsed >= Duration::from_secs(1), "waited only {elapsed:?}");
    server.verify().await;
}

#[tokio::test]
async fn service_unavailable_is_retried_with_backoff() {
    let server = mobile_server().await;
    let unavailable = ResponseTemplate::new(503).set_body_string("maintenance");
    mount_first_page_after_failures(&server, unavailable, 2).await;

    let (pages, end) = fetch(&server, "retry-503", json!({})).await;

    assert_eq!(complete(end), 1);
    assert_eq!(external_ids(&pages), ["mobile:1"]);
    server.verify().await;
}

#[tokio::test]
async fn server_errors_fail_after_the_configured_attempts() {
    let server = mobile_server().await;
    mount_first_page(
        &server,
        ResponseTemplate::new(500).set_body_string("{\"httpStatus\":500}"),
        3,
    )
    .await;

    let (_, end) = fetch(&server, "exhausted", json!({ "retry_max_attempts": 3 })).await;

    let cause = failure_at(end, "mobile-devices page 0");
    assert!(cause.contains("HTTP 500"), "{cause}");
    assert!(cause.contains("after 3 attempts"), "{cause}");
    assert!(cause.contains("page=0"), "{cause}");
    server.verify().await;
}

#[tokio::test]
async fn forbidden_is_not_retried_and_names_the_privilege() {
    let server = mobile_server().await;
    mount_first_page(
        &server,
        ResponseTemplate::new(403).set_body_json(json!({
            "httpStatus": 403,
            "errors": [{ "code": "INVALID_PRIVILEGE", "description": "Forbidden" }]
        })),
        1,
    )
    .await;

    let (_, end) = fetch(&server, "forbidden", json!({})).await;

    let failure = failed(end);
    assert!(failure.cause.contains("403"), "{failure}");
    assert!(failure.cause.contains("INVALID_PRIVILEGE"), "{failure}");
    assert!(failure.cause.contains("Read Mobile Devices"), "{failure}");
    server.verify().await;
}

#[tokio::test]
async fn not_found_on_mobile_devices_is_not_retried() {
    let server = mobile_server().await;
    mount_first_page(&server, ResponseTemplate::new(404), 1).await;

    let (_, end) = fetch(&server, "not-found", json!({})).await;

    assert!(failed(end).cause.contains("404"));
    server.verify().await;
}

#[tokio::test]
async fn malformed_json_fails_naming_the_page() {
    let server = mobile_server().await;
    mobile_page(0)
        .respond_with(ipad_page(2, [1]))
        .mount(&server)
        .await;
    mobile_page(1)
        .respond_with(
            ResponseTemplate::new(200).set_body_string("{\"totalCount\": 2, \"results\": [{"),
        )
        .mount(&server)
        .await;

    let (pages, end) = fetch(&server, "bad-json", json!({ "page_size": 1 })).await;

    assert_eq!(external_ids(&pages), ["mobile:1"]);
    let cause = failure_at(end, "mobile-devices page 1");
    assert!(
        cause.starts_with("page 1 of mobile-devices is malformed: invalid JSON"),
        "{cause}"
    );
}

#[tokio::test]
async fn a_page_without_results_fails_naming_the_page() {
    let server = mobile_server().await;
    mobile_page(0)
        .respond_with(json_response(json!({ "totalCount": 3 })))
        .mount(&server)
        .await;

    let (_, end) = fetch(&server, "no-results", json!({})).await;

    let cause = failure_at(end, "mobile-devices page 0");
    assert_eq!(cause, "page 0 of mobile-devices is malformed: no `results`");
}

#[tokio::test]
async fn a_record_without_its_id_fails_naming_the_page() {
    let server = computer_server().await;
    computers_request("v4")
        .respond_with(page_response(
            2,
            vec![
                json!({ "id": "1" }),
                json!({ "general": { "name": "no id" } }),
            ],
        ))
        .mount(&server)
        .await;

    let (pages, end) = fetch(&server, "no-id", computers_only()).await;

    assert!(pages.is_empty(), "a broken page is not sent in part");
    let cause = failure_at(end, "computers-inventory page 0");
    assert_eq!(
        cause,
        "page 0 of computers-inventory is malformed: a record has no `id`"
    );
}

#[tokio::test]
async fn computers_inventory_falls_back_from_v4_to_v3_on_404() {
    let server = computer_server().await;
    computers_request("v4")
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    computers_request("v3")
        .and(query_param("sort", "id:asc"))
        .and(query_param("page", "0"))
        .respond_with(page_response(
            1,
            vec![json!({ "id": "42", "hardware": { "model": "iMac (24-inch, M1, 2021)" } })],
        ))
        .expect(1)
        .mount(&server)
        .await;
    computers_request("v1")
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;

    let (pages, end) = fetch(&server, "fallback", computers_only()).await;

    assert_eq!(complete(end), 1);
    assert_eq!(external_ids(&pages), ["computer:42"]);
    assert_eq!(pages[0].records[0].category, DeviceCategory::Desktop);
    assert_eq!(
        sections(&server, "/api/v3/computers-inventory").await,
        [
            "GENERAL",
            "HARDWARE",
            "USER_AND_LOCATION",
            "PURCHASING",
            "OPERATING_SYSTEM"
        ]
    );
    server.verify().await;
}

/// The mobile device of docs/vendors/jamf-pro.md#example-mobile-device, verbatim.
fn example_mobile_device() -> Value {
    json!({
      "mobileDeviceId": "17",
      "deviceType": "iOS",
      "general": {
        "udid": "00008030-001A2B3C4D5E6F70",
        "displayName": "GS-Lindenweg-iPad-017",
        "assetTag": "INV-2023-0417",
        "siteId": "-1",
        "lastInventoryUpdateDate": "2025-03-04T07:12:44.512Z",
        "osVersion": "17.6.1",
        "osBuild": "21G93",
        "ipAddress": "10.20.30.41",
        "managed": true,
        "supervised": true,
        "deviceOwnershipType": "Institutional",
        "lastEnrolledDate": "2023-09-01T08:02:11.000Z",
        "mdmProfileExpirationDate": "2025-09-01T08:02:11.000Z",
        "timeZone": "Europe/Berlin",
        "extensionAttributes": []
      },
      "hardware": {
        "capacityMb": 61035,
        "availableSpaceMb": 40122,
        "usedSpacePercentage": 34,
        "batteryLevel": 87,
        "serialNumber": "DMPXK1ABCDEF",
        "wifiMacAddress": "a4:83:e7:12:34:56",
        "bluetoothMacAddress": "a4:83:e7:12:34:57",
        "model": "iPad (9th generation)",
        "modelIdentifier": "iPad12,1",
        "modelNumber": "MK2K3FD",
        "extensionAttributes": []
      },
      "userAndLocation": {
        "username": "lea.schulz",
        "realName": "Lea Schulz",
        "emailAddress": "lea.schulz@gs-lindenweg.example.de",
        "position": "",
        "phoneNumber": "",
        "departmentId": "-1",
        "buildingId": "3",
        "room": "R 104",
        "building": "Hauptgebäude",
        "department": null,
        "extensionAttributes": []
      },
      "purchasing": {
        "purchased": true,
        "leased": false,
        "poNumber": "BE-2023-0815",
        "vendor": "Systemhaus Beispiel GmbH",
        "appleCareId": "",
        "purchasePrice": "329.00",
        "purchasingAccount": "DigitalPakt",
        "poDate": "2023-08-15T00:00:00.000Z",
        "warrantyExpiresDate": "2026-08-14T00:00:00.000Z",
        "leaseExpiresDate": null,
        "lifeExpectancy": 5,
        "purchasingContact": "",
        "extensionAttributes": []
      }
    })
}

/// The computer of docs/vendors/jamf-pro.md#example-computer, verbatim.
fn example_computer() -> Value {
    json!({
      "id": "42",
      "udid": "5C3B1D2E-7A8F-4B6C-9D0E-1F2A3B4C5D6E",
      "general": {
        "name": "GS-Lindenweg-MB-003",
        "lastIpAddress": "10.20.31.17",
        "platform": "Mac",
        "assetTag": "INV-2022-0103",
        "supervised": true,
        "reportDate": "2025-03-03T15:40:02.000Z",
        "lastContactTime": "2025-03-04T06:58:13.000Z",
        "lastEnrolledDate": "2022-10-10T09:14:55.000Z",
        "managementId": "0b6f3c1e-8d47-4e2a-9c55-2f1e7d3a9b10",
        "site": { "id": "-1", "name": "None" },
        "remoteManagement": { "managed": true, "managementUsername": "" },
        "enrolledViaAutomatedDeviceEnrollment": true
      },
      "hardware": {
        "make": "Apple",
        "model": "MacBook Air (M2, 2022)",
        "modelIdentifier": "Mac14,2",
        "serialNumber": "C02ABC123XYZ",
        "macAddress": "3c:22:fb:00:11:22",
        "totalRamMegabytes": 8192,
        "appleSilicon": true
      },
      "userAndLocation": {
        "username": "k.meyer", "realname": "Katrin Meyer",
        "email": "k.meyer@gs-lindenweg.example.de", "position": "Lehrkraft",
        "phone": "", "departmentId": "-1", "buildingId": "3", "room": "Lehrerzimmer"
      },
      "purchasing": {
        "leased": false, "purchased": true, "poNumber": "BE-2022-0412",
        "poDate": "2022-09-20", "vendor": "Systemhaus Beispiel GmbH",
        "warrantyDate": "2025-09-19", "appleCareId": "", "leaseDate": null,
        "purchasePrice": "1099.00", "lifeExpectancy": 5,
        "purchasingAccount": "", "purchasingContact": "", "extensionAttributes": []
      },
      "operatingSystem": { "name": "macOS", "version": "14.6.1", "build": "23G93" }
    })
}

fn date(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month, day)
}

fn text(value: &str) -> Option<String> {
    Some(value.to_string())
}

#[tokio::test]
async fn the_documented_example_payloads_map_field_by_field() {
    let server = mobile_server().await;
    mount_buildings(&server).await;
    mobile_page(0)
        .respond_with(page_response(1, vec![example_mobile_device()]))
        .mount(&server)
        .await;
    computers_request("v4")
        .respond_with(page_response(1, vec![example_computer()]))
        .mount(&server)
        .await;

    let (pages, end) = fetch(&server, "examples", json!({ "include_computers": true })).await;

    assert_eq!(complete(end), 2);
    assert_eq!(
        labels(&pages),
        ["mobile-devices page 0", "computers-inventory page 0"]
    );
    assert!(pages.iter().all(|page| page.announced_total == Some(2)));

    let expected_ipad = DeviceRecord {
        external_id: "mobile:17".into(),
        category: DeviceCategory::Tablet,
        name: text("GS-Lindenweg-iPad-017"),
        asset_tag: text("INV-2023-0417"),
        serial_number: text("DMPXK1ABCDEF"),
        udid: text("00008030-001A2B3C4D5E6F70"),
        imei: None,
        wifi_mac: text("a4:83:e7:12:34:56"),
        manufacturer: text("Apple"),
        model: text("iPad (9th generation)"),
        model_identifier: text("iPad12,1"),
        os_name: text("iPadOS"),
        os_version: text("17.6.1"),
        location: LocationHint {
            school: None,
            building: text("Hauptgebäude"),
            room: text("R 104"),
        },
        purchase: PurchaseInfo {
            order_number: text("BE-2023-0815"),
            purchase_date: date(2023, 8, 15),
            supplier: text("Systemhaus Beispiel GmbH"),
            price: Some(Decimal::from_str("329.00").unwrap()),
            currency: None,
            warranty_end: date(2026, 8, 14),
            life_expectancy_years: Some(5),
            purchasing_account: text("DigitalPakt"),
        },
        user: UserHint {
            username: text("lea.schulz"),
            real_name: text("Lea Schulz"),
            email: text("lea.schulz@gs-lindenweg.example.de"),
        },
        problems: Vec::new(),
        payload: example_mobile_device().to_string(),
    };
    assert_eq!(pages[0].records, [expected_ipad]);

    let expected_mac = DeviceRecord {
        external_id: "computer:42".into(),
        category: DeviceCategory::Laptop,
        name: text("GS-Lindenweg-MB-003"),
        asset_tag: text("INV-2022-0103"),
        serial_number: text("C02ABC123XYZ"),
        udid: text("5C3B1D2E-7A8F-4B6C-9D0E-1F2A3B4C5D6E"),
        imei: None,
        wifi_mac: text("3c:22:fb:00:11:22"),
        manufacturer: text("Apple"),
        model: text("MacBook Air (M2, 2022)"),
        model_identifier: text("Mac14,2"),
        os_name: text("macOS"),
        os_version: text("14.6.1"),
        location: LocationHint {
            // Site -1 is Jamf's "None", not a school called "None".
            school: None,
            building: text("Hauptgebäude"),
            room: text("Lehrerzimmer"),
        },
        purchase: PurchaseInfo {
            order_number: text("BE-2022-0412"),
            purchase_date: date(2022, 9, 20),
            supplier: text("Systemhaus Beispiel GmbH"),
            price: Some(Decimal::from_str("1099.00").unwrap()),
            currency: None,
            warranty_end: date(2025, 9, 19),
            life_expectancy_years: Some(5),
            purchasing_account: None,
        },
        user: UserHint {
            username: text("k.meyer"),
            real_name: text("Katrin Meyer"),
            email: text("k.meyer@gs-lindenweg.example.de"),
        },
        problems: Vec::new(),
        payload: example_computer().to_string(),
    };
    assert_eq!(pages[1].records, [expected_mac]);
}

#[tokio::test]
async fn schools_come_from_sites_or_buildings_as_configured() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    Mock::given(method("GET"))
        .and(path("/api/v1/sites"))
        .respond_with(json_response(json!([
            { "id": "1", "name": "Gymnasium Am Park" },
            { "id": "2", "name": "GS Lindenweg" }
        ])))
        .expect(1)
        .mount(&server)
        .await;
    let mut first = ipad(1);
    first["general"]["siteId"] = json!("2");
    let mut second = ipad(2);
    second["general"]["siteId"] = json!("1");
    mobile_page(0)
        .respond_with(page_response(2, vec![first]))
        .mount(&server)
        .await;
    mobile_page(1)
        .respond_with(page_response(2, vec![second]))
        .mount(&server)
        .await;

    let (pages, end) = fetch(&server, "sites", json!({ "page_size": 1 })).await;

    assert_eq!(complete(end), 2);
    let schools: Vec<Option<&str>> = pages
        .iter()
        .flat_map(|page| &page.records)
        .map(|record| record.location.school.as_deref())
        .collect();
    assert_eq!(schools, [Some("GS Lindenweg"), Some("Gymnasium Am Park")]);
    server.verify().await;

    let server = computer_server().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/sites"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    computers_request("v4")
        .respond_with(page_response(1, vec![example_computer()]))
        .mount(&server)
        .await;
    let by_building = json!({
        "school_from": "building", "include_computers": true, "include_mobile_devices": false
    });

    let (pages, end) = fetch(&server, "buildings", by_building).await;

    assert_eq!(complete(end), 1);
    assert_eq!(
        pages[0].records[0].location.school.as_deref(),
        Some("Hauptgebäude")
    );
    server.verify().await;
}

#[tokio::test]
async fn an_invalid_date_becomes_a_problem_not_a_dropped_device() {
    let server = mobile_server().await;
    let mut device = example_mobile_device();
    device["purchasing"]["warrantyExpiresDate"] = json!("2026-02-30T00:00:00.000Z");
    mobile_page(0)
        .respond_with(page_response(1, vec![device]))
        .mount(&server)
        .await;

    let (pages, end) = fetch(&server, "bad-date", json!({})).await;

    assert_eq!(complete(end), 1);
    let record = &pages[0].records[0];
    assert_eq!(record.external_id, "mobile:17");
    assert_eq!(record.purchase.warranty_end, None);
    assert_eq!(record.purchase.purchase_date, date(2023, 8, 15));
    assert_eq!(
        record.problems,
        ["mobile device 17: purchasing.warrantyExpiresDate \"2026-02-30T00:00:00.000Z\" is not a date"]
    );
}

#[tokio::test]
async fn secrets_stay_out_of_debug_output_and_error_texts() {
    let server = MockServer::start().await;
    // A careless server echoing the request back must not leak the secret into our errors.
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(401).set_body_string(format!(
            "{{\"error\":\"invalid_client\",\"client_secret\":\"{SECRET}\"}}"
        )))
        .expect(1)
        .mount(&server)
        .await;

    let jamf = connector(&server, "secrets", json!({}));
    let debug = format!("{jamf:?}");
    assert!(debug.contains("bestand-test"), "{debug}");
    assert!(!debug.contains(SECRET), "{debug}");
    let (pages, end) = collect(jamf).await;

    assert!(pages.is_empty());
    let failure = failed(end);
    assert!(
        failure.cause.contains("rejected the credentials"),
        "{failure}"
    );
    assert!(failure.cause.contains("invalid_client"), "{failure}");
    assert!(!failure.to_string().contains(SECRET), "{failure}");
    assert!(!format!("{failure:?}").contains(SECRET), "{failure:?}");
    server.verify().await;

    let missing =
        json!({ "client_secret_file": null, "client_secret_env": "BESTAND_TEST_UNSET_SECRET" });
    let error = JamfPro::new(config(&server, "secrets-missing", missing), "jamf-test")
        .expect_err("an unset variable is an error");
    assert_eq!(
        error.to_string(),
        "`client_secret_env`: environment variable BESTAND_TEST_UNSET_SECRET is not set"
    );
    let empty_file = json!({ "client_secret_file": secret_file("secrets-empty", "\n") });
    let error = JamfPro::new(
        config(&server, "secrets-empty-config", empty_file),
        "jamf-test",
    )
    .expect_err("an empty file is an error");
    assert!(
        error.to_string().contains("`client_secret_file`"),
        "{error}"
    );
    assert!(error.to_string().contains("is empty"), "{error}");
}
