//! The Zammad connector against wiremock (the protocol edges of docs/vendors/zammad.md: token
//! header, paging to the end, the incremental search, expanded names, states, merges, failures,
//! write-back) and against the Zammad mock (whole reads, an incremental read after tickets
//! changed, faults); and a ticket run that writes its device links back (app's
//! `write_back_tickets`, against PostgreSQL).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bestand_app::sources::{run_ticket_source, write_back_tickets};
use bestand_connectors::zammad::{Zammad, ZammadConfig};
use bestand_connectors::{
    spawn_ticket_fetch, DeviceLinkText, TicketConnector, TicketWriteBack, WriteBackOutcome,
};
use bestand_core::access::{Actor, Scope};
use bestand_core::model::SyncStatus;
use bestand_core::store::SourceRef;
use bestand_core::sync::{NoProgress, TicketSyncOptions};
use bestand_mocks::zammad::{ZammadMock, ZammadMockConfig, DEFAULT_TOKEN};
use bestand_mocks::PageFault;
use bestand_model::ticket::{
    AssetField, TicketItem, TicketPage, TicketRead, TicketRecord, TicketState,
};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support;

const TOKEN: &str = "Zammad-Token+Geheim/4711";

/// Writes the token to a per-test file (setting environment variables would race).
fn token_file(test: &str, token: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "bestand-zammad-{}-{test}.token",
        std::process::id()
    ));
    std::fs::write(&path, format!("{token}\n")).expect("write token file");
    path
}

fn connector_for(url: &str, test: &str, token: &str, extra: Value) -> Zammad {
    let mut value = json!({
        "url": url,
        "token_file": token_file(test, token),
        "asset_fields": ["inventarnummer", "seriennummer"],
        "retry_base_ms": 5,
        "retry_cap_ms": 20,
    });
    let object = value.as_object_mut().expect("object");
    for (key, entry) in extra.as_object().expect("extra is an object") {
        object.insert(key.clone(), entry.clone());
    }
    let config: ZammadConfig = serde_json::from_value(value).expect("valid test config");
    Zammad::new(config, "zammad-test").expect("connector")
}

fn connector(server: &MockServer, test: &str, extra: Value) -> Zammad {
    connector_for(&server.uri(), test, TOKEN, extra)
}

/// Every page and the end marker of one read.
async fn read(
    connector: Arc<dyn TicketConnector>,
    read: TicketRead,
) -> (Vec<TicketPage>, TicketItem) {
    let mut receiver = spawn_ticket_fetch(connector, read);
    let mut pages = Vec::new();
    let run = async {
        loop {
            match receiver
                .recv()
                .await
                .expect("channel closed without end marker")
            {
                TicketItem::Page(page) => pages.push(page),
                end => return end,
            }
        }
    };
    let end = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the read did not end within 60 s");
    (pages, end)
}

fn full() -> TicketRead {
    TicketRead::default()
}

fn since(at: &str) -> TicketRead {
    TicketRead {
        updated_since: Some(at.parse::<DateTime<Utc>>().expect("time")),
    }
}

fn complete(end: TicketItem) -> u64 {
    match end {
        TicketItem::Complete { reported_total } => reported_total,
        other => panic!("expected Complete, got {other:?}"),
    }
}

/// The failure's page and cause.
fn failure(end: TicketItem) -> (Option<String>, String) {
    match end {
        TicketItem::Failed(failure) => (failure.page, failure.cause),
        other => panic!("expected Failed, got {other:?}"),
    }
}

fn records(pages: &[TicketPage]) -> Vec<&TicketRecord> {
    pages.iter().flat_map(|page| &page.records).collect()
}

/// An expanded ticket as Zammad renders it (docs/vendors/zammad.md#tickets), with a customer
/// who must never reach the records.
fn ticket(id: u64, state: &str, updated_at: &str) -> Value {
    json!({
        "id": id, "number": format!("{}", 31000 + id), "title": format!("Ticket {id}"),
        "group_id": 4, "state_id": 2, "organization_id": 3, "owner_id": 5, "customer_id": 77,
        "group": "Dienstleister::Muster IT GmbH", "organization": "Gymnasium am Park",
        "state": state, "priority": "3 high", "owner": "techniker@muster-it.de",
        "customer": "lena.schmidt@schule.example", "created_by": "lena.schmidt@schule.example",
        "updated_by": "techniker@muster-it.de",
        "created_at": "2026-03-02T07:15:00.000Z", "updated_at": updated_at,
        "first_response_at": "2026-03-02T07:45:00.000Z",
        "first_response_escalation_at": null,
        "close_at": null, "close_escalation_at": "2026-03-05T07:15:00.000Z",
        "inventarnummer": "MS-00042", "seriennummer": null,
        "article_ids": [1, 2],
    })
}

/// A ticket a search answer holds: id, state, and the time of its update on 2 March (HH:MM).
type Found = (u64, &'static str, &'static str);

