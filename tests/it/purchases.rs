//! Purchases in (issue 17): purchase files in German Excel's formats, Windows-1252 and XLSX,
//! all or nothing, matching by serial then asset tag, review items for rows naming two
//! devices, a purchased device joined by serial when a source first reports it, purchase data
//! a sync never overwrites, the catalogue's category for new devices, and funding rules.

use std::collections::BTreeMap;

use bestand_core::access::{Actor, Scope};
use bestand_core::model::DeviceCategory;
use bestand_core::procurement::catalogue::{self, ModelEntry};
use bestand_core::procurement::funding::{self, NewProgramme, RuleSpec};
use bestand_core::procurement::purchases::{
    import_purchases, PurchaseFile, PurchaseOptions, PurchaseReport, PURCHASE_AMBIGUOUS,
};
use bestand_core::sheet;
use bestand_core::store::devices;
use bestand_core::store::merge::FieldPriority;
use bestand_core::store::review::{self, Resolution};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use sqlx::PgPool;

use crate::support::{clock, fleet, ipad, musterstadt, sync_records, t0, test_db};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../tests/fixtures/purchases/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn anna() -> Actor {
    Actor::CliUser("anna".into())
}

async fn import(
    pool: &PgPool,
    name: &str,
    bytes: &[u8],
    options: PurchaseOptions,
) -> PurchaseReport {
    let table = sheet::read(bytes, None, None).expect("the file reads");
    let mapping = BTreeMap::new();
    import_purchases(
        pool,
        &Scope::All,
        &anna(),
        None,
        PurchaseFile {
            name,
            sheet: &table,
            mapping: &mapping,
        },
        options,
        t0(),
    )
    .await
    .expect("the import runs")
}

async fn programme(pool: &PgPool, code: &str, reference: &str) {
    funding::add_programme(
        pool,
        &Scope::All,
        &anna(),
        None,
        &NewProgramme {
            code: code.into(),
            name: format!("Programm {code}"),
            grant_reference: Some(reference.into()),
            funding_share: Some(Decimal::new(9, 1)),
            period_start: NaiveDate::from_ymd_opt(2019, 5, 17),
            period_end: NaiveDate::from_ymd_opt(2024, 5, 16),
            earmark_years: Some(5),
            ..NewProgramme::default()
        },
        t0(),
    )
    .await
    .expect("the programme is added");
}

async fn device_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from device")
        .fetch_one(pool)
        .await
        .unwrap()
}

