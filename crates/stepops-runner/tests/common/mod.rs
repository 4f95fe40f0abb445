//! A minimal Step Functions (and Secrets Manager) JSON API over real HTTP on 127.0.0.1, enough
//! for the runner: GetActivityTask (held like the service holds it), SendTaskHeartbeat,
//! SendTaskSuccess, SendTaskFailure, and GetSecretValue. Records every call.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stepops_testkit::http::{HttpServer, Recorded, Reply};
use tokio::sync::Notify;

/// How a task ended, as the runner answered it.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Success(Value),
    Failure { error: String, cause: String },
}

#[derive(Default)]
struct Inner {
    queues: HashMap<String, VecDeque<(String, String)>>,
    heartbeats: HashMap<String, Vec<Instant>>,
    answers: HashMap<String, Answer>,
    answer_attempts: HashMap<String, usize>,
    timed_out: HashSet<String>,
    delivered: HashSet<String>,
    outstanding: usize,
    max_outstanding: usize,
    fail_next_answers: usize,
    polls: usize,
    poll_starts: Vec<Instant>,
    secrets: HashMap<String, String>,
    secret_reads: usize,
    hang: HashMap<String, usize>,
    objects: HashMap<String, Vec<u8>>,
    next_token: u64,
}

pub struct FakeSfn {
    server: HttpServer,
    inner: Arc<Mutex<Inner>>,
    notify: Arc<Notify>,
}

impl FakeSfn {
    /// Starts the server; an empty poll is held `hold` (the service: 60 s).
    pub async fn start(hold: Duration) -> FakeSfn {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let notify = Arc::new(Notify::new());
        let (i2, n2) = (inner.clone(), notify.clone());
        let server =
            HttpServer::start_async(move |req| Box::pin(handle(req, i2.clone(), n2.clone(), hold)))
                .await;
        FakeSfn {
            server,
            inner,
            notify,
        }
    }

    pub fn endpoint(&self) -> String {
        self.server.url().to_owned()
    }

    /// Queues a task for `arn`; returns its token.
    pub fn push(&self, arn: &str, input: Value) -> String {
        self.push_raw(arn, &input.to_string())
    }

    pub fn push_raw(&self, arn: &str, input: &str) -> String {
        let mut inner = self.inner.lock().unwrap();
        inner.next_token += 1;
        let token = format!("token-{:04}-{}", inner.next_token, "x".repeat(40));
        inner
            .queues
            .entry(arn.to_owned())
            .or_default()
            .push_back((token.clone(), input.to_owned()));
        drop(inner);
        self.notify.notify_waiters();
        token
    }

    /// From now on, heartbeats and answers for `token` get `TaskTimedOut`.
    pub fn time_out(&self, token: &str) {
        self.inner
            .lock()
            .unwrap()
            .timed_out
            .insert(token.to_owned());
    }

    /// The next `n` SendTaskSuccess/SendTaskFailure calls get HTTP 500.
    pub fn fail_next_answers(&self, n: usize) {
        self.inner.lock().unwrap().fail_next_answers = n;
    }

    /// The next `n` calls of `op` (`SendTaskHeartbeat`, `SendTaskSuccess`, …) are recorded and
    /// then never answered (held two minutes): a hung connection.
    pub fn hang_next(&self, op: &str, n: usize) {
        self.inner.lock().unwrap().hang.insert(op.to_owned(), n);
    }

    /// How many GetSecretValue and GetParameter calls arrived.
    pub fn secret_reads(&self) -> usize {
        self.inner.lock().unwrap().secret_reads
    }

    pub fn set_secret(&self, name: &str, value: &str) {
        self.inner
            .lock()
            .unwrap()
            .secrets
            .insert(name.to_owned(), value.to_owned());
    }

    pub fn heartbeats(&self, token: &str) -> Vec<Instant> {
        self.inner
            .lock()
            .unwrap()
            .heartbeats
            .get(token)
            .cloned()
            .unwrap_or_default()
    }

    pub fn answer(&self, token: &str) -> Option<Answer> {
        self.inner.lock().unwrap().answers.get(token).cloned()
    }

    pub fn answer_attempts(&self, token: &str) -> usize {
        self.inner
            .lock()
            .unwrap()
            .answer_attempts
            .get(token)
            .copied()
            .unwrap_or(0)
    }

    pub fn delivered(&self, token: &str) -> bool {
        self.inner.lock().unwrap().delivered.contains(token)
    }

    /// Most tasks delivered and not yet answered at any moment.
    pub fn max_outstanding(&self) -> usize {
        self.inner.lock().unwrap().max_outstanding
    }

    /// An object S3 PutObject stored, by `bucket/key`.
    pub fn object(&self, path: &str) -> Option<Vec<u8>> {
        self.inner.lock().unwrap().objects.get(path).cloned()
    }

    /// When each GetActivityTask arrived.
    pub fn poll_starts(&self) -> Vec<Instant> {
        self.inner.lock().unwrap().poll_starts.clone()
    }

    pub fn polls(&self) -> usize {
        self.inner.lock().unwrap().polls
    }

