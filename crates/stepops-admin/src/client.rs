//! A typed client for the Synapse admin endpoints the tasks use.
//!
//! URLs are built from validated typed values with proper percent-encoding (path segments and
//! query pairs, never string concatenation); bodies are `serde_json`; every error status is
//! mapped to a named [`AdminError`]. A 401 makes the client refresh the token once and retry the
//! request once.

use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, USER_AGENT};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::AdminError;
use crate::records::ProfileRecords;
use crate::token::{Token, TokenSource};
use crate::types::{ClientId, Email, EntityId, Feature, UserId, quote};

/// The user bundle mask that includes every documented part (profile 0x1, ORCID 0x2,
/// verification submission 0x4, certified 0x8, verified 0x10, ACT member 0x20, AR reviewer 0x40).
pub const USER_BUNDLE_MASK_ALL: u32 = 0x7F;
/// The user bundle mask for the certification flag only.
pub const USER_BUNDLE_MASK_CERTIFIED: u32 = 0x8;

/// Connection settings for one environment's service endpoint.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The service's base URL, for example `https://repo-prod.prod.sagebase.org` (the paths
    /// `/repo/v1/…` and `/auth/v1/…` are appended).
    pub base_url: Url,
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// Time allowed between two reads of the response.
    pub read_timeout: Duration,
    /// Time allowed for a whole request.
    pub request_timeout: Duration,
    /// Time allowed for all the requests of one task together: the token read, the reads, the
    /// write, and a token refresh plus the retried request after a 401 (default
    /// [`ClientConfig::DEFAULT_TASK_TIMEOUT`]). In the Lambda the invocation's own deadline
    /// (minus [`crate::handler::LAMBDA_MARGIN`]) takes its place; see [`crate::invoke_until`].
    pub task_timeout: Duration,
    /// Use the proxy named by `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` (default `true`).
    pub system_proxy: bool,
}

impl ClientConfig {
    /// The default time budget of one task's requests outside the Lambda (the local engine,
    /// `stepops admin --local`): 90 s.
    pub const DEFAULT_TASK_TIMEOUT: Duration = Duration::from_secs(90);

    /// Settings for `base_url` with the default timeouts (connect 5 s, read 30 s, whole
    /// request 60 s, one task's requests together 90 s). Only `http` and `https` URLs without credentials, query or fragment are
    /// accepted.
    pub fn new(base_url: &str) -> Result<Self, AdminError> {
        let url = Url::parse(base_url).map_err(|e| {
            AdminError::invalid(format!("endpoint {} is not a URL: {e}", quote(base_url)))
        })?;
        if !matches!(url.scheme(), "http" | "https")
            || url.cannot_be_a_base()
            || !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(AdminError::invalid(format!(
                "endpoint {} must be a plain http(s) URL such as https://repo-prod.prod.sagebase.org",
                quote(base_url)
            )));
        }
        if url.scheme() == "http" && !is_loopback(&url) {
            return Err(AdminError::invalid(format!(
                "endpoint {} must be https:// (the admin token is sent with every request); plain http:// is accepted only on loopback (127.0.0.0/8, ::1, localhost)",
                quote(base_url)
            )));
        }
        Ok(ClientConfig {
            base_url: url,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            task_timeout: Self::DEFAULT_TASK_TIMEOUT,
            system_proxy: true,
        })
    }
}

/// Whether `url`'s host is this machine: an address in 127.0.0.0/8, `::1`, or `localhost`.
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    // An IPv6 host is written in brackets.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// One HTTP request to the service, fully determined by validated values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Call {
    /// The HTTP method.
    #[serde(serialize_with = "ser_method")]
    pub method: Method,
    /// The path segments, unencoded (`["repo", "v1", "admin", "redact", "user", "3350396"]`).
    #[serde(skip)]
    pub segments: Vec<String>,
    /// The query pairs, unencoded.
    #[serde(skip)]
    pub query: Vec<(String, String)>,
    /// The JSON body, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Whether the request only reads.
    #[serde(skip)]
    pub read_only: bool,
}

fn ser_method<S: serde::Serializer>(m: &Method, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.as_str())
}

impl Call {
    fn new(method: Method, segments: &[&str]) -> Self {
        Call {
            read_only: method == Method::GET,
            method,
            segments: segments.iter().map(|s| (*s).to_owned()).collect(),
            query: Vec::new(),
            body: None,
        }
    }

