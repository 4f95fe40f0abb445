//! `stepops relationalize bench`: stepops' relationalize beside DuckDB (`read_json_auto` →
//! `COPY … (FORMAT parquet)`) on the same nested NDJSON, both pinned to one core (`taskset`
//! when present; DuckDB with `threads=1`), run in alternation for a few rounds: the median
//! wall and CPU time of each, their ratios, each one's peak resident memory, and stepops on
//! half the archives (its time should halve: linear in archives).
//! DuckDB writes nested columns as they are; stepops also validates every document against
//! its schema and flattens it into six tables.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use stepops_relationalize::generate::{SURVEY_SCHEMA, archive, document};

use crate::measure::{Run, measure, on_path, tail};

/// Arguments of `stepops relationalize bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Size of the NDJSON, MiB (the 1.5× target is set at 1024).
    #[arg(long, default_value_t = 256)]
    pub mib: u64,
    /// Archives the documents are split into (stepops reads one archive at a time).
    #[arg(long, default_value_t = 64)]
    pub archives: usize,
    /// Steps per document (each with an array of answers): the nesting's width.
    #[arg(long, default_value_t = 4)]
    pub steps: usize,
    /// Keep the data and outputs in this folder (default: a temporary one, removed after).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Rounds of stepops then DuckDB (then stepops on half the archives): each figure is the
    /// median of its rounds, so that a busy moment of a shared machine does not decide it.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
}

/// The median of `runs`' wall times, CPU times and peak memories, each taken on its own.
struct Median {
    seconds: f64,
    cpu_seconds: f64,
    max_rss_kb: i64,
}

fn median(runs: &[Run]) -> Median {
    let mid = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Median {
        seconds: mid(runs.iter().map(|r| r.seconds).collect()),
        cpu_seconds: mid(runs.iter().map(|r| r.cpu_seconds).collect()),
        max_rss_kb: mid(runs.iter().map(|r| r.max_rss_kb as f64).collect()) as i64,
    }
}

/// Generates `mib` MiB of survey documents as `archives` ZIPs under `dir/input` and as one
/// NDJSON file `dir/all.ndjson`; returns the number of documents.
fn generate(dir: &Path, args: &BenchArgs) -> anyhow::Result<u64> {
    let input = dir.join("input");
    std::fs::create_dir_all(&input)?;
    std::fs::create_dir_all(dir.join("schemas/survey"))?;
    std::fs::write(dir.join("schemas/survey/v1.json"), SURVEY_SCHEMA)?;
    let target = args.mib << 20;
    let per_archive = target / args.archives.max(1) as u64;
    let mut all = std::io::BufWriter::new(std::fs::File::create(dir.join("all.ndjson"))?);
    let mut docs = 0u64;
    for a in 0..args.archives {
        let mut lines = Vec::with_capacity(per_archive as usize + 4096);
        while (lines.len() as u64) < per_archive {
            serde_json::to_writer(&mut lines, &document(docs, args.steps))?;
            lines.push(b'\n');
            docs += 1;
        }
        all.write_all(&lines)?;
        let zip = archive(
            &format!("rec-{a:05}"),
            &format!("a{}", a % 4),
            "2024-03-05T10:00:00Z",
            &[("survey.jsonl", &lines)],
        );
        std::fs::write(input.join(format!("rec-{a:05}.zip")), zip)?;
    }
    all.flush()?;
    Ok(docs)
}

/// `cmd`, pinned to CPU 0 when `taskset` is installed.
fn one_core(program: &Path, args: &[&str]) -> Command {
    if on_path("taskset") {
        let mut c = Command::new("taskset");
        c.arg("-c").arg("0").arg(program).args(args);
        c
    } else {
        let mut c = Command::new(program);
        c.args(args);
        c
    }
}

fn checked(run: Run, what: &str) -> anyhow::Result<Run> {
    if !run.ok {
        bail!("{what} failed:\n{}", tail(&run.log, 20));
    }
    Ok(run)
}

