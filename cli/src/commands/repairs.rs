//! `bestand repairs`: open a repair (the device goes in_repair), close it with its outcome
//! and cost, and list repairs.

use bestand_core::model::{LifecycleState, RepairBilling, RepairOutcome};
use bestand_core::money::{parse_price, Notation, Price};
use bestand_core::store::repairs::{self, RepairClosing, RepairFilter, RepairOpening, RepairView};
use bestand_core::Clock;
use chrono::NaiveDate;
use clap::Subcommand;
use comfy_table::Table;
use sqlx::PgPool;

use super::loans::{parse_date_arg, print_one};
use crate::output::{self, opt, Format, Row};
use bestand_app::config::Config;
use bestand_app::{Database, Migrations, SystemClock};

#[derive(Debug, Subcommand)]
pub enum RepairsCommand {
    /// Open a repair of a device; the device goes in_repair.
    Open {
        /// Device id, asset tag or serial number.
        device: String,
        /// warranty (claim against dealer or maker), paid (by the Schulträger) or goodwill.
        #[arg(long, value_parser = parse_billing)]
        billing: RepairBilling,
        /// Who repairs it (dealer, maker, workshop).
        #[arg(long)]
        provider: Option<String>,
        /// What is broken (no pupil names).
        #[arg(long)]
        defect: Option<String>,
        /// The day it went to repair (default today).
        #[arg(long, value_parser = parse_date_arg, value_name = "DATE")]
        on: Option<NaiveDate>,
        /// Claim warranty although the recorded warranty has ended.
        #[arg(long)]
        force: bool,
        /// Who acts (default: the login name).
        #[arg(long)]
        by: Option<String>,
    },
    /// Close a repair with its outcome and cost; the device leaves in_repair.
    Close {
        /// The repair number.
        repair: i64,
        /// repaired, replaced or not_repairable.
        #[arg(long, value_parser = parse_outcome)]
        outcome: RepairOutcome,
        /// What the authority paid, as on the invoice (1.234,56 or 1.234,56 €).
        #[arg(long, value_parser = parse_cost)]
        cost: Option<Price>,
        /// The day it came back (default today).
        #[arg(long, value_parser = parse_date_arg, value_name = "DATE")]
        on: Option<NaiveDate>,
        /// The device's state afterwards: in_use (default), in_stock, to_check or retired
        /// (default retired when not repairable).
        #[arg(long, value_parser = parse_state)]
        to: Option<LifecycleState>,
        /// Who acts (default: the login name).
        #[arg(long)]
        by: Option<String>,
    },
    /// List repairs, the newest first.
    List {
        /// School number, name or alias.
        #[arg(long)]
        school: Option<String>,
        /// Only repairs not closed yet.
        #[arg(long)]
        open: bool,
    },
}

fn parse_billing(text: &str) -> Result<RepairBilling, String> {
    text.parse()
}

fn parse_outcome(text: &str) -> Result<RepairOutcome, String> {
    text.parse()
}

fn parse_state(text: &str) -> Result<LifecycleState, String> {
    text.parse()
}

/// Costs are typed as German invoices write them: `1.234` is a thousand two hundred and
/// thirty-four euros.
fn parse_cost(text: &str) -> Result<Price, String> {
    parse_price(text, Some(Notation::German)).map_err(|error| format!("'{text}': {error}"))
}

pub async fn run(command: RepairsCommand, config: &Config, format: Format) -> anyhow::Result<()> {
    let database = Database::open(config, Migrations::RequireCurrent).await?;
    let result = run_with(&database.pool, command, format).await;
    database.close().await?;
    result
}

async fn run_with(pool: &PgPool, command: RepairsCommand, format: Format) -> anyhow::Result<()> {
    let scope = &super::scope();
    let now = SystemClock.now();
    let today = bestand_core::clock::school_date(now);
    match command {
        RepairsCommand::Open {
            device,
            billing,
            provider,
            defect,
            on,
            force,
            by,
        } => {
            let opening = RepairOpening {
                billing,
                provider,
                defect,
                opened_on: on.unwrap_or(today),
                force,
            };
            let actor = super::actor(by);
            let opened = repairs::open_repair(pool, scope, &actor, &device, &opening, now).await?;
            for warning in &opened.warnings {
                eprintln!("warning: {warning}");
            }
            let repair = &opened.repair;
            let line = format!(
                "repair {} of {} opened ({}); device now {}",
                repair.repair_id,
                label(repair),
                repair.billing,
                repair.lifecycle_state
            );
            print_one(&opened, format, &line)
        }
        RepairsCommand::Close {
            repair,
            outcome,
            cost,
            on,
            to,
            by,
        } => {
            let closing = RepairClosing {
                outcome,
                cost: cost.as_ref().map(|price| price.amount),
                currency: cost.and_then(|price| price.currency),
                closed_on: on.unwrap_or(today),
                to,
            };
            let actor = super::actor(by);
            let closed = repairs::close_repair(pool, scope, &actor, repair, &closing, now).await?;
            let line = format!(
                "repair {} of {} closed: {}{}; device now {}",
                closed.repair_id,
                label(&closed),
                outcome.as_str().replace('_', " "),
                closed
                    .cost
                    .map(|cost| format!(", cost {cost} {}", opt(&closed.currency)))
                    .unwrap_or_default(),
                closed.lifecycle_state
            );
            print_one(&closed, format, &line)
        }
        RepairsCommand::List { school, open } => {
            let filter = RepairFilter {
                school,
                open_only: open,
            };
            let list = repairs::list_repairs(pool, scope, &filter).await?;
            output::print_list(&list, format)
        }
    }
}

fn label(repair: &RepairView) -> String {
    repair
        .asset_tag
        .clone()
        .or_else(|| repair.serial_number.clone())
        .unwrap_or_else(|| repair.device_id.to_string())
}

/// The repairs of one device, for `devices show`.
pub fn repairs_table(list: &[RepairView]) -> Table {
    output::table(
        RepairView::headers(),
        list.iter().map(|repair| repair.cells()),
    )
}

impl Row for RepairView {
    fn headers() -> Vec<&'static str> {
        vec![
            "repair", "device", "school", "opened", "billing", "provider", "defect", "closed",
            "outcome", "cost", "state",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.repair_id.to_string(),
            label(self),
            opt(&self.school_number),
            self.opened_on.to_string(),
            self.billing.clone(),
            opt(&self.provider),
            opt(&self.defect),
            opt(&self.closed_on),
            opt(&self.outcome),
            self.cost
                .map(|cost| format!("{cost} {}", opt(&self.currency)))
                .unwrap_or_default(),
            self.lifecycle_state.clone(),
        ]
    }
}
