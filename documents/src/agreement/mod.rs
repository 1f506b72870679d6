//! Loan agreements (Leihverträge) as PDF: a school hands a signed agreement over with every
//! loan device, and at the start of a school year it prints one for each pupil of a class.
//! This module renders them from plain data and a template; it reads no database.
//!
//! The PDF is written with `krilla` (the typst project's PDF layer over `pdf-writer`:
//! maintained, pure Rust), which embeds each font as a subset of the glyphs a document uses.
//! The text is DejaVu Sans, compiled into the binary (`text.rs`), so every name the directory
//! delivers prints as written and stays real, extractable text; the base-14 fonts of earlier
//! versions only had Latin-1. We shape with rustybuzz ourselves rather than through krilla's
//! one-direction text call, because a line must be measured before it is wrapped and a name in
//! Arabic sits right to left inside a left-to-right line. One A4 page of text and lines is
//! little layout to do here (`pdf.rs`).

mod pdf;
mod template;
mod text;

use std::path::PathBuf;
use std::str::FromStr;

use chrono::NaiveDate;

pub use template::{
    AgreementTemplate, Clause, SignatureLabels, DEFAULT_TEMPLATE_TOML, PLACEHOLDERS,
};

/// Everything one agreement prints about a loan.
#[derive(Debug, Clone)]
pub struct AgreementData {
    pub loan_id: i64,
    pub authority: AuthorityInfo,
    pub school: SchoolInfo,
    pub borrower: BorrowerInfo,
    pub device: DeviceInfo,
    /// Case, charger, pen, keyboard: whatever must come back with the device.
    pub accessories: Vec<String>,
    pub handed_out_on: NaiveDate,
    /// `None` lends the device until the school asks for it back ("bis auf Widerruf").
    pub due_on: Option<NaiveDate>,
    /// The person at the school who hands the device out.
    pub handed_out_by: String,
    /// Defects noted at hand-out; `None` prints that none were noted.
    pub condition: Option<String>,
}

/// The school authority (Schulträger), which owns the device.
#[derive(Debug, Clone)]
pub struct AuthorityInfo {
    pub name: String,
}

/// The school that lends the device on the authority's behalf.
#[derive(Debug, Clone)]
pub struct SchoolInfo {
    pub name: String,
    /// The official school number (Schulnummer / Dienststellennummer).
    pub school_number: String,
}

/// The person who borrows the device.
#[derive(Debug, Clone)]
pub struct BorrowerInfo {
    pub display_name: String,
    pub username: Option<String>,
    pub class_name: Option<String>,
    pub role: BorrowerRole,
    /// Minors sign together with their legal guardians, so their agreement has one more line.
    pub minor: bool,
}

/// Who borrows: pupils, teachers and other staff get the same agreement with another label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BorrowerRole {
    Pupil,
    Teacher,
    Staff,
}

impl BorrowerRole {
    /// How the agreement names the role.
    pub fn label(self) -> &'static str {
        match self {
            BorrowerRole::Pupil => "Schülerin/Schüler",
            BorrowerRole::Teacher => "Lehrkraft",
            BorrowerRole::Staff => "Mitarbeiterin/Mitarbeiter",
        }
    }
}

impl FromStr for BorrowerRole {
    type Err = AgreementError;

    /// Reads the role names the inventory stores: `pupil`, `teacher`, `staff`.
    fn from_str(role: &str) -> Result<Self, Self::Err> {
        match role {
            "pupil" | "student" => Ok(BorrowerRole::Pupil),
            "teacher" => Ok(BorrowerRole::Teacher),
            "staff" => Ok(BorrowerRole::Staff),
            other => Err(AgreementError::UnknownRole(other.to_owned())),
        }
    }
}

/// The lent device as the agreement identifies it.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    /// What kind of device, e.g. Tablet or Notebook.
    pub category: String,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial_number: Option<String>,
    /// The Inventarnummer on the device's label.
    pub asset_tag: Option<String>,
}

impl DeviceInfo {
    /// Category, manufacturer and model in one phrase, e.g. "Tablet Apple iPad (10th gen)".
    pub fn description(&self) -> String {
        [
            Some(self.category.as_str()),
            self.manufacturer.as_deref(),
            self.model.as_deref(),
        ]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
    }
}

/// Why an agreement could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AgreementError {
    #[error("cannot read agreement template {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid agreement template{}: {problem}", origin.as_ref().map(|path| format!(" {}", path.display())).unwrap_or_default())]
    Template {
        /// The file the template came from, if it came from one.
        origin: Option<PathBuf>,
        problem: TemplateProblem,
    },
    #[error("no loans to print an agreement for")]
    NoAgreements,
    #[error("unknown borrower role {0:?}; expected pupil, teacher or staff")]
    UnknownRole(String),
    /// krilla could not write the document, e.g. embedding the font failed.
    #[error("cannot write the agreement PDF: {0}")]
    Pdf(String),
}

/// What is wrong inside a template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateProblem {
    #[error("{}{message}", line.map(|line| format!("line {line}: ")).unwrap_or_default())]
    Toml {
        message: String,
        line: Option<usize>,
    },
    #[error(
        "unknown placeholder {{{placeholder}}} in {location}; known placeholders: {}",
        known_placeholders()
    )]
    UnknownPlaceholder {
        placeholder: String,
        location: String,
    },
    #[error("a `{{` in {location} is not closed by `}}`; write `{{{{` for a literal brace")]
    UnclosedBrace { location: String },
    #[error("a `}}` in {location} closes nothing; write `}}}}` for a literal brace")]
    StrayBrace { location: String },
    #[error("{location} contains {character:?}, which the agreement's font cannot print")]
    Unprintable { character: char, location: String },
    #[error("key {key} is missing")]
    Missing { key: &'static str },
}

fn known_placeholders() -> String {
    PLACEHOLDERS
        .iter()
        .map(|(name, _)| format!("{{{name}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Renders one PDF with one agreement per loan, each starting on a new page. With the
/// default template an agreement fills one A4 page; a longer template continues on the next.
pub fn render_agreements(
    template: &AgreementTemplate,
    agreements: &[AgreementData],
) -> Result<Vec<u8>, AgreementError> {
    render_agreement_pdf(template, agreements).map(|pdf| pdf.bytes)
}

/// A rendered PDF and how many pages it has (more than the agreements when a long template
/// continues an agreement on a second page).
#[derive(Debug, Clone)]
pub struct AgreementPdf {
    pub bytes: Vec<u8>,
    pub pages: usize,
}

/// Like [`render_agreements`], and also tells the number of pages.
pub fn render_agreement_pdf(
    template: &AgreementTemplate,
    agreements: &[AgreementData],
) -> Result<AgreementPdf, AgreementError> {
    if agreements.is_empty() {
        return Err(AgreementError::NoAgreements);
    }
    let (bytes, pages) = pdf::render(template, agreements)?;
    Ok(AgreementPdf { bytes, pages })
}

/// Dates as German readers write them: 01.09.2025.
fn german_date(date: NaiveDate) -> String {
    date.format("%d.%m.%Y").to_string()
}
