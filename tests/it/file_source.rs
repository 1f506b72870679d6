//! The generic file source: CSV and JSON exports through the engine into PostgreSQL.

use std::path::PathBuf;
use std::sync::Arc;

use bestand_connectors::file::{FileConfig, FileSource};
use bestand_connectors::spawn_fetch;
use bestand_core::access::Scope;
use bestand_core::model::SyncStatus;
use bestand_core::store::devices;
use bestand_core::sync;

use crate::support::*;

fn write(name: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("bestand-{}-{name}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, content).unwrap();
    path
}

fn source(config: serde_json::Value) -> Arc<FileSource> {
    let config: FileConfig = serde_json::from_value(config).unwrap();
    Arc::new(FileSource::new(config, "inventar").unwrap())
}

fn csv_config(path: &PathBuf) -> serde_json::Value {
    serde_json::json!({
        "path": path,
        "delimiter": ";",
        "id_column": "Inventarnummer",
        "columns": {
            "asset_tag": "Inventarnummer",
            "serial_number": "Seriennummer",
            "model": "Modell",
            "category": "Art",
            "school": "Schule",
            "room": "Raum",
            "purchase_date": "Kaufdatum",
            "price": "Preis",
            "warranty_end": "Garantie bis",
        },
    })
}

const EXPORT: &str = "\u{feff}Inventarnummer;Seriennummer;Modell;Art;Schule;Raum;Kaufdatum;Preis;Garantie bis
INV-0001;c02abc123xyz;Dell Latitude 3540;laptop;Gymnasium am Stadtpark;R 12;15.08.2023;1.099,00;14.08.2027
INV-0002;5CG1234ABC;HP ProDesk 400;desktop;100001;PC-Raum;2022-09-20;649.50;31.02.2026
";

#[tokio::test]
async fn a_german_csv_export_becomes_devices_with_bad_values_reported_not_dropped() {
    let db = test_db().await;
    let source_ref = &musterstadt(&db.pool, &["inventar"]).await[0];
    let path = write("export.csv", EXPORT);
    let report = run_file(&db.pool, source_ref, csv_config(&path)).await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.counts.created, 2);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("line 3: warranty_end '31.02.2026' is not a date")),
        "{:?}",
        report.warnings
    );

    let laptop = devices::show_device(&db.pool, &Scope::All, "INV-0001")
        .await
        .unwrap();
    assert_eq!(laptop.device.serial_number.as_deref(), Some("C02ABC123XYZ"));
    assert_eq!(laptop.device.category, "laptop");
    assert_eq!(
        laptop.device.purchase_price,
        Some("1099.00".parse().unwrap())
    );
    assert_eq!(
        laptop.device.warranty_end,
        chrono::NaiveDate::from_ymd_opt(2027, 8, 14)
    );
    assert_eq!(laptop.school_number.as_deref(), Some("100002"));
    let desktop = devices::show_device(&db.pool, &Scope::All, "INV-0002")
        .await
        .unwrap();
    assert_eq!(
        desktop.school_number.as_deref(),
        Some("100001"),
        "a school number works as the school"
    );
    assert_eq!(
        desktop.device.warranty_end, None,
        "the bad date is left empty, the device kept"
    );
    assert_eq!(desktop.links[0].reported["purchase"]["price"], "649.50");
}

/// Runs the file source once over `config`.
async fn run_file(
    pool: &sqlx::PgPool,
    source_ref: &bestand_core::store::SourceRef,
    config: serde_json::Value,
) -> bestand_core::sync::SyncReport {
    sync::run_sync(
        pool,
        clock().as_ref(),
        &bestand_core::Scope::All,
        &bestand_core::Actor::System("test"),
        source_ref,
        spawn_fetch(source(config)),
        &options(),
        &sync::NoProgress,
    )
    .await
    .unwrap()
}

/// What German Excel saves as "CSV (Trennzeichen-getrennt)": Windows-1252 (`ä` is 0xE4, `ü`
/// 0xFC, `€` 0x80), `;` between fields, CRLF.
const EXCEL_EXPORT: &[u8] = b"Inventarnummer;Ger\xE4t;Raum;Preis\r\n\
INV-0001;Tablet f\xFCr Sch\xFCler;Gro\xDFer Saal;1.299,00 \x80\r\n";

