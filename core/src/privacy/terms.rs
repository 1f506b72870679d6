//! The strings by which a purged person could still be found in the text the inventory keeps
//! beside the person rows (review items, run warnings, MDM records), in the two forms the
//! purge hands to PostgreSQL, so scrubbing stays one statement per table:
//!
//! - **keys** pick the rows that name a purged person: their login, email and directory ids,
//!   lower-cased, compared with the words of each row (`TOKENS`) through a hash join, so one
//!   read of a table serves any number of persons (an alternation of many persons' strings
//!   made PostgreSQL's regex engine take 30 s for 50,000 payloads; see docs/privacy.md);
//! - the **scrub** expression of each person is then replaced in the rows their keys picked; it
//!   adds the full name and the bare given and family names.
//!
//! A name never picks a row: it is no key (two Lea Schulz are two persons), and "Lea" alone
//! names half a class.

use std::collections::HashSet;

use uuid::Uuid;

/// What replaces a purged person's strings.
pub const REMOVED: &str = "[removed]";

/// The words of the text `{text}` as SQL (a set of `key`), in the form keys are compared in:
/// lower-cased, split at everything but letters, digits and `_.@-`, without a trailing `.`
/// or `-` (the end of a sentence), and for an address also its local part, so a UPN such as
/// `lea.schulz@tenant.example` finds the login `lea.schulz`.
pub const TOKENS: &str = "(select distinct v.key \
     from regexp_split_to_table(lower({text}), '[^[:alnum:]_.@-]+') as w(word), \
     lateral (values (rtrim(w.word, '.-')), (split_part(rtrim(w.word, '.-'), '@', 1))) as v(key) \
     where v.key <> '')";

/// The strings of one person the purge removes, as the person rows hold them.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct Identity {
    pub person_id: Uuid,
    pub username: Option<String>,
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub directory_uuid: Option<String>,
    pub entra_object_id: Option<String>,
    /// The directories' ids of the person's links: DNs (`uid=lea.schulz,ou=...`), entryUUIDs,
    /// Kelvin's `source_uid/record_uid`.
    pub link_ids: Vec<String>,
}

/// Logins and emails of the persons who stay: a string one of them also carries names them
/// too, so it is neither a key nor scrubbed (a login the school gave again to a new pupil).
#[derive(Debug, Default)]
pub struct Kept {
    strings: HashSet<String>,
}

impl Kept {
    pub fn new(strings: impl IntoIterator<Item = String>) -> Self {
        Self {
            strings: strings.into_iter().map(|s| fold(&s)).collect(),
        }
    }

    fn holds(&self, value: &str) -> bool {
        self.strings.contains(&fold(value))
    }
}

/// One person's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    /// Lower-cased single words that name only this person (compared with `TOKENS`).
    pub keys: Vec<String>,
    /// The expression (PostgreSQL ARE, used case-insensitively) of everything removed from a
    /// row that names them; none when they have no usable string.
    pub scrub: Option<String>,
}

/// The terms of one person.
pub fn terms(person: &Identity, kept: &Kept) -> Terms {
    let mut keys = Vec::new();
    let mut scrub = Vec::new();
    let identifiers = [
        &person.username,
        &person.email,
        &person.directory_uuid,
        &person.entra_object_id,
    ]
    .into_iter()
    .flatten()
    .chain(&person.link_ids);
    for identifier in identifiers.filter_map(|id| clean(Some(id))) {
        if kept.holds(&identifier) {
            continue;
        }
        // A DN or a Kelvin id is several words; the login in a DN is a key of its own.
        if is_one_word(&identifier) {
            keys.push(identifier.to_lowercase());
        }
        scrub.push(literal(&identifier));
    }
    let given = clean(person.given_name.as_deref());
    let family = clean(person.family_name.as_deref());
    if let (Some(given), Some(family)) = (&given, &family) {
        // "Lea Schulz" and "Schulz, Lea", however the spaces run.
        scrub.push(format!("{}\\s+{}", literal(given), literal(family)));
        scrub.push(format!("{},\\s*{}", literal(family), literal(given)));
    }
    scrub.extend(
        [given, family]
            .into_iter()
            .flatten()
            .map(|name| literal(&name)),
    );
    keys.sort();
    keys.dedup();
    Terms {
        keys,
        scrub: (!scrub.is_empty()).then(|| alternation(scrub)),
    }
}

/// Whether `TOKENS` can yield `text` as one key.
fn is_one_word(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '@' | '-'))
        && !text.ends_with(['.', '-'])
}

