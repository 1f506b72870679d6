//! The one configuration file, `config.toml`: which database to use, which school authorities
//! and schools exist, and which sources to sync. Everything is checked when the file is loaded,
//! so a typo fails `bestand` at once with the file, table and key, not halfway through a sync.
//!
//! Unknown keys are errors everywhere. Secrets are never written into the file (sources name an
//! environment variable or a file instead), and the one exception, a password inside
//! `database.url`, is redacted from `Debug` output and error messages.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use bestand_core::model::SchoolType;
use bestand_core::sync::DeletionGuard;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// A complete example that documents every key; `docs/configuration.md` shows the same file.
pub const EXAMPLE_CONFIG: &str = include_str!("config.example.toml");

/// The environment variable that names the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "BESTAND_CONFIG";

/// The environment variable read for the database URL when the file has none.
pub const DATABASE_URL_ENV: &str = "DATABASE_URL";

pub use crate::service_hours::{ServiceHoursConfig, ServiceLevel};

// The kinds of source and their settings come from the one registry of source kinds.
pub use crate::kinds::{SourceSettings, KNOWN_SOURCE_KINDS};

/// The keys every `[[source]]` table shares; all other keys belong to the source's kind.
const SOURCE_COMMON_KEYS: &[&str] = &[
    "name",
    "kind",
    "authority",
    "enabled",
    "schedule",
    "missing_guard_share",
    "missing_guard_min",
    "school_map",
    "full_read_every",
    "topics",
    "providers",
    "title_patterns",
];

/// Why the configuration could not be found or used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "config file {} not found ({origin}); run `bestand demo` to create one, \
         or write one as docs/configuration.md describes",
        path.display()
    )]
    NotFound { path: PathBuf, origin: ConfigOrigin },
    #[error("cannot read config file {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot tell where the config file lives: this system reports no user config folder; \
         pass --config FILE or set {CONFIG_ENV}"
    )]
    NoConfigFolder,
    #[error(
        "cannot tell where the local database lives: this system reports no user data folder; \
         set `data_dir` in [database] of {}",
        path.display()
    )]
    NoDataFolder { path: PathBuf },
    #[error("invalid config file {}:{}", path.display(), list_problems(problems))]
    Invalid {
        path: PathBuf,
        /// Each problem names the table and the key; there is at least one.
        problems: Vec<String>,
    },
}

fn list_problems(problems: &[String]) -> String {
    match problems {
        [one] => format!(" {one}"),
        many => many
            .iter()
            .map(|problem| format!("\n  - {problem}"))
            .collect(),
    }
}

/// Where the path of the config file came from, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigOrigin {
    Flag,
    Environment,
    DefaultLocation,
}

impl fmt::Display for ConfigOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigOrigin::Flag => "given with --config",
            ConfigOrigin::Environment => "named by BESTAND_CONFIG",
            ConfigOrigin::DefaultLocation => "the default location",
        })
    }
}

/// Picks the config file: `--config`, else `BESTAND_CONFIG`, else
/// `<user config dir>/bestand/config.toml`.
pub fn locate(flag: Option<&Path>) -> Result<(PathBuf, ConfigOrigin), ConfigError> {
    locate_with(flag, std::env::var_os(CONFIG_ENV), dirs::config_dir())
}

/// `locate` with the environment and the user's config folder passed in, for tests.
pub fn locate_with(
    flag: Option<&Path>,
    env_value: Option<OsString>,
    user_config_dir: Option<PathBuf>,
) -> Result<(PathBuf, ConfigOrigin), ConfigError> {
    if let Some(path) = flag {
        return Ok((path.to_path_buf(), ConfigOrigin::Flag));
    }
    if let Some(value) = env_value.filter(|value| !value.is_empty()) {
        return Ok((PathBuf::from(value), ConfigOrigin::Environment));
    }
    let folder = user_config_dir.ok_or(ConfigError::NoConfigFolder)?;
    Ok((
        folder.join("bestand").join("config.toml"),
        ConfigOrigin::DefaultLocation,
    ))
}