    fn query(mut self, key: &str, value: impl ToString) -> Self {
        self.query.push((key.to_owned(), value.to_string()));
        self
    }

    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    /// The full URL of this call under `base`.
    pub fn url(&self, base: &Url) -> Result<Url, AdminError> {
        let mut url = base.clone();
        {
            let mut segs = url.path_segments_mut().map_err(|_| {
                AdminError::invalid(format!("endpoint {base} cannot be a base URL"))
            })?;
            segs.pop_if_empty();
            segs.extend(self.segments.iter());
        }
        if !self.query.is_empty() {
            url.query_pairs_mut().extend_pairs(self.query.iter());
        }
        Ok(url)
    }

    /// `METHOD /path?query` for logs and the audit record (the path as sent, encoded).
    pub fn describe(&self) -> String {
        // Any base works for the path; the host is not part of the description.
        let base = Url::parse("http://service.invalid/").expect("static URL");
        match self.url(&base) {
            Ok(u) => match u.query() {
                Some(q) => format!("{} {}?{}", self.method, u.path(), q),
                None => format!("{} {}", self.method, u.path()),
            },
            Err(_) => format!("{} <invalid>", self.method),
        }
    }
}

/// The endpoints, one constructor each. Paths were checked against the service's source and
/// documentation (see `docs/admin.md`).
pub mod api {
    use super::*;

    /// `GET /repo/v1/user/{id}/bundle?mask={mask}`: the user's bundle.
    pub fn get_user_bundle(user: UserId, mask: u32) -> Call {
        Call::new(
            Method::GET,
            &["repo", "v1", "user", &user.to_string(), "bundle"],
        )
        .query("mask", mask)
    }

    /// `POST /repo/v1/admin/redact/user/{id}`: redact all of the user's information (no body).
    pub fn redact_user(user: UserId) -> Call {
        Call::new(
            Method::POST,
            &["repo", "v1", "admin", "redact", "user", &user.to_string()],
        )
    }

    /// `GET /auth/v1/oauth2/client/{id}`: the OAuth client, with its etag.
    pub fn get_oauth_client(client: ClientId) -> Call {
        Call::new(
            Method::GET,
            &["auth", "v1", "oauth2", "client", &client.to_string()],
        )
    }

    /// `PUT /repo/v1/admin/oauth2/client/{id}/verified?status={status}&etag={etag}` (no body).
    pub fn set_oauth_client_verified(client: ClientId, status: bool, etag: &str) -> Call {
        Call::new(
            Method::PUT,
            &[
                "repo",
                "v1",
                "admin",
                "oauth2",
                "client",
                &client.to_string(),
                "verified",
            ],
        )
        .query("status", status)
        .query("etag", etag)
    }

    /// `PUT /repo/v1/entity/{id}/datatype?type=OPEN_DATA` (no body).
    pub fn make_entity_open_data(entity: EntityId) -> Call {
        Call::new(
            Method::PUT,
            &["repo", "v1", "entity", &entity.to_string(), "datatype"],
        )
        .query("type", "OPEN_DATA")
    }

    /// `PUT /repo/v1/admin/user/{id}/certificationStatus?isCertified={certified}` (no body).
    pub fn set_certification(user: UserId, certified: bool) -> Call {
        Call::new(
            Method::PUT,
            &[
                "repo",
                "v1",
                "admin",
                "user",
                &user.to_string(),
                "certificationStatus",
            ],
        )
        .query("isCertified", certified)
    }

    /// `PUT /repo/v1/admin/resetuserstatus/{id}` (no body).
    pub fn reset_user_status(user: UserId) -> Call {
        Call::new(
            Method::PUT,
            &["repo", "v1", "admin", "resetuserstatus", &user.to_string()],
        )
    }

    /// `POST /repo/v1/admin/emailQuarantine/expire` with `{"email": …}`.
    pub fn expire_email_quarantine(email: &Email) -> Call {
        Call::new(
            Method::POST,
            &["repo", "v1", "admin", "emailQuarantine", "expire"],
        )
        .body(json!({ "email": email.as_str() }))
    }

    /// `GET /repo/v1/admin/feature/{feature}/status`: the feature's `FeatureStatus`.
    pub fn get_feature_status(feature: Feature) -> Call {
        Call::new(
            Method::GET,
            &["repo", "v1", "admin", "feature", feature.as_str(), "status"],
        )
    }

