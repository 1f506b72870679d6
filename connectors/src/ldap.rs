//! Shared LDAP plumbing for the directory connectors (UCS@school, IServ): one place that knows
//! how to reach a server safely (TLS with a chosen CA, simple bind with a secret), how to read
//! large subtrees (RFC 2696 paged results on one connection) and how to turn LDAP result codes
//! into messages that say which server, which search and what to change.
//!
//! TLS goes through rustls (ldap3's `tls-rustls-ring` feature) rather than native-tls: rustls
//! takes a root store we build ourselves, so `ca_file` can name exactly the CA a school server's
//! self-signed certificate chains to without adding it to the machine's store, and it uses the
//! same `ring` provider as reqwest here. There is deliberately no "skip verification" switch.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ldap3::adapters::PagedResults;
use ldap3::{
    Ldap, LdapConnAsync, LdapConnSettings, LdapError, ResultEntry, Scope, SearchEntry,
    SearchOptions, SearchStream,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::secret::{resolve_secret, SecretError};

pub use ldap3::ldap_escape;

/// LDAP's own default ports; `ldaps` may be overridden per connector (IServ uses 10636).
const LDAP_PORT: u16 = 389;
const LDAPS_PORT: u16 = 636;

/// The keys of a `[[source]]` table that say how to reach and bind to a directory, declared
/// once and flattened (`#[serde(flatten)]`) into each LDAP connector's config, which keeps
/// `deny_unknown_fields` (see `request_keys` for why this works one level deep only).
#[derive(Debug, Clone, Deserialize)]
pub struct LdapKeys {
    /// `ldaps://host[:port]`, or `ldap://host[:port]` together with `starttls = true`;
    /// nothing after the host.
    pub url: String,
    /// The read account's DN.
    pub bind_dn: String,
    /// Name of the environment variable that holds the bind password.
    #[serde(default)]
    pub bind_password_env: Option<String>,
    /// Path of a file that holds the bind password (a trailing newline is ignored).
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    /// Upgrade an `ldap://` connection with StartTLS before binding.
    #[serde(default)]
    pub starttls: bool,
    /// PEM file with the CA certificate(s) to trust instead of the system store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Entries per page of the paged-results control, and records per page handed to the
    /// sync engine. Must stay below the server's size limit for the bind account.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Time limit for opening the connection (TCP, TLS, StartTLS), in seconds.
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// Longest wait for any answer of the server, in seconds; also the time limit sent with
    /// each search (page).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_page_size() -> u32 {
    500
}

fn default_connect_timeout_secs() -> u64 {
    10
}

fn default_timeout_secs() -> u64 {
    120
}

impl LdapKeys {
    /// The connection these keys describe; an `ldaps://` URL without a port gets
    /// `default_ldaps_port` (636 unless the product says otherwise).
    pub(crate) fn connection(&self, default_ldaps_port: u16) -> ConnectionSpec<'_> {
        ConnectionSpec {
            url: &self.url,
            default_ldaps_port,
            starttls: self.starttls,
            ca_file: self.ca_file.as_deref(),
            bind_dn: &self.bind_dn,
            bind_password_env: self.bind_password_env.as_deref(),
            bind_password_file: self.bind_password_file.as_deref(),
            page_size: self.page_size,
            connect_timeout_secs: self.connect_timeout_secs,
            timeout_secs: self.timeout_secs,
        }
    }
}

/// How to reach and bind to a directory, borrowed from a connector's `LdapKeys`.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionSpec<'a> {
    /// `ldap://host[:port]` or `ldaps://host[:port]`; nothing after the host.
    pub url: &'a str,
    /// The port an `ldaps://` URL without one gets (636 unless the product says otherwise).
    pub default_ldaps_port: u16,
    /// Upgrade an `ldap://` connection with the StartTLS extended operation.
    pub starttls: bool,
    /// A PEM file with the CA certificate(s) to trust instead of the system store.
    pub ca_file: Option<&'a Path>,
    pub bind_dn: &'a str,
    pub bind_password_env: Option<&'a str>,
    pub bind_password_file: Option<&'a Path>,
    /// Entries per page of the paged-results control.
    pub page_size: u32,
    pub connect_timeout_secs: u64,
    /// Longest wait for any one answer of the server; also sent as the search time limit.
    pub timeout_secs: u64,
}

