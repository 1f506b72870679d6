//! `cargo xtask bench --forecast`: the replacement forecast over a fleet of a million devices
//! (issue 17's target: under 2 s). It starts bestand's own PostgreSQL with production settings,
//! fills an inventory with `generate_series` in SQL (a sync would take minutes and measures
//! something else), and times the core function `store::forecast::replacement_forecast`
//! itself, in this process, cold and warm (docs/performance.md, "Replacement forecast").

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use bestand_core::access::Scope;
use bestand_core::service_level::Quarter;
use bestand_core::store::forecast::{replacement_forecast, EarlyByTickets, ReplacementRequest};
use bestand_pgcluster::LocalCluster;
use rust_decimal::Decimal;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// Schools of the generated authority (the model city of the domain notes has 32).
const SCHOOLS: i32 = 32;

pub fn bench_forecast(workspace: &Path, devices: u64) -> anyhow::Result<()> {
    let bench_dir = crate::target_dir(workspace).join("bench");
    let cluster_dir = bench_dir.join("postgres");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    crate::wipe_cluster(&runtime, &cluster_dir)?;
    std::fs::create_dir_all(&bench_dir)?;
    crate::step("starting PostgreSQL (production settings)");
    let cluster = LocalCluster::open(&cluster_dir, None)?;
    let started = runtime.block_on(cluster.start())?;
    let outcome = runtime.block_on(measure(started.connect_options(), devices));
    runtime.block_on(started.stop())?;
    outcome
}

async fn measure(options: PgConnectOptions, devices: u64) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await?;
    bestand_core::store::migrate(&pool).await?;
    crate::step(&format!("inserting {devices} devices at {SCHOOLS} schools"));
    let filled = Instant::now();
    fill(&pool, devices).await?;
    println!("filled in {:.1} s", filled.elapsed().as_secs_f64());

    crate::step("timing store::forecast::replacement_forecast, 2027-2032, +2.5 % a year");
    // `early`: with --early-by-tickets, which marks every device's cohort in the grouping
    // (there are no tickets here, so no cohort is moved: this times the marking alone).
    let request = |smooth: bool, early: bool| ReplacementRequest {
        first_year: 2027,
        last_year: 2032,
        price_year: 2026,
        yearly_increase: Decimal::new(25, 3),
        smooth,
        target: true,
        spread_growth: false,
        school: None,
        devices: false,
        early_by_tickets: early.then(|| EarlyByTickets {
            threshold: Decimal::new(5, 1),
            last: Quarter::new(2026, 3).expect("a quarter"),
        }),
    };
    let mut worst: f64 = 0.0;
    for (label, smooth, early) in [
        ("cold", false, false),
        ("warm", false, false),
        ("smoothed", true, false),
        ("early", false, true),
    ] {
        let started = Instant::now();
        let report = replacement_forecast(&pool, &Scope::All, &request(smooth, early)).await?;
        let seconds = started.elapsed().as_secs_f64();
        worst = worst.max(seconds);
        let replaced: u32 = report.by_year.iter().map(|t| t.devices).sum();
        let cost: Decimal = report.by_year.iter().map(|t| t.cost).sum();
        println!(
            "{label:<9} {seconds:>6.2} s  {} lines, {replaced} devices, {cost} EUR",
            report.lines.len()
        );
    }
    println!(
        "| replacement forecast, {devices} devices | {worst:.2} s (slowest of four) | < 2 s | {} |",
        if worst < 2.0 { "yes" } else { "no" }
    );
    pool.close().await;
    Ok(())
}

/// One authority with `SCHOOLS` schools, a catalogue of four models, laptops living six years,
/// a target equipment at every school, and `devices` devices in seven categories bought over
/// eight years: a tenth without a purchase date, a twentieth without a price, a fiftieth
/// retired.
async fn fill(pool: &PgPool, devices: u64) -> anyhow::Result<()> {
    let devices = i64::try_from(devices).context("--devices is too large")?;
    let statements = [
        "insert into school_authority (slug, name) values ('musterstadt', 'Stadt Musterstadt')",
        "insert into school (authority_id, school_number, name, school_type) \
         select authority_id, (100000 + i)::text, 'Schule ' || i, \
         (array['grundschule', 'gymnasium', 'realschule', 'berufsschule'])[1 + i % 4] \
         from school_authority, generate_series(1, $1::int) i",
        "insert into device_model (authority_id, model, category, list_price, life_years, updated_at, updated_by) \
         select authority_id, m.model, m.category, m.price, m.life, now(), 'bench' from school_authority, \
         (values ('iPad 10', 'tablet', 429.00, 5), ('ThinkPad L14', 'laptop', 899.00, null), \
          ('Clevertouch 65', 'display', 2490.00, 8), ('MacBook Air', 'laptop', 1149.00, 6)) \
          as m(model, category, price, life)",
        "insert into category_life (authority_id, category, life_years) \
         select authority_id, 'laptop', 6 from school_authority",
        "insert into school_target_equipment (school_id, authority_id, category, devices_per_room, class_rooms) \
         select school_id, authority_id, 'display', 1, 20 from school",
    ];
    for (i, sql) in statements.iter().enumerate() {
        let query = sqlx::query(sql);
        let query = if i == 1 { query.bind(SCHOOLS) } else { query };
        query.execute(pool).await?;
    }
    sqlx::query(
        "insert into device (device_id, authority_id, school_id, asset_tag, serial_number, category, \
         model, purchase_date, purchase_price, currency, lifecycle_state, first_seen_at, updated_at) \
         select gen_random_uuid(), s.authority_id, s.ids[1 + i % s.n], 'B' || i, 'SN' || i, \
         (array['tablet', 'tablet', 'laptop', 'laptop', 'desktop', 'display', 'printer'])[1 + i % 7], \
         (array['iPad 10', 'iPad 9', 'ThinkPad L14', 'MacBook Air', 'OptiPlex 7010', \
          'Clevertouch 65', 'Epson EB-L200'])[1 + i % 7], \
         case when i % 10 = 0 then null else date '2018-01-01' + (i % 2920)::int end, \
         case when i % 20 = 0 then null else 300 + (i % 40) * 25 end, 'EUR', \
         case when i % 50 = 0 then 'retired' else 'in_use' end, \
         timestamptz '2019-06-01' + (i % 2000) * interval '1 day', now() \
         from generate_series(1, $1::bigint) i, \
         (select min(authority_id::text)::uuid as authority_id, array_agg(school_id) as ids, \
          count(*)::int as n from school) s",
    )
    .bind(devices)
    .execute(pool)
    .await?;
    sqlx::query("analyze").execute(pool).await?;
    Ok(())
}
