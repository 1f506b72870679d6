//! The kind-specific keys of a `kind = "iserv_ldap"` `[[source]]` table, and their checks.
//! The CLI strips the keys common to all sources before deserializing the rest into
//! `IservLdapConfig`, so unknown keys here are typos.

use std::collections::BTreeMap;

use bestand_model::model::PersonRole;
use regex::{Regex, RegexBuilder};
use serde::Deserialize;

use crate::ldap::{check_filter, ConnectionSpec, LdapKeys, LdapSetupError};

/// IServ serves LDAPS on 10636, because Samba AD holds 636 (docs/vendors/iserv.md#ldap).
pub const DEFAULT_LDAPS_PORT: u16 = 10636;

/// The class-group naming convention assumed unless configured. IServ's import module names
/// class groups `Klasse 9a` (and year groups `Jahrgang 9`, which are no classes); their `cn`
/// is spelled `klasse-9a`, `klasse.9a`, `klasse_9a`, `Klasse 9a` or `klasse9a` depending on
/// who made them. The class must look like one: a grade number with an optional suffix (`5a`,
/// `10b`, `11`, `5.1`), an upper-school stage (`Q1`, `E2`) or `EF`. So words that merely start
/// with `klasse` (`klassensprecher`, `klassenrat`, `klassenfahrt`, `klassenlehrer`) never match.
/// Matched without regard to case.
pub const DEFAULT_CLASS_GROUP_PATTERN: &str =
    r"^klasse[-_. ]?(\d{1,2}(?:[-_. ]?[a-z0-9]{1,3})?|[a-z]{1,2}\d{1,2}[a-z]?|ef)$";

/// The former pupils' groups assumed unless configured. IServ's import module can move leavers
/// into "Ehemaligen-Gruppen" instead of deleting them; the school names them, typically
/// `Ehemalige`, `Ehemalige 2024` or `ehemalige-schueler`. Matched without regard to case.
pub const DEFAULT_FORMER_GROUP_PATTERN: &str = r"^ehemalige[nr]?($|[-_. ])";

/// Configuration of one IServ (one school) read over LDAP (docs/vendors/iserv.md#ldap). The bind
/// account comes from an entry in the IServ's `/etc/iserv/ldapusers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IservLdapConfig {
    /// How to reach and bind to the directory: `url`, `bind_dn`, `bind_password_env` or
    /// `bind_password_file`, `starttls`, `ca_file`, `page_size`, `connect_timeout_secs`,
    /// `timeout_secs` (`crate::ldap::LdapKeys`).
    #[serde(flatten)]
    pub ldap: LdapKeys,
    /// The IServ's base DN, e.g. `dc=gsl-iserv,dc=de` (`/var/lib/iserv/server-openldap/ldapdn`).
    pub base_dn: String,
    /// The school key every membership of this IServ carries (one IServ serves one school);
    /// mapped to a configured school like any directory school key.
    pub school: String,
    /// The school's name, reported with the school key.
    #[serde(default)]
    pub school_name: Option<String>,
    /// The official school number, reported with the school key.
    #[serde(default)]
    pub school_number: Option<String>,
    /// Where users live; default `ou=users,<base_dn>`.
    #[serde(default)]
    pub users_base: Option<String>,
    /// Which entries below `users_base` are persons.
    #[serde(default = "default_users_filter")]
    pub users_filter: String,
    /// Where groups live; default `ou=groups,<base_dn>`.
    #[serde(default)]
    pub groups_base: Option<String>,
    /// Which entries below `groups_base` are groups.
    #[serde(default = "default_groups_filter")]
    pub groups_filter: String,
    /// Group `cn` to role (`student`, `teacher`, `staff`, `school_admin`), compared without
    /// regard to case. Setting it replaces the default map as a whole. A user in none of these
    /// groups (a parent, guest, exam, projector or shared mailbox account) is no person: it is
    /// not stored, only counted by kind in the run's report.
    #[serde(default = "default_role_groups")]
    pub role_groups: BTreeMap<String, PersonRole>,
    /// A regular expression (matched without regard to case) for class group names; the
    /// first capture group, if any, is the class name. `""` turns it off.
    #[serde(default = "default_class_group_pattern")]
    pub class_group_pattern: String,
    /// Group names that are classes regardless of `class_group_pattern`; the class is the
    /// pattern's capture where it matches, else the whole name.
    #[serde(default)]
    pub class_groups: Vec<String>,
    /// A regular expression (matched without regard to case) for the groups of former pupils;
    /// a user in one of them has left the school (marked as left, last school and class kept).
    /// `""` turns it off.
    #[serde(default = "default_former_group_pattern")]
    pub former_group_pattern: String,
    /// An LDAP attribute of the user entries that carries an id shared with other directories
    /// (the school administration software's pupil id, say). Two directory records with the
    /// same value are one person, even across servers where logins mean nothing.
    #[serde(default)]
    pub shared_id_attribute: Option<String>,
    /// Which system the shared ids come from; records match only within one. Default: the
    /// attribute name in lower case, so IServs with the same attribute match each other. Set
    /// it to a UCS `ucsschoolSourceUID` to match that directory's record ids.
    #[serde(default)]
    pub shared_id_source: Option<String>,
}

