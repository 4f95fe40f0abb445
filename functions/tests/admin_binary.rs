//! The real `stepops-fn-admin` binary under a fake Lambda Runtime API: its settings come from the
//! environment variables the template sets, the token from (a fake) Secrets Manager by name,
//! once; answers go back as the function's response, errors with their `Stepops.*` name as
//! `errorType`. One server on 127.0.0.1 plays the Runtime API, Secrets Manager and Synapse.
//! The logs are read as deployed (`AWS_LAMBDA_LOG_FORMAT=JSON`, `AWS_LAMBDA_LOG_LEVEL=INFO`):
//! one JSON object per line, the audit record findable by `"audit": true`.

use std::collections::VecDeque;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stepops_testkit::http::{HttpServer, Recorded, Reply};
use stepops_testkit::process::KillOnDrop;

const TOKEN: &str = "syn-pat-binary-test-SECRET-0c7e";
const SECRET_NAME: &str = "/synapse/admin-pat-test";

#[derive(Default)]
struct World {
    /// Events the runtime hands out, in order.
    events: VecDeque<Value>,
    /// (request id, "response" | "error", body) as the function posted them.
    answers: Vec<(String, String, Value)>,
    /// Secrets Manager calls (their JSON bodies).
    secret_reads: Vec<Value>,
    /// Synapse requests: "METHOD path?query | authorization".
    synapse: Vec<String>,
    next_id: usize,
    /// How long each invocation may run (the Runtime API's deadline header); default 60 s.
    deadline_in_ms: Option<u128>,
    /// When the last event was handed out.
    handed_out: Option<Instant>,
    /// S3 PutObject requests: (path, lower-cased headers, body).
    s3_puts: Vec<(String, std::collections::BTreeMap<String, String>, Vec<u8>)>,
}

/// Serves the Runtime API, Secrets Manager, S3 and Synapse; returns `127.0.0.1:PORT`.
async fn serve(world: Arc<Mutex<World>>) -> String {
    let server = HttpServer::start_async(move |req| {
        let world = world.clone();
        Box::pin(async move { answer(req, &world).await })
    })
    .await;
    server.url().trim_start_matches("http://").to_owned()
}

