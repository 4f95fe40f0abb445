//! `stepops bench --key uuid`: one table keyed by `uuid` beside the same table keyed by
//! `bigint` (same rows, same columns, filled in the same order), each migrated by stepops
//! (full copy, incremental after 0.1 % updates, 0.01 % deletes and 0.1 % inserts,
//! no-difference pass) and by the peers (pgcopydb clone, reladiff), every destination checked
//! equal to its source by an md5 over all rows computed by the servers.

use std::process::Command;

use super::Bench;
use crate::measure::{measure, on_path};

/// The table, with `KEYTYPE` the key's type.
const DDL: &str = "CREATE TABLE items (id KEYTYPE PRIMARY KEY, n bigint NOT NULL, title text NOT NULL, \
                   body text, at timestamptz NOT NULL)";

/// The key of row number `g` as SQL.
fn key_of(kind: &str, g: &str) -> String {
    match kind {
        "uuid" => format!("md5('item' || {g})::uuid"),
        _ => g.to_owned(),
    }
}

/// Rows `from..=to`.
fn fill(kind: &str, from: u64, to: u64) -> String {
    format!(
        "INSERT INTO items SELECT {}, g, 'item ' || g, repeat(md5(g::text), 3), \
         timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second' \
         FROM generate_series({from}, {to}) g",
        key_of(kind, "g")
    )
}

/// An md5 over every row in key order, and the row count.
const DIGEST: &str =
    "SELECT count(*) || ' ' || md5(string_agg(i::text, ',' ORDER BY i.id)) FROM items i";

pub(super) async fn run(b: &mut Bench<'_>) -> anyhow::Result<()> {
    let rows = b.args.rows;
    for kind in ["bigint", "uuid"] {
        let step = |s: &str| format!("{kind} key: {s}");
        let src = format!("keys_{kind}");
        let ddl = DDL.replace("KEYTYPE", kind);
        eprintln!("bench: {kind}-keyed table of {rows} rows…");
        b.src_pg.create_database(&src)?;
        b.src_pg
            .psql(&src, &format!("{ddl}; {}", fill(kind, 1, rows)))?;
        b.src_pg.psql(&src, "VACUUM ANALYZE items")?;
        let dst = format!("keys_{kind}_stepops");
        b.pg.create_database(&dst)?;
        b.pg.psql(&dst, &ddl)?;
        let same = |b: &Bench<'_>, db: &str| -> anyhow::Result<String> {
            let (a, z) = (b.src_pg.psql(&src, DIGEST)?, b.pg.psql(db, DIGEST)?);
            Ok(if a == z {
                "; verified equal row by row".into()
            } else {
                format!("; NOT EQUAL ({} rows against {})", z.trim(), a.trim())
            })
        };

        let (full, summary) = b.stepops_migrate_from(&src, &dst, &format!("{kind}-full"))?;
        let note = same(b, &dst)?;
        b.push(
            &step("full copy"),
            "stepops migrate",
            Some(full.seconds),
            format!("{summary}{note}"),
        );
        if !b.args.no_peers && on_path("pgcopydb") {
            let target = b.pg.create_database(&format!("keys_{kind}_pgcopydb"))?;
            let bin = b.pg.bindir().to_path_buf();
            let mut cmd = Command::new("pgcopydb");
            cmd.args(["clone", "--no-owner", "--no-acl", "--skip-extensions"])
                .arg("--source")
                .arg(b.src_pg.database_url(&src))
                .arg("--target")
                .arg(&target)
                .arg("--dir")
                .arg(b.work.join(format!("pgcopydb-{kind}")))
                .args(["--table-jobs", &b.args.jobs.to_string()])
                .args(["--index-jobs", &b.args.jobs.to_string()])
                .env(
                    "PATH",
                    format!(
                        "{}:{}",
                        bin.display(),
                        std::env::var("PATH").unwrap_or_default()
                    ),
                )
                .env("PGCOPYDB_PG_BINDIR", &bin);
            let run = measure(cmd, &b.work.join(format!("pgcopydb-{kind}.log")))?;
            b.push(
                &step("full copy"),
                "pgcopydb clone",
                run.ok.then_some(run.seconds),
                if run.ok {
                    "schema + data + index"
                } else {
                    "failed (see its log)"
                },
            );
        }

        b.src_pg.psql(
            &src,
            &format!(
                "UPDATE items SET title = title || ' changed' WHERE n % 1000 = 3; \
                 DELETE FROM items WHERE n % 10000 = 7; {}",
                fill(kind, rows + 1, rows + rows / 1000)
            ),
        )?;
        let (inc, summary) = b.stepops_migrate_from(&src, &dst, &format!("{kind}-incremental"))?;
        let note = same(b, &dst)?;
        b.push(
            &step("incremental (0.1% upd, 0.01% del, 0.1% ins)"),
            "stepops migrate",
            Some(inc.seconds),
            format!(
                "{:.1}% of its full copy; {summary}{note}",
                100.0 * inc.seconds / full.seconds
            ),
        );
        let (nodiff, summary) = b.stepops_migrate_from(&src, &dst, &format!("{kind}-same"))?;
        b.push(
            &step("no-difference pass"),
            "stepops migrate",
            Some(nodiff.seconds),
            summary,
        );
        if !b.args.no_peers && on_path("reladiff") {
            let mut cmd = Command::new("reladiff");
            cmd.arg(
                b.src_pg
                    .database_url(&src)
                    .replace("postgres://", "postgresql://"),
            )
            .arg("items")
            .arg(
                b.pg.database_url(&dst)
                    .replace("postgres://", "postgresql://"),
            )
            .arg("items")
            .args(["-k", "id", "-c", "%", "-s", "-j", &b.args.jobs.to_string()]);
            let log = b.work.join(format!("reladiff-{kind}.log"));
            let run = measure(cmd, &log)?;
            let errors = std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .any(|l| l.contains("ERROR"));
            b.push(
                &step("no-difference pass"),
                "reladiff (hashdiff, all columns)",
                (run.ok && !errors).then_some(run.seconds),
                run.stdout.trim().replace('\n', "; "),
            );
        }
    }
    let seconds = |step: &str| {
        b.rows
            .iter()
            .find(|r| r.step == step && r.tool == "stepops migrate")
            .and_then(|r| r.seconds)
    };
    if let (Some(u), Some(i)) = (
        seconds("uuid key: full copy"),
        seconds("bigint key: full copy"),
    ) {
        b.push(
            "uuid key: full copy",
            "ratio to the bigint-keyed full copy",
            None,
            format!("{:.2}× (target 1.2×)", u / i),
        );
    }
    Ok(())
}
