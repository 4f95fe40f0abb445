//! Distributed Map over the local folder standing in for S3: ItemReader (JSON, JSONL, CSV,
//! listObjectsV2), ItemBatcher, ResultWriter, tolerated failures.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{FnTasks, MemStore};
use futures::FutureExt;
use serde_json::{Value, json};
use stepops_asl::{
    Definition, ExecutionResult, RunOptions, TaskDispatcher, TaskError, TaskInvocation,
};
use tokio_util::sync::CancellationToken;

const LAMBDA: &str = "arn:aws:states:::lambda:invoke";

async fn run_in(
    root: Option<&Path>,
    def: &Value,
    input: Value,
    tasks: Arc<dyn TaskDispatcher>,
) -> (ExecutionResult, Arc<MemStore>) {
    let def = Definition::parse(&def.to_string()).expect("definition loads");
    let store = Arc::new(MemStore::default());
    let r = stepops_asl::run(
        Arc::new(def),
        common::info("d"),
        input,
        None,
        tasks,
        store.clone(),
        RunOptions {
            time_scale: 0.0,
            s3_root: root.map(Path::to_path_buf),
        },
        CancellationToken::new(),
    )
    .await;
    (r, store)
}

#[allow(clippy::type_complexity)]
fn echo() -> Arc<
    FnTasks<
        impl Fn(TaskInvocation) -> futures::future::BoxFuture<'static, Result<Value, TaskError>>
        + Send
        + Sync
        + 'static,
    >,
> {
    FnTasks::new(|t: TaskInvocation| async move { Ok(t.input) }.boxed())
}

fn dmap(reader: Value, extra: Value, inner_task: bool) -> Value {
    let inner = if inner_task {
        json!({"Type": "Task", "Resource": LAMBDA, "End": true})
    } else {
        json!({"Type": "Pass", "End": true})
    };
    let mut m = json!({"Type": "Map", "End": true, "ItemReader": reader,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Item", "States": {"Item": inner}}});
    for (k, v) in extra.as_object().unwrap() {
        m[k] = v.clone();
    }
    json!({"StartAt": "M", "States": {"M": m}})
}

fn output(r: ExecutionResult) -> Value {
    match r {
        ExecutionResult::Succeeded { output } => output,
        other => panic!("expected success, got {other:?}"),
    }
}

#[tokio::test]
async fn csv_reader_with_batches_and_result_writer() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("in/chunks")).unwrap();
    std::fs::write(
        dir.path().join("in/chunks/plan.csv"),
        "type,min,max\nusers,1,100\nusers,101,200\n\"a,b\",7,9\n",
    )
    .unwrap();
    let def = dmap(
        json!({"Resource": "arn:aws:states:::s3:getObject",
               "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"},
               "Parameters": {"Bucket": "in", "Key.$": "$.key"}}),
        json!({"ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"run.$": "$.run"}},
               "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
                                "Parameters": {"Bucket": "out", "Prefix": "results"}},
               "Label": "copy", "MaxConcurrency": 2}),
        true,
    );
    let tasks = echo();
    let (r, store) = run_in(
        Some(dir.path()),
        &def,
        json!({"key": "chunks/plan.csv", "run": 7}),
        tasks.clone(),
    )
    .await;
    let out = output(r);
    assert!(
        out["MapRunArn"]
            .as_str()
            .unwrap()
            .contains(":mapRun:Test/copy:"),
        "{out}"
    );
    assert_eq!(out["ResultWriterDetails"]["Bucket"], "out");
    let manifest_key = out["ResultWriterDetails"]["Key"].as_str().unwrap();
    assert!(manifest_key.starts_with("results/") && manifest_key.ends_with("/manifest.json"));
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out").join(manifest_key)).unwrap(),
    )
    .unwrap();
    let succeeded_key = manifest["ResultFiles"]["SUCCEEDED"][0]["Key"]
        .as_str()
        .unwrap();
    let results: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out").join(succeeded_key)).unwrap(),
    )
    .unwrap();
    assert_eq!(results.as_array().unwrap().len(), 2, "two batches");
    let batches: Vec<Value> = tasks.calls().iter().map(|c| c.input.clone()).collect();
    assert_eq!(batches.len(), 2);
    assert!(batches.contains(&json!({"BatchInput": {"run": 7}, "Items": [
        {"type": "users", "min": "1", "max": "100"}, {"type": "users", "min": "101", "max": "200"}]})));
    assert!(batches.contains(
        &json!({"BatchInput": {"run": 7}, "Items": [{"type": "a,b", "min": "7", "max": "9"}]})
    ));
    let types = store.event_types();
    assert!(
        types.contains(&"MapRunStarted".to_owned())
            && types.contains(&"MapRunSucceeded".to_owned())
    );
    assert!(
        !types.contains(&"TaskScheduled".to_owned()),
        "child executions have their own history"
    );
}

