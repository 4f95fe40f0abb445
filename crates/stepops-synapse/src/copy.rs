//! Copying one chunk: a type's differing ranges, each backed up on the source and restored on
//! the destination (which deletes the range, then upserts the backup: idempotent). Backups run
//! up to `backupsAhead` ahead; restores of the type run one at a time, in id order, as the
//! service requires.
//!
//! Resumable: every range's [`RangeState`] is saved in a [`Journal`] as soon as a job is
//! started and when it ends, so a retried or redriven chunk polls the job it started instead of
//! starting a second one, restores a backup that exists instead of backing up again, and skips
//! ranges already restored. A FAILED job is forgotten (the next attempt starts a new one).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::client::{SynapseClient, describe_request};
use crate::config::SynapseConfig;
use crate::error::{Result, SynapseError};
use crate::protocol::{AdminRequest, AdminResponse};

/// Where a range stands. Saved under `TYPE/LO-HI.json` in the chunk's journal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RangeState {
    /// The backup job started on the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_job_id: Option<String>,
    /// The backup it wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_file_key: Option<String>,
    /// The restore job started on the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_job_id: Option<String>,
    /// Rows restored, once done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_rows: Option<i64>,
}

/// Where ranges' states are kept between attempts (the runner: the manifest bucket).
pub trait Journal: Send + Sync {
    /// The state saved under `key`, if any.
    fn load(&self, key: &str) -> impl Future<Output = Result<Option<RangeState>>> + Send;
    /// Saves `state` under `key`.
    fn save(&self, key: &str, state: &RangeState) -> impl Future<Output = Result<()>> + Send;
}

/// A journal in memory (one process; nothing survives it).
#[derive(Debug, Default)]
pub struct MemoryJournal(Mutex<HashMap<String, RangeState>>);

impl Journal for MemoryJournal {
    async fn load(&self, key: &str) -> Result<Option<RangeState>> {
        Ok(self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned())
    }
    async fn save(&self, key: &str, state: &RangeState) -> Result<()> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_owned(), state.clone());
        Ok(())
    }
}

/// The journal key of a range.
pub fn range_key(type_name: &str, lo: i64, hi: i64) -> String {
    format!("{type_name}/{lo}-{hi}.json")
}

/// What copying a chunk did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Rows the destination restored (this attempt and earlier ones).
    pub restored_rows: u64,
    /// Ranges of the chunk.
    pub ranges: usize,
    /// Backup jobs this attempt started.
    pub backups_started: usize,
    /// Restore jobs this attempt started.
    pub restores_started: usize,
}

/// Copies `ranges` (inclusive, ascending) of `type_name` from `source` to `dest`.
pub async fn copy_type<J: Journal>(
    source: &SynapseClient,
    dest: &SynapseClient,
    config: &SynapseConfig,
    type_name: &str,
    ranges: &[(i64, i64)],
    journal: &J,
) -> Result<CopyReport> {
    let (tx, mut rx) =
        tokio::sync::mpsc::channel::<Result<((i64, i64), RangeState, bool)>>(config.backups_ahead);
    let producer = async move {
        let mut backups = futures::stream::iter(ranges.iter().copied())
            .map(|r| backup(source, config, type_name, r, journal))
            .buffered(config.backups_ahead);
        while let Some(done) = backups.next().await {
            let failed = done.is_err();
            if tx.send(done).await.is_err() || failed {
                break;
            }
        }
    };
    // Owns the receiver: when a restore fails it is dropped, and the producer stops.
    let consumer = async move {
        let mut report = CopyReport {
            ranges: ranges.len(),
            ..CopyReport::default()
        };
        while let Some(done) = rx.recv().await {
            let (range, state, started) = done?;
            report.backups_started += usize::from(started);
            let (rows, started) = restore(dest, config, type_name, range, state, journal).await?;
            report.restores_started += usize::from(started);
            report.restored_rows += rows.max(0) as u64;
        }
        Ok(report)
    };
    let ((), report) = tokio::join!(producer, consumer);
    let report: CopyReport = report?;
    if report.ranges > 0 && report.backups_started + report.restores_started == 0 {
        info!(
            type_name,
            ranges = report.ranges,
            "chunk already done by an earlier attempt"
        );
    }
    Ok(report)
}

