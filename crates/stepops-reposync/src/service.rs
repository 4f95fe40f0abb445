//! Runs sync definitions one after the other, as the Lambda and the CLI do: validates them all
//! first, keeps GitHub App installations (and so their tokens) across runs, reads each app's
//! key through the caller, alerts through the notify channels, and fails with the first error
//! after every definition has run.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use stepops_pipeline::{ChatWebhook, Publisher};
use tokio::sync::Mutex;

use crate::alert;
use crate::definition::Definition;
use crate::error::SyncError;
use crate::github::GitHubApp;
use crate::store::S3Target;
use crate::sync::{SyncReport, run_sync};

/// GitHub App installations kept across runs (a warm Lambda reuses its tokens).
#[derive(Debug, Default)]
pub struct Installations(Mutex<Vec<Arc<GitHubApp>>>);

impl Installations {
    /// The installation for `def`, made with the key `key()` returns when there is none yet.
    pub async fn get<F, Fut>(&self, def: &Definition, key: F) -> Result<Arc<GitHubApp>, SyncError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<crate::AppKey, SyncError>>,
    {
        let mut all = self.0.lock().await;
        if let Some(app) = all
            .iter()
            .find(|a| a.is_for(&def.github_api, &def.app_id, def.installation_id))
        {
            return Ok(app.clone());
        }
        let app = Arc::new(GitHubApp::new(
            &def.github_api,
            &def.app_id,
            def.installation_id,
            key().await?,
        )?);
        all.push(app.clone());
        Ok(app)
    }
}

/// Where a run's alerts go.
pub struct Alerts<'a, P: Publisher> {
    /// SNS (or a recorder).
    pub publisher: &'a P,
    /// The chat webhook, if configured.
    pub webhook: Option<&'a ChatWebhook>,
    /// The stack's environment.
    pub environment: &'a str,
}

/// Runs every definition (all validated first, nothing requested when one is bad); returns
/// each report, or the first failure once all have run. `secret` reads a Secrets Manager
/// secret's value by name; `s3` is the shared S3 configuration.
pub async fn run_all<P, S, SF>(
    defs: &[Definition],
    s3: &aws_sdk_s3::config::Builder,
    secret: S,
    installations: &Installations,
    alerts: Option<Alerts<'_, P>>,
    workdir: &Path,
) -> Result<Vec<SyncReport>, SyncError>
where
    P: Publisher,
    S: Fn(String) -> SF,
    SF: Future<Output = Result<String, SyncError>>,
{
    let filters = defs
        .iter()
        .map(Definition::validate)
        .collect::<Result<Vec<_>, _>>()?;
    let mut reports = Vec::new();
    let mut first_error = None;
    for (def, filter) in defs.iter().zip(filters) {
        let outcome = async {
            let app = installations
                .get(def, || async {
                    let value = match &def.private_key_secret {
                        Some(name) => Some(secret(name.clone()).await?),
                        None => None,
                    };
                    crate::app_key(def, value.as_deref())
                })
                .await?;
            let target = S3Target::new(crate::s3_client(s3, &def.region));
            run_sync(def, &filter, &app, &target, workdir).await
        }
        .await;
        match &outcome {
            Ok(r) => {
                tracing::info!(sync = %r.name, commit = %r.commit, new = r.new.len(), modified = r.modified.len(), deleted = r.deleted.len(), unchanged = r.unchanged, failures = r.failures.len(), "repository sync done")
            }
            Err(e) => {
                tracing::error!(sync = %def.display_name(), error = %e, "repository sync failed")
            }
        }
        if let Some(a) = &alerts
            && let Some(message) = alert::compose(def, a.environment, &outcome)
        {
            alert::deliver(&message, a.publisher, a.webhook).await;
        }
        match outcome.and_then(SyncReport::into_result) {
            Ok(r) => reports.push(r),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(reports),
    }
}
