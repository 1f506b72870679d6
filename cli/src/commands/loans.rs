//! `bestand loans`: hand-outs and returns at the counter, by scanner, from a file and by class
//! set, and the lists a school chases loans with. The rules live in `bestand_core::loans`;
//! this module reads arguments, CSV files and scanner input, and prints; `agreements` prints
//! the loan agreements.

pub mod agreements;

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use bestand_core::loans::{
    self, BulkOptions, BulkReport, BulkRow, ClassSetReport, ClassSetRequest, DevicePool,
    IssueRequest, LoanFilter, LoanGroup, LoanPolicy, LoanView, Loss, ReturnRequest,
};
use bestand_core::model::{LifecycleState, LoanState};
use bestand_core::store::persons::resolve_person;
use bestand_core::tabular::{self, Encoding};
use bestand_core::{Actor, Clock, CoreError, Scope};
use chrono::NaiveDate;
use clap::{ArgGroup, Args, Subcommand};
use serde::Serialize;
use sqlx::PgPool;

use crate::output::{self, opt, time, Format, Row};
use bestand_app::config::Config;
use bestand_app::{Database, Migrations, SystemClock};

#[derive(Debug, Subcommand)]
pub enum LoansCommand {
    /// Hand one device out to one person.
    Issue(IssueArgs),
    /// Take a device back (by asset tag, serial or loan id).
    Return(ReturnArgs),
    /// Move the due date of an active loan.
    Extend {
        /// Loan id (`17`, `loan:17`) or the device (asset tag, serial).
        loan: String,
        /// The new due date (YYYY-MM-DD or DD.MM.YYYY).
        #[arg(long, value_parser = parse_date_arg, value_name = "DATE")]
        due: NaiveDate,
        /// Who acts (default: the login name).
        #[arg(long)]
        by: Option<String>,
    },
    /// Close an active loan as lost (or stolen); the device becomes `lost` (or `stolen`).
    Lost {
        /// Loan id (`17`, `loan:17`) or the device (asset tag, serial).
        loan: String,
        /// Stolen rather than lost.
        #[arg(long)]
        stolen: bool,
        /// The day of the loss (YYYY-MM-DD or DD.MM.YYYY).
        #[arg(long, value_parser = parse_date_arg, value_name = "DATE")]
        on: NaiveDate,
        /// What happened (kept with the loan, not in the device history).
        #[arg(long)]
        note: String,
        /// Who acts (default: the login name).
        #[arg(long)]
        by: Option<String>,
    },
    /// Cancel a loan entered by mistake (kept in the history as cancelled).
    Cancel {
        /// Loan id (`17`, `loan:17`) or the device (asset tag, serial).
        loan: String,
        /// Why (kept with the loan).
        #[arg(long)]
        reason: String,
        /// Who acts (default: the login name).
        #[arg(long)]
        by: Option<String>,
    },
    /// Record the day the signed loan agreement came back.
    Signed {
        /// Loan id (`17`, `loan:17`) or the device (asset tag, serial).
        loan: String,
        /// The day it was signed (YYYY-MM-DD or DD.MM.YYYY).
        #[arg(long, value_parser = parse_date_arg, value_name = "DATE")]
        on: NaiveDate,
        /// Who acts (default: the login name).
        #[arg(long)]
        by: Option<String>,
    },
    /// A device that came back damaged or incomplete has been checked: set its state.
    Checked {
        /// Device id, asset tag or serial number.
        device: String,
        /// The state after the check: in_stock (default, lendable), in_use, in_repair, retired,
        /// lost or stolen (docs/lifecycle.md).
        #[arg(long, default_value = "in_stock", value_parser = parse_lifecycle_arg)]
        state: LifecycleState,
        /// Who checked it (default: the login name).
        #[arg(long)]
        by: Option<String>,
    },
    /// Show one loan in full.
    Show {
        /// Loan id (`17`, `loan:17`) or the device (asset tag, serial).
        loan: String,
    },
    /// List loans, filtered (default: active loans).
    List(ListArgs),
    /// Active loans past their due date, grouped per school and class.
    Overdue(GroupArgs),
    /// Active loans whose borrower has left the school.
    LeftWithDevice {
        /// Only this authority (slug).
        #[arg(long)]
        authority: Option<String>,
    },
    /// Hand out many devices from a CSV file (columns borrower, device, due, accessories).
    Import(ImportArgs),
    /// Take devices back by scanning them, one asset tag or serial per line.
    ScanReturn {
        /// Who acts (default: the login name).
        #[arg(long)]
        by: Option<String>,
    },
    /// Hand devices to one person by scanning them, one asset tag or serial per line.
    ScanIssue(ScanIssueArgs),
    /// Hand one device to every pupil of a class, from a room or a tagged pool.
    ClassSet(ClassSetArgs),
    /// Print loan agreements (Leihverträge) as one PDF: for loans, or a whole class.
    Agreement(AgreementArgs),
    /// Put tags on devices (or take them off), for class-set pools.
    Tag(TagArgs),
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Device id, asset tag (Inventarnummer) or serial number.
    pub device: String,
    /// The borrower: username, email or person id.
    #[arg(long, value_name = "PERSON")]
    pub to: String,
    /// Due date (default: the end of the lending school's school year).
    #[arg(long, value_parser = parse_date_arg, value_name = "DATE")]
    pub due: Option<NaiveDate>,
    /// An accessory handed out with it (repeat; from `[loans] accessories`).
    #[arg(long = "accessory", value_name = "NAME")]
    pub accessories: Vec<String>,
    /// Condition at hand-out.
    #[arg(long)]
    pub condition: Option<String>,
    /// The day the loan agreement was signed, if it is on file already.
    #[arg(long, value_parser = parse_date_arg, value_name = "DATE")]
    pub agreement_signed: Option<NaiveDate>,
    /// Lend to a pupil of another school, for this reason.
    #[arg(long, value_name = "REASON")]
    pub override_school: Option<String>,
    /// Who hands it out (default: the login name).
    #[arg(long)]
    pub by: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReturnArgs {
    /// The device (asset tag, serial, id) or the loan (`17`, `loan:17`).
    pub key: String,
    /// Condition at return.
    #[arg(long)]
    pub condition: Option<String>,
    /// An accessory that did not come back (repeat); the device becomes `to_check`.
    #[arg(long, value_name = "ACCESSORY")]
    pub missing: Vec<String>,
    /// Damage seen; the device becomes `to_check`.
    #[arg(long, value_name = "TEXT")]
    pub damage: Option<String>,
    /// Who takes it back (default: the login name).
    #[arg(long)]
    pub by: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub group: GroupArgs,
    /// The borrower: username, email or person id.
    #[arg(long, value_name = "PERSON")]
    pub borrower: Option<String>,
    /// Only active loans past their due date.
    #[arg(long)]
    pub overdue: bool,
    /// Only loans due before this date.
    #[arg(long, value_parser = parse_date_arg, value_name = "DATE")]
    pub due_before: Option<NaiveDate>,
    /// active (default), returned, lost, stolen, cancelled or all.
    #[arg(long, default_value = "active", value_parser = parse_state_arg)]
    pub state: StateFilter,
    /// At most this many loans.
    #[arg(long)]
    pub limit: Option<i64>,
}

#[derive(Debug, Args)]
pub struct GroupArgs {
    /// Only this authority (slug).
    #[arg(long)]
    pub authority: Option<String>,
    /// The lending school: number, name or alias.
    #[arg(long)]
    pub school: Option<String>,
    /// The borrower's class at the lending school, e.g. 5a.
    #[arg(long)]
    pub class: Option<String>,
}

/// A loan state, or every state.
#[derive(Debug, Clone, Copy)]
pub struct StateFilter(pub Option<LoanState>);

fn parse_state_arg(text: &str) -> Result<StateFilter, String> {
    if text.trim().eq_ignore_ascii_case("all") {
        Ok(StateFilter(None))
    } else {
        text.parse().map(|state| StateFilter(Some(state)))
    }
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The CSV file: a header row, then one hand-out per row.
    pub file: PathBuf,
    /// Write the good rows even when some are bad (default: nothing unless all are good).
    #[arg(long)]
    pub partial: bool,
    /// Check every row, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Allow one borrower on several rows.
    #[arg(long)]
    pub allow_repeat_borrower: bool,
    /// Who hands out (default: the login name).
    #[arg(long)]
    pub by: Option<String>,
    /// After the import, write the agreements of the loans it created to this PDF.
    #[arg(long, value_name = "FILE", conflicts_with = "dry_run")]
    pub agreements: Option<PathBuf>,
    /// Overwrite the --agreements file if it exists.
    #[arg(long, requires = "agreements")]
    pub force: bool,
    /// The file's encoding, `utf-8` or `windows-1252` (default: UTF-8 when the file is valid
    /// UTF-8, else Windows-1252, as German Excel saves "CSV (Trennzeichen-getrennt)").
    #[arg(long, value_name = "ENCODING")]
    pub encoding: Option<Encoding>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["loans", "class"])))]
