//! Why an archive could not be relationalized, each cause with its `Stepops.*` name. A
//! document that is invalid is not an error: it is quarantined with its reasons and the
//! archive succeeds.

use stepops_error::{ErrorName, Named};
use stepops_store::StoreError;

/// An archive that failed as a whole; nothing of it was written.
#[derive(Debug, thiserror::Error)]
pub enum RelzError {
    /// The archive is not a readable ZIP (truncated, corrupt, a member failing its CRC).
    #[error(
        "archive {archive} is not a readable ZIP: {reason}; upload it again (reprocessing replaces its output)"
    )]
    CorruptArchive {
        /// The archive's location.
        archive: String,
        /// What the ZIP reader said.
        reason: String,
    },
    /// The archive's `metadata.json` is missing or lacks a field.
    #[error("archive {archive}: {reason}; see docs/relationalize.md, \"Input\"")]
    BadMetadata {
        /// The archive's location.
        archive: String,
        /// What is wrong.
        reason: String,
    },
    /// A JSON Schema could not be read as JSON or does not compile.
    #[error(
        "schema {schema} does not compile: {reason}; fix the schema, then reprocess the archive"
    )]
    BadSchema {
        /// Where the schema was read.
        schema: String,
        /// Why it does not compile.
        reason: String,
    },
    /// The archive holds more than one Parquet string column can (2 GiB of text in a column).
    #[error("archive {archive}: {reason}")]
    TooLarge {
        /// The archive's location.
        archive: String,
        /// Which column, and what to do.
        reason: String,
    },
    /// An input or output location is not a folder or `s3://BUCKET/PREFIX`, or an argument
    /// is out of range.
    #[error("{0}")]
    InvalidArgument(String),
    /// Reading or writing the object store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A local temporary file could not be written or read.
    #[error("local temporary file: {0}")]
    Io(#[from] std::io::Error),
    /// Encoding Parquet failed (a bug: every column is typed before it is written).
    #[error("writing Parquet for table {table}: {reason}")]
    Parquet {
        /// The table.
        table: String,
        /// The encoder's message.
        reason: String,
    },
}

impl Named for RelzError {
    fn error_name(&self) -> ErrorName {
        match self {
            RelzError::CorruptArchive { .. }
            | RelzError::BadMetadata { .. }
            | RelzError::BadSchema { .. }
            | RelzError::TooLarge { .. }
            | RelzError::InvalidArgument(_) => ErrorName::InvalidInput,
            RelzError::Store(e) => e.error_name(),
            RelzError::Io(_) => ErrorName::Transient,
            RelzError::Parquet { .. } => ErrorName::Internal,
        }
    }
}