fn tickets(ids: std::ops::RangeInclusive<u64>) -> Value {
    Value::Array(
        ids.map(|id| ticket(id, "open", "2026-03-02T09:00:00.000Z"))
            .collect(),
    )
}

/// The answer of `GET /api/v1/ticket_states?expand=true` with one state of the authority's own.
async fn mount_states(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/api/v1/ticket_states"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            { "id": 1, "name": "new", "state_type": "new" },
            { "id": 8, "name": "wartet auf Dienstleister", "state_type": "pending action" },
        ])))
        .mount(server)
        .await;
}

fn list_page(page: u64, per_page: u64) -> wiremock::MockBuilder {
    Mock::given(method("GET"))
        .and(path("/api/v1/tickets"))
        .and(query_param("expand", "true"))
        .and(query_param("page", page.to_string()))
        .and(query_param("per_page", per_page.to_string()))
}

#[tokio::test]
async fn the_token_goes_in_the_token_header_and_never_into_errors_or_debug() {
    let server = MockServer::start().await;
    mount_states(&server).await;
    let expected = format!("Token token={TOKEN}");
    list_page(1, 100)
        .and(header("authorization", expected.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(tickets(1..=3)))
        .expect(1)
        .mount(&server)
        .await;
    list_page(2, 100)
        .and(header("authorization", expected.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    let zammad = connector(&server, "header", json!({}));
    assert!(!format!("{zammad:?}").contains("Geheim"));
    let (pages, end) = read(Arc::new(zammad), full()).await;
    assert_eq!(complete(end), 3);
    assert_eq!(records(&pages).len(), 3);

    // A wrong token: Zammad answers 401 (and this server echoes the header back).
    let server = MockServer::start().await;
    mount_states(&server).await;
    let echoed = format!("{{\"error\":\"Authentication failed for {TOKEN}\"}}");
    Mock::given(method("GET"))
        .and(path("/api/v1/tickets"))
        .respond_with(ResponseTemplate::new(401).set_body_string(echoed))
        .mount(&server)
        .await;
    let (_, end) = read(
        Arc::new(connector(&server, "header-401", json!({}))),
        full(),
    )
    .await;
    let (page, cause) = failure(end);
    assert_eq!(page.as_deref(), Some("tickets page 1"));
    assert!(cause.contains("rejected the access token"), "{cause}");
    assert!(cause.contains("Token Access"), "{cause}");
    assert!(!cause.contains("Geheim"), "{cause}");
}

#[tokio::test]
async fn a_full_read_pages_to_the_end_and_a_short_page_that_is_not_the_last_fails() {
    let server = MockServer::start().await;
    mount_states(&server).await;
    // 2 + 2 + 1 tickets: the short third page ends the read, the empty fourth confirms it.
    list_page(1, 2)
        .respond_with(ResponseTemplate::new(200).set_body_json(tickets(1..=2)))
        .mount(&server)
        .await;
    list_page(2, 2)
        .respond_with(ResponseTemplate::new(200).set_body_json(tickets(3..=4)))
        .mount(&server)
        .await;
    list_page(3, 2)
        .respond_with(ResponseTemplate::new(200).set_body_json(tickets(5..=5)))
        .mount(&server)
        .await;
    list_page(4, 2)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(1..)
        .mount(&server)
        .await;
    let zammad = connector(
        &server,
        "paging",
        json!({ "per_page": 2, "max_concurrency": 1 }),
    );
    let (pages, end) = read(Arc::new(zammad), full()).await;
    assert_eq!(complete(end), 5);
    let ids: Vec<&str> = records(&pages)
        .iter()
        .map(|r| r.external_id.as_str())
        .collect();
    assert_eq!(ids, ["1", "2", "3", "4", "5"]);
    assert_eq!(pages[2].label, "tickets page 3");

    // A server that pages by 1 although 2 were asked for: page 1 looks short, page 2 is not
    // empty, so the read fails instead of stopping after one ticket.
    let server = MockServer::start().await;
    mount_states(&server).await;
    for page in 1..=3u64 {
        list_page(page, 2)
            .respond_with(ResponseTemplate::new(200).set_body_json(tickets(page..=page)))
            .mount(&server)
            .await;
    }
    let zammad = connector(&server, "short", json!({ "per_page": 2 }));
    let (_, end) = read(Arc::new(zammad), full()).await;
    let (page, cause) = failure(end);
    assert_eq!(page.as_deref(), Some("tickets page 1"));
    assert!(cause.contains("fewer than the 2 asked for"), "{cause}");
}

#[tokio::test]
async fn an_incremental_read_searches_from_the_watermark_sorted_by_update_time() {
    let server = MockServer::start().await;
    mount_states(&server).await;
    let search = |page: &str, since: &str| {
        Mock::given(method("GET"))
            .and(path("/api/v1/tickets/search"))
            .and(query_param("query", format!("updated_at:>={since}")))
            .and(query_param("sort_by", "updated_at"))
            .and(query_param("order_by", "asc"))
            .and(query_param("expand", "true"))
            .and(query_param("with_total_count", "true"))
            .and(query_param("per_page", "2"))
            .and(query_param("page", page.to_string()))
    };
    // Each request starts at the last update time read (keyset paging), so tickets at that
    // instant come again and are sent once; the fourth answer is short and ends the read.
    let answers: [(&str, &[Found], u64); 4] = [
        (
            r"2026-03-02T08\:00\:00.000Z",
            &[(1, "open", "08:00"), (2, "open", "08:30")],
            4,
        ),
        (
            r"2026-03-02T08\:30\:00.000Z",
            &[(2, "open", "08:30"), (3, "closed", "09:00")],
            3,
        ),
        (
            r"2026-03-02T09\:00\:00.000Z",
            &[(3, "closed", "09:00"), (4, "new", "09:10")],
            2,
        ),
        (r"2026-03-02T09\:10\:00.000Z", &[(4, "new", "09:10")], 1),
    ];
    for (from, found, total) in answers {
        let found: Vec<Value> = found
            .iter()
            .map(|(id, state, at)| ticket(*id, state, &format!("2026-03-02T{at}:00.000Z")))
            .collect();
        search("1", from)
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({ "records": found, "total_count": total })),
            )
            .expect(1)
            .mount(&server)
            .await;
    }
    let zammad = connector(&server, "incremental", json!({ "per_page": 2 }));
    let (pages, end) = read(Arc::new(zammad), since("2026-03-02T09:00:00+01:00")).await;
    assert_eq!(complete(end), 4);
    let ids: Vec<&str> = records(&pages)
        .iter()
        .map(|r| r.external_id.as_str())
        .collect();
    assert_eq!(
        ids,
        ["1", "2", "3", "4"],
        "each ticket once, in update order"
    );
    assert_eq!(pages[0].announced_total, Some(4));

    // `incremental = false` makes a read with a watermark a full read.
    let server = MockServer::start().await;
    mount_states(&server).await;
    list_page(1, 100)
        .respond_with(ResponseTemplate::new(200).set_body_json(tickets(1..=1)))
        .expect(1)
        .mount(&server)
        .await;
    list_page(2, 100)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    let zammad = connector(&server, "no-incremental", json!({ "incremental": false }));
    let (_, end) = read(Arc::new(zammad), since("2026-03-02T08:00:00Z")).await;
    assert_eq!(complete(end), 1);
}

#[tokio::test]
async fn a_search_that_ignores_the_watermark_or_loses_tickets_fails() {
    // A search answering a ticket older than the watermark did not apply the query.
    let server = MockServer::start().await;
    mount_states(&server).await;
    Mock::given(method("GET"))
        .and(path("/api/v1/tickets/search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([ticket(
            1,
            "open",
            "2026-01-01T00:00:00.000Z"
        ),])))
        .mount(&server)
        .await;
    let (_, end) = read(
        Arc::new(connector(&server, "ignored", json!({}))),
        since("2026-03-02T08:00:00Z"),
    )
    .await;
    let (page, cause) = failure(end);
    assert_eq!(page.as_deref(), Some("tickets/search request 1"));
    assert!(cause.contains("before the watermark"), "{cause}");

    // Fewer tickets than the search announced: the count does not add up.
    let server = MockServer::start().await;
    mount_states(&server).await;
    Mock::given(method("GET"))
        .and(path("/api/v1/tickets/search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "records": [ticket(1, "open", "2026-03-02T09:00:00.000Z")],
            "total_count": 3,
        })))
        .mount(&server)
        .await;
    let (_, end) = read(
        Arc::new(connector(&server, "count", json!({}))),
        since("2026-03-02T08:00:00Z"),
    )
    .await;
    let (_, cause) = failure(end);
    assert!(
        cause.contains("announced 3 tickets but 1 were read"),
        "{cause}"
    );
}

