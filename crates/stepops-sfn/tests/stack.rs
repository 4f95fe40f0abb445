//! Finding a stack's state machine by its outputs, with the real `aws-sdk-cloudformation`
//! client against a CloudFormation stand-in on 127.0.0.1 that speaks the service's Query
//! protocol (form-encoded POST, XML answers, `NextToken` pages, `ValidationError` for a missing
//! stack).

use std::sync::Arc;

use stepops_error::{ErrorName, Named};
use stepops_sfn::{
    SfnError, StackOutput, cloudformation_client, stack_output, stacks_with_output,
    state_machine_of_stack,
};
use stepops_testkit::http::{HttpServer, Recorded, Reply};

const XMLNS: &str = "http://cloudformation.amazonaws.com/doc/2010-05-15/";

/// A stack of the fake account: its name and outputs.
struct FakeStack {
    name: &'static str,
    outputs: Vec<(&'static str, String)>,
}

fn machine(name: &str) -> String {
    format!("arn:aws:states:us-east-1:123456789012:stateMachine:{name}")
}

/// The stacks of the fake account: the default dev stack last, after namespaced ones and a
/// stack of another application.
fn account() -> Vec<FakeStack> {
    vec![
        FakeStack {
            name: "unrelated-app",
            outputs: vec![("BucketName", "b".to_owned())],
        },
        FakeStack {
            name: "stepops-dev-feature-a",
            outputs: vec![("StateMachineArn", machine("stepops-dev-feature-a-migrate"))],
        },
        FakeStack {
            name: "stepops-prod",
            outputs: vec![("StateMachineArn", machine("stepops-prod-migrate"))],
        },
        FakeStack {
            name: "network",
            outputs: vec![],
        },
        FakeStack {
            name: "stepops-dev",
            outputs: vec![
                ("AdminStateMachineArn", machine("stepops-dev-admin")),
                ("StateMachineArn", machine("stepops-dev-migrate")),
            ],
        },
    ]
}

/// `DescribeStacks` as CloudFormation answers it: one stack by name (or a `ValidationError`),
/// or all stacks in pages of `page` joined by an opaque `NextToken`.
fn describe_stacks(stacks: &[FakeStack], page: usize, req: &Recorded) -> Reply {
    let form = req.form();
    if req.method != "POST"
        || req.header("content-type") != Some("application/x-www-form-urlencoded")
        || form.get("Action").map(String::as_str) != Some("DescribeStacks")
        || form.get("Version").map(String::as_str) != Some("2010-05-15")
    {
        return error(400, "InvalidAction", "not a DescribeStacks Query request");
    }
    let selected: Vec<&FakeStack> = match form.get("StackName") {
        Some(name) => match stacks.iter().find(|s| s.name == name) {
            Some(s) => vec![s],
            None => {
                return error(
                    400,
                    "ValidationError",
                    &format!("Stack with id {name} does not exist"),
                );
            }
        },
        None => stacks.iter().collect(),
    };
    let start = match form.get("NextToken") {
        Some(t) => match t.strip_prefix("page-").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => return error(400, "ValidationError", "invalid NextToken"),
        },
        None => 0,
    };
    let end = (start + page).min(selected.len());
    let members: String = selected[start..end].iter().map(|s| member(s)).collect();
    let next = if end < selected.len() {
        format!("<NextToken>page-{end}</NextToken>")
    } else {
        String::new()
    };
    Reply::xml(
        200,
        format!(
            "<DescribeStacksResponse xmlns=\"{XMLNS}\"><DescribeStacksResult><Stacks>{members}</Stacks>{next}</DescribeStacksResult><ResponseMetadata><RequestId>b9b4b068-3a41-11e5-94eb-example</RequestId></ResponseMetadata></DescribeStacksResponse>"
        ),
    )
}

fn member(s: &FakeStack) -> String {
    let outputs: String = s
        .outputs
        .iter()
        .map(|(k, v)| {
            format!("<member><OutputKey>{k}</OutputKey><OutputValue>{v}</OutputValue></member>")
        })
        .collect();
    format!(
        "<member><StackName>{name}</StackName><StackId>arn:aws:cloudformation:us-east-1:123456789012:stack/{name}/0b1c2d3e</StackId><CreationTime>2026-01-05T10:00:00.000Z</CreationTime><StackStatus>UPDATE_COMPLETE</StackStatus><Outputs>{outputs}</Outputs></member>",
        name = s.name
    )
}

