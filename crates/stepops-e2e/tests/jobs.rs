//! Ops jobs end to end: the real `statemachine/job.asl.json` and `template.yaml` on the local
//! engine (DynamoDB lease emulated), the job-validate logic in-process, runner workers polling
//! over HTTP that run real processes (`sh`), with a test catalog.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stepops_embedded::{JobOptions, LocalJobs};
use stepops_jobs::Catalog;
use stepops_secrets::MemorySecretSource;

const SECRET: &str = "tok-9f8e7d6c5b4a";
const MULTI: &str = "-----BEGIN TEST KEY-----\nAbCdEf0123456789\n-----END TEST KEY-----";

fn job(name: &str, body: &str) -> (String, String) {
    (
        format!("{name}.yaml"),
        format!(
            "name: {name}\ndescription: test job {name}\nenvironments: [dev]\nheartbeat_seconds: 10\n{body}"
        ),
    )
}

fn catalog(marker_dir: &Path) -> Catalog {
    let m = marker_dir.display();
    Catalog::from_files(vec![
        job(
            "hello",
            "parameters:\n  who: {type: string, pattern: '.{1,40}'}\ncommand: [sh, -c, 'for i in 1 2 3; do echo \"line $i $1\"; sleep 0.2; done; echo done >&2', sh, \"${who}\"]\ntimeout_seconds: 60\nidempotent: true\n",
        ),
        job(
            "secretive",
            "secrets:\n  TOKEN:\n    dev: {secret: stepops/dev/token}\n  KEY:\n    dev: {secret: stepops/dev/key}\ncommand: [sh, -c, 'echo \"token=$TOKEN\"; printf \"%s\\n\" \"$KEY\"; printf \"%s\" \"$TOKEN\" | fold -w 5; head -c 70000 /dev/zero | tr \"\\\\0\" x; echo \"$TOKEN\"']\ntimeout_seconds: 60\nidempotent: true\n",
        ),
        job("failing", "command: [sh, -c, 'echo about to fail; exit 3']\ntimeout_seconds: 60\nidempotent: true\n"),
        job(
            "hanging",
            &format!("command: [sh, -c, 'sh -c \"echo $$ > {m}/grandchild.pid; sleep 300\" & echo started; wait']\ntimeout_seconds: 2\nidempotent: true\n"),
        ),
        job(
            "slow",
            &format!("command: [sh, -c, 'echo $$ > {m}/slow.pid; echo run >> {m}/slow.runs; sleep 300']\ntimeout_seconds: 600\nidempotent: true\nconcurrency_group: shared\n"),
        ),
        job(
            "other",
            "command: [echo, hi]\ntimeout_seconds: 60\nidempotent: true\nconcurrency_group: shared\n",
        ),
        job(
            "once",
            &format!("command: [sh, -c, 'echo run >> {m}/once.runs; sleep 300']\ntimeout_seconds: 600\nidempotent: false\n"),
        ),
        job(
            "again",
            &format!("command: [sh, -c, 'echo run >> {m}/again.runs; if [ $(wc -l < {m}/again.runs) -lt 2 ]; then sleep 300; fi; echo finished']\ntimeout_seconds: 600\nidempotent: true\n"),
        ),
        job(
            "steps",
            &format!("steps:\n  - name: first\n    command: [sh, -c, 'echo first >> {m}/steps.log']\n  - name: second\n    command: [sh, -c, 'echo second >> {m}/steps.log; test -e {m}/fixed']\n  - name: third\n    command: [sh, -c, 'echo third >> {m}/steps.log']\ntimeout_seconds: 60\nidempotent: true\n"),
        ),
    ])
    .unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    markers: std::path::PathBuf,
    jobs: LocalJobs,
}

async fn start(workers: usize) -> Fixture {
    start_with(workers, None).await
}

async fn start_with(workers: usize, log_group: Option<&str>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let markers = dir.path().join("markers");
    std::fs::create_dir_all(&markers).unwrap();
    let mut options = JobOptions::new(dir.path().join("state"), catalog(&markers));
    options.secrets = MemorySecretSource::new()
        .with_secret("stepops/dev/token", SECRET)
        .with_secret("stepops/dev/key", MULTI);
    options.workers = workers;
    options.time_scale = 0.1; // HeartbeatSeconds 10 → 1 s
    options.heartbeat_interval = Duration::from_millis(200);
    options.kill_grace = Duration::from_millis(500);
    options.log_group = log_group.map(str::to_owned);
    let jobs = LocalJobs::start(options).await.unwrap();
    Fixture {
        _dir: dir,
        markers,
        jobs,
    }
}