/// The loaded and checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from; relative paths inside it are relative to its folder.
    pub path: PathBuf,
    pub database: DatabaseSettings,
    pub sync: SyncSettings,
    pub authorities: Vec<AuthorityConfig>,
    pub sources: Vec<SourceConfig>,
    pub loans: LoanSettings,
}

/// The file as serde sees it, before `[[source]]` tables are split by kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    database: DatabaseSettings,
    #[serde(default)]
    sync: SyncSettings,
    #[serde(default, rename = "authority")]
    authorities: Vec<AuthorityConfig>,
    #[serde(default, rename = "source")]
    sources: Vec<toml::Table>,
    #[serde(default)]
    loans: LoanSettings,
}

impl Config {
    /// Locates, reads and checks the config file (see `locate` for the search order).
    pub fn load(flag: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, origin) = locate(flag)?;
        Config::from_file(&path, origin)
    }

    /// Reads and checks one file; `origin` only shapes the message when it does not exist.
    pub fn from_file(path: &Path, origin: ConfigOrigin) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::NotFound {
                    path: path.to_path_buf(),
                    origin,
                })
            }
            Err(source) => {
                return Err(ConfigError::Unreadable {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        Config::parse(&text, path)
    }

    /// Parses and checks config text; `path` names the file in messages and anchors
    /// relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |problems: Vec<String>| ConfigError::Invalid {
            path: path.to_path_buf(),
            problems,
        };
        let raw: RawConfig = toml::from_str(text)
            .map_err(|error| invalid(vec![describe_toml_error(text, &error)]))?;

        let mut problems = Vec::new();
        check_database(&raw.database, &mut problems);
        check_sync(&raw.sync, &mut problems);
        check_authorities(&raw.authorities, &mut problems);
        check_loans(&raw.loans, &raw.authorities, &mut problems);
        let sources = split_sources(raw.sources, &mut problems);
        check_sources(&sources, &raw.authorities, &mut problems);
        check_field_priority(&raw.sync, &sources, &mut problems);
        for source in &sources {
            if let Some(schedule) = &source.common.schedule {
                if let Err(error) = crate::schedule::parse_schedule(schedule) {
                    problems.push(format!(
                        "[[source]] \"{}\": key `schedule`: {error}",
                        source.name()
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Err(invalid(problems));
        }

        let folder = path.parent().unwrap_or_else(|| Path::new(""));
        let mut database = raw.database;
        if let Some(data_dir) = &database.data_dir {
            if data_dir.is_relative() {
                database.data_dir = Some(folder.join(data_dir));
            }
        }
        let mut loans = raw.loans;
        if let Some(template) = &loans.agreement_template {
            if template.is_relative() {
                loans.agreement_template = Some(folder.join(template));
            }
        }
        Ok(Config {
            path: path.to_path_buf(),
            database,
            sync: raw.sync,
            authorities: raw.authorities,
            sources,
            loans,
        })
    }

    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources
            .iter()
            .find(|source| source.common.name == name)
    }

    pub fn authority(&self, slug: &str) -> Option<&AuthorityConfig> {
        self.authorities
            .iter()
            .find(|authority| authority.slug == slug)
    }

    /// The service-hours calendar and targets of an authority (checked when the file was
    /// loaded); `None` for an unknown authority or one without `[authority.service_hours]`.
    pub fn service_level(&self, slug: &str) -> Option<ServiceLevel> {
        let authority = self.authority(slug)?;
        let hours = authority.service_hours.as_ref()?;
        hours.resolve(&service_hours_table(authority)).ok()
    }

    /// The deletion guard for one source: its own overrides, else the `[sync]` values.
    pub fn deletion_guard(&self, source: &SourceConfig) -> DeletionGuard {
        DeletionGuard {
            max_share: source
                .common
                .missing_guard_share
                .unwrap_or(self.sync.missing_guard_share),
            min_count: source
                .common
                .missing_guard_min
                .unwrap_or(self.sync.missing_guard_min),
        }
    }
}

impl Config {
    /// Which database to use: `database.url`, else `DATABASE_URL`, else the local cluster.
    pub fn database_target(&self) -> Result<DatabaseTarget, ConfigError> {
        self.database_target_with(
            std::env::var(DATABASE_URL_ENV).ok(),
            dirs::data_dir().map(|folder| folder.join("bestand")),
        )
    }

    /// `database_target` with the environment and the default data folder passed in.
    pub fn database_target_with(
        &self,
        env_url: Option<String>,
        default_data_dir: Option<PathBuf>,
    ) -> Result<DatabaseTarget, ConfigError> {
        if let Some(url) = &self.database.url {
            return Ok(DatabaseTarget::Url {
                url: url.clone(),
                origin: UrlOrigin::ConfigFile,
            });
        }
        if let Some(url) = env_url.filter(|url| !url.trim().is_empty()) {
            return Ok(DatabaseTarget::Url {
                url: DatabaseUrl::new(url),
                origin: UrlOrigin::Environment,
            });
        }
        let data_dir = match &self.database.data_dir {
            Some(data_dir) => data_dir.clone(),
            None => default_data_dir.ok_or_else(|| ConfigError::NoDataFolder {
                path: self.path.clone(),
            })?,
        };
        Ok(DatabaseTarget::LocalCluster {
            cluster_dir: data_dir.join("postgres"),
            run_as: self.database.run_as.clone(),
        })
    }
}

/// `[database]`.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// A server someone else runs; without it bestand runs its own cluster.
    pub url: Option<DatabaseUrl>,
    /// Where bestand keeps its data; its own cluster lives in `<data_dir>/postgres`.
    pub data_dir: Option<PathBuf>,
    /// The unprivileged user bestand's own server runs as when bestand runs as root.
    pub run_as: Option<String>,
    /// The size of the connection pool.
    pub max_connections: Option<u32>,
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &self.url)
            .field("data_dir", &self.data_dir)
            .field("run_as", &self.run_as)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// A database URL that may carry a password: shown only redacted.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> DatabaseUrl {
        DatabaseUrl(url.into())
    }

    /// The URL with its password, for connecting and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password replaced by `****`.
    pub fn redacted(&self) -> String {
        redact_url_passwords(&self.0)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Replaces the password of every `postgres://` or `postgresql://` URL in `text` with `****`.
pub fn redact_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(found) = ["postgres://", "postgresql://"]
        .iter()
        .filter_map(|scheme| rest.find(scheme).map(|at| (at, scheme.len())))
        .min()
    {
        let (at, scheme_len) = found;
        out.push_str(&rest[..at + scheme_len]);
        let after = &rest[at + scheme_len..];
        let authority_end = after
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"')
            .unwrap_or(after.len());
        let authority = &after[..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at_sign), Some(colon)) if colon < at_sign => {
                out.push_str(&authority[..colon]);
                out.push_str(":****");
                out.push_str(&authority[at_sign..]);
            }
            _ => out.push_str(authority),
        }
        rest = &after[authority_end..];
    }
    out.push_str(rest);
    out
}

