//! Targets and secrets: a [`TargetRef`] (`{"secret": NAME}` for Secrets Manager,
//! `{"parameter": NAME}` for an SSM SecureString, `{"url": URL}` for local runs, a password
//! inline refused) resolves to a database URL held in a [`Secret`], which never prints its
//! value. Values are cached per process for `secret_cache` (rotation is picked up after that).
//! No input can panic a resolver: its locks recover from poisoning, and the parsing of secret
//! values never slices text inside a character. Values are read through the shared
//! [`SecretSource`] (`stepops-secrets`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use stepops_error::url::{percent_decode, percent_encode};
use stepops_error::{TargetKind, TargetRef};
pub use stepops_secrets::{AwsSecretSource, NoSecretSource, Secret, SecretError, SecretSource};

/// Parses a step's target argument `field` (`source`, `dest`, `target`) into the shared
/// [`TargetRef`]: exactly one of `secret`, `parameter`, `url`; a URL with a password inline is
/// refused.
pub fn target_arg(field: &str, value: Option<&Value>) -> Result<TargetRef, SecretError> {
    TargetRef::from_json(field, value)
        .map_err(|why| SecretError::Invalid(format!("argument {why}")))
}

/// Resolves [`TargetRef`]s to database URLs through a [`SecretSource`], caching values for a
/// while, and remembers every value it handed out so that [`Resolver::redact`] can scrub them
/// (and the passwords inside them) from any text before it is logged or sent.
pub struct Resolver<S> {
    source: S,
    ttl: Duration,
    cache: Mutex<HashMap<TargetRef, (Secret, Instant)>>,
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
    pub async fn resolve(&self, target: &TargetRef) -> Result<Secret, SecretError> {
        if let Some((value, at)) = lock(&self.cache).get(target)
            && at.elapsed() < self.ttl
        {
            return Ok(value.clone());
        }
        let raw = self.raw_value(target).await?;
        let url = database_url(&target.to_string(), &raw)?;
        self.remember(url.expose());
        lock(&self.cache).insert(target.clone(), (url.clone(), Instant::now()));
        Ok(url)
    }

    /// The value of a secret or parameter as stored (not read as a database URL), remembered
    /// for [`Resolver::redact`]; a `url` target is its own value.
    pub async fn raw_value(&self, target: &TargetRef) -> Result<Secret, SecretError> {
        let raw = match target.kind {
            TargetKind::Url => Secret::new(target.name.clone()),
            TargetKind::Secret => self.source.secret(&target.name).await?,
            TargetKind::Parameter => self.source.parameter(&target.name).await?,
        };
        self.remember(raw.expose());
        Ok(raw)
    }

    fn remember(&self, value: &str) {
        let mut known = lock(&self.known);
        for piece in secret_pieces(value) {
            if !known.contains(&piece) {
                known.push(piece);
            }
        }
        // Longest first, so that a URL is replaced whole before its password is.
        known.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// `text` with every secret value this resolver has seen replaced by `[redacted]`, then
    /// through the shared [`stepops_error::redact`] (passwords in URLs, `password=`, tokens).
    pub fn redact(&self, text: &str) -> String {
        let known = lock(&self.known);
        let mut out = text.to_owned();
        for value in known.iter() {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), "[redacted]");
            }
        }
        stepops_error::redact(&out)
    }
}

/// Locks `m`, recovering the data if a thread panicked while holding it: the cache and the
/// list of known values stay usable for every later task.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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

/// Where the runner's instance keeps the Amazon RDS CA bundle (installed at boot by the
/// template's user data): an RDS-shaped secret verifies the server against it by default.
pub const RDS_CA_BUNDLE: &str = "/opt/stepops/rds-global-bundle.pem";