#[tokio::test]
async fn expanded_names_states_merges_and_asset_fields_map_and_no_customer_is_kept() {
    let server = MockServer::start().await;
    mount_states(&server).await;
    let mut merged = ticket(3, "merged", "2026-03-02T09:00:00.000Z");
    merged["close_at"] = json!("2026-03-02T08:59:00.000Z");
    list_page(1, 100)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            ticket(1, "pending reminder", "2026-03-02T09:00:00.000Z"),
            ticket(2, "wartet auf Dienstleister", "2026-03-02T09:00:00.000Z"),
            merged,
            ticket(4, "pending close", "2026-03-02T09:00:00.000Z"),
            ticket(5, "in Klärung", "2026-03-02T09:00:00.000Z"),
        ])))
        .mount(&server)
        .await;
    list_page(2, 100)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    // Ticket 3 was merged into ticket 2: it is the target of 2's `parent` link.
    Mock::given(method("GET"))
        .and(path("/api/v1/links"))
        .and(query_param("link_object", "Ticket"))
        .and(query_param("link_object_value", "3"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "links": [
                { "link_type": "normal", "link_object": "Ticket", "link_object_value": 9 },
                { "link_type": "parent", "link_object": "Ticket", "link_object_value": 2 },
            ],
            "assets": {},
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/tags"))
        .and(query_param("object", "Ticket"))
        .respond_with(|request: &Request| {
            let id = request
                .url
                .query_pairs()
                .find(|(key, _)| key == "o_id")
                .map(|(_, value)| value.to_string())
                .unwrap_or_default();
            ResponseTemplate::new(200).set_body_json(json!({ "tags": ["wlan", format!("t{id}")] }))
        })
        .expect(5)
        .mount(&server)
        .await;
    let zammad = connector(&server, "mapping", json!({ "read_tags": true }));
    let (pages, end) = read(Arc::new(zammad), full()).await;
    assert_eq!(complete(end), 5);
    let records = records(&pages);
    let states: Vec<TicketState> = records.iter().map(|r| r.state).collect();
    assert_eq!(
        states,
        [
            TicketState::Pending,
            TicketState::Pending,
            TicketState::Merged,
            TicketState::Pending,
            TicketState::New
        ]
    );
    assert!(
        records[4].problems[0].contains("in Klärung"),
        "{:?}",
        records[4].problems
    );
    let first = records[0];
    assert_eq!(first.source_state, "pending reminder");
    assert_eq!(
        first.group.as_deref(),
        Some("Dienstleister::Muster IT GmbH")
    );
    assert_eq!(first.organization.as_deref(), Some("Gymnasium am Park"));
    assert_eq!(first.owner.as_deref(), Some("techniker@muster-it.de"));
    assert_eq!(first.priority.as_deref(), Some("3 high"));
    assert_eq!(first.number, "31001");
    assert_eq!(first.tags, ["wlan", "t1"]);
    assert_eq!(
        first.first_response_at.map(|at| at.to_rfc3339()),
        Some("2026-03-02T07:45:00+00:00".to_string())
    );
    assert_eq!(
        first.close_due_at.map(|at| at.to_rfc3339()),
        Some("2026-03-05T07:15:00+00:00".to_string())
    );
    assert_eq!(
        first.asset_fields,
        [AssetField {
            field: "inventarnummer".into(),
            value: "MS-00042".into()
        }]
    );
    assert_eq!(first.customer_role, None);
    assert_eq!(records[2].merged_into.as_deref(), Some("2"));
    assert_eq!(
        records[2].closed_at.map(|at| at.to_rfc3339()),
        Some("2026-03-02T08:59:00+00:00".to_string())
    );
    let serialized = serde_json::to_string(&records).expect("serialize");
    assert!(!serialized.contains("lena"), "{serialized}");
    assert!(!serialized.contains("schule.example"), "{serialized}");
}

#[tokio::test]
async fn the_forwarding_time_is_read_from_the_history_of_tickets_in_a_providers_group() {
    let server = MockServer::start().await;
    mount_states(&server).await;
    // 1 and 2 are in the provider's group, 3 in the service desk's own.
    let mut desk = ticket(3, "open", "2026-03-02T09:00:00.000Z");
    desk["group"] = json!("Service Desk");
    list_page(1, 100)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            ticket(1, "open", "2026-03-02T09:00:00.000Z"),
            ticket(2, "open", "2026-03-02T09:00:00.000Z"),
            desk,
        ])))
        .mount(&server)
        .await;
    list_page(2, 100)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    // Ticket 1 went to the provider at 07:40, back to the desk at 08:10 and to the provider
    // again at 08:30 (its name as older versions write it, the last part only): forwarded at
    // 08:30. Ticket 2 was opened in the provider's group: forwarded when opened, 07:15.
    let change = |to: &str, at: &str| {
        json!({ "object": "Ticket", "type": "updated", "attribute": "group",
                "value_from": "x", "value_to": to, "created_at": at })
    };
    Mock::given(method("GET"))
        .and(path("/api/v1/ticket_history/1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "history": [
                { "object": "Ticket", "type": "created", "created_at": "2026-03-02T07:15:00.000Z" },
                change("Dienstleister::Muster IT GmbH", "2026-03-02T07:40:00.000Z"),
                change("Service Desk", "2026-03-02T08:10:00.000Z"),
                { "object": "Ticket", "type": "updated", "attribute": "priority",
                  "value_to": "3 high", "created_at": "2026-03-02T08:20:00.000Z" },
                change("Muster IT GmbH", "2026-03-02T08:30:00.000Z"),
            ],
            "assets": {},
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/ticket_history/2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "history": [
                { "object": "Ticket", "type": "created", "created_at": "2026-03-02T07:15:00.000Z" },
            ],
            "assets": {},
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/ticket_history/3"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let zammad = connector(
        &server,
        "forwarding",
        json!({ "forwarding_groups": ["dienstleister::muster it gmbh"] }),
    );
    let (pages, end) = read(Arc::new(zammad), full()).await;
    assert_eq!(complete(end), 3);
    let since: Vec<Option<String>> = records(&pages)
        .iter()
        .map(|r| r.group_since.map(|at| at.to_rfc3339()))
        .collect();
    assert_eq!(
        since,
        [
            Some("2026-03-02T08:30:00+00:00".to_string()),
            Some("2026-03-02T07:15:00+00:00".to_string()),
            None
        ]
    );

    // A history that cannot be read fails the read, naming the ticket: a run without the
    // forwarding time would count the provider's tickets wrongly.
    let broken = MockServer::start().await;
    mount_states(&broken).await;
    list_page(1, 100)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([ticket(
            1,
            "open",
            "2026-03-02T09:00:00.000Z"
        )])))
        .mount(&broken)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/ticket_history/1"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>"))
        .mount(&broken)
        .await;
    let zammad = connector(
        &broken,
        "forwarding-broken",
        json!({ "forwarding_groups": ["Dienstleister::Muster IT GmbH"] }),
    );
    let (_, end) = read(Arc::new(zammad), full()).await;
    let (_, cause) = failure(end);
    assert!(cause.contains("reading the history of ticket 1"), "{cause}");
}

