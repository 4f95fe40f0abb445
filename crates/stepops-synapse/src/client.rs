//! The HTTP client of one stack: `synapse+https://KEY:SECRET@host/repo/v1` parsed into a base
//! URL and HTTP Basic credentials (the secret is never logged nor `Debug`-printed), the plain
//! endpoints, and asynchronous admin jobs started and polled with backoff.
//!
//! Retries: a GET (a job's status, type names, the status) is retried on 5xx, refused
//! connections and timeouts; starting a job is retried only when the service cannot have
//! started it (503 or a refused connection), never after a timeout, so a job is never started
//! twice by the client itself.

use std::time::Duration;

use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::debug;

use crate::error::{Result, SynapseError};
use crate::protocol::{
    ASYNC_RESPONSE, AdminRequest, AdminResponse, JobStatus, NameList, StackStatus, job_body,
};

/// The URL scheme prefix of a Synapse stack (`synapse+https://…`, `synapse+http://…`).
pub const SCHEME_PREFIX: &str = "synapse+";

/// Whether `url` names a Synapse stack.
pub fn is_synapse_url(url: &str) -> bool {
    url.trim_start().starts_with(SCHEME_PREFIX)
}

/// Timeouts and the polling schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientOptions {
    /// One HTTP request's timeout.
    pub request_timeout: Duration,
    /// First wait between two polls of a job; doubles up to `poll_max`.
    pub poll_initial: Duration,
    /// Longest wait between two polls.
    pub poll_max: Duration,
    /// Attempts of a retried request (1: no retry).
    pub attempts: u32,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            request_timeout: Duration::from_secs(60),
            poll_initial: Duration::from_millis(100),
            poll_max: Duration::from_secs(5),
            attempts: 4,
        }
    }
}

/// One stack's client.
#[derive(Clone)]
pub struct SynapseClient {
    http: reqwest::Client,
    base: String,
    authorization: String,
    options: ClientOptions,
}

impl std::fmt::Debug for SynapseClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SynapseClient")
            .field("base", &self.base)
            .field("authorization", &"[redacted]")
            .finish()
    }
}

/// `url` (a `synapse+…` URL) with `key` as its service key, percent-encoded: how a key kept in
/// its own parameter joins the secret's URL (`synapse+https://:SECRET@HOST/…` or one with a
/// key, which `key` replaces).
///
/// Errors: `Stepops.InvalidInput` when `url` has no `SECRET@` part.
pub fn with_service_key(url: &str, key: &str) -> Result<String> {
    let bad = || {
        SynapseError::InvalidInput(format!(
            "{}: a service key comes from its own parameter, so the secret must be a URL with \
             the secret only: synapse+https://:SECRET@HOST/repo/v1",
            stepops_error::redact(url)
        ))
    };
    let (scheme, after) = url.trim().split_once("://").ok_or_else(bad)?;
    let end = after.find('/').unwrap_or(after.len());
    let (userinfo, rest) = after[..end].rsplit_once('@').ok_or_else(bad)?;
    let secret = userinfo.split_once(':').map_or(userinfo, |(_, s)| s);
    let encoded = stepops_error::url::percent_encode(key);
    Ok(format!(
        "{scheme}://{encoded}:{secret}@{rest}{}",
        &after[end..]
    ))
}