/// Turns a secret's value into a database URL: a URL as is, JSON `{"url": …}`, or the RDS
/// secret shape `{engine, host, port, username, password, dbname}`, which connects with
/// `sslmode=verify-full` against [`RDS_CA_BUNDLE`] unless the secret says otherwise
/// (`sslmode`, `sslrootcert` fields).
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
    let sslmode = field("sslmode").unwrap_or_else(|| "verify-full".into());
    let mut query = format!("sslmode={}", percent_encode(&sslmode));
    match field("sslrootcert") {
        Some(root) => query.push_str(&format!("&sslrootcert={}", percent_encode(&root))),
        None if sslmode.starts_with("verify") => {
            query.push_str(&format!("&sslrootcert={}", percent_encode(RDS_CA_BUNDLE)))
        }
        None => {}
    }
    Ok(Secret::new(format!(
        "postgres://{auth}@{host}:{port}/{db}?{query}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use stepops_error::{ErrorName, Named};

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
    }

    #[test]
    fn target_arguments_parse_and_refuse_inline_passwords() {
        let parse = |field, v: Value| target_arg(field, Some(&v));
        assert_eq!(
            parse("source", json!({"secret": "a/b"}))
                .unwrap()
                .to_string(),
            "secret a/b"
        );
        assert_eq!(
            parse("dest", json!({"parameter": "/p"})).unwrap().kind,
            TargetKind::Parameter
        );
        assert!(parse("dest", json!({"url": "sqlite:/tmp/a.db"})).is_ok());
        assert!(parse("dest", json!({"url": "postgres://u@h/db"})).is_ok());
        let err = parse("dest", json!({"url": "postgres://u:pw@h/db"})).unwrap_err();
        assert_eq!(err.error_name(), ErrorName::InvalidInput);
        assert!(err.to_string().contains("argument `dest.url`"), "{err}");
        assert!(!err.to_string().contains(":pw@"), "{err}");
        let err = parse("source", json!({"secret": "a", "url": "b"})).unwrap_err();
        assert!(err.to_string().contains("exactly one"), "{err}");
        assert!(parse("source", json!("sqlite:x")).is_err());
        assert!(parse("source", json!({"file": "x"})).is_err());
        assert!(target_arg("source", None).is_err());
    }

    #[test]
    fn percent_decoding_never_panics_on_multi_byte_characters() {
        assert_eq!(percent_decode("p%40ss%2Fword"), "p@ss/word");
        for tricky in [
            "%é",
            "%aé",
            "é%",
            "%",
            "%%",
            "%4",
            "%zz",
            "a%€b",
            "%\u{10FFFF}1",
        ] {
            let _ = percent_decode(tricky);
        }
        assert_eq!(percent_decode("%é1"), "%é1");
        // The whole path a secret value takes: a password with `%` before a multi-byte
        // character is decoded without panicking under the resolver's lock.
        let pieces = secret_pieces("postgres://app:ab%écd1234@db/x");
        assert!(pieces.iter().any(|p| p == "ab%écd1234"), "{pieces:?}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

        /// Secret values are whatever an operator stored: no value, and no text handed to the
        /// redactor, may panic the runner (a panic under the resolver's lock would poison it
        /// for every later task of the process).
        #[test]
        fn no_secret_value_panics(value in "\\PC*", text in "\\PC*") {
            let _ = percent_decode(&value);
            let _ = secret_pieces(&value);
            let _ = database_url("secret x", &Secret::new(value.clone()));
            let r = Resolver::new(NoSecretSource, Duration::from_secs(60));
            r.remember(&value);
            let _ = r.redact(&text);
        }

        /// A password the resolver handed out never survives its redactor, whatever the
        /// text around it.
        #[test]
        fn a_resolved_password_never_survives(
            password in "[A-Za-z0-9!$()*+,;=:@/._~%?#é€-]{6,24}",
            before in "\\PC{0,30}",
            after in "\\PC{0,30}",
        ) {
            let r = Resolver::new(NoSecretSource, Duration::from_secs(60));
            let url = format!("postgres://app:{}@db/main", percent_encode(&password));
            r.remember(&url);
            let text = format!("{before}{url}{after} and {password}");
            let out = r.redact(&text);
            proptest::prop_assert!(!out.contains(&password), "{}", out);
        }
    }

    #[tokio::test]
    async fn resolves_caches_and_redacts() {
        let r = Resolver::new(
            Fake {
                calls: AtomicUsize::new(0),
            },
            Duration::from_secs(60),
        );
        let secret = |name: &str| TargetRef {
            kind: TargetKind::Secret,
            name: name.into(),
        };
        let t = secret("plain");
        let url = r.resolve(&t).await.unwrap();
        assert_eq!(url.expose(), "postgres://app:hunter2-secret@db:5432/app");
        r.resolve(&t).await.unwrap();
        assert_eq!(r.source.calls.load(Ordering::SeqCst), 1, "cached");
        let rds = r.resolve(&secret("rds")).await.unwrap();
        assert_eq!(
            rds.expose(),
            "postgres://app:p%40ss%2Fword@db:5432/app?sslmode=verify-full\
             &sslrootcert=%2Fopt%2Fstepops%2Frds-global-bundle.pem"
        );
        let text = "connect postgres://app:hunter2-secret@db:5432/app failed; \
                    password hunter2-secret; other p@ss/word";
        let red = r.redact(text);
        assert!(!red.contains("hunter2"), "{red}");
        assert!(!red.contains("p@ss/word"), "{red}");
        let err = r.resolve(&secret("nope")).await.unwrap_err();
        assert_eq!(err.error_name(), ErrorName::NotFound);
        assert!(err.to_string().contains("secret nope"));
    }
}