#[tokio::test]
async fn a_malformed_page_fails_naming_it_and_throttling_is_retried() {
    let server = MockServer::start().await;
    mount_states(&server).await;
    // Page 1: two 429s with Retry-After, then the page; page 2: cut off mid-JSON.
    list_page(1, 2)
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "0")
                .set_body_json(json!({ "error": "Too Many Requests" })),
        )
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    list_page(1, 2)
        .respond_with(ResponseTemplate::new(200).set_body_json(tickets(1..=2)))
        .mount(&server)
        .await;
    list_page(2, 2)
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"[{"id": 3, "state": "op"#))
        .mount(&server)
        .await;
    list_page(3, 2)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    let zammad = connector(
        &server,
        "malformed",
        json!({ "per_page": 2, "max_concurrency": 1 }),
    );
    let (pages, end) = read(Arc::new(zammad), full()).await;
    let (page, cause) = failure(end);
    assert_eq!(page.as_deref(), Some("tickets page 2"));
    assert!(
        cause.contains("page 2 is malformed: invalid JSON"),
        "{cause}"
    );
    assert_eq!(
        records(&pages).len(),
        2,
        "page 1 came through after the 429s"
    );

    // A 422 with Zammad's error object names the cause.
    let server = MockServer::start().await;
    mount_states(&server).await;
    Mock::given(method("GET"))
        .and(path("/api/v1/tickets/search"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "error": "Invalid search query", "error_human": "Invalid search query"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let (_, end) = read(
        Arc::new(connector(&server, "422", json!({}))),
        since("2026-03-02T08:00:00Z"),
    )
    .await;
    let (_, cause) = failure(end);
    assert!(
        cause.contains("HTTP 422") && cause.contains("Invalid search query"),
        "{cause}"
    );
}

fn link() -> DeviceLinkText {
    DeviceLinkText {
        text: "Gerät MS-00042: iPad 10. Generation, Garantie bis 31.08.2027, ausgeliehen an: Schüler/in".into(),
        marker: "[bestand:device=42:v=3f2a]".into(),
    }
}

#[tokio::test]
async fn write_back_posts_an_internal_note_once_and_sets_an_attribute() {
    let server = MockServer::start().await;
    let expected = format!("Token token={TOKEN}");
    Mock::given(method("GET"))
        .and(path("/api/v1/ticket_articles/by_ticket/7"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            { "id": 13, "ticket_id": 7, "internal": false, "body": "Das iPad geht nicht." },
        ])))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/ticket_articles"))
        .and(header("authorization", expected.as_str()))
        .and(header("content-type", "application/json"))
        .and(body_partial_json(json!({
            "ticket_id": 7,
            "type": "note",
            "internal": true,
            "content_type": "text/plain",
            "body": format!("{}\n\n{}", link().text, link().marker),
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "id": 14 })))
        .expect(1)
        .mount(&server)
        .await;
    // The second time the note is there: nothing is posted.
    Mock::given(method("GET"))
        .and(path("/api/v1/ticket_articles/by_ticket/7"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            { "id": 14, "ticket_id": 7, "internal": true, "body": format!("{}\n\n{}", link().text, link().marker) },
        ])))
        .mount(&server)
        .await;
    let zammad = connector(&server, "note", json!({ "write_back": "note" }));
    assert_eq!(
        zammad.write_back("7", &link()).await,
        Ok(WriteBackOutcome::Written)
    );
    assert_eq!(
        zammad.write_back("7", &link()).await,
        Ok(WriteBackOutcome::AlreadyPresent)
    );
    let error = zammad.write_back("T-7", &link()).await.unwrap_err();
    assert!(error.to_string().contains("T-7"), "{error}");

    // Attribute mode: PUT the text into the configured attribute, unless it is there already.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/tickets/8"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": 8, "geraet": null })))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/api/v1/tickets/8"))
        .and(header("authorization", expected.as_str()))
        .and(body_partial_json(json!({ "geraet": link().text })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": 8 })))
        .expect(1)
        .mount(&server)
        .await;
    let zammad = connector(
        &server,
        "attribute",
        json!({ "write_back": "attribute", "write_back_attribute": "geraet" }),
    );
    assert_eq!(
        zammad.write_back("8", &link()).await,
        Ok(WriteBackOutcome::Written)
    );
    // Off: nothing is sent at all (the server has no routes for ticket 9).
    let off = connector(&server, "off", json!({}));
    assert_eq!(
        off.write_back("9", &link()).await,
        Ok(WriteBackOutcome::Disabled)
    );
    // So the app need not gather the links of an off source at all.
    assert!(!off.enabled());
    assert!(zammad.enabled());
}

fn mock_connector(mock: &ZammadMock, test: &str, extra: Value) -> Arc<Zammad> {
    Arc::new(connector_for(mock.base_url(), test, DEFAULT_TOKEN, extra))
}

#[tokio::test]
async fn the_mock_serves_every_ticket_and_an_incremental_read_finds_the_changed_ones() {
    // 450 tickets: 4 full pages of 100 and one of 50.
    let mock = ZammadMock::start(ZammadMockConfig::new(7, 450))
        .await
        .expect("mock");
    let zammad = mock_connector(
        &mock,
        "mock-full",
        json!({ "asset_fields": ["inventarnummer"] }),
    );
    let (pages, end) = read(zammad.clone(), full()).await;
    assert_eq!(complete(end), 450);
    let all = records(&pages);
    assert_eq!(all.len(), 450);
    // Every 20th ticket is merged into the one before it (ids 20, 40, ...: 22 of them).
    let merged: Vec<_> = all
        .iter()
        .filter(|r| r.state == TicketState::Merged)
        .collect();
    assert_eq!(merged.len(), 22);
    assert!(merged.iter().all(|r| {
        let id: u64 = r.external_id.parse().unwrap();
        r.merged_into == Some((id - 1).to_string())
    }));
    // The authority's own state maps by its type.
    assert_eq!(all[7].source_state, "wartet auf Dienstleister");
    assert_eq!(all[7].state, TicketState::Pending);
    assert!(all.iter().all(|r| r.problems.is_empty()));
    let with_tag = all.iter().filter(|r| !r.asset_fields.is_empty()).count();
    assert!(
        (100..250).contains(&with_tag),
        "{with_tag} of 450 carry an asset tag"
    );
    let serialized = serde_json::to_string(&all).expect("serialize");
    let customer = mock.ticket(1).expect("ticket 1")["customer"]
        .as_str()
        .expect("customer")
        .to_string();
    assert!(customer.contains('@'));
    assert!(
        !serialized.contains(&customer),
        "the customer {customer} was kept"
    );
    assert!(!serialized.contains("schule.musterstadt.de"));
    // Without `forwarding_groups` no history is read and no forwarding time is known.
    assert!(all.iter().all(|r| r.group_since.is_none()));
    assert_eq!(mock.request_counts().history, 0);

    // 30 tickets change; a read from the last update time before the change finds exactly them
    // (and the tickets updated at that very instant: the last one, hand-counted: 1).
    let watermark = mock.latest_update();
    let changed = mock.touch(30);
    let (pages, end) = read(
        zammad,
        TicketRead {
            updated_since: Some(watermark),
        },
    )
    .await;
    let read_ids: Vec<String> = records(&pages)
        .iter()
        .map(|r| r.external_id.clone())
        .collect();
    assert_eq!(complete(end), 31);
    assert_eq!(
        read_ids[0], "450",
        "the ticket at the watermark's instant is read again"
    );
    let expected: Vec<String> = changed.iter().map(u64::to_string).collect();
    assert_eq!(&read_ids[1..], expected.as_slice());
    assert!(records(&pages)[1..]
        .iter()
        .all(|r| r.state == TicketState::Closed || r.state == TicketState::Merged));
    assert!(mock.request_counts().search >= 1);
}

#[tokio::test]
async fn the_mock_tells_when_tickets_went_to_a_providers_group() {
    let mock = ZammadMock::start(ZammadMockConfig::new(11, 300))
        .await
        .expect("mock");
    let groups = [
        "Dienstleister::Muster IT GmbH",
        "Dienstleister::Schul-IT Nord",
    ];
    let zammad = mock_connector(
        &mock,
        "mock-forwarding",
        json!({ "forwarding_groups": groups }),
    );
    let (pages, end) = read(zammad, full()).await;
    assert_eq!(complete(end), 300);
    let all = records(&pages);
    let at_provider: Vec<_> = all
        .iter()
        .filter(|r| groups.contains(&r.group.as_deref().unwrap_or_default()))
        .collect();
    // One history request per ticket in a provider's group, none for the others.
    assert_eq!(mock.request_counts().history, at_provider.len() as u64);
    assert!(all
        .iter()
        .filter(|r| !groups.contains(&r.group.as_deref().unwrap_or_default()))
        .all(|r| r.group_since.is_none()));
    // The mock moves three in four of them 15 minutes to 10 hours after opening; the rest were
    // opened there.
    let moved = at_provider
        .iter()
        .filter(|r| {
            let since = r.group_since.expect("a forwarding time");
            let after = since - r.created_at;
            assert!(
                after >= chrono::Duration::zero() && after <= chrono::Duration::hours(10),
                "{:?}",
                r.external_id
            );
            since > r.created_at
        })
        .count();
    assert!(
        moved > 0 && moved < at_provider.len(),
        "{moved} of {} moved",
        at_provider.len()
    );
}

#[tokio::test]
async fn the_mock_faults_fail_the_read_or_are_retried() {
    let mock = ZammadMock::start(ZammadMockConfig::new(3, 250))
        .await
        .expect("mock");
    let zammad = mock_connector(&mock, "mock-faults", json!({ "max_concurrency": 1 }));
    // A burst of 429s and 503s is waited out.
    mock.faults().rate_limit_next(2, 0);
    mock.faults().server_errors_next(1, Some(503));
    let (_, end) = read(zammad.clone(), full()).await;
    assert_eq!(complete(end), 250);
    let counts = mock.request_counts();
    assert_eq!((counts.rate_limited, counts.server_errors), (2, 1));

    // A truncated body on listing page 2.
    mock.faults().set_malformed_page(Some(PageFault::mobile(1)));
    let (_, end) = read(zammad.clone(), full()).await;
    let (page, cause) = failure(end);
    assert_eq!(page.as_deref(), Some("tickets page 2"));
    assert!(cause.contains("malformed"), "{cause}");
    mock.faults().set_malformed_page(None);

    // The token stops working after a few requests: a clear credentials error.
    mock.faults().set_token_max_requests(Some(0));
    let (_, end) = read(zammad, full()).await;
    let (_, cause) = failure(end);
    assert!(cause.contains("rejected the access token"), "{cause}");
}

/// Musterstadt with an MDM, a directory and the Zammad source; iPad MS-00042 (warranty until
/// 31 August 2027) is lent to the pupil Lena Schmidt, whose name must never reach a ticket.
async fn lent_ipad(pool: &sqlx::PgPool) -> SourceRef {
    let clock = support::clock();
    let sources = support::musterstadt(pool, &["jamf", "zammad"]).await;
    let directory = support::directory_source(pool, "schulserver").await;
    let mut ipad = support::ipad("mobile:42", "SERIAL42");
    ipad.asset_tag = Some("MS-00042".into());
    ipad.model = Some("iPad (10. Generation)".into());
    ipad.purchase.warranty_end = chrono::NaiveDate::from_ymd_opt(2027, 8, 31);
    let report = support::sync_records(pool, &clock, &sources[0], vec![ipad]).await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    sqlx::query(
        "with p as (insert into person (authority_id, username, given_name, family_name, \
         first_seen_at, updated_at) values ($1, 'lena.schmidt', 'Lena', 'Schmidt', $3, $3) \
         returning person_id), \
         m as (insert into person_membership (authority_id, person_id, source_id, school_id, \
         role, class_name) select $1, person_id, $2, \
         (select school_id from school where school_number = '100001'), 'student', '4a' from p) \
         insert into loan (authority_id, device_id, person_id, school_id, state, handed_out_at, \
         handed_out_by, due_on, updated_at) select $1, d.device_id, p.person_id, d.school_id, \
         'active', $3, 'test', '2027-07-31', $3 from p, device d where d.asset_tag = 'MS-00042'",
    )
    .bind(directory.authority_id)
    .bind(directory.source_id)
    .bind(support::t0())
    .execute(pool)
    .await
    .expect("person, membership and loan");
    sources[1].clone()
}

/// One ticket run of `source` through `zammad` (a full read, so the listing answers), then the
/// write-back as `bestand sync` does it.
async fn run_and_write_back(
    pool: &sqlx::PgPool,
    source: &SourceRef,
    zammad: Arc<Zammad>,
) -> bestand_core::sync::SyncReport {
    let options = TicketSyncOptions {
        force_full: true,
        ..TicketSyncOptions::default()
    };
    let actor = Actor::Sync {
        source: source.name.clone(),
    };
    let connector: Arc<dyn TicketConnector> = zammad.clone();
    let mut report = run_ticket_source(
        pool,
        &Scope::All,
        &actor,
        source,
        connector,
        &options,
        &NoProgress,
    )
    .await
    .expect("run is recorded");
    write_back_tickets(pool, &Scope::All, source, &mut report, zammad.as_ref())
        .await
        .expect("write-back");
    report
}

/// A server listing ticket 7 (one page), which has no article yet; its articles are read
/// `article_reads` times.
async fn ticket_seven(article_reads: impl Into<wiremock::Times>) -> MockServer {
    let server = MockServer::start().await;
    mount_states(&server).await;
    list_page(1, 2)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([ticket(
            7,
            "open",
            "2026-03-02T09:00:00.000Z"
        )])))
        .mount(&server)
        .await;
    list_page(2, 2)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/ticket_articles/by_ticket/7"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(article_reads)
        .mount(&server)
        .await;
    server
}

