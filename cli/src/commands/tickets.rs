//! `bestand tickets`: the service desk's tickets and the devices they concern
//! (docs/tickets.md): list with filters, show one, link and unlink a device by hand.

use bestand_core::store::tickets::{
    self, DeviceTicketView, HandLink, TicketDetail, TicketFilter, TicketSummary,
};
use chrono::NaiveDate;
use clap::{Args, Subcommand};

use crate::output::{self, opt, time, Format, Row};
use bestand_app::config::Config;
use bestand_app::{Database, Migrations, SystemClock};

#[derive(Debug, Subcommand)]
pub enum TicketsCommand {
    /// List tickets, filtered; deleted tickets are left out.
    List(ListArgs),
    /// Show one ticket with its devices, how each link was found, its times and deadlines.
    Show {
        /// Ticket number, or SOURCE:ID (the ticket system's id), or the ticket id.
        ticket: String,
    },
    /// Link a ticket to a device by hand; the link survives every later read of the ticket.
    Link {
        /// Ticket number, or SOURCE:ID.
        ticket: String,
        /// Device id, asset tag (Inventarnummer) or serial number.
        device: String,
        /// Who links (default: the login name).
        #[arg(long)]
        by: Option<String>,
    },
    /// Remove the link of a ticket to a device, however it was found.
    Unlink {
        /// Ticket number, or SOURCE:ID.
        ticket: String,
        /// Device id, asset tag (Inventarnummer) or serial number.
        device: String,
        /// Who unlinks (default: the login name).
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// School number, name or alias.
    #[arg(long)]
    pub school: Option<String>,
    /// new, open, pending, closed or merged.
    #[arg(long, value_parser = ["new", "open", "pending", "closed", "merged"])]
    pub state: Option<String>,
    /// The provider's name as mapped in the source's `providers`.
    #[arg(long)]
    pub provider: Option<String>,
    /// Part of a linked device's model name or identifier.
    #[arg(long)]
    pub model: Option<String>,
    /// network, school_server, end_devices, software, telephony, peripherals or other.
    #[arg(long, value_parser = ["network", "school_server", "end_devices", "software", "telephony", "peripherals", "other"])]
    pub topic: Option<String>,
    /// Created on or after this day (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    pub since: Option<NaiveDate>,
    /// Created on or before this day (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    pub until: Option<NaiveDate>,
    /// Only tickets linked to no device.
    #[arg(long)]
    pub no_device: bool,
}

pub async fn run(command: TicketsCommand, config: &Config, format: Format) -> anyhow::Result<()> {
    let database = Database::open(config, Migrations::RequireCurrent).await?;
    let pool = &database.pool;
    let scope = super::scope();
    let now = || bestand_core::Clock::now(&SystemClock);
    let result = match command {
        TicketsCommand::List(args) => {
            let filter = TicketFilter {
                school: args.school,
                state: args.state,
                provider: args.provider,
                model: args.model,
                topic: args.topic,
                since: args.since,
                until: args.until,
                no_device: args.no_device,
            };
            let list = tickets::list_tickets(pool, &scope, &filter).await?;
            output::print_list(&list, format)?;
            if format == Format::Table {
                eprintln!("{} ticket(s)", list.len());
            }
            Ok(())
        }
        TicketsCommand::Show { ticket } => {
            let detail = tickets::show_ticket(pool, &scope, &ticket).await?;
            match format {
                Format::Table => print_detail(&detail),
                _ => output::print_json(&detail)?,
            }
            Ok(())
        }
        TicketsCommand::Link { ticket, device, by } => {
            let actor = super::actor(by);
            let link = tickets::link_ticket(pool, &scope, &actor, &ticket, &device, now()).await?;
            match format {
                Format::Table => println!("{}", describe_link(&link, &device, true)),
                _ => output::print_json(&link)?,
            }
            Ok(())
        }
        TicketsCommand::Unlink { ticket, device, by } => {
            let actor = super::actor(by);
            let link =
                tickets::unlink_ticket(pool, &scope, &actor, &ticket, &device, now()).await?;
            match format {
                Format::Table => println!("{}", describe_link(&link, &device, false)),
                _ => output::print_json(&link)?,
            }
            Ok(())
        }
    };
    database.close().await?;
    result
}

fn describe_link(link: &HandLink, device: &str, linked: bool) -> String {
    let device = device.trim();
    match (linked, link.before.as_deref()) {
        (true, None) => format!("Ticket {} linked to device {device} by hand.", link.number),
        (true, Some("hand")) => format!(
            "Ticket {} was already linked to device {device} by hand.",
            link.number
        ),
        (true, Some(how)) => format!(
            "Ticket {} was linked to device {device} by {how}; the link is now held by hand.",
            link.number
        ),
        (false, how) => format!(
            "Link of ticket {} to device {device} ({}) removed.",
            link.number,
            how.unwrap_or("")
        ),
    }
}

impl Row for TicketSummary {
    fn headers() -> Vec<&'static str> {
        vec![
            "number", "title", "state", "topic", "school", "provider", "created", "devices",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.number.clone(),
            self.title.clone(),
            self.state.clone(),
            self.topic.clone(),
            school(&self.school_number, &self.school_name),
            opt(&self.provider),
            time(&Some(self.created_at)),
            self.devices
                .clone()
                .unwrap_or_else(|| "no device".to_string()),
        ]
    }
}

