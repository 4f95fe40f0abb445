//! The local engine's benchmark (`stepops local bench`): state transitions per second on a long
//! Pass chain and the time of a large inline Map, each measured twice:
//!
//! * **in memory**: the interpreter alone (`stepops_asl::run`), history and snapshots handed to a
//!   recorder that only counts them;
//! * **SQLite store**: a [`LocalEngine`] on a state dir, every transition recorded in
//!   `engine.sqlite3` as `stepops local serve` records it.
//!
//! The goals: at least [`GOAL_TRANSITIONS_PER_SEC`] transitions/s on the chain, and the
//! 10,000-item Map with MaxConcurrency 40 in under [`GOAL_MAP_SECS`] s. This module measures and
//! reports; it asserts nothing about time (tests run it with tiny sizes only to check it works).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::BoxFuture;
use serde_json::{Map, Value, json};
use stepops_asl::{
    Definition, ExecutionInfo, ExecutionResult, ExecutionStore, HistoryEvent, RunOptions, Snapshot,
    StoreError, TaskDispatcher, TaskError, TaskInvocation,
};
use tokio_util::sync::CancellationToken;

use crate::engine::{EngineConfig, LocalEngine};
use crate::error::LocalError;

/// Goal for the Pass chain (state transitions per second).
pub const GOAL_TRANSITIONS_PER_SEC: f64 = 20_000.0;
/// Goal for the Map (seconds).
pub const GOAL_MAP_SECS: f64 = 5.0;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Pass states in the chain (default 20,000).
    pub chain: usize,
    /// Items of the inline Map (default 10,000).
    pub items: usize,
    /// The Map's MaxConcurrency (default 40).
    pub max_concurrency: u32,
    /// Runs of each measurement; the report gives the median and the range (default 3).
    pub runs: usize,
    /// Where the SQLite-store runs keep their state (a fresh temporary dir when `None`).
    pub state_dir: Option<PathBuf>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            chain: 20_000,
            items: 10_000,
            max_concurrency: 40,
            runs: 3,
            state_dir: None,
        }
    }
}

/// One timed execution.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Wall time from StartExecution to the end.
    pub secs: f64,
    /// State transitions (`…StateEntered` events) of the execution.
    pub transitions: usize,
    /// History events recorded.
    pub events: usize,
}

impl Sample {
    /// Transitions per second.
    pub fn rate(&self) -> f64 {
        self.transitions as f64 / self.secs.max(1e-9)
    }
}

/// The runs of one measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    /// `pass chain` or `map`.
    pub what: &'static str,
    /// `in memory` or `SQLite store`.
    pub store: &'static str,
    /// One sample per run.
    pub samples: Vec<Sample>,
}

impl Measurement {
    fn median_by(&self, key: impl Fn(&Sample) -> f64) -> f64 {
        let mut v: Vec<f64> = self.samples.iter().map(key).collect();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    /// Median wall time.
    pub fn median_secs(&self) -> f64 {
        self.median_by(|s| s.secs)
    }

    /// Median transitions per second.
    pub fn median_rate(&self) -> f64 {
        self.median_by(Sample::rate)
    }

    /// Whether the median meets the goal of this measurement.
    pub fn goal_met(&self) -> bool {
        match self.what {
            "map" => self.median_secs() < GOAL_MAP_SECS,
            _ => self.median_rate() >= GOAL_TRANSITIONS_PER_SEC,
        }
    }
}

/// Everything measured, with the conditions.
#[derive(Clone, Debug)]
pub struct BenchReport {
    /// What was asked.
    pub options: BenchOptions,
    /// In memory and SQLite, chain and map.
    pub measurements: Vec<Measurement>,
    /// `release` or `debug`.
    pub profile: &'static str,
    /// CPUs available to this process.
    pub cpus: usize,
    /// `/proc/loadavg` at the start and at the end (1, 5, 15 minutes), when readable.
    pub load_before: Option<String>,
    /// See `load_before`.
    pub load_after: Option<String>,
    /// When it started (UTC, RFC 3339).
    pub started: String,
}

impl BenchReport {
    /// Whether every goal is met.
    pub fn all_goals_met(&self) -> bool {
        self.measurements.iter().all(Measurement::goal_met)
    }