fn error(status: u16, code: &str, message: &str) -> Reply {
    Reply::xml(
        status,
        format!(
            "<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>c8d1e2f3-example</RequestId></ErrorResponse>"
        ),
    )
}

/// The stand-in with `stacks`, answering listings in pages of `page`, and a client for it.
async fn fake(stacks: Vec<FakeStack>, page: usize) -> (HttpServer, aws_sdk_cloudformation::Client) {
    let stacks = Arc::new(stacks);
    let server = HttpServer::start(move |req| describe_stacks(&stacks, page, req)).await;
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let client = cloudformation_client(&sdk, Some(server.url()));
    (server, client)
}

#[tokio::test]
async fn a_named_stacks_output_is_read_with_one_query_request() {
    let (server, cfn) = fake(account(), 2).await;
    let arn = stack_output(&cfn, "stepops-dev", "AdminStateMachineArn")
        .await
        .unwrap();
    assert_eq!(arn, machine("stepops-dev-admin"));
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].form()["StackName"], "stepops-dev");
    assert!(!requests[0].form().contains_key("NextToken"));
}

#[tokio::test]
async fn listing_follows_next_token_through_every_page() {
    let (server, cfn) = fake(account(), 2).await;
    let found = stacks_with_output(&cfn, "StateMachineArn").await.unwrap();
    assert_eq!(
        found,
        vec![
            StackOutput {
                stack: "stepops-dev-feature-a".into(),
                value: machine("stepops-dev-feature-a-migrate")
            },
            StackOutput {
                stack: "stepops-prod".into(),
                value: machine("stepops-prod-migrate")
            },
            StackOutput {
                stack: "stepops-dev".into(),
                value: machine("stepops-dev-migrate")
            },
        ],
        "the default stack is on the third page"
    );
    let tokens: Vec<Option<String>> = server
        .requests()
        .iter()
        .map(|r| r.form().get("NextToken").cloned())
        .collect();
    assert_eq!(
        tokens,
        vec![None, Some("page-2".into()), Some("page-4".into())]
    );
}

#[tokio::test]
async fn the_state_machine_of_a_stack_must_carry_the_environment() {
    let (_server, cfn) = fake(account(), 2).await;
    let arn = state_machine_of_stack(&cfn, "stepops-dev", "StateMachineArn", "dev")
        .await
        .unwrap();
    assert_eq!(arn, machine("stepops-dev-migrate"));

    let err = state_machine_of_stack(&cfn, "stepops-prod", "StateMachineArn", "dev")
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::WrongEnvironment, "{err}");
    assert!(err.to_string().contains("stepops-prod-migrate"), "{err}");
}

#[tokio::test]
async fn a_missing_stack_is_not_found_and_the_stacks_with_the_output_are_named() {
    let (_server, cfn) = fake(account(), 2).await;
    let err = state_machine_of_stack(&cfn, "stepops-dev-typo", "StateMachineArn", "dev")
        .await
        .unwrap_err();
    assert!(matches!(err, SfnError::NotFound(_)), "{err:?}");
    assert_eq!(err.error_name(), ErrorName::NotFound);
    let text = err.to_string();
    assert!(text.contains("no stack stepops-dev-typo"), "{text}");
    assert!(
        text.contains("stepops-dev-feature-a, stepops-prod, stepops-dev"),
        "{text}"
    );

    let err = stack_output(&cfn, "network", "StateMachineArn")
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::NotFound);
    assert!(
        err.to_string().contains("has no output StateMachineArn"),
        "{err}"
    );
}

#[tokio::test]
async fn a_refused_request_keeps_the_services_code_and_message() {
    let server = HttpServer::start(|_| {
        error(
            403,
            "AccessDenied",
            "User is not authorized to perform: cloudformation:DescribeStacks",
        )
    })
    .await;
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let cfn = cloudformation_client(&sdk, Some(server.url()));
    let err = stack_output(&cfn, "stepops-dev", "StateMachineArn")
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::Unauthorized, "{err}");
    assert!(
        err.to_string().contains("cloudformation:DescribeStacks"),
        "{err}"
    );
}
