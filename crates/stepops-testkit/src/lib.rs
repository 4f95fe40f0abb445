//! Throwaway PostgreSQL servers for tests and benchmarks, and ([`http`]) a recording HTTP
//! server for tests that need a service on the wire.
//!
//! [`PgServer::start`] runs `initdb` into a fresh temporary directory, starts the server on a
//! free port of 127.0.0.1 (its Unix socket lives in the same directory) and stops it and removes
//! the directory when the value is dropped. Each test process starts its own server, so tests
//! run in parallel (nextest) without sharing state; a port taken by a concurrent test between
//! the pick and the bind is retried with another port.
//!
//! Two authentication styles:
//! - [`PgServer::start`]: `trust` everywhere; [`PgServer::url`] carries no password.
//! - [`PgServer::start_with_password_auth`]: Unix socket `trust` (used by the harness itself),
//!   TCP `scram-sha-256`; the superuser has a password that [`PgServer::url`] carries. Use it for
//!   wrong-credential tests together with [`PgServer::create_role`].
//!
//! When run as root, `initdb` and the server run as the `postgres` user (`runuser`), because
//! PostgreSQL refuses to run as root. Binaries are found with `pg_config --bindir`, else the
//! newest `/usr/lib/postgresql/*/bin`, else `PATH`.
//!
//! ```no_run
//! let pg = stepops_testkit::PgServer::start()?;
//! let url = pg.create_database("source")?; // postgres://postgres@127.0.0.1:PORT/source
//! pg.psql("source", "CREATE TABLE t (id bigint PRIMARY KEY)")?;
//! # Ok::<(), stepops_testkit::TestkitError>(())
//! ```

pub mod duckdb;
pub mod http;
pub mod moto;
pub mod process;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use stepops_error::{ErrorName, Named};

/// What to do when PostgreSQL is missing.
pub const INSTALL_HINT: &str = "PostgreSQL server binaries not found: run scripts/install-deps.sh (apt-get install postgresql)";

/// How many times a start is retried when the picked port turned out to be taken.
const PORT_ATTEMPTS: usize = 12;

/// A failure of the harness.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// `initdb`/`pg_ctl` are not installed.
    #[error("{INSTALL_HINT}")]
    NotInstalled,
    /// A PostgreSQL tool ran and failed.
    #[error("{what} failed ({status}): {output}")]
    Command {
        /// Which step (for example `initdb`).
        what: String,
        /// Exit status.
        status: String,
        /// Its output, or the server log's tail.
        output: String,
    },
    /// Spawning a process or touching the temporary directory failed.
    #[error("{what}: {source}")]
    Io {
        /// What was attempted.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A name given to a helper is not a plain SQL identifier.
    #[error("invalid name {0:?}: use letters, digits and underscores only")]
    InvalidName(String),
}

impl Named for TestkitError {
    fn error_name(&self) -> ErrorName {
        match self {
            TestkitError::NotInstalled => ErrorName::NotFound,
            TestkitError::InvalidName(_) => ErrorName::InvalidInput,
            _ => ErrorName::Internal,
        }
    }
}

/// The harness's result type.
pub type Result<T, E = TestkitError> = std::result::Result<T, E>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestkitError {
    let what = what.into();
    move |source| TestkitError::Io { what, source }
}

/// Options for a server; [`PgServer::start`] and [`PgServer::start_with_password_auth`] cover
/// the common cases.
#[derive(Debug, Clone, Default)]
pub struct PgOptions {
    /// When set, TCP connections need a password (`scram-sha-256`) and the superuser
    /// `postgres` has this one.
    pub superuser_password: Option<String>,
    /// Extra `-c name=value` server settings (for example `shared_buffers=512MB`).
    pub settings: Vec<(String, String)>,
    /// Where to create the temporary directory (default: the system temporary directory).
    pub parent_dir: Option<PathBuf>,
    /// The port to try first (default: a free one); if it is taken, other free ports are tried.
    pub first_port: Option<u16>,
    /// TLS: the server's certificate and key (`ssl=on`).
    pub tls: Option<ServerTls>,
}