/// Why an LDAP connection cannot be set up from the config. Names keys, never the password.
#[derive(Debug, thiserror::Error)]
pub enum LdapSetupError {
    #[error("`url` is not a usable LDAP URL: {0}")]
    Url(String),
    #[error("`starttls = true` needs an ldap:// URL; ldaps:// is encrypted from the start")]
    StartTlsOnLdaps,
    #[error(
        "`ca_file` is set but the connection is not encrypted; use an ldaps:// URL or \
         `starttls = true`"
    )]
    CaFileWithoutTls,
    #[error("`ca_file`: cannot read {}: {cause}", path.display())]
    CaFileUnreadable { path: PathBuf, cause: String },
    #[error("`ca_file`: {} holds no usable PEM certificate{cause}", path.display())]
    CaFileEmpty { path: PathBuf, cause: String },
    #[error("no CA certificates found in the system store; set `ca_file`")]
    NoSystemRoots,
    #[error("could not set up TLS: {0}")]
    Tls(String),
    #[error("`bind_dn` is empty")]
    BindDn,
    #[error("`{0}` must be at least 1")]
    Zero(&'static str),
    #[error("`page_size` must be at most {max}", max = i32::MAX)]
    PageSizeTooLarge,
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// Why talking to the server failed. Every variant names the server; search failures also
/// the base and the filter. The bind password never appears.
#[derive(Debug, thiserror::Error)]
pub enum LdapFailure {
    #[error("cannot connect to {server}: {cause}")]
    Connect { server: String, cause: String },
    #[error("no connection to {server} within {secs} s (`connect_timeout_secs`)")]
    ConnectTimeout { server: String, secs: u64 },
    #[error(
        "TLS with {server} failed: {cause} (the server's certificate must chain to {trusted})"
    )]
    Tls {
        server: String,
        cause: String,
        trusted: String,
    },
    #[error(
        "{server} rejected the bind as `{bind_dn}`: invalid credentials (LDAP result 49); \
         check `bind_dn` and the password"
    )]
    InvalidCredentials { server: String, bind_dn: String },
    #[error("bind as `{bind_dn}` at {server} failed: {cause}")]
    Bind {
        server: String,
        bind_dn: String,
        cause: String,
    },
    #[error(
        "{server}: search below `{base}` for {filter} hit the server's size limit \
         (sizeLimitExceeded, LDAP result 4); lower `page_size`, or raise the limit for the \
         bind account on the server"
    )]
    SizeLimit {
        server: String,
        base: String,
        filter: String,
    },
    #[error(
        "{server}: search below `{base}` for {filter} hit the time limit \
         (timeLimitExceeded, LDAP result 3); raise `timeout_secs` or lower `page_size`"
    )]
    TimeLimit {
        server: String,
        base: String,
        filter: String,
    },
    #[error(
        "{server}: search below `{base}` for {filter} was referred to {refs} (LDAP result 10); \
         referrals are not followed, point `url` at the server that holds the data"
    )]
    Referral {
        server: String,
        base: String,
        filter: String,
        refs: String,
    },
    #[error("{server}: search below `{base}` for {filter} got no answer within {secs} s (`timeout_secs`)")]
    Timeout {
        server: String,
        base: String,
        filter: String,
        secs: u64,
    },
    #[error("{server}: search below `{base}` for {filter} failed: {cause}")]
    Search {
        server: String,
        base: String,
        filter: String,
        cause: String,
    },
}

/// A configured, not yet connected directory server. Building it checks the config, resolves
/// the password and reads the CA file; it makes no network call.
pub struct LdapClient {
    url: url::Url,
    server: String,
    bind_dn: String,
    password: SecretString,
    tls: Option<Arc<ClientConfig>>,
    /// What the TLS config trusts, for error messages.
    trusted: String,
    starttls: bool,
    page_size: i32,
    connect_timeout: Duration,
    timeout: Duration,
}