/// Alternatives as one expression that matches them only as whole words: not inside a longer
/// login (`lea.schulz2`, `mia.lea`), a domain (`@schule.de`) or an escape of JSON text (`\n`).
/// A login followed by `@` is matched, so a UPN's local part goes too.
fn alternation(mut terms: Vec<String>) -> String {
    terms.sort();
    terms.dedup();
    // Longer alternatives first, so an email goes whole rather than after its local part.
    terms.sort_by_key(|term| std::cmp::Reverse(term.len()));
    format!(
        "(?<![[:alnum:]_.@\\\\-])(?:{})(?![[:alnum:]_-]|\\.[[:alnum:]])",
        terms.join("|")
    )
}

/// `text` as a literal inside an ARE, with runs of white space matching any run of it.
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut in_space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            if !in_space {
                out.push_str("\\s+");
            }
            in_space = true;
            continue;
        }
        in_space = false;
        if !c.is_alphanumeric() && c != '_' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A usable term: trimmed and at least two characters long (a one-letter term would match in
/// every row), and not something JSON text carries outside quotes: replacing a number or
/// `null` there would leave text that is no longer JSON (and a number alone names nobody).
fn clean(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|value| value.chars().count() >= 2)
        .filter(|value| {
            let bare_literal = ["null", "true", "false"]
                .iter()
                .any(|literal| value.eq_ignore_ascii_case(literal));
            let number = value.chars().any(|c| c.is_ascii_digit())
                && value
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'));
            !bare_literal && !number
        })
        .map(str::to_string)
}

fn fold(value: &str) -> String {
    value
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lea() -> Identity {
        Identity {
            username: Some("lea.schulz".into()),
            email: Some("Lea.Schulz@gs.example".into()),
            given_name: Some("Lea".into()),
            family_name: Some("Schulz".into()),
            directory_uuid: Some("5B1E6F0C-7D2A".into()),
            link_ids: vec!["uid=lea.schulz,ou=gs,dc=test".into()],
            ..Identity::default()
        }
    }

    #[test]
    fn literals_escape_what_a_regex_would_read() {
        assert_eq!(literal("a.b+c(d)"), "a\\.b\\+c\\(d\\)");
        assert_eq!(literal("uid=x,ou=y"), "uid\\=x\\,ou\\=y");
        assert_eq!(literal("Anna  Lena"), "Anna\\s+Lena");
        assert_eq!(literal("Jürgen_1"), "Jürgen_1");
    }

    /// The alternatives of an expression `alternation` made.
    fn alternatives(pattern: &str) -> Vec<&str> {
        let inner = pattern.split_once("(?:").unwrap().1;
        let inner = inner.rsplit_once(")(?!").unwrap().0;
        inner.split('|').collect()
    }

    #[test]
    fn logins_emails_and_ids_are_keys_and_names_are_only_scrubbed() {
        let Terms { keys, scrub } = terms(&lea(), &Kept::default());
        assert_eq!(
            keys,
            vec!["5b1e6f0c-7d2a", "lea.schulz", "lea.schulz@gs.example"],
            "the DN is no word of its own"
        );
        let scrub = scrub.unwrap();
        let scrub = alternatives(&scrub);
        for term in [
            "uid\\=lea\\.schulz\\,ou\\=gs\\,dc\\=test",
            "Lea\\s+Schulz",
            "Schulz,\\s*Lea",
            "Lea",
            "Schulz",
        ] {
            assert!(scrub.contains(&term), "{term} in {scrub:?}");
        }
        // Longer alternatives first: the email before the login it starts with.
        let position = |term| scrub.iter().position(|t| *t == term).unwrap();
        assert!(position("Lea\\.Schulz\\@gs\\.example") < position("lea\\.schulz"));
    }

    #[test]
    fn strings_a_remaining_person_carries_are_left_alone() {
        let kept = Kept::new(["LEA.SCHULZ".to_string()]);
        let Terms { keys, scrub } = terms(&lea(), &kept);
        assert_eq!(keys, vec!["5b1e6f0c-7d2a", "lea.schulz@gs.example"]);
        assert!(!alternatives(&scrub.unwrap()).contains(&"lea\\.schulz"));
    }

    #[test]
    fn a_person_with_only_a_name_has_no_key() {
        let nameonly = Identity {
            given_name: Some("Lea".into()),
            username: Some("x".into()),
            ..Identity::default()
        };
        let Terms { keys, scrub } = terms(&nameonly, &Kept::default());
        assert!(keys.is_empty());
        assert_eq!(alternatives(&scrub.unwrap()), vec!["Lea"]);
    }

    #[test]
    fn what_json_carries_unquoted_is_no_term() {
        for value in ["12345", "NULL", "true", "-1.5e3", "x"] {
            assert_eq!(clean(Some(value)), None, "{value}");
        }
        assert_eq!(clean(Some(" Eve ")), Some("Eve".into()));
        assert_eq!(clean(Some("Ee")), Some("Ee".into()));
    }
}
