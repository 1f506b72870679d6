//! `bestand devices`: find devices and see everything about one.

use bestand_core::model::{DeviceCategory, DisposalMethod, LifecycleState};
use bestand_core::store::devices::{self, DeviceDetail, DeviceFilter, DeviceSummary};
use bestand_core::store::lifecycle::{self, Disposal, StateRequest, Transition};
use bestand_core::Clock;
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::output::{self, opt, time, Format, Row};
use bestand_app::config::Config;
use bestand_app::{Database, Migrations, SystemClock};

#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// List devices, filtered.
    List(ListArgs),
    /// Show one device: merged record, what each source reports, and its history.
    Show {
        /// Device id, asset tag (Inventarnummer) or serial number.
        key: String,
    },
    /// Move a device to another lifecycle state (see `devices transitions`), with a reason.
    State(StateArgs),
    /// The allowed moves between lifecycle states, and what each means.
    Transitions,
}

#[derive(Debug, Args)]
pub struct StateArgs {
    /// Device id, asset tag (Inventarnummer) or serial number.
    pub device: String,
    /// The new state: delivered, in_stock, in_use, to_check, in_repair, retired, disposed,
    /// lost or stolen (on_loan only through `bestand loans`).
    #[arg(value_parser = parse_state)]
    pub state: LifecycleState,
    /// Why (kept in the device's history; name no pupils).
    #[arg(long)]
    pub reason: String,
    /// Who acts (default: the login name).
    #[arg(long)]
    pub by: Option<String>,
    /// For disposed: recycler, sold, donated, returned_to_lessor or destroyed.
    #[arg(long, value_parser = parse_method)]
    pub method: Option<DisposalMethod>,
    /// For disposed: the recycler, buyer or receiving organisation.
    #[arg(long)]
    pub recipient: Option<String>,
    /// For disposed: the number of the disposal or data-erasure certificate.
    #[arg(long)]
    pub certificate: Option<String>,
    /// For disposed: whether the device's data was wiped (yes or no).
    #[arg(long, value_parser = parse_yes_no, value_name = "yes|no")]
    pub data_wiped: Option<bool>,
    /// For disposed: the day it left (YYYY-MM-DD or DD.MM.YYYY; default today).
    #[arg(long, value_parser = super::loans::parse_date_arg, value_name = "DATE")]
    pub on: Option<NaiveDate>,
}

fn parse_method(text: &str) -> Result<DisposalMethod, String> {
    text.parse()
}

fn parse_yes_no(text: &str) -> Result<bool, String> {
    match text.trim().to_lowercase().as_str() {
        "yes" | "ja" | "y" | "j" | "true" => Ok(true),
        "no" | "nein" | "n" | "false" => Ok(false),
        other => Err(format!("'{other}' is neither yes nor no")),
    }
}

/// The disposal record the options give, required for `disposed` and refused otherwise.
fn disposal(args: &StateArgs, today: NaiveDate) -> anyhow::Result<Option<Disposal>> {
    let given = args.method.is_some()
        || args.recipient.is_some()
        || args.certificate.is_some()
        || args.data_wiped.is_some()
        || args.on.is_some();
    if args.state != LifecycleState::Disposed {
        if given {
            anyhow::bail!(
                "--method, --recipient, --certificate, --data-wiped and --on belong to a move to \
                 disposed, not to {}",
                args.state
            );
        }
        return Ok(None);
    }
    let (Some(method), Some(data_wiped)) = (args.method, args.data_wiped) else {
        anyhow::bail!(
            "disposing of {} needs --method (recycler, sold, donated, returned_to_lessor, \
             destroyed) and --data-wiped yes|no",
            args.device.trim()
        );
    };
    Ok(Some(Disposal {
        method,
        recipient: args.recipient.clone(),
        certificate_number: args.certificate.clone(),
        data_wiped,
        disposed_on: args.on.unwrap_or(today),
    }))
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this authority (slug).
    #[arg(long)]
    pub authority: Option<String>,
    /// School number, name or alias.
    #[arg(long)]
    pub school: Option<String>,
    /// tablet, laptop, desktop, display, printer or other.
    #[arg(long, value_parser = parse_category)]
    pub category: Option<DeviceCategory>,
    /// Lifecycle state: ordered, delivered, in_stock, in_use, on_loan, to_check, in_repair,
    /// retired, disposed, lost or stolen.
    #[arg(long, value_parser = parse_state)]
    pub state: Option<LifecycleState>,
    /// Part of the model name or identifier.
    #[arg(long)]
    pub model: Option<String>,
    /// Only devices a source no longer reports.
    #[arg(long)]
    pub missing: bool,
    /// Only devices whose sources disagree on a field they both report (see `devices show`).
    #[arg(long)]
    pub conflicts: bool,
    /// Only devices whose warranty ends before this date (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    pub warranty_before: Option<NaiveDate>,
    /// With --warranty-before: only warranties ending on or after this date.
    #[arg(long, value_name = "DATE")]
    pub warranty_from: Option<NaiveDate>,
    /// Free text over asset tag, serial, name, model, UDID, IMEI, MAC and room.
    #[arg(long, short = 's')]
    pub search: Option<String>,
    /// Only devices a source assigns to this person (username, email or id).
    #[arg(long, value_name = "PERSON", conflicts_with = "unassigned")]
    pub assigned_to: Option<String>,
    /// Only devices no source assigns to a known person.
    #[arg(long)]
    pub unassigned: bool,
    /// At most this many devices.
    #[arg(long)]
    pub limit: Option<i64>,
}

