//! Task tokens and activity queues: what `GetActivityTask`, `SendTaskSuccess`,
//! `SendTaskFailure` and `SendTaskHeartbeat` act on.
//!
//! A Task state waiting on a token (an activity or `.waitForTaskToken`) holds a [`TaskWaiter`].
//! When the executor gives up on the attempt (timeout, heartbeat timeout, stop) it drops the
//! waiter; the token is then *closed*, and later `SendTask*` calls for it answer `TaskTimedOut`
//! as AWS does.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::{Notify, oneshot};

use crate::error::{ApiError, ApiErrorKind};

/// How a task waiting on a token ended.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskOutcome {
    /// `SendTaskSuccess` with this output.
    Success(Value),
    /// `SendTaskFailure` (or the engine) with this error and cause.
    Failure {
        /// ASL error name.
        error: String,
        /// Cause.
        cause: String,
    },
}

/// Called on `SendTaskHeartbeat`.
pub type HeartbeatFn = Arc<dyn Fn() + Send + Sync>;

/// Called when a worker takes an activity task, with the `workerName` it sent.
pub type PickupFn = Arc<dyn Fn(Option<&str>) + Send + Sync>;

/// An activity as the API describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityInfo {
    /// `activityArn`.
    pub arn: String,
    /// `name`.
    pub name: String,
    /// `creationDate`.
    pub created: DateTime<Utc>,
}

/// A task handed to an activity worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityTask {
    /// `taskToken`.
    pub task_token: String,
    /// `input` (JSON text).
    pub input: String,
}

/// Maximum number of closed tokens remembered (to answer `TaskTimedOut` rather than
/// `TaskDoesNotExist`; the [`TokenLog`] remembers the rest).
const CLOSED_MEMORY: usize = 200_000;

/// Remembers issued tokens across engine restarts, so that a token of a task that was in
/// flight when the engine died answers `TaskTimedOut` (not `TaskDoesNotExist`).
pub trait TokenLog: Send + Sync {
    /// A token was issued.
    fn issued(&self, token: &str);
    /// Whether `token` was ever issued.
    fn was_issued(&self, token: &str) -> bool;
}

/// Pending tokens, closed tokens and activity queues.
#[derive(Default)]
pub struct TaskHub {
    inner: Mutex<Inner>,
    log: Option<Arc<dyn TokenLog>>,
}

#[derive(Default)]
struct Inner {
    pending: HashMap<String, Pending>,
    closed: HashMap<String, ()>,
    closed_order: VecDeque<String>,
    activities: HashMap<String, Activity>,
}

struct Pending {
    sender: oneshot::Sender<TaskOutcome>,
    heartbeat: HeartbeatFn,
    /// Activity tasks: called at pickup (starts the heartbeat clock, records the worker).
    pickup: Option<PickupFn>,
}

struct Activity {
    info: ActivityInfo,
    queue: VecDeque<ActivityTask>,
    notify: Arc<Notify>,
}

impl TaskHub {
    /// An empty hub.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// An empty hub that records issued tokens in `log`.
    pub fn with_log(log: Arc<dyn TokenLog>) -> Arc<Self> {
        Arc::new(TaskHub {
            inner: Mutex::default(),
            log: Some(log),
        })
    }

    /// Creates an activity (idempotent: an existing one is returned as is).
    pub fn create_activity(&self, arn: &str, name: &str, created: DateTime<Utc>) -> ActivityInfo {
        let mut inner = self.lock();
        inner
            .activities
            .entry(arn.to_string())
            .or_insert_with(|| Activity {
                info: ActivityInfo {
                    arn: arn.to_string(),
                    name: name.to_string(),
                    created,
                },
                queue: VecDeque::new(),
                notify: Arc::new(Notify::new()),
            })
            .info
            .clone()
    }

    /// Deletes an activity; tasks still queued for it fail with `States.Runtime`.
    pub fn delete_activity(&self, arn: &str) -> bool {
        let mut inner = self.lock();
        let Some(activity) = inner.activities.remove(arn) else {
            return false;
        };
        activity.notify.notify_waiters();
        for task in activity.queue {
            if let Some(p) = inner.pending.remove(&task.task_token) {
                let _ = p.sender.send(TaskOutcome::Failure {
                    error: "States.Runtime".into(),
                    cause: format!(
                        "The activity {arn} was deleted while the task waited for a worker."
                    ),
                });
            }
        }
        true
    }

    /// The activity `arn`.
    pub fn activity(&self, arn: &str) -> Option<ActivityInfo> {
        self.lock().activities.get(arn).map(|a| a.info.clone())
    }

