//! `bestand purchases`, `bestand catalogue` and `bestand funding`: purchase files in, the model
//! catalogue and category lives, funding programmes and their assignment (docs/procurement.md).
//! The rules live in `bestand_core::procurement`; this reads files and flags and prints.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use bestand_app::config::Config;
use bestand_app::{Database, Migrations, SystemClock};
use bestand_core::model::DeviceCategory;
use bestand_core::procurement::catalogue::{self, CategoryLife, ModelEntry, ModelView};
use bestand_core::procurement::funding::{self, Assignment, NewProgramme, ProgrammeView, RuleSpec};
use bestand_core::procurement::purchases::{self, PurchaseFile, PurchaseOptions, PurchaseReport};
use bestand_core::procurement::{parse_amount, RowError};
use bestand_core::sheet::{self, Sheet};
use bestand_core::tabular::Encoding;
use bestand_core::Clock;
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use rust_decimal::Decimal;
use sqlx::PgPool;

use crate::output::{self, opt, Format, Row};

#[derive(Debug, Subcommand)]
pub enum PurchasesCommand {
    /// Read a delivery note or order (CSV or XLSX) and join its rows to devices.
    Import(ImportArgs),
}

/// What every file import takes.
#[derive(Debug, Args)]
pub struct FileArgs {
    /// The CSV, XLSX, XLS or ODS file.
    pub file: PathBuf,
    /// The authority (slug); needed when several are configured.
    #[arg(long)]
    pub authority: Option<String>,
    /// The worksheet of a workbook (default: the first).
    #[arg(long, value_name = "NAME")]
    pub sheet: Option<String>,
    /// A TOML file mapping other header names to fields (`[columns]` "Header" = "field").
    #[arg(long, value_name = "FILE")]
    pub mapping: Option<PathBuf>,
    /// The encoding of a CSV file (default: detected).
    #[arg(long)]
    pub encoding: Option<Encoding>,
    /// Who imports (default: the login name).
    #[arg(long)]
    pub by: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Write the good rows even when some are bad (otherwise nothing is written).
    #[arg(long)]
    pub partial: bool,
    /// Check and report what would happen; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The file is a delivery note: new devices are `delivered` even without a delivery date.
    #[arg(long)]
    pub delivery_note: bool,
}