/// Where a database URL came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlOrigin {
    ConfigFile,
    Environment,
}

/// The database bestand should use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    /// A server someone else runs.
    Url { url: DatabaseUrl, origin: UrlOrigin },
    /// bestand's own cluster in `cluster_dir`, see `crate::pgcluster`.
    LocalCluster {
        cluster_dir: PathBuf,
        run_as: Option<String>,
    },
}

/// `[sync]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncSettings {
    /// A run that would mark more than this share of a source's devices missing is blocked...
    pub missing_guard_share: f64,
    /// ... unless that is no more than this many devices.
    pub missing_guard_min: u64,
    /// How many pages may wait between a connector and the database writer.
    pub page_channel_capacity: Option<usize>,
    /// Per field, the sources in the order they win it when they disagree, e.g.
    /// `os_version = ["intune", "jamf"]`.
    pub field_priority: std::collections::BTreeMap<String, Vec<String>>,
}

impl Default for SyncSettings {
    fn default() -> Self {
        let guard = DeletionGuard::default();
        SyncSettings {
            missing_guard_share: guard.max_share,
            missing_guard_min: guard.min_count,
            page_channel_capacity: None,
            field_priority: Default::default(),
        }
    }
}

/// `[[authority]]`: a Schulträger, the owner of devices and the tenant boundary.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorityConfig {
    pub slug: String,
    pub name: String,
    /// `MM-DD`: the last day of the school year, the default due date of loans.
    #[serde(default)]
    pub school_year_end: Option<String>,
    /// Months after a person left until `bestand privacy purge` removes them (the deletion
    /// period of the authority's federal state). Unset: the purge refuses to guess.
    #[serde(default)]
    pub retention_months: Option<u32>,
    /// MAC addresses that many of the authority's devices report (docking stations,
    /// USB-Ethernet adapters): never used to match a record to a device (docs/sync.md).
    #[serde(default)]
    pub shared_macs: Vec<String>,
    /// `[authority.service_hours]`: the calendar and targets the ticket figures count in
    /// (docs/service-levels.md); `None` when the authority has none.
    #[serde(default)]
    pub service_hours: Option<ServiceHoursConfig>,
    #[serde(default, rename = "school")]
    pub schools: Vec<SchoolConfig>,
}

