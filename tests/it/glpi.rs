//! The GLPI ticket connector against wiremock: the session's life (initSession with both tokens,
//! killSession at the end, also after a failure), `range` paging checked against
//! `Content-Range`, the incremental read newest first down to the watermark, statuses, local
//! times across summer time, `Item_Ticket` links with serial and inventory number, and the
//! errors (docs/vendors/glpi.md).

use std::sync::Arc;

use bestand_connectors::glpi::{Glpi, GlpiConfig};
use bestand_connectors::{spawn_ticket_fetch, TicketConnector};
use bestand_model::protocol::FetchFailure;
use bestand_model::ticket::{TicketItem, TicketPage, TicketRead, TicketRecord, TicketState};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

use crate::support::secret_file;

const APP_TOKEN: &str = "App-Token-Geheim-0815";
const USER_TOKEN: &str = "User-Token-Geheim-4711";
const SESSION: &str = "83af7e620c83a50a18d3eac2f6ed05a3";

fn connector(server: &MockServer, per_page: u32) -> Glpi {
    let config: GlpiConfig = serde_json::from_value(json!({
        "url": format!("{}/apirest.php", server.uri()),
        "app_token_file": secret_file(APP_TOKEN),
        "user_token_file": secret_file(USER_TOKEN),
        "per_page": per_page,
        "retry_base_ms": 5,
        "retry_cap_ms": 20,
    }))
    .expect("valid test config");
    Glpi::new(config, "glpi-test").expect("connector")
}

fn api(route: &str) -> MockBuilder {
    Mock::given(method("GET")).and(path(format!("/apirest.php/{route}")))
}