async fn answer(req: Recorded, world: &Mutex<World>) -> Reply {
    let path = req.path.clone();
    let reply = |status: u16, body: String| Reply::new(status, "application/json", body);
    if path == "/2018-06-01/runtime/invocation/next" {
        // Hand out the next event; with none left, hold the poll (the test then stops the process).
        loop {
            let next = {
                let mut w = world.lock().unwrap();
                let next = w.events.pop_front().map(|e| {
                    w.next_id += 1;
                    (format!("req-{}", w.next_id), e, w.deadline_in_ms)
                });
                if next.is_some() {
                    w.handed_out = Some(Instant::now());
                }
                next
            };
            if let Some((id, event, deadline_in)) = next {
                let deadline = now_ms() + deadline_in.unwrap_or(60_000);
                return reply(200, event.to_string())
                    .with_header("lambda-runtime-aws-request-id", &id)
                    .with_header("lambda-runtime-deadline-ms", &deadline.to_string())
                    .with_header(
                        "lambda-runtime-invoked-function-arn",
                        "arn:aws:lambda:us-east-1:123456789012:function:stepops-dev-admin",
                    )
                    .with_header(
                        "lambda-runtime-trace-id",
                        "Root=1-00000000-000000000000000000000000",
                    );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    if let Some(rest) = path.strip_prefix("/2018-06-01/runtime/invocation/") {
        let (id, kind) = rest.split_once('/').unwrap();
        let value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        world
            .lock()
            .unwrap()
            .answers
            .push((id.to_owned(), kind.to_owned(), value));
        return reply(202, "{}".into());
    }
    if req.method == "PUT" && path.starts_with("/stack-bucket/") {
        world
            .lock()
            .unwrap()
            .s3_puts
            .push((path.clone(), req.headers.clone(), req.body.clone()));
        return Reply::empty(200).with_header("etag", "\"e1\"");
    }
    if path == "/" {
        assert_eq!(
            req.header("x-amz-target"),
            Some("secretsmanager.GetSecretValue")
        );
        let request: Value = serde_json::from_slice(&req.body).unwrap();
        world.lock().unwrap().secret_reads.push(request.clone());
        return reply(
            200,
            json!({
                "ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:/synapse/admin-pat-test-AbCdEf",
                "Name": request["SecretId"],
                "SecretString": TOKEN,
                "VersionId": "v1"
            })
            .to_string(),
        );
    }
    let auth = req.header("authorization").unwrap_or_default().to_owned();
    let earlier = {
        let mut w = world.lock().unwrap();
        let earlier = w.synapse.iter().filter(|s| s.contains(&path)).count();
        let query = req
            .query
            .as_deref()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        w.synapse
            .push(format!("{} {path}{query} | {auth}", req.method));
        earlier
    };
    match path.as_str() {
        // A 401 after 1 s, then a retry that would take 30 s.
        "/repo/v1/admin/resetuserstatus/66" => {
            if earlier == 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                reply(401, json!({"reason": "token expired"}).to_string())
            } else {
                tokio::time::sleep(Duration::from_secs(30)).await;
                reply(200, String::new())
            }
        }
        "/repo/v1/user/77/bundle" => reply(200, json!({"userId": "77"}).to_string()),
        "/repo/v1/user/78/bundle" => reply(200, personal_bundle().to_string()),
        "/repo/v1/admin/redact/user/78" => reply(200, String::new()),
        "/repo/v1/admin/redact/user/77" => reply(200, String::new()),
        _ => reply(404, json!({"reason": "no such thing"}).to_string()),
    }
}

/// A bundle full of personal data.
fn personal_bundle() -> Value {
    json!({"userId": "78",
           "userProfile": {"ownerId": "78", "userName": "mx-personal", "firstName": "Morwenna",
                           "lastName": "Quillfeather", "emails": ["morwenna.q@example.org"],
                           "company": "Quillfeather Labs"},
           "ORCID": "https://orcid.org/0000-0001-5109-3700",
           "isCertified": true})
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

fn start_binary(addr: &str, settings: &[(&str, String)]) -> KillOnDrop {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stepops-fn-admin"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", addr)
        .env("AWS_LAMBDA_FUNCTION_NAME", "stepops-dev-admin")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/stepops-dev-admin")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", format!("http://{addr}"))
        // As the template's LoggingConfig deploys it.
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in settings {
        cmd.env(k, v);
    }
    KillOnDrop(cmd.spawn().expect("start stepops-fn-admin"))
}

/// The binary as a dev stack deploys it: the service and Secrets Manager are `addr`.
fn start_dev_binary(addr: &str) -> KillOnDrop {
    start_binary(
        addr,
        &[
            ("STEPOPS_ENVIRONMENT", "dev".into()),
            ("STEPOPS_SYNAPSE_ENDPOINT", format!("http://{addr}")),
            ("STEPOPS_ADMIN_SECRET", SECRET_NAME.into()),
        ],
    )
}

async fn wait_for_answers(world: &Mutex<World>, n: usize) {
    let start = Instant::now();
    while world.lock().unwrap().answers.len() < n {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the function answered {} of {n} events",
            world.lock().unwrap().answers.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_binary_runs_tasks_with_the_secret_and_names_its_errors() {
    let world = Arc::new(Mutex::new(World::default()));
    let request = json!({"environment": "dev", "task": "remove-user", "args": {"userId": "77"}});
    world.lock().unwrap().events.extend([
        json!({"action": "validate", "request": request}),
        json!({"action": "run", "request": request, "executionId": "arn:aws:states:us-east-1:123456789012:execution:stepops-dev-admin:x"}),
        json!({"action": "validate", "request": {"environment": "prod", "task": "remove-user", "args": {"userId": "77"}}}),
        json!({"action": "run", "request": {"environment": "dev", "task": "reenable-user", "args": {"userId": "5"}}}),
    ]);
    let addr = serve(world.clone()).await;
    let mut child = start_dev_binary(&addr);
    wait_for_answers(&world, 4).await;
    let _ = child.0.kill();
    let output = child.0.wait_with_output_ref();

    let w = world.lock().unwrap();
    let (id, kind, validated) = &w.answers[0];
    assert_eq!((id.as_str(), kind.as_str()), ("req-1", "response"));
    assert_eq!(validated["target"], "user:77");
    let (_, kind, audit) = &w.answers[1];
    assert_eq!(kind, "response", "{audit}");
    assert_eq!(audit["outcome"], "done");
    assert_eq!(audit["before"], json!({"userId": "77", "parts": []}));
    let (_, kind, error) = &w.answers[2];
    assert_eq!(kind, "error");
    assert_eq!(error["errorType"], "Stepops.WrongEnvironment", "{error}");
    let (_, kind, error) = &w.answers[3];
    assert_eq!(kind, "error");
    assert_eq!(error["errorType"], "Stepops.NotFound", "{error}");

    // The secret was read by its name, once for the container's life.
    assert_eq!(w.secret_reads, vec![json!({"SecretId": SECRET_NAME})]);
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        w.synapse,
        vec![
            format!("GET /repo/v1/user/77/bundle?mask=127 | {bearer}"),
            format!("POST /repo/v1/admin/redact/user/77 | {bearer}"),
            format!("PUT /repo/v1/admin/resetuserstatus/5 | {bearer}"),
        ]
    );
    // The token is in no answer and no log line.
    for (_, _, v) in &w.answers {
        assert!(!v.to_string().contains(TOKEN));
    }
    assert!(!output.contains(TOKEN), "{output}");

    // The logs as CloudWatch gets them: JSON lines; the audit record is the line with
    // "audit": true, the record a JSON object.
    let audits = audit_lines(&output);
    assert_eq!(audits.len(), 2, "one record per run event: {output}");
    let done = &audits[0];
    assert_eq!(done["target"], "stepops_admin::audit", "{done}");
    assert_eq!(done["level"], "INFO");
    assert_eq!(done["message"], "admin task done");
    assert_eq!(done["record"]["task"], "remove-user", "{done}");
    assert_eq!(done["record"]["target"], "user:77");
    assert_eq!(done["record"]["outcome"], "done");
    assert_eq!(
        done["record"]["before"],
        json!({"userId": "77", "parts": []})
    );
    assert_eq!(
        done["record"]["executionId"],
        "arn:aws:states:us-east-1:123456789012:execution:stepops-dev-admin:x"
    );
    assert_eq!(done["spans"][0]["requestId"], "req-2", "{done}");
    let failed = &audits[1];
    assert_eq!(failed["level"], "WARN");
    assert_eq!(failed["record"]["task"], "reenable-user");
    assert_eq!(failed["record"]["outcome"], "failed");
    assert_eq!(failed["record"]["error"]["error"], "Stepops.NotFound");
}

/// With `STEPOPS_ADMIN_RECORDS_BUCKET` set, the deployed binary keeps the removed profile in
/// one S3 object through the real S3 client, asking for SSE-KMS with the configured key, before
/// it redacts; its answer (the execution output) and its log lines hold the object's location and
/// none of the profile.
#[tokio::test]
async fn the_binary_keeps_a_removed_profile_in_s3_with_sse_kms_only() {
    let world = Arc::new(Mutex::new(World::default()));
    let request = json!({"environment": "prod", "task": "remove-user", "args": {"userId": "78"},
                         "confirm": "78"});
    world.lock().unwrap().events.extend([json!({
        "action": "run", "request": request,
        "executionId": "arn:aws:states:us-east-1:123456789012:execution:stepops-prod-admin:y"
    })]);
    let addr = serve(world.clone()).await;
    let mut child = start_binary(
        &addr,
        &[
            ("STEPOPS_ENVIRONMENT", "prod".into()),
            ("STEPOPS_SYNAPSE_ENDPOINT", format!("http://{addr}")),
            ("STEPOPS_ADMIN_SECRET", SECRET_NAME.into()),
            ("STEPOPS_ADMIN_RECORDS_BUCKET", "stack-bucket".into()),
            (
                "STEPOPS_ADMIN_RECORDS_KMS_KEY",
                "alias/stepops-prod-admin".into(),
            ),
            ("AWS_ENDPOINT_URL_S3", format!("http://{addr}")),
        ],
    );
    wait_for_answers(&world, 1).await;
    let _ = child.0.kill();
    let output = child.0.wait_with_output_ref();

    let w = world.lock().unwrap();
    let (_, kind, audit) = &w.answers[0];
    assert_eq!(kind, "response", "{audit}");
    assert_eq!(audit["outcome"], "done");
    assert_eq!(w.s3_puts.len(), 1, "{:?}", w.synapse);
    let (path, headers, body) = &w.s3_puts[0];
    assert!(
        path.starts_with("/stack-bucket/admin-records/prod/remove-user/user-78/"),
        "{path}"
    );
    assert_eq!(
        audit["profileRecord"],
        format!("s3://{}", path.trim_start_matches('/'))
    );
    let header = |n: &str| headers.get(n).map(String::as_str);
    assert_eq!(header("x-amz-server-side-encryption"), Some("aws:kms"));
    assert_eq!(
        header("x-amz-server-side-encryption-aws-kms-key-id"),
        Some("alias/stepops-prod-admin")
    );
    let kept: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(kept["profile"], personal_bundle());
    // Kept first, then redacted.
    assert_eq!(w.synapse.len(), 2, "{:?}", w.synapse);
    assert!(w.synapse[1].starts_with("POST /repo/v1/admin/redact/user/78"));
    for personal in [
        "mx-personal",
        "Morwenna",
        "Quillfeather",
        "morwenna.q@example.org",
        "0000-0001-5109-3700",
    ] {
        assert!(!audit.to_string().contains(personal), "{personal}: {audit}");
        assert!(!output.contains(personal), "{personal} logged: {output}");
    }
    let audits = audit_lines(&output);
    assert_eq!(audits.len(), 1, "{output}");
    assert_eq!(audits[0]["record"]["profileRecord"], audit["profileRecord"]);
}

/// Every line of `output` parsed as JSON (each must be); those with `"audit": true`.
fn audit_lines(output: &str) -> Vec<Value> {
    output
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {l}"))
        })
        .filter(|l| l["audit"] == true)
        .collect()
}

