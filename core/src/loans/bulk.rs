//! The school-year rush: hundreds of hand-outs from one file. Every row is checked before
//! anything is written, every bad row is reported with its line number, and the loans are
//! written in one transaction: all or nothing, or (when asked) the good rows only.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::access::{Actor, Scope};
use crate::clock::Clock;
use crate::error::CoreError;
use crate::loans::checks::{load_borrower, lock_device, place_borrower, NewLoan};
use crate::loans::issue::resolve_borrower;
use crate::loans::policy::{parse_date, LoanPolicy};
use crate::loans::rules::{cannot_lend, due_date_refusal, insert_active_loan, lendable_refusal};
use crate::loans::scoped::{resolve_device, resolve_person};

/// One row of a hand-out file, as read (the CLI reads the CSV; the rules live here).
#[derive(Debug, Clone, Default)]
pub struct BulkRow {
    /// The row's line in the file (the header is line 1), for the report.
    pub line: u64,
    /// Username, email or person id.
    pub borrower: String,
    /// Asset tag, serial number or device id.
    pub device: String,
    /// `YYYY-MM-DD` or `DD.MM.YYYY`; empty for the default due date.
    pub due: Option<String>,
    pub accessories: Vec<String>,
}

/// How a bulk hand-out treats bad rows.
#[derive(Debug, Clone, Copy, Default)]
pub struct BulkOptions {
    /// Write the good rows even when some are bad (otherwise nothing is written).
    pub partial: bool,
    /// Check everything, write nothing.
    pub dry_run: bool,
    /// Allow one borrower on several rows (teachers taking a set, say).
    pub allow_repeat_borrower: bool,
}

/// A bad row and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub line: u64,
    pub reason: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// A good row: what was (or on a dry run, would be) written.
#[derive(Debug, Clone, Serialize)]
pub struct AcceptedRow {
    pub line: u64,
    /// `None` on a dry run or when nothing was written.
    pub loan_id: Option<i64>,
    pub device: String,
    pub borrower: String,
    pub due_on: chrono::NaiveDate,
}

/// The outcome of a bulk hand-out.
#[derive(Debug, Clone, Serialize)]
pub struct BulkReport {
    pub accepted: Vec<AcceptedRow>,
    /// Every bad row, by line.
    pub errors: Vec<RowError>,
    /// Whether loans were written.
    pub applied: bool,
    pub dry_run: bool,
}

/// A row that passed the checks that need no lock.
struct Candidate {
    line: u64,
    device_id: Uuid,
    person_id: Uuid,
    due_on: Option<chrono::NaiveDate>,
    accessories: Vec<String>,
}