/// A server certificate for [`PgOptions::tls`].
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The certificate chain, PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
    /// TCP connections must use TLS (`pg_hba.conf` has only `hostssl` lines), as on a server
    /// that forces TLS (Amazon RDS with `rds.force_ssl=1`).
    pub hostssl_only: bool,
}

/// A throwaway certificate authority for TLS tests: it signs server certificates for
/// [`PgOptions::tls`] and gives its own certificate (PEM) for clients to trust.
pub struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    /// A new CA with a fresh key.
    pub fn new() -> TestCa {
        let key = rcgen::KeyPair::generate().expect("generate a CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "stepops test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        TestCa {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).expect("self-sign the CA"),
        }
    }

    /// The CA's certificate, PEM (what a client's `sslrootcert` file holds).
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses), signed by this CA.
    pub fn server_tls(&self, names: &[&str], hostssl_only: bool) -> ServerTls {
        let key = rcgen::KeyPair::generate().expect("generate a server key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = rcgen::CertificateParams::new(names).expect("server certificate params");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign the server certificate");
        ServerTls {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            hostssl_only,
        }
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

/// A running throwaway PostgreSQL server; stopped (`-m immediate`) and deleted on drop.
#[derive(Debug)]
pub struct PgServer {
    dir: Option<tempfile::TempDir>,
    bindir: PathBuf,
    port: u16,
    password: Option<String>,
    as_postgres: bool,
    stopped: bool,
}

/// The directory holding `initdb`, `pg_ctl`, `psql`, `pg_dump`…, or [`TestkitError::NotInstalled`].
pub fn pg_bindir() -> Result<PathBuf> {
    static BINDIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    BINDIR
        .get_or_init(find_bindir)
        .clone()
        .ok_or(TestkitError::NotInstalled)
}

fn find_bindir() -> Option<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_server(&dir) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, p)| has_server(p))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Some(dir);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|p| has_server(p))
            .map(|p| {
                // Resolve symlinks (/usr/local/bin/initdb -> …/15/bin/initdb) to find psql & co.
                std::fs::canonicalize(p.join("initdb"))
                    .ok()
                    .and_then(|f| f.parent().map(Path::to_path_buf))
                    .filter(|d| has_server(d))
                    .unwrap_or(p)
            })
    })
}

fn is_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false)
    })
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("pick a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(io("read the picked port"))?
        .port())
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() < 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(TestkitError::InvalidName(name.to_owned()))
    }
}

fn output_text(out: &Output) -> String {
    let mut s = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !stdout.trim().is_empty() {
        s.push_str(&stdout);
    }
    s.trim().to_owned()
}

impl PgServer {
    /// Starts a server with `trust` authentication; [`url`](Self::url) has no password.
    pub fn start() -> Result<PgServer> {
        Self::start_with(PgOptions::default())
    }

    /// Starts a server whose TCP connections need a password (`scram-sha-256`); the superuser
    /// `postgres` gets a generated password that [`url`](Self::url) carries.
    pub fn start_with_password_auth() -> Result<PgServer> {
        Self::start_with(PgOptions {
            superuser_password: Some(format!("pw{}x{}", std::process::id(), free_port()?)),
            ..PgOptions::default()
        })
    }

    /// Starts a server with explicit options.
    pub fn start_with(options: PgOptions) -> Result<PgServer> {
        let bindir = pg_bindir()?;
        let as_postgres = is_root();
        let mut builder = tempfile::Builder::new();
        builder.prefix("stepops-pg-");
        let dir = match &options.parent_dir {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        }
        .map_err(io("create a temporary directory for PostgreSQL"))?;
        let mut server = PgServer {
            dir: Some(dir),
            bindir,
            port: 0,
            password: options.superuser_password.clone(),
            as_postgres,
            stopped: true,
        };
        server.initdb(&options)?;
        let mut last = None;
        for attempt in 0..PORT_ATTEMPTS {
            server.port = match options.first_port {
                Some(port) if attempt == 0 => port,
                _ => free_port()?,
            };
            match server.pg_ctl_start(&options)? {
                None => {
                    server.stopped = false;
                    return Ok(server);
                }
                Some(err) => last = Some(err),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(last.expect("at least one attempt"))
    }

    fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .expect("directory present until drop")
            .path()
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir().join("data")
    }

    /// The directory of the server's Unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir().to_path_buf()
    }

