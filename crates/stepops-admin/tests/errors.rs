//! Every error status maps to its named error; a 401 refreshes the token once and retries once;
//! timeouts and refused connections are transient.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{ListTokens, MockSynapse, Recorded, Reply};
use serde_json::json;
use stepops_admin::{
    AdminRequest, AuditContext, ClientConfig, Environment, SynapseClient, api, run,
};
use stepops_error::{ErrorName, Named, TaskFailure};

fn reenable() -> AdminRequest {
    AdminRequest::from_cli("dev", Environment::Dev, "reenable-user", &["42"], false).unwrap()
}

#[tokio::test]
async fn each_status_maps_to_its_named_error() {
    let table = [
        (400, ErrorName::InvalidInput),
        (401, ErrorName::Unauthorized),
        (403, ErrorName::Unauthorized),
        (404, ErrorName::NotFound),
        (405, ErrorName::InvalidInput),
        (409, ErrorName::Conflict),
        (412, ErrorName::Conflict),
        (422, ErrorName::InvalidInput),
        (429, ErrorName::Transient),
        (500, ErrorName::Transient),
        (502, ErrorName::Transient),
        (503, ErrorName::Transient),
        (504, ErrorName::Transient),
    ];
    for (status, name) in table {
        let server = MockSynapse::start(move |_: &Recorded| {
            Reply::json(
                status,
                json!({"reason": format!("status {status} from the test")}),
            )
        })
        .await;
        let client = server.client(ListTokens::new(&["t1", "t2"]));
        let err = run(&reenable(), &client, &AuditContext::default())
            .await
            .unwrap_err();
        assert_eq!(err.error_name(), name, "HTTP {status}: {err}");
        let failure = TaskFailure::from_error(&err);
        assert_eq!(failure.error, name.as_str());
        assert!(
            failure
                .cause
                .contains(&format!("status {status} from the test")),
            "the service's reason is kept: {}",
            failure.cause
        );
        assert!(
            failure
                .cause
                .contains("PUT /repo/v1/admin/resetuserstatus/42")
        );
        let expected_requests = if status == 401 { 2 } else { 1 };
        assert_eq!(server.requests().len(), expected_requests, "HTTP {status}");
    }
}

#[tokio::test]
async fn a_401_refreshes_the_token_once_and_retries_once() {
    let server = MockSynapse::start(|r: &Recorded| {
        if r.header("authorization") == Some("Bearer fresh") {
            Reply::empty(200)
        } else {
            Reply::json(401, json!({"reason": "token expired"}))
        }
    })
    .await;
    let tokens = ListTokens::new(&["stale", "fresh"]);
    let client = server.client(tokens);
    let rec = run(&reenable(), &client, &AuditContext::default())
        .await
        .unwrap();
    assert_eq!(rec.outcome, "done");
    let got = server.requests();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].header("authorization"), Some("Bearer stale"));
    assert_eq!(got[1].header("authorization"), Some("Bearer fresh"));
    assert_eq!(got[0].path, got[1].path);
    assert_eq!(got[0].method, got[1].method);
}

#[tokio::test]
async fn a_second_401_is_unauthorized_without_more_retries() {
    let server =
        MockSynapse::start(|_: &Recorded| Reply::json(401, json!({"reason": "invalid token"})))
            .await;
    let tokens = std::sync::Arc::new(ListTokens::new(&["a", "b", "c"]));
    let client = server.client(tokens.clone());
    let err = run(&reenable(), &client, &AuditContext::default())
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::Unauthorized);
    assert_eq!(server.requests().len(), 2, "one retry, no more");
    assert_eq!(tokens.refreshes.load(Ordering::SeqCst), 1, "one refresh");
}

