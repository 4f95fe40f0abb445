//! Every task against the local stand-in: the exact method, path, query, headers and body of each
//! request, the dry-run behaviour and the audit record.

mod common;

use common::{ListTokens, MockSynapse, Recorded, Reply, SECRET};
use serde_json::{Value, json};
use stepops_admin::{AdminRequest, AuditContext, Environment, handle, run};

/// Answers like the service for the endpoints the tasks use; anything else is a 418 so a stray
/// request fails the test loudly.
fn synapse_like(r: &Recorded) -> Reply {
    match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/repo/v1/user/3350396/bundle") => Reply::json(
            200,
            json!({"userId": "3350396", "userProfile": {"ownerId": "3350396", "userName": "alice"},
                   "isCertified": true, "isVerified": false}),
        ),
        ("POST", "/repo/v1/admin/redact/user/3350396") => Reply::empty(200),
        ("GET", "/auth/v1/oauth2/client/100001") => Reply::json(
            200,
            json!({"client_id": "100001", "client_name": "app", "verified": false, "etag": "etag-1"}),
        ),
        ("PUT", "/repo/v1/admin/oauth2/client/100001/verified") => Reply::json(
            200,
            json!({"client_id": "100001", "client_name": "app", "verified": true, "etag": "etag-2"}),
        ),
        ("PUT", "/repo/v1/entity/syn123/datatype") => Reply::json(
            200,
            json!({"objectId": "syn123", "objectType": "ENTITY", "dataType": "OPEN_DATA"}),
        ),
        ("PUT", "/repo/v1/admin/user/3350396/certificationStatus") => Reply::empty(200),
        ("PUT", "/repo/v1/admin/resetuserstatus/3350396") => Reply::empty(200),
        ("POST", "/repo/v1/admin/emailQuarantine/expire") => Reply::empty(200),
        ("GET", "/repo/v1/admin/feature/MULTIPART_AUTO_CLEANUP/status") => Reply::json(
            200,
            json!({"feature": "MULTIPART_AUTO_CLEANUP", "enabled": false}),
        ),
        ("POST", "/repo/v1/admin/feature/MULTIPART_AUTO_CLEANUP/status") => Reply::json(
            200,
            json!({"feature": "MULTIPART_AUTO_CLEANUP", "enabled": true}),
        ),
        _ => Reply::json(418, json!({"reason": "unexpected request in test"})),
    }
}

/// What one request must look like.
struct Expect {
    method: &'static str,
    path: &'static str,
    query: Option<&'static str>,
    body: Option<Value>,
}

fn assert_request(got: &Recorded, want: &Expect) {
    assert_eq!(got.method, want.method, "method of {}", want.path);
    assert_eq!(got.path, want.path);
    assert_eq!(got.query.as_deref(), want.query, "query of {}", want.path);
    assert_eq!(
        got.header("authorization"),
        Some(format!("Bearer {SECRET}").as_str()),
        "authorization of {}",
        want.path
    );
    assert_eq!(got.header("accept"), Some("application/json"));
    assert!(
        got.header("user-agent")
            .unwrap()
            .starts_with("stepops-admin/"),
        "user agent"
    );
    match &want.body {
        Some(body) => {
            assert_eq!(got.header("content-type"), Some("application/json"));
            assert_eq!(&got.json(), body, "body of {}", want.path);
        }
        None => {
            assert_eq!(
                got.header("content-type"),
                None,
                "no content type without a body"
            );
            assert!(
                got.body.is_empty(),
                "no body for {} {}",
                want.method,
                want.path
            );
        }
    }
}

/// A prod input, confirmed with its target (the first argument) as `stepops admin` sends it.
fn input(task: &str, args: Value, dry_run: bool) -> Value {
    let target = match args.as_object().and_then(|a| a.values().next()) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    json!({"environment": "prod", "task": task, "args": args, "dryRun": dry_run,
           "confirm": target})
}

fn ctx() -> AuditContext {
    AuditContext {
        started_by: Some("arn:aws:sts::123456789012:assumed-role/ops/alice".into()),
        execution_id: Some("arn:aws:states:us-east-1:123456789012:execution:admin:run-1".into()),
    }
}

/// One task: its input, the requests it must send (in order), and checks on its audit record.
type Case = (Value, Vec<Expect>, Box<dyn Fn(&Value)>);

