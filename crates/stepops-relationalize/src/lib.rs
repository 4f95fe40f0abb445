//! Relationalize: archives of JSON documents (a ZIP per uploaded record) become
//! schema-validated, flattened, partitioned Parquet tables, as AWS Glue's Relationalize and
//! BridgeDownstream's renaming make them, without Glue (`stepops relationalize`, Lambda
//! `relationalize`, `statemachine/relationalize.asl.json`). Users read
//! `docs/relationalize.md`.
//!
//! - [`archive`]: the archive's layout (`metadata.json`, `NAME.json`, `NAME.jsonl`), streamed.
//! - [`doc`]: a document parsed once into a flat vector of nodes, read by the validator and
//!   the flattener.
//! - [`flatten`]: the naming rules (structs → `a_b`, arrays → child tables `T_c` with `id`
//!   and `index`).
//! - [`types`]: column types from the JSON Schema or inferred; conflicts → strings, reported.
//! - [`schema`]: schemas by dataset and version, from a folder or an S3 prefix.
//! - [`encode`]: a table as Parquet; `constant`: a column with one string in every row.
//! - [`run`]: one archive end to end, published whole ([`Relationalizer`]).
//! - [`location`]: `s3://BUCKET/PREFIX` or a folder, through `stepops_store`.
//! - [`records`]: which files each record's last run wrote; the stale ones are deleted.
//! - [`service`]: many archives (the CLI), and the Lambda's event.
//! - [`generate`]: made-up archives and documents (tests, the benchmark).

pub mod archive;
mod constant;
pub mod doc;
pub mod encode;
mod error;
pub mod flatten;
pub mod generate;
pub mod location;
pub mod records;
pub mod run;
pub mod schema;
pub mod service;
pub mod table;
pub mod types;

pub use error::RelzError;
pub use location::Location;
pub use run::{ArchiveReport, DEFAULT_MAX_DOCUMENT_BYTES, QUARANTINE, Relationalizer};
pub use schema::Schemas;