fn write_back_connector(server: &MockServer, test: &str) -> Arc<Zammad> {
    let extra = json!({ "write_back": "note", "per_page": 2, "max_concurrency": 1 });
    Arc::new(connector(server, test, extra))
}

#[tokio::test]
async fn a_ticket_run_writes_the_device_link_back_once_naming_the_borrowers_role_only() {
    let db = support::test_db().await;
    let source = lent_ipad(&db.pool).await;
    // The articles are read once only, as the second run writes nothing.
    let server = ticket_seven(1).await;
    Mock::given(method("POST"))
        .and(path("/api/v1/ticket_articles"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "id": 14 })))
        .expect(1)
        .mount(&server)
        .await;
    let zammad = write_back_connector(&server, "wb-once");

    let report = run_and_write_back(&db.pool, &source, zammad.clone()).await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.counts.created, 1);
    let counts = report.write_back.expect("written back");
    assert_eq!(
        (counts.written, counts.already_present, counts.failed),
        (1, 0, 0)
    );
    let posted: Vec<Value> = server
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .filter(|request| request.method.as_str() == "POST")
        .map(|request| serde_json::from_slice(&request.body).expect("JSON body"))
        .collect();
    assert_eq!(posted.len(), 1);
    let note = &posted[0];
    assert_eq!(note["ticket_id"], 7);
    assert_eq!(note["internal"], true);
    assert_eq!(note["type"], "note");
    let body = note["body"].as_str().expect("body");
    assert!(
        body.contains(
            "Inventarnummer MS-00042 · iPad (10. Generation) · Garantie bis 31.08.2027 · \
             ausgeliehen an: Schüler/in"
        ),
        "{body}"
    );
    assert!(
        body.contains("[bestand:7:"),
        "the marker ends the note: {body}"
    );
    // The marker is a hash of random ids and may well contain "4a"; only the text counts.
    let text = body.split("[bestand:").next().unwrap_or_default();
    for name in ["Lena", "Schmidt", "lena.schmidt", "4a"] {
        assert!(
            !text.contains(name),
            "the note names the borrower ({name}): {body}"
        );
    }

    // Nothing changed: the ticket is unchanged, nothing is asked or posted (the mocks' `expect`).
    let again = run_and_write_back(&db.pool, &source, zammad).await;
    assert_eq!(again.status, SyncStatus::Succeeded, "{:?}", again.error);
    assert_eq!(again.counts.unchanged, 1);
    let counts = again.write_back.expect("write-back ran");
    assert_eq!(
        (counts.written, counts.already_present, counts.failed),
        (0, 0, 0)
    );
    server.verify().await;
}