/// Every task, with its expected requests.
fn cases() -> Vec<Case> {
    vec![
        (
            input("remove-user", json!({"userId": "3350396"}), false),
            vec![
                Expect {
                    method: "GET",
                    path: "/repo/v1/user/3350396/bundle",
                    query: Some("mask=127"),
                    body: None,
                },
                Expect {
                    method: "POST",
                    path: "/repo/v1/admin/redact/user/3350396",
                    query: None,
                    body: None,
                },
            ],
            Box::new(|rec: &Value| {
                assert_eq!(rec["target"], "user:3350396");
                assert_eq!(
                    rec["before"],
                    json!({"userId": "3350396", "parts": ["userProfile", "isCertified", "isVerified"]})
                );
                assert_eq!(rec["after"], json!({"redacted": true}));
            }),
        ),
        (
            input("verify-oauth-client", json!({"clientId": "100001"}), false),
            vec![
                Expect {
                    method: "GET",
                    path: "/auth/v1/oauth2/client/100001",
                    query: None,
                    body: None,
                },
                Expect {
                    method: "PUT",
                    path: "/repo/v1/admin/oauth2/client/100001/verified",
                    query: Some("status=true&etag=etag-1"),
                    body: None,
                },
            ],
            Box::new(|rec: &Value| {
                assert_eq!(rec["target"], "oauth-client:100001");
                assert_eq!(rec["before"]["verified"], false);
                assert_eq!(rec["after"]["verified"], true);
            }),
        ),
        (
            input(
                "verify-oauth-client",
                json!({"clientId": 100001, "status": false}),
                false,
            ),
            vec![
                Expect {
                    method: "GET",
                    path: "/auth/v1/oauth2/client/100001",
                    query: None,
                    body: None,
                },
                Expect {
                    method: "PUT",
                    path: "/repo/v1/admin/oauth2/client/100001/verified",
                    query: Some("status=false&etag=etag-1"),
                    body: None,
                },
            ],
            Box::new(|rec: &Value| {
                assert_eq!(
                    rec["change"],
                    "set the verified status of OAuth client 100001 to false (it already is false)"
                )
            }),
        ),
        (
            input("make-public", json!({"entityId": "SYN123"}), false),
            vec![Expect {
                method: "PUT",
                path: "/repo/v1/entity/syn123/datatype",
                query: Some("type=OPEN_DATA"),
                body: None,
            }],
            Box::new(|rec: &Value| {
                assert_eq!(rec["target"], "syn123");
                assert_eq!(rec["before"], Value::Null);
                assert_eq!(rec["after"]["dataType"], "OPEN_DATA");
            }),
        ),
        (
            input("decertify-user", json!({"userId": "3350396"}), false),
            vec![
                Expect {
                    method: "GET",
                    path: "/repo/v1/user/3350396/bundle",
                    query: Some("mask=8"),
                    body: None,
                },
                Expect {
                    method: "PUT",
                    path: "/repo/v1/admin/user/3350396/certificationStatus",
                    query: Some("isCertified=false"),
                    body: None,
                },
            ],
            Box::new(|rec: &Value| {
                assert_eq!(rec["before"], json!({"isCertified": true}));
                assert_eq!(rec["after"], json!({"isCertified": false}));
            }),
        ),
        (
            input("reenable-user", json!({"userId": "3350396"}), false),
            vec![Expect {
                method: "PUT",
                path: "/repo/v1/admin/resetuserstatus/3350396",
                query: None,
                body: None,
            }],
            Box::new(|rec: &Value| assert_eq!(rec["after"], json!({"statusReset": true}))),
        ),
        (
            input(
                "unquarantine-email",
                json!({"email": "first.last+x@example.org"}),
                false,
            ),
            vec![Expect {
                method: "POST",
                path: "/repo/v1/admin/emailQuarantine/expire",
                query: None,
                body: Some(json!({"email": "first.last+x@example.org"})),
            }],
            Box::new(|rec: &Value| {
                assert_eq!(rec["target"], "email:first.last+x@example.org");
                assert_eq!(rec["after"]["quarantineExpired"], true);
            }),
        ),
        (
            input(
                "set-feature",
                json!({"feature": "MULTIPART_AUTO_CLEANUP", "enabled": true}),
                false,
            ),
            vec![
                Expect {
                    method: "GET",
                    path: "/repo/v1/admin/feature/MULTIPART_AUTO_CLEANUP/status",
                    query: None,
                    body: None,
                },
                Expect {
                    method: "POST",
                    path: "/repo/v1/admin/feature/MULTIPART_AUTO_CLEANUP/status",
                    query: None,
                    body: Some(json!({"feature": "MULTIPART_AUTO_CLEANUP", "enabled": true})),
                },
            ],
            Box::new(|rec: &Value| {
                assert_eq!(rec["before"]["enabled"], false);
                assert_eq!(rec["after"]["enabled"], true);
            }),
        ),
    ]
}