type Purchase = (
    String,
    Option<Decimal>,
    Option<NaiveDate>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// State, price, warranty end, supplier, funding programme, grant reference of a device.
async fn purchase_of(pool: &PgPool, serial: &str) -> (String, Purchase) {
    sqlx::query_as::<
        _,
        (
            String,
            String,
            Option<Decimal>,
            Option<NaiveDate>,
            Option<String>,
            Option<String>,
            Option<String>,
        ),
    >(
        "select lifecycle_state, coalesce(order_number, ''), purchase_price, warranty_end, supplier, \
         funding_programme, grant_reference from device where serial_number = $1",
    )
    .bind(serial)
    .fetch_one(pool)
    .await
    .map(
        |(state, order, price, warranty, supplier, programme, reference)| {
            (
                state,
                (order, price, warranty, supplier, programme, reference),
            )
        },
    )
    .unwrap_or_else(|e| panic!("{serial}: {e}"))
}

#[tokio::test]
async fn a_german_file_with_one_bad_row_writes_nothing_and_partial_writes_the_rest() {
    let db = test_db().await;
    musterstadt(&db.pool, &["jamf"]).await;
    programme(&db.pool, "DP", "AZ 48-2020").await;
    let bytes = fixture("lieferschein.csv");

    let report = import(
        &db.pool,
        "lieferschein.csv",
        &bytes,
        PurchaseOptions::default(),
    )
    .await;
    assert!(!report.applied);
    assert_eq!(
        report.errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec!["line 3, column Lieferdatum: '31.02.2024' is not a date (write DD.MM.YYYY or YYYY-MM-DD)"]
    );
    assert_eq!(device_count(&db.pool).await, 0, "all or nothing");

    let report = import(
        &db.pool,
        "lieferschein.csv",
        &bytes,
        PurchaseOptions {
            partial: true,
            ..PurchaseOptions::default()
        },
    )
    .await;
    assert!(report.applied);
    assert_eq!(
        (report.created, report.matched, report.errors.len()),
        (2, 0, 1)
    );
    let (state, (order, price, warranty, supplier, programme, reference)) =
        purchase_of(&db.pool, "DMP0001").await;
    // Delivered on 15.01.2024: `delivered`; 1.234,56 € is 1234.56; the grant reference is
    // the programme's, the row has none of its own.
    assert_eq!(state, "delivered");
    assert_eq!(order, "B-2024-17");
    assert_eq!(price, Some(Decimal::new(123_456, 2)));
    assert_eq!(warranty, NaiveDate::from_ymd_opt(2027, 12, 31));
    assert_eq!(supplier.as_deref(), Some("Bürotechnik Müller GmbH"));
    assert_eq!(programme.as_deref(), Some("DP"));
    assert_eq!(reference.as_deref(), Some("AZ 48-2020"));
    // No delivery date: only ordered. EUR 899,00 is 899.00.
    let (state, (_, price, ..)) = purchase_of(&db.pool, "PF0003").await;
    assert_eq!(
        (state.as_str(), price),
        ("ordered", Some(Decimal::new(89_900, 2)))
    );
    let detail = devices::show_device(&db.pool, &Scope::All, "GS-0001")
        .await
        .unwrap();
    assert_eq!(detail.device.category, "tablet");
    assert_eq!(
        detail.device.field_origin["purchase_price"],
        "import:lieferschein.csv"
    );
    let (kind, cause, actor): (String, String, Option<String>) =
        sqlx::query_as("select kind, cause, actor from device_event where device_id = $1")
            .bind(detail.device.device_id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        (kind.as_str(), cause.as_str(), actor.as_deref()),
        ("created", "import", Some("anna"))
    );

    // The same file again changes nothing.
    let again = import(
        &db.pool,
        "lieferschein.csv",
        &bytes,
        PurchaseOptions {
            partial: true,
            ..PurchaseOptions::default()
        },
    )
    .await;
    assert_eq!((again.created, again.matched, again.unchanged), (0, 0, 2));
}

#[tokio::test]
async fn a_windows_1252_file_keeps_its_umlauts_and_counts_warranty_months() {
    let db = test_db().await;
    musterstadt(&db.pool, &["jamf"]).await;
    let bytes = fixture("windows-1252.csv");
    assert!(
        std::str::from_utf8(&bytes).is_err(),
        "the fixture is Windows-1252"
    );
    let report = import(
        &db.pool,
        "windows-1252.csv",
        &bytes,
        PurchaseOptions::default(),
    )
    .await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let (_, (_, price, warranty, supplier, ..)) = purchase_of(&db.pool, "WIN0001").await;
    assert_eq!(supplier.as_deref(), Some("Bürotechnik Müller GmbH"));
    assert_eq!(price, Some(Decimal::new(129_900, 2)));
    // 36 months from the delivery on 01.08.2024.
    assert_eq!(warranty, NaiveDate::from_ymd_opt(2027, 8, 1));
}

#[tokio::test]
async fn an_xlsx_file_with_date_serials_and_numeric_prices_is_read() {
    let db = test_db().await;
    musterstadt(&db.pool, &["jamf"]).await;
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    let date_format = rust_xlsxwriter::Format::new().set_num_format("dd.mm.yyyy");
    for (column, header) in ["Seriennummer", "Lieferdatum", "Preis", "Garantie bis"]
        .iter()
        .enumerate()
    {
        sheet.write_string(0, column as u16, *header).unwrap();
    }
    sheet.write_string(1, 0, "XL0001").unwrap();
    // 45306 is 2024-01-15 (45291 is 2023-12-31, Excel shows both so).
    sheet
        .write_number_with_format(1, 1, 45306, &date_format)
        .unwrap();
    sheet.write_number(1, 2, 899.5).unwrap();
    // A bare serial without a date format, as some exports write it: 46387 is 2026-12-31.
    sheet.write_number(1, 3, 46387).unwrap();
    let bytes = workbook.save_to_buffer().unwrap();
    let report = import(
        &db.pool,
        "bestellung.xlsx",
        &bytes,
        PurchaseOptions::default(),
    )
    .await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let (state, (_, price, warranty, ..)) = purchase_of(&db.pool, "XL0001").await;
    assert_eq!(state, "delivered");
    assert_eq!(price, Some(Decimal::new(89_950, 2)));
    assert_eq!(warranty, NaiveDate::from_ymd_opt(2026, 12, 31));
    let purchased: Option<NaiveDate> =
        sqlx::query_scalar("select purchase_date from device where serial_number = 'XL0001'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(purchased, NaiveDate::from_ymd_opt(2024, 1, 15));
}

#[tokio::test]
async fn a_purchase_before_enrolment_is_joined_by_serial_on_the_next_sync() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    // The MDM will report serial SER00000; the order names it in lower case with spaces.
    let file = "Bestellnummer;Seriennummer;Preis;Lieferant\nB-9;  ser00000 ;499,00;Bürotechnik\n";
    let report = import(
        &db.pool,
        "order.csv",
        file.as_bytes(),
        PurchaseOptions::default(),
    )
    .await;
    assert_eq!(report.created, 1);
    assert_eq!(purchase_of(&db.pool, "SER00000").await.0, "ordered");

    let sync = sync_records(&db.pool, &clock, source, fleet(1)).await;
    assert_eq!(
        sync.counts.created, 0,
        "the source attaches to the purchased device"
    );
    assert_eq!(device_count(&db.pool).await, 1);
    let (state, (order, price, warranty, supplier, ..)) = purchase_of(&db.pool, "SER00000").await;
    assert_eq!(state, "in_use");
    assert_eq!(order, "B-9");
    assert_eq!(price, Some(Decimal::new(49_900, 2)));
    assert_eq!(supplier.as_deref(), Some("Bürotechnik"));
    // The source's warranty end fills the empty field.
    assert_eq!(warranty, NaiveDate::from_ymd_opt(2027, 8, 14));
    let (cause, changes): (String, serde_json::Value) =
        sqlx::query_as("select cause, changes::jsonb from device_event where kind = 'enrolled'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(cause, "sync");
    assert_eq!(changes["lifecycle_state"]["old"], "ordered");
    assert_eq!(changes["lifecycle_state"]["new"], "in_use");
}

#[tokio::test]
async fn a_sync_never_overwrites_purchase_data_from_an_import() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    sync_records(&db.pool, &clock, source, fleet(1)).await;
    let file =
        "Seriennummer;Garantie bis;Preis;Bestellnummer\nSER00000;31.01.2028;1.100,00 €;B-1\n";
    let report = import(
        &db.pool,
        "nachtrag.csv",
        file.as_bytes(),
        PurchaseOptions::default(),
    )
    .await;
    assert_eq!((report.matched, report.created), (1, 0));

    let mut records = fleet(1);
    records[0].purchase.warranty_end = NaiveDate::from_ymd_opt(2030, 1, 1);
    records[0].purchase.price = Some(Decimal::new(1, 0));
    records[0].purchase.order_number = Some("MDM-ORDER".into());
    records[0].os_version = Some("18.1".into());
    sync_records(&db.pool, &clock, source, records).await;
    let (state, (order, price, warranty, ..)) = purchase_of(&db.pool, "SER00000").await;
    assert_eq!(state, "in_use");
    assert_eq!(order, "B-1");
    assert_eq!(price, Some(Decimal::new(110_000, 2)));
    assert_eq!(warranty, NaiveDate::from_ymd_opt(2028, 1, 31));
    let detail = devices::show_device(&db.pool, &Scope::All, "SER00000")
        .await
        .unwrap();
    assert_eq!(
        detail.device.os_version.as_deref(),
        Some("18.1"),
        "hardware still follows the MDM"
    );
}

#[tokio::test]
async fn a_row_naming_two_devices_is_a_review_item_and_writes_nothing() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    let mut tagged = ipad("mobile:1", "SER00001");
    tagged.asset_tag = Some("GS-0042".into());
    sync_records(
        &db.pool,
        &clock,
        source,
        vec![ipad("mobile:0", "SER00000"), tagged],
    )
    .await;
    let file = "Seriennummer;Inventarnummer;Preis\nSER00000;GS-0042;500,00\n";
    let report = import(
        &db.pool,
        "x.csv",
        file.as_bytes(),
        PurchaseOptions::default(),
    )
    .await;
    assert_eq!(
        (report.ambiguous, report.matched, report.created),
        (1, 0, 0)
    );
    let priced: i64 =
        sqlx::query_scalar("select count(*) from device where purchase_price is not null")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(priced, 0);
    let items = review::list_review(&db.pool, &Scope::All, Some("open"))
        .await
        .unwrap();
    let item = items
        .iter()
        .find(|i| i.kind == PURCHASE_AMBIGUOUS)
        .expect("a purchase item");
    assert_eq!(item.candidates.len(), 2);
    assert!(item.summary.contains("x.csv, line 2"), "{}", item.summary);
    let mut labels = item.candidate_labels.clone();
    labels.sort();
    assert_eq!(labels, vec!["GS-0042", "SER00000"]);
    review::resolve_review(
        &db.pool,
        &Scope::All,
        &anna(),
        item.review_item_id,
        Resolution::Dismiss,
        &FieldPriority::default(),
        t0(),
    )
    .await
    .unwrap();
    // Importing again does not raise a dismissed item again.
    import(
        &db.pool,
        "x.csv",
        file.as_bytes(),
        PurchaseOptions::default(),
    )
    .await;
    let open = review::list_review(&db.pool, &Scope::All, Some("open"))
        .await
        .unwrap();
    assert!(open.iter().all(|i| i.kind != PURCHASE_AMBIGUOUS));
}

