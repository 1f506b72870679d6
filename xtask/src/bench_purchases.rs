//! `cargo xtask bench --purchases [N]`: the purchase import of issue 17 (target: at least
//! 20,000 rows/s for 50,000 rows). It starts bestand's own PostgreSQL with production settings,
//! gives an authority N/2 devices with `generate_series`, writes a German Excel purchase file
//! of N rows (half of them about those devices, half new), and runs the release example
//! `bestand-app/examples/purchase_import.rs`, which times reading, checking and writing as
//! `bestand purchases import` does them (docs/performance.md, "Purchase import").

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use bestand_pgcluster::LocalCluster;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// Schools of the generated authority (the model city of the domain notes has 32).
const SCHOOLS: u64 = 32;

pub fn bench_purchases(workspace: &Path, rows: u64) -> anyhow::Result<()> {
    anyhow::ensure!(rows >= 2, "--purchases needs at least 2 rows");
    let bench_dir = crate::target_dir(workspace).join("bench");
    let cluster_dir = bench_dir.join("postgres");
    // Built first, so that the compiler is done before anything is timed.
    crate::step("building the purchase import example (release)");
    crate::check(crate::cargo(workspace).args([
        "build",
        "--quiet",
        "--release",
        "-p",
        "bestand-app",
        "--example",
        "purchase_import",
    ]))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    crate::wipe_cluster(&runtime, &cluster_dir)?;
    std::fs::create_dir_all(&bench_dir)?;
    crate::step("starting PostgreSQL (production settings)");
    let cluster = LocalCluster::open(&cluster_dir, None)?;
    let started = runtime.block_on(cluster.start())?;
    let existing = rows / 2;
    let file = bench_dir.join("purchases.csv");
    let outcome = runtime
        .block_on(fill(started.connect_options(), existing))
        .and_then(|()| {
            crate::step(&format!(
                "writing {rows} purchase rows (Windows-1252, ';', German prices and dates)"
            ));
            std::fs::write(&file, purchase_file(rows))
                .with_context(|| format!("cannot write {}", file.display()))
        })
        .and_then(|()| {
            crate::step("timing the import: read, check, match and write (release build)");
            let example = crate::target_dir(workspace)
                .join("release")
                .join("examples")
                .join("purchase_import");
            crate::check(std::process::Command::new(example).args([
                started.connection_url(),
                file.display().to_string(),
                // Odd rows name an existing device, even rows a new one.
                rows.div_ceil(2).to_string(),
                (rows / 2).to_string(),
            ]))
            .context("the purchase import benchmark failed")
        });
    runtime.block_on(started.stop())?;
    outcome
}

/// An authority with `SCHOOLS` schools, two funding programmes, a small catalogue, and
/// `devices` devices with serials `SN1`.. and asset tags `B1`.., as a sync would have left them.
async fn fill(options: PgConnectOptions, devices: u64) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    bestand_core::store::migrate(&pool).await?;
    crate::step(&format!(
        "inserting {devices} existing devices at {SCHOOLS} schools"
    ));
    let devices = i64::try_from(devices).context("--purchases is too large")?;
    let statements = [
        "insert into school_authority (slug, name) values ('musterstadt', 'Stadt Musterstadt')",
        "insert into school (authority_id, school_number, name, school_type) \
         select authority_id, (100000 + i)::text, 'Schule ' || i, \
         (array['grundschule', 'gymnasium', 'realschule', 'berufsschule'])[1 + i % 4] \
         from school_authority, generate_series(1, 32) i",
        "insert into funding_programme (authority_id, code, name, grant_reference, funding_share, \
         created_at) select authority_id, p.code, p.name, p.reference, 0.9, now() \
         from school_authority, (values ('DP', 'DigitalPakt Schule', 'DP-2021-17'), \
         ('SOFORT', 'Sofortausstattungsprogramm', 'SA-2020-3')) as p(code, name, reference)",
        "insert into device_model (authority_id, model, category, list_price, life_years, updated_at, updated_by) \
         select authority_id, m.model, m.category, m.price, m.life, now(), 'bench' from school_authority, \
         (values ('iPad 10', 'tablet', 429.00, 5), ('ThinkPad L14', 'laptop', 899.00, null)) \
          as m(model, category, price, life)",
    ];
    for sql in statements {
        sqlx::query(sql).execute(&pool).await?;
    }
    sqlx::query(
        "insert into device (device_id, authority_id, school_id, asset_tag, serial_number, category, \
         model, lifecycle_state, first_seen_at, updated_at) \
         select gen_random_uuid(), s.authority_id, s.ids[1 + i % s.n], 'B' || i, 'SN' || i, \
         (array['tablet', 'laptop'])[1 + i % 2], (array['iPad 10', 'ThinkPad L14'])[1 + i % 2], \
         'in_use', timestamptz '2021-06-01' + (i % 1000) * interval '1 day', now() \
         from generate_series(1, $1::bigint) i, \
         (select min(authority_id::text)::uuid as authority_id, array_agg(school_id) as ids, \
          count(*)::int as n from school) s",
    )
    .bind(devices)
    .execute(&pool)
    .await?;
    sqlx::query("analyze").execute(&pool).await?;
    pool.close().await;
    Ok(())
}

