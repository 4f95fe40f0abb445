//! Unit tests of `path.rs`.

use super::*;
use serde_json::json;

fn read(path: &str, input: Value) -> Option<Value> {
    let vars = Map::new();
    let ctx = json!({"Execution": {"Id": "arn:x"}});
    JsonPath::parse(path)
        .unwrap()
        .read(&Scope::new(&input, &ctx, &vars))
}

#[test]
fn definite_paths() {
    let doc = json!({"a": {"b": [1, 2, 3]}, "x y": 5, "n": null});
    assert_eq!(read("$", doc.clone()), Some(doc.clone()));
    assert_eq!(read("$.a.b[0]", doc.clone()), Some(json!(1)));
    assert_eq!(read("$.a.b[-1]", doc.clone()), Some(json!(3)));
    assert_eq!(read("$['x y']", doc.clone()), Some(json!(5)));
    assert_eq!(read("$[\"x y\"]", doc.clone()), Some(json!(5)));
    assert_eq!(read("$.n", doc.clone()), Some(Value::Null));
    assert_eq!(read("$.missing", doc.clone()), None);
    assert_eq!(read("$.a.b[7]", doc.clone()), None);
    assert_eq!(read("$.a.b.length()", doc.clone()), Some(json!(3)));
    assert_eq!(read("$$.Execution.Id", doc), Some(json!("arn:x")));
}

#[test]
fn indefinite_paths() {
    let doc = json!({"items": [{"v": 1}, {"v": 2}, {"w": 3}, {"v": 4}]});
    assert_eq!(read("$.items[*].v", doc.clone()), Some(json!([1, 2, 4])));
    assert_eq!(
        read("$.items[1:3]", doc.clone()),
        Some(json!([{"v": 2}, {"w": 3}]))
    );
    assert_eq!(read("$.items[::2].v", doc.clone()), Some(json!([1])));
    assert_eq!(
        read("$.items[::9223372036854775807]", doc.clone()),
        Some(json!([{"v": 1}]))
    );
    assert_eq!(
        read("$.items[-2:]", doc.clone()),
        Some(json!([{"w": 3}, {"v": 4}]))
    );
    assert_eq!(read("$..v", doc.clone()), Some(json!([1, 2, 4])));
    assert_eq!(
        read("$..*", json!({"a": {"b": 1}, "c": [2]})),
        Some(json!([{"b": 1}, [2], 1, 2]))
    );
    assert_eq!(
        read("$..[0]", json!({"a": [[1], 2]})),
        Some(json!([[1], 1]))
    );
    assert_eq!(read("$.items[0,3].v", doc.clone()), Some(json!([1, 4])));
    assert_eq!(
        read("$.items[?(@.v > 1)].v", doc.clone()),
        Some(json!([2, 4]))
    );
    assert_eq!(
        read("$.items[?(@.v)]", doc.clone())
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        read("$.items[?(@.v == 1 || @.w == 3)]", doc.clone()),
        Some(json!([{"v": 1}, {"w": 3}]))
    );
    assert_eq!(
        read("$.items[?(@.v >= 2 && @.v < 4)]", doc.clone()),
        Some(json!([{"v": 2}]))
    );
    assert_eq!(read("$.nothing[*]", doc.clone()), Some(json!([])));
    assert_eq!(read("$[*]", json!({})), Some(json!([])));
    assert_eq!(read("$.items.length()", doc.clone()), Some(json!(4)));
    assert_eq!(
        read("$.items[?(@.v != 2)]", doc),
        Some(json!([{"v": 1}, {"w": 3}, {"v": 4}]))
    );
    assert_eq!(
        read("$.a[?(@ > 1)]", json!({"a": [1, 2, 3]})),
        Some(json!([2, 3]))
    );
    assert_eq!(
        read(
            "$.a[?(@.n == $.want)].n",
            json!({"want": "x", "a": [{"n": "x"}, {"n": "y"}]})
        ),
        Some(json!(["x"]))
    );
}

#[test]
fn regex_filter_and_strings() {
    let doc = json!({"u": [{"n": "alice"}, {"n": "Bob"}, {"n": "bill"}]});
    assert_eq!(
        read("$.u[?(@.n =~ /b.*/)].n", doc.clone()),
        Some(json!(["bill"]))
    );
    assert_eq!(
        read("$.u[?(@.n =~ /b.*/i)].n", doc.clone()),
        Some(json!(["Bob", "bill"]))
    );
    assert_eq!(
        read("$.u[?(@.n == 'alice')].n", doc.clone()),
        Some(json!(["alice"]))
    );
    assert_eq!(
        read("$.u[?(@.n in ['alice','bill'])].n", doc),
        Some(json!(["alice", "bill"]))
    );
}