impl fmt::Debug for LdapClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapClient")
            .field("server", &self.server)
            .field("bind_dn", &self.bind_dn)
            .field("tls", &self.tls.is_some())
            .field("trusted", &self.trusted)
            .field("starttls", &self.starttls)
            .field("page_size", &self.page_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl LdapClient {
    pub fn new(spec: ConnectionSpec<'_>) -> Result<LdapClient, LdapSetupError> {
        let url = parse_url(spec.url, spec.default_ldaps_port)?;
        let ldaps = url.scheme() == "ldaps";
        if ldaps && spec.starttls {
            return Err(LdapSetupError::StartTlsOnLdaps);
        }
        let encrypted = ldaps || spec.starttls;
        if spec.ca_file.is_some() && !encrypted {
            return Err(LdapSetupError::CaFileWithoutTls);
        }
        if spec.bind_dn.trim().is_empty() {
            return Err(LdapSetupError::BindDn);
        }
        for (key, value) in [
            ("page_size", u64::from(spec.page_size)),
            ("connect_timeout_secs", spec.connect_timeout_secs),
            ("timeout_secs", spec.timeout_secs),
        ] {
            if value == 0 {
                return Err(LdapSetupError::Zero(key));
            }
        }
        let page_size =
            i32::try_from(spec.page_size).map_err(|_| LdapSetupError::PageSizeTooLarge)?;
        let password = resolve_secret(
            "bind_password",
            spec.bind_password_env,
            spec.bind_password_file,
        )?;
        let (tls, trusted) = if encrypted {
            let (config, trusted) = tls_config(spec.ca_file)?;
            (Some(config), trusted)
        } else {
            (None, String::new())
        };
        Ok(LdapClient {
            server: server_label(&url),
            url,
            bind_dn: spec.bind_dn.trim().to_string(),
            password,
            tls,
            trusted,
            starttls: spec.starttls,
            page_size,
            connect_timeout: Duration::from_secs(spec.connect_timeout_secs),
            timeout: Duration::from_secs(spec.timeout_secs),
        })
    }

    /// `scheme://host:port`, for messages and logs.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Opens a connection and binds. Every search of one fetch should use the session this
    /// returns: paged-results cookies belong to the connection that issued them.
    pub async fn connect(&self) -> Result<LdapSession, LdapFailure> {
        let mut settings = LdapConnSettings::new().set_conn_timeout(self.connect_timeout);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(Arc::clone(tls));
        }
        settings = settings.set_starttls(self.starttls);
        if self.tls.is_none() {
            tracing::warn!(
                server = %self.server,
                "LDAP connection is not encrypted; use ldaps:// or starttls outside tests"
            );
        }
        let (connection, mut ldap) = LdapConnAsync::from_url_with_settings(settings, &self.url)
            .await
            .map_err(|error| self.connect_failure(error))?;
        let server = self.server.clone();
        tokio::spawn(async move {
            if let Err(error) = connection.drive().await {
                tracing::debug!(%server, %error, "LDAP connection ended with an error");
            }
        });
        let bound = ldap
            .with_timeout(self.timeout)
            .simple_bind(&self.bind_dn, self.password.expose_secret())
            .await;
        let bind_failure = |cause: String| LdapFailure::Bind {
            server: self.server.clone(),
            bind_dn: self.bind_dn.clone(),
            cause,
        };
        match bound {
            Ok(result) if result.rc == 0 => {}
            Ok(result) if result.rc == 49 => {
                return Err(LdapFailure::InvalidCredentials {
                    server: self.server.clone(),
                    bind_dn: self.bind_dn.clone(),
                })
            }
            Ok(result) if result.rc == 13 => {
                return Err(bind_failure(format!(
                    "{} (the server wants an encrypted connection: use ldaps:// or \
                     `starttls = true`)",
                    describe_result(result.rc, &result.text)
                )))
            }
            Ok(result) => return Err(bind_failure(describe_result(result.rc, &result.text))),
            Err(LdapError::Timeout { .. }) => {
                return Err(bind_failure(format!(
                    "no answer within {} s (`timeout_secs`)",
                    self.timeout.as_secs()
                )))
            }
            Err(error) => return Err(bind_failure(error.to_string())),
        }
        tracing::debug!(server = %self.server, bind_dn = %self.bind_dn, "LDAP bind succeeded");
        Ok(LdapSession {
            ldap,
            server: self.server.clone(),
            page_size: self.page_size,
            timeout: self.timeout,
        })
    }

    fn connect_failure(&self, error: LdapError) -> LdapFailure {
        let server = self.server.clone();
        match error {
            LdapError::Timeout { .. } => LdapFailure::ConnectTimeout {
                server,
                secs: self.connect_timeout.as_secs(),
            },
            LdapError::Io { source } => match tls_cause(&source) {
                Some(cause) => LdapFailure::Tls {
                    server,
                    cause,
                    trusted: self.trusted.clone(),
                },
                None => LdapFailure::Connect {
                    server,
                    cause: source.to_string(),
                },
            },
            LdapError::Rustls { source } => LdapFailure::Tls {
                server,
                cause: source.to_string(),
                trusted: self.trusted.clone(),
            },
            LdapError::LdapResult { result } if self.starttls => LdapFailure::Connect {
                server,
                cause: format!(
                    "StartTLS refused: {}",
                    describe_result(result.rc, &result.text)
                ),
            },
            other => LdapFailure::Connect {
                server,
                cause: other.to_string(),
            },
        }
    }
}

