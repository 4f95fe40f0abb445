//! The relationalize state machine end to end on the local engine: template.yaml's machine
//! (Distributed Map over the archive listing, ResultWriter, Summarize, notify) with the
//! Lambda's own library call, a folder standing in for the stack's bucket, and DuckDB reading
//! the Parquet it wrote.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use stepops_embedded::relationalize::{
    LocalRelationalize, local_relationalizer, relationalize_handler,
};
use stepops_local::{LambdaError, handler};
use stepops_relationalize::generate::{SURVEY_SCHEMA, archive, document};
use stepops_testkit::duckdb::{duckdb, duckdb_count};

const ARCHIVES: u64 = 200;

/// `archives/rec-NNN.zip`: two survey documents each; every 20th archive's second document
/// has a string score (invalid: 10 in all).
fn fill_bucket(bucket: &Path) {
    let dir = bucket.join("archives");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(bucket.join("schemas/survey")).unwrap();
    std::fs::write(bucket.join("schemas/survey/v1.json"), SURVEY_SCHEMA).unwrap();
    for n in 0..ARCHIVES {
        let mut second = document(2 * n + 1, 2);
        if n % 20 == 0 {
            second["score"] = json!("high");
        }
        let lines = format!("{}\n{second}\n", document(2 * n, 2));
        let zip = archive(
            &format!("rec-{n:03}"),
            &format!("a{}", n % 3),
            &format!("2024-03-0{}T08:00:00Z", 1 + n % 5),
            &[("survey.jsonl", lines.as_bytes())],
        );
        std::fs::write(dir.join(format!("rec-{n:03}.zip")), zip).unwrap();
    }
}

fn table(bucket: &Path, name: &str) -> String {
    format!(
        "read_parquet('{}/relationalized/{name}/**/*.parquet', hive_partitioning = true)",
        bucket.display()
    )
}

/// Every file under `relationalized/` but the Map's result files.
fn outputs(bucket: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let base = bucket.join("relationalized");
    let mut out = Vec::new();
    walk(&base, &base, &mut out);
    out.retain(|f| !f.starts_with("_runs/"));
    out.sort();
    out
}

fn local(bucket: &Path, state: &Path) -> LocalRelationalize {
    LocalRelationalize {
        bucket_dir: bucket.to_owned(),
        prefix: "archives/".into(),
        state_dir: state.to_owned(),
        time_scale: 0.0,
    }
}

