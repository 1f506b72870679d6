//! Kelvin JSON to `PersonRecord`s and `DirectorySchool`s, as pure functions.
//!
//! Only the fields bestand uses are deserialized; everything else a Kelvin user carries
//! (`birthday`, `legal_guardians`, `legal_wards`, `udm_properties`, ...) is skipped by the
//! parser and never held in memory, let alone stored.

use std::collections::{BTreeMap, HashMap};

use bestand_model::model::PersonRole;
use bestand_model::person::{DirectorySchool, Membership, PersonIds, PersonRecord};
use serde::de::IgnoredAny;
use serde::Deserialize;

/// One item of `GET /v1/schools/`.
#[derive(Debug, Deserialize)]
pub(crate) struct RawSchool {
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// One item of `GET /v1/users/`, reduced to what a `PersonRecord` needs.
#[derive(Debug, Deserialize)]
pub(crate) struct RawUser {
    name: String,
    #[serde(default)]
    firstname: Option<String>,
    #[serde(default)]
    lastname: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    record_uid: Option<String>,
    #[serde(default)]
    source_uid: Option<String>,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default)]
    ucsschool_roles: Option<Vec<String>>,
    /// `{ "GSL": ["3a"] }`: class names per school OU.
    #[serde(default)]
    school_classes: Option<BTreeMap<String, Option<Vec<String>>>>,
}

/// One item of `GET /v1/classes/?school=`: only the name and how many members it has.
#[derive(Debug, Deserialize)]
pub(crate) struct RawClass {
    pub name: String,
    #[serde(default)]
    users: Option<Vec<IgnoredAny>>,
}

impl RawClass {
    pub(crate) fn member_count(&self) -> usize {
        self.users.as_ref().map_or(0, Vec::len)
    }
}

pub(crate) fn decode_schools(body: &[u8]) -> Result<Vec<RawSchool>, String> {
    serde_json::from_slice(body).map_err(|error| format!("invalid JSON ({error})"))
}

pub(crate) fn decode_classes(body: &[u8]) -> Result<Vec<RawClass>, String> {
    serde_json::from_slice(body).map_err(|error| format!("invalid JSON ({error})"))
}

pub(crate) fn decode_users(body: &[u8]) -> Result<Vec<RawUser>, String> {
    serde_json::from_slice(body).map_err(|error| format!("invalid JSON ({error})"))
}

pub(crate) fn directory_school(raw: &RawSchool) -> DirectorySchool {
    DirectorySchool {
        key: raw.name.trim().to_string(),
        display_name: non_empty(raw.display_name.as_deref()),
        school_number: None,
    }
}

/// What the read knows while mapping users: the schools read (to spell their keys as
/// `/schools/` does, and to leave out memberships at schools not read) and the roles read.
#[derive(Debug, Default)]
pub(crate) struct Scope {
    /// Lower-cased OU name → the name as Kelvin lists it.
    schools: HashMap<String, String>,
    roles: Vec<PersonRole>,
}

impl Scope {
    pub(crate) fn new(schools: &[DirectorySchool], roles: &[PersonRole]) -> Scope {
        Scope {
            schools: schools
                .iter()
                .map(|school| (school.key.to_lowercase(), school.key.clone()))
                .collect(),
            roles: roles.to_vec(),
        }
    }

    fn school_key(&self, name: &str) -> Option<&str> {
        self.schools
            .get(&name.trim().to_lowercase())
            .map(String::as_str)
    }
}

/// A mapped user: a person, or an account left out because it is deactivated.
#[derive(Debug)]
pub(crate) enum Mapped {
    Person(Box<PersonRecord>),
    Disabled(String),
}

/// A role name of `ucsschool_roles` as a person role; `pupil` is the old name of `student`.
fn person_role(name: &str) -> Option<PersonRole> {
    match name.trim().to_ascii_lowercase().as_str() {
        "student" | "pupil" => Some(PersonRole::Student),
        "teacher" => Some(PersonRole::Teacher),
        "staff" => Some(PersonRole::Staff),
        "school_admin" => Some(PersonRole::SchoolAdmin),
        _ => None,
    }
}