fn school(number: &Option<String>, name: &Option<String>) -> String {
    match (number, name) {
        (Some(number), Some(name)) => format!("{name} ({number})"),
        _ => String::new(),
    }
}

fn print_detail(detail: &TicketDetail) {
    let state = match (&detail.deleted_at, &detail.merged_into) {
        (Some(deleted), _) => format!(
            "{} ({}), deleted in the ticket system (not listed since {})",
            detail.state,
            detail.source_state,
            deleted.format("%Y-%m-%d")
        ),
        (None, Some(target)) => format!("merged into ticket {target}"),
        _ => format!("{} ({})", detail.state, detail.source_state),
    };
    let rows: Vec<(&str, String)> = vec![
        ("number", detail.number.clone()),
        (
            "source",
            format!("{}:{}", detail.source_name, detail.external_id),
        ),
        ("title", detail.title.clone()),
        ("state", state),
        ("priority", opt(&detail.priority)),
        ("topic", detail.topic.clone()),
        ("school", school(&detail.school_number, &detail.school_name)),
        ("group", opt(&detail.group_name)),
        ("provider", opt(&detail.provider)),
        ("reported by (role)", opt(&detail.customer_role)),
        ("created", time(&Some(detail.created_at))),
        ("first response", time(&detail.first_response_at)),
        ("forwarded", time(&detail.forwarded_at)),
        ("closed", time(&detail.closed_at)),
        ("first response due", time(&detail.first_response_due_at)),
        ("close due", time(&detail.close_due_at)),
        ("updated", time(&Some(detail.updated_at))),
    ];
    println!(
        "{}",
        output::table(
            vec!["field", "value"],
            rows.into_iter().map(|(k, v)| vec![k.to_string(), v])
        )
    );
    println!("\nDevices");
    if detail.devices.is_empty() {
        println!("no device");
        return;
    }
    let devices = detail.devices.iter().map(|d| {
        vec![
            opt(&d.asset_tag),
            opt(&d.serial_number),
            opt(&d.model),
            d.found_by.clone(),
            d.detail.clone(),
            format!("{} ({})", time(&Some(d.linked_at)), d.linked_by),
        ]
    });
    println!(
        "{}",
        output::table(
            vec![
                "asset tag",
                "serial",
                "model",
                "found by",
                "detail",
                "linked"
            ],
            devices
        )
    );
}

/// The tickets under a device in `bestand devices show`.
pub fn device_tickets_table(list: &[DeviceTicketView]) -> String {
    if list.is_empty() {
        return "no ticket".to_string();
    }
    let rows = list.iter().map(|t| {
        let state = match t.deleted_at {
            Some(_) => format!("{} (deleted)", t.state),
            None => t.state.clone(),
        };
        vec![
            t.number.clone(),
            t.title.clone(),
            state,
            time(&Some(t.created_at)),
            t.found_by.clone(),
        ]
    });
    output::table(
        vec!["number", "title", "state", "created", "found by"],
        rows,
    )
    .to_string()
}