impl SynapseClient {
    /// Parses `synapse+http(s)://KEY:SECRET@host[:port]/repo/v1`.
    ///
    /// Errors: `Stepops.InvalidInput` (another scheme, no key or secret).
    pub fn from_url(url: &str, options: ClientOptions) -> Result<SynapseClient> {
        let bad = |why: &str| {
            SynapseError::InvalidInput(format!(
                "{}: {why}; expected synapse+https://SERVICE_KEY:SECRET@repo-prod.prod.sagebase.org/repo/v1",
                stepops_error::redact(url)
            ))
        };
        let rest = url
            .trim()
            .strip_prefix(SCHEME_PREFIX)
            .ok_or_else(|| bad("not a synapse+ URL"))?;
        let (scheme, after) = rest.split_once("://").ok_or_else(|| bad("no scheme"))?;
        if scheme != "https" && scheme != "http" {
            return Err(bad("the scheme must be synapse+https or synapse+http"));
        }
        let (authority, path) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, "/repo/v1"),
        };
        let (userinfo, host) = authority
            .rsplit_once('@')
            .ok_or_else(|| bad("no service key and secret (KEY:SECRET@) in the URL"))?;
        let (key, secret) = userinfo
            .split_once(':')
            .ok_or_else(|| bad("the URL has a service key but no secret"))?;
        let (key, secret) = (
            stepops_error::url::percent_decode(key),
            stepops_error::url::percent_decode(secret),
        );
        if key.is_empty() || secret.is_empty() || host.is_empty() {
            return Err(bad("empty service key, secret or host"));
        }
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{key}:{secret}"));
        let http = reqwest::Client::builder()
            .timeout(options.request_timeout)
            .build()
            .map_err(|e| bad(&format!("cannot build the HTTP client: {e}")))?;
        Ok(SynapseClient {
            http,
            base: format!("{scheme}://{host}{}", path.trim_end_matches('/')),
            authorization: format!("Basic {token}"),
            options,
        })
    }

    /// The base URL (no credentials), for messages.
    pub fn describe(&self) -> &str {
        &self.base
    }

    /// The client's timeouts and polling schedule.
    pub fn options(&self) -> ClientOptions {
        self.options
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Vec<u8>)> {
        let what = format!("{method} {path}");
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Authorization", &self.authorization)
            .header("Accept", "application/json");
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| SynapseError::Unavailable {
            stack: self.base.clone(),
            what: what.clone(),
            reason: transport_reason(&e),
        })?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| SynapseError::Unavailable {
            stack: self.base.clone(),
            what: what.clone(),
            reason: transport_reason(&e),
        })?;
        if (200..300).contains(&status) {
            return Ok((status, bytes.to_vec()));
        }
        let message = reason_of(&bytes);
        Err(match status {
            401 | 403 => SynapseError::Unauthorized {
                stack: self.base.clone(),
                status,
                what,
                message,
            },
            500..=599 => SynapseError::Unavailable {
                stack: self.base.clone(),
                what,
                reason: format!("HTTP {status}: {message}"),
            },
            _ => SynapseError::Refused {
                stack: self.base.clone(),
                status,
                what,
                message,
            },
        })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        retry: fn(&SynapseError) -> bool,
    ) -> Result<T> {
        let mut wait = Duration::from_millis(200);
        let mut attempt = 1;
        let bytes = loop {
            match self.send(method.clone(), path, body).await {
                Ok((_, bytes)) => break bytes,
                Err(e) if attempt < self.options.attempts && retry(&e) => {
                    debug!(error = %e, attempt, "retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        };
        serde_json::from_slice(&bytes).map_err(|e| SynapseError::Malformed {
            stack: self.base.clone(),
            what: format!("{method} {path}"),
            reason: format!("{e}"),
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.json(reqwest::Method::GET, path, None, |e| {
            matches!(e, SynapseError::Unavailable { .. })
        })
        .await
    }

    /// `GET /migration/types/names`: every type, in migration order.
    pub async fn type_names(&self) -> Result<Vec<String>> {
        Ok(self.get::<NameList>("/migration/types/names").await?.list)
    }

    /// `GET /migration/primarytypes/names`: the primary types, in migration order.
    pub async fn primary_type_names(&self) -> Result<Vec<String>> {
        Ok(self
            .get::<NameList>("/migration/primarytypes/names")
            .await?
            .list)
    }

    /// `GET /admin/synapse/status`.
    pub async fn status(&self) -> Result<StackStatus> {
        self.get("/admin/synapse/status").await
    }

    /// `PUT /admin/synapse/status`; returns the status the service answers.
    pub async fn set_status(&self, status: &StackStatus) -> Result<StackStatus> {
        let body = serde_json::to_value(status).expect("a status serialises");
        self.json(
            reqwest::Method::PUT,
            "/admin/synapse/status",
            Some(&body),
            |e| matches!(e, SynapseError::Unavailable { .. }),
        )
        .await
    }

    /// `POST /admin/asynchronous/job`: starts `request`; retried only when the service cannot
    /// have started it (503, connection refused).
    pub async fn start_job(&self, request: &AdminRequest) -> Result<JobStatus> {
        let body = job_body(request);
        let status: JobStatus = self
            .json(
                reqwest::Method::POST,
                "/admin/asynchronous/job",
                Some(&body),
                |e| {
                    matches!(e, SynapseError::Unavailable { reason, .. }
                    if reason.starts_with("HTTP 503") || reason.starts_with("connection refused"))
                },
            )
            .await?;
        debug!(job = %status.job_id, kind = request.kind(), "admin job started");
        Ok(status)
    }

    /// `GET /admin/asynchronous/job/{jobId}`.
    pub async fn job(&self, job_id: &str) -> Result<JobStatus> {
        self.get(&format!("/admin/asynchronous/job/{job_id}")).await
    }

    /// Polls job `job_id` (started for `what`) with backoff until it ends; its admin response
    /// when COMPLETE, [`SynapseError::JobFailed`] with the service's message when FAILED.
    pub async fn wait_job(&self, first: JobStatus, what: &str) -> Result<AdminResponse> {
        let mut status = first;
        let mut wait = self.options.poll_initial;
        loop {
            match status.job_state.as_str() {
                "COMPLETE" => return self.response_of(&status, what),
                "FAILED" => {
                    return Err(SynapseError::JobFailed {
                        stack: self.base.clone(),
                        job_id: status.job_id,
                        what: what.to_owned(),
                        message: status
                            .error_message
                            .unwrap_or_else(|| "no errorMessage".into()),
                    });
                }
                "PROCESSING" => {}
                other => {
                    return Err(self.malformed(what, format!("jobState {other:?}")));
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(self.options.poll_max);
            status = self.job(&status.job_id).await?;
        }
    }

    /// Starts `request` and waits for its answer.
    pub async fn run(&self, request: &AdminRequest) -> Result<AdminResponse> {
        let what = describe_request(request);
        let first = self.start_job(request).await?;
        self.wait_job(first, &what).await
    }

    fn malformed(&self, what: &str, reason: String) -> SynapseError {
        SynapseError::Malformed {
            stack: self.base.clone(),
            what: what.to_owned(),
            reason,
        }
    }

    fn response_of(&self, status: &JobStatus, what: &str) -> Result<AdminResponse> {
        let body = status
            .response_body
            .as_ref()
            .ok_or_else(|| self.malformed(what, "a COMPLETE job without responseBody".into()))?;
        if body.get("concreteType").and_then(Value::as_str) != Some(ASYNC_RESPONSE) {
            return Err(self.malformed(what, format!("responseBody is not an {ASYNC_RESPONSE}")));
        }
        let admin = body
            .get("adminResponse")
            .ok_or_else(|| self.malformed(what, "responseBody without adminResponse".into()))?;
        serde_json::from_value(admin.clone())
            .map_err(|e| self.malformed(what, format!("adminResponse: {e}")))
    }
}

/// A short description of a request for messages (`backup NODE [1, 100)`).
pub fn describe_request(request: &AdminRequest) -> String {
    match request {
        AdminRequest::TypeCounts { types } => format!("type counts of {} type(s)", types.len()),
        AdminRequest::OptimalRange {
            migration_type,
            minimum_id,
            maximum_id,
            ..
        } => {
            format!("optimal ranges {migration_type} [{minimum_id}, {maximum_id})")
        }
        AdminRequest::Backup {
            migration_type,
            minimum_id,
            maximum_id,
            ..
        } => {
            format!("backup {migration_type} [{minimum_id}, {maximum_id})")
        }
        AdminRequest::Restore {
            migration_type,
            minimum_row_id,
            maximum_row_id,
            ..
        } => {
            format!("restore {migration_type} [{minimum_row_id}, {maximum_row_id})")
        }
        AdminRequest::BatchChecksum {
            migration_type,
            minimum_id,
            maximum_id,
            ..
        } => {
            format!("batch checksums {migration_type} [{minimum_id}, {maximum_id})")
        }
        AdminRequest::TypeChecksum { migration_type } => {
            format!("full-table checksum of {migration_type}")
        }
    }
}

fn transport_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection refused or unreachable".into()
    } else {
        // reqwest's text holds the URL, never the Authorization header.
        format!("transport error: {e}")
    }
}

/// The service's `{"reason": …}`, else the body's first 200 characters.
fn reason_of(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body)
        && let Some(r) = v.get("reason").and_then(Value::as_str)
    {
        return r.to_owned();
    }
    String::from_utf8_lossy(body).chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_neither_in_debug_nor_in_the_description() {
        let c = SynapseClient::from_url(
            "synapse+http://admin:s3cr%40t-XYZ@127.0.0.1:1/repo/v1",
            ClientOptions::default(),
        )
        .unwrap();
        assert_eq!(c.describe(), "http://127.0.0.1:1/repo/v1");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cr") && !dbg.contains("XYZ"), "{dbg}");
        let expected = base64::engine::general_purpose::STANDARD.encode("admin:s3cr@t-XYZ");
        assert_eq!(c.authorization, format!("Basic {expected}"));
    }

    #[test]
    fn urls_without_credentials_are_refused_without_echoing_the_secret() {
        for bad in [
            "synapse+http://127.0.0.1/repo/v1",
            "synapse+ftp://a:b@h/",
            "http://a:b@h/",
            "synapse+http://key@h/",
        ] {
            let e = SynapseClient::from_url(bad, ClientOptions::default()).unwrap_err();
            assert!(matches!(e, SynapseError::InvalidInput(_)), "{bad}");
        }
    }
}
