//! Copying one chunk: a type's differing ranges, each backed up on the source and restored on
//! the destination (which deletes the range, then upserts the backup: idempotent). Backups run
//! up to `backupsAhead` ahead; restores of the type run one at a time, in id order, as the
//! service requires.
//!
//! Resumable: every range's [`RangeState`] is saved in a [`Journal`] as soon as a job is
//! started and when it ends, so a retried or redriven chunk polls the job it started instead of
//! starting a second one, restores a backup that exists instead of backing up again, and skips
//! ranges already restored. A FAILED job is forgotten (the next attempt starts a new one).
//!
//! Starting a job and recording its id run as one spawned task, so a chunk that is stopped
//! (its task cancelled, a sibling range failed) never leaves a started job unrecorded, and a
//! chunk that returns (an error included) has waited for those tasks (a [`TaskTracker`]): when it
//! returns, every job it started is in the journal, even if the process then stops. Only a
//! process killed inside that window (one request and one journal write) can leave one out:
//! the journal's `starting` mark, written before the request, makes the next attempt say so
//! in its log.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::client::{SynapseClient, describe_request};
use crate::config::SynapseConfig;
use crate::error::{Result, SynapseError};
use crate::protocol::{AdminRequest, AdminResponse, JobStatus};

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
    /// The job (`backup` or `restore`) being started when this was saved: set before the
    /// request, cleared with the job id it returns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting: Option<JobKind>,
}

/// The two kinds of job a range runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum JobKind {
    /// The source's backup of the range.
    Backup,
    /// The destination's restore of that backup.
    Restore,
}

impl JobKind {
    fn job_id(self, state: &mut RangeState) -> &mut Option<String> {
        match self {
            JobKind::Backup => &mut state.backup_job_id,
            JobKind::Restore => &mut state.restore_job_id,
        }
    }
}

/// Where ranges' states are kept between attempts (the runner: the manifest bucket). Cloned
/// into the task that starts a job and records it, so clones share one journal.
pub trait Journal: Clone + Send + Sync + 'static {
    /// The state saved under `key`, if any.
    fn load(&self, key: &str) -> impl Future<Output = Result<Option<RangeState>>> + Send;
    /// Saves `state` under `key`.
    fn save(&self, key: &str, state: &RangeState) -> impl Future<Output = Result<()>> + Send;
}

/// A journal in memory (one process; nothing survives it).
#[derive(Debug, Default, Clone)]
pub struct MemoryJournal(Arc<Mutex<HashMap<String, RangeState>>>);

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
    // The tasks starting jobs ([`start_and_record`]), waited for before the chunk returns; the
    // `async move` blocks below take this reference, not the tracker.
    let starts = TaskTracker::new();
    let tracker = &starts;
    let producer = async move {
        let mut backups = futures::stream::iter(ranges.iter().copied())
            .map(|r| backup(source, config, type_name, r, journal, tracker))
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
            let (rows, started) =
                restore(dest, config, type_name, range, state, journal, tracker).await?;
            report.restores_started += usize::from(started);
            report.restored_rows += rows.max(0) as u64;
        }
        Ok(report)
    };
    let ((), report) = tokio::join!(producer, consumer);
    // A failed range stopped its siblings: the jobs they were starting get recorded first.
    starts.close();
    starts.wait().await;
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

/// Runs (or resumes) `kind`'s job of the range at `key`: polls the job `state` records, or
/// starts `request` and records the new job's id before polling. Returns the answer and
/// whether a job was started; a FAILED job is forgotten in the journal.
async fn resume_or_start<J: Journal>(
    client: &SynapseClient,
    request: &AdminRequest,
    kind: JobKind,
    key: &str,
    state: &RangeState,
    journal: &J,
    starts: &TaskTracker,
) -> Result<(AdminResponse, bool)> {
    let what = describe_request(request);
    let mut base = state.clone();
    let recorded = kind.job_id(&mut base).take();
    let resumed = match recorded {
        Some(id) => match client.job(&id).await {
            Ok(s) => Some(s),
            // The service forgot the job (restarted): start it again.
            Err(SynapseError::Refused { status: 404, .. }) => None,
            Err(e) => return Err(e),
        },
        None => {
            if base.starting == Some(kind) {
                warn!(
                    key,
                    what,
                    "an earlier attempt stopped while starting this job: if the service had \
                     accepted it, it runs twice (harmless: a range's backup and restore are \
                     idempotent)"
                );
            }
            None
        }
    };
    let (first, started) = match resumed {
        Some(s) => (s, false),
        None => (
            start_and_record(client, request, kind, key, base.clone(), journal, starts).await?,
            true,
        ),
    };
    base.starting = None;
    let job = first.job_id.clone();
    match client.wait_job(first, &what).await {
        Err(e @ SynapseError::JobFailed { .. }) => {
            info!(
                job,
                what, "admin job failed; forgotten so that the next attempt starts anew"
            );
            journal.save(key, &base).await?;
            Err(e)
        }
        other => other.map(|a| (a, started)),
    }
}

/// Starts `request`'s job and records its id under `key`, in a task of its own: dropping the
/// caller (a stopped chunk) does not drop the record of a job the service accepted.
async fn start_and_record<J: Journal>(
    client: &SynapseClient,
    request: &AdminRequest,
    kind: JobKind,
    key: &str,
    base: RangeState,
    journal: &J,
    starts: &TaskTracker,
) -> Result<JobStatus> {
    let (client, request, key, journal) = (
        client.clone(),
        request.clone(),
        key.to_owned(),
        journal.clone(),
    );
    let task = starts.spawn(async move {
        let mut state = base;
        state.starting = Some(kind);
        journal.save(&key, &state).await?;
        let status = client.start_job(&request).await?;
        state.starting = None;
        *kind.job_id(&mut state) = Some(status.job_id.clone());
        journal.save(&key, &state).await?;
        Ok(status)
    });
    match task.await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(SynapseError::Journal(format!(
            "the task starting a job was cancelled: {e}"
        ))),
    }
}

async fn backup<J: Journal>(
    source: &SynapseClient,
    config: &SynapseConfig,
    type_name: &str,
    (lo, hi): (i64, i64),
    journal: &J,
    starts: &TaskTracker,
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
    let (answer, started) = resume_or_start(
        source,
        &request,
        JobKind::Backup,
        &key,
        &state,
        journal,
        starts,
    )
    .await?;
    let AdminResponse::Backup { backup_file_key } = answer else {
        return Err(SynapseError::Malformed {
            stack: source.describe().into(),
            what: describe_request(&request),
            reason: "not a BackupTypeResponse".into(),
        });
    };
    state.backup_job_id = None;
    state.starting = None;
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
    starts: &TaskTracker,
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
    let (answer, started) = resume_or_start(
        dest,
        &request,
        JobKind::Restore,
        &key,
        &state,
        journal,
        starts,
    )
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
    state.starting = None;
    state.restored_rows = Some(rows);
    journal.save(&key, &state).await?;
    Ok((rows, started))
}
