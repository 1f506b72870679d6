//! The wording of a loan agreement, kept apart from its data so that each authority can print
//! its own text: a TOML file that overrides the built-in German default key by key, checked
//! completely when it is loaded so that a typo shows up before hundreds of agreements are
//! printed.

use std::path::Path;

use serde::Deserialize;

use super::{text, AgreementData, AgreementError, TemplateProblem};

/// The built-in template, the file authorities copy to start their own.
pub const DEFAULT_TEMPLATE_TOML: &str = include_str!("default_template.toml");

/// The placeholders template texts may use, with what each one is replaced by.
pub const PLACEHOLDERS: &[(&str, &str)] = &[
    ("authority", "name of the school authority (Schulträger)"),
    ("school", "name of the lending school"),
    (
        "school_number",
        "official number of the school (Schulnummer)",
    ),
    ("borrower", "name of the borrower"),
    (
        "role",
        "role of the borrower: Schülerin/Schüler, Lehrkraft or Mitarbeiterin/Mitarbeiter",
    ),
    ("class", "class of the borrower, empty if none"),
    ("username", "user name of the borrower, empty if none"),
    (
        "device",
        "device category, manufacturer and model, e.g. Tablet Apple iPad",
    ),
    (
        "serial_number",
        "serial number of the device, empty if unknown",
    ),
    (
        "asset_tag",
        "asset tag (Inventarnummer) of the device, empty if none",
    ),
    ("handed_out_on", "date of hand-out, e.g. 01.09.2025"),
    (
        "due_on",
        "return date, e.g. 31.07.2026, or \"auf Widerruf\" without one",
    ),
    (
        "loan_period",
        "\"vom 01.09.2025 bis zum 31.07.2026\" or \"ab dem 01.09.2025 bis auf Widerruf\"",
    ),
    (
        "handed_out_by",
        "name of the person who handed the device out",
    ),
    ("loan_id", "number of the loan in bestand"),
];

/// The text of a loan agreement. Every text may contain placeholders from [`PLACEHOLDERS`].
#[derive(Debug, Clone, PartialEq)]
pub struct AgreementTemplate {
    title: String,
    letterhead: Vec<String>,
    intro: String,
    clauses: Vec<Clause>,
    signatures: SignatureLabels,
    footer: String,
}

/// One numbered clause (§ n) of the agreement.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clause {
    pub heading: String,
    pub text: String,
}

/// The texts around the signature lines.
#[derive(Debug, Clone, PartialEq)]
pub struct SignatureLabels {
    /// The confirmation printed above the signature lines.
    pub statement: String,
    /// The label under each place-and-date line.
    pub place_date: String,
    pub school: String,
    pub borrower: String,
    /// Printed only when the borrower is a minor.
    pub guardians: String,
}

impl AgreementTemplate {
    /// The built-in German agreement (`default_template.toml` beside this module).
    pub fn default_german() -> Result<Self, AgreementError> {
        Self::parse(DEFAULT_TEMPLATE_TOML, None).map_err(|problem| AgreementError::Template {
            origin: None,
            problem,
        })
    }

    /// A template from TOML text; keys left out keep the built-in default.
    pub fn from_toml_str(toml_text: &str) -> Result<Self, AgreementError> {
        let default = Self::default_german()?;
        Self::parse(toml_text, Some(&default)).map_err(|problem| AgreementError::Template {
            origin: None,
            problem,
        })
    }