#[tokio::test]
async fn json_jsonl_and_list_objects_readers() {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    std::fs::create_dir_all(b.join("p/q")).unwrap();
    std::fs::write(b.join("items.json"), "[1, 2, 3]").unwrap();
    std::fs::write(b.join("items.jsonl"), "{\"a\":1}\n\n{\"a\":2}\n").unwrap();
    std::fs::write(b.join("p/x.txt"), "x").unwrap();
    std::fs::write(b.join("p/q/y.txt"), "yy").unwrap();

    let read = |ty: &str, key: &str| {
        json!({"Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {"InputType": ty, "MaxItems": 2}, "Parameters": {"Bucket": "b", "Key": key}})
    };
    let (r, _) = run_in(
        Some(dir.path()),
        &dmap(read("JSON", "items.json"), json!({}), false),
        json!({}),
        echo(),
    )
    .await;
    assert_eq!(output(r), json!([1, 2]));
    let (r, _) = run_in(
        Some(dir.path()),
        &dmap(read("JSONL", "items.jsonl"), json!({}), false),
        json!({}),
        echo(),
    )
    .await;
    assert_eq!(output(r), json!([{"a": 1}, {"a": 2}]));

    let list = json!({"Resource": "arn:aws:states:::s3:listObjectsV2", "Parameters": {"Bucket": "b", "Prefix": "p/"}});
    let def = dmap(
        list,
        json!({"ItemSelector": {"key.$": "$$.Map.Item.Value.Key", "size.$": "$$.Map.Item.Value.Size"}}),
        false,
    );
    let (r, _) = run_in(Some(dir.path()), &def, json!({}), echo()).await;
    assert_eq!(
        output(r),
        json!([{"key": "p/q/y.txt", "size": 2}, {"key": "p/x.txt", "size": 1}])
    );

    // A missing object or a missing local S3 folder fails with States.ItemReaderFailed.
    let (r, _) = run_in(
        Some(dir.path()),
        &dmap(read("JSON", "nope.json"), json!({}), false),
        json!({}),
        echo(),
    )
    .await;
    assert!(
        matches!(&r, ExecutionResult::Failed { error: Some(e), .. } if e == "States.ItemReaderFailed"),
        "{r:?}"
    );
    let (r, _) = run_in(
        None,
        &dmap(read("JSON", "items.json"), json!({}), false),
        json!({}),
        echo(),
    )
    .await;
    assert!(
        matches!(&r, ExecutionResult::Failed { error: Some(e), .. } if e == "States.ItemReaderFailed"),
        "{r:?}"
    );
}

#[tokio::test]
async fn tolerated_failures() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("b")).unwrap();
    std::fs::write(dir.path().join("b/i.json"), "[1, 2, 3, 4]").unwrap();
    let fail_even = || {
        FnTasks::new(|t: TaskInvocation| {
            async move {
                if t.input.as_i64().unwrap() % 2 == 0 {
                    Err(TaskError::new("Even", "even item"))
                } else {
                    Ok(t.input)
                }
            }
            .boxed()
        })
    };
    let reader = json!({"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON"},
        "Parameters": {"Bucket": "b", "Key": "i.json"}});
    let (r, _) = run_in(
        Some(dir.path()),
        &dmap(reader.clone(), json!({"ToleratedFailureCount": 2}), true),
        json!({}),
        fail_even(),
    )
    .await;
    assert_eq!(
        output(r),
        json!([1, {"Error": "Even", "Cause": "even item"}, 3, {"Error": "Even", "Cause": "even item"}])
    );
    let (r, _) = run_in(
        Some(dir.path()),
        &dmap(
            reader.clone(),
            json!({"ToleratedFailurePercentage": 25}),
            true,
        ),
        json!({}),
        fail_even(),
    )
    .await;
    assert!(
        matches!(&r, ExecutionResult::Failed { error: Some(e), .. } if e == "States.ExceedToleratedFailureThreshold"),
        "{r:?}"
    );
    let (r, _) = run_in(
        Some(dir.path()),
        &dmap(reader, json!({"ToleratedFailurePercentage": 50}), true),
        json!({}),
        fail_even(),
    )
    .await;
    assert!(matches!(r, ExecutionResult::Succeeded { .. }));
}