/// The rustls error inside an I/O error, if the I/O error is a failed handshake.
fn tls_cause(error: &std::io::Error) -> Option<String> {
    let inner = error.get_ref()?;
    let tls = inner.downcast_ref::<rustls::Error>()?;
    Some(match tls {
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
            "the server's certificate is not signed by a trusted CA (UnknownIssuer)".to_string()
        }
        other => other.to_string(),
    })
}

/// "sizeLimitExceeded (4): text" style text for a non-success result.
fn describe_result(rc: u32, text: &str) -> String {
    let name = match rc {
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        12 => "unavailableCriticalExtension",
        13 => "confidentialityRequired",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        80 => "other",
        _ => "error",
    };
    let text = text.trim();
    if text.is_empty() {
        format!("{name} (LDAP result {rc})")
    } else {
        format!("{name} (LDAP result {rc}): {text}")
    }
}

fn parse_url(text: &str, default_ldaps_port: u16) -> Result<url::Url, LdapSetupError> {
    let mut url =
        url::Url::parse(text.trim()).map_err(|error| LdapSetupError::Url(error.to_string()))?;
    match url.scheme() {
        "ldap" | "ldaps" => {}
        other => {
            return Err(LdapSetupError::Url(format!(
                "scheme `{other}` is not ldap or ldaps"
            )))
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(LdapSetupError::Url("it names no host".to_string()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(LdapSetupError::Url(
            "it must not carry credentials; use `bind_dn` and `bind_password_*`".to_string(),
        ));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(LdapSetupError::Url(
            "it must end after host and port; put the base DN in `base_dn`".to_string(),
        ));
    }
    if url.scheme() == "ldaps" && url.port().is_none() {
        url.set_port(Some(default_ldaps_port))
            .map_err(|()| LdapSetupError::Url("cannot set the port".to_string()))?;
    }
    Ok(url)
}

fn server_label(url: &url::Url) -> String {
    let default = if url.scheme() == "ldaps" {
        LDAPS_PORT
    } else {
        LDAP_PORT
    };
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port().unwrap_or(default)
    )
}

/// The TLS client config: the CAs in `ca_file` only, or else the system store.
fn tls_config(ca_file: Option<&Path>) -> Result<(Arc<ClientConfig>, String), LdapSetupError> {
    let mut roots = RootCertStore::empty();
    let trusted = match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|error| LdapSetupError::CaFileUnreadable {
                path: path.to_path_buf(),
                cause: error.to_string(),
            })?;
            let empty = |cause: String| LdapSetupError::CaFileEmpty {
                path: path.to_path_buf(),
                cause,
            };
            for certificate in CertificateDer::pem_slice_iter(&pem) {
                let certificate = certificate.map_err(|error| empty(format!(" ({error})")))?;
                roots
                    .add(certificate)
                    .map_err(|error| empty(format!(" ({error})")))?;
            }
            if roots.is_empty() {
                return Err(empty(String::new()));
            }
            format!("a CA in `ca_file` ({})", path.display())
        }
        None => {
            // Unreadable single certificates in the system store are skipped, as every TLS
            // client does; only a store with nothing usable is an error.
            let native = rustls_native_certs::load_native_certs();
            let (_added, _ignored) = roots.add_parsable_certificates(native.certs);
            if roots.is_empty() {
                return Err(LdapSetupError::NoSystemRoots);
            }
            "a CA in the system store (set `ca_file` for a private CA)".to_string()
        }
    };
    // An explicit provider, so a second rustls provider elsewhere in the binary cannot make
    // the process-wide default ambiguous.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| LdapSetupError::Tls(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((Arc::new(config), trusted))
}

