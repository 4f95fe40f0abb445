//! Targets and secrets: `{"secret": NAME}` (Secrets Manager), `{"parameter": NAME}` (SSM
//! SecureString) and `{"url": URL}` (local runs; a password inline is refused) resolve to a
//! database URL held in a [`Secret`], which never prints its value. Values are cached per
//! process for `secret_cache` (rotation is picked up after that).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use stepops_error::{ErrorName, Named};

/// A secret value (a database URL, a token). `Debug` and `Display` print `[redacted]`; read the
/// value with [`Secret::expose`] only where it is handed to a driver.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Arc::from(value.into()))
    }

    /// The value itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where a database URL comes from, as a step's `source`/`dest`/`target` argument names it.
/// Its `Display` names the reference (`secret stepops/dev/source-db`), never a value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A Secrets Manager secret: a URL, or JSON with `url`, or the RDS shape
    /// (`engine, host, port, username, password, dbname`).
    Secret(String),
    /// An SSM parameter (SecureString), read with decryption.
    Parameter(String),
    /// A URL given inline (local runs): no password allowed.
    Url(Secret),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Secret(name) => write!(f, "secret {name}"),
            Target::Parameter(name) => write!(f, "parameter {name}"),
            Target::Url(url) => write!(f, "url {}", url_scheme(url.expose())),
        }
    }
}

fn url_scheme(url: &str) -> String {
    match url.split_once(':') {
        Some((scheme, _)) => format!("{scheme}:…"),
        None => "…".to_owned(),
    }
}

impl Target {
    /// Parses a target argument; `what` names the argument in errors (`source`, `dest`).
    pub fn from_json(what: &str, value: &Value) -> Result<Target, SecretError> {
        let invalid = |msg: String| SecretError::Invalid(format!("argument `{what}`: {msg}"));
        let Some(obj) = value.as_object() else {
            return Err(invalid(
                "expected an object {\"secret\": NAME}, {\"parameter\": NAME} or {\"url\": URL}"
                    .into(),
            ));
        };
        if obj.len() != 1 {
            return Err(invalid(format!(
                "expected exactly one of `secret`, `parameter`, `url`; got keys {:?}",
                obj.keys().collect::<Vec<_>>()
            )));
        }
        let (key, v) = obj.iter().next().expect("one key");
        let Some(s) = v.as_str().filter(|s| !s.trim().is_empty()) else {
            return Err(invalid(format!("`{key}` must be a non-empty string")));
        };
        match key.as_str() {
            "secret" => Ok(Target::Secret(s.to_owned())),
            "parameter" => Ok(Target::Parameter(s.to_owned())),
            "url" => {
                if url_has_password(s) {
                    return Err(invalid(
                        "the URL holds a password inline; store it in Secrets Manager or SSM \
                         and pass {\"secret\": NAME} or {\"parameter\": NAME} instead"
                            .into(),
                    ));
                }
                Ok(Target::Url(Secret::new(s)))
            }
            other => Err(invalid(format!(
                "unknown key `{other}`; expected `secret`, `parameter` or `url`"
            ))),
        }
    }
}

/// Whether `scheme://user:password@host…` carries a password (or `password=` in a query or
/// key/value connection string).
pub fn url_has_password(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    if lower.contains("password=") {
        return true;
    }
    if let Some((_, rest)) = url.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            return userinfo.contains(':');
        }
    }
    false
}

/// Why a target could not be resolved. Messages name the reference, never a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The target argument is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The secret or parameter does not exist.
    #[error("{0} does not exist: create it or fix the name in the execution input")]
    NotFound(String),
    /// The runner's role may not read it.
    #[error("access to {0} was denied: grant the runner's role read access to it")]
    Denied(String),
    /// The service could not be reached or failed; worth retrying.
    #[error("cannot read {0}: {1}")]
    Unavailable(String, String),
    /// The secret exists but its value is not a usable URL.
    #[error("{0} does not hold a database URL: {1}")]
    BadValue(String, String),
}

