//! The Lambda's handler over S3: archives, schemas and tables in moto's S3 server (a real
//! S3-protocol server) through the real AWS SDK client, the Map's result files summarised,
//! and the tables read back with DuckDB from a download.

use aws_sdk_s3::primitives::ByteStream;
use serde_json::json;
use stepops_relationalize::generate::{SURVEY_SCHEMA, archive, document};
use stepops_relationalize::service::{from_env, handle_event};
use stepops_store::{AnyStore, ObjectStore, S3Store};
use stepops_testkit::duckdb::duckdb_count;
use stepops_testkit::moto::moto;

fn client(endpoint: &str) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{
        Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    };
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .force_path_style(true)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_handler_reads_and_writes_s3_and_summarises_a_map_run() {
    let moto = moto().await;
    let s3 = client(&moto.endpoint);
    s3.create_bucket().bucket("uploads").send().await.unwrap();
    let put = |key: &str, body: Vec<u8>| {
        s3.put_object()
            .bucket("uploads")
            .key(key)
            .body(ByteStream::from(body))
            .send()
    };
    put("schemas/survey/v1.json", SURVEY_SCHEMA.as_bytes().to_vec())
        .await
        .unwrap();
    let mut bad = document(1, 2);
    bad["score"] = json!("high");
    let lines = format!("{}\n{bad}\n", document(0, 2));
    let zip = archive(
        "rec-1",
        "a1",
        "2024-03-05T08:00:00Z",
        &[("survey.jsonl", lines.as_bytes())],
    );
    put("archives/rec-1.zip", zip).await.unwrap();

    let store = S3Store::new(s3.clone());
    let env = |k: &str| match k {
        "STEPOPS_RELZ_OUTPUT" => Some("s3://uploads/ns1/relationalized".to_owned()),
        "STEPOPS_RELZ_SCHEMAS" => Some("s3://uploads/schemas".to_owned()),
        _ => None,
    };
    let relz = from_env(env, || store.clone()).unwrap();
    let input = AnyStore::S3(store.clone());
    let report = handle_event(
        &relz,
        &input,
        &json!({"bucket": "uploads", "key": "archives/rec-1.zip"}),
    )
    .await
    .unwrap();
    assert_eq!(
        (report["documents"].clone(), report["invalid"].clone()),
        (json!(2), json!(1))
    );
    // A listed object that is not an archive is left alone.
    let skipped = handle_event(
        &relz,
        &input,
        &json!({"bucket": "uploads", "key": "archives/README.txt"}),
    )
    .await
    .unwrap();
    assert_eq!(skipped["skipped"], "not a .zip archive");
    // A second run replaces the same keys.
    handle_event(
        &relz,
        &input,
        &json!({"bucket": "uploads", "key": "archives/rec-1.zip"}),
    )
    .await
    .unwrap();
    let keys = store.list("uploads", "ns1/").await.unwrap();
    assert!(
        keys.contains(
            &"ns1/relationalized/survey/assessmentid=a1/year=2024/month=3/day=5/rec-1.parquet"
                .to_owned()
        ),
        "{keys:?}"
    );
    assert_eq!(
        keys.iter().filter(|k| k.contains("/_quarantine/")).count(),
        1
    );
    assert!(
        keys.contains(&"ns1/relationalized/_stepops/records/rec-1.json".to_owned()),
        "the record's index: {keys:?}"
    );
    assert_eq!(keys.len(), 8, "{keys:?}");

    // Read back: download the root and steps tables, count and join with DuckDB.
    let dir = tempfile::tempdir().unwrap();
    for key in keys.iter().filter(|k| k.ends_with(".parquet")) {
        let dest = dir.path().join(key.replace('/', "__"));
        store.download("uploads", key, &dest).await.unwrap();
    }
    let file = |table: &str| {
        format!(
            "read_parquet('{}/ns1__relationalized__{table}__*.parquet')",
            dir.path().display()
        )
    };
    assert_eq!(
        duckdb_count(&format!("SELECT count(*) FROM {}", file("survey"))),
        1
    );
    assert_eq!(
        duckdb_count(&format!(
            "SELECT count(*) FROM {} c JOIN {} p ON c.recordid = p.recordid AND c.id = p.steps",
            file("survey_steps"),
            file("survey")
        )),
        2
    );

    // The Map's result files (as AWS writes them) summarised.
    let report_text = report.to_string();
    let succeeded = json!([
        {"Input": "{\"bucket\":\"uploads\",\"key\":\"archives/rec-1.zip\"}", "Output": report_text, "Status": "SUCCEEDED"},
        {"Input": "{\"bucket\":\"uploads\",\"key\":\"archives/README.txt\"}", "Output": skipped.to_string(), "Status": "SUCCEEDED"}
    ]);
    let failed = json!([{"Input": "{\"bucket\":\"uploads\",\"key\":\"archives/bad.zip\"}", "Error": "Stepops.InvalidInput", "Cause": "not a zip", "Status": "FAILED"}]);
    let manifest = json!({"ResultFiles": {
        "SUCCEEDED": [{"Key": "ns1/relationalized/_runs/x/SUCCEEDED_0.json"}],
        "FAILED": [{"Key": "ns1/relationalized/_runs/x/FAILED_0.json"}],
        "PENDING": []
    }});
    put(
        "ns1/relationalized/_runs/x/SUCCEEDED_0.json",
        succeeded.to_string().into_bytes(),
    )
    .await
    .unwrap();
    put(
        "ns1/relationalized/_runs/x/FAILED_0.json",
        failed.to_string().into_bytes(),
    )
    .await
    .unwrap();
    put(
        "ns1/relationalized/_runs/x/manifest.json",
        manifest.to_string().into_bytes(),
    )
    .await
    .unwrap();
    let summary = handle_event(
        &relz,
        &input,
        &json!({"summarize": {"Bucket": "uploads", "Key": "ns1/relationalized/_runs/x/manifest.json"}}),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            &summary["archives"],
            &summary["failed"],
            &summary["documents"],
            &summary["invalid"]
        ),
        (&json!(2), &json!(1), &json!(2), &json!(1))
    );
    assert_eq!(summary["skipped"], 1);
    assert_eq!(
        summary["failures"][0]["archive"],
        "s3://uploads/archives/bad.zip"
    );
}
