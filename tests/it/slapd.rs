//! A real OpenLDAP `slapd` for the LDAP connector tests, so they exercise the wire protocol,
//! paging, TLS and result codes instead of a fake.
//!
//! One server per test process, started on first use: its own config (`slapd.conf` via `-f`),
//! schema and mdb databases in a fresh folder under `target/tmp`, on free localhost ports,
//! never touching a system slapd or `/etc/ldap` beyond reading the stock schema files. Four
//! databases are loaded with `slapadd` before it starts: `dc=ucs,dc=test` (UCS@school),
//! `dc=gsl-iserv,dc=test` and `dc=gym-iserv,dc=test` (two schools' IServs) and
//! `dc=edge,dc=test` (edge cases); tests only read, so they share them. A throwaway CA and server certificate (rcgen) serve `ldaps://` and StartTLS.
//!
//! A static is never dropped, so slapd cannot be stopped from a destructor. Instead it runs
//! under a small `sh` wrapper whose standard input is a pipe from this process: when the test
//! process ends in any way, even by SIGKILL, the pipe closes and the wrapper kills slapd.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bestand_connectors::{spawn_directory_fetch, DirectoryConnector};
use bestand_core::person::{DirectorySchool, NotPersonCounts, PersonRecord};
use bestand_core::sync::{DirectoryItem, FetchFailure, PersonPage};

pub const UCS_BASE: &str = "dc=ucs,dc=test";
pub const UCS_BIND_DN: &str = "uid=bestand-sync,cn=users,dc=ucs,dc=test";
pub const UCS_PASSWORD: &str = "Ucs-Lese-Passwort*1";

pub const ISERV_BASE: &str = "dc=gsl-iserv,dc=test";
pub const ISERV_BIND_DN: &str = "cn=bestand,ou=ldap,dc=gsl-iserv,dc=test";
pub const ISERV_PASSWORD: &str = "Iserv-Lese-Passwort(2)";

/// A second IServ, of another school of the same authority (same bind password).
pub const ISERV_GYM_BASE: &str = "dc=gym-iserv,dc=test";
pub const ISERV_GYM_BIND_DN: &str = "cn=bestand,ou=ldap,dc=gym-iserv,dc=test";

pub const EDGE_BASE: &str = "dc=edge,dc=test";
pub const EDGE_BIND_DN: &str = "uid=reader,dc=edge,dc=test";
/// Allowed two entries per search, paged or not, by `limits` in the generated slapd.conf.
pub const EDGE_LIMITED_BIND_DN: &str = "uid=limited,dc=edge,dc=test";
/// Allowed two entries per search unless the search is paged.
pub const EDGE_PAGED_BIND_DN: &str = "uid=paged,dc=edge,dc=test";
pub const EDGE_PASSWORD: &str = "Edge-Lese-Passwort";

const DATABASES: &[(&str, &str)] = &[
    (UCS_BASE, "ucs.ldif"),
    (ISERV_BASE, "iserv.ldif"),
    (ISERV_GYM_BASE, "iserv-gym.ldif"),
    (EDGE_BASE, "edge.ldif"),
];

/// How long the server may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The running test server.
pub struct Slapd {
    /// `ldap://127.0.0.1:<port>` (plain; StartTLS available).
    pub ldap_url: String,
    /// `ldaps://127.0.0.1:<port>`.
    pub ldaps_url: String,
    /// The CA that signed the server's certificate.
    pub ca_file: PathBuf,
    /// A CA that signed nothing the server presents.
    pub other_ca_file: PathBuf,
    pub dir: PathBuf,
    /// Held for the life of the process; its pipe closing is what stops slapd.
    _wrapper: Mutex<Child>,
}

/// The shared server, started by the first test that asks.
pub fn slapd() -> &'static Slapd {
    static SLAPD: OnceLock<Result<Slapd, String>> = OnceLock::new();
    match SLAPD.get_or_init(start) {
        Ok(slapd) => slapd,
        Err(error) => panic!("the test slapd did not start: {error}"),
    }
}

