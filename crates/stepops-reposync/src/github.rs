//! GitHub App authentication and the branch download: an RS256 JWT (issued 60 s in the past,
//! expiring 9 minutes ahead) exchanged for an installation token, cached until five minutes
//! before its expiry; the zipball streamed to a temporary file under a size limit and a
//! timeout. Neither the key nor a token is ever logged or put in an error.

use std::io::Write;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::error::{SyncError, local};

/// How long before its expiry a cached installation token is replaced.
pub const TOKEN_MARGIN: Duration = Duration::from_secs(300);

/// A GitHub App's private key (RSA, PEM). Its `Debug` shows nothing of the key.
pub struct AppKey(RsaKeyPair);

impl std::fmt::Debug for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppKey(…)")
    }
}

impl AppKey {
    /// Reads a PEM key: PKCS#1 (`BEGIN RSA PRIVATE KEY`, what GitHub generates) or PKCS#8.
    pub fn from_pem(pem: &str) -> Result<AppKey, SyncError> {
        let bad = |m: &str| SyncError::PrivateKey(m.to_owned());
        let pem = pem.trim();
        let (label, rest) = pem
            .strip_prefix("-----BEGIN ")
            .and_then(|r| r.split_once("-----"))
            .ok_or_else(|| bad("not a PEM block"))?;
        let end = format!("-----END {label}-----");
        let body = rest
            .trim()
            .strip_suffix(end.as_str())
            .ok_or_else(|| bad("the PEM block is not closed"))?;
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = STANDARD
            .decode(b64)
            .map_err(|_| bad("the PEM body is not base64"))?;
        let pair = match label {
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
            "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
            _ => return Err(bad("not an RSA private key")),
        }
        .map_err(|e| SyncError::PrivateKey(format!("not a usable RSA key ({e})")))?;
        Ok(AppKey(pair))
    }

    /// The public key (PKCS#1 `RSAPublicKey` DER), to verify signatures with.
    pub fn public_key_der(&self) -> Vec<u8> {
        use ring::signature::KeyPair;
        self.0.public_key().as_ref().to_vec()
    }