    /// All activities, by creation date then ARN.
    pub fn activities(&self) -> Vec<ActivityInfo> {
        let mut v: Vec<ActivityInfo> = self
            .lock()
            .activities
            .values()
            .map(|a| a.info.clone())
            .collect();
        v.sort_by(|a, b| a.created.cmp(&b.created).then(a.arn.cmp(&b.arn)));
        v
    }

    /// Registers a token a Task state now waits on (`.waitForTaskToken`).
    pub fn register(self: &Arc<Self>, token: &str, heartbeat: HeartbeatFn) -> TaskWaiter {
        self.register_with(token, heartbeat, None)
    }

    fn register_with(
        self: &Arc<Self>,
        token: &str,
        heartbeat: HeartbeatFn,
        pickup: Option<PickupFn>,
    ) -> TaskWaiter {
        if let Some(log) = &self.log {
            log.issued(token);
        }
        let (tx, rx) = oneshot::channel();
        self.lock().pending.insert(
            token.to_string(),
            Pending {
                sender: tx,
                heartbeat,
                pickup,
            },
        );
        TaskWaiter {
            token: token.to_string(),
            rx,
            hub: self.clone(),
        }
    }

    /// Queues a task for the activity `arn`'s workers: `heartbeat` on each
    /// `SendTaskHeartbeat`, `pickup` when a worker takes it.
    pub fn schedule_activity(
        self: &Arc<Self>,
        arn: &str,
        token: &str,
        input: &Value,
        heartbeat: HeartbeatFn,
        pickup: PickupFn,
    ) -> Result<TaskWaiter, String> {
        if self.activity(arn).is_none() {
            return Err(format!(
                "The activity {arn} does not exist. Declare it in template.yaml \
                 (AWS::StepFunctions::Activity) or create it with CreateActivity."
            ));
        }
        let waiter = self.register_with(token, heartbeat, Some(pickup));
        let mut inner = self.lock();
        if let Some(activity) = inner.activities.get_mut(arn) {
            activity.queue.push_back(ActivityTask {
                task_token: token.to_string(),
                input: input.to_string(),
            });
            activity.notify.notify_waiters();
        }
        Ok(waiter)
    }

    /// `GetActivityTask`: the next task for `arn`, waiting up to `wait` for one, for the worker
    /// named `worker` (its `workerName`).
    pub async fn poll(
        &self,
        arn: &str,
        wait: Duration,
        worker: Option<&str>,
    ) -> Result<Option<ActivityTask>, ApiError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notify = {
                let mut inner = self.lock();
                let Inner {
                    pending,
                    activities,
                    ..
                } = &mut *inner;
                let activity = activities.get_mut(arn).ok_or_else(|| {
                    ApiError::new(
                        ApiErrorKind::ActivityDoesNotExist,
                        format!("Activity Does Not Exist: '{arn}'"),
                    )
                })?;
                while let Some(task) = activity.queue.pop_front() {
                    if let Some(p) = pending.get(&task.task_token) {
                        // The heartbeat clock starts when a worker takes the task.
                        match &p.pickup {
                            Some(pickup) => pickup(worker),
                            None => (p.heartbeat)(),
                        }
                        return Ok(Some(task));
                    }
                }
                activity.notify.clone()
            };
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Re-check after enabling, so a task queued in between is not missed.
            if self
                .lock()
                .activities
                .get(arn)
                .is_some_and(|a| !a.queue.is_empty())
            {
                continue;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => return Ok(None),
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }

    /// `SendTaskSuccess`.
    pub fn succeed(&self, token: &str, output: &str) -> Result<(), ApiError> {
        check_token(token)?;
        let value: Value = serde_json::from_str(output).map_err(|e| {
            ApiError::new(
                ApiErrorKind::InvalidOutput,
                format!("Invalid Output: the output is not valid JSON ({e})"),
            )
        })?;
        self.complete(token, TaskOutcome::Success(value))
    }

    /// `SendTaskFailure`.
    pub fn fail(&self, token: &str, error: &str, cause: &str) -> Result<(), ApiError> {
        check_token(token)?;
        self.complete(
            token,
            TaskOutcome::Failure {
                error: error.to_string(),
                cause: cause.to_string(),
            },
        )
    }