    /// The directory holding `psql`, `pg_dump` and the other client tools of this server.
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's password, when the server was started with password authentication.
    pub fn superuser_password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres` (with the password, if any).
    pub fn url(&self) -> String {
        self.database_url("postgres")
    }

    /// The superuser's URL for database `name`.
    pub fn database_url(&self, name: &str) -> String {
        match &self.password {
            Some(pw) => self.url_for("postgres", pw, name),
            None => format!("postgres://postgres@127.0.0.1:{}/{name}", self.port),
        }
    }

    /// A URL for any user, password and database of this server (the values are not checked:
    /// handy for wrong-credential tests).
    pub fn url_for(&self, user: &str, password: &str, database: &str) -> String {
        format!(
            "postgres://{user}:{password}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// Creates database `name` (owned by the superuser) and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String> {
        check_name(name)?;
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))?;
        Ok(self.database_url(name))
    }

    /// Creates a login role with a password (and `CREATEDB`, owner of nothing) and returns
    /// `postgres://NAME:PASSWORD@127.0.0.1:PORT/postgres`. Passwords are only checked on a
    /// server from [`start_with_password_auth`](Self::start_with_password_auth).
    pub fn create_role(&self, name: &str, password: &str) -> Result<String> {
        check_name(name)?;
        let pw = password.replace('\'', "''");
        self.psql(
            "postgres",
            &format!("CREATE ROLE \"{name}\" LOGIN CREATEDB PASSWORD '{pw}'"),
        )?;
        Ok(self.url_for(name, password, "postgres"))
    }