    /// The report as printed by `stepops local bench`.
    pub fn render(&self) -> String {
        let o = &self.options;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "stepops local engine benchmark ({} build, {} CPUs, {} UTC)",
            self.profile, self.cpus, self.started
        );
        if let Some(l) = &self.load_before {
            let _ = writeln!(
                s,
                "load average before: {l}; after: {}",
                self.load_after.as_deref().unwrap_or("?")
            );
        }
        if self.profile != "release" {
            let _ = writeln!(
                s,
                "warning: a debug build; the goals are about release builds \
                 (cargo run --release --bin stepops -- local bench)"
            );
        }
        let _ = writeln!(
            s,
            "pass chain: {} Pass states; map: {} items, MaxConcurrency {}, 2 Pass states per item; \
             {} run(s) each, median [min-max]",
            o.chain, o.items, o.max_concurrency, o.runs
        );
        let d = BenchOptions::default();
        if (o.chain, o.items, o.max_concurrency) != (d.chain, d.items, d.max_concurrency) {
            let _ = writeln!(
                s,
                "note: the goals are for the default sizes ({} Pass states; {} items, \
                 MaxConcurrency {})",
                d.chain, d.items, d.max_concurrency
            );
        }
        for m in &self.measurements {
            let secs: Vec<f64> = m.samples.iter().map(|x| x.secs).collect();
            let rates: Vec<f64> = m.samples.iter().map(Sample::rate).collect();
            let (lo, hi) = (range(&secs), range(&rates));
            let first = &m.samples[0];
            let (figure, goal) = if m.what == "map" {
                (
                    format!(
                        "{:.2} s [{:.2}-{:.2}] ({:.0} transitions/s)",
                        m.median_secs(),
                        lo.0,
                        lo.1,
                        m.median_rate()
                    ),
                    format!("goal < {GOAL_MAP_SECS} s"),
                )
            } else {
                (
                    format!(
                        "{:.0} transitions/s [{:.0}-{:.0}] ({:.2} s)",
                        m.median_rate(),
                        hi.0,
                        hi.1,
                        m.median_secs()
                    ),
                    format!("goal >= {GOAL_TRANSITIONS_PER_SEC:.0}/s"),
                )
            };
            let _ = writeln!(
                s,
                "{:<10} {:<13} {figure}; {} transitions, {} events; {goal}: {}",
                m.what,
                m.store,
                first.transitions,
                first.events,
                if m.goal_met() { "met" } else { "NOT met" }
            );
        }
        let _ = writeln!(
            s,
            "{}",
            if self.all_goals_met() {
                "all goals met"
            } else {
                "some goals NOT met"
            }
        );
        s
    }
}

/// `(min, max)`.
fn range(v: &[f64]) -> (f64, f64) {
    (
        v.iter().copied().fold(f64::INFINITY, f64::min),
        v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    )
}

/// A chain of `n` Pass states, each writing its index into `$.last`.
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

/// An inline Map over `$.items` with two Pass states per item.
pub fn big_map(max_concurrency: u32) -> Value {
    json!({"StartAt": "M", "States": {"M": {
        "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": max_concurrency,
        "ItemSelector": {"i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value"},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "A", "States": {
            "A": {"Type": "Pass", "Parameters": {"n.$": "$.i"}, "Next": "B"},
            "B": {"Type": "Pass", "End": true}}},
        "ResultSelector": {"n.$": "States.ArrayLength($)"}, "End": true}}})
}

fn map_input(items: usize) -> Value {
    json!({"items": (0..items).collect::<Vec<usize>>()})
}

/// Counts events and transitions; keeps nothing.
#[derive(Default)]
struct CountingStore {
    events: AtomicUsize,
    transitions: AtomicUsize,
}

impl ExecutionStore for CountingStore {
    fn record(
        &self,
        _: &str,
        events: &[HistoryEvent],
        snapshot: &Snapshot,
    ) -> Result<(), StoreError> {
        self.events.fetch_add(events.len(), Ordering::Relaxed);
        let entered = events
            .iter()
            .filter(|e| e.event_type.ends_with("StateEntered"))
            .count();
        self.transitions.fetch_add(entered, Ordering::Relaxed);
        std::hint::black_box(snapshot);
        Ok(())
    }
}

struct NoTasks;

impl TaskDispatcher for NoTasks {
    fn dispatch(&self, _: TaskInvocation) -> BoxFuture<'static, Result<Value, TaskError>> {
        Box::pin(async { Err(TaskError::new("NoTasks", "the benchmark runs no tasks")) })
    }
}

fn check(what: &str, result: &ExecutionResult) -> Result<(), LocalError> {
    match result {
        ExecutionResult::Succeeded { .. } => Ok(()),
        other => Err(LocalError::Bench(format!(
            "the {what} execution did not succeed: {other:?}"
        ))),
    }
}

