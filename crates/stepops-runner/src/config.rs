//! The runner's configuration: one YAML file plus `STEPOPS_RUNNER_*` environment overrides.
//!
//! Every top-level key can be overridden by `STEPOPS_RUNNER_<KEY>` (upper case), whose value is
//! parsed as YAML: `STEPOPS_RUNNER_CONCURRENCY=4`, `STEPOPS_RUNNER_ACTIVITIES='[arn1, arn2]'`.
//! That prefix is the runner's own namespace: every variable in it must be a key (a misspelt
//! one is refused, naming the nearest key), while the other `STEPOPS_*` variables belong to
//! other stepops commands and functions (`STEPOPS_ALLOWED_TARGETS`, `STEPOPS_LOCAL_PORT`,
//! `STEPOPS_ENVIRONMENT`, `STEPOPS_ADMIN_TOKEN_*`, …) and are ignored; one spelt like a runner
//! key without the prefix (`STEPOPS_CONCURRENCY`) is ignored with a warning. `STEPOPS_LOG` (log
//! level) and `STEPOPS_CONFIG` (the file's path) are the runner's too but not keys. Unknown keys
//! in the file are refused; every error names the key and where its value came from.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_norway::Value as Yaml;
use stepops_error::{Environment, ErrorName, Named, StackEnvironment, TargetKind};

/// The prefix of the runner's configuration overrides: `STEPOPS_RUNNER_<KEY>`.
pub const ENV_PREFIX: &str = "STEPOPS_RUNNER_";

/// Environment variables the runner reads that are not configuration keys.
pub const NOT_KEYS: [&str; 2] = ["STEPOPS_LOG", "STEPOPS_CONFIG"];

/// The runner's settings, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerConfig {
    /// `activities`: the activity ARNs to poll (at least one).
    pub activities: Vec<String>,
    /// `concurrency`: how many tasks run at once (1..=256, default 4).
    pub concurrency: usize,
    /// `heartbeat_seconds`: interval between `SendTaskHeartbeat`s (default 20; keep it well
    /// under the states' `HeartbeatSeconds`).
    pub heartbeat_interval: Duration,
    /// `drain_timeout_seconds`: on SIGTERM, how long running tasks may finish (default 120)
    /// before they are handed back as `Stepops.Transient`.
    pub drain_timeout: Duration,
    /// `poll_read_timeout_seconds`: HTTP read timeout of the SDK client (default 70, at least
    /// 65: the service holds a poll for 60 s).
    pub poll_read_timeout: Duration,
    /// `endpoint`: a Step Functions endpoint URL (the local engine); AWS when unset.
    pub endpoint: Option<String>,
    /// `region`: AWS region; the SDK's default chain when unset.
    pub region: Option<String>,
    /// `worker_name`: the name sent with each poll (default: the host name).
    pub worker_name: String,
    /// `environment`: the stack's environment (`dev`, `prod`); required in AWS mode (no
    /// `endpoint`). When set, a task without `args.environment` is refused
    /// (`Stepops.InvalidInput`) and one for the other environment too
    /// (`Stepops.WrongEnvironment`).
    pub environment: Option<Environment>,
    /// `allowed_targets`: the targets a task may name, `KIND:NAME` entries as validate-input's
    /// `STEPOPS_ALLOWED_TARGETS` (a YAML list, or one string separated by commas); required in
    /// AWS mode, where `url:` entries are refused. Unset in local mode: any target.
    pub allowed_targets: Option<StackEnvironment>,
    /// `answer_timeout_seconds`: how long one `SendTaskHeartbeat`, `SendTaskSuccess` or
    /// `SendTaskFailure` may take before it is abandoned (and retried) (default 10).
    pub answer_timeout: Duration,
    /// `object_store_root`: the folder standing in for S3 (`<root>/<bucket>/<key>`); S3 when
    /// unset (feature `s3`).
    pub object_store_root: Option<PathBuf>,
    /// `secret_cache_seconds`: how long resolved secrets are kept (default 900).
    pub secret_cache: Duration,
    /// `jobs_dir`: the ops job catalog (`jobs/*.yaml`); the catalog compiled into the runner
    /// when unset (the same one the stack's validation Lambda was built with).
    pub jobs_dir: Option<PathBuf>,
    /// `job_root`: job steps' fresh working directories (`work/`) and logs (`logs/`) go under
    /// it (default `/var/lib/stepops/jobs`).
    pub job_root: PathBuf,
    /// `job_kill_grace_seconds`: between SIGTERM and SIGKILL when a job step is stopped
    /// (default 10).
    pub job_kill_grace: Duration,
    /// `job_log_group`: the CloudWatch Logs group each job step's masked output is shipped to,
    /// one stream per execution and step (`/stepops/ENV/jobs` in the template); not shipped
    /// when unset.
    pub job_log_group: Option<String>,
}

