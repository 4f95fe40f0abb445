//! Runs the AWS-recorded conformance cases that only exercise the data layer (Pass, Choice,
//! Succeed, Fail, intrinsic functions, Assign) through a tiny driver built on this crate.
//!
//! The whole corpus (Map, Parallel, Wait, Retry/Catch, …) is run by `stepops-asl`; this test keeps
//! the data layer honest on its own. The corpus is read in place from `$STEPOPS_ASL_CONFORMANCE`
//! (CI's `.ci/run` always sets it); unset, the test prints one line saying it was not run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use stepops_asl_data::choice::Rule;
use stepops_asl_data::path::{self, JsonPath};
use stepops_asl_data::{DataError, Scope, assign, template};

/// Features the driver runs; cases needing anything else belong to the interpreter's suite.
const DRIVER_FEATURES: &[&str] = &["Pass", "Choice", "Fail", "Succeed", "Intrinsic", "Assign"];

/// Cases inside the driver's features that test something outside the data layer.
const NOT_DATA_LAYER: &[(&str, &str)] = &[(
    "fail-error-start-large-input",
    "States.DataLimitExceeded on a state's 256 KB output is enforced by the interpreter",
)];

/// The corpus's folder, or `None` (after saying so) when `STEPOPS_ASL_CONFORMANCE` is unset.
fn corpus_dir() -> Option<PathBuf> {
    match std::env::var_os("STEPOPS_ASL_CONFORMANCE") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            eprintln!(
                "data-layer conformance: NOT RUN: STEPOPS_ASL_CONFORMANCE is unset (the \
                 AWS-recorded corpus is an extra suite; .ci/run sets it)"
            );
            None
        }
    }
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Outcome of one run: `{"status": "SUCCEEDED", "output": …}` or FAILED with error/cause.
fn run_definition(def: &Value, input: &Value) -> Value {
    let mut ctx = json!({
        "Execution": {
            "Id": "arn:aws:states:us-east-1:000000000000:execution:conformance:run-1",
            "Input": input,
            "Name": "run-1",
            "RoleArn": "arn:aws:iam::000000000000:role/conformance",
            "StartTime": "2025-01-01T00:00:00.000Z"
        },
        "StateMachine": {
            "Id": "arn:aws:states:us-east-1:000000000000:stateMachine:conformance",
            "Name": "conformance"
        },
        "State": {"Name": "", "EnteredTime": "2025-01-01T00:00:00.000Z", "RetryCount": 0}
    });
    let states = def["States"].as_object().expect("States");
    let mut current = def["StartAt"].as_str().expect("StartAt").to_owned();
    let mut data = input.clone();
    let mut vars: Map<String, Value> = Map::new();
    let mut event_id = 2u64;
    for _ in 0..1000 {
        let state = &states[&current];
        ctx["State"]["Name"] = json!(current);
        let step = run_state(state, &data, &ctx, &mut vars);
        match step {
            Err(e) => {
                let cause = if e.error.starts_with("States.") {
                    format!(
                        "An error occurred while executing the state '{current}' (entered at the event id #{event_id}). {}",
                        e.cause
                    )
                } else {
                    e.cause
                };
                let mut out = json!({"status": "FAILED", "error": e.error});
                if !cause.is_empty() {
                    out["cause"] = json!(cause);
                }
                return out;
            }
            Ok(Step::Fail { error, cause }) => {
                let mut out = json!({"status": "FAILED"});
                if let Some(e) = error {
                    out["error"] = json!(e);
                }
                if let Some(c) = cause {
                    out["cause"] = json!(c);
                }
                return out;
            }
            Ok(Step::Next(next, output)) => {
                data = output;
                match next {
                    Some(n) => current = n,
                    None => return json!({"status": "SUCCEEDED", "output": data}),
                }
            }
        }
        event_id += 2;
    }
    panic!("more than 1000 transitions")
}

enum Step {
    Next(Option<String>, Value),
    Fail {
        error: Option<String>,
        cause: Option<String>,
    },
}

/// `InputPath`/`OutputPath`: absent means `$`, null means `{}`.
fn select(state: &Value, field: &str, value: &Value, scope: &Scope) -> Result<Value, DataError> {
    match state.get(field) {
        None => Ok(value.clone()),
        Some(Value::Null) => Ok(json!({})),
        Some(Value::String(p)) => {
            let path = JsonPath::parse(p).map_err(|e| DataError::runtime(e.to_string()))?;
            path.select(&scope.with_input(value))
        }
        Some(other) => panic!("{field} must be a string or null, got {other}"),
    }
}

fn next_of(state: &Value) -> Option<String> {
    state.get("Next").and_then(Value::as_str).map(str::to_owned)
}

