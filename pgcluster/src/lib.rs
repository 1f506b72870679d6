//! bestand's own PostgreSQL cluster, for installations without a database server of their own.
//!
//! Without a configured database URL, bestand keeps a cluster in its data folder, made and run
//! with the PostgreSQL server programs installed on the machine (on PATH, or in Debian's
//! `/usr/lib/postgresql/<version>/bin`). The server listens only on a Unix socket in a folder
//! that only its own user may enter, and trusts whoever reaches that socket. It is started on
//! demand and stopped again when the last bestand process using it is done.
//!
//! Several bestand processes share one cluster (a scheduled sync, an admin's query and a
//! counter's hand-out at the same moment). Two lock files keep them from tripping over each
//! other: `start.lock` is held exclusively while a process starts the server (or decides to stop
//! it), so a second starter waits until the server accepts connections and its database exists;
//! `users.lock` is held shared by every process while it uses the server, and the process that
//! finishes last (it gets `users.lock` exclusively) stops the server, if a command started it on
//! demand (the marker file `on-demand`). A server that was already running, or that `bestand db
//! start` keeps running, is left running. The kernel drops the locks of a process that dies, so
//! a killed command never keeps the server up for good, nor stops it under the others.
//!
//! `initdb` and `pg_ctl` refuse to run as root, so when bestand runs as root every server
//! program runs through `runuser -u <run_as>` (default `postgres`), and the cluster folder
//! belongs to that user. The test runner (`cargo xtask test`) uses the same code to start a
//! throwaway cluster with crash safety switched off.
//!
//! Layout of a cluster folder:
//!
//! ```text
//! <cluster dir>/            mode 0700, owned by the server's user
//!     data/                 the cluster itself (PGDATA), made by initdb
//!     data/bestand.conf     written at every start: socket, port, connections, memory, WAL
//!     socket/               the server's Unix socket, mode 0700
//!     server.log            the server's log
//!     start.lock            held while a process starts or stops the server
//!     users.lock            held shared by every process using the server
//!     on-demand             present while the server runs because a command started it
//! ```

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};

use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection};

/// The superuser initdb creates; bestand connects as this role.
pub const SUPERUSER: &str = "bestand";

/// The database bestand keeps its inventory in.
pub const DATABASE: &str = "bestand";

/// The user the server runs as when bestand runs as root and `run_as` is not set.
pub const DEFAULT_RUN_AS: &str = "postgres";

/// Where Debian keeps one folder of server programs per major version.
pub const DEBIAN_SERVER_ROOT: &str = "/usr/lib/postgresql";

/// The port only names the socket file: the server listens on no TCP port.
const PORT: u16 = 5432;
const SOCKET_FILE: &str = ".s.PGSQL.5432";

/// `sun_path` holds 108 bytes including the final NUL.
const MAX_SOCKET_PATH: usize = 107;

/// The connections bestand's own server admits. Every bestand command holds one or two while it
/// runs; PostgreSQL's default of 100 ran out when a hundred hand-outs at the counters, a sync
/// and `serve` met (each connection costs the server a few hundred KB only while it exists).
const OWN_MAX_CONNECTIONS: u32 = 300;

/// How many lines of the server log a failed start shows.
const LOG_TAIL_LINES: usize = 30;

/// A log larger than this is moved to `server.log.old` before the next start.
const LOG_ROTATE_BYTES: u64 = 10 * 1024 * 1024;