/// `[[authority.school]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchoolConfig {
    /// The official school number (Schulnummer), unique within the authority.
    pub number: String,
    pub name: String,
    #[serde(rename = "type")]
    pub school_type: SchoolType,
    /// Other names sources use for this school.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `MM-DD`: this school's last day of the school year, if not the authority's.
    #[serde(default)]
    pub school_year_end: Option<String>,
}

/// `[loans]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoanSettings {
    /// The accessories that may be handed out with a device (names as printed for staff).
    pub accessories: Vec<String>,
    /// The authority's loan agreement template (docs/loan-agreement.md); `None` prints the
    /// built-in German one. A relative path is relative to the config file's folder (resolved
    /// when the file is loaded); the template itself is read and checked when an agreement
    /// is printed.
    pub agreement_template: Option<PathBuf>,
}

impl Default for LoanSettings {
    fn default() -> Self {
        LoanSettings {
            accessories: bestand_core::loans::DEFAULT_ACCESSORIES
                .iter()
                .map(|name| name.to_string())
                .collect(),
            agreement_template: None,
        }
    }
}

impl Config {
    /// The loan rules: accessories from `[loans]`, school year ends from the authorities and
    /// schools (checked when the file was loaded; a value that does not parse is skipped).
    pub fn loan_policy(&self) -> bestand_core::loans::LoanPolicy {
        let mut policy = bestand_core::loans::LoanPolicy {
            accessories: self.loans.accessories.clone(),
            ..Default::default()
        };
        for authority in &self.authorities {
            if let Some(end) = authority
                .school_year_end
                .as_deref()
                .and_then(|e| e.parse().ok())
            {
                policy
                    .authority_year_ends
                    .insert(authority.slug.clone(), end);
            }
            for school in &authority.schools {
                if let Some(end) = school
                    .school_year_end
                    .as_deref()
                    .and_then(|e| e.parse().ok())
                {
                    policy
                        .school_year_ends
                        .insert((authority.slug.clone(), school.number.clone()), end);
                }
            }
        }
        policy
    }
}

fn check_loans(loans: &LoanSettings, authorities: &[AuthorityConfig], problems: &mut Vec<String>) {
    let mut seen = HashSet::new();
    for name in &loans.accessories {
        if name.trim().is_empty() {
            problems.push("[loans]: key `accessories`: names must not be empty".to_string());
        } else if !seen.insert(name.trim().to_lowercase()) {
            problems.push(format!(
                "[loans]: key `accessories`: \"{name}\" appears more than once"
            ));
        }
    }
    if loans
        .agreement_template
        .as_ref()
        .is_some_and(|path| path.as_os_str().is_empty())
    {
        problems.push(
            "[loans]: key `agreement_template`: must name a file (leave the key out for the \
             built-in template)"
                .to_string(),
        );
    }
    let year_end = |table: String, value: &Option<String>, problems: &mut Vec<String>| {
        if let Some(Err(message)) = value
            .as_deref()
            .map(str::parse::<bestand_core::loans::MonthDay>)
        {
            problems.push(format!("{table}: key `school_year_end`: {message}"));
        }
    };
    for authority in authorities {
        year_end(
            format!("[[authority]] \"{}\"", authority.slug),
            &authority.school_year_end,
            problems,
        );
        for school in &authority.schools {
            year_end(
                format!(
                    "[[authority.school]] {} of authority \"{}\"",
                    school.number, authority.slug
                ),
                &school.school_year_end,
                problems,
            );
        }
    }
}

