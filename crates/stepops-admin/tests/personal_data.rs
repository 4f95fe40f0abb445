//! `remove-user` removes a user's personal data, so none of it may land where operators read: the
//! audit record (the execution output and the notification), the log lines, the errors. With a
//! profile record configured the bundle is kept in one object, written with SSE-KMS asked for,
//! and the record holds only its location; without one it is kept nowhere.

mod common;

use common::{Captured, ListTokens, MockSynapse, Recorded, Reply, SECRET};
use serde_json::{Value, json};
use stepops_admin::{Environment, ProfileRecords, invoke};
use stepops_error::{ErrorName, Named, TaskFailure};
use stepops_store::{AnyStore, Encryption, LocalFolderStore, ObjectStore};

/// A bundle as the service returns it, every part filled with personal data.
/// The profile's values are strings no log line holds by chance: a short number ("5566") was
/// found inside a log line's timestamp ("…52.755566Z") and failed the test once in a while.
fn bundle() -> Value {
    json!({
        "userId": "3350396",
        "userProfile": {
            "ownerId": "3350396",
            "userName": "jdoe-handle",
            "firstName": "Janet",
            "lastName": "Doerington",
            "displayName": "Janet Doerington",
            "emails": ["janet.doerington@example.org"],
            "openIds": ["https://openid.example.org/janet"],
            "company": "Acme Genomics",
            "position": "Principal Investigator",
            "location": "Springfield, Oregon",
            "industry": "Biotechnology",
            "url": "https://janet.example.org",
            "summary": "Works on rare diseases in Springfield",
            "profilePicureFileHandleId": "fh-998877",
            "etag": "etag-profile-1"
        },
        "ORCID": "https://orcid.org/0000-0002-1825-0097",
        "verificationSubmission": {
            "id": "vs-5566",
            "createdBy": "3350396",
            "firstName": "Janet",
            "lastName": "Doerington",
            "emails": ["janet.doerington@example.org", "jd@lab.example.org"],
            "notificationEmail": "jd@lab.example.org",
            "company": "Acme Genomics",
            "location": "Springfield, Oregon",
            "orcid": "https://orcid.org/0000-0002-1825-0097"
        },
        "isCertified": true,
        "isVerified": true,
        "isACTMember": false,
        "isARReviewer": false
    })
}

/// Every personal value of the bundle: its strings that are not the user's id.
fn personal_values() -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) if s != "3350396" => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(o) => o.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&bundle(), &mut out);
    // And the parts of them a log line could hold on its own.
    out.extend(["Janet", "Doerington", "Springfield", "0000-0002-1825-0097"].map(str::to_owned));
    assert!(out.len() > 20, "{out:?}");
    out
}

fn assert_nothing_personal(place: &str, text: &str) {
    for value in personal_values() {
        assert!(
            !text.contains(&value),
            "{value:?} appears in {place}:\n{text}"
        );
    }
}

/// The service: the bundle, then the redaction as `redact` answers it.
fn service(redact: Reply) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    move |r: &Recorded| match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/repo/v1/user/3350396/bundle") => Reply::json(200, bundle()),
        ("POST", "/repo/v1/admin/redact/user/3350396") => redact.clone(),
        _ => Reply::json(418, json!({"reason": "unexpected request in test"})),
    }
}

/// All tracing output at TRACE, as JSON lines, while `f` runs.
async fn capture_logs<F: std::future::Future<Output = ()>>(f: F) -> String {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    f.await;
    drop(guard);
    captured.text()
}

fn run_event(dry_run: bool) -> Value {
    json!({"action": "run", "executionId": "arn:aws:states:us-east-1:1:execution:admin:x",
           "request": {"environment": "prod", "task": "remove-user",
                       "args": {"userId": "3350396"}, "dryRun": dry_run,
                       "confirm": "3350396"}})
}

