//! One benchmark run: the two servers (source with `wal_level=logical`, destinations at
//! `--dest-wal-level`), the sample, then every step of [`crate::LONG_ABOUT`] in order, each
//! measured as a child process and recorded as a row of the report.

mod keys;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};
use stepops_sample::{Fractions, SampleSpec};
use stepops_testkit::{PgOptions, PgServer};

use crate::BenchArgs;
use crate::measure::{Run, measure, on_path, tail};
use crate::report::{self, Row, Summary, of_pgcopydb, summarize};

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

    /// Runs `stepops migrate` from database `src` of the source server into `dest`.
    fn stepops_migrate_from(
        &mut self,
        src: &str,
        dest: &str,
        label: &str,
    ) -> anyhow::Result<(Run, String)> {
        self.migrate(src, dest, label, None, false, &[])
    }

    /// [`Self::stepops_migrate`] untracked, with `extra` arguments (`--cut-over`).
    fn stepops_migrate_with(
        &mut self,
        dest: &str,
        label: &str,
        extra: &[&str],
    ) -> anyhow::Result<(Run, String)> {
        self.migrate("src", dest, label, None, false, extra)
    }

    /// [`Self::stepops_migrate`], over TLS when `tls`.
    fn stepops_migrate_over(
        &mut self,
        dest: &str,
        label: &str,
        track: Option<&str>,
        tls: bool,
    ) -> anyhow::Result<(Run, String)> {
        self.migrate("src", dest, label, track, tls, &[])
    }

    fn migrate(
        &mut self,
        src: &str,
        dest: &str,
        label: &str,
        track: Option<&str>,
        tls: bool,
        extra: &[&str],
    ) -> anyhow::Result<(Run, String)> {
        let mut cmd = Command::new(&self.exe);
        cmd.args(["migrate", "--json", "--jobs", &self.args.jobs.to_string()])
            .args(extra)
            .arg("--source")
            .arg(self.url(&self.src_pg, src, tls))
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

/// Runs the benchmark with `exe` as the `stepops` binary; prints the report on stdout.
pub async fn run(args: BenchArgs, exe: PathBuf) -> anyhow::Result<()> {
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
    // The same with a busy source: another session holds a transaction open on the source
    // database during the run (as a live application does), so the verification cannot rule
    // out a write and compares both sides in full.
    let seed = args.seed.wrapping_add(2);
    let changes = stepops_sample::mutate(&src, seed, fractions).await?;
    let (u, d, i) = changes.totals();
    let open_transaction = OpenTransaction::begin(&b.src_pg, "src")?;
    let busy = b.stepops_migrate("dst_stepops", "incremental-busy-source", None);
    open_transaction.end();
    let (busy, summary) = busy?;
    let note = b.verify("dst_stepops", "the busy-source re-sync").await?;
    b.push(
        INCREMENTAL,
        "stepops migrate, busy source",
        Some(busy.seconds),
        format!(
            "{:.1}% of the full copy; a transaction open on the source during the run: the verification compares both sides in full; {u} updated/{d} deleted/{i} inserted rows; {summary}{note}",
            100.0 * busy.seconds / full.seconds
        ),
    );
    // Cut-over mode: the operator declares the source quiesced.
    let changes = stepops_sample::mutate(&src, seed.wrapping_add(1), fractions).await?;
    let (u, d, i) = changes.totals();
    let (cut, summary) =
        b.stepops_migrate_with("dst_stepops", "incremental-cut-over", &["--cut-over"])?;
    let note = b.verify("dst_stepops", "the cut-over re-sync").await?;
    b.push(
        INCREMENTAL,
        "stepops migrate --cut-over",
        Some(cut.seconds),
        format!(
            "{:.1}% of the full copy; {u} updated/{d} deleted/{i} inserted rows; {summary}{note}",
            100.0 * cut.seconds / full.seconds
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
            of_pgcopydb(&b.rows, tinc.seconds)
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

    // 5. Keys that are not integers (--key uuid).
    if args.key == "uuid" {
        keys::run(&mut b).await?;
    }

    // 6. Report.
    let out = report::render(&Summary {
        rows: &b.rows,
        total_rows: report.counts.total(),
        seed: args.seed,
        version: &version,
        jobs: args.jobs,
        dest_wal_level: &args.dest_wal_level,
        peak_rss_kb: b.peak_rss_kb,
        full: full.seconds,
        inc: inc.seconds,
        same: same.seconds,
        tfull: tfull.seconds,
        tinc: tinc.seconds,
        tsame: tsame.seconds,
    });
    print!("{out}");
    std::fs::write(b.work.join("report.md"), &out).ok();
    if args.keep {
        let kept = work.keep();
        eprintln!("bench: work files kept in {}", kept.display());
    }
    Ok(())
}

/// A `psql` session on a database of `server` holding a transaction open (with a transaction
/// id) until [`OpenTransaction::end`]: a live application's writer, as a migration's check
/// that the source stayed quiet sees it.
struct OpenTransaction(std::process::Child);

impl OpenTransaction {
    fn begin(server: &PgServer, database: &str) -> anyhow::Result<OpenTransaction> {
        use std::io::Write;
        let mut child = Command::new(server.bindir().join("psql"))
            .args(["-q", "-X", "-d"])
            .arg(server.database_url(database))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()?;
        let stdin = child.stdin.as_mut().context("psql's stdin")?;
        stdin.write_all(b"BEGIN;\nSELECT txid_current();\n")?;
        stdin.flush()?;
        // psql runs the statements as it reads them; give it a moment before the run starts.
        std::thread::sleep(std::time::Duration::from_millis(500));
        Ok(OpenTransaction(child))
    }

    /// Closes the session (the transaction is rolled back).
    fn end(mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}