impl Named for SecretError {
    fn error_name(&self) -> ErrorName {
        match self {
            SecretError::Invalid(_) | SecretError::BadValue(..) => ErrorName::InvalidInput,
            SecretError::NotFound(_) => ErrorName::NotFound,
            SecretError::Denied(_) => ErrorName::Unauthorized,
            SecretError::Unavailable(..) => ErrorName::Transient,
        }
    }
}

/// Reads secret values by name (Secrets Manager, SSM); implemented by [`AwsSecretSource`] and
/// by tests.
pub trait SecretSource: Send + Sync + 'static {
    /// The value of the Secrets Manager secret `name` (its `SecretString`).
    fn secret(&self, name: &str) -> impl Future<Output = Result<Secret, SecretError>> + Send;
    /// The decrypted value of the SSM parameter `name`.
    fn parameter(&self, name: &str) -> impl Future<Output = Result<Secret, SecretError>> + Send;
}

/// Secrets Manager and SSM through the AWS SDK.
#[derive(Clone, Debug)]
pub struct AwsSecretSource {
    secrets: aws_sdk_secretsmanager::Client,
    ssm: aws_sdk_ssm::Client,
}

impl AwsSecretSource {
    /// Builds both clients from one shared AWS configuration.
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        AwsSecretSource {
            secrets: aws_sdk_secretsmanager::Client::new(config),
            ssm: aws_sdk_ssm::Client::new(config),
        }
    }
}

fn sdk_error_code<E, R>(err: &aws_sdk_ssm::error::SdkError<E, R>) -> Option<String>
where
    E: aws_sdk_ssm::error::ProvideErrorMetadata,
{
    err.as_service_error()
        .and_then(|e| e.code())
        .map(str::to_owned)
}

fn classify(reference: String, code: Option<String>, display: String) -> SecretError {
    match code.as_deref() {
        Some("ResourceNotFoundException" | "ParameterNotFound" | "ParameterVersionNotFound") => {
            SecretError::NotFound(reference)
        }
        Some("AccessDeniedException" | "AccessDenied" | "UnrecognizedClientException") => {
            SecretError::Denied(reference)
        }
        Some("InvalidKeyId" | "DecryptionFailure") => SecretError::Denied(reference),
        _ => SecretError::Unavailable(reference, display),
    }
}

impl SecretSource for AwsSecretSource {
    async fn secret(&self, name: &str) -> Result<Secret, SecretError> {
        let reference = format!("secret {name}");
        let out = self
            .secrets
            .get_secret_value()
            .secret_id(name)
            .send()
            .await
            .map_err(|e| {
                classify(
                    reference.clone(),
                    sdk_error_code(&e),
                    aws_sdk_ssm::error::DisplayErrorContext(&e).to_string(),
                )
            })?;
        out.secret_string
            .map(Secret::new)
            .ok_or_else(|| SecretError::BadValue(reference, "it has no SecretString".into()))
    }

    async fn parameter(&self, name: &str) -> Result<Secret, SecretError> {
        let reference = format!("parameter {name}");
        let out = self
            .ssm
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| {
                classify(
                    reference.clone(),
                    sdk_error_code(&e),
                    aws_sdk_ssm::error::DisplayErrorContext(&e).to_string(),
                )
            })?;
        out.parameter
            .and_then(|p| p.value)
            .map(Secret::new)
            .ok_or_else(|| SecretError::BadValue(reference, "it has no value".into()))
    }
}

/// A source with no secrets (local runs, where targets are `{"url": …}`): every name is
/// `Stepops.NotFound`.
#[derive(Debug, Clone, Default)]
pub struct NoSecretSource;

impl SecretSource for NoSecretSource {
    async fn secret(&self, name: &str) -> Result<Secret, SecretError> {
        Err(SecretError::NotFound(format!(
            "secret {name} (this runner reads no secrets)"
        )))
    }
    async fn parameter(&self, name: &str) -> Result<Secret, SecretError> {
        Err(SecretError::NotFound(format!(
            "parameter {name} (this runner reads no secrets)"
        )))
    }
}