fn parse_category(text: &str) -> Result<DeviceCategory, String> {
    text.parse()
}

fn parse_state(text: &str) -> Result<LifecycleState, String> {
    text.parse()
}

pub async fn run(command: DevicesCommand, config: &Config, format: Format) -> anyhow::Result<()> {
    let database = Database::open(config, Migrations::RequireCurrent).await?;
    let result = match command {
        DevicesCommand::List(args) => {
            let filter = DeviceFilter {
                authority: args.authority,
                school: args.school,
                category: args.category,
                lifecycle_state: args.state,
                model: args.model,
                missing: args.missing,
                conflicts: args.conflicts,
                warranty_before: args.warranty_before,
                warranty_from: args.warranty_from,
                search: args.search,
                assigned_to: args.assigned_to,
                unassigned: args.unassigned,
                limit: args.limit,
            };
            let list = devices::list_devices(&database.pool, &super::scope(), &filter).await?;
            match format {
                // A table keeps to what fits on a screen; a CSV file has every field, as JSON.
                Format::Csv => output::print_list(&export_rows(&list), format)?,
                _ => output::print_list(&list, format)?,
            }
            if format == Format::Table {
                eprintln!("{} device(s)", list.len());
            }
            Ok(())
        }
        DevicesCommand::Show { key } => {
            let detail = devices::show_device(&database.pool, &super::scope(), &key).await?;
            match format {
                Format::Table => print_detail(&detail),
                _ => output::print_json(&detail)?,
            }
            Ok(())
        }
        DevicesCommand::State(args) => {
            let now = SystemClock.now();
            let request = StateRequest {
                to: args.state,
                reason: args.reason.clone(),
                disposal: disposal(&args, bestand_core::clock::school_date(now))?,
            };
            let actor = super::actor(args.by.clone());
            let change = lifecycle::change_state(
                &database.pool,
                &super::scope(),
                &actor,
                &args.device,
                &request,
                now,
            )
            .await?;
            let line = format!(
                "{}: {} → {} ({})",
                change.device, change.from_state, change.to_state, change.reason
            );
            super::loans::print_one(&change, format, &line)
        }
        DevicesCommand::Transitions => {
            let moves = lifecycle::transitions(&database.pool).await?;
            output::print_list(&moves, format)
        }
    };
    database.close().await?;
    result
}

/// The fields shown side by side: merged value and what each source reports.
const COMPARED: &[(&str, &str)] = &[
    ("name", "/name"),
    ("serial_number", "/serial_number"),
    ("asset_tag", "/asset_tag"),
    ("udid", "/udid"),
    ("wifi_mac", "/wifi_mac"),
    ("model", "/model"),
    ("os_version", "/os_version"),
    ("room", "/location/room"),
    ("school", "/location/school"),
    ("warranty_end", "/purchase/warranty_end"),
    ("order_number", "/purchase/order_number"),
    ("purchase_price", "/purchase/price"),
    ("user", "/user/username"),
];

