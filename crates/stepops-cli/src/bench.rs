//! `stepops bench`: measure `stepops migrate` on PostgreSQL beside its peers and print figures.
//! A harness, not a test: it starts a throwaway server (stepops-testkit), builds the sample
//! (stepops-sample), runs every tool as a child process and prints a table.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, bail};
use stepops_sample::{Fractions, SampleSpec};
use stepops_testkit::{PgOptions, PgServer};

const LONG_ABOUT: &str = "\
Benchmark `stepops migrate` on PostgreSQL and print the figures (a harness, not a timed test).

In one run, on two throwaway PostgreSQL servers (127.0.0.1, temporary directories): the source
with wal_level=logical (change tracking reads its slot), the destinations with
--dest-wal-level (replica by default, what managed PostgreSQL runs; minimal lets pgcopydb's
TRUNCATE + COPY skip the WAL):
  1. builds the sample source (`stepops sample`: users, projects, entities, acl, events);
  2. full copy into an empty destination: `stepops migrate` (schema pre-created, as it requires;
     then a full verification pass), `stepops migrate --track` (change tracking: verifies what
     changed meanwhile), `pgcopydb clone` (creates schema, copies, builds indexes) and
     `pg_dump --data-only | psql` (into the pre-created schema);
  3. incremental re-sync after 0.1% updates, 0.01% deletes and 0.1% inserts scattered over the
     source, with and without tracking (each into its destination from step 2);
  4. a pass with no differences: `stepops migrate` again, with and without tracking, beside
     `reladiff` (hashdiff, every column, each table);
  5. peak memory (max RSS) of every stepops child process.
With --tls both servers also accept TLS (a certificate from a CA made for the run) and step 2
adds the same full copy with both URLs at sslmode=verify-full, reported as a ratio of the
plaintext one.
After steps 2 and 3 every stepops destination is compared with the source row by row
(client-side digest, independent of stepops' own checksums).

Peers missing from PATH are reported and skipped (bench/run.sh installs them: apt-get install
pgcopydb; pip install 'reladiff[postgresql]').

Examples:
  bench/run.sh                           # release build, peers installed, 5M rows
  stepops bench --rows 200000            # a quick run
  stepops bench --rows 1000000 --tls --no-peers   # TLS against plaintext";

/// Arguments of `stepops bench`.
#[derive(clap::Args, Debug)]
#[command(long_about = LONG_ABOUT)]
pub struct BenchArgs {
    /// Total sample rows (5,000,000 is about 1 GB of table data).
    #[arg(long, default_value_t = 5_000_000, value_name = "N")]
    pub rows: u64,
    /// Seed of the sample and of the mutations.
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub seed: u64,
    /// Concurrency given to every tool (stepops --jobs, pgcopydb --table-jobs/--index-jobs,
    /// reladiff --threads); the default is stepops migrate's own default.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub jobs: usize,
    /// stepops --chunk-rows (default: stepops' own default).
    #[arg(long, value_name = "N")]
    pub chunk_rows: Option<u64>,
    /// Where the server's temporary directory and the tools' work files go.
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// Skip the peers (pgcopydb, pg_dump | psql, reladiff).
    #[arg(long)]
    pub no_peers: bool,
    /// Skip the row-by-row comparisons after the copies.
    #[arg(long)]
    pub no_verify: bool,
    /// wal_level of the destinations' server: `replica` (the default: what every replicated or
    /// managed PostgreSQL runs, Amazon RDS and Aurora included) or `minimal` (where a loader
    /// that truncates and copies in one transaction, as pgcopydb does, writes no WAL).
    #[arg(long, default_value = "replica", value_parser = ["minimal", "replica", "logical"], value_name = "LEVEL")]
    pub dest_wal_level: String,
    /// Keep the work directory (every tool's log; with RUST_LOG=stepops_migrate=debug the
    /// engine's timings) instead of deleting it at the end.
    #[arg(long)]
    pub keep: bool,
    /// Also run the full copy over TLS (sslmode=verify-full on both sides) and report it as a
    /// ratio of the plaintext copy.
    #[arg(long)]
    pub tls: bool,
}

/// One measured child process.
struct Run {
    seconds: f64,
    max_rss_kb: i64,
    ok: bool,
    stdout: String,
    log: PathBuf,
}

/// Runs `cmd` to completion (stdout to a file we return, stderr to `log`), measuring wall time
/// and the child's peak resident memory (`wait4`).
fn measure(mut cmd: Command, log: &Path) -> anyhow::Result<Run> {
    let out_path = log.with_extension("out");
    let out = std::fs::File::create(&out_path)?;
    let err = std::fs::File::create(log)?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let started = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child, which we reap here.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if rc != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    let seconds = started.elapsed().as_secs_f64();
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    Ok(Run {
        seconds,
        max_rss_kb: usage.ru_maxrss,
        ok,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        log: log.to_path_buf(),
    })
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}

struct Row {
    step: String,
    tool: String,
    seconds: Option<f64>,
    note: String,
}

struct Bench<'a> {
    args: &'a BenchArgs,
    /// The source stack's server (`wal_level = logical`, as change tracking needs).
    src_pg: PgServer,
    /// The destinations' server (every tool loads into its own database there).
    pg: PgServer,
    work: PathBuf,
    exe: PathBuf,
    rows: Vec<Row>,
    peak_rss_kb: i64,
    /// With --tls: the URL parameters of a verify-full connection (the run's CA file).
    tls_query: Option<String>,
}