fn duckdb_count(sql: &str) -> anyhow::Result<u64> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import duckdb, sys; print(duckdb.sql(sys.argv[1]).fetchall()[0][0])",
            sql,
        ])
        .output()
        .context("python3 with duckdb (scripts/install-deps.sh)")?;
    if !out.status.success() {
        bail!("DuckDB: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

/// Runs the benchmark and prints its report.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_owned());
    std::fs::create_dir_all(&dir)?;
    let dir = dir.canonicalize()?;
    eprintln!(
        "generating {} MiB of NDJSON in {} archives…",
        args.mib, args.archives
    );
    let docs = generate(&dir, &args)?;
    let ndjson_bytes = std::fs::metadata(dir.join("all.ndjson"))?.len();
    let exe = std::env::current_exe()?;
    let s = |p: &Path| p.display().to_string();
    let stepops = |input: &Path, output: &Path, log: &str| -> anyhow::Result<Run> {
        let _ = std::fs::remove_dir_all(output);
        let cmd = one_core(
            &exe,
            &[
                "relationalize",
                "--input",
                &s(input),
                "--output",
                &s(output),
                "--schemas",
                &s(&dir.join("schemas")),
            ],
        );
        checked(measure(cmd, &dir.join(log))?, "stepops relationalize")
    };
    let half_dir = dir.join("input-half");
    let _ = std::fs::remove_dir_all(&half_dir);
    std::fs::create_dir_all(&half_dir)?;
    for a in 0..args.archives / 2 {
        let name = format!("rec-{a:05}.zip");
        std::fs::hard_link(dir.join("input").join(&name), half_dir.join(&name)).or_else(|_| {
            std::fs::copy(dir.join("input").join(&name), half_dir.join(&name)).map(|_| ())
        })?;
    }
    let script = "import duckdb, sys\n\
        c = duckdb.connect()\n\
        c.execute('SET threads = 1')\n\
        c.execute(f\"COPY (SELECT * FROM read_json_auto('{sys.argv[1]}')) TO '{sys.argv[2]}' (FORMAT parquet)\")";
    let python = PathBuf::from("python3");
    let duck_out = dir.join("duckdb.parquet");
    let (mut fulls, mut halves, mut ducks) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        eprintln!("round {round} of {}: stepops relationalize…", args.rounds);
        fulls.push(stepops(
            &dir.join("input"),
            &dir.join("out-stepops"),
            "stepops.log",
        )?);
        eprintln!(
            "round {round} of {}: DuckDB read_json_auto → COPY (FORMAT parquet)…",
            args.rounds
        );
        ducks.push(checked(
            measure(
                one_core(
                    &python,
                    &["-c", script, &s(&dir.join("all.ndjson")), &s(&duck_out)],
                ),
                &dir.join("duckdb.log"),
            )?,
            "DuckDB",
        )?);
        eprintln!(
            "round {round} of {}: stepops on half the archives…",
            args.rounds
        );
        halves.push(stepops(
            &half_dir,
            &dir.join("out-half"),
            "stepops-half.log",
        )?);
    }
    let rows = duckdb_count(&format!(
        "SELECT count(*) FROM read_parquet('{}/out-stepops/survey/**/*.parquet')",
        dir.display()
    ))?;
    if rows != docs {
        bail!("stepops wrote {rows} survey rows for {docs} documents");
    }
    let duck_rows = duckdb_count(&format!(
        "SELECT count(*) FROM read_parquet('{}')",
        duck_out.display()
    ))?;
    let (full, half, duck) = (median(&fulls), median(&halves), median(&ducks));
    let mib = |kb: i64| kb as f64 / 1024.0;
    println!(
        "relationalize bench: {docs} nested documents, {:.0} MiB of NDJSON, {} archives, {} steps each",
        ndjson_bytes as f64 / 1048576.0,
        args.archives,
        args.steps
    );
    println!(
        "  one core: {}",
        if on_path("taskset") {
            "taskset -c 0; DuckDB threads=1"
        } else {
            "taskset not found: not pinned; DuckDB threads=1"
        }
    );
    println!("  median of {} round(s), wall time (CPU time)", args.rounds);
    println!(
        "  stepops relationalize (validate + flatten, 6 tables, {rows} root rows): {:.2} s ({:.2} s CPU), peak RSS {:.0} MiB",
        full.seconds,
        full.cpu_seconds,
        mib(full.max_rss_kb)
    );
    println!(
        "  DuckDB read_json_auto → COPY parquet ({duck_rows} rows, nested columns): {:.2} s ({:.2} s CPU), peak RSS {:.0} MiB",
        duck.seconds,
        duck.cpu_seconds,
        mib(duck.max_rss_kb)
    );
    println!(
        "  time ratio stepops / DuckDB: {:.2} ({:.2} CPU) (target ≤ 1.5)",
        full.seconds / duck.seconds,
        full.cpu_seconds / duck.cpu_seconds
    );
    println!(
        "  stepops on half the archives: {:.2} s ({:.2} s CPU; full / half = {:.2}; linear ≈ 2.0), peak RSS {:.0} MiB",
        half.seconds,
        half.cpu_seconds,
        full.cpu_seconds / half.cpu_seconds,
        mib(half.max_rss_kb)
    );
    println!(
        "  one archive: {:.1} MiB of NDJSON",
        ndjson_bytes as f64 / 1048576.0 / args.archives as f64
    );
    Ok(())
}
