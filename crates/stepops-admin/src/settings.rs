//! The admin function's settings, from its environment variables (set per stack by the
//! template), so the Lambda binary and the local engine build the same client.

use crate::client::ClientConfig;
use crate::error::AdminError;
use crate::records::ProfileRecords;
use crate::token::default_secret_name;
use crate::types::Environment;

/// `STEPOPS_ENVIRONMENT`: the stack's own environment (`dev` or `prod`).
pub const ENV_ENVIRONMENT: &str = "STEPOPS_ENVIRONMENT";
/// `STEPOPS_SYNAPSE_ENDPOINT`: the service's base URL for this environment.
pub const ENV_ENDPOINT: &str = "STEPOPS_SYNAPSE_ENDPOINT";
/// `STEPOPS_ADMIN_SECRET`: the Secrets Manager name of the admin token (default
/// [`default_secret_name`]).
pub const ENV_SECRET: &str = "STEPOPS_ADMIN_SECRET";
/// `STEPOPS_HTTP_TIMEOUT_SECONDS`: the whole-request timeout (default 60).
pub const ENV_TIMEOUT: &str = "STEPOPS_HTTP_TIMEOUT_SECONDS";
/// `STEPOPS_ADMIN_RECORDS_BUCKET`: the bucket where `remove-user` keeps the profile it removes
/// (under [`crate::RECORDS_PREFIX`], SSE-KMS). Unset or empty: no profile is kept anywhere.
pub const ENV_RECORDS_BUCKET: &str = "STEPOPS_ADMIN_RECORDS_BUCKET";
/// `STEPOPS_ADMIN_RECORDS_KMS_KEY`: the KMS key (id, ARN or alias) of the kept records; unset:
/// the account's AWS-managed `aws/s3` key.
pub const ENV_RECORDS_KMS_KEY: &str = "STEPOPS_ADMIN_RECORDS_KMS_KEY";

/// What the admin function needs to know about its stack.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// The stack's own environment: requests for the other one are refused.
    pub environment: Environment,
    /// The service endpoint and timeouts.
    pub client: ClientConfig,
    /// The Secrets Manager name of the admin token.
    pub secret_name: String,
    /// The bucket where removed profiles are kept (`None`: kept nowhere).
    pub records_bucket: Option<String>,
    /// The KMS key of the kept records (`None`: `aws/s3`).
    pub records_kms_key: Option<String>,
}

impl AdminSettings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, AdminError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the settings through `lookup` (the process environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, AdminError> {
        let required = |k: &str| {
            lookup(k).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
                AdminError::invalid(format!(
                    "the admin function's configuration lacks {k}; set it in the template"
                ))
            })
        };
        let environment = crate::types::parse_environment(&required(ENV_ENVIRONMENT)?)
            .map_err(|e| AdminError::invalid(format!("{ENV_ENVIRONMENT}: {e}")))?;
        let mut client = ClientConfig::new(&required(ENV_ENDPOINT)?)
            .map_err(|e| AdminError::invalid(format!("{ENV_ENDPOINT}: {e}")))?;
        if let Some(t) = lookup(ENV_TIMEOUT) {
            let secs: u64 = t
                .parse()
                .ok()
                .filter(|s| (1..=900).contains(s))
                .ok_or_else(|| {
                    AdminError::invalid(format!(
                        "{ENV_TIMEOUT} must be 1 to 900 seconds, not {t:?}"
                    ))
                })?;
            client.request_timeout = std::time::Duration::from_secs(secs);
            client.read_timeout = client.read_timeout.min(client.request_timeout);
        }
        let secret_name = lookup(ENV_SECRET)
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| default_secret_name(environment));
        let optional = |k: &str| {
            lookup(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        Ok(AdminSettings {
            environment,
            client,
            secret_name,
            records_bucket: optional(ENV_RECORDS_BUCKET),
            records_kms_key: optional(ENV_RECORDS_KMS_KEY),
        })
    }

    /// The kept profile records through `store`, if a bucket is configured.
    pub fn profile_records(&self, store: stepops_store::AnyStore) -> Option<ProfileRecords> {
        self.records_bucket
            .as_ref()
            .map(|bucket| ProfileRecords::new(store, bucket, self.records_kms_key.clone()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn settings_come_from_the_environment() {
        let s = AdminSettings::from_lookup(lookup(&[
            (ENV_ENVIRONMENT, "prod"),
            (ENV_ENDPOINT, "https://repo-prod.prod.sagebase.org"),
            (ENV_TIMEOUT, "20"),
        ]))
        .unwrap();
        assert_eq!(s.environment, Environment::Prod);
        assert_eq!(s.secret_name, "stepops/prod/synapse-admin-pat");
        assert_eq!(s.client.request_timeout.as_secs(), 20);
        assert_eq!(s.client.read_timeout.as_secs(), 20);
        assert_eq!(s.records_bucket, None);
        let kept = AdminSettings::from_lookup(lookup(&[
            (ENV_ENVIRONMENT, "prod"),
            (ENV_ENDPOINT, "https://repo-prod.prod.sagebase.org"),
            (ENV_RECORDS_BUCKET, "stack-bucket"),
            (ENV_RECORDS_KMS_KEY, ""),
        ]))
        .unwrap();
        assert_eq!(kept.records_bucket.as_deref(), Some("stack-bucket"));
        assert_eq!(kept.records_kms_key, None);

        for bad in [
            vec![(ENV_ENDPOINT, "https://x.org")],
            vec![(ENV_ENVIRONMENT, "dev")],
            vec![(ENV_ENVIRONMENT, "qa"), (ENV_ENDPOINT, "https://x.org")],
            vec![(ENV_ENVIRONMENT, "dev"), (ENV_ENDPOINT, "x.org")],
            vec![
                (ENV_ENVIRONMENT, "dev"),
                (ENV_ENDPOINT, "http://repo-dev.dev.sagebase.org"),
            ],
            vec![
                (ENV_ENVIRONMENT, "dev"),
                (ENV_ENDPOINT, "https://x.org"),
                (ENV_TIMEOUT, "0"),
            ],
        ] {
            assert!(AdminSettings::from_lookup(lookup(&bad)).is_err(), "{bad:?}");
        }
    }
}