/// Maps one user that `GET /v1/users/?school={school}&roles={role}` returned.
///
/// Memberships come from `ucsschool_roles` (`teacher:school:GSL`), for the schools and roles
/// read; a pupil's membership carries each of its classes at that school. A user whose roles
/// name no role at the school it was listed under gets the membership of the query, with a
/// problem saying so, so that the person is not silently without that school.
pub(crate) fn map_user(
    raw: RawUser,
    school: &str,
    role: PersonRole,
    scope: &Scope,
    include_disabled: bool,
) -> Mapped {
    let username = raw.name.trim().to_string();
    if raw.disabled == Some(true) && !include_disabled {
        return Mapped::Disabled(username);
    }
    let mut problems = Vec::new();
    let classes = classes_by_school(raw.school_classes.unwrap_or_default(), scope);
    let mut memberships = Vec::new();
    let mut listed_school_has_role = false;
    for entry in raw.ucsschool_roles.unwrap_or_default() {
        let mut parts = entry.splitn(3, ':');
        let (Some(name), Some(context_type), Some(context)) =
            (parts.next(), parts.next(), parts.next())
        else {
            problems.push(format!("unreadable `ucsschool_roles` entry `{entry}`"));
            continue;
        };
        // Other context types (`school_class::school:X` on groups, say) are no membership.
        if !context_type.trim().eq_ignore_ascii_case("school") {
            continue;
        }
        if context.trim().eq_ignore_ascii_case(school) {
            listed_school_has_role = true;
        }
        let Some(found) = person_role(name) else {
            problems.push(format!(
                "role `{}` at school `{}` is not a role bestand knows; ignored",
                name.trim(),
                context.trim()
            ));
            continue;
        };
        // Schools and roles outside the configured read are not this source's business.
        let Some(key) = scope.school_key(context) else {
            continue;
        };
        if scope.roles.contains(&found) {
            push_memberships(&mut memberships, key, found, &classes);
        }
    }
    if !listed_school_has_role {
        problems.push(format!(
            "listed under school `{school}` as {role}, but `ucsschool_roles` names no role \
             there; the membership is taken from the listing"
        ));
        let key = scope.school_key(school).unwrap_or(school).to_string();
        push_memberships(&mut memberships, &key, role, &classes);
    }
    memberships.sort();
    memberships.dedup();

    let record_uid = non_empty(raw.record_uid.as_deref());
    let source_uid = non_empty(raw.source_uid.as_deref());
    let external_id = match (&source_uid, &record_uid) {
        (Some(source_uid), Some(record_uid)) => format!("{source_uid}/{record_uid}"),
        _ => {
            problems.push(
                "no `source_uid` and `record_uid`; keyed by the username, so a renamed account \
                 will look like a new person"
                    .to_string(),
            );
            format!("name:{username}")
        }
    };
    Mapped::Person(Box::new(PersonRecord {
        external_id,
        username: Some(username).filter(|name| !name.is_empty()),
        email: non_empty(raw.email.as_deref()),
        given_name: non_empty(raw.firstname.as_deref()),
        family_name: non_empty(raw.lastname.as_deref()),
        ids: PersonIds {
            record_uid,
            source_uid,
            directory_uuid: None,
            entra_object_id: None,
        },
        memberships,
        problems,
        left: false,
    }))
}

/// Folds a second sighting of the same person (another school or role query) into the first.
pub(crate) fn merge(into: &mut PersonRecord, other: PersonRecord) {
    into.memberships.extend(other.memberships);
    into.memberships.sort();
    into.memberships.dedup();
    for problem in other.problems {
        if !into.problems.contains(&problem) {
            into.problems.push(problem);
        }
    }
}