#[tokio::test]
async fn a_slow_401_and_retry_end_transient_before_the_invocation_deadline() {
    // 7 s per invocation: the requests get 7 s - LAMBDA_MARGIN (5 s) = 2 s. The service takes
    // 1 s to answer 401 and 30 s to answer the retry: without the budget the function would
    // run into its deadline (Sandbox.Timedout in AWS: not retried, no audit record).
    let world = Arc::new(Mutex::new(World {
        deadline_in_ms: Some(7_000),
        ..World::default()
    }));
    world.lock().unwrap().events.push_back(json!({
        "action": "run",
        "request": {"environment": "dev", "task": "reenable-user", "args": {"userId": "66"}}
    }));
    let addr = serve(world.clone()).await;
    let mut child = start_dev_binary(&addr);
    wait_for_answers(&world, 1).await;
    let took = world.lock().unwrap().handed_out.unwrap().elapsed();
    let _ = child.0.kill();
    let output = child.0.wait_with_output_ref();

    let w = world.lock().unwrap();
    let (_, kind, error) = &w.answers[0];
    assert_eq!(kind, "error");
    assert_eq!(error["errorType"], "Stepops.Transient", "{error}");
    assert!(
        error["errorMessage"]
            .as_str()
            .unwrap()
            .contains("time budget"),
        "{error}"
    );
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "answered after {took:?}; the deadline was 7 s"
    );
    // The 401, one refresh of the secret, the retry.
    assert_eq!(w.synapse.len(), 2, "{:?}", w.synapse);
    assert_eq!(w.secret_reads.len(), 2, "{:?}", w.secret_reads);
    // The cut-off task has its audit record.
    let audits = audit_lines(&output);
    assert_eq!(audits.len(), 1, "{output}");
    assert_eq!(audits[0]["record"]["outcome"], "failed");
    assert_eq!(audits[0]["record"]["error"]["error"], "Stepops.Transient");
    assert!(!output.contains(TOKEN), "{output}");
}

