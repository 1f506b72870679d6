//! One resolution of a source's school keys to the authority's schools, shared by the person
//! run and the device run of a source, so a UCS@school OU puts its pupils and its computers at
//! the same school (docs/sync.md, "Schools").

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use crate::person::DirectorySchool;
use crate::sync::references::School;

/// Resolves the school keys a source uses (a UCS OU name, a school name on an MDM record) to
/// school ids, in this order: the source's `school_map`; the school number, key or display
/// name the source's own school list gives for that key; the key itself as a configured school
/// number, name or alias. All comparisons ignore case and surrounding blanks.
#[derive(Debug, Default)]
pub(crate) struct SchoolResolver {
    /// Lower-cased school number, name and alias → school id.
    configured: HashMap<String, Uuid>,
    /// Lower-cased school key of the source → school id, from `school_map` and the source's
    /// own school list.
    keys: HashMap<String, Uuid>,
    /// Keys already reported as unknown in this run, so each is reported once.
    unknown: HashSet<String>,
}

fn lower(text: &str) -> String {
    text.trim().to_lowercase()
}

impl SchoolResolver {
    /// The authority's schools plus the source's `school_map` (school key → school number).
    /// A mapped number the authority does not have maps nothing; the configuration check
    /// rejects it before any run.
    pub(crate) fn new(
        rows: impl IntoIterator<Item = School>,
        school_map: &HashMap<String, String>,
    ) -> SchoolResolver {
        let mut configured = HashMap::new();
        for (school_id, number, name, aliases) in rows {
            configured.insert(lower(&number), school_id);
            configured.insert(lower(&name), school_id);
            for alias in aliases {
                configured.insert(lower(&alias), school_id);
            }
        }
        let keys = school_map
            .iter()
            .filter_map(|(key, number)| {
                configured
                    .get(&lower(number))
                    .map(|school_id| (lower(key), *school_id))
            })
            .collect();
        SchoolResolver {
            configured,
            keys,
            unknown: HashSet::new(),
        }
    }

    /// `new` over the schools of `authority` as stored.
    pub(crate) async fn load(
        conn: &mut sqlx::PgConnection,
        authority: Uuid,
        school_map: &HashMap<String, String>,
    ) -> Result<SchoolResolver, sqlx::Error> {
        let schools: Vec<School> = sqlx::query_as(
            "select school_id, school_number, name, aliases from school where authority_id = $1",
        )
        .bind(authority)
        .fetch_all(conn)
        .await?;
        Ok(SchoolResolver::new(schools, school_map))
    }

    /// Learns the schools the source lists: a key not in `school_map` resolves through the
    /// school number the source gives for it, then the key, then its display name.
    pub(crate) fn learn(&mut self, schools: &[DirectorySchool]) {
        for school in schools {
            let key = lower(&school.key);
            if self.keys.contains_key(&key) {
                continue;
            }
            let found = [
                school.school_number.as_deref(),
                Some(school.key.as_str()),
                school.display_name.as_deref(),
            ]
            .into_iter()
            .flatten()
            .find_map(|name| self.configured.get(&lower(name)).copied());
            if let Some(school_id) = found {
                self.keys.insert(key, school_id);
            }
        }
    }

    /// The school `key` stands for; `None` for a key that matches nothing.
    pub(crate) fn resolve(&self, key: &str) -> Option<Uuid> {
        let key = lower(key);
        self.keys
            .get(&key)
            .or_else(|| self.configured.get(&key))
            .copied()
    }

    /// Whether `key` is reported as unknown for the first time in this run (then the caller
    /// warns, with [`how_to_map`]).
    pub(crate) fn first_unknown(&mut self, key: &str) -> bool {
        self.unknown.insert(lower(key))
    }
}

/// How to make an unknown school key `key` of `source` resolve, as a TOML line that parses.
pub(crate) fn how_to_map(source: &str, key: &str) -> String {
    // A TOML basic string: a key with quotes or backslashes must still parse.
    let quoted = key.trim().replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "map it in the [[source]] table of '{source}' with \
         `school_map = {{ \"{quoted}\" = \"<school number>\" }}` (or add the key to its \
         existing `school_map`), or add it to the school's `aliases`"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn school(key: &str, number: Option<&str>, display: Option<&str>) -> DirectorySchool {
        DirectorySchool {
            key: key.to_string(),
            display_name: display.map(str::to_string),
            school_number: number.map(str::to_string),
        }
    }

    #[test]
    fn school_map_wins_then_the_sources_number_key_and_name_then_configured_names() {
        let (gsl, gym, rs) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let rows = vec![
            (gsl, "123456".into(), "GS am Lindenweg".into(), vec![]),
            (
                gym,
                "100002".into(),
                "Gymnasium".into(),
                vec!["GYM-Park".into()],
            ),
            (rs, "100003".into(), "Realschule Nord".into(), vec![]),
        ];
        let map = HashMap::from([
            ("GYM".to_string(), "100002".to_string()),
            // The map wins over the number the directory gives.
            ("XX".to_string(), "100003".to_string()),
        ]);
        let mut schools = SchoolResolver::new(rows, &map);
        assert_eq!(schools.resolve(" gym "), Some(gym));
        assert_eq!(schools.resolve("GSL"), None, "not learned yet");
        schools.learn(&[
            school("GSL", Some("123456"), None),
            school("GYM", Some("123456"), None),
            school("XX", Some("123456"), None),
            school("RS", None, Some("realschule nord")),
            school("ELSE", Some("999"), Some("Elsewhere")),
        ]);
        assert_eq!(schools.resolve("gsl"), Some(gsl));
        assert_eq!(schools.resolve("GYM"), Some(gym));
        assert_eq!(schools.resolve("XX"), Some(rs));
        assert_eq!(schools.resolve("RS"), Some(rs));
        assert_eq!(schools.resolve("ELSE"), None);
        assert_eq!(schools.resolve("gym-park"), Some(gym), "an alias");
        assert!(schools.first_unknown("ELSE"));
        assert!(!schools.first_unknown(" else"));
    }

    #[test]
    fn the_advice_names_school_map_with_a_quoted_key() {
        let advice = how_to_map("ucs", "G\"S");
        assert!(
            advice.contains(r#"`school_map = { "G\"S" = "<school number>" }`"#),
            "{advice}"
        );
        assert!(advice.contains("'ucs'"), "{advice}");
    }
}
