//! `stepops admin` as a user runs it (the real binary): bad arguments exit 2 with no request of
//! any kind and without asking the token source; prod without a terminal and without --yes is
//! refused; on a terminal (a pseudo-terminal from openpty) prod asks for the target again: the
//! right answer runs the task, a wrong one exits 1 with nothing sent; `--local` runs the task end
//! to end through the in-process engine (template.yaml, the aws-sdk-sfn client) against a fake
//! Synapse on 127.0.0.1 and prints the audit record.
#![allow(unsafe_code)] // libc: a pseudo-terminal (openpty) for the prompt tests.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use stepops_testkit::http::{HttpServer, Reply};

/// A server on 127.0.0.1 that records each request and answers with one fixed reply.
struct Recorder {
    url: String,
    server: HttpServer,
}

impl Recorder {
    fn start() -> Self {
        Self::answering(Reply::empty(200))
    }

    fn answering(reply: Reply) -> Self {
        let server = HttpServer::start_in_thread(move |_| reply.clone());
        Recorder {
            url: server.url().to_owned(),
            server,
        }
    }

    /// Each request as `METHOD PATH | authorization: VALUE` (empty after `|` without one).
    fn seen(&self) -> Vec<String> {
        self.server
            .requests()
            .iter()
            .map(|r| {
                let auth = r
                    .header("authorization")
                    .map(|a| format!("authorization: {a}"))
                    .unwrap_or_default();
                format!("{} {} | {auth}", r.method, r.path)
            })
            .collect()
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn stepops(args: &[&str]) -> Output {
    stepops_with(args, &[])
}

fn stepops_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stepops"))
        .arg("admin")
        .args(args)
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .envs(env.iter().copied())
        .env_remove("STEPOPS_ADMIN_TOKEN_FILE")
        .env_remove("STEPOPS_SYNAPSE_ENDPOINT")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .expect("run the stepops binary")
}

#[test]
fn bad_arguments_exit_2_before_any_request() {
    // The "Step Functions endpoint" is a recorder: no request of any kind may reach it.
    let sfn = Recorder::start();
    let cases: &[&[&str]] = &[
        &["remove-user", "123/../../admin", "--env", "dev"],
        &["remove-user", "", "--env", "dev"],
        &["remove-user", "0", "--env", "dev"],
        &["remove-user", "０１２", "--env", "dev"],
        &["remove-user", "12 --env", "--env", "dev"],
        &["remove-user", "1", "2", "--env", "dev"],
        &["remove-user", "--env", "dev"],
        &["remove-user", "1", "--status", "true", "--env", "dev"],
        &["remove-user", "1", "--env", "qa"],
        &["remove-user", "1", "--env", "DEV "],
        &["remove-user", "1"],
        &["drop-database", "1", "--env", "dev"],
        &["make-public", "12345", "--env", "dev"],
        &["make-public", "syn123.4", "--env", "dev"],
        &["unquarantine-email", "a@b", "--env", "dev"],
        &[
            "unquarantine-email",
            "a@example.org\r\nX: y",
            "--env",
            "dev",
        ],
        &[
            "verify-oauth-client",
            "100001",
            "--status",
            "maybe",
            "--env",
            "dev",
        ],
        &["verify-oauth-client", "100001%2f..", "--env", "dev"],
        &["set-feature", "MULTIPART_AUTO_CLEANUP", "--env", "dev"],
        &[
            "set-feature",
            "NO_SUCH_FEATURE",
            "--enabled",
            "true",
            "--env",
            "dev",
        ],
        &[
            "set-feature",
            "MULTIPART_AUTO_CLEANUP",
            "--enabled",
            "1",
            "--env",
            "dev",
        ],
        &["decertify-user", "-5", "--env", "dev"],
    ];
    for case in cases {
        let mut args = case.to_vec();
        args.extend(["--endpoint", &sfn.url]);
        let out = stepops(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{case:?} should exit 2; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{case:?} printed to stdout");
    }
    assert!(
        sfn.seen().is_empty(),
        "requests were sent: {:?}",
        sfn.seen()
    );

    // The same cases with --local, where the token source lives in this process: it is never
    // asked (its debug line is absent; the successful --local run below shows it), and no
    // request reaches the service.
    let synapse = Recorder::start();
    for case in cases {
        let mut args = case.to_vec();
        args.extend(["--local", "--synapse-endpoint", &synapse.url]);
        let out = stepops_with(
            &args,
            &[
                ("STEPOPS_ADMIN_TOKEN_DEV", "syn-pat-cli-test-3"),
                ("STEPOPS_ADMIN_TOKEN_PROD", "syn-pat-cli-test-3"),
                ("STEPOPS_LOG", TOKEN_SOURCE_LOG),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{case:?} --local: {stderr}");
        assert!(out.stdout.is_empty(), "{case:?} --local printed to stdout");
        assert!(
            !stderr.contains(TOKEN_SOURCE_ASKED),
            "{case:?} --local asked the token source: {stderr}"
        );
    }
    assert!(synapse.seen().is_empty(), "{:?}", synapse.seen());
}

/// The log filter that shows the local token source's debug line, and that line.
const TOKEN_SOURCE_LOG: &str = "info,stepops_admin=debug";
const TOKEN_SOURCE_ASKED: &str = "reading the admin token (local source)";

#[test]
fn prod_without_a_terminal_or_yes_is_refused() {
    let sfn = Recorder::start();
    let out = stepops(&[
        "reenable-user",
        "42",
        "--env",
        "prod",
        "--endpoint",
        &sfn.url,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--yes"), "{stderr}");
    assert!(sfn.seen().is_empty());
}

#[test]
fn local_run_succeeds_end_to_end_and_prints_the_audit_record() {
    let synapse = Recorder::start();
    let token = "syn-pat-cli-test-SECRET-5be1";
    let out = Command::new(env!("CARGO_BIN_EXE_stepops"))
        .args([
            "admin",
            "reenable-user",
            "42",
            "--env",
            "prod",
            "--yes",
            "--local",
        ])
        .args(["--synapse-endpoint", &synapse.url])
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .env("STEPOPS_ADMIN_TOKEN_PROD", token)
        .env("STEPOPS_LOG", TOKEN_SOURCE_LOG)
        .env("USER", "ops-tester")
        .env_remove("STEPOPS_ADMIN_TOKEN_FILE")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let audit: serde_json::Value =
        serde_json::from_str(&stdout).expect("stdout is the audit record");
    assert_eq!(audit["task"], "reenable-user");
    assert_eq!(audit["target"], "user:42");
    assert_eq!(audit["environment"], "prod");
    assert_eq!(audit["outcome"], "done");
    assert_eq!(audit["startedBy"], "ops-tester (stepops admin)");
    assert!(
        audit["executionId"]
            .as_str()
            .unwrap()
            .contains(":execution:stepops-prod-admin:admin-reenable-user-42-")
    );
    assert_eq!(
        synapse.seen(),
        vec![format!(
            "PUT /repo/v1/admin/resetuserstatus/42 | authorization: Bearer {token}"
        )]
    );
    assert!(!stdout.contains(token) && !stderr.contains(token));
    // The token source was asked, and says so where the bad-argument test looks.
    assert!(stderr.contains(TOKEN_SOURCE_ASKED), "{stderr}");
}

#[test]
fn local_run_of_a_missing_user_exits_1_with_the_named_error() {
    let body = r#"{"reason":"user 9 does not exist"}"#;
    let synapse = Recorder::answering(Reply::new(404, "application/json", body));
    let out = stepops_with(
        &[
            "decertify-user",
            "9",
            "--env",
            "dev",
            "--local",
            "--synapse-endpoint",
            &synapse.url,
        ],
        &[("STEPOPS_ADMIN_TOKEN_DEV", "syn-pat-cli-test-2")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let failed: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    assert_eq!(failed["status"], "FAILED");
    assert_eq!(failed["error"], "Stepops.NotFound");
    assert!(
        failed["cause"]
            .as_str()
            .unwrap()
            .contains("user 9 does not exist"),
        "{failed}"
    );
    // NotFound is not retried: one read, no write.
    assert_eq!(synapse.seen().len(), 1, "{:?}", synapse.seen());
}

/// A pseudo-terminal (openpty): the command gets the terminal side as its stdin, the test types
/// on the other side. Panics, naming what is missing, when the system has no pseudo-terminals.
struct Pty {
    /// The side the test writes to (what a person types).
    keyboard: std::fs::File,
    /// The terminal side, handed to the command as its stdin.
    terminal: Option<std::os::fd::OwnedFd>,
}

impl Pty {
    fn open() -> Self {
        use std::os::fd::FromRawFd;
        let (mut master, mut slave): (libc::c_int, libc::c_int) = (-1, -1);
        // SAFETY: openpty writes two file descriptors into the given places; the name, termios
        // and window size pointers may be null.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(
            rc,
            0,
            "this test needs a pseudo-terminal and openpty(3) failed: {} (is /dev/ptmx present and devpts mounted?)",
            std::io::Error::last_os_error()
        );
        // SAFETY: both descriptors were just opened by openpty and are owned by nobody else.
        let (keyboard, terminal) = unsafe {
            (
                std::fs::File::from_raw_fd(master),
                std::os::fd::OwnedFd::from_raw_fd(slave),
            )
        };
        Pty {
            keyboard,
            terminal: Some(terminal),
        }
    }
}

/// Runs `stepops admin ARGS…` with stdin on a terminal, types `answer` and a newline, and
/// returns its output. `envs` are added to the environment.
fn stepops_on_a_terminal(args: &[&str], answer: &str, envs: &[(&str, &str)]) -> Output {
    let mut pty = Pty::open();
    let terminal = pty.terminal.take().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_stepops"))
        .arg("admin")
        .args(args)
        .current_dir(repo_root())
        .stdin(Stdio::from(terminal))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .envs(envs.iter().copied())
        .env_remove("STEPOPS_ADMIN_TOKEN_FILE")
        .env_remove("STEPOPS_SYNAPSE_ENDPOINT")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .env("NO_PROXY", "127.0.0.1")
        .spawn()
        .expect("run the stepops binary");
    // The terminal's line discipline keeps the line until the command reads it.
    pty.keyboard
        .write_all(format!("{answer}\n").as_bytes())
        .expect("type on the terminal");
    let out = child.wait_with_output().expect("wait for stepops");
    drop(pty);
    out
}

#[test]
fn prod_on_a_terminal_runs_when_the_target_is_typed_again() {
    let synapse = Recorder::start();
    let token = "syn-pat-cli-test-pty-1";
    let out = stepops_on_a_terminal(
        &[
            "reenable-user",
            "42",
            "--env",
            "prod",
            "--local",
            "--synapse-endpoint",
            &synapse.url,
        ],
        "42",
        &[("STEPOPS_ADMIN_TOKEN_PROD", token), ("USER", "ops-tester")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stderr.contains("PROD: reenable-user on user:42.")
            && stderr.contains("Type the target (42) again to confirm"),
        "the question was not asked: {stderr}"
    );
    let audit: serde_json::Value =
        serde_json::from_str(&stdout).expect("stdout is the audit record");
    assert_eq!(audit["task"], "reenable-user");
    assert_eq!(audit["environment"], "prod");
    assert_eq!(audit["outcome"], "done");
    assert_eq!(
        synapse.seen(),
        vec![format!(
            "PUT /repo/v1/admin/resetuserstatus/42 | authorization: Bearer {token}"
        )]
    );
}

#[test]
fn prod_on_a_terminal_with_a_wrong_target_exits_1_and_sends_nothing() {
    // Through a Step Functions endpoint: nothing may reach it.
    let sfn = Recorder::start();
    let out = stepops_on_a_terminal(
        &[
            "reenable-user",
            "42",
            "--env",
            "prod",
            "--endpoint",
            &sfn.url,
        ],
        "43",
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Type the target (42) again to confirm"),
        "{stderr}"
    );
    assert!(stderr.contains("does not match"), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(sfn.seen().is_empty(), "{:?}", sfn.seen());

    // With --local: no request reaches the service, the token source is not asked.
    let synapse = Recorder::start();
    let out = stepops_on_a_terminal(
        &[
            "make-public",
            "syn123",
            "--env",
            "prod",
            "--local",
            "--synapse-endpoint",
            &synapse.url,
        ],
        "syn1234",
        &[
            ("STEPOPS_ADMIN_TOKEN_PROD", "syn-pat-cli-test-pty-2"),
            ("STEPOPS_LOG", TOKEN_SOURCE_LOG),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("does not match"), "{stderr}");
    assert!(!stderr.contains(TOKEN_SOURCE_ASKED), "{stderr}");
    assert!(synapse.seen().is_empty(), "{:?}", synapse.seen());
}
