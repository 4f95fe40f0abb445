//! The admin Lambda's log lines (`stepops_admin::logging`, what the binary installs): in the JSON
//! format the template deploys, the audit record's line carries `"audit": true`, its target and
//! the record as a JSON object; every other line is JSON too and names its target; the token is
//! in none of them, even at TRACE level. In the text format the line holds `audit=true`.

mod common;

use common::{Captured, ListTokens, MockSynapse, Recorded, Reply, SECRET};
use serde_json::{Value, json};
use stepops_admin::logging::{LogFormat, lambda_subscriber};
use stepops_admin::{AUDIT_TARGET, AuditContext, Environment, handle};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

fn service(r: &Recorded) -> Reply {
    match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/repo/v1/user/5/bundle") => Reply::json(
            200,
            json!({"userId": "5", "userProfile": {"userName": "alice"}}),
        ),
        ("POST", "/repo/v1/admin/redact/user/5") => Reply::empty(200),
        _ => Reply::json(503, json!({"reason": "down"})),
    }
}

/// Runs a successful task, a failing one and a refused one under `format`; returns the lines.
async fn run_tasks(format: LogFormat) -> String {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = lambda_subscriber(format, EnvFilter::new("trace"), move || writer.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = MockSynapse::start(service).await;
    let client = server.client(ListTokens::new(&[SECRET]));
    let ctx = AuditContext {
        started_by: Some("alice".into()),
        execution_id: Some("arn:aws:states:us-east-1:1:execution:stepops-dev-admin:x".into()),
    };
    // lambda_runtime runs each invocation in this span.
    let span = tracing::info_span!("Lambda runtime invoke", requestId = "req-1");
    async {
        handle(
            &json!({"environment": "dev", "task": "remove-user", "args": {"userId": "5"}}),
            Environment::Dev,
            &client,
            &ctx,
        )
        .await
        .unwrap();
        handle(
            &json!({"environment": "dev", "task": "reenable-user", "args": {"userId": "6"}}),
            Environment::Dev,
            &client,
            &ctx,
        )
        .await
        .unwrap_err();
        handle(
            &json!({"environment": "prod", "task": "reenable-user", "args": {"userId": "6"}}),
            Environment::Dev,
            &client,
            &ctx,
        )
        .await
        .unwrap_err();
    }
    .instrument(span)
    .await;
    captured.text()
}

#[tokio::test]
async fn json_lines_carry_the_audit_record_as_an_object() {
    let text = run_tasks(LogFormat::Json).await;
    assert!(!text.contains(SECRET), "{text}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() > 3, "{text}");
    for l in &lines {
        assert!(l["target"].is_string(), "every line names its target: {l}");
        assert!(l["level"].is_string(), "{l}");
    }

    let audits: Vec<&Value> = lines.iter().filter(|l| l["audit"] == true).collect();
    assert_eq!(audits.len(), 2, "one record per task run: {text}");
    let (done, failed) = (audits[0], audits[1]);
    assert_eq!(done["target"], AUDIT_TARGET);
    assert_eq!(done["level"], "INFO");
    assert_eq!(done["message"], "admin task done");
    let record = &done["record"];
    assert!(
        record.is_object(),
        "the record is an object, not a string: {done}"
    );
    assert_eq!(record["task"], "remove-user");
    assert_eq!(record["target"], "user:5");
    assert_eq!(record["outcome"], "done");
    assert_eq!(record["environment"], "dev");
    assert_eq!(record["startedBy"], "alice");
    // The bundle's profile is not in the record, only which parts it had.
    assert_eq!(
        record["before"],
        serde_json::json!({"userId": "5", "parts": ["userProfile"]})
    );
    assert_eq!(record["requests"].as_array().unwrap().len(), 2);
    assert_eq!(done["spans"][0]["name"], "Lambda runtime invoke");
    assert_eq!(done["spans"][0]["requestId"], "req-1");

    assert_eq!(failed["level"], "WARN");
    assert_eq!(failed["record"]["outcome"], "failed");
    assert_eq!(failed["record"]["error"]["error"], "Stepops.Transient");

    // The refusal is logged, as an ordinary line: it is not an audit record.
    let refused: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("refused in validation"))
        })
        .collect();
    assert_eq!(refused.len(), 1, "{text}");
    assert_eq!(refused[0]["fields"]["error"], "Stepops.WrongEnvironment");
    assert!(refused[0].get("audit").is_none());
}

#[tokio::test]
async fn text_lines_carry_audit_true_and_the_target() {
    let text = run_tasks(LogFormat::Text).await;
    assert!(!text.contains(SECRET), "{text}");
    let audits: Vec<&str> = text.lines().filter(|l| l.contains("audit=true")).collect();
    assert_eq!(audits.len(), 2, "{text}");
    for l in &audits {
        assert!(l.contains(AUDIT_TARGET), "{l}");
        assert!(l.contains("record={\"task\":"), "{l}");
    }
}
