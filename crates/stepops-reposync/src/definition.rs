//! A sync definition (YAML or JSON): which branch of which repository goes to which S3 prefix,
//! and how. [`parse_definitions`] reads one or several; [`Definition::validate`] refuses a bad
//! one with every problem listed, before any request is made.

use std::net::Ipv4Addr;

use regex::Regex;
use serde::{Deserialize, Serialize};
use stepops_store::Encryption;

use crate::error::SyncError;

/// The default archive size limit: 512 MiB.
pub const DEFAULT_MAX_ARCHIVE_BYTES: u64 = 512 * 1024 * 1024;
/// The default download timeout, seconds.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 120;
/// The GitHub API.
pub const GITHUB_API: &str = "https://api.github.com";

/// What goes under the prefix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The repository's files, one object each (the archive's top folder stripped).
    #[default]
    Extract,
    /// The archive itself, as `<prefix><repository>.zip`.
    Zip,
}

/// One sync: a branch of a repository → an S3 prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// A short name for logs and alerts (default `organization/repository`).
    #[serde(default)]
    pub name: Option<String>,
    /// The GitHub organization or user.
    pub organization: String,
    /// The repository.
    pub repository: String,
    /// The branch (or tag, or commit).
    pub branch: String,
    /// The GitHub App's id or client id (the JWT's issuer).
    pub app_id: String,
    /// The app's installation on the organization.
    pub installation_id: u64,
    /// The Secrets Manager secret holding the app's private key (PEM).
    #[serde(default)]
    pub private_key_secret: Option<String>,
    /// A file holding the app's private key (PEM), for runs from a laptop.
    #[serde(default)]
    pub private_key_file: Option<String>,
    /// The bucket.
    pub bucket: String,
    /// The bucket's region.
    pub region: String,
    /// The key prefix, ending in `/` (or empty: the whole bucket).
    pub prefix: String,
    /// Extract the archive (default) or upload the zip itself.
    #[serde(default)]
    pub mode: Mode,
    /// Regexes on the file's path in the repository: only matching files are synced (default:
    /// all).
    #[serde(default)]
    pub include: Vec<String>,
    /// Regexes on the file's path in the repository: matching files are left alone, even when
    /// included (exclude wins).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Delete objects under the prefix that the branch no longer has.
    #[serde(default)]
    pub delete_missing: bool,
    /// Report what would change; write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Server-side encryption of the uploads (default: the bucket's).
    #[serde(default)]
    pub encryption: Encryption,
    /// The archive size limit in bytes.
    #[serde(default = "default_max")]
    pub max_archive_bytes: u64,
    /// The download timeout in seconds (at most 900).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// The GitHub API base URL (GitHub Enterprise Server, or a local server in tests).
    #[serde(default = "default_api")]
    pub github_api: String,
}

fn default_max() -> u64 {
    DEFAULT_MAX_ARCHIVE_BYTES
}
fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_SECONDS
}
fn default_api() -> String {
    GITHUB_API.into()
}

/// The file name of the manifest object under the prefix.
pub const MANIFEST_NAME: &str = ".stepops-repo-sync.json";

/// Which repository paths a definition syncs: included (or no include given) and not excluded.
#[derive(Debug, Clone)]
pub struct Filter {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

impl Filter {
    /// Whether `path` (relative to the repository's root) is synced.
    pub fn accepts(&self, path: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(path)))
            && !self.exclude.iter().any(|r| r.is_match(path))
    }
}

