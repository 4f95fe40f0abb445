//! The admin token: where it comes from, how it is cached, and a type that never prints itself.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use stepops_secrets::{AwsSecretSource, SecretError, SecretSource};
use tokio::sync::Mutex;

use crate::error::AdminError;

/// The default Secrets Manager name of the admin personal access token of `environment`:
/// `stepops/ENV/synapse-admin-pat`, inside the environment's own names (docs/security.md), as
/// the template's `AdminSecretName` default.
pub fn default_secret_name(environment: stepops_error::Environment) -> String {
    format!("stepops/{environment}/synapse-admin-pat")
}

/// A name for an admin token secret (the dev default); tests and examples.
pub const DEFAULT_SECRET_NAME: &str = "stepops/dev/synapse-admin-pat";

/// A bearer token. `Debug` and `Display` print `Token(***)`; only [`Token::expose`] gives the
/// value, and only the HTTP client calls it, to build the `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Arc<str>);

impl Token {
    /// Wraps a token value, trimming surrounding whitespace (a trailing newline in a file or a
    /// secret is common). Refuses an empty value.
    pub fn new(value: impl AsRef<str>) -> Result<Self, AdminError> {
        let v = value.as_ref().trim();
        if v.is_empty() {
            return Err(AdminError::Unauthorized(
                "the admin token is empty; put the personal access token into the secret".into(),
            ));
        }
        if v.chars().any(|c| c.is_control() || c == ' ') {
            return Err(AdminError::Unauthorized(
                "the admin token contains spaces or control characters; store the bare token"
                    .into(),
            ));
        }
        Ok(Token(Arc::from(v)))
    }

    /// The secret value. Use it for the `Authorization` header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where the admin token comes from.
pub trait TokenSource: Send + Sync {
    /// The current token (cached after the first call).
    fn token(&self) -> impl Future<Output = Result<Token, AdminError>> + Send;

    /// Called after the service answered 401 to `rejected`: fetches the token again, unless
    /// another caller already replaced it, and returns the token to retry with.
    fn refresh(&self, rejected: &Token) -> impl Future<Output = Result<Token, AdminError>> + Send;
}

/// Reads the token from AWS Secrets Manager by name (through the shared [`SecretSource`]),
/// once per process; a 401 makes it read the secret again (the token may have been rotated).
#[derive(Debug)]
pub struct SecretsManagerTokenSource {
    source: AwsSecretSource,
    secret_id: String,
    cached: Mutex<Option<Token>>,
}

impl SecretsManagerTokenSource {
    /// A source for the secret `secret_id` (for example [`DEFAULT_SECRET_NAME`]).
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        SecretsManagerTokenSource {
            source: AwsSecretSource::secrets_manager(client),
            secret_id: secret_id.into(),
            cached: Mutex::new(None),
        }
    }

    /// The secret's name.
    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    async fn fetch(&self) -> Result<Token, AdminError> {
        let id = &self.secret_id;
        tracing::debug!(secret_id = %id, "reading the admin token from Secrets Manager");
        let value = self
            .source
            .secret(id)
            .await
            .map_err(|e| secret_error(id, e))?;
        Token::new(value.expose()).map_err(|e| match e {
            AdminError::Unauthorized(m) => AdminError::Unauthorized(format!("secret {id}: {m}")),
            other => other,
        })
    }
}

/// The admin function's name for a failed read of the token's secret `id`.
fn secret_error(id: &str, err: SecretError) -> AdminError {
    match err {
        SecretError::NotFound(_) => AdminError::NotFound(err.to_string()),
        SecretError::Denied(_) => AdminError::Unauthorized(err.to_string()),
        SecretError::Unavailable(..) => AdminError::Transient(err.to_string()),
        SecretError::NoValue(_) => AdminError::Unauthorized(format!(
            "secret {id} has no string value; store the token as the secret string"
        )),
        SecretError::Invalid(_) | SecretError::BadValue(..) => {
            AdminError::InvalidInput(err.to_string())
        }
    }
}

impl TokenSource for SecretsManagerTokenSource {
    async fn token(&self) -> Result<Token, AdminError> {
        let mut cached = self.cached.lock().await;
        if let Some(t) = cached.as_ref() {
            return Ok(t.clone());
        }
        let t = self.fetch().await?;
        *cached = Some(t.clone());
        Ok(t)
    }