/// The keys of a `[[source]]` table that every kind shares.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceCommon {
    pub name: String,
    pub kind: String,
    /// The slug of the authority whose devices this source holds.
    pub authority: String,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// A cron expression for the scheduler; checked by the scheduler, not here.
    pub schedule: Option<String>,
    pub missing_guard_share: Option<f64>,
    pub missing_guard_min: Option<u64>,
    /// Directory sources: the directory's school keys (UCS OU names, say) mapped to configured
    /// school numbers, for keys that are neither a school number, name nor alias.
    #[serde(default)]
    pub school_map: std::collections::BTreeMap<String, String>,
    /// Ticket sources: how long after a full read the next read is full again ("7d", "12h");
    /// default 7 days (docs/tickets.md).
    pub full_read_every: Option<String>,
    /// Ticket sources: group or tag → topic (`network`, `school_server`, ...).
    #[serde(default)]
    pub topics: std::collections::BTreeMap<String, String>,
    /// Ticket sources: group, owner login or tag → provider name.
    #[serde(default)]
    pub providers: std::collections::BTreeMap<String, String>,
    /// Ticket sources: regexes over the title with a named group `tag` or `serial`.
    #[serde(default)]
    pub title_patterns: Vec<String>,
}

fn enabled_by_default() -> bool {
    true
}

/// One `[[source]]`: the shared keys plus the checked settings of its kind.
#[derive(Clone)]
pub struct SourceConfig {
    pub common: SourceCommon,
    settings: SourceSettings,
    /// The kind-specific keys as written, for tools that show or re-serialize them.
    kind_table: toml::Table,
}

impl SourceConfig {
    pub fn name(&self) -> &str {
        &self.common.name
    }

    /// The kind-specific settings, already checked when the file was loaded.
    pub fn settings(&self) -> &SourceSettings {
        &self.settings
    }

    /// The kind-specific keys exactly as written in the file (names of secrets' variables and
    /// files, never secrets themselves).
    pub fn kind_table(&self) -> &toml::Table {
        &self.kind_table
    }
}

impl fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The raw table is left out: its Debug would bypass the kind's own redaction.
        f.debug_struct("SourceConfig")
            .field("common", &self.common)
            .field("settings", &self.settings)
            .finish()
    }
}

fn deserialize_table<T: DeserializeOwned>(table: &toml::Table) -> Result<T, String> {
    toml::Value::Table(table.clone())
        .try_into()
        .map_err(|error: toml::de::Error| error.message().trim_end().to_string())
}

/// Renders a toml error as `line L, column C, in [table]: message` plus the offending line,
/// with secrets on that line blanked, since the line is copied from the file.
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end();
    let Some(span) = error.span() else {
        return message.to_string();
    };
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |at| at + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |at| start + at);
    let line_number = text[..start].matches('\n').count() + 1;
    let column = text[line_start..start].chars().count() + 1;
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| line.starts_with('['))
        .map(|header| {
            header
                .split('#')
                .next()
                .unwrap_or(header)
                .trim()
                .to_string()
        })
        .unwrap_or_else(|| "the top level".to_string());
    format!(
        "line {line_number}, column {column}, in {table}: {message}\n    {line_number} | {}",
        redact_config_line(&text[line_start..line_end])
    )
}

/// Blanks the value of a config line whose key looks secret, and any URL password in it.
fn redact_config_line(line: &str) -> String {
    if let Some((key, _)) = line.split_once('=') {
        let name = key.trim().to_ascii_lowercase();
        let names_a_secret = ["secret", "password", "token"]
            .iter()
            .any(|word| name.contains(word));
        // `*_env` and `*_file` keys hold names of secrets, not secrets.
        if names_a_secret && !name.ends_with("_env") && !name.ends_with("_file") {
            return format!("{key}= ****");
        }
    }
    redact_url_passwords(line)
}