pub struct AgreementArgs {
    /// Loans: loan ids (`17`, `loan:17`) or devices (asset tag, serial) for their active loan.
    #[arg(value_name = "LOAN", conflicts_with_all = ["authority", "school", "class"])]
    pub loans: Vec<String>,
    /// With --class: only this authority (slug), when school numbers repeat across authorities.
    #[arg(long, requires = "class")]
    pub authority: Option<String>,
    /// With --class: the lending school (number, name or alias).
    #[arg(long, requires = "class")]
    pub school: Option<String>,
    /// Every active loan of this class at --school, one agreement per page.
    #[arg(long, requires = "school")]
    pub class: Option<String>,
    /// The PDF to write (default: leihvertrag-LOAN.pdf, leihvertraege.pdf for several loans,
    /// leihvertraege-CLASS.pdf for a class).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Overwrite the file if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ScanIssueArgs {
    /// The borrower of every scanned device: username, email or person id.
    #[arg(long, value_name = "PERSON")]
    pub to: String,
    /// Due date (default: the end of the lending school's school year).
    #[arg(long, value_parser = parse_date_arg, value_name = "DATE")]
    pub due: Option<NaiveDate>,
    /// An accessory handed out with every device (repeat).
    #[arg(long = "accessory", value_name = "NAME")]
    pub accessories: Vec<String>,
    /// Who hands out (default: the login name).
    #[arg(long)]
    pub by: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("pool").required(true).args(["room", "tag"])))]