/// Resolves [`Target`]s to database URLs through a [`SecretSource`], caching values for a
/// while, and remembers every value it handed out so that [`Resolver::redact`] can scrub them
/// (and the passwords inside them) from any text before it is logged or sent.
pub struct Resolver<S> {
    source: S,
    ttl: Duration,
    cache: Mutex<HashMap<Target, (Secret, Instant)>>,
    known: Mutex<Vec<String>>,
}

impl<S: SecretSource> Resolver<S> {
    /// A resolver that keeps values for `ttl`.
    pub fn new(source: S, ttl: Duration) -> Self {
        Resolver {
            source,
            ttl,
            cache: Mutex::new(HashMap::new()),
            known: Mutex::new(Vec::new()),
        }
    }

    /// The database URL `target` names.
    pub async fn resolve(&self, target: &Target) -> Result<Secret, SecretError> {
        if let Some((value, at)) = self.cache.lock().expect("cache lock").get(target)
            && at.elapsed() < self.ttl
        {
            return Ok(value.clone());
        }
        let raw = match target {
            Target::Url(url) => url.clone(),
            Target::Secret(name) => self.source.secret(name).await?,
            Target::Parameter(name) => self.source.parameter(name).await?,
        };
        self.remember(raw.expose());
        let url = database_url(&target.to_string(), &raw)?;
        self.remember(url.expose());
        self.cache
            .lock()
            .expect("cache lock")
            .insert(target.clone(), (url.clone(), Instant::now()));
        Ok(url)
    }

    fn remember(&self, value: &str) {
        let mut known = self.known.lock().expect("known lock");
        for piece in secret_pieces(value) {
            if !known.contains(&piece) {
                known.push(piece);
            }
        }
        // Longest first, so that a URL is replaced whole before its password is.
        known.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// `text` with every secret value this resolver has seen replaced by `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        let known = self.known.lock().expect("known lock");
        let mut out = text.to_owned();
        for value in known.iter() {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), "[redacted]");
            }
        }
        out
    }
}

