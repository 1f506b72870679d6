//! `bestand review`: the cases the sync engine would not guess.

use bestand_core::store::devices::resolve_device;
use bestand_core::store::persons::resolve_person;
use bestand_core::store::review::{self, Resolution, ReviewView};
use bestand_core::sync::merge::FieldPriority;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};

use crate::output::{self, opt, time, Format, Row};
use bestand_app::config::Config;
use bestand_app::{Database, Migrations, SystemClock};

#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// List review items.
    List {
        #[arg(long, value_enum, default_value_t = StatusFilter::Open)]
        status: StatusFilter,
    },
    /// Settle one review item.
    Resolve(ResolveArgs),
    /// Find devices an earlier version merged from two devices (a link whose record reports a
    /// serial number other than its device's) and open a `serial_changed` item for each.
    Scan,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusFilter {
    Open,
    Resolved,
    Dismissed,
    All,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("decision").required(true).args(["link", "new", "split", "dismiss"])))]
pub struct ResolveArgs {
    /// The review item id.
    pub item: i64,
    /// The record is this device (id, asset tag or serial), or for a person item this person
    /// (id, username or email).
    #[arg(long, value_name = "DEVICE|PERSON")]
    pub link: Option<String>,
    /// The record is a device (or person) of its own.
    #[arg(long)]
    pub new: bool,
    /// The linked record is a device of its own that was taken for another: move its link to a
    /// new device, with the history its source wrote.
    #[arg(long)]
    pub split: bool,
    /// Leave things as they are (an unmatched record unlinked, a held identifier held); later runs
    /// will not raise the item again.
    #[arg(long)]
    pub dismiss: bool,
    /// Who decides (default: the login name).
    #[arg(long)]
    pub by: Option<String>,
}

pub async fn run(command: ReviewCommand, config: &Config, format: Format) -> anyhow::Result<()> {
    let database = Database::open(config, Migrations::RequireCurrent).await?;
    let result = async {
        match command {
            ReviewCommand::List { status } => {
                let status = match status {
                    StatusFilter::Open => Some("open"),
                    StatusFilter::Resolved => Some("resolved"),
                    StatusFilter::Dismissed => Some("dismissed"),
                    StatusFilter::All => None,
                };
                let items = review::list_review(&database.pool, &super::scope(), status).await?;
                output::print_list(&items, format)
            }
            ReviewCommand::Resolve(args) => {
                let resolution = if let Some(key) = &args.link {
                    let kind =
                        review::review_kind(&database.pool, &super::scope(), args.item).await?;
                    if kind == review::PERSON_AMBIGUOUS {
                        Resolution::LinkTo(
                            resolve_person(&database.pool, &super::scope(), None, key).await?,
                        )
                    } else {
                        Resolution::LinkTo(
                            resolve_device(&database.pool, &super::scope(), key).await?,
                        )
                    }
                } else if args.new {
                    Resolution::CreateNew
                } else if args.split {
                    Resolution::Split
                } else {
                    Resolution::Dismiss
                };
                let now = bestand_core::Clock::now(&SystemClock);
                let priority = FieldPriority(config.sync.field_priority.clone());
                let outcome = review::resolve_review(
                    &database.pool,
                    &super::scope(),
                    &super::actor(args.by),
                    args.item,
                    resolution,
                    &priority,
                    now,
                )
                .await?;
                println!("Review item {}: {outcome}.", args.item);
                Ok(())
            }
            ReviewCommand::Scan => {
                let now = bestand_core::Clock::now(&SystemClock);
                let scan = review::find_merged_devices(
                    &database.pool,
                    &super::scope(),
                    &super::actor(None),
                    now,
                )
                .await?;
                match format {
                    Format::Json => println!("{}", serde_json::to_string_pretty(&scan)?),
                    _ => println!(
                        "Checked {} live links: {} report a serial number other than their \
                         device's; {} new review items (see `bestand review list`).",
                        scan.links, scan.contradicting, scan.opened
                    ),
                }
                Ok(())
            }
        }
    }
    .await;
    database.close().await?;
    result
}

impl Row for ReviewView {
    fn headers() -> Vec<&'static str> {
        vec![
            "id",
            "kind",
            "source",
            "record",
            "summary",
            "candidates",
            "status",
            "since",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.review_item_id.to_string(),
            self.kind.clone(),
            opt(&self.source_name),
            opt(&self.external_id),
            self.summary.clone(),
            self.candidate_labels.join(" "),
            self.resolution
                .clone()
                .map(|r| format!("{} ({r})", self.status))
                .unwrap_or_else(|| self.status.clone()),
            time(&Some(self.created_at)),
        ]
    }
}