pub struct ClassSetArgs {
    /// Only this authority (slug), when school numbers repeat across authorities.
    #[arg(long)]
    pub authority: Option<String>,
    /// School number, name or alias.
    #[arg(long)]
    pub school: String,
    /// The class, e.g. 5a.
    #[arg(long)]
    pub class: String,
    /// Take devices from this room (a trolley, a cupboard).
    #[arg(long)]
    pub room: Option<String>,
    /// Take devices carrying this tag (see `bestand loans tag`).
    #[arg(long)]
    pub tag: Option<String>,
    /// Due date (default: the end of the school's school year).
    #[arg(long, value_parser = parse_date_arg, value_name = "DATE")]
    pub due: Option<NaiveDate>,
    /// An accessory handed out with every device (repeat).
    #[arg(long = "accessory", value_name = "NAME")]
    pub accessories: Vec<String>,
    /// Hand out as many as the pool has when it has fewer devices than pupils.
    #[arg(long)]
    pub partial: bool,
    /// Show the pairing, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Who hands out (default: the login name).
    #[arg(long)]
    pub by: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("change").required(true).multiple(true).args(["add", "remove"])))]
pub struct TagArgs {
    /// Devices: ids, asset tags or serials.
    #[arg(required = true)]
    pub devices: Vec<String>,
    /// A tag to add (repeat).
    #[arg(long, value_name = "TAG")]
    pub add: Vec<String>,
    /// A tag to remove (repeat).
    #[arg(long, value_name = "TAG")]
    pub remove: Vec<String>,
    /// Who acts (default: the login name).
    #[arg(long)]
    pub by: Option<String>,
}

fn parse_lifecycle_arg(text: &str) -> Result<LifecycleState, String> {
    text.parse()
}

pub(crate) fn parse_date_arg(text: &str) -> Result<NaiveDate, String> {
    loans::parse_date(text)
}

/// Runs one `bestand loans` command; the exit code is 1 when a bulk step refused rows.
pub async fn run(command: LoansCommand, config: &Config, format: Format) -> anyhow::Result<i32> {
    let database = Database::open(config, Migrations::RequireCurrent).await?;
    let policy = config.loan_policy();
    let result = run_with(
        &database.pool,
        &SystemClock,
        &policy,
        config,
        command,
        format,
    )
    .await;
    database.close().await?;
    result
}