/// One bound connection. Dropping it closes the connection.
pub struct LdapSession {
    ldap: Ldap,
    server: String,
    page_size: i32,
    timeout: Duration,
}

impl fmt::Debug for LdapSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapSession")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// One search: where, how deep, which entries, which attributes.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub base: String,
    pub scope: Scope,
    /// A complete filter; every value from config in it must have gone through
    /// [`ldap_escape`].
    pub filter: String,
    /// Exactly the attributes to read. Operational ones (`entryUUID`) are only returned when
    /// named here.
    pub attributes: Vec<String>,
    /// Treat a base that does not exist (noSuchObject) as an empty result, for optional
    /// containers such as a school without computers.
    pub missing_base_is_empty: bool,
}

impl SearchRequest {
    pub fn new(
        base: impl Into<String>,
        scope: Scope,
        filter: impl Into<String>,
        attributes: &[&str],
    ) -> SearchRequest {
        SearchRequest {
            base: base.into(),
            scope,
            filter: filter.into(),
            attributes: attributes.iter().map(|name| (*name).to_string()).collect(),
            missing_base_is_empty: false,
        }
    }

    pub fn missing_base_is_empty(mut self) -> SearchRequest {
        self.missing_base_is_empty = true;
        self
    }
}

impl LdapSession {
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Starts a paged search; read it with [`SearchCursor::next`].
    pub async fn search(&mut self, request: SearchRequest) -> Result<SearchCursor, LdapFailure> {
        let context = SearchContext {
            server: self.server.clone(),
            base: request.base.clone(),
            filter: request.filter.clone(),
            timeout: self.timeout,
            missing_base_is_empty: request.missing_base_is_empty,
        };
        // A filter that does not parse would only surface as a bare "filter parse error".
        if ldap3::parse_filter(&request.filter).is_err() {
            return Err(context.failure("the filter is not valid LDAP filter syntax".to_string()));
        }
        let time_limit = i32::try_from(self.timeout.as_secs()).unwrap_or(i32::MAX);
        let stream = self
            .ldap
            .with_timeout(self.timeout)
            .with_search_options(SearchOptions::new().timelimit(time_limit))
            .streaming_search_with(
                PagedResults::new(self.page_size),
                &request.base,
                request.scope,
                &request.filter,
                request.attributes,
            )
            .await
            .map_err(|error| context.error_failure(error))?;
        Ok(SearchCursor {
            stream,
            context,
            finished: false,
        })
    }

    /// Runs a search to its end and returns every entry; for small result sets such as the
    /// list of schools or a school's class groups.
    pub async fn search_all(&mut self, request: SearchRequest) -> Result<Vec<Entry>, LdapFailure> {
        let mut cursor = self.search(request).await?;
        let mut entries = Vec::new();
        while let Some(entry) = cursor.next().await? {
            entries.push(entry);
        }
        Ok(entries)
    }

    /// Says goodbye to the server; errors do not matter any more at this point.
    pub async fn close(mut self) {
        if let Err(error) = self.ldap.unbind().await {
            tracing::debug!(server = %self.server, %error, "LDAP unbind failed");
        }
    }
}

#[derive(Debug, Clone)]
struct SearchContext {
    server: String,
    base: String,
    filter: String,
    timeout: Duration,
    missing_base_is_empty: bool,
}

impl SearchContext {
    fn failure(&self, cause: String) -> LdapFailure {
        LdapFailure::Search {
            server: self.server.clone(),
            base: self.base.clone(),
            filter: self.filter.clone(),
            cause,
        }
    }

