//! PostgreSQL connections for every stepops tool (migration stacks, change tracking, the status
//! switch, the sample and bench tools), made as libpq makes them.
//!
//! A `postgres://` URL may carry libpq's TLS parameters: `sslmode` (disable, allow, prefer —
//! the default —, require, verify-ca, verify-full), `sslrootcert` (a PEM file, or `system` for
//! the platform's trust store), `sslcert` and `sslkey` (a client certificate, PEM). TLS is
//! rustls (no OpenSSL). Failures that retrying cannot fix (an untrusted certificate, a wrong host
//! name, a server without TLS under `require`, a server that refuses plaintext) come back as
//! [`ConnectError::Tls`] with what to change; everything else is the driver's own error.

mod params;
mod tls;

pub use params::{RootCerts, SslMode, TlsParams};
pub use tls::TlsProblem;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL or its TLS parameters are invalid (a file missing, a bad value).
    #[error("{0}")]
    InvalidSettings(String),
    /// A TLS failure that retrying cannot fix.
    #[error("{}", .0.advice())]
    Tls(TlsProblem),
    /// The driver's error (network, authentication, server): classify it by its SQLSTATE.
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
}

/// How to connect to one PostgreSQL database: the driver's configuration and the TLS settings.
#[derive(Clone)]
pub struct PgConnector {
    config: tokio_postgres::Config,
    tls_params: TlsParams,
    tls: Option<tls::MakeRustls>,
}

impl std::fmt::Debug for PgConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConnector")
            .field("sslmode", &self.tls_params.mode)
            .finish_non_exhaustive()
    }
}

impl PgConnector {
    /// Parses a `postgres://` (or `postgresql://`) URL and reads its certificate files. Errors
    /// never repeat the URL (it may hold a password).
    pub fn parse(url: &str) -> Result<PgConnector, ConnectError> {
        let (rest, tls_params) = params::split_url(url)?;
        let config: tokio_postgres::Config = rest.parse().map_err(|e| {
            ConnectError::InvalidSettings(format!("not a usable PostgreSQL URL: {e}"))
        })?;
        let tls = match tls_params.mode {
            SslMode::Disable => None,
            _ => Some(tls::MakeRustls(tls::client_config(&tls_params)?)),
        };
        Ok(PgConnector {
            config,
            tls_params,
            tls,
        })
    }

    /// The TLS settings the URL asked for.
    pub fn tls_params(&self) -> &TlsParams {
        &self.tls_params
    }

    /// The driver's configuration (timeouts, keepalives, application name).
    pub fn config_mut(&mut self) -> &mut tokio_postgres::Config {
        &mut self.config
    }

    /// The driver's configuration.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// Opens a session; its connection is driven on the current runtime until the client is
    /// dropped.
    pub async fn connect(&self) -> Result<Client, ConnectError> {
        use tokio_postgres::config::SslMode as Driver;
        match (self.tls_params.mode, &self.tls) {
            (SslMode::Disable, _) | (_, None) => self.plain().await,
            (SslMode::Allow, Some(tls)) => match self.plain().await {
                Err(ConnectError::Tls(TlsProblem::ServerRequiresTls)) => {
                    self.with_tls(Driver::Require, tls).await
                }
                other => other,
            },
            (SslMode::Prefer, Some(tls)) => self.with_tls(Driver::Prefer, tls).await,
            (_, Some(tls)) => self.with_tls(Driver::Require, tls).await,
        }
    }

    async fn plain(&self) -> Result<Client, ConnectError> {
        let mut config = self.config.clone();
        config.ssl_mode(tokio_postgres::config::SslMode::Disable);
        let (client, conn) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(classify)?;
        drive(conn);
        Ok(client)
    }

    async fn with_tls(
        &self,
        mode: tokio_postgres::config::SslMode,
        tls: &tls::MakeRustls,
    ) -> Result<Client, ConnectError> {
        let mut config = self.config.clone();
        config.ssl_mode(mode);
        let (client, conn) = config.connect(tls.clone()).await.map_err(classify)?;
        drive(conn);
        Ok(client)
    }
}

fn drive<F>(conn: F)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "PostgreSQL connection ended");
        }
    });
}

/// Names the TLS failures in a driver error; anything else stays the driver's.
fn classify(e: tokio_postgres::Error) -> ConnectError {
    if let Some(db) = e.as_db_error()
        && *db.code() == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        && db.message().contains("no encryption")
    {
        return ConnectError::Tls(TlsProblem::ServerRequiresTls);
    }
    if let Some(source) = std::error::Error::source(&e) {
        if source.to_string() == "server does not support TLS" {
            return ConnectError::Tls(TlsProblem::ServerWithoutTls);
        }
        if let Some(problem) = tls::handshake_failure(source) {
            return ConnectError::Tls(problem);
        }
    }
    ConnectError::Postgres(e)
}

/// Connects to `url` in one call (tools and tests; long-lived users keep a [`PgConnector`]).
pub async fn connect(url: &str) -> Result<Client, ConnectError> {
    PgConnector::parse(url)?.connect().await
}