async fn run_with(
    pool: &PgPool,
    clock: &dyn Clock,
    policy: &LoanPolicy,
    config: &Config,
    command: LoansCommand,
    format: Format,
) -> anyhow::Result<i32> {
    let today = bestand_core::clock::school_date(clock.now());
    // The configuration file reaches every authority it names.
    let scope = &super::scope();
    match command {
        LoansCommand::Issue(args) => {
            let request = IssueRequest {
                device: args.device,
                borrower: args.to,
                due_on: args.due,
                accessories: args.accessories,
                condition: args.condition,
                agreement_signed_on: args.agreement_signed,
                school_override_reason: args.override_school,
            };
            let loan =
                loans::issue_loan(pool, scope, clock, policy, &request, &super::actor(args.by))
                    .await?;
            print_one(&loan, format, &issued_line(&loan))?;
        }
        LoansCommand::Return(args) => {
            let loan_id = loans::resolve_loan(pool, scope, &args.key).await?;
            let request = ReturnRequest {
                condition: args.condition,
                missing: args.missing,
                damage: args.damage,
            };
            let outcome = loans::return_loan(
                pool,
                scope,
                clock,
                loan_id,
                &request,
                &super::actor(args.by),
            )
            .await?;
            let mut line = returned_line(&outcome.loan);
            if outcome.to_check {
                line.push_str("; the device is now to_check, not lendable until checked");
            }
            print_one(&outcome, format, &line)?;
        }
        LoansCommand::Extend { loan, due, by } => {
            let loan_id = loans::resolve_loan(pool, scope, &loan).await?;
            let loan =
                loans::extend_loan(pool, scope, clock, loan_id, due, &super::actor(by)).await?;
            let line = format!(
                "loan {} of {} is now due {}",
                loan.loan_id,
                loan.device_label(),
                loan.due_on
            );
            print_one(&loan, format, &line)?;
        }
        LoansCommand::Lost {
            loan,
            stolen,
            on,
            note,
            by,
        } => {
            let loan_id = loans::resolve_loan(pool, scope, &loan).await?;
            let loss = if stolen { Loss::Stolen } else { Loss::Lost };
            let loan = loans::mark_lost(
                pool,
                scope,
                clock,
                loan_id,
                loss,
                on,
                &note,
                &super::actor(by),
            )
            .await?;
            let line = format!(
                "loan {} of {} closed as {} on {on}; the device is now lost",
                loan.loan_id,
                loan.device_label(),
                loan.state
            );
            print_one(&loan, format, &line)?;
        }
        LoansCommand::Cancel { loan, reason, by } => {
            let loan_id = loans::resolve_loan(pool, scope, &loan).await?;
            let loan =
                loans::cancel_loan(pool, scope, clock, loan_id, &reason, &super::actor(by)).await?;
            let line = format!(
                "loan {} of {} cancelled; {} is free again",
                loan.loan_id,
                loan.device_label(),
                loan.device_label()
            );
            print_one(&loan, format, &line)?;
        }
        LoansCommand::Signed { loan, on, by } => {
            let loan_id = loans::resolve_loan(pool, scope, &loan).await?;
            let loan =
                loans::record_agreement(pool, scope, clock, loan_id, on, &super::actor(by)).await?;
            let line = format!(
                "loan {} of {}: agreement signed on {on}",
                loan.loan_id,
                loan.device_label()
            );
            print_one(&loan, format, &line)?;
        }
        LoansCommand::Checked { device, state, by } => {
            let state =
                loans::finish_check(pool, scope, clock, &device, state, &super::actor(by)).await?;
            let line = format!("{} checked; lifecycle state now {state}", device.trim());
            print_one(
                &serde_json::json!({ "device": device.trim(), "lifecycle_state": state }),
                format,
                &line,
            )?;
        }
        LoansCommand::Show { loan } => {
            let loan_id = loans::resolve_loan(pool, scope, &loan).await?;
            let loan = loans::get_loan(pool, scope, loan_id).await?;
            match format {
                Format::Table => print_detail(&loan, today),
                _ => output::print_json(&loan)?,
            }
        }
        LoansCommand::List(args) => {
            let filter = LoanFilter {
                authority: args.group.authority,
                school: args.group.school,
                class: args.group.class,
                borrower: args.borrower,
                overdue: args.overdue,
                due_before: args.due_before,
                state: args.state.0,
                borrower_left: false,
                limit: args.limit,
            };
            let list = loans::list_loans(pool, scope, &filter, today).await?;
            output::print_list(&listed(list, today), format)?;
        }
        LoansCommand::Overdue(args) => {
            let filter = LoanFilter {
                authority: args.authority,
                school: args.school,
                class: args.class,
                ..LoanFilter::default()
            };
            let groups = loans::overdue_by_class(pool, scope, &filter, today).await?;
            print_groups(groups, format, today)?;
        }
        LoansCommand::LeftWithDevice { authority } => {
            let list = loans::left_with_device(pool, scope, authority.as_deref(), today).await?;
            output::print_list(&listed(list, today), format)?;
        }
        LoansCommand::Import(args) => {
            // The template and the output file are checked before anything is written.
            let agreements_to = match &args.agreements {
                Some(path) => {
                    agreements::refuse_existing(path, args.force)?;
                    Some((path.as_path(), agreements::load_template(config)?))
                }
                None => None,
            };
            let file = std::fs::File::open(&args.file)
                .with_context(|| format!("cannot open {}", args.file.display()))?;
            let rows = read_loan_csv_in(file, args.encoding)
                .with_context(|| format!("cannot read {}", args.file.display()))?;
            let options = BulkOptions {
                partial: args.partial,
                dry_run: args.dry_run,
                allow_repeat_borrower: args.allow_repeat_borrower,
            };
            let report = loans::import_loans(
                pool,
                scope,
                clock,
                policy,
                &rows,
                options,
                &super::actor(args.by),
            )
            .await?;
            if let Format::Table = format {
                print_import(&report, &mut std::io::stdout().lock())?;
            }
            let written = match agreements_to {
                Some((path, template)) => {
                    let written = agreements::import_agreements(
                        pool, scope, &template, &report, path, args.force,
                    )
                    .await?;
                    if let Format::Table = format {
                        match &written {
                            Some(written) => println!("{}", agreements::written_line(written)),
                            None => println!(
                                "no agreements written to {}: the import created no loans",
                                path.display()
                            ),
                        }
                    }
                    written
                }
                None => None,
            };
            if format != Format::Table {
                output::print_json(&ImportOutcome {
                    report: &report,
                    agreements: written,
                })?;
            }
            return Ok(i32::from(!report.errors.is_empty()));
        }
        LoansCommand::Agreement(args) => {
            let template = agreements::load_template(config)?;
            let (list, default_path) = match (&args.school, &args.class) {
                (Some(school), Some(class)) => (
                    agreements::agreements_of_class(
                        pool,
                        scope,
                        args.authority.as_deref(),
                        school,
                        class,
                        today,
                    )
                    .await?,
                    agreements::default_class_output(class),
                ),
                _ => {
                    let list = agreements::agreements_of_loans(pool, scope, &args.loans).await?;
                    let path = agreements::default_output(&list);
                    (list, path)
                }
            };
            let path = args.output.unwrap_or(default_path);
            agreements::refuse_existing(&path, args.force)?;
            let written = agreements::write_agreements(&template, &list, &path, args.force)?;
            print_one(&written, format, &agreements::written_line(&written))?;
        }
        LoansCommand::ScanReturn { by } => {
            let stdin = std::io::stdin();
            let summary = scan_return(
                pool,
                scope,
                clock,
                stdin.lock(),
                &mut std::io::stdout().lock(),
                &super::actor(by),
            )
            .await?;
            return Ok(i32::from(!summary.refused.is_empty()));
        }
        LoansCommand::ScanIssue(args) => {
            let template = IssueRequest {
                borrower: args.to,
                due_on: args.due,
                accessories: args.accessories,
                ..IssueRequest::default()
            };
            let stdin = std::io::stdin();
            let summary = scan_issue(
                pool,
                scope,
                clock,
                policy,
                &template,
                stdin.lock(),
                &mut std::io::stdout().lock(),
                &super::actor(args.by),
            )
            .await?;
            return Ok(i32::from(!summary.refused.is_empty()));
        }
        LoansCommand::ClassSet(args) => {
            let device_pool = match (args.room, args.tag) {
                (Some(room), _) => DevicePool::Room(room),
                (None, Some(tag)) => DevicePool::Tag(tag),
                (None, None) => anyhow::bail!("give --room or --tag"),
            };
            let request = ClassSetRequest {
                authority: args.authority,
                school: args.school,
                class: args.class,
                pool: device_pool,
                due_on: args.due,
                accessories: args.accessories,
                partial: args.partial,
                dry_run: args.dry_run,
            };
            let report = loans::issue_class_set(
                pool,
                scope,
                clock,
                policy,
                &request,
                &super::actor(args.by),
            )
            .await?;
            match format {
                Format::Table => print_class_set(&report),
                _ => output::print_json(&report)?,
            }
        }
        LoansCommand::Tag(args) => {
            let tagged = loans::tag_devices(
                pool,
                scope,
                clock,
                &args.devices,
                &args.add,
                &args.remove,
                &super::actor(args.by),
            )
            .await?;
            match format {
                Format::Table => {
                    for device in &tagged {
                        println!(
                            "{}: {}{}",
                            device.device,
                            if device.tags.is_empty() {
                                "no tags".to_string()
                            } else {
                                device.tags.join(", ")
                            },
                            if device.changed { "" } else { " (unchanged)" }
                        );
                    }
                }
                _ => output::print_json(&tagged)?,
            }
        }
    }
    Ok(0)
}

