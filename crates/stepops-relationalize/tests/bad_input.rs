//! Bad input: every case is a named error with nothing written, or a quarantine record with
//! its reasons while the rest of the archive is written.

mod common;

use common::{Dirs, dirs, doc, metadata, zip};
use serde_json::{Value, json};
use stepops_error::{ErrorName, Named};

fn quarantined(d: &Dirs) -> Vec<(String, Value)> {
    d.files()
        .into_iter()
        .filter(|f| f.starts_with("_quarantine/"))
        .map(|f| {
            let v = serde_json::from_slice(&std::fs::read(d.output.join(&f)).unwrap()).unwrap();
            (f, v)
        })
        .collect()
}

fn survey_schema() -> Value {
    json!({
        "type": "object",
        "required": ["n"],
        "properties": {"n": {"type": "integer"}, "at": {"type": "string", "format": "date-time"}}
    })
}

#[tokio::test]
async fn a_corrupt_zip_is_invalid_input_and_nothing_is_written() {
    let d = dirs();
    let mut bytes = zip(&[metadata("r1", "a1"), doc("survey.json", json!({"n": 1}))]);
    d.archive("truncated.zip", &bytes[..bytes.len() / 2]);
    // A member whose data was altered: its CRC fails while it is read.
    let at = bytes
        .windows(2)
        .position(|w| w == b"PK")
        .map(|p| p + 40)
        .unwrap();
    bytes[at + 40] ^= 0xff;
    d.archive("crc.zip", &bytes);
    d.archive("notzip.zip", b"this is not a zip");
    for name in ["truncated.zip", "crc.zip", "notzip.zip"] {
        let err = d.run(&d.relz(false), name).await.unwrap_err();
        assert_eq!(err.error_name(), ErrorName::InvalidInput, "{name}: {err}");
        assert!(err.to_string().contains(name), "{err}");
    }
    assert!(d.files().is_empty(), "{:?}", d.files());
}

#[tokio::test]
async fn missing_or_bad_metadata_is_named_and_nothing_is_written() {
    let d = dirs();
    d.archive("nometa.zip", &zip(&[doc("survey.json", json!({"n": 1}))]));
    let bad = (
        "metadata.json",
        br#"{"recordId": "../x", "assessmentId": "a", "uploadedOn": "2024-01-01T00:00:00Z"}"#
            .to_vec(),
    );
    d.archive(
        "badid.zip",
        &zip(&[bad, doc("survey.json", json!({"n": 1}))]),
    );
    for (name, words) in [
        ("nometa.zip", "no metadata.json"),
        ("badid.zip", "recordId"),
    ] {
        let err = d.run(&d.relz(false), name).await.unwrap_err();
        assert_eq!(err.error_name(), ErrorName::InvalidInput);
        assert!(err.to_string().contains(words), "{err}");
    }
    assert!(d.files().is_empty());
}

