//! `bestand privacy`: data protection chores. `purge` applies an authority's retention period
//! to the persons who left; without `--apply` it only shows what it would change.

use bestand_core::privacy::{self, PurgeReport};
use clap::Subcommand;

use crate::output::{self, opt, time, Format};
use bestand_app::config::Config;
use bestand_app::{Database, Migrations, SystemClock};

#[derive(Debug, Subcommand)]
pub enum PrivacyCommand {
    /// Pseudonymise the borrower on closed loans and remove persons who left longer ago than the
    /// authority's `retention_months`, with what still names them (review items, sync run
    /// warnings, MDM records; docs/privacy.md). Shows what it would change unless --apply is
    /// given.
    Purge {
        /// Only this authority (slug); default: every configured authority.
        #[arg(long)]
        authority: Option<String>,
        /// Change the data. Without it, nothing is written but the record of the dry run.
        #[arg(long)]
        apply: bool,
        /// Who purges, for the record (default: the login name).
        #[arg(long)]
        by: Option<String>,
    },
}

pub async fn run(command: PrivacyCommand, config: &Config, format: Format) -> anyhow::Result<()> {
    let PrivacyCommand::Purge {
        authority,
        apply,
        by,
    } = command;
    let authorities: Vec<_> = config
        .authorities
        .iter()
        .filter(|known| authority.as_deref().is_none_or(|slug| known.slug == slug))
        .collect();
    if authorities.is_empty() {
        anyhow::bail!(
            "no authority {} in {}",
            authority.as_deref().unwrap_or("at all"),
            config.path.display()
        );
    }
    let mut plans = Vec::new();
    for known in &authorities {
        let Some(months) = known.retention_months else {
            anyhow::bail!(
                "authority '{}' has no retention_months in {}; set it to the deletion period of \
                 its federal state (months after a person left)",
                known.slug,
                config.path.display()
            );
        };
        plans.push((known.slug.clone(), months));
    }
    let database = Database::open(config, Migrations::RequireCurrent).await?;
    let now = bestand_core::Clock::now(&SystemClock);
    let scope = super::scope();
    let actor = super::actor(by);
    let mut reports = Vec::new();
    for (slug, months) in plans {
        match privacy::purge(&database.pool, &scope, &actor, now, &slug, months, !apply).await {
            Ok(report) => reports.push(report),
            Err(error) => {
                database.close().await?;
                return Err(error.into());
            }
        }
    }
    database.close().await?;
    match format {
        Format::Table => reports.iter().for_each(print_report),
        _ => output::print_json(&reports)?,
    }
    Ok(())
}

fn print_report(report: &PurgeReport) {
    let mode = if report.dry_run {
        "dry run, nothing changed; run again with --apply to purge"
    } else {
        "applied"
    };
    println!(
        "{}: retention {} months, persons who left before {} ({mode})",
        report.authority,
        report.retention_months,
        time(&Some(report.cutoff))
    );
    println!(
        "  closed loans pseudonymised: {} · persons removed: {} · kept because a loan is open: {}",
        report.loans.len(),
        report.persons.len(),
        report.kept_with_open_loans.len()
    );
    let scrubbed = &report.scrubbed;
    println!(
        "  naming them elsewhere: review items deleted {} · scrubbed {} · sync runs {} · \
         device links {} · raw payloads {}",
        scrubbed.review_items_deleted,
        scrubbed.review_items_scrubbed,
        scrubbed.sync_runs,
        scrubbed.device_links,
        scrubbed.raw_payloads
    );
    if !report.loans.is_empty() {
        println!(
            "{}",
            output::table(
                vec!["loan", "state", "asset tag", "serial", "borrower now"],
                report.loans.iter().map(|loan| vec![
                    loan.loan_id.to_string(),
                    loan.state.clone(),
                    opt(&loan.asset_tag),
                    opt(&loan.serial_number),
                    loan.pseudonym.clone(),
                ])
            )
        );
    }
    for (title, persons) in [
        ("removed", &report.persons),
        ("kept (open loan)", &report.kept_with_open_loans),
    ] {
        if !persons.is_empty() {
            println!("Persons {title}:");
            println!(
                "{}",
                output::table(
                    vec!["person", "left", "person id"],
                    persons.iter().map(|person| vec![
                        opt(&person.username),
                        time(&Some(person.left_at)),
                        person.person_id.to_string(),
                    ])
                )
            );
        }
    }
}