/// The strings worth scrubbing from a secret value: the whole value, a password in a URL, and
/// the `password` of a JSON secret.
fn secret_pieces(value: &str) -> Vec<String> {
    let mut pieces = vec![value.to_owned()];
    if let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(value) {
        for key in ["password", "url", "token"] {
            if let Some(s) = obj.get(key).and_then(Value::as_str) {
                pieces.extend(secret_pieces(s));
            }
        }
    }
    if let Some((_, rest)) = value.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && let Some((_, password)) = userinfo.split_once(':')
        {
            pieces.push(password.to_owned());
            pieces.push(percent_decode(password));
        }
    }
    pieces.retain(|p| p.len() >= 4);
    pieces
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Turns a secret's value into a database URL: a URL as is, JSON `{"url": …}`, or the RDS
/// secret shape `{engine, host, port, username, password, dbname}`.
fn database_url(reference: &str, raw: &Secret) -> Result<Secret, SecretError> {
    let text = raw.expose().trim();
    if !text.starts_with('{') {
        if text.contains(':') {
            return Ok(Secret::new(text));
        }
        return Err(SecretError::BadValue(
            reference.to_owned(),
            "expected a URL (postgres://…, sqlite:…) or JSON".into(),
        ));
    }
    let bad = |msg: &str| SecretError::BadValue(reference.to_owned(), msg.to_owned());
    let obj: serde_json::Map<String, Value> =
        serde_json::from_str(text).map_err(|_| bad("the value is neither a URL nor valid JSON"))?;
    if let Some(url) = obj.get("url").and_then(Value::as_str) {
        return Ok(Secret::new(url));
    }
    let field = |k: &str| -> Option<String> {
        match obj.get(k)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let engine = field("engine").unwrap_or_else(|| "postgres".into());
    if !engine.starts_with("postgres") && engine != "aurora-postgresql" {
        return Err(bad(
            "JSON secrets must be PostgreSQL (`engine: postgres`) or hold `url`",
        ));
    }
    let host = field("host").ok_or_else(|| bad("the JSON has no `url` and no `host`"))?;
    let user = field("username").ok_or_else(|| bad("the JSON has no `username`"))?;
    let port = field("port").unwrap_or_else(|| "5432".into());
    let db = field("dbname").unwrap_or_else(|| "postgres".into());
    let password = field("password").unwrap_or_default();
    let auth = if password.is_empty() {
        percent_encode(&user)
    } else {
        format!("{}:{}", percent_encode(&user), percent_encode(&password))
    };
    Ok(Secret::new(format!("postgres://{auth}@{host}:{port}/{db}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Fake {
        calls: AtomicUsize,
    }
    impl SecretSource for Fake {
        async fn secret(&self, name: &str) -> Result<Secret, SecretError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match name {
                "plain" => Ok(Secret::new("postgres://app:hunter2-secret@db:5432/app")),
                "rds" => Ok(Secret::new(
                    json!({"engine": "postgres", "host": "db", "port": 5432,
                           "username": "app", "password": "p@ss/word", "dbname": "app"})
                    .to_string(),
                )),
                _ => Err(SecretError::NotFound(format!("secret {name}"))),
            }
        }
        async fn parameter(&self, _name: &str) -> Result<Secret, SecretError> {
            Ok(Secret::new("sqlite:/tmp/x.db"))
        }
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("postgres://u:pw@h/db");
        assert_eq!(format!("{s:?} {s}"), "Secret([redacted]) [redacted]");
        let t = Target::Url(s);
        assert_eq!(t.to_string(), "url postgres:…");
        assert!(!format!("{t:?}").contains("pw"));
    }

    #[test]
    fn targets_parse_and_refuse_inline_passwords() {
        assert_eq!(
            Target::from_json("source", &json!({"secret": "a/b"})).unwrap(),
            Target::Secret("a/b".into())
        );
        assert_eq!(
            Target::from_json("dest", &json!({"parameter": "/p"})).unwrap(),
            Target::Parameter("/p".into())
        );
        assert!(Target::from_json("dest", &json!({"url": "sqlite:/tmp/a.db"})).is_ok());
        assert!(Target::from_json("dest", &json!({"url": "postgres://u@h/db"})).is_ok());
        let err = Target::from_json("dest", &json!({"url": "postgres://u:pw@h/db"})).unwrap_err();
        assert_eq!(err.error_name(), ErrorName::InvalidInput);
        assert!(err.to_string().contains("argument `dest`"));
        assert!(!err.to_string().contains("pw"));
        let err = Target::from_json("source", &json!({"secret": "a", "url": "b"})).unwrap_err();
        assert!(err.to_string().contains("exactly one"), "{err}");
        assert!(Target::from_json("source", &json!("sqlite:x")).is_err());
        assert!(Target::from_json("source", &json!({"file": "x"})).is_err());
        assert!(url_has_password("host=h user=u password=x"));
    }

    #[tokio::test]
    async fn resolves_caches_and_redacts() {
        let r = Resolver::new(
            Fake {
                calls: AtomicUsize::new(0),
            },
            Duration::from_secs(60),
        );
        let t = Target::Secret("plain".into());
        let url = r.resolve(&t).await.unwrap();
        assert_eq!(url.expose(), "postgres://app:hunter2-secret@db:5432/app");
        r.resolve(&t).await.unwrap();
        assert_eq!(r.source.calls.load(Ordering::SeqCst), 1, "cached");
        let rds = r.resolve(&Target::Secret("rds".into())).await.unwrap();
        assert_eq!(rds.expose(), "postgres://app:p%40ss%2Fword@db:5432/app");
        let text = "connect postgres://app:hunter2-secret@db:5432/app failed; \
                    password hunter2-secret; other p@ss/word";
        let red = r.redact(text);
        assert!(!red.contains("hunter2"), "{red}");
        assert!(!red.contains("p@ss/word"), "{red}");
        let err = r.resolve(&Target::Secret("nope".into())).await.unwrap_err();
        assert_eq!(err.error_name(), ErrorName::NotFound);
        assert!(err.to_string().contains("secret nope"));
    }
}
