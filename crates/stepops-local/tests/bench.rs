//! Throughput through the engine, store included (ignored by default; run with
//! `cargo nextest run -p stepops-local --release --run-ignored only bench`): a long Pass chain
//! and a 10,000-item inline Map with MaxConcurrency 40, each recorded in SQLite.

use std::time::Instant;

use serde_json::{Map, Value, json};
use stepops_local::{EngineConfig, LocalEngine};

async fn timed(engine: &LocalEngine, name: &str, def: Value, input: Value) -> f64 {
    let arn = engine.create_state_machine(name, &def.to_string()).unwrap();
    let started = Instant::now();
    let exec = engine.start_execution(&arn, &input, None).unwrap();
    let out = engine.wait(&exec).await.unwrap();
    assert_eq!(out.status, "SUCCEEDED", "{out:?}");
    started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run explicitly, in release"]
async fn bench_engine_with_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let engine = LocalEngine::start(EngineConfig {
        port: None,
        time_scale: 0.0,
        ..EngineConfig::new(dir.path())
    })
    .await
    .unwrap();

    let n = 20_000;
    let mut states = Map::new();
    for i in 0..n {
        states.insert(
            format!("S{i}"),
            json!({"Type": "Pass", "Next": format!("S{}", i + 1)}),
        );
    }
    states.insert(format!("S{n}"), json!({"Type": "Succeed"}));
    let secs = timed(
        &engine,
        "chain",
        json!({"StartAt": "S0", "States": states}),
        json!({}),
    )
    .await;
    println!(
        "pass chain: {} transitions in {secs:.2} s = {:.0} transitions/s",
        n + 1,
        (n + 1) as f64 / secs
    );

    let map = json!({"StartAt": "M", "States": {"M": {
        "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 40,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "A",
            "States": {"A": {"Type": "Pass", "End": true}}},
        "ResultSelector": {"n.$": "States.ArrayLength($)"}, "End": true}}});
    let items: Vec<u32> = (0..10_000).collect();
    let secs = timed(&engine, "map", map, json!({"items": items})).await;
    println!("10,000-item Map, MaxConcurrency 40: {secs:.2} s");
}