#[tokio::test]
async fn the_catalogue_gives_new_devices_their_category_identifier_first() {
    let db = test_db().await;
    musterstadt(&db.pool, &["jamf"]).await;
    let entry = |model: &str, identifier: Option<&str>, category| ModelEntry {
        model: model.into(),
        model_identifier: identifier.map(Into::into),
        category,
        list_price: Some(Decimal::new(89_900, 2)),
        currency: "EUR".into(),
        life_years: Some(4),
    };
    for model in [
        entry("MacBook Air 13", Some("Mac14,2"), DeviceCategory::Laptop),
        entry("Gerät Y", None, DeviceCategory::Display),
    ] {
        catalogue::set_model(&db.pool, &Scope::All, &anna(), None, &model, t0())
            .await
            .unwrap();
    }
    let file =
        "Seriennummer;Modell;Modellkennung\nC1;Gerät Y;Mac14,2\nC2;gerät y;\nC3;Unbekannt;\n";
    import(
        &db.pool,
        "c.csv",
        file.as_bytes(),
        PurchaseOptions::default(),
    )
    .await;
    let category = |serial: &'static str| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("select category from device where serial_number = $1")
                .bind(serial)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    // The identifier outranks the name; names match in any case; no entry: other.
    assert_eq!(category("C1").await, "laptop");
    assert_eq!(category("C2").await, "display");
    assert_eq!(category("C3").await, "other");

    catalogue::set_category_life(
        &db.pool,
        &Scope::All,
        &anna(),
        None,
        DeviceCategory::Tablet,
        6,
    )
    .await
    .unwrap();
    let lives = catalogue::category_lives(&db.pool, &Scope::All, None)
        .await
        .unwrap();
    let life = |name: &str| {
        lives
            .iter()
            .find(|l| l.category == name)
            .map(|l| (l.life_years, l.configured))
    };
    assert_eq!(life("tablet"), Some((6, true)));
    assert_eq!(life("display"), Some((8, false)));
    let listed = catalogue::list_models(&db.pool, &Scope::All, None)
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
}