    /// `POST /repo/v1/admin/feature/{feature}/status` with a `FeatureStatus`
    /// (`{"feature": …, "enabled": …}`).
    pub fn set_feature_status(feature: Feature, enabled: bool) -> Call {
        Call::new(
            Method::POST,
            &["repo", "v1", "admin", "feature", feature.as_str(), "status"],
        )
        .body(json!({ "feature": feature.as_str(), "enabled": enabled }))
    }
}

/// The HTTP client for one environment's service endpoint.
#[derive(Debug)]
pub struct SynapseClient<S> {
    http: reqwest::Client,
    base: Url,
    tokens: S,
    task_timeout: Duration,
    records: Option<ProfileRecords>,
}

impl<S: TokenSource> SynapseClient<S> {
    /// Builds the client (rustls, JSON, the configured timeouts).
    pub fn new(config: ClientConfig, tokens: S) -> Result<Self, AdminError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .timeout(config.request_timeout)
            .redirect(reqwest::redirect::Policy::none());
        if !config.system_proxy {
            builder = builder.no_proxy();
        }
        let http = builder
            .build()
            .map_err(|e| AdminError::Internal(format!("cannot build the HTTP client: {e}")))?;
        Ok(SynapseClient {
            http,
            base: config.base_url,
            tokens,
            task_timeout: config.task_timeout,
            records: None,
        })
    }

    /// Keeps what `remove-user` reads of a user in `records` before redacting (off by
    /// default: then nothing of the profile is kept anywhere).
    pub fn with_profile_records(mut self, records: Option<ProfileRecords>) -> Self {
        self.records = records;
        self
    }

    /// Where removed users' profiles are kept, if anywhere.
    pub fn profile_records(&self) -> Option<&ProfileRecords> {
        self.records.as_ref()
    }

    /// The base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// The time budget of one task's requests (see [`ClientConfig::task_timeout`]).
    pub fn task_timeout(&self) -> Duration {
        self.task_timeout
    }

    /// Sends `call` and returns its JSON answer (`null` for an empty body). On a 401 the token
    /// is refreshed once and the call retried once.
    pub async fn execute(&self, call: &Call) -> Result<Value, AdminError> {
        let url = call.url(&self.base)?;
        let what = call.describe();
        let token = self.tokens.token().await?;
        let mut resp = self.send_once(call, &url, &token, &what).await?;
        let mut used = token;
        if resp.status() == StatusCode::UNAUTHORIZED {
            tracing::info!(request = %what, "the service answered 401; refreshing the admin token and retrying once");
            let fresh = self.tokens.refresh(&used).await?;
            resp = self.send_once(call, &url, &fresh, &what).await?;
            used = fresh;
        }
        let status = resp.status();
        let text = resp.text().await.map_err(|e| transport_error(&what, &e))?;
        let text = scrub(&text, &used);
        tracing::debug!(request = %what, status = status.as_u16(), "admin request answered");
        if status.is_success() {
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            // The body is not quoted: a successful answer may hold personal data (a user's
            // bundle), which must not reach an error, a log line or a notification.
            return serde_json::from_str(&text).map_err(|e| {
                AdminError::Internal(format!(
                    "{what} answered {status} with a body of {} bytes that is not JSON ({e}); a proxy or a captive portal in the way?",
                    text.len()
                ))
            });
        }
        Err(status_error(&what, status, &text))
    }

    async fn send_once(
        &self,
        call: &Call,
        url: &Url,
        token: &Token,
        what: &str,
    ) -> Result<reqwest::Response, AdminError> {
        let mut auth =
            HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
                AdminError::Unauthorized(
                    "the admin token holds characters a header cannot carry".into(),
                )
            })?;
        auth.set_sensitive(true);
        let mut req = self
            .http
            .request(call.method.clone(), url.clone())
            .header(AUTHORIZATION, auth)
            .header(ACCEPT, "application/json")
            .header(
                USER_AGENT,
                concat!("stepops-admin/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(body) = &call.body {
            let bytes = serde_json::to_vec(body)
                .map_err(|e| AdminError::Internal(format!("cannot encode the body: {e}")))?;
            req = req.header(CONTENT_TYPE, "application/json").body(bytes);
        }
        req.send().await.map_err(|e| transport_error(what, &e))
    }
}

fn transport_error(what: &str, e: &reqwest::Error) -> AdminError {
    if e.is_timeout() {
        AdminError::Transient(format!("{what} timed out"))
    } else if e.is_connect() {
        AdminError::Transient(format!("{what}: cannot connect to the service"))
    } else if e.is_request() || e.is_body() {
        AdminError::Transient(format!("{what}: the connection failed"))
    } else {
        AdminError::Internal(format!("{what} failed: {}", e))
    }
}