/// `school_classes` keyed by the school's listed spelling, class names without the
/// `<school>-` prefix LDAP gives them (Kelvin strips it, older versions may not).
fn classes_by_school(
    raw: BTreeMap<String, Option<Vec<String>>>,
    scope: &Scope,
) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (school, classes) in raw {
        let key = scope
            .school_key(&school)
            .map_or_else(|| school.trim().to_string(), str::to_string);
        let prefix = format!("{}-", school.trim().to_lowercase());
        let names = out.entry(key.to_lowercase()).or_default();
        for class in classes.unwrap_or_default() {
            let class = class.trim();
            let class = match class.get(..prefix.len()) {
                Some(head) if head.to_lowercase() == prefix => &class[prefix.len()..],
                _ => class,
            };
            if !class.is_empty() && !names.iter().any(|known| known == class) {
                names.push(class.to_string());
            }
        }
    }
    out
}

/// Adds the membership of `role` at `school`: a pupil's once per class there (or once
/// without a class). Teachers' classes are the ones they teach, which the inventory does not
/// need, so only pupils carry a class.
fn push_memberships(
    memberships: &mut Vec<Membership>,
    school: &str,
    role: PersonRole,
    classes: &HashMap<String, Vec<String>>,
) {
    let names = match role {
        PersonRole::Student => classes
            .get(&school.to_lowercase())
            .map(Vec::as_slice)
            .unwrap_or_default(),
        _ => &[],
    };
    if names.is_empty() {
        memberships.push(Membership {
            school: school.to_string(),
            role,
            class: None,
        });
    }
    for class in names {
        memberships.push(Membership {
            school: school.to_string(),
            role,
            class: Some(class.clone()),
        });
    }
}