#[test]
fn variables() {
    let mut vars = Map::new();
    vars.insert("x".into(), json!({"y": [5]}));
    let input = json!({});
    let scope = Scope::new(&input, &Value::Null, &vars);
    assert_eq!(
        JsonPath::parse("$x.y[0]").unwrap().read(&scope),
        Some(json!(5))
    );
    assert_eq!(
        JsonPath::parse("$x").unwrap().read(&scope),
        Some(json!({"y": [5]}))
    );
    assert_eq!(JsonPath::parse("$nope").unwrap().read(&scope), None);
}

#[test]
fn escapes_in_quoted_names() {
    let doc = json!({"Test\\\"\"Name\"": 1, "it's": 2});
    assert_eq!(read("$['Test\\\"\"Name\"']", doc.clone()), Some(json!(1)));
    assert_eq!(read("$['it\\'s']", doc), Some(json!(2)));
}

#[test]
fn random_paths_never_panic() {
    const PIECES: &[&str] = &[
        "$",
        "$$",
        "$v",
        ".",
        "..",
        "a",
        "b",
        "[",
        "]",
        "*",
        "?",
        "(",
        ")",
        "@",
        "'",
        "\"",
        "\\",
        ",",
        ":",
        "-1",
        "0",
        "2",
        "9223372036854775807",
        "-9223372036854775808",
        "==",
        "!=",
        "<",
        ">=",
        "=~",
        "/x/i",
        "&&",
        "||",
        "!",
        " ",
        "length()",
        "in",
        "true",
    ];
    let doc = json!({"a": [1, {"b": [2, 3]}, "s"], "b": {"a": null}});
    let vars: Map<String, Value> = serde_json::from_value(json!({"v": [1, 2]})).unwrap();
    let scope = Scope::new(&doc, &doc, &vars);
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut parsed = 0;
    for _ in 0..20_000 {
        let mut text = String::from(["$", "$$", "$v"][(seed % 3) as usize]);
        for _ in 0..(seed % 7) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            text.push_str(PIECES[(seed % PIECES.len() as u64) as usize]);
        }
        if let Ok(p) = JsonPath::parse(&text) {
            parsed += 1;
            let _ = p.read(&scope);
            let _ = p.normalized();
            let _ = write(doc.clone(), &p, json!(1));
        }
    }
    assert!(parsed > 500, "only {parsed} random paths parsed");
}

#[test]
fn syntax_errors() {
    for bad in [
        "$.a b",
        "$.a ",
        "",
        "a.b",
        "$.",
        "$[",
        "$.a[?(@.x >)]",
        "$.a]",
        "$..",
        "$.a.foo()",
    ] {
        assert!(JsonPath::parse(bad).is_err(), "{bad} should not parse");
    }
}

#[test]
fn select_reports_aws_cause() {
    let input = json!({"int-literal": 0});
    let vars = Map::new();
    let scope = Scope::new(&input, &Value::Null, &vars);
    let e = JsonPath::parse("$.NoSuchInputPath")
        .unwrap()
        .select(&scope)
        .unwrap_err();
    assert_eq!(e.error, "States.Runtime");
    assert_eq!(
        e.cause,
        "Invalid path '$.NoSuchInputPath' : No results for path: $['NoSuchInputPath']"
    );
    assert_eq!(JsonPath::parse("$").unwrap().select(&scope).unwrap(), input);
}

#[test]
fn normalized_and_reference() {
    let p = JsonPath::parse("$.NoSuchInputPath").unwrap();
    assert_eq!(p.normalized(), "$['NoSuchInputPath']");
    assert!(p.is_reference());
    assert_eq!(
        JsonPath::parse("$.a[0].b").unwrap().normalized(),
        "$['a'][0]['b']"
    );
    assert!(!JsonPath::parse("$.a[*]").unwrap().is_reference());
    assert!(!JsonPath::parse("$..a").unwrap().is_reference());
}

#[test]
fn write_result_path() {
    let p = |s| JsonPath::parse(s).unwrap();
    assert_eq!(write(json!({"a": 1}), &p("$"), json!(2)).unwrap(), json!(2));
    assert_eq!(
        write(json!({"a": 1}), &p("$.b.c"), json!(2)).unwrap(),
        json!({"a": 1, "b": {"c": 2}})
    );
    assert_eq!(
        write(json!({"a": {"x": 0}}), &p("$.a.y"), json!(2)).unwrap(),
        json!({"a": {"x": 0, "y": 2}})
    );
    assert_eq!(
        write(json!({"a": [0, 1]}), &p("$.a[1]"), json!(9)).unwrap(),
        json!({"a": [0, 9]})
    );
    let e = write(json!({"a": 1}), &p("$.a.b"), json!(2)).unwrap_err();
    assert_eq!(e.error, "States.ResultPathMatchFailure");
    assert_eq!(
        e.cause,
        "Unable to apply ResultPath '$.a.b' to input '{\"a\":1}'"
    );
    assert!(write(json!("str"), &p("$.a"), json!(2)).is_err());
    assert!(write(json!({}), &p("$.a[*]"), json!(2)).is_err());
}