fn print_detail(detail: &DeviceDetail) {
    let d = &detail.device;
    let school = match (&detail.school_number, &detail.school_name) {
        (Some(number), Some(name)) => format!("{name} ({number})"),
        _ => String::new(),
    };
    let price = match (&d.purchase_price, &d.currency) {
        (Some(price), Some(currency)) => format!("{price} {currency}"),
        (Some(price), None) => price.to_string(),
        _ => String::new(),
    };
    let rows: Vec<(&str, String)> = vec![
        ("device id", d.device_id.to_string()),
        ("authority", detail.authority.clone()),
        ("asset tag", opt(&d.asset_tag)),
        ("serial", opt(&d.serial_number)),
        ("name", opt(&d.name)),
        ("category", d.category.clone()),
        (
            "model",
            format!(
                "{} {} ({})",
                opt(&d.manufacturer),
                opt(&d.model),
                opt(&d.model_identifier)
            )
            .trim()
            .to_string(),
        ),
        (
            "os",
            format!("{} {}", opt(&d.os_name), opt(&d.os_version))
                .trim()
                .to_string(),
        ),
        ("state", d.lifecycle_state.clone()),
        ("school", school),
        (
            "building / room",
            format!("{} / {}", opt(&d.building), opt(&d.room)),
        ),
        (
            "udid / imei / mac",
            format!("{} / {} / {}", opt(&d.udid), opt(&d.imei), opt(&d.wifi_mac)),
        ),
        (
            "order / date / supplier",
            format!(
                "{} / {} / {}",
                opt(&d.order_number),
                opt(&d.purchase_date),
                opt(&d.supplier)
            ),
        ),
        ("price", price),
        ("warranty end", opt(&d.warranty_end)),
        (
            "life expectancy",
            d.life_expectancy_years
                .map(|y| format!("{y} years"))
                .unwrap_or_default(),
        ),
        (
            "funding",
            format!(
                "{} {} {}",
                opt(&d.funding_programme),
                opt(&d.grant_reference),
                opt(&d.earmark_end)
            )
            .trim()
            .to_string(),
        ),
        ("first seen", time(&Some(d.first_seen_at))),
    ];
    println!(
        "{}",
        output::table(
            vec!["field", "value"],
            rows.into_iter().map(|(k, v)| vec![k.to_string(), v])
        )
    );

    println!("\nAssigned to");
    let assignments = detail.assignments.iter().map(|a| {
        let person = match (&a.username, &a.name) {
            (Some(username), Some(name)) => format!("{name} ({username})"),
            (Some(username), None) => username.clone(),
            _ => String::new(),
        };
        let person = match a.left_at {
            Some(left) => format!("{person}, left {}", left.format("%Y-%m-%d")),
            None => person,
        };
        let hint = [a.hint_username.as_deref(), a.hint_email.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" / ");
        vec![
            a.source_name.clone(),
            hint,
            a.status.replace('_', " "),
            person,
            time(&Some(a.since)),
        ]
    });
    println!(
        "{}",
        output::table(
            vec!["source", "user hint", "status", "person", "since"],
            assignments
        )
    );

    println!("\nSources");
    let links = detail.links.iter().map(|l| {
        let state = if let Some(ended) = l.ended_at {
            format!(
                "ended {} ({})",
                ended.format("%Y-%m-%d"),
                opt(&l.ended_reason)
            )
        } else if let Some(missing) = l.missing_since {
            format!("missing since {}", missing.format("%Y-%m-%d"))
        } else {
            "reporting".to_string()
        };
        vec![
            l.source_name.clone(),
            l.external_id.clone(),
            time(&Some(l.first_seen_at)),
            time(&l.last_seen_at),
            state,
        ]
    });
    println!(
        "{}",
        output::table(
            vec!["source", "record", "first seen", "last seen", "state"],
            links
        )
    );

    if !detail.links.is_empty() {
        println!("\nWhat each source reports");
        let mut headers = vec!["field".to_string(), "inventory".to_string()];
        headers.extend(
            detail
                .links
                .iter()
                .map(|l| format!("{} {}", l.source_name, l.external_id)),
        );
        let merged = serde_json::to_value(d).unwrap_or(Value::Null);
        let rows = COMPARED.iter().map(|(field, pointer)| {
            let inventory = match *field {
                "school" => detail.school_name.clone().unwrap_or_default(),
                "user" => String::new(),
                other => show_value(merged.get(other)),
            };
            let mut row = vec![field.to_string(), inventory];
            row.extend(
                detail
                    .links
                    .iter()
                    .map(|l| show_value(l.reported.pointer(pointer))),
            );
            row
        });
        println!(
            "{}",
            output::table(headers.iter().map(String::as_str).collect(), rows)
        );
    }

    println!("\nLoans");
    println!("{}", super::loans::loans_table(&detail.loans, true));

    println!("\nRepairs");
    println!("{}", super::repairs::repairs_table(&detail.repairs));
    let cost = &detail.cost_of_ownership;
    println!(
        "total cost of ownership: {} {} (price {}, {} repair(s) {})",
        cost.total,
        cost.currency,
        cost.purchase_price
            .map(|price| price.to_string())
            .unwrap_or_else(|| "unknown".to_string()),
        cost.repairs,
        cost.repair_costs
    );

    if let Some(disposal) = &detail.disposal {
        println!("\nDisposal");
        let rows = vec![
            vec!["disposed on".to_string(), disposal.disposed_on.to_string()],
            vec!["method".to_string(), disposal.method.replace('_', " ")],
            vec!["recipient".to_string(), opt(&disposal.recipient)],
            vec!["certificate".to_string(), opt(&disposal.certificate_number)],
            vec![
                "data wiped".to_string(),
                if disposal.data_wiped { "yes" } else { "no" }.to_string(),
            ],
            vec![
                "recorded by".to_string(),
                format!(
                    "{}, {}",
                    disposal.recorded_by,
                    time(&Some(disposal.recorded_at))
                ),
            ],
        ];
        println!("{}", output::table(vec!["field", "value"], rows));
    }
    println!("\nTickets");
    println!("{}", super::tickets::device_tickets_table(&detail.tickets));

    println!("\nHistory");
    let events = detail.history.iter().map(|e| {
        let by = e
            .actor
            .clone()
            .or_else(|| e.source_name.clone())
            .unwrap_or_default();
        let run = e
            .sync_run_id
            .map(|r| format!(" (run {r})"))
            .unwrap_or_default();
        vec![
            time(&Some(e.occurred_at)),
            e.kind.clone(),
            format!("{}{run}", by),
            describe_changes(&e.changes),
        ]
    });
    println!(
        "{}",
        output::table(vec!["when", "what", "by", "changes"], events)
    );
}