/// Why the local cluster could not be found, made, started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "cannot find the PostgreSQL server programs initdb, pg_ctl and postgres: looked on PATH \
         and in {DEBIAN_SERVER_ROOT}/<version>/bin; install them with \
         `apt-get install postgresql`, or set `url` in [database] to use another server"
    )]
    ProgramsNotFound,
    #[error(
        "the cluster in {} was made by PostgreSQL {cluster_version}, but the server programs \
         found in {} are version {programs_version}; install postgresql-{cluster_version}",
        data_dir.display(),
        bin_dir.display()
    )]
    VersionMismatch {
        data_dir: PathBuf,
        cluster_version: u32,
        bin_dir: PathBuf,
        programs_version: u32,
    },
    #[error(
        "system user \"{user}\" does not exist; bestand runs as root, so its PostgreSQL server \
         runs as this user: create it (installing postgresql does) or set `run_as` in [database]"
    )]
    NoSuchUser { user: String },
    #[error(
        "the PostgreSQL server cannot run as root; set `run_as` in [database] to an \
         unprivileged user"
    )]
    RunAsRoot,
    #[error(
        "the socket path {} is too long for a Unix socket (at most {MAX_SOCKET_PATH} bytes); \
         choose a shorter data_dir",
        path.display()
    )]
    SocketPathTooLong { path: PathBuf },
    #[error("the folder {} is not valid UTF-8, which a connection URL needs", path.display())]
    NotUnicode { path: PathBuf },
    #[error(
        "{} exists but holds no PostgreSQL cluster; remove it or choose another data_dir",
        data_dir.display()
    )]
    NotACluster { data_dir: PathBuf },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{action} failed ({status}): {output}")]
    CommandFailed {
        action: String,
        status: ExitStatus,
        output: String,
    },
    #[error(
        "the PostgreSQL server in {} did not start: {output}\nlast lines of {}:\n{log_tail}",
        data_dir.display(),
        log_file.display()
    )]
    StartFailed {
        data_dir: PathBuf,
        log_file: PathBuf,
        output: String,
        log_tail: String,
    },
    #[error("cannot prepare database \"{DATABASE}\" in the local cluster: {source}")]
    Database {
        #[source]
        source: sqlx::Error,
    },
}

type Result<T, E = ClusterError> = std::result::Result<T, E>;

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError {
    let path = path.to_path_buf();
    move |source| ClusterError::Io {
        action,
        path,
        source,
    }
}

/// Whether this process runs as root, where initdb and pg_ctl refuse to run.
#[allow(unsafe_code)]
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions, reads no memory of ours and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The folder holding `initdb`, `pg_ctl` and `postgres` of one PostgreSQL version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerPrograms {
    pub bin_dir: PathBuf,
    pub major_version: u32,
}

impl ServerPrograms {
    /// Finds the server programs: on PATH, else the highest version in Debian's folder.
    pub fn locate() -> Result<ServerPrograms> {
        ServerPrograms::locate_preferring(None)
    }

    /// Like `locate`, but takes Debian's folder of `version` first when it exists, so an
    /// existing cluster keeps running on the version that made it.
    pub fn locate_preferring(version: Option<u32>) -> Result<ServerPrograms> {
        let preferred = version.map(|version| {
            Path::new(DEBIAN_SERVER_ROOT)
                .join(version.to_string())
                .join("bin")
        });
        let bin_dir = preferred
            .filter(|dir| has_server_programs(dir))
            .or_else(programs_on_path)
            .or_else(highest_debian_programs)
            .ok_or(ClusterError::ProgramsNotFound)?;
        let major_version = programs_version(&bin_dir)?;
        Ok(ServerPrograms {
            bin_dir,
            major_version,
        })
    }

    pub fn initdb(&self) -> PathBuf {
        self.bin_dir.join("initdb")
    }

    pub fn pg_ctl(&self) -> PathBuf {
        self.bin_dir.join("pg_ctl")
    }
}

fn has_server_programs(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"]
        .iter()
        .all(|program| dir.join(program).is_file())
}

fn programs_on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find_map(|dir| {
        // A symlinked initdb (as in /usr/local/bin) points to the folder with its siblings.
        let real_dir = std::fs::canonicalize(dir.join("initdb"))
            .ok()
            .and_then(|initdb| initdb.parent().map(Path::to_path_buf));
        real_dir
            .into_iter()
            .chain(std::iter::once(dir))
            .find(|candidate| has_server_programs(candidate))
    })
}

fn highest_debian_programs() -> Option<PathBuf> {
    let entries = std::fs::read_dir(DEBIAN_SERVER_ROOT).ok()?;
    entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin_dir = entry.path().join("bin");
            has_server_programs(&bin_dir).then_some((version, bin_dir))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin_dir)| bin_dir)
}