/// Checks every row, then writes the loans in one transaction as `options` say. Devices and
/// borrowers outside `scope` are unknown.
pub async fn import_loans(
    pool: &PgPool,
    scope: &Scope,
    clock: &dyn Clock,
    policy: &LoanPolicy,
    rows: &[BulkRow],
    options: BulkOptions,
    actor: &Actor,
) -> Result<BulkReport, CoreError> {
    let now = clock.now();
    let today = crate::clock::school_date(now);
    let mut errors: Vec<RowError> = Vec::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut device_lines: HashMap<Uuid, u64> = HashMap::new();
    let mut borrower_lines: HashMap<Uuid, u64> = HashMap::new();

    for row in rows {
        let mut reasons: Vec<String> = Vec::new();
        let device_id = if row.device.trim().is_empty() {
            reasons.push("no device given".to_string());
            None
        } else {
            match resolve_device(pool, scope, &row.device).await {
                Ok(device_id) => Some(device_id),
                Err(error) => {
                    reasons.push(person_facing(error)?);
                    None
                }
            }
        };
        let person_id = if row.borrower.trim().is_empty() {
            reasons.push("no borrower given".to_string());
            None
        } else {
            let resolved = match device_id {
                Some(device_id) => resolve_borrower(pool, scope, device_id, &row.borrower).await,
                None => resolve_person(pool, scope, None, &row.borrower).await,
            };
            match resolved {
                Ok(person_id) => Some(person_id),
                Err(error) => {
                    reasons.push(person_facing(error)?);
                    None
                }
            }
        };
        let due_on = match row.due.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
            None => None,
            Some(text) => match parse_date(text) {
                Ok(due) => match due_date_refusal(due, today) {
                    Some(reason) => {
                        reasons.push(reason);
                        None
                    }
                    None => Some(due),
                },
                Err(message) => {
                    reasons.push(message);
                    None
                }
            },
        };
        let accessories = match policy.accessories_of(&row.accessories) {
            Ok(accessories) => accessories,
            Err(error) => {
                reasons.push(person_facing(error)?);
                Vec::new()
            }
        };
        if let Some(device_id) = device_id {
            if let Some(first) = device_lines.get(&device_id) {
                reasons.push(format!(
                    "device {} is already on line {first}",
                    row.device.trim()
                ));
            } else {
                device_lines.insert(device_id, row.line);
            }
        }
        if let Some(person_id) = person_id {
            match borrower_lines.get(&person_id) {
                Some(first) if !options.allow_repeat_borrower => reasons.push(format!(
                    "borrower {} is already on line {first}",
                    row.borrower.trim()
                )),
                Some(_) => {}
                None => {
                    borrower_lines.insert(person_id, row.line);
                }
            }
        }
        match (device_id, person_id, reasons.is_empty()) {
            (Some(device_id), Some(person_id), true) => candidates.push(Candidate {
                line: row.line,
                device_id,
                person_id,
                due_on,
                accessories,
            }),
            _ => errors.push(RowError {
                line: row.line,
                reason: reasons.join("; "),
            }),
        }
    }

    let mut tx = pool.begin().await?;
    // Locks in device order, so two bulk runs over overlapping files cannot deadlock.
    let mut by_device: Vec<&Candidate> = candidates.iter().collect();
    by_device.sort_by_key(|candidate| candidate.device_id);
    let mut ready = Vec::new();
    for candidate in by_device {
        let device = lock_device(&mut tx, candidate.device_id).await?;
        if let Some(reason) = lendable_refusal(&mut tx, &device).await? {
            errors.push(RowError {
                line: candidate.line,
                reason: cannot_lend(&device, &reason),
            });
            continue;
        }
        let borrower = load_borrower(&mut tx, candidate.person_id).await?;
        match place_borrower(&device, &borrower, None) {
            Ok(placement) => ready.push((candidate, device, borrower, placement)),
            Err(reason) => errors.push(RowError {
                line: candidate.line,
                reason: cannot_lend(&device, &reason),
            }),
        }
    }
    errors.sort_by_key(|error| error.line);
    ready.sort_by_key(|(candidate, ..)| candidate.line);

    let write = errors.is_empty() || options.partial;
    let mut accepted = Vec::new();
    let mut refused_at_write = false;
    for (candidate, device, borrower, placement) in &ready {
        let due_on = candidate.due_on.unwrap_or_else(|| {
            policy.default_due(
                &device.authority_slug,
                placement.school_number.as_deref(),
                today,
            )
        });
        let loan_id = if write {
            let new_loan = NewLoan {
                device,
                borrower,
                placement,
                due_on,
                accessories: &candidate.accessories,
                condition_out: None,
                agreement_signed_on: None,
                override_reason: None,
                now,
                actor,
            };
            match insert_active_loan(&mut tx, &new_loan).await? {
                Ok(loan_id) => Some(loan_id),
                Err(reason) => {
                    refused_at_write = true;
                    errors.push(RowError {
                        line: candidate.line,
                        reason: cannot_lend(device, &reason),
                    });
                    continue;
                }
            }
        } else {
            None
        };
        accepted.push(AcceptedRow {
            line: candidate.line,
            loan_id,
            device: device.label.clone(),
            borrower: borrower.label.clone(),
            due_on,
        });
    }
    // A row the index refused is a bad row like any other: all or nothing still holds.
    let write = write && (options.partial || !refused_at_write);
    if refused_at_write {
        errors.sort_by_key(|error| error.line);
    }
    for row in &mut accepted {
        row.loan_id = row.loan_id.filter(|_| write && !options.dry_run);
    }
    let applied = write && !options.dry_run;
    if applied {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(BulkReport {
        accepted,
        errors,
        applied,
        dry_run: options.dry_run,
    })
}

/// A lookup failure becomes a row's reason; a database failure stops the whole import.
fn person_facing(error: CoreError) -> Result<String, CoreError> {
    match error {
        CoreError::NotFound { .. } | CoreError::Conflict(_) | CoreError::Invalid(_) => {
            Ok(error.to_string())
        }
        other => Err(other),
    }
}