/// `rows` purchase rows as German Excel saves them ("CSV (Trennzeichen-getrennt)"): `;`,
/// Windows-1252, `DD.MM.YYYY` dates, `1.234,56 €` prices. Row k (from 1) with k odd is about
/// the existing device `SN{(k+1)/2}` with its own tag; with k even it is a new device. Every
/// third row names a funding programme, every other row a warranty in months.
fn purchase_file(rows: u64) -> Vec<u8> {
    let mut text = String::from(
        "Bestellnummer;Bestelldatum;Lieferdatum;Lieferant;Hersteller;Modell;Seriennummer;\
         Inventarnummer;Einzelpreis;Garantie (Monate);Förderprogramm;Schulnummer\r\n",
    );
    for k in 1..=rows {
        let (serial, tag) = if k % 2 == 1 {
            let device = k.div_ceil(2);
            (format!("SN{device}"), format!("B{device}"))
        } else {
            (format!("NEU-{k}"), format!("INV-{k}"))
        };
        let (maker, model) = if k.is_multiple_of(3) {
            ("Apple", "iPad 10")
        } else {
            ("Lenovo", "ThinkPad L14")
        };
        let day = 1 + k % 28;
        let month = 1 + k % 12;
        let year = 2020 + k % 6;
        let cents = 29_900 + (k % 1_000) * 137;
        let programme = ["DP", "", "SOFORT"][(k % 3) as usize];
        let warranty = if k.is_multiple_of(2) { "24" } else { "" };
        let _ = write!(
            text,
            "B-{year}-{order};{day:02}.{month:02}.{year};{day2:02}.{month:02}.{year};\
             Bürotechnik Müller GmbH;{maker};{model};{serial};{tag};{price} €;{warranty};\
             {programme};{school}\r\n",
            order = k / 50,
            day2 = (day + 1).min(28),
            price = german_price(cents),
            school = 100_001 + k % SCHOOLS,
        );
    }
    windows_1252(&text)
}

/// `1.234,56` for 123456 cents.
fn german_price(cents: u64) -> String {
    let euros = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, digit) in euros.chars().enumerate() {
        if i > 0 && (euros.len() - i).is_multiple_of(3) {
            grouped.push('.');
        }
        grouped.push(digit);
    }
    format!("{grouped},{:02}", cents % 100)
}

/// The text in Windows-1252; it holds ASCII, German umlauts and `€` only.
fn windows_1252(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            '€' => 0x80,
            'ä' => 0xE4,
            'ö' => 0xF6,
            'ü' => 0xFC,
            'ß' => 0xDF,
            'Ä' => 0xC4,
            'Ö' => 0xD6,
            'Ü' => 0xDC,
            ascii => u8::try_from(ascii).unwrap_or(b'?'),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_written_as_german_excel_does() {
        assert_eq!(german_price(29_900), "299,00");
        assert_eq!(german_price(123_456), "1.234,56");
        assert_eq!(german_price(100_000_001), "1.000.000,01");
    }

    #[test]
    fn the_file_is_windows_1252_with_a_row_per_purchase() {
        let bytes = purchase_file(4);
        // Header and four rows; `€` is 0x80 and `ö` 0xF6 in Windows-1252.
        assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 5);
        assert!(bytes.contains(&0x80) && bytes.contains(&0xF6));
        let text: String = bytes.iter().map(|&b| char::from(b)).collect();
        // Row 1 is the existing device SN1, row 2 a new one.
        assert!(text.contains(";SN1;B1;"), "{text}");
        assert!(text.contains(";NEU-2;INV-2;"), "{text}");
    }
}