#[tokio::test]
async fn a_failed_write_back_is_a_warning_of_a_successful_run() {
    let db = support::test_db().await;
    let source = lent_ipad(&db.pool).await;
    let server = ticket_seven(1).await;
    Mock::given(method("POST"))
        .and(path("/api/v1/ticket_articles"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "error": "Not authorized", "error_human": "Not authorized"
        })))
        .mount(&server)
        .await;
    let report =
        run_and_write_back(&db.pool, &source, write_back_connector(&server, "wb-fail")).await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    let counts = report.write_back.expect("write-back ran");
    assert_eq!(
        (counts.written, counts.already_present, counts.failed),
        (0, 0, 1)
    );
    let warning = report
        .warnings
        .iter()
        .find(|w| w.contains("writing the device link into ticket 7 failed"))
        .unwrap_or_else(|| panic!("no write-back warning in {:?}", report.warnings));
    assert!(warning.starts_with("ticket 31007:"), "{warning}");
    assert!(!warning.contains(TOKEN), "{warning}");
    // The ticket and its link are stored all the same.
    let (status, links): (String, i64) = sqlx::query_as(
        "select r.status, (select count(*) from ticket_device) from sync_run r \
         where r.sync_run_id = $1",
    )
    .bind(report.run_id)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), links), ("succeeded", 1));
}