/// Whether `name` is a valid CloudWatch Logs group name.
fn valid_log_group(name: &str) -> bool {
    (1..=512).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-/.#".contains(&b))
}

/// A configuration error; its message names the key and its origin.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not YAML or not a mapping.
    #[error("{origin}: {message}")]
    Syntax {
        /// The file or variable.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A key is unknown, of the wrong type, out of range, or missing.
    #[error("configuration key `{key}` ({origin}): {message}")]
    Key {
        /// The key.
        key: String,
        /// `file PATH`, `environment STEPOPS_X`, `default` or `command line`.
        origin: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

impl Named for ConfigError {
    fn error_name(&self) -> ErrorName {
        ErrorName::InvalidInput
    }
}

const KEYS: [&str; 17] = [
    "activities",
    "concurrency",
    "heartbeat_seconds",
    "drain_timeout_seconds",
    "poll_read_timeout_seconds",
    "endpoint",
    "region",
    "worker_name",
    "environment",
    "object_store_root",
    "secret_cache_seconds",
    "allowed_targets",
    "answer_timeout_seconds",
    "jobs_dir",
    "job_root",
    "job_kill_grace_seconds",
    "job_log_group",
];

/// Values gathered from the file and the environment, each with its origin.
#[derive(Debug, Default)]
pub struct RawConfig {
    entries: Vec<(String, Yaml, String)>,
}

impl RawConfig {
    /// Reads the YAML file at `path`.
    pub fn from_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text, &format!("file {}", path.display()))
    }

    /// Parses YAML text; `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<RawConfig, ConfigError> {
        let value: Yaml = serde_norway::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_owned(),
            message: format!("not valid YAML: {e}"),
        })?;
        let mut raw = RawConfig::default();
        match value {
            Yaml::Null => {}
            Yaml::Mapping(map) => {
                for (k, v) in map {
                    let Yaml::String(key) = k else {
                        return Err(ConfigError::Syntax {
                            origin: origin.to_owned(),
                            message: format!("keys must be strings, found {k:?}"),
                        });
                    };
                    raw.set(key, v, origin)?;
                }
            }
            _ => {
                return Err(ConfigError::Syntax {
                    origin: origin.to_owned(),
                    message: "expected a mapping of keys to values".into(),
                });
            }
        }
        Ok(raw)
    }

    /// Applies `STEPOPS_RUNNER_*` overrides from `vars` (normally `std::env::vars()`); other
    /// variables are ignored. Returns warnings for variables that look meant for the runner but
    /// are outside its namespace (`STEPOPS_CONCURRENCY` for `STEPOPS_RUNNER_CONCURRENCY`);
    /// they never hold a value.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Vec<String>, ConfigError> {
        let mut warnings = Vec::new();
        let mut mine = Vec::new();
        for (name, text) in vars {
            if let Some(key) = name.strip_prefix(ENV_PREFIX) {
                mine.push((name.clone(), key.to_ascii_lowercase(), text));
            } else if let Some(rest) = name.strip_prefix("STEPOPS_")
                && KEYS.contains(&rest.to_ascii_lowercase().as_str())
            {
                warnings.push(format!(
                    "{name} is not read by stepops-runner (its overrides are {ENV_PREFIX}<KEY>; \
                     other STEPOPS_* variables belong to other stepops commands): for the runner \
                     set {ENV_PREFIX}{rest}"
                ));
            }
        }
        warnings.sort();
        mine.sort();
        for (name, key, text) in mine {
            let origin = format!("environment {name}");
            if !KEYS.contains(&key.as_str()) {
                let hint = match key.as_str() {
                    "config" => " (the file is named by STEPOPS_CONFIG or --config)".to_owned(),
                    "log" => " (the log level is STEPOPS_LOG)".to_owned(),
                    _ => nearest_key(&key)
                        .map(|k| format!(" (did you mean {ENV_PREFIX}{}?)", k.to_uppercase()))
                        .unwrap_or_default(),
                };
                return Err(ConfigError::Key {
                    key,
                    origin,
                    message: format!(
                        "unknown key{hint}; {ENV_PREFIX}* variables must name one of: {}",
                        KEYS.join(", ")
                    ),
                });
            }
            let value: Yaml = if text.trim().is_empty() {
                Yaml::Null
            } else {
                serde_norway::from_str(&text).map_err(|e| ConfigError::Key {
                    key: key.clone(),
                    origin: origin.clone(),
                    message: format!("the value is not valid YAML: {e}"),
                })?
            };
            self.set(key, value, &origin)?;
        }
        Ok(warnings)
    }

    /// Sets one key (a later value replaces an earlier one).
    pub fn set(&mut self, key: String, value: Yaml, origin: &str) -> Result<(), ConfigError> {
        if !KEYS.contains(&key.as_str()) {
            return Err(ConfigError::Key {
                key,
                origin: origin.to_owned(),
                message: format!("unknown key; known keys: {}", KEYS.join(", ")),
            });
        }
        self.entries.retain(|(k, _, _)| *k != key);
        self.entries.push((key, value, origin.to_owned()));
        Ok(())
    }

    fn take<T: DeserializeOwned>(
        &self,
        key: &str,
        expected: &str,
    ) -> Result<Option<(T, String)>, ConfigError> {
        let Some((_, value, origin)) = self.entries.iter().find(|(k, _, _)| k == key) else {
            return Ok(None);
        };
        if value.is_null() {
            return Ok(None);
        }
        let parsed =
            serde_norway::from_value::<T>(value.clone()).map_err(|e| ConfigError::Key {
                key: key.to_owned(),
                origin: origin.clone(),
                message: format!("expected {expected}: {e}"),
            })?;
        Ok(Some((parsed, origin.clone())))
    }

    /// Validates everything and applies defaults.
    pub fn build(&self) -> Result<RunnerConfig, ConfigError> {
        let key_err = |key: &str, origin: &str, message: String| ConfigError::Key {
            key: key.to_owned(),
            origin: origin.to_owned(),
            message,
        };
        let seconds = |key: &str, default: u64, min: u64, max: u64| {
            let (v, origin) = self
                .take::<u64>(key, "a whole number of seconds")?
                .unwrap_or((default, "default".into()));
            if v < min || v > max {
                return Err(key_err(
                    key,
                    &origin,
                    format!("{v} is out of range: expected {min} to {max} seconds"),
                ));
            }
            Ok(Duration::from_secs(v))
        };

        let (activities, origin) = self
            .take::<Vec<String>>("activities", "a list of activity ARNs")?
            .ok_or_else(|| {
                key_err(
                    "activities",
                    "missing",
                    "required: the activity ARNs to poll, e.g. \
                     [arn:aws:states:eu-west-1:123456789012:activity:stepops-dev-migrate]"
                        .into(),
                )
            })?;
        if activities.is_empty() {
            return Err(key_err("activities", &origin, "the list is empty".into()));
        }
        for arn in &activities {
            if !arn.starts_with("arn:") || !arn.contains(":activity:") {
                return Err(key_err(
                    "activities",
                    &origin,
                    format!(
                        "`{arn}` is not an activity ARN (arn:PARTITION:states:REGION:ACCOUNT:activity:NAME)"
                    ),
                ));
            }
        }

        let (concurrency, origin) = self
            .take::<usize>("concurrency", "a whole number")?
            .unwrap_or((4, "default".into()));
        if !(1..=256).contains(&concurrency) {
            return Err(key_err(
                "concurrency",
                &origin,
                format!("{concurrency} is out of range: expected 1 to 256"),
            ));
        }

        let heartbeat_interval = seconds("heartbeat_seconds", 20, 1, 3600)?;
        let drain_timeout = seconds("drain_timeout_seconds", 120, 0, 86_400)?;
        let poll_read_timeout = seconds("poll_read_timeout_seconds", 70, 65, 600)?;
        let secret_cache = seconds("secret_cache_seconds", 900, 0, 86_400)?;

        let endpoint = match self.take::<String>("endpoint", "a URL")? {
            Some((url, origin)) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(key_err(
                        "endpoint",
                        &origin,
                        format!("`{url}` is not an http(s) URL, e.g. http://127.0.0.1:8083"),
                    ));
                }
                Some(url)
            }
            None => None,
        };
        let region = self.take::<String>("region", "a region name")?.map(|v| v.0);
        let worker_name = match self.take::<String>("worker_name", "a string")? {
            Some((name, origin)) => {
                if name.is_empty() || name.len() > 80 {
                    return Err(key_err(
                        "worker_name",
                        &origin,
                        "expected 1 to 80 characters".into(),
                    ));
                }
                name
            }
            None => default_worker_name(),
        };
        let environment = match self.take::<String>("environment", "an environment name")? {
            Some((name, origin)) => Some(Environment::parse(&name).ok_or_else(|| {
                key_err(
                    "environment",
                    &origin,
                    format!("`{name}` is not an environment: expected dev or prod"),
                )
            })?),
            None => None,
        };
        let allowed_targets = self.allowed_targets(environment, endpoint.is_none())?;
        let answer_timeout = seconds("answer_timeout_seconds", 10, 1, 60)?;
        let object_store_root = self
            .take::<PathBuf>("object_store_root", "a folder path")?
            .map(|v| v.0);
        let jobs_dir = self
            .take::<PathBuf>("jobs_dir", "a folder path")?
            .map(|v| v.0);
        let job_root = self
            .take::<PathBuf>("job_root", "a folder path")?
            .map(|v| v.0)
            .unwrap_or_else(|| PathBuf::from("/var/lib/stepops/jobs"));
        let job_kill_grace = seconds("job_kill_grace_seconds", 10, 0, 600)?;
        let job_log_group = match self.take::<String>("job_log_group", "a log group name")? {
            Some((name, origin)) if !valid_log_group(&name) => {
                return Err(key_err(
                    "job_log_group",
                    &origin,
                    format!(
                        "`{name}` is not a CloudWatch Logs group name (1 to 512 of a-z A-Z 0-9 \
                         _ - / . #)"
                    ),
                ));
            }
            v => v.map(|v| v.0),
        };

        Ok(RunnerConfig {
            activities,
            concurrency,
            heartbeat_interval,
            drain_timeout,
            poll_read_timeout,
            endpoint,
            region,
            worker_name,
            environment,
            allowed_targets,
            answer_timeout,
            object_store_root,
            secret_cache,
            jobs_dir,
            job_root,
            job_kill_grace,
            job_log_group,
        })
    }

    /// `allowed_targets`, checked against `environment`; in AWS mode both are required and
    /// `url:` entries are refused.
    fn allowed_targets(
        &self,
        environment: Option<Environment>,
        aws: bool,
    ) -> Result<Option<StackEnvironment>, ConfigError> {
        /// A YAML list of entries, or one string of them.
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Entries {
            One(String),
            Many(Vec<String>),
        }
        const AWS: &str = "required when the runner talks to AWS (no `endpoint`)";
        let key_err = |key: &str, origin: &str, message: String| ConfigError::Key {
            key: key.to_owned(),
            origin: origin.to_owned(),
            message,
        };
        let listed = self.take::<Entries>(
            "allowed_targets",
            "a list of KIND:NAME entries (KIND secret, parameter or url)",
        )?;
        let Some(environment) = environment else {
            if aws {
                return Err(key_err(
                    "environment",
                    "missing",
                    format!("{AWS}: the stack's environment, dev or prod"),
                ));
            }
            if let Some((_, origin)) = listed {
                return Err(key_err(
                    "allowed_targets",
                    &origin,
                    "needs `environment` (dev or prod): an allow-list belongs to one environment"
                        .into(),
                ));
            }
            return Ok(None);
        };
        let Some((entries, origin)) = listed else {
            if aws {
                return Err(key_err(
                    "allowed_targets",
                    "missing",
                    format!(
                        "{AWS}: the targets the stack's tasks may name, e.g. \
                         [secret:stepops/{environment}/source-db, secret:stepops/{environment}/dest-db]"
                    ),
                ));
            }
            return Ok(None);
        };
        let text = match entries {
            Entries::One(s) => s,
            Entries::Many(v) => v.join(","),
        };
        let stack = StackEnvironment::new(environment, &text)
            .map_err(|why| key_err("allowed_targets", &origin, format!("the list {why}")))?;
        if aws
            && let Some(url) = stack
                .allowed_targets
                .iter()
                .find(|a| a.kind == TargetKind::Url)
        {
            return Err(key_err(
                "allowed_targets",
                &origin,
                format!(
                    "`{url}`: url targets are refused when the runner talks to AWS (no \
                     `endpoint`); they are for local runs: name secrets or parameters"
                ),
            ));
        }
        Ok(Some(stack))
    }
}

/// The key closest to `key` (edit distance at most 3), for "did you mean".
fn nearest_key(key: &str) -> Option<&'static str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                let cost = usize::from(ca != *cb);
                cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
            }
            prev = cur;
        }
        prev[b.len()]
    }
    KEYS.iter()
        .map(|k| {
            // A key given without its unit (`heartbeat` for `heartbeat_seconds`) is close too.
            let stem = k.strip_suffix("_seconds").unwrap_or(k);
            (distance(key, k).min(distance(key, stem)), *k)
        })
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| k)
}

fn default_worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "stepops-runner".into());
    let mut name = format!("{host}-{}", std::process::id());
    name.truncate(80);
    name
}

impl RunnerConfig {
    /// Loads `path` (when given), applies the process environment's `STEPOPS_RUNNER_*`
    /// overrides (logging the warnings) and validates.
    pub fn load(path: Option<&Path>) -> Result<RunnerConfig, ConfigError> {
        let mut raw = match path {
            Some(p) => RawConfig::from_file(p)?,
            None => RawConfig::default(),
        };
        for w in raw.apply_env(std::env::vars())? {
            tracing::warn!("{w}");
        }
        raw.build()
    }
}

#[cfg(test)]
mod tests;