fn check_tables(bucket: &Path) {
    let count = |t: &str| duckdb_count(&format!("SELECT count(*) FROM {}", table(bucket, t)));
    assert_eq!(count("survey"), 390);
    assert_eq!(count("survey_steps"), 780);
    assert_eq!(count("survey_steps_answers"), 2340);
    assert_eq!(count("survey_tags"), 780);
    assert_eq!(count("survey_motion_val"), 390 * 2 * 3);
    assert_eq!(
        duckdb_count(&format!(
            "SELECT count(DISTINCT recordid) FROM {}",
            table(bucket, "survey")
        )),
        200
    );
    // Every child row joins its parent on (recordid, id) and carries its partitions.
    let orphans = duckdb_count(&format!(
        "SELECT count(*) FROM {} c LEFT JOIN {} p ON c.recordid = p.recordid AND c.id = p.steps \
         AND c.assessmentid = p.assessmentid AND c.day = p.day WHERE p.recordid IS NULL",
        table(bucket, "survey_steps"),
        table(bucket, "survey")
    ));
    assert_eq!(orphans, 0);
    let joined = duckdb_count(&format!(
        "SELECT count(*) FROM {} a JOIN {} s ON a.recordid = s.recordid AND a.id = s.answers",
        table(bucket, "survey_steps_answers"),
        table(bucket, "survey_steps")
    ));
    assert_eq!(joined, 2340);
    assert_eq!(
        duckdb(&format!(
            "SELECT assessmentid, count(*) FROM {} GROUP BY 1 ORDER BY 1",
            table(bucket, "survey")
        )),
        // 67, 67 and 66 archives of two documents, less the invalid ones (4, 3, 3).
        [json!(["a0", 130]), json!(["a1", 131]), json!(["a2", 129])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_archives_quarantine_ten_documents_and_rerun_idempotently() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("archive-bucket");
    fill_bucket(&bucket);
    std::fs::write(
        bucket.join("archives/zz-corrupt.zip"),
        b"PK\x03\x04 truncated",
    )
    .unwrap();

    let (outcome, notifications) = local(&bucket, &tmp.path().join("state"))
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.status, "SUCCEEDED", "{outcome:?}");
    let summary = outcome.output.unwrap();
    assert_eq!(
        (
            &summary["archives"],
            &summary["succeeded"],
            &summary["failed"],
            &summary["documents"],
            &summary["invalid"]
        ),
        (&json!(201), &json!(200), &json!(1), &json!(400), &json!(10)),
        "{summary}"
    );
    assert_eq!(summary["failures"][0]["error"], "Stepops.InvalidInput");
    assert!(
        summary["failures"][0]["archive"]
            .as_str()
            .unwrap()
            .ends_with("archives/zz-corrupt.zip")
    );
    let sent = notifications.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1.subject, "[stepops dev] relationalize succeeded");
    assert!(
        sent[0].1.text.contains("invalid (quarantined): 10"),
        "{}",
        sent[0].1.text
    );
    assert!(
        sent[0]
            .1
            .text
            .contains("zz-corrupt.zip: Stepops.InvalidInput"),
        "{}",
        sent[0].1.text
    );

    check_tables(&bucket);
    let quarantined: Vec<String> = outputs(&bucket)
        .into_iter()
        .filter(|f| f.starts_with("_quarantine/"))
        .collect();
    assert_eq!(quarantined.len(), 10);
    for f in &quarantined {
        let record: Value =
            serde_json::from_slice(&std::fs::read(bucket.join("relationalized").join(f)).unwrap())
                .unwrap();
        assert_eq!(record["reasons"][0]["path"], "/score", "{record}");
        assert_eq!(record["document"]["score"], "high");
    }

    // Reprocessing replaces: the same files, the same rows.
    let first = outputs(&bucket);
    std::fs::remove_file(bucket.join("archives/zz-corrupt.zip")).unwrap();
    let (outcome, _) = local(&bucket, &tmp.path().join("state2"))
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.status, "SUCCEEDED", "{outcome:?}");
    assert_eq!(outcome.output.unwrap()["failed"], 0);
    assert_eq!(outputs(&bucket), first);
    check_tables(&bucket);
}

/// `relationalized/TABLE/…/rec-007.parquet` files now visible.
fn visible(bucket: &Path, record: &str) -> Vec<PathBuf> {
    outputs(bucket)
        .into_iter()
        .filter(|f| f.ends_with(&format!("/{record}.parquet")))
        .map(|f| bucket.join("relationalized").join(f))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_killed_mid_archive_is_retried_and_no_partial_file_is_ever_visible() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("archive-bucket");
    fill_bucket(&bucket);
    let (relz, store) = local_relationalizer(&bucket).unwrap();
    let real = relationalize_handler(relz, store);
    let killed = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicUsize::new(0));
    let (k, a, b) = (killed.clone(), attempts.clone(), bucket.clone());
    let function = handler(move |event: Value| {
        let (real, killed, attempts, bucket) = (real.clone(), k.clone(), a.clone(), b.clone());
        async move {
            let target = event["key"].as_str() == Some("archives/rec-007.zip");
            if target {
                attempts.fetch_add(1, Ordering::SeqCst);
            }
            if !target || killed.swap(true, Ordering::SeqCst) {
                return real(event).await;
            }
            // The first attempt dies as soon as its first table is published.
            let task = tokio::spawn(real(event));
            while visible(&bucket, "rec-007").is_empty() && !task.is_finished() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            task.abort();
            // Whatever is visible now is whole: DuckDB reads every file.
            for f in visible(&bucket, "rec-007") {
                duckdb(&format!(
                    "SELECT count(*) FROM read_parquet('{}')",
                    f.display()
                ));
            }
            Err(LambdaError::new(
                "Lambda.Unknown",
                "the function was killed mid-archive",
            ))
        }
    });
    let (outcome, _) = local(&bucket, &tmp.path().join("state"))
        .run_with(function)
        .await
        .unwrap();
    assert_eq!(outcome.status, "SUCCEEDED", "{outcome:?}");
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        2,
        "killed once, retried once"
    );
    assert_eq!(outcome.output.unwrap()["failed"], 0);
    // No temporary file of the killed attempt is an object, and the tables are exact.
    check_tables(&bucket);
    assert!(
        outputs(&bucket)
            .iter()
            .all(|f| f.ends_with(".parquet") || f.ends_with(".json"))
    );
}