fn show_value(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

fn describe_changes(changes: &Value) -> String {
    let Some(map) = changes.as_object() else {
        return String::new();
    };
    let parts: Vec<String> = map
        .iter()
        .map(|(field, change)| {
            // A plain value (the reason of a state change) is shown as it is.
            if !change.is_object() {
                return format!("{field}: {}", show_value(Some(change)));
            }
            let old = show_value(change.get("old"));
            let new = show_value(change.get("new"));
            if old.is_empty() {
                format!("{field}: {new}")
            } else {
                format!("{field}: {old} → {new}")
            }
        })
        .collect();
    let text = parts.join("; ");
    if text.chars().count() > 160 {
        format!("{}…", text.chars().take(160).collect::<String>())
    } else {
        text
    }
}

impl Row for Transition {
    fn headers() -> Vec<&'static str> {
        vec!["from", "to", "meaning"]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.from_state.clone(),
            self.to_state.clone(),
            self.meaning.clone(),
        ]
    }
}

impl Row for DeviceSummary {
    fn headers() -> Vec<&'static str> {
        vec![
            "asset tag",
            "serial",
            "name",
            "category",
            "model",
            "os",
            "school",
            "room",
            "warranty end",
            "sources",
            "assigned to",
            "missing from",
            "state",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            opt(&self.asset_tag),
            opt(&self.serial_number),
            opt(&self.name),
            self.category.clone(),
            opt(&self.model),
            opt(&self.os_version),
            opt(&self.school_number),
            opt(&self.room),
            opt(&self.warranty_end),
            opt(&self.sources),
            opt(&self.assigned_to),
            opt(&self.missing_from),
            self.lifecycle_state.clone(),
        ]
    }
}

/// A line of `devices list --format csv`: the table's columns in the table's order, then every
/// other field of the device, so a script gets what `devices show` has in one call.
#[derive(serde::Serialize)]
#[serde(transparent)]
pub struct DeviceExport<'a>(pub &'a DeviceSummary);

/// The CSV lines of `list`.
pub fn export_rows(list: &[DeviceSummary]) -> Vec<DeviceExport<'_>> {
    list.iter().map(DeviceExport).collect()
}

impl Row for DeviceExport<'_> {
    fn headers() -> Vec<&'static str> {
        let mut headers = DeviceSummary::headers();
        headers.extend([
            "device id",
            "authority",
            "school name",
            "udid",
            "imei",
            "wifi mac",
            "manufacturer",
            "model identifier",
            "os name",
            "building",
            "order number",
            "purchase date",
            "supplier",
            "purchase price",
            "currency",
            "life expectancy years",
            "funding programme",
            "grant reference",
            "earmark end",
            "last seen",
            "first seen",
            "updated",
        ]);
        headers
    }

    fn cells(&self) -> Vec<String> {
        let d = self.0;
        let mut cells = d.cells();
        cells.extend([
            d.device_id.to_string(),
            d.authority.clone(),
            opt(&d.school_name),
            opt(&d.udid),
            opt(&d.imei),
            opt(&d.wifi_mac),
            opt(&d.manufacturer),
            opt(&d.model_identifier),
            opt(&d.os_name),
            opt(&d.building),
            opt(&d.order_number),
            opt(&d.purchase_date),
            opt(&d.supplier),
            opt(&d.purchase_price),
            opt(&d.currency),
            opt(&d.life_expectancy_years),
            opt(&d.funding_programme),
            opt(&d.grant_reference),
            opt(&d.earmark_end),
            // Full timestamps: a script compares them.
            opt(&d.last_seen_at.map(|t| t.to_rfc3339())),
            d.first_seen_at.to_rfc3339(),
            d.updated_at.to_rfc3339(),
        ]);
        cells
    }
}
