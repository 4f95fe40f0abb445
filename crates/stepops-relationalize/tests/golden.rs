//! Golden cases: archives relationalized into a local folder, the Parquet read back by DuckDB
//! (an independent reader) and compared with the expected tables, for every naming and typing
//! rule of docs/relationalize.md.

mod common;

use common::{Dirs, dirs, doc, duckdb, metadata, zip};
use serde_json::{Value, json};

fn rows(sql: &str) -> Value {
    Value::Array(duckdb(sql))
}

/// One document exercising every naming rule, and a second one with missing fields.
fn nested_archive(d: &Dirs) {
    d.archive(
        "rec1.zip",
        &zip(&[
            metadata("rec1", "a1"),
            doc(
                "survey.json",
                json!({
                    "a": {"b": {"c": 1}, "d": "x"},
                    "objectfield.filename": "f.txt",
                    "tags": ["t1", "t2"],
                    "steps": [{"name": "s1", "at": {"t": 10}, "inner": [5, 6]}, {"name": "s2"}],
                    "matrix": [[1, 2], [3]],
                    "empty": [],
                    "nothing": null
                }),
            ),
        ]),
    );
}

#[tokio::test]
async fn every_naming_rule_reads_back_in_duckdb_as_expected() {
    let d = dirs();
    nested_archive(&d);
    let report = d.run(&d.relz(false), "rec1.zip").await.unwrap();
    assert_eq!(report.documents, 1);
    assert_eq!(report.invalid, 0);
    assert!(report.conflicts.is_empty(), "{:?}", report.conflicts);

    let root = rows(&format!(
        "SELECT recordid, a_b_c, a_d, objectfield_filename, tags, steps, matrix, empty, nothing, \
         assessmentid, year, month, day FROM {}",
        d.table("survey")
    ));
    assert_eq!(
        root,
        json!([["rec1", 1, "x", "f.txt", 1, 2, 4, 7, null, "a1", 2024, 3, 5]])
    );
    assert_eq!(
        rows(&format!(
            "SELECT recordid, id, index, tags_val FROM {} ORDER BY index",
            d.table("survey_tags")
        )),
        json!([["rec1", 1, 0, "t1"], ["rec1", 1, 1, "t2"]])
    );
    assert_eq!(
        rows(&format!(
            "SELECT id, index, name, at_t, \"inner\" FROM {} ORDER BY index",
            d.table("survey_steps")
        )),
        json!([[2, 0, "s1", 10, 3], [2, 1, "s2", null, null]])
    );
    assert_eq!(
        rows(&format!(
            "SELECT id, index, inner_val FROM {} ORDER BY index",
            d.table("survey_steps_inner")
        )),
        json!([[3, 0, 5], [3, 1, 6]])
    );
    assert_eq!(
        rows(&format!(
            "SELECT id, index, matrix_val FROM {} ORDER BY index",
            d.table("survey_matrix")
        )),
        json!([[4, 0, 5], [4, 1, 6]])
    );
    assert_eq!(
        rows(&format!(
            "SELECT id, index, matrix_val_val FROM {} ORDER BY id, index",
            d.table("survey_matrix_val")
        )),
        json!([[5, 0, 1], [5, 1, 2], [6, 0, 3]])
    );
    // An empty array: a join key in the parent, no child rows, no file.
    assert!(!d.output.join("survey_empty").exists());
    // Child rows join their parent on (recordid, id) and carry the partitions.
    assert_eq!(
        rows(&format!(
            "SELECT p.recordid, c.name, c.assessmentid, c.year FROM {} p JOIN {} c \
             ON c.recordid = p.recordid AND c.id = p.steps ORDER BY c.index",
            d.table("survey"),
            d.table("survey_steps")
        )),
        json!([["rec1", "s1", "a1", 2024], ["rec1", "s2", "a1", 2024]])
    );
    assert_eq!(
        d.files(),
        [
            "_stepops/records/rec1.json",
            "survey/assessmentid=a1/year=2024/month=3/day=5/rec1.parquet",
            "survey_matrix/assessmentid=a1/year=2024/month=3/day=5/rec1.parquet",
            "survey_matrix_val/assessmentid=a1/year=2024/month=3/day=5/rec1.parquet",
            "survey_steps/assessmentid=a1/year=2024/month=3/day=5/rec1.parquet",
            "survey_steps_inner/assessmentid=a1/year=2024/month=3/day=5/rec1.parquet",
            "survey_tags/assessmentid=a1/year=2024/month=3/day=5/rec1.parquet",
        ]
    );
}

#[tokio::test]
async fn missing_fields_and_nulls_are_nulls_in_a_jsonl_member() {
    let d = dirs();
    d.archive(
        "rec2.zip",
        &zip(&[
            metadata("rec2", "a1"),
            (
                "walk.jsonl",
                b"{\"a\": 1, \"b\": {\"c\": true}}\n\n{\"b\": null, \"d\": \"x\"}\n".to_vec(),
            ),
        ]),
    );
    let report = d.run(&d.relz(false), "rec2.zip").await.unwrap();
    assert_eq!((report.documents, report.tables["walk"]), (2, 2));
    assert_eq!(
        rows(&format!(
            "SELECT a, b_c, b, d FROM {} ORDER BY a NULLS LAST",
            d.table("walk")
        )),
        json!([[1, true, null, null], [null, null, null, "x"]])
    );
}