impl Bench<'_> {
    /// The URL of `db` on `server`, over TLS (verify-full, by the certificate's name) or not.
    fn url(&self, server: &PgServer, db: &str, tls: bool) -> String {
        let plain = server.database_url(db);
        match (&self.tls_query, tls) {
            (Some(q), true) => format!(
                "{}?{q}&hostaddr=127.0.0.1",
                plain.replace("@127.0.0.1:", "@localhost:")
            ),
            _ => plain,
        }
    }

    /// Runs `stepops migrate` from the source into `dest`, with change tracking through the
    /// slot `track` when given.
    fn stepops_migrate(
        &mut self,
        dest: &str,
        label: &str,
        track: Option<&str>,
    ) -> anyhow::Result<(Run, String)> {
        self.stepops_migrate_over(dest, label, track, false)
    }

    /// [`Self::stepops_migrate`], over TLS when `tls`.
    fn stepops_migrate_over(
        &mut self,
        dest: &str,
        label: &str,
        track: Option<&str>,
        tls: bool,
    ) -> anyhow::Result<(Run, String)> {
        let mut cmd = Command::new(&self.exe);
        cmd.args(["migrate", "--json", "--jobs", &self.args.jobs.to_string()])
            .arg("--source")
            .arg(self.url(&self.src_pg, "src", tls))
            .arg("--dest")
            .arg(self.url(&self.pg, dest, tls));
        if let Some(slot) = track {
            cmd.arg("--track").arg(slot);
        }
        if let Some(n) = self.args.chunk_rows {
            cmd.arg("--chunk-rows").arg(n.to_string());
        }
        let run = measure(cmd, &self.work.join(format!("stepops-{label}.log")))?;
        self.peak_rss_kb = self.peak_rss_kb.max(run.max_rss_kb);
        if !run.ok {
            bail!("stepops migrate ({label}) failed:\n{}", tail(&run.log, 20));
        }
        let summary = summarize(&run.stdout);
        eprintln!(
            "bench: stepops migrate ({label}): {:.1} s, peak RSS {} MB, {summary}",
            run.seconds,
            run.max_rss_kb / 1024
        );
        Ok((run, summary))
    }

    async fn verify(&self, dest: &str, what: &str) -> anyhow::Result<String> {
        if self.args.no_verify {
            return Ok(String::new());
        }
        let started = Instant::now();
        let a = stepops_sample::digest(&self.src_pg.database_url("src")).await?;
        let b = stepops_sample::digest(&self.pg.database_url(dest)).await?;
        let differing: Vec<&str> = a
            .iter()
            .zip(&b)
            .filter(|(x, y)| x != y)
            .map(|(x, _)| x.table.as_str())
            .collect();
        eprintln!(
            "bench: row-by-row comparison after {what}: {} ({:.0} s)",
            if differing.is_empty() {
                "equal".to_owned()
            } else {
                format!("DIFFERENT: {}", differing.join(", "))
            },
            started.elapsed().as_secs_f64()
        );
        if differing.is_empty() {
            Ok("; verified equal row by row".into())
        } else {
            Ok(format!("; NOT EQUAL: {}", differing.join(", ")))
        }
    }

    /// The seconds of a peer's row, when it ran.
    fn peer_seconds(&self, step: &str, tool: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.step == step && r.tool == tool)
            .and_then(|r| r.seconds)
    }

    fn push(&mut self, step: &str, tool: &str, seconds: Option<f64>, note: impl Into<String>) {
        self.rows.push(Row {
            step: step.into(),
            tool: tool.into(),
            seconds,
            note: note.into(),
        });
    }
}

