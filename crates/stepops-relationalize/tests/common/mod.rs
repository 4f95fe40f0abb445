//! Test helpers: archives built in memory, a run over local folders, and DuckDB (from PyPI,
//! installed by scripts/install-deps.sh) as the independent reader of the Parquet output.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use stepops_relationalize::{Location, Relationalizer, Schemas};
use stepops_store::{AnyStore, LocalFolderStore};

/// A ZIP holding `members` (name, bytes), deflated.
pub fn zip(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut out);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, body) in members {
            w.start_file(*name, opts).unwrap();
            w.write_all(body).unwrap();
        }
        w.finish().unwrap();
    }
    out.into_inner()
}

/// `metadata.json` for record `record` of assessment `assessment`, uploaded 2024-03-05.
pub fn metadata(record: &str, assessment: &str) -> (&'static str, Vec<u8>) {
    (
        "metadata.json",
        json!({"recordId": record, "assessmentId": assessment, "uploadedOn": "2024-03-05T10:20:30Z"})
            .to_string()
            .into_bytes(),
    )
}

/// A member `name` holding `doc`.
pub fn doc(name: &'static str, doc: Value) -> (&'static str, Vec<u8>) {
    (name, doc.to_string().into_bytes())
}

/// Folders of one test: `in/`, `out/`, `schemas/` under a temporary directory.
pub struct Dirs {
    pub tmp: tempfile::TempDir,
    pub input: PathBuf,
    pub output: PathBuf,
    pub schemas: PathBuf,
}

pub fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let (input, output, schemas) = (
        tmp.path().join("in"),
        tmp.path().join("out"),
        tmp.path().join("schemas"),
    );
    for d in [&input, &output, &schemas] {
        std::fs::create_dir_all(d).unwrap();
    }
    Dirs {
        tmp,
        input,
        output,
        schemas,
    }
}

impl Dirs {
    /// Writes archive `name` into `in/`.
    pub fn archive(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.input.join(name), bytes).unwrap();
    }

    /// Writes the schema of `dataset` version 1.
    pub fn schema(&self, dataset: &str, schema: &Value) {
        let dir = self.schemas.join(dataset);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("v1.json"), schema.to_string()).unwrap();
    }

    /// A relationalizer writing to `out/`, validating with `schemas/` when `with_schemas`.
    pub fn relz(&self, with_schemas: bool) -> Relationalizer {
        let output = Location::parse(self.output.to_str().unwrap(), true).unwrap();
        let store = output.store(|| unreachable!());
        let schemas = if with_schemas {
            let loc = Location::parse(self.schemas.to_str().unwrap(), false).unwrap();
            Schemas::at(loc.store(|| unreachable!()), loc)
        } else {
            Schemas::none()
        };
        let mut r = Relationalizer::new(output, store, schemas);
        r.temp_dir = self.tmp.path().to_owned();
        r
    }

    /// The input folder as a store and location.
    pub fn input(&self) -> (AnyStore, Location) {
        let loc = Location::parse(self.input.to_str().unwrap(), false).unwrap();
        (
            AnyStore::Local(LocalFolderStore::new(loc.local_root.clone().unwrap())),
            loc,
        )
    }

    /// Relationalizes the archive `name` of `in/`.
    pub async fn run(
        &self,
        relz: &Relationalizer,
        name: &str,
    ) -> Result<stepops_relationalize::ArchiveReport, stepops_relationalize::RelzError> {
        let (store, loc) = self.input();
        relz.archive(&store, &loc.bucket, &loc.key(name), name)
            .await
    }

    /// Every file under `out/`, relative, sorted.
    pub fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.output, &self.output, &mut out);
        out.sort();
        out
    }

    /// The Parquet files of `table` as DuckDB's `read_parquet` source.
    pub fn table(&self, table: &str) -> String {
        format!(
            "read_parquet('{}/{table}/**/*.parquet', hive_partitioning = true)",
            self.output.display()
        )
    }
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(base, &p, out);
        } else {
            out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
        }
    }
}

#[allow(unused_imports)] // not every test binary queries
pub use stepops_testkit::duckdb::duckdb;