/// initSession answering only to both tokens, and killSession with the session's token; each
/// expected exactly once (wiremock checks when the server is dropped).
async fn session(server: &MockServer, kills: u64) {
    api("initSession")
        .and(header("App-Token", APP_TOKEN))
        .and(header(
            "Authorization",
            format!("user_token {USER_TOKEN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "session_token": SESSION })))
        .expect(1)
        .mount(server)
        .await;
    api("killSession")
        .and(header("Session-Token", SESSION))
        .and(header("App-Token", APP_TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(kills)
        .mount(server)
        .await;
}

/// A list answer as GLPI gives it: 206 while rows remain, `Content-Range` unless empty.
fn rows(first: u64, total: u64, rows: Vec<Value>) -> ResponseTemplate {
    let count = rows.len() as u64;
    let status = if count < total { 206 } else { 200 };
    let template = ResponseTemplate::new(status).set_body_json(Value::Array(rows));
    if count == 0 {
        template
    } else {
        template.insert_header(
            "Content-Range",
            format!("{first}-{}/{total}", first + count - 1).as_str(),
        )
    }
}

/// A list route of the session, for `range`.
fn list(route: &str, range: &str) -> MockBuilder {
    api(route)
        .and(header("Session-Token", SESSION))
        .and(header("App-Token", APP_TOKEN))
        .and(query_param("range", range))
}

/// Mounts `mock` answering `answer`, expected `times` times (checked when the server drops).
async fn serve(server: &MockServer, mock: MockBuilder, answer: ResponseTemplate, times: u64) {
    mock.respond_with(answer).expect(times).mount(server).await;
}

fn ticket(id: u64, status: u64, date: &str, date_mod: &str) -> Value {
    json!({
        "id": id, "entities_id": "Root entity > Musterstadt > GS Lindenweg",
        "name": format!("iPad defekt {id}"), "date": date, "date_mod": date_mod,
        "status": status, "priority": 3, "itilcategories_id": "Hardware > Tablet",
        "users_id_recipient": "Lea Schulz", "users_id_lastupdater": "Lea Schulz",
        "content": "Das iPad von Lea Schulz (7b) startet nicht.",
        "takeintoaccountdate": null, "takeintoaccount_delay_stat": 0,
        "solvedate": null, "closedate": null, "time_to_own": null, "time_to_resolve": null,
        "is_deleted": 0,
    })
}

async fn read(connector: Glpi, read: TicketRead) -> (Vec<TicketPage>, TicketItem) {
    let connector: Arc<dyn TicketConnector> = Arc::new(connector);
    let mut receiver = spawn_ticket_fetch(connector, read);
    let mut pages = Vec::new();
    let run = async {
        loop {
            match receiver.recv().await.expect("an end marker") {
                TicketItem::Page(page) => pages.push(page),
                end => return end,
            }
        }
    };
    let end = tokio::time::timeout(std::time::Duration::from_secs(30), run)
        .await
        .expect("read finished in time");
    (pages, end)
}

fn tickets(pages: &[TicketPage]) -> Vec<&TicketRecord> {
    pages.iter().flat_map(|page| &page.records).collect()
}

fn failure(end: TicketItem) -> FetchFailure {
    match end {
        TicketItem::Failed(failure) => failure,
        other => panic!("expected a failed read, got {other:?}"),
    }
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

#[tokio::test]
async fn a_full_read_pages_to_the_end_with_links_serials_and_local_times_in_one_session() {
    let server = MockServer::start().await;
    session(&server, 1).await;
    // Item_Ticket, two pages of two: ticket 1 links a computer, ticket 3 a monitor and a
    // software (no asset type: linked without serial), ticket 2 a computer in the trash.
    let link = |id: u64, ticket: u64, kind: &str, item: u64| json!({ "id": id, "tickets_id": ticket, "itemtype": kind, "items_id": item });
    serve(
        &server,
        list("Item_Ticket", "0-1"),
        rows(
            0,
            4,
            vec![link(1, 1, "Computer", 10), link(2, 3, "Monitor", 20)],
        ),
        1,
    )
    .await;
    serve(
        &server,
        list("Item_Ticket", "2-3"),
        rows(
            2,
            4,
            vec![link(3, 3, "Software", 5), link(4, 2, "Computer", 11)],
        ),
        1,
    )
    .await;
    serve(
        &server,
        list("Computer", "0-1"),
        rows(
            0,
            1,
            vec![json!({ "id": 10, "name": "GS-LW-NB-010",
            "serial": "PF2ABC10", "otherserial": "INV-2023-0010" })],
        ),
        1,
    )
    .await;
    serve(
        &server,
        list("Monitor", "0-1"),
        rows(
            0,
            1,
            vec![json!({ "id": 20, "name": "Monitor 20",
            "serial": "MON20", "otherserial": "" })],
        ),
        1,
    )
    .await;
    // Tickets by id: opened just before summer time began (2026-03-29 02:00 CET -> 03:00
    // CEST), changed just after, solved in summer time.
    let mut solved = ticket(3, 5, "2026-03-28 09:00:00", "2026-04-01 10:00:00");
    solved["solvedate"] = json!("2026-04-01 10:00:00");
    solved["closedate"] = json!("2026-04-02 08:00:00");
    solved["takeintoaccountdate"] = json!("2026-03-30 08:15:00");
    solved["time_to_resolve"] = json!("2026-04-03 16:00:00");
    list("Ticket", "0-1")
        .and(query_param("sort", "id"))
        .and(query_param("order", "ASC"))
        .and(query_param("expand_dropdowns", "true"))
        .respond_with(rows(
            0,
            3,
            vec![
                ticket(1, 1, "2026-03-29 01:30:00", "2026-03-29 03:30:00"),
                ticket(2, 2, "2026-01-05 10:00:00", "2026-01-05 10:00:00"),
            ],
        ))
        .expect(1)
        .mount(&server)
        .await;
    serve(&server, list("Ticket", "2-3"), rows(2, 3, vec![solved]), 1).await;

    let (pages, end) = read(connector(&server, 2), TicketRead::default()).await;
    assert!(
        matches!(end, TicketItem::Complete { reported_total: 3 }),
        "{end:?}"
    );
    assert_eq!(
        pages
            .iter()
            .map(|page| page.label.as_str())
            .collect::<Vec<_>>(),
        ["tickets page 0", "tickets page 1"]
    );
    let all = tickets(&pages);
    assert_eq!(all.len(), 3);
    let first = all[0];
    // 01:30 CET (+1) is 00:30 UTC; 03:30 CEST (+2), one wall-clock hour... later, is 01:30 UTC.
    assert_eq!(first.created_at, utc(2026, 3, 29, 0, 30));
    assert_eq!(first.updated_at, utc(2026, 3, 29, 1, 30));
    assert_eq!(first.state, TicketState::New);
    assert_eq!(first.organization.as_deref(), Some("GS Lindenweg"));
    assert_eq!(first.tags, ["Hardware > Tablet"]);
    assert_eq!(first.priority.as_deref(), Some("3 medium"));
    assert_eq!(first.title, "iPad defekt 1");
    assert_eq!(first.linked_items.len(), 1);
    let computer = &first.linked_items[0];
    assert_eq!(
        (computer.kind.as_str(), computer.item_id.as_str()),
        ("Computer", "10")
    );
    assert_eq!(computer.serial_number.as_deref(), Some("PF2ABC10"));
    assert_eq!(computer.asset_tag.as_deref(), Some("INV-2023-0010"));
    assert_eq!(computer.name.as_deref(), Some("GS-LW-NB-010"));
    // The computer in the trash stays linked by type and id, with a problem.
    let trashed = all[1];
    assert_eq!(trashed.linked_items[0].item_id, "11");
    assert_eq!(trashed.linked_items[0].serial_number, None);
    assert!(
        trashed.problems[0].contains("Computer 11"),
        "{:?}",
        trashed.problems
    );
    let third = all[2];
    assert_eq!(third.state, TicketState::Closed);
    assert_eq!(third.source_state, "solved");
    // Summer time (+2): 10:00 local is 08:00 UTC; the solve date wins over the close date.
    assert_eq!(third.closed_at, Some(utc(2026, 4, 1, 8, 0)));
    assert_eq!(third.first_response_at, Some(utc(2026, 3, 30, 6, 15)));
    assert_eq!(third.close_due_at, Some(utc(2026, 4, 3, 14, 0)));
    let kinds: Vec<_> = third
        .linked_items
        .iter()
        .map(|item| item.kind.as_str())
        .collect();
    assert_eq!(kinds, ["Monitor", "Software"]);
    assert_eq!(
        third.linked_items[0].serial_number.as_deref(),
        Some("MON20")
    );
    assert_eq!(third.linked_items[0].asset_tag, None);
    assert!(third.problems.is_empty(), "{:?}", third.problems);
    // Neither the requester's name nor the ticket's text reaches the record.
    let shown = format!("{all:?}");
    assert!(!shown.contains("Schulz"), "{shown}");
    assert!(!shown.contains("startet nicht"), "{shown}");
}

#[tokio::test]
async fn glpi_statuses_map_to_the_five_states() {
    let server = MockServer::start().await;
    session(&server, 1).await;
    serve(&server, list("Item_Ticket", "0-9"), rows(0, 0, vec![]), 1).await;
    let at = "2026-02-02 10:00:00";
    let statuses: Vec<Value> = (1..=7)
        .map(|status| ticket(status, status, at, at))
        .collect();
    serve(&server, list("Ticket", "0-9"), rows(0, 7, statuses), 1).await;
    let (pages, end) = read(connector(&server, 10), TicketRead::default()).await;
    assert!(
        matches!(end, TicketItem::Complete { reported_total: 7 }),
        "{end:?}"
    );
    let mapped: Vec<(TicketState, &str)> = tickets(&pages)
        .iter()
        .map(|ticket| (ticket.state, ticket.source_state.as_str()))
        .collect();
    assert_eq!(
        mapped,
        [
            (TicketState::New, "new"),
            (TicketState::Open, "processing (assigned)"),
            (TicketState::Open, "processing (planned)"),
            (TicketState::Pending, "pending"),
            (TicketState::Closed, "solved"),
            (TicketState::Closed, "closed"),
            // A status GLPI does not have: kept as open, with a problem.
            (TicketState::Open, "7"),
        ]
    );
    assert!(tickets(&pages)[6].problems[0].contains("unknown status 7"));
}

#[tokio::test]
async fn an_incremental_read_goes_newest_first_and_stops_at_the_watermark() {
    let server = MockServer::start().await;
    session(&server, 1).await;
    // The watermark 2026-05-01 06:00 UTC is 08:00 in Berlin (summer time, +2).
    let since = utc(2026, 5, 1, 6, 0);
    let changed = |range: &str| {
        list("Ticket", range)
            .and(query_param("sort", "date_mod"))
            .and(query_param("order", "DESC"))
    };
    serve(
        &server,
        changed("0-1"),
        rows(
            0,
            5,
            vec![
                ticket(9, 2, "2026-04-20 08:00:00", "2026-05-02 10:00:00"),
                ticket(4, 4, "2026-04-01 08:00:00", "2026-05-01 12:00:00"),
            ],
        ),
        1,
    )
    .await;
    // 08:00 exactly is at the watermark (kept); 07:59 is before it (not kept, and the read
    // stops: every later row is older still).
    serve(
        &server,
        changed("2-3"),
        rows(
            2,
            5,
            vec![
                ticket(7, 1, "2026-04-30 08:00:00", "2026-05-01 08:00:00"),
                ticket(2, 6, "2026-03-01 08:00:00", "2026-05-01 07:59:00"),
            ],
        ),
        1,
    )
    .await;
    serve(
        &server,
        changed("4-5"),
        rows(
            4,
            5,
            vec![ticket(1, 6, "2026-01-01 08:00:00", "2026-01-02 08:00:00")],
        ),
        0,
    )
    .await;
    // Links of just the changed tickets, one sub-item request each.
    for (ticket, links) in [
        (
            9,
            vec![json!({ "id": 1, "tickets_id": 9, "itemtype": "Computer", "items_id": 10 })],
        ),
        (4, vec![]),
        (7, vec![]),
    ] {
        let total = links.len() as u64;
        list(&format!("Ticket/{ticket}/Item_Ticket"), "0-1")
            .respond_with(rows(0, total, links))
            .expect(1)
            .mount(&server)
            .await;
    }
    serve(&server, api("Item_Ticket"), ResponseTemplate::new(500), 0).await;
    serve(
        &server,
        list("Computer", "0-1"),
        rows(
            0,
            1,
            vec![json!({ "id": 10, "serial": "PF2ABC10",
            "otherserial": "INV-2023-0010", "name": "GS-LW-NB-010" })],
        ),
        1,
    )
    .await;

    let read_since = TicketRead {
        updated_since: Some(since),
    };
    let (pages, end) = read(connector(&server, 2), read_since).await;
    assert!(
        matches!(end, TicketItem::Complete { reported_total: 3 }),
        "{end:?}"
    );
    let ids: Vec<&str> = tickets(&pages)
        .iter()
        .map(|t| t.external_id.as_str())
        .collect();
    assert_eq!(ids, ["9", "4", "7"]);
    assert_eq!(tickets(&pages)[2].updated_at, since);
    assert_eq!(
        tickets(&pages)[0].linked_items[0].asset_tag.as_deref(),
        Some("INV-2023-0010")
    );
}

#[tokio::test]
async fn a_malformed_page_fails_the_read_naming_it_and_the_session_is_still_killed() {
    let server = MockServer::start().await;
    session(&server, 1).await;
    serve(&server, list("Item_Ticket", "0-1"), rows(0, 0, vec![]), 1).await;
    let at = "2026-02-02 10:00:00";
    serve(
        &server,
        list("Ticket", "0-1"),
        rows(0, 3, vec![ticket(1, 1, at, at), ticket(2, 1, at, at)]),
        1,
    )
    .await;
    // The second page: a row without its opening time.
    let mut broken = ticket(3, 1, at, at);
    broken["date"] = json!("gestern");
    serve(&server, list("Ticket", "2-3"), rows(2, 3, vec![broken]), 1).await;
    let (_, end) = read(connector(&server, 2), TicketRead::default()).await;
    let failure = failure(end);
    assert_eq!(failure.page.as_deref(), Some("tickets page 1"), "{failure}");
    assert!(
        failure.cause.contains("ticket 3: `date` is not a time"),
        "{failure}"
    );
}

#[tokio::test]
async fn a_page_short_of_its_range_fails_the_read() {
    let server = MockServer::start().await;
    session(&server, 1).await;
    serve(&server, list("Item_Ticket", "0-1"), rows(0, 0, vec![]), 1).await;
    let at = "2026-02-02 10:00:00";
    // The header announces rows 0-1 of 5 but the body holds one row.
    serve(
        &server,
        list("Ticket", "0-1"),
        ResponseTemplate::new(206)
            .insert_header("Content-Range", "0-1/5")
            .set_body_json(json!([ticket(1, 1, at, at)])),
        1,
    )
    .await;
    let (pages, end) = read(connector(&server, 2), TicketRead::default()).await;
    assert!(pages.is_empty());
    let failure = failure(end);
    assert_eq!(failure.page.as_deref(), Some("tickets page 0"), "{failure}");
    assert!(
        failure.cause.contains("announces 2 rows, the page has 1"),
        "{failure}"
    );
}

#[tokio::test]
async fn an_invalid_session_token_is_a_clear_error() {
    let server = MockServer::start().await;
    session(&server, 1).await;
    serve(
        &server,
        list("Item_Ticket", "0-1"),
        ResponseTemplate::new(401).set_body_json(json!([
            "ERROR_SESSION_TOKEN_INVALID",
            "session_token seems invalid"
        ])),
        1,
    )
    .await;
    let (_, end) = read(connector(&server, 2), TicketRead::default()).await;
    let failure = failure(end);
    assert_eq!(
        failure.page.as_deref(),
        Some("Item_Ticket page 0"),
        "{failure}"
    );
    assert!(
        failure
            .cause
            .starts_with("GLPI no longer accepts the session token (ERROR_SESSION_TOKEN_INVALID)"),
        "{failure}"
    );
    assert!(!failure.cause.contains(SESSION), "{failure}");
}

#[tokio::test]
async fn a_refused_login_names_the_keys_and_never_a_secret() {
    let server = MockServer::start().await;
    // A server that echoes the token back in its error.
    let refused = ResponseTemplate::new(401).set_body_json(json!([
        "ERROR_GLPI_LOGIN_USER_TOKEN",
        format!("parameter user_token {USER_TOKEN} seems invalid (app {APP_TOKEN})")
    ]));
    serve(&server, api("initSession"), refused, 1).await;
    serve(&server, api("killSession"), ResponseTemplate::new(200), 0).await;
    let glpi = connector(&server, 2);
    let debug = format!("{glpi:?}");
    assert!(
        !debug.contains(USER_TOKEN) && !debug.contains(APP_TOKEN),
        "{debug}"
    );
    let (_, end) = read(glpi, TicketRead::default()).await;
    let failure = failure(end);
    assert_eq!(failure.page.as_deref(), Some("initSession"), "{failure}");
    let text = failure.to_string();
    assert!(
        text.contains("GLPI refused to open a session (ERROR_GLPI_LOGIN_USER_TOKEN)"),
        "{text}"
    );
    assert!(text.contains("`user_token_env`"), "{text}");
    assert!(
        !text.contains(USER_TOKEN) && !text.contains(APP_TOKEN),
        "{text}"
    );
    assert!(!format!("{failure:?}").contains(USER_TOKEN));
}