#[tokio::test]
async fn non_json_members_are_quarantined_and_the_rest_is_written() {
    let d = dirs();
    d.archive(
        "r1.zip",
        &zip(&[
            metadata("r1", "a1"),
            ("survey.json", b"{not json".to_vec()),
            ("notes.txt", b"hello".to_vec()),
            ("list.json", b"[1, 2]".to_vec()),
            ("walk.jsonl", b"{\"n\": 1}\nnope\n".to_vec()),
            // Bytes that are not UTF-8 inside a string: said where, as any JSON error.
            ("run.jsonl", b"{\"n\": 2}\n{\"s\": \"a\xffb\"}\n".to_vec()),
            // A key twice in one object: refused, not the first value silently dropped.
            (
                "twice.jsonl",
                b"{\"n\": 3}\n{\"m\": {\"k\": 1, \"k\": 2}}\n".to_vec(),
            ),
        ]),
    );
    let report = d.run(&d.relz(false), "r1.zip").await.unwrap();
    assert_eq!((report.documents, report.invalid), (9, 6));
    assert_eq!(report.tables["walk"], 1);
    assert_eq!(report.tables["run"], 1);
    let q = quarantined(&d);
    let reason = |file: &str| {
        q.iter()
            .find(|(f, _)| f.ends_with(file))
            .unwrap_or_else(|| panic!("no quarantine record {file}: {q:?}"))
            .1["reasons"][0]["message"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(reason("/r1/survey.json.json").starts_with("not valid JSON"));
    assert!(reason("/r1/notes.txt.json").contains("not a JSON member"));
    assert!(reason("/r1/list.json.json").contains("not a JSON object"));
    assert!(reason("/r1/walk.jsonl.line2.json").starts_with("not valid JSON"));
    assert_eq!(
        reason("/r1/run.jsonl.line2.json"),
        "not valid JSON: invalid unicode code point at line 1 column 9"
    );
    assert_eq!(
        reason("/r1/twice.jsonl.line2.json"),
        "not valid JSON: duplicate key \"k\" (a document's keys must be unique within an object) at line 1 column 22"
    );
    assert!(q.iter().any(|(f, _)| f
        == "_quarantine/survey/assessmentid=a1/year=2024/month=3/day=5/r1/survey.json.json"));
}

#[tokio::test]
async fn a_document_over_the_size_limit_is_quarantined_unread() {
    let d = dirs();
    let big = json!({"n": 1, "pad": "x".repeat(2000)});
    d.archive(
        "r1.zip",
        &zip(&[
            metadata("r1", "a1"),
            doc("big.json", big.clone()),
            ("lines.jsonl", format!("{big}\n{{\"n\": 2}}\n").into_bytes()),
            doc("small.json", json!({"n": 3})),
        ]),
    );
    let mut relz = d.relz(false);
    relz.max_document_bytes = 1000;
    let report = d.run(&relz, "r1.zip").await.unwrap();
    assert_eq!(report.invalid, 2);
    assert_eq!((report.tables["lines"], report.tables["small"]), (1, 1));
    let q = quarantined(&d);
    assert_eq!(q.len(), 2);
    for (_, record) in &q {
        assert!(
            record["reasons"][0]["message"]
                .as_str()
                .unwrap()
                .contains("over the limit of 1000 bytes")
        );
        assert_eq!(
            record["document"],
            Value::Null,
            "an oversize document is not kept"
        );
    }
}

#[tokio::test]
async fn invalid_documents_are_quarantined_with_the_validation_errors() {
    let d = dirs();
    d.schema("survey", &survey_schema());
    d.archive(
        "r1.zip",
        &zip(&[
            metadata("r1", "a1"),
            (
                "survey.jsonl",
                b"{\"n\": 1}\n{\"n\": \"one\"}\n{\"at\": \"yesterday\", \"n\": 2}\n{}\n".to_vec(),
            ),
        ]),
    );
    let report = d.run(&d.relz(true), "r1.zip").await.unwrap();
    assert_eq!((report.documents, report.invalid), (4, 3));
    assert_eq!(report.tables["survey"], 1);
    let q = quarantined(&d);
    let record = |line: usize| {
        &q.iter()
            .find(|(f, _)| f.ends_with(&format!("survey.jsonl.line{line}.json")))
            .unwrap()
            .1
    };
    assert_eq!(record(2)["reasons"][0]["path"], "/n");
    assert_eq!(record(2)["document"], json!({"n": "one"}));
    assert_eq!(record(3)["reasons"][0]["path"], "/at");
    assert!(
        record(4)["reasons"][0]["message"]
            .as_str()
            .unwrap()
            .contains("required")
    );
    assert_eq!(record(4)["recordId"], "r1");
}

#[tokio::test]
async fn an_unknown_dataset_is_quarantined_when_schemas_are_configured() {
    let d = dirs();
    d.schema("survey", &survey_schema());
    d.archive(
        "r1.zip",
        &zip(&[
            metadata("r1", "a1"),
            doc("survey.json", json!({"n": 1})),
            doc("mystery.json", json!({"n": 1})),
        ]),
    );
    let report = d.run(&d.relz(true), "r1.zip").await.unwrap();
    assert_eq!(report.invalid, 1);
    let q = quarantined(&d);
    assert_eq!(q.len(), 1);
    assert!(
        q[0].1["reasons"][0]["message"]
            .as_str()
            .unwrap()
            .contains("unknown dataset \"mystery\"")
    );
}

#[tokio::test]
async fn a_schema_that_does_not_compile_fails_the_archive_with_nothing_written() {
    let d = dirs();
    d.schema(
        "survey",
        &json!({"type": "object", "properties": {"n": {"type": "integr"}}}),
    );
    std::fs::create_dir_all(d.schemas.join("walk")).unwrap();
    std::fs::write(d.schemas.join("walk/v1.json"), "{not json").unwrap();
    for (member, dataset) in [("survey.json", "survey"), ("walk.json", "walk")] {
        d.archive(
            "r1.zip",
            &zip(&[metadata("r1", "a1"), doc(member, json!({"n": 1}))]),
        );
        let err = d.run(&d.relz(true), "r1.zip").await.unwrap_err();
        assert_eq!(err.error_name(), ErrorName::InvalidInput, "{err}");
        assert!(
            err.to_string().contains(&format!("{dataset}/v1.json")),
            "{err}"
        );
        assert!(err.to_string().contains("does not compile"), "{err}");
    }
    assert!(d.files().is_empty());
}