/// The change-tracking slot the bench's tracked runs use.
const SLOT: &str = "stepops_bench";
/// The tool column of the tracked runs.
const TRACKED: &str = "stepops migrate --track";
/// The incremental step's name.
const INCREMENTAL: &str = "incremental (0.1% upd, 0.01% del, 0.1% ins)";

/// `, N% of pgcopydb's` (its full copy) when pgcopydb ran, else nothing.
fn of_pgcopydb(b: &Bench<'_>, seconds: f64) -> String {
    b.peer_seconds("full copy", "pgcopydb clone")
        .map(|p| format!(", {:.1}% of pgcopydb's", 100.0 * seconds / p))
        .unwrap_or_default()
}

/// A short text from `stepops migrate --json`'s summary.
fn summarize(stdout: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(stdout.trim()) else {
        return "no JSON summary".into();
    };
    let n = |k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
    format!(
        "{} chunk(s), {} row(s) copied, {} deleted, {} round(s)",
        n("chunks"),
        n("rowsCopied"),
        n("rowsDeleted"),
        n("rounds")
    )
}

/// Runs `stepops bench`.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the stepops executable")?;
    let work = tempfile::Builder::new()
        .prefix("stepops-bench-")
        .tempdir_in(args.workdir.clone().unwrap_or_else(std::env::temp_dir))
        .context("cannot create the bench work directory")?;
    // Two servers, as two stacks are: the source with wal_level = logical (what change
    // tracking needs; a production primary runs at least `replica`), the destinations with
    // --dest-wal-level (replica by default; minimal lets pgcopydb skip WAL).
    let ca = args.tls.then(stepops_testkit::TestCa::new);
    let server = |wal_level: &str| {
        let mut settings: Vec<(String, String)> = [
            ("shared_buffers", "1GB"),
            ("max_wal_size", "8GB"),
            ("checkpoint_timeout", "30min"),
            ("maintenance_work_mem", "512MB"),
            ("work_mem", "64MB"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        settings.push(("wal_level".into(), wal_level.into()));
        if wal_level == "minimal" {
            settings.push(("max_wal_senders".into(), "0".into()));
        }
        PgServer::start_with(PgOptions {
            settings,
            parent_dir: args.workdir.clone(),
            tls: ca.as_ref().map(|ca| ca.server_tls(&["localhost"], false)),
            ..PgOptions::default()
        })
    };
    let src_pg = server("logical")?;
    let pg = server(&args.dest_wal_level)?;
    eprintln!(
        "bench: PostgreSQL source on 127.0.0.1:{} (wal_level=logical), destinations on 127.0.0.1:{} (wal_level={}) ({}), work files in {}",
        src_pg.port(),
        pg.port(),
        args.dest_wal_level,
        pg.bindir().display(),
        work.path().display()
    );
    let version = pg.psql("postgres", "SHOW server_version")?;
    let mut b = Bench {
        args: &args,
        src_pg,
        pg,
        work: work.path().to_path_buf(),
        exe,
        rows: Vec::new(),
        peak_rss_kb: 0,
        tls_query: None,
    };
    if let Some(ca) = &ca {
        let file = b.work.join("bench-ca.pem");
        std::fs::write(&file, ca.cert_pem()).context("cannot write the bench's CA file")?;
        b.tls_query = Some(format!(
            "sslmode=verify-full&sslrootcert={}",
            file.display()
        ));
    }

    // 1. The source.
    let src = b.src_pg.create_database("src")?;
    eprintln!("bench: building the sample source ({} rows)…", args.rows);
    let report = stepops_sample::sample(
        &src,
        SampleSpec {
            rows: args.rows,
            seed: args.seed,
            replace: false,
            progress: None,
        },
    )
    .await?;
    let size = b.src_pg.psql(
        "src",
        "SELECT pg_size_pretty(sum(pg_table_size(c.oid))) || ' tables, ' || \
         pg_size_pretty(pg_database_size(current_database())) || ' with indexes' \
         FROM pg_class c WHERE relname IN ('users','projects','entities','acl','events')",
    )?;
    eprintln!(
        "bench: source ready: {} rows in {:.1} s ({:.0} rows/s), {size}",
        report.counts.total(),
        report.seconds,
        report.counts.total() as f64 / report.seconds
    );
    b.push(
        "build sample source",
        "stepops sample (COPY)",
        Some(report.seconds),
        format!("{} rows, {size}", report.counts.total()),
    );

    // 2. Full copies into empty destinations.
    let dst = b.pg.create_database("dst_stepops")?;
    stepops_sample::create_schema(&dst).await?;
    let (full, summary) = b.stepops_migrate("dst_stepops", "full", None)?;
    let note = b.verify("dst_stepops", "the full copy").await?;
    b.push(
        "full copy",
        "stepops migrate",
        Some(full.seconds),
        format!(
            "{summary}; then a full checksum pass (verify); peak RSS {} MB{note}",
            full.max_rss_kb / 1024
        ),
    );
    if args.tls {
        let tls_dst = b.pg.create_database("dst_tls")?;
        stepops_sample::create_schema(&tls_dst).await?;
        let (run, summary) = b.stepops_migrate_over("dst_tls", "full-tls", None, true)?;
        let note = b.verify("dst_tls", "the full copy over TLS").await?;
        b.push(
            "full copy",
            "stepops migrate (TLS, verify-full)",
            Some(run.seconds),
            format!(
                "{summary}; {:.2}x the plaintext full copy's time{note}",
                run.seconds / full.seconds
            ),
        );
    }
    let tracked_dst = b.pg.create_database("dst_tracked")?;
    stepops_sample::create_schema(&tracked_dst).await?;
    let (tfull, summary) = b.stepops_migrate("dst_tracked", "full-tracked", Some(SLOT))?;
    let note = b.verify("dst_tracked", "the tracked full copy").await?;
    b.push(
        "full copy",
        TRACKED,
        Some(tfull.seconds),
        format!(
            "{summary}; creates the slot, verifies from the changes made meanwhile (none){note}"
        ),
    );
    if !args.no_peers {
        let bin = b.pg.bindir().to_path_buf();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        if on_path("pgcopydb") {
            let target = b.pg.create_database("dst_pgcopydb")?;
            let mut cmd = Command::new("pgcopydb");
            cmd.args(["clone", "--no-owner", "--no-acl", "--skip-extensions"])
                .arg("--source")
                .arg(&src)
                .arg("--target")
                .arg(&target)
                .arg("--dir")
                .arg(b.work.join("pgcopydb"))
                .args(["--table-jobs", &args.jobs.to_string()])
                .args(["--index-jobs", &args.jobs.to_string()])
                .env("PATH", &path)
                .env("PGCOPYDB_PG_BINDIR", &bin);
            let run = measure(cmd, &b.work.join("pgcopydb.log"))?;
            eprintln!("bench: pgcopydb clone: {:.1} s, ok={}", run.seconds, run.ok);
            if run.ok {
                b.push(
                    "full copy",
                    "pgcopydb clone",
                    Some(run.seconds),
                    "schema + data + indexes and constraints",
                );
            } else {
                b.push(
                    "full copy",
                    "pgcopydb clone",
                    None,
                    format!("failed: {}", tail(&run.log, 3).replace('\n', " / ")),
                );
            }
        } else {
            b.push(
                "full copy",
                "pgcopydb clone",
                None,
                "not installed (apt-get install pgcopydb)",
            );
        }
        let dump_dst = b.pg.create_database("dst_pgdump")?;
        stepops_sample::create_schema(&dump_dst).await?;
        let script = format!(
            "set -o pipefail; '{}' --data-only --disable-triggers --no-owner --no-acl -d '{}' | \
             '{}' -X -q -v ON_ERROR_STOP=1 -d '{}' >/dev/null",
            bin.join("pg_dump").display(),
            src,
            bin.join("psql").display(),
            dump_dst
        );
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg(script);
        let run = measure(cmd, &b.work.join("pgdump.log"))?;
        eprintln!(
            "bench: pg_dump --data-only | psql: {:.1} s, ok={}",
            run.seconds, run.ok
        );
        b.push(
            "full copy",
            "pg_dump --data-only | psql",
            run.ok.then_some(run.seconds),
            if run.ok {
                "into the pre-created schema (indexes maintained while loading)".to_owned()
            } else {
                format!("failed: {}", tail(&run.log, 3).replace('\n', " / "))
            },
        );
    }

    // 3. Incremental re-sync.
    let fractions = Fractions {
        update: 0.001,
        delete: 0.0001,
        insert: 0.001,
    };
    let started = Instant::now();
    let changes = stepops_sample::mutate(&src, args.seed.wrapping_add(1), fractions).await?;
    let (u, d, i) = changes.totals();
    eprintln!(
        "bench: source changed: {u} updated, {d} deleted, {i} inserted ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    let (inc, summary) = b.stepops_migrate("dst_stepops", "incremental", None)?;
    let note = b.verify("dst_stepops", "the incremental re-sync").await?;
    b.push(
        INCREMENTAL,
        "stepops migrate",
        Some(inc.seconds),
        format!(
            "{:.1}% of the full copy; {u} updated/{d} deleted/{i} inserted rows; {summary}{note}",
            100.0 * inc.seconds / full.seconds
        ),
    );
    let (tinc, summary) = b.stepops_migrate("dst_tracked", "incremental-tracked", Some(SLOT))?;
    let note = b
        .verify("dst_tracked", "the tracked incremental re-sync")
        .await?;
    b.push(
        INCREMENTAL,
        TRACKED,
        Some(tinc.seconds),
        format!(
            "{:.1}% of its full copy{}; compares only the changed keys read from the slot; {summary}{note}",
            100.0 * tinc.seconds / tfull.seconds,
            of_pgcopydb(&b, tinc.seconds)
        ),
    );

    // 4. No differences.
    let (same, summary) = b.stepops_migrate("dst_stepops", "no-difference", None)?;
    b.push(
        "no-difference pass",
        "stepops migrate",
        Some(same.seconds),
        format!("{summary}; a full checksum pass of both sides"),
    );
    let (tsame, summary) = b.stepops_migrate("dst_tracked", "no-difference-tracked", Some(SLOT))?;
    b.push(
        "no-difference pass",
        TRACKED,
        Some(tsame.seconds),
        format!("{summary}; reads the slot: no changed keys"),
    );
    // The slot would keep WAL on the (throwaway) source; drop it as a user would.
    let mut cmd = Command::new(&b.exe);
    cmd.args(["migrate", "--stop-tracking", "--track", SLOT])
        .arg("--source")
        .arg(b.src_pg.database_url("src"))
        .arg("--dest")
        .arg(b.pg.database_url("dst_tracked"));
    measure(cmd, &b.work.join("stop-tracking.log"))?;
    if !args.no_peers {
        if on_path("reladiff") {
            let mut total = 0.0;
            let mut failures = Vec::new();
            let mut found = Vec::new();
            let mut excluded = Vec::new();
            for table in stepops_sample::TABLES {
                let keys: &[&str] = if table == "acl" {
                    &["entity_id", "principal_id", "access"]
                } else {
                    &["id"]
                };
                // First every column; reladiff casts floats to numeric(38,13) and fails on
                // ±Infinity, so on failure retry without the float columns (and say so).
                let all = vec!["%".to_owned()];
                let finite: Vec<String> = stepops_sample::columns(table)
                    .iter()
                    .filter(|c| !keys.contains(c) && !["score", "ratio"].contains(c))
                    .map(|c| c.to_string())
                    .collect();
                let mut last = None;
                for (attempt, cols) in [all, finite].into_iter().enumerate() {
                    let mut cmd = Command::new("reladiff");
                    cmd.arg(
                        b.src_pg
                            .database_url("src")
                            .replace("postgres://", "postgresql://"),
                    )
                    .arg(table)
                    .arg(
                        b.pg.database_url("dst_stepops")
                            .replace("postgres://", "postgresql://"),
                    )
                    .arg(table);
                    for k in keys {
                        cmd.args(["-k", k]);
                    }
                    for c in &cols {
                        cmd.args(["-c", c]);
                    }
                    cmd.args(["-s", "-j", &args.jobs.to_string()]);
                    let log = b.work.join(format!("reladiff-{table}-{attempt}.log"));
                    let mut run = measure(cmd, &log)?;
                    // reladiff exits 0 after an ERROR line: read its log.
                    let errors: Vec<String> = std::fs::read_to_string(&log)
                        .unwrap_or_default()
                        .lines()
                        .filter(|l| l.contains("ERROR"))
                        .map(|l| l.to_owned())
                        .collect();
                    run.ok &= errors.is_empty();
                    eprintln!(
                        "bench: reladiff {table} ({}): {:.1} s, ok={}: {}{}",
                        if attempt == 0 {
                            "all columns"
                        } else {
                            "without float columns"
                        },
                        run.seconds,
                        run.ok,
                        run.stdout.trim().replace('\n', "; "),
                        errors.join("; ")
                    );
                    let ok = run.ok;
                    last = Some((run, errors));
                    if ok {
                        if attempt == 1 {
                            excluded.push(table);
                        }
                        break;
                    }
                }
                let (run, errors) = last.expect("at least one attempt");
                total += run.seconds;
                if !run.ok {
                    failures.push(format!("{table}: {}", errors.join(" / ")));
                } else if !run.stdout.contains("0 rows exclusive to table A")
                    || !run.stdout.contains("0 rows exclusive to table B")
                    || !run.stdout.contains("0 rows updated")
                {
                    found.push(format!("{table}: {}", run.stdout.trim().replace('\n', " ")));
                }
            }
            b.push(
                "no-difference pass",
                "reladiff (hashdiff, all columns, 5 tables)",
                failures.is_empty().then_some(total),
                if failures.is_empty() {
                    let mut note =
                        format!("{total:.1} s summed over the tables (time of the successful run)");
                    if !excluded.is_empty() {
                        note.push_str(&format!(
                            "; without the float column on {} (reladiff fails on ±Infinity)",
                            excluded.join(", ")
                        ));
                    }
                    if !found.is_empty() {
                        note.push_str(&format!("; reported differences: {}", found.join("; ")));
                    }
                    note
                } else {
                    format!("failed on {}", failures.join("; "))
                },
            );
        } else {
            b.push(
                "no-difference pass",
                "reladiff",
                None,
                "not installed (pip install 'reladiff[postgresql]')",
            );
        }
    }

    // 5. Report.
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nstepops bench: {} rows (seed {}), PostgreSQL {version}, --jobs {}, {} CPU(s), source wal_level=logical, destinations wal_level={}\n",
        report.counts.total(),
        args.seed,
        args.jobs,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.dest_wal_level
    );
    let _ = writeln!(out, "| step | tool | seconds | vs stepops | notes |");
    let _ = writeln!(out, "|---|---|---:|---:|---|");
    let reference = |step: &str| {
        b.rows
            .iter()
            .find(|r| r.step == step && r.tool == "stepops migrate")
            .and_then(|r| r.seconds)
    };
    for r in &b.rows {
        let secs = r.seconds.map_or("—".into(), |s| format!("{s:.1}"));
        let ratio = match (r.seconds, reference(&r.step)) {
            (Some(s), Some(base)) if base > 0.0 => format!("{:.2}×", s / base),
            _ => "".into(),
        };
        let cell = |t: &str| t.replace('|', "\\|");
        let _ = writeln!(
            out,
            "| {} | {} | {secs} | {ratio} | {} |",
            cell(&r.step),
            cell(&r.tool),
            cell(&r.note)
        );
    }
    let _ = writeln!(
        out,
        "\npeak memory of stepops (max RSS over its runs): {} MB",
        b.peak_rss_kb / 1024
    );
    if same.seconds > 0.0 && full.seconds > 0.0 {
        // Without tracking an incremental run checksums both sides twice (plan, then verify):
        // two no-difference passes are its floor, however few rows it copies.
        let _ = writeln!(
            out,
            "without tracking: incremental = {:.1} no-difference passes; floor (2 passes) = {:.0}% of the full copy",
            inc.seconds / same.seconds,
            200.0 * same.seconds / full.seconds
        );
    }
    let versus_pgcopydb = match b.peer_seconds("full copy", "pgcopydb clone") {
        Some(p) => format!("full copy {:.2}x pgcopydb's time; ", tfull.seconds / p),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "with tracking: {versus_pgcopydb}incremental {:.1}% of its full copy{}; no-difference pass {:.2} s",
        100.0 * tinc.seconds / tfull.seconds,
        of_pgcopydb(&b, tinc.seconds),
        tsame.seconds
    );
    let _ = writeln!(
        out,
        "(\"vs stepops\" = the tool's time / stepops' time for the same step: above 1 means \
         stepops is faster)"
    );
    print!("{out}");
    std::fs::write(b.work.join("report.md"), &out).ok();
    if args.keep {
        let kept = work.keep();
        eprintln!("bench: work files kept in {}", kept.display());
    }
    Ok(())
}
