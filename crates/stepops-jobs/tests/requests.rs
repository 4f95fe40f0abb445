//! Requests refused with a named error (nothing is returned to run), and what a valid request
//! becomes: whole-argument substitution, defaults, the environment's secrets only.

use serde_json::{Value, json};
use stepops_error::{ErrorName, Named};
use stepops_jobs::{Catalog, JobError, JobRequest, SecretRef};

const ECHO: &str = r#"
name: echo
description: Prints its arguments.
environments: [dev]
parameters:
  message: {type: string, pattern: '[a-zA-Z ;|&$`()<>*?-]{1,40}'}
  count: {type: integer, minimum: 1, maximum: 10, default: 1}
  loud: {type: boolean, default: false}
  color: {type: string, enum: [red, blue], default: red}
  tag: {type: string, max_length: 8, default: x}
env:
  COUNT: "${count}"
secrets:
  TOKEN:
    dev: {secret: stepops/dev/echo-token}
command: [echo, "${message}", "${count}", "${loud}", "${color}", "${environment}"]
timeout_seconds: 60
heartbeat_seconds: 10
idempotent: true
"#;

fn catalog() -> Catalog {
    Catalog::from_files(vec![("echo.yaml".into(), ECHO.into())]).expect("the test catalog")
}

fn request(v: Value) -> Result<stepops_jobs::ValidatedJob, JobError> {
    let req = JobRequest::from_json(&v)?;
    catalog().validate(&req)
}

fn refused(v: Value, name: ErrorName, words: &str) {
    let err = request(v.clone()).expect_err(&format!("{v} must be refused"));
    assert_eq!(err.error_name(), name, "{v}: {err}");
    assert!(
        err.to_string().contains(words),
        "{v}: `{err}` should say `{words}`"
    );
}

#[test]
fn a_valid_request_substitutes_whole_arguments_and_fills_defaults() {
    let job = request(json!({"job": "echo", "environment": "dev",
        "params": {"message": "hi; rm -rf $HOME `id` | cat > x", "count": "3"}}))
    .unwrap();
    let step = &job.steps[0];
    assert_eq!(
        step.argv,
        [
            "echo",
            "hi; rm -rf $HOME `id` | cat > x",
            "3",
            "false",
            "red",
            "dev"
        ]
    );
    assert_eq!(step.env["COUNT"], "3");
    assert_eq!(
        step.secrets["TOKEN"],
        SecretRef::Secret("stepops/dev/echo-token".into())
    );
    assert_eq!(job.params["count"], json!(3));
    assert_eq!(job.concurrency_group, "dev/echo");
    assert_eq!(job.catalog_version, catalog().version());
    assert!(job.catalog_version.starts_with("sha256:"));
}

#[test]
fn bad_requests_are_refused_with_a_named_error() {
    use ErrorName::*;
    let ok = |extra: Value| {
        let mut p = json!({"message": "hi"});
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        json!({"job": "echo", "environment": "dev", "params": p})
    };
    // 1 unknown job
    refused(
        json!({"job": "nope", "environment": "dev"}),
        NotFound,
        "no job named `nope`",
    );
    // 2 job not allowed in the environment
    refused(
        json!({"job": "echo", "environment": "prod", "params": {"message": "a"}}),
        WrongEnvironment,
        "may run in `dev`, not in `prod`",
    );
    // 3 an environment that does not exist
    refused(
        json!({"job": "echo", "environment": "staging", "params": {"message": "a"}}),
        WrongEnvironment,
        "not in `staging`",
    );
    // 4 unknown parameter
    refused(
        ok(json!({"colour": "red"})),
        InvalidInput,
        "unknown parameter `colour`",
    );
    // 5 missing required parameter
    refused(
        json!({"job": "echo", "environment": "dev"}),
        InvalidInput,
        "missing required parameter `message`",
    );
    // 6 value not matching its pattern
    refused(
        ok(json!({"message": "digits 123"})),
        InvalidInput,
        "does not match its pattern",
    );
    // 7 integer below its minimum
    refused(ok(json!({"count": 0})), InvalidInput, "outside 1..=10");
    // 8 integer above its maximum (given as text, as the CLI does)
    refused(ok(json!({"count": "11"})), InvalidInput, "outside 1..=10");
    // 9 not a number
    refused(
        ok(json!({"count": "3; reboot"})),
        InvalidInput,
        "must be a whole number",
    );
    // 10 a fraction for an integer
    refused(ok(json!({"count": 1.5})), InvalidInput, "whole number");
    // 11 boolean that is not true/false
    refused(
        ok(json!({"loud": "yes"})),
        InvalidInput,
        "must be true or false",
    );
    // 12 enum value outside the list
    refused(
        ok(json!({"color": "green"})),
        InvalidInput,
        "not one of: red, blue",
    );
    // 13 wrong JSON type
    refused(
        ok(json!({"message": ["a"]})),
        InvalidInput,
        "must be a string, not",
    );
    // 14 over the parameter's max_length
    refused(
        ok(json!({"tag": "123456789"})),
        InvalidInput,
        "over its limit of 8",
    );
    // 15 a newline (control character) in a value
    refused(
        ok(json!({"message": "a\nb"})),
        InvalidInput,
        "control character",
    );
    // 16 a NUL byte
    refused(
        ok(json!({"tag": "a\u{0}"})),
        InvalidInput,
        "control character",
    );
    // 17 oversized request
    refused(
        ok(json!({"message": "a".repeat(40_000)})),
        InvalidInput,
        "over the limit of 32768",
    );
    // 18 unknown key in the request
    refused(
        json!({"job": "echo", "environment": "dev", "params": {"message": "a"}, "shell": true}),
        InvalidInput,
        "unknown field `shell`",
    );
    // 19 request without a job
    refused(
        json!({"environment": "dev"}),
        InvalidInput,
        "missing field `job`",
    );
    // 20 params not an object
    refused(
        json!({"job": "echo", "environment": "dev", "params": "message=a"}),
        InvalidInput,
        "invalid type",
    );
    // 21 too many parameters
    let many: serde_json::Map<String, Value> =
        (0..70).map(|i| (format!("p{i}"), json!("x"))).collect();
    refused(
        json!({"job": "echo", "environment": "dev", "params": many}),
        InvalidInput,
        "more than 64 parameters",
    );
    // 22 a value that only matches the pattern as a substring (patterns match the whole value)
    refused(
        ok(json!({"message": format!("{}", "a".repeat(41))})),
        InvalidInput,
        "does not match its pattern",
    );
}

#[test]
fn a_request_validated_against_another_catalog_is_refused() {
    let req = JobRequest::from_json(
        &json!({"job": "echo", "environment": "dev", "params": {"message": "a"}}),
    )
    .unwrap();
    let err = catalog().validate_at(&req, "sha256:0000").unwrap_err();
    assert_eq!(err.error_name(), ErrorName::Conflict);
    assert!(catalog().validate_at(&req, catalog().version()).is_ok());
}

#[test]
fn the_version_changes_with_any_byte_of_the_catalog() {
    let other =
        Catalog::from_files(vec![("echo.yaml".into(), ECHO.replace("Prints", "Echoes"))]).unwrap();
    assert_ne!(other.version(), catalog().version());
}
