//! UCS@school LDAP entries to schools, persons and devices: pure functions over
//! [`Entry`], so the rules of vendor-apis.md §5.2 and §5.3 are testable without a server.
//!
//! The attribute lists here are the only attributes the connector ever asks for. Personal data
//! a directory also holds (`univentionBirthday`, addresses, phone numbers) is never requested,
//! so it never leaves the server.

use std::collections::{BTreeSet, HashMap};

use bestand_model::model::{DeviceCategory, PersonRole};
use bestand_model::person::{DirectorySchool, Membership, PersonIds, PersonRecord};
use bestand_model::record::{DeviceRecord, LocationHint};

use crate::ldap::{normalize_dn, Entry};

/// What a school OU search reads (plus the configured school number attribute).
pub(crate) const SCHOOL_ATTRIBUTES: &[&str] = &["ou", "displayName", "entryUUID"];

/// What a user search reads; nothing else of a person is ever requested.
pub(crate) const USER_ATTRIBUTES: &[&str] = &[
    "entryUUID",
    "uid",
    "givenName",
    "sn",
    "mailPrimaryAddress",
    "objectClass",
    "ucsschoolSchool",
    "ucsschoolRole",
    "ucsschoolRecordUID",
    "ucsschoolSourceUID",
];

/// What a class group search reads.
pub(crate) const CLASS_ATTRIBUTES: &[&str] = &["cn", "uniqueMember", "memberUid"];

/// What a computer search reads; these, where present, also make up the device payload.
pub(crate) const COMPUTER_ATTRIBUTES: &[&str] = &[
    "entryUUID",
    "cn",
    "objectClass",
    "univentionObjectType",
    "macAddress",
    "aRecord",
    "univentionInventoryNumber",
    "univentionOperatingSystem",
    "univentionOperatingSystemVersion",
    "ucsschoolRole",
];

/// Any school user, minus exam accounts (vendor-apis.md §5.2, `models/user.py` filters).
pub(crate) const USER_TYPES_FILTER: &str = "(&(|(objectClass=ucsschoolStudent)\
(objectClass=ucsschoolTeacher)(objectClass=ucsschoolStaff)(objectClass=ucsschoolAdministrator))\
(!(objectClass=ucsschoolExam)))";

pub(crate) const SCHOOL_FILTER: &str = "(objectClass=ucsschoolOrganizationalUnit)";
pub(crate) const CLASS_FILTER: &str = "(objectClass=univentionGroup)";
pub(crate) const COMPUTER_FILTER: &str = "(objectClass=ucsschoolComputer)";

/// An entry lacks what the connector cannot do without; fails the page.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MappingError {
    #[error(
        "entry `{dn}` has no {attribute} (operational attributes must be readable by the bind \
         account)"
    )]
    Missing { dn: String, attribute: &'static str },
}

/// A school OU as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct School {
    /// The OU name, the key memberships use.
    pub key: String,
    pub dn: String,
    pub display_name: Option<String>,
    pub school_number: Option<String>,
}

impl School {
    pub(crate) fn to_directory_school(&self) -> DirectorySchool {
        DirectorySchool {
            key: self.key.clone(),
            display_name: self.display_name.clone(),
            school_number: self.school_number.clone(),
        }
    }

    /// `ou=GSL`, the start of page labels.
    pub(crate) fn label(&self) -> String {
        format!("ou={}", self.key)
    }
}

pub(crate) fn map_school(
    entry: &Entry,
    number_attribute: Option<&str>,
) -> Result<School, MappingError> {
    let key = entry
        .first("ou")
        .map(str::to_string)
        .ok_or_else(|| MappingError::Missing {
            dn: entry.dn.clone(),
            attribute: "ou",
        })?;
    Ok(School {
        key,
        dn: entry.dn.clone(),
        display_name: entry.first("displayName").map(str::to_string),
        school_number: number_attribute
            .and_then(|attribute| entry.first(attribute))
            .map(str::to_string),
    })
}

/// The schools of this read, to resolve the school names users carry.
#[derive(Debug, Default)]
pub(crate) struct SchoolIndex {
    /// Lower-case OU name to the OU name as the school entry spells it.
    keys: HashMap<String, String>,
    /// Only some schools are read (`schools` is set): other schools are left out quietly.
    restricted: bool,
}

impl SchoolIndex {
    pub(crate) fn new(schools: &[School], restricted: bool) -> SchoolIndex {
        SchoolIndex {
            keys: schools
                .iter()
                .map(|school| (school.key.to_lowercase(), school.key.clone()))
                .collect(),
            restricted,
        }
    }

    fn key(&self, name: &str) -> Option<&str> {
        self.keys
            .get(&name.trim().to_lowercase())
            .map(String::as_str)
    }
}

