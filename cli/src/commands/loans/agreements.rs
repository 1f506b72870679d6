//! `bestand loans agreement`: loan agreements (Leihverträge) as one PDF, for loans named on the
//! command line, for every active loan of a class, or for the loans a hand-out file has just
//! created. Core reads the facts (`bestand_core::loans::agreement_facts`); this module maps
//! them to the renderer's `AgreementData`, loads the authority's template named in the config,
//! and writes the file without overwriting one by accident.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use bestand_core::loans::{self, AgreementFacts, BulkReport, LoanFilter};
use bestand_core::model::{DeviceCategory, LoanState, PersonRole};
use bestand_core::Scope;
use chrono::NaiveDate;
use serde::Serialize;
use sqlx::PgPool;

use bestand_app::config::Config;
use bestand_documents::agreement::{
    render_agreement_pdf, AgreementData, AgreementTemplate, AuthorityInfo, BorrowerInfo,
    BorrowerRole, DeviceInfo, SchoolInfo,
};

/// The template agreements are printed with: `[loans] agreement_template` of `config` (read
/// and checked now), else the built-in German one.
pub fn load_template(config: &Config) -> anyhow::Result<AgreementTemplate> {
    template_from(config.loans.agreement_template.as_deref()).with_context(|| {
        format!(
            "[loans] agreement_template of config file {}",
            config.path.display()
        )
    })
}

/// The template in `path` (already resolved against the config file's folder), else the
/// built-in German one.
pub fn template_from(path: Option<&Path>) -> anyhow::Result<AgreementTemplate> {
    Ok(match path {
        Some(path) => AgreementTemplate::from_file(path)?,
        None => AgreementTemplate::default_german()?,
    })
}

/// How the agreement names a device category.
fn category_label(category: DeviceCategory) -> &'static str {
    match category {
        DeviceCategory::Tablet => "Tablet",
        DeviceCategory::Laptop => "Notebook",
        DeviceCategory::Desktop => "Desktop-PC",
        DeviceCategory::Display => "Bildschirm",
        DeviceCategory::Printer => "Drucker",
        DeviceCategory::Other => "Gerät",
    }
}

/// What one agreement prints about the loan of `facts`. The inventory stores no birthdays, so
/// every pupil counts as a minor and gets the guardians' signature line; teachers and staff do
/// not. A borrower no directory gives a role is printed as staff.
pub fn agreement_data(facts: &AgreementFacts) -> AgreementData {
    let role = match facts.role {
        Some(PersonRole::Student) => BorrowerRole::Pupil,
        Some(PersonRole::Teacher) => BorrowerRole::Teacher,
        Some(PersonRole::Staff | PersonRole::SchoolAdmin) | None => BorrowerRole::Staff,
    };
    let display_name = facts
        .borrower_name
        .clone()
        .or_else(|| facts.username.clone())
        .unwrap_or_else(|| facts.person_id.to_string());
    AgreementData {
        loan_id: facts.loan_id,
        authority: AuthorityInfo {
            name: facts.authority_name.clone(),
        },
        school: SchoolInfo {
            name: facts.school_name.clone(),
            school_number: facts.school_number.clone(),
        },
        borrower: BorrowerInfo {
            display_name,
            username: facts.username.clone(),
            class_name: facts.class_name.clone(),
            role,
            minor: role == BorrowerRole::Pupil,
        },
        device: DeviceInfo {
            category: category_label(facts.category).to_string(),
            manufacturer: facts.manufacturer.clone(),
            model: facts.model.clone(),
            serial_number: facts.serial_number.clone(),
            asset_tag: facts.asset_tag.clone(),
        },
        accessories: facts.accessories.clone(),
        // Like every date bestand derives from a timestamp, the day in UTC.
        handed_out_on: bestand_core::clock::school_date(facts.handed_out_at),
        due_on: Some(facts.due_on),
        handed_out_by: facts.handed_out_by.clone(),
        condition: facts
            .condition_out
            .clone()
            .filter(|condition| !condition.trim().is_empty()),
    }
}

/// The agreements of the loans `keys` name (loan ids such as `17` or `loan:17`, or devices
/// meaning their active loan), in the order given.
pub async fn agreements_of_loans(
    pool: &PgPool,
    scope: &Scope,
    keys: &[String],
) -> anyhow::Result<Vec<AgreementData>> {
    let mut loan_ids = Vec::with_capacity(keys.len());
    for key in keys {
        loan_ids.push(loans::resolve_loan(pool, scope, key).await?);
    }
    agreements_of_loan_ids(pool, scope, &loan_ids).await
}

/// The agreements of `loan_ids`, in that order.
pub async fn agreements_of_loan_ids(
    pool: &PgPool,
    scope: &Scope,
    loan_ids: &[i64],
) -> anyhow::Result<Vec<AgreementData>> {
    let facts = loans::agreement_facts(pool, scope, loan_ids).await?;
    Ok(facts.iter().map(agreement_data).collect())
}