/// What `loans import --format json` prints: the report, and the agreements written.
#[derive(Debug, Serialize)]
struct ImportOutcome<'a> {
    #[serde(flatten)]
    report: &'a BulkReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    agreements: Option<agreements::WrittenAgreements>,
}

/// Prints a single result: a confirmation line for people, the record for scripts.
pub(crate) fn print_one<T: Serialize>(value: &T, format: Format, line: &str) -> anyhow::Result<()> {
    match format {
        Format::Table => {
            println!("{line}");
            Ok(())
        }
        _ => output::print_json(value),
    }
}

/// `Lea Schulz, 5a`: how confirmations name the borrower.
fn borrower_with_class(loan: &LoanView) -> String {
    match &loan.class_name {
        Some(class) => format!("{}, {class}", loan.borrower_label()),
        None => loan.borrower_label(),
    }
}

fn issued_line(loan: &LoanView) -> String {
    format!(
        "{} issued (loan {}, {}, due {})",
        loan.device_label(),
        loan.loan_id,
        borrower_with_class(loan),
        loan.due_on
    )
}

fn returned_line(loan: &LoanView) -> String {
    format!(
        "{} returned (loan {}, {})",
        loan.device_label(),
        loan.loan_id,
        borrower_with_class(loan)
    )
}

/// What a scanning session did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScanSummary {
    /// Confirmation lines of the devices handled.
    pub done: Vec<String>,
    /// (what was scanned, why it was refused).
    pub refused: Vec<(String, String)>,
}