/// Maps an error status to its named error, keeping the service's `reason` for the cause.
fn status_error(what: &str, status: StatusCode, text: &str) -> AdminError {
    let reason = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("reason").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| text.to_owned());
    let reason = excerpt(&reason);
    let msg = if reason.is_empty() {
        format!("{what} answered {status}")
    } else {
        format!("{what} answered {status}: {reason}")
    };
    match status.as_u16() {
        401 => AdminError::Unauthorized(format!(
            "{msg}; the admin token was refused even after reading it again: renew the token in the secret"
        )),
        403 => AdminError::Unauthorized(format!(
            "{msg}; the token's user lacks the privilege (an administrator is needed, and for make-public a member of the Access and Compliance Team) or the token lacks a scope (view, modify, authorize)"
        )),
        404 => AdminError::NotFound(format!("{msg}; check the id")),
        409 | 412 => AdminError::Conflict(format!(
            "{msg}; the object changed underneath: run the task again (it re-reads first)"
        )),
        s if s >= 500 => AdminError::Transient(msg),
        429 => AdminError::Transient(msg),
        _ => AdminError::Rejected(msg),
    }
}

/// Removes the token from text the service sent back, should it ever echo it.
fn scrub(text: &str, token: &Token) -> String {
    text.replace(token.expose(), "***")
}

fn excerpt(text: &str) -> String {
    let t = text.trim();
    let cut: String = t.chars().take(300).collect();
    if t.chars().count() > 300 {
        format!("{cut}…")
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_encode_their_parts() {
        let c = api::set_oauth_client_verified(ClientId::new(7).unwrap(), true, "a b&c=d/é");
        assert_eq!(
            c.describe(),
            "PUT /repo/v1/admin/oauth2/client/7/verified?status=true&etag=a+b%26c%3Dd%2F%C3%A9"
        );
        let base = Url::parse("http://127.0.0.1:9/prefix/").unwrap();
        assert_eq!(
            api::reset_user_status(UserId::new(5).unwrap())
                .url(&base)
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9/prefix/repo/v1/admin/resetuserstatus/5"
        );
    }

    #[test]
    fn endpoints_are_https_except_on_loopback() {
        use stepops_error::{ErrorName, Named};
        for good in [
            "https://repo-prod.prod.sagebase.org",
            "https://10.0.0.5:8443/base/",
            "http://127.0.0.1:8080",
            "http://127.10.20.30",
            "http://[::1]:9000/",
            "http://localhost:1234",
            "http://LOCALHOST",
        ] {
            assert!(ClientConfig::new(good).is_ok(), "{good}");
        }
        for bad in [
            "http://repo-prod.prod.sagebase.org",
            "http://10.0.0.5",
            "http://128.0.0.1",
            "http://0.0.0.0:80",
            "http://[::2]",
            "http://[::ffff:127.0.0.1]",
            "http://localhost.example.org",
            "http://127.0.0.1.nip.io",
        ] {
            let err = ClientConfig::new(bad).unwrap_err();
            assert_eq!(err.error_name(), ErrorName::InvalidInput, "{bad}");
            assert!(err.to_string().contains("must be https://"), "{bad}: {err}");
        }
    }

    #[test]
    fn config_refuses_odd_endpoints() {
        assert!(ClientConfig::new("https://repo-prod.prod.sagebase.org").is_ok());
        for bad in [
            "ftp://x",
            "https://user:pw@x",
            "https://x/?a=1",
            "not a url",
            "mailto:a@b.c",
        ] {
            assert!(ClientConfig::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn statuses_map_to_names() {
        use stepops_error::{ErrorName, Named};
        let name =
            |s: u16| status_error("GET /x", StatusCode::from_u16(s).unwrap(), "").error_name();
        assert_eq!(name(401), ErrorName::Unauthorized);
        assert_eq!(name(403), ErrorName::Unauthorized);
        assert_eq!(name(404), ErrorName::NotFound);
        assert_eq!(name(409), ErrorName::Conflict);
        assert_eq!(name(412), ErrorName::Conflict);
        assert_eq!(name(500), ErrorName::Transient);
        assert_eq!(name(503), ErrorName::Transient);
        assert_eq!(name(400), ErrorName::InvalidInput);
        assert_eq!(name(422), ErrorName::InvalidInput);
    }
}