/// Who is in which class, from the class groups of every school read.
#[derive(Debug, Default)]
pub(crate) struct ClassIndex {
    by_dn: HashMap<String, Vec<(String, String)>>,
    by_uid: HashMap<String, Vec<(String, String)>>,
}

impl ClassIndex {
    /// Adds one class group of `school` (members by `uniqueMember` DN and by `memberUid`).
    pub(crate) fn add_group(&mut self, school: &str, group: &Entry) {
        let Some(cn) = group.first("cn") else {
            return;
        };
        let class = class_name(school, cn);
        let place = (school.to_string(), class);
        for member in group.values("uniqueMember") {
            if !member.trim().is_empty() {
                self.by_dn
                    .entry(normalize_dn(member))
                    .or_default()
                    .push(place.clone());
            }
        }
        for uid in group.values("memberUid") {
            if !uid.trim().is_empty() {
                self.by_uid
                    .entry(uid.trim().to_lowercase())
                    .or_default()
                    .push(place.clone());
            }
        }
    }

    /// The (school, class) pairs of a user, by DN or uid.
    fn of(&self, dn: &str, uid: Option<&str>) -> BTreeSet<(String, String)> {
        let mut places = BTreeSet::new();
        if let Some(found) = self.by_dn.get(&normalize_dn(dn)) {
            places.extend(found.iter().cloned());
        }
        if let Some(found) = uid.and_then(|uid| self.by_uid.get(&uid.to_lowercase())) {
            places.extend(found.iter().cloned());
        }
        places
    }
}

/// A class group's name without the school prefix UCS@school gives it: `GSL-5a` → `5a`.
pub(crate) fn class_name(school: &str, cn: &str) -> String {
    let cn = cn.trim();
    match (cn.get(..school.len()), cn.get(school.len()..)) {
        (Some(head), Some(rest)) if head.eq_ignore_ascii_case(school) && rest.len() > 1 => {
            match rest.strip_prefix('-') {
                Some(class) => class.to_string(),
                None => cn.to_string(),
            }
        }
        _ => cn.to_string(),
    }
}

/// The roles the object classes give (vendor-apis.md §5.2); teacher and staff give both.
fn roles_from_object_classes(entry: &Entry) -> Vec<PersonRole> {
    [
        ("ucsschoolStudent", PersonRole::Student),
        ("ucsschoolTeacher", PersonRole::Teacher),
        ("ucsschoolStaff", PersonRole::Staff),
        ("ucsschoolAdministrator", PersonRole::SchoolAdmin),
    ]
    .into_iter()
    .filter(|(class, _)| entry.has_object_class(class))
    .map(|(_, role)| role)
    .collect()
}

/// One user entry as a person; `None` for an exam account, which is no person of its own.
pub(crate) fn map_user(
    entry: &Entry,
    schools: &SchoolIndex,
    classes: &ClassIndex,
) -> Result<Option<PersonRecord>, MappingError> {
    if entry.has_object_class("ucsschoolExam") {
        return Ok(None);
    }
    let uuid = entry
        .first("entryUUID")
        .ok_or_else(|| MappingError::Missing {
            dn: entry.dn.clone(),
            attribute: "entryUUID",
        })?
        .to_string();
    let mut problems = Vec::new();

    // Role strings (`teacher:school:GSL`) are the precise source where present; schools that
    // have none fall back to the object classes.
    let mut pairs: BTreeSet<(String, PersonRole)> = BTreeSet::new();
    let mut covered: BTreeSet<String> = BTreeSet::new();
    for text in entry.values("ucsschoolRole") {
        let mut parts = text.trim().splitn(3, ':');
        let (Some(role), Some(context_type), Some(context)) =
            (parts.next(), parts.next(), parts.next())
        else {
            problems.push(format!(
                "ucsschoolRole `{text}` is not role:type:context; ignored"
            ));
            continue;
        };
        if context_type != "school" {
            continue;
        }
        let role = match role {
            "student" | "pupil" => PersonRole::Student,
            "teacher" => PersonRole::Teacher,
            "staff" => PersonRole::Staff,
            "school_admin" => PersonRole::SchoolAdmin,
            "exam_user" => return Ok(None),
            other => {
                problems.push(format!(
                    "ucsschoolRole `{text}` names the unknown role `{other}`; ignored"
                ));
                continue;
            }
        };
        covered.insert(context.trim().to_lowercase());
        pairs.insert((context.trim().to_string(), role));
    }
    let class_roles = roles_from_object_classes(entry);
    for school in entry.values("ucsschoolSchool") {
        let school = school.trim();
        if school.is_empty() || covered.contains(&school.to_lowercase()) {
            continue;
        }
        for role in &class_roles {
            pairs.insert((school.to_string(), *role));
        }
    }

    let uid = entry.first("uid");
    let places = classes.of(&entry.dn, uid);
    let mut memberships = BTreeSet::new();
    for (school, role) in pairs {
        let Some(key) = schools.key(&school) else {
            if !schools.restricted {
                problems.push(format!(
                    "school `{school}` is not a school OU below the base; its {role} membership \
                     is left out"
                ));
            }
            continue;
        };
        let school_classes: Vec<&String> = places
            .iter()
            .filter(|(class_school, _)| class_school == key)
            .map(|(_, class)| class)
            .collect();
        if role == PersonRole::Student && !school_classes.is_empty() {
            for class in school_classes {
                memberships.insert(Membership {
                    school: key.to_string(),
                    role,
                    class: Some(class.clone()),
                });
            }
        } else {
            memberships.insert(Membership {
                school: key.to_string(),
                role,
                class: None,
            });
        }
    }
    if memberships.is_empty() {
        problems.push(
            "no role at any school read (neither ucsschoolRole nor ucsschoolSchool with a \
             ucsschool user object class)"
                .to_string(),
        );
    }

    Ok(Some(PersonRecord {
        external_id: uuid.clone(),
        username: uid.map(str::to_string),
        email: entry.first("mailPrimaryAddress").map(str::to_string),
        given_name: entry.first("givenName").map(str::to_string),
        family_name: entry.first("sn").map(str::to_string),
        ids: PersonIds {
            record_uid: entry.first("ucsschoolRecordUID").map(str::to_string),
            source_uid: entry.first("ucsschoolSourceUID").map(str::to_string),
            directory_uuid: Some(uuid),
            entra_object_id: None,
        },
        memberships: memberships.into_iter().collect(),
        problems,
        left: false,
    }))
}