#[tokio::test]
async fn every_task_sends_exactly_the_documented_requests() {
    for (input, expected, check) in cases() {
        let server = MockSynapse::start(synapse_like).await;
        let client = server.client(ListTokens::new(&[SECRET]));
        let record = handle(&input, Environment::Prod, &client, &ctx())
            .await
            .unwrap_or_else(|e| panic!("{input}: {e}"));
        let got = server.requests();
        assert_eq!(got.len(), expected.len(), "{input}: {got:#?}");
        for (g, w) in got.iter().zip(&expected) {
            assert_request(g, w);
        }
        let rec = serde_json::to_value(&record).unwrap();
        assert_eq!(rec["task"], input["task"]);
        assert_eq!(rec["environment"], "prod");
        assert_eq!(rec["dryRun"], false);
        assert_eq!(rec["outcome"], "done");
        assert_eq!(
            rec["startedBy"],
            "arn:aws:sts::123456789012:assumed-role/ops/alice"
        );
        assert!(rec["executionId"].as_str().unwrap().ends_with(":run-1"));
        assert!(rec["timestamp"].as_str().unwrap().ends_with('Z'));
        let lines = rec["requests"].as_array().unwrap();
        assert_eq!(lines.len(), expected.len());
        assert!(lines.iter().all(|l| l["sent"] == true));
        check(&rec);
    }
}

#[tokio::test]
async fn dry_run_performs_only_the_reads_and_reports_the_writes() {
    for (mut input, expected, _) in cases() {
        input["dryRun"] = json!(true);
        let server = MockSynapse::start(synapse_like).await;
        let client = server.client(ListTokens::new(&[SECRET]));
        let record = handle(&input, Environment::Prod, &client, &AuditContext::default())
            .await
            .unwrap_or_else(|e| panic!("{input}: {e}"));
        let reads: Vec<&Expect> = expected.iter().filter(|e| e.method == "GET").collect();
        let got = server.requests();
        assert_eq!(
            got.len(),
            reads.len(),
            "{input}: only reads reach the server"
        );
        for (g, w) in got.iter().zip(reads) {
            assert_request(g, w);
        }
        assert!(record.dry_run);
        assert_eq!(record.outcome, "dry-run");
        assert_eq!(record.after, Value::Null);
        assert_eq!(record.started_by, None);
        // The planned write is reported, marked as not sent, with its exact path and body.
        let write = expected.iter().find(|e| e.method != "GET").unwrap();
        let line = record
            .requests
            .iter()
            .find(|l| !l.sent)
            .expect("a planned write");
        let want = match write.query {
            Some(q) => format!("{} {}?{}", write.method, write.path, q),
            None => format!("{} {}", write.method, write.path),
        };
        assert_eq!(line.request, want);
        assert_eq!(line.body, write.body);
    }
}

#[tokio::test]
async fn cli_arguments_drive_the_same_requests() {
    let server = MockSynapse::start(synapse_like).await;
    let client = server.client(ListTokens::new(&[SECRET]));
    let req = AdminRequest::from_cli(
        "prod",
        Environment::Prod,
        "set-feature",
        &["MULTIPART_AUTO_CLEANUP", "--enabled", "true"],
        false,
    )
    .unwrap();
    let record = run(&req, &client, &AuditContext::default()).await.unwrap();
    assert_eq!(record.after["enabled"], true);
    let got = server.requests();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].method, "POST");
    assert_eq!(
        got[1].json(),
        json!({"feature": "MULTIPART_AUTO_CLEANUP", "enabled": true})
    );
}

