//! Throughput of the interpreter: state transitions per second on a long Pass chain, and the
//! time of a 10,000-item inline Map with MaxConcurrency 40 (history and snapshots recorded in
//! memory). Run: `cargo run --release -p stepops-asl --example bench`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::BoxFuture;
use serde_json::{Map, Value, json};
use stepops_asl::{
    Definition, ExecutionInfo, ExecutionResult, ExecutionStore, HistoryEvent, RunOptions, Snapshot,
    StoreError, TaskDispatcher, TaskError, TaskInvocation,
};
use tokio_util::sync::CancellationToken;

/// Counts events, keeps the latest snapshot.
#[derive(Default)]
struct CountingStore {
    events: Mutex<usize>,
    calls: Mutex<usize>,
}

impl ExecutionStore for CountingStore {
    fn record(
        &self,
        _: &str,
        events: &[HistoryEvent],
        snapshot: &Snapshot,
    ) -> Result<(), StoreError> {
        *self.events.lock().unwrap() += events.len();
        *self.calls.lock().unwrap() += 1;
        std::hint::black_box(snapshot);
        Ok(())
    }
}

struct NoTasks;
impl TaskDispatcher for NoTasks {
    fn dispatch(&self, _: TaskInvocation) -> BoxFuture<'static, Result<Value, TaskError>> {
        Box::pin(async { Err(TaskError::new("NoTasks", "no tasks in the benchmark")) })
    }
}

fn info() -> ExecutionInfo {
    ExecutionInfo {
        execution_arn: "arn:aws:states:us-east-1:123456789012:execution:Bench:b".into(),
        name: "b".into(),
        state_machine_arn: "arn:aws:states:us-east-1:123456789012:stateMachine:Bench".into(),
        state_machine_name: "Bench".into(),
        role_arn: "arn:aws:iam::123456789012:role/bench".into(),
        start_time: Utc::now(),
        redrive_count: 0,
    }
}

async fn run(def: Value, input: Value) -> (ExecutionResult, Duration, usize, usize) {
    let def = Arc::new(Definition::parse(&def.to_string()).expect("benchmark definition loads"));
    let store = Arc::new(CountingStore::default());
    let start = Instant::now();
    let r = stepops_asl::run(
        def,
        info(),
        input,
        None,
        Arc::new(NoTasks),
        store.clone(),
        RunOptions {
            time_scale: 0.0,
            ..Default::default()
        },
        CancellationToken::new(),
    )
    .await;
    let took = start.elapsed();
    let events = *store.events.lock().unwrap();
    let calls = *store.calls.lock().unwrap();
    (r, took, events, calls)
}

/// A chain of `n` Pass states.
pub fn pass_chain(n: usize) -> Value {
    let mut states = Map::new();
    for i in 0..n {
        let mut s = json!({"Type": "Pass", "ResultPath": "$.last", "Result": i});
        if i + 1 < n {
            s["Next"] = json!(format!("S{}", i + 1));
        } else {
            s["End"] = json!(true);
        }
        states.insert(format!("S{i}"), s);
    }
    json!({"StartAt": "S0", "States": states})
}

/// A Map over `n` items, MaxConcurrency 40, two Pass states per item.
pub fn big_map() -> Value {
    json!({"StartAt": "M", "States": {"M": {"Type": "Map", "MaxConcurrency": 40, "End": true,
        "ItemSelector": {"i.$": "$$.Map.Item.Index"},
        "ItemProcessor": {"StartAt": "A", "States": {
            "A": {"Type": "Pass", "Parameters": {"n.$": "$.i"}, "Next": "B"},
            "B": {"Type": "Pass", "End": true}}}}}})
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = 20_000;
    let (r, took, events, calls) = run(pass_chain(n), json!({"hello": "world"})).await;
    assert!(matches!(r, ExecutionResult::Succeeded { .. }), "{r:?}");
    println!(
        "pass chain: {n} transitions in {:.3} s = {:.0} transitions/s ({events} events, {calls} store calls)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    let items: Vec<Value> = (0..10_000)
        .collect::<Vec<i32>>()
        .into_iter()
        .map(|i| json!(i))
        .collect();
    let (r, took, events, calls) = run(big_map(), Value::Array(items)).await;
    assert!(matches!(r, ExecutionResult::Succeeded { .. }), "{r:?}");
    println!(
        "map: 10000 items, MaxConcurrency 40, in {:.3} s ({events} events, {calls} store calls)",
        took.as_secs_f64()
    );
}