    /// Waits until `token` is answered.
    pub async fn wait_answer(&self, token: &str, timeout: Duration) -> Answer {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(a) = self.answer(token) {
                return a;
            }
            assert!(
                Instant::now() < deadline,
                "no answer for {token} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `token` was delivered to a worker.
    pub async fn wait_delivered(&self, token: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.delivered(token) {
            assert!(
                Instant::now() < deadline,
                "{token} not delivered within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn reply(status: u16, body: Value) -> Reply {
    Reply::new(status, "application/x-amz-json-1.0", body.to_string())
}

fn error(status: u16, code: &str, message: &str) -> Reply {
    reply(status, json!({"__type": code, "message": message}))
}

const NO_SUCH_BUCKET: &str = "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>";
const NO_SUCH_KEY: &str =
    "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>";

async fn handle(
    req: Recorded,
    inner: Arc<Mutex<Inner>>,
    notify: Arc<Notify>,
    hold: Duration,
) -> Reply {
    // S3, path style: /bucket/key (the query, e.g. x-id, is not part of the key).
    let path = req.path.trim_start_matches('/').to_owned();
    if req.method == "PUT" {
        if path.starts_with("missing/") {
            return Reply::xml(404, NO_SUCH_BUCKET);
        }
        inner.lock().unwrap().objects.insert(path, req.body);
        return Reply::empty(200);
    }
    if req.method == "GET" {
        let found = inner.lock().unwrap().objects.get(&path).cloned();
        return match found {
            Some(body) => Reply::new(200, "application/json", body),
            None => Reply::xml(404, NO_SUCH_KEY),
        };
    }
    let target = req.header("x-amz-target").unwrap_or("").to_owned();
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(json!({}));
    let op = target.rsplit('.').next().unwrap_or("");
    let token = body["taskToken"].as_str().unwrap_or("").to_owned();
    let hang = {
        let mut i = inner.lock().unwrap();
        if matches!(op, "GetSecretValue" | "GetParameter") {
            i.secret_reads += 1;
        }
        match i.hang.get_mut(op) {
            Some(n) if *n > 0 => {
                *n -= 1;
                if op == "SendTaskHeartbeat" {
                    i.heartbeats
                        .entry(token.clone())
                        .or_default()
                        .push(Instant::now());
                } else {
                    *i.answer_attempts.entry(token.clone()).or_default() += 1;
                }
                true
            }
            _ => false,
        }
    };
    if hang {
        tokio::time::sleep(Duration::from_secs(120)).await;
        return reply(200, json!({}));
    }
    match op {
        "GetActivityTask" => {
            let arn = body["activityArn"].as_str().unwrap_or("").to_owned();
            {
                let mut i = inner.lock().unwrap();
                i.polls += 1;
                i.poll_starts.push(Instant::now());
            }
            let deadline = tokio::time::Instant::now() + hold;
            loop {
                let notified = notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                {
                    let mut i = inner.lock().unwrap();
                    if let Some((token, input)) =
                        i.queues.get_mut(&arn).and_then(VecDeque::pop_front)
                    {
                        i.delivered.insert(token.clone());
                        i.outstanding += 1;
                        i.max_outstanding = i.max_outstanding.max(i.outstanding);
                        break reply(200, json!({"taskToken": token, "input": input}));
                    }
                }
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep_until(deadline) => break reply(200, json!({})),
                }
            }
        }
        "SendTaskHeartbeat" => {
            let mut i = inner.lock().unwrap();
            i.heartbeats
                .entry(token.clone())
                .or_default()
                .push(Instant::now());
            if i.timed_out.contains(&token) {
                error(
                    400,
                    "TaskTimedOut",
                    "Task Timed Out: 'Provided task has timed out'",
                )
            } else if !i.delivered.contains(&token) {
                error(400, "TaskDoesNotExist", "Task does not exist anymore")
            } else {
                reply(200, json!({}))
            }
        }
        "SendTaskSuccess" | "SendTaskFailure" => {
            let mut i = inner.lock().unwrap();
            *i.answer_attempts.entry(token.clone()).or_default() += 1;
            if i.fail_next_answers > 0 {
                i.fail_next_answers -= 1;
                error(500, "InternalFailure", "simulated failure")
            } else if i.timed_out.contains(&token) {
                error(400, "TaskTimedOut", "Task Timed Out")
            } else if !i.delivered.contains(&token) || i.answers.contains_key(&token) {
                error(400, "TaskDoesNotExist", "Task does not exist anymore")
            } else {
                let answer = if op == "SendTaskSuccess" {
                    Answer::Success(
                        serde_json::from_str(body["output"].as_str().unwrap_or("null"))
                            .unwrap_or(Value::Null),
                    )
                } else {
                    Answer::Failure {
                        error: body["error"].as_str().unwrap_or("").to_owned(),
                        cause: body["cause"].as_str().unwrap_or("").to_owned(),
                    }
                };
                i.answers.insert(token, answer);
                i.outstanding -= 1;
                reply(200, json!({}))
            }
        }
        "GetParameter" => {
            let name = body["Name"].as_str().unwrap_or("");
            let decrypt = body["WithDecryption"].as_bool() == Some(true);
            match inner.lock().unwrap().secrets.get(name) {
                Some(v) => {
                    let value = if decrypt {
                        v.clone()
                    } else {
                        "AQICAHencrypted==".to_owned()
                    };
                    reply(
                        200,
                        json!({"Parameter": {"Name": name, "Type": "SecureString", "Value": value, "Version": 1}}),
                    )
                }
                None => error(400, "ParameterNotFound", ""),
            }
        }
        "GetSecretValue" => {
            let id = body["SecretId"].as_str().unwrap_or("");
            match inner.lock().unwrap().secrets.get(id) {
                Some(v) => reply(200, json!({"Name": id, "SecretString": v})),
                None => error(
                    400,
                    "ResourceNotFoundException",
                    "Secrets Manager can't find the specified secret.",
                ),
            }
        }
        _ => error(
            400,
            "UnknownOperationException",
            &format!("unknown {target}"),
        ),
    }
}
