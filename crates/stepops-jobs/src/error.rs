//! [`JobError`]: every refusal of the catalog and of a request, with its `Stepops.*` name.

use stepops_error::{ErrorName, Named};

/// Why a catalog file or a job request was refused. Nothing was run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// A catalog file is not a valid job definition (`Stepops.InvalidInput`).
    #[error("{file}: {problem}")]
    Definition {
        /// The file (`jobs/NAME.yaml`).
        file: String,
        /// What is wrong and where.
        problem: String,
    },
    /// The catalog cannot be read at all (`Stepops.InvalidInput`).
    #[error("cannot read the job catalog {dir}: {reason}")]
    Catalog {
        /// The folder.
        dir: String,
        /// The system's reason.
        reason: String,
    },
    /// No job has this name (`Stepops.NotFound`).
    #[error("no job named `{name}` in the catalog (jobs: {known}); `stepops job list` shows them")]
    UnknownJob {
        /// The name asked for.
        name: String,
        /// The catalog's job names.
        known: String,
    },
    /// The job may not run in this environment (`Stepops.WrongEnvironment`).
    #[error(
        "job `{job}` may run in {allowed}, not in `{environment}`: start it in one of those \
         environments (or add `{environment}` to its `environments`)"
    )]
    WrongEnvironment {
        /// The job.
        job: String,
        /// The environment asked for.
        environment: String,
        /// Its environments.
        allowed: String,
    },
    /// The request is invalid: parameters, sizes, shape (`Stepops.InvalidInput`).
    #[error("job `{job}`: {problem}")]
    Request {
        /// The job (or `?` when the request names none).
        job: String,
        /// What is wrong and what to do.
        problem: String,
    },
    /// The request was validated against another catalog than this one (`Stepops.Conflict`).
    #[error(
        "the request was validated against catalog {validated}, this catalog is {mine}: the jobs \
         changed between validation and run; start a new execution (deploy the runner and the \
         stack from the same commit)"
    )]
    CatalogDrift {
        /// The version in the request.
        validated: String,
        /// This catalog's version.
        mine: String,
    },
}

impl Named for JobError {
    fn error_name(&self) -> ErrorName {
        match self {
            JobError::Definition { .. } | JobError::Catalog { .. } | JobError::Request { .. } => {
                ErrorName::InvalidInput
            }
            JobError::UnknownJob { .. } => ErrorName::NotFound,
            JobError::WrongEnvironment { .. } => ErrorName::WrongEnvironment,
            JobError::CatalogDrift { .. } => ErrorName::Conflict,
        }
    }
}