#[tokio::test]
async fn an_excel_export_in_windows_1252_with_semicolons_is_read_with_euro_and_umlauts() {
    let db = test_db().await;
    let source_ref = &musterstadt(&db.pool, &["inventar"]).await[0];
    let path = write("excel.csv", EXCEL_EXPORT);
    // No delimiter and no encoding set: both are told from the file.
    let config = serde_json::json!({
        "path": path, "id_column": "Inventarnummer",
        "columns": { "asset_tag": "Inventarnummer", "model": "Gerät", "room": "Raum", "price": "Preis" },
    });
    let report = run_file(&db.pool, source_ref, config).await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let tablet = devices::show_device(&db.pool, &Scope::All, "INV-0001")
        .await
        .unwrap();
    assert_eq!(tablet.device.model.as_deref(), Some("Tablet für Schüler"));
    assert_eq!(tablet.device.room.as_deref(), Some("Großer Saal"));
    assert_eq!(
        tablet.device.purchase_price,
        Some("1299.00".parse().unwrap())
    );
    assert_eq!(tablet.device.currency.as_deref(), Some("EUR"));
}

#[tokio::test]
async fn with_utf8_set_an_unreadable_byte_fails_the_run_naming_line_and_column() {
    let db = test_db().await;
    let source_ref = &musterstadt(&db.pool, &["inventar"]).await[0];
    let path = write("excel.csv", EXCEL_EXPORT);
    let config = serde_json::json!({
        "path": path, "id_column": "Inventarnummer", "encoding": "utf-8",
        "columns": { "model": "Gerät" },
    });
    let report = run_file(&db.pool, source_ref, config).await;
    assert_eq!(report.status, SyncStatus::Failed);
    let error = report.error.unwrap();
    assert!(
        error.contains("line 1, column 19: byte 0xE4 is not UTF-8") && error.contains("excel.csv"),
        "{error}"
    );
    assert_eq!(table_counts(&db.pool).await[0], ("device".to_string(), 0));
}

#[tokio::test]
async fn prices_in_english_notation_are_not_misread_and_ambiguous_ones_are_kept_as_problems() {
    let db = test_db().await;
    let source_ref = &musterstadt(&db.pool, &["inventar"]).await[0];
    // UTF-8 with a byte order mark, as "CSV UTF-8" saves it.
    let path = write(
        "prices.csv",
        "\u{feff}id;Preis;Währung\n\
         INV-1;1,299.00;\n\
         INV-2;1.299;\n\
         INV-3;USD 1,299.00;\n\
         INV-4;1.299,00 €;USD\n\
         INV-5;-5,00;\n",
    );
    let config = |notation: Option<&str>| {
        let mut config = serde_json::json!({
            "path": path, "id_column": "id", "delimiter": ";",
            "columns": { "asset_tag": "id", "price": "Preis", "currency": "Währung" },
        });
        if let Some(notation) = notation {
            config["price_notation"] = notation.into();
        }
        config
    };
    let report = run_file(&db.pool, source_ref, config(None)).await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    assert_eq!(
        report.counts.created, 5,
        "a bad price never drops the device"
    );
    let price = |tag: &'static str| {
        let pool = db.pool.clone();
        async move {
            let device = devices::show_device(&pool, &Scope::All, tag)
                .await
                .unwrap()
                .device;
            (
                device.purchase_price.map(|p| p.to_string()),
                device.currency,
            )
        }
    };
    assert_eq!(
        price("INV-1").await,
        (Some("1299.00".into()), Some("EUR".into())),
        "not 1.30"
    );
    assert_eq!(price("INV-2").await, (None, None));
    assert_eq!(
        price("INV-3").await,
        (Some("1299.00".into()), Some("USD".into()))
    );
    assert_eq!(price("INV-4").await, (None, None));
    assert_eq!(price("INV-5").await, (None, None));
    let warnings = report.warnings.join("\n");
    for expected in [
        "line 3: price '1.299' cannot be read: it is ambiguous: 1299 if '.' groups thousands, \
         1.299 if it is the decimal separator; write the cents (such as 1299,00 or 1299.00) \
         or set `price_notation`",
        "line 5: price '1.299,00 €' is in EUR but the currency column says USD",
        "line 6: price '-5,00' cannot be read: a price cannot be negative",
    ] {
        assert!(
            warnings.contains(expected),
            "{expected}\nnot in\n{warnings}"
        );
    }

    // With the notation set, the ambiguous price is read the German way.
    let report = run_file(&db.pool, source_ref, config(Some("german"))).await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    assert_eq!(
        price("INV-2").await,
        (Some("1299.00".into()), Some("EUR".into()))
    );
}