impl Definition {
    /// The name used in logs and alerts.
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{}/{}", self.organization, self.repository))
    }

    /// The manifest object's key.
    pub fn manifest_key(&self) -> String {
        format!("{}{MANIFEST_NAME}", self.prefix)
    }

    /// Checks every field; returns the compiled filter, or every problem found.
    pub fn validate(&self) -> Result<Filter, SyncError> {
        let mut p = Vec::new();
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 100
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && s != "."
                && s != ".."
        };
        if !name_ok(&self.organization) {
            p.push(format!(
                "organization {:?}: letters, digits, `-`, `_`, `.` only",
                self.organization
            ));
        }
        if !name_ok(&self.repository) {
            p.push(format!(
                "repository {:?}: letters, digits, `-`, `_`, `.` only",
                self.repository
            ));
        }
        if let Err(why) = check_branch(&self.branch) {
            p.push(format!("branch {:?}: {why}", self.branch));
        }
        let app = self.app_id.trim();
        if app.is_empty()
            || app != self.app_id
            || !app.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
        {
            p.push(format!(
                "app_id {:?}: the GitHub App's numeric id or its client id (Iv1.…)",
                self.app_id
            ));
        }
        if self.installation_id == 0 {
            p.push("installation_id: the app installation's id (a positive number, in the installation's settings URL)".into());
        }
        match (&self.private_key_secret, &self.private_key_file) {
            (Some(_), Some(_)) => p.push("private_key_secret and private_key_file: give one, not both".into()),
            (None, None) => p.push("private_key_secret: name the Secrets Manager secret holding the app's private key (or private_key_file on a laptop)".into()),
            (Some(s), None) if s.trim().is_empty() => p.push("private_key_secret: empty".into()),
            (None, Some(f)) if f.trim().is_empty() => p.push("private_key_file: empty".into()),
            _ => {}
        }
        if let Err(why) = check_bucket(&self.bucket) {
            p.push(format!("bucket {:?}: {why}", self.bucket));
        }
        if !check_region(&self.region) {
            p.push(format!(
                "region {:?}: an AWS region such as eu-west-1",
                self.region
            ));
        }
        if let Err(why) = check_prefix(&self.prefix) {
            p.push(format!("prefix {:?}: {why}", self.prefix));
        }
        if self.max_archive_bytes == 0 {
            p.push("max_archive_bytes: must be positive".into());
        }
        if self.timeout_seconds == 0 || self.timeout_seconds > 900 {
            p.push(format!(
                "timeout_seconds {}: between 1 and 900 (a Lambda runs at most 15 minutes)",
                self.timeout_seconds
            ));
        }
        let api = self.github_api.trim_end_matches('/');
        let loopback = ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"];
        if !(api.starts_with("https://") || loopback.iter().any(|l| api.starts_with(l)))
            || api.len() < 10
        {
            p.push(format!(
                "github_api {:?}: an https:// URL (plain http only to 127.0.0.1)",
                self.github_api
            ));
        }
        if let Some(n) = &self.name
            && (n.trim().is_empty() || n.len() > 100)
        {
            p.push("name: 1 to 100 characters".into());
        }
        let mut compile = |field: &str, patterns: &[String]| -> Vec<Regex> {
            patterns
                .iter()
                .filter_map(|pat| match Regex::new(pat) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        let first = e.to_string().lines().last().unwrap_or_default().to_owned();
                        p.push(format!("{field} {pat:?} is not a regex: {first}"));
                        None
                    }
                })
                .collect()
        };
        let include = compile("include", &self.include);
        let exclude = compile("exclude", &self.exclude);
        if self.mode == Mode::Zip && !(self.include.is_empty() && self.exclude.is_empty()) {
            p.push("include/exclude: mode zip uploads the archive whole; filters apply to extract only".into());
        }
        if p.is_empty() {
            Ok(Filter { include, exclude })
        } else {
            Err(SyncError::Definition { problems: p })
        }
    }
}

fn check_branch(b: &str) -> Result<(), &'static str> {
    if b.is_empty() || b.len() > 255 {
        return Err("1 to 255 characters");
    }
    if b.contains("..")
        || b.starts_with('/')
        || b.ends_with('/')
        || b.ends_with(".lock")
        || b.contains("//")
    {
        return Err("not a valid git ref name (`..`, leading or trailing `/`, `.lock`)");
    }
    if b.chars().any(|c| c.is_control() || " ~^:?*[\\".contains(c)) {
        return Err("not a valid git ref name (space, control character or one of ~^:?*[\\)");
    }
    Ok(())
}