    /// Runs SQL with `psql` as the superuser over the Unix socket (stops at the first error) and
    /// returns its unaligned, tuples-only output (`|` between columns).
    pub fn psql(&self, database: &str, sql: &str) -> Result<String> {
        let out = Command::new(self.bindir.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(self.socket_dir())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
            ])
            .args(["-c", sql])
            .env_remove("PGPASSWORD")
            .env_remove("PGSERVICE")
            .stdin(Stdio::null())
            .output()
            .map_err(io("run psql"))?;
        if !out.status.success() {
            return Err(TestkitError::Command {
                what: format!("psql {sql:?}"),
                status: out.status.to_string(),
                output: output_text(&out),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
    }

    /// The tail of the server's log file (for failure messages).
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir().join("server.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stops the server (`pg_ctl stop -m immediate`) and removes its directory.
    pub fn stop(mut self) -> Result<()> {
        let result = self.stop_inner();
        if let Some(dir) = self.dir.take() {
            dir.close().map_err(io("remove the PostgreSQL directory"))?;
        }
        result
    }

    fn stop_inner(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let data = self.data_dir();
        let mut cmd = self.tool("pg_ctl");
        cmd.args(["stop", "-m", "immediate", "-w", "-t", "30", "-D"])
            .arg(&data);
        self.run("pg_ctl stop", cmd).map(drop)
    }

    /// A command for a server tool, run as `postgres` when we are root.
    fn tool(&self, name: &str) -> Command {
        let path = self.bindir.join(name);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        // The postgres user may not be able to read the caller's working directory.
        cmd.current_dir(self.dir())
            .env_remove("PGDATA")
            .env_remove("PGPORT")
            .env_remove("PGHOST")
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, what: &str, mut cmd: Command) -> Result<Output> {
        let out = cmd.output().map_err(io(format!("run {what}")))?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(TestkitError::Command {
                what: what.to_owned(),
                status: out.status.to_string(),
                output: output_text(&out),
            })
        }
    }

    fn initdb(&self, options: &PgOptions) -> Result<()> {
        let dir = self.dir().to_path_buf();
        if self.as_postgres {
            let mut chown = Command::new("chown");
            chown.arg("postgres:").arg(&dir);
            self.run("chown postgres (temporary directory)", chown)?;
        }
        let mut cmd = self.tool("initdb");
        cmd.arg("-D").arg(self.data_dir()).args([
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        match &options.superuser_password {
            Some(pw) => {
                let pwfile = dir.join("pwfile");
                std::fs::write(&pwfile, format!("{pw}\n")).map_err(io("write the pwfile"))?;
                if self.as_postgres {
                    let mut chown = Command::new("chown");
                    chown.arg("postgres:").arg(&pwfile);
                    self.run("chown postgres (pwfile)", chown)?;
                }
                cmd.arg("--auth-local=trust")
                    .arg("--auth-host=scram-sha-256")
                    .arg(format!("--pwfile={}", pwfile.display()));
            }
            None => {
                cmd.arg("--auth=trust");
            }
        }
        self.run("initdb", cmd)?;
        let _ = std::fs::remove_file(dir.join("pwfile"));
        if let Some(tls) = &options.tls {
            self.install_tls(tls, options.superuser_password.is_some())?;
        }
        Ok(())
    }

    /// Writes the certificate and key into the data directory and, for `hostssl_only`, a
    /// `pg_hba.conf` that accepts TCP connections over TLS only.
    fn install_tls(&self, tls: &ServerTls, password: bool) -> Result<()> {
        let data = self.data_dir();
        let write = |name: &str, text: &str, mode: u32| -> Result<()> {
            use std::os::unix::fs::PermissionsExt;
            let path = data.join(name);
            std::fs::write(&path, text).map_err(io("write a TLS file"))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(io("set a TLS file's mode"))
        };
        write("server.crt", &tls.cert_pem, 0o644)?;
        write("server.key", &tls.key_pem, 0o600)?;
        if tls.hostssl_only {
            let method = if password { "scram-sha-256" } else { "trust" };
            let hba = format!(
                "local all all trust\nhostssl all all 127.0.0.1/32 {method}\n\
                 hostssl all all ::1/128 {method}\n"
            );
            write("pg_hba.conf", &hba, 0o600)?;
        }
        if self.as_postgres {
            let mut chown = Command::new("chown");
            chown
                .arg("postgres:")
                .arg(data.join("server.crt"))
                .arg(data.join("server.key"))
                .arg(data.join("pg_hba.conf"));
            self.run("chown postgres (TLS files)", chown)?;
        }
        Ok(())
    }

    /// Starts the server; `Ok(Some(err))` when the port was taken (retry with another).
    fn pg_ctl_start(&self, options: &PgOptions) -> Result<Option<TestkitError>> {
        let dir = self.dir().to_path_buf();
        let log = dir.join("server.log");
        let _ = std::fs::remove_file(&log);
        let mut settings = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=60",
            self.port,
            dir.display()
        );
        if options.tls.is_some() {
            settings.push_str(" -c ssl=on");
        }
        for (k, v) in &options.settings {
            settings.push_str(&format!(" -c {k}={v}"));
        }
        let mut cmd = self.tool("pg_ctl");
        cmd.args(["start", "-w", "-t", "60", "-D"])
            .arg(self.data_dir())
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(settings);
        match self.run("pg_ctl start", cmd) {
            Ok(_) => Ok(None),
            Err(TestkitError::Command {
                what,
                status,
                output,
            }) => {
                let log_text = std::fs::read_to_string(&log).unwrap_or_default();
                let err = TestkitError::Command {
                    what,
                    status,
                    output: format!("{output}\nserver log:\n{log_text}"),
                };
                let taken = log_text.contains("could not bind")
                    || log_text.contains("Address already in use")
                    || log_text.contains("could not create any TCP/IP sockets");
                if taken {
                    // Make sure a half-started postmaster is gone before retrying.
                    let mut stop = self.tool("pg_ctl");
                    stop.args(["stop", "-m", "immediate", "-D"])
                        .arg(self.data_dir())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null());
                    let _ = stop.status();
                    Ok(Some(err))
                } else {
                    Err(err)
                }
            }
            Err(e) => Err(e),
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Err(e) = self.stop_inner() {
            eprintln!("stepops-testkit: could not stop PostgreSQL: {e}");
        }
    }
}
