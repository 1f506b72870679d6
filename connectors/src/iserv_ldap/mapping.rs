//! IServ LDAP entries to persons: pure functions over [`Entry`] that read roles and classes
//! from group membership (vendor-apis.md §6.3), testable without a server.
//!
//! IServ records membership twice: `memberOf` on the user (maintained by the server) and
//! `memberUid` (or `member`) on the group. Either may be missing depending on the IServ
//! version and the ldapusers field list, so both are read and united.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bestand_model::model::PersonRole;
use bestand_model::person::{AccountKind, Membership, PersonIds, PersonRecord};

use super::config::GroupRules;
use crate::ldap::{first_rdn, normalize_dn, Entry};

/// What a user search reads; nothing else of a person is ever requested.
pub(crate) const USER_ATTRIBUTES: &[&str] = &[
    "uuid",
    "entryUUID",
    "uid",
    "mail",
    "givenName",
    "sn",
    "memberOf",
];

/// What a group search reads.
pub(crate) const GROUP_ATTRIBUTES: &[&str] = &["cn", "memberUid", "member"];

/// An entry lacks what the connector cannot do without; fails the page.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MappingError {
    #[error(
        "entry `{dn}` has neither `uuid` nor entryUUID (both must be readable by the bind \
         account)"
    )]
    NoKey { dn: String },
}

/// Group names (as spelled in the group entry) by member uid and member DN.
#[derive(Debug, Default)]
pub(crate) struct GroupIndex {
    by_uid: HashMap<String, Vec<String>>,
    by_dn: HashMap<String, Vec<String>>,
}

impl GroupIndex {
    pub(crate) fn add_group(&mut self, group: &Entry) {
        let Some(cn) = group.first("cn") else {
            return;
        };
        for uid in group.values("memberUid") {
            if !uid.trim().is_empty() {
                self.by_uid
                    .entry(uid.trim().to_lowercase())
                    .or_default()
                    .push(cn.to_string());
            }
        }
        for member in group.values("member") {
            if !member.trim().is_empty() {
                self.by_dn
                    .entry(normalize_dn(member))
                    .or_default()
                    .push(cn.to_string());
            }
        }
    }

    /// Every group of `user`, keyed by lower-case name.
    fn groups_of(&self, user: &Entry) -> BTreeMap<String, String> {
        let mut groups = BTreeMap::new();
        for dn in user.values("memberOf") {
            if let Some((attribute, name)) = first_rdn(dn) {
                if attribute.eq_ignore_ascii_case("cn") && !name.trim().is_empty() {
                    let name = name.trim().to_string();
                    groups.entry(name.to_lowercase()).or_insert(name);
                }
            }
        }
        let by_uid = user
            .first("uid")
            .and_then(|uid| self.by_uid.get(&uid.to_lowercase()));
        let by_dn = self.by_dn.get(&normalize_dn(&user.dn));
        for name in by_uid.into_iter().chain(by_dn).flatten() {
            groups
                .entry(name.to_lowercase())
                .or_insert_with(|| name.clone());
        }
        groups
    }
}

impl GroupRules {
    /// The class a group stands for, if it is a class group.
    pub(crate) fn class_of(&self, name: &str) -> Option<String> {
        let listed = self.class_groups.contains(&name.to_lowercase());
        let captured = self.class_pattern.as_ref().and_then(|pattern| {
            let captures = pattern.captures(name)?;
            let class = captures.get(1).or_else(|| captures.get(0))?;
            Some(class.as_str().trim().to_string())
        });
        match captured {
            Some(class) if !class.is_empty() => Some(class),
            _ if listed => Some(name.to_string()),
            _ => None,
        }
    }
}

/// What one user entry is.
#[derive(Debug)]
pub(crate) enum Mapped {
    Person(Box<PersonRecord>),
    /// In no role group and no former pupils' group: no person (see [`AccountKind`]).
    NotPerson(AccountKind),
}

/// Words in an account's login or group names that tell what kind of non-person it is, tried
/// in this order. IServ has no account type in LDAP, so this is a guess for the report only:
/// it never decides whether an account is kept.
const KIND_WORDS: &[(AccountKind, &[&str])] = &[
    (
        AccountKind::Parent,
        &["eltern", "erziehungsberechtigt", "parent"],
    ),
    (
        AccountKind::Exam,
        &["pruefung", "prüfung", "klausur", "exam"],
    ),
    (AccountKind::Guest, &["gast", "gaeste", "gäste", "guest"]),
    (
        AccountKind::Projector,
        &["beamer", "projektor", "projector", "display", "tafel"],
    ),
    (
        AccountKind::Mailbox,
        &["postfach", "postfaech", "postfäch", "mailbox", "funktion"],
    ),
];