#[tokio::test]
async fn schema_types_are_the_parquet_types() {
    let d = dirs();
    d.schema(
        "survey",
        &json!({
            "type": "object",
            "properties": {
                "n": {"type": "integer"},
                "x": {"type": "number"},
                "ok": {"type": "boolean"},
                "at": {"type": "string", "format": "date-time"},
                "s": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "integer"}},
                "never": {"type": "string"}
            }
        }),
    );
    d.archive(
        "rec3.zip",
        &zip(&[
            metadata("rec3", "a2"),
            doc(
                "survey.json",
                json!({"n": 7, "x": 2, "ok": false, "at": "2024-03-05T11:00:00+01:00", "s": "v", "tags": [4]}),
            ),
        ]),
    );
    d.run(&d.relz(true), "rec3.zip").await.unwrap();
    let types = rows(&format!(
        "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {})",
        d.table("survey")
    ));
    assert_eq!(
        types,
        json!([
            ["recordid", "VARCHAR"],
            ["n", "BIGINT"],
            ["x", "DOUBLE"],
            ["ok", "BOOLEAN"],
            ["at", "TIMESTAMP WITH TIME ZONE"],
            ["s", "VARCHAR"],
            ["tags", "BIGINT"],
            ["never", "VARCHAR"],
            ["assessmentid", "VARCHAR"],
            ["day", "BIGINT"],
            ["month", "BIGINT"],
            ["year", "BIGINT"]
        ])
    );
    assert_eq!(
        rows(&format!(
            "SELECT n, x, ok, epoch(\"at\")::BIGINT, never FROM {}",
            d.table("survey")
        )),
        json!([[7, 2.0, false, 1709632800, null]])
    );
    assert_eq!(
        rows(&format!("SELECT tags_val FROM {}", d.table("survey_tags"))),
        json!([[4]])
    );
}

#[tokio::test]
async fn a_type_conflict_is_written_as_strings_and_reported() {
    let d = dirs();
    d.archive(
        "rec4.zip",
        &zip(&[
            metadata("rec4", "a1"),
            (
                "m.jsonl",
                b"{\"v\": 1}\n{\"v\": \"x\"}\n{\"v\": 2.5}\n".to_vec(),
            ),
        ]),
    );
    let report = d.run(&d.relz(false), "rec4.zip").await.unwrap();
    assert_eq!(report.conflicts.len(), 1);
    assert_eq!(report.conflicts[0].column, "v");
    assert_eq!(report.conflicts[0].found, ["integer", "number", "string"]);
    assert_eq!(
        rows(&format!("SELECT v FROM {}", d.table("m"))),
        json!([["1"], ["x"], ["2.5"]])
    );
}

#[tokio::test]
async fn reprocessing_an_archive_replaces_its_files() {
    let d = dirs();
    nested_archive(&d);
    let relz = d.relz(false);
    d.run(&relz, "rec1.zip").await.unwrap();
    let first = d.files();
    d.run(&relz, "rec1.zip").await.unwrap();
    assert_eq!(d.files(), first);
    assert_eq!(
        rows(&format!("SELECT count(*) FROM {}", d.table("survey_tags"))),
        json!([[2]])
    );
}

/// A record reprocessed after its upload date and assessment moved leaves no stale partition:
/// the files its earlier run wrote and this one does not (tables, quarantine records) are
/// deleted, so the rows are not counted twice; other records' files are untouched.
#[tokio::test]
async fn a_record_whose_partition_moved_leaves_no_stale_files() {
    let d = dirs();
    nested_archive(&d);
    d.archive(
        "other.zip",
        &zip(&[metadata("rec2", "a1"), doc("survey.json", json!({"x": 1}))]),
    );
    let relz = d.relz(false);
    d.run(&relz, "rec1.zip").await.unwrap();
    d.run(&relz, "other.zip").await.unwrap();
    let others: Vec<String> = d
        .files()
        .into_iter()
        .filter(|f| f.contains("rec2"))
        .collect();
    // The same record, uploaded again later to another assessment, with fewer tables.
    d.archive(
        "rec1.zip",
        &zip(&[
            (
                "metadata.json",
                json!({"recordId": "rec1", "assessmentId": "a2",
                       "uploadedOn": "2024-04-07T00:00:00Z"})
                .to_string()
                .into_bytes(),
            ),
            doc("survey.json", json!({"a": {"d": "y"}, "tags": ["t3"]})),
        ]),
    );
    let report = d.run(&relz, "rec1.zip").await.unwrap();
    let files = d.files();
    assert!(
        files
            .iter()
            .all(|f| !f.contains("assessmentid=a1/") || f.contains("rec2")),
        "{files:?}"
    );
    assert_eq!(
        files
            .iter()
            .filter(|f| f.contains("rec1.parquet"))
            .cloned()
            .collect::<Vec<_>>(),
        [
            "survey/assessmentid=a2/year=2024/month=4/day=7/rec1.parquet",
            "survey_tags/assessmentid=a2/year=2024/month=4/day=7/rec1.parquet",
        ]
    );
    assert_eq!(report.stale_removed, 6, "{report:?}");
    assert_eq!(
        rows(&format!("SELECT count(*) FROM {}", d.table("survey_tags"))),
        json!([[1]])
    );
    let still: Vec<String> = files.into_iter().filter(|f| f.contains("rec2")).collect();
    assert_eq!(still, others, "another record's files are untouched");
}