/// Reads scanned asset tags or serials from `input` (one per line; an empty line or the end
/// ends the session), takes each device back at once, confirms it on `out`, and ends with a
/// summary. A refusal is reported and the session goes on.
pub async fn scan_return<R: BufRead, W: Write>(
    pool: &PgPool,
    scope: &Scope,
    clock: &dyn Clock,
    input: R,
    out: &mut W,
    actor: &Actor,
) -> anyhow::Result<ScanSummary> {
    writeln!(
        out,
        "Scan devices to take back; an empty line ends (returns are recorded without damage; \
         use `bestand loans return` for damage or missing accessories)."
    )?;
    let mut summary = ScanSummary::default();
    for line in input.lines() {
        let line = line?;
        let scanned = line.trim();
        if scanned.is_empty() {
            break;
        }
        let outcome = async {
            let loan_id = loans::active_loan_of_device(pool, scope, scanned).await?;
            loans::return_loan(
                pool,
                scope,
                clock,
                loan_id,
                &ReturnRequest::default(),
                actor,
            )
            .await
        }
        .await;
        confirm(
            out,
            &mut summary,
            scanned,
            outcome.map(|o| returned_line(&o.loan)),
        )?;
    }
    write_summary(out, &summary, "returned")?;
    Ok(summary)
}

/// Like `scan_return`, but hands each scanned device to the borrower of `template` (resolved
/// once, before the first scan), with its due date and accessories.
// Scope, clock and actor come with every hand-out, input and output with every scan loop.
#[allow(clippy::too_many_arguments)]
pub async fn scan_issue<R: BufRead, W: Write>(
    pool: &PgPool,
    scope: &Scope,
    clock: &dyn Clock,
    policy: &LoanPolicy,
    template: &IssueRequest,
    input: R,
    out: &mut W,
    actor: &Actor,
) -> anyhow::Result<ScanSummary> {
    let person_id = resolve_person(pool, &super::scope(), None, &template.borrower).await?;
    policy.accessories_of(&template.accessories)?;
    writeln!(
        out,
        "Scan devices to hand to {}; an empty line ends.",
        template.borrower.trim()
    )?;
    let mut summary = ScanSummary::default();
    for line in input.lines() {
        let line = line?;
        let scanned = line.trim();
        if scanned.is_empty() {
            break;
        }
        let request = IssueRequest {
            device: scanned.to_string(),
            borrower: person_id.to_string(),
            ..template.clone()
        };
        let outcome = loans::issue_loan(pool, scope, clock, policy, &request, actor).await;
        confirm(
            out,
            &mut summary,
            scanned,
            outcome.map(|loan| issued_line(&loan)),
        )?;
    }
    write_summary(out, &summary, "issued")?;
    Ok(summary)
}

/// Prints `✓ line` or `✗ scanned: reason` at once; database failures end the session.
fn confirm<W: Write>(
    out: &mut W,
    summary: &mut ScanSummary,
    scanned: &str,
    outcome: Result<String, CoreError>,
) -> anyhow::Result<()> {
    match outcome {
        Ok(line) => {
            writeln!(out, "✓ {line}")?;
            summary.done.push(line);
        }
        Err(error @ (CoreError::Database(_) | CoreError::Migrate(_))) => {
            return Err(error.into());
        }
        Err(error) => {
            let reason = error.to_string();
            writeln!(out, "✗ {scanned}: {reason}")?;
            summary.refused.push((scanned.to_string(), reason));
        }
    }
    out.flush()?;
    Ok(())
}

fn write_summary<W: Write>(out: &mut W, summary: &ScanSummary, verb: &str) -> anyhow::Result<()> {
    writeln!(
        out,
        "{} {verb}, {} refused",
        summary.done.len(),
        summary.refused.len()
    )?;
    for (scanned, reason) in &summary.refused {
        writeln!(out, "  ✗ {scanned}: {reason}")?;
    }
    out.flush()?;
    Ok(())
}

/// The columns a hand-out file may have (header names, any case).
const CSV_COLUMNS: &[&str] = &["borrower", "device", "due", "accessories"];

/// Reads a hand-out file whose encoding is detected; see `read_loan_csv_in`.
pub fn read_loan_csv<R: Read>(reader: R) -> anyhow::Result<Vec<BulkRow>> {
    read_loan_csv_in(reader, None)
}