fn account_kind(uid: Option<&str>, groups: &BTreeMap<String, String>) -> AccountKind {
    let names: Vec<String> = uid
        .map(str::to_lowercase)
        .into_iter()
        .chain(groups.keys().cloned())
        .collect();
    KIND_WORDS
        .iter()
        .find(|(_, words)| {
            names
                .iter()
                .any(|name| words.iter().any(|word| name.contains(word)))
        })
        .map_or(AccountKind::Other, |(kind, _)| *kind)
}

/// One IServ user as a person at `school`, or as the kind of account it is when it is none.
///
/// A user in a former pupils' group has left: the record says so and carries no membership
/// problem, since the groups that gave the role are gone by design.
pub(crate) fn map_user(
    entry: &Entry,
    school: &str,
    rules: &GroupRules,
    groups: &GroupIndex,
) -> Result<Mapped, MappingError> {
    let group_names = groups.groups_of(entry);
    let mut roles = BTreeSet::new();
    let mut classes = BTreeSet::new();
    let mut left = false;
    for name in group_names.values() {
        if let Some(role) = rules.roles.get(&name.to_lowercase()) {
            roles.insert(*role);
        }
        if let Some(class) = rules.class_of(name) {
            classes.insert(class);
        }
        if rules
            .former_pattern
            .as_ref()
            .is_some_and(|pattern| pattern.is_match(name))
        {
            left = true;
        }
    }
    if roles.is_empty() && !left {
        return Ok(Mapped::NotPerson(account_kind(
            entry.first("uid"),
            &group_names,
        )));
    }

    let mut problems = Vec::new();
    let uuid = entry.first("uuid").map(str::to_string);
    let external_id = match (&uuid, entry.first("entryUUID")) {
        (Some(uuid), _) => uuid.clone(),
        (None, Some(entry_uuid)) => {
            problems.push(
                "no `uuid` attribute; the LDAP entryUUID is used as the key instead".to_string(),
            );
            entry_uuid.to_string()
        }
        (None, None) => {
            return Err(MappingError::NoKey {
                dn: entry.dn.clone(),
            })
        }
    };

    let mut memberships = Vec::new();
    for role in &roles {
        if *role == PersonRole::Student && !classes.is_empty() {
            memberships.extend(classes.iter().map(|class| Membership {
                school: school.to_string(),
                role: *role,
                class: Some(class.clone()),
            }));
        } else {
            memberships.push(Membership {
                school: school.to_string(),
                role: *role,
                class: None,
            });
        }
    }
    let mut ids = PersonIds {
        directory_uuid: uuid,
        ..PersonIds::default()
    };
    if let Some((attribute, source)) = &rules.shared_id {
        if let Some(value) = entry.first(attribute) {
            ids.record_uid = Some(value.to_string());
            ids.source_uid = Some(source.clone());
        }
    }

    Ok(Mapped::Person(Box::new(PersonRecord {
        external_id,
        username: entry.first("uid").map(str::to_string),
        email: entry.first("mail").map(str::to_string),
        given_name: entry.first("givenName").map(str::to_string),
        family_name: entry.first("sn").map(str::to_string),
        ids,
        memberships,
        problems,
        left,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iserv_ldap::IservLdapConfig;

    fn rules(extra: serde_json::Value) -> GroupRules {
        let mut value = serde_json::json!({
            "url": "ldaps://iserv.example",
            "bind_dn": "cn=bestand,ou=ldap,dc=x",
            "bind_password_env": "X",
            "base_dn": "dc=x",
            "school": "GSL",
        });
        if let (Some(object), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
            object.extend(extra.clone());
        }
        let config: IservLdapConfig = serde_json::from_value(value).unwrap();
        config.validate().unwrap()
    }

    #[test]
    fn class_groups_by_pattern_or_list() {
        let default = rules(serde_json::json!({}));
        for (name, class) in [
            ("klasse-5a", "5a"),
            ("Klasse 7c", "7c"),
            ("klasse.9a", "9a"),
            ("KLASSE_6b", "6b"),
            ("klasse10b", "10b"),
            ("klasse-11", "11"),
            ("Klasse 5.1", "5.1"),
            ("klasse-q1", "q1"),
            ("Klasse EF", "EF"),
        ] {
            assert_eq!(default.class_of(name).as_deref(), Some(class), "{name}");
        }
        // Near misses: words that start with `klasse` but name no class, and groups of a
        // class that are not the class itself.
        for name in [
            "klassensprecher",
            "klassenrat",
            "klassenfahrt",
            "klassenlehrer",
            "Klassenlehrer 5a",
            "klassen",
            "klasse",
            "klasse-5a-eltern",
            "jahrgang-9",
            "ag-robotik",
        ] {
            assert_eq!(default.class_of(name), None, "{name}");
        }
        let listed = rules(serde_json::json!({
            "class_group_pattern": "",
            "class_groups": ["5A"],
        }));
        assert_eq!(listed.class_of("5a").as_deref(), Some("5a"));
        assert_eq!(listed.class_of("klasse-5a"), None);
        let whole = rules(serde_json::json!({ "class_group_pattern": "^k\\d+[a-z]$" }));
        assert_eq!(whole.class_of("K10b").as_deref(), Some("K10b"));
    }

    #[test]
    fn roles_and_classes_from_member_of_and_member_uid() {
        let rules = rules(serde_json::json!({}));
        let mut groups = GroupIndex::default();
        groups.add_group(
            &Entry::new("cn=klasse_6b,ou=groups")
                .with("cn", &["klasse_6b"])
                .with("memberUid", &["Ben"]),
        );
        let ben = Entry::new("cn=ben,ou=users,dc=x")
            .with("uuid", &["u-ben"])
            .with("uid", &["ben"])
            .with(
                "memberOf",
                &["cn=Schueler,ou=groups,dc=x", "cn=admins,ou=groups,dc=x"],
            );
        let Mapped::Person(person) = map_user(&ben, "GSL", &rules, &groups).unwrap() else {
            panic!("ben is a person");
        };
        assert_eq!(person.external_id, "u-ben");
        assert_eq!(person.ids.directory_uuid.as_deref(), Some("u-ben"));
        let pairs: Vec<(PersonRole, Option<&str>)> = person
            .memberships
            .iter()
            .map(|m| (m.role, m.class.as_deref()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                (PersonRole::Student, Some("6b")),
                (PersonRole::SchoolAdmin, None)
            ]
        );
        assert!(person.problems.is_empty());
    }

    #[test]
    fn a_user_in_no_role_group_is_no_person_and_says_what_kind() {
        let rules = rules(serde_json::json!({}));
        let kind = |uid: &str, groups: &[&str]| {
            let member_of: Vec<String> = groups
                .iter()
                .map(|group| format!("cn={group},ou=groups,dc=x"))
                .collect();
            let member_of: Vec<&str> = member_of.iter().map(String::as_str).collect();
            let entry = Entry::new(format!("cn={uid}"))
                .with("uuid", &["u-1"])
                .with("uid", &[uid])
                .with("memberOf", &member_of);
            match map_user(&entry, "GSL", &rules, &GroupIndex::default()).unwrap() {
                Mapped::NotPerson(kind) => kind,
                Mapped::Person(person) => panic!("{uid} became a person: {person:?}"),
            }
        };
        assert_eq!(
            kind("m.yilmaz", &["eltern", "klasse-5a"]),
            AccountKind::Parent
        );
        assert_eq!(kind("gast01", &[]), AccountKind::Guest);
        assert_eq!(kind("pruefung.3", &["pruefungen"]), AccountKind::Exam);
        assert_eq!(kind("beamer.r101", &["raeume"]), AccountKind::Projector);
        assert_eq!(
            kind("foerderverein", &["postfaecher"]),
            AccountKind::Mailbox
        );
        assert_eq!(kind("otto.brandt", &["ag-robotik"]), AccountKind::Other);
        // No key is needed for an account that is no person.
        let keyless = Entry::new("cn=gast02").with("uid", &["gast02"]);
        assert!(matches!(
            map_user(&keyless, "GSL", &rules, &GroupIndex::default()).unwrap(),
            Mapped::NotPerson(AccountKind::Guest)
        ));
    }

    #[test]
    fn a_former_pupil_has_left_and_a_shared_id_is_a_record_id() {
        let rules = rules(serde_json::json!({ "shared_id_attribute": "employeeNumber" }));
        let lea = Entry::new("cn=lea")
            .with("entryUUID", &["e-lea"])
            .with("uid", &["lea.schulz"])
            .with("employeeNumber", &[" 4711 "])
            .with("memberOf", &["cn=Ehemalige 2024,ou=groups,dc=x"]);
        let Mapped::Person(person) = map_user(&lea, "GSL", &rules, &GroupIndex::default()).unwrap()
        else {
            panic!("a former pupil is a person");
        };
        assert!(person.left);
        assert!(person.memberships.is_empty());
        assert_eq!(person.external_id, "e-lea");
        assert_eq!(person.ids.directory_uuid, None);
        assert_eq!(person.problems.len(), 1, "{:?}", person.problems);
        assert_eq!(person.ids.record_uid.as_deref(), Some("4711"));
        assert_eq!(person.ids.source_uid.as_deref(), Some("employeenumber"));
        let error = map_user(
            &Entry::new("cn=nobody").with("memberOf", &["cn=schueler,ou=groups,dc=x"]),
            "GSL",
            &rules,
            &GroupIndex::default(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("cn=nobody"));
    }
}