fn check_database(database: &DatabaseSettings, problems: &mut Vec<String>) {
    if database.max_connections == Some(0) {
        problems.push("[database]: key `max_connections`: must be at least 1".to_string());
    }
    if let Some(user) = &database.run_as {
        if user.trim().is_empty() {
            problems.push("[database]: key `run_as`: must name a system user".to_string());
        }
    }
    if let Some(url) = &database.url {
        // The URL itself is not echoed: it may hold a password.
        if url::Url::parse(url.expose()).is_err() {
            problems.push("[database]: key `url`: not a valid URL".to_string());
        } else if !(url.expose().starts_with("postgres://")
            || url.expose().starts_with("postgresql://"))
        {
            problems.push(
                "[database]: key `url`: must start with postgres:// or postgresql://".to_string(),
            );
        }
    }
}

fn check_sync(sync: &SyncSettings, problems: &mut Vec<String>) {
    check_share("[sync]", sync.missing_guard_share, problems);
    if sync.page_channel_capacity == Some(0) {
        problems.push("[sync]: key `page_channel_capacity`: must be at least 1".to_string());
    }
}

fn check_field_priority(sync: &SyncSettings, sources: &[SourceConfig], problems: &mut Vec<String>) {
    use bestand_core::sync::merge::PRIORITY_FIELDS;
    for (field, order) in &sync.field_priority {
        if !PRIORITY_FIELDS.contains(&field.as_str()) {
            problems.push(format!(
                "[sync.field_priority]: key `{field}`: not a field sources report (known: {})",
                PRIORITY_FIELDS.join(", ")
            ));
        }
        for name in order {
            if !sources.iter().any(|source| source.name() == name) {
                problems.push(format!(
                    "[sync.field_priority]: key `{field}`: no source named \"{name}\""
                ));
            }
        }
    }
}

fn check_share(table: &str, share: f64, problems: &mut Vec<String>) {
    if !(0.0..=1.0).contains(&share) {
        problems.push(format!(
            "{table}: key `missing_guard_share`: {share} is outside 0..=1 (0.1 means 10 %)"
        ));
    }
}