/// Reads the major version from `pg_ctl --version`, e.g. "pg_ctl (PostgreSQL) 15.18 (Debian…)".
fn programs_version(bin_dir: &Path) -> Result<u32> {
    let pg_ctl = bin_dir.join("pg_ctl");
    let output = std::process::Command::new(&pg_ctl)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ClusterError::Spawn {
            program: pg_ctl.display().to_string(),
            source,
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    parse_major_version(&text).ok_or_else(|| ClusterError::CommandFailed {
        action: format!("{} --version", pg_ctl.display()),
        status: output.status,
        output: format!("unexpected output {:?}", text.trim()),
    })
}

fn parse_major_version(text: &str) -> Option<u32> {
    let after = text.split("(PostgreSQL)").nth(1)?.trim_start();
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The unprivileged user the server runs as when bestand runs as root.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServerUser {
    name: String,
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
}

impl ServerUser {
    fn look_up(name: &str) -> Result<ServerUser> {
        let ids = |flag: &str| -> Result<Vec<u32>> {
            let output = std::process::Command::new("id")
                .arg(flag)
                .arg("--")
                .arg(name)
                .stdin(Stdio::null())
                .output()
                .map_err(|source| ClusterError::Spawn {
                    program: "id".to_string(),
                    source,
                })?;
            if !output.status.success() {
                return Err(ClusterError::NoSuchUser {
                    user: name.to_string(),
                });
            }
            Ok(String::from_utf8_lossy(&output.stdout)
                .split_whitespace()
                .filter_map(|id| id.parse().ok())
                .collect())
        };
        let uid = ids("-u")?
            .first()
            .copied()
            .ok_or_else(|| ClusterError::NoSuchUser {
                user: name.to_string(),
            })?;
        if uid == 0 {
            return Err(ClusterError::RunAsRoot);
        }
        // `id -G` lists the primary group first.
        let groups = ids("-G")?;
        let gid = groups
            .first()
            .copied()
            .ok_or_else(|| ClusterError::NoSuchUser {
                user: name.to_string(),
            })?;
        Ok(ServerUser {
            name: name.to_string(),
            uid,
            gid,
            groups,
        })
    }

    /// Whether this user may pass through a folder with the given mode and owner.
    fn can_traverse(&self, mode: u32, owner: u32, group: u32) -> bool {
        if owner == self.uid {
            mode & 0o100 != 0
        } else if self.groups.contains(&group) {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        }
    }
}

/// Settings that differ between bestand's own cluster and a throwaway test cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterOptions {
    /// Trades crash safety for speed (fsync, synchronous_commit and full_page_writes off,
    /// no sync after initdb). Only for clusters whose data may be lost.
    pub throwaway: bool,
    /// The server's `max_connections`; `OWN_MAX_CONNECTIONS` when unset.
    pub max_connections: Option<u32>,
}

impl ClusterOptions {
    /// For test runs: fast, disposable, with room for many tests' pools in parallel.
    pub fn throwaway() -> ClusterOptions {
        ClusterOptions {
            throwaway: true,
            max_connections: Some(200),
        }
    }
}

/// Whether a cluster exists and runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterStatus {
    NotInitialized,
    Stopped,
    Running { pid: u32 },
}

/// A cluster folder and the programs and user to run it with. Opening touches nothing.
#[derive(Debug, Clone)]
pub struct LocalCluster {
    dir: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_file: PathBuf,
    programs: ServerPrograms,
    /// Set only when bestand runs as root.
    server_user: Option<ServerUser>,
    options: ClusterOptions,
}

impl LocalCluster {
    /// The cluster in `cluster_dir` (normally `<data_dir>/postgres`). `run_as` names the server's
    /// user when bestand runs as root (default `postgres`) and is ignored otherwise.
    pub fn open(cluster_dir: &Path, run_as: Option<&str>) -> Result<LocalCluster> {
        LocalCluster::open_with(cluster_dir, run_as, ClusterOptions::default())
    }

