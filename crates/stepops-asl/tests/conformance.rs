//! Runs every case of the AWS-recorded conformance corpus (`shared/asl-conformance`, read in
//! place) and compares status, output, error and cause with what AWS returned.
//!
//! An extra suite: it runs when `STEPOPS_ASL_CONFORMANCE` names the corpus's folder (CI's
//! `.ci/run` always sets it) and otherwise prints one line saying it was not run. The engine's
//! behaviour is covered without it by the repository's own tests (`tests/behaviour.rs`).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use serde_json::{Value, json};
use stepops_asl::{Definition, ExecutionResult, RunOptions};
use tokio_util::sync::CancellationToken;

/// The corpus's size: every case must be found and run (docs/asl.md, "Conformance").
const EXPECTED_CASES: usize = 739;

/// How to point the test at the corpus, for failure messages.
const HOW_TO_FIX: &str = "STEPOPS_ASL_CONFORMANCE must name the corpus's folder (read in place, \
    never copied). If the corpus itself changed, update EXPECTED_CASES in \
    crates/stepops-asl/tests/conformance.rs and the table in docs/asl.md.";

/// Cases deliberately out of scope, each with its reason (also listed in docs/asl.md).
const OUT_OF_SCOPE: &[(&str, &str)] = &[];

/// The corpus's folder, or `None` (after saying so) when `STEPOPS_ASL_CONFORMANCE` is unset.
fn corpus_dir() -> Option<PathBuf> {
    match std::env::var_os("STEPOPS_ASL_CONFORMANCE") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            eprintln!(
                "conformance: NOT RUN: STEPOPS_ASL_CONFORMANCE is unset (the AWS-recorded corpus \
                 is an extra suite; .ci/run sets it)"
            );
            None
        }
    }
}

/// Numbers compare by value; `<name:N>` placeholders in expected strings match anything.
fn same(expected: &Value, actual: &Value, placeholders: bool) -> bool {
    match (expected, actual) {
        (Value::Number(a), Value::Number(b)) => {
            a == b || matches!((a.as_f64(), b.as_f64()), (Some(x), Some(y)) if x == y)
        }
        (Value::String(e), Value::String(a)) => same_str(e, a, placeholders),
        (Value::String(e), _) if placeholders && is_placeholder(e) => true,
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y, placeholders))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| same(v, w, placeholders)))
        }
        _ => expected == actual,
    }
}

fn is_placeholder(s: &str) -> bool {
    split_placeholders(s).iter().all(|p| p.is_empty()) && s.starts_with('<')
}

/// Splits an expected string on `<word:N>` tokens.
fn split_placeholders(s: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut rest = s;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let token_len = after.find('>').filter(|&end| {
            let t = &after[..end];
            t.split_once(':').is_some_and(|(w, n)| {
                !w.is_empty()
                    && w.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    && !n.is_empty()
                    && n.chars().all(|c| c.is_ascii_digit())
            })
        });
        match token_len {
            Some(end) => {
                parts.last_mut().unwrap().push_str(&rest[..start]);
                parts.push(String::new());
                rest = &after[end + 1..];
            }
            None => {
                parts.last_mut().unwrap().push_str(&rest[..start + 1]);
                rest = after;
            }
        }
    }
    parts.last_mut().unwrap().push_str(rest);
    parts
}

fn same_str(expected: &str, actual: &str, placeholders: bool) -> bool {
    if !placeholders {
        return expected == actual;
    }
    let parts = split_placeholders(expected);
    if parts.len() == 1 {
        return expected == actual;
    }
    let first = &parts[0];
    let last = parts.last().unwrap();
    if !actual.starts_with(first.as_str()) || actual.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &actual[first.len()..];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid.as_str()) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    rest.ends_with(last.as_str())
}

fn to_json(r: &ExecutionResult) -> Value {
    match r {
        ExecutionResult::Succeeded { output } => json!({"status": "SUCCEEDED", "output": output}),
        ExecutionResult::Failed { error, cause } => {
            let mut v = json!({"status": "FAILED"});
            if let Some(e) = error {
                v["error"] = json!(e);
            }
            if let Some(c) = cause {
                v["cause"] = json!(c);
            }
            v
        }
        ExecutionResult::Aborted => json!({"status": "ABORTED"}),
        ExecutionResult::TimedOut => json!({"status": "TIMED_OUT"}),
    }
}