#[tokio::test]
async fn a_misconfigured_binary_answers_every_event_with_a_named_error() {
    let world = Arc::new(Mutex::new(World::default()));
    world
        .lock()
        .unwrap()
        .events
        .push_back(json!({"action": "validate", "request": {}}));
    let addr = serve(world.clone()).await;
    // No STEPOPS_SYNAPSE_ENDPOINT (the SynapseEndpoint parameter left empty).
    let _child = start_binary(&addr, &[("STEPOPS_ENVIRONMENT", "dev".into())]);
    wait_for_answers(&world, 1).await;
    let w = world.lock().unwrap();
    let (_, kind, error) = &w.answers[0];
    assert_eq!(kind, "error");
    assert_eq!(error["errorType"], "Stepops.InvalidInput");
    assert!(
        error["errorMessage"]
            .as_str()
            .unwrap()
            .contains("STEPOPS_SYNAPSE_ENDPOINT"),
        "{error}"
    );
    assert!(w.secret_reads.is_empty() && w.synapse.is_empty());
}

trait OutputText {
    fn wait_with_output_ref(&mut self) -> String;
}

impl OutputText for Child {
    /// Stdout and stderr of the stopped process, as text.
    fn wait_with_output_ref(&mut self) -> String {
        use std::io::Read;
        let _ = self.wait();
        let mut text = String::new();
        if let Some(mut out) = self.stdout.take() {
            let _ = out.read_to_string(&mut text);
        }
        if let Some(mut err) = self.stderr.take() {
            let _ = err.read_to_string(&mut text);
        }
        text
    }
}