    /// `SendTaskHeartbeat`.
    pub fn heartbeat(&self, token: &str) -> Result<(), ApiError> {
        check_token(token)?;
        let closed = {
            let inner = self.lock();
            match inner.pending.get(token) {
                Some(p) => {
                    (p.heartbeat)();
                    return Ok(());
                }
                None => inner.closed.contains_key(token),
            }
        };
        Err(self.gone(closed, token))
    }

    /// Whether `token` is waiting for an answer.
    pub fn is_pending(&self, token: &str) -> bool {
        self.lock().pending.contains_key(token)
    }

    fn complete(&self, token: &str, outcome: TaskOutcome) -> Result<(), ApiError> {
        let closed = {
            let mut inner = self.lock();
            match inner.pending.remove(token) {
                Some(p) => {
                    remember_closed(&mut inner, token);
                    let _ = p.sender.send(outcome);
                    return Ok(());
                }
                None => inner.closed.contains_key(token),
            }
        };
        Err(self.gone(closed, token))
    }

    fn abandon(&self, token: &str) {
        let mut inner = self.lock();
        if inner.pending.remove(token).is_some() {
            remember_closed(&mut inner, token);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn remember_closed(inner: &mut Inner, token: &str) {
    inner.closed.insert(token.to_string(), ());
    inner.closed_order.push_back(token.to_string());
    while inner.closed_order.len() > CLOSED_MEMORY {
        if let Some(old) = inner.closed_order.pop_front() {
            inner.closed.remove(&old);
        }
    }
}

impl TaskHub {
    fn gone(&self, closed: bool, token: &str) -> ApiError {
        gone_error(
            closed || self.log.as_ref().is_some_and(|l| l.was_issued(token)),
            token,
        )
    }
}

/// Whether `token` has the form of the engine's tokens (`stepops_asl` issues 64 lowercase
/// hexadecimal characters).
fn engine_form(token: &str) -> bool {
    token.len() == 64
        && token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The answer to a token that is not pending, as AWS names it: `TaskTimedOut` for a task that
/// was closed (answered, timed out, its execution ended), `TaskDoesNotExist` for a token of
/// the engine's form that it never issued, `InvalidToken` for anything else (AWS cannot
/// decode a token it did not issue).
fn gone_error(closed: bool, token: &str) -> ApiError {
    if closed {
        ApiError::new(
            ApiErrorKind::TaskTimedOut,
            "Task Timed Out: 'Provided task does not exist anymore'",
        )
    } else if engine_form(token) {
        ApiError::new(
            ApiErrorKind::TaskDoesNotExist,
            "Task Does Not Exist: no task of this engine has that token",
        )
    } else {
        ApiError::new(
            ApiErrorKind::InvalidToken,
            "Invalid Token: not a task token of this engine (its tokens are 64 hexadecimal \
             characters, as GetActivityTask or $$.Task.Token gave them)",
        )
    }
}

/// AWS's checks before the token is looked up: its length constraint (1 to 2048 characters)
/// fails as `ValidationException`, as every API's constraints do; a token with other than
/// printable ASCII cannot be one AWS issued: `InvalidToken`.
fn check_token(token: &str) -> Result<(), ApiError> {
    let chars = token.chars().count();
    if chars == 0 || chars > 2048 {
        return Err(ApiError::new(
            ApiErrorKind::ValidationException,
            format!(
                "1 validation error detected: Value at 'taskToken' failed to satisfy constraint: \
                 Member must have length {} (it has {chars})",
                if chars == 0 {
                    "greater than or equal to 1"
                } else {
                    "less than or equal to 2048"
                }
            ),
        ));
    }
    if !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::new(
            ApiErrorKind::InvalidToken,
            "Invalid Token: a task token is printable ASCII, without spaces",
        ));
    }
    Ok(())
}

/// A Task state's wait on its token. Dropping it before an answer closes the token.
pub struct TaskWaiter {
    token: String,
    rx: oneshot::Receiver<TaskOutcome>,
    hub: Arc<TaskHub>,
}

impl TaskWaiter {
    /// The token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Waits for `SendTaskSuccess`/`SendTaskFailure`.
    pub async fn wait(mut self) -> TaskOutcome {
        match (&mut self.rx).await {
            Ok(outcome) => outcome,
            Err(_) => TaskOutcome::Failure {
                error: "States.Runtime".into(),
                cause: "The engine dropped the task before it was answered.".into(),
            },
        }
    }
}

impl Drop for TaskWaiter {
    fn drop(&mut self) {
        self.hub.abandon(&self.token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    const ARN: &str = "arn:aws:states:us-east-1:123456789012:activity:copy";

    fn beats() -> (HeartbeatFn, Arc<AtomicU32>) {
        let n = Arc::new(AtomicU32::new(0));
        let m = n.clone();
        (
            Arc::new(move || {
                m.fetch_add(1, Ordering::SeqCst);
            }),
            n,
        )
    }

    /// A pickup that beats `hb` and records the worker's name in `who`.
    fn pickup(hb: &HeartbeatFn, who: &Arc<Mutex<Vec<Option<String>>>>) -> PickupFn {
        let (hb, who) = (hb.clone(), who.clone());
        Arc::new(move |w: Option<&str>| {
            who.lock().unwrap().push(w.map(str::to_owned));
            hb()
        })
    }

    #[tokio::test]
    async fn activity_round_trip() {
        let hub = TaskHub::new();
        hub.create_activity(ARN, "copy", Utc::now());
        let (hb, count) = beats();
        let who = Arc::default();
        let waiter = hub
            .schedule_activity(
                ARN,
                "tok-1",
                &serde_json::json!({"a": 1}),
                hb.clone(),
                pickup(&hb, &who),
            )
            .unwrap();
        let task = hub
            .poll(ARN, Duration::from_millis(10), Some("runner-7"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(task.task_token, "tok-1");
        assert_eq!(task.input, r#"{"a":1}"#);
        assert_eq!(
            count.load(Ordering::SeqCst),
            1,
            "pickup starts the heartbeat clock"
        );
        assert_eq!(*who.lock().unwrap(), vec![Some("runner-7".to_owned())]);
        hub.heartbeat("tok-1").unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 2);
        hub.succeed("tok-1", r#"{"done":true}"#).unwrap();
        assert_eq!(
            waiter.wait().await,
            TaskOutcome::Success(serde_json::json!({"done": true}))
        );
        let again = hub.succeed("tok-1", "{}").unwrap_err();
        assert_eq!(again.kind, ApiErrorKind::TaskTimedOut);
        assert_eq!(
            hub.heartbeat(&"ab12".repeat(16)).unwrap_err().kind,
            ApiErrorKind::TaskDoesNotExist,
            "of the engine's form, never issued"
        );
        for malformed in ["nope", "tok 1", &"AB12".repeat(16)] {
            assert_eq!(
                hub.heartbeat(malformed).unwrap_err().kind,
                ApiErrorKind::InvalidToken,
                "{malformed}"
            );
        }
        for wrong_length in ["".to_owned(), "a".repeat(2049)] {
            assert_eq!(
                hub.heartbeat(&wrong_length).unwrap_err().kind,
                ApiErrorKind::ValidationException
            );
        }
    }

    #[tokio::test]
    async fn long_poll_wakes_on_schedule_and_times_out() {
        let hub = TaskHub::new();
        hub.create_activity(ARN, "copy", Utc::now());
        let started = tokio::time::Instant::now();
        assert_eq!(
            hub.poll(ARN, Duration::from_millis(100), None)
                .await
                .unwrap(),
            None
        );
        assert!(started.elapsed() >= Duration::from_millis(100));

        let h2 = hub.clone();
        let poller = tokio::spawn(async move { h2.poll(ARN, Duration::from_secs(10), None).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (hb, _) = beats();
        let _w = hub
            .schedule_activity(
                ARN,
                "tok-2",
                &Value::Null,
                hb.clone(),
                pickup(&hb, &Arc::default()),
            )
            .unwrap();
        let got = poller.await.unwrap().unwrap().unwrap();
        assert_eq!(got.task_token, "tok-2");
        assert_eq!(
            hub.poll(
                "arn:aws:states:us-east-1:1:activity:none",
                Duration::ZERO,
                None
            )
            .await
            .unwrap_err()
            .kind,
            ApiErrorKind::ActivityDoesNotExist
        );
    }

    #[tokio::test]
    async fn dropped_waiter_closes_the_token() {
        let hub = TaskHub::new();
        hub.create_activity(ARN, "copy", Utc::now());
        let (hb, _) = beats();
        let waiter = hub
            .schedule_activity(
                ARN,
                "tok-3",
                &Value::Null,
                hb.clone(),
                pickup(&hb, &Arc::default()),
            )
            .unwrap();
        drop(waiter); // the executor timed the task out
        assert_eq!(
            hub.poll(ARN, Duration::from_millis(10), None)
                .await
                .unwrap(),
            None,
            "a timed-out task is not handed to workers"
        );
        assert_eq!(
            hub.fail("tok-3", "E", "c").unwrap_err().kind,
            ApiErrorKind::TaskTimedOut
        );
    }
}