/// S3's bucket naming rules (general purpose buckets).
fn check_bucket(b: &str) -> Result<(), &'static str> {
    if b.len() < 3 || b.len() > 63 {
        return Err("3 to 63 characters");
    }
    if !b
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
    {
        return Err("lowercase letters, digits, `.` and `-` only");
    }
    let first = b.chars().next().unwrap_or('-');
    let last = b.chars().last().unwrap_or('-');
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return Err("must begin and end with a letter or digit");
    }
    if b.contains("..") || b.contains(".-") || b.contains("-.") {
        return Err("no adjacent `.`/`-` pairs");
    }
    if b.parse::<Ipv4Addr>().is_ok() {
        return Err("must not be an IP address");
    }
    if ["xn--", "sthree-", "amzn-s3-demo-"]
        .iter()
        .any(|p| b.starts_with(p))
        || ["-s3alias", "--ol-s3", "--x-s3", ".mrap"]
            .iter()
            .any(|s| b.ends_with(s))
    {
        return Err("uses a prefix or suffix S3 reserves");
    }
    Ok(())
}

fn check_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
}

fn check_prefix(p: &str) -> Result<(), &'static str> {
    if p.is_empty() {
        return Ok(());
    }
    if p.len() > 512 {
        return Err("at most 512 characters");
    }
    if p.starts_with('/') {
        return Err("must not start with `/`");
    }
    if !p.ends_with('/') {
        return Err("must end with `/` (a folder), or be empty for the whole bucket");
    }
    if p.split('/').any(|s| s == ".." || s == ".") || p.contains("//") {
        return Err("no `.`, `..` or empty segments");
    }
    if p.chars().any(|c| c.is_control() || c == '\\') {
        return Err("no control characters or `\\`");
    }
    Ok(())
}

/// Reads definitions: one mapping, a list of them, or `{definitions: [...]}` (YAML or JSON).
/// Unknown keys are refused. Each is then checked with [`Definition::validate`].
pub fn parse_definitions(text: &str) -> Result<Vec<Definition>, SyncError> {
    let bad = |m: String| SyncError::Definition { problems: vec![m] };
    let value: serde_norway::Value =
        serde_norway::from_str(text).map_err(|e| bad(format!("not YAML or JSON: {e}")))?;
    let items = match value {
        serde_norway::Value::Sequence(s) => s,
        serde_norway::Value::Mapping(m) if m.contains_key("definitions") => {
            if m.len() != 1 {
                return Err(bad(
                    "a document with `definitions` may hold nothing else".into()
                ));
            }
            match m.get("definitions") {
                Some(serde_norway::Value::Sequence(s)) => s.clone(),
                _ => return Err(bad("`definitions` must be a list".into())),
            }
        }
        v @ serde_norway::Value::Mapping(_) => vec![v],
        _ => {
            return Err(bad(
                "expected a definition (a mapping) or a list of them".into()
            ));
        }
    };
    if items.is_empty() {
        return Err(bad("no definition given".into()));
    }
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match serde_path_to_error::deserialize::<_, Definition>(item) {
            Ok(d) => match d.validate() {
                Ok(_) => out.push(d),
                Err(SyncError::Definition { problems: ps }) => {
                    problems.extend(ps.into_iter().map(|p| format!("definition {}: {p}", i + 1)))
                }
                Err(e) => problems.push(e.to_string()),
            },
            Err(e) => {
                let path = e.path().to_string();
                let at = if path == "." {
                    String::new()
                } else {
                    format!("{path}: ")
                };
                problems.push(format!("definition {}: {at}{}", i + 1, e.inner()));
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(SyncError::Definition { problems })
    }
}
