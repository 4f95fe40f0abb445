//! The interpreter's behaviour, rule by rule, as AWS Step Functions behaves (JSONPath mode).
//!
//! Each case is a short definition, an input and the expected outcome (output, or error and
//! cause word for word), with the rule it proves. The facts come from executions recorded on
//! AWS (the optional conformance corpus, docs/asl.md "Conformance"); the cases are written here
//! so that a clone of the repository covers the engine's behaviour on its own. Operator-by-type
//! matrices of Choice and the intrinsic functions' values are in
//! `crates/stepops-asl-data/tests/behaviour.rs`; here everything runs through `stepops_asl::run`.

mod common;

use std::sync::Arc;

use serde_json::{Value, json};
use stepops_asl::{Definition, ExecutionResult};

/// What an execution must end with.
enum Expect {
    Output(Value),
    /// FAILED with this error and cause (`None`: AWS reports none).
    Failed(Option<&'static str>, Option<String>),
}

/// One case: the rule it proves, a definition, an input, the expected outcome.
struct Case {
    rule: &'static str,
    definition: Value,
    input: Value,
    expect: Expect,
}

fn ok(rule: &'static str, definition: Value, input: Value, output: Value) -> Case {
    Case {
        rule,
        definition,
        input,
        expect: Expect::Output(output),
    }
}

fn fails(
    rule: &'static str,
    definition: Value,
    input: Value,
    error: Option<&'static str>,
    cause: Option<String>,
) -> Case {
    Case {
        rule,
        definition,
        input,
        expect: Expect::Failed(error, cause),
    }
}

/// A machine of one state named `S`.
fn one(state: Value) -> Value {
    json!({"StartAt": "S", "States": {"S": state}})
}

/// A machine of one Pass state with these `Parameters`.
fn params(parameters: Value) -> Value {
    one(json!({"Type": "Pass", "Parameters": parameters, "End": true}))
}

/// The cause of a `States.Runtime` error raised by `state`, entered at event `id`.
fn runtime(state: &str, id: u32, text: &str) -> Option<String> {
    Some(format!(
        "An error occurred while executing the state '{state}' (entered at the event id #{id}). {text}"
    ))
}

/// A Map `S` over `$.Items` whose items run `processor` (`INLINE` or `DISTRIBUTED`), with
/// `extra` fields merged in.
fn map_over_items(mode: &str, processor: Value, extra: Value) -> Value {
    let mut state = json!({
        "Type": "Map",
        "ItemsPath": "$.Items",
        "ItemProcessor": processor,
        "End": true
    });
    state["ItemProcessor"]["ProcessorConfig"] = json!({"Mode": mode, "ExecutionType": "STANDARD"});
    for (k, v) in extra.as_object().expect("extra fields are an object") {
        state[k] = v.clone();
    }
    one(state)
}

/// An item processor whose only state passes its input through.
fn pass_through() -> Value {
    json!({"StartAt": "Item", "States": {"Item": {"Type": "Pass", "End": true}}})
}

/// An item processor that fails with `Boom` / `item 3 failed` for the item 3 and passes the others.
fn fails_on_three() -> Value {
    json!({"StartAt": "Check", "States": {
        "Check": {"Type": "Choice", "Choices": [
            {"Variable": "$", "NumericEquals": 3, "Next": "Boom"}], "Default": "Fine"},
        "Boom": {"Type": "Fail", "Error": "Boom", "Cause": "item 3 failed"},
        "Fine": {"Type": "Pass", "End": true}}})
}

async fn execute(definition: &Value, input: Value) -> (ExecutionResult, Arc<common::MemStore>) {
    let def = Definition::parse(&definition.to_string())
        .unwrap_or_else(|e| panic!("the definition does not load: {e}\n{definition}"));
    let store = Arc::new(common::MemStore::default());
    let result = common::run_untimed(def, "behaviour", input, store.clone()).await;
    (result, store)
}

/// Runs every case and fails with the list of those whose outcome differs.
async fn check(cases: Vec<Case>) {
    let total = cases.len();
    let mut wrong = Vec::new();
    for case in cases {
        let (result, _) = execute(&case.definition, case.input).await;
        let expected = match case.expect {
            Expect::Output(output) => ExecutionResult::Succeeded { output },
            Expect::Failed(error, cause) => ExecutionResult::Failed {
                error: error.map(str::to_owned),
                cause,
            },
        };
        if result != expected {
            wrong.push(format!(
                "{}\n    expected {expected:?}\n    actual   {result:?}",
                case.rule
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {total} cases differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[tokio::test]
async fn pass_paths_and_templates() {
    let items: Vec<Value> = (0..=10).map(|i| json!({"item_key": i})).collect();
    let mut escaped_key_input = json!({});
    escaped_key_input[r#"Test\""Name""#] = json!(r#"Value"\"#);
    check(vec![
        ok(
            "Pass: Result replaces the input",
            one(json!({"Type": "Pass", "Result": {"Arg1": "argument1"}, "End": true})),
            json!({"dropped": true}),
            json!({"Arg1": "argument1"}),
        ),
        ok(
            "Pass: keys ending in .$ inside Result are plain data, not paths",
            one(json!({"Type": "Pass", "Result": {"a.$": "$.jsonpath", "b.$": "$$"}, "End": true})),
            json!({}),
            json!({"a.$": "$.jsonpath", "b.$": "$$"}),
        ),
        ok(
            "Pass: without Parameters or Result the output is the input",
            one(json!({"Type": "Pass", "End": true})),
            json!({"k": [1, 2]}),
            json!({"k": [1, 2]}),
        ),
        ok(
            "top level: QueryLanguage JSONPath and Version 1.0 are accepted",
            json!({"QueryLanguage": "JSONPath", "Version": "1.0", "StartAt": "S",
                   "States": {"S": {"Type": "Pass", "End": true}}}),
            json!({}),
            json!({}),
        ),
        ok(
            "Parameters: a key named Comment is data, kept like any other",
            params(json!({"Comment": "Comment text", "comment": "c", "constant": "k"})),
            json!({}),
            json!({"Comment": "Comment text", "comment": "c", "constant": "k"}),
        ),
        ok(
            "InputPath null: the state sees {}; OutputPath null: it emits {}",
            json!({"StartAt": "A", "States": {
                "A": {"Type": "Pass", "Parameters": {"Arg1": "a", "FromInput.$": "$"}, "Next": "B"},
                "B": {"Type": "Pass", "InputPath": null,
                      "Parameters": {"Arg2": "b", "FromInput.$": "$"}, "Next": "C"},
                "C": {"Type": "Pass", "OutputPath": null, "End": true}}}),
            json!({"InputValue": 0}),
            json!({}),
        ),
        ok(
            "InputPath null alone: Parameters see an empty object",
            one(json!({"Type": "Pass", "InputPath": null,
                       "Parameters": {"FromInput.$": "$"}, "End": true})),
            json!({"InputValue": 0}),
            json!({"FromInput": {}}),
        ),
        ok(
            "InputPath may read the context object: $$.Execution.Input",
            json!({"StartAt": "A", "States": {
                "A": {"Type": "Pass", "Result": "other", "Next": "B"},
                "B": {"Type": "Pass", "InputPath": "$$.Execution.Input", "End": true}}}),
            json!({"input-value": 0}),
            json!({"input-value": 0}),
        ),
        ok(
            "OutputPath may read the context object: $$.Execution.Input",
            one(json!({"Type": "Pass", "Result": "other", "OutputPath": "$$.Execution.Input",
                       "End": true})),
            json!({"input-value": 0}),
            json!({"input-value": 0}),
        ),
        ok(
            "ResultPath writes the result into the input at that path",
            one(json!({"Type": "Pass", "Result": [1, 2], "ResultPath": "$.arr", "End": true})),
            json!({"keep": true}),
            json!({"keep": true, "arr": [1, 2]}),
        ),
        ok(
            "ResultPath null discards the result and keeps the input",
            one(json!({"Type": "Pass", "Result": [1, 2], "ResultPath": null, "End": true})),
            json!({"keep": true}),
            json!({"keep": true}),
        ),
        ok(
            "InputPath, Parameters, ResultPath and OutputPath apply in that order",
            one(json!({"Type": "Pass", "InputPath": "$.in", "Parameters": {"v.$": "$.x"},
                       "ResultPath": "$.out", "OutputPath": "$.out", "End": true})),
            json!({"in": {"x": 7}, "other": 1}),
            json!({"v": 7}),
        ),
        ok(
            "JSONPath: [0] picks the first element of an array",
            params(json!({"item.$": "$.items[0]"})),
            json!({"items": items}),
            json!({"item": {"item_key": 0}}),
        ),
        ok(
            "JSONPath: [10] picks the eleventh element",
            params(json!({"item.$": "$.items[10]"})),
            json!({"items": items}),
            json!({"item": {"item_key": 10}}),
        ),
        ok(
            "JSONPath: a filter [?(@.status == 0)] returns the matching elements as a list",
            params(json!({"FromInput.$": "$.users[?(@.status == 0)]"})),
            json!({"users": [{"year": 1997, "status": 0}, {"year": 1998, "status": 1}]}),
            json!({"FromInput": [{"year": 1997, "status": 0}]}),
        ),
        ok(
            "JSONPath: $[*] over an empty object is an empty list, not an error",
            params(json!({"item.$": "$[*]"})),
            json!({}),
            json!({"item": []}),
        ),
        ok(
            "JSONPath: a wildcard over a missing array is an empty list",
            params(json!({"a.$": "$.items[*]", "b.$": "$.items[*].itemValue",
                          "c.$": "$.item.items[*]"})),
            json!({}),
            json!({"a": [], "b": [], "c": []}),
        ),
        ok(
            "JSONPath: slices [1:], [:1], [1:5] over a missing array are empty lists",
            params(json!({"a.$": "$.items[1:]", "b.$": "$.items[:1]", "c.$": "$.item.items[1:5]",
                          "d.$": "$.items[1:].itemValue", "e.$": "$.item.items[1:5].itemValue"})),
            json!({}),
            json!({"a": [], "b": [], "c": [], "d": [], "e": []}),
        ),
        ok(
            "JSONPath: a bracketed name may hold quotes and a backslash",
            params(json!({"value.$": r#"$['Test\""Name"']"#})),
            escaped_key_input,
            json!({"value": r#"Value"\"#}),
        ),
        ok(
            "string literals keep quotes, backslashes, control characters and emoji verbatim",
            params(json!({"q": "'", "dq": "\"", "esc": "An escaped quote: \\\"hello\\\"",
                          "bs": "Backslash \\\\ in string", "ws": "Line1\nLine2\tTabbed",
                          "emoji": "\u{1F197}"})),
            json!({}),
            json!({"q": "'", "dq": "\"", "esc": "An escaped quote: \\\"hello\\\"",
                   "bs": "Backslash \\\\ in string", "ws": "Line1\nLine2\tTabbed",
                   "emoji": "\u{1F197}"}),
        ),
        ok(
            "Parameters: a .$ key reads the context object",
            params(json!({"value.$": "$$.Execution.Input.k"})),
            json!({"k": "v"}),
            json!({"value": "v"}),
        ),
        fails(
            "Parameters: a .$ path that matches nothing is States.Runtime naming path, field and input",
            params(json!({"value.$": "$.no_such_jsonpath"})),
            json!({"int-literal": 0}),
            Some("States.Runtime"),
            runtime(
                "S",
                2,
                "The JSONPath '$.no_such_jsonpath' specified for the field 'value.$' could not be found in the input '{\"int-literal\":0}'",
            ),
        ),
        fails(
            "Parameters: a missing $$ path fails the same way",
            params(json!({"value.$": "$$.Execution.Input.no_such_jsonpath"})),
            json!({"int-literal": 0}),
            Some("States.Runtime"),
            runtime(
                "S",
                2,
                "The JSONPath '$$.Execution.Input.no_such_jsonpath' specified for the field 'value.$' could not be found in the input '{\"int-literal\":0}'",
            ),
        ),
        fails(
            "InputPath that matches nothing: 'Invalid path … : No results for path'",
            one(json!({"Type": "Pass", "InputPath": "$.NoSuchInputPath", "End": true})),
            json!({"int-literal": 0}),
            Some("States.Runtime"),
            runtime(
                "S",
                2,
                "Invalid path '$.NoSuchInputPath' : No results for path: $['NoSuchInputPath']",
            ),
        ),
        fails(
            "OutputPath that matches nothing: 'Invalid path … : No results for path'",
            one(json!({"Type": "Pass", "OutputPath": "$.NoSuchOutputPath", "End": true})),
            json!({"int-literal": 0}),
            Some("States.Runtime"),
            runtime(
                "S",
                2,
                "Invalid path '$.NoSuchOutputPath' : No results for path: $['NoSuchOutputPath']",
            ),
        ),
        fails(
            "event ids: the second state is entered at event #4",
            json!({"StartAt": "A", "States": {
                "A": {"Type": "Pass", "Next": "B"},
                "B": {"Type": "Pass", "OutputPath": "$.missing", "End": true}}}),
            json!({}),
            Some("States.Runtime"),
            runtime("B", 4, "Invalid path '$.missing' : No results for path: $['missing']"),
        ),
        fails(
            "a state output over 256 KiB is States.DataLimitExceeded, named for the state",
            json!({"StartAt": "Big", "States": {"Big": {"Type": "Pass",
                "Result": {"Arg1": "a".repeat(262_144)}, "End": true}}}),
            json!({}),
            Some("States.DataLimitExceeded"),
            Some(
                "The state/task 'Big' returned a result with a size exceeding the maximum number of bytes service limit."
                    .into(),
            ),
        ),
    ])
    .await;
}

#[tokio::test]
async fn fail_states() {
    check(vec![
        fails(
            "Fail: Error and Cause are the execution's error and cause",
            one(json!({"Type": "Fail", "Error": "SomeFailure", "Cause": "It failed."})),
            json!({}),
            Some("SomeFailure"),
            Some("It failed.".into()),
        ),
        fails(
            "Fail without Error or Cause: the execution fails with neither",
            one(json!({"Type": "Fail"})),
            json!({}),
            None,
            None,
        ),
        fails(
            "Fail: ErrorPath and CausePath read the input",
            one(json!({"Type": "Fail", "ErrorPath": "$.Error", "CausePath": "$.Cause"})),
            json!({"Error": "error string", "Cause": "cause string"}),
            Some("error string"),
            Some("cause string".into()),
        ),
        fails(
            "Fail: ErrorPath and CausePath may be intrinsic calls",
            one(json!({"Type": "Fail", "ErrorPath": "States.Format('{}', $.Error)",
                "CausePath": "States.Format('Custom message for {}, caused by {}.', $.Error, $.Cause)"})),
            json!({"Error": "error string", "Cause": "cause string"}),
            Some("error string"),
            Some("Custom message for error string, caused by cause string.".into()),
        ),
        fails(
            "Fail: ErrorPath and CausePath may read variables",
            json!({"StartAt": "P", "States": {
                "P": {"Type": "Pass", "Assign": {"e": "Exception", "c": "An Exception was encountered"},
                      "Next": "F"},
                "F": {"Type": "Fail", "ErrorPath": "$e", "CausePath": "$c"}}}),
            json!({}),
            Some("Exception"),
            Some("An Exception was encountered".into()),
        ),
        fails(
            "Fail: an ErrorPath that matches nothing is States.Runtime naming the field and the input",
            json!({"StartAt": "P", "States": {
                "P": {"Type": "Pass", "Parameters": {"Error": "error-value"}, "Next": "F"},
                "F": {"Type": "Fail", "ErrorPath": "$.ErrorX"}}}),
            json!({"int-literal": 0}),
            Some("States.Runtime"),
            runtime(
                "F",
                4,
                "The JSONPath '$.ErrorX' specified for the field 'ErrorPath' could not be found in the input '{\"Error\":\"error-value\"}'",
            ),
        ),
        fails(
            "Fail: a CausePath that matches nothing is States.Runtime for CausePath",
            json!({"StartAt": "P", "States": {
                "P": {"Type": "Pass", "Parameters": {"Error": "error-value"}, "Next": "F"},
                "F": {"Type": "Fail", "ErrorPath": "$.Error", "CausePath": "$.NoSuchCausePath"}}}),
            json!({"int-literal": 0}),
            Some("States.Runtime"),
            runtime(
                "F",
                4,
                "The JSONPath '$.NoSuchCausePath' specified for the field 'CausePath' could not be found in the input '{\"Error\":\"error-value\"}'",
            ),
        ),
    ])
    .await;
}

#[tokio::test]
async fn wait_states() {
    let seconds_path =
        || one(json!({"Type": "Wait", "SecondsPath": "$.input.waitSeconds", "End": true}));
    let timestamp_path = || one(json!({"Type": "Wait", "TimestampPath": "$.t", "End": true}));
    let bad_timestamp = |t: &str| {
        runtime(
            "S",
            2,
            &format!(
                "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: $.t == {t}"
            ),
        )
    };
    check(vec![
        ok(
            "Wait: SecondsPath 0 is valid and the input passes through",
            seconds_path(),
            json!({"input": {"waitSeconds": 0}}),
            json!({"input": {"waitSeconds": 0}}),
        ),
        ok(
            "Wait: SecondsPath 1 is valid",
            seconds_path(),
            json!({"input": {"waitSeconds": 1}}),
            json!({"input": {"waitSeconds": 1}}),
        ),
        fails(
            "Wait: a fractional SecondsPath cannot be parsed as a long",
            seconds_path(),
            json!({"input": {"waitSeconds": 1.5}}),
            Some("States.Runtime"),
            runtime(
                "S",
                2,
                "The SecondsPath parameter cannot be parsed as a long value: $.input.waitSeconds == 1.5",
            ),
        ),
        fails(
            "Wait: a negative fractional SecondsPath is also not a long",
            seconds_path(),
            json!({"input": {"waitSeconds": -1.5}}),
            Some("States.Runtime"),
            runtime(
                "S",
                2,
                "The SecondsPath parameter cannot be parsed as a long value: $.input.waitSeconds == -1.5",
            ),
        ),
        fails(
            "Wait: a negative SecondsPath is refused",
            seconds_path(),
            json!({"input": {"waitSeconds": -1}}),
            Some("States.Runtime"),
            runtime(
                "S",
                2,
                "The SecondsPath parameter references a negative value: $.input.waitSeconds == -1",
            ),
        ),
        ok(
            "Wait: a Timestamp in the past with nanoseconds ends at once",
            one(json!({"Type": "Wait", "Timestamp": "2016-03-05T21:29:29.243167252Z", "End": true})),
            json!({}),
            json!({}),
        ),
        ok(
            "Wait: TimestampPath with whole seconds and Z",
            timestamp_path(),
            json!({"t": "2016-03-14T01:59:00Z"}),
            json!({"t": "2016-03-14T01:59:00Z"}),
        ),
        ok(
            "Wait: TimestampPath with nanoseconds",
            timestamp_path(),
            json!({"t": "2016-03-05T21:29:29.243167252Z"}),
            json!({"t": "2016-03-05T21:29:29.243167252Z"}),
        ),
        ok(
            "Wait: TimestampPath with .00Z and .000000Z fractions",
            json!({"StartAt": "A", "States": {
                "A": {"Type": "Wait", "TimestampPath": "$.a", "Next": "B"},
                "B": {"Type": "Wait", "TimestampPath": "$.b", "End": true}}}),
            json!({"a": "2023-12-13T07:10:01.00Z", "b": "2023-12-13T07:09:46.000000Z"}),
            json!({"a": "2023-12-13T07:10:01.00Z", "b": "2023-12-13T07:09:46.000000Z"}),
        ),
        fails(
            "Wait: TimestampPath without a zone is refused",
            timestamp_path(),
            json!({"t": "2016-12-05T21:29:29"}),
            Some("States.Runtime"),
            bad_timestamp("2016-12-05T21:29:29"),
        ),
        fails(
            "Wait: TimestampPath with a fraction but no zone is refused",
            timestamp_path(),
            json!({"t": "2023-12-13T07:10:32.000000"}),
            Some("States.Runtime"),
            bad_timestamp("2023-12-13T07:10:32.000000"),
        ),
        fails(
            "Wait: TimestampPath with a space instead of T is refused",
            timestamp_path(),
            json!({"t": "2016-12-05 21:29:29Z"}),
            Some("States.Runtime"),
            bad_timestamp("2016-12-05 21:29:29Z"),
        ),
        fails(
            "Wait: TimestampPath with month 13 is refused",
            timestamp_path(),
            json!({"t": "2016-13-05T21:29:29Z"}),
            Some("States.Runtime"),
            bad_timestamp("2016-13-05T21:29:29Z"),
        ),
        fails(
            "Wait: TimestampPath with hour 25 is refused",
            timestamp_path(),
            json!({"t": "2016-12-05T25:29:29Z"}),
            Some("States.Runtime"),
            bad_timestamp("2016-12-05T25:29:29Z"),
        ),
        fails(
            "Wait: TimestampPath in day-month-year order is refused",
            timestamp_path(),
            json!({"t": "05-12-2016T21:29:29Z"}),
            Some("States.Runtime"),
            bad_timestamp("05-12-2016T21:29:29Z"),
        ),
    ])
    .await;
}

#[tokio::test]
async fn choice_states() {
    // The Choice state `S` goes to Yes (output "yes") on the rule, else to No (output "no").
    let choose = |rule: Value| {
        let mut rule = rule;
        rule["Next"] = json!("Yes");
        json!({"StartAt": "S", "States": {
            "S": {"Type": "Choice", "Choices": [rule], "Default": "No"},
            "Yes": {"Type": "Pass", "Result": "yes", "End": true},
            "No": {"Type": "Pass", "Result": "no", "End": true}}})
    };
    let docs_example = json!({"StartAt": "X", "States": {
        "X": {"Type": "Choice", "Choices": [
            {"Not": {"Variable": "$.type", "StringEquals": "Private"}, "Next": "Public"},
            {"Variable": "$.value", "NumericEquals": 0, "Next": "Zero"},
            {"And": [{"Variable": "$.value", "NumericGreaterThanEquals": 20},
                     {"Variable": "$.value", "NumericLessThan": 30}], "Next": "Twenties"}],
            "Default": "Other"},
        "Public": {"Type": "Pass", "Result": "Public", "End": true},
        "Zero": {"Type": "Pass", "Result": "Zero", "End": true},
        "Twenties": {"Type": "Pass", "Result": "Twenties", "End": true},
        "Other": {"Type": "Fail", "Cause": "No Matches!"}}});
    let unsorted = json!({"StartAt": "S", "States": {
        "S": {"Choices": [
            {"BooleanEquals": true, "Next": "T", "Variable": "$.done"},
            {"BooleanEquals": false, "Next": "F", "Variable": "$.done"}], "Type": "Choice"},
        "T": {"End": true, "Type": "Pass", "Result": "T"},
        "F": {"End": true, "Type": "Pass", "Result": "F"}}});
    check(vec![
        ok(
            "Choice: And of two comparisons: the AWS documentation example sends 22 to Twenties",
            docs_example.clone(),
            json!({"type": "Private", "value": 22}),
            json!("Twenties"),
        ),
        ok(
            "Choice: Not matches when its rule does not",
            docs_example.clone(),
            json!({"type": "Public", "value": 22}),
            json!("Public"),
        ),
        ok(
            "Choice: rules are tried in order; the first match wins",
            docs_example.clone(),
            json!({"type": "Private", "value": 0}),
            json!("Zero"),
        ),
        fails(
            "Choice: no match goes to Default (here a Fail with only a Cause)",
            docs_example,
            json!({"type": "Private", "value": 35}),
            None,
            Some("No Matches!".into()),
        ),
        ok(
            "Choice: the order of a rule's fields does not matter (true)",
            unsorted.clone(),
            json!({"done": true}),
            json!("T"),
        ),
        ok(
            "Choice: the order of a rule's fields does not matter (false)",
            unsorted,
            json!({"done": false}),
            json!("F"),
        ),
        ok(
            "Choice: the output of a Choice state is its input",
            json!({"StartAt": "S", "States": {
                "S": {"Type": "Choice", "Choices": [
                    {"Variable": "$.v", "NumericEquals": 1, "Next": "E"}], "Default": "E"},
                "E": {"Type": "Succeed"}}}),
            json!({"v": 1, "other": [true]}),
            json!({"v": 1, "other": [true]}),
        ),
        ok(
            "Choice: Variable may read the context object",
            choose(json!({"Variable": "$$.Execution.Input.input-value", "NumericLessThanEquals": 0})),
            json!({"input-value": 0}),
            json!("yes"),
        ),
        ok(
            "Choice: Variable and …Path may read variables",
            json!({"StartAt": "Setup", "States": {
                "Setup": {"Type": "Pass", "Assign": {"guess": "g", "answer": "a"}, "Next": "Check"},
                "Check": {"Type": "Choice", "Choices": [
                    {"Variable": "$guess", "StringEqualsPath": "$answer", "Next": "Right"}],
                    "Default": "Wrong"},
                "Right": {"Type": "Pass", "Result": {"state": "CORRECT"}, "End": true},
                "Wrong": {"Type": "Pass", "Assign": {"guess.$": "$answer"},
                          "Result": {"state": "WRONG"}, "Next": "Check"}}}),
            json!({}),
            json!({"state": "CORRECT"}),
        ),
        ok(
            "Choice: And of IsPresent, IsNumeric and NumericEquals on $ itself",
            choose(json!({"And": [{"IsPresent": true, "Variable": "$"},
                {"And": [{"IsNumeric": true, "Variable": "$"}, {"NumericEquals": 3, "Variable": "$"}]}]})),
            json!(3),
            json!("yes"),
        ),
        ok(
            "Choice: Or matches when any rule does",
            choose(json!({"Or": [{"Variable": "$.v", "StringEquals": "x"},
                                 {"Variable": "$.v", "NumericEquals": 2}]})),
            json!({"v": 2}),
            json!("yes"),
        ),
        ok(
            "Choice: NumericEquals on a string never matches",
            choose(json!({"Variable": "$.v", "NumericEquals": 42})),
            json!({"v": "42"}),
            json!("no"),
        ),
        ok(
            "Choice: NumericEqualsPath compares 1 and 1.0 equal",
            choose(json!({"Variable": "$.v", "NumericEqualsPath": "$.w"})),
            json!({"v": 1, "w": 1.0}),
            json!("yes"),
        ),
        ok(
            "Choice: IsNull on a null field",
            choose(json!({"Variable": "$.v", "IsNull": true})),
            json!({"v": null}),
            json!("yes"),
        ),
        ok(
            "Choice: IsPresent true on a field holding null",
            choose(json!({"Variable": "$.v", "IsPresent": true})),
            json!({"v": null}),
            json!("yes"),
        ),
        ok(
            "Choice: IsPresent false on a missing field",
            choose(json!({"Variable": "$.v", "IsPresent": false})),
            json!({}),
            json!("yes"),
        ),
        ok(
            "Choice: TimestampLessThanPath between two timestamps",
            choose(json!({"Variable": "$.v", "TimestampLessThanPath": "$.w"})),
            json!({"v": "2012-10-09T19:00:55Z", "w": "2012-10-09T19:00:56Z"}),
            json!("yes"),
        ),
        ok(
            "Choice: StringEquals does not trim whitespace",
            choose(json!({"Variable": "$.v", "StringEquals": "     "})),
            json!({"v": " "}),
            json!("no"),
        ),
        ok(
            "Choice: BooleanEqualsPath false == false",
            choose(json!({"Variable": "$.v", "BooleanEqualsPath": "$.w"})),
            json!({"v": false, "w": false}),
            json!("yes"),
        ),
        fails(
            "Choice: no rule matching and no Default is States.NoChoiceMatched (cause in stepops's words)",
            json!({"StartAt": "S", "States": {
                "S": {"Type": "Choice", "Choices": [
                    {"Variable": "$.v", "NumericEquals": 1, "Next": "E"}]},
                "E": {"Type": "Succeed"}}}),
            json!({"v": 2}),
            Some("States.NoChoiceMatched"),
            Some(
                "An error occurred while executing the state 'S' (entered at the event id #2). No Matches!"
                    .into(),
            ),
        ),
    ])
    .await;
}

#[tokio::test]
async fn intrinsic_functions_in_states() {
    check(vec![
        ok(
            "intrinsic: States.Array() is an empty list",
            params(json!({"r.$": "States.Array()"})),
            json!({}),
            json!({"r": []}),
        ),
        ok(
            "intrinsic: a call nested as an argument, and $$ as an argument (JsonMerge shallow)",
            json!({"StartAt": "S", "States": {"S": {"Type": "Pass", "ResultPath": "$.rp",
                "Parameters": {"merged.$":
                    "States.JsonMerge(States.StringToJson('{\"constant_in_literal\": \"false\"}'), $$.Execution.Input.input_field, false)"},
                "OutputPath": "$.rp.merged", "End": true}}}),
            json!({"input_field": {"constant_input_field": "constant_value"}}),
            json!({"constant_input_field": "constant_value", "constant_in_literal": "false"}),
        ),
        ok(
            "intrinsic: a literal with an escaped newline splits on newlines",
            params(json!({"r.$": "States.StringSplit('Hello\nWorld', '\n')"})),
            json!({}),
            json!({"r": ["Hello", "World"]}),
        ),
        ok(
            "intrinsic: StringSplit on $$.Execution.Input keeps newlines and drops empty pieces",
            params(json!({"r.$": "States.StringSplit($$.Execution.Input.s, ',')"})),
            json!({"s": "V1,V2\nV3,,,\ntrue,'Hi'\n"}),
            json!({"r": ["V1", "V2\nV3", "\ntrue", "'Hi'\n"]}),
        ),
        ok(
            "intrinsic: every function reads variables as arguments",
            json!({"StartAt": "A", "States": {
                "A": {"Type": "Pass", "Assign": {"raw": "Hello World", "enc": "SGVsbG8gV29ybGQ=",
                    "h": "Hash this string", "j1": {"a": 1, "b": 2}, "j2": {"c": 3, "d": 4},
                    "js": "{\"key\":\"value\"}", "jo": {"test": "object"}, "v1": 5, "v2": 3,
                    "csv": "a,b,c,d,e", "name": "John", "place": "Home"}, "Next": "B"},
                "B": {"Type": "Pass", "Parameters": {
                    "encoded.$": "States.Base64Encode($raw)",
                    "decoded.$": "States.Base64Decode($enc)",
                    "hash.$": "States.Hash($h, 'SHA-256')",
                    "merged.$": "States.JsonMerge($j1, $j2, false)",
                    "parsed.$": "States.StringToJson($js)",
                    "text.$": "States.JsonToString($jo)",
                    "sum.$": "States.MathAdd($v1, $v2)",
                    "split.$": "States.StringSplit($csv, ',')",
                    "greeting.$": "States.Format('Hello {}, welcome to {}!', $name, $place)"},
                    "End": true}}}),
            json!({}),
            json!({"encoded": "SGVsbG8gV29ybGQ=", "decoded": "Hello World",
                "hash": "1cac63f39fd68d8c531f27b807610fb3d50f0fc3f186995767fb6316e7200a3e",
                "merged": {"a": 1, "b": 2, "c": 3, "d": 4}, "parsed": {"key": "value"},
                "text": "{\"test\":\"object\"}", "sum": 8, "split": ["a", "b", "c", "d", "e"],
                "greeting": "Hello John, welcome to Home!"}),
        ),
        ok(
            "intrinsic: nested MathAdd calls over variables of outer Map scopes",
            json!({"StartAt": "In", "States": {
                "In": {"Type": "Pass", "Result": [[9, 44, 6]], "Assign": {"bias": 4.3}, "Next": "M"},
                "M": {"Type": "Map", "ItemProcessor": {"StartAt": "Vec", "States": {
                    "Vec": {"Type": "Pass", "Assign": {"x.$": "$[0]", "y.$": "$[1]", "z.$": "$[2]"},
                            "Next": "Sum"},
                    "Sum": {"Type": "Pass", "Parameters": {"s.$":
                        "States.MathAdd(States.MathAdd(States.MathAdd($y, $x), $z), $bias)"},
                        "End": true}}}, "End": true}}}),
            json!({}),
            json!([{"s": 63}]),
        ),
        fails(
            "intrinsic: a path argument that matches nothing is States.Runtime naming the field",
            params(json!({"r.$": "States.Format('{}', $.missing)"})),
            json!({"a": 1}),
            Some("States.Runtime"),
            runtime(
                "S",
                2,
                "The JSONPath '$.missing' specified for the field 'r.$' could not be found in the input '{\"a\":1}'",
            ),
        ),
        fails(
            "intrinsic: bad arguments are States.IntrinsicFailure naming the function and field",
            params(json!({"r.$": "States.ArrayPartition($.a, 0)"})),
            json!({"a": [1]}),
            Some("States.IntrinsicFailure"),
            runtime(
                "S",
                2,
                "Invalid arguments in the intrinsic function call States.ArrayPartition for the field 'r.$': the chunk size must be greater than 0, got 0",
            ),
        ),
    ])
    .await;
}

#[tokio::test]
async fn variables() {
    check(vec![
        ok(
            "Assign: an empty Assign changes nothing",
            one(json!({"Type": "Pass", "Assign": {}, "End": true})),
            json!({"v": 1}),
            json!({"v": 1}),
        ),
        ok(
            "Assign: values without .$ are literals, even strings that look like paths or calls",
            json!({"StartAt": "A", "States": {
                "A": {"Type": "Pass", "Assign": {"n": null, "i": 0, "f": 0.1, "b": true,
                      "p": "$.no.such.path", "c": "$$.Execution.Id", "v": "$noSuchVar",
                      "fn": "States.Format('{}', $x)", "l": [null, "$", {"k": "$$"}], "o": {}},
                      "Next": "B"},
                "B": {"Type": "Pass", "Parameters": {"n.$": "$n", "i.$": "$i", "f.$": "$f",
                      "b.$": "$b", "p.$": "$p", "c.$": "$c", "v.$": "$v", "fn.$": "$fn",
                      "l.$": "$l", "o.$": "$o"}, "End": true}}}),
            json!({}),
            json!({"n": null, "i": 0, "f": 0.1, "b": true, "p": "$.no.such.path",
                   "c": "$$.Execution.Id", "v": "$noSuchVar", "fn": "States.Format('{}', $x)",
                   "l": [null, "$", {"k": "$$"}], "o": {}}),
        ),
        ok(
            "Assign: .$ values read the input, $$ and intrinsic calls; the output is unchanged",
            json!({"StartAt": "A", "States": {
                "A": {"Type": "Pass", "Assign": {"root.$": "$", "val.$": "$.input_value",
                      "name.$": "$$.Execution.Input.input_value",
                      "fmt.$": "States.Format('Format Func {}', $.input_value)"}, "Next": "B"},
                "B": {"Type": "Pass", "Parameters": {"root.$": "$root", "val.$": "$val",
                      "name.$": "$name", "fmt.$": "$fmt", "out.$": "$"}, "End": true}}}),
            json!({"input_value": "lit"}),
            json!({"root": {"input_value": "lit"}, "val": "lit", "name": "lit",
                   "fmt": "Format Func lit", "out": {"input_value": "lit"}}),
        ),
        ok(
            "Assign on a Pass reads the state's result (after Parameters); the next state sees the value",
            json!({"StartAt": "A", "States": {
                "A": {"Type": "Pass", "Parameters": {"input": "PENDING"},
                      "Assign": {"result.$": "$.input"}, "Next": "B"},
                "B": {"Type": "Pass", "Assign": {"result": "SUCCESS", "original.$": "$.input",
                      "before.$": "$result"}, "Next": "C"},
                "C": {"Type": "Pass", "Parameters": {"r.$": "$result", "o.$": "$original",
                      "b.$": "$before"}, "End": true}}}),
            json!({}),
            json!({"r": "SUCCESS", "o": "PENDING", "b": "PENDING"}),
        ),
        ok(
            "Assign on a Pass with Result reads the Result",
            json!({"StartAt": "A", "States": {
                "A": {"Type": "Pass", "Result": {"answer": 42}, "Assign": {"a.$": "$.answer"},
                      "Next": "B"},
                "B": {"Type": "Pass", "OutputPath": "$a", "End": true}}}),
            json!({}),
            json!(42),
        ),
        ok(
            "Assign is applied after the state's paths: InputPath and OutputPath see the old value",
            json!({"StartAt": "A", "States": {
                "A": {"Type": "Pass", "Assign": {"answer": 42}, "Next": "B"},
                "B": {"Type": "Pass", "InputPath": "$answer", "ResultPath": "$.x",
                      "OutputPath": "$answer", "Assign": {"answer": "<new>"}, "Next": "C"},
                "C": {"Type": "Pass", "Parameters": {"now.$": "$answer", "in.$": "$"}, "End": true}}}),
            json!({}),
            json!({"now": "<new>", "in": 42}),
        ),
        ok(
            "variables: a Parameters key without .$ keeps the text $result literally",
            json!({"StartAt": "A", "States": {
                "A": {"Type": "Pass", "Parameters": {"result": "$result"},
                      "Assign": {"result": "foobar"}, "Next": "B"},
                "B": {"Type": "Pass", "ResultPath": "$.result",
                      "Parameters": {"result.$": "$result"}, "End": true}}}),
            json!({}),
            json!({"result": {"result": "foobar"}}),
        ),
        ok(
            "variables: a later Assign overwrites, and reads the earlier value on its right side",
            json!({"StartAt": "A", "States": {
                "A": {"Type": "Pass", "QueryLanguage": "JSONPath", "Assign": {"v": 42}, "Next": "B"},
                "B": {"Type": "Pass", "Assign": {"v": 18, "old.$": "$v"}, "Next": "C"},
                "C": {"Type": "Pass", "Parameters": {"v.$": "$v", "old.$": "$old"}, "End": true}}}),
            json!({}),
            json!({"v": 18, "old": 42}),
        ),
        ok(
            "variables: InputPath and OutputPath may name a variable",
            json!({"StartAt": "A", "States": {
                "A": {"Type": "Pass", "Assign": {"x": 42}, "Next": "B"},
                "B": {"Type": "Pass", "InputPath": "$x", "End": true}}}),
            json!({}),
            json!(42),
        ),
        ok(
            "variables: Wait SecondsPath and TimestampPath may name variables",
            json!({"StartAt": "A", "States": {
                "A": {"Type": "Pass", "Assign": {"w": 0, "at": "2024-11-06T09:42:03Z"}, "Next": "B"},
                "B": {"Type": "Wait", "SecondsPath": "$w", "Next": "C"},
                "C": {"Type": "Wait", "TimestampPath": "$at", "End": true}}}),
            json!({}),
            json!({}),
        ),
        ok(
            "variables: a Wait state may Assign",
            json!({"StartAt": "W", "States": {
                "W": {"Type": "Wait", "Seconds": 0, "Assign": {"foo": "oof"}, "Next": "R"},
                "R": {"Type": "Pass", "Parameters": {"foo.$": "$foo"}, "End": true}}}),
            json!({}),
            json!({"foo": "oof"}),
        ),
        ok(
            "Choice Assign: a string \"42\" does not match NumericEquals 42; Default takes the state's Assign",
            choice_assign(),
            json!({"input_value": "42"}),
            json!({"result": "INCORRECT"}),
        ),
        ok(
            "Choice Assign: the matching rule's Assign is used",
            choice_assign(),
            json!({"input_value": 42}),
            json!({"result": "CORRECT"}),
        ),
        ok(
            "scope: Map iterations read outer variables; the Map's output is the iteration outputs",
            json!({"StartAt": "A", "States": {
                "A": {"Type": "Pass", "Assign": {"x": 42, "items": [1, 2, 3]}, "Next": "M"},
                "M": {"Type": "Map", "ItemsPath": "$items", "MaxConcurrency": 1,
                      "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "I",
                          "States": {"I": {"Type": "Pass", "Assign": {"inner.$": "$x"},
                              "Parameters": {"x.$": "$x", "item.$": "$"}, "End": true}}},
                      "Next": "B"},
                "B": {"Type": "Pass", "Assign": {"final.$": "$x"}, "End": true}}}),
            json!({}),
            json!([{"x": 42, "item": 1}, {"x": 42, "item": 2}, {"x": 42, "item": 3}]),
        ),
        ok(
            "scope: Parallel branches read outer variables and each gets the state's input",
            json!({"StartAt": "A", "States": {
                "A": {"Type": "Pass", "Assign": {"x": 42}, "Next": "P"},
                "P": {"Type": "Parallel", "End": true, "Branches": [
                    {"StartAt": "B1", "States": {"B1": {"Type": "Pass",
                        "Assign": {"inner.$": "$x", "value.$": "$"}, "End": true}}},
                    {"StartAt": "B2", "States": {"B2": {"Type": "Pass",
                        "Parameters": {"x.$": "$x"}, "End": true}}}]}}}),
            json!({}),
            json!([{}, {"x": 42}]),
        ),
        ok(
            "variables in a Map: ItemsPath names a variable; ItemSelector formats with one",
            json!({"StartAt": "A", "States": {
                "A": {"Type": "Pass", "Assign": {"q": "Who?", "list": ["Ann", "Bo"],
                      "tpl": "It's {}!"}, "Next": "M"},
                "M": {"Type": "Map", "MaxConcurrency": 1, "ItemsPath": "$list",
                      "ItemSelector": {"a.$": "States.Format($tpl, $$.Map.Item.Value)"},
                      "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass",
                          "Parameters": {"Question.$": "$q", "Answer.$": "$.a"}, "End": true}}},
                      "End": true}}}),
            json!({}),
            json!([{"Question": "Who?", "Answer": "It's Ann!"},
                   {"Question": "Who?", "Answer": "It's Bo!"}]),
        ),
        ok(
            "variables in a Map: MaxConcurrencyPath may name a variable holding the string \"1\"",
            json!({"StartAt": "A", "States": {
                "A": {"Type": "Pass", "Assign": {"mc": "1"}, "Result": {"Items": [1, 2, 3]},
                      "Next": "S"},
                "S": {"Type": "Map", "ItemsPath": "$.Items", "MaxConcurrencyPath": "$mc",
                      "ItemProcessor": pass_through(), "End": true}}}),
            json!({}),
            json!([1, 2, 3]),
        ),
        ok(
            "variables in a Distributed Map: tolerated-failure paths may name string variables",
            json!({"StartAt": "A", "States": {
                "A": {"Type": "Pass", "Assign": {"pct": "1", "count": "1"},
                      "Result": {"Items": [1, 2, 3]}, "Next": "S"},
                "S": {"Type": "Map", "ItemsPath": "$.Items", "MaxConcurrency": 1,
                      "ToleratedFailurePercentagePath": "$pct",
                      "ToleratedFailureCountPath": "$count",
                      "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED",
                          "ExecutionType": "STANDARD"}, "StartAt": "I",
                          "States": {"I": {"Type": "Pass", "End": true}}}, "End": true}}}),
            json!({}),
            json!([1, 2, 3]),
        ),
        ok(
            "variables in a Distributed Map: an ItemSelector value without .$ stays literal",
            json!({"StartAt": "A", "States": {
                "A": {"Type": "Pass", "Assign": {"bucket": "b"}, "Result": {"Values": [1, 2]},
                      "Next": "S"},
                "S": {"Type": "Map", "ItemsPath": "$.Values", "MaxConcurrency": 1,
                      "ItemSelector": {"value.$": "$$.Map.Item.Value", "bucketName": "$bucket"},
                      "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED",
                          "ExecutionType": "STANDARD"}, "StartAt": "I",
                          "States": {"I": {"Type": "Pass", "End": true}}}, "End": true}}}),
            json!({}),
            json!([{"bucketName": "$bucket", "value": 1}, {"bucketName": "$bucket", "value": 2}]),
        ),
    ])
    .await;
}

/// A Choice whose rules and Default each assign `status`, followed by a state reading it.
fn choice_assign() -> Value {
    json!({"StartAt": "Check", "States": {
        "Check": {"Type": "Choice", "Choices": [
            {"Variable": "$.input_value", "IsPresent": false, "Assign": {"status": "UNKNOWN"},
             "Next": "Final"},
            {"Variable": "$.input_value", "NumericEquals": 42, "Assign": {"status": "CORRECT"},
             "Next": "Final"}],
            "Assign": {"status": "INCORRECT", "guess.$": "$.input_value"}, "Default": "Final"},
        "Final": {"Type": "Pass", "Parameters": {"result.$": "$status"}, "End": true}}})
}

#[tokio::test]
async fn inline_maps() {
    let shipped = json!({"detail": {"partner": "UQS", "shipped": ["A", "B"]}});
    let selector = json!({"original.$": "$", "value.$": "$$.Map.Item.Value",
        "index.$": "$$.Map.Item.Index", "partner.$": "$.partner", "constant": "Hi"});
    let selected = json!({"detail": {"partner": "UQS", "shipped": ["A", "B"], "out": [
        {"original": {"partner": "UQS", "shipped": ["A", "B"]}, "value": "A", "index": 0,
         "partner": "UQS", "constant": "Hi"},
        {"original": {"partner": "UQS", "shipped": ["A", "B"]}, "value": "B", "index": 1,
         "partner": "UQS", "constant": "Hi"}]}});
    let with_selector = |field: &str, processor: &str| {
        json!({"StartAt": "S", "States": {"S": {"Type": "Map", "InputPath": "$.detail",
            "ItemsPath": "$.shipped", "ResultPath": "$.detail.out", "MaxConcurrency": 1,
            field: selector.clone(), processor: pass_through(), "End": true}}})
    };
    let fail_item = json!({"StartAt": "F", "States": {"F": {"Type": "Fail",
        "Error": "ItemError", "Cause": "ItemCause"}}});
    let failing_map = |extra: Value| {
        let mut m = json!({"Type": "Map", "ItemsPath": "$.Items", "ItemProcessor": fail_item,
            "Next": "Done"});
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        let mut def = json!({"StartAt": "S", "States": {"S": m,
            "Done": {"Type": "Pass", "Result": "done", "End": true}}});
        if extra.get("Catch").is_some() {
            def["States"]["Caught"] = json!({"Type": "Pass", "End": true});
        }
        def
    };
    let concurrency_path = map_over_items(
        "INLINE",
        pass_through(),
        json!({"MaxConcurrencyPath": "$.MaxConcurrencyValue"}),
    );
    check(vec![
        ok(
            "Map: items of every JSON type pass through; ResultPath null keeps the input",
            one(json!({"Type": "Map", "InputPath": "$.arr", "ResultPath": null,
                "MaxConcurrency": 1, "ItemProcessor": pass_through(), "End": true})),
            json!({"arr": [1, "Hello", {}, null, 3.3, 3]}),
            json!({"arr": [1, "Hello", {}, null, 3.3, 3]}),
        ),
        ok(
            "Map: without ItemsPath the items are the whole input; results keep item order",
            one(json!({"Type": "Map", "ItemProcessor": pass_through(), "End": true})),
            json!(["Hello", "World", 3]),
            json!(["Hello", "World", 3]),
        ),
        ok(
            "Map: an ItemProcessor without ProcessorConfig runs inline",
            one(json!({"Type": "Map", "ItemsPath": "$.arr", "ItemProcessor": {"StartAt": "I",
                "States": {"I": {"Type": "Pass", "End": true}}}, "End": true})),
            json!({"arr": [1, 2, 3]}),
            json!([1, 2, 3]),
        ),
        ok(
            "Map: the legacy Iterator field works like ItemProcessor",
            one(json!({"Type": "Map", "Iterator": pass_through(), "End": true})),
            json!(["Hello", "World"]),
            json!(["Hello", "World"]),
        ),
        ok(
            "Map: ItemSelector sees the state input as $ and $$.Map.Item.{Value,Index}",
            with_selector("ItemSelector", "ItemProcessor"),
            shipped.clone(),
            selected.clone(),
        ),
        ok(
            "Map: legacy Parameters works like ItemSelector (with Iterator)",
            with_selector("Parameters", "Iterator"),
            shipped.clone(),
            selected.clone(),
        ),
        ok(
            "Map: legacy Parameters works like ItemSelector (with ItemProcessor)",
            with_selector("Parameters", "ItemProcessor"),
            shipped,
            selected,
        ),
        ok(
            "Map: the iteration's own output replaces the selected item",
            one(json!({"Type": "Map", "ItemsPath": "$.v", "ResultPath": null,
                "ItemSelector": {"b.$": "$.bucket", "value.$": "$$.Map.Item.Value"},
                "ItemProcessor": {"StartAt": "E", "States": {"E": {"Type": "Pass",
                    "Parameters": {"message": "done"}, "End": true}}}, "End": true})),
            json!({"bucket": "b", "v": ["1", "2"]}),
            json!({"bucket": "b", "v": ["1", "2"]}),
        ),
        ok(
            "Map: a Map inside a Map iterates the inner lists",
            one(json!({"Type": "Map", "ItemProcessor": {"StartAt": "Inner", "States": {
                "Inner": {"Type": "Map", "ItemProcessor": pass_through(), "End": true}}},
                "End": true})),
            json!([[1, 2, 3], [4, 5, 6]]),
            json!([[1, 2, 3], [4, 5, 6]]),
        ),
        ok(
            "Map: a Map state entered again in a loop runs afresh each time",
            json!({"StartAt": "Start", "States": {
                "Start": {"Type": "Pass", "Parameters": {"n": 3,
                    "Values.$": "States.ArrayRange(0, 3, 1)"}, "Next": "Before"},
                "Before": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, -1)",
                    "Values.$": "$.Values"}, "Next": "Body"},
                "Body": {"Type": "Map", "MaxConcurrency": 1, "ItemsPath": "$.Values",
                    "Iterator": pass_through(), "ResultPath": "$.Values", "Next": "Check"},
                "Check": {"Type": "Choice", "Choices": [
                    {"Variable": "$.n", "NumericEquals": 0, "Next": "End"}], "Default": "Before"},
                "End": {"Type": "Succeed"}}}),
            json!({}),
            json!({"Values": [0, 1, 2, 3], "n": 0}),
        ),
        ok(
            "Map: MaxConcurrencyPath 0 means no limit",
            concurrency_path.clone(),
            json!({"MaxConcurrencyValue": 0, "Items": ["HelloWorld"]}),
            json!(["HelloWorld"]),
        ),
        ok(
            "Map: MaxConcurrencyPath 1",
            concurrency_path.clone(),
            json!({"MaxConcurrencyValue": 1, "Items": ["HelloWorld"]}),
            json!(["HelloWorld"]),
        ),
        fails(
            "Map: a MaxConcurrencyPath value that is an object is not a valid integer",
            concurrency_path.clone(),
            json!({"MaxConcurrencyValue": {}, "Items": ["HelloWorld"]}),
            Some("States.Runtime"),
            runtime(
                "S",
                2,
                "The MaxConcurrencyPath field refers to value \"{}\" which is not a valid integer: $.MaxConcurrencyValue",
            ),
        ),
        fails(
            "Map: a MaxConcurrencyPath value that is a word is not a valid integer",
            concurrency_path,
            json!({"MaxConcurrencyValue": "NoNumber", "Items": ["HelloWorld"]}),
            Some("States.Runtime"),
            runtime(
                "S",
                2,
                "The MaxConcurrencyPath field refers to value \"NoNumber\" which is not a valid integer: $.MaxConcurrencyValue",
            ),
        ),
        fails(
            "Map: a failing iteration fails the Map and the execution with its error and cause",
            one(json!({"Type": "Map", "MaxConcurrency": 1, "ItemProcessor": fails_on_three(),
                "End": true})),
            json!([1, "Hello", {}, 3.3, 3, 4]),
            Some("Boom"),
            Some("item 3 failed".into()),
        ),
        ok(
            "Map Catch: the caught output is {Error, Cause} of the failed iteration",
            failing_map(json!({"Catch": [{"ErrorEquals": ["ItemError"], "Next": "Caught"}]})),
            json!({"Items": [1]}),
            json!({"Error": "ItemError", "Cause": "ItemCause"}),
        ),
        ok(
            "Map Catch: States.ALL catches an iteration's error",
            failing_map(json!({"Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]})),
            json!({"Items": [1]}),
            json!({"Error": "ItemError", "Cause": "ItemCause"}),
        ),
        fails(
            "Map Catch: an iteration's Fail without error is caught by no name (State.ALL is not States.ALL)",
            json!({"StartAt": "S", "States": {
                "S": {"Type": "Map", "ItemProcessor": {"StartAt": "F",
                    "States": {"F": {"Type": "Fail"}}},
                    "Catch": [{"ErrorEquals": ["Internal Error"], "Next": "C1"},
                              {"ErrorEquals": ["State.ALL"], "Next": "C2"}], "Next": "C3"},
                "C1": {"Type": "Pass", "End": true}, "C2": {"Type": "Pass", "End": true},
                "C3": {"Type": "Pass", "End": true}}}),
            json!([1]),
            None,
            None,
        ),
        fails(
            "Map Retry: after the retries the Map fails with the iteration's error and cause",
            failing_map(json!({"Retry": [{"ErrorEquals": ["ItemError"], "MaxAttempts": 2}]})),
            json!({"Items": [1]}),
            Some("ItemError"),
            Some("ItemCause".into()),
        ),
        fails(
            "Map Retry with the legacy Iterator behaves the same",
            json!({"StartAt": "S", "States": {"S": {"Type": "Map", "Iterator": {"StartAt": "F",
                "States": {"F": {"Type": "Fail", "Error": "ItemError", "Cause": "ItemCause"}}},
                "Retry": [{"ErrorEquals": ["ItemError"], "MaxAttempts": 2}], "End": true}}}),
            json!([1]),
            Some("ItemError"),
            Some("ItemCause".into()),
        ),
    ])
    .await;
}

#[tokio::test]
async fn distributed_maps() {
    let items = json!({"Items": [0]});
    let count_path = map_over_items(
        "DISTRIBUTED",
        pass_through(),
        json!({"MaxConcurrency": 1, "ToleratedFailureCountPath": "$.Count"}),
    );
    let pct_path = map_over_items(
        "DISTRIBUTED",
        pass_through(),
        json!({"MaxConcurrency": 1, "ToleratedFailurePercentagePath": "$.Pct"}),
    );
    let with = |mut v: Value, k: &str, x: Value| {
        v[k] = x;
        v
    };
    let not_integer = |v: &str| {
        runtime(
            "S",
            2,
            &format!(
                "The ToleratedFailureCountPath field refers to value \"{v}\" which is not a valid integer: $.Count"
            ),
        )
    };
    let not_float = |v: &str| {
        runtime(
            "S",
            2,
            &format!(
                "The ToleratedFailurePercentagePath field refers to value \"{v}\" which is not a valid float: $.Pct"
            ),
        )
    };
    let pct_range = || {
        runtime(
            "S",
            2,
            "ToleratedFailurePercentage must be between 0 and 100.",
        )
    };
    let distributed = |fields: Value| {
        let mut m = json!({"Type": "Map", "MaxConcurrency": 1, "ItemProcessor": {
            "StartAt": "I", "States": {"I": {"Type": "Pass", "End": true}},
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}},
            "End": true});
        for (k, v) in fields.as_object().unwrap() {
            m[k] = v.clone();
        }
        one(m)
    };
    let selected = json!([
        {"constantValue": "constant", "mapValue": "Hello", "fromInput": ["Hello", "World"]},
        {"constantValue": "constant", "mapValue": "World", "fromInput": ["Hello", "World"]}]);
    let selector =
        json!({"constantValue": "constant", "mapValue.$": "$$.Map.Item.Value", "fromInput.$": "$"});
    check(vec![
        ok(
            "Distributed Map over the input array: items pass through in order",
            distributed(json!({})),
            json!(["Hello", "World"]),
            json!(["Hello", "World"]),
        ),
        ok(
            "Distributed Map: ItemSelector sees $ and $$.Map.Item.Value",
            distributed(json!({"ItemSelector": selector.clone()})),
            json!(["Hello", "World"]),
            selected.clone(),
        ),
        ok(
            "Distributed Map: legacy Parameters works like ItemSelector",
            distributed(json!({"Parameters": selector.clone()})),
            json!(["Hello", "World"]),
            selected.clone(),
        ),
        ok(
            "Distributed Map: the legacy Iterator may carry a DISTRIBUTED ProcessorConfig",
            one(
                json!({"Type": "Map", "ItemSelector": selector, "Iterator": {"StartAt": "I",
                "States": {"I": {"Type": "Pass", "End": true}},
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}},
                "End": true}),
            ),
            json!(["Hello", "World"]),
            selected,
        ),
        ok(
            "Distributed Map: a Label is accepted",
            distributed(json!({"Label": "TestMap"})),
            json!(["Hello", "World"]),
            json!(["Hello", "World"]),
        ),
        ok(
            "Distributed Map: ItemsPath reads the previous state's result",
            distributed(json!({"ItemsPath": "$.result_value"})),
            json!({"result_value": ["from-previous"]}),
            json!(["from-previous"]),
        ),
        ok(
            "Distributed Map inside a Distributed Map; Succeed ends an item with its input",
            map_over_items(
                "DISTRIBUTED",
                json!({"StartAt": "Sub", "States": {"Sub": {"Type": "Map",
                    "ItemsPath": "$.sub", "ResultPath": "$.result", "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                        "StartAt": "Ok", "States": {"Ok": {"Type": "Succeed"}}}, "End": true}}}),
                json!({}),
            ),
            json!({"Items": [{"sub": [{"n": 1}, {"n": 2}]}]}),
            json!([{"sub": [{"n": 1}, {"n": 2}], "result": [{"n": 1}, {"n": 2}]}]),
        ),
        ok(
            "Distributed Map: literal ToleratedFailureCount and ToleratedFailurePercentage",
            distributed(json!({"ToleratedFailureCount": 10, "ToleratedFailurePercentage": 0.5})),
            json!([0]),
            json!([0]),
        ),
        ok(
            "ToleratedFailureCountPath 0",
            count_path.clone(),
            with(items.clone(), "Count", json!(0)),
            json!([0]),
        ),
        ok(
            "ToleratedFailureCountPath 1",
            count_path.clone(),
            with(items.clone(), "Count", json!(1)),
            json!([0]),
        ),
        fails(
            "ToleratedFailureCountPath -1: cannot be negative",
            count_path.clone(),
            with(items.clone(), "Count", json!(-1)),
            Some("States.Runtime"),
            runtime("S", 2, "ToleratedFailureCount cannot be negative."),
        ),
        fails(
            "ToleratedFailureCountPath naming a word: not a valid integer",
            count_path.clone(),
            with(items.clone(), "Count", json!("NoNumber")),
            Some("States.Runtime"),
            not_integer("NoNumber"),
        ),
        fails(
            "ToleratedFailureCountPath naming an object: not a valid integer",
            count_path,
            with(items.clone(), "Count", json!({})),
            Some("States.Runtime"),
            not_integer("{}"),
        ),
        ok(
            "ToleratedFailurePercentagePath 0",
            pct_path.clone(),
            with(items.clone(), "Pct", json!(0)),
            json!([0]),
        ),
        ok(
            "ToleratedFailurePercentagePath 1.1 (a fraction is fine)",
            pct_path.clone(),
            with(items.clone(), "Pct", json!(1.1)),
            json!([0]),
        ),
        ok(
            "ToleratedFailurePercentagePath 100",
            pct_path.clone(),
            with(items.clone(), "Pct", json!(100)),
            json!([0]),
        ),
        fails(
            "ToleratedFailurePercentagePath 100.1: out of range",
            pct_path.clone(),
            with(items.clone(), "Pct", json!(100.1)),
            Some("States.Runtime"),
            pct_range(),
        ),
        fails(
            "ToleratedFailurePercentagePath -1: out of range",
            pct_path.clone(),
            with(items.clone(), "Pct", json!(-1)),
            Some("States.Runtime"),
            pct_range(),
        ),
        fails(
            "ToleratedFailurePercentagePath -1.1: out of range",
            pct_path.clone(),
            with(items.clone(), "Pct", json!(-1.1)),
            Some("States.Runtime"),
            pct_range(),
        ),
        fails(
            "ToleratedFailurePercentagePath naming a word: not a valid float",
            pct_path.clone(),
            with(items.clone(), "Pct", json!("NoNumber")),
            Some("States.Runtime"),
            not_float("NoNumber"),
        ),
        fails(
            "ToleratedFailurePercentagePath naming an object: not a valid float",
            pct_path,
            with(items, "Pct", json!({})),
            Some("States.Runtime"),
            not_float("{}"),
        ),
        ok(
            "Distributed Map: a tolerated failed item's result is its {Error, Cause}",
            map_over_items(
                "DISTRIBUTED",
                fails_on_three(),
                json!({"ToleratedFailureCount": 1}),
            ),
            json!({"Items": [1, 3, 5]}),
            json!([1, {"Error": "Boom", "Cause": "item 3 failed"}, 5]),
        ),
        ok(
            "Distributed Map: a percentage at the failure rate tolerates it",
            map_over_items(
                "DISTRIBUTED",
                fails_on_three(),
                json!({"ToleratedFailurePercentage": 50}),
            ),
            json!({"Items": [3, 4]}),
            json!([{"Error": "Boom", "Cause": "item 3 failed"}, 4]),
        ),
    ])
    .await;
}

#[tokio::test]
async fn parallel_states() {
    let branch = |name: &str, state: Value| json!({"StartAt": name, "States": {name: state}});
    let fail_branch = branch(
        "B",
        json!({"Type": "Fail", "Error": "FailureType", "Cause": "Cause description"}),
    );
    check(vec![
        ok(
            "Parallel: the output lists the branch outputs in branch order",
            one(json!({"Type": "Parallel", "End": true, "Branches": [
                branch("B0", json!({"Type": "Pass", "Result": {"branch": 0}, "End": true})),
                branch("B1", json!({"Type": "Pass", "Result": {"branch": 1}, "End": true})),
                branch("B2", json!({"Type": "Pass", "Result": {"branch": 2}, "End": true})),
                branch("B3", json!({"Type": "Pass", "Result": {"branch": 3}, "End": true}))]})),
            json!({}),
            json!([{"branch": 0}, {"branch": 1}, {"branch": 2}, {"branch": 3}]),
        ),
        ok(
            "Parallel: every branch gets the state's input, whatever its length",
            one(json!({"Type": "Parallel", "End": true, "Branches": [
                branch("B1", json!({"Type": "Pass", "End": true})),
                {"StartAt": "C1", "States": {"C1": {"Type": "Pass", "Next": "C2"},
                    "C2": {"Type": "Pass", "End": true}}}]})),
            json!([1, 2, 3, 4]),
            json!([[1, 2, 3, 4], [1, 2, 3, 4]]),
        ),
        ok(
            "Parallel: Parameters build the input every branch gets",
            one(
                json!({"Type": "Parallel", "Parameters": {"s0": 0, "s1": [1]}, "End": true,
                "Branches": [branch("B0", json!({"Type": "Pass", "End": true})),
                             branch("B1", json!({"Type": "Pass", "End": true}))]}),
            ),
            json!({"ignored": true}),
            json!([{"s0": 0, "s1": [1]}, {"s0": 0, "s1": [1]}]),
        ),
        ok(
            "Parallel: a Parallel inside a Parallel nests the output lists",
            one(
                json!({"Type": "Parallel", "End": true, "Branches": [branch("L2",
                json!({"Type": "Parallel", "End": true, "Branches": [
                    branch("P", json!({"Type": "Pass", "End": true}))]}))]}),
            ),
            json!([[1, 2, 3], [4, 5, 6]]),
            json!([[[[1, 2, 3], [4, 5, 6]]]]),
        ),
        fails(
            "Parallel: a failing branch fails the execution with its error (no cause given)",
            one(json!({"Type": "Parallel", "End": true, "Branches": [
                branch("B", json!({"Type": "Fail", "Error": "FailureType"}))]})),
            json!({}),
            Some("FailureType"),
            None,
        ),
        ok(
            "Parallel Catch: the caught output is {Error, Cause}",
            json!({"StartAt": "P", "States": {
                "P": {"Type": "Parallel", "Branches": [fail_branch.clone()],
                      "Catch": [{"ErrorEquals": ["FailureType"], "Next": "Caught"}], "Next": "F"},
                "Caught": {"Type": "Pass", "End": true},
                "F": {"Type": "Pass", "End": true}}}),
            json!({}),
            json!({"Error": "FailureType", "Cause": "Cause description"}),
        ),
        ok(
            "Parallel Catch: ResultPath puts {Error, Cause} beside the input",
            json!({"StartAt": "P", "States": {
                "P": {"Type": "Parallel", "Branches": [fail_branch.clone()],
                      "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.err",
                                 "Next": "Caught"}], "End": true},
                "Caught": {"Type": "Pass", "End": true}}}),
            json!({"keep": 1}),
            json!({"keep": 1, "err": {"Error": "FailureType", "Cause": "Cause description"}}),
        ),
        fails(
            "Parallel Retry: after the retries the branch's error and cause fail the execution",
            json!({"StartAt": "P", "States": {
                "P": {"Type": "Parallel", "Branches": [fail_branch],
                      "Retry": [{"ErrorEquals": ["FailureType"], "MaxAttempts": 2}], "Next": "F"},
                "F": {"Type": "Pass", "End": true}}}),
            json!({}),
            Some("FailureType"),
            Some("Cause description".into()),
        ),
    ])
    .await;
}

/// Retries are visible in the history: the state starts once, then once per retry.
#[tokio::test]
async fn retries_run_the_state_again_as_many_times_as_the_matching_retrier_allows() {
    let fail_item = json!({"StartAt": "F", "States": {"F": {"Type": "Fail",
        "Error": "ItemError", "Cause": "ItemCause"}}});
    let cases = [
        // The first retrier whose ErrorEquals matches is used: "State.ALL" is a plain name.
        (
            json!([{"ErrorEquals": ["NoSuchError"], "MaxAttempts": 1},
                   {"ErrorEquals": ["State.ALL"], "MaxAttempts": 2},
                   {"ErrorEquals": ["ItemError"], "MaxAttempts": 3}]),
            4,
        ),
        (json!([{"ErrorEquals": ["ItemError"], "MaxAttempts": 2}]), 3),
        (
            json!([{"ErrorEquals": ["States.ALL"], "MaxAttempts": 0}]),
            1,
        ),
        (
            json!([{"ErrorEquals": ["OtherError"], "MaxAttempts": 5}]),
            1,
        ),
    ];
    for (retry, runs) in cases {
        let def = one(json!({"Type": "Map", "ItemProcessor": fail_item.clone(),
            "Retry": retry.clone(), "End": true}));
        let (result, store) = execute(&def, json!([1])).await;
        assert_eq!(
            result,
            ExecutionResult::Failed {
                error: Some("ItemError".into()),
                cause: Some("ItemCause".into())
            },
            "Retry {retry}"
        );
        let started = store
            .event_types()
            .iter()
            .filter(|t| *t == "MapStateStarted")
            .count();
        assert_eq!(started, runs, "Retry {retry}: the Map ran {started} times");
    }
}
