//! `bestand inventory`: stocktaking (Inventur) at one school: start a count, scan asset tags
//! (as arguments, or from a barcode scanner typing one tag a line), see what is missing or
//! misplaced, and close the count.

use std::io::BufRead;

use bestand_core::store::inventory::{self, CountResult, Finding, ScanPlace, StocktakeView};
use bestand_core::Clock;
use clap::Subcommand;
use sqlx::PgPool;

use super::loans::print_one;
use crate::output::{self, opt, time, Format, Row};
use bestand_app::config::Config;
use bestand_app::{Database, Migrations, SystemClock};

#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
    /// Start a count at a school (one open count per school).
    Count {
        /// School number, name or alias.
        #[arg(long)]
        school: String,
        /// Who counts (default: the login name).
        #[arg(long)]
        by: Option<String>,
    },
    /// Mark asset tags as seen; without tags, read them from stdin, one a line (a barcode
    /// scanner types them so), until end of input.
    Scan {
        /// The count's number.
        count: i64,
        /// Asset tags (Inventarnummern).
        tags: Vec<String>,
        /// The room the tags were scanned in.
        #[arg(long)]
        room: Option<String>,
        /// The building the tags were scanned in.
        #[arg(long)]
        building: Option<String>,
        /// Who scans (default: the login name).
        #[arg(long)]
        by: Option<String>,
    },
    /// What the count found: not seen, away, booked elsewhere, unknown tags.
    Result {
        /// The count's number.
        count: i64,
    },
    /// Close a count.
    Close {
        /// The count's number.
        count: i64,
        /// Record the room (and building) a device of this school was seen in where it is
        /// booked in another.
        #[arg(long)]
        apply: bool,
        /// Who closes it (default: the login name).
        #[arg(long)]
        by: Option<String>,
    },
}

pub async fn run(command: InventoryCommand, config: &Config, format: Format) -> anyhow::Result<()> {
    let database = Database::open(config, Migrations::RequireCurrent).await?;
    let result = run_with(&database.pool, command, format).await;
    database.close().await?;
    result
}

async fn run_with(pool: &PgPool, command: InventoryCommand, format: Format) -> anyhow::Result<()> {
    let scope = &super::scope();
    let now = SystemClock.now();
    match command {
        InventoryCommand::Count { school, by } => {
            let count =
                inventory::start_count(pool, scope, &super::actor(by), &school, now).await?;
            let line = format!(
                "count {} started at {} ({}); scan with `bestand inventory scan {} TAG...`",
                count.stocktake_id, count.school_name, count.school_number, count.stocktake_id
            );
            print_one(&count, format, &line)
        }
        InventoryCommand::Scan {
            count,
            tags,
            room,
            building,
            by,
        } => {
            let tags = if tags.is_empty() {
                read_tags(std::io::stdin().lock())?
            } else {
                tags
            };
            let place = ScanPlace { building, room };
            let report =
                inventory::scan_tags(pool, scope, &super::actor(by), count, &tags, &place, now)
                    .await?;
            let mut line = format!(
                "count {count}: {} tag(s) recorded, {} already counted",
                report.recorded.len(),
                report.repeated.len()
            );
            if !report.unknown.is_empty() {
                line.push_str(&format!("; unknown (kept): {}", report.unknown.join(", ")));
            }
            print_one(&report, format, &line)
        }
        InventoryCommand::Result { count } => {
            let result = inventory::count_result(pool, scope, count).await?;
            match format {
                Format::Json => output::print_json(&result),
                Format::Csv => output::print_list(&result.findings, format),
                Format::Table => {
                    print_summary(&result);
                    output::print_list(&result.findings, format)
                }
            }
        }
        InventoryCommand::Close { count, apply, by } => {
            let closed =
                inventory::close_count(pool, scope, &super::actor(by), count, apply, now).await?;
            let mut line = format!(
                "count {count} closed; {} device(s) moved to the room they were seen in",
                closed.relocated.len()
            );
            for moved in &closed.relocated {
                line.push_str(&format!(
                    "\n  {}: {} / {} → {} / {}",
                    opt(&moved.asset_tag),
                    opt(&moved.old_building),
                    opt(&moved.old_room),
                    opt(&moved.new_building),
                    opt(&moved.new_room)
                ));
            }
            print_one(&closed, format, &line)
        }
    }
}

/// Tags as a scanner types them: one a line, trimmed, blank lines skipped.
pub fn read_tags(input: impl BufRead) -> anyhow::Result<Vec<String>> {
    let mut tags = Vec::new();
    for line in input.lines() {
        let line = line?;
        let tag = line.trim();
        if !tag.is_empty() {
            tags.push(tag.to_string());
        }
    }
    Ok(tags)
}

fn print_summary(result: &CountResult) {
    let count: &StocktakeView = &result.count;
    let state = match count.closed_at {
        Some(_) => format!("closed {}", time(&count.closed_at)),
        None => "open".to_string(),
    };
    println!(
        "count {} at {} ({}), started {} by {}, {state}",
        count.stocktake_id,
        count.school_name,
        count.school_number,
        time(&Some(count.started_at)),
        count.started_by
    );
    println!(
        "{} tag(s) scanned; {} of {} expected device(s) seen",
        count.scanned, result.expected_seen, result.expected
    );
}

/// How a finding reads in a table.
fn finding_text(finding: &str) -> &str {
    match finding {
        "not_seen" => "expected, not seen",
        "on_loan" => "on loan, not expected",
        "in_repair" => "in repair, not expected",
        "other_school" => "seen here, booked at another school",
        "other_room" => "seen here, booked in another room",
        "not_present_state" => "seen here, booked as gone",
        "unknown_tag" => "unknown tag",
        other => other,
    }
}

impl Row for Finding {
    fn headers() -> Vec<&'static str> {
        vec![
            "finding",
            "asset tag",
            "serial",
            "model",
            "state",
            "booked school",
            "booked building / room",
            "seen building / room",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            finding_text(&self.finding).to_string(),
            opt(&self.asset_tag),
            opt(&self.serial_number),
            opt(&self.model),
            opt(&self.lifecycle_state),
            opt(&self.booked_school),
            format!(
                "{} / {}",
                opt(&self.booked_building),
                opt(&self.booked_room)
            ),
            format!("{} / {}", opt(&self.seen_building), opt(&self.seen_room)),
        ]
    }
}