/// The operating system a computer's object class stands for (vendor-apis.md §5.3).
fn os_from_object_class(entry: &Entry) -> Option<&'static str> {
    [
        ("univentionWindows", "Windows"),
        ("univentionMacOSClient", "macOS"),
        ("univentionUbuntuClient", "Ubuntu"),
        ("univentionLinuxClient", "Linux"),
    ]
    .into_iter()
    .find(|(class, _)| entry.has_object_class(class))
    .map(|(_, os)| os)
}

/// One `ucsschoolComputer` of `school` as a device. Every school computer counts as a
/// desktop: the directory does not tell laptops apart.
pub(crate) fn map_computer(entry: &Entry, school: &str) -> Result<DeviceRecord, MappingError> {
    let uuid = entry
        .first("entryUUID")
        .ok_or_else(|| MappingError::Missing {
            dn: entry.dn.clone(),
            attribute: "entryUUID",
        })?;
    // UCS@school treats the inventory number as a comma-separated list; the first item is
    // the asset tag.
    let asset_tag = entry
        .first("univentionInventoryNumber")
        .and_then(|numbers| {
            numbers
                .split(',')
                .map(str::trim)
                .find(|number| !number.is_empty())
        })
        .map(str::to_string);
    Ok(DeviceRecord {
        external_id: uuid.to_string(),
        category: DeviceCategory::Desktop,
        name: entry.first("cn").map(str::to_string),
        asset_tag,
        wifi_mac: entry.first("macAddress").map(str::to_string),
        os_name: entry
            .first("univentionOperatingSystem")
            .map(str::to_string)
            .or_else(|| os_from_object_class(entry).map(str::to_string)),
        os_version: entry
            .first("univentionOperatingSystemVersion")
            .map(str::to_string),
        location: LocationHint {
            school: Some(school.to_string()),
            ..LocationHint::default()
        },
        payload: entry.to_json(COMPUTER_ATTRIBUTES).to_string(),
        ..DeviceRecord::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn school(key: &str) -> School {
        School {
            key: key.to_string(),
            dn: format!("ou={key},dc=x"),
            display_name: None,
            school_number: None,
        }
    }

    fn index() -> SchoolIndex {
        SchoolIndex::new(&[school("GSL"), school("GYM")], false)
    }

    fn membership(school: &str, role: PersonRole, class: Option<&str>) -> Membership {
        Membership {
            school: school.to_string(),
            role,
            class: class.map(str::to_string),
        }
    }

    #[test]
    fn class_names_lose_the_school_prefix() {
        assert_eq!(class_name("GSL", "GSL-5a"), "5a");
        assert_eq!(class_name("GSL", "gsl-Q1 Bio"), "Q1 Bio");
        assert_eq!(class_name("GSL", "Other-5a"), "Other-5a");
        assert_eq!(class_name("GSL", "GSL-"), "GSL-");
        assert_eq!(class_name("Schüle", "Schüle-7"), "7");
    }

    #[test]
    fn role_strings_win_and_object_classes_fill_in() {
        let entry = Entry::new("uid=t,cn=lehrer,cn=users,ou=GSL,dc=x")
            .with("entryUUID", &["u-1"])
            .with("uid", &["t"])
            .with("objectClass", &["ucsschoolTeacher", "ucsschoolStaff"])
            .with("ucsschoolSchool", &["GSL", "gym"])
            .with(
                "ucsschoolRole",
                &["teacher:school:GSL", "legal_guardian:school:GSL"],
            );
        let person = map_user(&entry, &index(), &ClassIndex::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            person.memberships,
            vec![
                membership("GSL", PersonRole::Teacher, None),
                membership("GYM", PersonRole::Teacher, None),
                membership("GYM", PersonRole::Staff, None),
            ]
        );
        assert_eq!(person.problems.len(), 1, "{:?}", person.problems);
        assert!(person.problems[0].contains("legal_guardian"));
    }

    #[test]
    fn pupils_get_their_classes_and_exam_users_nothing() {
        let mut classes = ClassIndex::default();
        classes.add_group(
            "GSL",
            &Entry::new("cn=GSL-1a,cn=klassen")
                .with("cn", &["GSL-1a"])
                .with("uniqueMember", &["UID=P, ou=GSL, dc=x"]),
        );
        classes.add_group(
            "GYM",
            &Entry::new("cn=GYM-5b,cn=klassen")
                .with("cn", &["GYM-5b"])
                .with("memberUid", &["p"]),
        );
        let pupil = Entry::new("uid=p,ou=GSL,dc=x")
            .with("entryUUID", &["u-2"])
            .with("uid", &["p"])
            .with("objectClass", &["ucsschoolStudent"])
            .with("ucsschoolSchool", &["GSL"]);
        let person = map_user(&pupil, &index(), &classes).unwrap().unwrap();
        assert_eq!(
            person.memberships,
            vec![membership("GSL", PersonRole::Student, Some("1a"))]
        );
        assert!(person.problems.is_empty());

        let exam = pupil.clone().with("objectClass", &["ucsschoolExam"]);
        assert_eq!(map_user(&exam, &index(), &classes).unwrap(), None);
        let exam_role = Entry::new("uid=e")
            .with("entryUUID", &["u-3"])
            .with("ucsschoolRole", &["exam_user:school:GSL"]);
        assert_eq!(map_user(&exam_role, &index(), &classes).unwrap(), None);
    }

    #[test]
    fn unknown_schools_and_missing_roles_are_problems() {
        let entry = Entry::new("uid=x")
            .with("entryUUID", &["u-4"])
            .with("objectClass", &["ucsschoolStudent"])
            .with("ucsschoolSchool", &["ELSEWHERE"]);
        let person = map_user(&entry, &index(), &ClassIndex::default())
            .unwrap()
            .unwrap();
        assert!(person.memberships.is_empty());
        assert_eq!(person.problems.len(), 2, "{:?}", person.problems);
        let restricted = SchoolIndex::new(&[school("GSL")], true);
        let person = map_user(&entry, &restricted, &ClassIndex::default())
            .unwrap()
            .unwrap();
        assert_eq!(person.problems.len(), 1, "{:?}", person.problems);

        let error = map_user(&Entry::new("uid=y"), &index(), &ClassIndex::default())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("uid=y") && error.contains("entryUUID"),
            "{error}"
        );
    }

    #[test]
    fn computers_map_to_desktops() {
        let entry = Entry::new("cn=pc,cn=computers,ou=GSL,dc=x")
            .with("entryUUID", &["c-1"])
            .with("cn", &["pc"])
            .with("objectClass", &["univentionWindows", "ucsschoolComputer"])
            .with("macAddress", &["3c:22:fb:00:11:22", "3c:22:fb:00:11:23"])
            .with("univentionInventoryNumber", &[" , INV-1, INV-2"])
            .with("aRecord", &["10.0.0.7"]);
        let device = map_computer(&entry, "GSL").unwrap();
        assert_eq!(device.external_id, "c-1");
        assert_eq!(device.category, DeviceCategory::Desktop);
        assert_eq!(device.asset_tag.as_deref(), Some("INV-1"));
        assert_eq!(device.wifi_mac.as_deref(), Some("3c:22:fb:00:11:22"));
        assert_eq!(device.os_name.as_deref(), Some("Windows"));
        assert_eq!(device.location.school.as_deref(), Some("GSL"));
        let payload: serde_json::Value = serde_json::from_str(&device.payload).unwrap();
        assert_eq!(payload["aRecord"], serde_json::json!(["10.0.0.7"]));
    }
}
