//! The poll loop: long-polls `GetActivityTask` for each activity while a slot is free, runs up
//! to `concurrency` tasks at once, heartbeats each running task, answers with
//! `SendTaskSuccess`/`SendTaskFailure` (retrying transient failures with backoff), and drains on
//! shutdown.
//!
//! Cancellation: a heartbeat answered with `TaskTimedOut`/`TaskDoesNotExist`/`InvalidToken`
//! means Step Functions no longer waits for the task (it timed out, and the state's `Retry`
//! runs it again if it has one; or its execution is no longer running): the step's future is
//! dropped at once and nothing is answered. `refusal_meaning` words each refusal for the log.
//! When the drain timeout passes, the remaining steps' futures are dropped too and each task is
//! answered `Stepops.Transient` so the state machine retries it. Handlers must be cancel-safe (see [`crate::step`]).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_sfn::config::http::HttpResponse;
use aws_sdk_sfn::error::{ProvideErrorMetadata, SdkError};
use serde_json::{Value, json};
use stepops_error::{Environment, ErrorName, StackEnvironment, TargetKind, TargetRef};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::config::RunnerConfig;
use crate::step::{StepError, StepHandler};

mod sdk_errors;
mod task_input;

use sdk_errors::{classify, sdk_error_text};
use task_input::parse_input;

/// Step Functions' limit on a failure's `error` field, in characters.
pub const MAX_ERROR_CHARS: usize = 256;
/// Step Functions' limit on a failure's `cause` field, in characters.
pub const MAX_CAUSE_CHARS: usize = 32_768;
/// Step Functions' limit on a task's output, in bytes.
pub const MAX_OUTPUT_BYTES: usize = 262_144;

/// How the runner behaves (the non-AWS part of [`RunnerConfig`]).
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// Activity ARNs to poll (one poller each).
    pub activities: Vec<String>,
    /// Tasks run at once, over all activities.
    pub concurrency: usize,
    /// Interval between heartbeats of a running task.
    pub heartbeat_interval: Duration,
    /// How long running tasks may finish after shutdown was asked.
    pub drain_timeout: Duration,
    /// Sent as `workerName` with each poll.
    pub worker_name: String,
    /// When set, a task must say its `args.environment` (else `Stepops.InvalidInput`) and it
    /// must be this one (else `Stepops.WrongEnvironment`).
    pub environment: Option<Environment>,
    /// When set, every target a task names (`source`, `dest`, `target`) must be on this
    /// allow-list (the one validate-input checks), before its step runs.
    pub allowed_targets: Option<StackEnvironment>,
    /// Refuse `{"url": …}` targets (AWS mode: no `endpoint`); URLs are for local runs.
    pub refuse_url_targets: bool,
    /// How long one heartbeat or answer call may take before it is abandoned (a heartbeat is
    /// tried again at the next interval, an answer retried), far below the poll's timeout.
    pub answer_timeout: Duration,
    /// Attempts at sending one answer (success, failure) before giving up.
    pub answer_attempts: u32,
    /// First backoff delay between answer attempts (doubles, with jitter, up to 10 s).
    pub answer_backoff: Duration,
}

impl RunnerOptions {
    /// Options for `activities` with the documented defaults.
    pub fn new(activities: Vec<String>) -> Self {
        RunnerOptions {
            activities,
            concurrency: 4,
            heartbeat_interval: Duration::from_secs(20),
            drain_timeout: Duration::from_secs(120),
            worker_name: "stepops-runner".into(),
            environment: None,
            allowed_targets: None,
            refuse_url_targets: false,
            answer_timeout: Duration::from_secs(10),
            answer_attempts: 8,
            answer_backoff: Duration::from_millis(200),
        }
    }
}

impl From<&RunnerConfig> for RunnerOptions {
    fn from(c: &RunnerConfig) -> Self {
        RunnerOptions {
            activities: c.activities.clone(),
            concurrency: c.concurrency,
            heartbeat_interval: c.heartbeat_interval,
            drain_timeout: c.drain_timeout,
            worker_name: c.worker_name.clone(),
            environment: c.environment,
            allowed_targets: c.allowed_targets.clone(),
            refuse_url_targets: c.endpoint.is_none(),
            answer_timeout: c.answer_timeout,
            ..RunnerOptions::new(Vec::new())
        }
    }
}