/// Reads a hand-out file: a header row naming `borrower` and `device` (and optionally `due`
/// and `accessories`, separated by `;`), in any order. Encoding and delimiter are read as
/// every import reads them (`tabular::decode`): UTF-8 or Windows-1252, `,`, `;` or tab as
/// the header row shows. Blank rows are skipped; each row keeps its line number for the
/// report.
pub fn read_loan_csv_in<R: Read>(
    mut reader: R,
    encoding: Option<Encoding>,
) -> anyhow::Result<Vec<BulkRow>> {
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .context("cannot read the file")?;
    let decoded = tabular::decode(&bytes, encoding, None)?;
    let text = decoded.text.as_str();
    let mut csv = decoded
        .reader_builder()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = csv
        .headers()
        .context("cannot read the header row")?
        .iter()
        .map(|h| h.trim().to_lowercase())
        .collect();
    for header in &headers {
        if !CSV_COLUMNS.contains(&header.as_str()) {
            anyhow::bail!(
                "line 1: unknown column \"{header}\" (columns: {})",
                CSV_COLUMNS.join(", ")
            );
        }
    }
    let column = |name: &str| headers.iter().position(|h| h == name);
    let (Some(borrower), Some(device)) = (column("borrower"), column("device")) else {
        anyhow::bail!("line 1: the header row must name the columns borrower and device");
    };
    let (due, accessories) = (column("due"), column("accessories"));
    let mut rows = Vec::new();
    // Rows come in file order, so their line numbers are counted on from the row before.
    let mut lines = tabular::LineCounter::default();
    for record in csv.records() {
        let record = record.context("cannot read a row")?;
        if record.iter().all(|field| field.trim().is_empty()) {
            continue;
        }
        let field = |at: Option<usize>| {
            at.and_then(|at| record.get(at))
                .map(|cell| tabular::unneutralise(cell).to_string())
                .unwrap_or_default()
        };
        rows.push(BulkRow {
            line: record.position().map_or(0, |p| lines.line(text, p.byte())),
            borrower: field(Some(borrower)),
            device: field(Some(device)),
            due: Some(field(due)).filter(|d| !d.is_empty()),
            accessories: field(accessories)
                .split(';')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect(),
        });
    }
    Ok(rows)
}

/// Prints an import report for people: every bad row with its line, then what was written.
pub fn print_import<W: Write>(report: &BulkReport, out: &mut W) -> anyhow::Result<()> {
    for error in &report.errors {
        writeln!(out, "✗ {error}")?;
    }
    for row in &report.accepted {
        let done = match row.loan_id {
            Some(loan_id) => format!("loan {loan_id}"),
            None => "not written".to_string(),
        };
        writeln!(
            out,
            "✓ line {}: {} to {}, due {} ({done})",
            row.line, row.device, row.borrower, row.due_on
        )?;
    }
    let verdict = if report.dry_run {
        format!(
            "dry run: {} row(s) good, {} bad; nothing was written",
            report.accepted.len(),
            report.errors.len()
        )
    } else if report.applied {
        format!(
            "{} loan(s) written, {} row(s) refused",
            report.accepted.len(),
            report.errors.len()
        )
    } else {
        format!(
            "{} row(s) bad: nothing was written (fix them, or use --partial to write the {} good row(s))",
            report.errors.len(),
            report.accepted.len()
        )
    };
    writeln!(out, "{verdict}")?;
    Ok(())
}

fn print_class_set(report: &ClassSetReport) {
    println!(
        "{}",
        output::table(
            vec!["pupil", "username", "device", "loan", "note"],
            report.lines.iter().map(|line| vec![
                opt(&line.name),
                opt(&line.username),
                opt(&line.device),
                opt(&line.loan_id),
                opt(&line.skipped),
            ])
        )
    );
    let verdict = if report.applied {
        "handed out"
    } else {
        "would be handed out (dry run, nothing written)"
    };
    println!(
        "class {} at school {}: {} device(s) {verdict}, due {}; {} pupil(s) without a new device; \
         {} lendable device(s) were in the pool",
        report.class,
        report.school_number,
        report.issued,
        report.due_on,
        report.skipped,
        report.pool_size
    );
}

/// A loan as lists show it: the stored loan and whether it is overdue today.
#[derive(Debug, Clone, Serialize)]
pub struct ListedLoan {
    #[serde(flatten)]
    pub loan: LoanView,
    pub overdue: bool,
}

fn listed(list: Vec<LoanView>, today: NaiveDate) -> Vec<ListedLoan> {
    list.into_iter()
        .map(|loan| ListedLoan {
            overdue: loan.is_overdue(today),
            loan,
        })
        .collect()
}

/// Overdue loans per school and class: a table per group for people, the groups as JSON, and
/// for CSV one flat list (every row names its school and class).
fn print_groups(groups: Vec<LoanGroup>, format: Format, today: NaiveDate) -> anyhow::Result<()> {
    match format {
        Format::Json => output::print_json(&groups),
        Format::Csv => {
            let flat: Vec<LoanView> = groups.into_iter().flat_map(|g| g.loans).collect();
            output::print_list(&listed(flat, today), format)
        }
        Format::Table => {
            if groups.is_empty() {
                println!("no overdue loans");
            }
            for group in groups {
                let school = match (&group.school_number, &group.school_name) {
                    (Some(number), Some(name)) => format!("{name} ({number})"),
                    _ => "no school".to_string(),
                };
                let class = match &group.class_name {
                    Some(class) => format!("class {class}"),
                    None => "no class (teachers, staff)".to_string(),
                };
                println!("\n{school}, {class}: {} overdue", group.loans.len());
                let rows = listed(group.loans, today);
                println!(
                    "{}",
                    output::table(ListedLoan::headers(), rows.iter().map(Row::cells))
                );
            }
            Ok(())
        }
    }
}

