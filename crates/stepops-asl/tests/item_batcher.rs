//! Distributed Map `ItemBatcher.MaxInputBytesPerBatch` (and its Path form, and with
//! `MaxItemsPerBatch`): a batch takes items while their size stays within the limit. An item
//! counts as its compact JSON plus one byte (the separator in the `Items` array); `BatchInput`
//! is not counted. An item larger than the limit travels alone.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{FnTasks, MemStore};
use futures::FutureExt;
use serde_json::{Value, json};
use stepops_asl::{Definition, ExecutionResult, RunOptions, TaskInvocation};
use tokio_util::sync::CancellationToken;

/// Items in the file: `"item-0001"` … `"item-0007"`.
const ITEMS: usize = 7;
/// What one item counts: `"item-000N"` is 11 bytes of JSON, plus one.
const ITEM_BYTES: usize = 12;

fn write_items(root: &Path) {
    let items: Vec<String> = (1..=ITEMS).map(|i| format!("item-{i:04}")).collect();
    assert_eq!(
        serde_json::to_string(&items[0]).unwrap().len() + 1,
        ITEM_BYTES
    );
    std::fs::create_dir_all(root.join("in")).unwrap();
    std::fs::write(
        root.join("in/items.json"),
        serde_json::to_string(&items).unwrap(),
    )
    .unwrap();
}

/// Runs a Distributed Map over the items with this `ItemBatcher`; returns the batches the
/// task received (`Items` of each, in order) or the failure.
async fn batches(root: &Path, batcher: Value, input: Value) -> Result<Vec<Vec<Value>>, String> {
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true,
        "MaxConcurrency": 1,
        "ItemReader": {"Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "JSON"},
            "Parameters": {"Bucket": "in", "Key": "items.json"}},
        "ItemBatcher": batcher,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Work", "States": {"Work": {"Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke", "End": true}}}}}});
    let tasks = FnTasks::new(|t: TaskInvocation| async move { Ok(t.input) }.boxed());
    let r = stepops_asl::run(
        Arc::new(Definition::parse(&def.to_string()).expect("definition loads")),
        common::info("batch"),
        input,
        None,
        tasks.clone(),
        Arc::new(MemStore::default()),
        RunOptions {
            time_scale: 0.0,
            s3_root: Some(root.to_path_buf()),
        },
        CancellationToken::new(),
    )
    .await;
    match r {
        ExecutionResult::Succeeded { .. } => Ok(tasks
            .calls()
            .iter()
            .map(|c| c.input["Items"].as_array().expect("Items").clone())
            .collect()),
        ExecutionResult::Failed { error, cause } => Err(format!(
            "{}: {}",
            error.unwrap_or_default(),
            cause.unwrap_or_default()
        )),
        other => Err(format!("{other:?}")),
    }
}

fn sizes(b: &[Vec<Value>]) -> Vec<usize> {
    b.iter().map(Vec::len).collect()
}

#[tokio::test]
async fn max_input_bytes_per_batch_cuts_batches_by_size() {
    let dir = tempfile::tempdir().unwrap();
    write_items(dir.path());
    let run = |batcher: Value| batches(dir.path(), batcher, json!({"bytes": 24}));

    // Exactly three items fit in 36 bytes, not in 35.
    let b = run(json!({"MaxInputBytesPerBatch": 3 * ITEM_BYTES}))
        .await
        .unwrap();
    assert_eq!(sizes(&b), [3, 3, 1]);
    let all: Vec<Value> = b.concat();
    assert_eq!(all.len(), ITEMS, "every item once, in order");
    assert_eq!(all[0], "item-0001");
    assert_eq!(all[6], "item-0007");
    let b = run(json!({"MaxInputBytesPerBatch": 3 * ITEM_BYTES - 1}))
        .await
        .unwrap();
    assert_eq!(sizes(&b), [2, 2, 2, 1]);

    // With MaxItemsPerBatch: whichever limit is reached first.
    let b = run(json!({"MaxInputBytesPerBatch": 3 * ITEM_BYTES, "MaxItemsPerBatch": 2}))
        .await
        .unwrap();
    assert_eq!(sizes(&b), [2, 2, 2, 1]);
    let b = run(json!({"MaxInputBytesPerBatch": 2 * ITEM_BYTES, "MaxItemsPerBatch": 5}))
        .await
        .unwrap();
    assert_eq!(sizes(&b), [2, 2, 2, 1]);

    // BatchInput is not counted.
    let b = run(json!({"MaxInputBytesPerBatch": 3 * ITEM_BYTES,
        "BatchInput": {"padding": "x".repeat(500)}}))
    .await
    .unwrap();
    assert_eq!(sizes(&b), [3, 3, 1]);

    // An item larger than the limit goes alone.
    let b = run(json!({"MaxInputBytesPerBatch": 5})).await.unwrap();
    assert_eq!(sizes(&b), [1; ITEMS]);
}

#[tokio::test]
async fn max_input_bytes_per_batch_path() {
    let dir = tempfile::tempdir().unwrap();
    write_items(dir.path());
    let batcher = json!({"MaxInputBytesPerBatchPath": "$.limits.bytes"});
    for bytes in [json!(2 * ITEM_BYTES), json!((2 * ITEM_BYTES).to_string())] {
        let b = batches(
            dir.path(),
            batcher.clone(),
            json!({"limits": {"bytes": bytes}}),
        )
        .await
        .unwrap();
        assert_eq!(sizes(&b), [2, 2, 2, 1], "{bytes}");
    }
    for bad in [json!(0), json!(-1), json!("many"), json!(null)] {
        let e = batches(
            dir.path(),
            batcher.clone(),
            json!({"limits": {"bytes": bad}}),
        )
        .await
        .unwrap_err();
        assert!(e.starts_with("States.Runtime: "), "{bad}: {e}");
        assert!(
            e.contains("The MaxInputBytesPerBatchPath field refers to value")
                && e.contains("$.limits.bytes"),
            "{bad}: {e}"
        );
    }
}