impl Slapd {
    /// Writes `content` to a file of its own for one test (a password file, say) and returns
    /// its path. Environment variables would race between tests.
    pub fn secret_file(&self, name: &str, content: &str) -> PathBuf {
        let folder = self.dir.join("secrets");
        std::fs::create_dir_all(&folder).expect("create the secrets folder");
        let path = folder.join(name);
        // Tests sharing the server write the same file at the same time; written in place, one
        // test could read it between another's truncation and its write (an "empty" secret).
        // A rename replaces the file whole.
        let staged = folder.join(format!("{name}.{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&staged, format!("{content}\n")).expect("write a secret file");
        std::fs::rename(&staged, &path).expect("put the secret file in place");
        path
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ldap")
}

fn program(name: &str) -> Result<PathBuf, String> {
    let sbin = Path::new("/usr/sbin").join(name);
    if sbin.is_file() {
        return Ok(sbin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|folder| folder.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            format!("`{name}` is not installed (Debian: apt-get install slapd ldap-utils)")
        })
}

fn start() -> Result<Slapd, String> {
    let slapd = program("slapd")?;
    let slapadd = program("slapadd")?;
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    remove_stale_folders(root);
    let dir = root.join(format!("slapd-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("clear {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;

    let certificates = write_certificates(&dir)?;
    let config = dir.join("slapd.conf");
    std::fs::write(&config, slapd_conf(&dir, &certificates))
        .map_err(|e| format!("write {}: {e}", config.display()))?;
    // slapadd reads the whole config, so every database folder must exist before the first.
    for index in 0..DATABASES.len() {
        let folder = dir.join(format!("db{index}"));
        std::fs::create_dir_all(&folder)
            .map_err(|e| format!("create {}: {e}", folder.display()))?;
    }
    for (suffix, ldif) in DATABASES {
        let output = Command::new(&slapadd)
            .arg("-f")
            .arg(&config)
            .args(["-b", suffix, "-l"])
            .arg(fixtures().join(ldif))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run slapadd: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "slapadd of {ldif} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }

    // Free ports can be taken between asking and binding; a few tries make that harmless.
    let mut last_error = String::new();
    for _ in 0..3 {
        let (ldap_port, ldaps_port) = free_ports()?;
        match launch(&slapd, &config, &dir, ldap_port, ldaps_port) {
            Ok(wrapper) => {
                return Ok(Slapd {
                    ldap_url: format!("ldap://127.0.0.1:{ldap_port}"),
                    ldaps_url: format!("ldaps://127.0.0.1:{ldaps_port}"),
                    ca_file: certificates.ca,
                    other_ca_file: certificates.other_ca,
                    dir,
                    _wrapper: Mutex::new(wrapper),
                })
            }
            Err(error) => last_error = error,
        }
    }
    Err(last_error)
}

/// Starts slapd under the wrapper and waits until both ports accept connections.
fn launch(
    slapd: &Path,
    config: &Path,
    dir: &Path,
    ldap_port: u16,
    ldaps_port: u16,
) -> Result<Child, String> {
    let log = dir.join("slapd.log");
    let urls = format!("ldap://127.0.0.1:{ldap_port}/ ldaps://127.0.0.1:{ldaps_port}/");
    // fd 3 keeps the pipe for the watcher: a background job's own stdin is /dev/null. `-d`
    // keeps slapd in the foreground (it would detach otherwise) and logs to the file.
    const WRAPPER: &str = r#"exec 3<&0
"$0" -f "$1" -h "$2" -d stats </dev/null 3<&- >"$3" 2>&1 &
pid=$!
(cat <&3 >/dev/null; kill "$pid" 2>/dev/null) &
exec 3<&-
wait "$pid""#;
    let mut wrapper = Command::new("sh")
        .arg("-c")
        .arg(WRAPPER)
        .arg(slapd)
        .arg(config)
        .arg(&urls)
        .arg(&log)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start sh for slapd: {e}"))?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = wrapper.try_wait() {
            return Err(format!("slapd exited ({status}): {}", log_tail(&log)));
        }
        let listening = [ldap_port, ldaps_port].iter().all(|port| {
            let address = SocketAddr::from(([127, 0, 0, 1], *port));
            TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok()
        });
        if listening {
            return Ok(wrapper);
        }
        if Instant::now() > deadline {
            let _ = wrapper.kill();
            return Err(format!(
                "slapd did not listen within {START_TIMEOUT:?}: {}",
                log_tail(&log)
            ));
        }
        // Polling; a blocking sleep is fine here, this runs once before any test talks LDAP.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn log_tail(log: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(log) {
        let _ = file.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Two ports nobody listens on right now.
fn free_ports() -> Result<(u16, u16), String> {
    let first = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("find a free port: {e}"))?;
    let second = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("find a free port: {e}"))?;
    let port = |listener: &TcpListener| {
        listener
            .local_addr()
            .map(|address| address.port())
            .map_err(|e| format!("find a free port: {e}"))
    };
    Ok((port(&first)?, port(&second)?))
}

/// Folders of earlier test processes that are gone (their slapd died with them).
fn remove_stale_folders(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("slapd-") else {
            continue;
        };
        let alive = Path::new("/proc").join(pid).exists();
        if !alive && pid.parse::<u32>().is_ok() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

struct Certificates {
    ca: PathBuf,
    other_ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

/// A CA, a server certificate for 127.0.0.1 and localhost signed by it, and an unrelated CA.
fn write_certificates(dir: &Path) -> Result<Certificates, String> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

    let error = |e: rcgen::Error| format!("generate test certificates: {e}");
    let ca = |name: &str| -> Result<(rcgen::Certificate, KeyPair), String> {
        let key = KeyPair::generate().map_err(error)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(error)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let certificate = params.self_signed(&key).map_err(error)?;
        Ok((certificate, key))
    };
    let (ca_cert, ca_key) = ca("bestand test CA")?;
    let (other_cert, _other_key) = ca("bestand unrelated test CA")?;
    let server_key = KeyPair::generate().map_err(error)?;
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .map_err(error)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let server_cert = params
        .signed_by(&server_key, &ca_cert, &ca_key)
        .map_err(error)?;

    let paths = Certificates {
        ca: dir.join("ca.pem"),
        other_ca: dir.join("other-ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
    };
    for (path, content) in [
        (&paths.ca, ca_cert.pem()),
        (&paths.other_ca, other_cert.pem()),
        (&paths.server_cert, server_cert.pem()),
        (&paths.server_key, server_key.serialize_pem()),
    ] {
        std::fs::write(path, content).map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    Ok(paths)
}

fn slapd_conf(dir: &Path, certificates: &Certificates) -> String {
    let quoted = |path: &Path| format!("\"{}\"", path.display());
    let mut conf = String::new();
    for schema in ["core", "cosine", "inetorgperson", "nis"] {
        conf.push_str(&format!("include /etc/ldap/schema/{schema}.schema\n"));
    }
    conf.push_str(&format!(
        "include {}\n",
        quoted(&fixtures().join("bestand-test.schema"))
    ));
    conf.push_str(&format!(
        "pidfile {}\nargsfile {}\n",
        quoted(&dir.join("slapd.pid")),
        quoted(&dir.join("slapd.args"))
    ));
    conf.push_str("modulepath /usr/lib/ldap\nmoduleload back_mdb\n");
    conf.push_str(&format!(
        "TLSCACertificateFile {}\nTLSCertificateFile {}\nTLSCertificateKeyFile {}\n",
        quoted(&certificates.ca),
        quoted(&certificates.server_cert),
        quoted(&certificates.server_key)
    ));
    for (index, (suffix, _)) in DATABASES.iter().enumerate() {
        conf.push_str(&format!(
            "\ndatabase mdb\nsuffix \"{suffix}\"\ndirectory {}\nmaxsize 16777216\n",
            quoted(&dir.join(format!("db{index}")))
        ));
        if *suffix == EDGE_BASE {
            conf.push_str(&format!(
                "limits dn.exact=\"{EDGE_LIMITED_BIND_DN}\" size.soft=2 size.hard=2 \
                 size.prtotal=2\n\
                 limits dn.exact=\"{EDGE_PAGED_BIND_DN}\" size.soft=2 size.hard=2 \
                 size.prtotal=unlimited\n"
            ));
        }
        // Only bound accounts read, as on a real UCS or IServ.
        conf.push_str(
            "access to attrs=userPassword by anonymous auth by * none\n\
             access to * by users read by * none\n",
        );
    }
    conf
}

/// Everything one directory fetch sent.
#[derive(Debug)]
pub struct DirectoryRead {
    pub schools: Vec<DirectorySchool>,
    pub pages: Vec<PersonPage>,
    pub not_persons: NotPersonCounts,
    pub end: Result<u64, FetchFailure>,
}

impl DirectoryRead {
    pub fn persons(&self) -> Vec<&PersonRecord> {
        self.pages.iter().flat_map(|page| &page.records).collect()
    }

    /// The person with login `username`; panics naming who was there instead.
    pub fn person(&self, username: &str) -> &PersonRecord {
        let persons = self.persons();
        persons
            .iter()
            .find(|person| person.username.as_deref() == Some(username))
            .copied()
            .unwrap_or_else(|| {
                let names: Vec<_> = persons.iter().map(|p| p.username.clone()).collect();
                panic!("no person `{username}` among {names:?}")
            })
    }

    pub fn usernames(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .persons()
            .iter()
            .filter_map(|person| person.username.clone())
            .collect();
        names.sort();
        names
    }

    pub fn failure(&self) -> &FetchFailure {
        match &self.end {
            Err(failure) => failure,
            Ok(total) => panic!("expected a failed read, it completed with {total} persons"),
        }
    }
}

/// Runs `connector` through `spawn_directory_fetch` and collects what it sends.
pub async fn read_directory(connector: Arc<dyn DirectoryConnector>) -> DirectoryRead {
    let mut receiver = spawn_directory_fetch(connector);
    let mut read = DirectoryRead {
        schools: Vec::new(),
        pages: Vec::new(),
        not_persons: NotPersonCounts::new(),
        end: Ok(0),
    };
    let run = async {
        loop {
            match receiver
                .recv()
                .await
                .expect("channel closed without end marker")
            {
                DirectoryItem::Schools(schools) => read.schools.extend(schools),
                DirectoryItem::Persons(page) => read.pages.push(page),
                DirectoryItem::NotPersons(counts) => read.not_persons.extend(counts),
                DirectoryItem::Complete { reported_total } => return Ok(reported_total),
                DirectoryItem::Failed(failure) => return Err(failure),
            }
        }
    };
    read.end = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("directory read finished in time");
    read
}

#[test]
fn slapd_serves_all_trees_over_ldap_and_ldaps() {
    let server = slapd();
    assert!(server.ldap_url.starts_with("ldap://127.0.0.1:"));
    assert!(server.ldaps_url.starts_with("ldaps://127.0.0.1:"));
    assert!(server.ca_file.is_file() && server.other_ca_file.is_file());
    let pid: u32 = std::fs::read_to_string(server.dir.join("slapd.pid"))
        .expect("slapd wrote its pid file")
        .trim()
        .parse()
        .expect("pid");
    assert!(Path::new("/proc").join(pid.to_string()).exists());
    // ldapsearch from ldap-utils, when present, sees the fixtures as the connectors will.
    if let Ok(ldapsearch) = program("ldapsearch") {
        let output = Command::new(ldapsearch)
            .args(["-x", "-LLL", "-H", &server.ldap_url, "-D", ISERV_BIND_DN])
            .args([
                "-w",
                ISERV_PASSWORD,
                "-b",
                ISERV_BASE,
                "(cn=klasse-5a)",
                "cn",
            ])
            .output()
            .expect("run ldapsearch");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("cn: klasse-5a"), "{text}");
    }
}