#[derive(Debug, Subcommand)]
pub enum CatalogueCommand {
    /// Add or replace a model of the catalogue.
    Set {
        /// The model as sources name it ("iPad Air (5th generation)").
        model: String,
        #[arg(long, value_parser = parse_category)]
        category: DeviceCategory,
        /// The model identifier ("iPad13,16"), matched before the name.
        #[arg(long)]
        identifier: Option<String>,
        /// The list price today (`899,00`, `899.00 €`).
        #[arg(long, value_parser = parse_price_arg)]
        price: Option<Decimal>,
        /// The expected life in years.
        #[arg(long)]
        life: Option<u32>,
        #[arg(long)]
        authority: Option<String>,
        #[arg(long)]
        by: Option<String>,
    },
    /// Set models from a file (Modell, Kategorie, Modellkennung, Listenpreis, Nutzungsdauer).
    Import(FileArgs),
    /// List the catalogue.
    List {
        #[arg(long)]
        authority: Option<String>,
    },
    /// Show every category's expected life, or set one (`catalogue life tablet 6`).
    Life {
        #[arg(value_parser = parse_category)]
        category: Option<DeviceCategory>,
        years: Option<u32>,
        #[arg(long)]
        authority: Option<String>,
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum FundingCommand {
    /// Add a funding programme.
    Add(AddArgs),
    /// List the funding programmes with their devices and sums.
    List {
        #[arg(long)]
        authority: Option<String>,
    },
    /// Show a programme with its devices, sum and rules.
    Show {
        code: String,
        #[arg(long)]
        authority: Option<String>,
    },
    /// Assign a programme: by rule (--order-number, --purchased) or by hand (--device).
    Assign(AssignArgs),
    /// Remove the programme from devices.
    Unassign {
        #[arg(long = "device", required = true, num_args = 1..)]
        devices: Vec<String>,
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The short name used in purchase files and on the command line ("DP-2021").
    pub code: String,
    #[arg(long)]
    pub name: String,
    /// The funding body (Fördergeber).
    #[arg(long)]
    pub body: Option<String>,
    /// Aktenzeichen / Förderkennzeichen.
    #[arg(long)]
    pub grant_reference: Option<String>,
    /// The funded amount (`1.234.567,00`).
    #[arg(long, value_parser = parse_price_arg)]
    pub amount: Option<Decimal>,
    /// The share of a device's price the programme pays (`90%` or `0.9`).
    #[arg(long, value_parser = parse_share)]
    pub share: Option<Decimal>,
    /// The funding period, `2019-05-17..2024-05-16`.
    #[arg(long, value_parser = parse_range)]
    pub period: Option<(NaiveDate, NaiveDate)>,
    /// The end of the earmark (Zweckbindung).
    #[arg(long, value_parser = parse_date, conflicts_with = "earmark_years")]
    pub earmark_end: Option<NaiveDate>,
    /// Years of earmark after the period's end (NRW: 5).
    #[arg(long)]
    pub earmark_years: Option<u32>,
    #[arg(long)]
    pub authority: Option<String>,
    #[arg(long)]
    pub by: Option<String>,
}

#[derive(Debug, Args)]
pub struct AssignArgs {
    pub code: String,
    /// A rule: devices of this order number.
    #[arg(long, conflicts_with = "devices")]
    pub order_number: Option<String>,
    /// A rule: devices purchased in this range, `2020-08-01..2020-12-31`.
    #[arg(long, value_parser = parse_range, conflicts_with = "devices")]
    pub purchased: Option<(NaiveDate, NaiveDate)>,
    /// Limits a rule to one school (school number).
    #[arg(long, conflicts_with = "devices")]
    pub school: Option<String>,
    /// By hand: these devices (id, asset tag or serial).
    #[arg(long = "device", num_args = 1..)]
    pub devices: Vec<String>,
    #[arg(long)]
    pub authority: Option<String>,
    #[arg(long)]
    pub by: Option<String>,
}

fn parse_category(text: &str) -> Result<DeviceCategory, String> {
    text.parse()
}

fn parse_price_arg(text: &str) -> Result<Decimal, String> {
    parse_amount(text).map_err(|error| error.to_string())
}

fn parse_date(text: &str) -> Result<NaiveDate, String> {
    bestand_core::loans::parse_date(text)
}

/// `90%`, `90 %` or `0.9` / `0,9`.
fn parse_share(text: &str) -> Result<Decimal, String> {
    let text = text.trim();
    let (number, percent) = match text.strip_suffix('%') {
        Some(number) => (number.trim(), true),
        None => (text, false),
    };
    let value: Decimal = number
        .replace(',', ".")
        .parse()
        .map_err(|_| format!("'{text}' is not a share (write 90% or 0.9)"))?;
    Ok(if percent {
        value / Decimal::ONE_HUNDRED
    } else {
        value
    })
}

/// `FROM..UNTIL`, both dates included.
fn parse_range(text: &str) -> Result<(NaiveDate, NaiveDate), String> {
    let (from, until) = text
        .split_once("..")
        .ok_or_else(|| format!("'{text}' is not a range (write 2020-08-01..2020-12-31)"))?;
    Ok((parse_date(from)?, parse_date(until)?))
}

/// Reads a file's table and the mapping beside it.
fn read_file(args: &FileArgs) -> anyhow::Result<(Sheet, BTreeMap<String, String>, String)> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let table = sheet::read(&bytes, args.sheet.as_deref(), args.encoding)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let mapping = match &args.mapping {
        Some(path) => read_mapping(path)?,
        None => BTreeMap::new(),
    };
    let name = args.file.file_name().map_or_else(
        || args.file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok((table, mapping, name))
}

/// A mapping file: `[columns]` with "header in the file" = "field".
fn read_mapping(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Mapping {
        columns: BTreeMap<String, String>,
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot open the mapping {}", path.display()))?;
    let mapping: Mapping = toml::from_str(&text)
        .with_context(|| format!("cannot read the mapping {}", path.display()))?;
    Ok(mapping.columns)
}

pub async fn run_purchases(
    command: PurchasesCommand,
    config: &Config,
    format: Format,
) -> anyhow::Result<i32> {
    let PurchasesCommand::Import(args) = command;
    let (table, mapping, name) = read_file(&args.file)?;
    let database = Database::open(config, Migrations::RequireCurrent).await?;
    let result = purchases::import_purchases(
        &database.pool,
        &super::scope(),
        &super::actor(args.file.by.clone()),
        args.file.authority.as_deref(),
        PurchaseFile {
            name: &name,
            sheet: &table,
            mapping: &mapping,
        },
        PurchaseOptions {
            partial: args.partial,
            dry_run: args.dry_run,
            delivery_note: args.delivery_note,
        },
        SystemClock.now(),
    )
    .await;
    database.close().await?;
    let report = result?;
    match format {
        Format::Table => print_purchases(&report, &mut std::io::stdout().lock())?,
        _ => output::print_json(&report)?,
    }
    Ok(i32::from(!report.errors.is_empty()))
}

/// Prints a purchase import for people: bad rows, ambiguous rows, funding conflicts, the sums.
pub fn print_purchases<W: Write>(report: &PurchaseReport, out: &mut W) -> anyhow::Result<()> {
    print_errors(&report.errors, &report.ignored_columns, out)?;
    for line in report.lines.iter().filter(|l| l.outcome == "ambiguous") {
        writeln!(
            out,
            "? line {}: {} names two devices; a review item is open (bestand review list)",
            line.line, line.device
        )?;
    }
    for conflict in &report.funding_conflicts {
        writeln!(out, "! {conflict}")?;
    }
    let sums = format!(
        "matched {}, created {}, ambiguous {}, unchanged {}",
        report.matched, report.created, report.ambiguous, report.unchanged
    );
    let verdict = if report.dry_run {
        format!(
            "dry run: {sums}, bad {}; nothing was written",
            report.errors.len()
        )
    } else if report.applied {
        format!("{sums}; {} row(s) refused", report.errors.len())
    } else {
        format!(
            "{} row(s) bad: nothing was written (fix them, or use --partial to write the good rows; \
             they would give: {sums})",
            report.errors.len()
        )
    };
    writeln!(out, "{verdict}")?;
    Ok(())
}

fn print_errors<W: Write>(
    errors: &[RowError],
    ignored: &[String],
    out: &mut W,
) -> anyhow::Result<()> {
    if !ignored.is_empty() {
        writeln!(out, "columns not read: {}", ignored.join(", "))?;
    }
    for error in errors {
        writeln!(out, "✗ {error}")?;
    }
    Ok(())
}

pub async fn run_catalogue(
    command: CatalogueCommand,
    config: &Config,
    format: Format,
) -> anyhow::Result<i32> {
    let database = Database::open(config, Migrations::RequireCurrent).await?;
    let result = catalogue_with(&database.pool, command, format).await;
    database.close().await?;
    result
}

async fn catalogue_with(
    pool: &PgPool,
    command: CatalogueCommand,
    format: Format,
) -> anyhow::Result<i32> {
    let scope = &super::scope();
    match command {
        CatalogueCommand::Set {
            model,
            category,
            identifier,
            price,
            life,
            authority,
            by,
        } => {
            let entry = ModelEntry {
                model,
                model_identifier: identifier,
                category,
                list_price: price,
                currency: "EUR".into(),
                life_years: life,
            };
            catalogue::set_model(
                pool,
                scope,
                &super::actor(by),
                authority.as_deref(),
                &entry,
                SystemClock.now(),
            )
            .await?;
            println!("catalogue: {} ({}) set", entry.model, entry.category);
        }
        CatalogueCommand::Import(args) => {
            let (table, mapping, _) = read_file(&args)?;
            let report = catalogue::import_models(
                pool,
                scope,
                &super::actor(args.by.clone()),
                args.authority.as_deref(),
                &table,
                &mapping,
                SystemClock.now(),
            )
            .await?;
            match format {
                Format::Table => {
                    let mut out = std::io::stdout().lock();
                    print_errors(&report.errors, &report.ignored_columns, &mut out)?;
                    if report.applied {
                        writeln!(out, "{} model(s) set", report.written)?;
                    } else {
                        writeln!(
                            out,
                            "{} row(s) bad: nothing was written",
                            report.errors.len()
                        )?;
                    }
                }
                _ => output::print_json(&report)?,
            }
            return Ok(i32::from(!report.errors.is_empty()));
        }
        CatalogueCommand::List { authority } => {
            let list = catalogue::list_models(pool, scope, authority.as_deref()).await?;
            output::print_list(&list, format)?;
        }
        CatalogueCommand::Life {
            category,
            years,
            authority,
            by,
        } => {
            match (category, years) {
                (Some(category), Some(years)) => {
                    catalogue::set_category_life(
                        pool,
                        scope,
                        &super::actor(by),
                        authority.as_deref(),
                        category,
                        years,
                    )
                    .await?;
                }
                (Some(_), None) => {
                    anyhow::bail!("give the years: bestand catalogue life CATEGORY YEARS")
                }
                _ => {}
            }
            let lives = catalogue::category_lives(pool, scope, authority.as_deref()).await?;
            output::print_list(&lives, format)?;
        }
    }
    Ok(0)
}

pub async fn run_funding(
    command: FundingCommand,
    config: &Config,
    format: Format,
) -> anyhow::Result<i32> {
    let database = Database::open(config, Migrations::RequireCurrent).await?;
    let result = funding_with(&database.pool, command, format).await;
    database.close().await?;
    result
}

async fn funding_with(
    pool: &PgPool,
    command: FundingCommand,
    format: Format,
) -> anyhow::Result<i32> {
    let scope = &super::scope();
    let now = SystemClock.now();
    match command {
        FundingCommand::Add(args) => {
            let programme = NewProgramme {
                code: args.code,
                name: args.name,
                body: args.body,
                grant_reference: args.grant_reference,
                funded_amount: args.amount,
                funding_share: args.share,
                period_start: args.period.map(|(from, _)| from),
                period_end: args.period.map(|(_, until)| until),
                earmark_end: args.earmark_end,
                earmark_years: args.earmark_years,
            };
            let added = funding::add_programme(
                pool,
                scope,
                &super::actor(args.by),
                args.authority.as_deref(),
                &programme,
                now,
            )
            .await?;
            output::print_list(&[added], format)?;
        }
        FundingCommand::List { authority } => {
            let list = funding::list_programmes(pool, scope, authority.as_deref()).await?;
            output::print_list(&list, format)?;
        }
        FundingCommand::Show { code, authority } => {
            let detail = funding::show_programme(pool, scope, authority.as_deref(), &code).await?;
            match format {
                Format::Table => {
                    output::print_list(std::slice::from_ref(&detail.programme), format)?;
                    for rule in &detail.rules {
                        println!(
                            "rule {}: order number {}, purchased {}..{}, school {} (by {})",
                            rule.funding_rule_id,
                            opt(&rule.order_number),
                            opt(&rule.purchased_from),
                            opt(&rule.purchased_until),
                            opt(&rule.school_number),
                            rule.created_by
                        );
                    }
                }
                _ => output::print_json(&detail)?,
            }
        }
        FundingCommand::Assign(args) => {
            let actor = super::actor(args.by);
            let outcome = if args.devices.is_empty() {
                let rule = RuleSpec {
                    order_number: args.order_number,
                    purchased_from: args.purchased.map(|(from, _)| from),
                    purchased_until: args.purchased.map(|(_, until)| until),
                    school: args.school,
                };
                funding::add_rule(
                    pool,
                    scope,
                    &actor,
                    args.authority.as_deref(),
                    &args.code,
                    &rule,
                    now,
                )
                .await?
            } else {
                funding::assign_devices(
                    pool,
                    scope,
                    &actor,
                    args.authority.as_deref(),
                    &args.code,
                    &args.devices,
                    now,
                )
                .await?
            };
            match format {
                Format::Table => print_assignment(&args.code, &outcome),
                _ => output::print_json(&outcome)?,
            }
        }
        FundingCommand::Unassign { devices, by } => {
            let changed =
                funding::unassign_devices(pool, scope, &super::actor(by), &devices, now).await?;
            match format {
                Format::Table => println!(
                    "programme removed from {} device(s): {}",
                    changed.len(),
                    changed.join(", ")
                ),
                _ => output::print_json(&changed)?,
            }
        }
    }
    Ok(0)
}

fn print_assignment(code: &str, outcome: &Assignment) {
    if let Some(rule) = outcome.funding_rule_id {
        println!("rule {rule} stored: it applies to every later purchase import too");
    }
    println!("{code} assigned to {} device(s)", outcome.assigned.len());
    if !outcome.unchanged.is_empty() {
        println!("already {code}: {}", outcome.unchanged.join(", "));
    }
    for conflict in &outcome.conflicts {
        println!("! {conflict}");
    }
}

impl Row for ModelView {
    fn headers() -> Vec<&'static str> {
        vec![
            "authority",
            "model",
            "identifier",
            "category",
            "list price",
            "currency",
            "life (years)",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.authority.clone(),
            self.model.clone(),
            opt(&self.model_identifier),
            self.category.clone(),
            opt(&self.list_price),
            self.currency.clone(),
            opt(&self.life_years),
        ]
    }
}

impl Row for CategoryLife {
    fn headers() -> Vec<&'static str> {
        vec![
            "category",
            "life (years)",
            "default",
            "set by the authority",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.category.clone(),
            self.life_years.to_string(),
            self.default_years.to_string(),
            if self.configured { "yes" } else { "no" }.to_string(),
        ]
    }
}

impl Row for ProgrammeView {
    fn headers() -> Vec<&'static str> {
        vec![
            "authority",
            "code",
            "name",
            "body",
            "grant reference",
            "amount",
            "share",
            "period",
            "earmark end",
            "devices",
            "price sum",
        ]
    }

    fn cells(&self) -> Vec<String> {
        let p = &self.programme;
        let period = match (p.period_start, p.period_end) {
            (None, None) => String::new(),
            (from, until) => format!("{}..{}", opt(&from), opt(&until)),
        };
        vec![
            p.authority.clone(),
            p.code.clone(),
            p.name.clone(),
            opt(&p.body),
            opt(&p.grant_reference),
            opt(&p.funded_amount),
            p.funding_share
                .map(|share| format!("{}%", (share * Decimal::ONE_HUNDRED).normalize()))
                .unwrap_or_default(),
            period,
            opt(&p.earmark_end),
            self.devices.to_string(),
            self.price_sum.to_string(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_ranges_read_as_people_write_them() {
        assert_eq!(parse_share("90%").unwrap(), Decimal::new(9, 1));
        assert_eq!(parse_share("0,9").unwrap(), Decimal::new(9, 1));
        assert!(parse_share("neunzig").is_err());
        let (from, until) = parse_range("2019-05-17..16.05.2024").unwrap();
        assert_eq!(from, NaiveDate::from_ymd_opt(2019, 5, 17).unwrap());
        assert_eq!(until, NaiveDate::from_ymd_opt(2024, 5, 16).unwrap());
    }
}