    /// A template from an authority's TOML file; keys left out keep the built-in default.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, AgreementError> {
        let path = path.as_ref();
        let toml_text =
            std::fs::read_to_string(path).map_err(|source| AgreementError::Unreadable {
                path: path.to_owned(),
                source,
            })?;
        let default = Self::default_german()?;
        Self::parse(&toml_text, Some(&default)).map_err(|problem| AgreementError::Template {
            origin: Some(path.to_owned()),
            problem,
        })
    }

    pub fn title(&self) -> &str {
        &self.title
    }

    pub fn letterhead(&self) -> &[String] {
        &self.letterhead
    }

    pub fn intro(&self) -> &str {
        &self.intro
    }

    pub fn clauses(&self) -> &[Clause] {
        &self.clauses
    }

    pub fn signatures(&self) -> &SignatureLabels {
        &self.signatures
    }

    pub fn footer(&self) -> &str {
        &self.footer
    }

    /// Parses `toml_text`, fills what it leaves out from `base` (the default template, or
    /// nothing when the default itself is parsed) and checks every text.
    fn parse(toml_text: &str, base: Option<&Self>) -> Result<Self, TemplateProblem> {
        let file: TemplateFile = toml::from_str(toml_text).map_err(|error| {
            // The full Display of a toml error spans several lines with a source excerpt;
            // bestand's messages are one line, so keep the message and the line number.
            let line = error
                .span()
                .and_then(|span| toml_text.get(..span.start))
                .map(|before| before.matches('\n').count() + 1);
            TemplateProblem::Toml {
                message: error.message().trim().to_owned(),
                line,
            }
        })?;
        let template = file.merge(base)?;
        template.check()?;
        Ok(template)
    }

    /// Every text with the place it has in the file, for error messages.
    fn texts(&self) -> Vec<(String, &str)> {
        let mut texts = vec![("title".to_owned(), self.title.as_str())];
        for (index, line) in self.letterhead.iter().enumerate() {
            texts.push((format!("letterhead line {}", index + 1), line));
        }
        texts.push(("intro".to_owned(), &self.intro));
        for (index, clause) in self.clauses.iter().enumerate() {
            texts.push((format!("heading of clause {}", index + 1), &clause.heading));
            texts.push((
                format!("text of clause {} ({})", index + 1, clause.heading),
                &clause.text,
            ));
        }
        let signatures = &self.signatures;
        texts.push(("signatures.statement".to_owned(), &signatures.statement));
        texts.push(("signatures.place_date".to_owned(), &signatures.place_date));
        texts.push(("signatures.school".to_owned(), &signatures.school));
        texts.push(("signatures.borrower".to_owned(), &signatures.borrower));
        texts.push(("signatures.guardians".to_owned(), &signatures.guardians));
        texts.push(("footer".to_owned(), &self.footer));
        texts
    }

    fn check(&self) -> Result<(), TemplateProblem> {
        for (location, text) in self.texts() {
            expand(text, &location, |name| {
                known_placeholder(name).then(String::new)
            })?;
            if let Some(character) = text::first_unprintable(text) {
                return Err(TemplateProblem::Unprintable {
                    character,
                    location,
                });
            }
        }
        Ok(())
    }
}

/// The template file as serde sees it: everything optional so that an authority can change
/// one key and keep the rest of the default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    title: Option<String>,
    letterhead: Option<Vec<String>>,
    intro: Option<String>,
    clauses: Option<Vec<Clause>>,
    signatures: Option<SignaturesFile>,
    footer: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignaturesFile {
    statement: Option<String>,
    place_date: Option<String>,
    school: Option<String>,
    borrower: Option<String>,
    guardians: Option<String>,
}

impl TemplateFile {
    fn merge(self, base: Option<&AgreementTemplate>) -> Result<AgreementTemplate, TemplateProblem> {
        // Without a base every key must be present: that is the built-in default itself.
        fn pick<T: Clone>(
            value: Option<T>,
            base: Option<&AgreementTemplate>,
            from_base: impl Fn(&AgreementTemplate) -> &T,
            key: &'static str,
        ) -> Result<T, TemplateProblem> {
            match (value, base) {
                (Some(value), _) => Ok(value),
                (None, Some(base)) => Ok(from_base(base).clone()),
                (None, None) => Err(TemplateProblem::Missing { key }),
            }
        }
        let signatures = self.signatures.unwrap_or(SignaturesFile {
            statement: None,
            place_date: None,
            school: None,
            borrower: None,
            guardians: None,
        });
        Ok(AgreementTemplate {
            title: pick(self.title, base, |b| &b.title, "title")?,
            letterhead: pick(self.letterhead, base, |b| &b.letterhead, "letterhead")?,
            intro: pick(self.intro, base, |b| &b.intro, "intro")?,
            clauses: pick(self.clauses, base, |b| &b.clauses, "clauses")?,
            signatures: SignatureLabels {
                statement: pick(
                    signatures.statement,
                    base,
                    |b| &b.signatures.statement,
                    "signatures.statement",
                )?,
                place_date: pick(
                    signatures.place_date,
                    base,
                    |b| &b.signatures.place_date,
                    "signatures.place_date",
                )?,
                school: pick(
                    signatures.school,
                    base,
                    |b| &b.signatures.school,
                    "signatures.school",
                )?,
                borrower: pick(
                    signatures.borrower,
                    base,
                    |b| &b.signatures.borrower,
                    "signatures.borrower",
                )?,
                guardians: pick(
                    signatures.guardians,
                    base,
                    |b| &b.signatures.guardians,
                    "signatures.guardians",
                )?,
            },
            footer: pick(self.footer, base, |b| &b.footer, "footer")?,
        })
    }
}