/// Slugs name authorities and sources on the command line and in the database.
fn is_slug(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn check_slug(table: &str, key: &str, value: &str, problems: &mut Vec<String>) {
    if !is_slug(value) {
        problems.push(format!(
            "{table}: key `{key}`: \"{value}\" is not a valid name; use lowercase letters, \
             digits, `_` and `-`, starting with a letter or digit"
        ));
    }
}

fn check_authorities(authorities: &[AuthorityConfig], problems: &mut Vec<String>) {
    let mut slugs = HashMap::new();
    for (index, authority) in authorities.iter().enumerate() {
        let table = format!("[[authority]] #{}", index + 1);
        check_slug(&table, "slug", &authority.slug, problems);
        if let Some(first) = slugs.insert(authority.slug.as_str(), index + 1) {
            problems.push(format!(
                "{table}: key `slug`: \"{}\" is already used by [[authority]] #{first}",
                authority.slug
            ));
        }
        if authority.name.trim().is_empty() {
            problems.push(format!("{table}: key `name`: must not be empty"));
        }
        for mac in &authority.shared_macs {
            if bestand_core::normalize::mac_address(Some(mac)).is_none() {
                problems.push(format!(
                    "{table}: key `shared_macs`: \"{mac}\" is not a MAC address \
                     (12 hex digits, e.g. \"a4:83:e7:12:34:56\")"
                ));
            }
        }
        if let Some(Err(found)) = authority
            .service_hours
            .as_ref()
            .map(|hours| hours.resolve(&service_hours_table(authority)))
        {
            problems.extend(found);
        }
        check_schools(authority, problems);
    }
}

fn service_hours_table(authority: &AuthorityConfig) -> String {
    format!(
        "[authority.service_hours] of authority \"{}\"",
        authority.slug
    )
}

fn check_schools(authority: &AuthorityConfig, problems: &mut Vec<String>) {
    let table = format!("[[authority.school]] of authority \"{}\"", authority.slug);
    let mut numbers = HashSet::new();
    // Sources find schools by name or alias, so one spelling must lead to one school.
    let mut spellings: HashMap<String, &str> = HashMap::new();
    for school in &authority.schools {
        if school.number.trim().is_empty() {
            problems.push(format!(
                "{table}: key `number`: must not be empty (school \"{}\")",
                school.name
            ));
        }
        if !numbers.insert(school.number.trim()) {
            problems.push(format!(
                "{table}: key `number`: school number \"{}\" appears more than once",
                school.number
            ));
        }
        if school.name.trim().is_empty() {
            problems.push(format!(
                "{table}: key `name`: must not be empty (school {})",
                school.number
            ));
        }
        let names = std::iter::once(&school.name).chain(&school.aliases);
        for spelling in names
            .map(|name| name.trim().to_lowercase())
            .collect::<BTreeSet<_>>()
        {
            if let Some(other) = spellings.insert(spelling.clone(), &school.number) {
                problems.push(format!(
                    "{table}: key `aliases`: \"{spelling}\" names both school {other} and \
                     school {}",
                    school.number
                ));
            }
        }
    }
}

/// Splits each `[[source]]` table into its common keys and its kind's settings.
fn split_sources(tables: Vec<toml::Table>, problems: &mut Vec<String>) -> Vec<SourceConfig> {
    let mut sources = Vec::new();
    for (index, mut kind_table) in tables.into_iter().enumerate() {
        let label = match kind_table.get("name").and_then(toml::Value::as_str) {
            Some(name) => format!("[[source]] #{} \"{name}\"", index + 1),
            None => format!("[[source]] #{}", index + 1),
        };
        let mut common_table = toml::Table::new();
        for key in SOURCE_COMMON_KEYS {
            if let Some(value) = kind_table.remove(*key) {
                common_table.insert((*key).to_string(), value);
            }
        }
        let common: SourceCommon = match deserialize_table(&common_table) {
            Ok(common) => common,
            Err(message) => {
                problems.push(format!("{label}: {message}"));
                continue;
            }
        };
        match SourceSettings::from_kind(&common.kind, &kind_table) {
            Ok(settings) => sources.push(SourceConfig {
                common,
                settings,
                kind_table,
            }),
            Err(message) => problems.push(format!("{label}: {message}")),
        }
    }
    sources
}

fn check_sources(
    sources: &[SourceConfig],
    authorities: &[AuthorityConfig],
    problems: &mut Vec<String>,
) {
    let mut names = HashSet::new();
    for source in sources {
        let common = &source.common;
        let table = format!("[[source]] \"{}\"", common.name);
        check_slug(&table, "name", &common.name, problems);
        if !names.insert(common.name.as_str()) {
            problems.push(format!(
                "{table}: key `name`: duplicate source name \"{}\"",
                common.name
            ));
        }
        if !authorities
            .iter()
            .any(|known| known.slug == common.authority)
        {
            let known: Vec<&str> = authorities
                .iter()
                .map(|known| known.slug.as_str())
                .collect();
            problems.push(format!(
                "{table}: key `authority`: unknown authority \"{}\"; known authorities: {}",
                common.authority,
                if known.is_empty() {
                    "none (add an [[authority]] table)".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
        if let Some(share) = common.missing_guard_share {
            check_share(&table, share, problems);
        }
        crate::tickets::check_ticket_keys(&table, common, problems);
        if let Some(authority) = authorities
            .iter()
            .find(|known| known.slug == common.authority)
        {
            for (directory_key, number) in &common.school_map {
                if !authority
                    .schools
                    .iter()
                    .any(|school| &school.number == number)
                {
                    problems.push(format!(
                        "{table}: key `school_map`: \"{directory_key}\" maps to school number \
                         \"{number}\", which authority \"{}\" does not have",
                        authority.slug
                    ));
                }
            }
        }
    }
}