/// Runs (or resumes) the job that `job_id` holds or `request` starts, recording its id through
/// `record` before polling. Returns the answer and whether a job was started.
async fn resume_or_start<F, Fut>(
    client: &SynapseClient,
    request: &AdminRequest,
    job_id: Option<String>,
    record: F,
) -> Result<(AdminResponse, bool)>
where
    F: Fn(Option<String>) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let what = describe_request(request);
    let (first, started) = match job_id {
        Some(id) => match client.job(&id).await {
            Ok(s) => (s, false),
            // The service forgot the job (restarted): start it again.
            Err(SynapseError::Refused { status: 404, .. }) => {
                (client.start_job(request).await?, true)
            }
            Err(e) => return Err(e),
        },
        None => (client.start_job(request).await?, true),
    };
    if started {
        record(Some(first.job_id.clone())).await?;
    }
    let job = first.job_id.clone();
    match client.wait_job(first, &what).await {
        Err(e @ SynapseError::JobFailed { .. }) => {
            info!(
                job,
                what, "admin job failed; forgotten so that the next attempt starts anew"
            );
            record(None).await?;
            Err(e)
        }
        other => other.map(|a| (a, started)),
    }
}

async fn backup<J: Journal>(
    source: &SynapseClient,
    config: &SynapseConfig,
    type_name: &str,
    (lo, hi): (i64, i64),
    journal: &J,
) -> Result<((i64, i64), RangeState, bool)> {
    let key = range_key(type_name, lo, hi);
    let mut state = journal.load(&key).await?.unwrap_or_default();
    if state.backup_file_key.is_some() || state.restored_rows.is_some() {
        return Ok(((lo, hi), state, false));
    }
    let request = AdminRequest::Backup {
        migration_type: type_name.to_owned(),
        alias_type: config.alias_type.clone(),
        batch_size: config.batch_size,
        minimum_id: lo,
        maximum_id: hi.saturating_add(1),
    };
    let base = state.clone();
    let (answer, started) = resume_or_start(source, &request, state.backup_job_id.clone(), |id| {
        let s = RangeState {
            backup_job_id: id,
            ..base.clone()
        };
        let key = key.clone();
        async move { journal.save(&key, &s).await }
    })
    .await?;
    let AdminResponse::Backup { backup_file_key } = answer else {
        return Err(SynapseError::Malformed {
            stack: source.describe().into(),
            what: describe_request(&request),
            reason: "not a BackupTypeResponse".into(),
        });
    };
    state.backup_job_id = None;
    state.backup_file_key = Some(backup_file_key);
    journal.save(&key, &state).await?;
    Ok(((lo, hi), state, started))
}

async fn restore<J: Journal>(
    dest: &SynapseClient,
    config: &SynapseConfig,
    type_name: &str,
    (lo, hi): (i64, i64),
    mut state: RangeState,
    journal: &J,
) -> Result<(i64, bool)> {
    if let Some(rows) = state.restored_rows {
        return Ok((rows, false));
    }
    let key = range_key(type_name, lo, hi);
    let request = AdminRequest::Restore {
        migration_type: type_name.to_owned(),
        alias_type: config.alias_type.clone(),
        backup_file_key: state.backup_file_key.clone().unwrap_or_default(),
        batch_size: config.batch_size,
        minimum_row_id: lo,
        maximum_row_id: hi.saturating_add(1),
    };
    let base = state.clone();
    let (answer, started) = resume_or_start(dest, &request, state.restore_job_id.clone(), |id| {
        let s = RangeState {
            restore_job_id: id,
            ..base.clone()
        };
        let key = key.clone();
        async move { journal.save(&key, &s).await }
    })
    .await?;
    let AdminResponse::Restore { restored_row_count } = answer else {
        return Err(SynapseError::Malformed {
            stack: dest.describe().into(),
            what: describe_request(&request),
            reason: "not a RestoreTypeResponse".into(),
        });
    };
    let rows = restored_row_count.unwrap_or(0);
    state.restore_job_id = None;
    state.restored_rows = Some(rows);
    journal.save(&key, &state).await?;
    Ok((rows, started))
}
