//! `stepops local bench` works: tiny sizes, one run, both stores, the report's shape. No timing
//! assertion: the benchmark itself is `cargo run --release --bin stepops -- local bench`
//! (docs/local-engine.md, "Benchmark").

use stepops_local::bench::{BenchOptions, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_runs_every_measurement_and_reports_the_goals() {
    let dir = tempfile::tempdir().unwrap();
    let mut steps = Vec::new();
    let report = run(
        BenchOptions {
            chain: 30,
            items: 25,
            max_concurrency: 4,
            runs: 2,
            state_dir: Some(dir.path().to_path_buf()),
        },
        |s| steps.push(s.to_owned()),
    )
    .await
    .unwrap();
    assert_eq!(steps.len(), 8, "{steps:?}");
    let shape: Vec<(&str, &str)> = report
        .measurements
        .iter()
        .map(|m| (m.what, m.store))
        .collect();
    assert_eq!(
        shape,
        [
            ("pass chain", "in memory"),
            ("map", "in memory"),
            ("pass chain", "SQLite store"),
            ("map", "SQLite store")
        ]
    );
    for m in &report.measurements {
        assert_eq!(m.samples.len(), 2);
        for s in &m.samples {
            // The chain enters each of its states; the Map its own state and 2 per item.
            let expected = if m.what == "map" { 1 + 2 * 25 } else { 30 };
            assert_eq!(s.transitions, expected, "{m:?}");
            assert!(s.events > s.transitions && s.secs > 0.0, "{m:?}");
        }
    }
    assert!(dir.path().join("engine.sqlite3").exists());
    let text = report.render();
    assert_eq!(text.matches("; goal ").count(), 4, "{text}");
    assert!(
        text.contains("the goals are for the default sizes"),
        "{text}"
    );
    assert!(text.contains("transitions/s"), "{text}");
    assert!(text.contains("met"), "{text}");
}