    /// The app's JWT at `now`: `iat` 60 s in the past, `exp` 9 minutes ahead, issuer `app_id`.
    pub fn jwt(&self, app_id: &str, now: DateTime<Utc>) -> Result<String, SyncError> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "iat": now.timestamp() - 60,
            "exp": now.timestamp() + 540,
            "iss": app_id,
        });
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let message = format!("{header}.{payload}");
        let mut sig = vec![0; self.0.public().modulus_len()];
        self.0
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message.as_bytes(),
                &mut sig,
            )
            .map_err(|_| SyncError::PrivateKey("signing failed".into()))?;
        Ok(format!("{message}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

/// An installation token and when it expires. Its `Debug` hides the token.
#[derive(Clone)]
struct Token {
    value: String,
    expires_at: DateTime<Utc>,
}

/// A GitHub App installation: makes and caches installation tokens, downloads zipballs.
#[derive(Debug)]
pub struct GitHubApp {
    client: reqwest::Client,
    api: String,
    app_id: String,
    installation_id: u64,
    key: AppKey,
    cache: Mutex<Option<Token>>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token(expires {})", self.expires_at)
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: String,
    expires_at: DateTime<Utc>,
}

/// A downloaded archive: a temporary file (removed on drop) and its size.
#[derive(Debug)]
pub struct Archive {
    /// The file.
    pub file: tempfile::NamedTempFile,
    /// Its size in bytes.
    pub size: u64,
}

impl GitHubApp {
    /// An app installation at `api` (`https://api.github.com`).
    pub fn new(
        api: &str,
        app_id: &str,
        installation_id: u64,
        key: AppKey,
    ) -> Result<GitHubApp, SyncError> {
        let client = reqwest::Client::builder()
            .user_agent("stepops-repo-sync")
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| SyncError::GitHub(format!("HTTP client: {e}")))?;
        Ok(GitHubApp {
            client,
            api: api.trim_end_matches('/').to_owned(),
            app_id: app_id.to_owned(),
            installation_id,
            key,
            cache: Mutex::new(None),
        })
    }

    /// Whether this installation is `(api, app_id, installation_id)` (to reuse a cached one).
    pub fn is_for(&self, api: &str, app_id: &str, installation_id: u64) -> bool {
        self.api == api.trim_end_matches('/')
            && self.app_id == app_id
            && self.installation_id == installation_id
    }

    /// An installation token valid for at least [`TOKEN_MARGIN`]: the cached one, or a new one.
    async fn token(&self) -> Result<String, SyncError> {
        let mut cache = self.cache.lock().await;
        let now = Utc::now();
        if let Some(t) = cache.as_ref()
            && t.expires_at - now > chrono::Duration::from_std(TOKEN_MARGIN).expect("small")
        {
            return Ok(t.value.clone());
        }
        let jwt = self.key.jwt(&self.app_id, now)?;
        let url = format!(
            "{}/app/installations/{}/access_tokens",
            self.api, self.installation_id
        );
        let what = format!(
            "installation token for installation {}",
            self.installation_id
        );
        let resp = self
            .client
            .post(&url)
            .bearer_auth(jwt)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| SyncError::GitHub(format!("{what}: {}", e.without_url())))?;
        let status = resp.status().as_u16();
        match status {
            201 | 200 => {}
            401 | 403 => return Err(SyncError::GitHubUnauthorized { what, status }),
            404 => {
                return Err(SyncError::GitHubNotFound {
                    what: format!("installation {} for this app", self.installation_id),
                });
            }
            _ => return Err(SyncError::GitHub(format!("{what}: HTTP {status}"))),
        }
        let answer: TokenAnswer = resp.json().await.map_err(|e| {
            SyncError::GitHub(format!("{what}: unreadable answer ({})", e.without_url()))
        })?;
        tracing::info!(installation = self.installation_id, expires_at = %answer.expires_at, "new GitHub installation token");
        let token = Token {
            value: answer.token,
            expires_at: answer.expires_at,
        };
        *cache = Some(token.clone());
        Ok(token.value)
    }

    /// Streams `GET /repos/{org}/{repo}/zipball/{ref}` to a temporary file in `dir`, refusing
    /// more than `limit` bytes and giving up after `timeout`.
    pub async fn download(
        &self,
        org: &str,
        repo: &str,
        git_ref: &str,
        dir: &std::path::Path,
        limit: u64,
        timeout: Duration,
    ) -> Result<Archive, SyncError> {
        let token = self.token().await?;
        tokio::time::timeout(timeout, self.fetch(org, repo, git_ref, &token, dir, limit))
            .await
            .map_err(|_| SyncError::Timeout(timeout.as_secs()))?
    }

    async fn fetch(
        &self,
        org: &str,
        repo: &str,
        git_ref: &str,
        token: &str,
        dir: &std::path::Path,
        limit: u64,
    ) -> Result<Archive, SyncError> {
        let url = format!(
            "{}/repos/{org}/{repo}/zipball/{}",
            self.api,
            encode_ref(git_ref)
        );
        let what = format!("branch {git_ref} of {org}/{repo}");
        let mut resp = self
            .client
            .get(&url)
            .bearer_auth(token)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .send()
            .await
            .map_err(|e| SyncError::GitHub(format!("{what}: {}", e.without_url())))?;
        let status = resp.status().as_u16();
        match status {
            200 => {}
            401 | 403 => {
                return Err(SyncError::GitHubUnauthorized {
                    what: format!("download of {what}"),
                    status,
                });
            }
            404 => return Err(SyncError::GitHubNotFound { what }),
            _ => {
                return Err(SyncError::GitHub(format!(
                    "download of {what}: HTTP {status}"
                )));
            }
        }
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(SyncError::ArchiveTooLarge { limit });
        }
        let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| local(dir.display(), e))?;
        let mut size = 0u64;
        loop {
            let chunk = resp.chunk().await.map_err(|e| {
                SyncError::CorruptArchive(format!(
                    "the download broke off after {size} bytes ({})",
                    e.without_url()
                ))
            })?;
            let Some(chunk) = chunk else { break };
            size += chunk.len() as u64;
            if size > limit {
                return Err(SyncError::ArchiveTooLarge { limit });
            }
            file.write_all(&chunk)
                .map_err(|e| local(file.path().display(), e))?;
        }
        file.flush().map_err(|e| local(file.path().display(), e))?;
        Ok(Archive { file, size })
    }
}

/// Percent-encodes a git ref for a URL path (keeping `/`).
fn encode_ref(r: &str) -> String {
    r.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
