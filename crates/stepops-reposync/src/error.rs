//! The repository sync's errors, each mapped to a documented `Stepops.*` name.

use stepops_error::{ErrorName, Named};
use stepops_store::StoreError;

/// Why a sync refused or failed. Every variant says what to do; none carries a token or a key.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The definition is invalid; every problem is listed. Nothing was requested.
    #[error("invalid repository sync definition: {}. See docs/repo-sync.md", .problems.join("; "))]
    Definition {
        /// One line per problem, naming the field.
        problems: Vec<String>,
    },
    /// The GitHub App's private key cannot be used.
    #[error(
        "the GitHub App private key is unusable: {0}. Store the PEM GitHub generated (BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY) in the secret"
    )]
    PrivateKey(String),
    /// GitHub refused the app's JWT or the installation token (HTTP 401/403).
    #[error(
        "GitHub refused the credentials ({what}: HTTP {status}). Check the app id, the installation id, that the key in the secret is the app's current key, and that the app is installed on the repository"
    )]
    GitHubUnauthorized {
        /// Which request.
        what: String,
        /// The HTTP status.
        status: u16,
    },
    /// The repository, the branch or the installation does not exist (HTTP 404).
    #[error(
        "GitHub has no {what} (HTTP 404). Check the organization, repository and branch, and that the app's installation can read the repository"
    )]
    GitHubNotFound {
        /// What was asked for.
        what: String,
    },
    /// GitHub answered something unexpected, or could not be reached.
    #[error("GitHub: {0}. Retry later")]
    GitHub(String),
    /// The archive is larger than `max_archive_bytes`. Nothing was written.
    #[error(
        "the archive is larger than the limit of {limit} bytes. Nothing was written: raise max_archive_bytes in the definition, or exclude large files from the repository"
    )]
    ArchiveTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The download did not finish within `timeout_seconds`. Nothing was written.
    #[error(
        "the archive download did not finish within {0} s. Nothing was written; retry, or raise timeout_seconds"
    )]
    Timeout(u64),
    /// The archive is truncated or corrupt. Nothing was written.
    #[error("the archive is truncated or corrupt: {0}. Nothing was written; retry")]
    CorruptArchive(String),
    /// The archive holds a path that would land outside the prefix. Nothing was written.
    #[error(
        "the archive holds an unsafe entry {path:?}: {reason}. Nothing was written: fix the repository"
    )]
    UnsafeArchive {
        /// The entry's name.
        path: String,
        /// Why it is refused.
        reason: String,
    },
    /// A local file could not be read or written.
    #[error("local file {path}: {message}")]
    Local {
        /// The file.
        path: String,
        /// What happened.
        message: String,
    },
    /// S3 refused a read (listing, manifest, HeadObject) or could not be reached.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Some uploads or deletes failed (the others were done); every failure is listed.
    #[error(
        "{} of the sync's writes failed (the others were done): {}. Fix the cause; the next run retries what still differs",
        .failures.len(), .failures.join("; ")
    )]
    WritesFailed {
        /// `key: code: message`, one per failed write.
        failures: Vec<String>,
        /// Every failure was an access denial.
        denied: bool,
    },
}

impl Named for SyncError {
    fn error_name(&self) -> ErrorName {
        match self {
            SyncError::Definition { .. }
            | SyncError::ArchiveTooLarge { .. }
            | SyncError::UnsafeArchive { .. } => ErrorName::InvalidInput,
            SyncError::PrivateKey(_) | SyncError::GitHubUnauthorized { .. } => {
                ErrorName::Unauthorized
            }
            SyncError::GitHubNotFound { .. } => ErrorName::NotFound,
            SyncError::GitHub(_)
            | SyncError::Timeout(_)
            | SyncError::CorruptArchive(_)
            | SyncError::Local { .. } => ErrorName::Transient,
            SyncError::Store(e) => e.error_name(),
            SyncError::WritesFailed { denied, .. } => {
                if *denied {
                    ErrorName::Unauthorized
                } else {
                    ErrorName::Transient
                }
            }
        }
    }
}

/// A [`SyncError::Local`] from an I/O error.
pub(crate) fn local(path: impl std::fmt::Display, e: impl std::fmt::Display) -> SyncError {
    SyncError::Local {
        path: path.to_string(),
        message: e.to_string(),
    }
}
