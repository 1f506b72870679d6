//! bestand as the separate processes it runs as in a school authority: a scheduled sync, an
//! admin's query and hand-outs at several counters, all at once on bestand's own embedded
//! PostgreSQL cluster (no `[database]` URL), which none of them may stop under the others.

use std::path::{Path, PathBuf};
use std::process::Output;

use bestand_pgcluster::{ClusterStatus, LocalCluster};
use sqlx::Connection;

/// The `bestand` binary `cargo xtask test` builds for these tests.
fn bestand_bin() -> PathBuf {
    std::env::var_os("BESTAND_BIN")
        .map(PathBuf::from)
        .expect("BESTAND_BIN names the bestand binary; run the tests with `cargo xtask test`")
}

/// A data folder with a configuration: one authority, one school, a file source of 30 devices.
fn installation(test: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("proc-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut csv = String::from("Inventarnummer;Seriennummer;Schule\n");
    for i in 0..30 {
        csv.push_str(&format!("INV-{i:05};SN{i:08};100001\n"));
    }
    std::fs::write(dir.join("inventar.csv"), csv).unwrap();
    std::fs::write(
        dir.join("bestand.toml"),
        format!(
            r#"[database]
data_dir = "{data}"

[[authority]]
slug = "musterstadt"
name = "Stadt Musterstadt"
school_year_end = "07-31"

[[authority.school]]
number = "100001"
name = "Grundschule Lindenweg"
type = "grundschule"

[[source]]
name = "inventar"
kind = "file"
authority = "musterstadt"
path = "{csv}"
delimiter = ";"
id_column = "Inventarnummer"
[source.columns]
asset_tag = "Inventarnummer"
serial_number = "Seriennummer"
school = "Schule"
"#,
            data = dir.join("data").display(),
            csv = dir.join("inventar.csv").display(),
        ),
    )
    .unwrap();
    dir
}

fn command(dir: &Path, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(bestand_bin());
    command
        .arg("--config")
        .arg(dir.join("bestand.toml"))
        .args(args)
        // The test runner's cluster must not be used: these commands use their own.
        .env_remove("DATABASE_URL")
        .env_remove("BESTAND_CONFIG")
        .kill_on_drop(true);
    command
}

async fn run(dir: &Path, args: &[&str]) -> Output {
    command(dir, args).output().await.unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn cluster(dir: &Path) -> LocalCluster {
    LocalCluster::open(&dir.join("data").join("postgres"), None).unwrap()
}

/// Devices from one sync and a pupil to lend to (persons come from directories, which this
/// installation has none of, so the pupil is written directly), then the server stopped.
async fn prepared(test: &str) -> PathBuf {
    let dir = installation(test);
    let started = run(&dir, &["db", "start"]).await;
    assert!(started.status.success(), "{}", text(&started));
    let synced = run(&dir, &["sync"]).await;
    assert!(synced.status.success(), "{}", text(&synced));
    let mut connection = sqlx::PgConnection::connect(&cluster(&dir).connection_url())
        .await
        .unwrap();
    sqlx::query(
        "with p as (insert into person (authority_id, username, given_name, family_name, \
         first_seen_at, updated_at) select authority_id, 'lea.schulz', 'Lea', 'Schulz', now(), \
         now() from school_authority returning person_id, authority_id) \
         insert into person_membership (authority_id, person_id, source_id, school_id, role, \
         class_name) select p.authority_id, p.person_id, s.source_id, sc.school_id, 'student', '5a' \
         from p, source s, school sc",
    )
    .execute(&mut connection)
    .await
    .unwrap();
    connection.close().await.unwrap();
    let stopped = run(&dir, &["db", "stop"]).await;
    assert!(stopped.status.success(), "{}", text(&stopped));
    dir
}

#[tokio::test]
async fn many_commands_at_once_on_the_embedded_cluster_all_succeed_and_leave_it_stopped() {
    let dir = prepared("many").await;
    // One sync (a second of the same source is refused by its lock, by design), the rest alike.
    let mut runs = vec![command(&dir, &["sync"]).output()];
    for _ in 0..8 {
        runs.push(command(&dir, &["devices", "list", "--format", "json"]).output());
    }
    let devices: Vec<String> = (0..8).map(|i| format!("INV-{i:05}")).collect();
    for device in &devices {
        runs.push(command(&dir, &["loans", "issue", device, "--to", "lea.schulz"]).output());
    }
    let outputs = futures::future::join_all(runs).await;
    let failed: Vec<String> = outputs
        .iter()
        .filter_map(|output| output.as_ref().ok())
        .filter(|output| !output.status.success())
        .map(text)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of 17 failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    assert_eq!(outputs.iter().filter(|o| o.is_ok()).count(), 17);
    for listed in &outputs[1..9] {
        let devices: serde_json::Value =
            serde_json::from_slice(&listed.as_ref().unwrap().stdout).unwrap();
        assert_eq!(devices.as_array().map(Vec::len), Some(30));
    }
    assert_eq!(
        cluster(&dir).status().await.unwrap(),
        ClusterStatus::Stopped,
        "the last command out stops the server it was started for"
    );
    let loans = run(&dir, &["loans", "list", "--format", "json"]).await;
    let loans: serde_json::Value = serde_json::from_slice(&loans.stdout).unwrap();
    assert_eq!(loans.as_array().map(Vec::len), Some(8), "{loans}");
}

#[tokio::test]
async fn a_hundred_hand_outs_of_one_device_in_separate_processes_make_one_loan() {
    let dir = prepared("race").await;
    let runs: Vec<_> = (0..100)
        .map(|_| command(&dir, &["loans", "issue", "INV-00029", "--to", "lea.schulz"]).output())
        .collect();
    let outputs: Vec<Output> = futures::future::join_all(runs)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let issued = outputs.iter().filter(|o| o.status.success()).count();
    let refused: Vec<&Output> = outputs.iter().filter(|o| !o.status.success()).collect();
    let unclear: Vec<String> = refused
        .iter()
        .filter(|o| !String::from_utf8_lossy(&o.stderr).contains("already on loan"))
        .map(|o| text(o))
        .collect();
    assert_eq!(issued, 1);
    assert!(
        unclear.is_empty(),
        "every refusal says why; {} did not:\n{}",
        unclear.len(),
        unclear
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(refused.len(), 99);
    assert_eq!(
        cluster(&dir).status().await.unwrap(),
        ClusterStatus::Stopped
    );
}

#[tokio::test]
async fn a_sync_killed_mid_run_changes_nothing_and_the_next_run_records_it_and_applies() {
    let dir = prepared("killed").await;
    let csv = dir.join("inventar.csv");
    let export = std::fs::read_to_string(&csv).unwrap();
    // A source that never finishes: the file is a pipe nobody writes to.
    std::fs::remove_file(&csv).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&csv)
        .status()
        .unwrap();
    assert!(made.success());
    let mut stuck = command(&dir, &["sync"]).spawn().unwrap();
    let mut running = 0;
    for _ in 0..300 {
        if let Ok(mut connection) =
            sqlx::PgConnection::connect(&cluster(&dir).connection_url()).await
        {
            running = sqlx::query_scalar::<_, i64>(
                "select count(*) from sync_run where status = 'running'",
            )
            .fetch_one(&mut connection)
            .await
            .unwrap_or(0);
            connection.close().await.unwrap();
            if running == 1 {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(running, 1, "the sync is under way");
    stuck.start_kill().unwrap();
    stuck.wait().await.unwrap();

    std::fs::remove_file(&csv).unwrap();
    std::fs::write(&csv, export.replace("SN00000000", "SN00000099")).unwrap();
    let next = run(&dir, &["sync"]).await;
    assert!(next.status.success(), "{}", text(&next));
    let runs = run(&dir, &["sync", "runs", "--format", "json"]).await;
    let runs: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    let statuses: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|run| run["status"].as_str())
        .collect();
    assert!(statuses.contains(&"aborted"), "{statuses:?}");
    assert_eq!(
        statuses
            .iter()
            .filter(|status| **status == "running")
            .count(),
        0
    );
    assert_eq!(
        cluster(&dir).status().await.unwrap(),
        ClusterStatus::Stopped
    );
}