fn print_detail(loan: &LoanView, today: NaiveDate) {
    let school = match (&loan.school_number, &loan.school_name) {
        (Some(number), Some(name)) => format!("{name} ({number})"),
        _ => String::new(),
    };
    let mut state = loan.state.clone();
    if loan.is_overdue(today) {
        state.push_str(", overdue");
    }
    if loan.borrower_left {
        state.push_str(", borrower left");
    }
    let list =
        |items: &Option<Vec<String>>| items.as_ref().map(|i| i.join(", ")).unwrap_or_default();
    let rows: Vec<(&str, String)> = vec![
        ("loan", loan.loan_id.to_string()),
        ("state", state),
        (
            "device",
            format!("{} ({})", loan.device_label(), opt(&loan.model)),
        ),
        ("device state", loan.lifecycle_state.clone()),
        ("borrower", borrower_with_class(loan)),
        ("username", opt(&loan.username)),
        ("school", school),
        (
            "handed out",
            format!(
                "{} by {}",
                time(&Some(loan.handed_out_at)),
                loan.handed_out_by
            ),
        ),
        ("due", loan.due_on.to_string()),
        ("accessories", loan.accessories.join(", ")),
        ("condition out", opt(&loan.condition_out)),
        ("agreement signed", opt(&loan.agreement_signed_on)),
        ("school override", opt(&loan.school_override_reason)),
        (
            "returned",
            match &loan.returned_at {
                Some(_) => format!("{} by {}", time(&loan.returned_at), opt(&loan.returned_by)),
                None => String::new(),
            },
        ),
        ("condition in", opt(&loan.condition_in)),
        ("accessories back", list(&loan.accessories_returned)),
        ("accessories missing", list(&loan.accessories_missing)),
        ("damage", opt(&loan.damage_notes)),
        (
            "closed",
            match &loan.closed_at {
                Some(_) => format!("{} by {}", time(&loan.closed_at), opt(&loan.closed_by)),
                None => String::new(),
            },
        ),
        ("lost on", opt(&loan.lost_on)),
        ("note", opt(&loan.close_note)),
    ];
    println!(
        "{}",
        output::table(
            vec!["field", "value"],
            rows.into_iter().map(|(k, v)| vec![k.to_string(), v])
        )
    );
}

/// The loans table of `devices show` and `persons show`: `borrower` picks which side to name.
pub fn loans_table(loans: &[LoanView], borrower: bool) -> comfy_table::Table {
    let headers = vec![
        "loan",
        "state",
        if borrower { "borrower" } else { "device" },
        "school",
        "handed out",
        "due",
        "closed",
        "flag",
    ];
    output::table(
        headers,
        loans.iter().map(|loan| {
            vec![
                loan.loan_id.to_string(),
                loan.state.clone(),
                if borrower {
                    borrower_with_class(loan)
                } else {
                    format!("{} {}", loan.device_label(), opt(&loan.model))
                        .trim()
                        .to_string()
                },
                opt(&loan.school_number),
                time(&Some(loan.handed_out_at)),
                loan.due_on.to_string(),
                time(&loan.closed_at),
                if loan.borrower_left {
                    "borrower left".to_string()
                } else {
                    String::new()
                },
            ]
        }),
    )
}

impl Row for ListedLoan {
    fn headers() -> Vec<&'static str> {
        vec![
            "loan",
            "state",
            "school",
            "class",
            "borrower",
            "username",
            "device",
            "serial",
            "model",
            "handed out",
            "due",
            "signed",
            "closed",
            "flag",
        ]
    }

    fn cells(&self) -> Vec<String> {
        let loan = &self.loan;
        let mut flags = Vec::new();
        if self.overdue {
            flags.push("overdue");
        }
        if loan.borrower_left {
            flags.push("borrower left");
        }
        vec![
            loan.loan_id.to_string(),
            loan.state.clone(),
            opt(&loan.school_number),
            opt(&loan.class_name),
            loan.borrower_label(),
            opt(&loan.username),
            opt(&loan.asset_tag),
            opt(&loan.serial_number),
            opt(&loan.model),
            time(&Some(loan.handed_out_at)),
            loan.due_on.to_string(),
            opt(&loan.agreement_signed_on),
            time(&loan.closed_at),
            flags.join(", "),
        ]
    }
}
