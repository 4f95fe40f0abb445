//! The data layer's behaviour through its public API, table by table, as AWS Step Functions
//! behaves: every Choice operator against values of every JSON type (literal and `…Path`
//! forms), the intrinsic functions' results, and payload templates with JSONPath.
//!
//! Each row names the rule it proves. The facts come from executions recorded on AWS (the
//! optional conformance corpus, docs/asl.md "Conformance"), written here so that a clone of the
//! repository covers them on its own; the few rows marked "(ASL spec)" follow the language
//! specification where the recordings have no case. Whole state machines are in
//! `crates/stepops-asl/tests/behaviour.rs`.

use serde_json::{Map, Value, json};
use stepops_asl_data::choice::Rule;
use stepops_asl_data::{Scope, intrinsic, template};

/// Builds rows of `(rule, a, b, expected)` with `a` and `b` written as JSON.
macro_rules! rows {
    ($(($rule:expr, $a:tt, $b:tt, $expected:tt)),* $(,)?) => {
        vec![$(($rule, json!($a), json!($b), json!($expected))),*]
    };
}

/// The context object the rows see as `$$`.
fn context(input: &Value) -> Value {
    json!({"Execution": {"Id": "arn:aws:states:us-east-1:123456789012:execution:M:e1",
        "Input": input, "Name": "e1"}})
}