#[tokio::test]
async fn funding_rules_by_order_number_and_date_range_never_move_another_programme() {
    let db = test_db().await;
    musterstadt(&db.pool, &["jamf"]).await;
    programme(&db.pool, "DP", "AZ-DP").await;
    programme(&db.pool, "SOFORT", "AZ-SO").await;
    let file = "Bestellnummer;Lieferdatum;Seriennummer;Preis;Förderprogramm\n\
                B-1;01.09.2020;F1;400,00;\n\
                B-2;01.03.2021;F2;500,00;\n\
                B-3;01.10.2020;F3;600,00;SOFORT\n";
    import(
        &db.pool,
        "f.csv",
        file.as_bytes(),
        PurchaseOptions::default(),
    )
    .await;

    let by_order = funding::add_rule(
        &db.pool,
        &Scope::All,
        &anna(),
        None,
        "DP",
        &RuleSpec {
            order_number: Some("B-1".into()),
            ..RuleSpec::default()
        },
        t0(),
    )
    .await
    .unwrap();
    assert_eq!(by_order.assigned, vec!["F1"]);
    let by_dates = funding::add_rule(
        &db.pool,
        &Scope::All,
        &anna(),
        None,
        "DP",
        &RuleSpec {
            purchased_from: NaiveDate::from_ymd_opt(2020, 8, 1),
            purchased_until: NaiveDate::from_ymd_opt(2020, 12, 31),
            ..RuleSpec::default()
        },
        t0(),
    )
    .await
    .unwrap();
    assert!(by_dates.assigned.is_empty());
    assert_eq!(by_dates.unchanged, vec!["F1"]);
    assert_eq!(
        by_dates.conflicts,
        vec!["F3: funded by SOFORT; left as it is"]
    );
    assert_eq!(
        purchase_of(&db.pool, "F3").await.1 .4.as_deref(),
        Some("SOFORT")
    );
    assert_eq!(
        purchase_of(&db.pool, "F2").await.1 .4,
        None,
        "March 2021 is outside the range"
    );
    let (_, (.., programme, reference)) = purchase_of(&db.pool, "F1").await;
    assert_eq!(
        (programme.as_deref(), reference.as_deref()),
        (Some("DP"), Some("AZ-DP"))
    );

    // A later import applies the stored rules: delivered in November 2020.
    let later = "Bestellnummer;Lieferdatum;Seriennummer;Preis\nB-4;11.11.2020;F4;450,00\n";
    import(
        &db.pool,
        "g.csv",
        later.as_bytes(),
        PurchaseOptions::default(),
    )
    .await;
    assert_eq!(
        purchase_of(&db.pool, "F4").await.1 .4.as_deref(),
        Some("DP")
    );

    // By hand, then off again.
    let by_hand = funding::assign_devices(
        &db.pool,
        &Scope::All,
        &anna(),
        None,
        "DP",
        &["F2".into()],
        t0(),
    )
    .await
    .unwrap();
    assert_eq!(by_hand.assigned, vec!["F2"]);
    let shown = funding::show_programme(&db.pool, &Scope::All, None, "DP")
        .await
        .unwrap();
    // F1 400,00 + F4 450,00 + F2 500,00 = 1350,00 over three devices.
    assert_eq!(
        (shown.programme.devices, shown.programme.price_sum),
        (3, Decimal::new(135_000, 2))
    );
    assert_eq!(shown.rules.len(), 2);
    // The earmark: five years after the period's end on 2024-05-16.
    assert_eq!(
        shown.programme.programme.earmark_end,
        NaiveDate::from_ymd_opt(2029, 5, 16)
    );
    let removed = funding::unassign_devices(&db.pool, &Scope::All, &anna(), &["F2".into()], t0())
        .await
        .unwrap();
    assert_eq!(removed, vec!["F2"]);
    assert_eq!(purchase_of(&db.pool, "F2").await.1 .4, None);
    let events: i64 = sqlx::query_scalar(
        "select count(*) from device_event where kind in ('funding_assigned', 'funding_unassigned')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    // F1 by rule, F2 by hand and off again.
    assert_eq!(events, 3);
}

#[tokio::test]
async fn a_dry_run_with_a_mapping_reports_every_row_and_writes_nothing() {
    let db = test_db().await;
    musterstadt(&db.pool, &["jamf"]).await;
    // A supplier's own headers: "Rechnungsnr." and "Gerätepreis" are no header bestand knows,
    // "Gerät-SN" neither; the mapping names them. "Bemerkung" stays unread.
    let text = "Rechnungsnr.;Lieferdatum;Gerät-SN;Inventarnummer;Gerätepreis;Bemerkung\r\n\
                R-17;15.01.2024;DMP0001;GS-0001;1.234,56 €;Koffer fehlt\r\n\
                R-17;15.01.2024;DMP0002;GS-0002;899,00;\r\n";
    let table = sheet::read(text.as_bytes(), None, None).unwrap();
    let mapping: BTreeMap<String, String> = [
        ("Rechnungsnr.", "order_number"),
        ("Gerätepreis", "price"),
        ("gerät-sn", "serial"),
    ]
    .into_iter()
    .map(|(header, field)| (header.to_string(), field.to_string()))
    .collect();
    let actor = anna();
    let run = |dry_run| {
        import_purchases(
            &db.pool,
            &Scope::All,
            &actor,
            None,
            PurchaseFile {
                name: "rechnung.csv",
                sheet: &table,
                mapping: &mapping,
            },
            PurchaseOptions {
                dry_run,
                ..PurchaseOptions::default()
            },
            t0(),
        )
    };

    let dry = run(true).await.unwrap();
    assert!(dry.dry_run && !dry.applied);
    assert!(dry.errors.is_empty());
    assert_eq!(dry.created, 2);
    assert_eq!(dry.ignored_columns, vec!["Bemerkung".to_string()]);
    let outcomes = |report: &PurchaseReport| -> Vec<(u64, &'static str, String)> {
        report
            .lines
            .iter()
            .map(|l| (l.line, l.outcome, l.device.clone()))
            .collect()
    };
    assert_eq!(
        outcomes(&dry),
        vec![
            (2, "created", "GS-0001".to_string()),
            (3, "created", "GS-0002".to_string())
        ]
    );
    assert_eq!(
        device_count(&db.pool).await,
        0,
        "a dry run writes no device"
    );
    let events: i64 = sqlx::query_scalar("select count(*) from device_event")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(events, 0, "a dry run writes no history");

    // The same call for real writes what the dry run promised, through the mapped columns.
    let real = run(false).await.unwrap();
    assert!(real.applied);
    assert_eq!(outcomes(&real), outcomes(&dry));
    let (_, (order, price, ..)) = purchase_of(&db.pool, "DMP0001").await;
    assert_eq!(
        (order.as_str(), price),
        ("R-17", Some(Decimal::new(123_456, 2)))
    );

    // A mapping to a field bestand does not know is refused before anything is read.
    let wrong: BTreeMap<String, String> = [("Gerätepreis".to_string(), "preis".to_string())].into();
    let refused = import_purchases(
        &db.pool,
        &Scope::All,
        &anna(),
        None,
        PurchaseFile {
            name: "rechnung.csv",
            sheet: &table,
            mapping: &wrong,
        },
        PurchaseOptions::default(),
        t0(),
    )
    .await
    .unwrap_err();
    assert!(
        refused.to_string().contains("unknown field 'preis'"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_catalogue_file_in_german_formats_is_all_or_nothing() {
    let db = test_db().await;
    musterstadt(&db.pool, &["jamf"]).await;
    let read = |text: &str| sheet::read(text.as_bytes(), None, None).unwrap();
    let import = |table| {
        let pool = db.pool.clone();
        async move {
            catalogue::import_models(
                &pool,
                &Scope::All,
                &anna(),
                None,
                &table,
                &BTreeMap::new(),
                t0(),
            )
            .await
            .unwrap()
        }
    };
    // Line 3 names a life of 0 years, line 4 the model of line 2 again: nothing is written.
    let bad = read(
        "Modell;Kategorie;Listenpreis;Nutzungsdauer (Jahre)\n\
         iPad 10;Tablet;429,00 €;5\n\
         ThinkPad L14;Notebook;1.099,90;0\n\
         ipad 10;Tablet;;\n",
    );
    let report = import(bad).await;
    assert!(!report.applied);
    assert_eq!(
        report
            .errors
            .iter()
            .map(|e| (e.line, e.column.as_str()))
            .collect::<Vec<_>>(),
        vec![(3, "Nutzungsdauer (Jahre)"), (4, "Modell")]
    );
    assert!(catalogue::list_models(&db.pool, &Scope::All, None)
        .await
        .unwrap()
        .is_empty());

    let good = read(
        "Modell;Modellkennung;Kategorie;Listenpreis;Nutzungsdauer (Jahre)\n\
         iPad 10;iPad13,18;Tablet;429,00 €;5\n\
         ThinkPad L14;;Notebook;1.099,90;\n",
    );
    let report = import(good).await;
    assert!(report.applied);
    assert_eq!(report.written, 2);
    let listed: Vec<_> = catalogue::list_models(&db.pool, &Scope::All, None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| {
            (
                m.model,
                m.model_identifier,
                m.category,
                m.list_price,
                m.life_years,
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            (
                "iPad 10".to_string(),
                Some("iPad13,18".to_string()),
                "tablet".to_string(),
                Some(Decimal::new(42_900, 2)),
                Some(5)
            ),
            (
                "ThinkPad L14".to_string(),
                None,
                "laptop".to_string(),
                Some(Decimal::new(109_990, 2)),
                None
            ),
        ]
    );
}