/// What a run did, returned when it stops.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// Tasks answered with `SendTaskSuccess`.
    pub succeeded: u64,
    /// Tasks answered with `SendTaskFailure` by their step (includes bad inputs).
    pub failed: u64,
    /// Tasks abandoned because a heartbeat said they timed out or no longer exist.
    pub abandoned: u64,
    /// Tasks handed back as `Stepops.Transient` because the runner was shutting down.
    pub handed_back: u64,
    /// Answers that could not be delivered after all retries.
    pub undelivered: u64,
}

#[derive(Default)]
struct Counters {
    succeeded: AtomicU64,
    failed: AtomicU64,
    abandoned: AtomicU64,
    handed_back: AtomicU64,
    undelivered: AtomicU64,
}

impl Counters {
    fn report(&self) -> RunReport {
        RunReport {
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            abandoned: self.abandoned.load(Ordering::Relaxed),
            handed_back: self.handed_back.load(Ordering::Relaxed),
            undelivered: self.undelivered.load(Ordering::Relaxed),
        }
    }
}

type Redactor = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// Polls activities and runs their tasks through a [`StepHandler`].
pub struct Runner<H> {
    client: aws_sdk_sfn::Client,
    options: RunnerOptions,
    handler: Arc<H>,
    redact: Redactor,
}

struct Shared<H> {
    client: aws_sdk_sfn::Client,
    options: RunnerOptions,
    handler: Arc<H>,
    redact: Redactor,
    counters: Counters,
    /// Cancelled when the drain timeout passes: running steps are dropped and handed back.
    abort: CancellationToken,
}

enum Answer {
    Success(String),
    Failure { error: String, cause: String },
}

impl<H: StepHandler> Runner<H> {
    /// A runner that answers through `client` (see [`crate::sfn_client`]).
    pub fn new(client: aws_sdk_sfn::Client, options: RunnerOptions, handler: H) -> Self {
        Runner {
            client,
            options,
            handler: Arc::new(handler),
            redact: Arc::new(|s: &str| s.to_owned()),
        }
    }

    /// Scrubs every failure cause through `redact` before it is logged or sent (for example
    /// [`crate::Resolver::redact`], which knows the secret values fetched so far).
    pub fn with_redactor(
        mut self,
        redact: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> Self {
        self.redact = Arc::new(redact);
        self
    }

    /// Runs until `shutdown` completes, then drains: polling stops at once (an in-flight poll
    /// is abandoned), running tasks get up to the drain timeout to finish, the rest are handed
    /// back as `Stepops.Transient`. Returns what was done.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> RunReport {
        let shared = Arc::new(Shared {
            client: self.client,
            options: self.options,
            handler: self.handler,
            redact: self.redact,
            counters: Counters::default(),
            abort: CancellationToken::new(),
        });
        let stop = CancellationToken::new();
        let slots = Arc::new(Semaphore::new(shared.options.concurrency.max(1)));
        let tasks = Arc::new(tokio::sync::Mutex::new(JoinSet::new()));
        info!(
            activities = ?shared.options.activities,
            concurrency = shared.options.concurrency,
            heartbeat_seconds = shared.options.heartbeat_interval.as_secs_f64(),
            worker = %shared.options.worker_name,
            "runner started"
        );

        let mut pollers = JoinSet::new();
        for arn in shared.options.activities.clone() {
            pollers.spawn(poll_loop(
                shared.clone(),
                arn,
                slots.clone(),
                stop.clone(),
                tasks.clone(),
            ));
        }

        shutdown.await;
        info!(
            drain_timeout_seconds = shared.options.drain_timeout.as_secs_f64(),
            "shutdown asked: polling stops, running tasks get the drain timeout to finish"
        );
        stop.cancel();
        while pollers.join_next().await.is_some() {}

        let mut set = std::mem::take(&mut *tasks.lock().await);
        let running = set.len();
        if running > 0 {
            info!(running, "waiting for running tasks");
        }
        let drained = tokio::time::timeout(shared.options.drain_timeout, async {
            while let Some(r) = set.join_next().await {
                log_join(r);
            }
        })
        .await;
        if drained.is_err() {
            warn!(
                remaining = set.len(),
                "drain timeout passed: handing the remaining tasks back as Stepops.Transient"
            );
            shared.abort.cancel();
            while let Some(r) = set.join_next().await {
                log_join(r);
            }
        }
        let report = shared.counters.report();
        info!(?report, "runner stopped");
        report
    }
}

