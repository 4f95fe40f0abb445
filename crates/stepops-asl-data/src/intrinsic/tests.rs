//! Unit tests of `intrinsic.rs`.

use super::*;
use serde_json::json;

fn eval(expr: &str, input: Value) -> Result<Value, DataError> {
    let vars: Map<String, Value> = serde_json::from_value(json!({"v": "var"})).unwrap();
    let ctx = json!({"Execution": {"Input": {"x": 1}}});
    evaluate(expr, &Scope::new(&input, &ctx, &vars))
}

#[test]
fn format_and_escapes() {
    assert_eq!(
        eval(
            "States.Format('a {} b {}', $.x, $$.Execution.Input.x)",
            json!({"x": "X"})
        )
        .unwrap(),
        json!("a X b 1")
    );
    assert_eq!(
        eval(r"States.Format('\{\} it\'s {} \\', $v)", json!({})).unwrap(),
        json!(r"{} it's var \")
    );
    assert_eq!(
        eval(
            "States.Format('{}', $.o)",
            json!({"o": {"a": 1, "b": [1, 2]}})
        )
        .unwrap(),
        json!("{a=1, b=[1, 2]}")
    );
    assert_eq!(
        eval("States.Format('{}', null)", json!({})).unwrap(),
        json!("null")
    );
    let e = eval("States.Format('{} {}', 1)", json!({})).unwrap_err();
    assert_eq!(e.error, "States.IntrinsicFailure");
    assert!(eval("States.Format('{}', 1, 2)", json!({})).is_err());
}

#[test]
fn json_functions() {
    assert_eq!(
        eval("States.StringToJson($.s)", json!({"s": "{\"a\": [1]}"})).unwrap(),
        json!({"a": [1]})
    );
    assert_eq!(
        eval("States.StringToJson($.s)", json!({"s": " "})).unwrap(),
        Value::Null
    );
    assert_eq!(
        eval("States.JsonToString($.o)", json!({"o": {"a": [1, "x"]}})).unwrap(),
        json!("{\"a\":[1,\"x\"]}")
    );
    assert_eq!(
        eval(
            "States.JsonMerge($.a, $.b, false)",
            json!({"a": {"x": {"p": 1}, "y": 1}, "b": {"x": {"q": 2}}})
        )
        .unwrap(),
        json!({"x": {"q": 2}, "y": 1})
    );
    assert!(eval("States.JsonMerge($.a, $.a, true)", json!({"a": {}})).is_err());
    assert_eq!(
        eval(
            "States.JsonMerge(States.StringToJson('{\"a\": 1}'), $.b, false)",
            json!({"b": {"c": 2}})
        )
        .unwrap(),
        json!({"a": 1, "c": 2})
    );
}

#[test]
fn array_functions() {
    assert_eq!(
        eval("States.Array(1, 'a', true, null, $.x)", json!({"x": [1]})).unwrap(),
        json!([1, "a", true, null, [1]])
    );
    assert_eq!(eval("States.Array()", json!({})).unwrap(), json!([]));
    assert_eq!(
        eval("States.ArrayPartition($.a, 2)", json!({"a": [1, 2, 3]})).unwrap(),
        json!([[1, 2], [3]])
    );
    assert!(eval("States.ArrayPartition($.a, 0)", json!({"a": [1]})).is_err());
    assert_eq!(
        eval("States.ArrayContains($.a, 2.0)", json!({"a": [1, 2]})).unwrap(),
        json!(true)
    );
    assert_eq!(
        eval("States.ArrayRange(1, 9, 2)", json!({})).unwrap(),
        json!([1, 3, 5, 7, 9])
    );
    assert_eq!(
        eval("States.ArrayRange(5, 1, -2)", json!({})).unwrap(),
        json!([5, 3, 1])
    );
    assert!(eval("States.ArrayRange(0, 1000, 1)", json!({})).is_err());
    assert_eq!(
        eval("States.ArrayRange(0, 999, 1)", json!({}))
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1000
    );
    assert_eq!(
        eval("States.ArrayGetItem($.a, 1)", json!({"a": [1, 2]})).unwrap(),
        json!(2)
    );
    assert!(eval("States.ArrayGetItem($.a, 2)", json!({"a": [1, 2]})).is_err());
    assert_eq!(
        eval("States.ArrayLength($.a)", json!({"a": [1, 2]})).unwrap(),
        json!(2)
    );
    assert_eq!(
        eval(
            "States.ArrayUnique($.a)",
            json!({"a": [1, 1.0, "1", {"a": 1}, {"a": 1}]})
        )
        .unwrap(),
        json!([1, "1", {"a": 1}])
    );
}

#[test]
fn encoding_hash_math_string() {
    assert_eq!(
        eval("States.Base64Encode('Data to encode')", json!({})).unwrap(),
        json!("RGF0YSB0byBlbmNvZGU=")
    );
    assert_eq!(
        eval("States.Base64Decode('RGF0YSB0byBlbmNvZGU=')", json!({})).unwrap(),
        json!("Data to encode")
    );
    assert!(eval("States.Base64Encode($.s)", json!({"s": "a".repeat(10_001)})).is_err());
    assert_eq!(
        eval("States.Hash('input data', 'MD5')", json!({})).unwrap(),
        json!("812f45842bc6d66ee14572ce20db8e86")
    );
    assert!(eval("States.Hash('x', 'SHA-3')", json!({})).is_err());
    assert_eq!(
        eval("States.MathAdd(1.5, -1.5)", json!({})).unwrap(),
        json!(1)
    );
    assert_eq!(
        eval("States.MathAdd($.a, 3)", json!({"a": -9})).unwrap(),
        json!(-6)
    );
    let r = eval("States.MathRandom(1, 10, 7)", json!({})).unwrap();
    assert_eq!(r, eval("States.MathRandom(1, 10, 7)", json!({})).unwrap());
    assert!((1..10).contains(&r.as_i64().unwrap()));
    assert_eq!(
        eval("States.StringSplit('a,b,,c', ',')", json!({})).unwrap(),
        json!(["a", "b", "c"])
    );
    let u = eval("States.UUID()", json!({})).unwrap();
    assert_eq!(
        uuid::Uuid::parse_str(u.as_str().unwrap())
            .unwrap()
            .get_version_num(),
        4
    );
}

#[test]
fn random_calls_never_panic() {
    const NAMES: &[&str] = &[
        "States.Format",
        "States.Array",
        "States.ArrayRange",
        "States.ArrayPartition",
        "States.ArrayGetItem",
        "States.MathAdd",
        "States.MathRandom",
        "States.StringSplit",
        "States.Hash",
        "States.JsonMerge",
        "States.StringToJson",
        "States.Base64Decode",
    ];
    const ARGS: &[&str] = &[
        "'{}'",
        "'a\\'",
        "'\\{'",
        "1",
        "-1",
        "0",
        "1.5",
        "9223372036854775807",
        "-9223372036854775808",
        "true",
        "null",
        "$.a",
        "$.s",
        "$.o",
        "$v",
        "$$",
        "$.a[*]",
        "States.Array(1)",
        "'SHA-1'",
        "','",
        "'e30='",
        "')'",
        "$['x,y']",
    ];
    let input = json!({"a": [1, 2, 3], "s": "x,y", "o": {"k": 1}, "x,y": 2});
    let vars: Map<String, Value> = serde_json::from_value(json!({"v": "{}"})).unwrap();
    let scope = Scope::new(&input, &input, &vars);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut ok = 0;
    for _ in 0..20_000 {
        let name = NAMES[(next() % NAMES.len() as u64) as usize];
        let n = next() % 4;
        let args: Vec<&str> = (0..n)
            .map(|_| ARGS[(next() % ARGS.len() as u64) as usize])
            .collect();
        if evaluate(&format!("{name}({})", args.join(", ")), &scope).is_ok() {
            ok += 1;
        }
    }
    assert!(ok > 1000, "only {ok} random calls succeeded");
}

#[test]
fn syntax_and_missing_paths() {
    assert!(is_intrinsic("States.UUID()"));
    assert!(!is_intrinsic("$.a"));
    assert!(validate("States.Nope()").is_err());
    assert!(validate("States.Format('x'").is_err());
    assert!(validate("States.Format('x') extra").is_err());
    let e = eval("States.Format('{}', $.missing)", json!({})).unwrap_err();
    assert_eq!(e.error, "States.Runtime");
    let input = json!({"a": 1});
    let vars = Map::new();
    let e = evaluate_for_field(
        "States.Format('{}', $.missing)",
        Some("CausePath"),
        &Scope::new(&input, &Value::Null, &vars),
    )
    .unwrap_err();
    assert_eq!(
        e.cause,
        "The JSONPath '$.missing' specified for the field 'CausePath' could not be found in the input '{\"a\":1}'"
    );
}