/// Runs `eval` on every row and fails with the list of rows whose result differs.
fn check(
    rows: Vec<(&str, Value, Value, Value)>,
    eval: impl Fn(&Value, &Scope) -> Result<Value, String>,
) {
    let total = rows.len();
    let variables: Map<String, Value> =
        serde_json::from_value(json!({"greeting": "Hello", "n": 2})).unwrap();
    let wrong: Vec<String> = rows
        .into_iter()
        .filter_map(|(rule, a, input, expected)| {
            let ctx = context(&input);
            let actual = eval(&a, &Scope::new(&input, &ctx, &variables));
            (actual.as_ref() != Ok(&expected)).then(|| {
                format!(
                    "{rule}\n    {a} on {input}\n    expected {expected}\n    actual   {actual:?}"
                )
            })
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {total} rows differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// A rule (without `Next`) against an input: does it match?
fn choose(rule: &Value, scope: &Scope) -> Result<Value, String> {
    let rule = Rule::parse(rule, false)?;
    rule.matches(scope)
        .map(Value::Bool)
        .map_err(|e| e.to_string())
}

#[test]
fn numeric_operators() {
    check(
        rows![
            ("NumericEquals: 0 equals 0.0", {"Variable": "$.v", "NumericEquals": 0}, {"v": 0.0}, true),
            ("NumericEquals: 1.0 equals 1", {"Variable": "$.v", "NumericEquals": 1.0}, {"v": 1}, true),
            ("NumericEquals: 2.22 equals 2.22", {"Variable": "$.v", "NumericEquals": 2.22}, {"v": 2.22}, true),
            ("NumericEquals: 1.1 is not 1", {"Variable": "$.v", "NumericEquals": 1}, {"v": 1.1}, false),
            ("NumericEquals: 0 is not 1", {"Variable": "$.v", "NumericEquals": 1}, {"v": 0}, false),
            ("NumericEquals: null is not a number", {"Variable": "$.v", "NumericEquals": 0}, {"v": null}, false),
            ("NumericEquals: an empty string is not 0", {"Variable": "$.v", "NumericEquals": 0}, {"v": ""}, false),
            ("NumericEquals: a blank string is not 0", {"Variable": "$.v", "NumericEquals": 0}, {"v": " "}, false),
            ("NumericEquals: false is not 0", {"Variable": "$.v", "NumericEquals": 0}, {"v": false}, false),
            ("NumericEquals: true is not 1", {"Variable": "$.v", "NumericEquals": 1}, {"v": true}, false),
            ("NumericEquals: an empty array is not 0", {"Variable": "$.v", "NumericEquals": 0}, {"v": []}, false),
            ("NumericEquals: an array is not a number", {"Variable": "$.v", "NumericEquals": 0}, {"v": [""]}, false),
            ("NumericEquals: an empty object is not 0", {"Variable": "$.v", "NumericEquals": 0}, {"v": {}}, false),
            ("NumericEquals: an object is not a number", {"Variable": "$.v", "NumericEquals": 0}, {"v": {"A": 0}}, false),
            ("NumericEqualsPath: 1 equals 1.0", {"Variable": "$.v", "NumericEqualsPath": "$.w"}, {"v": 1, "w": 1.0}, true),
            ("NumericEqualsPath: 0.0 equals 0", {"Variable": "$.v", "NumericEqualsPath": "$.w"}, {"v": 0.0, "w": 0}, true),
            ("NumericEqualsPath: 1.1 is not 1.0", {"Variable": "$.v", "NumericEqualsPath": "$.w"}, {"v": 1.1, "w": 1.0}, false),
            ("NumericEqualsPath: true is not 1", {"Variable": "$.v", "NumericEqualsPath": "$.w"}, {"v": true, "w": 1}, false),
            ("NumericEqualsPath: null is not 0", {"Variable": "$.v", "NumericEqualsPath": "$.w"}, {"v": null, "w": 0}, false),
            ("NumericEqualsPath: a string is not a number", {"Variable": "$.v", "NumericEqualsPath": "$.w"}, {"v": "", "w": 0}, false),
            ("NumericGreaterThan: 0 is not greater than 0", {"Variable": "$.v", "NumericGreaterThan": 0}, {"v": 0}, false),
            ("NumericGreaterThan: 0.0 is not greater than 0", {"Variable": "$.v", "NumericGreaterThan": 0}, {"v": 0.0}, false),
            ("NumericGreaterThan: 1 is greater than 0", {"Variable": "$.v", "NumericGreaterThan": 0}, {"v": 1}, true),
            ("NumericGreaterThan: 0 is not greater than 1", {"Variable": "$.v", "NumericGreaterThan": 1}, {"v": 0}, false),
            ("NumericGreaterThanPath: 1 > 0", {"Variable": "$.v", "NumericGreaterThanPath": "$.w"}, {"v": 1, "w": 0}, true),
            ("NumericGreaterThanPath: 1 is not > 1", {"Variable": "$.v", "NumericGreaterThanPath": "$.w"}, {"v": 1, "w": 1}, false),
            ("NumericGreaterThanEquals: 0.0 >= 0", {"Variable": "$.v", "NumericGreaterThanEquals": 0}, {"v": 0.0}, true),
            ("NumericGreaterThanEquals: 0 is not >= 1", {"Variable": "$.v", "NumericGreaterThanEquals": 1}, {"v": 0}, false),
            ("NumericGreaterThanEqualsPath: 1 >= 1", {"Variable": "$.v", "NumericGreaterThanEqualsPath": "$.w"}, {"v": 1, "w": 1}, true),
            ("NumericGreaterThanEqualsPath: 0 is not >= 1", {"Variable": "$.v", "NumericGreaterThanEqualsPath": "$.w"}, {"v": 0, "w": 1}, false),
            ("NumericLessThan: 0 < 1", {"Variable": "$.v", "NumericLessThan": 1}, {"v": 0}, true),
            ("NumericLessThan: 1 is not < 1", {"Variable": "$.v", "NumericLessThan": 1}, {"v": 1}, false),
            ("NumericLessThan: 0.0 is not < 0", {"Variable": "$.v", "NumericLessThan": 0}, {"v": 0.0}, false),
            ("NumericLessThanPath: 0 < 1", {"Variable": "$.v", "NumericLessThanPath": "$.w"}, {"v": 0, "w": 1}, true),
            ("NumericLessThanPath: 1 is not < 0", {"Variable": "$.v", "NumericLessThanPath": "$.w"}, {"v": 1, "w": 0}, false),
            ("NumericLessThanEquals: 1 <= 1", {"Variable": "$.v", "NumericLessThanEquals": 1}, {"v": 1}, true),
            ("NumericLessThanEquals: 1 is not <= 0", {"Variable": "$.v", "NumericLessThanEquals": 0}, {"v": 1}, false),
            ("NumericLessThanEqualsPath: 0.0 <= 0", {"Variable": "$.v", "NumericLessThanEqualsPath": "$.w"}, {"v": 0.0, "w": 0}, true),
            ("NumericLessThanEqualsPath: 1 is not <= 0", {"Variable": "$.v", "NumericLessThanEqualsPath": "$.w"}, {"v": 1, "w": 0}, false),
        ],
        choose,
    );
}

#[test]
fn string_operators() {
    check(
        rows![
            ("StringEquals: the same text matches", {"Variable": "$.v", "StringEquals": "Hello"}, {"v": "Hello"}, true),
            ("StringEquals: whitespace is not trimmed", {"Variable": "$.v", "StringEquals": "     "}, {"v": " "}, false),
            ("StringEquals: \\t\\n is not \\t\\r\\n", {"Variable": "$.v", "StringEquals": "\t\r\n"}, {"v": "\t\n"}, false),
            ("StringEquals: an empty string is not the text", {"Variable": "$.v", "StringEquals": "HelloWorld"}, {"v": ""}, false),
            ("StringEquals: null is not a string", {"Variable": "$.v", "StringEquals": "HelloWorld"}, {"v": null}, false),
            ("StringEquals: a number is not a string", {"Variable": "$.v", "StringEquals": "HelloWorld"}, {"v": 1.1}, false),
            ("StringEquals: a boolean is not a string", {"Variable": "$.v", "StringEquals": "HelloWorld"}, {"v": true}, false),
            ("StringEquals: an array is not a string", {"Variable": "$.v", "StringEquals": "HelloWorld"}, {"v": [""]}, false),
            ("StringEquals: an object is not a string", {"Variable": "$.v", "StringEquals": "HelloWorld"}, {"v": {"A": 0}}, false),
            ("StringEqualsPath: equal texts match", {"Variable": "$.v", "StringEqualsPath": "$.w"}, {"v": "Hello", "w": "Hello"}, true),
            ("StringEqualsPath: one blank is not five", {"Variable": "$.v", "StringEqualsPath": "$.w"}, {"v": " ", "w": "     "}, false),
            ("StringGreaterThan: \"\" is not > \"\"", {"Variable": "$.v", "StringGreaterThan": ""}, {"v": ""}, false),
            ("StringGreaterThan: a prefix is not > the longer text", {"Variable": "$.v", "StringGreaterThan": "A "}, {"v": "A"}, false),
            ("StringGreaterThan: \"A\" is not > \"A\\t\\n\\r\"", {"Variable": "$.v", "StringGreaterThan": "A\t\n\r"}, {"v": "A"}, false),
            ("StringGreaterThan: \"AB\" is not > \"ABC\"", {"Variable": "$.v", "StringGreaterThan": "ABC"}, {"v": "AB"}, false),
            ("StringGreaterThanPath: \"AB\" is not > \"ABC\"", {"Variable": "$.v", "StringGreaterThanPath": "$.w"}, {"v": "AB", "w": "ABC"}, false),
            ("StringGreaterThanPath: \"ABC\" > \"AB\" (ASL spec)", {"Variable": "$.v", "StringGreaterThanPath": "$.w"}, {"v": "ABC", "w": "AB"}, true),
            ("StringGreaterThanEquals: \"\" >= \"\"", {"Variable": "$.v", "StringGreaterThanEquals": ""}, {"v": ""}, true),
            ("StringGreaterThanEquals: \"AB\" >= \"A\"", {"Variable": "$.v", "StringGreaterThanEquals": "A"}, {"v": "AB"}, true),
            ("StringGreaterThanEquals: \"A\" is not >= \"AB\"", {"Variable": "$.v", "StringGreaterThanEquals": "AB"}, {"v": "A"}, false),
            ("StringGreaterThanEqualsPath: \"AB\" >= \"A\"", {"Variable": "$.v", "StringGreaterThanEqualsPath": "$.w"}, {"v": "AB", "w": "A"}, true),
            ("StringGreaterThanEqualsPath: \"A\" is not >= \"AB\"", {"Variable": "$.v", "StringGreaterThanEqualsPath": "$.w"}, {"v": "A", "w": "AB"}, false),
            ("StringLessThan: \"A\" < \"AB\"", {"Variable": "$.v", "StringLessThan": "AB"}, {"v": "A"}, true),
            ("StringLessThan: \"\" is not < \"\"", {"Variable": "$.v", "StringLessThan": ""}, {"v": ""}, false),
            ("StringLessThan: \"AB\" is not < \"A\"", {"Variable": "$.v", "StringLessThan": "A"}, {"v": "AB"}, false),
            ("StringLessThanPath: \"A\" < \"AB\"", {"Variable": "$.v", "StringLessThanPath": "$.w"}, {"v": "A", "w": "AB"}, true),
            ("StringLessThanPath: \"\" is not < \"\"", {"Variable": "$.v", "StringLessThanPath": "$.w"}, {"v": "", "w": ""}, false),
            ("StringLessThanEquals: \"\" <= \"\"", {"Variable": "$.v", "StringLessThanEquals": ""}, {"v": ""}, true),
            ("StringLessThanEquals: \"AB\" is not <= \"A\"", {"Variable": "$.v", "StringLessThanEquals": "A"}, {"v": "AB"}, false),
            ("StringLessThanEqualsPath: \"A\" <= \"AB\"", {"Variable": "$.v", "StringLessThanEqualsPath": "$.w"}, {"v": "A", "w": "AB"}, true),
            ("StringMatches: * matches any run of characters (ASL spec)", {"Variable": "$.v", "StringMatches": "log-*.txt"}, {"v": "log-2024-01.txt"}, true),
            ("StringMatches: * matches the empty run (ASL spec)", {"Variable": "$.v", "StringMatches": "log-*.txt"}, {"v": "log-.txt"}, true),
            ("StringMatches: literal parts must all match (ASL spec)", {"Variable": "$.v", "StringMatches": "log-*.txt"}, {"v": "log-1.csv"}, false),
            ("StringMatches: \\* is a literal star (ASL spec)", {"Variable": "$.v", "StringMatches": "a\\*b"}, {"v": "a*b"}, true),
            ("StringMatches: \\* does not match other text (ASL spec)", {"Variable": "$.v", "StringMatches": "a\\*b"}, {"v": "axb"}, false),
            ("StringMatches: a number is not a string (ASL spec)", {"Variable": "$.v", "StringMatches": "*"}, {"v": 1}, false),
        ],
        choose,
    );
}

#[test]
fn timestamp_operators() {
    const T55: &str = "2012-10-09T19:00:55Z";
    const T56: &str = "2012-10-09T19:00:56Z";
    check(
        rows![
            ("TimestampEquals: the same instant", {"Variable": "$.v", "TimestampEquals": T55}, {"v": T55}, true),
            ("TimestampEquals: a second later is not equal", {"Variable": "$.v", "TimestampEquals": T55}, {"v": T56}, false),
            ("TimestampEquals: a date-time with a space and no zone is not a timestamp", {"Variable": "$.v", "TimestampEquals": T55}, {"v": "2023-02-24 12:15:56.832957"}, false),
            ("TimestampEquals: an empty string is not a timestamp", {"Variable": "$.v", "TimestampEquals": T55}, {"v": ""}, false),
            ("TimestampEquals: null is not a timestamp", {"Variable": "$.v", "TimestampEquals": T55}, {"v": null}, false),
            ("TimestampEquals: a number is not a timestamp", {"Variable": "$.v", "TimestampEquals": T55}, {"v": 1}, false),
            ("TimestampEquals: a boolean is not a timestamp", {"Variable": "$.v", "TimestampEquals": T55}, {"v": false}, false),
            ("TimestampEquals: an array is not a timestamp", {"Variable": "$.v", "TimestampEquals": T55}, {"v": []}, false),
            ("TimestampEquals: an object is not a timestamp", {"Variable": "$.v", "TimestampEquals": T55}, {"v": {}}, false),
            ("TimestampEqualsPath: the same instant", {"Variable": "$.v", "TimestampEqualsPath": "$.w"}, {"v": T55, "w": T55}, true),
            ("TimestampEqualsPath: different instants", {"Variable": "$.v", "TimestampEqualsPath": "$.w"}, {"v": T56, "w": T55}, false),
            ("TimestampGreaterThan: a later instant", {"Variable": "$.v", "TimestampGreaterThan": T55}, {"v": T56}, true),
            ("TimestampGreaterThan: the same instant is not later", {"Variable": "$.v", "TimestampGreaterThan": T55}, {"v": T55}, false),
            ("TimestampGreaterThanPath: an earlier instant is not later", {"Variable": "$.v", "TimestampGreaterThanPath": "$.w"}, {"v": T55, "w": T56}, false),
            ("TimestampGreaterThanEquals: the same instant", {"Variable": "$.v", "TimestampGreaterThanEquals": T55}, {"v": T55}, true),
            ("TimestampGreaterThanEquals: an earlier instant", {"Variable": "$.v", "TimestampGreaterThanEquals": T56}, {"v": T55}, false),
            ("TimestampGreaterThanEqualsPath: an earlier instant", {"Variable": "$.v", "TimestampGreaterThanEqualsPath": "$.w"}, {"v": T55, "w": T56}, false),
            ("TimestampLessThan: an earlier instant", {"Variable": "$.v", "TimestampLessThan": T56}, {"v": T55}, true),
            ("TimestampLessThan: the same instant is not earlier", {"Variable": "$.v", "TimestampLessThan": T55}, {"v": T55}, false),
            ("TimestampLessThanPath: a later instant is not earlier", {"Variable": "$.v", "TimestampLessThanPath": "$.w"}, {"v": T56, "w": T55}, false),
            ("TimestampLessThanEquals: the same instant", {"Variable": "$.v", "TimestampLessThanEquals": T55}, {"v": T55}, true),
            ("TimestampLessThanEquals: a later instant", {"Variable": "$.v", "TimestampLessThanEquals": T55}, {"v": T56}, false),
            ("TimestampLessThanEqualsPath: a later instant", {"Variable": "$.v", "TimestampLessThanEqualsPath": "$.w"}, {"v": T56, "w": T55}, false),
        ],
        choose,
    );
}

#[test]
fn boolean_operator_and_type_tests() {
    check(
        rows![
            ("BooleanEquals: true == true", {"Variable": "$.v", "BooleanEquals": true}, {"v": true}, true),
            ("BooleanEquals: false == false", {"Variable": "$.v", "BooleanEquals": false}, {"v": false}, true),
            ("BooleanEquals: false is not true", {"Variable": "$.v", "BooleanEquals": true}, {"v": false}, false),
            ("BooleanEquals: 1 is not true", {"Variable": "$.v", "BooleanEquals": true}, {"v": 1}, false),
            ("BooleanEquals: 0 is not false", {"Variable": "$.v", "BooleanEquals": false}, {"v": 0}, false),
            ("BooleanEquals: an empty string is not false", {"Variable": "$.v", "BooleanEquals": false}, {"v": ""}, false),
            ("BooleanEquals: null is not false", {"Variable": "$.v", "BooleanEquals": false}, {"v": null}, false),
            ("BooleanEquals: an empty array is not false", {"Variable": "$.v", "BooleanEquals": false}, {"v": []}, false),
            ("BooleanEquals: an empty object is not false", {"Variable": "$.v", "BooleanEquals": false}, {"v": {}}, false),
            ("BooleanEqualsPath: true == true", {"Variable": "$.v", "BooleanEqualsPath": "$.w"}, {"v": true, "w": true}, true),
            ("BooleanEqualsPath: false == false", {"Variable": "$.v", "BooleanEqualsPath": "$.w"}, {"v": false, "w": false}, true),
            ("BooleanEqualsPath: false is not true", {"Variable": "$.v", "BooleanEqualsPath": "$.w"}, {"v": false, "w": true}, false),
            ("BooleanEqualsPath: a string is not a boolean", {"Variable": "$.v", "BooleanEqualsPath": "$.w"}, {"v": "HelloWorld", "w": true}, false),
            ("IsNull true: null", {"Variable": "$.v", "IsNull": true}, {"v": null}, true),
            ("IsNull true: 0 is not null", {"Variable": "$.v", "IsNull": true}, {"v": 0}, false),
            ("IsNull true: an empty string is not null", {"Variable": "$.v", "IsNull": true}, {"v": ""}, false),
            ("IsNull true: false is not null", {"Variable": "$.v", "IsNull": true}, {"v": false}, false),
            ("IsNull true: an empty array is not null", {"Variable": "$.v", "IsNull": true}, {"v": []}, false),
            ("IsNull false: matches a non-null value", {"Variable": "$.v", "IsNull": false}, {"v": {}}, true),
            ("IsNull false: does not match null", {"Variable": "$.v", "IsNull": false}, {"v": null}, false),
            ("IsPresent true: a field holding null is present", {"Variable": "$.v", "IsPresent": true}, {"v": null}, true),
            ("IsPresent true: a field holding false is present", {"Variable": "$.v", "IsPresent": true}, {"v": false}, true),
            ("IsPresent true: a field holding an empty array is present", {"Variable": "$.v", "IsPresent": true}, {"v": []}, true),
            ("IsPresent false: a present field does not match", {"Variable": "$.v", "IsPresent": false}, {"v": null}, false),
            ("IsPresent false: a missing field matches", {"Variable": "$.v", "IsPresent": false}, {"w": 1}, true),
            ("IsPresent true: a missing field does not match", {"Variable": "$.v", "IsPresent": true}, {}, false),
            ("IsNumeric true: 0", {"Variable": "$.v", "IsNumeric": true}, {"v": 0}, true),
            ("IsNumeric true: 1.1", {"Variable": "$.v", "IsNumeric": true}, {"v": 1.1}, true),
            ("IsNumeric true: a blank string is not numeric", {"Variable": "$.v", "IsNumeric": true}, {"v": " "}, false),
            ("IsNumeric true: true is not numeric", {"Variable": "$.v", "IsNumeric": true}, {"v": true}, false),
            ("IsNumeric true: null is not numeric", {"Variable": "$.v", "IsNumeric": true}, {"v": null}, false),
            ("IsNumeric false: matches null", {"Variable": "$.v", "IsNumeric": false}, {"v": null}, true),
            ("IsNumeric false: does not match 1", {"Variable": "$.v", "IsNumeric": false}, {"v": 1}, false),
            ("IsString true: an empty string", {"Variable": "$.v", "IsString": true}, {"v": ""}, true),
            ("IsString true: a timestamp is a string", {"Variable": "$.v", "IsString": true}, {"v": "2012-10-09T19:00:55Z"}, true),
            ("IsString true: null is not a string", {"Variable": "$.v", "IsString": true}, {"v": null}, false),
            ("IsString true: an array of strings is not a string", {"Variable": "$.v", "IsString": true}, {"v": [""]}, false),
            ("IsString false: matches 0", {"Variable": "$.v", "IsString": false}, {"v": 0}, true),
            ("IsString false: does not match a string", {"Variable": "$.v", "IsString": false}, {"v": "HelloWorld"}, false),
            ("IsBoolean true: true", {"Variable": "$.v", "IsBoolean": true}, {"v": true}, true),
            ("IsBoolean true: false is a boolean", {"Variable": "$.v", "IsBoolean": true}, {"v": false}, true),
            ("IsBoolean true: 0 is not a boolean", {"Variable": "$.v", "IsBoolean": true}, {"v": 0}, false),
            ("IsBoolean true: the string \"HelloWorld\" is not a boolean", {"Variable": "$.v", "IsBoolean": true}, {"v": "HelloWorld"}, false),
            ("IsBoolean false: matches null", {"Variable": "$.v", "IsBoolean": false}, {"v": null}, true),
            ("IsBoolean false: does not match false", {"Variable": "$.v", "IsBoolean": false}, {"v": false}, false),
        ],
        choose,
    );
}

#[test]
fn composite_rules_and_variable_sources() {
    check(
        rows![
            ("Not: matches when its rule does not", {"Not": {"Variable": "$.type", "StringEquals": "Private"}}, {"type": "Public"}, true),
            ("Not: does not match when its rule does", {"Not": {"Variable": "$.type", "StringEquals": "Private"}}, {"type": "Private"}, false),
            ("And: all rules must match", {"And": [{"Variable": "$.v", "NumericGreaterThanEquals": 20}, {"Variable": "$.v", "NumericLessThan": 30}]}, {"v": 22}, true),
            ("And: one failing rule fails it", {"And": [{"Variable": "$.v", "NumericGreaterThanEquals": 20}, {"Variable": "$.v", "NumericLessThan": 30}]}, {"v": 30}, false),
            ("Or: one matching rule suffices", {"Or": [{"Variable": "$.v", "StringEquals": "x"}, {"Variable": "$.v", "NumericEquals": 2}]}, {"v": 2}, true),
            ("nested And: type tests guard the comparison on $ itself", {"And": [{"IsPresent": true, "Variable": "$"}, {"And": [{"IsNumeric": true, "Variable": "$"}, {"NumericEquals": 3, "Variable": "$"}]}]}, 3, true),
            ("nested And: a string 3 fails the IsNumeric guard", {"And": [{"IsPresent": true, "Variable": "$"}, {"And": [{"IsNumeric": true, "Variable": "$"}, {"NumericEquals": 3, "Variable": "$"}]}]}, "3", false),
            ("Variable reads the context object", {"Variable": "$$.Execution.Input.v", "NumericLessThanEquals": 0}, {"v": 0}, true),
            ("Variable reads a variable", {"Variable": "$greeting", "StringEquals": "Hello"}, {}, true),
            ("a …Path operand reads a variable", {"Variable": "$.v", "NumericEqualsPath": "$n"}, {"v": 2}, true),
        ],
        choose,
    );
}

#[test]
fn intrinsic_functions() {
    let object_text = "{\"Arg1\": 1, \"Arg2\": []}";
    check(
        rows![
            ("States.Array: no arguments, an empty list", "States.Array()", {}, []),
            ("States.Array: nulls are kept", "States.Array($.a, $.b)", {"a": null, "b": null}, [null, null]),
            ("States.Array: blank strings are kept", "States.Array($.a, $.b)", {"a": " ", "b": ""}, [" ", ""]),
            ("States.Array: numbers are kept", "States.Array($.a, $.b)", {"a": 1, "b": 1.1}, [1, 1.1]),
            ("States.Array: a string holding JSON stays a string", "States.Array($.a)", {"a": object_text}, [object_text]),
            ("States.Array: objects are kept", "States.Array($.a, $.a)", {"a": {"Arg1": 1, "Arg2": []}}, [{"Arg1": 1, "Arg2": []}, {"Arg1": 1, "Arg2": []}]),
            ("States.ArrayContains: an empty list contains nothing", "States.ArrayContains($.a, $.b)", {"a": [], "b": null}, false),
            ("States.ArrayContains: an empty list does not contain []", "States.ArrayContains($.a, $.b)", {"a": [], "b": []}, false),
            ("States.ArrayContains: a nested list is compared by value", "States.ArrayContains($.a, $.b)", {"a": [[1, 2, 3], 2], "b": [1, 2, 3]}, true),
            ("States.ArrayContains: null is not an element", "States.ArrayContains($.a, $.b)", {"a": [[1, 2, 3], 2], "b": null}, false),
            ("States.ArrayContains: an object is compared by value", "States.ArrayContains($.a, $.b)", {"a": [{"1": 2, "2": []}], "b": {"1": 2, "2": []}}, true),
            ("States.ArrayContains: [] is not the object", "States.ArrayContains($.a, $.b)", {"a": [{"1": 2, "2": []}], "b": []}, false),
            ("States.ArrayContains: false is found", "States.ArrayContains($.a, $.b)", {"a": [true, false], "b": false}, true),
            ("States.ArrayGetItem: index 5 is the sixth element", "States.ArrayGetItem($.a, $.i)", {"a": [1, 2, 3, 4, 5, 6, 7, 8, 9], "i": 5}, 6),
            ("States.ArrayLength: nine elements", "States.ArrayLength($.a)", {"a": [1, 2, 3, 4, 5, 6, 7, 8, 9]}, 9),
            ("States.ArrayLength: duplicates all count", "States.ArrayLength($.a)", {"a": [null, null, true, true, 1, 1, "x", "x", [], [], {"a": 1}, {"a": 1}]}, 12),
            ("States.ArrayPartition: an empty list gives no chunks", "States.ArrayPartition($.a, 3)", {"a": []}, []),
            ("States.ArrayPartition: a chunk larger than the list", "States.ArrayPartition($.a, 5)", {"a": [0]}, [[0]]),
            ("States.ArrayPartition: chunks of one", "States.ArrayPartition($.a, 1)", {"a": [0, 1, 2, 3]}, [[0], [1], [2], [3]]),
            ("States.ArrayPartition: the last chunk holds the rest", "States.ArrayPartition($.a, 2)", {"a": [0, 1, 2]}, [[0, 1], [2]]),
            ("States.ArrayPartition: 4 by 3", "States.ArrayPartition($.a, 3)", {"a": [0, 1, 2, 3]}, [[0, 1, 2], [3]]),
            ("States.ArrayPartition: an exact fit is one chunk", "States.ArrayPartition($.a, 4)", {"a": [0, 1, 2, 3]}, [[0, 1, 2, 3]]),
            ("States.ArrayRange: the end is included when reached", "States.ArrayRange($.a, $.b, $.c)", {"a": 0, "b": 9, "c": 3}, [0, 3, 6, 9]),
            ("States.ArrayRange: the end is not passed", "States.ArrayRange($.a, $.b, $.c)", {"a": 0, "b": 10, "c": 3}, [0, 3, 6, 9]),
            ("States.ArrayRange: a step past the end gives the start only", "States.ArrayRange($.a, $.b, $.c)", {"a": 1, "b": 9, "c": 9}, [1]),
            ("States.ArrayRange: odd numbers 1 to 9", "States.ArrayRange(1, 9, 2)", {}, [1, 3, 5, 7, 9]),
            ("States.Base64Encode: an empty string", "States.Base64Encode($.s)", {"s": ""}, ""),
            ("States.Base64Encode: text", "States.Base64Encode($.s)", {"s": "Data to encode"}, "RGF0YSB0byBlbmNvZGU="),
            ("States.Base64Decode: an empty string", "States.Base64Decode($.s)", {"s": ""}, ""),
            ("States.Base64Decode: text", "States.Base64Decode($.s)", {"s": "RGF0YSB0byBlbmNvZGU="}, "Data to encode"),
            ("States.Format: an empty argument", "States.Format('Formatting argument {}.', $.a)", {"a": ""}, "Formatting argument ."),
            ("States.Format: a blank argument", "States.Format('Formatting argument {}.', $.a)", {"a": " "}, "Formatting argument  ."),
            ("States.Format: null is written null", "States.Format('Formatting argument {}.', $.a)", {"a": null}, "Formatting argument null."),
            ("States.Format: an integer", "States.Format('Formatting argument {}.', $.a)", {"a": 1}, "Formatting argument 1."),
            ("States.Format: a fraction", "States.Format('Formatting argument {}.', $.a)", {"a": 1.1}, "Formatting argument 1.1."),
            ("States.Format: a string holding JSON is inserted verbatim", "States.Format('x={}.', $.a)", {"a": object_text}, "x={\"Arg1\": 1, \"Arg2\": []}."),
            ("States.Format: an object is written as {key=value, …}", "States.Format('fst={} and snd={}.', $.a, $.a)", {"a": {"Arg1": 1, "Arg2": []}}, "fst={Arg1=1, Arg2=[]} and snd={Arg1=1, Arg2=[]}."),
            ("States.Format: two arguments in order", "States.Format('fst={} and snd={}.', $.a, $.b)", {"a": "x", "b": null}, "fst=x and snd=null."),
            ("States.Format: the template may be a variable", "States.Format($greeting)", {}, "Hello"),
            ("States.Hash: MD5", "States.Hash($.s, 'MD5')", {"s": "input data"}, "812f45842bc6d66ee14572ce20db8e86"),
            ("States.Hash: SHA-1", "States.Hash($.s, 'SHA-1')", {"s": "input data"}, "aaff4a450a104cd177d28d18d74485e8cae074b7"),
            ("States.Hash: SHA-256", "States.Hash($.s, $.alg)", {"s": "input data", "alg": "SHA-256"}, "b4a697a057313163aee33cd8d40c66e9f0f177e00cac2de32475ffff6169c3e3"),
            ("States.Hash: SHA-384", "States.Hash($.s, 'SHA-384')", {"s": "input data"}, "d28a7d5cf25a74f11a50a18452b75e04bb3d70c9dd0510d6123aa008c756511b87525bdc835ebb27e1fb9e9374a15562"),
            ("States.Hash: SHA-512", "States.Hash($.s, 'SHA-512')", {"s": "input data"}, "6ce4adb348546d4f449c4d25aad9a7c9cb711d9e91982d3f0b29ca2f3f47d4ce2deba23bf2954f0f1d593fc50283731a533d30d425402d4f91316d871303aac4"),
            ("States.JsonMerge: shallow, the second wins key by key", "States.JsonMerge($.a, $.b, false)", {"a": {"a": {"a1": 1, "a2": 2}, "b": 2, "d": 3}, "b": {"a": {"a3": 1, "a4": 2}, "c": 3, "d": 4}}, {"a": {"a3": 1, "a4": 2}, "b": 2, "c": 3, "d": 4}),
            ("States.JsonToString: null", "States.JsonToString($.v)", {"v": null}, "null"),
            ("States.JsonToString: 0", "States.JsonToString($.v)", {"v": 0}, "0"),
            ("States.JsonToString: 1.1", "States.JsonToString($.v)", {"v": 1.1}, "1.1"),
            ("States.JsonToString: true", "States.JsonToString($.v)", {"v": true}, "true"),
            ("States.JsonToString: a string is quoted", "States.JsonToString($.v)", {"v": "HelloWorld"}, "\"HelloWorld\""),
            ("States.JsonToString: an array, compact", "States.JsonToString($.v)", {"v": [1, 2, "HelloWorld"]}, "[1,2,\"HelloWorld\"]"),
            ("States.JsonToString: an object, compact", "States.JsonToString($.v)", {"v": {"Arg1": 1, "Arg2": []}}, "{\"Arg1\":1,\"Arg2\":[]}"),
            ("States.StringToJson: an empty string is null", "States.StringToJson($.s)", {"s": ""}, null),
            ("States.StringToJson: a blank string is null", "States.StringToJson($.s)", {"s": " "}, null),
            ("States.StringToJson: \"null\"", "States.StringToJson($.s)", {"s": "null"}, null),
            ("States.StringToJson: \"-0\" is zero", "States.StringToJson($.s)", {"s": "-0"}, 0.0),
            ("States.StringToJson: \"1.1\"", "States.StringToJson($.s)", {"s": "1.1"}, 1.1),
            ("States.StringToJson: \"true\"", "States.StringToJson($.s)", {"s": "true"}, true),
            ("States.StringToJson: a quoted string", "States.StringToJson($.s)", {"s": "\"HelloWorld\""}, "HelloWorld"),
            ("States.StringToJson: an array", "States.StringToJson($.s)", {"s": "[1, 2, \"HelloWorld\"]"}, [1, 2, "HelloWorld"]),
            ("States.StringToJson: an object", "States.StringToJson($.s)", {"s": object_text}, {"Arg1": 1, "Arg2": []}),
            ("States.MathAdd: integers", "States.MathAdd($.a, $.b)", {"a": -9, "b": 3}, (-6)),
            ("States.MathAdd: each argument is rounded half up first (1.49 + 1.5 = 1 + 2)", "States.MathAdd($.a, $.b)", {"a": 1.49, "b": 1.5}, 3),
            ("States.MathAdd: 1.5 + 1.51 = 2 + 2", "States.MathAdd($.a, $.b)", {"a": 1.5, "b": 1.51}, 4),
            ("States.MathAdd: -1.49 + -1.5 = -1 + -1", "States.MathAdd($.a, $.b)", {"a": -1.49, "b": -1.5}, (-2)),
            ("States.MathAdd: -1.5 + -1.51 = -1 + -2", "States.MathAdd($.a, $.b)", {"a": -1.5, "b": -1.51}, (-3)),
            ("States.MathAdd: 1.49 + -1.49 = 1 + -1", "States.MathAdd($.a, $.b)", {"a": 1.49, "b": -1.49}, 0),
            ("States.MathAdd: 0.5 rounds to 1", "States.MathAdd($.a, 0)", {"a": 0.5}, 1),
            ("States.MathAdd: 2.5 rounds to 3", "States.MathAdd($.a, 0)", {"a": 2.5}, 3),
            ("States.MathAdd: -0.5 rounds to 0", "States.MathAdd($.a, 0)", {"a": -0.5}, 0),
            ("States.MathAdd: -2.5 rounds to -2", "States.MathAdd($.a, 0)", {"a": -2.5}, (-2)),
            ("States.MathAdd: -3.5 rounds to -3", "States.MathAdd($.a, 0)", {"a": -3.5}, (-3)),
            ("States.MathAdd: -0.5 + 0.5 = 0 + 1", "States.MathAdd($.a, $.b)", {"a": -0.5, "b": 0.5}, 1),
            ("States.StringSplit: no delimiter found, the whole string", "States.StringSplit($.s, ',')", {"s": " "}, [" "]),
            ("States.StringSplit: blanks around delimiters are kept", "States.StringSplit($.s, ',')", {"s": " , "}, [" ", " "]),
            ("States.StringSplit: empty pieces are dropped", "States.StringSplit($.s, ',')", {"s": ", , ,"}, [" ", " "]),
            ("States.StringSplit: only delimiters, no pieces", "States.StringSplit($.s, ',')", {"s": ",,,,"}, []),
            ("States.StringSplit: simple list", "States.StringSplit($.s, $.d)", {"s": "1,2,3,4,5", "d": ","}, ["1", "2", "3", "4", "5"]),
            ("States.StringSplit: every character of the delimiter splits", "States.StringSplit($.s, $.d)", {"s": "This.is+a,test=string", "d": ".+,="}, ["This", "is", "a", "test", "string"]),
            ("States.StringSplit: a letter and a newline as delimiters", "States.StringSplit($.s, $.d)", {"s": "split on T and \nnew line", "d": "T\n"}, ["split on ", " and ", "new line"]),
            ("intrinsic arguments may read $$ and call other functions", "States.ArrayLength(States.StringSplit($$.Execution.Input.s, ','))", {"s": "a,b"}, 2),
        ],
        |expr, scope| {
            intrinsic::evaluate(expr.as_str().expect("an expression"), scope)
                .map_err(|e| e.to_string())
        },
    );
}

/// Intrinsic failures: AWS's recordings hold none, so past the error name these causes are
/// stepops's own wording, kept stable because operators read them.
#[test]
fn intrinsic_errors() {
    check(
        rows![
            ("a path argument that matches nothing is States.Runtime naming the field", "States.Format('{}', $.missing)", {"a": 1},
                "States.Runtime: The JSONPath '$.missing' specified for the field 'r.$' could not be found in the input '{\"a\":1}'"),
            ("a chunk size of 0 is States.IntrinsicFailure", "States.ArrayPartition($.a, 0)", {"a": [1]},
                "States.IntrinsicFailure: Invalid arguments in the intrinsic function call States.ArrayPartition for the field 'r.$': the chunk size must be greater than 0, got 0"),
            ("an index past the end is States.IntrinsicFailure", "States.ArrayGetItem($.a, 2)", {"a": [1, 2]},
                "States.IntrinsicFailure: Invalid arguments in the intrinsic function call States.ArrayGetItem for the field 'r.$': the index 2 is out of bounds for an array of 2 item(s)"),
            ("an unknown hash algorithm is States.IntrinsicFailure", "States.Hash('x', 'SHA-3')", {},
                "States.IntrinsicFailure: Invalid arguments in the intrinsic function call States.Hash for the field 'r.$': the hash algorithm 'SHA-3' is not supported; use MD5, SHA-1, SHA-256, SHA-384 or SHA-512"),
            ("more arguments than the template's {} is States.IntrinsicFailure", "States.Format('{}', 1, 2)", {},
                "States.IntrinsicFailure: Invalid arguments in the intrinsic function call States.Format for the field 'r.$': the format string has 1 placeholder(s) but 2 argument(s) were given"),
            ("too few arguments for the template's {} is States.IntrinsicFailure", "States.Format('{} {}', 1)", {},
                "States.IntrinsicFailure: Invalid arguments in the intrinsic function call States.Format for the field 'r.$': the format string has more placeholders than the 1 argument(s) given"),
        ],
        |expr, scope| {
            let expr = expr.as_str().expect("an expression");
            match intrinsic::evaluate_for_field(expr, Some("r.$"), scope) {
                Ok(v) => Ok(v),
                Err(e) => Ok(Value::String(e.to_string())),
            }
        },
    );
}

#[test]
fn payload_templates_and_jsonpath() {
    let items: Vec<Value> = (0..=10).map(|i| json!({"item_key": i})).collect();
    let items = Value::Array(items);
    check(
        rows![
            ("a key without .$ is copied as it is, Comment included", {"Comment": "text", "constant": "$.not.a.path"}, {}, {"Comment": "text", "constant": "$.not.a.path"}),
            ("a .$ key is replaced by the value its path selects", {"v.$": "$.a.b"}, {"a": {"b": [1]}}, {"v": [1]}),
            ("templates recurse through objects and arrays", {"o": {"v.$": "$.a"}, "l": [{"w.$": "$.a"}, 1]}, {"a": 2}, {"o": {"v": 2}, "l": [{"w": 2}, 1]}),
            ("a .$ key may read the context object", {"v.$": "$$.Execution.Input.a"}, {"a": "x"}, {"v": "x"}),
            ("a .$ key may read a variable", {"v.$": "$greeting"}, {}, {"v": "Hello"}),
            ("a .$ key may call an intrinsic function", {"v.$": "States.Format('{} {}', $greeting, $.who)"}, {"who": "you"}, {"v": "Hello you"}),
            ("$[0] on an array picks its first element", {"item.$": "$.items[0]"}, {"items": items}, {"item": {"item_key": 0}}),
            ("$[10] picks the eleventh element", {"item.$": "$.items[10]"}, {"items": items}, {"item": {"item_key": 10}}),
            ("a filter returns the matching elements as a list", {"v.$": "$.users[?(@.status == 0)]"}, {"users": [{"y": 1997, "status": 0}, {"y": 1998, "status": 1}]}, {"v": [{"y": 1997, "status": 0}]}),
            ("a wildcard over the properties of an empty object is an empty list", {"v.$": "$[*]"}, {}, {"v": []}),
            ("a wildcard over a missing array is an empty list", {"v.$": "$.items[*].itemValue"}, {}, {"v": []}),
            ("a slice [1:] over a missing array is an empty list", {"v.$": "$.item.items[1:]"}, {}, {"v": []}),
            ("a slice [:1] over a missing array is an empty list", {"v.$": "$.items[:1].itemValue"}, {}, {"v": []}),
            ("a slice [1:5] over a missing array is an empty list", {"v.$": "$.item.items[1:5]"}, {}, {"v": []}),
            ("a slice [1:3] over an array (ASL spec)", {"v.$": "$.a[1:3]"}, {"a": [0, 1, 2, 3]}, {"v": [1, 2]}),
            ("a definite path that matches nothing is States.Runtime naming the field", {"v.$": "$.no_such_jsonpath"}, {"int-literal": 0},
                "States.Runtime: The JSONPath '$.no_such_jsonpath' specified for the field 'v.$' could not be found in the input '{\"int-literal\":0}'"),
        ],
        |t, scope| Ok(template::evaluate(t, scope).unwrap_or_else(|e| Value::String(e.to_string()))),
    );
}
