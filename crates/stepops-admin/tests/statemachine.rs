//! Structural checks of `statemachine/admin.asl.json` against what this library implements
//! (the full run through the local engine comes with the Lambda binary and the template).

use std::collections::BTreeSet;

use serde_json::Value;

fn definition() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../statemachine/admin.asl.json"
    );
    let text = std::fs::read_to_string(path).expect("statemachine/admin.asl.json exists");
    serde_json::from_str(&text).expect("the definition is JSON")
}

fn states(def: &Value) -> &serde_json::Map<String, Value> {
    def["States"].as_object().unwrap()
}

#[test]
fn tasks_retry_only_transient_errors_and_every_failure_is_caught() {
    let def = definition();
    for (name, state) in states(&def) {
        if state["Type"] != "Task" {
            continue;
        }
        for retry in state["Retry"].as_array().expect("every Task retries") {
            assert_eq!(
                retry["ErrorEquals"],
                serde_json::json!(["Stepops.Transient"]),
                "{name}"
            );
        }
        let catches = state["Catch"].as_array().expect("every Task catches");
        assert!(
            catches
                .iter()
                .any(|c| c["ErrorEquals"] == serde_json::json!(["States.ALL"])),
            "{name} catches States.ALL"
        );
        assert!(
            state["TimeoutSeconds"].as_u64().is_some(),
            "{name} has a timeout"
        );
    }
}

#[test]
fn validate_then_run_then_notify_and_a_named_fail() {
    let def = definition();
    let s = states(&def);
    assert_eq!(def["StartAt"], "Validate");
    assert_eq!(s["Validate"]["Parameters"]["Payload"]["action"], "validate");
    assert_eq!(s["Validate"]["Next"], "RunTask");
    assert_eq!(s["RunTask"]["Parameters"]["Payload"]["action"], "run");
    assert_eq!(s["RunTask"]["Next"], "NotifySuccess");
    for failing in ["Validate", "RunTask"] {
        let next = s[failing]["Catch"][0]["Next"].as_str().unwrap();
        assert_eq!(
            s[next]["Next"], "NotifyFailure",
            "{failing} failures are notified"
        );
    }
    assert_eq!(s["NotifyFailure"]["Next"], "AdminTaskFailed");
    assert_eq!(s["NotifyFailure"]["Catch"][0]["Next"], "AdminTaskFailed");
    assert_eq!(s["AdminTaskFailed"]["Type"], "Fail");
    assert_eq!(s["AdminTaskFailed"]["ErrorPath"], "$.error.Error");
    // Every Next names a state.
    for (name, state) in s {
        if let Some(next) = state.get("Next").and_then(Value::as_str) {
            assert!(s.contains_key(next), "{name} → {next}");
        }
    }
}

#[test]
fn resources_are_placeholders() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../statemachine/admin.asl.json"
    ))
    .unwrap();
    let mut found = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("${") {
        let end = rest[i..].find('}').unwrap();
        found.insert(rest[i + 2..i + end].to_owned());
        rest = &rest[i + end..];
    }
    let want: BTreeSet<String> = ["AdminFunctionArn", "NotifyFunctionArn", "Environment"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(found, want);
    assert!(
        !text.contains("arn:aws:lambda:"),
        "no hard-coded function ARN"
    );
}
