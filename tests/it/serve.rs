//! `bestand serve`: scheduled runs, failure isolation, no overlap across processes, metrics.

use std::sync::Arc;
use std::time::Duration;

use bestand_app::config::Config;
use bestand_app::schedule::{parse_schedule, run_scheduler, Metrics};
use bestand_mocks::{Fleet, JamfProMock, MockConfig};
use tokio::sync::watch;

use crate::support::*;

fn config(db_url: &str, sources: &str) -> Config {
    let text = format!(
        "[database]\nurl = \"{db_url}\"\n\n[[authority]]\nslug = \"musterstadt\"\nname = \"Stadt Musterstadt\"\n\n{sources}"
    );
    Config::parse(&text, std::path::Path::new("serve-test.toml")).unwrap()
}

fn csv_file(rows: usize) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "bestand-serve-{}.csv",
        uuid::Uuid::new_v4().simple()
    ));
    let mut text = String::from("id,serial\n");
    for i in 0..rows {
        text.push_str(&format!("{i},SERVE{i:04}\n"));
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn file_source(name: &str, path: &std::path::Path, schedule: &str) -> String {
    format!(
        "[[source]]\nname = \"{name}\"\nkind = \"file\"\nauthority = \"musterstadt\"\nschedule = \"{schedule}\"\n\
         path = \"{}\"\nid_column = \"id\"\n\n[source.columns]\nserial_number = \"serial\"\n\n",
        path.display()
    )
}

async fn count_runs(pool: &sqlx::PgPool, source: &str, status: &str) -> i64 {
    sqlx::query_scalar("select count(*) from sync_run r join source s using (source_id) where s.name = $1 and r.status = $2")
        .bind(source)
        .bind(status)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[test]
fn schedules_take_the_five_field_cron_form() {
    assert!(parse_schedule("0 * * * *").is_ok());
    assert!(parse_schedule("*/15 6-18 * * 1-5").is_ok());
    assert!(
        parse_schedule("* * * * * *").is_ok(),
        "six fields start with seconds"
    );
    let error = parse_schedule("every hour").unwrap_err();
    assert!(error.contains("5-field cron form"), "{error}");
}

#[tokio::test]
async fn scheduled_sources_run_and_a_failing_one_leaves_the_others_unaffected() {
    let db = test_db().await;
    let good = csv_file(5);
    let missing = std::env::temp_dir().join("bestand-serve-does-not-exist.csv");
    let config = config(
        &db.url,
        &format!(
            "{}{}",
            file_source("good", &good, "* * * * * *"),
            file_source("broken", &missing, "* * * * * *")
        ),
    );
    let metrics = Arc::new(Metrics::default());
    let (stop, stopped) = watch::channel(false);
    let scheduler = tokio::spawn(run_scheduler(
        db.pool.clone(),
        config,
        Arc::clone(&metrics),
        stopped,
    ));
    tokio::time::sleep(Duration::from_millis(3500)).await;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), scheduler)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    assert!(
        count_runs(&db.pool, "good", "succeeded").await >= 2,
        "the good source ran on its schedule"
    );
    assert!(
        count_runs(&db.pool, "broken", "failed").await >= 1,
        "the broken source failed"
    );
    assert_eq!(count_runs(&db.pool, "good", "failed").await, 0);
    let devices: i64 = sqlx::query_scalar("select count(*) from device")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(devices, 5);
    let text = metrics.render();
    assert!(
        text.contains(
            "bestand_sync_runs_total{source=\"good\",kind=\"devices\",status=\"succeeded\"}"
        ),
        "{text}"
    );
    assert!(
        text.contains("bestand_source_devices{source=\"good\"} 5"),
        "{text}"
    );
    assert!(
        text.contains("bestand_sync_failures_total{source=\"broken\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn two_schedulers_on_one_database_never_run_a_source_at_once() {
    let db = test_db().await;
    let mock = JamfProMock::start(MockConfig::new(Fleet::new(9, 300)))
        .await
        .unwrap();
    mock.faults().set_delay(Duration::from_millis(400));
    let secret = std::env::temp_dir().join(format!(
        "bestand-serve-secret-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&secret, &mock.config().client_secret).unwrap();
    let source = format!(
        "[[source]]\nname = \"jamf\"\nkind = \"jamf_pro\"\nauthority = \"musterstadt\"\nschedule = \"* * * * * *\"\n\
         base_url = \"{}\"\nclient_id = \"{}\"\nclient_secret_file = \"{}\"\npage_size = 100\n",
        mock.base_url(),
        mock.config().client_id,
        secret.display()
    );
    let (stop, stopped) = watch::channel(false);
    let metrics = [Arc::new(Metrics::default()), Arc::new(Metrics::default())];
    let first = tokio::spawn(run_scheduler(
        db.pool.clone(),
        config(&db.url, &source),
        Arc::clone(&metrics[0]),
        stopped.clone(),
    ));
    let second = tokio::spawn(run_scheduler(
        db.pool.clone(),
        config(&db.url, &source),
        Arc::clone(&metrics[1]),
        stopped,
    ));
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.send(true).unwrap();
    for scheduler in [first, second] {
        tokio::time::timeout(Duration::from_secs(20), scheduler)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    let runs: Vec<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "select started_at, finished_at from sync_run where finished_at is not null order by started_at",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(runs.len() >= 2, "runs happened: {runs:?}");
    for pair in runs.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "runs overlapped: {pair:?}");
    }
    let succeeded = metrics[0].runs("jamf", "succeeded") + metrics[1].runs("jamf", "succeeded");
    assert_eq!(
        succeeded as usize,
        runs.len(),
        "every recorded run was one scheduler's"
    );
    let devices: i64 = sqlx::query_scalar("select count(*) from device")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(devices, 300, "nothing was created twice");
}
