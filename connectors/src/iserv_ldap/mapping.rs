//! IServ LDAP entries to persons: pure functions over [`Entry`] that read roles and classes
//! from group membership (vendor-apis.md §6.3), testable without a server.
//!
//! IServ records membership twice: `memberOf` on the user (maintained by the server) and
//! `memberUid` (or `member`) on the group. Either may be missing depending on the IServ
//! version and the ldapusers field list, so both are read and united.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bestand_core::model::PersonRole;
use bestand_core::person::{Membership, PersonIds, PersonRecord};

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

/// One IServ user as a person at `school`.
pub(crate) fn map_user(
    entry: &Entry,
    school: &str,
    rules: &GroupRules,
    groups: &GroupIndex,
) -> Result<PersonRecord, MappingError> {
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

    let mut roles = BTreeSet::new();
    let mut classes = BTreeSet::new();
    for name in groups.groups_of(entry).values() {
        if let Some(role) = rules.roles.get(&name.to_lowercase()) {
            roles.insert(*role);
        }
        if let Some(class) = rules.class_of(name) {
            classes.insert(class);
        }
    }
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
    if roles.is_empty() {
        problems.push(format!(
            "in no role group ({}); no membership",
            rules
                .roles
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    Ok(PersonRecord {
        external_id,
        username: entry.first("uid").map(str::to_string),
        email: entry.first("mail").map(str::to_string),
        given_name: entry.first("givenName").map(str::to_string),
        family_name: entry.first("sn").map(str::to_string),
        ids: PersonIds {
            directory_uuid: uuid,
            ..PersonIds::default()
        },
        memberships,
        problems,
        left: false,
    })
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
        assert_eq!(default.class_of("klasse-5a").as_deref(), Some("5a"));
        assert_eq!(default.class_of("Klasse 7c").as_deref(), Some("7c"));
        // The default pattern is greedy about its prefix: a `klassenrat` group (a council)
        // reads as class `nrat`. Where such groups exist, set `class_group_pattern`.
        assert_eq!(default.class_of("klassenrat"), Some("nrat".to_string()));
        assert_eq!(default.class_of("ag-robotik"), None);
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
        let person = map_user(&ben, "GSL", &rules, &groups).unwrap();
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
    fn no_role_group_and_no_uuid_are_problems() {
        let rules = rules(serde_json::json!({}));
        let otto = Entry::new("cn=otto")
            .with("entryUUID", &["e-otto"])
            .with("memberOf", &["cn=ag-robotik,ou=groups,dc=x"]);
        let person = map_user(&otto, "GSL", &rules, &GroupIndex::default()).unwrap();
        assert_eq!(person.external_id, "e-otto");
        assert_eq!(person.ids.directory_uuid, None);
        assert!(person.memberships.is_empty());
        assert_eq!(person.problems.len(), 2, "{:?}", person.problems);
        assert!(person.problems[1].contains("in no role group"));
        let error = map_user(
            &Entry::new("cn=nobody"),
            "GSL",
            &rules,
            &GroupIndex::default(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("cn=nobody"));
    }
}