    pub fn open_with(
        cluster_dir: &Path,
        run_as: Option<&str>,
        options: ClusterOptions,
    ) -> Result<LocalCluster> {
        let dir = std::path::absolute(cluster_dir).map_err(io_error("resolve", cluster_dir))?;
        let data_dir = dir.join("data");
        let socket_dir = dir.join("socket");
        let socket_path = socket_dir.join(SOCKET_FILE);
        if socket_dir.to_str().is_none() {
            return Err(ClusterError::NotUnicode { path: socket_dir });
        }
        if socket_path.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(ClusterError::SocketPathTooLong { path: socket_path });
        }
        let cluster_version = read_cluster_version(&data_dir);
        let programs = ServerPrograms::locate_preferring(cluster_version)?;
        if let Some(cluster_version) = cluster_version {
            if cluster_version != programs.major_version {
                return Err(ClusterError::VersionMismatch {
                    data_dir,
                    cluster_version,
                    bin_dir: programs.bin_dir,
                    programs_version: programs.major_version,
                });
            }
        }
        let server_user = if running_as_root() {
            Some(ServerUser::look_up(run_as.unwrap_or(DEFAULT_RUN_AS))?)
        } else {
            None
        };
        Ok(LocalCluster {
            log_file: dir.join("server.log"),
            dir,
            data_dir,
            socket_dir,
            programs,
            server_user,
            options,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    pub fn programs(&self) -> &ServerPrograms {
        &self.programs
    }

    /// The system user the server runs as, when bestand runs as root.
    pub fn server_user(&self) -> Option<&str> {
        self.server_user.as_ref().map(|user| user.name.as_str())
    }

    /// Options for sqlx to reach the `bestand` database over the socket.
    pub fn connect_options(&self) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .socket(&self.socket_dir)
            .port(PORT)
            .username(SUPERUSER)
            .database(DATABASE)
            // A PGSSLMODE=require meant for another server must not break the socket.
            .ssl_mode(PgSslMode::Disable)
            .application_name("bestand")
    }

    /// The same as `connect_options`, as a URL for `DATABASE_URL` (sqlx and psql accept it).
    pub fn connection_url(&self) -> String {
        let mut url = String::from("postgres://");
        url.push_str(SUPERUSER);
        url.push_str("@localhost:");
        url.push_str(&PORT.to_string());
        url.push('/');
        url.push_str(DATABASE);
        url.push_str("?host=");
        url.push_str(&percent_encode(&self.socket_dir.to_string_lossy()));
        url.push_str("&sslmode=disable");
        url
    }

    /// Whether the cluster exists and whether its server runs.
    pub async fn status(&self) -> Result<ClusterStatus> {
        if read_cluster_version(&self.data_dir).is_none() {
            return Ok(ClusterStatus::NotInitialized);
        }
        let output = self
            .run(
                &self.programs.pg_ctl(),
                &[
                    OsStr::new("status"),
                    OsStr::new("-D"),
                    self.data_dir.as_os_str(),
                ],
            )
            .await?;
        // pg_ctl status: 0 running, 3 not running, 4 no accessible data folder.
        match output.status.code() {
            Some(0) => {
                let text = String::from_utf8_lossy(&output.stdout);
                let pid = text
                    .split("PID:")
                    .nth(1)
                    .and_then(|rest| {
                        let digits: String = rest
                            .trim_start()
                            .chars()
                            .take_while(char::is_ascii_digit)
                            .collect();
                        digits.parse().ok()
                    })
                    .unwrap_or(0);
                Ok(ClusterStatus::Running { pid })
            }
            Some(3) => Ok(ClusterStatus::Stopped),
            _ => Err(command_failed("pg_ctl status", &output)),
        }
    }

    /// Makes the cluster unless it exists. Returns whether it was made now.
    pub async fn ensure_initialized(&self) -> Result<bool> {
        if read_cluster_version(&self.data_dir).is_some() {
            return Ok(false);
        }
        self.prepare_folders()?;
        let is_empty_or_missing = match std::fs::read_dir(&self.data_dir) {
            Ok(mut entries) => entries.next().is_none(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => true,
            Err(error) => return Err(io_error("read", &self.data_dir)(error)),
        };
        if !is_empty_or_missing {
            return Err(ClusterError::NotACluster {
                data_dir: self.data_dir.clone(),
            });
        }
        let locale = pick_locale();
        let mut args: Vec<OsString> = vec![
            "-D".into(),
            self.data_dir.clone().into(),
            "-U".into(),
            SUPERUSER.into(),
            // Only local socket connections exist, and the socket folder admits only the
            // server's own user (and root); TCP is refused even if someone enables it.
            "--auth-local=trust".into(),
            "--auth-host=reject".into(),
            "-E".into(),
            "UTF8".into(),
            format!("--locale={locale}").into(),
        ];
        if self.options.throwaway {
            args.push("--no-sync".into());
        }
        let args: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
        let output = self.run(&self.programs.initdb(), &args).await?;
        if !output.status.success() {
            return Err(command_failed("initdb", &output));
        }
        // `include` (not include_if_exists) so that a server started by hand without the
        // file fails instead of listening on TCP with the defaults.
        let conf = self.data_dir.join("postgresql.conf");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .map_err(io_error("open", &conf))?;
        file.write_all(
            b"\n# Added by bestand: the socket, port and connection settings are in bestand.conf,\n\
              # which bestand rewrites at every start. Settings above this line lose to it.\n\
              include = 'bestand.conf'\n",
        )
        .map_err(io_error("write", &conf))?;
        self.write_server_settings()?;
        Ok(true)
    }

    /// Makes the cluster if needed, starts its server unless it already runs, and makes the
    /// `bestand` database if missing. The returned guard stops the server when dropped, but
    /// only if this call started it.
    pub async fn start(&self) -> Result<StartedCluster> {
        self.prepare_folders()?;
        // Whoever starts the server, the others wait here until it accepts connections.
        let start_lock = self.lock_file(START_LOCK, LockKind::Exclusive).await?;
        self.ensure_initialized().await?;
        let started_here = match self.status().await? {
            ClusterStatus::Running { .. } => false,
            ClusterStatus::Stopped | ClusterStatus::NotInitialized => self.start_server().await?,
        };
        if started_here {
            let marker = self.dir.join(ON_DEMAND_MARKER);
            std::fs::write(&marker, b"").map_err(io_error("write", &marker))?;
        }
        let user_lock = self.lock_file(USERS_LOCK, LockKind::Shared).await?;
        let started = StartedCluster {
            cluster: self.clone(),
            started_here,
            user_lock: Some(user_lock),
        };
        let database = self.ensure_database().await;
        // Let go first: on failure `started` is dropped next and stops a server started just
        // now (unless another process uses it already), which takes `start.lock` itself.
        drop(start_lock);
        database?;
        Ok(started)
    }

    /// Opens `name` in the cluster folder and locks it, waiting as long as another process
    /// holds a conflicting lock.
    async fn lock_file(&self, name: &str, kind: LockKind) -> Result<std::fs::File> {
        let (path, file) = self.open_lock_file(name)?;
        let locked = tokio::task::spawn_blocking(move || {
            match kind {
                LockKind::Shared => file.lock_shared(),
                LockKind::Exclusive => file.lock(),
            }
            .map(|()| file)
        })
        .await
        .map_err(|error| io_error("lock", &path)(std::io::Error::other(error)))?;
        locked.map_err(io_error("lock", &path))
    }

    /// Opens (making it if need be) the lock file `name` in the cluster folder.
    fn open_lock_file(&self, name: &str) -> Result<(PathBuf, std::fs::File)> {
        let path = self.dir.join(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error("open", &path))?;
        Ok((path, file))
    }

    /// After this process let go of its `users.lock`: stops the server if no other process uses
    /// it and a command started it on demand. Runs under `start.lock`, so no process starts to
    /// use the server while it is being stopped.
    fn stop_if_last_user(&self) -> Result<bool> {
        let (start_path, start_lock) = self.open_lock_file(START_LOCK)?;
        start_lock.lock().map_err(io_error("lock", &start_path))?;
        let (users_path, users) = self.open_lock_file(USERS_LOCK)?;
        let last = match users.try_lock() {
            Ok(()) => true,
            Err(std::fs::TryLockError::WouldBlock) => false,
            Err(std::fs::TryLockError::Error(error)) => {
                return Err(io_error("lock", &users_path)(error))
            }
        };
        let marker = self.dir.join(ON_DEMAND_MARKER);
        if !last || !marker.exists() {
            return Ok(false);
        }
        self.stop_blocking()?;
        std::fs::remove_file(&marker).map_err(io_error("remove", &marker))?;
        Ok(true)
    }

    /// Returns false when another process started the same server at the same moment.
    async fn start_server(&self) -> Result<bool> {
        self.prepare_folders()?;
        self.write_server_settings()?;
        self.rotate_log();
        let args = [
            OsStr::new("start"),
            OsStr::new("-D"),
            self.data_dir.as_os_str(),
            OsStr::new("-l"),
            self.log_file.as_os_str(),
            OsStr::new("-w"),
            OsStr::new("-t"),
            OsStr::new("60"),
        ];
        let output = self.run(&self.programs.pg_ctl(), &args).await?;
        if output.status.success() {
            return Ok(true);
        }
        if let Ok(ClusterStatus::Running { .. }) = self.status().await {
            return Ok(false);
        }
        Err(ClusterError::StartFailed {
            data_dir: self.data_dir.clone(),
            log_file: self.log_file.clone(),
            output: combined_output(&output),
            log_tail: read_tail(&self.log_file, LOG_TAIL_LINES),
        })
    }

    /// Stops the server (fast shutdown: sessions are ended, data is safe). Returns whether it
    /// was running.
    pub async fn stop(&self) -> Result<bool> {
        let _ = std::fs::remove_file(self.dir.join(ON_DEMAND_MARKER));
        if !matches!(self.status().await?, ClusterStatus::Running { .. }) {
            return Ok(false);
        }
        let output = self.run(&self.programs.pg_ctl(), &self.stop_args()).await?;
        if !output.status.success() {
            return Err(command_failed("pg_ctl stop", &output));
        }
        Ok(true)
    }

    fn stop_args(&self) -> [&OsStr; 6] {
        [
            OsStr::new("stop"),
            OsStr::new("-D"),
            self.data_dir.as_os_str(),
            OsStr::new("-m"),
            OsStr::new("fast"),
            OsStr::new("-w"),
        ]
    }

    /// Makes the `bestand` database unless it exists.
    pub async fn ensure_database(&self) -> Result<()> {
        let database_error = |source| ClusterError::Database { source };
        let mut connection = self
            .connect_options()
            .database("postgres")
            .connect()
            .await
            .map_err(database_error)?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(DATABASE)
                .fetch_one(&mut connection)
                .await
                .map_err(database_error)?;
        if !exists {
            let created = sqlx::query(&format!("CREATE DATABASE \"{DATABASE}\""))
                .execute(&mut connection)
                .await;
            match created {
                Ok(_) => {}
                // Another bestand process was quicker.
                Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("42P04") => {}
                Err(error) => return Err(database_error(error)),
            }
        }
        connection.close().await.map_err(database_error)
    }

    /// Creates the cluster, socket folders, hands them to the server's user and makes sure that
    /// user can reach them.
    fn prepare_folders(&self) -> Result<()> {
        for dir in [&self.dir, &self.socket_dir] {
            std::fs::create_dir_all(dir).map_err(io_error("create", dir))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io_error("set permissions of", dir))?;
            self.hand_to_server_user(dir)?;
        }
        if let Some(user) = &self.server_user {
            grant_passage(&self.dir, user)?;
        }
        Ok(())
    }

    fn hand_to_server_user(&self, path: &Path) -> Result<()> {
        if let Some(user) = &self.server_user {
            std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
                .map_err(io_error("hand over", path))?;
        }
        Ok(())
    }

    /// Settings that depend on where the folder is now, so they are rewritten at every start.
    fn write_server_settings(&self) -> Result<()> {
        let path = self.data_dir.join("bestand.conf");
        let socket_dir = self.socket_dir.to_string_lossy().replace('\'', "''");
        let mut text = format!(
            "# Written by bestand at every start of the server; changes here are lost.\n\
             listen_addresses = ''\n\
             port = {PORT}\n\
             unix_socket_directories = '{socket_dir}'\n\
             unix_socket_permissions = 0700\n\
             # A new WAL segment is created at its full size without writing 16 MB of zeros\n\
             # first; a first sync fills a young cluster's WAL at about 6 KB a device.\n\
             wal_init_zero = off\n"
        );
        let max_connections = self.options.max_connections.unwrap_or(OWN_MAX_CONNECTIONS);
        text.push_str(&format!("max_connections = {max_connections}\n"));
        if self.options.throwaway {
            text.push_str(
                "# A throwaway cluster: a crash may lose or corrupt data.\n\
                 fsync = off\n\
                 synchronous_commit = off\n\
                 full_page_writes = off\n",
            );
        } else {
            let memory = ServerMemory::for_machine(machine_memory());
            text.push_str(&format!(
                "# Sized from the machine's memory: PostgreSQL's defaults (128 MB, 4 MB) made a\n\
                 # first sync wait on evicting pages and writing WAL.\n\
                 shared_buffers = {}MB\n\
                 wal_buffers = {}MB\n",
                memory.shared_buffers_mb, memory.wal_buffers_mb
            ));
        }
        std::fs::write(&path, text).map_err(io_error("write", &path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(io_error("set permissions of", &path))?;
        self.hand_to_server_user(&path)
    }

    fn rotate_log(&self) {
        let too_big = std::fs::metadata(&self.log_file)
            .map(|metadata| metadata.len() > LOG_ROTATE_BYTES)
            .unwrap_or(false);
        if too_big {
            // Losing the rotation only means a longer log.
            let _ = std::fs::rename(&self.log_file, self.log_file.with_extension("log.old"));
        }
    }

    /// A command running `program` as the server's user.
    fn command(&self, program: &Path, args: &[&OsStr]) -> std::process::Command {
        let mut command = match &self.server_user {
            Some(user) => {
                let mut command = std::process::Command::new("runuser");
                command.arg("-u").arg(&user.name).arg("--").arg(program);
                command
            }
            None => std::process::Command::new(program),
        };
        command.args(args);
        // The server's user may not be able to enter the caller's working folder.
        command.current_dir("/").stdin(Stdio::null());
        // Settings meant for another server must not reach this one.
        for variable in [
            "PGDATA",
            "PGPORT",
            "PGHOST",
            "PGUSER",
            "PGDATABASE",
            "PGOPTIONS",
        ] {
            command.env_remove(variable);
        }
        command
    }

    async fn run(&self, program: &Path, args: &[&OsStr]) -> Result<Output> {
        tokio::process::Command::from(self.command(program, args))
            .output()
            .await
            .map_err(|source| ClusterError::Spawn {
                program: program.display().to_string(),
                source,
            })
    }

    /// The blocking stop for `Drop`, which cannot wait for a future.
    fn stop_blocking(&self) -> Result<()> {
        let pg_ctl = self.programs.pg_ctl();
        let output = self
            .command(&pg_ctl, &self.stop_args())
            .output()
            .map_err(|source| ClusterError::Spawn {
                program: pg_ctl.display().to_string(),
                source,
            })?;
        if !output.status.success() {
            return Err(command_failed("pg_ctl stop", &output));
        }
        Ok(())
    }
}

/// A running server, in use by this process. Dropping it stops the server if no other bestand
/// process uses it and a command started it on demand, so commands that needed the database for
/// a moment leave things as they found them, however many ran at once.
#[derive(Debug)]
pub struct StartedCluster {
    cluster: LocalCluster,
    started_here: bool,
    /// This process's shared hold on `users.lock`; `None` once let go.
    user_lock: Option<std::fs::File>,
}

impl StartedCluster {
    pub fn cluster(&self) -> &LocalCluster {
        &self.cluster
    }

    /// Whether `start` started the server (rather than finding it running).
    pub fn started_here(&self) -> bool {
        self.started_here
    }

    pub fn connect_options(&self) -> PgConnectOptions {
        self.cluster.connect_options()
    }

    pub fn connection_url(&self) -> String {
        self.cluster.connection_url()
    }

    /// Lets go of the server now, stopping it if this process was its last user and a command
    /// started it; reports failures that `Drop` can only log. Returns whether it stopped it.
    pub async fn stop(mut self) -> Result<bool> {
        let Some(user_lock) = self.user_lock.take() else {
            return Ok(false);
        };
        drop(user_lock);
        let cluster = self.cluster.clone();
        tokio::task::spawn_blocking(move || cluster.stop_if_last_user())
            .await
            .map_err(|error| io_error("lock", &self.cluster.dir)(std::io::Error::other(error)))?
    }

    /// Leaves the server running after the guard is gone, also after other processes are done
    /// with it (`bestand db start`).
    pub fn keep_running(mut self) -> LocalCluster {
        let _ = std::fs::remove_file(self.cluster.dir.join(ON_DEMAND_MARKER));
        self.user_lock = None;
        self.cluster.clone()
    }
}

impl Drop for StartedCluster {
    fn drop(&mut self) {
        let Some(user_lock) = self.user_lock.take() else {
            return;
        };
        drop(user_lock);
        if let Err(error) = self.cluster.stop_if_last_user() {
            tracing::warn!(
                cluster = %self.cluster.data_dir.display(),
                error = %error,
                "Could not stop the local PostgreSQL server."
            );
        }
    }
}

/// The lock files and marker in the cluster folder (see the module documentation).
const START_LOCK: &str = "start.lock";
const USERS_LOCK: &str = "users.lock";
const ON_DEMAND_MARKER: &str = "on-demand";

#[derive(Debug, Clone, Copy)]
enum LockKind {
    Shared,
    Exclusive,
}

/// Adds the search bit for others to every folder above `dir` that the server's user cannot
/// pass, such as `/root` (mode 0700) when the data folder is under root's home. That lets the
/// user reach the path it was given, and nothing more: it still cannot list those folders.
fn grant_passage(dir: &Path, user: &ServerUser) -> Result<()> {
    let ancestors: Vec<&Path> = dir.ancestors().skip(1).collect();
    for ancestor in ancestors.into_iter().rev() {
        let metadata = std::fs::metadata(ancestor).map_err(io_error("inspect", ancestor))?;
        let mode = metadata.permissions().mode();
        use std::os::unix::fs::MetadataExt;
        if user.can_traverse(mode, metadata.uid(), metadata.gid()) {
            continue;
        }
        std::fs::set_permissions(ancestor, std::fs::Permissions::from_mode(mode | 0o001))
            .map_err(io_error("let the server's user pass through", ancestor))?;
        tracing::warn!(
            folder = %ancestor.display(),
            user = %user.name,
            "Allowed others to pass through (not list) a folder so that the local PostgreSQL \
             server can reach its data."
        );
    }
    Ok(())
}

/// The major version in `PG_VERSION`, or None when no cluster is there.
fn read_cluster_version(data_dir: &Path) -> Option<u32> {
    std::fs::read_to_string(data_dir.join("PG_VERSION"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// C.UTF-8 where the system has it, so that case-insensitive matching works on umlauts; plain
/// C (byte order, ASCII case rules) otherwise.
fn pick_locale() -> &'static str {
    let has_c_utf8 = std::process::Command::new("locale")
        .arg("-a")
        .stdin(Stdio::null())
        .output()
        .map(|output| {
            String::from_utf8_lossy(&output.stdout).lines().any(|line| {
                line.eq_ignore_ascii_case("c.utf8") || line.eq_ignore_ascii_case("c.utf-8")
            })
        })
        .unwrap_or(false);
    if has_c_utf8 {
        "C.UTF-8"
    } else {
        "C"
    }
}

fn combined_output(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    format!("{}\n{}", stdout.trim(), stderr.trim())
        .trim()
        .to_string()
}

fn command_failed(action: &str, output: &Output) -> ClusterError {
    ClusterError::CommandFailed {
        action: action.to_string(),
        status: output.status,
        output: combined_output(output),
    }
}

fn read_tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(error) => format!("(cannot read the log: {error})"),
    }
}

/// Percent-encodes everything but unreserved characters and `/`, enough for a socket path in a
/// URL query.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The memory bestand's own server takes: a quarter of the machine's memory for shared buffers,
/// at least PostgreSQL's default of 128 MB and at most 512 MB (an inventory of 200,000 devices
/// is about 1 GB on disk, and its hot part fits), and an eighth of that for WAL buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerMemory {
    pub shared_buffers_mb: u64,
    pub wal_buffers_mb: u64,
}

impl ServerMemory {
    /// For a machine with `total_bytes` of memory, or PostgreSQL's defaults when unknown.
    pub fn for_machine(total_bytes: Option<u64>) -> ServerMemory {
        const MB: u64 = 1024 * 1024;
        let shared_buffers_mb = total_bytes.map_or(128, |bytes| (bytes / 4 / MB).clamp(128, 512));
        ServerMemory {
            shared_buffers_mb,
            wal_buffers_mb: shared_buffers_mb / 8,
        }
    }
}

/// The memory this process may use: the machine's (`MemTotal`), or its cgroup's limit if lower
/// (a container). `None` when neither can be read.
pub fn machine_memory() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| parse_mem_total(&text));
    let limit = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok());
    match (total, limit) {
        (Some(total), Some(limit)) => Some(total.min(limit)),
        (total, limit) => total.or(limit),
    }
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_memory_is_a_quarter_of_the_machine_within_bounds() {
        const GIB: u64 = 1024 * 1024 * 1024;
        let sized = |bytes| ServerMemory::for_machine(bytes);
        assert_eq!(sized(None).shared_buffers_mb, 128);
        assert_eq!(sized(Some(GIB / 2)).shared_buffers_mb, 128);
        assert_eq!(sized(Some(GIB)).shared_buffers_mb, 256);
        assert_eq!(
            sized(Some(24 * GIB)),
            ServerMemory {
                shared_buffers_mb: 512,
                wal_buffers_mb: 64
            }
        );
        assert_eq!(
            parse_mem_total("MemTotal:       24607672 kB\nMemFree: 1 kB\n"),
            Some(24_607_672 * 1024)
        );
        assert_eq!(parse_mem_total("nothing"), None);
    }

    #[test]
    fn reads_major_versions() {
        assert_eq!(
            parse_major_version("pg_ctl (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some(15)
        );
        assert_eq!(parse_major_version("pg_ctl (PostgreSQL) 17beta1"), Some(17));
        assert_eq!(parse_major_version("something else"), None);
    }

    #[test]
    fn traversal_follows_the_owner_group_other_classes() {
        let user = ServerUser {
            name: "postgres".into(),
            uid: 101,
            gid: 104,
            groups: vec![104, 103],
        };
        assert!(!user.can_traverse(0o700, 0, 0));
        assert!(user.can_traverse(0o701, 0, 0));
        assert!(user.can_traverse(0o710, 0, 103));
        assert!(user.can_traverse(0o700, 101, 0));
        // The owner class applies alone: "other" bits do not help the owner.
        assert!(!user.can_traverse(0o007, 101, 0));
    }

    #[test]
    fn socket_paths_are_encoded_for_urls() {
        assert_eq!(percent_encode("/tmp/my dir/ä"), "/tmp/my%20dir/%C3%A4");
    }
}