/// The agreements of every active loan of `class` at the lending school `school` (number, name
/// or alias), by the borrowers' family name, then given name and username.
pub async fn agreements_of_class(
    pool: &PgPool,
    scope: &Scope,
    authority: Option<&str>,
    school: &str,
    class: &str,
    today: NaiveDate,
) -> anyhow::Result<Vec<AgreementData>> {
    let filter = LoanFilter {
        authority: authority.map(str::to_string),
        school: Some(school.to_string()),
        class: Some(class.to_string()),
        state: Some(LoanState::Active),
        ..LoanFilter::default()
    };
    let listed = loans::list_loans(pool, scope, &filter, today).await?;
    if listed.is_empty() {
        anyhow::bail!(
            "no active loans of class {} at school \"{}\" (the school by number, name or alias, \
             the class as the directory names it)",
            class.trim(),
            school.trim()
        );
    }
    let loan_ids: Vec<i64> = listed.iter().map(|loan| loan.loan_id).collect();
    let mut facts = loans::agreement_facts(pool, scope, &loan_ids).await?;
    facts.sort_by_cached_key(|facts| {
        (
            sort_key(facts.family_name.as_deref()),
            sort_key(facts.given_name.as_deref()),
            sort_key(facts.username.as_deref()),
            facts.loan_id,
        )
    });
    Ok(facts.iter().map(agreement_data).collect())
}

/// A name as a German class list sorts it (DIN 5007, variant 1): without regard to case, with
/// ä, ö, ü as a, o, u and ß as ss; a missing name last.
fn sort_key(name: Option<&str>) -> (bool, String) {
    let Some(name) = name.map(str::trim).filter(|name| !name.is_empty()) else {
        return (true, String::new());
    };
    let mut key = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        match c {
            'ä' => key.push('a'),
            'ö' => key.push('o'),
            'ü' => key.push('u'),
            'ß' => key.push_str("ss"),
            other => key.push(other),
        }
    }
    (false, key)
}

/// The file `bestand loans agreement` writes when no `-o` is given: `leihvertrag-17.pdf` for
/// one loan, `leihvertraege.pdf` for several.
pub fn default_output(agreements: &[AgreementData]) -> PathBuf {
    match agreements {
        [one] => PathBuf::from(format!("leihvertrag-{}.pdf", one.loan_id)),
        _ => PathBuf::from("leihvertraege.pdf"),
    }
}

/// The default file of a class's agreements: `leihvertraege-5a.pdf`.
pub fn default_class_output(class: &str) -> PathBuf {
    let class: String = class
        .trim()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    PathBuf::from(format!("leihvertraege-{class}.pdf"))
}

/// Refuses an existing `path` unless `force`: checked before anything is done, so that a
/// hand-out is not written only to find that its agreements cannot be.
pub fn refuse_existing(path: &Path, force: bool) -> anyhow::Result<()> {
    if !force && path.exists() {
        anyhow::bail!(
            "{} already exists; pass --force to overwrite it",
            path.display()
        );
    }
    Ok(())
}

/// What was written.
#[derive(Debug, Clone, Serialize)]
pub struct WrittenAgreements {
    pub path: PathBuf,
    /// One agreement per loan, in this order.
    pub loan_ids: Vec<i64>,
    pub pages: usize,
}

/// Renders `agreements` (one per page, a long template continuing on the next) and writes the
/// PDF to `path`; an existing file is refused unless `force`.
pub fn write_agreements(
    template: &AgreementTemplate,
    agreements: &[AgreementData],
    path: &Path,
    force: bool,
) -> anyhow::Result<WrittenAgreements> {
    let pdf = render_agreement_pdf(template, agreements)?;
    let mut options = OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = match options.open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            anyhow::bail!(
                "{} already exists; pass --force to overwrite it",
                path.display()
            )
        }
        Err(error) => {
            return Err(error).with_context(|| format!("cannot write {}", path.display()));
        }
    };
    file.write_all(&pdf.bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(WrittenAgreements {
        path: path.to_path_buf(),
        loan_ids: agreements.iter().map(|data| data.loan_id).collect(),
        pages: pdf.pages,
    })
}

/// Writes the agreements of the loans `report` created to `path`; `None` when it created none
/// (a dry run, or bad rows without `--partial`).
pub async fn import_agreements(
    pool: &PgPool,
    scope: &Scope,
    template: &AgreementTemplate,
    report: &BulkReport,
    path: &Path,
    force: bool,
) -> anyhow::Result<Option<WrittenAgreements>> {
    let loan_ids: Vec<i64> = report
        .accepted
        .iter()
        .filter_map(|row| row.loan_id)
        .collect();
    if !report.applied || report.dry_run || loan_ids.is_empty() {
        return Ok(None);
    }
    let written = async {
        let list = agreements_of_loan_ids(pool, scope, &loan_ids).await?;
        write_agreements(template, &list, path, force)
    }
    .await
    .context(
        "the loans were written, but their agreements were not; print them with \
         `bestand loans agreement LOAN...`",
    )?;
    Ok(Some(written))
}

/// `wrote leihvertraege.pdf: 24 agreements on 24 pages`.
pub fn written_line(written: &WrittenAgreements) -> String {
    let agreements = written.loan_ids.len();
    format!(
        "wrote {}: {agreements} agreement{} on {} page{}",
        written.path.display(),
        if agreements == 1 { "" } else { "s" },
        written.pages,
        if written.pages == 1 { "" } else { "s" }
    )
}