    fn error_failure(&self, error: LdapError) -> LdapFailure {
        match error {
            LdapError::Timeout { .. } => LdapFailure::Timeout {
                server: self.server.clone(),
                base: self.base.clone(),
                filter: self.filter.clone(),
                secs: self.timeout.as_secs(),
            },
            LdapError::LdapResult { result } => {
                self.result_failure(result.rc, &result.text, &result.refs)
            }
            other => self.failure(other.to_string()),
        }
    }

    fn result_failure(&self, rc: u32, text: &str, refs: &[String]) -> LdapFailure {
        let (server, base, filter) = (self.server.clone(), self.base.clone(), self.filter.clone());
        match rc {
            3 => LdapFailure::TimeLimit {
                server,
                base,
                filter,
            },
            4 => LdapFailure::SizeLimit {
                server,
                base,
                filter,
            },
            10 => LdapFailure::Referral {
                server,
                base,
                filter,
                refs: if refs.is_empty() {
                    "another server".to_string()
                } else {
                    refs.join(", ")
                },
            },
            _ => self.failure(describe_result(rc, text)),
        }
    }
}

/// A running paged search. The paged-results adapter asks for the next page by itself.
pub struct SearchCursor {
    stream: SearchStream<'static, String, Vec<String>>,
    context: SearchContext,
    finished: bool,
}

impl SearchCursor {
    /// The next entry, or `None` when the search is complete. Continuation references
    /// (referrals to other servers) are logged and skipped, never followed.
    pub async fn next(&mut self) -> Result<Option<Entry>, LdapFailure> {
        if self.finished {
            return Ok(None);
        }
        loop {
            let item = match self.stream.next().await {
                Ok(item) => item,
                Err(error) => {
                    self.finished = true;
                    return Err(self.context.error_failure(error));
                }
            };
            let Some(item) = item else {
                self.finished = true;
                return self.finish().await.map(|()| None);
            };
            if item.is_intermediate() {
                continue;
            }
            if item.is_ref() {
                let refs = ldap3::parse_refs(item.0);
                tracing::warn!(
                    server = %self.context.server,
                    base = %self.context.base,
                    refs = %refs.join(", "),
                    "LDAP search returned a referral to another server; not followed"
                );
                continue;
            }
            return Ok(Some(Entry::from_result(item)));
        }
    }

    async fn finish(&mut self) -> Result<(), LdapFailure> {
        let result = self.stream.finish().await;
        match result.rc {
            0 => Ok(()),
            32 if self.context.missing_base_is_empty => {
                tracing::debug!(
                    server = %self.context.server,
                    base = %self.context.base,
                    "LDAP search base does not exist; taken as empty"
                );
                Ok(())
            }
            rc => Err(self.context.result_failure(rc, &result.text, &result.refs)),
        }
    }
}

/// One directory entry with the attributes read, names folded to lower case (servers return
/// them in whatever case their schema spells them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub dn: String,
    attributes: HashMap<String, Vec<String>>,
}

impl Entry {
    pub fn new(dn: impl Into<String>) -> Entry {
        Entry {
            dn: dn.into(),
            attributes: HashMap::new(),
        }
    }

    /// Adds values (for building entries in tests and mappings).
    pub fn with(mut self, name: &str, values: &[&str]) -> Entry {
        self.attributes
            .entry(name.to_ascii_lowercase())
            .or_default()
            .extend(values.iter().map(|value| (*value).to_string()));
        self
    }

    fn from_result(item: ResultEntry) -> Entry {
        let entry = SearchEntry::construct(item);
        let mut attributes: HashMap<String, Vec<String>> = HashMap::new();
        for (name, values) in entry.attrs {
            attributes
                .entry(name.to_ascii_lowercase())
                .or_default()
                .extend(values);
        }
        Entry {
            dn: entry.dn,
            attributes,
        }
    }

    /// Every value of `name`, as the server sent them.
    pub fn values(&self, name: &str) -> &[String] {
        self.attributes
            .get(&name.to_ascii_lowercase())
            .map_or(&[], Vec::as_slice)
    }