async fn in_memory(def: &Value, input: Value, what: &str) -> Result<Sample, LocalError> {
    let def = Arc::new(
        Definition::parse(&def.to_string()).map_err(|e| LocalError::Bench(e.to_string()))?,
    );
    let store = Arc::new(CountingStore::default());
    let info = ExecutionInfo {
        execution_arn: "arn:aws:states:us-east-1:123456789012:execution:Bench:run".into(),
        name: "run".into(),
        state_machine_arn: "arn:aws:states:us-east-1:123456789012:stateMachine:Bench".into(),
        state_machine_name: "Bench".into(),
        role_arn: "arn:aws:iam::123456789012:role/bench".into(),
        start_time: Utc::now(),
        redrive_count: 0,
    };
    let started = Instant::now();
    let result = stepops_asl::run(
        def,
        info,
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
    let secs = started.elapsed().as_secs_f64();
    check(what, &result)?;
    Ok(Sample {
        secs,
        transitions: store.transitions.load(Ordering::Relaxed),
        events: store.events.load(Ordering::Relaxed),
    })
}

async fn with_store(
    engine: &LocalEngine,
    machine: &str,
    input: &Value,
    what: &str,
) -> Result<Sample, LocalError> {
    let started = Instant::now();
    let exec = engine.start_execution(machine, input, None)?;
    let outcome = engine.wait(&exec).await?;
    let secs = started.elapsed().as_secs_f64();
    if outcome.status != "SUCCEEDED" {
        return Err(LocalError::Bench(format!(
            "the {what} execution did not succeed: {outcome:?}"
        )));
    }
    let history = engine.history(&exec)?;
    Ok(Sample {
        secs,
        transitions: history
            .iter()
            .filter(|e| e.event_type.ends_with("StateEntered"))
            .count(),
        events: history.len(),
    })
}

fn loadavg() -> Option<String> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// Runs every measurement (`progress` gets a line before each run) and returns the report.
pub async fn run(
    options: BenchOptions,
    mut progress: impl FnMut(&str),
) -> Result<BenchReport, LocalError> {
    if options.chain == 0 || options.items == 0 || options.runs == 0 {
        return Err(LocalError::Bench(
            "--chain, --items and --runs must be at least 1".into(),
        ));
    }
    let started = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let load_before = loadavg();
    let chain = pass_chain(options.chain);
    let map = big_map(options.max_concurrency);
    let items = map_input(options.items);
    let mut measurements = Vec::new();

    for (what, def, input) in [
        ("pass chain", &chain, json!({"hello": "world"})),
        ("map", &map, items.clone()),
    ] {
        let mut samples = Vec::new();
        for i in 0..options.runs {
            progress(&format!(
                "{what}, in memory, run {}/{}",
                i + 1,
                options.runs
            ));
            samples.push(in_memory(def, input.clone(), what).await?);
        }
        measurements.push(Measurement {
            what,
            store: "in memory",
            samples,
        });
    }

    let temp;
    let dir = match &options.state_dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::tempdir().map_err(|source| LocalError::Io {
                path: std::env::temp_dir().display().to_string(),
                source,
            })?;
            temp.path().to_path_buf()
        }
    };
    let engine = LocalEngine::start(EngineConfig {
        port: None,
        time_scale: 0.0,
        resume: false,
        ..EngineConfig::new(&dir)
    })
    .await?;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let chain_arn = engine.create_state_machine(
        &format!("bench-chain-{}-{}", options.chain, &suffix[..8]),
        &chain.to_string(),
    )?;
    let map_arn = engine.create_state_machine(
        &format!("bench-map-{}-{}", options.max_concurrency, &suffix[..8]),
        &map.to_string(),
    )?;
    for (what, arn, input) in [
        ("pass chain", &chain_arn, json!({"hello": "world"})),
        ("map", &map_arn, items),
    ] {
        let mut samples = Vec::new();
        for i in 0..options.runs {
            progress(&format!(
                "{what}, SQLite store ({}), run {}/{}",
                engine.store_path().display(),
                i + 1,
                options.runs
            ));
            samples.push(with_store(&engine, arn, &input, what).await?);
        }
        measurements.push(Measurement {
            what,
            store: "SQLite store",
            samples,
        });
    }
    engine.shutdown().await;
    // Let the store's files go before a temporary dir is removed.
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(BenchReport {
        options,
        measurements,
        profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        load_before,
        load_after: loadavg(),
        started,
    })
}
