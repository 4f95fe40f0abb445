//! The published schema (`jobs/schema.json`): every shipped job validates against it (checked
//! by an independent validator, Python's `jsonschema`, installed by scripts/install-deps.sh),
//! it refuses what the Rust types refuse, and its properties are exactly the Rust types' fields.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use stepops_jobs::{JobDefinition, Parameter, SecretRef, StepDefinition};

fn jobs_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../jobs"))
}

/// Validates each YAML text against the schema with Python's jsonschema; `true` per valid one.
fn python_validates(docs: &[String]) -> Vec<bool> {
    let script = r#"
import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
v = jsonschema.Draft202012Validator(schema)
for doc in json.load(sys.stdin):
    print("ok" if v.is_valid(yaml.safe_load(doc)) else "bad")
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .arg(jobs_dir().join("schema.json"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (scripts/install-deps.sh installs it with jsonschema and PyYAML)");
    serde_json::to_writer(child.stdin.take().unwrap(), docs).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python3 -c 'import jsonschema, yaml' failed: run scripts/install-deps.sh"
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l == "ok")
        .collect()
}

#[test]
fn every_shipped_job_validates_against_the_schema_and_loads() {
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(jobs_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            docs.push(std::fs::read_to_string(&path).unwrap());
        }
    }
    assert!(
        docs.len() >= 3,
        "deploy, backup and a multi-step job are shipped"
    );
    assert!(python_validates(&docs).iter().all(|ok| *ok));
    let catalog = stepops_jobs::Catalog::load_dir(jobs_dir()).unwrap();
    for name in ["deploy", "backup"] {
        catalog.job(name).unwrap();
    }
    assert!(catalog.jobs().any(|j| j.steps.len() > 1));
    assert_eq!(
        stepops_jobs::embedded().unwrap().version(),
        catalog.version(),
        "the compiled-in catalog is the repository's"
    );
    assert_eq!(
        serde_json::from_str::<Value>(stepops_jobs::SCHEMA).unwrap(),
        serde_json::from_str::<Value>(
            &std::fs::read_to_string(jobs_dir().join("schema.json")).unwrap()
        )
        .unwrap()
    );
}

#[test]
fn the_schema_refuses_what_the_types_refuse() {
    let base = "name: t\ndescription: d\nenvironments: [dev]\ncommand: [echo]\ntimeout_seconds: 60\nidempotent: true\n";
    let bad = [
        format!("{base}shell: bash\n"),
        base.replace("environments: [dev]", "environments: [staging]"),
        base.replace("timeout_seconds: 60", "timeout_seconds: 0"),
        format!("{base}steps: [{{name: a, command: [b]}}]\n"),
        format!("{base}parameters: {{p: {{type: string, minimum: 1}}}}\n"),
        format!("{base}parameters: {{p: {{type: float}}}}\n"),
        format!("{base}secrets: {{T: {{dev: {{vault: x}}}}}}\n"),
        format!("{base}secrets: {{T: {{dev: {{secret: a, parameter: b}}}}}}\n"),
        format!("{base}env: {{lower: x}}\n"),
        base.replace("idempotent: true\n", ""),
    ];
    let mut docs = vec![base.to_owned()];
    docs.extend(bad.iter().cloned());
    let verdicts = python_validates(&docs);
    assert!(verdicts[0], "the base document is valid");
    for (doc, ok) in bad.iter().zip(&verdicts[1..]) {
        assert!(!ok, "the schema must refuse:\n{doc}");
        let rust = serde_norway::from_str::<JobDefinition>(doc)
            .map_err(|e| e.to_string())
            .and_then(|_| {
                stepops_jobs::Catalog::from_files(vec![("t.yaml".into(), doc.clone())])
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            });
        assert!(rust.is_err(), "the Rust types must refuse:\n{doc}");
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn the_schema_and_the_rust_types_name_the_same_fields() {
    let schema: Value = serde_json::from_str(stepops_jobs::SCHEMA).unwrap();
    let full = JobDefinition {
        name: "t".into(),
        description: "d".into(),
        environments: vec![stepops_error::Environment::Dev],
        command: Some(vec!["echo".into()]),
        steps: vec![StepDefinition {
            name: "s".into(),
            command: vec!["echo".into()],
            timeout_seconds: Some(1),
            idempotent: Some(true),
        }],
        parameters: [(
            "p".to_owned(),
            Parameter::Boolean {
                description: None,
                default: None,
            },
        )]
        .into(),
        env: [("A".to_owned(), "b".to_owned())].into(),
        secrets: [(
            "S".to_owned(),
            [(
                stepops_error::Environment::Dev,
                SecretRef::Secret("x".into()),
            )]
            .into(),
        )]
        .into(),
        working_dir: Some("/x".into()),
        timeout_seconds: 1,
        heartbeat_seconds: 10,
        idempotent: true,
        concurrency_group: Some("g".into()),
    };
    let as_json = serde_json::to_value(&full).unwrap();
    assert_eq!(keys(&as_json), keys(&schema["properties"]));
    assert_eq!(
        keys(&as_json["steps"][0]),
        keys(&schema["properties"]["steps"]["items"]["properties"])
    );
    let variants = [
        Parameter::String {
            description: Some("d".into()),
            pattern: Some("x".into()),
            choices: Some(vec!["x".into()]),
            max_length: Some(1),
            default: Some("x".into()),
        },
        Parameter::Integer {
            description: Some("d".into()),
            minimum: Some(1),
            maximum: Some(1),
            default: Some(1),
        },
        Parameter::Boolean {
            description: Some("d".into()),
            default: Some(true),
        },
    ];
    for (i, p) in variants.iter().enumerate() {
        assert_eq!(
            keys(&serde_json::to_value(p).unwrap()),
            keys(&schema["$defs"]["parameter"]["oneOf"][i]["properties"]),
            "parameter type {}",
            p.type_name()
        );
    }
    for r in [
        SecretRef::Secret("a".into()),
        SecretRef::Parameter("b".into()),
    ] {
        let v = serde_json::to_value(&r).unwrap();
        let k = keys(&v);
        assert!(k.is_subset(&keys(&schema["$defs"]["secretRef"]["properties"])));
    }
}