    async fn refresh(&self, rejected: &Token) -> Result<Token, AdminError> {
        let mut cached = self.cached.lock().await;
        if let Some(t) = cached.as_ref()
            && t != rejected
        {
            return Ok(t.clone());
        }
        let t = self.fetch().await?;
        *cached = Some(t.clone());
        Ok(t)
    }
}

/// Reads the token locally, so the same code runs under the local engine and on a laptop: from
/// an environment variable if it is set, else from a file. Read again on a 401.
#[derive(Debug, Clone)]
pub struct LocalTokenSource {
    env_var: Option<String>,
    file: Option<PathBuf>,
}

impl LocalTokenSource {
    /// A source that tries the environment variable `env_var`, then `file`.
    pub fn new(env_var: Option<String>, file: Option<PathBuf>) -> Self {
        LocalTokenSource { env_var, file }
    }

    /// The conventional local source for an environment: `STEPOPS_ADMIN_TOKEN_DEV` /
    /// `STEPOPS_ADMIN_TOKEN_PROD`, else the file named by `STEPOPS_ADMIN_TOKEN_FILE`.
    pub fn for_environment(env: crate::types::Environment) -> Self {
        LocalTokenSource {
            env_var: Some(format!(
                "STEPOPS_ADMIN_TOKEN_{}",
                env.as_str().to_uppercase()
            )),
            file: std::env::var_os("STEPOPS_ADMIN_TOKEN_FILE").map(PathBuf::from),
        }
    }

    fn read(&self) -> Result<Token, AdminError> {
        // Names where the token is looked up, never its value (the CLI's tests look for this
        // line to prove that refused arguments never reach the token source).
        tracing::debug!(
            variable = self.env_var.as_deref().unwrap_or(""),
            file = %self.file.as_deref().map(|p| p.display().to_string()).unwrap_or_default(),
            "reading the admin token (local source)"
        );
        if let Some(var) = &self.env_var
            && let Ok(v) = std::env::var(var)
        {
            return Token::new(v)
                .map_err(|e| AdminError::Unauthorized(format!("environment variable {var}: {e}")));
        }
        if let Some(path) = &self.file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                AdminError::Unauthorized(format!(
                    "cannot read the admin token file {}: {e}",
                    path.display()
                ))
            })?;
            return Token::new(text)
                .map_err(|e| AdminError::Unauthorized(format!("file {}: {e}", path.display())));
        }
        Err(AdminError::Unauthorized(format!(
            "no local admin token: set {} or point STEPOPS_ADMIN_TOKEN_FILE at a file holding it",
            self.env_var.as_deref().unwrap_or("the token variable")
        )))
    }
}

impl TokenSource for LocalTokenSource {
    async fn token(&self) -> Result<Token, AdminError> {
        self.read()
    }

    async fn refresh(&self, _rejected: &Token) -> Result<Token, AdminError> {
        self.read()
    }
}

impl<T: TokenSource> TokenSource for Arc<T> {
    fn token(&self) -> impl Future<Output = Result<Token, AdminError>> + Send {
        (**self).token()
    }

    fn refresh(&self, rejected: &Token) -> impl Future<Output = Result<Token, AdminError>> + Send {
        (**self).refresh(rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_never_prints_itself() {
        let t = Token::new("  s3cr3t-value\n").unwrap();
        assert_eq!(t.expose(), "s3cr3t-value");
        assert_eq!(format!("{t:?}"), "Token(***)");
        assert_eq!(format!("{t}"), "***");
        assert!(!format!("{:?}", Some(t.clone())).contains("s3cr3t"));
        assert!(Token::new(" \n").is_err());
        assert!(Token::new("a b").is_err());
    }

    #[tokio::test]
    async fn local_source_reads_a_file_and_rereads_on_refresh() {
        let dir = std::env::temp_dir().join(format!("stepops-admin-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "first\n").unwrap();
        let src = LocalTokenSource::new(None, Some(path.clone()));
        let t = src.token().await.unwrap();
        assert_eq!(t.expose(), "first");
        std::fs::write(&path, "second").unwrap();
        assert_eq!(src.refresh(&t).await.unwrap().expose(), "second");
        std::fs::remove_dir_all(&dir).unwrap();
        let missing = LocalTokenSource::new(None, None).token().await.unwrap_err();
        assert!(matches!(missing, AdminError::Unauthorized(_)));
    }
}