fn known_placeholder(name: &str) -> bool {
    PLACEHOLDERS.iter().any(|(known, _)| *known == name)
}

/// Replaces the placeholders in `text`; `{{` and `}}` stand for literal braces.
pub(crate) fn expand(
    text: &str,
    location: &str,
    value_of: impl Fn(&str) -> Option<String>,
) -> Result<String, TemplateProblem> {
    let mut expanded = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(position) = rest.find(['{', '}']) {
        expanded.push_str(&rest[..position]);
        let tail = &rest[position..];
        if let Some(after) = tail.strip_prefix("{{") {
            expanded.push('{');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            expanded.push('}');
            rest = after;
        } else if let Some(after) = tail.strip_prefix('{') {
            let end = after
                .find(['{', '}'])
                .filter(|&end| after[end..].starts_with('}'))
                .ok_or_else(|| TemplateProblem::UnclosedBrace {
                    location: location.to_owned(),
                })?;
            let name = &after[..end];
            let value = value_of(name).ok_or_else(|| TemplateProblem::UnknownPlaceholder {
                placeholder: name.to_owned(),
                location: location.to_owned(),
            })?;
            expanded.push_str(&value);
            rest = &after[end + 1..];
        } else {
            return Err(TemplateProblem::StrayBrace {
                location: location.to_owned(),
            });
        }
    }
    expanded.push_str(rest);
    Ok(expanded)
}

/// The value of each placeholder for one agreement.
pub(crate) fn placeholder_value(name: &str, data: &AgreementData) -> Option<String> {
    let value = match name {
        "authority" => data.authority.name.clone(),
        "school" => data.school.name.clone(),
        "school_number" => data.school.school_number.clone(),
        "borrower" => data.borrower.display_name.clone(),
        "role" => data.borrower.role.label().to_owned(),
        "class" => data.borrower.class_name.clone().unwrap_or_default(),
        "username" => data.borrower.username.clone().unwrap_or_default(),
        "device" => data.device.description(),
        "serial_number" => data.device.serial_number.clone().unwrap_or_default(),
        "asset_tag" => data.device.asset_tag.clone().unwrap_or_default(),
        "handed_out_on" => super::german_date(data.handed_out_on),
        "due_on" => data
            .due_on
            .map_or_else(|| "auf Widerruf".to_owned(), super::german_date),
        "loan_period" => match data.due_on {
            Some(due_on) => format!(
                "vom {} bis zum {}",
                super::german_date(data.handed_out_on),
                super::german_date(due_on)
            ),
            None => format!(
                "ab dem {} bis auf Widerruf",
                super::german_date(data.handed_out_on)
            ),
        },
        "handed_out_by" => data.handed_out_by.clone(),
        "loan_id" => data.loan_id.to_string(),
        _ => return None,
    };
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        (name == "school").then(|| "Gesamtschule Nord".to_owned())
    }

    #[test]
    fn placeholders_and_escaped_braces_expand() {
        assert_eq!(
            expand("An die {school} {{Kopie}}", "intro", lookup).unwrap(),
            "An die Gesamtschule Nord {Kopie}"
        );
    }

    #[test]
    fn brace_mistakes_are_reported() {
        assert!(matches!(
            expand("{schule}", "intro", lookup),
            Err(TemplateProblem::UnknownPlaceholder { placeholder, .. }) if placeholder == "schule"
        ));
        assert!(matches!(
            expand("{school", "intro", lookup),
            Err(TemplateProblem::UnclosedBrace { .. })
        ));
        assert!(matches!(
            expand("{sch{school}", "intro", lookup),
            Err(TemplateProblem::UnclosedBrace { .. })
        ));
        assert!(matches!(
            expand("a } b", "intro", lookup),
            Err(TemplateProblem::StrayBrace { .. })
        ));
    }

    #[test]
    fn the_default_template_has_every_key_and_seven_clauses() {
        let template = AgreementTemplate::default_german().unwrap();
        assert_eq!(template.title(), "Leihvertrag über ein digitales Endgerät");
        assert_eq!(template.clauses().len(), 7);
    }
}