fn default_users_filter() -> String {
    "(objectClass=memberOfGroup)".to_string()
}

fn default_groups_filter() -> String {
    "(objectClass=groupOfMembers)".to_string()
}

fn default_role_groups() -> BTreeMap<String, PersonRole> {
    BTreeMap::from([
        ("lehrer".to_string(), PersonRole::Teacher),
        ("schueler".to_string(), PersonRole::Student),
        ("verwaltung".to_string(), PersonRole::Staff),
        ("admins".to_string(), PersonRole::SchoolAdmin),
    ])
}

fn default_class_group_pattern() -> String {
    DEFAULT_CLASS_GROUP_PATTERN.to_string()
}

fn default_former_group_pattern() -> String {
    DEFAULT_FORMER_GROUP_PATTERN.to_string()
}

/// Why an IServ LDAP source cannot be set up. Names config keys, never the password.
#[derive(Debug, thiserror::Error)]
pub enum IservLdapConfigError {
    #[error(transparent)]
    Ldap(#[from] LdapSetupError),
    #[error("`base_dn` is empty")]
    BaseDn,
    #[error("`school` is empty")]
    School,
    #[error("`{key}` is not a usable LDAP filter: {cause}")]
    Filter { key: &'static str, cause: String },
    #[error("`role_groups` is empty; name at least one group")]
    NoRoleGroups,
    #[error("`{0}` has an empty group name")]
    EmptyGroup(&'static str),
    #[error("`{key}` is not a valid regular expression: {cause}")]
    Pattern { key: &'static str, cause: String },
    #[error("`shared_id_attribute` `{0}` is not an LDAP attribute name")]
    SharedIdAttribute(String),
}

/// The checked group settings the mapping works with.
#[derive(Debug, Clone)]
pub(crate) struct GroupRules {
    /// Lower-case group name to role.
    pub roles: BTreeMap<String, PersonRole>,
    pub class_pattern: Option<Regex>,
    /// Lower-case names of listed class groups.
    pub class_groups: Vec<String>,
    pub former_pattern: Option<Regex>,
    /// The LDAP attribute of the shared id and the system it names, if configured.
    pub shared_id: Option<(String, String)>,
}

/// A case-insensitive pattern from `key`, or `None` when it is empty.
fn pattern(key: &'static str, text: &str) -> Result<Option<Regex>, IservLdapConfigError> {
    match text.trim() {
        "" => Ok(None),
        pattern => RegexBuilder::new(pattern)
            .case_insensitive(true)
            .build()
            .map(Some)
            .map_err(|error| IservLdapConfigError::Pattern {
                key,
                cause: error.to_string(),
            }),
    }
}

impl IservLdapConfig {
    /// Checks the plain values (no secrets, no IO) and compiles the group rules.
    pub(crate) fn validate(&self) -> Result<GroupRules, IservLdapConfigError> {
        if self.base_dn.trim().is_empty() {
            return Err(IservLdapConfigError::BaseDn);
        }
        if self.school.trim().is_empty() {
            return Err(IservLdapConfigError::School);
        }
        for (key, filter) in [
            ("users_filter", &self.users_filter),
            ("groups_filter", &self.groups_filter),
        ] {
            check_filter(filter).map_err(|cause| IservLdapConfigError::Filter { key, cause })?;
        }
        if self.role_groups.is_empty() {
            return Err(IservLdapConfigError::NoRoleGroups);
        }
        if self.role_groups.keys().any(|name| name.trim().is_empty()) {
            return Err(IservLdapConfigError::EmptyGroup("role_groups"));
        }
        if self.class_groups.iter().any(|name| name.trim().is_empty()) {
            return Err(IservLdapConfigError::EmptyGroup("class_groups"));
        }
        let class_pattern = pattern("class_group_pattern", &self.class_group_pattern)?;
        let former_pattern = pattern("former_group_pattern", &self.former_group_pattern)?;
        let shared_id = match self.shared_id_attribute.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(attribute) => {
                let valid = attribute.starts_with(|c: char| c.is_ascii_alphabetic())
                    && attribute
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-');
                if !valid {
                    return Err(IservLdapConfigError::SharedIdAttribute(
                        attribute.to_string(),
                    ));
                }
                let source = self
                    .shared_id_source
                    .as_deref()
                    .map(str::trim)
                    .filter(|source| !source.is_empty())
                    .map_or_else(|| attribute.to_lowercase(), str::to_string);
                Some((attribute.to_string(), source))
            }
        };
        Ok(GroupRules {
            roles: self
                .role_groups
                .iter()
                .map(|(name, role)| (name.trim().to_lowercase(), *role))
                .collect(),
            class_pattern,
            class_groups: self
                .class_groups
                .iter()
                .map(|name| name.trim().to_lowercase())
                .collect(),
            former_pattern,
            shared_id,
        })
    }

    pub(crate) fn connection(&self) -> ConnectionSpec<'_> {
        self.ldap.connection(DEFAULT_LDAPS_PORT)
    }

    pub(crate) fn users_base(&self) -> String {
        self.users_base
            .as_deref()
            .map(str::trim)
            .filter(|base| !base.is_empty())
            .map_or_else(
                || format!("ou=users,{}", self.base_dn.trim()),
                str::to_string,
            )
    }

    pub(crate) fn groups_base(&self) -> String {
        self.groups_base
            .as_deref()
            .map(str::trim)
            .filter(|base| !base.is_empty())
            .map_or_else(
                || format!("ou=groups,{}", self.base_dn.trim()),
                str::to_string,
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::table;

    fn config(extra: serde_json::Value) -> Result<IservLdapConfig, serde_json::Error> {
        let base = serde_json::json!({
            "url": "ldaps://gsl-iserv.example",
            "bind_dn": "cn=bestand,ou=ldap,dc=gsl-iserv,dc=de",
            "bind_password_file": "/run/secrets/iserv",
            "base_dn": "dc=gsl-iserv,dc=de",
            "school": "GSL",
        });
        serde_json::from_value(table(base, extra))
    }

    #[test]
    fn defaults() {
        let parsed = config(serde_json::json!({})).unwrap();
        assert_eq!(parsed.users_base(), "ou=users,dc=gsl-iserv,dc=de");
        assert_eq!(parsed.groups_base(), "ou=groups,dc=gsl-iserv,dc=de");
        assert_eq!(parsed.users_filter, "(objectClass=memberOfGroup)");
        assert_eq!(parsed.groups_filter, "(objectClass=groupOfMembers)");
        assert_eq!(parsed.role_groups.len(), 4);
        assert_eq!(parsed.role_groups["admins"], PersonRole::SchoolAdmin);
        assert_eq!(parsed.connection().default_ldaps_port, 10636);
        let rules = parsed.validate().unwrap();
        let pattern = rules.class_pattern.unwrap();
        for (name, class) in [
            ("klasse-5a", "5a"),
            ("Klasse 7c", "7c"),
            ("KLASSE_6b", "6b"),
        ] {
            assert_eq!(&pattern.captures(name).unwrap()[1], class);
        }
        assert!(!pattern.is_match("ag-robotik"));
        let former = rules.former_pattern.unwrap();
        for name in [
            "ehemalige",
            "Ehemalige 2024",
            "ehemalige-schueler",
            "Ehemaligen",
        ] {
            assert!(former.is_match(name), "{name}");
        }
        assert!(!former.is_match("ehemaligenverein"));
        assert_eq!(rules.shared_id, None);
    }

    #[test]
    fn bad_values_name_their_key() {
        assert!(config(serde_json::json!({ "bind_password": "x" })).is_err());
        assert!(config(serde_json::json!({ "role_groups": { "lehrer": "principal" } })).is_err());
        for (extra, expected) in [
            (serde_json::json!({ "school": "" }), "`school`"),
            (
                serde_json::json!({ "users_filter": "objectClass=x" }),
                "`users_filter`",
            ),
            (
                serde_json::json!({ "groups_filter": "(&(a=b)" }),
                "`groups_filter`",
            ),
            (serde_json::json!({ "role_groups": {} }), "`role_groups`"),
            (
                serde_json::json!({ "class_group_pattern": "klasse(" }),
                "`class_group_pattern`",
            ),
            (
                serde_json::json!({ "class_groups": [" "] }),
                "`class_groups`",
            ),
            (
                serde_json::json!({ "former_group_pattern": "(ehemalige" }),
                "`former_group_pattern`",
            ),
            (
                serde_json::json!({ "shared_id_attribute": "employee number" }),
                "`shared_id_attribute`",
            ),
        ] {
            let error = config(extra).unwrap().validate().unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }
}