    /// The first value of `name` that is not blank, trimmed.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.values(name)
            .iter()
            .map(|value| value.trim())
            .find(|value| !value.is_empty())
    }

    pub fn has_object_class(&self, class: &str) -> bool {
        self.values("objectClass")
            .iter()
            .any(|value| value.trim().eq_ignore_ascii_case(class))
    }

    /// The named attributes that the entry has, as JSON (`{"dn": ..., "name": [values]}`),
    /// spelled as `names` spells them; for device payloads.
    pub fn to_json(&self, names: &[&str]) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        object.insert("dn".to_string(), serde_json::Value::from(self.dn.clone()));
        for name in names {
            let values = self.values(name);
            if !values.is_empty() {
                object.insert(
                    (*name).to_string(),
                    serde_json::Value::from(values.to_vec()),
                );
            }
        }
        serde_json::Value::Object(object)
    }
}

/// A DN in a form two spellings of the same DN share: lower case, no blanks around the `,`
/// and `=` separators. Enough to compare `uniqueMember` values with entry DNs; it does not
/// resolve attribute-type aliases or hex escapes.
pub fn normalize_dn(dn: &str) -> String {
    split_rdns(dn)
        .iter()
        .map(|rdn| match split_unescaped(rdn, '=') {
            Some((name, value)) => format!(
                "{}={}",
                name.trim().to_lowercase(),
                value.trim().to_lowercase()
            ),
            None => rdn.trim().to_lowercase(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The attribute name and unescaped value of the first RDN: `cn=Klasse 5a,ou=groups,...` →
/// `("cn", "Klasse 5a")`. Multi-valued RDNs give their whole first component.
pub fn first_rdn(dn: &str) -> Option<(String, String)> {
    let rdns = split_rdns(dn);
    let first = rdns.first()?;
    let (name, value) = split_unescaped(first, '=')?;
    Some((name.trim().to_string(), unescape_dn_value(value.trim())))
}

/// Splits at unescaped commas (RFC 4514 escapes with a backslash).
fn split_rdns(dn: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for character in dn.chars() {
        if escaped {
            current.push(character);
            escaped = false;
        } else if character == '\\' {
            current.push(character);
            escaped = true;
        } else if character == ',' {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(character);
        }
    }
    if !current.trim().is_empty() || !parts.is_empty() {
        parts.push(current);
    }
    parts
}

/// Splits at the first unescaped `separator`.
fn split_unescaped(text: &str, separator: char) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (index, character) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if character == '\\' {
            escaped = true;
        } else if character == separator {
            return Some((&text[..index], &text[index + character.len_utf8()..]));
        }
    }
    None
}

/// Undoes RFC 4514 escapes: `\,` and friends, and `\XX` hex pairs (which may form UTF-8).
fn unescape_dn_value(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'\\' && index + 1 < bytes.len() {
            let hex = bytes
                .get(index + 1..index + 3)
                .and_then(|pair| std::str::from_utf8(pair).ok())
                .and_then(|pair| u8::from_str_radix(pair, 16).ok());
            match hex {
                Some(byte) => {
                    out.push(byte);
                    index += 3;
                }
                None => {
                    out.push(bytes[index + 1]);
                    index += 2;
                }
            }
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `name` can stand in an attribute list: a descriptor (letters, digits, hyphens,
/// starting with a letter) or a numeric OID.
pub fn is_attribute_name(name: &str) -> bool {
    let descriptor = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let oid = !name.is_empty()
        && name
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()));
    descriptor || oid
}

/// Checks a filter from config (`users_filter`, say) so a typo fails at startup.
pub fn check_filter(filter: &str) -> Result<(), String> {
    let trimmed = filter.trim();
    if !trimmed.starts_with('(') || !trimmed.ends_with(')') {
        return Err("a filter must be enclosed in parentheses".to_string());
    }
    ldap3::parse_filter(trimmed)
        .map(|_| ())
        .map_err(|_| "not valid LDAP filter syntax".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str) -> ConnectionSpec<'_> {
        ConnectionSpec {
            url,
            default_ldaps_port: 636,
            starttls: false,
            ca_file: None,
            bind_dn: "cn=reader,dc=example",
            bind_password_env: Some("BESTAND_LDAP_TEST_PASSWORD_THAT_IS_NOT_SET"),
            bind_password_file: None,
            page_size: 100,
            connect_timeout_secs: 5,
            timeout_secs: 30,
        }
    }

    #[test]
    fn urls_are_checked_and_get_their_default_ports() {
        assert_eq!(
            server_label(&parse_url("ldaps://iserv.example", 10636).unwrap()),
            "ldaps://iserv.example:10636"
        );
        assert_eq!(
            server_label(&parse_url("ldap://ucs.example/", 636).unwrap()),
            "ldap://ucs.example:389"
        );
        assert_eq!(
            server_label(&parse_url("ldaps://ucs.example:7636", 10636).unwrap()),
            "ldaps://ucs.example:7636"
        );
        for bad in [
            "https://ucs.example",
            "ldap://",
            "ldap://user:geheim@ucs.example",
            "ldap://ucs.example/dc=example",
            "ldap://ucs.example?x",
        ] {
            let error = parse_url(bad, 636).unwrap_err().to_string();
            assert!(error.starts_with("`url`"), "{bad}: {error}");
            assert!(!error.contains("geheim"), "{error}");
        }
    }

    #[test]
    fn tls_settings_must_fit_the_url() {
        let mut starttls = spec("ldaps://ucs.example");
        starttls.starttls = true;
        assert!(matches!(
            LdapClient::new(starttls).unwrap_err(),
            LdapSetupError::StartTlsOnLdaps
        ));
        let mut ca = spec("ldap://ucs.example");
        ca.ca_file = Some(Path::new("/nonexistent/ca.pem"));
        assert!(matches!(
            LdapClient::new(ca).unwrap_err(),
            LdapSetupError::CaFileWithoutTls
        ));
        let mut zero = spec("ldap://ucs.example");
        zero.page_size = 0;
        assert_eq!(
            LdapClient::new(zero).unwrap_err().to_string(),
            "`page_size` must be at least 1"
        );
        let unset = LdapClient::new(spec("ldap://ucs.example")).unwrap_err();
        assert!(unset.to_string().contains("bind_password_env"), "{unset}");
    }

    #[test]
    fn dns_compare_regardless_of_case_and_blanks() {
        assert_eq!(
            normalize_dn("UID=Thomas.Klein, cn=lehrer, cn=users, ou=GSL, dc=ucs, dc=test"),
            normalize_dn("uid=thomas.klein,cn=lehrer,cn=users,ou=GSL,dc=ucs,dc=test")
        );
        assert_eq!(
            normalize_dn("cn=lehrer und mitarbeiter,ou=X"),
            "cn=lehrer und mitarbeiter,ou=x"
        );
        assert_eq!(
            first_rdn("cn=Klasse 7c,ou=groups,dc=x"),
            Some(("cn".to_string(), "Klasse 7c".to_string()))
        );
        assert_eq!(
            first_rdn(r"cn=Smith\, John,ou=users"),
            Some(("cn".to_string(), "Smith, John".to_string()))
        );
        assert_eq!(
            first_rdn(r"cn=M\C3\BCller,ou=users"),
            Some(("cn".to_string(), "Müller".to_string()))
        );
        assert_eq!(first_rdn(""), None);
    }

    #[test]
    fn attribute_names_and_filters() {
        assert!(is_attribute_name("univentionFreeAttribute1"));
        assert!(is_attribute_name("1.3.6.1.4.1.99999.1.7"));
        assert!(!is_attribute_name("cn)(uid=*"));
        assert!(!is_attribute_name(""));
        assert!(check_filter("(objectClass=memberOfGroup)").is_ok());
        assert!(check_filter("objectClass=memberOfGroup").is_err());
        assert!(check_filter("(&(a=b)").is_err());
        assert_eq!(ldap_escape("verwaltung (alt*)"), r"verwaltung \28alt\2a\29");
    }

    #[test]
    fn entries_read_case_insensitively() {
        let entry = Entry::new("cn=x")
            .with("objectClass", &["top", "ucsschoolStudent"])
            .with("macAddress", &[" ", "aa:bb"]);
        assert!(entry.has_object_class("UCSSCHOOLSTUDENT"));
        assert_eq!(entry.first("macaddress"), Some("aa:bb"));
        assert_eq!(entry.values("missing"), &[] as &[String]);
        assert_eq!(
            entry.to_json(&["macAddress", "aRecord"]),
            serde_json::json!({"dn": "cn=x", "macAddress": [" ", "aa:bb"]})
        );
    }
}