#[tokio::test]
async fn a_broken_row_fails_the_run_with_its_line_and_changes_nothing() {
    let db = test_db().await;
    let source_ref = &musterstadt(&db.pool, &["inventar"]).await[0];
    let good = write("good.csv", EXPORT);
    run_file(&db.pool, source_ref, csv_config(&good)).await;
    let before = inventory_fingerprint(&db.pool).await;

    for (content, expected) in [
        (format!("{EXPORT}INV-0003;X1;Modell;laptop\n"), "line 4"),
        (
            format!("{EXPORT}INV-0001;X2;M;laptop;;;;;\n"),
            "line 4: id 'INV-0001' appears twice",
        ),
        (
            format!("{EXPORT};X3;M;laptop;;;;;\n"),
            "line 4: the id column 'Inventarnummer' is empty",
        ),
    ] {
        let path = write("broken.csv", &content);
        let report = run_file(&db.pool, source_ref, csv_config(&path)).await;
        assert_eq!(report.status, SyncStatus::Failed);
        let error = report.error.unwrap();
        assert!(
            error.contains(expected) && error.contains("broken.csv"),
            "{error}"
        );
        assert_eq!(inventory_fingerprint(&db.pool).await, before);
    }
}

#[tokio::test]
async fn a_json_export_is_read_from_its_pointer() {
    let db = test_db().await;
    let source_ref = &musterstadt(&db.pool, &["inventar"]).await[0];
    let path = write(
        "hosts.json",
        r#"{"exported": "2026-11-20", "hosts": [
            {"id": 17, "name": "gs-lindenweg-pc01", "mac": "A4-83-E7-12-34-56", "room": "R 1"},
            {"id": 18, "name": "gs-lindenweg-pc02", "mac": null, "room": "R 1"}]}"#,
    );
    let config = serde_json::json!({
        "path": path, "id_column": "id", "json_pointer": "/hosts",
        "columns": { "name": "name", "wifi_mac": "mac", "room": "room" },
    });
    let report = run_file(&db.pool, source_ref, config).await;
    assert_eq!(
        (report.status, report.counts.created),
        (SyncStatus::Succeeded, 2),
        "{:?}",
        report.error
    );
    let found = devices::list_devices(
        &db.pool,
        &Scope::All,
        &devices::DeviceFilter {
            search: Some("a4:83:e7".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(found.len(), 1, "the MAC is normalized and searchable");
    assert_eq!(found[0].name.as_deref(), Some("gs-lindenweg-pc01"));
}

#[test]
fn the_file_kind_is_configured_in_toml_and_unknown_fields_are_refused() {
    let text = r#"
[[authority]]
slug = "musterstadt"
name = "Stadt Musterstadt"

[[source]]
name = "iserv-hosts"
kind = "file"
authority = "musterstadt"
path = "/var/lib/bestand/hosts.csv"
delimiter = ";"
id_column = "MAC"

[source.columns]
name = "Name"
wifi_mac = "MAC"
"#;
    let config =
        bestand_app::config::Config::parse(text, std::path::Path::new("test.toml")).unwrap();
    assert_eq!(
        config.source("iserv-hosts").unwrap().settings().kind(),
        "file"
    );

    let bad: FileConfig = serde_json::from_value(serde_json::json!({
        "path": "/x.csv", "id_column": "id", "columns": { "colour": "Farbe" },
    }))
    .unwrap();
    let error = FileSource::new(bad, "x").unwrap_err().to_string();
    assert!(error.contains("unknown field 'colour'"), "{error}");
}

/// An IServ host list (Verwaltung > Netzwerk > Geräte, exported as CSV): a notebook with LAN
/// and WLAN is entered twice under one name, with two MACs.
const ISERV_HOSTS: &str = "Name;Tags;Raum;IP;MAC
nb-lehrer-01;Lehrer;Lehrerzimmer;10.0.1.21;3c:22:fb:00:00:01
nb-lehrer-01;Lehrer;;10.0.2.21;3c:22:fb:00:00:02
pc-r104-07;PC-Raum;R 104;10.0.1.107;3c:22:fb:00:01:07
";

#[tokio::test]
async fn an_iserv_host_list_becomes_one_device_per_host_name() {
    let db = test_db().await;
    let clock = clock();
    let source_ref = musterstadt(&db.pool, &["iserv-hosts"]).await.remove(0);
    let path = write("iserv-hosts.csv", ISERV_HOSTS);
    let mut config = serde_json::json!({
        "path": path,
        "delimiter": ";",
        "id_column": "Name",
        "school": "Grundschule Lindenweg",
        "columns": { "name": "Name", "room": "Raum", "wifi_mac": "MAC" },
    });

    // Without merging, the repeated name is a broken file: nothing is written.
    let (_, end) = collect_shared(source(config.clone())).await;
    let failure = failed(end);
    assert!(
        failure.cause.contains("line 3") && failure.cause.contains("appears twice"),
        "{failure}"
    );

    config["merge_duplicate_ids"] = serde_json::json!(true);
    let report = sync::run_sync(
        &db.pool,
        clock.as_ref(),
        &bestand_core::Scope::All,
        &bestand_core::Actor::System("test"),
        &source_ref,
        spawn_fetch(source(config)),
        &options(),
        &sync::NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(report.status, SyncStatus::Succeeded, "{report:?}");
    assert_eq!(report.counts.created, 2);

    let notebook = devices::show_device(
        &db.pool,
        &Scope::All,
        &find_id(&db.pool, "nb-lehrer-01").await,
    )
    .await
    .unwrap();
    assert_eq!(notebook.device.room.as_deref(), Some("Lehrerzimmer"));
    assert_eq!(
        notebook.device.wifi_mac.as_deref(),
        Some("3c:22:fb:00:00:01")
    );
    assert_eq!(notebook.school_number.as_deref(), Some("100001"));
    // Both host records stay in the raw payload.
    let payload: String = sqlx::query_scalar(
        "select p.payload::text from source_link l join source_payload p \
         using (source_id, external_id, content_hash) where l.external_id = 'nb-lehrer-01'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(
        payload.contains("3c:22:fb:00:00:01") && payload.contains("3c:22:fb:00:00:02"),
        "{payload}"
    );
}

async fn find_id(pool: &sqlx::PgPool, name: &str) -> String {
    let id: uuid::Uuid = sqlx::query_scalar("select device_id from device where name = $1")
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap();
    id.to_string()
}

#[tokio::test]
async fn a_download_link_is_fetched_with_its_token_and_named_without_it() {
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/s/abc/download"))
        .and(query_param("token", "geheim-123"))
        .respond_with(ResponseTemplate::new(200).set_body_string(EXPORT))
        .mount(&server)
        .await;
    let link = |token: &str| {
        let mut config = csv_config(&PathBuf::new());
        let object = config.as_object_mut().unwrap();
        object.remove("path");
        object.insert(
            "url".into(),
            format!("{}/s/abc/download?token={token}", server.uri()).into(),
        );
        object.insert("format".into(), "csv".into());
        config
    };

    let (pages, end) = collect_shared(source(link("geheim-123"))).await;
    assert_eq!(complete(end), 2, "the token went with the request");
    let shown = format!("{}/s/abc/download?…", server.uri());
    assert_eq!(pages[0].label, format!("{shown} part 0"));

    let (_, end) = collect_shared(source(link("abgelaufen-456"))).await;
    let cause = failure_at(end, &shown);
    assert!(cause.contains("answered HTTP 404"), "{cause}");
    assert!(
        cause.contains(&shown) && !cause.contains("abgelaufen"),
        "logs and errors leave the token out: {cause}"
    );
}
