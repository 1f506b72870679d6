//! The one registry of source kinds: each kind of `[[source]]` is one entry here, naming its
//! `kind` string, its settings type (deserialized and checked from the table) and how to build
//! its connectors. `KNOWN_SOURCE_KINDS`, `SourceSettings`, `SourceSettings::from_kind`,
//! `SourceSettings::kind` and `SourceSettings::connectors` are all generated from this one list,
//! so a new kind is one entry (plus its connector module) and the compiler checks every match.
//! docs/configuration.md, "Adding a source kind", walks through it.

use std::fmt;
use std::sync::Arc;

use bestand_connectors::file::{FileConfig, FileSource};
use bestand_connectors::intune::{Intune, IntuneConfig};
use bestand_connectors::iserv_ldap::{IservLdap, IservLdapConfig};
use bestand_connectors::jamf_pro::{JamfPro, JamfProConfig};
use bestand_connectors::jamf_school::{JamfSchool, JamfSchoolConfig};
use bestand_connectors::kelvin::{Kelvin, KelvinConfig};
use bestand_connectors::relution::{Relution, RelutionConfig};
use bestand_connectors::ucs_ldap::{UcsLdap, UcsLdapConfig};
use bestand_connectors::{Connector, DirectoryConnector, TicketConnector};
use serde::de::DeserializeOwned;

/// What a source can deliver: devices, persons, or both; or tickets (a ticket system).
#[derive(Clone, Default)]
pub struct SourceConnectors {
    pub devices: Option<Arc<dyn Connector>>,
    pub directory: Option<Arc<dyn DirectoryConnector>>,
    pub tickets: Option<Arc<dyn TicketConnector>>,
}

/// A source that delivers devices only (an MDM, a file export).
fn devices<C: Connector + 'static>(
    built: Result<C, impl fmt::Display>,
) -> Result<SourceConnectors, String> {
    let connector = built.map_err(|error| error.to_string())?;
    Ok(SourceConnectors {
        devices: Some(Arc::new(connector)),
        directory: None,
        tickets: None,
    })
}

/// A source that delivers persons only (a school directory).
fn directory<C: DirectoryConnector + 'static>(
    built: Result<C, impl fmt::Display>,
) -> Result<SourceConnectors, String> {
    let connector = built.map_err(|error| error.to_string())?;
    Ok(SourceConnectors {
        devices: None,
        directory: Some(Arc::new(connector)),
        tickets: None,
    })
}

/// A source that delivers both through one connector (it opens its own session per read).
fn devices_and_directory<C: Connector + DirectoryConnector + 'static>(
    built: Result<C, impl fmt::Display>,
) -> Result<SourceConnectors, String> {
    let connector = Arc::new(built.map_err(|error| error.to_string())?);
    Ok(SourceConnectors {
        devices: Some(connector.clone()),
        directory: Some(connector),
        tickets: None,
    })
}

/// Generates the kind list, the settings enum and its three matches from one table of
/// `Variant(SettingsType) = "kind" => constructor`, so no match can miss a kind.
macro_rules! source_kinds {
    ($(
        $(#[$doc:meta])*
        $variant:ident($settings:ty) = $kind:literal => $build:expr;
    )*) => {
        /// The values `kind` may take in a `[[source]]` table.
        pub const KNOWN_SOURCE_KINDS: &[&str] = &[$($kind),*];

        /// The kind-specific settings of a source, one variant per entry of the registry.
        #[derive(Debug, Clone)]
        pub enum SourceSettings {
            $($(#[$doc])* $variant($settings),)*
        }

        impl SourceSettings {
            /// Checks `table` (the source's keys minus the common ones) against `kind`'s
            /// settings.
            pub(crate) fn from_kind(
                kind: &str,
                table: &toml::Table,
            ) -> Result<SourceSettings, String> {
                match kind {
                    $($kind => deserialize_kind(kind, table).map(SourceSettings::$variant),)*
                    other => Err(format!(
                        "key `kind`: unknown kind \"{other}\"; known kinds: {}",
                        KNOWN_SOURCE_KINDS.join(", ")
                    )),
                }
            }

            /// The `kind` string of these settings.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(SourceSettings::$variant(_) => $kind,)*
                }
            }

            /// Builds the connectors these settings describe for the source `name`: checks
            /// the values and reads secrets, makes no request.
            pub fn connectors(&self, name: &str) -> Result<SourceConnectors, String> {
                match self {
                    $(SourceSettings::$variant(settings) => ($build)(settings.clone(), name),)*
                }
            }
        }
    };
}

source_kinds! {
    JamfPro(JamfProConfig) = "jamf_pro" =>
        |settings, name| devices(JamfPro::new(settings, name));
    File(FileConfig) = "file" =>
        |settings, name| devices(FileSource::new(settings, name));
    Intune(IntuneConfig) = "intune" =>
        |settings, name| devices(Intune::new(settings, name));
    Relution(RelutionConfig) = "relution" =>
        |settings, name| devices(Relution::new(settings, name));
    JamfSchool(JamfSchoolConfig) = "jamf_school" =>
        |settings, name| devices(JamfSchool::new(settings, name));
    /// UCS@school over the Kelvin REST API: persons only.
    Kelvin(KelvinConfig) = "kelvin" =>
        |settings, name| directory(Kelvin::new(settings, name));
    /// UCS@school over LDAP: persons, and the school computers as devices.
    UcsLdap(UcsLdapConfig) = "ucs_ldap" =>
        |settings, name| devices_and_directory(UcsLdap::new(settings, name));
    /// IServ over LDAP: persons of one school. Boxed: its many group rules make it the
    /// largest settings by far.
    IservLdap(Box<IservLdapConfig>) = "iserv_ldap" =>
        |settings: Box<IservLdapConfig>, name| directory(IservLdap::new(*settings, name));
}

/// `table` as the settings of `kind`, or serde's message prefixed with the kind.
fn deserialize_kind<T: DeserializeOwned>(kind: &str, table: &toml::Table) -> Result<T, String> {
    toml::Value::Table(table.clone())
        .try_into()
        .map_err(|error: toml::de::Error| {
            format!("keys of kind \"{kind}\": {}", error.message().trim_end())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_kind_dispatches_to_its_own_settings() {
        let mut seen = std::collections::HashSet::new();
        for kind in KNOWN_SOURCE_KINDS {
            assert!(seen.insert(kind), "{kind} is listed twice");
            // A table no kind accepts, so each kind's own deserializer answers, named with
            // the kind: the string and the settings type belong together.
            let mut table = toml::Table::new();
            table.insert("no_such_key".into(), toml::Value::Integer(1));
            let error = SourceSettings::from_kind(kind, &table).unwrap_err();
            let expected = format!("keys of kind \"{kind}\": ");
            assert!(error.starts_with(&expected), "{kind}: {error}");
        }
        let error = SourceSettings::from_kind("snipe_it", &toml::Table::new()).unwrap_err();
        assert!(error.contains("known kinds: jamf_pro, file"), "{error}");
    }
}