/// AWS: "To redrive a workflow that includes a Distributed Map state whose Map Run failed, you
/// must redrive the parent workflow. The parent workflow redrives all the unsuccessful states,
/// including a failed Map Run." The Map Run keeps its ARN and items (the ItemReader is not read
/// again); only the children that did not succeed (failed, aborted, never started) run again,
/// and the parent's history says `MapRunRedriven`.
#[tokio::test]
async fn redriving_the_parent_redrives_the_failed_map_run_only_its_unsuccessful_children() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("in")).unwrap();
    let lines: String = (0..6).map(|i| format!("{{\"n\": {i}}}\n")).collect();
    std::fs::write(dir.path().join("in/items.jsonl"), lines).unwrap();
    let def = dmap(
        json!({"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSONL"},
               "Parameters": {"Bucket": "in", "Key": "items.jsonl"}}),
        json!({"MaxConcurrency": 1, "ToleratedFailurePercentage": 0, "Label": "copy",
               "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
                                "Parameters": {"Bucket": "out", "Prefix": "results"}}}),
        true,
    );
    let broken = Arc::new(std::sync::Mutex::new(true));
    let b = broken.clone();
    let tasks = FnTasks::new(move |t: TaskInvocation| {
        let fail = *b.lock().unwrap() && t.input["n"] == 3;
        async move {
            if fail {
                Err(TaskError::new("Stepops.Internal", "item 3 is broken"))
            } else {
                Ok(t.input)
            }
        }
        .boxed()
    });
    let parsed = Arc::new(Definition::parse(&def.to_string()).unwrap());
    let options = RunOptions {
        time_scale: 0.0,
        s3_root: Some(dir.path().to_path_buf()),
    };
    let store = Arc::new(MemStore::default());
    let r = stepops_asl::run(
        parsed.clone(),
        common::info("d"),
        json!({}),
        None,
        tasks.clone(),
        store.clone(),
        options.clone(),
        CancellationToken::new(),
    )
    .await;
    assert!(
        matches!(&r, ExecutionResult::Failed { error: Some(e), .. } if e == "States.ExceedToleratedFailureThreshold"),
        "{r:?}"
    );
    let first: Vec<Value> = tasks.calls().iter().map(|c| c.input["n"].clone()).collect();
    assert_eq!(
        first,
        [json!(0), json!(1), json!(2), json!(3)],
        "serial: 4 and 5 never started"
    );
    let started = store
        .events
        .lock()
        .unwrap()
        .iter()
        .find(|e| e.event_type == "MapRunStarted")
        .map(|e| e.details["mapRunArn"].clone())
        .unwrap();

    // The cause is removed; the items file changes too: a redrive does not read it again.
    *broken.lock().unwrap() = false;
    std::fs::write(dir.path().join("in/items.jsonl"), "{\"n\": 99}\n").unwrap();
    let snap = stepops_asl::redrive(&store.snapshot()).unwrap();
    let mut info = common::info("d");
    info.redrive_count = 1;
    let store2 = Arc::new(MemStore::default());
    let r = stepops_asl::run(
        parsed,
        info,
        json!({}),
        Some(snap),
        tasks.clone(),
        store2.clone(),
        options,
        CancellationToken::new(),
    )
    .await;
    let out = output(r);
    let again: Vec<Value> = tasks.calls()[first.len()..]
        .iter()
        .map(|c| c.input["n"].clone())
        .collect();
    assert_eq!(
        again,
        [json!(3), json!(4), json!(5)],
        "only the unsuccessful children"
    );
    let events = store2.events.lock().unwrap().clone();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types[0], "ExecutionRedriven");
    assert!(!types.contains(&"MapRunStarted"), "{types:?}");
    let redriven = events
        .iter()
        .find(|e| e.event_type == "MapRunRedriven")
        .expect("MapRunRedriven");
    assert_eq!(redriven.details["mapRunArn"], started, "the same Map Run");
    assert_eq!(redriven.details["redriveCount"], 1);
    assert_eq!(out["MapRunArn"], started);
    // The results cover all six children, each once.
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(
            dir.path()
                .join("out")
                .join(out["ResultWriterDetails"]["Key"].as_str().unwrap()),
        )
        .unwrap(),
    )
    .unwrap();
    let key = manifest["ResultFiles"]["SUCCEEDED"][0]["Key"]
        .as_str()
        .unwrap();
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out").join(key)).unwrap())
            .unwrap();
    assert_eq!(results.as_array().unwrap().len(), 6);
    assert!(
        manifest["ResultFiles"]["FAILED"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}
