//! End-to-end tests of stepops, across crates (this library is empty; the tests are in
//! `tests/`):
//!
//! - `statemachine.rs`: `statemachine/migrate.asl.json` run by the ASL interpreter with the real
//!   validate/notify logic and an in-memory runner;
//! - `deploy_files.rs`: `template.yaml`, `samconfig.toml` and the deploy scripts checked
//!   against what the code expects;
//! - `pipeline.rs`: the whole pipeline (`stepops-embedded`: local engine, Lambdas, runner
//!   workers) on SQLite files and a real PostgreSQL server.
//!
//! A test that needs one crate only belongs to that crate's `tests/`.
