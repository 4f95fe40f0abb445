//! DuckDB (the Python package, installed by scripts/install-deps.sh) as an independent reader
//! of the Parquet files stepops writes: a test runs SQL and compares rows. It never skips: a
//! missing `duckdb` fails the test and says how to install it.

use serde_json::Value;

/// Runs `sql` in DuckDB; every row as a JSON array (values JSON lacks, such as timestamps,
/// as text).
pub fn duckdb(sql: &str) -> Vec<Value> {
    let script = "import duckdb, json, sys\n\
        rows = duckdb.sql(sys.argv[1]).fetchall()\n\
        print(json.dumps([list(r) for r in rows], default=str))";
    let out = std::process::Command::new("python3")
        .args(["-c", script, sql])
        .output()
        .expect("python3 is needed to read the output with DuckDB (scripts/install-deps.sh)");
    assert!(
        out.status.success(),
        "DuckDB failed on {sql}: {}\n(install it with scripts/install-deps.sh: pip install duckdb)",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("DuckDB's rows as JSON")
}

/// The first column of the first row of `sql`, as an integer.
pub fn duckdb_count(sql: &str) -> i64 {
    duckdb(sql)[0][0]
        .as_i64()
        .unwrap_or_else(|| panic!("{sql} gave no integer"))
}