#[tokio::test]
async fn a_client_without_an_etag_is_not_updated() {
    let server = MockSynapse::start(|r: &Recorded| match r.method.as_str() {
        "GET" => Reply::json(200, json!({"client_id": "100001", "verified": false})),
        _ => Reply::empty(200),
    })
    .await;
    let client = server.client(ListTokens::new(&[SECRET]));
    let err = handle(
        &input("verify-oauth-client", json!({"clientId": "100001"}), false),
        Environment::Prod,
        &client,
        &AuditContext::default(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("etag"), "{err}");
    assert_eq!(server.requests().len(), 1, "the PUT is never sent");
}

#[tokio::test]
async fn the_lambda_event_validates_without_requests_then_runs() {
    let server = MockSynapse::start(synapse_like).await;
    let client = server.client(ListTokens::new(&[SECRET]));
    let request = json!({"environment": "prod", "task": "make-public",
                         "args": {"entityId": "Syn123"}, "confirm": "SYN123"});

    let validated = stepops_admin::invoke(
        &json!({"action": "validate", "request": request}),
        Environment::Prod,
        &client,
    )
    .await
    .unwrap();
    assert!(server.requests().is_empty(), "validate sends nothing");
    assert_eq!(
        validated,
        json!({
            "request": {"environment": "prod", "task": "make-public",
                        "args": {"entityId": "syn123"}, "dryRun": false,
                        "confirm": "syn123"},
            "task": "make-public", "target": "syn123", "targetId": "syn123",
            "change": "set the data type of syn123 to OPEN_DATA", "dryRun": false
        })
    );

    let audit = stepops_admin::invoke(
        &json!({"action": "run", "request": validated["request"],
                "executionId": "arn:aws:states:us-east-1:1:execution:admin:x"}),
        Environment::Prod,
        &client,
    )
    .await
    .unwrap();
    assert_eq!(audit["outcome"], "done");
    assert_eq!(
        audit["executionId"],
        "arn:aws:states:us-east-1:1:execution:admin:x"
    );
    assert_eq!(audit["startedBy"], Value::Null);
    assert_eq!(server.requests().len(), 1);

    for bad in [
        json!({"action": "delete", "request": request}),
        json!({"request": request}),
        json!({"action": "run"}),
        json!({"action": "run", "request": request, "extra": 1}),
        json!({"action": "run", "request": request, "executionId": 5}),
        json!("run"),
    ] {
        let err = stepops_admin::invoke(&bad, Environment::Prod, &client)
            .await
            .unwrap_err();
        assert!(
            matches!(err, stepops_admin::AdminError::InvalidInput(_)),
            "{bad}: {err}"
        );
    }
    assert_eq!(server.requests().len(), 1, "refused events send nothing");

    // In prod both actions refuse an input whose `confirm` is missing or names another target
    // (a console start, a redrive with an edited input): Stepops.NotConfirmed, nothing sent.
    for confirm in [None, Some(json!("syn124")), Some(json!(""))] {
        let mut unconfirmed = request.clone();
        match &confirm {
            Some(c) => unconfirmed["confirm"] = c.clone(),
            None => {
                unconfirmed.as_object_mut().unwrap().remove("confirm");
            }
        }
        for action in ["validate", "run"] {
            let err = stepops_admin::invoke(
                &json!({"action": action, "request": unconfirmed}),
                Environment::Prod,
                &client,
            )
            .await
            .unwrap_err();
            assert_eq!(
                stepops_error::Named::error_name(&err),
                stepops_error::ErrorName::NotConfirmed,
                "{action} {confirm:?}: {err}"
            );
        }
    }
    assert_eq!(
        server.requests().len(),
        1,
        "unconfirmed requests send nothing"
    );
}

#[tokio::test]
async fn a_declared_starter_reaches_the_audit_record_unless_the_execution_knows_better() {
    let server = MockSynapse::start(synapse_like).await;
    let client = server.client(ListTokens::new(&[SECRET]));
    let mut input = input("reenable-user", json!({"userId": "3350396"}), true);
    input["startedBy"] = json!("alice@example.org");
    let rec = handle(&input, Environment::Prod, &client, &AuditContext::default())
        .await
        .unwrap();
    assert_eq!(rec.started_by.as_deref(), Some("alice@example.org"));
    let rec = handle(&input, Environment::Prod, &client, &ctx())
        .await
        .unwrap();
    assert_eq!(
        rec.started_by.as_deref(),
        Some("arn:aws:sts::123456789012:assumed-role/ops/alice")
    );
}

#[tokio::test]
async fn a_failed_write_keeps_what_the_read_found_in_the_logged_record() {
    let server = MockSynapse::start(|r: &Recorded| match r.method.as_str() {
        "GET" => synapse_like(r),
        _ => Reply::json(500, json!({"reason": "database restarting"})),
    })
    .await;
    let client = server.client(ListTokens::new(&[SECRET]));
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || Sink(sink.clone()))
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let err = handle(
        &input("remove-user", json!({"userId": "3350396"}), false),
        Environment::Prod,
        &client,
        &AuditContext::default(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("500"), "{err}");
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let line: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(line["target"], stepops_admin::AUDIT_TARGET, "{line}");
    assert_eq!(line["fields"]["audit"], true, "{line}");
    let record: Value = serde_json::from_str(line["fields"]["record"].as_str().unwrap()).unwrap();
    assert_eq!(record["outcome"], "failed");
    assert_eq!(
        record["before"],
        json!({"userId": "3350396", "parts": ["userProfile", "isCertified", "isVerified"]})
    );
    assert!(
        !text.contains("alice"),
        "the profile is in no log line: {text}"
    );
    assert_eq!(record["error"]["error"], "Stepops.Transient");
    assert_eq!(record["requests"].as_array().unwrap().len(), 2);
}

struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
