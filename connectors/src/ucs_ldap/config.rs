//! The kind-specific keys of a `kind = "ucs_ldap"` `[[source]]` table, and their checks.
//! The CLI strips the keys common to all sources before deserializing the rest into
//! `UcsLdapConfig`, so unknown keys here are typos.

use serde::Deserialize;

use crate::ldap::{is_attribute_name, ConnectionSpec, LdapKeys, LdapSetupError};

/// Configuration of one UCS@school directory read over LDAP (docs/vendors/ucs-kelvin-ldap.md).
/// Point it at the Primary Directory Node or a Backup: school replicas may hold only their own
/// school and answer with referrals, which are not followed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UcsLdapConfig {
    /// How to reach and bind to the directory: `url`, `bind_dn`, `bind_password_env` or
    /// `bind_password_file`, `starttls`, `ca_file`, `page_size`, `connect_timeout_secs`,
    /// `timeout_secs` (`crate::ldap::LdapKeys`).
    #[serde(flatten)]
    pub ldap: LdapKeys,
    /// The LDAP base, e.g. `dc=schule,dc=example`; schools are found anywhere below it.
    pub base_dn: String,
    /// School OU names (`ou`) to read; empty reads every `ucsschoolOrganizationalUnit`. A
    /// listed school that does not exist fails the read. Memberships at schools not listed
    /// are left out.
    #[serde(default)]
    pub schools: Vec<String>,
    /// The attribute of the school OU that holds the official school number, if the
    /// authority keeps it in the directory (often an extended attribute such as
    /// `univentionFreeAttribute1`). None is read by default.
    #[serde(default)]
    pub school_number_attribute: Option<String>,
    /// Where a school's class groups live, relative to its OU (UCR
    /// `ucsschool/ldap/default/container/class`).
    #[serde(default = "default_classes_container")]
    pub classes_container: String,
    /// Where a school's computers live, relative to its OU.
    #[serde(default = "default_computers_container")]
    pub computers_container: String,
}

fn default_classes_container() -> String {
    "cn=klassen,cn=schueler,cn=groups".to_string()
}

fn default_computers_container() -> String {
    "cn=computers".to_string()
}

/// Why a UCS@school LDAP source cannot be set up. Names config keys, never the password.
#[derive(Debug, thiserror::Error)]
pub enum UcsLdapConfigError {
    #[error(transparent)]
    Ldap(#[from] LdapSetupError),
    #[error("`base_dn` is empty")]
    BaseDn,
    #[error("`schools` has an empty entry")]
    EmptySchool,
    #[error("`school_number_attribute` = {0:?} is not an attribute name")]
    SchoolNumberAttribute(String),
    #[error("`{0}` is empty")]
    EmptyContainer(&'static str),
}

impl UcsLdapConfig {
    /// Checks the plain values (no secrets, no IO).
    pub(crate) fn validate(&self) -> Result<(), UcsLdapConfigError> {
        if self.base_dn.trim().is_empty() {
            return Err(UcsLdapConfigError::BaseDn);
        }
        if self.schools.iter().any(|school| school.trim().is_empty()) {
            return Err(UcsLdapConfigError::EmptySchool);
        }
        if let Some(attribute) = &self.school_number_attribute {
            if !is_attribute_name(attribute.trim()) {
                return Err(UcsLdapConfigError::SchoolNumberAttribute(attribute.clone()));
            }
        }
        for (key, value) in [
            ("classes_container", &self.classes_container),
            ("computers_container", &self.computers_container),
        ] {
            if value.trim().is_empty() {
                return Err(UcsLdapConfigError::EmptyContainer(key));
            }
        }
        Ok(())
    }

    pub(crate) fn connection(&self) -> ConnectionSpec<'_> {
        self.ldap.connection(636)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::table;

    fn config(extra: serde_json::Value) -> Result<UcsLdapConfig, serde_json::Error> {
        let base = serde_json::json!({
            "url": "ldaps://ucs.example",
            "bind_dn": "uid=bestand,cn=users,dc=schule,dc=example",
            "bind_password_env": "UCS_PASSWORD",
            "base_dn": "dc=schule,dc=example",
        });
        serde_json::from_value(table(base, extra))
    }

    #[test]
    fn defaults() {
        let parsed = config(serde_json::json!({})).unwrap();
        assert_eq!(parsed.ldap.page_size, 500);
        assert_eq!(parsed.ldap.connect_timeout_secs, 10);
        assert_eq!(parsed.ldap.timeout_secs, 120);
        assert!(parsed.schools.is_empty());
        assert_eq!(parsed.school_number_attribute, None);
        assert_eq!(parsed.classes_container, "cn=klassen,cn=schueler,cn=groups");
        assert_eq!(parsed.computers_container, "cn=computers");
        assert!(!parsed.ldap.starttls);
        parsed.validate().unwrap();
    }

    #[test]
    fn bad_values_name_their_key() {
        assert!(config(serde_json::json!({ "bind_password": "x" })).is_err());
        assert!(config(serde_json::json!({ "insecure_skip_verify": true })).is_err());
        for (extra, expected) in [
            (serde_json::json!({ "base_dn": " " }), "`base_dn`"),
            (serde_json::json!({ "schools": ["GSL", ""] }), "`schools`"),
            (
                serde_json::json!({ "school_number_attribute": "cn)(x" }),
                "`school_number_attribute`",
            ),
            (
                serde_json::json!({ "computers_container": "" }),
                "`computers_container`",
            ),
        ] {
            let error = config(extra).unwrap().validate().unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }
}