#[tokio::test]
async fn a_403_is_not_retried() {
    let server =
        MockSynapse::start(|_: &Recorded| Reply::json(403, json!({"reason": "not an admin"})))
            .await;
    let tokens = std::sync::Arc::new(ListTokens::new(&["a", "b"]));
    let client = server.client(tokens.clone());
    let err = run(&reenable(), &client, &AuditContext::default())
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::Unauthorized);
    assert_eq!(server.requests().len(), 1);
    assert_eq!(tokens.refreshes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_slow_service_is_a_transient_timeout() {
    let server =
        MockSynapse::start(|_: &Recorded| Reply::empty(200).delayed(Duration::from_secs(3))).await;
    let mut config = server.config();
    config.read_timeout = Duration::from_millis(200);
    config.request_timeout = Duration::from_millis(400);
    let client = SynapseClient::new(config, ListTokens::new(&["t"])).unwrap();
    let started = std::time::Instant::now();
    let err = client
        .execute(&api::get_feature_status(
            stepops_admin::Feature::MultipartAutoCleanup,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::Transient, "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    // Bind and drop a listener to get a port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut config = ClientConfig::new(&format!("http://127.0.0.1:{port}")).unwrap();
    config.system_proxy = false;
    let client = SynapseClient::new(config, ListTokens::new(&["t"])).unwrap();
    let err = run(&reenable(), &client, &AuditContext::default())
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::Transient, "{err}");
}

#[tokio::test]
async fn a_success_that_is_not_json_is_internal() {
    let server = MockSynapse::start(|_: &Recorded| {
        Reply::new(200, "application/json", "<html>proxy login</html>")
    })
    .await;
    let client = server.client(ListTokens::new(&["t"]));
    let err = client
        .execute(&api::get_feature_status(
            stepops_admin::Feature::MultipartAutoCleanup,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::Internal, "{err}");
}

#[tokio::test]
async fn a_slow_401_then_a_slow_retry_ends_transient_within_the_task_budget() {
    // The first answer is a 401 that takes 0.6 s; the retry with the fresh token would take
    // 5 s. Each request is within the per-request timeout (10 s), but together they are not
    // within the task's budget (1.5 s): the task is cut off at the budget, as Stepops.Transient,
    // instead of outliving the Lambda's own timeout.
    let server = MockSynapse::start(|r: &Recorded| {
        if r.header("authorization") == Some("Bearer stale") {
            Reply {
                delay: Duration::from_millis(600),
                ..Reply::json(401, json!({"reason": "token expired"}))
            }
        } else {
            Reply {
                delay: Duration::from_secs(5),
                ..Reply::empty(200)
            }
        }
    })
    .await;
    let mut config = server.config();
    config.request_timeout = Duration::from_secs(10);
    config.read_timeout = Duration::from_secs(10);
    config.task_timeout = Duration::from_millis(1500);
    let tokens = std::sync::Arc::new(ListTokens::new(&["stale", "fresh"]));
    let client = SynapseClient::new(config, tokens.clone()).unwrap();
    assert_eq!(client.task_timeout(), Duration::from_millis(1500));
    let started = std::time::Instant::now();
    let err = run(&reenable(), &client, &AuditContext::default())
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.error_name(), ErrorName::Transient, "{err}");
    assert!(err.to_string().contains("time budget of 1.5 s"), "{err}");
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    // Both requests were sent, with one refresh between them.
    let got = server.requests();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1].header("authorization"), Some("Bearer fresh"));
    assert_eq!(tokens.refreshes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_lambda_deadline_less_the_margin_bounds_an_invocation() {
    use std::time::{Instant, SystemTime};
    use stepops_admin::{LAMBDA_MARGIN, invocation_deadline, invoke_until};

    // 10 s left in the invocation: the requests get 10 s - LAMBDA_MARGIN.
    let before = Instant::now();
    let d = invocation_deadline(SystemTime::now() + Duration::from_secs(10));
    let left = d.saturating_duration_since(before);
    assert!(
        left <= Duration::from_secs(10) - LAMBDA_MARGIN + Duration::from_millis(50)
            && left > Duration::from_secs(4),
        "{left:?}"
    );
    // A deadline already (nearly) passed leaves nothing.
    let d = invocation_deadline(SystemTime::now() + Duration::from_secs(1));
    assert!(d <= Instant::now() + Duration::from_millis(10));

    // invoke_until with a deadline 0.5 s away cuts off a service that takes 5 s.
    let server = MockSynapse::start(|_: &Recorded| Reply {
        delay: Duration::from_secs(5),
        ..Reply::empty(200)
    })
    .await;
    let client = server.client(ListTokens::new(&["t"]));
    let started = Instant::now();
    let err = invoke_until(
        &json!({"action": "run", "request": {"environment": "dev", "task": "reenable-user", "args": {"userId": "42"}}}),
        Environment::Dev,
        &client,
        started + Duration::from_millis(500),
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::Transient, "{err}");
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert_eq!(server.requests().len(), 1);
}
