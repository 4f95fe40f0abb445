//! The benchmark's report: the rows each step records, and their rendering as a Markdown table
//! with the tool-to-stepops ratios and the summary lines.

use std::fmt::Write as _;

/// One measured step of one tool.
pub(crate) struct Row {
    pub(crate) step: String,
    pub(crate) tool: String,
    pub(crate) seconds: Option<f64>,
    pub(crate) note: String,
}

/// The seconds of `tool` in `step`, when it ran.
pub(crate) fn peer_seconds(rows: &[Row], step: &str, tool: &str) -> Option<f64> {
    rows.iter()
        .find(|r| r.step == step && r.tool == tool)
        .and_then(|r| r.seconds)
}

/// `, N% of pgcopydb's` (its full copy) when pgcopydb ran, else nothing.
pub(crate) fn of_pgcopydb(rows: &[Row], seconds: f64) -> String {
    peer_seconds(rows, "full copy", "pgcopydb clone")
        .map(|p| format!(", {:.1}% of pgcopydb's", 100.0 * seconds / p))
        .unwrap_or_default()
}

/// A short text from `stepops migrate --json`'s summary.
pub(crate) fn summarize(stdout: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(stdout.trim()) else {
        return "no JSON summary".into();
    };
    let n = |k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
    let verified = if v.get("verifiedCopiedOnly") == Some(&serde_json::Value::Bool(true)) {
        "; verified the copied ranges only (source quiet)"
    } else {
        ""
    };
    format!(
        "{} chunk(s), {} row(s) copied, {} deleted, {} round(s){verified}",
        n("chunks"),
        n("rowsCopied"),
        n("rowsDeleted"),
        n("rounds")
    )
}

/// What the report is made of: the rows and the reference times of stepops' own runs.
pub(crate) struct Summary<'a> {
    pub(crate) rows: &'a [Row],
    pub(crate) total_rows: u64,
    pub(crate) seed: u64,
    pub(crate) version: &'a str,
    pub(crate) jobs: usize,
    pub(crate) dest_wal_level: &'a str,
    pub(crate) peak_rss_kb: i64,
    /// Seconds of the untracked full copy, incremental and no-difference pass.
    pub(crate) full: f64,
    pub(crate) inc: f64,
    pub(crate) same: f64,
    /// The same with change tracking.
    pub(crate) tfull: f64,
    pub(crate) tinc: f64,
    pub(crate) tsame: f64,
}

/// The report as printed.
pub(crate) fn render(s: &Summary<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nstepops bench: {} rows (seed {}), PostgreSQL {}, --jobs {}, {} CPU(s), source wal_level=logical, destinations wal_level={}\n",
        s.total_rows,
        s.seed,
        s.version,
        s.jobs,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        s.dest_wal_level
    );
    let _ = writeln!(out, "| step | tool | seconds | vs stepops | notes |");
    let _ = writeln!(out, "|---|---|---:|---:|---|");
    let reference = |step: &str| {
        s.rows
            .iter()
            .find(|r| r.step == step && r.tool == "stepops migrate")
            .and_then(|r| r.seconds)
    };
    for r in s.rows {
        let secs = r.seconds.map_or("—".into(), |x| format!("{x:.1}"));
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
        s.peak_rss_kb / 1024
    );
    if s.same > 0.0 && s.full > 0.0 {
        // Without tracking an incremental run checksums both sides once to plan, then either
        // the copied ranges only (the source stayed quiet) or both sides again.
        let _ = writeln!(
            out,
            "without tracking: incremental = {:.1} no-difference passes = {:.0}% of the full copy (one pass = {:.0}%; two when the source is written during the run)",
            s.inc / s.same,
            100.0 * s.inc / s.full,
            100.0 * s.same / s.full
        );
    }
    let versus_pgcopydb = match peer_seconds(s.rows, "full copy", "pgcopydb clone") {
        Some(p) => format!("full copy {:.2}x pgcopydb's time; ", s.tfull / p),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "with tracking: {versus_pgcopydb}incremental {:.1}% of its full copy{}; no-difference pass {:.2} s",
        100.0 * s.tinc / s.tfull,
        of_pgcopydb(s.rows, s.tinc),
        s.tsame
    );
    let _ = writeln!(
        out,
        "(\"vs stepops\" = the tool's time / stepops' time for the same step: above 1 means \
         stepops is faster)"
    );
    out
}
