//! The ops job catalog (docs/jobs.md): jobs declared one YAML file each under `jobs/`
//! ([`JobDefinition`], described by the published `jobs/schema.json`), checked by
//! [`Catalog`] (the rules serde cannot say) and versioned by a content hash; a request to run a
//! job ([`JobRequest`]) validated into a [`ValidatedJob`] (argument vectors with parameters
//! substituted as whole arguments, the environment's secrets only, the catalog version), or
//! refused with a named [`JobError`]. Used alike by the CLI, the validation Lambda and the
//! runner, so that what was validated is what runs.
//!
//! The repository's own catalog is compiled in ([`embedded`]): a Lambda and a runner built
//! from one commit carry the same jobs and the same version.

pub mod catalog;
pub mod definition;
pub mod error;
pub mod request;

pub use catalog::{Catalog, FileCheck, check_dir};
pub use definition::{JobDefinition, Parameter, SecretRef, StepDefinition};
pub use error::JobError;
pub use request::{
    JobRequest, MAX_PARAMS, MAX_REQUEST_BYTES, MAX_VALUE_BYTES, PlannedStep,
    STATE_TIMEOUT_MARGIN_SECONDS, ValidatedJob, validate_event,
};

/// The repository's `jobs/*.yaml`, as `(file name, text)`, compiled in at build time.
pub const EMBEDDED_FILES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// The catalog of the repository's `jobs/` as built (see [`EMBEDDED_FILES`]).
pub fn embedded() -> Result<Catalog, JobError> {
    Catalog::from_files(
        EMBEDDED_FILES
            .iter()
            .map(|(f, t)| ((*f).to_owned(), (*t).to_owned()))
            .collect(),
    )
}

/// The published JSON Schema of a job file (`jobs/schema.json`).
pub const SCHEMA: &str = include_str!("../../../jobs/schema.json");