fn request(job: &str, params: Value) -> Value {
    json!({"job": job, "environment": "dev", "params": params})
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_prints_streams_and_finishes() {
    let f = start(1).await;
    let arn = f
        .jobs
        .start_job(&request("hello", json!({"who": "a b; $(rm -rf /) `id`"})))
        .unwrap();
    let log = f.jobs.log_path(&arn, 0, "hello");
    // Streamed: the first line is in the log while the process still runs.
    wait_for("the first line", Duration::from_secs(20), || {
        std::fs::read_to_string(&log).is_ok_and(|s| s.contains("line 1"))
    })
    .await;
    assert!(!std::fs::read_to_string(&log).unwrap().contains("line 3"));
    let out = f.jobs.wait(&arn).await.unwrap();
    assert_eq!(out.status, "SUCCEEDED", "{out:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    // The parameter reached the process as one argument, never parsed by a shell.
    assert!(text.contains("line 3 a b; $(rm -rf /) `id`"), "{text}");
    assert!(text.contains("done"));
    let output = out.output.unwrap();
    assert_eq!(output["last"]["exitCode"], 0);
    assert_eq!(output["job"], "hello");
    f.jobs.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_masked_in_every_line_split_and_at_a_buffer_edge() {
    let f = start_with(1, Some("/stepops/dev/jobs")).await;
    let arn = f.jobs.start_job(&request("secretive", json!({}))).unwrap();
    let out = f.jobs.wait(&arn).await.unwrap();
    assert_eq!(out.status, "SUCCEEDED", "{out:?}");
    let text = std::fs::read_to_string(f.jobs.log_path(&arn, 0, "secretive")).unwrap();
    assert!(text.contains("token=***"), "{text:.300}");
    for piece in [SECRET, "AbCdEf0123456789", "BEGIN TEST KEY", "END TEST KEY"] {
        assert!(!text.contains(piece), "{piece} leaked");
    }
    // The 70,000 x's and the token after them form one line longer than the 64 KiB piece: the
    // token is masked whatever the cut.
    assert!(
        text.contains("xxx***"),
        "the token after the long line is masked"
    );
    let history = serde_json::to_string(&f.jobs.engine().history(&arn).unwrap()).unwrap();
    assert!(!history.contains(SECRET), "the token is in the history");

    // The same masked lines reached CloudWatch Logs (the engine's stand-in, through the real
    // SDK), in the execution's and step's own stream.
    let logs = stepops_sfn::local_logs_client(f.jobs.endpoint());
    let execution = arn.rsplit(':').next().unwrap();
    let stream = format!("stepops-dev-job/{execution}/0-secretive");
    let names = stepops_sfn::log_stream_names(&logs, "/stepops/dev/jobs", "")
        .await
        .unwrap();
    assert_eq!(names, [stream.as_str()]);
    let (shipped, _) = stepops_sfn::read_log_stream(&logs, "/stepops/dev/jobs", &stream, None)
        .await
        .unwrap();
    let logged: Vec<&str> = text.lines().collect();
    assert_eq!(
        shipped, logged,
        "CloudWatch has the log file's lines, masked"
    );
    assert!(shipped.iter().all(|l| !l.contains(SECRET)));
    f.jobs.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_exit_code_fails_the_job_with_its_tail() {
    let f = start(1).await;
    let arn = f.jobs.start_job(&request("failing", json!({}))).unwrap();
    let out = f.jobs.wait(&arn).await.unwrap();
    assert_eq!(out.status, "FAILED");
    assert_eq!(out.error.as_deref(), Some("Stepops.JobFailed"));
    let cause = out.cause.unwrap();
    assert!(cause.contains("exited with code 3"), "{cause}");
    assert!(cause.contains("about to fail"), "{cause}");
    f.jobs.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timeout_kills_the_grandchild_too() {
    let f = start(1).await;
    let arn = f.jobs.start_job(&request("hanging", json!({}))).unwrap();
    let pid_file = f.markers.join("grandchild.pid");
    wait_for("the grandchild", Duration::from_secs(20), || {
        pid_file.exists()
    })
    .await;
    let out = f.jobs.wait(&arn).await.unwrap();
    assert_eq!(out.error.as_deref(), Some("Stepops.JobTimedOut"), "{out:?}");
    let grandchild = read_pid(&pid_file);
    wait_for("the grandchild to die", Duration::from_secs(3), || {
        !alive(grandchild)
    })
    .await;
    f.jobs.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stopping_the_execution_kills_the_process_tree_within_seconds() {
    let f = start(1).await;
    let arn = f.jobs.start_job(&request("slow", json!({}))).unwrap();
    let pid_file = f.markers.join("slow.pid");
    wait_for("the process", Duration::from_secs(20), || pid_file.exists()).await;
    let pid = read_pid(&pid_file);
    let stopped = Instant::now();
    f.jobs
        .engine()
        .stop_execution(&arn, Some("Cancelled"), Some("test"))
        .unwrap();
    // The next heartbeat (every 200 ms) is refused: the group gets TERM at once.
    wait_for("the process to die", Duration::from_secs(5), || !alive(pid)).await;
    eprintln!("killed {} ms after the stop", stopped.elapsed().as_millis());
    f.jobs.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_of_a_concurrency_group_is_refused_busy() {
    let f = start(1).await;
    let first = f.jobs.start_job(&request("slow", json!({}))).unwrap();
    wait_for("the first run", Duration::from_secs(20), || {
        f.markers.join("slow.pid").exists()
    })
    .await;
    let second = f.jobs.start_job(&request("other", json!({}))).unwrap();
    let out = f.jobs.wait(&second).await.unwrap();
    assert_eq!(out.error.as_deref(), Some("Stepops.Busy"), "{out:?}");
    f.jobs.engine().stop_execution(&first, None, None).unwrap();
    f.jobs.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redrive_resumes_a_multi_step_job_at_the_failed_step() {
    let f = start(1).await;
    let arn = f.jobs.start_job(&request("steps", json!({}))).unwrap();
    let out = f.jobs.wait(&arn).await.unwrap();
    assert_eq!(out.error.as_deref(), Some("Stepops.JobFailed"), "{out:?}");
    let log = f.markers.join("steps.log");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "first\nsecond\n");
    std::fs::write(f.markers.join("fixed"), "").unwrap();
    f.jobs.engine().redrive_execution(&arn).unwrap();
    let out = f.jobs.wait(&arn).await.unwrap();
    assert_eq!(out.status, "SUCCEEDED", "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "first\nsecond\nsecond\nthird\n",
        "the redrive ran the failed step and the next, not the first"
    );
    f.jobs.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_runner_idempotent_step_runs_again_non_idempotent_fails_unknown() {
    let mut f = start(1).await;
    // Idempotent: the first attempt hangs, its runner dies, the retry on a new runner finishes.
    let arn = f.jobs.start_job(&request("again", json!({}))).unwrap();
    let runs = f.markers.join("again.runs");
    wait_for("the first attempt", Duration::from_secs(20), || {
        lines(&runs) == 1
    })
    .await;
    f.jobs.kill_worker(0);
    f.jobs.add_worker();
    let out = f.jobs.wait(&arn).await.unwrap();
    assert_eq!(out.status, "SUCCEEDED", "{out:?}");
    assert_eq!(lines(&runs), 2);

    // Not idempotent: never run twice; the execution fails with an unknown outcome.
    let arn = f.jobs.start_job(&request("once", json!({}))).unwrap();
    let runs = f.markers.join("once.runs");
    wait_for("the first attempt", Duration::from_secs(20), || {
        lines(&runs) == 1
    })
    .await;
    f.jobs.kill_worker(0);
    f.jobs.add_worker();
    let out = f.jobs.wait(&arn).await.unwrap();
    assert_eq!(out.error.as_deref(), Some("Stepops.JobFailed"), "{out:?}");
    assert!(out.cause.unwrap().contains("outcome unknown"));
    assert_eq!(lines(&runs), 1, "a non-idempotent step never runs twice");
    f.jobs.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_request_runs_nothing() {
    let f = start(1).await;
    for (req, error) in [
        (request("nope", json!({})), "Stepops.NotFound"),
        (
            json!({"job": "hello", "environment": "prod", "params": {"who": "x"}}),
            "Stepops.WrongEnvironment",
        ),
        (request("hello", json!({})), "Stepops.InvalidInput"),
        (
            request("hello", json!({"who": "x", "extra": 1})),
            "Stepops.InvalidInput",
        ),
    ] {
        let arn = f.jobs.start_job(&req).unwrap();
        let out = f.jobs.wait(&arn).await.unwrap();
        assert_eq!(out.error.as_deref(), Some(error), "{req}");
    }
    assert!(!f.jobs.job_root().join("logs").exists(), "nothing ran");
    f.jobs.shutdown().await;
}