fn log_join(r: Result<(), tokio::task::JoinError>) {
    if let Err(e) = r
        && e.is_panic()
    {
        error!("a task's supervisor panicked: {e}");
    }
}

async fn poll_loop<H: StepHandler>(
    shared: Arc<Shared<H>>,
    arn: String,
    slots: Arc<Semaphore>,
    stop: CancellationToken,
    tasks: Arc<tokio::sync::Mutex<JoinSet<()>>>,
) {
    let mut failures: u32 = 0;
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => return,
            p = slots.clone().acquire_owned() => p.expect("semaphore never closed"),
        };
        // Reap finished tasks so the set does not grow over a long run.
        {
            let mut set = tasks.lock().await;
            while let Some(r) = set.try_join_next() {
                log_join(r);
            }
        }
        let poll = shared
            .client
            .get_activity_task()
            .activity_arn(&arn)
            .worker_name(&shared.options.worker_name)
            .send();
        let result = tokio::select! {
            biased;
            r = poll => r,
            _ = stop.cancelled() => {
                debug!(activity = %arn, "in-flight poll abandoned");
                return;
            }
        };
        match result {
            Ok(out) => {
                failures = 0;
                let Some(token) = out.task_token.filter(|t| !t.is_empty()) else {
                    debug!(activity = %arn, "poll returned no task");
                    continue;
                };
                let input = out.input.unwrap_or_default();
                if stop.is_cancelled() {
                    let shared = shared.clone();
                    tasks.lock().await.spawn(async move {
                        hand_back(
                            &shared,
                            &token,
                            "runner shutting down: task handed back before it started",
                        )
                        .await;
                        drop(permit);
                    });
                    return;
                }
                let span = info_span!("task", token = %short_token(&token), activity = %arn);
                tasks
                    .lock()
                    .await
                    .spawn(run_task(shared.clone(), token, input, permit).instrument(span));
            }
            Err(err) => {
                drop(permit);
                failures = failures.saturating_add(1);
                let delay = backoff(
                    Duration::from_millis(500),
                    failures,
                    Duration::from_secs(30),
                );
                warn!(
                    activity = %arn,
                    error = %sdk_error_text(&err),
                    retry_in_ms = delay.as_millis() as u64,
                    "GetActivityTask failed"
                );
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// The last characters of a task token, enough to correlate log lines.
fn short_token(token: &str) -> String {
    let chars: Vec<char> = token.chars().collect();
    chars[chars.len().saturating_sub(12)..].iter().collect()
}

enum Outcome {
    Done(Result<Value, StepError>),
    /// A heartbeat was refused: `(error code, the service's message)`.
    Lost((String, String)),
    Aborted,
}

async fn run_task<H: StepHandler>(
    shared: Arc<Shared<H>>,
    token: String,
    input: String,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let started = std::time::Instant::now();
    let parsed = parse_input(&input, &shared.options);
    let step_name = parsed.as_ref().map(|(s, _)| s.clone()).unwrap_or_default();
    info!(step = %step_name, "task started");
    let outcome = {
        let work = async {
            let (step, args) = parsed?;
            if step == "ping" {
                return ping(&shared.options.worker_name, &args).await;
            }
            shared.handler.run(&step, args).await
        };
        tokio::select! {
            biased;
            r = work => Outcome::Done(r),
            reason = heartbeat_until_lost(&shared, &token) => Outcome::Lost(reason),
            _ = shared.abort.cancelled() => Outcome::Aborted,
        }
        // The step's future is dropped here in the Lost and Aborted cases.
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Outcome::Done(Ok(output)) => {
            let text = output.to_string();
            if text.len() > MAX_OUTPUT_BYTES {
                let err = StepError::internal(format!(
                    "step `{step_name}` produced {} bytes of output, over Step Functions' limit \
                     of {MAX_OUTPUT_BYTES}: report it",
                    text.len()
                ));
                send_failure(&shared, &token, &err, elapsed_ms).await;
            } else if answer(&shared, &token, Answer::Success(text)).await {
                shared.counters.succeeded.fetch_add(1, Ordering::Relaxed);
                info!(step = %step_name, elapsed_ms, "task succeeded");
            }
        }
        Outcome::Done(Err(err)) => send_failure(&shared, &token, &err, elapsed_ms).await,
        Outcome::Lost((code, message)) => {
            shared.counters.abandoned.fetch_add(1, Ordering::Relaxed);
            warn!(
                step = %step_name,
                elapsed_ms,
                answered = %code,
                service_message = %message,
                meaning = refusal_meaning(&code),
                "heartbeat refused: work cancelled (uncommitted changes rolled back); nothing is answered"
            );
        }
        Outcome::Aborted => {
            hand_back(
                &shared,
                &token,
                &format!(
                    "runner shutting down: step `{step_name}` did not finish within the drain \
                     timeout ({} s); its work was cancelled and rolled back",
                    shared.options.drain_timeout.as_secs()
                ),
            )
            .await;
        }
    }
    drop(permit);
}

async fn send_failure<H>(shared: &Shared<H>, token: &str, err: &StepError, elapsed_ms: u64) {
    let cause = (shared.redact)(&err.cause);
    let error = err.name.as_str().to_owned();
    if answer(
        shared,
        token,
        Answer::Failure {
            error: error.clone(),
            cause: cause.clone(),
        },
    )
    .await
    {
        shared.counters.failed.fetch_add(1, Ordering::Relaxed);
        warn!(error = %error, cause = %cause, elapsed_ms, "task failed");
    }
}

async fn hand_back<H>(shared: &Shared<H>, token: &str, cause: &str) {
    let delivered = answer(
        shared,
        token,
        Answer::Failure {
            error: ErrorName::Transient.as_str().to_owned(),
            cause: cause.to_owned(),
        },
    )
    .await;
    if delivered {
        shared.counters.handed_back.fetch_add(1, Ordering::Relaxed);
        info!(cause, "task handed back as Stepops.Transient");
    }
}

/// The built-in `ping` step: `{"sleepMs"?: N}` → `{"pong": true, "worker": NAME}`. A smoke test
/// for a deployment (is a runner polling this activity?).
async fn ping(worker: &str, args: &Value) -> Result<Value, StepError> {
    let sleep_ms = match args.get("sleepMs") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_u64()
            .filter(|ms| *ms <= 3_600_000)
            .ok_or_else(|| StepError::invalid_input("ping: `sleepMs` must be 0 to 3600000"))?,
    };
    tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
    Ok(json!({"pong": true, "worker": worker}))
}

/// Sends heartbeats at the interval; returns only when the service refuses one because the task
/// is gone (see `refusal_meaning`), with the error code and the service's message.
async fn heartbeat_until_lost<H>(shared: &Shared<H>, token: &str) -> (String, String) {
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + shared.options.heartbeat_interval,
        shared.options.heartbeat_interval,
    );
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let sent = tokio::time::timeout(
            shared.options.answer_timeout,
            shared.client.send_task_heartbeat().task_token(token).send(),
        )
        .await;
        let Ok(sent) = sent else {
            warn!(
                timeout_seconds = shared.options.answer_timeout.as_secs_f64(),
                "heartbeat got no answer in time; abandoned, the next one goes at the next interval"
            );
            continue;
        };
        match sent {
            Ok(_) => debug!("heartbeat sent"),
            Err(err) => match err.code() {
                Some(code @ ("TaskTimedOut" | "TaskDoesNotExist" | "InvalidToken")) => {
                    return (
                        code.to_owned(),
                        err.message().unwrap_or_default().to_owned(),
                    );
                }
                _ => {
                    warn!(error = %sdk_error_text(&err), "heartbeat failed; will try again at the next interval")
                }
            },
        }
    }
}