#[tokio::test]
async fn no_personal_field_reaches_the_record_the_logs_or_an_error() {
    let mut outputs = Vec::new();
    let mut sent = Vec::new();
    let logs = capture_logs(async {
        // A real run, a dry run, a redaction answering with the profile, and a failing one.
        for (dry_run, redact) in [
            (false, Reply::empty(200)),
            (true, Reply::empty(200)),
            (false, Reply::json(200, bundle())),
        ] {
            let server = MockSynapse::start(service(redact)).await;
            let client = server.client(ListTokens::new(&[SECRET]));
            let out = invoke(&run_event(dry_run), Environment::Prod, &client)
                .await
                .unwrap();
            assert_eq!(out["task"], "remove-user");
            assert_eq!(
                out["before"],
                json!({"userId": "3350396", "parts": ["userProfile", "ORCID",
                       "verificationSubmission", "isCertified", "isVerified",
                       "isACTMember", "isARReviewer"]})
            );
            assert_eq!(out.get("profileRecord"), None, "no record is kept: {out}");
            let expected_after = if dry_run {
                Value::Null
            } else {
                json!({"redacted": true})
            };
            assert_eq!(out["after"], expected_after);
            outputs.push(out.to_string());
            sent.push(server.requests().len());
        }
        let server = MockSynapse::start(service(Reply::json(
            500,
            json!({"reason": "database restarting"}),
        )))
        .await;
        let client = server.client(ListTokens::new(&[SECRET]));
        let err = invoke(&run_event(false), Environment::Prod, &client)
            .await
            .unwrap_err();
        assert_eq!(err.error_name(), ErrorName::Transient);
        outputs.push(TaskFailure::from_error(&err).to_string());
        outputs.push(format!("{err:?}"));
        // A bundle cut short (not JSON): the error does not quote it.
        let cut = bundle().to_string()[..400].to_owned();
        let server = MockSynapse::start(move |_: &Recorded| {
            Reply::new(200, "application/json", cut.clone())
        })
        .await;
        let client = server.client(ListTokens::new(&[SECRET]));
        let err = invoke(&run_event(false), Environment::Prod, &client)
            .await
            .unwrap_err();
        assert_eq!(err.error_name(), ErrorName::Internal, "{err}");
        assert_eq!(server.requests().len(), 1, "nothing redacted");
        outputs.push(TaskFailure::from_error(&err).to_string());
    })
    .await;
    assert_eq!(sent, [2, 1, 2], "the reads (and writes) did happen");

    for o in &outputs {
        assert_nothing_personal("the output", o);
    }
    // The audit lines are there (so the logs were captured), and hold nothing personal.
    let audits = logs
        .lines()
        .filter(|l| l.contains(stepops_admin::AUDIT_TARGET))
        .count();
    assert_eq!(audits, 5, "{logs}");
    assert_nothing_personal("the logs", &logs);
}

#[tokio::test]
async fn a_kept_profile_goes_to_one_sse_kms_object_and_the_record_holds_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let folder = LocalFolderStore::new(dir.path());
    let records = ProfileRecords::new(
        AnyStore::Local(folder.clone()),
        "stack-bucket",
        Some("alias/stepops-prod-admin".into()),
    );
    let server = MockSynapse::start(service(Reply::empty(200))).await;
    let client = server
        .client(ListTokens::new(&[SECRET]))
        .with_profile_records(Some(records.clone()));
    let mut out = Value::Null;
    let logs = capture_logs(async {
        out = invoke(&run_event(false), Environment::Prod, &client)
            .await
            .unwrap();
    })
    .await;

    let location = out["profileRecord"].as_str().expect("the record names it");
    let key = location
        .strip_prefix("s3://stack-bucket/")
        .unwrap_or_else(|| panic!("{location}"));
    assert!(
        key.starts_with("admin-records/prod/remove-user/user-3350396/") && key.ends_with(".json"),
        "{key}"
    );
    let kept: Value =
        serde_json::from_slice(&folder.get("stack-bucket", key).await.unwrap()).unwrap();
    assert_eq!(kept["profile"], bundle());
    assert_eq!(kept["target"], "user:3350396");
    assert_eq!(
        kept["executionId"],
        "arn:aws:states:us-east-1:1:execution:admin:x"
    );
    let asked = folder.options_of("stack-bucket", key).await.unwrap();
    assert_eq!(
        asked.encryption,
        Encryption::Kms {
            key_id: Some("alias/stepops-prod-admin".into())
        }
    );
    assert_eq!(asked.content_type.as_deref(), Some("application/json"));
    assert_eq!(server.requests().len(), 2, "read, then redacted");
    assert_nothing_personal("the output", &out.to_string());
    assert_nothing_personal("the logs", &logs);
    assert!(
        logs.contains(key),
        "the logged record names the object: {logs}"
    );

    // A dry run removes nothing, so it keeps nothing.
    let dry = invoke(&run_event(true), Environment::Prod, &client)
        .await
        .unwrap();
    assert_eq!(dry.get("profileRecord"), None);
    let objects = std::fs::read_dir(
        dir.path()
            .join("stack-bucket/admin-records/prod/remove-user/user-3350396"),
    )
    .unwrap()
    .count();
    assert_eq!(objects, 1);
}

#[tokio::test]
async fn a_profile_that_cannot_be_kept_is_not_redacted() {
    let dir = tempfile::tempdir().unwrap();
    // A bucket name the store refuses: the write fails.
    let records = ProfileRecords::new(
        AnyStore::Local(LocalFolderStore::new(dir.path())),
        "not/a/bucket",
        None,
    );
    let server = MockSynapse::start(service(Reply::empty(200))).await;
    let client = server
        .client(ListTokens::new(&[SECRET]))
        .with_profile_records(Some(records));
    let mut result = Ok(Value::Null);
    let logs = capture_logs(async {
        result = invoke(&run_event(false), Environment::Prod, &client).await;
    })
    .await;
    let err = result.unwrap_err();
    assert_eq!(err.error_name(), ErrorName::InvalidInput, "{err}");
    assert!(err.to_string().contains("nothing was redacted"), "{err}");
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "only the read: {requests:?}");
    assert_eq!(requests[0].method, "GET");
    assert_nothing_personal("the error", &TaskFailure::from_error(&err).to_string());
    assert_nothing_personal("the logs", &logs);
}