async fn run_case(dir: PathBuf, name: String) -> Result<(), String> {
    let read =
        |f: &str| std::fs::read_to_string(dir.join(f)).map_err(|e| format!("cannot read {f}: {e}"));
    let definition = read("definition.asl.json")?;
    let input: Value = serde_json::from_str(&read("input.json")?).map_err(|e| e.to_string())?;
    let expected: Value =
        serde_json::from_str(&read("expected.json")?).map_err(|e| e.to_string())?;
    let placeholders = expected
        .get("placeholders")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let def = Definition::parse(&definition).map_err(|e| format!("load failed: {e}"))?;
    let result = stepops_asl::run(
        Arc::new(def),
        common::info(&name),
        input,
        None,
        Arc::new(common::NoTasks),
        Arc::new(common::MemStore::default()),
        RunOptions {
            time_scale: 0.0,
            ..Default::default()
        },
        CancellationToken::new(),
    )
    .await;
    let actual = to_json(&result);
    let mut ok = actual["status"] == expected["status"];
    for key in ["output", "error", "cause"] {
        let (e, a) = (expected.get(key), actual.get(key));
        ok &= match (e, a) {
            (None, None) => true,
            (Some(e), Some(a)) => same(e, a, placeholders),
            _ => false,
        };
    }
    if ok {
        Ok(())
    } else {
        let mut exp = expected.clone();
        if let Some(o) = exp.as_object_mut() {
            o.remove("placeholders");
        }
        Err(format!("expected {exp}\n      actual   {actual}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_corpus() {
    let Some(dir) = corpus_dir() else { return };
    let index_path = dir.join("index.json");
    let index = std::fs::read_to_string(&index_path).unwrap_or_else(|e| {
        panic!(
            "the ASL conformance corpus is missing: cannot read {} ({e}). {HOW_TO_FIX}",
            index_path.display()
        )
    });
    let index: Vec<Value> = serde_json::from_str(&index).unwrap_or_else(|e| {
        panic!(
            "{} is not a JSON array of cases ({e}). {HOW_TO_FIX}",
            index_path.display()
        )
    });
    // Every case of the index has its folder, and no folder is left out of the index.
    let folders: std::collections::BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {} ({e}). {HOW_TO_FIX}", dir.display()))
        .filter_map(Result::ok)
        .filter(|e| e.path().join("definition.asl.json").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    let indexed: std::collections::BTreeSet<String> = index
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect();
    let missing: Vec<&String> = indexed.difference(&folders).collect();
    let unlisted: Vec<&String> = folders.difference(&indexed).collect();
    let first = |v: &[&String]| -> String {
        let shown: Vec<&str> = v.iter().take(10).map(|s| s.as_str()).collect();
        match v.len() {
            0 => "none".into(),
            n if n > 10 => format!("{n}, e.g. {}", shown.join(", ")),
            _ => shown.join(", "),
        }
    };
    assert!(
        index.len() == EXPECTED_CASES
            && indexed.len() == EXPECTED_CASES
            && missing.is_empty()
            && unlisted.is_empty(),
        "the ASL conformance corpus at {} is not the expected one: {} cases in index.json \
         ({} distinct names), {} case folders, expected {EXPECTED_CASES}; indexed without a \
         folder: {}; folders not in the index: {}. {HOW_TO_FIX}",
        dir.display(),
        index.len(),
        indexed.len(),
        folders.len(),
        first(&missing),
        first(&unlisted),
    );
    let only = std::env::var("STEPOPS_ASL_CASE").ok();
    let cases: Vec<(String, String)> = index
        .iter()
        .map(|c| {
            (
                c["name"].as_str().expect("name").to_owned(),
                c["area"].as_str().expect("area").to_owned(),
            )
        })
        .filter(|(n, _)| only.as_deref().is_none_or(|o| n.contains(o)))
        .collect();
    let results: Vec<(String, String, Result<(), String>)> = futures::stream::iter(cases)
        .map(|(name, area)| {
            let d = dir.join(&name);
            async move {
                let r = tokio::time::timeout(
                    std::time::Duration::from_secs(20),
                    run_case(d, name.clone()),
                )
                .await
                .unwrap_or_else(|_| Err("did not finish within 20 s".into()));
                (name, area, r)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;

    let mut table: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let mut failing = Vec::new();
    for (name, area, r) in &results {
        let out_of_scope = OUT_OF_SCOPE.iter().any(|(n, _)| n == name);
        let e = table.entry(area.clone()).or_default();
        e.0 += 1;
        match r {
            Ok(()) => e.1 += 1,
            Err(_) if out_of_scope => e.2 += 1,
            Err(msg) => failing.push(format!("{name}\n      {msg}")),
        }
    }
    println!("\nASL conformance ({}):", dir.display());
    println!(
        "{:<18} {:>6} {:>6} {:>13}",
        "area", "cases", "passed", "out of scope"
    );
    let (mut t, mut p, mut o) = (0, 0, 0);
    for (area, (n, ok, oos)) in &table {
        println!("{area:<18} {n:>6} {ok:>6} {oos:>13}");
        t += n;
        p += ok;
        o += oos;
    }
    println!("{:<18} {t:>6} {p:>6} {o:>13}", "total");
    match &only {
        None => assert_eq!(
            t, EXPECTED_CASES,
            "ran {t} conformance cases, expected all {EXPECTED_CASES}. {HOW_TO_FIX}"
        ),
        Some(o) => println!(
            "(STEPOPS_ASL_CASE={o}: {t} of the {EXPECTED_CASES} cases; unset it to run them all)"
        ),
    }
    failing.sort();
    if !failing.is_empty() {
        println!("\nfailing cases ({}):", failing.len());
        for f in &failing {
            println!("  {f}");
        }
    }
    assert!(
        failing.is_empty(),
        "{} conformance case(s) failed (see the list above)",
        failing.len()
    );
}