/// What Step Functions means when it refuses a heartbeat or an answer with `code`
/// (`TaskTimedOut`, `TaskDoesNotExist`, `InvalidToken`), for the log. The service gives the same
/// `TaskTimedOut` for a task that timed out and for one whose execution ended (failed, stopped,
/// timed out): the runner cannot tell which, so both are said.
fn refusal_meaning(code: &str) -> &'static str {
    match code {
        "TaskTimedOut" => {
            "Step Functions closed this task: either it timed out (HeartbeatSeconds or \
             TimeoutSeconds), and the state's Retry runs it again if it has one (the migration's \
             machine retries States.HeartbeatTimeout and States.Timeout), or its execution is no \
             longer running (failed, stopped or timed out), and there is nothing to do"
        }
        "TaskDoesNotExist" => {
            "Step Functions knows no task with this token (its execution or activity is gone): \
             nothing to do"
        }
        "InvalidToken" => {
            "Step Functions refused the task token as invalid (not one it issued, or from \
             another account or region): nothing to do here; check the runner's endpoint and \
             region if it repeats"
        }
        _ => "unexpected refusal",
    }
}

/// Sends an answer, retrying transient failures with backoff. Returns whether it was delivered.
async fn answer<H>(shared: &Shared<H>, token: &str, mut answer: Answer) -> bool {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let send = async {
            match &answer {
                Answer::Success(output) => shared
                    .client
                    .send_task_success()
                    .task_token(token)
                    .output(output)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(classify),
                Answer::Failure { error, cause } => shared
                    .client
                    .send_task_failure()
                    .task_token(token)
                    .error(truncate_chars(error, MAX_ERROR_CHARS))
                    .cause(truncate_chars(cause, MAX_CAUSE_CHARS))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(classify),
            }
        };
        let timeout = shared.options.answer_timeout;
        let result = tokio::time::timeout(timeout, send)
            .await
            .unwrap_or_else(|_| {
                Err((
                    None,
                    format!("no answer within {} s", timeout.as_secs_f64()),
                    true,
                ))
            });
        let (code, text, retryable) = match result {
            Ok(()) => return true,
            Err(e) => e,
        };
        match code.as_deref() {
            Some(c @ ("TaskTimedOut" | "TaskDoesNotExist" | "InvalidToken")) => {
                shared.counters.abandoned.fetch_add(1, Ordering::Relaxed);
                warn!(
                    answered = c,
                    error = %text,
                    meaning = refusal_meaning(c),
                    "answer refused; nothing more is sent for this task"
                );
                return false;
            }
            Some("InvalidOutput") if matches!(answer, Answer::Success(_)) => {
                error!(error = %text, "output refused as invalid; answering Stepops.Internal instead");
                answer = Answer::Failure {
                    error: ErrorName::Internal.as_str().into(),
                    cause: format!("Step Functions refused the step's output: {text}"),
                };
                attempt = 0;
                continue;
            }
            _ => {}
        }
        if !retryable || attempt >= shared.options.answer_attempts {
            shared.counters.undelivered.fetch_add(1, Ordering::Relaxed);
            error!(error = %text, attempt, "could not deliver the answer; the task will time out and be retried");
            return false;
        }
        let delay = backoff(
            shared.options.answer_backoff,
            attempt,
            Duration::from_secs(10),
        );
        warn!(error = %text, attempt, retry_in_ms = delay.as_millis() as u64, "answer failed; retrying");
        tokio::time::sleep(delay).await;
    }
}

/// Exponential backoff with ±25 % jitter: `base · 2^(attempt-1)`, at most `max`.
fn backoff(base: Duration, attempt: u32, max: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(max);
    let jitter = rand::random_range(0.75..1.25);
    capped.mul_f64(jitter)
}

/// `s` cut to at most `max` characters (on a character boundary).
pub fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((i, _)) => {
            let mut out = s[..i].to_owned();
            if max > 1 {
                out.pop();
                out.push('…');
            }
            out
        }
    }
}

#[cfg(test)]
mod tests;