fn run_state(
    state: &Value,
    raw_input: &Value,
    ctx: &Value,
    vars: &mut Map<String, Value>,
) -> Result<Step, DataError> {
    let old_vars = vars.clone();
    let scope = Scope::new(raw_input, ctx, &old_vars);
    match state["Type"].as_str().expect("Type") {
        "Pass" => {
            let effective = select(state, "InputPath", raw_input, &scope)?;
            let scope_eff = scope.with_input(&effective);
            let mut result = match state.get("Parameters") {
                Some(t) => {
                    template::validate(t).map_err(DataError::runtime)?;
                    template::evaluate(t, &scope_eff)?
                }
                None => effective.clone(),
            };
            if let Some(r) = state.get("Result") {
                result = r.clone();
            }
            let new_vars = match state.get("Assign") {
                Some(a) => Some(assign::evaluate(a, &scope.with_input(&result))?),
                None => None,
            };
            let combined = match state.get("ResultPath") {
                None => result,
                Some(Value::Null) => raw_input.clone(),
                Some(Value::String(p)) => {
                    let path = JsonPath::parse(p).map_err(|e| DataError::runtime(e.to_string()))?;
                    path::write(raw_input.clone(), &path, result)?
                }
                Some(other) => panic!("ResultPath must be a string or null, got {other}"),
            };
            let output = select(state, "OutputPath", &combined, &scope)?;
            if let Some(nv) = new_vars {
                vars.extend(nv);
            }
            Ok(Step::Next(next_of(state), output))
        }
        "Choice" => {
            let effective = select(state, "InputPath", raw_input, &scope)?;
            let scope_eff = scope.with_input(&effective);
            let mut chosen: Option<(String, Option<Value>)> = None;
            for rule in state["Choices"].as_array().expect("Choices") {
                let rule = Rule::parse(rule, true).map_err(DataError::runtime)?;
                if rule.matches(&scope_eff)? {
                    chosen = Some((rule.next().unwrap().to_owned(), rule.assign().cloned()));
                    break;
                }
            }
            let (next, assign_block) = match chosen {
                Some(c) => c,
                None => match state.get("Default").and_then(Value::as_str) {
                    Some(d) => (d.to_owned(), state.get("Assign").cloned()),
                    None => {
                        return Err(DataError {
                            error: "States.NoChoiceMatched".into(),
                            cause: String::new(),
                        });
                    }
                },
            };
            if let Some(a) = assign_block {
                vars.extend(assign::evaluate(&a, &scope_eff)?);
            }
            let output = select(state, "OutputPath", &effective, &scope)?;
            Ok(Step::Next(Some(next), output))
        }
        "Succeed" => {
            let effective = select(state, "InputPath", raw_input, &scope)?;
            let output = select(state, "OutputPath", &effective, &scope)?;
            Ok(Step::Next(None, output))
        }
        "Fail" => {
            let field = |lit: &str, dynamic: &str| -> Result<Option<String>, DataError> {
                if let Some(v) = state.get(lit) {
                    return Ok(v.as_str().map(str::to_owned));
                }
                let Some(Value::String(expr)) = state.get(dynamic) else {
                    return Ok(None);
                };
                // ErrorPath/CausePath: a path or an intrinsic call, named in causes.
                let v = template::evaluate_dynamic(dynamic, &Value::String(expr.clone()), &scope)?;
                Ok(Some(match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                }))
            };
            let error = field("Error", "ErrorPath")?;
            let cause = field("Cause", "CausePath")?;
            Ok(Step::Fail { error, cause })
        }
        other => panic!("the conformance driver does not run {other} states"),
    }
}

/// Compares by JSON value (numbers by value); strings in `expected` may hold `<name:N>` tokens
/// masked by the recording tools, which match anything.
fn same(expected: &Value, actual: &Value, placeholders: bool) -> bool {
    match (expected, actual) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(e), Value::String(a)) if placeholders => {
            let token = regex::Regex::new(r"<[a-z-]+:\d+>").unwrap();
            let mut pattern = String::from("^");
            let mut last = 0;
            for m in token.find_iter(e) {
                pattern.push_str(&regex::escape(&e[last..m.start()]));
                pattern.push_str("(?s:.*)");
                last = m.end();
            }
            pattern.push_str(&regex::escape(&e[last..]));
            pattern.push('$');
            regex::Regex::new(&pattern).unwrap().is_match(a)
        }
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(x, y)| same(x, y, placeholders))
        }
        (Value::Object(e), Value::Object(a)) => {
            e.len() == a.len()
                && e.iter()
                    .all(|(k, v)| a.get(k).is_some_and(|w| same(v, w, placeholders)))
        }
        _ => expected == actual,
    }
}

#[test]
fn data_layer_conformance() {
    let Some(dir) = corpus_dir() else { return };
    let index_path = dir.join("index.json");
    assert!(
        index_path.is_file(),
        "the ASL conformance corpus is missing: expected {} (STEPOPS_ASL_CONFORMANCE must name the corpus's folder)",
        index_path.display()
    );
    let index = read_json(&index_path);
    let mut ran: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut skipped_by_list = 0;
    for case in index.as_array().expect("index.json is an array") {
        let name = case["name"].as_str().unwrap();
        let features: Vec<&str> = case["features"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if !features.iter().all(|f| DRIVER_FEATURES.contains(f)) {
            continue;
        }
        if NOT_DATA_LAYER.iter().any(|(n, _)| *n == name) {
            skipped_by_list += 1;
            continue;
        }
        let case_dir = dir.join(name);
        let def = read_json(&case_dir.join("definition.asl.json"));
        let input = read_json(&case_dir.join("input.json"));
        let mut expected = read_json(&case_dir.join("expected.json"));
        let placeholders = expected
            .as_object_mut()
            .and_then(|m| m.remove("placeholders"))
            .is_some_and(|p| p == json!(true));
        let actual = run_definition(&def, &input);
        let area = case["area"].as_str().unwrap().to_owned();
        let entry = ran.entry(area).or_default();
        entry.1 += 1;
        if same(&expected, &actual, placeholders) {
            entry.0 += 1;
        } else {
            failures.push(format!(
                "{name}\n  expected: {expected}\n  actual:   {actual}"
            ));
        }
    }
    let summary: Vec<String> = ran
        .iter()
        .map(|(area, (ok, all))| format!("{area}: {ok}/{all}"))
        .collect();
    println!(
        "data-layer conformance: {} (out of data-layer scope: {skipped_by_list})",
        summary.join(", ")
    );
    let total: usize = ran.values().map(|v| v.1).sum();
    assert!(
        total > 600,
        "only {total} cases ran: is the corpus complete?"
    );
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