fn non_empty(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        let schools = ["GSL", "GYM"].map(|key| DirectorySchool {
            key: key.to_string(),
            display_name: None,
            school_number: None,
        });
        Scope::new(&schools, PersonRole::ALL)
    }

    fn user(json: serde_json::Value) -> RawUser {
        serde_json::from_value(json).unwrap()
    }

    fn person(mapped: Mapped) -> PersonRecord {
        match mapped {
            Mapped::Person(record) => *record,
            Mapped::Disabled(name) => panic!("{name} was left out as disabled"),
        }
    }

    fn membership(school: &str, role: PersonRole, class: Option<&str>) -> Membership {
        Membership {
            school: school.to_string(),
            role,
            class: class.map(str::to_string),
        }
    }

    #[test]
    fn the_documented_example_user_maps_field_by_field() {
        let raw = user(serde_json::json!({
            "dn": "uid=lea.schulz,cn=schueler,cn=users,ou=GSL,dc=schultraeger,dc=example",
            "ucsschool_roles": ["student:school:GSL"],
            "name": "lea.schulz",
            "firstname": "Lea",
            "lastname": "Schulz",
            "birthday": "2015-04-02",
            "disabled": false,
            "email": null,
            "record_uid": "SV-123456",
            "source_uid": "schulverwaltung",
            "school_classes": { "GSL": ["3a"] },
            "workgroups": {},
            "legal_guardians": [],
            "udm_properties": {}
        }));
        let record = person(map_user(raw, "GSL", PersonRole::Student, &scope(), false));
        assert_eq!(record.external_id, "schulverwaltung/SV-123456");
        assert_eq!(record.username.as_deref(), Some("lea.schulz"));
        assert_eq!(record.email, None);
        assert_eq!(record.given_name.as_deref(), Some("Lea"));
        assert_eq!(record.family_name.as_deref(), Some("Schulz"));
        assert_eq!(record.ids.record_uid.as_deref(), Some("SV-123456"));
        assert_eq!(
            record.memberships,
            [membership("GSL", PersonRole::Student, Some("3a"))]
        );
        assert!(record.problems.is_empty(), "{:?}", record.problems);
        let json = serde_json::to_string(&record).unwrap();
        assert!(!json.contains("2015-04-02"), "{json}");
    }

    #[test]
    fn roles_schools_and_classes() {
        let raw = user(serde_json::json!({
            "name": "k.weber", "record_uid": "L-1", "source_uid": "sv",
            "ucsschool_roles": [
                "teacher:school:gsl", "teacher:school:GYM", "pupil:school:GYM",
                "teacher:school:OTHER", "exam_user:school:GYM", "school_class::school:GSL", "x"
            ],
            "school_classes": { "GYM": ["GYM-5a", "Q1"], "gsl": ["1b"] }
        }));
        let record = person(map_user(raw, "GSL", PersonRole::Teacher, &scope(), false));
        assert_eq!(
            record.memberships,
            [
                membership("GSL", PersonRole::Teacher, None),
                membership("GYM", PersonRole::Student, Some("5a")),
                membership("GYM", PersonRole::Student, Some("Q1")),
                membership("GYM", PersonRole::Teacher, None),
            ]
        );
        assert_eq!(record.problems.len(), 2, "{:?}", record.problems);
        assert!(record.problems[0].contains("exam_user"));
        assert!(record.problems[1].contains("unreadable"));
    }

    #[test]
    fn a_user_without_roles_at_its_school_keeps_the_listing() {
        let raw = user(serde_json::json!({ "name": "alt.konto", "ucsschool_roles": [] }));
        let record = person(map_user(raw, "GSL", PersonRole::Staff, &scope(), false));
        assert_eq!(record.external_id, "name:alt.konto");
        assert_eq!(
            record.memberships,
            [membership("GSL", PersonRole::Staff, None)]
        );
        assert_eq!(record.problems.len(), 2, "{:?}", record.problems);
    }

    #[test]
    fn configured_roles_limit_memberships() {
        let schools = [DirectorySchool {
            key: "GSL".to_string(),
            display_name: None,
            school_number: None,
        }];
        let scope = Scope::new(&schools, &[PersonRole::Teacher]);
        let raw = user(serde_json::json!({
            "name": "t", "record_uid": "1", "source_uid": "s",
            "ucsschool_roles": ["teacher:school:GSL", "staff:school:GSL"]
        }));
        let record = person(map_user(raw, "GSL", PersonRole::Teacher, &scope, false));
        assert_eq!(
            record.memberships,
            [membership("GSL", PersonRole::Teacher, None)]
        );
    }

    #[test]
    fn disabled_accounts_are_left_out_unless_asked_for() {
        let json = serde_json::json!({ "name": "weg", "disabled": true,
            "ucsschool_roles": ["student:school:GSL"] });
        assert!(matches!(
            map_user(user(json.clone()), "GSL", PersonRole::Student, &scope(), false),
            Mapped::Disabled(name) if name == "weg"
        ));
        person(map_user(
            user(json),
            "GSL",
            PersonRole::Student,
            &scope(),
            true,
        ));
    }

    #[test]
    fn merging_unites_memberships_and_problems() {
        let mut first = PersonRecord {
            memberships: vec![membership("GSL", PersonRole::Teacher, None)],
            problems: vec!["p".to_string()],
            ..PersonRecord::default()
        };
        let second = PersonRecord {
            memberships: vec![
                membership("GYM", PersonRole::Teacher, None),
                membership("GSL", PersonRole::Teacher, None),
            ],
            problems: vec!["p".to_string(), "q".to_string()],
            ..PersonRecord::default()
        };
        merge(&mut first, second);
        assert_eq!(first.memberships.len(), 2);
        assert_eq!(first.problems, ["p", "q"]);
    }

    #[test]
    fn nulls_are_absent_values() {
        let raw = user(serde_json::json!({
            "name": "n", "firstname": null, "email": " ", "ucsschool_roles": null,
            "school_classes": null, "record_uid": null, "source_uid": "s"
        }));
        let record = person(map_user(raw, "GSL", PersonRole::Student, &scope(), false));
        assert_eq!(record.email, None);
        assert_eq!(record.ids.source_uid.as_deref(), Some("s"));
        assert_eq!(record.external_id, "name:n");
    }
}
